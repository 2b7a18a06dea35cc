//! Rules checked: JSON in, packed bytes out (the layout `rules` reads),
//! every mistake named by its path (`rules[3].when.country[0]`). The
//! helpers serve `variants` too.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{
    AFTER, BEFORE, CONDITIONS, COUNTRY, DEVICE, LANGUAGE, MAX_QUERY_NAME_CHARS, MAX_QUERY_PARAMS,
    MAX_QUERY_VALUE_CHARS, MAX_RULES, MAX_RULES_BYTES, MAX_VALUES, OS, QUERY, REDIRECTS,
};
use crate::links::LinkError;
use crate::visitor::device::{Class, Os};
use crate::visitor::language::Language;

pub(in crate::links) fn at(path: &str, reason: impl Into<String>) -> LinkError {
    LinkError::field(path.to_owned(), reason)
}

pub(in crate::links) fn array<'v>(
    value: &'v Value,
    path: &str,
    max: usize,
) -> Result<&'v Vec<Value>, LinkError> {
    let list = value
        .as_array()
        .ok_or_else(|| at(path, "must be an array"))?;
    if list.is_empty() {
        return Err(at(path, "must not be empty"));
    }
    if list.len() > max {
        return Err(at(path, format!("has more than {max} entries")));
    }
    Ok(list)
}

pub(in crate::links) fn object<'v>(
    value: &'v Value,
    path: &str,
) -> Result<&'v Map<String, Value>, LinkError> {
    value
        .as_object()
        .ok_or_else(|| at(path, "must be an object"))
}

pub(in crate::links) fn string<'v>(value: &'v Value, path: &str) -> Result<&'v str, LinkError> {
    value.as_str().ok_or_else(|| at(path, "must be a string"))
}

pub(in crate::links) fn target(value: Option<&Value>, path: &str) -> Result<String, LinkError> {
    let value = value.ok_or_else(|| at(path, "is required"))?;
    let target = string(value, path)?;
    crate::target::check(target).map_err(|reason| at(path, reason))?;
    Ok(target.to_owned())
}

/// A JSON integer, also written with a zero fraction (`50.0`), as JSON
/// Schema's `integer` takes it.
pub(in crate::links) fn whole_number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(f))
            .map(|f| f as u64)
    })
}

pub(in crate::links) fn push_text16(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// A set of names (`device`, `os`) as bits, by their place in `names`.
fn name_set(value: &Value, path: &str, names: &[&str]) -> Result<u8, LinkError> {
    let mut bits = 0;
    for (i, v) in array(value, path, names.len())?.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let name = string(v, &here)?;
        let place = names
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| at(&here, format!("must be one of {}", names.join(", "))))?;
        bits |= 1 << place;
    }
    Ok(bits)
}

fn instant(value: &Value, path: &str) -> Result<i64, LinkError> {
    let text = string(value, path)?;
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| at(path, "must be an RFC 3339 date-time"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// One rule's `when`, packed.
fn pack_when(value: Option<&Value>, path: &str, out: &mut Vec<u8>) -> Result<(), LinkError> {
    let when = object(value.ok_or_else(|| at(path, "is required"))?, path)?;
    if when.is_empty() {
        return Err(at(path, "must name at least one condition"));
    }
    if let Some(unknown) = when
        .keys()
        .find(|k| !CONDITIONS.iter().any(|(n, _)| n == k))
    {
        return Err(at(
            &format!("{path}.{unknown}"),
            "is not a condition (device, os, country, language, query, after, before)",
        ));
    }
    let mut conditions = 0;
    let bits_at = out.len();
    out.push(0);
    let mut span = (i64::MIN, i64::MAX);
    if let Some(v) = when.get("after") {
        span.0 = instant(v, &format!("{path}.after"))?;
        out.extend_from_slice(&span.0.to_le_bytes());
        conditions |= AFTER;
    }
    if let Some(v) = when.get("before") {
        span.1 = instant(v, &format!("{path}.before"))?;
        out.extend_from_slice(&span.1.to_le_bytes());
        conditions |= BEFORE;
    }
    if span.0 >= span.1 {
        return Err(at(&format!("{path}.before"), "must be later than after"));
    }
    if let Some(v) = when.get("query") {
        let here = format!("{path}.query");
        let query = object(v, &here)?;
        if query.is_empty() || query.len() > MAX_QUERY_PARAMS {
            return Err(at(
                &here,
                format!("must name 1 to {MAX_QUERY_PARAMS} parameters"),
            ));
        }
        out.push(query.len() as u8);
        for (name, value) in query {
            let there = format!("{here}.{name}");
            if name.is_empty() || name.chars().count() > MAX_QUERY_NAME_CHARS {
                return Err(at(
                    &there,
                    format!("a parameter name is 1 to {MAX_QUERY_NAME_CHARS} characters"),
                ));
            }
            let value = string(value, &there)?;
            if value.chars().count() > MAX_QUERY_VALUE_CHARS {
                return Err(at(
                    &there,
                    format!("is longer than {MAX_QUERY_VALUE_CHARS} characters"),
                ));
            }
            push_text16(out, name);
            push_text16(out, value);
        }
        conditions |= QUERY;
    }
    if let Some(v) = when.get("language") {
        let here = format!("{path}.language");
        let list = array(v, &here, MAX_VALUES)?;
        out.push(list.len() as u8);
        for (i, v) in list.iter().enumerate() {
            let there = format!("{here}[{i}]");
            let tag = string(v, &there)?;
            let language = Language::primary(tag)
                .filter(|l| l.as_str().len() == tag.len() && (2..=3).contains(&tag.len()))
                .ok_or_else(|| {
                    at(
                        &there,
                        "must be a primary language subtag: 2 or 3 letters (fr, en, pt)",
                    )
                })?;
            out.push(language.as_str().len() as u8);
            out.extend_from_slice(language.as_str().as_bytes());
        }
        conditions |= LANGUAGE;
    }
    if let Some(v) = when.get("device") {
        out.push(name_set(
            v,
            &format!("{path}.device"),
            &Class::ALL.map(Class::as_str),
        )?);
        conditions |= DEVICE;
    }
    if let Some(v) = when.get("os") {
        out.push(name_set(
            v,
            &format!("{path}.os"),
            &Os::ALL.map(Os::as_str),
        )?);
        conditions |= OS;
    }
    if let Some(v) = when.get("country") {
        let here = format!("{path}.country");
        let list = array(v, &here, MAX_VALUES)?;
        out.push(list.len() as u8);
        for (i, v) in list.iter().enumerate() {
            let there = format!("{here}[{i}]");
            let code = string(v, &there)?;
            if code.eq_ignore_ascii_case("uk") {
                return Err(at(
                    &there,
                    "is not an ISO 3166-1 code: the United Kingdom is GB",
                ));
            }
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(at(
                    &there,
                    "must be an ISO 3166-1 alpha-2 country code (CA, DE, US)",
                ));
            }
            out.extend_from_slice(code.to_ascii_uppercase().as_bytes());
        }
        conditions |= COUNTRY;
    }
    out[bits_at] = conditions;
    Ok(())
}

pub(in crate::links) fn pack_rules(field: &str, value: &Value) -> Result<Vec<u8>, LinkError> {
    if value.as_array().is_some_and(Vec::is_empty) {
        // No rules: the link's target.
        return Ok(Vec::new());
    }
    let rules = array(value, field, MAX_RULES)?;
    let mut out = vec![rules.len() as u8];
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let rule = object(rule, &path)?;
        if let Some(unknown) = rule
            .keys()
            .find(|k| !["when", "target", "redirect"].contains(&k.as_str()))
        {
            return Err(at(
                &format!("{path}.{unknown}"),
                "is not a rule field (when, target, redirect)",
            ));
        }
        let size_at = out.len();
        out.extend_from_slice(&[0, 0]);
        let redirect = match rule.get("redirect").filter(|v| !v.is_null()) {
            None => 0,
            Some(v) => {
                let here = format!("{path}.redirect");
                let code = v
                    .as_u64()
                    .and_then(|c| REDIRECTS.iter().position(|r| u64::from(*r) == c))
                    .ok_or_else(|| at(&here, "must be 301, 302, 303, 307 or 308"))?;
                code as u8 + 1
            }
        };
        out.push(redirect);
        let target = target(rule.get("target"), &format!("{path}.target"))?;
        push_text16(&mut out, &target);
        pack_when(rule.get("when"), &format!("{path}.when"), &mut out)?;
        let size = out.len() - size_at - 2;
        out[size_at..size_at + 2].copy_from_slice(&(size as u16).to_le_bytes());
    }
    if out.len() > MAX_RULES_BYTES {
        return Err(at(
            field,
            format!("take {} bytes, at most {MAX_RULES_BYTES}", out.len()),
        ));
    }
    Ok(out)
}
