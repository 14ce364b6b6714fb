//! ingest-https: Canvas Live Events over HTTPS (Lambda Function URL). Verifies the signed
//! JWT, stores the event in the inbox and hands it to `changes.fifo`.

use coursewire_live_events::ingest::IngestConfig;
use coursewire_runtime::config::ConfigError;
use coursewire_runtime::function::{BuildFuture, Description, Handlers, Setup};
use std::sync::Arc;

pub static DESCRIPTION: Description = Description {
    binary: "ingest-https",
    build,
};

fn build<'a>(setup: &'a Setup<'a>) -> BuildFuture<'a> {
    Box::pin(async move {
        let config = IngestConfig::from_lookup(setup.lookup())?;
        if config.jwks_url.is_none() && !config.settings.allow_unsigned {
            return Err(ConfigError::Invalid {
                name: "CANVAS_JWKS_URL",
                reason: "required unless ALLOW_UNSIGNED_EVENTS is true".into(),
            }
            .into());
        }
        let ingestor = Arc::new(config.build(setup.aws, setup.metrics.clone(), setup.name)?);
        // Fetch the JWKS during init so the first event does not wait for it.
        if let Some(verifier) = ingestor.verifier()
            && let Err(e) = verifier.key_cache().warm().await
        {
            tracing::warn!(error = %e, "JWKS not loaded at start; will retry on the first event");
        }
        Ok(Handlers {
            http: Some(ingestor),
            ..Handlers::default()
        })
    })
}
