//! Follow an access log through rotation without losing a line.
//!
//! A file is known by its identity: device, inode, and a fingerprint of its
//! first bytes (so a reused inode is a new file). Rename rotation: the open
//! handle is read to its end before the new file at the path is opened.
//! Truncation (copytruncate, `> file`): reading restarts at 0. Delete and
//! recreate: like rename. A partial last line waits for its newline; a line
//! longer than the bound is dropped, counted and sampled for the dead letters.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Bytes hashed for the fingerprint.
const FINGERPRINT_BYTES: u64 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    /// FNV-1a of the first `fp_len` bytes.
    pub fingerprint: u64,
    pub fp_len: u64,
}

fn fingerprint(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; len as usize];
    let pos = file.stream_position()?;
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut buf)?;
    file.seek(SeekFrom::Start(pos))?;
    Ok(buf.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)))
}

impl Identity {
    fn of(file: &mut File) -> std::io::Result<Identity> {
        let m = file.metadata()?;
        let fp_len = m.len().min(FINGERPRINT_BYTES);
        Ok(Identity { dev: m.dev(), ino: m.ino(), fingerprint: fingerprint(file, fp_len)?, fp_len })
    }

    /// Whether `file` is this identity (its first `fp_len` bytes unchanged).
    fn matches(&self, file: &mut File) -> std::io::Result<bool> {
        let m = file.metadata()?;
        Ok(m.dev() == self.dev && m.ino() == self.ino && m.len() >= self.fp_len && fingerprint(file, self.fp_len)? == self.fingerprint)
    }
}

/// Where reading stands: the file, and the offset after the last line handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub file: Identity,
    pub offset: u64,
}

/// What one poll found.
#[derive(Debug, Default)]
pub struct Chunk {
    pub lines: Vec<Vec<u8>>,
    /// Lines over the bound: their first bytes, and their length.
    pub too_long: Vec<(Vec<u8>, u64)>,
    /// Where reading stands after these lines (the checkpoint once they are acknowledged).
    pub position: Option<Position>,
    /// Bytes in the file past what this poll read.
    pub unread: u64,
}

struct Open {
    file: File,
    id: Identity,
    /// Offset after the last complete line handed out.
    offset: u64,
    /// How many bytes of a line whose newline has not arrived were read past `offset`.
    pending_len: u64,
    /// Those bytes, or for a line already over the bound its first 256.
    pending: Vec<u8>,
}

/// How much of an over-long line is kept for the dead letters.
pub(crate) const SAMPLE: usize = 256;

pub struct Follower {
    path: PathBuf,
    max_line: usize,
    current: Option<Open>,
    /// The read buffer, kept between polls.
    buf: Vec<u8>,
    /// After a new file appears at the path, the old one is read until it
    /// has been quiet this long: nginx's workers reopen their logs one by
    /// one after USR1, and may still append to the old file meanwhile.
    pub rotate_grace: std::time::Duration,
    /// When the path was first seen naming another file.
    rotated_at: Option<std::time::Instant>,
}

impl Follower {
    /// Start at `resume` (a checkpoint), or at the beginning of the file at `path`.
    /// If the checkpointed file was rotated away while nobody read it, it is
    /// found beside `path` by its identity and read to its end first.
    pub fn new(path: PathBuf, max_line: usize, resume: Option<Position>) -> std::io::Result<Follower> {
        let mut f = Follower {
            path,
            max_line,
            current: None,
            buf: Vec::new(),
            rotate_grace: std::time::Duration::from_millis(500),
            rotated_at: None,
        };
        if let Some(pos) = resume {
            if let Some(file) = f.find(&pos.file)? {
                f.current = Some(Open { file, id: pos.file, offset: pos.offset, pending_len: 0, pending: Vec::new() });
            }
        }
        Ok(f)
    }

    /// The file with identity `id`: at `path`, or a sibling it was renamed to.
    fn find(&self, id: &Identity) -> std::io::Result<Option<File>> {
        if let Ok(mut file) = File::open(&self.path) {
            if id.matches(&mut file)? {
                return Ok(Some(file));
            }
        }
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        for entry in std::fs::read_dir(dir)?.flatten() {
            let p = entry.path();
            if entry.metadata().is_ok_and(|m| m.is_file() && m.ino() == id.ino && m.dev() == id.dev) {
                let mut file = File::open(&p)?;
                if id.matches(&mut file)? {
                    tracing::info!(file = %p.display(), "resuming a rotated log to its end first");
                    return Ok(Some(file));
                }
            }
        }
        Ok(None)
    }

    /// Whether the log was rotated and the old file is being waited on:
    /// poll again soon, so that reading the new file starts without delay.
    pub fn rotating(&self) -> bool {
        self.rotated_at.is_some()
    }

    /// Bytes in the open file past what was read.
    pub fn unread(&self) -> u64 {
        self.current.as_ref().map_or(0, |o| o.file.metadata().map_or(0, |m| m.len().saturating_sub(o.offset + o.pending_len)))
    }

    /// Read up to `max_bytes` of complete lines.
    pub fn poll(&mut self, max_bytes: usize) -> std::io::Result<Chunk> {
        if self.current.is_none() {
            match File::open(&self.path) {
                Ok(mut file) => {
                    let id = Identity::of(&mut file)?;
                    self.current = Some(Open { file, id, offset: 0, pending_len: 0, pending: Vec::new() });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Chunk::default()),
                Err(e) => return Err(e),
            }
        }
        let max_line = self.max_line;
        let open = self.current.as_mut().expect("opened above");
        let mut chunk = Chunk::default();
        let size = open.file.metadata()?.len();
        // Truncated in place (copytruncate, `> file`): shorter than what was
        // read, or, when nginx has already written past that again between
        // two polls, other bytes at the start. Start over.
        if size < open.offset + open.pending_len || !open.id.matches(&mut open.file)? {
            tracing::warn!(file = %self.path.display(), "the log was truncated; reading it from the start");
            open.offset = 0;
            open.pending_len = 0;
            open.pending.clear();
            open.id = Identity::of(&mut open.file)?;
        } else if open.id.fp_len < FINGERPRINT_BYTES && size > open.id.fp_len {
            // A young file: fingerprint more of it, so that a rewrite shows.
            open.id = Identity::of(&mut open.file)?;
        }
        let start = open.offset + open.pending_len;
        open.file.seek(SeekFrom::Start(start))?;
        let want = max_bytes.min(size.saturating_sub(start) as usize);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let n = read_full(&mut open.file, &mut self.buf[..want])?;
        chunk.unread = size.saturating_sub(start + n as u64);
        let buf = &self.buf[..n];
        let mut rest = buf;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let piece = &rest[..nl];
            let total = open.pending_len + piece.len() as u64;
            let mut line = std::mem::take(&mut open.pending);
            if total as usize > max_line {
                line.extend_from_slice(&piece[..piece.len().min(SAMPLE.saturating_sub(line.len()))]);
                line.truncate(SAMPLE);
                chunk.too_long.push((line, total));
            } else {
                line.extend_from_slice(piece);
                chunk.lines.push(line);
            }
            open.offset += total + 1;
            open.pending_len = 0;
            rest = &rest[nl + 1..];
        }
        // The start of a line whose newline has not arrived yet.
        open.pending_len += rest.len() as u64;
        if open.pending_len as usize > max_line {
            open.pending.extend_from_slice(&rest[..rest.len().min(SAMPLE.saturating_sub(open.pending.len()))]);
            open.pending.truncate(SAMPLE);
        } else {
            open.pending.extend_from_slice(rest);
        }
        if n == 0 {
            self.maybe_rotate(&mut chunk)?;
        }
        chunk.position = self.current.as_ref().map(|o| Position { file: o.id, offset: o.offset });
        Ok(chunk)
    }

    /// At the end of the open file: if the path now names another file (or
    /// none), this one is done; move on to the new one.
    fn maybe_rotate(&mut self, chunk: &mut Chunk) -> std::io::Result<()> {
        let open = self.current.as_mut().expect("a file is open");
        let moved_on = match std::fs::metadata(&self.path) {
            Ok(m) => m.ino() != open.id.ino || m.dev() != open.id.dev,
            // Renamed or deleted, and nothing new yet: nginx still writes to
            // the file we hold until it reopens its log.
            Err(_) => false,
        };
        if !moved_on {
            self.rotated_at = None;
            return Ok(());
        }
        let since = *self.rotated_at.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() < self.rotate_grace {
            return Ok(());
        }
        // A last line without a newline will not be finished: hand it on.
        if open.pending_len > 0 {
            let line = std::mem::take(&mut open.pending);
            if open.pending_len as usize > self.max_line {
                chunk.too_long.push((line, open.pending_len));
            } else {
                chunk.lines.push(line);
            }
        }
        tracing::info!(file = %self.path.display(), "the log was rotated; following the new file");
        self.current = None;
        self.rotated_at = None;
        Ok(())
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The checkpoint, replaced durably (see [`pullgate_base::fs::write_atomic`]).
pub fn save_checkpoint(path: &Path, pos: &Position) -> std::io::Result<()> {
    pullgate_base::fs::write_atomic(path, serde_json::to_string(pos).expect("serialises").as_bytes())
}

pub fn load_checkpoint(path: &Path) -> Option<Position> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dir(name: &str) -> PathBuf {
        pullgate_base::fs::scratch_dir(&format!("tail-{name}"))
    }

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
    }

    fn lines(c: &Chunk) -> Vec<String> {
        c.lines.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect()
    }

    #[test]
    fn partial_lines_wait_for_their_newline_and_long_ones_are_bounded() {
        let d = dir("partial");
        let log = d.join("access.log");
        append(&log, "one\ntw");
        let mut f = Follower::new(log.clone(), 10, None).unwrap();
        let c = f.poll(1 << 20).unwrap();
        assert_eq!(lines(&c), ["one"]);
        assert_eq!(c.position.unwrap().offset, 4);
        append(&log, "o\nthis line is far too long\nthree\n");
        let c = f.poll(1 << 20).unwrap();
        assert_eq!(lines(&c), ["two", "three"]);
        assert_eq!(c.too_long.len(), 1);
        assert_eq!(c.too_long[0].1, 25);
        assert_eq!(c.position.unwrap().offset, std::fs::metadata(&log).unwrap().len());
    }

    #[test]
    fn rename_rotation_finishes_the_old_file_first() {
        let d = dir("rename");
        let log = d.join("access.log");
        append(&log, "a\n");
        let mut f = Follower::new(log.clone(), 100, None).unwrap();
        f.rotate_grace = std::time::Duration::ZERO;
        assert_eq!(lines(&f.poll(1 << 20).unwrap()), ["a"]);
        append(&log, "b\n");
        std::fs::rename(&log, d.join("access.log.1")).unwrap();
        append(&log, "c\n");
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.extend(lines(&f.poll(1 << 20).unwrap()));
        }
        assert_eq!(seen, ["b", "c"]);
    }

    #[test]
    fn a_renamed_file_is_read_until_a_new_one_appears_and_the_grace_passes() {
        let d = dir("grace");
        let log = d.join("access.log");
        append(&log, "a\n");
        let mut f = Follower::new(log.clone(), 100, None).unwrap();
        f.rotate_grace = std::time::Duration::from_millis(200);
        f.poll(1 << 20).unwrap();
        let old = d.join("access.log.1");
        std::fs::rename(&log, &old).unwrap();
        // nginx has not reopened yet: it still appends to the renamed file.
        append(&old, "b\n");
        assert_eq!(lines(&f.poll(1 << 20).unwrap()), ["b"]);
        append(&log, "new\n");
        // A worker that has not reopened yet appends once more.
        append(&old, "c\n");
        assert_eq!(lines(&f.poll(1 << 20).unwrap()), ["c"]);
        assert!(f.poll(1 << 20).unwrap().lines.is_empty(), "switched before the grace passed");
        std::thread::sleep(std::time::Duration::from_millis(250));
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.extend(lines(&f.poll(1 << 20).unwrap()));
        }
        assert_eq!(seen, ["new"]);
    }

    #[test]
    fn truncation_starts_over() {
        let d = dir("truncate");
        let log = d.join("access.log");
        append(&log, "aaaa\nbbbb\n");
        let mut f = Follower::new(log.clone(), 100, None).unwrap();
        f.poll(1 << 20).unwrap();
        std::fs::write(&log, "c\n").unwrap();
        assert_eq!(lines(&f.poll(1 << 20).unwrap()), ["c"]);
    }

    #[test]
    fn resume_finds_a_file_rotated_while_nobody_read() {
        let d = dir("resume");
        let log = d.join("access.log");
        append(&log, "first line of the old file\nsecond\n");
        let mut f = Follower::new(log.clone(), 100, None).unwrap();
        let c = f.poll(27).unwrap();
        assert_eq!(lines(&c), ["first line of the old file"]);
        let pos = c.position.unwrap();
        drop(f);
        std::fs::rename(&log, d.join("access.log.1")).unwrap();
        append(&log, "new\n");
        let mut f = Follower::new(log.clone(), 100, Some(pos)).unwrap();
        f.rotate_grace = std::time::Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.extend(lines(&f.poll(1 << 20).unwrap()));
        }
        assert_eq!(seen, ["second", "new"]);
    }

    #[test]
    fn delete_and_recreate_moves_to_the_new_file() {
        let d = dir("recreate");
        let log = d.join("access.log");
        append(&log, "a\n");
        let mut f = Follower::new(log.clone(), 100, None).unwrap();
        f.rotate_grace = std::time::Duration::ZERO;
        assert_eq!(lines(&f.poll(1 << 20).unwrap()), ["a"]);
        std::fs::remove_file(&log).unwrap();
        assert!(f.poll(1 << 20).unwrap().lines.is_empty(), "deleted, nothing new yet");
        append(&log, "b\nc\n");
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.extend(lines(&f.poll(1 << 20).unwrap()));
        }
        assert_eq!(seen, ["b", "c"]);
    }

    #[test]
    fn a_reused_inode_with_other_content_is_a_new_file() {
        let d = dir("reuse");
        let log = d.join("access.log");
        append(&log, "old first line\nold second line\n");
        let mut f = Follower::new(log.clone(), 100, None).unwrap();
        let pos = f.poll(1 << 20).unwrap().position.unwrap();
        drop(f);
        // The same inode, rewritten longer with other lines while nobody read:
        // the checkpoint's offset means nothing in it.
        std::fs::write(&log, "new one\nnew two\nnew three, longer than the old file was\n").unwrap();
        let ino = std::fs::metadata(&log).unwrap().ino();
        assert_eq!(ino, pos.file.ino, "the test needs the same inode");
        let mut f = Follower::new(log.clone(), 100, Some(pos)).unwrap();
        assert_eq!(lines(&f.poll(1 << 20).unwrap()), ["new one", "new two", "new three, longer than the old file was"]);
    }

    #[test]
    fn truncation_is_seen_even_when_the_file_regrew_past_the_offset() {
        let d = dir("regrow");
        let log = d.join("access.log");
        append(&log, "aaaa\nbbbb\n");
        let mut f = Follower::new(log.clone(), 100, None).unwrap();
        f.poll(1 << 20).unwrap();
        // copytruncate, then nginx writes more than was read before the next poll.
        std::fs::write(&log, "cccccc\ndddddd\neeee\n").unwrap();
        assert_eq!(lines(&f.poll(1 << 20).unwrap()), ["cccccc", "dddddd", "eeee"]);
        // The fingerprint follows the new content: appends are not taken for rewrites.
        append(&log, "ffff\n");
        assert_eq!(lines(&f.poll(1 << 20).unwrap()), ["ffff"]);
    }
}
