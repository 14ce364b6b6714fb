//! In-process function registry: which coursewire handler runs for each function binary of
//! `template.yaml`. Each handler is built exactly as the Lambda binary builds it — from the
//! function's environment (resolved from the template) — so local never drifts from deployed.

use crate::event_sources::{
    HandlerError, HttpHandler, InvokeHandler, ScheduledHandler, SqsHandler,
};
use crate::template::FunctionSpec;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use bytes::Bytes;
use coursewire::canvas::{TokenKeeper, TokenKeeperConfig};
use coursewire::ingest::{IngestConfig, Ingestor};
use coursewire::processor::{Processor, ProcessorConfig};
use coursewire::reconcile::{Reconciler, ReconcilerConfig};
use coursewire::replay::{ReplayConfig, ReplayRequest, Replayer};
use coursewire::telemetry::MetricsSink;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("function {function}: {source}")]
    Config {
        function: String,
        #[source]
        source: coursewire::config::ConfigError,
    },
    #[error("function {function}: {message}")]
    Build { function: String, message: String },
    #[error("function {function} (binary {binary}) has no in-process handler yet")]
    Unknown { function: String, binary: String },
}

/// A function's in-process entry points (a function may have an SQS source, a URL, or both;
/// `invoke` is a direct invocation with a JSON event, as `aws lambda invoke` does).
pub struct LocalFunction {
    pub spec: FunctionSpec,
    pub sqs: Option<Arc<dyn SqsHandler>>,
    pub http: Option<Arc<dyn HttpHandler>>,
    pub scheduled: Option<Arc<dyn ScheduledHandler>>,
    pub invoke: Option<Arc<dyn InvokeHandler>>,
}

impl LocalFunction {
    fn new(spec: &FunctionSpec) -> Self {
        Self {
            spec: spec.clone(),
            sqs: None,
            http: None,
            scheduled: None,
            invoke: None,
        }
    }
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

struct ProcessorHandler(Processor);

#[async_trait]
impl SqsHandler for ProcessorHandler {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        Ok(self.0.handle_sqs(event).await)
    }
}

struct ReplayHandler(Replayer);

#[async_trait]
impl InvokeHandler for ReplayHandler {
    async fn invoke(&self, event: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        let request: ReplayRequest = serde_json::from_value(event)?;
        let report = self.0.run(request, |_| {}).await?;
        Ok(serde_json::to_value(report)?)
    }
}

/// The reconciler takes its queue's batches, its schedule and direct invocations.
struct ReconcileHandler(Reconciler);

#[async_trait]
impl SqsHandler for ReconcileHandler {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        Ok(self.0.handle_sqs(event).await)
    }
}

#[async_trait]
impl ScheduledHandler for ReconcileHandler {
    async fn handle(&self, input: Option<serde_json::Value>) -> Result<(), HandlerError> {
        let event = input.unwrap_or_else(|| serde_json::json!({"all_courses": true}));
        self.0.handle(event).await?;
        Ok(())
    }
}

#[async_trait]
impl InvokeHandler for ReconcileHandler {
    async fn invoke(&self, event: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        Ok(self.0.handle(event).await?)
    }
}

struct KeeperHandler(TokenKeeper);

#[async_trait]
impl ScheduledHandler for KeeperHandler {
    async fn handle(&self, _input: Option<serde_json::Value>) -> Result<(), HandlerError> {
        self.0.run().await?;
        Ok(())
    }
}

#[async_trait]
impl InvokeHandler for KeeperHandler {
    async fn invoke(&self, _event: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        Ok(serde_json::to_value(self.0.run().await?)?)
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
                sqs: Some(handler.clone() as Arc<dyn SqsHandler>),
                http: Some(handler as Arc<dyn HttpHandler>),
                ..LocalFunction::new(spec)
            })
        }
        "processor" => {
            let config = ProcessorConfig::from_lookup(env).map_err(config_error)?;
            let processor = config.build(aws, metrics, &spec.binary);
            Ok(LocalFunction {
                sqs: Some(Arc::new(ProcessorHandler(processor))),
                ..LocalFunction::new(spec)
            })
        }
        "replay" => {
            let config = ReplayConfig::from_lookup(env).map_err(config_error)?;
            let replayer = config.build(aws, metrics, &spec.binary);
            Ok(LocalFunction {
                invoke: Some(Arc::new(ReplayHandler(replayer))),
                ..LocalFunction::new(spec)
            })
        }
        "reconciler" => {
            let config = ReconcilerConfig::from_lookup(env).map_err(config_error)?;
            let reconciler =
                config
                    .build(aws, metrics, &spec.binary)
                    .map_err(|e| FunctionError::Build {
                        function: spec.logical_id.clone(),
                        message: e.to_string(),
                    })?;
            let handler = Arc::new(ReconcileHandler(reconciler));
            Ok(LocalFunction {
                sqs: Some(handler.clone() as Arc<dyn SqsHandler>),
                scheduled: Some(handler.clone() as Arc<dyn ScheduledHandler>),
                invoke: Some(handler as Arc<dyn InvokeHandler>),
                ..LocalFunction::new(spec)
            })
        }
        "token-keeper" => {
            let config = TokenKeeperConfig::from_lookup(env).map_err(config_error)?;
            let keeper =
                config
                    .build(aws, metrics, &spec.binary)
                    .map_err(|e| FunctionError::Build {
                        function: spec.logical_id.clone(),
                        message: e.to_string(),
                    })?;
            let handler = Arc::new(KeeperHandler(keeper));
            Ok(LocalFunction {
                scheduled: Some(handler.clone() as Arc<dyn ScheduledHandler>),
                invoke: Some(handler as Arc<dyn InvokeHandler>),
                ..LocalFunction::new(spec)
            })
        }
        other => Err(FunctionError::Unknown {
            function: spec.logical_id.clone(),
            binary: other.to_string(),
        }),
    }
}
