//! The course-term generator behind [`super::scenario::generate`]: people,
//! courses and coursework on a causal timeline, rendered into Canvas-format
//! payloads and Caliper 1.1 envelopes shaped like Instructure's examples.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveTime, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::scenario::{ScenarioConfig, SimEvent, global_id};

/// Generates the events of one term in generation order (not yet sorted).
pub(crate) fn generate_events(config: &ScenarioConfig) -> Vec<SimEvent> {
    let mut generator = Generator::new(config);
    generator.run();
    generator.events
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
const SIS_JOB_TAG: &str = "SIS::CSV::ImportRefactored#run_parallel_importer";
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
pub(crate) const CALIPER_CONTEXT: &str = "http://purl.imsglobal.org/ctx/caliper/v1p1";

const FIRST_NAMES: [&str; 24] = [
    "Ada",
    "Alan",
    "Grace",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Katherine",
    "Claude",
    "Radia",
    "Tim",
    "Margaret",
    "Dennis",
    "Hedy",
    "Ken",
    "Sophie",
    "Niklaus",
    "Mary",
    "Leslie",
    "Shafi",
    "Whitfield",
    "Lynn",
    "Robin",
];
const LAST_NAMES: [&str; 24] = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Backus",
    "Johnson",
    "Shannon",
    "Perlman",
    "Berners-Lee",
    "Hamilton",
    "Ritchie",
    "Lamarr",
    "Thompson",
    "Wilson",
    "Wirth",
    "Keller",
    "Lamport",
    "Goldwasser",
    "Diffie",
    "Conway",
    "Milner",
];
const COURSES: [(&str, &str); 10] = [
    ("Linear Algebra", "MATH"),
    ("Organic Chemistry", "CHEM"),
    ("Medieval History", "HIST"),
    ("Microeconomics", "ECON"),
    ("Data Structures", "COMP"),
    ("Cell Biology", "BIOL"),
    ("Applied Ethics", "PHIL"),
    ("Statistical Inference", "STAT"),
    ("Business Writing", "WRIT"),
    ("Quantum Mechanics", "PHYS"),
];
const TIME_ZONES: [&str; 4] = [
    "America/New_York",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
];
const SUBMISSION_TYPES: [&str; 3] = ["online_text_entry", "online_upload", "online_url"];

pub(crate) fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn rfc3339_s(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn after(t: DateTime<Utc>, ms: i64) -> DateTime<Utc> {
    t + chrono::Duration::milliseconds(ms)
}

fn gid(local: u64) -> String {
    global_id(local).to_string()
}

fn urn(kind: &str, global: &str) -> String {
    format!("urn:instructure:canvas:{kind}:{global}")
}

#[derive(Debug, Clone)]
struct Person {
    local: u64,
    name: String,
    short_name: String,
    login: String,
    sis_id: String,
    uuid: String,
    time_zone: &'static str,
    session_id: String,
    client_ip: String,
}

impl Person {
    fn gid(&self) -> String {
        gid(self.local)
    }
}

#[derive(Debug, Clone)]
struct Section {
    local: u64,
    name: String,
    sis_id: String,
}

#[derive(Debug, Clone)]
struct Enrollment {
    local: u64,
    person: usize,
    section: usize,
    role: &'static str,
    created_at: DateTime<Utc>,
    /// When the invitation was accepted (enrollment_updated -> active).
    accepted_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Assignment {
    local: u64,
    group_local: u64,
    title: String,
    description: String,
    points: u32,
    unlock_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    lock_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    lti_id: String,
    resource_link_id: String,
}

#[derive(Debug, Clone)]
struct Course {
    local: u64,
    name: String,
    sis_id: String,
    uuid: String,
    created_at: DateTime<Utc>,
    sections: Vec<Section>,
    teacher: usize,
    enrollments: Vec<Enrollment>,
    assignments: Vec<Assignment>,
}

impl Course {
    fn gid(&self) -> String {
        gid(self.local)
    }
}

/// Who caused an event: a background job or an HTTP request by a person.
#[derive(Debug, Clone)]
enum Origin {
    Job {
        id: String,
        tag: &'static str,
    },
    Request {
        actor: usize,
        role: Option<&'static str>,
        method: &'static str,
        url: String,
        request_id: String,
        referrer: Option<String>,
    },
}

/// `metadata.context_*` of an event.
#[derive(Debug, Clone)]
struct Context {
    kind: &'static str,
    id: String,
    sis_id: Option<String>,
}

/// Sequential local-id allocators, one per entity type, from seeded bases.
#[derive(Debug)]
struct Ids {
    next: BTreeMap<&'static str, u64>,
}

impl Ids {
    fn new(rng: &mut StdRng) -> Self {
        let next = [
            "account",
            "course",
            "section",
            "user",
            "enrollment",
            "assignment",
            "assignment_group",
            "submission",
            "module",
            "module_item",
            "term",
        ]
        .into_iter()
        // Bases stay far below 10^13 so global ids never overflow the shard.
        .map(|kind| (kind, rng.random_range(1_000..900_000_000u64) * 10))
        .collect();
        Self { next }
    }

    fn take(&mut self, kind: &'static str) -> u64 {
        let slot = self.next.entry(kind).or_insert(1_000);
        *slot += 1;
        *slot
    }
}

struct Generator<'c> {
    cfg: &'c ScenarioConfig,
    rng: StdRng,
    ids: Ids,
    host: String,
    root_account_local: u64,
    sub_account_local: u64,
    term_local: u64,
    root_uuid: String,
    people: Vec<Person>,
    admin: usize,
    next_job: u64,
    /// Dropped or concluded enrollments: (course local id, index, when, state).
    ended: Vec<(u64, usize, DateTime<Utc>, &'static str)>,
    events: Vec<SimEvent>,
}

impl<'c> Generator<'c> {
    fn new(cfg: &'c ScenarioConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut ids = Ids::new(&mut rng);
        let root_uuid = canvas_uuid(&mut rng);
        let sub_account_local = ids.take("account");
        let term_local = ids.take("term");
        let next_job = rng.random_range(1_000_000_000_000u64..9_000_000_000_000);
        let mut generator = Self {
            cfg,
            rng,
            ids,
            host: cfg.hostname.clone(),
            // Root accounts are local id 1 on their shard, as in the examples.
            root_account_local: 1,
            sub_account_local,
            term_local,
            root_uuid,
            people: Vec::new(),
            admin: 0,
            next_job,
            ended: Vec::new(),
            events: Vec::new(),
        };
        generator.admin = generator.new_person(Some(1), "admin");
        generator
    }

    fn run(&mut self) {
        let t0 = DateTime::from_timestamp_millis(self.cfg.start_time.timestamp_millis())
            .unwrap_or(self.cfg.start_time);
        let mut courses = self.sis_import(t0);
        for (index, course) in courses.iter_mut().enumerate() {
            self.teacher_builds_course(course, t0, index);
        }
        for course in &courses {
            self.students_accept(course);
            self.enrollments_end(course);
            self.coursework(course);
        }
    }

    // --- people, ids, origins ------------------------------------------------

    fn new_person(&mut self, local: Option<u64>, login_hint: &str) -> usize {
        let local = local.unwrap_or_else(|| self.ids.take("user"));
        let first = FIRST_NAMES[self.rng.random_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[self.rng.random_range(0..LAST_NAMES.len())];
        let login = format!(
            "{}.{}{}@{}",
            login_hint,
            last.to_lowercase().replace('-', ""),
            local % 10_000,
            "sim.example.edu"
        );
        let person = Person {
            local,
            name: format!("{first} {last}"),
            short_name: first.to_string(),
            login,
            sis_id: format!("SIS-{:07}", self.rng.random_range(0..10_000_000u32)),
            uuid: canvas_uuid(&mut self.rng),
            time_zone: TIME_ZONES[self.rng.random_range(0..TIME_ZONES.len())],
            session_id: hex(&mut self.rng, 16),
            client_ip: format!("198.51.100.{}", self.rng.random_range(1..255u8)),
        };
        self.people.push(person);
        self.people.len() - 1
    }

    fn job(&mut self, tag: &'static str) -> Origin {
        self.next_job += self.rng.random_range(1..500u64);
        Origin::Job {
            id: self.next_job.to_string(),
            tag,
        }
    }

    fn request(
        &mut self,
        actor: usize,
        role: Option<&'static str>,
        method: &'static str,
        path: &str,
    ) -> Origin {
        let request_id = uuid_from(&mut self.rng).to_string();
        Origin::Request {
            actor,
            role,
            method,
            url: format!("https://{}{path}", self.host),
            request_id,
            referrer: None,
        }
    }

    fn course_context(course: &Course) -> Context {
        Context {
            kind: "Course",
            id: course.gid(),
            sis_id: Some(course.sis_id.clone()),
        }
    }

    // --- phases ----------------------------------------------------------------

    /// A SIS CSV import at term start: courses, sections, users, enrollments.
    fn sis_import(&mut self, t0: DateTime<Utc>) -> Vec<Course> {
        let job = self.job(SIS_JOB_TAG);
        let mut clock = t0;
        let year = t0.format("%Y").to_string();
        let mut courses = Vec::new();
        for c in 0..self.cfg.courses {
            clock = after(clock, self.rng.random_range(40..400));
            let (title, dept) = COURSES[c % COURSES.len()];
            let number = 100 + self.rng.random_range(0..400u32);
            let local = self.ids.take("course");
            let mut course = Course {
                local,
                name: format!("{title} ({dept} {number})"),
                sis_id: format!("{year}.{dept}.{number}.{c:03}"),
                uuid: canvas_uuid(&mut self.rng),
                created_at: clock,
                sections: Vec::new(),
                teacher: 0,
                enrollments: Vec::new(),
                assignments: Vec::new(),
            };
            self.course_created(&course, clock, &job);
            for s in 0..self.cfg.sections_per_course.max(1) {
                clock = after(clock, self.rng.random_range(20..300));
                let section = Section {
                    local: self.ids.take("section"),
                    name: format!("{title} section {}", s + 1),
                    sis_id: format!(
                        "{dept}-{number}-{:02}_{}",
                        s + 1,
                        self.rng.random_range(10_000..99_999u32)
                    ),
                };
                self.course_section_created(&course, &section, s == 0, clock, &job);
                course.sections.push(section);
            }
            courses.push(course);
        }

        // Students take several courses: draw each course's roster from a shared pool.
        let per_course = self.cfg.students_per_course;
        let pool_size = if self.cfg.courses <= 1 {
            per_course
        } else {
            per_course.max(self.cfg.courses * per_course * 3 / 4)
        };
        let mut teachers = Vec::new();
        for _ in 0..courses.len() {
            let teacher = self.new_person(None, "prof");
            clock = after(clock, self.rng.random_range(20..200));
            self.user_created(teacher, clock, &job);
            teachers.push(teacher);
        }
        let mut pool = Vec::new();
        for _ in 0..pool_size {
            let student = self.new_person(None, "student");
            clock = after(clock, self.rng.random_range(20..200));
            self.user_created(student, clock, &job);
            pool.push(student);
        }

        for (course, teacher) in courses.iter_mut().zip(teachers) {
            course.teacher = teacher;
            let mut roster = vec![(teacher, 0, "TeacherEnrollment")];
            let picked = sample(&mut self.rng, pool.len(), per_course.min(pool.len()));
            for (i, p) in picked.into_iter().enumerate() {
                roster.push((pool[p], i % course.sections.len(), "StudentEnrollment"));
            }
            for (person, section, role) in roster {
                clock = after(clock, self.rng.random_range(20..250));
                let enrollment = Enrollment {
                    local: self.ids.take("enrollment"),
                    person,
                    section,
                    role,
                    // Teachers accept within the hour; students during week one.
                    accepted_at: if role == "TeacherEnrollment" {
                        after(t0, self.rng.random_range(10 * MINUTE_MS..HOUR_MS))
                    } else {
                        after(t0, self.rng.random_range(DAY_MS..7 * DAY_MS))
                    },
                    created_at: clock,
                };
                self.enrollment_event(
                    "enrollment_created",
                    course,
                    &enrollment,
                    "invited",
                    clock,
                    &job,
                );
                course.enrollments.push(enrollment);
            }
        }
        courses
    }

    /// The teacher's first session: assignments (one created by mistake and
    /// deleted), modules, module items, publishing, then the course goes live.
    fn teacher_builds_course(&mut self, course: &mut Course, t0: DateTime<Utc>, index: usize) {
        let teacher = course.teacher;
        let mut clock = after(t0, 2 * HOUR_MS + index as i64 * 17 * MINUTE_MS);
        let start_day = t0.date_naive();
        let due_time = NaiveTime::from_hms_opt(5, 59, 59).unwrap_or_default();
        let real = self.cfg.assignments_per_course;
        for a in 0..=real {
            clock = after(clock, self.rng.random_range(20_000..240_000));
            let due_day = start_day + chrono::Days::new(14 + 7 * a as u64);
            let due_at = due_day.and_time(due_time).and_utc();
            let assignment = Assignment {
                local: self.ids.take("assignment"),
                group_local: self.ids.take("assignment_group"),
                title: if a < real {
                    format!("Problem set {}", a + 1)
                } else {
                    "Untitled assignment".to_string()
                },
                description: format!("<p>Complete the exercises for week {}.</p>", 2 + a),
                points: [10, 20, 50, 100][self.rng.random_range(0..4)],
                unlock_at: after(due_at, -7 * DAY_MS),
                due_at,
                lock_at: after(due_at, 3 * DAY_MS),
                created_at: clock,
                lti_id: uuid_from(&mut self.rng).to_string(),
                resource_link_id: hex(&mut self.rng, 20),
            };
            self.assignment_event(
                "assignment_created",
                course,
                &assignment,
                "unpublished",
                clock,
            );
            course.assignments.push(assignment);
        }
        // The extra assignment was a mistake: Canvas reports the deletion as an update.
        if let Some(mistake) = course.assignments.pop() {
            clock = after(clock, self.rng.random_range(30_000..300_000));
            self.assignment_event("assignment_updated", course, &mistake, "deleted", clock);
        }

        let modules = self.cfg.modules_per_course.max(1);
        let mut module_ids = Vec::new();
        for m in 0..modules {
            clock = after(clock, self.rng.random_range(10_000..120_000));
            let module = self.ids.take("module");
            self.module_created(course, module, m + 1, clock);
            module_ids.push(module);
        }
        let mut positions = vec![0usize; modules];
        for a in 0..course.assignments.len() {
            clock = after(clock, self.rng.random_range(5_000..60_000));
            let m = a % modules;
            positions[m] += 1;
            let item = self.ids.take("module_item");
            self.module_item_created(course, module_ids[m], item, positions[m], clock);
        }
        for a in 0..course.assignments.len() {
            clock = after(clock, self.rng.random_range(5_000..60_000));
            let assignment = course.assignments[a].clone();
            self.assignment_event(
                "assignment_updated",
                course,
                &assignment,
                "published",
                clock,
            );
        }
        clock = after(clock, self.rng.random_range(60_000..600_000));
        self.course_updated(course, "available", clock, teacher);
    }

    fn students_accept(&mut self, course: &Course) {
        for enrollment in &course.enrollments {
            let origin = self.request(
                enrollment.person,
                Some(enrollment.role),
                "POST",
                &format!(
                    "/courses/{}/enrollment_invitation?accept=1&enrollment_id={}",
                    course.local, enrollment.local
                ),
            );
            self.enrollment_event(
                "enrollment_updated",
                course,
                enrollment,
                "active",
                enrollment.accepted_at,
                &origin,
            );
        }
    }

    /// Some students drop (deleted) or are concluded early (completed).
    fn enrollments_end(&mut self, course: &Course) {
        let t0 = course.created_at;
        let last_due_days = 14 + 7 * self.cfg.assignments_per_course as i64;
        let teacher = course.teacher;
        let mut endings = Vec::new();
        for (i, enrollment) in course.enrollments.iter().enumerate() {
            if enrollment.role != "StudentEnrollment" {
                continue;
            }
            let roll: f64 = self.rng.random();
            let state = if roll < 0.06 {
                "deleted"
            } else if roll < 0.12 {
                "completed"
            } else {
                continue;
            };
            endings.push((i, state));
        }
        // Guarantee both kinds of ending whenever the roster is big enough,
        // so every scenario exercises deletion-as-update.
        let students: Vec<usize> = (0..course.enrollments.len())
            .filter(|&i| course.enrollments[i].role == "StudentEnrollment")
            .collect();
        if students.len() >= 4 {
            for (state, pick) in [
                ("deleted", students[students.len() - 1]),
                ("completed", students[students.len() - 2]),
            ] {
                if !endings.iter().any(|(_, s)| *s == state)
                    && !endings.iter().any(|(i, _)| *i == pick)
                {
                    endings.push((pick, state));
                }
            }
        }
        let endings: Vec<(usize, DateTime<Utc>, &'static str)> = endings
            .into_iter()
            .map(|(i, state)| {
                (
                    i,
                    after(
                        t0,
                        self.rng.random_range(8 * DAY_MS..last_due_days * DAY_MS),
                    ),
                    state,
                )
            })
            .collect();
        for (i, at, state) in endings {
            let enrollment = &course.enrollments[i];
            let task = if state == "deleted" {
                "delete"
            } else {
                "conclude"
            };
            let origin = self.request(
                teacher,
                Some("TeacherEnrollment"),
                "DELETE",
                &format!(
                    "/api/v1/courses/{}/enrollments/{}?task={task}",
                    course.local, enrollment.local
                ),
            );
            self.enrollment_event("enrollment_updated", course, enrollment, state, at, &origin);
            // Remember the end so no coursework happens after it.
            self.mark_ended(course.local, i, at, state);
        }
    }

    fn mark_ended(
        &mut self,
        course_local: u64,
        index: usize,
        at: DateTime<Utc>,
        state: &'static str,
    ) {
        self.ended.push((course_local, index, at, state));
    }

    /// Submissions, grading and regrades for every published assignment.
    fn coursework(&mut self, course: &Course) {
        let ratio = self.cfg.submissions_ratio.clamp(0.0, 1.0);
        for assignment in &course.assignments {
            for (e, enrollment) in course.enrollments.iter().enumerate() {
                if enrollment.role != "StudentEnrollment" || !self.rng.random_bool(ratio) {
                    continue;
                }
                let ended = self.ended_at(course.local, e);
                let late = self.rng.random_bool(0.1);
                let submitted_at = if late {
                    after(
                        assignment.due_at,
                        self.rng.random_range(MINUTE_MS..2 * DAY_MS),
                    )
                } else {
                    after(
                        assignment.due_at,
                        -self.rng.random_range(MINUTE_MS..4 * DAY_MS),
                    )
                };
                if ended.is_some_and(|end| submitted_at >= after(end, -HOUR_MS)) {
                    continue;
                }
                let submission = Submission {
                    local: self.ids.take("submission"),
                    student: enrollment.person,
                    submission_type: SUBMISSION_TYPES
                        [self.rng.random_range(0..SUBMISSION_TYPES.len())],
                    submitted_at,
                    late,
                };
                self.submission_event(course, assignment, &submission, None, submitted_at);

                let mut graded_at = after(
                    assignment.due_at,
                    3 * DAY_MS + self.rng.random_range(0..2 * DAY_MS),
                );
                let mut previous: Option<(f64, String)> = None;
                for _ in 0..self.cfg.grade_changes_per_submission {
                    // Concluded or dropped students are not graded any more.
                    if ended.is_some_and(|end| graded_at >= end) {
                        break;
                    }
                    let points = f64::from(assignment.points);
                    let score = (self.rng.random_range(0.45..1.0) * points * 2.0).round() / 2.0;
                    let grade = format_score(score);
                    self.submission_event(
                        course,
                        assignment,
                        &submission,
                        Some((score, grade.as_str(), graded_at)),
                        graded_at,
                    );
                    let change_at = after(graded_at, self.rng.random_range(5..400));
                    self.grade_change(
                        course,
                        assignment,
                        &submission,
                        score,
                        &grade,
                        previous.as_ref(),
                        change_at,
                    );
                    previous = Some((score, grade));
                    graded_at = after(graded_at, self.rng.random_range(DAY_MS..3 * DAY_MS));
                }
            }
        }
    }

    fn ended_at(&self, course_local: u64, index: usize) -> Option<DateTime<Utc>> {
        self.ended
            .iter()
            .find(|(c, i, _, _)| *c == course_local && *i == index)
            .map(|(_, _, at, _)| *at)
    }
}

#[derive(Debug, Clone)]
struct Submission {
    local: u64,
    student: usize,
    submission_type: &'static str,
    submitted_at: DateTime<Utc>,
    late: bool,
}

/// The event-type-specific part of a Caliper event.
struct CaliperParts {
    kind: &'static str,
    action: &'static str,
    object: Value,
    group: Option<Value>,
    membership: Option<Value>,
    generated: Option<Value>,
    referrer: Option<String>,
}

impl CaliperParts {
    fn new(kind: &'static str, action: &'static str, object: Value) -> Self {
        Self {
            kind,
            action,
            object,
            group: None,
            membership: None,
            generated: None,
            referrer: None,
        }
    }
}

fn with_referrer(origin: Origin, value: String) -> Origin {
    match origin {
        Origin::Request {
            actor,
            role,
            method,
            url,
            request_id,
            ..
        } => Origin::Request {
            actor,
            role,
            method,
            url,
            request_id,
            referrer: Some(value),
        },
        job @ Origin::Job { .. } => job,
    }
}

fn caliper_role(role: Option<&str>) -> &'static str {
    match role {
        Some("TeacherEnrollment") => "Instructor",
        Some("StudentEnrollment") => "Learner",
        _ => "Administrator",
    }
}

fn course_group(course: &Course) -> Value {
    json!({
        "id": urn("course", &course.gid()),
        "type": "CourseOffering",
        "extensions": { "com.instructure.canvas": { "context_type": "Course", "entity_id": course.gid() } },
    })
}

fn section_urn(course: &Course, section: &Section) -> String {
    format!(
        "{}:section:{}",
        urn("course", &course.gid()),
        gid(section.local)
    )
}

// --- payload builders ----------------------------------------------------------

impl Generator<'_> {
    fn root_gid(&self) -> String {
        gid(self.root_account_local)
    }

    fn lti_guid(&self) -> String {
        format!("{}.{}", self.root_uuid, self.host)
    }

    fn metadata(
        &self,
        name: &str,
        time: DateTime<Utc>,
        origin: &Origin,
        context: Option<&Context>,
    ) -> Value {
        let mut m = Map::new();
        m.insert("event_name".into(), name.into());
        m.insert("event_time".into(), rfc3339_ms(time).into());
        m.insert("producer".into(), "canvas".into());
        m.insert("root_account_id".into(), self.root_gid().into());
        m.insert("root_account_lti_guid".into(), self.lti_guid().into());
        m.insert("root_account_uuid".into(), self.root_uuid.clone().into());
        match origin {
            Origin::Job { id, tag } => {
                m.insert("job_id".into(), id.clone().into());
                m.insert("job_tag".into(), (*tag).into());
                if let Some(ctx) = context {
                    m.insert("context_id".into(), ctx.id.clone().into());
                    m.insert("context_type".into(), ctx.kind.into());
                }
            }
            Origin::Request {
                actor,
                role,
                method,
                url,
                request_id,
                referrer,
            } => {
                let person = &self.people[*actor];
                m.insert("client_ip".into(), person.client_ip.clone().into());
                m.insert("hostname".into(), self.host.clone().into());
                m.insert("http_method".into(), (*method).into());
                m.insert("referrer".into(), referrer.clone().into());
                m.insert("request_id".into(), request_id.clone().into());
                m.insert("session_id".into(), person.session_id.clone().into());
                m.insert("time_zone".into(), person.time_zone.into());
                m.insert("url".into(), url.clone().into());
                m.insert("user_account_id".into(), self.root_gid().into());
                m.insert("user_agent".into(), USER_AGENT.into());
                m.insert("user_id".into(), person.gid().into());
                m.insert("user_login".into(), person.login.clone().into());
                m.insert("user_sis_id".into(), person.sis_id.clone().into());
                if let Some(ctx) = context {
                    m.insert(
                        "context_account_id".into(),
                        gid(self.sub_account_local).into(),
                    );
                    m.insert("context_id".into(), ctx.id.clone().into());
                    m.insert("context_type".into(), ctx.kind.into());
                    if let Some(sis) = &ctx.sis_id {
                        m.insert("context_sis_source_id".into(), sis.clone().into());
                    }
                    if let Some(role) = role {
                        m.insert("context_role".into(), (*role).into());
                    }
                }
            }
        }
        Value::Object(m)
    }

    /// Caliper 1.1 envelope around one event, shaped like Instructure's examples.
    fn caliper(&mut self, time: DateTime<Utc>, origin: &Origin, parts: CaliperParts) -> Value {
        let event_id = format!("urn:uuid:{}", uuid_from(&mut self.rng));
        let send_time = after(time, self.rng.random_range(20..900));
        let actor_index = match origin {
            Origin::Request { actor, .. } => *actor,
            Origin::Job { .. } => self.admin,
        };
        let person = &self.people[actor_index];
        let mut actor_ext = Map::new();
        if matches!(origin, Origin::Request { .. }) {
            actor_ext.insert("user_login".into(), person.login.clone().into());
            actor_ext.insert("user_sis_id".into(), person.sis_id.clone().into());
        }
        actor_ext.insert("root_account_id".into(), self.root_gid().into());
        actor_ext.insert("root_account_lti_guid".into(), self.lti_guid().into());
        actor_ext.insert("root_account_uuid".into(), self.root_uuid.clone().into());
        actor_ext.insert("entity_id".into(), person.gid().into());

        let mut data = Map::new();
        data.insert("@context".into(), CALIPER_CONTEXT.into());
        data.insert("id".into(), event_id.into());
        data.insert("type".into(), parts.kind.into());
        data.insert(
            "actor".into(),
            json!({
                "id": urn("user", &person.gid()),
                "type": "Person",
                "extensions": { "com.instructure.canvas": actor_ext },
            }),
        );
        data.insert("action".into(), parts.action.into());
        data.insert("object".into(), parts.object);
        data.insert("eventTime".into(), rfc3339_ms(time).into());
        if let Some(generated) = parts.generated {
            data.insert("generated".into(), generated);
        }
        data.insert(
            "edApp".into(),
            json!({ "id": format!("http://{}/", self.host), "type": "SoftwareApplication" }),
        );
        if let Some(group) = parts.group {
            data.insert("group".into(), group);
        }
        if let Some(membership) = parts.membership {
            data.insert("membership".into(), membership);
        }
        let extensions = match origin {
            Origin::Request {
                url,
                request_id,
                referrer,
                ..
            } => {
                data.insert(
                    "session".into(),
                    json!({
                        "id": format!("urn:instructure:canvas:session:{}", person.session_id),
                        "type": "Session",
                    }),
                );
                if let Some(referrer) = parts.referrer.or_else(|| referrer.clone()) {
                    data.insert("referrer".into(), referrer.into());
                }
                json!({
                    "hostname": self.host,
                    "request_id": request_id,
                    "user_agent": USER_AGENT,
                    "client_ip": person.client_ip,
                    "request_url": url,
                    "version": "1.0.0",
                })
            }
            Origin::Job { id, tag } => json!({ "job_id": id, "job_tag": tag, "version": "1.0.0" }),
        };
        data.insert(
            "extensions".into(),
            json!({ "com.instructure.canvas": extensions }),
        );
        json!({
            "sensor": format!("http://{}/", self.host),
            "sendTime": rfc3339_ms(send_time),
            "dataVersion": CALIPER_CONTEXT,
            "data": [Value::Object(data)],
        })
    }

    /// Membership of the acting user in the course, for request-originated events.
    fn membership(&self, course: &Course, origin: &Origin) -> Option<Value> {
        let Origin::Request { actor, role, .. } = origin else {
            return None;
        };
        let role = caliper_role(*role);
        let user = self.people[*actor].gid();
        Some(json!({
            "id": format!("{}:{role}:{user}", urn("course", &course.gid())),
            "type": "Membership",
            "member": { "id": urn("user", &user), "type": "Person" },
            "organization": { "id": urn("course", &course.gid()), "type": "CourseOffering" },
            "roles": [role],
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &str,
        time: DateTime<Utc>,
        origin: &Origin,
        context: Option<&Context>,
        body: Value,
        caliper: Option<CaliperParts>,
        entity: (&str, String),
    ) {
        let metadata = self.metadata(name, time, origin, context);
        let caliper = caliper.map(|parts| self.caliper(time, origin, parts));
        self.events.push(SimEvent {
            event_name: name.to_string(),
            event_time: time,
            canvas: json!({ "metadata": metadata, "body": body }),
            caliper,
            entity: (entity.0.to_string(), entity.1),
        });
    }

    fn course_body(&self, course: &Course, time: DateTime<Utc>, state: &str) -> Value {
        json!({
            "account_id": gid(self.sub_account_local),
            "course_id": course.gid(),
            "created_at": rfc3339_ms(course.created_at),
            "name": course.name,
            "updated_at": rfc3339_ms(time),
            "uuid": course.uuid,
            "workflow_state": state,
        })
    }

    fn course_created(&mut self, course: &Course, time: DateTime<Utc>, origin: &Origin) {
        let body = self.course_body(course, time, "claimed");
        let object = json!({
            "id": urn("course", &course.gid()),
            "type": "CourseOffering",
            "name": course.name,
            "extensions": { "com.instructure.canvas": { "entity_id": course.gid() } },
        });
        let caliper = CaliperParts::new("Event", "Created", object);
        self.push(
            "course_created",
            time,
            origin,
            None,
            body,
            Some(caliper),
            ("course", course.gid()),
        );
    }

    fn course_updated(
        &mut self,
        course: &Course,
        state: &str,
        time: DateTime<Utc>,
        teacher: usize,
    ) {
        let origin = with_referrer(
            self.request(
                teacher,
                Some("TeacherEnrollment"),
                "PUT",
                &format!("/api/v1/courses/{}", course.local),
            ),
            format!("https://{}/courses/{}/settings", self.host, course.local),
        );
        let body = self.course_body(course, time, state);
        let object = json!({
            "id": urn("course", &course.gid()),
            "type": "CourseOffering",
            "name": course.name,
            "extensions": { "com.instructure.canvas": { "entity_id": course.gid(), "workflow_state": state } },
        });
        let caliper = CaliperParts::new("Event", "Modified", object);
        let context = Self::course_context(course);
        self.push(
            "course_updated",
            time,
            &origin,
            Some(&context),
            body,
            Some(caliper),
            ("course", course.gid()),
        );
    }

    fn course_section_created(
        &mut self,
        course: &Course,
        section: &Section,
        default_section: bool,
        time: DateTime<Utc>,
        origin: &Origin,
    ) {
        let term_start = course.created_at;
        let term_end = after(term_start, 112 * DAY_MS);
        let sis_batch = match origin {
            Origin::Job { id, .. } => Value::from(id.clone()),
            Origin::Request { .. } => Value::Null,
        };
        // Canvas sends this body with local ids (course, section, root account).
        let body = json!({
            "accepting_enrollments": true,
            "can_manually_enroll": null,
            "course_id": course.local.to_string(),
            "course_section_id": section.local.to_string(),
            "default_section": default_section,
            "end_at": rfc3339_s(term_end),
            "enrollment_term_id": self.term_local.to_string(),
            "integration_id": null,
            "name": section.name,
            "nonxlist_course_id": null,
            "restrict_enrollments_to_section_dates": false,
            "root_account_id": self.root_account_local.to_string(),
            "sis_batch_id": sis_batch,
            "sis_source_id": section.sis_id,
            "start_at": rfc3339_s(term_start),
            "stuck_sis_fields": [],
            "workflow_state": "active",
        });
        let context = Self::course_context(course);
        self.push(
            "course_section_created",
            time,
            origin,
            Some(&context),
            body,
            None,
            ("section", gid(section.local)),
        );
    }

    fn user_created(&mut self, person: usize, time: DateTime<Utc>, origin: &Origin) {
        let p = &self.people[person];
        let body = json!({
            "created_at": rfc3339_ms(time),
            "name": p.name,
            "short_name": p.short_name,
            "updated_at": rfc3339_ms(time),
            "user_id": p.gid(),
            "user_login": p.login,
            "user_sis_id": p.sis_id,
            "uuid": p.uuid,
            "workflow_state": "pre_registered",
        });
        let id = p.gid();
        self.push("user_created", time, origin, None, body, None, ("user", id));
    }

    fn enrollment_event(
        &mut self,
        name: &'static str,
        course: &Course,
        enrollment: &Enrollment,
        state: &str,
        time: DateTime<Utc>,
        origin: &Origin,
    ) {
        let person = &self.people[enrollment.person];
        let section = &course.sections[enrollment.section];
        let user_id = person.gid();
        let user_name = person.name.clone();
        let body = json!({
            "associated_user_id": null,
            "course_id": course.gid(),
            "course_section_id": gid(section.local),
            "created_at": rfc3339_ms(enrollment.created_at),
            "enrollment_id": gid(enrollment.local),
            "limit_privileges_to_course_section": false,
            "type": enrollment.role,
            "updated_at": rfc3339_ms(time),
            "user_id": user_id,
            "user_name": user_name,
            "workflow_state": state,
        });
        let created = name == "enrollment_created";
        let mut object = json!({
            "id": urn("enrollment", &gid(enrollment.local)),
            "type": "Entity",
            "dateCreated": rfc3339_ms(enrollment.created_at),
            "extensions": { "com.instructure.canvas": {
                "course_id": urn("course", &course.gid()),
                "course_section_id": section_urn(course, section),
                "limit_privileges_to_course_section": false,
                "type": enrollment.role,
                "user_id": urn("user", &user_id),
                "user_name": user_name,
                "workflow_state": state,
                "entity_id": gid(enrollment.local),
            } },
        });
        if !created {
            object["dateModified"] = rfc3339_ms(time).into();
        }
        let mut caliper = CaliperParts::new(
            "Event",
            if created { "Created" } else { "Modified" },
            object,
        );
        caliper.group = Some(json!({
            "id": section_urn(course, section),
            "type": "CourseSection",
            "extensions": { "com.instructure.canvas": { "context_type": "Course", "entity_id": course.gid() } },
        }));
        if let Origin::Request { actor, role, .. } = origin {
            let role = caliper_role(*role);
            let actor_id = self.people[*actor].gid();
            caliper.membership = Some(json!({
                "id": format!("{}:{role}:{actor_id}", section_urn(course, section)),
                "type": "Membership",
                "member": { "id": urn("user", &actor_id), "type": "Person" },
                "organization": {
                    "id": section_urn(course, section),
                    "type": "CourseSection",
                    "subOrganizationOf": { "id": urn("course", &course.gid()), "type": "CourseOffering" },
                },
                "roles": [role],
            }));
        }
        let context = Self::course_context(course);
        self.push(
            name,
            time,
            origin,
            Some(&context),
            body,
            Some(caliper),
            ("enrollment", gid(enrollment.local)),
        );
    }

    fn assignment_event(
        &mut self,
        name: &'static str,
        course: &Course,
        assignment: &Assignment,
        state: &str,
        time: DateTime<Utc>,
    ) {
        let created = name == "assignment_created";
        let path = if created {
            format!("/api/v1/courses/{}/assignments", course.local)
        } else {
            format!(
                "/api/v1/courses/{}/assignments/{}",
                course.local, assignment.local
            )
        };
        let origin = self.request(
            course.teacher,
            Some("TeacherEnrollment"),
            if created { "POST" } else { "PUT" },
            &path,
        );
        let body = json!({
            "assignment_group_id": gid(assignment.group_local),
            "assignment_id": gid(assignment.local),
            "assignment_id_duplicated_from": null,
            "context_id": course.gid(),
            "context_type": "Course",
            "context_uuid": course.uuid,
            "created_on_blueprint_sync": false,
            "description": assignment.description,
            "domain": self.host,
            "domain_duplicated_from": null,
            "due_at": rfc3339_s(assignment.due_at),
            "lock_at": rfc3339_s(assignment.lock_at),
            "lti_assignment_id": assignment.lti_id,
            "lti_resource_link_id": assignment.resource_link_id,
            "lti_resource_link_id_duplicated_from": null,
            "points_possible": assignment.points,
            "submission_types": SUBMISSION_TYPES.join(","),
            "title": assignment.title,
            "unlock_at": rfc3339_s(assignment.unlock_at),
            "updated_at": rfc3339_ms(time),
            "workflow_state": state,
        });
        let mut extensions = json!({ "lock_at": rfc3339_ms(assignment.lock_at), "entity_id": gid(assignment.local) });
        let mut object = json!({
            "id": urn("assignment", &gid(assignment.local)),
            "type": "AssignableDigitalResource",
            "name": assignment.title,
            "description": assignment.description,
            "dateToShow": rfc3339_ms(assignment.unlock_at),
            "dateToSubmit": rfc3339_ms(assignment.due_at),
            "maxScore": assignment.points,
        });
        if created {
            object["dateCreated"] = rfc3339_ms(assignment.created_at).into();
        } else {
            object["dateModified"] = rfc3339_ms(time).into();
            extensions["workflow_state"] = state.into();
        }
        object["extensions"] = json!({ "com.instructure.canvas": extensions });
        let mut caliper = CaliperParts::new(
            "Event",
            if created { "Created" } else { "Modified" },
            object,
        );
        caliper.group = Some(course_group(course));
        caliper.membership = self.membership(course, &origin);
        let context = Self::course_context(course);
        self.push(
            name,
            time,
            &origin,
            Some(&context),
            body,
            Some(caliper),
            ("assignment", gid(assignment.local)),
        );
    }

    fn module_created(
        &mut self,
        course: &Course,
        module: u64,
        position: usize,
        time: DateTime<Utc>,
    ) {
        let origin = self.request(
            course.teacher,
            Some("TeacherEnrollment"),
            "POST",
            &format!("/api/v1/courses/{}/modules", course.local),
        );
        // Module events carry local ids in the body.
        let body = json!({
            "context_id": course.local.to_string(),
            "context_type": "Course",
            "module_id": module.to_string(),
            "name": format!("Week {position}"),
            "position": position,
            "workflow_state": "active",
        });
        let context = Self::course_context(course);
        self.push(
            "module_created",
            time,
            &origin,
            Some(&context),
            body,
            None,
            ("module", gid(module)),
        );
    }

    fn module_item_created(
        &mut self,
        course: &Course,
        module: u64,
        item: u64,
        position: usize,
        time: DateTime<Utc>,
    ) {
        let origin = self.request(
            course.teacher,
            Some("TeacherEnrollment"),
            "POST",
            &format!("/api/v1/courses/{}/modules/{module}/items", course.local),
        );
        let body = json!({
            "context_id": course.local.to_string(),
            "context_type": "Course",
            "module_id": module.to_string(),
            "module_item_id": item.to_string(),
            "position": position,
            "workflow_state": "active",
        });
        let context = Self::course_context(course);
        self.push(
            "module_item_created",
            time,
            &origin,
            Some(&context),
            body,
            None,
            ("module_item", gid(item)),
        );
    }

    /// `grading = None`: the student submits (submission_created);
    /// `Some((score, grade, graded_at))`: the teacher grades (submission_updated).
    fn submission_event(
        &mut self,
        course: &Course,
        assignment: &Assignment,
        submission: &Submission,
        grading: Option<(f64, &str, DateTime<Utc>)>,
        time: DateTime<Utc>,
    ) {
        let student = self.people[submission.student].clone();
        let (name, origin) = match grading {
            None => (
                "submission_created",
                self.request(
                    submission.student,
                    Some("StudentEnrollment"),
                    "POST",
                    &format!(
                        "/api/v1/courses/{}/assignments/{}/submissions",
                        course.local, assignment.local
                    ),
                ),
            ),
            Some(_) => (
                "submission_updated",
                with_referrer(
                    self.request(
                        course.teacher,
                        Some("TeacherEnrollment"),
                        "PUT",
                        &format!(
                            "/api/v1/courses/{}/assignments/{}/submissions/{}",
                            course.local, assignment.local, student.local
                        ),
                    ),
                    format!("https://{}/courses/{}/gradebook", self.host, course.local),
                ),
            ),
        };
        let text = (submission.submission_type == "online_text_entry")
            .then(|| format!("<p>Answers to {}.</p>", assignment.title));
        let url = (submission.submission_type == "online_url").then(|| {
            format!(
                "https://portfolio.sim.example.edu/work/{}",
                submission.local
            )
        });
        let body = json!({
            "assignment_id": gid(assignment.local),
            "attempt": 1,
            "body": text,
            "grade": grading.map(|(_, grade, _)| grade),
            "graded_at": grading.map(|(_, _, at)| rfc3339_ms(at)),
            "group_id": null,
            "late": submission.late,
            "lti_assignment_id": assignment.lti_id,
            "lti_user_id": student.uuid,
            "missing": false,
            "score": grading.map(|(score, _, _)| score_value(score)),
            "submission_id": gid(submission.local),
            "submission_type": submission.submission_type,
            "submitted_at": rfc3339_ms(submission.submitted_at),
            "updated_at": rfc3339_ms(time),
            "url": url,
            "user_id": student.gid(),
            "workflow_state": if grading.is_some() { "graded" } else { "submitted" },
        });
        let submission_id = gid(submission.local);
        let mut caliper = if grading.is_none() {
            CaliperParts::new(
                "AssignableEvent",
                "Submitted",
                json!({
                    "id": urn("submission", &submission_id),
                    "type": "Attempt",
                    "dateCreated": rfc3339_ms(submission.submitted_at),
                    "extensions": { "com.instructure.canvas": {
                        "submission_type": submission.submission_type,
                        "url": url,
                        "entity_id": submission_id,
                    } },
                    "assignee": { "id": urn("user", &student.gid()), "type": "Person" },
                    "assignable": { "id": urn("assignment", &gid(assignment.local)), "type": "AssignableDigitalResource" },
                    "count": 1,
                    "body": text,
                }),
            )
        } else {
            CaliperParts::new(
                "Event",
                "Modified",
                json!({
                    "id": urn("submission", &submission_id),
                    "type": "Attempt",
                    "dateModified": rfc3339_ms(time),
                    "extensions": { "com.instructure.canvas": {
                        "submission_type": submission.submission_type,
                        "entity_id": submission_id,
                    } },
                    "assignee": { "id": urn("user", &student.gid()), "type": "Person" },
                    "assignable": { "id": urn("assignment", &gid(assignment.local)), "type": "AssignableDigitalResource" },
                    "count": 1,
                }),
            )
        };
        caliper.group = Some(course_group(course));
        caliper.membership = self.membership(course, &origin);
        let context = Self::course_context(course);
        self.push(
            name,
            time,
            &origin,
            Some(&context),
            body,
            Some(caliper),
            ("submission", submission_id),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn grade_change(
        &mut self,
        course: &Course,
        assignment: &Assignment,
        submission: &Submission,
        score: f64,
        grade: &str,
        previous: Option<&(f64, String)>,
        time: DateTime<Utc>,
    ) {
        let student = self.people[submission.student].clone();
        let grader = self.people[course.teacher].gid();
        let origin = with_referrer(
            self.request(
                course.teacher,
                Some("TeacherEnrollment"),
                "PUT",
                &format!(
                    "/api/v1/courses/{}/assignments/{}/submissions/{}",
                    course.local, assignment.local, student.local
                ),
            ),
            format!("https://{}/courses/{}/gradebook", self.host, course.local),
        );
        let submission_id = gid(submission.local);
        let body = json!({
            "assignment_id": gid(assignment.local),
            "grade": grade,
            "grader_id": grader,
            "grading_complete": true,
            "muted": false,
            "old_grade": previous.map(|(_, g)| g.clone()),
            "old_points_possible": assignment.points,
            "old_score": previous.map(|(s, _)| score_value(*s)),
            "points_possible": assignment.points,
            "score": score_value(score),
            "student_id": student.gid(),
            "student_sis_id": student.sis_id,
            "submission_id": submission_id,
            "user_id": student.gid(),
        });
        let assignee = json!({
            "id": urn("user", &student.gid()),
            "type": "Person",
            "extensions": { "com.instructure.canvas": { "sis_id": student.sis_id } },
        });
        let assignable = json!({ "id": urn("assignment", &gid(assignment.local)), "type": "AssignableDigitalResource" });
        let mut caliper = CaliperParts::new(
            "GradeEvent",
            "Graded",
            json!({
                "id": urn("submission", &submission_id),
                "type": "Attempt",
                "extensions": { "com.instructure.canvas": { "grade": grade, "entity_id": submission_id } },
                "assignee": assignee,
                "assignable": assignable,
            }),
        );
        caliper.generated = Some(json!({
            "id": urn("submission", &submission_id),
            "type": "Score",
            "extensions": { "com.instructure.canvas": { "grade": grade, "entity_id": submission_id } },
            "attempt": {
                "id": urn("submission", &submission_id),
                "type": "Attempt",
                "extensions": { "com.instructure.canvas": { "grade": grade } },
                "assignee": assignee,
                "assignable": assignable,
            },
            "maxScore": assignment.points,
            "scoreGiven": score_value(score),
            "scoredBy": urn("user", &grader),
        }));
        caliper.group = Some(course_group(course));
        caliper.membership = self.membership(course, &origin);
        let context = Self::course_context(course);
        self.push(
            "grade_change",
            time,
            &origin,
            Some(&context),
            body,
            Some(caliper),
            ("submission", submission_id),
        );
    }
}

/// Canvas-style 40-character alphanumeric uuid.
fn canvas_uuid(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..40)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn hex(rng: &mut StdRng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// RFC 4122 v4 uuid drawn from the seeded rng, so payloads stay reproducible.
fn uuid_from(rng: &mut StdRng) -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// Whole scores as JSON integers (`5`, not `5.0`), as in Instructure's examples.
fn score_value(score: f64) -> Value {
    if score.fract() == 0.0 && score.abs() < 1e15 {
        // Exact: a whole number below 2^53 converts without loss.
        Value::from(score as i64)
    } else {
        Value::from(score)
    }
}

/// Canvas renders whole-point scores without decimals ("40", "37.5").
fn format_score(score: f64) -> String {
    if score.fract() == 0.0 {
        format!("{score:.0}")
    } else {
        format!("{score}")
    }
}
