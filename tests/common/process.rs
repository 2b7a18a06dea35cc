//! The real binary as a child process: `refedge serve` and `refedge match`
//! started with JSON logs, their bound addresses read from the log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::STEP;

/// The real binary, started as a child process.
pub struct Process {
    pub child: Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Starts `refedge serve` with JSON logs and waits until both listeners are
/// bound (their addresses are read from the log).
pub fn spawn_binary(env: &[(String, String)]) -> Process {
    spawn_binary_with(Path::new("/dev/null"), env)
}

/// As [`spawn_binary`], with a config file.
pub fn spawn_binary_with(config: &Path, env: &[(String, String)]) -> Process {
    spawn_refedge(
        "serve",
        config,
        env,
        ["public listener bound", "admin listener bound"],
    )
}

/// Starts `refedge match` with JSON logs and waits until its listener is
/// bound; `public` and `admin` are both that listener.
pub fn spawn_matcher(config: &Path, env: &[(String, String)]) -> Process {
    spawn_refedge(
        "match",
        config,
        env,
        [
            "matcher admin listener bound",
            "matcher admin listener bound",
        ],
    )
}

/// Starts `refedge COMMAND` and waits for the two log lines naming the
/// addresses it bound (`public`, then `admin`).
/// Starts `refedge deliver` and waits until its listener is bound; `public`
/// and `admin` are both that listener.
pub fn spawn_deliverer(config: &Path, env: &[(String, String)]) -> Process {
    spawn_refedge(
        "deliver",
        config,
        env,
        [
            "deliverer admin listener bound",
            "deliverer admin listener bound",
        ],
    )
}

fn spawn_refedge(
    command: &str,
    config: &Path,
    env: &[(String, String)],
    bound: [&'static str; 2],
) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_refedge"))
        .arg(command)
        .arg("--config")
        .arg(config)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("REFEDGE_LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start refedge");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let msg = v["fields"]["message"].as_str().unwrap_or("");
                if let Some(i) = bound.iter().position(|b| *b == msg) {
                    let addr: SocketAddr = v["fields"]["addr"]
                        .as_str()
                        .unwrap_or("")
                        .parse()
                        .expect("addr");
                    let _ = tx.send((i, addr));
                }
            }
            sink.lock().expect("log lock").push(line);
        }
    });
    let deadline = Instant::now() + STEP;
    let mut addrs: [Option<SocketAddr>; 2] = [None, None];
    while addrs.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((_, a)) if bound[0] == bound[1] => addrs = [Some(a), Some(a)],
            Ok((i, a)) => addrs[i] = Some(a),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "refedge {command} did not bind its listeners; log: {:?}",
                    log.lock().expect("log lock")
                );
            }
        }
    }
    Process {
        child,
        public: addrs[0].expect("public"),
        admin: addrs[1].expect("admin"),
        log,
    }
}

impl Process {
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "refedge did not exit; log: {:?}",
                    self.log.lock().expect("log lock")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .any(|l| l.contains(needle))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with `args` and `env`.
pub fn run_binary(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_refedge"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run refedge")
}

/// The CPUs a process may run on, and each of its public threads
/// (`Cpus_allowed_list` of `/proc`), read once its threads are up.
pub fn public_thread_cpus(pid: u32) -> (String, Vec<String>) {
    let allowed = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|l| l.trim().to_owned())
            .expect("Cpus_allowed_list")
    };
    let process = allowed(&std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status"));
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .filter_map(|task| {
            let task = task.ok()?.path();
            let name = std::fs::read_to_string(task.join("comm")).ok()?;
            let status = std::fs::read_to_string(task.join("status")).ok()?;
            name.starts_with("refedge-public").then(|| allowed(&status))
        })
        .collect();
    (process, threads)
}
