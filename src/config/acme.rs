//! The `[tls.acme]` section, and its check field by field: a directory the
//! edge can trust, a contact and an account binding where the CA needs them,
//! a sane bound, a seal key where nodes share certificates.

use std::path::PathBuf;

use serde::Deserialize;

/// `[tls.acme]` (README: "Certificates from Let's Encrypt").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// The CA's directory URL (https); unset = ACME off.
    pub directory_url: Option<String>,
    /// `mailto:` address of the account.
    pub contact: Option<String>,
    /// PEM file of the roots trusted for the directory's HTTPS; unset = the
    /// system's roots.
    pub ca_roots: Option<PathBuf>,
    /// External account binding: the key id the CA gave.
    pub eab_kid: Option<String>,
    /// External account binding: the HMAC key the CA gave (base64url).
    pub eab_hmac_key: Option<String>,
    /// How the CA checks a host: `tls-alpn-01` on `tls.listen` or `http-01`
    /// on `server.listen`.
    pub challenge: AcmeChallenge,
    /// New orders a node may place in any hour, renewals included.
    pub max_orders_per_hour: u32,
    /// 32 bytes, base64: the AES-256-GCM key that seals private keys on
    /// `kafka.certs_topic`; required with Kafka, the same on every node.
    pub seal_key: Option<String>,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            directory_url: None,
            contact: None,
            ca_roots: None,
            eab_kid: None,
            eab_hmac_key: None,
            challenge: AcmeChallenge::TlsAlpn01,
            max_orders_per_hour: 30,
            seal_key: None,
        }
    }
}

/// The ACME challenge a node answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AcmeChallenge {
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    #[serde(rename = "http-01")]
    Http01,
}

/// CAs known to refuse an account without a contact or an external account
/// binding, by the host of their directory.
const NEEDS: [(&str, bool, bool); 2] = [
    // (host, contact, external account binding)
    ("acme.zerossl.com", true, true),
    ("api.buypass.com", true, false),
];

/// Every problem of `[tls.acme]` as (field, reason); `tls` tells whether
/// `tls.listen` and `tls.cert_dir` are set, which ACME needs, and `kafka`
/// whether nodes share a broker (then they share sealed keys).
pub fn check(acme: &AcmeConfig, tls: bool, kafka: bool) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let Some(url) = &acme.directory_url else {
        return problems;
    };
    let host = match url.parse::<http::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {
            uri.host().map(str::to_ascii_lowercase)
        }
        _ => {
            problems.push((
                "directory_url",
                format!("{url:?} is not an https:// URL (RFC 8555 requires HTTPS)"),
            ));
            None
        }
    };
    if !tls {
        problems.push((
            "directory_url",
            "needs tls.listen and tls.cert_dir (where certificates are served from)".into(),
        ));
    }
    let (needs_contact, needs_eab) = host
        .as_deref()
        .and_then(|h| NEEDS.iter().find(|(ca, ..)| *ca == h))
        .map_or((false, false), |(_, c, e)| (*c, *e));
    match &acme.contact {
        Some(c) if !c.strip_prefix("mailto:").is_some_and(|a| a.contains('@')) => {
            problems.push((
                "contact",
                format!("{c:?} is not a mailto: address (mailto:ops@brand.example)"),
            ));
        }
        None if needs_contact => problems.push((
            "contact",
            format!(
                "{} needs a contact address (mailto:…)",
                host.as_deref().unwrap_or("")
            ),
        )),
        _ => {}
    }
    match (&acme.eab_kid, &acme.eab_hmac_key) {
        (Some(_), None) => problems.push(("eab_hmac_key", "must be set with eab_kid".into())),
        (None, Some(_)) => problems.push(("eab_kid", "must be set with eab_hmac_key".into())),
        (None, None) if needs_eab => problems.push((
            "eab_kid",
            format!(
                "{} needs an external account binding (eab_kid and eab_hmac_key)",
                host.as_deref().unwrap_or("")
            ),
        )),
        (Some(_), Some(key)) => {
            use base64::Engine;
            if base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key.trim_end_matches('='))
                .is_err()
            {
                problems.push(("eab_hmac_key", "is not base64url".into()));
            }
        }
        _ => {}
    }
    if let Some(path) = &acme.ca_roots {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let read = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>());
        match read {
            Ok(certs) if !certs.is_empty() => {}
            Ok(_) => problems.push((
                "ca_roots",
                format!("{} holds no certificate", path.display()),
            )),
            Err(e) => problems.push(("ca_roots", format!("{}: {e}", path.display()))),
        }
    }
    match (&acme.seal_key, kafka) {
        (None, true) => problems.push((
            "seal_key",
            "must be set with Kafka: 32 bytes in base64, the same on every node (openssl rand -base64 32)"
                .into(),
        )),
        (Some(key), _) if seal_key(key).is_none() => problems.push((
            "seal_key",
            "must be 32 bytes in base64 (openssl rand -base64 32)".into(),
        )),
        _ => {}
    }
    if !(1..=100).contains(&acme.max_orders_per_hour) {
        problems.push((
            "max_orders_per_hour",
            "must be between 1 and 100 (Let's Encrypt allows 300 new orders per 3 hours)".into(),
        ));
    }
    problems
}

/// The AES-256 key of `tls.acme.seal_key`.
pub fn seal_key(text: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(acme: &AcmeConfig) -> Vec<&'static str> {
        check(acme, true, false)
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    #[test]
    fn each_mistake_is_named_by_its_field() {
        let mut a = AcmeConfig::default();
        assert!(fields(&a).is_empty(), "ACME off: nothing to check");
        a.directory_url = Some("https://acme-v02.api.letsencrypt.org/directory".into());
        assert!(fields(&a).is_empty());
        assert_eq!(
            check(&a, false, false)[0].1,
            "needs tls.listen and tls.cert_dir (where certificates are served from)"
        );
        a.directory_url = Some("http://acme.example/directory".into());
        assert_eq!(fields(&a), ["directory_url"]);
        a.directory_url = Some("https://acme.zerossl.com/v2/DV90".into());
        assert_eq!(fields(&a), ["contact", "eab_kid"]);
        a.contact = Some("ops@brand.example".into());
        a.eab_kid = Some("kid".into());
        a.eab_hmac_key = Some("not base64!".into());
        assert_eq!(fields(&a), ["contact", "eab_hmac_key"]);
        a.contact = Some("mailto:ops@brand.example".into());
        a.eab_hmac_key = Some("c2VjcmV0".into());
        a.max_orders_per_hour = 0;
        assert_eq!(fields(&a), ["max_orders_per_hour"]);
        a.max_orders_per_hour = 30;
        a.ca_roots = Some("/nonexistent/roots.pem".into());
        assert_eq!(fields(&a), ["ca_roots"]);
        a.ca_roots = None;
        assert_eq!(check(&a, true, true)[0].0, "seal_key");
        a.seal_key = Some("c2hvcnQ=".into());
        assert_eq!(fields(&a), ["seal_key"]);
        a.seal_key = Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into());
        assert!(check(&a, true, true).is_empty());
    }
}
