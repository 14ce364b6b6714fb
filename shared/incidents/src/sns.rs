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

impl SnsPager {
    /// Publishes `message` about `incident`, with `kind`, `severity` and `event` (`opened`,
    /// `resolved`) as message attributes for subscription filter policies.
    async fn publish(
        &self,
        incident: &Incident,
        event: &str,
        subject: String,
        message: serde_json::Value,
    ) -> Result<(), ServiceError> {
        let attribute = |value: &str| {
            aws_sdk_sns::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| ServiceError::Permanent(e.to_string()))
        };
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(message.to_string())
            .message_attributes("kind", attribute(incident.kind.as_str())?)
            .message_attributes("severity", attribute(incident.kind.severity().as_str())?)
            .message_attributes("event", attribute(event)?)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }
}

#[async_trait]
impl Pager for SnsPager {
    /// The message is the incident as JSON (ids, the catalog's names and the system's
    /// reason, no personal data).
    async fn page(&self, incident: &Incident) -> Result<(), ServiceError> {
        let message = json!({
            "event": "opened",
            "incident_id": incident.id,
            "kind": incident.kind,
            "severity": incident.kind.severity(),
            "subject": incident.subject,
            "reason": incident.reason,
            "details": incident.details,
            "opened_at": incident.opened_at,
            "opened_by": incident.opened_by,
            "audit_ids": incident.audit_ids,
        });
        self.publish(incident, "opened", incident.page_subject(), message)
            .await
    }

    async fn resolved(&self, incident: &Incident) -> Result<(), ServiceError> {
        let message = json!({
            "event": "resolved",
            "incident_id": incident.id,
            "kind": incident.kind,
            "severity": incident.kind.severity(),
            "subject": incident.subject,
            "resolution": incident.resolution,
            "resolved_at": incident.resolved_at,
            "resolved_by": incident.resolved_by,
            "opened_at": incident.opened_at,
        });
        let subject: String = format!(
            "coursewire resolved: {} on {}",
            incident.kind, incident.subject
        )
        .chars()
        .take(100)
        .collect();
        self.publish(incident, "resolved", subject, message).await
    }
}
