//! What the teaching catalog reads from the Canvas catalog the change bus keeps: a section's
//! course, names and codes, and who teaches it. Never copied: looked up when needed.

use async_trait::async_trait;
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_runtime::service::ServiceError;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A Canvas section as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    pub section_id: String,
    pub section_name: String,
    pub course_id: String,
    pub course_code: String,
    pub course_name: String,
}

#[async_trait]
pub trait CanvasDirectory: Send + Sync {
    /// The sections among `ids` that the Canvas catalog has (and has not deleted).
    async fn sections(&self, ids: &[String])
    -> Result<BTreeMap<String, SectionInfo>, ServiceError>;
    /// The Canvas user ids teaching `section_id` of `course_id` now: its active teacher
    /// enrollments (Canvas's `TeacherEnrollment`), read from the catalog, never copied.
    async fn instructors(
        &self,
        course_id: &str,
        section_id: &str,
    ) -> Result<Vec<String>, ServiceError>;
    /// The Canvas user ids who may watch the course's recordings now: every active
    /// enrollment (students, teachers, TAs, observers) of `section_id`, or of the whole
    /// course when `section_id` is `None`.
    async fn viewers(
        &self,
        course_id: &str,
        section_id: Option<&str>,
    ) -> Result<Vec<String>, ServiceError>;
}

/// The Canvas catalog table as a directory (two BatchGetItem rounds: sections, then courses).
pub struct CatalogDirectory {
    catalog: DynamoCatalog,
}

impl CatalogDirectory {
    pub fn new(catalog: DynamoCatalog) -> Self {
        Self { catalog }
    }
}

fn field(state: &serde_json::Map<String, Value>, name: &str) -> String {
    state
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[async_trait]
impl CanvasDirectory for CatalogDirectory {
    async fn sections(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, SectionInfo>, ServiceError> {
        // BatchGetItem refuses a key given twice.
        let keys: Vec<String> = ids
            .iter()
            .map(|id| format!("section:{id}"))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let sections = self.catalog.get_many(&keys).await?;
        let live: Vec<_> = sections
            .into_iter()
            .filter(|row| !row.deleted)
            .filter_map(|row| row.state.map(|state| (row.entity_id, state)))
            .collect();
        let course_keys: Vec<String> = live
            .iter()
            .map(|(_, state)| format!("course:{}", field(state, "course_id")))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let courses: BTreeMap<String, _> = self
            .catalog
            .get_many(&course_keys)
            .await?
            .into_iter()
            .filter_map(|row| row.state.map(|state| (row.entity_id, state)))
            .collect();
        Ok(live
            .into_iter()
            .filter_map(|(section_id, state)| {
                let course_id = field(&state, "course_id");
                let course = courses.get(&course_id)?;
                Some((
                    section_id.clone(),
                    SectionInfo {
                        section_id,
                        section_name: field(&state, "name"),
                        course_code: field(course, "course_code"),
                        course_name: field(course, "name"),
                        course_id,
                    },
                ))
            })
            .collect())
    }

    async fn instructors(
        &self,
        course_id: &str,
        section_id: &str,
    ) -> Result<Vec<String>, ServiceError> {
        self.enrolled(course_id, |state| teaches(state, section_id))
            .await
    }

    async fn viewers(
        &self,
        course_id: &str,
        section_id: Option<&str>,
    ) -> Result<Vec<String>, ServiceError> {
        self.enrolled(course_id, |state| watches(state, section_id))
            .await
    }
}

impl CatalogDirectory {
    /// The users (sorted, once each) of the course's live enrollments that `keep` accepts.
    async fn enrolled(
        &self,
        course_id: &str,
        keep: impl Fn(&serde_json::Map<String, Value>) -> bool,
    ) -> Result<Vec<String>, ServiceError> {
        let users: BTreeSet<String> = self
            .catalog
            .children(&format!("course:{course_id}"))
            .await?
            .into_iter()
            .filter(|row| row.entity_type == "enrollment" && !row.deleted)
            .filter_map(|row| row.state)
            .filter(|state| keep(state))
            .map(|state| field(&state, "user_id"))
            .filter(|user| !user.is_empty())
            .collect();
        Ok(users.into_iter().collect())
    }
}

/// Whether a catalog enrollment row lets its user watch `section_id`'s (or, `None`, the
/// course's) recordings.
fn watches(state: &serde_json::Map<String, Value>, section_id: Option<&str>) -> bool {
    section_id.is_none_or(|section| field(state, "section_id") == section)
        && matches!(field(state, "workflow_state").as_str(), "active" | "")
}

/// Whether a catalog enrollment row makes its user an instructor of `section_id`.
fn teaches(state: &serde_json::Map<String, Value>, section_id: &str) -> bool {
    field(state, "type") == "TeacherEnrollment"
        && field(state, "section_id") == section_id
        && matches!(field(state, "workflow_state").as_str(), "active" | "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_active_teachers_of_the_section_count() {
        let row = |value: Value| value.as_object().cloned().unwrap();
        let teacher = row(
            json!({"type": "TeacherEnrollment", "section_id": "s1", "workflow_state": "active", "user_id": "u1"}),
        );
        assert!(teaches(&teacher, "s1"));
        assert!(!teaches(&teacher, "s2"), "another section");
        let student = row(
            json!({"type": "StudentEnrollment", "section_id": "s1", "workflow_state": "active"}),
        );
        assert!(!teaches(&student, "s1"));
        let gone = row(
            json!({"type": "TeacherEnrollment", "section_id": "s1", "workflow_state": "completed"}),
        );
        assert!(!teaches(&gone, "s1"));
        assert!(watches(&student, Some("s1")) && watches(&student, None));
        assert!(!watches(&student, Some("s2")), "another section");
        assert!(watches(&teacher, Some("s1")));
        assert!(
            !watches(&gone, None),
            "a completed enrollment no longer watches"
        );
    }
}
