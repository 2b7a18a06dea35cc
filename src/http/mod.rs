//! The public listener: accept loop, router and `Location` building.

pub mod per_core;
pub mod query;
pub mod router;
pub mod server;
pub mod to_https;

pub use router::{ConnInfo, Edge};
pub use to_https::https_redirect;
