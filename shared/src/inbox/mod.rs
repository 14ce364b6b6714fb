//! The inbox: every accepted raw event, keyed by its content hash. The conditional put is the
//! first line of deduplication; the time index lets replay select any window later.
//!
//! The inbox record is also the event's **outbox** record: the processor writes the change
//! event it derived (event id, sequence, detail) onto it in the same transaction as the
//! catalog row, and marks it published after PutEvents. One record per source event tells
//! its whole story: `received` → `applied` → `published`. [`record`] owns its format.

mod dynamo;
pub mod record;

pub use dynamo::DynamoInbox;
pub use record::{STATUS_APPLIED, STATUS_PUBLISHED, STATUS_RECEIVED, TIME_SHARDS};

use crate::aws::AwsError;
use crate::live_events::LiveEvent;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How an event reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Sqs,
    Https,
    /// Synthesized by the reconciler from Canvas's API: what live events lost.
    Reconciliation,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Sqs => "sqs",
            Source::Https => "https",
            Source::Reconciliation => "reconciliation",
        }
    }
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
    pub source: Source,
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
        event: &LiveEvent,
        source: Source,
        received_at: DateTime<Utc>,
    ) -> Result<Admission, AwsError>;
    async fn record_reject(&self, reject: &Reject) -> Result<(), AwsError>;
}
