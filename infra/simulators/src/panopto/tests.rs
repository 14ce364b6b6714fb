//! End-to-end tests: a plain HTTP client (reqwest) against the started simulator.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::*;

fn start_time() -> DateTime<Utc> {
    "2025-09-01T08:00:00Z".parse().expect("time")
}

/// A frozen clock at 08:00: only `advance` moves it. Tokens outlive the tests' time jumps.
fn frozen() -> PanoptoSimConfig {
    PanoptoSimConfig {
        token_lifetime: Duration::from_secs(30 * 86_400),
        start: start_time(),
        time_scale: 0.0,
        processing_time: Duration::from_secs(600),
        caption_delay: Duration::from_secs(3600),
        ..PanoptoSimConfig::default()
    }
}

async fn start(config: PanoptoSimConfig) -> PanoptoSim {
    PanoptoSim::start(config).await.expect("start")
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("{e}: {} {}", self.status, self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("send");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.expect("body"),
    }
}

/// A client with a token, talking to one simulator.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn new(sim: &PanoptoSim) -> Self {
        let http = reqwest::Client::new();
        let token = token_request(&http, sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
        assert_eq!(token.status, 200, "{}", token.text);
        Self {
            http,
            base: sim.base_url(),
            token: token.json()["access_token"]
                .as_str()
                .expect("token")
                .to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/Panopto/api/v1{path}", self.base)
    }

    async fn get(&self, path: &str) -> Answer {
        answer(self.http.get(self.url(path)).bearer_auth(&self.token)).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Answer {
        answer(
            self.http
                .request(method, self.url(path))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    async fn book(&self, folder: &str, recorder: &str, name: &str, from: i64, to: i64) -> Answer {
        let t = |m: i64| (start_time() + TimeDelta::minutes(m)).to_rfc3339();
        self.send(
            reqwest::Method::POST,
            "/scheduledRecordings?resolveConflicts=false",
            json!({
                "Name": name, "StartTime": t(from), "EndTime": t(to), "FolderId": folder,
                "Recorders": [{"RemoteRecorderId": recorder, "SuppressPrimary": false, "SuppressSecondary": false}],
                "IsBroadcast": false,
            }),
        )
        .await
    }

    async fn soap(&self, service: &str, action: &str, body: String) -> Answer {
        answer(
            self.http
                .post(format!("{}/Panopto/PublicAPI/4.6/{service}.svc", self.base))
                .header("content-type", "text/xml; charset=utf-8")
                .header("SOAPAction", format!("\"http://tempuri.org/{action}\""))
                .body(body),
        )
        .await
    }

    async fn session_states(&self, ids: &[&str]) -> Answer {
        self.soap(
            "SessionManagement",
            "ISessionManagement/GetSessionsById",
            envelope(
                "GetSessionsById",
                "sessionIds",
                DEFAULT_SOAP_USER,
                DEFAULT_SOAP_PASSWORD,
                ids,
            ),
        )
        .await
    }
}

async fn token_request(http: &reqwest::Client, sim: &PanoptoSim, id: &str, secret: &str) -> Answer {
    // The ids and secrets here need no escaping.
    let form =
        format!("grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=api");
    answer(
        http.post(format!("{}/Panopto/oauth2/connect/token", sim.base_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form),
    )
    .await
}

fn envelope(op: &str, ids_element: &str, user: &str, password: &str, ids: &[&str]) -> String {
    let guids: String = ids
        .iter()
        .map(|id| format!("<arr:guid>{id}</arr:guid>"))
        .collect();
    format!(
        r#"<x:Envelope xmlns:x="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tem="http://tempuri.org/" xmlns:pan="http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V40" xmlns:arr="http://schemas.microsoft.com/2003/10/Serialization/Arrays"><x:Body><tem:{op}><tem:auth><pan:Password>{password}</pan:Password><pan:UserKey>{user}</pan:UserKey></tem:auth><tem:{ids_element}>{guids}</tem:{ids_element}></tem:{op}></x:Body></x:Envelope>"#
    )
}

/// `(Id, State, Duration)` of every session in a GetSessionsById answer, read as XML.
fn soap_states(text: &str) -> Vec<(String, String, Option<String>)> {
    let root = xml::Element::parse(text.as_bytes()).expect("xml");
    let result = root
        .child("Body")
        .and_then(|b| b.child("GetSessionsByIdResponse"))
        .and_then(|r| r.child("GetSessionsByIdResult"))
        .expect("result");
    result
        .children
        .iter()
        .map(|s| {
            (
                s.child_text("Id").unwrap_or_default().to_string(),
                s.child_text("State").unwrap_or_default().to_string(),
                s.child_text("Duration").map(str::to_string),
            )
        })
        .collect()
}

struct Site {
    folder: String,
    recorder: String,
}

fn site(sim: &PanoptoSim) -> Site {
    let folder = sim.add_folder("BIO 101 Fall 2025", None).expect("folder");
    sim.set_folder_caption_provider(&folder, Some("Panopto"))
        .expect("provider");
    let recorder = sim.add_recorder("SCI-101");
    Site { folder, recorder }
}

#[tokio::test]
async fn client_credentials_tokens_expire_and_bad_ones_get_invalid_token() {
    let sim = start(PanoptoSimConfig {
        token_lifetime: Duration::from_secs(60),
        ..frozen()
    })
    .await;
    let http = reqwest::Client::new();
    let refused = token_request(&http, &sim, DEFAULT_CLIENT_ID, "wrong").await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["error"], "invalid_client");
    let api = Api::new(&sim).await;
    let granted = token_request(&http, &sim, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).await;
    assert_eq!(granted.json()["expires_in"], 60);
    assert_eq!(granted.json()["token_type"], "Bearer");

    assert_eq!(
        api.get("/remoteRecorders/search?searchQuery=").await.status,
        200
    );
    sim.advance(Duration::from_secs(61));
    let expired = api.get("/remoteRecorders/search?searchQuery=").await;
    assert_eq!(expired.status, 401);
    assert!(
        expired
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\"")
    );
    let fresh = Api::new(&sim).await;
    assert_eq!(
        fresh
            .get("/remoteRecorders/search?searchQuery=")
            .await
            .status,
        200
    );
    sim.expire_tokens();
    assert_eq!(
        fresh
            .get("/remoteRecorders/search?searchQuery=")
            .await
            .status,
        401
    );
    let none = answer(http.get(api.url("/folders/search?searchQuery=x"))).await;
    assert_eq!(none.status, 401);
    let stats = sim.stats();
    assert_eq!(stats.count(TOKEN_ENDPOINT), 4);
    assert_eq!(stats.tokens_issued, 3);
    assert_eq!(stats.unauthorized, 3);
}

#[tokio::test]
async fn a_booked_session_records_processes_completes_and_gets_captions_on_the_clock() {
    let sim = start(frozen()).await;
    let site = site(&sim);
    let api = Api::new(&sim).await;
    // 09:00–09:50.
    let booked = api
        .book(&site.folder, &site.recorder, "BIO 101 Lecture 1", 60, 110)
        .await;
    assert_eq!(booked.status, 200, "{}", booked.text);
    let id = booked.json()["Id"].as_str().unwrap().to_string();
    assert_eq!(
        booked.json()["RecorderScheduleEntries"][0]["RecorderId"],
        site.recorder.as_str()
    );
    assert_eq!(booked.json()["StartTime"], "2025-09-01T09:00:00Z");

    let states = |text: &str| {
        soap_states(text)
            .into_iter()
            .map(|(_, s, d)| (s, d))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        states(&api.session_states(&[&id]).await.text),
        vec![("Scheduled".to_string(), None)]
    );
    assert_eq!(
        sim.recorder_state(&site.recorder),
        Some(RecorderState::Previewing)
    );

    sim.advance(Duration::from_secs(3600)); // 09:00
    assert_eq!(sim.session_state(&id), Some(SessionState::Recording));
    assert_eq!(
        sim.recorder_state(&site.recorder),
        Some(RecorderState::Recording)
    );
    let live = api.get("/sessions/inProgress/recording").await.json();
    assert_eq!(live["Results"][0]["Id"], id.as_str());

    sim.advance(Duration::from_secs(50 * 60)); // 09:50
    assert_eq!(
        states(&api.session_states(&[&id]).await.text),
        vec![("Processing".to_string(), Some("3000".to_string()))]
    );
    assert_eq!(
        sim.recorder_state(&site.recorder),
        Some(RecorderState::Previewing)
    );
    sim.advance(Duration::from_secs(600)); // 10:00
    assert_eq!(sim.session_state(&id), Some(SessionState::Complete));
    let session = api.get(&format!("/sessions/{id}")).await.json();
    assert_eq!(session["Duration"], 3000.0);
    assert!(
        session["Urls"]["CaptionDownloadUrl"].is_null(),
        "captions come an hour later"
    );
    sim.advance(Duration::from_secs(3600)); // 11:00
    let session = api.get(&format!("/sessions/{id}")).await.json();
    assert!(session["Urls"]["CaptionDownloadUrl"].is_string());
    assert_eq!(session["FolderDetails"]["Name"], "BIO 101 Fall 2025");
}

#[tokio::test]
async fn faulted_recorders_record_nothing_and_late_or_early_recordings_are_shorter() {
    let sim = start(frozen()).await;
    let site = site(&sim);
    let other = sim.add_recorder("SCI-102");
    let api = Api::new(&sim).await;
    let id = |a: &Answer| a.json()["Id"].as_str().unwrap().to_string();
    let missed = id(&api.book(&site.folder, &site.recorder, "L1", 60, 110).await);
    let late = id(&api.book(&site.folder, &other, "L2", 60, 110).await);
    let cut = id(&api.book(&site.folder, &other, "L3", 120, 170).await);
    sim.fault_recorder(&site.recorder).unwrap();
    sim.start_late(&late, Duration::from_secs(10 * 60)).unwrap();
    sim.stop_early(&cut, Duration::from_secs(20 * 60)).unwrap();
    assert_eq!(
        sim.recorder_state(&site.recorder),
        Some(RecorderState::Faulted)
    );

    sim.advance(Duration::from_secs(4 * 3600)); // 12:00
    assert_eq!(
        sim.session_state(&missed),
        Some(SessionState::Scheduled),
        "never recorded"
    );
    let answer = api.session_states(&[&missed, &late, &cut]).await;
    let by_id: std::collections::HashMap<_, _> = soap_states(&answer.text)
        .into_iter()
        .map(|(i, s, d)| (i, (s, d)))
        .collect();
    assert_eq!(by_id[&missed], ("Scheduled".into(), None));
    assert_eq!(by_id[&late], ("Complete".into(), Some("2400".into())));
    assert_eq!(by_id[&cut], ("Complete".into(), Some("1800".into())));
    // The late one's start is when it really started.
    let late_session = api.get(&format!("/sessions/{late}")).await.json();
    assert_eq!(late_session["StartTime"], "2025-09-01T09:10:00Z");

    // A recorder that fails mid-recording stops the recording there.
    let now = sim.now();
    sim.restore_recorder(&site.recorder).unwrap();
    let t = |m: i64| (now + TimeDelta::minutes(m)).to_rfc3339();
    let body = json!({
        "Name": "L4", "StartTime": t(10), "EndTime": t(60), "FolderId": site.folder,
        "Recorders": [{"RemoteRecorderId": site.recorder, "SuppressPrimary": false, "SuppressSecondary": false}],
        "IsBroadcast": false,
    });
    let interrupted = id(&api
        .send(
            reqwest::Method::POST,
            "/scheduledRecordings?resolveConflicts=false",
            body,
        )
        .await);
    sim.advance(Duration::from_secs(25 * 60));
    sim.disconnect_recorder(&site.recorder).unwrap();
    assert_eq!(
        sim.session_state(&interrupted),
        Some(SessionState::Processing)
    );
    assert_eq!(sim.session(&interrupted).unwrap().duration(), Some(900.0));
    assert_eq!(
        sim.recorder_state(&site.recorder),
        Some(RecorderState::Disconnected)
    );

    // Recorder states over SOAP, many in one call.
    let recorders = api
        .soap(
            "RemoteRecorderManagement",
            "IRemoteRecorderManagement/GetRemoteRecordersById",
            envelope(
                "GetRemoteRecordersById",
                "remoteRecorderIds",
                DEFAULT_SOAP_USER,
                DEFAULT_SOAP_PASSWORD,
                &[
                    &site.recorder,
                    &other,
                    "11111111-1111-1111-1111-111111111111",
                ],
            ),
        )
        .await;
    assert_eq!(recorders.status, 200, "{}", recorders.text);
    let root = xml::Element::parse(recorders.text.as_bytes()).unwrap();
    let result = root
        .child("Body")
        .and_then(|b| b.child("GetRemoteRecordersByIdResponse"))
        .and_then(|r| r.child("GetRemoteRecordersByIdResult"))
        .unwrap();
    let states: Vec<_> = result
        .children
        .iter()
        .map(|r| {
            (
                r.child_text("Name").unwrap(),
                r.child_text("State").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![("SCI-101", "Disconnected"), ("SCI-102", "Previewing")]
    );
}

#[tokio::test]
async fn overlapping_bookings_are_refused_naming_the_session_unless_resolved() {
    let sim = start(frozen()).await;
    let site = site(&sim);
    let api = Api::new(&sim).await;
    let first = api
        .book(&site.folder, &site.recorder, "BIO 101 Lecture 1", 60, 110)
        .await;
    let first_id = first.json()["Id"].as_str().unwrap().to_string();
    let clash = api
        .book(&site.folder, &site.recorder, "CHEM 200 Lecture 1", 100, 150)
        .await;
    assert_eq!(clash.status, 400);
    let error = &clash.json()["Error"];
    assert_eq!(error["ErrorCode"], "RecordingConflict");
    let message = error["Message"].as_str().unwrap();
    assert!(
        message.contains("BIO 101 Lecture 1") && message.contains(&first_id),
        "{message}"
    );
    // Back to back is fine; another recorder is fine.
    assert_eq!(
        api.book(&site.folder, &site.recorder, "next", 110, 160)
            .await
            .status,
        200
    );
    let other = sim.add_recorder("SCI-102");
    assert_eq!(
        api.book(&site.folder, &other, "elsewhere", 100, 150)
            .await
            .status,
        200
    );
    // Moving a booking onto another is refused too.
    let moved = api
        .send(
            reqwest::Method::PUT,
            &format!("/scheduledRecordings/{first_id}"),
            json!({"StartTime": "2025-09-01T09:00:00Z", "EndTime": "2025-09-01T10:10:00Z"}),
        )
        .await;
    assert_eq!(moved.status, 400);
    assert_eq!(moved.json()["Error"]["ErrorCode"], "RecordingConflict");
    // resolveConflicts=true cancels the booking in the way.
    let t = |m: i64| (start_time() + TimeDelta::minutes(m)).to_rfc3339();
    let forced = api
        .send(
            reqwest::Method::POST,
            "/scheduledRecordings?resolveConflicts=true",
            json!({
                "Name": "override", "StartTime": t(100), "EndTime": t(150), "FolderId": site.folder,
                "Recorders": [{"RemoteRecorderId": site.recorder, "SuppressPrimary": false, "SuppressSecondary": false}],
                "IsBroadcast": false,
            }),
        )
        .await;
    assert_eq!(forced.status, 200, "{}", forced.text);
    assert_eq!(
        api.get(&format!("/scheduledRecordings/{first_id}"))
            .await
            .status,
        404
    );
    // Required query parameter, bad times.
    let no_flag = api
        .send(reqwest::Method::POST, "/scheduledRecordings", json!({}))
        .await;
    assert_eq!(no_flag.status, 400);
    assert_eq!(
        api.book(&site.folder, &site.recorder, "backwards", 300, 200)
            .await
            .status,
        400
    );
    // Cancelling: a booking, then again (404), and not once it records.
    let cancel = api
        .book(&site.folder, &site.recorder, "cancel me", 400, 450)
        .await;
    let cancel_id = cancel.json()["Id"].as_str().unwrap().to_string();
    let path = format!("/scheduledRecordings/{cancel_id}");
    assert_eq!(
        api.send(reqwest::Method::DELETE, &path, json!({}))
            .await
            .status,
        200
    );
    assert_eq!(
        api.send(reqwest::Method::DELETE, &path, json!({}))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn folder_sessions_page_by_fifty_and_duplicates_show_twice() {
    let sim = start(frozen()).await;
    let site = site(&sim);
    let mut ids = Vec::new();
    for n in 0..120 {
        let start = start_time() - TimeDelta::days(1) + TimeDelta::minutes(n);
        ids.push(
            sim.add_recorded_session(
                &site.folder,
                &format!("Lecture {n:03}"),
                start,
                Duration::from_secs(60),
            )
            .unwrap(),
        );
    }
    let api = Api::new(&sim).await;
    let page = |n: usize| {
        let api = &api;
        let folder = site.folder.clone();
        async move {
            api.get(&format!("/folders/{folder}/sessions?pageNumber={n}"))
                .await
                .json()["Results"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    assert_eq!(page(0).await.len(), 50);
    assert_eq!(page(1).await.len(), 50);
    let last = page(2).await;
    assert_eq!(last.len(), 20);
    assert_eq!(last[19]["Name"], "Lecture 119");
    assert!(page(3).await.is_empty());
    sim.duplicate_in_listings(&ids[10]).unwrap();
    let first = page(0).await;
    assert_eq!(first[10]["Id"], first[11]["Id"]);
    assert_eq!(page(2).await.len(), 21);
    // Search pages the same way.
    let search = api
        .get("/sessions/search?searchQuery=lecture%2000")
        .await
        .json();
    assert_eq!(search["Results"].as_array().unwrap().len(), 10);
    let bad = api
        .get(&format!("/folders/{}/sessions?pageNumber=x", site.folder))
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["Error"]["Message"].is_string());
    let unknown = api.get("/folders/not-a-guid").await;
    assert_eq!(unknown.status, 400);
    let gone = api
        .get("/sessions/11111111-1111-1111-1111-111111111111")
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["Error"]["Success"], false);
}

#[tokio::test]
async fn throttles_with_retry_after_on_budget_or_on_demand() {
    let sim = start(PanoptoSimConfig {
        budget: Some(RequestBudget {
            requests: 3,
            window: Duration::from_secs(60),
        }),
        ..frozen()
    })
    .await;
    let api = Api::new(&sim).await;
    for _ in 0..3 {
        assert_eq!(
            api.get("/remoteRecorders/search?searchQuery=").await.status,
            200
        );
    }
    let throttled = api.get("/remoteRecorders/search?searchQuery=").await;
    assert_eq!(throttled.status, 429);
    let wait: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&wait), "{wait}");
    // The budget is per client: the token endpoint and other clients are not affected.
    sim.set_budget(None);
    sim.force_throttle(2, Duration::from_secs(7));
    let forced = api.get("/remoteRecorders/search?searchQuery=").await;
    assert_eq!(
        (forced.status, forced.header("retry-after")),
        (429, Some("7"))
    );
    let soap = api.session_states(&[]).await;
    assert_eq!(soap.status, 429, "SOAP is throttled too");
    assert_eq!(sim.forced_throttles_pending(), 0);
    assert_eq!(
        api.get("/remoteRecorders/search?searchQuery=").await.status,
        200
    );
    assert_eq!(sim.stats().throttled, 3);
}

#[tokio::test]
async fn soap_answers_faults_for_bad_credentials_actions_and_messages() {
    let sim = start(frozen()).await;
    let api = Api::new(&sim).await;
    let bad_auth = api
        .soap(
            "SessionManagement",
            "ISessionManagement/GetSessionsById",
            envelope(
                "GetSessionsById",
                "sessionIds",
                DEFAULT_SOAP_USER,
                "wrong",
                &[],
            ),
        )
        .await;
    assert_eq!(bad_auth.status, 500);
    let fault = |text: &str| {
        let root = xml::Element::parse(text.as_bytes()).unwrap();
        let f = root
            .child("Body")
            .and_then(|b| b.child("Fault"))
            .cloned()
            .unwrap();
        (
            f.child_text("faultcode").unwrap().to_string(),
            f.child_text("faultstring").unwrap().to_string(),
        )
    };
    let (code, message) = fault(&bad_auth.text);
    assert_eq!(code, "s:Client");
    assert!(message.contains("Authentication failed"), "{message}");
    let unknown = api
        .soap(
            "SessionManagement",
            "ISessionManagement/DeleteSessions",
            envelope(
                "DeleteSessions",
                "sessionIds",
                DEFAULT_SOAP_USER,
                DEFAULT_SOAP_PASSWORD,
                &[],
            ),
        )
        .await;
    assert_eq!(fault(&unknown.text).0, "a:ActionNotSupported");
    let garbage = api
        .soap(
            "SessionManagement",
            "ISessionManagement/GetSessionsById",
            "<oops".into(),
        )
        .await;
    assert_eq!(fault(&garbage.text).0, "s:Client");
    let bad_id = api.session_states(&["nope"]).await;
    assert!(fault(&bad_id.text).1.contains("not a valid Guid"));
    let json = answer(
        api.http
            .post(format!(
                "{}/Panopto/PublicAPI/4.6/SessionManagement.svc",
                api.base
            ))
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    assert_eq!(json.status, 415);
    assert_eq!(sim.stats().soap_faults, 4);
    let ok = api
        .session_states(&["11111111-1111-1111-1111-111111111111"])
        .await;
    assert_eq!(ok.status, 200);
    assert!(soap_states(&ok.text).is_empty(), "unknown ids are left out");
}

#[tokio::test]
async fn captions_uploads_hand_edits_permissions_and_settings() {
    let sim = start(frozen()).await;
    let site = site(&sim);
    let moved_to = sim
        .add_folder("BIO 101 Archive", Some(&site.folder))
        .unwrap();
    let id = sim
        .add_recorded_session(
            &site.folder,
            "Lecture 1",
            start_time() - TimeDelta::minutes(30),
            Duration::from_secs(600),
        )
        .unwrap();
    sim.captions_never(&id).unwrap();
    let api = Api::new(&sim).await;
    sim.advance(Duration::from_secs(24 * 3600));
    let session = api.get(&format!("/sessions/{id}")).await.json();
    assert!(
        session["Urls"]["CaptionDownloadUrl"].is_null(),
        "captions never came"
    );

    let boundary = "xYz";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nEnglish_USA\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.srt\"\r\n\r\n1\r\n00:00:00,000 --> 00:00:01,000\r\nHi\r\n\r\n--{boundary}--\r\n"
    );
    let uploaded = answer(
        api.http
            .post(api.url(&format!("/sessions/{id}/captions")))
            .bearer_auth(&api.token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body),
    )
    .await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.text);
    let session = api.get(&format!("/sessions/{id}")).await.json();
    assert!(session["Urls"]["CaptionDownloadUrl"].is_string());

    sim.rename_session(&id, "Lecture 1 (edited)").unwrap();
    sim.move_session(&id, &moved_to).unwrap();
    let session = api.get(&format!("/sessions/{id}")).await.json();
    assert_eq!(session["Name"], "Lecture 1 (edited)");
    assert_eq!(session["Folder"], moved_to.as_str());
    let renamed = api
        .send(
            reqwest::Method::PUT,
            &format!("/sessions/{id}"),
            json!({"Name": "BIO 101 Lecture 1", "Folder": site.folder}),
        )
        .await
        .json();
    assert_eq!(
        (renamed["Name"].as_str(), renamed["Folder"].as_str()),
        (Some("BIO 101 Lecture 1"), Some(site.folder.as_str()))
    );

    let user = "22222222-2222-2222-2222-222222222222";
    let path = format!("/sessions/{id}/permissions");
    let grant = json!({"RoleType": "Viewer", "PrincipalId": user, "PrincipalType": "User"});
    assert_eq!(
        api.send(reqwest::Method::POST, &path, grant.clone())
            .await
            .status,
        200
    );
    assert_eq!(
        api.send(reqwest::Method::POST, &path, grant).await.status,
        200
    );
    let listed = api.get(&path).await.json();
    assert_eq!(
        listed["Results"].as_array().unwrap().len(),
        1,
        "granting twice grants once"
    );
    assert_eq!(listed["Results"][0]["Role"]["Name"], "Viewer");
    let revoke = format!("{path}?PrincipalId={user}&PrincipalType=User&RoleType=Viewer");
    assert_eq!(
        api.send(reqwest::Method::DELETE, &revoke, json!({}))
            .await
            .status,
        200
    );
    assert_eq!(
        api.send(reqwest::Method::DELETE, &revoke, json!({}))
            .await
            .status,
        404
    );

    let settings = api
        .get(&format!("/folders/{moved_to}/settings"))
        .await
        .json();
    assert_eq!(
        settings["AutomaticCaptionProviderId"],
        "00000000-0000-0000-0000-000000000000"
    );
    let providers = api.get("/captionproviders").await.json();
    let verbit = providers["Results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["Name"] == "Verbit")
        .unwrap()["Id"]
        .clone();
    let set = api
        .send(
            reqwest::Method::PUT,
            &format!("/folders/{moved_to}/settings"),
            json!({"AutomaticCaptionProviderId": verbit}),
        )
        .await
        .json();
    assert_eq!(set["AutomaticCaptionProviderName"], "Verbit");
    let children = api
        .get(&format!("/folders/{}/children", site.folder))
        .await
        .json();
    assert_eq!(children["Results"][0]["Id"], moved_to.as_str());
    let created = api
        .send(
            reqwest::Method::POST,
            "/folders",
            json!({"Name": "CHEM 200", "Parent": null}),
        )
        .await;
    assert_eq!(created.status, 200);
    assert!(created.json()["ParentFolder"].is_null());
    let found = api.get("/folders/search?searchQuery=chem").await.json();
    assert_eq!(found["Results"][0]["Name"], "CHEM 200");
}

#[tokio::test]
async fn counts_requests_per_endpoint_and_complete_now_skips_the_wait() {
    let sim = start(frozen()).await;
    let site = site(&sim);
    let api = Api::new(&sim).await;
    let booked = api.book(&site.folder, &site.recorder, "L1", 60, 110).await;
    let id = booked.json()["Id"].as_str().unwrap().to_string();
    sim.reset_stats();
    api.session_states(&[&id]).await;
    api.get(&format!("/sessions/{id}")).await;
    api.get(&format!("/sessions/{id}")).await;
    let stats = sim.stats();
    assert_eq!(stats.count(SOAP_GET_SESSIONS_BY_ID), 1);
    assert_eq!(stats.count("GET /api/v1/sessions/{id}"), 2);
    assert_eq!(stats.api_requests(), 3);
    sim.complete_now(&id).unwrap();
    assert_eq!(sim.session_state(&id), Some(SessionState::Complete));
    assert_eq!(
        sim.session(&id).unwrap().duration(),
        Some(3000.0),
        "its whole slot"
    );
    // Latency applies to API requests.
    sim.set_latency(Duration::from_millis(50));
    let started = Instant::now();
    api.get(&format!("/sessions/{id}")).await;
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[test]
fn broadcasts_broadcast_and_a_healed_recorder_does_not_record_the_past() {
    let now = start_time();
    let timings = World::timings(Duration::from_secs(600), Duration::from_secs(3600));
    let mut world = World::new(Vec::new(), timings);
    let folder = world.add_folder("F", None, None, now).unwrap();
    let recorder = world.add_recorder("R");
    let schedule = |from: i64, to: i64, is_broadcast: bool| Schedule {
        recorder_id: recorder.clone(),
        start: now + TimeDelta::minutes(from),
        end: now + TimeDelta::minutes(to),
        suppress_primary: false,
        suppress_secondary: false,
        is_broadcast,
    };
    let booking = |name: &str, schedule: Schedule| world::Booking {
        name: name.into(),
        description: None,
        folder_id: folder.clone(),
        schedule,
    };
    let live = world
        .book(booking("live", schedule(10, 20, true)), false, now)
        .unwrap();
    let missed = world
        .book(booking("missed", schedule(30, 40, false)), false, now)
        .unwrap();
    world.settle(now + TimeDelta::minutes(15));
    assert_eq!(world.sessions[&live].state, SessionState::Broadcasting);
    assert_eq!(
        world.recorder_state(&recorder),
        Some(RecorderState::Recording)
    );
    world
        .set_recorder_fault(
            &recorder,
            Some(RecorderFault::Faulted),
            now + TimeDelta::minutes(25),
        )
        .unwrap();
    world.settle(now + TimeDelta::minutes(35));
    world
        .set_recorder_fault(&recorder, None, now + TimeDelta::minutes(36))
        .unwrap();
    world.settle(now + TimeDelta::minutes(60));
    assert_eq!(world.sessions[&live].state, SessionState::Complete);
    assert_eq!(world.sessions[&missed].state, SessionState::Scheduled);
    assert!(world.sessions[&missed].missed);
    assert_eq!(world.sessions[&missed].duration(), None);
}

fn folders_envelope(user: &str, password: &str, ids: &[&str], providers: &[&str]) -> String {
    let strings = |items: &[&str]| -> String {
        items
            .iter()
            .map(|i| format!("<arr:string>{i}</arr:string>"))
            .collect()
    };
    format!(
        r#"<x:Envelope xmlns:x="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tem="http://tempuri.org/" xmlns:pan="http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V40" xmlns:arr="http://schemas.microsoft.com/2003/10/Serialization/Arrays"><x:Body><tem:GetAllFoldersByExternalId><tem:auth><pan:Password>{password}</pan:Password><pan:UserKey>{user}</pan:UserKey></tem:auth><tem:folderExternalIds>{}</tem:folderExternalIds><tem:providerNames>{}</tem:providerNames></tem:GetAllFoldersByExternalId></x:Body></x:Envelope>"#,
        strings(ids),
        strings(providers)
    )
}

fn update_envelope(password: &str, folder: &str, external_id: &str, provider: &str) -> String {
    format!(
        r#"<x:Envelope xmlns:x="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tem="http://tempuri.org/" xmlns:pan="http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V40"><x:Body><tem:UpdateFolderExternalIdWithProvider><tem:auth><pan:Password>{password}</pan:Password><pan:UserKey>{DEFAULT_SOAP_USER}</pan:UserKey></tem:auth><tem:folderId>{folder}</tem:folderId><tem:externalId>{external_id}</tem:externalId><tem:SiteMembershipProviderName>{provider}</tem:SiteMembershipProviderName></tem:UpdateFolderExternalIdWithProvider></x:Body></x:Envelope>"#
    )
}

impl Api {
    async fn folders_by_external_id(&self, ids: &[&str], providers: &[&str]) -> Answer {
        self.soap(
            "SessionManagement",
            "ISessionManagement/GetAllFoldersByExternalId",
            folders_envelope(DEFAULT_SOAP_USER, DEFAULT_SOAP_PASSWORD, ids, providers),
        )
        .await
    }

    async fn set_external_id(&self, folder: &str, external_id: &str, provider: &str) -> Answer {
        self.soap(
            "SessionManagement",
            "ISessionManagement/UpdateFolderExternalIdWithProvider",
            update_envelope(DEFAULT_SOAP_PASSWORD, folder, external_id, provider),
        )
        .await
    }
}

/// `(Id, Name, ParentFolder, ExternalId)` of every folder in a GetAllFoldersByExternalId
/// answer, checking the envelope around them.
fn soap_folders(answer: &Answer) -> Vec<(String, String, Option<String>, String)> {
    assert_eq!(answer.status, 200, "{}", answer.text);
    let root = xml::Element::parse(answer.text.as_bytes()).expect("xml");
    let result = root
        .child("Body")
        .and_then(|b| b.child("GetAllFoldersByExternalIdResponse"))
        .filter(|r| r.is(soap::TEMPURI, "GetAllFoldersByExternalIdResponse"))
        .and_then(|r| r.child("GetAllFoldersByExternalIdResult"))
        .expect("result");
    result
        .children
        .iter()
        .map(|f| {
            assert!(f.is(
                "http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V46.Soap",
                "Folder"
            ));
            (
                f.child_text("Id").unwrap_or_default().to_string(),
                f.child_text("Name").unwrap_or_default().to_string(),
                f.child_text("ParentFolder").map(str::to_string),
                f.child_text("ExternalId").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn soap_fault(answer: &Answer) -> (String, String) {
    assert_eq!(answer.status, 500, "{}", answer.text);
    let root = xml::Element::parse(answer.text.as_bytes()).expect("xml");
    let f = root
        .child("Body")
        .and_then(|b| b.child("Fault"))
        .expect("fault");
    (
        f.child_text("faultcode").unwrap_or_default().to_string(),
        f.child_text("faultstring").unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn folder_external_ids_are_kept_per_provider_and_rest_does_not_change() {
    let sim = start(frozen()).await;
    let api = Api::new(&sim).await;
    let term = sim.add_folder("Fall 2025", None).unwrap();
    let bio = sim.add_folder("BIO 101", Some(&term)).unwrap();
    let chem = sim.add_folder("CHEM 110", Some(&term)).unwrap();
    let rest_folder = api.get(&format!("/folders/{bio}")).await.json();
    let rest_search = api.get("/folders/search?searchQuery=bio").await.json();

    let done = api.set_external_id(&bio, "section-1", "coursewire").await;
    assert_eq!(done.status, 200, "{}", done.text);
    let root = xml::Element::parse(done.text.as_bytes()).unwrap();
    let response = root
        .child("Body")
        .and_then(|b| b.child("UpdateFolderExternalIdWithProviderResponse"))
        .expect("response");
    assert!(response.is(soap::TEMPURI, "UpdateFolderExternalIdWithProviderResponse"));
    assert!(response.children.is_empty());
    // Setting the id it already has is harmless.
    assert_eq!(
        api.set_external_id(&bio, "section-1", "coursewire")
            .await
            .status,
        200
    );
    assert_eq!(
        soap_folders(
            &api.folders_by_external_id(&["section-1"], &["coursewire"])
                .await
        ),
        vec![(
            bio.clone(),
            "BIO 101".to_string(),
            Some(term.clone()),
            "section-1".to_string()
        )]
    );

    // Under one provider an id names one folder; another provider's ids are apart.
    let (code, message) = soap_fault(&api.set_external_id(&chem, "section-1", "coursewire").await);
    assert_eq!(code, "s:Client");
    assert!(message.contains("already on folder"), "{message}");
    assert_eq!(
        api.set_external_id(&chem, "section-1", "canvas")
            .await
            .status,
        200
    );
    let ids = |answer: &Answer| -> Vec<String> {
        soap_folders(answer).into_iter().map(|f| f.0).collect()
    };
    assert_eq!(
        ids(&api
            .folders_by_external_id(&["section-1"], &["coursewire"])
            .await),
        vec![bio.clone()]
    );
    assert_eq!(
        ids(&api
            .folders_by_external_id(&["section-1"], &["canvas"])
            .await),
        vec![chem.clone()]
    );
    let mut both = ids(&api.folders_by_external_id(&["section-1"], &[]).await);
    both.sort();
    let mut expected = vec![bio.clone(), chem.clone()];
    expected.sort();
    assert_eq!(both, expected, "no provider: every provider");
    assert!(soap_folders(&api.folders_by_external_id(&["nope"], &["coursewire"]).await).is_empty());

    // A new id replaces the folder's old one under that provider.
    sim.rename_folder(&bio, "BIO 101 (Smith)").unwrap();
    assert_eq!(
        api.set_external_id(&bio, "section-2", "coursewire")
            .await
            .status,
        200
    );
    assert!(
        soap_folders(
            &api.folders_by_external_id(&["section-1"], &["coursewire"])
                .await
        )
        .is_empty()
    );
    let found = soap_folders(
        &api.folders_by_external_id(&["section-2", "section-1"], &["coursewire", "canvas"])
            .await,
    );
    assert_eq!(
        found
            .iter()
            .map(|f| (f.0.as_str(), f.1.as_str(), f.3.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (bio.as_str(), "BIO 101 (Smith)", "section-2"),
            (chem.as_str(), "CHEM 110", "section-1")
        ]
    );
    assert_eq!(
        sim.folder_external_ids(&bio).unwrap(),
        std::collections::BTreeMap::from([("coursewire".to_string(), "section-2".to_string())])
    );

    // Unknown folders, bad ids, missing parameters and bad credentials are faults.
    let unknown = "11111111-1111-1111-1111-111111111111";
    let (_, message) = soap_fault(
        &api.set_external_id(unknown, "section-3", "coursewire")
            .await,
    );
    assert!(message.contains("was not found"), "{message}");
    let (_, message) = soap_fault(&api.set_external_id("nope", "section-3", "coursewire").await);
    assert!(message.contains("not a valid Guid"), "{message}");
    let (_, message) = soap_fault(&api.set_external_id(&bio, "section-3", "").await);
    assert!(message.contains("SiteMembershipProviderName"), "{message}");
    let wrong = api
        .soap(
            "SessionManagement",
            "ISessionManagement/UpdateFolderExternalIdWithProvider",
            update_envelope("wrong", &bio, "section-3", "coursewire"),
        )
        .await;
    assert!(soap_fault(&wrong).1.contains("Authentication failed"));
    let wrong = api
        .soap(
            "SessionManagement",
            "ISessionManagement/GetAllFoldersByExternalId",
            folders_envelope(DEFAULT_SOAP_USER, "wrong", &["section-2"], &[]),
        )
        .await;
    assert!(soap_fault(&wrong).1.contains("Authentication failed"));
    let elsewhere = api
        .soap(
            "RemoteRecorderManagement",
            "ISessionManagement/GetAllFoldersByExternalId",
            folders_envelope(
                DEFAULT_SOAP_USER,
                DEFAULT_SOAP_PASSWORD,
                &["section-2"],
                &[],
            ),
        )
        .await;
    assert_eq!(soap_fault(&elsewhere).0, "a:ActionNotSupported");
    assert_eq!(
        sim.folder_external_ids(&bio)
            .unwrap()
            .get("coursewire")
            .map(String::as_str),
        Some("section-2"),
        "refused updates changed nothing"
    );

    // Throttled as every SOAP call; counted by action.
    sim.force_throttle(1, Duration::from_secs(3));
    let throttled = api.folders_by_external_id(&["section-2"], &[]).await;
    assert_eq!(
        (throttled.status, throttled.header("retry-after")),
        (429, Some("3"))
    );
    let stats = sim.stats();
    assert_eq!(stats.count(SOAP_GET_ALL_FOLDERS_BY_EXTERNAL_ID), 10);
    assert_eq!(stats.count(SOAP_UPDATE_FOLDER_EXTERNAL_ID), 9);

    // REST neither shows nor changes on external ids (the rename aside).
    let mut after = api.get(&format!("/folders/{bio}")).await.json();
    assert_eq!(after["Name"], "BIO 101 (Smith)");
    after["Name"] = rest_folder["Name"].clone();
    assert_eq!(after, rest_folder);
    sim.rename_folder(&bio, "BIO 101").unwrap();
    assert_eq!(
        api.get("/folders/search?searchQuery=bio").await.json(),
        rest_search
    );
}

#[test]
fn world_external_ids_are_one_per_provider_and_name_one_folder() {
    let mut world = World::new(
        Vec::new(),
        World::timings(Duration::from_secs(60), Duration::from_secs(60)),
    );
    let a = world.add_folder("A", None, None, start_time()).unwrap();
    let b = world.add_folder("B", None, None, start_time()).unwrap();
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    world.set_folder_external_id(&a, "p", "x").unwrap();
    world.set_folder_external_id(&a, "p", "x").unwrap();
    world.set_folder_external_id(&a, "q", "y").unwrap();
    assert!(matches!(
        world.set_folder_external_id(&b, "p", "x"),
        Err(PanoptoSimError::Invalid(m)) if m.contains(&a)
    ));
    assert!(matches!(
        world.set_folder_external_id("missing", "p", "z"),
        Err(PanoptoSimError::NotFound { kind: "folder", .. })
    ));
    assert!(world.set_folder_external_id(&b, "p", " ").is_err());
    world.set_folder_external_id(&b, "q", "x").unwrap();
    let found = |world: &World, external: &[&str], providers: &[&str]| -> Vec<(String, String)> {
        world
            .folders_by_external_id(&ids(external), &ids(providers))
            .into_iter()
            .map(|(f, id)| (f.id.clone(), id.to_string()))
            .collect()
    };
    assert_eq!(found(&world, &["x"], &["p"]), vec![(a.clone(), "x".into())]);
    assert_eq!(found(&world, &["x"], &["q"]), vec![(b.clone(), "x".into())]);
    assert_eq!(found(&world, &["y", "x"], &["q"]).len(), 2);
    // No provider: any provider; a folder matching two asked ids is answered once, for the
    // first it matched.
    let any = found(&world, &["x", "y"], &[]);
    assert_eq!(any.len(), 2);
    assert!(any.contains(&(a.clone(), "x".into())));
    // A new id under a provider replaces the old one there only.
    world.set_folder_external_id(&a, "p", "x2").unwrap();
    assert!(found(&world, &["x"], &["p"]).is_empty());
    assert_eq!(
        world.folders[&a].external_ids,
        [
            ("p".to_string(), "x2".to_string()),
            ("q".to_string(), "y".to_string())
        ]
        .into()
    );
    // The freed id can go to another folder now.
    world.set_folder_external_id(&b, "p", "x").unwrap();
}

#[tokio::test]
async fn users_are_searched_by_key_name_or_email_and_paged_by_fifty() {
    let sim = start(frozen()).await;
    let ids: Vec<String> = (0..120)
        .map(|n| {
            sim.add_user(
                &format!(r"canvas\student{n:03}"),
                &format!("Student {n:03}"),
            )
        })
        .collect();
    let jane = sim.add_user_with_email(r"canvas\jdoe", "Jane Doe", "Jane.Doe@example.edu");
    assert_eq!(sim.user_id(r"CANVAS\JDoe"), Some(jane.clone()));
    assert_eq!(sim.user_id(r"canvas\nobody"), None);
    // Provisioned again: the same user, its new name.
    assert_eq!(sim.add_user(r"Canvas\JDOE", "Jane Q. Doe"), jane);
    assert_eq!(sim.world_snapshot().users[&jane].name, "Jane Q. Doe");
    assert_eq!(
        sim.world_snapshot().users[&jane].email.as_deref(),
        Some("Jane.Doe@example.edu")
    );

    let api = Api::new(&sim).await;
    sim.reset_stats();
    let search = |query: &str, page: usize| {
        let api = &api;
        let path = format!("/users/search?searchQuery={query}&pageNumber={page}");
        async move { api.get(&path).await }
    };
    let page = |answer: Answer| answer.json()["Results"].as_array().unwrap().clone();
    let first = page(search("canvas%5Cstudent", 0).await);
    assert_eq!(first.len(), 50);
    assert_eq!(
        first[0],
        json!({ "Id": ids[0], "Username": r"canvas\student000" })
    );
    assert_eq!(page(search("canvas%5Cstudent", 1).await).len(), 50);
    let last = page(search("canvas%5Cstudent", 2).await);
    assert_eq!(last.len(), 20);
    assert_eq!(last[19]["Id"], ids[119].as_str());
    assert!(page(search("canvas%5Cstudent", 3).await).is_empty());
    // Key, name and email, case-insensitively; "" is everyone.
    let one = |answer: Answer| {
        let results = page(answer);
        assert_eq!(results.len(), 1, "{results:?}");
        results[0]["Id"].as_str().unwrap().to_string()
    };
    assert_eq!(one(search("STUDENT%20007", 0).await), ids[7]);
    assert_eq!(one(search("jane.doe%40EXAMPLE", 0).await), jane);
    assert_eq!(one(search("q.%20doe", 0).await), jane);
    assert_eq!(one(search("canvas%5Cjdoe", 0).await), jane);
    assert_eq!(page(search("", 2).await).len(), 21);
    assert!(page(search("nobody", 0).await).is_empty());
    let missing = api.get("/users/search").await;
    assert_eq!(missing.status, 400);
    assert!(missing.json()["Error"]["Message"].is_string());
    assert_eq!(search("x", 0).await.status, 200);
    assert_eq!(
        api.get("/users/search?searchQuery=x&pageNumber=x")
            .await
            .status,
        400
    );

    // A site that ignores pageNumber there answers everything on every page.
    sim.users_search_ignores_paging(true);
    assert_eq!(page(search("student", 1).await).len(), 120);
    sim.users_search_ignores_paging(false);

    // Auth, throttling and counting as every REST route.
    let anonymous = answer(api.http.get(api.url("/users/search?searchQuery=x"))).await;
    assert_eq!(anonymous.status, 401);
    sim.force_throttle(1, Duration::from_secs(3));
    let throttled = search("x", 0).await;
    assert_eq!(
        (throttled.status, throttled.header("retry-after")),
        (429, Some("3"))
    );
    assert_eq!(sim.stats().count(REST_SEARCH_USERS), 16);
}

#[test]
fn world_users_are_one_per_key_and_searched_in_key_order() {
    let mut world = World::new(
        Vec::new(),
        World::timings(Duration::from_secs(60), Duration::from_secs(60)),
    );
    let b = world.add_user(r"lms\b", "Bea", None);
    let a = world.add_user(r"lms\a", "Al", Some("al@example.edu"));
    assert_eq!(world.add_user(r"LMS\A", "Alan", None), a);
    assert_eq!(world.users.len(), 2);
    assert_eq!(world.users[&a].name, "Alan");
    assert_eq!(world.users[&a].email.as_deref(), Some("al@example.edu"));
    let found = |q: &str| -> Vec<String> {
        world
            .search_users(q)
            .into_iter()
            .map(|u| u.id.clone())
            .collect()
    };
    assert_eq!(found(""), vec![a.clone(), b.clone()]);
    assert_eq!(found("LMS\\"), vec![a.clone(), b.clone()]);
    assert_eq!(found("BEA"), vec![b.clone()]);
    assert_eq!(found("@EXAMPLE"), vec![a.clone()]);
    assert!(found("carol").is_empty());
    assert_eq!(
        world.user_by_key(r"lms\B").map(|u| u.id.as_str()),
        Some(b.as_str())
    );
    assert!(world.user_by_key("lms").is_none());
}
