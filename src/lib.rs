//! refedge: an edge service for B2B referral programs that turns a click on a
//! short link into an immediate redirect, attributes it to the advocate with a
//! signed cookie and a click id handed to the landing page, and records a
//! click event without ever waiting on I/O.
//!
//! # How one click flows (each step names its room)
//!
//! ```text
//! node::Node::serve ─ binds nothing itself: listeners come bound (http::Listeners)
//!   http::per_core      one thread + runtime + SO_REUSEPORT socket per core;
//!                       http::balance hands connections from a busy thread over
//!   http::server::serve accept under the connection budget, limits, TLS
//!                       handshake by SNI (tls), hyper per connection,
//!                       driven by http::connection; http::watch keeps its
//!                       idle and header timeouts
//!   http::service       the connection's service (made per connection by
//!                       node::Node::serve): Clicks ─► http::router::Edge::handle
//!                       (`/v1/conversions*` ─► http::Intake, beside it);
//!                       http::heads finds the headers a click reads
//!     ├─► links::LinkStore::resolve(host, code)  (a dead end: the fallback of
//!     │   its domains::DomainStore entry, else links.fallback_url; a domain's
//!     │   `/.well-known` app files: served from the same entry, no event)
//!     ├─► visitor: client address (trusted proxies), bot?, Sec-GPC
//!     ├─► links::destination: the first rule that holds (links::rules,
//!     │   asking http::visit only what it names), else a variant
//!     │   (links::variants), else the target
//!     ├─► attribution: verify cookie, decide first/last touch, click id
//!     │   (a link-preview fetcher of a link with a preview: share::preview_page's
//!     │   page instead; `/{code}/qr.svg|png`: share::qr, no event)
//!     └─► response: status + Location (http::query, whose walk of the
//!         query also finds the channel and an ad click id: risk) + Set-Cookie ← sent now
//!            │
//!   events::EventSink::record — synchronous, bounded, never blocks; a full
//!   hand-off gives the click back (events::handoff::Waiting), and the
//!   service sends the answer once the writer made room for it
//!            │
//!   events::spool writer thread: events::enrich (GeoIP, device, repeat,
//!   risk::flood, address privacy), share::channel (from the Referer when the link's
//!   parameter named none), events::line (one JSON line), batches handed to
//!   spool::disk: its thread appends them to a segment under
//!   events.spool_dir, fsync on an interval
//!            │
//!   events::ship (events.sink = "kafka"): segment ─► events::line's reader ─►
//!   ship::producer (kafka: the one client builder) ─► delivery report ─►
//!   ship::checkpoint, shipped segments deleted
//! ```
//!
//! Conversions come back on the same listeners: `http::intake` checks
//! them (`conversions::conversion`), hands them to the spool writer on a
//! queue of their own and answers once they are fsynced; they ship to the
//! conversions topic like clicks, and `refedge match` (`matcher`, a consumer
//! group with a click index per partition on disk) joins them to clicks and
//! publishes attributions (credited through the click, or through the link a
//! referral code names; reversals; risk flags and holds); `refedge match
//! --spool` does it offline; `refedge deliver` POSTs them to webhooks.
//!
//! Around it: `config` (file, `REFEDGE_*` overlay, validation), the links'
//! control plane (`links::reload` on SIGHUP, `links::LinkEditor` behind the
//! admin API, `links::replication` through the links topic,
//! `links::snapshot`), `admin` (health, readiness latch, metrics, links API)
//! and `shutdown` (signals and the stop sequence with its deadlines).
//!
//! # Rooms
//!
//! - [`commands`]: what each command of the binary does (serve, check,
//!   match), from the loaded config to the exit status.
//! - [`node`]: the composition root; each part built by its own `from_config`.
//! - [`shutdown`]: SIGTERM/SIGINT and the fixed stop sequence.
//! - [`config`]: sections (each key declared once), env overlay,
//!   validation.
//! - [`serde_fields`]: the fields a serde type reads, walked off the type (the
//!   config's keys; the event readers held to their schemas).
//! - [`http`]: listeners, per-core threads, balance, accept loop and limits,
//!   each connection's run, services, router (the headers a click reads,
//!   `Location`), the plain listener's redirect to HTTPS.
//! - [`tls`]: certificates per brand domain chosen by SNI, reloads, the
//!   HTTPS setup.
//! - [`acme`]: certificates from an ACME CA for every brand host: which,
//!   when and how often (the scheduler), the account, one order, the
//!   TLS-ALPN-01 and HTTP-01 answers.
//! - [`links`]: how a link field is declared (`field`, `kinds`), the link
//!   and its preview declared once, its rules (`rules`; `rules::check`,
//!   their JSON checked), split test (`variants`) and the click's
//!   destination among them (`destination`), packed record, store, the one loader, reload,
//!   snapshot, editor, replication.
//! - [`domains`]: a brand's short domain (fallback, app files, certificate
//!   policy), declared like a link, its store, file, editor and topic.
//! - [`visitor`]: client address, bots and preview fetchers, device and OS,
//!   preferred language, privacy signals.
//! - [`attribution`]: click ids, the signed cookie, first/last touch.
//! - [`share`]: what an advocate shares: the click's channel, QR codes of
//!   a link, the personal preview served to link-preview fetchers.
//! - [`conversions`]: the intake and the conversion event.
//! - [`matcher`]: `refedge match`: the join, the consumer group, the
//!   per-partition click index, attributions out; the offline form.
//! - [`analytics`]: `refedge clickhouse schema`: the click and attribution
//!   tables in ClickHouse, fed by the topics or by files.
//! - [`deliver`]: `refedge deliver`: attributions to webhooks, signed per
//!   Standard Webhooks, retried, dead-lettered, at least once (a ledger of
//!   per-endpoint cursors over the attributions topic).
//! - [`risk`]: the flags a click or an attribution carries (paid click ids,
//!   click floods in a fixed table, self-referrals) for the payout system.
//! - [`target`]: what a redirect target may be (links and the fallback).
//! - [`hostname`]: host names compared ignoring case and the root dot.
//! - [`percent`]: percent-decoding of query names and values.
//! - [`bearer`]: bearer tokens, compared in constant time.
//! - [`events`]: the click record, the hand-off, enrichment, the JSON line
//!   and its reader, the spool, the Kafka shipper; `events::schemas` holds
//!   every event shape to its JSON Schema.
//! - [`kafka`]: the one librdkafka client builder (from the `[kafka]`
//!   section), logs into `tracing`; `kafka::topics`, the topics each
//!   command produces to, created when missing; `kafka::replicate`, state
//!   every node follows through a compacted topic (links, domains).
//! - [`geo`]: GeoIP databases, looked up in the writer (the country also on
//!   the request path, for a link whose rules name countries).
//! - [`privacy`]: what of the client address an event keeps.
//! - [`metrics`]: every metric declared once (`names`), registry handles,
//!   and the request path's per-thread tallies.
//! - [`prehashed`]: a pass-through hasher for keys that are already hashes.
//! - [`admin`]: health, readiness and metrics endpoints, the links and
//!   domains APIs;
//!   `admin::probes`, the same endpoints for match and deliver.
//! - [`readiness`]: the latch `/readyz` reads, released by start-up steps.
//! - [`reply`]: a small HTTP answer (status, content type, body, the usual
//!   headers), built one way.
//! - [`sys`]: the one room allowed `unsafe`: the global allocator (mimalloc,
//!   also under librdkafka's `malloc`), CPU affinity and socket steering,
//!   ASCII text made a `&str` or header value after one quick check,
//!   read-only file maps, a cache prefetch.

pub mod acme;
pub mod admin;
pub mod analytics;
pub mod attribution;
pub mod bearer;
pub mod commands;
pub mod config;
pub mod conversions;
pub mod deliver;
pub mod domains;
pub mod events;
pub mod geo;
pub mod hostname;
pub mod http;
pub mod kafka;
pub mod links;
pub mod matcher;
pub mod metrics;
pub mod node;
pub mod percent;
pub mod prehashed;
pub mod privacy;
pub mod readiness;
pub mod reply;
pub mod risk;
pub mod serde_fields;
pub mod share;
pub mod shutdown;
pub mod sys;
pub mod target;
pub mod tls;
pub mod visitor;

/// The property tests' settings: seeds of past failures are kept beside the
/// test's source file (`NAME.regressions`), not in a top-level folder.
#[cfg(test)]
pub(crate) fn proptest_config() -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..proptest::test_runner::Config::default()
    }
}
