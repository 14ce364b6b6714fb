//! The functions the local stack runs: each function crate's [`Description`], built exactly
//! as its Lambda binary builds it, from the function's environment resolved from
//! `template.yaml`, so local never drifts from deployed.

use crate::template::FunctionSpec;
use aws_config::SdkConfig;
use coursewire_runtime::clock::Clock;
use coursewire_runtime::function::{BuildError, Description, Handlers, Setup};
use coursewire_runtime::telemetry::MetricsSink;
use std::sync::Arc;

/// Every function crate of the workspace. A new function adds its crate here (and to
/// infra's Cargo.toml); a test checks that every function of the template is listed.
pub const DESCRIPTIONS: &[&Description] = &[
    &access_sync::DESCRIPTION,
    &ingest_https::DESCRIPTION,
    &ingest_sqs::DESCRIPTION,
    &orchestrator::DESCRIPTION,
    &panopto_poller::DESCRIPTION,
    &panopto_webhook::DESCRIPTION,
    &processor::DESCRIPTION,
    &reconciler::DESCRIPTION,
    &recording_scheduler::DESCRIPTION,
    &replay::DESCRIPTION,
    &sla_monitor::DESCRIPTION,
    &token_keeper::DESCRIPTION,
];

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("function {function}: {source}")]
    Build {
        function: String,
        #[source]
        source: BuildError,
    },
    #[error("function {function} (binary {binary}) has no function crate")]
    Unknown { function: String, binary: String },
}

/// The description of a binary, if a function crate has that name.
pub fn description(binary: &str) -> Option<&'static Description> {
    DESCRIPTIONS.iter().copied().find(|d| d.binary == binary)
}

/// Builds one function's handlers from its resolved environment.
pub async fn build(
    spec: &FunctionSpec,
    aws: &SdkConfig,
    metrics: Arc<dyn MetricsSink>,
    clock: Arc<dyn Clock>,
) -> Result<Handlers, FunctionError> {
    let description = description(&spec.binary).ok_or_else(|| FunctionError::Unknown {
        function: spec.logical_id.clone(),
        binary: spec.binary.clone(),
    })?;
    let env = |name: &str| spec.environment.get(name).cloned();
    let setup = Setup {
        name: description.binary,
        aws,
        metrics,
        env: &env,
        clock,
    };
    (description.build)(&setup)
        .await
        .map_err(|source| FunctionError::Build {
            function: spec.logical_id.clone(),
            source,
        })
}
