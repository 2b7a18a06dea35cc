//! Serving HTTP: the bound sockets (`listeners`), the accept loop and its
//! limits (`server`), the public
//! threads (`per_core`, `balance`), the services each connection runs
//! (`service`), the click router (`router`, `query`) and the plain
//! listener's redirect to HTTPS (`to_https`).

pub mod balance;
mod listeners;
pub mod per_core;
pub mod query;
pub mod router;
pub mod server;
pub mod service;
pub mod to_https;

pub use listeners::Listeners;
pub use router::{ConnInfo, Edge};
pub use to_https::https_redirect;
