//! Byte plumbing shared by the readers: a [`Tap`] that hashes and counts every byte as it is
//! read (so a file is hashed in the same pass that parses it), a [`Chunker`] that digests runs of
//! records for the lock, and [`Lines`], a line splitter with a bounded line length.
use sha2::{Digest as _, Sha256};
use std::io::{self, BufRead, Read};
use tunegate_core::lock::Chunk;
use tunegate_core::progress::Progress;

/// Digests consecutive runs of `n` records.
///
/// Invariant: chunk 0 starts at byte 0; chunk k > 0 starts at the first byte of record `k * n`;
/// every byte fed belongs to the chunk open when it is fed, so the chunks partition the input.
#[derive(Debug)]
pub(crate) struct Chunker {
    n: u64,
    cur: Sha256,
    first: u64,
    count: u64,
    lines: Option<[u64; 2]>,
    done: Vec<Chunk>,
}

impl Chunker {
    pub(crate) fn new(n: u64) -> Self {
        Chunker {
            n: n.max(1),
            cur: Sha256::new(),
            first: 0,
            count: 0,
            lines: None,
            done: Vec::new(),
        }
    }

    /// Record `index` starts here: opens a new chunk when `index` is a multiple of `n`.
    pub(crate) fn record(&mut self, index: u64, line: Option<u64>) {
        if index > 0 && index % self.n == 0 {
            self.close();
            self.first = index;
        }
        self.count += 1;
        if let Some(l) = line {
            self.lines = Some(match self.lines {
                Some([a, _]) => [a, l],
                None => [l, l],
            });
        }
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.cur.update(bytes);
    }

    fn close(&mut self) {
        let h = std::mem::replace(&mut self.cur, Sha256::new());
        self.done.push(Chunk {
            first: self.first,
            count: self.count,
            sha256: hex::encode(h.finalize()),
            lines: self.lines.take(),
        });
        self.count = 0;
    }

    pub(crate) fn finish(mut self) -> Vec<Chunk> {
        self.close();
        self.done
    }
}

/// What a [`Tap`] saw once its input is exhausted.
#[derive(Debug)]
pub(crate) struct Tapped {
    pub sha256: String,
    pub size: u64,
    pub chunks: Option<Vec<Chunk>>,
}

/// A reader that hashes, counts and reports every byte it passes on.
///
/// With `buffer` on it also keeps the bytes read but not yet claimed by [`Tap::advance_to`], so
/// a parser that reports record starts after reading ahead (the CSV reader) can still find the
/// exact bytes, lines and chunk boundaries of its records. `limit` bounds that buffer: a read
/// that would hold more than `limit` unclaimed bytes fails with `InvalidData`, so one endless
/// record cannot exhaust memory.
pub(crate) struct Tap<'p, R> {
    inner: R,
    file: Sha256,
    pos: u64,
    progress: &'p dyn Progress,
    buffer: bool,
    pending: Vec<u8>,
    pending_start: u64,
    newlines: u64,
    limit: Option<u64>,
    chunker: Option<Chunker>,
}

impl<'p, R: Read> Tap<'p, R> {
    pub(crate) fn new(inner: R, progress: &'p dyn Progress) -> Self {
        Tap {
            inner,
            file: Sha256::new(),
            pos: 0,
            progress,
            buffer: false,
            pending: Vec::new(),
            pending_start: 0,
            newlines: 0,
            limit: None,
            chunker: None,
        }
    }

    /// Keeps unclaimed bytes, failing when more than `limit` of them pile up.
    pub(crate) fn buffered(mut self, limit: u64) -> Self {
        self.buffer = true;
        self.limit = Some(limit);
        self
    }

    /// Digests chunks of `n` records (needs `buffered`).
    pub(crate) fn chunked(mut self, n: Option<u64>) -> Self {
        self.chunker = n.map(Chunker::new);
        self
    }

    /// Unclaimed bytes from `offset` on (empty when `offset` is outside the buffer).
    pub(crate) fn pending_from(&self, offset: u64) -> &[u8] {
        match offset.checked_sub(self.pending_start) {
            Some(k) if (k as usize) <= self.pending.len() => &self.pending[k as usize..],
            _ => &[],
        }
    }

    /// Claims the bytes before `offset`: counts their newlines and feeds them to the open chunk.
    pub(crate) fn advance_to(&mut self, offset: u64) {
        if !self.buffer {
            return;
        }
        let k = offset
            .saturating_sub(self.pending_start)
            .min(self.pending.len() as u64) as usize;
        let claimed = &self.pending[..k];
        self.newlines += memchr::memchr_iter(b'\n', claimed).count() as u64;
        if let Some(c) = self.chunker.as_mut() {
            c.feed(claimed);
        }
        self.pending.drain(..k);
        self.pending_start += k as u64;
    }

    /// Record `index` starts at `offset`: claims the bytes before it and returns its 1-based
    /// line (valid when buffered).
    pub(crate) fn record(&mut self, index: u64, offset: u64) -> u64 {
        self.advance_to(offset);
        let line = self.newlines + 1;
        if let Some(c) = self.chunker.as_mut() {
            c.record(index, Some(line));
        }
        line
    }

    /// Reads the rest of the input and returns the digest, size and chunks.
    pub(crate) fn finish(mut self) -> io::Result<Tapped> {
        self.limit = None;
        let mut buf = vec![0u8; 64 * 1024];
        while self.read(&mut buf)? > 0 {}
        self.advance_to(self.pos);
        Ok(Tapped {
            sha256: hex::encode(self.file.finalize()),
            size: self.pos,
            chunks: self.chunker.map(Chunker::finish),
        })
    }
}

impl<R: Read> Read for Tap<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(limit) = self.limit {
            if self.pos - self.pending_start > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    RecordTooLong(self.pending_start),
                ));
            }
        }
        let n = loop {
            match self.inner.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        let got = &buf[..n];
        self.file.update(got);
        if self.buffer {
            self.pending.extend_from_slice(got);
        }
        self.pos += n as u64;
        if n > 0 {
            self.progress.advance(n as u64);
        }
        Ok(n)
    }
}

/// The error a buffered [`Tap`] returns when one record outgrows its limit; carries the byte
/// offset where the record starts.
#[derive(Debug)]
pub(crate) struct RecordTooLong(pub u64);

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a record starting at byte {} is too long", self.0)
    }
}

impl std::error::Error for RecordTooLong {}

/// One line as split by [`Lines`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineMeta {
    /// Byte offset of the first byte.
    pub start: u64,
    /// Byte offset after the newline (or end of input).
    pub end: u64,
    /// 1-based line number.
    pub line: u64,
    /// The line was longer than the limit; its bytes were not kept.
    pub too_long: bool,
    /// Its record index, `None` for a blank line.
    pub record: Option<u64>,
}

/// The UTF-8 byte order mark.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The content of line `line` for parsing: a BOM at the start of the file is dropped.
pub(crate) fn content(buf: &[u8], line: u64) -> &[u8] {
    if line == 1 {
        buf.strip_prefix(BOM).unwrap_or(buf)
    } else {
        buf
    }
}

/// True for a line of only ASCII whitespace (JSON whitespace plus form feed and vertical tab).
pub(crate) fn is_blank(content: &[u8]) -> bool {
    content
        .iter()
        .all(|b| b.is_ascii_whitespace() || *b == 0x0B)
}

/// Splits input into lines of at most `max` bytes kept (newline included), numbering lines and
/// records. A blank line is not a record; a line over `max` is always a record, and its bytes
/// are skipped, not stored. With a [`Chunker`], every byte is fed to it on the way.
pub(crate) struct Lines<R> {
    inner: R,
    offset: u64,
    line: u64,
    records: u64,
    max: usize,
    chunker: Option<Chunker>,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(inner: R, max: usize, chunker: Option<Chunker>) -> Self {
        Lines {
            inner,
            offset: 0,
            line: 0,
            records: 0,
            max: max.max(1),
            chunker,
        }
    }

    /// Reads the next line into `buf` (cleared first; empty for a too-long line).
    pub(crate) fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<LineMeta>> {
        buf.clear();
        let start = self.offset;
        let line = self.line + 1;
        let mut too_long = false;
        let mut record = None;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if self.offset == start {
                    return Ok(None);
                }
                break;
            }
            let (take, done) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            let piece = &avail[..take];
            if too_long {
                if let Some(c) = self.chunker.as_mut() {
                    c.feed(piece);
                }
            } else if buf.len() + take > self.max {
                // Over the limit: this line is a record whatever it holds.
                too_long = true;
                let idx = self.records;
                self.records += 1;
                record = Some(idx);
                if let Some(c) = self.chunker.as_mut() {
                    c.record(idx, Some(line));
                    c.feed(buf);
                    c.feed(piece);
                }
                buf.clear();
            } else {
                buf.extend_from_slice(piece);
            }
            self.inner.consume(take);
            self.offset += take as u64;
            if done {
                break;
            }
        }
        self.line = line;
        if !too_long {
            if !is_blank(content(buf, line)) {
                record = Some(self.records);
                self.records += 1;
            }
            if let Some(c) = self.chunker.as_mut() {
                if let Some(idx) = record {
                    c.record(idx, Some(line));
                }
                c.feed(buf);
            }
        }
        Ok(Some(LineMeta {
            start,
            end: self.offset,
            line,
            too_long,
            record,
        }))
    }

    /// The wrapped reader.
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    /// The chunks, once the input is exhausted.
    pub(crate) fn take_chunks(&mut self) -> Option<Vec<Chunk>> {
        self.chunker.take().map(Chunker::finish)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tunegate_core::progress::NoProgress;

    fn split(input: &[u8], max: usize) -> Vec<(LineMeta, Vec<u8>)> {
        let mut l = Lines::new(std::io::BufReader::with_capacity(3, input), max, None);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(m) = l.next_line(&mut buf).unwrap() {
            out.push((m, buf.clone()));
        }
        out
    }

    #[test]
    fn lines_number_records_and_skip_blanks() {
        let v = split(b"\xEF\xBB\xBF\n{}\r\n  \nabcdefgh\nx", 5);
        let metas: Vec<_> = v
            .iter()
            .map(|(m, _)| (m.start, m.end, m.line, m.too_long, m.record))
            .collect();
        assert_eq!(
            metas,
            vec![
                (0, 4, 1, false, None),
                (4, 8, 2, false, Some(0)),
                (8, 11, 3, false, None),
                (11, 20, 4, true, Some(1)),
                (20, 21, 5, false, Some(2)),
            ]
        );
        assert_eq!(v[1].1, b"{}\r\n");
        assert!(v[3].1.is_empty());
    }

    #[test]
    fn chunks_partition_the_input() {
        let input = b"a\n\nb\nc\n\nd\ne";
        let mut l = Lines::new(
            std::io::BufReader::with_capacity(2, &input[..]),
            100,
            Some(Chunker::new(2)),
        );
        let mut buf = Vec::new();
        while l.next_line(&mut buf).unwrap().is_some() {}
        let chunks = l.take_chunks().unwrap();
        let expect = [
            (0, 2, &b"a\n\nb\n"[..], [1, 3]),
            (2, 2, b"c\n\nd\n", [4, 6]),
            (4, 1, b"e", [7, 7]),
        ];
        assert_eq!(chunks.len(), 3);
        for (c, (first, count, bytes, lines)) in chunks.iter().zip(expect) {
            assert_eq!((c.first, c.count, c.lines), (first, count, Some(lines)));
            assert_eq!(c.sha256, tunegate_core::digest::sha256_hex(bytes));
        }
    }

    #[test]
    fn tap_hashes_everything_and_limits_pending() {
        let data = vec![b'x'; 10_000];
        let mut t = Tap::new(&data[..], &NoProgress).buffered(100);
        let mut buf = [0u8; 64];
        let mut err = None;
        for _ in 0..1000 {
            match t.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert_eq!(err.unwrap().kind(), io::ErrorKind::InvalidData);
        let t = Tap::new(&data[..], &NoProgress);
        let out = t.finish().unwrap();
        assert_eq!(out.size, 10_000);
        assert_eq!(out.sha256, tunegate_core::digest::sha256_hex(&data));
    }
}
