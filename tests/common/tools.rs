//! The tools `cargo test` does not install: a Tansu broker, headless
//! Chromium and jq. A test that needs one asks [`present`] first. Without the tool,
//! plain `cargo test` skips that test and says so on the terminal (not in the
//! captured output, so it is seen even when the test passes); under
//! `RF_REQUIRE_TOOLS=1`, which `.ci/test` sets after installing both, a
//! missing tool fails the test instead.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A tool a test tier needs.
#[derive(Debug, Clone, Copy)]
pub enum Tool {
    /// The Kafka-compatible broker of the Kafka tier.
    Tansu,
    /// Chromium and ChromeDriver, for the browser tests.
    Chromium,
    /// jq, which the README's command blocks read JSON lines with.
    Jq,
    /// ClickHouse's engine in process: the PyPI package `chdb`.
    Chdb,
    /// Node.js with the npm packages `user-agents` and `ua-parser-js`: the
    /// user-agent corpus and its reference classifier.
    UaCorpus,
    /// Let's Encrypt's test CA and its DNS (Debian's `pebble`).
    Pebble,
}

/// The `node_modules` holding the user-agent corpus: `$RF_UA_CORPUS`, else
/// where `.ci/test` installs it.
pub fn ua_corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("RF_UA_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/refedge/ua-corpus/node_modules")
        });
    let on_path = |tool: &str| {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .any(|d| d.join(tool).is_file())
    };
    (on_path("node") && dir.join("user-agents").is_dir() && dir.join("ua-parser-js").is_dir())
        .then_some(dir)
}

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The tansu binary: on PATH, or where `cargo install` puts it.
pub fn tansu_path() -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([home.join(".cargo/bin")])
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file())
}

/// Whether `tool` is installed. Without it: `false` after a line on the
/// terminal naming `test` and how to run it, or a panic when the tools are
/// required (`RF_REQUIRE_TOOLS=1`).
pub fn present(tool: Tool, test: &str) -> bool {
    let (found, install) = match tool {
        Tool::Tansu => (
            tansu_path().is_some(),
            "tansu (cargo install tansu --locked --features dynostore,libsql)",
        ),
        Tool::Chromium => (
            Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
            "chromium and chromedriver (apt-get install chromium chromium-driver)",
        ),
        Tool::Jq => (
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .any(|dir| dir.join("jq").is_file()),
            "jq (apt-get install jq)",
        ),
        Tool::Chdb => (
            std::process::Command::new("python3")
                .args(["-c", "import chdb"])
                .output()
                .is_ok_and(|o| o.status.success()),
            "chdb (python3 -m pip install chdb==4.4.0)",
        ),
        Tool::Pebble => (
            ["pebble", "pebble-challtestsrv"].iter().all(|tool| {
                std::env::var_os("PATH")
                    .iter()
                    .flat_map(std::env::split_paths)
                    .any(|dir| dir.join(tool).is_file())
            }),
            "pebble and pebble-challtestsrv (apt-get install pebble)",
        ),
        Tool::UaCorpus => (
            ua_corpus().is_some(),
            "node and the npm packages user-agents and ua-parser-js (see .ci/test)",
        ),
    };
    if found {
        return true;
    }
    let required = std::env::var("RF_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: {install} is not installed, and RF_REQUIRE_TOOLS=1 requires it"
    );
    // Straight to the terminal: libtest captures `eprintln!` of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "NOT RUN {test}: needs {install}; `bash .ci/test` installs it and runs every test"
    );
    false
}

/// The first line of a test that needs `tool`s: returns from the test when
/// one is missing (see [`present`]).
#[macro_export]
macro_rules! needs {
    ($($tool:ident),+) => {
        // The test's own path, from the name of an item declared inside it.
        fn here() {}
        let test = std::any::type_name_of_val(&here)
            .trim_end_matches("::here")
            .trim_end_matches("::{{closure}}");
        $(
            if !$crate::common::tools::present($crate::common::tools::Tool::$tool, test) {
                return;
            }
        )+
    };
}
