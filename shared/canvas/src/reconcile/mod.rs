//! Reconciliation: heal what live events lost, from Canvas's API.
//!
//! Live events are best-effort, and some state (deep rosters, sections, module contents) is
//! never pushed at all. The reconciler fetches a course's sections, roster and modules through
//! the quota-aware [`canvas`](crate::canvas) client, compares them with the catalog
//! ([`diff`]), and feeds every drift into `changes.fifo` as a synthesized Canvas-format event
//! (`delivery: "reconciliation"`). From there it is an ordinary change: inbox, per-entity
//! order, next sequence number, exactly one change event for subscribers.
//!
//! Work fans out per course so a large account finishes within Lambda limits:
//! - on its schedule, the function lists the account's active courses and sends one message
//!   per course to its own queue ([`Reconciler::plan`]);
//! - each queue message reconciles one course ([`Reconciler::reconcile_batch`]);
//! - a direct invocation `{"course_id": "..."}` reconciles one course and returns the report.

mod adapters;
mod config;
pub mod diff;

pub use adapters::{DynamoCatalogView, IngestSink, SqsCourseQueue};
pub use config::{ReconcilerBuildError, ReconcilerConfig};
pub use diff::{CourseSnapshot, Drift, DriftKind, Stamp, diff};

use crate::canvas::{CanvasError, Course, Module, Roster};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use coursewire_live_events::catalog::EntityRecord;
use coursewire_live_events::live_events::LiveEvent;
use coursewire_runtime::function::{
    BatchOutcome, HandlerError, InvokeHandler, QueueHandler, QueueMessage, ScheduleHandler,
};
use coursewire_runtime::service::ServiceError;
use coursewire_runtime::telemetry::{Metrics, MetricsSink, Unit};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// What the reconciler reads from Canvas (the [`CanvasClient`](crate::canvas::CanvasClient)
/// in production).
#[async_trait]
pub trait CanvasSource: Send + Sync {
    async fn active_courses(&self, account_id: &str) -> Result<Vec<Course>, CanvasError>;
    async fn course(&self, course_id: &str) -> Result<Course, CanvasError>;
    async fn roster(&self, course_id: &str) -> Result<Roster, CanvasError>;
    async fn modules(&self, course_id: &str) -> Result<Vec<Module>, CanvasError>;
    /// The unit of work is over: give back unused quota.
    async fn finish(&self) {}
}

/// The catalog rows a course's diff needs.
#[async_trait]
pub trait CatalogView: Send + Sync {
    /// The course row, every row under the course, every row under `module_keys` and the
    /// rows of `user_keys`, by entity key.
    async fn course_rows(
        &self,
        course_key: &str,
        module_keys: &[String],
        user_keys: &[String],
    ) -> Result<HashMap<String, EntityRecord>, ServiceError>;
}

/// Where drift events go (inbox + `changes.fifo`, like live events).
#[async_trait]
pub trait DriftSink: Send + Sync {
    /// One result per event, in order: `true` if it was new, `false` if the inbox had it
    /// already (another course's pass of the same run submitted it).
    async fn submit(&self, events: &[LiveEvent]) -> Vec<Result<bool, ServiceError>>;
}

/// The per-course fan-out queue.
#[async_trait]
pub trait CourseQueue: Send + Sync {
    async fn enqueue(&self, courses: &[CourseMessage]) -> Result<(), ServiceError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Canvas: {0}")]
    Canvas(#[from] CanvasError),
    #[error(transparent)]
    Aws(#[from] ServiceError),
    #[error("{failed} of {total} drift events could not be submitted: {first}")]
    Submit {
        failed: usize,
        total: usize,
        first: ServiceError,
    },
    #[error("unrecognised invocation: {0}")]
    Request(String),
}

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// The Canvas account whose active courses the schedule reconciles.
    pub account_id: String,
    /// See [`Stamp::root_account_id`].
    pub root_account_id: Option<String>,
}

/// What one course's pass found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CourseReport {
    pub course_id: String,
    pub sections: usize,
    pub enrollments: usize,
    pub users: usize,
    pub modules: usize,
    pub module_items: usize,
    /// Drift found, by `<entity type>.<kind>` (e.g. `enrollment.missing`).
    pub drift: BTreeMap<String, usize>,
    /// Drift events new to the inbox (the rest another pass of the run had submitted).
    pub submitted: usize,
    pub duration_ms: u64,
}

/// What a scheduled pass planned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanReport {
    pub account_id: String,
    pub courses: usize,
}

/// A direct invocation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invocation {
    #[serde(default)]
    course_id: Option<String>,
    /// `true`: plan the whole account now (as the schedule does).
    #[serde(default)]
    all_courses: bool,
}

/// A fan-out message on the reconcile queue: one course of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CourseMessage {
    pub course_id: String,
    /// When the run started (RFC 3339): every course pass of the run stamps its drift with it.
    pub run_at: DateTime<Utc>,
}

pub struct Reconciler {
    canvas: Arc<dyn CanvasSource>,
    catalog: Arc<dyn CatalogView>,
    sink: Arc<dyn DriftSink>,
    fanout: Arc<dyn CourseQueue>,
    settings: ReconcileSettings,
    metrics: Arc<dyn MetricsSink>,
    function: String,
}

impl Reconciler {
    pub fn new(
        canvas: Arc<dyn CanvasSource>,
        catalog: Arc<dyn CatalogView>,
        sink: Arc<dyn DriftSink>,
        fanout: Arc<dyn CourseQueue>,
        settings: ReconcileSettings,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Self {
        Self {
            canvas,
            catalog,
            sink,
            fanout,
            settings,
            metrics,
            function: function.to_string(),
        }
    }

    /// Lists the account's active courses and queues one reconciliation per course.
    pub async fn plan(&self) -> Result<PlanReport, ReconcileError> {
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        let courses = self.canvas.active_courses(&self.settings.account_id).await;
        self.canvas.finish().await;
        let run_at = Utc::now();
        let ids: Vec<CourseMessage> = courses?
            .into_iter()
            .map(|c| CourseMessage {
                course_id: c.id,
                run_at,
            })
            .collect();
        for chunk in ids.chunks(100) {
            self.fanout.enqueue(chunk).await?;
        }
        metrics.count("CoursesPlanned", &[], ids.len() as u64);
        metrics.flush();
        tracing::info!(account_id = %self.settings.account_id, courses = ids.len(), "reconciliation planned");
        Ok(PlanReport {
            account_id: self.settings.account_id.clone(),
            courses: ids.len(),
        })
    }

    /// Reconciles one course: fetch, diff, submit the drift. `run_at`: see [`Stamp::at`].
    pub async fn reconcile_course(
        &self,
        course_id: &str,
        run_at: DateTime<Utc>,
    ) -> Result<CourseReport, ReconcileError> {
        let result = self.reconcile_inner(course_id, run_at).await;
        self.canvas.finish().await;
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        match &result {
            Ok(report) => {
                metrics.count("CoursesReconciled", &[], 1);
                metrics.count("ReconcileChangesSubmitted", &[], report.submitted as u64);
                metrics.record(
                    "ReconcileDuration",
                    &[],
                    Unit::Milliseconds,
                    report.duration_ms as f64,
                );
                for (what, n) in &report.drift {
                    let (entity_type, kind) = what.split_once('.').unwrap_or((what, ""));
                    metrics.count(
                        "ReconcileDrift",
                        &[("EntityType", entity_type), ("Kind", kind)],
                        *n as u64,
                    );
                }
                tracing::info!(course_id, submitted = report.submitted, drift = ?report.drift, "course reconciled");
            }
            Err(e) => {
                metrics.count("ReconcileFailures", &[], 1);
                tracing::warn!(course_id, error = %e, "course not reconciled");
            }
        }
        metrics.flush();
        result
    }

    async fn reconcile_inner(
        &self,
        course_id: &str,
        run_at: DateTime<Utc>,
    ) -> Result<CourseReport, ReconcileError> {
        let started = Instant::now();
        let stamp = Stamp {
            at: run_at,
            root_account_id: self.settings.root_account_id.clone(),
        };
        let (course, roster, modules) = futures::try_join!(
            self.canvas.course(course_id),
            self.canvas.roster(course_id),
            self.canvas.modules(course_id),
        )?;
        let snapshot = CourseSnapshot {
            course,
            roster,
            modules,
        };
        let globalise = |kind: &str, id: &str| diff::entity_key(kind, id, &stamp);
        let module_keys: Vec<String> = snapshot
            .modules
            .iter()
            .map(|m| globalise("module", &m.id))
            .collect();
        let user_keys: Vec<String> = snapshot
            .roster
            .users
            .iter()
            .map(|u| globalise("user", &u.id))
            .collect();
        let rows = self
            .catalog
            .course_rows(&globalise("course", course_id), &module_keys, &user_keys)
            .await?;
        let drifts = diff(&snapshot, &rows, &stamp);

        let mut report = CourseReport {
            course_id: course_id.to_string(),
            sections: snapshot.roster.sections.len(),
            enrollments: snapshot.roster.enrollments.len(),
            users: snapshot.roster.users.len(),
            modules: snapshot.modules.len(),
            module_items: snapshot.modules.iter().map(|m| m.items.len()).sum(),
            ..CourseReport::default()
        };
        for drift in &drifts {
            *report
                .drift
                .entry(format!("{}.{}", drift.entity_type(), drift.kind.as_str()))
                .or_default() += 1;
            tracing::info!(
                correlation_id = %drift.event.content_hash,
                entity_key = %drift.event.entity_key.as_str(),
                kind = drift.kind.as_str(),
                fields = ?drift.fields,
                "drift found"
            );
        }
        let events: Vec<LiveEvent> = drifts.into_iter().map(|d| d.event).collect();
        let results = if events.is_empty() {
            Vec::new()
        } else {
            self.sink.submit(&events).await
        };
        let total = results.len();
        let mut submitted = 0;
        let mut failures = Vec::new();
        for result in results {
            match result {
                Ok(new) => submitted += usize::from(new),
                Err(e) => failures.push(e),
            }
        }
        if let Some(first) = failures.first() {
            // Nothing is lost: the retry diffs again and re-submits what is still missing
            // (the inbox absorbs what did get through).
            return Err(ReconcileError::Submit {
                failed: failures.len(),
                total,
                first: first.clone(),
            });
        }
        report.submitted = submitted;
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// The fan-out queue's messages: one course each; failures are reported per message.
    pub async fn reconcile_batch(&self, batch: Vec<QueueMessage>) -> BatchOutcome {
        let mut failures = BatchOutcome::default();
        for QueueMessage {
            id: message_id,
            body,
            ..
        } in batch
        {
            let Ok(message) = serde_json::from_str::<CourseMessage>(&body) else {
                // Retrying cannot fix it; the next scheduled pass covers the course anyway.
                tracing::error!(message_id, "unreadable reconcile message dropped");
                continue;
            };
            match self
                .reconcile_course(&message.course_id, message.run_at)
                .await
            {
                Ok(_) => {}
                // A revoked grant fails every course alike; retries only add noise (the alert
                // is raised by the client) — the next scheduled pass picks them up again.
                Err(ReconcileError::Canvas(CanvasError::GrantRevoked)) => {}
                Err(_) => failures.fail(message_id),
            }
        }
        failures
    }

    /// A direct invocation or a schedule: `{"course_id": "..."}` reconciles that course,
    /// `{"all_courses": true}` and EventBridge's scheduled events plan the account.
    pub async fn handle_invoke(&self, event: Value) -> Result<Value, ReconcileError> {
        if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
            return Ok(serde_json::to_value(self.plan().await?).unwrap_or_default());
        }
        let invocation: Invocation = serde_json::from_value(event).map_err(|e| {
            ReconcileError::Request(format!(
                "expected {{\"course_id\": \"...\"}} or {{\"all_courses\": true}}: {e}"
            ))
        })?;
        match (invocation.course_id, invocation.all_courses) {
            (Some(course_id), false) => Ok(serde_json::to_value(
                self.reconcile_course(&course_id, Utc::now()).await?,
            )
            .unwrap_or_default()),
            (None, true) => Ok(serde_json::to_value(self.plan().await?).unwrap_or_default()),
            _ => Err(ReconcileError::Request(
                "give exactly one of `course_id` and `all_courses`".into(),
            )),
        }
    }
}

#[async_trait]
impl QueueHandler for Reconciler {
    async fn handle(&self, batch: Vec<QueueMessage>) -> Result<BatchOutcome, HandlerError> {
        Ok(self.reconcile_batch(batch).await)
    }
}

/// The schedule plans the whole account (its `Input`, when set, is read as an invocation).
#[async_trait]
impl ScheduleHandler for Reconciler {
    async fn handle(&self, input: Option<Value>) -> Result<(), HandlerError> {
        match input {
            Some(event) => self.handle_invoke(event).await.map(drop)?,
            None => self.plan().await.map(drop)?,
        }
        Ok(())
    }
}

#[async_trait]
impl InvokeHandler for Reconciler {
    async fn invoke(&self, event: Value) -> Result<Value, HandlerError> {
        Ok(self.handle_invoke(event).await?)
    }
}

#[cfg(test)]
mod tests;
