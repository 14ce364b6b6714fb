//! `coursewire`: the operator's command-line tool for a coursewire deployment. One
//! subcommand per job; each uses the product crates directly (no Lambda invoke).

mod import;
mod publish;
mod replay;
mod why;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "coursewire",
    version,
    about = "Operate a coursewire deployment from the command line.",
    long_about = "Operate a coursewire deployment from the command line. AWS access uses the \
                  standard AWS configuration (AWS_PROFILE, AWS_REGION, credentials); set \
                  AWS_ENDPOINT_URL to the moto endpoint `coursewire-local up` prints to work \
                  on the local stack. `coursewire <command> --help` explains each command."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Import rooms, meeting patterns and publishing rules into the teaching catalog.
    Import(import::Args),
    /// Send stored Canvas live events through the pipeline again, for a window of event time.
    Replay(replay::Args),
    /// Run the publish workflow again for a recording, or a section's recordings.
    PublishReplay(publish::Args),
    /// Explain a day's lectures of a section or course: recorded, published, or why not.
    WhyMissing(why::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr and only warnings by default, so the summaries stay readable.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .compact()
        .init();
    match Cli::parse().command {
        Command::Import(args) => import::main(args).await,
        Command::Replay(args) => replay::main(args).await,
        Command::PublishReplay(args) => publish::main(args).await,
        Command::WhyMissing(args) => why::main(args).await,
    }
}
