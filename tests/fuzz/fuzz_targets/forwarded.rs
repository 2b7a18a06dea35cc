//! Forwarded-header parsing: the client address is the peer, or an address
//! that appears in the headers, and untrusted peers are never overridden.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use refedge::visitor::client_ip;

fuzz_target!(|data: &[u8]| {
    let (split, rest) = match data.split_first() {
        Some((s, rest)) => (*s as usize, rest),
        None => return,
    };
    let split = split.min(rest.len());
    let (fwd, xff) = rest.split_at(split);
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_bytes(fwd) {
        headers.append(http::header::FORWARDED, v);
    }
    if let Ok(v) = http::HeaderValue::from_bytes(xff) {
        headers.append("x-forwarded-for", v);
    }
    let peer: IpAddr = "10.0.0.1".parse().unwrap();
    let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let ip = client_ip(peer, &headers, &trusted);
    // An IPv4 client other than the peer was read from the headers, where
    // it appears in dotted form (alone or inside an IPv4-mapped IPv6).
    if let (true, IpAddr::V4(v4)) = (ip != peer, ip) {
        let text = String::from_utf8_lossy(data);
        assert!(
            text.contains(&v4.to_string()),
            "{ip} is in neither header: {text:?}"
        );
    }
    let untrusted: IpAddr = "203.0.113.9".parse().unwrap();
    assert_eq!(client_ip(untrusted, &headers, &trusted), untrusted);
});
