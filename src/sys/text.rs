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

/// Byte ranges checked sixteen bytes at a time with SSE2 (every x86-64
/// CPU has it): whether every byte lies in `lo..=hi` and none equals one
/// of `not` (a repeated byte means none). The tail is padded with `lo`.
#[cfg(target_arch = "x86_64")]
#[inline]
fn all_within(bytes: &[u8], lo: u8, hi: u8, not: [u8; 2]) -> bool {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86-64; every load is an unaligned load of
    // 16 bytes from within `bytes` or from a local array.
    unsafe {
        let (lo_v, hi_v) = (_mm_set1_epi8(lo as i8), _mm_set1_epi8(hi as i8));
        let (not0, not1) = (_mm_set1_epi8(not[0] as i8), _mm_set1_epi8(not[1] as i8));
        let mut inside = _mm_set1_epi8(-1);
        let mut banned = _mm_setzero_si128();
        let mut check = |v: __m128i| {
            // v >= lo and v <= hi, unsigned: max(v, lo) == v == min(v, hi).
            let ge = _mm_cmpeq_epi8(_mm_max_epu8(v, lo_v), v);
            let le = _mm_cmpeq_epi8(_mm_min_epu8(v, hi_v), v);
            inside = _mm_and_si128(inside, _mm_and_si128(ge, le));
            banned = _mm_or_si128(
                banned,
                _mm_or_si128(_mm_cmpeq_epi8(v, not0), _mm_cmpeq_epi8(v, not1)),
            );
        };
        let mut chunks = bytes.chunks_exact(16);
        for chunk in &mut chunks {
            check(_mm_loadu_si128(chunk.as_ptr().cast()));
        }
        let rest = chunks.remainder();
        if bytes.len() >= 16 && !rest.is_empty() {
            // The last sixteen bytes, overlapping the chunk before: looked
            // at twice, which changes no answer, and copied never.
            check(_mm_loadu_si128(bytes[bytes.len() - 16..].as_ptr().cast()));
        } else if !rest.is_empty() {
            let mut last = [lo; 16];
            last[..rest.len()].copy_from_slice(rest);
            check(_mm_loadu_si128(last.as_ptr().cast()));
        }
        _mm_movemask_epi8(inside) == 0xffff && _mm_movemask_epi8(banned) == 0
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn all_within(bytes: &[u8], lo: u8, hi: u8, not: [u8; 2]) -> bool {
    bytes
        .iter()
        .all(|&b| (lo..=hi).contains(&b) && b != not[0] && b != not[1])
}

/// Whether every byte is ASCII: `<[u8]>::is_ascii`, sixteen bytes at a
/// time (std's goes a byte at a time over a user agent's hundred bytes).
#[inline]
pub fn is_ascii(bytes: &[u8]) -> bool {
    all_within(bytes, 0x00, 0x7f, [0x80, 0x80])
}

/// Whether every byte is visible ASCII or a space (0x20–0x7E): a subset
/// of what a header value may hold.
#[inline]
fn printable_ascii(bytes: &[u8]) -> bool {
    all_within(bytes, 0x20, 0x7e, [0x20, 0x20])
}

/// Whether JSON writes `bytes` as they are inside a string: no quote, no
/// backslash, no control character (below 0x20).
#[inline]
pub fn json_plain(bytes: &[u8]) -> bool {
    all_within(bytes, 0x20, 0xff, [b'"', b'\\'])
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

    #[test]
    fn agrees_with_http_on_every_byte_at_every_position() {
        for b in 0..=255u8 {
            for at in [0, 7, 15, 16, 31, 40] {
                let mut bytes = vec![b'a'; 41];
                bytes[at] = b;
                let ours = header_value(bytes.clone());
                let theirs = HeaderValue::from_maybe_shared(Bytes::from(bytes));
                assert_eq!(ours.ok(), theirs.ok(), "byte {b:#04x} at {at}");
            }
        }
        assert_eq!(
            header_value(Vec::new()).ok(),
            Some(HeaderValue::from_static(""))
        );
    }

    #[test]
    fn json_plain_is_exact_for_every_byte_at_every_position() {
        assert!(json_plain(b""));
        for b in 0..=255u8 {
            let plain = b >= 0x20 && b != b'"' && b != b'\\';
            for len in 1..=33 {
                for at in 0..len {
                    for fill in [b'a', 0xff, 0x20] {
                        let mut bytes = vec![fill; len];
                        bytes[at] = b;
                        assert_eq!(json_plain(&bytes), plain, "{b:#04x} at {at} of {len}");
                    }
                }
            }
        }
    }

    #[test]
    fn is_ascii_is_std_for_every_byte_at_every_position() {
        assert!(is_ascii(b""));
        for b in 0..=255u8 {
            for len in 1..=33 {
                for at in 0..len {
                    for fill in [b'a', 0x00, 0x7f] {
                        let mut bytes = vec![fill; len];
                        bytes[at] = b;
                        assert_eq!(
                            is_ascii(&bytes),
                            bytes.is_ascii(),
                            "{b:#04x} at {at} of {len}"
                        );
                    }
                }
            }
        }
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
