//! ingest-bench: the pipeline benchmark on the local stack (moto + the real functions
//! in-process). It measures ingest (accepted events/s, receiver latency) and, for the same
//! events, the whole change-event path: emit → ingest → inbox → changes.fifo → processor →
//! catalog + EventBridge → the example subscriber's queue.
//!
//! - `https` (default): pre-signed Canvas JWTs POSTed to the ingest-https function URL by
//!   `--concurrency` clients, as fast as possible (closed loop) or at a fixed `--rate`
//!   (open loop: latency counts from the scheduled send time, so a slow receiver cannot hide
//!   behind a client that waits for it). Latency is send → 200 in an HdrHistogram.
//! - `sqs`: raw events queued on the Canvas live-events queue first (not timed), released at
//!   one instant, and drained by the in-process ingest-sqs pollers; throughput is events /
//!   drain time, latency is the handler's own `BatchLatency` per batch.
//!
//! Either way every timed event's content hash is computed before the clock starts and its
//! emission instant recorded; the subscriber's arrival time of that hash's change event gives
//! the end-to-end latency. The functions' AWS calls go through the fault proxy, which counts
//! them per operation (a passthrough plan) or, with `--faults`, injects a seeded fault mix.
//! The run fails unless every event sent arrived at the subscriber under exactly one change
//! event id, in per-entity sequence, with every DLQ empty. It prints a compact result block
//! for BENCHMARKS.md.

use anyhow::{Context, Result, anyhow, bail, ensure};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use coursewire_benches::report::{command_line, git_commit, machine, percentiles};
use coursewire_live_events::live_events::{self, DeliveryHints};
use coursewire_local::fault_proxy::{FaultPlan, FaultStats, OperationStats};
use coursewire_local::provision::Overrides;
use coursewire_local::stack::{LocalStack, SimulatedCanvas, StackOptions};
use coursewire_local::subscriber::{Subscriber, SubscriberReport};
use coursewire_simulators::canvas_live_events::{
    CANVAS_HTTP_TIMEOUT, Emission, Emitter, Format, JWT_LIFETIME_SECS, KeyRing, Scenario,
    ScenarioConfig,
};
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// The issuer the simulated Canvas signs with (the stack is configured to expect it).
const ISSUER: &str = "https://canvas.bench.coursewire";
const INGEST_URL_FUNCTION: &str = "IngestHttpsFunction";
const LIVE_EVENTS_QUEUE: &str = "CanvasLiveEventsQueue";
const LIVE_EVENTS_DLQ: &str = "CanvasLiveEventsDLQ";
const CHANGES_QUEUE: &str = "ChangesQueue";
/// Every dead-letter queue of the pipeline: all must stay empty.
const DLQS: [&str; 3] = [LIVE_EVENTS_DLQ, "ChangesDLQ", "ExampleSubscriberDLQ"];
/// The template's example subscriber: every change event arrives there.
const SUBSCRIBER_QUEUE: &str = "ExampleSubscriberQueue";
/// Receivers the subscriber runs (each holds at most 10 messages at a time).
const SUBSCRIBER_RECEIVERS: usize = 4;
/// `Function/Event` key of the ingest-sqs poller in `LocalStack::counters`.
const SQS_EVENT_SOURCE: &str = "IngestSqsFunction/CanvasLiveEvents";
/// SendMessageBatch takes at most 10 entries.
const SQS_BATCH: usize = 10;
/// SQS caps DelaySeconds at 15 minutes.
const SQS_MAX_DELAY_SECS: u64 = 900;
/// Concurrent SendMessageBatch calls while filling the queue.
const SQS_FILL_CONCURRENCY: usize = 4;
/// HdrHistogram range: 1 µs to 1 hour, 3 significant digits (soak latencies can be minutes).
const HIST_MAX_US: u64 = 3_600_000_000;
/// A pre-signed token older than this at send time is signed again: Canvas tokens live 300 s
/// (plus the receiver's 60 s leeway), and a retry may still need it a while later.
const RESIGN_AFTER_SECS: i64 = JWT_LIFETIME_SECS - 60;
/// Failed deliveries (5xx, timeouts) are retried like Canvas does, up to this many times per
/// event...
const MAX_RETRIES: u32 = 10;
/// ...waiting for the answer's Retry-After (else 1 s), but no longer than this.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
/// After the last change event arrived: time for late same-id copies (lost PutEvents
/// responses re-publish) to show up before the subscriber is stopped.
const SETTLE: Duration = Duration::from_secs(2);
/// DynamoDB operations that read, and those that write.
const DYNAMODB_READS: [&str; 5] = [
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "TransactGetItems",
];
const DYNAMODB_WRITES: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];
/// Items one TransactWriteItems writes in this design: the catalog row and the outbox record
/// (on the event's inbox item).
const TRANSACT_ITEMS: u64 = 2;
const SQS_OPERATIONS: [&str; 9] = [
    "SendMessage",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
    "GetQueueAttributes",
    "GetQueueUrl",
];
const EVENTBRIDGE_OPERATIONS: [&str; 1] = ["PutEvents"];
/// The design's budget of DynamoDB item writes per event.
const WRITE_TARGET: f64 = 4.0;

#[derive(Parser, Debug)]
#[command(
    name = "ingest-bench",
    about = "Benchmark the Canvas Live Events pipeline on the local stack: ingest throughput and \
             latency, end-to-end propagation latency to a subscriber, and AWS requests per event.",
    long_about = "Benchmark the Canvas Live Events pipeline on the local stack (moto for AWS, \
                  installed into .venv on first use; the real functions in-process with Lambda's \
                  event-source semantics; a simulated Canvas JWKS). Nothing leaves this machine.\n\n\
                  Realistic events are generated from seeded course-term scenarios and, for \
                  HTTPS, signed before the clock starts, so the simulator's RSA signing is not \
                  measured. A warm-up (connections, JWKS cache, tables) runs first, is waited for \
                  at the subscriber, and is not counted.\n\n\
                  Modes:\n  \
                  https  POST signed JWTs to the ingest-https function URL; latency is send → \
                  200 per request.\n  \
                  sqs    queue raw events on the live-events queue first (not timed), release \
                  them at one instant (per-message DelaySeconds) and time how long the \
                  ingest-sqs pollers take to drain them, in waves of --wave events; latency is \
                  the handler's BatchLatency per batch of 10.\n\n\
                  Pipeline figures (both modes): the bench subscribes to the change-event bus \
                  (the template's example subscriber queue) and reports, for the timed events, \
                  emit → arrival at the subscriber (https: from the POST; sqs: from the wave's \
                  release), the processor's own PropagationLatency (received → published), and \
                  the functions' DynamoDB, SQS and EventBridge requests per event, counted by a \
                  proxy in front of moto. A rate is sustainable when the backlog (sent, not yet \
                  arrived) stays small and the drain after the last send is short.\n\n\
                  The run fails unless every event sent (warm-up included) arrived at the \
                  subscriber under exactly one change event id (same-id copies are allowed), \
                  per-entity sequence numbers run 1, 2, 3... without gaps, and every DLQ is \
                  empty.\n\n\
                  --faults turns the run into a soak: a seeded fault plan throttles and fails \
                  DynamoDB calls, loses responses after each step (inbox put, enqueue, commit, \
                  publish, published mark) and partially fails PutEvents; the queues get a short \
                  visibility timeout and a high receive count so retries come back quickly. The \
                  same checks must pass; faults injected are reported per operation.\n\n\
                  The figures measure the local stack, whose moto server is Python bound to one \
                  core: use them to compare changes, not as AWS capacity. Logs are quiet \
                  (warnings only, errors only with --faults; set INGEST_BENCH_LOG=info for \
                  more). The result block on \
                  stdout is meant for BENCHMARKS.md; build with --release.",
    after_help = "Examples:\n  \
                  cargo run --release -p coursewire-benches --bin ingest-bench\n  \
                  cargo run --release -p coursewire-benches --bin ingest-bench -- --rate 10 --events 2000\n  \
                  cargo run --release -p coursewire-benches --bin ingest-bench -- --mode sqs\n  \
                  cargo run --release -p coursewire-benches --bin ingest-bench -- --faults --events 10000 \
                  --rate 10 --timeout 1800"
)]
struct Args {
    /// Delivery path to measure.
    #[arg(long, value_enum, default_value_t = Mode::Https)]
    mode: Mode,
    /// Events to deliver in the timed run (each one distinct, so each must be accepted).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// https: concurrent clients (maximum requests in flight).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,
    /// https: send at this fixed rate in events/s (open loop) instead of as fast as possible.
    /// Latency then counts from each request's scheduled time, so queueing shows up in it.
    #[arg(long, value_name = "EVENTS_PER_SEC")]
    rate: Option<f64>,
    /// In-process SQS pollers per event source (each runs one batch at a time).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pollers: u64,
    /// Untimed warm-up events delivered first through the same path.
    #[arg(long, default_value_t = 200)]
    warmup: u64,
    /// First scenario seed; more seeds (seed+1, ...) are used until there are enough events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Courses per generated scenario.
    #[arg(long, default_value_t = 4)]
    courses: usize,
    /// Students per course in each generated scenario.
    #[arg(long, default_value_t = 40)]
    students: usize,
    /// sqs: events queued and drained per wave (each still several batches per poller).
    /// moto's SQS scans the whole queue for every message it hands out (and its waiting
    /// receivers rescan on every send), so one big backlog costs O(backlog²) in moto and
    /// measures moto, not ingest-sqs: 5000 at once does not finish in 10 minutes. Set it to
    /// --events for a single backlog.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..))]
    wave: u64,
    /// sqs: seconds from the start of queueing a wave to its release (default: estimated from
    /// the warm-up and the previous wave; raise it if the run reports that queueing overran).
    #[arg(long, value_name = "SECS")]
    release_after: Option<u64>,
    /// Give up on the timed run after this many seconds.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout: u64,
    /// Give up waiting for change events at the subscriber once none arrived for this long.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    idle: u64,
    /// https: never have more than this many events sent but not yet arrived at the
    /// subscriber; the sender waits instead. For long soaks, where moto slows down as its
    /// tables grow and an open loop would only measure an ever longer queue. End-to-end
    /// latency still counts from each actual POST.
    #[arg(long, value_name = "EVENTS", value_parser = clap::value_parser!(u64).range(1..))]
    max_in_flight: Option<u64>,
    /// Soak: inject a seeded mix of faults into the functions' AWS calls (DynamoDB throttling
    /// and 5xx, lost responses after every step, EventBridge partial failures).
    #[arg(long)]
    faults: bool,
    /// --faults: seed of the fault plan (the same seed draws the same faults for the same
    /// order of requests).
    #[arg(long, default_value_t = 0xfa017, requires = "faults")]
    fault_seed: u64,
    /// --faults: visibility timeout of the live-events and changes queues, i.e. how soon a
    /// failed message is tried again (the template's 180 s would make a soak take hours).
    #[arg(long, default_value_t = 10, value_name = "SECS", requires = "faults",
          value_parser = clap::value_parser!(u32).range(1..))]
    fault_visibility: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Signed JWTs POSTed to the ingest-https function URL.
    Https,
    /// Raw events drained from the live-events queue by the ingest-sqs pollers.
    Sqs,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Https => "https",
            Mode::Sqs => "sqs",
        }
    }
}

impl Args {
    fn validate(&self) -> Result<()> {
        if let Some(rate) = self.rate {
            ensure!(
                self.mode == Mode::Https,
                "--rate applies to --mode https only"
            );
            ensure!(
                rate.is_finite() && rate > 0.0,
                "--rate must be a positive number of events/s"
            );
        }
        ensure!(
            self.max_in_flight.is_none() || self.mode == Mode::Https,
            "--max-in-flight applies to --mode https only"
        );
        if let Some(secs) = self.release_after {
            ensure!(
                self.mode == Mode::Sqs,
                "--release-after applies to --mode sqs only"
            );
            ensure!(
                (1..=SQS_MAX_DELAY_SECS).contains(&secs),
                "--release-after must be 1..={SQS_MAX_DELAY_SECS} (SQS's DelaySeconds limit)"
            );
        }
        ensure!(
            self.courses > 0 && self.students > 0,
            "--courses and --students must be positive"
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    if let Err(error) = bench().await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

async fn bench() -> Result<()> {
    let args = Args::parse();
    // Under --faults every injected fault logs a warning by design: only errors by default.
    let quiet = if args.faults { "error" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INGEST_BENCH_LOG")
                .unwrap_or_else(|_| quiet.into()),
        )
        .with_writer(std::io::stderr)
        .compact()
        .init();
    args.validate()?;
    if cfg!(debug_assertions) {
        step("warning: debug build; numbers are only meaningful with --release");
    }

    let total = usize::try_from(args.warmup + args.events).context("too many events")?;
    let generated = Instant::now();
    let (events, seeds) = generate(&args, total);
    step(&format!(
        "generated {} distinct events from {} scenario(s) (seeds {}..={}) in {:.1} s",
        events.len(),
        seeds.end() - seeds.start() + 1,
        seeds.start(),
        seeds.end(),
        generated.elapsed().as_secs_f64()
    ));

    // Content hashes before the clock starts: they join what was sent with what arrived.
    let hashes = content_hashes(&events)?;

    let canvas = SimulatedCanvas::start(ISSUER)
        .await
        .context("starting the simulated Canvas")?;
    let ring = canvas.ring.clone();
    step("starting moto and provisioning from template.yaml (first run installs moto into .venv)");
    let mut overrides = canvas.overrides("bench");
    // Always through the proxy: a passthrough plan counts the functions' AWS requests.
    let plan = if args.faults {
        overrides = soak_overrides(overrides, args.fault_visibility);
        // The same mix the bus end-to-end fault test must survive.
        FaultPlan::pipeline_chaos(args.fault_seed)
    } else {
        FaultPlan::passthrough()
    };
    let pollers = usize::try_from(args.pollers).context("--pollers")?;
    let stack = LocalStack::start(StackOptions {
        overrides,
        pollers,
        faults: Some(plan),
        ..StackOptions::default()
    })
    .await
    .context("starting the local stack")?;

    let subscriber = Subscriber::start(&stack, SUBSCRIBER_QUEUE, SUBSCRIBER_RECEIVERS)?;
    let run = async {
        match args.mode {
            Mode::Https => bench_https(&args, &ring, &stack, &subscriber, &events).await,
            Mode::Sqs => bench_sqs(&args, &stack, &subscriber, &events).await,
        }
    };
    let outcome = tokio::select! {
        outcome = run => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    let outcome = match outcome {
        Ok(run) => {
            let finished = tokio::select! {
                finished = finish_pipeline(&args, &stack, subscriber, &hashes, run) => finished,
                _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
            };
            finished
        }
        Err(e) => {
            subscriber.finish().await;
            Err(e)
        }
    };
    step("stopping the stack");
    stack.stop().await;
    canvas.jwks.stop().await;

    let report = outcome?;
    println!("{}", report.render(&args));
    if !report.verified {
        bail!("verification failed: see `verified`, `changes`, `ordering` and `dlq` above");
    }
    Ok(())
}

fn step(text: &str) {
    eprintln!("▸ {text}");
}

/// `total` distinct emissions (no planned duplicates) from consecutive seeds.
fn generate(args: &Args, total: usize) -> (Vec<Emission>, std::ops::RangeInclusive<u64>) {
    let mut events = Vec::with_capacity(total);
    let mut seed = args.seed;
    loop {
        let scenario = Scenario::build(ScenarioConfig {
            seed,
            courses: args.courses,
            students_per_course: args.students,
            burst: true,
            duplicate_ratio: 0.0,
            ..ScenarioConfig::default()
        });
        events.extend(scenario.emissions.into_iter().filter(|e| !e.duplicate));
        if events.len() >= total {
            break;
        }
        seed += 1;
    }
    events.truncate(total);
    (events, args.seed..=seed)
}

/// Signs every event on all cores (RS256 with the current key); `issued_at[i]` is the `iat`
/// Canvas would stamp on event i when it sends it.
fn sign_all(emitter: &Emitter, events: &[Emission], issued_at: &[i64]) -> Result<Vec<Bytes>> {
    ensure!(events.len() == issued_at.len(), "one iat per event");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = events.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = events
            .chunks(chunk)
            .zip(issued_at.chunks(chunk))
            .map(|(part, iats)| {
                scope.spawn(move || {
                    part.iter()
                        .zip(iats)
                        .map(|(e, &iat)| sign(emitter, &e.payload, iat))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut tokens = Vec::with_capacity(events.len());
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| anyhow!("a signing thread panicked"))?;
            tokens.extend(part.context("signing an event")?);
        }
        Ok(tokens)
    })
}

fn sign(emitter: &Emitter, payload: &Value, issued_at: i64) -> Result<Bytes> {
    let claims = emitter.claims(payload, issued_at)?;
    Ok(Bytes::from(emitter.keyring.sign(&claims)))
}

/// Each event's content hash, as ingestion computes it (and the change event carries it).
fn content_hashes(events: &[Emission]) -> Result<Vec<String>> {
    let hashes = events
        .iter()
        .map(|e| {
            live_events::from_value(e.payload.clone(), DeliveryHints::default())
                .map(|event| event.content_hash)
                .with_context(|| format!("parsing a generated {} event", e.event_name))
        })
        .collect::<Result<Vec<_>>>()?;
    let distinct = hashes.iter().collect::<BTreeSet<_>>().len();
    ensure!(
        distinct == hashes.len(),
        "the generated events are not distinct: {} of {} content hashes repeat",
        hashes.len() - distinct,
        hashes.len()
    );
    Ok(hashes)
}

fn progress(len: usize, label: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>8} [{elapsed_precise}] [{bar:40.cyan/blue}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(label);
    bar
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("static histogram bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn accepted(stack: &LocalStack) -> u64 {
    stack.metrics.sum("EventsAccepted", &[]) as u64
}

// ---------------------------------------------------------------- https

/// One event to POST: its pre-signed token with the token's `iat`, and the payload to sign
/// again from if the run fell so far behind that the token is about to expire.
struct Job<'a> {
    token: Bytes,
    issued_at: i64,
    payload: &'a Value,
}

/// What the clients saw.
struct Recorder {
    /// From the scheduled send time (open loop) or the actual send (closed loop) to the 200.
    response: Histogram<u64>,
    /// From the actual send to the answer: the receiver's service time.
    service: Histogram<u64>,
    ok: u64,
    /// Final non-200 answers by status, and transport errors by kind.
    other: BTreeMap<String, u64>,
    /// Failed attempts that were retried, by answer (Canvas retries those).
    retried: BTreeMap<String, u64>,
    /// Per job: when its first POST went out (the event's emission).
    emitted: Vec<Option<DateTime<Utc>>>,
    last_done: Option<Instant>,
}

struct Drive {
    recorder: Recorder,
    started: Instant,
    /// Open loop: the furthest a request left behind its schedule (all clients busy, or
    /// --max-in-flight holding it back).
    max_dispatch_lag: Duration,
    /// Tokens signed again at send time because the run outlived them.
    resigned: u64,
    /// Time the sender spent held back by --max-in-flight.
    gated: Duration,
}

impl Drive {
    fn elapsed(&self) -> Duration {
        self.recorder
            .last_done
            .map_or(Duration::ZERO, |done| done.duration_since(self.started))
    }
}

/// The answer to one POST: status and Retry-After, or the kind of transport error.
type Answer = Result<(u16, Option<Duration>), String>;

async fn post(client: &reqwest::Client, url: &str, token: Bytes) -> Answer {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/jwt")
        .body(token)
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read the body so the connection is reused and the answer is complete.
    response.bytes().await.map_err(transport_error)?;
    Ok((status, retry_after))
}

/// POSTs until the answer is final: a 5xx or a transport error (e.g. the function timed out)
/// is sent again after its Retry-After (capped), as Canvas retries failed deliveries. Returns
/// the last answer and the answers that were retried.
async fn deliver(
    client: &reqwest::Client,
    url: &str,
    token: Bytes,
) -> (Result<u16, String>, Vec<String>) {
    let mut retried = Vec::new();
    loop {
        let answer = post(client, url, token.clone()).await;
        let (kind, wait) = match &answer {
            Ok((status, retry_after)) if *status >= 500 => (status.to_string(), *retry_after),
            Err(kind) => (kind.clone(), None),
            Ok(_) => return (answer.map(|(status, _)| status), retried),
        };
        if retried.len() >= MAX_RETRIES as usize {
            return (answer.map(|(status, _)| status), retried);
        }
        retried.push(kind);
        let wait = wait.unwrap_or(Duration::from_secs(1));
        tokio::time::sleep(wait.min(MAX_RETRY_WAIT)).await;
    }
}

fn transport_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect error".into()
    } else {
        "transport error".into()
    }
}

/// How one job went.
struct Outcome {
    index: usize,
    emitted: DateTime<Utc>,
    status: Result<u16, String>,
    retried: Vec<String>,
    response: Duration,
    service: Duration,
}

fn record(recorder: &Mutex<Recorder>, bar: &ProgressBar, outcome: Outcome) {
    let mut r = recorder.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(slot) = r.emitted.get_mut(outcome.index) {
        *slot = Some(outcome.emitted);
    }
    for kind in outcome.retried {
        *r.retried.entry(kind).or_default() += 1;
    }
    match outcome.status {
        Ok(200) => {
            r.ok += 1;
            r.response.saturating_record(micros(outcome.response));
            r.service.saturating_record(micros(outcome.service));
        }
        Ok(status) => *r.other.entry(status.to_string()).or_default() += 1,
        Err(kind) => *r.other.entry(kind).or_default() += 1,
    }
    r.last_done = Some(Instant::now());
    drop(r);
    bar.inc(1);
}

/// End-to-end flow control (--max-in-flight): holds the sender while `window` events are
/// sent but not yet at the subscriber.
struct Gate<'a> {
    subscriber: &'a Subscriber,
    /// Distinct events the subscriber had before the run.
    base: u64,
    window: u64,
}

impl Gate<'_> {
    /// Waits until there is room for one more event after `dispatched`; returns how long.
    async fn room(&self, dispatched: u64) -> Duration {
        let began = Instant::now();
        while dispatched.saturating_sub(self.subscriber.unique_events().saturating_sub(self.base))
            >= self.window
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        began.elapsed()
    }
}

/// The job's token, signed again (with `iat` = now) if it is too old to be accepted by the
/// time it and its retries arrive.
fn fresh_token(emitter: &Emitter, job: &Job, resigned: &AtomicUsize) -> Result<Bytes> {
    if Utc::now().timestamp() - job.issued_at <= RESIGN_AFTER_SECS {
        return Ok(job.token.clone());
    }
    resigned.fetch_add(1, Ordering::Relaxed);
    sign(emitter, job.payload, Utc::now().timestamp())
}

/// Where and how the clients send: the function URL, and the emitter for re-signing.
struct Endpoint<'a> {
    client: &'a reqwest::Client,
    url: &'a str,
    emitter: &'a Emitter,
}

/// Sends every job once: `concurrency` clients in a closed loop, or (with `rate`) on a fixed
/// schedule with at most `concurrency` requests in flight; `gate` may hold either back.
async fn drive(
    endpoint: &Endpoint<'_>,
    jobs: &[Job<'_>],
    concurrency: usize,
    rate: Option<f64>,
    gate: Option<&Gate<'_>>,
    bar: &ProgressBar,
) -> Result<Drive> {
    let recorder = Arc::new(Mutex::new(Recorder {
        response: histogram(),
        service: histogram(),
        ok: 0,
        other: BTreeMap::new(),
        retried: BTreeMap::new(),
        emitted: vec![None; jobs.len()],
        last_done: None,
    }));
    let Endpoint {
        client,
        url,
        emitter,
    } = *endpoint;
    let resigned = AtomicUsize::new(0);
    let gated = Mutex::new(Duration::ZERO);
    let started = Instant::now();
    let mut max_dispatch_lag = Duration::ZERO;
    match rate {
        None => {
            let next = AtomicUsize::new(0);
            let clients = (0..concurrency).map(|_| async {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(index) else {
                        break Ok::<(), anyhow::Error>(());
                    };
                    if let Some(gate) = gate {
                        let waited = gate.room(index as u64).await;
                        *gated.lock().unwrap_or_else(PoisonError::into_inner) += waited;
                    }
                    let token = fresh_token(emitter, job, &resigned)?;
                    let emitted = Utc::now();
                    let began = Instant::now();
                    let (status, retried) = deliver(client, url, token).await;
                    let took = began.elapsed();
                    let outcome = Outcome {
                        index,
                        emitted,
                        status,
                        retried,
                        response: took,
                        service: took,
                    };
                    record(&recorder, bar, outcome);
                }
            });
            futures::future::try_join_all(clients).await?;
        }
        Some(rate) => {
            let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
            let schedule = tokio::time::Instant::from_std(started);
            let mut in_flight = tokio::task::JoinSet::new();
            for (index, job) in jobs.iter().enumerate() {
                let due = schedule + Duration::from_secs_f64(index as f64 / rate);
                tokio::time::sleep_until(due).await;
                if let Some(gate) = gate {
                    let waited = gate.room(index as u64).await;
                    *gated.lock().unwrap_or_else(PoisonError::into_inner) += waited;
                }
                let slot = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .context("the request semaphore closed")?;
                let due = due.into_std();
                max_dispatch_lag = max_dispatch_lag.max(due.elapsed());
                let token = fresh_token(emitter, job, &resigned)?;
                let (client, url) = (client.clone(), url.to_string());
                let (recorder, bar) = (recorder.clone(), bar.clone());
                in_flight.spawn(async move {
                    let emitted = Utc::now();
                    let began = Instant::now();
                    let (status, retried) = deliver(&client, &url, token).await;
                    let service = began.elapsed();
                    drop(slot);
                    let outcome = Outcome {
                        index,
                        emitted,
                        status,
                        retried,
                        response: due.elapsed(),
                        service,
                    };
                    record(&recorder, &bar, outcome);
                });
                // Reap finished requests as we go so the set stays small.
                while in_flight.try_join_next().is_some() {}
            }
            while in_flight.join_next().await.is_some() {}
        }
    }
    let recorder = Arc::try_unwrap(recorder)
        .map_err(|_| anyhow!("a request outlived the run"))?
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    Ok(Drive {
        recorder,
        started,
        max_dispatch_lag,
        resigned: resigned.into_inner() as u64,
        gated: gated.into_inner().unwrap_or_else(PoisonError::into_inner),
    })
}

async fn bench_https(
    args: &Args,
    ring: &Arc<KeyRing>,
    stack: &LocalStack,
    subscriber: &Subscriber,
    events: &[Emission],
) -> Result<Run> {
    let url = stack
        .function_url(INGEST_URL_FUNCTION)
        .context("ingest-https has no function URL")?
        .to_string();
    let concurrency = usize::try_from(args.concurrency).context("--concurrency")?;
    let emitter = Emitter::new(ring.clone(), ISSUER)?;
    let warmup = usize::try_from(args.warmup)?;

    // Pre-signed with the `iat` Canvas would stamp at each planned send (open loop), so a long
    // run does not outlive its tokens; closed loop has no plan, so its tokens say "now".
    let now = Utc::now().timestamp();
    let issued_at: Vec<i64> = (0..events.len())
        .map(|i| match (args.rate, i.checked_sub(warmup)) {
            (Some(rate), Some(timed)) => now + (timed as f64 / rate) as i64,
            _ => now,
        })
        .collect();
    let signing = Instant::now();
    let tokens = sign_all(&emitter, events, &issued_at)?;
    step(&format!(
        "signed {} JWTs in {:.1} s (RS256, not timed)",
        tokens.len(),
        signing.elapsed().as_secs_f64()
    ));
    let jobs: Vec<Job> = tokens
        .iter()
        .zip(&issued_at)
        .zip(events)
        .map(|((token, &issued_at), event)| Job {
            token: token.clone(),
            issued_at,
            payload: &event.payload,
        })
        .collect();
    let (warm, timed) = jobs.split_at(warmup);

    let client = reqwest::Client::builder()
        .timeout(CANVAS_HTTP_TIMEOUT)
        .pool_max_idle_per_host(concurrency)
        .build()
        .context("building the HTTP client")?;
    let endpoint = Endpoint {
        client: &client,
        url: &url,
        emitter: &emitter,
    };

    if !warm.is_empty() {
        step(&format!("warm-up: {} events", warm.len()));
        let warmup = drive(
            &endpoint,
            warm,
            concurrency,
            None,
            None,
            &ProgressBar::hidden(),
        )
        .await?;
        ensure!(
            warmup.recorder.other.is_empty(),
            "warm-up failed, answers other than 200: {:?}",
            warmup.recorder.other
        );
    }
    let baseline = settle_warmup(args, stack, subscriber).await?;

    let gate = args.max_in_flight.map(|window| Gate {
        subscriber,
        base: subscriber.unique_events(),
        window,
    });
    let label = match args.rate {
        Some(rate) => format!(
            "{} events at {rate}/s, {concurrency} clients max",
            timed.len()
        ),
        None => format!(
            "{} events, {concurrency} clients, as fast as possible",
            timed.len()
        ),
    };
    step(&format!("timed run: {label}"));
    let bar = progress(timed.len(), "https");
    let cpu_before = CpuSample::now();
    let run = tokio::time::timeout(
        Duration::from_secs(args.timeout),
        drive(
            &endpoint,
            timed,
            concurrency,
            args.rate,
            gate.as_ref(),
            &bar,
        ),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "the timed run did not finish within --timeout {} s",
            args.timeout
        )
    })??;
    bar.finish_and_clear();

    let elapsed = run.elapsed();
    let r = &run.recorder;
    let accepted = accepted(stack);
    let sent = timed.len() as u64;
    let mut report = Report::new(Mode::Https, sent, args.warmup);
    let mean = |f: fn(&Emission) -> usize| {
        events.iter().map(f).sum::<usize>() as f64 / events.len() as f64
    };
    let token_bytes = tokens.iter().map(Bytes::len).sum::<usize>() as f64 / tokens.len() as f64;
    report.line(
        "payload",
        format!(
            "mean {:.0} B JSON, {:.0} B JWT; {:.0}% Caliper",
            mean(|e| e.payload.to_string().len()),
            token_bytes,
            caliper_share(events)
        ),
    );
    report.line(
        "concurrency",
        format!("{concurrency} clients (HTTP/1.1 keep-alive)"),
    );
    report.line(
        "rate",
        match args.rate {
            None => "max (closed loop)".to_string(),
            Some(rate) => format!(
                "{rate} events/s target (open loop), max dispatch lag {:.1} ms",
                run.max_dispatch_lag.as_secs_f64() * 1e3
            ),
        },
    );
    if let Some(window) = args.max_in_flight {
        report.line(
            "flow control",
            format!(
                "at most {window} events sent and not yet at the subscriber; the sender waited \
                 {:.1} s for room",
                run.gated.as_secs_f64()
            ),
        );
    }
    report.line("pollers", format!("{} per event source", args.pollers));
    report.throughput(accepted, elapsed);
    report.line("cpu", CpuWindow::since(&cpu_before, elapsed).render());
    report.line("latency ms", percentiles(&r.response));
    if args.rate.is_some() {
        report.line(
            "  from",
            "scheduled send → 200 (includes waiting for a free client)",
        );
        report.line("service ms", percentiles(&r.service));
        report.line("  from", "actual send → 200");
    } else {
        report.line("  from", "send → 200, per request");
    }
    let counts = |answers: &BTreeMap<String, u64>| {
        if answers.is_empty() {
            "none".to_string()
        } else {
            answers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    report.line("non-200", format!("{} (final answers)", counts(&r.other)));
    report.line(
        "retried",
        format!(
            "{} (failed attempts sent again, as Canvas does)",
            counts(&r.retried)
        ),
    );
    // A retried delivery whose first attempt was stored counts as a duplicate.
    let retried = args.faults || !r.retried.is_empty();
    report.verify(stack, accepted, sent, retried);
    if run.resigned > 0 {
        report.note(&format!(
            "{} tokens were older than {RESIGN_AFTER_SECS} s at send time (the run fell behind \
             its schedule) and were signed again before sending",
            run.resigned
        ));
    }
    Ok(Run {
        report,
        emitted: r.emitted.clone(),
        emission: "POST sent (first attempt)",
        baseline,
    })
}

fn caliper_share(events: &[Emission]) -> f64 {
    let caliper = events
        .iter()
        .filter(|e| e.format == Format::Caliper)
        .count();
    100.0 * caliper as f64 / events.len().max(1) as f64
}

// ---------------------------------------------------------------- sqs

fn string_attribute(value: &str) -> Result<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .context("building a message attribute")
}

/// One SendMessageBatch of up to 10 events, each delayed `delay_secs`.
async fn send_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    events: &[Emission],
    delay_secs: i32,
) -> Result<()> {
    let mut request = sqs.send_message_batch().queue_url(queue_url);
    for (i, event) in events.iter().enumerate() {
        let entry = SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(event.payload.to_string())
            .delay_seconds(delay_secs)
            .message_attributes("event_name", string_attribute(&event.event_name)?)
            .message_attributes("event_time", string_attribute(&event.event_time)?)
            .build()
            .context("building a batch entry")?;
        request = request.entries(entry);
    }
    let out = request.send().await.map_err(|e| {
        anyhow!(
            "SendMessageBatch: {}",
            aws_sdk_sqs::error::DisplayErrorContext(&e)
        )
    })?;
    ensure!(
        out.failed.is_empty(),
        "SendMessageBatch refused {} entries: {:?}",
        out.failed.len(),
        out.failed.first().map(|f| f.message.clone())
    );
    Ok(())
}

/// Drain statistics summed over the waves.
#[derive(Default)]
struct Drained {
    /// Release → last event of the wave accepted, summed.
    time: Duration,
    /// Release → first event of the wave accepted, per wave.
    first_accept: Vec<Duration>,
    /// Untimed queueing, summed.
    queueing: Duration,
    /// Waiting between the end of queueing and the release, summed.
    idle: Duration,
    /// Events sent after their wave's release (queueing overran).
    late: usize,
    /// Events accepted before their wave's release (queueing overran).
    early: u64,
    cpu: CpuWindow,
}

async fn bench_sqs(
    args: &Args,
    stack: &LocalStack,
    subscriber: &Subscriber,
    events: &[Emission],
) -> Result<Run> {
    let sqs = aws_sdk_sqs::Client::new(&stack.aws);
    let queue = stack
        .queue_url(LIVE_EVENTS_QUEUE)
        .context("no live-events queue")?
        .to_string();
    let (warm, timed) = events.split_at(usize::try_from(args.warmup)?);
    let wave = usize::try_from(args.wave).context("--wave")?;

    // Warm-up through the whole path; its SendMessageBatch time seeds the first release time.
    let mut per_call = Duration::from_millis(10);
    if !warm.is_empty() {
        step(&format!("warm-up: {} events", warm.len()));
        let sending = Instant::now();
        for chunk in warm.chunks(SQS_BATCH) {
            send_batch(&sqs, &queue, chunk, 0).await?;
        }
        per_call = per_call.max(sending.elapsed() / warm.len().div_ceil(SQS_BATCH) as u32);
        let deadline = Instant::now() + Duration::from_secs(120);
        while accepted(stack) < warm.len() as u64 {
            ensure!(
                Instant::now() < deadline,
                "warm-up: only {} of {} events accepted after 120 s",
                accepted(stack),
                warm.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let baseline = settle_warmup(args, stack, subscriber).await?;
    let counters_before = stack
        .counters()
        .get(SQS_EVENT_SOURCE)
        .copied()
        .unwrap_or_default();

    let waves = timed.len().div_ceil(wave);
    step(&format!(
        "{} events in {waves} wave(s) of up to {wave}: each queued (not timed), released at one \
         instant, drained (timed)",
        timed.len()
    ));
    let bar = progress(timed.len(), "sqs");
    let mut drained = Drained::default();
    let mut emitted = Vec::with_capacity(timed.len());
    let mut target = 0u64;
    for part in timed.chunks(wave) {
        let calls = part.len().div_ceil(SQS_BATCH);
        let lead = match args.release_after {
            Some(secs) => Duration::from_secs(secs),
            // Generous: waiting longer costs nothing measured, overrunning spoils the wave.
            None => Duration::from_secs(
                (per_call.mul_f64(calls as f64 * 2.0) + Duration::from_secs(1))
                    .as_secs_f64()
                    .ceil() as u64,
            ),
        };
        ensure!(
            lead <= Duration::from_secs(SQS_MAX_DELAY_SECS),
            "queueing a wave of {} events would need a release {} s away, beyond SQS's 900 s \
             DelaySeconds: lower --wave",
            part.len(),
            lead.as_secs()
        );
        let before = accepted(stack);
        let queued = queue_wave(&sqs, &queue, part, lead).await?;
        drained.queueing += queued.took;
        drained.late += queued.late;
        drained.early += accepted(stack) - before;
        // The next wave's lead follows this wave's real queueing time.
        per_call = queued.took / calls as u32;

        let release = queued.release;
        // Every event of the wave becomes visible at its release: that is its emission.
        emitted.extend(std::iter::repeat_n(
            Some(DateTime::<Utc>::from(queued.release_wall)),
            part.len(),
        ));
        drained.idle += release.saturating_duration_since(Instant::now());
        tokio::time::sleep_until(tokio::time::Instant::from_std(release)).await;
        let cpu = CpuSample::now();
        target += part.len() as u64;
        let deadline = release + Duration::from_secs(args.timeout);
        let mut first = None;
        let mut last_depth_check = Instant::now();
        let done_at = loop {
            let now = Instant::now();
            let done = accepted(stack);
            let settled = done
                + stack.metrics.sum("DuplicatesDropped", &[]) as u64
                + stack.metrics.sum("EventsRejected", &[]) as u64;
            bar.set_position(done);
            if first.is_none() && done > before {
                first = Some(now.saturating_duration_since(release));
            }
            if settled >= target {
                break now;
            }
            // Something was lost or waits for redelivery: stop once the queue is empty.
            if now.duration_since(last_depth_check) >= Duration::from_secs(1) {
                last_depth_check = now;
                if now > release + Duration::from_secs(2)
                    && stack.queue_depth(LIVE_EVENTS_QUEUE).await?.total() == 0
                {
                    break now;
                }
            }
            ensure!(
                now < deadline,
                "only {} of {target} events accepted {} s after the last release (--timeout)",
                done,
                args.timeout
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let took = done_at.saturating_duration_since(release);
        drained.time += took;
        drained.cpu.add(&cpu, took);
        drained.first_accept.extend(first);
    }
    bar.finish_and_clear();

    let sent = timed.len() as u64;
    let accepted = accepted(stack);
    let mut batch_latency = histogram();
    let batches = stack.metrics.values("BatchLatency");
    for ms in &batches {
        batch_latency.saturating_record(((ms * 1e3).round() as u64).max(1));
    }
    let counters = stack
        .counters()
        .get(SQS_EVENT_SOURCE)
        .copied()
        .unwrap_or_default();
    let dlq = stack.queue_depth(LIVE_EVENTS_DLQ).await?.total();

    let mut report = Report::new(Mode::Sqs, sent, args.warmup);
    report.line(
        "payload",
        format!(
            "mean {:.0} B JSON; {:.0}% Caliper",
            events
                .iter()
                .map(|e| e.payload.to_string().len())
                .sum::<usize>() as f64
                / events.len() as f64,
            caliper_share(events)
        ),
    );
    report.line(
        "concurrency",
        format!(
            "{} pollers, batch size {SQS_BATCH} (template), 1 s batching window",
            args.pollers
        ),
    );
    report.line(
        "rate",
        format!(
            "backlog: {waves} wave(s) of up to {wave} events, each queued then released at once"
        ),
    );
    report.throughput(accepted, drained.time);
    report.line("cpu", drained.cpu.render());
    report.line("batch ms", percentiles(&batch_latency));
    report.line(
        "  from",
        format!(
            "handler BatchLatency per invocation ({} batches, mean {:.1} events)",
            batches.len(),
            sent as f64 / batches.len().max(1) as f64
        ),
    );
    let mean_first = drained.first_accept.iter().sum::<Duration>()
        / u32::try_from(drained.first_accept.len().max(1)).unwrap_or(u32::MAX);
    report.line(
        "first ms",
        format!(
            "{:.0} mean from a release to the wave's first accepted event",
            mean_first.as_secs_f64() * 1e3
        ),
    );
    report.line(
        "queueing",
        format!(
            "{:.1} s untimed ({} SendMessageBatch calls, {SQS_FILL_CONCURRENCY} at a time) + \
             {:.1} s waiting for releases",
            drained.queueing.as_secs_f64(),
            timed.len().div_ceil(SQS_BATCH),
            drained.idle.as_secs_f64()
        ),
    );
    let invocations = counters.invocations - counters_before.invocations;
    let failed_items = counters.batch_item_failures - counters_before.batch_item_failures;
    let sqs_errors = counters.sqs_errors - counters_before.sqs_errors;
    report.line(
        "pollers",
        format!(
            "{invocations} invocations, {failed_items} batch item failures, {sqs_errors} SQS \
             errors, DLQ {dlq}"
        ),
    );
    report.verify(stack, accepted, sent, args.faults);
    if drained.late > 0 || drained.early > 0 {
        report.note(&format!(
            "queueing overran a release ({} events sent late, {} accepted before their \
             release): rerun with a larger --release-after",
            drained.late, drained.early
        ));
    }
    Ok(Run {
        report,
        emitted,
        emission: "wave released (DelaySeconds rounding adds up to 1 s)",
        baseline,
    })
}

struct Queued {
    release: Instant,
    release_wall: SystemTime,
    took: Duration,
    late: usize,
}

/// Queues `events` with per-message delays that all end at `now + lead`, so the pollers
/// (which run all along) see nothing until the release and then the whole wave at once.
async fn queue_wave(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    events: &[Emission],
    lead: Duration,
) -> Result<Queued> {
    let release_wall = SystemTime::now() + lead;
    let release = Instant::now() + lead;
    let started = Instant::now();
    let late = AtomicUsize::new(0);
    let results: Vec<Result<()>> = futures::stream::iter(events.chunks(SQS_BATCH))
        .map(|chunk| {
            let late = &late;
            async move {
                let left = release_wall
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .as_secs_f64();
                if left < 0.05 {
                    late.fetch_add(chunk.len(), Ordering::Relaxed);
                }
                let delay = i32::try_from(left.ceil() as u64).unwrap_or(i32::MAX);
                send_batch(sqs, queue, chunk, delay).await
            }
        })
        .buffer_unordered(SQS_FILL_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(Queued {
        release,
        release_wall,
        took: started.elapsed(),
        late: late.into_inner(),
    })
}

// ---------------------------------------------------------------- pipeline

/// What a timed run hands to the pipeline checks.
struct Run {
    report: Report,
    /// Per timed event (in order): when it was emitted.
    emitted: Vec<Option<DateTime<Utc>>>,
    /// What "emitted" means in this mode.
    emission: &'static str,
    /// The proxy's counts when the timed run started.
    baseline: FaultStats,
}

/// Quick retries for the soak: a failed message is back after `visibility` seconds, and
/// never dead-lettered (a DLQ message would fail the run, and faults are meant to heal).
fn soak_overrides(overrides: Overrides, visibility: u32) -> Overrides {
    let visibility = visibility.to_string();
    overrides
        .queue_attribute(LIVE_EVENTS_QUEUE, "VisibilityTimeout", visibility.as_str())
        .queue_attribute(CHANGES_QUEUE, "VisibilityTimeout", visibility.as_str())
        .max_receive_count(LIVE_EVENTS_QUEUE, 100)
        .max_receive_count(CHANGES_QUEUE, 100)
}

fn proxy_stats(stack: &LocalStack) -> FaultStats {
    stack
        .fault_proxy()
        .map(|proxy| proxy.stats())
        .unwrap_or_default()
}

/// Waits until the warm-up's change events have all arrived and changes.fifo is empty, then
/// clears the metrics: the timed run's figures and request counts hold only its own events.
async fn settle_warmup(
    args: &Args,
    stack: &LocalStack,
    subscriber: &Subscriber,
) -> Result<FaultStats> {
    let idle = Duration::from_secs(args.idle);
    if args.warmup > 0 {
        let arrived = subscriber.wait_for(args.warmup, idle).await;
        ensure!(
            arrived >= args.warmup,
            "warm-up: only {arrived} of {} change events reached the subscriber",
            args.warmup
        );
    }
    ensure!(
        stack.drain(CHANGES_QUEUE, idle).await?,
        "warm-up: changes.fifo did not empty within {} s",
        args.idle
    );
    stack.metrics.clear();
    Ok(proxy_stats(stack))
}

/// After the timed run: waits for the change events, stops the subscriber, checks the
/// pipeline and adds the propagation, request and (with --faults) fault figures.
async fn finish_pipeline(
    args: &Args,
    stack: &LocalStack,
    subscriber: Subscriber,
    hashes: &[String],
    run: Run,
) -> Result<Report> {
    let Run {
        mut report,
        emitted,
        emission,
        baseline,
    } = run;
    let expected = hashes.len() as u64;
    let idle = Duration::from_secs(args.idle);
    step(&format!(
        "waiting for {expected} change events at the subscriber (warm-up included)"
    ));
    let waiting = Instant::now();
    subscriber.wait_for(expected, idle).await;
    // The published mark follows PutEvents: an empty changes.fifo means every request of
    // the run (retries included) has been made and counted.
    let drained = stack.drain(CHANGES_QUEUE, idle).await?;
    tokio::time::sleep(SETTLE).await;
    let requests = per_operation(&proxy_stats(stack), &baseline);
    let mut dlqs = Vec::new();
    for dlq in DLQS {
        dlqs.push((dlq, stack.queue_depth(dlq).await?.total()));
    }
    let bus = subscriber.finish().await;
    step(&format!(
        "pipeline settled {:.1} s after the last send",
        waiting.elapsed().as_secs_f64()
    ));

    let warmup = usize::try_from(args.warmup)?;
    let timed = hashes.get(warmup..).unwrap_or_default();
    report.bus(&bus, hashes, drained);
    report.dlqs(&dlqs);
    report.propagation(&bus, timed, &emitted, emission);
    let published = stack.metrics.values("PropagationLatency");
    let mut processor = histogram();
    for ms in &published {
        processor.saturating_record(((ms * 1e3).round() as u64).max(1));
    }
    report.line("processor ms", percentiles(&processor));
    report.line(
        "  from",
        "PropagationLatency: received by ingest → published by the processor (its own metric)",
    );
    report.requests(&requests, timed.len() as u64, args.faults);
    if args.faults {
        report.faults(&requests, args.fault_seed, args.fault_visibility);
    }
    Ok(report)
}

/// Requests (and faults) per operation since `baseline`.
fn per_operation(now: &FaultStats, baseline: &FaultStats) -> BTreeMap<String, OperationStats> {
    now.operations
        .iter()
        .map(|(op, stats)| {
            let before = baseline.operations.get(op).copied().unwrap_or_default();
            let faults = &stats.faults;
            let mut delta = OperationStats {
                requests: stats.requests - before.requests,
                ..OperationStats::default()
            };
            delta.faults.rejected = faults.rejected - before.faults.rejected;
            delta.faults.lost_responses = faults.lost_responses - before.faults.lost_responses;
            delta.faults.partial_put_events =
                faults.partial_put_events - before.faults.partial_put_events;
            delta.faults.failed_entries = faults.failed_entries - before.faults.failed_entries;
            delta.faults.delayed = faults.delayed - before.faults.delayed;
            (op.clone(), delta)
        })
        .filter(|(_, delta)| delta.requests > 0)
        .collect()
}

/// The most events that were emitted but had not arrived yet at any one time.
fn max_backlog(mut emitted: Vec<DateTime<Utc>>, mut arrived: Vec<DateTime<Utc>>) -> u64 {
    emitted.sort();
    arrived.sort();
    let (mut backlog, mut max, mut next_arrival) = (0i64, 0i64, 0usize);
    for at in &emitted {
        while arrived.get(next_arrival).is_some_and(|a| a < at) {
            backlog -= 1;
            next_arrival += 1;
        }
        backlog += 1;
        max = max.max(backlog);
    }
    u64::try_from(max).unwrap_or(0)
}

// ---------------------------------------------------------------- cpu

/// CPU time (user + system) so far of this process (clients, function URL servers, pollers
/// and the functions themselves) and of the moto server it spawned.
struct CpuSample {
    bench: Option<Duration>,
    moto: Option<Duration>,
}

impl CpuSample {
    fn now() -> Self {
        let me = std::process::id();
        let moto = std::fs::read_dir("/proc").ok().and_then(|dir| {
            dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                    let rest = stat.rsplit_once(") ")?.1;
                    let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
                    if ppid != me {
                        return None;
                    }
                    // moto runs as the venv's python with a launcher script, so look at the
                    // command line, not the process name.
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                    String::from_utf8_lossy(&cmdline)
                        .contains("moto_server")
                        .then(|| cpu_time(&stat))?
                })
                .next()
        });
        let bench = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| cpu_time(&stat));
        Self { bench, moto }
    }
}

/// CPU used over one or more timed windows.
struct CpuWindow {
    bench: Option<Duration>,
    moto: Option<Duration>,
    wall: Duration,
}

impl Default for CpuWindow {
    fn default() -> Self {
        Self {
            bench: Some(Duration::ZERO),
            moto: Some(Duration::ZERO),
            wall: Duration::ZERO,
        }
    }
}

impl CpuWindow {
    fn since(start: &CpuSample, wall: Duration) -> Self {
        let mut window = Self::default();
        window.add(start, wall);
        window
    }

    /// Adds the CPU used from `start` until now, over `wall` of timed time.
    fn add(&mut self, start: &CpuSample, wall: Duration) {
        let now = CpuSample::now();
        let delta = |total: Option<Duration>, from: Option<Duration>, to: Option<Duration>| {
            Some(total? + to?.saturating_sub(from?))
        };
        self.bench = delta(self.bench, start.bench, now.bench);
        self.moto = delta(self.moto, start.moto, now.moto);
        self.wall += wall;
    }

    /// `bench process 12.3 s (0.61 cores), moto 20.1 s (0.99 cores) ...`.
    fn render(&self) -> String {
        let part = |name: &str, used: Option<Duration>| match used {
            Some(used) => format!(
                "{name} {:.1} s ({:.2} cores)",
                used.as_secs_f64(),
                used.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
            ),
            None => format!("{name} n/a"),
        };
        format!(
            "{}, {} (user+sys over the timed window)",
            part("bench process", self.bench),
            part("moto", self.moto)
        )
    }
}

/// utime + stime from a `/proc/PID/stat` line (USER_HZ is 100 on Linux).
fn cpu_time(stat: &str) -> Option<Duration> {
    let rest = stat.rsplit_once(") ")?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

// ---------------------------------------------------------------- report

struct Report {
    mode: Mode,
    sent: u64,
    warmup: u64,
    lines: Vec<(String, String)>,
    notes: Vec<String>,
    verified: bool,
}

impl Report {
    fn new(mode: Mode, sent: u64, warmup: u64) -> Self {
        Self {
            mode,
            sent,
            warmup,
            lines: Vec::new(),
            notes: Vec::new(),
            verified: false,
        }
    }

    fn line(&mut self, key: &str, value: impl Into<String>) {
        self.lines.push((key.to_string(), value.into()));
    }

    fn note(&mut self, text: &str) {
        self.notes.push(text.to_string());
    }

    fn throughput(&mut self, accepted: u64, over: Duration) {
        let secs = over.as_secs_f64();
        self.line(
            "throughput",
            format!(
                "{:.1} accepted events/s ({accepted} accepted in {secs:.2} s)",
                accepted as f64 / secs.max(1e-9)
            ),
        );
    }

    /// Ingest's own account: accepted == sent and nothing dropped, rejected or failed on the
    /// way. When deliveries were retried (faults, timeouts) a retry whose first attempt was
    /// stored counts as a duplicate or recovered, so every event sent must be stored in one of
    /// those ways; the subscriber check proves delivery.
    fn verify(&mut self, stack: &LocalStack, accepted: u64, sent: u64, retried: bool) {
        let m = &stack.metrics;
        let duplicates = m.sum("DuplicatesDropped", &[]) as u64;
        let recovered = m.sum("EventsRecovered", &[]) as u64;
        let rejected = m.sum("EventsRejected", &[]) as u64;
        let auth = m.sum("AuthFailures", &[]) as u64;
        let failures = m.sum("IngestFailures", &[]) as u64;
        let summary = format!(
            "duplicates {duplicates}, recovered {recovered}, rejects {rejected}, auth failures \
             {auth}, ingest failures {failures}"
        );
        if retried {
            self.verified = accepted <= sent
                && accepted + recovered + duplicates >= sent
                && rejected == 0
                && auth == 0;
            self.line(
                "verified",
                format!(
                    "{}: accepted {accepted} of {sent} sent, the rest stored by a retried \
                     delivery; {summary} (failed attempts were retried)",
                    if self.verified { "ok" } else { "FAILED" },
                ),
            );
        } else {
            self.verified = accepted == sent;
            self.line(
                "verified",
                format!(
                    "{}: accepted {accepted} {} sent {sent}; {summary}",
                    if self.verified { "ok" } else { "FAILED" },
                    if self.verified { "==" } else { "!=" },
                ),
            );
        }
    }

    /// Every event sent (warm-up included) arrived under exactly one change event id, and
    /// per-entity sequences are 1, 2, 3...
    fn bus(&mut self, bus: &SubscriberReport, sent: &[String], drained: bool) {
        let mut ids_by_hash: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut nameless = 0u64;
        for copy in &bus.copies {
            match (copy.event_hash(), copy.event_id()) {
                (Some(hash), Some(id)) => {
                    ids_by_hash.entry(hash).or_default().insert(id);
                }
                _ => nameless += 1,
            }
        }
        let sent_set: BTreeSet<&str> = sent.iter().map(String::as_str).collect();
        let arrived = sent_set
            .iter()
            .filter(|h| ids_by_hash.contains_key(*h))
            .count();
        let unexpected = ids_by_hash
            .keys()
            .filter(|h| !sent_set.contains(*h))
            .count();
        let split = ids_by_hash.values().filter(|ids| ids.len() > 1).count();
        let ok = arrived == sent_set.len()
            && unexpected == 0
            && split == 0
            && nameless == 0
            && bus.unreadable == 0;
        self.verified &= ok;
        let mut text = format!(
            "{}: {arrived} of {} events (warm-up included) arrived at the subscriber, each under \
             one change event id; {} SQS messages, {} same-id copies",
            if ok { "ok" } else { "FAILED" },
            sent_set.len(),
            bus.messages,
            bus.redeliveries
        );
        if !ok {
            text.push_str(&format!(
                "; {unexpected} arrived that were not sent, {split} under several ids, {} \
                 without hash or id, {} unreadable",
                nameless, bus.unreadable
            ));
        }
        self.line("changes", text);

        let problems = bus.sequence_problems();
        let entities = bus
            .events
            .values()
            .filter_map(|a| a.entity_key())
            .collect::<BTreeSet<_>>()
            .len();
        let late = bus
            .events
            .values()
            .filter(|a| a.detail()["late"] == true)
            .count();
        self.verified &= problems.is_empty();
        self.line(
            "ordering",
            match problems.first() {
                None => format!(
                    "ok: per-entity sequences 1, 2, 3... without gaps or repeats ({entities} \
                     entities, {late} events flagged late)"
                ),
                Some(first) => format!("FAILED: {} problems, first: {first}", problems.len()),
            },
        );
        if !drained {
            self.note("changes.fifo still held messages --idle seconds after the last arrival");
        }
    }

    fn dlqs(&mut self, depths: &[(&str, u64)]) {
        let ok = depths.iter().all(|(_, depth)| *depth == 0);
        self.verified &= ok;
        self.line(
            "dlq",
            format!(
                "{}: {}",
                if ok { "ok" } else { "FAILED" },
                depths
                    .iter()
                    .map(|(name, depth)| format!("{name} {depth}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }

    /// Emit → arrival at the subscriber for the timed events, and whether the pipeline kept up.
    fn propagation(
        &mut self,
        bus: &SubscriberReport,
        timed: &[String],
        emitted: &[Option<DateTime<Utc>>],
        emission: &str,
    ) {
        let by_hash = bus.by_event_hash();
        let mut all = histogram();
        let mut quarters: Vec<Histogram<u64>> = (0..4).map(|_| histogram()).collect();
        let (mut sent_at, mut arrived_at) = (Vec::new(), Vec::new());
        for (i, (hash, emitted)) in timed.iter().zip(emitted).enumerate() {
            let (Some(emitted), Some(arrival)) = (emitted, by_hash.get(hash.as_str())) else {
                continue;
            };
            let us = micros(arrival.latency_since(*emitted));
            all.saturating_record(us);
            if let Some(quarter) = quarters.get_mut(i * 4 / timed.len().max(1)) {
                quarter.saturating_record(us);
            }
            sent_at.push(*emitted);
            arrived_at.push(arrival.arrived_at);
        }
        self.line("e2e ms", percentiles(&all));
        self.line(
            "  from",
            format!("{emission} → its change event received from {SUBSCRIBER_QUEUE}"),
        );
        let ms = |h: &Histogram<u64>| {
            if h.is_empty() {
                "-".to_string()
            } else {
                format!("{:.0}", h.value_at_quantile(0.5) as f64 / 1e3)
            }
        };
        self.line(
            "  p50 by quarter",
            format!(
                "{} ms (timed events in send order; rising means the pipeline fell behind)",
                quarters.iter().map(ms).collect::<Vec<_>>().join(" · ")
            ),
        );
        let first = sent_at.iter().min();
        let last_sent = sent_at.iter().max();
        let last_arrival = arrived_at.iter().max();
        if let (Some(first), Some(last_sent), Some(last_arrival)) = (first, last_sent, last_arrival)
        {
            let span = (*last_arrival - *first).to_std().unwrap_or_default();
            let drain = (*last_arrival - *last_sent).to_std().unwrap_or_default();
            self.line(
                "pipeline",
                format!(
                    "{:.1} events/s first emission → last arrival ({} events in {:.1} s); max \
                     backlog {} events (emitted, not yet arrived); last arrival {:.1} s after \
                     the last emission",
                    sent_at.len() as f64 / span.as_secs_f64().max(1e-9),
                    sent_at.len(),
                    span.as_secs_f64(),
                    max_backlog(sent_at.clone(), arrived_at.clone()),
                    drain.as_secs_f64()
                ),
            );
        }
    }

    /// The functions' AWS requests per timed event, by service and operation.
    fn requests(&mut self, requests: &BTreeMap<String, OperationStats>, events: u64, faults: bool) {
        let per = |n: u64| n as f64 / events.max(1) as f64;
        let count = |op: &str| requests.get(op).map_or(0, |s| s.requests);
        let list = |ops: &[&str]| {
            let parts: Vec<String> = requests
                .iter()
                .filter(|(op, _)| ops.contains(&op.as_str()))
                .map(|(op, s)| format!("{op} {:.2}", per(s.requests)))
                .collect();
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(" · ")
            }
        };
        let dynamodb: Vec<&str> = DYNAMODB_READS
            .iter()
            .chain(&DYNAMODB_WRITES)
            .copied()
            .collect();
        self.line(
            "dynamodb/event",
            format!("{} (requests per timed event)", list(&dynamodb)),
        );
        let reads: u64 = DYNAMODB_READS.iter().map(|op| count(op)).sum();
        let writes: u64 = DYNAMODB_WRITES.iter().map(|op| count(op)).sum();
        let transactions = count("TransactWriteItems");
        let item_writes = writes - transactions + transactions * TRANSACT_ITEMS;
        // Judged on the figure as shown: a stray SDK retry must not flip 4.00 to "not met".
        let met = (per(item_writes) * 100.0).round() / 100.0 <= WRITE_TARGET;
        let verdict = match (faults, met) {
            // Retries of faulted calls add requests; the target is for the design's path.
            (true, _) => "target applies to a run without --faults",
            (false, true) => "met",
            (false, false) => "NOT met",
        };
        self.line(
            "  totals",
            format!(
                "reads {:.2} · write requests {:.2} · item writes {:.2} (target ≤ {WRITE_TARGET}: \
                 {verdict}); {item_writes} item writes for {events} events",
                per(reads),
                per(writes),
                per(item_writes),
            ),
        );
        self.line(
            "  note",
            format!(
                "TransactWriteItems counts as 1 write request and {TRANSACT_ITEMS} item writes \
                 (catalog row + outbox record); requests include the SDK's retries"
            ),
        );
        self.line(
            "sqs/event",
            format!(
                "{} (the functions' own calls; the event-source pollers and the subscriber \
                 bypass the proxy, as the Lambda service would)",
                list(&SQS_OPERATIONS)
            ),
        );
        self.line(
            "events/event",
            format!(
                "{} (EventBridge; one call per processor batch)",
                list(&EVENTBRIDGE_OPERATIONS)
            ),
        );
        let known: Vec<&str> = dynamodb
            .iter()
            .chain(&SQS_OPERATIONS)
            .chain(&EVENTBRIDGE_OPERATIONS)
            .copied()
            .collect();
        let other: Vec<String> = requests
            .iter()
            .filter(|(op, _)| !known.contains(&op.as_str()))
            .map(|(op, s)| {
                let name = if op.is_empty() { "(no target)" } else { op };
                format!("{name} {:.2}", per(s.requests))
            })
            .collect();
        if !other.is_empty() {
            self.line("other/event", other.join(" · "));
        }
    }

    /// Faults injected per operation (--faults).
    fn faults(&mut self, requests: &BTreeMap<String, OperationStats>, seed: u64, visibility: u32) {
        let total: u64 = requests.values().map(|s| s.faults.total()).sum();
        self.line(
            "faults",
            format!(
                "{total} injected in the timed run, seed {seed:#x}; live-events and changes \
                 queues VisibilityTimeout {visibility} s, maxReceiveCount 100"
            ),
        );
        for (op, stats) in requests.iter().filter(|(_, s)| s.faults.total() > 0) {
            let f = &stats.faults;
            let mut kinds = Vec::new();
            if f.rejected > 0 {
                kinds.push(format!("{} rejected", f.rejected));
            }
            if f.lost_responses > 0 {
                kinds.push(format!("{} responses lost", f.lost_responses));
            }
            if f.partial_put_events > 0 {
                kinds.push(format!(
                    "{} partial failures ({} entries failed)",
                    f.partial_put_events, f.failed_entries
                ));
            }
            if f.delayed > 0 {
                kinds.push(format!("{} delayed", f.delayed));
            }
            self.line(
                &format!("  {op}"),
                format!(
                    "{} of {} requests ({:.1} %)",
                    kinds.join(", "),
                    stats.requests,
                    100.0 * f.total() as f64 / stats.requests.max(1) as f64
                ),
            );
        }
    }

    fn render(&self, args: &Args) -> String {
        let mut lines = vec![
            (
                "ingest-bench".to_string(),
                format!(
                    "{} · {} · coursewire {}{}",
                    chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
                    if cfg!(debug_assertions) {
                        "debug build"
                    } else {
                        "release build"
                    },
                    env!("CARGO_PKG_VERSION"),
                    git_commit().map(|c| format!(" @ {c}")).unwrap_or_default()
                ),
            ),
            (
                "mode".to_string(),
                format!(
                    "{} ({})",
                    self.mode.name(),
                    match self.mode {
                        Mode::Https =>
                            "function URL, signed RS256 JWT → inbox + changes.fifo → processor \
                             → catalog + bus → subscriber, on moto",
                        Mode::Sqs =>
                            "live-events queue → in-process pollers → inbox + changes.fifo → \
                             processor → catalog + bus → subscriber, on moto",
                    }
                ),
            ),
            (
                "events".to_string(),
                format!(
                    "{} timed (+{} warm-up), distinct, from {}-course x {}-student scenarios, seed {}+",
                    self.sent, self.warmup, args.courses, args.students, args.seed
                ),
            ),
        ];
        lines.extend(self.lines.iter().cloned());
        lines.push(("machine".to_string(), machine()));
        lines.push(("command".to_string(), command_line("ingest-bench")));
        let width = lines
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::from("\n```text\n");
        for (key, value) in lines {
            out.push_str(&format!("{key:<width$}  {value}\n"));
        }
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out.push_str("```");
        out
    }
}
