//! capture-bench: what one `panopto-poller` tick costs as the teaching catalog grows, and how
//! long a term's import takes (issue 10).
//!
//! Tick cases: the same 4,000 lectures a day (one every 12.6 s from 08:00 to 22:00 UTC, 50
//! minutes each), spread over `--rooms` rooms (default 500 and 1,000), for a term of
//! `--days` days in the first case and proportionally longer in the others (so the larger
//! case also holds twice the lectures). At 14:00
//! of the term's first day the same lectures are due in every case; the question is whether
//! DynamoDB requests and Panopto calls per tick stay flat while the catalog doubles. The
//! poller runs in-process against moto (through a counting proxy) and the Panopto simulator;
//! the lectures due are booked first by the real scheduler.
//!
//! Import case: a term of `--import-lectures` lectures (100 sections meeting MWF) imported
//! into an empty catalog (prepare + write), then the same import again (nothing to write).

use anyhow::{Result, ensure};
use chrono::Weekday::{Fri, Mon, Sat, Sun, Thu, Tue, Wed};
use chrono::{DateTime, Datelike, Duration as Delta, NaiveDate, NaiveTime, TimeZone, Utc};
use clap::Parser;
use coursewire_audit::DynamoAuditTrail;
use coursewire_benches::campus::{rooms_and_rule, stage, start_moto, table};
use coursewire_benches::report::{
    git_commit, histogram, micros, percentiles, result_block, start_run, step,
};
use coursewire_live_events::catalog::{DynamoCatalog, EntityRecord};
use coursewire_local::campus::panopto_client;
use coursewire_local::fault_proxy::{FaultPlan, FaultProxy};
use coursewire_local::moto::{MotoServer, sdk_config_for};
use coursewire_pipeline::handoff::SqsEventQueue;
use coursewire_pipeline::inbox::DynamoInbox;
use coursewire_pipeline::intake::Intake;
use coursewire_pipeline::processor::StoredRow;
use coursewire_recordings::booking::Scheduler;
use coursewire_recordings::poller::{PollWindow, Poller};
use coursewire_runtime::telemetry::CollectingSink;
use coursewire_simulators::panopto::{PanoptoSim, PanoptoSimConfig};
use coursewire_teaching::import::{ImportFile, ImportFiles, Importer};
use coursewire_teaching::sections::CatalogDirectory;
use coursewire_teaching::{DynamoTeachingStore, Entry, Kind, MeetingPattern, Room, TeachingStore};
use futures::StreamExt;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BINARY: &str = "capture-bench";
const COURSES: usize = 100;

#[derive(Parser, Debug)]
#[command(about = "Cost of one panopto-poller tick as the catalog doubles; import time of a term.")]
struct Args {
    /// Room counts to compare (same lectures a day in each).
    #[arg(long, value_delimiter = ',', default_value = "500,1000")]
    rooms: Vec<usize>,
    /// Lectures a day.
    #[arg(long, default_value_t = 4000)]
    lectures_per_day: usize,
    /// Term length in days of the first (smallest) case; the others scale with their rooms.
    #[arg(long, default_value_t = 2)]
    days: usize,
    /// Steady-state ticks measured per case (after the first).
    #[arg(long, default_value_t = 20)]
    ticks: usize,
    /// Lectures of the imported term.
    #[arg(long, default_value_t = 4000)]
    import_lectures: usize,
}

fn term_start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, 5).unwrap_or_default()
}

fn at(day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(time))
}

/// Section `i` (one per daily lecture): course `i % COURSES`, room `i % rooms`.
fn section_id(i: usize) -> String {
    format!("2107000{:010}", 100_000 + i)
}

fn course_id(i: usize) -> String {
    format!("2107000{:010}", 1 + i % COURSES)
}

/// The Canvas catalog rows of `sections` sections and their courses, as the bus leaves them.
async fn seed_canvas(ddb: &aws_sdk_dynamodb::Client, catalog: &str, sections: usize) -> Result<()> {
    let mut rows = Vec::new();
    for c in 0..COURSES.min(sections) {
        let mut course = EntityRecord::empty(&format!("course:{}", course_id(c)));
        course.sequence = 1;
        course.state = json!({"name": format!("Course {c}"), "course_code": format!("C-{c:03}")})
            .as_object()
            .cloned();
        rows.push(course);
    }
    for i in 0..sections {
        let mut section = EntityRecord::empty(&format!("section:{}", section_id(i)));
        section.sequence = 1;
        section.state = json!({"name": format!("Section {i}"), "course_id": course_id(i)})
            .as_object()
            .cloned();
        rows.push(section);
    }
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    for chunk in rows.chunks(25) {
        let mut writes = Vec::with_capacity(chunk.len());
        for row in chunk {
            let put = PutRequest::builder()
                .set_item(Some(row.to_item()))
                .build()
                .map_err(|e| anyhow::anyhow!(e.to_string()))?;
            writes.push(WriteRequest::builder().put_request(put).build());
        }
        ddb.batch_write_item()
            .request_items(catalog, writes)
            .send()
            .await?;
    }
    Ok(())
}

struct TickCase {
    rooms: usize,
    lectures: usize,
    due: usize,
    booked: usize,
    first: Duration,
    steady: hdrhistogram::Histogram<u64>,
    ddb_per_tick: BTreeMap<String, u64>,
    panopto_per_tick: u64,
    first_events: usize,
}

fn count_ops(proxy: &FaultProxy) -> BTreeMap<String, u64> {
    proxy
        .stats()
        .operations
        .iter()
        .map(|(op, s)| (op.clone(), s.requests))
        .collect()
}

fn diff(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

async fn tick_case(moto: &MotoServer, args: &Args, rooms: usize) -> Result<TickCase> {
    // The catalog grows with the rooms: the term is as much longer as there are more rooms.
    let days = (args.days * rooms).div_ceil(args.rooms[0].max(1)).max(1);
    step(&format!(
        "{rooms} rooms: provisioning, {days}-day term of {} lectures a day",
        args.lectures_per_day
    ));
    let deployed = stage(moto, &format!("bench-{rooms}")).await?;
    let aws = moto.sdk_config();
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let catalog = table(&deployed, "CatalogTable")?;
    seed_canvas(&ddb, &catalog, args.lectures_per_day).await?;
    let tick_at = at(
        term_start(),
        NaiveTime::from_hms_opt(14, 0, 0).unwrap_or_default(),
    );
    let sim = PanoptoSim::start(PanoptoSimConfig {
        start: tick_at - Delta::hours(8),
        time_scale: 0.0,
        ..PanoptoSimConfig::default()
    })
    .await?;
    let recorders = sim.add_recorders(&(0..rooms).map(|r| format!("Room {r}")).collect::<Vec<_>>());

    // The catalog written directly (the import is measured on its own below).
    let teaching_table = table(&deployed, "TeachingTable")?;
    let store = Arc::new(DynamoTeachingStore::new(ddb.clone(), &teaching_table));
    let zone = chrono_tz::UTC;
    rooms_and_rule(
        store.as_ref(),
        &recorders,
        "{course_code} {section} Lecture {n}",
        48,
    )
    .await?;
    let mut lectures = Vec::new();
    for i in 0..args.lectures_per_day {
        let minutes = (8 * 60 + i * 14 * 60 / args.lectures_per_day) as u32;
        let start = NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0).unwrap_or_default();
        let pattern = MeetingPattern {
            section_id: section_id(i),
            course_id: course_id(i),
            department: "ENG".into(),
            room_id: format!("R{}", i % rooms),
            days: vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun],
            start,
            end: start + Delta::minutes(50),
            term_start: term_start(),
            term_end: term_start() + Delta::days(days as i64 - 1),
            term: "Fall".into(),
            time_zone: zone,
            cancelled: Default::default(),
            extra: Vec::new(),
        };
        store.put(&Entry::Meeting(pattern.clone())).await?;
        lectures.push(pattern);
    }
    let room_map: BTreeMap<String, Room> = store.rooms().await?;
    let mut all = Vec::new();
    for pattern in &lectures {
        all.extend(coursewire_teaching::lectures::expand(pattern, &room_map)?);
    }
    let total = all.len();
    step(&format!("{rooms} rooms: writing {total} lectures"));
    let entries: Vec<Entry> = all.into_iter().map(Entry::Lecture).collect();
    futures::stream::iter(entries.iter().map(|e| store.put(e)))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;

    let panopto = Arc::new(panopto_client(&sim)?);
    let window = PollWindow::default();
    let directory = Arc::new(CatalogDirectory::new(DynamoCatalog::new(
        ddb.clone(),
        &catalog,
    )));
    let scheduler = Scheduler::new(
        store.clone(),
        panopto.clone(),
        directory,
        Arc::new(DynamoAuditTrail::new(
            ddb.clone(),
            table(&deployed, "AuditTable")?,
        )),
    );
    step(&format!("{rooms} rooms: booking the lectures due"));
    let report = scheduler
        .sync_window(
            tick_at - window.lookback,
            tick_at + window.lead + window.longest_lecture,
            tick_at - Delta::hours(8),
        )
        .await?;
    ensure!(
        report.failed.is_empty() && report.conflicts.is_empty(),
        "booking: {report:?}"
    );

    // The poller's AWS calls go through a counting proxy.
    let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough()).await?;
    let counted = sdk_config_for(proxy.endpoint());
    let counted_ddb = aws_sdk_dynamodb::Client::new(&counted);
    let intake = Intake::new(
        Arc::new(DynamoInbox::new(
            counted_ddb.clone(),
            table(&deployed, "RecordingsInboxTable")?,
            Duration::from_secs(86_400 * 400),
            Duration::from_secs(86_400 * 30),
        )),
        Arc::new(SqsEventQueue::new(
            aws_sdk_sqs::Client::new(&counted),
            table(&deployed, "RecordingsQueue")?,
        )),
    );
    let trail = Arc::new(DynamoAuditTrail::new(
        counted_ddb.clone(),
        table(&deployed, "AuditTable")?,
    ));
    let poller = Poller::new(
        Arc::new(DynamoTeachingStore::new(counted_ddb, &teaching_table)),
        panopto,
        intake,
        trail,
        window,
        Arc::new(CollectingSink::new()),
        BINARY,
    );
    step(&format!(
        "{rooms} rooms: first tick (every lecture due is new), then {} steady ticks",
        args.ticks
    ));
    let started = Instant::now();
    let first = poller.tick(tick_at).await?;
    let first_time = started.elapsed();
    let mut steady = histogram(600_000_000);
    let mut ddb_per_tick = BTreeMap::new();
    let mut panopto_per_tick = 0;
    for _ in 0..args.ticks {
        let before = count_ops(&proxy);
        let calls_before = sim.stats().api_requests();
        let t = Instant::now();
        let report = poller.tick(tick_at).await?;
        steady.record(micros(t.elapsed()))?;
        ensure!(
            report.events == 0,
            "a steady tick emitted {} events",
            report.events
        );
        ddb_per_tick = diff(&count_ops(&proxy), &before);
        panopto_per_tick = sim.stats().api_requests() - calls_before;
    }
    sim.stop().await;
    Ok(TickCase {
        rooms,
        lectures: total,
        due: first.watched,
        booked: report.booked,
        first: first_time,
        steady,
        ddb_per_tick,
        panopto_per_tick,
        first_events: first.events,
    })
}

/// A term of `lectures` lectures: 100 sections meeting MWF 50 minutes, in 50 rooms.
fn import_files(lectures: usize) -> ImportFiles {
    let sections = 100;
    let per_section = lectures.div_ceil(sections);
    // MWF from Monday 2026-08-31, until each section has met `per_section` times.
    let start = NaiveDate::from_ymd_opt(2026, 8, 31).unwrap_or_default();
    let mut end = start;
    let mut held = 0;
    let mut day = start;
    while held < per_section {
        if matches!(day.weekday(), Mon | Wed | Fri) {
            held += 1;
            end = day;
        }
        day += Delta::days(1);
    }
    let mut rooms = String::from("room_id,building,name,capacity,time_zone,recorder_id\n");
    for r in 0..50 {
        rooms.push_str(&format!("R{r},Main,Room {r},100,UTC,rr-{r}\n"));
    }
    let mut meetings = String::from(
        "section_id,department,kind,room_id,days,start_time,end_time,term,term_start,term_end,time_zone,date\n",
    );
    for s in 0..sections {
        let hour = 8 + (s / 50) * 2;
        meetings.push_str(&format!(
            "{},ENG,weekly,R{},MWF,{hour:02}:00,{hour:02}:50,Fall,{start},{end},,\n",
            section_id(s),
            s % 50
        ));
    }
    let file = |name: &str, text: String| {
        Some(ImportFile {
            name: name.into(),
            text,
        })
    };
    ImportFiles {
        rooms: file("rooms.csv", rooms),
        meetings: file("meetings.csv", meetings),
        rules: None,
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    start_run("CAPTURE_BENCH_LOG", "warn");
    let args = Args::parse();
    let moto = start_moto().await?;
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    let mut cases = Vec::new();
    for &rooms in &args.rooms {
        cases.push(tick_case(&moto, &args, rooms).await?);
    }
    for case in &cases {
        let ddb: Vec<String> = case
            .ddb_per_tick
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        lines.push((
            format!("tick, {} rooms", case.rooms),
            format!(
                "{} lectures in catalog, {} due ({} booked); first tick {:.0} ms ({} events); steady {}",
                case.lectures, case.due, case.booked, case.first.as_secs_f64() * 1e3, case.first_events, percentiles(&case.steady)
            ),
        ));
        lines.push((
            format!("  per steady tick, {} rooms", case.rooms),
            format!(
                "DynamoDB: {} ; Panopto calls: {}",
                ddb.join(", "),
                case.panopto_per_tick
            ),
        ));
    }
    if let [small, large, ..] = cases.as_slice() {
        let reads = |c: &TickCase| c.ddb_per_tick.get("Query").copied().unwrap_or(0);
        if reads(large) > reads(small) + 1
            || large.panopto_per_tick > small.panopto_per_tick * 3 / 2
        {
            failures.push("per-tick cost grew with the catalog".to_string());
        }
    }

    step(&format!(
        "import: a term of {} lectures",
        args.import_lectures
    ));
    let deployed = stage(&moto, "bench-import").await?;
    let ddb = aws_sdk_dynamodb::Client::new(&moto.sdk_config());
    let catalog = table(&deployed, "CatalogTable")?;
    seed_canvas(&ddb, &catalog, 100).await?;
    let store = DynamoTeachingStore::new(ddb.clone(), table(&deployed, "TeachingTable")?);
    let directory = CatalogDirectory::new(DynamoCatalog::new(ddb, &catalog));
    let importer = Importer::new(&store, &directory);
    let files = import_files(args.import_lectures);
    let t = Instant::now();
    let plan = importer.prepare(&files).await?;
    let planned = t.elapsed();
    importer.apply(&plan, &|_, _| {}).await?;
    let first = t.elapsed();
    let t = Instant::now();
    let again = importer.prepare(&files).await?;
    let rerun = t.elapsed();
    let lectures = plan.tally.get(&Kind::Lecture).map_or(0, |t| t.create);
    if !again.is_empty() {
        failures.push("re-running the import planned changes".into());
    }
    lines.push((
        "import".into(),
        format!(
            "{lectures} lectures, {} writes: {:.1} s (plan {:.1} s); same import again {:.1} s, {} writes",
            plan.changes.len(), first.as_secs_f64(), planned.as_secs_f64(), rerun.as_secs_f64(), again.changes.len()
        ),
    ));
    if let Some(commit) = git_commit() {
        lines.push(("commit".into(), commit));
    }
    println!("{}", result_block(BINARY, lines, &["DynamoDB requests are counted at a proxy in front of moto; Panopto calls at the simulator".into()], &failures));
    ensure!(failures.is_empty(), "{failures:?}");
    Ok(())
}
