use super::*;
use crate::moto::MotoServer;
use crate::provision::{Overrides, provision};
use crate::repo::repo_root;
use crate::template::Template;
use aws_lambda_events::event::sqs::BatchItemFailure;
use aws_sdk_sqs::types::MessageAttributeValue;
use bytes::Bytes;
use std::sync::Mutex;

/// Polls `check` until it holds or `secs` pass.
async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Records every batch; fails bodies starting with "fail" (as batch items)
/// and errors the whole invocation for bodies starting with "crash".
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<Vec<SqsMessage>>>,
}

impl Recorder {
    fn bodies(&self) -> Vec<String> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .filter_map(|m| m.body.clone())
            .collect()
    }
}

#[async_trait]
impl SqsHandler for Recorder {
    async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, HandlerError> {
        self.batches.lock().unwrap().push(event.records.clone());
        if event
            .records
            .iter()
            .any(|r| r.body.as_deref().is_some_and(|b| b.starts_with("crash")))
        {
            return Err("crash requested".into());
        }
        let mut response = SqsBatchResponse::default();
        for r in &event.records {
            if r.body.as_deref().is_some_and(|b| b.starts_with("fail")) {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = r.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        Ok(response)
    }
}

struct Stack {
    _moto: MotoServer,
    sqs: aws_sdk_sqs::Client,
    deployed: Deployed,
}

/// The repo template in moto with a 2 s visibility timeout (longer than
/// the 1 s batching window, as Lambda requires) and maxReceiveCount 2.
async fn stack(stage: &str) -> Stack {
    let moto = MotoServer::start(&repo_root().unwrap()).await.unwrap();
    let config = moto.sdk_config();
    let overrides = Overrides::default()
        .parameter("Stage", stage)
        .parameter("CanvasJwtIssuer", "https://canvas.test")
        .queue_attribute("CanvasLiveEventsQueue", "VisibilityTimeout", "2")
        .queue_attribute("ChangesQueue", "VisibilityTimeout", "2")
        .max_receive_count("CanvasLiveEventsQueue", 2)
        .max_receive_count("ChangesQueue", 2);
    let deployed = provision(&Template::load_repo().unwrap(), &config, &overrides)
        .await
        .unwrap();
    Stack {
        sqs: aws_sdk_sqs::Client::new(&config),
        _moto: moto,
        deployed,
    }
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let n = |k| attrs[&k].parse::<u64>().unwrap();
    (
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

async fn dlq_bodies(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    out.messages()
        .iter()
        .filter_map(|m| m.body.clone())
        .collect()
}

#[tokio::test]
async fn sqs_poller_batches_deletes_redelivers_and_redrives() {
    let s = stack("poll").await;
    let function = s.deployed.function("IngestSqsFunction").unwrap();
    let config = SqsPollerConfig {
        pollers: 1,
        ..SqsPollerConfig::for_event_source(&s.deployed, function, &function.sqs_events[0]).unwrap()
    };
    assert_eq!(config.batch_size, 10);
    assert_eq!(config.batching_window, Duration::from_secs(1));
    assert!(config.report_batch_item_failures);
    let queue = config.queue_url.clone();

    for body in ["ok-1", "ok-2", "fail-1", "ok-3"] {
        s.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .message_attributes(
                "event_name",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("course_updated")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    let recorder = Arc::new(Recorder::default());
    let shutdown = ShutdownToken::new();
    let poller = SqsPoller::start(s.sqs.clone(), config.clone(), recorder.clone(), &shutdown)
        .await
        .unwrap();
    let counters = poller.counters();

    // The failing message is delivered twice (maxReceiveCount 2), then
    // SQS moves it to the DLQ on the next receive.
    let dlq = s
        .deployed
        .queue_url("CanvasLiveEventsDLQ")
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let dead = dlq_bodies(&s.sqs, &dlq).await;
        if !dead.is_empty() || Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dead, ["fail-1"]);
    poller.stop().await;

    // All four arrived in the first batch (within the 1 s window), with
    // Lambda's record shape.
    let batches = recorder.batches.lock().unwrap().clone();
    let first = &batches[0];
    assert_eq!(first.len(), 4, "{batches:?}");
    let r = &first[0];
    assert_eq!(r.event_source.as_deref(), Some("aws:sqs"));
    assert_eq!(
        r.event_source_arn.as_deref(),
        s.deployed.queue_arn("CanvasLiveEventsQueue")
    );
    assert_eq!(r.aws_region.as_deref(), Some("us-east-1"));
    assert!(r.message_id.is_some() && r.receipt_handle.is_some() && r.md5_of_body.is_some());
    assert_eq!(
        r.attributes
            .get("ApproximateReceiveCount")
            .map(String::as_str),
        Some("1")
    );
    assert!(r.attributes.contains_key("SentTimestamp"));
    let attr = &r.message_attributes["event_name"];
    assert_eq!(attr.string_value.as_deref(), Some("course_updated"));
    assert_eq!(attr.data_type.as_deref(), Some("String"));

    // Successes once each; the failure twice (receive counts 1, 2).
    let mut bodies = recorder.bodies();
    bodies.sort();
    assert_eq!(bodies, ["fail-1", "fail-1", "ok-1", "ok-2", "ok-3"]);
    let second = batches
        .iter()
        .flatten()
        .filter(|m| m.body.as_deref() == Some("fail-1"))
        .nth(1)
        .unwrap();
    assert_eq!(second.attributes["ApproximateReceiveCount"], "2");

    let c = counters.snapshot();
    assert_eq!(c.invocations, 2);
    assert_eq!(c.messages_deleted, 3);
    assert_eq!(c.messages_failed, 2);
    assert_eq!(c.batch_item_failures, 2);
    assert_eq!(c.messages_redriven, 1);
    assert_eq!(c.failed_invocations, 0);
    assert_eq!(queue_depth(&s.sqs, &queue).await, (0, 0));
}

#[tokio::test]
async fn whole_batch_failure_returns_every_message() {
    let s = stack("crash").await;
    let queue = s
        .deployed
        .queue_url("CanvasLiveEventsQueue")
        .unwrap()
        .to_owned();
    let arn = s
        .deployed
        .queue_arn("CanvasLiveEventsQueue")
        .unwrap()
        .to_owned();
    for body in ["crash-1", "ok-1"] {
        s.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let mut config = SqsPollerConfig::new("crashy", &queue, &arn);
    config.pollers = 1;
    config.batching_window = Duration::from_secs(1);
    let recorder = Arc::new(Recorder::default());
    let poller = SqsPoller::start(
        s.sqs.clone(),
        config,
        recorder.clone(),
        &ShutdownToken::new(),
    )
    .await
    .unwrap();
    let counters = poller.counters();
    eventually(20, "both deliveries", || {
        counters.snapshot().invocations >= 2
    })
    .await;
    poller.stop().await;

    // Err fails the batch: ok-1 came back together with crash-1.
    let batches = recorder.batches.lock().unwrap().clone();
    for batch in &batches[..2] {
        let mut bodies: Vec<_> = batch.iter().filter_map(|m| m.body.clone()).collect();
        bodies.sort();
        assert_eq!(bodies, ["crash-1", "ok-1"]);
    }
    let c = counters.snapshot();
    assert_eq!(c.failed_invocations, c.invocations);
    assert_eq!(c.messages_deleted, 0);
    assert_eq!(c.messages_redriven, 2);
    let dlq = s
        .deployed
        .queue_url("CanvasLiveEventsDLQ")
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut dead = Vec::new();
    while dead.len() < 2 && Instant::now() < deadline {
        // The redrive happens on the next receive after the visibility timeout.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let _ = s
            .sqs
            .receive_message()
            .queue_url(&queue)
            .send()
            .await
            .unwrap();
        dead.extend(dlq_bodies(&s.sqs, &dlq).await);
    }
    dead.sort();
    assert_eq!(dead, ["crash-1", "ok-1"]);
}

#[tokio::test]
async fn fifo_failure_holds_back_the_rest_of_its_group() {
    let s = stack("fifo").await;
    let queue = s.deployed.queue_url("ChangesQueue").unwrap().to_owned();
    let arn = s.deployed.queue_arn("ChangesQueue").unwrap().to_owned();
    for (group, body) in [
        ("a", "a1"),
        ("a", "fail-a2"),
        ("a", "a3"),
        ("b", "b1"),
        ("b", "b2"),
    ] {
        s.sqs
            .send_message()
            .queue_url(&queue)
            .message_group_id(group)
            .message_deduplication_id(body)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let mut config = SqsPollerConfig::new("processor", &queue, &arn);
    config.pollers = 1;
    config.batching_window = Duration::from_secs(1);
    config.report_batch_item_failures = true;
    let recorder = Arc::new(Recorder::default());
    let poller = SqsPoller::start(
        s.sqs.clone(),
        config,
        recorder.clone(),
        &ShutdownToken::new(),
    )
    .await
    .unwrap();
    let counters = poller.counters();
    eventually(20, "a2 redelivered", || {
        recorder.bodies().iter().filter(|b| *b == "fail-a2").count() >= 2
    })
    .await;
    poller.stop().await;

    let batches = recorder.batches.lock().unwrap().clone();
    let first = &batches[0];
    let group_of = |m: &SqsMessage| m.attributes.get("MessageGroupId").cloned();
    assert_eq!(first.len(), 5, "{batches:?}");
    assert_eq!(group_of(&first[0]).as_deref(), Some("a"));
    assert!(first[0].attributes.contains_key("MessageDeduplicationId"));
    assert!(first[0].attributes.contains_key("SequenceNumber"));
    // a3 was reported fine but must come back after a2: group order holds.
    let later: Vec<String> = batches[1..]
        .iter()
        .flatten()
        .filter_map(|m| m.body.clone())
        .collect();
    let a2 = later.iter().position(|b| b == "fail-a2").unwrap();
    let a3 = later.iter().position(|b| b == "a3").unwrap();
    assert!(a2 < a3, "{later:?}");
    assert!(
        !later.iter().any(|b| b.starts_with('b') || b == "a1"),
        "{later:?}"
    );
    assert!(counters.snapshot().messages_failed >= 2);
}

#[tokio::test]
async fn batching_window_and_batch_size_shape_batches() {
    let s = stack("window").await;
    let queue = s
        .deployed
        .queue_url("CanvasLiveEventsQueue")
        .unwrap()
        .to_owned();
    let arn = s
        .deployed
        .queue_arn("CanvasLiveEventsQueue")
        .unwrap()
        .to_owned();
    for i in 0..25 {
        s.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(format!("m{i}"))
            .send()
            .await
            .unwrap();
    }
    let mut config = SqsPollerConfig::new("big", &queue, &arn);
    config.pollers = 1;
    config.batch_size = 20; // More than one ReceiveMessage can return.
    config.batching_window = Duration::from_secs(1);
    let recorder = Arc::new(Recorder::default());
    let poller = SqsPoller::start(
        s.sqs.clone(),
        config,
        recorder.clone(),
        &ShutdownToken::new(),
    )
    .await
    .unwrap();
    let counters = poller.counters();
    eventually(20, "all deleted", || {
        counters.snapshot().messages_deleted == 25
    })
    .await;
    poller.stop().await;
    let sizes: Vec<usize> = recorder
        .batches
        .lock()
        .unwrap()
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, [20, 5]);
}

#[tokio::test]
async fn shutdown_token_cascades_to_children() {
    let parent = ShutdownToken::new();
    let child = parent.child();
    let grandchild = child.child();
    child.cancel();
    assert!(child.is_cancelled() && grandchild.is_cancelled() && !parent.is_cancelled());
    tokio::time::timeout(Duration::from_secs(1), grandchild.cancelled())
        .await
        .unwrap();

    let other = parent.child();
    let waiter = tokio::spawn({
        let other = other.clone();
        async move { other.cancelled().await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished());
    parent.cancel();
    tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .unwrap()
        .unwrap();
}

struct Echo;

#[async_trait]
impl HttpHandler for Echo {
    async fn handle(&self, req: http::Request<Bytes>) -> http::Response<String> {
        if req.uri().path() == "/panic" {
            panic!("requested");
        }
        if req.uri().path() == "/slow" {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let body = format!(
            "{} {} {} {}",
            req.method(),
            req.uri(),
            req.headers()
                .get("x-test")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            req.body().len()
        );
        http::Response::builder()
            .status(202)
            .header("content-type", "text/plain")
            .body(body)
            .unwrap()
    }
}

#[tokio::test]
async fn function_url_round_trips_and_enforces_limits() {
    let server = FunctionUrlServer::start_with(
        Arc::new(Echo),
        FunctionUrlOptions {
            timeout: Duration::from_millis(300),
            ..FunctionUrlOptions::default()
        },
    )
    .await
    .unwrap();
    let url = server.url().to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let ok = client
        .post(format!("{url}events?x=1"))
        .header("x-test", "yes")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 202);
    assert_eq!(ok.headers()["content-type"], "text/plain");
    assert_eq!(ok.text().await.unwrap(), "POST /events?x=1 yes 5");

    let big = client
        .post(&url)
        .body(vec![b'x'; MAX_REQUEST_BYTES + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 413);
    let at_limit = client
        .post(&url)
        .body(vec![b'x'; MAX_REQUEST_BYTES])
        .send()
        .await
        .unwrap();
    assert_eq!(at_limit.status().as_u16(), 202);

    let panicked = client.get(format!("{url}panic")).send().await.unwrap();
    assert_eq!(panicked.status().as_u16(), 502);
    let slow = client.get(format!("{url}slow")).send().await.unwrap();
    assert_eq!(slow.status().as_u16(), 502);

    let c = server.counters().snapshot();
    // The 413 never reached the function; the panic and the timeout are its Errors.
    assert_eq!((c.invocations, c.failed_invocations), (4, 2));
    server.stop().await;
    assert!(
        client.get(&url).send().await.is_err(),
        "server still answers after stop"
    );
}

#[test]
fn schedule_expressions_parse() {
    assert_eq!(
        Schedule::parse("rate(1 minute)").unwrap(),
        Schedule::Rate(Duration::from_secs(60))
    );
    assert_eq!(
        Schedule::parse("rate(5 minutes)").unwrap(),
        Schedule::Rate(Duration::from_secs(300))
    );
    assert_eq!(
        Schedule::parse("rate(2 hours)").unwrap(),
        Schedule::Rate(Duration::from_secs(7200))
    );
    for bad in [
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(0 days)",
        "every 5m",
        "cron(0 6 * * * *)",
        "cron(0 6 ? * ? *)",
        "cron(0 6 L * ? *)",
        "cron(0 24 * * ? *)",
    ] {
        assert!(Schedule::parse(bad).is_err(), "{bad} should be rejected");
    }
}

#[test]
fn cron_next_after() {
    let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let next = |expr: &str, from: &str| {
        Schedule::parse(expr)
            .unwrap()
            .next_after(t(from))
            .unwrap()
            .to_rfc3339()
    };
    // Every minute.
    assert_eq!(
        next("cron(* * * * ? *)", "2026-03-01T10:15:30Z"),
        "2026-03-01T10:16:00+00:00"
    );
    // 06:00 daily: strictly after, so 06:00 itself rolls to tomorrow.
    assert_eq!(
        next("cron(0 6 * * ? *)", "2026-03-01T06:00:00Z"),
        "2026-03-02T06:00:00+00:00"
    );
    // Every 15 minutes from 5.
    assert_eq!(
        next("cron(5/15 * * * ? *)", "2026-03-01T10:21:00Z"),
        "2026-03-01T10:35:00+00:00"
    );
    // Weekdays at 09:30 (2026-03-07 is a Saturday).
    assert_eq!(
        next("cron(30 9 ? * MON-FRI *)", "2026-03-06T10:00:00Z"),
        "2026-03-09T09:30:00+00:00"
    );
    // First of the month, month rollover and year end.
    assert_eq!(
        next("cron(0 0 1 * ? *)", "2026-12-15T00:00:00Z"),
        "2027-01-01T00:00:00+00:00"
    );
    // Feb 29 only in leap years.
    assert_eq!(
        next("cron(0 12 29 FEB ? *)", "2026-01-01T00:00:00Z"),
        "2028-02-29T12:00:00+00:00"
    );
    // A year list that has passed never fires.
    assert!(
        Schedule::parse("cron(0 0 1 1 ? 2020)")
            .unwrap()
            .next_after(t("2026-01-01T00:00:00Z"))
            .is_none()
    );
    let at = Schedule::parse("at(2030-01-02T03:04:05)").unwrap();
    assert_eq!(
        at.next_after(t("2026-01-01T00:00:00Z"))
            .unwrap()
            .to_rfc3339(),
        "2030-01-02T03:04:05+00:00"
    );
}

#[tokio::test]
async fn scheduler_runs_at_the_rate_and_stops() {
    let runs = Arc::new(AtomicU64::new(0));
    let count = runs.clone();
    let shutdown = ShutdownToken::new();
    let scheduler = Scheduler::start(
        "tick",
        Schedule::Rate(Duration::from_millis(100)),
        &shutdown,
        move || {
            let count = count.clone();
            async move {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                if n == 2 {
                    Err("second run fails".into())
                } else {
                    Ok(())
                }
            }
        },
    );
    let counters = scheduler.counters();
    eventually(5, "three runs", || runs.load(Ordering::SeqCst) >= 3).await;
    shutdown.cancel();
    scheduler.stop().await;
    let stopped_at = runs.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs.load(Ordering::SeqCst), stopped_at, "runs after stop");
    let c = counters.snapshot();
    assert_eq!(c.invocations, stopped_at);
    assert_eq!(c.failed_invocations, 1);
}

#[test]
fn lambda_record_shape_serializes_like_lambda() {
    let message = Message::builder()
        .message_id("m-1")
        .receipt_handle("rh")
        .body("{}")
        .md5_of_body("99914b932bd37a50b983c5e7c90ae93b")
        .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
        .message_attributes(
            "bin",
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(aws_sdk_sqs::primitives::Blob::new(b"hi".to_vec()))
                .build()
                .unwrap(),
        )
        .build();
    let event = to_sqs_event(
        &[message],
        "arn:aws:sqs:us-east-1:123456789012:q",
        "us-east-1",
    );
    let json = serde_json::to_value(&event).unwrap();
    let r = &json["Records"][0];
    assert_eq!(r["messageId"], "m-1");
    assert_eq!(r["eventSource"], "aws:sqs");
    assert_eq!(r["eventSourceARN"], "arn:aws:sqs:us-east-1:123456789012:q");
    assert_eq!(r["awsRegion"], "us-east-1");
    assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
    assert_eq!(r["messageAttributes"]["bin"]["binaryValue"], "aGk=");
    assert_eq!(r["messageAttributes"]["bin"]["dataType"], "Binary");
    let back: SqsEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, event);
}
