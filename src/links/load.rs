//! Loading JSON Lines links (the links file, `refedge check`, the admin
//! API's bulk upsert), streamed and parsed on every core into the map. A bad
//! line never stops the load: it is reported with its line number and the
//! valid lines are kept.

use std::fmt;
use std::path::Path;

use super::{Link, LinkError, LinkStore};

/// One refused line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub error: LinkError,
}

/// What a streamed read of JSON Lines did: how many parsed items were
/// applied, the refused lines, and where each block of lines starts.
#[derive(Debug)]
pub struct Lines {
    pub applied: usize,
    /// Refused lines, in line order.
    pub errors: Vec<LineError>,
    /// (block, lines before it), by block.
    starts: Vec<(u64, usize)>,
}

impl Lines {
    /// The line number of an item's place.
    pub fn line_of(&self, place: u64) -> usize {
        let block = place >> 32;
        let before = match self.starts.binary_search_by_key(&block, |s| s.0) {
            Ok(i) => self.starts[i].1,
            Err(_) => 0,
        };
        before + (place & 0xffff_ffff) as usize
    }
}

/// What loading links did.
#[derive(Debug, Default)]
pub struct Report {
    /// Valid lines applied (a code given twice counts twice).
    pub loaded: usize,
    /// Links that were not served before.
    pub created: usize,
    /// Refused lines and repeated codes, in line order.
    pub errors: Vec<LineError>,
}

impl Report {
    /// `source:line: reason` for each problem.
    pub fn problems<'a>(&'a self, source: &'a Path) -> impl Iterator<Item = String> + 'a {
        self.errors
            .iter()
            .map(move |e| format!("{}:{}: {}", source.display(), e.line, e.error))
    }

    /// The lines refused outright (a repeated code is applied, not refused).
    pub fn rejected(&self) -> usize {
        self.errors.iter().filter(|e| !e.is_duplicate()).count()
    }
}

/// The reason given for a code repeated later in the same input.
const DUPLICATE: &str = "duplicate of line ";

impl LineError {
    /// A repeated code: the line was applied over an earlier one.
    pub fn is_duplicate(&self) -> bool {
        matches!(&self.error, LinkError::Field { field, reason } if field == "code" && reason.starts_with(DUPLICATE))
    }
}

/// The one links loader, for the links file at start and on reload, for
/// `refedge check` and for the admin API's bulk upsert: streams JSON Lines
/// from `input`, parses them on `threads` threads and bulk-loads the valid
/// links into `store` as links of file load `epoch` (0 = not from the file);
/// `expected` links (a guess is fine) size the load's queues.
/// A bad line is reported with its line number and skipped; a code given
/// twice for the same domain is reported on its later line, and the later
/// line wins. Fails only when `input` cannot be read.
pub fn load_into(
    input: impl std::io::Read,
    threads: usize,
    expected: usize,
    store: &LinkStore,
    epoch: u8,
) -> std::io::Result<Report> {
    let bulk = store.bulk(threads, expected);
    let lines = load_lines(
        input,
        threads,
        |line| Link::with_json(line, |view| super::packed::pack(view, epoch)),
        |worker, records| bulk.add(worker, records),
    )?;
    let finished = bulk.finish(threads);
    let mut errors = lines.errors.clone();
    errors.extend(
        finished
            .duplicates
            .iter()
            .map(|&(earlier, later)| LineError {
                line: lines.line_of(later),
                error: LinkError::Field {
                    field: "code".into(),
                    reason: format!("{DUPLICATE}{}; this line wins", lines.line_of(earlier)),
                },
            }),
    );
    errors.sort_by_key(|e| e.line);
    Ok(Report {
        loaded: lines.applied,
        created: finished.created,
        errors,
    })
}

/// Reads a links file into a map of its own, as `serve` would: every
/// problem, nothing served. Fails only when the file cannot be read.
pub fn check_file(path: &Path) -> std::io::Result<Report> {
    check_file_into(path, &LinkStore::new())
}

/// `check_file`, keeping the valid links in `store` for a closer look.
pub fn check_file_into(path: &Path, store: &LinkStore) -> std::io::Result<Report> {
    let file = std::fs::File::open(path)?;
    let expected = expected_links(&file);
    load_into(file, load_threads(), expected, store, 1)
}

/// About how many links a links file holds (about 200 bytes a line).
pub fn expected_links(file: &std::fs::File) -> usize {
    file.metadata().map_or(0, |m| m.len() as usize / 200)
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
) -> std::io::Result<Lines> {
    load_lines_in_blocks(input, BLOCK, threads, parse, apply)
}

fn load_lines_in_blocks<T>(
    mut input: impl std::io::Read,
    block_size: usize,
    threads: usize,
    parse: impl Fn(&str) -> Result<T, LinkError> + Sync,
    apply: impl Fn(usize, std::vec::Drain<'_, (u64, T)>) + Sync,
) -> std::io::Result<Lines> {
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
        let mut starts = Vec::with_capacity(done.len());
        for (block, lines, block_errors) in done {
            errors.extend(block_errors.into_iter().map(|e| LineError {
                line: e.line + before,
                ..e
            }));
            starts.push((block, before));
            before += lines;
        }
        Ok(Lines {
            applied,
            errors,
            starts,
        })
    })
}

/// Threads to parse a large file with.
pub fn load_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
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
        for threads in [1, 3] {
            let store = LinkStore::new();
            let report = load_into(text.as_bytes(), threads, 0, &store, 1).unwrap();
            assert_eq!((report.loaded, report.created, store.len()), (3, 2, 2));
            let errors = &report.errors;
            let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
            assert_eq!(lines, vec![3, 4, 6]);
            assert!(
                errors[0]
                    .to_string()
                    .contains("target: contains whitespace or control")
            );
            assert_eq!(
                errors[2].to_string(),
                "line 6: code: duplicate of line 1; this line wins"
            );
            assert_eq!(report.rejected(), 2, "a repeated code is applied");
            assert_eq!(
                store.get(None, "ok1").unwrap().target(),
                "https://a.example/again",
                "the later line wins"
            );
        }
    }

    #[test]
    fn a_reload_reports_only_the_codes_repeated_within_it() {
        let line = |code: &str, domain: &str| {
            format!("{{\"code\":\"{code}\",\"target\":\"https://a.example/{code}\"{domain}}}\n")
        };
        let store = LinkStore::new();
        let first = [line("a", ""), line("b", "")].concat();
        let report = load_into(first.as_bytes(), 2, 0, &store, 1).unwrap();
        assert!(report.errors.is_empty());
        // The next load has `a` and `b` again (no repeat: another load), `b`
        // twice, and `b` for a domain (another link).
        let second = [
            line("a", ""),
            line("b", ""),
            line("b", r#","domain":"go.b.example""#),
            line("b", ""),
        ]
        .concat();
        for threads in [1, 3] {
            let report = load_into(second.as_bytes(), threads, 0, &store, 2).unwrap();
            let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
            assert_eq!(
                errors,
                ["line 4: code: duplicate of line 2; this line wins"]
            );
        }
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
                let read = load_lines_in_blocks(
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
                let bad: Vec<usize> = read.errors.iter().map(|e| e.line).collect();
                assert_eq!(bad, expected_bad, "{block} bytes, {threads} threads");
                let mut seen = seen.into_inner().unwrap();
                assert_eq!(read.applied, seen.len());
                // Places order the items like the lines, and name their lines.
                seen.sort();
                for (place, code) in &seen {
                    assert_eq!(
                        format!("c{}", read.line_of(*place)),
                        *code,
                        "{block} bytes, {threads} threads"
                    );
                }
                let codes: Vec<String> = seen.into_iter().map(|(_, c)| c).collect();
                assert_eq!(codes, expected_codes, "{block} bytes, {threads} threads");
            }
        }
        let read = load_lines(&b""[..], 4, Link::from_json, |_, _| ()).unwrap();
        assert_eq!((read.applied, read.errors.len()), (0, 0));
        // A last line without its newline counts.
        let read = load_lines(
            &b"{\"code\":\"a\",\"target\":\"https://a.example/\"}\nnope"[..],
            2,
            Link::from_json,
            |_, _| (),
        )
        .unwrap();
        assert_eq!((read.applied, read.errors[0].line), (1, 2));
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
        let report = check_file(&path).unwrap();
        assert_eq!(report.loaded, 1);
        let problems: Vec<String> = report.problems(&path).collect();
        assert!(
            problems
                .iter()
                .any(|p| p.ends_with("links.jsonl:2: invalid JSON: line is not valid UTF-8")),
            "{problems:?}"
        );
    }
}
