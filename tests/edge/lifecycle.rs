//! The binary's life: start-up checks, `check`, SIGHUP reload under load,
//! readiness while draining, and SIGTERM under load losing no event.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::*;

const UA: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
);

#[test]
fn version_is_printed() {
    let out = run_binary(&["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("refedge {}", env!("CARGO_PKG_VERSION"))
    );
}

/// By default the public threads run on any CPU the process may use
/// (`server.pin_threads` off); pinned, `metrics` checks them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_threads_are_not_pinned_by_default() {
    let fixture = Fixture::new(LINKS);
    let edge = spawn_binary(&fixture.env(&[]));
    wait_ready(edge.admin).await;
    let (process, threads) = public_thread_cpus(edge.child.id());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(threads.len(), cpus, "one public thread a CPU");
    for thread in threads {
        assert_eq!(thread, process);
    }
}

#[test]
fn check_accepts_the_shipped_config_and_links() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_refedge"))
        .args(["check", "--config", "config/refedge.toml"])
        .current_dir(root)
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.starts_with("ok: config valid, "), "{stdout}");
}

#[test]
fn check_names_every_bad_links_line() {
    let fixture = Fixture::new(concat!(
        r#"{"code":"good","target":"https://a.example/"}"#,
        "\n",
        r#"{"code":"crlf","target":"https://a.example/\r\nSet-Cookie: x=1"}"#,
        "\n",
        "\n",
        r#"{"code":"ctl","target":"https://a.example/\u0007"}"#,
        "\n",
        r#"{"code":"bad code!","target":"https://a.example/"}"#,
        "\n",
        "{oops\n",
    ));
    let out = run_binary(&["check", "--config", "/dev/null"], &fixture.env(&[]));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let file = fixture.links.display().to_string();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(
        lines[0],
        format!("{file}:2: target: contains whitespace or control characters")
    );
    assert_eq!(
        lines[1],
        format!("{file}:4: target: contains whitespace or control characters")
    );
    assert_eq!(
        lines[2],
        format!("{file}:5: code: must be 1-64 characters of [0-9A-Za-z_-]")
    );
    assert!(
        lines[3].starts_with(&format!("{file}:6: invalid JSON:")),
        "{}",
        lines[3]
    );
}

/// `check` meets every problem `serve` would meet before binding, and
/// reports each of them, not only the first: bad keys, broken rules, a
/// variable that sets nothing, a GeoIP database that is not there, bad
/// links lines.
#[test]
fn check_reports_every_problem_serve_would_meet() {
    let fixture = Fixture::new(concat!(
        r#"{"code":"good","target":"https://a.example/"}"#,
        "\n",
        r#"{"code":"bad code!","target":"https://a.example/"}"#,
        "\n",
    ));
    let config = fixture.dir.path().join("bad.toml");
    let missing = fixture.dir.path().join("no-such-city.mmdb");
    std::fs::write(
        &config,
        format!(
            "[server]\nmax_connections = \"many\"\n[log]\nlevel = \"verbose\"\n[geo]\ncity_db = {:?}\n",
            missing.display().to_string()
        ),
    )
    .unwrap();
    // A spool directory that cannot be made: a file stands in its path.
    let file = fixture.dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let spool = file.join("spool").display().to_string();
    let env = fixture.env(&[
        ("REFEDGE_SEVER_LISTEN", "127.0.0.1:1"),
        ("REFEDGE_EVENTS_SPOOL_DIR", &spool),
    ]);
    let out = run_binary(&["check", "--config", &config.display().to_string()], &env);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert!(
        lines[0].starts_with("server.max_connections: invalid type"),
        "{stdout}"
    );
    assert!(lines[1].starts_with("log.level: unknown value \"verbose\": expected one of trace, debug, info, warn, error, off"), "{stdout}");
    assert_eq!(
        lines[2],
        "REFEDGE_SEVER_LISTEN: no such setting, ignored (did you mean REFEDGE_SERVER_LISTEN, for server.listen?)"
    );
    assert!(
        lines[3].starts_with("geo.city_db: ") && lines[3].contains("no-such-city.mmdb"),
        "{stdout}"
    );
    assert_eq!(
        lines[4],
        format!("events.spool_dir: {} is not a directory", file.display())
    );
    assert_eq!(
        lines[5],
        format!(
            "{}:2: code: must be 1-64 characters of [0-9A-Za-z_-]",
            fixture.links.display()
        )
    );

    // serve refuses the same config at its first problem, and only warns of
    // the variable that sets nothing.
    let out = run_binary(&["serve", "--config", &config.display().to_string()], &env);
    assert_eq!(out.status.code(), Some(2));
    let fixed = fixture.dir.path().join("good.toml");
    std::fs::write(
        &fixed,
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = run_binary(&["check", "--config", &fixed.display().to_string()], &env);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().next(),
        Some(
            "REFEDGE_SEVER_LISTEN: no such setting, ignored (did you mean REFEDGE_SERVER_LISTEN, for server.listen?)"
        ),
        "a variable that sets nothing is a problem for check"
    );
}

#[test]
fn check_and_serve_name_bad_config_keys() {
    let fixture = Fixture::new(LINKS);
    let config = fixture.dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxy = []\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let out = run_binary(&["check", "--config", &config], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("server.trusted_proxy: unknown field")
    );

    let out = run_binary(&["serve", "--config", &config], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.trusted_proxy: unknown field"));

    let env = fixture.env(&[("REFEDGE_ATTRIBUTION_MODEL", "sometimes")]);
    let out = run_binary(&["serve", "--config", "/dev/null"], &env);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("attribution.model: unknown variant `sometimes`"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("listener bound"),
        "nothing is bound before the config is valid"
    );

    let out = run_binary(&["serve", "--config", "/no/such/file.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("/no/such/file.toml: cannot read config file")
    );
}

#[test]
fn an_unwritable_spool_stops_start_up_before_binding() {
    let fixture = Fixture::new(LINKS);
    let not_a_dir = fixture.dir.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let env = fixture.env(&[("REFEDGE_EVENTS_SPOOL_DIR", &not_a_dir.display().to_string())]);
    let out = run_binary(&["serve", "--config", "/dev/null"], &env);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("events.spool_dir: cannot write to"),
        "{stderr}"
    );
    assert!(!stderr.contains("listener bound"));
}

#[test]
fn a_missing_links_file_stops_start_up() {
    let fixture = Fixture::new(LINKS);
    let env = fixture.env(&[("REFEDGE_LINKS_FILE", "/no/such/links.jsonl")]);
    let out = run_binary(&["serve", "--config", "/dev/null"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("links.file: cannot read /no/such/links.jsonl")
    );
}

/// Clients that hit `paths` in a loop on keep-alive connections until told to
/// stop, counting redirects, other answers and transport errors (a client
/// stops at its first error: the server closed the connection).
struct Load {
    stop: Arc<AtomicBool>,
    redirects: Arc<AtomicU64>,
    other: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

struct LoadResult {
    redirects: u64,
    other: u64,
    errors: u64,
    click_ids: Vec<String>,
}

impl Load {
    fn start(addr: std::net::SocketAddr, clients: usize, paths: &'static [&'static str]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let redirects = Arc::new(AtomicU64::new(0));
        let other = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|c| {
                let (stop, redirects, other, errors) = (
                    stop.clone(),
                    redirects.clone(),
                    other.clone(),
                    errors.clone(),
                );
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    let Ok(mut conn) = KeepAlive::connect(addr).await else {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return ids;
                    };
                    let mut i = c;
                    while !stop.load(Ordering::Relaxed) {
                        match conn.get(paths[i % paths.len()], &[UA]).await {
                            Ok(r) if (300..400).contains(&r.status) => {
                                redirects.fetch_add(1, Ordering::Relaxed);
                                if let Some(id) = click_param(r.location()) {
                                    ids.push(id);
                                }
                            }
                            Ok(_) => {
                                other.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                        i += 1;
                    }
                    ids
                })
            })
            .collect();
        Load {
            stop,
            redirects,
            other,
            errors,
            tasks,
        }
    }

    async fn finish(self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        let mut click_ids = Vec::new();
        for t in self.tasks {
            click_ids.extend(within("load client", t).await.expect("client task"));
        }
        LoadResult {
            redirects: self.redirects.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            click_ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_under_load_fails_no_request() {
    let fixture = Fixture::new(LINKS);
    let mut edge = spawn_binary(&fixture.env(&[]));
    wait_ready(edge.admin).await;
    assert_eq!(get(edge.public, "/fresh", &[UA]).await.status, 404);

    let load = Load::start(edge.public, 4, &["/demo", "/t307", "/scoped", "/later"]);
    let with_fresh = format!(
        "{LINKS}{}\n",
        r#"{"code":"fresh","target":"https://brand.example/fresh"}"#
    );
    for round in 0..10 {
        let text = if round % 2 == 0 {
            with_fresh.as_str()
        } else {
            LINKS
        };
        let tmp = fixture.dir.path().join("links.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &fixture.links).unwrap();
        edge.signal("HUP");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Last round wrote LINKS again: now add "fresh" for good.
    std::fs::write(&fixture.links, &with_fresh).unwrap();
    edge.signal("HUP");
    within("fresh link served", async {
        while get(edge.public, "/fresh", &[UA]).await.status != 302 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let result = load.finish().await;
    assert!(
        result.redirects > 100,
        "load ran: {} redirects",
        result.redirects
    );
    assert_eq!(
        (result.other, result.errors),
        (0, 0),
        "requests not redirected during reloads"
    );

    // A reload that cannot read the file keeps the links.
    std::fs::remove_file(&fixture.links).unwrap();
    edge.signal("HUP");
    within("reload failure logged", async {
        while !edge.log_contains("keeping the links already loaded") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(get(edge.public, "/fresh", &[UA]).await.status, 302);
    let metrics =
        String::from_utf8_lossy(&get(edge.admin, "/metrics", &[]).await.body).into_owned();
    assert!(
        metrics.contains("refedge_link_reloads_total{result=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("refedge_links 13"), "{metrics}");

    edge.signal("TERM");
    assert!(edge.wait().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_spools_one_event_per_answered_request() {
    let fixture = Fixture::new(LINKS);
    let mut edge = spawn_binary(&fixture.env(&[]));
    wait_ready(edge.admin).await;
    let load = Load::start(edge.public, 8, &["/demo", "/t307", "/nosuchcode", "/off"]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    edge.signal("TERM");
    let status = tokio::task::spawn_blocking(move || {
        let s = edge.wait();
        (s, edge)
    });
    let result = load.finish().await;
    let (status, edge) = within("exit", status).await.unwrap();
    assert!(status.success(), "clean exit");
    assert!(edge.log_contains("spool flushed and synced"));
    let answered = result.redirects + result.other;
    let ids = result.click_ids;
    assert!(answered > 100, "load ran: {answered}");
    let events = fixture.events();
    assert_schema_valid(&events);
    assert_eq!(
        events.len() as u64,
        answered,
        "one event per answered request"
    );
    let spooled: HashSet<&str> = events
        .iter()
        .map(|e| e["click_id"].as_str().unwrap())
        .collect();
    assert_eq!(spooled.len(), events.len(), "click ids are unique");
    assert!(!ids.is_empty());
    for id in &ids {
        assert!(
            spooled.contains(id.as_str()),
            "click {id} handed out but not spooled"
        );
    }
}

/// Runs `clients` keep-alive clients for `secs` against an edge whose
/// hand-off holds two clicks and whose writer passes every 50 ms, so that
/// most clicks find it full; then stops the edge and returns what was
/// answered, what was spooled and the hand-off's counters.
async fn overload(max_wait_ms: &str) -> (u64, usize, f64, f64) {
    let fixture = Fixture::new(LINKS);
    let mut edge = spawn_binary(&fixture.env(&[
        ("REFEDGE_EVENTS_QUEUE_CAPACITY", "2"),
        ("REFEDGE_EVENTS_FLUSH_INTERVAL_MS", "50"),
        ("REFEDGE_EVENTS_MAX_WAIT_MS", max_wait_ms),
    ]));
    wait_ready(edge.admin).await;
    let load = Load::start(edge.public, 16, &["/demo", "/t307", "/nosuchcode"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let result = load.finish().await;
    let dropped = metric(
        edge.admin,
        r#"refedge_events_total{result="dropped_queue_full"}"#,
    )
    .await;
    let waits = metric(edge.admin, "refedge_events_wait_seconds_count").await;
    edge.signal("TERM");
    assert!(
        tokio::task::spawn_blocking(move || edge.wait())
            .await
            .unwrap()
            .success()
    );
    assert_eq!(result.errors, 0);
    let events = fixture.events();
    assert_schema_valid(&events);
    (
        result.redirects + result.other,
        events.len(),
        dropped,
        waits,
    )
}

/// Back-pressure: while the writer makes progress, a click that finds the
/// hand-off full waits for room (its answer with it) instead of being
/// dropped, so every answered request has its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_slows_answers_and_loses_no_click() {
    let (answered, spooled, dropped, waits) = overload("5000").await;
    assert!(answered > 50, "load ran: {answered}");
    assert!(waits > 0.0, "clicks found the hand-off full and waited");
    assert_eq!(dropped, 0.0);
    assert_eq!(spooled as u64, answered, "one event per answered request");
}

/// With waiting off (`events.max_wait_ms = 0`) the same overload drops
/// clicks, counted: what back-pressure saves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_waiting_the_same_overload_drops_counted_clicks() {
    let (answered, spooled, dropped, waits) = overload("0").await;
    assert!(dropped > 0.0, "clicks dropped at a full hand-off");
    assert_eq!(waits, 0.0);
    assert_eq!(spooled as u64 + dropped as u64, answered);
}

/// `serve` (like `match` and `deliver`, which start their logging the same
/// way) warns of a `REFEDGE_*` variable that sets nothing, naming the key
/// it most likely meant, and starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_warns_of_a_variable_that_sets_nothing() {
    let fixture = Fixture::new(LINKS);
    let mut edge = spawn_binary(&fixture.env(&[("REFEDGE_EVENTS_SINKS", "kafka")]));
    wait_ready(edge.admin).await;
    assert!(
        edge.log_contains(
            "REFEDGE_EVENTS_SINKS: no such setting, ignored (did you mean REFEDGE_EVENTS_SINK, for events.sink?)"
        ),
        "{:?}",
        edge.log.lock().unwrap()
    );
    edge.signal("TERM");
    assert!(
        tokio::task::spawn_blocking(move || edge.wait().success())
            .await
            .unwrap()
    );
}
