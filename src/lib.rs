//! refedge: an edge service for B2B referral programs that turns a click on a
//! short link into an immediate redirect, attributes it to the advocate with a
//! signed cookie and a click id handed to the landing page, and records a
//! click event without ever waiting on I/O.
//!
//! # How one click flows
//!
//! ```text
//! accept (node, http::server: limits, TLS handshake by SNI) ──► http::router::Edge::handle
//!     ├─► links::LinkStore::resolve(host, code)
//!     ├─► visitor: client address (trusted proxies), bot?, Sec-GPC
//!     ├─► attribution: verify cookie, decide first/last touch, click id
//!     └─► response: status + Location (http::query) + Set-Cookie   ← sent now
//!            │
//!   events::EventSink::record  — synchronous, bounded, never waits
//!            │
//!   spool writer thread: GeoIP, device, repeat flag, address privacy, JSON
//!   line, batched append to a segment file under events.spool_dir, fsync on
//!   an interval
//!            │
//!   shipper thread (events.sink = "kafka"): segment ─► rdkafka producer ─►
//!   delivery report ─► checkpoint, shipped segments deleted
//! ```
//!
//! # Modules
//!
//! - [`config`]: the TOML file, `REFEDGE_*` overrides, validation.
//! - [`links`]: short codes, link validation, the packed concurrent map, the
//!   parallel loader, snapshots, replication through the links topic.
//! - [`http`]: accept loop and connection limits, one socket per public
//!   thread with connections steered by CPU and balanced between threads,
//!   router, `Location` building, the plain listener's redirect to HTTPS.
//! - [`tls`]: certificates per brand domain from `tls.cert_dir`, chosen by SNI,
//!   reloaded on change; the rustls configuration.
//! - [`visitor`]: client address, bots and preview fetchers, device, privacy signals.
//! - [`attribution`]: click ids, the signed cookie, first/last touch.
//! - [`events`]: the click event, the hand-off, enrichment, the spool, the
//!   Kafka shipper.
//! - [`geo`]: GeoIP databases, looked up in the writer.
//! - [`privacy`]: what of the client address an event keeps.
//! - [`metrics`]: every metric name, and handles for the hot path.
//! - [`admin`]: health, readiness and metrics endpoints, the links API.
//! - [`node`]: start-up, reload and the shutdown sequence.

pub mod admin;
pub mod alloc;
pub mod attribution;
pub mod config;
pub mod events;
pub mod geo;
pub mod http;
pub mod kafka;
pub mod links;
pub mod metrics;
pub mod node;
pub mod prehashed;
pub mod privacy;
pub mod shutdown;
pub mod tls;
pub mod visitor;
