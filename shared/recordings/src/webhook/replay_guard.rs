//! Remembers signed requests for the replay window, so the same signed request is accepted
//! once (a port: DynamoDB in production).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use coursewire_runtime::aws::classify;
use coursewire_runtime::service::ServiceError;

#[async_trait]
pub trait ReplayGuard: Send + Sync {
    /// `true` the first time `fingerprint` is seen before `expires_at`; `false` after.
    async fn first_use(
        &self,
        fingerprint: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, ServiceError>;
    /// Forgets a fingerprint (the request failed after it was recorded, so its retry must
    /// not count as a replay).
    async fn release(&self, fingerprint: &str) -> Result<(), ServiceError>;
}

/// One item per signed request: `pk` = fingerprint, `expires_at` (epoch seconds, also the
/// table's TTL attribute; expiry is checked here because TTL deletes lazily).
pub struct DynamoReplayGuard {
    client: Client,
    table: String,
}

impl DynamoReplayGuard {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl ReplayGuard for DynamoReplayGuard {
    async fn first_use(
        &self,
        fingerprint: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(fingerprint.to_string()))
            .item(
                "expires_at",
                AttributeValue::N(expires_at.timestamp().to_string()),
            )
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify(&e)),
        }
    }

    async fn release(&self, fingerprint: &str) -> Result<(), ServiceError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(fingerprint.to_string()))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }
}
