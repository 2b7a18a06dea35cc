//! The program's numbers on a real ClickHouse engine (chdb), from files:
//! `refedge clickhouse schema --files` over the embedded default's spool
//! and `refedge match --spool`'s attributions, `funnel.sql` over it, and
//! the same figures counted by the test from the events themselves; then
//! every segment and attribution twice, and the figures unchanged.

use crate::common::funnel;
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_funnel_from_the_spool_equals_the_events_counted_by_hand() {
    crate::needs!(Chdb);
    let fixture = Fixture::new(funnel::LINKS);
    let edge = start(&fixture.config(&[("REFEDGE_CONVERSIONS_TOKENS", funnel::TOKEN)])).await;
    funnel::traffic(edge.public).await;
    assert!(edge.stop().await);

    let links = fixture.links.display().to_string();
    let env = [("REFEDGE_LINKS_FILE".to_owned(), links)];
    let (written, attributions) = match_spool(&fixture, &env);
    let attributions_path = fixture.dir.path().join("attributions.jsonl");
    std::fs::write(&attributions_path, &written).unwrap();
    let events = fixture.events();

    let schema = |spool: &std::path::Path, attributions: &std::path::Path| {
        let (s, a) = (
            spool.display().to_string(),
            attributions.display().to_string(),
        );
        let out = run_binary(
            &[
                "clickhouse",
                "schema",
                "--config",
                "/dev/null",
                "--files",
                &s,
                &a,
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let expected = funnel::expected(&events, &attributions);
    let rows = funnel::clickhouse(
        &schema(&fixture.spool, &attributions_path),
        None,
        fixture.dir.path(),
    );
    assert_eq!(rows, expected);
    funnel::assert_the_program(&rows);

    // At least once: every segment replayed and every attribution published
    // twice change nothing.
    let twice = fixture.dir.path().join("twice");
    std::fs::create_dir(&twice).unwrap();
    let segments = refedge::events::list_segments(&fixture.spool).unwrap();
    for (n, (_, path, _)) in segments.iter().enumerate() {
        for copy in 0..2 {
            std::fs::copy(path, twice.join(format!("{:016}.jsonl", 2 * n + copy))).unwrap();
        }
    }
    let doubled = fixture.dir.path().join("attributions-twice.jsonl");
    std::fs::write(&doubled, [written.clone(), written].concat()).unwrap();
    let again = funnel::clickhouse(&schema(&twice, &doubled), None, fixture.dir.path());
    assert_eq!(again, rows);
}
