//! The README's "Kafka on one machine" block, run as written
//! (`common::readme`): a broker, the edge making its topics and shipping to
//! it, `refedge match` joining a conversion on it.

use crate::common::readme;

#[test]
fn the_readme_kafka_block_runs_as_written() {
    crate::needs!(Tansu);
    let blocks = readme::blocks("### Kafka on one machine");
    assert_eq!(blocks.len(), 1);
    readme::run("kafka", &blocks, 180);
}
