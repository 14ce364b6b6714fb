//! The Panopto client every coursewire function shares: Panopto's REST API
//! (`/Panopto/api/v1`, OAuth2 client credentials) and the SOAP calls REST lacks: a
//! session's processing `State` and a remote recorder's `State`, each batched into one call
//! for many ids so a poller makes a constant number of Panopto calls per tick, and folder
//! external ids (find a section's folder again whatever people renamed it to).
//!
//! - [`Panopto`]: the port the functions speak, in Panopto's own terms ([`model`]).
//! - [`HttpPanopto`]: the adapter over HTTPS. Build it once per process and share it
//!   (`Arc`); it caches the access token, fetches a new one ahead of expiry and after a 401
//!   (once however many requests failed together), retries 429 and 5xx with jittered backoff
//!   honouring `Retry-After` (bounded by [`HttpSettings::max_attempts`]) and counts what it
//!   did ([`ClientStats`]).
//! - [`CredentialStore`]: where the credentials live ([`SecretsManagerStore`] in production,
//!   [`MemoryCredentialStore`] in tests and tools).
//!
//! # The credentials secret
//!
//! One Secrets Manager secret whose `SecretString` is JSON ([`PanoptoCredentials`]):
//!
//! | field | what |
//! |---|---|
//! | `base_url` | the Panopto site's root, e.g. `https://example.hosted.panopto.com` (no `/Panopto`) |
//! | `client_id` | the API client's id (Panopto: System → API Clients, type "Server-side Web Application") |
//! | `client_secret` | its secret |
//! | `soap_username` | the Panopto user the SOAP calls authenticate as (`AuthenticationInfo.UserKey`) |
//! | `soap_password` | that user's password (`AuthenticationInfo.Password`) |
//!
//! Other fields are ignored. The client only reads the secret (client credentials have no
//! refresh token to save), when it first needs it and again at each token fetch, so a rotated
//! secret is picked up within a token's life.
//!
//! Folder external ids belong to a Panopto "site membership provider" (an identity
//! provider's instance name): `PANOPTO_EXTERNAL_ID_PROVIDER`, default
//! [`DEFAULT_EXTERNAL_ID_PROVIDER`] (`coursewire`).
//!
//! Wiring: [`PanoptoConfig::from_env`] (`PANOPTO_SECRET_ID`, optional timeouts and
//! provider) then [`PanoptoConfig::build`] with a Secrets Manager client; or
//! [`HttpPanopto::new`] with any [`CredentialStore`] (and
//! [`HttpPanopto::with_external_id_provider`]).
//!
//! Nothing here logs tokens, secrets or people's data: logs carry methods, paths (ids only),
//! statuses and attempt counts.

mod client;
mod config;
mod credentials;
mod multipart;
mod port;
mod rest;
mod secrets_manager;
mod soap;
mod token;
mod token_endpoint;
mod xml;

pub mod model;

pub use client::{
    ClientStats, DEFAULT_EXTERNAL_ID_PROVIDER, HttpPanopto, Outcome, classify_response,
};
pub use config::PanoptoConfig;
pub use coursewire_runtime::retry::HttpSettings;
pub use credentials::{CredentialStore, MemoryCredentialStore, PanoptoCredentials};
pub use model::{
    BasicFolder, BuiltInRoleType, CaptionProvider, Folder, FolderSettings, NIL_GUID, PAGE_SIZE,
    Permission, PermissionCreate, Principal, PrincipalType, RecorderBooking, RecorderScheduleEntry,
    RecorderState, RemoteRecorder, Role, ScheduledRecording, ScheduledRecordingCreate, Session,
    SessionState, SessionStatus, SessionUpdate, SessionUrls, User,
};
pub use port::Panopto;
pub use secrets_manager::SecretsManagerStore;
pub use soap::SoapFault;
pub use token::{AccessToken, TokenEndpoint, TokenGrant, TokenSettings, TokenSource};
pub use token_endpoint::HttpTokenEndpoint;

use coursewire_runtime::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum PanoptoError {
    /// The session, folder, recording ... does not exist (or is not visible to the client).
    #[error("not found in Panopto: {0}")]
    NotFound(String),
    /// The remote recorder is already booked for (part of) that time.
    #[error("remote recorder {recorder} is already booked: {message}")]
    Conflict { recorder: String, message: String },
    #[error("Panopto kept throttling the request ({attempts} attempts)")]
    Throttled { attempts: u32 },
    /// A 401 a fresh token did not cure, a 403, a refused client or SOAP user.
    #[error("Panopto refused the request as unauthorized: {0}")]
    Unauthorized(String),
    /// Connection failures and timeouts.
    #[error("could not reach Panopto: {0}")]
    Transport(String),
    #[error("Panopto answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    /// A SOAP call answered with a Fault.
    #[error("Panopto SOAP fault {}: {}", .0.code, .0.message)]
    Soap(SoapFault),
    #[error("unexpected answer from Panopto: {0}")]
    Decode(String),
    #[error("invalid Panopto client configuration: {0}")]
    Config(String),
    /// The credentials secret is unavailable or unreadable.
    #[error("the Panopto credentials are unavailable: {0}")]
    Secret(ServiceError),
}

impl PanoptoError {
    /// Whether trying the same work later may succeed (callers' retry or DLQ decisions).
    pub fn is_transient(&self) -> bool {
        match self {
            PanoptoError::Throttled { .. } | PanoptoError::Transport(_) => true,
            PanoptoError::Http { status, .. } => *status >= 500 || *status == 429,
            PanoptoError::Soap(fault) => fault.is_server_fault(),
            PanoptoError::Secret(e) => e.is_transient(),
            PanoptoError::NotFound(_)
            | PanoptoError::Conflict { .. }
            | PanoptoError::Unauthorized(_)
            | PanoptoError::Decode(_)
            | PanoptoError::Config(_) => false,
        }
    }
}

/// A mutex's guard; a panic while it was held leaves nothing half-done in these caches and
/// counters, so a poisoned lock is taken over.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) use coursewire_runtime::secrets::describe_json_error;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_the_ones_worth_retrying() {
        assert!(PanoptoError::Throttled { attempts: 3 }.is_transient());
        assert!(PanoptoError::Transport("reset".into()).is_transient());
        assert!(
            PanoptoError::Http {
                status: 503,
                message: String::new()
            }
            .is_transient()
        );
        assert!(
            !PanoptoError::Http {
                status: 400,
                message: String::new()
            }
            .is_transient()
        );
        assert!(
            !PanoptoError::Conflict {
                recorder: "r".into(),
                message: "m".into()
            }
            .is_transient()
        );
        assert!(!PanoptoError::Unauthorized("no".into()).is_transient());
        assert!(PanoptoError::Secret(ServiceError::Transient("x".into())).is_transient());
        assert!(!PanoptoError::Secret(ServiceError::Permanent("x".into())).is_transient());
    }
}
