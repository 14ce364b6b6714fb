//! Booking Panopto scheduled recordings for lectures, and keeping them in step with the
//! teaching catalog: a lecture in a room with a recorder, under an enabled rule, gets a
//! scheduled recording in its section's folder, named by the rule; a moved meeting moves it
//! (PUT), a cancelled one cancels it (DELETE), a room change re-books it on the new recorder.
//!
//! The rule's folder is found by its external id ([`crate::folders`]), not by name. Every
//! booking made, moved, re-booked or cancelled, and every refusal, goes on the lecture's audit
//! timeline.
//!
//! Check before act: a booking coursewire made carries a marker in its description, so a run
//! that crashed between Panopto's answer and writing the booking down finds it again (in the
//! folder) instead of booking twice. A conflict Panopto reports (recorder already booked) is
//! kept on the lecture and reported, never dropped.

use crate::folders::SectionFolders;
use chrono::{DateTime, Utc};
use coursewire_audit::{
    Action, Actor, AuditRecord, AuditTrail, Outcome as AuditOutcome, Subject, Upstream,
};
use coursewire_panopto::{Panopto, PanoptoError, ScheduledRecordingCreate};
use coursewire_runtime::function::{HandlerError, InvokeHandler, ScheduleHandler};
use coursewire_runtime::service::ServiceError;
use coursewire_teaching::sections::{CanvasDirectory, SectionInfo};
use coursewire_teaching::{
    Booking, Lecture, LectureRow, LectureStatus, MeetingPattern, Room, RuleBook, TeachingStore,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The description marker naming the lecture a booking is for.
pub fn marker(lecture: &Lecture) -> String {
    format!(
        "coursewire-lecture:{}/{}",
        lecture.section_id,
        lecture.slot()
    )
}

#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error("the audit trail: {0}")]
    Audit(#[from] coursewire_audit::AuditError),
    #[error("the teaching catalog: {0}")]
    Catalog(#[from] ServiceError),
    #[error("Panopto: {0}")]
    Panopto(#[from] PanoptoError),
}

/// What one run did, per lecture outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BookingReport {
    pub booked: usize,
    /// Found in Panopto from an earlier run that had not written it down.
    pub adopted: usize,
    pub moved: usize,
    pub rebooked: usize,
    pub cancelled: usize,
    pub unchanged: usize,
    /// Nothing to book: no recorder in the room, no rule or a disabled one, already over.
    pub not_recorded: usize,
    /// Panopto refused (a conflict): `(lecture, why)`, also kept on the lecture row.
    pub conflicts: Vec<(String, String)>,
    /// Failed for another reason (retried by the next run).
    pub failed: Vec<(String, String)>,
}

/// What a lecture should have booked, by the catalog and its rule.
struct Wanted {
    name: String,
    folder_path: Vec<String>,
    recorder_id: String,
}

pub struct Scheduler {
    teaching: Arc<dyn TeachingStore>,
    trail: Arc<dyn AuditTrail>,
    panopto: Arc<dyn Panopto>,
    directory: Arc<dyn CanvasDirectory>,
    folders: SectionFolders,
}

impl Scheduler {
    pub fn new(
        teaching: Arc<dyn TeachingStore>,
        panopto: Arc<dyn Panopto>,
        directory: Arc<dyn CanvasDirectory>,
        trail: Arc<dyn AuditTrail>,
    ) -> Self {
        Self {
            teaching,
            trail,
            folders: SectionFolders::new(panopto.clone()),
            panopto,
            directory,
        }
    }

    /// Brings the bookings of every lecture ending in `[from, to)` in step (the scheduled
    /// run).
    pub async fn sync_window(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<BookingReport, BookingError> {
        let rows = self.teaching.lectures_ending(from, to).await?;
        self.sync(rows, now).await
    }

    /// Brings the bookings of these sections' lectures in step (after an import).
    pub async fn sync_sections(
        &self,
        sections: &[String],
        now: DateTime<Utc>,
    ) -> Result<BookingReport, BookingError> {
        let mut rows = Vec::new();
        for section in sections {
            rows.extend(self.teaching.lectures_of(section).await?);
        }
        self.sync(rows, now).await
    }

    pub async fn sync(
        &self,
        rows: Vec<LectureRow>,
        now: DateTime<Utc>,
    ) -> Result<BookingReport, BookingError> {
        let mut report = BookingReport::default();
        let rules = RuleBook::new(self.teaching.rules().await?);
        let rooms = self.teaching.rooms().await?;
        let patterns = self.teaching.patterns().await?;
        let section_ids: Vec<String> = rows
            .iter()
            .map(|r| r.lecture.section_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let sections = self.directory.sections(&section_ids).await?;
        for row in rows {
            let id = format!("{}/{}", row.lecture.section_id, row.lecture.slot());
            let wanted = wanted(&row.lecture, &rules, &rooms, &patterns, &sections, now);
            match self.step(&row, wanted.as_ref()).await {
                Ok((outcome, booking)) => {
                    if let Some(booking) = booking.filter(|_| outcome.changed())
                        && let Err(e) = self.audit(&row.lecture, &outcome, &booking, None).await
                    {
                        // The booking stands; only its record is missing.
                        tracing::warn!(lecture = id.as_str(), error = %e, "booking not audited");
                        report.failed.push((id.clone(), e.to_string()));
                    }
                    outcome.count(&mut report);
                }
                Err(BookingError::Panopto(PanoptoError::Conflict { recorder, message })) => {
                    let why = format!("recorder {recorder} is already booked: {message}");
                    let refused = Booking {
                        session_id: String::new(),
                        recorder_id: recorder.clone(),
                        folder_id: String::new(),
                        start: row.lecture.start,
                        end: row.lecture.end,
                    };
                    if let Err(e) = self
                        .audit(&row.lecture, &Outcome::NotRecorded, &refused, Some(&why))
                        .await
                    {
                        tracing::warn!(lecture = id.as_str(), error = %e, "refusal not audited");
                    }
                    tracing::warn!(
                        lecture = id.as_str(),
                        why = why.as_str(),
                        "Panopto refused a booking"
                    );
                    if let Err(e) = self
                        .teaching
                        .set_booking(&row.lecture, row.booking.as_ref(), Some(&why))
                        .await
                    {
                        tracing::warn!(error = %e, "could not keep the conflict on the lecture");
                    }
                    report.conflicts.push((id, why));
                }
                Err(e) => {
                    tracing::warn!(lecture = id.as_str(), error = %e, "booking failed; the next run retries");
                    report.failed.push((id, e.to_string()));
                }
            }
        }
        Ok(report)
    }

    async fn step(
        &self,
        row: &LectureRow,
        wanted: Option<&Wanted>,
    ) -> Result<(Outcome, Option<Booking>), BookingError> {
        let lecture = &row.lecture;
        match (wanted, &row.booking) {
            (None, None) => Ok((Outcome::NotRecorded, None)),
            (None, Some(booking)) => {
                self.panopto
                    .delete_scheduled_recording(&booking.session_id)
                    .await?;
                self.teaching.set_booking(lecture, None, None).await?;
                Ok((Outcome::Cancelled, Some(booking.clone())))
            }
            (Some(wanted), Some(booking)) if booking.recorder_id != wanted.recorder_id => {
                self.panopto
                    .delete_scheduled_recording(&booking.session_id)
                    .await?;
                self.teaching.set_booking(lecture, None, None).await?;
                let (_, booking) = self.book(lecture, wanted).await?;
                Ok((Outcome::Rebooked, booking))
            }
            (Some(_), Some(booking))
                if booking.start != lecture.start || booking.end != lecture.end =>
            {
                self.panopto
                    .update_scheduled_recording(&booking.session_id, lecture.start, lecture.end)
                    .await?;
                let mut moved = booking.clone();
                moved.start = lecture.start;
                moved.end = lecture.end;
                self.teaching
                    .set_booking(lecture, Some(&moved), None)
                    .await?;
                Ok((Outcome::Moved, Some(moved)))
            }
            (Some(_), Some(_)) if row.booking_error.is_some() => {
                self.teaching
                    .set_booking(lecture, row.booking.as_ref(), None)
                    .await?;
                Ok((Outcome::Unchanged, None))
            }
            (Some(_), Some(_)) => Ok((Outcome::Unchanged, None)),
            (Some(wanted), None) => self.book(lecture, wanted).await,
        }
    }

    /// Records what a run changed on the lecture's audit timeline.
    async fn audit(
        &self,
        lecture: &Lecture,
        outcome: &Outcome,
        booking: &Booking,
        why: Option<&str>,
    ) -> Result<(), BookingError> {
        let when = |b: &Booking| {
            format!(
                "{} to {}",
                b.start
                    .with_timezone(&lecture.time_zone)
                    .format("%Y-%m-%d %H:%M"),
                b.end.with_timezone(&lecture.time_zone).format("%H:%M")
            )
        };
        let (action, detail) = match outcome {
            Outcome::Cancelled => (
                Action::BookingCancelled {
                    session_id: booking.session_id.clone(),
                },
                "the lecture is no longer scheduled: its booking was cancelled".to_string(),
            ),
            Outcome::NotRecorded => (
                Action::NotBooked {
                    room_id: lecture.room_id.clone(),
                },
                format!("Panopto refused the booking: {}", why.unwrap_or_default()),
            ),
            other => (
                Action::Booked {
                    session_id: booking.session_id.clone(),
                    recorder_id: booking.recorder_id.clone(),
                    room_id: lecture.room_id.clone(),
                },
                format!(
                    "{} on recorder {} in room {}, {}",
                    match other {
                        Outcome::Moved => "booking moved",
                        Outcome::Rebooked => "re-booked",
                        Outcome::Adopted => "booking found again",
                        _ => "booked",
                    },
                    booking.recorder_id,
                    lecture.room_id,
                    when(booking)
                ),
            ),
        };
        let key = format!(
            "{}:{}:{}:{}",
            booking.session_id,
            booking.start.timestamp(),
            booking.end.timestamp(),
            why.unwrap_or_default()
        );
        let record = AuditRecord::new(
            Subject::lecture(&lecture.section_id, lecture.slot()),
            &key,
            Utc::now(),
            Actor::function("recording-scheduler"),
            action,
            if why.is_some() {
                AuditOutcome::Failed
            } else {
                AuditOutcome::Done
            },
            detail,
        )
        .upstream(Upstream::session(&booking.session_id));
        self.trail.append(&record).await?;
        Ok(())
    }

    /// Books the lecture, or adopts the booking an interrupted run made.
    async fn book(
        &self,
        lecture: &Lecture,
        wanted: &Wanted,
    ) -> Result<(Outcome, Option<Booking>), BookingError> {
        let folder_id = self.folders.folder(&wanted.folder_path).await?;
        let marker = marker(lecture);
        let existing = self
            .panopto
            .folder_sessions(&folder_id)
            .await?
            .into_iter()
            .find(|s| {
                s.description
                    .as_deref()
                    .is_some_and(|d| d.contains(&marker))
            });
        let (session_id, outcome) = match existing {
            Some(session) => (session.id, Outcome::Adopted),
            None => {
                let mut create = ScheduledRecordingCreate::on_recorder(
                    &wanted.name,
                    &folder_id,
                    &wanted.recorder_id,
                    lecture.start,
                    lecture.end,
                );
                create.description = Some(format!("Scheduled by coursewire. {marker}"));
                (
                    self.panopto.create_scheduled_recording(&create).await?.id,
                    Outcome::Booked,
                )
            }
        };
        let booking = Booking {
            session_id,
            recorder_id: wanted.recorder_id.clone(),
            folder_id,
            start: lecture.start,
            end: lecture.end,
        };
        self.teaching
            .set_booking(lecture, Some(&booking), None)
            .await?;
        Ok((outcome, Some(booking)))
    }
}

enum Outcome {
    Booked,
    Adopted,
    Moved,
    Rebooked,
    Cancelled,
    Unchanged,
    NotRecorded,
}

impl Outcome {
    /// Whether the run changed the lecture's booking (what the audit trail records).
    fn changed(&self) -> bool {
        !matches!(self, Outcome::Unchanged | Outcome::NotRecorded)
    }

    fn count(self, report: &mut BookingReport) {
        match self {
            Outcome::Booked => report.booked += 1,
            Outcome::Adopted => report.adopted += 1,
            Outcome::Moved => report.moved += 1,
            Outcome::Rebooked => report.rebooked += 1,
            Outcome::Cancelled => report.cancelled += 1,
            Outcome::Unchanged => report.unchanged += 1,
            Outcome::NotRecorded => report.not_recorded += 1,
        }
    }
}

/// What the lecture should have booked; `None` = it should have no booking.
fn wanted(
    lecture: &Lecture,
    rules: &RuleBook,
    rooms: &BTreeMap<String, Room>,
    patterns: &BTreeMap<String, MeetingPattern>,
    sections: &BTreeMap<String, SectionInfo>,
    now: DateTime<Utc>,
) -> Option<Wanted> {
    if lecture.status != LectureStatus::Scheduled || lecture.end <= now {
        return None;
    }
    let recorder_id = lecture.recorder_id.clone()?;
    let rule = rules
        .for_course(&lecture.course_id, &lecture.department)
        .filter(|r| r.enabled)?;
    let section = sections.get(&lecture.section_id)?;
    let values = values(lecture, section, rooms, patterns);
    let folder_path: Vec<String> = rule
        .folder_template
        .render(&values)
        .split('/')
        .map(|part| part.trim().to_string())
        .filter(|part| !part.is_empty())
        .collect();
    if folder_path.is_empty() {
        return None;
    }
    Some(Wanted {
        name: rule.session_template.render(&values),
        folder_path,
        recorder_id,
    })
}

/// The placeholder values for a lecture (see `coursewire_teaching::template::PLACEHOLDERS`).
pub fn values(
    lecture: &Lecture,
    section: &SectionInfo,
    rooms: &BTreeMap<String, Room>,
    patterns: &BTreeMap<String, MeetingPattern>,
) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("course_code", section.course_code.clone()),
        ("course_name", section.course_name.clone()),
        ("section", section.section_name.clone()),
        ("department", lecture.department.clone()),
        (
            "term",
            patterns
                .get(&lecture.section_id)
                .map(|p| p.term.clone())
                .unwrap_or_default(),
        ),
        ("n", lecture.number.to_string()),
        ("date", lecture.local_date.format("%Y-%m-%d").to_string()),
        ("weekday", lecture.local_date.format("%A").to_string()),
        ("time", lecture.local_start.format("%H:%M").to_string()),
        (
            "room",
            rooms
                .get(&lecture.room_id)
                .map(|r| r.name.clone())
                .unwrap_or_else(|| lecture.room_id.clone()),
        ),
    ])
}

/// How far ahead the scheduled run keeps bookings in step.
pub const HORIZON: chrono::TimeDelta = chrono::TimeDelta::days(14);

#[async_trait::async_trait]
impl ScheduleHandler for Scheduler {
    async fn handle(&self, _input: Option<serde_json::Value>) -> Result<(), HandlerError> {
        let now = Utc::now();
        let report = self.sync_window(now, now + HORIZON, now).await?;
        tracing::info!(
            booked = report.booked,
            moved = report.moved,
            cancelled = report.cancelled,
            conflicts = report.conflicts.len(),
            failed = report.failed.len(),
            "bookings in step"
        );
        Ok(())
    }
}

/// `{"sections": ["…", …]}` (after an import), or `{}` for the scheduled window; answers the
/// report.
#[async_trait::async_trait]
impl InvokeHandler for Scheduler {
    async fn invoke(&self, event: serde_json::Value) -> Result<serde_json::Value, HandlerError> {
        let now = Utc::now();
        let report = match event.get("sections") {
            Some(sections) => {
                let sections: Vec<String> = serde_json::from_value(sections.clone())
                    .map_err(|e| format!("sections must be a list of Canvas section ids: {e}"))?;
                self.sync_sections(&sections, now).await?
            }
            None => self.sync_window(now, now + HORIZON, now).await?,
        };
        Ok(serde_json::to_value(report)?)
    }
}
