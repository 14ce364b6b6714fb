//! Meeting patterns expanded into lectures: one row per meeting, with its instants in UTC, so
//! monitors ask "which lectures end in this window" without knowing about patterns or zones.

use crate::meetings::MeetingPattern;
use crate::rooms::Room;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One meeting of a section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lecture {
    pub section_id: String,
    /// The section's Canvas course and department, for the rule that governs it.
    pub course_id: String,
    pub department: String,
    /// The local date and, with `meeting`, the lecture's identity within its section.
    pub local_date: NaiveDate,
    /// 1 for the section's first meeting of that day, 2 for a second one, ...: a meeting
    /// whose time changes stays the same lecture (its booking is moved, not replaced).
    pub meeting: u32,
    pub local_start: NaiveTime,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub room_id: String,
    /// The room's recorder when the lecture was expanded; `None` = nothing can record it.
    pub recorder_id: Option<String>,
    /// 1 for the section's first lecture of the term, counting held lectures only.
    pub number: u32,
    pub time_zone: Tz,
    pub status: LectureStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LectureStatus {
    Scheduled,
    /// It was scheduled and no longer is (a holiday added, a pattern changed): kept so its
    /// booking is cancelled and the audit can say why nothing was recorded.
    Cancelled,
}

impl Lecture {
    /// The lecture's id within its section: `2026-10-27#1` (the day's first meeting).
    pub fn slot(&self) -> String {
        format!("{}#{}", self.local_date.format("%Y-%m-%d"), self.meeting)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("room {0} is not in the catalog")]
    UnknownRoom(String),
}

/// Every lecture of a pattern, in date order: the weekly meetings on term days that are not
/// cancelled, plus the extra meetings, numbered in order.
///
/// Local times are turned into instants in the pattern's zone for each date separately, so a
/// 09:00 lecture stays at 09:00 local across a DST change (its UTC instant moves). A local
/// time that does not exist on a spring-forward day is taken as the same wall-clock time an
/// hour later; one that occurs twice on a fall-back day is taken at its first occurrence.
pub fn expand(
    pattern: &MeetingPattern,
    rooms: &BTreeMap<String, Room>,
) -> Result<Vec<Lecture>, ExpandError> {
    let recorder = |room_id: &str| {
        rooms
            .get(room_id)
            .map(|room| room.recorder_id.clone())
            .ok_or_else(|| ExpandError::UnknownRoom(room_id.to_string()))
    };
    let mut meetings: BTreeMap<(NaiveDate, NaiveTime), (NaiveTime, &str)> = BTreeMap::new();
    let mut date = pattern.term_start;
    while date <= pattern.term_end {
        if pattern.days.contains(&date.weekday()) && !pattern.cancelled.contains(&date) {
            meetings.insert((date, pattern.start), (pattern.end, &pattern.room_id));
        }
        let Some(next) = date.succ_opt() else { break };
        date = next;
    }
    for extra in &pattern.extra {
        meetings.insert((extra.date, extra.start), (extra.end, &extra.room_id));
    }
    let mut lectures: Vec<Lecture> = Vec::with_capacity(meetings.len());
    for (number, ((date, start), (end, room_id))) in meetings.into_iter().enumerate() {
        let meeting = match lectures.last() {
            Some(previous) if previous.local_date == date => previous.meeting + 1,
            _ => 1,
        };
        lectures.push(Lecture {
            section_id: pattern.section_id.clone(),
            course_id: pattern.course_id.clone(),
            department: pattern.department.clone(),
            local_date: date,
            meeting,
            local_start: start,
            start: instant(pattern.time_zone, date.and_time(start)),
            end: instant(pattern.time_zone, date.and_time(end)),
            room_id: room_id.to_string(),
            recorder_id: recorder(room_id)?,
            number: number as u32 + 1,
            time_zone: pattern.time_zone,
            status: LectureStatus::Scheduled,
        });
    }
    Ok(lectures)
}

/// A local wall-clock time in `zone` as an instant (see [`expand`] for gaps and overlaps).
pub fn instant(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    // A DST gap is at most a few hours (usually one); step over it.
    for _ in 0..4 {
        if let Some(t) = probe.and_local_timezone(zone).earliest() {
            return t.with_timezone(&Utc);
        }
        probe += TimeDelta::hours(1);
    }
    local.and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meetings::ExtraMeeting;
    use chrono::Weekday;
    use std::collections::BTreeSet;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn time(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    fn rooms() -> BTreeMap<String, Room> {
        let room = |id: &str, recorder: Option<&str>| Room {
            id: id.into(),
            building: "Science".into(),
            name: id.into(),
            capacity: 120,
            time_zone: chrono_tz::America::New_York,
            recorder_id: recorder.map(str::to_string),
        };
        BTreeMap::from([
            ("SCI-101".to_string(), room("SCI-101", Some("rr-1"))),
            ("SCI-202".to_string(), room("SCI-202", None)),
        ])
    }

    fn pattern() -> MeetingPattern {
        MeetingPattern {
            section_id: "21070000000000101".into(),
            course_id: "21070000000000042".into(),
            department: "BIO".into(),
            room_id: "SCI-101".into(),
            days: vec![Weekday::Tue, Weekday::Thu],
            start: time("09:00"),
            end: time("10:15"),
            // US DST ends on Sunday 2026-11-01.
            term_start: date("2026-10-20"),
            term_end: date("2026-11-05"),
            term: "Fall 2026".into(),
            time_zone: chrono_tz::America::New_York,
            cancelled: BTreeSet::from([date("2026-10-29")]),
            extra: vec![ExtraMeeting {
                date: date("2026-10-31"),
                start: time("13:00"),
                end: time("15:00"),
                room_id: "SCI-202".into(),
            }],
        }
    }

    #[test]
    fn a_lecture_keeps_its_local_time_across_the_dst_change() {
        let lectures = expand(&pattern(), &rooms()).unwrap();
        let slots: Vec<_> = lectures.iter().map(Lecture::slot).collect();
        assert_eq!(
            slots,
            [
                "2026-10-20#1",
                "2026-10-22#1",
                "2026-10-27#1",
                "2026-10-31#1",
                "2026-11-03#1",
                "2026-11-05#1",
            ]
        );
        // 09:00 EDT is 13:00 UTC; 09:00 EST is 14:00 UTC.
        assert_eq!(lectures[2].start.to_rfc3339(), "2026-10-27T13:00:00+00:00");
        assert_eq!(lectures[4].start.to_rfc3339(), "2026-11-03T14:00:00+00:00");
        assert_eq!(lectures[4].end.to_rfc3339(), "2026-11-03T15:15:00+00:00");
        let numbers: Vec<_> = lectures.iter().map(|l| l.number).collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn cancelled_days_and_rooms_without_recorders_are_respected() {
        let lectures = expand(&pattern(), &rooms()).unwrap();
        assert!(lectures.iter().all(|l| l.local_date != date("2026-10-29")));
        let extra = lectures.iter().find(|l| l.room_id == "SCI-202").unwrap();
        assert_eq!(extra.recorder_id, None);
        assert!(
            lectures
                .iter()
                .filter(|l| l.room_id == "SCI-101")
                .all(|l| l.recorder_id.as_deref() == Some("rr-1"))
        );
    }

    #[test]
    fn an_unknown_room_is_an_error() {
        let mut p = pattern();
        p.room_id = "NOPE-1".into();
        assert_eq!(
            expand(&p, &rooms()),
            Err(ExpandError::UnknownRoom("NOPE-1".into()))
        );
    }

    #[test]
    fn times_in_a_dst_gap_or_overlap_resolve_predictably() {
        let zone = chrono_tz::America::New_York;
        // 2027-03-14 02:30 does not exist in New York: taken as 03:30 EDT.
        let gap = instant(zone, date("2027-03-14").and_time(time("02:30")));
        assert_eq!(gap.to_rfc3339(), "2027-03-14T07:30:00+00:00");
        // 2026-11-01 01:30 happens twice: the first (EDT) is taken.
        let overlap = instant(zone, date("2026-11-01").and_time(time("01:30")));
        assert_eq!(overlap.to_rfc3339(), "2026-11-01T05:30:00+00:00");
    }
}
