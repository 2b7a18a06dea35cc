//! The `refedge` binary: parse the command line, load the config, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use refedge::config::{Config, LogFormat};

#[global_allocator]
static ALLOCATOR: refedge::alloc::Allocator = refedge::alloc::Allocator;

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
}

const DEFAULT_CONFIG: &str = "config/refedge.toml";

fn load(path: Option<PathBuf>) -> Result<Config, refedge::config::ConfigError> {
    // An explicit --config must exist; the default may be absent (defaults apply).
    let required = path.is_some();
    Config::load(
        &path.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
        required,
    )
}

fn init_logging(config: &Config) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| f.parse::<tracing_subscriber::EnvFilter>().ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(&config.log.level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Plain => builder.init(),
    }
}

fn check(path: Option<PathBuf>) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(e) => {
            println!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut problems = refedge::events::ship::preflight(&config.events, &config.kafka);
    problems.extend(refedge::tls::check(&config.tls));
    for problem in &problems {
        println!("{problem}");
    }
    if !problems.is_empty() {
        return ExitCode::FAILURE;
    }
    match refedge::links::check_file(&config.links.file) {
        Err(e) => {
            println!(
                "links.file: cannot read {}: {e}",
                config.links.file.display()
            );
            ExitCode::FAILURE
        }
        Ok(report) if report.errors.is_empty() => {
            println!("ok: config valid, {} links", report.loaded);
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for problem in report.problems(&config.links.file) {
                println!("{problem}");
            }
            ExitCode::FAILURE
        }
    }
}

fn match_conversions(config: Option<PathBuf>, spool: Option<PathBuf>) -> ExitCode {
    let config = match load(config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("refedge: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(dir) = spool else {
        init_logging(&config);
        return match refedge::matcher::run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("refedge match: {e:#}");
                eprintln!("refedge match: {e:#}");
                ExitCode::FAILURE
            }
        };
    };
    let window_ms = u64::from(config.attribution.window_days) * 86_400_000;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let stdout = std::io::stdout().lock();
    match refedge::matcher::match_spool(&dir, window_ms, now_ms, stdout) {
        Ok(s) => {
            eprintln!(
                "refedge match: {} conversions ({} matched, {} unmatched, {} repeated event ids skipped) against {} human clicks; {} unreadable lines",
                s.conversions, s.matched, s.unmatched, s.duplicates, s.clicks, s.unreadable
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "refedge match: cannot read the spool {}: {e}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = match cli.command {
        Some(Command::Check { config }) => return check(config),
        Some(Command::Match { config, spool }) => return match_conversions(config, spool),
        Some(Command::Serve { config }) => config,
        None => None,
    };
    let config = match load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("refedge: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    match refedge::node::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("refedge: {e:#}");
            ExitCode::FAILURE
        }
    }
}
