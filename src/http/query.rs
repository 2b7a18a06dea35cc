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
mod tests;
