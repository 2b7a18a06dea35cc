//! The admin listener over real sockets: health, the links API behind the
//! bearer token, and changes serving at once on the public listener.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

const TOKEN: &str = "admin-token-0123456789";
const UA: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
);

async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let res = within(path, sender.send_request(req)).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_api_changes_serve_at_once() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[("REFEDGE_ADMIN_TOKEN", TOKEN)])).await;
    assert_eq!(get(edge.public, "/fresh", &[UA]).await.status, 404);

    let (s, v) = send(
        edge.admin,
        "PUT",
        "/v1/links/fresh",
        Some(TOKEN),
        r#"{"target":"https://brand.example/fresh","advocate_id":"adv-9"}"#,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let r = get(edge.public, "/fresh", &[UA]).await;
    assert_eq!(r.status, 302);
    assert!(
        r.location()
            .starts_with("https://brand.example/fresh?rf_click=")
    );

    let (s, v) = send(edge.admin, "GET", "/v1/links/fresh", Some(TOKEN), "").await;
    assert_eq!((s, v["advocate_id"].as_str()), (200, Some("adv-9")));

    let (s, v) = send(
        edge.admin,
        "POST",
        "/v1/links/mint",
        Some(TOKEN),
        r#"{"target":"https://brand.example/minted"}"#,
    )
    .await;
    assert_eq!(s, 201);
    let minted = v["code"].as_str().unwrap().to_owned();
    assert_eq!(
        get(edge.public, &format!("/{minted}"), &[UA]).await.status,
        302
    );

    let bulk = "{\"code\":\"b1\",\"target\":\"https://brand.example/b1\"}\n{\"code\":\"b2\",\"target\":\"https://brand.example/\\r\\n\"}\n";
    let (s, v) = send(edge.admin, "POST", "/v1/links", Some(TOKEN), bulk).await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(1)));
    assert_eq!(v["rejected"][0]["line"], 2);
    assert_eq!(get(edge.public, "/b1", &[UA]).await.status, 302);

    assert_eq!(
        send(edge.admin, "DELETE", "/v1/links/fresh", Some(TOKEN), "")
            .await
            .0,
        204
    );
    assert_eq!(get(edge.public, "/fresh", &[UA]).await.status, 404);
    assert_eq!(
        send(edge.admin, "DELETE", "/v1/links/fresh", Some(TOKEN), "")
            .await
            .0,
        404
    );

    let (s, v) = send(
        edge.admin,
        "PUT",
        "/v1/links/bad",
        Some(TOKEN),
        r#"{"target":"ftp://x","status":"paused"}"#,
    )
    .await;
    assert_eq!(s, 400);
    assert!(v["error"].is_string());
    assert!(edge.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[("REFEDGE_ADMIN_TOKEN", TOKEN)])).await;
    let (s, v) = send(edge.admin, "GET", "/v1/links/demo", None, "").await;
    assert_eq!(
        (s, v["error"].as_str()),
        (401, Some("missing or wrong bearer token"))
    );
    assert_eq!(
        send(
            edge.admin,
            "GET",
            "/v1/links/demo",
            Some("admin-token-0123456780"),
            ""
        )
        .await
        .0,
        401
    );
    assert_eq!(
        send(edge.admin, "GET", "/v1/links/demo", Some(TOKEN), "")
            .await
            .0,
        200
    );
    let big = format!(
        r#"{{"target":"https://a.example/{}"}}"#,
        "a".repeat(70 * 1024)
    );
    assert_eq!(
        send(edge.admin, "PUT", "/v1/links/big", Some(TOKEN), &big)
            .await
            .0,
        413
    );
    assert_eq!(
        send(edge.admin, "GET", "/livez", None, "").await.0,
        200,
        "health needs no token"
    );
    assert!(edge.stop().await);

    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[])).await;
    let (s, v) = send(
        edge.admin,
        "PUT",
        "/v1/links/x",
        Some(TOKEN),
        r#"{"target":"https://a.example/"}"#,
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("the admin API is off: admin.token is not set"))
    );
    assert_eq!(send(edge.admin, "GET", "/nothing", None, "").await.0, 404);
    assert!(edge.stop().await);
}
