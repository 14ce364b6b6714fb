//! ingest-bench: sustained accepted events/s and receiver latency percentiles of the ingest
//! path, measured through the local stack (moto + the real functions in-process).
//!
//! - `https` (default): pre-signed Canvas JWTs POSTed to the ingest-https function URL by
//!   `--concurrency` clients, as fast as possible (closed loop) or at a fixed `--rate`
//!   (open loop: latency counts from the scheduled send time, so a slow receiver cannot hide
//!   behind a client that waits for it). Latency is send → 200 in an HdrHistogram.
//! - `sqs`: raw events queued on the Canvas live-events queue first (not timed), released at
//!   one instant, and drained by the in-process ingest-sqs pollers; throughput is events /
//!   drain time, latency is the handler's own `BatchLatency` per batch.
//!
//! Both verify that every event sent was accepted (`EventsAccepted`) and print a compact
//! result block for BENCHMARKS.md.

use anyhow::{Context, Result, anyhow, bail, ensure};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use coursewire_infra::canvas_sim::{
    CANVAS_HTTP_TIMEOUT, Emission, Emitter, Format, JWT_LIFETIME_SECS, KeyRing, Scenario,
    ScenarioConfig,
};
use coursewire_infra::stack::{LocalStack, SimulatedCanvas, StackOptions};
use coursewire_infra::subscriber::Subscriber;
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// The issuer the simulated Canvas signs with (the stack is configured to expect it).
const ISSUER: &str = "https://canvas.bench.coursewire";
const INGEST_URL_FUNCTION: &str = "IngestHttpsFunction";
const LIVE_EVENTS_QUEUE: &str = "CanvasLiveEventsQueue";
const LIVE_EVENTS_DLQ: &str = "CanvasLiveEventsDLQ";
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
/// HdrHistogram range: 1 µs to 10 minutes, 3 significant digits.
const HIST_MAX_US: u64 = 600_000_000;

#[derive(Parser, Debug)]
#[command(
    name = "ingest-bench",
    about = "Benchmark Canvas Live Events ingestion through the local stack: sustained accepted \
             events/s and receiver latency percentiles.",
    long_about = "Benchmark Canvas Live Events ingestion through the local stack (moto for AWS, \
                  installed into .venv on first use; the real ingest functions in-process with \
                  Lambda's event-source semantics; a simulated Canvas JWKS).\n\n\
                  Realistic events are generated from seeded course-term scenarios and, for \
                  HTTPS, signed before the clock starts, so the simulator's RSA signing is not \
                  measured. A warm-up (connections, JWKS cache, tables) runs first and is not \
                  counted. The run fails unless every event sent was accepted.\n\n\
                  Modes:\n  \
                  https  POST signed JWTs to the ingest-https function URL; latency is send → \
                  200 per request.\n  \
                  sqs    queue raw events on the live-events queue first (not timed), release \
                  them at one instant (per-message DelaySeconds) and time how long the \
                  ingest-sqs pollers take to drain them, in waves of --wave events; latency is \
                  the handler's BatchLatency per batch of 10.\n\n\
                  The processor runs too; the bench subscribes to the change-event bus (the \
                  template's example subscriber queue) and checks that every accepted event \
                  arrived there as one change event.\n\n\
                  Logs are quiet (warnings only; set INGEST_BENCH_LOG=info for more). The \
                  result block on stdout is meant for BENCHMARKS.md; build with --release.",
    after_help = "Examples:\n  \
                  cargo run --release -p coursewire-infra --bin ingest-bench\n  \
                  cargo run --release -p coursewire-infra --bin ingest-bench -- --rate 30\n  \
                  cargo run --release -p coursewire-infra --bin ingest-bench -- --mode sqs"
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
            // Tokens are signed before the run and Canvas tokens live 300 s.
            let planned = self.events as f64 / rate;
            ensure!(
                planned <= (JWT_LIFETIME_SECS - 30) as f64,
                "--events {} at --rate {rate} takes {planned:.0} s, but the pre-signed JWTs \
                 expire {JWT_LIFETIME_SECS} s after signing: lower --events or raise --rate",
                self.events
            );
        }
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INGEST_BENCH_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .compact()
        .init();
    let args = Args::parse();
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

    let canvas = SimulatedCanvas::start(ISSUER)
        .await
        .context("starting the simulated Canvas")?;
    let ring = canvas.ring.clone();
    step("starting moto and provisioning from template.yaml (first run installs moto into .venv)");
    let overrides = canvas.overrides("bench");
    let pollers = usize::try_from(args.pollers).context("--pollers")?;
    let stack = LocalStack::start(StackOptions {
        overrides,
        pollers,
        ..StackOptions::default()
    })
    .await
    .context("starting the local stack")?;

    let subscriber = Subscriber::start(&stack, SUBSCRIBER_QUEUE, SUBSCRIBER_RECEIVERS)?;
    let run = async {
        match args.mode {
            Mode::Https => bench_https(&args, &ring, &stack, &events).await,
            Mode::Sqs => bench_sqs(&args, &stack, &events).await,
        }
    };
    let outcome = tokio::select! {
        outcome = run => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    let outcome = match outcome {
        Ok(mut report) => {
            let expected = args.warmup + args.events;
            let arrived = subscriber.wait_for(expected, Duration::from_secs(60)).await;
            report.changes(subscriber.report().messages, arrived, expected);
            Ok(report)
        }
        Err(e) => Err(e),
    };
    subscriber.finish().await;
    step("stopping the stack");
    stack.stop().await;
    canvas.jwks.stop().await;

    let report = outcome?;
    println!("{}", report.render(&args));
    if !report.verified {
        bail!("verification failed: see `verified` and `changes` above");
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

/// Signs every event on all cores (RS256 with the current key, `iat` = now).
fn sign_all(emitter: &Emitter, events: &[Emission]) -> Result<Vec<Bytes>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = events.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = events
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|e| emitter.jwt(&e.payload).map(Bytes::from))
                        .collect::<Result<Vec<_>, _>>()
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

/// What the clients saw.
struct Recorder {
    /// From the scheduled send time (open loop) or the actual send (closed loop) to the 200.
    response: Histogram<u64>,
    /// From the actual send to the answer: the receiver's service time.
    service: Histogram<u64>,
    ok: u64,
    /// Non-200 answers by status, and transport errors by kind.
    other: BTreeMap<String, u64>,
    last_done: Option<Instant>,
}

struct Drive {
    recorder: Recorder,
    started: Instant,
    /// Open loop: the furthest a request left behind its schedule (all clients busy).
    max_dispatch_lag: Duration,
}

impl Drive {
    fn elapsed(&self) -> Duration {
        self.recorder
            .last_done
            .map_or(Duration::ZERO, |done| done.duration_since(self.started))
    }
}

async fn post(client: &reqwest::Client, url: &str, token: Bytes) -> Result<u16, String> {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/jwt")
        .body(token)
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status().as_u16();
    // Read the body so the connection is reused and the answer is complete.
    response.bytes().await.map_err(transport_error)?;
    Ok(status)
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

fn record(
    recorder: &Mutex<Recorder>,
    bar: &ProgressBar,
    status: Result<u16, String>,
    response: Duration,
    service: Duration,
) {
    let mut r = recorder.lock().unwrap_or_else(PoisonError::into_inner);
    match status {
        Ok(200) => {
            r.ok += 1;
            r.response.saturating_record(micros(response));
            r.service.saturating_record(micros(service));
        }
        Ok(status) => *r.other.entry(status.to_string()).or_default() += 1,
        Err(kind) => *r.other.entry(kind).or_default() += 1,
    }
    r.last_done = Some(Instant::now());
    drop(r);
    bar.inc(1);
}

/// Sends every token once: `concurrency` clients in a closed loop, or (with `rate`) on a fixed
/// schedule with at most `concurrency` requests in flight.
async fn drive(
    client: &reqwest::Client,
    url: &str,
    tokens: &[Bytes],
    concurrency: usize,
    rate: Option<f64>,
    bar: &ProgressBar,
) -> Drive {
    let recorder = Arc::new(Mutex::new(Recorder {
        response: histogram(),
        service: histogram(),
        ok: 0,
        other: BTreeMap::new(),
        last_done: None,
    }));
    let started = Instant::now();
    let mut max_dispatch_lag = Duration::ZERO;
    match rate {
        None => {
            let next = AtomicUsize::new(0);
            let clients = (0..concurrency).map(|_| async {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(token) = tokens.get(i) else { break };
                    let began = Instant::now();
                    let status = post(client, url, token.clone()).await;
                    let took = began.elapsed();
                    record(&recorder, bar, status, took, took);
                }
            });
            futures::future::join_all(clients).await;
        }
        Some(rate) => {
            let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
            let schedule = tokio::time::Instant::from_std(started);
            let mut in_flight = tokio::task::JoinSet::new();
            for (i, token) in tokens.iter().enumerate() {
                let due = schedule + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due).await;
                let slot = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let due = due.into_std();
                max_dispatch_lag = max_dispatch_lag.max(due.elapsed());
                let (client, url, token) = (client.clone(), url.to_string(), token.clone());
                let (recorder, bar) = (recorder.clone(), bar.clone());
                in_flight.spawn(async move {
                    let began = Instant::now();
                    let status = post(&client, &url, token).await;
                    let service = began.elapsed();
                    drop(slot);
                    record(&recorder, &bar, status, due.elapsed(), service);
                });
                // Reap finished requests as we go so the set stays small.
                while in_flight.try_join_next().is_some() {}
            }
            while in_flight.join_next().await.is_some() {}
        }
    }
    let recorder = Arc::try_unwrap(recorder)
        .ok()
        .expect("every request has finished")
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    Drive {
        recorder,
        started,
        max_dispatch_lag,
    }
}

async fn bench_https(
    args: &Args,
    ring: &Arc<KeyRing>,
    stack: &LocalStack,
    events: &[Emission],
) -> Result<Report> {
    let url = stack
        .function_url(INGEST_URL_FUNCTION)
        .context("ingest-https has no function URL")?
        .to_string();
    let concurrency = usize::try_from(args.concurrency).context("--concurrency")?;
    let emitter = Emitter::new(ring.clone(), ISSUER)?;

    let signing = Instant::now();
    let tokens = sign_all(&emitter, events)?;
    let signed_at = Instant::now();
    step(&format!(
        "signed {} JWTs in {:.1} s (RS256, not timed)",
        tokens.len(),
        signing.elapsed().as_secs_f64()
    ));
    let (warm, timed) = tokens.split_at(usize::try_from(args.warmup)?);

    let client = reqwest::Client::builder()
        .timeout(CANVAS_HTTP_TIMEOUT)
        .pool_max_idle_per_host(concurrency)
        .build()
        .context("building the HTTP client")?;

    if !warm.is_empty() {
        step(&format!("warm-up: {} events", warm.len()));
        let warmup = drive(
            &client,
            &url,
            warm,
            concurrency,
            None,
            &ProgressBar::hidden(),
        )
        .await;
        ensure!(
            warmup.recorder.other.is_empty(),
            "warm-up failed, answers other than 200: {:?}",
            warmup.recorder.other
        );
    }
    stack.metrics.clear();

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
        drive(&client, &url, timed, concurrency, args.rate, &bar),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "the timed run did not finish within --timeout {} s",
            args.timeout
        )
    })?;
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
    report.line("pollers", format!("{} (idle in this mode)", args.pollers));
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
    report.line(
        "non-200",
        if r.other.is_empty() {
            "none".to_string()
        } else {
            r.other
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    report.verify(stack, accepted, sent);
    if signed_at.elapsed() > Duration::from_secs(JWT_LIFETIME_SECS as u64) {
        report.note("the run outlived the pre-signed JWTs (300 s): late requests may be 401");
    }
    Ok(report)
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

async fn bench_sqs(args: &Args, stack: &LocalStack, events: &[Emission]) -> Result<Report> {
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
    stack.metrics.clear();
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
    report.verify(stack, accepted, sent);
    if drained.late > 0 || drained.early > 0 {
        report.note(&format!(
            "queueing overran a release ({} events sent late, {} accepted before their \
             release): rerun with a larger --release-after",
            drained.late, drained.early
        ));
    }
    Ok(report)
}

struct Queued {
    release: Instant,
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
        took: started.elapsed(),
        late: late.into_inner(),
    })
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
                    let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
                    let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
                    (ppid == me && comm.starts_with("moto")).then(|| cpu_time(&stat))?
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

fn percentiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    let ms = |us: u64| {
        let ms = us as f64 / 1e3;
        if ms < 10.0 {
            format!("{ms:.2}")
        } else {
            format!("{ms:.1}")
        }
    };
    format!(
        "p50 {}  p90 {}  p99 {}  max {}  (n={})",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        h.len()
    )
}

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

    /// Every event accepted (warm-up included) must have reached the subscriber.
    fn changes(&mut self, messages: u64, distinct: u64, expected: u64) {
        let ok = distinct == expected;
        self.verified &= ok;
        self.line(
            "changes",
            format!(
                "{}: {distinct} of {expected} events (warm-up included) arrived at the \
                 subscriber as change events ({messages} SQS messages)",
                if ok { "ok" } else { "FAILED" }
            ),
        );
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

    /// accepted == sent, and nothing dropped, rejected or failed on the way.
    fn verify(&mut self, stack: &LocalStack, accepted: u64, sent: u64) {
        let m = &stack.metrics;
        let duplicates = m.sum("DuplicatesDropped", &[]) as u64;
        let rejected = m.sum("EventsRejected", &[]) as u64;
        let auth = m.sum("AuthFailures", &[]) as u64;
        let failures = m.sum("IngestFailures", &[]) as u64;
        self.verified = accepted == sent;
        self.line("verified", format!(
            "{}: accepted {accepted} {} sent {sent}; duplicates {duplicates}, rejects {rejected}, \
             auth failures {auth}, ingest failures {failures}",
            if self.verified { "ok" } else { "FAILED" },
            if self.verified { "==" } else { "!=" },
        ));
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
                            "function URL, signed RS256 JWT → inbox + changes.fifo on moto",
                        Mode::Sqs =>
                            "live-events queue → in-process pollers → inbox + changes.fifo on moto",
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
        lines.push(("command".to_string(), command_line()));
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

fn machine() -> String {
    let cores = std::process::Command::new("nproc")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| n.to_string())
        })
        .unwrap_or_else(|| "?".into());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    format!(
        "{cores} cores (nproc), {model}, {}; load average {load} at the end",
        std::env::consts::ARCH
    )
}

fn git_commit() -> Option<String> {
    let root = coursewire_infra::repo::repo_root().ok()?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut line = "cargo run --release -p coursewire-infra --bin ingest-bench".to_string();
    if !args.is_empty() {
        line.push_str(" -- ");
        line.push_str(&args.join(" "));
    }
    line
}
