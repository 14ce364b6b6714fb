//! `panopto-webhook`: recording events pushed by institutional middleware over HTTPS, signed
//! (see [`signature`]), into the same inbox and `recordings.fifo` as the poller's.
//!
//! Order of checks: size (413) → signature and freshness (400/401) → body (422) → replay (409)
//! → inbox and queue (202; 503 when they fail, and the request's fingerprint is released so
//! a re-signed retry is accepted). Each rejection has its own code and is counted.

mod body;
pub mod replay_guard;
pub mod signature;

pub use body::parse;
pub use replay_guard::{DynamoReplayGuard, ReplayGuard};
pub use signature::{REPLAY_WINDOW, Rejection, SIGNATURE_HEADER, SigningKeys, TIMESTAMP_HEADER};

use crate::event::delivery;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use coursewire_pipeline::inbox::SourceEvent;
use coursewire_pipeline::intake::Intake;
use coursewire_runtime::function::HttpHandler;
use coursewire_runtime::telemetry::{Metrics, MetricsSink};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Largest body accepted: one recording event is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct Webhook {
    keys: SigningKeys,
    guard: Arc<dyn ReplayGuard>,
    intake: Intake,
    metrics: Arc<dyn MetricsSink>,
    function: String,
}

impl Webhook {
    pub fn new(
        keys: SigningKeys,
        guard: Arc<dyn ReplayGuard>,
        intake: Intake,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Self {
        Self {
            keys,
            guard,
            intake,
            metrics,
            function: function.to_string(),
        }
    }

    fn reject(&self, rejection: &Rejection) -> http::Response<String> {
        tracing::warn!(code = rejection.code(), reason = %rejection, "webhook request refused");
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        metrics.count("WebhookRejected", &[("Reason", rejection.code())], 1);
        metrics.flush();
        respond(
            rejection.status(),
            json!({"error": rejection.code(), "message": rejection.to_string()}),
        )
    }

    async fn accept(
        &self,
        request: &http::Request<Bytes>,
    ) -> Result<http::Response<String>, Rejection> {
        let body = request.body();
        if body.len() > MAX_BODY_BYTES {
            return Err(Rejection::BodyTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        let now = Utc::now();
        let sent = self.keys.verify(
            header(TIMESTAMP_HEADER),
            header(SIGNATURE_HEADER),
            body,
            now,
        )?;
        let event = parse(body).map_err(Rejection::InvalidBody)?;
        let fingerprint = hex::encode(Sha256::digest(
            format!(
                "{}|{}",
                sent.timestamp(),
                header(SIGNATURE_HEADER).unwrap_or_default()
            )
            .as_bytes(),
        ));
        match self
            .guard
            .first_use(&fingerprint, now, sent + REPLAY_WINDOW)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(Rejection::Replayed),
            Err(e) => {
                tracing::error!(error = %e, "the webhook replay guard is unavailable");
                return Ok(respond(
                    503,
                    json!({"error": "unavailable", "message": "try again"}),
                ));
            }
        }
        let results = self
            .intake
            .accept(std::slice::from_ref(&event), &delivery::WEBHOOK, now)
            .await;
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        let response = match results.into_iter().next() {
            Some(Ok(outcome)) => {
                tracing::info!(
                    event = event.kind.as_str(),
                    entity = event.entity_key(),
                    event_hash = event.content_hash(),
                    outcome = outcome.as_str(),
                    "recording event accepted"
                );
                metrics.count(
                    "RecordingEventsAccepted",
                    &[("Outcome", outcome.as_str()), ("Delivery", "webhook")],
                    1,
                );
                respond(
                    202,
                    json!({"event_hash": event.content_hash(), "outcome": outcome.as_str()}),
                )
            }
            other => {
                let error = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "no result".into(),
                };
                tracing::error!(error = %error, event_hash = event.content_hash(), "could not store or enqueue a webhook event");
                metrics.count("RecordingEventsFailed", &[("Delivery", "webhook")], 1);
                if let Err(e) = self.guard.release(&fingerprint).await {
                    tracing::warn!(error = %e, "could not release the request's fingerprint; the sender must re-sign its retry");
                }
                respond(
                    503,
                    json!({"error": "unavailable", "message": "not stored; retry"}),
                )
            }
        };
        metrics.flush();
        Ok(response)
    }
}

fn respond(status: u16, body: serde_json::Value) -> http::Response<String> {
    let mut response = http::Response::new(body.to_string());
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[async_trait]
impl HttpHandler for Webhook {
    async fn handle(&self, request: http::Request<Bytes>) -> http::Response<String> {
        if request.method() != http::Method::POST {
            return respond(
                405,
                json!({"error": "method_not_allowed", "message": "POST a signed recording event"}),
            );
        }
        match self.accept(&request).await {
            Ok(response) => response,
            Err(rejection) => self.reject(&rejection),
        }
    }
}
