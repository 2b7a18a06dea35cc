//! The answers a CA checks while an order is pending: for TLS-ALPN-01
//! (RFC 8737) a self-signed certificate for the host carrying the key
//! authorization's digest, served only to handshakes that ask for
//! `acme-tls/1`; for HTTP-01 (RFC 8555 §8.3) the key authorization at
//! `/.well-known/acme-challenge/TOKEN` on the plain listener. Each lives
//! only while its order does.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The path prefix of HTTP-01 answers.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The open challenges of this node's orders.
#[derive(Default)]
pub struct Challenges {
    /// host → the TLS-ALPN-01 certificate.
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// token → key authorization.
    http: RwLock<HashMap<String, String>>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges").finish_non_exhaustive()
    }
}

impl Challenges {
    /// Answers TLS-ALPN-01 for `host` with `digest` (the SHA-256 of the key
    /// authorization) until `close_alpn`.
    pub fn open_alpn(&self, host: &str, digest: &[u8]) -> Result<(), String> {
        let key = alpn_certificate(host, digest)?;
        write(&self.alpn).insert(host.to_owned(), Arc::new(key));
        Ok(())
    }

    pub fn close_alpn(&self, host: &str) {
        write(&self.alpn).remove(host);
    }

    /// The TLS-ALPN-01 certificate for a handshake naming `host`.
    pub fn alpn_certificate(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let map = self.alpn.read().unwrap_or_else(|e| e.into_inner());
        if map.is_empty() {
            return None;
        }
        map.get(&host.to_ascii_lowercase()).cloned()
    }

    /// Answers HTTP-01 `token` with `key_authorization` until `close_http`.
    pub fn open_http(&self, token: &str, key_authorization: &str) {
        write(&self.http).insert(token.to_owned(), key_authorization.to_owned());
    }

    pub fn close_http(&self, token: &str) {
        write(&self.http).remove(token);
    }

    /// The body answering a GET of `path` on the plain listener, when it is
    /// an open HTTP-01 token's.
    pub fn http_answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        self.http
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// RFC 8737 §3: a certificate for exactly `host` with the critical
/// `acmeIdentifier` extension holding `digest`, on a fresh P-256 key.
fn alpn_certificate(host: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    if digest.len() != 32 {
        return Err("the key authorization digest is not 32 bytes".into());
    }
    let mut params =
        rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // `CertifiedKey::from_der` would check the pair by parsing the
    // certificate, which refuses the critical extension it must carry.
    let signer = rustls::crypto::aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alpn_certificate_names_its_host_and_carries_the_digest_critically() {
        let digest = [7u8; 32];
        let key = alpn_certificate("go.brand.example", &digest).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(key.cert[0].as_ref()).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            format!("{:?}", san.value.general_names),
            r#"[DNSName("go.brand.example")]"#
        );
        let oid = x509_parser::der_parser::oid!(1.3.6.1.5.5.7.1.31);
        let ext = cert.get_extension_unique(&oid).unwrap().unwrap();
        assert!(ext.critical);
        // An OCTET STRING of the 32 digest bytes.
        assert_eq!(&ext.value[..2], &[0x04, 32]);
        assert_eq!(&ext.value[2..], &digest);
    }

    #[test]
    fn http_answers_only_open_tokens_under_the_challenge_path() {
        let c = Challenges::default();
        c.open_http("tok-1", "tok-1.thumb");
        assert_eq!(
            c.http_answer("/.well-known/acme-challenge/tok-1")
                .as_deref(),
            Some("tok-1.thumb")
        );
        assert_eq!(c.http_answer("/.well-known/acme-challenge/tok-2"), None);
        assert_eq!(c.http_answer("/tok-1"), None);
        c.close_http("tok-1");
        assert_eq!(c.http_answer("/.well-known/acme-challenge/tok-1"), None);
    }
}
