//! The real `ingest-sqs` binary, built and run by `cargo lambda watch` (cargo-lambda's
//! Lambda runtime emulator, from the project's `.venv`), invoked with the committed
//! `events/ingest-sqs.json` fixture, writing to moto through the real AWS SDK.
//!
//! Nothing is downloaded and no Docker is needed: cargo-lambda builds the binary with the
//! local toolchain into the workspace target directory.

use anyhow::{Context, Result, bail, ensure};
use aws_lambda_events::event::sqs::SqsEvent;
use coursewire_live_events::live_events::{self, DeliveryHints};
use coursewire_local::moto::{MotoServer, ensure_venv_tool};
use coursewire_local::provision::{Overrides, provision};
use coursewire_local::template::Template;
use coursewire_pipeline::inbox::record::{self, field};
use coursewire_tests::{attr, repo_root, scan_table, take_queued, unique_stage};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// cargo-lambda builds with `cargo run -p ingest-sqs`, whose feature set differs from the
/// workspace test build, so the first run compiles the function's dependencies once more.
const FIRST_INVOKE_TIMEOUT: Duration = Duration::from_secs(1200);
const LISTEN_TIMEOUT: Duration = Duration::from_secs(60);
const BINARY: &str = "ingest-sqs";

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .context("binding a probe port")?;
    Ok(listener.local_addr()?.port())
}

/// Every process below `root` (children, grandchildren, ...), from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may contain spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parent_of {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

fn signal(target: &str, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-s", sig, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `cargo lambda watch` in its own process group; on drop the group and every descendant
/// (found by pid, in case cargo-lambda moved one to another group) is terminated.
struct Watcher {
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
}

impl Watcher {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Resolves when the build fails or the watcher exits, with what happened.
    async fn failure(&mut self) -> String {
        loop {
            if let Some(status) = self.exited() {
                return format!("cargo lambda watch exited ({status}):\n{}", self.log_tail());
            }
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("error: could not compile") {
                return format!(
                    "cargo lambda watch could not build {BINARY}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Terminates the group and every descendant; returns those still alive afterwards.
    fn kill_all(&mut self) -> Vec<u32> {
        let family = descendants(self.pid);
        signal(&format!("-{}", self.pid), "TERM");
        for pid in &family {
            signal(&pid.to_string(), "TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline
            && (self.exited().is_none() || family.iter().any(|p| alive(*p)))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        signal(&format!("-{}", self.pid), "KILL");
        for pid in family.iter().filter(|p| alive(**p)) {
            signal(&pid.to_string(), "KILL");
        }
        let _ = self.child.start_kill();
        std::thread::sleep(Duration::from_millis(100));
        family.into_iter().filter(|p| alive(*p)).collect()
    }
}

/// A live (not zombie) process.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.kill_all();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_sqs_binary_under_cargo_lambda_watch_ingests_the_fixture_batch() -> Result<()> {
    let started = Instant::now();
    let root = repo_root()?;
    let cargo_lambda = ensure_venv_tool(&root, "cargo-lambda")
        .await
        .context("cargo-lambda is installed by infra/bootstrap.sh")?;
    let fixture = root.join("events").join("ingest-sqs.json");
    let batch: SqsEvent = serde_json::from_str(
        &std::fs::read_to_string(&fixture)
            .with_context(|| format!("reading {}", fixture.display()))?,
    )
    .context("events/ingest-sqs.json is not an SQS event")?;

    // moto + every table and queue from template.yaml.
    let moto = MotoServer::start(&root).await?;
    let sdk = moto.sdk_config();
    let stage = unique_stage("watch");
    let overrides = Overrides::default()
        .parameter("Stage", stage.as_str())
        .parameter("CanvasJwtIssuer", "https://canvas.fixture.example")
        // Never contacted: SQS bodies here are plain JSON.
        .parameter("CanvasJwksUrl", "http://127.0.0.1:9/jwks");
    let deployed = provision(&Template::load_repo()?, &sdk, &overrides).await?;
    let function = deployed
        .function("IngestSqsFunction")
        .context("IngestSqsFunction not in template.yaml")?;
    ensure!(
        function.binary == BINARY,
        "IngestSqsFunction is built from {}, expected {BINARY}",
        function.binary
    );
    let table = deployed
        .table_name("InboxTable")
        .context("no InboxTable")?
        .to_string();
    let changes_queue = deployed
        .queue_url("ChangesQueue")
        .context("no ChangesQueue")?
        .to_string();

    // The function's environment exactly as template.yaml resolves it, plus moto's endpoint.
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("lambda-watch-{stage}"));
    std::fs::create_dir_all(&scratch)?;
    let mut env_lines: Vec<String> = function
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        env_lines.push(format!("{k}={v}"));
    }
    let env_file = scratch.join("function.env");
    std::fs::write(&env_file, env_lines.join("\n") + "\n")?;
    let log = scratch.join("watch.log");
    let port = free_port()?;

    let log_file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut command = tokio::process::Command::new(&cargo_lambda);
    command
        .args([
            "lambda",
            "watch",
            "--ignore-changes",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .arg("--env-file")
        .arg(&env_file)
        .args(["--package", BINARY, "--bin", BINARY])
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0)
        .kill_on_drop(true);
    // Inherited from `cargo test`, these describe the test crate, not the function.
    for (key, _) in std::env::vars_os() {
        if let Some(key) = key.to_str().filter(|k| {
            k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_CRATE")
                || k.starts_with("CARGO_BIN_")
                || *k == "CARGO_MANIFEST_DIR"
                || *k == "CARGO_PRIMARY_PACKAGE"
                || *k == "CARGO_TARGET_TMPDIR"
        }) {
            command.env_remove(key);
        }
    }
    let child = command
        .spawn()
        .with_context(|| format!("spawning {} lambda watch", cargo_lambda.display()))?;
    let pid = child.id().context("cargo lambda watch exited at once")?;
    let mut watcher = Watcher {
        child,
        pid,
        log: log.clone(),
    };

    // Wait until the emulator listens.
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        if let Some(status) = watcher.exited() {
            bail!(
                "cargo lambda watch exited ({status}) before listening on {port}:\n{}",
                watcher.log_tail()
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "cargo lambda watch did not listen on 127.0.0.1:{port} within {LISTEN_TIMEOUT:?}:\n{}",
                watcher.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "[{stage}] cargo lambda watch listening on {port} after {:.1?}",
        started.elapsed()
    );

    // Invoke with the fixture; the first invocation waits for the build.
    let invoke = || {
        let mut c = tokio::process::Command::new(&cargo_lambda);
        c.args([
            "lambda",
            "invoke",
            BINARY,
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .arg("--data-file")
        .arg(&fixture)
        .args(["--output-format", "json"])
        .current_dir(&root)
        .stdin(Stdio::null())
        .kill_on_drop(true);
        c
    };
    let deadline = Instant::now() + FIRST_INVOKE_TIMEOUT;
    let response: Value = loop {
        // The invoke blocks while cargo-lambda builds the function; a build error or the
        // watcher's exit ends the wait early.
        let output = tokio::select! {
            output = invoke().output() => output.context("running cargo lambda invoke")?,
            failure = watcher.failure() => bail!("{failure}"),
            _ = tokio::time::sleep(deadline.saturating_duration_since(Instant::now())) => bail!(
                "cargo lambda invoke got no answer within {FIRST_INVOKE_TIMEOUT:?}; watch log:\n{}",
                watcher.log_tail()
            ),
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        if output.status.success() {
            break serde_json::from_str(stdout.trim()).with_context(|| {
                format!("cargo lambda invoke printed something that is not JSON: {stdout}")
            })?;
        }
        if let Some(status) = watcher.exited() {
            bail!(
                "cargo lambda watch exited ({status}):\n{}",
                watcher.log_tail()
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "cargo lambda invoke kept failing ({}): {}{}\nwatch log:\n{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr),
                watcher.log_tail()
            );
        }
        eprintln!(
            "[{stage}] invoke not ready yet ({}); retrying",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    eprintln!(
        "[{stage}] invoke answered after {:.1?}: {response}",
        started.elapsed()
    );
    ensure!(
        response == serde_json::json!({"batchItemFailures": []}),
        "ingest-sqs answered {response}, expected no batch item failures; watch log:\n{}",
        watcher.log_tail()
    );

    // The binary wrote the three events to the inbox on moto and enqueued them.
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let items = scan_table(&ddb, &table).await?;
    let stored: BTreeSet<String> = items
        .iter()
        .filter(|i| record::is_event(i))
        .filter(|i| {
            attr(i, field::STATUS) == Some("received") && attr(i, field::SOURCE) == Some("sqs")
        })
        .filter_map(|i| attr(i, field::CONTENT_HASH).map(str::to_string))
        .collect();
    let mut expected = BTreeSet::new();
    for record in &batch.records {
        let body = record.body.as_deref().unwrap_or_default();
        let hint = |k: &str| {
            record
                .message_attributes
                .get(k)
                .and_then(|a| a.string_value.as_deref())
        };
        let event = live_events::parse_json(
            body.as_bytes(),
            DeliveryHints {
                event_name: hint("event_name"),
                event_time: hint("event_time"),
            },
        )?;
        expected.insert(event.content_hash);
    }
    ensure!(
        expected.len() == 3,
        "the fixture should hold 3 distinct events, found {}",
        expected.len()
    );
    ensure!(
        stored == expected,
        "inbox after the invoke: {} items ({stored:?}), expected the fixture's {expected:?}",
        items.len()
    );
    let changes = take_queued(&aws_sdk_sqs::Client::new(&sdk), &changes_queue).await?;
    let enqueued: BTreeSet<String> = changes
        .iter()
        .map(|c| c.message.event_hash.clone())
        .collect();
    ensure!(
        changes.len() == 3 && enqueued == expected,
        "changes.fifo after the invoke: {enqueued:?}"
    );

    let leftovers = watcher.kill_all();
    ensure!(
        leftovers.is_empty(),
        "processes of cargo lambda watch still running after kill: {leftovers:?}"
    );
    drop(watcher);
    moto.stop();
    eprintln!("[{stage}] ok in {:.1?}", started.elapsed());
    Ok(())
}
