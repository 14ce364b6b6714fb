//! Runs a [`Description`] under the Lambda runtime: clients built once at start, then every
//! event handed to the trigger it is for.

use super::{Description, Handlers, Setup, queue};
use crate::config::process_env;
use crate::telemetry::{self, StdoutEmf};
use aws_lambda_events::event::sqs::SqsEvent;
pub use lambda_runtime::Error;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;

/// The whole life of a function process: tracing, AWS config and the function's handlers
/// (once), then the runtime loop. A function with an HTTP handler serves its function URL;
/// any other takes JSON events (SQS batches, schedules, direct invocations).
pub async fn run(description: &'static Description) -> Result<(), Error> {
    telemetry::init_tracing();
    let aws = aws_config::load_from_env().await;
    let env = |name: &str| process_env(name);
    let setup = Setup {
        name: description.binary,
        aws: &aws,
        metrics: Arc::new(StdoutEmf),
        env: &env,
        clock: Arc::new(crate::clock::SystemClock),
    };
    let handlers = (description.build)(&setup).await?;
    if let Some(http) = handlers.http.clone() {
        return lambda_http::run(lambda_http::service_fn(
            move |request: lambda_http::Request| {
                let http = http.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = match body {
                        lambda_http::Body::Text(text) => bytes::Bytes::from(text),
                        lambda_http::Body::Binary(binary) => bytes::Bytes::from(binary),
                        _ => bytes::Bytes::new(),
                    };
                    let response = http.handle(http::Request::from_parts(parts, body)).await;
                    Ok::<_, Error>(response.map(lambda_http::Body::Text))
                }
            },
        ))
        .await;
    }
    if let (Some(handler), None, None) = (&handlers.queue, &handlers.schedule, &handlers.invoke) {
        // Queue-only functions take Lambda's SQS event straight from the runtime.
        let handler = handler.clone();
        return lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
            let handler = handler.clone();
            async move { queue::handle_sqs(handler.as_ref(), event.payload).await }
        }))
        .await;
    }
    let handlers = Arc::new(handlers);
    let name = description.binary;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let handlers = handlers.clone();
        async move { dispatch(name, &handlers, event.payload).await }
    }))
    .await
}

/// Which trigger an event is for: an SQS batch, EventBridge's scheduled event, or else a
/// direct invocation (a schedule with an `Input` delivers that input, which the function's
/// invoke handler, or its schedule handler, takes).
async fn dispatch(function: &str, handlers: &Handlers, event: Value) -> Result<Value, Error> {
    let is_sqs = event
        .pointer("/Records/0/eventSource")
        .and_then(Value::as_str)
        == Some("aws:sqs");
    if is_sqs && let Some(handler) = &handlers.queue {
        let event: SqsEvent = serde_json::from_value(event)?;
        let response = queue::handle_sqs(handler.as_ref(), event).await?;
        return Ok(serde_json::to_value(response)?);
    }
    let scheduled = event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
    match (&handlers.schedule, &handlers.invoke) {
        (Some(handler), _) if scheduled => handler.handle(None).await.map(|()| Value::Null),
        (_, Some(handler)) => handler.invoke(event).await,
        (Some(handler), None) => handler.handle(Some(event)).await.map(|()| Value::Null),
        (None, None) => Err(format!("{function} does not take this kind of event").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::function::{
        BatchOutcome, HandlerError, InvokeHandler, QueueHandler, QueueMessage, ScheduleHandler,
    };
    use async_trait::async_trait;
    use serde_json::json;
    use std::sync::Mutex;

    /// Records which trigger each event reached.
    #[derive(Default)]
    struct Triggers(Mutex<Vec<String>>);

    #[async_trait]
    impl QueueHandler for Triggers {
        async fn handle(&self, batch: Vec<QueueMessage>) -> Result<BatchOutcome, HandlerError> {
            self.0
                .lock()
                .unwrap()
                .push(format!("queue {}", batch.len()));
            Ok(BatchOutcome {
                failed: vec![batch[0].id.clone()],
            })
        }
    }

    #[async_trait]
    impl ScheduleHandler for Triggers {
        async fn handle(&self, input: Option<Value>) -> Result<(), HandlerError> {
            self.0.lock().unwrap().push(format!("schedule {input:?}"));
            Ok(())
        }
    }

    #[async_trait]
    impl InvokeHandler for Triggers {
        async fn invoke(&self, event: Value) -> Result<Value, HandlerError> {
            self.0.lock().unwrap().push(format!("invoke {event}"));
            Ok(json!({"ok": true}))
        }
    }

    fn sqs_event() -> Value {
        json!({"Records": [{"messageId": "m-1", "body": "{}", "eventSource": "aws:sqs",
                            "messageAttributes": {}, "attributes": {}}]})
    }

    #[tokio::test]
    async fn each_event_reaches_its_trigger() {
        let triggers = Arc::new(Triggers::default());
        let all = Handlers {
            queue: Some(triggers.clone()),
            schedule: Some(triggers.clone()),
            invoke: Some(triggers.clone()),
            http: None,
        };
        let answer = dispatch("f", &all, sqs_event()).await.unwrap();
        assert_eq!(answer["batchItemFailures"][0]["itemIdentifier"], "m-1");
        let scheduled =
            json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        dispatch("f", &all, scheduled).await.unwrap();
        let answer = dispatch("f", &all, json!({"course_id": "1"}))
            .await
            .unwrap();
        assert_eq!(answer, json!({"ok": true}));

        // A schedule's `Input` arrives as the event: without an invoke handler, the schedule
        // handler takes it.
        let schedule_only = Handlers {
            schedule: Some(triggers.clone()),
            ..Handlers::default()
        };
        dispatch("f", &schedule_only, json!({"all_courses": true}))
            .await
            .unwrap();
        let err = dispatch("f", &Handlers::default(), json!({}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("f does not take"), "{err}");
        assert_eq!(
            *triggers.0.lock().unwrap(),
            [
                "queue 1".to_string(),
                "schedule None".into(),
                r#"invoke {"course_id":"1"}"#.into(),
                r#"schedule Some(Object {"all_courses": Bool(true)})"#.into(),
            ]
        );
    }
}
