//! Where a click goes: the first of a link's rules that holds (`rules`),
//! else the variant of its split test that the visitor keeps (`variants`),
//! else its target.

use std::borrow::Cow;

use super::LinkRef;
use super::kinds::RedirectStatus;
use super::rules::{Visit, first_holding};
use super::variants::pick;

/// Where a click goes: the link's target, a rule's or a variant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination<'a> {
    pub target: &'a str,
    pub redirect: RedirectStatus,
    /// Index of the rule that held.
    pub rule: Option<u8>,
    /// Index of the variant drawn.
    pub variant: Option<u8>,
}

impl LinkRef {
    /// The destination of a click: the first rule that holds, else a
    /// variant (kept by the visitor's first click), else the target. The
    /// visitor is made (`visit`) only for a link with rules or variants:
    /// for the others this is one flag test.
    #[inline]
    pub fn destination<V: Visit>(&self, visit: impl FnOnce() -> V) -> Destination<'_> {
        let mut destination = Destination {
            target: self.target(),
            redirect: self.redirect(),
            rule: None,
            variant: None,
        };
        if !self.has_choices() {
            return destination;
        }
        let Some((rules, variants)) = self.choices() else {
            return destination;
        };
        // Read in place, the tail's fields borrow the record; one that is
        // absent is an empty default.
        let (rules, variants) = (in_place(rules.0), in_place(variants.0));
        let mut visit = visit();
        if let Some(rule) = first_holding(rules, &mut visit) {
            destination.target = rule.target;
            destination.redirect = rule.redirect.unwrap_or(destination.redirect);
            destination.rule = Some(rule.index);
        } else if !variants.is_empty()
            && let Some((index, target)) = pick(variants, visit.first_click(), self.code())
        {
            destination.target = target;
            destination.variant = Some(index);
        }
        destination
    }
}

/// Packed bytes read from a record: borrowed from it; an absent field is
/// its empty default.
fn in_place(bytes: Cow<'_, [u8]>) -> &[u8] {
    match bytes {
        Cow::Borrowed(b) => b,
        Cow::Owned(_) => &[],
    }
}
