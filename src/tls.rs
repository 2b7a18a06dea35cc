//! TLS termination for many brand domains: a certificate per domain from the
//! `NAME.crt` + `NAME.key` pairs in `tls.cert_dir`, chosen by SNI from each
//! certificate's subjectAltName DNS names (wildcards included); the rustls
//! server configuration (TLS 1.2 and 1.3, ALPN h2 and http/1.1, resumption by
//! session cache and tickets, no 0-RTT); reloads that swap certificates for new
//! connections while keeping a pair's previous certificate when its new files
//! are bad; and the classification of handshake failures for metrics.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use http::HeaderValue;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{PlainHttp, TlsConfig};
use crate::metrics;

/// Resumable TLS sessions kept in memory (TLS 1.2 session ids; TLS 1.3 and
/// TLS 1.2 tickets are stateless and need no room here).
const SESSION_CACHE_ENTRIES: usize = 16_384;

/// Why the certificate directory as a whole cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.cert_dir {dir}: cannot list the directory: {source}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("tls.cert_dir {dir}: no usable certificate pair (NAME.crt + NAME.key){details}")]
    Empty { dir: PathBuf, details: String },
    #[error("tls.default_cert: no usable pair {name:?} in {dir}")]
    Default { name: String, dir: PathBuf },
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A problem with one certificate pair, naming its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairError {
    pub name: String,
    pub message: String,
}

impl fmt::Display for PairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What identifies a file's version without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Stamp {
    inode: u64,
    len: u64,
    modified_ns: i128,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp {
            inode: m.ino(),
            len: m.len(),
            modified_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

/// The files of one pair as found in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    crt: PathBuf,
    key: PathBuf,
    stamps: (Option<Stamp>, Option<Stamp>),
}

/// One loaded pair.
#[derive(Debug)]
struct Pair {
    key: Arc<CertifiedKey>,
    /// Lower-case DNS names from the subjectAltName, `*.` wildcards kept.
    names: Vec<String>,
    not_after: i64,
    stamps: (Option<Stamp>, Option<Stamp>),
}

/// The certificates served at one moment; replaced whole on reload.
#[derive(Debug, Default)]
pub struct CertSet {
    pairs: BTreeMap<String, Arc<Pair>>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.brand.example` stored under `brand.example`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    /// The directory listing this set was built from.
    listing: BTreeMap<String, Found>,
}

impl CertSet {
    /// The certificate for an SNI name: an exact name first, then a wildcard
    /// covering exactly one more label, then the default (also for no SNI).
    fn lookup(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = crate::hostname::without_root_dot(name).to_ascii_lowercase();
            if let Some(key) = self.exact.get(&name) {
                return Some(key);
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(key) = self.wildcard.get(parent) {
                    return Some(key);
                }
            }
        }
        self.default.as_ref()
    }

    /// Pair names with the DNS names each serves.
    pub fn served(&self) -> Vec<(String, Vec<String>)> {
        self.pairs
            .iter()
            .map(|(n, p)| (n.clone(), p.names.clone()))
            .collect()
    }
}

/// The outcome of a (re)load of the directory.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Pairs served now.
    pub served: usize,
    /// Pairs whose files changed and were loaded.
    pub loaded: Vec<String>,
    /// Pairs refused; a pair that was served before keeps its previous
    /// certificate.
    pub errors: Vec<PairError>,
}

/// The certificate resolver of the HTTPS listener. Cheap to share.
#[derive(Debug)]
pub struct CertStore {
    dir: PathBuf,
    default_name: Option<String>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertSet>>,
    /// One reload at a time (SIGHUP and the directory watch may coincide).
    reloading: Mutex<()>,
}

impl CertStore {
    /// Loads the directory. Pairs that cannot be used are reported and left
    /// out; it is an error only when no pair is usable or the configured
    /// default pair is not.
    pub fn open(
        dir: &Path,
        default_name: Option<&str>,
    ) -> Result<(Arc<CertStore>, LoadReport), TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (set, report) = build(dir, None, default_name, &provider, now_secs())?;
        if set.pairs.is_empty() {
            let details: String = report.errors.iter().map(|e| format!("; {e}")).collect();
            return Err(TlsError::Empty {
                dir: dir.to_owned(),
                details,
            });
        }
        publish_metrics(&set, None);
        let store = Arc::new(CertStore {
            dir: dir.to_owned(),
            default_name: default_name.map(str::to_owned),
            provider,
            current: RwLock::new(Arc::new(set)),
            reloading: Mutex::new(()),
        });
        Ok((store, report))
    }

    /// The set served now.
    pub fn current(&self) -> Arc<CertSet> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// True when a file of the directory was added, removed or changed since
    /// the served set was built.
    pub fn changed(&self) -> bool {
        match listing(&self.dir) {
            Ok(now) => now != self.current().listing,
            Err(_) => false,
        }
    }

    /// Reloads changed pairs; new connections get the new certificates, open
    /// connections keep theirs. A pair whose new files are bad keeps serving
    /// its previous certificate.
    pub fn reload(&self) -> Result<LoadReport, TlsError> {
        let _one = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let before = self.current();
        let result = build(
            &self.dir,
            Some(&before),
            self.default_name.as_deref(),
            &self.provider,
            now_secs(),
        );
        let (set, report) = match result {
            Ok(ok) if !ok.0.pairs.is_empty() => ok,
            Ok((_, report)) => {
                metrics::tls_reloads(false).increment(1);
                let details: String = report.errors.iter().map(|e| format!("; {e}")).collect();
                return Err(TlsError::Empty {
                    dir: self.dir.clone(),
                    details,
                });
            }
            Err(e) => {
                metrics::tls_reloads(false).increment(1);
                return Err(e);
            }
        };
        metrics::tls_reloads(report.errors.is_empty()).increment(1);
        publish_metrics(&set, Some(&before));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        Ok(report)
    }

    /// The rustls configuration of the HTTPS listener, resolving through
    /// this store.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // Our order (AES-GCM, then ChaCha20; every suite AEAD with forward
        // secrecy), as nginx's `ssl_prefer_server_ciphers`.
        config.ignore_client_order = true;
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        // A replayed 0-RTT request would be a second click: never accept early data.
        config.max_early_data_size = 0;
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.current.read().unwrap_or_else(|e| e.into_inner());
        set.lookup(hello.server_name()).cloned()
    }
}

/// The HTTPS side of a node, as configured (`tls.*`).
#[derive(Debug)]
pub struct Https {
    pub certs: Arc<CertStore>,
    pub accept: TlsAccept,
    watch_every: Option<Duration>,
    /// `Strict-Transport-Security`, when `tls.hsts_max_age_secs` > 0.
    pub hsts: Option<HeaderValue>,
    pub plain: PlainHttp,
    /// `tls.https_port`: the port plain requests are sent to; None = the
    /// bound HTTPS listener's.
    pub https_port: Option<u16>,
}

impl Https {
    /// Loads the certificates; `None` when TLS is not configured.
    pub fn from_config(config: &TlsConfig) -> Result<Option<Https>, TlsError> {
        let (Some(_), Some(dir)) = (config.listen, &config.cert_dir) else {
            return Ok(None);
        };
        let (certs, report) = CertStore::open(dir, config.default_cert.as_deref())?;
        log_report(&report);
        for (pair, names) in certs.current().served() {
            tracing::info!(pair, names = %names.join(","), "serving certificate");
        }
        let server_config = certs.server_config()?;
        let hsts = (config.hsts_max_age_secs > 0).then(|| {
            let mut v = format!("max-age={}", config.hsts_max_age_secs);
            if config.hsts_include_subdomains {
                v.push_str("; includeSubDomains");
            }
            HeaderValue::from_str(&v).expect("digits and ASCII are a valid header value")
        });
        Ok(Some(Https {
            certs,
            accept: TlsAccept {
                acceptor: tokio_rustls::TlsAcceptor::from(server_config),
                handshake_timeout: Duration::from_millis(config.handshake_timeout_ms),
            },
            watch_every: (config.watch_interval_ms > 0)
                .then(|| Duration::from_millis(config.watch_interval_ms)),
            hsts,
            plain: config.plain_http,
            https_port: config.https_port,
        }))
    }

    /// Where the plain listener sends clients while TLS is on: `Some(port)`
    /// (`None` inside for 443, left out of the URL), or `None` when it serves
    /// clicks itself (`tls.plain_http = "serve"`). `bound` is the HTTPS
    /// listener's own port.
    pub fn redirect_port(&self, bound: Option<u16>) -> Option<Option<u16>> {
        if self.plain != PlainHttp::Redirect {
            return None;
        }
        let port = self.https_port.or(bound).unwrap_or(443);
        Some((port != 443).then_some(port))
    }

    /// Checks `tls.cert_dir` every `tls.watch_interval_ms` and reloads the
    /// pairs that changed; `None` when watching is off.
    pub fn watch(&self) -> Option<tokio::task::JoinHandle<()>> {
        let every = self.watch_every?;
        let certs = Arc::clone(&self.certs);
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
                        reload_logged(&c);
                    }
                })
                .await;
            }
        }))
    }
}

/// TLS on a listener: the acceptor and how long a handshake may take.
#[derive(Clone)]
pub struct TlsAccept {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub handshake_timeout: Duration,
}

impl fmt::Debug for TlsAccept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAccept")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// Logs a certificate load: one error line per refused pair.
fn log_report(report: &LoadReport) {
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
pub fn reload_logged(certs: &CertStore) {
    match certs.reload() {
        Ok(report) => log_report(&report),
        Err(e) => tracing::error!("{e}; keeping the certificates already served"),
    }
}

/// Every problem with the configured certificates, for `refedge check`
/// (which, unlike a running node, treats a bad pair as a failure).
pub fn check(config: &crate::config::TlsConfig) -> Vec<String> {
    let Some(dir) = &config.cert_dir else {
        return Vec::new();
    };
    match CertStore::open(dir, config.default_cert.as_deref()) {
        Ok((_, report)) => report.errors.iter().map(|e| e.to_string()).collect(),
        Err(e) => vec![e.to_string()],
    }
}

/// Reads the directory: every `NAME.crt`, with its `NAME.key`.
fn listing(dir: &Path) -> io::Result<BTreeMap<String, Found>> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("crt") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let key = path.with_extension("key");
        let stamps = (Stamp::of(&path), Stamp::of(&key));
        found.insert(
            name.to_owned(),
            Found {
                crt: path,
                key,
                stamps,
            },
        );
    }
    Ok(found)
}

/// Builds the set from the directory, reusing unchanged pairs of `before`.
fn build(
    dir: &Path,
    before: Option<&CertSet>,
    default_name: Option<&str>,
    provider: &CryptoProvider,
    now: i64,
) -> Result<(CertSet, LoadReport), TlsError> {
    let listing = listing(dir).map_err(|source| TlsError::Dir {
        dir: dir.to_owned(),
        source,
    })?;
    let mut report = LoadReport::default();
    let mut pairs = BTreeMap::new();
    for (name, found) in &listing {
        let previous = before.and_then(|b| b.pairs.get(name));
        if let Some(p) = previous.filter(|p| p.stamps == found.stamps) {
            pairs.insert(name.clone(), Arc::clone(p));
            continue;
        }
        match load_pair(name, found, provider, now) {
            Ok(pair) => {
                report.loaded.push(name.clone());
                pairs.insert(name.clone(), Arc::new(pair));
            }
            Err(message) => {
                let kept = previous.is_some();
                let message = if kept {
                    format!("{message} (still serving the previous certificate)")
                } else {
                    message
                };
                report.errors.push(PairError {
                    name: name.clone(),
                    message,
                });
                if let Some(p) = previous {
                    pairs.insert(name.clone(), Arc::clone(p));
                }
            }
        }
    }
    let mut set = CertSet {
        listing,
        ..CertSet::default()
    };
    // Where two pairs claim a name, the one valid longest serves it (a
    // renewed certificate dropped in beside the old one takes over).
    let mut by_expiry: Vec<&Arc<Pair>> = pairs.values().collect();
    by_expiry.sort_by_key(|p| p.not_after);
    for pair in by_expiry {
        for name in &pair.names {
            match name.strip_prefix("*.") {
                Some(parent) => set
                    .wildcard
                    .insert(parent.to_owned(), Arc::clone(&pair.key)),
                None => set.exact.insert(name.clone(), Arc::clone(&pair.key)),
            };
        }
    }
    if let Some(name) = default_name {
        match pairs.get(name) {
            Some(p) => set.default = Some(Arc::clone(&p.key)),
            None => {
                return Err(TlsError::Default {
                    name: name.to_owned(),
                    dir: dir.to_owned(),
                });
            }
        }
    }
    set.pairs = pairs;
    report.served = set.pairs.len();
    Ok((set, report))
}

/// Loads and checks one pair; the message names the file at fault.
fn load_pair(
    name: &str,
    found: &Found,
    provider: &CryptoProvider,
    now: i64,
) -> Result<Pair, String> {
    let crt = found.crt.display();
    let key_path = found.key.display();
    if found.stamps.1.is_none() {
        return Err(format!("{crt}: the private key {key_path} is missing"));
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&found.crt)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{crt}: not a PEM certificate file: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{crt}: holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(&found.key)
        .map_err(|e| format!("{key_path}: no PEM private key: {e}"))?;
    let (names, not_before, not_after) = inspect(&chain[0]).map_err(|e| format!("{crt}: {e}"))?;
    if now > not_after {
        return Err(format!(
            "{crt}: the certificate expired at {}",
            rfc3339(not_after)
        ));
    }
    if now < not_before {
        return Err(format!(
            "{crt}: the certificate is not valid before {}",
            rfc3339(not_before)
        ));
    }
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("{key_path}: the private key does not match the certificate in {crt}")
        }
        other => format!("{key_path}: unusable private key: {other}"),
    })?;
    tracing::debug!(pair = name, ?names, "certificate pair loaded");
    Ok(Pair {
        key: Arc::new(key),
        names,
        not_after,
        stamps: found.stamps,
    })
}

/// The DNS names and validity of an end-entity certificate.
fn inspect(der: &CertificateDer<'_>) -> Result<(Vec<String>, i64, i64), String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("cannot parse the certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for general in &san.value.general_names {
            if let GeneralName::DNSName(dns) = general {
                names.push(dns.trim_end_matches('.').to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        return Err("the certificate names no DNS host in its subjectAltName".into());
    }
    let validity = cert.validity();
    Ok((
        names,
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

fn publish_metrics(set: &CertSet, before: Option<&CertSet>) {
    metrics::tls_certificates().set(set.pairs.len() as f64);
    for (name, pair) in &set.pairs {
        metrics::tls_certificate_expiry(name).set(pair.not_after as f64);
    }
    if let Some(before) = before {
        for name in before.pairs.keys().filter(|n| !set.pairs.contains_key(*n)) {
            metrics::tls_certificate_expiry(name).set(0.0);
        }
    }
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// The metric kind of a failed handshake.
pub fn handshake_error_kind(e: &io::Error) -> &'static str {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        // The only general error rustls raises before the handshake ends is
        // the resolver finding no certificate for the client's name.
        Some(rustls::Error::General(_)) => "unknown_sni",
        Some(rustls::Error::PeerIncompatible(_)) => "incompatible",
        Some(rustls::Error::AlertReceived(_)) => "alert",
        Some(
            rustls::Error::InvalidMessage(_)
            | rustls::Error::PeerMisbehaved(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. },
        ) => "protocol",
        Some(_) => "other",
        None => match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => "closed",
            _ => "other",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, file: &str, names: &[&str]) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{file}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }

    fn served_by(set: &CertSet, sni: Option<&str>) -> Option<String> {
        let key = set.lookup(sni)?;
        set.pairs
            .iter()
            .find(|(_, p)| Arc::ptr_eq(&p.key, key))
            .map(|(n, _)| n.clone())
    }

    #[test]
    fn sni_picks_exact_then_one_label_wildcard_then_default() {
        let dir = tempfile::tempdir().unwrap();
        pair(dir.path(), "adp", &["go.adp.example"]);
        pair(
            dir.path(),
            "directv",
            &["*.directv.example", "directv.example"],
        );
        let (store, report) = CertStore::open(dir.path(), Some("adp")).unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let set = store.current();
        assert_eq!(
            served_by(&set, Some("go.adp.example")).as_deref(),
            Some("adp")
        );
        assert_eq!(
            served_by(&set, Some("GO.ADP.example.")).as_deref(),
            Some("adp")
        );
        assert_eq!(
            served_by(&set, Some("refer.directv.example")).as_deref(),
            Some("directv")
        );
        assert_eq!(
            served_by(&set, Some("directv.example")).as_deref(),
            Some("directv")
        );
        // A wildcard covers one label only; the rest falls to the default.
        assert_eq!(
            served_by(&set, Some("a.b.directv.example")).as_deref(),
            Some("adp")
        );
        assert_eq!(served_by(&set, None).as_deref(), Some("adp"));

        let (store, _) = CertStore::open(dir.path(), None).unwrap();
        assert_eq!(served_by(&store.current(), Some("unknown.example")), None);
        assert_eq!(served_by(&store.current(), None), None);
    }

    #[test]
    fn bad_pairs_are_named_and_left_out() {
        let dir = tempfile::tempdir().unwrap();
        pair(dir.path(), "good", &["go.good.example"]);
        pair(dir.path(), "other", &["go.other.example"]);
        // other.key now holds a different key than other.crt.
        let stray = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("other.key"), stray.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("lonely.crt"), "not pem").unwrap();
        let (store, report) = CertStore::open(dir.path(), None).unwrap();
        assert_eq!(report.served, 1);
        let messages: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("other.key") && m.contains("does not match")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("lonely.crt") && m.contains("lonely.key is missing")),
            "{messages:?}"
        );
        assert_eq!(store.current().served().len(), 1);
    }

    #[test]
    fn nothing_usable_or_a_missing_default_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = CertStore::open(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("no usable certificate pair"), "{err}");
        pair(dir.path(), "a", &["a.example"]);
        let err = CertStore::open(dir.path(), Some("b"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tls.default_cert") && err.contains("\"b\""),
            "{err}"
        );
    }

    #[test]
    fn an_expired_certificate_is_refused_with_its_date() {
        let dir = tempfile::tempdir().unwrap();
        pair(dir.path(), "fresh", &["fresh.example"]);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["old.example".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("old.crt"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("old.key"), key.serialize_pem()).unwrap();
        let (_, report) = CertStore::open(dir.path(), None).unwrap();
        assert_eq!(report.errors.len(), 1);
        assert!(
            report.errors[0].message.contains("expired at 2021-01-01"),
            "{}",
            report.errors[0]
        );
    }

    #[test]
    fn reload_keeps_the_previous_certificate_of_a_broken_pair() {
        let dir = tempfile::tempdir().unwrap();
        pair(dir.path(), "brand", &["go.brand.example"]);
        let (store, _) = CertStore::open(dir.path(), None).unwrap();
        let before = Arc::clone(store.current().lookup(Some("go.brand.example")).unwrap());
        assert!(!store.changed());
        std::fs::write(dir.path().join("brand.crt"), "garbage").unwrap();
        assert!(store.changed());
        let report = store.reload().unwrap();
        assert_eq!(report.errors.len(), 1);
        assert!(
            report.errors[0]
                .message
                .contains("still serving the previous certificate")
        );
        let kept = Arc::clone(store.current().lookup(Some("go.brand.example")).unwrap());
        assert!(Arc::ptr_eq(&before, &kept));
        // Fixed files are picked up.
        pair(dir.path(), "brand", &["go.brand.example"]);
        let report = store.reload().unwrap();
        assert_eq!(report.loaded, vec!["brand".to_string()]);
        let after = Arc::clone(store.current().lookup(Some("go.brand.example")).unwrap());
        assert!(!Arc::ptr_eq(&before, &after));
    }
}
