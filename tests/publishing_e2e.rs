//! The publish workflow end to end on the local stack, against the simulated Panopto and the
//! simulated Canvas API: two lectures are booked and recorded; `panopto-poller`'s events run
//! through `orchestrator` on `recordings.fifo`. One recording is matched, filed into its
//! section's folder (found by external id), captioned, shared with its section's roster and
//! posted as a published module item in Canvas; the other's rule names a caption provider
//! Panopto does not have, so it needs attention and an incident opens. Then what people do:
//! a publish replay (dry run, twice for real: nothing changes), a session renamed by hand
//! after filing (kept, and audited), a module deleted in Canvas (recreated and the link
//! posted once more), a student dropping the section (a Canvas live event through the change
//! bus to `access-sync`: the grant is revoked), a session no lecture explains (held
//! unmatched). A second test runs the same day with lost DynamoDB responses (a crash after
//! each kind of write), Panopto 429s, Canvas throttling and Canvas 503s, and still ends with
//! one folder, one name, one grant set and one module item.

use anyhow::{Context, Result, ensure};
use chrono::{DateTime, Duration as Delta, Timelike, Utc};
use coursewire_audit::{Action, AuditTrail, DynamoAuditTrail, Outcome, Subject};
use coursewire_incidents::{DynamoIncidentStore, IncidentKind, IncidentStore};
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_local::campus::{Campus, Meeting, Room, department_rule, panopto_credentials};
use coursewire_local::fault_proxy::{Fault, FaultPlan, FaultRule};
use coursewire_local::provision::Overrides;
use coursewire_local::stack::{CANVAS_SECRET, StackOptions};
use coursewire_pipeline::intake::Intake;
use coursewire_publishing::dynamo::DynamoWorkflowStore;
use coursewire_publishing::ports::WorkflowStore;
use coursewire_publishing::{Status, WorkflowRow};
use coursewire_recordings::{RecordingEvent, RecordingEventKind};
use coursewire_simulators::canvas_api::{
    ApiSimConfig, CanvasApiSim, DEFAULT_CLIENT_ID as CANVAS_CLIENT_ID,
    DEFAULT_CLIENT_SECRET as CANVAS_CLIENT_SECRET, World,
};
use coursewire_simulators::canvas_live_events::Delivery;
use coursewire_simulators::panopto::{PanoptoSim, PanoptoSimConfig};
use coursewire_teaching::import::{ImportFiles, Importer};
use coursewire_teaching::sections::CatalogDirectory;
use coursewire_teaching::{DynamoTeachingStore, TeachingStore};
use coursewire_tests::{Harness, campus_zone, wait_until};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const POLLER: &str = "PanoptoPollerFunction";
const SCHEDULER: &str = "RecordingSchedulerFunction";
const ORCHESTRATOR: &str = "OrchestratorFunction";
const MODULE: &str = "Lecture recordings";

/// The day: Panopto and Canvas simulators, the stack, the catalogs, two booked lectures.
struct Day {
    panopto: PanoptoSim,
    canvas: CanvasApiSim,
    h: Harness,
    course: u64,
    /// Sections A (BIO: published) and B (CHEM: its caption provider does not exist).
    sections: [String; 2],
    /// Canvas user ids enrolled in A.
    roster_a: BTreeSet<String>,
    sessions: [String; 2],
    start: DateTime<Utc>,
    workflows: DynamoWorkflowStore,
    teaching: Arc<DynamoTeachingStore>,
}

fn canvas_credentials(sim: &CanvasApiSim) -> Result<Value> {
    let grant = sim.issue_grant(CANVAS_CLIENT_ID)?;
    Ok(json!({
        "base_url": sim.base_url(),
        "client_id": CANVAS_CLIENT_ID,
        "client_secret": CANVAS_CLIENT_SECRET,
        "refresh_token": grant.refresh_token,
    }))
}

fn import_files(start: DateTime<Utc>, sections: &[String; 2], recorders: &[String]) -> ImportFiles {
    let room = |id: &str, name: &str, recorder: &String| Room {
        id: id.into(),
        building: "Science".into(),
        name: name.into(),
        capacity: 100,
        recorder: Some(recorder.clone()),
    };
    let meeting = |section: &String, department: &str, room: &str| Meeting {
        section: section.clone(),
        department: department.into(),
        room: room.into(),
        start,
        minutes: 50,
    };
    Campus::around(start).files(
        &[
            room("R1", "Science 1", &recorders[0]),
            room("R2", "Science 2", &recorders[1]),
        ],
        &[
            meeting(&sections[0], "BIO", "R1"),
            meeting(&sections[1], "CHEM", "R2"),
        ],
        "",
        &json!([
            department_rule("BIO", "Panopto", "before_captions", MODULE),
            department_rule("CHEM", "Kaltura", "before_captions", MODULE)
        ]),
    )
}

/// The Canvas catalog as the change bus would have built it from the simulated Canvas.
async fn seed_catalog(h: &Harness, world: &World, course: u64) -> Result<()> {
    let course_key = format!("course:{course}");
    let mut rows: Vec<(String, Value, Option<String>)> = Vec::new();
    let c = world.course(course).context("the course")?;
    rows.push((
        course_key.clone(),
        json!({"name": c.name, "course_code": c.course_code}),
        None,
    ));
    for s in world.sections.values().filter(|s| s.course_id == course) {
        rows.push((
            format!("section:{}", s.id),
            json!({"name": s.name, "course_id": course.to_string()}),
            Some(course_key.clone()),
        ));
    }
    for e in world.enrollments.values().filter(|e| e.course_id == course) {
        rows.push((
            format!("enrollment:{}", e.id),
            json!({"user_id": e.user_id.to_string(), "section_id": e.course_section_id.to_string(),
                "type": e.enrollment_type, "workflow_state": e.workflow_state,
                "course_id": course.to_string()}),
            Some(course_key.clone()),
        ));
    }
    h.put_catalog_rows(rows).await
}

async fn start_day(test: &str, faults: Option<FaultPlan>) -> Result<Day> {
    let panopto = PanoptoSim::start(PanoptoSimConfig {
        time_scale: 0.0,
        processing_time: Duration::from_secs(10 * 60),
        caption_delay: Duration::from_secs(30 * 60),
        ..PanoptoSimConfig::default()
    })
    .await?;
    let recorders = panopto.add_recorders(&["Science 1", "Science 2", "Science 3"]);
    let canvas = CanvasApiSim::start(
        ApiSimConfig {
            time_scale: 20.0,
            ..ApiSimConfig::default()
        },
        World::synthetic(11, 1, 3..=3),
    )
    .await?;
    let course = *canvas
        .world_snapshot()
        .courses
        .keys()
        .next()
        .context("a course")?;
    // Section A gets three students of its own, section B two.
    let a = canvas.add_section(course, "Section 001")?;
    let b = canvas.add_section(course, "Section 002")?;
    for (section, n) in [(a, 3), (b, 2)] {
        for i in 0..n {
            let user = canvas.add_user(&format!("Student {section}-{i}"));
            canvas.enroll(course, section, user, "StudentEnrollment")?;
        }
    }
    let teacher = canvas.add_user("Dr. Teacher");
    canvas.enroll(course, a, teacher, "TeacherEnrollment")?;
    let mut options = StackOptions {
        overrides: Overrides::default()
            .parameter("CanvasOutflowPerSecond", "200")
            .parameter("CanvasHighWaterMark", "700")
            // A failed message comes back in seconds, not the deployed three minutes.
            .queue_attribute("RecordingsQueue", "VisibilityTimeout", "2"),
        ..StackOptions::default()
    }
    .pause(POLLER)
    .pause(SCHEDULER)
    // Its Panopto calls would join the counts asserted here (sla_e2e drives it).
    .pause("SlaMonitorFunction")
    .secret("PanoptoCredentialsSecret", panopto_credentials(&panopto))
    .secret(CANVAS_SECRET, canvas_credentials(&canvas)?);
    options.faults = faults;
    let h = Harness::start(test, options).await?;
    let table = |id: &str| -> Result<String> {
        Ok(h.stack.table_name(id).context(id.to_string())?.to_string())
    };
    let world = canvas.world_snapshot();
    seed_catalog(&h, &world, course).await?;
    let roster_a: BTreeSet<String> = world
        .enrollments
        .values()
        .filter(|e| e.course_section_id == a)
        .map(|e| e.user_id.to_string())
        .collect();
    // Panopto's Canvas integration has provisioned everyone enrolled in the course.
    for e in world.enrollments.values().filter(|e| e.course_id == course) {
        panopto.add_user(
            &format!("canvas\\{}", e.user_id),
            &format!("User {}", e.user_id),
        );
    }
    let teaching = Arc::new(DynamoTeachingStore::new(
        h.ddb.clone(),
        table("TeachingTable")?,
    ));
    let start = (Utc::now() + Delta::minutes(10))
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .context("time")?;
    let sections = [a.to_string(), b.to_string()];
    let directory =
        CatalogDirectory::new(DynamoCatalog::new(h.ddb.clone(), table("CatalogTable")?));
    let importer = Importer::new(teaching.as_ref(), &directory);
    let plan = importer
        .prepare(&import_files(start, &sections, &recorders))
        .await?;
    importer.apply(&plan, &|_, _| {}).await?;
    let report = h
        .stack
        .invoke(SCHEDULER, json!({"sections": sections}))
        .await?;
    ensure!(report["booked"] == 2, "{report}");
    let mut sessions = Vec::new();
    for section in &sections {
        let rows = teaching.lectures_of(section).await?;
        sessions.push(
            rows[0]
                .booking
                .as_ref()
                .context("booked")?
                .session_id
                .clone(),
        );
    }
    let workflows = DynamoWorkflowStore::new(h.ddb.clone(), table("RecordingsTable")?);
    Ok(Day {
        panopto,
        canvas,
        h,
        course,
        sections,
        roster_a,
        sessions: [sessions[0].clone(), sessions[1].clone()],
        start,
        workflows,
        teaching,
    })
}

impl Day {
    /// Detected, recording, complete: three poller ticks across the lecture.
    async fn record_the_lecture(&self) -> Result<()> {
        self.h.stack.invoke(POLLER, json!({})).await?;
        self.panopto.advance(Duration::from_secs(15 * 60));
        self.h.stack.invoke(POLLER, json!({})).await?;
        self.panopto.advance(Duration::from_secs(60 * 60));
        self.h.stack.invoke(POLLER, json!({})).await?;
        Ok(())
    }

    async fn workflow(&self, session: &str) -> Result<Option<WorkflowRow>> {
        Ok(self.workflows.load(session).await?)
    }

    async fn wait_for(&self, session: &str, status: Status) -> Result<WorkflowRow> {
        wait_until(
            Duration::from_secs(90),
            &format!("{session} {status:?}"),
            || async {
                Ok(self
                    .workflow(session)
                    .await?
                    .is_some_and(|w| w.status == status))
            },
        )
        .await?;
        self.workflow(session).await?.context("the workflow")
    }

    /// The course's live modules named [`MODULE`], with their live items.
    fn modules(&self) -> Vec<(u64, Vec<String>)> {
        let world = self.canvas.world_snapshot();
        world
            .modules
            .values()
            .filter(|m| m.course_id == self.course && m.name == MODULE)
            .filter(|m| m.workflow_state != "deleted")
            .map(|m| {
                let items = world
                    .module_items
                    .values()
                    .filter(|i| i.module_id == m.id && i.workflow_state != "deleted")
                    .filter_map(|i| i.external_url.clone())
                    .collect();
                (m.id, items)
            })
            .collect()
    }

    fn viewers(&self, session: &str) -> BTreeSet<String> {
        self.panopto
            .session(session)
            .map(|s| {
                s.permissions
                    .iter()
                    .map(|g| g.principal_id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A's roster as Panopto users (every one provisioned in Panopto).
    fn expected_viewers(&self) -> BTreeSet<String> {
        self.roster_a
            .iter()
            .filter_map(|u| self.panopto.user_id(&format!("canvas\\{u}")))
            .collect()
    }

    fn trail(&self) -> Result<DynamoAuditTrail> {
        Ok(DynamoAuditTrail::new(
            self.h.ddb.clone(),
            self.h
                .stack
                .table_name("AuditTable")
                .context("AuditTable")?,
        ))
    }

    /// Everything the workflow made, checked to exist exactly once.
    async fn assert_published_once(&self) -> Result<WorkflowRow> {
        let a = &self.sessions[0];
        let row = self.wait_for(a, Status::Published).await?;
        let filed = row.filed.clone().context("filed")?;
        let session = self.panopto.session(a).context("A's session")?;
        ensure!(
            session.folder_id == filed.folder_id,
            "{session:?} vs {filed:?}"
        );
        let external = self
            .panopto
            .folder_external_ids(&filed.folder_id)
            .unwrap_or_default();
        ensure!(
            external
                .values()
                .any(|id| id.starts_with("coursewire-folder:") && id.ends_with("Section 001")),
            "the section's folder carries its external id: {external:?}"
        );
        let folders: Vec<_> = self
            .panopto
            .world_snapshot()
            .folders
            .values()
            .filter(|f| f.name.ends_with("Section 001"))
            .map(|f| f.id.clone())
            .collect();
        ensure!(folders.len() == 1, "one section folder: {folders:?}");
        ensure!(
            !self.roster_a.is_empty() && self.expected_viewers().len() == self.roster_a.len(),
            "every roster member is a Panopto user"
        );
        ensure!(
            self.viewers(a) == self.expected_viewers(),
            "viewers {:?} vs roster {:?}",
            self.viewers(a),
            self.expected_viewers()
        );
        let posted = row.posted.clone().context("posted")?;
        let modules = self.modules();
        ensure!(modules.len() == 1, "one module: {modules:?}");
        let links = modules[0].1.iter().filter(|u| **u == posted.url).count();
        ensure!(links == 1, "one link: {modules:?}");
        let world = self.canvas.world_snapshot();
        let item = world
            .module_item(posted.item_id.parse()?)
            .context("the posted item")?;
        ensure!(
            item.published() && item.item_type == "ExternalUrl",
            "{item:?}"
        );
        Ok(row)
    }
}

fn steps_of(records: &[coursewire_audit::AuditRecord]) -> Vec<(String, Outcome)> {
    records
        .iter()
        .filter_map(|r| match &r.action {
            Action::WorkflowStep { step, .. } => Some((step.clone(), r.outcome)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_recording_is_published_once_and_people_changing_things_are_respected() -> Result<()> {
    let day = start_day("publishing", None).await?;
    let [a, b] = &day.sessions;
    day.record_the_lecture().await?;

    let row = day.assert_published_once().await?;
    ensure!(
        row.captions_requested.as_deref() == Some("Panopto"),
        "{row:?}"
    );
    let filed = row.filed.clone().context("filed")?;
    let folder = day
        .panopto
        .world_snapshot()
        .folders
        .get(&filed.folder_id)
        .cloned()
        .context("folder")?;
    ensure!(folder.caption_provider.is_some(), "{folder:?}");

    // B's rule names a provider Panopto does not have: it needs a person, with an incident.
    let b_row = day.wait_for(b, Status::NeedsAttention).await?;
    ensure!(
        b_row
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("Kaltura")),
        "{b_row:?}"
    );
    let incidents = DynamoIncidentStore::new(
        day.h.ddb.clone(),
        day.h
            .stack
            .table_name("IncidentsTable")
            .context("incidents")?,
    );
    let b_lecture = b_row.lecture.clone().context("B matched")?;
    let open = incidents
        .current(
            &Subject::lecture(&b_lecture.section_id, &b_lecture.slot),
            IncidentKind::PublishFailed,
        )
        .await?
        .context("a publish_failed incident on B's lecture")?;
    ensure!(open.reason.contains("caption"), "{open:?}");

    // The audit trail of A's lecture holds every step; the verdict says it was published.
    let trail = day.trail()?;
    let lecture = row.lecture.clone().context("matched")?;
    let records = trail
        .timeline(&Subject::lecture(&lecture.section_id, &lecture.slot))
        .await?;
    ensure!(
        records
            .iter()
            .any(|r| matches!(&r.action, Action::Booked { session_id, .. } if session_id == a)),
        "the booking is on the lecture's timeline"
    );
    let steps = steps_of(&records);
    for step in ["match", "file", "caption", "access", "post", "audit"] {
        ensure!(
            steps.iter().any(|(s, o)| s == step && *o == Outcome::Done),
            "{step} audited: {steps:?}"
        );
    }
    let why = coursewire_audit::WhyMissing::new(day.teaching.clone(), Arc::new(trail.clone()));
    let explained = why
        .explain(
            &coursewire_audit::Scope::Section(day.sections[0].clone()),
            day.start
                .with_timezone(&campus_zone(day.start))
                .date_naive(),
            Utc::now() + Delta::hours(2),
        )
        .await?;
    ensure!(
        explained[0].verdict.line.contains("published at"),
        "{}",
        explained[0].text()
    );

    // Publish replay: a dry run changes nothing; a replay finds everything done, twice.
    // Nothing is written: the module items, the session and every Panopto write stay as
    // they were.
    let panopto_writes = || {
        day.panopto
            .stats()
            .requests
            .iter()
            .filter(|(endpoint, _)| {
                ["POST /api", "PUT ", "DELETE "]
                    .iter()
                    .any(|verb| endpoint.starts_with(verb))
                    || (endpoint.starts_with("SOAP") && endpoint.contains("Update"))
            })
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let writes_before = panopto_writes();
    let modules_before = day.modules();
    let session_before = day
        .panopto
        .session(a)
        .map(|s| (s.name, s.folder_id, s.permissions));
    let dry = day
        .h
        .stack
        .invoke(
            ORCHESTRATOR,
            json!({"session_id": a, "force": ["post"], "dry_run": true}),
        )
        .await?;
    ensure!(
        dry["recordings"][0]["steps"][0]["outcome"] == "would",
        "{dry}"
    );
    for _ in 0..2 {
        let replay = day
            .h
            .stack
            .invoke(ORCHESTRATOR, json!({"section_id": day.sections[0]}))
            .await?;
        let steps = &replay["recordings"][0]["steps"];
        ensure!(
            steps
                .as_array()
                .is_some_and(|s| !s.is_empty() && s.iter().all(|s| s["outcome"] == "already_done")),
            "{replay}"
        );
    }
    ensure!(day.modules() == modules_before, "no module or item changed");
    ensure!(
        day.panopto
            .session(a)
            .map(|s| (s.name, s.folder_id, s.permissions))
            == session_before,
        "the session is as it was"
    );
    ensure!(
        panopto_writes() == writes_before,
        "no Panopto write: {} before, {} after",
        writes_before,
        panopto_writes()
    );

    // A person renames A after filing: the name stands, and the audit says who won.
    day.panopto
        .rename_session(a, "Cell biology — edited by the TA")?;
    day.panopto.advance(Duration::from_secs(60));
    day.h.stack.invoke(POLLER, json!({})).await?;
    wait_until(Duration::from_secs(60), "the kept rename", || async {
        Ok(day
            .workflow(a)
            .await?
            .is_some_and(|w| w.kept_change.is_some()))
    })
    .await?;
    ensure!(
        day.panopto.session(a).map(|s| s.name) == Some("Cell biology — edited by the TA".into()),
        "not renamed back"
    );
    let records = trail
        .timeline(&Subject::lecture(&lecture.section_id, &lecture.slot))
        .await?;
    ensure!(
        records
            .iter()
            .any(|r| r.detail.contains("the person's change stands")),
        "audited"
    );

    // Someone deletes the module in Canvas: a replay recreates it and posts once more.
    let (module, _) = day.modules().first().cloned().context("the module")?;
    day.canvas.delete_module(day.course, module)?;
    ensure!(day.modules().is_empty());
    let replay = day
        .h
        .stack
        .invoke(ORCHESTRATOR, json!({"session_id": a}))
        .await?;
    ensure!(replay.to_string().contains("recreated"), "{replay}");
    let row = day.assert_published_once().await?;
    ensure!(row.reposts == 1, "{row:?}");
    let again = day
        .h
        .stack
        .invoke(ORCHESTRATOR, json!({"session_id": a}))
        .await?;
    ensure!(
        again["recordings"][0]["steps"][0]["outcome"] == "already_done",
        "{again}"
    );

    // A student drops section A mid-day. Canvas says so in a live event; the change bus
    // publishes it; the access rule hands it to access-sync, which revokes the grant.
    let world = day.canvas.world_snapshot();
    let dropped = world
        .enrollments
        .values()
        .find(|e| {
            e.course_section_id.to_string() == day.sections[0]
                && e.enrollment_type == "StudentEnrollment"
        })
        .cloned()
        .context("a student of A")?;
    let dropped_viewer = day
        .panopto
        .user_id(&format!("canvas\\{}", dropped.user_id))
        .context("the student's Panopto user")?;
    ensure!(
        day.viewers(a).contains(&dropped_viewer),
        "could watch before"
    );
    day.canvas.take_live_events();
    day.canvas.set_enrollment_state(dropped.id, "deleted")?;
    for (i, event) in day.canvas.take_live_events().iter().enumerate() {
        day.h
            .emitter
            .send(&event.emission(i, Delivery::Sqs))
            .await?;
    }
    wait_until(
        Duration::from_secs(60),
        "the dropped student's access revoked",
        || async { Ok(!day.viewers(a).contains(&dropped_viewer)) },
    )
    .await?;
    let mut still = day.expected_viewers();
    still.remove(&dropped_viewer);
    ensure!(
        day.viewers(a) == still,
        "only the dropped student lost access"
    );
    // The step is done again (not left to be taken on every later event), and a replay
    // finds nothing to do.
    wait_until(
        Duration::from_secs(30),
        "the access step settled",
        || async {
            Ok(day
                .workflow(a)
                .await?
                .is_some_and(|w| !w.access_stale && w.access.as_ref() == Some(&still)))
        },
    )
    .await?;
    let replay = day
        .h
        .stack
        .invoke(ORCHESTRATOR, json!({"session_id": a}))
        .await?;
    ensure!(
        replay["recordings"][0]["steps"][0]["outcome"] == "already_done",
        "{replay}"
    );
    let records = trail
        .timeline(&Subject::lecture(&lecture.section_id, &lecture.slot))
        .await?;
    ensure!(
        records.iter().any(
            |r| matches!(&r.action, Action::WorkflowStep { step, .. } if step == "access")
                && r.detail.contains("1 revoked")
                && !r.upstream.canvas_event_ids.is_empty()
        ),
        "the revocation is audited with the Canvas change event behind it"
    );

    // A session no lecture explains (someone's own recording, pushed by the middleware) is
    // held unmatched with the reason, and never filed.
    let elsewhere = day.panopto.add_folder("Unsorted", None)?;
    let stray = day.panopto.add_recorded_session(
        &elsewhere,
        "Unscheduled recording",
        day.start + Delta::hours(8),
        Duration::from_secs(30 * 60),
    )?;
    let intake = intake(&day)?;
    let mut details = Map::new();
    details.insert("name".into(), json!("Unscheduled recording"));
    details.insert("state".into(), json!("Complete"));
    let event = RecordingEvent::new(
        RecordingEventKind::SessionDetected,
        &stray,
        None,
        Utc::now(),
        details,
        &json!({"test": "stray"}),
    );
    for result in intake
        .accept(
            &[event],
            &coursewire_recordings::event::delivery::WEBHOOK,
            Utc::now(),
        )
        .await
    {
        result?;
    }
    let held = day.wait_for(&stray, Status::Unmatched).await?;
    ensure!(
        held.reason
            .as_deref()
            .is_some_and(|r| r.contains("no lecture on recorder")),
        "{held:?}"
    );
    ensure!(held.filed.is_none(), "never filed by guess");
    ensure!(
        incidents
            .current(
                &Subject::recording(&stray),
                IncidentKind::UnmatchedRecording
            )
            .await?
            .is_some(),
        "an unmatched_recording incident"
    );

    // The stack first: nothing may call the simulators once they are gone.
    day.h.stop().await;
    day.panopto.stop().await;
    day.canvas.stop().await;
    Ok(())
}

/// The recordings inbox and queue, as the webhook writes them.
fn intake(day: &Day) -> Result<Intake> {
    let inbox = coursewire_pipeline::inbox::DynamoInbox::new(
        day.h.ddb.clone(),
        day.h
            .stack
            .table_name("RecordingsInboxTable")
            .context("inbox")?,
        Duration::from_secs(86_400),
        Duration::from_secs(86_400),
    );
    let queue = coursewire_pipeline::handoff::SqsEventQueue::new(
        day.h.sqs.clone(),
        day.h.queue("RecordingsQueue")?,
    );
    Ok(Intake::new(Arc::new(inbox), Arc::new(queue)))
}

#[tokio::test]
async fn lost_writes_throttling_and_429s_still_publish_exactly_once() -> Result<()> {
    // A crash after each kind of write the workflow and the pipeline make (the response is
    // lost after the write happened), several times each, in arrival order.
    let lose = |operation: &str, n: u64| {
        FaultRule::always(operation, Fault::LoseResponse)
            .with_probability(0.5)
            .at_most(n)
    };
    let plan = FaultPlan::new(
        21,
        [
            lose("PutItem", 8),
            lose("TransactWriteItems", 3),
            lose("UpdateItem", 3),
            lose("PutEvents", 2),
        ],
    );
    // When the post begins Canvas throttles (403 Rate Limit Exceeded: another integration
    // has just emptied the bucket) and then answers 503 three times in a row (the client
    // gives up on the request, the workflow retries the step from the queue and looks before
    // posting).
    let day = start_day("publishing chaos", Some(plan)).await?;
    day.h.stack.invoke(POLLER, json!({})).await?;
    day.panopto.force_throttle(4, Duration::from_millis(200));
    day.panopto.advance(Duration::from_secs(15 * 60));
    day.h.stack.invoke(POLLER, json!({})).await?;
    day.panopto.advance(Duration::from_secs(60 * 60));
    day.canvas.force_throttle(3);
    day.canvas.inject_errors(3, 503);
    day.panopto.force_throttle(4, Duration::from_millis(200));
    day.h.stack.invoke(POLLER, json!({})).await?;
    day.assert_published_once().await?;
    let canvas = day.canvas.stats();
    ensure!(
        canvas.injected_errors == 3 && canvas.throttled == 3,
        "Canvas pushed back: {canvas:?}"
    );
    let faults = day
        .h
        .stack
        .fault_proxy()
        .context("the fault proxy")?
        .stats();
    ensure!(
        faults.faults("PutItem").lost_responses > 0,
        "the crashes happened: {faults:?}"
    );
    ensure!(
        day.panopto.forced_throttles_pending() == 0,
        "the 429s were met"
    );
    // The stack first: nothing may call the simulators once they are gone.
    day.h.stop().await;
    day.panopto.stop().await;
    day.canvas.stop().await;
    Ok(())
}
