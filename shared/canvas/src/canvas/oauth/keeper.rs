//! The scheduled `token-keeper`'s logic and its triggers.

use super::super::CanvasError;
use super::source::TokenSource;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use coursewire_runtime::telemetry::{Metrics, MetricsSink};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The token keeper's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenHealth {
    /// A token valid beyond the keeper's window is in the secret, and the grant stands.
    pub healthy: bool,
    pub revoked: bool,
    /// This run refreshed the token.
    pub refreshed: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub seconds_to_expiry: Option<i64>,
}

/// The scheduled `token-keeper`'s logic: refresh ahead of expiry so no request ever waits
/// for a refresh, and report token health as metrics (`CanvasTokenSecondsToExpiry`,
/// `CanvasTokenHealthy`; refreshes count in `CanvasTokenRefreshes`).
pub struct TokenKeeper {
    tokens: Arc<TokenSource>,
    /// Refresh when the token expires within this window (wider than the request margin).
    window: Duration,
    metrics: Arc<dyn MetricsSink>,
    function: String,
}

/// The schedule refreshes and reports; a direct invocation answers the token's health.
#[async_trait]
impl coursewire_runtime::function::ScheduleHandler for TokenKeeper {
    async fn handle(
        &self,
        _input: Option<serde_json::Value>,
    ) -> Result<(), coursewire_runtime::function::HandlerError> {
        self.run().await?;
        Ok(())
    }
}

#[async_trait]
impl coursewire_runtime::function::InvokeHandler for TokenKeeper {
    async fn invoke(
        &self,
        _event: serde_json::Value,
    ) -> Result<serde_json::Value, coursewire_runtime::function::HandlerError> {
        Ok(serde_json::to_value(self.run().await?)?)
    }
}

impl TokenKeeper {
    pub fn new(
        tokens: Arc<TokenSource>,
        window: Duration,
        metrics: Arc<dyn MetricsSink>,
        function: &str,
    ) -> Self {
        Self {
            tokens,
            window,
            metrics,
            function: function.to_string(),
        }
    }

    /// A revoked grant is a health state (reported, alerted by the source), not a failure of
    /// the run; an unavailable secret or token endpoint is (so the schedule's retry and error
    /// metrics see it).
    pub async fn run(&self) -> Result<TokenHealth, CanvasError> {
        let metrics = Metrics::new(self.metrics.clone(), &self.function);
        let result = match self.tokens.reread().await {
            Ok(()) => self.tokens.valid_for(self.window).await,
            Err(e) => Err(e),
        };
        let health = match result {
            Ok((token, refreshed)) => {
                let seconds = (token.expires_at() - Utc::now()).num_seconds();
                metrics.record(
                    "CanvasTokenSecondsToExpiry",
                    &[],
                    coursewire_runtime::telemetry::Unit::Seconds,
                    seconds as f64,
                );
                Ok(TokenHealth {
                    healthy: true,
                    revoked: false,
                    refreshed,
                    expires_at: Some(token.expires_at()),
                    seconds_to_expiry: Some(seconds),
                })
            }
            Err(CanvasError::GrantRevoked) => Ok(TokenHealth {
                healthy: false,
                revoked: true,
                refreshed: false,
                expires_at: None,
                seconds_to_expiry: None,
            }),
            Err(e) => {
                tracing::error!(error = %e, "token keeper could not ensure a fresh Canvas token");
                Err(e)
            }
        };
        let healthy = matches!(&health, Ok(h) if h.healthy);
        metrics.record(
            "CanvasTokenHealthy",
            &[],
            coursewire_runtime::telemetry::Unit::None,
            if healthy { 1.0 } else { 0.0 },
        );
        metrics.flush();
        health
    }
}
