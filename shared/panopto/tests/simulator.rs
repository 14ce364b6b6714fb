//! The real client against the Panopto simulator: tokens that expire mid-use, throttling,
//! booking conflicts, paging, the batched SOAP state calls, folder external ids and users
//! by user key.

use chrono::{DateTime, TimeDelta, Utc};
use coursewire_panopto::{
    DEFAULT_EXTERNAL_ID_PROVIDER, HttpPanopto, HttpSettings, MemoryCredentialStore, Panopto,
    PanoptoCredentials, PanoptoError, PermissionCreate, PrincipalType, RecorderState,
    ScheduledRecordingCreate, SessionState, SessionUpdate,
};
use coursewire_simulators::panopto::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_SOAP_PASSWORD, DEFAULT_SOAP_USER, PanoptoSim,
    PanoptoSimConfig, REST_SEARCH_USERS, SOAP_GET_ALL_FOLDERS_BY_EXTERNAL_ID,
    SOAP_GET_RECORDERS_BY_ID, SOAP_GET_SESSIONS_BY_ID, SOAP_UPDATE_FOLDER_EXTERNAL_ID,
    TOKEN_ENDPOINT,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn eight_am() -> DateTime<Utc> {
    "2025-09-01T08:00:00Z".parse().expect("time")
}

async fn sim() -> PanoptoSim {
    PanoptoSim::start(PanoptoSimConfig {
        start: eight_am(),
        time_scale: 0.0,
        token_lifetime: Duration::from_secs(30 * 86_400),
        processing_time: Duration::from_secs(600),
        caption_delay: Duration::from_secs(3600),
        ..PanoptoSimConfig::default()
    })
    .await
    .expect("start")
}

fn credentials(sim: &PanoptoSim) -> PanoptoCredentials {
    PanoptoCredentials {
        base_url: sim.base_url(),
        client_id: DEFAULT_CLIENT_ID.into(),
        client_secret: DEFAULT_CLIENT_SECRET.into(),
        soap_username: Some(DEFAULT_SOAP_USER.into()),
        soap_password: Some(DEFAULT_SOAP_PASSWORD.into()),
    }
}

fn settings() -> HttpSettings {
    HttpSettings {
        max_attempts: 4,
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        ..HttpSettings::default()
    }
}

fn client_with(credentials: PanoptoCredentials) -> Arc<HttpPanopto> {
    let store = Arc::new(MemoryCredentialStore::new(credentials));
    Arc::new(HttpPanopto::new(store, settings()).expect("client"))
}

fn client(sim: &PanoptoSim) -> Arc<HttpPanopto> {
    client_with(credentials(sim))
}

fn at(minutes: i64) -> DateTime<Utc> {
    eight_am() + TimeDelta::minutes(minutes)
}

#[tokio::test]
async fn an_expired_token_is_replaced_once_for_many_concurrent_requests() {
    let sim = sim().await;
    let folder = sim.add_folder("BIO 101", None).unwrap();
    let session = sim
        .add_recorded_session(&folder, "Lecture 1", at(-120), Duration::from_secs(3000))
        .unwrap();
    let panopto = client(&sim);
    assert_eq!(
        panopto.session(&session).await.unwrap().unwrap().name,
        "Lecture 1"
    );
    assert_eq!(panopto.stats().token_fetches, 1);

    sim.expire_tokens();
    let calls = (0..20).map(|_| {
        let panopto = panopto.clone();
        let id = session.clone();
        tokio::spawn(async move { panopto.session(&id).await })
    });
    for call in futures::future::join_all(calls).await {
        assert!(call.unwrap().unwrap().is_some());
    }
    let stats = panopto.stats();
    assert_eq!(stats.token_fetches, 2, "one new token for all twenty");
    assert_eq!(sim.stats().count(TOKEN_ENDPOINT), 2);
    assert!(stats.unauthorized >= 1 && stats.unauthorized <= 20);
    assert_eq!(stats.ok, 21);

    // A token the server keeps refusing ends as Unauthorized after one refresh, not a loop.
    let refused = client_with(PanoptoCredentials {
        client_secret: "wrong".into(),
        ..credentials(&sim)
    });
    assert!(matches!(
        refused.session(&session).await,
        Err(PanoptoError::Unauthorized(_))
    ));
}

#[tokio::test]
async fn throttled_requests_wait_for_retry_after_then_give_up_at_the_bound() {
    let sim = sim().await;
    let panopto = client(&sim);
    sim.add_recorders(&["SCI-101", "SCI-102"]);
    sim.force_throttle(2, Duration::from_secs(1));
    let started = Instant::now();
    let recorders = panopto.search_remote_recorders("").await.unwrap();
    assert_eq!(recorders.len(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After honoured"
    );
    assert_eq!(panopto.stats().throttled, 2);
    assert_eq!(panopto.stats().retries, 2);

    sim.force_throttle(10, Duration::ZERO);
    match panopto.search_remote_recorders("").await {
        Err(e @ PanoptoError::Throttled { attempts: 4 }) => assert!(e.is_transient()),
        other => panic!("{other:?}"),
    }
    sim.force_throttle(0, Duration::ZERO);

    // 5xx: reads are retried, a POST that may have landed is not.
    sim.inject_errors(2, 503);
    assert_eq!(
        panopto.search_remote_recorders("SCI").await.unwrap().len(),
        2
    );
    sim.inject_errors(1, 503);
    assert!(matches!(
        panopto.create_folder("CHEM 200", None, None).await,
        Err(PanoptoError::Http { status: 503, .. })
    ));
}

#[tokio::test]
async fn an_overlapping_booking_is_a_conflict_and_cancelling_is_idempotent() {
    let sim = sim().await;
    let panopto = client(&sim);
    let folder = panopto
        .create_folder("BIO 101 Fall 2025", None, Some("recordings"))
        .await
        .unwrap();
    sim.add_recorders(&["SCI-101"]);
    let recorder = panopto.search_remote_recorders("sci-101").await.unwrap();
    let recorder = &recorder[0];
    assert_eq!(recorder.state, RecorderState::Previewing);
    let first = panopto
        .create_scheduled_recording(&ScheduledRecordingCreate::on_recorder(
            "BIO 101 Lecture 1",
            &folder.id,
            &recorder.id,
            at(60),
            at(110),
        ))
        .await
        .unwrap();
    assert_eq!(first.start_time, at(60));
    assert_eq!(first.recorder_schedule_entries[0].recorder_id, recorder.id);

    let clash = panopto
        .create_scheduled_recording(&ScheduledRecordingCreate::on_recorder(
            "CHEM 200 Lecture 1",
            &folder.id,
            &recorder.id,
            at(90),
            at(140),
        ))
        .await;
    match clash {
        Err(PanoptoError::Conflict {
            recorder: r,
            message,
        }) => {
            assert_eq!(r, recorder.id);
            assert!(message.contains("BIO 101 Lecture 1"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let second = panopto
        .create_scheduled_recording(&ScheduledRecordingCreate::on_recorder(
            "BIO 101 Lecture 2",
            &folder.id,
            &recorder.id,
            at(120),
            at(170),
        ))
        .await
        .unwrap();
    assert!(matches!(
        panopto.update_scheduled_recording(&second.id, at(100), at(170)).await,
        Err(PanoptoError::Conflict { recorder: ref r, .. }) if *r == recorder.id
    ));
    let moved = panopto
        .update_scheduled_recording(&second.id, at(115), at(175))
        .await
        .unwrap();
    assert_eq!(moved.end_time, at(175));

    panopto
        .delete_scheduled_recording(&second.id)
        .await
        .unwrap();
    panopto
        .delete_scheduled_recording(&second.id)
        .await
        .unwrap();
    assert!(
        panopto
            .scheduled_recording(&second.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        panopto
            .scheduled_recording(&first.id)
            .await
            .unwrap()
            .is_some()
    );
    // The scheduled recording's id is its session's.
    let session = panopto.session(&first.id).await.unwrap().unwrap();
    assert_eq!(session.folder.as_deref(), Some(folder.id.as_str()));
}

#[tokio::test]
async fn states_come_from_one_soap_call_however_many_sessions_are_due() {
    let sim = sim().await;
    let panopto = client(&sim);
    let folder = sim.add_folder("Physics", None).unwrap();
    sim.set_folder_caption_provider(&folder, Some("Panopto"))
        .unwrap();
    let rooms: Vec<String> = (0..30).map(|n| format!("PHY-{n:03}")).collect();
    let recorders = sim.add_recorders(&rooms);
    let mut sessions = Vec::new();
    for (n, recorder) in recorders.iter().enumerate() {
        let booked = panopto
            .create_scheduled_recording(&ScheduledRecordingCreate::on_recorder(
                format!("PHY Lecture {n}"),
                &folder,
                recorder,
                at(60),
                at(110),
            ))
            .await
            .unwrap();
        sessions.push(booked.id);
    }
    sim.fault_recorder(&recorders[0]).unwrap();
    sim.reset_stats();

    let states = panopto.session_states(&sessions).await.unwrap();
    assert_eq!(states.len(), 30);
    assert!(states.iter().all(|s| s.state == SessionState::Scheduled));
    let live = panopto.recorder_states(&recorders).await.unwrap();
    assert_eq!(live.len(), 30);
    assert_eq!(live[0].state, RecorderState::Faulted);
    assert_eq!(live[1].scheduled_recordings, vec![sessions[1].clone()]);
    let counts = sim.stats();
    assert_eq!(counts.count(SOAP_GET_SESSIONS_BY_ID), 1);
    assert_eq!(counts.count(SOAP_GET_RECORDERS_BY_ID), 1);
    assert_eq!(counts.api_requests(), 2);

    sim.advance(Duration::from_secs(3600 + 30 * 60)); // 09:30
    let recording = panopto.in_progress_recordings().await.unwrap();
    assert_eq!(recording.len(), 29, "the faulted room records nothing");
    sim.advance(Duration::from_secs(40 * 60)); // 10:10: processed
    let states = panopto.session_states(&sessions).await.unwrap();
    assert_eq!(states[0].state, SessionState::Scheduled);
    assert_eq!(states[0].duration, None);
    assert_eq!(states[1].state, SessionState::Complete);
    assert_eq!(states[1].duration(), Some(Duration::from_secs(3000)));
    assert_eq!(states[1].start_time, Some(at(60)));
    assert_eq!(states[1].remote_recorder_ids, vec![recorders[1].clone()]);

    // Hundreds of ids: batches of 200, still a constant handful of calls.
    let many: Vec<String> = (0..250)
        .map(|n| {
            sim.add_recorded_session(
                &folder,
                &format!("Old {n}"),
                at(-600),
                Duration::from_secs(60),
            )
            .unwrap()
        })
        .collect();
    sim.reset_stats();
    let states = panopto.session_states(&many).await.unwrap();
    assert_eq!(states.len(), 250);
    assert_eq!(sim.stats().count(SOAP_GET_SESSIONS_BY_ID), 2);
    assert!(panopto.session_states(&[]).await.unwrap().is_empty());

    // Bad SOAP credentials are refused credentials (the token alarm's business), not retried.
    let wrong = client_with(PanoptoCredentials {
        soap_password: Some("wrong".into()),
        ..credentials(&sim)
    });
    match wrong.session_states(&sessions).await {
        Err(PanoptoError::Unauthorized(message)) => {
            assert!(message.contains("SOAP user"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(wrong.stats().soap_requests, 1);
    assert_eq!(wrong.stats().unauthorized, 1);
    let no_soap = client_with(PanoptoCredentials {
        soap_username: None,
        ..credentials(&sim)
    });
    assert!(matches!(
        no_soap.recorder_states(&recorders).await,
        Err(PanoptoError::Config(_))
    ));
}

#[tokio::test]
async fn lists_follow_every_page_once_and_writes_land() {
    let sim = sim().await;
    let panopto = client(&sim);
    let folder = sim.add_folder("BIO 101", None).unwrap();
    let archive = sim.add_folder("BIO 101 Archive", Some(&folder)).unwrap();
    let ids: Vec<String> = (0..120)
        .map(|n| {
            sim.add_recorded_session(
                &folder,
                &format!("Lecture {n:03}"),
                at(-300 + n),
                Duration::from_secs(60),
            )
            .unwrap()
        })
        .collect();
    sim.duplicate_in_listings(&ids[3]).unwrap();
    sim.reset_stats();
    let listed = panopto.folder_sessions(&folder).await.unwrap();
    assert_eq!(listed.len(), 120, "each session once");
    assert_eq!(sim.stats().count("GET /api/v1/folders/{id}/sessions"), 3);
    assert_eq!(
        panopto.search_sessions("lecture 00").await.unwrap().len(),
        10
    );
    assert_eq!(
        panopto.folder_children(&folder).await.unwrap()[0].id,
        archive
    );
    assert_eq!(panopto.search_folders("archive").await.unwrap().len(), 1);
    assert!(
        panopto
            .folder("11111111-1111-1111-1111-111111111111")
            .await
            .unwrap()
            .is_none()
    );

    // A person renamed it; coursewire puts it back and moves it.
    sim.rename_session(&ids[0], "whatever").unwrap();
    let fixed = panopto
        .update_session(
            &ids[0],
            &SessionUpdate {
                name: Some("BIO 101 Lecture 0".into()),
                folder: Some(archive.clone()),
                ..SessionUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fixed.name, "BIO 101 Lecture 0");
    assert_eq!(fixed.folder.as_deref(), Some(archive.as_str()));

    let providers = panopto.caption_providers().await.unwrap();
    let verbit = providers.iter().find(|p| p.name == "Verbit").unwrap();
    assert_eq!(
        panopto
            .folder_settings(&archive)
            .await
            .unwrap()
            .caption_provider_id(),
        None
    );
    let set = panopto
        .set_folder_caption_provider(&archive, &verbit.id)
        .await
        .unwrap();
    assert_eq!(
        set.automatic_caption_provider_name.as_deref(),
        Some("Verbit")
    );

    let session = &ids[1];
    sim.captions_never(session).unwrap();
    assert!(
        !panopto
            .session(session)
            .await
            .unwrap()
            .unwrap()
            .has_captions()
    );
    panopto
        .upload_captions(
            session,
            "English_USA",
            b"1\n00:00:00,000 --> 00:00:02,000\nHello\n",
        )
        .await
        .unwrap();
    assert!(
        panopto
            .session(session)
            .await
            .unwrap()
            .unwrap()
            .has_captions()
    );

    let student = "22222222-2222-2222-2222-222222222222";
    let grant = PermissionCreate::viewer(student, PrincipalType::User);
    panopto
        .grant_session_permission(session, &grant)
        .await
        .unwrap();
    let granted = panopto.session_permissions(session).await.unwrap();
    assert_eq!(granted.len(), 1);
    assert_eq!(
        granted[0].principal.as_ref().unwrap().id.as_deref(),
        Some(student)
    );
    panopto
        .revoke_session_permission(session, &grant)
        .await
        .unwrap();
    panopto
        .revoke_session_permission(session, &grant)
        .await
        .unwrap();
    assert!(
        panopto
            .session_permissions(session)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_folder_is_found_again_by_its_external_id_whatever_its_name() {
    let sim = sim().await;
    let term = sim.add_folder("Fall 2025", None).unwrap();
    let folder = sim.add_folder("BIO 101 Fall 2025", Some(&term)).unwrap();
    let panopto = client(&sim);
    assert_eq!(panopto.external_id_provider(), DEFAULT_EXTERNAL_ID_PROVIDER);
    assert_eq!(
        panopto
            .folder_by_external_id("canvas-section-42")
            .await
            .unwrap(),
        None
    );

    panopto
        .set_folder_external_id(&folder, "canvas-section-42")
        .await
        .unwrap();
    // Setting it again is a no-op success.
    panopto
        .set_folder_external_id(&folder, "canvas-section-42")
        .await
        .unwrap();
    assert_eq!(
        sim.folder_external_ids(&folder).unwrap(),
        [(
            DEFAULT_EXTERNAL_ID_PROVIDER.to_string(),
            "canvas-section-42".to_string()
        )]
        .into()
    );

    sim.rename_folder(&folder, "BIO 101 (Dr. Smith) Fall 2025")
        .unwrap();
    let found = panopto
        .folder_by_external_id("canvas-section-42")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found.id, folder);
    assert_eq!(found.name, "BIO 101 (Dr. Smith) Fall 2025");
    assert_eq!(
        found.parent_folder.map(|p| p.id),
        Some(term.clone()),
        "the parent by id"
    );
    assert_eq!(
        panopto
            .folder_by_external_id("canvas-section-43")
            .await
            .unwrap(),
        None
    );

    // Another provider's ids are not this client's, in either direction.
    sim.set_folder_external_id(&term, "canvas", "canvas-section-43")
        .unwrap();
    assert_eq!(
        panopto
            .folder_by_external_id("canvas-section-43")
            .await
            .unwrap(),
        None
    );
    let other = Arc::new(
        HttpPanopto::new(
            Arc::new(MemoryCredentialStore::new(credentials(&sim))),
            settings(),
        )
        .unwrap()
        .with_external_id_provider("canvas"),
    );
    assert_eq!(
        other
            .folder_by_external_id("canvas-section-42")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        other
            .folder_by_external_id("canvas-section-43")
            .await
            .unwrap()
            .map(|f| f.id),
        Some(term.clone())
    );

    // An unknown folder is NotFound; an id another folder holds is refused, not moved.
    let unknown = "11111111-1111-1111-1111-111111111111";
    assert!(matches!(
        panopto
            .set_folder_external_id(unknown, "canvas-section-44")
            .await,
        Err(PanoptoError::NotFound(_))
    ));
    let taken = panopto
        .set_folder_external_id(&term, "canvas-section-42")
        .await;
    assert!(
        matches!(&taken, Err(PanoptoError::Soap(fault)) if fault.message.contains("already")),
        "{taken:?}"
    );
    assert!(!taken.unwrap_err().is_transient());
    assert!(matches!(
        panopto.folder_by_external_id("  ").await,
        Err(PanoptoError::Config(_))
    ));

    // Throttled like every SOAP call: waits for Retry-After, then answers.
    sim.force_throttle(1, Duration::from_secs(1));
    let found = panopto
        .folder_by_external_id("canvas-section-42")
        .await
        .unwrap();
    assert_eq!(found.map(|f| f.id), Some(folder));
    assert_eq!(panopto.stats().throttled, 1);
    let stats = sim.stats();
    assert_eq!(stats.count(SOAP_UPDATE_FOLDER_EXTERNAL_ID), 4);
    // Six lookups, the throttled one twice; the blank id never left the client.
    assert_eq!(stats.count(SOAP_GET_ALL_FOLDERS_BY_EXTERNAL_ID), 8);
}

#[tokio::test]
async fn a_user_is_found_by_exact_key_and_searches_follow_every_page() {
    let sim = sim().await;
    let students: Vec<String> = (0..120)
        .map(|n| {
            sim.add_user(
                &format!(r"canvas\student{n:03}"),
                &format!("Student {n:03}"),
            )
        })
        .collect();
    let jane = sim.add_user_with_email(r"canvas\jdoe", "Jane Doe", "jane.doe@example.edu");
    let jane2 = sim.add_user(r"canvas\jdoe2", "Jane Doe II");
    let elsewhere = sim.add_user(r"other-lms\jdoe", "Jane Doe");
    let panopto = client(&sim);
    sim.reset_stats();

    // The search answers every key containing it; the lookup keeps the exact one.
    let found = panopto
        .user_by_key(r"canvas\jdoe")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        (found.id.as_str(), found.user_key.as_str()),
        (jane.as_str(), r"canvas\jdoe")
    );
    let mut near: Vec<String> = panopto
        .search_users(r"canvas\jdoe")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    near.sort();
    let mut expected = vec![jane.clone(), jane2.clone()];
    expected.sort();
    assert_eq!(near, expected);
    assert_eq!(
        panopto
            .user_by_key(r" CANVAS\JDoe ")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(jane.clone()),
        "case-insensitive"
    );
    assert_eq!(
        panopto
            .user_by_key(r"other-lms\jdoe")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(elsewhere)
    );
    assert_eq!(panopto.user_by_key(r"canvas\nobody").await.unwrap(), None);
    assert_eq!(
        panopto.user_by_key("jdoe").await.unwrap(),
        None,
        "a login alone is not a user key"
    );
    assert!(matches!(
        panopto.user_by_key("  ").await,
        Err(PanoptoError::Config(_))
    ));
    assert_eq!(
        sim.stats().count(REST_SEARCH_USERS),
        6,
        "the blank key never left"
    );

    // 120 students: three pages, each student once.
    sim.reset_stats();
    let listed = panopto.search_users(r"canvas\student").await.unwrap();
    assert_eq!(
        listed.into_iter().map(|u| u.id).collect::<Vec<_>>(),
        students
    );
    assert_eq!(sim.stats().count(REST_SEARCH_USERS), 3);
    assert_eq!(
        panopto
            .user_by_key(r"canvas\student119")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(students[119].clone())
    );

    // A site that ignores pageNumber there (Panopto documents none): the repeated page ends
    // the list instead of being asked for up to the page bound.
    sim.users_search_ignores_paging(true);
    sim.reset_stats();
    assert_eq!(panopto.search_users("student").await.unwrap().len(), 120);
    assert_eq!(sim.stats().count(REST_SEARCH_USERS), 2);
    sim.users_search_ignores_paging(false);

    // Throttled like every REST read, and the id found is what a grant names.
    sim.force_throttle(1, Duration::ZERO);
    let student = panopto
        .user_by_key(r"canvas\student007")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(panopto.stats().throttled, 1);
    let folder = sim.add_folder("BIO 101", None).unwrap();
    let session = sim
        .add_recorded_session(&folder, "Lecture 1", at(-120), Duration::from_secs(3000))
        .unwrap();
    panopto
        .grant_session_permission(
            &session,
            &PermissionCreate::viewer(student.id.clone(), PrincipalType::User),
        )
        .await
        .unwrap();
    let granted = panopto.session_permissions(&session).await.unwrap();
    assert_eq!(
        granted[0].principal.as_ref().and_then(|p| p.id.clone()),
        Some(students[7].clone())
    );
}
