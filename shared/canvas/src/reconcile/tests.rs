//! The reconciler's orchestration with in-memory ports (the diff rules are tested in `diff`;
//! the AWS and Canvas adapters end to end in `tests/reconcile_e2e.rs`).

use super::*;
use crate::canvas::{Enrollment, Section, User};
use coursewire_runtime::telemetry::CollectingSink;
use std::sync::Mutex;

const COURSE: &str = "21070000000000100";

struct FakeCanvas {
    revoked: bool,
}

fn course() -> Course {
    Course {
        id: COURSE.into(),
        name: Some("Physics 101".into()),
        course_code: Some("PHYS101".into()),
        sis_course_id: None,
        workflow_state: Some("available".into()),
    }
}

#[async_trait]
impl CanvasSource for FakeCanvas {
    async fn active_courses(&self, _account_id: &str) -> Result<Vec<Course>, CanvasError> {
        Ok((0..250)
            .map(|i| Course {
                id: format!("2107000000000{i:04}"),
                ..course()
            })
            .collect())
    }
    async fn course(&self, _course_id: &str) -> Result<Course, CanvasError> {
        if self.revoked {
            return Err(CanvasError::GrantRevoked);
        }
        Ok(course())
    }
    async fn roster(&self, _course_id: &str) -> Result<Roster, CanvasError> {
        Ok(Roster {
            course_id: COURSE.into(),
            sections: vec![Section {
                id: "21070000000000200".into(),
                course_id: COURSE.into(),
                name: Some("A".into()),
                sis_section_id: None,
                start_at: None,
                end_at: None,
            }],
            enrollments: vec![Enrollment {
                id: "21070000000000300".into(),
                course_id: COURSE.into(),
                section_id: Some("21070000000000200".into()),
                user_id: "21070000000000400".into(),
                enrollment_type: "StudentEnrollment".into(),
                state: "active".into(),
                created_at: None,
                updated_at: None,
            }],
            users: vec![User {
                id: "21070000000000400".into(),
                name: Some("Ada Lovelace".into()),
                short_name: None,
                sortable_name: None,
                sis_user_id: None,
            }],
        })
    }
    async fn modules(&self, _course_id: &str) -> Result<Vec<Module>, CanvasError> {
        Ok(Vec::new())
    }
}

#[derive(Default)]
struct FakeCatalog {
    asked: Mutex<Vec<(String, Vec<String>)>>,
}

#[async_trait]
impl CatalogView for FakeCatalog {
    async fn course_rows(
        &self,
        course_key: &str,
        _module_keys: &[String],
        user_keys: &[String],
    ) -> Result<HashMap<String, EntityRecord>, ServiceError> {
        self.asked
            .lock()
            .unwrap()
            .push((course_key.to_string(), user_keys.to_vec()));
        Ok(HashMap::new())
    }
}

#[derive(Default)]
struct FakeSink {
    events: Mutex<Vec<LiveEvent>>,
    fail: bool,
}

#[async_trait]
impl DriftSink for FakeSink {
    async fn submit(&self, events: &[LiveEvent]) -> Vec<Result<bool, ServiceError>> {
        self.events.lock().unwrap().extend(events.iter().cloned());
        events
            .iter()
            .enumerate()
            .map(|(i, _)| {
                if self.fail && i == 1 {
                    Err(ServiceError::Transient("throttled".into()))
                } else {
                    Ok(true)
                }
            })
            .collect()
    }
}

#[derive(Default)]
struct FakeQueue {
    batches: Mutex<Vec<Vec<CourseMessage>>>,
}

#[async_trait]
impl CourseQueue for FakeQueue {
    async fn enqueue(&self, courses: &[CourseMessage]) -> Result<(), ServiceError> {
        self.batches.lock().unwrap().push(courses.to_vec());
        Ok(())
    }
}

struct Fixture {
    reconciler: Reconciler,
    catalog: Arc<FakeCatalog>,
    sink: Arc<FakeSink>,
    queue: Arc<FakeQueue>,
    metrics: Arc<CollectingSink>,
}

fn fixture(revoked: bool, fail: bool) -> Fixture {
    let catalog = Arc::new(FakeCatalog::default());
    let sink = Arc::new(FakeSink {
        fail,
        ..FakeSink::default()
    });
    let queue = Arc::new(FakeQueue::default());
    let metrics = Arc::new(CollectingSink::new());
    let reconciler = Reconciler::new(
        Arc::new(FakeCanvas { revoked }),
        catalog.clone(),
        sink.clone(),
        queue.clone(),
        ReconcileSettings {
            account_id: "1".into(),
            root_account_id: Some("21070000000000001".into()),
        },
        metrics.clone(),
        "reconciler",
    );
    Fixture {
        reconciler,
        catalog,
        sink,
        queue,
        metrics,
    }
}

fn sqs(bodies: &[&str]) -> Vec<QueueMessage> {
    bodies
        .iter()
        .enumerate()
        .map(|(i, body)| QueueMessage {
            id: format!("m{i}"),
            body: body.to_string(),
            ..QueueMessage::default()
        })
        .collect()
}

#[tokio::test]
async fn the_schedule_fans_out_one_message_per_active_course() {
    let f = fixture(false, false);
    let scheduled =
        serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let report = f.reconciler.handle_invoke(scheduled).await.unwrap();
    assert_eq!(report["courses"], 250);
    let batches = f.queue.batches.lock().unwrap();
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        [100, 100, 50]
    );
    // One run: every course pass stamps its drift with the same time.
    let run_at = batches[0][0].run_at;
    assert!(batches.iter().flatten().all(|m| m.run_at == run_at));
    assert_eq!(f.metrics.sum("CoursesPlanned", &[]), 250.0);
}

#[tokio::test]
async fn a_course_pass_submits_its_drift_and_reports_it() {
    let f = fixture(false, false);
    let report = f
        .reconciler
        .handle_invoke(serde_json::json!({"course_id": COURSE}))
        .await
        .unwrap();
    let report: CourseReport = serde_json::from_value(report).unwrap();
    assert_eq!(report.submitted, 4, "{report:?}");
    assert_eq!(report.drift["enrollment.missing"], 1);
    let asked = f.catalog.asked.lock().unwrap();
    assert_eq!(asked[0].0, format!("course:{COURSE}"));
    assert_eq!(asked[0].1, ["user:21070000000000400"]);
    let events = f.sink.events.lock().unwrap();
    assert!(
        events
            .iter()
            .all(|e| e.payload["metadata"]["producer"] == diff::PRODUCER)
    );
    assert_eq!(
        f.metrics
            .sum("ReconcileDrift", &[("EntityType", "enrollment")]),
        1.0
    );
}

#[tokio::test]
async fn a_failed_submission_fails_the_message_for_a_retry() {
    let f = fixture(false, true);
    let response = f
        .reconciler
        .reconcile_batch(sqs(&[
            &format!(r#"{{"course_id":"{COURSE}","run_at":"2026-11-23T09:00:00Z"}}"#),
            "not json",
        ]))
        .await;
    let failed: Vec<&str> = response.failed.iter().map(String::as_str).collect();
    // The unreadable message is dropped, not retried forever.
    assert_eq!(failed, ["m0"]);
    assert_eq!(f.metrics.sum("ReconcileFailures", &[]), 1.0);
}

#[tokio::test]
async fn a_revoked_grant_is_not_retried_message_by_message() {
    let f = fixture(true, false);
    let response = f
        .reconciler
        .reconcile_batch(sqs(&[&format!(
            r#"{{"course_id":"{COURSE}","run_at":"2026-11-23T09:00:00Z"}}"#
        )]))
        .await;
    assert!(response.failed.is_empty());
    assert!(f.sink.events.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_malformed_invocation_says_what_is_expected() {
    let f = fixture(false, false);
    let err = f
        .reconciler
        .handle_invoke(serde_json::json!({"course": "1"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("course_id"), "{err}");
    let err = f
        .reconciler
        .handle_invoke(serde_json::json!({"course_id": "1", "all_courses": true}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exactly one"), "{err}");
}
