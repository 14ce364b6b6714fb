//! The simulator's axum server, the gate every request passes (counting, forced 429s,
//! latency, bearer auth, the request budget, injected errors) and the scenario controls.

use crate::serving::Serving;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};

use super::clock::SimClock;
use super::oauth::Tokens;
use super::throttle::{RequestBudget, Throttle, retry_after_secs};
use super::world::{
    CaptionPlan, CaptionProvider, RecorderFault, RecorderState, Session, SessionState, World,
    not_found,
};
use super::{CAPTION_PROVIDERS, PanoptoSimConfig, PanoptoSimError, rest, soap};

/// Counter key of the token endpoint.
pub const TOKEN_ENDPOINT: &str = "POST /oauth2/connect/token";
/// Counter key of the REST user search (every REST route counts as `"{method} {route}"`).
pub const REST_SEARCH_USERS: &str = "GET /api/v1/users/search";
/// Counter keys of the SOAP calls.
pub const SOAP_GET_SESSIONS_BY_ID: &str = "SOAP ISessionManagement/GetSessionsById";
pub const SOAP_GET_RECORDERS_BY_ID: &str = "SOAP IRemoteRecorderManagement/GetRemoteRecordersById";
pub const SOAP_GET_ALL_FOLDERS_BY_EXTERNAL_ID: &str =
    "SOAP ISessionManagement/GetAllFoldersByExternalId";
pub const SOAP_UPDATE_FOLDER_EXTERNAL_ID: &str =
    "SOAP ISessionManagement/UpdateFolderExternalIdWithProvider";

/// Locks a simulator mutex; a panicked holder (a failed test) does not poison the rest.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the simulator answered, by endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PanoptoStats {
    /// Requests by endpoint: `"GET /api/v1/sessions/{id}"` (the route, without
    /// `/Panopto`), [`SOAP_GET_SESSIONS_BY_ID`], [`TOKEN_ENDPOINT`] ...; every answer counts.
    pub requests: BTreeMap<String, u64>,
    pub tokens_issued: u64,
    pub token_refusals: u64,
    /// 401 answers (missing, unknown or expired token).
    pub unauthorized: u64,
    /// 429 answers (budget or forced).
    pub throttled: u64,
    pub soap_faults: u64,
    pub injected_errors: u64,
}

impl PanoptoStats {
    pub fn count(&self, endpoint: &str) -> u64 {
        self.requests.get(endpoint).copied().unwrap_or(0)
    }

    /// REST and SOAP requests (the token endpoint not counted).
    pub fn api_requests(&self) -> u64 {
        self.requests
            .iter()
            .filter(|(k, _)| k.as_str() != TOKEN_ENDPOINT)
            .map(|(_, n)| n)
            .sum()
    }
}

#[derive(Debug)]
struct Faults {
    pending: usize,
    status: u16,
    latency: Duration,
}

/// State shared by every handler.
pub(crate) struct App {
    pub(crate) base_url: String,
    pub(crate) clock: Arc<SimClock>,
    world: Mutex<World>,
    pub(crate) tokens: Mutex<Tokens>,
    /// SOAP users' passwords by user key (an administrator may change one).
    pub(crate) soap_users: Mutex<BTreeMap<String, String>>,
    pub(crate) throttle: Mutex<Throttle>,
    pub(crate) stats: Mutex<PanoptoStats>,
    faults: Mutex<Faults>,
}

impl App {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The world, moved along to the clock's now.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        let mut world = lock(&self.world);
        world.settle(self.now());
        world
    }

    pub(crate) fn count(&self, endpoint: &str) {
        *lock(&self.stats)
            .requests
            .entry(endpoint.to_string())
            .or_insert(0) += 1;
    }

    /// A 429 answer if `client`'s budget is spent.
    pub(crate) fn over_budget(&self, client: &str) -> Option<Response> {
        let wait = lock(&self.throttle).admit(client, Instant::now())?;
        Some(self.throttled(wait))
    }

    pub(crate) fn throttled(&self, wait: Duration) -> Response {
        lock(&self.stats).throttled += 1;
        (
            StatusCode::TOO_MANY_REQUESTS,
            [
                (header::RETRY_AFTER, retry_after_secs(wait).to_string()),
                (
                    header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".to_string(),
                ),
            ],
            "Too Many Requests",
        )
            .into_response()
    }

    /// An injected server error for the next request, if one is due, and the latency.
    fn fault(&self) -> (Option<u16>, Duration) {
        let mut faults = lock(&self.faults);
        let fault = (faults.pending > 0).then(|| {
            faults.pending -= 1;
            faults.status
        });
        (fault, faults.latency)
    }
}

/// A running Panopto simulator on 127.0.0.1 (see the module docs).
pub struct PanoptoSim {
    addr: SocketAddr,
    app: Arc<App>,
    serving: Serving,
}

impl PanoptoSim {
    /// Binds an OS-assigned port and serves an empty site until stopped or dropped.
    pub async fn start(config: PanoptoSimConfig) -> Result<Self, PanoptoSimError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let providers = CAPTION_PROVIDERS
            .iter()
            .enumerate()
            .map(|(i, name)| CaptionProvider {
                id: format!("00000000-0000-0000-0000-0000000c{:04x}", i + 1),
                name: (*name).to_string(),
            })
            .collect();
        let timings = World::timings(config.processing_time, config.caption_delay);
        let app = Arc::new(App {
            base_url: format!("http://{addr}"),
            clock: Arc::new(SimClock::new(config.start, config.time_scale)),
            world: Mutex::new(World::new(providers, timings)),
            tokens: Mutex::new(Tokens::new(&config.clients, config.token_lifetime)),
            soap_users: Mutex::new(config.soap_users.iter().cloned().collect()),
            throttle: Mutex::new(Throttle::new(config.budget)),
            stats: Mutex::new(PanoptoStats::default()),
            faults: Mutex::new(Faults {
                pending: 0,
                status: 503,
                latency: config.latency,
            }),
        });
        let router = router(Arc::clone(&app));
        Ok(Self {
            addr,
            app,
            serving: Serving::start(listener, router, "panopto"),
        })
    }

    /// `http://127.0.0.1:<port>`: the site's root to put in the client's credentials.
    pub fn base_url(&self) -> String {
        self.app.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn stop(self) {
        self.serving.stop().await;
    }

    // --- clock ---------------------------------------------------------------------------

    pub fn clock(&self) -> Arc<SimClock> {
        Arc::clone(&self.app.clock)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.app.now()
    }

    /// Moves the simulated clock forward; sessions move along with it.
    pub fn advance(&self, by: Duration) {
        self.app.clock.advance(by);
        drop(self.app.world());
    }

    // --- tokens, throttling, faults, counters --------------------------------------------

    /// Every access token issued so far expires now (the next request with one gets 401).
    pub fn expire_tokens(&self) {
        lock(&self.app.tokens).expire_all(self.app.now());
    }

    /// Someone regenerates the API client's secret in Panopto's admin pages: coursewire's
    /// secret is refused and its tokens stop working until the new secret is put in. Returns
    /// the new secret (`None` for an unknown client).
    pub fn regenerate_client_secret(&self, client_id: &str) -> Option<String> {
        lock(&self.app.tokens).regenerate_secret(client_id)
    }

    /// Someone changes the SOAP user's password in Panopto: coursewire's SOAP calls fail
    /// authentication until the new password is put in. Returns the new password (`None`
    /// for an unknown user).
    pub fn change_soap_password(&self, user_key: &str) -> Option<String> {
        let mut users = lock(&self.app.soap_users);
        let password = users.get_mut(user_key)?;
        *password = super::oauth::new_secret();
        Some(password.clone())
    }

    /// The next `n` API requests (REST or SOAP) answer 429 with this `Retry-After`.
    pub fn force_throttle(&self, n: usize, retry_after: Duration) {
        lock(&self.app.throttle).force(n, retry_after);
    }

    pub fn forced_throttles_pending(&self) -> usize {
        lock(&self.app.throttle).forced_pending()
    }

    /// Replaces the per-client request budget (`None`: off).
    pub fn set_budget(&self, budget: Option<RequestBudget>) {
        lock(&self.app.throttle).set_budget(budget);
    }

    /// The next `n` API requests (after auth and throttling) answer `status` (e.g. 503).
    pub fn inject_errors(&self, n: usize, status: u16) {
        let mut faults = lock(&self.app.faults);
        faults.pending = n;
        faults.status = status;
    }

    /// Processing time of every following API request.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.app.faults).latency = latency;
    }

    pub fn stats(&self) -> PanoptoStats {
        lock(&self.app.stats).clone()
    }

    /// Starts the counters again (e.g. per poller tick).
    pub fn reset_stats(&self) {
        *lock(&self.app.stats) = PanoptoStats::default();
    }

    // --- the site ------------------------------------------------------------------------

    /// A copy of everything the simulator knows now.
    pub fn world_snapshot(&self) -> World {
        self.app.world().clone()
    }

    pub fn add_folder(&self, name: &str, parent: Option<&str>) -> Result<String, PanoptoSimError> {
        let now = self.app.now();
        self.app.world().add_folder(name, parent, None, now)
    }

    /// A person renames the folder in Panopto (its external ids stay).
    pub fn rename_folder(&self, folder: &str, name: &str) -> Result<(), PanoptoSimError> {
        if name.trim().is_empty() {
            return Err(PanoptoSimError::Invalid("a folder needs a name".into()));
        }
        self.app
            .world()
            .folders
            .get_mut(folder)
            .ok_or_else(|| not_found("folder", folder))?
            .name = name.to_string();
        Ok(())
    }

    /// Links a folder as another integration would (e.g. Panopto's own LMS provider), as
    /// SOAP `UpdateFolderExternalIdWithProvider` does.
    pub fn set_folder_external_id(
        &self,
        folder: &str,
        provider: &str,
        external_id: &str,
    ) -> Result<(), PanoptoSimError> {
        self.app
            .world()
            .set_folder_external_id(folder, provider, external_id)
    }

    /// The folder's external ids by provider.
    pub fn folder_external_ids(
        &self,
        folder: &str,
    ) -> Result<BTreeMap<String, String>, PanoptoSimError> {
        self.app
            .world()
            .folders
            .get(folder)
            .map(|f| f.external_ids.clone())
            .ok_or_else(|| not_found("folder", folder))
    }

    /// Sets (by name, see [`CAPTION_PROVIDERS`]) or clears a folder's automatic captions.
    pub fn set_folder_caption_provider(
        &self,
        folder: &str,
        provider: Option<&str>,
    ) -> Result<(), PanoptoSimError> {
        let mut world = self.app.world();
        let provider = match provider {
            Some(name) => Some(
                world
                    .provider_by_name(name)
                    .map(|p| p.id.clone())
                    .ok_or_else(|| not_found("caption provider", name))?,
            ),
            None => None,
        };
        world
            .folders
            .get_mut(folder)
            .ok_or_else(|| not_found("folder", folder))?
            .caption_provider = provider;
        Ok(())
    }

    /// Provisions a user as Panopto's LMS integration would, with the user key
    /// `{identity provider}\{login}`, and answers its id (the GUID a grant names). A key
    /// already provisioned (case-insensitively) keeps its id and takes the new name.
    pub fn add_user(&self, user_key: &str, name: &str) -> String {
        self.app.world().add_user(user_key, name, None)
    }

    /// [`PanoptoSim::add_user`] with an email (the search matches it too).
    pub fn add_user_with_email(&self, user_key: &str, name: &str, email: &str) -> String {
        self.app.world().add_user(user_key, name, Some(email))
    }

    /// The id of the user with this key (case-insensitively).
    pub fn user_id(&self, user_key: &str) -> Option<String> {
        self.app.world().user_by_key(user_key).map(|u| u.id.clone())
    }

    /// With `true`, `GET /users/search` answers every match on each page whatever
    /// `pageNumber` says (Panopto documents no paging there); `false` pages by 50 again.
    pub fn users_search_ignores_paging(&self, ignores: bool) {
        self.app.world().users_search_ignores_paging = ignores;
    }

    /// A room's remote recorder, healthy and idle (`Previewing`).
    pub fn add_recorder(&self, name: &str) -> String {
        self.app.world().add_recorder(name)
    }

    /// One recorder per room name, in order.
    pub fn add_recorders<S: AsRef<str>>(&self, rooms: &[S]) -> Vec<String> {
        let mut world = self.app.world();
        rooms
            .iter()
            .map(|r| world.add_recorder(r.as_ref()))
            .collect()
    }

    /// The recorder faults now: a recording on it stops here, later ones never start.
    pub fn fault_recorder(&self, id: &str) -> Result<(), PanoptoSimError> {
        let now = self.app.now();
        self.app
            .world()
            .set_recorder_fault(id, Some(RecorderFault::Faulted), now)
    }

    /// The recorder drops off the network now (as [`PanoptoSim::fault_recorder`]).
    pub fn disconnect_recorder(&self, id: &str) -> Result<(), PanoptoSimError> {
        let now = self.app.now();
        self.app
            .world()
            .set_recorder_fault(id, Some(RecorderFault::Disconnected), now)
    }

    /// The recorder is healthy again (bookings still ahead will record).
    pub fn restore_recorder(&self, id: &str) -> Result<(), PanoptoSimError> {
        let now = self.app.now();
        self.app.world().set_recorder_fault(id, None, now)
    }

    pub fn recorder_state(&self, id: &str) -> Option<RecorderState> {
        self.app.world().recorder_state(id)
    }

    /// A session recorded in the past, already processed (`Complete`).
    pub fn add_recorded_session(
        &self,
        folder: &str,
        name: &str,
        start: DateTime<Utc>,
        duration: Duration,
    ) -> Result<String, PanoptoSimError> {
        let now = self.app.now();
        self.app
            .world()
            .add_recorded_session(folder, name, start, duration, now)
    }

    pub fn session(&self, id: &str) -> Option<Session> {
        self.app.world().sessions.get(id).cloned()
    }

    pub fn session_state(&self, id: &str) -> Option<SessionState> {
        self.app.world().sessions.get(id).map(|s| s.state)
    }

    /// The recording starts `by` after its scheduled start.
    pub fn start_late(&self, session: &str, by: Duration) -> Result<(), PanoptoSimError> {
        self.app.world().session_mut(session)?.late_by = delta(by);
        Ok(())
    }

    /// The recording stops `by` before its scheduled end.
    pub fn stop_early(&self, session: &str, by: Duration) -> Result<(), PanoptoSimError> {
        self.app.world().session_mut(session)?.early_by = delta(by);
        Ok(())
    }

    /// The session finishes recording and processing now.
    pub fn complete_now(&self, session: &str) -> Result<(), PanoptoSimError> {
        let now = self.app.now();
        self.app.world().complete_now(session, now)
    }

    /// Machine captions come `by` later than the configured delay.
    pub fn captions_late(&self, session: &str, by: Duration) -> Result<(), PanoptoSimError> {
        self.app.world().session_mut(session)?.caption_plan = CaptionPlan::Late(delta(by));
        Ok(())
    }

    /// Machine captions never come for this session.
    pub fn captions_never(&self, session: &str) -> Result<(), PanoptoSimError> {
        let mut world = self.app.world();
        let session = world.session_mut(session)?;
        session.caption_plan = CaptionPlan::Never;
        session.captions_due = None;
        Ok(())
    }

    /// A person renames the session in Panopto.
    pub fn rename_session(&self, session: &str, name: &str) -> Result<(), PanoptoSimError> {
        self.app
            .world()
            .update_session(session, Some(name), None, None)
    }

    /// A person moves the session to another folder in Panopto.
    pub fn move_session(&self, session: &str, folder: &str) -> Result<(), PanoptoSimError> {
        self.app
            .world()
            .update_session(session, None, None, Some(folder))
    }

    /// From now on every listing (folder sessions, search, in progress) shows it twice.
    pub fn duplicate_in_listings(&self, session: &str) -> Result<(), PanoptoSimError> {
        let mut world = self.app.world();
        if !world.sessions.contains_key(session) {
            return Err(not_found("session", session));
        }
        world.duplicated.insert(session.to_string());
        Ok(())
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route(
            "/Panopto/api/v1/sessions/{id}",
            get(rest::get_session)
                .put(rest::update_session)
                .delete(rest::delete_session),
        )
        .route(
            "/Panopto/api/v1/sessions/search",
            get(rest::search_sessions),
        )
        .route(
            "/Panopto/api/v1/sessions/inProgress/recording",
            get(rest::in_progress),
        )
        .route(
            "/Panopto/api/v1/sessions/{id}/captions",
            post(rest::upload_captions),
        )
        .route(
            "/Panopto/api/v1/sessions/{id}/permissions",
            get(rest::session_permissions)
                .post(rest::grant_session_permission)
                .delete(rest::revoke_session_permission),
        )
        .route("/Panopto/api/v1/folders", post(rest::create_folder))
        .route("/Panopto/api/v1/folders/search", get(rest::search_folders))
        .route("/Panopto/api/v1/folders/{id}", get(rest::get_folder))
        .route(
            "/Panopto/api/v1/folders/{id}/children",
            get(rest::folder_children),
        )
        .route(
            "/Panopto/api/v1/folders/{id}/sessions",
            get(rest::folder_sessions),
        )
        .route(
            "/Panopto/api/v1/folders/{id}/settings",
            get(rest::folder_settings).put(rest::update_folder_settings),
        )
        .route(
            "/Panopto/api/v1/folders/{id}/permissions",
            get(rest::folder_permissions)
                .post(rest::grant_folder_permission)
                .delete(rest::revoke_folder_permission),
        )
        .route(
            "/Panopto/api/v1/remoteRecorders/search",
            get(rest::search_recorders),
        )
        .route("/Panopto/api/v1/users/search", get(rest::search_users))
        .route(
            "/Panopto/api/v1/captionproviders",
            get(rest::caption_providers),
        )
        .route(
            "/Panopto/api/v1/scheduledRecordings",
            post(rest::create_scheduled_recording),
        )
        .route(
            "/Panopto/api/v1/scheduledRecordings/{id}",
            get(rest::get_scheduled_recording)
                .put(rest::update_scheduled_recording)
                .delete(rest::delete_scheduled_recording),
        )
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), rest_gate));
    let soap = Router::new()
        .route(
            "/Panopto/PublicAPI/4.6/SessionManagement.svc",
            post(soap::session_management),
        )
        .route(
            "/Panopto/PublicAPI/4.6/RemoteRecorderManagement.svc",
            post(soap::remote_recorder_management),
        )
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), soap_gate));
    Router::new()
        .route("/Panopto/oauth2/connect/token", post(rest::token))
        .merge(api)
        .merge(soap)
        .fallback(rest::not_found)
        .method_not_allowed_fallback(rest::method_not_allowed)
        .with_state(app)
}

/// `Authorization: Bearer <token>`.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn unauthorized(missing: bool) -> Response {
    let challenge = if missing {
        "Bearer"
    } else {
        "Bearer error=\"invalid_token\", error_description=\"The access token is expired or unknown\""
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        "",
    )
        .into_response()
}

/// Every REST request: count → forced 429 → latency → bearer token → budget → injected
/// error → handler.
async fn rest_gate(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_string(),
        |p| p.as_str().to_string(),
    );
    let endpoint = format!(
        "{} {}",
        request.method(),
        route.strip_prefix("/Panopto").unwrap_or(&route)
    );
    app.count(&endpoint);
    if let Some(wait) = lock(&app.throttle).take_forced() {
        return app.throttled(wait);
    }
    let (fault, latency) = app.fault();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let token = bearer_token(request.headers());
    let client = token
        .as_deref()
        .and_then(|t| lock(&app.tokens).validate(t, app.now()));
    let Some(client) = client else {
        lock(&app.stats).unauthorized += 1;
        return unauthorized(token.is_none());
    };
    if let Some(throttled) = app.over_budget(&client) {
        return throttled;
    }
    if let Some(status) = fault {
        lock(&app.stats).injected_errors += 1;
        return rest::injected(status);
    }
    next.run(request).await
}

/// Every SOAP request: count (by `SOAPAction`) → forced 429 → latency → injected error →
/// handler (which authenticates and applies the budget).
async fn soap_gate(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let action = soap::action(request.headers());
    let operation = action
        .strip_prefix(soap::TEMPURI)
        .unwrap_or(if action.is_empty() {
            "(no SOAPAction)"
        } else {
            &action
        });
    app.count(&format!("SOAP {operation}"));
    if let Some(wait) = lock(&app.throttle).take_forced() {
        return app.throttled(wait);
    }
    let (fault, latency) = app.fault();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(status) = fault {
        lock(&app.stats).injected_errors += 1;
        return rest::injected(status);
    }
    next.run(request).await
}
