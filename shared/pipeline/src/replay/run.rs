//! The replay run: read the window hour by hour, decide per record, send in entity order.

use super::{
    FailedSend, InboxWindow, Incomplete, MAX_LISTED, ReplayError, ReplayPlan, ReplayProgress,
    ReplayReport, ReplayRequest, WindowQuery,
};
use crate::handoff::{EventQueue, QueuedEvent, Replay, ReplayMode};
use chrono::{SecondsFormat, Utc};
use coursewire_runtime::telemetry::{Metrics, MetricsSink, Unit};
use futures::StreamExt;
use futures::future::join_all;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// At most this many send failures are logged one by one (all are counted and reported).
const MAX_LOGGED_FAILURES: u64 = 50;

const HELD_BACK: &str = "held back: an earlier event of the same entity was not sent";

/// How hard a replay drives DynamoDB and SQS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySettings {
    /// Hours read ahead of the one being sent.
    pub prefetch_hours: usize,
    /// Concurrent senders. Each owns a fixed share of the entity keys, so one entity's
    /// events always leave one after the other, in time order.
    pub send_lanes: usize,
    /// Messages per `EventQueue::enqueue` call: one SendMessageBatch, so a failure holds
    /// back the entity's later events before they are sent.
    pub chunk_size: usize,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        Self {
            prefetch_hours: 2,
            send_lanes: 8,
            chunk_size: 10,
        }
    }
}

/// Re-sends inbox events to `changes.fifo`. Build once, run many times.
pub struct Replayer {
    window: Arc<dyn InboxWindow>,
    queue: Arc<dyn EventQueue>,
    settings: ReplaySettings,
    metrics: Arc<dyn MetricsSink>,
    function: String,
}

/// What one sender did during one hour.
#[derive(Default)]
struct LaneOutcome {
    failures: Vec<FailedSend>,
    /// Entities with a failure: their later events must wait for another run.
    failed_entities: HashSet<String>,
}

/// Counters the concurrent senders share for progress reporting.
#[derive(Default)]
struct Live {
    enqueued: AtomicU64,
    failed: AtomicU64,
}

/// A direct invocation with a [`ReplayRequest`] as JSON, answered with the report. A refused
/// request is an invocation error naming the problem; send failures are in the report
/// (`failed`, `incomplete`) so the caller sees what did get through.
#[async_trait::async_trait]
impl coursewire_runtime::function::InvokeHandler for Replayer {
    async fn invoke(
        &self,
        event: serde_json::Value,
    ) -> Result<serde_json::Value, coursewire_runtime::function::HandlerError> {
        let request: ReplayRequest = serde_json::from_value(event)?;
        let report = self.run(request, |_| {}).await?;
        Ok(serde_json::to_value(report)?)
    }
}

impl Replayer {
    pub fn new(
        window: Arc<dyn InboxWindow>,
        queue: Arc<dyn EventQueue>,
        settings: ReplaySettings,
        metrics: Arc<dyn MetricsSink>,
        function: impl Into<String>,
    ) -> Self {
        Self {
            window,
            queue,
            settings,
            metrics,
            function: function.into(),
        }
    }

    /// Validates the request and runs it. `Err` only for a refused request (nothing read or
    /// sent); failures while running are in the report (`failed`, `incomplete`).
    pub async fn run(
        &self,
        request: ReplayRequest,
        progress: impl Fn(ReplayProgress) + Send + Sync,
    ) -> Result<ReplayReport, ReplayError> {
        let plan = request.plan(Utc::now()).inspect_err(|e| {
            tracing::warn!(correlation_id = request.request_id.as_deref().unwrap_or("-"), error = %e, "replay request refused");
        })?;
        Ok(self.execute(&plan, &progress).await)
    }

    /// Runs a validated plan.
    pub async fn execute(
        &self,
        plan: &ReplayPlan,
        progress: &(dyn Fn(ReplayProgress) + Send + Sync),
    ) -> ReplayReport {
        let started = Instant::now();
        let id = plan.request_id.as_str();
        let queries: Vec<WindowQuery> = plan
            .hour_slices()
            .into_iter()
            .map(|(from, to)| WindowQuery {
                from,
                to,
                event_names: plan.event_names.clone(),
                entity_keys: plan.entity_keys.clone(),
            })
            .collect();
        let mut report = empty_report(plan, queries.len() as u64);
        tracing::info!(
            correlation_id = id,
            mode = plan.mode.as_str(),
            dry_run = plan.dry_run,
            from = %report.from,
            to = %report.to,
            event_names = plan.event_names.len(),
            entity_keys = plan.entity_keys.len(),
            hours = queries.len(),
            "replay started"
        );
        let replay = Replay {
            mode: plan.mode,
            request_id: plan.request_id.clone(),
        };
        let live = Live::default();
        let mut failed_entities: HashSet<String> = HashSet::new();

        // Hours are read `prefetch_hours` ahead but handled strictly in order, so every
        // entity's events are sent in time order across the whole window.
        // Indexes, not `&WindowQuery` closure arguments: those make the future not `Send`
        // (rustc cannot prove the closure general over the reference's lifetime).
        let mut reads = futures::stream::iter(0..queries.len())
            .map(|i| self.window.select(&queries[i]))
            .buffered(self.settings.prefetch_hours.max(1));
        let mut hour = 0;
        while let Some(read) = reads.next().await {
            let query = &queries[hour];
            hour += 1;
            let selection = match read {
                Ok(selection) => selection,
                Err(e) => {
                    let resume_from = query.from.to_rfc3339_opts(SecondsFormat::AutoSi, true);
                    tracing::error!(correlation_id = id, error = %e, %resume_from, "inbox read failed; replay stopped");
                    report.incomplete = Some(Incomplete {
                        reason: format!("reading the inbox: {e}"),
                        resume_from,
                    });
                    break;
                }
            };
            report.hours_done += 1;
            report.unreadable_count += selection.unreadable.len() as u64;
            for unreadable in selection.unreadable {
                tracing::warn!(correlation_id = id, event_hash = %unreadable.event_hash, reason = %unreadable.reason, "inbox record cannot be replayed");
                if report.unreadable.len() < MAX_LISTED {
                    report.unreadable.push(unreadable);
                }
            }

            let mut records: Vec<_> = selection
                .records
                .into_iter()
                .filter(|r| query.matches(r))
                .collect();
            records.sort_by(|a, b| {
                (a.event_time.as_str(), a.event_hash.as_str())
                    .cmp(&(b.event_time.as_str(), b.event_hash.as_str()))
            });
            records.dedup_by(|a, b| a.event_hash == b.event_hash);

            let mut messages = Vec::new();
            for record in &records {
                report.selected += 1;
                *report.by_status.entry(record.status.clone()).or_default() += 1;
                let names = report
                    .by_event_name
                    .entry(record.event_name.clone())
                    .or_default();
                names.selected += 1;
                if plan.mode == ReplayMode::Heal && record.is_published() {
                    report.already_published += 1;
                    continue;
                }
                names.to_send += 1;
                report.to_send += 1;
                if !plan.dry_run {
                    messages.push(record.to_message(replay.clone()));
                }
            }

            let base = ReplayProgress {
                hours_done: report.hours_done,
                hours_total: report.hours_total,
                selected: report.selected,
                to_send: report.to_send,
                ..ReplayProgress::default()
            };
            if !messages.is_empty() {
                for outcome in self
                    .send_hour(messages, &failed_entities, id, &live, base, progress)
                    .await
                {
                    failed_entities.extend(outcome.failed_entities);
                    let room = MAX_LISTED.saturating_sub(report.failures.len());
                    report
                        .failures
                        .extend(outcome.failures.into_iter().take(room));
                }
            }
            report.enqueued = live.enqueued.load(Ordering::Relaxed);
            report.failed = live.failed.load(Ordering::Relaxed);
            progress(ReplayProgress {
                enqueued: report.enqueued,
                failed: report.failed,
                ..base
            });
        }

        report.duration_ms = started.elapsed().as_millis() as u64;
        self.observe(plan, &report);
        report
    }

    /// Sends one hour's messages (already in time order) over `send_lanes` concurrent lanes,
    /// each owning a fixed share of the entity keys.
    async fn send_hour(
        &self,
        messages: Vec<QueuedEvent>,
        failed_entities: &HashSet<String>,
        id: &str,
        live: &Live,
        base: ReplayProgress,
        progress: &(dyn Fn(ReplayProgress) + Send + Sync),
    ) -> Vec<LaneOutcome> {
        let lanes = self.settings.send_lanes.max(1);
        let mut by_lane: Vec<Vec<QueuedEvent>> = vec![Vec::new(); lanes];
        for message in messages {
            by_lane[lane_of(&message.entity_key, lanes)].push(message);
        }
        join_all(
            by_lane
                .into_iter()
                .filter(|lane| !lane.is_empty())
                .map(|lane| self.send_lane(lane, failed_entities, id, live, base, progress)),
        )
        .await
    }

    async fn send_lane(
        &self,
        messages: Vec<QueuedEvent>,
        failed_before: &HashSet<String>,
        id: &str,
        live: &Live,
        base: ReplayProgress,
        progress: &(dyn Fn(ReplayProgress) + Send + Sync),
    ) -> LaneOutcome {
        let mut outcome = LaneOutcome::default();
        let fail = |outcome: &mut LaneOutcome, message: &QueuedEvent, error: String| {
            let n = live.failed.fetch_add(1, Ordering::Relaxed);
            if n < MAX_LOGGED_FAILURES {
                tracing::warn!(correlation_id = id, event_hash = %message.event_hash, event_name = %message.event_name, error = %error, "replay send failed");
            }
            outcome.failed_entities.insert(message.entity_key.clone());
            if outcome.failures.len() < MAX_LISTED {
                outcome.failures.push(FailedSend {
                    event_hash: message.event_hash.clone(),
                    event_name: message.event_name.clone(),
                    error,
                });
            }
        };
        for chunk in messages.chunks(self.settings.chunk_size.max(1)) {
            let mut ready = Vec::with_capacity(chunk.len());
            for message in chunk {
                if failed_before.contains(&message.entity_key)
                    || outcome.failed_entities.contains(&message.entity_key)
                {
                    fail(&mut outcome, message, HELD_BACK.to_string());
                } else {
                    ready.push(message.clone());
                }
            }
            if !ready.is_empty() {
                let results = self.queue.enqueue(&ready).await;
                for (i, message) in ready.iter().enumerate() {
                    match results.get(i) {
                        Some(Ok(())) => {
                            live.enqueued.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Err(e)) => fail(&mut outcome, message, e.to_string()),
                        None => fail(&mut outcome, message, "no result from the queue".into()),
                    }
                }
            }
            progress(ReplayProgress {
                enqueued: live.enqueued.load(Ordering::Relaxed),
                failed: live.failed.load(Ordering::Relaxed),
                ..base
            });
        }
        outcome
    }

    fn observe(&self, plan: &ReplayPlan, report: &ReplayReport) {
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        if plan.dry_run {
            metrics.count("ReplayDryRuns", &[], 1);
        } else {
            let dims = [("Mode", plan.mode.as_str())];
            metrics.count("ReplaySelected", &dims, report.selected);
            metrics.count("ReplayEnqueued", &dims, report.enqueued);
            metrics.count("ReplayAlreadyPublished", &dims, report.already_published);
            metrics.count("ReplaySendFailures", &dims, report.failed);
            metrics.count("ReplayUnreadable", &dims, report.unreadable_count);
            metrics.count(
                "ReplayIncomplete",
                &dims,
                u64::from(report.incomplete.is_some()),
            );
            metrics.record(
                "ReplayDuration",
                &dims,
                Unit::Milliseconds,
                report.duration_ms as f64,
            );
        }
        metrics.flush();
        tracing::info!(
            correlation_id = %report.request_id,
            mode = plan.mode.as_str(),
            dry_run = plan.dry_run,
            hours = report.hours_done,
            selected = report.selected,
            already_published = report.already_published,
            to_send = report.to_send,
            enqueued = report.enqueued,
            failed = report.failed,
            unreadable = report.unreadable_count,
            incomplete = report.incomplete.is_some(),
            duration_ms = report.duration_ms,
            "replay finished"
        );
    }
}

fn empty_report(plan: &ReplayPlan, hours_total: u64) -> ReplayReport {
    let time = |t: &chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    ReplayReport {
        request_id: plan.request_id.clone(),
        mode: plan.mode,
        dry_run: plan.dry_run,
        from: time(&plan.from),
        to: time(&plan.to),
        event_names: plan.event_names.iter().cloned().collect(),
        entity_keys: plan.entity_keys.iter().cloned().collect(),
        hours_total,
        hours_done: 0,
        selected: 0,
        by_status: Default::default(),
        by_event_name: Default::default(),
        already_published: 0,
        to_send: 0,
        enqueued: 0,
        failed: 0,
        failures: Vec::new(),
        unreadable_count: 0,
        unreadable: Vec::new(),
        incomplete: None,
        duration_ms: 0,
    }
}

/// FNV-1a: a stable spread of entity keys over lanes (the same key always gets one lane).
fn lane_of(entity_key: &str, lanes: usize) -> usize {
    let hash = entity_key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % lanes as u64) as usize
}
