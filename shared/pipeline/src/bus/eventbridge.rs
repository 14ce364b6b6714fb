//! EventBridge adapter: PutEvents in chunks of at most 10 entries / 256 KiB, retrying only
//! the entries EventBridge reports as failed (`FailedEntryCount` > 0).

use super::{BusEntry, EventPublisher, Producer};
use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use coursewire_runtime::aws::classify;
use coursewire_runtime::service::ServiceError;
use std::time::Duration;

const MAX_ENTRIES: usize = 10;
const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// Attempts per entry within one invocation (the SQS retry takes over after that).
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Entry error codes that will not go away by retrying.
const PERMANENT_CODES: [&str; 3] = [
    "MalformedDetail",
    "InvalidArgument",
    "NotAuthorizedForSourceException",
];

pub struct EventBridgePublisher {
    client: Client,
    bus_name: String,
    producer: Producer,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus_name: impl Into<String>, producer: Producer) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
            producer,
        }
    }

    /// EventBridge's entry-size rule: source, detail-type and detail bytes plus 14 for time.
    fn entry_size(&self, entry: &BusEntry) -> usize {
        self.producer.source().len() + entry.detail_type.len() + entry.detail.len() + 14
    }

    /// Sends one chunk; returns, per chunk entry, `None` on success or the error.
    async fn put(&self, chunk: &[(usize, PutEventsRequestEntry)]) -> Vec<Option<ServiceError>> {
        let entries: Vec<PutEventsRequestEntry> = chunk.iter().map(|(_, e)| e.clone()).collect();
        match self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                let results = out.entries();
                (0..chunk.len())
                    .map(|i| match results.get(i) {
                        Some(result) if result.event_id().is_some() => None,
                        Some(result) => {
                            let code = result.error_code().unwrap_or("Unknown");
                            let text = format!("{code}: {}", result.error_message().unwrap_or(""));
                            Some(if PERMANENT_CODES.contains(&code) {
                                ServiceError::Permanent(text)
                            } else {
                                ServiceError::Transient(text)
                            })
                        }
                        // Fewer results than entries: treat the missing ones as failed.
                        None => Some(ServiceError::Transient("no result for entry".into())),
                    })
                    .collect()
            }
            Err(err) => vec![Some(classify(&err)); chunk.len()],
        }
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, entries: &[BusEntry]) -> Vec<Result<(), ServiceError>> {
        let mut results: Vec<Result<(), ServiceError>> = vec![Ok(()); entries.len()];
        let mut pending: Vec<(usize, PutEventsRequestEntry, usize)> = Vec::new();
        for (index, bus_entry) in entries.iter().enumerate() {
            let size = self.entry_size(bus_entry);
            if size > MAX_REQUEST_BYTES {
                results[index] = Err(ServiceError::Permanent(format!(
                    "event of {size} bytes exceeds EventBridge's 256 KiB entry limit"
                )));
                continue;
            }
            let entry = PutEventsRequestEntry::builder()
                .event_bus_name(&self.bus_name)
                .source(self.producer.source())
                .detail_type(&bus_entry.detail_type)
                .detail(&bus_entry.detail)
                .build();
            pending.push((index, entry, size));
        }

        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let mut failed = Vec::new();
            let mut start = 0;
            while start < pending.len() {
                // Chunk by count and bytes.
                let mut end = start;
                let mut bytes = 0;
                while end < pending.len()
                    && end - start < MAX_ENTRIES
                    && bytes + pending[end].2 <= MAX_REQUEST_BYTES
                {
                    bytes += pending[end].2;
                    end += 1;
                }
                let chunk: Vec<(usize, PutEventsRequestEntry)> = pending[start..end]
                    .iter()
                    .map(|(i, e, _)| (*i, e.clone()))
                    .collect();
                for ((index, entry, size), outcome) in
                    pending[start..end].iter().zip(self.put(&chunk).await)
                {
                    match outcome {
                        None => results[*index] = Ok(()),
                        Some(error) => {
                            let retry = error.is_transient() && attempt < ATTEMPTS;
                            results[*index] = Err(error);
                            if retry {
                                failed.push((*index, entry.clone(), *size));
                            }
                        }
                    }
                }
                start = end;
            }
            if failed.is_empty() {
                break;
            }
            tracing::warn!(
                failed = failed.len(),
                attempt,
                "PutEvents: entries failed, retrying those"
            );
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            pending = failed;
        }
        results
    }
}
