//! The credentials secret's contents, the access token, and the port to where they live.

use super::super::CanvasError;
use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The JSON of the credentials secret. Unknown fields are kept, so saving a refreshed token
/// never drops what an operator added. `Debug` never shows secrets.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// Canvas's root URL, e.g. `https://canvas.example.edu`.
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_expires_at: Option<DateTime<Utc>>,
    /// When Canvas issued it: a token that lives shorter than four refresh margins is used
    /// for three quarters of its life before it is refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_issued_at: Option<DateTime<Utc>>,
    /// Set when Canvas refused the refresh token; cleared by re-authorizing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// A Canvas access token and where it is valid. `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<str>,
    base_url: reqwest::Url,
    expires_at: DateTime<Utc>,
    /// When Canvas issued it, if known.
    issued_at: Option<DateTime<Utc>>,
}

impl AccessToken {
    pub fn new(secret: &str, base_url: reqwest::Url, expires_at: DateTime<Utc>) -> Self {
        Self {
            secret: secret.into(),
            base_url,
            expires_at,
            issued_at: None,
        }
    }

    /// The same token, knowing when it was issued (see [`Credentials::access_token_issued_at`]).
    pub fn issued_at(mut self, issued_at: Option<DateTime<Utc>>) -> Self {
        self.issued_at = issued_at;
        self
    }

    /// The bearer value. Never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn base_url(&self) -> &reqwest::Url {
        &self.base_url
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// Valid for longer than `margin` — or, for a token that lives shorter than four margins,
    /// than a quarter of its life, so short-lived tokens are used before being refreshed.
    pub(super) fn valid_for(&self, margin: Duration) -> bool {
        let margin = match self.issued_at {
            Some(issued) => delta(margin).min((self.expires_at - issued) / 4),
            None => delta(margin),
        };
        self.expires_at - Utc::now() > margin
    }
}

/// The same token whenever this process got it.
impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.secret == other.secret
            && self.base_url == other.base_url
            && self.expires_at == other.expires_at
    }
}

impl Eq for AccessToken {}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("base_url", &self.base_url.as_str())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Where the credentials live (a port: Secrets Manager in production, memory in tests).
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// A non-secret name of the credentials for logs (e.g. the secret's id).
    fn id(&self) -> &str;
    async fn load(&self) -> Result<Credentials, CanvasError>;
    async fn save(&self, credentials: &Credentials) -> Result<(), CanvasError>;
}
