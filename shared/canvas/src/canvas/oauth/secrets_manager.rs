//! The credential store in Secrets Manager (the production adapter).

use super::super::CanvasError;
use super::credentials::{CredentialStore, Credentials};
use async_trait::async_trait;
use coursewire_runtime::secrets::JsonSecret;

/// The credentials as the JSON `SecretString` of one secret (GetSecretValue /
/// PutSecretValue).
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

    async fn load(&self) -> Result<Credentials, CanvasError> {
        self.secret.load().await.map_err(CanvasError::Secret)
    }

    async fn save(&self, credentials: &Credentials) -> Result<(), CanvasError> {
        self.secret
            .save(credentials)
            .await
            .map_err(CanvasError::Secret)
    }
}
