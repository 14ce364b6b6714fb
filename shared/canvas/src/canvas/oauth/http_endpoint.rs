//! The token endpoint over HTTPS (`POST /login/oauth2/token`).

use super::super::CanvasError;
use super::credentials::Credentials;
use super::endpoint::{OAuthApp, TokenEndpoint, TokenError, TokenGrant};
use async_trait::async_trait;
use serde::Deserialize;
use std::time::Duration;

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
                    super::super::describe_json_error(&e)
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
