//! Taking a source's events in: the inbox's conditional put (deduplication by content hash)
//! and the hand-off to the processor, for any source. A crash in between is repaired by the
//! sender's retry: the inbox remembers that the event was stored but not yet applied, so the
//! retry enqueues it again (the FIFO queue and the processor absorb the extra copy).

use crate::handoff::{EventQueue, QueuedEvent};
use crate::inbox::{Admission, Delivery, Inbox, Reject, SourceEvent};
use chrono::{DateTime, Utc};
use coursewire_runtime::service::ServiceError;
use futures::future::join_all;
use std::collections::HashMap;
use std::sync::Arc;

/// A second delivery that finds the first one stored but not yet applied within this window
/// is a concurrent duplicate; later, it is the retry of an attempt that stopped half-way.
const IN_FLIGHT_WINDOW_SECS: i64 = 120;

/// What happened to one accepted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New: stored and enqueued.
    Accepted,
    /// Seen before: dropped (or, if not yet applied, enqueued again for the FIFO queue to
    /// absorb).
    Duplicate,
    /// Stored by an earlier attempt that stopped before enqueueing: enqueued now.
    Recovered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Recovered => "recovered",
        }
    }
}

/// The inbox and the hand-off queue, used together.
pub struct Intake {
    inbox: Arc<dyn Inbox>,
    queue: Arc<dyn EventQueue>,
}

impl Intake {
    pub fn new(inbox: Arc<dyn Inbox>, queue: Arc<dyn EventQueue>) -> Self {
        Self { inbox, queue }
    }

    /// Stores and enqueues parsed events. One result per event, in order; an `Err` is a
    /// failure to store or enqueue that one event (the sender retries it).
    pub async fn accept<E: SourceEvent>(
        &self,
        events: &[E],
        delivery: &Delivery,
        received_at: DateTime<Utc>,
    ) -> Vec<Result<Outcome, ServiceError>> {
        let mut results: Vec<Option<Result<Outcome, ServiceError>>> = vec![None; events.len()];

        // The same event twice in one batch: keep the first.
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        let mut unique = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            if first_seen.insert(event.content_hash(), i).is_some() {
                results[i] = Some(Ok(Outcome::Duplicate));
            } else {
                unique.push(i);
            }
        }

        let admissions = join_all(
            unique
                .iter()
                .map(|&i| self.inbox.admit(&events[i], delivery, received_at)),
        )
        .await;
        let mut to_send = Vec::new();
        for (&i, admission) in unique.iter().zip(admissions) {
            match admission {
                Ok(Admission::Duplicate) => results[i] = Some(Ok(Outcome::Duplicate)),
                Ok(Admission::New) => to_send.push((i, Outcome::Accepted)),
                Ok(Admission::Unfinished { first_received }) => {
                    let in_flight = first_received
                        .is_some_and(|t| (received_at - t).num_seconds() < IN_FLIGHT_WINDOW_SECS);
                    to_send.push((
                        i,
                        if in_flight {
                            Outcome::Duplicate
                        } else {
                            Outcome::Recovered
                        },
                    ));
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }

        let messages: Vec<QueuedEvent> = to_send
            .iter()
            .map(|&(i, _)| QueuedEvent::new(&events[i], delivery, received_at))
            .collect();
        let sent = if messages.is_empty() {
            Vec::new()
        } else {
            self.queue.enqueue(&messages).await
        };
        for (&(i, outcome), result) in to_send.iter().zip(sent) {
            results[i] = Some(result.map(|()| outcome));
        }

        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(ServiceError::Transient("event was not processed".into())))
            })
            .collect()
    }

    /// Keeps a payload that could not be accepted, for operators.
    pub async fn record_reject(&self, reject: &Reject) -> Result<(), ServiceError> {
        self.inbox.record_reject(reject).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use serde_json::{Value, json};
    use std::sync::Mutex;

    struct Event {
        hash: String,
        payload: Value,
    }

    impl SourceEvent for Event {
        fn content_hash(&self) -> &str {
            &self.hash
        }
        fn entity_key(&self) -> &str {
            "recording:1"
        }
        fn event_name(&self) -> &str {
            "recording_detected"
        }
        fn event_time(&self) -> DateTime<Utc> {
            DateTime::UNIX_EPOCH
        }
        fn format(&self) -> &str {
            "test"
        }
        fn payload(&self) -> &Value {
            &self.payload
        }
    }

    fn event(hash: &str) -> Event {
        Event {
            hash: hash.into(),
            payload: json!({"id": hash}),
        }
    }

    /// `stored`: hash → (applied, first received); `unsendable`: hashes the queue refuses.
    #[derive(Default)]
    struct Memory {
        stored: Mutex<HashMap<String, (bool, DateTime<Utc>)>>,
        unsendable: Vec<String>,
        sent: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Inbox for Memory {
        async fn admit(
            &self,
            event: &dyn SourceEvent,
            _: &Delivery,
            received_at: DateTime<Utc>,
        ) -> Result<Admission, ServiceError> {
            let mut stored = self.stored.lock().unwrap();
            Ok(match stored.get(event.content_hash()) {
                None => {
                    stored.insert(event.content_hash().into(), (false, received_at));
                    Admission::New
                }
                Some((true, _)) => Admission::Duplicate,
                Some((false, first)) => Admission::Unfinished {
                    first_received: Some(*first),
                },
            })
        }
        async fn record_reject(&self, _: &Reject) -> Result<(), ServiceError> {
            Ok(())
        }
    }

    #[async_trait]
    impl EventQueue for Memory {
        async fn enqueue(&self, messages: &[QueuedEvent]) -> Vec<Result<(), ServiceError>> {
            messages
                .iter()
                .map(|m| {
                    if self.unsendable.contains(&m.event_hash) {
                        return Err(ServiceError::Transient("queue unavailable".into()));
                    }
                    self.sent.lock().unwrap().push(m.event_hash.clone());
                    Ok(())
                })
                .collect()
        }
    }

    #[tokio::test]
    async fn duplicates_half_done_attempts_and_failed_sends_are_told_apart() {
        let memory = Arc::new(Memory {
            unsendable: vec!["c".into()],
            ..Memory::default()
        });
        let now = Utc::now();
        {
            let mut stored = memory.stored.lock().unwrap();
            stored.insert("applied".into(), (true, now));
            stored.insert(
                "in-flight".into(),
                (false, now - chrono::TimeDelta::seconds(5)),
            );
            stored.insert(
                "crashed".into(),
                (false, now - chrono::TimeDelta::minutes(10)),
            );
        }
        let intake = Intake::new(memory.clone(), memory.clone());
        let events = ["a", "a", "applied", "in-flight", "crashed", "c"].map(event);
        let results = intake.accept(&events, &Delivery::named("poll"), now).await;
        assert_eq!(
            results,
            [
                Ok(Outcome::Accepted),
                Ok(Outcome::Duplicate),
                Ok(Outcome::Duplicate),
                Ok(Outcome::Duplicate),
                Ok(Outcome::Recovered),
                Err(ServiceError::Transient("queue unavailable".into())),
            ]
        );
        // Sent once each: new, in flight (the FIFO queue absorbs it), crashed (repaired).
        assert_eq!(*memory.sent.lock().unwrap(), ["a", "in-flight", "crashed"]);
    }
}
