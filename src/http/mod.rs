//! The public listener: accept loop, router and `Location` building.

pub mod query;
pub mod router;
pub mod server;

pub use router::{ConnInfo, Edge};
