//! Streaming, parallel reading of the log: the file is read in chunks of whole lines, each chunk's
//! lines are parsed on all cores, and bad lines are skipped and reported, never fatal.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use rayon::prelude::*;

use crate::ResultsError;
use crate::record::Fields;

const CHUNK: usize = 4 << 20;

/// A line that was skipped, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedLine {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the line's start in the file.
    pub offset: u64,
    pub kind: SkipKind,
    /// What the JSON parser said.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    /// The last line, cut short: a writer stopped mid-line (a crash).
    TornTail,
    /// A record cut short by a crash, with the next append on the same line after it; that
    /// next record is read as usual, only the torn one is lost.
    Torn,
    /// A line that is not a valid record.
    Corrupt,
}

impl std::fmt::Display for SkippedLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            SkipKind::TornTail => write!(
                f,
                "line {} (byte {}): torn last line, skipped (a writer stopped mid-line): {}",
                self.line, self.offset, self.reason
            ),
            SkipKind::Torn => write!(
                f,
                "line {} (byte {}): torn record before a complete one on the same line, skipped: {}",
                self.line, self.offset, self.reason
            ),
            SkipKind::Corrupt => write!(
                f,
                "line {} (byte {}): not a valid result, skipped: {}",
                self.line, self.offset, self.reason
            ),
        }
    }
}

/// A line split into its fields, and where it was.
pub(crate) struct Line<'a> {
    pub number: u64,
    pub offset: u64,
    pub fields: Fields<'a>,
}

impl Line<'_> {
    /// The report for this line when a query finds it is not a valid record after all.
    pub fn corrupt(&self, reason: String) -> SkippedLine {
        SkippedLine {
            line: self.number,
            offset: self.offset,
            kind: SkipKind::Corrupt,
            reason,
        }
    }
}

/// A complete record after a torn fragment on the same line: the position and fields of the
/// first `{"timestamp"` from which the rest of the line is a record.
fn glued(text: &[u8]) -> Option<(usize, Fields<'_>)> {
    crate::record::RECORD_START
        .find_iter(text)
        .filter(|&at| at > 0)
        .find_map(|at| Fields::split(&text[at..]).ok().map(|f| (at, f)))
}

/// Folds every valid line of the log at `path` into an `A`: `fold` per line, `merge` to join
/// partial results (in file order: left before right). Holds a shared lock while reading, so no
/// append is seen half-written.
pub(crate) fn scan<A, I, F, M>(
    path: &Path,
    init: I,
    fold: F,
    merge: M,
) -> Result<(A, Vec<SkippedLine>), ResultsError>
where
    A: Send,
    I: Fn() -> A + Sync + Send,
    F: Fn(A, &Line<'_>, &mut Vec<SkippedLine>) -> A + Sync + Send,
    M: Fn(A, A) -> A + Sync + Send,
{
    let io = |action, error| ResultsError::Io {
        action,
        path: path.to_path_buf(),
        error,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ResultsError::NoLog {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io("open", e)),
    };
    file.lock_shared().map_err(|e| io("lock", e))?;
    let mut reader = ChunkReader {
        file,
        carry: Vec::new(),
        eof: false,
    };
    let mut acc = init();
    let mut skipped = Vec::new();
    let (mut next_line, mut offset) = (1u64, 0u64);
    let mut current = reader.next_chunk(Vec::new()).map_err(|e| io("read", e))?;
    let mut spare = Vec::new();
    while let Some(chunk) = current {
        // Read the next chunk on one core while the lines of this one are parsed.
        let buffer = std::mem::take(&mut spare);
        let (read, (part, mut bad, lines)) = rayon::join(
            || reader.next_chunk(buffer),
            || fold_chunk(&chunk, next_line, offset, &init, &fold, &merge),
        );
        acc = merge(acc, part);
        skipped.append(&mut bad);
        next_line += lines;
        offset += chunk.len() as u64;
        current = read.map_err(|e| io("read", e))?;
        spare = chunk;
    }
    skipped.sort_by_key(|s| s.line);
    Ok((acc, skipped))
}

/// Reads a file in chunks of whole lines (the last chunk may end without a newline).
struct ChunkReader {
    file: File,
    /// The start of a line whose end is not read yet.
    carry: Vec<u8>,
    eof: bool,
}

impl ChunkReader {
    /// The next chunk, read into `buf` (a spent chunk, reused: fresh memory costs page faults).
    fn next_chunk(&mut self, mut buf: Vec<u8>) -> std::io::Result<Option<Vec<u8>>> {
        buf.clear();
        buf.extend_from_slice(&std::mem::take(&mut self.carry));
        buf.reserve(CHUNK);
        let mut searched = 0;
        loop {
            if !self.eof {
                let n = (&self.file).take(CHUNK as u64).read_to_end(&mut buf)?;
                self.eof = n < CHUNK;
            }
            match memchr::memrchr(b'\n', &buf[searched..]) {
                Some(i) => {
                    let end = searched + i + 1;
                    self.carry = buf[end..].to_vec();
                    buf.truncate(end);
                    return Ok(Some(buf));
                }
                None if self.eof => return Ok((!buf.is_empty()).then_some(buf)),
                None => searched = buf.len(),
            }
        }
    }
}

/// Folds the lines of one chunk, on all cores; returns the result, the skipped lines and the
/// number of lines.
fn fold_chunk<A, I, F, M>(
    chunk: &[u8],
    first_line: u64,
    offset: u64,
    init: &I,
    fold: &F,
    merge: &M,
) -> (A, Vec<SkippedLine>, u64)
where
    A: Send,
    I: Fn() -> A + Sync + Send,
    F: Fn(A, &Line<'_>, &mut Vec<SkippedLine>) -> A + Sync + Send,
    M: Fn(A, A) -> A + Sync + Send,
{
    let mut lines: Vec<(u64, u64, &[u8])> = Vec::with_capacity(chunk.len() / 256);
    let mut pos = 0;
    let ends = memchr::memchr_iter(b'\n', chunk).map(|i| i + 1);
    let unterminated = (chunk.last() != Some(&b'\n')).then_some(chunk.len());
    for end in ends.chain(unterminated) {
        let number = first_line + lines.len() as u64;
        lines.push((number, offset + pos as u64, &chunk[pos..end]));
        pos = end;
    }
    let count = lines.len() as u64;
    let (acc, bad) = lines
        .par_iter()
        .fold(
            || (init(), Vec::new()),
            |(acc, mut bad), &(number, line_offset, bytes)| {
                let terminated = bytes.last() == Some(&b'\n');
                let text = trim_line_end(bytes);
                if text.iter().all(u8::is_ascii_whitespace) {
                    return (acc, bad);
                }
                let line = |offset, fields| Line {
                    number,
                    offset,
                    fields,
                };
                match Fields::split_fast(text)
                    .ok_or(())
                    .or_else(|()| Fields::split(text))
                {
                    Ok(fields) => {
                        let acc = fold(acc, &line(line_offset, fields), &mut bad);
                        (acc, bad)
                    }
                    Err(reason) => {
                        if let Some((at, fields)) = glued(text) {
                            bad.push(SkippedLine {
                                line: number,
                                offset: line_offset,
                                kind: SkipKind::Torn,
                                reason,
                            });
                            let acc = fold(acc, &line(line_offset + at as u64, fields), &mut bad);
                            return (acc, bad);
                        }
                        let kind = if terminated {
                            SkipKind::Corrupt
                        } else {
                            SkipKind::TornTail
                        };
                        bad.push(SkippedLine {
                            line: number,
                            offset: line_offset,
                            kind,
                            reason,
                        });
                        (acc, bad)
                    }
                }
            },
        )
        .reduce(
            || (init(), Vec::new()),
            |(a, mut bad_a), (b, bad_b)| {
                bad_a.extend(bad_b);
                (merge(a, b), bad_a)
            },
        );
    (acc, bad, count)
}

fn trim_line_end(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}
