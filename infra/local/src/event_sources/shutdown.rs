//! Cancellation for the event sources, and the background tasks they run.

use super::*;

/// A cloneable cancellation signal (what tokio-util's CancellationToken does,
/// on a `watch` channel). A [`child`](Self::child) is cancelled with its
/// parent but can also be cancelled alone.
#[derive(Debug, Clone)]
pub struct ShutdownToken {
    /// Ancestors first; this token's own signal is the last one.
    chain: Arc<[Arc<watch::Sender<bool>>]>,
}

impl Default for ShutdownToken {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownToken {
    pub fn new() -> Self {
        Self {
            chain: Arc::from([Arc::new(watch::Sender::new(false))]),
        }
    }

    pub fn child(&self) -> Self {
        let mut chain: Vec<_> = self.chain.iter().cloned().collect();
        chain.push(Arc::new(watch::Sender::new(false)));
        Self {
            chain: chain.into(),
        }
    }

    pub fn cancel(&self) {
        if let Some(own) = self.chain.last() {
            own.send_replace(true);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.chain.iter().any(|s| *s.borrow())
    }

    /// Completes once this token or an ancestor is cancelled.
    pub async fn cancelled(&self) {
        let mut receivers: Vec<_> = self.chain.iter().map(|s| s.subscribe()).collect();
        let waits = receivers.iter_mut().map(|rx| {
            // The senders live in `self.chain`, so wait_for cannot see them dropped.
            Box::pin(async move {
                let _ = rx.wait_for(|cancelled| *cancelled).await;
            })
        });
        futures::future::select_all(waits).await;
    }
}

/// A spawned task that ends when its token is cancelled: by `stop`, or on drop.
pub(super) struct Background {
    pub(super) shutdown: ShutdownToken,
    pub(super) task: Option<JoinHandle<()>>,
    pub(super) what: &'static str,
}

impl Background {
    pub(super) async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, task = self.what, "background task failed");
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
