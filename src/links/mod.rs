//! Links: how a link field is declared (`field`: a field's kind says its
//! JSON, check, forms, packing and schema; `kinds`: the kinds and the
//! values they hold, the short code among them), the link and its
//! `preview` declared once (`link`, `preview`), its redirect rules
//! (`rules`), its split test (`variants`), the choice of a click's
//! destination among them (`destination`), the packed record
//! (`packed`) in the concurrent map the request path reads (`store`), the
//! one JSON Lines loader (`load`), the links file's reload (`reload`),
//! snapshots (`snapshot`), changes one at a time (`editor`) and their
//! replication through the links topic (`replication`).

mod destination;
mod editor;
pub mod field;
mod kinds;
mod link;
mod load;
pub mod packed;
mod preview;
mod reload;
pub mod replication;
pub mod rules;
pub mod snapshot;
mod store;
pub mod variants;

pub use destination::Destination;
pub use editor::{LinkEditor, Publish};
pub use field::LinkError;
pub use kinds::{
    Host, LinkStatus, MAX_CODE_CHARS, MAX_ID_BYTES, OptionalTarget, RedirectStatus, ShortCode,
};
pub use link::{Link, LinkRecord, LinkView};
pub use load::{
    LineError, Lines, Report, check_file, check_file_into, load_into, load_lines, load_threads,
};
pub use packed::LinkRef;
pub use preview::{Preview, PreviewRecord, PreviewView};
pub use reload::LinkReloader;
pub use rules::Visit;
pub use store::{LinkStore, Resolution};

/// A link's identity in the map: (domain, code).
pub type LinkKey = (Option<Box<str>>, Box<str>);
