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

    async fn match_session(&self, recording: &RecordingRow) -> Result<Effect, StepError> {
        let states = self
            .panopto
            .session_states(std::slice::from_ref(&recording.session_id))
            .await?;
        let Some(status) = states.into_iter().find(|s| s.id == recording.session_id) else {
            return Err(StepError::Permanent(format!(
                "session {} is not in Panopto",
                recording.session_id
            )));
        };
        let Some(start) = status.start_time else {
            return Err(StepError::Permanent(format!(
                "session {} has no start time",
                recording.session_id
            )));
        };
        let end = start
            + status
                .duration()
                .and_then(|d| TimeDelta::from_std(d).ok())
                .unwrap_or_default();
        let capture = Capture {
            recorder_ids: status.remote_recorder_ids.clone(),
            start,
            end,
        };
        let (from, to) = end_window(&capture, self.settings.longest_lecture);
        let lectures: Vec<Lecture> = self
            .teaching
            .lectures_ending(from, to)
            .await?
            .into_iter()
            .map(|r| r.lecture)
            .collect();
        Ok(match match_lecture(&capture, &lectures) {
            Match::One(lecture) => {
                let matched = Matched {
                    section_id: lecture.section_id.clone(),
                    slot: lecture.slot(),
                    course_id: lecture.course_id.clone(),
                    department: lecture.department.clone(),
                };
                let mut detail = format!(
                    "matched to lecture {} of section {} on recorder {}",
                    matched.slot,
                    matched.section_id,
                    capture.recorder_ids.join(", ")
                );
                if let Some(hint) = &recording.lecture_hint
                    && (hint.section_id != matched.section_id || hint.slot != matched.slot)
                {
                    detail.push_str(&format!(
                        " (its events named {}/{}: the recorder and times decide)",
                        hint.section_id, hint.slot
                    ));
                }
                Effect::done(detail, move |row| {
                    row.lecture = Some(matched);
                    row.reason = None;
                    row.status = Status::InProgress;
                })
            }
            Match::Unmatched(why) => Effect {
                outcome: Outcome::Skipped,
                detail: format!("unmatched: {why}"),
                apply: Box::new(move |row| {
                    row.status = Status::Unmatched;
                    row.reason = Some(why);
                }),
            },
        })
    }

    async fn file(
        &self,
        recording: &RecordingRow,
        context: &Context,
        rule: &PublishingRule,
    ) -> Result<Effect, StepError> {
        let path = context.folder_path(rule);
        if path.is_empty() {
            return Err(StepError::Permanent(format!(
                "the folder template of {} renders empty",
                rule.scope.key()
            )));
        }
        let name = rule.session_template.render(&context.values);
        let folder_id = self.folders.folder(&path).await?;
        let session = self
            .panopto
            .session(&recording.session_id)
            .await?
            .ok_or_else(|| {
                StepError::Permanent(format!(
                    "session {} is not in Panopto",
                    recording.session_id
                ))
            })?;
        let update = SessionUpdate {
            name: (session.name != name).then(|| name.clone()),
            description: None,
            folder: (session.folder.as_deref() != Some(folder_id.as_str()))
                .then(|| folder_id.clone()),
        };
        let detail = if update.name.is_none() && update.folder.is_none() {
            format!("already filed as \"{name}\" in folder {folder_id}")
        } else {
            self.panopto
                .update_session(&recording.session_id, &update)
                .await?;
            format!(
                "filed as \"{name}\" in folder {} ({})",
                folder_id,
                path.join("/")
            )
        };
        let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let viewer_url = session.urls.and_then(|u| u.viewer_url);
        Ok(Effect::done(detail, move |row| {
            row.filed = Some(Filed {
                folder_id,
                name,
                at,
                viewer_url,
            })
        }))
    }

    async fn caption(&self, row: &WorkflowRow, rule: &PublishingRule) -> Result<Effect, StepError> {
        let folder_id = row
            .filed
            .as_ref()
            .map(|f| f.folder_id.clone())
            .ok_or_else(|| StepError::Permanent("captions before filing".into()))?;
        let wanted = rule.caption_provider.clone();
        let settings = self.panopto.folder_settings(&folder_id).await?;
        if settings
            .automatic_caption_provider_name
            .as_deref()
            .is_some_and(|name| name.eq_ignore_ascii_case(&wanted))
        {
            return Ok(Effect::done(
                format!("folder {folder_id} already captions with {wanted}"),
                move |row| row.captions_requested = Some(wanted),
            ));
        }
        let providers = self.caption_providers(&wanted).await?;
        let provider = providers
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(&wanted))
            .ok_or_else(|| {
                StepError::Permanent(format!(
                    "caption provider \"{wanted}\" is not configured in Panopto (there are: {})",
                    providers
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        self.panopto
            .set_folder_caption_provider(&folder_id, &provider.id)
            .await?;
        Ok(Effect::done(
            format!("captions requested from {wanted} on folder {folder_id}"),
            move |row| row.captions_requested = Some(wanted),
        ))
    }

    async fn access(
        &self,
        row: &WorkflowRow,
        context: &Context,
        rule: &PublishingRule,
    ) -> Result<Effect, StepError> {
        let lecture = &context.lecture;
        let wanted = self
            .access
            .wanted(&lecture.course_id, &lecture.section_id, rule.access)
            .await?;
        let synced = self
            .access
            .sync(&row.session_id, row.access.as_ref(), &wanted)
            .await?;
        let mut detail = format!(
            "access by {}: {} viewer(s), {} granted, {} revoked",
            access_name(rule.access),
            wanted.principals.len(),
            synced.granted,
            synced.revoked
        );
        if wanted.unknown > 0 {
            detail.push_str(&format!(
                "; {} not in Panopto yet (granted once they are)",
                wanted.unknown
            ));
        }
        let principals = wanted.principals;
        Ok(Effect::done(detail, move |row| {
            row.access = Some(principals)
        }))
    }

    /// Posts the link, or (verifying) checks the posted link is still there.
    async fn post(
        &self,
        row: &WorkflowRow,
        recording: &RecordingRow,
        context: &Context,
        section: &SectionInfo,
        rule: &PublishingRule,
    ) -> Result<Option<Effect>, StepError> {
        let course_id = section.course_id.clone();
        let module_name = rule.module_template.render(&context.values);
        let title = row
            .filed
            .as_ref()
            .map(|f| f.name.clone())
            .unwrap_or_else(|| rule.session_template.render(&context.values));
        // The link: as posted before, else as Panopto gave it when filing, else asked for.
        let known_url = row
            .posted
            .as_ref()
            .map(|p| p.url.clone())
            .or_else(|| row.filed.as_ref().and_then(|f| f.viewer_url.clone()));
        let url = match known_url {
            Some(url) => url,
            None => self
                .panopto
                .session(&recording.session_id)
                .await?
                .and_then(|s| s.urls)
                .and_then(|u| u.viewer_url)
                .ok_or_else(|| {
                    StepError::Permanent(format!(
                        "Panopto gives no viewer URL for session {}",
                        recording.session_id
                    ))
                })?,
        };
        let modules = self.canvas.modules(&course_id).await?;
        // The module posted in before (by id: people rename modules), else the rule's by name.
        let known = row
            .posted
            .as_ref()
            .and_then(|p| modules.iter().find(|m| m.id == p.module_id));
        let by_name = || {
            modules
                .iter()
                .find(|m| m.name.as_deref() == Some(module_name.as_str()))
        };
        let module: Option<&Module> = known.or_else(by_name);
        let item = module.and_then(|m| {
            m.items
                .iter()
                .find(|i| i.external_url.as_deref() == Some(url.as_str()))
        });
        if let (Some(posted), Some(module), Some(item)) = (&row.posted, module, item)
            && posted.module_id == module.id
            && posted.item_id == item.id
        {
            return Ok(None);
        }
        let repost = row.posted.is_some();
        if repost && row.reposts >= 1 {
            return Err(StepError::Permanent(format!(
                "the recording's link in course {course_id} is gone again after one repost; \
                 a person keeps removing it"
            )));
        }
        let mut detail = Vec::new();
        let module = match module {
            Some(module) => module.clone(),
            None => {
                let created = self.canvas.create_module(&course_id, &module_name).await?;
                self.canvas.publish_module(&course_id, &created.id).await?;
                detail.push(if repost {
                    format!("module \"{module_name}\" was deleted in Canvas: recreated it")
                } else {
                    format!("created module \"{module_name}\"")
                });
                created
            }
        };
        let item = match item {
            Some(item) => {
                detail.push(format!("found the link already posted (item {})", item.id));
                item.clone()
            }
            None => {
                let created = self
                    .canvas
                    .create_item(
                        &course_id,
                        &module.id,
                        &NewExternalUrlItem {
                            title: title.clone(),
                            external_url: url.clone(),
                            position: None,
                            new_tab: true,
                        },
                    )
                    .await?;
                self.canvas
                    .publish_item(&course_id, &module.id, &created.id)
                    .await?;
                detail.push(format!(
                    "{} \"{title}\" in module \"{}\" of course {course_id}",
                    if repost { "posted again" } else { "posted" },
                    module.name.as_deref().unwrap_or(&module_name)
                ));
                created
            }
        };
        let posted = Posted {
            course_id,
            module_id: module.id.clone(),
            item_id: item.id.clone(),
            url,
        };
        Ok(Some(Effect::done(detail.join("; "), move |row| {
            if repost {
                row.reposts += 1;
            }
            row.posted = Some(posted);
        })))
    }

    /// The site's caption providers, read once per process (they are site configuration),
    /// and again when `wanted` is not among them (it may have been added since).
    async fn caption_providers(&self, wanted: &str) -> Result<Vec<CaptionProvider>, StepError> {
        let mut known = self.caption_providers.lock().await;
        if let Some(providers) = known.as_ref()
            && providers
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case(wanted))
        {
            return Ok(providers.clone());
        }
        let providers = self.panopto.caption_providers().await?;
        *known = Some(providers.clone());
        Ok(providers)
    }

    /// What the next step would do (a dry run's answer).
    fn plan(&self, row: &WorkflowRow, context: Option<&Context>) -> StepReport {
        let rule = context.and_then(|c| c.rule.as_ref());
        let (step, detail) = match (row.lecture.as_ref(), rule) {
            (None, _) => (
                Step::Match,
                "would match the session to a lecture by recorder and time".to_string(),
            ),
            (Some(_), None) => (
                Step::File,
                "would stop: no publishing rule covers the course".to_string(),
            ),
            (Some(_), Some(rule)) => {
                let values = context.map(|c| &c.values);
                let render = |t: &coursewire_teaching::Template| {
                    values.map(|v| t.render(v)).unwrap_or_default()
                };
                let step = Step::ALL
                    .into_iter()
                    .find(|s| !row.done(*s))
                    .unwrap_or(Step::Post);
                let detail = match step {
                    Step::File => format!(
                        "would file as \"{}\" in {}",
                        render(&rule.session_template),
                        render(&rule.folder_template)
                    ),
                    Step::Caption => {
                        format!("would set caption provider {}", rule.caption_provider)
                    }
                    Step::Access => format!("would grant viewers by {}", access_name(rule.access)),
                    Step::Post => format!(
                        "would post the link in module \"{}\"",
                        render(&rule.module_template)
                    ),
                    Step::Audit | Step::Match => "would close the workflow".to_string(),
                };
                (step, detail)
            }
        };
        StepReport {
            step,
            outcome: "would",
            detail,
        }
    }

    /// A name or folder a person gave the session after filing is kept; say so once.
    async fn note_kept_change(
        &self,
        row: &mut WorkflowRow,
        recording: &RecordingRow,
    ) -> Result<(), StepError> {
        let Some(filed) = &row.filed else {
            return Ok(());
        };
        // Only what was seen after coursewire filed it: the filing's own rename and move
        // show up as events too, stating exactly what was filed.
        let after = |stated: &Option<crate::recording::Stated>| {
            stated
                .as_ref()
                .filter(|s| time(&s.at) > time(&filed.at))
                .map(|s| s.value.clone())
        };
        let mut changes = Vec::new();
        if let Some(name) = after(&recording.renamed).filter(|n| *n != filed.name) {
            changes.push(format!("renamed it to \"{name}\""));
        }
        if let Some(folder) = after(&recording.moved).filter(|f| *f != filed.folder_id) {
            changes.push(format!("moved it to folder {folder}"));
        }
        if changes.is_empty() {
            return Ok(());
        }
        let change = changes.join(" and ");
        if row.kept_change.as_deref() == Some(change.as_str()) {
            return Ok(());
        }
        let detail = format!(
            "someone {change} after coursewire filed it as \"{}\" in folder {}: the person's change stands",
            filed.name, filed.folder_id
        );
        let mut record = AuditRecord::new(
            subject(row),
            &format!("{}:kept:{change}", row.session_id),
            Utc::now(),
            Actor::function(&self.settings.function),
            Action::WorkflowStep {
                session_id: row.session_id.clone(),
                step: Step::File.as_str().to_string(),
            },
            Outcome::Skipped,
            detail,
        );
        record.upstream = Upstream::session(&row.session_id);
        self.trail.append(&record).await?;
        row.kept_change = Some(change);
        row.updated_at = format_sortable(&Utc::now());
        // Lost to another run: that run notes it.
        let _ = self.store.save(row).await?;
        Ok(())
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
