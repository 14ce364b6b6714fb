//! `coursewire replay`: re-sends a window of stored Canvas live events from the inbox to
//! `changes.fifo`, in this process (no Lambda invoke), with a progress bar and a summary.

use anyhow::{Context, Result, anyhow};
use aws_sdk_sqs::error::ProvideErrorMetadata;
use coursewire_cli::deployment::Deployment;
use coursewire_pipeline::replay::{ReplayConfig, ReplayPlan, ReplayReport, ReplayRequest};
use coursewire_runtime::telemetry::CollectingSink;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Failures listed one by one in the summary (all are counted; `--json` lists up to 1000).
const FAILURES_SHOWN: usize = 20;

#[derive(clap::Args, Debug)]
#[command(
    about = "Send Canvas live events stored in the coursewire inbox through the pipeline again, \
             for a window of Canvas event time.",
    long_about = "Send Canvas live events stored in the coursewire inbox through the pipeline \
                  again, for a window of Canvas event time. Use it after the processor or the \
                  event bus had an outage, or when a downstream system needs events again.\n\n\
                  Two modes:\n  \
                  heal (default)  sends only events that never made it onto the event bus. \
                  Events already published are skipped, and the processor skips anything it \
                  applied before, so running the same replay twice is harmless.\n  \
                  --republish     also re-emits events that were already published, with \
                  their original event id and `replay: true`. Every subscriber receives them \
                  again (they deduplicate by event_id); use it when a subscriber lost data.\n\n\
                  Start with --dry-run: it reads the window and prints what would be sent, \
                  per event name, without sending anything.\n\n\
                  Each entity's events are sent in Canvas event-time order. If sending one \
                  fails, the same entity's later events are held back (sending them would \
                  break its order); run the command again to retry them.\n\n\
                  AWS access uses the standard AWS configuration (AWS_PROFILE, AWS_REGION, \
                  credentials). Set AWS_ENDPOINT_URL to the moto endpoint that `coursewire-local \
                  up` prints to replay on the local stack. Permissions needed: dynamodb:Query \
                  on the inbox table's by_time index, sqs:GetQueueUrl and sqs:SendMessage on \
                  the changes queue.\n\n\
                  Exit status: 0 when every selected event was sent (dry run: read), 1 when \
                  some were not (send failures, unreadable inbox records, or the run stopped \
                  early), 2 for invalid options.",
    after_help = "Examples:\n  \
                  coursewire replay --stage prod --from 2024-03-04T08:00:00Z --to 2024-03-04T12:00:00Z --dry-run\n  \
                  coursewire replay --stage prod --from 2024-03-04T08:00:00Z --to 2024-03-04T12:00:00Z\n  \
                  coursewire replay --stage prod --from 2024-03-01 --event-name grade_change --republish\n  \
                  coursewire replay --stage prod --from 2024-03-01 --entity course:21070000000000042"
)]
pub struct Args {
    /// Start of the window (inclusive), by the time Canvas says the event happened: RFC 3339
    /// such as 2024-03-04T10:00:00Z (or with an offset, +01:00), or a date for 00:00 UTC.
    #[arg(long, value_name = "TIME")]
    from: String,
    /// End of the window (exclusive); default: now. At most 90 days after --from.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Only events with this Canvas event name, e.g. grade_change. Repeat for several.
    #[arg(long = "event-name", value_name = "NAME")]
    event_names: Vec<String>,
    /// Only events about this entity, e.g. course:21070000000000042 or
    /// enrollment:21070000000046825 (global Canvas ids). Repeat for several.
    #[arg(long = "entity", value_name = "KEY")]
    entities: Vec<String>,
    /// Also re-emit events that were already published (see the modes above).
    #[arg(long)]
    republish: bool,
    /// Read and count only; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Deployment stage: names the inbox table (coursewire-inbox-<stage>) and the changes
    /// queue (coursewire-changes-<stage>.fifo) as template.yaml does.
    #[arg(long, default_value = "dev")]
    stage: String,
    /// Inbox table name, instead of the one derived from --stage.
    #[arg(long, value_name = "TABLE")]
    inbox_table: Option<String>,
    /// changes.fifo queue URL, instead of looking up the one derived from --stage.
    #[arg(long, value_name = "URL")]
    changes_queue_url: Option<String>,
    /// Names this run in messages and logs (1-60 of A-Z a-z 0-9 _ -); default: generated.
    /// Re-running with the same id within 5 minutes sends nothing twice (SQS deduplicates).
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
    /// Print the full report as JSON on stdout instead of the summary.
    #[arg(long)]
    json: bool,
}

pub async fn main(args: Args) -> ExitCode {
    let request = ReplayRequest {
        from: args.from.clone(),
        to: args.to.clone(),
        event_names: args.event_names.clone(),
        entity_keys: args.entities.clone(),
        republish: args.republish,
        dry_run: args.dry_run,
        request_id: args.request_id.clone(),
    };
    // Validate before touching AWS, so a typo costs nothing.
    let plan = match request.plan(chrono::Utc::now()) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args, &plan).await {
        Ok(report) if report.is_complete() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: &Args, plan: &ReplayPlan) -> Result<ReplayReport> {
    let aws = aws_config::load_from_env().await;
    let inbox_table = args
        .inbox_table
        .clone()
        .unwrap_or_else(|| Deployment::new(&args.stage).named("inbox"));
    let changes_queue_url = match &args.changes_queue_url {
        Some(url) => url.clone(),
        None => {
            let name = Deployment::new(&args.stage).changes_queue();
            aws_sdk_sqs::Client::new(&aws)
                .get_queue_url()
                .queue_name(&name)
                .send()
                .await
                .map_err(|e| {
                    // The service's code and message say it all; the full context only helps
                    // when there is no answer (endpoint unreachable, no credentials).
                    let detail = match e.code() {
                        Some(code) => format!("{code}: {}", e.message().unwrap_or_default()),
                        None => aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
                    };
                    anyhow!(
                        "looking up queue {name} (is stage `{}` deployed in this account and \
                         region? --changes-queue-url skips the lookup): {detail}",
                        args.stage
                    )
                })?
                .queue_url
                .with_context(|| format!("no URL for queue {name}"))?
        }
    };
    let config = ReplayConfig::from_lookup(|name| match name {
        "INBOX_TABLE" => Some(inbox_table.clone()),
        "CHANGES_QUEUE_URL" => Some(changes_queue_url.clone()),
        _ => None,
    })?;
    // The summary below is the operator's view; EMF metrics are for the Lambda's logs.
    let replayer = config.build(&aws, Arc::new(CollectingSink::new()), "coursewire replay");

    let hours = plan.hour_slices().len() as u64;
    if !args.json {
        print_header(plan, hours, &inbox_table, &changes_queue_url);
    }
    let bar = progress_bar(hours, plan.dry_run, args.json);
    let report = {
        let bar = bar.clone();
        let dry_run = plan.dry_run;
        replayer
            .execute(plan, &move |p| {
                bar.set_position(p.hours_done);
                bar.set_message(if dry_run {
                    format!("{} selected · {} would be sent", p.selected, p.to_send)
                } else {
                    format!(
                        "{} selected · {} sent · {} failed",
                        p.selected, p.enqueued, p.failed
                    )
                });
            })
            .await
    };
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report, args);
    }
    Ok(report)
}

fn print_header(plan: &ReplayPlan, hours: u64, table: &str, queue: &str) {
    let mode = match (plan.dry_run, plan.mode.as_str()) {
        (true, mode) => format!("{mode} (dry run: nothing is sent)"),
        (false, mode) => mode.to_string(),
    };
    let list = |set: &std::collections::BTreeSet<String>| {
        if set.is_empty() {
            "all".to_string()
        } else {
            set.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    println!("coursewire replay · {mode}");
    let span = plan.to - plan.from;
    println!(
        "  window      {} → {} ({}d {}h {}m, {hours} hour bucket{})",
        plan.from
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        plan.to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        span.num_days(),
        span.num_hours() % 24,
        span.num_minutes() % 60,
        if hours == 1 { "" } else { "s" }
    );
    println!("  events      {}", list(&plan.event_names));
    println!("  entities    {}", list(&plan.entity_keys));
    println!("  inbox       {table}");
    println!("  queue       {queue}");
    println!("  request id  {}", plan.request_id);
    println!();
}

fn progress_bar(hours: u64, dry_run: bool, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(hours);
    let verb = if dry_run { "reading" } else { "replaying" };
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "  {{bar:32.cyan/blue}} {{pos:>5}}/{{len}} hour buckets {verb} · {{msg}}"
    )) {
        bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn print_summary(report: &ReplayReport, args: &Args) {
    let send_column = if report.dry_run {
        "would send"
    } else {
        "to send"
    };
    if report.by_event_name.is_empty() {
        println!("no events in the window match");
    } else {
        let width = report
            .by_event_name
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max("event name".len());
        println!(
            "  {:<width$}  {:>9}  {:>10}",
            "event name", "selected", send_column
        );
        for (name, counts) in &report.by_event_name {
            println!(
                "  {name:<width$}  {:>9}  {:>10}",
                counts.selected, counts.to_send
            );
        }
        println!(
            "  {:<width$}  {:>9}  {:>10}",
            "total", report.selected, report.to_send
        );
    }
    println!();
    let statuses: Vec<String> = report
        .by_status
        .iter()
        .map(|(status, n)| format!("{status} {n}"))
        .collect();
    if !statuses.is_empty() {
        println!("  inbox status       {}", statuses.join(" · "));
    }
    if report.already_published > 0 {
        println!(
            "  already published  {} (skipped: heal mode sends only what never reached the bus)",
            report.already_published
        );
    }
    if !report.dry_run {
        println!("  sent               {}", report.enqueued);
        println!("  failed             {}", report.failed);
        for failure in report.failures.iter().take(FAILURES_SHOWN) {
            println!(
                "    {}  {}  {}",
                failure.event_hash, failure.event_name, failure.error
            );
        }
        if report.failed as usize > FAILURES_SHOWN {
            println!(
                "    … and {} more (--json lists them)",
                report.failed as usize - FAILURES_SHOWN
            );
        }
    }
    if report.unreadable_count > 0 {
        println!(
            "  unreadable         {} inbox record(s) could not be turned back into events:",
            report.unreadable_count
        );
        for record in report.unreadable.iter().take(FAILURES_SHOWN) {
            println!("    {}  {}", record.event_hash, record.reason);
        }
    }
    println!(
        "  took               {:.1} s",
        report.duration_ms as f64 / 1000.0
    );
    if let Some(incomplete) = &report.incomplete {
        println!();
        println!("stopped early: {}", incomplete.reason);
        println!(
            "nothing from {} on was replayed; run again with --from {} (and the same other \
             options) to finish",
            incomplete.resume_from, incomplete.resume_from
        );
    }
    if report.failed > 0 {
        println!();
        println!(
            "{} event(s) were not sent. Run the same command again to retry them{}.",
            report.failed,
            if args.republish {
                " (with --republish, events that did get through are re-emitted once more)"
            } else {
                "; what already got through is skipped"
            }
        );
    }
    if report.dry_run && report.is_complete() {
        println!();
        println!("dry run: nothing was sent. Run again without --dry-run to send.");
    }
}
