//! The change-event bus: the normalized events downstream systems subscribe to on the
//! coursewire EventBridge bus. Every producer publishes under its own `source`
//! ([`Producer`]); the publisher ([`EventPublisher`]) takes entries whose `detail` each
//! producer shapes itself (Canvas's: `catalog::change_event` in
//! `coursewire-live-events`).
//!
//! Subscribers match on `source` and a `detail-type` such as `Grade Changed`; they
//! deduplicate by `detail.event_id` and order by `detail.sequence` within
//! `detail.entity.key`. The JSON Schema of every detail-type lives in `events/schemas/`.

mod eventbridge;

pub use eventbridge::EventBridgePublisher;

use async_trait::async_trait;
use coursewire_runtime::service::ServiceError;

/// Who publishes on the bus: the `source` of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer(&'static str);

impl Producer {
    /// Canvas's changes (the processor).
    pub const CANVAS: Producer = Producer("coursewire.canvas");
    /// Lecture capture: recordings published, incidents opened and resolved.
    pub const CAPTURE: Producer = Producer("coursewire.capture");

    pub const fn source(self) -> &'static str {
        self.0
    }
}

/// One event for the bus, as its producer shaped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEntry {
    pub detail_type: String,
    /// The `detail` JSON.
    pub detail: String,
}

/// Puts a producer's events on the bus (its `source` is the publisher's [`Producer`]).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes every entry; one result per entry, in order. Entries that fail are retried a
    /// few times (only those); what still fails is reported so its message can be retried.
    async fn publish(&self, entries: &[BusEntry]) -> Vec<Result<(), ServiceError>>;
}
