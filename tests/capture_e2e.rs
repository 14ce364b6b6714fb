//! Lecture capture end to end on the local stack with the simulated Panopto: a term imported
//! into the teaching catalog, `recording-scheduler` booking its lectures (never twice, a
//! crashed run's booking adopted, a recorder conflict surfaced), and `panopto-poller` turning
//! what Panopto does into recording events on `recordings.fifo`: a completed recording with
//! captions, a faulted recorder, a session renamed by a person, duplicate listings, and
//! Panopto throttling and expiring its token mid-poll. Last, an administrator changes the
//! SOAP user's password in Panopto: the poller is refused, the Panopto token alarm pages on
//! call, and clears once the new password is in the credentials secret.

use anyhow::{Context, Result, ensure};
use chrono::{DateTime, Duration as Delta, Timelike, Utc};
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_local::alarms::State;
use coursewire_local::campus::{
    self, Campus, Room, department_rule, panopto_client, panopto_credentials,
};
use coursewire_local::clock::SimulatedTime;
use coursewire_local::stack::StackOptions;
use coursewire_panopto::{Panopto, ScheduledRecordingCreate};
use coursewire_simulators::panopto::{
    DEFAULT_SOAP_USER, PanoptoSim, PanoptoSimConfig, SOAP_GET_SESSIONS_BY_ID, TOKEN_ENDPOINT,
};
use coursewire_teaching::import::{ImportFiles, Importer};
use coursewire_teaching::sections::CatalogDirectory;
use coursewire_teaching::{DynamoTeachingStore, TeachingStore};
use coursewire_tests::on_call::{OnCall, messages_of};
use coursewire_tests::{Harness, local_day, take_queued};
use serde_json::json;
use std::time::Duration;

const POLLER: &str = "PanoptoPollerFunction";
const SCHEDULER: &str = "RecordingSchedulerFunction";

/// One section's weekly meeting today.
struct Meeting {
    section: &'static str,
    room: &'static str,
    start: DateTime<Utc>,
    minutes: i64,
}

/// Sections A (recorded, room 1), B (recorded, room 2), C (a room without a recorder), D
/// (room 3, whose recorder someone else booked first) and E (room 5), meeting today, plus
/// `extra` meetings.csv rows.
fn files(
    start: DateTime<Utc>,
    recorders: &[String],
    changed: &[Meeting],
    extra: &str,
) -> ImportFiles {
    let room = |id: &str, building: &str, capacity: u32, recorder: Option<&String>| Room {
        id: id.into(),
        building: building.into(),
        name: format!("{building} {}", &id[1..]),
        capacity,
        recorder: recorder.cloned(),
    };
    let rooms = [
        room("R1", "Science", 100, Some(&recorders[0])),
        room("R2", "Science", 100, Some(&recorders[1])),
        room("R3", "Science", 100, Some(&recorders[2])),
        room("R4", "Humanities", 30, None),
        room("R5", "Science", 100, Some(&recorders[3])),
        room("R6", "Science", 100, Some(&recorders[4])),
    ];
    let defaults = [
        ("901", "R1"),
        ("902", "R2"),
        ("903", "R4"),
        ("904", "R3"),
        ("905", "R5"),
    ];
    let meetings: Vec<campus::Meeting> = defaults
        .into_iter()
        .map(|(section, room)| {
            let meeting = changed.iter().find(|m| m.section == section);
            let (room, start, minutes) =
                meeting.map_or((room, start, 50), |m| (m.room, m.start, m.minutes));
            campus::Meeting {
                section: format!("2107000000000{section}"),
                department: "BIO".into(),
                room: room.into(),
                start,
                minutes,
            }
        })
        .collect();
    Campus::around(start).files(
        &rooms,
        &meetings,
        extra,
        &json!([department_rule(
            "BIO",
            "Panopto",
            "before_captions",
            "Lecture recordings"
        )]),
    )
}

async fn seed_sections(h: &Harness) -> Result<()> {
    let mut rows = vec![(
        "course:21070000000000042".to_string(),
        json!({"name": "Cell Biology", "course_code": "BIO-201"}),
        None,
    )];
    for (n, section) in ["901", "902", "903", "904", "905"].iter().enumerate() {
        rows.push((
            format!("section:2107000000000{section}"),
            json!({"name": format!("Section 00{}", n + 1), "course_id": "21070000000000042"}),
            Some("course:21070000000000042".to_string()),
        ));
    }
    h.put_catalog_rows(rows).await
}

fn names(queued: &[coursewire_tests::QueuedRecord], session: &str) -> Vec<String> {
    queued
        .iter()
        .filter(|q| q.group_id == format!("recording:{session}"))
        .map(|q| q.message.event_name.clone())
        .collect()
}

#[tokio::test]
async fn lectures_are_booked_once_and_their_recordings_become_ordered_events() -> Result<()> {
    // The simulated clock starts now and moves only when the test advances it.
    let sim = PanoptoSim::start(PanoptoSimConfig {
        time_scale: 0.0,
        processing_time: Duration::from_secs(10 * 60),
        caption_delay: Duration::from_secs(30 * 60),
        ..PanoptoSimConfig::default()
    })
    .await?;
    let recorders = sim.add_recorders(&[
        "Science 1",
        "Science 2",
        "Science 3",
        "Science 5",
        "Science 6",
    ]);
    let h = Harness::start(
        "capture",
        StackOptions::default()
            .pause(POLLER)
            .pause(SCHEDULER)
            // Metrics are stamped on Panopto's clock, so the token alarm's five minutes pass
            // when the test moves it on.
            .metrics_clock(SimulatedTime(sim.clock()))
            // Its Panopto calls would join the counts asserted here (sla_e2e drives it).
            .pause("SlaMonitorFunction")
            // This test reads recordings.fifo itself (publishing_e2e consumes it).
            .pause("OrchestratorFunction")
            .secret("PanoptoCredentialsSecret", panopto_credentials(&sim)),
    )
    .await?;
    let teaching_table = h
        .stack
        .table_name("TeachingTable")
        .context("no TeachingTable")?;
    let catalog_table = h
        .stack
        .table_name("CatalogTable")
        .context("no CatalogTable")?;
    seed_sections(&h).await?;
    let store = DynamoTeachingStore::new(h.ddb.clone(), teaching_table);

    // Lectures start 10 minutes from now (whole minutes), so the poller watches them already.
    let now = Utc::now();
    let start = (now + Delta::minutes(10))
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .context("time")?;
    let directory = CatalogDirectory::new(DynamoCatalog::new(h.ddb.clone(), catalog_table));
    let importer = Importer::new(&store, &directory);
    let import = |changed: Vec<Meeting>, extra: String| {
        let files = files(start, &recorders, &changed, &extra);
        let importer = &importer;
        async move {
            let plan = importer.prepare(&files).await?;
            importer.apply(&plan, &|_, _| {}).await?;
            anyhow::Ok(plan)
        }
    };
    import(Vec::new(), String::new()).await?;

    // Someone else booked room 3's recorder over section D's lecture.
    let foreign = panopto_client(&sim)?;
    let other_folder = sim.add_folder("Facilities", None)?;
    foreign
        .create_scheduled_recording(&ScheduledRecordingCreate::on_recorder(
            "Department meeting",
            &other_folder,
            &recorders[2],
            start - Delta::minutes(5),
            start + Delta::minutes(30),
        ))
        .await?;

    // Book: A and B booked, C not recordable, D a conflict kept on its lecture.
    let sections: Vec<String> = ["901", "902", "903", "904", "905"]
        .iter()
        .map(|s| format!("2107000000000{s}"))
        .collect();
    let report = h
        .stack
        .invoke(SCHEDULER, json!({"sections": sections}))
        .await?;
    eprintln!("first booking run: {report}");
    ensure!(report["booked"] == 3, "{report}");
    ensure!(report["not_recorded"] == 1, "{report}");
    ensure!(
        report["conflicts"].as_array().map_or(0, Vec::len) == 1,
        "{report}"
    );
    let d = store.lectures_of(&sections[3]).await?;
    ensure!(
        d[0].booking.is_none()
            && d[0]
                .booking_error
                .as_deref()
                .is_some_and(|e| e.contains("already booked")),
        "{d:?}"
    );
    let a = store.lectures_of(&sections[0]).await?;
    let a_session = a[0]
        .booking
        .as_ref()
        .context("A not booked")?
        .session_id
        .clone();
    let b = store.lectures_of(&sections[1]).await?;
    let b_session = b[0]
        .booking
        .as_ref()
        .context("B not booked")?
        .session_id
        .clone();
    let a_name = sim.session(&a_session).context("A's session")?.name;
    ensure!(
        a_name == format!("BIO-201 Section 001 Lecture 1 ({})", local_day(start)),
        "{a_name}"
    );

    // A run that crashed after Panopto booked A but before it was written down: adopted.
    store.set_booking(&a[0].lecture, None, None).await?;
    let again = h
        .stack
        .invoke(SCHEDULER, json!({"sections": sections}))
        .await?;
    ensure!(
        again["booked"] == 0 && again["adopted"] == 1 && again["unchanged"] == 2,
        "{again}"
    );
    let a = store.lectures_of(&sections[0]).await?;
    ensure!(
        a[0].booking.as_ref().map(|b| b.session_id.as_str()) == Some(a_session.as_str()),
        "same session adopted"
    );
    let folder = a[0]
        .booking
        .as_ref()
        .map(|b| b.folder_id.clone())
        .context("folder")?;
    sim.set_folder_caption_provider(&folder, Some("Panopto"))?;

    // The catalog changes and the bookings follow: B's class moves by a minute and runs
    // longer (the booking is moved), E changes room (re-booked on the new recorder), then E's
    // meeting is cancelled (its booking is cancelled).
    let b_moved = Meeting {
        section: "902",
        room: "R2",
        start: start + Delta::minutes(1),
        minutes: 70,
    };
    let plan = import(vec![b_moved], String::new()).await?;
    ensure!(
        plan.sections() == [sections[1].clone()],
        "only B changed: {:?}",
        plan.sections()
    );
    let moved = h
        .stack
        .invoke(SCHEDULER, json!({"sections": plan.sections()}))
        .await?;
    ensure!(moved["moved"] == 1, "{moved}");
    let b = store.lectures_of(&sections[1]).await?;
    let b_booking = b[0].booking.as_ref().context("B's booking")?;
    ensure!(
        b_booking.session_id == b_session && b_booking.end == start + Delta::minutes(71),
        "{b_booking:?}"
    );
    let e_session = store.lectures_of(&sections[4]).await?[0]
        .booking
        .as_ref()
        .context("E booked")?
        .session_id
        .clone();
    let b_again = || Meeting {
        section: "902",
        room: "R2",
        start: start + Delta::minutes(1),
        minutes: 70,
    };
    let e_room = Meeting {
        section: "905",
        room: "R6",
        start,
        minutes: 50,
    };
    let plan = import(vec![b_again(), e_room], String::new()).await?;
    let rebooked = h
        .stack
        .invoke(SCHEDULER, json!({"sections": plan.sections()}))
        .await?;
    ensure!(rebooked["rebooked"] == 1, "{rebooked}");
    let e = store.lectures_of(&sections[4]).await?;
    let e_booking = e[0].booking.as_ref().context("E re-booked")?;
    ensure!(
        e_booking.recorder_id == recorders[4] && e_booking.session_id != e_session,
        "{e_booking:?}"
    );
    ensure!(
        sim.session(&e_session).is_none(),
        "the old booking was cancelled in Panopto"
    );
    let e_session = e_booking.session_id.clone();
    let cancelled_row = format!("2107000000000905,,cancelled,,,,,,,,,{}\n", local_day(start));
    let e_room = Meeting {
        section: "905",
        room: "R6",
        start,
        minutes: 50,
    };
    let plan = import(vec![b_again(), e_room], cancelled_row).await?;
    let cancelled = h
        .stack
        .invoke(SCHEDULER, json!({"sections": plan.sections()}))
        .await?;
    ensure!(cancelled["cancelled"] == 1, "{cancelled}");
    ensure!(
        sim.session(&e_session).is_none(),
        "E's booking was cancelled in Panopto"
    );
    ensure!(
        store.lectures_of(&sections[4]).await?[0].booking.is_none(),
        "and forgotten"
    );

    // Tick 1: both sessions detected; B's recorder faults before class.
    sim.fault_recorder(&recorders[1])?;
    sim.duplicate_in_listings(&a_session)?;
    h.stack.invoke(POLLER, json!({})).await?;
    // Tick 2, mid-lecture, with Panopto throttling: A records.
    sim.advance(Duration::from_secs(15 * 60));
    sim.force_throttle(2, Duration::from_secs(1));
    let tick = h.stack.invoke(POLLER, json!({})).await?;
    ensure!(
        tick["panopto_calls"] == 2,
        "two batched calls per tick: {tick}"
    );
    ensure!(
        sim.forced_throttles_pending() == 0,
        "the 429s were met and retried"
    );
    // A person renames A by hand; the lecture ends and A completes. Its access token has
    // expired meanwhile: the captions check (REST) fetches one new token.
    sim.rename_session(&a_session, "Biology lecture (edited)")?;
    sim.advance(Duration::from_secs(60 * 60));
    sim.expire_tokens();
    let tokens_before = sim.stats().count(TOKEN_ENDPOINT);
    let tick = h.stack.invoke(POLLER, json!({})).await?;
    let tokens_after = sim.stats().count(TOKEN_ENDPOINT);
    ensure!(
        tokens_after == tokens_before + 1,
        "one new token: {tokens_before} → {tokens_after}, {tick}"
    );
    ensure!(
        tick["panopto_calls"] == 3,
        "two batched calls and one captions check: {tick}"
    );
    // Captions arrive.
    sim.advance(Duration::from_secs(30 * 60));
    let soap_before = sim.stats().count(SOAP_GET_SESSIONS_BY_ID);
    h.stack.invoke(POLLER, json!({})).await?;
    ensure!(sim.stats().count(SOAP_GET_SESSIONS_BY_ID) == soap_before + 1);
    // Nothing changed: nothing new.
    let quiet = h.stack.invoke(POLLER, json!({})).await?;
    ensure!(quiet["events"] == 0, "{quiet}");

    // The SOAP user's password is changed in Panopto: the poller is refused and the Panopto
    // token alarm pages; with the new password in the secret, it clears.
    let mut on_call = OnCall::subscribe(&h).await?;
    let health = || {
        h.stack
            .metrics
            .values("PanoptoTokenHealthy")
            .last()
            .copied()
    };
    ensure!(health() == Some(1.0), "healthy before: {:?}", health());
    on_call
        .expect_now(&h, &[("panopto-token-unhealthy", State::Ok)])
        .await?;
    let new_password = sim
        .change_soap_password(DEFAULT_SOAP_USER)
        .context("no such SOAP user")?;
    let refused = h.stack.invoke(POLLER, json!({})).await;
    ensure!(health() == Some(0.0), "refused: {refused:?}");
    on_call
        .expect_now(&h, &[("panopto-token-unhealthy", State::Alarm)])
        .await?;
    let mut credentials = panopto_credentials(&sim);
    credentials["soap_password"] = json!(new_password);
    h.stack
        .put_secret("PanoptoCredentialsSecret", &credentials)
        .await?;
    sim.advance(Duration::from_secs(301));
    h.stack.invoke(POLLER, json!({})).await?;
    ensure!(health() == Some(1.0), "healthy again: {:?}", health());
    on_call
        .expect_now(&h, &[("panopto-token-unhealthy", State::Ok)])
        .await?;
    let messages = on_call.messages(&h).await?;
    ensure!(
        messages_of(&messages, "panopto-token-unhealthy") == ["OK", "ALARM", "OK"],
        "{messages:?}"
    );

    let queue = h.queue("RecordingsQueue")?;
    let queued = take_queued(&h.sqs, queue).await?;
    let a_events = names(&queued, &a_session);
    ensure!(
        a_events
            == [
                "session_detected",
                "recorder_state_changed",
                "recording_started",
                "recorder_state_changed",
                "session_renamed",
                "recording_stopped",
                "recording_complete",
                "captions_available"
            ],
        "A: {a_events:?}"
    );
    let b_events = names(&queued, &b_session);
    ensure!(
        b_events == ["recorder_state_changed", "session_detected"],
        "B: {b_events:?}"
    );
    sim.stop().await;
    h.stop().await;
    Ok(())
}
