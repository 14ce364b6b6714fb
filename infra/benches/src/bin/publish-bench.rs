//! publish-bench: what publishing one recording costs in Panopto and Canvas calls, how long
//! the orchestrator takes per batch, and how fast "why is this lecture missing?" answers
//! (issue 11).
//!
//! `--recordings` sections of one course meet at the same time, each in its own room with a
//! recorder, each with `--students` students (all provisioned in Panopto). The real
//! scheduler books them and the real poller records them on the simulated Panopto, with the
//! orchestrator paused. Then the orchestrator runs in-process over `recordings.fifo`, batch
//! by batch, and nothing else calls Panopto or Canvas, so the simulators' counts are the
//! workflow's own. A publish replay of every recording follows (what verifying costs), then
//! the why-missing answer for each lecture, repeated.

use anyhow::{Context, Result, ensure};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::{Duration as Delta, Timelike, Utc};
use clap::Parser;
use coursewire_audit::{DynamoAuditTrail, Scope, WhyMissing};
use coursewire_benches::report::{
    git_commit, histogram, micros, percentiles, result_block, start_run, step,
};
use coursewire_live_events::catalog::EntityRecord;
use coursewire_local::provision::Overrides;
use coursewire_local::stack::{CANVAS_SECRET, LocalStack, StackOptions};
use coursewire_pipeline::processor::StoredRow;
use coursewire_publishing::Status;
use coursewire_publishing::dynamo::DynamoWorkflowStore;
use coursewire_publishing::ports::WorkflowStore;
use coursewire_runtime::function::QueueMessage;
use coursewire_runtime::telemetry::CollectingSink;
use coursewire_simulators::canvas_api::{
    ApiSimConfig, CanvasApiSim, DEFAULT_CLIENT_ID as CANVAS_CLIENT_ID,
    DEFAULT_CLIENT_SECRET as CANVAS_CLIENT_SECRET, World,
};
use coursewire_simulators::panopto::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_SOAP_PASSWORD, DEFAULT_SOAP_USER, PanoptoSim,
    PanoptoSimConfig,
};
use coursewire_teaching::DynamoTeachingStore;
use coursewire_teaching::import::{ImportFile, ImportFiles, Importer};
use coursewire_teaching::sections::CatalogDirectory;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BINARY: &str = "publish-bench";
const ORCHESTRATOR: &str = "OrchestratorFunction";

#[derive(Parser, Debug)]
#[command(
    about = "Panopto and Canvas calls per published recording; orchestrator batch time; why-missing latency."
)]
struct Args {
    /// Recordings (sections, each one lecture today).
    #[arg(long, default_value_t = 40)]
    recordings: usize,
    /// Students per section.
    #[arg(long, default_value_t = 30)]
    students: usize,
    /// Why-missing questions asked per lecture.
    #[arg(long, default_value_t = 20)]
    questions: usize,
    /// Other lectures' audit records loaded before the why-missing questions (9 records
    /// each, as a published lecture has). DynamoDB reads one partition per lecture whatever
    /// the table holds; moto does not (its Query slows with the table), so keep this small
    /// against moto.
    #[arg(long, default_value_t = 0)]
    filler_lectures: usize,
}

/// Audit records of `lectures` other lectures (9 each), written 25 to a request, 8 requests
/// at a time.
async fn fill_audit(ddb: &aws_sdk_dynamodb::Client, table: &str, lectures: usize) -> Result<usize> {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    use futures::StreamExt;
    let s = |v: String| AttributeValue::S(v);
    let mut items: Vec<WriteRequest> = Vec::with_capacity(lectures * 9);
    for l in 0..lectures {
        for r in 0..9 {
            let item = [
                (
                    "pk".to_string(),
                    s(format!(
                        "lecture#filler-{}/2026-10-{:02}#1",
                        l / 20,
                        1 + l % 20
                    )),
                ),
                ("sk".to_string(), s(format!("rec#{l:08}{r}"))),
                ("at".to_string(), s(format!("2026-10-01T08:{r:02}:00.000Z"))),
                ("action".to_string(), s("polled".into())),
                ("data".to_string(), s("{}".into())),
            ]
            .into_iter()
            .collect();
            let put = PutRequest::builder().set_item(Some(item)).build()?;
            items.push(WriteRequest::builder().put_request(put).build());
        }
    }
    let total = items.len();
    let chunks: Vec<Vec<WriteRequest>> = items.chunks(25).map(<[WriteRequest]>::to_vec).collect();
    let results: Vec<Result<()>> = futures::stream::iter(chunks)
        .map(|chunk| async move {
            let mut pending = chunk;
            while !pending.is_empty() {
                let out = ddb
                    .batch_write_item()
                    .request_items(table, pending)
                    .send()
                    .await?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
            }
            Ok(())
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(total)
}

/// Requests per endpoint, and their total.
fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    start_run("PUBLISH_BENCH_LOG", "warn");
    let args = Args::parse();
    let n = args.recordings;

    step("starting the Panopto and Canvas simulators");
    let panopto = PanoptoSim::start(PanoptoSimConfig {
        time_scale: 0.0,
        processing_time: Duration::from_secs(10 * 60),
        caption_delay: Duration::from_secs(30 * 60),
        ..PanoptoSimConfig::default()
    })
    .await?;
    let rooms: Vec<String> = (0..n).map(|i| format!("Room {i}")).collect();
    let recorders = panopto.add_recorders(&rooms);
    let canvas = CanvasApiSim::start(
        ApiSimConfig {
            time_scale: 50.0,
            ..ApiSimConfig::default()
        },
        World::synthetic(5, 1, 1..=1),
    )
    .await?;
    let course = *canvas
        .world_snapshot()
        .courses
        .keys()
        .next()
        .context("a course")?;
    let mut sections = Vec::new();
    for i in 0..n {
        let section = canvas.add_section(course, &format!("Section {i:03}"))?;
        for s in 0..args.students {
            let user = canvas.add_user(&format!("Student {i}-{s}"));
            canvas.enroll(course, section, user, "StudentEnrollment")?;
        }
        sections.push(section);
    }
    let grant = canvas.issue_grant(CANVAS_CLIENT_ID)?;

    step("starting the local stack (moto; the orchestrator paused)");
    let stack = LocalStack::start(
        StackOptions {
            overrides: Overrides::default()
                .parameter("Stage", "bench-publish")
                .parameter("CanvasJwtIssuer", "https://canvas.bench.coursewire")
                .parameter("CanvasOutflowPerSecond", "500"),
            ..StackOptions::default()
        }
        .pause(ORCHESTRATOR)
        // Its Panopto calls would join the counts measured here.
        .pause("SlaMonitorFunction")
        .pause("AccessSyncFunction")
        .pause("PanoptoPollerFunction")
        .pause("RecordingSchedulerFunction")
        .secret(
            "PanoptoCredentialsSecret",
            json!({"base_url": panopto.base_url(), "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET, "soap_username": DEFAULT_SOAP_USER,
                "soap_password": DEFAULT_SOAP_PASSWORD}),
        )
        .secret(
            CANVAS_SECRET,
            json!({"base_url": canvas.base_url(), "client_id": CANVAS_CLIENT_ID,
                "client_secret": CANVAS_CLIENT_SECRET, "refresh_token": grant.refresh_token}),
        ),
    )
    .await?;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let sqs = aws_sdk_sqs::Client::new(&stack.aws);
    let table = |id: &str| -> Result<String> {
        Ok(stack.table_name(id).context(id.to_string())?.to_string())
    };

    step("the Canvas catalog, the Panopto users, the teaching catalog, the bookings");
    let world = canvas.world_snapshot();
    let catalog = table("CatalogTable")?;
    let mut rows = vec![(
        format!("course:{course}"),
        json!({"name": "Bench Course", "course_code": "BENCH-101"}),
        None,
    )];
    for s in world.sections.values().filter(|s| s.course_id == course) {
        rows.push((
            format!("section:{}", s.id),
            json!({"name": s.name, "course_id": course.to_string()}),
            Some(format!("course:{course}")),
        ));
    }
    for e in world.enrollments.values().filter(|e| e.course_id == course) {
        rows.push((
            format!("enrollment:{}", e.id),
            json!({"user_id": e.user_id.to_string(), "section_id": e.course_section_id.to_string(),
                "type": e.enrollment_type, "workflow_state": e.workflow_state}),
            Some(format!("course:{course}")),
        ));
        panopto.add_user(&format!("canvas\\{}", e.user_id), "Bench user");
    }
    for (key, state, parent) in rows {
        let mut record = EntityRecord::empty(&key);
        record.sequence = 1;
        record.state = state.as_object().cloned();
        record.parent = parent;
        ddb.put_item()
            .table_name(&catalog)
            .set_item(Some(record.to_item()))
            .send()
            .await?;
    }
    // Lectures start in 10 minutes, in UTC (none crosses midnight: 50 minutes long).
    let start = (Utc::now() + Delta::minutes(10))
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .context("time")?;
    let end = start + Delta::minutes(50);
    let day = start.format("%Y-%m-%d").to_string();
    let mut rooms_csv = String::from("room_id,building,name,capacity,time_zone,recorder_id\n");
    let mut meetings = String::from(
        "section_id,department,kind,room_id,days,start_time,end_time,term,term_start,term_end,time_zone,date\n",
    );
    for (i, section) in sections.iter().enumerate() {
        rooms_csv.push_str(&format!("R{i},Bench,Room {i},100,UTC,{}\n", recorders[i]));
        meetings.push_str(&format!(
            "{section},BENCH,weekly,R{i},{},{},{},Today,{day},{day},,\n",
            start.format("%a"),
            start.format("%H:%M"),
            end.format("%H:%M")
        ));
    }
    let rules = r#"[{"scope": "department", "id": "BENCH", "folder_template": "{term}/{course_code} {section}",
        "session_template": "{course_code} {section} Lecture {n} ({date})", "caption_provider": "Panopto",
        "caption_sla_hours": 48, "module_template": "Lecture recordings", "access": "section_roster",
        "post": "before_captions", "enabled": true}]"#;
    let file = |name: &str, text: String| {
        Some(ImportFile {
            name: name.into(),
            text,
        })
    };
    let teaching = Arc::new(DynamoTeachingStore::new(
        ddb.clone(),
        table("TeachingTable")?,
    ));
    let directory = CatalogDirectory::new(coursewire_live_events::catalog::DynamoCatalog::new(
        ddb.clone(),
        &catalog,
    ));
    let importer = Importer::new(teaching.as_ref(), &directory);
    let plan = importer
        .prepare(&ImportFiles {
            rooms: file("rooms.csv", rooms_csv),
            meetings: file("meetings.csv", meetings),
            rules: file("rules.json", rules.to_string()),
        })
        .await?;
    importer.apply(&plan, &|_, _| {}).await?;
    let ids: Vec<String> = sections.iter().map(u64::to_string).collect();
    let booked = stack
        .invoke("RecordingSchedulerFunction", json!({"sections": ids}))
        .await?;
    ensure!(booked["booked"] == n, "{booked}");

    step("recording the lectures (poller ticks: detected, recording, complete)");
    stack.invoke("PanoptoPollerFunction", json!({})).await?;
    panopto.advance(Duration::from_secs(15 * 60));
    stack.invoke("PanoptoPollerFunction", json!({})).await?;
    panopto.advance(Duration::from_secs(60 * 60));
    stack.invoke("PanoptoPollerFunction", json!({})).await?;

    step("publishing: the orchestrator over recordings.fifo, in-process");
    let spec = stack
        .deployed
        .functions
        .iter()
        .find(|f| f.logical_id == ORCHESTRATOR)
        .context("the orchestrator")?;
    let handlers = coursewire_local::functions::build(
        spec,
        &stack.aws,
        Arc::new(CollectingSink::new()),
        Arc::new(coursewire_runtime::clock::SystemClock),
    )
    .await?;
    let orchestrator = handlers.queue.context("a queue handler")?;
    let queue = stack
        .queue_url("RecordingsQueue")
        .context("queue")?
        .to_string();
    let panopto_before = panopto.stats().requests;
    let canvas_before = canvas.stats();
    let mut batch_times = histogram(60_000_000);
    let mut messages = 0;
    let started = Instant::now();
    let mut idle = 0;
    while idle < 3 {
        let received = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .wait_time_seconds(0)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            idle += 1;
            continue;
        }
        idle = 0;
        let batch: Vec<QueueMessage> = received
            .iter()
            .map(|m| QueueMessage {
                id: m.message_id().unwrap_or_default().to_string(),
                body: m.body().unwrap_or_default().to_string(),
                attributes: BTreeMap::new(),
            })
            .collect();
        let t = Instant::now();
        let outcome = orchestrator
            .handle(batch)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        batch_times.record(micros(t.elapsed()))?;
        for m in &received {
            let id = m.message_id().unwrap_or_default();
            if !outcome.failed.iter().any(|f| f == id)
                && let Some(handle) = m.receipt_handle()
            {
                sqs.delete_message()
                    .queue_url(&queue)
                    .receipt_handle(handle)
                    .send()
                    .await?;
                messages += 1;
            }
        }
    }
    let publishing = started.elapsed();
    let store = DynamoWorkflowStore::new(ddb.clone(), table("RecordingsTable")?);
    let mut published = 0;
    for section in &ids {
        published += store
            .of_section(section, None)
            .await?
            .iter()
            .filter(|w| w.status == Status::Published)
            .count();
    }
    let panopto_calls = delta(&panopto_before, &panopto.stats().requests);
    let canvas_after = canvas.stats();
    let canvas_api = canvas_after.api_requests - canvas_before.api_requests;
    let canvas_tokens: u64 = canvas_after.token_requests.values().sum::<u64>()
        - canvas_before.token_requests.values().sum::<u64>();
    let panopto_total: u64 = panopto_calls.values().sum();

    step("publish replay of every recording (everything already done)");
    let replay_panopto = panopto.stats().requests;
    let replay_canvas = canvas.stats().api_requests;
    let items = |w: &World| {
        w.module_items
            .values()
            .filter(|i| i.workflow_state != "deleted")
            .count()
    };
    let items_before = items(&canvas.world_snapshot());
    let t = Instant::now();
    for section in &ids {
        stack
            .invoke(ORCHESTRATOR, json!({"section_id": section}))
            .await?;
    }
    let replayed = t.elapsed();
    let replay_panopto: u64 = delta(&replay_panopto, &panopto.stats().requests)
        .values()
        .sum();
    let replay_canvas = canvas.stats().api_requests - replay_canvas;

    step(&format!(
        "why-missing: loading {} other lectures' audit records first",
        args.filler_lectures
    ));
    let t = Instant::now();
    let filler = fill_audit(&ddb, &table("AuditTable")?, args.filler_lectures).await?;
    let filled = t.elapsed();
    step("why-missing: each lecture's timeline and verdict");
    let why = WhyMissing::new(
        teaching.clone(),
        Arc::new(DynamoAuditTrail::new(ddb.clone(), table("AuditTable")?)),
    );
    let date = start.date_naive();
    let mut answers = histogram(60_000_000);
    let mut records = 0;
    for _ in 0..args.questions {
        for section in &ids {
            let t = Instant::now();
            let explained = why
                .explain(&Scope::Section(section.clone()), date, Utc::now())
                .await?;
            answers.record(micros(t.elapsed()))?;
            records = records.max(
                explained
                    .iter()
                    .map(|e| e.timeline.len())
                    .max()
                    .unwrap_or(0),
            );
        }
    }

    let mut failures = Vec::new();
    if published != n {
        failures.push(format!("{published} of {n} recordings published"));
    }
    if items(&canvas.world_snapshot()) != items_before || replay_panopto > 0 {
        failures.push("a replay of published recordings changed something".into());
    }
    let per = |total: u64| total as f64 / n.max(1) as f64;
    let breakdown: Vec<String> = panopto_calls
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let mut lines = vec![
        (
            "published".into(),
            format!(
                "{published} of {n} recordings ({messages} recording events) in {:.1} s; batch {}",
                publishing.as_secs_f64(),
                percentiles(&batch_times)
            ),
        ),
        (
            "Panopto calls per published recording".into(),
            format!(
                "{:.1} ({panopto_total} in all: {})",
                per(panopto_total),
                breakdown.join(", ")
            ),
        ),
        (
            "Canvas calls per published recording".into(),
            format!(
                "{:.1} ({canvas_api} API requests, {canvas_tokens} token requests, shared by all)",
                per(canvas_api)
            ),
        ),
        (
            "publish replay (all done)".into(),
            format!(
                "{:.1} s for {n} recordings; Panopto {replay_panopto}, Canvas {replay_canvas} calls",
                replayed.as_secs_f64()
            ),
        ),
        (
            "why-missing".into(),
            format!(
                "{} questions, up to {records} audit records a lecture, {filler} other records in the table (loaded in {:.0} s): {}",
                answers.len(),
                filled.as_secs_f64(),
                percentiles(&answers)
            ),
        ),
    ];
    if let Some(commit) = git_commit() {
        lines.push(("commit".into(), commit));
    }
    println!(
        "{}",
        result_block(
            BINARY,
            lines,
            &[format!(
                "{} students a section; Panopto calls counted at the simulator, Canvas at its simulator; moto stands in for DynamoDB and SQS",
                args.students
            )],
            &failures
        )
    );
    stack.stop().await;
    panopto.stop().await;
    canvas.stop().await;
    ensure!(failures.is_empty(), "{failures:?}");
    Ok(())
}
