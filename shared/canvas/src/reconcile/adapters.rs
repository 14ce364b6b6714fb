//! The reconciler's ports on coursewire's own pieces: the catalog table, the ingestion path
//! (inbox + `changes.fifo`), the per-course SQS queue and the Canvas client.

use super::{CanvasSource, CatalogView, CourseMessage, CourseQueue, DriftSink};
use crate::canvas::{CanvasClient, CanvasError, Course, Module, Roster};
use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::Utc;
use coursewire_live_events::catalog::{DynamoCatalog, EntityRecord};
use coursewire_live_events::ingest::Ingestor;
use coursewire_live_events::live_events::LiveEvent;
use coursewire_live_events::live_events::delivery;
use coursewire_pipeline::intake::Outcome;
use coursewire_runtime::aws::classify;
use coursewire_runtime::service::ServiceError;
use coursewire_runtime::telemetry::{Metrics, MetricsSink};
use futures::future::try_join_all;
use std::collections::HashMap;
use std::sync::Arc;

/// Catalog reads for one course: two index queries plus one per module, and batched gets for
/// the roster's users.
pub struct DynamoCatalogView(pub DynamoCatalog);

#[async_trait]
impl CatalogView for DynamoCatalogView {
    async fn course_rows(
        &self,
        course_key: &str,
        module_keys: &[String],
        user_keys: &[String],
    ) -> Result<HashMap<String, EntityRecord>, ServiceError> {
        let mut rows: HashMap<String, EntityRecord> = HashMap::new();
        let under_course = self.0.children(course_key).await?;
        // Module items hang off modules: those Canvas lists and those the catalog knows.
        let mut modules: Vec<String> = module_keys.to_vec();
        modules.extend(
            under_course
                .iter()
                .filter(|r| r.entity_type == "module")
                .map(|r| r.key.clone()),
        );
        modules.sort();
        modules.dedup();
        let items = try_join_all(modules.iter().map(|m| self.0.children(m))).await?;
        let mut singles: Vec<String> = user_keys.to_vec();
        singles.push(course_key.to_string());
        let singles = self.0.get_many(&singles).await?;
        for row in under_course
            .into_iter()
            .chain(items.into_iter().flatten())
            .chain(singles)
        {
            rows.insert(row.key.clone(), row);
        }
        Ok(rows)
    }
}

/// Drift events take the live events' path, marked `delivery: "reconciliation"`.
pub struct IngestSink {
    ingestor: Arc<Ingestor>,
    metrics: Arc<dyn MetricsSink>,
    function: String,
}

impl IngestSink {
    pub fn new(ingestor: Arc<Ingestor>, metrics: Arc<dyn MetricsSink>, function: &str) -> Self {
        Self {
            ingestor,
            metrics,
            function: function.to_string(),
        }
    }
}

#[async_trait]
impl DriftSink for IngestSink {
    async fn submit(&self, events: &[LiveEvent]) -> Vec<Result<bool, ServiceError>> {
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        let results = self
            .ingestor
            .ingest(events, &delivery::RECONCILIATION, Utc::now(), &metrics)
            .await;
        metrics.flush();
        results
            .into_iter()
            .map(|r| r.map(|outcome| outcome == Outcome::Accepted))
            .collect()
    }
}

/// The reconciler's own fan-out queue (standard SQS; a course reconciled twice is harmless).
pub struct SqsCourseQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsCourseQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl CourseQueue for SqsCourseQueue {
    async fn enqueue(&self, courses: &[CourseMessage]) -> Result<(), ServiceError> {
        for chunk in courses.chunks(10) {
            let mut pending: Vec<SendMessageBatchRequestEntry> = Vec::with_capacity(chunk.len());
            for (i, course) in chunk.iter().enumerate() {
                let body = serde_json::to_string(course)
                    .map_err(|e| ServiceError::Permanent(e.to_string()))?;
                pending.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| ServiceError::Permanent(e.to_string()))?,
                );
            }
            // Entries that failed are sent again (a few times); success is all or an error.
            for attempt in 1..=4 {
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(pending.clone()))
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
                let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
                if failed.is_empty() {
                    break;
                }
                if attempt == 4 {
                    return Err(ServiceError::Transient(format!(
                        "{} reconcile messages not accepted by SQS",
                        failed.len()
                    )));
                }
                pending.retain(|entry| failed.contains(&entry.id()));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl CanvasSource for CanvasClient {
    async fn active_courses(&self, account_id: &str) -> Result<Vec<Course>, CanvasError> {
        CanvasClient::active_courses(self, account_id).await
    }

    async fn course(&self, course_id: &str) -> Result<Course, CanvasError> {
        CanvasClient::course(self, course_id).await
    }

    async fn roster(&self, course_id: &str) -> Result<Roster, CanvasError> {
        CanvasClient::roster(self, course_id).await
    }

    async fn modules(&self, course_id: &str) -> Result<Vec<Module>, CanvasError> {
        CanvasClient::modules(self, course_id).await
    }

    async fn finish(&self) {
        if let Err(e) = CanvasClient::release_quota(self).await {
            // Unreturned units are only a slower start for the next caller.
            tracing::warn!(error = %e, "leased Canvas quota not returned");
        }
        self.flush_metrics();
    }
}
