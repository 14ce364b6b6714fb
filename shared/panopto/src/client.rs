//! The request loop every Panopto call goes through: bearer token (REST) or
//! `AuthenticationInfo` (SOAP) → send with a timeout → classify the answer → retry or return.

use super::credentials::CredentialStore;
use super::multipart::Multipart;
use super::soap::{self, SoapArg, SoapAuth, SoapCall};
use super::token::{AccessToken, TokenSettings, TokenSource};
use super::token_endpoint::HttpTokenEndpoint;
use super::{PanoptoError, describe_json_error, lock};
use bytes::Bytes;
use coursewire_runtime::retry::{HttpSettings, backoff, retry_after};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest Panopto error message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// The site membership provider folder external ids belong to unless configured otherwise
/// (`PANOPTO_EXTERNAL_ID_PROVIDER`). A name of coursewire's own keeps its section ids apart
/// from the course ids Panopto's own LMS integration keeps under its provider.
pub const DEFAULT_EXTERNAL_ID_PROVIDER: &str = "coursewire";

/// What a client did since it was built (benchmarks report "Panopto calls per tick" from it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClientStats {
    /// Requests sent to REST and SOAP, every attempt (the token endpoint not counted).
    pub requests: u64,
    pub rest_requests: u64,
    pub soap_requests: u64,
    pub ok: u64,
    /// 429 answers.
    pub throttled: u64,
    /// 401 and 403 answers.
    pub unauthorized: u64,
    pub server_error: u64,
    /// Other 4xx answers and SOAP faults (not retried).
    pub client_error: u64,
    pub timeout: u64,
    /// Connection failures and other transport errors.
    pub transport_error: u64,
    pub retries: u64,
    /// Access tokens fetched from the token endpoint (attempts).
    pub token_fetches: u64,
}

/// How an answer is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// 429: back off (at least `Retry-After`) and retry.
    Throttled,
    /// 401: the bearer token is expired or unknown; fetch a new one once, retry.
    TokenRejected,
    /// 403: the client may not do this.
    Forbidden,
    /// 5xx: retry if the request is safe to repeat.
    ServerError,
    /// Anything else: an error for the caller.
    Failed,
}

/// Classifies a Panopto answer by its status.
pub fn classify_response(status: StatusCode) -> Outcome {
    match status.as_u16() {
        200..=299 => Outcome::Ok,
        429 => Outcome::Throttled,
        401 => Outcome::TokenRejected,
        403 => Outcome::Forbidden,
        500..=599 => Outcome::ServerError,
        _ => Outcome::Failed,
    }
}

/// Panopto's error text: `APIError` (`{"Error":{"ErrorCode","Message"}}`), ASP.NET's
/// `{"Message"}`, or the status's name; short.
pub(crate) fn error_message(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let text = parsed.as_ref().and_then(|v| {
        let error = v.get("Error").unwrap_or(v);
        let message = error.get("Message").and_then(Value::as_str);
        match (error.get("ErrorCode").and_then(Value::as_str), message) {
            (Some(code), Some(message)) if !code.is_empty() => Some(format!("{code}: {message}")),
            (_, Some(message)) => Some(message.to_string()),
            (Some(code), None) => Some(code.to_string()),
            (None, None) => None,
        }
    });
    text.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string())
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .collect()
}

/// Percent-encodes one path segment (Panopto ids are GUIDs; anything else is escaped).
pub(crate) fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// One Panopto call, as the loop repeats it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    /// Below the site's root, e.g. `Panopto/api/v1/sessions/<id>`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Body,
}

#[derive(Debug, Clone)]
pub(crate) enum Body {
    None,
    Json(Vec<u8>),
    Multipart(Multipart),
    Soap(SoapCall, Vec<u8>),
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::None,
        }
    }

    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_string(), value.into()));
        self
    }

    pub fn json(mut self, body: &impl Serialize) -> Result<Self, PanoptoError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| PanoptoError::Config(format!("unwritable request body: {e}")))?;
        self.body = Body::Json(bytes);
        Ok(self)
    }

    /// Whether sending it twice is harmless: everything but REST POSTs (the SOAP calls are
    /// reads, or set a value, which repeated sets the same). A POST that may have reached
    /// Panopto (timeout, 5xx) is not repeated; callers check before they act and retry on
    /// their next run.
    fn idempotent(&self) -> bool {
        self.method != Method::POST || matches!(self.body, Body::Soap(..))
    }

    fn is_soap(&self) -> bool {
        matches!(self.body, Body::Soap(..))
    }
}

enum Failure {
    Timeout,
    Connect(String),
    Other(String),
}

/// The Panopto client over HTTPS. Build once per process; share it (`Arc`) between tasks.
pub struct HttpPanopto {
    http: reqwest::Client,
    settings: HttpSettings,
    tokens: Arc<TokenSource>,
    stats: Mutex<ClientStats>,
    external_id_provider: String,
}

impl HttpPanopto {
    /// A client whose credentials come from `store`, with default token settings.
    pub fn new(
        store: Arc<dyn CredentialStore>,
        settings: HttpSettings,
    ) -> Result<Self, PanoptoError> {
        let tokens = TokenSettings {
            retry: settings.clone(),
            ..TokenSettings::default()
        };
        Self::with_token_settings(store, settings, tokens)
    }

    /// The credentials of one Secrets Manager secret (see the crate docs for its fields).
    pub fn from_secrets_manager(
        client: aws_sdk_secretsmanager::Client,
        secret_id: impl Into<String>,
        settings: HttpSettings,
    ) -> Result<Self, PanoptoError> {
        let store = super::secrets_manager::SecretsManagerStore::new(client, secret_id);
        Self::new(Arc::new(store), settings)
    }

    pub fn with_token_settings(
        store: Arc<dyn CredentialStore>,
        settings: HttpSettings,
        token_settings: TokenSettings,
    ) -> Result<Self, PanoptoError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("coursewire/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PanoptoError::Config(e.to_string()))?;
        let endpoint = HttpTokenEndpoint::new(http.clone(), settings.request_timeout);
        let tokens = TokenSource::new(store, Arc::new(endpoint), token_settings);
        Ok(Self {
            http,
            settings,
            tokens: Arc::new(tokens),
            stats: Mutex::new(ClientStats::default()),
            external_id_provider: DEFAULT_EXTERNAL_ID_PROVIDER.to_string(),
        })
    }

    /// The site membership provider whose folder external ids this client reads and sets
    /// (default [`DEFAULT_EXTERNAL_ID_PROVIDER`]).
    pub fn with_external_id_provider(mut self, provider: impl Into<String>) -> Self {
        self.external_id_provider = provider.into();
        self
    }

    pub fn external_id_provider(&self) -> &str {
        &self.external_id_provider
    }

    pub fn tokens(&self) -> &Arc<TokenSource> {
        &self.tokens
    }

    /// Everything this client did so far.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            token_fetches: self.tokens.fetches(),
            ..lock(&self.stats).clone()
        }
    }

    fn note(&self, update: impl FnOnce(&mut ClientStats)) {
        update(&mut lock(&self.stats));
    }

    /// `GET` one JSON object.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        call: Call,
    ) -> Result<T, PanoptoError> {
        let what = call.path.clone();
        let body = self.execute(&call).await?;
        decode(&body, &what)
    }

    /// `GET` one JSON object; 404 is `None`.
    pub(crate) async fn get_optional<T: DeserializeOwned>(
        &self,
        call: Call,
    ) -> Result<Option<T>, PanoptoError> {
        match self.get_json(call).await {
            Ok(value) => Ok(Some(value)),
            Err(PanoptoError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A SOAP call: its answer's bytes (a Fault is an error).
    pub(crate) async fn soap(
        &self,
        call: SoapCall,
        args: &[SoapArg<'_>],
    ) -> Result<Bytes, PanoptoError> {
        let credentials = self.tokens.credentials().await?;
        let (Some(user_key), Some(password)) = (
            credentials.soap_username.as_deref(),
            credentials.soap_password.as_deref(),
        ) else {
            return Err(PanoptoError::Config(
                "the Panopto credentials secret has no soap_username / soap_password".into(),
            ));
        };
        let envelope = soap::request(call, SoapAuth { user_key, password }, args);
        let request = Call {
            method: Method::POST,
            path: call.path().to_string(),
            query: Vec::new(),
            body: Body::Soap(call, envelope),
        };
        self.execute(&request).await
    }

    /// The loop: bounded attempts; one token fetch per call after a 401.
    pub(crate) async fn execute(&self, call: &Call) -> Result<Bytes, PanoptoError> {
        let max_attempts = self.settings.max_attempts.max(1);
        let mut refreshed = false;
        let mut last_error = PanoptoError::Throttled { attempts: 0 };
        for attempt in 1..=max_attempts {
            if attempt > 1 {
                self.note(|s| s.retries += 1);
            }
            let (site, token) = if call.is_soap() {
                (self.tokens.credentials().await?.site()?, None)
            } else {
                let token = self.tokens.access_token().await?;
                (token.site().clone(), Some(token))
            };
            let url = resolve(&site, call)?;
            let started = Instant::now();
            self.note(|s| {
                s.requests += 1;
                if call.is_soap() {
                    s.soap_requests += 1;
                } else {
                    s.rest_requests += 1;
                }
            });
            let (status, headers, body) = match self.send_once(call, url, token.as_ref()).await {
                Ok(answer) => answer,
                Err(failure) => {
                    let (error, retry) = match failure {
                        Failure::Timeout => {
                            self.note(|s| s.timeout += 1);
                            (
                                PanoptoError::Transport("Panopto did not answer in time".into()),
                                call.idempotent(),
                            )
                        }
                        // Nothing reached Panopto: safe to repeat even a POST.
                        Failure::Connect(message) => {
                            self.note(|s| s.transport_error += 1);
                            (PanoptoError::Transport(message), true)
                        }
                        Failure::Other(message) => {
                            self.note(|s| s.transport_error += 1);
                            (PanoptoError::Transport(message), call.idempotent())
                        }
                    };
                    tracing::warn!(method = %call.method, path = call.path, attempt, error = %error, "Panopto request failed");
                    if !retry || attempt == max_attempts {
                        return Err(error);
                    }
                    last_error = error;
                    tokio::time::sleep(backoff(&self.settings, attempt - 1, Duration::ZERO)).await;
                    continue;
                }
            };
            let outcome = classify_response(status);
            tracing::debug!(
                method = %call.method,
                path = call.path,
                status = status.as_u16(),
                ms = started.elapsed().as_millis() as u64,
                "Panopto request"
            );
            match outcome {
                Outcome::Ok => {
                    self.note(|s| s.ok += 1);
                    return Ok(body);
                }
                Outcome::Throttled => {
                    self.note(|s| s.throttled += 1);
                    let asked = retry_after(&headers);
                    tracing::warn!(
                        path = call.path,
                        attempt,
                        retry_after_secs = asked.as_secs(),
                        "Panopto throttled the request; backing off"
                    );
                    last_error = PanoptoError::Throttled { attempts: attempt };
                    if attempt < max_attempts {
                        tokio::time::sleep(backoff(&self.settings, attempt - 1, asked)).await;
                    }
                }
                Outcome::TokenRejected if !call.is_soap() => {
                    self.note(|s| s.unauthorized += 1);
                    let message = error_message(status, &body);
                    let Some(token) = token.filter(|_| !refreshed) else {
                        return Err(PanoptoError::Unauthorized(message));
                    };
                    refreshed = true;
                    tracing::info!(
                        path = call.path,
                        "Panopto rejected the access token; fetching a new one"
                    );
                    self.tokens.refresh_after_failure(&token).await?;
                    last_error = PanoptoError::Unauthorized(message);
                }
                Outcome::TokenRejected | Outcome::Forbidden => {
                    self.note(|s| s.unauthorized += 1);
                    return Err(PanoptoError::Unauthorized(
                        self.failure_message(call, status, &body),
                    ));
                }
                Outcome::ServerError => {
                    if call.is_soap()
                        && let Some(fault) = soap::fault(&body)
                    {
                        if fault.is_authentication_failure() {
                            self.note(|s| s.unauthorized += 1);
                            self.tokens.forget_credentials();
                            return Err(PanoptoError::Unauthorized(format!(
                                "Panopto refused the SOAP user's credentials: {}",
                                fault.message
                            )));
                        }
                        self.note(|s| s.client_error += 1);
                        tracing::warn!(path = call.path, code = fault.code, "Panopto SOAP fault");
                        return Err(PanoptoError::Soap(fault));
                    }
                    self.note(|s| s.server_error += 1);
                    let error = PanoptoError::Http {
                        status: status.as_u16(),
                        message: error_message(status, &body),
                    };
                    tracing::warn!(method = %call.method, path = call.path, attempt, status = status.as_u16(), "Panopto server error");
                    if !call.idempotent() {
                        return Err(error);
                    }
                    last_error = error;
                    if attempt < max_attempts {
                        let asked = retry_after(&headers);
                        tokio::time::sleep(backoff(&self.settings, attempt - 1, asked)).await;
                    }
                }
                Outcome::Failed => {
                    self.note(|s| s.client_error += 1);
                    if status == StatusCode::NOT_FOUND {
                        return Err(PanoptoError::NotFound(call.path.clone()));
                    }
                    return Err(PanoptoError::Http {
                        status: status.as_u16(),
                        message: self.failure_message(call, status, &body),
                    });
                }
            }
        }
        Err(last_error)
    }

    fn failure_message(&self, call: &Call, status: StatusCode, body: &[u8]) -> String {
        match soap::fault(body).filter(|_| call.is_soap()) {
            Some(fault) => format!("{}: {}", fault.code, fault.message),
            None => error_message(status, body),
        }
    }

    async fn send_once(
        &self,
        call: &Call,
        url: Url,
        token: Option<&AccessToken>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Failure> {
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .timeout(self.settings.request_timeout);
        if let Some(token) = token {
            request = request
                .bearer_auth(token.secret())
                .header(ACCEPT, "application/json");
        }
        request = match &call.body {
            Body::None => request,
            Body::Json(bytes) => request
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Body::Multipart(multipart) => request
                .header(CONTENT_TYPE, multipart.content_type.as_str())
                .body(multipart.body.clone()),
            Body::Soap(soap_call, envelope) => request
                .header(CONTENT_TYPE, "text/xml; charset=utf-8")
                .header("SOAPAction", soap_call.action())
                .body(envelope.clone()),
        };
        let failure = |e: reqwest::Error| {
            if e.is_timeout() {
                Failure::Timeout
            } else if e.is_connect() {
                Failure::Connect(e.without_url().to_string())
            } else {
                Failure::Other(e.without_url().to_string())
            }
        };
        let response = request.send().await.map_err(failure)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(failure)?;
        Ok((status, headers, body))
    }
}

/// The call's URL on the site.
fn resolve(site: &Url, call: &Call) -> Result<Url, PanoptoError> {
    let mut url = site
        .join(&call.path)
        .map_err(|e| PanoptoError::Config(format!("bad Panopto path: {e}")))?;
    if !call.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &call.query {
            pairs.append_pair(name, value);
        }
    }
    Ok(url)
}

pub(crate) fn decode<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, PanoptoError> {
    serde_json::from_slice(body)
        .map_err(|e| PanoptoError::Decode(format!("{what}: {}", describe_json_error(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_throttling_auth_and_server_errors() {
        let status = |s| StatusCode::from_u16(s).unwrap();
        assert_eq!(classify_response(status(200)), Outcome::Ok);
        assert_eq!(classify_response(status(429)), Outcome::Throttled);
        assert_eq!(classify_response(status(401)), Outcome::TokenRejected);
        assert_eq!(classify_response(status(403)), Outcome::Forbidden);
        for s in [500, 502, 503, 504] {
            assert_eq!(classify_response(status(s)), Outcome::ServerError);
        }
        assert_eq!(classify_response(status(400)), Outcome::Failed);
        assert_eq!(classify_response(status(404)), Outcome::Failed);
    }

    #[test]
    fn only_rest_posts_are_never_repeated() {
        let post = Call::new(Method::POST, "Panopto/api/v1/scheduledRecordings");
        assert!(!post.idempotent());
        assert!(Call::new(Method::PUT, "x").idempotent());
        assert!(Call::new(Method::DELETE, "x").idempotent());
        let soap = Call {
            body: Body::Soap(SoapCall::SessionsById, Vec::new()),
            ..post
        };
        assert!(soap.idempotent());
    }

    #[test]
    fn extracts_panopto_error_messages() {
        let s = StatusCode::BAD_REQUEST;
        assert_eq!(
            error_message(
                s,
                br#"{"Error":{"ErrorCode":"ScheduleConflict","Message":"booked","Success":false}}"#
            ),
            "ScheduleConflict: booked"
        );
        assert_eq!(error_message(s, br#"{"Message":"bad id"}"#), "bad id");
        assert_eq!(error_message(s, b"<html>oops</html>"), "Bad Request");
        let long = format!(r#"{{"Message":"{}"}}"#, "x".repeat(1000));
        assert_eq!(error_message(s, long.as_bytes()).len(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn paths_are_joined_onto_the_site_and_segments_escaped() {
        let site = Url::parse("https://uni.hosted.panopto.com/").unwrap();
        let call = Call::new(
            Method::GET,
            format!("Panopto/api/v1/folders/{}/sessions", segment("a/b c")),
        )
        .query("pageNumber", "2");
        assert_eq!(
            resolve(&site, &call).unwrap().as_str(),
            "https://uni.hosted.panopto.com/Panopto/api/v1/folders/a%2Fb%20c/sessions?pageNumber=2"
        );
    }
}
