//! A campus for one day of lectures on the simulators: a time zone in which the day's first
//! lecture falls mid-morning, and the registrar's files (`rooms.csv`, `meetings.csv`,
//! `rules.json`) the teaching import reads. The main job's teaching day and the end-to-end
//! tests describe their day with it.

use chrono::{DateTime, Duration, Timelike, Utc};
use chrono_tz::Tz;
use coursewire_panopto::{
    HttpPanopto, HttpSettings, MemoryCredentialStore, PanoptoCredentials, PanoptoError,
};
use coursewire_simulators::panopto::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_SOAP_PASSWORD, DEFAULT_SOAP_USER, PanoptoSim,
};
use coursewire_teaching::import::{ImportFile, ImportFiles};
use serde_json::{Value, json};

/// The header of `meetings.csv`.
pub const MEETINGS_HEADER: &str = "section_id,department,kind,room_id,days,start_time,end_time,term,term_start,term_end,time_zone,date\n";

/// A fixed-offset zone in which `start` falls mid-morning, so that the day's lectures never
/// cross local midnight whatever time of day this runs (the functions read the wall clock).
pub fn campus_zone(start: DateTime<Utc>) -> Tz {
    let mut offset = 10 - i64::from(start.hour());
    if offset < -12 {
        offset += 24;
    }
    let name = match offset {
        0 => "Etc/UTC".to_string(),
        // POSIX-style names: Etc/GMT-3 is three hours ahead of UTC.
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    };
    name.parse().unwrap_or(Tz::UTC)
}

/// The campus-local date of `start`, as lecture names and cancellation rows spell it.
pub fn local_day(start: DateTime<Utc>) -> String {
    start
        .with_timezone(&campus_zone(start))
        .format("%Y-%m-%d")
        .to_string()
}

/// A teaching room; `recorder` is the Panopto remote recorder id (none: not equipped).
pub struct Room {
    pub id: String,
    pub building: String,
    pub name: String,
    pub capacity: u32,
    pub recorder: Option<String>,
}

/// A section's one meeting today, in `room`.
pub struct Meeting {
    pub section: String,
    pub department: String,
    pub room: String,
    pub start: DateTime<Utc>,
    pub minutes: i64,
}

/// The campus of a day that starts at `start`.
pub struct Campus {
    pub zone: Tz,
    /// The local date, `YYYY-MM-DD`.
    pub day: String,
    weekday: String,
}

impl Campus {
    pub fn around(start: DateTime<Utc>) -> Self {
        let zone = campus_zone(start);
        let local = start.with_timezone(&zone);
        Self {
            zone,
            day: local.format("%Y-%m-%d").to_string(),
            weekday: local.format("%a").to_string(),
        }
    }

    pub fn rooms_csv(&self, rooms: &[Room]) -> String {
        let mut csv = String::from("room_id,building,name,capacity,time_zone,recorder_id\n");
        for r in rooms {
            csv.push_str(&format!(
                "{},{},{},{},{},{}\n",
                r.id,
                r.building,
                r.name,
                r.capacity,
                self.zone,
                r.recorder.as_deref().unwrap_or_default()
            ));
        }
        csv
    }

    /// `meetings.csv` rows: a weekly meeting in a term of one day (today).
    pub fn meeting_rows(&self, meetings: &[Meeting]) -> String {
        let hm = |t: DateTime<Utc>| {
            let local = t.with_timezone(&self.zone);
            format!("{:02}:{:02}", local.hour(), local.minute())
        };
        meetings
            .iter()
            .map(|m| {
                format!(
                    "{},{},weekly,{},{},{},{},Today,{day},{day},,\n",
                    m.section,
                    m.department,
                    m.room,
                    self.weekday,
                    hm(m.start),
                    hm(m.start + Duration::minutes(m.minutes)),
                    day = self.day
                )
            })
            .collect()
    }

    /// The three files of an import; `extra_meetings` are raw `meetings.csv` rows (dated
    /// exceptions, cancellations) appended after `meetings`.
    pub fn files(
        &self,
        rooms: &[Room],
        meetings: &[Meeting],
        extra_meetings: &str,
        rules: &Value,
    ) -> ImportFiles {
        let file = |name: &str, text: String| {
            Some(ImportFile {
                name: name.into(),
                text,
            })
        };
        ImportFiles {
            rooms: file("rooms.csv", self.rooms_csv(rooms)),
            meetings: file(
                "meetings.csv",
                format!(
                    "{MEETINGS_HEADER}{}{extra_meetings}",
                    self.meeting_rows(meetings)
                ),
            ),
            rules: file("rules.json", rules.to_string()),
        }
    }
}

/// A department's publishing rule as an instructional designer would write it: folders per
/// section, sessions named by lecture, the section's roster as viewers, links in `module`.
/// `post` is `before_captions` or `after_captions`.
pub fn department_rule(
    department: &str,
    caption_provider: &str,
    post: &str,
    module: &str,
) -> Value {
    json!({"scope": "department", "id": department,
        "folder_template": "{term}/{course_code} {section}",
        "session_template": "{course_code} {section} Lecture {n} ({date})",
        "caption_provider": caption_provider, "caption_sla_hours": 48,
        "module_template": module, "access": "section_roster",
        "post": post, "enabled": true})
}

/// The Panopto credentials secret for the simulated Panopto.
pub fn panopto_credentials(sim: &PanoptoSim) -> Value {
    json!({
        "base_url": sim.base_url(),
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "soap_username": DEFAULT_SOAP_USER,
        "soap_password": DEFAULT_SOAP_PASSWORD,
    })
}

/// A Panopto client signed in to the simulated Panopto as the integration's API client.
pub fn panopto_client(sim: &PanoptoSim) -> Result<HttpPanopto, PanoptoError> {
    let credentials = PanoptoCredentials {
        base_url: sim.base_url(),
        client_id: DEFAULT_CLIENT_ID.into(),
        client_secret: DEFAULT_CLIENT_SECRET.into(),
        soap_username: Some(DEFAULT_SOAP_USER.into()),
        soap_password: Some(DEFAULT_SOAP_PASSWORD.into()),
    };
    HttpPanopto::new(
        std::sync::Arc::new(MemoryCredentialStore::new(credentials)),
        HttpSettings::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_files_put_the_day_in_local_time_mid_morning() {
        let start = Utc.with_ymd_and_hms(2026, 10, 27, 22, 30, 0).unwrap();
        let campus = Campus::around(start);
        assert_eq!(campus.day, "2026-10-27", "22:30 UTC is 10:30 at UTC-12");
        let files = campus.files(
            &[Room {
                id: "B-204".into(),
                building: "Biology".into(),
                name: "Biology 204".into(),
                capacity: 80,
                recorder: Some("rec-1".into()),
            }],
            &[Meeting {
                section: "901".into(),
                department: "BIO".into(),
                room: "B-204".into(),
                start,
                minutes: 50,
            }],
            "",
            &json!([department_rule(
                "BIO",
                "Panopto",
                "before_captions",
                "Lectures"
            )]),
        );
        let rooms = files.rooms.unwrap().text;
        assert!(
            rooms.ends_with("B-204,Biology,Biology 204,80,Etc/GMT+12,rec-1\n"),
            "{rooms}"
        );
        let meetings = files.meetings.unwrap().text;
        assert!(
            meetings
                .ends_with("901,BIO,weekly,B-204,Tue,10:30,11:20,Today,2026-10-27,2026-10-27,,\n"),
            "{meetings}"
        );
        assert!(
            files
                .rules
                .unwrap()
                .text
                .contains("\"post\":\"before_captions\"")
        );
    }
}
