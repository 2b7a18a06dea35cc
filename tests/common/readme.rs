//! The README's command blocks, run as written: the `sh` blocks of a
//! section, in order, as one bash script with `set -euo pipefail`, in a
//! scratch directory holding a copy of `config/`, where `cargo run
//! --release [-- ARGS]` runs the binary under test, replacing itself with
//! it as cargo does (and `cargo install tansu …` finds the one the suite
//! installed). A command that fails fails
//! the test, so a README that drifts from the binary fails CI.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const README: &str = include_str!("../../README.md");

/// The `sh` blocks under `heading` (`## Quick start`), up to the next
/// heading of the same or a higher level (a `#` inside a block is a
/// comment, not a heading).
pub fn blocks(heading: &str) -> Vec<String> {
    let level = heading.split(' ').next().unwrap_or("##").len();
    let mut lines = README.lines().skip_while(|l| *l != heading);
    assert!(lines.next().is_some(), "README: no heading {heading:?}");
    let (mut blocks, mut block, mut fence) = (Vec::new(), None::<String>, false);
    for line in lines {
        if line.starts_with("```") {
            if let Some(done) = block.take() {
                blocks.push(done);
            } else if line == "```sh" {
                block = Some(String::new());
            }
            fence = !fence;
            continue;
        }
        if let Some(b) = block.as_mut() {
            b.push_str(line);
            b.push('\n');
            continue;
        }
        let hashes = line.bytes().take_while(|b| *b == b'#').count();
        if !fence && hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            break;
        }
    }
    blocks
}

/// Runs `blocks` as one script in a scratch copy of `config/`; panics with
/// the script's output when it fails or runs past `timeout_secs`.
pub fn run(name: &str, blocks: &[String], timeout_secs: u32) -> String {
    let dir = tempfile::tempdir().expect("scratch dir");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
        &dir.path().join("config"),
    );
    let prelude = r#"set -euo pipefail
cargo() {
  case "$1 ${2:-}" in
    "run --release")
      shift 2; [ "${1:-}" = "--" ] && shift
      # Like cargo, which replaces itself with the program it runs: `kill %1`
      # stops the edge. (Not in the script's own shell, which goes on.)
      if [ "$BASHPID" != "$$" ]; then exec "$RF_BIN" "$@"; else "$RF_BIN" "$@"; fi ;;
    "install tansu") command -v tansu >/dev/null ;;
    *) echo "README: cargo $* is not a command this test runs" >&2; return 1 ;;
  esac
}
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
"#;
    let script = format!("{prelude}{}\n", blocks.join("\n"));
    let path = dir.path().join(format!("{name}.sh"));
    std::fs::write(&path, &script).expect("write script");
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let path_var = std::env::join_paths([home.join(".cargo/bin")].into_iter().chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    // Its own process group, so that whatever the blocks left running (an
    // edge started with `&`) is stopped with it.
    let mut child = Command::new("timeout")
        .args(["--kill-after=5", &timeout_secs.to_string(), "bash"])
        .arg(&path)
        .process_group(0)
        .stdout(std::fs::File::create(dir.path().join("stdout")).expect("stdout file"))
        .stderr(std::fs::File::create(dir.path().join("stderr")).expect("stderr file"))
        .current_dir(dir.path())
        .env("RF_BIN", env!("CARGO_BIN_EXE_refedge"))
        .env("PATH", path_var)
        .envs(
            std::env::vars()
                .filter(|(k, _)| k.starts_with("REFEDGE_"))
                .map(|(k, _)| (k, String::new())),
        )
        .spawn()
        .expect("run bash");
    let group = format!("-{}", child.id());
    let status = child.wait().expect("wait for bash");
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(std::process::Stdio::null())
        .status();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let (stdout, stderr) = (read("stdout"), read("stderr"));
    assert!(
        status.success(),
        "README {name}: the blocks failed ({status:?})\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read config/") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
