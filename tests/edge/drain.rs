//! Shutdown: readiness turns off, the listeners close, and open
//! connections drain, a request whose head is arriving answered first,
//! each wait bounded by its deadline.

use std::time::Duration;

use crate::common::*;

/// While draining, `/readyz` is 503 and the listener is closed, and a
/// request whose head was arriving when the drain began is still answered
/// (then its connection closes), as nginx does; the drain lasts until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_turns_readiness_off_and_answers_a_request_it_caught_arriving() {
    let fixture = Fixture::new(LINKS);
    let mut edge = spawn_binary(&fixture.env(&[
        ("REFEDGE_SERVER_DRAIN_TIMEOUT_MS", "30000"),
        ("REFEDGE_SERVER_HEADER_READ_TIMEOUT_MS", "30000"),
    ]));
    wait_ready(edge.admin).await;
    assert_eq!(get(edge.admin, "/livez", &[]).await.status, 200);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut slow = one_answer_then_half_a_head(edge.public).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    edge.signal("TERM");
    within("readyz 503 while draining", async {
        loop {
            match try_get(edge.admin, "/readyz", &[]).await {
                Ok(r) if r.status == 503 => {
                    assert_eq!(&r.body[..], b"not ready: draining\n");
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    assert!(
        TcpListenerGone::check(edge.public).await,
        "the public listener stopped accepting"
    );
    slow.write_all(b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0\r\n\r\n")
        .await
        .unwrap();
    // Answered, then closed: `read_to_end` ends.
    let mut answer = Vec::new();
    within("the caught request's answer", slow.read_to_end(&mut answer))
        .await
        .expect("read until the edge closes");
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 302 "), "{answer}");
    assert!(
        answer.contains("\r\nlocation: https://brand.example/welcome?"),
        "{answer}"
    );
    let status = tokio::task::spawn_blocking(move || edge.wait())
        .await
        .unwrap();
    assert!(status.success(), "every connection drained in time");
}

/// A head that never finishes holds a drain until its header read timeout
/// or the drain timeout, whichever comes first, and no longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_never_finishes_holds_the_drain_only_to_a_deadline() {
    for (header_ms, drain_ms, logged) in [
        ("1000", "30000", "connections drained"),
        ("30000", "1000", "drain deadline passed"),
    ] {
        let fixture = Fixture::new(LINKS);
        let mut edge = spawn_binary(&fixture.env(&[
            ("REFEDGE_SERVER_HEADER_READ_TIMEOUT_MS", header_ms),
            ("REFEDGE_SERVER_DRAIN_TIMEOUT_MS", drain_ms),
        ]));
        wait_ready(edge.admin).await;
        let slow = one_answer_then_half_a_head(edge.public).await;
        let at = std::time::Instant::now();
        edge.signal("TERM");
        let edge = tokio::task::spawn_blocking(move || {
            assert!(edge.wait().success());
            edge
        })
        .await
        .unwrap();
        let took = at.elapsed();
        assert!(took < Duration::from_secs(10), "exited after {took:?}");
        assert!(
            edge.log_contains(logged),
            "header {header_ms} ms, drain {drain_ms} ms"
        );
        drop(slow);
    }
}

/// A keep-alive connection that has had one answer (hyper alone closes it
/// on a drain from then on) and has sent part of its next head.
async fn one_answer_then_half_a_head(public: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut slow = tokio::net::TcpStream::connect(public).await.unwrap();
    slow.write_all(b"GET /demo HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.11\r\n\r\n")
        .await
        .unwrap();
    let mut first = Vec::new();
    while !first.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        within("the first answer", slow.read_exact(&mut byte))
            .await
            .unwrap();
        first.push(byte[0]);
    }
    assert!(first.starts_with(b"HTTP/1.1 302 "));
    slow.write_all(b"GET /demo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    slow
}

struct TcpListenerGone;

impl TcpListenerGone {
    async fn check(addr: std::net::SocketAddr) -> bool {
        within("listener closed", async {
            loop {
                if tokio::net::TcpStream::connect(addr).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }
}
