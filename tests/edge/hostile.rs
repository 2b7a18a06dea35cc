//! Hostile and broken clients over raw sockets: what scanners, broken clients
//! and attackers send. Each case has a defined outcome (a 4xx or the normal
//! redirect), a `Location` never carries CR/LF or another host, nothing
//! panics, and the limits (header read and idle timeouts, head and URI size,
//! the connection budget) hold and are counted.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BROWSER: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36";

/// Writes `request` on a new connection and reads until the server closes it
/// (or `wait` passes); returns the status (if any response came) and the text.
async fn exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> (Option<u16>, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok());
    (status, text)
}

/// A GET with the given target and extra header lines, closing after it.
fn get_request(target: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: go.brand.example\r\nUser-Agent: {BROWSER}\r\n{extra}Connection: close\r\n\r\n"
    )
    .into_bytes()
}

fn header<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// Asserts a redirect to the `demo` link's target, with nothing injected.
fn assert_clean_redirect(text: &str) {
    let locations = header(text, "location");
    assert_eq!(locations.len(), 1, "{text}");
    let location = locations[0];
    assert!(
        location.starts_with("https://brand.example/welcome?"),
        "{location}"
    );
    assert!(!location.contains('\r') && !location.contains('\n'));
    assert!(
        header(text, "set-cookie")
            .iter()
            .all(|c| c.starts_with("rf_ref=")),
        "{text}"
    );
}

const WAIT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_defined_answer_and_nothing_leaks_into_location() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[])).await;
    let addr = edge.public;

    // Not HTTP at all, a bad version, a NUL or raw bytes in the target, a
    // header without a colon, obs-fold continuation lines: 400 (or 505 for
    // the version) from the HTTP parser, and the connection is closed.
    let garbage: &[(&[u8], &[u16])] = &[
        (b"HELLO\r\n\r\n", &[400]),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", &[400]),
        (b"GET /demo HTTP/9.9\r\nHost: a\r\n\r\n", &[400, 505]),
        (b"GET /de\x00mo HTTP/1.1\r\nHost: a\r\n\r\n", &[400]),
        (b"GET /\xff\xfe HTTP/1.1\r\nHost: a\r\n\r\n", &[400]),
        (b"GET /demo HTTP/1.1\r\nHost a\r\n\r\n", &[400]),
        (
            b"GET /demo HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n evil: 1\r\n\r\n",
            &[400],
        ),
        (
            b"GET /demo?a=\rSet-Cookie: x HTTP/1.1\r\nHost: a\r\n\r\n",
            &[400],
        ),
        // Control characters in a header value.
        (
            b"GET /demo HTTP/1.1\r\nHost: a\r\nCookie: rf_ref=\x7f\r\n\r\n",
            &[400],
        ),
        (
            b"GET /demo HTTP/1.1\r\nHost: a\r\nSec-GPC: \x01\r\n\r\n",
            &[400],
        ),
        // Authority-form: no path, so no code.
        (b"GET demo HTTP/1.1\r\nHost: a\r\n\r\n", &[404]),
    ];
    for (request, expected) in garbage {
        let (status, text) = exchange(addr, request, WAIT).await;
        assert!(
            status.is_some_and(|s| expected.contains(&s)),
            "{:?} -> {text:?}",
            String::from_utf8_lossy(request)
        );
    }

    // Encoded tricks in the path are not codes: 404, no event.
    for path in [
        "/%2e%2e",
        "/..%2f..%2fetc%2fpasswd",
        "/demo%0d%0aSet-Cookie:%20x=1",
        "/demo%00",
        "/demo/../demo",
        "//evil.example",
    ] {
        let (status, text) = exchange(addr, &get_request(path, ""), WAIT).await;
        assert_eq!(status, Some(404), "{path} -> {text}");
        assert!(header(&text, "location").is_empty());
    }

    // Encoded CR/LF and other tricks in the forwarded query: the normal
    // redirect, the bytes stay encoded.
    for query in [
        "x=%0d%0aSet-Cookie:%20evil=1",
        "x=%0D%0ALocation:%20https://evil.example",
        "%00=%00",
        "next=https://evil.example&redirect=//evil.example",
        "rf_click=forged&rf_click=again",
        "a=%E2%80%A8%ff%fe",
        "=&&=&;;",
    ] {
        let (status, text) =
            exchange(addr, &get_request(&format!("/demo?{query}"), ""), WAIT).await;
        assert_eq!(status, Some(302), "{query} -> {text}");
        assert_clean_redirect(&text);
        assert!(
            !text.contains("evil=1\r\n")
                && !text.to_lowercase().contains("\r\nlocation: https://evil")
        );
    }

    // Oversized and garbage Cookie, X-Forwarded-For and Sec-GPC headers.
    let big_cookie = format!("Cookie: rf_ref={}\r\n", "A".repeat(12_000));
    let junk_cookie = "Cookie: rf_ref=1.%%.9999999999999999999999.zz; rf_ref=; =; ;;\r\n";
    let long_xff = format!(
        "X-Forwarded-For: {}\r\n",
        (0..800)
            .map(|i| format!("10.0.{}.{}", i / 250, i % 250))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for extra in [
        big_cookie.as_str(),
        junk_cookie,
        long_xff.as_str(),
        "X-Forwarded-For: not-an-ip, , ::::, 999.1.1.1\r\n",
        "Forwarded: for=\"[::1\";;;by=,for=unknown\r\n",
        "Sec-GPC: 1, 1, yes\r\n",
        "Sec-GPC: ?1\r\n",
    ] {
        let (status, text) = exchange(addr, &get_request("/demo?utm_source=x", extra), WAIT).await;
        assert_eq!(
            status,
            Some(302),
            "{} -> {text}",
            &extra[..extra.len().min(60)]
        );
        assert_clean_redirect(&text);
    }

    // A head larger than server.max_header_bytes (16 KiB): 431.
    let huge = format!("X-Junk: {}\r\n", "j".repeat(20_000));
    let (status, text) = exchange(addr, &get_request("/demo", &huge), WAIT).await;
    assert_eq!(status, Some(431), "{text}");
    // A request target longer than server.max_uri_bytes (8 KiB): 414.
    let long = format!("/demo?q={}", "q".repeat(9_000));
    let (status, _) = exchange(addr, &get_request(&long, ""), WAIT).await;
    assert_eq!(status, Some(414));

    // A GET with a body the edge never reads: answered at once.
    let (status, text) = exchange(
        addr,
        &get_request("/demo", "Content-Length: 1000000\r\n"),
        WAIT,
    )
    .await;
    assert_eq!(status, Some(302), "{text}");

    // Still serving, and only the valid clicks became events.
    assert_eq!(
        get(edge.public, "/demo", &[("user-agent", BROWSER)])
            .await
            .status,
        302
    );
    let admin = edge.admin;
    assert!(metric(admin, "refedge_limits_total{limit=\"header_bytes\"}").await >= 1.0);
    assert!(metric(admin, "refedge_limits_total{limit=\"uri_bytes\"}").await >= 1.0);
    assert!(metric(admin, "refedge_malformed_requests_total").await >= 1.0);
    assert!(edge.stop().await);
    let events = fixture.events();
    assert_eq!(events.len(), 7 + 7 + 1 + 1, "one event per redirect");
    assert!(events.iter().all(|e| e["code"] == "demo"));
    assert_schema_valid(&events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_and_counted() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[
        ("REFEDGE_SERVER_HEADER_READ_TIMEOUT_MS", "300"),
        ("REFEDGE_SERVER_IDLE_TIMEOUT_MS", "600"),
    ]))
    .await;
    // Slowloris: half a head, then nothing.
    let (status, _) = exchange(
        edge.public,
        b"GET /demo HTTP/1.1\r\nHost: go.brand.example\r\nX-Slow: ",
        WAIT,
    )
    .await;
    assert!(status.is_none_or(|s| s == 408), "{status:?}");
    wait_for_metric(
        edge.admin,
        "refedge_limits_total{limit=\"header_timeout\"}",
        1.0,
    )
    .await;

    // A connection that never sends a byte is closed too.
    let mut silent = TcpStream::connect(edge.public).await.expect("connect");
    let mut buf = [0u8; 64];
    let n = within("silent connection closed", silent.read(&mut buf)).await;
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(edge.stop().await);
}

/// Past its cap, one address's new connections are closed at once (before
/// a byte is read) and counted; another address is still served, and the
/// capped one again once it closes one. Unless one of its own has waited
/// for a request for `EVICT_AFTER` (2 s): that one is closed instead, and
/// the new one served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_more_than_its_connections() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[("REFEDGE_SERVER_MAX_CONNECTIONS_PER_CLIENT", "3")])).await;
    let from = |ip: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind((ip, 0).into()).expect("bind");
        socket.connect(edge.public).await.expect("connect")
    };
    let click = b"GET /demo HTTP/1.1\r\nHost: go.brand.example\r\nUser-Agent: Mozilla/5.0\r\n\r\n";
    let answer = |mut conn: TcpStream| async move {
        let _ = conn.write_all(click).await;
        let mut buf = vec![0u8; 1024];
        let n = within("an answer or the close", conn.read(&mut buf))
            .await
            .unwrap_or(0);
        (String::from_utf8_lossy(&buf[..n]).into_owned(), conn)
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        let (text, conn) = answer(from([127, 0, 0, 1]).await).await;
        assert!(text.starts_with("HTTP/1.1 302"), "{text}");
        held.push(conn);
    }
    let (text, _) = answer(from([127, 0, 0, 1]).await).await;
    assert_eq!(text, "", "the fourth is closed without an answer");
    wait_for_metric(
        edge.admin,
        "refedge_limits_total{limit=\"client_connections\"}",
        1.0,
    )
    .await;
    let (text, _) = answer(from([127, 0, 0, 2]).await).await;
    assert!(text.starts_with("HTTP/1.1 302"), "another address: {text}");
    // Held without asking anything for longer than EVICT_AFTER, the one
    // waiting longest makes room for the next click of the same address.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let (text, evicting) = answer(from([127, 0, 0, 1]).await).await;
    assert!(text.starts_with("HTTP/1.1 302"), "{text}");
    let mut oldest = held.remove(0);
    let mut buf = [0u8; 16];
    let read = within("the evicted connection closed", oldest.read(&mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    wait_for_metric(
        edge.admin,
        "refedge_limits_total{limit=\"client_evicted\"}",
        1.0,
    )
    .await;
    held.push(evicting);
    drop(held.pop());
    let again = within("a slot given back", async {
        loop {
            let (text, conn) = answer(from([127, 0, 0, 1]).await).await;
            if text.starts_with("HTTP/1.1 302") {
                return conn;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    drop((again, held));
    assert!(edge.stop().await);
}

/// A body that trickles is cut: below the slowest rate (after its first
/// second), or past its deadline in all. Each gets 408, its connection is
/// closed, and the limit is counted; clicks are answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_gets_408_and_loses_its_connection() {
    const TOKEN: &str = "conversions-token-0123456789";
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[
        ("REFEDGE_SERVER_BODY_TIMEOUT_MS", "2500"),
        ("REFEDGE_SERVER_BODY_MIN_BYTES_PER_SEC", "64"),
        ("REFEDGE_CONVERSIONS_TOKENS", TOKEN),
    ]))
    .await;
    let head = |len: usize| {
        format!(
            "POST /v1/conversions HTTP/1.1\r\nHost: go.brand.example\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    // (bytes a write, pause between writes, the limit that cuts it)
    for (bytes, pause_ms, limit) in [(1, 400, "body_rate"), (40, 500, "body_timeout")] {
        let mut conn = TcpStream::connect(edge.public).await.expect("connect");
        conn.write_all(head(4000).as_bytes())
            .await
            .expect("write head");
        let started = std::time::Instant::now();
        let trickle = async {
            loop {
                if conn.write_all(&vec![b' '; bytes]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                let res = get(edge.public, "/demo", &[("user-agent", BROWSER)]).await;
                assert_eq!(res.status, 302, "clicks go on meanwhile");
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), trickle).await;
        let mut answer = Vec::new();
        within("the 408 and the close", conn.read_to_end(&mut answer))
            .await
            .expect("read");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408"), "{limit}: {text}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{limit}: {:?}",
            started.elapsed()
        );
        wait_for_metric(
            edge.admin,
            &format!("refedge_limits_total{{limit=\"{limit}\"}}"),
            1.0,
        )
        .await;
    }
    assert!(edge.stop().await);
}

/// The header read timeout covers the wait for a head, not a body that is
/// slow to arrive after it; once the request is answered, the wait for the
/// next head is timed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_not_a_slow_head_but_the_wait_for_the_next_head_is() {
    const TOKEN: &str = "conversions-token-0123456789";
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[
        ("REFEDGE_SERVER_HEADER_READ_TIMEOUT_MS", "300"),
        ("REFEDGE_SERVER_IDLE_TIMEOUT_MS", "10000"),
        ("REFEDGE_CONVERSIONS_TOKENS", TOKEN),
    ]))
    .await;
    let body = br#"{"event_id":"slow-body-1","name":"signup","referral_code":"demo"}"#;
    let head = format!(
        "POST /v1/conversions HTTP/1.1\r\nHost: go.brand.example\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut conn = TcpStream::connect(edge.public).await.expect("connect");
    conn.write_all(head.as_bytes()).await.expect("write head");
    // The body trickles in over more than twice the header read timeout.
    for chunk in body.chunks(body.len() / 4 + 1) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        conn.write_all(chunk).await.expect("write body");
    }
    let mut buf = vec![0u8; 4096];
    let n = within("answer", conn.read(&mut buf)).await.expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 202"), "{text}");
    // Nothing more is sent: the header read timeout closes the connection,
    // long before the idle timeout would.
    let started = std::time::Instant::now();
    within("closed", async {
        while let Ok(n) = conn.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    wait_for_metric(
        edge.admin,
        "refedge_limits_total{limit=\"header_timeout\"}",
        1.0,
    )
    .await;
    assert!(edge.stop().await);
    assert_eq!(
        fixture
            .events()
            .iter()
            .filter(|e| e["event_id"] == "slow-body-1")
            .count(),
        1,
        "the conversion was kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[
        ("REFEDGE_SERVER_HEADER_READ_TIMEOUT_MS", "60000"),
        ("REFEDGE_SERVER_IDLE_TIMEOUT_MS", "300"),
    ]))
    .await;
    let mut conn = TcpStream::connect(edge.public).await.expect("connect");
    conn.write_all(b"GET /demo HTTP/1.1\r\nHost: go.brand.example\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = within("response", conn.read(&mut buf)).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 302"));
    let started = std::time::Instant::now();
    let closed = within("idle close", async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    let _: () = closed;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    wait_for_metric(
        edge.admin,
        "refedge_limits_total{limit=\"idle_timeout\"}",
        1.0,
    )
    .await;
    assert!(edge.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_budget_new_clients_wait_and_open_ones_go_on() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[("REFEDGE_SERVER_MAX_CONNECTIONS", "3")])).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(KeepAlive::connect(edge.public).await.expect("connect"));
    }
    for c in &mut open {
        assert_eq!(c.get("/demo", &[]).await.expect("served").status, 302);
    }
    // The fourth is queued by the kernel, not answered...
    let waiting = tokio::spawn(try_get(edge.public, "/demo", &[]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "answered past the budget");
    // ...while the open ones are served...
    assert_eq!(open[0].get("/demo", &[]).await.expect("served").status, 302);
    // ...and it is answered once one of them closes.
    drop(open.pop());
    let res = within("queued client answered", waiting)
        .await
        .expect("task")
        .expect("response");
    assert_eq!(res.status, 302);
    assert!(metric(edge.admin, "refedge_limits_total{limit=\"connections\"}").await >= 1.0);
    // The admin listener has its own budget.
    assert_eq!(get(edge.admin, "/livez", &[]).await.status, 200);
    drop(open);
    assert!(edge.stop().await);
}

/// RFC 9112 §3.2 over a real socket: hyper passes repeated and odd `Host`
/// fields through, and the edge answers each with 400 and records nothing;
/// a host differing only in case or a trailing dot is the same host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_rules_hold_on_the_wire() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[])).await;
    let addr = edge.public;
    let request = |head: &str| {
        format!("GET /demo HTTP/1.1\r\n{head}User-Agent: {BROWSER}\r\nConnection: close\r\n\r\n")
            .into_bytes()
    };
    for head in [
        "",
        "Host: a.example\r\nHost: b.example\r\n",
        "Host: bad host\r\n",
        "Host: a.example:port\r\n",
    ] {
        let (status, text) = exchange(addr, &request(head), WAIT).await;
        assert_eq!(status, Some(400), "{head:?}: {text}");
        assert!(header(&text, "location").is_empty(), "{text}");
    }
    let old = b"GET /demo HTTP/1.0\r\nUser-Agent: Mozilla/5.0\r\n\r\n";
    let (_, text) = exchange(addr, old, WAIT).await;
    assert!(
        text.starts_with("HTTP/1.0 302 "),
        "HTTP/1.0 needs no Host: {text}"
    );
    for host in ["GO.A.EXAMPLE.", "go.a.example.:8080"] {
        let (status, text) = exchange(addr, &request(&format!("Host: {host}\r\n")), WAIT).await;
        assert_eq!(status, Some(302), "{host}: {text}");
        let aonly = format!("GET /aonly HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        assert_eq!(
            exchange(addr, aonly.as_bytes(), WAIT).await.0,
            Some(302),
            "{host}"
        );
    }
    wait_for_metric(
        edge.admin,
        "refedge_requests_total{outcome=\"bad_host\"}",
        4.0,
    )
    .await;
    assert!(edge.stop().await);
    let events = fixture.events();
    assert_eq!(
        events.len(),
        5,
        "only the five answered clicks are recorded"
    );
    assert!(events.iter().all(|e| e["status"] == 302));
}

/// An HTTP/2 connection that asks nothing and only PINGs (hyper's client
/// keep-alive, every 100 ms) is closed after the idle timeout all the same;
/// one request served first does not change that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_that_only_pings_is_closed_after_the_idle_timeout() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[("REFEDGE_SERVER_IDLE_TIMEOUT_MS", "800")])).await;
    let stream = TcpStream::connect(edge.public).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(Duration::from_millis(100))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(
                stream,
            ))
            .await
            .expect("h2 handshake");
    let connection = tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!(
            "http://go.brand.example:{}/demo",
            edge.public.port()
        ))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0")
        .body(http_body_util::Empty::new())
        .unwrap();
    let res = within("h2 request", sender.send_request(req))
        .await
        .expect("response");
    assert_eq!(res.status(), 302);
    let started = std::time::Instant::now();
    // The server's GOAWAY or close ends the client's connection task.
    let _ = within("the idle close despite PINGs", connection).await;
    let open = started.elapsed();
    assert!(
        open >= Duration::from_millis(700) && open < Duration::from_secs(3),
        "closed after {open:?}"
    );
    wait_for_metric(
        edge.admin,
        "refedge_limits_total{limit=\"idle_timeout\"}",
        1.0,
    )
    .await;
    assert!(edge.stop().await);
}
