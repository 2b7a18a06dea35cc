//! Percent-decoding of a query's names and values (`+` is a space, as in
//! forms), shared by the `Location` builder and the share's parameters.

use std::borrow::Cow;

/// Percent-decodes a query name or value (`+` is a space) so that
/// `utm%5Fsource` and `utm_source` are the same parameter. Text with
/// nothing to decode (the usual case) is borrowed as it is.
pub fn decode(raw: &str) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

pub(crate) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_pluses_decode_and_broken_escapes_stay() {
        assert_eq!(&*decode("utm%5Fsource"), "utm_source");
        assert_eq!(&*decode("a+b"), "a b");
        assert_eq!(&*decode("%"), "%");
        assert_eq!(&*decode("%4"), "%4");
        assert_eq!(&*decode("%41"), "A");
        assert!(matches!(decode("plain"), Cow::Borrowed("plain")));
    }
}
