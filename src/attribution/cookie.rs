//! The signed attribution cookie. Its value is
//! `1.<click_id>.<issued_unix_seconds>.<signature>` where the signature is
//! HMAC-SHA256 (base64url, no padding) over the cookie name and the first three
//! fields. Several keys can verify; the first one signs, so keys rotate
//! without losing attribution.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ClickId;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "1";
/// Length of the base64url signature.
const SIG_LEN: usize = 43;
/// Longest cookie value we will look at; anything longer is malformed.
pub(super) const MAX_VALUE_LEN: usize = 128;

/// What a cookie sent with a request turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieCheck {
    /// No cookie of our name.
    Absent,
    /// Signed by one of our keys and inside the window.
    Valid { click_id: ClickId, issued_at: u64 },
    /// Not in our format.
    Malformed,
    /// In our format but not signed by any of our keys (tampered or foreign).
    BadSignature,
    /// Genuine but older than the attribution window.
    Expired,
}

impl CookieCheck {
    /// Label for the `refedge_cookies_total{result}` metric.
    pub fn label(&self) -> &'static str {
        match self {
            CookieCheck::Absent => "absent",
            CookieCheck::Valid { .. } => "valid",
            CookieCheck::Malformed => "malformed",
            CookieCheck::BadSignature => "bad_signature",
            CookieCheck::Expired => "expired",
        }
    }
}

/// Signs and verifies attribution cookies.
#[derive(Clone)]
pub struct CookieSigner {
    name: String,
    /// Keyed HMAC states that have already taken `name=`: cloning one is
    /// cheaper than keying anew, and every signature starts with those bytes.
    keys: Vec<HmacSha256>,
    window_secs: u64,
}

impl std::fmt::Debug for CookieSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSigner")
            .field("name", &self.name)
            .field("keys", &self.keys.len())
            .field("window_secs", &self.window_secs)
            .finish()
    }
}

impl CookieSigner {
    /// `secrets` must not be empty; the first one signs.
    pub fn new(name: &str, secrets: &[Vec<u8>], window_secs: u64) -> CookieSigner {
        let keys = secrets
            .iter()
            .map(|s| {
                let mut mac = HmacSha256::new_from_slice(s).expect("HMAC takes keys of any length");
                mac.update(name.as_bytes());
                mac.update(b"=");
                mac
            })
            .collect();
        CookieSigner {
            name: name.to_owned(),
            keys,
            window_secs,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn window_secs(&self) -> u64 {
        self.window_secs
    }

    fn mac(&self, key: &HmacSha256, payload: &[u8]) -> HmacSha256 {
        let mut mac = key.clone();
        mac.update(payload);
        mac
    }

    /// The cookie value for a click.
    pub fn sign(&self, click_id: &ClickId, issued_at: u64) -> String {
        let mut value = Vec::with_capacity(MAX_VALUE_LEN);
        self.sign_into(click_id, issued_at, &mut value);
        String::from_utf8(value).unwrap_or_default()
    }

    /// The length of the value `sign_into` writes for a click issued at
    /// `issued_at`.
    pub fn value_len(issued_at: u64) -> usize {
        let digits = issued_at.checked_ilog10().map_or(1, |d| d as usize + 1);
        VERSION.len() + 1 + super::click_id::CLICK_ID_LEN + 1 + digits + 1 + SIG_LEN
    }

    /// Appends the cookie value for a click, ASCII, to `out` (a
    /// `Set-Cookie` line being built, say).
    pub fn sign_into(&self, click_id: &ClickId, issued_at: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(VERSION.as_bytes());
        out.push(b'.');
        out.extend_from_slice(click_id.as_bytes());
        out.push(b'.');
        crate::sys::text::push_decimal(out, issued_at);
        let tag = self
            .mac(&self.keys[0], &out[start..])
            .finalize()
            .into_bytes();
        out.push(b'.');
        out.extend_from_slice(&tag_text(&tag.into()));
    }

    /// Checks a cookie value.
    pub fn verify(&self, value: &str, now: u64) -> CookieCheck {
        if value.len() > MAX_VALUE_LEN {
            return CookieCheck::Malformed;
        }
        let Some((payload, sig)) = value.rsplit_once('.') else {
            return CookieCheck::Malformed;
        };
        let mut fields = payload.split('.');
        let (Some(VERSION), Some(id), Some(issued), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return CookieCheck::Malformed;
        };
        let (Some(click_id), Ok(issued_at)) = (ClickId::parse(id), issued.parse::<u64>()) else {
            return CookieCheck::Malformed;
        };
        if sig.len() != SIG_LEN {
            return CookieCheck::Malformed;
        }
        let Ok(tag) = URL_SAFE_NO_PAD.decode(sig) else {
            return CookieCheck::Malformed;
        };
        let genuine = self
            .keys
            .iter()
            .any(|k| self.mac(k, payload.as_bytes()).verify_slice(&tag).is_ok());
        if !genuine {
            return CookieCheck::BadSignature;
        }
        // A cookie from the future (clock skew between nodes) is accepted.
        if now.saturating_sub(issued_at) >= self.window_secs {
            return CookieCheck::Expired;
        }
        CookieCheck::Valid {
            click_id,
            issued_at,
        }
    }

    /// Finds our cookie in the `Cookie` request headers and checks it. The
    /// first cookie of our name decides.
    pub fn check_headers<'a>(
        &self,
        headers: impl Iterator<Item = &'a [u8]>,
        now: u64,
    ) -> CookieCheck {
        for header in headers {
            for pair in header.split(|b| *b == b';') {
                let pair = pair.trim_ascii();
                let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                    continue;
                };
                if &pair[..eq] == self.name.as_bytes() {
                    let raw = pair[eq + 1..].trim_ascii();
                    let raw = raw
                        .strip_prefix(b"\"")
                        .and_then(|r| r.strip_suffix(b"\""))
                        .unwrap_or(raw);
                    return match crate::sys::text::str_of(raw) {
                        Ok(v) => self.verify(v, now),
                        Err(_) => CookieCheck::Malformed,
                    };
                }
            }
        }
        CookieCheck::Absent
    }
}

/// A tag in base64url without padding: 32 bytes are always 43 characters,
/// ten groups of three bytes and a last of two. By hand, because the
/// general encoder's set-up cost more than these steps.
fn tag_text(tag: &[u8; 32]) -> [u8; SIG_LEN] {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = [0u8; SIG_LEN];
    for (bytes, chars) in tag.chunks(3).zip(out.chunks_mut(4)) {
        let bits = bytes
            .iter()
            .enumerate()
            .fold(0u32, |bits, (k, &b)| bits | u32::from(b) << (16 - 8 * k));
        for (k, c) in chars.iter_mut().enumerate() {
            *c = ALPHABET[(bits >> (18 - 6 * k)) as usize & 63];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const WINDOW: u64 = 90 * 86_400;

    fn signer(secrets: &[&str]) -> CookieSigner {
        let s: Vec<Vec<u8>> = secrets.iter().map(|s| s.as_bytes().to_vec()).collect();
        CookieSigner::new("rf_ref", &s, WINDOW)
    }

    #[test]
    fn value_len_is_the_length_of_the_value() {
        let s = signer(&["k"]);
        let id = ClickId::new(1_700_000_000_000);
        for issued in [0, 9, 10, 99, NOW, u64::MAX] {
            assert_eq!(
                CookieSigner::value_len(issued),
                s.sign(&id, issued).len(),
                "{issued}"
            );
        }
    }

    #[test]
    fn tags_are_written_as_the_base64_crate_writes_them() {
        let mut tag = [0u8; 32];
        for n in 0..2000u32 {
            for (i, b) in tag.iter_mut().enumerate() {
                *b = (n.wrapping_mul(2_654_435_761).rotate_left(i as u32) >> 7) as u8 ^ i as u8;
            }
            tag[(n % 32) as usize] = [0, 0xff, 0x3e, 0x3f][(n % 4) as usize];
            assert_eq!(
                tag_text(&tag).as_slice(),
                URL_SAFE_NO_PAD.encode(tag).as_bytes()
            );
        }
    }

    /// The signature is the contract's, as the `hmac` and `base64` crates
    /// make it from scratch: HMAC-SHA256 over `name=` and the first three
    /// fields.
    #[test]
    fn the_signature_is_hmac_sha256_over_the_name_and_the_fields() {
        let s = signer(&["key-one-0123456789"]);
        let id = ClickId::new(NOW * 1000);
        let value = s.sign(&id, NOW);
        let (payload, sig) = value.rsplit_once('.').unwrap();
        assert_eq!(payload, format!("1.{}.{NOW}", id.as_str()));
        let mut mac = HmacSha256::new_from_slice(b"key-one-0123456789").unwrap();
        mac.update(format!("rf_ref={payload}").as_bytes());
        assert_eq!(sig, URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    }

    #[test]
    fn sign_then_verify() {
        let s = signer(&["key-one-0123456789"]);
        let id = ClickId::new(NOW * 1000);
        let v = s.sign(&id, NOW);
        assert_eq!(
            s.verify(&v, NOW + 5),
            CookieCheck::Valid {
                click_id: id,
                issued_at: NOW
            }
        );
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{v}"
        );
    }

    #[test]
    fn tampering_is_detected() {
        let s = signer(&["key-one-0123456789"]);
        let id = ClickId::new(NOW * 1000);
        let v = s.sign(&id, NOW);
        let other = ClickId::new(NOW * 1000);
        let swapped_id = v.replacen(id.as_str(), other.as_str(), 1);
        assert_eq!(s.verify(&swapped_id, NOW), CookieCheck::BadSignature);
        let newer = v.replacen(&format!(".{NOW}."), &format!(".{}.", NOW + 1), 1);
        assert_ne!(newer, v);
        assert_eq!(s.verify(&newer, NOW), CookieCheck::BadSignature);
        // Flip the signature's first character: every character there carries
        // six bits of the tag, so any change stays valid base64 (the last one
        // carries padding bits, and changing those is a malformed value).
        let mut flipped = v.clone().into_bytes();
        let first = v.rfind('.').unwrap() + 1;
        flipped[first] = if flipped[first] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            s.verify(std::str::from_utf8(&flipped).unwrap(), NOW),
            CookieCheck::BadSignature
        );
    }

    #[test]
    fn a_changed_last_character_is_refused_whatever_it_carries() {
        // Found by CI: a flip of the last character was sometimes read as a
        // malformed value (non-zero padding bits) and sometimes as a bad
        // signature. Either way the cookie must never verify.
        let s = signer(&["key-one-0123456789"]);
        for n in 0..200 {
            let v = s.sign(&ClickId::new(NOW * 1000 + n), NOW);
            for c in [b'A', b'B', b'Q', b'g', b'-', b'_'] {
                let mut changed = v.clone().into_bytes();
                let last = changed.len() - 1;
                if changed[last] == c {
                    continue;
                }
                changed[last] = c;
                let check = s.verify(std::str::from_utf8(&changed).unwrap(), NOW);
                assert!(
                    matches!(check, CookieCheck::BadSignature | CookieCheck::Malformed),
                    "{check:?}"
                );
            }
        }
    }

    #[test]
    fn another_name_or_key_does_not_verify() {
        let a = signer(&["key-one-0123456789"]);
        let b = signer(&["key-two-0123456789"]);
        let v = a.sign(&ClickId::new(1), NOW);
        assert_eq!(b.verify(&v, NOW), CookieCheck::BadSignature);
        let renamed = CookieSigner::new("other", &[b"key-one-0123456789".to_vec()], WINDOW);
        assert_eq!(renamed.verify(&v, NOW), CookieCheck::BadSignature);
    }

    #[test]
    fn rotation_keeps_old_cookies_valid() {
        let old = signer(&["key-old-0123456789"]);
        let rotated = signer(&["key-new-0123456789", "key-old-0123456789"]);
        let id = ClickId::new(1);
        let v = old.sign(&id, NOW);
        assert!(matches!(rotated.verify(&v, NOW), CookieCheck::Valid { .. }));
        let fresh = rotated.sign(&id, NOW);
        assert_ne!(fresh, v, "the first key signs");
        assert_eq!(old.verify(&fresh, NOW), CookieCheck::BadSignature);
    }

    #[test]
    fn expiry_follows_the_window() {
        let s = signer(&["key-one-0123456789"]);
        let v = s.sign(&ClickId::new(1), NOW);
        assert!(matches!(
            s.verify(&v, NOW + WINDOW - 1),
            CookieCheck::Valid { .. }
        ));
        assert_eq!(s.verify(&v, NOW + WINDOW), CookieCheck::Expired);
    }

    #[test]
    fn malformed_values() {
        let s = signer(&["key-one-0123456789"]);
        let good = s.sign(&ClickId::new(1), NOW);
        for v in [
            "",
            "x",
            "1.2.3.4",
            &good.replacen('1', "2", 1),
            &format!("{good}.extra"),
            &"a".repeat(4096),
            "1.0000000000000000000000.1.AAAA",
        ] {
            assert_eq!(s.verify(v, NOW), CookieCheck::Malformed, "{v:?}");
        }
    }

    #[test]
    fn cookie_header_parsing() {
        let s = signer(&["key-one-0123456789"]);
        let v = s.sign(&ClickId::new(1), NOW);
        let header = format!("a=b; rf_ref={v}; c=d");
        assert!(matches!(
            s.check_headers([header.as_bytes()].into_iter(), NOW),
            CookieCheck::Valid { .. }
        ));
        let quoted = format!("rf_ref=\"{v}\"");
        assert!(matches!(
            s.check_headers([quoted.as_bytes()].into_iter(), NOW),
            CookieCheck::Valid { .. }
        ));
        assert_eq!(
            s.check_headers([b"rf_refx=1; a=2".as_slice()].into_iter(), NOW),
            CookieCheck::Absent
        );
        assert_eq!(
            s.check_headers([b"rf_ref=\xff".as_slice()].into_iter(), NOW),
            CookieCheck::Malformed
        );
        assert_eq!(
            s.check_headers(std::iter::empty(), NOW),
            CookieCheck::Absent
        );
        assert_eq!(
            s.check_headers([b";;;=;=x; rf_ref".as_slice()].into_iter(), NOW),
            CookieCheck::Absent
        );
    }
}
