//! `ingest-https`: Canvas's HTTPS delivery. The body is a signed JWT whose claims are the
//! event (or, only if explicitly allowed, the bare event JSON).
//!
//! Replies: 200 accepted or duplicate; 400 malformed JSON or envelope; 401 any signature or
//! claims failure; 405 not a POST; 413 oversized; 503 transient failure on our side (Canvas
//! retries those).

use super::{Ingestor, Outcome};
use crate::jwt::VerifyError;
use crate::live_events::delivery;
use crate::live_events::{self, DeliveryHints, EnvelopeError, LiveEvent};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::Utc;
use coursewire_runtime::function::HttpHandler;
use coursewire_runtime::telemetry::{Metrics, Unit};
use http::{Method, Request, Response, StatusCode};
use serde_json::json;
use std::time::Instant;

fn reply(status: StatusCode, body: serde_json::Value) -> Response<String> {
    let mut response = Response::new(body.to_string());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A response that ends the request early (boxed: it is the large side of a `Result`).
type Stop = Box<Response<String>>;

fn stop(response: Response<String>) -> Stop {
    Box::new(response)
}

fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response<String> {
    reply(
        status,
        json!({"error": code, "message": message.to_string()}),
    )
}

#[async_trait::async_trait]
impl HttpHandler for Ingestor {
    async fn handle(&self, request: Request<Bytes>) -> Response<String> {
        self.handle_http(request).await
    }
}

impl Ingestor {
    /// Handles one HTTPS delivery. Never panics, never returns 5xx for the sender's mistakes.
    pub async fn handle_http(&self, request: Request<Bytes>) -> Response<String> {
        let started = Instant::now();
        let metrics = self.metrics();
        let response = self.respond(request, &metrics).await;
        let status = response.status();
        metrics.record(
            "IngestLatency",
            &[("Source", "https")],
            Unit::Milliseconds,
            started.elapsed().as_secs_f64() * 1e3,
        );
        metrics.count(
            "HttpResponses",
            &[("Source", "https"), ("Status", status.as_str())],
            1,
        );
        if status.is_server_error() {
            // Canvas retries these, then gives up on the subscription: the ingest alarm's.
            metrics.count("ServerErrors", &[("Source", "https")], 1);
        }
        metrics.flush();
        response
    }

    /// Request → admissible body → authenticated event → stored: each step answers the
    /// sender itself when it stops the request.
    async fn respond(&self, request: Request<Bytes>, metrics: &Metrics) -> Response<String> {
        if request.method() != Method::POST {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "POST a Canvas live event",
            );
        }
        let body = request.into_body();
        let text = match self.admissible(&body, metrics) {
            Ok(text) => text,
            Err(stop) => return *stop,
        };
        let (parsed, token) = match self.authenticate(text, metrics).await {
            Ok(authenticated) => authenticated,
            Err(stop) => return *stop,
        };
        // What is kept of a rejected event (only on the error paths): the signed claims, or
        // the unsigned body.
        let raw = || match token {
            Some(token) => signed_claims(token),
            None => Bytes::copy_from_slice(text),
        };
        match parsed {
            Ok(event) => self.store(&event, raw, metrics).await,
            Err(e) => {
                self.keep_reject(e.code(), e.to_string(), &raw(), metrics)
                    .await;
                error(StatusCode::BAD_REQUEST, e.code(), e)
            }
        }
    }

    /// The body without surrounding whitespace, if it is neither too large nor empty.
    fn admissible<'a>(&self, body: &'a Bytes, metrics: &Metrics) -> Result<&'a [u8], Stop> {
        let refuse = |reason: &str| {
            metrics.count(
                "EventsRejected",
                &[("Source", "https"), ("Reason", reason)],
                1,
            );
        };
        if body.len() > self.settings.max_event_bytes {
            refuse("payload_too_large");
            return Err(stop(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "body is {} bytes; the limit is {}",
                    body.len(),
                    self.settings.max_event_bytes
                ),
            )));
        }
        let text = body.trim_ascii();
        if text.is_empty() {
            refuse("empty_body");
            return Err(stop(error(
                StatusCode::BAD_REQUEST,
                "empty_body",
                "the request body is empty",
            )));
        }
        Ok(text)
    }

    /// A verified JWT's claims (or, where allowed, unsigned JSON) parsed as an event, with the
    /// token it came in. Unauthenticated input is answered here and never stored.
    async fn authenticate<'a>(
        &self,
        text: &'a [u8],
        metrics: &Metrics,
    ) -> Result<(Result<LiveEvent, EnvelopeError>, Option<&'a str>), Stop> {
        if text.first() == Some(&b'{') {
            if !self.settings.allow_unsigned {
                return Err(stop(self.unauthorized(
                    metrics,
                    "unsigned",
                    "unsigned events are not accepted: turn on Sign Payload in the Canvas subscription",
                )));
            }
            return Ok((
                live_events::parse_json(text, DeliveryHints::default()),
                None,
            ));
        }
        let Some(verifier) = self.verifier.as_ref() else {
            tracing::error!("a signed event arrived but no JWKS is configured");
            return Err(stop(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "signature verification is not configured",
            )));
        };
        let Ok(token) = std::str::from_utf8(text) else {
            return Err(stop(self.unauthorized(
                metrics,
                "malformed_token",
                "body is neither JSON nor a JWT",
            )));
        };
        match verifier.verify(token).await {
            Ok(claims) => Ok((live_events::from_jwt_claims(claims), Some(token))),
            Err(e @ VerifyError::ClaimsNotJson) => {
                // Authentic but unreadable: the sender's bug, not an attack. Keep it.
                self.keep_reject(e.code(), e.to_string(), &signed_claims(token), metrics)
                    .await;
                Err(stop(error(StatusCode::BAD_REQUEST, e.code(), e)))
            }
            Err(e) if e.is_transient() => {
                metrics.count("JwksUnavailable", &[("Source", "https")], 1);
                tracing::error!(error = %e, "cannot verify: JWKS unavailable");
                Err(stop(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    e.code(),
                    "signing keys unavailable; retry later",
                )))
            }
            Err(e) => Err(stop(self.unauthorized(metrics, e.code(), e))),
        }
    }

    /// Stores and enqueues the event; the answer Canvas gets.
    async fn store(
        &self,
        event: &LiveEvent,
        raw: impl Fn() -> Bytes,
        metrics: &Metrics,
    ) -> Response<String> {
        let outcome = self
            .ingest(
                std::slice::from_ref(event),
                &delivery::HTTPS,
                Utc::now(),
                metrics,
            )
            .await;
        match outcome.into_iter().next() {
            Some(Ok(outcome)) => reply(
                StatusCode::OK,
                json!({
                    "status": if outcome == Outcome::Duplicate { "duplicate" } else { "accepted" },
                    "event_hash": event.content_hash,
                    "entity_key": event.entity_key,
                }),
            ),
            Some(Err(e)) if !e.is_transient() => {
                self.keep_reject("storage_rejected", e.to_string(), &raw(), metrics)
                    .await;
                error(
                    StatusCode::BAD_REQUEST,
                    "storage_rejected",
                    "the event cannot be stored",
                )
            }
            _ => {
                let mut response = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "try_again",
                    "temporarily unable to store the event",
                );
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("5"),
                );
                response
            }
        }
    }

    /// Keeps an authenticated but unusable event for operators; the sender's answer does not
    /// depend on whether that worked.
    async fn keep_reject(&self, code: &'static str, reason: String, raw: &[u8], metrics: &Metrics) {
        if let Err(store) = self
            .reject(&delivery::HTTPS, code, reason, raw, metrics)
            .await
        {
            tracing::warn!(error = %store, "could not record reject");
        }
    }

    fn unauthorized(
        &self,
        metrics: &Metrics,
        code: &'static str,
        reason: impl std::fmt::Display,
    ) -> Response<String> {
        // Unauthenticated input is not stored: anyone can POST to a function URL.
        tracing::warn!(reason_code = code, "signed event refused");
        metrics.count("AuthFailures", &[("Source", "https"), ("Reason", code)], 1);
        // All reasons together: what the auth-failure burst alarm watches (Canvas
        // deactivates a subscription whose deliveries keep failing).
        metrics.count("AuthRefusals", &[("Source", "https")], 1);
        error(StatusCode::UNAUTHORIZED, code, reason)
    }
}

/// The claims segment of a verified token, decoded: what a reject keeps of a signed event.
fn signed_claims(token: &str) -> Bytes {
    token
        .split('.')
        .nth(1)
        .and_then(|claims| URL_SAFE_NO_PAD.decode(claims).ok())
        .map(Bytes::from)
        .unwrap_or_default()
}
