//! "Why is lecture X missing?": for a section (or every section of a course) and a date, each
//! lecture's schedule and room, its booking, every audit record in time order (bookings,
//! polls and the recorder and session states they saw, incidents) and a one-line verdict.
//!
//! Cost: one Query for the section's lectures (or one read of the meeting patterns for a
//! course) and one Query per lecture that day, run concurrently.

use crate::model::{AuditRecord, Subject};
use crate::ports::{AuditError, AuditTrail};
use crate::verdict::{Verdict, verdict};
use chrono::{DateTime, NaiveDate, Utc};
use coursewire_runtime::service::ServiceError;
use coursewire_teaching::{Booking, LectureRow, TeachingStore};
use futures::future::try_join_all;
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::Arc;

/// Which lectures to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Section(String),
    /// Every section of a Canvas course.
    Course(String),
}

#[derive(Debug, thiserror::Error)]
pub enum WhyError {
    #[error("the teaching catalog: {0}")]
    Catalog(#[from] ServiceError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// One lecture explained.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub subject: Subject,
    pub course_id: String,
    pub section_id: String,
    pub slot: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub time_zone: String,
    pub room_id: String,
    pub recorder_id: Option<String>,
    pub cancelled: bool,
    pub booking: Option<Booking>,
    pub booking_error: Option<String>,
    pub timeline: Vec<AuditRecord>,
    pub verdict: Verdict,
}

impl Explanation {
    fn new(row: &LectureRow, timeline: Vec<AuditRecord>, now: DateTime<Utc>) -> Self {
        let lecture = &row.lecture;
        Self {
            subject: Subject::lecture(&lecture.section_id, lecture.slot()),
            course_id: lecture.course_id.clone(),
            section_id: lecture.section_id.clone(),
            slot: lecture.slot(),
            start: lecture.start,
            end: lecture.end,
            time_zone: lecture.time_zone.name().to_string(),
            room_id: lecture.room_id.clone(),
            recorder_id: lecture.recorder_id.clone(),
            cancelled: lecture.status == coursewire_teaching::LectureStatus::Cancelled,
            booking: row.booking.clone(),
            booking_error: row.booking_error.clone(),
            verdict: verdict(row, &timeline, now),
            timeline,
        }
    }

    /// The explanation as a person reads it: a heading, the verdict, then the timeline in
    /// the lecture's local time.
    pub fn text(&self) -> String {
        let zone: chrono_tz::Tz = self.time_zone.parse().unwrap_or(chrono_tz::UTC);
        let local = |t: DateTime<Utc>| t.with_timezone(&zone);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} (course {}): {}-{} {} in room {}, recorder {}",
            self.subject,
            self.course_id,
            local(self.start).format("%a %Y-%m-%d %H:%M"),
            local(self.end).format("%H:%M"),
            self.time_zone,
            self.room_id,
            self.recorder_id.as_deref().unwrap_or("none"),
        );
        let _ = writeln!(out, "  verdict: {}", self.verdict.line);
        match &self.booking {
            Some(b) => {
                let _ = writeln!(
                    out,
                    "  booking: session {} on recorder {}",
                    b.session_id, b.recorder_id
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  booking: none{}",
                    self.booking_error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                );
            }
        }
        if self.timeline.is_empty() {
            let _ = writeln!(out, "  (no audit records)");
        }
        for record in &self.timeline {
            let actor = match &record.actor.principal {
                Some(p) => format!("{} ({p})", record.actor.function),
                None => record.actor.function.clone(),
            };
            let _ = writeln!(
                out,
                "  {}  {:<20} {:<9} {}",
                local(record.at).format("%H:%M:%S"),
                actor,
                record.outcome.as_str(),
                record.detail
            );
        }
        out
    }
}

pub struct WhyMissing {
    teaching: Arc<dyn TeachingStore>,
    trail: Arc<dyn AuditTrail>,
}

impl WhyMissing {
    pub fn new(teaching: Arc<dyn TeachingStore>, trail: Arc<dyn AuditTrail>) -> Self {
        Self { teaching, trail }
    }

    /// Every lecture of `scope` on the local date `date`, explained as of `now`, in start order.
    pub async fn explain(
        &self,
        scope: &Scope,
        date: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Vec<Explanation>, WhyError> {
        let sections = match scope {
            Scope::Section(id) => vec![id.clone()],
            Scope::Course(course) => self
                .teaching
                .patterns()
                .await?
                .into_values()
                .filter(|p| &p.course_id == course)
                .map(|p| p.section_id)
                .collect(),
        };
        let rows: Vec<LectureRow> = try_join_all(
            sections
                .iter()
                .map(|section| self.teaching.lectures_of(section)),
        )
        .await?
        .into_iter()
        .flatten()
        .filter(|row| row.lecture.local_date == date)
        .collect();
        let subjects: Vec<Subject> = rows
            .iter()
            .map(|row| Subject::lecture(&row.lecture.section_id, row.lecture.slot()))
            .collect();
        let timelines = try_join_all(subjects.iter().map(|s| self.trail.timeline(s))).await?;
        let mut explained: Vec<Explanation> = rows
            .iter()
            .zip(timelines)
            .map(|(row, timeline)| Explanation::new(row, timeline, now))
            .collect();
        explained.sort_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then_with(|| a.section_id.cmp(&b.section_id))
        });
        Ok(explained)
    }
}
