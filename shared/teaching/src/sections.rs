//! What the teaching catalog reads from the Canvas catalog the change bus keeps: a section's
//! course, names and codes. Never copied: looked up when needed.

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
}

/// A fixed directory (unit tests, dry runs against a file of sections).
#[derive(Debug, Clone, Default)]
pub struct FixedDirectory(pub BTreeMap<String, SectionInfo>);

#[async_trait]
impl CanvasDirectory for FixedDirectory {
    async fn sections(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, SectionInfo>, ServiceError> {
        Ok(ids
            .iter()
            .filter_map(|id| self.0.get(id).map(|info| (id.clone(), info.clone())))
            .collect())
    }
}
