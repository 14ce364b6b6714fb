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

use super::CanvasError;
use crate::aws::AwsError;
use crate::telemetry::{Metrics, MetricsSink};
use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The stable message of the revoked-grant alert (alarm on the metric, search logs for this).
pub const GRANT_REVOKED_ALERT: &str = "Canvas OAuth grant revoked: all Canvas calls for this grant are stopped until it is \
     re-authorized";

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
    fn valid_for(&self, margin: Duration) -> bool {
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

/// The credentials as the JSON `SecretString` of one secret (GetSecretValue /
/// PutSecretValue).
pub struct SecretsManagerStore {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerStore {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait]
impl CredentialStore for SecretsManagerStore {
    fn id(&self) -> &str {
        &self.secret_id
    }

    async fn load(&self) -> Result<Credentials, CanvasError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| CanvasError::Secret(crate::aws::classify(&e)))?;
        let text = out.secret_string().ok_or_else(|| {
            CanvasError::Secret(AwsError::Permanent(
                "the Canvas credentials secret has no SecretString".into(),
            ))
        })?;
        serde_json::from_str(text).map_err(|e| {
            CanvasError::Secret(AwsError::Permanent(format!(
                "the Canvas credentials secret is not credentials JSON: {}",
                super::describe_json_error(&e)
            )))
        })
    }

    async fn save(&self, credentials: &Credentials) -> Result<(), CanvasError> {
        let text = serde_json::to_string(credentials)
            .map_err(|e| CanvasError::Secret(AwsError::Permanent(e.to_string())))?;
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| CanvasError::Secret(crate::aws::classify(&e)))?;
        Ok(())
    }
}

/// Credentials in memory: for tests and single-process tools.
pub struct MemoryCredentialStore {
    credentials: Mutex<Credentials>,
    saves: AtomicU64,
}

impl MemoryCredentialStore {
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials: Mutex::new(credentials),
            saves: AtomicU64::new(0),
        }
    }

    pub fn current(&self) -> Credentials {
        lock(&self.credentials).clone()
    }

    /// Replaces the credentials, as another function or an operator would.
    pub fn replace(&self, credentials: Credentials) {
        *lock(&self.credentials) = credentials;
    }

    pub fn saves(&self) -> u64 {
        self.saves.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl CredentialStore for MemoryCredentialStore {
    fn id(&self) -> &str {
        "memory"
    }

    async fn load(&self) -> Result<Credentials, CanvasError> {
        Ok(self.current())
    }

    async fn save(&self, credentials: &Credentials) -> Result<(), CanvasError> {
        self.saves.fetch_add(1, Ordering::Relaxed);
        self.replace(credentials.clone());
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

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

pub struct HttpTokenEndpoint {
    client: reqwest::Client,
}

impl HttpTokenEndpoint {
    pub fn new(timeout: Duration) -> Result<Self, CanvasError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| CanvasError::Config(e.to_string()))?;
        Ok(Self { client })
    }

    async fn post(&self, base_url: &str, form: &[(&str, &str)]) -> Result<TokenGrant, TokenError> {
        let url = format!("{}/login/oauth2/token", base_url.trim_end_matches('/'));
        let response = self
            .client
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(|e| TokenError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| TokenError::Unavailable(e.without_url().to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                TokenError::Unavailable(format!(
                    "unreadable token response: {}",
                    super::describe_json_error(&e)
                ))
            });
        }
        #[derive(Deserialize)]
        struct ErrorBody {
            error: Option<String>,
        }
        let error = serde_json::from_slice::<ErrorBody>(&body)
            .ok()
            .and_then(|b| b.error)
            .unwrap_or_default();
        Err(match (status.as_u16(), error.as_str()) {
            (_, "invalid_grant") => TokenError::InvalidGrant,
            (_, "invalid_client") => TokenError::InvalidClient,
            (s, _) if s >= 500 || s == 429 => TokenError::Unavailable(format!("HTTP {s}")),
            (s, _) => TokenError::Rejected { status: s, error },
        })
    }
}

#[async_trait]
impl TokenEndpoint for HttpTokenEndpoint {
    async fn refresh(&self, c: &Credentials) -> Result<TokenGrant, TokenError> {
        self.post(
            &c.base_url,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
                ("refresh_token", &c.refresh_token),
            ],
        )
        .await
    }

    async fn exchange_code(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
        code: &str,
    ) -> Result<TokenGrant, TokenError> {
        self.post(
            &app.base_url,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &app.client_id),
                ("client_secret", &app.client_secret),
                ("redirect_uri", redirect_uri),
                ("code", code),
            ],
        )
        .await
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

fn expiry(grant: &TokenGrant) -> DateTime<Utc> {
    Utc::now() + TimeDelta::seconds(grant.expires_in.unwrap_or(3600).min(86_400 * 365) as i64)
}

fn endpoint_error(e: TokenError) -> CanvasError {
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

#[derive(Debug, Clone, PartialEq)]
pub struct TokenSettings {
    /// Refresh this long before the access token expires.
    pub refresh_margin: Duration,
    /// While revoked, look at the secret this often for a re-authorization.
    pub revoked_recheck: Duration,
    /// Attempts at the token endpoint when it is unavailable.
    pub refresh_attempts: u32,
    pub retry_delay: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(300),
            revoked_recheck: Duration::from_secs(60),
            refresh_attempts: 3,
            retry_delay: Duration::from_millis(500),
        }
    }
}

/// Which refresh token was refused, and when the secret was last looked at since.
struct Revocation {
    refresh_token_digest: String,
    checked_at: Instant,
}

/// Why a refresh happened (the `Reason` dimension of `CanvasTokenRefreshes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshReason {
    Expiring,
    Rejected,
}

/// The process's view of the grant's access token. Build once per process.
pub struct TokenSource {
    store: Arc<dyn CredentialStore>,
    endpoint: Arc<dyn TokenEndpoint>,
    settings: TokenSettings,
    current: RwLock<Option<AccessToken>>,
    /// Held while loading or refreshing: one refresh in flight per process.
    gate: tokio::sync::Mutex<()>,
    revoked: Mutex<Option<Revocation>>,
    refreshes: AtomicU64,
    metrics: Arc<dyn MetricsSink>,
    function: String,
}

impl TokenSource {
    pub fn new(
        store: Arc<dyn CredentialStore>,
        endpoint: Arc<dyn TokenEndpoint>,
        settings: TokenSettings,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Self {
        Self {
            store,
            endpoint,
            settings,
            current: RwLock::new(None),
            gate: tokio::sync::Mutex::new(()),
            revoked: Mutex::new(None),
            refreshes: AtomicU64::new(0),
            metrics,
            function: function.to_string(),
        }
    }

    /// The non-secret id of the credentials (a sensible default budget id).
    pub fn credentials_id(&self) -> &str {
        self.store.id()
    }

    /// Refreshes this process made.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    pub fn is_revoked(&self) -> bool {
        lock(&self.revoked).is_some()
    }

    fn cached(&self) -> Option<AccessToken> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn cache(&self, token: Option<AccessToken>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = token;
    }

    /// A token valid for at least the refresh margin, refreshed if needed.
    pub async fn access_token(&self) -> Result<AccessToken, CanvasError> {
        Ok(self.valid_for(self.settings.refresh_margin).await?.0)
    }

    /// A token valid for at least `window`, and whether it had to be refreshed for that (the
    /// token keeper asks with a window wider than the margin).
    pub async fn valid_for(&self, window: Duration) -> Result<(AccessToken, bool), CanvasError> {
        self.check_revoked().await?;
        if let Some(token) = self.cached().filter(|t| t.valid_for(window)) {
            return Ok((token, false));
        }
        let _gate = self.gate.lock().await;
        if self.is_revoked() {
            return Err(CanvasError::GrantRevoked);
        }
        if let Some(token) = self.cached().filter(|t| t.valid_for(window)) {
            return Ok((token, false));
        }
        let credentials = self.load().await?;
        if let Some(token) = stored_token(&credentials)?.filter(|t| t.valid_for(window)) {
            self.cache(Some(token.clone()));
            return Ok((token, false));
        }
        let token = self.refresh(credentials, RefreshReason::Expiring).await?;
        Ok((token, true))
    }

    /// Canvas answered 401 to `failed`. Refreshes once for everyone who got that answer with
    /// that token: later callers find the new token and use it.
    pub async fn refresh_after_failure(
        &self,
        failed: &AccessToken,
    ) -> Result<AccessToken, CanvasError> {
        self.check_revoked().await?;
        let _gate = self.gate.lock().await;
        if self.is_revoked() {
            return Err(CanvasError::GrantRevoked);
        }
        let replaced = |t: &AccessToken| t.secret != failed.secret && t.valid_for(Duration::ZERO);
        if let Some(token) = self.cached().filter(replaced) {
            return Ok(token);
        }
        let credentials = self.load().await?;
        if let Some(token) = stored_token(&credentials)?.filter(replaced) {
            self.cache(Some(token.clone()));
            return Ok(token);
        }
        self.refresh(credentials, RefreshReason::Rejected).await
    }

    /// Loads the secret; a grant another function found revoked stops this one too.
    async fn load(&self) -> Result<Credentials, CanvasError> {
        let credentials = self.store.load().await?;
        if credentials.revoked_at.is_some() {
            tracing::warn!(
                credentials = self.store.id(),
                "the Canvas credentials secret marks the grant revoked; not calling Canvas"
            );
            self.mark_revoked(&credentials);
            return Err(CanvasError::GrantRevoked);
        }
        Ok(credentials)
    }

    async fn refresh(
        &self,
        mut credentials: Credentials,
        reason: RefreshReason,
    ) -> Result<AccessToken, CanvasError> {
        let attempts = self.settings.refresh_attempts.max(1);
        let mut attempt = 1;
        let grant = loop {
            match self.endpoint.refresh(&credentials).await {
                Ok(grant) => break grant,
                Err(TokenError::InvalidGrant) => return Err(self.revoke(credentials).await),
                Err(TokenError::InvalidClient) => {
                    tracing::error!(
                        credentials = self.store.id(),
                        "Canvas refused coursewire's client id or secret (invalid_client): check \
                         the developer key and the credentials secret"
                    );
                    return Err(endpoint_error(TokenError::InvalidClient));
                }
                Err(TokenError::Unavailable(message)) if attempt < attempts => {
                    tracing::warn!(attempt, error = %message, "Canvas token endpoint unavailable, retrying");
                    let cap = self.settings.retry_delay.as_millis() as u64 * u64::from(attempt);
                    tokio::time::sleep(Duration::from_millis(rand::random_range(cap / 2..=cap)))
                        .await;
                    attempt += 1;
                }
                Err(e) => return Err(endpoint_error(e)),
            }
        };
        let expires_at = expiry(&grant);
        credentials.access_token = Some(grant.access_token);
        credentials.access_token_expires_at = Some(expires_at);
        credentials.access_token_issued_at = Some(Utc::now());
        if let Some(refresh_token) = grant.refresh_token {
            credentials.refresh_token = refresh_token;
        }
        let token = stored_token(&credentials)?
            .ok_or_else(|| CanvasError::Decode("refreshed token missing".into()))?;
        self.cache(Some(token.clone()));
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let reason = match reason {
            RefreshReason::Expiring => "expiring",
            RefreshReason::Rejected => "rejected",
        };
        tracing::info!(
            credentials = self.store.id(),
            reason,
            expires_at = %expires_at,
            "refreshed the Canvas access token"
        );
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        metrics.count("CanvasTokenRefreshes", &[("Reason", reason)], 1);
        metrics.flush();
        // Other functions pick the token up from the secret; if saving fails they refresh
        // on their own, which is wasteful but safe.
        if let Err(e) = self.store.save(&credentials).await {
            tracing::warn!(credentials = self.store.id(), error = %e, "could not save the refreshed Canvas token");
        }
        Ok(token)
    }

    /// Stops everything for the grant and raises the alert.
    async fn revoke(&self, mut credentials: Credentials) -> CanvasError {
        self.mark_revoked(&credentials);
        tracing::error!(
            credentials = self.store.id(),
            alert = "CanvasGrantRevoked",
            "{GRANT_REVOKED_ALERT}"
        );
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        metrics.count("CanvasGrantRevoked", &[], 1);
        metrics.flush();
        credentials.revoked_at = Some(Utc::now());
        credentials.access_token = None;
        credentials.access_token_expires_at = None;
        credentials.access_token_issued_at = None;
        if let Err(e) = self.store.save(&credentials).await {
            tracing::warn!(credentials = self.store.id(), error = %e, "could not mark the Canvas grant revoked in the secret");
        }
        CanvasError::GrantRevoked
    }

    fn mark_revoked(&self, credentials: &Credentials) {
        self.cache(None);
        *lock(&self.revoked) = Some(Revocation {
            refresh_token_digest: digest(&credentials.refresh_token),
            checked_at: Instant::now(),
        });
    }

    /// Fails fast while revoked; now and then looks whether the grant was re-authorized (a
    /// new refresh token without `revoked_at`).
    async fn check_revoked(&self) -> Result<(), CanvasError> {
        let revoked_digest = {
            let mut revoked = lock(&self.revoked);
            match revoked.as_mut() {
                None => return Ok(()),
                Some(r) if r.checked_at.elapsed() < self.settings.revoked_recheck => {
                    return Err(CanvasError::GrantRevoked);
                }
                Some(r) => {
                    r.checked_at = Instant::now();
                    r.refresh_token_digest.clone()
                }
            }
        };
        let credentials = self.store.load().await?;
        if credentials.revoked_at.is_none() && digest(&credentials.refresh_token) != revoked_digest
        {
            tracing::info!(
                credentials = self.store.id(),
                "the Canvas grant was re-authorized; resuming Canvas calls"
            );
            *lock(&self.revoked) = None;
            return Ok(());
        }
        Err(CanvasError::GrantRevoked)
    }
}

/// The access token stored with the credentials, if any.
fn stored_token(credentials: &Credentials) -> Result<Option<AccessToken>, CanvasError> {
    let base_url = reqwest::Url::parse(&credentials.base_url)
        .map_err(|e| CanvasError::Config(format!("the credentials' base_url is not a URL: {e}")))?;
    Ok(
        match (
            &credentials.access_token,
            credentials.access_token_expires_at,
        ) {
            (Some(secret), Some(expires_at)) if !secret.is_empty() => Some(
                AccessToken::new(secret, base_url, expires_at)
                    .issued_at(credentials.access_token_issued_at),
            ),
            _ => None,
        },
    )
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The token keeper's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenHealth {
    /// A token valid beyond the keeper's window is in the secret, and the grant stands.
    pub healthy: bool,
    pub revoked: bool,
    /// This run refreshed the token.
    pub refreshed: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub seconds_to_expiry: Option<i64>,
}

/// The scheduled `token-keeper`'s logic: refresh ahead of expiry so no request ever waits
/// for a refresh, and report token health as metrics (`CanvasTokenSecondsToExpiry`,
/// `CanvasTokenHealthy`; refreshes count in `CanvasTokenRefreshes`).
pub struct TokenKeeper {
    tokens: Arc<TokenSource>,
    /// Refresh when the token expires within this window (wider than the request margin).
    window: Duration,
    metrics: Arc<dyn MetricsSink>,
    function: String,
}

/// The schedule refreshes and reports; a direct invocation answers the token's health.
#[async_trait]
impl crate::function::ScheduleHandler for TokenKeeper {
    async fn handle(
        &self,
        _input: Option<serde_json::Value>,
    ) -> Result<(), crate::function::HandlerError> {
        self.run().await?;
        Ok(())
    }
}

#[async_trait]
impl crate::function::InvokeHandler for TokenKeeper {
    async fn invoke(
        &self,
        _event: serde_json::Value,
    ) -> Result<serde_json::Value, crate::function::HandlerError> {
        Ok(serde_json::to_value(self.run().await?)?)
    }
}

impl TokenKeeper {
    pub fn new(
        tokens: Arc<TokenSource>,
        window: Duration,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Self {
        Self {
            tokens,
            window,
            metrics,
            function: function.to_string(),
        }
    }

    /// A revoked grant is a health state (reported, alerted by the source), not a failure of
    /// the run; an unavailable secret or token endpoint is (so the schedule's retry and error
    /// metrics see it).
    pub async fn run(&self) -> Result<TokenHealth, CanvasError> {
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        let result = self.tokens.valid_for(self.window).await;
        let health = match result {
            Ok((token, refreshed)) => {
                let seconds = (token.expires_at() - Utc::now()).num_seconds();
                metrics.record(
                    "CanvasTokenSecondsToExpiry",
                    &[],
                    crate::telemetry::Unit::Seconds,
                    seconds as f64,
                );
                Ok(TokenHealth {
                    healthy: true,
                    revoked: false,
                    refreshed,
                    expires_at: Some(token.expires_at()),
                    seconds_to_expiry: Some(seconds),
                })
            }
            Err(CanvasError::GrantRevoked) => Ok(TokenHealth {
                healthy: false,
                revoked: true,
                refreshed: false,
                expires_at: None,
                seconds_to_expiry: None,
            }),
            Err(e) => {
                tracing::error!(error = %e, "token keeper could not ensure a fresh Canvas token");
                Err(e)
            }
        };
        let healthy = matches!(&health, Ok(h) if h.healthy);
        metrics.record(
            "CanvasTokenHealthy",
            &[],
            crate::telemetry::Unit::None,
            if healthy { 1.0 } else { 0.0 },
        );
        metrics.flush();
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::CollectingSink;

    #[test]
    fn short_lived_tokens_are_used_for_three_quarters_of_their_life() {
        let url = reqwest::Url::parse("https://canvas.test").unwrap();
        let now = Utc::now();
        // 4 s lifetime, 1 s used: with a 5 min margin it would never be used at all.
        let short = AccessToken::new("t", url.clone(), now + TimeDelta::seconds(3))
            .issued_at(Some(now - TimeDelta::seconds(1)));
        assert!(short.valid_for(Duration::from_secs(300)));
        let late = AccessToken::new("t", url.clone(), now + TimeDelta::milliseconds(500))
            .issued_at(Some(now - TimeDelta::milliseconds(3500)));
        assert!(!late.valid_for(Duration::from_secs(300)));
        // Issue time unknown (or an hour-long token): the margin applies as is.
        let unknown = AccessToken::new("t", url, now + TimeDelta::seconds(200));
        assert!(!unknown.valid_for(Duration::from_secs(300)));
    }

    /// A token endpoint that counts refreshes and answers from a script.
    pub(crate) struct FakeEndpoint {
        pub refreshes: AtomicU64,
        pub answer: Mutex<Result<(), TokenError>>,
        pub delay: Duration,
    }

    impl FakeEndpoint {
        pub fn ok() -> Self {
            Self {
                refreshes: AtomicU64::new(0),
                answer: Mutex::new(Ok(())),
                delay: Duration::from_millis(20),
            }
        }
    }

    #[async_trait]
    impl TokenEndpoint for FakeEndpoint {
        async fn refresh(&self, _: &Credentials) -> Result<TokenGrant, TokenError> {
            tokio::time::sleep(self.delay).await;
            let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
            lock(&self.answer).clone()?;
            Ok(TokenGrant {
                access_token: format!("token-{n}"),
                expires_in: Some(3600),
                refresh_token: None,
            })
        }

        async fn exchange_code(
            &self,
            _: &OAuthApp,
            _: &str,
            code: &str,
        ) -> Result<TokenGrant, TokenError> {
            Ok(TokenGrant {
                access_token: format!("first-{code}"),
                expires_in: Some(3600),
                refresh_token: Some(format!("refresh-{code}")),
            })
        }
    }

    pub(crate) fn credentials(access: Option<(&str, i64)>) -> Credentials {
        Credentials {
            base_url: "https://canvas.test".into(),
            client_id: "10000000000001".into(),
            client_secret: "client-secret".into(),
            refresh_token: "refresh-1".into(),
            access_token: access.map(|(t, _)| t.to_string()),
            access_token_expires_at: access.map(|(_, s)| Utc::now() + TimeDelta::seconds(s)),
            access_token_issued_at: None,
            revoked_at: None,
            extra: serde_json::Map::from_iter([("note".to_string(), "kept".into())]),
        }
    }

    fn source(
        store: Arc<MemoryCredentialStore>,
        endpoint: Arc<FakeEndpoint>,
        sink: Arc<CollectingSink>,
    ) -> Arc<TokenSource> {
        Arc::new(TokenSource::new(
            store,
            endpoint,
            TokenSettings {
                retry_delay: Duration::from_millis(1),
                ..TokenSettings::default()
            },
            sink,
            "test",
        ))
    }

    #[tokio::test]
    async fn uses_the_stored_token_and_refreshes_ahead_of_expiry() {
        let store = Arc::new(MemoryCredentialStore::new(credentials(Some((
            "stored", 3000,
        )))));
        let endpoint = Arc::new(FakeEndpoint::ok());
        let sink = Arc::new(CollectingSink::new());
        let tokens = source(store.clone(), endpoint.clone(), sink.clone());
        assert_eq!(tokens.access_token().await.unwrap().secret(), "stored");
        assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 0);

        // Within the 5-minute margin: refreshed, and saved for the other functions.
        store.replace(credentials(Some(("old", 200))));
        let fresh = Arc::new(TokenSource::new(
            store.clone(),
            endpoint.clone(),
            TokenSettings::default(),
            sink.clone(),
            "test",
        ));
        let token = fresh.access_token().await.unwrap();
        assert_eq!(token.secret(), "token-1");
        let saved = store.current();
        assert_eq!(saved.access_token.as_deref(), Some("token-1"));
        assert_eq!(
            saved.refresh_token, "refresh-1",
            "refresh keeps the refresh token"
        );
        assert_eq!(saved.extra.get("note"), Some(&"kept".into()));
        assert_eq!(
            sink.sum("CanvasTokenRefreshes", &[("Reason", "expiring")]),
            1.0
        );
    }

    #[tokio::test]
    async fn concurrent_401s_refresh_exactly_once() {
        let store = Arc::new(MemoryCredentialStore::new(credentials(Some(("t0", 3000)))));
        let endpoint = Arc::new(FakeEndpoint::ok());
        let tokens = source(store, endpoint.clone(), Arc::new(CollectingSink::new()));
        let failed = tokens.access_token().await.unwrap();
        let tasks: Vec<_> = (0..25)
            .map(|_| {
                let tokens = tokens.clone();
                let failed = failed.clone();
                tokio::spawn(async move { tokens.refresh_after_failure(&failed).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().secret(), "token-1");
        }
        assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 1);
        assert_eq!(tokens.refreshes(), 1);
    }

    #[tokio::test]
    async fn a_401_after_another_function_refreshed_uses_the_secret() {
        let store = Arc::new(MemoryCredentialStore::new(credentials(Some(("t0", 3000)))));
        let endpoint = Arc::new(FakeEndpoint::ok());
        let tokens = source(
            store.clone(),
            endpoint.clone(),
            Arc::new(CollectingSink::new()),
        );
        let failed = tokens.access_token().await.unwrap();
        store.replace(credentials(Some(("from-keeper", 3600))));
        let token = tokens.refresh_after_failure(&failed).await.unwrap();
        assert_eq!(token.secret(), "from-keeper");
        assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn revoked_grant_alerts_once_then_fails_fast_everywhere() {
        let store = Arc::new(MemoryCredentialStore::new(credentials(Some(("t0", 3000)))));
        let endpoint = Arc::new(FakeEndpoint::ok());
        *lock(&endpoint.answer) = Err(TokenError::InvalidGrant);
        let sink = Arc::new(CollectingSink::new());
        let tokens = source(store.clone(), endpoint.clone(), sink.clone());
        let failed = tokens.access_token().await.unwrap();
        let results =
            futures::future::join_all((0..10).map(|_| tokens.refresh_after_failure(&failed))).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(CanvasError::GrantRevoked)))
        );
        assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 1, "no retry");
        assert!(tokens.is_revoked());
        assert!(matches!(
            tokens.access_token().await,
            Err(CanvasError::GrantRevoked)
        ));
        assert_eq!(sink.sum("CanvasGrantRevoked", &[]), 1.0);
        let saved = store.current();
        assert!(saved.revoked_at.is_some(), "other functions stop too");
        assert_eq!(saved.access_token, None);

        // Another function reads the mark and stops without calling Canvas.
        let other_endpoint = Arc::new(FakeEndpoint::ok());
        let other = source(store.clone(), other_endpoint.clone(), sink.clone());
        assert!(matches!(
            other.access_token().await,
            Err(CanvasError::GrantRevoked)
        ));
        assert_eq!(other_endpoint.refreshes.load(Ordering::SeqCst), 0);
        assert_eq!(sink.sum("CanvasGrantRevoked", &[]), 1.0, "alerted once");
    }

    #[tokio::test]
    async fn re_authorizing_lifts_the_revocation() {
        let store = Arc::new(MemoryCredentialStore::new(credentials(None)));
        let endpoint = Arc::new(FakeEndpoint::ok());
        *lock(&endpoint.answer) = Err(TokenError::InvalidGrant);
        let tokens = Arc::new(TokenSource::new(
            store.clone(),
            endpoint.clone(),
            TokenSettings {
                revoked_recheck: Duration::ZERO,
                ..TokenSettings::default()
            },
            Arc::new(CollectingSink::new()),
            "test",
        ));
        assert!(matches!(
            tokens.access_token().await,
            Err(CanvasError::GrantRevoked)
        ));
        // The same (revoked) refresh token is not tried again.
        assert!(tokens.access_token().await.is_err());
        assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 1);

        let app = OAuthApp {
            base_url: "https://canvas.test".into(),
            client_id: "1".into(),
            client_secret: "s".into(),
        };
        let fresh = authorize(endpoint.as_ref(), &app, "https://cw.test/cb", "abc")
            .await
            .unwrap();
        assert_eq!(fresh.refresh_token, "refresh-abc");
        store.replace(fresh);
        assert_eq!(tokens.access_token().await.unwrap().secret(), "first-abc");
        assert!(!tokens.is_revoked());
    }

    #[tokio::test]
    async fn keeper_refreshes_within_its_window_and_reports_health() {
        let store = Arc::new(MemoryCredentialStore::new(credentials(Some(("t0", 600)))));
        let endpoint = Arc::new(FakeEndpoint::ok());
        let sink = Arc::new(CollectingSink::new());
        let tokens = source(store.clone(), endpoint.clone(), sink.clone());
        let keeper = TokenKeeper::new(
            tokens.clone(),
            Duration::from_secs(900),
            sink.clone(),
            "token-keeper",
        );
        let health = keeper.run().await.unwrap();
        assert!(health.healthy && health.refreshed && !health.revoked);
        assert!(health.seconds_to_expiry.unwrap() > 3500);
        let again = keeper.run().await.unwrap();
        assert!(again.healthy && !again.refreshed);
        assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 1);
        assert_eq!(sink.values("CanvasTokenHealthy"), vec![1.0, 1.0]);
        assert_eq!(sink.values("CanvasTokenSecondsToExpiry").len(), 2);

        *lock(&endpoint.answer) = Err(TokenError::InvalidGrant);
        store.replace(credentials(Some(("t1", 60))));
        let revoked = TokenKeeper::new(
            source(store, endpoint, sink.clone()),
            Duration::from_secs(900),
            sink.clone(),
            "token-keeper",
        )
        .run()
        .await
        .unwrap();
        assert!(!revoked.healthy && revoked.revoked);
        assert_eq!(sink.values("CanvasTokenHealthy"), vec![1.0, 1.0, 0.0]);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let c = credentials(Some(("very-secret-token", 10)));
        let text = format!("{c:?}");
        assert!(!text.contains("very-secret-token") && !text.contains("client-secret"));
        assert!(!text.contains("refresh-1"));
        let t = stored_token(&c).unwrap().unwrap();
        assert!(!format!("{t:?}").contains("very-secret-token"));
    }

    #[test]
    fn secret_json_round_trips_with_unknown_fields() {
        let json = r#"{"base_url":"https://canvas.test","client_id":"1","client_secret":"s",
            "refresh_token":"r","redirect_uri":"https://x.test/cb"}"#;
        let c: Credentials = serde_json::from_str(json).unwrap();
        assert_eq!(c.access_token, None);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["redirect_uri"], "https://x.test/cb");
        assert!(back.get("revoked_at").is_none());
    }
}
