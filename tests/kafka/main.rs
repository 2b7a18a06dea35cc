//! The edge with a real Kafka broker (Tansu, started by the tests): shipping
//! through outages and crashes, links replicated between nodes, and
//! durability when the process is killed, and certificates ordered once for
//! every node (Pebble).

#[path = "../common/mod.rs"]
mod common;

mod acme;
mod analytics;
mod cluster;
mod deliver;
mod durability;
mod matcher;
mod readme;
mod shipping;
