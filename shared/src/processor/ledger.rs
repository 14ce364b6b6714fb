//! The processor's storage port: the catalog row and the outbox record of a source event are
//! written in one transaction, so a change is either applied *and* recorded for publishing,
//! or not at all.

use crate::aws::{AwsError, classify};
use crate::bus::ChangeEvent;
use crate::catalog::{EntityRecord, record_from_item, record_to_item};
use crate::inbox::{DynamoInbox, STATUS_APPLIED, STATUS_PUBLISHED};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

/// The change event recorded for one source event (stored on its inbox record).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    pub event_hash: String,
    pub detail_type: String,
    /// As first derived; `published_at` and `replay` are set per publication.
    pub event: ChangeEvent,
    pub published: bool,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq)]
pub enum Commit {
    Committed,
    /// The source event was applied before (a redelivery, a retry after a crash, a replay):
    /// here is what was recorded then.
    AlreadyApplied(Box<OutboxRecord>),
    /// The catalog row changed since it was read (another writer): reload and retry.
    RowMoved,
}

#[async_trait]
pub trait Ledger: Send + Sync {
    /// The entity's row, or an empty one if it has never had an event.
    async fn load(&self, entity_key: &str) -> Result<EntityRecord, AwsError>;
    /// Writes `record` (expected to be at `previous_sequence` now) and the outbox record.
    async fn commit(
        &self,
        previous_sequence: u64,
        record: &EntityRecord,
        outbox: &OutboxRecord,
    ) -> Result<Commit, AwsError>;
    /// Marks the outbox record published.
    async fn mark_published(&self, event_hash: &str, published_at: &str) -> Result<(), AwsError>;
}

pub struct DynamoLedger {
    client: Client,
    catalog_table: String,
    inbox_table: String,
}

impl DynamoLedger {
    pub fn new(
        client: Client,
        catalog_table: impl Into<String>,
        inbox_table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            catalog_table: catalog_table.into(),
            inbox_table: inbox_table.into(),
        }
    }

    fn inbox_key(event_hash: &str) -> AttributeValue {
        AttributeValue::S(DynamoInbox::event_pk(event_hash))
    }

    /// The outbox part of an inbox record, if the event has been applied.
    async fn outbox(&self, event_hash: &str) -> Result<Option<OutboxRecord>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.inbox_table)
            .key("pk", Self::inbox_key(event_hash))
            .consistent_read(true)
            .projection_expression("#status, detail_type, change_event")
            .expression_attribute_names("#status", "status")
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
        let (Some(detail_type), Some(json)) = (text("detail_type"), text("change_event")) else {
            return Ok(None);
        };
        let event: ChangeEvent = serde_json::from_str(json).map_err(|e| {
            AwsError::Permanent(format!("outbox record of {event_hash} is unreadable: {e}"))
        })?;
        Ok(Some(OutboxRecord {
            event_hash: event_hash.to_string(),
            detail_type: detail_type.clone(),
            event,
            published: text("status").map(String::as_str) == Some(STATUS_PUBLISHED),
        }))
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn load(&self, entity_key: &str) -> Result<EntityRecord, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.catalog_table)
            .key("pk", s(entity_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out
            .item()
            .and_then(record_from_item)
            .unwrap_or_else(|| EntityRecord::empty(entity_key)))
    }

    async fn commit(
        &self,
        previous_sequence: u64,
        record: &EntityRecord,
        outbox: &OutboxRecord,
    ) -> Result<Commit, AwsError> {
        let permanent = |e: aws_sdk_dynamodb::error::BuildError| AwsError::Permanent(e.to_string());
        let row = Put::builder()
            .table_name(&self.catalog_table)
            .set_item(Some(record_to_item(record)))
            .condition_expression(if previous_sequence == 0 {
                "attribute_not_exists(pk)"
            } else {
                "#sequence = :previous"
            })
            .set_expression_attribute_names(
                (previous_sequence > 0)
                    .then(|| [("#sequence".to_string(), "sequence".to_string())].into()),
            )
            .set_expression_attribute_values((previous_sequence > 0).then(|| {
                [(
                    ":previous".to_string(),
                    AttributeValue::N(previous_sequence.to_string()),
                )]
                .into()
            }))
            .build()
            .map_err(permanent)?;
        let change_event =
            serde_json::to_string(&outbox.event).map_err(|e| AwsError::Permanent(e.to_string()))?;
        // Update, not Put: the inbox record keeps the payload and replay index ingestion wrote.
        let record_outbox = Update::builder()
            .table_name(&self.inbox_table)
            .key("pk", Self::inbox_key(&outbox.event_hash))
            .update_expression(
                "SET #status = :applied, event_id = :event_id, #sequence = :sequence, \
                 detail_type = :detail_type, change_event = :change_event, applied_at = :now",
            )
            .condition_expression("attribute_not_exists(event_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#sequence", "sequence")
            .expression_attribute_values(":applied", s(STATUS_APPLIED))
            .expression_attribute_values(":event_id", s(&outbox.event.event_id))
            .expression_attribute_values(
                ":sequence",
                AttributeValue::N(outbox.event.sequence.to_string()),
            )
            .expression_attribute_values(":detail_type", s(&outbox.detail_type))
            .expression_attribute_values(":change_event", s(change_event))
            .expression_attribute_values(":now", s(&record.updated_at))
            .build()
            .map_err(permanent)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(row).build())
            .transact_items(TransactWriteItem::builder().update(record_outbox).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Commit::Committed),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    let reasons: Vec<&str> = cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("-"))
                        .collect();
                    tracing::debug!(correlation_id = %outbox.event_hash, ?reasons, "commit cancelled");
                    // Which condition failed? The outbox record answers it: if the event was
                    // applied, that is the whole story; otherwise the row moved.
                    match self.outbox(&outbox.event_hash).await? {
                        Some(existing) => Ok(Commit::AlreadyApplied(Box::new(existing))),
                        None => Ok(Commit::RowMoved),
                    }
                }
                _ => Err(classify(&err)),
            },
        }
    }

    async fn mark_published(&self, event_hash: &str, published_at: &str) -> Result<(), AwsError> {
        self.client
            .update_item()
            .table_name(&self.inbox_table)
            .key("pk", Self::inbox_key(event_hash))
            .update_expression(
                "SET #status = :published, published_at = :at ADD publish_count :one",
            )
            .condition_expression("attribute_exists(event_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":published", s(STATUS_PUBLISHED))
            .expression_attribute_values(":at", s(published_at))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }
}
