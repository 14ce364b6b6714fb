//! The inbox: every accepted raw event, keyed by its content hash. The conditional put is the
//! first line of deduplication; the time index lets replay select any window later.

mod dynamo;

pub use dynamo::DynamoInbox;

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
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Sqs => "sqs",
            Source::Https => "https",
        }
    }
}

/// The result of offering an event to the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// First time seen: store done, enqueue next.
    New,
    /// Seen before and already handed to `changes.fifo`: drop.
    Duplicate,
    /// Seen before, but not marked enqueued: either a concurrent delivery of the same event
    /// is between its put and its send right now, or an earlier attempt stopped there (a
    /// crash or a failed send). Either way the event is enqueued again — `changes.fifo`
    /// deduplicates by content hash — and `first_received` tells the two apart for metrics.
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
    async fn mark_enqueued(&self, content_hash: &str) -> Result<(), AwsError>;
    async fn record_reject(&self, reject: &Reject) -> Result<(), AwsError>;
}
