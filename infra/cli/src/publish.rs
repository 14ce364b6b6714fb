//! `coursewire publish-replay`: the publish workflow run again for one recording or a
//! section's recordings, in this process with the deployment's own tables, secrets and
//! Canvas quota, printing what each step did (or, with --dry-run, would do).

use anyhow::{Context, Result};
use coursewire_cli::deployment::{Deployment, ViewerSettings};
use coursewire_publishing::{PublishReplay, ReplayReport};
use coursewire_runtime::telemetry::CollectingSink;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
#[command(
    about = "Run the publish workflow again for a recording, or a section's recordings.",
    long_about = "Run the publish workflow again (matched, filed, captioned, shared, posted, \
                  audited) for one Panopto session, or for every recording of a Canvas \
                  section, optionally within a range of lecture dates.\n\n\
                  Each step is looked at first: what is already done is recognised and \
                  skipped, so a replay of a published recording changes nothing, and running \
                  it twice changes nothing the second time. --force STEP takes a step again \
                  (for example --force post after a Canvas module was rebuilt by hand). \
                  --dry-run says what each recording's next step would do and changes \
                  nothing.\n\n\
                  The workflow runs in this process exactly as the orchestrator function runs \
                  it, with the stage's tables, secrets and the shared Canvas quota; the audit \
                  trail names coursewire-cli. --panopto-user-provider and \
                  --panopto-institution-group must be the deployment's PanoptoUserProvider and \
                  PanoptoInstitutionGroupId parameters.\n\n\
                  AWS access uses the standard AWS configuration. Permissions needed: those of \
                  the orchestrator function, plus sns:ListTopics to find the incidents topic. \
                  Set AWS_ENDPOINT_URL to the moto endpoint `coursewire-local up` prints to \
                  work on the local stack.\n\n\
                  Exit status: 0 when every recording was replayed (dry run: planned), 1 when \
                  some could not be, 2 for invalid options.",
    after_help = "Examples:\n  \
                  coursewire publish-replay --stage prod --session 3f2c9a1e-7b7d-4c11-9a52-1f0e8b7c6d5a --dry-run\n  \
                  coursewire publish-replay --stage prod --section 2107000000000901 --from 2026-10-01 --to 2026-10-31\n  \
                  coursewire publish-replay --stage prod --section 2107000000000901 --force post"
)]
pub struct Args {
    /// The Panopto session id of one recording.
    #[arg(long, conflicts_with = "section", required_unless_present = "section")]
    session: Option<String>,
    /// The Canvas section id: every recording of it.
    #[arg(long)]
    section: Option<String>,
    /// With --section: the first lecture date, YYYY-MM-DD (the lecture's local date).
    #[arg(long, requires = "section", value_name = "DATE")]
    from: Option<String>,
    /// With --section: the last lecture date, YYYY-MM-DD, inclusive.
    #[arg(long, requires = "section", value_name = "DATE")]
    to: Option<String>,
    /// Take this step again even if it was done: match, file, caption, access, post or
    /// audit. Repeat for several.
    #[arg(long = "force", value_name = "STEP")]
    force: Vec<String>,
    /// Say what each recording's next step would do; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Deployment stage: names every table, secret and topic as template.yaml does.
    #[arg(long, default_value = "dev")]
    stage: String,
    /// The deployment's PanoptoUserProvider parameter.
    #[arg(long, default_value = "canvas", value_name = "PROVIDER")]
    panopto_user_provider: String,
    /// The deployment's PanoptoInstitutionGroupId parameter (empty when not set).
    #[arg(long, default_value = "", value_name = "GROUP")]
    panopto_institution_group: String,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn main(args: Args) -> ExitCode {
    let request = PublishReplay {
        session_id: args.session.clone(),
        section_id: args.section.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        force: args.force.clone(),
        dry_run: args.dry_run,
    };
    // Validate before touching AWS, so a typo costs nothing.
    if let Err(e) = request.check() {
        eprintln!("coursewire publish-replay: {e}");
        return ExitCode::from(2);
    }
    match run(&args, &request).await {
        Ok(report) if report.failed.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("coursewire publish-replay: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: &Args, request: &PublishReplay) -> Result<ReplayReport> {
    let aws = aws_config::load_from_env().await;
    let viewers = ViewerSettings {
        user_provider: args.panopto_user_provider.clone(),
        institution_group: args.panopto_institution_group.clone(),
    };
    let orchestrator = Deployment::new(&args.stage)
        .orchestrator(&aws, &viewers, Arc::new(CollectingSink::new()))
        .await?;
    let report = orchestrator
        .replay(request)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("replaying")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(report)
}

/// The report as an operator reads it: a recording per paragraph, a step per line.
fn text(report: &ReplayReport) -> String {
    let mut out = String::new();
    if report.recordings.is_empty() && report.failed.is_empty() {
        out.push_str("no recordings matched\n");
    }
    for recording in &report.recordings {
        out.push_str(&format!(
            "session {}: {}\n",
            recording.session_id,
            recording.status.as_str()
        ));
        for step in &recording.steps {
            out.push_str(&format!(
                "  {:<8} {:<13} {}\n",
                step.step.as_str(),
                step.outcome,
                step.detail
            ));
        }
        if let Some(waiting) = &recording.waiting {
            out.push_str(&format!("  waiting: {waiting}\n"));
        }
    }
    for (session, why) in &report.failed {
        out.push_str(&format!("session {session}: not replayed: {why}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use coursewire_publishing::publisher::StepReport;
    use coursewire_publishing::{Advanced, Status, Step};

    #[test]
    fn the_text_report_lists_each_step_and_each_failure() {
        let report = ReplayReport {
            recordings: vec![Advanced {
                session_id: "s-1".into(),
                status: Status::Published,
                steps: vec![StepReport {
                    step: Step::Post,
                    outcome: "already_done",
                    detail: "module item 7 in Lecture recordings".into(),
                }],
                waiting: None,
            }],
            failed: vec![("s-2".into(), "no recording events for this session".into())],
        };
        let text = text(&report);
        assert!(text.contains("session s-1: published\n"), "{text}");
        assert!(
            text.contains("  post     already_done  module item 7 in Lecture recordings\n"),
            "{text}"
        );
        assert!(text.contains("session s-2: not replayed: no recording events"));
    }
}
