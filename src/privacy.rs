//! What of the client address an event keeps (`privacy.ip`): all of it, its
//! network (IPv4 /24, IPv6 /48), a keyed hash that changes every UTC day (so
//! clicks can be told apart within a day but not followed across days, and
//! nobody without the key can test a guess), or nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::IpPrivacy;

type HmacSha256 = Hmac<Sha256>;

/// Applies the configured policy to client addresses.
#[derive(Clone)]
pub struct IpPolicy {
    mode: IpPrivacy,
    key: Vec<u8>,
    /// The day and keyed state for that day, cached by the (single) writer.
    day_key: Option<(u64, HmacSha256)>,
}

impl std::fmt::Debug for IpPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpPolicy")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl IpPolicy {
    /// `key` is secret material for `hash` mode.
    pub fn new(mode: IpPrivacy, key: &[u8]) -> IpPolicy {
        IpPolicy {
            mode,
            key: key.to_vec(),
            day_key: None,
        }
    }

    /// The address as an event keeps it, for a click at `unix_ms`.
    pub fn apply(&mut self, ip: IpAddr, unix_ms: u64) -> Option<String> {
        match self.mode {
            IpPrivacy::Full => Some(ip_text(ip)),
            IpPrivacy::Truncate => Some(ip_text(truncate(ip))),
            IpPrivacy::Drop => None,
            IpPrivacy::Hash => Some(self.hash(ip, unix_ms / 86_400_000)),
        }
    }

    fn hash(&mut self, ip: IpAddr, day: u64) -> String {
        let key = match &self.day_key {
            Some((d, k)) if *d == day => k.clone(),
            _ => {
                let mut derive = HmacSha256::new_from_slice(&self.key).expect("any key length");
                derive.update(b"refedge ip hash day ");
                derive.update(&day.to_be_bytes());
                let day_secret = derive.finalize().into_bytes();
                let k = HmacSha256::new_from_slice(&day_secret).expect("any key length");
                self.day_key = Some((day, k.clone()));
                k
            }
        };
        let mut mac = key;
        match ip {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        let digest = mac.finalize().into_bytes();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(32);
        for b in &digest[..16] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }
}

/// The address as text. IPv4 is written digit by digit (the generic
/// formatter was a visible part of the writer's time per event); IPv6 goes
/// through `Display` for its zero compression.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
    out
}

/// IPv4 to its /24, IPv6 to its /48.
pub fn truncate(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ip_text_matches_display() {
        for a in [0u8, 1, 9, 10, 99, 100, 109, 110, 199, 200, 255] {
            for b in [0u8, 7, 42, 250] {
                let v4 = IpAddr::V4(Ipv4Addr::new(a, b, 255 - a, b.wrapping_mul(a)));
                assert_eq!(ip_text(v4), v4.to_string());
            }
        }
        let v6 = ip("2001:db8::1");
        assert_eq!(ip_text(v6), "2001:db8::1");
    }

    #[test]
    fn modes() {
        let addr = ip("203.0.113.77");
        assert_eq!(
            IpPolicy::new(IpPrivacy::Full, b"k").apply(addr, 0).unwrap(),
            "203.0.113.77"
        );
        assert_eq!(
            IpPolicy::new(IpPrivacy::Truncate, b"k")
                .apply(addr, 0)
                .unwrap(),
            "203.0.113.0"
        );
        assert_eq!(IpPolicy::new(IpPrivacy::Drop, b"k").apply(addr, 0), None);
        assert_eq!(
            IpPolicy::new(IpPrivacy::Truncate, b"k")
                .apply(ip("2001:db8:aaaa:bbbb::1"), 0)
                .unwrap(),
            "2001:db8:aaaa::"
        );
    }

    #[test]
    fn hash_is_keyed_and_rotates_daily() {
        let mut p = IpPolicy::new(IpPrivacy::Hash, b"secret-one");
        let a = p.apply(ip("203.0.113.77"), 5).unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(
            p.apply(ip("203.0.113.77"), DAY_MS - 1).unwrap(),
            a,
            "same day, same hash"
        );
        assert_ne!(p.apply(ip("203.0.113.78"), 5).unwrap(), a);
        assert_ne!(
            p.apply(ip("203.0.113.77"), DAY_MS).unwrap(),
            a,
            "next day, new hash"
        );
        let mut other = IpPolicy::new(IpPrivacy::Hash, b"secret-two");
        assert_ne!(other.apply(ip("203.0.113.77"), 5).unwrap(), a, "keyed");
        assert!(!a.contains("203"));
        // The first 16 bytes of HMAC(HMAC(key, "refedge ip hash day " + day), address), in hex.
        let mut derive = HmacSha256::new_from_slice(b"secret-one").unwrap();
        derive.update(b"refedge ip hash day ");
        derive.update(&0u64.to_be_bytes());
        let mut mac = HmacSha256::new_from_slice(&derive.finalize().into_bytes()).unwrap();
        mac.update(&[203, 0, 113, 77]);
        let expected: String = mac.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(a, expected);
    }
}
