//! What an incident the monitor opens says: one line an on-call engineer or a room
//! technician can act on, and the same facts as fields for whoever routes the page. Ids and
//! the catalog's names only: instructors are named by their Canvas user id, never by person.

use crate::deadlines::{Check, Deadlines, Evidence, caption_sla};
use chrono::{DateTime, Utc};
use coursewire_teaching::sections::SectionInfo;
use coursewire_teaching::{LectureRow, PublishingRule, Room};
use std::collections::BTreeMap;

/// Everything known about the lecture an incident is about.
pub struct Context<'a> {
    pub row: &'a LectureRow,
    pub evidence: &'a Evidence,
    pub rule: &'a PublishingRule,
    pub room: Option<&'a Room>,
    pub section: Option<&'a SectionInfo>,
    pub instructors: &'a [String],
}

/// The reason line and the detail fields of the incident `check` opens.
pub fn describe(
    check: Check,
    ctx: &Context<'_>,
    deadlines: &Deadlines,
    now: DateTime<Utc>,
) -> (String, BTreeMap<String, String>) {
    let lecture = &ctx.row.lecture;
    let zone = lecture.time_zone;
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&zone)
            .format("%a %e %b %H:%M %Z")
            .to_string()
    };
    let course = ctx.section.map_or_else(
        || format!("course {}", lecture.course_id),
        |s| format!("{} {}", s.course_code, s.section_name),
    );
    let room = ctx.room.map_or_else(
        || lecture.room_id.clone(),
        |r| format!("{} ({} {})", r.id, r.building, r.name),
    );
    let recorder_id = lecture.recorder_id.as_deref().unwrap_or("none");
    let recorder_state = ctx
        .evidence
        .recorder
        .map_or("unknown", |state| state.as_str());
    let recorder = format!("recorder {recorder_id} is {recorder_state}");
    let instructors = if ctx.instructors.is_empty() {
        "no instructor in the Canvas catalog".to_string()
    } else {
        format!("instructor Canvas user {}", ctx.instructors.join(", "))
    };
    let reason = match check {
        Check::MissingRecording => {
            let booking = match (&ctx.row.booking, &ctx.row.booking_error) {
                (Some(b), _) => format!("booked as session {}", b.session_id),
                (None, Some(error)) => format!("never booked: {error}"),
                (None, None) => "never booked".to_string(),
            };
            format!(
                "No recording of {course}, {} to {}, in {room}, {} min after class end; \
                 {recorder}; {booking}; {instructors}",
                local(lecture.start),
                lecture.end.with_timezone(&zone).format("%H:%M"),
                deadlines.grace.num_minutes(),
            )
        }
        Check::Captions { escalated } => {
            let sla = caption_sla(ctx.rule).num_hours();
            let late = (now - lecture.end).num_hours();
            format!(
                "{}Captions of {course}, {}, still missing {late} h after class end \
                 (the {} SLA is {sla} h, provider {}); {instructors}",
                if escalated {
                    "ESCALATED, twice the SLA: "
                } else {
                    ""
                },
                local(lecture.start),
                lecture.department,
                ctx.rule.caption_provider,
            )
        }
        Check::RecorderDown => format!(
            "The recorder in {room} is {recorder_state} while {course} is due ({} to {}): \
             a technician can still save the lecture; {instructors}",
            local(lecture.start),
            lecture.end.with_timezone(&zone).format("%H:%M"),
        ),
    };
    let mut details = BTreeMap::from([
        ("course_id".to_string(), lecture.course_id.clone()),
        ("section_id".to_string(), lecture.section_id.clone()),
        ("slot".to_string(), lecture.slot()),
        ("department".to_string(), lecture.department.clone()),
        ("room".to_string(), lecture.room_id.clone()),
        ("recorder_id".to_string(), recorder_id.to_string()),
        ("recorder_state".to_string(), recorder_state.to_string()),
        ("class_start".to_string(), lecture.start.to_rfc3339()),
        ("class_end".to_string(), lecture.end.to_rfc3339()),
        ("instructors".to_string(), ctx.instructors.join(",")),
    ]);
    if let Some(section) = ctx.section {
        details.insert("course_code".into(), section.course_code.clone());
        details.insert("section_name".into(), section.section_name.clone());
    }
    if let Some(session) = &ctx.evidence.session_id {
        details.insert("session_id".into(), session.clone());
    }
    (reason, details)
}
