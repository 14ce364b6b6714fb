//! The orchestrator's wiring from the environment `template.yaml` sets (the local stack
//! passes the same variables, resolved from the template).

use crate::access::Viewers;
use crate::dynamo::DynamoWorkflowStore;
use crate::orchestrator::Orchestrator;
use crate::publisher::{Publisher, Settings};
use crate::recording::{RecordingModel, RecordingRow};
use coursewire_audit::DynamoAuditTrail;
use coursewire_canvas::canvas::CanvasConfig;
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_pipeline::bus::{EventBridgePublisher, Producer};
use coursewire_pipeline::processor::{DynamoLedger, LedgerOf, Processor};
use coursewire_runtime::config::Env;
use coursewire_runtime::function::BuildError;
use coursewire_runtime::telemetry::MetricsSink;
use coursewire_teaching::DynamoTeachingStore;
use coursewire_teaching::sections::CatalogDirectory;
use std::sync::Arc;

/// `orchestrator`: recordings.fifo → recording rows → `Recording Changed`, and the publish
/// workflow of each recording.
pub fn orchestrator(
    get: &(dyn Fn(&str) -> Option<String> + Sync),
    aws: &aws_config::SdkConfig,
    metrics: Arc<dyn MetricsSink>,
    function: &str,
) -> Result<Orchestrator, BuildError> {
    let env = Env::new(get);
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let recordings_table = env.required("RECORDINGS_TABLE")?;
    let rows: Arc<LedgerOf<RecordingModel>> = Arc::new(DynamoLedger::<RecordingRow>::new(
        dynamodb.clone(),
        recordings_table.clone(),
        env.required("INBOX_TABLE")?,
    ));
    let bus = EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(aws),
        env.required("EVENT_BUS_NAME")?,
        Producer::CAPTURE,
    );
    let processor = Processor::new(
        RecordingModel,
        rows.clone(),
        Arc::new(bus),
        metrics.clone(),
        function,
    );
    let trail = Arc::new(DynamoAuditTrail::new(
        dynamodb.clone(),
        env.required("AUDIT_TABLE")?,
    ));
    let incidents = coursewire_incidents::config::incidents(&env, aws, trail.clone())?;
    let canvas = CanvasConfig::from_lookup(get)?
        .build(aws, metrics.clone(), function)
        .map_err(|e| BuildError::Clients(format!("the Canvas client: {e}")))?;
    let settings = Settings {
        viewers: Viewers {
            user_provider: env
                .optional("PANOPTO_USER_PROVIDER")
                .unwrap_or_else(|| "canvas".into()),
            institution_group: env
                .optional("PANOPTO_INSTITUTION_GROUP")
                .unwrap_or_default(),
        },
        longest_lecture: chrono::TimeDelta::minutes(
            env.number("LONGEST_LECTURE_MINUTES", 240)? as i64
        ),
        function: function.to_string(),
    };
    let publisher = Publisher::new(
        Arc::new(DynamoWorkflowStore::new(dynamodb.clone(), recordings_table)),
        Arc::new(DynamoTeachingStore::new(
            dynamodb.clone(),
            env.required("TEACHING_TABLE")?,
        )),
        Arc::new(CatalogDirectory::new(DynamoCatalog::new(
            dynamodb,
            env.required("CATALOG_TABLE")?,
        ))),
        coursewire_recordings::config::panopto(get, aws)?,
        Arc::new(canvas),
        trail,
        Arc::new(incidents),
        settings,
    );
    Ok(Orchestrator::new(
        processor,
        rows,
        Arc::new(publisher),
        metrics,
        function,
    ))
}
