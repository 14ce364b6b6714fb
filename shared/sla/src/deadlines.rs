//! When a lecture's deadlines fall, which lectures a tick looks at, and what a lecture's state
//! means for each check. Pure: the monitor reads and writes, this decides.
//!
//! Every deadline is a fixed offset after the lecture's scheduled end (a scheduled recording
//! stops then): the grace for a recording, the department's caption SLA, twice that SLA. So
//! the lectures whose deadline at offset `o` fell in a tick's window `[from, to)` are those
//! ending in `[from - o, to - o)`: one read of the end-time index per offset, whatever the
//! catalog's size.

use chrono::{DateTime, TimeDelta, Utc};
use coursewire_incidents::IncidentKind;
use coursewire_panopto::RecorderState;
use coursewire_teaching::{LectureRow, LectureStatus, PublishingRule, RuleBook};

/// The monitor's clock settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadlines {
    /// How long after class end a recording may still appear before it is missing.
    pub grace: TimeDelta,
    /// How long before its start a lecture's recorder must be healthy.
    pub recorder_lead: TimeDelta,
    /// The longest lecture: bounds how far ahead the end index is read for running lectures.
    pub longest_lecture: TimeDelta,
    /// How far back the very first tick (no watermark yet) looks.
    pub first_lookback: TimeDelta,
    /// How far back a tick after a long outage looks at most (older deadlines are reported
    /// as skipped rather than paged days late).
    pub max_catch_up: TimeDelta,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            grace: TimeDelta::minutes(15),
            recorder_lead: TimeDelta::minutes(15),
            longest_lecture: TimeDelta::hours(4),
            first_lookback: TimeDelta::hours(1),
            max_catch_up: TimeDelta::hours(72),
        }
    }
}

/// The deadlines one tick answers for: those in `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Deadlines before `from` that an outage longer than `max_catch_up` left unchecked.
    pub skipped_from: Option<DateTime<Utc>>,
}

impl Window {
    /// The window from the last successful tick's end (the watermark) to `now`; `None` when
    /// there is nothing new (an overlapping tick already went this far, or this host's
    /// clock is behind the one that did).
    pub fn since(
        watermark: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        d: &Deadlines,
    ) -> Option<Self> {
        let earliest = now - d.max_catch_up;
        let (from, skipped_from) = match watermark {
            None => (now - d.first_lookback, None),
            Some(mark) if mark < earliest => (earliest, Some(mark)),
            Some(mark) => (mark, None),
        };
        (from < now).then_some(Self {
            from,
            to: now,
            skipped_from,
        })
    }

    /// The lecture ends whose deadline `offset` after the end falls in this window.
    pub fn ends(&self, offset: TimeDelta) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.from - offset, self.to - offset)
    }
}

/// What the monitor checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    /// No recording `grace` after class end.
    MissingRecording,
    /// Captions still missing at the SLA (`escalated`: at twice the SLA).
    Captions { escalated: bool },
    /// The recorder is faulted or disconnected while the lecture is due.
    RecorderDown,
}

impl Check {
    pub fn kind(self) -> IncidentKind {
        match self {
            Check::MissingRecording => IncidentKind::MissingRecording,
            Check::Captions { escalated: false } => IncidentKind::CaptionSlaMissed,
            Check::Captions { escalated: true } => IncidentKind::CaptionSlaEscalated,
            Check::RecorderDown => IncidentKind::RecorderDown,
        }
    }

    /// The check behind an incident kind the monitor owns (`None` for the others').
    pub fn of_kind(kind: IncidentKind) -> Option<Self> {
        match kind {
            IncidentKind::MissingRecording => Some(Check::MissingRecording),
            IncidentKind::CaptionSlaMissed => Some(Check::Captions { escalated: false }),
            IncidentKind::CaptionSlaEscalated => Some(Check::Captions { escalated: true }),
            IncidentKind::RecorderDown => Some(Check::RecorderDown),
            IncidentKind::PublishFailed | IncidentKind::UnmatchedRecording => None,
        }
    }
}

/// What is known of a lecture's recording, from the poller's last sighting, the publish
/// workflows and (before anything is paged) Panopto itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// The session that recorded (or was booked to record) the lecture.
    pub session_id: Option<String>,
    /// A recording started: the session is recording, processing or complete.
    pub recorded: bool,
    pub captions: bool,
    pub recorder: Option<RecorderState>,
}

/// The rule a lecture is held to, when the monitor answers for it: a scheduled lecture in a
/// room with a recorder, under a rule that publishes. A lecture nobody expects recorded
/// never pages.
pub fn rule_of<'a>(row: &LectureRow, rules: &'a RuleBook) -> Option<&'a PublishingRule> {
    let lecture = &row.lecture;
    if lecture.status != LectureStatus::Scheduled || lecture.recorder_id.is_none() {
        return None;
    }
    rules
        .for_course(&lecture.course_id, &lecture.department)
        .filter(|rule| rule.enabled)
}

/// The caption SLA of a rule.
pub fn caption_sla(rule: &PublishingRule) -> TimeDelta {
    TimeDelta::hours(i64::from(rule.caption_sla_hours))
}

/// Whether the lecture is failing `check` at `now`.
pub fn failing(
    check: Check,
    row: &LectureRow,
    evidence: &Evidence,
    d: &Deadlines,
    now: DateTime<Utc>,
) -> bool {
    let lecture = &row.lecture;
    match check {
        Check::MissingRecording => !evidence.recorded,
        Check::Captions { .. } => evidence.recorded && !evidence.captions,
        Check::RecorderDown => {
            lecture.start - d.recorder_lead <= now
                && now < lecture.end
                && evidence.recorder.is_some_and(|state| !state.is_healthy())
        }
    }
}

/// Why an open incident of `check` on this lecture is over, if it is.
pub fn resolution(
    check: Check,
    row: &LectureRow,
    evidence: &Evidence,
    now: DateTime<Utc>,
) -> Option<String> {
    if row.lecture.status == LectureStatus::Cancelled {
        return Some("the lecture was cancelled in the catalog".into());
    }
    match check {
        Check::MissingRecording if evidence.recorded => Some(match &evidence.session_id {
            Some(id) => format!("the recording appeared (session {id})"),
            None => "the recording appeared".into(),
        }),
        Check::Captions { .. } if evidence.captions => Some("captions are available".into()),
        Check::RecorderDown => match evidence.recorder {
            Some(state) if state.is_healthy() => {
                Some(format!("the recorder is {} again", state.as_str()))
            }
            _ if now >= row.lecture.end => {
                Some("the lecture ended; if nothing was recorded, missing_recording follows".into())
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, NaiveTime};
    use coursewire_teaching::Lecture;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn row(status: LectureStatus) -> LectureRow {
        LectureRow {
            lecture: Lecture {
                section_id: "901".into(),
                course_id: "42".into(),
                department: "BIO".into(),
                local_date: NaiveDate::from_ymd_opt(2026, 10, 27).unwrap(),
                meeting: 1,
                local_start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                start: at("2026-10-27T13:00:00Z"),
                end: at("2026-10-27T13:50:00Z"),
                room_id: "SCI-101".into(),
                recorder_id: Some("rr-1".into()),
                number: 8,
                time_zone: chrono_tz::America::New_York,
                status,
            },
            booking: None,
            booking_error: None,
            observed: None,
        }
    }

    #[test]
    fn a_tick_carries_on_from_the_watermark_and_never_goes_back() {
        let d = Deadlines::default();
        let now = at("2026-10-27T14:10:00Z");
        let first = Window::since(None, now, &d).unwrap();
        assert_eq!(first.from, now - d.first_lookback);
        // A missed tick: the next one covers both minutes.
        let late = Window::since(Some(now - TimeDelta::minutes(2)), now, &d).unwrap();
        assert_eq!((late.from, late.to), (now - TimeDelta::minutes(2), now));
        // An overlapping tick, or a clock behind the watermark: nothing to do.
        assert_eq!(Window::since(Some(now), now, &d), None);
        assert_eq!(
            Window::since(Some(now + TimeDelta::seconds(5)), now, &d),
            None
        );
        // After a long outage the window is capped, and says what it skipped.
        let mark = now - TimeDelta::days(10);
        let capped = Window::since(Some(mark), now, &d).unwrap();
        assert_eq!(capped.from, now - d.max_catch_up);
        assert_eq!(capped.skipped_from, Some(mark));
        // Ends whose grace deadline fell in the window.
        assert_eq!(
            late.ends(d.grace),
            (at("2026-10-27T13:53:00Z"), at("2026-10-27T13:55:00Z"))
        );
    }

    #[test]
    fn checks_fail_and_resolve_on_the_evidence() {
        let d = Deadlines::default();
        let scheduled = row(LectureStatus::Scheduled);
        let nothing = Evidence::default();
        let recorded = Evidence {
            session_id: Some("s-1".into()),
            recorded: true,
            ..Evidence::default()
        };
        let after = at("2026-10-27T14:06:00Z");
        assert!(failing(
            Check::MissingRecording,
            &scheduled,
            &nothing,
            &d,
            after
        ));
        assert!(!failing(
            Check::MissingRecording,
            &scheduled,
            &recorded,
            &d,
            after
        ));
        // Captions are only late for a lecture that was recorded.
        let late = Check::Captions { escalated: false };
        assert!(!failing(late, &scheduled, &nothing, &d, after));
        assert!(failing(late, &scheduled, &recorded, &d, after));
        // A recorder down matters from the lead before the start to the end.
        let down = Evidence {
            recorder: Some(RecorderState::Disconnected),
            ..Evidence::default()
        };
        for (time, expected) in [
            ("2026-10-27T12:40:00Z", false),
            ("2026-10-27T12:46:00Z", true),
            ("2026-10-27T13:49:00Z", true),
            ("2026-10-27T13:50:00Z", false),
        ] {
            assert_eq!(
                failing(Check::RecorderDown, &scheduled, &down, &d, at(time)),
                expected,
                "{time}"
            );
        }
        assert_eq!(
            resolution(Check::MissingRecording, &scheduled, &recorded, after).as_deref(),
            Some("the recording appeared (session s-1)")
        );
        assert_eq!(
            resolution(Check::MissingRecording, &scheduled, &nothing, after),
            None
        );
        let cancelled = row(LectureStatus::Cancelled);
        assert!(
            resolution(late, &cancelled, &recorded, after)
                .unwrap()
                .contains("cancelled")
        );
        let during = at("2026-10-27T13:20:00Z");
        assert_eq!(
            resolution(Check::RecorderDown, &scheduled, &down, during),
            None
        );
        let back = Evidence {
            recorder: Some(RecorderState::Stopped),
            ..Evidence::default()
        };
        assert!(resolution(Check::RecorderDown, &scheduled, &back, during).is_some());
        assert!(resolution(Check::RecorderDown, &scheduled, &down, after).is_some());
        for kind in IncidentKind::ALL {
            if let Some(check) = Check::of_kind(kind) {
                assert_eq!(check.kind(), kind);
            }
        }
    }

    #[test]
    fn only_lectures_someone_expects_recorded_are_watched() {
        let rule = |enabled: bool| -> PublishingRule {
            serde_json::from_value(serde_json::json!({
                "scope": "department", "id": "BIO",
                "folder_template": "{course_code}",
                "session_template": "{course_code} Lecture {n}",
                "caption_provider": "Panopto", "caption_sla_hours": 24,
                "module_template": "Recordings", "access": "section_roster",
                "post": "before_captions", "enabled": enabled
            }))
            .unwrap()
        };
        let on = RuleBook::new([rule(true)]);
        let off = RuleBook::new([rule(false)]);
        let scheduled = row(LectureStatus::Scheduled);
        assert_eq!(
            rule_of(&scheduled, &on).map(caption_sla),
            Some(TimeDelta::hours(24))
        );
        assert!(
            rule_of(&scheduled, &off).is_none(),
            "a disabled rule publishes nothing"
        );
        assert!(rule_of(&row(LectureStatus::Cancelled), &on).is_none());
        let mut unrecordable = row(LectureStatus::Scheduled);
        unrecordable.lecture.recorder_id = None;
        assert!(
            rule_of(&unrecordable, &on).is_none(),
            "a room without a recorder"
        );
        let mut other = row(LectureStatus::Scheduled);
        other.lecture.department = "CHEM".into();
        assert!(rule_of(&other, &on).is_none(), "no rule");
    }
}
