//! The in-process request path: resolve + build the response + record the
//! event, with codes drawn Zipf-distributed from 100k links, and its parts.
//! `cargo bench --bench request_path`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::Empty;
use rand::{Rng, SeedableRng};
use refedge::attribution::ClickId;
use refedge::config::Config;
use refedge::http::ConnInfo;
use refedge::node::Node;

const LINKS: usize = 100_000;

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

fn setup() -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = String::with_capacity(LINKS * 140);
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

    let mut group = c.benchmark_group("request_path");
    group.measurement_time(Duration::from_secs(5));
    let mut i = 0usize;
    group.bench_function("full_click_zipf_100k", |b| {
        b.iter(|| {
            i = (i + 1) & (requests.len() - 1);
            black_box(edge.handle(&requests[i], &conn))
        })
    });
    let codes: Vec<String> = ranks.iter().map(|&r| code(r)).collect();
    let mut j = 0usize;
    group.bench_function("resolve_zipf_100k", |b| {
        b.iter(|| {
            j = (j + 1) & (codes.len() - 1);
            black_box(edge.links.resolve("go.brand.example", &codes[j]))
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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
