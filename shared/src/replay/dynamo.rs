//! Reads a window of the inbox through its `by_time` index: one Query per hour bucket and
//! shard (`time_bucket = <hour>#<shard>`, `time_key BETWEEN <from> AND <to>`), every page.

use super::{InboxRecord, InboxWindow, Selection, UnreadableRecord, WindowQuery};
use crate::aws::{AwsError, all_pages, classify};
use crate::inbox::TIME_SHARDS;
use crate::live_events::time::format_sortable;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// The inbox table's time index (see `template.yaml`).
pub const TIME_INDEX: &str = "by_time";

type Item = HashMap<String, AttributeValue>;

pub struct DynamoInboxWindow {
    client: Client,
    table: String,
    concurrency: usize,
}

impl DynamoInboxWindow {
    /// `concurrency` bounds the Queries in flight for one window (a window of one hour has
    /// `TIME_SHARDS` of them).
    pub fn new(client: Client, table: impl Into<String>, concurrency: usize) -> Self {
        Self {
            client,
            table: table.into(),
            concurrency: concurrency.max(1),
        }
    }

    /// Every `time_bucket` value that can hold an event of the window: each hour it touches,
    /// times every shard. Same format as `DynamoInbox::time_bucket`.
    pub fn buckets(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
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

    async fn query_bucket(
        &self,
        bucket: String,
        low: &str,
        high: &str,
        query: &WindowQuery,
    ) -> Result<Vec<Item>, AwsError> {
        let mut names = HashMap::from([
            ("#bucket".to_string(), "time_bucket".to_string()),
            ("#key".to_string(), "time_key".to_string()),
        ]);
        let mut values = HashMap::from([
            (":bucket".to_string(), AttributeValue::S(bucket)),
            (":low".to_string(), AttributeValue::S(low.to_string())),
            (":high".to_string(), AttributeValue::S(high.to_string())),
        ]);
        // Projection: skip the change event the processor stores on the record (`applied`).
        for attribute in PROJECTED {
            names.insert(format!("#{attribute}"), attribute.to_string());
        }
        let projection = PROJECTED
            .iter()
            .map(|a| format!("#{a}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut filters = Vec::new();
        for (attribute, prefix, wanted) in [
            ("event_name", "n", &query.event_names),
            ("entity_key", "k", &query.entity_keys),
        ] {
            if wanted.is_empty() {
                continue;
            }
            let placeholders: Vec<String> = wanted
                .iter()
                .enumerate()
                .map(|(i, value)| {
                    let placeholder = format!(":{prefix}{i}");
                    values.insert(placeholder.clone(), AttributeValue::S(value.clone()));
                    placeholder
                })
                .collect();
            filters.push(format!("#{attribute} IN ({})", placeholders.join(", ")));
        }
        let filter = (!filters.is_empty()).then(|| filters.join(" AND "));

        all_pages(|start| {
            let (filter, names, values) = (filter.clone(), names.clone(), values.clone());
            let projection = &projection;
            async move {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(TIME_INDEX)
                    .key_condition_expression("#bucket = :bucket AND #key BETWEEN :low AND :high")
                    .set_filter_expression(filter)
                    .projection_expression(projection)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
                Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
            }
        })
        .await
    }
}

/// What a replay needs of an inbox item.
const PROJECTED: [&str; 9] = [
    "content_hash",
    "event_name",
    "event_time",
    "entity_key",
    "format",
    "source",
    "received_at",
    "payload",
    "status",
];

#[async_trait]
impl InboxWindow for DynamoInboxWindow {
    async fn select(&self, query: &WindowQuery) -> Result<Selection, AwsError> {
        // `time_key` is `<event time>#<hash>`, so BETWEEN `<from>` AND `<to>` holds exactly
        // the events with from <= event time < to ("<to>#..." sorts after "<to>").
        let low = format_sortable(&query.from);
        let high = format_sortable(&query.to);
        let pages: Vec<Result<Vec<Item>, AwsError>> = futures::stream::iter(
            Self::buckets(query.from, query.to)
                .into_iter()
                .map(|bucket| self.query_bucket(bucket, &low, &high, query)),
        )
        .buffer_unordered(self.concurrency)
        .collect()
        .await;
        let mut selection = Selection::default();
        for page in pages {
            for item in page? {
                match record(&item) {
                    Ok(record) => selection.records.push(record),
                    Err(unreadable) => selection.unreadable.push(unreadable),
                }
            }
        }
        Ok(selection)
    }
}

/// An item back into a record; anything missing makes it unreadable (never a failed run).
fn record(item: &Item) -> Result<InboxRecord, UnreadableRecord> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let event_hash = text("content_hash")
        .cloned()
        .or_else(|| {
            text("time_key")
                .and_then(|key| key.rsplit_once('#'))
                .map(|(_, hash)| hash.to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let unreadable = |reason: String| UnreadableRecord {
        event_hash: event_hash.clone(),
        reason,
    };
    let required = |name: &'static str| {
        text(name)
            .cloned()
            .ok_or_else(|| unreadable(format!("no `{name}` attribute")))
    };
    let payload = serde_json::from_str(&required("payload")?)
        .map_err(|e| unreadable(format!("`payload` is not JSON: line {}", e.line())))?;
    Ok(InboxRecord {
        event_hash: required("content_hash")?,
        event_name: required("event_name")?,
        event_time: required("event_time")?,
        entity_key: required("entity_key")?,
        format: enumeration("format", &required("format")?).map_err(unreadable)?,
        source: enumeration("source", &required("source")?).map_err(unreadable)?,
        received_at: required("received_at")?,
        payload,
        status: required("status")?,
    })
}

/// `format` / `source` are stored as their serde names.
fn enumeration<T: DeserializeOwned>(name: &str, value: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| format!("`{name}` has an unknown value `{value}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::DynamoInbox;

    #[test]
    fn buckets_cover_every_hour_and_shard_like_the_inbox_writes_them() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let buckets =
            DynamoInboxWindow::buckets(t("2024-03-04T10:30:00Z"), t("2024-03-04T12:00:00.000001Z"));
        assert_eq!(buckets.len(), 3 * usize::from(TIME_SHARDS));
        assert_eq!(buckets[0], "2024-03-04T10#0");
        assert_eq!(buckets.last().unwrap(), "2024-03-04T12#7");
        let hash = "a5".repeat(32);
        let written = DynamoInbox::time_bucket(&t("2024-03-04T11:59:59Z"), &hash);
        assert!(buckets.contains(&written), "{written}");
        // An exclusive end on the hour does not touch the next bucket.
        let buckets =
            DynamoInboxWindow::buckets(t("2024-03-04T10:00:00Z"), t("2024-03-04T11:00:00Z"));
        assert_eq!(buckets.len(), usize::from(TIME_SHARDS));
    }

    #[test]
    fn items_turn_back_into_records_or_unreadable_hashes() {
        let s = |v: &str| AttributeValue::S(v.into());
        let mut item: Item = HashMap::from([
            ("content_hash".into(), s("abc")),
            ("event_name".into(), s("course_updated")),
            ("event_time".into(), s("2024-03-04T10:15:00.000000Z")),
            ("entity_key".into(), s("course:1")),
            ("format".into(), s("caliper")),
            ("source".into(), s("https")),
            ("received_at".into(), s("2024-03-04T10:15:01.000000Z")),
            ("payload".into(), s(r#"{"a":1}"#)),
            ("status".into(), s("applied")),
        ]);
        let r = record(&item).unwrap();
        assert_eq!(r.format, crate::live_events::Format::Caliper);
        assert_eq!(r.source, crate::inbox::Source::Https);
        assert_eq!(r.payload, serde_json::json!({"a": 1}));
        item.insert("payload".into(), s("{truncated"));
        let bad = record(&item).unwrap_err();
        assert_eq!(bad.event_hash, "abc");
        assert!(bad.reason.contains("payload"), "{}", bad.reason);
        assert!(!bad.reason.contains("truncated"), "never echo payloads");
        item.insert("payload".into(), s("{}"));
        item.insert("format".into(), s("xml"));
        assert!(record(&item).unwrap_err().reason.contains("format"));
    }
}
