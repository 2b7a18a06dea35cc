//! Reading a JSON Lines links file. A bad line never stops the load: it is
//! reported with its line number and the valid lines are kept.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Link, LinkError};

/// One refused line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub error: LinkError,
}

/// The outcome of loading a file: the valid links and every refused line.
#[derive(Debug)]
pub struct LoadReport {
    pub path: PathBuf,
    pub links: Vec<Link>,
    pub errors: Vec<LineError>,
}

impl LoadReport {
    /// `file:line: reason` for each refused line.
    pub fn problems(&self) -> impl Iterator<Item = String> + '_ {
        self.errors
            .iter()
            .map(|e| format!("{}:{}: {}", self.path.display(), e.line, e.error))
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

/// Parses JSON Lines text; blank lines are skipped. A code given twice for the
/// same domain is reported on its later line, and the later line wins.
pub fn parse_lines(text: &str) -> (Vec<Link>, Vec<LineError>) {
    parse_lines_bytes(text.as_bytes())
}

/// Parses JSON Lines bytes (a line that is not UTF-8 is refused on its own).
pub fn parse_lines_bytes(bytes: &[u8]) -> (Vec<Link>, Vec<LineError>) {
    let mut links = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = match std::str::from_utf8(raw) {
            Ok(line) => line,
            Err(_) => {
                let error = LinkError::Json("line is not valid UTF-8".into());
                errors.push(LineError {
                    line: line_no,
                    error,
                });
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match Link::from_json(line) {
            Ok(link) => {
                let key = (link.domain.clone(), link.code.clone());
                if let Some(first) = seen.insert(key, line_no) {
                    errors.push(LineError {
                        line: line_no,
                        error: LinkError::Field {
                            field: "code",
                            reason: format!("duplicate of line {first}; this line wins"),
                        },
                    });
                }
                links.push(link);
            }
            Err(error) => errors.push(LineError {
                line: line_no,
                error,
            }),
        }
    }
    (links, errors)
}

/// Reads and parses a links file. Fails only when the file cannot be read.
pub fn load_file(path: &Path) -> std::io::Result<LoadReport> {
    let bytes = std::fs::read(path)?;
    let (links, errors) = parse_lines_bytes(&bytes);
    Ok(LoadReport {
        path: path.to_owned(),
        links,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_reported_and_good_ones_kept() {
        let text = concat!(
            r#"{"code":"ok1","target":"https://a.example/"}"#,
            "\n",
            "\n",
            r#"{"code":"bad","target":"https://a.example/\r\nX: y"}"#,
            "\n",
            "not json\n",
            r#"{"code":"ok2","target":"https://a.example/2"}"#,
            "\n",
            r#"{"code":"ok1","target":"https://a.example/again"}"#,
            "\n",
        );
        let (links, errors) = parse_lines(text);
        assert_eq!(links.len(), 3);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 6]);
        assert!(
            errors[0]
                .to_string()
                .contains("target: contains whitespace or control")
        );
        assert!(errors[2].to_string().contains("duplicate of line 1"));
    }

    #[test]
    fn invalid_utf8_is_named_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.jsonl");
        let mut bytes = br#"{"code":"ok","target":"https://a.example/"}"#.to_vec();
        bytes.extend_from_slice(b"\n{\"code\":\"b\xff\",\"target\":\"https://a.example/\"}\n");
        std::fs::write(&path, bytes).unwrap();
        let report = load_file(&path).unwrap();
        assert_eq!(report.links.len(), 1);
        let problems: Vec<String> = report.problems().collect();
        assert!(
            problems
                .iter()
                .any(|p| p.ends_with("links.jsonl:2: invalid JSON: line is not valid UTF-8")),
            "{problems:?}"
        );
    }
}
