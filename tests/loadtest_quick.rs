//! Keeps the load-test harness working: `loadtest/run.sh --quick` runs every
//! server (nginx, bare hyper, refedge with the spool and with Kafka up and
//! down) through every measure and writes its report and plot.

use std::process::Command;

#[test]
fn the_harness_runs_end_to_end_in_quick_mode() {
    let out = tempfile::tempdir().expect("temp dir");
    let status = Command::new("bash")
        .arg("loadtest/run.sh")
        .arg("--quick")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("REFEDGE_BIN", env!("CARGO_BIN_EXE_refedge"))
        .env("OUT", out.path())
        .status()
        .expect("run the harness");
    assert!(status.success(), "loadtest/run.sh --quick failed");

    let rows = std::fs::read_to_string(out.path().join("raw/rows.txt")).expect("rows");
    let rows: Vec<Vec<&str>> = rows
        .lines()
        .skip(1)
        .map(|l| l.split(' ').collect())
        .collect();
    for server in ["nginx", "bare", "spool", "kafka", "kafka_down"] {
        for mode in ["ka", "close"] {
            let row = rows
                .iter()
                .find(|r| r[0] == server && r[1] == mode)
                .unwrap_or_else(|| panic!("no {server} {mode} row"));
            let rps: f64 = row[3].parse().expect("req/s");
            let cpu: f64 = row[4].parse().expect("cpu");
            assert!(rps > 100.0, "{server} {mode}: {rps} req/s");
            assert!(cpu > 0.0, "{server} {mode}: no CPU measured");
            assert_eq!(row[5], "0", "{server} {mode}: errors");
        }
        let latency = out.path().join(format!("raw/{server}-latency.json"));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&latency).expect("oha output")).expect("JSON");
        assert!(
            json["latencyPercentiles"]["p99"].as_f64().is_some(),
            "{json}"
        );
    }
    let report = std::fs::read_to_string(out.path().join("report.md")).expect("report");
    for needle in [
        "## Targets",
        "refedge, Kafka sink, broker down",
        "p99.9",
        "latency.png",
    ] {
        assert!(report.contains(needle), "report lacks {needle}: {report}");
    }
    let png = std::fs::read(out.path().join("latency.png")).expect("plot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
}
