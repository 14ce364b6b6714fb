//! The file step (the rule's folder, found by external id, and name, once), and the audit
//! note when a person renames or moves the session afterwards.

use super::*;

impl Publisher {
    pub(super) async fn file(
        &self,
        recording: &RecordingRow,
        context: &Context,
        rule: &PublishingRule,
    ) -> Result<Effect, StepError> {
        let path = context.folder_path(rule);
        if path.is_empty() {
            return Err(StepError::Permanent(format!(
                "the folder template of {} renders empty",
                rule.scope.key()
            )));
        }
        let name = rule.session_template.render(&context.values);
        let folder_id = self.folders.folder(&path).await?;
        let session = self
            .panopto
            .session(&recording.session_id)
            .await?
            .ok_or_else(|| {
                StepError::Permanent(format!(
                    "session {} is not in Panopto",
                    recording.session_id
                ))
            })?;
        let update = SessionUpdate {
            name: (session.name != name).then(|| name.clone()),
            description: None,
            folder: (session.folder.as_deref() != Some(folder_id.as_str()))
                .then(|| folder_id.clone()),
        };
        let detail = if update.name.is_none() && update.folder.is_none() {
            format!("already filed as \"{name}\" in folder {folder_id}")
        } else {
            self.panopto
                .update_session(&recording.session_id, &update)
                .await?;
            format!(
                "filed as \"{name}\" in folder {} ({})",
                folder_id,
                path.join("/")
            )
        };
        let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let viewer_url = session.urls.and_then(|u| u.viewer_url);
        Ok(Effect::done(detail, move |row| {
            row.filed = Some(Filed {
                folder_id,
                name,
                at,
                viewer_url,
            })
        }))
    }

    /// A name or folder a person gave the session after filing is kept; say so once.
    pub(super) async fn note_kept_change(
        &self,
        row: &mut WorkflowRow,
        recording: &RecordingRow,
    ) -> Result<(), StepError> {
        let Some(filed) = &row.filed else {
            return Ok(());
        };
        // Only what was seen after coursewire filed it: the filing's own rename and move
        // show up as events too, stating exactly what was filed.
        let after = |stated: &Option<crate::recording::Stated>| {
            stated
                .as_ref()
                .filter(|s| time(&s.at) > time(&filed.at))
                .map(|s| s.value.clone())
        };
        let mut changes = Vec::new();
        if let Some(name) = after(&recording.renamed).filter(|n| *n != filed.name) {
            changes.push(format!("renamed it to \"{name}\""));
        }
        if let Some(folder) = after(&recording.moved).filter(|f| *f != filed.folder_id) {
            changes.push(format!("moved it to folder {folder}"));
        }
        if changes.is_empty() {
            return Ok(());
        }
        let change = changes.join(" and ");
        if row.kept_change.as_deref() == Some(change.as_str()) {
            return Ok(());
        }
        let detail = format!(
            "someone {change} after coursewire filed it as \"{}\" in folder {}: the person's change stands",
            filed.name, filed.folder_id
        );
        let mut record = AuditRecord::new(
            subject(row),
            &format!("{}:kept:{change}", row.session_id),
            Utc::now(),
            Actor::function(&self.settings.function),
            Action::WorkflowStep {
                session_id: row.session_id.clone(),
                step: Step::File.as_str().to_string(),
            },
            Outcome::Skipped,
            detail,
        );
        record.upstream = Upstream::session(&row.session_id);
        self.trail.append(&record).await?;
        row.kept_change = Some(change);
        row.updated_at = format_sortable(&Utc::now());
        // Lost to another run: that run notes it.
        let _ = self.store.save(row).await?;
        Ok(())
    }
}
