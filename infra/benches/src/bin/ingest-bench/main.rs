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

mod cpu;
mod https;
mod pipeline;
mod report;
mod sqs;

use anyhow::{Context, Result, anyhow, bail, ensure};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use coursewire_benches::report::{
    git_commit, histogram, micros, percentiles, progress, result_block, start_run, step,
};
use coursewire_live_events::live_events::{self, DeliveryHints};
use coursewire_local::fault_proxy::{FaultPlan, FaultStats, OperationStats};
use coursewire_local::provision::Overrides;
use coursewire_local::stack::{LocalStack, SimulatedCanvas, StackOptions};
use coursewire_local::subscriber::{Subscriber, SubscriberReport};
use coursewire_simulators::canvas_live_events::{
    CANVAS_HTTP_TIMEOUT, Emission, Emitter, Format, JWT_LIFETIME_SECS, KeyRing, Scenario,
    ScenarioConfig,
};
use cpu::*;
use futures::StreamExt;
use hdrhistogram::Histogram;
use https::*;
use indicatif::ProgressBar;
use pipeline::*;
use report::*;
use serde_json::Value;
use sqs::*;
use std::collections::{BTreeMap, BTreeSet};
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
    start_run("INGEST_BENCH_LOG", quiet);
    args.validate()?;

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

fn accepted(stack: &LocalStack) -> u64 {
    stack.metrics.sum("EventsAccepted", &[]) as u64
}
