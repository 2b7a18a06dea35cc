//! One edge node: wiring the parts together, the start-up steps (links, spool)
//! that must succeed before any port is bound, links reload, and the shutdown
//! sequence: not ready → stop accepting → drain connections → close the
//! event hand-off → flush and fsync the spool → stop the admin listener.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http::HeaderValue;
use hyper::service::service_fn;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{Admin, Readiness};
use crate::attribution::Attribution;
use crate::config::{Config, PlainHttp, SinkKind};
use crate::events::enrich::{Enricher, RepeatTracker};
use crate::events::{EventPipeline, ShipperConfig, ShipperHandle, SpoolConfig, SpoolWriter};
use crate::geo::Geo;
use crate::http::{ConnInfo, Edge, server};
use crate::links::LinkStore;
use crate::links::replication::{Replication, ReplicationConfig};
use crate::metrics::{self, EventMetrics, RequestMetrics};
use crate::privacy::IpPolicy;
use crate::tls::{CertStore, LoadReport};
use crate::visitor::{BotDetector, device::DeviceParser};

/// How long the spool writer gets to write what is queued at shutdown.
const SPOOL_CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// The bound listeners a node serves (bound by the caller, so tests can pass
/// `127.0.0.1:0` listeners and read their addresses).
#[derive(Debug)]
pub struct Listeners {
    /// Plain HTTP (`server.listen`).
    pub public: TcpListener,
    pub admin: TcpListener,
    /// HTTPS (`tls.listen`), when TLS is configured.
    pub tls: Option<TcpListener>,
}

impl Listeners {
    /// Binds the configured addresses.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let public = crate::http::per_core::bind_new_group(config.server.listen)
            .with_context(|| format!("server.listen: cannot bind {}", config.server.listen))?;
        let admin = TcpListener::bind(config.admin.listen)
            .await
            .with_context(|| format!("admin.listen: cannot bind {}", config.admin.listen))?;
        let tls = match config.tls.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("tls.listen: cannot bind {addr}"))?,
            ),
            None => None,
        };
        Ok(Listeners { public, admin, tls })
    }
}

/// Reloads the links file into the serving map. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LinkReloader {
    store: Arc<LinkStore>,
    file: PathBuf,
    /// The load of the file that set the file's links now served (1-255,
    /// 0 = none yet); every link from the file carries it.
    epoch: Arc<std::sync::atomic::AtomicU8>,
}

impl LinkReloader {
    fn new(store: Arc<LinkStore>, file: PathBuf) -> LinkReloader {
        LinkReloader {
            store,
            file,
            epoch: Arc::default(),
        }
    }

    /// Says that the map already holds file links of load `epoch` (from a
    /// snapshot), so the next load sweeps those that left the file.
    pub fn set_epoch(&self, epoch: u8) {
        self.epoch.store(epoch, std::sync::atomic::Ordering::SeqCst);
    }

    /// Loads the file and swaps its valid links in: each is added or
    /// replaced, and the links an earlier load (or the snapshot) had from the
    /// file but this one has not are removed; links created through the
    /// admin API stay. A file that cannot be read keeps the links already
    /// served. Returns (loaded, rejected).
    pub fn reload(&self) -> std::io::Result<(usize, usize)> {
        use std::sync::atomic::Ordering;
        let started = std::time::Instant::now();
        let previous = self.epoch.load(Ordering::SeqCst);
        let epoch = if previous == u8::MAX { 1 } else { previous + 1 };
        let threads = crate::links::load_threads();
        // About 200 bytes a line.
        let expected = std::fs::metadata(&self.file).map_or(0, |m| m.len() as usize / 200);
        let bulk = self.store.bulk(threads, expected);
        let loaded = std::fs::File::open(&self.file).and_then(|file| {
            crate::links::load_lines(
                file,
                threads,
                |line| {
                    crate::links::Link::with_json(line, |view| {
                        crate::links::packed::pack(view, epoch)
                    })
                },
                |worker, records| bulk.add(worker, records),
            )
        });
        let (loaded, errors) = match loaded {
            Ok(done) => done,
            Err(e) => {
                metrics::link_reloads(false).increment(1);
                tracing::error!(file = %self.file.display(), error = %e, "cannot read links file; keeping the links already loaded");
                return Err(e);
            }
        };
        bulk.finish(threads);
        for e in &errors {
            tracing::warn!(
                "bad link line skipped: {}:{}: {}",
                self.file.display(),
                e.line,
                e.error
            );
        }
        // The first load into a map without file links has nothing to sweep.
        let removed = if previous == 0 {
            0
        } else {
            self.store.sweep_file_links(epoch)
        };
        self.epoch.store(epoch, Ordering::SeqCst);
        let rejected = errors.len();
        metrics::link_lines_rejected().increment(rejected as u64);
        metrics::links_gauge().set(self.store.len() as f64);
        metrics::link_reloads(true).increment(1);
        tracing::info!(file = %self.file.display(), links = self.store.len(), loaded, rejected, removed, elapsed_ms = started.elapsed().as_millis() as u64, "links loaded");
        Ok((loaded, rejected))
    }
}

/// A prepared node: links loaded, spool open, nothing bound yet.
#[derive(Debug)]
pub struct Node {
    edge: Arc<Edge>,
    admin: Arc<Admin>,
    pipeline: EventPipeline,
    reloader: LinkReloader,
    geo: Option<Arc<Geo>>,
    shipper: Option<ShipperHandle>,
    replication: Option<(Arc<Replication>, ReplicationConfig)>,
    snapshot: Option<(PathBuf, Duration)>,
    drain: Duration,
    ship_deadline: Duration,
    tls: Option<TlsSetup>,
    /// Shared by the public and HTTPS listeners.
    limits: server::Limits,
    admin_limits: server::Limits,
    /// Threads serving the public listener, each with its own runtime.
    public_threads: usize,
}

/// The HTTPS side of a node.
#[derive(Debug)]
struct TlsSetup {
    certs: Arc<CertStore>,
    accept: server::TlsAccept,
    watch_every: Option<Duration>,
    hsts: Option<HeaderValue>,
    plain: PlainHttp,
    /// `tls.https_port`: the port plain requests are sent to; None = the
    /// bound HTTPS listener's.
    https_port: Option<u16>,
}

impl TlsSetup {
    fn new(config: &Config) -> anyhow::Result<Option<TlsSetup>> {
        let (Some(_), Some(dir)) = (config.tls.listen, &config.tls.cert_dir) else {
            return Ok(None);
        };
        let (certs, report) = CertStore::open(dir, config.tls.default_cert.as_deref())?;
        log_cert_report(&report);
        for (pair, names) in certs.current().served() {
            tracing::info!(pair, names = %names.join(","), "serving certificate");
        }
        let server_config = certs.server_config()?;
        let hsts = (config.tls.hsts_max_age_secs > 0).then(|| {
            let mut v = format!("max-age={}", config.tls.hsts_max_age_secs);
            if config.tls.hsts_include_subdomains {
                v.push_str("; includeSubDomains");
            }
            HeaderValue::from_str(&v).expect("digits and ASCII are a valid header value")
        });
        Ok(Some(TlsSetup {
            certs,
            accept: server::TlsAccept {
                acceptor: tokio_rustls::TlsAcceptor::from(server_config),
                handshake_timeout: Duration::from_millis(config.tls.handshake_timeout_ms),
            },
            watch_every: (config.tls.watch_interval_ms > 0)
                .then(|| Duration::from_millis(config.tls.watch_interval_ms)),
            hsts,
            plain: config.tls.plain_http,
            https_port: config.tls.https_port,
        }))
    }
}

/// Logs a certificate load: one error line per refused pair.
fn log_cert_report(report: &LoadReport) {
    for e in &report.errors {
        tracing::error!(pair = %e.name, "{e}");
    }
    if !report.loaded.is_empty() {
        tracing::info!(
            pairs = %report.loaded.join(","),
            served = report.served,
            "certificates loaded"
        );
    }
}

/// Reloads the certificates, logging the outcome.
pub fn reload_certs(certs: &CertStore) {
    match certs.reload() {
        Ok(report) => log_cert_report(&report),
        Err(e) => tracing::error!("{e}; keeping the certificates already served"),
    }
}

/// The shipper settings of a config.
pub fn shipper_config(config: &Config) -> ShipperConfig {
    ShipperConfig {
        dir: config.events.spool_dir.clone(),
        brokers: config.kafka.brokers.clone(),
        topic: config.kafka.clicks_topic.clone(),
        properties: config.kafka.properties.clone(),
    }
}

/// Checks what the config alone cannot: that librdkafka accepts every
/// `kafka.properties` entry. Returns one message per problem.
pub fn preflight(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if config.events.sink == SinkKind::Kafka
        && let Err(e) = crate::events::shipper::validate_properties(&shipper_config(config))
    {
        problems.push(format!("kafka.properties: {e}"));
    }
    problems
}

/// The signing keys: the configured ones, or a random one for this process.
fn secrets(config: &Config) -> Vec<Vec<u8>> {
    if config.attribution.secret.is_empty() {
        tracing::warn!(
            "attribution.secret is not set: using a random key, so attribution cookies will not survive a restart or verify on other nodes"
        );
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        vec![key]
    } else {
        config
            .attribution
            .secret
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect()
    }
}

impl Node {
    /// Loads the links and opens the spool. Fails (before any port is bound)
    /// if the links file cannot be read or the spool is not writable.
    pub fn prepare(config: &Config) -> anyhow::Result<Node> {
        if let Some(problem) = preflight(config).into_iter().next() {
            anyhow::bail!(problem);
        }
        let prometheus = metrics::install();
        let tls = TlsSetup::new(config)?;
        let readiness = Arc::new(Readiness::default());
        // Bulk loads size each shard's table for what they bring.
        let store = Arc::new(LinkStore::new());
        let reloader = LinkReloader::new(Arc::clone(&store), config.links.file.clone());
        // Start from the snapshot when there is one, then apply the links
        // file over it (a file edited while the node was down wins).
        let mut topic_offsets = std::collections::BTreeMap::new();
        if let Some(path) = &config.links.snapshot_file {
            let started = std::time::Instant::now();
            match crate::links::snapshot::load_into(path, &store) {
                Ok(Some(snapshot)) => {
                    if snapshot.file_links > 0 {
                        reloader.set_epoch(crate::links::snapshot::FILE_EPOCH);
                    }
                    topic_offsets = snapshot.offsets;
                    tracing::info!(file = %path.display(), links = snapshot.links, skipped = snapshot.skipped, offsets = ?topic_offsets, elapsed_ms = started.elapsed().as_millis() as u64, "links snapshot loaded");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot read the links snapshot; starting from the links file")
                }
            }
        }
        reloader
            .reload()
            .with_context(|| format!("links.file: cannot read {}", config.links.file.display()))?;
        readiness.set_links_loaded();

        let geo = if config.geo.city_db.is_some() || config.geo.asn_db.is_some() {
            Some(Arc::new(Geo::open(
                config.geo.city_db.clone(),
                config.geo.asn_db.clone(),
            )?))
        } else {
            None
        };
        let keys = secrets(config);
        let event_metrics = EventMetrics::new();
        let enricher = Enricher {
            policy: IpPolicy::new(config.privacy.ip, &keys[0]),
            geo: geo.clone(),
            devices: DeviceParser::new(),
            repeats: RepeatTracker::new(config.events.repeat_window_secs.saturating_mul(1000)),
        };
        let writer = SpoolWriter::open(
            SpoolConfig {
                dir: config.events.spool_dir.clone(),
                flush_interval: Duration::from_millis(config.events.flush_interval_ms),
                fsync_interval: Duration::from_millis(config.events.fsync_interval_ms),
                segment_max_bytes: config.events.segment_max_bytes,
                spool_max_bytes: config.events.spool_max_bytes,
            },
            enricher,
            config.node_name(),
            event_metrics.clone(),
        )
        .with_context(|| {
            format!(
                "events.spool_dir: cannot write to {}",
                config.events.spool_dir.display()
            )
        })?;
        let stats = writer.stats();
        let pipeline =
            EventPipeline::start(writer, config.events.queue_capacity, event_metrics.clone())
                .context("cannot start the spool writer thread")?;
        let shipper = match config.events.sink {
            SinkKind::Spool => None,
            SinkKind::Kafka => Some(
                ShipperHandle::start(shipper_config(config), stats, event_metrics)
                    .context("kafka: cannot start the shipper")?,
            ),
        };
        readiness.set_spool_ready();

        let fallback = config
            .links
            .fallback_url
            .as_deref()
            .map(HeaderValue::from_str)
            .transpose()
            .context("links.fallback_url: not a valid header value")?;
        let edge = Arc::new(Edge {
            links: store,
            attribution: Attribution::new(&config.attribution, &keys),
            events: pipeline.sink(),
            metrics: RequestMetrics::new(),
            fallback,
            click_param: config.attribution.click_param.clone(),
            trusted_proxies: config.server.trusted_proxies.clone(),
            bots: BotDetector::new(),
            gpc: config.privacy.gpc,
            max_uri_bytes: config.server.max_uri_bytes,
        });
        let replication = match config.events.sink {
            SinkKind::Spool => None,
            SinkKind::Kafka => {
                let rc = ReplicationConfig {
                    brokers: config.kafka.brokers.clone(),
                    topic: config.kafka.links_topic.clone(),
                    node: config.node_name(),
                    properties: config.kafka.properties.clone(),
                };
                let r = Replication::start(&rc, Arc::clone(&edge.links), topic_offsets)
                    .context("kafka: cannot follow the links topic")?;
                Some((r, rc))
            }
        };
        let changes = replication
            .as_ref()
            .map(|(r, _)| Arc::clone(r) as Arc<dyn crate::admin::links_api::LinkChanges>);
        let admin = Arc::new(Admin {
            links: crate::admin::links_api::LinksApi {
                store: Arc::clone(&edge.links),
                changes,
            },
            readiness,
            prometheus,
            token: config.admin.token.clone(),
            shipper: shipper.as_ref().map(|s| Arc::clone(&s.state)),
        });
        Ok(Node {
            edge,
            admin,
            pipeline,
            reloader,
            geo,
            shipper,
            replication,
            snapshot: config.links.snapshot_file.clone().map(|p| {
                (
                    p,
                    Duration::from_secs(config.links.snapshot_interval_secs.max(1)),
                )
            }),
            drain: Duration::from_millis(config.server.drain_timeout_ms),
            ship_deadline: Duration::from_millis(config.kafka.shutdown_timeout_ms),
            tls,
            limits: server::Limits::from_config(&config.server),
            admin_limits: server::Limits::admin(&config.server),
            public_threads: match config.server.worker_threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            },
        })
    }

    /// Writes the map (with the links-topic offsets it reflects) to `path`.
    fn snapshot_writer(
        &self,
        path: PathBuf,
    ) -> impl Fn() -> std::io::Result<usize> + Clone + Send + 'static {
        let store = Arc::clone(&self.edge.links);
        let replication = self.replication.as_ref().map(|(r, _)| Arc::clone(r));
        move || {
            // Offsets first: changes applied while the map is copied are
            // read again after a restart, which converges in topic order.
            let offsets = replication
                .as_ref()
                .map(|r| r.offsets())
                .unwrap_or_default();
            crate::links::snapshot::write(&path, &store, &offsets)
        }
    }

    pub fn reloader(&self) -> LinkReloader {
        self.reloader.clone()
    }

    /// The GeoIP databases, when configured.
    pub fn geo(&self) -> Option<Arc<Geo>> {
        self.geo.clone()
    }

    pub fn edge(&self) -> Arc<Edge> {
        Arc::clone(&self.edge)
    }

    /// The certificates of the HTTPS listener, when TLS is configured.
    pub fn certs(&self) -> Option<Arc<CertStore>> {
        self.tls.as_ref().map(|t| Arc::clone(&t.certs))
    }

    /// Serves until `shutdown` completes, then runs the shutdown sequence.
    /// Returns true when every step finished within its deadline.
    pub async fn serve(self, listeners: Listeners, shutdown: impl Future<Output = ()>) -> bool {
        if let Some((_, rc)) = &self.replication {
            let rc = rc.clone();
            tokio::spawn(async move { crate::links::replication::ensure_topic(&rc).await });
        }
        let final_snapshot = self
            .snapshot
            .as_ref()
            .map(|(p, _)| (p.clone(), self.snapshot_writer(p.clone())));
        let snapshot_task = self.snapshot.as_ref().map(|(path, every)| {
            let (path, every) = (path.clone(), *every);
            let store = Arc::clone(&self.edge.links);
            let write = self.snapshot_writer(path.clone());
            tokio::spawn(async move {
                let mut written = store.generation();
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let now = store.generation();
                    if now == written {
                        continue;
                    }
                    let w = write.clone();
                    match tokio::task::spawn_blocking(w).await {
                        Ok(Ok(n)) => {
                            written = now;
                            tracing::debug!(links = n, "links snapshot written");
                        }
                        _ => tracing::error!(file = %path.display(), "cannot write the links snapshot"),
                    }
                }
            })
        });
        let (public_stop, public_rx) = watch::channel(false);
        let tls_rx = public_rx.clone();
        let (admin_stop, admin_rx) = watch::channel(false);

        let edge = Arc::clone(&self.edge);
        // While TLS is on, the plain listener may only send clients to HTTPS.
        let to_https = match &self.tls {
            Some(t) if t.plain == PlainHttp::Redirect => {
                let bound = listeners.tls.as_ref().and_then(|l| l.local_addr().ok());
                let port = t.https_port.or(bound.map(|a| a.port())).unwrap_or(443);
                // 443 is left out of the URL.
                Some((port != 443).then_some(port))
            }
            _ => None,
        };
        // The public listener is served by one single-threaded runtime per
        // thread, each on its own socket of one SO_REUSEPORT group: a
        // connection lives on one thread, with no work stealing or
        // cross-thread wake-ups on the request path (10-30% more redirects
        // per CPU than one shared multi-threaded runtime on this 2-core
        // machine). With a thread per CPU, a connection is served on the CPU
        // that handles its packets; a thread far busier than the others
        // hands new connections over (server::Balancer).
        let (limits, drain) = (self.limits.clone(), self.drain);
        let public = serve_per_thread(self.public_threads, listeners.public, move |listener| {
            let edge = Arc::clone(&edge);
            server::serve(
                listener,
                "public",
                None,
                limits.clone(),
                move |peer| {
                    let edge = Arc::clone(&edge);
                    let conn = ConnInfo { peer, tls: false };
                    service_fn(move |req| {
                        let response = match to_https {
                            Some(port) => crate::http::https_redirect(&req, port),
                            None => edge.handle(&req, &conn),
                        };
                        std::future::ready(Ok::<_, Infallible>(response))
                    })
                },
                public_rx.clone(),
                drain,
            )
        });
        let secure = match (&self.tls, listeners.tls) {
            (Some(t), Some(listener)) => {
                let edge = Arc::clone(&self.edge);
                let hsts = t.hsts.clone();
                let task = tokio::spawn(server::serve(
                    listener,
                    "tls",
                    Some(t.accept.clone()),
                    self.limits.clone(),
                    move |peer| {
                        let edge = Arc::clone(&edge);
                        let hsts = hsts.clone();
                        let conn = ConnInfo { peer, tls: true };
                        service_fn(move |req| {
                            let mut response = edge.handle(&req, &conn);
                            if let Some(h) = &hsts {
                                response
                                    .headers_mut()
                                    .insert(http::header::STRICT_TRANSPORT_SECURITY, h.clone());
                            }
                            std::future::ready(Ok::<_, Infallible>(response))
                        })
                    },
                    tls_rx,
                    self.drain,
                ));
                Some(task)
            }
            _ => None,
        };
        let cert_watch = self.tls.as_ref().and_then(|t| {
            let every = t.watch_every?;
            let certs = Arc::clone(&t.certs);
            Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let c = Arc::clone(&certs);
                    let _ = tokio::task::spawn_blocking(move || {
                        if c.changed() {
                            tracing::info!("certificate files changed: reloading");
                            reload_certs(&c);
                        }
                    })
                    .await;
                }
            }))
        });
        let admin = Arc::clone(&self.admin);
        let admin_task = tokio::spawn(server::serve(
            listeners.admin,
            "admin",
            None,
            self.admin_limits.clone(),
            move |_peer| {
                let admin = Arc::clone(&admin);
                service_fn(move |req| {
                    let admin = Arc::clone(&admin);
                    async move { Ok::<_, Infallible>(admin.handle(req).await) }
                })
            },
            admin_rx,
            Duration::from_secs(1),
        ));

        shutdown.await;
        tracing::info!("shutting down: readiness off, no new connections");
        self.admin.readiness.set_draining();
        let mut clean = true;
        let _ = public_stop.send(true);
        let secure_drained = match secure {
            Some(task) => task.await.unwrap_or(false),
            None => true,
        };
        if let Some(task) = cert_watch {
            task.abort();
        }
        match public.await {
            Ok(true) if secure_drained => tracing::info!("connections drained"),
            _ => {
                clean = false;
                tracing::warn!(
                    deadline_ms = self.drain.as_millis() as u64,
                    "drain deadline passed with connections still open"
                );
            }
        }
        let pipeline = self.pipeline;
        let flushed = tokio::task::spawn_blocking(move || pipeline.close(SPOOL_CLOSE_DEADLINE))
            .await
            .unwrap_or(false);
        if flushed {
            tracing::info!("event hand-off closed, spool flushed and synced");
        } else {
            clean = false;
            tracing::error!(
                deadline_ms = SPOOL_CLOSE_DEADLINE.as_millis() as u64,
                "spool writer did not finish in time"
            );
        }
        if let Some(task) = snapshot_task {
            task.abort();
        }
        if let Some((replication, _)) = &self.replication {
            let r = Arc::clone(replication);
            let _ = tokio::task::spawn_blocking(move || r.stop()).await;
        }
        if let Some((path, writer)) = final_snapshot {
            match tokio::task::spawn_blocking(writer).await {
                Ok(Ok(n)) => tracing::info!(links = n, "links snapshot written"),
                _ => {
                    clean = false;
                    tracing::error!(file = %path.display(), "cannot write the links snapshot");
                }
            }
        }
        if let Some(shipper) = self.shipper {
            let deadline = self.ship_deadline;
            let finished = tokio::task::spawn_blocking(move || shipper.finish(deadline))
                .await
                .unwrap_or(false);
            if !finished {
                clean = false;
                tracing::error!("the kafka shipper did not stop in time");
            }
        }
        let _ = admin_stop.send(true);
        let _ = admin_task.await;
        clean
    }
}

/// Runs `serve` on `threads` threads, each with a single-threaded runtime
/// and its own listening socket: the first thread takes `listener`, the
/// others a twin in its `SO_REUSEPORT` group (see `http::per_core`). With
/// one thread per allowed CPU, each thread is pinned to its CPU and a
/// connection goes to the thread of the CPU that handled its handshake;
/// otherwise the kernel hashes connections over the sockets. Either way a
/// thread with far more connections than another passes new ones on
/// (`server::Balancer`). A listener
/// bound without `SO_REUSEPORT` (as tests pass) is shared by the threads
/// instead. The returned task ends when every thread has, with true when all
/// of them drained cleanly. A thread that cannot be started is logged and
/// left out; with none, `serve` runs on the caller's runtime.
fn serve_per_thread<F, Fut>(
    threads: usize,
    listener: TcpListener,
    serve: F,
) -> tokio::task::JoinHandle<bool>
where
    F: Fn(server::Source) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    use crate::http::per_core;
    let listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot hand the public listener to its threads");
            return tokio::spawn(std::future::ready(false));
        }
    };
    let threads = threads.max(1);
    // Each thread's runtime and socket, made before any thread starts so
    // that socket `i` is the `i`-th of the group.
    let mut shared = false;
    let mut parts = Vec::with_capacity(threads);
    for i in 0..threads {
        let made = (|| -> std::io::Result<(tokio::runtime::Runtime, TcpListener)> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let own = {
                let _in_runtime = runtime.enter();
                match i {
                    0 => TcpListener::from_std(listener.try_clone()?)?,
                    _ => per_core::twin(&listener).or_else(|_| {
                        shared = true;
                        TcpListener::from_std(listener.try_clone()?)
                    })?,
                }
            };
            Ok((runtime, own))
        })();
        match made {
            Ok(part) => parts.push(part),
            Err(e) => {
                tracing::error!(error = %e, thread = i, "cannot start a public listener thread")
            }
        }
    }
    let cpus = per_core::allowed_cpus();
    let pinned = !shared
        && per_core::can_steer(parts.len(), &cpus)
        && match per_core::steer_by_cpu(&parts[0].1, parts.len() as u32) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot steer connections by CPU; the kernel hashes them over the threads");
                false
            }
        };
    tracing::info!(
        threads = parts.len(),
        spread = if shared {
            "one shared socket"
        } else if pinned {
            "one socket per thread, each thread pinned to its CPU, connections steered to the CPU that handled them"
        } else {
            "one socket per thread, connections hashed over them"
        },
        "public listener"
    );
    let mut handles = Vec::with_capacity(parts.len());
    let balances = server::Balancer::for_threads(parts.len());
    for (i, ((runtime, own), balance)) in parts.into_iter().zip(balances).enumerate() {
        let task = serve(server::Source::balanced(own, balance));
        let spawned = std::thread::Builder::new()
            .name(format!("refedge-public-{i}"))
            .spawn(move || {
                if pinned && let Err(e) = per_core::pin_current_thread(i) {
                    tracing::warn!(error = %e, thread = i, "cannot pin a public thread to its CPU");
                }
                runtime.block_on(task)
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                tracing::error!(error = %e, thread = i, "cannot start a public listener thread")
            }
        }
    }
    if handles.is_empty() {
        return match TcpListener::from_std(listener) {
            Ok(l) => tokio::spawn(serve(l.into())),
            Err(e) => {
                tracing::error!(error = %e, "cannot serve the public listener");
                tokio::spawn(std::future::ready(false))
            }
        };
    }
    tokio::task::spawn_blocking(move || {
        // Join every thread before judging.
        let drained: Vec<bool> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect();
        drained.into_iter().all(|clean| clean)
    })
}

/// SIGTERM or SIGINT.
pub async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stopping on ctrl-c only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs a node on its configured addresses until SIGTERM/SIGINT; SIGHUP
/// reloads the links file.
pub fn run(config: Config) -> anyhow::Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all().thread_name("refedge-worker");
    if config.server.worker_threads > 0 {
        runtime.worker_threads(config.server.worker_threads);
    }
    let runtime = runtime.build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let node = Node::prepare(&config)?;
        let listeners = Listeners::bind(&config).await?;
        tracing::info!(addr = %listeners.public.local_addr()?, "public listener bound");
        tracing::info!(addr = %listeners.admin.local_addr()?, "admin listener bound");
        if let Some(tls) = &listeners.tls {
            tracing::info!(addr = %tls.local_addr()?, "HTTPS listener bound");
        }
        let reloader = node.reloader();
        let geo = node.geo();
        let certs = node.certs();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot install the SIGHUP handler")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP received: reloading links and certificates");
                let r = reloader.clone();
                let _ = tokio::task::spawn_blocking(move || r.reload()).await;
                if let Some(certs) = &certs {
                    let c = Arc::clone(certs);
                    let _ = tokio::task::spawn_blocking(move || reload_certs(&c)).await;
                }
                if let Some(geo) = &geo {
                    match geo.reload() {
                        Ok(()) => tracing::info!("GeoIP databases reloaded"),
                        Err(e) => tracing::error!("{e}; keeping the databases already loaded"),
                    }
                }
            }
        });
        let clean = node.serve(listeners, termination()).await;
        tracing::info!(clean, "stopped");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_removes_what_left_the_file_and_keeps_api_links() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("links.jsonl");
        let line = |code: &str| {
            format!("{{\"code\":\"{code}\",\"target\":\"https://a.example/{code}\"}}\n")
        };
        std::fs::write(&file, format!("{}{}", line("one"), line("two"))).unwrap();
        let store = Arc::new(LinkStore::new());
        let reloader = LinkReloader::new(Arc::clone(&store), file.clone());
        assert_eq!(reloader.reload().unwrap(), (2, 0));
        store.upsert(crate::links::Link::from_json(&line("api")).unwrap());
        std::fs::write(&file, format!("{}{}", line("two"), line("three"))).unwrap();
        reloader.reload().unwrap();
        assert!(store.get(None, "one").is_none(), "left the file");
        assert!(store.get(None, "two").is_some());
        assert!(store.get(None, "three").is_some());
        assert!(store.get(None, "api").is_some(), "created through the API");
        std::fs::remove_file(&file).unwrap();
        assert!(reloader.reload().is_err());
        assert_eq!(store.len(), 3, "an unreadable file keeps the links");
    }
}
