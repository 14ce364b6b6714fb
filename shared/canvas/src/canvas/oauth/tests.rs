use super::source::stored_token;
use super::*;
use crate::canvas::{CanvasError, lock};
use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use coursewire_runtime::telemetry::CollectingSink;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn short_lived_tokens_are_used_for_three_quarters_of_their_life() {
    let url = reqwest::Url::parse("https://canvas.test").unwrap();
    let now = Utc::now();
    // 4 s lifetime, 1 s used: with a 5 min margin it would never be used at all.
    let short = AccessToken::new("t", url.clone(), now + TimeDelta::seconds(3))
        .issued_at(Some(now - TimeDelta::seconds(1)));
    assert!(short.valid_for(Duration::from_secs(300)));
    let late = AccessToken::new("t", url.clone(), now + TimeDelta::milliseconds(500))
        .issued_at(Some(now - TimeDelta::milliseconds(3500)));
    assert!(!late.valid_for(Duration::from_secs(300)));
    // Issue time unknown (or an hour-long token): the margin applies as is.
    let unknown = AccessToken::new("t", url, now + TimeDelta::seconds(200));
    assert!(!unknown.valid_for(Duration::from_secs(300)));
}

/// A token endpoint that counts refreshes and answers from a script.
pub(crate) struct FakeEndpoint {
    pub refreshes: AtomicU64,
    pub answer: Mutex<Result<(), TokenError>>,
    pub delay: Duration,
}

impl FakeEndpoint {
    pub fn ok() -> Self {
        Self {
            refreshes: AtomicU64::new(0),
            answer: Mutex::new(Ok(())),
            delay: Duration::from_millis(20),
        }
    }
}

#[async_trait]
impl TokenEndpoint for FakeEndpoint {
    async fn refresh(&self, _: &Credentials) -> Result<TokenGrant, TokenError> {
        tokio::time::sleep(self.delay).await;
        let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&self.answer).clone()?;
        Ok(TokenGrant {
            access_token: format!("token-{n}"),
            expires_in: Some(3600),
            refresh_token: None,
        })
    }

    async fn exchange_code(
        &self,
        _: &OAuthApp,
        _: &str,
        code: &str,
    ) -> Result<TokenGrant, TokenError> {
        Ok(TokenGrant {
            access_token: format!("first-{code}"),
            expires_in: Some(3600),
            refresh_token: Some(format!("refresh-{code}")),
        })
    }
}

pub(crate) fn credentials(access: Option<(&str, i64)>) -> Credentials {
    Credentials {
        base_url: "https://canvas.test".into(),
        client_id: "10000000000001".into(),
        client_secret: "client-secret".into(),
        refresh_token: "refresh-1".into(),
        access_token: access.map(|(t, _)| t.to_string()),
        access_token_expires_at: access.map(|(_, s)| Utc::now() + TimeDelta::seconds(s)),
        access_token_issued_at: None,
        revoked_at: None,
        extra: serde_json::Map::from_iter([("note".to_string(), "kept".into())]),
    }
}

fn source(
    store: Arc<MemoryCredentialStore>,
    endpoint: Arc<FakeEndpoint>,
    sink: Arc<CollectingSink>,
) -> Arc<TokenSource> {
    Arc::new(TokenSource::new(
        store,
        endpoint,
        TokenSettings {
            retry_delay: Duration::from_millis(1),
            ..TokenSettings::default()
        },
        sink,
        "test",
    ))
}

#[tokio::test]
async fn uses_the_stored_token_and_refreshes_ahead_of_expiry() {
    let store = Arc::new(MemoryCredentialStore::new(credentials(Some((
        "stored", 3000,
    )))));
    let endpoint = Arc::new(FakeEndpoint::ok());
    let sink = Arc::new(CollectingSink::new());
    let tokens = source(store.clone(), endpoint.clone(), sink.clone());
    assert_eq!(tokens.access_token().await.unwrap().secret(), "stored");
    assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 0);

    // Within the 5-minute margin: refreshed, and saved for the other functions.
    store.replace(credentials(Some(("old", 200))));
    let fresh = Arc::new(TokenSource::new(
        store.clone(),
        endpoint.clone(),
        TokenSettings::default(),
        sink.clone(),
        "test",
    ));
    let token = fresh.access_token().await.unwrap();
    assert_eq!(token.secret(), "token-1");
    let saved = store.current();
    assert_eq!(saved.access_token.as_deref(), Some("token-1"));
    assert_eq!(
        saved.refresh_token, "refresh-1",
        "refresh keeps the refresh token"
    );
    assert_eq!(saved.extra.get("note"), Some(&"kept".into()));
    assert_eq!(
        sink.sum("CanvasTokenRefreshes", &[("Reason", "expiring")]),
        1.0
    );
}

#[tokio::test]
async fn concurrent_401s_refresh_exactly_once() {
    let store = Arc::new(MemoryCredentialStore::new(credentials(Some(("t0", 3000)))));
    let endpoint = Arc::new(FakeEndpoint::ok());
    let tokens = source(store, endpoint.clone(), Arc::new(CollectingSink::new()));
    let failed = tokens.access_token().await.unwrap();
    let tasks: Vec<_> = (0..25)
        .map(|_| {
            let tokens = tokens.clone();
            let failed = failed.clone();
            tokio::spawn(async move { tokens.refresh_after_failure(&failed).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().secret(), "token-1");
    }
    assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(tokens.refreshes(), 1);
}

#[tokio::test]
async fn a_401_after_another_function_refreshed_uses_the_secret() {
    let store = Arc::new(MemoryCredentialStore::new(credentials(Some(("t0", 3000)))));
    let endpoint = Arc::new(FakeEndpoint::ok());
    let tokens = source(
        store.clone(),
        endpoint.clone(),
        Arc::new(CollectingSink::new()),
    );
    let failed = tokens.access_token().await.unwrap();
    store.replace(credentials(Some(("from-keeper", 3600))));
    let token = tokens.refresh_after_failure(&failed).await.unwrap();
    assert_eq!(token.secret(), "from-keeper");
    assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn revoked_grant_alerts_once_then_fails_fast_everywhere() {
    let store = Arc::new(MemoryCredentialStore::new(credentials(Some(("t0", 3000)))));
    let endpoint = Arc::new(FakeEndpoint::ok());
    *lock(&endpoint.answer) = Err(TokenError::InvalidGrant);
    let sink = Arc::new(CollectingSink::new());
    let tokens = source(store.clone(), endpoint.clone(), sink.clone());
    let failed = tokens.access_token().await.unwrap();
    let results =
        futures::future::join_all((0..10).map(|_| tokens.refresh_after_failure(&failed))).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(CanvasError::GrantRevoked)))
    );
    assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 1, "no retry");
    assert!(tokens.is_revoked());
    assert!(matches!(
        tokens.access_token().await,
        Err(CanvasError::GrantRevoked)
    ));
    assert_eq!(sink.sum("CanvasGrantRevoked", &[]), 1.0);
    let saved = store.current();
    assert!(saved.revoked_at.is_some(), "other functions stop too");
    assert_eq!(saved.access_token, None);

    // Another function reads the mark and stops without calling Canvas.
    let other_endpoint = Arc::new(FakeEndpoint::ok());
    let other = source(store.clone(), other_endpoint.clone(), sink.clone());
    assert!(matches!(
        other.access_token().await,
        Err(CanvasError::GrantRevoked)
    ));
    assert_eq!(other_endpoint.refreshes.load(Ordering::SeqCst), 0);
    assert_eq!(sink.sum("CanvasGrantRevoked", &[]), 1.0, "alerted once");
}

#[tokio::test]
async fn re_authorizing_lifts_the_revocation() {
    let store = Arc::new(MemoryCredentialStore::new(credentials(None)));
    let endpoint = Arc::new(FakeEndpoint::ok());
    *lock(&endpoint.answer) = Err(TokenError::InvalidGrant);
    let tokens = Arc::new(TokenSource::new(
        store.clone(),
        endpoint.clone(),
        TokenSettings {
            revoked_recheck: Duration::ZERO,
            ..TokenSettings::default()
        },
        Arc::new(CollectingSink::new()),
        "test",
    ));
    assert!(matches!(
        tokens.access_token().await,
        Err(CanvasError::GrantRevoked)
    ));
    // The same (revoked) refresh token is not tried again.
    assert!(tokens.access_token().await.is_err());
    assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 1);

    let app = OAuthApp {
        base_url: "https://canvas.test".into(),
        client_id: "1".into(),
        client_secret: "s".into(),
    };
    let fresh = authorize(endpoint.as_ref(), &app, "https://cw.test/cb", "abc")
        .await
        .unwrap();
    assert_eq!(fresh.refresh_token, "refresh-abc");
    store.replace(fresh);
    assert_eq!(tokens.access_token().await.unwrap().secret(), "first-abc");
    assert!(!tokens.is_revoked());
}

#[tokio::test]
async fn keeper_refreshes_within_its_window_and_reports_health() {
    let store = Arc::new(MemoryCredentialStore::new(credentials(Some(("t0", 600)))));
    let endpoint = Arc::new(FakeEndpoint::ok());
    let sink = Arc::new(CollectingSink::new());
    let tokens = source(store.clone(), endpoint.clone(), sink.clone());
    let keeper = TokenKeeper::new(
        tokens.clone(),
        Duration::from_secs(900),
        sink.clone(),
        "token-keeper",
    );
    let health = keeper.run().await.unwrap();
    assert!(health.healthy && health.refreshed && !health.revoked);
    assert!(health.seconds_to_expiry.unwrap() > 3500);
    let again = keeper.run().await.unwrap();
    assert!(again.healthy && !again.refreshed);
    assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(sink.values("CanvasTokenHealthy"), vec![1.0, 1.0]);
    assert_eq!(sink.values("CanvasTokenSecondsToExpiry").len(), 2);

    *lock(&endpoint.answer) = Err(TokenError::InvalidGrant);
    store.replace(credentials(Some(("t1", 60))));
    let revoked = TokenKeeper::new(
        source(store, endpoint, sink.clone()),
        Duration::from_secs(900),
        sink.clone(),
        "token-keeper",
    )
    .run()
    .await
    .unwrap();
    assert!(!revoked.healthy && revoked.revoked);
    assert_eq!(sink.values("CanvasTokenHealthy"), vec![1.0, 1.0, 0.0]);
}

#[tokio::test]
async fn keeper_reads_a_revocation_another_function_recorded_despite_its_cached_token() {
    let store = Arc::new(MemoryCredentialStore::new(credentials(Some(("t0", 600)))));
    let endpoint = Arc::new(FakeEndpoint::ok());
    let sink = Arc::new(CollectingSink::new());
    let keeper = TokenKeeper::new(
        source(store.clone(), endpoint.clone(), sink.clone()),
        Duration::from_secs(900),
        sink.clone(),
        "token-keeper",
    );
    assert!(keeper.run().await.unwrap().healthy);
    // The reconciler met invalid_grant and wrote it down; the keeper's token is still fresh.
    let mut revoked = credentials(None);
    revoked.revoked_at = Some(Utc::now());
    store.replace(revoked);
    let health = keeper.run().await.unwrap();
    assert!(!health.healthy && health.revoked);
    // Re-authorized: a new refresh token, no `revoked_at`.
    let mut fresh = credentials(None);
    fresh.refresh_token = "refresh-2".into();
    store.replace(fresh);
    assert!(keeper.run().await.unwrap().healthy);
    assert_eq!(sink.values("CanvasTokenHealthy"), vec![1.0, 0.0, 1.0]);
}

#[test]
fn debug_output_never_shows_secrets() {
    let c = credentials(Some(("very-secret-token", 10)));
    let text = format!("{c:?}");
    assert!(!text.contains("very-secret-token") && !text.contains("client-secret"));
    assert!(!text.contains("refresh-1"));
    let t = stored_token(&c).unwrap().unwrap();
    assert!(!format!("{t:?}").contains("very-secret-token"));
}

#[test]
fn secret_json_round_trips_with_unknown_fields() {
    let json = r#"{"base_url":"https://canvas.test","client_id":"1","client_secret":"s",
        "refresh_token":"r","redirect_uri":"https://x.test/cb"}"#;
    let c: Credentials = serde_json::from_str(json).unwrap();
    assert_eq!(c.access_token, None);
    let back = serde_json::to_value(&c).unwrap();
    assert_eq!(back["redirect_uri"], "https://x.test/cb");
    assert!(back.get("revoked_at").is_none());
}
