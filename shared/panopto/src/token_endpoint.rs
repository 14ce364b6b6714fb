//! The token endpoint over HTTPS (`POST /Panopto/oauth2/connect/token`).

use super::PanoptoError;
use super::credentials::PanoptoCredentials;
use super::token::{TokenEndpoint, TokenGrant};
use async_trait::async_trait;
use serde::Deserialize;
use std::time::Duration;

pub struct HttpTokenEndpoint {
    http: reqwest::Client,
    timeout: Duration,
}

impl HttpTokenEndpoint {
    /// Shares the client's connection pool.
    pub fn new(http: reqwest::Client, timeout: Duration) -> Self {
        Self { http, timeout }
    }
}

#[async_trait]
impl TokenEndpoint for HttpTokenEndpoint {
    async fn fetch(&self, c: &PanoptoCredentials) -> Result<TokenGrant, PanoptoError> {
        let url = c
            .site()?
            .join("Panopto/oauth2/connect/token")
            .map_err(|e| PanoptoError::Config(e.to_string()))?;
        let response = self
            .http
            .post(url)
            .timeout(self.timeout)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", c.client_id.as_str()),
                ("client_secret", c.client_secret.as_str()),
                ("scope", "api"),
            ])
            .send()
            .await
            .map_err(|e| PanoptoError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| PanoptoError::Transport(e.without_url().to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                PanoptoError::Decode(format!(
                    "token response: {}",
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
            (_, "invalid_client" | "unauthorized_client" | "invalid_scope") | (401 | 403, _) => {
                PanoptoError::Unauthorized(format!("token endpoint: {error} (HTTP {status})"))
            }
            (s, _) => PanoptoError::Http {
                status: s,
                message: format!("token endpoint: {error}"),
            },
        })
    }
}
