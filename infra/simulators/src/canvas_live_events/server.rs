//! A local stand-in for Canvas's public JWKS endpoint.
//!
//! It counts fetches so tests can prove the receiver caches the JWKS instead
//! of fetching it per event, and it can be switched to 503 to test how the
//! receiver behaves when the endpoint is down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::keys::KeyRing;

/// Failures starting the JWKS server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Could not bind 127.0.0.1:0 or read the bound address.
    #[error("cannot bind the JWKS server: {0}")]
    Bind(#[from] std::io::Error),
}

#[derive(Clone)]
struct AppState {
    keyring: Arc<KeyRing>,
    fetches: Arc<AtomicU64>,
    unavailable: Arc<AtomicBool>,
}

/// Serves `GET /jwks` and `GET /main/jwks` (Canvas's path shape) from a
/// shared [`KeyRing`], so rotations are visible on the next fetch.
pub struct JwksServer {
    addr: SocketAddr,
    fetches: Arc<AtomicU64>,
    unavailable: Arc<AtomicBool>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl JwksServer {
    /// Binds an OS-assigned port on 127.0.0.1 and serves until dropped or stopped.
    pub async fn start(keyring: Arc<KeyRing>) -> Result<Self, ServerError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let fetches = Arc::new(AtomicU64::new(0));
        let unavailable = Arc::new(AtomicBool::new(false));
        let state = AppState {
            keyring,
            fetches: Arc::clone(&fetches),
            unavailable: Arc::clone(&unavailable),
        };
        let app = Router::new()
            .route("/jwks", get(jwks))
            .route("/main/jwks", get(jwks))
            .with_state(state);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // A dropped sender also means "stop".
                    let _ = rx.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "Canvas JWKS simulator stopped with an error");
            }
        });
        Ok(Self {
            addr,
            fetches,
            unavailable,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Full URL of the JWKS document, e.g. `http://127.0.0.1:41234/jwks`.
    pub fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many JWKS requests arrived (including ones answered with 503).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Zeroes the fetch counter, e.g. after a warm-up phase.
    pub fn reset_fetch_count(&self) {
        self.fetches.store(0, Ordering::SeqCst);
    }

    /// While `true`, every fetch gets `503 Service Unavailable`.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Stops accepting connections and waits for the server task to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn jwks(State(state): State<AppState>) -> Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    if state.unavailable.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "JWKS temporarily unavailable",
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.keyring.jwks().to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Option<Value>) {
        let response = client.get(url).send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        (status, serde_json::from_str(&body).ok())
    }

    #[tokio::test]
    async fn serves_keys_counts_fetches_and_follows_rotation() {
        let ring = Arc::new(KeyRing::new().expect("keyring"));
        let server = JwksServer::start(Arc::clone(&ring)).await.expect("start");
        let client = reqwest::Client::new();
        assert_eq!(server.fetch_count(), 0);

        let (status, body) = get_json(&client, &server.url()).await;
        assert_eq!(status, 200);
        assert_eq!(body, Some(ring.jwks()));
        let main_url = format!("http://{}/main/jwks", server.addr());
        let (status, body) = get_json(&client, &main_url).await;
        assert_eq!(status, 200);
        assert_eq!(body, Some(ring.jwks()));
        assert_eq!(server.fetch_count(), 2);

        ring.rotate().expect("rotate");
        let (_, body) = get_json(&client, &server.url()).await;
        let kids: Vec<String> = body
            .as_ref()
            .and_then(|b| b["keys"].as_array())
            .expect("keys")
            .iter()
            .filter_map(|k| k["kid"].as_str().map(String::from))
            .collect();
        assert_eq!(kids, ring.kids().to_vec(), "served JWKS follows rotation");

        server.set_unavailable(true);
        let (status, _) = get_json(&client, &server.url()).await;
        assert_eq!(status, 503);
        assert_eq!(server.fetch_count(), 4);
        server.reset_fetch_count();
        assert_eq!(server.fetch_count(), 0);

        let url = server.url();
        drop(client);
        server.stop().await;
        let after = reqwest::Client::new().get(&url).send().await;
        assert!(after.is_err(), "server stopped: {after:?}");
    }
}
