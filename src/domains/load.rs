//! `domains.file`: JSON Lines, one domain per line, blank lines skipped;
//! a missing file is no domains. A bad line is reported with its number and
//! the others are kept; a host named twice takes the later line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Domain, DomainStore};
use crate::links::LinkError;

/// A line that was not a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub errors: Vec<LinkError>,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reasons: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        write!(f, "line {}: {}", self.line, reasons.join("; "))
    }
}

/// The domains of `path` and the lines that were not; `Err` when the file
/// exists but cannot be read.
pub fn load_file(path: &Path) -> std::io::Result<(Vec<Domain>, Vec<LineError>)> {
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e),
    };
    let mut domains: Vec<Domain> = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let Ok(line) = std::str::from_utf8(line) else {
            errors.push(LineError {
                line: line_no,
                errors: vec![LinkError::Json("not UTF-8".into())],
            });
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        match Domain::from_json(line) {
            Ok(domain) => {
                domains.retain(|d| d.host() != domain.host());
                domains.push(domain);
            }
            Err(e) => errors.push(LineError {
                line: line_no,
                errors: e,
            }),
        }
    }
    Ok((domains, errors))
}

/// Loads `domains.file` into the store, at start and on SIGHUP.
#[derive(Debug, Clone)]
pub struct DomainsFile {
    pub store: Arc<DomainStore>,
    pub path: PathBuf,
}

impl DomainsFile {
    /// Swaps in the file's domains, logging each bad line; a file that
    /// cannot be read keeps what is served (`Err`).
    pub fn reload(&self) -> std::io::Result<usize> {
        let (domains, errors) = load_file(&self.path)?;
        for e in &errors {
            tracing::warn!(file = %self.path.display(), "domains file: {e}; the line is skipped");
        }
        let loaded = domains.len();
        self.store.replace_file(domains);
        tracing::info!(loaded, rejected = errors.len(), file = %self.path.display(), "domains loaded");
        Ok(loaded)
    }
}
