//! Configuration of the reconciler function, read from the environment `template.yaml` sets.

use super::{DynamoCatalogView, IngestSink, ReconcileSettings, Reconciler, SqsCourseQueue};
use crate::canvas::{CanvasConfig, CanvasError};
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_live_events::ingest::IngestConfig;
use coursewire_runtime::config::{ConfigError, Env, process_env};
use coursewire_runtime::telemetry::MetricsSink;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    pub catalog_table: String,
    /// Its own fan-out queue (`RECONCILE_QUEUE_URL`).
    pub reconcile_queue_url: String,
    /// The ingestion path drift events take (`INBOX_TABLE`, `CHANGES_QUEUE_URL`).
    pub ingest: IngestConfig,
    pub canvas: CanvasConfig,
    pub settings: ReconcileSettings,
}

impl ReconcilerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&get);
        Ok(Self {
            catalog_table: env.required("CATALOG_TABLE")?,
            reconcile_queue_url: env.required("RECONCILE_QUEUE_URL")?,
            settings: ReconcileSettings {
                account_id: env.required("CANVAS_ACCOUNT_ID")?,
                root_account_id: env.optional("CANVAS_ROOT_ACCOUNT_ID"),
            },
            ingest: IngestConfig::from_lookup(&get)?,
            canvas: CanvasConfig::from_lookup(&get)?,
        })
    }

    /// Builds the reconciler on the AWS and Canvas adapters; build once per process.
    pub fn build(
        &self,
        aws: &aws_config::SdkConfig,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Result<Reconciler, ReconcilerBuildError> {
        let canvas = self.canvas.build(aws, metrics.clone(), function)?;
        let ingestor = self.ingest.build(aws, metrics.clone(), function)?;
        let catalog = DynamoCatalog::new(aws_sdk_dynamodb::Client::new(aws), &self.catalog_table);
        let fanout = SqsCourseQueue::new(
            aws_sdk_sqs::Client::new(aws),
            self.reconcile_queue_url.clone(),
        );
        Ok(Reconciler::new(
            Arc::new(canvas),
            Arc::new(DynamoCatalogView(catalog)),
            Arc::new(IngestSink::new(
                Arc::new(ingestor),
                metrics.clone(),
                function,
            )),
            Arc::new(fanout),
            self.settings.clone(),
            metrics,
            function,
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcilerBuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Canvas(#[from] CanvasError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use coursewire_runtime::config::lookup;

    const FULL: &[(&str, &str)] = &[
        ("CATALOG_TABLE", "catalog"),
        ("RECONCILE_QUEUE_URL", "reconcile"),
        ("INBOX_TABLE", "inbox"),
        ("CHANGES_QUEUE_URL", "changes"),
        ("RATE_LIMIT_TABLE", "limits"),
        ("CANVAS_SECRET_ID", "coursewire/dev/canvas"),
        ("CANVAS_ACCOUNT_ID", "1"),
    ];

    #[test]
    fn reads_every_part_and_names_what_is_missing() {
        let config = ReconcilerConfig::from_lookup(lookup(FULL)).unwrap();
        assert_eq!(config.settings.account_id, "1");
        assert_eq!(config.settings.root_account_id, None);
        for (name, _) in FULL {
            let without: Vec<(&str, &str)> =
                FULL.iter().copied().filter(|(n, _)| n != name).collect();
            let err = ReconcilerConfig::from_lookup(lookup(&without)).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }
}
