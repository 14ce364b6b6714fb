//! One deployment's resource names, as `template.yaml` derives them from its `Stage`, and
//! the publish workflow wired to them the way the orchestrator Lambda is.

use aws_sdk_sns::error::DisplayErrorContext;
use coursewire_publishing::orchestrator::Orchestrator;
use coursewire_runtime::telemetry::MetricsSink;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Who the audit trail names for what the command line does.
pub const PRINCIPAL: &str = "coursewire-cli";

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("listing SNS topics to find {topic}: {message}")]
    Topics { topic: String, message: String },
    #[error("no SNS topic {topic} in this account and region (is stage `{stage}` deployed here?)")]
    NoTopic { topic: String, stage: String },
    #[error("wiring the publish workflow: {0}")]
    Build(String),
}

/// The template parameters the orchestrator reads that no name can be derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerSettings {
    /// `PanoptoUserProvider`: the Panopto identity provider that holds Canvas users.
    pub user_provider: String,
    /// `PanoptoInstitutionGroupId`: the group for `access: institution` rules, if any.
    pub institution_group: String,
}

/// A deployment, by its stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub stage: String,
}

impl Deployment {
    pub fn new(stage: impl Into<String>) -> Self {
        Self {
            stage: stage.into(),
        }
    }

    /// `coursewire-<kind>-<stage>`: every table, and the incidents topic.
    pub fn named(&self, kind: &str) -> String {
        format!("coursewire-{kind}-{}", self.stage)
    }

    /// `coursewire/<stage>/<kind>`: the Canvas and Panopto credentials secrets.
    pub fn secret(&self, kind: &str) -> String {
        format!("coursewire/{}/{kind}", self.stage)
    }

    pub fn changes_queue(&self) -> String {
        format!("coursewire-changes-{}.fifo", self.stage)
    }

    pub fn event_bus(&self) -> String {
        format!("coursewire-{}", self.stage)
    }

    /// The orchestrator's environment, as the template sets it for this stage.
    pub fn orchestrator_env(
        &self,
        incidents_topic_arn: &str,
        viewers: &ViewerSettings,
    ) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("RECORDINGS_TABLE", self.named("recordings")),
            ("INBOX_TABLE", self.named("recordings-inbox")),
            ("EVENT_BUS_NAME", self.event_bus()),
            ("TEACHING_TABLE", self.named("teaching")),
            ("CATALOG_TABLE", self.named("catalog")),
            ("AUDIT_TABLE", self.named("audit")),
            ("INCIDENTS_TABLE", self.named("incidents")),
            ("INCIDENTS_TOPIC_ARN", incidents_topic_arn.to_string()),
            ("PANOPTO_SECRET_ID", self.secret("panopto")),
            ("PANOPTO_USER_PROVIDER", viewers.user_provider.clone()),
            (
                "PANOPTO_INSTITUTION_GROUP",
                viewers.institution_group.clone(),
            ),
            ("RATE_LIMIT_TABLE", self.named("rate-limits")),
            ("CANVAS_SECRET_ID", self.secret("canvas")),
        ])
    }

    /// The incidents topic's ARN, found by its name.
    pub async fn incidents_topic_arn(
        &self,
        sns: &aws_sdk_sns::Client,
    ) -> Result<String, DeploymentError> {
        let topic = self.named("incidents");
        let suffix = format!(":{topic}");
        let mut pages = sns.list_topics().into_paginator().items().send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| DeploymentError::Topics {
                topic: topic.clone(),
                message: DisplayErrorContext(&e).to_string(),
            })?;
            if let Some(arn) = item.topic_arn()
                && arn.ends_with(&suffix)
            {
                return Ok(arn.to_string());
            }
        }
        Err(DeploymentError::NoTopic {
            topic,
            stage: self.stage.clone(),
        })
    }

    /// The publish workflow of this deployment, in this process, exactly as the
    /// orchestrator Lambda wires it; the audit trail names [`PRINCIPAL`].
    pub async fn orchestrator(
        &self,
        aws: &aws_config::SdkConfig,
        viewers: &ViewerSettings,
        metrics: Arc<dyn MetricsSink>,
    ) -> Result<Orchestrator, DeploymentError> {
        let arn = self
            .incidents_topic_arn(&aws_sdk_sns::Client::new(aws))
            .await?;
        let env = self.orchestrator_env(&arn, viewers);
        let get = |key: &str| env.get(key).cloned();
        coursewire_publishing::config::orchestrator(&get, aws, metrics, PRINCIPAL)
            .map_err(|e| DeploymentError::Build(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_template() {
        let prod = Deployment::new("prod");
        assert_eq!(prod.named("audit"), "coursewire-audit-prod");
        assert_eq!(prod.secret("panopto"), "coursewire/prod/panopto");
        assert_eq!(prod.changes_queue(), "coursewire-changes-prod.fifo");
        assert_eq!(prod.event_bus(), "coursewire-prod");
        let env = prod.orchestrator_env(
            "arn:aws:sns:eu-west-1:123456789012:coursewire-incidents-prod",
            &ViewerSettings {
                user_provider: "canvas".into(),
                institution_group: String::new(),
            },
        );
        assert_eq!(env["INBOX_TABLE"], "coursewire-recordings-inbox-prod");
        assert_eq!(env["RATE_LIMIT_TABLE"], "coursewire-rate-limits-prod");
    }
}
