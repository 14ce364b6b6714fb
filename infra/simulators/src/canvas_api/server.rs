//! The simulator's axum server, the gate every API request passes (auth, throttle, fault
//! injection, latency, cost headers) and the runtime controls tests use.

use crate::serving::Serving;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::oauth::{Caller, OAuth, TokenGrant};
use super::rest::{self, ItemCount};
use super::throttle::{Admission, Throttle};
use super::world::{Origin, World, local_part};
use super::{ApiSimConfig, ApiSimError, ThrottleStatus, graphql, oauth};
use crate::canvas_live_events::SimEvent;

/// Locks a simulator mutex; a panicked holder (a failed test) does not poison the rest.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counters and current fault settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiStats {
    /// Token endpoint requests by `grant_type` (`"missing"` when absent), failures included.
    pub token_requests: BTreeMap<String, u64>,
    /// Every request to `/api/...` routes, GraphQL included.
    pub api_requests: u64,
    pub graphql_requests: u64,
    /// Refused by the leaky bucket (403/429).
    pub throttled: u64,
    /// Answered 401 (missing, unknown, expired or revoked token).
    pub unauthorized: u64,
    /// Answered with an injected 5xx.
    pub injected_errors: u64,
    /// Injected errors still to come.
    pub pending_injected_errors: usize,
    /// Simulated processing time per request now.
    pub latency: Duration,
    /// Sum of `X-Request-Cost` over completed requests.
    pub cost_total: f64,
    /// Highest bucket level any token reached.
    pub peak_level: f64,
}

#[derive(Debug)]
struct Faults {
    pending: usize,
    status: u16,
    /// Requests still to be refused as if the bucket were full (see `force_throttle`).
    throttle: usize,
    latency: Duration,
}

/// State shared by every handler.
pub(crate) struct App {
    pub(crate) config: ApiSimConfig,
    pub(crate) base_url: String,
    pub(crate) world: Mutex<World>,
    pub(crate) outbox: Mutex<Vec<SimEvent>>,
    pub(crate) oauth: Mutex<OAuth>,
    throttle: Mutex<Throttle>,
    pub(crate) stats: Mutex<ApiStats>,
    faults: Mutex<Faults>,
    seq: AtomicU64,
    /// Bumped by every change to the world (under its lock), so the index knows it is stale.
    generation: AtomicU64,
    index: Mutex<Arc<CourseIndex>>,
}

/// Enrollment and section ids per course, so big synthetic worlds answer a roster page
/// without scanning every enrollment (benchmarks measure the client, not the simulator).
#[derive(Debug, Default)]
pub(crate) struct CourseIndex {
    generation: Option<u64>,
    enrollments: HashMap<u64, Vec<u64>>,
    sections: HashMap<u64, Vec<u64>>,
}

impl CourseIndex {
    fn build(world: &World, generation: u64) -> Self {
        let mut index = Self {
            generation: Some(generation),
            ..Self::default()
        };
        for e in world.enrollments.values() {
            index.enrollments.entry(e.course_id).or_default().push(e.id);
        }
        for s in world.sections.values() {
            index.sections.entry(s.course_id).or_default().push(s.id);
        }
        index
    }

    /// Enrollment ids of a course, ascending.
    pub(crate) fn enrollments(&self, course: u64) -> &[u64] {
        self.enrollments.get(&course).map_or(&[], Vec::as_slice)
    }

    /// Section ids of a course, ascending.
    pub(crate) fn sections(&self, course: u64) -> &[u64] {
        self.sections.get(&course).map_or(&[], Vec::as_slice)
    }
}

impl App {
    /// Applies a world mutation and queues the live events it emitted, in emission order.
    pub(crate) fn mutate<R>(&self, f: impl FnOnce(&mut World, &mut Vec<SimEvent>) -> R) -> R {
        let mut world = lock(&self.world);
        let mut events = Vec::new();
        let result = f(&mut world, &mut events);
        self.generation.fetch_add(1, Ordering::SeqCst);
        lock(&self.outbox).extend(events);
        result
    }

    /// The index for `world`, which the caller holds locked (rebuilt after any change).
    pub(crate) fn index(&self, world: &World) -> Arc<CourseIndex> {
        let generation = self.generation.load(Ordering::SeqCst);
        let mut cached = lock(&self.index);
        if cached.generation != Some(generation) {
            *cached = Arc::new(CourseIndex::build(world, generation));
        }
        Arc::clone(&cached)
    }
}

/// A running Canvas API simulator on 127.0.0.1 (see the module docs).
pub struct CanvasApiSim {
    addr: SocketAddr,
    app: Arc<App>,
    serving: Serving,
}

impl CanvasApiSim {
    /// Binds an OS-assigned port and serves `world` until stopped or dropped.
    pub async fn start(config: ApiSimConfig, world: World) -> Result<Self, ApiSimError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App {
            base_url: format!("http://{addr}"),
            world: Mutex::new(world),
            outbox: Mutex::new(Vec::new()),
            oauth: Mutex::new(OAuth::new(
                &config.clients,
                config.token_lifetime,
                config.code_lifetime,
                config.refresh_invalidates_old_tokens,
            )),
            throttle: Mutex::new(Throttle::new(
                config.high_water,
                config.outflow,
                config.time_scale,
                config.upfront,
            )),
            stats: Mutex::new(ApiStats::default()),
            faults: Mutex::new(Faults {
                pending: 0,
                status: 500,
                throttle: 0,
                latency: config.latency,
            }),
            seq: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            index: Mutex::new(Arc::new(CourseIndex::default())),
            config,
        });
        let router = router(Arc::clone(&app));
        Ok(Self {
            addr,
            app,
            serving: Serving::start(listener, router, "canvas_api"),
        })
    }

    /// `http://127.0.0.1:<port>`: the Canvas base URL to give a client.
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

    // --- OAuth controls ------------------------------------------------------------------

    /// The user approved `client_id`: a code for `POST /login/oauth2/token` (any
    /// `redirect_uri` is accepted with it).
    pub fn authorize(&self, client_id: &str) -> Result<String, ApiSimError> {
        let user = lock(&self.app.world).api_user.id;
        lock(&self.app.oauth).authorize(client_id, None, user)
    }

    /// A fresh grant without the HTTP flow.
    pub fn issue_grant(&self, client_id: &str) -> Result<TokenGrant, ApiSimError> {
        let user = lock(&self.app.world).api_user.id;
        lock(&self.app.oauth).issue(client_id, user)
    }

    /// Revokes a refresh token and every access token of its grant (the user removed the
    /// integration); `false` if the token is unknown.
    pub fn revoke_grant(&self, refresh_token: &str) -> bool {
        lock(&self.app.oauth).revoke_grant(refresh_token)
    }

    /// Every access token issued so far expires now; refresh tokens stay valid.
    pub fn expire_access_tokens(&self) {
        lock(&self.app.oauth).expire_all(Instant::now());
    }

    // --- faults and counters -------------------------------------------------------------

    /// The next `n` API requests (after auth and throttling) answer `status` (e.g. 503).
    pub fn inject_errors(&self, n: usize, status: u16) {
        let mut faults = lock(&self.app.faults);
        faults.pending = n;
        faults.status = status;
    }

    /// The next `n` authorised API requests are refused as over the limit (403 or 429 with
    /// `X-Rate-Limit-Remaining: 0`), as when another integration on the same user and
    /// developer key has just emptied the bucket.
    pub fn force_throttle(&self, n: usize) {
        lock(&self.app.faults).throttle = n;
    }

    /// Processing time of every following API request.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.app.faults).latency = latency;
    }

    pub fn stats(&self) -> ApiStats {
        let mut stats = lock(&self.app.stats).clone();
        {
            let faults = lock(&self.app.faults);
            stats.pending_injected_errors = faults.pending;
            stats.latency = faults.latency;
        }
        stats.peak_level = lock(&self.app.throttle).peak();
        stats
    }

    /// `X-Rate-Limit-Remaining` a request with this token would see now.
    pub fn rate_limit_remaining(&self, access_token: &str) -> f64 {
        let mut throttle = lock(&self.app.throttle);
        throttle.high_water() - throttle.level(access_token, Instant::now())
    }

    // --- world ---------------------------------------------------------------------------

    /// A copy of everything the simulator knows now.
    pub fn world_snapshot(&self) -> World {
        lock(&self.app.world).clone()
    }

    /// Live events emitted by mutations since the last call, oldest first.
    pub fn take_live_events(&self) -> Vec<SimEvent> {
        std::mem::take(&mut *lock(&self.app.outbox))
    }

    /// Changes the world without any live event: a change whose event Canvas lost.
    pub fn mutate_silently<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut world = lock(&self.app.world);
        let result = f(&mut world);
        self.app.generation.fetch_add(1, Ordering::SeqCst);
        result
    }

    /// A new user; emits `user_created`.
    pub fn add_user(&self, name: &str) -> u64 {
        self.app.mutate(|w, out| w.add_user(name, out))
    }

    /// A new section; emits `course_section_created`.
    pub fn add_section(&self, course: u64, name: &str) -> Result<u64, ApiSimError> {
        self.app.mutate(|w, out| w.add_section(course, name, out))
    }

    /// Enrolls a user (`active`); emits `enrollment_created` (see [`World::enroll`]).
    pub fn enroll(
        &self,
        course: u64,
        section: u64,
        user: u64,
        enrollment_type: &str,
    ) -> Result<u64, ApiSimError> {
        self.app
            .mutate(|w, out| w.enroll(course, section, user, enrollment_type, out))
    }

    /// Emits `enrollment_updated` (`deleted` included) unless the state is unchanged.
    pub fn set_enrollment_state(&self, id: u64, state: &str) -> Result<(), ApiSimError> {
        self.app
            .mutate(|w, out| w.set_enrollment_state(id, state, out))
    }

    /// Emits `course_section_updated`.
    pub fn rename_section(&self, id: u64, name: &str) -> Result<(), ApiSimError> {
        self.app.mutate(|w, out| w.rename_section(id, name, out))
    }

    /// Deletes the section's enrollments, then the section (see [`World::delete_section`]).
    pub fn delete_section(&self, id: u64) -> Result<(), ApiSimError> {
        self.app.mutate(|w, out| w.delete_section(id, out))
    }

    /// A person deletes a module by hand in Canvas's web UI, items and all (see
    /// [`World::delete_module`]): the API stops listing it and answers 404 for it.
    pub fn delete_module(&self, course: u64, module: u64) -> Result<(), ApiSimError> {
        self.app.mutate(|w, out| {
            let path = format!(
                "/courses/{}/modules/{}",
                local_part(course),
                local_part(module)
            );
            let origin = Origin::browser(w.api_user.id, "DELETE", &path);
            w.delete_module(course, module, &origin, out)
        })
    }
}

fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/accounts/{account_id}/courses",
            get(rest::account_courses),
        )
        .route("/api/v1/courses/{course_id}", get(rest::course))
        .route("/api/v1/courses/{course_id}/sections", get(rest::sections))
        .route("/api/v1/sections/{section_id}", get(rest::section))
        .route(
            "/api/v1/courses/{course_id}/enrollments",
            get(rest::enrollments),
        )
        .route("/api/v1/users/{user_id}", get(rest::user))
        .route(
            "/api/v1/courses/{course_id}/assignments",
            get(rest::assignments),
        )
        .route(
            "/api/v1/courses/{course_id}/assignments/{assignment_id}/submissions",
            get(rest::submissions),
        )
        .route(
            "/api/v1/courses/{course_id}/modules",
            get(rest::modules).post(rest::create_module),
        )
        .route(
            "/api/v1/courses/{course_id}/modules/{module_id}",
            get(rest::module)
                .put(rest::update_module)
                .delete(rest::delete_module),
        )
        .route(
            "/api/v1/courses/{course_id}/modules/{module_id}/items",
            get(rest::module_items).post(rest::create_module_item),
        )
        .route(
            "/api/v1/courses/{course_id}/modules/{module_id}/items/{item_id}",
            get(rest::module_item)
                .put(rest::update_module_item)
                .delete(rest::delete_module_item),
        )
        .route("/api/graphql", post(graphql::handler))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), gate));
    Router::new()
        .route("/login/oauth2/auth", get(oauth::authorize))
        .route(
            "/login/oauth2/token",
            post(oauth::token).delete(oauth::logout),
        )
        .merge(api)
        .fallback(rest::not_found)
        .method_not_allowed_fallback(rest::not_found)
        .with_state(app)
}

/// `Authorization: Bearer <token>`, or Canvas's `access_token` query parameter.
pub(crate) fn bearer_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    header.or_else(|| {
        super::params::Params::parse(query.unwrap_or_default())
            .get("access_token")
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    })
}

/// 401 as Canvas answers it; a missing token says so, any other says "Invalid access token."
pub(crate) fn unauthorized_response(missing: bool) -> Response {
    let body = if missing {
        serde_json::json!({
            "status": "unauthenticated",
            "errors": [{ "message": "user authorization required" }],
        })
    } else {
        serde_json::json!({ "errors": [{ "message": "Invalid access token." }] })
    };
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Bearer realm=\"canvas-lms\""),
            (header::CONTENT_TYPE, "application/json"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn throttled_response(status: ThrottleStatus) -> Response {
    let (code, text) = match status {
        ThrottleStatus::Forbidden403 => {
            (StatusCode::FORBIDDEN, "403 Forbidden (Rate Limit Exceeded)")
        }
        ThrottleStatus::TooMany429 => (
            StatusCode::TOO_MANY_REQUESTS,
            "429 Too Many Requests (Rate Limit Exceeded)",
        ),
    };
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

fn injected_response(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match code.as_u16() {
        502 => "Bad Gateway",
        503 => "Service Unavailable: Canvas is temporarily unavailable",
        504 => "Gateway Timeout",
        _ => "An error occurred. Please try again later.",
    };
    let body = serde_json::json!({ "errors": [{ "message": message }] });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn with_rate_headers(mut response: Response, cost: f64, remaining: f64) -> Response {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("{cost:.4}")) {
        headers.insert("x-request-cost", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{remaining:.4}")) {
        headers.insert("x-rate-limit-remaining", v);
    }
    response
}

/// Every `/api` request: auth → bucket → injected fault → latency → handler → real cost.
async fn gate(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    {
        let mut stats = lock(&app.stats);
        stats.api_requests += 1;
        if request.uri().path() == "/api/graphql" {
            stats.graphql_requests += 1;
        }
    }
    let high_water = app.config.high_water;
    let token = bearer_token(request.headers(), request.uri().query());
    let arrived = Instant::now();
    let caller: Option<Caller> = token
        .as_deref()
        .and_then(|t| lock(&app.oauth).validate(t, arrived));
    let Some(caller) = caller else {
        lock(&app.stats).unauthorized += 1;
        let remaining = match &token {
            Some(t) => high_water - lock(&app.throttle).level(t, arrived),
            None => high_water,
        };
        return with_rate_headers(unauthorized_response(token.is_none()), 0.0, remaining);
    };
    let forced = {
        let mut faults = lock(&app.faults);
        let forced = faults.throttle > 0;
        faults.throttle = faults.throttle.saturating_sub(1);
        forced
    };
    let admission = if forced {
        Admission::Throttled { level: high_water }
    } else {
        lock(&app.throttle).admit(&caller.token, arrived)
    };
    if let Admission::Throttled { level } = admission {
        lock(&app.stats).throttled += 1;
        return with_rate_headers(
            throttled_response(app.config.throttle_status),
            0.0,
            high_water - level,
        );
    }
    let (fault, latency) = {
        let mut faults = lock(&app.faults);
        let fault = (faults.pending > 0).then(|| {
            faults.pending -= 1;
            faults.status
        });
        (fault, faults.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let token = caller.token.clone();
    let (response, items) = match fault {
        Some(status) => {
            lock(&app.stats).injected_errors += 1;
            (injected_response(status), 0)
        }
        None => {
            request.extensions_mut().insert(caller);
            let response = next.run(request).await;
            let items = response.extensions().get::<ItemCount>().map_or(0, |c| c.0);
            (response, items)
        }
    };
    let seq = app.seq.fetch_add(1, Ordering::Relaxed);
    let cost = app.config.cost.cost(items, app.config.cost_seed, seq);
    let level = lock(&app.throttle).complete(&token, cost, Instant::now());
    lock(&app.stats).cost_total += cost;
    with_rate_headers(response, cost, high_water - level)
}
