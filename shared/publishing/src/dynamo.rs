//! Workflow rows in DynamoDB, in the recordings table beside the processor's recording rows
//! (`pk` = `workflow:{session}`; the recording row is `recording:{session}`). A matched
//! workflow carries `section_id` and `slot`, so the sparse `by_lecture` index finds a
//! section's (or one day's) recordings for a publish replay.

use crate::ports::{Saved, WorkflowStore};
use crate::workflow::WorkflowRow;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use coursewire_runtime::aws::{Item, classify, query_all};
use coursewire_runtime::service::ServiceError;

/// The recordings table's index of matched workflows by lecture.
pub const LECTURE_INDEX: &str = "by_lecture";

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn key(session_id: &str) -> String {
    format!("workflow:{session_id}")
}

#[derive(Clone)]
pub struct DynamoWorkflowStore {
    client: Client,
    table: String,
}

impl DynamoWorkflowStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn parse(item: &Item) -> Result<WorkflowRow, ServiceError> {
    let data = item
        .get("row")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| ServiceError::Permanent("a workflow item without its row".into()))?;
    serde_json::from_str(data)
        .map_err(|e| ServiceError::Permanent(format!("an unreadable workflow row: {e}")))
}

#[async_trait]
impl WorkflowStore for DynamoWorkflowStore {
    async fn load(&self, session_id: &str) -> Result<Option<WorkflowRow>, ServiceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key(session_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        out.item().map(parse).transpose()
    }

    async fn save(&self, row: &mut WorkflowRow) -> Result<Saved, ServiceError> {
        let previous = row.version;
        let mut stored = row.clone();
        stored.version = previous + 1;
        let data = serde_json::to_string(&stored)
            .map_err(|e| ServiceError::Permanent(format!("a workflow row: {e}")))?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key(&row.session_id)))
            .item("version", AttributeValue::N(stored.version.to_string()))
            .item("status", s(stored.status.as_str()))
            .item("row", s(data));
        if let Some(lecture) = &stored.lecture {
            put = put
                .item("section_id", s(&lecture.section_id))
                .item("slot", s(&lecture.slot));
        }
        put = if previous == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#version = :previous")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":previous", AttributeValue::N(previous.to_string()))
        };
        match put.send().await {
            Ok(_) => {
                row.version = stored.version;
                Ok(Saved::Saved)
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(Saved::Moved)
            }
            Err(err) => Err(classify(&err)),
        }
    }

    async fn of_section(
        &self,
        section_id: &str,
        date: Option<&str>,
    ) -> Result<Vec<WorkflowRow>, ServiceError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LECTURE_INDEX)
            .expression_attribute_values(":section", s(section_id));
        let items = query_all(match date {
            Some(date) => query
                .key_condition_expression("section_id = :section AND begins_with(slot, :date)")
                .expression_attribute_values(":date", s(format!("{date}#"))),
            None => query.key_condition_expression("section_id = :section"),
        })
        .await?;
        let mut rows = items.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
        rows.sort_by(|a, b| {
            let slot = |r: &WorkflowRow| r.lecture.as_ref().map(|l| l.slot.clone());
            slot(a)
                .cmp(&slot(b))
                .then_with(|| a.session_id.cmp(&b.session_id))
        });
        Ok(rows)
    }
}
