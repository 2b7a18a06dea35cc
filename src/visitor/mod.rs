//! Who is clicking: the client address (believing forwarding headers only from
//! trusted proxies), whether the request comes from a machine, the privacy
//! signals it sends, and its device and language (what redirect rules ask).

mod bots;
pub mod device;
pub mod language;

pub use bots::{BotDetector, BotReason};

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// Classifies a request. Runs on the request path: a cache lookup for a
/// user agent seen before.
pub fn classify(
    bots: &BotDetector,
    method: &http::Method,
    user_agent: Option<&HeaderValue>,
) -> Option<BotReason> {
    if method == http::Method::HEAD {
        return Some(BotReason::HeadRequest);
    }
    match user_agent {
        None => Some(BotReason::NoUserAgent),
        Some(ua) => match crate::sys::text::ascii_str(ua.as_bytes()) {
            Some(ua) => bots.user_agent(ua),
            // Browsers send ASCII user agents.
            None => Some(BotReason::Crawler),
        },
    }
}

/// The link-preview fetcher (its `link_preview:*` class) a bot request
/// comes from, `HEAD` requests included (unfurlers often look first).
pub fn preview_fetcher(
    bots: &BotDetector,
    reason: BotReason,
    user_agent: Option<&HeaderValue>,
) -> Option<&'static str> {
    match reason {
        BotReason::LinkPreview(name) => Some(name),
        BotReason::HeadRequest => match classify(bots, &http::Method::GET, user_agent) {
            Some(BotReason::LinkPreview(name)) => Some(name),
            _ => None,
        },
        _ => None,
    }
}

/// The request reached a trusted proxy over HTTPS: the last `proto=` of
/// `Forwarded`, else the last `X-Forwarded-Proto`, says `https`; believed
/// only from a trusted peer.
pub fn forwarded_https(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> bool {
    if trusted.is_empty() || !is_trusted(canonical(peer), trusted) {
        return false;
    }
    let words = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([',', ';']))
            .map(str::trim)
    };
    let from_forwarded = words(http::header::FORWARDED)
        .filter_map(|part| {
            let (name, value) = part.split_once('=')?;
            name.eq_ignore_ascii_case("proto")
                .then(|| value.trim_matches('"'))
        })
        .next_back();
    let proto = from_forwarded.or_else(|| words(X_FORWARDED_PROTO).rfind(|v| !v.is_empty()));
    proto.is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// Names looked up on every request, named once (a name given as text is
/// parsed again at every lookup).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// `Sec-GPC: 1` (Global Privacy Control) was sent: `sec_gpc` is the field.
pub fn gpc(sec_gpc: Option<&HeaderValue>) -> bool {
    sec_gpc.is_some_and(|v| v.as_bytes().trim_ascii() == b"1")
}

/// The client's address. Forwarding headers are believed only when the peer
/// is a trusted proxy; then the right-most address that is not itself a
/// trusted proxy is the client (everything to its left was written by
/// parties we do not trust). `Forwarded` wins over `X-Forwarded-For`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return peer;
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    let forwarded: Vec<&http::HeaderValue> =
        headers.get_all(http::header::FORWARDED).iter().collect();
    if !forwarded.is_empty() {
        for value in forwarded {
            let Ok(s) = value.to_str() else { return peer };
            for element in s.split(',') {
                for pair in element.split(';') {
                    let Some((k, v)) = pair.trim().split_once('=') else {
                        continue;
                    };
                    if k.trim().eq_ignore_ascii_case("for") {
                        match parse_forwarded_node(v.trim()) {
                            Some(ip) => chain.push(ip),
                            // "unknown" or an obfuscated name: stop believing
                            // anything left of it.
                            None => chain.clear(),
                        }
                    }
                }
            }
        }
    } else {
        for value in headers.get_all(X_FORWARDED_FOR) {
            let Ok(s) = value.to_str() else { return peer };
            for item in s.split(',') {
                match parse_forwarded_node(item.trim()) {
                    Some(ip) => chain.push(ip),
                    None => chain.clear(),
                }
            }
        }
    }
    let mut client = peer;
    for ip in chain.into_iter().rev() {
        client = ip;
        if !is_trusted(ip, trusted) {
            break;
        }
    }
    client
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parses `1.2.3.4`, `1.2.3.4:80`, `"[2001:db8::1]:443"`, `2001:db8::1`.
fn parse_forwarded_node(s: &str) -> Option<IpAddr> {
    let s = s.trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let inner = rest.split(']').next()?;
        return inner.parse::<IpAddr>().ok().map(canonical);
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_believed_from_a_trusted_proxy_only() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        let https = |pairs: &[(&'static str, &'static str)], peer: IpAddr| {
            forwarded_https(peer, &headers(pairs), &trusted)
        };
        assert!(https(&[("x-forwarded-proto", "https")], proxy));
        assert!(https(&[("forwarded", "for=1.2.3.4;proto=https")], proxy));
        assert!(https(&[("forwarded", "proto=\"HTTPS\"")], proxy));
        // Forwarded wins; the last hop's word counts.
        assert!(!https(
            &[("forwarded", "proto=http"), ("x-forwarded-proto", "https")],
            proxy
        ));
        assert!(!https(&[("x-forwarded-proto", "https, http")], proxy));
        assert!(!https(&[], proxy));
        assert!(!https(
            &[("x-forwarded-proto", "https")],
            "6.6.6.6".parse().unwrap()
        ));
        assert!(!forwarded_https(
            proxy,
            &headers(&[("x-forwarded-proto", "https")]),
            &[]
        ));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    const PEER: &str = "10.0.0.5";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_forge_their_address() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        assert_eq!(client_ip(ip(PEER), &h, &[]), ip(PEER));
        assert_eq!(
            client_ip(ip(PEER), &h, &nets(&["192.168.0.0/16"])),
            ip(PEER)
        );
    }

    #[test]
    fn right_most_untrusted_address_wins() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(client_ip(ip(PEER), &h, &trusted), ip("203.0.113.9"));
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.9:5555"),
        ]);
        assert_eq!(client_ip(ip(PEER), &h, &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_header_is_parsed() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::1]:443\";proto=https, for=10.2.2.2",
        )]);
        assert_eq!(client_ip(ip(PEER), &h, &trusted), ip("2001:db8::1"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client_ip(ip(PEER), &h, &trusted), ip(PEER));
    }

    #[test]
    fn all_trusted_chain_gives_the_left_most() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(client_ip(ip(PEER), &h, &trusted), ip("10.9.9.9"));
    }

    #[test]
    fn garbage_is_ignored() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "not-an-ip, ,,")]);
        assert_eq!(client_ip(ip(PEER), &h, &trusted), ip(PEER));
        let h = headers(&[("x-forwarded-for", "1.2.3.4, garbage")]);
        assert_eq!(client_ip(ip(PEER), &h, &trusted), ip(PEER));
    }

    #[test]
    fn mapped_ipv6_peers_are_ipv4() {
        assert_eq!(
            client_ip(ip("::ffff:1.2.3.4"), &HeaderMap::new(), &[]),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn classification() {
        let bots = BotDetector::new();
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        let get = |ua: &'static str| {
            classify(
                &bots,
                &http::Method::GET,
                Some(&HeaderValue::from_static(ua)),
            )
        };
        let ua = HeaderValue::from_static(firefox);
        assert_eq!(classify(&bots, &http::Method::GET, Some(&ua)), None);
        let head = classify(&bots, &http::Method::HEAD, Some(&ua));
        assert_eq!(head, Some(BotReason::HeadRequest));
        let none = classify(&bots, &http::Method::GET, None);
        assert_eq!(none, Some(BotReason::NoUserAgent));
        assert_eq!(get(" "), Some(BotReason::NoUserAgent));
        let slack = get("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)");
        assert_eq!(slack.map(BotReason::as_str), Some("link_preview:slack"));
        // Not ASCII: no browser sends that.
        let odd = HeaderValue::from_bytes("Mozilla/5.0 (X11; Linux x86_64) Caf\u{e9}".as_bytes())
            .unwrap();
        assert_eq!(
            classify(&bots, &http::Method::GET, Some(&odd)),
            Some(BotReason::Crawler)
        );
    }

    #[test]
    fn gpc_header() {
        assert!(gpc(Some(&HeaderValue::from_static("1"))));
        assert!(gpc(Some(&HeaderValue::from_static(" 1 "))));
        assert!(!gpc(Some(&HeaderValue::from_static("0"))));
        assert!(!gpc(None));
    }
}
