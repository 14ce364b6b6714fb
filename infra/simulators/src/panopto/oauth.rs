//! Panopto's OAuth2 token endpoint for server-side API clients (`POST
//! /Panopto/oauth2/connect/token`, `grant_type=client_credentials`), and the bearer tokens it
//! hands out, which expire on the simulated clock.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;

/// Registered API clients and the tokens issued to them.
#[derive(Debug)]
pub(crate) struct Tokens {
    clients: HashMap<String, String>,
    lifetime: TimeDelta,
    issued: HashMap<String, Issued>,
}

#[derive(Debug, Clone)]
struct Issued {
    client_id: String,
    expires_at: DateTime<Utc>,
}

/// Why the token endpoint refused (its `error` code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    InvalidClient,
    UnsupportedGrantType,
}

impl Refusal {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Refusal::InvalidClient => "invalid_client",
            Refusal::UnsupportedGrantType => "unsupported_grant_type",
        }
    }
}

impl Tokens {
    pub(crate) fn new(clients: &[(String, String)], lifetime: std::time::Duration) -> Self {
        Self {
            clients: clients.iter().cloned().collect(),
            lifetime: TimeDelta::from_std(lifetime).unwrap_or(TimeDelta::MAX),
            issued: HashMap::new(),
        }
    }

    /// `(access_token, expires_in seconds)` for a client-credentials grant.
    pub(crate) fn grant(
        &mut self,
        grant_type: Option<&str>,
        client_id: Option<&str>,
        client_secret: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(String, i64), Refusal> {
        if grant_type != Some("client_credentials") {
            return Err(Refusal::UnsupportedGrantType);
        }
        let (Some(id), Some(secret)) = (client_id, client_secret) else {
            return Err(Refusal::InvalidClient);
        };
        if self.clients.get(id).map(String::as_str) != Some(secret) {
            return Err(Refusal::InvalidClient);
        }
        // Tokens of this client that are long expired are forgotten.
        self.issued
            .retain(|_, t| t.expires_at + TimeDelta::days(1) > now);
        let token: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        self.issued.insert(
            token.clone(),
            Issued {
                client_id: id.to_string(),
                expires_at: now + self.lifetime,
            },
        );
        Ok((token, self.lifetime.num_seconds()))
    }

    /// The client a valid token belongs to.
    pub(crate) fn validate(&self, token: &str, now: DateTime<Utc>) -> Option<String> {
        self.issued
            .get(token)
            .filter(|t| t.expires_at > now)
            .map(|t| t.client_id.clone())
    }

    /// An administrator generates a new secret for the API client: the old secret is refused
    /// from now on and the tokens issued with it stop working. `None` for an unknown client.
    pub(crate) fn regenerate_secret(&mut self, client_id: &str) -> Option<String> {
        let secret = self.clients.get_mut(client_id)?;
        *secret = new_secret();
        let secret = secret.clone();
        self.issued.retain(|_, t| t.client_id != client_id);
        Some(secret)
    }

    /// Every token issued so far expires now.
    pub(crate) fn expire_all(&mut self, now: DateTime<Utc>) {
        for token in self.issued.values_mut() {
            token.expires_at = token.expires_at.min(now);
        }
    }
}

/// A fresh credential, as Panopto's admin pages generate one.
pub(crate) fn new_secret() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_only_registered_clients_and_tokens_expire_on_the_clock() {
        let now = Utc::now();
        let mut tokens = Tokens::new(
            &[("c".into(), "s".into())],
            std::time::Duration::from_secs(60),
        );
        assert_eq!(
            tokens.grant(Some("client_credentials"), Some("c"), Some("x"), now),
            Err(Refusal::InvalidClient)
        );
        assert_eq!(
            tokens.grant(Some("password"), Some("c"), Some("s"), now),
            Err(Refusal::UnsupportedGrantType)
        );
        let (token, expires_in) = tokens
            .grant(Some("client_credentials"), Some("c"), Some("s"), now)
            .unwrap();
        assert_eq!(expires_in, 60);
        assert_eq!(tokens.validate(&token, now).as_deref(), Some("c"));
        assert_eq!(tokens.validate(&token, now + TimeDelta::seconds(61)), None);
        tokens.expire_all(now);
        assert_eq!(tokens.validate(&token, now), None);
    }

    #[test]
    fn a_regenerated_secret_refuses_the_old_one_and_ends_its_tokens() {
        let now = Utc::now();
        let mut tokens = Tokens::new(
            &[("c".into(), "s".into())],
            std::time::Duration::from_secs(60),
        );
        let grant = |tokens: &mut Tokens, secret: &str| {
            tokens.grant(Some("client_credentials"), Some("c"), Some(secret), now)
        };
        let (token, _) = grant(&mut tokens, "s").unwrap();
        let secret = tokens.regenerate_secret("c").unwrap();
        assert_ne!(secret, "s");
        assert_eq!(tokens.validate(&token, now), None);
        assert_eq!(grant(&mut tokens, "s"), Err(Refusal::InvalidClient));
        let (fresh, _) = grant(&mut tokens, &secret).unwrap();
        assert_eq!(tokens.validate(&fresh, now).as_deref(), Some("c"));
        assert_eq!(tokens.regenerate_secret("nobody"), None);
    }
}
