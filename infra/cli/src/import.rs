//! `coursewire import`: the registrar's rooms, meeting patterns and publishing rules into the
//! teaching catalog, checked whole before anything is written.

use anyhow::{Context, Result};
use coursewire_audit::DynamoAuditTrail;
use coursewire_cli::deployment::Deployment;
use coursewire_live_events::catalog::DynamoCatalog;
use coursewire_panopto::{HttpPanopto, HttpSettings};
use coursewire_recordings::booking::Scheduler;
use coursewire_teaching::import::{Action, ImportFailure, ImportFile, ImportFiles, Importer, Plan};
use coursewire_teaching::sections::CatalogDirectory;
use coursewire_teaching::{DynamoTeachingStore, Kind};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Changes listed one by one in the report (all are counted).
const CHANGES_SHOWN: usize = 25;

#[derive(clap::Args, Debug)]
#[command(
    about = "Import rooms, meeting patterns and publishing rules into the teaching catalog.",
    long_about = "Import the registrar's rooms, section meeting patterns and the departments' \
                  publishing rules into coursewire's teaching catalog, and expand the meeting \
                  patterns into one lecture per meeting.\n\n\
                  Every file is read and checked before anything is written: if any file has an \
                  error, every error is listed (file, row and field) and nothing is written. \
                  Otherwise the report shows what changes: per kind, how many entries are \
                  created, updated, cancelled (lectures no longer produced) or already right. \
                  Start with --dry-run to see the report without writing.\n\n\
                  Running the same import again changes nothing; an import that was \
                  interrupted is completed by running it again. Rooms and rules that are in the \
                  catalog but not in the files are left in place; lectures of an imported \
                  section that its new pattern no longer produces are marked cancelled.\n\n\
                  Sections are Canvas sections that coursewire's catalog already knows (from \
                  the change bus); their course, names and codes are read from there. The \
                  columns of each file are described in the README (\"Teaching catalog\").\n\n\
                  AWS access uses the standard AWS configuration; set AWS_ENDPOINT_URL to the \
                  moto endpoint `coursewire-local up` prints to import into the local stack.\n\n\
                  After writing, the imported sections' lectures are booked in Panopto right \
                  away, as the recording-scheduler function does every 15 minutes \
                  (--no-booking skips it). That needs read access to the Panopto credentials \
                  secret.\n\n\
                  Exit status: 0 when the import was applied (dry run: planned), 1 when the \
                  files have errors, a write failed or a lecture could not be booked, 2 for \
                  invalid options.",
    after_help = "Examples:\n  \
                  coursewire import --stage prod --rooms rooms.csv --meetings meetings.csv --rules rules.json --dry-run\n  \
                  coursewire import --stage prod --meetings fall-2026/meetings.csv"
)]
pub struct Args {
    /// rooms.csv: room_id, building, name, capacity, time_zone[, recorder_id].
    #[arg(long, value_name = "FILE")]
    rooms: Option<PathBuf>,
    /// meetings.csv: one weekly row per section, plus cancelled, extra and holiday rows.
    #[arg(long, value_name = "FILE")]
    meetings: Option<PathBuf>,
    /// rules.json: the publishing rules, an array or {"rules": [...]}.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Check and plan only; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Deployment stage: names the tables (coursewire-teaching-<stage>, coursewire-catalog-<stage>).
    #[arg(long, default_value = "dev")]
    stage: String,
    /// Teaching catalog table, instead of the one derived from --stage.
    #[arg(long, value_name = "TABLE")]
    teaching_table: Option<String>,
    /// Canvas catalog table, instead of the one derived from --stage.
    #[arg(long, value_name = "TABLE")]
    catalog_table: Option<String>,
    /// Audit table the bookings are recorded in, instead of the one derived from --stage.
    #[arg(long, value_name = "TABLE")]
    audit_table: Option<String>,
    /// After the import, do not book the imported sections' lectures in Panopto now (the
    /// recording-scheduler function still does within 15 minutes).
    #[arg(long)]
    no_booking: bool,
    /// Panopto credentials secret, instead of the one derived from --stage
    /// (coursewire/<stage>/panopto).
    #[arg(long, value_name = "SECRET")]
    panopto_secret: Option<String>,
}

pub async fn main(args: Args) -> ExitCode {
    if args.rooms.is_none() && args.meetings.is_none() && args.rules.is_none() {
        eprintln!("coursewire import: give at least one of --rooms, --meetings, --rules");
        return ExitCode::from(2);
    }
    match run(&args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("coursewire import: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn read(path: &Option<PathBuf>) -> Result<Option<ImportFile>> {
    path.as_ref()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            Ok(ImportFile { name, text })
        })
        .transpose()
}

async fn run(args: &Args) -> Result<ExitCode> {
    let files = ImportFiles {
        rooms: read(&args.rooms)?,
        meetings: read(&args.meetings)?,
        rules: read(&args.rules)?,
    };
    let aws = aws_config::load_from_env().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let teaching_table = args
        .teaching_table
        .clone()
        .unwrap_or_else(|| Deployment::new(&args.stage).named("teaching"));
    let catalog_table = args
        .catalog_table
        .clone()
        .unwrap_or_else(|| Deployment::new(&args.stage).named("catalog"));
    let store = DynamoTeachingStore::new(dynamodb.clone(), &teaching_table);
    let directory = CatalogDirectory::new(DynamoCatalog::new(dynamodb.clone(), &catalog_table));
    let importer = Importer::new(&store, &directory);

    println!("coursewire import → {teaching_table}");
    let started = Instant::now();
    let plan = match importer.prepare(&files).await {
        Ok(plan) => plan,
        Err(ImportFailure::Invalid(errors)) => {
            println!("\n{} error(s); nothing was written:\n", errors.len());
            for error in &errors {
                println!("  {error}");
            }
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    print_plan(&plan, args.dry_run);
    if args.dry_run || plan.is_empty() {
        println!(
            "\n{} in {:.1} s.",
            if plan.is_empty() {
                "Nothing to change"
            } else {
                "Dry run: nothing written"
            },
            started.elapsed().as_secs_f64()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let bar = progress_bar(plan.changes.len() as u64);
    let result = importer
        .apply(&plan, &|done, _| bar.set_position(done as u64))
        .await;
    bar.finish_and_clear();
    match result {
        Ok(()) => {
            println!(
                "\nWrote {} change(s) in {:.1} s.",
                plan.changes.len(),
                started.elapsed().as_secs_f64()
            );
            if args.no_booking || plan.sections().is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            book(
                args,
                &aws,
                &dynamodb,
                &teaching_table,
                &catalog_table,
                &plan.sections(),
            )
            .await
        }
        Err(e) => {
            println!(
                "\nThe import stopped: {e}. What was written is kept; run the same command \
                 again to complete it."
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// Books the imported sections' lectures in Panopto now, as recording-scheduler would.
async fn book(
    args: &Args,
    aws: &aws_config::SdkConfig,
    dynamodb: &aws_sdk_dynamodb::Client,
    teaching_table: &str,
    catalog_table: &str,
    sections: &[String],
) -> Result<ExitCode> {
    let secret = args
        .panopto_secret
        .clone()
        .unwrap_or_else(|| Deployment::new(&args.stage).secret("panopto"));
    let panopto = HttpPanopto::from_secrets_manager(
        aws_sdk_secretsmanager::Client::new(aws),
        secret,
        HttpSettings::default(),
    )?;
    let scheduler = Scheduler::new(
        Arc::new(DynamoTeachingStore::new(dynamodb.clone(), teaching_table)),
        Arc::new(panopto),
        Arc::new(CatalogDirectory::new(DynamoCatalog::new(
            dynamodb.clone(),
            catalog_table,
        ))),
        Arc::new(DynamoAuditTrail::new(
            dynamodb.clone(),
            args.audit_table
                .clone()
                .unwrap_or_else(|| Deployment::new(&args.stage).named("audit")),
        )),
    );
    println!(
        "\nBooking the lectures of {} section(s) in Panopto…",
        sections.len()
    );
    let report = scheduler
        .sync_sections(sections, chrono::Utc::now())
        .await?;
    println!(
        "  booked {}, found already booked {}, moved {}, re-booked {}, cancelled {}, unchanged {}, not recorded {}",
        report.booked,
        report.adopted,
        report.moved,
        report.rebooked,
        report.cancelled,
        report.unchanged,
        report.not_recorded
    );
    for (lecture, why) in report.conflicts.iter().chain(&report.failed) {
        println!("  {lecture}: {why}");
    }
    Ok(if report.conflicts.is_empty() && report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("  Conflicts are kept on their lectures; recording-scheduler retries failures.");
        ExitCode::from(1)
    })
}

fn print_plan(plan: &Plan, dry_run: bool) {
    let verb = if dry_run { "would" } else { "will" };
    println!("\nWhat the import {verb} change:\n");
    println!(
        "  {:<9} {:>7} {:>7} {:>7} {:>10} {:>13}",
        "", "create", "update", "cancel", "unchanged", "not in files"
    );
    for kind in [Kind::Room, Kind::Rule, Kind::Meeting, Kind::Lecture] {
        let t = plan.tally.get(&kind).cloned().unwrap_or_default();
        println!(
            "  {:<9} {:>7} {:>7} {:>7} {:>10} {:>13}",
            format!("{}s", kind.as_str()),
            t.create,
            t.update,
            t.cancel,
            t.unchanged,
            t.not_in_files
        );
    }
    if plan.changes.is_empty() {
        return;
    }
    println!();
    for change in plan.changes.iter().take(CHANGES_SHOWN) {
        let fields = match change.action {
            Action::Update => format!(" ({})", change.fields.join(", ")),
            _ => String::new(),
        };
        println!(
            "  {:<6} {:<8} {}{fields}",
            change.action.as_str(),
            change.entry.kind().as_str(),
            change.entry.id()
        );
    }
    if plan.changes.len() > CHANGES_SHOWN {
        println!("  … and {} more", plan.changes.len() - CHANGES_SHOWN);
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("  {bar:32.cyan/blue} {pos:>6}/{len} written · {elapsed}")
    {
        bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
