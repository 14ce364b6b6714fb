//! DynamoDB catalog table: `pk` = entity key, GSI `by_parent` on (`parent`, `pk`).
//! The processor writes rows inside its commit transaction; this adapter reads them.

use super::EntityRecord;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use coursewire_pipeline::processor::{StoredRow, read_row};
use coursewire_runtime::aws::{Item, all_pages, classify, query_all};
use coursewire_runtime::service::ServiceError;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// GSI of the catalog table keyed by the parent entity.
pub const CATALOG_PARENT_INDEX: &str = "by_parent";

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// The catalog table's row format; the processor's ledger writes rows in it, this adapter
/// reads them.
impl StoredRow for EntityRecord {
    fn updated_at(&self) -> &str {
        &self.updated_at
    }

    /// State as a JSON string: schemaless, read whole.
    fn to_item(&self) -> Item {
        let mut item = HashMap::from([
            ("pk".to_string(), s(&self.key)),
            ("entity_type".to_string(), s(&self.entity_type)),
            ("entity_id".to_string(), s(&self.entity_id)),
            (
                "sequence".to_string(),
                AttributeValue::N(self.sequence.to_string()),
            ),
            ("event_time".to_string(), s(&self.event_time)),
            ("event_hash".to_string(), s(&self.event_hash)),
            ("deleted".to_string(), AttributeValue::Bool(self.deleted)),
            ("updated_at".to_string(), s(&self.updated_at)),
        ]);
        if let Some(state) = &self.state {
            item.insert("state".into(), s(Value::Object(state.clone()).to_string()));
        }
        if !self.field_times.is_empty() {
            item.insert(
                "field_times".into(),
                s(Value::Object(self.field_times.clone()).to_string()),
            );
        }
        if let Some(parent) = &self.parent {
            item.insert("parent".into(), s(parent));
        }
        item
    }

    /// `None` when the item is not a catalog row.
    fn from_item(item: &Item) -> Option<Self> {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let key = text("pk")?;
        let mut record = EntityRecord::empty(&key);
        record.sequence = item.get("sequence")?.as_n().ok()?.parse().ok()?;
        record.event_time = text("event_time").unwrap_or_default();
        record.event_hash = text("event_hash").unwrap_or_default();
        record.deleted = item
            .get("deleted")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false);
        record.state =
            text("state").and_then(|json| serde_json::from_str::<Map<String, Value>>(&json).ok());
        record.field_times = text("field_times")
            .and_then(|json| serde_json::from_str::<Map<String, Value>>(&json).ok())
            .unwrap_or_default();
        record.parent = text("parent");
        record.updated_at = text("updated_at").unwrap_or_default();
        Some(record)
    }
}

/// Read access to the catalog table.
#[derive(Clone)]
pub struct DynamoCatalog {
    client: Client,
    table: String,
}

impl DynamoCatalog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// One row, read consistently (`None` if the entity has never had an event).
    pub async fn get(&self, key: &str) -> Result<Option<EntityRecord>, ServiceError> {
        read_row(&self.client, &self.table, key).await
    }

    /// The rows whose parent is `parent` (a course's sections, enrollments, assignments...).
    pub async fn children(&self, parent: &str) -> Result<Vec<EntityRecord>, ServiceError> {
        let items = query_all(
            self.client
                .query()
                .table_name(&self.table)
                .index_name(CATALOG_PARENT_INDEX)
                .key_condition_expression("parent = :parent")
                .expression_attribute_values(":parent", s(parent)),
        )
        .await?;
        Ok(items.iter().filter_map(EntityRecord::from_item).collect())
    }

    /// Several rows by key (BatchGetItem, 100 keys per call; unprocessed keys retried). Keys
    /// without a row are simply absent from the answer.
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<EntityRecord>, ServiceError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|key| HashMap::from([("pk".to_string(), s(key))]))
                .collect();
            let mut backoff = std::time::Duration::from_millis(20);
            for attempt in 0.. {
                if pending.is_empty() {
                    break;
                }
                if attempt >= 8 {
                    return Err(ServiceError::Transient(format!(
                        "{} catalog rows still unprocessed after {attempt} BatchGetItem calls",
                        pending.len()
                    )));
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .build()
                    .map_err(|e| ServiceError::Permanent(e.to_string()))?;
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
                if let Some(items) = answer.responses().and_then(|r| r.get(&self.table)) {
                    out.extend(items.iter().filter_map(EntityRecord::from_item));
                }
                if let Some(left) = answer
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .filter(|k| !k.is_empty())
                {
                    pending = left;
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
        Ok(out)
    }

    /// Every row (operators' exports and tests; a full table scan).
    pub async fn scan_all(&self) -> Result<Vec<EntityRecord>, ServiceError> {
        let items = all_pages(|start| async move {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
        })
        .await?;
        Ok(items.iter().filter_map(EntityRecord::from_item).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_round_trip_through_items() {
        let mut record = EntityRecord::empty("section:21070000000000598");
        record.sequence = 7;
        record.event_time = "2025-01-01T00:00:00.000000Z".into();
        record.event_hash = "abc".into();
        record.state = json!({"name": "A", "course_id": "1"}).as_object().cloned();
        record.field_times = json!({"name": "2025-01-01T00:00:00.000000Z"})
            .as_object()
            .cloned()
            .unwrap();
        record.parent = Some("course:1".into());
        let back = EntityRecord::from_item(&record.to_item()).unwrap();
        assert_eq!(back, record);
    }
}
