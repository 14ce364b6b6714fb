//! Reads a window of the inbox through its `by_time` index: one Query per hour bucket and
//! shard (`time_bucket = <hour>#<shard>`, `time_key BETWEEN <from> AND <to>`), every page.
//! The item format is `inbox::record`'s.

use super::{InboxRecord, InboxWindow, Selection, UnreadableRecord, WindowQuery};
use crate::inbox::Delivery;
use crate::inbox::record::{self, TIME_INDEX, field};
use crate::time::format_sortable;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use coursewire_runtime::aws::{Item, all_pages, classify};
use coursewire_runtime::service::ServiceError;
use futures::StreamExt;

use std::collections::HashMap;

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

    async fn query_bucket(
        &self,
        bucket: String,
        low: &str,
        high: &str,
        query: &WindowQuery,
    ) -> Result<Vec<Item>, ServiceError> {
        let mut names = HashMap::from([
            ("#bucket".to_string(), field::TIME_BUCKET.to_string()),
            ("#key".to_string(), field::TIME_KEY.to_string()),
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
            (field::EVENT_NAME, "n", &query.event_names),
            (field::ENTITY_KEY, "k", &query.entity_keys),
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
    field::CONTENT_HASH,
    field::EVENT_NAME,
    field::EVENT_TIME,
    field::ENTITY_KEY,
    field::FORMAT,
    field::SOURCE,
    field::RECEIVED_AT,
    field::PAYLOAD,
    field::STATUS,
];

#[async_trait]
impl InboxWindow for DynamoInboxWindow {
    async fn select(&self, query: &WindowQuery) -> Result<Selection, ServiceError> {
        // `time_key` is `<event time>#<hash>`, so BETWEEN `<from>` AND `<to>` holds exactly
        // the events with from <= event time < to ("<to>#..." sorts after "<to>").
        let low = format_sortable(&query.from);
        let high = format_sortable(&query.to);
        let pages: Vec<Result<Vec<Item>, ServiceError>> = futures::stream::iter(
            record::time_buckets(query.from, query.to)
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
    let text = |name: &str| record::text(item, name);
    let event_hash = text(field::CONTENT_HASH)
        .or_else(|| text(field::TIME_KEY).and_then(record::hash_of_time_key))
        .unwrap_or("unknown")
        .to_string();
    let unreadable = |reason: String| UnreadableRecord {
        event_hash: event_hash.clone(),
        reason,
    };
    let required = |name: &'static str| {
        text(name)
            .map(str::to_string)
            .ok_or_else(|| unreadable(format!("no `{name}` attribute")))
    };
    let payload = serde_json::from_str(&required(field::PAYLOAD)?)
        .map_err(|e| unreadable(format!("`payload` is not JSON: line {}", e.line())))?;
    Ok(InboxRecord {
        event_hash: required(field::CONTENT_HASH)?,
        event_name: required(field::EVENT_NAME)?,
        event_time: required(field::EVENT_TIME)?,
        entity_key: required(field::ENTITY_KEY)?,
        format: required(field::FORMAT)?,
        source: Delivery::from(required(field::SOURCE)?),
        received_at: required(field::RECEIVED_AT)?,
        payload,
        status: required(field::STATUS)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_turn_back_into_records_or_unreadable_hashes() {
        let s = |v: &str| AttributeValue::S(v.into());
        let mut item: Item = HashMap::from([
            (field::CONTENT_HASH.into(), s("abc")),
            (field::EVENT_NAME.into(), s("course_updated")),
            (field::EVENT_TIME.into(), s("2024-03-04T10:15:00.000000Z")),
            (field::ENTITY_KEY.into(), s("course:1")),
            (field::FORMAT.into(), s("caliper")),
            (field::SOURCE.into(), s("https")),
            (field::RECEIVED_AT.into(), s("2024-03-04T10:15:01.000000Z")),
            (field::PAYLOAD.into(), s(r#"{"a":1}"#)),
            (field::STATUS.into(), s("applied")),
        ]);
        let r = record(&item).unwrap();
        assert_eq!(r.format, "caliper");
        assert_eq!(r.source, Delivery::named("https"));
        assert_eq!(r.payload, serde_json::json!({"a": 1}));
        item.insert(field::PAYLOAD.into(), s("{truncated"));
        let bad = record(&item).unwrap_err();
        assert_eq!(bad.event_hash, "abc");
        assert!(bad.reason.contains("payload"), "{}", bad.reason);
        assert!(!bad.reason.contains("truncated"), "never echo payloads");
        // A format the source's model cannot read is the processor's to drop (it counts it).
        item.insert(field::PAYLOAD.into(), s("{}"));
        item.remove(field::FORMAT);
        assert!(record(&item).unwrap_err().reason.contains("format"));
    }
}
