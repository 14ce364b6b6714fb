//! The processor's rules on Canvas's entity model, with in-memory ports (the
//! DynamoDB/EventBridge path is tested end to end in the workspace's `tests/`).

use async_trait::async_trait;
use coursewire_live_events::catalog::{CatalogModel, ChangeEvent, EntityRecord};
use coursewire_live_events::live_events::delivery;
use coursewire_pipeline::bus::{BusEntry, EventPublisher};
use coursewire_pipeline::handoff::{QueuedEvent, Replay, ReplayMode};
use coursewire_pipeline::processor::{
    COMMIT_ATTEMPTS, Commit, Ledger, OutboxRecord, Processor, Publication, event_id,
};
use coursewire_runtime::function::{BatchOutcome, QueueMessage};
use coursewire_runtime::service::ServiceError;
use coursewire_runtime::telemetry::CollectingSink;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Store {
    rows: HashMap<String, EntityRecord>,
    outbox: HashMap<String, OutboxRecord<ChangeEvent>>,
}

/// Ledger double; `fail_commit` / `fail_mark` name event hashes whose next call fails.
#[derive(Default)]
struct MemoryLedger {
    store: Mutex<Store>,
    fail_commit: Mutex<Vec<String>>,
    fail_mark: Mutex<Vec<String>>,
}

fn take(list: &Mutex<Vec<String>>, hash: &str) -> bool {
    let mut list = list.lock().unwrap();
    match list.iter().position(|h| h == hash) {
        Some(i) => {
            list.remove(i);
            true
        }
        None => false,
    }
}

#[async_trait]
impl Ledger<EntityRecord, ChangeEvent> for MemoryLedger {
    async fn load(&self, key: &str) -> Result<Option<EntityRecord>, ServiceError> {
        Ok(self.store.lock().unwrap().rows.get(key).cloned())
    }
    async fn commit(
        &self,
        previous: u64,
        record: &EntityRecord,
        outbox: &OutboxRecord<ChangeEvent>,
    ) -> Result<Commit<ChangeEvent>, ServiceError> {
        if take(&self.fail_commit, &outbox.event_hash) {
            return Err(ServiceError::Transient("injected".into()));
        }
        let mut store = self.store.lock().unwrap();
        if let Some(existing) = store.outbox.get(&outbox.event_hash) {
            return Ok(Commit::AlreadyApplied(Box::new(existing.clone())));
        }
        let current = store.rows.get(&record.key).map_or(0, |r| r.sequence);
        if current != previous {
            return Ok(Commit::RowMoved);
        }
        store.rows.insert(record.key.clone(), record.clone());
        store
            .outbox
            .insert(outbox.event_hash.clone(), outbox.clone());
        Ok(Commit::Committed)
    }
    async fn mark_published(&self, hash: &str, _: &str) -> Result<(), ServiceError> {
        if take(&self.fail_mark, hash) {
            return Err(ServiceError::Transient("injected".into()));
        }
        if let Some(record) = self.store.lock().unwrap().outbox.get_mut(hash) {
            record.published = true;
        }
        Ok(())
    }
}

/// Publisher double; `fail` names event hashes whose next publication fails.
#[derive(Default)]
struct MemoryBus {
    published: Mutex<Vec<Publication<ChangeEvent>>>,
    fail: Mutex<Vec<String>>,
}

#[async_trait]
impl EventPublisher for MemoryBus {
    async fn publish(&self, entries: &[BusEntry]) -> Vec<Result<(), ServiceError>> {
        entries
            .iter()
            .map(|entry| {
                let event: ChangeEvent = serde_json::from_str(&entry.detail).unwrap();
                let p = Publication {
                    detail_type: entry.detail_type.clone(),
                    published_at: event.published_at.clone(),
                    replay: event.replay,
                    event,
                };
                if take(&self.fail, &p.event.canvas.event_hash) {
                    Err(ServiceError::Transient("injected".into()))
                } else {
                    self.published.lock().unwrap().push(p);
                    Ok(())
                }
            })
            .collect()
    }
}

fn message(hash: &str, name: &str, time: &str, id: &str, state: &str) -> QueuedEvent {
    QueuedEvent {
        version: 1,
        event_hash: hash.into(),
        entity_key: format!("enrollment:{id}"),
        event_name: name.into(),
        event_time: time.into(),
        format: "canvas".into(),
        source: delivery::SQS.clone(),
        received_at: "2025-01-01T00:00:00.000000Z".into(),
        payload: json!({
            "metadata": {"event_name": name, "event_time": time, "root_account_id": "21070000000000001"},
            "body": {"enrollment_id": id, "course_id": "21070000000000565", "user_id": "21070000000000009",
                     "type": "StudentEnrollment", "workflow_state": state}
        }),
        replay: None,
    }
}

fn batch(messages: &[&QueuedEvent]) -> Vec<QueueMessage> {
    messages
        .iter()
        .map(|m| QueueMessage {
            id: format!("msg-{}", m.event_hash),
            body: serde_json::to_string(m).unwrap(),
            ..QueueMessage::default()
        })
        .collect()
}

struct Rig {
    ledger: Arc<MemoryLedger>,
    bus: Arc<MemoryBus>,
    processor: Processor<CatalogModel>,
}

fn rig() -> Rig {
    let ledger = Arc::new(MemoryLedger::default());
    let bus = Arc::new(MemoryBus::default());
    let processor = Processor::new(
        CatalogModel,
        ledger.clone(),
        bus.clone(),
        Arc::new(CollectingSink::new()),
        "processor",
    );
    Rig {
        ledger,
        bus,
        processor,
    }
}

fn failed_ids(outcome: &BatchOutcome) -> Vec<String> {
    outcome.failed.clone()
}

const T1: &str = "2025-01-01T10:00:00.000000Z";
const T2: &str = "2025-01-01T11:00:00.000000Z";
const T3: &str = "2025-01-01T12:00:00.000000Z";

#[tokio::test]
async fn publishes_one_change_per_event_with_gapless_sequences() {
    let rig = rig();
    let a = message("aa01", "enrollment_created", T1, "1", "invited");
    let b = message("aa02", "enrollment_updated", T2, "1", "active");
    let response = rig.processor.process_batch(batch(&[&a, &b])).await;
    assert!(response.failed.is_empty());
    let published = rig.bus.published.lock().unwrap().clone();
    assert_eq!(published.len(), 2);
    assert_eq!(published[0].detail_type, "Enrollment Created");
    assert_eq!(published[1].detail_type, "Enrollment Updated");
    assert_eq!(published[0].event.sequence, 1);
    assert_eq!(published[1].event.sequence, 2);
    assert_eq!(published[1].event.changed, ["workflow_state"]);
    assert_eq!(published[1].event.event_id, event_id("aa02"));
    assert!(!published[1].event.published_at.is_empty());
}

#[tokio::test]
async fn a_redelivered_message_is_not_published_twice() {
    let rig = rig();
    let a = message("bb01", "enrollment_created", T1, "2", "invited");
    rig.processor.process_batch(batch(&[&a])).await;
    let response = rig.processor.process_batch(batch(&[&a])).await;
    assert!(response.failed.is_empty());
    assert_eq!(rig.bus.published.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn late_events_are_published_flagged_without_regressing_state() {
    let rig = rig();
    let newer = message("cc01", "enrollment_updated", T3, "3", "completed");
    let older = message("cc02", "enrollment_updated", T2, "3", "active");
    rig.processor.process_batch(batch(&[&newer, &older])).await;
    let published = rig.bus.published.lock().unwrap().clone();
    assert_eq!(published.len(), 2);
    assert!(published[1].event.late);
    assert_eq!(published[1].event.sequence, 2);
    let state = published[1].event.state.clone().unwrap();
    assert_eq!(state["workflow_state"], "completed");
}

fn fail_commit(rig: &Rig, hash: &str, times: u32) {
    let mut list = rig.ledger.fail_commit.lock().unwrap();
    for _ in 0..times {
        list.push(hash.into());
    }
}

#[tokio::test]
async fn a_transient_commit_failure_is_retried_within_the_invocation() {
    let rig = rig();
    let a = message("hh01", "enrollment_created", T1, "9", "invited");
    fail_commit(&rig, "hh01", COMMIT_ATTEMPTS - 1);
    let response = rig.processor.process_batch(batch(&[&a])).await;
    assert!(response.failed.is_empty());
    assert_eq!(rig.bus.published.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_crash_between_any_two_steps_republishes_the_same_event_id() {
    for step in ["commit", "publish", "mark"] {
        let rig = rig();
        let a = message("dd01", "enrollment_created", T1, "4", "invited");
        match step {
            // A commit that keeps failing (every in-invocation attempt).
            "commit" => fail_commit(&rig, "dd01", COMMIT_ATTEMPTS),
            "publish" => rig.bus.fail.lock().unwrap().push("dd01".into()),
            _ => rig.ledger.fail_mark.lock().unwrap().push("dd01".into()),
        }
        let first = rig.processor.process_batch(batch(&[&a])).await;
        assert_eq!(failed_ids(&first), ["msg-dd01"], "step {step}");
        let retry = rig.processor.process_batch(batch(&[&a])).await;
        assert!(retry.failed.is_empty(), "step {step}");
        let published = rig.bus.published.lock().unwrap().clone();
        // A crash after PutEvents (failed mark) publishes twice, with the same id.
        let expected = if step == "mark" { 2 } else { 1 };
        assert_eq!(published.len(), expected, "step {step}");
        assert!(
            published
                .iter()
                .all(|p| p.event.event_id == event_id("dd01") && p.event.sequence == 1)
        );
        assert!(rig.ledger.store.lock().unwrap().outbox["dd01"].published);
        // And nothing more on a third delivery.
        rig.processor.process_batch(batch(&[&a])).await;
        assert_eq!(rig.bus.published.lock().unwrap().len(), expected);
    }
}

#[tokio::test]
async fn a_failure_fails_the_rest_of_its_group_only() {
    let rig = rig();
    let a1 = message("ee01", "enrollment_created", T1, "5", "invited");
    let a2 = message("ee02", "enrollment_updated", T2, "5", "active");
    let b1 = message("ee03", "enrollment_created", T1, "6", "invited");
    fail_commit(&rig, "ee01", COMMIT_ATTEMPTS);
    let response = rig.processor.process_batch(batch(&[&a1, &b1, &a2])).await;
    assert_eq!(failed_ids(&response), ["msg-ee01", "msg-ee02"]);
    let published = rig.bus.published.lock().unwrap().clone();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].event.entity.key, "enrollment:6");
    // The retry applies the group in order.
    rig.processor.process_batch(batch(&[&a1, &a2])).await;
    let sequences: Vec<u64> = rig
        .bus
        .published
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.event.entity.key == "enrollment:5")
        .map(|p| p.event.sequence)
        .collect();
    assert_eq!(sequences, [1, 2]);
}

#[tokio::test]
async fn replays_heal_silently_or_republish_flagged() {
    let rig = rig();
    let a = message("ff01", "enrollment_created", T1, "7", "invited");
    rig.processor.process_batch(batch(&[&a])).await;
    let mut heal = a.clone();
    heal.replay = Some(Replay {
        mode: ReplayMode::Heal,
        request_id: "r1".into(),
    });
    rig.processor.process_batch(batch(&[&heal])).await;
    assert_eq!(rig.bus.published.lock().unwrap().len(), 1);

    let mut republish = a.clone();
    republish.replay = Some(Replay {
        mode: ReplayMode::Republish,
        request_id: "r2".into(),
    });
    rig.processor.process_batch(batch(&[&republish])).await;
    let published = rig.bus.published.lock().unwrap().clone();
    assert_eq!(published.len(), 2);
    assert!(published[1].event.replay);
    assert_eq!(published[1].event.event_id, published[0].event.event_id);
    assert_eq!(published[1].event.sequence, 1);
}

#[tokio::test]
async fn unreadable_messages_do_not_fail_the_batch() {
    let rig = rig();
    let a = message("gg01", "enrollment_created", T1, "8", "invited");
    let mut event = batch(&[&a]);
    event.push(QueueMessage {
        id: "junk".into(),
        body: "{not json".into(),
        ..QueueMessage::default()
    });
    let response = rig.processor.process_batch(event).await;
    assert!(response.failed.is_empty());
    assert_eq!(rig.bus.published.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_message_its_model_cannot_read_is_dropped_without_blocking_its_group() {
    let rig = rig();
    let mut unknown = message("gg02", "enrollment_created", T1, "10", "invited");
    unknown.format = "xml".into();
    let next = message("gg03", "enrollment_updated", T2, "10", "active");
    let response = rig.processor.process_batch(batch(&[&unknown, &next])).await;
    assert!(response.failed.is_empty());
    let published = rig.bus.published.lock().unwrap().clone();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].event.canvas.event_hash, "gg03");
    assert_eq!(published[0].event.sequence, 1);
}

#[test]
fn event_ids_are_stable_uuids() {
    let hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_eq!(event_id(hash), event_id(hash));
    assert_ne!(event_id(hash), event_id(&hash.replace('0', "f")));
    assert!(uuid::Uuid::parse_str(&event_id(hash)).is_ok());
}
