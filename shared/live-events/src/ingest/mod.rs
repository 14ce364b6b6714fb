//! Ingestion: the path both Canvas receivers share. A payload is verified (HTTPS), parsed,
//! and taken in by the pipeline's [`Intake`] (inbox put, then `changes.fifo`); this module
//! adds Canvas's rejections, logs and metrics.

mod config;
mod https;
mod sqs;

pub use config::IngestConfig;

use crate::jwt::EventVerifier;
use crate::live_events::LiveEvent;
use chrono::{DateTime, Utc};
use coursewire_pipeline::handoff::EventQueue;
use coursewire_pipeline::inbox::{Delivery, Inbox, Reject};
use coursewire_pipeline::intake::{Intake, Outcome};
use coursewire_runtime::service::ServiceError;
use coursewire_runtime::telemetry::{Metrics, MetricsSink};
use std::sync::Arc;

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

/// The ingestion service behind both `ingest-https` and `ingest-sqs`.
pub struct Ingestor {
    intake: Intake,
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
            intake: Intake::new(inbox, queue),
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

    /// Stores and enqueues parsed events ([`Intake::accept`]) and counts them.
    pub async fn ingest(
        &self,
        events: &[LiveEvent],
        delivery: &Delivery,
        received_at: DateTime<Utc>,
        metrics: &Metrics,
    ) -> Vec<Result<Outcome, ServiceError>> {
        let results = self.intake.accept(events, delivery, received_at).await;
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
        self.intake.record_reject(&reject).await
    }
}
