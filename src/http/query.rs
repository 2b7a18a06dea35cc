//! Building the `Location` of a redirect. The target comes only from the link
//! map; forwarded query parameters are re-encoded so that nothing in them can
//! end the query (`#`), break the header (CR, LF, NUL) or change the scheme,
//! host or path. A parameter already in the target keeps the target's value,
//! and the click and channel parameters are always ours.

use std::borrow::Cow;

use http::HeaderValue;

use crate::attribution::ClickId;
use crate::percent::{self, hex};

/// Bytes that may stand as they are in a forwarded query parameter (`%`
/// only as the start of a valid escape, checked apart).
const SAFE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8,
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z'
            | b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'\'' | b'(' | b')' | b'*'
            | b'+' | b',' | b';' | b'=' | b':' | b'@' | b'/' | b'?');
        b += 1;
    }
    table
};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// What a byte means to the one pass over a parameter (`Param`).
mod class {
    /// Ends the parameter.
    pub const AMP: u8 = 1;
    /// Ends its name (the first one).
    pub const EQ: u8 = 2;
    /// `%` or `+`: a name with one is decoded before it is compared.
    pub const DECODES: u8 = 4;
    /// Not copied as it is by `push_param` (`%` included: its escape is
    /// checked there).
    pub const ENCODES: u8 = 8;
}

const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b'&' => class::AMP,
            b'=' => class::EQ,
            b'+' => class::DECODES,
            b'%' => class::DECODES | class::ENCODES,
            _ if SAFE[b] => 0,
            _ => class::ENCODES,
        };
        b += 1;
    }
    table
};

/// One raw parameter of a query, read in one pass over its bytes: where
/// its name ends, whether the name needs decoding and whether any byte
/// needs encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Param<'q> {
    text: &'q str,
    name_len: usize,
    /// `class` bits: of the name's bytes for `DECODES`, of all for `ENCODES`.
    classes: u8,
}

impl<'q> Param<'q> {
    /// The raw name: what comes before the first `=`.
    pub(crate) fn raw_name(&self) -> &'q str {
        &self.text[..self.name_len]
    }

    /// The raw value: what comes after the first `=` (empty without one).
    pub(crate) fn raw_value(&self) -> &'q str {
        self.text.get(self.name_len + 1..).unwrap_or("")
    }

    /// The name, percent-decoded (borrowed when there is nothing to decode).
    pub(crate) fn name(&self) -> Cow<'q, str> {
        if self.classes & class::DECODES == 0 {
            Cow::Borrowed(self.raw_name())
        } else {
            percent::decode(self.raw_name())
        }
    }

    /// Whether the decoded name is `wanted`. Decoding never lengthens a
    /// name (`%XX` is one byte, or one U+FFFD for three; `+` is one space),
    /// so a shorter one is not.
    fn is_named(&self, wanted: &str) -> bool {
        self.name_len >= wanted.len() && *self.name() == *wanted
    }

    /// Appends the parameter, re-encoded where needed.
    fn push_to(&self, out: &mut String) {
        if self.classes & class::ENCODES == 0 {
            out.push_str(self.text);
        } else {
            push_param(out, self.text);
        }
    }
}

/// Appends one raw `name=value` parameter, re-encoding what is not safe. A
/// `%` that does not start a valid escape is itself escaped. Runs of safe
/// bytes are copied whole.
fn push_param(out: &mut String, param: &str) {
    let raw = param.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let safe_run = raw[i..]
            .iter()
            .take_while(|&&b| SAFE[usize::from(b)])
            .count();
        if safe_run > 0 {
            // Safe bytes are ASCII: the run starts and ends on character
            // boundaries (an empty slice inside a character would not).
            out.push_str(&param[i..i + safe_run]);
            i += safe_run;
        }
        let Some(&b) = raw.get(i) else { break };
        if b == b'%' && i + 2 < raw.len() && hex(raw[i + 1]).is_some() && hex(raw[i + 2]).is_some()
        {
            out.push_str(&param[i..i + 3]);
            i += 3;
            continue;
        }
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
        i += 1;
    }
}

/// The non-empty `&`-separated parameters of a query, each read in one
/// pass over its bytes.
pub(crate) fn params(query: &str) -> impl Iterator<Item = Param<'_>> {
    let bytes = query.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < bytes.len() {
            let start = at;
            let mut name_end = None;
            let (mut name_classes, mut classes) = (0u8, 0u8);
            while let Some(&b) = bytes.get(at) {
                let c = CLASS[usize::from(b)];
                if c != 0 {
                    if c == class::AMP {
                        break;
                    }
                    if c == class::EQ && name_end.is_none() {
                        name_end = Some(at);
                        name_classes = classes;
                    }
                    classes |= c;
                }
                at += 1;
            }
            let end = at;
            at += 1;
            if end > start {
                let name_end = name_end.unwrap_or_else(|| {
                    name_classes = classes;
                    end
                });
                return Some(Param {
                    text: &query[start..end],
                    name_len: name_end - start,
                    classes: name_classes & class::DECODES | classes & class::ENCODES,
                });
            }
        }
        None
    })
}

/// The query parameters that are ours: a request's are never forwarded.
#[derive(Debug, Clone)]
pub struct OurParams {
    /// Carries the click id to the landing page (`attribution.click_param`).
    pub click: String,
    /// Names the share channel (`attribution.channel_param`).
    pub channel: String,
}

/// What a click's query says besides what is forwarded: the raw value of
/// the channel parameter (consumed: it never reaches the target) and
/// whether an ad platform's click id came with it (`risk`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals<'q> {
    pub channel: Option<&'q str>,
    pub paid: bool,
}

impl<'q> Signals<'q> {
    /// Reads one parameter (its decoded name, the parameter).
    fn see(&mut self, name: &str, param: &Param<'q>, ours: &OurParams) {
        if *name == *ours.channel {
            if self.channel.is_none() {
                self.channel = Some(param.raw_value());
            }
        } else if crate::risk::is_paid_click_param(name) {
            self.paid = true;
        }
    }

    /// The signals of a query that is not forwarded (one short walk).
    pub fn of(query: Option<&'q str>, ours: &OurParams) -> Signals<'q> {
        let mut signals = Signals::default();
        for param in params(query.unwrap_or("")) {
            signals.see(&param.name(), &param, ours);
        }
        signals
    }
}

/// A redirect's `Location`, and what the request's query said.
#[derive(Debug)]
pub struct Location<'q> {
    /// Visible ASCII only: the link's validated target, forwarded
    /// parameters re-encoded by `push_param`, the click parameter.
    pub text: String,
    pub signals: Signals<'q>,
}

impl Location<'_> {
    /// The `Location` header, its bytes not copied again.
    pub fn header(self) -> HeaderValue {
        crate::sys::text::header_value(self.text.into_bytes())
            .unwrap_or_else(|_| HeaderValue::from_static("/"))
    }
}

/// The `Location` for a redirect to `target` (the link's, or the one its
/// rules or variants chose), given whether the link forwards the query, the
/// request's raw query and the click id to hand to the landing page (humans
/// only). The walk that forwards the request's parameters also reads their
/// `Signals`. One pass over each input: the target is searched for its
/// `?` and `#` with `memchr`, and copied in two pieces.
pub fn location<'q>(
    target: &str,
    forward_query: bool,
    request_query: Option<&'q str>,
    ours: &OurParams,
    click_id: Option<&ClickId>,
) -> Location<'q> {
    let forwarded = if forward_query {
        request_query.filter(|q| !q.is_empty())
    } else {
        None
    };
    if forwarded.is_none() && click_id.is_none() {
        return Location {
            text: target.to_owned(),
            signals: Signals::of(request_query, ours),
        };
    }
    let base_len = memchr::memchr(b'#', target.as_bytes()).unwrap_or(target.len());
    let (base, fragment) = target.split_at(base_len);
    let target_query = memchr::memchr(b'?', base.as_bytes()).map(|at| &base[at + 1..]);
    let target_has_param =
        |name: &str| target_query.is_some_and(|q| params(q).any(|p| p.is_named(name)));
    let mut out = String::with_capacity(
        target.len() + forwarded.map_or(0, |q| 3 * q.len()) + ours.click.len() + 24,
    );
    out.push_str(base);
    let mut first = true;
    let mut separator = |out: &mut String| {
        if !first {
            out.push('&');
        } else if target_query.is_none() {
            out.push('?');
        } else if !matches!(base.as_bytes().last(), Some(b'?' | b'&')) {
            out.push('&');
        }
        first = false;
    };
    let mut signals = Signals::default();
    if let Some(query) = forwarded {
        for param in params(query) {
            let name = param.name();
            signals.see(&name, &param, ours);
            if *name == *ours.channel || *name == *ours.click || target_has_param(&name) {
                continue;
            }
            separator(&mut out);
            param.push_to(&mut out);
        }
    } else {
        signals = Signals::of(request_query, ours);
    }
    if let Some(id) = click_id {
        separator(&mut out);
        out.push_str(&ours.click);
        out.push('=');
        out.push_str(id.as_str());
    }
    out.push_str(fragment);
    Location { text: out, signals }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(target: &str, forward: bool) -> crate::links::LinkRef {
        let json = serde_json::json!({"code": "c", "target": target, "forward_query": forward});
        let store = crate::links::LinkStore::new();
        store.upsert(crate::links::Link::from_json(&json.to_string()).unwrap());
        store.get(None, "c").unwrap()
    }

    pub(crate) fn ours() -> OurParams {
        OurParams {
            click: "rf_click".into(),
            channel: "rf_ch".into(),
        }
    }

    fn loc(target: &str, query: Option<&str>, click: bool) -> String {
        let id = ClickId::from_parts(1_700_000_000_000, [7; 10]);
        let v = location(
            link(target, true).target(),
            true,
            query,
            &ours(),
            click.then_some(&id),
        )
        .header();
        v.to_str().unwrap().replace(id.as_str(), "ID")
    }

    #[test]
    fn plain_target() {
        assert_eq!(
            loc("https://b.example/p", None, false),
            "https://b.example/p"
        );
        assert_eq!(
            loc("https://b.example/p", None, true),
            "https://b.example/p?rf_click=ID"
        );
        assert_eq!(
            loc("https://b.example/p", Some(""), true),
            "https://b.example/p?rf_click=ID"
        );
    }

    #[test]
    fn query_is_merged_and_target_wins() {
        assert_eq!(
            loc(
                "https://b.example/p?utm_source=ref",
                Some("utm_source=evil&x=1"),
                true
            ),
            "https://b.example/p?utm_source=ref&x=1&rf_click=ID"
        );
        assert_eq!(
            loc(
                "https://b.example/p?utm_source=ref",
                Some("utm%5Fsource=evil&utm+x=1"),
                false
            ),
            "https://b.example/p?utm_source=ref&utm+x=1"
        );
        assert_eq!(
            loc("https://b.example/p?", Some("a=1"), false),
            "https://b.example/p?a=1"
        );
        assert_eq!(
            loc("https://b.example/p?a=1&", Some("b=2"), false),
            "https://b.example/p?a=1&b=2"
        );
    }

    #[test]
    fn forged_click_ids_are_dropped() {
        assert_eq!(
            loc("https://b.example/p", Some("rf_click=forged&a=1"), true),
            "https://b.example/p?a=1&rf_click=ID"
        );
        assert_eq!(
            loc("https://b.example/p", Some("rf%5Fclick=forged"), false),
            "https://b.example/p"
        );
    }

    #[test]
    fn the_channel_parameter_is_consumed_never_forwarded() {
        assert_eq!(
            loc("https://b.example/p", Some("rf_ch=qr&a=1"), true),
            "https://b.example/p?a=1&rf_click=ID"
        );
        assert_eq!(
            loc("https://b.example/p", Some("a=1&rf%5Fch=linkedin"), false),
            "https://b.example/p?a=1"
        );
        // A target that names it itself keeps it: the target is the brand's.
        assert_eq!(
            loc("https://b.example/p?rf_ch=web", Some("rf_ch=qr"), false),
            "https://b.example/p?rf_ch=web"
        );
    }

    #[test]
    fn the_signals_are_read_whether_the_query_is_forwarded_or_not() {
        let id = ClickId::from_parts(1_700_000_000_000, [7; 10]);
        for forward in [true, false] {
            for click in [None, Some(&id)] {
                let signals = |q: &'static str| {
                    location(
                        link("https://b.example/p", forward).target(),
                        forward,
                        Some(q),
                        &ours(),
                        click,
                    )
                    .signals
                };
                let channel = |q: &'static str| signals(q).channel;
                assert_eq!(channel("a=1&rf_ch=qr&rf_ch=print"), Some("qr"), "{forward}");
                assert_eq!(channel("rf%5Fch=Email"), Some("Email"));
                assert_eq!(channel("rf_ch"), Some(""));
                assert_eq!(channel("xrf_ch=qr&rf_chx=qr"), None);
                assert_eq!(channel("rf_ch=a=b"), Some("a=b"));
                let paid = |q: &'static str| signals(q).paid;
                for q in [
                    "gclid=x",
                    "a=1&fbclid=y",
                    "li%5Ffat%5Fid=1",
                    "msclkid",
                    "rf_ch=qr&dclid=2",
                ] {
                    assert!(paid(q), "{q} {forward}");
                }
                for q in ["", "gclidx=1", "GCLID=1", "utm_source=google", "x=gclid"] {
                    assert!(!paid(q), "{q} {forward}");
                }
            }
        }
        assert_eq!(Signals::of(None, &ours()), Signals::default());
    }

    #[test]
    fn a_paid_click_id_is_still_forwarded() {
        assert_eq!(
            loc("https://b.example/p", Some("gclid=abc&rf_ch=x"), true),
            "https://b.example/p?gclid=abc&rf_click=ID"
        );
    }

    #[test]
    fn a_name_that_only_contains_the_click_param_is_forwarded() {
        // Found by the query_merge fuzz target (its check was too loose): a
        // parameter whose name ends in `rf_click` is someone else's, kept
        // (encoded) beside the one real click parameter.
        assert_eq!(
            loc("https://b.example/p", Some("x\u{1f}rf_click=ID&a=1"), true),
            "https://b.example/p?x%1Frf_click=ID&a=1&rf_click=ID"
        );
    }

    #[test]
    fn fragment_stays_last() {
        assert_eq!(
            loc("https://b.example/p?a=1#top", Some("b=2"), true),
            "https://b.example/p?a=1&b=2&rf_click=ID#top"
        );
        assert_eq!(
            loc("https://b.example/p#top", None, true),
            "https://b.example/p?rf_click=ID#top"
        );
    }

    #[test]
    fn hostile_parameters_are_encoded() {
        assert_eq!(
            loc("https://b.example/p", Some("a=%0d%0aSet-Cookie:x"), false),
            "https://b.example/p?a=%0d%0aSet-Cookie:x"
        );
        assert_eq!(
            loc("https://b.example/p", Some("a=1#frag"), false),
            "https://b.example/p?a=1%23frag"
        );
        assert_eq!(
            loc("https://b.example/p", Some("a=%zz%"), false),
            "https://b.example/p?a=%25zz%25"
        );
        assert_eq!(
            loc("https://b.example/p", Some("a=\"<x>\""), false),
            "https://b.example/p?a=%22%3Cx%3E%22"
        );
        assert_eq!(
            loc("https://b.example/p", Some("a=\u{e9}"), false),
            "https://b.example/p?a=%C3%A9"
        );
        assert_eq!(
            loc("https://b.example/p", Some("&&a=1&&"), false),
            "https://b.example/p?a=1"
        );
    }

    #[test]
    fn forward_query_off_keeps_only_the_click_id() {
        let id = ClickId::from_parts(1, [1; 10]);
        let v = location(
            link("https://b.example/p", false).target(),
            false,
            Some("a=1"),
            &ours(),
            Some(&id),
        )
        .header();
        assert_eq!(
            v.to_str().unwrap(),
            format!("https://b.example/p?rf_click={id}")
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const TARGETS: [&str; 4] = [
            "https://brand.example/welcome",
            "https://brand.example/p?utm_source=refedge&x=1",
            "https://brand.example/p#section",
            "http://brand.example:8080/a/b?q=%20#f",
        ];

        /// Scheme, authority and path of a URL (without its fragment).
        fn parts(url: &str) -> (String, String, String) {
            let no_fragment = url.split('#').next().unwrap();
            let uri: http::Uri = no_fragment.parse().expect("a valid URI");
            (
                uri.scheme_str().unwrap().to_owned(),
                uri.authority().unwrap().to_string(),
                uri.path().to_owned(),
            )
        }

        proptest! {
            #![proptest_config(crate::proptest_config())]
            #[test]
            fn is_named_is_equality_after_decoding(
                name in "([a-c+%]|%[0-9a-fA-F]{2}|%[fF][fF]){0,8}",
                other in "([a-c+%]|%[0-9a-fA-F]{2}){0,8}",
            ) {
                let text = format!("{name}=v");
                let param = params(&text).next().unwrap();
                for wanted in [percent::decode(&name).into_owned(), percent::decode(&other).into_owned(), other.clone()] {
                    prop_assert_eq!(param.is_named(&wanted), *percent::decode(&name) == *wanted);
                }
            }

            /// One pass finds what the plain splits and scans find.
            #[test]
            fn a_parameter_read_in_one_pass_is_the_split_of_its_text(
                query in "([a-c=&+%#]|%[0-9a-fA-F]{2}|[\\x00-\\x7f]|[\\u{80}-\\u{10ffff}]){0,40}",
            ) {
                let split: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
                let read: Vec<Param<'_>> = params(&query).collect();
                prop_assert_eq!(read.len(), split.len());
                for (param, text) in read.iter().zip(split) {
                    let (name, value) = text.split_once('=').unwrap_or((text, ""));
                    prop_assert_eq!(param.text, text);
                    prop_assert_eq!(param.raw_name(), name);
                    prop_assert_eq!(param.raw_value(), value);
                    prop_assert_eq!(param.name(), percent::decode(name));
                    let mut ours = String::new();
                    param.push_to(&mut ours);
                    let mut escaped = String::new();
                    push_param(&mut escaped, text);
                    prop_assert_eq!(ours, escaped);
                }
            }

            #[test]
            fn location_keeps_the_targets_scheme_host_and_path(
                query in "([ -~]|\\r|\\n|\\x00|%0[dDaA]|%2[3fF]|[\\u{80}-\\u{10ffff}]){0,60}",
                pick in 0usize..4,
                click in any::<bool>(),
            ) {
                let target = TARGETS[pick];
                let id = ClickId::from_parts(1_700_000_000_000, [7; 10]);
                let value = location(link(target, true).target(), true, Some(&query), &ours(), click.then_some(&id)).header();
                let out = value.to_str().expect("visible ASCII");
                prop_assert!(!out.contains(['\r', '\n', '\0']), "{}", out);
                prop_assert_eq!(parts(out), parts(target));
                if let Some((_, fragment)) = target.split_once('#') {
                    let suffix = format!("#{fragment}");
                    prop_assert!(out.ends_with(&suffix), "{}", out);
                }
            }
        }
    }
}
