//! The client's configuration, read from the environment `template.yaml` sets. Credentials
//! are never in the environment: only the secret's id.

use super::{
    DEFAULT_EXTERNAL_ID_PROVIDER, HttpPanopto, HttpSettings, PanoptoError, SecretsManagerStore,
    TokenSettings,
};
use coursewire_runtime::config::{ConfigError, Env, process_env};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct PanoptoConfig {
    /// Secrets Manager secret holding the [`super::PanoptoCredentials`] (`PANOPTO_SECRET_ID`).
    pub secret_id: String,
    /// `PANOPTO_REQUEST_TIMEOUT_MS`, `PANOPTO_MAX_ATTEMPTS`; the rest are the defaults.
    pub http: HttpSettings,
    pub tokens: TokenSettings,
    /// The site membership provider folder external ids belong to
    /// (`PANOPTO_EXTERNAL_ID_PROVIDER`, default [`DEFAULT_EXTERNAL_ID_PROVIDER`]). Use the
    /// Instance Name of an identity provider on the Panopto site; changing it later loses
    /// every link made under the old name (the ids stay there, unseen).
    pub external_id_provider: String,
}

impl PanoptoConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// Reads the configuration through `get` (the local runner passes a function's resolved
    /// environment without touching the process env).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let http =
            HttpSettings::from_env(&env, "PANOPTO_REQUEST_TIMEOUT_MS", "PANOPTO_MAX_ATTEMPTS")?;
        Ok(Self {
            secret_id: env.required("PANOPTO_SECRET_ID")?,
            tokens: TokenSettings {
                retry: http.clone(),
                ..TokenSettings::default()
            },
            http,
            external_id_provider: env
                .optional("PANOPTO_EXTERNAL_ID_PROVIDER")
                .map(|p| p.trim().to_string())
                .unwrap_or_else(|| DEFAULT_EXTERNAL_ID_PROVIDER.to_string()),
        })
    }

    /// The client on Secrets Manager; build once per process.
    pub fn build(
        &self,
        secrets: aws_sdk_secretsmanager::Client,
    ) -> Result<HttpPanopto, PanoptoError> {
        let store = SecretsManagerStore::new(secrets, self.secret_id.clone());
        Ok(HttpPanopto::with_token_settings(
            Arc::new(store),
            self.http.clone(),
            self.tokens.clone(),
        )?
        .with_external_id_provider(self.external_id_provider.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coursewire_runtime::config::lookup;

    #[test]
    fn reads_the_secret_id_and_bounded_settings() {
        let err = PanoptoConfig::from_lookup(lookup(&[])).unwrap_err();
        assert!(err.to_string().contains("PANOPTO_SECRET_ID"), "{err}");
        let c = PanoptoConfig::from_lookup(lookup(&[
            ("PANOPTO_SECRET_ID", "coursewire/panopto"),
            ("PANOPTO_MAX_ATTEMPTS", "3"),
        ]))
        .unwrap();
        assert_eq!(c.secret_id, "coursewire/panopto");
        assert_eq!(c.http.max_attempts, 3);
        assert_eq!(c.tokens.retry.max_attempts, 3);
        assert_eq!(c.external_id_provider, "coursewire");
        let c = PanoptoConfig::from_lookup(lookup(&[
            ("PANOPTO_SECRET_ID", "s"),
            ("PANOPTO_EXTERNAL_ID_PROVIDER", " canvas-prod "),
        ]))
        .unwrap();
        assert_eq!(c.external_id_provider, "canvas-prod");
        let err = PanoptoConfig::from_lookup(lookup(&[
            ("PANOPTO_SECRET_ID", "s"),
            ("PANOPTO_REQUEST_TIMEOUT_MS", "5"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("PANOPTO_REQUEST_TIMEOUT_MS"),
            "{err}"
        );
    }
}
