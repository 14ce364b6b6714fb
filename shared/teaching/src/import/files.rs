//! The registrar's files read into catalog entries: `rooms.csv`, `meetings.csv`, `rules.json`.
//! Every error is collected (not just the first), each naming file, row and field.

use super::csv_table::{CsvRow, CsvTable};
use super::errors::ImportError;
use crate::meetings::{ExtraMeeting, MeetingPattern};
use crate::rooms::Room;
use crate::rules::PublishingRule;
use crate::template::Template;
use chrono::{NaiveDate, NaiveTime, Weekday};
use chrono_tz::Tz;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

pub const ROOM_COLUMNS: [&str; 6] = [
    "room_id",
    "building",
    "name",
    "capacity",
    "time_zone",
    "recorder_id",
];

pub const MEETING_COLUMNS: [&str; 12] = [
    "section_id",
    "department",
    "kind",
    "room_id",
    "days",
    "start_time",
    "end_time",
    "term",
    "term_start",
    "term_end",
    "time_zone",
    "date",
];

/// A file to import: its name (for errors) and its text.
#[derive(Debug, Clone)]
pub struct ImportFile {
    pub name: String,
    pub text: String,
}

/// Rooms, one per row: the rows that are right, and the errors of those that are not (the
/// right ones still let `meetings.csv` be checked against them).
pub fn read_rooms(file: &ImportFile) -> (Vec<Room>, Vec<ImportError>) {
    let columns = (&ROOM_COLUMNS[..5], &ROOM_COLUMNS[5..]);
    let table = match CsvTable::read(&file.name, &file.text, columns.0, columns.1) {
        Ok(table) => table,
        Err(errors) => return (Vec::new(), errors),
    };
    let mut errors = Vec::new();
    let mut rooms = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for row in table.rows() {
        let id = row.get("room_id");
        if let Some(first) = seen.get(id) {
            errors.push(row.error(
                "room_id",
                format!("room {id} is already defined in {first}"),
            ));
            continue;
        }
        seen.insert(id.to_string(), row.place());
        match room(&row) {
            Ok(room) => rooms.push(room),
            Err(e) => errors.push(e),
        }
    }
    (rooms, errors)
}

fn room(row: &CsvRow<'_>) -> Result<Room, ImportError> {
    Ok(Room {
        id: row.required("room_id")?.to_string(),
        building: row.required("building")?.to_string(),
        name: row.required("name")?.to_string(),
        capacity: row.parsed("capacity", |v| {
            v.parse::<u32>()
                .map_err(|_| "expected a whole number of seats".to_string())
        })?,
        time_zone: row.parsed("time_zone", zone)?,
        recorder_id: Some(row.get("recorder_id").to_string()).filter(|r| !r.is_empty()),
    })
}

fn zone(value: &str) -> Result<Tz, String> {
    value
        .parse::<Tz>()
        .map_err(|_| "expected an IANA time zone such as America/New_York".to_string())
}

fn date(value: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| "expected a date YYYY-MM-DD".into())
}

fn time(value: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(value, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(&value.to_uppercase(), "%I:%M %p"))
        .map_err(|_| "expected a time HH:MM (24-hour) or H:MM AM/PM".into())
}

/// Registrar day codes: `MWF`, `TR`, `TuTh`, or names `Mon;Wed` / `Monday Wednesday`.
fn days(value: &str) -> Result<Vec<Weekday>, String> {
    let expected = || "expected days such as MWF, TR, TuTh or Mon;Wed".to_string();
    let mut out = BTreeSet::new();
    if let Ok(day) = value.parse::<Weekday>() {
        out.insert(day.num_days_from_monday());
    } else if value.contains([';', ',', ' ']) {
        for name in value.split([';', ',', ' ']).filter(|s| !s.is_empty()) {
            out.insert(
                name.parse::<Weekday>()
                    .map_err(|_| expected())?
                    .num_days_from_monday(),
            );
        }
    } else {
        let mut rest = value;
        while !rest.is_empty() {
            let two = rest.get(..2).unwrap_or("");
            let (day, len) = match two {
                "Mo" => (Weekday::Mon, 2),
                "Tu" => (Weekday::Tue, 2),
                "We" => (Weekday::Wed, 2),
                "Th" => (Weekday::Thu, 2),
                "Fr" => (Weekday::Fri, 2),
                "Sa" => (Weekday::Sat, 2),
                "Su" => (Weekday::Sun, 2),
                _ => match rest.get(..1).unwrap_or("") {
                    "M" => (Weekday::Mon, 1),
                    "T" => (Weekday::Tue, 1),
                    "W" => (Weekday::Wed, 1),
                    "R" => (Weekday::Thu, 1),
                    "F" => (Weekday::Fri, 1),
                    "S" => (Weekday::Sat, 1),
                    "U" => (Weekday::Sun, 1),
                    _ => return Err(expected()),
                },
            };
            out.insert(day.num_days_from_monday());
            rest = &rest[len..];
        }
    }
    if out.is_empty() {
        return Err(expected());
    }
    Ok(out
        .into_iter()
        .filter_map(|n| Weekday::try_from(n as u8).ok())
        .collect())
}

/// A meeting pattern before its course is looked up in Canvas, with where it came from.
#[derive(Debug, Clone)]
pub struct PatternRow {
    pub place: String,
    /// `course_id` is empty until the import resolves it.
    pub pattern: MeetingPattern,
}

/// What `meetings.csv` says: weekly patterns (with their cancelled days and extras folded in)
/// and institution holidays.
#[derive(Debug, Clone, Default)]
pub struct Meetings {
    pub patterns: Vec<PatternRow>,
}

/// `meetings.csv`: one `weekly` row per section, plus `cancelled` and `extra` rows for a
/// section and `holiday` rows (no section; optionally limited to one `term`).
pub fn read_meetings(
    file: &ImportFile,
    rooms: &BTreeMap<String, Room>,
) -> Result<Meetings, Vec<ImportError>> {
    let table = CsvTable::read(
        &file.name,
        &file.text,
        &MEETING_COLUMNS[..3],
        &MEETING_COLUMNS[3..],
    )?;
    let mut errors = Vec::new();
    let mut patterns: BTreeMap<String, PatternRow> = BTreeMap::new();
    let mut cancelled = Vec::new();
    let mut extras = Vec::new();
    let mut holidays = Vec::new();
    for row in table.rows() {
        let kind = row.get("kind").to_lowercase();
        let outcome = match kind.as_str() {
            "weekly" => weekly(&row, rooms).map(|p| match patterns.get(&p.section_id) {
                Some(first) => errors.push(row.error(
                    "section_id",
                    format!(
                        "section {} already has a weekly row ({})",
                        p.section_id, first.place
                    ),
                )),
                None => {
                    patterns.insert(
                        p.section_id.clone(),
                        PatternRow {
                            place: row.place(),
                            pattern: p,
                        },
                    );
                }
            }),
            "cancelled" => (|| {
                let section = row.required("section_id")?.to_string();
                cancelled.push((row.place(), section, row.parsed("date", date)?));
                Ok(())
            })(),
            "extra" => (|| {
                let section = row.required("section_id")?.to_string();
                let start = row.parsed("start_time", time)?;
                let end = row.parsed("end_time", time)?;
                if end <= start {
                    return Err(row.error("end_time", "must be after start_time"));
                }
                let room = Some(row.get("room_id").to_string()).filter(|r| !r.is_empty());
                if let Some(room) = &room
                    && !rooms.contains_key(room)
                {
                    return Err(row.error(
                        "room_id",
                        format!("room {room} is not in rooms.csv or the catalog"),
                    ));
                }
                extras.push((
                    row.place(),
                    section,
                    row.parsed("date", date)?,
                    start,
                    end,
                    room,
                ));
                Ok(())
            })(),
            "holiday" => (|| {
                if !row.get("section_id").is_empty() {
                    return Err(row.error("section_id", "a holiday applies to every section: leave it empty (use a cancelled row for one section)"));
                }
                let term = Some(row.get("term").to_string()).filter(|t| !t.is_empty());
                holidays.push((row.parsed("date", date)?, term));
                Ok(())
            })(),
            "" => Err(row.error("kind", "is empty (weekly, cancelled, extra or holiday)")),
            other => Err(row.error(
                "kind",
                format!("{other:?}: expected weekly, cancelled, extra or holiday"),
            )),
        };
        if let Err(e) = outcome {
            errors.push(e);
        }
    }
    for (place, section, day) in cancelled {
        match patterns.get_mut(&section) {
            Some(p) if day < p.pattern.term_start || day > p.pattern.term_end => {
                errors.push(ImportError::at(
                    &file.name,
                    place,
                    "date",
                    format!("{day} is outside section {section}'s term"),
                ))
            }
            Some(p) => {
                p.pattern.cancelled.insert(day);
            }
            None => errors.push(no_weekly(&file.name, place, &section)),
        }
    }
    for (place, section, day, start, end, room) in extras {
        match patterns.get_mut(&section) {
            Some(p) => {
                let room_id = room.unwrap_or_else(|| p.pattern.room_id.clone());
                p.pattern.extra.push(ExtraMeeting {
                    date: day,
                    start,
                    end,
                    room_id,
                });
                p.pattern.extra.sort();
            }
            None => errors.push(no_weekly(&file.name, place, &section)),
        }
    }
    for (day, term) in holidays {
        for p in patterns.values_mut() {
            let in_term = term.as_deref().is_none_or(|t| t == p.pattern.term);
            if in_term && day >= p.pattern.term_start && day <= p.pattern.term_end {
                p.pattern.cancelled.insert(day);
            }
        }
    }
    if errors.is_empty() {
        Ok(Meetings {
            patterns: patterns.into_values().collect(),
        })
    } else {
        Err(errors)
    }
}

fn no_weekly(file: &str, place: String, section: &str) -> ImportError {
    ImportError::at(
        file,
        place,
        "section_id",
        format!("section {section} has no weekly row in this file"),
    )
}

fn weekly(row: &CsvRow<'_>, rooms: &BTreeMap<String, Room>) -> Result<MeetingPattern, ImportError> {
    let section_id = row.required("section_id")?.to_string();
    let room_id = row.required("room_id")?.to_string();
    let room = rooms.get(&room_id).ok_or_else(|| {
        row.error(
            "room_id",
            format!("room {room_id} is not in rooms.csv or the catalog"),
        )
    })?;
    let start = row.parsed("start_time", time)?;
    let end = row.parsed("end_time", time)?;
    if end <= start {
        return Err(row.error("end_time", "must be after start_time"));
    }
    let term_start = row.parsed("term_start", date)?;
    let term_end = row.parsed("term_end", date)?;
    if term_end < term_start {
        return Err(row.error("term_end", "is before term_start"));
    }
    if (term_end - term_start).num_days() > 400 {
        return Err(row.error("term_end", "a term longer than 400 days is not a term"));
    }
    Ok(MeetingPattern {
        section_id,
        course_id: String::new(),
        department: row.required("department")?.to_string(),
        room_id,
        days: row.parsed("days", days)?,
        start,
        end,
        term_start,
        term_end,
        term: row.required("term")?.to_string(),
        time_zone: row.parsed_opt("time_zone", zone)?.unwrap_or(room.time_zone),
        cancelled: BTreeSet::new(),
        extra: Vec::new(),
    })
}

/// The fields of a rule in `rules.json`, each checked on its own so an error names it.
/// Checks one field's JSON value; the error says what was expected.
type FieldCheck = fn(&Value) -> Result<(), String>;

const RULE_FIELDS: [(&str, FieldCheck); 10] = [
    ("scope", |v| match v.as_str() {
        Some("department" | "course") => Ok(()),
        _ => Err("expected \"department\" or \"course\"".into()),
    }),
    ("id", |v| match v.as_str() {
        Some(id) if !id.trim().is_empty() => Ok(()),
        _ => Err("expected the department code or Canvas course id".into()),
    }),
    ("folder_template", template),
    ("session_template", template),
    ("caption_provider", |v| match v.as_str() {
        Some(p) if !p.trim().is_empty() => Ok(()),
        _ => Err("expected the caption provider's name".into()),
    }),
    ("caption_sla_hours", |v| match v.as_u64() {
        Some(1..=720) => Ok(()),
        _ => Err("expected whole hours between 1 and 720".into()),
    }),
    ("module_template", template),
    ("access", |v| match v.as_str() {
        Some("section_roster" | "course_roster" | "institution") => Ok(()),
        _ => Err("expected section_roster, course_roster or institution".into()),
    }),
    ("post", |v| match v.as_str() {
        Some("before_captions" | "after_captions") => Ok(()),
        _ => Err("expected before_captions or after_captions".into()),
    }),
    ("enabled", |v| match v.as_bool() {
        Some(_) => Ok(()),
        None => Err("expected true or false".into()),
    }),
];

fn template(value: &Value) -> Result<(), String> {
    let text = value.as_str().ok_or("expected a template string")?;
    Template::parse(text).map(|_| ()).map_err(|e| e.to_string())
}

/// `rules.json`: an array of rules, or `{"rules": [...]}`.
pub fn read_rules(file: &ImportFile) -> Result<Vec<PublishingRule>, Vec<ImportError>> {
    let document: Value = serde_json::from_str(&file.text)
        .map_err(|e| vec![ImportError::file(&file.name, format!("not JSON: {e}"))])?;
    let list = match &document {
        Value::Array(list) => list,
        Value::Object(map) => match map.get("rules") {
            Some(Value::Array(list)) => list,
            _ => {
                return Err(vec![ImportError::file(
                    &file.name,
                    "expected an array of rules or {\"rules\": [...]}",
                )]);
            }
        },
        _ => {
            return Err(vec![ImportError::file(
                &file.name,
                "expected an array of rules or {\"rules\": [...]}",
            )]);
        }
    };
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (index, value) in list.iter().enumerate() {
        let place = format!("rule {}", index + 1);
        let Some(object) = value.as_object() else {
            errors.push(ImportError::at(
                &file.name,
                place,
                "",
                "expected a rule object",
            ));
            continue;
        };
        let before = errors.len();
        for key in object.keys() {
            if !RULE_FIELDS.iter().any(|(name, _)| name == key) {
                errors.push(ImportError::at(
                    &file.name,
                    place.clone(),
                    key,
                    "unknown field",
                ));
            }
        }
        for (name, check) in RULE_FIELDS {
            match object.get(name) {
                None => errors.push(ImportError::at(&file.name, place.clone(), name, "missing")),
                Some(v) => {
                    if let Err(message) = check(v) {
                        errors.push(ImportError::at(&file.name, place.clone(), name, message));
                    }
                }
            }
        }
        if errors.len() > before {
            continue;
        }
        match serde_json::from_value::<PublishingRule>(value.clone()) {
            Ok(rule) => match seen.get(&rule.scope.key()) {
                Some(first) => errors.push(ImportError::at(
                    &file.name,
                    place,
                    "id",
                    format!("{} already has a rule ({first})", rule.scope.key()),
                )),
                None => {
                    seen.insert(rule.scope.key(), place);
                    rules.push(rule);
                }
            },
            Err(e) => errors.push(ImportError::at(&file.name, place, "", e.to_string())),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> ImportFile {
        ImportFile {
            name: name.into(),
            text: text.into(),
        }
    }

    fn rooms() -> BTreeMap<String, Room> {
        let (rooms, errors) = read_rooms(&file(
            "rooms.csv",
            "room_id,building,name,capacity,time_zone,recorder_id\nSCI-101,Science,Science 101,120,America/New_York,rr-1\nSCI-202,Science,Science 202,40,America/New_York,\n",
        ));
        assert!(errors.is_empty(), "{errors:?}");
        rooms.into_iter().map(|r| (r.id.clone(), r)).collect()
    }

    #[test]
    fn reads_registrar_day_codes() {
        use Weekday::*;
        assert_eq!(days("MWF").unwrap(), [Mon, Wed, Fri]);
        assert_eq!(days("TR").unwrap(), [Tue, Thu]);
        assert_eq!(days("TuTh").unwrap(), [Tue, Thu]);
        assert_eq!(days("Mon;Wed").unwrap(), [Mon, Wed]);
        assert_eq!(days("Thu").unwrap(), [Thu]);
        assert_eq!(days("Saturday").unwrap(), [Sat]);
        assert_eq!(days("Thursday Tuesday").unwrap(), [Tue, Thu]);
        assert!(days("MX").is_err());
    }

    #[test]
    fn rooms_without_recorders_and_bad_cells_are_told_apart() {
        let rooms = rooms();
        assert_eq!(rooms["SCI-101"].recorder_id.as_deref(), Some("rr-1"));
        assert_eq!(rooms["SCI-202"].recorder_id, None);
        let (_, errors) = read_rooms(&file(
            "rooms.csv",
            "room_id,building,name,capacity,time_zone,recorder\nA,B,C,lots,Mars/Olympus,x\n",
        ));
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(
            text[0].starts_with("rooms.csv, row 1, field recorder: unknown column"),
            "{text:?}"
        );
        let (good, errors) = read_rooms(&file(
            "rooms.csv",
            "room_id,building,name,capacity,time_zone\nA,B,C,lots,UTC\nD,E,F,10,Mars/Olympus\nA,B,C,1,UTC\nG,H,I,5,UTC\n",
        ));
        assert_eq!(
            good.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["G"]
        );
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "rooms.csv, row 2, field capacity: \"lots\": expected a whole number of seats",
                "rooms.csv, row 3, field time_zone: \"Mars/Olympus\": expected an IANA time zone such as America/New_York",
                "rooms.csv, row 4, field room_id: room A is already defined in row 2",
            ]
        );
    }

    const HEADER: &str = "section_id,department,kind,room_id,days,start_time,end_time,term,term_start,term_end,time_zone,date\n";

    #[test]
    fn meetings_fold_cancellations_extras_and_holidays_into_patterns() {
        let text = format!(
            "{HEADER}\
             101,BIO,weekly,SCI-101,TR,09:00,10:15,Fall 2026,2026-09-01,2026-12-10,,\n\
             101,,cancelled,,,,,,,,,2026-10-29\n\
             101,,extra,SCI-202,,13:00,15:00,,,,,2026-12-14\n\
             ,,holiday,,,,,Fall 2026,,,,2026-11-26\n\
             102,CHEM,weekly,SCI-202,MWF,1:00 PM,1:50 PM,Fall 2026,2026-09-01,2026-12-10,America/Chicago,\n"
        );
        let meetings = read_meetings(&file("meetings.csv", &text), &rooms()).unwrap();
        let p = &meetings.patterns[0].pattern;
        assert_eq!(p.section_id, "101");
        assert_eq!(p.time_zone, chrono_tz::America::New_York, "the room's zone");
        assert_eq!(p.cancelled.len(), 2, "{:?}", p.cancelled);
        assert_eq!(p.extra[0].room_id, "SCI-202");
        let chem = &meetings.patterns[1].pattern;
        assert_eq!(chem.start, NaiveTime::from_hms_opt(13, 0, 0).unwrap());
        assert_eq!(chem.time_zone, chrono_tz::America::Chicago);
        assert!(
            chem.cancelled
                .contains(&NaiveDate::from_ymd_opt(2026, 11, 26).unwrap())
        );
    }

    #[test]
    fn every_meeting_error_names_row_and_field() {
        let text = format!(
            "{HEADER}\
             101,BIO,weekly,SCI-999,TR,09:00,10:15,Fall 2026,2026-09-01,2026-12-10,,\n\
             102,BIO,weekly,SCI-101,TR,10:00,09:00,Fall 2026,2026-09-01,2026-12-10,,\n\
             103,BIO,weekly,SCI-101,XYZ,09:00,10:00,Fall 2026,2026-09-01,2026-12-10,,\n\
             104,BIO,weekly,SCI-101,TR,09:00,10:00,Fall 2026,2026-09-01,2026-12-10,,\n\
             104,BIO,weekly,SCI-101,TR,09:00,10:00,Fall 2026,2026-09-01,2026-12-10,,\n\
             104,,cancelled,,,,,,,,,2027-01-05\n\
             105,,cancelled,,,,,,,,,2026-10-01\n\
             ,,monthly,,,,,,,,,\n"
        );
        let errors = read_meetings(&file("meetings.csv", &text), &rooms()).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "meetings.csv, row 2, field room_id: room SCI-999 is not in rooms.csv or the catalog",
                "meetings.csv, row 3, field end_time: must be after start_time",
                "meetings.csv, row 4, field days: \"XYZ\": expected days such as MWF, TR, TuTh or Mon;Wed",
                "meetings.csv, row 6, field section_id: section 104 already has a weekly row (row 5)",
                "meetings.csv, row 9, field kind: \"monthly\": expected weekly, cancelled, extra or holiday",
                "meetings.csv, row 7, field date: 2027-01-05 is outside section 104's term",
                "meetings.csv, row 8, field section_id: section 105 has no weekly row in this file",
            ]
        );
    }

    #[test]
    fn rule_errors_name_the_rule_and_field() {
        let text = r#"{"rules": [
            {"scope": "department", "id": "BIO", "folder_template": "{term}/{course_code}",
             "session_template": "{course_code} Lecture {n}", "caption_provider": "Panopto",
             "caption_sla_hours": 48, "module_template": "Recordings", "access": "section_roster",
             "post": "before_captions", "enabled": true},
            {"scope": "department", "id": "CHEM", "folder_template": "{term}/{course_code}",
             "session_template": "{course_code} Lecture {lecture}", "caption_provider": "Panopto",
             "caption_sla_hours": 0, "module_template": "Recordings", "access": "everyone",
             "post": "before_captions", "enabled": true, "colour": "blue"},
            {"scope": "department", "id": "BIO", "folder_template": "{term}",
             "session_template": "{n}", "caption_provider": "Panopto",
             "caption_sla_hours": 48, "module_template": "Recordings", "access": "section_roster",
             "post": "before_captions"}
        ]}"#;
        let errors = read_rules(&file("rules.json", text)).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 5, "{text:#?}");
        assert_eq!(text[0], "rules.json, rule 2, field colour: unknown field");
        assert!(
            text[1].starts_with(
                "rules.json, rule 2, field session_template: unknown placeholder {lecture}"
            ),
            "{}",
            text[1]
        );
        assert_eq!(
            text[2],
            "rules.json, rule 2, field caption_sla_hours: expected whole hours between 1 and 720"
        );
        assert_eq!(
            text[3],
            "rules.json, rule 2, field access: expected section_roster, course_roster or institution"
        );
        assert_eq!(text[4], "rules.json, rule 3, field enabled: missing");
        let ok = read_rules(&file("rules.json", r#"[]"#)).unwrap();
        assert!(ok.is_empty());
    }
}
