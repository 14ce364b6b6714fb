//! The JWKS cache. Canvas rotates keys monthly and publishes the next key ahead of time, so a
//! refresh every `max_age` normally suffices; an unknown `kid` triggers at most one re-fetch
//! per `min_refetch` so that forged kids cannot make us hammer the JWKS URL. Fetches are
//! single-flight: concurrent misses share one request.

use super::VerifyError;
use async_trait::async_trait;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    #[error("fetching the JWKS failed: {0}")]
    Fetch(String),
    #[error("the JWKS is not valid JSON Web Key Set: {0}")]
    Invalid(String),
}

/// A JSON Web Key Set as served at a JWKS URL. Keys are kept as raw JSON so that one key we
/// cannot use does not make the whole set unreadable.
#[derive(Debug, Clone, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<serde_json::Value>,
}

/// The fields of a JWK that matter for RS256 verification.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub kid: Option<String>,
    #[serde(rename = "use")]
    pub key_use: Option<String>,
    pub alg: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
}

/// Where keys come from (a port: HTTP in production, the simulator's HTTP in tests).
#[async_trait]
pub trait JwksSource: Send + Sync {
    async fn fetch(&self) -> Result<JwkSet, JwksError>;
}

pub struct HttpJwksSource {
    client: reqwest::Client,
    url: String,
}

impl HttpJwksSource {
    /// `timeout` bounds a fetch so that an unknown kid still gets an answer well inside
    /// Canvas's 15 s delivery timeout.
    pub fn new(url: impl Into<String>, timeout: Duration) -> Result<Self, JwksError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| JwksError::Fetch(e.to_string()))?;
        Ok(Self {
            client,
            url: url.into(),
        })
    }
}

#[async_trait]
impl JwksSource for HttpJwksSource {
    async fn fetch(&self) -> Result<JwkSet, JwksError> {
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| JwksError::Fetch(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(JwksError::Fetch(format!("HTTP {status}")));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| JwksError::Fetch(e.without_url().to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| JwksError::Invalid(e.to_string()))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct KeyCacheSettings {
    /// Minimum time between fetches caused by an unknown kid.
    pub min_refetch: Duration,
    /// Keys older than this are refreshed on the next use.
    pub max_age: Duration,
}

impl Default for KeyCacheSettings {
    fn default() -> Self {
        Self {
            min_refetch: Duration::from_secs(300),
            max_age: Duration::from_secs(3600),
        }
    }
}

#[derive(Default)]
struct Snapshot {
    keys: HashMap<String, Arc<ParsedPublicKey>>,
    fetched_at: Option<Instant>,
}

pub struct KeyCache {
    source: Arc<dyn JwksSource>,
    settings: KeyCacheSettings,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Held while fetching (single flight); holds the time of the last attempt.
    fetch_gate: tokio::sync::Mutex<Option<Instant>>,
}

impl KeyCache {
    pub fn new(source: Arc<dyn JwksSource>, settings: KeyCacheSettings) -> Self {
        Self {
            source,
            settings,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            fetch_gate: tokio::sync::Mutex::new(None),
        }
    }

    /// Number of keys currently cached.
    pub fn len(&self) -> usize {
        self.current().keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fetches the JWKS now (e.g. at cold start, so the first event does not wait).
    pub async fn warm(&self) -> Result<(), VerifyError> {
        let mut gate = self.fetch_gate.lock().await;
        self.refresh(&mut gate).await
    }

    pub(super) async fn key(&self, kid: &str) -> Result<Arc<ParsedPublicKey>, VerifyError> {
        if let (Some(key), true) = self.lookup(kid) {
            return Ok(key);
        }
        let mut gate = self.fetch_gate.lock().await;
        // Another task may have fetched while we waited for the gate.
        let (known, fresh) = self.lookup(kid);
        if let (Some(key), true) = (&known, fresh) {
            return Ok(key.clone());
        }
        let may_fetch = match *gate {
            None => true,
            // A stale cache is refreshed whenever it is used; an unknown kid only at the
            // rate limit.
            Some(last) => {
                !fresh || (known.is_none() && last.elapsed() >= self.settings.min_refetch)
            }
        };
        if may_fetch && let Err(e) = self.refresh(&mut gate).await {
            // Stale keys beat no keys: keep verifying with what we have.
            return known.ok_or(e);
        }
        self.current()
            .keys
            .get(kid)
            .cloned()
            .ok_or(VerifyError::UnknownKid)
    }

    /// The cached key for `kid`, and whether the cache is younger than `max_age`.
    fn lookup(&self, kid: &str) -> (Option<Arc<ParsedPublicKey>>, bool) {
        let snapshot = self.current();
        let fresh = snapshot
            .fetched_at
            .is_some_and(|t| t.elapsed() < self.settings.max_age);
        (snapshot.keys.get(kid).cloned(), fresh)
    }

    fn current(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn refresh(&self, gate: &mut Option<Instant>) -> Result<(), VerifyError> {
        *gate = Some(Instant::now());
        let set = self.source.fetch().await.map_err(|e| {
            tracing::warn!(error = %e, "JWKS fetch failed");
            VerifyError::KeysUnavailable(e.to_string())
        })?;
        let keys = usable_keys(&set);
        tracing::info!(keys = keys.len(), "JWKS refreshed");
        let next = Arc::new(Snapshot {
            keys,
            fetched_at: Some(Instant::now()),
        });
        match self.snapshot.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }
}

/// RSA signing keys only; anything else in the set (encryption keys, EC keys, keys marked
/// for another algorithm, keys shorter than 2048 bits) is ignored rather than trusted.
fn usable_keys(set: &JwkSet) -> HashMap<String, Arc<ParsedPublicKey>> {
    set.keys
        .iter()
        .filter_map(|raw| serde_json::from_value::<Jwk>(raw.clone()).ok())
        .filter(|jwk| jwk.kty == "RSA")
        .filter(|jwk| jwk.key_use.as_deref().is_none_or(|u| u == "sig"))
        .filter(|jwk| jwk.alg.as_deref().is_none_or(|a| a == "RS256"))
        .filter_map(|jwk| {
            let n = URL_SAFE_NO_PAD
                .decode(jwk.n.as_deref()?.trim_end_matches('='))
                .ok()?;
            let e = URL_SAFE_NO_PAD
                .decode(jwk.e.as_deref()?.trim_end_matches('='))
                .ok()?;
            if n.len() < 256 {
                return None;
            }
            let key = RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .ok()?;
            Some((jwk.kid?, Arc::new(key)))
        })
        .collect()
}
