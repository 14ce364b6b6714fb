//! `orchestrator` on `recordings.fifo`: the one pipeline's processor applies each recording
//! event to its session's row and publishes `Recording Changed` (exactly once per event, in
//! order per session); then each session whose events all went through has its publish
//! workflow advanced. A workflow that must retry fails its session's last message, so SQS
//! delivers it again (the processor recognises it as applied; the workflow picks up).

use crate::publisher::{Publisher, Trigger};
use crate::recording::{RecordingModel, RecordingRow};
use async_trait::async_trait;
use coursewire_pipeline::handoff::QueuedEvent;
use coursewire_pipeline::processor::{LedgerOf, Processor};
use coursewire_runtime::function::{BatchOutcome, HandlerError, QueueHandler, QueueMessage};
use coursewire_runtime::telemetry::{Metrics, MetricsSink};
use futures::future::join_all;
use std::collections::HashSet;
use std::sync::Arc;

pub struct Orchestrator {
    processor: Processor<RecordingModel>,
    rows: Arc<LedgerOf<RecordingModel>>,
    publisher: Arc<Publisher>,
    metrics: Arc<dyn MetricsSink>,
    function: String,
}

impl Orchestrator {
    pub fn new(
        processor: Processor<RecordingModel>,
        rows: Arc<LedgerOf<RecordingModel>>,
        publisher: Arc<Publisher>,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Self {
        Self {
            processor,
            rows,
            publisher,
            metrics,
            function: function.to_string(),
        }
    }

    pub fn publisher(&self) -> &Arc<Publisher> {
        &self.publisher
    }

    /// The recording row of a session, as the processor keeps it.
    pub async fn recording(&self, session_id: &str) -> Result<Option<RecordingRow>, HandlerError> {
        Ok(self
            .rows
            .load(&coursewire_recordings::event::entity_key(session_id))
            .await?)
    }
}

#[async_trait]
impl QueueHandler for Orchestrator {
    async fn handle(&self, batch: Vec<QueueMessage>) -> Result<BatchOutcome, HandlerError> {
        // Sessions in batch order, each with its messages' ids (the last is the one to fail
        // for a retry). Each body is read once here; the processor reads it for itself.
        let mut sessions: Vec<(String, Vec<String>)> = Vec::new();
        for message in &batch {
            let Ok(queued) = serde_json::from_str::<QueuedEvent>(&message.body) else {
                continue; // the processor reports and drops it
            };
            match sessions
                .iter_mut()
                .find(|(key, _)| *key == queued.entity_key)
            {
                Some((_, ids)) => ids.push(message.id.clone()),
                None => sessions.push((queued.entity_key, vec![message.id.clone()])),
            }
        }
        let mut outcome = self.processor.process_batch(batch).await;
        let failed: HashSet<String> = outcome.failed.iter().cloned().collect();
        let ready: Vec<(String, String)> = sessions
            .into_iter()
            .filter(|(_, ids)| !ids.iter().any(|id| failed.contains(id)))
            .filter_map(|(key, ids)| ids.last().cloned().map(|last| (key, last)))
            .collect();
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        // A batch holds at most 10 messages, so its sessions advance together.
        let results: Vec<(String, bool)> = join_all(ready.into_iter().map(|(key, last)| {
            let metrics = &metrics;
            async move {
                let ok = self.advance(&key, metrics).await;
                (last, ok)
            }
        }))
        .await;
        for (last, ok) in results {
            if !ok {
                outcome.fail(last);
            }
        }
        metrics.flush();
        Ok(outcome)
    }
}

impl Orchestrator {
    /// Advances one session's workflow; false = retry its last message.
    async fn advance(&self, entity_key: &str, metrics: &Metrics) -> bool {
        let row = match self.rows.load(entity_key).await {
            Ok(Some(row)) => row,
            // Nothing applied (every message dropped as unreadable): nothing to advance.
            Ok(None) => return true,
            Err(e) => {
                tracing::warn!(entity_key, error = %e, "recording row unreadable; retried");
                return false;
            }
        };
        let trigger = Trigger {
            verify: true,
            ..Trigger::default()
        };
        match self.publisher.advance(&row, &trigger).await {
            Ok(advanced) => {
                for step in &advanced.steps {
                    metrics.count(
                        "PublishSteps",
                        &[("Step", step.step.as_str()), ("Outcome", step.outcome)],
                        1,
                    );
                }
                tracing::info!(
                    correlation_id = %row.session_id,
                    status = advanced.status.as_str(),
                    steps = advanced.steps.len(),
                    waiting = advanced.waiting.as_deref().unwrap_or(""),
                    "publish workflow advanced"
                );
                true
            }
            Err(e) => {
                metrics.count("PublishRetries", &[], 1);
                tracing::warn!(correlation_id = %row.session_id, error = %e, "publish step will be retried");
                false
            }
        }
    }
}
