//! Click ids: a UUIDv7 (48-bit millisecond timestamp, then random bits)
//! written as 22 base62 characters, left-padded with `0` so that ids sort by
//! time as strings too.

use std::fmt;

use rand::RngCore;

/// Length of a click id in characters.
pub const CLICK_ID_LEN: usize = 22;

/// A click id. Stored as its 22 ASCII characters so that it goes into headers
/// and events without formatting.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClickId([u8; CLICK_ID_LEN]);

impl ClickId {
    /// A new id for a click that happened at `unix_ms`.
    pub fn new(unix_ms: u64) -> ClickId {
        let mut random = [0u8; 10];
        rand::rng().fill_bytes(&mut random);
        ClickId::from_parts(unix_ms, random)
    }

    /// Builds the UUIDv7 from its timestamp and 80 random bits (of which 74 are
    /// used: 6 bits are the version and variant).
    pub fn from_parts(unix_ms: u64, random: [u8; 10]) -> ClickId {
        let rand_a = u128::from(u16::from_be_bytes([random[0], random[1]]) & 0x0fff);
        let mut rb = [0u8; 8];
        rb.copy_from_slice(&random[2..10]);
        let rand_b = u128::from(u64::from_be_bytes(rb) & 0x3fff_ffff_ffff_ffff);
        let value = (u128::from(unix_ms & 0xffff_ffff_ffff) << 80)
            | (0x7u128 << 76)
            | (rand_a << 64)
            | (0b10u128 << 62)
            | rand_b;
        ClickId::from_u128(value)
    }

    fn from_u128(value: u128) -> ClickId {
        let mut digits = [0u8; CLICK_ID_LEN];
        let len = base62::encode_bytes(value, &mut digits).unwrap_or(0);
        let mut out = [b'0'; CLICK_ID_LEN];
        out[CLICK_ID_LEN - len..].copy_from_slice(&digits[..len]);
        ClickId(out)
    }

    /// Parses 22 base62 characters that decode to a UUIDv7.
    pub fn parse(s: &str) -> Option<ClickId> {
        ClickId::check(s).ok()
    }

    /// `parse`, saying what is wrong with text that is not a click id.
    pub fn check(s: &str) -> Result<ClickId, String> {
        if s.len() != CLICK_ID_LEN {
            return Err(format!(
                "not a click id: {} characters, expected {CLICK_ID_LEN}",
                s.chars().count()
            ));
        }
        let value = base62::decode(s).map_err(|_| {
            "not a click id: expected base62 (0-9, A-Z, a-z) of a 128-bit UUID".to_owned()
        })?;
        let version = (value >> 76) & 0xf;
        if version != 7 {
            return Err(format!(
                "not a click id: version {version}, expected a UUIDv7"
            ));
        }
        if (value >> 62) & 0b11 != 0b10 {
            return Err("not a click id: not an RFC 9562 variant UUID".to_owned());
        }
        let mut out = [0u8; CLICK_ID_LEN];
        out.copy_from_slice(s.as_bytes());
        Ok(ClickId(out))
    }

    pub fn as_str(&self) -> &str {
        // Only ever holds ASCII base62 digits.
        crate::sys::text::str_of(&self.0).unwrap_or("")
    }

    /// The 22 ASCII characters, for writers of bytes (no UTF-8 check).
    pub fn as_bytes(&self) -> &[u8; CLICK_ID_LEN] {
        &self.0
    }

    /// The UUID this id encodes, as a number.
    pub fn as_u128(&self) -> u128 {
        base62::decode(self.0).unwrap_or(0)
    }

    /// The millisecond timestamp inside the id.
    pub fn unix_ms(&self) -> u64 {
        (self.as_u128() >> 80) as u64
    }
}

impl fmt::Display for ClickId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ClickId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClickId({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_22_chars_and_round_trip() {
        let id = ClickId::new(1_700_000_000_000);
        assert_eq!(id.as_str().len(), 22);
        assert_eq!(ClickId::parse(id.as_str()), Some(id));
        assert_eq!(id.unix_ms(), 1_700_000_000_000);
        let uuid = id.as_u128();
        assert_eq!((uuid >> 76) & 0xf, 7, "version 7");
        assert_eq!((uuid >> 62) & 0b11, 0b10, "RFC 4122 variant");
    }

    #[test]
    fn small_values_are_left_padded() {
        let id = ClickId::from_parts(0, [0; 10]);
        assert_eq!(id.as_str().len(), 22);
        assert!(id.as_str().starts_with('0'));
        assert_eq!(ClickId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn ids_sort_by_time_as_strings() {
        let mut last = ClickId::from_parts(1, [0xff; 10]);
        for ms in [
            2u64,
            1_000,
            1_700_000_000_000,
            1_700_000_000_001,
            0xffff_ffff_ffff,
        ] {
            let next = ClickId::from_parts(ms, [0; 10]);
            assert!(next.as_str() > last.as_str(), "{next} after {last}");
            last = ClickId::from_parts(ms, [0xff; 10]);
        }
    }

    #[test]
    fn ids_are_unique() {
        let ids: std::collections::HashSet<ClickId> =
            (0..10_000).map(|_| ClickId::new(5)).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn garbage_is_not_an_id() {
        assert_eq!(ClickId::parse(""), None);
        assert_eq!(ClickId::parse("!!!!!!!!!!!!!!!!!!!!!!"), None);
        assert_eq!(
            ClickId::parse("0000000000000000000000"),
            None,
            "not a v7 uuid"
        );
        assert_eq!(
            ClickId::parse("zzzzzzzzzzzzzzzzzzzzzz"),
            None,
            "overflows 128 bits"
        );
    }

    #[test]
    fn text_that_is_no_click_id_is_told_what_is_wrong() {
        // The README's old sample: 22 characters, but version 14.
        assert_eq!(
            ClickId::check("0354QjHxqqxBZ1lyB7NZtb").unwrap_err(),
            "not a click id: version 14, expected a UUIDv7"
        );
        assert_eq!(
            ClickId::check("abc").unwrap_err(),
            "not a click id: 3 characters, expected 22"
        );
        assert!(
            ClickId::check("zzzzzzzzzzzzzzzzzzzzzz")
                .unwrap_err()
                .contains("base62")
        );
        assert!(
            ClickId::check("0354QjHxqqxBZ1lyB7NZt!")
                .unwrap_err()
                .contains("base62")
        );
        let id = ClickId::new(1_790_000_000_000);
        assert_eq!(ClickId::check(id.as_str()), Ok(id));
    }
}
