//! One order, for one host, from new order to files: the challenge of
//! `tls.acme.challenge` answered (`Challenges`, and with Kafka every node's)
//! and closed again whatever happens, a fresh P-256 key and its CSR, the
//! chain polled for, then the pair written to `tls.cert_dir`
//! (`CertStore::write_pair`).

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    OrderStatus, Problem, RetryPolicy,
};

use super::challenges::Challenges;
use super::cluster::{Answer, Cluster};
use crate::config::AcmeChallenge;
use crate::tls::CertStore;

/// How an order ended, as `refedge_acme_orders_total{result}` counts it.
#[derive(Debug)]
pub enum Outcome {
    /// The certificate is on disk.
    Issued,
    /// The CA could not be reached or did not answer.
    Unreachable(String),
    /// The CA's rate limit (`rateLimited`, or a 429).
    RateLimited(String),
    /// The CA will not issue for this name (`rejectedIdentifier`, `caa`,
    /// `unauthorized`, …).
    Refused(String),
    /// The CA could not validate the challenge.
    ChallengeFailed(String),
    /// Anything else (a timeout, an unusable answer, a disk error).
    Failed(String),
}

impl Outcome {
    /// The `result` label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Issued => "issued",
            Outcome::Unreachable(_) => "ca_unreachable",
            Outcome::RateLimited(_) => "rate_limited",
            Outcome::Refused(_) => "refused",
            Outcome::ChallengeFailed(_) => "challenge_failed",
            Outcome::Failed(_) => "failed",
        }
    }

    /// What went wrong (the CA's problem document, as it said it).
    pub fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Issued => None,
            Outcome::Unreachable(d)
            | Outcome::RateLimited(d)
            | Outcome::Refused(d)
            | Outcome::ChallengeFailed(d)
            | Outcome::Failed(d) => Some(d),
        }
    }

    /// An error of the ACME client, by kind.
    pub fn of_error(e: instant_acme::Error) -> Outcome {
        Outcome::of_error_in(e, false)
    }

    /// As `of_error`; `validating`: while the CA checks the challenge, when
    /// its problem (`unauthorized` and `connection` above all) is what it saw
    /// of our answer.
    fn of_error_in(e: instant_acme::Error, validating: bool) -> Outcome {
        match e {
            instant_acme::Error::Api(problem) => Outcome::of_problem(&problem, validating),
            instant_acme::Error::Other(e) => Outcome::Unreachable(chain(e.as_ref())),
            instant_acme::Error::Timeout(_) => {
                Outcome::Failed("the CA did not finish the order in time".into())
            }
            other => Outcome::Failed(other.to_string()),
        }
    }

    /// A problem document, by its type (RFC 8555 §6.7).
    pub fn of_problem(problem: &Problem, validating: bool) -> Outcome {
        let text = describe(problem);
        let kind = problem
            .r#type
            .as_deref()
            .and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:"))
            .unwrap_or("");
        match kind {
            "rateLimited" => Outcome::RateLimited(text),
            _ if problem.status == Some(429) => Outcome::RateLimited(text),
            _ if validating => Outcome::ChallengeFailed(text),
            "rejectedIdentifier" | "unsupportedIdentifier" | "caa" | "unauthorized" => {
                Outcome::Refused(text)
            }
            "connection" | "dns" | "incorrectResponse" | "tls" => Outcome::ChallengeFailed(text),
            _ => Outcome::Failed(text),
        }
    }
}

/// An error with every cause behind it, in one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The problem document in one line: type, detail, status, subproblems.
fn describe(problem: &Problem) -> String {
    serde_json::json!({
        "type": problem.r#type,
        "detail": problem.detail,
        "status": problem.status,
        "subproblems": problem.subproblems.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    })
    .to_string()
}

/// How long the CA may take to validate and to issue.
const VALIDATION: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));

/// Where an order answers its challenge and leaves its certificate: this
/// node's challenges and `tls.cert_dir`, and with Kafka every node's.
#[derive(Clone, Copy)]
pub struct Answering<'a> {
    pub challenges: &'a Challenges,
    pub cluster: Option<&'a Cluster>,
    pub certs: &'a CertStore,
}

/// Orders a certificate for `host` and writes it to `cert_dir` (and, with
/// Kafka, hands it to every node).
pub async fn run(
    account: &Account,
    host: &str,
    kind: AcmeChallenge,
    replaces: Option<CertificateIdentifier<'static>>,
    at: Answering<'_>,
) -> Outcome {
    let mut opened = Vec::new();
    let outcome = order(account, host, kind, replaces, at, &mut opened).await;
    for close in opened {
        match close {
            Opened::Alpn(host) => at.challenges.close_alpn(&host),
            Opened::Http(token) => at.challenges.close_http(&token),
        }
    }
    if let Some(cluster) = at.cluster {
        cluster.close(host);
    }
    outcome
}

/// A challenge answer to take down when the order ends.
enum Opened {
    Alpn(String),
    Http(String),
}

async fn order(
    account: &Account,
    host: &str,
    kind: AcmeChallenge,
    replaces: Option<CertificateIdentifier<'static>>,
    at: Answering<'_>,
    opened: &mut Vec<Opened>,
) -> Outcome {
    let challenges = at.challenges;
    let identifiers = [Identifier::Dns(host.to_owned())];
    let mut new_order = NewOrder::new(&identifiers);
    if let Some(id) = replaces {
        // RFC 9773 §5: the CA may then let the renewal past its limits.
        new_order = new_order.replaces(id);
    }
    let mut order = match account.new_order(&new_order).await {
        Ok(order) => order,
        Err(e) => return Outcome::of_error(e),
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = match authorization {
            Ok(a) => a,
            Err(e) => return Outcome::of_error(e),
        };
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Outcome::Refused(format!("the authorization is {other:?}"));
            }
        }
        let wanted = match kind {
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            AcmeChallenge::Http01 => ChallengeType::Http01,
        };
        let Some(mut challenge) = authorization.challenge(wanted.clone()) else {
            return Outcome::Refused(format!("the CA offers no {wanted:?} challenge"));
        };
        let key_authorization = challenge.key_authorization();
        let answer = match kind {
            AcmeChallenge::TlsAlpn01 => {
                let digest = key_authorization.digest();
                if let Err(e) = challenges.open_alpn(host, digest.as_ref()) {
                    return Outcome::Failed(e);
                }
                opened.push(Opened::Alpn(host.to_owned()));
                use base64::Engine;
                Answer::TlsAlpn {
                    digest: base64::engine::general_purpose::STANDARD.encode(digest.as_ref()),
                }
            }
            AcmeChallenge::Http01 => {
                challenges.open_http(&challenge.token, key_authorization.as_str());
                opened.push(Opened::Http(challenge.token.clone()));
                Answer::Http {
                    token: challenge.token.clone(),
                    key_authorization: key_authorization.as_str().to_owned(),
                }
            }
        };
        if let Some(cluster) = at.cluster {
            // The CA may reach any node behind the host's DNS.
            cluster.open(host, answer).await;
        }
        if let Err(e) = challenge.set_ready().await {
            return Outcome::of_error(e);
        }
    }
    let status = match order.poll_ready(&VALIDATION).await {
        Ok(status) => status,
        Err(e) => return Outcome::of_error_in(e, true),
    };
    if status != OrderStatus::Ready {
        return Outcome::ChallengeFailed(why_invalid(&mut order).await);
    }
    let (csr, key_pem) = match request(host) {
        Ok(made) => made,
        Err(e) => return Outcome::Failed(e),
    };
    if let Err(e) = order.finalize_csr(&csr).await {
        return Outcome::of_error(e);
    }
    let chain = match order.poll_certificate(&VALIDATION).await {
        Ok(chain) => chain,
        Err(e) => return Outcome::of_error(e),
    };
    if let Err(e) = at.certs.write_pair(host, &key_pem, &chain) {
        return Outcome::Failed(format!("cannot write the certificate: {e}"));
    }
    if let Some(cluster) = at.cluster {
        cluster.issued(host, &chain, &key_pem);
    }
    Outcome::Issued
}

/// The problem of the first failed challenge (what the CA saw), else of
/// the order.
async fn why_invalid(order: &mut instant_acme::Order) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(authorization)) = authorizations.next().await {
        if let Some(problem) = authorization
            .challenges
            .iter()
            .find_map(|c| c.error.as_ref())
        {
            return describe(problem);
        }
    }
    match &order.state().error {
        Some(problem) => describe(problem),
        None => format!("the order is {:?}", order.state().status),
    }
}

/// A fresh P-256 key and a CSR for `host`: (CSR DER, key PEM).
fn request(host: &str) -> Result<(Vec<u8>, String), String> {
    let mut params =
        rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let csr = params.serialize_request(&key).map_err(|e| e.to_string())?;
    Ok((csr.der().to_vec(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(json: &str) -> Problem {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn problems_are_counted_by_their_type() {
        let p = problem(
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many","status":429}"#,
        );
        assert_eq!(Outcome::of_problem(&p, false).label(), "rate_limited");
        let p = problem(r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","status":400}"#);
        assert_eq!(Outcome::of_problem(&p, false).label(), "refused");
        let p = problem(r#"{"type":"urn:ietf:params:acme:error:connection","status":400}"#);
        assert_eq!(Outcome::of_problem(&p, false).label(), "challenge_failed");
        // What a CA says of a failed validation (Let's Encrypt: "Invalid
        // response from …") is not a refusal of the name.
        let p = problem(r#"{"type":"urn:ietf:params:acme:error:unauthorized","status":403}"#);
        assert_eq!(Outcome::of_problem(&p, false).label(), "refused");
        assert_eq!(Outcome::of_problem(&p, true).label(), "challenge_failed");
        let p = problem(r#"{"type":"urn:ietf:params:acme:error:serverInternal","status":500}"#);
        assert_eq!(Outcome::of_problem(&p, false).label(), "failed");
        assert!(
            Outcome::of_problem(&p, false)
                .detail()
                .unwrap()
                .contains("serverInternal")
        );
    }
}
