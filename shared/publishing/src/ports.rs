//! What the publish workflow needs from the world, in its own terms: where workflow rows are
//! kept, Canvas's course modules, and who may watch a section. Panopto is
//! `coursewire_panopto::Panopto`; the catalog, rules, audit and incidents are their crates'.

use crate::workflow::WorkflowRow;
use async_trait::async_trait;
use coursewire_canvas::canvas::{CanvasError, Module, ModuleItem, NewExternalUrlItem};
use coursewire_runtime::service::ServiceError;

/// What a conditional save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Saved,
    /// Another writer saved a newer version first: reload and look again.
    Moved,
}

#[async_trait]
pub trait WorkflowStore: Send + Sync {
    async fn load(&self, session_id: &str) -> Result<Option<WorkflowRow>, ServiceError>;
    /// Writes `row` with `row.version + 1` if the stored version is still `row.version`
    /// (0 = not stored yet); on success `row.version` is the new one.
    async fn save(&self, row: &mut WorkflowRow) -> Result<Saved, ServiceError>;
    /// The workflows of a section's lectures, optionally of one local date (`YYYY-MM-DD`).
    async fn of_section(
        &self,
        section_id: &str,
        date: Option<&str>,
    ) -> Result<Vec<WorkflowRow>, ServiceError>;
}

/// Canvas course modules, through the quota-aware client.
#[async_trait]
pub trait CourseModules: Send + Sync {
    async fn modules(&self, course_id: &str) -> Result<Vec<Module>, CanvasError>;
    /// Not repeated after an unknown outcome: the caller looks before creating again.
    async fn create_module(&self, course_id: &str, name: &str) -> Result<Module, CanvasError>;
    async fn publish_module(&self, course_id: &str, module_id: &str)
    -> Result<Module, CanvasError>;
    /// Not repeated after an unknown outcome: the caller looks before creating again.
    async fn create_item(
        &self,
        course_id: &str,
        module_id: &str,
        item: &NewExternalUrlItem,
    ) -> Result<ModuleItem, CanvasError>;
    async fn publish_item(
        &self,
        course_id: &str,
        module_id: &str,
        item_id: &str,
    ) -> Result<ModuleItem, CanvasError>;
}

#[async_trait]
impl CourseModules for coursewire_canvas::canvas::CanvasClient {
    async fn modules(&self, course_id: &str) -> Result<Vec<Module>, CanvasError> {
        self.modules(course_id).await
    }
    async fn create_module(&self, course_id: &str, name: &str) -> Result<Module, CanvasError> {
        self.create_module(course_id, name).await
    }
    async fn publish_module(
        &self,
        course_id: &str,
        module_id: &str,
    ) -> Result<Module, CanvasError> {
        self.publish_module(course_id, module_id).await
    }
    async fn create_item(
        &self,
        course_id: &str,
        module_id: &str,
        item: &NewExternalUrlItem,
    ) -> Result<ModuleItem, CanvasError> {
        self.create_external_url_item(course_id, module_id, item)
            .await
    }
    async fn publish_item(
        &self,
        course_id: &str,
        module_id: &str,
        item_id: &str,
    ) -> Result<ModuleItem, CanvasError> {
        self.publish_module_item(course_id, module_id, item_id)
            .await
    }
}
