//! Changing the served links one at a time (the admin API): every change is
//! applied to the local map first, then published for the other nodes, so
//! "store, then publish" is written once.

use std::sync::Arc;

use super::{Link, LinkStore};

/// Where a change goes besides the local map (the links topic, with Kafka).
pub trait Publish: Send + Sync + std::fmt::Debug {
    /// A link was created or replaced.
    fn upserted(&self, link: &Link);
    /// A link was deleted.
    fn deleted(&self, domain: Option<&str>, code: &str);
}

/// Applies changes to the served map and publishes them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LinkEditor {
    store: Arc<LinkStore>,
    publish: Option<Arc<dyn Publish>>,
}

impl LinkEditor {
    pub fn new(store: Arc<LinkStore>, publish: Option<Arc<dyn Publish>>) -> LinkEditor {
        LinkEditor { store, publish }
    }

    /// The map the changes apply to.
    pub fn store(&self) -> &LinkStore {
        &self.store
    }

    /// Creates or replaces a link; true when it was new.
    pub fn upsert(&self, link: Link) -> bool {
        if let Some(p) = &self.publish {
            p.upserted(&link);
        }
        let created = self.store.upsert(link);
        crate::metrics::links_gauge().set(self.store.len() as f64);
        created
    }

    /// Deletes a link; false when there was none.
    pub fn remove(&self, domain: Option<&str>, code: &str) -> bool {
        if !self.store.remove(domain, code) {
            return false;
        }
        if let Some(p) = &self.publish {
            p.deleted(domain, code);
        }
        crate::metrics::links_gauge().set(self.store.len() as f64);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Recorded(Mutex<Vec<String>>);

    impl Publish for Recorded {
        fn upserted(&self, link: &Link) {
            self.0.lock().unwrap().push(format!("+{}", link.code));
        }
        fn deleted(&self, _domain: Option<&str>, code: &str) {
            self.0.lock().unwrap().push(format!("-{code}"));
        }
    }

    #[test]
    fn changes_apply_locally_and_are_published_once() {
        let store = Arc::new(LinkStore::new());
        let published = Arc::new(Recorded::default());
        let editor = LinkEditor::new(
            Arc::clone(&store),
            Some(Arc::clone(&published) as Arc<dyn Publish>),
        );
        let link = Link::from_json(r#"{"code":"a1","target":"https://a.example/"}"#).unwrap();
        assert!(editor.upsert(link.clone()));
        assert!(!editor.upsert(link), "a replacement is not new");
        assert!(store.get(None, "a1").is_some());
        assert!(editor.remove(None, "a1"));
        assert!(!editor.remove(None, "a1"), "nothing left to delete");
        assert!(store.get(None, "a1").is_none());
        assert_eq!(*published.0.lock().unwrap(), ["+a1", "+a1", "-a1"]);
    }
}
