//! The serving map: code → the links that answer to it (one for every host,
//! and any number scoped to one host). Readers never block on a reload: every
//! code's entry is replaced whole, so a request sees the old link or the new
//! one, never half of either, and a code present before and after a reload
//! never disappears in between.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use super::Link;

/// The links that answer to one code.
#[derive(Debug, Clone, Default)]
struct Entry {
    /// The link with no `domain`: serves every host.
    any: Option<Arc<Link>>,
    /// Links bound to one host each (lower-case).
    scoped: Vec<Arc<Link>>,
}

impl Entry {
    fn len(&self) -> usize {
        usize::from(self.any.is_some()) + self.scoped.len()
    }

    /// Puts `link` in its slot; returns true when it is new rather than a replacement.
    fn put(&mut self, link: Arc<Link>) -> bool {
        match link.domain.as_deref() {
            None => self.any.replace(link).is_none(),
            Some(domain) => {
                if let Some(slot) = self
                    .scoped
                    .iter_mut()
                    .find(|l| l.domain.as_deref() == Some(domain))
                {
                    *slot = link;
                    false
                } else {
                    self.scoped.push(link);
                    true
                }
            }
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Resolution {
    Found(Arc<Link>),
    NotFound,
}

/// The concurrent link map read by every request.
#[derive(Debug, Default)]
pub struct LinkStore {
    map: DashMap<Box<str>, Entry>,
    links: AtomicUsize,
    /// Bumped by every change, so a snapshot writer can tell whether anything changed.
    generation: std::sync::atomic::AtomicU64,
}

impl LinkStore {
    pub fn new() -> Self {
        LinkStore::default()
    }

    /// Finds the link for `code` on `host` (lower-case, without port): a link
    /// bound to that host wins over one that serves every host.
    pub fn resolve(&self, host: &str, code: &str) -> Resolution {
        let Some(entry) = self.map.get(code) else {
            return Resolution::NotFound;
        };
        let scoped = entry.scoped.iter().find(|l| {
            l.domain
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(host))
        });
        match scoped.or(entry.any.as_ref()) {
            Some(link) => Resolution::Found(Arc::clone(link)),
            None => Resolution::NotFound,
        }
    }

    /// The link stored for exactly this domain (`None` = the every-host link).
    pub fn get(&self, domain: Option<&str>, code: &str) -> Option<Arc<Link>> {
        let entry = self.map.get(code)?;
        match domain {
            None => entry.any.clone(),
            Some(d) => entry
                .scoped
                .iter()
                .find(|l| l.domain.as_deref() == Some(d))
                .cloned(),
        }
    }

    /// Changes so far (any upsert, removal or reload).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Every link, collected shard by shard (no lock is held while the
    /// caller uses them).
    pub fn all(&self) -> Vec<Arc<Link>> {
        let mut out = Vec::with_capacity(self.len());
        for entry in self.map.iter() {
            out.extend(entry.any.iter().cloned());
            out.extend(entry.scoped.iter().cloned());
        }
        out
    }

    /// Any link with this code, whatever its domain.
    pub fn get_any(&self, code: &str) -> Option<Arc<Link>> {
        let entry = self.map.get(code)?;
        entry.any.clone().or_else(|| entry.scoped.first().cloned())
    }

    /// Number of links served.
    pub fn len(&self) -> usize {
        self.links.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds or replaces one link; true when it was new.
    pub fn upsert(&self, link: Link) -> bool {
        let mut entry = self.map.entry(link.code.as_str().into()).or_default();
        let created = entry.put(Arc::new(link));
        drop(entry);
        self.changed();
        if created {
            self.links.fetch_add(1, Ordering::Relaxed);
        }
        created
    }

    /// Removes one link; true when it existed.
    pub fn remove(&self, domain: Option<&str>, code: &str) -> bool {
        let removed = match self.map.get_mut(code) {
            None => false,
            Some(mut entry) => match domain {
                None => entry.any.take().is_some(),
                Some(d) => {
                    let before = entry.scoped.len();
                    entry.scoped.retain(|l| l.domain.as_deref() != Some(d));
                    entry.scoped.len() != before
                }
            },
        };
        if removed {
            self.changed();
            self.links.fetch_sub(1, Ordering::Relaxed);
            self.map.remove_if(code, |_, e| e.len() == 0);
        }
        removed
    }

    /// Makes the store hold exactly `links` (a later duplicate of the same
    /// domain and code wins). Codes in both sets are replaced in place, codes
    /// no longer present are removed last, so concurrent readers never miss a
    /// code that exists before and after.
    pub fn replace_all(&self, links: Vec<Link>) {
        let mut next: HashMap<Box<str>, Entry> = HashMap::with_capacity(links.len());
        for link in links {
            next.entry(link.code.as_str().into())
                .or_default()
                .put(Arc::new(link));
        }
        let keep: HashSet<Box<str>> = next.keys().cloned().collect();
        let total = next.values().map(Entry::len).sum();
        for (code, entry) in next {
            self.map.insert(code, entry);
        }
        self.map.retain(|code, _| keep.contains(code));
        self.links.store(total, Ordering::Relaxed);
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(code: &str, domain: Option<&str>, target: &str) -> Link {
        let mut v = serde_json::json!({"code": code, "target": target});
        if let Some(d) = domain {
            v["domain"] = d.into();
        }
        Link::from_json(&v.to_string()).unwrap()
    }

    fn target_of(r: Resolution) -> Option<String> {
        match r {
            Resolution::Found(l) => Some(l.target.to_string()),
            Resolution::NotFound => None,
        }
    }

    #[test]
    fn host_scoped_codes_win_over_global_ones() {
        let s = LinkStore::new();
        s.replace_all(vec![
            link("abc", None, "https://any.example/"),
            link("abc", Some("go.a.example"), "https://a.example/"),
            link("xyz", Some("go.a.example"), "https://a.example/xyz"),
        ]);
        assert_eq!(s.len(), 3);
        assert_eq!(
            target_of(s.resolve("go.a.example", "abc")).unwrap(),
            "https://a.example/"
        );
        assert_eq!(
            target_of(s.resolve("GO.A.EXAMPLE", "abc")).unwrap(),
            "https://a.example/"
        );
        assert_eq!(
            target_of(s.resolve("other.example", "abc")).unwrap(),
            "https://any.example/"
        );
        assert_eq!(target_of(s.resolve("other.example", "xyz")), None);
        assert_eq!(
            target_of(s.resolve("go.a.example", "ABC")),
            None,
            "codes are case-sensitive"
        );
    }

    #[test]
    fn replace_all_swaps_the_set() {
        let s = LinkStore::new();
        s.replace_all(vec![
            link("a", None, "https://x.example/1"),
            link("b", None, "https://x.example/2"),
        ]);
        s.replace_all(vec![
            link("b", None, "https://x.example/3"),
            link("c", None, "https://x.example/4"),
        ]);
        assert_eq!(s.len(), 2);
        assert_eq!(target_of(s.resolve("h", "a")), None);
        assert_eq!(
            target_of(s.resolve("h", "b")).unwrap(),
            "https://x.example/3"
        );
        assert_eq!(
            target_of(s.resolve("h", "c")).unwrap(),
            "https://x.example/4"
        );
    }

    #[test]
    fn upsert_and_remove_keep_the_count() {
        let s = LinkStore::new();
        assert!(s.upsert(link("a", None, "https://x.example/1")));
        assert!(!s.upsert(link("a", None, "https://x.example/2")));
        assert!(s.upsert(link("a", Some("h.example"), "https://x.example/3")));
        assert_eq!(s.len(), 2);
        assert!(s.remove(Some("h.example"), "a"));
        assert!(!s.remove(Some("h.example"), "a"));
        assert_eq!(
            s.get(None, "a").unwrap().target.as_ref(),
            "https://x.example/2"
        );
        assert!(s.remove(None, "a"));
        assert!(s.is_empty());
        assert!(s.map.is_empty());
    }
}
