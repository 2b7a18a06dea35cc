//! Event times as every event and record writes them: RFC 3339 UTC with
//! milliseconds, kept inline and written digit by digit.

use std::cell::Cell;

use serde::Serialize;
use time::OffsetDateTime;

/// An event time as written: RFC 3339 UTC with milliseconds, kept inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Timestamp([u8; 24]);

impl Timestamp {
    /// An RFC 3339 time (an event's `*_at` field) in Unix milliseconds (0
    /// when it does not parse).
    pub fn parse_millis(rfc3339: &str) -> u64 {
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
            .map_or(0, |t| (t.unix_timestamp_nanos() / 1_000_000) as u64)
    }

    /// The time `unix_ms` milliseconds after the epoch (UTC).
    pub fn from_millis(unix_ms: u64) -> Timestamp {
        thread_local! {
            /// The last second written and its text: events come in time
            /// order, so most share their second with the one before.
            static LAST_SECOND: Cell<Option<(u64, Timestamp)>> = const { Cell::new(None) };
        }
        let second = unix_ms / 1000;
        let mut out = match LAST_SECOND.get() {
            Some((last, text)) if last == second => text.0,
            _ => {
                let text = Timestamp::of_second(second);
                LAST_SECOND.set(Some((second, text)));
                text.0
            }
        };
        put_digits(&mut out[20..23], (unix_ms % 1000) as u32);
        Timestamp(out)
    }

    /// The whole second `unix_secs`, with `.000` milliseconds.
    fn of_second(unix_secs: u64) -> Timestamp {
        let t = OffsetDateTime::from_unix_timestamp(i64::try_from(unix_secs).unwrap_or(0))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        // Digits written by hand: `format!` with seven padded integers was a
        // visible part of the writer's time per event.
        let mut out = *b"0000-00-00T00:00:00.000Z";
        // `time` keeps years within 0..=9999 here (no large-dates feature).
        put_digits(&mut out[0..4], t.year().clamp(0, 9999) as u32);
        put_digits(&mut out[5..7], u32::from(u8::from(t.month())));
        put_digits(&mut out[8..10], u32::from(t.day()));
        put_digits(&mut out[11..13], u32::from(t.hour()));
        put_digits(&mut out[14..16], u32::from(t.minute()));
        put_digits(&mut out[17..19], u32::from(t.second()));
        Timestamp(out)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written into it.
        std::str::from_utf8(&self.0).unwrap_or("1970-01-01T00:00:00.000Z")
    }
}

/// `n` in decimal, zero-padded to fill `out`.
fn put_digits(out: &mut [u8], mut n: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl super::line::JsonValue for Timestamp {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        out.extend_from_slice(&self.0);
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_millis(unix_ms: u64) -> String {
        Timestamp::from_millis(unix_ms).as_str().to_owned()
    }

    #[test]
    fn millis_format() {
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_millis(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(
            format_millis(253_402_300_799_000),
            "9999-12-31T23:59:59.000Z"
        );
        // Agrees with the `time` crate's own RFC 3339 output to the millisecond.
        for ms in (0..4_000_000_000_000u64).step_by(7_919_999_999) {
            let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            let theirs = t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            let ours = format_millis(ms);
            assert_eq!(ours[..19], theirs[..19], "{ms}");
            assert!(ours.ends_with(&format!(".{:03}Z", ms % 1000)), "{ours}");
        }
    }

    #[test]
    fn the_remembered_second_gives_way_to_the_next_and_to_an_earlier_one() {
        // Milliseconds within one second, across its end, and back in time
        // (a clock stepped back): each as if no second had been remembered.
        let base = 1_700_000_000_000u64;
        for ms in [
            base + 1,
            base + 999,
            base + 1_000,
            base + 999,
            base - 1,
            base + 86_400_000,
        ] {
            let fresh = Timestamp::of_second(ms / 1000);
            let mut expected = fresh.as_str().to_owned();
            expected.replace_range(20..23, &format!("{:03}", ms % 1000));
            assert_eq!(format_millis(ms), expected, "{ms}");
        }
        assert_eq!(format_millis(base - 1), "2023-11-14T22:13:19.999Z");
    }
}
