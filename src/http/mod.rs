//! Serving the public listeners: the bound sockets (`listeners`), the
//! accept loop and its limits (`server`, with `watch` keeping each
//! connection's idle and header read timeouts, `clients` its client's
//! count, and `connection` driving each to its end), the public threads (`per_core`,
//! `balance`), the services each connection runs (`service`, which sends
//! each path to its handler), and the handlers: clicks (`router`, with
//! `heads` for the request headers it reads and `query` for the
//! `Location`), conversions (`intake`) and the plain
//! listener's redirect to HTTPS (`to_https`). A handler of the public
//! listeners lives here and calls into its feature's room (`links`,
//! `attribution`, `conversions`, `events`); the admin listener's handlers
//! live in `admin`.

pub mod balance;
pub mod clients;
mod connection;
mod heads;
pub mod intake;
mod listeners;
pub mod per_core;
pub mod query;
pub mod router;
pub mod server;
pub mod service;
pub mod to_https;
pub mod visit;
mod watch;

pub use intake::Intake;
pub use listeners::Listeners;
pub use router::{ConnInfo, Edge};
pub use to_https::https_redirect;
