//! `sla-monitor`'s wiring from the environment `template.yaml` sets (the local stack passes
//! the same variables, resolved from the template).

use crate::deadlines::Deadlines;
use crate::monitor::SlaMonitor;
use crate::watermark::DynamoWatermark;
use chrono::TimeDelta;
use coursewire_audit::DynamoAuditTrail;
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_publishing::dynamo::DynamoWorkflowStore;
use coursewire_runtime::clock::Clock;
use coursewire_runtime::config::{ConfigError, Env};
use coursewire_runtime::function::BuildError;
use coursewire_runtime::telemetry::MetricsSink;
use coursewire_teaching::DynamoTeachingStore;
use coursewire_teaching::sections::CatalogDirectory;
use std::sync::Arc;

pub fn monitor(
    get: &(dyn Fn(&str) -> Option<String> + Sync),
    aws: &aws_config::SdkConfig,
    metrics: Arc<dyn MetricsSink>,
    function: &str,
    clock: Arc<dyn Clock>,
) -> Result<SlaMonitor, BuildError> {
    let env = Env::new(get);
    let minutes = |name: &'static str, default: u64| -> Result<TimeDelta, ConfigError> {
        Ok(TimeDelta::minutes(env.number(name, default)? as i64))
    };
    let deadlines = Deadlines {
        grace: minutes("MISSING_RECORDING_GRACE_MINUTES", 15)?,
        recorder_lead: minutes("RECORDER_WARNING_LEAD_MINUTES", 15)?,
        longest_lecture: minutes("LONGEST_LECTURE_MINUTES", 240)?,
        first_lookback: minutes("SLA_FIRST_LOOKBACK_MINUTES", 60)?,
        max_catch_up: minutes("SLA_MAX_CATCH_UP_MINUTES", 72 * 60)?,
    };
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let incidents_table = env.required("INCIDENTS_TABLE")?;
    let trail = Arc::new(DynamoAuditTrail::new(
        dynamodb.clone(),
        env.required("AUDIT_TABLE")?,
    ));
    let incidents = coursewire_incidents::config::incidents(&env, aws, trail)?;
    Ok(SlaMonitor::new(
        Arc::new(DynamoTeachingStore::new(
            dynamodb.clone(),
            env.required("TEACHING_TABLE")?,
        )),
        Arc::new(DynamoWorkflowStore::new(
            dynamodb.clone(),
            env.required("RECORDINGS_TABLE")?,
        )),
        Arc::new(CatalogDirectory::new(DynamoCatalog::new(
            dynamodb.clone(),
            env.required("CATALOG_TABLE")?,
        ))),
        coursewire_recordings::config::panopto(get, aws)?,
        incidents,
        Arc::new(DynamoWatermark::new(dynamodb, incidents_table, function)),
        deadlines,
        metrics,
        function,
    )
    .with_clock(clock))
}
