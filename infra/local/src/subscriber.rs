//! A downstream subscriber of the change-event bus, as a university system would run one:
//! it reads its own SQS queue (fed by an EventBridge rule), deduplicates by `detail.event_id`
//! and orders by `detail.sequence` per `detail.entity.key`. The demo, the benchmarks and the
//! end-to-end tests use it to check what arrives at the far end of the pipeline.

use crate::event_sources::ShutdownToken;
use crate::stack::{LocalStack, StackError};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// One change event as it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The whole EventBridge event (`detail-type`, `source`, `detail`...).
    pub event: Value,
    pub arrived_at: DateTime<Utc>,
}

impl Arrival {
    pub fn detail(&self) -> &Value {
        &self.event["detail"]
    }

    pub fn event_id(&self) -> Option<&str> {
        self.detail()["event_id"].as_str()
    }

    /// The source event's content hash.
    pub fn event_hash(&self) -> Option<&str> {
        self.detail()["canvas"]["event_hash"].as_str()
    }

    pub fn entity_key(&self) -> Option<&str> {
        self.detail()["entity"]["key"].as_str()
    }

    pub fn sequence(&self) -> Option<u64> {
        self.detail()["sequence"].as_u64()
    }

    /// From `emitted` (e.g. when Canvas sent the source event) to this arrival: end-to-end
    /// propagation. Zero if the arrival is stamped earlier.
    pub fn latency_since(&self, emitted: DateTime<Utc>) -> Duration {
        (self.arrived_at - emitted).to_std().unwrap_or_default()
    }
}

/// What the subscriber has seen.
#[derive(Debug, Clone, Default)]
pub struct SubscriberReport {
    /// SQS messages received.
    pub messages: u64,
    /// Distinct event ids.
    pub unique_events: u64,
    /// Copies of an event id seen before (at-least-once delivery, replays): the subscriber
    /// drops these.
    pub redeliveries: u64,
    /// Copies flagged `replay: true`.
    pub replayed: u64,
    /// Bodies that are not EventBridge events with a change-event detail.
    pub unreadable: u64,
    /// First copy of every event id.
    pub events: BTreeMap<String, Arrival>,
    /// Every copy, in arrival order (for schema checks).
    pub copies: Vec<Arrival>,
}

impl SubscriberReport {
    /// Everything wrong with the sequence numbers: per entity, the distinct events must carry
    /// 1, 2, 3... without gaps or repeats, and every copy of an event id the same number.
    pub fn sequence_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut by_entity: BTreeMap<&str, Vec<(u64, &str)>> = BTreeMap::new();
        for (id, arrival) in &self.events {
            match (arrival.entity_key(), arrival.sequence()) {
                (Some(key), Some(seq)) => by_entity.entry(key).or_default().push((seq, id)),
                _ => problems.push(format!("{id}: no entity key or sequence")),
            }
        }
        for (key, mut seqs) in by_entity {
            seqs.sort();
            for (expected, (seq, id)) in (1u64..).zip(&seqs) {
                if *seq != expected {
                    problems.push(format!(
                        "{key}: event {id} has sequence {seq}, expected {expected} (sequences {:?})",
                        seqs.iter().map(|(s, _)| s).collect::<Vec<_>>()
                    ));
                    break;
                }
            }
        }
        for copy in &self.copies {
            if let (Some(id), Some(seq)) = (copy.event_id(), copy.sequence())
                && let Some(first) = self.events.get(id)
                && first.sequence() != Some(seq)
            {
                problems.push(format!(
                    "event {id} arrived with sequences {:?} and {seq}",
                    first.sequence()
                ));
            }
        }
        problems
    }

    /// Content hash → arrival, for joining with what was sent.
    pub fn by_event_hash(&self) -> HashMap<&str, &Arrival> {
        self.events
            .values()
            .filter_map(|a| Some((a.event_hash()?, a)))
            .collect()
    }
}

/// A running subscriber on one queue.
pub struct Subscriber {
    shutdown: ShutdownToken,
    report: Arc<Mutex<SubscriberReport>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Subscriber {
    /// Starts `receivers` concurrent consumers of the queue `logical_id` (e.g.
    /// `ExampleSubscriberQueue`).
    pub fn start(
        stack: &LocalStack,
        logical_id: &str,
        receivers: usize,
    ) -> Result<Self, StackError> {
        let url = stack
            .queue_url(logical_id)
            .ok_or_else(|| StackError::Sqs(format!("no queue {logical_id}")))?
            .to_string();
        let client = aws_sdk_sqs::Client::new(&stack.aws);
        let shutdown = stack.shutdown_token().child();
        let report = Arc::new(Mutex::new(SubscriberReport::default()));
        let tasks = (0..receivers.max(1))
            .map(|_| {
                tokio::spawn(consume(
                    client.clone(),
                    url.clone(),
                    shutdown.clone(),
                    report.clone(),
                ))
            })
            .collect();
        Ok(Self {
            shutdown,
            report,
            tasks,
        })
    }

    /// What has arrived so far.
    pub fn report(&self) -> SubscriberReport {
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Distinct events so far (cheap: no copy of the report).
    pub fn unique_events(&self) -> u64 {
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unique_events
    }

    /// Waits until `expected` distinct events have arrived, or nothing new arrived for
    /// `idle`; returns how many did.
    pub async fn wait_for(&self, expected: u64, idle: Duration) -> u64 {
        let mut last = self.unique_events();
        let mut last_change = tokio::time::Instant::now();
        loop {
            let seen = self.unique_events();
            if seen >= expected {
                return seen;
            }
            if seen != last {
                last = seen;
                last_change = tokio::time::Instant::now();
            } else if last_change.elapsed() >= idle {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops once the queue is empty and returns what arrived.
    pub async fn finish(self) -> SubscriberReport {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One receiver: receive, record, delete; after shutdown, keep going until a receive is empty.
async fn consume(
    client: aws_sdk_sqs::Client,
    url: String,
    stop: ShutdownToken,
    report: Arc<Mutex<SubscriberReport>>,
) {
    loop {
        let received = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "subscriber: receive failed");
                if stop.is_cancelled() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if messages.is_empty() {
            if stop.is_cancelled() {
                return;
            }
            continue;
        }
        let arrived_at = Utc::now();
        {
            let mut report = report.lock().unwrap_or_else(PoisonError::into_inner);
            for message in &messages {
                report.record(message.body().unwrap_or(""), arrived_at);
            }
        }
        let entries: Vec<_> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        if let Err(e) = client
            .delete_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "subscriber: delete failed");
        }
    }
}

impl SubscriberReport {
    fn record(&mut self, body: &str, arrived_at: DateTime<Utc>) {
        self.messages += 1;
        let Ok(event) = serde_json::from_str::<Value>(body) else {
            self.unreadable += 1;
            return;
        };
        let arrival = Arrival { event, arrived_at };
        let Some(id) = arrival.event_id().map(str::to_string) else {
            self.unreadable += 1;
            return;
        };
        if arrival.detail()["replay"].as_bool() == Some(true) {
            self.replayed += 1;
        }
        self.copies.push(arrival.clone());
        match self.events.entry(id) {
            std::collections::btree_map::Entry::Occupied(_) => self.redeliveries += 1,
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(arrival);
                self.unique_events += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: &str, key: &str, seq: u64) -> String {
        json!({"detail-type": "Enrollment Updated", "detail": {
            "event_id": id, "sequence": seq, "entity": {"key": key}, "canvas": {"event_hash": id}}})
        .to_string()
    }

    #[test]
    fn finds_gaps_repeats_and_inconsistent_copies() {
        let mut report = SubscriberReport::default();
        let now = Utc::now();
        for (id, key, seq) in [("a", "e:1", 1), ("b", "e:1", 2), ("c", "e:2", 1)] {
            report.record(&event(id, key, seq), now);
        }
        report.record(&event("a", "e:1", 1), now);
        assert!(report.sequence_problems().is_empty());
        assert_eq!((report.unique_events, report.redeliveries), (3, 1));

        report.record(&event("d", "e:2", 3), now);
        report.record(&event("b", "e:1", 5), now);
        report.record("not json", now);
        let problems = report.sequence_problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(report.unreadable, 1);
    }
}
