//! In-process function registry: which coursewire handler runs for each function binary of
//! `template.yaml`. Each handler is built exactly as the Lambda binary builds it — from the
//! function's environment (resolved from the template) — so local never drifts from deployed.

use crate::event_sources::{HandlerError, HttpHandler, ScheduledHandler, SqsHandler};
use crate::template::FunctionSpec;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use bytes::Bytes;
use coursewire::ingest::{IngestConfig, Ingestor};
use coursewire::telemetry::MetricsSink;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("function {function}: {source}")]
    Config {
        function: String,
        #[source]
        source: coursewire::ingest::ConfigError,
    },
    #[error("function {function} (binary {binary}) has no in-process handler yet")]
    Unknown { function: String, binary: String },
}

/// A function's in-process entry points (a function may have an SQS source, a URL, or both).
pub struct LocalFunction {
    pub spec: FunctionSpec,
    pub sqs: Option<Arc<dyn SqsHandler>>,
    pub http: Option<Arc<dyn HttpHandler>>,
    pub scheduled: Option<Arc<dyn ScheduledHandler>>,
}

struct IngestHandler(Arc<Ingestor>);

#[async_trait]
impl SqsHandler for IngestHandler {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        Ok(self.0.handle_sqs(event).await)
    }
}

#[async_trait]
impl HttpHandler for IngestHandler {
    async fn handle(&self, request: http::Request<Bytes>) -> http::Response<String> {
        self.0.handle_http(request).await
    }
}

/// Builds the handler of one function from its resolved environment.
pub fn build(
    spec: &FunctionSpec,
    aws: &SdkConfig,
    metrics: Arc<dyn MetricsSink>,
) -> Result<LocalFunction, FunctionError> {
    let env = |name: &str| spec.environment.get(name).cloned();
    let config_error = |source| FunctionError::Config {
        function: spec.logical_id.clone(),
        source,
    };
    match spec.binary.as_str() {
        "ingest-https" | "ingest-sqs" => {
            let config = IngestConfig::from_lookup(env).map_err(config_error)?;
            let ingestor = Arc::new(
                config
                    .build(aws, metrics, &spec.binary)
                    .map_err(config_error)?,
            );
            let handler = Arc::new(IngestHandler(ingestor));
            Ok(LocalFunction {
                spec: spec.clone(),
                sqs: Some(handler.clone() as Arc<dyn SqsHandler>),
                http: Some(handler as Arc<dyn HttpHandler>),
                scheduled: None,
            })
        }
        other => Err(FunctionError::Unknown {
            function: spec.logical_id.clone(),
            binary: other.to_string(),
        }),
    }
}
