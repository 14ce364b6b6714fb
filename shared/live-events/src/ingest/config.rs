//! Configuration of the ingest functions, read from the environment that `template.yaml`
//! sets (the local runner passes the very same variables, resolved from the template).

use super::{IngestSettings, Ingestor};
use crate::jwt::{EventVerifier, HttpJwksSource, KeyCache, KeyCacheSettings};
use coursewire_pipeline::handoff::SqsEventQueue;
use coursewire_pipeline::inbox::DynamoInbox;
use coursewire_runtime::config::{ConfigError, Env, process_env};
use coursewire_runtime::telemetry::MetricsSink;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub inbox_table: String,
    pub changes_queue_url: String,
    /// Canvas's JWKS URL; without it signed events cannot be verified.
    pub jwks_url: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_leeway_secs: u64,
    pub jwks_min_refetch: Duration,
    pub jwks_max_age: Duration,
    pub jwks_fetch_timeout: Duration,
    pub settings: IngestSettings,
    pub inbox_retention: Duration,
    pub reject_retention: Duration,
}

const DAY: u64 = 86_400;

impl IngestConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Reads the configuration through `get`, so the local runner can pass the resolved
    /// environment of a function from `template.yaml` without touching the process env.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let config = Self {
            inbox_table: env.required("INBOX_TABLE")?,
            changes_queue_url: env.required("CHANGES_QUEUE_URL")?,
            jwks_url: env.optional("CANVAS_JWKS_URL"),
            jwt_issuer: env.optional("CANVAS_JWT_ISSUER"),
            jwt_leeway_secs: env.number("JWT_LEEWAY_SECONDS", 60)?,
            jwks_min_refetch: Duration::from_secs(env.number("JWKS_MIN_REFETCH_SECONDS", 300)?),
            jwks_max_age: Duration::from_secs(env.number("JWKS_MAX_AGE_SECONDS", 3600)?),
            jwks_fetch_timeout: Duration::from_millis(env.number("JWKS_FETCH_TIMEOUT_MS", 3000)?),
            settings: IngestSettings {
                allow_unsigned: env.flag("ALLOW_UNSIGNED_EVENTS")?,
                max_event_bytes: env.number("MAX_EVENT_BYTES", 256 * 1024)? as usize,
            },
            inbox_retention: Duration::from_secs(env.number("INBOX_RETENTION_DAYS", 400)? * DAY),
            reject_retention: Duration::from_secs(env.number("REJECT_RETENTION_DAYS", 30)? * DAY),
        };
        if config.jwks_url.is_some() && config.jwt_issuer.is_none() {
            return Err(ConfigError::Missing("CANVAS_JWT_ISSUER"));
        }
        Ok(config)
    }

    /// The verifier for signed events, when a JWKS URL is configured.
    pub fn verifier(&self) -> Result<Option<Arc<EventVerifier>>, ConfigError> {
        let (Some(url), Some(issuer)) = (&self.jwks_url, &self.jwt_issuer) else {
            return Ok(None);
        };
        let source = HttpJwksSource::new(url.clone(), self.jwks_fetch_timeout).map_err(|e| {
            ConfigError::Invalid {
                name: "CANVAS_JWKS_URL",
                reason: e.to_string(),
            }
        })?;
        let cache = KeyCache::new(
            Arc::new(source),
            KeyCacheSettings {
                min_refetch: self.jwks_min_refetch,
                max_age: self.jwks_max_age,
            },
        );
        Ok(Some(Arc::new(EventVerifier::new(
            Arc::new(cache),
            issuer,
            self.jwt_leeway_secs,
        ))))
    }

    /// Builds the ingestor on the AWS adapters. Build it once per process (Lambda reuses it
    /// across invocations; the JWKS cache lives in it).
    pub fn build(
        &self,
        aws: &aws_config::SdkConfig,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Result<Ingestor, ConfigError> {
        let inbox = DynamoInbox::new(
            aws_sdk_dynamodb::Client::new(aws),
            self.inbox_table.clone(),
            self.inbox_retention,
            self.reject_retention,
        );
        let queue = SqsEventQueue::new(
            aws_sdk_sqs::Client::new(aws),
            self.changes_queue_url.clone(),
        );
        Ok(Ingestor::new(
            Arc::new(inbox),
            Arc::new(queue),
            self.verifier()?,
            self.settings,
            metrics,
            function,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coursewire_runtime::config::lookup;

    #[test]
    fn requires_table_and_queue() {
        let err = IngestConfig::from_lookup(lookup(&[("CHANGES_QUEUE_URL", "q")])).unwrap_err();
        assert!(err.to_string().contains("INBOX_TABLE"), "{err}");
    }

    #[test]
    fn reads_values_and_defaults() {
        let config = IngestConfig::from_lookup(lookup(&[
            ("INBOX_TABLE", "inbox"),
            ("CHANGES_QUEUE_URL", "q"),
            ("CANVAS_JWKS_URL", "http://127.0.0.1/jwks"),
            ("CANVAS_JWT_ISSUER", "canvas"),
            ("ALLOW_UNSIGNED_EVENTS", "false"),
            ("MAX_EVENT_BYTES", "1000"),
        ]))
        .unwrap();
        assert_eq!(config.settings.max_event_bytes, 1000);
        assert!(!config.settings.allow_unsigned);
        assert_eq!(config.jwks_min_refetch, Duration::from_secs(300));
        assert!(config.verifier().unwrap().is_some());
    }

    #[test]
    fn rejects_bad_values_by_name() {
        let err = IngestConfig::from_lookup(lookup(&[
            ("INBOX_TABLE", "inbox"),
            ("CHANGES_QUEUE_URL", "q"),
            ("ALLOW_UNSIGNED_EVENTS", "maybe"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("ALLOW_UNSIGNED_EVENTS"), "{err}");
        let err = IngestConfig::from_lookup(lookup(&[
            ("INBOX_TABLE", "i"),
            ("CHANGES_QUEUE_URL", "q"),
            ("CANVAS_JWKS_URL", "u"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("CANVAS_JWT_ISSUER"), "{err}");
    }
}
