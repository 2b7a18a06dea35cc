//! When a host's certificate is due: when it has none, when a third of its
//! lifetime is left, or earlier when the CA's renewal information (ARI, RFC
//! 9773) suggests a window that has begun. The renewal time is a point
//! chosen at random in that window, as the RFC asks, so that nodes and
//! certificates do not renew in step; the CA is asked again after its
//! `Retry-After` (at least an hour apart), and never again once its
//! directory shows it has no renewal information.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use instant_acme::{Account, CertificateIdentifier};
use rustls_pki_types::{CertificateDer, Der};

/// The shortest time between two questions about one certificate.
const MIN_ASK_EVERY: Duration = Duration::from_secs(3600);
/// The longest (RFC 9773 §4.3: a client should ask at least twice a day).
const MAX_ASK_EVERY: Duration = Duration::from_secs(6 * 3600);

/// What the CA said of one host's certificate.
#[derive(Debug)]
struct Told {
    /// The certificate asked about (a new one is asked about anew).
    id: CertificateIdentifier<'static>,
    renew_at: Option<SystemTime>,
    ask_again: Instant,
}

/// The CA's renewal information, per host.
#[derive(Debug, Default)]
pub struct Renewals {
    told: HashMap<String, Told>,
    /// The CA's directory has no `renewalInfo`.
    unsupported: bool,
}

/// The certificate identifier of RFC 9773 §4.1: the authority key
/// identifier and the serial number of `leaf`.
pub fn identifier(leaf: &CertificateDer<'_>) -> Option<CertificateIdentifier<'static>> {
    use x509_parser::extensions::ParsedExtension;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let aki = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        })?;
    let serial = cert.tbs_certificate.raw_serial();
    Some(CertificateIdentifier::new(Der::from_slice(aki), Der::from_slice(serial)).into_owned())
}

impl Renewals {
    /// Whether `host`, served by `leaf` valid from `not_before` to
    /// `not_after` (Unix seconds), needs a new certificate at `now`.
    pub fn due(
        &self,
        host: &str,
        served: Option<(&CertificateDer<'_>, i64, i64)>,
        now: SystemTime,
    ) -> bool {
        let Some((leaf, not_before, not_after)) = served else {
            return true;
        };
        let unix = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if unix >= not_after - (not_after - not_before) / 3 {
            return true;
        }
        self.told.get(host).is_some_and(|told| {
            told.renew_at.is_some_and(|at| now >= at) && identifier(leaf).as_ref() == Some(&told.id)
        })
    }

    /// The certificate a renewal of `host` replaces, when the CA told us of
    /// it (the new order names it: RFC 9773 §5).
    pub fn replaces(&self, host: &str) -> Option<CertificateIdentifier<'static>> {
        self.told.get(host).map(|t| t.id.clone())
    }

    /// Whether the CA should be asked about `host`'s `leaf` now.
    pub fn should_ask(&self, host: &str, leaf: &CertificateDer<'_>, now: Instant) -> bool {
        if self.unsupported {
            return false;
        }
        match self.told.get(host) {
            None => true,
            Some(told) => now >= told.ask_again || identifier(leaf).as_ref() != Some(&told.id),
        }
    }

    /// Asks the CA about `host`'s `leaf`, keeping what it says.
    pub async fn ask(&mut self, account: &Account, host: &str, leaf: &CertificateDer<'_>) {
        let Some(id) = identifier(leaf) else {
            // No authority key identifier: not a certificate the CA issued.
            self.told.insert(
                host.to_owned(),
                Told {
                    id: CertificateIdentifier::new(Der::from_slice(&[]), Der::from_slice(&[])),
                    renew_at: None,
                    ask_again: Instant::now() + MAX_ASK_EVERY,
                },
            );
            return;
        };
        let (renew_at, wait) = match account.renewal_info(&id).await {
            Ok((info, retry_after)) => {
                let window = &info.suggested_window;
                let (start, end) = (SystemTime::from(window.start), SystemTime::from(window.end));
                let span = end.duration_since(start).unwrap_or(Duration::ZERO);
                let at = start + span.mul_f64(rand::random::<f64>());
                tracing::debug!(host, window_start = %window.start, window_end = %window.end, "ACME renewal information");
                (Some(at), retry_after.clamp(MIN_ASK_EVERY, MAX_ASK_EVERY))
            }
            Err(instant_acme::Error::Unsupported(_)) => {
                self.unsupported = true;
                return;
            }
            Err(e) => {
                tracing::debug!(host, error = %e, "ACME renewal information unavailable");
                (None, MIN_ASK_EVERY)
            }
        };
        self.told.insert(
            host.to_owned(),
            Told {
                id,
                renew_at,
                ask_again: Instant::now() + wait,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate issued by a CA (so it has an authority key identifier),
    /// valid from `from` to `to` days around now.
    fn issued(from: i64, to: i64) -> (CertificateDer<'static>, i64, i64) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_identifier_method = rcgen::KeyIdMethod::Sha256;
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["go.adp.test".to_owned()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        leaf.not_before = now + time::Duration::days(from);
        leaf.not_after = now + time::Duration::days(to);
        leaf.use_authority_key_identifier_extension = true;
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        (
            cert.der().clone(),
            leaf.not_before.unix_timestamp(),
            leaf.not_after.unix_timestamp(),
        )
    }

    #[test]
    fn due_with_no_certificate_at_a_third_left_or_when_the_ca_said() {
        let mut r = Renewals::default();
        let now = SystemTime::now();
        assert!(r.due("go.adp.test", None, now));
        let (young, nb, na) = issued(-10, 80);
        assert!(!r.due("go.adp.test", Some((&young, nb, na)), now));
        let (aging, nb2, na2) = issued(-70, 20);
        assert!(r.due("go.adp.test", Some((&aging, nb2, na2)), now));
        // The CA's window has begun for the young one.
        r.told.insert(
            "go.adp.test".into(),
            Told {
                id: identifier(&young).unwrap(),
                renew_at: Some(now - Duration::from_secs(1)),
                ask_again: Instant::now() + MIN_ASK_EVERY,
            },
        );
        assert!(r.due("go.adp.test", Some((&young, nb, na)), now));
        // What it said of one certificate does not hold for the next.
        let (next, nb3, na3) = issued(0, 90);
        assert!(!r.due("go.adp.test", Some((&next, nb3, na3)), now));
        assert!(r.should_ask("go.adp.test", &next, Instant::now()));
        assert!(!r.should_ask("go.adp.test", &young, Instant::now()));
    }
}
