//! DynamoDB inbox table: `pk` = `event#<hash>` (or `reject#<hash>`), GSI `by_time` on
//! (`time_bucket`, `time_key`) for replay windows, TTL on `expires_at`.

use super::{Admission, Inbox, Reject, STATUS_APPLIED, STATUS_PUBLISHED, STATUS_RECEIVED, Source};
use crate::aws::{AwsError, classify};
use crate::live_events::LiveEvent;
use crate::live_events::time::{format_sortable, parse_event_time};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;

/// Hour buckets are split into this many shards so that a burst of events from one hour does
/// not land on one GSI partition; replay queries every shard of a bucket.
pub const TIME_SHARDS: u8 = 8;

pub struct DynamoInbox {
    client: Client,
    table: String,
    retention: Duration,
    reject_retention: Duration,
}

impl DynamoInbox {
    pub fn new(
        client: Client,
        table: impl Into<String>,
        retention: Duration,
        reject_retention: Duration,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
            reject_retention,
        }
    }

    pub fn event_pk(content_hash: &str) -> String {
        format!("event#{content_hash}")
    }

    /// `2024-01-31T13#5`: the hour of the event and a shard from the hash.
    pub fn time_bucket(event_time: &DateTime<Utc>, content_hash: &str) -> String {
        let shard =
            u8::from_str_radix(content_hash.get(..2).unwrap_or("0"), 16).unwrap_or(0) % TIME_SHARDS;
        format!("{}#{shard}", event_time.format("%Y-%m-%dT%H"))
    }

    fn expiry(&self, from: DateTime<Utc>, keep: Duration) -> AttributeValue {
        let at = from.timestamp() + keep.as_secs() as i64;
        AttributeValue::N(at.to_string())
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

#[async_trait]
impl Inbox for DynamoInbox {
    async fn admit(
        &self,
        event: &LiveEvent,
        source: Source,
        received_at: DateTime<Utc>,
    ) -> Result<Admission, AwsError> {
        let hash = &event.content_hash;
        let event_time = format_sortable(&event.event_time);
        let payload = serde_json::to_string(&event.payload)
            .map_err(|e| AwsError::Permanent(e.to_string()))?;
        let item: HashMap<String, AttributeValue> = HashMap::from([
            ("pk".into(), s(Self::event_pk(hash))),
            ("kind".into(), s("event")),
            ("content_hash".into(), s(hash.as_str())),
            ("event_name".into(), s(event.event_name.as_str())),
            ("event_time".into(), s(event_time.as_str())),
            ("entity_key".into(), s(event.entity_key.as_str())),
            ("format".into(), s(event.format.as_str())),
            ("source".into(), s(source.as_str())),
            ("received_at".into(), s(format_sortable(&received_at))),
            ("payload".into(), s(payload)),
            ("status".into(), s(STATUS_RECEIVED)),
            (
                "time_bucket".into(),
                s(Self::time_bucket(&event.event_time, hash)),
            ),
            ("time_key".into(), s(format!("{event_time}#{hash}"))),
            (
                "expires_at".into(),
                self.expiry(received_at, self.retention),
            ),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Admission::New),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    let old = match failed.item() {
                        Some(old) => Some(old.clone()),
                        // Older DynamoDB emulators do not return the old item: ask.
                        None => self.existing(hash).await?,
                    };
                    let text = |name: &str| old.as_ref()?.get(name)?.as_s().ok().cloned();
                    Ok(match text("status").as_deref() {
                        Some(STATUS_APPLIED | STATUS_PUBLISHED) => Admission::Duplicate,
                        _ => Admission::Unfinished {
                            first_received: text("received_at").and_then(|t| parse_event_time(&t)),
                        },
                    })
                }
                _ => Err(classify(&err)),
            },
        }
    }

    async fn record_reject(&self, reject: &Reject) -> Result<(), AwsError> {
        // Keyed by the payload hash so a redelivered bad message is stored once.
        let digest = hex::encode(Sha256::digest(reject.raw.as_bytes()));
        let item = HashMap::from([
            ("pk".into(), s(format!("reject#{digest}"))),
            ("kind".into(), s("reject")),
            ("source".into(), s(reject.source.as_str())),
            ("reason_code".into(), s(reject.reason_code)),
            ("reason".into(), s(reject.reason.as_str())),
            (
                "received_at".into(),
                s(format_sortable(&reject.received_at)),
            ),
            ("payload".into(), s(reject.raw.as_str())),
            (
                "expires_at".into(),
                self.expiry(reject.received_at, self.reject_retention),
            ),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }
}

impl DynamoInbox {
    async fn existing(
        &self,
        content_hash: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(Self::event_pk(content_hash)))
            .consistent_read(true)
            .projection_expression("#status, received_at")
            .expression_attribute_names("#status", "status")
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out.item().cloned())
    }
}
