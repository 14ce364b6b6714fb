//! Canvas REST / GraphQL / OAuth2 API simulator: a test double that real HTTP clients meet,
//! so the Canvas API client and the reconciler are tested against something that behaves
//! like hosted Canvas and pushes back.
//!
//! What it does, and where:
//!
//! - [`world`]: the data ([`World`]): courses, sections, users, enrollments, assignments,
//!   submissions, modules and module items. [`World::from_events`] folds a live-events
//!   scenario (`canvas_live_events`) so the API serves the same truth the events describe;
//!   [`World::synthetic`] builds big seeded worlds for benchmarks. Every mutation, by a
//!   test or over HTTP, emits the matching Canvas-format live event into an outbox
//!   ([`CanvasApiSim::take_live_events`]) that tests deliver with `canvas_live_events::Emitter`.
//! - [`oauth`]: Canvas's OAuth2 flow (`/login/oauth2/auth`, `/login/oauth2/token`): codes
//!   are single-use, refresh keeps the same refresh token, access tokens expire, grants can
//!   be revoked; an invalid token gets 401 with `WWW-Authenticate`.
//! - [`throttle`]: Canvas's leaky bucket per access token (high-water mark, outflow,
//!   up-front cost per request in flight) with `X-Request-Cost` and `X-Rate-Limit-Remaining`
//!   on every API response and 403 (or 429) `Rate Limit Exceeded` when it overflows.
//! - `rest`: `/api/v1` lists with `Link` pagination (opaque bookmarks for enrollments,
//!   numbered pages elsewhere) and the module and module-item mutations.
//! - `graphql`: a small real GraphQL parser and executor for `POST /api/graphql` with
//!   Relay connections (courses, sections, enrollments, users, modules).
//! - [`server`]: the axum server ([`CanvasApiSim`]) with runtime controls: error
//!   injection, latency, token expiry and revocation, counters ([`ApiStats`]).
//!
//! ```ignore
//! let scenario = Scenario::build(ScenarioConfig::default());
//! let sim = CanvasApiSim::start(ApiSimConfig::default(), World::from_events(&scenario.events)).await?;
//! let grant = sim.issue_grant(DEFAULT_CLIENT_ID)?;
//! // point the real client at sim.base_url() with grant.access_token / grant.refresh_token
//! sim.inject_errors(2, 503);
//! sim.set_enrollment_state(enrollment_id, "deleted")?;
//! sim.delete_module(course_id, module_id)?; // a person deleted it in the UI
//! let events = sim.take_live_events(); // deliver with canvas_live_events::Emitter
//! ```

mod graphql;
pub mod oauth;
mod params;
mod rest;
pub mod server;
pub mod throttle;
pub mod world;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use oauth::TokenGrant;
pub use server::{ApiStats, CanvasApiSim};
pub use throttle::CostModel;
pub use world::{
    Assignment, Course, Enrollment, LOCAL_ID_BASE, Module, ModuleItem, ModuleItemUpdate,
    ModuleUpdate, NewModuleItem, Origin, RequestOrigin, Section, Submission, User, World,
    to_global,
};

/// Client id of the developer key every default config registers.
pub const DEFAULT_CLIENT_ID: &str = "10000000000001";
/// Its client secret.
pub const DEFAULT_CLIENT_SECRET: &str = "sim-secret";

/// Failures of the simulator's own API (not HTTP answers: those are Canvas-shaped JSON).
#[derive(Debug, thiserror::Error)]
pub enum ApiSimError {
    /// Could not bind 127.0.0.1:0 or read the bound address.
    #[error("cannot bind the Canvas API simulator: {0}")]
    Bind(#[from] std::io::Error),
    /// No registered developer key has this client id.
    #[error("unknown OAuth client {0}")]
    UnknownClient(String),
    /// The world has no such (live) entity.
    #[error("unknown {kind} {id}")]
    NotFound { kind: &'static str, id: u64 },
    /// The request makes no sense for Canvas (bad state name, section of another course...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Canvas would accept it, the simulator does not model it (e.g. a `Quiz` module item).
    #[error("not supported by the simulator: {0}")]
    Unsupported(String),
}

/// Status of a throttled answer: Canvas has sent 403 for years; hosted Canvas moved to 429
/// in late 2025, so clients must treat both as "slow down".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThrottleStatus {
    /// `403 Forbidden (Rate Limit Exceeded)`.
    #[default]
    Forbidden403,
    /// `429 Too Many Requests (Rate Limit Exceeded)`.
    TooMany429,
}

/// How ids appear in API answers. Hosted Canvas answers shard-local ids for objects on the
/// domain's own shard (`565`) while live events carry global ids (`21070000000000565`);
/// both forms are accepted in URLs either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdForm {
    /// Global ids everywhere, matching the live events byte for byte.
    #[default]
    Global,
    /// Shard-local ids, as hosted Canvas answers for same-shard objects.
    Local,
}

/// Knobs of one simulator instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSimConfig {
    /// Registered developer keys `(client_id, client_secret)`.
    pub clients: Vec<(String, String)>,
    /// Access-token lifetime (Canvas: 1 h); `expires_in` is its whole seconds.
    pub token_lifetime: Duration,
    /// How long an authorization code may wait before the token exchange (Canvas: 10 min).
    pub code_lifetime: Duration,
    /// `false` (default): a refresh leaves older access tokens valid until their own
    /// expiry. `true`: a refresh invalidates the grant's older access tokens, as Canvas
    /// does when it regenerates the token on the same record.
    pub refresh_invalidates_old_tokens: bool,
    /// Leaky-bucket high-water mark (hosted Canvas: 700).
    pub high_water: f64,
    /// Units leaked per second (Canvas: 10), multiplied by `time_scale`.
    pub outflow: f64,
    /// Units charged while a request is in flight (Canvas: 50).
    pub upfront: f64,
    /// Speeds up the leak so tests and benchmarks need not wait real seconds.
    pub time_scale: f64,
    pub throttle_status: ThrottleStatus,
    pub cost: CostModel,
    /// Seeds the cost jitter so runs are reproducible.
    pub cost_seed: u64,
    /// Processing time of every API request, so concurrent requests overlap.
    pub latency: Duration,
    pub id_form: IdForm,
}

impl Default for ApiSimConfig {
    fn default() -> Self {
        Self {
            clients: vec![(DEFAULT_CLIENT_ID.into(), DEFAULT_CLIENT_SECRET.into())],
            token_lifetime: Duration::from_secs(3600),
            code_lifetime: Duration::from_secs(600),
            refresh_invalidates_old_tokens: false,
            high_water: 700.0,
            outflow: 10.0,
            upfront: 50.0,
            time_scale: 1.0,
            throttle_status: ThrottleStatus::Forbidden403,
            cost: CostModel::default(),
            cost_seed: 7,
            latency: Duration::from_millis(1),
            id_form: IdForm::Global,
        }
    }
}

/// The entity types coursewire's reconciler fetches from the API (assignments and submissions
/// are left to live events).
pub const RECONCILED_TYPES: [&str; 6] = [
    "course",
    "section",
    "enrollment",
    "user",
    "module",
    "module_item",
];

/// Users with a live enrollment somewhere: those the API's rosters show.
pub fn rostered_users(world: &World) -> std::collections::BTreeSet<String> {
    world
        .enrollments
        .values()
        .filter(|e| e.workflow_state != "deleted")
        .map(|e| e.user_id.to_string())
        .collect()
}

/// Where a catalog differs from `truth` for the reconciled types, after reconciliation against
/// `world`. What the API cannot show is not expected: entities Canvas deleted before the
/// catalog ever heard of them, users in no course's roster, and users' `workflow_state`.
pub fn reconciled_mismatches(
    truth: &crate::canvas_live_events::Truth,
    world: &World,
    rows: &[coursewire_live_events::catalog::EntityRecord],
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let rostered = rostered_users(world);
    let mut expected = crate::canvas_live_events::Truth::default();
    for ((kind, id), state) in &truth.entities {
        let known = keys.contains(format!("{kind}:{id}").as_str());
        let visible = !state.deleted && (kind != "user" || rostered.contains(id));
        if RECONCILED_TYPES.contains(&kind.as_str()) && (known || visible) {
            let mut state = state.clone();
            if kind == "user" {
                state.workflow_state = None;
            }
            expected.entities.insert((kind.clone(), id.clone()), state);
        }
    }
    expected.catalog_mismatches(rows)
}
