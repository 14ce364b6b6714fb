//! `ingest-sqs`: Canvas's SQS delivery (standard queue, raw JSON body, `event_name` and
//! `event_time` message attributes). A malformed message is recorded as a reject and removed;
//! only transient failures are reported back, so SQS retries just those messages.

use super::Ingestor;
use crate::inbox::Source;
use crate::live_events::{self, DeliveryHints};
use crate::telemetry::Unit;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::Utc;
use futures::future::join_all;
use std::time::Instant;

fn attribute<'a>(message: &'a SqsMessage, name: &str) -> Option<&'a str> {
    message
        .message_attributes
        .get(name)
        .and_then(|a| a.string_value.as_deref())
}

fn failure(message_id: &str) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message_id.to_string();
    failure
}

impl Ingestor {
    pub async fn handle_sqs(&self, event: SqsEvent) -> SqsBatchResponse {
        let started = Instant::now();
        let metrics = self.metrics();
        let received_at = Utc::now();
        let mut failures = Vec::new();
        let mut events = Vec::new();
        let mut event_ids = Vec::new();
        let mut rejects = Vec::new();

        for (index, message) in event.records.iter().enumerate() {
            let id = message
                .message_id
                .clone()
                .unwrap_or_else(|| index.to_string());
            let body = message.body.as_deref().unwrap_or("");
            if body.len() > self.settings.max_event_bytes {
                let reason = format!(
                    "message is {} bytes; the limit is {}",
                    body.len(),
                    self.settings.max_event_bytes
                );
                rejects.push((id, "payload_too_large", reason, body));
                continue;
            }
            if body.trim().is_empty() {
                rejects.push((
                    id,
                    "empty_body",
                    "the message body is empty".to_string(),
                    body,
                ));
                continue;
            }
            let hints = DeliveryHints {
                event_name: attribute(message, "event_name"),
                event_time: attribute(message, "event_time"),
            };
            match live_events::parse_json(body.as_bytes(), hints) {
                Ok(event) => {
                    events.push(event);
                    event_ids.push((id, body));
                }
                Err(e) => rejects.push((id, e.code(), e.to_string(), body)),
            }
        }

        let outcomes = self
            .ingest(&events, Source::Sqs, received_at, &metrics)
            .await;
        for ((id, body), outcome) in event_ids.into_iter().zip(outcomes) {
            match outcome {
                Ok(_) => {}
                Err(e) if e.is_transient() => failures.push(failure(&id)),
                // Storage refused this event for good (e.g. a validation error): keep it as a
                // reject rather than let it cycle to the DLQ.
                Err(e) => rejects.push((id, "storage_rejected", e.to_string(), body)),
            }
        }

        let recorded = join_all(rejects.iter().map(|(_, code, reason, body)| {
            self.reject(Source::Sqs, code, reason.clone(), body.as_bytes(), &metrics)
        }))
        .await;
        for ((id, _, _, _), result) in rejects.iter().zip(recorded) {
            if let Err(e) = result {
                tracing::warn!(message_id = %id, error = %e, "could not record reject; leaving the message for retry");
                failures.push(failure(id));
            }
        }

        metrics.count(
            "BatchItemFailures",
            &[("Source", "sqs")],
            failures.len() as u64,
        );
        metrics.record(
            "BatchLatency",
            &[("Source", "sqs")],
            Unit::Milliseconds,
            started.elapsed().as_secs_f64() * 1e3,
        );
        metrics.flush();

        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        response
    }
}
