//! The visitor's most preferred language, from `Accept-Language` (RFC 9110
//! §12.5.4): the language range with the highest quality value (the first
//! of equals), as its primary subtag in lower case. `fr-CA;q=0.9, en;q=0.8`
//! is `fr`. A header whose best range is `*`, whose ranges all have q=0, or
//! that does not parse names no language: a rule on languages then never
//! holds, and nothing is an error.

/// A primary language subtag: 1–8 ASCII letters, lower case.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Language {
    bytes: [u8; 8],
    len: u8,
}

impl Language {
    /// `tag`'s primary subtag, when it is 1–8 letters (any case).
    pub fn primary(tag: &str) -> Option<Language> {
        let primary = tag.split('-').next()?;
        if primary.is_empty()
            || primary.len() > 8
            || !primary.bytes().all(|b| b.is_ascii_alphabetic())
        {
            return None;
        }
        let mut bytes = [0; 8];
        for (to, from) in bytes.iter_mut().zip(primary.bytes()) {
            *to = from.to_ascii_lowercase();
        }
        Some(Language {
            bytes,
            len: primary.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Debug for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most preferred language of an `Accept-Language` value.
pub fn preferred(header: &[u8]) -> Option<Language> {
    let header = std::str::from_utf8(header).ok()?;
    let mut best: Option<(u16, &str)> = None;
    for item in header.split(',') {
        let item = item.trim_matches([' ', '\t']);
        if item.is_empty() {
            // RFC 9110's list syntax allows empty elements.
            continue;
        }
        let mut parts = item.split(';');
        let range = parts.next()?.trim_matches([' ', '\t']);
        if !is_range(range) {
            return None;
        }
        let mut quality = 1000;
        for parameter in parts {
            let (name, value) = parameter.trim_matches([' ', '\t']).split_once('=')?;
            if !name.trim_end().eq_ignore_ascii_case("q") {
                return None;
            }
            quality = qvalue(value.trim_start())?;
        }
        if quality > 0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, range));
        }
    }
    let (_, range) = best?;
    if range == "*" {
        return None;
    }
    Language::primary(range)
}

/// `*` or `1*8ALPHA *("-" 1*8alphanum)`.
fn is_range(range: &str) -> bool {
    if range == "*" {
        return true;
    }
    let mut subtags = range.split('-');
    let first_ok = subtags
        .next()
        .is_some_and(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A quality value in thousandths: `0`, `0.`, `0.5`, `0.875`, `1`, `1.000`.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in fraction.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn best(header: &str) -> Option<String> {
        preferred(header.as_bytes()).map(|l| l.as_str().to_owned())
    }

    #[test]
    fn quality_values_order_the_ranges() {
        assert_eq!(best("fr-CA;q=0.9, en;q=0.8").as_deref(), Some("fr"));
        assert_eq!(best("en;q=0.8, fr-CA;q=0.9").as_deref(), Some("fr"));
        assert_eq!(best("de").as_deref(), Some("de"));
        assert_eq!(best("PT-br,pt;q=0.9").as_deref(), Some("pt"));
        // Equal qualities: the first wins; q=1 is the default.
        assert_eq!(best("es;q=0.5, it;q=0.5").as_deref(), Some("es"));
        assert_eq!(best("nl;q=0.999, sv").as_deref(), Some("sv"));
        // Chrome's usual header, and an empty element.
        assert_eq!(best("en-US,en;q=0.9,fr;q=0.8").as_deref(), Some("en"));
        assert_eq!(best(", ja ,").as_deref(), Some("ja"));
        assert_eq!(best("zh-Hant-TW;q=0.7, *;q=0.1").as_deref(), Some("zh"));
    }

    #[test]
    fn a_wildcard_or_nothing_acceptable_names_no_language() {
        assert_eq!(best("*"), None);
        assert_eq!(best("*, en;q=0.5"), None);
        assert_eq!(best("en;q=0"), None);
        assert_eq!(best(""), None);
        // A wildcard below a language does not hide it.
        assert_eq!(best("en;q=0.5, *;q=0.1").as_deref(), Some("en"));
    }

    #[test]
    fn malformed_headers_name_no_language() {
        for header in [
            "en;q=2",
            "en;q=0.1234",
            "en;q=",
            "en;level=1",
            "en_US",
            "123",
            "en-",
            "toolonglanguage",
            "fr;q=0.9 en",
            "é",
        ] {
            assert_eq!(best(header), None, "{header:?}");
        }
        assert_eq!(preferred(b"fr\xff"), None);
    }
}
