//! The credential store in Secrets Manager (the production adapter).

use super::super::CanvasError;
use super::credentials::{CredentialStore, Credentials};
use async_trait::async_trait;
use coursewire_runtime::service::ServiceError;

/// The credentials as the JSON `SecretString` of one secret (GetSecretValue /
/// PutSecretValue).
pub struct SecretsManagerStore {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerStore {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait]
impl CredentialStore for SecretsManagerStore {
    fn id(&self) -> &str {
        &self.secret_id
    }

    async fn load(&self) -> Result<Credentials, CanvasError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| CanvasError::Secret(coursewire_runtime::aws::classify(&e)))?;
        let text = out.secret_string().ok_or_else(|| {
            CanvasError::Secret(ServiceError::Permanent(
                "the Canvas credentials secret has no SecretString".into(),
            ))
        })?;
        serde_json::from_str(text).map_err(|e| {
            CanvasError::Secret(ServiceError::Permanent(format!(
                "the Canvas credentials secret is not credentials JSON: {}",
                super::super::describe_json_error(&e)
            )))
        })
    }

    async fn save(&self, credentials: &Credentials) -> Result<(), CanvasError> {
        let text = serde_json::to_string(credentials)
            .map_err(|e| CanvasError::Secret(ServiceError::Permanent(e.to_string())))?;
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| CanvasError::Secret(coursewire_runtime::aws::classify(&e)))?;
        Ok(())
    }
}
