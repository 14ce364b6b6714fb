//! The OAuth2 lifecycle of coursewire's Canvas grant.
//!
//! The credentials (client id and secret, refresh token, and the current access token with
//! its expiry) live in one Secrets Manager secret. Every function reads the current access
//! token from there, so a refresh by one function (usually `token-keeper`, ahead of expiry)
//! serves all of them. [`TokenSource`] caches the token per process and refreshes it:
//! - ahead of expiry (a margin before `access_token_expires_at`);
//! - after Canvas answers 401 with a token, once however many requests failed together
//!   (single flight; a request whose token was already replaced just uses the new one, and
//!   the secret is re-read first in case another function refreshed).
//!
//! A revoked grant (the token endpoint answers `invalid_grant`) cannot heal by retrying: the
//! source stops every call for the grant, marks `revoked_at` in the secret so the other
//! functions stop too, logs [`GRANT_REVOKED_ALERT`] and emits the `CanvasGrantRevoked`
//! metric. Re-authorizing (a new refresh token in the secret, see [`authorize`]) lifts it.

mod credentials;
mod endpoint;
mod http_endpoint;
mod keeper;
mod memory_store;
mod secrets_manager;
mod source;

pub use credentials::{AccessToken, CredentialStore, Credentials};
pub use endpoint::{OAuthApp, TokenEndpoint, TokenError, TokenGrant, authorize};
pub use http_endpoint::HttpTokenEndpoint;
pub use keeper::{TokenHealth, TokenKeeper};
pub use memory_store::MemoryCredentialStore;
pub use secrets_manager::SecretsManagerStore;
pub use source::{TokenSettings, TokenSource};

/// The stable message of the revoked-grant alert (alarm on the metric, search logs for this).
pub const GRANT_REVOKED_ALERT: &str = "Canvas OAuth grant revoked: all Canvas calls for this grant are stopped until it is \
     re-authorized";

#[cfg(test)]
mod tests;
