//! The inbox on DynamoDB (the item format is [`super::record`]'s): a conditional put per
//! event, TTL on `expires_at` for cleanup.

use super::record::{self, STATUS_APPLIED, STATUS_PUBLISHED, STATUS_RECEIVED, field};
use super::{Admission, Delivery, Inbox, Reject, SourceEvent};
use crate::time::{format_sortable, parse_sortable};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use coursewire_runtime::aws::classify;
use coursewire_runtime::service::ServiceError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;

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
        event: &dyn SourceEvent,
        delivery: &Delivery,
        received_at: DateTime<Utc>,
    ) -> Result<Admission, ServiceError> {
        let hash = event.content_hash();
        let event_time = format_sortable(&event.event_time());
        let payload = serde_json::to_string(event.payload())
            .map_err(|e| ServiceError::Permanent(e.to_string()))?;
        let item: HashMap<String, AttributeValue> = HashMap::from([
            (field::PK.into(), s(record::event_pk(hash))),
            (field::KIND.into(), s("event")),
            (field::CONTENT_HASH.into(), s(hash)),
            (field::EVENT_NAME.into(), s(event.event_name())),
            (field::EVENT_TIME.into(), s(event_time.as_str())),
            (field::ENTITY_KEY.into(), s(event.entity_key())),
            (field::FORMAT.into(), s(event.format())),
            (field::SOURCE.into(), s(delivery.as_str())),
            (field::RECEIVED_AT.into(), s(format_sortable(&received_at))),
            (field::PAYLOAD.into(), s(payload)),
            (field::STATUS.into(), s(STATUS_RECEIVED)),
            (
                field::TIME_BUCKET.into(),
                s(record::time_bucket(&event.event_time(), hash)),
            ),
            (
                field::TIME_KEY.into(),
                s(record::time_key(&event_time, hash)),
            ),
            (
                field::EXPIRES_AT.into(),
                self.expiry(received_at, self.retention),
            ),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", field::PK)
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
                    let text = |name: &str| record::text(old.as_ref()?, name);
                    Ok(match text(field::STATUS) {
                        Some(STATUS_APPLIED | STATUS_PUBLISHED) => Admission::Duplicate,
                        _ => Admission::Unfinished {
                            first_received: text(field::RECEIVED_AT).and_then(parse_sortable),
                        },
                    })
                }
                _ => Err(classify(&err)),
            },
        }
    }

    async fn record_reject(&self, reject: &Reject) -> Result<(), ServiceError> {
        // Keyed by the payload hash so a redelivered bad message is stored once.
        let digest = hex::encode(Sha256::digest(reject.raw.as_bytes()));
        let item = HashMap::from([
            (field::PK.into(), s(record::reject_pk(&digest))),
            (field::KIND.into(), s("reject")),
            (field::SOURCE.into(), s(reject.delivery.as_str())),
            (field::REASON_CODE.into(), s(reject.reason_code)),
            (field::REASON.into(), s(reject.reason.as_str())),
            (
                field::RECEIVED_AT.into(),
                s(format_sortable(&reject.received_at)),
            ),
            (field::PAYLOAD.into(), s(reject.raw.as_str())),
            (
                field::EXPIRES_AT.into(),
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
    ) -> Result<Option<HashMap<String, AttributeValue>>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(field::PK, s(record::event_pk(content_hash)))
            .consistent_read(true)
            .projection_expression("#status, #received_at")
            .expression_attribute_names("#status", field::STATUS)
            .expression_attribute_names("#received_at", field::RECEIVED_AT)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out.item().cloned())
    }
}
