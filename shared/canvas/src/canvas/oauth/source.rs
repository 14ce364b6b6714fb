//! The process's access token: cached, refreshed ahead of expiry and after a 401 (single
//! flight), stopped for good on a revoked grant.

use super::super::{CanvasError, lock};
use super::GRANT_REVOKED_ALERT;
use super::credentials::{AccessToken, CredentialStore, Credentials};
use super::endpoint::{TokenEndpoint, TokenError, endpoint_error, expiry};
use chrono::Utc;
use coursewire_runtime::telemetry::{Metrics, MetricsSink};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

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
        let replaced =
            |t: &AccessToken| t.secret() != failed.secret() && t.valid_for(Duration::ZERO);
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

    /// Reads the credentials secret now, not trusting this process's cache: a grant another
    /// function found revoked (`revoked_at`) is revoked here too, and a re-authorized one (a
    /// new refresh token) resumes at once. For the health check, whose cached token would
    /// otherwise look healthy for up to its whole lifetime after a revocation.
    pub async fn reread(&self) -> Result<(), CanvasError> {
        let credentials = self.load().await?;
        let mut revoked = lock(&self.revoked);
        if revoked
            .as_ref()
            .is_some_and(|r| digest(&credentials.refresh_token) != r.refresh_token_digest)
        {
            tracing::info!(
                credentials = self.store.id(),
                "the Canvas grant was re-authorized; resuming Canvas calls"
            );
            *revoked = None;
        }
        Ok(())
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
pub(super) fn stored_token(credentials: &Credentials) -> Result<Option<AccessToken>, CanvasError> {
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
