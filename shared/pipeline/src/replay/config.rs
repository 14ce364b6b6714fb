//! Configuration of the replay function, read from the environment `template.yaml` sets (the
//! local runner passes the same variables, resolved from the template).

use super::{ConfigError, DynamoInboxWindow, ReplaySettings, Replayer};
use crate::handoff::SqsEventQueue;
use crate::inbox::TIME_SHARDS;
use coursewire_runtime::config::{Env, process_env};
use coursewire_runtime::telemetry::MetricsSink;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub inbox_table: String,
    pub changes_queue_url: String,
    /// DynamoDB Queries in flight per hour read (`REPLAY_QUERY_CONCURRENCY`, default: one per
    /// time shard).
    pub query_concurrency: usize,
    pub settings: ReplaySettings,
}

impl ReplayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Reads the configuration through `get` (the local runner passes a function's resolved
    /// environment without touching the process env).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let count = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
            Ok(env.number_in(name, default as u64, 1..=64)? as usize)
        };
        let defaults = ReplaySettings::default();
        Ok(Self {
            inbox_table: env.required("INBOX_TABLE")?,
            changes_queue_url: env.required("CHANGES_QUEUE_URL")?,
            query_concurrency: count("REPLAY_QUERY_CONCURRENCY", usize::from(TIME_SHARDS))?,
            settings: ReplaySettings {
                send_lanes: count("REPLAY_SEND_CONCURRENCY", defaults.send_lanes)?,
                ..defaults
            },
        })
    }

    /// Builds the replayer on the AWS adapters; build once per process.
    pub fn build(
        &self,
        aws: &aws_config::SdkConfig,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Replayer {
        let window = DynamoInboxWindow::new(
            aws_sdk_dynamodb::Client::new(aws),
            self.inbox_table.clone(),
            self.query_concurrency,
        );
        let queue = SqsEventQueue::new(
            aws_sdk_sqs::Client::new(aws),
            self.changes_queue_url.clone(),
        );
        Replayer::new(
            Arc::new(window),
            Arc::new(queue),
            self.settings,
            metrics,
            function,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coursewire_runtime::config::lookup;

    #[test]
    fn requires_table_and_queue_and_reads_defaults() {
        let err = ReplayConfig::from_lookup(lookup(&[("INBOX_TABLE", "inbox")])).unwrap_err();
        assert!(err.to_string().contains("CHANGES_QUEUE_URL"), "{err}");
        let config =
            ReplayConfig::from_lookup(lookup(&[("INBOX_TABLE", "i"), ("CHANGES_QUEUE_URL", "q")]))
                .unwrap();
        assert_eq!(config.query_concurrency, 8);
        assert_eq!(config.settings, ReplaySettings::default());
    }

    #[test]
    fn rejects_bad_concurrency_by_name() {
        let err = ReplayConfig::from_lookup(lookup(&[
            ("INBOX_TABLE", "i"),
            ("CHANGES_QUEUE_URL", "q"),
            ("REPLAY_SEND_CONCURRENCY", "0"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("REPLAY_SEND_CONCURRENCY"), "{err}");
    }
}
