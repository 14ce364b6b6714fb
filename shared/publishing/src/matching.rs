//! Tying a Panopto session to its lecture: the same recorder, and times that overlap once a
//! tolerance for late starts and early stops is allowed. Exactly one lecture, or none is
//! chosen: a session that matches no lecture or several is held with the reason.

use chrono::{DateTime, TimeDelta, Utc};
use coursewire_teaching::{Lecture, LectureStatus};

/// Late starts and early stops allowed on either side of a lecture.
pub const TOLERANCE: TimeDelta = TimeDelta::minutes(15);

/// What Panopto says of the session's capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub recorder_ids: Vec<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Match<'a> {
    One(&'a Lecture),
    Unmatched(String),
}

/// The `[from, to)` window of lecture **end** times that can match `capture` (for the
/// catalog's end-time index; `longest` bounds a lecture's length).
pub fn end_window(capture: &Capture, longest: TimeDelta) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        capture.start - TOLERANCE,
        capture.end + TOLERANCE + longest + TimeDelta::seconds(1),
    )
}

/// The one lecture among `lectures` that `capture` is of.
pub fn match_lecture<'a>(capture: &Capture, lectures: &'a [Lecture]) -> Match<'a> {
    let recorders = if capture.recorder_ids.is_empty() {
        "no recorder".to_string()
    } else {
        capture.recorder_ids.join(", ")
    };
    let candidates: Vec<&Lecture> = lectures
        .iter()
        .filter(|l| l.status == LectureStatus::Scheduled)
        .filter(|l| {
            l.recorder_id
                .as_ref()
                .is_some_and(|r| capture.recorder_ids.contains(r))
        })
        .filter(|l| l.start - TOLERANCE <= capture.end && capture.start <= l.end + TOLERANCE)
        .collect();
    match candidates.as_slice() {
        [one] => Match::One(one),
        [] => Match::Unmatched(format!(
            "no lecture on recorder {recorders} between {} and {} (±{} min)",
            capture.start.format("%Y-%m-%d %H:%M UTC"),
            capture.end.format("%H:%M UTC"),
            TOLERANCE.num_minutes()
        )),
        many => Match::Unmatched(format!(
            "{} lectures on recorder {recorders} overlap {} to {}: {}",
            many.len(),
            capture.start.format("%Y-%m-%d %H:%M UTC"),
            capture.end.format("%H:%M UTC"),
            many.iter()
                .map(|l| format!("{}/{}", l.section_id, l.slot()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, NaiveTime};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn lecture(section: &str, recorder: &str, start: &str, end: &str) -> Lecture {
        Lecture {
            section_id: section.into(),
            course_id: "42".into(),
            department: "BIO".into(),
            local_date: NaiveDate::from_ymd_opt(2026, 10, 27).unwrap(),
            meeting: 1,
            local_start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            start: at(start),
            end: at(end),
            room_id: "B-204".into(),
            recorder_id: Some(recorder.into()),
            number: 1,
            time_zone: chrono_tz::UTC,
            status: LectureStatus::Scheduled,
        }
    }

    fn capture(recorder: &str, start: &str, end: &str) -> Capture {
        Capture {
            recorder_ids: vec![recorder.into()],
            start: at(start),
            end: at(end),
        }
    }

    #[test]
    fn late_start_and_early_stop_still_match_on_the_same_recorder() {
        let lectures = [
            lecture(
                "901",
                "rec-1",
                "2026-10-27T09:00:00Z",
                "2026-10-27T10:00:00Z",
            ),
            lecture(
                "902",
                "rec-2",
                "2026-10-27T09:00:00Z",
                "2026-10-27T10:00:00Z",
            ),
            lecture(
                "903",
                "rec-1",
                "2026-10-27T11:00:00Z",
                "2026-10-27T12:00:00Z",
            ),
        ];
        let late = capture("rec-1", "2026-10-27T09:10:00Z", "2026-10-27T09:50:00Z");
        assert!(matches!(match_lecture(&late, &lectures), Match::One(l) if l.section_id == "901"));
        let after_class = capture("rec-1", "2026-10-27T10:10:00Z", "2026-10-27T10:40:00Z");
        assert!(
            matches!(match_lecture(&after_class, &lectures), Match::One(l) if l.section_id == "901"),
            "within the tolerance after the end"
        );
    }

    #[test]
    fn none_or_two_is_unmatched_with_the_reason() {
        let lectures = [
            lecture(
                "901",
                "rec-1",
                "2026-10-27T09:00:00Z",
                "2026-10-27T10:00:00Z",
            ),
            lecture(
                "904",
                "rec-1",
                "2026-10-27T10:05:00Z",
                "2026-10-27T11:00:00Z",
            ),
        ];
        let none = capture("rec-1", "2026-10-27T14:00:00Z", "2026-10-27T15:00:00Z");
        let Match::Unmatched(why) = match_lecture(&none, &lectures) else {
            panic!("matched")
        };
        assert!(why.starts_with("no lecture on recorder rec-1"), "{why}");
        let straddles = capture("rec-1", "2026-10-27T09:30:00Z", "2026-10-27T10:30:00Z");
        let Match::Unmatched(why) = match_lecture(&straddles, &lectures) else {
            panic!("matched")
        };
        assert!(
            why.contains("2 lectures") && why.contains("904/2026-10-27#1"),
            "{why}"
        );
        let mut cancelled = lectures[0].clone();
        cancelled.status = LectureStatus::Cancelled;
        let on_time = capture("rec-1", "2026-10-27T09:00:00Z", "2026-10-27T09:40:00Z");
        assert!(matches!(
            match_lecture(&on_time, std::slice::from_ref(&cancelled)),
            Match::Unmatched(_)
        ));
    }
}
