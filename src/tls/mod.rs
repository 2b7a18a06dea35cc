//! TLS termination for many brand domains, as configured (`tls.*`): the
//! certificate store (`store`: `NAME.crt` + `NAME.key` pairs chosen by SNI
//! from their subjectAltName DNS names, reloads that keep a pair's previous
//! certificate when its new files are bad), the rustls setup and the
//! directory watch (here), and the classification of handshake failures for
//! metrics.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::config::{PlainHttp, TlsConfig};

mod store;

pub use store::{ACME_TLS_ALPN, Acquire, CertSet, CertStore, LoadReport, PairError, TlsError};

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
        let acme = config.acme.directory_url.is_some();
        if acme {
            // Certificates will come from the CA: the directory may not exist yet.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| TlsError::Dir {
                    dir: dir.clone(),
                    source,
                })?;
        }
        let (certs, report) = CertStore::open(dir, config.default_cert.as_deref(), acme)?;
        log_report(&report);
        for (pair, names) in certs.current().served() {
            tracing::info!(pair, names = %names.join(","), "serving certificate");
        }
        let server_config = certs.server_config(acme)?;
        let hsts = (config.hsts_max_age_secs > 0).then(|| {
            let mut v = format!("max-age={}", config.hsts_max_age_secs);
            if config.hsts_include_subdomains {
                v.push_str("; includeSubDomains");
            }
            HeaderValue::from_str(&v).expect("digits and ASCII are a valid header value")
        });
        let refuse_unknown = (!certs.has_default()).then(|| Arc::clone(&certs));
        Ok(Some(Https {
            certs,
            accept: TlsAccept {
                acceptor: tokio_rustls::TlsAcceptor::from(server_config),
                handshake_timeout: Duration::from_millis(config.handshake_timeout_ms),
                refuse_unknown,
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
    /// Without `tls.default_cert`, the certificates: a ClientHello is read
    /// first, and one naming no host they cover (or none) is answered with
    /// the `unrecognized_name` alert (RFC 6066 §3) rather than rustls's
    /// `access_denied`.
    pub refuse_unknown: Option<Arc<CertStore>>,
}

/// A fatal `unrecognized_name` (112) alert record, as TLS 1.2 and 1.3 send
/// it before a handshake has keys.
pub const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112];

/// The server name of the ClientHello waiting on `stream`, read without
/// taking it off the socket (`Some(None)`: no SNI); `None` when the first
/// bytes are no ClientHello (the acceptor will say why).
pub async fn peek_server_name(stream: &tokio::net::TcpStream) -> Option<Option<String>> {
    let mut buf = vec![0u8; 18 * 1024];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        let mut acceptor = rustls::server::Acceptor::default();
        acceptor.read_tls(&mut &buf[..n]).ok()?;
        match acceptor.accept() {
            Ok(Some(hello)) => return Some(hello.client_hello().server_name().map(str::to_owned)),
            // A ClientHello split over segments: wait for the rest.
            Ok(None) if n < buf.len() => tokio::time::sleep(Duration::from_millis(5)).await,
            _ => return None,
        }
    }
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
    let acme = config.acme.directory_url.is_some();
    match CertStore::open(dir, config.default_cert.as_deref(), acme) {
        Ok((_, report)) => report.errors.iter().map(|e| e.to_string()).collect(),
        Err(e) => vec![e.to_string()],
    }
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
