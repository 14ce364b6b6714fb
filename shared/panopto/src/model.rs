//! Panopto's objects as its API names them (PascalCase JSON), and the two states only SOAP
//! reports: a session's processing state and a remote recorder's state.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::str::FromStr;
use std::time::Duration;

/// Results per page of every Panopto list (`pageNumber` counts from 0).
pub const PAGE_SIZE: usize = 50;

/// Panopto's "no folder / no provider" id.
pub const NIL_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// A recording (or a scheduled one) as REST shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Session {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// When the recording started (or is scheduled to).
    #[serde(default, with = "time::option")]
    pub start_time: Option<DateTime<Utc>>,
    /// Seconds recorded; absent until there is a recording.
    #[serde(default)]
    pub duration: Option<f64>,
    /// The folder's id.
    #[serde(default)]
    pub folder: Option<String>,
    #[serde(default)]
    pub folder_details: Option<BasicFolder>,
    /// Only on `GET /sessions/{id}` (lists carry the viewer URL at most).
    #[serde(default)]
    pub urls: Option<SessionUrls>,
}

impl Session {
    pub fn duration(&self) -> Option<Duration> {
        self.duration
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(Duration::from_secs_f64)
    }

    /// Whether the session has captions to download (known from `GET /sessions/{id}` only).
    pub fn has_captions(&self) -> bool {
        self.urls
            .as_ref()
            .and_then(|u| u.caption_download_url.as_deref())
            .is_some_and(|u| !u.is_empty())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionUrls {
    #[serde(default)]
    pub viewer_url: Option<String>,
    #[serde(default)]
    pub embed_url: Option<String>,
    #[serde(default)]
    pub share_settings_url: Option<String>,
    #[serde(default)]
    pub download_url: Option<String>,
    /// Present once the session has captions.
    #[serde(default)]
    pub caption_download_url: Option<String>,
    #[serde(default)]
    pub editor_url: Option<String>,
    #[serde(default)]
    pub thumbnail_url: Option<String>,
}

/// A rename or a move (`PUT /sessions/{id}`); absent fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The folder to move the session to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BasicFolder {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Folder {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parent_folder: Option<BasicFolder>,
}

/// A folder's settings; REST updates only the automatic caption provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FolderSettings {
    #[serde(default)]
    pub automatic_caption_provider_id: Option<String>,
    #[serde(default)]
    pub automatic_caption_provider_name: Option<String>,
}

impl FolderSettings {
    /// The provider's id, if the folder has one (Panopto answers the nil id for none).
    pub fn caption_provider_id(&self) -> Option<&str> {
        self.automatic_caption_provider_id
            .as_deref()
            .filter(|id| !id.is_empty() && *id != NIL_GUID)
    }
}

/// A caption provider instance configured on the site (`GET /captionproviders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaptionProvider {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub enabled: bool,
}

/// A session's processing state (SOAP `SessionManagement`; REST does not report it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessionState {
    Created,
    Scheduled,
    Recording,
    Broadcasting,
    Processing,
    Complete,
    /// A state this client does not know (Panopto added one).
    #[serde(other)]
    Unknown,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Created => "Created",
            SessionState::Scheduled => "Scheduled",
            SessionState::Recording => "Recording",
            SessionState::Broadcasting => "Broadcasting",
            SessionState::Processing => "Processing",
            SessionState::Complete => "Complete",
            SessionState::Unknown => "Unknown",
        }
    }

    /// Something was captured (it may still be processing).
    pub fn has_recording(self) -> bool {
        matches!(self, SessionState::Processing | SessionState::Complete)
    }
}

impl FromStr for SessionState {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "Created" => SessionState::Created,
            "Scheduled" => SessionState::Scheduled,
            "Recording" => SessionState::Recording,
            "Broadcasting" => SessionState::Broadcasting,
            "Processing" => SessionState::Processing,
            "Complete" => SessionState::Complete,
            _ => SessionState::Unknown,
        })
    }
}

/// What `SessionManagement.GetSessionsById` says about a session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionStatus {
    pub id: String,
    pub name: String,
    pub state: SessionState,
    pub folder_id: Option<String>,
    pub folder_name: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    /// Seconds recorded, once there is a recording.
    pub duration: Option<f64>,
    pub remote_recorder_ids: Vec<String>,
    pub is_broadcast: bool,
    pub status_message: Option<String>,
}

impl SessionStatus {
    pub fn duration(&self) -> Option<Duration> {
        self.duration
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(Duration::from_secs_f64)
    }
}

/// A remote recorder's state (REST `RemoteRecorderState`, SOAP the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecorderState {
    Stopped,
    Previewing,
    Recording,
    Paused,
    Faulted,
    Disconnected,
    RecorderRunning,
    #[serde(other)]
    Unknown,
}

impl RecorderState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecorderState::Stopped => "Stopped",
            RecorderState::Previewing => "Previewing",
            RecorderState::Recording => "Recording",
            RecorderState::Paused => "Paused",
            RecorderState::Faulted => "Faulted",
            RecorderState::Disconnected => "Disconnected",
            RecorderState::RecorderRunning => "RecorderRunning",
            RecorderState::Unknown => "Unknown",
        }
    }

    /// Whether a recording booked on it can be expected to happen.
    pub fn is_healthy(self) -> bool {
        !matches!(
            self,
            RecorderState::Faulted | RecorderState::Disconnected | RecorderState::Unknown
        )
    }
}

impl FromStr for RecorderState {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "Stopped" => RecorderState::Stopped,
            "Previewing" => RecorderState::Previewing,
            "Recording" => RecorderState::Recording,
            "Paused" => RecorderState::Paused,
            "Faulted" => RecorderState::Faulted,
            "Disconnected" => RecorderState::Disconnected,
            "RecorderRunning" => RecorderState::RecorderRunning,
            _ => RecorderState::Unknown,
        })
    }
}

/// A remote recorder (the capture box in a room). REST search fills id, name, state and
/// default folder; SOAP `GetRemoteRecordersById` also the scheduled recordings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoteRecorder {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    pub state: RecorderState,
    #[serde(default)]
    pub default_recording_folder: Option<BasicFolder>,
    /// Session ids booked on it (SOAP only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduled_recordings: Vec<String>,
}

/// A recording booked on remote recorders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduledRecording {
    /// Also the id of the session it records into.
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub recorder_schedule_entries: Vec<RecorderScheduleEntry>,
    #[serde(with = "time::required")]
    pub start_time: DateTime<Utc>,
    #[serde(with = "time::required")]
    pub end_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecorderScheduleEntry {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub recorder_id: String,
    #[serde(default)]
    pub suppress_primary_capture: bool,
    #[serde(default)]
    pub suppress_secondary_capture: bool,
    #[serde(default)]
    pub recorder_description: Option<String>,
}

/// `POST /scheduledRecordings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduledRecordingCreate {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(with = "time::required")]
    pub start_time: DateTime<Utc>,
    #[serde(with = "time::required")]
    pub end_time: DateTime<Utc>,
    pub folder_id: String,
    pub recorders: Vec<RecorderBooking>,
    pub is_broadcast: bool,
}

impl ScheduledRecordingCreate {
    /// A recording (not a broadcast) on one recorder, capturing all its streams.
    pub fn on_recorder(
        name: impl Into<String>,
        folder_id: impl Into<String>,
        recorder_id: impl Into<String>,
        start_time: DateTime<Utc>,
        end_time: DateTime<Utc>,
    ) -> Self {
        Self {
            name: name.into(),
            description: None,
            start_time,
            end_time,
            folder_id: folder_id.into(),
            recorders: vec![RecorderBooking {
                remote_recorder_id: recorder_id.into(),
                suppress_primary: false,
                suppress_secondary: false,
            }],
            is_broadcast: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecorderBooking {
    pub remote_recorder_id: String,
    pub suppress_primary: bool,
    pub suppress_secondary: bool,
}

/// `PUT /scheduledRecordings/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ScheduledRecordingUpdate {
    #[serde(with = "time::required")]
    pub start_time: DateTime<Utc>,
    #[serde(with = "time::required")]
    pub end_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PrincipalType {
    User,
    Group,
}

impl PrincipalType {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::User => "User",
            PrincipalType::Group => "Group",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BuiltInRoleType {
    None,
    Viewer,
    Creator,
    Publisher,
}

impl BuiltInRoleType {
    pub fn as_str(self) -> &'static str {
        match self {
            BuiltInRoleType::None => "None",
            BuiltInRoleType::Viewer => "Viewer",
            BuiltInRoleType::Creator => "Creator",
            BuiltInRoleType::Publisher => "Publisher",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Principal {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "Type")]
    pub principal_type: PrincipalType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Role {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// A grant on a session or folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Permission {
    #[serde(default)]
    pub is_inherited: bool,
    #[serde(default)]
    pub principal: Option<Principal>,
    #[serde(default)]
    pub role: Option<Role>,
}

/// A grant to make (or, the same fields, to revoke).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PermissionCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_type: Option<BuiltInRoleType>,
    pub principal_id: String,
    pub principal_type: PrincipalType,
}

impl PermissionCreate {
    /// `principal` (a user or group) as a viewer.
    pub fn viewer(principal_id: impl Into<String>, principal_type: PrincipalType) -> Self {
        Self {
            role_id: None,
            role_type: Some(BuiltInRoleType::Viewer),
            principal_id: principal_id.into(),
            principal_type,
        }
    }
}

/// A Panopto user as `GET /users/search` shows one. Panopto's `User` schema has two fields,
/// `Id` and `Username`; for a user an identity provider (e.g. Panopto's LMS integration)
/// provisioned, the username is the user key `{identity provider}\{login}`. The id is what a
/// grant names ([`PermissionCreate::principal_id`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct User {
    pub id: String,
    /// `Username` in Panopto's JSON (`UserKey`, the SOAP name, is read too).
    #[serde(
        rename = "Username",
        alias = "UserKey",
        default,
        deserialize_with = "nullable"
    )]
    pub user_key: String,
}

/// `null` read as the type's default (Panopto sends `null` for empty names and lists).
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Panopto's date-times: RFC 3339, or without an offset (then UTC); written as RFC 3339 UTC.
pub(crate) mod time {
    use super::*;

    pub fn parse(text: &str) -> Option<DateTime<Utc>> {
        let text = text.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(t.with_timezone(&Utc));
        }
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc())
    }

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    pub mod required {
        use super::*;

        pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&format(t))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
            let text = String::deserialize(d)?;
            parse(&text).ok_or_else(|| serde::de::Error::custom("not a date-time"))
        }
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&format(t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) if text.trim().is_empty() => Ok(None),
                Some(text) => parse(&text)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom("not a date-time")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_panopto_sessions_with_nulls_and_either_time_form() {
        let json = r#"{"Id":"11111111-1111-1111-1111-111111111111","Name":null,
            "Description":null,"StartTime":"2025-09-01T09:00:00","Duration":3000.5,
            "Folder":"f","FolderDetails":{"Id":"f","Name":"BIO 101"},
            "Urls":{"ViewerUrl":"v","CaptionDownloadUrl":"c"},"PercentCompleted":0}"#;
        let s: Session = serde_json::from_str(json).unwrap();
        assert_eq!(s.name, "");
        assert_eq!(
            s.start_time.unwrap(),
            "2025-09-01T09:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(s.duration().unwrap(), Duration::from_millis(3_000_500));
        assert!(s.has_captions());
        let offset: Session = serde_json::from_str(
            r#"{"Id":"x","StartTime":"2025-09-01T10:00:00.25+01:00","Folder":"f"}"#,
        )
        .unwrap();
        assert_eq!(
            offset.start_time.unwrap(),
            "2025-09-01T09:00:00.25Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(!offset.has_captions());
    }

    #[test]
    fn unknown_states_do_not_fail_a_whole_list() {
        let r: RemoteRecorder =
            serde_json::from_str(r#"{"Id":"r","Name":"SCI-101","State":"Rebooting"}"#).unwrap();
        assert_eq!(r.state, RecorderState::Unknown);
        assert!(!r.state.is_healthy());
        assert_eq!(
            "Processing".parse::<SessionState>().unwrap(),
            SessionState::Processing
        );
        assert_eq!(
            "Nope".parse::<SessionState>().unwrap(),
            SessionState::Unknown
        );
    }

    #[test]
    fn reads_users_by_their_panopto_username() {
        let u: User = serde_json::from_str(
            r#"{"Id":"33333333-3333-3333-3333-333333333333","Username":"canvas\\jdoe"}"#,
        )
        .unwrap();
        assert_eq!(u.user_key, r"canvas\jdoe");
        assert_eq!(
            serde_json::to_value(&u).unwrap()["Username"],
            r"canvas\jdoe"
        );
        let nameless: User = serde_json::from_str(r#"{"Id":"x","Username":null}"#).unwrap();
        assert_eq!(nameless.user_key, "");
    }

    #[test]
    fn writes_bookings_as_panopto_reads_them() {
        let start = "2025-09-01T09:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let create = ScheduledRecordingCreate::on_recorder(
            "BIO 101 Lecture 1",
            "folder",
            "recorder",
            start,
            start + chrono::TimeDelta::minutes(50),
        );
        let json = serde_json::to_value(&create).unwrap();
        assert_eq!(json["StartTime"], "2025-09-01T09:00:00Z");
        assert_eq!(json["EndTime"], "2025-09-01T09:50:00Z");
        assert_eq!(json["Recorders"][0]["RemoteRecorderId"], "recorder");
        assert_eq!(json["IsBroadcast"], false);
        assert!(json.get("Description").is_none());
        let settings = FolderSettings {
            automatic_caption_provider_id: Some(NIL_GUID.into()),
            automatic_caption_provider_name: None,
        };
        assert_eq!(settings.caption_provider_id(), None);
    }
}
