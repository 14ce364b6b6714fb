//! Configuration of the recording functions, read from the environment `template.yaml` sets
//! (the local stack passes the same variables, resolved from the template).

use crate::booking::Scheduler;
use crate::poller::{PollWindow, Poller};
use crate::webhook::{DynamoReplayGuard, SigningKeys, Webhook};
use coursewire_audit::DynamoAuditTrail;
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_panopto::{HttpPanopto, PanoptoConfig};
use coursewire_pipeline::handoff::SqsEventQueue;
use coursewire_pipeline::inbox::DynamoInbox;
use coursewire_pipeline::intake::Intake;
use coursewire_runtime::config::{ConfigError, Env};
use coursewire_runtime::function::BuildError;
use coursewire_runtime::secrets::JsonSecret;
use coursewire_runtime::telemetry::MetricsSink;
use coursewire_teaching::DynamoTeachingStore;
use coursewire_teaching::sections::CatalogDirectory;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

const DAY: u64 = 86_400;

/// The recordings inbox and `recordings.fifo`, as both ingestion paths use them.
fn intake(
    env: &Env<impl Fn(&str) -> Option<String>>,
    aws: &aws_config::SdkConfig,
) -> Result<Intake, ConfigError> {
    let inbox = DynamoInbox::new(
        aws_sdk_dynamodb::Client::new(aws),
        env.required("INBOX_TABLE")?,
        Duration::from_secs(env.number("INBOX_RETENTION_DAYS", 400)? * DAY),
        Duration::from_secs(env.number("REJECT_RETENTION_DAYS", 30)? * DAY),
    );
    let queue = SqsEventQueue::new(
        aws_sdk_sqs::Client::new(aws),
        env.required("RECORDINGS_QUEUE_URL")?,
    );
    Ok(Intake::new(Arc::new(inbox), Arc::new(queue)))
}

/// The Panopto client, on Secrets Manager (every function that calls Panopto builds it so).
pub fn panopto(
    get: impl Fn(&str) -> Option<String>,
    aws: &aws_config::SdkConfig,
) -> Result<Arc<HttpPanopto>, BuildError> {
    let config = PanoptoConfig::from_lookup(get)?;
    let client = config
        .build(aws_sdk_secretsmanager::Client::new(aws))
        .map_err(|e| BuildError::Clients(e.to_string()))?;
    Ok(Arc::new(client))
}

/// `panopto-poller`.
pub fn poller(
    get: &(dyn Fn(&str) -> Option<String> + Sync),
    aws: &aws_config::SdkConfig,
    metrics: Arc<dyn MetricsSink>,
    function: &str,
) -> Result<Poller, BuildError> {
    let env = Env::new(get);
    let minutes = |name: &'static str, default: u64| -> Result<chrono::TimeDelta, ConfigError> {
        Ok(chrono::TimeDelta::minutes(env.number(name, default)? as i64))
    };
    let window = PollWindow {
        lead: minutes("POLL_LEAD_MINUTES", 15)?,
        lookback: minutes("POLL_LOOKBACK_MINUTES", 360)?,
        longest_lecture: minutes("LONGEST_LECTURE_MINUTES", 240)?,
    };
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let teaching = DynamoTeachingStore::new(dynamodb.clone(), env.required("TEACHING_TABLE")?);
    let trail = DynamoAuditTrail::new(dynamodb, env.required("AUDIT_TABLE")?);
    Ok(Poller::new(
        Arc::new(teaching),
        panopto(get, aws)?,
        intake(&env, aws)?,
        Arc::new(trail),
        window,
        metrics,
        function,
    ))
}

/// `recording-scheduler`.
pub fn scheduler(
    get: &(dyn Fn(&str) -> Option<String> + Sync),
    aws: &aws_config::SdkConfig,
) -> Result<Scheduler, BuildError> {
    let env = Env::new(get);
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let teaching = DynamoTeachingStore::new(dynamodb.clone(), env.required("TEACHING_TABLE")?);
    let trail = DynamoAuditTrail::new(dynamodb.clone(), env.required("AUDIT_TABLE")?);
    let directory =
        CatalogDirectory::new(DynamoCatalog::new(dynamodb, env.required("CATALOG_TABLE")?));
    Ok(Scheduler::new(
        Arc::new(teaching),
        panopto(get, aws)?,
        Arc::new(directory),
        Arc::new(trail),
    ))
}

/// The webhook secret's JSON.
#[derive(Deserialize)]
struct WebhookSecret {
    signing_secret: String,
    #[serde(default)]
    previous_signing_secret: Option<String>,
}

/// `panopto-webhook`: reads the signing secret once, at start.
pub async fn webhook(
    get: &(dyn Fn(&str) -> Option<String> + Sync),
    aws: &aws_config::SdkConfig,
    metrics: Arc<dyn MetricsSink>,
    function: &str,
) -> Result<Webhook, BuildError> {
    let env = Env::new(get);
    let secret_id = env.required("WEBHOOK_SECRET_ID")?;
    let parsed: WebhookSecret =
        JsonSecret::new(aws_sdk_secretsmanager::Client::new(aws), secret_id)
            .load()
            .await
            .map_err(|e| BuildError::Clients(format!("reading the webhook signing secret: {e}")))?;
    let keys = SigningKeys::new(
        &parsed.signing_secret,
        parsed.previous_signing_secret.as_deref(),
    )
    .map_err(|reason| ConfigError::Invalid {
        name: "WEBHOOK_SECRET_ID",
        reason,
    })?;
    let guard = DynamoReplayGuard::new(
        aws_sdk_dynamodb::Client::new(aws),
        env.required("WEBHOOK_REPLAY_TABLE")?,
    );
    Ok(Webhook::new(
        keys,
        Arc::new(guard),
        intake(&env, aws)?,
        metrics,
        function,
    ))
}
