//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): an
//! endpoint's secrets (`whsec_` and the key in base64) and the
//! `webhook-signature` value, `v1,<base64 HMAC-SHA256 of
//! "<id>.<timestamp>.<body>">` once per secret, space-separated, so that a
//! receiver holding either secret of a rotation accepts it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// An endpoint's signing keys; the first signs first.
#[derive(Clone)]
pub struct Secrets(Vec<Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} keys)", self.0.len())
    }
}

impl Secrets {
    /// Each `whsec_<base64>`, its key 24 to 64 bytes (the specification's
    /// range); the error says which one is wrong, never its value.
    pub fn parse(list: &[String]) -> Result<Secrets, String> {
        if list.is_empty() {
            return Err("is required: whsec_ and a base64 key".into());
        }
        let mut keys = Vec::with_capacity(list.len());
        for (i, secret) in list.iter().enumerate() {
            let n = i + 1;
            let Some(encoded) = secret.strip_prefix(PREFIX) else {
                return Err(format!("secret {n} does not start with {PREFIX}"));
            };
            let key = STANDARD
                .decode(encoded)
                .map_err(|_| format!("secret {n} is not base64 after {PREFIX}"))?;
            if !(24..=64).contains(&key.len()) {
                return Err(format!(
                    "secret {n} is a {}-byte key; 24 to 64 bytes are needed",
                    key.len()
                ));
            }
            keys.push(key);
        }
        Ok(Secrets(keys))
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

    #[test]
    fn secrets_are_checked_without_showing_them() {
        let key = STANDARD.encode([7u8; 32]);
        assert!(Secrets::parse(&[format!("whsec_{key}")]).is_ok());
        assert!(Secrets::parse(&[]).is_err());
        for (bad, why) in [
            (key.clone(), "does not start"),
            ("whsec_!!!".to_owned(), "not base64"),
            (format!("whsec_{}", STANDARD.encode([1u8; 8])), "8-byte key"),
        ] {
            let err = Secrets::parse(&[format!("whsec_{key}"), bad.clone()]).unwrap_err();
            assert!(err.starts_with("secret 2") && err.contains(why), "{err}");
            assert!(!err.contains(&bad), "{err}");
        }
    }

    /// The signature of the specification's own example (its secret, id,
    /// timestamp and body).
    #[test]
    fn the_specifications_example_signs_the_same() {
        let secrets =
            Secrets::parse(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()]).unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secrets.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let two = Secrets::parse(&[
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            format!("whsec_{}", STANDARD.encode([9u8; 24])),
        ])
        .unwrap();
        let header = two.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert!(header.starts_with("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,"));
    }
}
