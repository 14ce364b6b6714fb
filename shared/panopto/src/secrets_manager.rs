//! The credential store in Secrets Manager (the production adapter).

use super::PanoptoError;
use super::credentials::{CredentialStore, PanoptoCredentials};
use async_trait::async_trait;
use coursewire_runtime::secrets::JsonSecret;

/// The credentials as the JSON `SecretString` of one secret (read only: client credentials
/// have nothing to write back).
pub struct SecretsManagerStore {
    secret: JsonSecret,
}

impl SecretsManagerStore {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self {
            secret: JsonSecret::new(client, secret_id),
        }
    }
}

#[async_trait]
impl CredentialStore for SecretsManagerStore {
    fn id(&self) -> &str {
        self.secret.id()
    }

    async fn load(&self) -> Result<PanoptoCredentials, PanoptoError> {
        self.secret.load().await.map_err(PanoptoError::Secret)
    }
}
