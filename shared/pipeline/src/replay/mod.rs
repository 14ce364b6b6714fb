//! Replay: re-send a window of inbox events to `changes.fifo` so the processor applies and
//! publishes whatever it missed (heal), or re-emits everything (republish).
//!
//! The window is read through the inbox's `by_time` index one hour bucket at a time, in
//! order, and each hour is sorted by (event time, content hash) before it is sent, so every
//! entity's events reach its FIFO message group in time order. Memory stays bounded by a few
//! hours of events however long the window is.
//!
//! Replay never duplicates effects: each message carries [`Replay`] with the request id, and
//! the processor decides per event from its inbox record (published → skipped in heal mode,
//! re-emitted with the same event id in republish mode). Reusing a request id within SQS's
//! five-minute deduplication window makes a retried run send nothing twice.

mod config;
mod dynamo;
mod request;
mod run;
#[cfg(test)]
mod tests;

pub use config::ReplayConfig;
pub use coursewire_runtime::config::ConfigError;
pub use dynamo::DynamoInboxWindow;
pub use request::{MAX_FILTER_VALUES, MAX_WINDOW_DAYS, ReplayPlan, ReplayRequest};
pub use run::{ReplaySettings, Replayer};

use crate::handoff::{QUEUED_EVENT_VERSION, QueuedEvent, Replay, ReplayMode};
use crate::inbox::{Delivery, STATUS_PUBLISHED};
use crate::time::format_sortable;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use coursewire_runtime::service::ServiceError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Why a replay request was refused. Nothing has been read or sent when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "`{field}` is not a time: `{value}` (use RFC 3339 such as 2024-03-04T10:00:00Z, or a \
         date such as 2024-03-04 for 00:00 UTC)"
    )]
    InvalidTime { field: &'static str, value: String },
    #[error("`to` ({to}) must be later than `from` ({from}); `to` defaults to now")]
    EmptyWindow { from: String, to: String },
    #[error(
        "the window is {days} days long; one replay covers at most {max} days, split it into \
         several"
    )]
    WindowTooLong { days: i64, max: i64 },
    #[error("request_id `{0}` must be 1-60 characters of A-Z, a-z, 0-9, `_` and `-`")]
    InvalidRequestId(String),
    #[error("event name `{0}` is not a Canvas event name (1-64 of a-z, 0-9, `_` and `.`)")]
    InvalidEventName(String),
    #[error("entity key `{0}` is not an entity key such as `course:21070000000000042`")]
    InvalidEntityKey(String),
    #[error("{count} values for `{field}`; at most {max} per replay")]
    TooManyFilterValues {
        field: &'static str,
        count: usize,
        max: usize,
    },
}

/// One slice of the inbox to read: events with `from <= event_time < to` whose name and
/// entity key pass the filters (an empty filter passes everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub event_names: BTreeSet<String>,
    pub entity_keys: BTreeSet<String>,
}

impl WindowQuery {
    /// Whether a record belongs to this query (adapters may over-select; the replayer checks).
    pub fn matches(&self, record: &InboxRecord) -> bool {
        let time = record.event_time.as_str();
        time >= format_sortable(&self.from).as_str()
            && time < format_sortable(&self.to).as_str()
            && (self.event_names.is_empty() || self.event_names.contains(&record.event_name))
            && (self.entity_keys.is_empty() || self.entity_keys.contains(&record.entity_key))
    }
}

/// An accepted event as the inbox holds it: enough to rebuild its `changes.fifo` message.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxRecord {
    pub event_hash: String,
    pub event_name: String,
    /// Sortable RFC 3339 with microseconds (see `format_sortable`).
    pub event_time: String,
    pub entity_key: String,
    /// The source's envelope format.
    pub format: String,
    pub source: Delivery,
    pub received_at: String,
    pub payload: Value,
    /// `received`, `applied` or `published` (`inbox::STATUS_*`); kept as text so a status
    /// added later is counted rather than refused.
    pub status: String,
}

impl InboxRecord {
    pub fn is_published(&self) -> bool {
        self.status == STATUS_PUBLISHED
    }

    /// The message ingestion sent for this event, marked as replayed.
    pub fn to_message(&self, replay: Replay) -> QueuedEvent {
        QueuedEvent {
            version: QUEUED_EVENT_VERSION,
            event_hash: self.event_hash.clone(),
            entity_key: self.entity_key.clone(),
            event_name: self.event_name.clone(),
            event_time: self.event_time.clone(),
            format: self.format.clone(),
            source: self.source.clone(),
            received_at: self.received_at.clone(),
            payload: self.payload.clone(),
            replay: Some(replay),
        }
    }
}

/// An inbox item in the window that cannot be turned back into a message (missing
/// attribute, unparsable payload). Identified by hash only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableRecord {
    pub event_hash: String,
    pub reason: String,
}

/// What a window read found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub records: Vec<InboxRecord>,
    pub unreadable: Vec<UnreadableRecord>,
}

/// Port: selects inbox records in a time window.
#[async_trait]
pub trait InboxWindow: Send + Sync {
    async fn select(&self, query: &WindowQuery) -> Result<Selection, ServiceError>;
}

/// A snapshot of a running replay, reported after every hour read and every chunk sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayProgress {
    pub hours_done: u64,
    pub hours_total: u64,
    /// Records in the window that pass the filters, so far.
    pub selected: u64,
    /// Of those, the ones to send (all but `already_published` in heal mode).
    pub to_send: u64,
    pub enqueued: u64,
    pub failed: u64,
}

/// Counts for one event name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventNameCounts {
    pub selected: u64,
    pub to_send: u64,
}

/// An event that was not enqueued. Hash and name only: payloads hold student data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedSend {
    pub event_hash: String,
    pub event_name: String,
    pub error: String,
}

/// The run stopped early because the inbox could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incomplete {
    pub reason: String,
    /// Start of the first hour not replayed: run again from here to finish.
    pub resume_from: String,
}

/// At most this many failures and unreadable records are listed (the counts are complete);
/// keeps the Lambda response far below its 6 MB limit.
pub const MAX_LISTED: usize = 1000;

/// What a replay did (or, for a dry run, would do). The Lambda's JSON output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayReport {
    pub request_id: String,
    pub mode: ReplayMode,
    pub dry_run: bool,
    pub from: String,
    pub to: String,
    pub event_names: Vec<String>,
    pub entity_keys: Vec<String>,
    pub hours_total: u64,
    pub hours_done: u64,
    /// Records in the window that pass the filters.
    pub selected: u64,
    /// `selected` by inbox status.
    pub by_status: BTreeMap<String, u64>,
    pub by_event_name: BTreeMap<String, EventNameCounts>,
    /// Heal mode: published already, so not sent.
    pub already_published: u64,
    /// What was (dry run: would be) sent.
    pub to_send: u64,
    pub enqueued: u64,
    /// Send failures, including events held back because an earlier event of the same
    /// entity failed (sending them would have broken the entity's order).
    pub failed: u64,
    pub failures: Vec<FailedSend>,
    pub unreadable_count: u64,
    pub unreadable: Vec<UnreadableRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<Incomplete>,
    pub duration_ms: u64,
}

impl ReplayReport {
    /// Everything selected was sent (or, for a dry run, could be read).
    pub fn is_complete(&self) -> bool {
        self.failed == 0 && self.unreadable_count == 0 && self.incomplete.is_none()
    }
}
