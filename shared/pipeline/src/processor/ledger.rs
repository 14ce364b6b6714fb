//! The processor's storage port: the entity's row and the outbox record of a source event
//! are written in one transaction, so a change is either applied *and* recorded for
//! publishing, or not at all.

use super::ChangeDetail;
use crate::inbox::record::{self, OutboxEntry};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use coursewire_runtime::aws::{Item, classify};
use coursewire_runtime::service::ServiceError;
use std::marker::PhantomData;

/// The change event recorded for one source event (stored on its inbox record).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord<C> {
    pub event_hash: String,
    pub detail_type: String,
    /// As first derived; `published_at` and `replay` are set per publication.
    pub event: C,
    pub published: bool,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq)]
pub enum Commit<C> {
    Committed,
    /// The source event was applied before (a redelivery, a retry after a crash, a replay):
    /// here is what was recorded then.
    AlreadyApplied(Box<OutboxRecord<C>>),
    /// The entity's row changed since it was read (another writer): reload and retry.
    RowMoved,
}

/// Rows (`R`) and recorded change events (`C`) of one entity model.
#[async_trait]
pub trait Ledger<R, C>: Send + Sync {
    /// The entity's row, `None` if it has never had an event.
    async fn load(&self, entity_key: &str) -> Result<Option<R>, ServiceError>;
    /// Writes `row` (expected to be at `previous_sequence` now) and the outbox record.
    async fn commit(
        &self,
        previous_sequence: u64,
        row: &R,
        outbox: &OutboxRecord<C>,
    ) -> Result<Commit<C>, ServiceError>;
    /// Marks the outbox record published.
    async fn mark_published(
        &self,
        event_hash: &str,
        published_at: &str,
    ) -> Result<(), ServiceError>;
}

/// How an entity model's row is stored in its DynamoDB table (`pk` = entity key, a numeric
/// `sequence` attribute the commit's condition checks).
pub trait StoredRow: Sized + Send + Sync {
    /// When the row was written (the outbox record's `applied_at`).
    fn updated_at(&self) -> &str;
    fn to_item(&self) -> Item;
    fn from_item(item: &Item) -> Option<Self>;
}

/// One entity's row, read consistently (`None` if it has never had an event): what the
/// ledger loads, and what readers of a model's table (the catalog's) get.
pub async fn read_row<R: StoredRow>(
    client: &Client,
    table: &str,
    entity_key: &str,
) -> Result<Option<R>, ServiceError> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", s(entity_key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    Ok(out.item().and_then(R::from_item))
}

/// The ledger on DynamoDB: the model's table for rows, the inbox for outbox records.
pub struct DynamoLedger<R> {
    client: Client,
    rows_table: String,
    inbox_table: String,
    rows: PhantomData<fn() -> R>,
}

impl<R> DynamoLedger<R> {
    pub fn new(
        client: Client,
        rows_table: impl Into<String>,
        inbox_table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            rows_table: rows_table.into(),
            inbox_table: inbox_table.into(),
            rows: PhantomData,
        }
    }

    /// The outbox part of an inbox record, if the event has been applied.
    async fn outbox<C: ChangeDetail>(
        &self,
        event_hash: &str,
    ) -> Result<Option<OutboxRecord<C>>, ServiceError> {
        let Some(stored) = record::read_outbox(&self.client, &self.inbox_table, event_hash).await?
        else {
            return Ok(None);
        };
        let event: C = serde_json::from_str(&stored.change_event).map_err(|e| {
            ServiceError::Permanent(format!("outbox record of {event_hash} is unreadable: {e}"))
        })?;
        Ok(Some(OutboxRecord {
            event_hash: event_hash.to_string(),
            detail_type: stored.detail_type,
            event,
            published: stored.published,
        }))
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

#[async_trait]
impl<R: StoredRow, C: ChangeDetail> Ledger<R, C> for DynamoLedger<R> {
    async fn load(&self, entity_key: &str) -> Result<Option<R>, ServiceError> {
        read_row(&self.client, &self.rows_table, entity_key).await
    }

    async fn commit(
        &self,
        previous_sequence: u64,
        row: &R,
        outbox: &OutboxRecord<C>,
    ) -> Result<Commit<C>, ServiceError> {
        let permanent =
            |e: aws_sdk_dynamodb::error::BuildError| ServiceError::Permanent(e.to_string());
        let put_row = Put::builder()
            .table_name(&self.rows_table)
            .set_item(Some(row.to_item()))
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
        let change_event = serde_json::to_string(&outbox.event)
            .map_err(|e| ServiceError::Permanent(e.to_string()))?;
        let record_outbox = record::record_outbox(
            &self.inbox_table,
            &OutboxEntry {
                content_hash: &outbox.event_hash,
                event_id: outbox.event.event_id(),
                sequence: outbox.event.sequence(),
                detail_type: &outbox.detail_type,
                change_event: &change_event,
                applied_at: row.updated_at(),
            },
        )
        .map_err(permanent)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_row).build())
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

    async fn mark_published(
        &self,
        event_hash: &str,
        published_at: &str,
    ) -> Result<(), ServiceError> {
        record::mark_published(&self.client, &self.inbox_table, event_hash, published_at).await
    }
}
