//! The processor: a source's change queue → its entity rows → change events on EventBridge,
//! for any source's [`EntityModel`] (Canvas: `changes.fifo` → the catalog).
//!
//! For each message, in order within its entity's message group:
//! 1. load the entity's row (once per group and batch);
//! 2. [`derive`](EntityModel::derive) the change: next sequence number, new row, late flag;
//! 3. commit the row and the outbox record (on the event's inbox record) in one transaction;
//! 4. publish the change event (PutEvents, failed entries retried);
//! 5. mark the outbox record published.
//!
//! A crash or failure between any two steps is repaired by the SQS retry: step 3 finds the
//! outbox record and the retry re-publishes the **same** event id and sequence. A failure
//! fails the remaining messages of the same group in the batch (so per-entity order holds),
//! never other groups'.

mod ledger;
mod model;

pub use ledger::{Commit, DynamoLedger, Ledger, OutboxRecord, StoredRow, read_row};
pub use model::{ChangeDetail, Derived, EntityModel, ModelError};

use crate::bus::{BusEntry, EventPublisher};
use crate::handoff::{QueuedEvent, ReplayMode};
use crate::time::{format_sortable, parse_sortable};
use async_trait::async_trait;
use chrono::Utc;
use coursewire_runtime::function::{BatchOutcome, HandlerError, QueueHandler, QueueMessage};
use coursewire_runtime::service::ServiceError;
use coursewire_runtime::telemetry::{Metrics, MetricsSink, Unit};
use futures::future::join_all;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The stable id of the change event derived from a source event: a UUID (version 8, custom)
/// made from the content hash, so even a lost outbox record cannot mint a second id.
pub fn event_id(event_hash: &str) -> String {
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = event_hash
            .get(i * 2..i * 2 + 2)
            .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            .unwrap_or(0);
    }
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Rows and recorded changes of model `M`.
pub type LedgerOf<M> = dyn Ledger<<M as EntityModel>::Row, <M as EntityModel>::Change>;

pub struct Processor<M: EntityModel> {
    model: M,
    ledger: Arc<LedgerOf<M>>,
    publisher: Arc<dyn EventPublisher>,
    metrics: Arc<dyn MetricsSink>,
    function: String,
}

/// One change event for the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication<C> {
    pub detail_type: String,
    /// When this copy is put on the bus (also stamped on `event`).
    pub published_at: String,
    pub replay: bool,
    pub event: C,
}

impl<C: ChangeDetail> Publication<C> {
    /// Stamps a recorded change for publishing now.
    fn now(detail_type: String, mut event: C, replay: bool) -> Self {
        let published_at = format_sortable(&Utc::now());
        event.stamp(&published_at, replay);
        Self {
            detail_type,
            published_at,
            replay,
            event,
        }
    }

    /// The bus entry of this change event.
    pub fn entry(&self) -> Result<BusEntry, ServiceError> {
        Ok(BusEntry {
            detail_type: self.detail_type.clone(),
            detail: serde_json::to_string(&self.event)
                .map_err(|e| ServiceError::Permanent(e.to_string()))?,
        })
    }
}

/// One message of the batch on its way through the steps.
struct Item {
    message_id: String,
    message: QueuedEvent,
}

/// What a message needs after the commit step.
enum Next<C> {
    /// Publish this, then mark it published.
    Publish(Box<Publication<C>>),
    /// Nothing left to do (already published; a duplicate delivery or a healing replay).
    Done,
}

impl<M: EntityModel> Processor<M> {
    pub fn new(
        model: M,
        ledger: Arc<LedgerOf<M>>,
        publisher: Arc<dyn EventPublisher>,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Self {
        Self {
            model,
            ledger,
            publisher,
            metrics,
            function: function.to_string(),
        }
    }

    /// One batch of `changes.fifo`; the outcome names the messages to deliver again.
    pub async fn process_batch(&self, batch: Vec<QueueMessage>) -> BatchOutcome {
        let started = Instant::now();
        let metrics = Metrics::new(self.metrics.clone(), &self.function);

        // Parse; group by entity key keeping order.
        let mut groups: Vec<(String, Vec<Item>)> = Vec::new();
        for QueueMessage {
            id: message_id,
            body,
            ..
        } in batch
        {
            let message = match serde_json::from_str::<QueuedEvent>(&body) {
                Ok(message) => message,
                Err(e) => {
                    // Only a bug writes such a message; retrying cannot fix it and would block
                    // its group. The inbox still has the event, so replay can recover it.
                    tracing::error!(message_id, error = %e, "unreadable queued event dropped");
                    metrics.count("UnreadableMessages", &[], 1);
                    continue;
                }
            };
            let item = Item {
                message_id,
                message,
            };
            match groups
                .iter_mut()
                .find(|(key, _)| *key == item.message.entity_key)
            {
                Some((_, items)) => items.push(item),
                None => groups.push((item.message.entity_key.clone(), vec![item])),
            }
        }

        // Steps 1-3 per group (groups concurrently, messages of a group in order).
        let prepared = join_all(
            groups
                .iter()
                .map(|(key, items)| self.prepare_group(key, items, &metrics)),
        )
        .await;

        // Step 4: one publisher call for the whole batch.
        let mut publications = Vec::new();
        let mut owners = Vec::new();
        let mut failed: HashSet<String> = HashSet::new();
        for ((_, items), outcomes) in groups.iter().zip(&prepared) {
            for (item, outcome) in items.iter().zip(outcomes) {
                match outcome {
                    Some(Next::Publish(publication)) => {
                        publications.push(publication.as_ref().clone());
                        owners.push(item);
                    }
                    Some(Next::Done) => {}
                    None => {
                        failed.insert(item.message_id.clone());
                    }
                }
            }
        }
        let published = if publications.is_empty() {
            Vec::new()
        } else {
            self.publish(&publications).await
        };

        // Step 5.
        let now = Utc::now();
        let marks = join_all(owners.iter().zip(&publications).zip(&published).map(
            |((item, publication), result)| async move {
                match result {
                    Ok(()) => self
                        .ledger
                        .mark_published(&item.message.event_hash, &publication.published_at)
                        .await
                        .map(|()| true),
                    Err(e) => Err(e.clone()),
                }
            },
        ))
        .await;
        for ((item, publication), mark) in owners.iter().zip(&publications).zip(marks) {
            let dims = [("Format", item.message.format.as_str())];
            match mark {
                Ok(_) => {
                    metrics.count("ChangesPublished", &dims, 1);
                    if publication.replay {
                        metrics.count("ChangesRepublished", &[], 1);
                    }
                    if let Some(received) = parse_sortable(&item.message.received_at) {
                        let latency = (now - received).num_milliseconds().max(0) as f64;
                        metrics.record("PropagationLatency", &[], Unit::Milliseconds, latency);
                    }
                }
                Err(e) => {
                    tracing::warn!(correlation_id = %item.message.event_hash, event_id = %publication.event.event_id(), error = %e, "change event not confirmed published; the retry re-publishes the same event id");
                    metrics.count("PublishFailures", &[], 1);
                    failed.insert(item.message_id.clone());
                }
            }
        }

        // A failure fails the rest of its group in this batch.
        let mut failures = BatchOutcome::default();
        for (_, items) in &groups {
            let mut group_failed = false;
            for item in items {
                group_failed |= failed.contains(&item.message_id);
                if group_failed {
                    failures.fail(item.message_id.clone());
                }
            }
        }
        metrics.record(
            "BatchDuration",
            &[],
            Unit::Milliseconds,
            started.elapsed().as_secs_f64() * 1000.0,
        );
        metrics.flush();
        failures
    }

    /// Steps 1-3 for one group. One entry per message: `None` = failed (and so is every
    /// message after it: they are not attempted).
    async fn prepare_group(
        &self,
        entity_key: &str,
        items: &[Item],
        metrics: &Metrics,
    ) -> Vec<Option<Next<M::Change>>> {
        let mut out: Vec<Option<Next<M::Change>>> = Vec::with_capacity(items.len());
        let mut row: Option<M::Row> = None;
        for item in items {
            if out.last().is_some_and(Option::is_none) {
                out.push(None);
                continue;
            }
            match self.prepare(entity_key, item, &mut row, metrics).await {
                Ok(next) => out.push(Some(next)),
                Err(e) => {
                    tracing::warn!(correlation_id = %item.message.event_hash, entity_key, error = %e, "change not applied; will be retried");
                    metrics.count("ApplyFailures", &[], 1);
                    out.push(None);
                }
            }
        }
        out
    }

    async fn prepare(
        &self,
        entity_key: &str,
        item: &Item,
        row: &mut Option<M::Row>,
        metrics: &Metrics,
    ) -> Result<Next<M::Change>, ServiceError> {
        let message = &item.message;
        let mode = message.replay.as_ref().map(|r| r.mode);
        let republish = mode == Some(ReplayMode::Republish);
        // A moved row means another invocation advanced the entity between our read and write
        // (an SQS redelivery overlapping a slow batch): reload and re-apply, a few times.
        let mut backoff = Duration::from_millis(25);
        for attempt in 1..=COMMIT_ATTEMPTS {
            let current = match row.take() {
                Some(current) => current,
                None => match self.ledger.load(entity_key).await? {
                    Some(stored) => stored,
                    None => self.model.empty(entity_key),
                },
            };
            let derived = match self.model.derive(
                &current,
                message,
                event_id(&message.event_hash),
                republish,
            ) {
                Ok(derived) => derived,
                Err(e) => {
                    // Like an unreadable message: retrying cannot fix it and would block the
                    // group; the inbox keeps the event for a replay after the fix.
                    tracing::error!(correlation_id = %message.event_hash, entity_key, error = %e, "queued event the model cannot read dropped");
                    metrics.count("UnreadableMessages", &[], 1);
                    return Ok(Next::Done);
                }
            };
            let outbox = OutboxRecord {
                event_hash: message.event_hash.clone(),
                detail_type: derived.detail_type,
                event: derived.change,
                published: false,
            };
            let committed = match self
                .ledger
                .commit(self.model.sequence(&current), &derived.row, &outbox)
                .await
            {
                Ok(committed) => committed,
                // Throttling or a 5xx the SDK's own retries did not absorb: retrying here
                // beats waiting out the queue's visibility timeout with the group blocked.
                Err(e) if e.is_transient() && attempt < COMMIT_ATTEMPTS => {
                    metrics.count("CommitRetries", &[], 1);
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match committed {
                Commit::Committed => {
                    let event = outbox.event;
                    metrics.count("ChangesApplied", &[("EntityType", &derived.entity_type)], 1);
                    if event.late() {
                        metrics.count("LateEvents", &[], 1);
                    }
                    tracing::info!(
                        correlation_id = %message.event_hash,
                        event_id = %event.event_id(),
                        entity_key,
                        sequence = event.sequence(),
                        late = event.late(),
                        "change applied"
                    );
                    *row = Some(derived.row);
                    return Ok(Next::Publish(Box::new(Publication::now(
                        outbox.detail_type,
                        event,
                        republish,
                    ))));
                }
                Commit::AlreadyApplied(existing) => {
                    // The row we hold may be stale relative to this old event; reload next time.
                    *row = None;
                    if existing.published && !republish {
                        let reason = if mode.is_some() {
                            "ReplaySkipped"
                        } else {
                            "DuplicatesSkipped"
                        };
                        metrics.count(reason, &[], 1);
                        return Ok(Next::Done);
                    }
                    metrics.count("ChangesRecovered", &[], 1);
                    return Ok(Next::Publish(Box::new(Publication::now(
                        existing.detail_type,
                        existing.event,
                        republish,
                    ))));
                }
                Commit::RowMoved => {
                    metrics.count("CommitConflicts", &[], 1);
                    *row = None;
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
        Err(ServiceError::Transient(format!(
            "the row of {entity_key} kept changing under {COMMIT_ATTEMPTS} attempts"
        )))
    }
}

#[async_trait]
impl<M: EntityModel> QueueHandler for Processor<M> {
    async fn handle(&self, batch: Vec<QueueMessage>) -> Result<BatchOutcome, HandlerError> {
        Ok(self.process_batch(batch).await)
    }
}

impl<M: EntityModel> Processor<M> {
    /// Puts the batch's change events on the bus; one result per publication.
    async fn publish(
        &self,
        publications: &[Publication<M::Change>],
    ) -> Vec<Result<(), ServiceError>> {
        // Serialised once; an event that cannot be is failed without holding up the rest.
        let mut ready: Vec<BusEntry> = Vec::with_capacity(publications.len());
        let mut unsendable: Vec<Option<ServiceError>> = Vec::with_capacity(publications.len());
        for publication in publications {
            match publication.entry() {
                Ok(entry) => {
                    ready.push(entry);
                    unsendable.push(None);
                }
                Err(e) => unsendable.push(Some(e)),
            }
        }
        let mut sent = self.publisher.publish(&ready).await.into_iter();
        unsendable
            .into_iter()
            .map(|error| match error {
                None => sent
                    .next()
                    .unwrap_or_else(|| Err(ServiceError::Transient("no publish result".into()))),
                Some(e) => Err(e),
            })
            .collect()
    }
}

/// Attempts at committing one message before it is left to the SQS retry.
pub const COMMIT_ATTEMPTS: u32 = 5;
