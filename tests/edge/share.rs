//! The share on real sockets (README: "Sharing"): the channel of every
//! click, QR codes read back by a decoder nobody here wrote (rqrr; the PNG
//! decoded by the `png` crate, the SVG drawn by resvg) and followed to their
//! click, and the preview page parsed by a real HTML parser (scraper, on
//! html5ever).

use crate::common::*;

const CHROME: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36",
);
const SLACKBOT: (&str, &str) = (
    "user-agent",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
);
const LINKEDINBOT: (&str, &str) = (
    "user-agent",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
);
const TOKEN: &str = "admin-token-0123456789";

/// A title that would be markup if it were not escaped.
const HOSTILE_TITLE: &str =
    "\"><script>alert(1)</script> Jane Doe at ACME recommends Payroll & more";

fn links() -> String {
    let preview = serde_json::json!({
        "code": "jane",
        "target": "https://brand.example/payroll?utm_source=refedge",
        "advocate_id": "adv-jane",
        "preview": {
            "title": HOSTILE_TITLE,
            "description": "Save 20 % <b>today</b> & 'tomorrow'",
            "image": "https://cdn.brand.example/jane.png?size=1200&v=\"2\"",
            "image_alt": "Jane's <portrait>",
            "site_name": "ACME Payroll"
        }
    });
    format!("{LINKS}{preview}\n")
}

async fn edge() -> (Fixture, InProcess) {
    let fixture = Fixture::new(&links());
    let edge = start(&fixture.config(&[("REFEDGE_ADMIN_TOKEN", TOKEN)])).await;
    (fixture, edge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_click_carries_its_channel_and_the_parameter_never_reaches_the_target() {
    let (fixture, edge) = edge().await;
    let from_param = get(edge.public, "/demo?rf_ch=LinkedIn&a=1", &[CHROME]).await;
    assert_eq!(from_param.status, 302);
    assert!(
        !from_param.location().contains("rf_ch"),
        "{}",
        from_param.location()
    );
    assert!(from_param.location().contains("a=1"));
    let slack = ("referer", "https://app.slack.com/client/T0001/C0001");
    let from_referer = get(edge.public, "/demo", &[CHROME, slack]).await;
    let unknown = get(edge.public, "/demo?rf_ch=billboard", &[CHROME]).await;
    let web = get(
        edge.public,
        "/demo",
        &[CHROME, ("referer", "https://blog.example/post")],
    )
    .await;
    let direct = get(edge.public, "/demo", &[CHROME]).await;
    assert!(edge.stop().await);

    let events = fixture.events();
    assert_schema_valid(&events);
    let channel_of = |r: &Response| {
        let id = click_param(r.location()).expect("click id");
        let e = events
            .iter()
            .find(|e| e["click_id"] == id.as_str())
            .expect("its event");
        (
            e["channel"].as_str().unwrap().to_owned(),
            e["channel_source"].as_str().unwrap().to_owned(),
        )
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(channel_of(&from_param), pair("linkedin", "param"));
    assert_eq!(channel_of(&from_referer), pair("slack", "referer"));
    assert_eq!(channel_of(&unknown), pair("other", "param"));
    assert_eq!(channel_of(&web), pair("web", "referer"));
    assert_eq!(channel_of(&direct), pair("direct", "none"));
}

/// The text a QR code in a grey image holds, read by rqrr.
fn scan(width: usize, height: usize, grey: &[u8]) -> String {
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| grey[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one code in the image");
    grids[0].decode().expect("the code decodes").1
}

fn scan_png(bytes: &[u8]) -> (String, u32) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!(info.width, info.height);
    let (w, h) = (info.width as usize, info.height as usize);
    (scan(w, h, &buf[..w * h]), info.width)
}

fn scan_svg(bytes: &[u8]) -> String {
    let tree =
        resvg::usvg::Tree::from_data(bytes, &resvg::usvg::Options::default()).expect("an SVG");
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).expect("a canvas");
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    let grey: Vec<u8> = pixmap.pixels().iter().map(|p| p.red()).collect();
    scan(size.width() as usize, size.height() as usize, &grey)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanned_qr_code_is_a_click_whose_channel_is_qr_and_images_are_not_clicks() {
    let (fixture, edge) = edge().await;
    let origin = format!("http://{}", edge.public);
    let expected = format!("{origin}/demo?rf_ch=qr");

    let png = get(edge.public, "/demo/qr.png", &[CHROME]).await;
    assert_eq!(png.status, 200);
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert!(png.header("cache-control").unwrap().contains("max-age="));
    let (text, width) = scan_png(&png.body);
    assert_eq!((text.as_str(), width), (expected.as_str(), 512));
    let (_, width) = scan_png(
        &get(edge.public, "/demo/qr.png?size=300&margin=2&ecc=H", &[])
            .await
            .body,
    );
    assert_eq!(width, 300);

    let svg = get(edge.public, "/demo/qr.svg", &[]).await;
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert_eq!(scan_svg(&svg.body), expected);
    let print = get(edge.public, "/demo/qr.svg?channel=print&margin=0", &[]).await;
    assert_eq!(scan_svg(&print.body), format!("{origin}/demo?rf_ch=print"));

    // Cached: the same tag answers 304, another image has another tag.
    let tag = png.header("etag").expect("an ETag");
    let again = get(edge.public, "/demo/qr.png", &[("if-none-match", tag)]).await;
    assert_eq!((again.status, again.body.len()), (304, 0));
    assert_ne!(svg.header("etag"), Some(tag));
    let head = try_send(edge.public, "HEAD", "/demo/qr.png", &[])
        .await
        .expect("HEAD");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    for (path, status) in [
        ("/demo/qr.png?size=64", 400),
        ("/demo/qr.png?size=4096", 400),
        ("/demo/qr.svg?margin=17", 400),
        ("/demo/qr.svg?ecc=Z", 400),
        ("/demo/qr.svg?channel=billboard", 400),
        ("/nosuch/qr.svg", 404),
        ("/off/qr.png", 410),
        ("/old/qr.svg", 410),
        ("/demo/qr.gif", 404),
    ] {
        assert_eq!(get(edge.public, path, &[]).await.status, status, "{path}");
    }

    // The admin API serves the same image for a print run, for a named host.
    let auth = ("authorization", "Bearer admin-token-0123456789");
    let admin = get(
        edge.admin,
        "/v1/links/demo/qr.svg?domain=go.brand.example",
        &[auth],
    )
    .await;
    assert_eq!(admin.status, 200);
    assert_eq!(
        scan_svg(&admin.body),
        "https://go.brand.example/demo?rf_ch=qr"
    );
    let no_domain = get(edge.admin, "/v1/links/demo/qr.png", &[auth]).await;
    assert_eq!(no_domain.status, 400);
    assert_eq!(
        get(edge.admin, "/v1/links/demo/qr.png?domain=a", &[])
            .await
            .status,
        401
    );

    // Following the scanned URL: a click, redirected without the parameter.
    let path = text.strip_prefix(&origin).expect("the edge's own URL");
    let scanned = get(edge.public, path, &[CHROME]).await;
    assert_eq!(scanned.status, 302);
    assert!(!scanned.location().contains("rf_ch"));
    let id = click_param(scanned.location()).expect("a click id");
    assert!(edge.stop().await);

    let events = fixture.events();
    assert_schema_valid(&events);
    assert_eq!(events.len(), 1, "images are not clicks: {events:?}");
    assert_eq!(events[0]["click_id"], id.as_str());
    assert_eq!(events[0]["channel"], "qr");
    assert_eq!(events[0]["channel_source"], "param");
}

/// The `content` of the one `<meta>` whose `attr` is `name`.
fn meta(doc: &scraper::Html, attr: &str, name: &str) -> Option<String> {
    let selector = scraper::Selector::parse(&format!("meta[{attr}=\"{name}\"]")).unwrap();
    let mut found = doc.select(&selector);
    let one = found.next()?.value().attr("content").map(str::to_owned);
    assert!(found.next().is_none(), "one {name}");
    one
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfurlers_see_the_personal_preview_escaped_and_people_still_get_the_redirect() {
    let (fixture, edge) = edge().await;
    let short = format!("http://{}/jane", edge.public);
    let target = "https://brand.example/payroll?utm_source=refedge";
    for bot in [SLACKBOT, LINKEDINBOT] {
        let r = get(edge.public, "/jane", &[bot]).await;
        assert_eq!(r.status, 200, "{bot:?}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("x-robots-tag"), Some("noindex"));
        assert_eq!(r.header("set-cookie"), None);
        let html = std::str::from_utf8(&r.body).unwrap();
        assert!(!html.contains("rf_click"), "no click id for a bot");
        let doc = scraper::Html::parse_document(html);
        assert!(doc.errors.is_empty(), "{:?}", doc.errors);
        let script = scraper::Selector::parse("script").unwrap();
        assert_eq!(doc.select(&script).count(), 0, "the title stays text");
        assert_eq!(
            meta(&doc, "property", "og:title").as_deref(),
            Some(HOSTILE_TITLE)
        );
        assert_eq!(
            meta(&doc, "property", "og:description").as_deref(),
            Some("Save 20 % <b>today</b> & 'tomorrow'")
        );
        assert_eq!(
            meta(&doc, "property", "og:image").as_deref(),
            Some("https://cdn.brand.example/jane.png?size=1200&v=\"2\"")
        );
        assert_eq!(
            meta(&doc, "property", "og:image:alt").as_deref(),
            Some("Jane's <portrait>")
        );
        assert_eq!(
            meta(&doc, "property", "og:url").as_deref(),
            Some(short.as_str())
        );
        assert_eq!(
            meta(&doc, "property", "og:type").as_deref(),
            Some("website")
        );
        assert_eq!(
            meta(&doc, "property", "og:site_name").as_deref(),
            Some("ACME Payroll")
        );
        assert_eq!(
            meta(&doc, "name", "twitter:card").as_deref(),
            Some("summary_large_image")
        );
        assert_eq!(
            meta(&doc, "name", "twitter:title").as_deref(),
            Some(HOSTILE_TITLE)
        );
        assert_eq!(
            meta(&doc, "http-equiv", "refresh").as_deref(),
            Some(format!("0; url={target}").as_str())
        );
        let title = scraper::Selector::parse("title").unwrap();
        assert_eq!(
            doc.select(&title)
                .next()
                .unwrap()
                .text()
                .collect::<String>(),
            HOSTILE_TITLE
        );
        let link = scraper::Selector::parse("a[href]").unwrap();
        assert_eq!(
            doc.select(&link).next().unwrap().value().attr("href"),
            Some(target)
        );
    }
    let head = try_send(edge.public, "HEAD", "/jane", &[SLACKBOT])
        .await
        .expect("HEAD");
    assert_eq!(head.status, 200);

    // A person gets the redirect and the cookie; another bot, the redirect;
    // a link without a preview, the redirect for the unfurler too.
    let person = get(edge.public, "/jane", &[CHROME]).await;
    assert_eq!(person.status, 302);
    assert!(person.header("set-cookie").is_some());
    let crawler = (
        "user-agent",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    );
    assert_eq!(get(edge.public, "/jane", &[crawler]).await.status, 302);
    assert_eq!(get(edge.public, "/demo", &[SLACKBOT]).await.status, 302);

    // A preview set through the admin API is served at once.
    let body = serde_json::json!({"target": "https://brand.example/x", "preview": {"title": "Set by the API"}});
    let (status, _) = admin_request(
        edge.admin,
        "PUT",
        "/v1/links/apiprev",
        Some(TOKEN),
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 201);
    let (status, link) =
        admin_request(edge.admin, "GET", "/v1/links/apiprev", Some(TOKEN), "").await;
    assert_eq!(
        (status, &link["preview"]["title"]),
        (200, &serde_json::json!("Set by the API"))
    );
    let page = get(edge.public, "/apiprev", &[LINKEDINBOT]).await;
    let doc = scraper::Html::parse_document(std::str::from_utf8(&page.body).unwrap());
    assert_eq!(
        meta(&doc, "property", "og:title").as_deref(),
        Some("Set by the API")
    );
    assert_eq!(
        meta(&doc, "name", "twitter:card").as_deref(),
        Some("summary")
    );
    let bad = serde_json::json!({"target": "https://brand.example/x", "preview": {"title": ""}});
    let (status, answer) = admin_request(
        edge.admin,
        "PUT",
        "/v1/links/apiprev",
        Some(TOKEN),
        &bad.to_string(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("preview.title"),
        "{answer}"
    );
    assert!(edge.stop().await);

    let events = fixture.events();
    assert_schema_valid(&events);
    let previews: Vec<_> = events
        .iter()
        .filter(|e| e["outcome"] == "preview")
        .collect();
    assert_eq!(previews.len(), 4, "two GETs, one HEAD, one after the API");
    for e in &previews {
        assert_eq!(
            (e["bot"].as_bool(), e["status"].as_u64()),
            (Some(true), Some(200))
        );
        assert!(
            e["bot_reason"]
                .as_str()
                .unwrap()
                .starts_with("link_preview:"),
            "{e}"
        );
    }
    assert_eq!(previews[0]["bot_reason"], "link_preview:slack");
    assert_eq!(previews[1]["bot_reason"], "link_preview:linkedin");
}
