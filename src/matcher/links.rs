//! The link map the matcher credits referral codes through and reads the
//! advocates' company domains from: the edge's own (`links.file`, and with
//! Kafka the links topic followed as every edge follows it), and the rules
//! of the join built around it.

use std::sync::Arc;

use anyhow::Context;

use super::join::Rules;
use crate::config::Config;
use crate::kafka::replicate::Replication;
use crate::links::{LinkReloader, LinkStore};

/// `links.file` loaded. A file that cannot be read stops the matcher: it
/// would publish `unknown_code` for every code it should have credited.
pub fn load_file(config: &Config) -> anyhow::Result<Arc<LinkStore>> {
    let store = Arc::new(LinkStore::new());
    let (loaded, rejected) = LinkReloader::new(Arc::clone(&store), config.links.file.clone())
        .reload()
        .with_context(|| format!("links.file {}", config.links.file.display()))?;
    tracing::info!(loaded, rejected, file = %config.links.file.display(), "matcher: links loaded");
    Ok(store)
}

/// Follows `kafka.links_topic` into `store` (admin changes made on any edge).
pub fn follow(config: &Config, store: &Arc<LinkStore>) -> anyhow::Result<Arc<Replication>> {
    crate::links::replication::follow(
        &config.kafka,
        format!("{}-match", config.node_name()),
        Arc::clone(store),
        Default::default(),
    )
    .context("kafka: cannot follow the links topic")
}

/// The join's rules from the config, over `links`.
pub fn rules(config: &Config, links: Arc<LinkStore>) -> Rules {
    Rules {
        links,
        window_ms: u64::from(config.attribution.window_days) * 86_400_000,
        hold: config.matcher.hold(),
    }
}
