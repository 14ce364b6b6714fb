//! The triggers a function can answer, as ports in domain types.

use super::queue::{BatchOutcome, QueueMessage};
use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;

/// What a failed invocation returns (the same shape as `lambda_runtime::Error`).
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A queue-triggered function. `Err` fails the whole batch (every message returns to the
/// queue after its visibility timeout); [`BatchOutcome::failed`] fails only those messages.
#[async_trait]
pub trait QueueHandler: Send + Sync {
    async fn handle(&self, batch: Vec<QueueMessage>) -> Result<BatchOutcome, HandlerError>;
}

/// A function behind a function URL. It answers every request itself, errors included.
#[async_trait]
pub trait HttpHandler: Send + Sync {
    async fn handle(&self, request: http::Request<Bytes>) -> http::Response<String>;
}

/// A function run by a schedule, with the schedule's `Input` when the template sets one.
#[async_trait]
pub trait ScheduleHandler: Send + Sync {
    async fn handle(&self, input: Option<Value>) -> Result<(), HandlerError>;
}

/// A function invoked directly with a JSON event (`aws lambda invoke`, the operator CLI),
/// answering JSON.
#[async_trait]
pub trait InvokeHandler: Send + Sync {
    async fn invoke(&self, event: Value) -> Result<Value, HandlerError>;
}

/// The triggers one function answers.
#[derive(Default, Clone)]
pub struct Handlers {
    pub queue: Option<Arc<dyn QueueHandler>>,
    pub http: Option<Arc<dyn HttpHandler>>,
    pub schedule: Option<Arc<dyn ScheduleHandler>>,
    pub invoke: Option<Arc<dyn InvokeHandler>>,
}
