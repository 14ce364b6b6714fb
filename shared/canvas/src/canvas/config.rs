//! Configuration of the Canvas client and the token keeper, read from the environment
//! `template.yaml` sets. Credentials are never in the environment: only the secret's id.

use super::{
    CanvasClient, CanvasError, DynamoBudgetStore, HttpSettings, HttpTokenEndpoint, Quota,
    QuotaSettings, SecretsManagerStore, TokenKeeper, TokenSettings, TokenSource,
};
use coursewire_runtime::config::{ConfigError, Env, process_env};
use coursewire_runtime::telemetry::MetricsSink;
use std::sync::Arc;
use std::time::Duration;

/// The token endpoint's own timeout (it is not rate limited and answers quickly).
const TOKEN_ENDPOINT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub struct CanvasConfig {
    /// Secrets Manager secret holding the grant's [`super::Credentials`] (`CANVAS_SECRET_ID`).
    pub secret_id: String,
    /// DynamoDB table of the shared rate budget (`RATE_LIMIT_TABLE`).
    pub rate_limit_table: String,
    /// Names the grant's budget item (`CANVAS_BUDGET_ID`, default: the secret id).
    pub budget_id: String,
    pub http: HttpSettings,
    pub quota: QuotaSettings,
    pub tokens: TokenSettings,
}

impl CanvasConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Reads the configuration through `get` (the local runner passes a function's resolved
    /// environment without touching the process env).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let secret_id = env.required("CANVAS_SECRET_ID")?;
        let quota_defaults = QuotaSettings::default();
        Ok(Self {
            rate_limit_table: env.required("RATE_LIMIT_TABLE")?,
            budget_id: env
                .optional("CANVAS_BUDGET_ID")
                .unwrap_or_else(|| secret_id.clone()),
            secret_id,
            http: HttpSettings::from_env(&env, "CANVAS_REQUEST_TIMEOUT_MS", "CANVAS_MAX_ATTEMPTS")?,
            quota: QuotaSettings {
                outflow_per_sec: env.number_in(
                    "CANVAS_OUTFLOW_PER_SEC",
                    quota_defaults.outflow_per_sec as u64,
                    1..=1_000_000,
                )? as f64,
                high_water: env.number_in(
                    "CANVAS_HIGH_WATER",
                    quota_defaults.high_water as u64,
                    200..=1_000_000,
                )? as f64,
                max_concurrency: env.number_in(
                    "CANVAS_MAX_CONCURRENCY",
                    quota_defaults.max_concurrency as u64,
                    1..=64,
                )? as usize,
                ..quota_defaults
            },
            tokens: TokenSettings::default(),
        })
    }

    /// Builds the client on the AWS adapters; build once per process.
    pub fn build(
        &self,
        aws: &aws_config::SdkConfig,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Result<CanvasClient, CanvasError> {
        let tokens = token_source(
            aws,
            &self.secret_id,
            self.tokens.clone(),
            metrics.clone(),
            function,
        )?;
        let store = DynamoBudgetStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            self.rate_limit_table.clone(),
        );
        let quota = Quota::new(Arc::new(store), self.quota.clone(), &self.budget_id);
        CanvasClient::new(
            self.http.clone(),
            Arc::new(tokens),
            Arc::new(quota),
            metrics,
            function,
        )
    }
}

fn token_source(
    aws: &aws_config::SdkConfig,
    secret_id: &str,
    settings: TokenSettings,
    metrics: Arc<dyn MetricsSink>,
    function: &str,
) -> Result<TokenSource, CanvasError> {
    let store = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(aws), secret_id);
    let endpoint = HttpTokenEndpoint::new(TOKEN_ENDPOINT_TIMEOUT)?;
    Ok(TokenSource::new(
        Arc::new(store),
        Arc::new(endpoint),
        settings,
        metrics,
        function,
    ))
}

/// The `token-keeper` function's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenKeeperConfig {
    /// `CANVAS_SECRET_ID`.
    pub secret_id: String,
    /// Refresh when the token expires within this (`CANVAS_TOKEN_REFRESH_WINDOW_SECS`,
    /// default 900: a keeper scheduled every 5 minutes gets three tries before expiry).
    pub refresh_window: Duration,
    pub tokens: TokenSettings,
}

impl TokenKeeperConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        Ok(Self {
            secret_id: env.required("CANVAS_SECRET_ID")?,
            refresh_window: Duration::from_secs(env.number_in(
                "CANVAS_TOKEN_REFRESH_WINDOW_SECS",
                900,
                60..=3000,
            )?),
            tokens: TokenSettings::default(),
        })
    }

    pub fn build(
        &self,
        aws: &aws_config::SdkConfig,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Result<TokenKeeper, CanvasError> {
        let tokens = token_source(
            aws,
            &self.secret_id,
            self.tokens.clone(),
            metrics.clone(),
            function,
        )?;
        Ok(TokenKeeper::new(
            Arc::new(tokens),
            self.refresh_window,
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
    fn reads_required_names_and_defaults() {
        let err = CanvasConfig::from_lookup(lookup(&[("CANVAS_SECRET_ID", "s")])).unwrap_err();
        assert!(err.to_string().contains("RATE_LIMIT_TABLE"), "{err}");
        let c = CanvasConfig::from_lookup(lookup(&[
            ("CANVAS_SECRET_ID", "coursewire/canvas"),
            ("RATE_LIMIT_TABLE", "rate-limits"),
        ]))
        .unwrap();
        assert_eq!(c.budget_id, "coursewire/canvas");
        assert_eq!(c.quota, QuotaSettings::default());
        assert_eq!(c.http, HttpSettings::default());
    }

    #[test]
    fn scales_the_bucket_for_the_simulator_and_rejects_bad_values_by_name() {
        let c = CanvasConfig::from_lookup(lookup(&[
            ("CANVAS_SECRET_ID", "s"),
            ("RATE_LIMIT_TABLE", "t"),
            ("CANVAS_OUTFLOW_PER_SEC", "100"),
            ("CANVAS_BUDGET_ID", "grant-1"),
            ("CANVAS_MAX_ATTEMPTS", "3"),
        ]))
        .unwrap();
        assert_eq!(c.quota.outflow_per_sec, 100.0);
        assert_eq!(c.budget_id, "grant-1");
        assert_eq!(c.http.max_attempts, 3);
        let err = CanvasConfig::from_lookup(lookup(&[
            ("CANVAS_SECRET_ID", "s"),
            ("RATE_LIMIT_TABLE", "t"),
            ("CANVAS_MAX_CONCURRENCY", "0"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("CANVAS_MAX_CONCURRENCY"), "{err}");
        let keeper = TokenKeeperConfig::from_lookup(lookup(&[("CANVAS_SECRET_ID", "s")])).unwrap();
        assert_eq!(keeper.refresh_window, Duration::from_secs(900));
    }
}
