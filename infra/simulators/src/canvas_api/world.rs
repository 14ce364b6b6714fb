//! The data the API simulator serves, and the live events its mutations emit.
//!
//! Every id is stored in its global form (`SHARD * 10^13 + local`); lookups accept both
//! forms, as Canvas does. Entities keep their live-event `workflow_state`, so a mutation can
//! emit exactly the event Canvas would, and the API derives its own field forms from it
//! (course `claimed` → `unpublished`, module item `active` → `published: true`).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::ApiSimError;
use crate::canvas_live_events::{SHARD_FACTOR, SimEvent, global_id, split_global_id};

/// First local id the simulator allocates (synthetic worlds, API-created objects, test
/// mutations). Scenario ids start from seeded bases below 10^10, so these never collide.
pub const LOCAL_ID_BASE: u64 = 1_000_000_000_000;

const SIS_JOB_TAG: &str = "SIS::CSV::ImportRefactored#run_parallel_importer";
const DEFAULT_HOST: &str = "canvas-sim.instructure.com";
const DEFAULT_ROOT_UUID: &str = "SimRootAccountUuid0000000000000000000000";
const BROWSER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) Canvas simulator browser";
pub(crate) const ENROLLMENT_STATES: [&str; 7] = [
    "active",
    "invited",
    "inactive",
    "completed",
    "deleted",
    "creation_pending",
    "rejected",
];
pub(crate) const ENROLLMENT_TYPES: [&str; 6] = [
    "StudentEnrollment",
    "TeacherEnrollment",
    "TaEnrollment",
    "ObserverEnrollment",
    "DesignerEnrollment",
    "StudentViewEnrollment",
];

/// Global form of an id that may be shard-local (`565` → `21070000000000565`).
pub fn to_global(id: u64) -> u64 {
    if id < SHARD_FACTOR { global_id(id) } else { id }
}

/// Shard-local form of a global id.
pub(crate) fn local_part(id: u64) -> u64 {
    split_global_id(id).map_or(id, |(_, local)| local)
}

pub(crate) fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn rfc3339_s(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Course {
    pub id: u64,
    /// The (sub-)account the course lives in.
    pub account_id: u64,
    pub name: String,
    pub course_code: String,
    pub sis_course_id: Option<String>,
    pub uuid: String,
    /// Live-event form: `created`, `claimed`, `available`, `completed`, `deleted`.
    pub workflow_state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Course {
    /// REST form: `unpublished` (created, claimed), `available`, `completed`, `deleted`.
    pub fn api_state(&self) -> &str {
        match self.workflow_state.as_str() {
            "created" | "claimed" => "unpublished",
            other => other,
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.workflow_state == "deleted"
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub id: u64,
    pub course_id: u64,
    pub name: String,
    pub sis_section_id: Option<String>,
    pub integration_id: Option<String>,
    pub start_at: Option<String>,
    pub end_at: Option<String>,
    pub nonxlist_course_id: Option<u64>,
    pub restrict_enrollments_to_section_dates: bool,
    pub default_section: bool,
    pub accepting_enrollments: bool,
    pub enrollment_term_id: Option<String>,
    /// `active` or `deleted`.
    pub workflow_state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Section {
    pub fn is_deleted(&self) -> bool {
        self.workflow_state == "deleted"
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub short_name: String,
    pub sortable_name: String,
    pub sis_user_id: Option<String>,
    pub login_id: Option<String>,
    pub uuid: String,
    pub workflow_state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    pub id: u64,
    pub course_id: u64,
    pub course_section_id: u64,
    pub user_id: u64,
    /// `StudentEnrollment`, `TeacherEnrollment`, ...
    pub enrollment_type: String,
    /// Live-event `workflow_state`; the API's `enrollment_state` has the same values.
    pub workflow_state: String,
    pub limit_privileges_to_course_section: bool,
    pub associated_user_id: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Enrollment {
    /// The API's `enrollment_state`.
    pub fn enrollment_state(&self) -> &str {
        &self.workflow_state
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub id: u64,
    pub course_id: u64,
    pub name: String,
    pub description: Option<String>,
    pub due_at: Option<String>,
    pub lock_at: Option<String>,
    pub unlock_at: Option<String>,
    pub points_possible: Option<f64>,
    pub submission_types: Vec<String>,
    pub assignment_group_id: Option<u64>,
    /// `unpublished`, `published`, `deleted`.
    pub workflow_state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub id: u64,
    pub assignment_id: u64,
    pub user_id: u64,
    pub submission_type: Option<String>,
    pub submitted_at: Option<String>,
    pub grade: Option<String>,
    pub score: Option<f64>,
    pub graded_at: Option<String>,
    /// `submitted`, `graded`, `unsubmitted`, ...
    pub workflow_state: String,
    pub late: bool,
    pub missing: bool,
    pub attempt: Option<i64>,
    pub body: Option<String>,
    pub url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    pub id: u64,
    pub course_id: u64,
    pub name: String,
    pub position: i64,
    /// `active` (published), `unpublished`, `deleted`.
    pub workflow_state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Module {
    pub fn published(&self) -> bool {
        self.workflow_state == "active"
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModuleItem {
    pub id: u64,
    pub module_id: u64,
    pub course_id: u64,
    pub position: i64,
    pub title: String,
    pub indent: i64,
    /// API `type`: `ExternalUrl`, `SubHeader`, `Assignment`, ...
    pub item_type: String,
    pub content_id: Option<u64>,
    pub external_url: Option<String>,
    pub new_tab: bool,
    /// `active` (published), `unpublished`, `deleted`.
    pub workflow_state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ModuleItem {
    pub fn published(&self) -> bool {
        self.workflow_state == "active"
    }
}

/// Who caused a mutation; decides the live event's metadata, as in Canvas: a background
/// job (`job_id`, `job_tag`) or an HTTP request (`request_id`, `user_id`, `hostname`...).
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Job { tag: String },
    Request(RequestOrigin),
}

impl Origin {
    /// A SIS import, the origin of the test-facing roster mutations.
    pub fn sis_import() -> Self {
        Self::Job {
            tag: SIS_JOB_TAG.into(),
        }
    }

    /// A person in Canvas's web UI (a browser session, no developer key), e.g. a teacher
    /// deleting a module by hand: `path` is the UI's, such as `/courses/1/modules/2`.
    pub fn browser(user_id: u64, http_method: &str, path: &str) -> Self {
        Self::Request(RequestOrigin {
            user_id,
            developer_key_id: String::new(),
            http_method: http_method.to_string(),
            path: path.to_string(),
            user_agent: Some(BROWSER_AGENT.into()),
        })
    }
}

/// The API request behind a mutation.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestOrigin {
    pub user_id: u64,
    /// The developer key (OAuth client id) of the token; empty for a browser session.
    pub developer_key_id: String,
    pub http_method: String,
    /// Path and query as requested, e.g. `/api/v1/courses/1/modules/2/items`.
    pub path: String,
    pub user_agent: Option<String>,
}

/// `POST .../modules/:id/items` parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewModuleItem {
    /// `ExternalUrl` or `SubHeader` (others are Canvas types the simulator does not model).
    pub item_type: Option<String>,
    pub title: Option<String>,
    pub external_url: Option<String>,
    pub position: Option<i64>,
    pub new_tab: bool,
    pub indent: Option<i64>,
}

/// `PUT .../modules/:id/items/:id` parameters; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModuleItemUpdate {
    pub title: Option<String>,
    pub position: Option<i64>,
    pub published: Option<bool>,
    pub indent: Option<i64>,
    pub external_url: Option<String>,
    pub new_tab: Option<bool>,
}

/// `PUT .../modules/:id` parameters; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModuleUpdate {
    pub name: Option<String>,
    pub published: Option<bool>,
    /// Canvas (un)publishes the module's items with it unless this is set.
    pub skip_content_tags: bool,
}

/// Everything the simulated Canvas knows. Maps are keyed by global id.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    /// Root account id (local form, default 1): `/api/v1/accounts/1/courses` lists every course.
    pub account_id: u64,
    pub hostname: String,
    pub root_account_uuid: String,
    /// The user every OAuth grant belongs to (an account admin).
    pub api_user: User,
    pub courses: BTreeMap<u64, Course>,
    pub sections: BTreeMap<u64, Section>,
    pub users: BTreeMap<u64, User>,
    pub enrollments: BTreeMap<u64, Enrollment>,
    pub assignments: BTreeMap<u64, Assignment>,
    pub submissions: BTreeMap<u64, Submission>,
    pub modules: BTreeMap<u64, Module>,
    pub module_items: BTreeMap<u64, ModuleItem>,
    /// Latest event time applied or emitted: new events are never older, so they win
    /// last-writer-wins against the scenario they follow.
    pub clock: DateTime<Utc>,
    next_local: u64,
    next_job: u64,
}

impl Default for World {
    fn default() -> Self {
        let epoch = DateTime::UNIX_EPOCH;
        Self {
            account_id: 1,
            hostname: DEFAULT_HOST.into(),
            root_account_uuid: DEFAULT_ROOT_UUID.into(),
            api_user: User {
                id: global_id(1),
                name: "Sim Admin".into(),
                short_name: "Sim".into(),
                sortable_name: "Admin, Sim".into(),
                sis_user_id: Some("SIM-ADMIN".into()),
                login_id: Some("admin@sim.example.edu".into()),
                uuid: "SimAdminUuid0000000000000000000000000000".into(),
                workflow_state: "registered".into(),
                created_at: epoch,
                updated_at: epoch,
            },
            courses: BTreeMap::new(),
            sections: BTreeMap::new(),
            users: BTreeMap::new(),
            enrollments: BTreeMap::new(),
            assignments: BTreeMap::new(),
            submissions: BTreeMap::new(),
            modules: BTreeMap::new(),
            module_items: BTreeMap::new(),
            clock: epoch,
            next_local: LOCAL_ID_BASE,
            next_job: 5_000_000_000_000,
        }
    }
}

// --- reading live-event bodies ---------------------------------------------------------

fn text(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_string)
}

/// `Some(None)` when the key is present and null: a nullable field set to null.
fn nullable_text(body: &Value, key: &str) -> Option<Option<String>> {
    match body.get(key)? {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s.clone())),
        other => Some(Some(other.to_string())),
    }
}

fn raw_id(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn id_of(body: &Value, key: &str) -> Option<u64> {
    body.get(key).and_then(raw_id).map(to_global)
}

fn time_of(body: &Value, key: &str) -> Option<DateTime<Utc>> {
    let s = body.get(key)?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn flag(body: &Value, key: &str) -> Option<bool> {
    body.get(key).and_then(Value::as_bool)
}

fn number(body: &Value, key: &str) -> Option<f64> {
    match body.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn int(body: &Value, key: &str) -> Option<i64> {
    match body.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `"Linear Algebra (MATH 123)"` → `"MATH 123"`; the name itself otherwise.
fn course_code_of(name: &str) -> String {
    match (name.rfind('('), name.rfind(')')) {
        (Some(open), Some(close)) if open < close => name[open + 1..close].to_string(),
        _ => name.to_string(),
    }
}

/// `"Ada Lovelace"` → `"Lovelace, Ada"`, as Canvas derives sortable names.
fn sortable_name_of(name: &str) -> String {
    match name.trim().rsplit_once(' ') {
        Some((first, last)) => format!("{last}, {first}"),
        None => name.trim().to_string(),
    }
}

fn short_name_of(name: &str) -> String {
    name.split_whitespace().next().unwrap_or(name).to_string()
}

fn new_user(id: u64, name: &str, at: DateTime<Utc>) -> User {
    User {
        id,
        name: name.to_string(),
        short_name: short_name_of(name),
        sortable_name: sortable_name_of(name),
        sis_user_id: None,
        login_id: None,
        uuid: String::new(),
        workflow_state: "registered".into(),
        created_at: at,
        updated_at: at,
    }
}

impl World {
    /// Folds Canvas-form live events in `event_time` order (ties keep input order): each
    /// field takes the last value an event carried, `workflow_state: "deleted"` deletes.
    pub fn from_events(events: &[SimEvent]) -> Self {
        let mut order: Vec<&SimEvent> = events.iter().collect();
        order.sort_by_key(|e| e.event_time);
        let mut world = Self::default();
        let mut uuid_seen = false;
        let mut host_seen = false;
        let mut course_sis: BTreeMap<u64, String> = BTreeMap::new();
        for event in order {
            let meta = &event.canvas["metadata"];
            let body = &event.canvas["body"];
            if !uuid_seen && let Some(uuid) = text(meta, "root_account_uuid") {
                world.root_account_uuid = uuid;
                uuid_seen = true;
            }
            if !host_seen && let Some(host) = text(meta, "hostname") {
                world.hostname = host;
                host_seen = true;
            }
            if text(meta, "context_type").as_deref() == Some("Course")
                && let (Some(course), Some(sis)) = (
                    id_of(meta, "context_id"),
                    text(meta, "context_sis_source_id"),
                )
            {
                course_sis.insert(course, sis);
            }
            world.clock = world.clock.max(event.event_time);
            let t = event.event_time;
            match event.event_name.as_str() {
                "course_created" | "course_updated" => world.apply_course(body, t),
                "course_section_created" | "course_section_updated" => world.apply_section(body, t),
                "user_created" | "user_updated" => world.apply_user(body, t),
                "enrollment_created" | "enrollment_updated" => world.apply_enrollment(body, t),
                "assignment_created" | "assignment_updated" => world.apply_assignment(body, t),
                "submission_created" | "submission_updated" | "grade_change" => {
                    world.apply_submission(body, t)
                }
                "module_created" | "module_updated" => world.apply_module(body, t),
                "module_item_created" | "module_item_updated" => world.apply_module_item(body, t),
                _ => {}
            }
        }
        for (course, sis) in course_sis {
            if let Some(c) = world.courses.get_mut(&course) {
                c.sis_course_id = Some(sis);
            }
        }
        world.describe_module_items();
        world
    }

    fn apply_course(&mut self, b: &Value, t: DateTime<Utc>) {
        let Some(id) = id_of(b, "course_id") else {
            return;
        };
        let account = to_global(self.account_id);
        let c = self.courses.entry(id).or_insert_with(|| Course {
            id,
            account_id: account,
            name: String::new(),
            course_code: String::new(),
            sis_course_id: None,
            uuid: String::new(),
            workflow_state: "created".into(),
            created_at: t,
            updated_at: t,
        });
        if let Some(v) = id_of(b, "account_id") {
            c.account_id = v;
        }
        if let Some(v) = text(b, "name") {
            c.course_code = course_code_of(&v);
            c.name = v;
        }
        if let Some(v) = text(b, "uuid") {
            c.uuid = v;
        }
        if let Some(v) = text(b, "workflow_state") {
            c.workflow_state = v;
        }
        if let Some(v) = time_of(b, "created_at") {
            c.created_at = v;
        }
        c.updated_at = time_of(b, "updated_at").unwrap_or(t);
    }

    fn apply_section(&mut self, b: &Value, t: DateTime<Utc>) {
        let (Some(id), Some(course)) = (id_of(b, "course_section_id"), id_of(b, "course_id"))
        else {
            return;
        };
        let s = self.sections.entry(id).or_insert_with(|| Section {
            id,
            course_id: course,
            name: String::new(),
            sis_section_id: None,
            integration_id: None,
            start_at: None,
            end_at: None,
            nonxlist_course_id: None,
            restrict_enrollments_to_section_dates: false,
            default_section: false,
            accepting_enrollments: true,
            enrollment_term_id: None,
            workflow_state: "active".into(),
            created_at: t,
            updated_at: t,
        });
        s.course_id = course;
        if let Some(v) = text(b, "name") {
            s.name = v;
        }
        if let Some(v) = nullable_text(b, "sis_source_id") {
            s.sis_section_id = v;
        }
        if let Some(v) = nullable_text(b, "integration_id") {
            s.integration_id = v;
        }
        if let Some(v) = nullable_text(b, "start_at") {
            s.start_at = v;
        }
        if let Some(v) = nullable_text(b, "end_at") {
            s.end_at = v;
        }
        if b.get("nonxlist_course_id").is_some() {
            s.nonxlist_course_id = id_of(b, "nonxlist_course_id");
        }
        if let Some(v) = flag(b, "restrict_enrollments_to_section_dates") {
            s.restrict_enrollments_to_section_dates = v;
        }
        if let Some(v) = flag(b, "default_section") {
            s.default_section = v;
        }
        if let Some(v) = flag(b, "accepting_enrollments") {
            s.accepting_enrollments = v;
        }
        if let Some(v) = nullable_text(b, "enrollment_term_id") {
            s.enrollment_term_id = v;
        }
        if let Some(v) = text(b, "workflow_state") {
            s.workflow_state = v;
        }
        s.updated_at = t;
    }

    fn apply_user(&mut self, b: &Value, t: DateTime<Utc>) {
        let Some(id) = id_of(b, "user_id") else {
            return;
        };
        let u = self.users.entry(id).or_insert_with(|| new_user(id, "", t));
        if let Some(v) = text(b, "name") {
            u.sortable_name = sortable_name_of(&v);
            u.name = v;
        }
        if let Some(v) = text(b, "short_name") {
            u.short_name = v;
        }
        if let Some(v) = nullable_text(b, "user_sis_id") {
            u.sis_user_id = v;
        }
        if let Some(v) = nullable_text(b, "user_login") {
            u.login_id = v;
        }
        if let Some(v) = text(b, "uuid") {
            u.uuid = v;
        }
        if let Some(v) = text(b, "workflow_state") {
            u.workflow_state = v;
        }
        if let Some(v) = time_of(b, "created_at") {
            u.created_at = v;
        }
        u.updated_at = t;
    }

    fn apply_enrollment(&mut self, b: &Value, t: DateTime<Utc>) {
        let (Some(id), Some(course), Some(section), Some(user)) = (
            id_of(b, "enrollment_id"),
            id_of(b, "course_id"),
            id_of(b, "course_section_id"),
            id_of(b, "user_id"),
        ) else {
            return;
        };
        if let Some(name) = text(b, "user_name") {
            self.users
                .entry(user)
                .or_insert_with(|| new_user(user, &name, t));
        }
        let e = self.enrollments.entry(id).or_insert_with(|| Enrollment {
            id,
            course_id: course,
            course_section_id: section,
            user_id: user,
            enrollment_type: "StudentEnrollment".into(),
            workflow_state: "invited".into(),
            limit_privileges_to_course_section: false,
            associated_user_id: None,
            created_at: t,
            updated_at: t,
        });
        e.course_id = course;
        e.course_section_id = section;
        e.user_id = user;
        if let Some(v) = text(b, "type") {
            e.enrollment_type = v;
        }
        if let Some(v) = text(b, "workflow_state") {
            e.workflow_state = v;
        }
        if let Some(v) = flag(b, "limit_privileges_to_course_section") {
            e.limit_privileges_to_course_section = v;
        }
        if b.get("associated_user_id").is_some() {
            e.associated_user_id = id_of(b, "associated_user_id");
        }
        if let Some(v) = time_of(b, "created_at") {
            e.created_at = v;
        }
        e.updated_at = time_of(b, "updated_at").unwrap_or(t);
    }

    fn apply_assignment(&mut self, b: &Value, t: DateTime<Utc>) {
        let Some(id) = id_of(b, "assignment_id") else {
            return;
        };
        let course = id_of(b, "context_id").unwrap_or_default();
        let a = self.assignments.entry(id).or_insert_with(|| Assignment {
            id,
            course_id: course,
            name: String::new(),
            description: None,
            due_at: None,
            lock_at: None,
            unlock_at: None,
            points_possible: None,
            submission_types: Vec::new(),
            assignment_group_id: None,
            workflow_state: "unpublished".into(),
            created_at: t,
            updated_at: t,
        });
        if course != 0 {
            a.course_id = course;
        }
        if let Some(v) = text(b, "title") {
            a.name = v;
        }
        if let Some(v) = nullable_text(b, "description") {
            a.description = v;
        }
        if let Some(v) = nullable_text(b, "due_at") {
            a.due_at = v;
        }
        if let Some(v) = nullable_text(b, "lock_at") {
            a.lock_at = v;
        }
        if let Some(v) = nullable_text(b, "unlock_at") {
            a.unlock_at = v;
        }
        if let Some(v) = number(b, "points_possible") {
            a.points_possible = Some(v);
        }
        if let Some(v) = text(b, "submission_types") {
            a.submission_types = v.split(',').map(str::to_string).collect();
        }
        if let Some(v) = id_of(b, "assignment_group_id") {
            a.assignment_group_id = Some(v);
        }
        if let Some(v) = text(b, "workflow_state") {
            a.workflow_state = v;
        }
        a.updated_at = t;
    }

    fn apply_submission(&mut self, b: &Value, t: DateTime<Utc>) {
        let Some(id) = id_of(b, "submission_id") else {
            return;
        };
        let s = self.submissions.entry(id).or_insert_with(|| Submission {
            id,
            assignment_id: 0,
            user_id: 0,
            submission_type: None,
            submitted_at: None,
            grade: None,
            score: None,
            graded_at: None,
            workflow_state: "unsubmitted".into(),
            late: false,
            missing: false,
            attempt: None,
            body: None,
            url: None,
            created_at: t,
            updated_at: t,
        });
        if let Some(v) = id_of(b, "assignment_id") {
            s.assignment_id = v;
        }
        if let Some(v) = id_of(b, "user_id") {
            s.user_id = v;
        }
        // Null grades and scores (an ungraded submission event) do not erase earlier ones,
        // as in the scenario's truth.
        if let Some(v) = text(b, "submission_type") {
            s.submission_type = Some(v);
        }
        if let Some(v) = text(b, "submitted_at") {
            s.submitted_at = Some(v);
        }
        if let Some(v) = text(b, "grade") {
            s.grade = Some(v);
        }
        if let Some(v) = number(b, "score") {
            s.score = Some(v);
        }
        if let Some(v) = text(b, "graded_at") {
            s.graded_at = Some(v);
        }
        if let Some(v) = text(b, "workflow_state") {
            s.workflow_state = v;
        }
        if let Some(v) = flag(b, "late") {
            s.late = v;
        }
        if let Some(v) = flag(b, "missing") {
            s.missing = v;
        }
        if let Some(v) = int(b, "attempt") {
            s.attempt = Some(v);
        }
        if let Some(v) = nullable_text(b, "body") {
            s.body = v;
        }
        if let Some(v) = nullable_text(b, "url") {
            s.url = v;
        }
        s.updated_at = t;
    }

    fn apply_module(&mut self, b: &Value, t: DateTime<Utc>) {
        let Some(id) = id_of(b, "module_id") else {
            return;
        };
        let course = id_of(b, "context_id").unwrap_or_default();
        let m = self.modules.entry(id).or_insert_with(|| Module {
            id,
            course_id: course,
            name: String::new(),
            position: 1,
            workflow_state: "active".into(),
            created_at: t,
            updated_at: t,
        });
        if course != 0 {
            m.course_id = course;
        }
        if let Some(v) = text(b, "name") {
            m.name = v;
        }
        if let Some(v) = int(b, "position") {
            m.position = v;
        }
        if let Some(v) = text(b, "workflow_state") {
            m.workflow_state = v;
        }
        m.updated_at = t;
    }

    fn apply_module_item(&mut self, b: &Value, t: DateTime<Utc>) {
        let (Some(id), Some(module)) = (id_of(b, "module_item_id"), id_of(b, "module_id")) else {
            return;
        };
        let course = id_of(b, "context_id").unwrap_or_default();
        let i = self.module_items.entry(id).or_insert_with(|| ModuleItem {
            id,
            module_id: module,
            course_id: course,
            position: 1,
            title: format!("Item {}", local_part(id)),
            indent: 0,
            item_type: "SubHeader".into(),
            content_id: None,
            external_url: None,
            new_tab: false,
            workflow_state: "active".into(),
            created_at: t,
            updated_at: t,
        });
        i.module_id = module;
        if course != 0 {
            i.course_id = course;
        }
        if let Some(v) = int(b, "position") {
            i.position = v;
        }
        if let Some(v) = text(b, "workflow_state") {
            i.workflow_state = v;
        }
        i.updated_at = t;
    }

    /// Module-item events carry no title or type. The scenario gives each live assignment
    /// one item, in creation order, so pair them that way where the counts agree.
    fn describe_module_items(&mut self) {
        let courses: Vec<u64> = self.courses.keys().copied().collect();
        for course in courses {
            let mut items: Vec<&ModuleItem> = self
                .module_items
                .values()
                .filter(|i| i.course_id == course && i.item_type == "SubHeader")
                .collect();
            items.sort_by_key(|i| (i.created_at, i.id));
            let mut assignments: Vec<&Assignment> = self
                .assignments
                .values()
                .filter(|a| a.course_id == course && a.workflow_state != "deleted")
                .collect();
            assignments.sort_by_key(|a| (a.created_at, a.id));
            if items.is_empty() || items.len() != assignments.len() {
                continue;
            }
            let pairs: Vec<(u64, u64, String)> = items
                .iter()
                .zip(&assignments)
                .map(|(i, a)| (i.id, a.id, a.name.clone()))
                .collect();
            for (item, assignment, title) in pairs {
                if let Some(i) = self.module_items.get_mut(&item) {
                    i.item_type = "Assignment".into();
                    i.content_id = Some(assignment);
                    i.title = title;
                }
            }
        }
    }

    /// A benchmark world: `courses` available courses, each with 1–3 sections, one teacher,
    /// a seeded uniform number of students from `students`, two modules with items.
    pub fn synthetic(seed: u64, courses: usize, students: RangeInclusive<usize>) -> Self {
        const FIRST: [&str; 12] = [
            "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Claude", "Radia",
            "Hedy", "Leslie", "Robin",
        ];
        const LAST: [&str; 12] = [
            "Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Shannon",
            "Perlman", "Lamarr", "Lamport", "Milner",
        ];
        let mut rng = StdRng::seed_from_u64(seed);
        let mut w = Self::default();
        let t0 = Utc
            .with_ymd_and_hms(2025, 8, 25, 13, 0, 0)
            .single()
            .unwrap_or(DateTime::UNIX_EPOCH);
        let (lo, hi) = (*students.start(), *students.end().max(students.start()));
        let account = to_global(w.account_id);
        let mut tick = 0i64;
        let mut at = move || {
            tick += 1;
            t0 + chrono::Duration::milliseconds(tick * 10)
        };
        for c in 0..courses {
            let course_id = w.new_id();
            let created = at();
            w.courses.insert(
                course_id,
                Course {
                    id: course_id,
                    account_id: account,
                    name: format!("Synthetic Course {}", c + 1),
                    course_code: format!("SYN {}", c + 1),
                    sis_course_id: Some(format!("SYN.{seed}.{c:05}")),
                    uuid: random_uuid(&mut rng),
                    workflow_state: "available".into(),
                    created_at: created,
                    updated_at: created,
                },
            );
            let mut sections = Vec::new();
            for s in 0..rng.random_range(1..=3usize) {
                let id = w.new_id();
                let created = at();
                w.sections.insert(
                    id,
                    Section {
                        id,
                        course_id,
                        name: format!("Synthetic Course {} section {}", c + 1, s + 1),
                        sis_section_id: Some(format!("SYN.{seed}.{c:05}.{s}")),
                        integration_id: None,
                        start_at: None,
                        end_at: None,
                        nonxlist_course_id: None,
                        restrict_enrollments_to_section_dates: false,
                        default_section: s == 0,
                        accepting_enrollments: true,
                        enrollment_term_id: None,
                        workflow_state: "active".into(),
                        created_at: created,
                        updated_at: created,
                    },
                );
                sections.push(id);
            }
            let count = rng.random_range(lo..=hi);
            for p in 0..=count {
                let user_id = w.new_id();
                let created = at();
                let name = format!(
                    "{} {}",
                    FIRST[rng.random_range(0..FIRST.len())],
                    LAST[rng.random_range(0..LAST.len())]
                );
                let mut user = new_user(user_id, &name, created);
                user.sis_user_id = Some(format!("SYN-{}", local_part(user_id)));
                user.login_id = Some(format!("u{}@sim.example.edu", local_part(user_id)));
                user.uuid = random_uuid(&mut rng);
                w.users.insert(user_id, user);
                // p == 0 is the teacher; students spread over the sections.
                let (kind, section, state) = if p == 0 {
                    ("TeacherEnrollment", sections[0], "active")
                } else {
                    let roll: f64 = rng.random();
                    let state = if roll < 0.90 {
                        "active"
                    } else if roll < 0.95 {
                        "invited"
                    } else {
                        "completed"
                    };
                    ("StudentEnrollment", sections[p % sections.len()], state)
                };
                let id = w.new_id();
                w.enrollments.insert(
                    id,
                    Enrollment {
                        id,
                        course_id,
                        course_section_id: section,
                        user_id,
                        enrollment_type: kind.into(),
                        workflow_state: state.into(),
                        limit_privileges_to_course_section: false,
                        associated_user_id: None,
                        created_at: created,
                        updated_at: created,
                    },
                );
            }
            for m in 0..2i64 {
                let module_id = w.new_id();
                let created = at();
                w.modules.insert(
                    module_id,
                    Module {
                        id: module_id,
                        course_id,
                        name: format!("Week {}", m + 1),
                        position: m + 1,
                        workflow_state: "active".into(),
                        created_at: created,
                        updated_at: created,
                    },
                );
                for position in 1..=rng.random_range(2..=3i64) {
                    let id = w.new_id();
                    let created = at();
                    let external = position > 1;
                    w.module_items.insert(
                        id,
                        ModuleItem {
                            id,
                            module_id,
                            course_id,
                            position,
                            title: if external {
                                format!("Lecture recording {}.{}", m + 1, position - 1)
                            } else {
                                format!("Week {} overview", m + 1)
                            },
                            indent: i64::from(external),
                            item_type: if external { "ExternalUrl" } else { "SubHeader" }.into(),
                            content_id: None,
                            external_url: external.then(|| {
                                format!("https://video.sim.example.edu/watch/{}", local_part(id))
                            }),
                            new_tab: external,
                            workflow_state: "active".into(),
                            created_at: created,
                            updated_at: created,
                        },
                    );
                }
            }
        }
        w.clock = at();
        w
    }

    // --- lookups (either id form) --------------------------------------------------------

    pub fn course(&self, id: u64) -> Option<&Course> {
        self.courses.get(&to_global(id))
    }

    pub fn section(&self, id: u64) -> Option<&Section> {
        self.sections.get(&to_global(id))
    }

    /// A user, the API user included.
    pub fn user(&self, id: u64) -> Option<&User> {
        let id = to_global(id);
        if id == self.api_user.id {
            return Some(&self.api_user);
        }
        self.users.get(&id)
    }

    pub fn enrollment(&self, id: u64) -> Option<&Enrollment> {
        self.enrollments.get(&to_global(id))
    }

    pub fn module(&self, id: u64) -> Option<&Module> {
        self.modules.get(&to_global(id))
    }

    pub fn module_item(&self, id: u64) -> Option<&ModuleItem> {
        self.module_items.get(&to_global(id))
    }

    fn live_course(&self, id: u64) -> Result<&Course, ApiSimError> {
        self.course(id)
            .filter(|c| !c.is_deleted())
            .ok_or(ApiSimError::NotFound { kind: "course", id })
    }

    fn live_section(&self, id: u64) -> Result<&Section, ApiSimError> {
        self.section(id)
            .filter(|s| !s.is_deleted())
            .ok_or(ApiSimError::NotFound {
                kind: "section",
                id,
            })
    }

    // --- mutations -----------------------------------------------------------------------

    /// Next event time: now, but never older than anything already in the world.
    fn tick(&mut self) -> DateTime<Utc> {
        let now = millis(Utc::now());
        let t = if now > self.clock {
            now
        } else {
            self.clock + chrono::Duration::milliseconds(1)
        };
        self.clock = t;
        t
    }

    fn new_id(&mut self) -> u64 {
        self.next_local += 1;
        global_id(self.next_local)
    }

    /// A new user (SIS import), emits `user_created`.
    pub fn add_user(&mut self, name: &str, out: &mut Vec<SimEvent>) -> u64 {
        let t = self.tick();
        let id = self.new_id();
        let local = local_part(id);
        let mut user = new_user(id, name, t);
        user.sis_user_id = Some(format!("SIM-{local}"));
        user.login_id = Some(format!("user{local}@sim.example.edu"));
        user.uuid = uuid_text();
        user.workflow_state = "pre_registered".into();
        let body = json!({
            "created_at": rfc3339_ms(t),
            "name": user.name,
            "short_name": user.short_name,
            "updated_at": rfc3339_ms(t),
            "user_id": id.to_string(),
            "user_login": user.login_id,
            "user_sis_id": user.sis_user_id,
            "uuid": user.uuid,
            "workflow_state": user.workflow_state,
        });
        self.users.insert(id, user);
        self.emit(
            out,
            t,
            "user_created",
            &Origin::sis_import(),
            None,
            body,
            ("user", id),
        );
        id
    }

    /// A new section in a live course (SIS import), emits `course_section_created`.
    pub fn add_section(
        &mut self,
        course: u64,
        name: &str,
        out: &mut Vec<SimEvent>,
    ) -> Result<u64, ApiSimError> {
        let course = self.live_course(course)?.id;
        let t = self.tick();
        let id = self.new_id();
        let section = Section {
            id,
            course_id: course,
            name: name.to_string(),
            sis_section_id: Some(format!("SIM-SEC-{}", local_part(id))),
            integration_id: None,
            start_at: None,
            end_at: None,
            nonxlist_course_id: None,
            restrict_enrollments_to_section_dates: false,
            default_section: false,
            accepting_enrollments: true,
            enrollment_term_id: None,
            workflow_state: "active".into(),
            created_at: t,
            updated_at: t,
        };
        self.sections.insert(id, section);
        self.emit_section(out, t, "course_section_created", id);
        Ok(id)
    }

    /// Enrolls a user in a section of a course (SIS import, state `active`), emits
    /// `enrollment_created`. Enrolling the same user, section and type again restores the
    /// existing enrollment to `active` (`enrollment_updated`), as a SIS import does.
    pub fn enroll(
        &mut self,
        course: u64,
        section: u64,
        user: u64,
        enrollment_type: &str,
        out: &mut Vec<SimEvent>,
    ) -> Result<u64, ApiSimError> {
        let course = self.live_course(course)?.id;
        let section_row = self.live_section(section)?;
        if section_row.course_id != course {
            return Err(ApiSimError::Invalid(format!(
                "section {section} does not belong to course {course}"
            )));
        }
        let section = section_row.id;
        let user = self
            .user(user)
            .ok_or(ApiSimError::NotFound {
                kind: "user",
                id: user,
            })?
            .id;
        if !ENROLLMENT_TYPES.contains(&enrollment_type) {
            return Err(ApiSimError::Invalid(format!(
                "unknown enrollment type {enrollment_type}"
            )));
        }
        let existing = self
            .enrollments
            .values()
            .find(|e| {
                e.course_section_id == section
                    && e.user_id == user
                    && e.enrollment_type == enrollment_type
            })
            .map(|e| e.id);
        if let Some(id) = existing {
            self.set_enrollment_state(id, "active", out)?;
            return Ok(id);
        }
        let t = self.tick();
        let id = self.new_id();
        self.enrollments.insert(
            id,
            Enrollment {
                id,
                course_id: course,
                course_section_id: section,
                user_id: user,
                enrollment_type: enrollment_type.to_string(),
                workflow_state: "active".into(),
                limit_privileges_to_course_section: false,
                associated_user_id: None,
                created_at: t,
                updated_at: t,
            },
        );
        self.emit_enrollment(out, t, "enrollment_created", id);
        Ok(id)
    }

    /// Moves an enrollment to `state` (`deleted` included), emits `enrollment_updated`
    /// unless nothing changes.
    pub fn set_enrollment_state(
        &mut self,
        id: u64,
        state: &str,
        out: &mut Vec<SimEvent>,
    ) -> Result<(), ApiSimError> {
        if !ENROLLMENT_STATES.contains(&state) {
            return Err(ApiSimError::Invalid(format!(
                "unknown enrollment state {state}"
            )));
        }
        let id = to_global(id);
        let current = self
            .enrollments
            .get(&id)
            .ok_or(ApiSimError::NotFound {
                kind: "enrollment",
                id,
            })?
            .workflow_state
            .clone();
        if current == state {
            return Ok(());
        }
        let t = self.tick();
        if let Some(e) = self.enrollments.get_mut(&id) {
            e.workflow_state = state.to_string();
            e.updated_at = t;
        }
        self.emit_enrollment(out, t, "enrollment_updated", id);
        Ok(())
    }

    /// Renames a live section, emits `course_section_updated`.
    pub fn rename_section(
        &mut self,
        id: u64,
        name: &str,
        out: &mut Vec<SimEvent>,
    ) -> Result<(), ApiSimError> {
        let id = self.live_section(id)?.id;
        let t = self.tick();
        if let Some(s) = self.sections.get_mut(&id) {
            s.name = name.to_string();
            s.updated_at = t;
        }
        self.emit_section(out, t, "course_section_updated", id);
        Ok(())
    }

    /// Deletes a live section the way a SIS import does: its enrollments are deleted first
    /// (`enrollment_updated` each), then the section (`course_section_updated`, `deleted`).
    pub fn delete_section(&mut self, id: u64, out: &mut Vec<SimEvent>) -> Result<(), ApiSimError> {
        let id = self.live_section(id)?.id;
        let enrolled: Vec<u64> = self
            .enrollments
            .values()
            .filter(|e| e.course_section_id == id && e.workflow_state != "deleted")
            .map(|e| e.id)
            .collect();
        for enrollment in enrolled {
            self.set_enrollment_state(enrollment, "deleted", out)?;
        }
        let t = self.tick();
        if let Some(s) = self.sections.get_mut(&id) {
            s.workflow_state = "deleted".into();
            s.updated_at = t;
        }
        self.emit_section(out, t, "course_section_updated", id);
        Ok(())
    }

    /// Creates an unpublished module at the end of a live course's modules
    /// (`POST .../modules`), emits `module_created`.
    pub fn add_module(
        &mut self,
        course: u64,
        name: &str,
        origin: &Origin,
        out: &mut Vec<SimEvent>,
    ) -> Result<u64, ApiSimError> {
        let course = self.live_course(course)?.id;
        let name = name.trim();
        if name.is_empty() {
            return Err(ApiSimError::Invalid("missing module name".into()));
        }
        let position = self
            .modules
            .values()
            .filter(|m| m.course_id == course && m.workflow_state != "deleted")
            .map(|m| m.position)
            .max()
            .unwrap_or(0)
            + 1;
        let t = self.tick();
        let id = self.new_id();
        self.modules.insert(
            id,
            Module {
                id,
                course_id: course,
                name: name.to_string(),
                position,
                workflow_state: "unpublished".into(),
                created_at: t,
                updated_at: t,
            },
        );
        self.emit_module(out, t, "module_created", id, origin);
        Ok(id)
    }

    /// Updates a live module (`PUT .../modules/:id`), emits `module_updated`. Publishing or
    /// unpublishing also moves its items that are not in that state yet (each emits
    /// `module_item_updated`) unless `skip_content_tags`, as Canvas does.
    pub fn update_module(
        &mut self,
        course: u64,
        module: u64,
        update: &ModuleUpdate,
        origin: &Origin,
        out: &mut Vec<SimEvent>,
    ) -> Result<(), ApiSimError> {
        let (_, module) = self.live_module(course, module)?;
        let name = match update.name.as_deref().map(str::trim) {
            Some("") => {
                return Err(ApiSimError::Invalid("module[name] cannot be blank".into()));
            }
            other => other.map(str::to_string),
        };
        let state = update
            .published
            .map(|published| if published { "active" } else { "unpublished" });
        let t = self.tick();
        if let Some(m) = self.modules.get_mut(&module) {
            if let Some(name) = name {
                m.name = name;
            }
            if let Some(state) = state {
                m.workflow_state = state.into();
            }
            m.updated_at = t;
        }
        self.emit_module(out, t, "module_updated", module, origin);
        if let Some(state) = state
            && !update.skip_content_tags
        {
            let items: Vec<u64> = self
                .items_of(module)
                .into_iter()
                .filter(|i| i.workflow_state != state)
                .map(|i| i.id)
                .collect();
            for item in items {
                self.set_item_state(item, state, origin, out);
            }
        }
        Ok(())
    }

    /// Deletes a live module with its items (`DELETE .../modules/:id`, or a person in the
    /// UI). Canvas's `ContextModule#destroy` deletes the items first, so each emits
    /// `module_item_updated` with `deleted`, then the module `module_updated` with `deleted`.
    pub fn delete_module(
        &mut self,
        course: u64,
        module: u64,
        origin: &Origin,
        out: &mut Vec<SimEvent>,
    ) -> Result<(), ApiSimError> {
        let (_, module) = self.live_module(course, module)?;
        let items: Vec<u64> = self.items_of(module).into_iter().map(|i| i.id).collect();
        for item in items {
            self.set_item_state(item, "deleted", origin, out);
        }
        let t = self.tick();
        if let Some(m) = self.modules.get_mut(&module) {
            m.workflow_state = "deleted".into();
            m.updated_at = t;
        }
        self.emit_module(out, t, "module_updated", module, origin);
        Ok(())
    }

    /// Moves one item to `state` as a side effect of its module, emits `module_item_updated`.
    fn set_item_state(&mut self, item: u64, state: &str, origin: &Origin, out: &mut Vec<SimEvent>) {
        let t = self.tick();
        if let Some(i) = self.module_items.get_mut(&item) {
            i.workflow_state = state.into();
            i.updated_at = t;
        }
        self.emit_module_item(out, t, "module_item_updated", item, origin);
    }

    /// Creates an unpublished module item (`POST .../modules/:id/items`), emits
    /// `module_item_created`. Later items move down, as Canvas renumbers positions.
    pub fn add_module_item(
        &mut self,
        course: u64,
        module: u64,
        new: &NewModuleItem,
        origin: &Origin,
        out: &mut Vec<SimEvent>,
    ) -> Result<u64, ApiSimError> {
        let (course, module) = self.live_module(course, module)?;
        let raw_type = new
            .item_type
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiSimError::Invalid("module_item[type] is required".into()))?;
        let item_type = match raw_type.replace('_', "").to_ascii_lowercase().as_str() {
            "externalurl" => "ExternalUrl",
            "subheader" => "SubHeader",
            "file"
            | "page"
            | "discussion"
            | "assignment"
            | "quiz"
            | "externaltool"
            | "contextexternaltool" => {
                return Err(ApiSimError::Unsupported(format!(
                    "module items of type {raw_type} (supported: ExternalUrl, SubHeader)"
                )));
            }
            _ => {
                return Err(ApiSimError::Invalid(format!(
                    "invalid module_item[type] {raw_type}"
                )));
            }
        };
        let title = new
            .title
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiSimError::Invalid("module_item[title] is required".into()))?
            .to_string();
        let external_url = if item_type == "ExternalUrl" {
            let url = new.external_url.as_deref().map(str::trim).unwrap_or("");
            if url.is_empty() {
                return Err(ApiSimError::Invalid(
                    "module_item[external_url] is required for ExternalUrl items".into(),
                ));
            }
            Some(valid_url(url)?)
        } else {
            None
        };
        let t = self.tick();
        let id = self.new_id();
        self.module_items.insert(
            id,
            ModuleItem {
                id,
                module_id: module,
                course_id: course,
                position: 0,
                title,
                indent: new.indent.unwrap_or(0).clamp(0, 5),
                item_type: item_type.into(),
                content_id: None,
                external_url,
                new_tab: new.new_tab,
                workflow_state: "unpublished".into(),
                created_at: t,
                updated_at: t,
            },
        );
        self.place_item(module, Some(id), new.position);
        self.emit_module_item(out, t, "module_item_created", id, origin);
        Ok(id)
    }

    /// Updates a live module item (`PUT`), emits `module_item_updated`.
    pub fn update_module_item(
        &mut self,
        course: u64,
        module: u64,
        item: u64,
        update: &ModuleItemUpdate,
        origin: &Origin,
        out: &mut Vec<SimEvent>,
    ) -> Result<(), ApiSimError> {
        let (_, module) = self.live_module(course, module)?;
        let item = self.live_item(module, item)?;
        if let Some(title) = &update.title
            && title.trim().is_empty()
        {
            return Err(ApiSimError::Invalid(
                "module_item[title] cannot be blank".into(),
            ));
        }
        let url = match &update.external_url {
            Some(url) => Some(valid_url(url)?),
            None => None,
        };
        let t = self.tick();
        if let Some(i) = self.module_items.get_mut(&item) {
            if let Some(title) = &update.title {
                i.title = title.trim().to_string();
            }
            if let Some(published) = update.published {
                i.workflow_state = if published { "active" } else { "unpublished" }.into();
            }
            if let Some(indent) = update.indent {
                i.indent = indent.clamp(0, 5);
            }
            if let (Some(url), "ExternalUrl") = (url, i.item_type.as_str()) {
                i.external_url = Some(url);
            }
            if let Some(new_tab) = update.new_tab {
                i.new_tab = new_tab;
            }
            i.updated_at = t;
        }
        if update.position.is_some() {
            self.place_item(module, Some(item), update.position);
        }
        self.emit_module_item(out, t, "module_item_updated", item, origin);
        Ok(())
    }

    /// Deletes a live module item (`DELETE`), emits `module_item_updated` with `deleted`.
    pub fn delete_module_item(
        &mut self,
        course: u64,
        module: u64,
        item: u64,
        origin: &Origin,
        out: &mut Vec<SimEvent>,
    ) -> Result<(), ApiSimError> {
        let (_, module) = self.live_module(course, module)?;
        let item = self.live_item(module, item)?;
        let t = self.tick();
        if let Some(i) = self.module_items.get_mut(&item) {
            i.workflow_state = "deleted".into();
            i.updated_at = t;
        }
        self.place_item(module, None, None);
        self.emit_module_item(out, t, "module_item_updated", item, origin);
        Ok(())
    }

    fn live_module(&self, course: u64, module: u64) -> Result<(u64, u64), ApiSimError> {
        let course = self.live_course(course)?.id;
        let m = self
            .module(module)
            .filter(|m| m.course_id == course && m.workflow_state != "deleted")
            .ok_or(ApiSimError::NotFound {
                kind: "module",
                id: module,
            })?;
        Ok((course, m.id))
    }

    fn live_item(&self, module: u64, item: u64) -> Result<u64, ApiSimError> {
        self.module_item(item)
            .filter(|i| i.module_id == module && i.workflow_state != "deleted")
            .map(|i| i.id)
            .ok_or(ApiSimError::NotFound {
                kind: "module item",
                id: item,
            })
    }

    /// Live items of a module in display order.
    pub fn items_of(&self, module: u64) -> Vec<&ModuleItem> {
        let module = to_global(module);
        let mut items: Vec<&ModuleItem> = self
            .module_items
            .values()
            .filter(|i| i.module_id == module && i.workflow_state != "deleted")
            .collect();
        items.sort_by_key(|i| (i.position, i.id));
        items
    }

    /// Puts `item` at `position` (1-based, clamped; end when `None`) and renumbers 1..n.
    fn place_item(&mut self, module: u64, item: Option<u64>, position: Option<i64>) {
        let mut order: Vec<u64> = self
            .items_of(module)
            .into_iter()
            .map(|i| i.id)
            .filter(|id| Some(*id) != item)
            .collect();
        if let Some(item) = item {
            let at = position
                .map(|p| usize::try_from(p.max(1) - 1).unwrap_or(0).min(order.len()))
                .unwrap_or(order.len());
            order.insert(at, item);
        }
        for (index, id) in order.into_iter().enumerate() {
            if let Some(i) = self.module_items.get_mut(&id) {
                i.position = i64::try_from(index).unwrap_or(i64::MAX - 1) + 1;
            }
        }
    }

    // --- live events ---------------------------------------------------------------------

    fn root_account_global(&self) -> u64 {
        to_global(self.account_id)
    }

    fn metadata(
        &mut self,
        name: &str,
        time: DateTime<Utc>,
        origin: &Origin,
        course: Option<u64>,
    ) -> Value {
        let root = self.root_account_global().to_string();
        let mut m = Map::new();
        m.insert("event_name".into(), name.into());
        m.insert("event_time".into(), rfc3339_ms(time).into());
        m.insert("producer".into(), "canvas".into());
        m.insert("root_account_id".into(), root.clone().into());
        m.insert(
            "root_account_lti_guid".into(),
            format!("{}.{}", self.root_account_uuid, self.hostname).into(),
        );
        m.insert(
            "root_account_uuid".into(),
            self.root_account_uuid.clone().into(),
        );
        let course = course.and_then(|id| self.courses.get(&id)).cloned();
        match origin {
            Origin::Job { tag } => {
                self.next_job += 1;
                m.insert("job_id".into(), self.next_job.to_string().into());
                m.insert("job_tag".into(), tag.clone().into());
                if let Some(c) = &course {
                    m.insert("context_id".into(), c.id.to_string().into());
                    m.insert("context_type".into(), "Course".into());
                }
            }
            Origin::Request(r) => {
                let user = self.user(r.user_id).cloned();
                m.insert("client_ip".into(), "127.0.0.1".into());
                // Canvas leaves it out for browser sessions (no token, no key).
                if !r.developer_key_id.is_empty() {
                    m.insert("developer_key_id".into(), r.developer_key_id.clone().into());
                }
                m.insert("hostname".into(), self.hostname.clone().into());
                m.insert("http_method".into(), r.http_method.clone().into());
                m.insert("referrer".into(), Value::Null);
                m.insert("request_id".into(), uuid::Uuid::new_v4().to_string().into());
                m.insert(
                    "session_id".into(),
                    uuid::Uuid::new_v4().simple().to_string().into(),
                );
                m.insert("time_zone".into(), "Etc/UTC".into());
                m.insert(
                    "url".into(),
                    format!("https://{}{}", self.hostname, r.path).into(),
                );
                m.insert("user_account_id".into(), root.into());
                m.insert(
                    "user_agent".into(),
                    r.user_agent.clone().unwrap_or_default().into(),
                );
                m.insert("user_id".into(), to_global(r.user_id).to_string().into());
                if let Some(u) = &user {
                    m.insert("user_login".into(), u.login_id.clone().into());
                    m.insert("user_sis_id".into(), u.sis_user_id.clone().into());
                }
                if let Some(c) = &course {
                    m.insert("context_account_id".into(), c.account_id.to_string().into());
                    m.insert("context_id".into(), c.id.to_string().into());
                    m.insert("context_type".into(), "Course".into());
                    if let Some(sis) = &c.sis_course_id {
                        m.insert("context_sis_source_id".into(), sis.clone().into());
                    }
                }
            }
        }
        Value::Object(m)
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        out: &mut Vec<SimEvent>,
        time: DateTime<Utc>,
        name: &str,
        origin: &Origin,
        course: Option<u64>,
        body: Value,
        entity: (&str, u64),
    ) {
        let metadata = self.metadata(name, time, origin, course);
        out.push(SimEvent {
            event_name: name.to_string(),
            event_time: time,
            canvas: json!({ "metadata": metadata, "body": body }),
            caliper: None,
            entity: (entity.0.to_string(), entity.1.to_string()),
        });
    }

    /// Enrollment events carry global ids (as generator.rs shapes them).
    fn emit_enrollment(&mut self, out: &mut Vec<SimEvent>, t: DateTime<Utc>, name: &str, id: u64) {
        let Some(e) = self.enrollments.get(&id).cloned() else {
            return;
        };
        let user_name = self.user(e.user_id).map(|u| u.name.clone());
        let body = json!({
            "associated_user_id": e.associated_user_id.map(|id| id.to_string()),
            "course_id": e.course_id.to_string(),
            "course_section_id": e.course_section_id.to_string(),
            "created_at": rfc3339_ms(e.created_at),
            "enrollment_id": e.id.to_string(),
            "limit_privileges_to_course_section": e.limit_privileges_to_course_section,
            "type": e.enrollment_type,
            "updated_at": rfc3339_ms(t),
            "user_id": e.user_id.to_string(),
            "user_name": user_name,
            "workflow_state": e.workflow_state,
        });
        self.emit(
            out,
            t,
            name,
            &Origin::sis_import(),
            Some(e.course_id),
            body,
            ("enrollment", id),
        );
    }

    /// Section events carry local ids (course, section, root account), as Canvas sends them.
    fn emit_section(&mut self, out: &mut Vec<SimEvent>, t: DateTime<Utc>, name: &str, id: u64) {
        let Some(s) = self.sections.get(&id).cloned() else {
            return;
        };
        let body = json!({
            "accepting_enrollments": s.accepting_enrollments,
            "can_manually_enroll": null,
            "course_id": local_part(s.course_id).to_string(),
            "course_section_id": local_part(s.id).to_string(),
            "default_section": s.default_section,
            "end_at": s.end_at,
            "enrollment_term_id": s.enrollment_term_id,
            "integration_id": s.integration_id,
            "name": s.name,
            "nonxlist_course_id": s.nonxlist_course_id.map(|id| local_part(id).to_string()),
            "restrict_enrollments_to_section_dates": s.restrict_enrollments_to_section_dates,
            "root_account_id": local_part(self.root_account_global()).to_string(),
            "sis_batch_id": null,
            "sis_source_id": s.sis_section_id,
            "start_at": s.start_at,
            "stuck_sis_fields": [],
            "workflow_state": s.workflow_state,
        });
        self.emit(
            out,
            t,
            name,
            &Origin::sis_import(),
            Some(s.course_id),
            body,
            ("section", id),
        );
    }

    /// Module events carry local ids (course context, module), as the scenario's do.
    fn emit_module(
        &mut self,
        out: &mut Vec<SimEvent>,
        t: DateTime<Utc>,
        name: &str,
        id: u64,
        origin: &Origin,
    ) {
        let Some(m) = self.modules.get(&id).cloned() else {
            return;
        };
        let body = json!({
            "context_id": local_part(m.course_id).to_string(),
            "context_type": "Course",
            "module_id": local_part(m.id).to_string(),
            "name": m.name,
            "position": m.position,
            "workflow_state": m.workflow_state,
        });
        self.emit(
            out,
            t,
            name,
            origin,
            Some(m.course_id),
            body,
            ("module", id),
        );
    }

    /// Module-item events carry local ids (course context, module, item).
    fn emit_module_item(
        &mut self,
        out: &mut Vec<SimEvent>,
        t: DateTime<Utc>,
        name: &str,
        id: u64,
        origin: &Origin,
    ) {
        let Some(i) = self.module_items.get(&id).cloned() else {
            return;
        };
        let body = json!({
            "context_id": local_part(i.course_id).to_string(),
            "context_type": "Course",
            "module_id": local_part(i.module_id).to_string(),
            "module_item_id": local_part(i.id).to_string(),
            "position": i.position,
            "workflow_state": i.workflow_state,
        });
        self.emit(
            out,
            t,
            name,
            origin,
            Some(i.course_id),
            body,
            ("module_item", id),
        );
    }
}

/// Canvas accepts only absolute http(s) URLs with a host for `ExternalUrl` items.
fn valid_url(url: &str) -> Result<String, ApiSimError> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !url.chars().any(char::is_whitespace) =>
        {
            Ok(url.to_string())
        }
        _ => Err(ApiSimError::Invalid(format!(
            "module_item[external_url] is not a valid http(s) URL: {url}"
        ))),
    }
}

/// Canvas-style 40-character alphanumeric uuid from the seeded rng.
fn random_uuid(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..40)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn uuid_text() -> String {
    let mut text = uuid::Uuid::new_v4().simple().to_string();
    text.push_str(&uuid::Uuid::new_v4().simple().to_string());
    text.truncate(40);
    text
}
