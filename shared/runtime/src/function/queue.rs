//! Queue batches in domain terms, and the one adapter from Lambda's SQS event types.

use super::handlers::{HandlerError, QueueHandler};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use std::collections::BTreeMap;

/// One queue message as a handler sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueMessage {
    /// The queue's message id: what a partial batch failure names.
    pub id: String,
    pub body: String,
    /// String message attributes (Canvas's `event_name`, `event_time`).
    pub attributes: BTreeMap<String, String>,
}

impl QueueMessage {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

/// What became of a batch: the ids of the messages to deliver again (the rest are done).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub failed: Vec<String>,
}

impl BatchOutcome {
    pub fn fail(&mut self, message_id: impl Into<String>) {
        self.failed.push(message_id.into());
    }
}

/// Lambda's SQS event as a batch; a message without an id is named by its position.
pub fn from_sqs(event: SqsEvent) -> Vec<QueueMessage> {
    event
        .records
        .into_iter()
        .enumerate()
        .map(|(index, record)| QueueMessage {
            id: record.message_id.unwrap_or_else(|| index.to_string()),
            body: record.body.unwrap_or_default(),
            attributes: record
                .message_attributes
                .into_iter()
                .filter_map(|(name, value)| Some((name, value.string_value?)))
                .collect(),
        })
        .collect()
}

/// A batch outcome as Lambda's partial batch response (`ReportBatchItemFailures`).
pub fn to_sqs(outcome: BatchOutcome) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = outcome
        .failed
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// Runs an SQS event through a queue handler, as Lambda's event source mapping does.
pub async fn handle_sqs(
    handler: &dyn QueueHandler,
    event: SqsEvent,
) -> Result<SqsBatchResponse, HandlerError> {
    Ok(to_sqs(handler.handle(from_sqs(event)).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};

    #[test]
    fn an_sqs_event_becomes_a_batch_and_failures_a_partial_response() {
        let mut with_attribute = SqsMessage::default();
        with_attribute.message_id = Some("m-1".into());
        with_attribute.body = Some("{}".into());
        let mut attribute = SqsMessageAttribute::default();
        attribute.string_value = Some("course_updated".into());
        attribute.data_type = Some("String".into());
        with_attribute
            .message_attributes
            .insert("event_name".into(), attribute);
        let mut event = SqsEvent::default();
        event.records = vec![with_attribute, SqsMessage::default()];

        let batch = from_sqs(event);
        assert_eq!(batch[0].id, "m-1");
        assert_eq!(batch[0].attribute("event_name"), Some("course_updated"));
        assert_eq!(batch[1].id, "1", "no id: named by position");
        assert_eq!(batch[1].body, "");

        let response = to_sqs(BatchOutcome {
            failed: vec!["m-1".into()],
        });
        let ids: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["m-1"]);
    }
}
