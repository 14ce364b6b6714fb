//! Lambda event sources run in-process for the local stack.
//!
//! moto stores queues but never invokes functions, so this module plays the
//! Lambda service's part: SQS event-source mappings ([`SqsPoller`]: batching
//! window, partial batch failures, visibility timeout, FIFO group order),
//! function URLs ([`FunctionUrlServer`]) and schedules ([`Scheduler`]).

use std::collections::HashSet;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};
use coursewire_runtime::function::QueueHandler;
use futures::FutureExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::provision::Deployed;
use crate::template::{FunctionSpec, SqsEventSource};

pub use coursewire_runtime::function::{HandlerError, HttpHandler, InvokeHandler, ScheduleHandler};

/// What the Lambda service hands an SQS-triggered function: Lambda's SQS event, answered with
/// the partial batch response. `Err` fails the whole batch: every message returns to the
/// queue after its visibility timeout.
#[async_trait]
pub trait SqsHandler: Send + Sync {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError>;
}

/// A function's queue handler behind Lambda's SQS event, through the same adapter the Lambda
/// binary uses ([`coursewire_runtime::function::queue::handle_sqs`]).
pub struct SqsFunction(pub Arc<dyn QueueHandler>);

#[async_trait]
impl SqsHandler for SqsFunction {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        coursewire_runtime::function::queue::handle_sqs(self.0.as_ref(), event).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventSourceError {
    #[error("{operation} on {queue} failed: {message}")]
    Sqs {
        operation: &'static str,
        queue: String,
        message: String,
    },
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("schedule expression {expression:?}: {reason}")]
    Schedule { expression: String, reason: String },
    #[error("event source {source_name} of {function}: {reason}")]
    Config {
        function: String,
        source_name: String,
        reason: String,
    },
}

mod counters;
mod function_url;
mod schedule;
mod shutdown;
mod sqs_poller;

use counters::add;
pub use counters::{CounterSnapshot, Counters};
pub use function_url::{FunctionUrlOptions, FunctionUrlServer, MAX_REQUEST_BYTES};
pub use schedule::{Cron, Schedule, Scheduler};
use shutdown::Background;
pub use shutdown::ShutdownToken;
pub use sqs_poller::{SqsPoller, SqsPollerConfig, to_sqs_event};

#[cfg(test)]
mod tests;
