//! The request headers a click reads (`Host`, `User-Agent`, `Referer`,
//! `Cookie`, `Sec-GPC`), found in one pass over the request's header map,
//! and what is read from them (the host a request names, a field's text):
//! a look-up by name hashes the name and probes the map, about a hundred
//! instructions each, and a click made six of them.

use std::borrow::Cow;

use http::Request;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::hostname;

/// `Sec-GPC` (Global Privacy Control), named once: a name given as text is
/// parsed again at every use.
const SEC_GPC: HeaderName = HeaderName::from_static("sec-gpc");

/// The fields of one request that a click reads; each the first of its
/// name, as `HeaderMap::get` gives it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Heads<'r> {
    /// The first `Host`, and whether there was another (RFC 9112 §3.2:
    /// such a request is refused).
    host: Option<&'r HeaderValue>,
    hosts: u8,
    pub user_agent: Option<&'r HeaderValue>,
    pub referer: Option<&'r HeaderValue>,
    pub sec_gpc: Option<&'r HeaderValue>,
    /// The first `Cookie` field; HTTP/2 may split cookies over several
    /// (`cookies` > 1), read then with `get_all`.
    cookie: Option<&'r HeaderValue>,
    cookies: u8,
}

impl<'r> Heads<'r> {
    /// One pass over `headers`.
    pub fn of(headers: &'r HeaderMap) -> Heads<'r> {
        let mut heads = Heads::default();
        for (name, value) in headers {
            // Standard names compare as one byte each; the custom one
            // only against other custom names of its length.
            if name == header::HOST {
                heads.host = heads.host.or(Some(value));
                heads.hosts = heads.hosts.saturating_add(1);
            } else if name == header::USER_AGENT {
                heads.user_agent = heads.user_agent.or(Some(value));
            } else if name == header::COOKIE {
                heads.cookie = heads.cookie.or(Some(value));
                heads.cookies = heads.cookies.saturating_add(1);
            } else if name == header::REFERER {
                heads.referer = heads.referer.or(Some(value));
            } else if name == SEC_GPC {
                heads.sec_gpc = heads.sec_gpc.or(Some(value));
            }
        }
        heads
    }

    /// Whether the request sent a `Cookie` field.
    pub fn has_cookie(&self) -> bool {
        self.cookies > 0
    }

    /// Every `Cookie` field's bytes, in order.
    pub fn cookies(&self, headers: &'r HeaderMap) -> impl Iterator<Item = &'r [u8]> + use<'r> {
        let (one, all) = match self.cookies {
            0 | 1 => (self.cookie, None),
            _ => (None, Some(headers.get_all(header::COOKIE).iter())),
        };
        one.into_iter()
            .chain(all.into_iter().flatten())
            .map(HeaderValue::as_bytes)
    }
}

/// The host a request names, without port or trailing dot (compare it
/// ignoring case): the target URI's authority (HTTP/2, absolute form), else
/// the `Host` header; "" for an HTTP/1.0 request without one. `None` breaks
/// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, or any request with two
/// `Host` fields or an invalid one (answered 400).
pub fn request_host<'r, B>(req: &'r Request<B>, heads: &Heads<'r>) -> Option<&'r str> {
    let from_header = match heads.host {
        _ if heads.hosts > 1 => return None,
        Some(value) => hostname::parse_host_value(value.as_bytes())?.0,
        None if req.version() == http::Version::HTTP_11 => return None,
        None => "",
    };
    Some(match req.uri().authority() {
        Some(authority) => hostname::without_root_dot(authority.host()),
        None => from_header,
    })
}

/// A header's text; bytes that are not UTF-8 (rare) become U+FFFD.
#[inline]
pub fn text(value: Option<&HeaderValue>) -> Option<Cow<'_, str>> {
    value.map(|v| {
        let bytes = v.as_bytes();
        // ASCII (nearly every user agent) is one `is_ascii` pass; the lossy
        // reader goes byte by byte even when there is nothing to replace.
        crate::sys::text::str_of(bytes)
            .map_or_else(|_| String::from_utf8_lossy(bytes), Cow::Borrowed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(fields: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in fields {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        h
    }

    #[test]
    fn each_field_is_the_first_of_its_name_as_a_lookup_gives_it() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("host", "a.example"), ("user-agent", "UA")],
            &[
                ("Host", "a.example"),
                ("host", "b.example"),
                ("referer", "https://r.example/"),
                ("user-agent", "one"),
                ("User-Agent", "two"),
                ("sec-gpc", "1"),
                ("sec-gpd", "0"),
                ("cookie", "a=1"),
                ("x-other", "z"),
                ("cookie", "rf_ref=2"),
                ("cookie", "c=3"),
            ],
            &[("accept", "*/*"), ("cookie", "only=1"), ("sec-gpc", " 1 ")],
        ];
        for fields in cases {
            let h = map(fields);
            let heads = Heads::of(&h);
            assert_eq!(heads.host, h.get(header::HOST));
            assert_eq!(heads.hosts as usize, h.get_all(header::HOST).iter().count());
            assert_eq!(heads.user_agent, h.get(header::USER_AGENT));
            assert_eq!(heads.referer, h.get(header::REFERER));
            assert_eq!(heads.sec_gpc, h.get("sec-gpc"));
            let cookies: Vec<&[u8]> = heads.cookies(&h).collect();
            let expected: Vec<&[u8]> = h
                .get_all(header::COOKIE)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect();
            assert_eq!(cookies, expected, "{fields:?}");
            assert_eq!(heads.has_cookie(), !expected.is_empty());
        }
    }
}
