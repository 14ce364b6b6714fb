//! Helpers shared by the end-to-end tests: a local stack (moto + the in-process functions)
//! with a simulated Canvas in front of it, readers for the inbox table and the queues, and
//! bounded waits that say what they were waiting for.

pub mod md5;
pub mod on_call;
pub mod pages;
pub mod schemas;

use anyhow::{Context, Result, anyhow, bail, ensure};
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
pub use coursewire_live_events::live_events::corpus::{Corpus, Example};
pub use coursewire_local::campus::{campus_zone, local_day};
use coursewire_local::stack::{LocalStack, StackOptions};
use coursewire_pipeline::handoff::QueuedEvent;
use coursewire_pipeline::inbox::record;
use coursewire_simulators::canvas_live_events::{Emitter, JwksServer, KeyRing};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// `iss` of every token the simulated Canvas signs.
pub const ISSUER: &str = "https://canvas-sim.instructure.com";

/// An SQS message body with its String message attributes.
pub type RawSqsMessage = (String, Vec<(String, String)>);

/// A DynamoDB item.
pub use coursewire_runtime::aws::Item;

/// A stage name unique to this process and call, so every stack gets its own resource names.
pub fn unique_stage(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let slug: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(16)
        .collect();
    format!("t-{slug}-{}-{n}", std::process::id() % 100_000)
}

/// The repository root (the directory holding `template.yaml`).
pub fn repo_root() -> Result<PathBuf> {
    coursewire_local::repo::repo_root().map_err(|e| anyhow!("{e}"))
}

/// A string attribute of an item.
pub fn attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    record::text(item, name)
}

/// Polls `check` every 100 ms until it returns true; fails after `timeout` naming `what`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One message read from `changes.fifo`, with the FIFO system attributes.
#[derive(Debug, Clone)]
pub struct QueuedRecord {
    pub message: QueuedEvent,
    pub group_id: String,
    pub deduplication_id: String,
}

/// A local stack wired to a simulated Canvas: its JWKS server, its signing keys and an
/// emitter pointed at the ingest function URL and the Canvas live-events queue.
pub struct Harness {
    pub stage: String,
    pub stack: LocalStack,
    pub ring: Arc<KeyRing>,
    pub jwks: JwksServer,
    pub emitter: Emitter,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

/// One Canvas catalog row to seed: entity key, state, parent key.
pub type CatalogSeed = (String, serde_json::Value, Option<String>);

impl Harness {
    /// Writes catalog rows (sequence 1) straight into the template's `CatalogTable`, as the
    /// change bus would have built them.
    pub async fn put_catalog_rows(&self, rows: Vec<CatalogSeed>) -> Result<()> {
        let table = self
            .stack
            .table_name("CatalogTable")
            .context("no CatalogTable")?;
        for (key, state, parent) in rows {
            let mut record = coursewire_live_events::catalog::EntityRecord::empty(&key);
            record.sequence = 1;
            record.state = state.as_object().cloned();
            record.parent = parent;
            self.ddb
                .put_item()
                .table_name(table)
                .set_item(Some(coursewire_pipeline::processor::StoredRow::to_item(
                    &record,
                )))
                .send()
                .await?;
        }
        Ok(())
    }

    /// A stack for `test` with `options`; the harness adds the stage and the simulated
    /// Canvas's JWKS URL and issuer to its overrides.
    pub async fn start(test: &str, mut options: StackOptions) -> Result<Self> {
        // RUST_LOG=warn (or finer) shows the functions' logs, for a test being investigated.
        if std::env::var_os("RUST_LOG").is_some() {
            coursewire_runtime::telemetry::init_tracing();
        }
        let started = Instant::now();
        let stage = unique_stage(test);
        let ring = Arc::new(KeyRing::new().context("generating the simulator's signing keys")?);
        let jwks = JwksServer::start(ring.clone())
            .await
            .context("starting the JWKS server")?;
        options.overrides = options
            .overrides
            .parameter("Stage", stage.as_str())
            .parameter("CanvasJwksUrl", jwks.url())
            .parameter("CanvasJwtIssuer", ISSUER);
        let stack = LocalStack::start(options)
            .await
            .with_context(|| format!("starting the local stack for stage {stage}"))?;
        let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
        let sqs = aws_sdk_sqs::Client::new(&stack.aws);
        let url = stack
            .function_url("IngestHttpsFunction")
            .context("no function URL for IngestHttpsFunction")?;
        let queue = stack
            .queue_url("CanvasLiveEventsQueue")
            .context("no CanvasLiveEventsQueue")?;
        let emitter = Emitter::new(ring.clone(), ISSUER)?
            .with_https(url)
            .with_sqs(sqs.clone(), queue);
        eprintln!(
            "[{stage}] local stack up in {:.1?} (moto at {})",
            started.elapsed(),
            stack.moto_endpoint()
        );
        Ok(Self {
            stage,
            stack,
            ring,
            jwks,
            emitter,
            ddb,
            sqs,
        })
    }

    pub fn inbox_table(&self) -> Result<&str> {
        self.stack.table_name("InboxTable").context("no InboxTable")
    }

    pub fn queue(&self, logical_id: &str) -> Result<&str> {
        self.stack
            .queue_url(logical_id)
            .with_context(|| format!("no queue {logical_id}"))
    }

    /// Every item of the inbox table (consistent scan, all pages).
    pub async fn scan_inbox(&self) -> Result<Vec<Item>> {
        scan_table(&self.ddb, self.inbox_table()?).await
    }

    /// `event#` items.
    pub async fn inbox_events(&self) -> Result<Vec<Item>> {
        Ok(self
            .scan_inbox()
            .await?
            .into_iter()
            .filter(record::is_event)
            .collect())
    }

    /// `reject#` items.
    pub async fn inbox_rejects(&self) -> Result<Vec<Item>> {
        Ok(self
            .scan_inbox()
            .await?
            .into_iter()
            .filter(record::is_reject)
            .collect())
    }

    /// Waits until the Canvas live-events queue is empty (nothing visible, nothing in flight).
    pub async fn drain_ingest(&self, timeout: Duration) -> Result<()> {
        let drained = self.stack.drain("CanvasLiveEventsQueue", timeout).await?;
        if !drained {
            let depth = self.stack.queue_depth("CanvasLiveEventsQueue").await?;
            bail!(
                "CanvasLiveEventsQueue not drained after {timeout:?}: {} visible, {} in flight; counters {:?}",
                depth.visible,
                depth.in_flight,
                self.stack.counters()
            );
        }
        Ok(())
    }

    /// Sum of a metric the functions emitted, over the sets matching `dims`.
    pub fn metric(&self, name: &str, dims: &[(&str, &str)]) -> f64 {
        // `+ 0.0` turns the empty sum's -0.0 into 0.
        self.stack.metrics.sum(name, dims) + 0.0
    }

    /// Messages the ingest-sqs poller received so far (SQS is at-least-once: moto, like SQS,
    /// occasionally hands one message to two concurrent receivers).
    pub fn sqs_received(&self) -> u64 {
        self.stack
            .counters()
            .iter()
            .filter(|(name, _)| name.starts_with("IngestSqsFunction/"))
            .map(|(_, c)| c.messages_received)
            .sum()
    }

    /// Reads and deletes every message on `changes.fifo`.
    pub async fn take_queued(&self) -> Result<Vec<QueuedRecord>> {
        take_queued(&self.sqs, self.queue("ChangesQueue")?).await
    }

    /// Sends raw SQS messages in one `SendMessageBatch` (at most 10), each with String attributes.
    pub async fn send_sqs_batch(&self, messages: &[RawSqsMessage]) -> Result<()> {
        send_sqs_batch(&self.sqs, self.queue("CanvasLiveEventsQueue")?, messages).await
    }

    pub async fn stop(self) {
        self.stack.stop().await;
        self.jwks.stop().await;
    }
}

pub async fn scan_table(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = ddb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .with_context(|| format!("scanning {table}"))?;
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(items),
        }
    }
}

pub async fn send_sqs_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[RawSqsMessage],
) -> Result<()> {
    ensure!(
        messages.len() <= 10,
        "SendMessageBatch takes at most 10 messages, got {}",
        messages.len()
    );
    let mut entries = Vec::with_capacity(messages.len());
    for (i, (body, attributes)) in messages.iter().enumerate() {
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(format!("m{i}"))
            .message_body(body);
        for (name, value) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()?;
            entry = entry.message_attributes(name, value);
        }
        entries.push(entry.build()?);
    }
    let out = sqs
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "SendMessageBatch to {queue_url}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?;
    ensure!(
        out.failed().is_empty(),
        "SendMessageBatch entries failed: {:?}",
        out.failed()
    );
    Ok(())
}

/// Receives and deletes every message on a FIFO queue of queued events. Messages are deleted
/// as they are read because a FIFO queue holds back the rest of a message group while one of
/// its messages is in flight.
pub async fn take_queued(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<Vec<QueuedRecord>> {
    let mut records = Vec::new();
    let mut empty_polls = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while empty_polls < 2 {
        ensure!(
            Instant::now() < deadline,
            "still receiving from {queue_url} after 120 s ({} messages so far)",
            records.len()
        );
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .visibility_timeout(60)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::MessageDeduplicationId)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "ReceiveMessage from {queue_url}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            empty_polls += 1;
            continue;
        }
        empty_polls = 0;
        for message in messages {
            let body = message.body().unwrap_or_default();
            let change: QueuedEvent = serde_json::from_str(body)
                .with_context(|| format!("changes.fifo body is not a QueuedEvent: {body}"))?;
            let system = |name: MessageSystemAttributeName| {
                message
                    .attributes()
                    .and_then(|a| a.get(&name))
                    .cloned()
                    .unwrap_or_default()
            };
            records.push(QueuedRecord {
                message: change,
                group_id: system(MessageSystemAttributeName::MessageGroupId),
                deduplication_id: system(MessageSystemAttributeName::MessageDeduplicationId),
            });
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow!(
                            "DeleteMessage on {queue_url}: {}",
                            aws_sdk_sqs::error::DisplayErrorContext(e)
                        )
                    })?;
            }
        }
    }
    Ok(records)
}

/// Every example payload of the conformance corpus (both formats), announcing which corpus
/// it is: Instructure's examples where present, else the project's fixtures.
pub fn load_examples() -> Result<(Corpus, Vec<Example>)> {
    let corpus = Corpus::locate()?;
    eprintln!("live-events corpus: {}", corpus.describe());
    let examples = corpus.all_examples()?;
    Ok((corpus, examples))
}
