//! The request loop every Canvas call goes through: quota permit → bearer token → send with a
//! timeout → learn from the rate-limit headers → classify the answer → retry or return.

use super::link::next_link;
use super::oauth::{AccessToken, TokenSource};
use super::quota::{Quota, QuotaStats, RequestKind};
use super::{CanvasError, describe_json_error, lock};
use bytes::Bytes;
use coursewire_runtime::retry::{HttpSettings, backoff, retry_after};
use coursewire_runtime::telemetry::{Metrics, MetricsSink, Unit};
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest Canvas error message kept in a [`CanvasError::Http`].
const MAX_MESSAGE_CHARS: usize = 300;

/// What a client did since it was built (the benchmark reports "requests per roster sync" and
/// "DynamoDB lease calls per Canvas call" from it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClientStats {
    /// Canvas API requests sent (every attempt; the token endpoint is not counted).
    pub requests: u64,
    pub ok: u64,
    pub throttled: u64,
    pub unauthorized: u64,
    pub server_error: u64,
    pub timeout: u64,
    /// Connection failures and other transport errors.
    pub transport_error: u64,
    /// Other 4xx answers (not retried).
    pub client_error: u64,
    pub retries: u64,
    /// Sum of `X-Request-Cost`.
    pub cost_total: f64,
    /// Lowest `X-Rate-Limit-Remaining` seen.
    pub remaining_min: Option<f64>,
    /// Access-token refreshes made by this process.
    pub refreshes: u64,
    /// DynamoDB calls made by the shared quota.
    pub lease_calls: u64,
    pub units_leased: f64,
}

/// How an answer is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// 403 "Rate Limit Exceeded" or 429: back off and retry.
    Throttled,
    /// 401 for the token (expired or revoked): refresh once, retry.
    TokenRejected,
    /// 401 for the action (the token is fine, the user may not do this).
    Forbidden,
    /// 5xx: retry if the request is safe to repeat.
    ServerError,
    /// Any other answer: an error for the caller.
    Failed,
}

/// Classifies a Canvas answer.
pub fn classify_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Outcome {
    let text = || String::from_utf8_lossy(body).to_ascii_lowercase();
    match status.as_u16() {
        200..=299 => Outcome::Ok,
        429 => Outcome::Throttled,
        403 if text().contains("rate limit exceeded") => Outcome::Throttled,
        // Canvas marks a bad token with WWW-Authenticate; a missing permission is a plain
        // 401 saying "not authorized".
        401 if headers.contains_key(WWW_AUTHENTICATE) || !text().contains("not authorized") => {
            Outcome::TokenRejected
        }
        401 => Outcome::Forbidden,
        500..=599 => Outcome::ServerError,
        _ => Outcome::Failed,
    }
}

/// Canvas's error text (`errors[].message`, `errors` as a map, `message` or `error`), short.
pub fn error_message(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let mut messages = Vec::new();
    if let Some(value) = &parsed {
        match value.get("errors") {
            Some(Value::Array(errors)) => messages.extend(errors.iter().filter_map(|e| {
                e.get("message")
                    .and_then(Value::as_str)
                    .or_else(|| e.as_str())
                    .map(str::to_string)
            })),
            Some(Value::Object(fields)) => {
                messages.extend(fields.keys().map(|field| format!("invalid {field}")))
            }
            Some(Value::String(message)) => messages.push(message.clone()),
            _ => {}
        }
        for key in ["message", "error"] {
            if messages.is_empty()
                && let Some(message) = value.get(key).and_then(Value::as_str)
            {
                messages.push(message.to_string());
            }
        }
    }
    let text = if messages.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        messages.join("; ")
    };
    text.chars().take(MAX_MESSAGE_CHARS).collect()
}

/// Resolves a path (or an absolute URL Canvas handed out) against the grant's base URL. An
/// absolute URL on another origin keeps only its path and query: the bearer token is never
/// sent anywhere but Canvas.
pub fn resolve(base: &Url, target: &str, query: &[(String, String)]) -> Result<Url, CanvasError> {
    let mut url = match Url::parse(target) {
        Ok(absolute) if absolute.origin() == base.origin() => absolute,
        Ok(foreign) => {
            tracing::debug!("a Canvas link points to another origin; following it on the base URL");
            let mut same = base.clone();
            same.set_path(foreign.path());
            same.set_query(foreign.query());
            same
        }
        Err(_) => base
            .join(target)
            .map_err(|e| CanvasError::Config(format!("bad Canvas path: {e}")))?,
    };
    if !query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in query {
            pairs.append_pair(name, value);
        }
    }
    Ok(url)
}

/// Percent-encodes one path segment (Canvas ids, including `sis_course_id:…` forms).
pub fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// One Canvas call, as the loop repeats it.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub method: Method,
    /// A path (`/api/v1/...`) or an absolute URL from Canvas (`Link`, `items_url`).
    pub target: String,
    pub query: Vec<(String, String)>,
    pub body: Body,
    pub kind: RequestKind,
}

#[derive(Debug, Clone)]
pub(super) enum Body {
    None,
    Form(Vec<(String, String)>),
    Json(Value),
}

impl Call {
    pub fn get(target: impl Into<String>, query: &[(&str, &str)]) -> Self {
        Self {
            method: Method::GET,
            target: target.into(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            body: Body::None,
            kind: RequestKind::Read,
        }
    }

    /// Whether sending it twice is harmless: reads, GraphQL queries and PUTs. A POST that
    /// may have reached Canvas (timeout, 5xx) is not repeated; check-before-act callers
    /// retry it on their next run.
    fn idempotent(&self) -> bool {
        self.method != Method::POST || self.kind == RequestKind::GraphQl
    }
}

/// A successful answer.
pub(super) struct Reply {
    pub body: Bytes,
    pub next: Option<String>,
}

/// The quota-aware Canvas client. Build once per process; share it (`Arc`) between tasks.
pub struct CanvasClient {
    http: reqwest::Client,
    settings: HttpSettings,
    tokens: Arc<TokenSource>,
    quota: Arc<Quota>,
    metrics: Metrics,
    stats: Mutex<ClientStats>,
    /// Stats at the last metrics flush, so metrics carry what happened since.
    flushed: Mutex<(ClientStats, QuotaStats)>,
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

enum Failure {
    Timeout,
    Connect(String),
    Other(String),
}

impl CanvasClient {
    pub fn new(
        settings: HttpSettings,
        tokens: Arc<TokenSource>,
        quota: Arc<Quota>,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Result<Self, CanvasError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("coursewire/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CanvasError::Config(e.to_string()))?;
        Ok(Self {
            http,
            settings,
            tokens,
            quota,
            metrics: Metrics::new(metrics, function),
            stats: Mutex::new(ClientStats::default()),
            flushed: Mutex::new(Default::default()),
        })
    }

    pub fn tokens(&self) -> &Arc<TokenSource> {
        &self.tokens
    }

    pub fn quota(&self) -> &Arc<Quota> {
        &self.quota
    }

    /// Everything this client did so far.
    pub fn stats(&self) -> ClientStats {
        let quota = self.quota.stats();
        ClientStats {
            refreshes: self.tokens.refreshes(),
            lease_calls: quota.lease_calls,
            units_leased: quota.units_leased,
            ..lock(&self.stats).clone()
        }
    }

    /// Gives unspent leased units back to the shared budget; call when a unit of work ends.
    pub async fn release_quota(&self) -> Result<f64, CanvasError> {
        self.quota.release().await
    }

    /// Emits what happened since the last flush as EMF metrics: `CanvasRequests{Outcome}`,
    /// `CanvasRetries`, `CanvasRequestCost`, `CanvasRateLimitRemaining` (lowest seen),
    /// `CanvasLeaseCalls`, `CanvasUnitsLeased`, `CanvasQuotaWait`. Call once per invocation.
    pub fn flush_metrics(&self) {
        let now = self.stats();
        let quota = self.quota.stats();
        let (before, quota_before) = {
            let mut flushed = lock(&self.flushed);
            let previous = flushed.clone();
            *flushed = (now.clone(), quota.clone());
            // The lowest remaining is per flush interval.
            lock(&self.stats).remaining_min = None;
            previous
        };
        let m = &self.metrics;
        for (outcome, n, n0) in [
            ("ok", now.ok, before.ok),
            ("throttled", now.throttled, before.throttled),
            ("unauthorized", now.unauthorized, before.unauthorized),
            ("server_error", now.server_error, before.server_error),
            ("timeout", now.timeout, before.timeout),
            (
                "transport_error",
                now.transport_error,
                before.transport_error,
            ),
            ("client_error", now.client_error, before.client_error),
        ] {
            m.count("CanvasRequests", &[("Outcome", outcome)], n - n0);
        }
        m.count("CanvasRetries", &[], now.retries - before.retries);
        let cost = now.cost_total - before.cost_total;
        if cost > 0.0 {
            m.record("CanvasRequestCost", &[], Unit::Count, cost);
        }
        if let Some(remaining) = now.remaining_min {
            m.record("CanvasRateLimitRemaining", &[], Unit::None, remaining);
        }
        m.count(
            "CanvasLeaseCalls",
            &[],
            quota.lease_calls - quota_before.lease_calls,
        );
        let leased = quota.units_leased - quota_before.units_leased;
        if leased > 0.0 {
            m.record("CanvasUnitsLeased", &[], Unit::Count, leased);
        }
        let waited = quota.wait_ms - quota_before.wait_ms;
        if waited > 0 {
            m.record("CanvasQuotaWait", &[], Unit::Milliseconds, waited as f64);
        }
        m.flush();
    }

    /// `GET` one JSON object.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, CanvasError> {
        let reply = self.execute(&Call::get(path, query)).await?;
        decode(&reply.body, path)
    }

    /// Every element of a REST list, page by page, following `Link: rel="next"` as given.
    pub fn paginate<'a, T>(
        &'a self,
        path: &str,
        query: &[(&str, &str)],
    ) -> impl Stream<Item = Result<T, CanvasError>> + Send + 'a
    where
        T: DeserializeOwned + Send + 'a,
    {
        let first = Call::get(path, query);
        futures::stream::try_unfold(Some(first), move |call| async move {
            let Some(call) = call else {
                return Ok(None);
            };
            let reply = self.execute(&call).await?;
            let page: Vec<T> = decode(&reply.body, &call.target)?;
            let next = reply.next.map(|url| Call::get(url, &[]));
            Ok(Some((
                futures::stream::iter(page.into_iter().map(Ok::<T, CanvasError>)),
                next,
            )))
        })
        .try_flatten()
        .boxed()
    }

    /// A GraphQL query; `errors` in the answer fail it, `data` is decoded into `T`.
    pub async fn graphql<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
    ) -> Result<T, CanvasError> {
        let call = Call {
            method: Method::POST,
            target: "/api/graphql".into(),
            query: Vec::new(),
            body: Body::Json(serde_json::json!({"query": query, "variables": variables})),
            kind: RequestKind::GraphQl,
        };
        let reply = self.execute(&call).await?;
        #[derive(serde::Deserialize)]
        struct Response {
            data: Option<Value>,
            #[serde(default)]
            errors: Option<Vec<Value>>,
        }
        let response: Response = decode(&reply.body, "GraphQL answer")?;
        if let Some(errors) = response.errors.filter(|e| !e.is_empty()) {
            return Err(CanvasError::GraphQl(
                errors
                    .iter()
                    .map(|e| {
                        e.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("unknown error")
                            .chars()
                            .take(MAX_MESSAGE_CHARS)
                            .collect()
                    })
                    .collect(),
            ));
        }
        let data = response
            .data
            .ok_or_else(|| CanvasError::Decode("GraphQL answer without data".into()))?;
        T::deserialize(data)
            .map_err(|e| CanvasError::Decode(format!("GraphQL data: {}", describe_json_error(&e))))
    }

    /// A form-encoded write (`POST` or `PUT`), answering one JSON object.
    pub(super) async fn send_form<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: Vec<(String, String)>,
    ) -> Result<T, CanvasError> {
        let call = Call {
            method,
            target: path.to_string(),
            query: Vec::new(),
            body: Body::Form(form),
            kind: RequestKind::Write,
        };
        let reply = self.execute(&call).await?;
        decode(&reply.body, path)
    }

    fn note(&self, update: impl FnOnce(&mut ClientStats)) {
        update(&mut lock(&self.stats));
    }

    /// The loop: bounded attempts; one token refresh per call.
    pub(super) async fn execute(&self, call: &Call) -> Result<Reply, CanvasError> {
        let max_attempts = self.settings.max_attempts.max(1);
        let mut refreshed = false;
        let mut last_error = CanvasError::Throttled { attempts: 0 };
        for attempt in 1..=max_attempts {
            if attempt > 1 {
                self.note(|s| s.retries += 1);
            }
            // The token first: a revoked grant fails fast without spending any budget...
            self.tokens.access_token().await?;
            let permit = self.quota.acquire(call.kind).await?;
            // ...and again after waiting for budget, which may have outlasted the token.
            let token = self.tokens.access_token().await?;
            let url = resolve(token.base_url(), &call.target, &call.query)?;
            let path = url.path().to_string();
            let started = Instant::now();
            self.note(|s| s.requests += 1);
            let (status, headers, body) = match self.send_once(call, url, &token).await {
                Ok(answer) => answer,
                Err(failure) => {
                    drop(permit);
                    let (error, retry) = match failure {
                        Failure::Timeout => {
                            self.note(|s| s.timeout += 1);
                            (CanvasError::Timeout, call.idempotent())
                        }
                        Failure::Connect(message) => {
                            self.note(|s| s.transport_error += 1);
                            // Nothing reached Canvas: safe to repeat even a POST.
                            (CanvasError::Transport(message), true)
                        }
                        Failure::Other(message) => {
                            self.note(|s| s.transport_error += 1);
                            (CanvasError::Transport(message), call.idempotent())
                        }
                    };
                    tracing::warn!(method = %call.method, path, attempt, error = %error, "Canvas request failed");
                    if !retry {
                        return Err(error);
                    }
                    last_error = error;
                    tokio::time::sleep(backoff(&self.settings, attempt - 1, Duration::ZERO)).await;
                    continue;
                }
            };
            let cost = header_number(&headers, "x-request-cost");
            let remaining = header_number(&headers, "x-rate-limit-remaining");
            self.note(|s| {
                s.cost_total += cost.unwrap_or(0.0);
                if let Some(r) = remaining {
                    s.remaining_min = Some(s.remaining_min.map_or(r, |m| m.min(r)));
                }
            });
            let outcome = classify_response(status, &headers, &body);
            tracing::debug!(
                method = %call.method,
                path,
                status = status.as_u16(),
                cost,
                remaining,
                ms = started.elapsed().as_millis() as u64,
                "Canvas request"
            );
            match outcome {
                Outcome::Ok => {
                    permit.complete(cost, remaining);
                    self.note(|s| s.ok += 1);
                    let next = next_link(
                        headers
                            .get_all(reqwest::header::LINK)
                            .iter()
                            .filter_map(|v| v.to_str().ok()),
                    );
                    return Ok(Reply { body, next });
                }
                Outcome::Throttled => {
                    permit.throttled(remaining);
                    self.note(|s| s.throttled += 1);
                    tracing::warn!(
                        path,
                        attempt,
                        remaining,
                        "Canvas throttled the request; backing off"
                    );
                    last_error = CanvasError::Throttled { attempts: attempt };
                    let asked = retry_after(&headers);
                    tokio::time::sleep(backoff(&self.settings, attempt - 1, asked)).await;
                }
                Outcome::TokenRejected => {
                    permit.complete(cost, remaining);
                    self.note(|s| s.unauthorized += 1);
                    let message = error_message(status, &body);
                    if refreshed {
                        return Err(CanvasError::Unauthorized(message));
                    }
                    refreshed = true;
                    tracing::info!(path, "Canvas rejected the access token; refreshing once");
                    self.tokens.refresh_after_failure(&token).await?;
                    last_error = CanvasError::Unauthorized(message);
                }
                Outcome::Forbidden => {
                    permit.complete(cost, remaining);
                    self.note(|s| s.unauthorized += 1);
                    return Err(CanvasError::Unauthorized(error_message(status, &body)));
                }
                Outcome::ServerError => {
                    permit.complete(cost, remaining);
                    self.note(|s| s.server_error += 1);
                    let error = CanvasError::Http {
                        status: status.as_u16(),
                        message: error_message(status, &body),
                    };
                    tracing::warn!(method = %call.method, path, attempt, status = status.as_u16(), "Canvas server error");
                    if !call.idempotent() {
                        return Err(error);
                    }
                    last_error = error;
                    tokio::time::sleep(backoff(&self.settings, attempt - 1, Duration::ZERO)).await;
                }
                Outcome::Failed => {
                    permit.complete(cost, remaining);
                    self.note(|s| s.client_error += 1);
                    return Err(CanvasError::Http {
                        status: status.as_u16(),
                        message: error_message(status, &body),
                    });
                }
            }
        }
        Err(last_error)
    }

    async fn send_once(
        &self,
        call: &Call,
        url: Url,
        token: &AccessToken,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Failure> {
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .bearer_auth(token.secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.settings.request_timeout);
        request = match &call.body {
            Body::None => request,
            Body::Form(form) => request.form(form),
            Body::Json(json) => request.json(json),
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

fn decode<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, CanvasError> {
    serde_json::from_slice(body).map_err(|e| {
        let what = what.split('?').next().unwrap_or(what);
        CanvasError::Decode(format!("{what}: {}", describe_json_error(&e)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn classifies_throttling_auth_and_server_errors() {
        let none = HeaderMap::new();
        let status = |s| StatusCode::from_u16(s).unwrap();
        assert_eq!(
            classify_response(status(403), &none, b"403 Forbidden (Rate Limit Exceeded)"),
            Outcome::Throttled
        );
        assert_eq!(
            classify_response(
                status(403),
                &none,
                br#"{"errors":[{"message":"forbidden"}]}"#
            ),
            Outcome::Failed,
            "a plain 403 is permanent"
        );
        assert_eq!(
            classify_response(status(429), &none, b""),
            Outcome::Throttled
        );
        let bearer = headers(&[("www-authenticate", "Bearer realm=\"canvas-lms\"")]);
        assert_eq!(
            classify_response(
                status(401),
                &bearer,
                br#"{"errors":[{"message":"Invalid access token."}]}"#
            ),
            Outcome::TokenRejected
        );
        assert_eq!(
            classify_response(
                status(401),
                &none,
                br#"{"status":"unauthorized","errors":[{"message":"user not authorized to perform that action"}]}"#
            ),
            Outcome::Forbidden
        );
        for s in [500, 502, 503, 504] {
            assert_eq!(
                classify_response(status(s), &none, b""),
                Outcome::ServerError
            );
        }
        assert_eq!(
            classify_response(status(404), &none, b"{}"),
            Outcome::Failed
        );
        assert_eq!(classify_response(status(200), &none, b"[]"), Outcome::Ok);
    }

    #[test]
    fn extracts_canvas_error_messages() {
        let s = StatusCode::BAD_REQUEST;
        assert_eq!(
            error_message(s, br#"{"errors":[{"message":"a"},{"message":"b"}]}"#),
            "a; b"
        );
        assert_eq!(
            error_message(s, br#"{"errors":{"external_url":[{"message":"x"}]}}"#),
            "invalid external_url"
        );
        assert_eq!(error_message(s, br#"{"message":"m"}"#), "m");
        assert_eq!(error_message(s, b"<html>oops</html>"), "Bad Request");
        assert_eq!(
            error_message(
                s,
                format!(r#"{{"message":"{}"}}"#, "x".repeat(1000)).as_bytes()
            )
            .len(),
            MAX_MESSAGE_CHARS
        );
    }

    #[test]
    fn resolves_paths_links_and_foreign_origins_onto_the_base() {
        let base = Url::parse("https://canvas.test").unwrap();
        let q = vec![("per_page".to_string(), "100".to_string())];
        assert_eq!(
            resolve(&base, "/api/v1/courses/1/sections", &q)
                .unwrap()
                .as_str(),
            "https://canvas.test/api/v1/courses/1/sections?per_page=100"
        );
        assert_eq!(
            resolve(&base, "https://canvas.test/api/v1/x?page=bookmark:abc", &[])
                .unwrap()
                .as_str(),
            "https://canvas.test/api/v1/x?page=bookmark:abc"
        );
        assert_eq!(
            resolve(&base, "https://evil.test/api/v1/x?page=2", &[])
                .unwrap()
                .as_str(),
            "https://canvas.test/api/v1/x?page=2",
            "the token never leaves Canvas's origin"
        );
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("sis_course_id:A B/C"), "sis_course_id:A%20B%2FC");
    }
}
