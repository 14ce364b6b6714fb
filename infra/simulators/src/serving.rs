//! A simulator's HTTP server: an axum router served on its listener until stopped (or the
//! handle dropped), shared by the simulators so each only builds its router.

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Serving {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Serving {
    /// Serves `router` on `listener`; `name` labels a serving error in the logs.
    pub fn start(listener: TcpListener, router: Router, name: &'static str) -> Self {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    // A dropped sender also means "stop".
                    let _ = rx.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, simulator = name, "simulator stopped with an error");
            }
        });
        Self {
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
