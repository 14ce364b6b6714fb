//! End-to-end tests of Canvas Live Events ingestion on the local stack: the simulated Canvas
//! delivers over HTTPS (signed JWT to the function URL) and SQS (raw JSON on the
//! `canvas-live-events-*` queue); the in-process functions write the inbox (DynamoDB) and
//! hand events to `changes.fifo` (SQS FIFO) on moto, through the real AWS SDK.
//!
//! Every test starts its own stack (its own moto and Stage), so metrics and queues are
//! per test and the tests run in parallel.

use anyhow::{Context, Result, bail, ensure};
use chrono::Utc;
use coursewire_live_events::live_events::delivery;
use coursewire_live_events::live_events::{self, DeliveryHints, LiveEvent};
use coursewire_local::provision::Overrides;
use coursewire_local::stack::StackOptions;
use coursewire_pipeline::inbox::record::{self, field};
use coursewire_pipeline::inbox::{Admission, DynamoInbox, Inbox};
use coursewire_simulators::canvas_live_events::{
    Delivered, Delivery, Emission, FaultDelivery, Format, SHARD_FACTOR, Scenario, ScenarioConfig,
    SendReport, rejection_cases,
};
use coursewire_tests::{Harness, Item, QueuedRecord, RawSqsMessage, attr, load_examples};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

const DRAIN: Duration = Duration::from_secs(90);

/// The entity types whose names the simulator and coursewire share: all the simulator's.
use coursewire_simulators::canvas_live_events::ENTITY_TYPES as SHARED_ENTITY_TYPES;

/// A malformed SQS message from the rejection catalogue.
struct SqsFault {
    name: &'static str,
    message: RawSqsMessage,
    reason: &'static str,
}

/// Parses an emission the way the receiver will (same hints), for its content hash and key.
fn parse_emission(emission: &Emission) -> Result<LiveEvent> {
    let hints = match emission.delivery {
        Delivery::Sqs => DeliveryHints {
            event_name: Some(&emission.event_name),
            event_time: Some(&emission.event_time),
        },
        Delivery::Https => DeliveryHints::default(),
    };
    live_events::from_value(emission.payload.clone(), hints).with_context(|| {
        format!(
            "simulator emission {} ({:?}) does not parse",
            emission.event_name, emission.format
        )
    })
}

/// The JSON answer of an HTTPS delivery, checked to be a 200.
fn https_ok(report: &SendReport) -> Result<Value> {
    let delivered = report
        .result
        .as_ref()
        .map_err(|e| anyhow::anyhow!("emission {} not delivered: {e}", report.position))?;
    match delivered {
        Delivered::Https { status: 200, body } => {
            serde_json::from_str(body).with_context(|| format!("HTTPS answer is not JSON: {body}"))
        }
        Delivered::Https { status, body } => {
            bail!("emission {} answered {status}: {body}", report.position)
        }
        Delivered::Sqs { .. } => bail!("emission {} went to SQS, expected HTTPS", report.position),
    }
}

fn check_sent(reports: &[SendReport], emissions: &[Emission], expect_status: &str) -> Result<()> {
    for (report, emission) in reports.iter().zip(emissions) {
        match emission.delivery {
            Delivery::Https => {
                let answer = https_ok(report)?;
                ensure!(
                    answer["status"] == expect_status,
                    "{} over HTTPS answered {answer}, expected status {expect_status}",
                    emission.event_name
                );
                let expected = parse_emission(emission)?;
                ensure!(
                    answer["event_hash"] == expected.content_hash.as_str(),
                    "event_id in {answer}"
                );
                ensure!(
                    answer["entity_key"] == expected.entity_key.as_str(),
                    "entity_key in {answer}"
                );
            }
            Delivery::Sqs => {
                report.result.as_ref().map_err(|e| {
                    anyhow::anyhow!("SendMessage for {} failed: {e}", emission.event_name)
                })?;
            }
        }
    }
    Ok(())
}

fn by_hash(items: Vec<Item>) -> Result<BTreeMap<String, Item>> {
    let mut map = BTreeMap::new();
    for item in items {
        let hash = attr(&item, field::CONTENT_HASH)
            .context("inbox item without content_hash")?
            .to_string();
        ensure!(
            attr(&item, field::PK) == Some(&record::event_pk(&hash)),
            "pk of {hash} is {:?}",
            attr(&item, field::PK)
        );
        ensure!(
            map.insert(hash.clone(), item).is_none(),
            "two inbox items for {hash}"
        );
    }
    Ok(map)
}

/// `type:id[:id...]` with every id in Canvas's global form.
fn assert_global_key(key: &str) -> Result<()> {
    let mut parts = key.split(':');
    let kind = parts.next().unwrap_or_default();
    let ids: Vec<&str> = parts.collect();
    ensure!(!ids.is_empty(), "entity key {key} has no id");
    for id in ids {
        let n: u64 = id
            .parse()
            .with_context(|| format!("entity key {key}: id {id} is not numeric"))?;
        ensure!(
            n >= SHARD_FACTOR,
            "entity key {key} ({kind}) uses a local id {id}"
        );
    }
    Ok(())
}

/// A whole simulated term through both receivers: the inbox and changes.fifo hold every
/// event exactly once, keyed like the simulator's entities.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scenario_through_both_receivers_lands_once_in_inbox_and_changes_fifo() -> Result<()> {
    let started = Instant::now();
    let h = Harness::start("e2e-scenario", StackOptions::ingest_only()).await?;
    let scenario = Scenario::build(ScenarioConfig {
        seed: 0x5eed_0001,
        courses: 1,
        sections_per_course: 2,
        students_per_course: 8,
        assignments_per_course: 2,
        modules_per_course: 1,
        duplicate_ratio: 0.15,
        reorder_window: 8,
        burst: false,
        pace: Duration::from_millis(3),
        caliper_ratio: 0.4,
        https_ratio: 0.5,
        ..ScenarioConfig::default()
    });
    let emissions = &scenario.emissions;
    let combos: BTreeSet<String> = emissions
        .iter()
        .map(|e| format!("{:?}/{:?}", e.format, e.delivery))
        .collect();
    ensure!(
        combos.len() == 4,
        "plan lacks a format/transport combination: {combos:?}"
    );
    let reordered = emissions
        .iter()
        .filter(|e| !e.duplicate)
        .enumerate()
        .filter(|(p, e)| *p != e.event_index)
        .count();
    ensure!(reordered > 0, "plan is not reordered");

    // Originals in plan order (reordered): the first 60 % paced, the rest as one burst.
    // Duplicates are re-sent afterwards, as Canvas retries do, so that each one meets a
    // finished original and must be dropped.
    let originals: Vec<Emission> = emissions.iter().filter(|e| !e.duplicate).cloned().collect();
    let mut duplicates: Vec<Emission> = emissions.iter().filter(|e| e.duplicate).cloned().collect();
    ensure!(
        originals.len() == scenario.events.len() && !duplicates.is_empty(),
        "plan shape"
    );
    let paced = originals.len() * 3 / 5;
    let mut burst: Vec<Emission> = originals[paced..].to_vec();
    for e in burst.iter_mut().chain(duplicates.iter_mut()) {
        e.offset = Duration::ZERO;
    }
    eprintln!(
        "[{}] {} events ({} paced, {} burst), {} duplicates; formats/transports {combos:?}",
        h.stage,
        originals.len(),
        paced,
        burst.len(),
        duplicates.len()
    );

    let reports = h.emitter.send_all(&originals[..paced], 8, |_| {}).await;
    check_sent(&reports, &originals[..paced], "accepted")?;
    let reports = h.emitter.send_all(&burst, 24, |_| {}).await;
    check_sent(&reports, &burst, "accepted")?;
    h.drain_ingest(DRAIN).await?;
    let reports = h.emitter.send_all(&duplicates, 16, |_| {}).await;
    check_sent(&reports, &duplicates, "duplicate")?;
    h.drain_ingest(DRAIN).await?;

    // Expected identity of every event (the form it was emitted in).
    let mut expected: BTreeMap<String, (&Emission, LiveEvent)> = BTreeMap::new();
    for emission in &originals {
        let event = parse_emission(emission)?;
        ensure!(
            expected
                .insert(event.content_hash.clone(), (emission, event))
                .is_none(),
            "two simulated events hash alike ({})",
            emission.event_name
        );
    }

    // Inbox: exactly one event item per event, enqueued, with what the event says.
    let items = by_hash(h.inbox_events().await?)?;
    ensure!(
        items.len() == expected.len(),
        "inbox holds {} events, expected {}",
        items.len(),
        expected.len()
    );
    ensure!(
        h.inbox_rejects().await?.is_empty(),
        "valid events were rejected"
    );
    for (hash, (emission, event)) in &expected {
        let item = items
            .get(hash)
            .with_context(|| format!("{} ({hash}) missing from the inbox", emission.event_name))?;
        let source = match emission.delivery {
            Delivery::Https => "https",
            Delivery::Sqs => "sqs",
        };
        let format = match emission.format {
            Format::Canvas => "canvas",
            Format::Caliper => "caliper",
        };
        // Stored and queued; the (paused) processor has not applied it yet.
        ensure!(
            attr(item, field::STATUS) == Some("received"),
            "{hash} status {:?}",
            attr(item, field::STATUS)
        );
        ensure!(
            attr(item, field::SOURCE) == Some(source),
            "{hash} source {:?}, sent via {source}",
            attr(item, field::SOURCE)
        );
        ensure!(
            attr(item, field::FORMAT) == Some(format),
            "{hash} format {:?}, sent as {format}",
            attr(item, field::FORMAT)
        );
        ensure!(
            attr(item, field::EVENT_NAME) == Some(emission.event_name.as_str()),
            "{hash}: inbox event_name {:?}, simulator sent {} as {format}",
            attr(item, field::EVENT_NAME),
            emission.event_name
        );
        ensure!(
            attr(item, field::ENTITY_KEY) == Some(event.entity_key.as_str()),
            "{hash} entity_key"
        );
        for name in [
            field::EVENT_TIME,
            field::RECEIVED_AT,
            field::PAYLOAD,
            field::TIME_BUCKET,
            field::TIME_KEY,
        ] {
            ensure!(
                attr(item, name).is_some_and(|v| !v.is_empty()),
                "{hash} has no {name}"
            );
        }
    }

    // Metrics: every event accepted once, every duplicate dropped, nothing else. SQS may
    // deliver a message twice (at-least-once); the exact counts hold when it did not.
    let m = |name: &str| h.metric(name, &[]);
    let sqs_sent = originals
        .iter()
        .chain(&duplicates)
        .filter(|e| e.delivery == Delivery::Sqs)
        .count() as u64;
    let https_sent = (originals.len() + duplicates.len()) as u64 - sqs_sent;
    let redelivered = h.sqs_received().saturating_sub(sqs_sent);
    for zero in [
        "EventsRejected",
        "AuthFailures",
        "BatchItemFailures",
        "IngestFailures",
    ] {
        ensure!(m(zero) == 0.0, "{zero} = {}", m(zero));
    }
    if redelivered == 0 {
        ensure!(
            m("EventsAccepted") == expected.len() as f64,
            "EventsAccepted {} != {}",
            m("EventsAccepted"),
            expected.len()
        );
        ensure!(
            m("DuplicatesDropped") == duplicates.len() as f64,
            "DuplicatesDropped {} != planned duplicates {}",
            m("DuplicatesDropped"),
            duplicates.len()
        );
        ensure!(
            m("EventsRecovered") == 0.0,
            "EventsRecovered = {}",
            m("EventsRecovered")
        );
    } else {
        eprintln!(
            "[{}] SQS delivered {redelivered} message(s) twice; checking totals only",
            h.stage
        );
        ensure!(
            m("EventsAccepted") >= expected.len() as f64,
            "EventsAccepted {} < {}",
            m("EventsAccepted"),
            expected.len()
        );
        let outcomes = m("EventsAccepted") + m("DuplicatesDropped") + m("EventsRecovered");
        ensure!(
            outcomes == (https_sent + sqs_sent + redelivered) as f64,
            "{outcomes} outcomes for {} deliveries",
            https_sent + sqs_sent + redelivered
        );
    }

    // changes.fifo: one message per event, grouped by entity key, deduplicated by hash.
    let changes = h.take_queued().await?;
    let mut seen = BTreeSet::new();
    for QueuedRecord {
        message,
        group_id,
        deduplication_id,
    } in &changes
    {
        ensure!(
            seen.insert(message.event_hash.clone()),
            "event {} enqueued twice",
            message.event_hash
        );
        ensure!(
            *group_id == message.entity_key,
            "MessageGroupId {group_id} != entity key {}",
            message.entity_key
        );
        ensure!(
            *deduplication_id == message.event_hash,
            "MessageDeduplicationId {deduplication_id}"
        );
        let (emission, event) = expected
            .get(&message.event_hash)
            .with_context(|| format!("unexpected change {}", message.event_hash))?;
        ensure!(
            message.entity_key == event.entity_key.as_str(),
            "entity key of {}",
            message.event_hash
        );
        ensure!(
            message.event_name == emission.event_name,
            "event name of {}",
            message.event_hash
        );
        ensure!(
            message.payload == emission.payload,
            "payload of {} changed on the way",
            message.event_hash
        );
        assert_global_key(&message.entity_key)?;
        let sim = &scenario.events[emission.event_index].entity;
        if SHARED_ENTITY_TYPES.contains(&sim.0.as_str()) {
            let want = format!("{}:{}", sim.0, sim.1);
            ensure!(
                message.entity_key == want,
                "{} ({:?} via {:?}): entity key {} but the simulator says {want}",
                emission.event_name,
                emission.format,
                emission.delivery,
                message.entity_key
            );
        }
    }
    ensure!(
        changes.len() == expected.len(),
        "changes.fifo held {} messages for {} events",
        changes.len(),
        expected.len()
    );

    let latency = h.stack.metrics.values("IngestLatency");
    eprintln!(
        "[{}] ok in {:.1?}: {} events, {} duplicates dropped, {} HTTPS deliveries (max latency {:.0} ms)",
        h.stage,
        started.elapsed(),
        expected.len(),
        duplicates.len(),
        latency.len(),
        latency.iter().copied().fold(0.0, f64::max)
    );
    h.stop().await;
    Ok(())
}

/// The same event delivered many times at once (Canvas retries and SQS at-least-once can
/// overlap): one inbox item, one queued event, and every copy answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_copies_of_an_event_are_stored_and_enqueued_once() -> Result<()> {
    let h = Harness::start("e2e-concurrent", StackOptions::ingest_only()).await?;
    let scenario = Scenario::build(ScenarioConfig {
        seed: 0x5eed_0002,
        courses: 1,
        sections_per_course: 1,
        students_per_course: 2,
        assignments_per_course: 1,
        duplicate_ratio: 0.0,
        ..ScenarioConfig::default()
    });
    const COPIES: usize = 6;
    let mut copies = Vec::new();
    let mut events = BTreeSet::new();
    for (i, event) in scenario.events.iter().take(6).enumerate() {
        let delivery = if i % 2 == 0 {
            Delivery::Https
        } else {
            Delivery::Sqs
        };
        let emission = Emission {
            event_index: i,
            event_name: event.event_name.clone(),
            event_time: event.event_time_str(),
            format: Format::Canvas,
            delivery,
            duplicate: false,
            payload: event.canvas.clone(),
            offset: Duration::ZERO,
        };
        events.insert(parse_emission(&emission)?.content_hash);
        copies.extend(std::iter::repeat_n(emission, COPIES));
    }
    let reports = h.emitter.send_all(&copies, 36, |_| {}).await;
    for (report, emission) in reports.iter().zip(&copies) {
        if emission.delivery == Delivery::Https {
            let answer = https_ok(report)?;
            ensure!(
                answer["status"] == "accepted" || answer["status"] == "duplicate",
                "answer {answer}"
            );
        } else {
            report
                .result
                .as_ref()
                .map_err(|e| anyhow::anyhow!("SendMessage failed: {e}"))?;
        }
    }
    h.drain_ingest(DRAIN).await?;

    let items = by_hash(h.inbox_events().await?)?;
    ensure!(
        items.keys().cloned().collect::<BTreeSet<_>>() == events,
        "inbox holds {} events, expected {}",
        items.len(),
        events.len()
    );
    let changes = h.take_queued().await?;
    let hashes: Vec<&str> = changes
        .iter()
        .map(|c| c.message.event_hash.as_str())
        .collect();
    let distinct: BTreeSet<&str> = hashes.iter().copied().collect();
    ensure!(
        hashes.len() == distinct.len(),
        "an event reached changes.fifo twice: {hashes:?}"
    );
    ensure!(
        distinct.len() == events.len(),
        "changes.fifo has {} of {} events",
        distinct.len(),
        events.len()
    );
    // Every delivery (HTTPS request or SQS receive) has exactly one outcome. moto, unlike
    // DynamoDB, does not make a conditional put atomic against a concurrent one, so two
    // copies may both count as accepted there; the inbox and changes.fifo checks above are
    // the guarantees.
    let accepted = h.metric("EventsAccepted", &[]);
    let dropped = h.metric("DuplicatesDropped", &[]);
    let recovered = h.metric("EventsRecovered", &[]);
    let https_copies = copies
        .iter()
        .filter(|e| e.delivery == Delivery::Https)
        .count() as u64;
    let deliveries = https_copies + h.sqs_received();
    let diagnostics = || {
        format!(
            "accepted {:?}, dropped {:?}, recovered {:?}; counters {:?}",
            h.stack.metrics.sum_by("EventsAccepted", "Source"),
            h.stack.metrics.sum_by("DuplicatesDropped", "Source"),
            h.stack.metrics.sum_by("EventsRecovered", "Source"),
            h.stack.counters()
        )
    };
    ensure!(
        accepted >= events.len() as f64,
        "EventsAccepted {accepted}, expected {}: {}",
        events.len(),
        diagnostics()
    );
    ensure!(
        accepted + dropped + recovered == deliveries as f64,
        "{accepted} accepted + {dropped} dropped + {recovered} recovered != {deliveries} deliveries: {}",
        diagnostics()
    );
    eprintln!(
        "[{}] {} copies of {} events: {accepted} accepted, {dropped} dropped as duplicates, {recovered} counted as recovered \
         (a copy that overlaps the original's put-then-enqueue is enqueued again; the FIFO deduplication id absorbs it)",
        h.stage,
        copies.len(),
        events.len()
    );
    h.stop().await;
    Ok(())
}

/// Monthly key rotation while events flow, then a key the receiver has never seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jwks_rotation_mid_stream_and_unknown_kids_are_rate_limited() -> Result<()> {
    const REFETCH: Duration = Duration::from_secs(1);
    let options = StackOptions {
        overrides: Overrides::default()
            .parameter("JwksMinRefetchSeconds", REFETCH.as_secs().to_string()),
        ..StackOptions::ingest_only()
    };
    let h = Harness::start("e2e-jwks", options).await?;
    let scenario = Scenario::build(ScenarioConfig {
        seed: 0x5eed_0003,
        courses: 1,
        sections_per_course: 1,
        students_per_course: 6,
        assignments_per_course: 2,
        duplicate_ratio: 0.0,
        https_ratio: 1.0,
        caliper_ratio: 0.3,
        burst: true,
        ..ScenarioConfig::default()
    });
    let emissions = &scenario.emissions;
    let (first, rest) = emissions.split_at(emissions.len() / 2);

    let reports = h.emitter.send_all(first, 8, |_| {}).await;
    check_sent(&reports, first, "accepted")?;
    let after_first = h.jwks.fetch_count();
    h.ring.rotate()?;
    let reports = h.emitter.send_all(rest, 8, |_| {}).await;
    check_sent(&reports, rest, "accepted")?;
    let fetches = h.jwks.fetch_count();
    ensure!(
        fetches <= 2,
        "{} events across one rotation cost {fetches} JWKS fetches ({after_first} before the rotation); \
         the next key was published in advance",
        emissions.len()
    );
    ensure!(
        h.metric("EventsAccepted", &[]) == emissions.len() as f64,
        "not every event was accepted"
    );

    // An unknown kid once the interval has passed refetches (once), so the receiver now
    // holds a JWKS fetched a moment ago.
    let fresh = scenario
        .events
        .last()
        .context("empty scenario")?
        .canvas
        .clone();
    let forge = || -> Result<String> {
        Ok(h.ring
            .forge_unknown_kid(&h.emitter.claims(&fresh, Utc::now().timestamp())?))
    };
    let refused_unknown = |d: &Delivered| matches!(d, Delivered::Https { status: 401, body } if body.contains("\"unknown_kid\""));
    tokio::time::sleep(REFETCH + Duration::from_millis(100)).await;
    let before = h.jwks.fetch_count();
    let answer = h
        .emitter
        .send_raw_https(forge()?, "application/jwt")
        .await?;
    ensure!(refused_unknown(&answer), "forged kid: {answer:?}");
    ensure!(
        h.jwks.fetch_count() == before + 1,
        "an unknown kid after the interval should refetch exactly once"
    );
    let phase = Instant::now();

    // Two more rotations: Canvas now signs with a key that did not exist at that fetch. Until
    // the interval has passed the new key is refused like any unknown kid (Canvas retries);
    // forged kids in between must not trigger extra fetches; then the new key is accepted.
    h.ring.rotate()?;
    h.ring.rotate()?;
    let rotated_in = phase.elapsed();
    let mut refused = 0;
    let accepted_at = loop {
        let delivered = h
            .emitter
            .send_raw_https(h.emitter.jwt(&fresh)?, "application/jwt")
            .await?;
        match &delivered {
            Delivered::Https { status: 200, .. } => break phase.elapsed(),
            d if refused_unknown(d) => refused += 1,
            other => bail!("token signed by the new key: unexpected answer {other:?}"),
        }
        ensure!(
            phase.elapsed() < REFETCH * 5,
            "token signed by the new key still refused after {:?}",
            phase.elapsed()
        );
        for _ in 0..5 {
            let answer = h
                .emitter
                .send_raw_https(forge()?, "application/jwt")
                .await?;
            ensure!(refused_unknown(&answer), "forged kid: {answer:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if rotated_in + Duration::from_millis(300) < REFETCH {
        // The first attempt came well inside the interval: it must have been refused, and the
        // acceptance cannot come before the interval ends.
        ensure!(
            refused >= 1,
            "the new key was accepted {accepted_at:?} after a refetch, inside the {REFETCH:?} interval"
        );
        ensure!(
            accepted_at + Duration::from_millis(50) >= REFETCH,
            "accepted after {accepted_at:?}, inside the interval"
        );
    }
    let fetched = h.jwks.fetch_count() - before - 1;
    // One fetch per started interval after the forced one (which began just before `phase`).
    let allowed = ((accepted_at + Duration::from_millis(100)).as_secs_f64() / REFETCH.as_secs_f64())
        .floor() as u64;
    ensure!(fetched >= 1, "the new key was accepted without a refetch?");
    ensure!(
        fetched <= allowed,
        "{fetched} JWKS fetches in {accepted_at:?} (at most {allowed} allowed)"
    );

    // Right after a refetch, a flood of unknown kids must not fetch again within the interval.
    let flood_start = Instant::now();
    let before_flood = h.jwks.fetch_count();
    for _ in 0..20 {
        let forged = h
            .ring
            .forge_unknown_kid(&h.emitter.claims(&fresh, Utc::now().timestamp())?);
        let answer = h.emitter.send_raw_https(forged, "application/jwt").await?;
        ensure!(
            answer.status() == Some(401),
            "forged kid answered {answer:?}"
        );
    }
    let flood = flood_start.elapsed();
    let flood_fetches = h.jwks.fetch_count() - before_flood;
    // The refetch happened just before the acceptance answer; leave a margin for that.
    if flood + Duration::from_millis(250) < REFETCH {
        ensure!(
            flood_fetches == 0,
            "20 forged kids within {flood:?} caused {flood_fetches} JWKS fetches"
        );
    } else {
        ensure!(
            flood_fetches <= 1 + (flood.as_secs_f64() / REFETCH.as_secs_f64()) as u64,
            "{flood_fetches} fetches in {flood:?}"
        );
    }
    ensure!(
        h.metric("AuthFailures", &[("Reason", "unknown_kid")]) >= 20.0,
        "unknown kids not counted"
    );
    eprintln!(
        "[{}] rotation: {fetches} fetch(es) for {} events; rotations took {rotated_in:?}; new key accepted \
         {accepted_at:?} after the last fetch ({refused} refusal(s) inside the interval, {fetched} fetch(es)); 20 forged kids in {flood:?} -> {flood_fetches} fetch(es)",
        h.stage,
        emissions.len()
    );
    h.stop().await;
    Ok(())
}

/// Every rejection class gets its specific answer; malformed SQS messages become rejects,
/// leave the queue (and stay out of the DLQ) and do not hold back the valid messages of
/// their batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rejection_class_is_refused_specifically_and_never_poisons_a_batch() -> Result<()> {
    const MAX_EVENT_BYTES: usize = 64 * 1024;
    let options = StackOptions {
        // One poller so the mixed batch below reaches the function as one invocation; a short
        // visibility timeout and 2 receives before the DLQ so a message wrongly reported as
        // failed would show up quickly.
        pollers: 1,
        overrides: Overrides::default()
            .parameter("MaxEventBytes", MAX_EVENT_BYTES.to_string())
            .queue_attribute("CanvasLiveEventsQueue", "VisibilityTimeout", "2")
            .max_receive_count("CanvasLiveEventsQueue", 2),
        ..StackOptions::ingest_only()
    };
    let h = Harness::start("e2e-reject", options).await?;
    let scenario = Scenario::build(ScenarioConfig {
        seed: 0x5eed_0004,
        courses: 1,
        sections_per_course: 1,
        students_per_course: 4,
        assignments_per_course: 1,
        duplicate_ratio: 0.0,
        ..ScenarioConfig::default()
    });
    let sample = scenario
        .events
        .iter()
        .find(|e| e.event_name == "enrollment_created")
        .context("no enrollment_created in the scenario")?
        .canvas
        .clone();
    let faults = rejection_cases(&h.ring, &h.emitter, &sample, MAX_EVENT_BYTES)?;
    ensure!(faults.len() >= 13, "only {} rejection cases", faults.len());

    // HTTPS: status and error code per class.
    let mut https_expect: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for fault in faults
        .iter()
        .filter(|f| matches!(f.delivery, FaultDelivery::Https { .. }))
    {
        let FaultDelivery::Https { body, content_type } = &fault.delivery else {
            unreachable!()
        };
        let answer = h.emitter.send_raw_https(body.clone(), content_type).await?;
        let Delivered::Https { status, body } = &answer else {
            bail!("{}: not an HTTPS answer", fault.name)
        };
        ensure!(
            Some(*status) == fault.expect_status,
            "{}: status {status}, expected {:?}: {body}",
            fault.name,
            fault.expect_status
        );
        let json: Value = serde_json::from_str(body)
            .with_context(|| format!("{}: answer is not JSON: {body}", fault.name))?;
        ensure!(
            json["error"] == fault.expect_reason,
            "{}: error {}, expected {}",
            fault.name,
            json["error"],
            fault.expect_reason
        );
        ensure!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}: no message",
            fault.name
        );
        let metric = if *status == 401 {
            "AuthFailures"
        } else {
            "EventsRejected"
        };
        *https_expect
            .entry((metric, fault.expect_reason))
            .or_default() += 1.0;
    }
    for ((metric, reason), count) in &https_expect {
        let got = h.metric(metric, &[("Source", "https"), ("Reason", reason)]);
        ensure!(
            got == *count,
            "{metric}{{https, {reason}}} = {got}, expected {count}"
        );
    }

    // SQS: the malformed messages and valid events in one SendMessageBatch.
    let sqs_faults: Vec<SqsFault> = faults
        .iter()
        .filter_map(|f| match &f.delivery {
            FaultDelivery::Sqs { body, attributes } => Some(SqsFault {
                name: f.name,
                message: (
                    body.clone(),
                    attributes
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), v.clone()))
                        .collect(),
                ),
                reason: f.expect_reason,
            }),
            FaultDelivery::Https { .. } => None,
        })
        .collect();
    ensure!(!sqs_faults.is_empty(), "no SQS rejection cases");
    let valid: Vec<Emission> = scenario
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.event_name != "enrollment_created")
        .take(10 - sqs_faults.len())
        .map(|(i, e)| {
            let (format, payload) = match (&e.caliper, i % 2) {
                (Some(caliper), 0) => (Format::Caliper, caliper.clone()),
                _ => (Format::Canvas, e.canvas.clone()),
            };
            Emission {
                event_index: i,
                event_name: e.event_name.clone(),
                event_time: e.event_time_str(),
                format,
                delivery: Delivery::Sqs,
                duplicate: false,
                payload,
                offset: Duration::ZERO,
            }
        })
        .collect();
    let mut batch: Vec<RawSqsMessage> = Vec::new();
    // Interleave: valid, bad, valid, bad, ...
    let mut valid_iter = valid.iter();
    for fault in &sqs_faults {
        if let Some(e) = valid_iter.next() {
            batch.push((
                e.payload.to_string(),
                vec![
                    ("event_name".into(), e.event_name.clone()),
                    ("event_time".into(), e.event_time.clone()),
                ],
            ));
        }
        batch.push(fault.message.clone());
    }
    for e in valid_iter {
        batch.push((
            e.payload.to_string(),
            vec![
                ("event_name".into(), e.event_name.clone()),
                ("event_time".into(), e.event_time.clone()),
            ],
        ));
    }
    ensure!(batch.len() == 10, "batch of {}", batch.len());
    h.send_sqs_batch(&batch).await?;
    h.drain_ingest(DRAIN).await?;
    // Longer than the visibility timeout: a message reported as failed would be back by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for queue in ["CanvasLiveEventsQueue", "CanvasLiveEventsDLQ"] {
        let depth = h.stack.queue_depth(queue).await?;
        ensure!(depth.total() == 0, "{queue} still holds {depth:?}");
    }
    let counters = h.stack.counters();
    let poller = counters
        .iter()
        .find(|(name, _)| name.starts_with("IngestSqsFunction/"))
        .map(|(_, c)| *c)
        .context("no IngestSqsFunction poller")?;
    ensure!(
        poller.invocations == 1 && poller.messages_received == 10 && poller.messages_deleted == 10,
        "expected one invocation with the 10-message batch, all deleted: {poller:?}"
    );
    ensure!(
        poller.batch_item_failures == 0 && poller.messages_redriven == 0,
        "batch failures: {poller:?}"
    );
    ensure!(
        h.metric("BatchItemFailures", &[]) == 0.0,
        "BatchItemFailures reported"
    );

    // Rejects: each malformed SQS message kept once with its reason; HTTPS 400s kept too.
    let rejects = h.inbox_rejects().await?;
    let mut sqs_expect: BTreeMap<&str, f64> = BTreeMap::new();
    for SqsFault {
        name,
        message: (body, _),
        reason,
    } in &sqs_faults
    {
        let matching: Vec<&Item> = rejects
            .iter()
            .filter(|r| attr(r, field::PAYLOAD) == Some(body.as_str()))
            .collect();
        ensure!(
            matching.len() == 1,
            "{name}: {} reject items hold its body",
            matching.len()
        );
        ensure!(
            attr(matching[0], field::REASON_CODE) == Some(*reason),
            "{name}: reason_code {:?}, expected {reason}",
            attr(matching[0], field::REASON_CODE)
        );
        ensure!(
            attr(matching[0], field::SOURCE) == Some("sqs"),
            "{name}: source {:?}",
            attr(matching[0], field::SOURCE)
        );
        *sqs_expect.entry(reason).or_default() += 1.0;
    }
    for (reason, count) in &sqs_expect {
        let got = h.metric("EventsRejected", &[("Source", "sqs"), ("Reason", reason)]);
        ensure!(
            got == *count,
            "EventsRejected{{sqs, {reason}}} = {got}, expected {count}"
        );
    }
    let https_rejects: BTreeMap<String, usize> = rejects
        .iter()
        .filter(|r| attr(r, field::SOURCE) == Some("https"))
        .fold(BTreeMap::new(), |mut m, r| {
            *m.entry(attr(r, field::REASON_CODE).unwrap_or("?").to_string())
                .or_default() += 1;
            m
        });
    let https_400: BTreeMap<String, usize> = faults
        .iter()
        .filter(|f| f.expect_status == Some(400))
        .fold(BTreeMap::new(), |mut m, f| {
            *m.entry(f.expect_reason.to_string()).or_default() += 1;
            m
        });
    ensure!(
        https_rejects == https_400,
        "HTTPS rejects kept {https_rejects:?}, expected the authenticated 400s {https_400:?}"
    );
    ensure!(
        rejects.len() == sqs_faults.len() + https_400.values().sum::<usize>(),
        "{} reject items; unauthenticated input must not be stored",
        rejects.len()
    );

    // The valid half of the batch: all accepted.
    let items = by_hash(h.inbox_events().await?)?;
    let want: BTreeSet<String> = valid
        .iter()
        .map(|e| parse_emission(e).map(|l| l.content_hash))
        .collect::<Result<_>>()?;
    ensure!(
        items.keys().cloned().collect::<BTreeSet<_>>() == want,
        "inbox events {:?} != the valid messages {want:?}",
        items.keys()
    );
    ensure!(
        h.metric("EventsAccepted", &[("Source", "sqs")]) == valid.len() as f64,
        "valid SQS events not all accepted"
    );
    ensure!(
        h.take_queued().await?.len() == valid.len(),
        "changes.fifo should hold the valid events only"
    );
    eprintln!(
        "[{}] {} HTTPS and {} SQS rejection classes checked; {} valid events in the mixed batch accepted",
        h.stage,
        faults.len() - sqs_faults.len(),
        sqs_faults.len(),
        valid.len()
    );
    h.stop().await;
    Ok(())
}

/// A crash between the inbox put and the enqueue: the next delivery of the event enqueues
/// it exactly once; the one after is a duplicate. Checked for both receivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_between_inbox_put_and_enqueue_is_repaired_by_the_next_delivery() -> Result<()> {
    let h = Harness::start("e2e-recover", StackOptions::ingest_only()).await?;
    let scenario = Scenario::build(ScenarioConfig {
        seed: 0x5eed_0005,
        courses: 1,
        sections_per_course: 1,
        students_per_course: 2,
        assignments_per_course: 1,
        duplicate_ratio: 0.0,
        ..ScenarioConfig::default()
    });
    let table = h.inbox_table()?.to_string();
    let inbox = DynamoInbox::new(
        h.ddb.clone(),
        table.clone(),
        Duration::from_secs(400 * 86_400),
        Duration::from_secs(30 * 86_400),
    );
    let item_status = |hash: String| {
        let ddb = h.ddb.clone();
        let table = table.clone();
        async move {
            let out = ddb
                .get_item()
                .table_name(&table)
                .key(
                    field::PK,
                    aws_sdk_dynamodb::types::AttributeValue::S(record::event_pk(&hash)),
                )
                .consistent_read(true)
                .send()
                .await?;
            Ok::<_, anyhow::Error>(
                out.item
                    .and_then(|i| attr(&i, field::STATUS).map(str::to_string)),
            )
        }
    };

    // A: stored by a "crashed" SQS invocation; B: by a "crashed" HTTPS invocation.
    let pick = |name: &str| {
        scenario
            .events
            .iter()
            .find(|e| e.event_name == name)
            .cloned()
            .context(format!("no {name}"))
    };
    let a = pick("course_created")?;
    let b = pick("user_created")?;
    let a_json = a.canvas.to_string();
    let a_time = a.event_time_str();
    let a_attrs = [
        ("event_name", a.event_name.as_str()),
        ("event_time", a_time.as_str()),
    ];
    let a_event = live_events::parse_json(
        a_json.as_bytes(),
        DeliveryHints {
            event_name: Some(&a.event_name),
            event_time: Some(&a_time),
        },
    )?;
    let b_event = live_events::from_value(b.canvas.clone(), DeliveryHints::default())?;
    // The crashed attempts happened a while ago: a second delivery soon after the first is a
    // concurrent copy (counted as a duplicate), a later one is the repair this test is about.
    let crashed_at = Utc::now() - chrono::Duration::minutes(10);
    for (event, source) in [(&a_event, &delivery::SQS), (&b_event, &delivery::HTTPS)] {
        let admission = inbox.admit(event, source, crashed_at).await?;
        ensure!(
            admission == Admission::New,
            "pre-seeding {}: {admission:?}",
            event.event_name
        );
        ensure!(
            item_status(event.content_hash.clone()).await?.as_deref() == Some("received"),
            "seeded item not 'received'"
        );
    }
    ensure!(
        h.stack.queue_depth("ChangesQueue").await?.total() == 0,
        "changes.fifo not empty before delivery"
    );

    // Redelivery repairs: A over SQS, B over HTTPS.
    h.emitter.send_raw_sqs(a_json.clone(), &a_attrs).await?;
    let answer = h
        .emitter
        .send_raw_https(h.emitter.jwt(&b.canvas)?, "application/jwt")
        .await?;
    let Delivered::Https { status: 200, body } = &answer else {
        bail!("B over HTTPS: {answer:?}")
    };
    let json: Value = serde_json::from_str(body)?;
    ensure!(
        json["status"] == "accepted" && json["event_hash"] == b_event.content_hash.as_str(),
        "B answer {json}"
    );
    h.drain_ingest(DRAIN).await?;
    for (event, source) in [(&a_event, "sqs"), (&b_event, "https")] {
        ensure!(
            h.metric("EventsRecovered", &[("Source", source)]) == 1.0,
            "EventsRecovered{{{source}}} = {}",
            h.metric("EventsRecovered", &[("Source", source)])
        );
        ensure!(
            item_status(event.content_hash.clone()).await?.as_deref() == Some("received"),
            "{} not stored",
            event.event_name
        );
    }
    ensure!(
        h.metric("EventsAccepted", &[]) == 0.0 && h.metric("DuplicatesDropped", &[]) == 0.0,
        "recovery counted as something else"
    );
    // Read (and delete) now, so a second enqueue below could not hide behind FIFO deduplication.
    let changes = h.take_queued().await?;
    let hashes: BTreeSet<&str> = changes
        .iter()
        .map(|c| c.message.event_hash.as_str())
        .collect();
    ensure!(
        changes.len() == 2
            && hashes
                == BTreeSet::from([a_event.content_hash.as_str(), b_event.content_hash.as_str()]),
        "after recovery changes.fifo held {:?}",
        changes
            .iter()
            .map(|c| (&c.message.event_name, &c.message.event_hash))
            .collect::<Vec<_>>()
    );
    for change in &changes {
        ensure!(
            change.group_id == change.message.entity_key,
            "group id {}",
            change.group_id
        );
    }

    // The processor (paused here) applies and publishes them: what it leaves in the inbox.
    for hash in [&a_event.content_hash, &b_event.content_hash] {
        h.ddb
            .update_item()
            .table_name(&table)
            .key(
                field::PK,
                aws_sdk_dynamodb::types::AttributeValue::S(record::event_pk(hash)),
            )
            .update_expression("SET #s = :published, #id = :id")
            .expression_attribute_names("#s", field::STATUS)
            .expression_attribute_names("#id", field::EVENT_ID)
            .expression_attribute_values(
                ":published",
                aws_sdk_dynamodb::types::AttributeValue::S("published".into()),
            )
            .expression_attribute_values(
                ":id",
                aws_sdk_dynamodb::types::AttributeValue::S(
                    coursewire_pipeline::processor::event_id(hash),
                ),
            )
            .send()
            .await?;
    }

    // Third delivery (swapping transports): duplicates, nothing enqueued.
    let answer = h
        .emitter
        .send_raw_https(h.emitter.jwt(&a.canvas)?, "application/jwt")
        .await?;
    let Delivered::Https { status: 200, body } = &answer else {
        bail!("A over HTTPS: {answer:?}")
    };
    ensure!(
        serde_json::from_str::<Value>(body)?["status"] == "duplicate",
        "A again over HTTPS: {body}"
    );
    h.emitter
        .send_raw_sqs(
            b.canvas.to_string(),
            &[
                ("event_name", b.event_name.as_str()),
                ("event_time", b.event_time_str().as_str()),
            ],
        )
        .await?;
    h.drain_ingest(DRAIN).await?;
    ensure!(
        h.metric("DuplicatesDropped", &[("Source", "https")]) == 1.0,
        "A not dropped over HTTPS"
    );
    ensure!(
        h.metric("DuplicatesDropped", &[("Source", "sqs")]) == 1.0,
        "B not dropped over SQS"
    );
    ensure!(
        h.metric("EventsRecovered", &[]) == 2.0,
        "EventsRecovered = {}",
        h.metric("EventsRecovered", &[])
    );
    let again = h.take_queued().await?;
    ensure!(
        again.is_empty(),
        "duplicates were enqueued again: {:?}",
        again
            .iter()
            .map(|c| &c.message.event_hash)
            .collect::<Vec<_>>()
    );
    ensure!(
        h.inbox_events().await?.len() == 2,
        "inbox should hold exactly A and B"
    );
    h.stop().await;
    Ok(())
}

/// Every example payload Instructure publishes (Canvas and Caliper formats; the project's
/// fixtures where that corpus is absent), delivered
/// over SQS with `event_name` / `event_time` attributes, ingests cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_published_example_payload_ingests_through_sqs() -> Result<()> {
    let (corpus, examples) = load_examples()?;
    let least = if corpus.is_instructure() { 100 } else { 20 };
    ensure!(
        examples.len() > least,
        "only {} example payloads found",
        examples.len()
    );
    let h = Harness::start("e2e-examples", StackOptions::ingest_only()).await?;

    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    let mut failures = Vec::new();
    let mut messages = Vec::new();
    for example in &examples {
        let body = example.payload.to_string();
        let hints = DeliveryHints {
            event_name: Some(example.event_name()),
            event_time: example.event_time(),
        };
        match live_events::parse_json(body.as_bytes(), hints) {
            Ok(event) => expected
                .entry(event.content_hash)
                .or_default()
                .push(example.source.clone()),
            Err(e) => failures.push(format!("{}: {} ({})", example.source, e, e.code())),
        }
        let mut attributes = vec![("event_name".to_string(), example.event_name().to_string())];
        if let Some(time) = example.event_time() {
            attributes.push(("event_time".to_string(), time.to_string()));
        }
        messages.push((body, attributes));
    }
    ensure!(
        failures.is_empty(),
        "example payloads coursewire cannot parse:\n{}",
        failures.join("\n")
    );
    for chunk in messages.chunks(10) {
        h.send_sqs_batch(chunk).await?;
    }
    h.drain_ingest(DRAIN).await?;

    let rejects = h.inbox_rejects().await?;
    let reasons: Vec<String> = rejects
        .iter()
        .map(|r| {
            format!(
                "{}: {}",
                attr(r, field::REASON_CODE).unwrap_or("?"),
                attr(r, field::REASON).unwrap_or("?")
            )
        })
        .collect();
    ensure!(
        rejects.is_empty(),
        "{} example payloads rejected: {reasons:?}",
        rejects.len()
    );
    let items = by_hash(h.inbox_events().await?)?;
    let stored: BTreeSet<&String> = items.keys().collect();
    let wanted: BTreeSet<&String> = expected.keys().collect();
    ensure!(
        stored == wanted,
        "inbox holds {} events, expected {} distinct payloads",
        stored.len(),
        wanted.len()
    );
    for (hash, item) in &items {
        let sources = &expected[hash];
        let example = examples
            .iter()
            .find(|e| e.source == sources[0])
            .context("example")?;
        ensure!(
            attr(item, field::EVENT_NAME) == Some(example.event_name()),
            "{}: stored as {:?}",
            example.source,
            attr(item, field::EVENT_NAME)
        );
        let key = attr(item, field::ENTITY_KEY).unwrap_or_default();
        ensure!(
            !key.is_empty() && !key.starts_with("event:"),
            "{}: no entity key derived ({key})",
            example.source
        );
    }
    let total = examples.len() as f64;
    // Every SQS receive has one outcome (SQS may hand a message out twice).
    let received = h.sqs_received() as f64;
    ensure!(
        received >= total,
        "the poller received {received} of {total} messages"
    );
    let outcomes = h.metric("EventsAccepted", &[])
        + h.metric("DuplicatesDropped", &[])
        + h.metric("EventsRecovered", &[]);
    ensure!(
        outcomes == received,
        "{outcomes} outcomes for {received} received messages"
    );
    if received == total {
        ensure!(
            h.metric("EventsAccepted", &[]) == expected.len() as f64,
            "EventsAccepted {}",
            h.metric("EventsAccepted", &[])
        );
    }
    ensure!(
        h.metric("EventsRejected", &[]) == 0.0 && h.metric("BatchItemFailures", &[]) == 0.0,
        "rejects or batch failures"
    );
    // Every documented event type has an entity-key rule.
    let unknown = h.stack.metrics.sum_by("UnknownEventTypes", "Source");
    ensure!(
        unknown.is_empty(),
        "event types without an entity-key rule: {unknown:?}"
    );
    let shared: Vec<&Vec<String>> = expected.values().filter(|s| s.len() > 1).collect();
    eprintln!(
        "[{}] {} example payloads -> {} inbox events ({} identical across files: {shared:?})",
        h.stage,
        examples.len(),
        items.len(),
        shared.len(),
    );
    h.stop().await;
    Ok(())
}
