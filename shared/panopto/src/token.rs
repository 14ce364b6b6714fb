//! The process's access token (OAuth2 client credentials): cached, fetched again ahead of
//! expiry, and after a 401 fetched once however many requests failed together.
//!
//! Client credentials have no refresh token and nothing to revoke: a new token is simply
//! asked for with the client id and secret, which are read from the store at each fetch so a
//! rotated secret is picked up.

use super::credentials::{CredentialStore, PanoptoCredentials};
use super::{PanoptoError, lock};
use async_trait::async_trait;
use coursewire_runtime::retry::{HttpSettings, backoff};
use serde::Deserialize;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Assumed lifetime when the token endpoint does not say (Panopto: one hour).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq)]
pub struct TokenSettings {
    /// Fetch a new token this long before the current one expires (or, for tokens that live
    /// shorter than four margins, when a quarter of their life is left).
    pub refresh_margin: Duration,
    /// Attempts at the token endpoint while it is unavailable; paced by `retry`'s backoff.
    pub fetch_attempts: u32,
    pub retry: HttpSettings,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(300),
            fetch_attempts: 3,
            retry: HttpSettings::default(),
        }
    }
}

/// What the token endpoint granted. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct TokenGrant {
    pub access_token: String,
    /// Seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGrant")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Panopto's `POST /Panopto/oauth2/connect/token` (a port, so the lifecycle is testable
/// without a server).
#[async_trait]
pub trait TokenEndpoint: Send + Sync {
    /// `grant_type=client_credentials`. A refused client is [`PanoptoError::Unauthorized`];
    /// transient failures are errors whose [`PanoptoError::is_transient`] is true.
    async fn fetch(&self, credentials: &PanoptoCredentials) -> Result<TokenGrant, PanoptoError>;
}

/// A bearer token and the site it is valid on. `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<str>,
    site: reqwest::Url,
    issued: Instant,
    expires: Instant,
}

impl AccessToken {
    pub fn new(secret: &str, site: reqwest::Url, lifetime: Duration) -> Self {
        let issued = Instant::now();
        Self {
            secret: secret.into(),
            site,
            issued,
            expires: issued + lifetime,
        }
    }

    /// The bearer value. Never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The Panopto site's root the token was granted by.
    pub fn site(&self) -> &reqwest::Url {
        &self.site
    }

    /// Valid for longer than `margin`, or than a quarter of its life if that is shorter (so a
    /// short-lived token is used before it is replaced).
    pub fn valid_for(&self, margin: Duration) -> bool {
        let margin = margin.min((self.expires - self.issued) / 4);
        Instant::now() + margin < self.expires
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("site", &self.site.as_str())
            .field(
                "expires_in",
                &self.expires.saturating_duration_since(Instant::now()),
            )
            .finish_non_exhaustive()
    }
}

/// The process's view of the client's token. Build once per process.
pub struct TokenSource {
    store: Arc<dyn CredentialStore>,
    endpoint: Arc<dyn TokenEndpoint>,
    settings: TokenSettings,
    current: Mutex<Option<AccessToken>>,
    credentials: Mutex<Option<Arc<PanoptoCredentials>>>,
    /// Held while loading or fetching: one fetch in flight per process.
    gate: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl TokenSource {
    pub fn new(
        store: Arc<dyn CredentialStore>,
        endpoint: Arc<dyn TokenEndpoint>,
        settings: TokenSettings,
    ) -> Self {
        Self {
            store,
            endpoint,
            settings,
            current: Mutex::new(None),
            credentials: Mutex::new(None),
            gate: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    /// The non-secret id of the credentials.
    pub fn credentials_id(&self) -> &str {
        self.store.id()
    }

    /// Tokens this process fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn cached(&self) -> Option<AccessToken> {
        lock(&self.current).clone()
    }

    /// The credentials (read once, and again at each token fetch).
    pub async fn credentials(&self) -> Result<Arc<PanoptoCredentials>, PanoptoError> {
        if let Some(credentials) = lock(&self.credentials).clone() {
            return Ok(credentials);
        }
        let _gate = self.gate.lock().await;
        if let Some(credentials) = lock(&self.credentials).clone() {
            return Ok(credentials);
        }
        self.load().await
    }

    /// Panopto refused the credentials themselves (the SOAP password): the next call reads
    /// the secret again, so a person's fix is picked up without a cold start.
    pub fn forget_credentials(&self) {
        *lock(&self.credentials) = None;
    }

    async fn load(&self) -> Result<Arc<PanoptoCredentials>, PanoptoError> {
        let credentials = Arc::new(self.store.load().await?);
        *lock(&self.credentials) = Some(credentials.clone());
        Ok(credentials)
    }

    /// A token valid for at least the refresh margin, fetched if needed.
    pub async fn access_token(&self) -> Result<AccessToken, PanoptoError> {
        let margin = self.settings.refresh_margin;
        if let Some(token) = self.cached().filter(|t| t.valid_for(margin)) {
            return Ok(token);
        }
        let _gate = self.gate.lock().await;
        // Whoever held the gate before may have fetched one already.
        if let Some(token) = self.cached().filter(|t| t.valid_for(margin)) {
            return Ok(token);
        }
        self.fetch().await
    }

    /// Panopto answered 401 to `failed`: one fetch for everyone who got that answer with that
    /// token; those who come later find the new token and use it.
    pub async fn refresh_after_failure(
        &self,
        failed: &AccessToken,
    ) -> Result<AccessToken, PanoptoError> {
        let _gate = self.gate.lock().await;
        if let Some(token) = self
            .cached()
            .filter(|t| t.secret() != failed.secret() && t.valid_for(Duration::ZERO))
        {
            return Ok(token);
        }
        *lock(&self.current) = None;
        self.fetch().await
    }

    /// Called with the gate held.
    async fn fetch(&self) -> Result<AccessToken, PanoptoError> {
        let credentials = self.load().await?;
        let site = credentials.site()?;
        let attempts = self.settings.fetch_attempts.max(1);
        let mut attempt = 1;
        let grant = loop {
            self.fetches.fetch_add(1, Ordering::Relaxed);
            match self.endpoint.fetch(&credentials).await {
                Ok(grant) => break grant,
                Err(e) if e.is_transient() && attempt < attempts => {
                    tracing::warn!(attempt, error = %e, "Panopto token endpoint unavailable, retrying");
                    tokio::time::sleep(backoff(&self.settings.retry, attempt - 1, Duration::ZERO))
                        .await;
                    attempt += 1;
                }
                Err(e) => {
                    if matches!(e, PanoptoError::Unauthorized(_)) {
                        tracing::error!(
                            credentials = self.store.id(),
                            "Panopto refused coursewire's API client (check the client id and \
                             secret in the credentials secret)"
                        );
                    }
                    return Err(e);
                }
            }
        };
        if grant.access_token.is_empty() {
            return Err(PanoptoError::Decode(
                "the token endpoint granted an empty access_token".into(),
            ));
        }
        let lifetime = grant.expires_in.map_or(DEFAULT_LIFETIME, |s| {
            Duration::from_secs(s.min(86_400 * 365))
        });
        let token = AccessToken::new(&grant.access_token, site, lifetime);
        tracing::info!(
            credentials = self.store.id(),
            expires_in_secs = lifetime.as_secs(),
            "fetched a Panopto access token"
        );
        *lock(&self.current) = Some(token.clone());
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::super::credentials::MemoryCredentialStore;
    use super::*;

    /// A token endpoint that counts fetches and answers from a script.
    struct FakeEndpoint {
        fetches: AtomicU64,
        lifetime: u64,
        failures: Mutex<Vec<PanoptoError>>,
    }

    impl FakeEndpoint {
        fn new(lifetime: u64) -> Self {
            Self {
                fetches: AtomicU64::new(0),
                lifetime,
                failures: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl TokenEndpoint for FakeEndpoint {
        async fn fetch(&self, c: &PanoptoCredentials) -> Result<TokenGrant, PanoptoError> {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(e) = lock(&self.failures).pop() {
                return Err(e);
            }
            Ok(TokenGrant {
                access_token: format!("{}-token-{n}", c.client_id),
                expires_in: Some(self.lifetime),
            })
        }
    }

    fn credentials() -> PanoptoCredentials {
        PanoptoCredentials {
            base_url: "https://uni.hosted.panopto.com".into(),
            client_id: "client".into(),
            client_secret: "secret".into(),
            soap_username: None,
            soap_password: None,
        }
    }

    fn source(endpoint: Arc<FakeEndpoint>) -> Arc<TokenSource> {
        Arc::new(TokenSource::new(
            Arc::new(MemoryCredentialStore::new(credentials())),
            endpoint,
            TokenSettings {
                retry: HttpSettings {
                    backoff_base: Duration::from_millis(1),
                    backoff_cap: Duration::from_millis(2),
                    ..HttpSettings::default()
                },
                ..TokenSettings::default()
            },
        ))
    }

    #[tokio::test]
    async fn concurrent_first_use_fetches_once_and_reuses_the_token() {
        let endpoint = Arc::new(FakeEndpoint::new(3600));
        let tokens = source(endpoint.clone());
        let all = futures::future::join_all((0..20).map(|_| tokens.access_token())).await;
        assert!(
            all.iter()
                .all(|t| t.as_ref().unwrap().secret() == "client-token-1")
        );
        assert_eq!(endpoint.fetches.load(Ordering::SeqCst), 1);
        tokens.access_token().await.unwrap();
        assert_eq!(tokens.fetches(), 1);
    }

    #[tokio::test]
    async fn concurrent_401s_fetch_exactly_once() {
        let endpoint = Arc::new(FakeEndpoint::new(3600));
        let tokens = source(endpoint.clone());
        let failed = tokens.access_token().await.unwrap();
        let tasks: Vec<_> = (0..25)
            .map(|_| {
                let tokens = tokens.clone();
                let failed = failed.clone();
                tokio::spawn(async move { tokens.refresh_after_failure(&failed).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().secret(), "client-token-2");
        }
        assert_eq!(endpoint.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn short_lived_tokens_are_used_then_replaced_ahead_of_expiry() {
        // 4 s tokens with a 5 min margin: used for three quarters of their life.
        let endpoint = Arc::new(FakeEndpoint::new(4));
        let tokens = source(endpoint.clone());
        let first = tokens.access_token().await.unwrap();
        assert!(first.valid_for(Duration::from_secs(300)));
        assert_eq!(
            tokens.access_token().await.unwrap().secret(),
            first.secret()
        );
        let late = AccessToken {
            issued: Instant::now() - Duration::from_millis(3500),
            expires: Instant::now() + Duration::from_millis(500),
            ..first
        };
        assert!(!late.valid_for(Duration::from_secs(300)));
        *lock(&tokens.current) = Some(late);
        assert_eq!(
            tokens.access_token().await.unwrap().secret(),
            "client-token-2"
        );
    }

    #[tokio::test]
    async fn transient_endpoint_failures_are_retried_and_refusals_are_not() {
        let endpoint = Arc::new(FakeEndpoint::new(3600));
        lock(&endpoint.failures).push(PanoptoError::Transport("reset".into()));
        let tokens = source(endpoint.clone());
        assert_eq!(
            tokens.access_token().await.unwrap().secret(),
            "client-token-2"
        );

        let refused = Arc::new(FakeEndpoint::new(3600));
        lock(&refused.failures).push(PanoptoError::Unauthorized("invalid_client".into()));
        let tokens = source(refused.clone());
        assert!(matches!(
            tokens.access_token().await,
            Err(PanoptoError::Unauthorized(_))
        ));
        assert_eq!(refused.fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let url = reqwest::Url::parse("https://uni.hosted.panopto.com").unwrap();
        let token = AccessToken::new("very-secret-token", url, Duration::from_secs(60));
        assert!(!format!("{token:?}").contains("very-secret"));
        let grant = TokenGrant {
            access_token: "very-secret-token".into(),
            expires_in: Some(1),
        };
        assert!(!format!("{grant:?}").contains("very-secret"));
    }
}
