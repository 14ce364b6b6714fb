//! SQS event-source mappings: batches, partial batch failures, visibility timeout, FIFO
//! group order, redrive.

use super::*;

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
