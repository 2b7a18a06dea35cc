//! The edge's own series that no other test watches move when what they
//! count happens, on a real process: links-file lines refused, connections
//! accepted and open, the spool's segments and bytes, readiness, accept errors (the process out of
//! file descriptors) and connections handed from a busy public thread to
//! an idle one. (Requests, cookies, limits, TLS, conversions and the Kafka
//! shipper are watched by the tests of those parts.)

use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// Holds `n` connections to `addr` open for `secs` seconds from a process
/// pinned to CPU 0 (so that, steered by CPU with `server.pin_threads`, they
/// all reach one thread).
fn hold_connections(addr: std::net::SocketAddr, n: usize, secs: u32) -> std::process::Child {
    Command::new("taskset")
        .args(["-c", "0", "python3", "-c"])
        .arg(format!(
            "import socket, time\n\
             s = [socket.create_connection(('{}', {})) for _ in range({n})]\n\
             time.sleep({secs})\n",
            addr.ip(),
            addr.port()
        ))
        .spawn()
        .expect("python3 under taskset")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edges_own_series_move() {
    let fixture = Fixture::new(&format!(
        "{LINKS}{}\n",
        r#"{"code":"bad code!","target":"https://a.example/"}"#
    ));
    // Pinned, so that connections from one CPU reach one thread (below).
    let edge = spawn_binary(&fixture.env(&[("REFEDGE_SERVER_PIN_THREADS", "true")]));
    wait_ready(edge.admin).await;
    let admin = edge.admin;
    assert_eq!(
        metric(admin, "refedge_link_lines_rejected_total").await,
        1.0
    );

    // A connection is counted when accepted and open while it lasts; its
    // click's event lands in a spool segment.
    let mut conn = within("connect", KeepAlive::connect(edge.public))
        .await
        .expect("connect");
    let res = within("click", conn.get("/demo", &[("user-agent", "Mozilla/5.0")]))
        .await
        .expect("click");
    assert_eq!(res.status, 302);
    assert!(metric(admin, "refedge_connections_total{listener=\"public\"}").await >= 1.0);
    let open = "refedge_connections_open{listener=\"public\"}";
    assert!(metric(admin, open).await >= 1.0);
    wait_for_metric(admin, "refedge_spool_segments", 1.0).await;
    wait_for_metric(admin, "refedge_spool_bytes", 1.0).await;
    assert_eq!(
        metric(admin, "refedge_spool_max_bytes").await,
        8_589_934_592.0
    );
    assert_eq!(metric(admin, "refedge_ready").await, 1.0);
    drop(conn);

    // Connections from one CPU all reach its thread (pinned and steered by
    // CPU, one thread per CPU): past the balance's slack, the busy thread hands
    // them to the idle one.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus > 1 {
        let (_, mut threads) = public_thread_cpus(edge.child.id());
        threads.sort();
        let each: Vec<String> = (0..cpus).map(|c| c.to_string()).collect();
        assert_eq!(threads, each, "one public thread pinned to each CPU");
        let mut held = hold_connections(edge.public, 40, 3);
        wait_for_metric(admin, "refedge_connections_handed_over_total", 1.0).await;
        let _ = held.wait();
    }

    // Out of file descriptors, accepts fail and are counted; the edge goes
    // on once descriptors are free again.
    let pid = edge.child.id().to_string();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .count();
    // The soft limit only (an unprivileged process may not raise a hard
    // one back), put back afterwards.
    let limit = |n: &str| {
        let status = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={n}:")])
            .status()
            .expect("prlimit");
        assert!(status.success(), "prlimit --nofile={n}:");
    };
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .expect("the open files limit")
        .to_owned();
    limit(&(fds + 2).to_string());
    let mut held = hold_connections(edge.public, 8, 2);
    wait_for_metric(
        admin,
        "refedge_accept_errors_total{listener=\"public\"}",
        1.0,
    )
    .await;
    let _ = held.wait();
    limit(&soft);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let res = within(
        "a click after",
        get(edge.public, "/demo", &[("user-agent", "Mozilla/5.0")]),
    )
    .await;
    assert_eq!(res.status, 302);
    let mut edge = edge;
    edge.signal("TERM");
    assert!(
        tokio::task::spawn_blocking(move || edge.wait().success())
            .await
            .unwrap()
    );
}
