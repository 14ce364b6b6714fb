//! The audit trail in DynamoDB: one partition per subject (its [`Subject::key`]), one item
//! per record (`sk` = `rec#<id>`), put only if absent, so a retry never overwrites or
//! duplicates. A subject's timeline is one Query, sorted by time here (a lecture holds
//! tens of records, not thousands).

use crate::model::{AuditRecord, Subject};
use crate::ports::{Appended, AuditError, AuditTrail};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::SecondsFormat;
use coursewire_runtime::aws::{classify, query_all};
use coursewire_runtime::service::ServiceError;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

#[derive(Clone)]
pub struct DynamoAuditTrail {
    client: Client,
    table: String,
}

impl DynamoAuditTrail {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl AuditTrail for DynamoAuditTrail {
    async fn append(&self, record: &AuditRecord) -> Result<Appended, AuditError> {
        let data = serde_json::to_string(record)
            .map_err(|e| ServiceError::Permanent(format!("an audit record: {e}")))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(record.subject.key()))
            .item("sk", s(format!("rec#{}", record.id)))
            .item(
                "at",
                s(record.at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            )
            .item("action", s(record.action.name()))
            .item("data", s(data))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Appended::New),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Appended::AlreadyThere)
            }
            Err(err) => Err(classify(&err).into()),
        }
    }

    async fn timeline(&self, subject: &Subject) -> Result<Vec<AuditRecord>, AuditError> {
        let pk = subject.key();
        let items = query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.clone())),
        )
        .await?;
        let mut records = items
            .iter()
            .map(|item| {
                let data = item
                    .get("data")
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| AuditError::Corrupt(format!("a record of {pk} without data")))?;
                serde_json::from_str::<AuditRecord>(data)
                    .map_err(|e| AuditError::Corrupt(format!("a record of {pk}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
        Ok(records)
    }
}
