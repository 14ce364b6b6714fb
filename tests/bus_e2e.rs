//! End to end on the local stack: simulated Canvas → ingest (HTTPS + SQS) → inbox →
//! changes.fifo → processor → catalog + EventBridge → the example subscriber's SQS queue,
//! checked at the subscriber: every valid event arrives as exactly one change event id, every
//! copy matches its JSON Schema, per-entity sequences are 1, 2, 3... without gaps or repeats,
//! and the catalog equals the simulator's truth. Then the same under injected faults, and
//! replay through the whole path.

use anyhow::{Context, Result, bail, ensure};
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_live_events::live_events::delivery;
use coursewire_live_events::live_events::{self, DeliveryHints};
use coursewire_local::fault_proxy::FaultPlan;
use coursewire_local::provision::Overrides;
use coursewire_local::stack::StackOptions;
use coursewire_local::subscriber::{Subscriber, SubscriberReport};
use coursewire_pipeline::inbox::record::field;
use coursewire_pipeline::inbox::{DynamoInbox, Inbox};
use coursewire_simulators::canvas_live_events::{Scenario, ScenarioConfig};
use coursewire_tests::schemas::validate_change_event;
use coursewire_tests::{Harness, attr};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SUBSCRIBER_QUEUE: &str = "ExampleSubscriberQueue";
/// How long the pipeline may stay silent before a test gives up waiting.
const IDLE: Duration = Duration::from_secs(60);

/// Content hashes of the events a scenario delivers (each in the form it was delivered in).
fn delivered_hashes(scenario: &Scenario) -> Result<BTreeSet<String>> {
    let mut hashes = BTreeSet::new();
    for emission in &scenario.emissions {
        let event = live_events::from_value(emission.payload.clone(), DeliveryHints::default())
            .with_context(|| format!("emission of {}", emission.event_name))?;
        hashes.insert(event.content_hash);
    }
    Ok(hashes)
}

/// Sends a scenario and waits for its change events at the subscriber.
async fn run_scenario(h: &Harness, scenario: &Scenario) -> Result<SubscriberReport> {
    let subscriber = Subscriber::start(&h.stack, SUBSCRIBER_QUEUE, 2)?;
    // Canvas retries an HTTPS delivery that was not answered 2xx (under faults the receiver
    // may time out before it stored the event); do the same, a few rounds.
    let mut pending: Vec<_> = scenario.emissions.clone();
    for _ in 0..4 {
        if pending.is_empty() {
            break;
        }
        let reports = h.emitter.send_all(&pending, 8, |_| {}).await;
        pending = reports
            .iter()
            .filter(|r| !r.result.as_ref().is_ok_and(|d| d.is_success()))
            .map(|r| {
                let mut again = pending[r.position].clone();
                again.offset = Duration::ZERO;
                again
            })
            .collect();
    }
    ensure!(
        pending.is_empty(),
        "{} deliveries never succeeded",
        pending.len()
    );
    let expected = scenario.events.len() as u64;
    let arrived = subscriber.wait_for(expected, IDLE).await;
    // Give late redeliveries a moment to show up before counting copies.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = subscriber.finish().await;
    let seen: BTreeSet<&str> = report
        .copies
        .iter()
        .filter_map(|c| c.event_hash())
        .collect();
    let missing: Vec<String> = delivered_hashes(scenario)?
        .into_iter()
        .filter(|hash| !seen.contains(hash.as_str()))
        .collect();
    ensure!(
        arrived == expected,
        "{arrived} of {expected} change events reached the subscriber (missing hashes {missing:?}); counters {:?}; metrics: applied {}, published {}, apply failures {}, publish failures {}",
        h.stack.counters(),
        h.metric("ChangesApplied", &[]),
        h.metric("ChangesPublished", &[]),
        h.metric("ApplyFailures", &[]),
        h.metric("PublishFailures", &[])
    );
    Ok(report)
}

/// The checks every pipeline run must pass.
async fn check_pipeline(h: &Harness, scenario: &Scenario, bus: &SubscriberReport) -> Result<()> {
    // Exactly one change event id per source event, and no id for anything else.
    let sent = delivered_hashes(scenario)?;
    let mut ids_by_hash: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for copy in &bus.copies {
        let (Some(hash), Some(id)) = (copy.event_hash(), copy.event_id()) else {
            bail!("change event without hash or id: {}", copy.event);
        };
        ids_by_hash.entry(hash).or_default().insert(id);
    }
    let arrived: BTreeSet<String> = ids_by_hash.keys().map(|h| h.to_string()).collect();
    ensure!(
        arrived == sent,
        "{} sent events never arrived, {} arrived that were not sent",
        sent.difference(&arrived).count(),
        arrived.difference(&sent).count()
    );
    let split: Vec<_> = ids_by_hash
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .collect();
    ensure!(
        split.is_empty(),
        "source events published under several ids: {split:?}"
    );

    // Ordered: per entity 1, 2, 3... and every copy of an id with the same sequence.
    let problems = bus.sequence_problems();
    ensure!(problems.is_empty(), "sequence problems: {problems:#?}");
    ensure!(
        bus.unreadable == 0,
        "{} unreadable messages",
        bus.unreadable
    );

    // The contract: every copy valid against its detail-type's schema.
    for copy in &bus.copies {
        validate_change_event(&copy.event)
            .with_context(|| format!("change event {}", copy.event))?;
    }

    // The catalog converged to what Canvas says.
    let catalog = DynamoCatalog::new(
        h.ddb.clone(),
        h.stack
            .table_name("CatalogTable")
            .context("no CatalogTable")?,
    );
    let rows = catalog.scan_all().await?;
    let mismatches = scenario.truth.catalog_mismatches(&rows);
    ensure!(
        mismatches.is_empty(),
        "catalog differs from the truth in {} places: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );

    // Every inbox record ends published; nothing in a dead-letter queue.
    let unpublished: Vec<String> = h
        .inbox_events()
        .await?
        .iter()
        .filter(|item| attr(item, field::STATUS) != Some("published"))
        .map(|item| {
            format!(
                "{:?} {:?}",
                attr(item, field::PK),
                attr(item, field::STATUS)
            )
        })
        .collect();
    ensure!(
        unpublished.is_empty(),
        "inbox records not published: {unpublished:?}"
    );
    for dlq in ["CanvasLiveEventsDLQ", "ChangesDLQ", "ExampleSubscriberDLQ"] {
        let depth = h.stack.queue_depth(dlq).await?.total();
        ensure!(depth == 0, "{dlq} holds {depth} messages");
    }
    Ok(())
}

fn scenario(seed: u64, students: usize, duplicates: f64, reorder: usize) -> Scenario {
    Scenario::build(ScenarioConfig {
        seed,
        courses: 2,
        students_per_course: students,
        duplicate_ratio: duplicates,
        reorder_window: reorder,
        burst: true,
        ..ScenarioConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_reaches_the_subscriber_once_in_order_and_the_catalog_matches_canvas()
-> Result<()> {
    let h = Harness::start("bus-scenario", StackOptions::default()).await?;
    let scenario = scenario(0xb05_0001, 12, 0.1, 12);
    let bus = run_scenario(&h, &scenario).await?;
    check_pipeline(&h, &scenario, &bus).await?;

    // Reordered input produced late events, flagged and still published.
    let late = bus
        .events
        .values()
        .filter(|a| a.detail()["late"] == true)
        .count();
    ensure!(late > 0, "the reordered scenario produced no late events");
    ensure!(
        h.metric("DuplicatesDropped", &[]) > 0.0,
        "the scenario's duplicates never reached ingestion"
    );
    let detail_types: BTreeSet<&str> = bus
        .events
        .values()
        .filter_map(|a| a.event["detail-type"].as_str())
        .collect();
    for expected in [
        "Course Created",
        "Enrollment Updated",
        "Grade Changed",
        "Assignment Deleted",
    ] {
        ensure!(
            detail_types.contains(expected),
            "no {expected} in {detail_types:?}"
        );
    }
    h.stop().await;
    Ok(())
}

/// Faults through the real SDK path (a proxy in front of moto): throttling and 5xx from
/// DynamoDB, EventBridge partial failures, and lost responses after the inbox put, the
/// enqueue, the commit, the PutEvents and the published mark (a crash between each pair of
/// steps), on top of duplicated and reordered input.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_between_every_step_change_nothing_downstream() -> Result<()> {
    let plan = FaultPlan::pipeline_chaos(0xfa017);
    // Quick retries: a failed message is back after 3 s, and never dead-lettered here.
    let overrides = Overrides::default()
        .queue_attribute("CanvasLiveEventsQueue", "VisibilityTimeout", "3")
        .queue_attribute("ChangesQueue", "VisibilityTimeout", "3")
        .max_receive_count("CanvasLiveEventsQueue", 100)
        .max_receive_count("ChangesQueue", 100);
    let options = StackOptions {
        overrides,
        faults: Some(plan),
        ..StackOptions::default()
    };
    let h = Harness::start("bus-faults", options).await?;
    let scenario = scenario(0xb05_0002, 10, 0.15, 16);
    let bus = run_scenario(&h, &scenario).await?;
    check_pipeline(&h, &scenario, &bus).await?;

    let stats = h
        .stack
        .fault_proxy()
        .context("the stack has no fault proxy")?
        .stats();
    for operation in FaultPlan::PIPELINE_CHAOS_OPERATIONS {
        ensure!(
            stats.faults(operation).total() > 0,
            "no fault was injected into {operation}: {stats:?}"
        );
    }
    // A crash after PutEvents re-publishes the same ids: subscribers see copies, never new ids.
    ensure!(
        bus.redeliveries > 0,
        "lost PutEvents responses should have produced same-id copies"
    );
    h.stop().await;
    Ok(())
}

/// Replay through the whole path: heals an event that never reached the processor, changes
/// nothing when run again, and republishes with the same ids when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_heals_once_and_republishes_the_same_ids() -> Result<()> {
    let h = Harness::start("bus-replay", StackOptions::default()).await?;
    let scenario = scenario(0xb05_0003, 4, 0.0, 0);
    let first = run_scenario(&h, &scenario).await?;
    check_pipeline(&h, &scenario, &first).await?;

    // An event stored by ingestion that never made it to changes.fifo (a crash between the
    // put and the send, and Canvas did not deliver it again).
    let template = scenario
        .events
        .iter()
        .find(|e| e.event_name == "enrollment_updated")
        .context("no enrollment_updated in the scenario")?;
    // It happened an hour after the entity's last event; the replay window spans the
    // entity's history (the inbox is read hour by hour, so keep windows short on moto).
    let history: Vec<_> = scenario
        .events
        .iter()
        .filter(|e| e.entity == template.entity)
        .map(|e| e.event_time)
        .collect();
    let earliest = history.iter().min().context("no history")?;
    let lost_at = *history.iter().max().context("no history")? + chrono::Duration::hours(1);
    let mut lost = template.canvas.clone();
    lost["body"]["workflow_state"] = json!("completed");
    lost["metadata"]["event_time"] =
        json!(lost_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let lost = live_events::from_value(lost, DeliveryHints::default())?;
    let inbox = DynamoInbox::new(
        h.ddb.clone(),
        h.inbox_table()?,
        Duration::from_secs(86_400),
        Duration::from_secs(86_400),
    );
    inbox
        .admit(&lost, &delivery::HTTPS, chrono::Utc::now())
        .await?;

    eprintln!("[{}] scenario published; healing", h.stage);
    let subscriber = Subscriber::start(&h.stack, SUBSCRIBER_QUEUE, 1)?;
    let window = json!({
        "from": (*earliest - chrono::Duration::hours(1)).to_rfc3339(),
        "to": (lost_at + chrono::Duration::hours(1)).to_rfc3339(),
    });
    let dry = h
        .stack
        .invoke(
            "ReplayFunction",
            json!({"from": window["from"], "to": window["to"], "dry_run": true}),
        )
        .await?;
    let heal = h.stack.invoke("ReplayFunction", window.clone()).await?;
    ensure!(
        subscriber.wait_for(1, IDLE).await == 1,
        "the healed event did not arrive; dry run {dry}, heal {heal}"
    );
    // A second heal finds nothing to do.
    let again = h.stack.invoke("ReplayFunction", window.clone()).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let healed = subscriber.finish().await;
    ensure!(
        healed.unique_events == 1 && healed.redeliveries == 0,
        "heal twice: {} events, {} copies; reports {heal} then {again}",
        healed.unique_events,
        healed.redeliveries
    );
    let arrival = healed.events.values().next().context("no healed event")?;
    ensure!(
        arrival.event_hash() == Some(lost.content_hash.as_str())
            && arrival.detail()["replay"] == false,
        "healed event {}",
        arrival.event
    );
    let entity = lost.entity_key.as_str().to_string();
    let before = first
        .events
        .values()
        .filter(|a| a.entity_key() == Some(entity.as_str()))
        .count() as u64;
    ensure!(
        arrival.sequence() == Some(before + 1),
        "healed event sequence {:?}, entity had {before}",
        arrival.sequence()
    );

    eprintln!("[{}] healed; republishing {entity}", h.stage);
    // Republish that entity: the same ids again, flagged replay.
    let subscriber = Subscriber::start(&h.stack, SUBSCRIBER_QUEUE, 1)?;
    let republish = h
        .stack
        .invoke(
            "ReplayFunction",
            json!({"from": window["from"], "to": window["to"], "entity_keys": [entity], "republish": true}),
        )
        .await?;
    let expected = before + 1;
    ensure!(
        subscriber.wait_for(expected, IDLE).await == expected,
        "republish: {republish}"
    );
    let replayed = subscriber.finish().await;
    let mut original_ids: BTreeSet<String> = first
        .events
        .iter()
        .filter(|(_, a)| a.entity_key() == Some(entity.as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    original_ids.insert(arrival.event_id().unwrap_or_default().to_string());
    let replayed_ids: BTreeSet<String> = replayed.events.keys().cloned().collect();
    ensure!(
        replayed_ids == original_ids,
        "republished ids differ from the originals"
    );
    ensure!(
        replayed.copies.iter().all(|c| c.detail()["replay"] == true),
        "republished copies must be flagged replay"
    );
    ensure!(
        replayed.sequence_problems().is_empty(),
        "{:?}",
        replayed.sequence_problems()
    );
    eprintln!("[{}] republished; stopping", h.stage);
    h.stop().await;
    Ok(())
}
