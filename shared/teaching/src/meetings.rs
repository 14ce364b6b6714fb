//! When a section meets: a weekly pattern over a term, the dates it does not meet, and one-off
//! extra meetings.

use chrono::{NaiveDate, NaiveTime, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A section's meeting pattern, as a registrar exports it. Times are local to `time_zone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingPattern {
    /// The Canvas section id, as the change bus carries it (global form).
    pub section_id: String,
    /// The section's Canvas course, looked up in the Canvas catalog on import (not copied
    /// from the registrar's file).
    pub course_id: String,
    /// The department whose publishing rule applies unless the course has its own.
    pub department: String,
    pub room_id: String,
    /// Monday first, no repeats.
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
    /// First and last day of teaching (inclusive).
    pub term_start: NaiveDate,
    pub term_end: NaiveDate,
    /// The term's name, for naming (`{term}`), e.g. `Fall 2026`.
    pub term: String,
    pub time_zone: Tz,
    /// Days the section does not meet: its cancelled meetings and the institution's holidays.
    pub cancelled: BTreeSet<NaiveDate>,
    pub extra: Vec<ExtraMeeting>,
}

/// A one-off meeting outside the weekly pattern (a review session, a make-up class).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExtraMeeting {
    pub date: NaiveDate,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub room_id: String,
}
