//! The port coursewire's functions speak to Panopto through.

use super::PanoptoError;
use super::model::{
    CaptionProvider, Folder, FolderSettings, Permission, PermissionCreate, RemoteRecorder,
    ScheduledRecording, ScheduledRecordingCreate, Session, SessionStatus, SessionUpdate,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Panopto, in its own terms. Lists are complete (every page) with each object once.
#[async_trait]
pub trait Panopto: Send + Sync {
    /// `None` when there is no such session.
    async fn session(&self, id: &str) -> Result<Option<Session>, PanoptoError>;
    /// A rename and/or move; answers the session as it is now.
    async fn update_session(
        &self,
        id: &str,
        update: &SessionUpdate,
    ) -> Result<Session, PanoptoError>;
    async fn search_sessions(&self, query: &str) -> Result<Vec<Session>, PanoptoError>;
    /// Sessions recording right now.
    async fn in_progress_recordings(&self) -> Result<Vec<Session>, PanoptoError>;

    async fn folder(&self, id: &str) -> Result<Option<Folder>, PanoptoError>;
    async fn search_folders(&self, query: &str) -> Result<Vec<Folder>, PanoptoError>;
    async fn folder_children(&self, id: &str) -> Result<Vec<Folder>, PanoptoError>;
    /// `parent: None` creates a top-level folder.
    async fn create_folder(
        &self,
        name: &str,
        parent: Option<&str>,
        description: Option<&str>,
    ) -> Result<Folder, PanoptoError>;
    async fn folder_sessions(&self, folder_id: &str) -> Result<Vec<Session>, PanoptoError>;
    async fn folder_settings(&self, folder_id: &str) -> Result<FolderSettings, PanoptoError>;
    async fn set_folder_caption_provider(
        &self,
        folder_id: &str,
        provider_id: &str,
    ) -> Result<FolderSettings, PanoptoError>;
    /// The caption provider instances configured on the site (to find one by name).
    async fn caption_providers(&self) -> Result<Vec<CaptionProvider>, PanoptoError>;

    /// Recorders whose name matches `query` (the simulator matches every recorder on `""`).
    async fn search_remote_recorders(
        &self,
        query: &str,
    ) -> Result<Vec<RemoteRecorder>, PanoptoError>;

    async fn scheduled_recording(
        &self,
        id: &str,
    ) -> Result<Option<ScheduledRecording>, PanoptoError>;
    /// Books a recording; a recorder already booked then is [`PanoptoError::Conflict`]
    /// (conflicts are never resolved by cancelling someone else's booking).
    async fn create_scheduled_recording(
        &self,
        create: &ScheduledRecordingCreate,
    ) -> Result<ScheduledRecording, PanoptoError>;
    async fn update_scheduled_recording(
        &self,
        id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ScheduledRecording, PanoptoError>;
    /// Cancels a booking; one that is already gone counts as cancelled.
    async fn delete_scheduled_recording(&self, id: &str) -> Result<(), PanoptoError>;

    /// Uploads an SRT (or WebVTT) caption file; `language` is Panopto's `ContentLanguage`
    /// name, e.g. `English_USA`.
    async fn upload_captions(
        &self,
        session_id: &str,
        language: &str,
        captions: &[u8],
    ) -> Result<(), PanoptoError>;

    async fn session_permissions(&self, session_id: &str) -> Result<Vec<Permission>, PanoptoError>;
    async fn grant_session_permission(
        &self,
        session_id: &str,
        grant: &PermissionCreate,
    ) -> Result<(), PanoptoError>;
    /// A grant that is not there counts as revoked.
    async fn revoke_session_permission(
        &self,
        session_id: &str,
        grant: &PermissionCreate,
    ) -> Result<(), PanoptoError>;

    /// Processing state of many sessions in one SOAP call (per 200 ids); unknown ids are
    /// absent from the answer.
    async fn session_states(&self, ids: &[String]) -> Result<Vec<SessionStatus>, PanoptoError>;
    /// Many recorders with their state in one SOAP call (per 200 ids); unknown ids are absent.
    async fn recorder_states(&self, ids: &[String]) -> Result<Vec<RemoteRecorder>, PanoptoError>;
}
