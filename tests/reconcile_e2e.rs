//! Reconciliation end to end on the local stack: a simulated Canvas serves the REST/GraphQL
//! API (OAuth2, throttling, pagination) for the same term its live events describe. Part of
//! the live events are lost on the way; the reconciler (scheduled pass → one queue message per
//! course → fetch, diff, feed drift into `changes.fifo`) heals the catalog, and subscribers
//! receive each missing change exactly once. Then the Canvas faults: access tokens expiring
//! mid-sync, 5xx bursts, throttling by another consumer of the same token, a revoked grant.

use anyhow::{Context, Result, ensure};
use chrono::Duration as Delta;
use coursewire_live_events::catalog::{DynamoCatalog, EntityRecord};
use coursewire_live_events::live_events::{self, DeliveryHints};
use coursewire_local::alarms::State;
use coursewire_local::clock::SimulatedTime;
use coursewire_local::provision::Overrides;
use coursewire_local::stack::{CANVAS_SECRET, StackOptions};
use coursewire_local::subscriber::Subscriber;
use coursewire_simulators::canvas_api::{
    self, ApiSimConfig, CanvasApiSim, CostModel, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    RECONCILED_TYPES, ThrottleStatus, World, reconciled_mismatches,
};
use coursewire_simulators::canvas_live_events::{Emission, Scenario, ScenarioConfig, Truth};
use coursewire_tests::on_call::{OnCall, messages_of, states_of};
use coursewire_tests::schemas::validate_change_event;
use coursewire_tests::{Harness, wait_until};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const SUBSCRIBER_QUEUE: &str = "ExampleSubscriberQueue";
const IDLE: Duration = Duration::from_secs(60);

/// The credentials an operator puts into the secret: the developer key and the grant.
fn credentials(sim: &CanvasApiSim) -> Result<Value> {
    let grant = sim.issue_grant(DEFAULT_CLIENT_ID)?;
    Ok(json!({
        "base_url": sim.base_url(),
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "refresh_token": grant.refresh_token,
    }))
}

/// The scenario's `root_account_id` (global), so local ids are read on the right shard.
fn root_account(scenario: &Scenario) -> String {
    scenario.events[0].canvas["metadata"]["root_account_id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Starts the simulator and a local stack whose functions call it.
async fn start(
    test: &str,
    config: ApiSimConfig,
    scenario: &Scenario,
) -> Result<(CanvasApiSim, Harness)> {
    start_with(test, config, scenario, StackOptions::default()).await
}

/// [`start`] on top of `options` (their overrides win).
async fn start_with(
    test: &str,
    config: ApiSimConfig,
    scenario: &Scenario,
    options: StackOptions,
) -> Result<(CanvasApiSim, Harness)> {
    let outflow = (config.outflow * config.time_scale).round().max(1.0);
    let sim = CanvasApiSim::start(config, World::from_events(&scenario.events)).await?;
    let mut overrides = Overrides::default()
        .parameter("CanvasAccountId", account_id(&sim).as_str())
        .parameter("CanvasRootAccountId", root_account(scenario).as_str())
        // The simulator leaks faster than Canvas so tests run in seconds.
        .parameter("CanvasOutflowPerSecond", outflow.to_string().as_str());
    overrides
        .parameters
        .extend(options.overrides.parameters.clone());
    overrides.function_environment = options.overrides.function_environment.clone();
    let h = Harness::start(
        test,
        StackOptions {
            overrides,
            ..options
        }
        .secret(CANVAS_SECRET, credentials(&sim)?),
    )
    .await?;
    Ok((sim, h))
}

/// Reads the Canvas credentials secret as the functions see it.
#[derive(Clone)]
struct SecretReader {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretReader {
    fn new(h: &Harness) -> Result<Self> {
        Ok(Self {
            client: aws_sdk_secretsmanager::Client::new(&h.stack.aws),
            secret_id: h
                .stack
                .deployed
                .ref_value(CANVAS_SECRET)
                .context("no Canvas credentials secret")?
                .to_string(),
        })
    }

    async fn read(&self) -> Result<Value> {
        let text = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await?
            .secret_string
            .unwrap_or_default();
        Ok(serde_json::from_str(&text)?)
    }
}

fn account_id(sim: &CanvasApiSim) -> String {
    sim.world_snapshot().account_id.to_string()
}

/// Requests to Canvas of any kind (API and token endpoint).
fn canvas_calls(sim: &CanvasApiSim) -> u64 {
    let stats = sim.stats();
    stats.api_requests + stats.token_requests.values().sum::<u64>()
}

/// Emissions minus every copy of the events chosen to be lost (about one in four of the
/// reconciled types; assignments and submissions always arrive).
fn lose_some(scenario: &Scenario) -> (Vec<Emission>, BTreeSet<usize>) {
    let lost: BTreeSet<usize> = scenario
        .events
        .iter()
        .enumerate()
        .filter(|(i, e)| RECONCILED_TYPES.contains(&e.entity.0.as_str()) && (i * 7919) % 4 == 1)
        .map(|(i, _)| i)
        .collect();
    let kept = scenario
        .emissions
        .iter()
        .filter(|e| !lost.contains(&e.event_index))
        .cloned()
        .collect();
    (kept, lost)
}

fn mismatches(truth: &Truth, sim: &CanvasApiSim, rows: &[EntityRecord]) -> Vec<String> {
    reconciled_mismatches(truth, &sim.world_snapshot(), rows)
}

/// Users with a live enrollment somewhere: those the API's rosters show.
fn rostered_users(sim: &CanvasApiSim) -> BTreeSet<String> {
    canvas_api::rostered_users(&sim.world_snapshot())
}

async fn catalog_rows(h: &Harness) -> Result<Vec<EntityRecord>> {
    let table = h
        .stack
        .table_name("CatalogTable")
        .context("no CatalogTable")?;
    Ok(DynamoCatalog::new(h.ddb.clone(), table).scan_all().await?)
}

/// Runs a scheduled pass (as EventBridge would) and waits until every course was reconciled
/// and every drift change was applied.
async fn reconcile_all(h: &Harness) -> Result<Value> {
    let planned = h
        .stack
        .invoke("ReconcilerFunction", json!({"all_courses": true}))
        .await?;
    let courses = planned["courses"].as_f64().unwrap_or(0.0);
    let before = h.metric("CoursesReconciled", &[]);
    wait_until(IDLE, "every course reconciled", || async {
        Ok(h.metric("CoursesReconciled", &[]) - before >= courses
            && h.stack.queue_depth("ReconcileQueue").await?.total() == 0)
    })
    .await
    .with_context(|| {
        format!(
            "{} of {courses} courses reconciled, {} failed passes; Canvas requests by outcome {:?}",
            h.metric("CoursesReconciled", &[]) - before,
            h.metric("ReconcileFailures", &[]),
            h.stack.metrics.sum_by("CanvasRequests", "Outcome"),
        )
    })?;
    ensure!(
        h.stack.drain("ChangesQueue", IDLE).await?,
        "changes.fifo not drained"
    );
    Ok(planned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_heals_lost_live_events_and_subscribers_get_each_change_once() -> Result<()>
{
    let scenario = Scenario::build(ScenarioConfig {
        seed: 404,
        students_per_course: 30,
        ..ScenarioConfig::default()
    });
    let (sim, h) = start(
        "reconcile",
        ApiSimConfig {
            time_scale: 20.0,
            ..ApiSimConfig::default()
        },
        &scenario,
    )
    .await?;
    let subscriber = Subscriber::start(&h.stack, SUBSCRIBER_QUEUE, 2)?;

    // Live events, a quarter of them lost.
    let (kept, lost) = lose_some(&scenario);
    ensure!(
        lost.len() > 20,
        "the scenario lost only {} events",
        lost.len()
    );
    let reports = h.emitter.send_all(&kept, 8, |_| {}).await;
    ensure!(
        reports.iter().all(|r| r.result.is_ok()),
        "deliveries failed"
    );
    let delivered: BTreeSet<usize> = kept.iter().map(|e| e.event_index).collect();
    let live = delivered.len() as u64;
    ensure!(
        subscriber.wait_for(live, IDLE).await == live,
        "live events did not all reach the subscriber"
    );
    let truth = Truth::from_events(&scenario.events);
    let before = mismatches(&truth, &sim, &catalog_rows(&h).await?);
    ensure!(
        !before.is_empty(),
        "losing events left no gap: nothing to heal"
    );

    // The scheduled pass: one message per course, each course fetched, diffed and healed.
    let planned = reconcile_all(&h).await?;
    ensure!(
        planned["courses"] == json!(scenario.config.courses),
        "planned {planned}"
    );
    // Drift events new to the inbox (a user in both courses drifts in both passes, as one
    // identical event).
    let drift = h.metric("ReconcileChangesSubmitted", &[]);
    ensure!(drift > 0.0, "no drift found");
    let arrived = subscriber.wait_for(live + drift as u64, IDLE).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = subscriber.finish().await;
    ensure!(
        arrived == live + drift as u64,
        "{arrived} change events arrived, expected {live} live + {drift} reconciliation"
    );

    let after = mismatches(&truth, &sim, &catalog_rows(&h).await?);
    ensure!(
        after.is_empty(),
        "{} of {} gaps left after reconciliation: {:?}",
        after.len(),
        before.len(),
        &after[..after.len().min(10)]
    );

    // Each reconciliation change once: one id per entity, and every entity that was missing
    // altogether got a `created` change.
    let mut reconciled: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for copy in &report.copies {
        if copy.event["detail"]["canvas"]["delivery"] == "reconciliation" {
            validate_change_event(&copy.event)?;
            let key = copy.event["detail"]["entity"]["key"]
                .as_str()
                .unwrap_or_default();
            let id = copy.event_id().unwrap_or_default();
            reconciled
                .entry(key.to_string())
                .or_default()
                .insert(id.to_string());
        }
    }
    ensure!(
        reconciled.len() as f64 == drift,
        "{} entities got reconciliation changes, {drift} drifted",
        reconciled.len()
    );
    ensure!(
        reconciled.values().all(|ids| ids.len() == 1),
        "an entity got two reconciliation changes"
    );
    let live_keys: BTreeSet<String> = delivered
        .iter()
        .filter_map(|i| {
            let e = &scenario.events[*i];
            live_events::from_value(e.canvas.clone(), DeliveryHints::default()).ok()
        })
        .map(|e| e.entity_key.as_str().to_string())
        .collect();
    let rostered = rostered_users(&sim);
    let never_heard: BTreeSet<String> = lost
        .iter()
        .map(|i| &scenario.events[*i].entity)
        .filter(|(kind, id)| {
            let key = format!("{kind}:{id}");
            !live_keys.contains(&key)
                && truth.get(kind, id).is_some_and(|s| !s.deleted)
                && (kind != "user" || rostered.contains(id))
        })
        .map(|(kind, id)| format!("{kind}:{id}"))
        .collect();
    let missing: Vec<&String> = never_heard
        .iter()
        .filter(|k| !reconciled.contains_key(*k))
        .collect();
    ensure!(missing.is_empty(), "never healed: {missing:?}");

    // A second pass finds nothing: subscribers get no more.
    let drift_before = h.metric("ReconcileDrift", &[]);
    reconcile_all(&h).await?;
    ensure!(
        h.metric("ReconcileDrift", &[]) == drift_before,
        "the second pass found drift again"
    );

    // Reconciling went through the shared budget; Canvas never throttled it.
    let stats = sim.stats();
    ensure!(stats.throttled == 0, "Canvas throttled: {stats:?}");
    h.stop().await;
    sim.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiring_tokens_5xx_bursts_and_throttling_end_in_a_complete_sync() -> Result<()> {
    let scenario = Scenario::build(ScenarioConfig {
        seed: 405,
        courses: 3,
        students_per_course: 40,
        ..ScenarioConfig::default()
    });
    let (sim, h) = start(
        "reconcile-faults",
        ApiSimConfig {
            // Tokens outlive only a part of the sync; throttling answers 429.
            token_lifetime: Duration::from_secs(2),
            throttle_status: ThrottleStatus::TooMany429,
            time_scale: 4.0,
            ..ApiSimConfig::default()
        },
        &scenario,
    )
    .await?;
    let sim = Arc::new(sim);

    // Slow answers, so tokens expire in the middle of a course's sync.
    sim.set_latency(Duration::from_millis(150));
    // Another integration on the same Canvas token (it reads the shared secret), ignoring
    // coursewire's budget: bursts of 16 requests at once overflow the bucket.
    let secret = SecretReader::new(&h)?;
    let stop = Arc::new(AtomicBool::new(false));
    let rogue = {
        let (sim, stop) = (sim.clone(), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let url = format!(
                "{}/api/v1/accounts/{}/courses",
                sim.base_url(),
                account_id(&sim)
            );
            while !stop.load(Ordering::Relaxed) {
                let token = secret
                    .read()
                    .await
                    .ok()
                    .and_then(|v| v["access_token"].as_str().map(str::to_string));
                if let Some(token) = token {
                    let burst = (0..16).map(|_| http.get(&url).bearer_auth(&token).send());
                    futures::future::join_all(burst).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    sim.inject_errors(6, 503);

    reconcile_all(&h).await?;
    stop.store(true, Ordering::Relaxed);
    rogue.await?;

    let truth = Truth::from_events(&scenario.events);
    let gaps = mismatches(&truth, &sim, &catalog_rows(&h).await?);
    ensure!(
        gaps.is_empty(),
        "sync incomplete: {:?}",
        &gaps[..gaps.len().min(10)]
    );
    ensure!(
        h.metric("ReconcileFailures", &[]) == 0.0,
        "a course pass failed"
    );
    let stats = sim.stats();
    ensure!(stats.injected_errors == 6, "{stats:?}");
    ensure!(
        stats.throttled > 0,
        "the bucket never overflowed: {stats:?}"
    );
    ensure!(
        stats.unauthorized > 0,
        "no token expired mid-sync: {stats:?}"
    );
    ensure!(
        stats
            .token_requests
            .get("refresh_token")
            .copied()
            .unwrap_or(0)
            > 0,
        "the client never refreshed: {stats:?}"
    );
    h.stop().await;
    Ok(())
}

/// Invokes token-keeper and returns the `CanvasTokenHealthy` it reported.
async fn token_health(h: &Harness) -> Result<Option<f64>> {
    let before = h.stack.metrics.values("CanvasTokenHealthy").len();
    let _ = h.stack.invoke("TokenKeeperFunction", json!({})).await;
    let values = h.stack.metrics.values("CanvasTokenHealthy");
    Ok(values.get(before).copied())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_hog_and_a_revoked_grant_page_on_call_and_clear() -> Result<()> {
    let scenario = Scenario::build(ScenarioConfig {
        seed: 406,
        courses: 1,
        ..ScenarioConfig::default()
    });
    // The deployment budgets 1 unit/s of the token's quota (it shares the token with other
    // tools), but someone raised the reconciler's CANVAS_OUTFLOW_PER_SEC by hand to Canvas's
    // whole outflow. Canvas prices this course's requests at about 20 units each. Metrics
    // are stamped on a clock the test moves on, a minute at a time.
    let metrics_clock = SimulatedTime::from_now();
    let (sim, h) = start_with(
        "reconcile-revoked",
        ApiSimConfig {
            time_scale: 20.0,
            cost: CostModel {
                base: 20.0,
                ..CostModel::default()
            },
            ..ApiSimConfig::default()
        },
        &scenario,
        StackOptions {
            overrides: Overrides::default()
                .parameter("CanvasOutflowPerSecond", "1")
                .function_environment("ReconcilerFunction", "CANVAS_OUTFLOW_PER_SEC", "200"),
            metrics_clock: Arc::new(metrics_clock.clone()),
            ..StackOptions::default()
        }
        .pause("TokenKeeperFunction")
        .pause("ReconcilerFunction"),
    )
    .await?;
    let mut on_call = OnCall::subscribe(&h).await?;
    let course = scenario
        .events
        .iter()
        .find(|e| e.entity.0 == "course")
        .map(|e| e.entity.1.clone())
        .context("no course in the scenario")?;
    let reconcile = || {
        h.stack
            .invoke("ReconcilerFunction", json!({"course_id": course}))
    };
    let spent = || h.metric("CanvasRequestCost", &[("Function", "reconciler")]);

    ensure!(
        token_health(&h).await? == Some(1.0),
        "token-keeper at start"
    );
    let t0 = h.stack.metrics_now();
    on_call
        .expect(
            &h,
            t0,
            &[
                ("canvas-quota-burn", State::Ok),
                ("canvas-token-unhealthy", State::Ok),
            ],
        )
        .await?;

    // Five minutes, each spending more than the 60 units a minute the budget allows (in its
    // first seconds). Each is evaluated half a minute in, so its period holds that minute's
    // spending only.
    let minute = |k: i64| t0 + Delta::seconds(60 * k + 10);
    let move_to = |t: chrono::DateTime<chrono::Utc>| -> Result<chrono::DateTime<chrono::Utc>> {
        let now = h.stack.metrics_now();
        let by = (t - now)
            .to_std()
            .with_context(|| format!("the metrics clock is at {now}, past {t}"))?;
        metrics_clock.advance(by);
        Ok(t)
    };
    for k in 0..5 {
        move_to(minute(k))?;
        let before = spent();
        for _ in 0..10 {
            reconcile().await?;
            if spent() - before > 90.0 {
                break;
            }
        }
        ensure!(
            spent() - before > 60.0,
            "minute {k}: only {}",
            spent() - before
        );
        let burn = on_call
            .evaluate(&h, move_to(minute(k) + Delta::seconds(30))?)
            .await?;
        let expected: &[State] = if k == 4 { &[State::Alarm] } else { &[] };
        ensure!(
            states_of(&burn, "canvas-quota-burn") == expected,
            "minute {k}: {burn:?}"
        );
    }
    // The hog stops: the next minute is under budget.
    on_call
        .expect(
            &h,
            move_to(minute(5) + Delta::seconds(30))?,
            &[("canvas-quota-burn", State::Ok)],
        )
        .await?;

    // The grant is revoked in Canvas.
    let secret = SecretReader::new(&h)?;
    let refresh_token = secret.read().await?["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    sim.revoke_grant(&refresh_token);
    let err = reconcile()
        .await
        .expect_err("a revoked grant must fail the pass");
    ensure!(err.to_string().contains("revoked"), "{err}");
    ensure!(
        h.metric("CanvasGrantRevoked", &[]) >= 1.0,
        "no alert metric"
    );

    // Every function now knows: the secret says so, and nothing calls Canvas any more.
    ensure!(
        secret.read().await?["revoked_at"].is_string(),
        "the secret does not record the revocation"
    );
    let calls = canvas_calls(&sim);
    let err = reconcile().await.expect_err("still revoked");
    ensure!(err.to_string().contains("revoked"), "{err}");
    let health = token_health(&h).await?;
    ensure!(
        canvas_calls(&sim) == calls,
        "Canvas was called after the revocation"
    );
    ensure!(
        health == Some(0.0),
        "token-keeper reported a revoked grant as {health:?}"
    );
    on_call
        .expect_now(&h, &[("canvas-token-unhealthy", State::Alarm)])
        .await?;

    // Re-authorised, as the runbook says: a new grant in the secret. Ten minutes on,
    // token-keeper's report is healthy again and the alarm clears.
    h.stack
        .put_secret(CANVAS_SECRET, &credentials(&sim)?)
        .await?;
    metrics_clock.advance(Duration::from_secs(601));
    ensure!(token_health(&h).await? == Some(1.0), "after re-authorising");
    on_call
        .expect_now(&h, &[("canvas-token-unhealthy", State::Ok)])
        .await?;

    let messages = on_call.messages(&h).await?;
    for alarm in ["canvas-quota-burn", "canvas-token-unhealthy"] {
        ensure!(
            messages_of(&messages, alarm) == ["OK", "ALARM", "OK"],
            "{alarm} on the topic: {:?}",
            messages_of(&messages, alarm)
        );
    }
    h.stop().await;
    sim.stop().await;
    Ok(())
}
