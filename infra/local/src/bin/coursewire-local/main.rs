//! coursewire-local: runs coursewire on this machine — moto for AWS, the Canvas and Panopto
//! simulators, every function in-process — and drives a realistic course-term scenario
//! through both Canvas delivery methods to a subscriber of the change-event bus, then a
//! teaching day of lecture recordings through the publish workflow, with live progress and
//! a summary of each.

mod teaching_day;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_local::campus::panopto_credentials;
use coursewire_local::clock::SimulatedTime;
use coursewire_local::stack::{CANVAS_SECRET, LocalStack, SimulatedCanvas, StackOptions};
use coursewire_local::subscriber::Subscriber;
use coursewire_simulators::canvas_api::{
    ApiSimConfig, CanvasApiSim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RECONCILED_TYPES, World,
    reconciled_mismatches,
};
use coursewire_simulators::canvas_live_events::{
    Delivered, Delivery, Emitter, Format, Scenario, ScenarioConfig, Truth, rejection_cases,
};
use coursewire_simulators::panopto::{PanoptoSim, PanoptoSimConfig};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The issuer the simulated Canvas signs with (the local stack is configured to expect it).
const ISSUER: &str = "https://canvas.local.coursewire";
const INGEST_URL_FUNCTION: &str = "IngestHttpsFunction";
const LIVE_EVENTS_QUEUE: &str = "CanvasLiveEventsQueue";
const SUBSCRIBER_QUEUE: &str = "ExampleSubscriberQueue";

#[derive(Parser)]
#[command(
    name = "coursewire-local",
    about = "Run coursewire locally: moto for AWS, simulated Canvas and Panopto, every function in-process.",
    long_about = "Run coursewire locally: moto for AWS (installed into .venv on first use), a \
                  simulated Canvas that signs and delivers live events and serves its API, a \
                  simulated Panopto with remote recorders, and every coursewire function \
                  in-process with Lambda's event-source semantics. Nothing needs Docker, an AWS \
                  account or the internet."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Drive a course-term scenario through HTTPS and SQS delivery, then a teaching day of
    /// lecture recordings, and print a summary of each (default).
    Demo(DemoArgs),
    /// Start the local stack and keep it running until Ctrl-C, printing its endpoints.
    Up,
}

#[derive(clap::Args, Clone)]
struct DemoArgs {
    /// Scenario seed: the same seed replays the same term.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Courses in the term.
    #[arg(long, default_value_t = 3)]
    courses: usize,
    /// Students per course.
    #[arg(long, default_value_t = 30)]
    students: usize,
    /// Share of deliveries Canvas repeats (at-least-once delivery).
    #[arg(long, default_value_t = 0.05)]
    duplicates: f64,
    /// Share of events delivered over HTTPS (signed JWT); the rest go through SQS.
    #[arg(long, default_value_t = 0.5)]
    https_share: f64,
    /// Share of events in Caliper 1.1 format instead of Canvas format.
    #[arg(long, default_value_t = 0.2)]
    caliper_share: f64,
    /// Concurrent deliveries from the simulated Canvas.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Share of course, section, enrollment, user and module events Canvas loses (live
    /// events are best-effort); the reconciler heals them from Canvas's API.
    #[arg(long, default_value_t = 0.05)]
    lost: f64,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            seed: 7,
            courses: 3,
            students: 30,
            duplicates: 0.05,
            https_share: 0.5,
            caliper_share: 0.2,
            concurrency: 8,
            lost: 0.05,
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // Functions log JSON at info in production; here only errors reach the console, so the
    // progress display stays readable (rejects are counted in the summary). RUST_LOG overrides.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .compact()
        .init();
    match Cli::parse()
        .command
        .unwrap_or(Command::Demo(DemoArgs::default()))
    {
        Command::Demo(args) => demo(args).await,
        Command::Up => up().await,
    }
}

/// The simulators and the stack.
struct Local {
    canvas: SimulatedCanvas,
    api: CanvasApiSim,
    panopto: PanoptoSim,
    stack: LocalStack,
}

/// The simulated Canvas (live events with signing keys and JWKS; its API with OAuth2, REST,
/// GraphQL and throttling) serving `world`, the simulated Panopto, and the stack configured
/// for both. `paused` functions run only when invoked.
async fn start(
    stage: &str,
    world: World,
    panopto: PanoptoSimConfig,
    paused: &[&str],
) -> Result<Local> {
    let canvas = SimulatedCanvas::start(ISSUER)
        .await
        .context("starting the simulated Canvas")?;
    let config = ApiSimConfig {
        // Canvas's bucket leaks 10 units/s; ten times that keeps the demo short.
        time_scale: 10.0,
        ..ApiSimConfig::default()
    };
    let outflow = config.outflow * config.time_scale;
    let api = CanvasApiSim::start(config, world)
        .await
        .context("starting the simulated Canvas API")?;
    let panopto = PanoptoSim::start(panopto)
        .await
        .context("starting the simulated Panopto")?;
    // What an operator puts into the credentials secret after authorizing coursewire.
    let grant = api.issue_grant(DEFAULT_CLIENT_ID)?;
    let credentials = serde_json::json!({
        "base_url": api.base_url(),
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "refresh_token": grant.refresh_token,
    });
    let world = api.world_snapshot();
    step("starting moto and provisioning from template.yaml (first run installs moto into .venv)");
    let overrides = canvas
        .overrides(stage)
        .parameter("CanvasAccountId", world.account_id.to_string().as_str())
        .parameter(
            "CanvasRootAccountId",
            coursewire_simulators::canvas_live_events::global_id(1)
                .to_string()
                .as_str(),
        )
        .parameter("CanvasOutflowPerSecond", outflow.to_string().as_str());
    // The functions keep Panopto's time, so a teaching day moved on by hand is one day for all.
    let mut options = StackOptions {
        overrides,
        clock: Arc::new(SimulatedTime(panopto.clock())),
        ..StackOptions::default()
    }
    .secret(CANVAS_SECRET, credentials)
    .secret("PanoptoCredentialsSecret", panopto_credentials(&panopto));
    for function in paused {
        options = options.pause(function);
    }
    let stack = LocalStack::start(options)
        .await
        .context("starting the local stack")?;
    // As README "Connect Canvas" says after the secret is filled: the token now, not in 5 min.
    stack
        .invoke("TokenKeeperFunction", serde_json::json!({}))
        .await
        .context("the first token-keeper run")?;
    Ok(Local {
        canvas,
        api,
        panopto,
        stack,
    })
}

async fn up() -> Result<()> {
    let scenario = Scenario::build(ScenarioConfig::default());
    // Panopto's clock runs in real time here; its recorders record what is booked on them.
    let Local {
        canvas,
        api,
        panopto,
        stack,
    } = start(
        "local",
        World::from_events(&scenario.events),
        PanoptoSimConfig::default(),
        &[],
    )
    .await?;
    println!("coursewire local stack is up (Ctrl-C to stop)");
    println!("  moto (AWS endpoint)       {}", stack.moto_endpoint());
    println!(
        "  ingest-https function URL {}",
        stack.function_url(INGEST_URL_FUNCTION).unwrap_or("-")
    );
    println!(
        "  Canvas live-events queue  {}",
        stack.queue_url(LIVE_EVENTS_QUEUE).unwrap_or("-")
    );
    println!(
        "  changes.fifo              {}",
        stack.queue_url("ChangesQueue").unwrap_or("-")
    );
    println!(
        "  inbox table               {}",
        stack.table_name("InboxTable").unwrap_or("-")
    );
    println!(
        "  catalog table             {}",
        stack.table_name("CatalogTable").unwrap_or("-")
    );
    println!(
        "  change-event bus          {}",
        stack.deployed.ref_value("ChangeBus").unwrap_or("-")
    );
    println!(
        "  example subscriber queue  {}",
        stack.queue_url(SUBSCRIBER_QUEUE).unwrap_or("-")
    );
    println!("  Canvas JWKS (simulated)   {}", canvas.jwks.url());
    println!("  expected JWT issuer       {ISSUER}");
    println!("  Canvas API (simulated)    {}", api.base_url());
    println!("  Panopto (simulated)       {}", panopto.base_url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("stopping");
    stack.stop().await;
    Ok(())
}

fn step(text: &str) {
    println!("▸ {text}");
}

async fn demo(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    println!(
        "coursewire demo: Canvas Live Events → ingest (HTTPS + SQS) → inbox → changes.fifo → \
         processor → catalog + EventBridge → subscriber; then a teaching day: Panopto → \
         recordings.fifo → publish workflow → Panopto folders and viewers + Canvas modules\n"
    );
    let scenario = Scenario::build(ScenarioConfig {
        seed: args.seed,
        courses: args.courses,
        students_per_course: args.students,
        duplicate_ratio: args.duplicates,
        https_ratio: args.https_share,
        caliper_ratio: args.caliper_share,
        burst: true,
        ..ScenarioConfig::default()
    });
    // Panopto's clock stands still and the teaching day moves it on: a day takes seconds.
    let local = start(
        "demo",
        World::from_events(&scenario.events),
        PanoptoSimConfig {
            time_scale: 0.0,
            processing_time: Duration::from_secs(10 * 60),
            caption_delay: Duration::from_secs(30 * 60),
            ..PanoptoSimConfig::default()
        },
        &[
            teaching_day::POLLER,
            teaching_day::SCHEDULER,
            teaching_day::MONITOR,
        ],
    )
    .await?;
    let result = run_both(&args, &scenario, &local).await;
    // The stack first: nothing may call the simulators once they are gone.
    local.stack.stop().await;
    local.api.stop().await;
    local.panopto.stop().await;
    result?;
    println!("finished in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The Canvas term, then the teaching day; each summary printed as it is ready.
async fn run_both(args: &DemoArgs, scenario: &Scenario, local: &Local) -> Result<()> {
    let url = local
        .stack
        .function_url(INGEST_URL_FUNCTION)
        .context("ingest-https has no function URL")?;
    let queue = local
        .stack
        .queue_url(LIVE_EVENTS_QUEUE)
        .context("no live-events queue")?;
    let emitter = Emitter::new(local.canvas.ring.clone(), ISSUER)?
        .with_https(url)
        .with_sqs(aws_sdk_sqs::Client::new(&local.stack.aws), queue);
    let summary = run_demo(args, scenario, local, &emitter).await?;
    println!("{summary}");
    let summary = teaching_day::play(&local.stack, &local.panopto, &local.api, &emitter).await?;
    println!("{summary}");
    Ok(())
}

async fn run_demo(
    args: &DemoArgs,
    scenario: &Scenario,
    local: &Local,
    emitter: &Emitter,
) -> Result<String> {
    let (canvas, api, stack) = (&local.canvas, &local.api, &local.stack);

    // Canvas loses a share of the roster and module events: every copy of them.
    let lost: HashSet<usize> = scenario
        .events
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            RECONCILED_TYPES.contains(&e.entity.0.as_str())
                && ((i * 2_654_435_761) % 10_000) as f64 / 10_000.0 < args.lost
        })
        .map(|(i, _)| i)
        .collect();
    let emissions: &Vec<_> = &scenario
        .emissions
        .iter()
        .filter(|e| !lost.contains(&e.event_index))
        .cloned()
        .collect();
    let unique: HashSet<(usize, Format)> = emissions
        .iter()
        .map(|e| (e.event_index, e.format))
        .collect();
    step(&format!(
        "simulated Canvas: {} courses, {} students each → {} events, {} deliveries ({} repeated, {} events lost)",
        args.courses,
        args.students,
        scenario.events.len(),
        emissions.len(),
        emissions.iter().filter(|e| e.duplicate).count(),
        lost.len()
    ));

    // A downstream system subscribed to every change event (the template's example rule).
    let subscriber = Subscriber::start(stack, SUBSCRIBER_QUEUE, 2)?;

    // Canvas rotates its signing key monthly; rotate half-way to show the receiver follows.
    let half = emissions.len() / 2;
    let progress = progress_bar(emissions.len() as u64);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut send_errors = 0usize;
    for (part, slice) in [&emissions[..half], &emissions[half..]]
        .into_iter()
        .enumerate()
    {
        if part == 1 {
            canvas.ring.rotate().context("rotating the Canvas key")?;
            progress.println("  ↻ Canvas rotated its signing key (kid changed) mid-stream");
        }
        let reports = emitter
            .send_all(slice, args.concurrency, |_| {
                progress.inc(1);
                let accepted = stack.metrics.sum("EventsAccepted", &[]);
                let dupes = stack.metrics.sum("DuplicatesDropped", &[]);
                progress.set_message(format!(
                    "accepted {accepted:.0} · duplicates dropped {dupes:.0}"
                ));
            })
            .await;
        for report in reports {
            match report.result {
                Ok(Delivered::Https { status, .. }) => *statuses.entry(status).or_default() += 1,
                Ok(_) => {}
                Err(e) => {
                    send_errors += 1;
                    progress.println(format!("  ! delivery failed: {e}"));
                }
            }
        }
    }
    progress.finish_and_clear();
    step(&format!(
        "delivered {} events ({} over HTTPS, {} over SQS)",
        emissions.len(),
        count(emissions, Delivery::Https),
        count(emissions, Delivery::Sqs)
    ));

    step(
        "sending one of every kind of bad delivery (forged, tampered, expired, oversized, malformed)",
    );
    let sample = &scenario.events[0].canvas;
    let faults = rejection_cases(&canvas.ring, emitter, sample, 262_144)?;
    let mut fault_lines = Vec::new();
    for fault in &faults {
        let status = emitter.send_fault(fault).await?;
        let answer = status.map_or("recorded as reject".to_string(), |s| format!("HTTP {s}"));
        let ok = fault
            .expect_status
            .is_none_or(|expected| status == Some(expected));
        fault_lines.push(format!(
            "  {} {:<44} {answer}",
            if ok { "✓" } else { "✗" },
            fault.name
        ));
    }
    println!("{}", fault_lines.join("\n"));

    step("waiting for the SQS receiver to drain the live-events queue");
    if !stack
        .drain(LIVE_EVENTS_QUEUE, Duration::from_secs(120))
        .await?
    {
        bail!("the live-events queue did not drain within 120 s");
    }
    step("waiting for every change event to reach the subscriber");
    let delivered_events = (scenario.events.len() - lost.len()) as u64;
    let expected_events = delivered_events;
    let wait = progress_bar_for(expected_events, "change events at the subscriber");
    let mut arrived = subscriber.unique_events();
    let mut last_change = Instant::now();
    while arrived < expected_events && last_change.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = subscriber.unique_events();
        if now != arrived {
            arrived = now;
            last_change = Instant::now();
        }
        wait.set_position(arrived);
    }
    wait.finish_and_clear();

    step("reconciling every course against Canvas's API (the scheduled pass, run now)");
    let planned = stack
        .invoke(
            "ReconcilerFunction",
            serde_json::json!({"all_courses": true}),
        )
        .await?;
    let courses = planned["courses"].as_f64().unwrap_or(0.0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while stack.metrics.sum("CoursesReconciled", &[]) + stack.metrics.sum("ReconcileFailures", &[])
        < courses
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let healed = stack.metrics.sum("ReconcileChangesSubmitted", &[]) as u64;
    let expected_events = delivered_events + healed;
    let mut last_change = Instant::now();
    while subscriber.unique_events() < expected_events
        && last_change.elapsed() < Duration::from_secs(30)
    {
        let before = subscriber.unique_events();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if subscriber.unique_events() != before {
            last_change = Instant::now();
        }
    }
    // Metrics of the last batch are flushed when its invocation ends.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let m = &stack.metrics;
    // Live events only (the reconciler's drift events take the same ingest path).
    let live = |name: &str| m.sum(name, &[]) - m.sum(name, &[("Source", "reconciliation")]);
    let accepted = live("EventsAccepted") + live("EventsRecovered");
    let duplicates = live("DuplicatesDropped");
    let mut rejects = m.sum_by("EventsRejected", "Reason");
    for (reason, n) in m.sum_by("AuthFailures", "Reason") {
        *rejects.entry(reason).or_default() += n;
    }
    // Replay the term's first day in heal mode: everything was published, so nothing is sent
    // and the subscriber sees nothing new.
    let day_start = scenario.config.start_time;
    let request = serde_json::json!({
        "from": day_start.to_rfc3339(),
        "to": (day_start + chrono::Duration::days(1)).to_rfc3339(),
        "request_id": "demo-heal",
    });
    step("replaying the term's first day in heal mode (nothing should need healing)");
    let heal = stack.invoke("ReplayFunction", request).await?;
    let heal: coursewire_pipeline::replay::ReplayReport = serde_json::from_value(heal)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bus = subscriber.finish().await;
    let sequence_problems = bus.sequence_problems();
    let catalog = DynamoCatalog::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        stack
            .table_name("CatalogTable")
            .context("no catalog table")?,
    );
    let rows = catalog.scan_all().await?;
    // Assignments and submissions: as delivered; what the reconciler fetches: Canvas's state.
    let delivered_truth = Truth {
        entities: scenario
            .truth
            .entities
            .iter()
            .filter(|((kind, _), _)| !RECONCILED_TYPES.contains(&kind.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let mut mismatches = delivered_truth.catalog_mismatches(&rows);
    mismatches.extend(reconciled_mismatches(
        &Truth::from_events(&scenario.events),
        &api.world_snapshot(),
        &rows,
    ));
    let api_stats = api.stats();
    let drift = m.sum_by("ReconcileDrift", "EntityType");
    let live_dlq = stack.queue_depth("CanvasLiveEventsDLQ").await?;
    let changes_dlq = stack.queue_depth("ChangesDLQ").await?;
    let mut latencies = m.values("IngestLatency");
    let mut propagation: Vec<f64> = bus
        .events
        .values()
        .filter_map(|a| {
            let received = a.detail()["received_at"].as_str()?;
            let received = chrono::DateTime::parse_from_rfc3339(received).ok()?;
            Some((a.arrived_at - received.to_utc()).num_milliseconds() as f64)
        })
        .collect();
    let late = bus
        .events
        .values()
        .filter(|a| a.detail()["late"].as_bool() == Some(true))
        .count();
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    for arrival in bus.events.values() {
        let detail_type = arrival.event["detail-type"].as_str().unwrap_or("?");
        *by_type.entry(detail_type.to_string()).or_default() += 1;
    }

    let expected_unique = unique.len() as f64;
    let all_accepted = (accepted - expected_unique).abs() < 0.5;
    let all_arrived = bus.unique_events == expected_events;
    let mut out = String::new();
    out.push_str("\n── ingest ──────────────────────────────────────────────────────────\n");
    out.push_str(&format!("  events accepted            {accepted:>6.0}   (unique deliveries sent: {expected_unique:.0}) {}\n", tick(all_accepted)));
    out.push_str(&format!("  duplicates dropped         {duplicates:>6.0}\n"));
    out.push_str(&format!(
        "  rejected                   {:>6.0}   by reason:\n",
        rejects.values().sum::<f64>()
    ));
    for (reason, n) in &rejects {
        out.push_str(&format!("      {reason:<26} {n:>4.0}\n"));
    }
    out.push_str(&format!(
        "  HTTPS answers              {}\n",
        statuses
            .iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    out.push_str(&format!(
        "  HTTPS receiver latency     p50 {:.1} ms · p99 {:.1} ms (handler time, moto-bound)\n",
        percentile(&mut latencies, 0.50),
        percentile(&mut latencies, 0.99)
    ));
    out.push_str(&format!(
        "  Canvas JWKS fetches        {:>6}   (key rotated once mid-stream)\n",
        canvas.jwks.fetch_count()
    ));
    out.push_str("── change-event bus (at the subscriber) ────────────────────────────\n");
    out.push_str(&format!(
        "  change events              {:>6}   (source events: {expected_events}) {}\n",
        bus.unique_events,
        tick(all_arrived)
    ));
    out.push_str(&format!(
        "  redelivered copies         {:>6}   (same event id; subscribers drop them)\n",
        bus.redeliveries
    ));
    out.push_str(&format!(
        "  sequence problems          {:>6}   (per entity: 1, 2, 3... no gaps, no repeats) {}\n",
        sequence_problems.len(),
        tick(sequence_problems.is_empty())
    ));
    out.push_str(&format!(
        "  late events                {late:>6}   (published, flagged, catalog not regressed)\n"
    ));
    out.push_str(&format!(
        "  propagation                p50 {:.0} ms · p99 {:.0} ms (received → at the subscriber)\n",
        percentile(&mut propagation, 0.50),
        percentile(&mut propagation, 0.99)
    ));
    out.push_str("  by detail-type:\n");
    for (detail_type, n) in &by_type {
        out.push_str(&format!("      {detail_type:<26} {n:>5}\n"));
    }
    let heal_ok = heal.enqueued == 0 && heal.is_complete() && bus.unique_events == expected_events;
    out.push_str(&format!(
        "  replay (heal, first day)   {:>6}   selected, {} already published, {} sent {}\n",
        heal.selected,
        heal.already_published,
        heal.enqueued,
        tick(heal_ok)
    ));
    out.push_str("── reconciliation (Canvas API) ─────────────────────────────────────\n");
    let reconciled = m.sum("CoursesReconciled", &[]);
    out.push_str(&format!(
        "  courses reconciled         {reconciled:>6.0}   (of {courses:.0} active) {}\n",
        tick(reconciled == courses && courses > 0.0)
    ));
    out.push_str(&format!(
        "  drift healed               {healed:>6}   (lost live events: {}) → change events to subscribers\n",
        lost.len()
    ));
    for (entity_type, n) in &drift {
        out.push_str(&format!("      {entity_type:<26} {n:>4.0}\n"));
    }
    out.push_str(&format!(
        "  Canvas API requests        {:>6}   (GraphQL {}), cost {:.1} units, throttled {} {}\n",
        api_stats.api_requests,
        api_stats.graphql_requests,
        api_stats.cost_total,
        api_stats.throttled,
        tick(api_stats.throttled == 0)
    ));
    out.push_str(&format!(
        "  shared budget              {:>6.0}   DynamoDB lease calls · token refreshes {}\n",
        m.sum("CanvasLeaseCalls", &[]),
        api_stats
            .token_requests
            .get("refresh_token")
            .copied()
            .unwrap_or(0)
    ));
    out.push_str("── catalog ─────────────────────────────────────────────────────────\n");
    out.push_str(&format!(
        "  rows                       {:>6}   ({} deleted)\n",
        rows.len(),
        rows.iter().filter(|r| r.deleted).count()
    ));
    out.push_str(&format!(
        "  differences from Canvas    {:>6}   (the simulator's truth) {}\n",
        mismatches.len(),
        tick(mismatches.is_empty())
    ));
    for line in mismatches.iter().chain(&sequence_problems).take(5) {
        out.push_str(&format!("      {line}\n"));
    }
    out.push_str(&format!(
        "  dead-letter queues         {:>6}   (live events {}, changes {})\n",
        live_dlq.total() + changes_dlq.total(),
        live_dlq.total(),
        changes_dlq.total()
    ));
    if send_errors > 0 {
        out.push_str(&format!("  delivery errors            {send_errors:>6}\n"));
    }
    out.push_str("────────────────────────────────────────────────────────────────────\n");
    let ok = all_accepted
        && all_arrived
        && reconciled == courses
        && api_stats.throttled == 0
        && heal_ok
        && sequence_problems.is_empty()
        && mismatches.is_empty()
        && bus.unreadable == 0
        && send_errors == 0;
    if !ok {
        out.push_str("✗ something did not add up: see above\n");
        bail!(out);
    }
    out.push_str("✓ every valid event became exactly one change event, in order per entity; what Canvas lost was healed from its API; the catalog matches Canvas; every bad delivery was refused\n");
    Ok(out)
}

/// The `p` quantile (0..=1) of `values` (sorted in place); 0 when empty.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 * p) as usize).min(values.len().saturating_sub(1));
    values.get(index).copied().unwrap_or(0.0)
}

fn count(
    emissions: &[coursewire_simulators::canvas_live_events::Emission],
    delivery: Delivery,
) -> usize {
    emissions.iter().filter(|e| e.delivery == delivery).count()
}

fn tick(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

fn progress_bar(total: u64) -> ProgressBar {
    progress_bar_for(total, "deliveries · {msg}")
}

fn progress_bar_for(total: u64, label: &str) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "  {{bar:32.cyan/blue}} {{pos:>5}}/{{len}} {label}"
    )) {
        bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
