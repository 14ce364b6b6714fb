//! The sample Lambda events in `events/`:
//!
//! - `ingest-sqs.json`: an SQS batch as Lambda hands it to `ingest-sqs` (three Canvas live
//!   events as raw JSON bodies with `event_name` / `event_time` attributes);
//! - `ingest-https.json`: a Function URL request (payload 2.0) as Lambda hands it to
//!   `ingest-https`, whose body is a compact RS256 JWT of a live event;
//! - `fixture-jwks.json`: the public keys that verify that JWT (issuer
//!   `https://canvas.fixture.example`). The token carries no `exp`, so the fixture does not
//!   expire; the private key was thrown away after signing.
//!
//! Regenerate all three with
//! `cargo test -p coursewire-tests --test fixtures -- --ignored regenerate`.

use anyhow::{Context, Result, ensure};
use async_trait::async_trait;
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::event::sqs::SqsEvent;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use coursewire_live_events::ingest::{IngestSettings, Ingestor};
use coursewire_live_events::jwt::{
    EventVerifier, JwkSet, JwksError, JwksSource, KeyCache, KeyCacheSettings,
};
use coursewire_live_events::live_events::{self, DeliveryHints};
use coursewire_pipeline::handoff::{EventQueue, QueuedEvent};
use coursewire_pipeline::inbox::{Admission, Delivery, Inbox, Reject, SourceEvent};
use coursewire_runtime::service::ServiceError;
use coursewire_runtime::telemetry::CollectingSink;
use coursewire_simulators::canvas_live_events::{KeyRing, Scenario, ScenarioConfig, SimEvent};
use coursewire_tests::{md5, repo_root};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// `iss` of the fixture token (and the `CanvasJwtIssuer` to use with it).
const FIXTURE_ISSUER: &str = "https://canvas.fixture.example";
const SQS_QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:canvas-live-events-dev";
const SQS_EVENTS: [&str; 3] = ["enrollment_created", "submission_created", "grade_change"];
const HTTPS_EVENT: &str = "submission_updated";

fn events_dir() -> Result<PathBuf> {
    Ok(repo_root()?.join("events"))
}

fn read_json(name: &str) -> Result<Value> {
    let path = events_dir()?.join(name);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Keys from `events/fixture-jwks.json`.
struct FileJwks(PathBuf);

#[async_trait]
impl JwksSource for FileJwks {
    async fn fetch(&self) -> Result<JwkSet, JwksError> {
        let text = std::fs::read_to_string(&self.0)
            .map_err(|e| JwksError::Fetch(format!("{}: {e}", self.0.display())))?;
        serde_json::from_str(&text).map_err(|e| JwksError::Invalid(e.to_string()))
    }
}

fn fixture_verifier() -> Result<Arc<EventVerifier>> {
    let cache = KeyCache::new(
        Arc::new(FileJwks(events_dir()?.join("fixture-jwks.json"))),
        KeyCacheSettings::default(),
    );
    Ok(Arc::new(EventVerifier::new(
        Arc::new(cache),
        FIXTURE_ISSUER,
        60,
    )))
}

/// In-memory inbox and changes queue, to run the fixtures through the real handlers offline.
#[derive(Default)]
struct Memory {
    events: Mutex<HashMap<String, bool>>,
    rejects: Mutex<Vec<String>>,
    changes: Mutex<Vec<QueuedEvent>>,
}

#[async_trait]
impl Inbox for Memory {
    async fn admit(
        &self,
        event: &dyn SourceEvent,
        _: &Delivery,
        _: DateTime<Utc>,
    ) -> Result<Admission, ServiceError> {
        let mut events = self.events.lock().expect("lock");
        Ok(match events.get(event.content_hash()) {
            None => {
                events.insert(event.content_hash().to_string(), false);
                Admission::New
            }
            Some(false) => Admission::Unfinished {
                first_received: None,
            },
            Some(true) => Admission::Duplicate,
        })
    }
    async fn record_reject(&self, reject: &Reject) -> Result<(), ServiceError> {
        self.rejects
            .lock()
            .expect("lock")
            .push(format!("{}: {}", reject.reason_code, reject.reason));
        Ok(())
    }
}

#[async_trait]
impl EventQueue for Memory {
    async fn enqueue(&self, messages: &[QueuedEvent]) -> Vec<Result<(), ServiceError>> {
        self.changes
            .lock()
            .expect("lock")
            .extend(messages.iter().cloned());
        vec![Ok(()); messages.len()]
    }
}

fn ingestor(
    memory: &Arc<Memory>,
    verifier: Option<Arc<EventVerifier>>,
    function: &str,
) -> Ingestor {
    Ingestor::new(
        memory.clone(),
        memory.clone(),
        verifier,
        IngestSettings::default(),
        Arc::new(CollectingSink::new()),
        function,
    )
}

#[tokio::test]
async fn sqs_fixture_is_a_lambda_sqs_batch_of_parseable_live_events() -> Result<()> {
    let raw = read_json("ingest-sqs.json")?;
    let event: SqsEvent = serde_json::from_value(raw.clone())
        .context("events/ingest-sqs.json is not a Lambda SqsEvent")?;
    ensure!(
        event.records.len() == SQS_EVENTS.len(),
        "{} records",
        event.records.len()
    );
    let mut names = Vec::new();
    for (i, record) in event.records.iter().enumerate() {
        let body = record
            .body
            .as_deref()
            .with_context(|| format!("record {i} has no body"))?;
        let attribute = |name: &str| {
            record
                .message_attributes
                .get(name)
                .and_then(|a| a.string_value.clone())
                .with_context(|| format!("record {i}: no {name} attribute"))
        };
        let (name, time) = (attribute("event_name")?, attribute("event_time")?);
        for key in ["event_name", "event_time"] {
            ensure!(
                record.message_attributes[key].data_type.as_deref() == Some("String"),
                "record {i}: {key} dataType"
            );
        }
        let parsed = live_events::parse_json(
            body.as_bytes(),
            DeliveryHints {
                event_name: Some(&name),
                event_time: Some(&time),
            },
        )
        .with_context(|| format!("record {i} body does not parse as a live event"))?;
        let body_json: Value = serde_json::from_str(body)?;
        ensure!(
            parsed.event_name == name && body_json["metadata"]["event_name"] == name.as_str(),
            "record {i}: event name"
        );
        ensure!(
            body_json["metadata"]["event_time"] == time.as_str(),
            "record {i}: event_time attribute differs from the body"
        );
        ensure!(
            record.event_source.as_deref() == Some("aws:sqs"),
            "record {i}: eventSource"
        );
        ensure!(
            record.event_source_arn.as_deref() == Some(SQS_QUEUE_ARN),
            "record {i}: eventSourceARN"
        );
        ensure!(
            record.aws_region.as_deref() == Some("us-east-1"),
            "record {i}: awsRegion"
        );
        ensure!(
            record.message_id.as_deref().is_some_and(|m| !m.is_empty()),
            "record {i}: messageId"
        );
        ensure!(
            record
                .receipt_handle
                .as_deref()
                .is_some_and(|m| !m.is_empty()),
            "record {i}: receiptHandle"
        );
        ensure!(
            record.md5_of_body.as_deref() == Some(md5::hex(body.as_bytes()).as_str()),
            "record {i}: md5OfBody"
        );
        ensure!(
            record.md5_of_message_attributes.as_deref()
                == Some(
                    md5::of_string_attributes(&[("event_name", &name), ("event_time", &time)])
                        .as_str()
                ),
            "record {i}: md5OfMessageAttributes"
        );
        for key in [
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
        ] {
            ensure!(
                record.attributes.contains_key(key),
                "record {i}: attributes.{key}"
            );
        }
        names.push(name);
    }
    ensure!(names == SQS_EVENTS, "events {names:?}");

    // Through the real handler (in-memory storage): all accepted, no batch item failures.
    let memory = Arc::new(Memory::default());
    let ingestor = ingestor(&memory, None, "ingest-sqs");
    let response = coursewire_runtime::function::queue::handle_sqs(&ingestor, event)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(
        response.batch_item_failures.is_empty(),
        "batch item failures: {:?}",
        response.batch_item_failures.len()
    );
    ensure!(
        memory.rejects.lock().expect("lock").is_empty(),
        "rejects: {:?}",
        memory.rejects.lock().expect("lock")
    );
    ensure!(
        memory.changes.lock().expect("lock").len() == SQS_EVENTS.len(),
        "not every record was enqueued"
    );
    Ok(())
}

#[tokio::test]
async fn https_fixture_token_verifies_against_the_committed_jwks() -> Result<()> {
    let raw = read_json("ingest-https.json")?;
    let request: LambdaFunctionUrlRequest = serde_json::from_value(raw.clone())
        .context("events/ingest-https.json is not a Function URL request")?;
    ensure!(
        request.version.as_deref() == Some("2.0"),
        "version {:?}",
        request.version
    );
    ensure!(
        request.raw_path.as_deref() == Some("/"),
        "rawPath {:?}",
        request.raw_path
    );
    let method = request
        .request_context
        .http
        .method
        .clone()
        .unwrap_or_default();
    ensure!(method == "POST", "requestContext.http.method {method:?}");
    ensure!(
        request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            == Some("application/jwt"),
        "content-type {:?}",
        request.headers.get("content-type")
    );
    ensure!(!request.is_base64_encoded, "isBase64Encoded");
    let token = request.body.clone().context("no body")?;

    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap_or_default())?,
    )?;
    ensure!(
        header["alg"] == "RS256" && header["kid"].is_string(),
        "JWT header {header}"
    );
    let claims = fixture_verifier()?
        .verify(&token)
        .await
        .context("the fixture token does not verify against events/fixture-jwks.json")?;
    ensure!(
        claims.get("exp").is_none(),
        "the fixture token must not expire"
    );
    ensure!(claims["iss"] == FIXTURE_ISSUER, "iss {}", claims["iss"]);
    let event =
        live_events::from_jwt_claims(claims).context("the token's claims are not a live event")?;
    ensure!(
        event.event_name == HTTPS_EVENT,
        "event {}",
        event.event_name
    );

    // The committed JWKS holds public keys only.
    let jwks = read_json("fixture-jwks.json")?;
    for key in jwks["keys"].as_array().context("no keys")? {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            ensure!(
                key.get(private).is_none(),
                "fixture-jwks.json contains private key material ({private})"
            );
        }
    }

    // Through the real ingest-https handler (in-memory storage), as lambda_http would call it.
    let memory = Arc::new(Memory::default());
    let mut builder = http::Request::builder()
        .method(method.as_str())
        .uri(request.raw_path.clone().unwrap_or_default());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = ingestor(&memory, Some(fixture_verifier()?), "ingest-https")
        .handle_http(builder.body(bytes::Bytes::from(token))?)
        .await;
    ensure!(
        response.status() == 200,
        "ingest-https answered {}: {}",
        response.status(),
        response.body()
    );
    let answer: Value = serde_json::from_str(response.body())?;
    ensure!(
        answer["status"] == "accepted" && answer["event_hash"] == event.content_hash.as_str(),
        "answer {answer}"
    );
    Ok(())
}

fn pick<'a>(scenario: &'a Scenario, name: &str) -> Result<&'a SimEvent> {
    scenario
        .events
        .iter()
        .find(|e| e.event_name == name)
        .with_context(|| format!("no {name} in the fixture scenario"))
}

/// A stable UUID-shaped id derived from some bytes.
fn uuid_from(seed: &[u8]) -> String {
    let h = md5::hex(seed);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn write_json(name: &str, value: &Value) -> Result<()> {
    let path = events_dir()?.join(name);
    std::fs::create_dir_all(path.parent().context("events dir")?)?;
    std::fs::write(&path, format!("{}\n", serde_json::to_string_pretty(value)?))
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Rewrites `events/ingest-sqs.json`, `events/ingest-https.json` and
/// `events/fixture-jwks.json` (new signing key each time; the private key is not kept).
#[test]
#[ignore = "rewrites the committed fixtures; run with --ignored regenerate"]
fn regenerate() -> Result<()> {
    let scenario = Scenario::build(ScenarioConfig {
        seed: 20_250_825,
        courses: 1,
        sections_per_course: 1,
        students_per_course: 3,
        assignments_per_course: 1,
        modules_per_course: 1,
        submissions_ratio: 1.0,
        grade_changes_per_submission: 1,
        duplicate_ratio: 0.0,
        hostname: "canvas.fixture.example".into(),
        ..ScenarioConfig::default()
    });

    let mut records = Vec::new();
    for name in SQS_EVENTS {
        let event = pick(&scenario, name)?;
        let body = event.canvas.to_string();
        let time = event.event_time_str();
        let sent = event.event_time.timestamp_millis() + 412;
        records.push(json!({
            "messageId": uuid_from(body.as_bytes()),
            "receiptHandle": format!("AQEB{}", STANDARD.encode(md5::hex(format!("receipt {body}").as_bytes()))),
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": sent.to_string(),
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": (sent + 27).to_string(),
            },
            "messageAttributes": {
                "event_name": {"stringValue": name, "stringListValues": [], "binaryListValues": [], "dataType": "String"},
                "event_time": {"stringValue": time, "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            },
            "md5OfBody": md5::hex(body.as_bytes()),
            "md5OfMessageAttributes": md5::of_string_attributes(&[("event_name", name), ("event_time", &time)]),
            "eventSource": "aws:sqs",
            "eventSourceARN": SQS_QUEUE_ARN,
            "awsRegion": "us-east-1",
        }));
    }
    write_json("ingest-sqs.json", &json!({ "Records": records }))?;

    let ring = KeyRing::new().context("generating a signing key")?;
    let event = pick(&scenario, HTTPS_EVENT)?;
    let mut claims = event.canvas.clone();
    // Signed when the event happened (a fixed past instant, so `iat` is never in the future).
    let now = event.event_time;
    claims["iss"] = json!(FIXTURE_ISSUER);
    claims["iat"] = json!(now.timestamp());
    let token = ring.sign(&claims);
    let url_id = "n4bqbhoo3gcj7kpxvyltmsqkcu0ahmsn";
    let request = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/jwt",
            "content-length": token.len().to_string(),
            "host": format!("{url_id}.lambda-url.us-east-1.on.aws"),
            "user-agent": "Canvas Live Events",
            "x-amzn-trace-id": "Root=1-6720f1c5-3c1a2b7e4f0d9a8b7c6d5e4f",
            "x-forwarded-for": "52.2.10.138",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": url_id,
            "domainName": format!("{url_id}.lambda-url.us-east-1.on.aws"),
            "domainPrefix": url_id,
            "http": {
                "method": "POST",
                "path": "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "52.2.10.138",
                "userAgent": "Canvas Live Events",
            },
            "requestId": uuid_from(token.as_bytes()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "body": token,
        "isBase64Encoded": false,
    });
    write_json("ingest-https.json", &request)?;
    write_json("fixture-jwks.json", &ring.jwks())?;
    Ok(())
}

/// Rewrites `events/live-events/`: the conformance corpus used where Instructure's example
/// payloads are not at hand, in their layout (`<format>/event-types/<type>.json`). Up to
/// three events of every type the Canvas simulator emits, each in both formats where Canvas
/// has a Caliper form, so the first example of a type describes the same event in both.
/// Run with `cargo test -p coursewire-tests --test fixtures -- --ignored rewrite_live_event_fixtures`.
#[test]
#[ignore = "rewrites the committed fixtures; run with --ignored rewrite_live_event_fixtures"]
fn rewrite_live_event_fixtures() -> Result<()> {
    use coursewire_live_events::live_events::corpus::{FIXTURE_DIR, FIXTURE_MARKER};
    use std::collections::BTreeMap;
    const PER_TYPE: usize = 3;
    let scenario = Scenario::build(ScenarioConfig {
        seed: 20_261_203,
        courses: 2,
        sections_per_course: 2,
        students_per_course: 4,
        assignments_per_course: 2,
        modules_per_course: 2,
        submissions_ratio: 1.0,
        grade_changes_per_submission: 1,
        duplicate_ratio: 0.0,
        hostname: "canvas.fixture.example".into(),
        ..ScenarioConfig::default()
    });
    let mut by_type: BTreeMap<&str, Vec<&SimEvent>> = BTreeMap::new();
    for event in &scenario.events {
        let picked = by_type.entry(event.event_name.as_str()).or_default();
        if picked.len() < PER_TYPE {
            picked.push(event);
        }
    }
    let root = repo_root()?.join(FIXTURE_DIR);
    if root.is_dir() {
        std::fs::remove_dir_all(&root)?;
    }
    for (event_type, events) in &by_type {
        let canvas: Vec<Value> = events
            .iter()
            .map(|e| json!({"description": format!("{}:{}", e.entity.0, e.entity.1), "payload": e.canvas}))
            .collect();
        let caliper: Vec<Value> = events
            .iter()
            .filter_map(|e| {
                let payload = e.caliper.as_ref()?;
                Some(json!({"description": format!("{}:{}", e.entity.0, e.entity.1), "payload": payload}))
            })
            .collect();
        for (format, examples) in [("canvas", canvas), ("caliper", caliper)] {
            if examples.is_empty() {
                continue;
            }
            let name = format!("live-events/{format}/event-types/{event_type}.json");
            write_json(&name, &json!({"name": event_type, "examples": examples}))?;
        }
    }
    write_json(
        &format!("live-events/{FIXTURE_MARKER}"),
        &json!({
            "what": "coursewire's own live-event fixtures, generated by the Canvas simulator; the conformance tests use them where Instructure's example payloads are absent",
            "regenerate": "cargo test -p coursewire-tests --test fixtures -- --ignored rewrite_live_event_fixtures",
            "seed": 20_261_203,
            "event_types": by_type.len(),
        }),
    )?;
    Ok(())
}

/// `events/processor.json`: a `changes.fifo` batch as Lambda hands it to `processor`, made
/// from the three events of `ingest-sqs.json` as ingestion enqueues them.
#[test]
fn processor_fixture_is_what_ingestion_enqueues() -> Result<()> {
    let event: SqsEvent = serde_json::from_value(read_json("processor.json")?)
        .context("events/processor.json is not an SQS event")?;
    let ingest: SqsEvent = serde_json::from_value(read_json("ingest-sqs.json")?)?;
    ensure!(event.records.len() == ingest.records.len(), "record count");
    for (record, source) in event.records.iter().zip(&ingest.records) {
        let body = record.body.as_deref().context("no body")?;
        ensure!(
            record.md5_of_body.as_deref() == Some(md5::hex(body.as_bytes()).as_str()),
            "md5OfBody does not match the body"
        );
        let message: QueuedEvent = serde_json::from_str(body).context("body")?;
        let live = live_events::parse_json(
            source.body.as_deref().context("no source body")?.as_bytes(),
            DeliveryHints::default(),
        )?;
        ensure!(message.event_hash == live.content_hash, "hash differs");
        ensure!(message.entity_key == live.entity_key.as_str(), "entity key");
        ensure!(
            record.attributes.get("MessageGroupId") == Some(&message.entity_key)
                && record.attributes.get("MessageDeduplicationId")
                    == Some(&message.deduplication_id()),
            "FIFO attributes do not match the message"
        );
    }
    Ok(())
}

/// `events/replay.json`: a valid dry-run request for the `replay` function.
#[test]
fn replay_fixture_is_a_valid_request() -> Result<()> {
    let request: coursewire_pipeline::replay::ReplayRequest =
        serde_json::from_value(read_json("replay.json")?)?;
    ensure!(request.dry_run, "the fixture should be a dry run");
    request
        .plan(Utc::now())
        .map_err(|e| anyhow::anyhow!("replay.json is refused: {e}"))?;
    Ok(())
}

#[test]
fn reconciler_fixtures_are_what_its_queue_and_callers_send() -> Result<()> {
    use coursewire_canvas::reconcile::CourseMessage;
    let batch: SqsEvent = serde_json::from_value(read_json("reconciler.json")?)?;
    ensure!(batch.records.len() == 1, "one course per message");
    let record = &batch.records[0];
    let body = record.body.as_deref().context("no body")?;
    let message: CourseMessage = serde_json::from_str(body)?;
    ensure!(message.course_id == "21070000000000120", "{message:?}");
    ensure!(
        record.md5_of_body.as_deref() == Some(md5::hex(body.as_bytes()).as_str()),
        "md5OfBody"
    );
    let invoke = read_json("reconciler-course.json")?;
    ensure!(
        invoke["course_id"].is_string(),
        "reconciler-course.json: {invoke}"
    );
    for file in ["token-keeper.json", "sla-monitor.json"] {
        let tick = read_json(file)?;
        ensure!(tick["detail-type"] == "Scheduled Event", "{file}: {tick}");
    }
    Ok(())
}

#[test]
fn orchestrator_fixtures_are_recording_events_and_a_replay_request() -> Result<()> {
    use coursewire_pipeline::processor::EntityModel;
    use coursewire_publishing::recording::RecordingModel;
    let event: SqsEvent = serde_json::from_value(read_json("orchestrator.json")?)
        .context("events/orchestrator.json is not a Lambda SqsEvent")?;
    ensure!(event.records.len() == 2, "two recording events");
    let mut row = RecordingModel.empty("recording:6f0c2b7e-4d1a-4c8e-9b3f-2a7d5e9c1b40");
    for record in &event.records {
        let queued: QueuedEvent = serde_json::from_str(record.body.as_deref().unwrap_or_default())
            .context("a body that is not a QueuedEvent")?;
        ensure!(
            record.attributes.get("MessageGroupId") == Some(&queued.entity_key),
            "grouped by session"
        );
        let derived = RecordingModel
            .derive(&row, &queued, "id".into(), false)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        row = derived.row;
    }
    ensure!(row.complete && row.sequence == 2, "{row:?}");
    let replay =
        coursewire_publishing::PublishReplay::from_value(read_json("orchestrator-replay.json")?)
            .map_err(|e| anyhow::anyhow!("events/orchestrator-replay.json: {e}"))?;
    ensure!(replay.dry_run && replay.section_id.is_some(), "{replay:?}");
    Ok(())
}

#[test]
fn access_sync_fixture_is_an_enrollment_change_from_the_bus() -> Result<()> {
    use coursewire_publishing::access_sync::RosterChange;
    let event: SqsEvent = serde_json::from_value(read_json("access-sync.json")?)
        .context("events/access-sync.json is not a Lambda SqsEvent")?;
    let change = RosterChange::parse(event.records[0].body.as_deref().unwrap_or_default())?;
    ensure!(
        change
            .sections
            .iter()
            .eq(["2107000000000901".to_string()].iter()),
        "{change:?}"
    );
    Ok(())
}
