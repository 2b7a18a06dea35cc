//! Certificates from an ACME CA (README: "Certificates from Let's
//! Encrypt"): which hosts get one (every host of a domain entry whose `acme`
//! is not false and every host a link names; never another name a handshake
//! brings), when (`renewal`: no certificate yet, a third of its lifetime
//! left, or the CA's renewal information), and how often (one order per host at a time, backoff after a failure, the
//! CA's `Retry-After`, at most `tls.acme.max_orders_per_hour` new orders).
//! The account (`account`), one order (`order`), the answers a CA checks
//! (`challenges`) and, with Kafka, the nodes' shared claims, answers and
//! sealed certificates (`cluster`) are rooms of their own; the certificates
//! land in `tls.cert_dir`, where `tls::CertStore` serves them.

mod account;
mod challenges;
mod cluster;
mod order;
mod renewal;

pub use challenges::{Challenges, HTTP01_PREFIX};
pub use cluster::Cluster;
pub use order::Outcome;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::sign::CertifiedKey;
use tokio::sync::{Notify, mpsc};

use crate::config::{AcmeConfig, Config, SinkKind};
use crate::domains::DomainStore;
use crate::links::LinkStore;
use crate::metrics;
use crate::tls::{Acquire, CertStore};
use renewal::Renewals;

/// How often the wanted hosts are looked over when nothing wakes the
/// scheduler sooner (a new host, a handshake for a host without a
/// certificate, an order ending).
const TICK: Duration = Duration::from_secs(1);
/// The first wait after a failed order; it doubles with each failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
/// The longest wait between two tries for one host.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The longest `Retry-After` obeyed.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The ACME client of one node.
pub struct Acme {
    config: AcmeConfig,
    certs: Arc<CertStore>,
    challenges: Arc<Challenges>,
    links: Arc<LinkStore>,
    domains: Arc<DomainStore>,
    /// With Kafka: one node orders each host, every node serves it.
    cluster: Option<Arc<Cluster>>,
    /// Wakes the scheduler.
    kick: Notify,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("directory_url", &self.config.directory_url)
            .finish_non_exhaustive()
    }
}

impl Acquire for Acme {
    fn challenge(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.challenges.alpn_certificate(host)
    }

    fn missing(&self, host: &str) {
        if self.wants(host) {
            self.kick.notify_one();
        }
    }
}

impl Acme {
    /// The client of `tls.acme`, when it names a CA and TLS is on (`certs`),
    /// serving its TLS-ALPN-01 answers through `certs`; with Kafka, sharing
    /// orders with the other nodes.
    pub fn from_config(
        config: &Config,
        certs: Option<Arc<CertStore>>,
        links: Arc<LinkStore>,
        domains: Arc<DomainStore>,
    ) -> Result<Option<Arc<Acme>>, rdkafka::error::KafkaError> {
        let (Some(_), Some(certs)) = (&config.tls.acme.directory_url, certs) else {
            return Ok(None);
        };
        let acme = &config.tls.acme;
        let challenges: Arc<Challenges> = Arc::default();
        let seal_key = acme
            .seal_key
            .as_deref()
            .and_then(crate::config::acme::seal_key);
        let cluster = match (config.events.sink, seal_key) {
            (SinkKind::Kafka, Some(key)) => Some(Cluster::start(
                &config.kafka,
                &config.node_name(),
                &key,
                Arc::clone(&certs),
                Arc::clone(&challenges),
            )?),
            _ => None,
        };
        let acme = Arc::new(Acme {
            config: acme.clone(),
            certs: Arc::clone(&certs),
            challenges,
            links,
            domains,
            cluster,
            kick: Notify::new(),
        });
        certs.set_acquire(Arc::clone(&acme) as Arc<dyn Acquire>);
        Ok(Some(acme))
    }

    /// With Kafka, the follower of `kafka.certs_topic` (stopped at shutdown).
    pub fn replication(&self) -> Option<Arc<crate::kafka::replicate::Replication>> {
        self.cluster.as_ref().map(|c| c.replication())
    }

    /// The HTTP-01 answers, for the plain listener.
    pub fn challenges(&self) -> Arc<Challenges> {
        Arc::clone(&self.challenges)
    }

    /// Whether the edge obtains `host`'s certificate: a domain entry says
    /// so (its `acme` is not false), or, without one, a link names it.
    pub fn wants(&self, host: &str) -> bool {
        let host = crate::hostname::without_root_dot(host).to_ascii_lowercase();
        match self.domains.get(&host) {
            Some(entry) => entry.domain.acme != Some(false),
            None => self.links.names_host(&host),
        }
    }

    /// Every host the edge obtains a certificate for.
    fn wanted(&self) -> BTreeSet<String> {
        let mut hosts: BTreeSet<String> = self.links.hosts().into_iter().collect();
        hosts.extend(
            self.domains
                .list()
                .iter()
                .map(|e| e.domain.host().to_owned()),
        );
        hosts.retain(|h| self.wants(h));
        hosts
    }

    /// Runs the scheduler until the process ends.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let (done, finished) = mpsc::unbounded_channel();
        let scheduler = Scheduler {
            acme: Arc::clone(self),
            ca: None,
            ca_next_try: Instant::now(),
            ca_failures: 0,
            hosts: HashMap::new(),
            started: VecDeque::new(),
            paused_until: None,
            renewals: Renewals::default(),
            done,
        };
        tokio::spawn(scheduler.run(finished))
    }
}

/// What the scheduler knows of one host.
#[derive(Debug)]
struct HostState {
    in_flight: bool,
    failures: u32,
    next_try: Instant,
    /// Held back by the hourly bound (counted once per hold).
    deferred: bool,
}

struct Scheduler {
    acme: Arc<Acme>,
    ca: Option<Arc<account::Ca>>,
    ca_next_try: Instant,
    ca_failures: u32,
    hosts: HashMap<String, HostState>,
    /// When each order of the last hour was placed.
    started: VecDeque<Instant>,
    /// The CA's `Retry-After`: no order before it.
    paused_until: Option<Instant>,
    renewals: Renewals,
    done: mpsc::UnboundedSender<(String, Outcome)>,
}

impl Scheduler {
    async fn run(mut self, mut finished: mpsc::UnboundedReceiver<(String, Outcome)>) {
        loop {
            tokio::select! {
                () = self.acme.kick.notified() => {}
                () = tokio::time::sleep(TICK) => {}
                Some((host, outcome)) = finished.recv() => self.finished(host, outcome).await,
            }
            self.pass().await;
        }
    }

    /// Orders what is due and allowed.
    async fn pass(&mut self) {
        let now = Instant::now();
        if self.paused_until.is_some_and(|until| now < until) {
            return;
        }
        let wanted = self.acme.wanted();
        let clock = SystemTime::now();
        let mut due = Vec::new();
        let mut ask = None;
        for host in wanted {
            let served = self.acme.certs.served(&host);
            let leaf = served.as_ref().map(|(leaf, nb, na)| (leaf, *nb, *na));
            if self.renewals.due(&host, leaf, clock) {
                let free = self
                    .hosts
                    .get(&host)
                    .is_none_or(|s| !s.in_flight && s.next_try <= now);
                if free {
                    due.push(host);
                }
            } else if let Some((leaf, ..)) = served
                && ask.is_none()
                && self.renewals.should_ask(&host, &leaf, now)
            {
                ask = Some((host, leaf));
            }
        }
        // One question about renewal information a pass keeps the loop quick.
        if let Some((host, leaf)) = ask
            && let Some(ca) = self.account().await
        {
            self.renewals.ask(&ca.account, &host, &leaf).await;
        }
        if due.is_empty() {
            return;
        }
        if self.acme.cluster.as_ref().is_some_and(|c| !c.caught_up()) {
            // Another node may have ordered these already.
            return;
        }
        let Some(ca) = self.account().await else {
            return;
        };
        while self
            .started
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(3600))
        {
            self.started.pop_front();
        }
        let bound = self.acme.config.max_orders_per_hour as usize;
        for host in due {
            let state = self.hosts.entry(host.clone()).or_insert(HostState {
                in_flight: false,
                failures: 0,
                next_try: now,
                deferred: false,
            });
            if self.started.len() >= bound {
                if !state.deferred {
                    state.deferred = true;
                    metrics::acme_orders("deferred").increment(1);
                    tracing::warn!(
                        host,
                        bound,
                        "ACME order held back: tls.acme.max_orders_per_hour reached"
                    );
                }
                continue;
            }
            if let Some(cluster) = &self.acme.cluster {
                match cluster.holder(&host) {
                    // Another node orders it; its certificate will come.
                    Some(false) => continue,
                    // Ours: renew the claim for this try.
                    Some(true) => cluster.claim(&host),
                    // Claim it; the next pass tells whether this node won.
                    None => {
                        cluster.claim(&host);
                        continue;
                    }
                }
            }
            state.in_flight = true;
            state.deferred = false;
            self.started.push_back(now);
            tracing::info!(host, "ACME order placed");
            let (ca, acme, done) = (Arc::clone(&ca), Arc::clone(&self.acme), self.done.clone());
            let replaces = self.renewals.replaces(&host);
            tokio::spawn(async move {
                let at = order::Answering {
                    challenges: &acme.challenges,
                    cluster: acme.cluster.as_deref(),
                    certs: &acme.certs,
                };
                let outcome =
                    order::run(&ca.account, &host, acme.config.challenge, replaces, at).await;
                let _ = done.send((host, outcome));
            });
        }
    }

    /// The account, opened (or created) on first need; a CA that cannot be
    /// reached is tried again with backoff, and counted.
    async fn account(&mut self) -> Option<Arc<account::Ca>> {
        if let Some(ca) = &self.ca {
            return Some(Arc::clone(ca));
        }
        if Instant::now() < self.ca_next_try {
            return None;
        }
        match account::open(&self.acme.config, self.acme.certs.dir()).await {
            Ok(ca) => {
                self.ca_failures = 0;
                let ca = Arc::new(ca);
                self.ca = Some(Arc::clone(&ca));
                Some(ca)
            }
            Err(e) => {
                let outcome = Outcome::of_error(e);
                metrics::acme_orders(outcome.label()).increment(1);
                self.ca_failures += 1;
                let wait = backoff(self.ca_failures);
                self.ca_next_try = Instant::now() + wait;
                tracing::error!(
                    result = outcome.label(),
                    problem = outcome.detail().unwrap_or(""),
                    retry_in_s = wait.as_secs(),
                    "ACME: cannot open the account at the CA"
                );
                None
            }
        }
    }

    async fn finished(&mut self, host: String, outcome: Outcome) {
        metrics::acme_orders(outcome.label()).increment(1);
        let mut outcome = outcome;
        if let Outcome::Issued = outcome {
            let certs = Arc::clone(&self.acme.certs);
            let _ = tokio::task::spawn_blocking(move || crate::tls::reload_logged(&certs)).await;
            match self.acme.certs.served(&host) {
                Some(_) => tracing::info!(host, "ACME certificate issued and served"),
                None => {
                    outcome = Outcome::Failed("the issued certificate did not load".into());
                }
            }
        }
        let Some(state) = self.hosts.get_mut(&host) else {
            return;
        };
        state.in_flight = false;
        match &outcome {
            Outcome::Issued => state.failures = 0,
            Outcome::RateLimited(problem) => {
                let told = self.ca.as_ref().and_then(|ca| {
                    ca.retry_after
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take()
                });
                let wait = told
                    .and_then(|at| at.duration_since(SystemTime::now()).ok())
                    .map_or_else(|| backoff(state.failures + 1), |d| d.min(MAX_RETRY_AFTER));
                state.failures += 1;
                self.paused_until = Some(Instant::now() + wait);
                tracing::warn!(
                    host,
                    problem,
                    retry_in_s = wait.as_secs(),
                    "ACME: the CA is rate limiting; no order until it allows"
                );
            }
            other => {
                state.failures += 1;
                let wait = backoff(state.failures);
                state.next_try = Instant::now() + wait;
                tracing::error!(
                    host,
                    result = other.label(),
                    problem = other.detail().unwrap_or(""),
                    retry_in_s = wait.as_secs(),
                    "ACME order failed"
                );
            }
        }
    }
}

/// The wait after `failures` failures in a row: doubling from
/// `FIRST_BACKOFF` up to `MAX_BACKOFF`, with a tenth of jitter so that
/// nodes do not retry in step.
fn backoff(failures: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let wait = doubled.min(MAX_BACKOFF);
    let jitter = rand::random_range(0..=wait.as_millis() as u64 / 10);
    wait + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let first = backoff(1);
        assert!(first >= FIRST_BACKOFF && first <= FIRST_BACKOFF * 11 / 10);
        let third = backoff(3);
        assert!(third >= FIRST_BACKOFF * 4 && third <= FIRST_BACKOFF * 44 / 10);
        let late = backoff(40);
        assert!(late >= MAX_BACKOFF && late <= MAX_BACKOFF * 11 / 10);
    }
}
