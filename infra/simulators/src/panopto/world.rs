//! What the Panopto simulator knows: folders, remote recorders, sessions with their schedule,
//! captions and grants, and the state machine that moves a scheduled session along the
//! simulated clock:
//!
//! `Scheduled` → `Recording` (`Broadcasting` for a broadcast; at its start, plus any late
//! start, if its recorder is healthy then) → `Processing` (at its end, less any early stop, or when its recorder fails) →
//! `Complete` (after the processing time). A folder with an automatic caption provider gets
//! machine captions a caption delay after `Complete` (later, or never, if a test says so).
//! A session whose recorder was faulted or disconnected at its start never records: it stays
//! `Scheduled` with nothing captured.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::PanoptoSimError;

/// Panopto's `SessionState` (SOAP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    Created,
    Scheduled,
    Recording,
    Broadcasting,
    Processing,
    Complete,
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
        }
    }
}

/// Panopto's `RemoteRecorderState` (the states the simulator produces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecorderState {
    /// Idle and healthy.
    Previewing,
    Recording,
    Faulted,
    Disconnected,
}

impl RecorderState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecorderState::Previewing => "Previewing",
            RecorderState::Recording => "Recording",
            RecorderState::Faulted => "Faulted",
            RecorderState::Disconnected => "Disconnected",
        }
    }
}

/// A recorder's fault, set by a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecorderFault {
    Faulted,
    Disconnected,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Folder {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub parent: Option<String>,
    /// The automatic caption provider's id, if any.
    pub caption_provider: Option<String>,
    pub created_at: DateTime<Utc>,
    pub permissions: Vec<Grant>,
    /// External ids by site membership provider (SOAP only; REST never shows them): one per
    /// provider, and under one provider an id names one folder.
    pub external_ids: BTreeMap<String, String>,
}

/// A Panopto user, as an identity provider (e.g. Panopto's LMS integration) provisioned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// `{identity provider}\{login}`; REST shows it as `Username`.
    pub user_key: String,
    pub name: String,
    pub email: Option<String>,
}

impl User {
    /// Whether `query` (lowercased) is part of its key, name or email.
    fn matches(&self, query: &str) -> bool {
        self.user_key.to_lowercase().contains(query)
            || self.name.to_lowercase().contains(query)
            || self
                .email
                .as_deref()
                .is_some_and(|e| e.to_lowercase().contains(query))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recorder {
    pub id: String,
    pub name: String,
    pub fault: Option<RecorderFault>,
    pub default_folder: Option<String>,
}

/// A recording booked on a recorder.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub recorder_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub suppress_primary: bool,
    pub suppress_secondary: bool,
    pub is_broadcast: bool,
}

/// Whether and when machine captions come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptionPlan {
    /// The configured delay after `Complete` (if the folder has a provider).
    OnTime,
    /// That delay plus this much more.
    Late(TimeDelta),
    Never,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    pub language: String,
    /// `None` for an uploaded file; the provider's id for machine captions.
    pub provider: Option<String>,
    pub content: Vec<u8>,
    pub added_at: DateTime<Utc>,
}

/// A grant on a session or folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub principal_id: String,
    pub principal_type: String,
    pub role: Role,
}

/// Panopto's built-in roles (a grant by role id names one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Creator,
    Publisher,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Creator, Role::Publisher];

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::Creator => "Creator",
            Role::Publisher => "Publisher",
        }
    }

    /// The role's fixed id on the simulated site.
    pub fn id(self) -> &'static str {
        match self {
            Role::Viewer => "00000000-0000-0000-0000-00000000a001",
            Role::Creator => "00000000-0000-0000-0000-00000000a002",
            Role::Publisher => "00000000-0000-0000-0000-00000000a003",
        }
    }

    pub fn parse(role_type: Option<&str>, role_id: Option<&str>) -> Option<Role> {
        Role::ALL.into_iter().find(|r| {
            role_type.is_some_and(|t| t.eq_ignore_ascii_case(r.name()))
                || role_id.is_some_and(|id| id.eq_ignore_ascii_case(r.id()))
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub folder_id: String,
    pub created_at: DateTime<Utc>,
    pub state: SessionState,
    pub schedule: Option<Schedule>,
    /// Its start came while its recorder was down: it stays `Scheduled`, never recorded.
    pub missed: bool,
    /// The recording starts this much after the scheduled start.
    pub late_by: TimeDelta,
    /// ... and stops this much before the scheduled end.
    pub early_by: TimeDelta,
    pub recorded_from: Option<DateTime<Utc>>,
    pub recorded_until: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub caption_plan: CaptionPlan,
    /// When machine captions appear (set at `Complete`).
    pub captions_due: Option<DateTime<Utc>>,
    pub captions: Vec<Caption>,
    pub permissions: Vec<Grant>,
}

impl Session {
    /// Recording or broadcasting now.
    pub fn is_capturing(&self) -> bool {
        matches!(
            self.state,
            SessionState::Recording | SessionState::Broadcasting
        )
    }

    /// Seconds captured, once the recording ended.
    pub fn duration(&self) -> Option<f64> {
        match (self.recorded_from, self.recorded_until) {
            (Some(from), Some(until))
                if matches!(
                    self.state,
                    SessionState::Processing | SessionState::Complete
                ) =>
            {
                Some((until - from).num_milliseconds().max(0) as f64 / 1000.0)
            }
            _ => None,
        }
    }

    /// When it started recording, else when it is scheduled to, else when it was made.
    pub fn start_time(&self) -> DateTime<Utc> {
        self.recorded_from
            .or(self.schedule.as_ref().map(|s| s.start))
            .unwrap_or(self.created_at)
    }
}

/// A caption provider instance configured on the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptionProvider {
    pub id: String,
    pub name: String,
}

/// Processing and caption timings (simulated time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub processing: TimeDelta,
    pub captions: TimeDelta,
}

#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub folders: BTreeMap<String, Folder>,
    pub recorders: BTreeMap<String, Recorder>,
    pub sessions: BTreeMap<String, Session>,
    /// Users by id.
    pub users: BTreeMap<String, User>,
    pub providers: Vec<CaptionProvider>,
    /// Sessions every listing shows twice.
    pub duplicated: BTreeSet<String>,
    /// `GET /users/search` answers every match whatever `pageNumber` says (Panopto documents
    /// no paging there); off, it pages by 50 as every other list.
    pub users_search_ignores_paging: bool,
    pub timings: Timings,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// A booking request (the REST `ScheduledRecordingCreate`, checked).
#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    pub name: String,
    pub description: Option<String>,
    pub folder_id: String,
    pub schedule: Schedule,
}

/// Why a booking was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum BookingError {
    Invalid(String),
    NotFound(String),
    /// The recorder is booked then by this session.
    Conflict {
        session_id: String,
        session_name: String,
        recorder_id: String,
    },
}

impl World {
    pub fn new(providers: Vec<CaptionProvider>, timings: Timings) -> Self {
        Self {
            folders: BTreeMap::new(),
            recorders: BTreeMap::new(),
            sessions: BTreeMap::new(),
            users: BTreeMap::new(),
            providers,
            duplicated: BTreeSet::new(),
            users_search_ignores_paging: false,
            timings,
        }
    }

    pub fn timings(processing: std::time::Duration, captions: std::time::Duration) -> Timings {
        Timings {
            processing: delta(processing),
            captions: delta(captions),
        }
    }

    // --- the state machine ---------------------------------------------------------------

    /// Moves every session as far as the clock allows.
    pub fn settle(&mut self, now: DateTime<Utc>) {
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        for id in ids {
            self.settle_session(&id, now);
        }
    }

    fn recorder_healthy(&self, recorder_id: &str) -> bool {
        self.recorders
            .get(recorder_id)
            .is_some_and(|r| r.fault.is_none())
    }

    fn settle_session(&mut self, id: &str, now: DateTime<Utc>) {
        loop {
            let Some(session) = self.sessions.get(id) else {
                return;
            };
            let next = match (session.state, &session.schedule) {
                (SessionState::Scheduled, Some(schedule)) if !session.missed => {
                    let begin = schedule.start + session.late_by;
                    let stop = schedule.end - session.early_by;
                    if now < begin {
                        None
                    } else if begin < stop && self.recorder_healthy(&schedule.recorder_id) {
                        Some(Step::StartRecording(begin))
                    } else {
                        // Nothing captured then; a recorder healed later does not go back.
                        Some(Step::Miss)
                    }
                }
                (SessionState::Recording | SessionState::Broadcasting, Some(schedule)) => {
                    let stop = schedule.end - session.early_by;
                    (now >= stop).then_some(Step::StopRecording(stop))
                }
                (SessionState::Processing, _) => session
                    .recorded_until
                    .map(|until| until + self.timings.processing)
                    .filter(|done| now >= *done)
                    .map(Step::Complete),
                (SessionState::Complete, _) => session
                    .captions_due
                    .filter(|due| {
                        now >= *due && !session.captions.iter().any(|c| c.provider.is_some())
                    })
                    .map(Step::MachineCaptions),
                _ => None,
            };
            let Some(step) = next else {
                return;
            };
            self.apply(id, step);
        }
    }

    fn apply(&mut self, id: &str, step: Step) {
        let caption_provider = self
            .sessions
            .get(id)
            .and_then(|s| self.folders.get(&s.folder_id))
            .and_then(|f| f.caption_provider.clone());
        let captions_after = self.timings.captions;
        let Some(session) = self.sessions.get_mut(id) else {
            return;
        };
        match step {
            Step::Miss => session.missed = true,
            Step::StartRecording(at) => {
                let broadcast = session.schedule.as_ref().is_some_and(|s| s.is_broadcast);
                session.state = if broadcast {
                    SessionState::Broadcasting
                } else {
                    SessionState::Recording
                };
                session.recorded_from = Some(at);
            }
            Step::StopRecording(at) => {
                session.state = SessionState::Processing;
                session.recorded_until = Some(at);
            }
            Step::Complete(at) => {
                session.state = SessionState::Complete;
                session.completed_at = Some(at);
                session.captions_due = match (caption_provider.is_some(), session.caption_plan) {
                    (false, _) | (_, CaptionPlan::Never) => None,
                    (true, CaptionPlan::OnTime) => Some(at + captions_after),
                    (true, CaptionPlan::Late(extra)) => Some(at + captions_after + extra),
                };
            }
            Step::MachineCaptions(at) => {
                if let Some(provider) = caption_provider {
                    session.captions.push(Caption {
                        language: "English_USA".into(),
                        provider: Some(provider),
                        content: b"1\n00:00:00,000 --> 00:00:05,000\n[machine captions]\n".to_vec(),
                        added_at: at,
                    });
                }
            }
        }
    }

    /// The recorder's state now (after [`World::settle`]).
    pub fn recorder_state(&self, recorder_id: &str) -> Option<RecorderState> {
        let recorder = self.recorders.get(recorder_id)?;
        Some(match recorder.fault {
            Some(RecorderFault::Faulted) => RecorderState::Faulted,
            Some(RecorderFault::Disconnected) => RecorderState::Disconnected,
            None if self.sessions.values().any(|s| {
                s.is_capturing()
                    && s.schedule
                        .as_ref()
                        .is_some_and(|sch| sch.recorder_id == recorder_id)
            }) =>
            {
                RecorderState::Recording
            }
            None => RecorderState::Previewing,
        })
    }

    /// Session ids booked on a recorder, soonest first.
    pub fn recorder_bookings(&self, recorder_id: &str) -> Vec<String> {
        let mut booked: Vec<&Session> = self
            .sessions
            .values()
            .filter(|s| {
                s.schedule
                    .as_ref()
                    .is_some_and(|sch| sch.recorder_id == recorder_id)
            })
            .collect();
        booked.sort_by_key(|s| s.schedule.as_ref().map(|sch| sch.start));
        booked.into_iter().map(|s| s.id.clone()).collect()
    }

    // --- folders, recorders, sessions ----------------------------------------------------

    pub fn add_folder(
        &mut self,
        name: &str,
        parent: Option<&str>,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<String, PanoptoSimError> {
        if let Some(parent) = parent
            && !self.folders.contains_key(parent)
        {
            return Err(not_found("folder", parent));
        }
        if name.trim().is_empty() {
            return Err(PanoptoSimError::Invalid("a folder needs a name".into()));
        }
        let id = new_id();
        self.folders.insert(
            id.clone(),
            Folder {
                id: id.clone(),
                name: name.to_string(),
                description: description.map(str::to_string),
                parent: parent.map(str::to_string),
                caption_provider: None,
                created_at: now,
                permissions: Vec::new(),
                external_ids: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    /// Gives the folder `external_id` under `provider`, replacing the one it had there. An
    /// id another folder holds under that provider is refused: Panopto does not document
    /// whether it refuses or moves it, and a refusal never silently unlinks the other folder.
    pub fn set_folder_external_id(
        &mut self,
        folder_id: &str,
        provider: &str,
        external_id: &str,
    ) -> Result<(), PanoptoSimError> {
        if !self.folders.contains_key(folder_id) {
            return Err(not_found("folder", folder_id));
        }
        if provider.trim().is_empty() || external_id.trim().is_empty() {
            return Err(PanoptoSimError::Invalid(
                "an external id and its provider cannot be empty".into(),
            ));
        }
        if let Some((other, _)) = self
            .folders_by_external_id(&[external_id.to_string()], &[provider.to_string()])
            .into_iter()
            .find(|(f, _)| f.id != folder_id)
        {
            return Err(PanoptoSimError::Invalid(format!(
                "external id '{external_id}' of provider '{provider}' is already on folder '{}'",
                other.id
            )));
        }
        if let Some(folder) = self.folders.get_mut(folder_id) {
            folder
                .external_ids
                .insert(provider.to_string(), external_id.to_string());
        }
        Ok(())
    }

    /// Folders holding one of `external_ids` under one of `providers` (under any provider
    /// when `providers` is empty), each once, with the id it matched; in the order of
    /// `external_ids`, then of folder id.
    pub fn folders_by_external_id<'a>(
        &'a self,
        external_ids: &'a [String],
        providers: &[String],
    ) -> Vec<(&'a Folder, &'a str)> {
        let mut seen = BTreeSet::new();
        let mut found = Vec::new();
        for external_id in external_ids {
            for folder in self.folders.values() {
                let matches = folder.external_ids.iter().any(|(provider, id)| {
                    id == external_id && (providers.is_empty() || providers.contains(provider))
                });
                if matches && seen.insert(folder.id.as_str()) {
                    found.push((folder, external_id.as_str()));
                }
            }
        }
        found
    }

    pub fn provider_by_name(&self, name: &str) -> Option<&CaptionProvider> {
        self.providers
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    // --- users ----------------------------------------------------------------------------

    /// Provisions a user and answers its id. A key already provisioned (compared
    /// case-insensitively, as Panopto does) keeps its id and takes the new name (and the
    /// email, if one is given), as provisioning the same person again does.
    pub fn add_user(&mut self, user_key: &str, name: &str, email: Option<&str>) -> String {
        if let Some(id) = self.user_by_key(user_key).map(|u| u.id.clone()) {
            if let Some(user) = self.users.get_mut(&id) {
                user.name = name.to_string();
                if let Some(email) = email {
                    user.email = Some(email.to_string());
                }
            }
            return id;
        }
        let id = new_id();
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                user_key: user_key.to_string(),
                name: name.to_string(),
                email: email.map(str::to_string),
            },
        );
        id
    }

    /// The user with this key, compared case-insensitively.
    pub fn user_by_key(&self, user_key: &str) -> Option<&User> {
        let wanted = user_key.to_lowercase();
        self.users
            .values()
            .find(|u| u.user_key.to_lowercase() == wanted)
    }

    /// Users whose key, name or email contains `query` (case-insensitively; every user on
    /// `""`), by user key then id.
    pub fn search_users(&self, query: &str) -> Vec<&User> {
        let query = query.to_lowercase();
        let mut found: Vec<&User> = self.users.values().filter(|u| u.matches(&query)).collect();
        found.sort_by(|a, b| {
            (a.user_key.to_lowercase(), &a.id).cmp(&(b.user_key.to_lowercase(), &b.id))
        });
        found
    }

    pub fn add_recorder(&mut self, name: &str) -> String {
        let id = new_id();
        self.recorders.insert(
            id.clone(),
            Recorder {
                id: id.clone(),
                name: name.to_string(),
                fault: None,
                default_folder: None,
            },
        );
        id
    }

    /// A recorder fails (or heals) now; a recording on it stops here.
    pub fn set_recorder_fault(
        &mut self,
        recorder_id: &str,
        fault: Option<RecorderFault>,
        now: DateTime<Utc>,
    ) -> Result<(), PanoptoSimError> {
        self.settle(now);
        let recorder = self
            .recorders
            .get_mut(recorder_id)
            .ok_or_else(|| not_found("remote recorder", recorder_id))?;
        recorder.fault = fault;
        if fault.is_some() {
            for session in self.sessions.values_mut() {
                let on_it = session
                    .schedule
                    .as_ref()
                    .is_some_and(|s| s.recorder_id == recorder_id);
                if on_it && session.is_capturing() {
                    session.state = SessionState::Processing;
                    session.recorded_until = Some(now);
                }
            }
        }
        self.settle(now);
        Ok(())
    }

    fn new_session(&self, name: &str, folder_id: &str, now: DateTime<Utc>) -> Session {
        Session {
            id: new_id(),
            name: name.to_string(),
            description: None,
            folder_id: folder_id.to_string(),
            created_at: now,
            state: SessionState::Created,
            schedule: None,
            missed: false,
            late_by: TimeDelta::zero(),
            early_by: TimeDelta::zero(),
            recorded_from: None,
            recorded_until: None,
            completed_at: None,
            caption_plan: CaptionPlan::OnTime,
            captions_due: None,
            captions: Vec::new(),
            permissions: Vec::new(),
        }
    }

    /// A session recorded and processed in the past (already `Complete`).
    pub fn add_recorded_session(
        &mut self,
        folder_id: &str,
        name: &str,
        start: DateTime<Utc>,
        duration: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<String, PanoptoSimError> {
        if !self.folders.contains_key(folder_id) {
            return Err(not_found("folder", folder_id));
        }
        let mut session = self.new_session(name, folder_id, now.min(start));
        session.state = SessionState::Processing;
        session.recorded_from = Some(start);
        session.recorded_until = Some(start + delta(duration));
        let id = session.id.clone();
        self.sessions.insert(id.clone(), session);
        self.settle(now);
        Ok(id)
    }

    /// Books a recording: a new `Scheduled` session in the folder, unless the recorder is
    /// booked then (with `resolve_conflicts` the other bookings are cancelled instead).
    pub fn book(
        &mut self,
        booking: Booking,
        resolve_conflicts: bool,
        now: DateTime<Utc>,
    ) -> Result<String, BookingError> {
        self.settle(now);
        self.check_booking(&booking.folder_id, &booking.schedule, now)?;
        if let Err(conflict) = self.check_conflict(&booking.schedule, None) {
            if !resolve_conflicts {
                return Err(conflict);
            }
            for id in self.conflicting(&booking.schedule, None) {
                self.cancel(&id);
            }
        }
        let mut session = self.new_session(&booking.name, &booking.folder_id, now);
        session.description = booking.description;
        session.state = SessionState::Scheduled;
        session.schedule = Some(booking.schedule);
        let id = session.id.clone();
        self.sessions.insert(id.clone(), session);
        self.settle(now);
        Ok(id)
    }

    fn check_booking(
        &self,
        folder_id: &str,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<(), BookingError> {
        if !self.folders.contains_key(folder_id) {
            return Err(BookingError::NotFound(format!("folder {folder_id}")));
        }
        if !self.recorders.contains_key(&schedule.recorder_id) {
            return Err(BookingError::NotFound(format!(
                "remote recorder {}",
                schedule.recorder_id
            )));
        }
        if schedule.end <= schedule.start {
            return Err(BookingError::Invalid(
                "EndTime must be after StartTime".into(),
            ));
        }
        if schedule.end <= now {
            return Err(BookingError::Invalid(
                "the recording would end in the past".into(),
            ));
        }
        if schedule.suppress_primary {
            return Err(BookingError::Invalid(
                "at least one recorder must capture the primary stream".into(),
            ));
        }
        Ok(())
    }

    fn conflicting(&self, schedule: &Schedule, except: Option<&str>) -> Vec<String> {
        self.sessions
            .values()
            .filter(|s| Some(s.id.as_str()) != except)
            .filter(|s| {
                s.schedule.as_ref().is_some_and(|other| {
                    other.recorder_id == schedule.recorder_id
                        && other.start < schedule.end
                        && schedule.start < other.end
                })
            })
            .map(|s| s.id.clone())
            .collect()
    }

    fn check_conflict(
        &self,
        schedule: &Schedule,
        except: Option<&str>,
    ) -> Result<(), BookingError> {
        match self
            .conflicting(schedule, except)
            .first()
            .and_then(|id| self.sessions.get(id))
        {
            Some(other) => Err(BookingError::Conflict {
                session_id: other.id.clone(),
                session_name: other.name.clone(),
                recorder_id: schedule.recorder_id.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Moves a booking: only before it starts recording; its end while it records.
    pub fn reschedule(
        &mut self,
        id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        resolve_conflicts: bool,
        now: DateTime<Utc>,
    ) -> Result<(), BookingError> {
        self.settle(now);
        let session = self
            .sessions
            .get(id)
            .ok_or_else(|| BookingError::NotFound(format!("scheduled recording {id}")))?;
        let Some(current) = session.schedule.clone() else {
            return Err(BookingError::NotFound(format!("scheduled recording {id}")));
        };
        match session.state {
            SessionState::Scheduled => {}
            SessionState::Recording | SessionState::Broadcasting if start == current.start => {}
            SessionState::Recording | SessionState::Broadcasting => {
                return Err(BookingError::Invalid(
                    "the recording has started: only its end can change".into(),
                ));
            }
            _ => return Err(BookingError::Invalid("the recording is over".into())),
        }
        let schedule = Schedule {
            start,
            end,
            ..current
        };
        let folder_id = session.folder_id.clone();
        self.check_booking(&folder_id, &schedule, now)?;
        if let Err(conflict) = self.check_conflict(&schedule, Some(id)) {
            if !resolve_conflicts {
                return Err(conflict);
            }
            for other in self.conflicting(&schedule, Some(id)) {
                self.cancel(&other);
            }
        }
        if let Some(session) = self.sessions.get_mut(id) {
            session.schedule = Some(schedule);
            session.missed = false;
        }
        self.settle(now);
        Ok(())
    }

    /// Cancels a booking that has not started recording (its session goes with it).
    pub fn cancel_booking(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), BookingError> {
        self.settle(now);
        match self.sessions.get(id) {
            Some(s) if s.schedule.is_some() && s.state == SessionState::Scheduled => {
                self.cancel(id);
                Ok(())
            }
            Some(s) if s.schedule.is_some() => Err(BookingError::Invalid(format!(
                "the recording is {}: it can no longer be cancelled",
                s.state.as_str()
            ))),
            _ => Err(BookingError::NotFound(format!("scheduled recording {id}"))),
        }
    }

    fn cancel(&mut self, id: &str) {
        self.sessions.remove(id);
        self.duplicated.remove(id);
    }

    pub fn delete_session(&mut self, id: &str) -> bool {
        let existed = self.sessions.contains_key(id);
        self.cancel(id);
        existed
    }

    pub fn session_mut(&mut self, id: &str) -> Result<&mut Session, PanoptoSimError> {
        self.sessions
            .get_mut(id)
            .ok_or_else(|| not_found("session", id))
    }

    /// A rename and/or move (over REST or by hand).
    pub fn update_session(
        &mut self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
        folder: Option<&str>,
    ) -> Result<(), PanoptoSimError> {
        if let Some(folder) = folder
            && !self.folders.contains_key(folder)
        {
            return Err(not_found("folder", folder));
        }
        let session = self.session_mut(id)?;
        if let Some(name) = name {
            session.name = name.to_string();
        }
        if let Some(description) = description {
            session.description = Some(description.to_string());
        }
        if let Some(folder) = folder {
            session.folder_id = folder.to_string();
        }
        Ok(())
    }

    /// Forces a session through to `Complete` now: what was booked counts as captured from
    /// its start up to now (or its end), or its whole slot if that is still ahead.
    pub fn complete_now(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), PanoptoSimError> {
        self.settle(now);
        let session = self.session_mut(id)?;
        if session.state == SessionState::Complete {
            return Ok(());
        }
        let slot = session.schedule.as_ref().map(|s| (s.start, s.end));
        let (from, until) = match (session.recorded_from, slot) {
            (Some(from), _) => (from, session.recorded_until.unwrap_or(now.max(from))),
            (None, Some((start, end))) if now <= start => (start, end),
            (None, Some((start, end))) => (start, now.min(end)),
            (None, None) => (now, now),
        };
        session.recorded_from = Some(from);
        session.recorded_until = Some(until);
        session.state = SessionState::Processing;
        self.apply(id, Step::Complete(now));
        self.settle(now);
        Ok(())
    }

    /// A page of `items` (Panopto pages hold 50 and count from 0).
    pub fn page<T: Clone>(items: &[T], page: usize) -> Vec<T> {
        items
            .iter()
            .skip(page.saturating_mul(super::PAGE_SIZE))
            .take(super::PAGE_SIZE)
            .cloned()
            .collect()
    }

    /// Sessions as a listing shows them: each duplicated one twice, next to itself.
    pub fn listed<'a>(&'a self, sessions: Vec<&'a Session>) -> Vec<&'a Session> {
        let mut out = Vec::with_capacity(sessions.len());
        for s in sessions {
            out.push(s);
            if self.duplicated.contains(&s.id) {
                out.push(s);
            }
        }
        out
    }
}

enum Step {
    Miss,
    StartRecording(DateTime<Utc>),
    StopRecording(DateTime<Utc>),
    Complete(DateTime<Utc>),
    MachineCaptions(DateTime<Utc>),
}

pub(crate) fn not_found(kind: &'static str, id: &str) -> PanoptoSimError {
    PanoptoSimError::NotFound {
        kind,
        id: id.to_string(),
    }
}
