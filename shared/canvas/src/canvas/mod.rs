//! The Canvas API client every coursewire function shares: REST and GraphQL, the OAuth2
//! token lifecycle, and one rate budget per Canvas grant across all functions and Lambda
//! instances.
//!
//! How a call goes ([`CanvasClient`]):
//! 1. [`TokenSource`] hands out the grant's access token (cached; refreshed ahead of expiry;
//!    shared with the other functions through the credentials secret).
//! 2. [`Quota`] waits for a slot (the in-flight limit adapts to `X-Rate-Limit-Remaining`) and
//!    for budget units, leased in batches from one DynamoDB item per grant (GCRA), so every
//!    function together stays below Canvas's leaky bucket.
//! 3. The request is sent with a timeout; its `X-Request-Cost` teaches the cost estimate.
//! 4. The answer is classified: throttled (403 "Rate Limit Exceeded" or 429), 5xx, timeouts
//!    and connection failures back off with jitter and retry, a bounded number of times; a
//!    401 for the token refreshes it once (single flight) and retries; anything else is a
//!    [`CanvasError`].
//!
//! Resources ([`CanvasClient::roster`], [`CanvasClient::modules`] ...) map Canvas's JSON
//! into [`model`]. Lists follow `Link: rel="next"` as opaque URLs ([`link`]).
//!
//! Nothing here logs tokens, secrets or people's data: logs carry paths, statuses, costs
//! and the credentials' secret id; callers add a correlation id through their span.
//!
//! Wiring: [`CanvasConfig`] (environment) → `build` gives a client; [`TokenKeeperConfig`]
//! gives the `token-keeper` function's [`TokenKeeper`]. Tests wire the parts directly with
//! [`MemoryBudgetStore`], [`MemoryCredentialStore`] and their own [`TokenEndpoint`].

mod api;
mod client;
mod config;
pub mod link;
pub mod model;
mod oauth;
mod quota;
#[cfg(test)]
mod tests;

pub use api::{ENROLLMENTS_QUERY, ROSTER_QUERY, ROSTER_STATES, SECTIONS_QUERY};
pub use client::{CanvasClient, ClientStats, Outcome, classify_response, error_message, resolve};
pub use config::{CanvasConfig, TokenKeeperConfig};
pub use coursewire_runtime::config::ConfigError;
/// The client's HTTP settings are the runtime's, shared with the Panopto client.
pub use coursewire_runtime::retry::HttpSettings;
pub use model::{
    Course, Enrollment, Module, ModuleItem, NewExternalUrlItem, Roster, Section, User,
};
pub use oauth::{
    AccessToken, CredentialStore, Credentials, GRANT_REVOKED_ALERT, HttpTokenEndpoint,
    MemoryCredentialStore, OAuthApp, SecretsManagerStore, TokenEndpoint, TokenError, TokenGrant,
    TokenHealth, TokenKeeper, TokenSettings, TokenSource, authorize,
};
pub use quota::{
    BudgetStore, CostEstimate, DynamoBudgetStore, Gcra, IN_FLIGHT_CHARGE, MemoryBudgetStore,
    Permit, Quota, QuotaSettings, QuotaStats, RequestKind, Swap, concurrency_for, gcra,
};

use coursewire_runtime::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum CanvasError {
    /// Canvas refused the refresh token: nothing works until a person re-authorizes.
    #[error(
        "the Canvas OAuth grant is revoked (invalid_grant): re-authorize coursewire in Canvas \
         and update the credentials secret"
    )]
    GrantRevoked,
    /// A 401 that a token refresh did not cure, a missing permission, or a rejected client.
    #[error("Canvas refused the request as unauthorized: {0}")]
    Unauthorized(String),
    #[error("Canvas kept throttling the request ({attempts} attempts)")]
    Throttled { attempts: u32 },
    #[error("Canvas answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("could not reach Canvas: {0}")]
    Transport(String),
    #[error("Canvas did not answer in time")]
    Timeout,
    #[error("unexpected answer from Canvas: {0}")]
    Decode(String),
    #[error("Canvas GraphQL errors: {}", .0.join("; "))]
    GraphQl(Vec<String>),
    /// The shared rate budget (DynamoDB) is unavailable.
    #[error("the shared Canvas rate budget is unavailable: {0}")]
    Quota(ServiceError),
    /// The credentials secret is unavailable or unreadable.
    #[error("the Canvas credentials are unavailable: {0}")]
    Secret(ServiceError),
    #[error("invalid Canvas client configuration: {0}")]
    Config(String),
}

impl CanvasError {
    /// Whether trying the same work later may succeed (callers' retry or DLQ decisions).
    pub fn is_transient(&self) -> bool {
        match self {
            CanvasError::Throttled { .. } | CanvasError::Transport(_) | CanvasError::Timeout => {
                true
            }
            CanvasError::Http { status, .. } => *status >= 500 || *status == 429,
            CanvasError::Quota(e) | CanvasError::Secret(e) => e.is_transient(),
            CanvasError::GrantRevoked
            | CanvasError::Unauthorized(_)
            | CanvasError::Decode(_)
            | CanvasError::GraphQl(_)
            | CanvasError::Config(_) => false,
        }
    }
}

/// A JSON error without the offending value (which may be a secret or a person's name).
/// A mutex's guard; a panic while it was held leaves nothing half-done in these caches and
/// counters, so a poisoned lock is taken over.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) use coursewire_runtime::secrets::describe_json_error;
