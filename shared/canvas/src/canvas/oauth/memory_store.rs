//! The credential store in memory (tests and single-process tools).

use super::super::{CanvasError, lock};
use super::credentials::{CredentialStore, Credentials};
use async_trait::async_trait;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Credentials in memory: for tests and single-process tools.
pub struct MemoryCredentialStore {
    credentials: Mutex<Credentials>,
    saves: AtomicU64,
}

impl MemoryCredentialStore {
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials: Mutex::new(credentials),
            saves: AtomicU64::new(0),
        }
    }

    pub fn current(&self) -> Credentials {
        lock(&self.credentials).clone()
    }

    /// Replaces the credentials, as another function or an operator would.
    pub fn replace(&self, credentials: Credentials) {
        *lock(&self.credentials) = credentials;
    }

    pub fn saves(&self) -> u64 {
        self.saves.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl CredentialStore for MemoryCredentialStore {
    fn id(&self) -> &str {
        "memory"
    }

    async fn load(&self) -> Result<Credentials, CanvasError> {
        Ok(self.current())
    }

    async fn save(&self, credentials: &Credentials) -> Result<(), CanvasError> {
        self.saves.fetch_add(1, Ordering::Relaxed);
        self.replace(credentials.clone());
        Ok(())
    }
}
