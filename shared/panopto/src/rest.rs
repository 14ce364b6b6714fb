//! [`Panopto`] over [`HttpPanopto`]: Panopto's REST resources and the batched SOAP reads.

use super::PanoptoError;
use super::client::{Body, Call, HttpPanopto, decode, segment};
use super::model::{
    CaptionProvider, Folder, FolderSettings, PAGE_SIZE, Permission, PermissionCreate,
    RemoteRecorder, ScheduledRecording, ScheduledRecordingCreate, ScheduledRecordingUpdate,
    Session, SessionStatus, SessionUpdate, User,
};
use super::multipart::caption_upload;
use super::port::Panopto;
use super::soap::{self, SoapArg, SoapCall, SoapFault};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

const API: &str = "Panopto/api/v1";

/// A list longer than this many pages is taken for a server that never ends it.
const MAX_PAGES: u32 = 2_000;

/// Ids per SOAP call: keeps an envelope well below the service's message size limit.
pub(crate) const SOAP_BATCH: usize = 200;

#[derive(Deserialize)]
struct ListResponse<T> {
    #[serde(rename = "Results", default = "Vec::new")]
    results: Vec<T>,
}

/// How a list's last page is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paging {
    /// Panopto documents `pageNumber` for the list: a short or empty page is the last.
    Documented,
    /// Panopto documents no `pageNumber` for the list (`GET /users/search`): it is sent all
    /// the same, and a full page bringing nothing new is the last too, since a server that
    /// ignores it answers the first page again (forever, for a list of 50 or more).
    Undocumented,
}

impl HttpPanopto {
    /// Every page of a list (`pageNumber` from 0, until a short or empty page), each object
    /// once: offset paging repeats an object when the list shifts between pages.
    async fn list_all<T, K>(
        &self,
        call: Call,
        key: impl Fn(&T) -> K,
    ) -> Result<Vec<T>, PanoptoError>
    where
        T: DeserializeOwned,
        K: std::hash::Hash + Eq,
    {
        self.list_pages(call, key, Paging::Documented).await
    }

    async fn list_pages<T, K>(
        &self,
        call: Call,
        key: impl Fn(&T) -> K,
        paging: Paging,
    ) -> Result<Vec<T>, PanoptoError>
    where
        T: DeserializeOwned,
        K: std::hash::Hash + Eq,
    {
        let mut all = Vec::new();
        let mut seen = HashSet::new();
        for page in 0..MAX_PAGES {
            let call = call.clone().query("pageNumber", page.to_string());
            let list: ListResponse<T> = self.get_json(call).await?;
            let count = list.results.len();
            let before = all.len();
            for item in list.results {
                if seen.insert(key(&item)) {
                    all.push(item);
                }
            }
            let nothing_new = all.len() == before;
            if count < PAGE_SIZE || (paging == Paging::Undocumented && nothing_new) {
                return Ok(all);
            }
        }
        Err(PanoptoError::Decode(format!(
            "{}: more than {MAX_PAGES} pages",
            call.path
        )))
    }

    async fn send_json<T: DeserializeOwned>(&self, call: Call) -> Result<T, PanoptoError> {
        let what = call.path.clone();
        let body = self.execute(&call).await?;
        decode(&body, &what)
    }

    async fn soap_batched<T>(
        &self,
        call: SoapCall,
        ids_element: &'static str,
        ids: &[String],
        decode: fn(&[u8]) -> Result<Vec<T>, PanoptoError>,
    ) -> Result<Vec<T>, PanoptoError> {
        let mut unique: Vec<String> = Vec::with_capacity(ids.len());
        let mut seen = HashSet::new();
        for id in ids {
            if seen.insert(id.as_str()) {
                unique.push(id.clone());
            }
        }
        let mut all = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(SOAP_BATCH) {
            let body = self
                .soap(call, &[SoapArg::Guids(ids_element, chunk)])
                .await?;
            all.extend(decode(&body)?);
        }
        Ok(all)
    }
}

/// Panopto refuses a booking that overlaps another on the recorder with a 400 (409 from some
/// proxies) whose `APIError` names the conflict.
fn is_conflict(error: &PanoptoError) -> bool {
    matches!(
        error,
        PanoptoError::Http { status: 400 | 409, message } if is_conflict_message(message)
    )
}

fn conflict_or(error: PanoptoError, recorder: &str) -> PanoptoError {
    match error {
        PanoptoError::Http {
            status: 400 | 409,
            message,
        } if is_conflict_message(&message) => PanoptoError::Conflict {
            recorder: recorder.to_string(),
            message,
        },
        other => other,
    }
}

fn is_conflict_message(message: &str) -> bool {
    message.to_ascii_lowercase().contains("conflict")
}

fn permission_query(call: Call, grant: &PermissionCreate) -> Call {
    let mut call = call
        .query("PrincipalId", grant.principal_id.clone())
        .query("PrincipalType", grant.principal_type.as_str());
    if let Some(role_id) = &grant.role_id {
        call = call.query("RoleId", role_id.clone());
    }
    if let Some(role_type) = grant.role_type {
        call = call.query("RoleType", role_type.as_str());
    }
    call
}

/// An external id names something: an empty one is the caller's mistake, not a lookup.
fn checked_external_id(id: &str) -> Result<&str, PanoptoError> {
    let id = id.trim();
    if id.is_empty() {
        return Err(PanoptoError::Config(
            "an external id cannot be empty".into(),
        ));
    }
    Ok(id)
}

/// Panopto's fault for an id it does not know says "... was not found"; one that does not
/// name the folder (e.g. an unknown provider) is left a fault.
fn is_unknown_folder(fault: &SoapFault, folder_id: &str) -> bool {
    let message = fault.message.to_ascii_lowercase();
    message.contains("not found")
        && (message.contains("folder") || message.contains(&folder_id.to_ascii_lowercase()))
}

fn session_key(s: &Session) -> String {
    s.id.clone()
}

fn folder_key(f: &Folder) -> String {
    f.id.clone()
}

#[async_trait]
impl Panopto for HttpPanopto {
    async fn session(&self, id: &str) -> Result<Option<Session>, PanoptoError> {
        self.get_optional(Call::new(
            Method::GET,
            format!("{API}/sessions/{}", segment(id)),
        ))
        .await
    }

    async fn update_session(
        &self,
        id: &str,
        update: &SessionUpdate,
    ) -> Result<Session, PanoptoError> {
        let call =
            Call::new(Method::PUT, format!("{API}/sessions/{}", segment(id))).json(update)?;
        self.send_json(call).await
    }

    async fn search_sessions(&self, query: &str) -> Result<Vec<Session>, PanoptoError> {
        let call =
            Call::new(Method::GET, format!("{API}/sessions/search")).query("searchQuery", query);
        self.list_all(call, session_key).await
    }

    async fn in_progress_recordings(&self) -> Result<Vec<Session>, PanoptoError> {
        let call = Call::new(Method::GET, format!("{API}/sessions/inProgress/recording"));
        self.list_all(call, session_key).await
    }

    async fn folder(&self, id: &str) -> Result<Option<Folder>, PanoptoError> {
        self.get_optional(Call::new(
            Method::GET,
            format!("{API}/folders/{}", segment(id)),
        ))
        .await
    }

    async fn folder_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<Folder>, PanoptoError> {
        let ids = [checked_external_id(external_id)?.to_string()];
        let providers = [self.external_id_provider().to_string()];
        let body = self
            .soap(
                SoapCall::FoldersByExternalId,
                &[
                    SoapArg::Strings("folderExternalIds", &ids),
                    SoapArg::Strings("providerNames", &providers),
                ],
            )
            .await?;
        // Panopto matched the id and provider: its answer is trusted as is (its Folder's
        // single ExternalId need not be the one asked for when a folder has several).
        let mut seen = HashSet::new();
        let mut folders: Vec<Folder> = soap::decode_folders(&body)?
            .into_iter()
            .filter(|f| seen.insert(f.id.clone()))
            .collect();
        match folders.len() {
            0 | 1 => Ok(folders.pop()),
            n => Err(PanoptoError::Decode(format!(
                "{n} folders carry external id {} under provider {}: {}",
                ids[0],
                providers[0],
                folders
                    .iter()
                    .map(|f| f.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    async fn set_folder_external_id(
        &self,
        folder_id: &str,
        external_id: &str,
    ) -> Result<(), PanoptoError> {
        let call = SoapCall::UpdateFolderExternalIdWithProvider;
        let args = [
            SoapArg::Text("folderId", folder_id),
            SoapArg::Text("externalId", checked_external_id(external_id)?),
            SoapArg::Text("SiteMembershipProviderName", self.external_id_provider()),
        ];
        let not_found = |e: PanoptoError| match e {
            PanoptoError::Soap(fault) if is_unknown_folder(&fault, folder_id) => {
                PanoptoError::NotFound(format!("folder {folder_id}"))
            }
            other => other,
        };
        let body = self.soap(call, &args).await.map_err(not_found)?;
        soap::decode_done(&body, call).map_err(not_found)
    }

    async fn search_folders(&self, query: &str) -> Result<Vec<Folder>, PanoptoError> {
        let call =
            Call::new(Method::GET, format!("{API}/folders/search")).query("searchQuery", query);
        self.list_all(call, folder_key).await
    }

    async fn folder_children(&self, id: &str) -> Result<Vec<Folder>, PanoptoError> {
        let call = Call::new(
            Method::GET,
            format!("{API}/folders/{}/children", segment(id)),
        );
        self.list_all(call, folder_key).await
    }

    async fn create_folder(
        &self,
        name: &str,
        parent: Option<&str>,
        description: Option<&str>,
    ) -> Result<Folder, PanoptoError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct FolderCreate<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            description: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            parent: Option<&'a str>,
        }
        let call = Call::new(Method::POST, format!("{API}/folders")).json(&FolderCreate {
            name,
            description,
            parent,
        })?;
        self.send_json(call).await
    }

    async fn folder_sessions(&self, folder_id: &str) -> Result<Vec<Session>, PanoptoError> {
        let call = Call::new(
            Method::GET,
            format!("{API}/folders/{}/sessions", segment(folder_id)),
        )
        .query("sortField", "CreatedDate")
        .query("sortOrder", "Asc");
        self.list_all(call, session_key).await
    }

    async fn folder_settings(&self, folder_id: &str) -> Result<FolderSettings, PanoptoError> {
        self.get_json(Call::new(
            Method::GET,
            format!("{API}/folders/{}/settings", segment(folder_id)),
        ))
        .await
    }

    async fn set_folder_caption_provider(
        &self,
        folder_id: &str,
        provider_id: &str,
    ) -> Result<FolderSettings, PanoptoError> {
        let settings = FolderSettings {
            automatic_caption_provider_id: Some(provider_id.to_string()),
            automatic_caption_provider_name: None,
        };
        let call = Call::new(
            Method::PUT,
            format!("{API}/folders/{}/settings", segment(folder_id)),
        )
        .json(&settings)?;
        self.send_json(call).await
    }

    async fn caption_providers(&self) -> Result<Vec<CaptionProvider>, PanoptoError> {
        let call = Call::new(Method::GET, format!("{API}/captionproviders"));
        self.list_all(call, |p: &CaptionProvider| p.id.clone())
            .await
    }

    async fn search_remote_recorders(
        &self,
        query: &str,
    ) -> Result<Vec<RemoteRecorder>, PanoptoError> {
        let call = Call::new(Method::GET, format!("{API}/remoteRecorders/search"))
            .query("searchQuery", query);
        self.list_all(call, |r: &RemoteRecorder| r.id.clone()).await
    }

    async fn scheduled_recording(
        &self,
        id: &str,
    ) -> Result<Option<ScheduledRecording>, PanoptoError> {
        self.get_optional(Call::new(
            Method::GET,
            format!("{API}/scheduledRecordings/{}", segment(id)),
        ))
        .await
    }

    async fn create_scheduled_recording(
        &self,
        create: &ScheduledRecordingCreate,
    ) -> Result<ScheduledRecording, PanoptoError> {
        let recorder = create
            .recorders
            .first()
            .map(|r| r.remote_recorder_id.clone())
            .ok_or_else(|| PanoptoError::Config("a scheduled recording needs a recorder".into()))?;
        let call = Call::new(Method::POST, format!("{API}/scheduledRecordings"))
            .query("resolveConflicts", "false")
            .json(create)?;
        self.send_json(call)
            .await
            .map_err(|e| conflict_or(e, &recorder))
    }

    async fn update_scheduled_recording(
        &self,
        id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ScheduledRecording, PanoptoError> {
        let update = ScheduledRecordingUpdate {
            start_time: start,
            end_time: end,
        };
        let call = Call::new(
            Method::PUT,
            format!("{API}/scheduledRecordings/{}", segment(id)),
        )
        .query("resolveConflicts", "false")
        .json(&update)?;
        match self.send_json::<ScheduledRecording>(call).await {
            Ok(recording) => Ok(recording),
            Err(e) if is_conflict(&e) => {
                // The recorder is only known from the booking itself.
                let recorder = match self.scheduled_recording(id).await {
                    Ok(Some(r)) => r
                        .recorder_schedule_entries
                        .first()
                        .map(|e| e.recorder_id.clone())
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                Err(conflict_or(e, &recorder))
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_scheduled_recording(&self, id: &str) -> Result<(), PanoptoError> {
        let call = Call::new(
            Method::DELETE,
            format!("{API}/scheduledRecordings/{}", segment(id)),
        );
        match self.execute(&call).await {
            Ok(_) | Err(PanoptoError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn upload_captions(
        &self,
        session_id: &str,
        language: &str,
        captions: &[u8],
    ) -> Result<(), PanoptoError> {
        let mut call = Call::new(
            Method::POST,
            format!("{API}/sessions/{}/captions", segment(session_id)),
        );
        call.body = Body::Multipart(caption_upload(language, captions));
        self.execute(&call).await.map(|_| ())
    }

    async fn search_users(&self, query: &str) -> Result<Vec<User>, PanoptoError> {
        let call =
            Call::new(Method::GET, format!("{API}/users/search")).query("searchQuery", query);
        self.list_pages(call, |u: &User| u.id.clone(), Paging::Undocumented)
            .await
    }

    async fn session_permissions(&self, session_id: &str) -> Result<Vec<Permission>, PanoptoError> {
        let call = Call::new(
            Method::GET,
            format!("{API}/sessions/{}/permissions", segment(session_id)),
        );
        self.list_all(call, |p: &Permission| {
            (
                p.principal.as_ref().and_then(|x| x.id.clone()),
                p.role.as_ref().and_then(|r| r.id.clone()),
                p.role.as_ref().and_then(|r| r.name.clone()),
                p.is_inherited,
            )
        })
        .await
    }

    async fn grant_session_permission(
        &self,
        session_id: &str,
        grant: &PermissionCreate,
    ) -> Result<(), PanoptoError> {
        let call = Call::new(
            Method::POST,
            format!("{API}/sessions/{}/permissions", segment(session_id)),
        )
        .json(grant)?;
        self.execute(&call).await.map(|_| ())
    }

    async fn revoke_session_permission(
        &self,
        session_id: &str,
        grant: &PermissionCreate,
    ) -> Result<(), PanoptoError> {
        let call = permission_query(
            Call::new(
                Method::DELETE,
                format!("{API}/sessions/{}/permissions", segment(session_id)),
            ),
            grant,
        );
        match self.execute(&call).await {
            Ok(_) | Err(PanoptoError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn session_states(&self, ids: &[String]) -> Result<Vec<SessionStatus>, PanoptoError> {
        self.soap_batched(
            SoapCall::SessionsById,
            "sessionIds",
            ids,
            soap::decode_sessions,
        )
        .await
    }

    async fn recorder_states(&self, ids: &[String]) -> Result<Vec<RemoteRecorder>, PanoptoError> {
        self.soap_batched(
            SoapCall::RemoteRecordersById,
            "remoteRecorderIds",
            ids,
            soap::decode_recorders,
        )
        .await
    }
}
