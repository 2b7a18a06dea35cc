//! The `refedge` binary: parse the command line and hand it to its command
//! (`refedge::commands`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use refedge::commands;

#[global_allocator]
static ALLOCATOR: refedge::sys::alloc::Allocator = refedge::sys::alloc::Allocator;

#[derive(Parser)]
#[command(
    name = "refedge",
    version,
    about = "Edge redirector and click tracker for referral links"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the edge (the default).
    Serve {
        /// Config file [default: config/refedge.toml]
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate the config and the links file; one line per problem.
    Check {
        /// Config file [default: config/refedge.toml]
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Join conversions to clicks and write attributions.
    Match {
        /// Config file [default: config/refedge.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Join offline over the segments of this spool directory, writing
        /// attributions as JSON Lines to standard output (no Kafka)
        #[arg(long)]
        spool: Option<PathBuf>,
    },
    /// POST every attribution to the configured webhook endpoints.
    Deliver {
        /// Config file [default: config/refedge.toml]
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The program's numbers in ClickHouse.
    Clickhouse {
        #[command(subcommand)]
        command: Clickhouse,
    },
}

#[derive(Subcommand)]
enum Clickhouse {
    /// Print the SQL that makes the click and attribution tables: fed by
    /// the config's Kafka topics, or by files
    Schema {
        /// Config file [default: config/refedge.toml]
        #[arg(long)]
        config: Option<PathBuf>,
        /// Load from a spool directory and an attributions file (`refedge
        /// match --spool` output) instead of Kafka
        #[arg(long, num_args = 2, value_names = ["SPOOL_DIR", "ATTRIBUTIONS_FILE"])]
        files: Option<Vec<PathBuf>>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Some(Command::Check { config }) => commands::check(config),
        Some(Command::Match { config, spool }) => commands::match_conversions(config, spool),
        Some(Command::Deliver { config }) => commands::deliver(config),
        Some(Command::Clickhouse {
            command: Clickhouse::Schema { config, files },
        }) => commands::clickhouse_schema(config, files),
        Some(Command::Serve { config }) => commands::serve(config),
        None => commands::serve(None),
    }
}
