//! Crashes and a full disk, with the real binary: SIGKILL under load loses at
//! most one fsync interval of clicks and nothing spooled before it; a torn
//! last line is detected and never shipped to Kafka (a real Tansu broker);
//! with the spool on a tiny filesystem that fills, redirects go on, drops are
//! counted and logged once, and spooling resumes when space returns.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::kafka::{Broker, consume_until};
use crate::common::*;

const UA: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
);
const FSYNC_MS: u64 = 200;

/// What the spool holds: complete events by click id, and torn lines.
struct SpoolContents {
    ids: Vec<String>,
    events: std::collections::HashMap<String, serde_json::Value>,
    torn: usize,
}

/// Reads every segment; a line that is not JSON must be the last line of its
/// segment and lack its newline (a write cut short), or the test fails.
fn read_spool(dir: &Path) -> SpoolContents {
    let mut ids = Vec::new();
    let mut events = std::collections::HashMap::new();
    let mut torn = 0;
    for (_, path, _) in refedge::events::list_segments(dir).expect("list segments") {
        let bytes = std::fs::read(&path).expect("read segment");
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str::<serde_json::Value>(line.trim_end_matches('\n')) {
                Ok(event) if line.ends_with('\n') => {
                    if let Some(id) = event["click_id"].as_str() {
                        ids.push(id.to_owned());
                        events.insert(id.to_owned(), event);
                    }
                }
                _ => {
                    assert!(
                        i == lines.len() - 1 && !line.ends_with('\n'),
                        "a bad line inside {}: {line:?}",
                        path.display()
                    );
                    torn += 1;
                }
            }
        }
    }
    SpoolContents { ids, events, torn }
}

/// Clicks from `clients` keep-alive connections until the edge goes away;
/// returns each click id handed out with the time its answer arrived.
async fn load_until_gone(
    addr: std::net::SocketAddr,
    clients: usize,
) -> Vec<tokio::task::JoinHandle<Vec<(String, Instant)>>> {
    (0..clients)
        .map(|_| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let Ok(mut conn) = KeepAlive::connect(addr).await else {
                    return got;
                };
                while let Ok(Ok(r)) =
                    tokio::time::timeout(Duration::from_secs(2), conn.get("/demo", &[UA])).await
                {
                    if let Some(id) = r.header("location").and_then(click_param) {
                        got.push((id, Instant::now()));
                    }
                }
                got
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_at_most_one_fsync_interval_and_torn_lines_are_not_shipped() {
    crate::needs!(Tansu);
    let broker = Broker::memory();
    broker.create_topic("refedge.clicks", 3);
    let addr = broker.addr();
    let fixture = Fixture::new(LINKS);
    let fsync = FSYNC_MS.to_string();
    let env = fixture.env(&[
        ("REFEDGE_EVENTS_SINK", "kafka"),
        ("REFEDGE_KAFKA_BROKERS", addr.as_str()),
        ("REFEDGE_EVENTS_FSYNC_INTERVAL_MS", fsync.as_str()),
    ]);

    let edge = spawn_binary(&env);
    let load = load_until_gone(edge.public, 4).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    edge.signal("KILL");
    let killed_at = Instant::now();
    let mut answered = Vec::new();
    for task in load {
        answered.extend(within("load ends", task).await.expect("load task"));
    }
    drop(edge);
    assert!(answered.len() > 100, "too little load: {}", answered.len());

    let spooled = read_spool(&fixture.spool);
    let in_spool: HashSet<&str> = spooled.ids.iter().map(String::as_str).collect();
    assert_eq!(in_spool.len(), spooled.ids.len(), "an event spooled twice");
    let window_start = killed_at - Duration::from_millis(FSYNC_MS);
    let lost: Vec<&(String, Instant)> = answered
        .iter()
        .filter(|(id, _)| !in_spool.contains(id.as_str()))
        .collect();
    let last_interval = answered.iter().filter(|(_, t)| *t >= window_start).count();
    assert!(
        lost.iter().all(|(_, t)| *t >= window_start),
        "a click answered more than one fsync interval before the kill is missing ({} lost)",
        lost.len()
    );
    assert!(lost.len() <= last_interval);

    // A write cut short by a crash (SIGKILL itself rarely cuts one: the
    // kernel finishes a write it started), made by hand at the newest
    // segment's end.
    let newest = refedge::events::list_segments(&fixture.spool)
        .expect("segments")
        .last()
        .expect("a segment")
        .1
        .clone();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .expect("open");
    std::io::Write::write_all(
        &mut file,
        br#"{"click_id":"TORNtornTORNtornTORNto","code":"de"#,
    )
    .expect("append");
    drop(file);
    assert_eq!(read_spool(&fixture.spool).torn, spooled.torn + 1);

    // Restarted on the same spool: it ships everything whole, skips the
    // torn line, and what was spooled before is still there, unchanged.
    let edge = spawn_binary(&env);
    let (mut conn, mut fresh) = (
        KeepAlive::connect(edge.public).await.expect("connect"),
        Vec::new(),
    );
    for _ in 0..10 {
        let r = within("click", conn.get("/demo", &[UA]))
            .await
            .expect("answered");
        fresh.push(click_param(r.header("location").expect("location")).expect("click id"));
    }
    let expected: HashSet<String> = spooled
        .ids
        .iter()
        .cloned()
        .chain(fresh.iter().cloned())
        .collect();
    let addr2 = addr.clone();
    let want = expected.clone();
    // At least once: clicks shipped before the kill whose acknowledgement
    // was not checkpointed are shipped again, so wait for every id.
    let records = tokio::task::spawn_blocking(move || {
        consume_until(
            &addr2,
            "refedge.clicks",
            |records| {
                let keys: HashSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
                want.iter().all(|id| keys.contains(id.as_str()))
            },
            Duration::from_secs(60),
        )
    })
    .await
    .expect("consumer");
    let shipped: HashSet<String> = records.iter().map(|r| r.key.clone()).collect();
    assert!(
        !shipped.iter().any(|k| k.starts_with("TORN")),
        "a torn line was shipped"
    );
    let missing: Vec<&String> = expected.difference(&shipped).collect();
    assert!(
        missing.is_empty(),
        "{} spooled clicks never shipped",
        missing.len()
    );
    assert!(
        shipped.is_subset(&expected),
        "shipped something never spooled"
    );
    for record in &records {
        if let Some(event) = spooled.events.get(&record.key) {
            assert_eq!(&record.value, event, "a spooled event changed on its way");
        }
    }
    wait_for_metric(edge.admin, "refedge_events_total{result=\"torn\"}", 1.0).await;
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct TinyFs {
    path: PathBuf,
}

impl TinyFs {
    fn mount(path: &Path, size: &str) -> TinyFs {
        let uid = Command::new("id").arg("-u").output().expect("run id");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "the disk-full test mounts a tmpfs and must run as root (as .ci/run does)"
        );
        std::fs::create_dir_all(path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs at {}", path.display());
        TinyFs {
            path: path.to_owned(),
        }
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .expect("run mount");
        assert!(status.success(), "resize the tmpfs");
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_disk_drops_events_but_not_redirects_and_recovers() {
    let fixture = Fixture::new(LINKS);
    let fs = TinyFs::mount(&fixture.spool, "64k");
    let edge = spawn_binary(&fixture.env(&[("REFEDGE_EVENTS_FLUSH_INTERVAL_MS", "5")]));
    let mut conn = KeepAlive::connect(edge.public).await.expect("connect");
    let answered = Arc::new(Mutex::new(0usize));
    for _ in 0..400 {
        let r = within("click", conn.get("/demo", &[UA]))
            .await
            .expect("answered");
        assert_eq!(r.status, 302, "a redirect failed while the disk was full");
        *answered.lock().expect("lock") += 1;
    }
    wait_for_metric(
        edge.admin,
        "refedge_events_total{result=\"spool_failed\"}",
        1.0,
    )
    .await;
    let failures = edge
        .log
        .lock()
        .expect("log")
        .iter()
        .filter(|l| l.contains("write to spool segment failed"))
        .count();
    assert_eq!(failures, 1, "the spool error is logged once per interval");
    let full = read_spool(&fixture.spool);
    assert_eq!(full.torn, 0, "a short write left part of a line");

    fs.resize("4m");
    let mut fresh = Vec::new();
    for _ in 0..20 {
        let r = within("click", conn.get("/demo", &[UA]))
            .await
            .expect("answered");
        fresh.push(click_param(r.header("location").expect("location")).expect("click id"));
    }
    within("spooling resumes", async {
        loop {
            let now = read_spool(&fixture.spool);
            assert_eq!(now.torn, 0);
            if fresh.iter().all(|id| now.ids.contains(id)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    drop(edge);
}
