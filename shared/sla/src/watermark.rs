//! How far the monitor has got: the end of the last tick that finished, so the next tick
//! carries on from there and a missed or failed tick loses nothing.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use coursewire_runtime::aws::classify;
use coursewire_runtime::service::ServiceError;

#[async_trait]
pub trait Watermark: Send + Sync {
    async fn load(&self) -> Result<Option<DateTime<Utc>>, ServiceError>;
    /// Moves the watermark forward to `to`; false when it already stands there or later (an
    /// overlapping tick, or a host whose clock is ahead, got further). Never moves it back.
    async fn advance(&self, to: DateTime<Utc>) -> Result<bool, ServiceError>;
}

/// The watermark as one item of the incidents table (`pk` = `monitor#<name>`, `sk` =
/// `watermark`), next to the incidents the monitor opens.
pub struct DynamoWatermark {
    client: Client,
    table: String,
    pk: String,
}

impl DynamoWatermark {
    pub fn new(client: Client, table: impl Into<String>, monitor: &str) -> Self {
        Self {
            client,
            table: table.into(),
            pk: format!("monitor#{monitor}"),
        }
    }
}

/// Fixed width, so the stored strings compare in time order.
fn key(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[async_trait]
impl Watermark for DynamoWatermark {
    async fn load(&self) -> Result<Option<DateTime<Utc>>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.pk.clone()))
            .key("sk", AttributeValue::S("watermark".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let Some(text) = out
            .item
            .as_ref()
            .and_then(|item| item.get("until"))
            .and_then(|v| v.as_s().ok())
        else {
            return Ok(None);
        };
        DateTime::parse_from_rfc3339(text)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| ServiceError::Permanent(format!("the monitor's watermark {text:?}: {e}")))
    }

    async fn advance(&self, to: DateTime<Utc>) -> Result<bool, ServiceError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(self.pk.clone()))
            .key("sk", AttributeValue::S("watermark".into()))
            .update_expression("SET #until = :to")
            .condition_expression("attribute_not_exists(#until) OR #until < :to")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":to", AttributeValue::S(key(to)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(classify(&err)),
            },
        }
    }
}
