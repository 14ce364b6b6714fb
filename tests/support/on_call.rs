//! On call's view of the template's alarms in a test: a queue subscribed to `AlarmTopic`,
//! every alarm evaluated on the local stack when the test says, and the messages CloudWatch
//! would have sent, read back in the order of the evaluation clock.

use crate::{Harness, pages};
use anyhow::{Context, Result, ensure};
use chrono::{DateTime, Utc};
use coursewire_local::alarms::{State, Transition};
use serde_json::Value;
use std::time::Duration;

pub struct OnCall {
    pub topic: String,
    queue: String,
    /// Every state change so far, in evaluation order.
    pub transitions: Vec<Transition>,
}

impl OnCall {
    /// Subscribes a queue to the stack's `AlarmTopic`, as the on-call rota's pager would be.
    pub async fn subscribe(h: &Harness) -> Result<Self> {
        let topic = h
            .stack
            .deployed
            .ref_value("AlarmTopic")
            .context("no AlarmTopic")?
            .to_string();
        let queue = pages::subscribe(h, &topic).await?;
        Ok(Self {
            topic,
            queue,
            transitions: Vec::new(),
        })
    }

    /// Evaluates every alarm at `at`; each state change must reach its topics.
    pub async fn evaluate(&mut self, h: &Harness, at: DateTime<Utc>) -> Result<Vec<Transition>> {
        let transitions = h.stack.evaluate_alarms(at).await?;
        for t in &transitions {
            ensure!(
                t.undeliverable.is_empty(),
                "{} could not be delivered to {:?}",
                t.alarm,
                t.undeliverable
            );
        }
        self.transitions.extend(transitions.clone());
        Ok(transitions)
    }

    /// Evaluates at `at` and checks that each `(alarm, state)` changed to that state.
    pub async fn expect(
        &mut self,
        h: &Harness,
        at: DateTime<Utc>,
        expected: &[(&str, State)],
    ) -> Result<Vec<Transition>> {
        let transitions = self.evaluate(h, at).await?;
        for (alarm, state) in expected {
            ensure!(
                states_of(&transitions, alarm) == [*state],
                "{alarm}: {:?} in {transitions:?}",
                states_of(&transitions, alarm)
            );
        }
        Ok(transitions)
    }

    /// [`OnCall::expect`] at the metrics' "now" ([`LocalStack::metrics_now`]).
    ///
    /// [`LocalStack::metrics_now`]: coursewire_local::stack::LocalStack::metrics_now
    pub async fn expect_now(
        &mut self,
        h: &Harness,
        expected: &[(&str, State)],
    ) -> Result<Vec<Transition>> {
        self.expect(h, h.stack.metrics_now(), expected).await
    }

    /// The alarm messages on the subscribed queue (each read once), in the order of their
    /// `StateChangeTime`: waits until one has arrived for every delivered state change.
    pub async fn messages(&self, h: &Harness) -> Result<Vec<Value>> {
        let delivered = self
            .transitions
            .iter()
            .filter(|t| !t.delivered.is_empty())
            .count();
        let mut messages: Vec<Value> = Vec::new();
        for _ in 0..50 {
            let received = pages::received(&h.sqs, &self.queue).await?;
            messages.extend(received.into_iter().map(|(_, m, _)| m));
            if messages.len() >= delivered {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // SQS does not keep order: the evaluation clock does.
        messages.sort_by(|a, b| {
            a["StateChangeTime"]
                .as_str()
                .cmp(&b["StateChangeTime"].as_str())
        });
        Ok(messages)
    }

    /// Waits briefly and returns whatever alarm messages arrived.
    pub async fn pending(&self, h: &Harness) -> Result<Vec<(String, Value, String)>> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        pages::received(&h.sqs, &self.queue).await
    }
}

/// The new states `alarm` (its name's suffix) went through, in order.
pub fn states_of(transitions: &[Transition], alarm: &str) -> Vec<State> {
    transitions
        .iter()
        .filter(|t| t.alarm.ends_with(alarm))
        .map(|t| t.to)
        .collect()
}

/// The `NewStateValue`s of the alarm messages for `alarm`.
pub fn messages_of(messages: &[Value], alarm: &str) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m["AlarmName"].as_str().is_some_and(|n| n.ends_with(alarm)))
        .map(|m| m["NewStateValue"].as_str().unwrap_or_default().to_string())
        .collect()
}
