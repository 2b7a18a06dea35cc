//! The composition root: one edge node built from its config, part by part
//! (each by its own `from_config`), the start-up steps that must succeed
//! before any port is bound (links loaded, spool open: the readiness latch),
//! the listeners served, SIGHUP reloads, and the hand-over to the shutdown
//! sequence (`shutdown`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::admin::{Admin, domains_api::DomainsApi, links_api::LinksApi};
use crate::config::{Config, SinkKind};
use crate::domains::{DomainEditor, DomainStore, DomainsFile};
use crate::events::{EventPipeline, ShipperConfig, ShipperHandle};
use crate::geo::Geo;
use crate::http::{Edge, Intake, Listeners, per_core, server, service};
use crate::kafka::replicate::Replication;
use crate::links::{LinkEditor, LinkReloader, LinkStore, Publish, snapshot};
use crate::metrics::{self, EventMetrics};
use crate::readiness::Readiness;
use crate::shutdown::{self, Running};
use crate::tls::{CertStore, Https};

/// A prepared node: links loaded, spool open, nothing bound yet.
#[derive(Debug)]
pub struct Node {
    edge: Arc<Edge>,
    intake: Arc<Intake>,
    admin: Arc<Admin>,
    pipeline: EventPipeline,
    reloader: LinkReloader,
    domains_file: DomainsFile,
    geo: Option<Arc<Geo>>,
    shipper: Option<ShipperHandle>,
    /// The links topic's and the domains topic's, with Kafka.
    replications: Vec<Arc<Replication>>,
    snapshot: Option<snapshot::Keeper>,
    https: Option<Https>,
    /// With `tls.acme`: the certificates obtained for every brand host.
    acme: Option<Arc<crate::acme::Acme>>,
    /// Shared by the public and HTTPS listeners.
    limits: server::Limits,
    admin_limits: server::Limits,
    drain: Duration,
    ship_deadline: Duration,
    /// Threads serving the public listener, each with its own runtime.
    public_threads: usize,
    pin_public_threads: bool,
}

impl Node {
    /// Loads the links and opens the spool. Fails (before any port is bound)
    /// if the links file cannot be read or the spool is not writable.
    pub fn prepare(config: &Config) -> anyhow::Result<Node> {
        if let Some(problem) = crate::events::ship::preflight(&config.events, &config.kafka)
            .into_iter()
            .next()
        {
            anyhow::bail!(problem);
        }
        let prometheus = metrics::install();
        let https = Https::from_config(&config.tls)?;
        let readiness = Arc::new(Readiness::default());

        // Links: the snapshot when there is one, then the links file over it
        // (a file edited while the node was down wins).
        let store = Arc::new(LinkStore::new());
        let reloader = LinkReloader::new(Arc::clone(&store), config.links.file.clone());
        let mut topic_offsets = Default::default();
        if let Some(path) = &config.links.snapshot_file {
            let (offsets, has_file_links) = snapshot::restore(path, &store);
            if has_file_links {
                reloader.set_epoch(snapshot::FILE_EPOCH);
            }
            topic_offsets = offsets;
        }
        reloader
            .reload()
            .with_context(|| format!("links.file: cannot read {}", config.links.file.display()))?;
        let domains = Arc::new(DomainStore::new());
        let domains_file = DomainsFile {
            store: Arc::clone(&domains),
            path: config.domains.file.clone(),
        };
        domains_file.reload().with_context(|| {
            format!(
                "domains.file: cannot read {}",
                config.domains.file.display()
            )
        })?;
        readiness.set_links_loaded();

        // Events: spool writer, then (with Kafka) the shipper behind it.
        let geo = Geo::from_config(&config.geo)?.map(Arc::new);
        let keys = crate::attribution::signing_keys(&config.attribution);
        let event_metrics = EventMetrics::new();
        let (pipeline, spool_stats) = EventPipeline::from_config(
            &config.events,
            &config.privacy,
            &config.risk,
            config.node_name(),
            &keys[0],
            geo.clone(),
            event_metrics.clone(),
        )
        .with_context(|| {
            format!(
                "events.spool_dir: cannot write to {}",
                config.events.spool_dir.display()
            )
        })?;
        let kafka = config.events.sink == SinkKind::Kafka;
        if kafka {
            ensure_topics(&config.kafka, config.tls.acme.directory_url.is_some())?;
        }
        let shipper = kafka
            .then(|| {
                ShipperHandle::start(
                    ShipperConfig::new(&config.events, &config.kafka),
                    Arc::clone(&spool_stats),
                    event_metrics,
                )
            })
            .transpose()
            .context("kafka: cannot start the shipper")?;
        readiness.set_spool_ready();

        let edge = Arc::new(
            Edge::new(
                &config.server,
                &config.links,
                &config.attribution,
                &config.privacy,
                Arc::clone(&store),
                &keys,
                pipeline.sink(),
            )?
            .with_geo(geo.clone())
            .with_domains(Arc::clone(&domains)),
        );
        let intake = Arc::new(Intake::new(
            &config.conversions,
            &config.attribution,
            &config.server,
            &config.privacy,
            config.node_name(),
            &keys,
            pipeline.sink(),
        ));
        let replication = kafka
            .then(|| {
                crate::links::replication::follow(
                    &config.kafka,
                    config.node_name(),
                    Arc::clone(&store),
                    topic_offsets,
                )
            })
            .transpose()
            .context("kafka: cannot follow the links topic")?;
        let domains_replication = kafka
            .then(|| {
                crate::domains::follow(&config.kafka, config.node_name(), Arc::clone(&domains))
            })
            .transpose()
            .context("kafka: cannot follow the domains topic")?;
        let publish = replication
            .as_ref()
            .map(|r| Arc::clone(r) as Arc<dyn Publish>);
        let snapshot = snapshot::Keeper::from_config(
            &config.links,
            Arc::clone(&store),
            replication.as_ref().map(Arc::clone),
        );
        let acme = crate::acme::Acme::from_config(
            config,
            https.as_ref().map(|h| Arc::clone(&h.certs)),
            Arc::clone(&store),
            Arc::clone(&domains),
        )
        .context("kafka: cannot follow the certs topic")?;
        let admin = Arc::new(Admin {
            links: LinksApi {
                editor: LinkEditor::new(store, publish),
                channel_param: config.attribution.channel_param.clone(),
            },
            domains: DomainsApi {
                editor: DomainEditor::new(domains, domains_replication.clone()),
            },
            readiness,
            prometheus,
            keys: crate::admin::keys::Keys::from_config(&config.admin),
            shipper: shipper.as_ref().map(|s| Arc::clone(&s.state)),
            spool: spool_stats,
        });
        Ok(Node {
            edge,
            intake,
            admin,
            pipeline,
            reloader,
            domains_file,
            geo,
            shipper,
            replications: replication
                .into_iter()
                .chain(domains_replication)
                .chain(acme.as_ref().and_then(|a| a.replication()))
                .collect(),
            snapshot,
            https,
            acme,
            limits: server::Limits::from_config(&config.server),
            admin_limits: server::Limits::admin(&config.server),
            drain: Duration::from_millis(config.server.drain_timeout_ms),
            ship_deadline: Duration::from_millis(config.kafka.shutdown_timeout_ms),
            public_threads: match config.server.worker_threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            },
            pin_public_threads: config.server.pin_threads,
        })
    }

    pub fn reloader(&self) -> LinkReloader {
        self.reloader.clone()
    }

    /// `domains.file`, reloaded on SIGHUP.
    pub fn domains_file(&self) -> DomainsFile {
        self.domains_file.clone()
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
        self.https.as_ref().map(|t| Arc::clone(&t.certs))
    }

    /// Serves until `shutdown` completes, then runs the shutdown sequence.
    /// Returns true when every step finished within its deadline.
    pub async fn serve(self, listeners: Listeners, shutdown: impl Future<Output = ()>) -> bool {
        let mut tasks: Vec<_> = self.snapshot.iter().map(snapshot::Keeper::spawn).collect();
        tasks.extend(self.https.as_ref().and_then(Https::watch));
        tasks.extend(self.acme.as_ref().map(crate::acme::Acme::spawn));
        let (stop_listeners, listening) = watch::channel(false);
        let (stop_admin, admin_listening) = watch::channel(false);

        // While TLS is on, the plain listener may only send clients to HTTPS.
        let https_port = listeners.tls.as_ref().and_then(|l| l.local_addr().ok());
        let to_https = self
            .https
            .as_ref()
            .and_then(|t| t.redirect_port(https_port.map(|a| a.port())));
        let per_thread = per_core::PerThread {
            limits: self.limits.clone(),
            stop: listening,
            drain: self.drain,
        };
        let clicks = service::plain(
            Arc::clone(&self.edge),
            Arc::clone(&self.intake),
            to_https,
            self.acme.as_ref().map(|a| a.challenges()),
        );
        let mut groups = vec![per_thread.group("public", listeners.public, true, None, clicks)];
        // HTTPS runs on the same threads, one socket each, like plain HTTP,
        // but hashed over them: steered by CPU, its new connections cost more
        // than hashed ones (the A/B of commit d358d51, `loadtest/tls.sh` with
        // BEFORE=…).
        if let (Some(t), Some(listener)) = (&self.https, listeners.tls) {
            let clicks = service::https(
                Arc::clone(&self.edge),
                Arc::clone(&self.intake),
                t.hsts.clone(),
            );
            groups.push(per_thread.group("tls", listener, false, Some(t.accept.clone()), clicks));
        }
        let public =
            per_core::serve_per_thread(self.public_threads, self.pin_public_threads, groups);
        let admin = tokio::spawn(server::serve(
            listeners.admin,
            "admin",
            None,
            self.admin_limits.clone(),
            crate::admin::services(Arc::clone(&self.admin)),
            admin_listening,
            shutdown::ADMIN_DRAIN,
        ));

        shutdown.await;
        Running {
            readiness: Arc::clone(&self.admin.readiness),
            stop_listeners,
            public,
            drain: self.drain,
            tasks,
            pipeline: self.pipeline,
            replications: self.replications,
            snapshot: self.snapshot,
            shipper: self.shipper,
            ship_deadline: self.ship_deadline,
            stop_admin,
            admin,
        }
        .stop()
        .await
    }
}

/// Creates the edge's topics that are missing; an error (naming the topic)
/// when the broker refuses one or the conversions topic is not
/// co-partitioned with the clicks topic. A broker that does not answer is
/// not an error: the events wait in the spool, and the topics are made
/// once it answers.
fn ensure_topics(kafka: &crate::config::KafkaConfig, acme: bool) -> anyhow::Result<()> {
    use crate::kafka::topics::{self, TopicError};
    match topics::ensure(kafka, &topics::of_edge(kafka, acme), Duration::from_secs(3)) {
        Ok(()) => Ok(()),
        Err(e @ TopicError::Unreachable(_)) => {
            tracing::warn!("{e}");
            topics::ensure_in_background(
                kafka.clone(),
                topics::of_edge(kafka, acme),
                Duration::from_secs(30),
            );
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!("kafka: {e}")),
    }
}
