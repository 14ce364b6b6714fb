//! The SLA monitor end to end on the local stack with the simulated Panopto. After a
//! two-and-a-half-hour gap since the last good tick (missed ticks), three overlapping ticks
//! find:
//! - a lecture with no recording 15 minutes after class end (paged within the minute), though
//!   its session was filed before class;
//! - a recorded lecture whose captions are late against its department's 1 h SLA, and one
//!   that is late at twice the SLA (escalated);
//! - a lecture whose room's recorder is faulted while it runs;
//! - a lecture cancelled in the catalog, which never pages.
//!
//! They open one incident per lecture and kind and page once each, with the room, recorder
//! state, course and instructor. Then the recording appears, captions arrive and the
//! recorder recovers: the next tick resolves each incident, says so on the topic and in the
//! audit trail. A recorder that fails again on the same lecture does not open a second
//! incident.

use anyhow::{Context, Result, ensure};
use chrono::{Duration as Delta, Timelike, Utc};
use coursewire_audit::{Action, AuditTrail, DynamoAuditTrail};
use coursewire_incidents::{DynamoIncidentStore, IncidentKind, IncidentStore, Subject};
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_local::campus::{
    Campus, Meeting, Room, department_rule, panopto_client, panopto_credentials,
};
use coursewire_local::stack::StackOptions;
use coursewire_panopto::Panopto;
use coursewire_publishing::WorkflowRow;
use coursewire_publishing::dynamo::DynamoWorkflowStore;
use coursewire_publishing::ports::WorkflowStore;
use coursewire_publishing::workflow::Matched;
use coursewire_simulators::panopto::{PanoptoSim, PanoptoSimConfig};
use coursewire_sla::{DynamoWatermark, Watermark};
use coursewire_teaching::import::Importer;
use coursewire_teaching::sections::CatalogDirectory;
use coursewire_teaching::{Booking, DynamoTeachingStore, Lecture, TeachingStore};
use coursewire_tests::{Harness, pages};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const MONITOR: &str = "SlaMonitorFunction";
const COURSE: &str = "21070000000000077";

fn section(n: u32) -> String {
    format!("210700000000{n:04}")
}

/// (kind, section) of the tick reports' `raised` (new only) or `resolved` entries.
fn found(reports: &[Value], list: &str, only_new: bool) -> BTreeSet<(String, String)> {
    reports
        .iter()
        .flat_map(|r| r[list].as_array().cloned().unwrap_or_default())
        .filter(|e| !only_new || e["new"] == true)
        .map(|e| {
            let subject = e["subject"].as_str().unwrap_or_default();
            // `lecture#<section>/<slot>`
            let section = subject
                .trim_start_matches("lecture#")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            (e["kind"].as_str().unwrap_or_default().to_string(), section)
        })
        .collect()
}

fn pairs(items: &[(&str, u32)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(kind, n)| (kind.to_string(), section(*n)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_lectures_page_once_and_resolve_themselves() -> Result<()> {
    let sim = PanoptoSim::start(PanoptoSimConfig::default()).await?;
    let recorders = sim.add_recorders(&["R1", "R2", "R3", "R4", "R5"]);
    let h = Harness::start(
        "sla",
        StackOptions::default()
            // Ticks are driven by the test, so their windows are known.
            .pause(MONITOR)
            .pause("PanoptoPollerFunction")
            .pause("RecordingSchedulerFunction")
            .secret("PanoptoCredentialsSecret", panopto_credentials(&sim)),
    )
    .await?;
    let table = |id: &str| -> Result<String> {
        Ok(h.stack
            .table_name(id)
            .with_context(|| format!("no {id}"))?
            .to_string())
    };
    let topic = h
        .stack
        .deployed
        .ref_value("IncidentsTopic")
        .context("no IncidentsTopic")?
        .to_string();
    let queue = pages::subscribe(&h, &topic).await?;
    let store = DynamoTeachingStore::new(h.ddb.clone(), table("TeachingTable")?);
    let incidents = DynamoIncidentStore::new(h.ddb.clone(), table("IncidentsTable")?);
    let trail = DynamoAuditTrail::new(h.ddb.clone(), table("AuditTable")?);

    // The Canvas catalog: one course, its sections, an instructor each.
    let mut rows = vec![(
        format!("course:{COURSE}"),
        json!({"name": "Organic Chemistry", "course_code": "CHEM-210"}),
        None,
    )];
    for n in 1..=5 {
        rows.push((
            format!("section:{}", section(n)),
            json!({"name": format!("Section 0{n}"), "course_id": COURSE}),
            Some(format!("course:{COURSE}")),
        ));
        rows.push((
            format!("enrollment:9{n}"),
            json!({"type": "TeacherEnrollment", "section_id": section(n), "user_id": format!("700{n}"),
                   "workflow_state": "active", "course_id": COURSE}),
            Some(format!("course:{COURSE}")),
        ));
    }
    h.put_catalog_rows(rows).await?;

    // Today's lectures, in whole minutes before now.
    let now = Utc::now();
    let base = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .context("time")?;
    let rooms: Vec<Room> = recorders
        .iter()
        .enumerate()
        .map(|(i, recorder)| Room {
            id: format!("R{}", i + 1),
            building: "Chemistry".into(),
            name: format!("Lab {}", i + 1),
            capacity: 80,
            recorder: Some(recorder.clone()),
        })
        .collect();
    let meeting = |n: u32, department: &str, start_before: i64| Meeting {
        section: section(n),
        department: department.into(),
        room: format!("R{n}"),
        start: base - Delta::minutes(start_before),
        minutes: 50,
    };
    let meetings = [
        meeting(1, "BIO", 65), // ended 15 min ago, filed before class, nothing recorded
        meeting(2, "CHEM", 115), // ended 65 min ago, recorded, no captions (SLA 1 h)
        meeting(3, "CHEM", 175), // ended 125 min ago, recorded, no captions (2 x SLA)
        meeting(4, "BIO", 80), // cancelled
        meeting(5, "BIO", 10), // running, its recorder faulted
    ];
    let campus = Campus::around(base);
    let mut chem = department_rule("CHEM", "Panopto", "before_captions", "Recordings");
    chem["caption_sla_hours"] = json!(1);
    let rules = json!([
        department_rule("BIO", "Panopto", "before_captions", "Recordings"),
        chem
    ]);
    let directory =
        CatalogDirectory::new(DynamoCatalog::new(h.ddb.clone(), table("CatalogTable")?));
    let importer = Importer::new(&store, &directory);
    let import = |extra: String| {
        let files = campus.files(&rooms, &meetings, &extra, &rules);
        let importer = &importer;
        async move {
            let plan = importer.prepare(&files).await?;
            importer.apply(&plan, &|_, _| {}).await?;
            anyhow::Ok(())
        }
    };
    import(String::new()).await?;
    // Section 4's lecture is cancelled after the fact (before its deadline).
    import(format!(
        "{},,cancelled,,,,,,,,,{}\n",
        section(4),
        campus.day
    ))
    .await?;
    let lecture = |n: u32| {
        let store = &store;
        async move {
            store
                .lectures_of(&section(n))
                .await?
                .into_iter()
                .next()
                .map(|row| row.lecture)
                .with_context(|| format!("no lecture of section {n}"))
        }
    };

    // Sections 2 and 3 were recorded (their sessions booked, as the scheduler does).
    let folder = sim.add_folder("CHEM-210", None)?;
    let record = |l: Lecture| {
        let (sim, store, folder) = (&sim, &store, folder.clone());
        async move {
            let session = sim.add_recorded_session(
                &folder,
                &format!("CHEM-210 {}", l.slot()),
                l.start,
                Duration::from_secs(50 * 60),
            )?;
            let booking = Booking {
                session_id: session.clone(),
                recorder_id: l.recorder_id.clone().unwrap_or_default(),
                folder_id: folder,
                start: l.start,
                end: l.end,
            };
            store.set_booking(&l, Some(&booking), None).await?;
            anyhow::Ok(session)
        }
    };
    // Section 1's session was filed before class (its workflow matched it to the lecture)
    // and deleted in Panopto before it recorded: a workflow is no proof of a recording.
    let unrecorded = lecture(1).await?;
    let mut filed = WorkflowRow::new("5e55f0a0-0000-4000-8000-00000000dead");
    filed.lecture = Some(Matched {
        section_id: unrecorded.section_id.clone(),
        slot: unrecorded.slot(),
        course_id: unrecorded.course_id.clone(),
        department: unrecorded.department.clone(),
    });
    DynamoWorkflowStore::new(h.ddb.clone(), table("RecordingsTable")?)
        .save(&mut filed)
        .await?;
    let session_2 = record(lecture(2).await?).await?;
    let session_3 = record(lecture(3).await?).await?;
    sim.fault_recorder(&recorders[4])?;

    // The last good tick was two and a half hours ago.
    let watermark = DynamoWatermark::new(h.ddb.clone(), table("IncidentsTable")?, "sla-monitor");
    watermark.advance(now - Delta::minutes(150)).await?;

    // Three overlapping ticks.
    let ticks = futures::future::join_all((0..3).map(|_| h.stack.invoke(MONITOR, json!({}))))
        .await
        .into_iter()
        .collect::<Result<Vec<Value>, _>>()?;
    for tick in &ticks {
        eprintln!("tick: {tick}");
    }
    let expected = pairs(&[
        ("missing_recording", 1),
        ("caption_sla_missed", 2),
        ("caption_sla_missed", 3),
        ("caption_sla_escalated", 3),
        ("recorder_down", 5),
    ]);
    ensure!(
        found(&ticks, "raised", true) == expected,
        "opened: {:?}",
        found(&ticks, "raised", true)
    );
    let new_count: usize = ticks
        .iter()
        .map(|t| {
            t["raised"]
                .as_array()
                .map_or(0, |r| r.iter().filter(|e| e["new"] == true).count())
        })
        .sum();
    ensure!(new_count == 5, "{new_count} incidents opened by 3 ticks");
    let missing = ticks
        .iter()
        .flat_map(|t| t["raised"].as_array().cloned().unwrap_or_default())
        .find(|e| e["kind"] == "missing_recording" && e["new"] == true)
        .context("no missing_recording raised")?;
    let late = missing["late_seconds"].as_f64().unwrap_or(-1.0);
    ensure!(
        (0.0..120.0).contains(&late),
        "paged {late} s after class end + grace"
    );

    // One page each, with what a technician needs.
    let opened = pages::after_waiting(&h.sqs, &queue).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let opened = [opened, pages::received(&h.sqs, &queue).await?].concat();
    let kinds: Vec<&str> = opened.iter().map(|(_, _, kind)| kind.as_str()).collect();
    ensure!(opened.len() == 5, "pages: {kinds:?}");
    let page = |kind: &str| {
        opened
            .iter()
            .find(|(_, _, k)| k == kind)
            .map(|(subject, message, _)| (subject.clone(), message.clone()))
            .with_context(|| format!("no {kind} page"))
    };
    let (_, message) = page("missing_recording")?;
    let reason = message["reason"].as_str().unwrap_or_default();
    for needle in [
        "CHEM-210 Section 01",
        "R1 (Chemistry Lab 1)",
        &recorders[0],
        "7001",
    ] {
        ensure!(reason.contains(needle), "{needle:?} not in {reason:?}");
    }
    ensure!(
        message["details"]["recorder_state"].is_string()
            && message["details"]["room"] == "R1"
            && message["severity"] == "page",
        "{message}"
    );
    let (subject, escalated) = page("caption_sla_escalated")?;
    ensure!(
        escalated["severity"] == "critical" && subject.contains("CRITICAL"),
        "{subject}: {escalated}"
    );
    let (_, down) = page("recorder_down")?;
    ensure!(
        down["severity"] == "warning"
            && down["details"]["recorder_state"] == "Faulted"
            && down["reason"]
                .as_str()
                .is_some_and(|r| r.contains("can still save")),
        "{down}"
    );
    let cancelled = lecture(4).await?;
    ensure!(
        cancelled.status == coursewire_teaching::LectureStatus::Cancelled,
        "{cancelled:?}"
    );
    ensure!(
        incidents
            .of_subject(&Subject::lecture(section(4), cancelled.slot()))
            .await?
            .is_empty(),
        "the cancelled lecture has incidents"
    );

    // The recording appears, section 2's captions arrive, the recorder recovers.
    let first = lecture(1).await?;
    record(first.clone()).await?;
    let panopto = panopto_client(&sim)?;
    let captions = b"1\n00:00:00,000 --> 00:00:02,000\nWelcome\n";
    panopto
        .upload_captions(&session_2, "English_USA", captions)
        .await?;
    sim.restore_recorder(&recorders[4])?;
    let tick = h.stack.invoke(MONITOR, json!({})).await?;
    eprintln!("tick after the fixes: {tick}");
    let resolved = found(std::slice::from_ref(&tick), "resolved", false);
    ensure!(
        resolved
            == pairs(&[
                ("missing_recording", 1),
                ("caption_sla_missed", 2),
                ("recorder_down", 5)
            ]),
        "resolved: {resolved:?}"
    );
    ensure!(
        tick["open"]["caption_sla_missed"] == 1 && tick["open"]["caption_sla_escalated"] == 1,
        "still open: {}",
        tick["open"]
    );
    let notices = pages::after_waiting(&h.sqs, &queue).await?;
    let notices: Vec<&Value> = notices.iter().map(|(_, m, _)| m).collect();
    ensure!(
        notices.len() == 3 && notices.iter().all(|m| m["event"] == "resolved"),
        "resolution notices: {notices:?}"
    );
    let timeline = trail
        .timeline(&Subject::lecture(section(1), first.slot()))
        .await?;
    let steps: Vec<&str> = timeline
        .iter()
        .filter_map(|r| match &r.action {
            Action::IncidentOpened { .. } => Some("opened"),
            Action::IncidentResolved { .. } => Some("resolved"),
            _ => None,
        })
        .collect();
    ensure!(
        steps == ["opened", "resolved"],
        "audit of lecture 1: {steps:?}"
    );
    ensure!(
        timeline
            .iter()
            .any(|r| r.detail.contains("the recording appeared")),
        "the audit does not say why it was resolved"
    );

    // The same recorder fails again during the same lecture: no second incident, no page.
    sim.fault_recorder(&recorders[4])?;
    let again = h.stack.invoke(MONITOR, json!({})).await?;
    ensure!(
        found(std::slice::from_ref(&again), "raised", true).is_empty(),
        "a second incident on one lecture: {again}"
    );
    let history = incidents
        .of_subject(&Subject::lecture(section(5), lecture(5).await?.slot()))
        .await?;
    ensure!(
        history.len() == 1 && history[0].kind == IncidentKind::RecorderDown,
        "{history:?}"
    );

    // Section 3's captions arrive: both its incidents close.
    panopto
        .upload_captions(&session_3, "English_USA", captions)
        .await?;
    let last = h.stack.invoke(MONITOR, json!({})).await?;
    ensure!(
        found(std::slice::from_ref(&last), "resolved", false)
            == pairs(&[("caption_sla_missed", 3), ("caption_sla_escalated", 3)]),
        "{last}"
    );
    ensure!(
        last["advanced"] == true && last["open"]["caption_sla_escalated"] == 0,
        "{last}"
    );
    ensure!(
        h.metric("IncidentsOpened", &[("Kind", "missing_recording")]) == 1.0
            && h.metric("SlaTicks", &[]) >= 6.0,
        "metrics: opened {}, ticks {}",
        h.metric("IncidentsOpened", &[("Kind", "missing_recording")]),
        h.metric("SlaTicks", &[])
    );
    h.stop().await;
    Ok(())
}
