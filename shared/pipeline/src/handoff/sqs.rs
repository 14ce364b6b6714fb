//! SQS FIFO adapter for `changes.fifo`.

use super::{EventQueue, QueuedEvent};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use coursewire_runtime::aws::classify;
use coursewire_runtime::service::ServiceError;

/// SQS limits: 10 entries and 256 KiB of bodies per SendMessageBatch.
const MAX_ENTRIES: usize = 10;
const MAX_BATCH_BYTES: usize = 256 * 1024;

pub struct SqsEventQueue {
    client: Client,
    queue_url: String,
}

impl SqsEventQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    async fn send_chunk(
        &self,
        chunk: &[(usize, String, &QueuedEvent)],
        results: &mut [Result<(), ServiceError>],
    ) {
        let mut entries = Vec::with_capacity(chunk.len());
        for (index, body, message) in chunk {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .message_body(body)
                .message_group_id(&message.entity_key)
                .message_deduplication_id(message.deduplication_id())
                .build();
            match entry {
                Ok(entry) => entries.push(entry),
                Err(e) => results[*index] = Err(ServiceError::Permanent(e.to_string())),
            }
        }
        if entries.is_empty() {
            return;
        }
        let sent = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        match sent {
            Ok(out) => {
                for failed in out.failed() {
                    if let Ok(index) = failed.id().parse::<usize>() {
                        let text = format!("{}: {}", failed.code(), failed.message().unwrap_or(""));
                        results[index] = Err(if failed.sender_fault() {
                            ServiceError::Permanent(text)
                        } else {
                            ServiceError::Transient(text)
                        });
                    }
                }
            }
            Err(err) => {
                let error = classify(&err);
                for (index, _, _) in chunk {
                    results[*index] = Err(error.clone());
                }
            }
        }
    }
}

#[async_trait]
impl EventQueue for SqsEventQueue {
    async fn enqueue(&self, messages: &[QueuedEvent]) -> Vec<Result<(), ServiceError>> {
        let mut results: Vec<Result<(), ServiceError>> = vec![Ok(()); messages.len()];
        let mut chunk: Vec<(usize, String, &QueuedEvent)> = Vec::with_capacity(MAX_ENTRIES);
        let mut chunk_bytes = 0;
        for (index, message) in messages.iter().enumerate() {
            let body = match serde_json::to_string(message) {
                Ok(body) => body,
                Err(e) => {
                    results[index] = Err(ServiceError::Permanent(e.to_string()));
                    continue;
                }
            };
            if chunk.len() == MAX_ENTRIES
                || (chunk_bytes + body.len() > MAX_BATCH_BYTES && !chunk.is_empty())
            {
                self.send_chunk(&chunk, &mut results).await;
                chunk.clear();
                chunk_bytes = 0;
            }
            chunk_bytes += body.len();
            chunk.push((index, body, message));
        }
        if !chunk.is_empty() {
            self.send_chunk(&chunk, &mut results).await;
        }
        results
    }
}
