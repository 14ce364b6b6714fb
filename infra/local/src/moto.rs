//! A moto server (AWS service mocks) for the local stack and tests.
//!
//! moto lives in the project's own virtualenv (`<repo>/.venv`, made by
//! `infra/bootstrap.sh`), so nothing outside the repository is required.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider};

/// Set to attach to an already running moto (e.g. `http://127.0.0.1:5000`)
/// instead of spawning one.
pub const ENDPOINT_ENV: &str = "COURSEWIRE_MOTO_ENDPOINT";
pub const REGION: &str = "us-east-1";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// A free port can be taken by someone else between probing and moto binding it.
const SPAWN_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error("infra/bootstrap.sh failed ({status}): {stderr}")]
    Bootstrap { status: String, stderr: String },
    #[error("{tool} is not in {venv} even after running infra/bootstrap.sh")]
    ToolMissing { tool: String, venv: PathBuf },
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    #[error("moto_server did not answer on {addr} within {secs}s; see {log}")]
    NotReady {
        addr: String,
        secs: u64,
        log: String,
    },
    #[error("moto_server exited ({status}) before answering on {addr}; see {log}")]
    Exited {
        addr: String,
        status: String,
        log: String,
    },
    #[error("{ENDPOINT_ENV}={endpoint} does not answer: {detail}")]
    External { endpoint: String, detail: String },
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> MotoError {
    let action = action.into();
    move |source| MotoError::Io { action, source }
}

/// A running moto server; killed on [`MotoServer::stop`] or drop.
#[derive(Debug)]
pub struct MotoServer {
    endpoint: String,
    child: Option<Child>,
    log_path: Option<PathBuf>,
}

impl MotoServer {
    /// Attaches to `$COURSEWIRE_MOTO_ENDPOINT` if set, otherwise spawns
    /// `<repo>/.venv/bin/moto_server` on a free loopback port (bootstrapping
    /// the virtualenv first if needed) and waits until it answers.
    pub async fn start(repo_root: &Path) -> Result<Self, MotoError> {
        if let Some(endpoint) = std::env::var(ENDPOINT_ENV).ok().filter(|e| !e.is_empty()) {
            let endpoint = endpoint.trim_end_matches('/').to_owned();
            probe(&endpoint, Duration::from_secs(5))
                .await
                .map_err(|detail| MotoError::External {
                    endpoint: endpoint.clone(),
                    detail,
                })?;
            tracing::info!(%endpoint, "using external moto");
            return Ok(Self {
                endpoint,
                child: None,
                log_path: None,
            });
        }

        // The venv's python (moto_server proves moto is installed there).
        let python = ensure_venv_tool(repo_root, "moto_server")
            .await?
            .with_file_name("python");
        let local = repo_root.join(".local");
        std::fs::create_dir_all(&local).map_err(io(format!("create {}", local.display())))?;
        prune_old_logs(&local);

        let mut last_err = None;
        for _ in 0..SPAWN_ATTEMPTS {
            let port = free_port()?;
            let log_path = local.join(format!("moto-{port}.log"));
            match Self::spawn(repo_root, &python, port, &log_path).await {
                Ok(server) => return Ok(server),
                // Lost the port race: try another port.
                Err(e @ MotoError::Exited { .. }) => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| MotoError::NotReady {
            addr: "127.0.0.1".into(),
            secs: READY_TIMEOUT.as_secs(),
            log: local.display().to_string(),
        }))
    }

    async fn spawn(
        repo_root: &Path,
        python: &Path,
        port: u16,
        log_path: &Path,
    ) -> Result<Self, MotoError> {
        let log = File::create(log_path).map_err(io(format!("create {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(io("duplicate the moto log handle"))?;
        // Through infra/moto_server.py (the venv's python runs it): moto with DynamoDB
        // requests serialised, as DynamoDB's own atomicity would have them.
        let launcher = repo_root.join("infra").join("moto_server.py");
        let child = Command::new(python)
            .arg(launcher)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io(format!("spawn {}", python.display())))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut server = Self {
            endpoint,
            child: Some(child),
            log_path: Some(log_path.to_path_buf()),
        };
        server.wait_ready(port).await?;
        tracing::debug!(endpoint = %server.endpoint, log = %log_path.display(), "moto_server ready");
        Ok(server)
    }

    async fn wait_ready(&mut self, port: u16) -> Result<(), MotoError> {
        let addr = format!("127.0.0.1:{port}");
        let log = self
            .log_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(MotoError::Exited {
                    addr,
                    status: status.to_string(),
                    log,
                });
            }
            if probe(&self.endpoint, Duration::from_secs(2)).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(MotoError::NotReady {
                    addr,
                    secs: READY_TIMEOUT.as_secs(),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where the spawned server logs (None when attached to an external one).
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// SDK configuration pointing at this server (us-east-1, test credentials).
    pub fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint)
    }

    /// Kills the server (if this process spawned it) and waits for it to exit.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already-exited is fine; anything else leaves nothing more to do.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SDK configuration for any moto endpoint.
pub fn sdk_config_for(endpoint: &str) -> SdkConfig {
    // moto accepts any credentials; fixed ones keep the SDK from searching
    // the environment, profiles or IMDS (and from using real ones by accident).
    let credentials = Credentials::new("testing", "testing", None, None, "coursewire-moto");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build()
}

/// One bootstrap at a time: parallel tests would otherwise race two pip
/// installs into the same virtualenv.
static BOOTSTRAP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Path of a tool in `<repo>/.venv/bin`, running `infra/bootstrap.sh` first
/// if it is missing.
pub async fn ensure_venv_tool(repo_root: &Path, tool: &str) -> Result<PathBuf, MotoError> {
    let path = repo_root.join(".venv").join("bin").join(tool);
    if path.is_file() {
        return Ok(path);
    }
    let _guard = BOOTSTRAP.lock().await;
    if !path.is_file() {
        run_bootstrap_locked(repo_root).await?;
    }
    if path.is_file() {
        Ok(path)
    } else {
        Err(MotoError::ToolMissing {
            tool: tool.to_owned(),
            venv: repo_root.join(".venv"),
        })
    }
}

/// Runs `infra/bootstrap.sh` and returns the line it printed.
pub async fn bootstrap(repo_root: &Path) -> Result<String, MotoError> {
    let _guard = BOOTSTRAP.lock().await;
    run_bootstrap_locked(repo_root).await
}

async fn run_bootstrap_locked(repo_root: &Path) -> Result<String, MotoError> {
    let script = repo_root.join("infra").join("bootstrap.sh");
    tracing::info!(script = %script.display(), "bootstrapping the project virtualenv");
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(io(format!("run {}", script.display())))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        return Err(MotoError::Bootstrap {
            status: output.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Each server logs to its own file; drop the ones from earlier runs so
/// `.local/` does not grow without bound (recent ones stay for debugging).
fn prune_old_logs(dir: &Path) {
    const KEEP: Duration = Duration::from_secs(3600);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > KEEP);
        if old && name.starts_with("moto-") && name.ends_with(".log") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn free_port() -> Result<u16, MotoError> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(io("bind a free loopback port"))?;
    let port = listener
        .local_addr()
        .map_err(io("read the probe socket's port"))?
        .port();
    Ok(port)
}

/// One GET of moto's own API; Ok when it answers 2xx.
async fn probe(endpoint: &str, timeout: Duration) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = client
        .get(format!("{endpoint}/moto-api/"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("GET /moto-api/ answered {}", response.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::repo_root;

    #[tokio::test]
    async fn starts_answers_and_stops() {
        let root = repo_root().unwrap();
        let moto = MotoServer::start(&root).await.unwrap();
        let endpoint = moto.endpoint().to_owned();
        assert!(endpoint.starts_with("http://127.0.0.1:"));

        let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config());
        let url = sqs
            .create_queue()
            .queue_name("moto-smoke")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        assert!(url.ends_with("/123456789012/moto-smoke"), "{url}");
        let listed = sqs.list_queues().send().await.unwrap();
        assert!(listed.queue_urls().contains(&url), "{listed:?}");

        if let Some(log) = moto.log_path() {
            assert!(log.starts_with(root.join(".local")));
        }
        moto.stop();
        if std::env::var_os(ENDPOINT_ENV).is_none() {
            assert!(
                probe(&endpoint, Duration::from_secs(1)).await.is_err(),
                "moto still answers after stop()"
            );
        }
    }

    #[tokio::test]
    async fn bootstrap_is_idempotent() {
        let root = repo_root().unwrap();
        bootstrap(&root).await.unwrap();
        let again = bootstrap(&root).await.unwrap();
        assert_eq!(again, "bootstrap: .venv up to date");
        let stamp = std::fs::read_to_string(root.join(".venv/.requirements.sha256")).unwrap();
        assert_eq!(stamp.trim().len(), 64);
        for tool in ["moto_server", "cfn-lint", "cargo-lambda"] {
            assert!(
                root.join(".venv/bin").join(tool).is_file(),
                "{tool} missing"
            );
        }
    }
}
