//! The template's alarms on the local stack: each evaluated on the EMF metrics the functions
//! really emitted and on the queues' attributes, driven by the fault that should trip it, seen
//! to go to ALARM with CloudWatch's message on `AlarmTopic` (encrypted with the stack's own
//! KMS key, whose policy lets CloudWatch publish), then back to OK when the fault is gone.
//!
//! Faults: sla-monitor not ticking, no live events at all, a burst of forged deliveries,
//! stalled consumers (backlogs on the live-events queue, changes.fifo and recordings.fifo), a
//! message in each dead-letter queue; then, on a second stack behind the fault proxy, a slow
//! EventBridge (propagation p99), a failing inbox table (the ingest's 5xx) and a slow one
//! (the ingest timing out: Lambda's Errors). The clock of each evaluation is given, so "five
//! minutes later" takes no waiting. Last, the topic is switched to the AWS-managed
//! `alias/aws/sns` key, and an alarm's message no longer arrives.
//!
//! The Canvas alarms are driven in `reconcile_e2e` (a quota hog, a revoked grant) and the
//! Panopto token alarm in `capture_e2e` (a regenerated API client secret).

use anyhow::{Context, Result, ensure};
use chrono::{Duration as Delta, Utc};
use coursewire_local::alarms::{State, Transition};
use coursewire_local::clock::SimulatedTime;
use coursewire_local::fault_proxy::{Fault, FaultPlan, FaultRule};
use coursewire_local::stack::StackOptions;
use coursewire_tests::on_call::{OnCall, messages_of, states_of};
use coursewire_tests::{Harness, load_examples, wait_until};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const MONITOR: &str = "SlaMonitorFunction";

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
    let mut on_call = OnCall::subscribe(&h).await?;

    // Nothing has happened yet: no tick, no live event.
    let start = Utc::now();
    let first = on_call.evaluate(&h, start).await?;
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
    let second = on_call.evaluate(&h, now).await?;
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
        on_call.evaluate(&h, now + Delta::minutes(minute)).await?;
    }
    let later: Vec<Transition> = on_call.transitions[first.len() + second.len()..].to_vec();
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
    let cleared = on_call.evaluate(&h, now + Delta::minutes(11)).await?;
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
        let tripped = on_call.evaluate(&h, at).await?;
        ensure!(
            states_of(&tripped, alarm) == [State::Alarm],
            "{alarm}: {tripped:?}"
        );
        h.sqs.purge_queue().queue_url(&url).send().await?;
        let back = on_call.evaluate(&h, at + Delta::seconds(61)).await?;
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
    let dead = on_call.evaluate(&h, now + Delta::minutes(12)).await?;
    ensure!(
        states_of(&dead, "recordings-dlq-not-empty") == [State::Alarm],
        "{dead:?}"
    );
    h.sqs.purge_queue().queue_url(&dlq).send().await?;
    let moved = on_call.evaluate(&h, now + Delta::minutes(13)).await?;
    ensure!(
        states_of(&moved, "recordings-dlq-not-empty") == [State::Ok],
        "{moved:?}"
    );

    // Every state change reached the subscribed queue, in order.
    let messages = on_call.messages(&h).await?;
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
        .topic_arn(&on_call.topic)
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
            && dlq_alarm.undeliverable == [on_call.topic.clone()],
        "{dlq_alarm:?}"
    );
    ensure!(
        on_call.pending(&h).await?.is_empty(),
        "a message arrived through a topic CloudWatch may not use"
    );
    h.stop().await;
    Ok(())
}

/// A live event of `event_type` from the examples, made distinct by `n` (its event time), so
/// every delivery is a new event.
fn fresh_event(examples: &[coursewire_tests::Example], event_type: &str, n: i64) -> Result<Value> {
    let mut payload = examples
        .iter()
        .find(|e| e.event_type == event_type)
        .with_context(|| format!("no {event_type} example"))?
        .payload
        .clone();
    payload["metadata"]["event_time"] = json!(
        (Utc::now() - Delta::seconds(n))
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    );
    Ok(payload)
}

/// Delivers `payloads` over HTTPS at once, as Canvas's delivery workers do; their statuses.
async fn deliver(h: &Harness, payloads: &[Value]) -> Result<Vec<u16>> {
    let sends = payloads.iter().map(|p| async {
        let answer = h
            .emitter
            .send_raw_https(h.emitter.jwt(p)?, "application/jwt")
            .await?;
        answer.status().context("not an HTTPS delivery")
    });
    futures::future::try_join_all(sends).await
}

const TYPES: [&str; 10] = [
    "course_created",
    "course_updated",
    "enrollment_created",
    "enrollment_updated",
    "user_created",
    "assignment_created",
    "assignment_updated",
    "course_section_created",
    "module_created",
    "submission_created",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_and_propagation_alarms_fire_on_their_faults_and_clear() -> Result<()> {
    // The functions' AWS calls go through the fault proxy; their metrics are stamped on a
    // clock the test moves on, so "five minutes later" takes no waiting. The scheduled
    // functions are paused: only the ingest and the processor call AWS here.
    let metrics_clock = SimulatedTime::from_now();
    let mut options = StackOptions {
        faults: Some(FaultPlan::passthrough()),
        metrics_clock: Arc::new(metrics_clock.clone()),
        ..StackOptions::default()
    };
    for scheduled in [
        MONITOR,
        "PanoptoPollerFunction",
        "RecordingSchedulerFunction",
        "TokenKeeperFunction",
        "ReconcilerFunction",
    ] {
        options = options.pause(scheduled);
    }
    options.overrides = options.overrides.parameter("AlarmPropagationP99Ms", "1000");
    let h = Harness::start("alarms-ingest", options).await?;
    let proxy = h.stack.fault_proxy().context("no fault proxy")?;
    let mut on_call = OnCall::subscribe(&h).await?;
    let (_, examples) = load_examples()?;
    let published = || h.stack.metrics.values("PropagationLatency").len();
    on_call
        .expect_now(
            &h,
            &[
                ("propagation-p99", State::Ok),
                ("https-ingest-failing", State::Ok),
                ("https-ingest-errors", State::Ok),
            ],
        )
        .await?;

    // EventBridge answers 1.2 s late: every change reaches the bus late, above the 1 s p99.
    proxy.set_plan(FaultPlan::new(
        1,
        [FaultRule::always(
            "PutEvents",
            Fault::Delay(Duration::from_millis(1200)),
        )],
    ));
    let slow: Vec<Value> = TYPES[..5]
        .iter()
        .enumerate()
        .map(|(n, t)| fresh_event(&examples, t, n as i64))
        .collect::<Result<_>>()?;
    ensure!(deliver(&h, &slow).await? == [200; 5], "slow deliveries");
    wait_until(
        Duration::from_secs(30),
        "five changes on the bus",
        || async { Ok(published() >= 5) },
    )
    .await?;
    on_call
        .expect_now(&h, &[("propagation-p99", State::Alarm)])
        .await?;

    // EventBridge recovers; five minutes on, changes are prompt again.
    proxy.set_plan(FaultPlan::passthrough());
    metrics_clock.advance(Duration::from_secs(301));
    let prompt: Vec<Value> = TYPES[5..]
        .iter()
        .enumerate()
        .map(|(n, t)| fresh_event(&examples, t, n as i64))
        .collect::<Result<_>>()?;
    ensure!(deliver(&h, &prompt).await? == [200; 5], "prompt deliveries");
    wait_until(
        Duration::from_secs(30),
        "ten changes on the bus",
        || async { Ok(published() >= 10) },
    )
    .await?;
    on_call
        .expect_now(&h, &[("propagation-p99", State::Ok)])
        .await?;

    // The inbox table fails (DynamoDB 500s through the SDK's retries): the ingest answers
    // Canvas 5xx, five times.
    proxy.set_plan(FaultPlan::new(
        2,
        [FaultRule::always(
            "PutItem",
            Fault::Reject {
                status: 500,
                code: "InternalServerError".into(),
            },
        )],
    ));
    let refused: Vec<Value> = TYPES[..5]
        .iter()
        .enumerate()
        .map(|(n, t)| fresh_event(&examples, t, 100 + n as i64))
        .collect::<Result<_>>()?;
    let statuses = deliver(&h, &refused).await?;
    ensure!(statuses.iter().all(|s| *s >= 500), "{statuses:?}");
    on_call
        .expect_now(&h, &[("https-ingest-failing", State::Alarm)])
        .await?;

    // The table turns slow instead: each delivery outlives the function's 10 s timeout, and
    // Canvas gets Lambda's 502. The function never answers, so only Lambda's Errors see it.
    proxy.set_plan(FaultPlan::new(
        3,
        [FaultRule::always(
            "PutItem",
            Fault::Delay(Duration::from_secs(11)),
        )],
    ));
    let stuck: Vec<Value> = TYPES[5..8]
        .iter()
        .enumerate()
        .map(|(n, t)| fresh_event(&examples, t, 200 + n as i64))
        .collect::<Result<_>>()?;
    ensure!(
        deliver(&h, &stuck).await? == [502; 3],
        "timed-out deliveries"
    );
    on_call
        .expect_now(&h, &[("https-ingest-errors", State::Alarm)])
        .await?;

    // The table recovers; five minutes on, both clear.
    proxy.set_plan(FaultPlan::passthrough());
    metrics_clock.advance(Duration::from_secs(301));
    ensure!(
        deliver(&h, &stuck).await? == [200; 3],
        "redelivered after the recovery"
    );
    on_call
        .expect_now(
            &h,
            &[
                ("https-ingest-failing", State::Ok),
                ("https-ingest-errors", State::Ok),
            ],
        )
        .await?;

    let messages = on_call.messages(&h).await?;
    for alarm in [
        "propagation-p99",
        "https-ingest-failing",
        "https-ingest-errors",
    ] {
        ensure!(
            messages_of(&messages, alarm) == ["OK", "ALARM", "OK"],
            "{alarm} on the topic: {:?}",
            messages_of(&messages, alarm)
        );
    }
    h.stop().await;
    Ok(())
}
