use super::*;
use crate::handoff::EventQueue;
use crate::inbox::{STATUS_APPLIED, STATUS_RECEIVED};
use chrono::TimeZone;
use coursewire_runtime::telemetry::CollectingSink;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Returns every record it holds whatever the query (the replayer must filter), and fails
/// for windows starting at `fail_at`.
#[derive(Default)]
struct MemoryWindow {
    records: Vec<InboxRecord>,
    unreadable: Vec<UnreadableRecord>,
    fail_at: Option<DateTime<Utc>>,
    queries: Mutex<Vec<WindowQuery>>,
}

#[async_trait]
impl InboxWindow for MemoryWindow {
    async fn select(&self, query: &WindowQuery) -> Result<Selection, ServiceError> {
        let first = {
            let mut queries = self.queries.lock().unwrap();
            queries.push(query.clone());
            queries.len() == 1
        };
        if self.fail_at == Some(query.from) {
            return Err(ServiceError::Transient(
                "ThrottlingException: slow down".into(),
            ));
        }
        Ok(Selection {
            records: self.records.clone(),
            unreadable: if first {
                self.unreadable.clone()
            } else {
                Vec::new()
            },
        })
    }
}

/// Records what it is sent; fails the hashes in `fail`.
#[derive(Default)]
struct MemoryQueue {
    sent: Mutex<Vec<QueuedEvent>>,
    calls: Mutex<Vec<usize>>,
    fail: HashSet<String>,
}

#[async_trait]
impl EventQueue for MemoryQueue {
    async fn enqueue(&self, messages: &[QueuedEvent]) -> Vec<Result<(), ServiceError>> {
        self.calls.lock().unwrap().push(messages.len());
        messages
            .iter()
            .map(|m| {
                if self.fail.contains(&m.event_hash) {
                    Err(ServiceError::Transient("InternalFailure: try again".into()))
                } else {
                    self.sent.lock().unwrap().push(m.clone());
                    Ok(())
                }
            })
            .collect()
    }
}

impl MemoryQueue {
    fn sent(&self) -> Vec<QueuedEvent> {
        self.sent.lock().unwrap().clone()
    }
}

fn at(hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 4, hour, minute, second)
        .single()
        .unwrap()
}

fn hash(n: u32) -> String {
    format!("{n:064x}")
}

fn rec(n: u32, time: DateTime<Utc>, entity: &str, name: &str, status: &str) -> InboxRecord {
    InboxRecord {
        event_hash: hash(n),
        event_name: name.into(),
        event_time: format_sortable(&time),
        entity_key: entity.into(),
        format: "canvas".into(),
        source: Delivery::named("sqs"),
        received_at: format_sortable(&(time + chrono::TimeDelta::seconds(2))),
        payload: json!({"metadata": {"event_name": name}, "body": {"n": n}}),
        status: status.into(),
    }
}

fn replayer(
    window: MemoryWindow,
    queue: Arc<MemoryQueue>,
    lanes: usize,
) -> (Replayer, Arc<CollectingSink>) {
    let settings = ReplaySettings {
        send_lanes: lanes,
        ..ReplaySettings::default()
    };
    replayer_with(window, queue, settings)
}

fn replayer_with(
    window: MemoryWindow,
    queue: Arc<MemoryQueue>,
    settings: ReplaySettings,
) -> (Replayer, Arc<CollectingSink>) {
    let sink = Arc::new(CollectingSink::new());
    (
        Replayer::new(Arc::new(window), queue, settings, sink.clone(), "replay"),
        sink,
    )
}

fn request(from: DateTime<Utc>, to: DateTime<Utc>) -> ReplayRequest {
    ReplayRequest {
        to: Some(to.to_rfc3339()),
        request_id: Some("test-run_1".into()),
        ..ReplayRequest::new(from.to_rfc3339())
    }
}

/// Three entities over three hours, shuffled; one event just outside each end.
fn scattered() -> Vec<InboxRecord> {
    vec![
        rec(
            9,
            at(11, 5, 0),
            "course:1",
            "course_updated",
            STATUS_RECEIVED,
        ),
        rec(
            3,
            at(10, 20, 0),
            "submission:7",
            "grade_change",
            STATUS_RECEIVED,
        ),
        rec(
            1,
            at(9, 59, 59),
            "course:1",
            "course_updated",
            STATUS_RECEIVED,
        ),
        rec(
            5,
            at(12, 30, 0),
            "course:1",
            "course_updated",
            STATUS_RECEIVED,
        ),
        rec(
            2,
            at(10, 15, 0),
            "course:1",
            "course_created",
            STATUS_RECEIVED,
        ),
        rec(
            8,
            at(10, 50, 0),
            "enrollment:4",
            "enrollment_created",
            STATUS_RECEIVED,
        ),
        rec(
            4,
            at(10, 15, 0),
            "submission:7",
            "submission_created",
            STATUS_RECEIVED,
        ),
        rec(
            7,
            at(13, 0, 0),
            "course:1",
            "course_updated",
            STATUS_RECEIVED,
        ),
        rec(
            6,
            at(12, 30, 0),
            "submission:7",
            "grade_change",
            STATUS_RECEIVED,
        ),
    ]
}

fn hashes(messages: &[QueuedEvent]) -> Vec<String> {
    messages.iter().map(|m| m.event_hash.clone()).collect()
}

#[tokio::test]
async fn sends_in_event_time_order_within_the_window() {
    let queue = Arc::new(MemoryQueue::default());
    let window = MemoryWindow {
        records: scattered(),
        ..MemoryWindow::default()
    };
    let (replayer, _) = replayer(window, queue.clone(), 1);
    let report = replayer
        .run(request(at(10, 0, 0), at(13, 0, 0)), |_| {})
        .await
        .unwrap();
    // One lane: the global (event time, hash) order; 9:59:59 and 13:00 (exclusive) left out.
    assert_eq!(
        hashes(&queue.sent()),
        [2, 4, 3, 8, 9, 5, 6].map(hash).to_vec()
    );
    assert_eq!(report.hours_total, 3);
    assert_eq!(report.selected, 7);
    assert_eq!((report.to_send, report.enqueued, report.failed), (7, 7, 0));
    assert!(report.is_complete());
}

#[tokio::test]
async fn concurrent_lanes_keep_each_entity_in_order() {
    let mut records = Vec::new();
    for n in 0..200u32 {
        let entity = format!("enrollment:{}", n % 13);
        // Later n, later time; spread over two hours and inserted in reverse.
        let time = at(10, 0, 0) + chrono::TimeDelta::seconds(i64::from(n) * 30);
        records.push(rec(
            1000 - n,
            time,
            &entity,
            "enrollment_updated",
            STATUS_APPLIED,
        ));
    }
    records.reverse();
    let queue = Arc::new(MemoryQueue::default());
    let window = MemoryWindow {
        records,
        ..MemoryWindow::default()
    };
    let (replayer, _) = replayer(window, queue.clone(), 4);
    let report = replayer
        .run(request(at(10, 0, 0), at(12, 0, 0)), |_| {})
        .await
        .unwrap();
    assert_eq!(report.enqueued, 200);
    let sent = queue.sent();
    let mut last: HashMap<String, String> = HashMap::new();
    for m in &sent {
        if let Some(previous) = last.insert(m.entity_key.clone(), m.event_time.clone()) {
            assert!(previous < m.event_time, "{} out of order", m.entity_key);
        }
    }
    assert!(
        queue.calls.lock().unwrap().iter().all(|&n| n <= 10),
        "one SendMessageBatch per enqueue call"
    );
}

#[tokio::test]
async fn filters_by_event_name_and_entity_key() {
    let queue = Arc::new(MemoryQueue::default());
    let window = MemoryWindow {
        records: scattered(),
        ..MemoryWindow::default()
    };
    let (replayer, _) = replayer(window, queue.clone(), 2);
    let mut req = request(at(10, 0, 0), at(13, 0, 0));
    req.event_names = vec!["grade_change".into(), "course_updated".into()];
    req.entity_keys = vec!["submission:7".into()];
    let report = replayer.run(req, |_| {}).await.unwrap();
    assert_eq!(hashes(&queue.sent()), [3, 6].map(hash).to_vec());
    assert_eq!(report.selected, 2);
    assert_eq!(report.by_event_name.len(), 1);
    assert_eq!(report.by_event_name["grade_change"].to_send, 2);
    assert_eq!(report.event_names, ["course_updated", "grade_change"]);
}

#[tokio::test]
async fn heal_skips_published_and_marks_what_it_sends() {
    let records = vec![
        rec(
            1,
            at(10, 1, 0),
            "course:1",
            "course_created",
            STATUS_RECEIVED,
        ),
        rec(
            2,
            at(10, 2, 0),
            "course:1",
            "course_updated",
            STATUS_APPLIED,
        ),
        rec(
            3,
            at(10, 3, 0),
            "course:1",
            "course_updated",
            STATUS_PUBLISHED,
        ),
        rec(4, at(10, 4, 0), "course:1", "course_updated", "enqueued"),
    ];
    let queue = Arc::new(MemoryQueue::default());
    let window = MemoryWindow {
        records: records.clone(),
        ..MemoryWindow::default()
    };
    let (replayer, sink) = replayer(window, queue.clone(), 8);
    let report = replayer
        .run(request(at(10, 0, 0), at(11, 0, 0)), |_| {})
        .await
        .unwrap();
    let sent = queue.sent();
    assert_eq!(hashes(&sent), [1, 2, 4].map(hash).to_vec());
    assert_eq!(report.already_published, 1);
    assert_eq!(report.by_status[STATUS_PUBLISHED], 1);
    assert_eq!(report.by_status["enqueued"], 1, "unknown statuses are sent");
    let replay = Replay {
        mode: ReplayMode::Heal,
        request_id: "test-run_1".into(),
    };
    assert_eq!(sent[0], records[0].to_message(replay.clone()));
    assert_eq!(sent[0].replay, Some(replay));
    assert_eq!(sent[0].payload, records[0].payload);
    assert_eq!(
        sent[0].deduplication_id(),
        format!("{}:test-run_1", hash(1))
    );
    assert_eq!(sink.sum("ReplayEnqueued", &[("Mode", "heal")]), 3.0);
    assert_eq!(sink.sum("ReplayAlreadyPublished", &[]), 1.0);
}

#[tokio::test]
async fn republish_sends_everything_including_published() {
    let records = vec![
        rec(
            1,
            at(10, 1, 0),
            "course:1",
            "course_created",
            STATUS_PUBLISHED,
        ),
        rec(
            2,
            at(10, 2, 0),
            "course:1",
            "course_updated",
            STATUS_RECEIVED,
        ),
        rec(3, at(10, 3, 0), "user:5", "user_updated", STATUS_PUBLISHED),
    ];
    let queue = Arc::new(MemoryQueue::default());
    let window = MemoryWindow {
        records,
        ..MemoryWindow::default()
    };
    let (replayer, _) = replayer(window, queue.clone(), 1);
    let mut req = request(at(10, 0, 0), at(11, 0, 0));
    req.republish = true;
    let report = replayer.run(req, |_| {}).await.unwrap();
    let sent = queue.sent();
    assert_eq!(hashes(&sent), [1, 2, 3].map(hash).to_vec());
    assert!(
        sent.iter()
            .all(|m| m.replay.as_ref().map(|r| r.mode) == Some(ReplayMode::Republish))
    );
    assert_eq!((report.already_published, report.enqueued), (0, 3));
    assert_eq!(report.mode, ReplayMode::Republish);
}

#[tokio::test]
async fn dry_run_counts_and_sends_nothing() {
    let queue = Arc::new(MemoryQueue::default());
    let mut records = scattered();
    records[0].status = STATUS_PUBLISHED.into();
    let window = MemoryWindow {
        records,
        ..MemoryWindow::default()
    };
    let (replayer, sink) = replayer(window, queue.clone(), 8);
    let mut req = request(at(10, 0, 0), at(13, 0, 0));
    req.dry_run = true;
    let progress = Mutex::new(Vec::new());
    let report = replayer
        .run(req, |p| progress.lock().unwrap().push(p))
        .await
        .unwrap();
    assert!(queue.sent().is_empty() && queue.calls.lock().unwrap().is_empty());
    assert_eq!(
        (report.selected, report.already_published, report.to_send),
        (7, 1, 6)
    );
    assert_eq!(report.enqueued, 0);
    assert!(report.dry_run && report.is_complete());
    assert_eq!(sink.sum("ReplayEnqueued", &[]), 0.0);
    assert_eq!(sink.sum("ReplayDryRuns", &[]), 1.0);
    let progress = progress.lock().unwrap();
    let last = progress.last().unwrap();
    assert_eq!((last.hours_done, last.hours_total, last.to_send), (3, 3, 6));
}

#[tokio::test]
async fn a_failed_send_holds_back_that_entitys_later_events() {
    let records = vec![
        rec(
            1,
            at(10, 1, 0),
            "course:1",
            "course_created",
            STATUS_RECEIVED,
        ),
        rec(
            2,
            at(10, 2, 0),
            "course:1",
            "course_updated",
            STATUS_RECEIVED,
        ),
        rec(
            3,
            at(11, 3, 0),
            "course:1",
            "course_updated",
            STATUS_RECEIVED,
        ),
        rec(4, at(10, 4, 0), "user:5", "user_updated", STATUS_RECEIVED),
    ];
    let queue = Arc::new(MemoryQueue {
        fail: HashSet::from([hash(1)]),
        ..MemoryQueue::default()
    });
    let window = MemoryWindow {
        records,
        ..MemoryWindow::default()
    };
    // Chunks of 10 would send 1 and 2 in one batch; a chunk per event shows the hold-back.
    let settings = ReplaySettings {
        send_lanes: 2,
        chunk_size: 1,
        ..ReplaySettings::default()
    };
    let (replayer, sink) = replayer_with(window, queue.clone(), settings);
    let mut req = request(at(10, 0, 0), at(12, 0, 0));
    req.request_id = None;
    let report = replayer.run(req, |_| {}).await.unwrap();
    assert_eq!(hashes(&queue.sent()), vec![hash(4)]);
    assert_eq!((report.enqueued, report.failed), (1, 3));
    let failed: Vec<&str> = report
        .failures
        .iter()
        .map(|f| f.event_hash.as_str())
        .collect();
    assert_eq!(failed, [hash(1), hash(2), hash(3)]);
    assert!(report.failures[0].error.contains("InternalFailure"));
    assert!(report.failures[1].error.contains("held back"));
    assert!(!report.is_complete());
    assert_eq!(sink.sum("ReplaySendFailures", &[]), 3.0);
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains("metadata"), "no payloads in the report");
}

#[tokio::test]
async fn an_inbox_read_failure_stops_with_a_resume_point() {
    let queue = Arc::new(MemoryQueue::default());
    let window = MemoryWindow {
        records: scattered(),
        fail_at: Some(at(11, 0, 0)),
        ..MemoryWindow::default()
    };
    let (replayer, _) = replayer(window, queue.clone(), 1);
    let report = replayer
        .run(request(at(10, 0, 0), at(13, 0, 0)), |_| {})
        .await
        .unwrap();
    assert_eq!(hashes(&queue.sent()), [2, 4, 3, 8].map(hash).to_vec());
    let incomplete = report.incomplete.clone().unwrap();
    assert_eq!(incomplete.resume_from, "2024-03-04T11:00:00Z");
    assert!(incomplete.reason.contains("Throttling"));
    assert_eq!((report.hours_done, report.hours_total), (1, 3));
    assert!(!report.is_complete());
}

#[tokio::test]
async fn unreadable_records_are_reported_by_hash() {
    let queue = Arc::new(MemoryQueue::default());
    let window = MemoryWindow {
        unreadable: vec![UnreadableRecord {
            event_hash: hash(42),
            reason: "no `payload` attribute".into(),
        }],
        ..MemoryWindow::default()
    };
    let (replayer, _) = replayer(window, queue, 1);
    let report = replayer
        .run(request(at(10, 0, 0), at(11, 0, 0)), |_| {})
        .await
        .unwrap();
    assert_eq!(report.unreadable_count, 1);
    assert_eq!(report.unreadable[0].event_hash, hash(42));
    assert!(!report.is_complete());
}

#[test]
fn requests_read_from_json_with_defaults_and_refuse_unknown_fields() {
    let req: ReplayRequest = serde_json::from_value(json!({"from": "2024-03-04"})).unwrap();
    assert_eq!(req, ReplayRequest::new("2024-03-04"));
    let now = at(12, 0, 0);
    let plan = req.plan(now).unwrap();
    assert_eq!(
        plan.from,
        Utc.with_ymd_and_hms(2024, 3, 4, 0, 0, 0).unwrap()
    );
    assert_eq!(plan.to, now);
    assert_eq!(plan.mode, ReplayMode::Heal);
    assert!(!plan.dry_run);
    assert!(plan.request_id.starts_with("replay-20240304T120000Z-"));
    assert!(request::valid_request_id(&plan.request_id));
    let typo = serde_json::from_value::<ReplayRequest>(
        json!({"from": "2024-03-04", "event_name": ["grade_change"]}),
    );
    assert!(typo.unwrap_err().to_string().contains("event_name"));
}

#[test]
fn validation_errors_say_what_is_wrong() {
    let now = at(12, 0, 0);
    let plan = |f: &dyn Fn(&mut ReplayRequest)| {
        let mut req = ReplayRequest {
            to: Some("2024-03-04T11:00:00Z".into()),
            ..ReplayRequest::new("2024-03-04T10:00:00Z")
        };
        f(&mut req);
        req.plan(now)
    };
    assert!(plan(&|_| {}).is_ok());
    assert!(matches!(
        plan(&|r| r.to = Some("2024-03-04T09:00:00Z".into())),
        Err(ReplayError::EmptyWindow { .. })
    ));
    assert!(matches!(
        plan(&|r| r.to = Some("2024-03-04T10:00:00Z".into())),
        Err(ReplayError::EmptyWindow { .. })
    ));
    // `from` in the future with the default `to` (now).
    let err = plan(&|r| {
        r.from = "2024-03-05T00:00:00Z".into();
        r.to = None;
    })
    .unwrap_err();
    assert!(err.to_string().contains("defaults to now"), "{err}");
    assert_eq!(
        plan(&|r| r.from = "2023-12-01T10:00:00Z".into()),
        Err(ReplayError::WindowTooLong { days: 95, max: 90 })
    );
    assert!(
        plan(&|r| r.from = "2023-12-05T11:00:00Z".into()).is_ok(),
        "exactly 90 days"
    );
    assert_eq!(
        plan(&|r| r.from = "last tuesday".into()),
        Err(ReplayError::InvalidTime {
            field: "from",
            value: "last tuesday".into()
        })
    );
    assert!(matches!(
        plan(&|r| r.to = Some("2024-13-01".into())),
        Err(ReplayError::InvalidTime { field: "to", .. })
    ));
    for bad in ["", "has space", "semi;colon", &"x".repeat(61)] {
        assert!(
            matches!(
                plan(&|r| r.request_id = Some(bad.to_string())),
                Err(ReplayError::InvalidRequestId(_))
            ),
            "{bad:?}"
        );
    }
    assert!(plan(&|r| r.request_id = Some("A-z_09".into())).is_ok());
    assert_eq!(
        plan(&|r| r.event_names = vec!["Grade_Change".into()]),
        Err(ReplayError::InvalidEventName("Grade_Change".into()))
    );
    assert_eq!(
        plan(&|r| r.entity_keys = vec!["21070000000000042".into()]),
        Err(ReplayError::InvalidEntityKey("21070000000000042".into()))
    );
    assert!(plan(&|r| r.entity_keys = vec!["course_grade:1:2".into()]).is_ok());
    assert!(matches!(
        plan(&|r| r.entity_keys = (0..101).map(|i| format!("user:{i}")).collect()),
        Err(ReplayError::TooManyFilterValues {
            field: "entity_keys",
            count: 101,
            ..
        })
    ));
    let long = format!("{}x", "y".repeat(500));
    let err = plan(&|r| r.from = long.clone()).unwrap_err().to_string();
    assert!(err.len() < 300, "echoed input is shortened: {err}");
}

#[test]
fn hour_slices_follow_the_inbox_buckets() {
    let plan = ReplayRequest {
        to: Some("2024-03-04T12:00:00Z".into()),
        ..ReplayRequest::new("2024-03-04T10:30:00.1234567Z")
    }
    .plan(at(13, 0, 0))
    .unwrap();
    let slices = plan.hour_slices();
    assert_eq!(slices.len(), 2);
    assert_eq!(format_sortable(&slices[0].0), "2024-03-04T10:30:00.123456Z");
    assert_eq!(slices[0].1, at(11, 0, 0));
    assert_eq!(slices[1], (at(11, 0, 0), at(12, 0, 0)));
}

#[test]
fn runs_are_send_so_lambda_and_the_local_stack_can_spawn_them() {
    fn assert_send<T: Send>(_: &T) {}
    let (replayer, _) = replayer(MemoryWindow::default(), Arc::new(MemoryQueue::default()), 1);
    let run = replayer.run(ReplayRequest::new("2024-03-04"), |_| {});
    assert_send(&run);
}
