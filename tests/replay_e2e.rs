//! End-to-end test of replay on the local stack: inbox records are written with the real
//! `DynamoInbox` into moto's DynamoDB (statuses set as the processor would), the replayer
//! reads them back through the `by_time` index and sends to `changes.fifo` on moto's SQS,
//! and the test reads the queue with its FIFO attributes. The processor's event source is
//! paused so `changes.fifo` keeps exactly what replay sent.

use anyhow::{Context, Result, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use coursewire_live_events::live_events::{self, DeliveryHints, LiveEvent, delivery};
use coursewire_local::provision::Overrides;
use coursewire_local::stack::{LocalStack, StackOptions};
use coursewire_pipeline::handoff::{QueuedEvent, ReplayMode};
use coursewire_pipeline::inbox::record::{self, field};
use coursewire_pipeline::inbox::{
    Admission, DynamoInbox, Inbox, STATUS_APPLIED, STATUS_PUBLISHED, STATUS_RECEIVED,
};
use coursewire_pipeline::replay::{ReplayConfig, ReplayReport, ReplayRequest, Replayer};
use coursewire_pipeline::time::format_sortable;
use coursewire_runtime::telemetry::CollectingSink;
use coursewire_tests::{QueuedRecord, take_queued, unique_stage};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const COURSE: &str = "course:21070000000000042";
const SUBMISSION: &str = "submission:21070000000000007";
const USER: &str = "user:21070000000000005";

fn at(hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 4, hour, minute, second)
        .single()
        .unwrap_or_default()
}

/// A Canvas-format event about one entity; `n` makes each payload (and hash) distinct.
fn event(name: &str, time: DateTime<Utc>, id_field: &str, id: &str, n: u32) -> Result<LiveEvent> {
    let payload = json!({
        "metadata": {
            "event_name": name,
            "event_time": time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "root_account_id": "21070000000000001",
        },
        "body": {id_field: id, "workflow_state": "available", "n": n},
    });
    live_events::from_value(payload, DeliveryHints::default())
        .with_context(|| format!("test event {name} does not parse"))
}

struct Seeded {
    label: &'static str,
    event: LiveEvent,
    status: &'static str,
}

/// Seven events: five inside [10:00, 12:00) with every status, one just before the window
/// and one exactly at its (exclusive) end.
fn seeds() -> Result<Vec<Seeded>> {
    let course = |n, time| event("course_updated", time, "course_id", "21070000000000042", n);
    Ok(vec![
        Seeded {
            label: "course@10:15",
            event: course(1, at(10, 15, 0))?,
            status: STATUS_RECEIVED,
        },
        Seeded {
            label: "course@10:50",
            event: course(2, at(10, 50, 0))?,
            status: STATUS_APPLIED,
        },
        Seeded {
            label: "course@11:05",
            event: course(3, at(11, 5, 0))?,
            status: STATUS_PUBLISHED,
        },
        Seeded {
            label: "grade@10:20",
            event: event(
                "grade_change",
                at(10, 20, 0),
                "submission_id",
                "21070000000000007",
                4,
            )?,
            status: STATUS_RECEIVED,
        },
        Seeded {
            label: "user@11:30",
            event: event(
                "user_updated",
                at(11, 30, 0),
                "user_id",
                "21070000000000005",
                5,
            )?,
            status: STATUS_PUBLISHED,
        },
        Seeded {
            label: "course@09:59:59.999999",
            event: course(6, at(9, 59, 59) + chrono::TimeDelta::microseconds(999_999))?,
            status: STATUS_RECEIVED,
        },
        Seeded {
            label: "course@12:00",
            event: course(7, at(12, 0, 0))?,
            status: STATUS_RECEIVED,
        },
    ])
}

fn window(from: DateTime<Utc>, to: DateTime<Utc>, request_id: &str) -> ReplayRequest {
    ReplayRequest {
        to: Some(to.to_rfc3339()),
        request_id: Some(request_id.into()),
        ..ReplayRequest::new(from.to_rfc3339())
    }
}

/// The labels of the records sent, per message group, in receive order.
fn groups(records: &[QueuedRecord], seeds: &[Seeded]) -> BTreeMap<String, Vec<&'static str>> {
    let mut out: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for record in records {
        let label = seeds
            .iter()
            .find(|s| s.event.content_hash == record.message.event_hash)
            .map_or("unknown", |s| s.label);
        out.entry(record.group_id.clone()).or_default().push(label);
    }
    out
}

/// Every record carries the replay marker, the FIFO ids derived from it, and the event
/// exactly as ingestion would have sent it.
fn check_records(
    records: &[QueuedRecord],
    seeds: &[Seeded],
    mode: ReplayMode,
    request_id: &str,
) -> Result<()> {
    for record in records {
        let seed = seeds
            .iter()
            .find(|s| s.event.content_hash == record.message.event_hash)
            .context("changes.fifo holds an event that was not seeded")?;
        let received_at = seed.event.event_time + chrono::TimeDelta::seconds(1);
        let mut expected = QueuedEvent::new(&seed.event, &delivery::SQS, received_at);
        expected.replay = Some(coursewire_pipeline::handoff::Replay {
            mode,
            request_id: request_id.into(),
        });
        ensure!(
            record.message == expected,
            "{} differs from what ingestion sent:\n{:?}\n{:?}",
            seed.label,
            record.message,
            expected
        );
        ensure!(
            record.group_id == seed.event.entity_key.as_str(),
            "{} in group {}",
            seed.label,
            record.group_id
        );
        ensure!(
            record.deduplication_id == format!("{}:{request_id}", seed.event.content_hash),
            "{} deduplication id {}",
            seed.label,
            record.deduplication_id
        );
    }
    Ok(())
}

fn counts(report: &ReplayReport) -> (u64, u64, u64, u64, u64) {
    (
        report.selected,
        report.already_published,
        report.to_send,
        report.enqueued,
        report.failed,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_selects_the_window_and_sends_in_entity_order_with_the_replay_marker() -> Result<()>
{
    let stage = unique_stage("e2e-replay");
    let stack = LocalStack::start(
        StackOptions {
            overrides: Overrides::default()
                .parameter("Stage", stage.as_str())
                .parameter("CanvasJwtIssuer", "https://canvas-sim.instructure.com"),
            ..StackOptions::default()
        }
        .pause("ProcessorFunction"),
    )
    .await
    .with_context(|| format!("starting the local stack for stage {stage}"))?;
    let result = scenario(&stack).await;
    stack.stop().await;
    result
}

async fn scenario(stack: &LocalStack) -> Result<()> {
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let sqs = aws_sdk_sqs::Client::new(&stack.aws);
    let table = stack.table_name("InboxTable").context("no InboxTable")?;
    let queue = stack.queue_url("ChangesQueue").context("no ChangesQueue")?;

    // Seed the inbox as ingestion and the processor would have left it.
    let inbox = DynamoInbox::new(
        ddb.clone(),
        table,
        Duration::from_secs(400 * 86_400),
        Duration::from_secs(30 * 86_400),
    );
    let seeds = seeds()?;
    for seed in &seeds {
        let received_at = seed.event.event_time + chrono::TimeDelta::seconds(1);
        let admission = inbox
            .admit(&seed.event, &delivery::SQS, received_at)
            .await?;
        ensure!(admission == Admission::New, "{}: {admission:?}", seed.label);
        if seed.status != STATUS_RECEIVED {
            ddb.update_item()
                .table_name(table)
                .key(
                    field::PK,
                    AttributeValue::S(record::event_pk(&seed.event.content_hash)),
                )
                .update_expression("SET #status = :status")
                .expression_attribute_names("#status", field::STATUS)
                .expression_attribute_values(":status", AttributeValue::S(seed.status.into()))
                .send()
                .await
                .with_context(|| format!("setting {} to {}", seed.label, seed.status))?;
        }
    }
    let keys: Vec<&str> = seeds.iter().map(|s| s.event.entity_key.as_str()).collect();
    ensure!(
        keys[..5] == [COURSE, COURSE, COURSE, SUBMISSION, USER],
        "entity keys {keys:?}"
    );

    let sink = Arc::new(CollectingSink::new());
    let replayer: Replayer = ReplayConfig::from_lookup(|name| match name {
        "INBOX_TABLE" => Some(table.to_string()),
        "CHANGES_QUEUE_URL" => Some(queue.to_string()),
        _ => None,
    })?
    .build(&stack.aws, sink.clone(), "replay");
    let (from, to) = (at(10, 0, 0), at(12, 0, 0));

    // Dry run: counts, sends nothing.
    let mut request = window(from, to, "e2e-dry");
    request.dry_run = true;
    let report = replayer.run(request, |_| {}).await?;
    ensure!(counts(&report) == (5, 2, 3, 0, 0), "dry run {report:?}");
    ensure!(
        report.by_status
            == BTreeMap::from([
                (STATUS_APPLIED.to_string(), 1),
                (STATUS_PUBLISHED.to_string(), 2),
                (STATUS_RECEIVED.to_string(), 2),
            ]),
        "dry run statuses {:?}",
        report.by_status
    );
    ensure!(
        report.hours_total == 2 && report.is_complete(),
        "{report:?}"
    );
    ensure!(
        stack.queue_depth("ChangesQueue").await?.total() == 0,
        "a dry run sent something"
    );

    // Server-side filters: by event name, then by entity.
    let mut request = window(from, to, "e2e-dry-names");
    request.dry_run = true;
    request.event_names = vec!["grade_change".into(), "user_updated".into()];
    let report = replayer.run(request, |_| {}).await?;
    ensure!(counts(&report) == (2, 1, 1, 0, 0), "by name {report:?}");
    let mut request = window(from, to, "e2e-dry-entity");
    request.dry_run = true;
    request.entity_keys = vec![COURSE.into()];
    let report = replayer.run(request, |_| {}).await?;
    ensure!(counts(&report) == (3, 1, 2, 0, 0), "by entity {report:?}");

    // Heal: what never reached the bus, each entity in time order. Run twice with the same
    // request id before reading: SQS drops the repeats (a retried run sends nothing twice).
    for attempt in ["first", "retry"] {
        let report = replayer.run(window(from, to, "e2e-heal"), |_| {}).await?;
        ensure!(
            counts(&report) == (5, 2, 3, 3, 0),
            "heal ({attempt}) {report:?}"
        );
    }
    let records = take_queued(&sqs, queue).await?;
    ensure!(
        groups(&records, &seeds)
            == BTreeMap::from([
                (COURSE.to_string(), vec!["course@10:15", "course@10:50"]),
                (SUBMISSION.to_string(), vec!["grade@10:20"]),
            ]),
        "heal sent {:?}",
        groups(&records, &seeds)
    );
    check_records(&records, &seeds, ReplayMode::Heal, "e2e-heal")?;
    ensure!(sink.sum("ReplayEnqueued", &[("Mode", "heal")]) == 6.0);

    // Republish through the replay function itself, as an operator's invoke would.
    let answer: Value = stack
        .invoke(
            "ReplayFunction",
            json!({
                "from": "2024-03-04T10:00:00Z",
                "to": "2024-03-04T12:00:00Z",
                "republish": true,
                "request_id": "e2e-republish",
            }),
        )
        .await?;
    let report: ReplayReport = serde_json::from_value(answer.clone())
        .with_context(|| format!("replay function answered {answer}"))?;
    ensure!(counts(&report) == (5, 0, 5, 5, 0), "republish {report:?}");
    let records = take_queued(&sqs, queue).await?;
    ensure!(
        groups(&records, &seeds)
            == BTreeMap::from([
                (
                    COURSE.to_string(),
                    vec!["course@10:15", "course@10:50", "course@11:05"]
                ),
                (SUBMISSION.to_string(), vec!["grade@10:20"]),
                (USER.to_string(), vec!["user@11:30"]),
            ]),
        "republish sent {:?}",
        groups(&records, &seeds)
    );
    check_records(&records, &seeds, ReplayMode::Republish, "e2e-republish")?;
    ensure!(
        stack.metrics.sum(
            "ReplayEnqueued",
            &[("Function", "replay"), ("Mode", "republish")]
        ) == 5.0,
        "ReplayEnqueued metric of the replay function"
    );

    // The window's edges: [from, to) to the microsecond.
    let mut request = window(at(9, 0, 0), at(13, 0, 0), "e2e-edges");
    request.dry_run = true;
    let report = replayer.run(request, |_| {}).await?;
    ensure!(report.selected == 7, "wide window {report:?}");
    let mut request = window(
        at(9, 59, 59) + chrono::TimeDelta::microseconds(999_999),
        at(12, 0, 0) + chrono::TimeDelta::microseconds(1),
        "e2e-edges2",
    );
    request.dry_run = true;
    let report = replayer.run(request, |_| {}).await?;
    ensure!(
        report.selected == 7 && report.hours_total == 4,
        "edge window {report:?}"
    );
    ensure!(
        format_sortable(&seeds[5].event.event_time) == "2024-03-04T09:59:59.999999Z",
        "seed time"
    );
    Ok(())
}
