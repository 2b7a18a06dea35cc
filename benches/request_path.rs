//! The in-process request path: resolve + build the response + record the
//! event, with codes drawn Zipf-distributed from 1M links; the same click on
//! a link with 16 redirect rules whose last one holds (device, OS, language,
//! query and, last, country from a GeoIP database of 20,000 networks); and
//! its parts:
//! code parse + lookup on 1 and 2 threads, the redirect with its cookie, and
//! the event's JSON line. `cargo bench --bench request_path`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::Empty;
use rand::{Rng, SeedableRng};
use refedge::attribution::{ClickId, CookieCheck};
use refedge::config::Config;
use refedge::events::{ClickEvent, JsonText, Outcome, Plain, Timestamp};
use refedge::http::ConnInfo;
use refedge::links::ShortCode;
use refedge::node::Node;

/// The allocator the binary uses, so that the figures are the binary's,
/// counting what each thread allocates and frees.
#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Counting;

thread_local! {
    /// (allocations, bytes allocated, frees) by this thread.
    static COUNTS: std::cell::Cell<(u64, u64, u64)> = const { std::cell::Cell::new((0, 0, 0)) };
}

// SAFETY: every call is passed to the binary's allocator unchanged; the counters are
// thread-local cells that never allocate. (A global allocator cannot be
// written without `unsafe`; this one exists only in the benchmark.)
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = COUNTS.try_with(|c| {
            let (a, b, f) = c.get();
            c.set((a + 1, b + layout.size() as u64, f));
        });
        // SAFETY: the caller's contract is the allocator's.
        unsafe { refedge::sys::alloc::Allocator.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        let _ = COUNTS.try_with(|c| {
            let (a, b, f) = c.get();
            c.set((a, b, f + 1));
        });
        // SAFETY: as above.
        unsafe { refedge::sys::alloc::Allocator.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let _ = COUNTS.try_with(|c| {
            let (a, b, f) = c.get();
            c.set((a + 1, b + size as u64, f + 1));
        });
        // SAFETY: as above.
        unsafe { refedge::sys::alloc::Allocator.realloc(ptr, layout, size) }
    }
}

fn counts() -> (u64, u64, u64) {
    COUNTS.with(|c| c.get())
}

const LINKS: usize = 1_000_000;

fn code(i: usize) -> String {
    format!("c{i:07}")
}

/// Zipf(s=1) ranks over `n` items by inverse CDF on a precomputed table.
fn zipf_ranks(n: usize, samples: usize, seed: u64) -> Vec<usize> {
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0;
    for k in 1..=n {
        total += 1.0 / k as f64;
        cdf.push(total);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..samples)
        .map(|_| {
            let u = rng.random::<f64>() * total;
            cdf.partition_point(|c| *c < u).min(n - 1)
        })
        .collect()
}

/// Codes of the links with 16 rules.
const RULED: usize = 1024;

/// 16 rules that a US iPhone with an English browser passes over until the
/// last: every fact a rule can ask for is looked up on the way.
fn sixteen_rules() -> String {
    let mut rules: Vec<String> = Vec::new();
    for (when, n) in [
        (r#"{"device":["tablet"]}"#, 3),
        (r#"{"os":["android","windows"]}"#, 3),
        (r#"{"language":["fr","de","es"]}"#, 3),
        (r#"{"query":{"utm_medium":"print"}}"#, 3),
        (
            r#"{"country":["DE","AT","CH","FR","BE","NL","LU","IT"]}"#,
            3,
        ),
    ] {
        for i in 0..n {
            rules.push(format!(
                r#"{{"when":{when},"target":"https://brand.example/rule/{}/{i}"}}"#,
                rules.len()
            ));
        }
    }
    rules.push(r#"{"when":{"country":["CA","US"],"device":["mobile"]},"target":"https://brand.example/us-mobile?utm_source=ref"}"#.into());
    assert_eq!(rules.len(), 16);
    format!("[{}]", rules.join(","))
}

/// A City database of 20,000 networks, 203.0.113.0/24 (the bench's client)
/// among them in the US.
fn city_db(path: &std::path::Path) {
    #[derive(serde::Serialize)]
    struct Country {
        iso_code: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Record {
        country: Country,
    }
    let mut w = mmdb_writer::Writer::new("GeoLite2-City");
    let codes = ["US", "DE", "FR", "GB", "CA", "JP", "BR", "IN"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for i in 0..20_000u32 {
        let net = std::net::Ipv4Addr::from(rng.random::<u32>() & 0xffff_ff00);
        let record = Record {
            country: Country {
                iso_code: codes[i as usize % codes.len()],
            },
        };
        let _ = w.insert(
            ipnet::IpNet::from(ipnet::Ipv4Net::new(net, 24).expect("net")),
            &record,
        );
    }
    w.insert(
        "203.0.113.0/24".parse::<ipnet::IpNet>().expect("net"),
        &Record {
            country: Country { iso_code: "US" },
        },
    )
    .expect("insert");
    std::fs::write(path, w.to_bytes().expect("mmdb")).expect("write mmdb");
}

fn setup() -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = String::with_capacity(LINKS * 140);
    let rules = sixteen_rules();
    for i in 0..RULED {
        text.push_str(&format!(
            "{{\"code\":\"ruled{i}\",\"target\":\"https://brand.example/landing/r{i}?utm_source=ref\",\"advocate_id\":\"adv-r{i}\",\"rules\":{rules}}}\n"
        ));
    }
    let city = dir.path().join("city.mmdb");
    city_db(&city);
    for i in 0..LINKS {
        text.push_str(&format!(
            "{{\"code\":\"{}\",\"target\":\"https://brand.example/landing/{i}?utm_source=ref\",\"advocate_id\":\"adv-{i}\",\"campaign_id\":\"camp-{}\"}}\n",
            code(i),
            i % 50
        ));
    }
    let links = dir.path().join("links.jsonl");
    std::fs::write(&links, text).expect("write links");
    let env = vec![
        ("REFEDGE_LINKS_FILE".to_owned(), links.display().to_string()),
        (
            "REFEDGE_EVENTS_SPOOL_DIR".to_owned(),
            dir.path().join("spool").display().to_string(),
        ),
        (
            "REFEDGE_ATTRIBUTION_SECRET".to_owned(),
            "bench-secret-0123456789".to_owned(),
        ),
        (
            "REFEDGE_EVENTS_QUEUE_CAPACITY".to_owned(),
            "1048576".to_owned(),
        ),
        ("REFEDGE_GEO_CITY_DB".to_owned(), city.display().to_string()),
    ];
    let config = Config::from_sources("bench", "", &env).expect("config");
    let node = Node::prepare(&config).expect("node");
    (dir, node)
}

fn bench(c: &mut Criterion) {
    let (_dir, node) = setup();
    let edge = node.edge();
    let ranks = zipf_ranks(LINKS, 1 << 16, 7);
    let requests: Vec<Request<Empty<Bytes>>> = ranks
        .iter()
        .map(|&r| {
            Request::builder()
                .uri(format!("/{}?utm_campaign=x", code(r)))
                .header("host", "go.brand.example")
                .header("user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1")
                .header("referer", "https://www.linkedin.com/")
                .body(Empty::new())
                .expect("request")
        })
        .collect();
    let conn = ConnInfo {
        peer: SocketAddr::from(([203, 0, 113, 9], 50_000)),
        tls: false,
    };

    // Allocations per click on the serving thread; those it allocates but
    // does not free are freed by another thread (the spool writer).
    let (a0, b0, f0) = counts();
    for request in &requests {
        black_box(edge.handle(request, &conn));
    }
    let (a1, b1, f1) = counts();
    let n = requests.len() as f64;
    println!(
        "allocations per click on the serving thread: {:.2} ({:.0} bytes), frees {:.2}: {:.2} per click freed by another thread",
        (a1 - a0) as f64 / n,
        (b1 - b0) as f64 / n,
        (f1 - f0) as f64 / n,
        (a1 - a0) as f64 / n - (f1 - f0) as f64 / n
    );

    // The same clicks on the links with 16 rules.
    let ruled: Vec<Request<Empty<Bytes>>> = requests
        .iter()
        .enumerate()
        .map(|(n, r)| {
            let mut req = Request::builder()
                .uri(format!("/ruled{}?utm_campaign=x", n % RULED))
                .body(Empty::new())
                .expect("request");
            *req.headers_mut() = r.headers().clone();
            req.headers_mut().insert(
                "accept-language",
                http::HeaderValue::from_static("en-US,en;q=0.9"),
            );
            req
        })
        .collect();
    let location = edge.handle(&ruled[0], &conn);
    assert!(
        location.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("https://brand.example/us-mobile?"),
        "the last rule holds: {:?}",
        location.headers()["location"]
    );

    let mut group = c.benchmark_group("request_path");
    group.measurement_time(Duration::from_secs(5));
    let mut i = 0usize;
    group.bench_function("full_click_zipf_1m", |b| {
        b.iter(|| {
            i = (i + 1) & (requests.len() - 1);
            black_box(edge.handle(&requests[i], &conn))
        })
    });
    group.bench_function("full_click_16_rules_last_holds", |b| {
        b.iter(|| {
            i = (i + 1) & (ruled.len() - 1);
            black_box(edge.handle(&ruled[i], &conn))
        })
    });
    // What the router does before it knows the link: take the code from the
    // path, check its syntax, look it up.
    let paths: Vec<String> = ranks.iter().map(|&r| format!("/{}", code(r))).collect();
    let parse_and_resolve = |path: &str| {
        let code = path.strip_prefix('/').unwrap_or("");
        ShortCode::is_valid(code).then(|| edge.links.resolve("go.brand.example", code))
    };
    let mut j = 0usize;
    group.bench_function("parse_resolve_zipf_1m_1_thread", |b| {
        b.iter(|| {
            j = (j + 1) & (paths.len() - 1);
            black_box(parse_and_resolve(&paths[j]))
        })
    });
    // Two threads look up at once; the time is wall time per lookup on one
    // of them (no contention = the one-thread figure).
    group.bench_function("parse_resolve_zipf_1m_2_threads", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2usize {
                    let paths = &paths;
                    let parse_and_resolve = &parse_and_resolve;
                    s.spawn(move || {
                        let mut k = t * 7919;
                        for _ in 0..iters {
                            k = (k + 1) & (paths.len() - 1);
                            black_box(parse_and_resolve(&paths[k]));
                        }
                    });
                }
            });
            started.elapsed()
        })
    });
    // The redirect for a new visitor: attribution decision (signs the
    // cookie), `Location` with the click id, the response.
    let link = match edge.links.resolve("go.brand.example", &code(1)) {
        refedge::links::Resolution::Found(link) => link,
        refedge::links::Resolution::NotFound => panic!("code 1 is loaded"),
    };
    group.bench_function("response_with_cookie", |b| {
        b.iter(|| {
            let id = ClickId::new(1_800_000_000_000);
            let decision =
                edge.attribution
                    .decide(true, CookieCheck::Absent, id, 1_800_000_000_000, true);
            let location = refedge::http::query::location(
                link.target(),
                link.forward_query(),
                Some("utm_campaign=x"),
                &edge.params,
                decision.click_id.as_ref(),
            )
            .header();
            black_box(refedge::http::router::redirect(
                http::StatusCode::FOUND,
                location,
                decision.set_cookie,
            ))
        })
    });
    // One event line as the writer encodes it, and the same with serde_json.
    let (campaign, node) = (JsonText::new("camp-1"), JsonText::new("edge-1"));
    let event = ClickEvent {
        schema_version: refedge::events::SCHEMA_VERSION,
        kind: Plain::new("click"),
        click_id: Plain::new("0352LGAAiCKbK4rkuZHHU8"),
        occurred_at: Timestamp::from_millis(1_800_000_000_123),
        outcome: Outcome::Redirected,
        code: "c0000001",
        host: "go.brand.example",
        advocate_id: Some("adv-1"),
        campaign_id: Some(campaign.encoded()),
        program_id: None,
        target: Some(
            "https://brand.example/landing/1?utm_source=ref&utm_campaign=x&rf_click=0352LGAAiCKbK4rkuZHHU8",
        ),
        status: 302,
        ip: Some(Plain::new("203.0.113.0")),
        user_agent: Some(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1",
        ),
        referer: Some("https://www.linkedin.com/"),
        country: Some("DE"),
        region: Some("BE"),
        city: Some("Berlin"),
        asn: Some(3320),
        bot: false,
        bot_reason: None,
        attributed: true,
        prior_click_id: None,
        gpc: false,
        node: node.encoded(),
        device: Some(Plain::new("mobile")),
        os: Some("iOS"),
        browser: Some("Safari"),
        repeat: false,
        channel: Plain::new("linkedin"),
        channel_source: Plain::new("referer"),
        risk: refedge::risk::Flags::NONE,
        rule: None,
        variant: None,
    };
    let mut line = Vec::with_capacity(1024);
    group.bench_function("event_json_line", |b| {
        b.iter(|| {
            line.clear();
            black_box(&event).write_json(&mut line);
            black_box(line.len())
        })
    });
    group.bench_function("event_json_line_serde_json", |b| {
        b.iter(|| {
            line.clear();
            serde_json::to_writer(&mut line, black_box(&event)).expect("serialise");
            black_box(line.len())
        })
    });
    let id = ClickId::new(1_800_000_000_000);
    let signer = edge.attribution.signer();
    group.bench_function("cookie_sign", |b| {
        b.iter(|| black_box(signer.sign(&id, 1_800_000_000)))
    });
    let cookie = signer.sign(&id, 1_800_000_000);
    group.bench_function("cookie_verify", |b| {
        b.iter(|| black_box(signer.verify(&cookie, 1_800_000_100)))
    });
    group.bench_function("click_id", |b| {
        b.iter(|| black_box(ClickId::new(1_800_000_000_000)))
    });
    // A QR image of a link's public URL: rendered (the default 512 px PNG,
    // the SVG), and answered from its ETag (a client's or a CDN's cached copy).
    let url = "https://go.brand.example/c0000001?rf_ch=qr";
    let params = refedge::share::qr::QrParams::default();
    group.bench_function("qr_png_512", |b| {
        b.iter(|| black_box(refedge::share::qr::png(black_box(url), &params)))
    });
    group.bench_function("qr_svg", |b| {
        b.iter(|| black_box(refedge::share::qr::svg(black_box(url), &params)))
    });
    let fresh = refedge::share::qr::respond(
        url,
        &params,
        refedge::share::qr::Format::Png,
        &http::HeaderMap::new(),
    );
    let mut cached = http::HeaderMap::new();
    cached.insert(
        http::header::IF_NONE_MATCH,
        fresh.headers()[http::header::ETAG].clone(),
    );
    group.bench_function("qr_not_modified", |b| {
        b.iter(|| {
            black_box(refedge::share::qr::respond(
                url,
                &params,
                refedge::share::qr::Format::Png,
                &cached,
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
