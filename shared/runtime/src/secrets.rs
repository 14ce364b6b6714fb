//! A Secrets Manager secret holding JSON: what every credentials store (Canvas, Panopto, the
//! webhook's signing secret) reads and writes, with errors that never echo the secret.

use crate::aws::classify;
use crate::service::ServiceError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One secret whose `SecretString` is a JSON document.
#[derive(Clone)]
pub struct JsonSecret {
    client: aws_sdk_secretsmanager::Client,
    id: String,
}

impl JsonSecret {
    pub fn new(client: aws_sdk_secretsmanager::Client, id: impl Into<String>) -> Self {
        Self {
            client,
            id: id.into(),
        }
    }

    /// The secret's id or ARN (not secret: fine in logs).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub async fn load<T: DeserializeOwned>(&self) -> Result<T, ServiceError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.id)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let text = out.secret_string().ok_or_else(|| {
            ServiceError::Permanent(format!("the secret {} has no SecretString", self.id))
        })?;
        serde_json::from_str(text).map_err(|e| {
            ServiceError::Permanent(format!(
                "the secret {} is not the JSON expected: {}",
                self.id,
                describe_json_error(&e)
            ))
        })
    }

    pub async fn save<T: Serialize>(&self, value: &T) -> Result<(), ServiceError> {
        let text =
            serde_json::to_string(value).map_err(|e| ServiceError::Permanent(e.to_string()))?;
        self.client
            .put_secret_value()
            .secret_id(&self.id)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }
}

/// A JSON error that names what is wrong without quoting the input: serde's messages can
/// quote values, and these values are secrets or tokens. Missing fields and unknown variants
/// name only the schema, so they are kept.
pub fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let names_schema_only = ["missing field", "duplicate field", "unknown variant"]
        .iter()
        .any(|prefix| text.starts_with(prefix));
    if names_schema_only {
        text.split(" at line").next().unwrap_or(&text).to_string()
    } else {
        format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_never_quote_the_input() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Credentials {
            client_id: String,
            expires: u64,
        }
        let wrong_type = serde_json::from_str::<Credentials>(
            r#"{"client_id": "abc", "expires": "hunter2-secret"}"#,
        )
        .unwrap_err();
        let text = describe_json_error(&wrong_type);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.starts_with("Data error at line 1"), "{text}");
        let missing = serde_json::from_str::<Credentials>(r#"{"client_id": "abc"}"#).unwrap_err();
        assert_eq!(describe_json_error(&missing), "missing field `expires`");
    }
}
