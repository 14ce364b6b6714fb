//! sla-bench: a simulated teaching day for `sla-monitor` at 1x and 2x scale (issue 12).
//!
//! Scale `s` has 500 x s rooms and 2,000 x s lectures a day (one every 25 / s seconds from
//! 08:00 to 22:00 UTC, 50 minutes each); the day before and the day after are in the catalog
//! too, so reads that followed the catalog rather than the lectures due would show. Every
//! lecture was recorded and captioned, as the poller's sighting on its row says, except one
//! section in `--missing-every` on the measured day (no booking, no sighting). The real
//! monitor ticks once a simulated minute through a window of the day (`--from-hour`,
//! `--hours`; 07:00 to 11:00 by default) against moto, through a counting proxy. Measured:
//! tick time, DynamoDB requests and lecture rows read per tick, and for each missing lecture
//! the time from class end + grace to its page, on the simulated clock.

use anyhow::Result;
use chrono::Weekday::{Fri, Mon, Sat, Sun, Thu, Tue, Wed};
use chrono::{DateTime, Duration as Delta, NaiveDate, NaiveTime, TimeZone, Utc};
use clap::Parser;
use coursewire_audit::DynamoAuditTrail;
use coursewire_benches::campus::{rooms_and_rule, stage, start_moto, table};
use coursewire_benches::report::{
    git_commit, histogram, micros, percentiles, result_block, start_run, step,
};
use coursewire_incidents::IncidentKind;
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_local::campus::panopto_client;
use coursewire_local::fault_proxy::{FaultPlan, FaultProxy};
use coursewire_local::moto::{MotoServer, sdk_config_for};
use coursewire_publishing::dynamo::DynamoWorkflowStore;
use coursewire_runtime::telemetry::CollectingSink;
use coursewire_simulators::panopto::{PanoptoSim, PanoptoSimConfig};
use coursewire_sla::{Deadlines, DynamoWatermark, SlaMonitor};
use coursewire_teaching::sections::CatalogDirectory;
use coursewire_teaching::{DynamoTeachingStore, Entry, MeetingPattern, TeachingStore};
use futures::StreamExt;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BINARY: &str = "sla-bench";

#[derive(Parser, Debug)]
#[command(
    about = "sla-monitor over a simulated teaching day at 1x and 2x scale: tick time, reads per tick, class end to page."
)]
struct Args {
    /// Scales to compare: scale s has 500 x s rooms and 2,000 x s lectures a day.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    scales: Vec<usize>,
    /// One lecture in this many has no recording.
    #[arg(long, default_value_t = 100)]
    missing_every: usize,
    /// First simulated tick, hour of the day (UTC). Lectures run 08:00 to 22:00.
    #[arg(long, default_value_t = 7)]
    from_hour: u32,
    /// Simulated hours ticked, one tick a minute (moto makes a whole day slow to run).
    #[arg(long, default_value_t = 4)]
    hours: i64,
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, 6).unwrap_or_default()
}

fn at(time: NaiveTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day().and_time(time))
}

struct Case {
    scale: usize,
    lectures: usize,
    missing: usize,
    ticks: usize,
    tick_time: hdrhistogram::Histogram<u64>,
    ddb_per_tick: hdrhistogram::Histogram<u64>,
    rows_per_tick: hdrhistogram::Histogram<u64>,
    busiest_ddb: u64,
    page_delay: hdrhistogram::Histogram<u64>,
    paged: usize,
}

fn requests(proxy: &FaultProxy) -> u64 {
    proxy.stats().operations.values().map(|s| s.requests).sum()
}

async fn day_case(moto: &MotoServer, args: &Args, scale: usize) -> Result<Case> {
    let rooms = 500 * scale;
    let per_day = 2000 * scale;
    step(&format!("{scale}x: {rooms} rooms, {per_day} lectures"));
    let deployed = stage(moto, &format!("bench-sla-{scale}")).await?;
    let ddb = aws_sdk_dynamodb::Client::new(&moto.sdk_config());
    let store = Arc::new(DynamoTeachingStore::new(
        ddb.clone(),
        table(&deployed, "TeachingTable")?,
    ));
    // Panopto is asked about a lecture's recorder when nobody has looked at it (the missing
    // lectures), and about sessions before paging a booked lecture (none is booked here).
    let sim = PanoptoSim::start(PanoptoSimConfig::default()).await?;
    let recorders = sim.add_recorders(&(0..rooms).map(|r| format!("Room {r}")).collect::<Vec<_>>());
    let zone = chrono_tz::UTC;
    rooms_and_rule(store.as_ref(), &recorders, "{course_code} Lecture {n}", 24).await?;
    let room_map = store.rooms().await?;
    let mut lectures = Vec::new();
    // One section in `missing_every` has no recording on the measured day.
    let mut unrecorded = BTreeSet::new();
    for i in 0..per_day {
        let seconds = (8 * 3600 + i * 14 * 3600 / per_day) as u32;
        let start =
            NaiveTime::from_hms_opt(seconds / 3600, seconds / 60 % 60, 0).unwrap_or_default();
        let pattern = MeetingPattern {
            section_id: format!("2107000{:010}", 100_000 + i),
            course_id: format!("2107000{:010}", 1 + i % 100),
            department: "ENG".into(),
            room_id: format!("R{}", i % rooms),
            days: vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun],
            start,
            end: start + Delta::minutes(50),
            // The day before and after are in the catalog too: they must not be read.
            term_start: day() - Delta::days(1),
            term_end: day() + Delta::days(1),
            term: "Fall".into(),
            time_zone: zone,
            cancelled: Default::default(),
            extra: Vec::new(),
        };
        if i % args.missing_every == 0 {
            unrecorded.insert(pattern.section_id.clone());
        }
        lectures.extend(coursewire_teaching::lectures::expand(&pattern, &room_map)?);
    }
    step(&format!(
        "{scale}x: writing {} lectures and their sightings",
        lectures.len()
    ));
    let recorded = json!({"version": 3, "recorder": "Stopped", "captions": true,
        "session": {"name": "recorded", "folder_id": null, "state": "Complete"}});
    let is_missing = |l: &coursewire_teaching::Lecture| {
        l.local_date == day() && unrecorded.contains(&l.section_id)
    };
    let writes = lectures.iter().map(|lecture| {
        let (store, recorded) = (store.clone(), recorded.clone());
        let missing = is_missing(lecture);
        let lecture = lecture.clone();
        async move {
            let entry = Entry::Lecture(lecture.clone());
            store.put(&entry).await?;
            if !missing {
                store.set_observed(&lecture, &recorded).await?;
            }
            anyhow::Ok(())
        }
    });
    futures::stream::iter(writes)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let first = at(NaiveTime::from_hms_opt(args.from_hour, 0, 0).unwrap_or_default());
    let last = first + Delta::hours(args.hours);
    let grace = Deadlines::default().grace;
    // The missing lectures whose deadline (class end + grace) falls within the ticked window.
    let missing = lectures
        .iter()
        .filter(|l| is_missing(l) && l.end + grace <= last - Delta::minutes(1))
        .count();

    let panopto = Arc::new(panopto_client(&sim)?);

    // The monitor's AWS calls go through a counting proxy.
    let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough()).await?;
    let counted = sdk_config_for(proxy.endpoint());
    let cddb = aws_sdk_dynamodb::Client::new(&counted);
    let trail = Arc::new(DynamoAuditTrail::new(
        cddb.clone(),
        table(&deployed, "AuditTable")?,
    ));
    let incidents = coursewire_incidents::Incidents::new(
        Arc::new(coursewire_incidents::DynamoIncidentStore::new(
            cddb.clone(),
            table(&deployed, "IncidentsTable")?,
        )),
        Arc::new(coursewire_incidents::SnsPager::new(
            aws_sdk_sns::Client::new(&counted),
            table(&deployed, "IncidentsTopic")?,
        )),
        trail,
    );
    let monitor = SlaMonitor::new(
        Arc::new(DynamoTeachingStore::new(
            cddb.clone(),
            table(&deployed, "TeachingTable")?,
        )),
        Arc::new(DynamoWorkflowStore::new(
            cddb.clone(),
            table(&deployed, "RecordingsTable")?,
        )),
        Arc::new(CatalogDirectory::new(DynamoCatalog::new(
            cddb.clone(),
            table(&deployed, "CatalogTable")?,
        ))),
        panopto,
        incidents,
        Arc::new(DynamoWatermark::new(
            cddb,
            table(&deployed, "IncidentsTable")?,
            "sla-monitor",
        )),
        Deadlines::default(),
        Arc::new(CollectingSink::new()),
        "sla-monitor",
    );

    step(&format!(
        "{scale}x: ticking through the day, one tick a simulated minute"
    ));
    let mut case = Case {
        scale,
        lectures: lectures.len(),
        missing,
        ticks: 0,
        tick_time: histogram(60_000_000),
        ddb_per_tick: histogram(100_000),
        rows_per_tick: histogram(100_000),
        busiest_ddb: 0,
        page_delay: histogram(86_400_000_000),
        paged: 0,
    };
    for minute in 0..(args.hours * 60) {
        let now = first + Delta::minutes(minute);
        let before = requests(&proxy);
        let started = Instant::now();
        let report = monitor.tick(now).await?;
        let took = started.elapsed();
        let ddb_calls = requests(&proxy) - before;
        case.ticks += 1;
        case.tick_time.record(micros(took).max(1))?;
        case.ddb_per_tick.record(ddb_calls.max(1))?;
        case.rows_per_tick.record(report.lectures_read as u64 + 1)?;
        case.busiest_ddb = case.busiest_ddb.max(ddb_calls);
        for raised in report
            .raised
            .iter()
            .filter(|r| r.new && r.kind == IncidentKind::MissingRecording)
        {
            case.paged += 1;
            let delay = Duration::from_secs_f64(raised.late_seconds.max(0.0));
            case.page_delay.record(micros(delay).max(1))?;
        }
    }
    Ok(case)
}

/// p50, p99 and max of `h`, each divided by `per` and written by `show`.
fn spread(h: &hdrhistogram::Histogram<u64>, per: f64, show: fn(f64) -> String) -> String {
    let at = |q: f64| show(h.value_at_quantile(q) as f64 / per);
    format!(
        "p50 {}, p99 {}, max {}",
        at(0.5),
        at(0.99),
        show(h.max() as f64 / per)
    )
}

fn counts(h: &hdrhistogram::Histogram<u64>) -> String {
    spread(h, 1.0, |v| format!("{v:.0}"))
}

#[tokio::main]
async fn main() -> Result<()> {
    start_run("SLA_BENCH_LOG", "warn");
    let args = Args::parse();
    let moto = start_moto().await?;
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    let mut cases = Vec::new();
    for &scale in &args.scales {
        cases.push(day_case(&moto, &args, scale).await?);
    }
    for c in &cases {
        lines.push((
            format!("{}x day", c.scale),
            format!(
                "{} lectures in the catalog over 3 days, {} unrecorded due in the window, {} ticks",
                c.lectures, c.missing, c.ticks
            ),
        ));
        lines.push((
            format!("  tick time, {}x", c.scale),
            percentiles(&c.tick_time),
        ));
        lines.push((
            format!("  DynamoDB requests per tick, {}x", c.scale),
            format!("{} (busiest {})", counts(&c.ddb_per_tick), c.busiest_ddb),
        ));
        lines.push((
            format!("  lecture rows read per tick, {}x", c.scale),
            counts(&c.rows_per_tick),
        ));
        lines.push((
            format!("  class end + grace to page, {}x", c.scale),
            format!(
                "{} ({} paged)",
                spread(&c.page_delay, 1e6, |v| format!("{v:.1} s")),
                c.paged
            ),
        ));
        if c.paged != c.missing {
            failures.push(format!(
                "{}x: {} missing lectures, {} paged",
                c.scale, c.missing, c.paged
            ));
        }
    }
    if let [small, large, ..] = cases.as_slice() {
        let ratio = |f: &dyn Fn(&Case) -> f64| f(large) / f(small).max(1e-9);
        lines.push((
            "ratio 2x / 1x".into(),
            format!(
                "tick p50 {:.2}, DynamoDB requests p50 {:.2}, rows read p50 {:.2}",
                ratio(&|c| c.tick_time.value_at_quantile(0.5) as f64),
                ratio(&|c| c.ddb_per_tick.value_at_quantile(0.5) as f64),
                ratio(&|c| c.rows_per_tick.value_at_quantile(0.5) as f64),
            ),
        ));
    }
    if let Some(commit) = git_commit() {
        lines.push(("commit".into(), commit));
    }
    println!("{}", result_block(BINARY, lines, &[], &failures));
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failures.join("; "))
    }
}
