//! Text the edge builds or keeps as ASCII, made a `&str` or a header value
//! after one quick pass (sixteen bytes at a time with SSE2),
//! and the JSON writer's escape scan: `str::from_utf8` on short strings and
//! `http`'s byte-at-a-time header check were visible parts of a click.

use bytes::Bytes;
use http::HeaderValue;
use http::header::InvalidHeaderValue;

/// `bytes` as text: what `std::str::from_utf8` gives, ASCII (a click id, a
/// link's target, most user agents) found faster.
#[inline]
pub fn str_of(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    if is_ascii(bytes) {
        // SAFETY: ASCII is valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes)
    }
}

/// `bytes` as text when they are ASCII (what `HeaderValue::to_str` accepts
/// of a header value, found a word at a time rather than byte by byte).
#[inline]
pub fn ascii_str(bytes: &[u8]) -> Option<&str> {
    // SAFETY: ASCII is valid UTF-8.
    is_ascii(bytes).then(|| unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// Whether no byte of `bytes` is bad, sixteen at a time with SSE2 (every
/// x86-64 CPU has it): `bad` gives a chunk's mask, its top bit set in each
/// bad byte's lane, and the masks are ORed and tested once at the end. The
/// last sixteen bytes overlap the chunk before (looked at twice, which
/// changes no answer); under sixteen, the bytes are padded with `b'a'`,
/// which no test calls bad.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn none_bad(
    bytes: &[u8],
    bad: impl Fn(std::arch::x86_64::__m128i) -> std::arch::x86_64::__m128i,
) -> bool {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86-64; every load is an unaligned load of
    // 16 bytes from within `bytes` or from a local array.
    unsafe {
        let mut found = _mm_setzero_si128();
        let mut chunks = bytes.chunks_exact(16);
        for chunk in &mut chunks {
            found = _mm_or_si128(found, bad(_mm_loadu_si128(chunk.as_ptr().cast())));
        }
        let rest = chunks.remainder();
        if bytes.len() >= 16 && !rest.is_empty() {
            let last = _mm_loadu_si128(bytes[bytes.len() - 16..].as_ptr().cast());
            found = _mm_or_si128(found, bad(last));
        } else if !rest.is_empty() {
            let mut last = [b'a'; 16];
            last[..rest.len()].copy_from_slice(rest);
            found = _mm_or_si128(found, bad(_mm_loadu_si128(last.as_ptr().cast())));
        }
        _mm_movemask_epi8(found) == 0
    }
}

/// Whether every byte is ASCII: `<[u8]>::is_ascii`, sixteen bytes at a
/// time (std's goes a byte at a time over a user agent's hundred bytes).
#[inline]
pub fn is_ascii(bytes: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // A byte's own top bit marks it non-ASCII.
        none_bad(bytes, |v| v)
    }
    #[cfg(not(target_arch = "x86_64"))]
    bytes.is_ascii()
}

/// Whether every byte is visible ASCII or a space (0x20–0x7E): a subset
/// of what a header value may hold.
#[inline]
fn printable_ascii(bytes: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86-64.
        none_bad(bytes, |v| unsafe {
            // Signed, 0x20..=0x7F are the bytes over 0x1F; then not 0x7F.
            let printable = _mm_cmpgt_epi8(v, _mm_set1_epi8(0x1f));
            let del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
            _mm_or_si128(_mm_andnot_si128(printable, _mm_set1_epi8(-1)), del)
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    bytes.iter().all(|&b| (0x20..=0x7e).contains(&b))
}

/// Whether JSON writes `bytes` as they are inside a string: no quote, no
/// backslash, no control character (below 0x20).
#[inline]
pub fn json_plain(bytes: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86-64.
        none_bad(bytes, |v| unsafe {
            // Unsigned, a byte below 0x20 is its own minimum with 0x1F.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            _mm_or_si128(control, _mm_or_si128(quote, backslash))
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    bytes.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Appends `n` in decimal, two digits a step from a table of the hundred
/// pairs (a division by 100 where there were two by 10).
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    const PAIRS: [u8; 200] = {
        let mut table = [0u8; 200];
        let mut i = 0;
        while i < 100 {
            table[2 * i] = b'0' + (i / 10) as u8;
            table[2 * i + 1] = b'0' + (i % 10) as u8;
            i += 1;
        }
        table
    };
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[n as usize * 2..n as usize * 2 + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[at..]);
}

/// `bytes` as a header value, as `HeaderValue::from_maybe_shared` would
/// give it (the same value, the same error), without copying them; their
/// spare capacity is given back first, so that `Bytes` takes the block as
/// it is instead of allocating a header to share it.
pub fn header_value(bytes: Vec<u8>) -> Result<HeaderValue, InvalidHeaderValue> {
    let bytes = Bytes::from(bytes.into_boxed_slice());
    if printable_ascii(&bytes) {
        // SAFETY: `from_maybe_shared_unchecked` asks only that the bytes be
        // valid in a header value; printable ASCII is (RFC 9110 §5.5:
        // VCHAR and SP). In debug builds `http` checks them again.
        Ok(unsafe { HeaderValue::from_maybe_shared_unchecked(bytes) })
    } else {
        // Tabs, obs-text and the invalid: `http`'s own check decides.
        HeaderValue::from_maybe_shared(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls `check` with every byte at every position of every length
    /// from 1 to 33 (two chunks and a tail), the other bytes each of `fills`.
    fn each_placement(fills: [u8; 3], mut check: impl FnMut(Vec<u8>, &str)) {
        for b in 0..=255u8 {
            for len in 1..=33 {
                for at in 0..len {
                    for fill in fills {
                        let mut bytes = vec![fill; len];
                        bytes[at] = b;
                        check(bytes, &format!("byte {b:#04x} at {at} of {len}"));
                    }
                }
            }
        }
    }

    #[test]
    fn agrees_with_http_on_every_byte_at_every_position() {
        each_placement([b'a', 0x20, 0x7e], |bytes, place| {
            let ours = header_value(bytes.clone());
            let theirs = HeaderValue::from_maybe_shared(Bytes::from(bytes));
            assert_eq!(ours.ok(), theirs.ok(), "{place}");
        });
        assert_eq!(
            header_value(Vec::new()).ok(),
            Some(HeaderValue::from_static(""))
        );
    }

    #[test]
    fn push_decimal_is_display() {
        let mut cases: Vec<u64> = (0..=1_000).collect();
        cases.extend([
            9_999,
            10_000,
            99_999,
            1_800_000_000,
            1_799_999_999,
            u64::MAX - 1,
            u64::MAX,
        ]);
        cases.extend((0..20).map(|p| 10u64.pow(p)));
        cases.extend((1..20).map(|p| 10u64.pow(p) - 1));
        for n in cases {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn json_plain_is_exact_for_every_byte_at_every_position() {
        assert!(json_plain(b""));
        each_placement([b'a', 0xff, 0x20], |bytes, place| {
            let plain = bytes.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\');
            assert_eq!(json_plain(&bytes), plain, "{place}");
        });
    }

    #[test]
    fn is_ascii_is_std_for_every_byte_at_every_position() {
        assert!(is_ascii(b""));
        each_placement([b'a', 0x00, 0x7f], |bytes, place| {
            assert_eq!(is_ascii(&bytes), bytes.is_ascii(), "{place}");
        });
    }

    #[test]
    fn ascii_str_is_to_str_on_header_values() {
        for b in 0..=255u8 {
            let Ok(value) = HeaderValue::from_bytes(&[b'a', b, b'z']) else {
                continue;
            };
            assert_eq!(ascii_str(value.as_bytes()), value.to_str().ok(), "{b:#04x}");
        }
    }

    #[test]
    fn str_of_agrees_with_from_utf8() {
        let texts: [&[u8]; 6] = [
            b"",
            b"plain ascii",
            "é ✓ 😀".as_bytes(),
            b"\xff",
            b"ok\xc3",
            b"\x7f\x00",
        ];
        for bytes in texts {
            assert_eq!(str_of(bytes), std::str::from_utf8(bytes));
        }
    }
}
