//! canvas-bench: the Canvas API client under its shared rate budget (issue 4).
//!
//! `--workers` independent clients — each built from scratch like a separate Lambda instance:
//! its own token source, its own quota with its own pool, its own DynamoDB client and HTTP
//! connections — sync every course roster of a seeded synthetic world from the Canvas API
//! simulator, all with the same access token (Canvas throttles per token) and the same budget
//! id (one DynamoDB item in `RateLimitTable`, on moto). They share nothing but that item.
//!
//! The question is whether the budget keeps all of them below Canvas's leaky bucket (zero
//! throttled answers) while still using what the bucket can sustain over the run:
//! `cost consumed / (outflow × T + high-water mark)`, target ≥ 90 %. The bench also reports
//! DynamoDB lease calls per Canvas call, roster sync latency, and, on a fresh token and
//! budget, requests per roster sync through GraphQL versus REST (checking both return the
//! same roster). It exits non-zero when a target is missed or a roster is wrong.

use anyhow::{Context, Result, anyhow, ensure};
use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use clap::{Parser, ValueEnum};
use coursewire_benches::report::{
    git_commit, histogram, micros, percentiles, progress, result_block, start_run, step,
};
use coursewire_canvas::canvas::{
    BudgetStore, CanvasClient, ClientStats, Credentials, DynamoBudgetStore, HttpSettings,
    HttpTokenEndpoint, IN_FLIGHT_CHARGE, MemoryCredentialStore, Quota, QuotaSettings, QuotaStats,
    Roster, Swap, TokenSettings, TokenSource,
};
use coursewire_local::moto::MotoServer;
use coursewire_local::provision::{Overrides, provision};
use coursewire_local::repo::repo_root;
use coursewire_local::template::Template;
use coursewire_runtime::service::ServiceError;
use coursewire_runtime::telemetry::CollectingSink;
use coursewire_simulators::canvas_api::{
    ApiSimConfig, ApiStats, CanvasApiSim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, TokenGrant,
    World,
};
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

/// Hosted Canvas: units leaked per second, and the high-water mark.
const CANVAS_OUTFLOW: f64 = 10.0;
const CANVAS_HIGH_WATER: f64 = 700.0;
const STAGE: &str = "bench";
/// The template requires an issuer for live events; nothing here signs any.
const ISSUER: &str = "https://canvas.bench.coursewire";
const RATE_LIMIT_TABLE: &str = "RateLimitTable";
const FUNCTION: &str = "canvas-bench";
/// How often the simulator's counters and bucket level are sampled during the run.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// HdrHistogram range: 1 µs to 10 minutes, 3 significant digits.
const HIST_MAX_US: u64 = 600_000_000;

#[derive(Parser, Debug)]
#[command(
    name = "canvas-bench",
    about = "Benchmark the Canvas API client's shared rate budget: concurrent independent \
             clients sync course rosters from the Canvas API simulator without being \
             throttled, and how much of Canvas's capacity they use.",
    long_about = "Benchmark the Canvas API client's shared rate budget (issue 4).\n\n\
                  A seeded synthetic world of --courses courses (--min-students..=--max-students \
                  students each, plus a teacher) is served by the in-process Canvas API \
                  simulator, whose leaky bucket per access token behaves like hosted Canvas \
                  (high-water mark 700, 50 units charged up front per request in flight, \
                  outflow 10 units/s) but leaks --time-scale times faster, so a run takes \
                  seconds instead of minutes. moto (installed into .venv on first use) holds \
                  the template's RateLimitTable.\n\n\
                  --workers clients are built from scratch, one per worker, exactly as separate \
                  Lambda instances would build theirs: each reads the same access token (Canvas \
                  throttles per token) and uses the same budget id, and they share nothing but \
                  that budget item in DynamoDB. Course i goes to worker i mod --workers; each \
                  worker syncs its rosters through GraphQL, --per-worker at a time, and gives \
                  its unspent units back per --release.\n\n\
                  Figures: throttled answers (target 0), cost consumed against what the bucket \
                  can sustain over the run, outflow × T + high-water mark (target ≥ 90 %; T runs \
                  from the start signal to the last roster's last answer), peak bucket level, \
                  Canvas requests, DynamoDB lease calls per Canvas call, roster sync latency. \
                  Then, on a fresh grant (new token, new bucket) and a fresh budget id, one \
                  client syncs --compare courses spanning small to large through GraphQL and \
                  through REST: requests per roster sync for each, and both must return the \
                  same enrollments.\n\n\
                  Every synced roster is checked against the simulator's world. The run exits \
                  with status 1 (saying why) if anything was throttled, the ratio is below \
                  --target-ratio, or a roster is wrong or failed, and with status 2 if the \
                  bench itself could not run (moto, the template, the simulator). The QuotaSettings knobs default to the library's defaults \
                  (time-based ones scaled by --time-scale); the result block on stdout is meant \
                  for BENCHMARKS.md. Build with --release. Logs: CANVAS_BENCH_LOG (default warn).",
    after_help = "Examples:\n  \
                  cargo run --release -p coursewire-benches --bin canvas-bench\n  \
                  cargo run --release -p coursewire-benches --bin canvas-bench -- --per-worker 1\n  \
                  cargo run --release -p coursewire-benches --bin canvas-bench -- --courses 50 --time-scale 20\n  \
                  cargo run --release -p coursewire-benches --bin canvas-bench -- --release never --lease-window-ms 1000"
)]
struct Args {
    /// Courses in the synthetic world (all of them are synced).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    courses: u64,
    /// Fewest students per course.
    #[arg(long, default_value_t = 50)]
    min_students: usize,
    /// Most students per course.
    #[arg(long, default_value_t = 1000)]
    max_students: usize,
    /// Independent clients (simulated Lambda instances) syncing at the same time.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    workers: u64,
    /// Rosters each worker syncs at once; its client's adaptive concurrency limits the
    /// requests actually in flight. 2 uses Canvas as fully as 1 with about a quarter of the
    /// lease calls (bigger leases); 1 has the shortest tail of roster latency.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    per_worker: u64,
    /// The simulator's bucket leaks this many times faster than Canvas's 10 units/s; the
    /// clients' outflow (and, unless set explicitly, their lease window) is scaled to match.
    #[arg(long, default_value_t = 10.0)]
    time_scale: f64,
    /// Seed of the synthetic world (course sizes, names, enrollment states).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Courses compared through GraphQL and REST after the run (0: skip the comparison).
    #[arg(long, default_value_t = 20)]
    compare: usize,
    /// When each worker gives its unspent leased units back to the shared budget: after every
    /// roster (like a Lambda invocation per course), once when its share is done, or never.
    #[arg(long, value_enum, default_value_t = Release::End)]
    release: Release,
    /// The simulator's processing time per API request, in real milliseconds.
    #[arg(long, default_value_t = 1, value_name = "MS")]
    latency_ms: u64,
    /// Minimum cost consumed / (outflow × T + high-water mark) for the run to pass.
    #[arg(long, default_value_t = 0.90)]
    target_ratio: f64,
    /// QuotaSettings.rate_safety: the shared bucket drains at outflow × this.
    #[arg(long, default_value_t = QuotaSettings::default().rate_safety)]
    rate_safety: f64,
    /// QuotaSettings.burst_margin: units kept below the high-water mark.
    #[arg(long, default_value_t = QuotaSettings::default().burst_margin)]
    burst_margin: f64,
    /// QuotaSettings.lease_window in real milliseconds (default: the library's 1 s divided
    /// by --time-scale, so a lease batch holds as many units as in production).
    #[arg(long, value_name = "MS")]
    lease_window_ms: Option<u64>,
    /// QuotaSettings.max_concurrency: requests in flight per client at most.
    #[arg(long, default_value_t = QuotaSettings::default().max_concurrency)]
    max_concurrency: usize,
    /// QuotaSettings.remaining_floor: below this X-Rate-Limit-Remaining the next request
    /// waits for the bucket to drain.
    #[arg(long, default_value_t = QuotaSettings::default().remaining_floor)]
    remaining_floor: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Release {
    /// After every roster sync.
    Roster,
    /// Once, when the worker's share of courses is done.
    End,
    /// Never (units a worker holds at the end are lost to the others).
    Never,
}

impl Release {
    fn name(self) -> &'static str {
        match self {
            Release::Roster => "roster",
            Release::End => "end",
            Release::Never => "never",
        }
    }
}

impl Args {
    fn validate(&self) -> Result<()> {
        ensure!(
            self.time_scale.is_finite() && self.time_scale > 0.0,
            "--time-scale must be a positive number"
        );
        ensure!(
            self.min_students <= self.max_students,
            "--min-students must not exceed --max-students"
        );
        ensure!(
            (0.0..=1.0).contains(&self.target_ratio),
            "--target-ratio is a fraction (0.90 = 90 %)"
        );
        ensure!(
            self.rate_safety > 0.0 && self.rate_safety <= 1.5,
            "--rate-safety must be in (0, 1.5]"
        );
        ensure!(self.max_concurrency >= 1, "--max-concurrency must be ≥ 1");
        Ok(())
    }

    fn outflow(&self) -> f64 {
        CANVAS_OUTFLOW * self.time_scale
    }

    fn lease_window(&self) -> Duration {
        match self.lease_window_ms {
            Some(ms) => Duration::from_millis(ms),
            None => QuotaSettings::default()
                .lease_window
                .div_f64(self.time_scale),
        }
    }

    fn quota_settings(&self) -> QuotaSettings {
        QuotaSettings {
            outflow_per_sec: self.outflow(),
            high_water: CANVAS_HIGH_WATER,
            rate_safety: self.rate_safety,
            burst_margin: self.burst_margin,
            lease_window: self.lease_window(),
            max_concurrency: self.max_concurrency,
            remaining_floor: self.remaining_floor,
            ..QuotaSettings::default()
        }
    }
}

#[tokio::main]
async fn main() {
    match bench().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(2);
        }
    }
}

/// Runs everything; `Ok(false)` when a target was missed (the report says why).
async fn bench() -> Result<bool> {
    let args = Args::parse();
    start_run("CANVAS_BENCH_LOG", "warn");
    args.validate()?;

    step("starting moto and provisioning from template.yaml (first run installs moto into .venv)");
    let root = repo_root().context("finding the repository root")?;
    let moto = MotoServer::start(&root).await.context("starting moto")?;
    let aws = moto.sdk_config();
    let overrides = Overrides::default()
        .parameter("Stage", STAGE)
        .parameter("CanvasJwtIssuer", ISSUER);
    let deployed = provision(&Template::load_repo()?, &aws, &overrides)
        .await
        .context("provisioning the template on moto")?;
    let table = deployed
        .table_name(RATE_LIMIT_TABLE)
        .ok_or_else(|| anyhow!("the template has no {RATE_LIMIT_TABLE}"))?
        .to_string();

    let built = Instant::now();
    let world = World::synthetic(
        args.seed,
        usize::try_from(args.courses).context("--courses")?,
        args.min_students..=args.max_students,
    );
    let truth = Arc::new(Truth::of(&world));
    step(&format!(
        "synthetic world: {} courses, {} enrollments ({} students), seed {}, built in {:.1} s",
        truth.courses.len(),
        truth.enrollments(),
        truth.students(),
        args.seed,
        built.elapsed().as_secs_f64()
    ));
    let sim = CanvasApiSim::start(
        ApiSimConfig {
            time_scale: args.time_scale,
            token_lifetime: Duration::from_secs(3600),
            latency: Duration::from_millis(args.latency_ms),
            ..ApiSimConfig::default()
        },
        world,
    )
    .await
    .context("starting the Canvas API simulator")?;

    let outcome = tokio::select! {
        outcome = run(&args, &aws, &table, &sim, &truth) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    sim.stop().await;
    moto.stop();
    let report = outcome?;
    println!("{}", report.render());
    if report.failures.is_empty() {
        Ok(true)
    } else {
        for failure in &report.failures {
            eprintln!("FAILED: {failure}");
        }
        Ok(false)
    }
}

// ---------------------------------------------------------------- the world's truth

/// What each course's roster must contain, from the simulator's world.
struct Truth {
    /// Course id (as the API answers it) → expected roster, in id order.
    courses: BTreeMap<String, Expected>,
}

struct Expected {
    /// Non-deleted enrollment ids.
    enrollments: BTreeSet<String>,
    users: usize,
    sections: usize,
    students: usize,
}

impl Truth {
    fn of(world: &World) -> Self {
        let mut courses: BTreeMap<String, Expected> = world
            .courses
            .keys()
            .map(|id| {
                (
                    id.to_string(),
                    Expected {
                        enrollments: BTreeSet::new(),
                        users: 0,
                        sections: 0,
                        students: 0,
                    },
                )
            })
            .collect();
        let mut users: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for e in world.enrollments.values() {
            if e.workflow_state == "deleted" {
                continue;
            }
            let course = e.course_id.to_string();
            if let Some(expected) = courses.get_mut(&course) {
                expected.enrollments.insert(e.id.to_string());
                if e.enrollment_type == "StudentEnrollment" {
                    expected.students += 1;
                }
                users.entry(course).or_default().insert(e.user_id);
            }
        }
        for s in world.sections.values() {
            if s.workflow_state == "deleted" {
                continue;
            }
            if let Some(expected) = courses.get_mut(&s.course_id.to_string()) {
                expected.sections += 1;
            }
        }
        for (course, ids) in users {
            if let Some(expected) = courses.get_mut(&course) {
                expected.users = ids.len();
            }
        }
        Self { courses }
    }

    fn enrollments(&self) -> usize {
        self.courses.values().map(|c| c.enrollments.len()).sum()
    }

    fn students(&self) -> usize {
        self.courses.values().map(|c| c.students).sum()
    }

    /// Why `roster` is not the course's roster, if it is not.
    fn check(&self, roster: &Roster) -> Option<String> {
        let Some(expected) = self.courses.get(&roster.course_id) else {
            return Some(format!("course {}: not in the world", roster.course_id));
        };
        let got: BTreeSet<String> = roster.enrollments.iter().map(|e| e.id.clone()).collect();
        if got.len() != roster.enrollments.len() {
            return Some(format!(
                "course {}: {} enrollments, {} distinct",
                roster.course_id,
                roster.enrollments.len(),
                got.len()
            ));
        }
        if got != expected.enrollments {
            return Some(format!(
                "course {}: {} enrollments, expected {} ({} missing, {} unexpected)",
                roster.course_id,
                got.len(),
                expected.enrollments.len(),
                expected.enrollments.difference(&got).count(),
                got.difference(&expected.enrollments).count()
            ));
        }
        if roster.users.len() != expected.users || roster.sections.len() != expected.sections {
            return Some(format!(
                "course {}: {} users and {} sections, expected {} and {}",
                roster.course_id,
                roster.users.len(),
                roster.sections.len(),
                expected.users,
                expected.sections
            ));
        }
        None
    }
}

// ---------------------------------------------------------------- clients

/// What every simulated Lambda instance reads from the shared credentials secret.
#[derive(Clone)]
struct Grant {
    credentials: Credentials,
    budget_id: String,
}

impl Grant {
    fn new(sim: &CanvasApiSim, grant: TokenGrant, budget_id: String) -> Self {
        let expires_in = i64::try_from(grant.expires_in).unwrap_or(3600);
        Self {
            credentials: Credentials {
                base_url: sim.base_url(),
                client_id: DEFAULT_CLIENT_ID.into(),
                client_secret: DEFAULT_CLIENT_SECRET.into(),
                refresh_token: grant.refresh_token,
                access_token: Some(grant.access_token),
                access_token_expires_at: Some(Utc::now() + TimeDelta::seconds(expires_in)),
                access_token_issued_at: Some(Utc::now()),
                revoked_at: None,
                extra: Default::default(),
            },
            budget_id,
        }
    }

    fn access_token(&self) -> &str {
        self.credentials.access_token.as_deref().unwrap_or_default()
    }
}

/// What one client's budget store did: a breakdown of its lease calls.
#[derive(Debug, Default)]
struct StoreCounts {
    reads: AtomicU64,
    swaps: AtomicU64,
    /// Conditional writes that lost to another client's write.
    conflicts: AtomicU64,
    failures: AtomicU64,
}

/// [`StoreCounts`] at the end of a worker's run.
#[derive(Debug, Clone, Copy)]
struct StoreTotals {
    reads: u64,
    swaps: u64,
    conflicts: u64,
    failures: u64,
}

impl StoreCounts {
    fn totals(&self) -> StoreTotals {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StoreTotals {
            reads: get(&self.reads),
            swaps: get(&self.swaps),
            conflicts: get(&self.conflicts),
            failures: get(&self.failures),
        }
    }
}

/// The DynamoDB budget store, counting what it does (for the report only).
struct CountingStore {
    inner: DynamoBudgetStore,
    counts: Arc<StoreCounts>,
}

#[async_trait]
impl BudgetStore for CountingStore {
    async fn read(&self, key: &str) -> Result<Option<i64>, ServiceError> {
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read(key).await
    }

    async fn swap(&self, key: &str, expected: Option<i64>, new: i64) -> Result<Swap, ServiceError> {
        self.counts.swaps.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.swap(key, expected, new).await;
        match &result {
            Ok(Swap::Conflict(_)) => self.counts.conflicts.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counts.failures.fetch_add(1, Ordering::Relaxed),
            Ok(Swap::Done) => 0,
        };
        result
    }
}

/// A client built from scratch, as one Lambda instance builds its own: nothing in it is
/// shared with any other client (its own credentials copy, token source, quota pool,
/// DynamoDB client and HTTP connection pool).
fn build_client(
    aws: &aws_config::SdkConfig,
    table: &str,
    grant: &Grant,
    settings: QuotaSettings,
) -> Result<(CanvasClient, Arc<StoreCounts>)> {
    let sink = Arc::new(CollectingSink::new());
    let tokens = TokenSource::new(
        Arc::new(MemoryCredentialStore::new(grant.credentials.clone())),
        Arc::new(HttpTokenEndpoint::new(Duration::from_secs(10))?),
        TokenSettings::default(),
        sink.clone(),
        FUNCTION,
    );
    let counts = Arc::new(StoreCounts::default());
    let store = CountingStore {
        inner: DynamoBudgetStore::new(aws_sdk_dynamodb::Client::new(aws), table),
        counts: Arc::clone(&counts),
    };
    let quota = Quota::new(Arc::new(store), settings, &grant.budget_id);
    let client = CanvasClient::new(
        HttpSettings::default(),
        Arc::new(tokens),
        Arc::new(quota),
        sink,
        FUNCTION,
    )?;
    Ok((client, counts))
}

fn unique_budget_id(what: &str) -> String {
    format!(
        "{what}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_millis()
    )
}

// ---------------------------------------------------------------- the run

struct WorkerReport {
    client: ClientStats,
    quota: QuotaStats,
    store: StoreTotals,
    latency: Histogram<u64>,
    rosters: u64,
    enrollments: u64,
    wrong: Vec<String>,
    errors: Vec<String>,
    started: Instant,
    finished: Instant,
    /// Units still in the pool at the end (after any release).
    pooled: f64,
}

/// One simulated Lambda instance: builds its client, waits for the start signal, syncs its
/// share of courses.
#[allow(clippy::too_many_arguments)]
async fn worker(
    aws: aws_config::SdkConfig,
    table: String,
    grant: Grant,
    settings: QuotaSettings,
    courses: Vec<String>,
    per_worker: usize,
    release: Release,
    truth: Arc<Truth>,
    start: Arc<Barrier>,
    bar: ProgressBar,
) -> Result<WorkerReport> {
    let built = build_client(&aws, &table, &grant, settings);
    start.wait().await;
    let (client, counts) = built?;
    let started = Instant::now();
    let client = &client;
    let mut latency = histogram(HIST_MAX_US);
    let (mut rosters, mut enrollments) = (0u64, 0u64);
    let (mut wrong, mut errors) = (Vec::new(), Vec::new());
    let mut syncs = futures::stream::iter(courses)
        .map(|course| async move {
            let begun = Instant::now();
            let roster = client.roster(&course).await;
            let took = begun.elapsed();
            if release == Release::Roster {
                // Best effort, like the end of an invocation.
                let _ = client.release_quota().await;
            }
            (course, took, roster)
        })
        .buffer_unordered(per_worker);
    while let Some((course, took, roster)) = syncs.next().await {
        bar.inc(1);
        match roster {
            Ok(roster) => {
                latency.saturating_record(micros(took));
                rosters += 1;
                enrollments += roster.enrollments.len() as u64;
                if let Some(why) = truth.check(&roster) {
                    wrong.push(why);
                }
            }
            Err(e) => errors.push(format!("course {course}: {e}")),
        }
    }
    drop(syncs);
    let finished = Instant::now();
    if release == Release::End {
        client
            .release_quota()
            .await
            .context("giving the unspent units back")?;
    }
    Ok(WorkerReport {
        client: client.stats(),
        quota: client.quota().stats(),
        store: counts.totals(),
        latency,
        rosters,
        enrollments,
        wrong,
        errors,
        started,
        finished,
        pooled: client.quota().pooled(),
    })
}

/// The simulator as sampled during the run.
#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    cost: f64,
    level: f64,
}

struct RunFigures {
    workers: Vec<WorkerReport>,
    samples: Vec<Sample>,
    before: ApiStats,
    after: ApiStats,
    elapsed: Duration,
}

async fn sync_all(
    args: &Args,
    aws: &aws_config::SdkConfig,
    table: &str,
    sim: &CanvasApiSim,
    truth: &Arc<Truth>,
) -> Result<RunFigures> {
    let grant = Grant::new(
        sim,
        sim.issue_grant(DEFAULT_CLIENT_ID)?,
        unique_budget_id("bench"),
    );
    let workers = usize::try_from(args.workers).context("--workers")?;
    let mut shares: Vec<Vec<String>> = vec![Vec::new(); workers];
    for (i, course) in truth.courses.keys().enumerate() {
        shares[i % workers].push(course.clone());
    }
    let bar = progress(truth.courses.len(), "rosters");
    let start = Arc::new(Barrier::new(workers + 1));
    let handles: Vec<_> = shares
        .into_iter()
        .map(|courses| {
            tokio::spawn(worker(
                aws.clone(),
                table.to_string(),
                grant.clone(),
                args.quota_settings(),
                courses,
                args.per_worker as usize,
                args.release,
                Arc::clone(truth),
                Arc::clone(&start),
                bar.clone(),
            ))
        })
        .collect();
    step(&format!(
        "syncing {} rosters with {} workers ({} at a time each), one token, one budget",
        truth.courses.len(),
        workers,
        args.per_worker
    ));
    start.wait().await;
    let before = sim.stats();
    let t0 = Instant::now();
    let token = grant.access_token().to_string();
    let all = futures::future::join_all(handles);
    tokio::pin!(all);
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    let joined = loop {
        tokio::select! {
            joined = &mut all => break joined,
            _ = tick.tick() => {
                let stats = sim.stats();
                let level = CANVAS_HIGH_WATER - sim.rate_limit_remaining(&token);
                samples.push(Sample {
                    at: t0.elapsed(),
                    cost: stats.cost_total - before.cost_total,
                    level,
                });
                bar.set_message(format!("level {level:>3.0}"));
            }
        }
    };
    bar.finish_and_clear();
    let after = sim.stats();
    let mut reports = Vec::with_capacity(workers);
    for joined in joined {
        reports.push(joined.map_err(|e| anyhow!("a worker panicked: {e}"))??);
    }
    let first = reports.iter().map(|w| w.started).min().unwrap_or(t0);
    let last = reports.iter().map(|w| w.finished).max().unwrap_or(t0);
    let elapsed = last.saturating_duration_since(first);
    Ok(RunFigures {
        workers: reports,
        samples,
        before,
        after,
        elapsed,
    })
}

// ---------------------------------------------------------------- GraphQL vs REST

struct Comparison {
    courses: usize,
    enrollments: usize,
    graphql_requests: u64,
    rest_requests: u64,
    graphql_cost: f64,
    rest_cost: f64,
    graphql_time: Duration,
    rest_time: Duration,
    throttled: u64,
    differences: Vec<String>,
    /// Requests per sync by course size: (enrollments, GraphQL, REST).
    by_size: Vec<(usize, u64, u64)>,
}

/// Courses spread evenly over the size order, smallest and largest included.
fn sample_courses(truth: &Truth, n: usize) -> Vec<String> {
    let mut by_size: Vec<(usize, &String)> = truth
        .courses
        .iter()
        .map(|(id, e)| (e.enrollments.len(), id))
        .collect();
    by_size.sort();
    let len = by_size.len();
    let n = n.min(len);
    let mut picked = BTreeSet::new();
    for i in 0..n {
        let index = if n == 1 { 0 } else { i * (len - 1) / (n - 1) };
        picked.insert(index);
    }
    picked.into_iter().map(|i| by_size[i].1.clone()).collect()
}

/// What both APIs must agree on: enrollments (id, user, section, type, state), users and
/// section ids. (GraphQL's Section has no start/end dates; REST's does.)
fn roster_differences(graphql: &Roster, rest: &Roster) -> Option<String> {
    let enrollments = |r: &Roster| -> BTreeSet<_> {
        r.enrollments
            .iter()
            .map(|e| {
                (
                    e.id.clone(),
                    e.user_id.clone(),
                    e.section_id.clone(),
                    e.enrollment_type.clone(),
                    e.state.clone(),
                )
            })
            .collect()
    };
    let users = |r: &Roster| -> BTreeSet<_> {
        r.users
            .iter()
            .map(|u| (u.id.clone(), u.name.clone(), u.sis_user_id.clone()))
            .collect()
    };
    let sections = |r: &Roster| -> BTreeSet<_> {
        r.sections
            .iter()
            .map(|s| (s.id.clone(), s.name.clone()))
            .collect()
    };
    let (ge, re) = (enrollments(graphql), enrollments(rest));
    if ge != re {
        return Some(format!(
            "course {}: enrollments differ (GraphQL {}, REST {}, {} only in GraphQL, {} only in REST)",
            graphql.course_id,
            ge.len(),
            re.len(),
            ge.difference(&re).count(),
            re.difference(&ge).count()
        ));
    }
    if users(graphql) != users(rest) {
        return Some(format!("course {}: users differ", graphql.course_id));
    }
    if sections(graphql) != sections(rest) {
        return Some(format!("course {}: sections differ", graphql.course_id));
    }
    None
}

async fn compare(
    args: &Args,
    aws: &aws_config::SdkConfig,
    table: &str,
    sim: &CanvasApiSim,
    truth: &Truth,
) -> Result<Comparison> {
    // A new grant is a new access token, so Canvas gives it a fresh bucket; a new budget id
    // gives it a fresh shared budget.
    let grant = Grant::new(
        sim,
        sim.issue_grant(DEFAULT_CLIENT_ID)?,
        unique_budget_id("bench-compare"),
    );
    let (client, _) = build_client(aws, table, &grant, args.quota_settings())?;
    let courses = sample_courses(truth, args.compare);
    let throttled_before = sim.stats().throttled;
    let mut c = Comparison {
        courses: courses.len(),
        enrollments: 0,
        graphql_requests: 0,
        rest_requests: 0,
        graphql_cost: 0.0,
        rest_cost: 0.0,
        graphql_time: Duration::ZERO,
        rest_time: Duration::ZERO,
        throttled: 0,
        differences: Vec::new(),
        by_size: Vec::new(),
    };
    let bar = progress(courses.len(), "compare");
    for course in &courses {
        let s0 = sim.stats();
        let t = Instant::now();
        let graphql = client
            .roster(course)
            .await
            .with_context(|| format!("GraphQL roster of course {course}"))?;
        c.graphql_time += t.elapsed();
        let s1 = sim.stats();
        let t = Instant::now();
        let rest = client
            .roster_rest(course)
            .await
            .with_context(|| format!("REST roster of course {course}"))?;
        c.rest_time += t.elapsed();
        let s2 = sim.stats();
        let (gq, rq) = (
            s1.api_requests - s0.api_requests,
            s2.api_requests - s1.api_requests,
        );
        c.graphql_requests += gq;
        c.rest_requests += rq;
        c.graphql_cost += s1.cost_total - s0.cost_total;
        c.rest_cost += s2.cost_total - s1.cost_total;
        c.enrollments += graphql.enrollments.len();
        c.by_size.push((graphql.enrollments.len(), gq, rq));
        if let Some(why) = truth.check(&graphql) {
            c.differences.push(format!("GraphQL {why}"));
        }
        if let Some(why) = roster_differences(&graphql, &rest) {
            c.differences.push(why);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    c.throttled = sim.stats().throttled - throttled_before;
    Ok(c)
}

// ---------------------------------------------------------------- report

async fn run(
    args: &Args,
    aws: &aws_config::SdkConfig,
    table: &str,
    sim: &CanvasApiSim,
    truth: &Arc<Truth>,
) -> Result<Report> {
    let figures = sync_all(args, aws, table, sim, truth).await?;
    let comparison = if args.compare > 0 {
        step(&format!(
            "comparing GraphQL and REST on {} courses (fresh token, fresh budget)",
            args.compare.min(truth.courses.len())
        ));
        Some(compare(args, aws, table, sim, truth).await?)
    } else {
        None
    };
    Ok(Report::build(args, truth, &figures, comparison.as_ref()))
}

struct Report {
    lines: Vec<(String, String)>,
    notes: Vec<String>,
    failures: Vec<String>,
}

/// Sum of a field over every worker.
fn total<T: std::iter::Sum<T>>(workers: &[WorkerReport], f: impl Fn(&WorkerReport) -> T) -> T {
    workers.iter().map(f).sum()
}

/// Cost consumed by `at` into the run, interpolated between samples; `end` is the final
/// (T, cost) point.
fn cost_at(samples: &[Sample], end: (Duration, f64), at: f64) -> f64 {
    let mut prev = (0.0, 0.0);
    let points = samples
        .iter()
        .map(|s| (s.at.as_secs_f64(), s.cost))
        .chain(std::iter::once((end.0.as_secs_f64(), end.1)));
    for (t, cost) in points {
        if t >= at {
            let span = t - prev.0;
            return if span <= 0.0 {
                cost
            } else {
                prev.1 + (cost - prev.1) * (at - prev.0) / span
            };
        }
        prev = (t, cost);
    }
    prev.1
}

/// Units/s consumed in each quarter of the run.
fn quarter_rates(samples: &[Sample], end: (Duration, f64)) -> Vec<f64> {
    let secs = end.0.as_secs_f64();
    (0..4)
        .map(|q| {
            let (a, b) = (secs * q as f64 / 4.0, secs * (q + 1) as f64 / 4.0);
            (cost_at(samples, end, b) - cost_at(samples, end, a)) / (b - a).max(1e-9)
        })
        .collect()
}

impl Report {
    fn line(&mut self, key: &str, value: impl Into<String>) {
        self.lines.push((key.to_string(), value.into()));
    }

    fn build(
        args: &Args,
        truth: &Truth,
        figures: &RunFigures,
        comparison: Option<&Comparison>,
    ) -> Self {
        let mut r = Report {
            lines: Vec::new(),
            notes: Vec::new(),
            failures: Vec::new(),
        };
        let w = &figures.workers;
        let settings = args.quota_settings();
        let outflow = args.outflow();
        let secs = figures.elapsed.as_secs_f64();
        let throttled = figures.after.throttled - figures.before.throttled;
        let cost = figures.after.cost_total - figures.before.cost_total;
        let sustainable = outflow * secs + CANVAS_HIGH_WATER;
        let ratio = cost / sustainable;
        let requests = total(w, |x| x.client.requests);
        let canvas_requests = figures.after.api_requests - figures.before.api_requests;
        let lease_calls = total(w, |x| x.client.lease_calls);
        let retries = total(w, |x| x.client.retries);
        let rosters = total(w, |x| x.rosters);
        let enrollments = total(w, |x| x.enrollments);
        let leased = total(w, |x| x.quota.units_leased);
        let released = total(w, |x| x.quota.units_released);
        let pooled = total(w, |x| x.pooled);
        let wait_ms = total(w, |x| x.quota.wait_ms);
        let remaining_min = w
            .iter()
            .filter_map(|x| x.client.remaining_min)
            .fold(f64::INFINITY, f64::min);
        let mut latency = histogram(HIST_MAX_US);
        for x in w {
            let _ = latency.add(&x.latency);
        }

        r.line(
            "world",
            format!(
                "{} courses, {}..={} students each (seed {}): {} students, {} enrollments with teachers",
                truth.courses.len(),
                args.min_students,
                args.max_students,
                args.seed,
                truth.students(),
                truth.enrollments()
            ),
        );
        r.line(
            "canvas",
            format!(
                "simulator, leaky bucket per token: high water {CANVAS_HIGH_WATER:.0}, {IN_FLIGHT_CHARGE:.0} up front \
                 per request in flight, outflow {CANVAS_OUTFLOW:.0}/s × time scale {} = {outflow:.0} units/s; \
                 {} ms per request",
                args.time_scale, args.latency_ms
            ),
        );
        r.line(
            "clients",
            format!(
                "{} workers, each its own client (token source, quota, DynamoDB client); one access \
                 token, one budget item on moto; {} roster(s) at a time per worker; release: {}",
                args.workers,
                args.per_worker,
                args.release.name()
            ),
        );
        r.line(
            "quota",
            format!(
                "outflow {:.0}/s × rate_safety {} = {:.1}/s, burst {:.0} (high water − margin {:.0}), \
                 lease batch {:.1} units (window {} ms), max_concurrency {}, remaining_floor {:.0}",
                settings.outflow_per_sec,
                settings.rate_safety,
                settings.rate(),
                settings.burst(),
                settings.burst_margin,
                settings.batch(),
                settings.lease_window.as_millis(),
                settings.max_concurrency,
                settings.remaining_floor
            ),
        );
        r.line(
            "synced",
            format!(
                "{rosters} of {} rosters, {enrollments} enrollments in {secs:.2} s (T: start signal → last roster's last answer)",
                truth.courses.len()
            ),
        );
        r.line(
            "throttled",
            format!(
                "{throttled} answers (target 0); client retries {retries}; throttle penalties {}",
                total(w, |x| x.quota.throttle_penalties)
            ),
        );
        r.line(
            "cost consumed",
            format!("{cost:.1} units (sum of X-Request-Cost)"),
        );
        r.line(
            "sustainable",
            format!(
                "{sustainable:.1} units = {outflow:.0}/s × {secs:.2} s + {CANVAS_HIGH_WATER:.0} headroom"
            ),
        );
        r.line(
            "ratio",
            format!(
                "{:.1} % (target ≥ {:.0} %)",
                ratio * 100.0,
                args.target_ratio * 100.0
            ),
        );
        let quarters = quarter_rates(&figures.samples, (figures.elapsed, cost));
        r.line(
            "cost rate",
            format!(
                "{} units/s by quarter of T (outflow {outflow:.0}/s; the budget's rate is {:.1}/s \
                 plus its {:.0}-unit burst)",
                quarters
                    .iter()
                    .map(|q| format!("{q:.1}"))
                    .collect::<Vec<_>>()
                    .join(" · "),
                settings.rate(),
                settings.burst()
            ),
        );
        let levels: Vec<f64> = figures.samples.iter().map(|s| s.level).collect();
        let mean_level = levels.iter().sum::<f64>() / levels.len().max(1) as f64;
        r.line(
            "bucket level",
            format!(
                "peak {:.1} of {CANVAS_HIGH_WATER:.0}; mean {mean_level:.1} (sampled every {} ms); lowest \
                 X-Rate-Limit-Remaining seen {}",
                figures.after.peak_level,
                SAMPLE_EVERY.as_millis(),
                if remaining_min.is_finite() {
                    format!("{remaining_min:.1}")
                } else {
                    "n/a".into()
                }
            ),
        );
        r.line(
            "canvas requests",
            format!(
                "{canvas_requests} (simulator) · {requests} (clients) · {:.1} per roster · {:.1} requests/s",
                canvas_requests as f64 / rosters.max(1) as f64,
                canvas_requests as f64 / secs.max(1e-9)
            ),
        );
        r.line(
            "lease calls",
            format!(
                "{lease_calls} DynamoDB calls = {:.3} per Canvas call; {:.1} units leased, {:.1} \
                 released, {:.1} left in pools; quota waits {:.1} s summed over workers",
                lease_calls as f64 / requests.max(1) as f64,
                leased,
                released,
                pooled,
                wait_ms as f64 / 1e3
            ),
        );
        let swaps = total(w, |x| x.store.swaps);
        let conflicts = total(w, |x| x.store.conflicts);
        r.line(
            "  of which",
            format!(
                "{} conditional writes ({} won, {} lost to another client's write = {:.0} %), {} \
                 re-reads, {} failures",
                swaps,
                swaps - conflicts,
                conflicts,
                conflicts as f64 / swaps.max(1) as f64 * 100.0,
                total(w, |x| x.store.reads),
                total(w, |x| x.store.failures),
            ),
        );
        r.line("roster ms", percentiles(&latency));
        r.line(
            "  from",
            "roster() called → roster returned (every page, quota waits included)",
        );
        let per_worker: Vec<String> = w
            .iter()
            .map(|x| {
                format!(
                    "{:.1} s/{:.1}k",
                    x.finished
                        .saturating_duration_since(x.started)
                        .as_secs_f64(),
                    x.enrollments as f64 / 1e3
                )
            })
            .collect();
        r.line("workers", per_worker.join(" · "));
        r.line("  each", "seconds busy / thousands of enrollments synced");

        if let Some(c) = comparison {
            let n = c.courses.max(1) as f64;
            r.line(
                "graphql",
                format!(
                    "{:.2} requests per roster sync, {:.2} units, {:.1} ms ({} courses, {} enrollments)",
                    c.graphql_requests as f64 / n,
                    c.graphql_cost / n,
                    c.graphql_time.as_secs_f64() * 1e3 / n,
                    c.courses,
                    c.enrollments
                ),
            );
            r.line(
                "rest",
                format!(
                    "{:.2} requests per roster sync, {:.2} units, {:.1} ms",
                    c.rest_requests as f64 / n,
                    c.rest_cost / n,
                    c.rest_time.as_secs_f64() * 1e3 / n
                ),
            );
            let sizes: Vec<String> = c
                .by_size
                .iter()
                .filter(|(size, _, _)| {
                    let first = c.by_size.first().map(|b| b.0);
                    let last = c.by_size.last().map(|b| b.0);
                    Some(*size) == first || Some(*size) == last
                })
                .map(|(size, g, rest)| format!("{size} enrollments: {g} vs {rest}"))
                .collect();
            r.line("  by size", sizes.join(" · "));
            r.line(
                "  same roster",
                if c.differences.is_empty() {
                    format!("ok: both APIs returned the same enrollments, users and sections for all {} courses", c.courses)
                } else {
                    format!("{} course(s) differ", c.differences.len())
                },
            );
            if c.throttled > 0 {
                r.notes.push(format!(
                    "the comparison phase was throttled {} times",
                    c.throttled
                ));
            }
            for d in &c.differences {
                r.failures.push(format!("GraphQL vs REST: {d}"));
            }
        }

        if CANVAS_HIGH_WATER > 0.25 * sustainable {
            r.notes.push(format!(
                "the run is short: the {CANVAS_HIGH_WATER:.0}-unit headroom is {:.0} % of what the \
                 bucket sustains, and the budget keeps {:.0} of it in reserve (burst_margin) and \
                 more as in-flight charges, so the ratio says little; sync more courses or lower \
                 --time-scale",
                CANVAS_HIGH_WATER / sustainable * 100.0,
                settings.burst_margin
            ));
        }
        if throttled > 0 {
            r.failures
                .push(format!("Canvas throttled {throttled} requests (target 0)"));
        }
        if ratio < args.target_ratio {
            r.failures.push(format!(
                "cost consumed is {:.1} % of what the bucket sustains over the run, below the {:.0} % target",
                ratio * 100.0,
                args.target_ratio * 100.0
            ));
        }
        if rosters != truth.courses.len() as u64 {
            r.failures.push(format!(
                "{} of {} rosters synced",
                rosters,
                truth.courses.len()
            ));
        }
        for x in w {
            for e in x.errors.iter().take(5) {
                r.failures.push(format!("roster failed: {e}"));
            }
            for e in x.wrong.iter().take(5) {
                r.failures.push(format!("wrong roster: {e}"));
            }
        }
        r.line(
            "verdict",
            if r.failures.is_empty() {
                "ok: zero throttles, ratio on target, every roster matches the world".to_string()
            } else {
                format!(
                    "FAILED: {} target(s) or check(s) missed, listed below",
                    r.failures.len()
                )
            },
        );
        r
    }

    fn render(&self) -> String {
        let mut lines = vec![(
            "canvas-bench".to_string(),
            format!(
                "{} · {} · coursewire {}{}",
                Utc::now().format("%Y-%m-%d %H:%M UTC"),
                if cfg!(debug_assertions) {
                    "debug build"
                } else {
                    "release build"
                },
                env!("CARGO_PKG_VERSION"),
                git_commit().map(|c| format!(" @ {c}")).unwrap_or_default()
            ),
        )];
        lines.extend(self.lines.iter().cloned());
        result_block("canvas-bench", lines, &self.notes, &self.failures)
    }
}
