//! Paging on the `IncidentsTopic` SNS topic.

use crate::model::Incident;
use crate::ports::Pager;
use async_trait::async_trait;
use aws_sdk_sns::Client;
use coursewire_runtime::aws::classify;
use coursewire_runtime::service::ServiceError;
use serde_json::json;

pub struct SnsPager {
    client: Client,
    topic_arn: String,
}

impl SnsPager {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

#[async_trait]
impl Pager for SnsPager {
    /// The message is the incident as JSON (ids and the system's reason, no personal data),
    /// with `kind` as a message attribute for subscription filter policies.
    async fn page(&self, incident: &Incident) -> Result<(), ServiceError> {
        let message = json!({
            "incident_id": incident.id,
            "kind": incident.kind,
            "subject": incident.subject,
            "reason": incident.reason,
            "opened_at": incident.opened_at,
            "opened_by": incident.opened_by,
            "audit_ids": incident.audit_ids,
        });
        let kind = aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(incident.kind.as_str())
            .build()
            .map_err(|e| ServiceError::Permanent(e.to_string()))?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(incident.page_subject())
            .message(message.to_string())
            .message_attributes("kind", kind)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }
}
