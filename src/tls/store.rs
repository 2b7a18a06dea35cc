//! The certificates of the HTTPS listener: `NAME.crt` + `NAME.key` pairs
//! read from `tls.cert_dir`, each serving the DNS names of its
//! subjectAltName (wildcards included), chosen by SNI; the rustls server
//! configuration (TLS 1.2 and 1.3, ALPN h2 and http/1.1, resumption by
//! session cache and tickets, no 0-RTT); reloads that swap in changed pairs
//! for new connections and keep a pair's previous certificate when its new
//! files are bad; pairs written whole (by the ACME client); and the hook
//! through which hosts no pair covers reach the ACME client (`Acquire`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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
    not_before: i64,
    not_after: i64,
    stamps: (Option<Stamp>, Option<Stamp>),
}

/// The certificates served at one moment; replaced whole on reload.
#[derive(Debug, Default)]
pub struct CertSet {
    pairs: BTreeMap<String, Arc<Pair>>,
    exact: HashMap<String, Arc<Pair>>,
    /// `*.brand.example` stored under `brand.example`.
    wildcard: HashMap<String, Arc<Pair>>,
    default: Option<Arc<CertifiedKey>>,
    /// The directory listing this set was built from.
    listing: BTreeMap<String, Found>,
}

impl CertSet {
    /// The certificate for an SNI name: an exact name first, then a wildcard
    /// covering exactly one more label, then the default (also for no SNI).
    fn lookup(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        if let Some(name) = sni {
            if let Some(pair) = self.covering(name) {
                return Some(&pair.key);
            }
        }
        self.default.as_ref()
    }

    /// The pair serving `name` itself: an exact name, else a wildcard
    /// covering exactly one more label (never the default).
    fn covering(&self, name: &str) -> Option<&Arc<Pair>> {
        let name = crate::hostname::without_root_dot(name);
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        self.exact.get(name).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent)
        })
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
    may_be_empty: bool,
    /// With `tls.acme`, what obtains the certificates no file holds yet.
    acquire: std::sync::OnceLock<Arc<dyn Acquire>>,
}

/// What obtains certificates for hosts that no file covers yet (the ACME
/// client, `crate::acme`).
pub trait Acquire: Send + Sync + fmt::Debug {
    /// The TLS-ALPN-01 certificate for `host` while an order for it is open.
    fn challenge(&self, host: &str) -> Option<Arc<CertifiedKey>>;
    /// A handshake named `host`, which no certificate covers.
    fn missing(&self, host: &str);
}

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

impl CertStore {
    /// Loads the directory. Pairs that cannot be used are reported and left
    /// out; it is an error only when no pair is usable or the configured
    /// default pair is not.
    /// With `may_be_empty` (certificates come from ACME) a directory with no
    /// pair yet is served too.
    pub fn open(
        dir: &Path,
        default_name: Option<&str>,
        may_be_empty: bool,
    ) -> Result<(Arc<CertStore>, LoadReport), TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (set, report) = build(dir, None, default_name, &provider, now_secs())?;
        if set.pairs.is_empty() && !may_be_empty {
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
            acquire: std::sync::OnceLock::new(),
            may_be_empty,
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
            Ok(ok) if !ok.0.pairs.is_empty() || self.may_be_empty => ok,
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
    /// With `acme`, handshakes may also ask for TLS-ALPN-01's `acme-tls/1`.
    pub fn server_config(self: &Arc<Self>, acme: bool) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if acme {
            config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
        }
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

impl CertStore {
    /// Whether a handshake naming `sni` (`None`: no SNI) gets a certificate
    /// (or, while its order is open, a TLS-ALPN-01 one).
    pub fn serves(&self, sni: Option<&str>) -> bool {
        self.pick(sni, false).is_some()
            || sni.is_some_and(|h| self.acquire.get().is_some_and(|a| a.challenge(h).is_some()))
    }

    /// The certificate for a handshake naming `sni`; with `acme_alpn` (it
    /// asked for `acme-tls/1` only) the challenge certificate or none. A
    /// name no pair covers is reported to `Acquire::missing`.
    fn pick(&self, sni: Option<&str>, acme_alpn: bool) -> Option<Arc<CertifiedKey>> {
        let acquire = self.acquire.get();
        if let (true, Some(a)) = (acme_alpn, acquire) {
            return a.challenge(sni?);
        }
        let set = self.current.read().unwrap_or_else(|e| e.into_inner());
        if let (Some(a), Some(name)) = (acquire, sni)
            && set.covering(name).is_none()
        {
            a.missing(name);
        }
        set.lookup(sni).cloned()
    }

    /// Hands the hosts no file covers to `acquire` (once).
    pub fn set_acquire(&self, acquire: Arc<dyn Acquire>) {
        let _ = self.acquire.set(acquire);
    }

    /// The certificate serving `host` itself (not the default), with its
    /// notBefore and notAfter in Unix seconds.
    pub fn served(&self, host: &str) -> Option<(CertificateDer<'static>, i64, i64)> {
        let set = self.current.read().unwrap_or_else(|e| e.into_inner());
        set.covering(host)
            .map(|p| (p.key.cert[0].clone(), p.not_before, p.not_after))
    }

    /// The directory the pairs are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a pair into the directory (see [`write_pair`]).
    pub fn write_pair(&self, name: &str, key_pem: &str, chain_pem: &str) -> io::Result<()> {
        write_pair(&self.dir, name, key_pem, chain_pem)
    }

    /// Whether `tls.default_cert` serves every other handshake.
    pub fn has_default(&self) -> bool {
        self.default_name.is_some()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // RFC 8737 §3: a validation handshake offers `acme-tls/1` alone.
        let acme_alpn = hello
            .alpn()
            .is_some_and(|mut offered| offered.next() == Some(ACME_TLS_ALPN));
        self.pick(hello.server_name(), acme_alpn)
    }
}

/// Writes `NAME.key` (readable by its owner only) then `NAME.crt`, each
/// whole under a dot name (which the store skips) and renamed into place;
/// the next reload serves them.
pub fn write_pair(dir: &Path, name: &str, key_pem: &str, chain_pem: &str) -> io::Result<()> {
    write_file(dir, &format!("{name}.key"), key_pem.as_bytes(), 0o600)?;
    write_file(dir, &format!("{name}.crt"), chain_pem.as_bytes(), 0o644)
}

fn write_file(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
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
                Some(parent) => set.wildcard.insert(parent.to_owned(), Arc::clone(pair)),
                None => set.exact.insert(name.clone(), Arc::clone(pair)),
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
        not_before,
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

#[cfg(test)]
mod tests;
