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

/// The pieces of `bytes` between newlines (like `split`, with a vectorised
/// search: a byte at a time, the search alone is a tenth of a large load).
fn lines_of(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut from = 0;
    let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
    ends.map(move |end| {
        let line = &bytes[from..end];
        from = end + 1;
        line
    })
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
    for (i, raw) in lines_of(bytes).enumerate() {
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

/// Bytes read at a time by `load_lines`: big enough that a block is worth a
/// hand-off, small enough that the few buffers in flight are reused.
const BLOCK: usize = 4 << 20;

/// Reads JSON Lines from `input` in blocks and parses them on `threads`
/// threads, handing the parsed items of each block to `apply` with their
/// places in the input (ordered like the lines, not numbered like them) and
/// the number of the worker thread (one call a block, so `apply` can take a
/// lock once). Returns
/// how many items were applied and the refused lines, in line order. Blank
/// lines are skipped; a last line without a newline counts.
///
/// The input is streamed through a few reused buffers, never held whole: a
/// file of gigabytes costs no more memory than its links, and one that is
/// cut short while being read ends early instead of failing.
pub fn load_lines<T>(
    input: impl std::io::Read,
    threads: usize,
    parse: impl Fn(&str) -> Result<T, LinkError> + Sync,
    apply: impl Fn(usize, std::vec::Drain<'_, (u64, T)>) + Sync,
) -> std::io::Result<(usize, Vec<LineError>)> {
    load_lines_in_blocks(input, BLOCK, threads, parse, apply)
}

fn load_lines_in_blocks<T>(
    mut input: impl std::io::Read,
    block_size: usize,
    threads: usize,
    parse: impl Fn(&str) -> Result<T, LinkError> + Sync,
    apply: impl Fn(usize, std::vec::Drain<'_, (u64, T)>) + Sync,
) -> std::io::Result<(usize, Vec<LineError>)> {
    use std::sync::{Mutex, mpsc};
    let threads = threads.max(1);
    // (block number, buffer, bytes of whole lines in it)
    let (to_workers, blocks) = mpsc::sync_channel::<(u64, Vec<u8>, usize)>(threads);
    let blocks = Mutex::new(blocks);
    let (give_back, spare) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                let (blocks, give_back, parse, apply) =
                    (&blocks, give_back.clone(), &parse, &apply);
                scope.spawn(move || {
                    // (block, lines in it, refused lines numbered within it)
                    let mut done: Vec<(u64, usize, Vec<LineError>)> = Vec::new();
                    let mut applied = 0;
                    // Reused block after block.
                    let mut items = Vec::new();
                    loop {
                        let next = blocks.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((block, buf, len)) = next else {
                            break;
                        };
                        let (mut lines, mut errors) = (0, Vec::new());
                        let body = &buf[..len];
                        let body = body.strip_suffix(b"\n").unwrap_or(body);
                        for raw in lines_of(body) {
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
                                Ok(item) => items.push((block << 32 | lines as u64, item)),
                                Err(error) => errors.push(LineError { line: lines, error }),
                            }
                        }
                        applied += items.len();
                        if !items.is_empty() {
                            apply(worker, items.drain(..));
                        }
                        done.push((block, lines, errors));
                        let _ = give_back.send(buf);
                    }
                    (applied, done)
                })
            })
            .collect();
        drop(give_back);
        let read = (|| -> std::io::Result<()> {
            let mut carry: Vec<u8> = Vec::new();
            let mut block = 0u64;
            loop {
                let mut buf = spare
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(block_size));
                buf.clear();
                buf.append(&mut carry);
                let want = buf.len().max(block_size / 2) + block_size / 2;
                let mut eof = false;
                while buf.len() < want {
                    buf.reserve(want - buf.len());
                    let at = buf.len();
                    buf.resize(buf.capacity(), 0);
                    match input.read(&mut buf[at..]) {
                        Ok(0) => {
                            buf.truncate(at);
                            eof = true;
                            break;
                        }
                        Ok(n) => buf.truncate(at + n),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(at),
                        Err(e) => {
                            buf.truncate(at);
                            return Err(e);
                        }
                    }
                }
                let whole = if eof {
                    buf.len()
                } else {
                    match buf.iter().rposition(|b| *b == b'\n') {
                        Some(end) => end + 1,
                        // A line longer than a block: read on.
                        None => {
                            carry = buf;
                            continue;
                        }
                    }
                };
                carry.extend_from_slice(&buf[whole..]);
                if whole > 0 && to_workers.send((block, buf, whole)).is_err() {
                    break;
                }
                block += 1;
                if eof {
                    return Ok(());
                }
            }
            Ok(())
        })();
        drop(to_workers);
        let mut applied = 0;
        let mut done = Vec::new();
        for w in workers {
            let (n, d) = w.join().unwrap_or_default();
            applied += n;
            done.extend(d);
        }
        read?;
        done.sort_by_key(|d| d.0);
        let mut before = 0;
        let mut errors = Vec::new();
        for (_, lines, block_errors) in done {
            errors.extend(block_errors.into_iter().map(|e| LineError {
                line: e.line + before,
                ..e
            }));
            before += lines;
        }
        Ok((applied, errors))
    })
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
    fn streamed_loading_numbers_lines_like_the_file() {
        let mut text = String::new();
        for i in 1..=1000 {
            if i % 97 == 0 {
                text.push_str("not json\n");
            } else if i % 50 == 0 {
                text.push('\n');
            } else if i % 101 == 0 {
                // Longer than the smallest blocks below.
                let long = "x".repeat(300);
                text.push_str(&format!(
                    "{{\"code\":\"c{i}\",\"target\":\"https://a.example/{long}\"}}\n"
                ));
            } else {
                text.push_str(&format!(
                    "{{\"code\":\"c{i}\",\"target\":\"https://a.example/{i}\"}}\n"
                ));
            }
        }
        let expected_bad: Vec<usize> = (1..=1000).filter(|i| i % 97 == 0).collect();
        let expected_codes: Vec<String> = (1..=1000)
            .filter(|i| i % 97 != 0 && i % 50 != 0)
            .map(|i| format!("c{i}"))
            .collect();
        for block in [64, 100, 1000, BLOCK] {
            for threads in [1, 2, 3, 8] {
                let seen = std::sync::Mutex::new(Vec::new());
                let (n, errors) = load_lines_in_blocks(
                    text.as_bytes(),
                    block,
                    threads,
                    Link::from_json,
                    |_, items| {
                        let mut seen = seen.lock().unwrap();
                        seen.extend(items.map(|(seq, l)| (seq, l.code.to_string())));
                    },
                )
                .unwrap();
                let bad: Vec<usize> = errors.iter().map(|e| e.line).collect();
                assert_eq!(bad, expected_bad, "{block} bytes, {threads} threads");
                let mut seen = seen.into_inner().unwrap();
                assert_eq!(n, seen.len());
                // Places order the items like the lines.
                seen.sort();
                let codes: Vec<String> = seen.into_iter().map(|(_, c)| c).collect();
                assert_eq!(codes, expected_codes, "{block} bytes, {threads} threads");
            }
        }
        let (n, errors) = load_lines(&b""[..], 4, Link::from_json, |_, _| ()).unwrap();
        assert_eq!((n, errors.len()), (0, 0));
        // A last line without its newline counts.
        let (n, errors) = load_lines(
            &b"{\"code\":\"a\",\"target\":\"https://a.example/\"}\nnope"[..],
            2,
            Link::from_json,
            |_, _| (),
        )
        .unwrap();
        assert_eq!((n, errors[0].line), (1, 2));
    }

    #[test]
    fn lines_split_like_split() {
        for text in ["", "\n", "a", "a\n", "a\nb", "\n\na\n\nbc\n", "abc\n\n"] {
            let ours: Vec<&[u8]> = lines_of(text.as_bytes()).collect();
            let split: Vec<&[u8]> = text.as_bytes().split(|b| *b == b'\n').collect();
            assert_eq!(ours, split, "{text:?}");
        }
    }

    #[test]
    fn a_read_error_is_returned() {
        struct Failing(usize);
        impl std::io::Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk gone"));
                }
                let line = b"{\"code\":\"a\",\"target\":\"https://a.example/\"}\n";
                let n = line.len().min(buf.len());
                buf[..n].copy_from_slice(&line[..n]);
                self.0 -= 1;
                Ok(n)
            }
        }
        let err =
            load_lines_in_blocks(Failing(50), 256, 2, Link::from_json, |_, _| ()).unwrap_err();
        assert_eq!(err.to_string(), "disk gone");
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
