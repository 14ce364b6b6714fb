//! The port coursewire's functions speak to Panopto through.

use super::PanoptoError;
use super::model::{
    CaptionProvider, Folder, FolderSettings, Permission, PermissionCreate, RemoteRecorder,
    ScheduledRecording, ScheduledRecordingCreate, Session, SessionStatus, SessionUpdate, User,
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
    /// The folder carrying `external_id` under the client's site membership provider
    /// ([`crate::PanoptoConfig::external_id_provider`]); `None` if no folder does. Names are
    /// edited by people, external ids are not: this finds a section's folder again. The
    /// folder comes from SOAP, which names the parent by id only (`parent_folder.name` is
    /// empty). Two folders answering is [`PanoptoError::Decode`] (ambiguous, not guessed).
    async fn folder_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<Folder>, PanoptoError>;
    /// Gives the folder `external_id` under the client's provider, replacing the one it had
    /// there; setting the id it already has is a no-op success. An unknown folder is
    /// [`PanoptoError::NotFound`]. An id another folder carries under the provider is
    /// refused by the simulator as a SOAP fault ([`PanoptoError::Soap`]); Panopto does not
    /// document whether it refuses or moves it.
    async fn set_folder_external_id(
        &self,
        folder_id: &str,
        external_id: &str,
    ) -> Result<(), PanoptoError>;
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

    /// Users whose user key, name or email matches `query` (REST `GET /users/search`; the
    /// simulator matches substrings, case-insensitively, and every user on `""`). Panopto
    /// documents no `pageNumber` for this search: pages are followed as for every list, and
    /// a page holding only users already seen (what a server ignoring paging answers) ends it.
    async fn search_users(&self, query: &str) -> Result<Vec<User>, PanoptoError>;
    /// The user whose user key (`{identity provider}\{login}`) is `key`, compared
    /// case-insensitively; `None` if no user has it. A search by the key, keeping the exact
    /// match only (a search also answers keys, names and emails that merely contain it). A
    /// blank key is [`PanoptoError::Config`]; two users answering is [`PanoptoError::Decode`]
    /// (ambiguous, not guessed).
    async fn user_by_key(&self, key: &str) -> Result<Option<User>, PanoptoError> {
        let key = key.trim();
        if key.is_empty() {
            return Err(PanoptoError::Config("a user key cannot be empty".into()));
        }
        let wanted = key.to_lowercase();
        let mut found: Vec<User> = self
            .search_users(key)
            .await?
            .into_iter()
            .filter(|u| u.user_key.to_lowercase() == wanted)
            .collect();
        match found.len() {
            0 | 1 => Ok(found.pop()),
            n => Err(PanoptoError::Decode(format!(
                // Ids only: a user key names a person.
                "{n} users have the same user key: {}",
                found
                    .iter()
                    .map(|u| u.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

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
