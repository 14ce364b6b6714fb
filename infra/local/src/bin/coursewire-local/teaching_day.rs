//! The main job's teaching day: the lecture-capture half on the simulated Panopto, with the
//! courses, sections and rosters the Canvas half has just put into the catalog. Six sections
//! in six rooms are imported with their departments' rules and booked; the lectures are
//! recorded while `panopto-poller` ticks (the Panopto clock is moved on by hand, so a day
//! takes seconds, and every function keeps Panopto's time); one recorder drops off the network
//! mid-day before its class, one department's caption provider is hours late, a person
//! renames a session after it was filed, a student drops a section mid-day. `sla-monitor`
//! ticks through the day. The summary shows the recordings published by step, the access
//! changes, the incidents opened, paged and auto-resolved with the time from class end to
//! the missing-recording page, the alarms that fired, and the audit's answer for the lecture
//! that did not record.

use anyhow::{Context, Result, bail};
use chrono::{Duration as Delta, Timelike, Utc};
use coursewire_audit::{Action, AuditTrail, DynamoAuditTrail, Outcome, Scope, Subject, WhyMissing};
use coursewire_incidents::{DynamoIncidentStore, IncidentKind, IncidentStore};
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_local::alarms::State;
use coursewire_local::campus::{Campus, Meeting, Room, department_rule};
use coursewire_local::stack::LocalStack;
use coursewire_publishing::dynamo::DynamoWorkflowStore;
use coursewire_publishing::ports::WorkflowStore;
use coursewire_publishing::{Status, WorkflowRow};
use coursewire_simulators::canvas_api::CanvasApiSim;
use coursewire_simulators::canvas_live_events::{Delivery, Emitter};
use coursewire_simulators::panopto::PanoptoSim;
use coursewire_teaching::import::Importer;
use coursewire_teaching::sections::CatalogDirectory;
use coursewire_teaching::{DynamoTeachingStore, TeachingStore};
use serde_json::json;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const POLLER: &str = "PanoptoPollerFunction";
pub const SCHEDULER: &str = "RecordingSchedulerFunction";
/// Ticked by hand on Panopto's clock, like the poller (its schedule would tick on real time).
pub const MONITOR: &str = "SlaMonitorFunction";
/// The caption SLA of the department whose caption provider is late.
const LATE_SLA_HOURS: u32 = 1;
/// How much later than usual that provider's captions come.
const CAPTIONS_LATE: Duration = Duration::from_secs(3 * 3600);
const ORCHESTRATOR: &str = "OrchestratorFunction";
const MODULE: &str = "Lecture recordings";
const STEPS: [(&str, &str); 6] = [
    ("match", "matched"),
    ("file", "filed"),
    ("caption", "captioned"),
    ("access", "shared"),
    ("post", "posted"),
    ("audit", "audited"),
];

/// The rules of the day's departments (a course's department is its course code's subject),
/// in course order: the first posts at once, the second waits for its captions, the third
/// asks for a caption provider this Panopto tenant does not have (its recording needs a
/// person, and an incident opens).
/// The provider whose captions come late (its department promises them within the hour).
const LATE_PROVIDER: &str = "Verbit";
const RULES: [(&str, &str); 3] = [
    ("Panopto", "before_captions"),
    ("Verbit", "after_captions"),
    ("Kaltura", "before_captions"),
];

/// One section's lecture today.
struct Lecture {
    section: String,
    title: String,
    department: String,
    /// Its rule cannot be carried out: the recording needs a person.
    needs_person: bool,
    room: String,
    recorder: String,
    session: String,
}

pub async fn play(
    stack: &LocalStack,
    panopto: &PanoptoSim,
    canvas: &CanvasApiSim,
    emitter: &Emitter,
) -> Result<String> {
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let table = |id: &str| -> Result<String> {
        Ok(stack.table_name(id).context(id.to_string())?.to_string())
    };
    let teaching = Arc::new(DynamoTeachingStore::new(
        ddb.clone(),
        table("TeachingTable")?,
    ));
    let trail = DynamoAuditTrail::new(ddb.clone(), table("AuditTable")?);
    let workflows = DynamoWorkflowStore::new(ddb.clone(), table("RecordingsTable")?);
    let incidents = DynamoIncidentStore::new(ddb.clone(), table("IncidentsTable")?);

    // Two live sections from each course Canvas knows, one room each.
    let world = canvas.world_snapshot();
    let mut lectures = Vec::new();
    for (n, course) in world
        .courses
        .values()
        .filter(|c| c.workflow_state != "deleted")
        .take(RULES.len())
        .enumerate()
    {
        for section in world
            .sections
            .values()
            .filter(|s| s.course_id == course.id && s.workflow_state == "active")
            .take(2)
        {
            lectures.push(Lecture {
                section: section.id.to_string(),
                title: format!("{} {}", course.course_code, section.name),
                department: department(&course.course_code),
                needs_person: n == 2,
                room: format!("SCI-{}", 101 + lectures.len()),
                recorder: String::new(),
                session: String::new(),
            });
        }
    }
    if lectures.len() < 4 {
        bail!(
            "the Canvas scenario has {} live sections; the teaching day needs at least 4",
            lectures.len()
        );
    }
    let rooms: Vec<String> = lectures.iter().map(|l| l.room.clone()).collect();
    let recorders = panopto.add_recorders(&rooms);
    for (lecture, recorder) in lectures.iter_mut().zip(&recorders) {
        lecture.recorder = recorder.clone();
    }
    // Panopto's Canvas integration has provisioned everyone enrolled.
    for user in world.enrollments.values().map(|e| e.user_id) {
        let key = format!("canvas\\{user}");
        if panopto.user_id(&key).is_none() {
            panopto.add_user(&key, &format!("Canvas user {user}"));
        }
    }

    // Every lecture starts ten minutes from now (the scheduler books what is ahead).
    let start = (Utc::now() + Delta::minutes(10))
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .context("the lecture time")?;
    let campus = Campus::around(start);
    let rooms: Vec<Room> = lectures
        .iter()
        .map(|l| Room {
            id: l.room.clone(),
            building: "Science".into(),
            name: format!("Science {}", &l.room[4..]),
            capacity: 120,
            recorder: Some(l.recorder.clone()),
        })
        .collect();
    let meetings: Vec<Meeting> = lectures
        .iter()
        .map(|l| Meeting {
            section: l.section.clone(),
            department: l.department.clone(),
            room: l.room.clone(),
            start,
            minutes: 50,
        })
        .collect();
    let mut departments: Vec<&str> = lectures.iter().map(|l| l.department.as_str()).collect();
    departments.dedup();
    let rules: Vec<_> = departments
        .iter()
        .zip(RULES)
        .map(|(department, (provider, post))| {
            let mut rule = department_rule(department, provider, post, MODULE);
            if provider == LATE_PROVIDER {
                rule["caption_sla_hours"] = json!(LATE_SLA_HOURS);
            }
            rule
        })
        .collect();
    // The late provider's department.
    let late_department = departments
        .iter()
        .zip(RULES)
        .find(|(_, (provider, _))| *provider == LATE_PROVIDER)
        .map(|(department, _)| department.to_string());
    step(&format!(
        "teaching day: importing {} rooms, {} meetings and {} department rules, booking the recorders",
        rooms.len(),
        meetings.len(),
        rules.len()
    ));
    let directory = CatalogDirectory::new(DynamoCatalog::new(ddb.clone(), table("CatalogTable")?));
    let importer = Importer::new(teaching.as_ref(), &directory);
    let plan = importer
        .prepare(&campus.files(&rooms, &meetings, "", &json!(rules)))
        .await
        .context("the teaching import")?;
    importer.apply(&plan, &|_, _| {}).await?;
    let sections: Vec<&str> = lectures.iter().map(|l| l.section.as_str()).collect();
    let booked = stack
        .invoke(SCHEDULER, json!({ "sections": sections }))
        .await?;
    for lecture in &mut lectures {
        let rows = teaching.lectures_of(&lecture.section).await?;
        lecture.session = rows
            .first()
            .and_then(|r| r.booking.as_ref())
            .map(|b| b.session_id.clone())
            .with_context(|| format!("{} was not booked: {booked}", lecture.title))?;
    }
    // The recorder that drops off is in a department that publishes, so the audit's answer
    // for its lecture is about the room alone.
    let down = lectures
        .iter()
        .skip(2)
        .rev()
        .find(|l| !l.needs_person)
        .context("the teaching day needs a third section in a publishing department")?;
    let (renamed, dropper) = (&lectures[1], &lectures[0]);

    // The day, at the poller's five-minute rhythm compressed: before class, mid-lecture,
    // after class (processing done), after the captions.
    let poll = || async { stack.invoke(POLLER, json!({})).await };
    let recorded: Vec<&Lecture> = lectures
        .iter()
        .filter(|l| l.session != down.session)
        .collect();
    poll().await?;
    // Before class the workflow files each session, asks for its captions and shares it
    // with the roster (the poller's next tick is minutes away: let it catch up).
    step("sessions detected: filed into their sections' folders, captions asked for, shared");
    let ready = |row: &WorkflowRow| row.access.is_some() || row.status != Status::InProgress;
    wait(
        Duration::from_secs(90),
        "every session filed and shared",
        || async {
            for l in &recorded {
                match workflows.load(&l.session).await? {
                    Some(row) if ready(&row) => {}
                    _ => return Ok(false),
                }
            }
            Ok(true)
        },
    )
    .await?;
    // The late provider's first recorded lecture gets its captions hours late.
    let late = recorded
        .iter()
        .find(|l| Some(&l.department) == late_department.as_ref())
        .copied()
        .context("the teaching day needs a recorded lecture whose captions come late")?;
    panopto.captions_late(&late.session, CAPTIONS_LATE)?;
    let end = start + Delta::minutes(50);
    let local = |t: chrono::DateTime<Utc>| t.with_timezone(&campus.zone).format("%H:%M");
    let to = |at: chrono::DateTime<Utc>| {
        if let Ok(by) = (at - panopto.now()).to_std() {
            panopto.advance(by);
        }
    };
    let mut day = Ticks::default();
    step(&format!(
        "the recorder in {} drops off the network mid-day, before its class at {}",
        down.room,
        local(start)
    ));
    panopto.disconnect_recorder(&down.recorder)?;
    to(start + Delta::minutes(5));
    poll().await?;
    day.tick(stack, "class has started").await?;
    to(end + Delta::minutes(16));
    poll().await?;
    day.tick(stack, "class is over (and 15 minutes of grace)")
        .await?;
    step("class is over: recordings complete and are posted to Canvas");
    step(&format!(
        "a teaching assistant renames the {} recording in Panopto by hand",
        renamed.title
    ));
    let by_hand = format!("{} — guest lecture (edited by the TA)", renamed.title);
    panopto.rename_session(&renamed.session, &by_hand)?;
    to(end + Delta::minutes(45));
    poll().await?;
    step(&format!(
        "the captions arrive, except {}'s: {LATE_PROVIDER} is {} h late against a {LATE_SLA_HOURS} h SLA",
        late.title,
        CAPTIONS_LATE.as_secs() / 3600
    ));
    for hours in [LATE_SLA_HOURS, 2 * LATE_SLA_HOURS] {
        to(end + Delta::hours(i64::from(hours)) + Delta::minutes(1));
        poll().await?;
        day.tick(stack, &format!("{hours} h after class")).await?;
    }
    to(end + Delta::minutes(40) + Delta::from_std(CAPTIONS_LATE)? + Delta::minutes(5));
    poll().await?;
    step(&format!("{}'s captions arrive at last", late.title));
    let settled = wait(
        Duration::from_secs(90),
        "every recording settled",
        || async {
            for l in &recorded {
                let Some(row) = workflows.load(&l.session).await? else {
                    return Ok(false);
                };
                if row.status == Status::InProgress {
                    return Ok(false);
                }
            }
            Ok(workflows
                .load(&renamed.session)
                .await?
                .is_some_and(|r| r.kept_change.is_some()))
        },
    )
    .await;
    if let Err(stalled) = settled {
        let mut states = Vec::new();
        for l in &recorded {
            let row = workflows.load(&l.session).await?;
            states.push(format!("{}: {row:?}", l.title));
        }
        bail!("{stalled}\n{}", states.join("\n"));
    }

    // A student drops mid-day: Canvas says so in a live event, the change bus carries it to
    // access-sync, which revokes the grant.
    let student = world
        .enrollments
        .values()
        .find(|e| {
            e.course_section_id.to_string() == dropper.section
                && e.enrollment_type == "StudentEnrollment"
                && e.workflow_state == "active"
                && panopto.user_id(&format!("canvas\\{}", e.user_id)).is_some()
        })
        .cloned()
        .context("an active student of the first section")?;
    let viewer = panopto
        .user_id(&format!("canvas\\{}", student.user_id))
        .context("the student's Panopto user")?;
    let viewers = |session: &str| -> BTreeSet<String> {
        panopto
            .session(session)
            .map(|s| s.permissions.into_iter().map(|g| g.principal_id).collect())
            .unwrap_or_default()
    };
    let could_watch = viewers(&dropper.session).contains(&viewer);
    step(&format!(
        "a student drops {} in Canvas (live event → change bus → access-sync)",
        dropper.title
    ));
    canvas.take_live_events();
    canvas.set_enrollment_state(student.id, "deleted")?;
    let dropped_at = Instant::now();
    for (i, event) in canvas.take_live_events().iter().enumerate() {
        emitter.send(&event.emission(i, Delivery::Sqs)).await?;
    }
    let revoked = wait(
        Duration::from_secs(60),
        "the dropped student's access revoked",
        || async {
            let settled = workflows.load(&dropper.session).await?.is_some_and(|row| {
                !row.access_stale && row.access.is_some_and(|a| !a.contains(&viewer))
            });
            Ok(settled && !viewers(&dropper.session).contains(&viewer))
        },
    )
    .await;
    if let Err(stalled) = revoked {
        let row = workflows.load(&dropper.session).await?;
        let m = &stack.metrics;
        bail!(
            "{stalled}\ncould watch before: {could_watch}; still a viewer: {}; enrollment {} of user {}\nrow: {row:?}\naccepted {} rejected {:?} dup {} access-dlq {:?}",
            viewers(&dropper.session).contains(&viewer),
            student.id,
            student.user_id,
            m.sum("EventsAccepted", &[]),
            m.sum_by("EventsRejected", "Reason"),
            m.sum("DuplicatesDropped", &[]),
            stack.queue_depth("AccessDLQ").await.map(|d| d.total()).ok(),
        );
    }
    let revoked_in = dropped_at.elapsed();
    day.tick(stack, "the captions are in").await?;

    // Replaying the first section changes nothing: every step is recognised as done.
    let replay = stack
        .invoke(ORCHESTRATOR, json!({ "section_id": dropper.section }))
        .await?;
    let replay_clean = replay["recordings"].as_array().is_some_and(|r| {
        !r.is_empty()
            && r.iter().all(|r| {
                r["steps"]
                    .as_array()
                    .is_some_and(|s| s.iter().all(|s| s["outcome"] == "already_done"))
            })
    });

    // ── the summary ──
    // Each step once per recording; the access step's grants and revokes every time.
    let mut done: BTreeSet<(&str, &str)> = BTreeSet::new();
    let (mut granted, mut revoked) = (0usize, 0usize);
    let mut rows = Vec::new();
    for l in &recorded {
        let row = workflows
            .load(&l.session)
            .await?
            .context("a workflow row")?;
        let lecture = row.lecture.clone().context("matched")?;
        let records = trail
            .timeline(&Subject::lecture(&lecture.section_id, &lecture.slot))
            .await?;
        for record in &records {
            if let Action::WorkflowStep { step, .. } = &record.action
                && record.outcome == Outcome::Done
            {
                if let Some((_, label)) = STEPS.iter().find(|(s, _)| s == step) {
                    done.insert((l.session.as_str(), label));
                }
                if step == "access" {
                    granted += count_before(&record.detail, " granted");
                    revoked += count_before(&record.detail, " revoked");
                }
            }
        }
        rows.push((l, row));
    }
    let published = rows
        .iter()
        .filter(|(_, r)| r.status == Status::Published)
        .count();
    let unresolved = incidents.unresolved().await?;
    // CloudWatch's view of the day: every alarm of the template on what the functions emitted.
    let alarms = stack.evaluate_alarms(Utc::now()).await?;
    let why = WhyMissing::new(teaching.clone(), Arc::new(trail.clone()));
    let date = start.with_timezone(&campus.zone).date_naive();
    let answer = why
        .explain(&Scope::Section(down.section.clone()), date, panopto.now())
        .await?;
    let answer = answer
        .first()
        .context("the missing lecture's explanation")?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "── teaching day (lecture capture) ──────────────────────────────────"
    );
    let _ = writeln!(
        out,
        "  lectures booked            {:>6}   ({} rooms, {} departments; {} recorded)",
        lectures.len(),
        lectures.len(),
        rules.len(),
        recorded.len()
    );
    let _ = writeln!(
        out,
        "  recordings published       {published:>6}   of {} recorded",
        recorded.len()
    );
    let _ = writeln!(
        out,
        "  by step                    {}",
        STEPS
            .iter()
            .map(|(_, label)| {
                let n = done.iter().filter(|(_, l)| l == label).count();
                format!("{label} {n}")
            })
            .collect::<Vec<_>>()
            .join(" · ")
    );
    for (l, row) in &rows {
        let mut note = match row.status {
            Status::Published => row.posted.as_ref().map_or(String::new(), |p| p.url.clone()),
            _ => row.last_error.clone().unwrap_or_default(),
        };
        if let Some(kept) = &row.kept_change {
            note = format!("kept the person's change ({kept})");
        }
        let _ = writeln!(
            out,
            "      {:<38} {:<5} {:<8} {:<16} {}",
            l.title,
            l.department,
            l.room,
            row.status.as_str(),
            truncate(&note, 60)
        );
    }
    let _ = writeln!(
        out,
        "  access                     {granted:>6}   viewers granted from the rosters, {revoked} revoked"
    );
    let drop_ok = could_watch && revoked >= 1;
    let _ = writeln!(
        out,
        "  a student dropped          {:>6}   {} lost access {:.1} s after Canvas's event {}",
        1,
        dropper.title,
        revoked_in.as_secs_f64(),
        tick(drop_ok)
    );
    let _ = writeln!(
        out,
        "  publish replay             {:>6}   recording(s) of {}: every step already done {}",
        replay["recordings"].as_array().map_or(0, Vec::len),
        dropper.title,
        tick(replay_clean)
    );
    let _ = writeln!(out, "  incidents open             {:>6}", unresolved.len());
    for incident in &unresolved {
        let _ = writeln!(
            out,
            "      {:<16} {} {}: {}",
            incident.kind.as_str(),
            if incident.paged { "paged" } else { "not paged" },
            incident.subject,
            truncate(&incident.reason, 70)
        );
    }
    let _ = writeln!(
        out,
        "  sla-monitor                {:>6}   incident(s) opened, {} paged, {} auto-resolved",
        day.opened.len(),
        day.opened.iter().filter(|o| o.paged).count(),
        day.resolved.len()
    );
    for kind in SLA_KINDS {
        let opened = day.opened(kind);
        let after: Vec<String> = opened
            .iter()
            .map(|o| {
                let minutes = o.since_class_end_seconds / 60.0;
                if minutes < 0.0 {
                    format!("{:.0} min before it", -minutes)
                } else {
                    format!("{minutes:.0} min")
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "      {:<22} {} opened, {} paged, {} resolved; class end to incident {}",
            kind.as_str(),
            opened.len(),
            opened.iter().filter(|o| o.paged).count(),
            day.resolved(kind),
            if after.is_empty() {
                "-".to_string()
            } else {
                after.join(", ")
            }
        );
    }
    let fired: Vec<String> = alarms
        .iter()
        .filter(|t| t.to == State::Alarm)
        .map(|t| format!("{} ({})", t.alarm, truncate(&t.reason, 90)))
        .collect();
    let _ = writeln!(
        out,
        "  alarms fired               {:>6}   {}",
        fired.len(),
        if fired.is_empty() {
            "none: the integration itself stayed healthy (lecture problems page through IncidentsTopic)".to_string()
        } else {
            fired.join("\n                                      ")
        }
    );
    let _ = writeln!(
        out,
        "  why is {}'s lecture missing? (coursewire why-missing)",
        down.title
    );
    for line in answer.text().lines() {
        let _ = writeln!(out, "    {line}");
    }

    let expected_failures = rows.iter().filter(|(l, _)| l.needs_person).count();
    let all_published = rows.iter().all(|(l, r)| {
        (l.needs_person && r.status == Status::NeedsAttention)
            || (!l.needs_person && r.status == Status::Published)
    });
    // Still open: the publishing failures and the lecture that was never recorded.
    let incidents_ok = unresolved.len() == expected_failures + 1;
    let once_paged = |kind: IncidentKind| {
        let opened = day.opened(kind);
        opened.len() == 1 && opened[0].paged
    };
    let missing = IncidentKind::MissingRecording;
    let sla_ok = once_paged(missing)
        && day.opened(missing)[0].subject.contains(&down.section)
        && day.resolved(missing) == 0
        && SLA_KINDS[1..]
            .iter()
            .all(|kind| once_paged(*kind) && day.resolved(*kind) == 1);
    let missing_ok = !answer.verdict.recorded && answer.verdict.line.contains(&down.room);
    let ok = all_published && drop_ok && replay_clean && incidents_ok && missing_ok && sla_ok;
    if !ok {
        let _ = writeln!(out, "✗ the teaching day did not add up: see above");
        bail!(out);
    }
    let _ = writeln!(
        out,
        "✓ every recorded lecture was filed, captioned, shared with its roster and posted once \
         (a caption provider Panopto lacks needs a person, with an incident); the person's rename stood; the \
         dropped student lost access; sla-monitor warned of the dead recorder before class, paged the \
         missing lecture once and escalated the late captions, resolving what recovered; the audit \
         explains the lecture that did not record"
    );
    Ok(out)
}

/// The incident kinds `sla-monitor` owns, in the summary's order: the missing recording first.
const SLA_KINDS: [IncidentKind; 4] = [
    IncidentKind::MissingRecording,
    IncidentKind::RecorderDown,
    IncidentKind::CaptionSlaMissed,
    IncidentKind::CaptionSlaEscalated,
];

/// An incident a tick opened.
struct Opened {
    kind: IncidentKind,
    subject: String,
    paged: bool,
    /// From class end to the tick that opened it (negative: before class end).
    since_class_end_seconds: f64,
}

/// What `sla-monitor`'s ticks through the day opened and resolved (from their reports).
#[derive(Default)]
struct Ticks {
    opened: Vec<Opened>,
    resolved: Vec<IncidentKind>,
}

impl Ticks {
    async fn tick(&mut self, stack: &LocalStack, when: &str) -> Result<()> {
        let report = stack.invoke(MONITOR, json!({})).await?;
        let list = |key: &str| report[key].as_array().cloned().unwrap_or_default();
        let kind = |v: &serde_json::Value| -> Result<IncidentKind> {
            serde_json::from_value(v["kind"].clone())
                .context("an incident kind in the tick's report")
        };
        let (mut news, mut cleared) = (Vec::new(), Vec::new());
        for raised in list("raised").iter().filter(|r| r["new"] == true) {
            let kind = kind(raised)?;
            news.push(kind.as_str());
            self.opened.push(Opened {
                kind,
                subject: raised["subject"].as_str().unwrap_or("").to_string(),
                paged: raised["paged"] == true,
                since_class_end_seconds: raised["since_class_end_seconds"].as_f64().unwrap_or(0.0),
            });
        }
        for resolved in list("resolved") {
            let kind = kind(&resolved)?;
            cleared.push(kind.as_str());
            self.resolved.push(kind);
        }
        let said = |what: &str, kinds: &[&str]| {
            if kinds.is_empty() {
                String::new()
            } else {
                format!("; {what} {}", kinds.join(", "))
            }
        };
        step(&format!(
            "sla-monitor ticks ({when}): {} lecture(s) read{}{}",
            report["lectures_read"],
            said("opened", &news),
            said("resolved", &cleared)
        ));
        Ok(())
    }

    fn opened(&self, kind: IncidentKind) -> Vec<&Opened> {
        self.opened.iter().filter(|o| o.kind == kind).collect()
    }

    fn resolved(&self, kind: IncidentKind) -> usize {
        self.resolved.iter().filter(|k| **k == kind).count()
    }
}

/// A course's department: its course code's subject (`CHEM 350` → `CHEM`).
fn department(course_code: &str) -> String {
    course_code
        .split(|c: char| c.is_whitespace() || c == '-')
        .next()
        .unwrap_or(course_code)
        .to_string()
}

/// The number written just before `label` in an audit detail ("3 granted" → 3).
fn count_before(detail: &str, label: &str) -> usize {
    detail
        .find(label)
        .and_then(|end| detail[..end].rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max - 1).collect();
    format!("{cut}…")
}

async fn wait<F, Fut>(timeout: Duration, what: &str, mut done: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    while !done().await? {
        if Instant::now() > deadline {
            bail!("the teaching day stalled: {what} did not happen within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn step(text: &str) {
    println!("▸ {text}");
}

fn tick(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_from_the_access_detail() {
        let detail = "access by section roster: 14 viewer(s), 14 granted, 1 revoked";
        assert_eq!(count_before(detail, " granted"), 14);
        assert_eq!(count_before(detail, " revoked"), 1);
        assert_eq!(count_before("nothing here", " granted"), 0);
    }
}
