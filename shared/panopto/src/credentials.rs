//! The credentials secret's contents and the port to where they live.

use super::{PanoptoError, lock};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The JSON of the credentials secret (see the crate docs). `Debug` never shows secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanoptoCredentials {
    /// The Panopto site's root, e.g. `https://example.hosted.panopto.com`.
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// The SOAP `AuthenticationInfo.UserKey`; SOAP calls fail with a configuration error
    /// without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soap_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soap_password: Option<String>,
}

impl PanoptoCredentials {
    /// The site's root as a URL, without a trailing slash or a `/Panopto` suffix.
    pub fn site(&self) -> Result<reqwest::Url, PanoptoError> {
        let trimmed = self.base_url.trim().trim_end_matches('/');
        let root = trimmed
            .strip_suffix("/Panopto")
            .or_else(|| trimmed.strip_suffix("/panopto"))
            .unwrap_or(trimmed);
        let mut url = reqwest::Url::parse(root).map_err(|e| {
            PanoptoError::Config(format!("the credentials' base_url is not a URL: {e}"))
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(PanoptoError::Config(
                "the credentials' base_url must be an http(s) URL".into(),
            ));
        }
        // Paths are joined onto it: without the slash the last segment would be replaced.
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(url)
    }
}

impl fmt::Debug for PanoptoCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanoptoCredentials")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("soap_username", &self.soap_username)
            .field(
                "soap_password",
                &self.soap_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Where the credentials live (a port: Secrets Manager in production, memory in tests).
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// A non-secret name of the credentials for logs (e.g. the secret's id).
    fn id(&self) -> &str;
    async fn load(&self) -> Result<PanoptoCredentials, PanoptoError>;
}

/// Credentials in memory: for tests and single-process tools.
pub struct MemoryCredentialStore {
    credentials: Mutex<PanoptoCredentials>,
    loads: AtomicU64,
}

impl MemoryCredentialStore {
    pub fn new(credentials: PanoptoCredentials) -> Self {
        Self {
            credentials: Mutex::new(credentials),
            loads: AtomicU64::new(0),
        }
    }

    /// Replaces the credentials, as a secret rotation would.
    pub fn replace(&self, credentials: PanoptoCredentials) {
        *lock(&self.credentials) = credentials;
    }

    /// How often the credentials were read.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl CredentialStore for MemoryCredentialStore {
    fn id(&self) -> &str {
        "memory"
    }

    async fn load(&self) -> Result<PanoptoCredentials, PanoptoError> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        Ok(lock(&self.credentials).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> PanoptoCredentials {
        serde_json::from_str(
            r#"{"base_url":"https://uni.hosted.panopto.com/Panopto/","client_id":"c",
            "client_secret":"very-secret","soap_username":"api-user","soap_password":"pw-secret",
            "note":"ignored"}"#,
        )
        .unwrap()
    }

    #[test]
    fn debug_never_shows_secrets() {
        let text = format!("{:?}", credentials());
        assert!(
            !text.contains("very-secret") && !text.contains("pw-secret"),
            "{text}"
        );
        assert!(text.contains("api-user"));
    }

    #[test]
    fn site_is_the_root_whatever_the_secret_says() {
        assert_eq!(
            credentials().site().unwrap().as_str(),
            "https://uni.hosted.panopto.com/"
        );
        let mut bad = credentials();
        bad.base_url = "uni.hosted.panopto.com".into();
        assert!(matches!(bad.site(), Err(PanoptoError::Config(_))));
    }
}
