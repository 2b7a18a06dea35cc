//! Links: the short-code type, one link's validated fields, the concurrent store
//! that the request path reads, and the JSON Lines loader used at start and on
//! reload.

mod editor;
mod link;
mod loader;
pub mod packed;
mod reload;
pub mod replication;
pub mod snapshot;
mod store;

pub use editor::{LinkEditor, Publish};
pub use link::{
    Link, LinkError, LinkRecord, LinkStatus, LinkView, RedirectStatus, ShortCode, validate_target,
};
pub use loader::{
    LineError, LoadReport, load_file, load_lines, load_threads, parse_lines, parse_lines_bytes,
};
pub use packed::LinkRef;
pub use reload::LinkReloader;
pub use store::{LinkStore, Resolution};

/// A link's identity in the map: (domain, code).
pub type LinkKey = (Option<Box<str>>, Box<str>);
