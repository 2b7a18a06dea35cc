//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): the
//! `webhook-signature` value (the secrets' rules: `config::webhook`), `v1,<base64 HMAC-SHA256 of
//! "<id>.<timestamp>.<body>">` once per secret, space-separated, so that a
//! receiver holding either secret of a rotation accepts it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// An endpoint's signing keys; the first signs first.
#[derive(Clone)]
pub struct Secrets(Vec<Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} keys)", self.0.len())
    }
}

impl Secrets {
    /// Keys checked by `config::webhook`.
    pub fn new(keys: Vec<Vec<u8>>) -> Secrets {
        Secrets(keys)
    }

    /// The `webhook-signature` header value for one attempt.
    pub fn signature(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut out = String::with_capacity(self.0.len() * 48);
        for key in &self.0 {
            // A key of any length is valid for HMAC.
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
                continue;
            };
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("v1,");
            out.push_str(&STANDARD.encode(mac.finalize().into_bytes()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(list: &[&str]) -> Secrets {
        let mut c = crate::config::webhook::tests::config("t", "https://h.example/");
        c.secret = list.iter().map(|s| (*s).to_owned()).collect();
        Secrets::new(crate::config::webhook::check(&c).unwrap().keys)
    }

    /// The signature of the specification's own example (its secret, id,
    /// timestamp and body).
    #[test]
    fn the_specifications_example_signs_the_same() {
        let body = br#"{"test": 2432232314}"#;
        let one = secrets(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        assert_eq!(
            one.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let two = secrets(&[
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_KioqKioqKioqKioqKioqKioqKioqKioqKioqKio=",
        ]);
        let header = two.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert!(header.starts_with("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,"));
    }
}
