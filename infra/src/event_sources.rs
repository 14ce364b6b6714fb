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
use bytes::Bytes;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};
use coursewire::function::QueueHandler;
use futures::FutureExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::provision::Deployed;
use crate::template::{FunctionSpec, SqsEventSource};

pub use coursewire::function::{HandlerError, HttpHandler, InvokeHandler, ScheduleHandler};

/// What the Lambda service hands an SQS-triggered function: Lambda's SQS event, answered with
/// the partial batch response. `Err` fails the whole batch: every message returns to the
/// queue after its visibility timeout.
#[async_trait]
pub trait SqsHandler: Send + Sync {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError>;
}

/// A function's queue handler behind Lambda's SQS event, through the same adapter the Lambda
/// binary uses ([`coursewire::function::queue::handle_sqs`]).
pub struct SqsFunction(pub Arc<dyn QueueHandler>);

#[async_trait]
impl SqsHandler for SqsFunction {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        coursewire::function::queue::handle_sqs(self.0.as_ref(), event).await
    }
}

/// Adapts an async closure into an [`SqsHandler`].
pub struct SqsHandlerFn<F>(pub F);

#[async_trait]
impl<F, Fut> SqsHandler for SqsHandlerFn<F>
where
    F: Fn(SqsEvent) -> Fut + Send + Sync,
    Fut: Future<Output = Result<SqsBatchResponse, HandlerError>> + Send,
{
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        (self.0)(event).await
    }
}

/// Adapts an async closure into an [`HttpHandler`].
pub struct HttpHandlerFn<F>(pub F);

#[async_trait]
impl<F, Fut> HttpHandler for HttpHandlerFn<F>
where
    F: Fn(http::Request<Bytes>) -> Fut + Send + Sync,
    Fut: Future<Output = http::Response<String>> + Send,
{
    async fn handle(&self, req: http::Request<Bytes>) -> http::Response<String> {
        (self.0)(req).await
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

// ---------------------------------------------------------------- shutdown

/// A cloneable cancellation signal (what tokio-util's CancellationToken does,
/// on a `watch` channel). A [`child`](Self::child) is cancelled with its
/// parent but can also be cancelled alone.
#[derive(Debug, Clone)]
pub struct ShutdownToken {
    /// Ancestors first; this token's own signal is the last one.
    chain: Arc<[Arc<watch::Sender<bool>>]>,
}

impl Default for ShutdownToken {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownToken {
    pub fn new() -> Self {
        Self {
            chain: Arc::from([Arc::new(watch::Sender::new(false))]),
        }
    }

    pub fn child(&self) -> Self {
        let mut chain: Vec<_> = self.chain.iter().cloned().collect();
        chain.push(Arc::new(watch::Sender::new(false)));
        Self {
            chain: chain.into(),
        }
    }

    pub fn cancel(&self) {
        if let Some(own) = self.chain.last() {
            own.send_replace(true);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.chain.iter().any(|s| *s.borrow())
    }

    /// Completes once this token or an ancestor is cancelled.
    pub async fn cancelled(&self) {
        let mut receivers: Vec<_> = self.chain.iter().map(|s| s.subscribe()).collect();
        let waits = receivers.iter_mut().map(|rx| {
            // The senders live in `self.chain`, so wait_for cannot see them dropped.
            Box::pin(async move {
                let _ = rx.wait_for(|cancelled| *cancelled).await;
            })
        });
        futures::future::select_all(waits).await;
    }
}

// ---------------------------------------------------------------- counters

/// Progress counters for the local runner's display. Each event source has
/// its own; fields that do not apply stay zero.
#[derive(Debug, Default)]
pub struct Counters {
    /// Handler invocations (batches, HTTP requests, schedule ticks).
    pub invocations: AtomicU64,
    /// Invocations that failed as a whole: `Err`, panic or timeout.
    pub failed_invocations: AtomicU64,
    pub messages_received: AtomicU64,
    /// Messages deleted after a successful invocation.
    pub messages_deleted: AtomicU64,
    /// Messages left for redelivery (failed items, FIFO followers, failed batches).
    pub messages_failed: AtomicU64,
    /// Items the handler itself reported in `batchItemFailures`.
    pub batch_item_failures: AtomicU64,
    /// Failed messages that had reached `maxReceiveCount`: SQS moves them to
    /// the DLQ instead of delivering them again.
    pub messages_redriven: AtomicU64,
    /// SQS or transport errors while receiving or deleting.
    pub sqs_errors: AtomicU64,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub invocations: u64,
    pub failed_invocations: u64,
    pub messages_received: u64,
    pub messages_deleted: u64,
    pub messages_failed: u64,
    pub batch_item_failures: u64,
    pub messages_redriven: u64,
    pub sqs_errors: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            invocations: get(&self.invocations),
            failed_invocations: get(&self.failed_invocations),
            messages_received: get(&self.messages_received),
            messages_deleted: get(&self.messages_deleted),
            messages_failed: get(&self.messages_failed),
            batch_item_failures: get(&self.batch_item_failures),
            messages_redriven: get(&self.messages_redriven),
            sqs_errors: get(&self.sqs_errors),
        }
    }
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

// ---------------------------------------------------------------- SQS

/// Largest batch one ReceiveMessage returns.
const SQS_RECEIVE_MAX: u32 = 10;
/// Lambda caps FIFO event sources at 10 messages per batch.
const FIFO_MAX_BATCH: u32 = 10;
/// Pause after an SQS error so a broken endpoint is not hammered.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

/// One SQS event-source mapping.
#[derive(Debug, Clone)]
pub struct SqsPollerConfig {
    /// For logs.
    pub function_name: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    pub batch_size: u32,
    /// `MaximumBatchingWindowInSeconds`: how long to gather a batch after the
    /// first message arrives.
    pub batching_window: Duration,
    pub report_batch_item_failures: bool,
    /// The function's Timeout: a slower invocation fails the whole batch.
    pub function_timeout: Duration,
    /// Concurrent pollers, each running one invocation at a time.
    pub pollers: usize,
    /// ReceiveMessage long-poll wait while the queue is empty.
    pub wait_time_seconds: i32,
}

impl SqsPollerConfig {
    pub fn new(
        function_name: impl Into<String>,
        queue_url: impl Into<String>,
        queue_arn: impl Into<String>,
    ) -> Self {
        Self {
            function_name: function_name.into(),
            queue_url: queue_url.into(),
            queue_arn: queue_arn.into(),
            region: crate::template::LOCAL_REGION.to_owned(),
            batch_size: 10,
            batching_window: Duration::ZERO,
            report_batch_item_failures: false,
            function_timeout: Duration::from_secs(30),
            pollers: 2,
            wait_time_seconds: 1,
        }
    }

    /// The mapping a SAM `Events: X: Type: SQS` declares, against the
    /// provisioned queue.
    pub fn for_event_source(
        deployed: &Deployed,
        function: &FunctionSpec,
        source: &SqsEventSource,
    ) -> Result<Self, EventSourceError> {
        let queue = &source.queue_logical_id;
        let (url, arn) = deployed
            .queue_url(queue)
            .zip(deployed.queue_arn(queue))
            .ok_or_else(|| EventSourceError::Config {
                function: function.logical_id.clone(),
                source_name: source.name.clone(),
                reason: format!("queue {queue} was not provisioned"),
            })?;
        let mut config = Self::new(&function.logical_id, url, arn);
        config.region = deployed.context.region.clone();
        config.batch_size = source.batch_size;
        config.batching_window = Duration::from_secs(source.maximum_batching_window_seconds.into());
        config.report_batch_item_failures = source.report_batch_item_failures;
        config.function_timeout = Duration::from_secs(function.timeout_seconds.into());
        if let Some(max) = source.maximum_concurrency {
            config.pollers = config.pollers.min(max as usize).max(1);
        }
        Ok(config)
    }

    fn is_fifo(&self) -> bool {
        self.queue_url.ends_with(".fifo")
    }
}

struct PollerShared {
    config: SqsPollerConfig,
    client: aws_sdk_sqs::Client,
    handler: Arc<dyn SqsHandler>,
    counters: Arc<Counters>,
    shutdown: ShutdownToken,
    max_receive_count: Option<u32>,
}

/// Polls one queue with Lambda's SQS event-source semantics.
pub struct SqsPoller {
    shutdown: ShutdownToken,
    workers: Vec<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl SqsPoller {
    /// Starts `config.pollers` pollers; they stop when `shutdown` (or
    /// [`stop`](Self::stop)) fires, after finishing the batch in hand.
    pub async fn start(
        client: aws_sdk_sqs::Client,
        config: SqsPollerConfig,
        handler: Arc<dyn SqsHandler>,
        shutdown: &ShutdownToken,
    ) -> Result<Self, EventSourceError> {
        let invalid = |reason: String| EventSourceError::Config {
            function: config.function_name.clone(),
            source_name: config.queue_url.clone(),
            reason,
        };
        if config.batch_size == 0 {
            return Err(invalid("BatchSize must be at least 1".into()));
        }
        if config.is_fifo() && config.batch_size > FIFO_MAX_BATCH {
            return Err(invalid(format!(
                "BatchSize for a FIFO queue is at most {FIFO_MAX_BATCH}"
            )));
        }

        // The redrive policy tells which failures are final (for the counter).
        let attrs = client
            .get_queue_attributes()
            .queue_url(&config.queue_url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| EventSourceError::Sqs {
                operation: "GetQueueAttributes",
                queue: config.queue_url.clone(),
                message: DisplayErrorContext(e).to_string(),
            })?;
        let max_receive_count = attrs
            .attributes
            .as_ref()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| match &p["maxReceiveCount"] {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            })
            .and_then(|n| u32::try_from(n).ok());

        let shutdown = shutdown.child();
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(PollerShared {
            client,
            handler,
            counters: counters.clone(),
            shutdown: shutdown.clone(),
            max_receive_count,
            config,
        });
        let workers = (0..shared.config.pollers.max(1))
            .map(|_| tokio::spawn(shared.clone().run()))
            .collect();
        Ok(Self {
            shutdown,
            workers,
            counters,
        })
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops the pollers and waits for in-flight batches to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        self.join_workers().await;
    }

    /// Waits until the pollers end (after the shutdown token fires).
    pub async fn join(mut self) {
        self.join_workers().await;
    }

    async fn join_workers(&mut self) {
        for worker in self.workers.drain(..) {
            if let Err(e) = worker.await {
                tracing::error!(error = %e, "SQS poller task failed");
            }
        }
    }
}

impl Drop for SqsPoller {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl PollerShared {
    async fn run(self: Arc<Self>) {
        while !self.shutdown.is_cancelled() {
            let batch = self.collect_batch().await;
            if !batch.is_empty() {
                self.invoke(batch).await;
            }
        }
    }

    /// Gathers up to `batch_size` messages: long-polls until the first one
    /// arrives, then keeps receiving until the batching window closes.
    async fn collect_batch(&self) -> Vec<Message> {
        let config = &self.config;
        let mut batch: Vec<Message> = Vec::new();
        let mut window_end: Option<Instant> = None;
        loop {
            let remaining_window =
                window_end.map(|end| end.saturating_duration_since(Instant::now()));
            let wait = match remaining_window {
                None => config.wait_time_seconds,
                Some(left) if left >= Duration::from_secs(1) => 1,
                Some(_) => 0,
            };
            let want = (config.batch_size - batch.len() as u32).min(SQS_RECEIVE_MAX);
            let received = self.receive(want, wait).await;
            let got = received.len();
            if got > 0 && window_end.is_none() {
                window_end = Some(Instant::now() + config.batching_window);
            }
            for message in received {
                // A visibility timeout shorter than the window redelivers a
                // message mid-batch; keep only its newest receipt handle.
                match batch
                    .iter_mut()
                    .find(|m| m.message_id.is_some() && m.message_id == message.message_id)
                {
                    Some(older) => *older = message,
                    None => batch.push(message),
                }
            }

            let window_closed = window_end.is_some_and(|end| Instant::now() >= end);
            if batch.len() as u32 >= config.batch_size || (!batch.is_empty() && window_closed) {
                return batch;
            }
            if batch.is_empty() && self.shutdown.is_cancelled() {
                return batch;
            }
            if got == 0 && wait == 0 {
                // Short polls inside the window: do not spin.
                let left = window_end.map_or(Duration::ZERO, |end| {
                    end.saturating_duration_since(Instant::now())
                });
                tokio::time::sleep(left.min(Duration::from_millis(50))).await;
            }
        }
    }

    async fn receive(&self, max: u32, wait_seconds: i32) -> Vec<Message> {
        let result = self
            .client
            .receive_message()
            .queue_url(&self.config.queue_url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await;
        match result {
            Ok(out) => {
                let messages = out.messages.unwrap_or_default();
                add(&self.counters.messages_received, messages.len());
                messages
            }
            Err(e) => {
                add(&self.counters.sqs_errors, 1);
                tracing::warn!(queue = %self.config.queue_url, error = %DisplayErrorContext(e), "ReceiveMessage failed");
                tokio::select! {
                    _ = tokio::time::sleep(ERROR_BACKOFF) => {}
                    _ = self.shutdown.cancelled() => {}
                }
                Vec::new()
            }
        }
    }

    async fn invoke(&self, batch: Vec<Message>) {
        let config = &self.config;
        let event = to_sqs_event(&batch, &config.queue_arn, &config.region);
        add(&self.counters.invocations, 1);

        let outcome = tokio::time::timeout(
            config.function_timeout,
            AssertUnwindSafe(self.handler.handle(event)).catch_unwind(),
        )
        .await;
        let ids: Vec<&str> = batch
            .iter()
            .map(|m| m.message_id().unwrap_or_default())
            .collect();
        let mut failed: HashSet<&str> = match outcome {
            Ok(Ok(Ok(response))) if config.report_batch_item_failures => {
                let reported: HashSet<&str> = response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.as_str())
                    .collect();
                add(&self.counters.batch_item_failures, reported.len());
                // Lambda treats an empty or unknown identifier as a failed batch.
                if reported.iter().all(|id| !id.is_empty() && ids.contains(id)) {
                    ids.iter()
                        .copied()
                        .filter(|id| reported.contains(id))
                        .collect()
                } else {
                    tracing::warn!(function = %config.function_name, "batchItemFailures names a message not in the batch; failing the whole batch");
                    ids.iter().copied().collect()
                }
            }
            Ok(Ok(Ok(_))) => HashSet::new(),
            Ok(Ok(Err(e))) => {
                add(&self.counters.failed_invocations, 1);
                tracing::warn!(function = %config.function_name, error = %e, "invocation failed; batch returns to the queue");
                ids.iter().copied().collect()
            }
            Ok(Err(_panic)) => {
                add(&self.counters.failed_invocations, 1);
                tracing::error!(function = %config.function_name, "handler panicked; batch returns to the queue");
                ids.iter().copied().collect()
            }
            Err(_elapsed) => {
                add(&self.counters.failed_invocations, 1);
                tracing::warn!(function = %config.function_name, timeout = ?config.function_timeout, "invocation timed out; batch returns to the queue");
                ids.iter().copied().collect()
            }
        };

        let mut followers: Vec<&Message> = Vec::new();
        if config.is_fifo() && !failed.is_empty() {
            // Later messages of a failed group must not overtake it: they fail too.
            let mut failed_groups = HashSet::new();
            for (message, id) in batch.iter().zip(&ids) {
                let group = system_attribute(message, MessageSystemAttributeName::MessageGroupId);
                if failed.contains(id) {
                    if !failed_groups.insert(group) {
                        followers.push(message);
                    }
                } else if failed_groups.contains(&group) {
                    failed.insert(id);
                    followers.push(message);
                }
            }
        }

        let succeeded: Vec<&Message> = batch
            .iter()
            .zip(&ids)
            .filter(|(_, id)| !failed.contains(*id))
            .map(|(m, _)| m)
            .collect();
        add(&self.counters.messages_failed, failed.len());
        if let Some(max) = self.max_receive_count {
            let final_failures = batch
                .iter()
                .zip(&ids)
                .filter(|(m, id)| {
                    failed.contains(*id)
                        && system_attribute(m, MessageSystemAttributeName::ApproximateReceiveCount)
                            .and_then(|c| c.parse::<u32>().ok())
                            .is_some_and(|c| c >= max)
                })
                .count();
            add(&self.counters.messages_redriven, final_failures);
        }
        self.delete(&succeeded).await;
        self.release(&followers).await;
    }

    /// Makes the failed group's later messages visible again at once.
    ///
    /// moto redelivers a later message of a FIFO group before an earlier one
    /// when several of the group were in flight together; with only the first
    /// failed message left in flight it keeps group order. On real SQS this
    /// changes nothing: a FIFO queue never delivers past an in-flight message.
    async fn release(&self, messages: &[&Message]) {
        for chunk in messages.chunks(SQS_RECEIVE_MAX as usize) {
            let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            let result = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.config.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            let failures = match result {
                Ok(out) => out.failed().len(),
                Err(e) => {
                    tracing::debug!(queue = %self.config.queue_url, error = %DisplayErrorContext(e), "ChangeMessageVisibilityBatch failed");
                    chunk.len()
                }
            };
            // Not fatal: the messages come back after the visibility timeout anyway.
            add(&self.counters.sqs_errors, failures);
        }
    }

    async fn delete(&self, messages: &[&Message]) {
        for chunk in messages.chunks(SQS_RECEIVE_MAX as usize) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            let result = self
                .client
                .delete_message_batch()
                .queue_url(&self.config.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match result {
                Ok(out) => {
                    add(&self.counters.messages_deleted, out.successful().len());
                    for failure in out.failed() {
                        add(&self.counters.sqs_errors, 1);
                        tracing::warn!(queue = %self.config.queue_url, code = failure.code(), message = ?failure.message(), "DeleteMessageBatch entry failed; the message will be delivered again");
                    }
                }
                Err(e) => {
                    add(&self.counters.sqs_errors, 1);
                    tracing::warn!(queue = %self.config.queue_url, error = %DisplayErrorContext(e), "DeleteMessageBatch failed; the messages will be delivered again");
                }
            }
        }
    }
}

fn system_attribute(message: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    message.attributes()?.get(&name).map(String::as_str)
}

/// The event Lambda builds for an SQS batch.
pub fn to_sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| to_sqs_record(m, queue_arn, region))
        .collect();
    event
}

fn to_sqs_record(m: &Message, queue_arn: &str, region: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = m.message_id.clone();
    record.receipt_handle = m.receipt_handle.clone();
    record.body = m.body.clone();
    record.md5_of_body = m.md5_of_body.clone();
    record.md5_of_message_attributes = m.md5_of_message_attributes.clone();
    record.attributes = m
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    record.message_attributes = m
        .message_attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.clone(), to_lambda_attribute(v)))
                .collect()
        })
        .unwrap_or_default();
    record.event_source = Some("aws:sqs".to_owned());
    record.event_source_arn = Some(queue_arn.to_owned());
    record.aws_region = Some(region.to_owned());
    record
}

fn to_lambda_attribute(v: &MessageAttributeValue) -> SqsMessageAttribute {
    let blob = |b: &aws_sdk_sqs::primitives::Blob| {
        let mut data = Base64Data::default();
        *data = b.as_ref().to_vec();
        data
    };
    let mut attribute = SqsMessageAttribute::default();
    attribute.string_value = v.string_value.clone();
    attribute.binary_value = v.binary_value().map(blob);
    attribute.string_list_values = v.string_list_values().to_vec();
    attribute.binary_list_values = v.binary_list_values().iter().map(blob).collect();
    attribute.data_type = Some(v.data_type().to_owned());
    attribute
}

// ---------------------------------------------------------------- function URL

/// Lambda's synchronous invocation payload limit (6 MB), applied to the body.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct FunctionUrlOptions {
    /// 0 picks a free port.
    pub port: u16,
    /// The function's Timeout; a slower handler answers 502 as a URL does.
    pub timeout: Duration,
    /// Stops the server with this token (in addition to `stop`).
    pub shutdown: Option<ShutdownToken>,
}

impl Default for FunctionUrlOptions {
    fn default() -> Self {
        Self {
            port: 0,
            timeout: Duration::from_secs(30),
            shutdown: None,
        }
    }
}

struct UrlState {
    handler: Arc<dyn HttpHandler>,
    counters: Arc<Counters>,
    timeout: Duration,
}

/// A local stand-in for a Lambda function URL.
pub struct FunctionUrlServer {
    url: String,
    addr: SocketAddr,
    task: Background,
    counters: Arc<Counters>,
}

impl FunctionUrlServer {
    /// Serves `handler` on `127.0.0.1:port` (0 = any free port).
    pub async fn start(handler: Arc<dyn HttpHandler>, port: u16) -> Result<Self, EventSourceError> {
        Self::start_with(
            handler,
            FunctionUrlOptions {
                port,
                ..FunctionUrlOptions::default()
            },
        )
        .await
    }

    pub async fn start_with(
        handler: Arc<dyn HttpHandler>,
        options: FunctionUrlOptions,
    ) -> Result<Self, EventSourceError> {
        let port = options.port;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|source| EventSourceError::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EventSourceError::Bind { port, source })?;
        let shutdown = options
            .shutdown
            .as_ref()
            .map_or_else(ShutdownToken::new, ShutdownToken::child);
        let counters = Arc::new(Counters::default());
        let state = Arc::new(UrlState {
            handler,
            counters: counters.clone(),
            timeout: options.timeout,
        });
        let app = axum::Router::new()
            .fallback(serve_function_url)
            .with_state(state)
            // The body limit is enforced in the handler, with Lambda's answer.
            .layer(axum::extract::DefaultBodyLimit::disable());
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "function URL server failed");
            }
        });
        Ok(Self {
            url: format!("http://{addr}/"),
            addr,
            task: Background {
                shutdown,
                task: Some(task),
                what: "function URL server",
            },
            counters,
        })
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops accepting, lets in-flight requests finish.
    pub async fn stop(self) {
        self.task.stop().await;
    }
}

async fn serve_function_url(
    axum::extract::State(state): axum::extract::State<Arc<UrlState>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;

    add(&state.counters.invocations, 1);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await else {
        add(&state.counters.failed_invocations, 1);
        return (
            http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation"),
        )
            .into_response();
    };
    let request = http::Request::from_parts(parts, body);
    let outcome = tokio::time::timeout(
        state.timeout,
        AssertUnwindSafe(state.handler.handle(request)).catch_unwind(),
    )
    .await;
    match outcome {
        Ok(Ok(response)) => {
            if response.status().is_server_error() {
                add(&state.counters.failed_invocations, 1);
            }
            response.into_response()
        }
        // What a function URL answers when the function errors or times out.
        Ok(Err(_panic)) => {
            add(&state.counters.failed_invocations, 1);
            tracing::error!("function URL handler panicked");
            (http::StatusCode::BAD_GATEWAY, "Internal Server Error").into_response()
        }
        Err(_elapsed) => {
            add(&state.counters.failed_invocations, 1);
            tracing::warn!(timeout = ?state.timeout, "function URL handler timed out");
            (http::StatusCode::BAD_GATEWAY, "Internal Server Error").into_response()
        }
    }
}

// ---------------------------------------------------------------- schedules

/// An EventBridge schedule expression (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(5 minutes)`: first run one period after start.
    Rate(Duration),
    /// `cron(min hour dom month dow year)`.
    Cron(Box<Cron>),
    /// `at(2026-01-01T09:00:00)` (ScheduleV2 one-off).
    At(NaiveDateTime),
}

impl std::str::FromStr for Schedule {
    type Err = EventSourceError;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| EventSourceError::Schedule {
            expression: expression.to_owned(),
            reason: reason.to_owned(),
        };
        let expr = expression.trim();
        if let Some(inner) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
            let (value, unit) = inner
                .trim()
                .split_once(char::is_whitespace)
                .ok_or_else(|| fail("expected rate(<value> <unit>)"))?;
            let value: u64 = value
                .parse()
                .map_err(|_| fail("rate value must be a positive integer"))?;
            if value == 0 {
                return Err(fail("rate value must be a positive integer"));
            }
            let unit_secs = match (value, unit.trim()) {
                (1, "minute") | (2.., "minutes") => 60,
                (1, "hour") | (2.., "hours") => 3600,
                (1, "day") | (2.., "days") => 86_400,
                _ => {
                    return Err(fail(
                        "unit must be minute(s), hour(s) or day(s), singular only for 1",
                    ));
                }
            };
            return Ok(Self::Rate(Duration::from_secs(value * unit_secs)));
        }
        if let Some(inner) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
            return Cron::parse(inner)
                .map(|c| Self::Cron(Box::new(c)))
                .map_err(|r| fail(&r));
        }
        if let Some(inner) = expr.strip_prefix("at(").and_then(|s| s.strip_suffix(')')) {
            return NaiveDateTime::parse_from_str(inner.trim(), "%Y-%m-%dT%H:%M:%S")
                .map(Self::At)
                .map_err(|_| fail("expected at(yyyy-mm-ddThh:mm:ss)"));
        }
        Err(fail("expected rate(...), cron(...) or at(...)"))
    }
}

impl Schedule {
    pub fn parse(expression: &str) -> Result<Self, EventSourceError> {
        expression.parse()
    }

    /// The first firing strictly after `after`, for cron and at; a rate fires
    /// every period from when its scheduler starts.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Rate(period) => Some(after + TimeDelta::from_std(*period).ok()?),
            Self::Cron(cron) => cron.next_after(after),
            Self::At(at) => Some(at.and_utc()).filter(|t| *t > after),
        }
    }
}

/// A parsed EventBridge cron expression. Supports `*`, `?`, values, names,
/// ranges, lists and steps; not `L`, `W` or `#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    /// None = `?` (the day is chosen by day-of-week).
    days_of_month: Option<Vec<bool>>,
    months: Vec<bool>,
    /// 1 = SUN .. 7 = SAT; None = `?`.
    days_of_week: Option<Vec<bool>>,
    /// None = any year.
    years: Option<Vec<bool>>,
}

const MIN_YEAR: i32 = 1970;
const MAX_YEAR: i32 = 2199;

impl Cron {
    fn parse(fields: &str) -> Result<Self, String> {
        let parts: Vec<&str> = fields.split_whitespace().collect();
        let [min, hour, dom, month, dow, year] = parts.as_slice() else {
            return Err(format!(
                "cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {}",
                parts.len()
            ));
        };
        const MONTHS: &[&str] = &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ];
        const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
        let days_of_month = (*dom != "?")
            .then(|| cron_field(dom, 1, 31, &[]))
            .transpose()?;
        let days_of_week = (*dow != "?")
            .then(|| cron_field(dow, 1, 7, DAYS))
            .transpose()?;
        match (&days_of_month, &days_of_week) {
            (None, None) => return Err("only one of day-of-month and day-of-week may be ?".into()),
            (Some(_), Some(_)) => {
                return Err("one of day-of-month and day-of-week must be ?".into());
            }
            _ => {}
        }
        let years = if *year == "*" {
            None
        } else {
            Some(cron_field(year, MIN_YEAR as u32, MAX_YEAR as u32, &[])?)
        };
        Ok(Self {
            minutes: cron_field(min, 0, 59, &[])?,
            hours: cron_field(hour, 0, 23, &[])?,
            days_of_month,
            months: cron_field(month, 1, 12, MONTHS)?,
            days_of_week,
            years,
        })
    }

    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.naive_utc().with_second(0)?.with_nanosecond(0)? + TimeDelta::minutes(1);
        let mut t = start;
        // Each step jumps to the next candidate year, month, day, hour or minute.
        for _ in 0..100_000 {
            if t.year() > MAX_YEAR {
                return None;
            }
            let next_day = |t: NaiveDateTime| t.date().succ_opt().map(|d| d.and_hms_opt(0, 0, 0));
            if !self
                .years
                .as_ref()
                .is_none_or(|y| allowed(y, (t.year() - MIN_YEAR) as usize))
            {
                t = NaiveDate::from_ymd_opt(t.year() + 1, 1, 1)?.and_hms_opt(0, 0, 0)?;
            } else if !allowed(&self.months, t.month0() as usize) {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
            } else if !self.day_matches(t.date()) {
                t = next_day(t)??;
            } else if !allowed(&self.hours, t.hour() as usize) {
                t = match t.date().and_hms_opt(t.hour() + 1, 0, 0) {
                    Some(next) => next,
                    None => next_day(t)??,
                };
            } else if !allowed(&self.minutes, t.minute() as usize) {
                t += TimeDelta::minutes(1);
            } else {
                return Some(t.and_utc());
            }
        }
        None
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        match (&self.days_of_month, &self.days_of_week) {
            (Some(dom), _) => allowed(dom, date.day0() as usize),
            (None, Some(dow)) => allowed(dow, date.weekday().num_days_from_sunday() as usize),
            (None, None) => true,
        }
    }
}

fn allowed(set: &[bool], index: usize) -> bool {
    set.get(index).copied().unwrap_or(false)
}

/// One cron field as a bitmap indexed from `min`.
fn cron_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<Vec<bool>, String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(min + i as u32);
        }
        let v: u32 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a number (L, W and # are not supported locally)"))?;
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is outside {min}-{max}"))
        }
    };
    let mut set = vec![false; (max - min + 1) as usize];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("zero step in {part:?}"));
        }
        let (lo, hi) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/15` means from 5 to the end in steps of 15.
                None if part.contains('/') => (value(r)?, max),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if lo > hi {
            return Err(format!("range {part:?} runs backwards"));
        }
        for v in (lo..=hi).step_by(step as usize) {
            set[(v - min) as usize] = true;
        }
    }
    Ok(set)
}

/// Runs a job on a schedule. Runs never overlap: a slow run delays the next.
pub struct Scheduler {
    task: Background,
    counters: Arc<Counters>,
}

impl Scheduler {
    pub fn start<F, Fut>(
        name: impl Into<String>,
        schedule: Schedule,
        shutdown: &ShutdownToken,
        job: F,
    ) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let name = name.into();
        let shutdown = shutdown.child();
        let counters = Arc::new(Counters::default());
        let (stop, count) = (shutdown.clone(), counters.clone());
        let task = tokio::spawn(async move {
            let started = Utc::now();
            let mut ticks = 0u32;
            loop {
                let now = Utc::now();
                let next = match &schedule {
                    // Rates are anchored at start so run time does not drift them.
                    Schedule::Rate(period) => {
                        ticks = ticks.saturating_add(1);
                        period
                            .checked_mul(ticks)
                            .and_then(|d| TimeDelta::from_std(d).ok())
                            .map(|d| started + d)
                    }
                    other => other.next_after(now),
                };
                let Some(next) = next else {
                    tracing::debug!(schedule = %name, "no further runs");
                    break;
                };
                let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => break,
                }
                add(&count.invocations, 1);
                match AssertUnwindSafe(job()).catch_unwind().await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        add(&count.failed_invocations, 1);
                        tracing::warn!(schedule = %name, error = %e, "scheduled run failed");
                    }
                    Err(_panic) => {
                        add(&count.failed_invocations, 1);
                        tracing::error!(schedule = %name, "scheduled run panicked");
                    }
                }
                if stop.is_cancelled() {
                    break;
                }
            }
        });
        Self {
            task: Background {
                shutdown,
                task: Some(task),
                what: "scheduler",
            },
            counters,
        }
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops after the current run (if any) finishes.
    pub async fn stop(self) {
        self.task.stop().await;
    }
}

/// A spawned task that ends when its token is cancelled: by `stop`, or on drop.
struct Background {
    shutdown: ShutdownToken,
    task: Option<JoinHandle<()>>,
    what: &'static str,
}

impl Background {
    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, task = self.what, "background task failed");
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moto::MotoServer;
    use crate::provision::{Overrides, provision};
    use crate::repo::repo_root;
    use crate::template::Template;
    use aws_lambda_events::event::sqs::BatchItemFailure;
    use aws_sdk_sqs::types::MessageAttributeValue;
    use std::sync::Mutex;

    /// Polls `check` until it holds or `secs` pass.
    async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Records every batch; fails bodies starting with "fail" (as batch items)
    /// and errors the whole invocation for bodies starting with "crash".
    #[derive(Default)]
    struct Recorder {
        batches: Mutex<Vec<Vec<SqsMessage>>>,
    }

    impl Recorder {
        fn bodies(&self) -> Vec<String> {
            self.batches
                .lock()
                .unwrap()
                .iter()
                .flatten()
                .filter_map(|m| m.body.clone())
                .collect()
        }
    }

    #[async_trait]
    impl SqsHandler for Recorder {
        async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
            self.batches.lock().unwrap().push(event.records.clone());
            if event
                .records
                .iter()
                .any(|r| r.body.as_deref().is_some_and(|b| b.starts_with("crash")))
            {
                return Err("crash requested".into());
            }
            let mut response = SqsBatchResponse::default();
            for r in &event.records {
                if r.body.as_deref().is_some_and(|b| b.starts_with("fail")) {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = r.message_id.clone().unwrap_or_default();
                    response.batch_item_failures.push(failure);
                }
            }
            Ok(response)
        }
    }

    struct Stack {
        _moto: MotoServer,
        sqs: aws_sdk_sqs::Client,
        deployed: Deployed,
    }

    /// The repo template in moto with a 2 s visibility timeout (longer than
    /// the 1 s batching window, as Lambda requires) and maxReceiveCount 2.
    async fn stack(stage: &str) -> Stack {
        let moto = MotoServer::start(&repo_root().unwrap()).await.unwrap();
        let config = moto.sdk_config();
        let overrides = Overrides::default()
            .parameter("Stage", stage)
            .parameter("CanvasJwtIssuer", "https://canvas.test")
            .queue_attribute("CanvasLiveEventsQueue", "VisibilityTimeout", "2")
            .queue_attribute("ChangesQueue", "VisibilityTimeout", "2")
            .max_receive_count("CanvasLiveEventsQueue", 2)
            .max_receive_count("ChangesQueue", 2);
        let deployed = provision(&Template::load_repo().unwrap(), &config, &overrides)
            .await
            .unwrap();
        Stack {
            sqs: aws_sdk_sqs::Client::new(&config),
            _moto: moto,
            deployed,
        }
    }

    async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let n = |k| attrs[&k].parse::<u64>().unwrap();
        (
            n(QueueAttributeName::ApproximateNumberOfMessages),
            n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    async fn dlq_bodies(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        out.messages()
            .iter()
            .filter_map(|m| m.body.clone())
            .collect()
    }

    #[tokio::test]
    async fn sqs_poller_batches_deletes_redelivers_and_redrives() {
        let s = stack("poll").await;
        let function = s.deployed.function("IngestSqsFunction").unwrap();
        let config = SqsPollerConfig {
            pollers: 1,
            ..SqsPollerConfig::for_event_source(&s.deployed, function, &function.sqs_events[0])
                .unwrap()
        };
        assert_eq!(config.batch_size, 10);
        assert_eq!(config.batching_window, Duration::from_secs(1));
        assert!(config.report_batch_item_failures);
        let queue = config.queue_url.clone();

        for body in ["ok-1", "ok-2", "fail-1", "ok-3"] {
            s.sqs
                .send_message()
                .queue_url(&queue)
                .message_body(body)
                .message_attributes(
                    "event_name",
                    MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value("course_updated")
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        }

        let recorder = Arc::new(Recorder::default());
        let shutdown = ShutdownToken::new();
        let poller = SqsPoller::start(s.sqs.clone(), config.clone(), recorder.clone(), &shutdown)
            .await
            .unwrap();
        let counters = poller.counters();

        // The failing message is delivered twice (maxReceiveCount 2), then
        // SQS moves it to the DLQ on the next receive.
        let dlq = s
            .deployed
            .queue_url("CanvasLiveEventsDLQ")
            .unwrap()
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(20);
        let dead = loop {
            let dead = dlq_bodies(&s.sqs, &dlq).await;
            if !dead.is_empty() || Instant::now() > deadline {
                break dead;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(dead, ["fail-1"]);
        poller.stop().await;

        // All four arrived in the first batch (within the 1 s window), with
        // Lambda's record shape.
        let batches = recorder.batches.lock().unwrap().clone();
        let first = &batches[0];
        assert_eq!(first.len(), 4, "{batches:?}");
        let r = &first[0];
        assert_eq!(r.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(
            r.event_source_arn.as_deref(),
            s.deployed.queue_arn("CanvasLiveEventsQueue")
        );
        assert_eq!(r.aws_region.as_deref(), Some("us-east-1"));
        assert!(r.message_id.is_some() && r.receipt_handle.is_some() && r.md5_of_body.is_some());
        assert_eq!(
            r.attributes
                .get("ApproximateReceiveCount")
                .map(String::as_str),
            Some("1")
        );
        assert!(r.attributes.contains_key("SentTimestamp"));
        let attr = &r.message_attributes["event_name"];
        assert_eq!(attr.string_value.as_deref(), Some("course_updated"));
        assert_eq!(attr.data_type.as_deref(), Some("String"));

        // Successes once each; the failure twice (receive counts 1, 2).
        let mut bodies = recorder.bodies();
        bodies.sort();
        assert_eq!(bodies, ["fail-1", "fail-1", "ok-1", "ok-2", "ok-3"]);
        let second = batches
            .iter()
            .flatten()
            .filter(|m| m.body.as_deref() == Some("fail-1"))
            .nth(1)
            .unwrap();
        assert_eq!(second.attributes["ApproximateReceiveCount"], "2");

        let c = counters.snapshot();
        assert_eq!(c.invocations, 2);
        assert_eq!(c.messages_deleted, 3);
        assert_eq!(c.messages_failed, 2);
        assert_eq!(c.batch_item_failures, 2);
        assert_eq!(c.messages_redriven, 1);
        assert_eq!(c.failed_invocations, 0);
        assert_eq!(queue_depth(&s.sqs, &queue).await, (0, 0));
    }

    #[tokio::test]
    async fn whole_batch_failure_returns_every_message() {
        let s = stack("crash").await;
        let queue = s
            .deployed
            .queue_url("CanvasLiveEventsQueue")
            .unwrap()
            .to_owned();
        let arn = s
            .deployed
            .queue_arn("CanvasLiveEventsQueue")
            .unwrap()
            .to_owned();
        for body in ["crash-1", "ok-1"] {
            s.sqs
                .send_message()
                .queue_url(&queue)
                .message_body(body)
                .send()
                .await
                .unwrap();
        }
        let mut config = SqsPollerConfig::new("crashy", &queue, &arn);
        config.pollers = 1;
        config.batching_window = Duration::from_secs(1);
        let recorder = Arc::new(Recorder::default());
        let poller = SqsPoller::start(
            s.sqs.clone(),
            config,
            recorder.clone(),
            &ShutdownToken::new(),
        )
        .await
        .unwrap();
        let counters = poller.counters();
        eventually(20, "both deliveries", || {
            counters.snapshot().invocations >= 2
        })
        .await;
        poller.stop().await;

        // Err fails the batch: ok-1 came back together with crash-1.
        let batches = recorder.batches.lock().unwrap().clone();
        for batch in &batches[..2] {
            let mut bodies: Vec<_> = batch.iter().filter_map(|m| m.body.clone()).collect();
            bodies.sort();
            assert_eq!(bodies, ["crash-1", "ok-1"]);
        }
        let c = counters.snapshot();
        assert_eq!(c.failed_invocations, c.invocations);
        assert_eq!(c.messages_deleted, 0);
        assert_eq!(c.messages_redriven, 2);
        let dlq = s
            .deployed
            .queue_url("CanvasLiveEventsDLQ")
            .unwrap()
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut dead = Vec::new();
        while dead.len() < 2 && Instant::now() < deadline {
            // The redrive happens on the next receive after the visibility timeout.
            tokio::time::sleep(Duration::from_millis(2100)).await;
            let _ = s
                .sqs
                .receive_message()
                .queue_url(&queue)
                .send()
                .await
                .unwrap();
            dead.extend(dlq_bodies(&s.sqs, &dlq).await);
        }
        dead.sort();
        assert_eq!(dead, ["crash-1", "ok-1"]);
    }

    #[tokio::test]
    async fn fifo_failure_holds_back_the_rest_of_its_group() {
        let s = stack("fifo").await;
        let queue = s.deployed.queue_url("ChangesQueue").unwrap().to_owned();
        let arn = s.deployed.queue_arn("ChangesQueue").unwrap().to_owned();
        for (group, body) in [
            ("a", "a1"),
            ("a", "fail-a2"),
            ("a", "a3"),
            ("b", "b1"),
            ("b", "b2"),
        ] {
            s.sqs
                .send_message()
                .queue_url(&queue)
                .message_group_id(group)
                .message_deduplication_id(body)
                .message_body(body)
                .send()
                .await
                .unwrap();
        }
        let mut config = SqsPollerConfig::new("processor", &queue, &arn);
        config.pollers = 1;
        config.batching_window = Duration::from_secs(1);
        config.report_batch_item_failures = true;
        let recorder = Arc::new(Recorder::default());
        let poller = SqsPoller::start(
            s.sqs.clone(),
            config,
            recorder.clone(),
            &ShutdownToken::new(),
        )
        .await
        .unwrap();
        let counters = poller.counters();
        eventually(20, "a2 redelivered", || {
            recorder.bodies().iter().filter(|b| *b == "fail-a2").count() >= 2
        })
        .await;
        poller.stop().await;

        let batches = recorder.batches.lock().unwrap().clone();
        let first = &batches[0];
        let group_of = |m: &SqsMessage| m.attributes.get("MessageGroupId").cloned();
        assert_eq!(first.len(), 5, "{batches:?}");
        assert_eq!(group_of(&first[0]).as_deref(), Some("a"));
        assert!(first[0].attributes.contains_key("MessageDeduplicationId"));
        assert!(first[0].attributes.contains_key("SequenceNumber"));
        // a3 was reported fine but must come back after a2: group order holds.
        let later: Vec<String> = batches[1..]
            .iter()
            .flatten()
            .filter_map(|m| m.body.clone())
            .collect();
        let a2 = later.iter().position(|b| b == "fail-a2").unwrap();
        let a3 = later.iter().position(|b| b == "a3").unwrap();
        assert!(a2 < a3, "{later:?}");
        assert!(
            !later.iter().any(|b| b.starts_with('b') || b == "a1"),
            "{later:?}"
        );
        assert!(counters.snapshot().messages_failed >= 2);
    }

    #[tokio::test]
    async fn batching_window_and_batch_size_shape_batches() {
        let s = stack("window").await;
        let queue = s
            .deployed
            .queue_url("CanvasLiveEventsQueue")
            .unwrap()
            .to_owned();
        let arn = s
            .deployed
            .queue_arn("CanvasLiveEventsQueue")
            .unwrap()
            .to_owned();
        for i in 0..25 {
            s.sqs
                .send_message()
                .queue_url(&queue)
                .message_body(format!("m{i}"))
                .send()
                .await
                .unwrap();
        }
        let mut config = SqsPollerConfig::new("big", &queue, &arn);
        config.pollers = 1;
        config.batch_size = 20; // More than one ReceiveMessage can return.
        config.batching_window = Duration::from_secs(1);
        let recorder = Arc::new(Recorder::default());
        let poller = SqsPoller::start(
            s.sqs.clone(),
            config,
            recorder.clone(),
            &ShutdownToken::new(),
        )
        .await
        .unwrap();
        let counters = poller.counters();
        eventually(20, "all deleted", || {
            counters.snapshot().messages_deleted == 25
        })
        .await;
        poller.stop().await;
        let sizes: Vec<usize> = recorder
            .batches
            .lock()
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [20, 5]);
    }

    #[tokio::test]
    async fn shutdown_token_cascades_to_children() {
        let parent = ShutdownToken::new();
        let child = parent.child();
        let grandchild = child.child();
        child.cancel();
        assert!(child.is_cancelled() && grandchild.is_cancelled() && !parent.is_cancelled());
        tokio::time::timeout(Duration::from_secs(1), grandchild.cancelled())
            .await
            .unwrap();

        let other = parent.child();
        let waiter = tokio::spawn({
            let other = other.clone();
            async move { other.cancelled().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        parent.cancel();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    struct Echo;

    #[async_trait]
    impl HttpHandler for Echo {
        async fn handle(&self, req: http::Request<Bytes>) -> http::Response<String> {
            if req.uri().path() == "/panic" {
                panic!("requested");
            }
            if req.uri().path() == "/slow" {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            let body = format!(
                "{} {} {} {}",
                req.method(),
                req.uri(),
                req.headers()
                    .get("x-test")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-"),
                req.body().len()
            );
            http::Response::builder()
                .status(202)
                .header("content-type", "text/plain")
                .body(body)
                .unwrap()
        }
    }

    #[tokio::test]
    async fn function_url_round_trips_and_enforces_limits() {
        let server = FunctionUrlServer::start_with(
            Arc::new(Echo),
            FunctionUrlOptions {
                timeout: Duration::from_millis(300),
                ..FunctionUrlOptions::default()
            },
        )
        .await
        .unwrap();
        let url = server.url().to_owned();
        assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();

        let ok = client
            .post(format!("{url}events?x=1"))
            .header("x-test", "yes")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status().as_u16(), 202);
        assert_eq!(ok.headers()["content-type"], "text/plain");
        assert_eq!(ok.text().await.unwrap(), "POST /events?x=1 yes 5");

        let big = client
            .post(&url)
            .body(vec![b'x'; MAX_REQUEST_BYTES + 1])
            .send()
            .await
            .unwrap();
        assert_eq!(big.status().as_u16(), 413);
        let at_limit = client
            .post(&url)
            .body(vec![b'x'; MAX_REQUEST_BYTES])
            .send()
            .await
            .unwrap();
        assert_eq!(at_limit.status().as_u16(), 202);

        let panicked = client.get(format!("{url}panic")).send().await.unwrap();
        assert_eq!(panicked.status().as_u16(), 502);
        let slow = client.get(format!("{url}slow")).send().await.unwrap();
        assert_eq!(slow.status().as_u16(), 502);

        let c = server.counters().snapshot();
        assert_eq!((c.invocations, c.failed_invocations), (5, 3));
        server.stop().await;
        assert!(
            client.get(&url).send().await.is_err(),
            "server still answers after stop"
        );
    }

    #[test]
    fn schedule_expressions_parse() {
        assert_eq!(
            Schedule::parse("rate(1 minute)").unwrap(),
            Schedule::Rate(Duration::from_secs(60))
        );
        assert_eq!(
            Schedule::parse("rate(5 minutes)").unwrap(),
            Schedule::Rate(Duration::from_secs(300))
        );
        assert_eq!(
            Schedule::parse("rate(2 hours)").unwrap(),
            Schedule::Rate(Duration::from_secs(7200))
        );
        for bad in [
            "rate(1 minutes)",
            "rate(5 minute)",
            "rate(0 days)",
            "every 5m",
            "cron(0 6 * * * *)",
            "cron(0 6 ? * ? *)",
            "cron(0 6 L * ? *)",
            "cron(0 24 * * ? *)",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn cron_next_after() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let next = |expr: &str, from: &str| {
            Schedule::parse(expr)
                .unwrap()
                .next_after(t(from))
                .unwrap()
                .to_rfc3339()
        };
        // Every minute.
        assert_eq!(
            next("cron(* * * * ? *)", "2026-03-01T10:15:30Z"),
            "2026-03-01T10:16:00+00:00"
        );
        // 06:00 daily: strictly after, so 06:00 itself rolls to tomorrow.
        assert_eq!(
            next("cron(0 6 * * ? *)", "2026-03-01T06:00:00Z"),
            "2026-03-02T06:00:00+00:00"
        );
        // Every 15 minutes from 5.
        assert_eq!(
            next("cron(5/15 * * * ? *)", "2026-03-01T10:21:00Z"),
            "2026-03-01T10:35:00+00:00"
        );
        // Weekdays at 09:30 (2026-03-07 is a Saturday).
        assert_eq!(
            next("cron(30 9 ? * MON-FRI *)", "2026-03-06T10:00:00Z"),
            "2026-03-09T09:30:00+00:00"
        );
        // First of the month, month rollover and year end.
        assert_eq!(
            next("cron(0 0 1 * ? *)", "2026-12-15T00:00:00Z"),
            "2027-01-01T00:00:00+00:00"
        );
        // Feb 29 only in leap years.
        assert_eq!(
            next("cron(0 12 29 FEB ? *)", "2026-01-01T00:00:00Z"),
            "2028-02-29T12:00:00+00:00"
        );
        // A year list that has passed never fires.
        assert!(
            Schedule::parse("cron(0 0 1 1 ? 2020)")
                .unwrap()
                .next_after(t("2026-01-01T00:00:00Z"))
                .is_none()
        );
        let at = Schedule::parse("at(2030-01-02T03:04:05)").unwrap();
        assert_eq!(
            at.next_after(t("2026-01-01T00:00:00Z"))
                .unwrap()
                .to_rfc3339(),
            "2030-01-02T03:04:05+00:00"
        );
    }

    #[tokio::test]
    async fn scheduler_runs_at_the_rate_and_stops() {
        let runs = Arc::new(AtomicU64::new(0));
        let count = runs.clone();
        let shutdown = ShutdownToken::new();
        let scheduler = Scheduler::start(
            "tick",
            Schedule::Rate(Duration::from_millis(100)),
            &shutdown,
            move || {
                let count = count.clone();
                async move {
                    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                    if n == 2 {
                        Err("second run fails".into())
                    } else {
                        Ok(())
                    }
                }
            },
        );
        let counters = scheduler.counters();
        eventually(5, "three runs", || runs.load(Ordering::SeqCst) >= 3).await;
        shutdown.cancel();
        scheduler.stop().await;
        let stopped_at = runs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(runs.load(Ordering::SeqCst), stopped_at, "runs after stop");
        let c = counters.snapshot();
        assert_eq!(c.invocations, stopped_at);
        assert_eq!(c.failed_invocations, 1);
    }

    #[test]
    fn lambda_record_shape_serializes_like_lambda() {
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh")
            .body("{}")
            .md5_of_body("99914b932bd37a50b983c5e7c90ae93b")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
            .message_attributes(
                "bin",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(aws_sdk_sqs::primitives::Blob::new(b"hi".to_vec()))
                    .build()
                    .unwrap(),
            )
            .build();
        let event = to_sqs_event(
            &[message],
            "arn:aws:sqs:us-east-1:123456789012:q",
            "us-east-1",
        );
        let json = serde_json::to_value(&event).unwrap();
        let r = &json["Records"][0];
        assert_eq!(r["messageId"], "m-1");
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["eventSourceARN"], "arn:aws:sqs:us-east-1:123456789012:q");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
        assert_eq!(r["messageAttributes"]["bin"]["binaryValue"], "aGk=");
        assert_eq!(r["messageAttributes"]["bin"]["dataType"], "Binary");
        let back: SqsEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}
