//! The credential store in Secrets Manager (the production adapter).

use super::PanoptoError;
use super::credentials::{CredentialStore, PanoptoCredentials};
use async_trait::async_trait;
use coursewire_runtime::service::ServiceError;

/// The credentials as the JSON `SecretString` of one secret (read only: client credentials
/// have nothing to write back).
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

    async fn load(&self) -> Result<PanoptoCredentials, PanoptoError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| PanoptoError::Secret(coursewire_runtime::aws::classify(&e)))?;
        let text = out.secret_string().ok_or_else(|| {
            PanoptoError::Secret(ServiceError::Permanent(
                "the Panopto credentials secret has no SecretString".into(),
            ))
        })?;
        serde_json::from_str(text).map_err(|e| {
            PanoptoError::Secret(ServiceError::Permanent(format!(
                "the Panopto credentials secret is not credentials JSON: {}",
                super::describe_json_error(&e)
            )))
        })
    }
}
