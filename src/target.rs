//! What a redirect target may be: an absolute `http`/`https` URL with a
//! host (RFC 3986 authority, no user info), ASCII, at most 2048 bytes, no
//! whitespace or control characters. Links' targets and
//! `links.fallback_url` are held to it; the admin API's OpenAPI description
//! states the same grammar as a pattern (a property test holds the two
//! together).

/// Longest accepted target, in bytes.
pub const MAX_TARGET_BYTES: usize = 2048;

/// Checks a target: an absolute `http`/`https` URL with
/// a host, at most 2048 bytes, no whitespace or control characters.
pub fn check(target: &str) -> Result<(), String> {
    if target.len() > MAX_TARGET_BYTES {
        return Err(format!("is longer than {MAX_TARGET_BYTES} bytes"));
    }
    // ASCII (the usual case) needs only a byte check; other text is looked
    // at character by character so that Unicode spaces are named as such.
    let spaced = if target.is_ascii() {
        target.bytes().any(|b| b <= b' ' || b == 0x7f)
    } else {
        target.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    if spaced {
        return Err("contains whitespace or control characters".into());
    }
    if !target.is_ascii() {
        return Err("must be ASCII (percent-encode other characters)".into());
    }
    // `http(s)://` + authority (no user info) + path, query and fragment:
    // the grammar the admin API's OpenAPI description states as a pattern.
    let scheme_end = target.find("://").unwrap_or(0);
    let scheme = &target[..scheme_end];
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err("must be an http or https URL".into());
    }
    let rest = &target[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.is_empty() || authority.contains('@') {
        return Err("must have a host and no user info".into());
    }
    if !valid_authority(authority) {
        return Err(
            "must have a host name or a [IPv6] address, then an optional port up to 65535".into(),
        );
    }
    Ok(())
}

/// RFC 3986 `host [":" port]`, as the OpenAPI pattern states it: a bracketed
/// IPv6 address (hex groups, no embedded IPv4 form) or a registered name of
/// unreserved and sub-delimiter characters and `%HH` escapes; the port is 1–5
/// digits, at most 65535.
fn valid_authority(authority: &str) -> bool {
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, after)) => (
                !ip.contains('.') && ip.parse::<std::net::Ipv6Addr>().is_ok(),
                after,
            ),
            None => return false,
        },
        None => {
            let end = authority.find(':').unwrap_or(authority.len());
            (valid_reg_name(&authority[..end]), &authority[end..])
        }
    };
    host_ok
        && match port.strip_prefix(':') {
            None => port.is_empty(),
            Some(digits) => valid_port(digits),
        }
}

fn valid_reg_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let escape = bytes.get(i + 1..i + 3);
                if !escape.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) => i += 1,
            _ => return false,
        }
    }
    !bytes.is_empty()
}

/// 1–4 digits, or 5 digits without a leading zero up to 65535 (the pattern's
/// alternation, digit for digit).
fn valid_port(digits: &str) -> bool {
    digits.bytes().all(|b| b.is_ascii_digit())
        && match digits.len() {
            1..=4 => true,
            5 => !digits.starts_with('0') && digits.parse::<u32>().is_ok_and(|p| p <= 65535),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_follow_rfc_3986() {
        for good in [
            "http://a.example",
            "https://a.example:8443/x",
            "https://a.example:65535",
            "https://a.example:0080/",
            "https://xn--bcher-kva.example/",
            "https://a%41.example/",
            "https://[::1]/",
            "https://[2001:db8::7]:443/x",
            "https://[1:2:3:4:5:6:7:8]",
            "https://[::]",
            "https://[1:2:3:4:5:6:7::]",
            "https://[::2:3:4:5:6:7:8]",
            "https://[1:2:3:4:5:6::8]",
        ] {
            assert_eq!(check(good), Ok(()), "{good:?}");
            assert!(target_schema().is_valid(&good.into()), "{good:?}");
        }
        for bad in [
            "http://[",
            "http://[::1",
            "http://[::1]x/",
            "http://[x]/",
            "http://[1:2:3]/",
            "http://[::ffff:1.2.3.4]/",
            "http://1.2.3.4]/",
            "https://a.example:",
            "https://a.example:65536/",
            "https://a.example:00080/",
            "https://a.example:443:1/",
            "https://a%4.example/",
            "https://a<b.example/",
            "https://:443/",
            "https://[1::2::3]/",
            "https://[01234::]/",
            "https://[1:2:3:4:5:6:7:8:9]/",
            "https://[fe80::1%25eth0]/",
        ] {
            assert!(check(bad).is_err(), "{bad:?} must be refused");
            assert!(!target_schema().is_valid(&bad.into()), "{bad:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::proptest_config())]

        /// The OpenAPI description's target pattern and this validator are
        /// one grammar written twice: a client that trusts either one is
        /// never surprised by the other.
        #[test]
        fn the_openapi_target_pattern_agrees(
            host in host_like(),
            port in "(:[0-9]{0,6})?",
            path in "(/[!-~]{0,4})?",
        ) {
            let target = format!("https://{host}{port}{path}");
            proptest::prop_assert_eq!(
                target_schema().is_valid(&serde_json::Value::String(target.clone())),
                check(&target).is_ok(),
                "{}", target
            );
        }
    }

    /// Host names, IPv6 literals and near misses of both, in equal parts.
    fn host_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let ipv6 = (
            prop::collection::vec(
                "[0-9a-fA-F]{1,4}|[0-9a-f]{5}|[0-9]{1,3}(\\.[0-9]{1,3}){3}",
                0..=9,
            ),
            prop::option::of(0usize..10),
            "\\]|\\]?",
        )
            .prop_map(|(groups, gap, close)| {
                let mut text = groups.join(":");
                if let Some(at) = gap {
                    let at = groups.iter().take(at).map(|g| g.len() + 1).sum::<usize>();
                    let at = at.min(text.len());
                    text.insert_str(
                        at,
                        if at == 0 || at == text.len() {
                            "::"
                        } else {
                            ":"
                        },
                    );
                }
                format!("[{text}{close}")
            });
        prop_oneof![
            "[a-z0-9-]{1,8}(\\.[a-z0-9-]{1,8}){0,2}",
            "[a-z0-9%.:\\[\\]<_~!-]{0,12}",
            ipv6,
        ]
    }

    fn target_schema() -> &'static jsonschema::Validator {
        static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
        SCHEMA.get_or_init(|| {
            let spec: serde_json::Value =
                serde_json::from_str(include_str!("admin/openapi.json")).unwrap();
            jsonschema::validator_for(&spec["components"]["schemas"]["Target"]).unwrap()
        })
    }
}
