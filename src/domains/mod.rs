//! A brand's short domain (README: "Domains"): where its dead ends go, the
//! app files that let its apps open its links, whether the edge obtains its
//! certificate. Declared once (`Domain`, with the links' field machinery),
//! kept in a map the request path reads (`DomainStore`), loaded from
//! `domains.file` (`load`), changed through the admin API (`DomainEditor`;
//! `admin::domains_api`) and, with Kafka, replicated to every node through
//! `kafka.domains_topic` like links.

mod document;
mod load;

pub use document::JsonDocument;
pub use load::{DomainsFile, LineError, load_file};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use http::HeaderValue;

use crate::kafka::replicate::{Replica, Replication, ReplicationConfig};
use crate::links::field::{FieldKind, LinkError, field_group};
use crate::links::{Host, OptionalTarget};

/// Largest `.well-known` document, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

field_group! {
    /// A brand's short domain: a host and what the edge does for it.
    DomainRecord / DomainView / Domain, prefix "" {
        /// Lower-case DNS name, as in a link's `domain`.
        host: Host, hot, required true;
        /// Where this host's unknown, expired and disabled codes go
        /// (overrides `links.fallback_url`).
        fallback_url: OptionalTarget, hot;
        /// Served byte for byte at `/.well-known/apple-app-site-association`
        /// (a JSON object, at most 64 KiB).
        apple_app_site_association: JsonDocument<false>, hot;
        /// Served byte for byte at `/.well-known/assetlinks.json` (a JSON
        /// array, at most 64 KiB).
        assetlinks: JsonDocument<true>, hot;
        /// Whether the edge obtains this host's certificate from the ACME CA
        /// (`tls.acme`); absent = yes when ACME is configured.
        acme: Switch, hot;
    }
}

impl<'a> DomainRecord<'a> {
    /// The fields of one JSON object (serde would also take an array).
    pub fn parse(json: &'a [u8]) -> Result<DomainRecord<'a>, Vec<LinkError>> {
        if json.trim_ascii_start().first() != Some(&b'{') {
            return Err(vec![LinkError::Json("a domain is a JSON object".into())]);
        }
        serde_json::from_slice(json).map_err(|e| {
            let s = e.to_string();
            vec![LinkError::Json(
                s.rfind(" at line ")
                    .map_or(s.clone(), |i| s[..i].to_owned()),
            )]
        })
    }
}

/// An optional `true`/`false`.
#[derive(Debug)]
pub enum Switch {}

impl FieldKind for Switch {
    type Wire<'a> = bool;
    type View<'a> = Option<bool>;
    type Owned = Option<bool>;

    fn check<'a, 'b: 'a>(
        _: &'static str,
        wire: Option<&'a bool>,
    ) -> Result<Option<bool>, LinkError> {
        Ok(wire.copied())
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        *view
    }
    fn own(view: &Option<bool>) -> Option<bool> {
        *view
    }
    fn view(owned: &Option<bool>) -> Option<bool> {
        *owned
    }
    fn schema() -> serde_json::Value {
        serde_json::json!({"type": "boolean"})
    }
    fn example() -> bool {
        false
    }
}

impl Domain {
    /// Parses and validates one JSON object (a domains-file line, a topic
    /// value, an admin body), reporting every wrong field.
    pub fn from_json(text: &str) -> Result<Domain, Vec<LinkError>> {
        Domain::from_record(&DomainRecord::parse(text.as_bytes())?)
    }

    /// Validates a record: every field's rule, and a host.
    pub fn from_record(record: &DomainRecord<'_>) -> Result<Domain, Vec<LinkError>> {
        let domain = record.check()?.to_owned();
        if domain.host.is_none() {
            return Err(vec![LinkError::field("host", "is required")]);
        }
        Ok(domain)
    }

    /// The host (every `Domain` has one).
    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or("")
    }

    /// The domain as JSON, its documents byte for byte.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.view().to_record()).unwrap_or_default()
    }
}

/// A domain as the request path reads it.
#[derive(Debug)]
pub struct Entry {
    pub domain: Domain,
    /// `fallback_url` as a header value, made once.
    pub fallback: Option<HeaderValue>,
    /// Set by the domains file (a reload may remove it), not the admin API.
    from_file: bool,
}

/// The app files a domain serves, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppFile {
    AppleAppSiteAssociation,
    AssetLinks,
}

impl AppFile {
    /// The app file at `path`, if it names one.
    pub fn at(path: &str) -> Option<AppFile> {
        match path {
            "/.well-known/apple-app-site-association" => Some(AppFile::AppleAppSiteAssociation),
            "/.well-known/assetlinks.json" => Some(AppFile::AssetLinks),
            _ => None,
        }
    }
}

impl Entry {
    /// The document this domain serves as `file`, if it has one.
    pub fn app_file(&self, file: AppFile) -> Option<&str> {
        match file {
            AppFile::AppleAppSiteAssociation => self.domain.apple_app_site_association.as_deref(),
            AppFile::AssetLinks => self.domain.assetlinks.as_deref(),
        }
    }
}

/// Every domain, by host (lower case). Read on dead ends and app files
/// only; one flag test while there are none.
#[derive(Debug, Default)]
pub struct DomainStore {
    map: RwLock<HashMap<Box<str>, Arc<Entry>>>,
    any: AtomicBool,
}

impl DomainStore {
    pub fn new() -> DomainStore {
        DomainStore::default()
    }

    /// The domain of `host` (any case, one trailing dot allowed).
    pub fn get(&self, host: &str) -> Option<Arc<Entry>> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        let host = crate::hostname::without_root_dot(host);
        let map = self.map.read().ok()?;
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            map.get(host.to_ascii_lowercase().as_str()).cloned()
        } else {
            map.get(host).cloned()
        }
    }

    /// Every domain, by host.
    pub fn list(&self) -> Vec<Arc<Entry>> {
        let mut all: Vec<Arc<Entry>> = self
            .map
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.domain.host().cmp(b.domain.host()));
        all
    }

    pub fn len(&self) -> usize {
        self.map.read().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, domain: Domain, from_file: bool) -> bool {
        let fallback = domain
            .fallback_url
            .as_deref()
            .and_then(|u| HeaderValue::from_str(u).ok());
        let entry = Arc::new(Entry {
            domain,
            fallback,
            from_file,
        });
        let Ok(mut map) = self.map.write() else {
            return false;
        };
        let created = map.insert(entry.domain.host().into(), entry).is_none();
        self.any.store(true, Ordering::Relaxed);
        created
    }

    /// Creates or replaces a domain (the admin API, the topic); true when
    /// it was new.
    pub fn upsert(&self, domain: Domain) -> bool {
        self.insert(domain, false)
    }

    /// Deletes a domain; false when there was none.
    pub fn remove(&self, host: &str) -> bool {
        let Ok(mut map) = self.map.write() else {
            return false;
        };
        let removed = map.remove(host).is_some();
        self.any.store(!map.is_empty(), Ordering::Relaxed);
        removed
    }

    /// Swaps in the domains file's entries: the file's domains replace the
    /// ones it set before; the admin API's stay unless the file names them.
    pub fn replace_file(&self, domains: Vec<Domain>) {
        if let Ok(mut map) = self.map.write() {
            map.retain(|_, e| !e.from_file);
        }
        for domain in domains {
            self.insert(domain, true);
        }
        let any = self.map.read().is_ok_and(|m| !m.is_empty());
        self.any.store(any, Ordering::Relaxed);
    }
}

/// Domains through `kafka.domains_topic`: key = the host, value = the
/// domain's JSON, a tombstone for a delete.
impl Replica for DomainStore {
    fn apply(&self, key: &str, value: Option<&[u8]>) -> Result<(), String> {
        match value {
            None => {
                self.remove(key);
            }
            Some(payload) => {
                let text = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
                let domain = Domain::from_json(text).map_err(|errors| {
                    let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    format!("an invalid domain: {}", reasons.join("; "))
                })?;
                if domain.host() != key {
                    return Err("a domain whose key is not its host".into());
                }
                self.upsert(domain);
            }
        }
        Ok(())
    }
}

/// Follows `kafka.domains_topic` into `store` from its beginning, as `node`.
pub fn follow(
    kafka: &crate::config::KafkaConfig,
    node: String,
    store: Arc<DomainStore>,
) -> Result<Arc<Replication>, rdkafka::error::KafkaError> {
    let config = ReplicationConfig {
        kafka: kafka.clone(),
        node,
        topic: kafka.domains_topic.clone(),
    };
    Replication::start(&config, store, Default::default())
}

/// Applies admin changes to the served domains, then publishes them.
#[derive(Debug, Clone)]
pub struct DomainEditor {
    store: Arc<DomainStore>,
    publish: Option<Arc<Replication>>,
}

impl DomainEditor {
    pub fn new(store: Arc<DomainStore>, publish: Option<Arc<Replication>>) -> DomainEditor {
        DomainEditor { store, publish }
    }

    pub fn store(&self) -> &DomainStore {
        &self.store
    }

    /// Creates or replaces a domain; true when it was new.
    pub fn upsert(&self, domain: Domain) -> bool {
        if let Some(p) = &self.publish {
            p.publish(
                domain.host().to_owned(),
                Some(domain.to_json().into_bytes()),
            );
        }
        self.store.upsert(domain)
    }

    /// Deletes a domain; false when there was none.
    pub fn remove(&self, host: &str) -> bool {
        if !self.store.remove(host) {
            return false;
        }
        if let Some(p) = &self.publish {
            p.publish(host.to_owned(), None);
        }
        true
    }
}

#[cfg(test)]
mod tests;
