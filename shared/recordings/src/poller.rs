//! `panopto-poller`: every minute, the lectures in the current window (starting soon,
//! running, or ended within the last hours), their sessions and recorders looked at in two
//! batched SOAP calls, and what changed turned into recording events.
//!
//! Cost per tick follows the lectures due, not the catalog: one index Query per UTC day of
//! the window, two Panopto calls (plus one REST read per completed session still waiting for
//! captions), and one write per lecture whose sighting changed.

use crate::event::{LectureRef, delivery};
use crate::observation::{Observation, Sighting, changes};
use chrono::{DateTime, TimeDelta, Utc};
use coursewire_audit::{Action, Actor, AuditRecord, AuditTrail, Outcome, Subject, Upstream};
use coursewire_panopto::{Panopto, PanoptoError, RecorderState, SessionState, SessionStatus};
use coursewire_pipeline::intake::Intake;
use coursewire_runtime::function::{HandlerError, InvokeHandler, ScheduleHandler};
use coursewire_runtime::service::ServiceError;
use coursewire_runtime::telemetry::{Metrics, MetricsSink, Unit};
use coursewire_teaching::{LectureRow, LectureStatus, TeachingStore};
use futures::{StreamExt, stream};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Which lectures a tick looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct PollWindow {
    /// Lectures starting within this are watched (their recorder should be ready).
    pub lead: TimeDelta,
    /// Lectures that ended this long ago are still watched (processing, captions).
    pub lookback: TimeDelta,
    /// The longest lecture: bounds how far ahead the end index is read.
    pub longest_lecture: TimeDelta,
}

impl Default for PollWindow {
    fn default() -> Self {
        Self {
            lead: TimeDelta::minutes(15),
            lookback: TimeDelta::hours(6),
            longest_lecture: TimeDelta::hours(4),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("the teaching catalog: {0}")]
    Catalog(#[from] ServiceError),
    #[error("Panopto: {0}")]
    Panopto(#[from] PanoptoError),
}

/// Lectures looked at concurrently within a tick.
const CONCURRENT_LECTURES: usize = 16;

/// What looking at one lecture did.
#[derive(Default)]
struct Sighted {
    events: usize,
    panopto_calls: usize,
    failed: bool,
}

/// What one tick did (the benchmark and tests read it).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    /// Lectures in the window with a booking.
    pub watched: usize,
    pub events: usize,
    /// Lectures whose events could not all be stored: retried next tick.
    pub failed: usize,
    pub panopto_calls: usize,
}

pub struct Poller {
    teaching: Arc<dyn TeachingStore>,
    panopto: Arc<dyn Panopto>,
    intake: Intake,
    trail: Arc<dyn AuditTrail>,
    window: PollWindow,
    metrics: Arc<dyn MetricsSink>,
    function: String,
}

impl Poller {
    pub fn new(
        teaching: Arc<dyn TeachingStore>,
        panopto: Arc<dyn Panopto>,
        intake: Intake,
        trail: Arc<dyn AuditTrail>,
        window: PollWindow,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Self {
        Self {
            teaching,
            panopto,
            intake,
            trail,
            window,
            metrics,
            function: function.to_string(),
        }
    }

    /// One poll at `now`.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport, PollError> {
        let rows = self
            .teaching
            .lectures_ending(
                now - self.window.lookback,
                now + self.window.lead + self.window.longest_lecture,
            )
            .await?;
        let watched: Vec<&LectureRow> = rows
            .iter()
            .filter(|r| r.lecture.status == LectureStatus::Scheduled)
            .filter(|r| r.lecture.start - self.window.lead <= now)
            .filter(|r| r.booking.is_some())
            .collect();
        let mut report = TickReport {
            watched: watched.len(),
            ..TickReport::default()
        };
        if watched.is_empty() {
            self.emit(&report);
            return Ok(report);
        }
        let session_ids: Vec<String> = watched
            .iter()
            .filter_map(|r| r.booking.as_ref().map(|b| b.session_id.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let recorder_ids: Vec<String> = watched
            .iter()
            .filter_map(|r| r.booking.as_ref().map(|b| b.recorder_id.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // Panopto may list a session twice: the first answer counts.
        let mut statuses: BTreeMap<String, SessionStatus> = BTreeMap::new();
        for status in self.panopto.session_states(&session_ids).await? {
            statuses.entry(status.id.clone()).or_insert(status);
        }
        let mut recorders: BTreeMap<String, RecorderState> = BTreeMap::new();
        for recorder in self.panopto.recorder_states(&recorder_ids).await? {
            recorders
                .entry(recorder.id.clone())
                .or_insert(recorder.state);
        }
        report.panopto_calls = 2;
        // Lectures are independent: look at several at once (a tick after an outage may find
        // every lecture due changed).
        let looks: Vec<_> = watched
            .iter()
            .map(|row| self.look(row, &statuses, &recorders, now))
            .collect();
        let outcomes: Vec<Sighted> = stream::iter(looks)
            .buffer_unordered(CONCURRENT_LECTURES)
            .collect()
            .await;
        for outcome in outcomes {
            report.events += outcome.events;
            report.panopto_calls += outcome.panopto_calls;
            report.failed += usize::from(outcome.failed);
        }
        self.emit(&report);
        Ok(report)
    }

    /// One lecture: its sighting compared with the last, the events stored and enqueued and
    /// the sighting audited, then the sighting saved (in that order, so a crash in between
    /// repeats the events and the audit record, which the inbox and the trail deduplicate by
    /// the sighting's version, and never loses them).
    async fn look(
        &self,
        row: &LectureRow,
        statuses: &BTreeMap<String, SessionStatus>,
        recorders: &BTreeMap<String, RecorderState>,
        now: DateTime<Utc>,
    ) -> Sighted {
        let mut outcome = Sighted::default();
        let Some(booking) = &row.booking else {
            return outcome;
        };
        let previous = Observation::from_value(row.observed.as_ref());
        let status = statuses.get(&booking.session_id);
        if status.is_none() {
            tracing::warn!(
                session = booking.session_id.as_str(),
                section = row.lecture.section_id.as_str(),
                "a booked session is not in Panopto (deleted by hand?)"
            );
        }
        let captions = previous.captions
            || match status {
                Some(s) if s.state == SessionState::Complete => {
                    outcome.panopto_calls += 1;
                    match self.panopto.session(&booking.session_id).await {
                        Ok(session) => session.is_some_and(|s| s.has_captions()),
                        Err(e) => {
                            tracing::warn!(error = %e, session = booking.session_id.as_str(), "could not read a session's captions; next tick retries");
                            false
                        }
                    }
                }
                _ => false,
            };
        let lecture = LectureRef {
            section_id: row.lecture.section_id.clone(),
            slot: row.lecture.slot(),
        };
        let sighting = Sighting {
            session_id: &booking.session_id,
            lecture: &lecture,
            scheduled_start: row.lecture.start,
            scheduled_end: row.lecture.end,
            recorder_id: Some(&booking.recorder_id),
            status,
            recorder: recorders.get(&booking.recorder_id).copied(),
            captions,
            now,
        };
        let (events, next) = changes(&previous, &sighting);
        let Some(next) = next else {
            return outcome;
        };
        outcome.events = events.len();
        let results = self.intake.accept(&events, &delivery::POLLER, now).await;
        if !results.iter().all(Result::is_ok) {
            outcome.failed = true;
            tracing::warn!(
                session = booking.session_id.as_str(),
                "recording events not all stored; next tick repeats them"
            );
            return outcome;
        }
        let record = self.audit_record(row, &booking.session_id, &next, &events, now);
        if let Err(e) = self.trail.append(&record).await {
            outcome.failed = true;
            tracing::warn!(error = %e, "could not audit a sighting; next tick repeats it");
            return outcome;
        }
        let saved = match serde_json::to_value(&next) {
            Ok(value) => self.teaching.set_observed(&row.lecture, &value).await,
            Err(e) => Err(ServiceError::Permanent(e.to_string())),
        };
        // If this write fails the next tick re-emits the same events (same identity).
        if let Err(e) = saved {
            outcome.failed = true;
            tracing::warn!(error = %e, "could not store a sighting; next tick repeats it");
        }
        outcome
    }

    /// The audit record of a sighting that changed: what the poll saw of the session and the
    /// recorder, keyed by the sighting's version.
    fn audit_record(
        &self,
        row: &LectureRow,
        session_id: &str,
        seen: &Observation,
        events: &[crate::RecordingEvent],
        now: DateTime<Utc>,
    ) -> AuditRecord {
        use coursewire_pipeline::inbox::SourceEvent as _;
        let recorder_id = row.booking.as_ref().map(|b| b.recorder_id.clone());
        let session_state = seen.session.as_ref().map(|s| s.state.as_str().to_string());
        let detail = format!(
            "poll saw {}, recorder {}{}",
            match &seen.session {
                Some(s) => format!("session {session_id} {}", s.state.as_str()),
                None => format!("no session {session_id} in Panopto"),
            },
            seen.recorder.map_or("not reported", RecorderState::as_str),
            if seen.captions {
                ", captions available"
            } else {
                ""
            }
        );
        AuditRecord::new(
            Subject::lecture(&row.lecture.section_id, row.lecture.slot()),
            &format!("sighting {}", seen.version),
            now,
            Actor::function(&self.function),
            Action::Polled {
                session_id: session_id.to_string(),
                session_state,
                recorder_id,
                recorder_state: seen.recorder.map(|r| r.as_str().to_string()),
                recorder_healthy: seen.recorder.map(RecorderState::is_healthy),
                captions: seen.captions,
            },
            Outcome::Observed,
            detail,
        )
        .upstream(Upstream {
            recording_event_hashes: events
                .iter()
                .map(|e| e.content_hash().to_string())
                .collect(),
            ..Upstream::session(session_id)
        })
    }

    /// A tick now, whichever way it was started, with the token's health recorded: an
    /// operator's poll after re-entering credentials is what clears the alarm.
    async fn tick_reporting_health(&self) -> Result<TickReport, PollError> {
        let result = self.tick(Utc::now()).await;
        self.token_health(&result);
        result
    }

    /// `PanoptoTokenHealthy`: 0 when Panopto refused coursewire's credentials (a revoked
    /// API client, a changed SOAP password), 1 when a tick's calls went through; nothing
    /// when the tick called nothing. The Panopto token alarm watches it.
    fn token_health(&self, result: &Result<TickReport, PollError>) {
        let healthy = match result {
            Ok(report) if report.panopto_calls > 0 => 1.0,
            Err(PollError::Panopto(PanoptoError::Unauthorized(_))) => 0.0,
            _ => return,
        };
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        metrics.record("PanoptoTokenHealthy", &[], Unit::None, healthy);
        metrics.flush();
    }

    fn emit(&self, report: &TickReport) {
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        metrics.record("LecturesWatched", &[], Unit::Count, report.watched as f64);
        metrics.count("RecordingEventsEmitted", &[], report.events as u64);
        metrics.count("PollFailures", &[], report.failed as u64);
        metrics.record(
            "PanoptoCallsPerTick",
            &[],
            Unit::Count,
            report.panopto_calls as f64,
        );
        metrics.flush();
    }
}

#[async_trait::async_trait]
impl ScheduleHandler for Poller {
    async fn handle(&self, _input: Option<serde_json::Value>) -> Result<(), HandlerError> {
        let report = self.tick_reporting_health().await?;
        tracing::info!(
            watched = report.watched,
            events = report.events,
            failed = report.failed,
            panopto_calls = report.panopto_calls,
            "poll done"
        );
        Ok(())
    }
}

/// `{}`: polls now (operators, tests); answers the tick's report.
#[async_trait::async_trait]
impl InvokeHandler for Poller {
    async fn invoke(&self, _event: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        Ok(serde_json::to_value(self.tick_reporting_health().await?)?)
    }
}
