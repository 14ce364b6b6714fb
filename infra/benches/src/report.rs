//! What every benchmark binary shares: stages, progress bars and latency histograms, and
//! what it prints about where and how it ran, so a figure pasted into BENCHMARKS.md carries
//! its machine, commit and exact command, in one format.

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Logs to stderr at `default_level` unless `log_env` says otherwise; warns when the
/// numbers would come from a debug build.
pub fn start_run(log_env: &str, default_level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(log_env)
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .compact()
        .init();
    if cfg!(debug_assertions) {
        step("warning: debug build; numbers are only meaningful with --release");
    }
}

/// The result block for BENCHMARKS.md: `key  value` lines, then where it ran and how to run
/// it again, then notes and failures.
pub fn result_block(
    binary: &str,
    mut lines: Vec<(String, String)>,
    notes: &[String],
    failures: &[String],
) -> String {
    lines.push(("machine".to_string(), machine()));
    lines.push(("command".to_string(), command_line(binary)));
    let width = lines
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::from("\n```text\n");
    for (key, value) in lines {
        out.push_str(&format!("{key:<width$}  {value}\n"));
    }
    for note in notes {
        out.push_str(&format!("note: {note}\n"));
    }
    for failure in failures {
        out.push_str(&format!("failed: {failure}\n"));
    }
    out.push_str("```");
    out
}

/// A stage of the run, on stderr (stdout carries the result block).
pub fn step(text: &str) {
    eprintln!("▸ {text}");
}

/// A progress bar on stderr labelled `label` (hidden when stderr is not a terminal).
pub fn progress(len: usize, label: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{elapsed_precise}] [{bar:40.cyan/blue}] {pos}/{len} ({per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(label);
    bar
}

/// A latency histogram in microseconds, 1 µs to `max_us`, three significant figures.
pub fn histogram(max_us: u64) -> Histogram<u64> {
    Histogram::new_with_bounds(1, max_us.max(2), 3)
        .expect("bounds 1..max (max >= 2) with 3 significant figures are valid")
}

/// A duration in whole microseconds, at least 1 (what [`histogram`] records).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Cores, CPU model, architecture and the load average when the run ended.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    format!(
        "{cores} cores, {model}, {}; load average {load} at the end",
        std::env::consts::ARCH
    )
}

/// The repository's short commit, when it is a git checkout.
pub fn git_commit() -> Option<String> {
    let root = coursewire_local::repo::repo_root().ok()?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

/// The command that reproduces this run: `cargo run` of `binary` with the same arguments.
pub fn command_line(binary: &str) -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut line = format!("cargo run --release -p coursewire-benches --bin {binary}");
    if !args.is_empty() {
        line.push_str(" -- ");
        line.push_str(&args.join(" "));
    }
    line
}

/// `p50 … p90 … p99 … max … (n=…)` in milliseconds of a histogram recorded in microseconds.
pub fn percentiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    let ms = |us: u64| {
        let ms = us as f64 / 1e3;
        if ms < 10.0 {
            format!("{ms:.2}")
        } else {
            format!("{ms:.1}")
        }
    };
    format!(
        "p50 {}  p90 {}  p99 {}  max {}  (n={})",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        h.len()
    )
}
