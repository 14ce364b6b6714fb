//! `sla-monitor`'s tick: the lectures whose deadlines fell since the last tick, and the
//! lectures running now, checked against what is known of their recordings; an incident
//! opened (once per lecture and kind, paged once) for each one failing, and every open
//! incident of the monitor's kinds resolved when its problem went away.
//!
//! Cost per tick follows the lectures due, not the catalog: one index Query per UTC day per
//! deadline offset (the grace, each distinct caption SLA and twice it) plus one for the
//! lectures running now; Panopto is asked only about lectures about to page or open
//! incidents (check before paging: the poller's sighting may be a minute old).

use crate::deadlines::{
    Check, Deadlines, Evidence, Window, caption_sla, failing, resolution, rule_of,
};
use crate::page::{Context, describe};
use crate::watermark::Watermark;
use chrono::{DateTime, TimeDelta, Utc};
use coursewire_incidents::{IncidentError, IncidentKind, Incidents, NewIncident, Opened, Subject};
use coursewire_panopto::{Panopto, PanoptoError};
use coursewire_publishing::ports::WorkflowStore;
use coursewire_recordings::observation::{Observation, started};
use coursewire_runtime::clock::{Clock, SystemClock};
use coursewire_runtime::function::{HandlerError, InvokeHandler, ScheduleHandler};
use coursewire_runtime::service::ServiceError;
use coursewire_runtime::telemetry::{Metrics, MetricsSink, Unit};
use coursewire_teaching::sections::CanvasDirectory;
use coursewire_teaching::{LectureRow, PublishingRule, RuleBook, TeachingStore};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("the catalog: {0}")]
    Catalog(#[from] ServiceError),
    #[error("Panopto: {0}")]
    Panopto(#[from] PanoptoError),
    #[error("incidents: {0}")]
    Incidents(#[from] IncidentError),
}

/// An incident the tick found failing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Raised {
    pub kind: IncidentKind,
    pub subject: String,
    pub incident_id: String,
    /// Opened by this tick (not already open, or opened once before).
    pub new: bool,
    pub paged: bool,
    /// From the deadline to this tick, on the tick's clock (0 for a recorder down).
    pub late_seconds: f64,
    /// From class end to this tick.
    pub since_class_end_seconds: f64,
}

/// An incident the tick resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cleared {
    pub kind: IncidentKind,
    pub subject: String,
    pub incident_id: String,
    pub resolution: String,
}

/// What one tick did (the benchmark, the tests and operators read it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TickReport {
    /// The deadlines checked; `None` when an overlapping tick had already gone this far.
    pub window: Option<Window>,
    /// Lecture rows read (index and single reads).
    pub lectures_read: usize,
    /// DynamoDB requests for the catalog, workflows and incidents (not the incident writes).
    pub reads: usize,
    pub panopto_calls: usize,
    pub raised: Vec<Raised>,
    pub resolved: Vec<Cleared>,
    /// Unresolved incidents by kind after the tick (every kind, coursewire-wide).
    pub open: BTreeMap<String, usize>,
    /// Whether the watermark moved to this tick's end.
    pub advanced: bool,
}

/// One lecture to check.
struct Due {
    check: Check,
    row: LectureRow,
    rule: PublishingRule,
    deadline: DateTime<Utc>,
}

pub struct SlaMonitor {
    teaching: Arc<dyn TeachingStore>,
    workflows: Arc<dyn WorkflowStore>,
    directory: Arc<dyn CanvasDirectory>,
    panopto: Arc<dyn Panopto>,
    incidents: Incidents,
    watermark: Arc<dyn Watermark>,
    deadlines: Deadlines,
    metrics: Arc<dyn MetricsSink>,
    function: String,
    /// What "now" is for a scheduled or invoked tick.
    clock: Arc<dyn Clock>,
}

impl SlaMonitor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        teaching: Arc<dyn TeachingStore>,
        workflows: Arc<dyn WorkflowStore>,
        directory: Arc<dyn CanvasDirectory>,
        panopto: Arc<dyn Panopto>,
        incidents: Incidents,
        watermark: Arc<dyn Watermark>,
        deadlines: Deadlines,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Self {
        Self {
            teaching,
            workflows,
            directory,
            panopto,
            incidents,
            watermark,
            deadlines,
            metrics,
            function: function.to_string(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Ticks on `clock` instead of the system's (the local stack's simulated day).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// One tick at `now`. On error the watermark stays, so the next tick checks this
    /// window again (opening is idempotent: nothing pages twice).
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport, MonitorError> {
        let mut report = TickReport {
            window: Window::since(self.watermark.load().await?, now, &self.deadlines),
            reads: 2,
            ..TickReport::default()
        };
        if let Some(skipped) = report.window.and_then(|w| w.skipped_from) {
            tracing::warn!(%skipped, "the monitor was down longer than its catch-up; older deadlines were not checked");
        }
        let rules = RuleBook::new(self.teaching.rules().await?);
        let mut due = Vec::new();
        if let Some(window) = report.window {
            self.deadlines_in(window, &rules, &mut due, &mut report)
                .await?;
        }
        self.running(now, &rules, &mut due, &mut report).await?;

        let wanted: Vec<(Check, &LectureRow)> = due.iter().map(|d| (d.check, &d.row)).collect();
        let evidence = self.evidence(&wanted, &mut report).await?;
        for (item, evidence) in due.iter().zip(&evidence) {
            if failing(item.check, &item.row, evidence, &self.deadlines, now) {
                let raised = self.raise(item, evidence, now, &mut report).await?;
                report.raised.extend(raised);
            }
        }
        self.recheck(now, &mut report).await?;
        if let Some(window) = report.window {
            report.advanced = self.watermark.advance(window.to).await?;
        }
        self.emit(&report);
        Ok(report)
    }

    /// The lectures whose deadlines fell in `window`.
    async fn deadlines_in(
        &self,
        window: Window,
        rules: &RuleBook,
        due: &mut Vec<Due>,
        report: &mut TickReport,
    ) -> Result<(), MonitorError> {
        let grace = self.deadlines.grace;
        for row in self.ending(window.ends(grace), report).await? {
            if let Some(rule) = rule_of(&row, rules) {
                due.push(Due {
                    check: Check::MissingRecording,
                    deadline: row.lecture.end + grace,
                    rule: rule.clone(),
                    row,
                });
            }
        }
        // One read per distinct SLA, and one per twice that.
        let slas: BTreeSet<TimeDelta> = rules
            .iter()
            .filter(|rule| rule.enabled)
            .map(caption_sla)
            .collect();
        for sla in slas {
            for (escalated, offset) in [(false, sla), (true, sla * 2)] {
                for row in self.ending(window.ends(offset), report).await? {
                    if let Some(rule) = rule_of(&row, rules).filter(|r| caption_sla(r) == sla) {
                        due.push(Due {
                            check: Check::Captions { escalated },
                            deadline: row.lecture.end + offset,
                            rule: rule.clone(),
                            row,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The lectures due now (from the lead before their start to their end), for their
    /// recorders.
    async fn running(
        &self,
        now: DateTime<Utc>,
        rules: &RuleBook,
        due: &mut Vec<Due>,
        report: &mut TickReport,
    ) -> Result<(), MonitorError> {
        let window = (now, now + self.deadlines.longest_lecture);
        for row in self.ending(window, report).await? {
            if row.lecture.start - self.deadlines.recorder_lead > now {
                continue;
            }
            if let Some(rule) = rule_of(&row, rules) {
                due.push(Due {
                    check: Check::RecorderDown,
                    deadline: now,
                    rule: rule.clone(),
                    row,
                });
            }
        }
        Ok(())
    }

    async fn ending(
        &self,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        report: &mut TickReport,
    ) -> Result<Vec<LectureRow>, MonitorError> {
        let rows = self.teaching.lectures_ending(from, to).await?;
        // One Query per UTC day the range touches.
        let days = (to - TimeDelta::nanoseconds(1)).date_naive() - from.date_naive();
        report.reads += usize::try_from(days.num_days() + 1).unwrap_or(1);
        report.lectures_read += rows.len();
        Ok(rows)
    }

    /// What is known of each lecture's recording for its check: the poller's sighting, then,
    /// where that says something is wrong, the publish workflows and Panopto now.
    async fn evidence(
        &self,
        wanted: &[(Check, &LectureRow)],
        report: &mut TickReport,
    ) -> Result<Vec<Evidence>, MonitorError> {
        let mut out: Vec<Evidence> = wanted
            .iter()
            .map(|(_, row)| {
                let seen = Observation::from_value(row.observed.as_ref());
                Evidence {
                    session_id: row.booking.as_ref().map(|b| b.session_id.clone()),
                    recorded: seen.recording_started(),
                    captions: seen.captions,
                    recorder: seen.recorder,
                }
            })
            .collect();
        let needs_recording =
            |check: Check| matches!(check, Check::MissingRecording | Check::Captions { .. });
        // A session the poller did not book (pushed by the webhook, recorded by hand) is a
        // candidate once its workflow matched it to the lecture. A workflow alone is no proof
        // of a recording: sessions are filed and shared before class, while still Scheduled.
        let mut candidates: Vec<BTreeSet<String>> = out
            .iter()
            .map(|e| e.session_id.iter().cloned().collect())
            .collect();
        for (i, (check, row)) in wanted.iter().enumerate() {
            if !needs_recording(*check) || out[i].recorded {
                continue;
            }
            let date = row.lecture.local_date.format("%Y-%m-%d").to_string();
            report.reads += 1;
            let slot = row.lecture.slot();
            if let Some(workflow) = self
                .workflows
                .of_section(&row.lecture.section_id, Some(&date))
                .await?
                .into_iter()
                .find(|w| w.lecture.as_ref().is_some_and(|l| l.slot == slot))
            {
                candidates[i].insert(workflow.session_id);
            }
        }
        // The candidate sessions of lectures still showing nothing, asked about in one call.
        let sessions: BTreeSet<String> = wanted
            .iter()
            .zip(&out)
            .zip(&candidates)
            .filter(|(((check, _), e), _)| needs_recording(*check) && !e.recorded)
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect();
        if !sessions.is_empty() {
            report.panopto_calls += 1;
            let ids: Vec<String> = sessions.into_iter().collect();
            let recorded: BTreeSet<String> = self
                .panopto
                .session_states(&ids)
                .await?
                .into_iter()
                .filter(|s| started(s.state))
                .map(|s| s.id)
                .collect();
            for (e, ids) in out.iter_mut().zip(&candidates) {
                if e.recorded {
                    continue;
                }
                if let Some(id) = ids.iter().find(|id| recorded.contains(*id)) {
                    e.recorded = true;
                    e.session_id = Some(id.clone());
                }
            }
        }
        // Captions: Panopto knows before the poller does (and after it stops watching).
        for (i, (check, _)) in wanted.iter().enumerate() {
            let e = &mut out[i];
            if !matches!(check, Check::Captions { .. }) || !e.recorded || e.captions {
                continue;
            }
            if let Some(id) = &e.session_id {
                report.panopto_calls += 1;
                e.captions = self
                    .panopto
                    .session(id)
                    .await?
                    .is_some_and(|s| s.has_captions());
            }
        }
        // Recorders the sighting says are down, or that nobody has looked at (a lecture whose
        // booking failed), asked about in one call.
        let recorders: BTreeSet<String> = wanted
            .iter()
            .zip(&out)
            .filter(|((check, _), e)| {
                *check == Check::RecorderDown && e.recorder.is_none_or(|s| !s.is_healthy())
            })
            .filter_map(|((_, row), _)| row.lecture.recorder_id.clone())
            .collect();
        if !recorders.is_empty() {
            report.panopto_calls += 1;
            let ids: Vec<String> = recorders.into_iter().collect();
            let states: BTreeMap<String, _> = self
                .panopto
                .recorder_states(&ids)
                .await?
                .into_iter()
                .map(|r| (r.id, r.state))
                .collect();
            for ((check, row), e) in wanted.iter().zip(out.iter_mut()) {
                if *check != Check::RecorderDown {
                    continue;
                }
                if let Some(state) = row
                    .lecture
                    .recorder_id
                    .as_ref()
                    .and_then(|id| states.get(id))
                {
                    e.recorder = Some(*state);
                }
            }
        }
        Ok(out)
    }

    /// Opens the incident of a failing lecture (described from the catalog) unless it is
    /// already open.
    async fn raise(
        &self,
        due: &Due,
        evidence: &Evidence,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<Option<Raised>, MonitorError> {
        let lecture = &due.row.lecture;
        let kind = due.check.kind();
        let subject = Subject::lecture(&lecture.section_id, lecture.slot());
        report.reads += 1;
        if self
            .incidents
            .store()
            .current(&subject, kind)
            .await?
            .is_some_and(|i| i.paged)
        {
            // Open and paged already: a running lecture's recorder still down, say.
            return Ok(None);
        }
        report.reads += 3;
        let room = self.teaching.room(&lecture.room_id).await?;
        let sections = self
            .directory
            .sections(std::slice::from_ref(&lecture.section_id))
            .await?;
        let instructors = self
            .directory
            .instructors(&lecture.course_id, &lecture.section_id)
            .await?;
        let context = Context {
            row: &due.row,
            evidence,
            rule: &due.rule,
            room: room.as_ref(),
            section: sections.get(&lecture.section_id),
            instructors: &instructors,
        };
        let (reason, details) = describe(due.check, &context, &self.deadlines, now);
        let opened = self
            .incidents
            .open(NewIncident {
                kind,
                subject: subject.clone(),
                reason,
                opened_by: self.function.clone(),
                audit_ids: Vec::new(),
                details,
                once: true,
            })
            .await?;
        let incident = opened.incident();
        let raised = Raised {
            kind,
            subject: subject.key(),
            incident_id: incident.id.clone(),
            new: matches!(opened, Opened::New(_)),
            paged: incident.paged,
            late_seconds: seconds(now - due.deadline),
            since_class_end_seconds: seconds(now - lecture.end),
        };
        if raised.new {
            tracing::info!(
                kind = %kind,
                subject = %raised.subject,
                incident = %raised.incident_id,
                late_seconds = raised.late_seconds,
                "incident opened"
            );
        }
        Ok(Some(raised))
    }

    /// Every open incident of the monitor's kinds looked at again: resolved when its
    /// lecture now has what it lacked (or was cancelled).
    async fn recheck(
        &self,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), MonitorError> {
        report.reads += 1;
        let unresolved = self.incidents.store().unresolved().await?;
        let mut open: BTreeMap<String, usize> = IncidentKind::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), 0))
            .collect();
        let mut mine = Vec::new();
        for incident in unresolved {
            *open.entry(incident.kind.as_str().to_string()).or_default() += 1;
            let (Some(check), Subject::Lecture { section_id, slot }) =
                (Check::of_kind(incident.kind), &incident.subject)
            else {
                continue;
            };
            report.reads += 1;
            // A lecture no longer in the catalog is a person's to close.
            if let Some(row) = self.teaching.lecture(section_id, slot).await? {
                report.lectures_read += 1;
                mine.push((check, row, incident));
            }
        }
        let wanted: Vec<(Check, &LectureRow)> = mine.iter().map(|(c, r, _)| (*c, r)).collect();
        let evidence = self.evidence(&wanted, report).await?;
        for ((check, row, incident), evidence) in mine.iter().zip(&evidence) {
            let Some(why) = resolution(*check, row, evidence, now) else {
                continue;
            };
            if let Some(resolved) = self
                .incidents
                .resolve_if_open(&incident.subject, incident.kind, &self.function, &why)
                .await?
            {
                tracing::info!(kind = %resolved.kind, subject = %resolved.subject.key(), incident = %resolved.id, resolution = %why, "incident resolved");
                if let Some(n) = open.get_mut(resolved.kind.as_str()) {
                    *n = n.saturating_sub(1);
                }
                report.resolved.push(Cleared {
                    kind: resolved.kind,
                    subject: resolved.subject.key(),
                    incident_id: resolved.id,
                    resolution: why,
                });
            }
        }
        // The index is eventually consistent: this tick's own openings may not be in it yet.
        let listed: BTreeSet<&str> = mine.iter().map(|(_, _, i)| i.id.as_str()).collect();
        for raised in report
            .raised
            .iter()
            .filter(|r| r.new && !listed.contains(r.incident_id.as_str()))
        {
            *open.entry(raised.kind.as_str().to_string()).or_default() += 1;
        }
        report.open = open;
        Ok(())
    }

    fn emit(&self, report: &TickReport) {
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        // Emitted every tick: the "not ticking" alarm watches for its absence.
        metrics.count("SlaTicks", &[], 1);
        metrics.record(
            "SlaLecturesRead",
            &[],
            Unit::Count,
            report.lectures_read as f64,
        );
        metrics.record("SlaReadsPerTick", &[], Unit::Count, report.reads as f64);
        for raised in report.raised.iter().filter(|r| r.new) {
            metrics.count("IncidentsOpened", &[("Kind", raised.kind.as_str())], 1);
            if raised.kind == IncidentKind::MissingRecording {
                metrics.record(
                    "ClassEndToIncidentSeconds",
                    &[],
                    Unit::Seconds,
                    raised.since_class_end_seconds,
                );
            }
        }
        for cleared in &report.resolved {
            metrics.count("IncidentsResolved", &[("Kind", cleared.kind.as_str())], 1);
        }
        for (kind, n) in &report.open {
            metrics.record("OpenIncidents", &[("Kind", kind)], Unit::Count, *n as f64);
        }
        metrics.flush();
    }
}

fn seconds(d: TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

#[async_trait::async_trait]
impl ScheduleHandler for SlaMonitor {
    async fn handle(&self, _input: Option<serde_json::Value>) -> Result<(), HandlerError> {
        let report = self.tick(self.clock.now()).await?;
        tracing::info!(
            lectures = report.lectures_read,
            reads = report.reads,
            opened = report.raised.iter().filter(|r| r.new).count(),
            resolved = report.resolved.len(),
            advanced = report.advanced,
            "sla tick done"
        );
        Ok(())
    }
}

/// `{}`: a tick now (operators, tests); answers the tick's report.
#[async_trait::async_trait]
impl InvokeHandler for SlaMonitor {
    async fn invoke(&self, _event: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        Ok(serde_json::to_value(self.tick(self.clock.now()).await?)?)
    }
}
