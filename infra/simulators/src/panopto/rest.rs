//! The REST endpoints (`/Panopto/api/v1`) and the token endpoint, answering Panopto-shaped
//! JSON: PascalCase objects, `{"Results": [...]}` pages of 50 (`pageNumber` from 0) and
//! `APIError` bodies on failure.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::PanoptoSimError;
use super::multipart;
use super::server::{App, TOKEN_ENDPOINT, lock};
use super::world::{
    Booking, BookingError, Caption, Folder, Grant, Recorder, Role, Schedule, Session, SessionState,
    User, World,
};

/// The Panopto user API calls act as (`CreatedBy`, `CreatorId`).
pub(crate) const API_USER_ID: &str = "00000000-0000-0000-0000-0000000000a1";
const NIL_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// Panopto's `ContentLanguage` names.
const LANGUAGES: [&str; 31] = [
    "English_USA",
    "English_GBR",
    "Spanish_MEX",
    "Spanish_ESP",
    "German",
    "French",
    "Dutch",
    "Thai",
    "Chinese_Simplified",
    "Chinese_Traditional",
    "Korean",
    "Japanese",
    "Russian",
    "Portuguese",
    "Polish",
    "English_AUS",
    "Danish",
    "Finnish",
    "Hungarian",
    "Norwegian",
    "Swedish",
    "Italian",
    "Welsh",
    "Catalan",
    "Galician",
    "Basque",
    "Arabic",
    "Hindi",
    "French_CAN",
    "Hebrew",
    "Vietnamese",
];

type Answer = Result<Response, ApiError>;

/// A refusal as Panopto words it: an `APIError` body with its status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "Error": {
                "ErrorCode": self.code,
                "Message": self.message,
                "Success": false,
                "ErrorSource": "panopto-sim",
            }
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

// --- answers ---------------------------------------------------------------------------

fn api_error(status: StatusCode, code: &'static str, message: &str) -> ApiError {
    ApiError {
        status,
        code,
        message: message.to_string(),
    }
}

fn bad_request(message: &str) -> ApiError {
    api_error(StatusCode::BAD_REQUEST, "InvalidArgument", message)
}

fn missing(kind: &str, id: &str) -> ApiError {
    api_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("The requested {kind} {id} was not found"),
    )
}

fn ok(value: Value) -> Answer {
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        value.to_string(),
    )
        .into_response())
}

fn sim_error(e: PanoptoSimError) -> ApiError {
    match e {
        PanoptoSimError::NotFound { kind, id } => missing(kind, &id),
        other => bad_request(&other.to_string()),
    }
}

pub(crate) async fn not_found() -> Response {
    api_error(StatusCode::NOT_FOUND, "NotFound", "No such endpoint").into_response()
}

pub(crate) async fn method_not_allowed() -> Response {
    api_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "The requested resource does not support this method",
    )
    .into_response()
}

pub(crate) fn injected(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    api_error(
        code,
        "ServerError",
        "The service is temporarily unavailable",
    )
    .into_response()
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

// --- request pieces --------------------------------------------------------------------

/// Query parameters, names case-insensitive as ASP.NET binds them.
struct Params(HashMap<String, String>);

impl Params {
    fn new(pairs: Vec<(String, String)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    fn page(&self) -> Result<usize, ApiError> {
        match self.get("pageNumber") {
            None => Ok(0),
            Some(p) => p
                .parse()
                .map_err(|_| bad_request("pageNumber must be a whole number")),
        }
    }

    fn flag(&self, name: &str, required: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None if required => Err(bad_request(&format!("{name} is required"))),
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(bad_request(&format!("{name} must be true or false"))),
        }
    }

    fn search(&self) -> Result<String, ApiError> {
        self.get("searchQuery")
            .map(str::to_lowercase)
            .ok_or_else(|| bad_request("searchQuery is required"))
    }
}

fn guid(id: &str) -> Result<(), ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| bad_request(&format!("The value '{id}' is not valid.")))
}

fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| bad_request(&format!("The request body is invalid: {e}")))
}

fn results(items: Vec<Value>, page: usize) -> Answer {
    ok(json!({ "Results": World::page(&items, page) }))
}

// --- rendering -------------------------------------------------------------------------

fn session_json(world: &World, s: &Session, base: &str, full: bool) -> Value {
    let folder = world.folders.get(&s.folder_id);
    let viewer = format!("{base}/Panopto/Pages/Viewer.aspx?id={}", s.id);
    let urls = if full {
        let captions = (!s.captions.is_empty()).then(|| {
            format!(
                "{base}/Panopto/Pages/Transcription/GenerateSRT.ashx?id={}&language=0",
                s.id
            )
        });
        json!({
            "ViewerUrl": viewer,
            "EmbedUrl": format!("{base}/Panopto/Pages/Embed.aspx?id={}", s.id),
            "ShareSettingsUrl": format!("{base}/Panopto/Pages/Sessions/Share.aspx?id={}", s.id),
            "DownloadUrl": s.duration().map(|_| format!("{base}/Panopto/Podcast/Download/{}.mp4", s.id)),
            "CaptionDownloadUrl": captions,
            "EditorUrl": format!("{base}/Panopto/Pages/Editor.aspx?id={}", s.id),
            "ThumbnailUrl": format!("{base}/Panopto/Services/FrameGrabber.svc/FrameRedirect?objectId={}", s.id),
        })
    } else {
        json!({ "ViewerUrl": viewer, "ThumbnailUrl": null })
    };
    let mut value = json!({
        "Id": s.id,
        "Name": s.name,
        "Description": s.description,
        "StartTime": time(s.start_time()),
        "Duration": s.duration(),
        "MostRecentViewPosition": null,
        "Urls": urls,
        "Folder": s.folder_id,
        "FolderDetails": folder.map(|f| json!({ "Id": f.id, "Name": f.name })),
        "Context": null,
        "PercentCompleted": null,
    });
    if full {
        value["CreatedBy"] = json!({ "Id": API_USER_ID, "Username": "coursewire-api" });
    }
    value
}

fn folder_json(world: &World, f: &Folder, base: &str) -> Value {
    let parent = f
        .parent
        .as_ref()
        .and_then(|p| world.folders.get(p))
        .map(|p| json!({ "Id": p.id, "Name": p.name }));
    json!({
        "Id": f.id,
        "Name": f.name,
        "Description": f.description,
        "ParentFolder": parent,
        "Urls": {
            "FolderUrl": format!("{base}/Panopto/Pages/Sessions/List.aspx#folderID=%22{}%22", f.id),
            "EmbedUrl": format!("{base}/Panopto/Pages/Embed/List.aspx?folderID={}", f.id),
            "ShareSettingsUrl": format!("{base}/Panopto/Pages/Sessions/Share.aspx?folderID={}", f.id),
        },
    })
}

fn recorder_json(world: &World, r: &Recorder) -> Value {
    json!({
        "Id": r.id,
        "Name": r.name,
        "State": world.recorder_state(&r.id).map(|s| s.as_str()),
        "DefaultRecordingFolder": r.default_folder.as_ref().and_then(|f| world.folders.get(f))
            .map(|f| json!({ "Id": f.id, "Name": f.name })),
    })
}

fn scheduled_json(world: &World, s: &Session, schedule: &Schedule) -> Value {
    let recorder = world.recorders.get(&schedule.recorder_id);
    json!({
        "Id": s.id,
        "Name": s.name,
        "RecorderScheduleEntries": [{
            "Id": schedule.recorder_id,
            "Name": recorder.map(|r| r.name.as_str()),
            "RecorderId": schedule.recorder_id,
            "SuppressPrimaryCapture": schedule.suppress_primary,
            "SuppressSecondaryCapture": schedule.suppress_secondary,
            "RecorderDescription": null,
        }],
        "StartTime": time(schedule.start),
        "EndTime": time(schedule.end),
    })
}

fn permission_json(g: &Grant) -> Value {
    json!({
        "IsInherited": false,
        "Principal": { "Id": g.principal_id, "Type": g.principal_type },
        "Role": { "Id": g.role.id(), "Name": g.role.name() },
    })
}

// --- the token endpoint ----------------------------------------------------------------

/// `POST /Panopto/oauth2/connect/token`: client credentials in the form or Basic auth.
pub(crate) async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    app.count(TOKEN_ENDPOINT);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        });
    let (client_id, client_secret) = match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (field("client_id"), field("client_secret")),
    };
    let now = app.now();
    let granted = lock(&app.tokens).grant(
        field("grant_type").as_deref(),
        client_id.as_deref(),
        client_secret.as_deref(),
        now,
    );
    match granted {
        Ok((access_token, expires_in)) => {
            lock(&app.stats).tokens_issued += 1;
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                json!({
                    "access_token": access_token,
                    "expires_in": expires_in,
                    "token_type": "Bearer",
                    "scope": "api",
                })
                .to_string(),
            )
                .into_response()
        }
        Err(refusal) => {
            lock(&app.stats).token_refusals += 1;
            (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                json!({ "error": refusal.code() }).to_string(),
            )
                .into_response()
        }
    }
}

// --- sessions --------------------------------------------------------------------------

pub(crate) async fn get_session(State(app): State<Arc<App>>, Path(id): Path<String>) -> Answer {
    guid(&id)?;
    let world = app.world();
    let s = world
        .sessions
        .get(&id)
        .ok_or_else(|| missing("session", &id))?;
    ok(session_json(&world, s, &app.base_url, true))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SessionUpdateBody {
    name: Option<String>,
    description: Option<String>,
    folder: Option<String>,
}

pub(crate) async fn update_session(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Answer {
    guid(&id)?;
    let update: SessionUpdateBody = body(&bytes)?;
    let mut world = app.world();
    if !world.sessions.contains_key(&id) {
        return Err(missing("session", &id));
    }
    if let Some(folder) = &update.folder
        && !world.folders.contains_key(folder)
    {
        return Err(bad_request(&format!("The folder {folder} does not exist")));
    }
    world
        .update_session(
            &id,
            update.name.as_deref(),
            update.description.as_deref(),
            update.folder.as_deref(),
        )
        .map_err(sim_error)?;
    let s = world
        .sessions
        .get(&id)
        .ok_or_else(|| missing("session", &id))?;
    ok(session_json(&world, s, &app.base_url, true))
}

pub(crate) async fn delete_session(State(app): State<Arc<App>>, Path(id): Path<String>) -> Answer {
    guid(&id)?;
    if !app.world().delete_session(&id) {
        return Err(missing("session", &id));
    }
    ok(json!(id))
}

fn sorted_sessions<'a>(
    mut sessions: Vec<&'a Session>,
    params: &Params,
) -> Result<Vec<&'a Session>, ApiError> {
    match params.get("sortField").unwrap_or("Name") {
        f if f.eq_ignore_ascii_case("CreatedDate") => {
            sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
        }
        f if f.eq_ignore_ascii_case("Name") || f.eq_ignore_ascii_case("Relevance") => {
            sessions.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)))
        }
        other => return Err(bad_request(&format!("sortField '{other}' is not valid"))),
    }
    match params.get("sortOrder").unwrap_or("Asc") {
        o if o.eq_ignore_ascii_case("Asc") => {}
        o if o.eq_ignore_ascii_case("Desc") => sessions.reverse(),
        other => return Err(bad_request(&format!("sortOrder '{other}' is not valid"))),
    }
    Ok(sessions)
}

fn session_page(
    app: &App,
    world: &World,
    filter: impl Fn(&Session) -> bool,
    params: &Params,
) -> Answer {
    let page = params.page()?;
    let chosen = sorted_sessions(
        world.sessions.values().filter(|s| filter(s)).collect(),
        params,
    )?;
    let listed = world
        .listed(chosen)
        .into_iter()
        .map(|s| session_json(world, s, &app.base_url, false))
        .collect();
    results(listed, page)
}

pub(crate) async fn search_sessions(
    State(app): State<Arc<App>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let params = Params::new(query);
    let search = params.search()?;
    let world = app.world();
    session_page(
        &app,
        &world,
        |s| {
            s.name.to_lowercase().contains(&search)
                || s.description
                    .as_deref()
                    .is_some_and(|d| d.to_lowercase().contains(&search))
        },
        &params,
    )
}

pub(crate) async fn in_progress(
    State(app): State<Arc<App>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let params = Params::new(query);
    let world = app.world();
    session_page(
        &app,
        &world,
        |s| s.state == SessionState::Recording,
        &params,
    )
}

pub(crate) async fn upload_captions(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    guid(&id)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multipart::boundary(content_type)
        .ok_or_else(|| bad_request("Content should be sent as 'multipart/form-data'"))?;
    let parts = multipart::parse(&bytes, &boundary).map_err(|e| bad_request(&e))?;
    let language = parts
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case("language") && p.file_name.is_none())
        .map(|p| String::from_utf8_lossy(&p.data).trim().to_string())
        .or_else(|| Params::new(query).get("language").map(str::to_string))
        .unwrap_or_else(|| "English_USA".to_string());
    if !LANGUAGES.contains(&language.as_str()) {
        return Err(bad_request(&format!(
            "'{language}' is not a ContentLanguage"
        )));
    }
    let file = parts
        .into_iter()
        .find(|p| p.file_name.is_some())
        .filter(|p| !p.data.is_empty())
        .ok_or_else(|| bad_request("No caption file was attached"))?;
    let now = app.now();
    let mut world = app.world();
    let session = world
        .sessions
        .get_mut(&id)
        .ok_or_else(|| missing("session", &id))?;
    // A new upload replaces the captions of that language.
    session
        .captions
        .retain(|c| !(c.provider.is_none() && c.language == language));
    session.captions.push(Caption {
        language,
        provider: None,
        content: file.data,
        added_at: now,
    });
    Ok(StatusCode::OK.into_response())
}

// --- permissions (sessions and folders) -----------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PermissionBody {
    role_id: Option<String>,
    role_type: Option<String>,
    principal_id: Option<String>,
    principal_type: Option<String>,
}

fn principal_type(text: Option<&str>) -> Result<String, ApiError> {
    match text {
        Some(t) if t.eq_ignore_ascii_case("User") => Ok("User".into()),
        Some(t) if t.eq_ignore_ascii_case("Group") => Ok("Group".into()),
        _ => Err(bad_request("PrincipalType must be User or Group")),
    }
}

fn grant_from(b: &PermissionBody) -> Result<Grant, ApiError> {
    let principal_id = b
        .principal_id
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| bad_request("PrincipalId is required"))?;
    guid(&principal_id)?;
    let role = Role::parse(b.role_type.as_deref(), b.role_id.as_deref())
        .ok_or_else(|| bad_request("RoleId or RoleType must name a role"))?;
    Ok(Grant {
        principal_id,
        principal_type: principal_type(b.principal_type.as_deref())?,
        role,
    })
}

fn grant(grants: &mut Vec<Grant>, bytes: &[u8]) -> Answer {
    let grant = grant_from(&body::<PermissionBody>(bytes)?)?;
    if !grants.contains(&grant) {
        grants.push(grant.clone());
    }
    ok(permission_json(&grant))
}

fn revoke(grants: &mut Vec<Grant>, query: Vec<(String, String)>) -> Answer {
    let params = Params::new(query);
    let principal_id = params
        .get("PrincipalId")
        .ok_or_else(|| bad_request("PrincipalId is required"))?
        .to_string();
    let kind = principal_type(params.get("PrincipalType"))?;
    let role = match (params.get("RoleType"), params.get("RoleId")) {
        (None, None) => None,
        (Some(t), _) if t.eq_ignore_ascii_case("None") && params.get("RoleId").is_none() => None,
        (t, id) => Some(Role::parse(t, id).ok_or_else(|| bad_request("unknown role"))?),
    };
    let before = grants.len();
    grants.retain(|g| {
        !(g.principal_id == principal_id
            && g.principal_type == kind
            && role.is_none_or(|r| r == g.role))
    });
    if grants.len() == before {
        return Err(missing("permission for principal", &principal_id));
    }
    ok(json!({
        "RoleId": role.map(|r| r.id()),
        "RoleType": role.map(|r| r.name()),
        "PrincipalId": principal_id,
        "PrincipalType": kind,
    }))
}

pub(crate) async fn session_permissions(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    guid(&id)?;
    let page = Params::new(query).page()?;
    let world = app.world();
    let s = world
        .sessions
        .get(&id)
        .ok_or_else(|| missing("session", &id))?;
    results(s.permissions.iter().map(permission_json).collect(), page)
}

pub(crate) async fn grant_session_permission(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Answer {
    guid(&id)?;
    let mut world = app.world();
    let s = world
        .sessions
        .get_mut(&id)
        .ok_or_else(|| missing("session", &id))?;
    grant(&mut s.permissions, &bytes)
}

pub(crate) async fn revoke_session_permission(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    guid(&id)?;
    let mut world = app.world();
    let s = world
        .sessions
        .get_mut(&id)
        .ok_or_else(|| missing("session", &id))?;
    revoke(&mut s.permissions, query)
}

pub(crate) async fn folder_permissions(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    guid(&id)?;
    let page = Params::new(query).page()?;
    let world = app.world();
    let f = world
        .folders
        .get(&id)
        .ok_or_else(|| missing("folder", &id))?;
    results(f.permissions.iter().map(permission_json).collect(), page)
}

pub(crate) async fn grant_folder_permission(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Answer {
    guid(&id)?;
    let mut world = app.world();
    let f = world
        .folders
        .get_mut(&id)
        .ok_or_else(|| missing("folder", &id))?;
    grant(&mut f.permissions, &bytes)
}

pub(crate) async fn revoke_folder_permission(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    guid(&id)?;
    let mut world = app.world();
    let f = world
        .folders
        .get_mut(&id)
        .ok_or_else(|| missing("folder", &id))?;
    revoke(&mut f.permissions, query)
}

// --- folders ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FolderCreateBody {
    name: Option<String>,
    description: Option<String>,
    parent: Option<String>,
}

pub(crate) async fn create_folder(State(app): State<Arc<App>>, bytes: Bytes) -> Answer {
    let create: FolderCreateBody = body(&bytes)?;
    let name = create
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| bad_request("Name is required"))?;
    let parent = create.parent.filter(|p| p != NIL_GUID);
    let now = app.now();
    let mut world = app.world();
    if let Some(parent) = &parent
        && !world.folders.contains_key(parent)
    {
        return Err(bad_request(&format!(
            "The parent folder {parent} does not exist"
        )));
    }
    let id = world
        .add_folder(&name, parent.as_deref(), create.description.as_deref(), now)
        .map_err(sim_error)?;
    let folder = world
        .folders
        .get(&id)
        .ok_or_else(|| missing("folder", &id))?;
    ok(folder_json(&world, folder, &app.base_url))
}

pub(crate) async fn get_folder(State(app): State<Arc<App>>, Path(id): Path<String>) -> Answer {
    guid(&id)?;
    let world = app.world();
    let f = world
        .folders
        .get(&id)
        .ok_or_else(|| missing("folder", &id))?;
    ok(folder_json(&world, f, &app.base_url))
}

fn folder_page(app: &App, world: &World, filter: impl Fn(&Folder) -> bool, page: usize) -> Answer {
    let mut folders: Vec<&Folder> = world.folders.values().filter(|f| filter(f)).collect();
    folders.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    results(
        folders
            .into_iter()
            .map(|f| folder_json(world, f, &app.base_url))
            .collect(),
        page,
    )
}

pub(crate) async fn folder_children(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    guid(&id)?;
    let page = Params::new(query).page()?;
    let world = app.world();
    if !world.folders.contains_key(&id) {
        return Err(missing("folder", &id));
    }
    folder_page(
        &app,
        &world,
        |f| f.parent.as_deref() == Some(id.as_str()),
        page,
    )
}

pub(crate) async fn search_folders(
    State(app): State<Arc<App>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let params = Params::new(query);
    let search = params.search()?;
    let world = app.world();
    folder_page(
        &app,
        &world,
        |f| f.name.to_lowercase().contains(&search),
        params.page()?,
    )
}

pub(crate) async fn folder_sessions(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    guid(&id)?;
    let params = Params::new(query);
    let world = app.world();
    if !world.folders.contains_key(&id) {
        return Err(missing("folder", &id));
    }
    session_page(&app, &world, |s| s.folder_id == id, &params)
}

fn settings_json(world: &World, f: &Folder) -> Value {
    let provider = f
        .caption_provider
        .as_ref()
        .and_then(|p| world.providers.iter().find(|x| &x.id == p));
    json!({
        "AutomaticCaptionProviderId": provider.map_or(NIL_GUID, |p| p.id.as_str()),
        "AutomaticCaptionProviderName": provider.map(|p| p.name.as_str()),
    })
}

pub(crate) async fn folder_settings(State(app): State<Arc<App>>, Path(id): Path<String>) -> Answer {
    guid(&id)?;
    let world = app.world();
    let f = world
        .folders
        .get(&id)
        .ok_or_else(|| missing("folder", &id))?;
    ok(settings_json(&world, f))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FolderSettingsBody {
    automatic_caption_provider_id: Option<String>,
}

pub(crate) async fn update_folder_settings(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Answer {
    guid(&id)?;
    let settings: FolderSettingsBody = body(&bytes)?;
    let provider = settings
        .automatic_caption_provider_id
        .ok_or_else(|| bad_request("AutomaticCaptionProviderId is required"))?;
    let mut world = app.world();
    let provider = if provider == NIL_GUID {
        None
    } else if world.providers.iter().any(|p| p.id == provider) {
        Some(provider)
    } else {
        return Err(bad_request(&format!(
            "No caption provider has the id {provider}"
        )));
    };
    let f = world
        .folders
        .get_mut(&id)
        .ok_or_else(|| missing("folder", &id))?;
    f.caption_provider = provider;
    let f = f.clone();
    ok(settings_json(&world, &f))
}

pub(crate) async fn caption_providers(
    State(app): State<Arc<App>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let page = Params::new(query).page()?;
    let world = app.world();
    results(
        world
            .providers
            .iter()
            .map(|p| json!({ "Id": p.id, "Name": p.name, "DisplayName": p.name, "Enabled": true }))
            .collect(),
        page,
    )
}

// --- users -----------------------------------------------------------------------------

/// Panopto's `User`: its id and its username, which is the user key.
fn user_json(u: &User) -> Value {
    json!({ "Id": u.id, "Username": u.user_key })
}

/// `GET /users/search?searchQuery=`: users whose key, name or email contains the query
/// (case-insensitively), by user key; pages of 50 unless the site ignores paging there.
pub(crate) async fn search_users(
    State(app): State<Arc<App>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let params = Params::new(query);
    let search = params.search()?;
    let page = params.page()?;
    let world = app.world();
    let users: Vec<Value> = world
        .search_users(&search)
        .into_iter()
        .map(user_json)
        .collect();
    if world.users_search_ignores_paging {
        return ok(json!({ "Results": users }));
    }
    results(users, page)
}

// --- remote recorders and scheduled recordings -----------------------------------------

pub(crate) async fn search_recorders(
    State(app): State<Arc<App>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let params = Params::new(query);
    let search = params.search()?;
    let page = params.page()?;
    let world = app.world();
    let mut recorders: Vec<&Recorder> = world
        .recorders
        .values()
        .filter(|r| r.name.to_lowercase().contains(&search))
        .collect();
    recorders.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    if params
        .get("sortOrder")
        .is_some_and(|o| o.eq_ignore_ascii_case("Desc"))
    {
        recorders.reverse();
    }
    results(
        recorders
            .into_iter()
            .map(|r| recorder_json(&world, r))
            .collect(),
        page,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecorderBody {
    remote_recorder_id: Option<String>,
    #[serde(default)]
    suppress_primary: bool,
    #[serde(default)]
    suppress_secondary: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduledCreateBody {
    name: Option<String>,
    description: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
    folder_id: Option<String>,
    #[serde(default)]
    recorders: Vec<RecorderBody>,
    is_broadcast: Option<bool>,
}

fn required_time(text: Option<&str>, name: &str) -> Result<DateTime<Utc>, ApiError> {
    text.and_then(parse_time)
        .ok_or_else(|| bad_request(&format!("{name} is required and must be a date-time")))
}

fn booking_error(e: BookingError) -> ApiError {
    match e {
        BookingError::Invalid(message) => bad_request(&message),
        BookingError::NotFound(what) => api_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("The requested {what} was not found"),
        ),
        BookingError::Conflict {
            session_id,
            session_name,
            recorder_id,
        } => api_error(
            StatusCode::BAD_REQUEST,
            "RecordingConflict",
            &format!(
                "The recording conflicts with session '{session_name}' ({session_id}) on remote \
                 recorder {recorder_id}"
            ),
        ),
    }
}

fn scheduled_answer(world: &World, id: &str) -> Answer {
    let session = world
        .sessions
        .get(id)
        .ok_or_else(|| missing("scheduled entry", id))?;
    let schedule = session
        .schedule
        .as_ref()
        .ok_or_else(|| missing("scheduled entry", id))?;
    ok(scheduled_json(world, session, schedule))
}

pub(crate) async fn create_scheduled_recording(
    State(app): State<Arc<App>>,
    Query(query): Query<Vec<(String, String)>>,
    bytes: Bytes,
) -> Answer {
    let resolve = Params::new(query).flag("resolveConflicts", true)?;
    let create: ScheduledCreateBody = body(&bytes)?;
    let name = create
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| bad_request("Name is required"))?;
    let folder_id = create
        .folder_id
        .ok_or_else(|| bad_request("FolderId is required"))?;
    guid(&folder_id)?;
    let start = required_time(create.start_time.as_deref(), "StartTime")?;
    let end = required_time(create.end_time.as_deref(), "EndTime")?;
    let is_broadcast = create
        .is_broadcast
        .ok_or_else(|| bad_request("IsBroadcast is required"))?;
    let [recorder] = create.recorders.as_slice() else {
        return Err(bad_request("Exactly one remote recorder can be specified"));
    };
    let recorder_id = recorder
        .remote_recorder_id
        .clone()
        .ok_or_else(|| bad_request("RemoteRecorderId is required"))?;
    guid(&recorder_id)?;
    let booking = Booking {
        name,
        description: create.description,
        folder_id: folder_id.clone(),
        schedule: Schedule {
            recorder_id,
            start,
            end,
            suppress_primary: recorder.suppress_primary,
            suppress_secondary: recorder.suppress_secondary,
            is_broadcast,
        },
    };
    let now = app.now();
    let mut world = app.world();
    let id = match world.book(booking, resolve, now) {
        Ok(id) => id,
        // An unknown folder or recorder is a bad request here, not a missing booking.
        Err(BookingError::NotFound(what)) => {
            return Err(bad_request(&format!("The {what} does not exist")));
        }
        Err(e) => return Err(booking_error(e)),
    };
    scheduled_answer(&world, &id)
}

pub(crate) async fn get_scheduled_recording(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Answer {
    guid(&id)?;
    scheduled_answer(&app.world(), &id)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduledUpdateBody {
    start_time: Option<String>,
    end_time: Option<String>,
}

pub(crate) async fn update_scheduled_recording(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    bytes: Bytes,
) -> Answer {
    guid(&id)?;
    let resolve = Params::new(query).flag("resolveConflicts", false)?;
    let update: ScheduledUpdateBody = body(&bytes)?;
    let now = app.now();
    let mut world = app.world();
    let current = world
        .sessions
        .get(&id)
        .and_then(|s| s.schedule.clone())
        .ok_or_else(|| missing("scheduled entry", &id))?;
    let start = match update.start_time.as_deref() {
        Some(t) => parse_time(t).ok_or_else(|| bad_request("StartTime must be a date-time"))?,
        None => current.start,
    };
    let end = match update.end_time.as_deref() {
        Some(t) => parse_time(t).ok_or_else(|| bad_request("EndTime must be a date-time"))?,
        None => current.end,
    };
    world
        .reschedule(&id, start, end, resolve, now)
        .map_err(booking_error)?;
    scheduled_answer(&world, &id)
}

pub(crate) async fn delete_scheduled_recording(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Answer {
    guid(&id)?;
    let now = app.now();
    app.world()
        .cancel_booking(&id, now)
        .map_err(booking_error)?;
    ok(json!(id))
}
