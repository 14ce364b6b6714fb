//! `/api/v1` handlers: JSON as Canvas renders it, `Link` pagination and the module and
//! module-item mutations.
//!
//! Pagination: `per_page` defaults to 10 and is capped at 100. Enrollments page with opaque
//! bookmarks (`page=bookmark:<base64>`, keyed on the last id, so a walk never repeats or
//! skips a row however the roster changes meanwhile); other lists page by number and also
//! send `rel="last"`. A `page` a client made up for a bookmarked list gets 400.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::oauth::Caller;
use super::params::Params;
use super::server::{App, lock};
use super::world::{
    Assignment, Course, Enrollment, Module, ModuleItem, ModuleItemUpdate, ModuleUpdate,
    NewModuleItem, Origin, RequestOrigin, Section, Submission, User, World, local_part, rfc3339_s,
    to_global,
};
use super::{ApiSimError, IdForm};

const DEFAULT_PER_PAGE: usize = 10;
const MAX_PER_PAGE: usize = 100;
/// Modules with more items than this come without inline `items`, as in Canvas.
const MAX_INLINE_ITEMS: usize = 10;
const NOT_FOUND: &str = "The specified resource does not exist.";
/// Parameter scopes of the write routes: `module_item[...]`, `module[...]`.
const ITEM: &str = "module_item";
const MODULE: &str = "module";

/// How many objects an answer carried; the gate turns it into the request cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemCount(pub(crate) usize);

/// A Canvas error answer: `{"errors": [{"message": ...}]}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, NOT_FOUND)
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "errors": [{ "message": self.message }] }).to_string(),
        )
            .into_response()
    }
}

impl From<ApiSimError> for ApiError {
    fn from(error: ApiSimError) -> Self {
        match error {
            ApiSimError::NotFound { .. } => Self::not_found(),
            ApiSimError::Invalid(message) => Self::bad_request(message),
            ApiSimError::Unsupported(message) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not supported: {message}"),
            ),
            other => Self::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

/// Unknown routes and methods.
pub(crate) async fn not_found() -> Response {
    ApiError::not_found().into_response()
}

/// A JSON answer with its object count and optional `Link` header.
pub(crate) fn json_response(value: &Value, items: usize, link: Option<String>) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        value.to_string(),
    )
        .into_response();
    if let Some(link) = link
        && let Ok(v) = HeaderValue::from_str(&link)
    {
        response.headers_mut().insert(header::LINK, v);
    }
    response.extensions_mut().insert(ItemCount(items));
    response
}

/// How ids and URLs are rendered for one request.
#[derive(Debug, Clone)]
pub(crate) struct Render {
    pub(crate) base: String,
    form: IdForm,
    /// `Accept: application/json+canvas-string-ids`: ids as strings, as Canvas offers for
    /// JavaScript clients (global ids do not fit in a double).
    strings: bool,
}

impl Render {
    pub(crate) fn new(app: &App, headers: &HeaderMap) -> Self {
        let strings = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json+canvas-string-ids"));
        Self {
            base: app.base_url.clone(),
            form: app.config.id_form,
            strings,
        }
    }

    fn number(&self, id: u64) -> u64 {
        match self.form {
            IdForm::Global => id,
            IdForm::Local => local_part(id),
        }
    }

    pub(crate) fn id_text(&self, id: u64) -> String {
        self.number(id).to_string()
    }

    pub(crate) fn id(&self, id: u64) -> Value {
        if self.strings {
            self.id_text(id).into()
        } else {
            self.number(id).into()
        }
    }

    fn opt_id(&self, id: Option<u64>) -> Value {
        id.map_or(Value::Null, |id| self.id(id))
    }

    fn course(&self, w: &World, c: &Course) -> Value {
        json!({
            "id": self.id(c.id),
            "name": c.name,
            "course_code": c.course_code,
            "account_id": self.id(c.account_id),
            "root_account_id": self.id(to_global(w.account_id)),
            "sis_course_id": c.sis_course_id,
            "integration_id": null,
            "uuid": c.uuid,
            "workflow_state": c.api_state(),
            "created_at": rfc3339_s(c.created_at),
            "start_at": null,
            "end_at": null,
            "default_view": "modules",
        })
    }

    fn section(&self, s: &Section) -> Value {
        json!({
            "id": self.id(s.id),
            "course_id": self.id(s.course_id),
            "name": s.name,
            "sis_section_id": s.sis_section_id,
            "integration_id": s.integration_id,
            "start_at": s.start_at,
            "end_at": s.end_at,
            "nonxlist_course_id": self.opt_id(s.nonxlist_course_id),
            "restrict_enrollments_to_section_dates": s.restrict_enrollments_to_section_dates,
            "created_at": rfc3339_s(s.created_at),
        })
    }

    fn user(&self, u: &User) -> Value {
        json!({
            "id": self.id(u.id),
            "name": u.name,
            "created_at": rfc3339_s(u.created_at),
            "sortable_name": u.sortable_name,
            "short_name": u.short_name,
            "sis_user_id": u.sis_user_id,
            "integration_id": null,
            "login_id": u.login_id,
        })
    }

    fn enrollment(&self, w: &World, e: &Enrollment) -> Value {
        let user = w.user(e.user_id);
        json!({
            "id": self.id(e.id),
            "course_id": self.id(e.course_id),
            "course_section_id": self.id(e.course_section_id),
            "user_id": self.id(e.user_id),
            "root_account_id": self.id(to_global(w.account_id)),
            "type": e.enrollment_type,
            "role": e.enrollment_type,
            "role_id": base_role_id(&e.enrollment_type),
            "enrollment_state": e.enrollment_state(),
            "limit_privileges_to_course_section": e.limit_privileges_to_course_section,
            "associated_user_id": self.opt_id(e.associated_user_id),
            "created_at": rfc3339_s(e.created_at),
            "updated_at": rfc3339_s(e.updated_at),
            "start_at": null,
            "end_at": null,
            "sis_course_id": w.course(e.course_id).and_then(|c| c.sis_course_id.clone()),
            "sis_section_id": w.section(e.course_section_id).and_then(|s| s.sis_section_id.clone()),
            "sis_user_id": user.and_then(|u| u.sis_user_id.clone()),
            "html_url": format!(
                "{}/courses/{}/users/{}",
                self.base,
                self.id_text(e.course_id),
                self.id_text(e.user_id)
            ),
            "user": user.map(|u| self.user(u)),
        })
    }

    fn assignment(&self, a: &Assignment) -> Value {
        json!({
            "id": self.id(a.id),
            "course_id": self.id(a.course_id),
            "name": a.name,
            "description": a.description,
            "due_at": a.due_at,
            "lock_at": a.lock_at,
            "unlock_at": a.unlock_at,
            "points_possible": a.points_possible,
            "submission_types": a.submission_types,
            "assignment_group_id": self.opt_id(a.assignment_group_id),
            "workflow_state": a.workflow_state,
            "published": a.workflow_state == "published",
            "created_at": rfc3339_s(a.created_at),
            "updated_at": rfc3339_s(a.updated_at),
            "html_url": format!(
                "{}/courses/{}/assignments/{}",
                self.base,
                self.id_text(a.course_id),
                self.id_text(a.id)
            ),
        })
    }

    fn submission(&self, s: &Submission) -> Value {
        json!({
            "id": self.id(s.id),
            "assignment_id": self.id(s.assignment_id),
            "user_id": self.id(s.user_id),
            "submission_type": s.submission_type,
            "submitted_at": s.submitted_at,
            "grade": s.grade,
            "score": s.score,
            "graded_at": s.graded_at,
            "workflow_state": s.workflow_state,
            "late": s.late,
            "missing": s.missing,
            "attempt": s.attempt,
            "body": s.body,
            "url": s.url,
        })
    }

    fn module(&self, w: &World, m: &Module, include_items: bool) -> (Value, usize) {
        let items = w.items_of(m.id);
        let mut value = json!({
            "id": self.id(m.id),
            "name": m.name,
            "position": m.position,
            "unlock_at": null,
            "require_sequential_progress": false,
            "prerequisite_module_ids": [],
            "publish_final_grade": false,
            "published": m.published(),
            "items_count": items.len(),
            "items_url": format!(
                "{}/api/v1/courses/{}/modules/{}/items",
                self.base,
                self.id_text(m.course_id),
                self.id_text(m.id)
            ),
        });
        let mut count = 1;
        if include_items && items.len() <= MAX_INLINE_ITEMS {
            value["items"] = items.iter().map(|i| self.item(i)).collect();
            count += items.len();
        }
        (value, count)
    }

    fn item(&self, i: &ModuleItem) -> Value {
        let mut value = json!({
            "id": self.id(i.id),
            "module_id": self.id(i.module_id),
            "position": i.position,
            "title": i.title,
            "indent": i.indent,
            "type": i.item_type,
            "html_url": format!(
                "{}/courses/{}/modules/items/{}",
                self.base,
                self.id_text(i.course_id),
                self.id_text(i.id)
            ),
            "published": i.published(),
        });
        if let Some(content) = i.content_id {
            value["content_id"] = self.id(content);
        }
        if i.item_type == "ExternalUrl" {
            value["external_url"] = i.external_url.clone().into();
            value["new_tab"] = i.new_tab.into();
        }
        value
    }
}

/// Canvas's built-in role ids.
fn base_role_id(kind: &str) -> u64 {
    match kind {
        "TeacherEnrollment" => 4,
        "TaEnrollment" => 5,
        "DesignerEnrollment" => 6,
        "ObserverEnrollment" => 7,
        _ => 3,
    }
}

// --- pagination --------------------------------------------------------------------------

fn per_page(params: &Params) -> usize {
    params
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map_or(DEFAULT_PER_PAGE, |n| n.min(MAX_PER_PAGE))
}

fn page_url(url: &str, params: &Params, page: &str, per_page: usize) -> String {
    let kept = params.encode_without(&["page", "per_page"]);
    let sep = if kept.is_empty() { "" } else { "&" };
    format!("{url}?{kept}{sep}page={page}&per_page={per_page}")
}

fn links(url: &str, params: &Params, per_page: usize, rels: &[(&str, String)]) -> String {
    rels.iter()
        .map(|(rel, page)| format!("<{}>; rel=\"{rel}\"", page_url(url, params, page, per_page)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Numbered pages: `page=N` (1-based) with current, next, prev, first and last links.
fn numbered<T: Clone>(
    items: &[T],
    params: &Params,
    url: &str,
) -> Result<(Vec<T>, String), ApiError> {
    let per = per_page(params);
    let page = match params.get("page") {
        None | Some("") | Some("first") => 1,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| ApiError::bad_request(format!("invalid page parameter {raw}")))?,
    };
    let last = items.len().div_ceil(per).max(1);
    let start = (page - 1).saturating_mul(per).min(items.len());
    let end = (start + per).min(items.len());
    let mut rels = vec![("current", page.to_string())];
    if page < last {
        rels.push(("next", (page + 1).to_string()));
    }
    if page > 1 {
        rels.push(("prev", (page - 1).to_string()));
    }
    rels.push(("first", "1".into()));
    rels.push(("last", last.to_string()));
    Ok((items[start..end].to_vec(), links(url, params, per, &rels)))
}

fn bookmark(id: u64) -> String {
    format!("bookmark:{}", URL_SAFE_NO_PAD.encode(format!("[{id}]")))
}

fn parse_bookmark(page: &str) -> Option<u64> {
    let raw = URL_SAFE_NO_PAD
        .decode(page.strip_prefix("bookmark:")?)
        .ok()?;
    let value: Value = serde_json::from_slice(&raw).ok()?;
    value.as_array()?.first()?.as_u64()
}

/// Bookmark pages over items in ascending key order: the next page starts after the last
/// key seen. No `last` link (Canvas cannot know it).
fn bookmarked<T: Clone>(
    items: &[T],
    key: impl Fn(&T) -> u64,
    params: &Params,
    url: &str,
) -> Result<(Vec<T>, String), ApiError> {
    let per = per_page(params);
    let current = params.get("page").unwrap_or("first").to_string();
    let after = match current.as_str() {
        "" | "first" => None,
        raw => Some(parse_bookmark(raw).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid page parameter {raw}: this list pages with bookmarks, follow the Link header"
            ))
        })?),
    };
    let rest: Vec<&T> = items
        .iter()
        .filter(|item| after.is_none_or(|a| key(item) > a))
        .collect();
    let page: Vec<T> = rest.iter().take(per).map(|t| (*t).clone()).collect();
    let mut rels = vec![("current", current)];
    if rest.len() > per
        && let Some(last) = page.last()
    {
        rels.push(("next", bookmark(key(last))));
    }
    rels.push(("first", "first".into()));
    Ok((page, links(url, params, per, &rels)))
}

// --- lookups -----------------------------------------------------------------------------

fn parse_id(raw: &str) -> Option<u64> {
    raw.parse::<u64>().ok().map(to_global)
}

/// A live course by id (either form) or `sis_course_id:<id>`.
fn find_course<'w>(w: &'w World, raw: &str) -> Result<&'w Course, ApiError> {
    let found = match raw.strip_prefix("sis_course_id:") {
        Some(sis) => w
            .courses
            .values()
            .find(|c| c.sis_course_id.as_deref() == Some(sis)),
        None => parse_id(raw).and_then(|id| w.course(id)),
    };
    found
        .filter(|c| !c.is_deleted())
        .ok_or_else(ApiError::not_found)
}

fn find_module<'w>(w: &'w World, course: &Course, raw: &str) -> Result<&'w Module, ApiError> {
    parse_id(raw)
        .and_then(|id| w.module(id))
        .filter(|m| m.course_id == course.id && m.workflow_state != "deleted")
        .ok_or_else(ApiError::not_found)
}

fn params_of(uri: &Uri) -> Params {
    Params::parse(uri.query().unwrap_or_default())
}

fn url_of(app: &App, uri: &Uri) -> String {
    format!("{}{}", app.base_url, uri.path())
}

// --- handlers ----------------------------------------------------------------------------

/// Course `state[]` filter values (REST and live-event forms).
fn course_states(params: &Params) -> Result<Option<Vec<&'static str>>, ApiError> {
    let requested = params.all("state");
    if requested.is_empty() {
        return Ok(None);
    }
    let mut states = Vec::new();
    for state in requested {
        match state {
            "unpublished" => states.extend(["created", "claimed"]),
            "created" => states.push("created"),
            "claimed" => states.push("claimed"),
            "available" => states.push("available"),
            "completed" => states.push("completed"),
            "deleted" => states.push("deleted"),
            "all" => states.extend(["created", "claimed", "available", "completed", "deleted"]),
            other => return Err(ApiError::bad_request(format!("invalid state {other}"))),
        }
    }
    Ok(Some(states))
}

pub(crate) async fn account_courses(
    State(app): State<Arc<App>>,
    Path(account): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = params_of(&uri);
    let render = Render::new(&app, &headers);
    let states = course_states(&params)?;
    let world = lock(&app.world);
    let root = to_global(world.account_id);
    let account = if account == "self" {
        root
    } else {
        parse_id(&account).ok_or_else(ApiError::not_found)?
    };
    if account != root && !world.courses.values().any(|c| c.account_id == account) {
        return Err(ApiError::not_found());
    }
    let courses: Vec<&Course> = world
        .courses
        .values()
        .filter(|c| account == root || c.account_id == account)
        .filter(|c| match &states {
            Some(states) => states.contains(&c.workflow_state.as_str()),
            None => !c.is_deleted(),
        })
        .collect();
    let (page, link) = numbered(&courses, &params, &url_of(&app, &uri))?;
    let body: Value = page.iter().map(|c| render.course(&world, c)).collect();
    Ok(json_response(&body, page.len(), Some(link)))
}

pub(crate) async fn course(
    State(app): State<Arc<App>>,
    Path(course): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let render = Render::new(&app, &headers);
    let world = lock(&app.world);
    let course = find_course(&world, &course)?;
    Ok(json_response(&render.course(&world, course), 1, None))
}

pub(crate) async fn sections(
    State(app): State<Arc<App>>,
    Path(course): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = params_of(&uri);
    let render = Render::new(&app, &headers);
    let world = lock(&app.world);
    let course = find_course(&world, &course)?;
    let index = app.index(&world);
    let sections: Vec<&Section> = index
        .sections(course.id)
        .iter()
        .filter_map(|id| world.sections.get(id))
        .filter(|s| !s.is_deleted())
        .collect();
    let (page, link) = numbered(&sections, &params, &url_of(&app, &uri))?;
    let body: Value = page.iter().map(|s| render.section(s)).collect();
    Ok(json_response(&body, page.len(), Some(link)))
}

pub(crate) async fn section(
    State(app): State<Arc<App>>,
    Path(section): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let render = Render::new(&app, &headers);
    let world = lock(&app.world);
    let section = parse_id(&section)
        .and_then(|id| world.section(id))
        .filter(|s| !s.is_deleted())
        .ok_or_else(ApiError::not_found)?;
    Ok(json_response(&render.section(section), 1, None))
}

/// Enrollment `state[]` values; the default is Canvas's: active and invited.
fn enrollment_states(params: &Params) -> Result<Vec<&'static str>, ApiError> {
    let requested = params.all("state");
    if requested.is_empty() {
        return Ok(vec!["active", "invited"]);
    }
    let mut states = Vec::new();
    for state in requested {
        match state {
            "active" => states.push("active"),
            "invited" => states.push("invited"),
            "inactive" => states.push("inactive"),
            "completed" => states.push("completed"),
            "deleted" => states.push("deleted"),
            "creation_pending" => states.push("creation_pending"),
            "rejected" => states.push("rejected"),
            "current_and_invited" | "current_and_future" => {
                states.extend(["active", "invited"]);
            }
            "current_and_concluded" => states.extend(["active", "completed"]),
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid enrollment state {other}"
                )));
            }
        }
    }
    Ok(states)
}

pub(crate) async fn enrollments(
    State(app): State<Arc<App>>,
    Path(course): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = params_of(&uri);
    let render = Render::new(&app, &headers);
    let states = enrollment_states(&params)?;
    let mut types: Vec<&str> = params.all("type");
    types.extend(params.all("role"));
    let user = params.get("user_id").and_then(parse_id);
    let world = lock(&app.world);
    let course = find_course(&world, &course)?;
    let index = app.index(&world);
    let rows: Vec<&Enrollment> = index
        .enrollments(course.id)
        .iter()
        .filter_map(|id| world.enrollments.get(id))
        .filter(|e| states.contains(&e.workflow_state.as_str()))
        .filter(|e| types.is_empty() || types.contains(&e.enrollment_type.as_str()))
        .filter(|e| user.is_none_or(|u| e.user_id == u))
        .collect();
    let (page, link) = bookmarked(&rows, |e| e.id, &params, &url_of(&app, &uri))?;
    let body: Value = page.iter().map(|e| render.enrollment(&world, e)).collect();
    Ok(json_response(&body, page.len(), Some(link)))
}

pub(crate) async fn user(
    State(app): State<Arc<App>>,
    Path(user): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let render = Render::new(&app, &headers);
    let world = lock(&app.world);
    let id = if user == "self" {
        Some(caller.user_id)
    } else if let Some(sis) = user.strip_prefix("sis_user_id:") {
        world
            .users
            .values()
            .find(|u| u.sis_user_id.as_deref() == Some(sis))
            .map(|u| u.id)
    } else {
        parse_id(&user)
    };
    let user = id
        .and_then(|id| world.user(id))
        .ok_or_else(ApiError::not_found)?;
    Ok(json_response(&render.user(user), 1, None))
}

pub(crate) async fn assignments(
    State(app): State<Arc<App>>,
    Path(course): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = params_of(&uri);
    let render = Render::new(&app, &headers);
    let world = lock(&app.world);
    let course = find_course(&world, &course)?;
    let rows: Vec<&Assignment> = world
        .assignments
        .values()
        .filter(|a| a.course_id == course.id && a.workflow_state != "deleted")
        .collect();
    let (page, link) = numbered(&rows, &params, &url_of(&app, &uri))?;
    let body: Value = page.iter().map(|a| render.assignment(a)).collect();
    Ok(json_response(&body, page.len(), Some(link)))
}

pub(crate) async fn submissions(
    State(app): State<Arc<App>>,
    Path((course, assignment)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = params_of(&uri);
    let render = Render::new(&app, &headers);
    let world = lock(&app.world);
    let course = find_course(&world, &course)?;
    let assignment = parse_id(&assignment)
        .and_then(|id| world.assignments.get(&id))
        .filter(|a| a.course_id == course.id && a.workflow_state != "deleted")
        .ok_or_else(ApiError::not_found)?;
    let rows: Vec<&Submission> = world
        .submissions
        .values()
        .filter(|s| s.assignment_id == assignment.id && s.workflow_state != "deleted")
        .collect();
    let (page, link) = numbered(&rows, &params, &url_of(&app, &uri))?;
    let body: Value = page.iter().map(|s| render.submission(s)).collect();
    Ok(json_response(&body, page.len(), Some(link)))
}

pub(crate) async fn modules(
    State(app): State<Arc<App>>,
    Path(course): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = params_of(&uri);
    let render = Render::new(&app, &headers);
    let include_items = params.all("include").contains(&"items");
    let world = lock(&app.world);
    let course = find_course(&world, &course)?;
    let mut rows: Vec<&Module> = world
        .modules
        .values()
        .filter(|m| m.course_id == course.id && m.workflow_state != "deleted")
        .collect();
    rows.sort_by_key(|m| (m.position, m.id));
    let (page, link) = numbered(&rows, &params, &url_of(&app, &uri))?;
    let mut count = 0;
    let body: Value = page
        .iter()
        .map(|m| {
            let (value, n) = render.module(&world, m, include_items);
            count += n;
            value
        })
        .collect();
    Ok(json_response(&body, count, Some(link)))
}

pub(crate) async fn module(
    State(app): State<Arc<App>>,
    Path((course, module)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = params_of(&uri);
    let render = Render::new(&app, &headers);
    let world = lock(&app.world);
    let course = find_course(&world, &course)?;
    let module = find_module(&world, course, &module)?;
    let include_items = params.all("include").contains(&"items");
    let (value, count) = render.module(&world, module, include_items);
    Ok(json_response(&value, count, None))
}

pub(crate) async fn module_items(
    State(app): State<Arc<App>>,
    Path((course, module)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = params_of(&uri);
    let render = Render::new(&app, &headers);
    let world = lock(&app.world);
    let course = find_course(&world, &course)?;
    let module = find_module(&world, course, &module)?;
    let items = world.items_of(module.id);
    let (page, link) = numbered(&items, &params, &url_of(&app, &uri))?;
    let body: Value = page.iter().map(|i| render.item(i)).collect();
    Ok(json_response(&body, page.len(), Some(link)))
}

pub(crate) async fn module_item(
    State(app): State<Arc<App>>,
    Path((course, module, item)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let render = Render::new(&app, &headers);
    let world = lock(&app.world);
    let course = find_course(&world, &course)?;
    let module = find_module(&world, course, &module)?;
    let item = parse_id(&item)
        .and_then(|id| world.module_item(id))
        .filter(|i| i.module_id == module.id && i.workflow_state != "deleted")
        .ok_or_else(ApiError::not_found)?;
    Ok(json_response(&render.item(item), 1, None))
}

/// `<scope>[...]` parameters (`module_item[title]`, `module[name]`) from a form or JSON
/// body (or the query string).
fn scoped_params(
    scope: &str,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
) -> Result<BTreeMap<String, Value>, ApiError> {
    let prefix = format!("{scope}[");
    let mut out = BTreeMap::new();
    let mut from_pairs = |params: &Params| {
        for (key, value) in params.pairs() {
            if let Some(field) = key
                .strip_prefix(prefix.as_str())
                .and_then(|k| k.strip_suffix(']'))
            {
                out.insert(field.to_string(), Value::String(value.clone()));
            }
        }
    };
    from_pairs(&params_of(uri));
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        if let Some(item) = value.get(scope).and_then(Value::as_object) {
            out.extend(item.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(object) = value.as_object() {
            for (key, v) in object {
                if let Some(field) = key
                    .strip_prefix(prefix.as_str())
                    .and_then(|k| k.strip_suffix(']'))
                {
                    out.insert(field.to_string(), v.clone());
                }
            }
        }
    } else {
        from_pairs(&Params::parse(&String::from_utf8_lossy(body)));
    }
    Ok(out)
}

fn text_param(params: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn bool_param(
    params: &BTreeMap<String, Value>,
    scope: &str,
    key: &str,
) -> Result<Option<bool>, ApiError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) => Ok(Some(n.as_i64() != Some(0))),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Ok(Some(true)),
            "false" | "0" | "off" | "no" | "" => Ok(Some(false)),
            _ => Err(ApiError::bad_request(format!(
                "{scope}[{key}] must be true or false"
            ))),
        },
        Some(_) => Err(ApiError::bad_request(format!(
            "{scope}[{key}] must be true or false"
        ))),
    }
}

fn int_param(
    params: &BTreeMap<String, Value>,
    scope: &str,
    key: &str,
) -> Result<Option<i64>, ApiError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{scope}[{key}] must be an integer"))),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("{scope}[{key}] must be an integer"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "{scope}[{key}] must be an integer"
        ))),
    }
}

fn request_origin(caller: &Caller, method: &Method, uri: &Uri, headers: &HeaderMap) -> Origin {
    Origin::Request(RequestOrigin {
        user_id: caller.user_id,
        developer_key_id: caller.client_id.clone(),
        http_method: method.as_str().to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    })
}

fn ids(course: &str, module: &str) -> Result<(u64, u64), ApiError> {
    Ok((
        parse_id(course).ok_or_else(ApiError::not_found)?,
        parse_id(module).ok_or_else(ApiError::not_found)?,
    ))
}

/// The module as `GET` renders it (also once deleted: `DELETE` answers the deleted module).
fn module_answer(app: &App, headers: &HeaderMap, module: u64) -> Result<Response, ApiError> {
    let render = Render::new(app, headers);
    let world = lock(&app.world);
    let module = world.module(module).ok_or_else(ApiError::not_found)?;
    let (value, count) = render.module(&world, module, false);
    Ok(json_response(&value, count, None))
}

/// `POST /api/v1/courses/:id/modules`: a new unpublished module, last in the course.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn create_module(
    State(app): State<Arc<App>>,
    Path(course): Path<String>,
    Extension(caller): Extension<Caller>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let course = parse_id(&course).ok_or_else(ApiError::not_found)?;
    let params = scoped_params(MODULE, &headers, &uri, &body)?;
    if params.is_empty() {
        return Err(ApiError::bad_request("missing module parameter"));
    }
    let name = text_param(&params, "name").unwrap_or_default();
    let origin = request_origin(&caller, &method, &uri, &headers);
    let id = app.mutate(|w, out| w.add_module(course, &name, &origin, out))?;
    module_answer(&app, &headers, id)
}

/// `PUT /api/v1/courses/:id/modules/:id`: `module[name]`, `module[published]` (which also
/// moves the items unless `module[skip_content_tags]`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn update_module(
    State(app): State<Arc<App>>,
    Path((course, module)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (course, module) = ids(&course, &module)?;
    let params = scoped_params(MODULE, &headers, &uri, &body)?;
    if params.is_empty() {
        return Err(ApiError::bad_request("missing module parameter"));
    }
    let update = ModuleUpdate {
        name: text_param(&params, "name"),
        published: bool_param(&params, MODULE, "published")?,
        skip_content_tags: bool_param(&params, MODULE, "skip_content_tags")?.unwrap_or(false),
    };
    let origin = request_origin(&caller, &method, &uri, &headers);
    app.mutate(|w, out| w.update_module(course, module, &update, &origin, out))?;
    module_answer(&app, &headers, module)
}

/// `DELETE /api/v1/courses/:id/modules/:id`: answers the deleted module; its items go too.
pub(crate) async fn delete_module(
    State(app): State<Arc<App>>,
    Path((course, module)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (course, module) = ids(&course, &module)?;
    let origin = request_origin(&caller, &method, &uri, &headers);
    app.mutate(|w, out| w.delete_module(course, module, &origin, out))?;
    module_answer(&app, &headers, module)
}

fn item_answer(app: &App, headers: &HeaderMap, item: u64) -> Result<Response, ApiError> {
    let render = Render::new(app, headers);
    let world = lock(&app.world);
    let item = world.module_item(item).ok_or_else(ApiError::not_found)?;
    Ok(json_response(&render.item(item), 1, None))
}

/// `POST /api/v1/courses/:id/modules/:id/items`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn create_module_item(
    State(app): State<Arc<App>>,
    Path((course, module)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (course, module) = ids(&course, &module)?;
    let params = scoped_params(ITEM, &headers, &uri, &body)?;
    if params.is_empty() {
        return Err(ApiError::bad_request("missing module item parameter"));
    }
    let new = NewModuleItem {
        item_type: text_param(&params, "type"),
        title: text_param(&params, "title"),
        external_url: text_param(&params, "external_url"),
        position: int_param(&params, ITEM, "position")?,
        new_tab: bool_param(&params, ITEM, "new_tab")?.unwrap_or(false),
        indent: int_param(&params, ITEM, "indent")?,
    };
    let origin = request_origin(&caller, &method, &uri, &headers);
    let id = app.mutate(|w, out| w.add_module_item(course, module, &new, &origin, out))?;
    item_answer(&app, &headers, id)
}

/// `PUT /api/v1/courses/:id/modules/:id/items/:id`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn update_module_item(
    State(app): State<Arc<App>>,
    Path((course, module, item)): Path<(String, String, String)>,
    Extension(caller): Extension<Caller>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (course, module) = ids(&course, &module)?;
    let item = parse_id(&item).ok_or_else(ApiError::not_found)?;
    let params = scoped_params(ITEM, &headers, &uri, &body)?;
    let update = ModuleItemUpdate {
        title: text_param(&params, "title"),
        position: int_param(&params, ITEM, "position")?,
        published: bool_param(&params, ITEM, "published")?,
        indent: int_param(&params, ITEM, "indent")?,
        external_url: text_param(&params, "external_url"),
        new_tab: bool_param(&params, ITEM, "new_tab")?,
    };
    let origin = request_origin(&caller, &method, &uri, &headers);
    app.mutate(|w, out| w.update_module_item(course, module, item, &update, &origin, out))?;
    item_answer(&app, &headers, item)
}

/// `DELETE /api/v1/courses/:id/modules/:id/items/:id`: answers the deleted item.
pub(crate) async fn delete_module_item(
    State(app): State<Arc<App>>,
    Path((course, module, item)): Path<(String, String, String)>,
    Extension(caller): Extension<Caller>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (course, module) = ids(&course, &module)?;
    let item = parse_id(&item).ok_or_else(ApiError::not_found)?;
    let origin = request_origin(&caller, &method, &uri, &headers);
    app.mutate(|w, out| w.delete_module_item(course, module, item, &origin, out))?;
    item_answer(&app, &headers, item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookmarks_round_trip_and_reject_page_numbers() {
        let b = bookmark(21_070_000_000_046_825);
        assert!(b.starts_with("bookmark:"));
        assert_eq!(parse_bookmark(&b), Some(21_070_000_000_046_825));
        assert_eq!(parse_bookmark("2"), None);
        let params = Params::parse("page=2&per_page=2");
        let items: Vec<u64> = (1..=5).collect();
        assert!(bookmarked(&items, |i| *i, &params, "http://x/api").is_err());
    }

    #[test]
    fn numbered_pages_link_next_prev_last() {
        let items: Vec<u64> = (1..=25).collect();
        let params = Params::parse("state%5B%5D=active&page=2&per_page=10");
        let (page, link) = numbered(&items, &params, "http://x/api/v1/things").expect("page");
        assert_eq!(page, (11..=20).collect::<Vec<_>>());
        assert!(link.contains(
            "<http://x/api/v1/things?state%5B%5D=active&page=3&per_page=10>; rel=\"next\""
        ));
        assert!(link.contains("page=1&per_page=10>; rel=\"prev\""));
        assert!(link.contains("page=3&per_page=10>; rel=\"last\""));
    }
}
