//! Canvas's token endpoint as a port, and the first authorization of the grant.

use super::super::CanvasError;
use super::credentials::Credentials;
use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use std::fmt;

/// What Canvas's token endpoint granted. `Debug` never shows tokens.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct TokenGrant {
    pub access_token: String,
    /// Seconds (Canvas: 3600).
    pub expires_in: Option<u64>,
    /// Only on `authorization_code`; a refresh keeps the same refresh token.
    pub refresh_token: Option<String>,
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGrant")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The refresh token (or code) is revoked, expired or unknown: a person must
    /// re-authorize.
    #[error("the token endpoint refused the grant (invalid_grant)")]
    InvalidGrant,
    /// The client id or secret is wrong, or the developer key is disabled.
    #[error("the token endpoint refused the client (invalid_client)")]
    InvalidClient,
    /// Timeouts, connection failures, 5xx: worth a retry.
    #[error("the token endpoint is unavailable: {0}")]
    Unavailable(String),
    #[error("the token endpoint answered HTTP {status}: {error}")]
    Rejected { status: u16, error: String },
}

/// Canvas's `POST /login/oauth2/token` (a port, so the lifecycle is testable without a
/// server).
#[async_trait]
pub trait TokenEndpoint: Send + Sync {
    /// `grant_type=refresh_token`.
    async fn refresh(&self, credentials: &Credentials) -> Result<TokenGrant, TokenError>;
    /// `grant_type=authorization_code`: the first grant, after a person authorized the app.
    async fn exchange_code(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
        code: &str,
    ) -> Result<TokenGrant, TokenError>;
}

/// The developer key coursewire authenticates as. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthApp {
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthApp")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// For setup tooling: exchanges the code Canvas redirected with for the grant's first
/// credentials (save them with a [`CredentialStore`]).
pub async fn authorize(
    endpoint: &dyn TokenEndpoint,
    app: &OAuthApp,
    redirect_uri: &str,
    code: &str,
) -> Result<Credentials, CanvasError> {
    let grant = endpoint
        .exchange_code(app, redirect_uri, code)
        .await
        .map_err(endpoint_error)?;
    let refresh_token = grant
        .refresh_token
        .clone()
        .ok_or_else(|| CanvasError::Decode("the token endpoint granted no refresh_token".into()))?;
    Ok(Credentials {
        base_url: app.base_url.clone(),
        client_id: app.client_id.clone(),
        client_secret: app.client_secret.clone(),
        refresh_token,
        access_token_expires_at: Some(expiry(&grant)),
        access_token_issued_at: Some(Utc::now()),
        access_token: Some(grant.access_token),
        revoked_at: None,
        extra: serde_json::Map::new(),
    })
}

pub(super) fn expiry(grant: &TokenGrant) -> DateTime<Utc> {
    Utc::now() + TimeDelta::seconds(grant.expires_in.unwrap_or(3600).min(86_400 * 365) as i64)
}

pub(super) fn endpoint_error(e: TokenError) -> CanvasError {
    match e {
        TokenError::InvalidGrant => CanvasError::GrantRevoked,
        TokenError::InvalidClient => CanvasError::Unauthorized(e.to_string()),
        TokenError::Unavailable(message) => CanvasError::Transport(message),
        TokenError::Rejected { status, error } => CanvasError::Http {
            status,
            message: format!("token endpoint: {error}"),
        },
    }
}
