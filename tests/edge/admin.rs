//! The admin listener over real sockets: health, the links API behind the
//! bearer token, and changes serving at once on the public listener.

use crate::common::*;

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
    admin_request(addr, method, path, token, body).await
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

/// The shipped OpenAPI description stays true: every operation it lists
/// answers, with and without the token, with a status it documents, and every
/// response body documented as a Link or an error has that shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_matches_the_server() {
    let spec: serde_json::Value =
        serde_json::from_str(include_str!("../../src/admin/openapi.json")).unwrap();
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[("REFEDGE_ADMIN_TOKEN", TOKEN)])).await;
    let no_token = Fixture::new(LINKS);
    let off = start(&no_token.config(&[])).await;
    let bodies = |method: &str, path: &str| -> &'static str {
        match (method, path) {
            ("post", "/v1/links") => "{\"code\":\"spec1\",\"target\":\"https://a.example/\"}\n",
            ("post", "/v1/links/mint") => r#"{"target":"https://a.example/minted"}"#,
            ("put", "/v1/domains/{host}") => r#"{"fallback_url":"https://a.example/lost"}"#,
            ("put", _) => r#"{"target":"https://a.example/put"}"#,
            _ => "",
        }
    };
    let mut checked = 0;
    let paths = spec["paths"].as_object().unwrap();
    for (template, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let documented: Vec<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect();
            let path = template
                .replace("{code}", "demo")
                .replace("{host}", "go.brand.example");
            let body = bodies(method, template);
            let secured = op.get("security").is_some();
            let (status, json) = send(
                edge.admin,
                &method.to_uppercase(),
                &path,
                secured.then_some(TOKEN),
                body,
            )
            .await;
            assert!(
                documented.contains(&status),
                "{method} {path} answered {status}, documented {documented:?}"
            );
            if status == 200 || status == 201 {
                if let Some(schema_ref) = op["responses"][status.to_string()]["content"]["application/json"]["schema"]["$ref"].as_str() {
                    let name = schema_ref.rsplit('/').next().unwrap();
                    for required in spec["components"]["schemas"][name]["required"].as_array().into_iter().flatten() {
                        assert!(json.get(required.as_str().unwrap()).is_some(), "{method} {path}: {json} lacks {required}");
                    }
                }
            }
            if secured {
                let (status, _) = send(edge.admin, &method.to_uppercase(), &path, None, body).await;
                assert_eq!(status, 401, "{method} {path} without a token");
                assert!(documented.contains(&401));
                let (status, _) =
                    send(off.admin, &method.to_uppercase(), &path, Some(TOKEN), body).await;
                assert_eq!(status, 403, "{method} {path} with the API off");
                assert!(documented.contains(&403));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 14, "every operation was exercised");
    assert!(edge.stop().await);
    assert!(off.stop().await);
}

/// Bulk imports while requests are served: no request fails, and a request
/// for an imported code sees either nothing yet (404) or the whole link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_a_bulk_import_never_see_half_a_link() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[("REFEDGE_ADMIN_TOKEN", TOKEN)])).await;
    let n = 20_000;
    let mut body = String::new();
    for i in 0..n {
        body.push_str(&format!("{{\"code\":\"bulk{i}\",\"target\":\"https://brand.example/landing/{i}?v={i}\",\"advocate_id\":\"adv-{i}\"}}\n"));
    }
    let public = edge.public;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut conn = KeepAlive::connect(public).await.unwrap();
                let (mut seen, mut i) = (0u64, r * 7919);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let k = i % n;
                    let res = conn
                        .get(&format!("/bulk{k}"), &[UA])
                        .await
                        .expect("answered");
                    match res.status {
                        404 => {}
                        302 => {
                            let loc = res.location();
                            assert!(
                                loc.starts_with(&format!(
                                    "https://brand.example/landing/{k}?v={k}&rf_click="
                                )),
                                "{loc}"
                            );
                            seen += 1;
                        }
                        s => panic!("unexpected status {s}"),
                    }
                    let demo = conn.get("/demo", &[UA]).await.expect("answered");
                    assert_eq!(demo.status, 302, "existing links keep serving");
                    i += 1;
                }
                seen
            })
        })
        .collect();
    let (s, v) = send(edge.admin, "POST", "/v1/links", Some(TOKEN), &body).await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(n as u64)));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = 0;
    for r in readers {
        seen += within("reader", r).await.unwrap();
    }
    println!("{seen} imported links read while the import ran or after");
    assert_eq!(
        get(edge.public, &format!("/bulk{}", n - 1), &[UA])
            .await
            .status,
        302
    );
    assert!(edge.stop().await);
}

/// Without Kafka the snapshot is what keeps admin changes across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_survive_a_restart_through_the_snapshot() {
    let fixture = Fixture::new(LINKS);
    let snapshot = fixture
        .dir
        .path()
        .join("links.snapshot")
        .display()
        .to_string();
    let env = [
        ("REFEDGE_ADMIN_TOKEN", TOKEN),
        ("REFEDGE_LINKS_SNAPSHOT_FILE", snapshot.as_str()),
    ];
    let edge = start(&fixture.config(&env)).await;
    assert_eq!(
        send(
            edge.admin,
            "PUT",
            "/v1/links/kept",
            Some(TOKEN),
            r#"{"target":"https://brand.example/kept"}"#
        )
        .await
        .0,
        201
    );
    assert_eq!(
        send(edge.admin, "DELETE", "/v1/links/t301", Some(TOKEN), "")
            .await
            .0,
        204
    );
    assert!(edge.stop().await);
    // The links file changed while the node was down: it wins for its links.
    std::fs::write(
        &fixture.links,
        format!(
            "{LINKS}{}\n",
            r#"{"code":"added","target":"https://brand.example/added"}"#
        ),
    )
    .unwrap();
    let edge = start(&fixture.config(&env)).await;
    assert_eq!(get(edge.public, "/kept", &[UA]).await.status, 302);
    assert_eq!(get(edge.public, "/added", &[UA]).await.status, 302);
    assert_eq!(get(edge.public, "/demo", &[UA]).await.status, 302);
    assert!(edge.stop().await);
}

/// Scoped keys (README: "Admin keys"): each scope lets its key do only
/// that, on its hosts only; everything else is a 403 naming what was
/// refused, and every change is logged with the key's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_keys_reach_their_hosts_and_scopes_only() {
    const PORTAL: &str = "adp-portal-token-0123456789";
    const READER: &str = "agency-reader-token-0123456789";
    let fixture = Fixture::new(concat!(
        r#"{"code":"adp1","target":"https://adp.example/","domain":"go.adp.example"}"#,
        "\n",
        r#"{"code":"tv1","target":"https://directv.example/","domain":"refer.directv.example"}"#,
        "\n",
        r#"{"code":"any","target":"https://brand.example/"}"#,
        "\n",
    ));
    let config = fixture.dir.path().join("keys.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\ntoken = \"{TOKEN}\"\n\n[[admin.keys]]\nname = \"adp-portal\"\ntoken = \"old-adp-token-0123456789xyz,{PORTAL}\"\nhosts = [\"go.adp.example\"]\nscopes = [\"links:read\", \"links:write\", \"domains:write\", \"qr\"]\n\n[[admin.keys]]\nname = \"agency\"\ntoken = \"{READER}\"\nhosts = [\"*\"]\nscopes = [\"links:read\"]\n"
        ),
    )
    .unwrap();
    let edge = start(
        &refedge::config::Config::from_sources(
            "keys",
            &std::fs::read_to_string(&config).unwrap(),
            &fixture.env(&[]),
        )
        .expect("valid config"),
    )
    .await;
    let admin = edge.admin;
    let call = |method: &'static str,
                path: &'static str,
                token: &'static str,
                body: &'static str| async move {
        send(admin, method, path, Some(token), body).await
    };

    // The portal: its own host's links, domains and QR codes.
    assert_eq!(
        call("GET", "/v1/links/adp1?domain=go.adp.example", PORTAL, "")
            .await
            .0,
        200
    );
    let (s, _) = call(
        "PUT",
        "/v1/links/adp2",
        PORTAL,
        r#"{"target":"https://adp.example/2","domain":"go.adp.example"}"#,
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(
        call(
            "PUT",
            "/v1/domains/go.adp.example",
            PORTAL,
            r#"{"fallback_url":"https://adp.example/"}"#
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(
            "GET",
            "/v1/links/adp1/qr.svg?domain=go.adp.example",
            PORTAL,
            ""
        )
        .await
        .0,
        200
    );
    // The old token of a rotation still works.
    assert_eq!(
        call(
            "GET",
            "/v1/links/adp1?domain=go.adp.example",
            "old-adp-token-0123456789xyz",
            ""
        )
        .await
        .0,
        200
    );
    // ... and nothing else, each refusal saying what.
    for (method, path, body, error) in [
        (
            "GET",
            "/v1/links/tv1?domain=refer.directv.example",
            "",
            "key adp-portal may not read links of host refer.directv.example",
        ),
        (
            "GET",
            "/v1/links/any",
            "",
            "key adp-portal may not read links of every host (it needs hosts = [\"*\"])",
        ),
        (
            "PUT",
            "/v1/links/tv2",
            r#"{"target":"https://x.example/","domain":"refer.directv.example"}"#,
            "key adp-portal may not change links of host refer.directv.example",
        ),
        (
            "PUT",
            "/v1/links/free",
            r#"{"target":"https://x.example/"}"#,
            "key adp-portal may not change links of every host (it needs hosts = [\"*\"])",
        ),
        (
            "DELETE",
            "/v1/links/tv1?domain=refer.directv.example",
            "",
            "key adp-portal may not change links of host refer.directv.example",
        ),
        (
            "POST",
            "/v1/links/mint",
            r#"{"target":"https://x.example/"}"#,
            "key adp-portal may not change links of every host (it needs hosts = [\"*\"])",
        ),
        (
            "PUT",
            "/v1/domains/refer.directv.example",
            "{}",
            "key adp-portal may not change domains of host refer.directv.example",
        ),
        (
            "GET",
            "/v1/links/tv1/qr.png?domain=refer.directv.example",
            "",
            "key adp-portal may not draw QR codes of host refer.directv.example",
        ),
    ] {
        let (s, v) = send(admin, method, path, Some(PORTAL), body).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (403, Some(error)),
            "{method} {path}"
        );
    }
    // A bulk load with mixed hosts: the portal's lines land, the others are
    // refused line by line.
    let bulk = "{\"code\":\"adp3\",\"target\":\"https://adp.example/3\",\"domain\":\"go.adp.example\"}\n{\"code\":\"tv3\",\"target\":\"https://x.example/\",\"domain\":\"refer.directv.example\"}\n{\"code\":\"bad\",\"target\":\"nope\",\"domain\":\"go.adp.example\"}\n{\"code\":\"all\",\"target\":\"https://x.example/\"}\n";
    let (s, v) = send(admin, "POST", "/v1/links", Some(PORTAL), bulk).await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(1)), "{v}");
    let lines: Vec<u64> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 3, 4], "{v}");
    assert_eq!(
        v["rejected"][0]["error"],
        "key adp-portal may not change links of host refer.directv.example"
    );
    // The domains list shows the portal its own only.
    assert_eq!(
        call("PUT", "/v1/domains/refer.directv.example", TOKEN, "{}")
            .await
            .0,
        201
    );
    // One URL per domain: another spelling of the host is not it.
    let (status, other) = call("GET", "/v1/domains/Refer.DirecTV.example.", TOKEN, "").await;
    assert_eq!(status, 404);
    assert_eq!(
        other["error"],
        "no such domain: hosts are named in lower case without a trailing dot: /v1/domains/refer.directv.example"
    );
    let (_, list) = call("GET", "/v1/domains", PORTAL, "").await;
    let hosts: Vec<&str> = list["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["go.adp.example"]);

    // The agency reads every host's links, and changes nothing.
    assert_eq!(
        call(
            "GET",
            "/v1/links/tv1?domain=refer.directv.example",
            READER,
            ""
        )
        .await
        .0,
        200
    );
    assert_eq!(call("GET", "/v1/links/any", READER, "").await.0, 200);
    for (method, path, body, error) in [
        (
            "PUT",
            "/v1/links/any",
            r#"{"target":"https://x.example/"}"#,
            "key agency may not change links",
        ),
        (
            "POST",
            "/v1/links",
            "{\"code\":\"z\",\"target\":\"https://x.example/\"}\n",
            "key agency may not change links",
        ),
        (
            "GET",
            "/v1/domains",
            "",
            "key agency may not change domains",
        ),
        (
            "GET",
            "/v1/links/any/qr.svg?domain=go.brand.example",
            "",
            "key agency may not draw QR codes",
        ),
    ] {
        let (s, v) = send(admin, method, path, Some(READER), body).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (403, Some(error)),
            "{method} {path}"
        );
    }
    // An unknown token is 401, as before; admin.token can do everything.
    assert_eq!(
        call("GET", "/v1/links/any", "unknown-token-0123456789abc", "")
            .await
            .0,
        401
    );
    assert_eq!(
        call(
            "DELETE",
            "/v1/links/tv1?domain=refer.directv.example",
            TOKEN,
            ""
        )
        .await
        .0,
        204
    );
    assert!(edge.stop().await);
}
