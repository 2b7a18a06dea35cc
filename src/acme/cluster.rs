//! ACME across the nodes that share a broker, through `kafka.certs_topic`:
//! which node orders a host (a claim; the first live claim in topic order
//! wins, so every node agrees), the challenge answers (the CA may reach any
//! node), and the issued certificate with its private key sealed
//! (AES-256-GCM under `tls.acme.seal_key`, the host as associated data),
//! which every node writes to its own `tls.cert_dir`. A node that starts
//! later reads the topic from the beginning and serves without ordering.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::challenges::Challenges;
use crate::kafka::replicate::{Replica, Replication};
use crate::tls::CertStore;

/// How long a claim holds without being renewed: longer than any order
/// takes, short enough that a node that died is replaced soon.
const CLAIM_FOR: Duration = Duration::from_secs(600);

/// A node's claim to order a host.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claim {
    node: String,
    /// Unix milliseconds, by the claimant's clock.
    at: u64,
    until: u64,
}

/// A challenge answer to serve on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    TlsAlpn {
        digest: String,
    },
    Http {
        token: String,
        key_authorization: String,
    },
}

/// An issued certificate as it travels: the chain in clear, the key sealed.
#[derive(Debug, Serialize, Deserialize)]
struct Issued {
    chain: String,
    sealed_key: String,
}

/// This node's part in the shared ACME state.
pub struct Cluster {
    me: String,
    shared: Arc<Shared>,
    replication: OnceLock<Arc<Replication>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("me", &self.me).finish()
    }
}

/// What the topic's records apply to.
struct Shared {
    claims: Mutex<HashMap<String, Claim>>,
    answers: Mutex<HashMap<String, Answer>>,
    key: LessSafeKey,
    certs: Arc<CertStore>,
    challenges: Arc<Challenges>,
}

impl Cluster {
    /// Follows `kafka.certs_topic` as `node`; `seal_key` is
    /// `tls.acme.seal_key`'s 32 bytes.
    pub fn start(
        kafka: &crate::config::KafkaConfig,
        node: &str,
        seal_key: &[u8; 32],
        certs: Arc<CertStore>,
        challenges: Arc<Challenges>,
    ) -> Result<Arc<Cluster>, rdkafka::error::KafkaError> {
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, seal_key).expect("a 32-byte AES-256 key"),
        );
        let shared = Arc::new(Shared {
            claims: Mutex::default(),
            answers: Mutex::default(),
            key,
            certs,
            challenges,
        });
        let config = crate::kafka::replicate::ReplicationConfig {
            kafka: kafka.clone(),
            node: node.to_owned(),
            topic: kafka.certs_topic.clone(),
        };
        let replication = Replication::start(
            &config,
            Arc::clone(&shared) as Arc<dyn Replica>,
            Default::default(),
        )?;
        let cluster = Arc::new(Cluster {
            me: format!("{node}:{:016x}", rand::random::<u64>()),
            shared,
            replication: OnceLock::new(),
        });
        let _ = cluster.replication.set(replication);
        Ok(cluster)
    }

    /// The follower, stopped at shutdown with the other replications.
    pub fn replication(&self) -> Arc<Replication> {
        Arc::clone(self.replication.get().expect("set at start"))
    }

    fn publish<T: Serialize>(&self, key: String, value: Option<&T>) {
        let payload = value.map(|v| serde_json::to_vec(v).expect("serialisable"));
        self.replication().publish(key, payload);
    }

    /// Whether the topic has been read up to where it was at start.
    pub fn caught_up(&self) -> bool {
        self.replication.get().is_some_and(|r| r.caught_up())
    }

    /// Who may order `host` now: `Some(true)` this node, `Some(false)`
    /// another, `None` no one (claim it first).
    pub fn holder(&self, host: &str) -> Option<bool> {
        let claims = self.shared.claims.lock().unwrap_or_else(|e| e.into_inner());
        let claim = claims.get(host).filter(|c| c.until > unix_ms())?;
        Some(claim.node == self.me)
    }

    /// Claims `host` (or renews this node's claim); whether it holds shows
    /// once the claim has come back through the topic.
    pub fn claim(&self, host: &str) {
        let at = unix_ms();
        let claim = Claim {
            node: self.me.clone(),
            at,
            until: at + CLAIM_FOR.as_millis() as u64,
        };
        self.publish(format!("claim/{host}"), Some(&claim));
    }

    /// Serves `answer` for `host` on every node; returns once this node has
    /// read it back from the topic (the others read it as quickly).
    pub async fn open(&self, host: &str, answer: Answer) {
        self.publish(format!("challenge/{host}"), Some(&answer));
        for _ in 0..250 {
            let seen = self
                .shared
                .answers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(host)
                == Some(&answer);
            if seen {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(
            host,
            "the challenge did not come back through the certs topic in 5 s"
        );
    }

    /// Takes `host`'s challenge answer down on every node.
    pub fn close(&self, host: &str) {
        self.publish::<Answer>(format!("challenge/{host}"), None);
    }

    /// Hands the certificate issued here to every node and lets go of the
    /// claim.
    pub fn issued(&self, host: &str, chain: &str, key_pem: &str) {
        let issued = Issued {
            chain: chain.to_owned(),
            sealed_key: self.shared.seal(host, key_pem.as_bytes()),
        };
        self.publish(format!("cert/{host}"), Some(&issued));
        self.publish::<Claim>(format!("claim/{host}"), None);
    }
}

impl Shared {
    /// base64(nonce ‖ ciphertext ‖ tag) of `clear`, bound to `host`.
    fn seal(&self, host: &str, clear: &[u8]) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut sealed = clear.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(host.as_bytes()),
                &mut sealed,
            )
            .expect("AES-GCM seals any length we send");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        B64.encode(out)
    }

    fn unseal(&self, host: &str, sealed: &str) -> Result<Vec<u8>, String> {
        let bytes = B64
            .decode(sealed)
            .map_err(|_| "the sealed key is not base64".to_owned())?;
        if bytes.len() < NONCE_LEN {
            return Err("the sealed key is too short".into());
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce".to_owned())?;
        let mut rest = rest.to_vec();
        let clear = self
            .key
            .open_in_place(nonce, Aad::from(host.as_bytes()), &mut rest)
            .map_err(|_| {
                "cannot unseal the key: tls.acme.seal_key differs from the ordering node's"
                    .to_owned()
            })?;
        Ok(clear.to_vec())
    }

    fn apply_claim(&self, host: &str, claim: Option<Claim>) {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        match claim {
            None => {
                claims.remove(host);
            }
            Some(claim) => {
                // The first claim still live when this one was made keeps
                // the host; its own holder may renew it.
                let held = claims
                    .get(host)
                    .is_some_and(|c| c.node != claim.node && c.until > claim.at);
                if !held {
                    claims.insert(host.to_owned(), claim);
                }
            }
        }
    }

    fn apply_answer(&self, host: &str, answer: Option<Answer>) -> Result<(), String> {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        match answers.remove(host) {
            Some(Answer::TlsAlpn { .. }) => self.challenges.close_alpn(host),
            Some(Answer::Http { token, .. }) => self.challenges.close_http(&token),
            None => {}
        }
        let Some(answer) = answer else {
            return Ok(());
        };
        match &answer {
            Answer::TlsAlpn { digest } => {
                let digest = B64.decode(digest).map_err(|e| e.to_string())?;
                self.challenges.open_alpn(host, &digest)?;
            }
            Answer::Http {
                token,
                key_authorization,
            } => self.challenges.open_http(token, key_authorization),
        }
        answers.insert(host.to_owned(), answer);
        Ok(())
    }

    fn apply_cert(&self, host: &str, issued: Issued) -> Result<(), String> {
        let on_disk = std::fs::read_to_string(self.certs.dir().join(format!("{host}.crt"))).ok();
        if on_disk.as_deref() == Some(issued.chain.as_str()) {
            return Ok(());
        }
        let key = self.unseal(host, &issued.sealed_key)?;
        let key = String::from_utf8(key).map_err(|_| "the unsealed key is not PEM".to_owned())?;
        self.certs
            .write_pair(host, &key, &issued.chain)
            .map_err(|e| format!("cannot write the certificate: {e}"))?;
        crate::tls::reload_logged(&self.certs);
        tracing::info!(host, "certificate from another node written and served");
        Ok(())
    }
}

impl Replica for Shared {
    fn apply(&self, key: &str, value: Option<&[u8]>) -> Result<(), String> {
        let (kind, host) = key
            .split_once('/')
            .ok_or_else(|| format!("an unknown key {key:?}"))?;
        fn parse<'a, T: Deserialize<'a>>(value: Option<&'a [u8]>) -> Result<Option<T>, String> {
            value
                .map(|v| serde_json::from_slice(v).map_err(|e| e.to_string()))
                .transpose()
        }
        match kind {
            "claim" => {
                self.apply_claim(host, parse(value)?);
                Ok(())
            }
            "challenge" => self.apply_answer(host, parse(value)?),
            "cert" => match parse::<Issued>(value)? {
                Some(issued) => self.apply_cert(host, issued),
                None => Ok(()),
            },
            _ => Err(format!("an unknown key {key:?}")),
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(key: [u8; 32]) -> Shared {
        let dir = tempfile::tempdir().unwrap();
        let (certs, _) = CertStore::open(dir.path(), None, true).unwrap();
        Shared {
            claims: Mutex::default(),
            answers: Mutex::default(),
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap()),
            certs,
            challenges: Arc::default(),
        }
    }

    #[test]
    fn a_sealed_key_opens_only_with_the_same_key_and_host() {
        let a = shared([1; 32]);
        let sealed = a.seal("go.adp.test", b"-----BEGIN PRIVATE KEY-----");
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(
            a.unseal("go.adp.test", &sealed).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        assert!(
            a.unseal("go.other.test", &sealed).is_err(),
            "bound to its host"
        );
        let b = shared([2; 32]);
        assert!(
            b.unseal("go.adp.test", &sealed)
                .unwrap_err()
                .contains("tls.acme.seal_key differs")
        );
    }

    #[test]
    fn the_first_live_claim_in_topic_order_holds_until_it_lapses_or_is_released() {
        let s = shared([1; 32]);
        let claim = |node: &str, at: u64| Claim {
            node: node.into(),
            at,
            until: at + 600_000,
        };
        s.apply_claim("h", Some(claim("a", 1_000)));
        s.apply_claim("h", Some(claim("b", 1_001)));
        assert_eq!(s.claims.lock().unwrap()["h"].node, "a", "b came second");
        s.apply_claim("h", Some(claim("a", 2_000)));
        assert_eq!(
            s.claims.lock().unwrap()["h"].at,
            2_000,
            "its holder renews it"
        );
        s.apply_claim("h", Some(claim("b", 700_000)));
        assert_eq!(s.claims.lock().unwrap()["h"].node, "b", "a's had lapsed");
        s.apply_claim("h", None);
        assert!(s.claims.lock().unwrap().get("h").is_none());
    }
}
