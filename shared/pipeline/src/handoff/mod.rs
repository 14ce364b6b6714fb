//! The hand-off from ingestion to the processor (Canvas's queue is `changes.fifo`): one
//! [`QueuedEvent`] per accepted source event, grouped by entity key (per-entity order) and
//! deduplicated by content hash. (A *queued event* is the message; a *change event* is what
//! the processor publishes for it on the bus; a *change kind* says what it did.)

mod sqs;

pub use sqs::SqsEventQueue;

use crate::inbox::{Delivery, SourceEvent};
use crate::time::format_sortable;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use coursewire_runtime::service::ServiceError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the message body below; bump on incompatible change.
pub const QUEUED_EVENT_VERSION: u32 = 1;

/// The body of a `changes.fifo` message. It carries the whole event so the processor needs
/// no inbox read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedEvent {
    pub version: u32,
    /// Content hash: the event's identity and the correlation id across every function.
    pub event_hash: String,
    pub entity_key: String,
    pub event_name: String,
    pub event_time: String,
    /// The source's envelope format (Canvas: `canvas` or `caliper`).
    pub format: String,
    /// How the event reached coursewire.
    pub source: Delivery,
    pub received_at: String,
    pub payload: Value,
    /// Set when the replay tool re-sent the event (absent on the normal path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
}

impl QueuedEvent {
    /// The FIFO deduplication id: the content hash, so every copy of an event collapses into
    /// one message — except a replay's, which must get through even if the original is still
    /// inside SQS's five-minute deduplication window.
    pub fn deduplication_id(&self) -> String {
        match &self.replay {
            None => self.event_hash.clone(),
            Some(replay) => format!("{}:{}", self.event_hash, replay.request_id),
        }
    }
}

/// Marks a message the replay tool sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    pub mode: ReplayMode,
    /// Identifies the replay run (at most 60 characters of `[A-Za-z0-9_-]`).
    pub request_id: String,
}

/// How a replayed event is treated by the processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayMode {
    /// Apply and publish it only if that never happened (heals gaps, duplicates nothing).
    Heal,
    /// Also re-emit it if it was published already: same event id, flagged `replay: true`.
    Republish,
}

impl ReplayMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayMode::Heal => "heal",
            ReplayMode::Republish => "republish",
        }
    }
}

impl QueuedEvent {
    pub fn new(event: &dyn SourceEvent, delivery: &Delivery, received_at: DateTime<Utc>) -> Self {
        Self {
            version: QUEUED_EVENT_VERSION,
            event_hash: event.content_hash().to_string(),
            entity_key: event.entity_key().to_string(),
            event_name: event.event_name().to_string(),
            event_time: format_sortable(&event.event_time()),
            format: event.format().to_string(),
            source: delivery.clone(),
            received_at: format_sortable(&received_at),
            payload: event.payload().clone(),
            replay: None,
        }
    }
}

#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Sends every message; the result has one entry per message, in order, so a partial
    /// failure affects only the messages that failed.
    async fn enqueue(&self, messages: &[QueuedEvent]) -> Vec<Result<(), ServiceError>>;
}
