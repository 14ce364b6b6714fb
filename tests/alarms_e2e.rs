//! The template's alarms on the local stack: each evaluated on the EMF metrics the functions
//! really emitted and on the queues' attributes, driven by the fault that should trip it, seen
//! to go to ALARM with CloudWatch's message on `AlarmTopic` (encrypted with the stack's own
//! KMS key, whose policy lets CloudWatch publish), then back to OK when the fault is gone.
//!
//! Faults: sla-monitor not ticking, no live events at all, a burst of forged deliveries,
//! stalled consumers (backlogs on the live-events queue, changes.fifo and recordings.fifo), a
//! message in each dead-letter queue. The clock of
//! each evaluation is given, so "five minutes later" takes no waiting. Last, the topic is
//! switched to the AWS-managed `alias/aws/sns` key, and an alarm's message no longer arrives.

use anyhow::{Context, Result, ensure};
use chrono::{Duration as Delta, Utc};
use coursewire_local::alarms::{State, Transition};
use coursewire_local::stack::StackOptions;
use coursewire_tests::{Harness, load_examples, pages};
use serde_json::{Value, json};

const MONITOR: &str = "SlaMonitorFunction";

/// The new states `alarm` (its name's suffix) went through, in order.
fn states_of(transitions: &[Transition], alarm: &str) -> Vec<State> {
    transitions
        .iter()
        .filter(|t| t.alarm.ends_with(alarm))
        .map(|t| t.to)
        .collect()
}

/// The `NewStateValue`s of the alarm messages for `alarm` on the subscribed queue.
fn messages_of(messages: &[Value], alarm: &str) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m["AlarmName"].as_str().is_some_and(|n| n.ends_with(alarm)))
        .map(|m| m["NewStateValue"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Evaluates every alarm at `at`, keeping the transitions in `all`; each must reach its topic.
async fn evaluate(
    h: &Harness,
    all: &mut Vec<Transition>,
    at: chrono::DateTime<Utc>,
) -> Result<Vec<Transition>> {
    let transitions = h.stack.evaluate_alarms(at).await?;
    for t in &transitions {
        ensure!(
            t.undeliverable.is_empty(),
            "{} could not be delivered to {:?}",
            t.alarm,
            t.undeliverable
        );
    }
    all.extend(transitions.clone());
    Ok(transitions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_alarm_fires_on_its_fault_reaches_on_call_and_clears() -> Result<()> {
    // The processor, ingest-sqs and the orchestrator are paused so their queues keep what
    // arrives (stalled consumers); sla-monitor only ticks when the test says.
    let h = Harness::start(
        "alarms",
        StackOptions::ingest_only()
            .pause(MONITOR)
            .pause("IngestSqsFunction")
            .pause("OrchestratorFunction"),
    )
    .await?;
    let topic = h
        .stack
        .deployed
        .ref_value("AlarmTopic")
        .context("no AlarmTopic")?
        .to_string();
    let queue = pages::subscribe(&h, &topic).await?;
    let mut all: Vec<Transition> = Vec::new();

    // Nothing has happened yet: no tick, no live event.
    let start = Utc::now();
    let first = evaluate(&h, &mut all, start).await?;
    for alarm in ["sla-monitor-not-ticking", "live-events-silent"] {
        ensure!(
            states_of(&first, alarm) == [State::Alarm],
            "{alarm}: {:?}",
            states_of(&first, alarm)
        );
    }
    ensure!(
        states_of(&first, "changes-backlog") == [State::Ok]
            && states_of(&first, "recordings-dlq-not-empty") == [State::Ok],
        "{first:?}"
    );

    // A tick and a live event clear them.
    h.stack.invoke(MONITOR, json!({})).await?;
    let (_, examples) = load_examples()?;
    let example = examples
        .iter()
        .find(|e| e.event_type == "enrollment_created")
        .context("no enrollment_created example")?;
    let answer = h
        .emitter
        .send_raw_https(h.emitter.jwt(&example.payload)?, "application/jwt")
        .await?;
    ensure!(answer.status() == Some(200), "{answer:?}");
    // A burst of forged deliveries (an unknown signing key).
    for _ in 0..20 {
        let forged = h
            .ring
            .forge_unknown_kid(&h.emitter.claims(&example.payload, Utc::now().timestamp())?);
        let refused = h.emitter.send_raw_https(forged, "application/jwt").await?;
        ensure!(refused.status() == Some(401), "{refused:?}");
    }
    let live_events = h.queue("CanvasLiveEventsQueue")?.to_string();
    h.sqs
        .send_message()
        .queue_url(&live_events)
        .message_body(example.payload.to_string())
        .send()
        .await?;
    let recordings = h.queue("RecordingsQueue")?.to_string();
    h.sqs
        .send_message()
        .queue_url(&recordings)
        .message_body(r#"{"waiting":"for the orchestrator"}"#)
        .message_group_id("recording:s-0")
        .message_deduplication_id("waiting-1")
        .send()
        .await?;
    let now = Utc::now();
    let second = evaluate(&h, &mut all, now).await?;
    for (alarm, expected) in [
        ("sla-monitor-not-ticking", State::Ok),
        ("live-events-silent", State::Ok),
        ("https-ingest-auth-failures", State::Alarm),
    ] {
        ensure!(
            states_of(&second, alarm) == [expected],
            "{alarm}: {:?} in {second:?}",
            states_of(&second, alarm)
        );
    }

    // Ten minutes on, nobody has taken the change off changes.fifo: a backlog. The forged
    // burst is over (OK), and with no tick in 5 minutes sla-monitor is not ticking again.
    for minute in 1..=10 {
        evaluate(&h, &mut all, now + Delta::minutes(minute)).await?;
    }
    let later: Vec<Transition> = all[first.len() + second.len()..].to_vec();
    for (alarm, expected) in [
        ("changes-backlog", vec![State::Alarm]),
        ("live-events-backlog", vec![State::Alarm]),
        ("recordings-backlog", vec![State::Alarm]),
        ("https-ingest-auth-failures", vec![State::Ok]),
        ("sla-monitor-not-ticking", vec![State::Alarm]),
    ] {
        ensure!(
            states_of(&later, alarm) == expected,
            "{alarm}: {:?}",
            states_of(&later, alarm)
        );
    }

    // The consumer catches up (the queue drained): the backlog clears.
    let changes = h.queue("ChangesQueue")?.to_string();
    let drained = coursewire_tests::take_queued(&h.sqs, &changes).await?;
    ensure!(!drained.is_empty(), "changes.fifo was empty");
    for queue in [&live_events, &recordings] {
        h.sqs.purge_queue().queue_url(queue).send().await?;
    }
    let cleared = evaluate(&h, &mut all, now + Delta::minutes(11)).await?;
    for alarm in [
        "changes-backlog",
        "live-events-backlog",
        "recordings-backlog",
    ] {
        ensure!(
            states_of(&cleared, alarm) == [State::Ok],
            "{alarm}: {cleared:?}"
        );
    }

    // A message in each dead-letter queue trips its alarm; moved back, it clears.
    for (n, (dlq, alarm)) in [
        ("CanvasLiveEventsDLQ", "canvas-live-events-dlq-not-empty"),
        ("ChangesDLQ", "changes-dlq-not-empty"),
        ("AccessDLQ", "access-dlq-not-empty"),
        ("ReconcileDLQ", "reconcile-dlq-not-empty"),
        ("ExampleSubscriberDLQ", "example-subscriber-dlq-not-empty"),
    ]
    .into_iter()
    .enumerate()
    {
        let url = h
            .stack
            .deployed
            .queue_url(dlq)
            .with_context(|| format!("no {dlq}"))?
            .to_string();
        let mut send = h.sqs.send_message().queue_url(&url).message_body("{}");
        if url.ends_with(".fifo") {
            send = send
                .message_group_id("g")
                .message_deduplication_id(format!("dead-{n}"));
        }
        send.send().await?;
        // Each queue on its own minutes, so one's samples are not in another's periods.
        let at = now + Delta::minutes(20 + 2 * n as i64);
        let tripped = evaluate(&h, &mut all, at).await?;
        ensure!(
            states_of(&tripped, alarm) == [State::Alarm],
            "{alarm}: {tripped:?}"
        );
        h.sqs.purge_queue().queue_url(&url).send().await?;
        let back = evaluate(&h, &mut all, at + Delta::seconds(61)).await?;
        ensure!(states_of(&back, alarm) == [State::Ok], "{alarm}: {back:?}");
    }

    // A message lands in the recordings DLQ, then is moved back.
    let dlq = h
        .stack
        .deployed
        .queue_url("RecordingsDLQ")
        .context("no RecordingsDLQ")?
        .to_string();
    h.sqs
        .send_message()
        .queue_url(&dlq)
        .message_body(r#"{"event":"poisoned"}"#)
        .message_group_id("recording:s-1")
        .message_deduplication_id("poisoned-1")
        .send()
        .await?;
    let dead = evaluate(&h, &mut all, now + Delta::minutes(12)).await?;
    ensure!(
        states_of(&dead, "recordings-dlq-not-empty") == [State::Alarm],
        "{dead:?}"
    );
    h.sqs.purge_queue().queue_url(&dlq).send().await?;
    let moved = evaluate(&h, &mut all, now + Delta::minutes(13)).await?;
    ensure!(
        states_of(&moved, "recordings-dlq-not-empty") == [State::Ok],
        "{moved:?}"
    );

    // Every state change reached the subscribed queue, in order.
    let mut messages: Vec<Value> = Vec::new();
    for _ in 0..50 {
        let received = pages::received(&h.sqs, &queue).await?;
        messages.extend(received.into_iter().map(|(_, m, _)| m));
        if messages.len()
            >= all
                .iter()
                .filter(|t| t.to != State::InsufficientData)
                .count()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // SQS does not keep order: the evaluation clock does.
    messages.sort_by(|a, b| {
        a["StateChangeTime"]
            .as_str()
            .cmp(&b["StateChangeTime"].as_str())
    });
    for (alarm, expected) in [
        ("sla-monitor-not-ticking", vec!["ALARM", "OK", "ALARM"]),
        ("live-events-silent", vec!["ALARM", "OK"]),
        ("https-ingest-auth-failures", vec!["OK", "ALARM", "OK"]),
        ("changes-backlog", vec!["OK", "ALARM", "OK"]),
        ("recordings-dlq-not-empty", vec!["OK", "ALARM", "OK"]),
        ("live-events-backlog", vec!["OK", "ALARM", "OK"]),
        ("recordings-backlog", vec!["OK", "ALARM", "OK"]),
        (
            "canvas-live-events-dlq-not-empty",
            vec!["OK", "ALARM", "OK"],
        ),
        ("changes-dlq-not-empty", vec!["OK", "ALARM", "OK"]),
        ("access-dlq-not-empty", vec!["OK", "ALARM", "OK"]),
        ("reconcile-dlq-not-empty", vec!["OK", "ALARM", "OK"]),
        (
            "example-subscriber-dlq-not-empty",
            vec!["OK", "ALARM", "OK"],
        ),
    ] {
        ensure!(
            messages_of(&messages, alarm) == expected,
            "{alarm} on the topic: {:?}",
            messages_of(&messages, alarm)
        );
    }
    let message = messages
        .iter()
        .find(|m| {
            m["AlarmName"]
                .as_str()
                .is_some_and(|n| n.ends_with("changes-backlog"))
                && m["NewStateValue"] == "ALARM"
        })
        .context("no backlog alarm message")?;
    ensure!(
        message["AlarmDescription"]
            .as_str()
            .is_some_and(|d| d.contains("changes.fifo"))
            && message["OldStateValue"] == "OK",
        "{message}"
    );

    // Had the topic kept the AWS-managed key, CloudWatch could not have published to it.
    aws_sdk_sns::Client::new(&h.stack.aws)
        .set_topic_attributes()
        .topic_arn(&topic)
        .attribute_name("KmsMasterKeyId")
        .attribute_value("alias/aws/sns")
        .send()
        .await?;
    h.sqs
        .send_message()
        .queue_url(&dlq)
        .message_body(r#"{"event":"poisoned again"}"#)
        .message_group_id("recording:s-1")
        .message_deduplication_id("poisoned-2")
        .send()
        .await?;
    let silent = h.stack.evaluate_alarms(now + Delta::minutes(14)).await?;
    let dlq_alarm = silent
        .iter()
        .find(|t| t.alarm.ends_with("recordings-dlq-not-empty"))
        .context("the DLQ alarm did not change")?;
    ensure!(
        dlq_alarm.to == State::Alarm
            && dlq_alarm.delivered.is_empty()
            && dlq_alarm.undeliverable == [topic.clone()],
        "{dlq_alarm:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    ensure!(
        pages::received(&h.sqs, &queue).await?.is_empty(),
        "a message arrived through a topic CloudWatch may not use"
    );
    h.stop().await;
    Ok(())
}
