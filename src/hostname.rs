//! Host names as refedge compares them, wherever one arrives (a `Host`
//! header, an HTTP/2 `:authority`, a link's `domain`, a TLS SNI name): DNS
//! names are case-insensitive and one trailing dot names the same host; and
//! the syntax of a `Host` value (RFC 9110 §7.2, RFC 3986 §3.2.2).

/// `name` without one trailing dot (`go.brand.com.` is `go.brand.com`).
/// Compare the result with `eq_ignore_ascii_case`.
pub fn without_root_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

/// Whether `name` as written (one trailing dot allowed) is a DNS host name:
/// at most 253 bytes, labels of 1-63 letters, digits and hyphens.
pub fn is_dns_name(name: &str) -> bool {
    let bare = without_root_dot(name);
    !bare.is_empty()
        && name.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A `Host` value (`uri-host [":" port]`) split into its host, with one
/// trailing dot dropped and IPv6 brackets kept, and its port; `None` when
/// it is not valid syntax. An empty value is valid (a request whose target
/// has no authority) and names no host.
pub fn parse_host_value(value: &[u8]) -> Option<(&str, Option<u16>)> {
    let value = crate::sys::text::str_of(value).ok()?;
    let (host, port) = if value.starts_with('[') {
        let end = value.find(']')?;
        let literal = &value[1..end];
        let ok = !literal.is_empty()
            && literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        if !ok {
            return None;
        }
        (&value[..=end], &value[end + 1..])
    } else {
        // One pass, a table look-up a byte, to the first byte the table
        // does not take: the port's `:`, the end, or else a `%XX` (or a
        // bad byte), for which the whole rule looks again.
        let bytes = value.as_bytes();
        let mut end = bytes
            .iter()
            .position(|&b| !REG_NAME_PLAIN[usize::from(b)])
            .unwrap_or(bytes.len());
        if bytes.get(end).is_some_and(|&b| b != b':') {
            end = value.find(':').unwrap_or(value.len());
            let host = &bytes[..end];
            if !host
                .iter()
                .enumerate()
                .all(|(i, &b)| reg_name_byte(host, i, b))
            {
                return None;
            }
        }
        value.split_at(end)
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return None,
        // `port = *DIGIT`: "host:" is a host with an empty port.
        Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            let n = p.bytes().fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
            Some(u16::try_from(n).ok()?)
        }
        Some(_) => return None,
    };
    Some((without_root_dot(host), port))
}

/// The bytes `reg_name_byte` takes without looking around them: its rule
/// less `%XX`.
const REG_NAME_PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8,
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z'
            | b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'('
            | b')' | b'*' | b'+' | b',' | b';' | b'=');
        b += 1;
    }
    table
};

/// RFC 3986 `reg-name`: unreserved, sub-delims and `%XX`.
fn reg_name_byte(host: &[u8], at: usize, b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
        || (b == b'%'
            && host
                .get(at + 1..at + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)))
        || (at >= 1 && host[at - 1] == b'%' && b.is_ascii_hexdigit())
        || (at >= 2 && host[at - 2] == b'%' && b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_table_is_the_rule_without_escapes() {
        for b in 0..=255u8 {
            assert_eq!(
                REG_NAME_PLAIN[usize::from(b)],
                b != b'%' && reg_name_byte(&[b], 0, b),
                "{b:#04x}"
            );
        }
    }

    #[test]
    fn host_values_follow_rfc_3986() {
        let ok = [
            ("localhost", ("localhost", None)),
            ("LOCALHOST.", ("LOCALHOST", None)),
            ("go.brand.com:8080", ("go.brand.com", Some(8080))),
            ("go.brand.com.:443", ("go.brand.com", Some(443))),
            ("127.0.0.1:80", ("127.0.0.1", Some(80))),
            ("[::1]:8443", ("[::1]", Some(8443))),
            ("[2001:db8::7]", ("[2001:db8::7]", None)),
            ("a%2Db", ("a%2Db", None)),
            ("host:", ("host", None)),
            ("h:65535", ("h", Some(65535))),
            ("h:00080", ("h", Some(80))),
            ("a%2Db:81", ("a%2Db", Some(81))),
            ("[::1]:", ("[::1]", None)),
            ("", ("", None)),
        ];
        for (value, want) in ok {
            assert_eq!(parse_host_value(value.as_bytes()), Some(want), "{value:?}");
        }
        for bad in [
            "bad host",
            "a/b",
            "a@b",
            "host:port",
            "host:123456",
            "[::1",
            "[zz]",
            "[]",
            "a%zz",
            "a%2",
            "h\u{e9}.example",
            "two:1:2",
            "h:65536",
            "h:+1",
            "h: 1",
            "a%2D:x",
            "%:1",
        ] {
            assert_eq!(parse_host_value(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse_host_value(b"\xff"), None);
    }

    #[test]
    fn one_trailing_dot_is_the_same_host() {
        assert_eq!(without_root_dot("go.brand.com."), "go.brand.com");
        assert_eq!(without_root_dot("go.brand.com"), "go.brand.com");
        assert_eq!(without_root_dot("a.."), "a.");
    }
}
