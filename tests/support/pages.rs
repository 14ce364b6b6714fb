//! The pages an on-call integration receives: a queue subscribed to an SNS topic, read back
//! as (SNS subject, message JSON, `kind` attribute).

use crate::Harness;
use anyhow::{Context, Result};
use serde_json::Value;
use std::time::Duration;

/// A queue subscribed to `topic_arn` (raw SNS envelopes), as the on-call rota's would be.
pub async fn subscribe(h: &Harness, topic_arn: &str) -> Result<String> {
    let queue = h
        .sqs
        .create_queue()
        .queue_name(format!("{}-pages", h.stage))
        .send()
        .await?
        .queue_url
        .context("no queue url")?;
    let queue_arn = h
        .sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .context("no queue ARN")?;
    aws_sdk_sns::Client::new(&h.stack.aws)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await?;
    Ok(queue)
}

/// The pages on the subscribed queue so far (each read once): (SNS subject, message JSON, kind attribute).
pub async fn received(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
) -> Result<Vec<(String, Value, String)>> {
    let mut out = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(out);
        }
        for m in messages {
            let envelope: Value = serde_json::from_str(m.body().unwrap_or_default())?;
            let message: Value = serde_json::from_str(
                envelope["Message"]
                    .as_str()
                    .context("an SNS envelope without Message")?,
            )?;
            out.push((
                envelope["Subject"].as_str().unwrap_or_default().to_string(),
                message,
                envelope["MessageAttributes"]["kind"]["Value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
    }
}

/// Every page that arrives: waits for the first, then long enough for a duplicate to show.
pub async fn after_waiting(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
) -> Result<Vec<(String, Value, String)>> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.extend(received(sqs, queue).await?);
        if !seen.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            seen.extend(received(sqs, queue).await?);
            return Ok(seen);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("no page reached the subscribed queue in 10 s")
}
