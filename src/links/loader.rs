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

/// Parses JSON Lines on `threads` threads (the bytes are split at line
/// boundaries) and hands every parsed item to `apply`, which may run on any
/// of them. Returns how many items were applied and the refused lines, in
/// line order, with how many `apply` said were new. Blank lines are skipped.
pub fn load_parallel<T>(
    bytes: &[u8],
    threads: usize,
    parse: impl Fn(&str) -> Result<T, LinkError> + Sync,
    apply: impl Fn(T) -> bool + Sync,
) -> (usize, usize, Vec<LineError>) {
    let threads = threads.max(1);
    let mut bounds = vec![0];
    for i in 1..threads {
        let guess = bytes.len() * i / threads;
        let start = bounds[bounds.len() - 1].max(guess);
        let next = bytes[start.min(bytes.len())..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |p| start + p + 1);
        bounds.push(next);
    }
    bounds.push(bytes.len());
    let chunks: Vec<&[u8]> = bounds
        .windows(2)
        .map(|w| &bytes[w[0]..w[1].max(w[0])])
        .collect();
    let results: Vec<(usize, usize, usize, Vec<LineError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                let (parse, apply) = (&parse, &apply);
                scope.spawn(move || {
                    let (mut applied, mut created, mut lines, mut errors) = (0, 0, 0, Vec::new());
                    for raw in chunk.split(|b| *b == b'\n') {
                        lines += 1;
                        let line = match std::str::from_utf8(raw) {
                            Ok(l) => l,
                            Err(_) => {
                                let error = LinkError::Json("line is not valid UTF-8".into());
                                errors.push(LineError { line: lines, error });
                                continue;
                            }
                        };
                        if line.trim().is_empty() {
                            continue;
                        }
                        match parse(line) {
                            Ok(item) => {
                                created += usize::from(apply(item));
                                applied += 1;
                            }
                            Err(error) => errors.push(LineError { line: lines, error }),
                        }
                    }
                    // A chunk ending in a newline has one empty piece after it.
                    if chunk.last() == Some(&b'\n') {
                        lines -= 1;
                    }
                    (applied, created, lines, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let (mut applied, mut created) = (0, 0);
    let mut before = 0;
    let mut errors = Vec::new();
    for (n, new, lines, chunk_errors) in results {
        applied += n;
        created += new;
        errors.extend(chunk_errors.into_iter().map(|e| LineError {
            line: e.line + before,
            ..e
        }));
        before += lines;
    }
    (applied, created, errors)
}

/// Threads to parse a large file with.
pub fn load_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
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
    fn parallel_loading_numbers_lines_like_the_file() {
        let mut text = String::new();
        for i in 1..=1000 {
            if i % 97 == 0 {
                text.push_str("not json\n");
            } else if i % 50 == 0 {
                text.push('\n');
            } else {
                text.push_str(&format!(
                    "{{\"code\":\"c{i}\",\"target\":\"https://a.example/{i}\"}}\n"
                ));
            }
        }
        for threads in [1, 2, 3, 8] {
            let seen = std::sync::Mutex::new(Vec::new());
            let (n, created, errors) =
                load_parallel(text.as_bytes(), threads, Link::from_json, |l| {
                    seen.lock().unwrap().push(l.code.to_string());
                    true
                });
            assert_eq!(created, n);
            let bad: Vec<usize> = errors.iter().map(|e| e.line).collect();
            assert_eq!(
                bad,
                (1..=1000).filter(|i| i % 97 == 0).collect::<Vec<_>>(),
                "{threads} threads"
            );
            assert_eq!(n, seen.lock().unwrap().len());
            assert_eq!(
                n,
                1000 - 10 - (1..=1000).filter(|i| i % 50 == 0 && i % 97 != 0).count()
            );
        }
        let (n, _, errors) = load_parallel(b"", 4, Link::from_json, |_| true);
        assert_eq!((n, errors.len()), (0, 0));
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
