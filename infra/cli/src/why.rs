//! `coursewire why-missing`: the whole story of a section's (or course's) lectures on one
//! day, from the audit trail, with a one-line verdict each.

use anyhow::{Context, Result};
use chrono::{NaiveDate, Utc};
use coursewire_audit::{DynamoAuditTrail, Scope, WhyMissing};
use coursewire_cli::deployment::Deployment;
use coursewire_teaching::DynamoTeachingStore;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug)]
#[command(
    about = "Explain a day's lectures of a section or course: recorded, published, or why not.",
    long_about = "Explain a day's lectures of a Canvas section (or of every section of a \
                  course): the schedule and room, the booking, every recorder and session \
                  state the poller saw, the recording events, each step of the publish \
                  workflow, the incidents, and a one-line verdict such as \"recorder in room \
                  B-204 was Disconnected from 09:55 to 11:20; no session was created; \
                  incident missing_recording opened 11:05\".\n\n\
                  Times are the lecture's local wall clock. --json prints the same as JSON (one \
                  object per lecture) for scripts and the admin API.\n\n\
                  AWS access uses the standard AWS configuration; set AWS_ENDPOINT_URL to the \
                  moto endpoint `coursewire-local up` prints to ask the local stack.\n\n\
                  Exit status: 0 when the lectures were found (1 when there are none or a read \
                  failed), 2 for invalid options.",
    after_help = "Examples:\n  \
                  coursewire why-missing --stage prod --section 2107000000000901 --date 2026-10-27\n  \
                  coursewire why-missing --stage prod --course 21070000000000042 --date 2026-10-27 --json"
)]
pub struct Args {
    /// The Canvas section id.
    #[arg(long, conflicts_with = "course", required_unless_present = "course")]
    section: Option<String>,
    /// The Canvas course id: every section of it.
    #[arg(long)]
    course: Option<String>,
    /// The lectures' local date, YYYY-MM-DD.
    #[arg(long)]
    date: NaiveDate,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Deployment stage: names the tables (coursewire-teaching-<stage>, coursewire-audit-<stage>).
    #[arg(long, default_value = "dev")]
    stage: String,
    /// Teaching catalog table, instead of the one derived from --stage.
    #[arg(long, value_name = "TABLE")]
    teaching_table: Option<String>,
    /// Audit table, instead of the one derived from --stage.
    #[arg(long, value_name = "TABLE")]
    audit_table: Option<String>,
}

pub async fn main(args: Args) -> ExitCode {
    match run(&args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("coursewire why-missing: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: &Args) -> Result<ExitCode> {
    let aws = aws_config::load_from_env().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let deployment = Deployment::new(&args.stage);
    let table = |given: &Option<String>, kind: &str| {
        given.clone().unwrap_or_else(|| deployment.named(kind))
    };
    let why = WhyMissing::new(
        Arc::new(DynamoTeachingStore::new(
            dynamodb.clone(),
            table(&args.teaching_table, "teaching"),
        )),
        Arc::new(DynamoAuditTrail::new(
            dynamodb,
            table(&args.audit_table, "audit"),
        )),
    );
    let scope = match (&args.section, &args.course) {
        (Some(section), _) => Scope::Section(section.clone()),
        (None, Some(course)) => Scope::Course(course.clone()),
        (None, None) => anyhow::bail!("give --section or --course"),
    };
    let started = Instant::now();
    let lectures = why
        .explain(&scope, args.date, Utc::now())
        .await
        .context("reading the teaching catalog and the audit trail")?;
    let took = started.elapsed();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lectures)?);
    } else {
        for lecture in &lectures {
            println!("{}", lecture.text());
        }
        eprintln!(
            "{} lecture(s) on {} answered in {} ms",
            lectures.len(),
            args.date,
            took.as_millis()
        );
    }
    Ok(if lectures.is_empty() {
        eprintln!(
            "coursewire why-missing: no lectures of that scope on {}",
            args.date
        );
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
