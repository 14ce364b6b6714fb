//! Configuration of the Canvas processor function (the catalog model), from the environment
//! `template.yaml` sets.

use super::{CatalogModel, EntityRecord};
use coursewire_pipeline::bus::{EventBridgePublisher, Producer};
use coursewire_pipeline::processor::{DynamoLedger, Processor};
use coursewire_runtime::config::{ConfigError, Env, process_env};
use coursewire_runtime::telemetry::MetricsSink;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorConfig {
    pub catalog_table: String,
    pub inbox_table: String,
    pub event_bus_name: String,
}

impl ProcessorConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Reads the configuration through `get` (the local runner passes the function's
    /// environment resolved from `template.yaml`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        Ok(Self {
            catalog_table: env.required("CATALOG_TABLE")?,
            inbox_table: env.required("INBOX_TABLE")?,
            event_bus_name: env.required("EVENT_BUS_NAME")?,
        })
    }

    /// Builds the processor on the AWS adapters; once per process.
    pub fn build(
        &self,
        aws: &aws_config::SdkConfig,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Processor<CatalogModel> {
        let ledger = DynamoLedger::<EntityRecord>::new(
            aws_sdk_dynamodb::Client::new(aws),
            self.catalog_table.clone(),
            self.inbox_table.clone(),
        );
        let publisher = EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(aws),
            self.event_bus_name.clone(),
            Producer::CANVAS,
        );
        Processor::new(
            CatalogModel,
            Arc::new(ledger),
            Arc::new(publisher),
            metrics,
            function,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_variable() {
        let err = ProcessorConfig::from_lookup(|name| {
            (name == "CATALOG_TABLE").then(|| "catalog".to_string())
        })
        .unwrap_err();
        assert!(err.to_string().contains("INBOX_TABLE"), "{err}");
    }
}
