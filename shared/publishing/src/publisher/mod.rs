//! The publish workflow's steps and their side effects, each check-before-act:
//!
//! - **match**: the session's recorder and times against the lectures ending around it;
//! - **file**: into the section's folder (found by external id), named by the rule — once:
//!   a name or folder a person changes afterwards is kept, and the audit says so;
//! - **caption**: the rule's caption provider set on the folder (completion comes back as a
//!   `captions_available` recording event);
//! - **access**: viewer grants from the roster (section, course) or the institution group;
//!   only grants coursewire made are ever revoked;
//! - **post**: a published `ExternalUrl` item in the rule's module of the course (module
//!   created if missing; a module a person deleted is recreated and the post repeated once);
//! - **audit**: the record that closes the workflow.
//!
//! Every step is audited (done, skipped or failed) *before* the workflow row records it, so
//! a crash in between repeats the step (which finds its work done) and the same audit record
//! (by its deterministic id). Each row write is conditional on its version.
//!
//! Here: the run ([`Publisher::advance`]), failures and the audit records. One file per step:
//! `match_session`, `file`, `caption`, `share` (access), `post`; `plan` answers dry runs.

mod caption;
mod file;
mod match_session;
mod plan;
mod post;
mod share;

use crate::access::{Access, Viewers};
use crate::matching::{Capture, Match, end_window, match_lecture};
use crate::ports::{CourseModules, Saved, WorkflowStore};
use crate::recording::RecordingRow;
use crate::workflow::{
    Filed, MAX_ATTEMPTS, Matched, Next, Posted, Status, Step, WorkflowRow, next,
};
use chrono::{TimeDelta, Utc};
use coursewire_audit::{Action, Actor, AuditRecord, AuditTrail, Outcome, Subject, Upstream, Why};
use coursewire_canvas::canvas::{CanvasError, Module, NewExternalUrlItem};
use coursewire_incidents::{IncidentKind, Incidents, NewIncident};
use coursewire_panopto::{CaptionProvider, Panopto, PanoptoError, SessionUpdate};
use coursewire_pipeline::time::format_sortable;
use coursewire_recordings::booking::values;
use coursewire_recordings::folders::SectionFolders;
use coursewire_runtime::service::ServiceError;
use coursewire_teaching::sections::{CanvasDirectory, SectionInfo};
use coursewire_teaching::{AccessLevel, Lecture, PublishingRule, RuleBook, TeachingStore};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub viewers: Viewers,
    /// The longest lecture: bounds the catalog window a match reads.
    pub longest_lecture: TimeDelta,
    /// The function's name, in audit records.
    pub function: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("Panopto: {0}")]
    Panopto(#[from] PanoptoError),
    #[error("Canvas: {0}")]
    Canvas(#[from] CanvasError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Audit(#[from] coursewire_audit::AuditError),
    #[error(transparent)]
    Incident(#[from] coursewire_incidents::IncidentError),
    /// Retrying cannot help (no such caption provider, a lecture gone from the catalog...).
    #[error("{0}")]
    Permanent(String),
}

impl StepError {
    fn is_transient(&self) -> bool {
        match self {
            StepError::Panopto(e) => e.is_transient(),
            StepError::Canvas(e) => e.is_transient(),
            StepError::Service(e) => e.is_transient(),
            StepError::Audit(_) | StepError::Incident(_) => true,
            StepError::Permanent(_) => false,
        }
    }
}

/// What woke the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trigger {
    /// A publish replay: steps named here are taken again even if done.
    pub force: BTreeSet<Step>,
    /// Say what each step would do; change nothing.
    pub dry_run: bool,
    /// Look again at work already done (the module item still there?): replays and later
    /// events on a published recording.
    pub verify: bool,
    /// The Canvas change event behind this run (a roster change), for the audit records.
    pub canvas_event_id: Option<String>,
}

/// One step as a run saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    pub step: Step,
    /// `done`, `already_done`, `would`, `skipped`, `failed`.
    pub outcome: &'static str,
    pub detail: String,
}

/// What one run of the workflow did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advanced {
    pub session_id: String,
    pub status: Status,
    pub steps: Vec<StepReport>,
    /// Why it stopped short of published, if it did.
    pub waiting: Option<String>,
}

/// The lecture, its rule and its section, read once per run.
struct Context {
    lecture: Lecture,
    rule: Option<PublishingRule>,
    section: Option<SectionInfo>,
    values: std::collections::BTreeMap<&'static str, String>,
}

impl Context {
    fn why(&self) -> Option<Why> {
        self.rule.as_ref().map(|rule| Why {
            rule: rule.scope.key(),
            rule_version: None,
        })
    }

    fn folder_path(&self, rule: &PublishingRule) -> Vec<String> {
        rule.folder_template
            .render(&self.values)
            .split('/')
            .map(|part| part.trim().to_string())
            .filter(|part| !part.is_empty())
            .collect()
    }
}

/// The result of a step that changed (or would change) the row.
struct Effect {
    outcome: Outcome,
    detail: String,
    /// Applies the step's result to the row.
    apply: Box<dyn FnOnce(&mut WorkflowRow) + Send>,
}

impl Effect {
    fn done(
        detail: impl Into<String>,
        apply: impl FnOnce(&mut WorkflowRow) + Send + 'static,
    ) -> Self {
        Self {
            outcome: Outcome::Done,
            detail: detail.into(),
            apply: Box::new(apply),
        }
    }
}

pub struct Publisher {
    store: Arc<dyn WorkflowStore>,
    teaching: Arc<dyn TeachingStore>,
    directory: Arc<dyn CanvasDirectory>,
    panopto: Arc<dyn Panopto>,
    canvas: Arc<dyn CourseModules>,
    folders: SectionFolders,
    access: Access,
    caption_providers: tokio::sync::Mutex<Option<Vec<CaptionProvider>>>,
    trail: Arc<dyn AuditTrail>,
    incidents: Arc<Incidents>,
    settings: Settings,
}

/// Row writes that lose to another writer before giving up (the SQS retry takes over).
const SAVE_ATTEMPTS: u32 = 5;
/// Steps one run may take (six steps, plus a repeated match or post).
const STEPS_PER_RUN: usize = 10;

impl Publisher {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn WorkflowStore>,
        teaching: Arc<dyn TeachingStore>,
        directory: Arc<dyn CanvasDirectory>,
        panopto: Arc<dyn Panopto>,
        canvas: Arc<dyn CourseModules>,
        trail: Arc<dyn AuditTrail>,
        incidents: Arc<Incidents>,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            teaching,
            folders: SectionFolders::new(panopto.clone()),
            access: Access::new(panopto.clone(), directory.clone(), settings.viewers.clone()),
            caption_providers: tokio::sync::Mutex::new(None),
            directory,
            panopto,
            canvas,
            trail,
            incidents,
            settings,
        }
    }

    pub fn store(&self) -> &dyn WorkflowStore {
        self.store.as_ref()
    }

    /// Takes every step the recording allows now. `Err` only for a transient failure with
    /// attempts left (the message is retried later: the queue's visibility timeout is the
    /// backoff); exhausted or permanent failures mark the recording `needs_attention`, open
    /// an incident and answer `Ok`.
    pub async fn advance(
        &self,
        recording: &RecordingRow,
        trigger: &Trigger,
    ) -> Result<Advanced, StepError> {
        let mut steps = Vec::new();
        let mut row = self
            .store
            .load(&recording.session_id)
            .await?
            .unwrap_or_else(|| WorkflowRow::new(&recording.session_id));
        for step in &trigger.force {
            row.forget(*step);
        }
        let mut context: Option<Context> = None;
        let mut verify = trigger.verify && row.posted.is_some();
        let mut waiting = None;
        let mut saves = 0;
        for _ in 0..STEPS_PER_RUN {
            if context.is_none()
                && let Some(lecture) = &row.lecture
            {
                context = Some(self.context(lecture).await?);
            }
            let post = context
                .as_ref()
                .and_then(|c| c.rule.as_ref())
                .map(|rule| rule.post);
            let step = match next(&row, recording, post) {
                Next::Take(step) => step,
                Next::Wait(why) => {
                    waiting = Some(why.to_string());
                    break;
                }
                Next::Stop if verify => Step::Post,
                Next::Stop => break,
            };
            if trigger.dry_run {
                steps.push(self.plan(&row, context.as_ref()));
                break;
            }
            if step == Step::Post {
                verify = false;
            }
            let previous = row.clone();
            let result = self.take(step, &row, recording, context.as_ref()).await;
            let (report, effect) = match result {
                Ok(Some(effect)) => (
                    StepReport {
                        step,
                        outcome: if effect.outcome == Outcome::Done {
                            "done"
                        } else {
                            "skipped"
                        },
                        detail: effect.detail.clone(),
                    },
                    effect,
                ),
                Ok(None) => {
                    // Verified: nothing to do.
                    steps.push(StepReport {
                        step,
                        outcome: "already_done",
                        detail: "looked again: still in place".into(),
                    });
                    continue;
                }
                Err(e) => {
                    return self.failed(row, context.as_ref(), step, e, steps).await;
                }
            };
            // Audited with the step applied (a match lands on its lecture's timeline), then
            // stored: a crash between the two repeats the step and the same record.
            let mut applied = row.clone();
            (effect.apply)(&mut applied);
            let mut record = self.record(
                &applied,
                context.as_ref(),
                step,
                effect.outcome,
                &effect.detail,
            );
            record
                .upstream
                .canvas_event_ids
                .extend(trigger.canvas_event_id.clone());
            self.trail.append(&record).await?;
            if applied.status == Status::Unmatched && previous.reason != applied.reason {
                self.incidents
                    .open(NewIncident {
                        kind: IncidentKind::UnmatchedRecording,
                        subject: subject(&applied),
                        reason: format!("session {}: {}", applied.session_id, effect.detail),
                        opened_by: self.settings.function.clone(),
                        audit_ids: vec![record.id.clone()],
                        details: Default::default(),
                        once: false,
                    })
                    .await?;
            }
            row = applied;
            row.attempts = 0;
            row.last_error = None;
            if step == Step::Audit {
                row.status = Status::Published;
            }
            row.updated_at = format_sortable(&Utc::now());
            match self.store.save(&mut row).await? {
                Saved::Saved => steps.push(report),
                Saved::Moved => {
                    // Another run advanced it: start again from what it stored.
                    saves += 1;
                    if saves >= SAVE_ATTEMPTS {
                        return Err(StepError::Service(ServiceError::Transient(format!(
                            "the workflow of {} kept changing under {SAVE_ATTEMPTS} attempts",
                            previous.session_id
                        ))));
                    }
                    row = self
                        .store
                        .load(&recording.session_id)
                        .await?
                        .unwrap_or_else(|| WorkflowRow::new(&recording.session_id));
                    context = None;
                }
            }
            if row.lecture != previous.lecture {
                context = None;
            }
        }
        if !trigger.dry_run {
            self.note_kept_change(&mut row, recording).await?;
        }
        Ok(Advanced {
            session_id: recording.session_id.clone(),
            status: row.status,
            steps,
            waiting,
        })
    }

    /// A step failed: count the attempt; with attempts left and a transient cause, ask for a
    /// retry; otherwise mark the recording and open an incident.
    #[allow(clippy::too_many_arguments)]
    async fn failed(
        &self,
        mut row: WorkflowRow,
        context: Option<&Context>,
        step: Step,
        error: StepError,
        mut steps: Vec<StepReport>,
    ) -> Result<Advanced, StepError> {
        row.attempts += 1;
        row.last_error = Some(format!("{step}: {error}"));
        let exhausted = row.attempts >= MAX_ATTEMPTS || !error.is_transient();
        tracing::warn!(
            session_id = %row.session_id,
            step = step.as_str(),
            attempt = row.attempts,
            exhausted,
            error = %error,
            "publish step failed"
        );
        steps.push(StepReport {
            step,
            outcome: "failed",
            detail: error.to_string(),
        });
        if exhausted {
            row.status = Status::NeedsAttention;
            let detail = format!(
                "{step} failed {} time(s), last: {error}; the recording needs attention",
                row.attempts
            );
            let record = self.record(&row, context, step, Outcome::Failed, &detail);
            self.trail.append(&record).await?;
            self.incidents
                .open(NewIncident {
                    kind: IncidentKind::PublishFailed,
                    subject: subject(&row),
                    reason: detail,
                    opened_by: self.settings.function.clone(),
                    audit_ids: vec![record.id.clone()],
                    details: Default::default(),
                    once: false,
                })
                .await?;
        }
        row.updated_at = format_sortable(&Utc::now());
        // Losing this write to another run only loses the attempt count.
        let _ = self.store.save(&mut row).await?;
        if exhausted {
            Ok(Advanced {
                session_id: row.session_id.clone(),
                status: row.status,
                steps,
                waiting: row.last_error.clone(),
            })
        } else {
            Err(error)
        }
    }

    async fn context(&self, lecture: &Matched) -> Result<Context, StepError> {
        let lectures = self.teaching.lectures_of(&lecture.section_id).await?;
        let found = lectures
            .into_iter()
            .map(|r| r.lecture)
            .find(|l| l.slot() == lecture.slot)
            .ok_or_else(|| {
                StepError::Permanent(format!(
                    "lecture {}/{} is no longer in the teaching catalog",
                    lecture.section_id, lecture.slot
                ))
            })?;
        let rules = RuleBook::new(self.teaching.rules().await?);
        let rule = rules
            .for_course(&found.course_id, &found.department)
            .cloned();
        let sections = self
            .directory
            .sections(std::slice::from_ref(&found.section_id))
            .await?;
        let section = sections.get(&found.section_id).cloned();
        let values = match &section {
            Some(section) => {
                let rooms = self.teaching.rooms().await?;
                let patterns = self.teaching.patterns().await?;
                values(&found, section, &rooms, &patterns)
            }
            None => Default::default(),
        };
        Ok(Context {
            lecture: found,
            rule,
            section,
            values,
        })
    }

    /// Runs one step; `None` = verified, nothing to do.
    async fn take(
        &self,
        step: Step,
        row: &WorkflowRow,
        recording: &RecordingRow,
        context: Option<&Context>,
    ) -> Result<Option<Effect>, StepError> {
        if step == Step::Match {
            return self.match_session(recording).await.map(Some);
        }
        let context = context.ok_or_else(|| StepError::Permanent("no lecture matched".into()))?;
        let Some(rule) = context.rule.as_ref().filter(|r| r.enabled) else {
            let why = match &context.rule {
                Some(_) => "its department's publishing rule is disabled",
                None => "no publishing rule covers its course or department",
            };
            return Ok(Some(Effect {
                outcome: Outcome::Skipped,
                detail: format!("not published: {why}"),
                apply: Box::new(move |row| {
                    row.status = Status::NotPublished;
                    row.reason = Some(why.to_string());
                }),
            }));
        };
        let Some(section) = &context.section else {
            return Err(StepError::Permanent(format!(
                "section {} is not in the Canvas catalog",
                context.lecture.section_id
            )));
        };
        match step {
            Step::Match => unreachable_step(),
            Step::File => self.file(recording, context, rule).await.map(Some),
            Step::Caption => self.caption(row, rule).await.map(Some),
            Step::Access => self.access(row, context, rule).await.map(Some),
            Step::Post => self.post(row, recording, context, section, rule).await,
            Step::Audit => Ok(Some(Effect::done(
                match &row.posted {
                    Some(p) => format!(
                        "published: filed, captioned, shared, posted in module {} of course {}",
                        p.module_id, p.course_id
                    ),
                    None => "published".to_string(),
                },
                |row| row.audited = true,
            ))),
        }
    }

    fn record(
        &self,
        row: &WorkflowRow,
        context: Option<&Context>,
        step: Step,
        outcome: Outcome,
        detail: &str,
    ) -> AuditRecord {
        let mut record = AuditRecord::new(
            subject(row),
            &format!(
                "{}:{step}:{}:{}:{}",
                row.session_id,
                outcome.as_str(),
                row.version,
                row.attempts
            ),
            Utc::now(),
            Actor::function(&self.settings.function),
            Action::WorkflowStep {
                session_id: row.session_id.clone(),
                step: step.as_str().to_string(),
            },
            outcome,
            detail,
        );
        record.upstream = Upstream::session(&row.session_id);
        if let Some(why) = context.and_then(Context::why) {
            record = record.because(why);
        }
        record
    }
}

fn time(text: &str) -> Option<chrono::DateTime<Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn unreachable_step<T>() -> Result<T, StepError> {
    Err(StepError::Permanent(
        "match is taken before the lecture is known".into(),
    ))
}

fn access_name(access: AccessLevel) -> &'static str {
    match access {
        AccessLevel::SectionRoster => "section roster",
        AccessLevel::CourseRoster => "course roster",
        AccessLevel::Institution => "institution",
    }
}

/// Where a workflow's records go: its lecture once matched, else the recording.
fn subject(row: &WorkflowRow) -> Subject {
    match &row.lecture {
        Some(lecture) => Subject::lecture(&lecture.section_id, &lecture.slot),
        None => Subject::recording(&row.session_id),
    }
}
