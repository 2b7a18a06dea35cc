//! What each command of the `refedge` binary does once its arguments are
//! parsed: load the config (the file, then `REFEDGE_*`), set up logging,
//! run, and turn the outcome into the exit status: 0 done, 1 failed, 2 a
//! bad config.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;

use crate::config::{Config, LogFormat};
use crate::http::Listeners;
use crate::node::Node;
use crate::{shutdown, tls};

const DEFAULT_CONFIG: &str = "config/refedge.toml";

/// The config at `path`, or at the default path when there is none.
pub fn load(path: Option<PathBuf>) -> Result<Config, crate::config::ConfigError> {
    // An explicit --config must exist; the default may be absent (defaults apply).
    let required = path.is_some();
    Config::load(
        &path.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
        required,
    )
}

/// Logs to standard error, filtered by `RUST_LOG` or `log.level`, and
/// warns of every `REFEDGE_*` variable that sets nothing.
pub fn init_logging(config: &Config) {
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
    // Every long-running command says, first thing, which of its
    // variables set nothing (a typo would otherwise be silent).
    let env: Vec<(String, String)> = std::env::vars().collect();
    for unknown in crate::config::unknown_variables(&env) {
        tracing::warn!("{unknown}");
    }
}

/// `refedge check`: one line per problem, every one `serve` would meet
/// before binding a port: the config (every bad key and broken rule), the
/// `REFEDGE_*` variables that set nothing, the Kafka sink's preflight, the
/// certificates, the GeoIP databases and the links file (every bad line).
pub fn check(path: Option<PathBuf>) -> ExitCode {
    let (config, problems) = Config::check(
        &path
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
        path.is_some(),
    );
    let mut problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let env: Vec<(String, String)> = std::env::vars().collect();
    problems.extend(
        crate::config::unknown_variables(&env)
            .iter()
            .map(ToString::to_string),
    );
    let mut links = None;
    let mut warnings = Vec::new();
    if let Some(config) = &config {
        problems.extend(crate::events::ship::preflight(
            &config.events,
            &config.kafka,
        ));
        problems.extend(crate::tls::check(&config.tls));
        if let Err(e) = crate::geo::Geo::from_config(&config.geo) {
            problems.push(e.to_string());
        }
        if let Some(problem) = unwritable(&config.events.spool_dir) {
            problems.push(format!("events.spool_dir: {problem}"));
        }
        let store = crate::links::LinkStore::new();
        match crate::links::check_file_into(&config.links.file, &store) {
            Err(e) => problems.push(format!(
                "links.file: cannot read {}: {e}",
                config.links.file.display()
            )),
            Ok(report) => {
                problems.extend(report.problems(&config.links.file));
                links = Some(report.loaded);
            }
        }
        let on_countries = store
            .all()
            .iter()
            .filter(|l| l.choices().is_some_and(|(rules, _)| rules.name_countries()))
            .count();
        if on_countries > 0 && config.geo.city_db.is_none() {
            warnings.push(format!(
                "warning: {}: {on_countries} links have rules on country, and geo.city_db is unset: those rules never hold",
                config.links.file.display()
            ));
        }
        match crate::domains::load_file(&config.domains.file) {
            Err(e) => problems.push(format!(
                "domains.file: cannot read {}: {e}",
                config.domains.file.display()
            )),
            Ok((_, errors)) => problems.extend(errors.iter().map(|e| {
                let reasons: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
                format!(
                    "{}:{}: {}",
                    config.domains.file.display(),
                    e.line,
                    reasons.join("; ")
                )
            })),
        }
    }
    for line in warnings.iter().chain(&problems) {
        println!("{line}");
    }
    match links {
        Some(loaded) if problems.is_empty() => {
            println!("ok: config valid, {loaded} links");
            ExitCode::SUCCESS
        }
        _ => ExitCode::FAILURE,
    }
}

/// Why `serve` could not write its spool in `dir`, if it could not: the
/// directory (or, when it does not exist yet, the nearest one above it,
/// where it would be made) must be a writable directory. Leaves nothing
/// behind.
fn unwritable(dir: &std::path::Path) -> Option<String> {
    let existing = dir
        .ancestors()
        .find(|d| d.as_os_str().is_empty() || d.exists())?;
    let existing = if existing.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        existing
    };
    let meta = match std::fs::metadata(existing) {
        Ok(meta) => meta,
        Err(e) => return Some(format!("cannot read {}: {e}", existing.display())),
    };
    if !meta.is_dir() {
        return Some(format!("{} is not a directory", existing.display()));
    }
    if !writable_by_us(existing) {
        return Some(format!("cannot write to {}", existing.display()));
    }
    None
}

/// Whether this process may create files in `dir`: a probe file, removed
/// at once.
fn writable_by_us(dir: &std::path::Path) -> bool {
    let probe = dir.join(format!(".refedge-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

/// `refedge match`: the Kafka matcher, or with `--spool` the offline join.
pub fn match_conversions(config: Option<PathBuf>, spool: Option<PathBuf>) -> ExitCode {
    let config = match load(config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("refedge: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(dir) = spool else {
        return until_stopped("refedge match", config, crate::matcher::run);
    };
    let links = match crate::matcher::links::load_file(&config) {
        Ok(links) => links,
        Err(e) => {
            eprintln!("refedge match: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let rules = crate::matcher::links::rules(&config, links);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let stdout = std::io::stdout().lock();
    match crate::matcher::match_spool(&dir, &rules, now_ms, stdout) {
        Ok(s) => {
            eprintln!(
                "refedge match: {} conversions ({} matched, {} held, {} unmatched, {} reversals, {} repeated event ids skipped) against {} human clicks; {} unreadable lines",
                s.conversions,
                s.matched,
                s.held,
                s.unmatched,
                s.reversals,
                s.duplicates,
                s.clicks,
                s.unreadable
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

/// `refedge clickhouse schema`: the analytics tables' SQL on standard output.
pub fn clickhouse_schema(config: Option<PathBuf>, files: Option<Vec<PathBuf>>) -> ExitCode {
    let config = match load(config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("refedge: {e}");
            return ExitCode::from(2);
        }
    };
    let source = match files.as_deref() {
        Some([spool, attributions]) => crate::analytics::Source::Files {
            spool,
            attributions,
        },
        _ => crate::analytics::Source::Kafka(&config.kafka),
    };
    print!("{}", crate::analytics::schema(source));
    ExitCode::SUCCESS
}

/// `refedge deliver`: attributions to the webhook endpoints, until SIGTERM
/// or SIGINT.
pub fn deliver(path: Option<PathBuf>) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("refedge deliver: {e}");
            return ExitCode::from(2);
        }
    };
    until_stopped("refedge deliver", config, crate::deliver::run)
}

/// A command that runs until SIGTERM or SIGINT, with logs on: exit 1 with
/// its error (start-up, or what stopped it), named by `command`.
fn until_stopped(command: &str, config: Config, run: fn(Config) -> anyhow::Result<()>) -> ExitCode {
    init_logging(&config);
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{command}: {e:#}");
            eprintln!("{command}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `refedge serve`: the edge, until SIGTERM or SIGINT.
pub fn serve(path: Option<PathBuf>) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("refedge: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    match run_edge(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("refedge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reloads the links and domains files, the certificates and the GeoIP
/// databases on every SIGHUP.
fn reload_on_hangup(node: &Node) -> anyhow::Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    let (reloader, geo, certs) = (node.reloader(), node.geo(), node.certs());
    let domains = node.domains_file();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading links and certificates");
            let r = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || r.reload()).await;
            let d = domains.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || d.reload()).await {
                tracing::error!(error = %e, "domains.file: cannot read it; keeping the domains served");
            }
            if let Some(certs) = &certs {
                let c = Arc::clone(certs);
                let _ = tokio::task::spawn_blocking(move || tls::reload_logged(&c)).await;
            }
            if let Some(geo) = &geo {
                match geo.reload() {
                    Ok(()) => tracing::info!("GeoIP databases reloaded"),
                    Err(e) => tracing::error!("{e}; keeping the databases already loaded"),
                }
            }
        }
    });
    Ok(())
}

/// Runs a node on its configured addresses until SIGTERM/SIGINT; SIGHUP
/// reloads the links file.
fn run_edge(config: Config) -> anyhow::Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all().thread_name("refedge-worker");
    if config.server.worker_threads > 0 {
        runtime.worker_threads(config.server.worker_threads);
    }
    let runtime = runtime.build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let node = Node::prepare(&config)?;
        let listeners = Listeners::bind(&config.server, &config.admin, &config.tls).await?;
        tracing::info!(addr = %listeners.public.local_addr()?, "public listener bound");
        tracing::info!(addr = %listeners.admin.local_addr()?, "admin listener bound");
        if let Some(tls) = &listeners.tls {
            tracing::info!(addr = %tls.local_addr()?, "HTTPS listener bound");
        }
        reload_on_hangup(&node)?;
        let clean = node.serve(listeners, shutdown::termination()).await;
        tracing::info!(clean, "stopped");
        Ok(())
    })
}
