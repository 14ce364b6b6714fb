//! The inbox table's record format, owned here alone.
//!
//! One item per accepted event, keyed `event#<content hash>`. Ingestion writes it
//! (`received`); the processor records on it the change event it derived — the outbox — in
//! the same transaction as the catalog row (`applied`), then marks it `published`; replay
//! reads it back through the `by_time` index (`time_bucket` = `<hour>#<shard>`, `time_key` =
//! `<event time>#<hash>`). Payloads that could not be accepted are `reject#<digest>` items.
//! Every other module and test reads and writes these items through the names and helpers
//! below, never through literal attribute names.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Update};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use coursewire_runtime::aws::{Item, classify};
use coursewire_runtime::service::ServiceError;

/// Attribute names of inbox items.
pub mod field {
    pub const PK: &str = "pk";
    /// `event` or `reject`.
    pub const KIND: &str = "kind";
    pub const CONTENT_HASH: &str = "content_hash";
    pub const EVENT_NAME: &str = "event_name";
    pub const EVENT_TIME: &str = "event_time";
    pub const ENTITY_KEY: &str = "entity_key";
    pub const FORMAT: &str = "format";
    pub const SOURCE: &str = "source";
    pub const RECEIVED_AT: &str = "received_at";
    pub const PAYLOAD: &str = "payload";
    pub const STATUS: &str = "status";
    pub const TIME_BUCKET: &str = "time_bucket";
    pub const TIME_KEY: &str = "time_key";
    pub const EXPIRES_AT: &str = "expires_at";
    // The outbox, written by the processor.
    pub const EVENT_ID: &str = "event_id";
    pub const SEQUENCE: &str = "sequence";
    pub const DETAIL_TYPE: &str = "detail_type";
    pub const CHANGE_EVENT: &str = "change_event";
    pub const APPLIED_AT: &str = "applied_at";
    pub const PUBLISHED_AT: &str = "published_at";
    pub const PUBLISH_COUNT: &str = "publish_count";
    // Rejects.
    pub const REASON_CODE: &str = "reason_code";
    pub const REASON: &str = "reason";
}

/// `status` of an inbox record: stored by ingestion...
pub const STATUS_RECEIVED: &str = "received";
/// ...applied to the catalog, change event recorded (not yet confirmed on the bus)...
pub const STATUS_APPLIED: &str = "applied";
/// ...and published to EventBridge.
pub const STATUS_PUBLISHED: &str = "published";

/// The table's time index (see `template.yaml`).
pub const TIME_INDEX: &str = "by_time";

/// Hour buckets are split into this many shards so that a burst of events from one hour does
/// not land on one GSI partition; replay queries every shard of a bucket.
pub const TIME_SHARDS: u8 = 8;

const EVENT_PREFIX: &str = "event#";
const REJECT_PREFIX: &str = "reject#";

/// The key of an accepted event's item.
pub fn event_pk(content_hash: &str) -> String {
    format!("{EVENT_PREFIX}{content_hash}")
}

/// The key of a reject's item (`digest` of its raw payload).
pub fn reject_pk(digest: &str) -> String {
    format!("{REJECT_PREFIX}{digest}")
}

/// The item is an accepted event's.
pub fn is_event(item: &Item) -> bool {
    text(item, field::PK).is_some_and(|pk| pk.starts_with(EVENT_PREFIX))
}

/// The item is a reject's.
pub fn is_reject(item: &Item) -> bool {
    text(item, field::PK).is_some_and(|pk| pk.starts_with(REJECT_PREFIX))
}

/// A string attribute of an item.
pub fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// `2024-01-31T13#5`: the hour of the event and a shard from the hash.
pub fn time_bucket(event_time: &DateTime<Utc>, content_hash: &str) -> String {
    let shard =
        u8::from_str_radix(content_hash.get(..2).unwrap_or("0"), 16).unwrap_or(0) % TIME_SHARDS;
    format!("{}#{shard}", event_time.format("%Y-%m-%dT%H"))
}

/// `<sortable event time>#<hash>`: orders a bucket by event time.
pub fn time_key(sortable_event_time: &str, content_hash: &str) -> String {
    format!("{sortable_event_time}#{content_hash}")
}

/// The hash a `time_key` ends with.
pub fn hash_of_time_key(time_key: &str) -> Option<&str> {
    time_key.rsplit_once('#').map(|(_, hash)| hash)
}

/// Every `time_bucket` value that can hold an event of the window `[from, to)`: each hour it
/// touches, times every shard.
pub fn time_buckets(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
    let mut buckets = Vec::new();
    let Ok(mut hour) = from.duration_trunc(TimeDelta::hours(1)) else {
        return buckets;
    };
    while hour < to {
        let prefix = hour.format("%Y-%m-%dT%H");
        buckets.extend((0..TIME_SHARDS).map(|shard| format!("{prefix}#{shard}")));
        hour += TimeDelta::hours(1);
    }
    buckets
}

/// The change event the processor derived from a source event, as stored on its record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOutbox {
    pub detail_type: String,
    /// The change event's JSON.
    pub change_event: String,
    pub published: bool,
}

/// What the processor records on an event's item when it applies it.
#[derive(Debug, Clone, Copy)]
pub struct OutboxEntry<'a> {
    pub content_hash: &'a str,
    pub event_id: &'a str,
    pub sequence: u64,
    pub detail_type: &'a str,
    /// The change event's JSON.
    pub change_event: &'a str,
    pub applied_at: &'a str,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn event_key(content_hash: &str) -> AttributeValue {
    s(event_pk(content_hash))
}

/// The outbox write for a commit transaction: an update, not a put, so the item keeps the
/// payload and time index ingestion wrote. It fails if the event was applied already.
pub fn record_outbox(
    table: &str,
    entry: &OutboxEntry<'_>,
) -> Result<Update, aws_sdk_dynamodb::error::BuildError> {
    Update::builder()
        .table_name(table)
        .key(field::PK, event_key(entry.content_hash))
        .update_expression(
            "SET #status = :applied, #event_id = :event_id, #sequence = :sequence, \
             #detail_type = :detail_type, #change_event = :change_event, #applied_at = :now",
        )
        .condition_expression("attribute_not_exists(#event_id)")
        .expression_attribute_names("#status", field::STATUS)
        .expression_attribute_names("#event_id", field::EVENT_ID)
        .expression_attribute_names("#sequence", field::SEQUENCE)
        .expression_attribute_names("#detail_type", field::DETAIL_TYPE)
        .expression_attribute_names("#change_event", field::CHANGE_EVENT)
        .expression_attribute_names("#applied_at", field::APPLIED_AT)
        .expression_attribute_values(":applied", s(STATUS_APPLIED))
        .expression_attribute_values(":event_id", s(entry.event_id))
        .expression_attribute_values(":sequence", AttributeValue::N(entry.sequence.to_string()))
        .expression_attribute_values(":detail_type", s(entry.detail_type))
        .expression_attribute_values(":change_event", s(entry.change_event))
        .expression_attribute_values(":now", s(entry.applied_at))
        .build()
}

/// The outbox part of an event's item, if the event has been applied.
pub async fn read_outbox(
    client: &Client,
    table: &str,
    content_hash: &str,
) -> Result<Option<StoredOutbox>, ServiceError> {
    let out = client
        .get_item()
        .table_name(table)
        .key(field::PK, event_key(content_hash))
        .consistent_read(true)
        .projection_expression("#status, #detail_type, #change_event")
        .expression_attribute_names("#status", field::STATUS)
        .expression_attribute_names("#detail_type", field::DETAIL_TYPE)
        .expression_attribute_names("#change_event", field::CHANGE_EVENT)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let Some(item) = out.item() else {
        return Ok(None);
    };
    let (Some(detail_type), Some(change_event)) = (
        text(item, field::DETAIL_TYPE),
        text(item, field::CHANGE_EVENT),
    ) else {
        return Ok(None);
    };
    Ok(Some(StoredOutbox {
        detail_type: detail_type.to_string(),
        change_event: change_event.to_string(),
        published: text(item, field::STATUS) == Some(STATUS_PUBLISHED),
    }))
}

/// Marks an applied event published (and counts its publications).
pub async fn mark_published(
    client: &Client,
    table: &str,
    content_hash: &str,
    published_at: &str,
) -> Result<(), ServiceError> {
    client
        .update_item()
        .table_name(table)
        .key(field::PK, event_key(content_hash))
        .update_expression("SET #status = :published, #published_at = :at ADD #count :one")
        .condition_expression("attribute_exists(#event_id)")
        .expression_attribute_names("#status", field::STATUS)
        .expression_attribute_names("#published_at", field::PUBLISHED_AT)
        .expression_attribute_names("#count", field::PUBLISH_COUNT)
        .expression_attribute_names("#event_id", field::EVENT_ID)
        .expression_attribute_values(":published", s(STATUS_PUBLISHED))
        .expression_attribute_values(":at", s(published_at))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .map_err(|e| classify(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_hour_and_shard_as_events_are_written() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let buckets = time_buckets(t("2024-03-04T10:30:00Z"), t("2024-03-04T12:00:00.000001Z"));
        assert_eq!(buckets.len(), 3 * usize::from(TIME_SHARDS));
        assert_eq!(buckets[0], "2024-03-04T10#0");
        assert_eq!(buckets.last().unwrap(), "2024-03-04T12#7");
        let hash = "a5".repeat(32);
        let written = time_bucket(&t("2024-03-04T11:59:59Z"), &hash);
        assert!(buckets.contains(&written), "{written}");
        // An exclusive end on the hour does not touch the next bucket.
        let buckets = time_buckets(t("2024-03-04T10:00:00Z"), t("2024-03-04T11:00:00Z"));
        assert_eq!(buckets.len(), usize::from(TIME_SHARDS));
    }

    #[test]
    fn keys_tell_events_from_rejects() {
        let item = |pk: String| Item::from([(field::PK.to_string(), s(pk))]);
        assert!(is_event(&item(event_pk("ab"))) && !is_reject(&item(event_pk("ab"))));
        assert!(is_reject(&item(reject_pk("cd"))) && !is_event(&item(reject_pk("cd"))));
        let key = time_key("2024-03-04T10:15:00.000000Z", "ab12");
        assert_eq!(hash_of_time_key(&key), Some("ab12"));
    }
}
