//! `ingest-sqs`: Canvas's SQS delivery (standard queue, raw JSON body, `event_name` and
//! `event_time` message attributes). A malformed message is recorded as a reject and removed;
//! only transient failures are reported back, so SQS retries just those messages.

use super::Ingestor;
use crate::live_events::delivery;
use crate::live_events::{self, DeliveryHints};
use async_trait::async_trait;
use chrono::Utc;
use coursewire_runtime::function::{BatchOutcome, HandlerError, QueueHandler, QueueMessage};
use coursewire_runtime::telemetry::Unit;
use futures::future::join_all;
use std::time::Instant;

#[async_trait]
impl QueueHandler for Ingestor {
    async fn handle(&self, batch: Vec<QueueMessage>) -> Result<BatchOutcome, HandlerError> {
        Ok(self.receive_batch(&batch).await)
    }
}

impl Ingestor {
    /// One batch of Canvas's SQS delivery; only transiently failed messages are reported.
    pub async fn receive_batch(&self, batch: &[QueueMessage]) -> BatchOutcome {
        let started = Instant::now();
        let metrics = self.metrics();
        let received_at = Utc::now();
        let mut failures = BatchOutcome::default();
        let mut events = Vec::new();
        let mut event_ids = Vec::new();
        let mut rejects = Vec::new();

        for message in batch {
            let id = message.id.as_str();
            let body = message.body.as_str();
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
                event_name: message.attribute("event_name"),
                event_time: message.attribute("event_time"),
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
            .ingest(&events, &delivery::SQS, received_at, &metrics)
            .await;
        for ((id, body), outcome) in event_ids.into_iter().zip(outcomes) {
            match outcome {
                Ok(_) => {}
                Err(e) if e.is_transient() => failures.fail(id),
                // Storage refused this event for good (e.g. a validation error): keep it as a
                // reject rather than let it cycle to the DLQ.
                Err(e) => rejects.push((id, "storage_rejected", e.to_string(), body)),
            }
        }

        let recorded = join_all(rejects.iter().map(|(_, code, reason, body)| {
            self.reject(
                &delivery::SQS,
                code,
                reason.clone(),
                body.as_bytes(),
                &metrics,
            )
        }))
        .await;
        for ((id, _, _, _), result) in rejects.iter().zip(recorded) {
            if let Err(e) = result {
                tracing::warn!(message_id = %id, error = %e, "could not record reject; leaving the message for retry");
                failures.fail(*id);
            }
        }

        metrics.count(
            "BatchItemFailures",
            &[("Source", "sqs")],
            failures.failed.len() as u64,
        );
        metrics.record(
            "BatchLatency",
            &[("Source", "sqs")],
            Unit::Milliseconds,
            started.elapsed().as_secs_f64() * 1e3,
        );
        metrics.flush();
        failures
    }
}
