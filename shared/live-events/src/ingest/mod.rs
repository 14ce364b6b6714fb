//! Ingestion: the path both receivers share. A payload is verified (HTTPS), parsed, offered
//! to the inbox (conditional put = deduplication) and handed to `changes.fifo`. A crash in
//! between is repaired by the retry: the inbox remembers that the event was stored but not
//! yet applied, so the retry enqueues it again.

mod config;
mod https;
mod sqs;

pub use config::IngestConfig;

use crate::jwt::EventVerifier;
use crate::live_events::LiveEvent;
use chrono::{DateTime, Utc};
use coursewire_pipeline::handoff::{EventQueue, QueuedEvent};
use coursewire_pipeline::inbox::{Admission, Delivery, Inbox, Reject};
use coursewire_runtime::service::ServiceError;
use coursewire_runtime::telemetry::{Metrics, MetricsSink};
use futures::future::join_all;
use std::collections::HashMap;
use std::sync::Arc;

/// A second delivery that finds the first one stored but not yet applied within this window
/// is a concurrent duplicate; later, it is the retry of an attempt that stopped half-way.
const IN_FLIGHT_WINDOW_SECS: i64 = 120;

/// Rejected payloads are kept up to this size for operators to inspect.
const REJECT_SAMPLE_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct IngestSettings {
    /// Accept unsigned JSON over HTTPS (Canvas's "Sign Payload" off). Off by default.
    pub allow_unsigned: bool,
    /// Larger payloads are refused (HTTP 413 / reject) before any parsing.
    pub max_event_bytes: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            allow_unsigned: false,
            max_event_bytes: 256 * 1024,
        }
    }
}

/// What happened to one accepted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New: stored and enqueued.
    Accepted,
    /// Seen before: dropped (or, if not yet applied, enqueued again for the FIFO queue to
    /// absorb).
    Duplicate,
    /// Stored by an earlier attempt that stopped before enqueueing: enqueued now.
    Recovered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Recovered => "recovered",
        }
    }
}

/// The ingestion service behind both `ingest-https` and `ingest-sqs`.
pub struct Ingestor {
    inbox: Arc<dyn Inbox>,
    queue: Arc<dyn EventQueue>,
    verifier: Option<Arc<EventVerifier>>,
    settings: IngestSettings,
    metrics: Arc<dyn MetricsSink>,
    function: String,
}

impl Ingestor {
    pub fn new(
        inbox: Arc<dyn Inbox>,
        queue: Arc<dyn EventQueue>,
        verifier: Option<Arc<EventVerifier>>,
        settings: IngestSettings,
        metrics: Arc<dyn MetricsSink>,
        function: impl Into<String>,
    ) -> Self {
        Self {
            inbox,
            queue,
            verifier,
            settings,
            metrics,
            function: function.into(),
        }
    }

    pub fn verifier(&self) -> Option<&Arc<EventVerifier>> {
        self.verifier.as_ref()
    }

    fn metrics(&self) -> Metrics {
        Metrics::new(self.metrics.clone(), &self.function)
    }

    /// Stores and enqueues parsed events. One result per event, in order; an `Err` is a
    /// failure to store or enqueue that one event.
    pub async fn ingest(
        &self,
        events: &[LiveEvent],
        delivery: &Delivery,
        received_at: DateTime<Utc>,
        metrics: &Metrics,
    ) -> Vec<Result<Outcome, ServiceError>> {
        let mut results: Vec<Option<Result<Outcome, ServiceError>>> = vec![None; events.len()];

        // The same event twice in one batch: keep the first.
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        let mut unique = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            if first_seen.insert(&event.content_hash, i).is_some() {
                results[i] = Some(Ok(Outcome::Duplicate));
            } else {
                unique.push(i);
            }
        }

        let admissions = join_all(
            unique
                .iter()
                .map(|&i| self.inbox.admit(&events[i], delivery, received_at)),
        )
        .await;
        let mut to_send = Vec::new();
        for (&i, admission) in unique.iter().zip(admissions) {
            match admission {
                Ok(Admission::Duplicate) => results[i] = Some(Ok(Outcome::Duplicate)),
                Ok(Admission::New) => to_send.push((i, Outcome::Accepted)),
                Ok(Admission::Unfinished { first_received }) => {
                    let in_flight = first_received
                        .is_some_and(|t| (received_at - t).num_seconds() < IN_FLIGHT_WINDOW_SECS);
                    to_send.push((
                        i,
                        if in_flight {
                            Outcome::Duplicate
                        } else {
                            Outcome::Recovered
                        },
                    ));
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }

        let messages: Vec<QueuedEvent> = to_send
            .iter()
            .map(|&(i, _)| QueuedEvent::new(&events[i], delivery, received_at))
            .collect();
        let sent = if messages.is_empty() {
            Vec::new()
        } else {
            self.queue.enqueue(&messages).await
        };
        for (&(i, outcome), result) in to_send.iter().zip(sent) {
            results[i] = Some(result.map(|()| outcome));
        }

        let results: Vec<Result<Outcome, ServiceError>> = results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(ServiceError::Transient("event was not processed".into())))
            })
            .collect();
        for (event, result) in events.iter().zip(&results) {
            self.observe(event, delivery, result, metrics);
        }
        results
    }

    fn observe(
        &self,
        event: &LiveEvent,
        delivery: &Delivery,
        result: &Result<Outcome, ServiceError>,
        metrics: &Metrics,
    ) {
        let dims = [("Source", delivery.as_str())];
        match result {
            Ok(outcome) => {
                tracing::info!(
                    correlation_id = %event.content_hash,
                    event_name = %event.event_name,
                    entity_key = %event.entity_key,
                    format = event.format.as_str(),
                    source = delivery.as_str(),
                    outcome = outcome.as_str(),
                    "live event ingested"
                );
                let name = match outcome {
                    Outcome::Accepted => "EventsAccepted",
                    Outcome::Duplicate => "DuplicatesDropped",
                    Outcome::Recovered => "EventsRecovered",
                };
                metrics.count(name, &dims, 1);
                if !crate::live_events::entity::is_documented(&event.event_name) {
                    metrics.count("UnknownEventTypes", &dims, 1);
                }
            }
            Err(e) => {
                tracing::warn!(correlation_id = %event.content_hash, error = %e, "live event not stored; will be retried");
                metrics.count("IngestFailures", &dims, 1);
            }
        }
    }

    /// Keeps a rejected payload for operators and counts it. A failure to record is
    /// returned so that SQS retries the message instead of losing it silently.
    async fn reject(
        &self,
        delivery: &Delivery,
        reason_code: &'static str,
        reason: String,
        raw: &[u8],
        metrics: &Metrics,
    ) -> Result<(), ServiceError> {
        tracing::warn!(source = delivery.as_str(), reason_code, reason = %reason, bytes = raw.len(), "live event rejected");
        metrics.count(
            "EventsRejected",
            &[("Source", delivery.as_str()), ("Reason", reason_code)],
            1,
        );
        let sample = &raw[..raw.len().min(REJECT_SAMPLE_BYTES)];
        let reject = Reject {
            delivery: delivery.clone(),
            reason_code,
            reason,
            received_at: Utc::now(),
            raw: String::from_utf8_lossy(sample).into_owned(),
        };
        self.inbox.record_reject(&reject).await
    }
}
