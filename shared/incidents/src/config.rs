//! Incidents wired from the environment `template.yaml` sets (`INCIDENTS_TABLE`,
//! `INCIDENTS_TOPIC_ARN`): every function that opens or resolves incidents builds them so.

use crate::{DynamoIncidentStore, Incidents, SnsPager};
use coursewire_audit::AuditTrail;
use coursewire_runtime::config::{ConfigError, Env};
use std::sync::Arc;

pub fn incidents(
    env: &Env<impl Fn(&str) -> Option<String>>,
    aws: &aws_config::SdkConfig,
    trail: Arc<dyn AuditTrail>,
) -> Result<Incidents, ConfigError> {
    Ok(Incidents::new(
        Arc::new(DynamoIncidentStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            env.required("INCIDENTS_TABLE")?,
        )),
        Arc::new(SnsPager::new(
            aws_sdk_sns::Client::new(aws),
            env.required("INCIDENTS_TOPIC_ARN")?,
        )),
        trail,
    ))
}
