//! The one-line verdict on a lecture from its timeline, e.g. "recorder in room B-204 was
//! Disconnected from 09:55 to 11:20; the session never started recording; incident
//! missing_recording opened 11:05". Pure: times are the lecture's local wall clock.

use crate::model::{Action, AuditRecord, Outcome};
use chrono::{DateTime, Utc};
use coursewire_teaching::{LectureRow, LectureStatus};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Whether a complete recording exists.
    pub recorded: bool,
    pub line: String,
}

/// A recorder outage: its state, since when, until when (`None`: still at the last poll).
type Outage<'a> = (&'a str, DateTime<Utc>, Option<DateTime<Utc>>);

/// How far along the capture a Panopto session state is.
fn stage(state: &str) -> u8 {
    match state {
        "Recording" | "Broadcasting" => 1,
        "Processing" => 2,
        "Complete" => 3,
        _ => 0,
    }
}

pub fn verdict(row: &LectureRow, records: &[AuditRecord], now: DateTime<Utc>) -> Verdict {
    let lecture = &row.lecture;
    let clock = |t: DateTime<Utc>| {
        t.with_timezone(&lecture.time_zone)
            .format("%H:%M")
            .to_string()
    };
    let missing = |parts: Vec<String>| Verdict {
        recorded: false,
        line: parts.join("; "),
    };
    if lecture.status == LectureStatus::Cancelled {
        return missing(vec![
            "cancelled in the catalog: nothing was to be recorded".into(),
        ]);
    }

    // The furthest the session got, and when it was first seen there.
    let mut furthest: Option<(&str, DateTime<Utc>)> = None;
    let mut captions = false;
    let mut polls = 0;
    let mut outages: Vec<Outage> = Vec::new();
    let mut last_poll = None;
    for record in records {
        let Action::Polled {
            session_state,
            recorder_state,
            recorder_healthy,
            captions: seen_captions,
            ..
        } = &record.action
        else {
            continue;
        };
        polls += 1;
        last_poll = Some(record.at);
        captions |= *seen_captions;
        if let Some(state) = session_state.as_deref()
            && furthest.is_none_or(|(best, _)| stage(state) > stage(best))
        {
            furthest = Some((state, record.at));
        }
        let open = outages.last().is_some_and(|(_, _, to)| to.is_none());
        match (recorder_healthy, open) {
            (Some(false), false) => {
                outages.push((
                    recorder_state.as_deref().unwrap_or("faulted"),
                    record.at,
                    None,
                ));
            }
            (Some(true), true) => {
                if let Some(last) = outages.last_mut() {
                    last.2 = Some(record.at);
                }
            }
            _ => {}
        }
    }

    if let Some(("Complete", at)) = furthest {
        let mut line = format!("recorded: the session was complete at {}", clock(at));
        if captions {
            line.push_str("; captions available");
        }
        if let Some(publishing) = publishing(records, &clock) {
            line.push_str("; ");
            line.push_str(&publishing);
        }
        return Verdict {
            recorded: true,
            line,
        };
    }
    if lecture.start > now {
        return missing(vec![format!(
            "not held yet (starts {})",
            clock(lecture.start)
        )]);
    }

    let mut parts = Vec::new();
    // The registrar's room id (`B-204`) is what people on campus call the room.
    let room_name = lecture.room_id.as_str();
    for (state, from, to) in &outages {
        parts.push(match to {
            Some(to) => format!(
                "recorder in room {room_name} was {state} from {} to {}",
                clock(*from),
                clock(*to)
            ),
            None => format!(
                "recorder in room {room_name} was {state} from {}, still at the last poll ({})",
                clock(*from),
                clock(last_poll.unwrap_or(*from))
            ),
        });
    }
    let booked = row.booking.is_some()
        || records
            .iter()
            .any(|r| matches!(r.action, Action::Booked { .. }));
    if !booked {
        let why = row
            .booking_error
            .clone()
            .or_else(|| {
                lecture
                    .recorder_id
                    .is_none()
                    .then(|| "the room has no recorder".into())
            })
            .unwrap_or_else(|| "the scheduler has not booked it".into());
        parts.push(format!("no recording was booked: {why}"));
    } else if polls == 0 {
        parts.push("no poll looked at the lecture (is panopto-poller running?)".into());
    } else {
        parts.push(match furthest {
            None => "no session was created".into(),
            Some((state, at)) if stage(state) == 0 => {
                format!(
                    "the session never started recording (still {state} at {})",
                    clock(at)
                )
            }
            Some((state, at)) => format!(
                "the session got no further than {state} (since {})",
                clock(at)
            ),
        });
    }
    for record in records {
        match &record.action {
            Action::IncidentOpened { kind, .. } => {
                parts.push(format!("incident {kind} opened {}", clock(record.at)));
            }
            Action::IncidentResolved { kind, .. } => {
                parts.push(format!("incident {kind} resolved {}", clock(record.at)));
            }
            _ => {}
        }
    }
    missing(parts)
}

/// Where the publish workflow got, from its step records: published, needs attention, or
/// under way (`None`: it has not started).
fn publishing(records: &[AuditRecord], clock: &dyn Fn(DateTime<Utc>) -> String) -> Option<String> {
    let steps: Vec<(&str, &AuditRecord)> = records
        .iter()
        .filter_map(|r| match &r.action {
            Action::WorkflowStep { step, .. } => Some((step.as_str(), r)),
            _ => None,
        })
        .collect();
    if let Some((_, done)) = steps
        .iter()
        .find(|(step, r)| *step == "audit" && r.outcome == Outcome::Done)
    {
        return Some(format!("published at {}", clock(done.at)));
    }
    if let Some((step, failed)) = steps
        .iter()
        .rev()
        .find(|(_, r)| r.outcome == Outcome::Failed)
    {
        return Some(format!(
            "publishing stopped at {step} ({}): {}",
            clock(failed.at),
            failed.detail
        ));
    }
    steps
        .last()
        .map(|(step, r)| format!("publishing under way (last step {step} at {})", clock(r.at)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Actor, Subject};
    use chrono::{NaiveDate, NaiveTime, TimeZone};
    use coursewire_teaching::{Booking, Lecture};

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        // 2026-10-27 in New York is UTC-4.
        Utc.with_ymd_and_hms(2026, 10, 27, h + 4, m, 0).unwrap()
    }

    fn row(booked: bool) -> LectureRow {
        LectureRow {
            lecture: Lecture {
                section_id: "901".into(),
                course_id: "77".into(),
                department: "PHYS".into(),
                local_date: NaiveDate::from_ymd_opt(2026, 10, 27).unwrap(),
                meeting: 1,
                local_start: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
                start: at(10, 0),
                end: at(11, 15),
                room_id: "B-204".into(),
                recorder_id: Some("rec-1".into()),
                number: 12,
                time_zone: chrono_tz::America::New_York,
                status: LectureStatus::Scheduled,
            },
            booking: booked.then(|| Booking {
                session_id: "s-1".into(),
                recorder_id: "rec-1".into(),
                folder_id: "f".into(),
                start: at(10, 0),
                end: at(11, 15),
            }),
            booking_error: None,
            observed: None,
        }
    }

    fn polled(
        t: DateTime<Utc>,
        session: Option<&str>,
        recorder: &str,
        healthy: bool,
    ) -> AuditRecord {
        AuditRecord::new(
            Subject::lecture("901", "2026-10-27#1"),
            &t.to_rfc3339(),
            t,
            Actor::function("panopto-poller"),
            Action::Polled {
                session_id: "s-1".into(),
                session_state: session.map(str::to_string),
                recorder_id: Some("rec-1".into()),
                recorder_state: Some(recorder.into()),
                recorder_healthy: Some(healthy),
                captions: false,
            },
            Outcome::Observed,
            "",
        )
    }

    #[test]
    fn a_disconnected_recorder_is_named_with_its_times_and_the_incident() {
        let records = vec![
            polled(at(9, 45), Some("Scheduled"), "Idle", true),
            polled(at(9, 55), Some("Scheduled"), "Disconnected", false),
            AuditRecord::new(
                Subject::lecture("901", "2026-10-27#1"),
                "i",
                at(11, 5),
                Actor::function("sla-monitor"),
                Action::IncidentOpened {
                    incident_id: "i-1".into(),
                    kind: "missing_recording".into(),
                },
                Outcome::Done,
                "",
            ),
            polled(at(11, 20), Some("Scheduled"), "Idle", true),
        ];
        let v = verdict(&row(true), &records, at(12, 0));
        assert!(!v.recorded);
        assert_eq!(
            v.line,
            "recorder in room B-204 was Disconnected from 09:55 to 11:20; \
             the session never started recording (still Scheduled at 09:45); \
             incident missing_recording opened 11:05"
        );
    }

    #[test]
    fn complete_unbooked_future_and_unpolled_lectures_each_say_so() {
        let done = vec![
            polled(at(10, 0), Some("Recording"), "Recording", true),
            polled(at(11, 30), Some("Complete"), "Idle", true),
        ];
        let v = verdict(&row(true), &done, at(12, 0));
        assert!(v.recorded);
        assert_eq!(v.line, "recorded: the session was complete at 11:30");
        let step = |t: DateTime<Utc>, step: &str, outcome: Outcome, detail: &str| {
            AuditRecord::new(
                Subject::lecture("901", "2026-10-27#1"),
                &format!("{step}{t}"),
                t,
                Actor::function("orchestrator"),
                Action::WorkflowStep {
                    session_id: "s-1".into(),
                    step: step.into(),
                },
                outcome,
                detail,
            )
        };
        let mut failing = done.clone();
        failing.push(step(at(11, 31), "file", Outcome::Done, ""));
        failing.push(step(
            at(11, 40),
            "post",
            Outcome::Failed,
            "Canvas: throttled",
        ));
        assert_eq!(
            verdict(&row(true), &failing, at(12, 0)).line,
            "recorded: the session was complete at 11:30; publishing stopped at post (11:40): Canvas: throttled"
        );
        let mut published = failing.clone();
        published.push(step(at(11, 50), "audit", Outcome::Done, ""));
        assert_eq!(
            verdict(&row(true), &published, at(12, 0)).line,
            "recorded: the session was complete at 11:30; published at 11:50"
        );
        let mut underway = done.clone();
        underway.push(step(at(11, 31), "file", Outcome::Done, ""));
        assert_eq!(
            verdict(&row(true), &underway, at(12, 0)).line,
            "recorded: the session was complete at 11:30; publishing under way (last step file at 11:31)"
        );

        let mut unbooked = row(false);
        unbooked.booking_error = Some("recorder rec-1 is booked by another session".into());
        let v = verdict(&unbooked, &[], at(12, 0));
        assert_eq!(
            v.line,
            "no recording was booked: recorder rec-1 is booked by another session"
        );
        assert_eq!(
            verdict(&row(true), &[], at(9, 0)).line,
            "not held yet (starts 10:00)"
        );
        assert_eq!(
            verdict(&row(true), &[], at(12, 0)).line,
            "no poll looked at the lecture (is panopto-poller running?)"
        );
        let stuck = vec![polled(at(10, 1), Some("Recording"), "Recording", true)];
        assert_eq!(
            verdict(&row(true), &stuck, at(12, 0)).line,
            "the session got no further than Recording (since 10:01)"
        );
    }
}
