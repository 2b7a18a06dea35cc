//! The links API's operations, answers and refusals, call by call.

use super::*;
use crate::admin::keys::Caller;

fn api() -> LinksApi {
    LinksApi {
        editor: LinkEditor::new(std::sync::Arc::new(crate::links::LinkStore::new()), None),
        channel_param: "rf_ch".into(),
    }
}

fn call(
    api: &LinksApi,
    method: Method,
    path: &str,
    query: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let res = api.handle(&Caller::Operator, &method, path, query, body.as_bytes());
    let status = res.status().as_u16();
    let bytes = futures_body(res);
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn futures_body(res: Response<Full<Bytes>>) -> Bytes {
    use http_body_util::BodyExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(res.into_body().collect()).unwrap().to_bytes()
}

#[test]
fn put_get_delete() {
    let api = api();
    let (s, v) = call(
        &api,
        Method::PUT,
        "/v1/links/abc",
        None,
        r#"{"target":"https://a.example/"}"#,
    );
    assert_eq!((s, v["code"].as_str()), (201, Some("abc")));
    let (s, _) = call(
        &api,
        Method::PUT,
        "/v1/links/abc",
        None,
        r#"{"target":"https://a.example/2","advocate_id":"x"}"#,
    );
    assert_eq!(s, 200);
    let (s, v) = call(&api, Method::GET, "/v1/links/abc", None, "");
    assert_eq!(
        (s, v["target"].as_str(), v["advocate_id"].as_str()),
        (200, Some("https://a.example/2"), Some("x"))
    );
    assert_eq!(call(&api, Method::DELETE, "/v1/links/abc", None, "").0, 204);
    assert_eq!(call(&api, Method::DELETE, "/v1/links/abc", None, "").0, 404);
    assert_eq!(call(&api, Method::GET, "/v1/links/abc", None, "").0, 404);
}

#[test]
fn domain_scoped_links() {
    let api = api();
    let body = r#"{"target":"https://a.example/","domain":"Go.A.example"}"#;
    assert_eq!(call(&api, Method::PUT, "/v1/links/abc", None, body).0, 201);
    assert_eq!(call(&api, Method::GET, "/v1/links/abc", None, "").0, 404);
    assert_eq!(
        call(
            &api,
            Method::GET,
            "/v1/links/abc",
            Some("domain=go.a.example"),
            ""
        )
        .0,
        200
    );
    assert_eq!(
        call(
            &api,
            Method::DELETE,
            "/v1/links/abc",
            Some("domain=GO.A.EXAMPLE"),
            ""
        )
        .0,
        204
    );
}

/// README: "a host-bound link takes `?domain=HOST`": a PUT with it
/// binds the link to the host and leaves the code's any-host link as it
/// was; a body naming another host is refused.
#[test]
fn a_put_with_a_domain_binds_the_link_to_that_host() {
    let api = api();
    let any = r#"{"target":"https://a.example/any"}"#;
    let bound = r#"{"target":"https://a.example/bound"}"#;
    assert_eq!(call(&api, Method::PUT, "/v1/links/abc", None, any).0, 201);
    let (status, link) = call(
        &api,
        Method::PUT,
        "/v1/links/abc",
        Some("domain=Go.Brand.com"),
        bound,
    );
    assert_eq!((status, &link["domain"]), (201, &json!("go.brand.com")));
    let target_of = |query| call(&api, Method::GET, "/v1/links/abc", query, "").1["target"].clone();
    assert_eq!(
        target_of(None),
        json!("https://a.example/any"),
        "the any-host link is kept"
    );
    assert_eq!(
        target_of(Some("domain=go.brand.com")),
        json!("https://a.example/bound")
    );
    // The same host in the body and the query is one call.
    let both = r#"{"target":"https://a.example/both","domain":"go.brand.com."}"#;
    assert_eq!(
        call(
            &api,
            Method::PUT,
            "/v1/links/abc",
            Some("domain=go.brand.com"),
            both
        )
        .0,
        200
    );
    let other = r#"{"target":"https://a.example/x","domain":"go.other.com"}"#;
    let (status, err) = call(
        &api,
        Method::PUT,
        "/v1/links/abc",
        Some("domain=go.brand.com"),
        other,
    );
    assert_eq!(
        (status, &err["fields"][0]["field"]),
        (409, &json!("domain"))
    );
    for bad in ["domain=", "domain=not%20a%20host", "domain=a..b"] {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let (status, err) = call(&api, method.clone(), "/v1/links/abc", Some(bad), bound);
            assert_eq!(status, 400, "{method} ?{bad}");
            assert!(
                err["error"].as_str().unwrap().starts_with("domain: "),
                "{err}"
            );
        }
    }
    assert_eq!(
        target_of(Some("domain=go.brand.com")),
        json!("https://a.example/both")
    );
}

/// A query parameter an operation does not take is refused, naming it,
/// and nothing is changed.
#[test]
fn unknown_query_parameters_are_refused_by_name() {
    let api = api();
    let body = r#"{"target":"https://a.example/"}"#;
    for (method, path, query) in [
        (Method::PUT, "/v1/links/abc", "domian=go.brand.com"),
        (
            Method::GET,
            "/v1/links/abc",
            "domain=go.brand.com&verbose=1",
        ),
        (Method::DELETE, "/v1/links/abc", "force=true"),
        (Method::POST, "/v1/links", "domain=go.brand.com"),
        (Method::POST, "/v1/links/mint", "code=abc"),
    ] {
        let (status, err) = call(&api, method.clone(), path, Some(query), body);
        let name = query.rsplit('&').next().unwrap().split('=').next().unwrap();
        assert_eq!(status, 400, "{method} {path}?{query}");
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .contains(&format!("{name:?}")),
            "{err}"
        );
    }
    assert_eq!(
        call(&api, Method::GET, "/v1/links/abc", None, "").0,
        404,
        "nothing was stored"
    );
    let qr = api.qr_image(
        &Caller::Operator,
        &Method::GET,
        "/v1/links/abc/qr.svg",
        Some("domain=go.a.example&sise=9"),
        &http::HeaderMap::new(),
    );
    assert_eq!(qr.map(|r| r.status().as_u16()), Some(400));
}

#[test]
fn invalid_bodies_are_named_field_by_field() {
    let api = api();
    let (s, v) = call(
        &api,
        Method::PUT,
        "/v1/links/abc",
        None,
        r#"{"target":"javascript:x","redirect":200,"expires_at":"soon"}"#,
    );
    assert_eq!(s, 400);
    let fields: Vec<&str> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["target", "redirect", "expires_at"]);
    assert!(v["error"].as_str().unwrap().starts_with("target:"));
    let (s, v) = call(
        &api,
        Method::PUT,
        "/v1/links/abc",
        None,
        r#"{"code":"other","target":"https://a.example/"}"#,
    );
    assert_eq!((s, v["fields"][0]["field"].as_str()), (400, Some("code")));
    let (s, v) = call(&api, Method::PUT, "/v1/links/abc", None, "not json");
    assert_eq!(s, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON: expected"),
        "{v}"
    );
    assert_eq!(
        call(
            &api,
            Method::PUT,
            "/v1/links/a.b",
            None,
            r#"{"target":"https://a.example/"}"#
        )
        .0,
        404
    );
}

#[test]
fn bulk_reports_lines() {
    let api = api();
    let body = "{\"code\":\"a\",\"target\":\"https://a.example/\"}\n\n{\"code\":\"b\",\"target\":\"nope\"}\n{\"code\":\"c\",\"target\":\"https://c.example/\"}\n";
    let (s, v) = call(&api, Method::POST, "/v1/links", None, body);
    assert_eq!(s, 200);
    assert_eq!(v["accepted"], 2);
    assert_eq!(v["rejected"][0]["line"], 3);
    assert!(
        v["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("target:")
    );
    assert_eq!(api.editor.store().len(), 2);
}

#[test]
fn minted_codes_are_new_base62_of_7_to_11_chars() {
    let api = api();
    let mut codes = std::collections::HashSet::new();
    for _ in 0..200 {
        let (s, v) = call(
            &api,
            Method::POST,
            "/v1/links/mint",
            None,
            r#"{"target":"https://a.example/","advocate_id":"adv"}"#,
        );
        assert_eq!(s, 201);
        let code = v["code"].as_str().unwrap().to_owned();
        assert!(
            (7..=11).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{code}"
        );
        assert!(codes.insert(code));
    }
    assert_eq!(api.editor.store().len(), 200);
    let (s, v) = call(
        &api,
        Method::POST,
        "/v1/links/mint",
        None,
        r#"{"code":"mine","target":"https://a.example/"}"#,
    );
    assert_eq!((s, v["fields"][0]["field"].as_str()), (400, Some("code")));
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let api = api();
    for (method, path, allow) in [
        (Method::GET, "/v1/links", "POST"),
        (Method::GET, "/v1/links/mint", "POST"),
        (Method::TRACE, "/v1/links/mint", "POST"),
        (Method::POST, "/v1/links/abc", "GET, PUT, DELETE"),
        (Method::TRACE, "/v1/links/abc", "GET, PUT, DELETE"),
    ] {
        let res = api.handle(&Caller::Operator, &method, path, None, b"");
        assert_eq!(res.status(), 405, "{method} {path}");
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
    }
}

#[test]
fn a_bulk_upsert_needs_a_body() {
    let api = api();
    let (s, v) = call(&api, Method::POST, "/v1/links", None, "");
    assert_eq!((s, v["error"].is_string()), (400, true));
    let (s, v) = call(&api, Method::POST, "/v1/links", None, "\n");
    assert_eq!(
        (s, v["accepted"].as_u64()),
        (200, Some(0)),
        "blank lines are skipped"
    );
}

/// The link schemas of `openapi.json` are the declaration's
/// (`links::field`): a field added there and not here fails, with the
/// schema to put in the file.
#[test]
fn openapi_link_schemas_follow_the_declaration() {
    use crate::links::PreviewRecord;
    let spec: serde_json::Value = serde_json::from_str(include_str!("../openapi.json")).unwrap();
    let rules = crate::links::rules::openapi_schemas();
    for (name, generated) in [
        ("Link", LinkRecord::schema(false, &[])),
        ("LinkPut", LinkRecord::schema(true, &["code"])),
        ("NewLink", LinkRecord::schema(true, &["code"])),
        ("Preview", PreviewRecord::schema(true, &[])),
        ("Rule", rules["Rule"].clone()),
        ("When", rules["When"].clone()),
        ("Variant", rules["Variant"].clone()),
        ("Domain", crate::domains::DomainRecord::schema(false, &[])),
        (
            "DomainPut",
            crate::domains::DomainRecord::schema(true, &["host"]),
        ),
    ] {
        let mut written = spec["components"]["schemas"][name].clone();
        if std::env::var_os("RF_WRITE_EXAMPLES").is_some() {
            println!("@@{name}@@{generated}");
            continue;
        }
        // The schema's own description is prose about the operation.
        if let Some(o) = written.as_object_mut() {
            o.remove("description");
            if generated.get("description").is_some() {
                o.insert("description".into(), generated["description"].clone());
            }
        }
        assert_eq!(
            written,
            generated,
            "openapi.json: components.schemas.{name} should be (plus its description):\n{}",
            serde_json::to_string_pretty(&generated).unwrap()
        );
    }
}
