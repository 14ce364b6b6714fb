//! The access step: viewers from the roster, granted and revoked through [`crate::access`].

use super::*;

impl Publisher {
    pub(super) async fn access(
        &self,
        row: &WorkflowRow,
        context: &Context,
        rule: &PublishingRule,
    ) -> Result<Effect, StepError> {
        let lecture = &context.lecture;
        let wanted = self
            .access
            .wanted(&lecture.course_id, &lecture.section_id, rule.access)
            .await?;
        let synced = self
            .access
            .sync(&row.session_id, row.access.as_ref(), &wanted)
            .await?;
        let mut detail = format!(
            "access by {}: {} viewer(s), {} granted, {} revoked",
            access_name(rule.access),
            wanted.principals.len(),
            synced.granted,
            synced.revoked
        );
        if wanted.unknown > 0 {
            detail.push_str(&format!(
                "; {} not in Panopto yet (granted once they are)",
                wanted.unknown
            ));
        }
        let principals = wanted.principals;
        Ok(Effect::done(detail, move |row| {
            row.access = Some(principals);
            row.access_stale = false;
        }))
    }
}
