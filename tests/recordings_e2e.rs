//! Recording ingestion end to end on the local stack: institutional middleware's signed
//! webhook (`panopto-webhook` behind its function URL) into the recordings inbox and
//! `recordings.fifo`, one message group per Panopto session; every rejection class with its
//! own status and code, and nothing stored for any of them.

use anyhow::{Context, Result, ensure};
use coursewire_local::stack::StackOptions;
use coursewire_recordings::webhook::{SIGNATURE_HEADER, SigningKeys, TIMESTAMP_HEADER};
use coursewire_tests::{Harness, scan_table, take_queued};
use serde_json::{Value, json};

async fn signing_keys(h: &Harness) -> Result<SigningKeys> {
    let secrets = aws_sdk_secretsmanager::Client::new(&h.stack.aws);
    let arn = h
        .stack
        .deployed
        .ref_value("PanoptoWebhookSecret")
        .context("no PanoptoWebhookSecret")?;
    let value = secrets.get_secret_value().secret_id(arn).send().await?;
    let json: Value = serde_json::from_str(value.secret_string().unwrap_or_default())?;
    let secret = json["signing_secret"]
        .as_str()
        .context("no signing_secret")?;
    SigningKeys::new(secret, None).map_err(anyhow::Error::msg)
}

struct Sent {
    status: u16,
    body: Value,
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    timestamp: Option<String>,
    signature: Option<String>,
) -> Result<Sent> {
    let mut request = client.post(url).body(body.to_vec());
    if let Some(ts) = timestamp {
        request = request.header(TIMESTAMP_HEADER, ts);
    }
    if let Some(sig) = signature {
        request = request.header(SIGNATURE_HEADER, sig);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok(Sent { status, body })
}

#[tokio::test]
async fn signed_webhook_events_reach_the_recordings_queue_and_bad_ones_are_refused() -> Result<()> {
    let h = Harness::start(
        "recordings webhook",
        // This test reads recordings.fifo itself.
        StackOptions::default().pause("OrchestratorFunction"),
    )
    .await?;
    let url = h
        .stack
        .function_url("PanoptoWebhookFunction")
        .context("no webhook URL")?
        .to_string();
    let keys = signing_keys(&h).await?;
    let client = reqwest::Client::new();
    let now = chrono::Utc::now().timestamp();
    let event = |kind: &str, session: &str| {
        serde_json::to_vec(&json!({
            "event": kind,
            "session_id": session,
            "occurred_at": "2026-10-27T14:20:00Z",
            "lecture": {"section_id": "21070000000000101", "slot": "2026-10-27#1"},
            "details": {"source": "middleware"}
        }))
    };
    let signed = |body: &[u8], ts: i64| (Some(ts.to_string()), Some(keys.sign(ts, body)));

    // Accepted, and a re-signed retry of the same event is a duplicate (one inbox record).
    let complete = event("recording_complete", "sess-0001")?;
    let (ts, sig) = signed(&complete, now);
    let first = post(&client, &url, &complete, ts.clone(), sig.clone()).await?;
    ensure!(
        first.status == 202 && first.body["outcome"] == "accepted",
        "{:?}",
        first.body
    );
    let (ts2, sig2) = signed(&complete, now + 1);
    let retry = post(&client, &url, &complete, ts2, sig2).await?;
    ensure!(retry.status == 202, "{:?}", retry.body);
    ensure!(
        retry.body["event_hash"] == first.body["event_hash"],
        "same event, same hash"
    );
    let captions = event("captions_available", "sess-0001")?;
    let (ts3, sig3) = signed(&captions, now);
    ensure!(post(&client, &url, &captions, ts3, sig3).await?.status == 202);

    // Every rejection class: its own status and code.
    let replayed = post(&client, &url, &complete, ts, sig).await?;
    let other = event("recording_started", "sess-0002")?;
    let bad_sig = post(
        &client,
        &url,
        &other,
        Some(now.to_string()),
        Some(keys.sign(now, &complete)),
    )
    .await?;
    let no_sig = post(&client, &url, &other, Some(now.to_string()), None).await?;
    let no_ts = post(&client, &url, &other, None, Some(keys.sign(now, &other))).await?;
    let (old_ts, old_sig) = signed(&other, now - 600);
    let stale = post(&client, &url, &other, old_ts, old_sig).await?;
    let huge = vec![b' '; 70 * 1024];
    let (big_ts, big_sig) = signed(&huge, now);
    let oversized = post(&client, &url, &huge, big_ts, big_sig).await?;
    let nonsense =
        br#"{"event":"exploded","session_id":"sess-0003","occurred_at":"2026-10-27T14:20:00Z"}"#;
    let (n_ts, n_sig) = signed(nonsense, now);
    let invalid = post(&client, &url, nonsense, n_ts, n_sig).await?;
    let cases = [
        ("replayed", &replayed, 409),
        ("bad_signature", &bad_sig, 401),
        ("missing_signature", &no_sig, 401),
        ("missing_timestamp", &no_ts, 400),
        ("stale_timestamp", &stale, 401),
        ("body_too_large", &oversized, 413),
        ("invalid_body", &invalid, 422),
    ];
    for (code, sent, status) in cases {
        ensure!(
            sent.status == status && sent.body["error"] == code,
            "{code}: expected {status}, got {} {:?}",
            sent.status,
            sent.body
        );
    }

    // Only the two accepted events were stored and queued, in the session's group.
    let inbox = h
        .stack
        .table_name("RecordingsInboxTable")
        .context("no RecordingsInboxTable")?;
    let stored = scan_table(&h.ddb, inbox).await?;
    ensure!(stored.len() == 2, "{} inbox records", stored.len());
    let queue = h.queue("RecordingsQueue")?;
    let queued = take_queued(&h.sqs, queue).await?;
    let names: Vec<_> = queued
        .iter()
        .map(|q| q.message.event_name.as_str())
        .collect();
    ensure!(
        names == ["recording_complete", "captions_available"],
        "{names:?}"
    );
    ensure!(
        queued.iter().all(|q| q.group_id == "recording:sess-0001"),
        "one group per session"
    );
    h.stop().await;
    Ok(())
}
