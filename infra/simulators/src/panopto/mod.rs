//! Panopto simulator: Panopto's REST API (`/Panopto/api/v1`, OAuth2 client credentials) and
//! the SOAP calls coursewire uses (`SessionManagement.GetSessionsById`,
//! `GetAllFoldersByExternalId`, `UpdateFolderExternalIdWithProvider`,
//! `RemoteRecorderManagement.GetRemoteRecordersById`), so the real Panopto client and the
//! lecture-capture functions are tested against something that records, processes, captions
//! and pushes back on a clock tests control.
//!
//! - [`clock`]: [`SimClock`], the simulated time (a start instant, a scale, `advance`).
//! - [`world`]: folders (with external ids per site membership provider; an id already on
//!   another folder of the provider is refused), remote recorders, sessions and their state
//!   machine on the clock
//!   (`Scheduled` → `Recording` → `Processing` → `Complete`, machine captions after a
//!   delay), bookings that refuse to overlap on a recorder, and users by user key
//!   (`{identity provider}\{login}`, as Panopto's LMS integration provisions them).
//! - `oauth`: the token endpoint; bearer tokens expire on the clock, a bad one gets 401 with
//!   `WWW-Authenticate: Bearer error="invalid_token"`.
//! - [`throttle`]: a per-client request budget answered with 429 and `Retry-After`, and
//!   forced 429s.
//! - `rest` and `soap`: the endpoints, Panopto-shaped JSON (`APIError` on failure) and SOAP
//!   1.1 XML (a `Fault` for bad credentials, an unknown action or folder, a taken external id).
//! - [`server`]: the axum server ([`PanoptoSim`]) with the scenario controls and per-endpoint
//!   request counts ([`PanoptoStats`]).
//!
//! ```ignore
//! let sim = PanoptoSim::start(PanoptoSimConfig::default()).await?;
//! let folder = sim.add_folder("BIO 101 Fall 2025", None)?;
//! sim.set_folder_caption_provider(&folder, Some("Panopto"))?;
//! let recorder = sim.add_recorder("SCI-101");
//! // the client books a recording on `recorder` in `folder` over REST, then:
//! sim.advance(Duration::from_secs(3600)); // recorded, processing
//! sim.fault_recorder(&recorder)?;         // nothing records on it any more
//! assert_eq!(sim.stats().count(SOAP_GET_SESSIONS_BY_ID), 1);
//! ```

pub mod clock;
mod multipart;
mod oauth;
mod rest;
pub mod server;
mod soap;
pub mod throttle;
pub mod world;
mod xml;

#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use clock::SimClock;
pub use server::{
    PanoptoSim, PanoptoStats, REST_SEARCH_USERS, SOAP_GET_ALL_FOLDERS_BY_EXTERNAL_ID,
    SOAP_GET_RECORDERS_BY_ID, SOAP_GET_SESSIONS_BY_ID, SOAP_UPDATE_FOLDER_EXTERNAL_ID,
    TOKEN_ENDPOINT,
};
pub use throttle::RequestBudget;
pub use world::{
    CaptionPlan, Folder, Recorder, RecorderFault, RecorderState, Role, Schedule, Session,
    SessionState, User, World,
};

/// The API client every default config registers.
pub const DEFAULT_CLIENT_ID: &str = "coursewire-sim-client";
pub const DEFAULT_CLIENT_SECRET: &str = "sim-client-secret";
/// The SOAP user every default config registers.
pub const DEFAULT_SOAP_USER: &str = "coursewire-api";
pub const DEFAULT_SOAP_PASSWORD: &str = "sim-soap-password";
/// Results per page of every list.
pub const PAGE_SIZE: usize = 50;
/// Names of the caption providers configured on the simulated site.
pub const CAPTION_PROVIDERS: [&str; 2] = ["Panopto", "Verbit"];

/// Failures of the simulator's own API (HTTP answers are Panopto-shaped instead).
#[derive(Debug, thiserror::Error)]
pub enum PanoptoSimError {
    #[error("cannot bind the Panopto simulator: {0}")]
    Bind(#[from] std::io::Error),
    #[error("unknown {kind} {id}")]
    NotFound { kind: &'static str, id: String },
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Knobs of one simulator instance.
#[derive(Debug, Clone, PartialEq)]
pub struct PanoptoSimConfig {
    /// Registered API clients `(client_id, client_secret)`.
    pub clients: Vec<(String, String)>,
    /// SOAP users `(user_key, password)`.
    pub soap_users: Vec<(String, String)>,
    /// Access-token lifetime on the simulated clock (Panopto: 1 h).
    pub token_lifetime: Duration,
    /// Where the simulated clock starts.
    pub start: DateTime<Utc>,
    /// Simulated seconds per real second; 0 freezes the clock between `advance` calls.
    pub time_scale: f64,
    /// `Processing` → `Complete`.
    pub processing_time: Duration,
    /// `Complete` → machine captions, in folders with an automatic caption provider.
    pub caption_delay: Duration,
    /// Per-client request budget; `None` (default) never throttles on its own.
    pub budget: Option<RequestBudget>,
    /// Processing time of every API request (real time).
    pub latency: Duration,
}

impl Default for PanoptoSimConfig {
    fn default() -> Self {
        Self {
            clients: vec![(DEFAULT_CLIENT_ID.into(), DEFAULT_CLIENT_SECRET.into())],
            soap_users: vec![(DEFAULT_SOAP_USER.into(), DEFAULT_SOAP_PASSWORD.into())],
            token_lifetime: Duration::from_secs(3600),
            start: Utc::now(),
            time_scale: 1.0,
            processing_time: Duration::from_secs(15 * 60),
            caption_delay: Duration::from_secs(2 * 3600),
            budget: None,
            latency: Duration::ZERO,
        }
    }
}
