//! This node's account at the CA: created once (with `tls.acme.contact` and
//! the external account binding when set), kept in
//! `tls.cert_dir/.acme/account.json` (readable by the edge's user only) so a
//! restart reuses it, and a new one only when the directory URL changes.
//! Requests go through our own HTTPS client so that `tls.acme.ca_roots` may
//! hold several roots and a `Retry-After` is seen by the scheduler.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, BodyWrapper, BytesResponse, ExternalAccountKey, HttpClient,
    NewAccount,
};
use serde::{Deserialize, Serialize};

use crate::config::AcmeConfig;

/// The account and what its CA last asked us to wait for.
pub struct Ca {
    pub account: Account,
    /// The latest `Retry-After` of a 429 or 503 answer.
    pub retry_after: Arc<Mutex<Option<SystemTime>>>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("account", &self.account.id())
            .finish()
    }
}

/// What is kept on disk.
#[derive(Serialize, Deserialize)]
struct Stored {
    directory_url: String,
    credentials: AccountCredentials,
}

/// Where the account is kept.
pub fn account_file(cert_dir: &Path) -> PathBuf {
    cert_dir.join(".acme").join("account.json")
}

/// The account of `config.directory_url`: the stored one, else a new one
/// (stored before it is used).
pub async fn open(config: &AcmeConfig, cert_dir: &Path) -> Result<Ca, instant_acme::Error> {
    let directory_url = config
        .directory_url
        .clone()
        .ok_or("tls.acme.directory_url is unset")?;
    let retry_after = Arc::new(Mutex::new(None));
    let http = || -> Result<Box<dyn HttpClient>, instant_acme::Error> {
        Ok(Box::new(Watched {
            client: client(config.ca_roots.as_deref())?,
            retry_after: Arc::clone(&retry_after),
        }))
    };
    let path = account_file(cert_dir);
    if let Some(stored) = read(&path).filter(|s| s.directory_url == directory_url) {
        let account = Account::builder_with_http(http()?)
            .from_credentials(stored.credentials)
            .await?;
        tracing::info!(account = account.id(), "ACME account loaded");
        return Ok(Ca {
            account,
            retry_after,
        });
    }
    let contact: Vec<&str> = config.contact.as_deref().into_iter().collect();
    let eab = match (&config.eab_kid, &config.eab_hmac_key) {
        (Some(kid), Some(key)) => {
            use base64::Engine;
            let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key.trim_end_matches('='))
                .map_err(|_| "tls.acme.eab_hmac_key is not base64url")?;
            Some(ExternalAccountKey::new(kid.clone(), &key))
        }
        _ => None,
    };
    let (account, credentials) = Account::builder_with_http(http()?)
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            directory_url.clone(),
            eab.as_ref(),
        )
        .await?;
    let stored = Stored {
        directory_url,
        credentials,
    };
    if let Err(e) = write(&path, &stored) {
        // The account works; a restart will make another.
        tracing::error!(path = %path.display(), "cannot keep the ACME account: {e}");
    }
    tracing::info!(account = account.id(), "ACME account created");
    Ok(Ca {
        account,
        retry_after,
    })
}

fn read(path: &Path) -> Option<Stored> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(stored) => Some(stored),
        Err(e) => {
            tracing::error!(path = %path.display(), "unreadable ACME account, making a new one: {e}");
            None
        }
    }
}

fn write(path: &Path, stored: &Stored) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().expect("the account file is in .acme");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(".account.json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&serde_json::to_vec(stored).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

type Https = Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// An HTTPS-only client trusting `roots` (every certificate of the PEM
/// file) or, without, the system's roots.
fn client(roots: Option<&Path>) -> Result<Https, instant_acme::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match roots {
        Some(path) => {
            use rustls_pki_types::CertificateDer;
            use rustls_pki_types::pem::PemObject;
            let mut store = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            store.add_parsable_certificates(certs);
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?
                .with_root_certificates(store)
                .with_no_client_auth();
            builder.with_tls_config(tls)
        }
        None => builder
            .with_provider_and_native_roots(provider)
            .map_err(|e| instant_acme::Error::Other(Box::new(e)))?,
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    Ok(Client::builder(TokioExecutor::new()).build(
        builder
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http),
    ))
}

/// The client, noting each `Retry-After` a 429 or 503 carries (instant-acme
/// hands back only the problem document).
struct Watched {
    client: Https,
    retry_after: Arc<Mutex<Option<SystemTime>>>,
}

impl HttpClient for Watched {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let sent = self.client.request(req);
        let retry_after = Arc::clone(&self.retry_after);
        Box::pin(async move {
            let response = tokio::time::timeout(Duration::from_secs(30), sent)
                .await
                .map_err(|_| instant_acme::Error::Str("the CA did not answer within 30 s"))?
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let status = response.status().as_u16();
            if (status == 429 || status == 503)
                && let Some(at) = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after)
            {
                *retry_after.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
            }
            Ok(BytesResponse::from(response))
        })
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
fn parse_retry_after(value: &str) -> Option<SystemTime> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(SystemTime::now() + Duration::from_secs(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, &format).ok()?;
    Some(SystemTime::from(at.assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let in_two_minutes = parse_retry_after("120").unwrap();
        let ahead = in_two_minutes.duration_since(SystemTime::now()).unwrap();
        assert!(ahead > Duration::from_secs(110) && ahead <= Duration::from_secs(120));
        let date = parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            date.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            784_111_777
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
