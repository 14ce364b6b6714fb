//! The inbox: every accepted raw event, keyed by its content hash. The conditional put is the
//! first line of deduplication; the time index lets replay select any window later.
//!
//! The inbox record is also the event's **outbox** record: the processor writes the change
//! event it derived (event id, sequence, detail) onto it in the same transaction as the
//! catalog row, and marks it published after PutEvents. One record per source event tells
//! its whole story: `received` → `applied` → `published`. [`record`] owns its format;
//! [`canonical`] is how a source computes the content hash that keys it.

pub mod canonical;
mod dynamo;
pub mod record;

pub use dynamo::DynamoInbox;
pub use record::{STATUS_APPLIED, STATUS_PUBLISHED, STATUS_RECEIVED, TIME_SHARDS};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use coursewire_runtime::service::ServiceError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;

/// How an event reached coursewire: its delivery channel, named by the source that owns it
/// (Canvas's: `live_events::delivery`). Stored and published as its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Delivery(Cow<'static, str>);

impl Delivery {
    pub const fn named(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Delivery {
    fn from(name: String) -> Self {
        Self(Cow::Owned(name))
    }
}

/// An event as the pipeline needs it, whatever its source: identity, ordering key, time and
/// body. Implemented by each source's parsed event (Canvas: `LiveEvent`).
pub trait SourceEvent: Send + Sync {
    /// Hex SHA-256 of the event's canonical form: its identity (the inbox key).
    fn content_hash(&self) -> &str;
    /// `<type>:<id>` of the entity it is about: the unit of ordering.
    fn entity_key(&self) -> &str;
    fn event_name(&self) -> &str;
    /// When it happened at the source: what replay windows select by.
    fn event_time(&self) -> DateTime<Utc>;
    /// The source's envelope format (Canvas: `canvas` or `caliper`).
    fn format(&self) -> &str;
    fn payload(&self) -> &Value;
}

/// The result of offering an event to the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// First time seen: store done, enqueue next.
    New,
    /// Seen before and already applied by the processor: drop.
    Duplicate,
    /// Seen before, not applied yet: either the first copy is on `changes.fifo` right now, or
    /// an earlier attempt stopped between its put and its send (a crash or a failed send).
    /// Either way the event is enqueued again — `changes.fifo` deduplicates by content hash and
    /// the processor by the outbox record — and `first_received` tells the two apart for
    /// metrics.
    Unfinished {
        first_received: Option<DateTime<Utc>>,
    },
}

/// A payload that could not be accepted, kept for operators (with a short retention).
#[derive(Debug, Clone)]
pub struct Reject {
    pub delivery: Delivery,
    pub reason_code: &'static str,
    pub reason: String,
    pub received_at: DateTime<Utc>,
    /// The raw payload, truncated to a bounded size.
    pub raw: String,
}

#[async_trait]
pub trait Inbox: Send + Sync {
    async fn admit(
        &self,
        event: &dyn SourceEvent,
        delivery: &Delivery,
        received_at: DateTime<Utc>,
    ) -> Result<Admission, ServiceError>;
    async fn record_reject(&self, reject: &Reject) -> Result<(), ServiceError>;
}
