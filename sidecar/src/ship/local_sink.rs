//! The local sink: append-only JSON-lines files, fsynced per batch, a new
//! file once one passes its size bound (`events-000001.jsonl`, ...).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

pub struct LocalSink {
    dir: PathBuf,
    max_file_bytes: u64,
    file: Option<(File, u64)>,
    seq: u64,
}

impl LocalSink {
    pub fn open(dir: PathBuf, max_file_bytes: u64) -> std::io::Result<LocalSink> {
        std::fs::create_dir_all(&dir)?;
        // Continue the newest file.
        let seq = std::fs::read_dir(&dir)?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("events-")?.strip_suffix(".jsonl")?.parse::<u64>().ok())
            .max()
            .unwrap_or(1);
        Ok(LocalSink { dir, max_file_bytes, file: None, seq })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(format!("events-{:06}.jsonl", self.seq))
    }

    /// Append one batch durably (fsync) before returning: this is the acknowledgement.
    pub fn write(&mut self, events: &[Vec<u8>]) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if self.file.as_ref().is_some_and(|(_, size)| *size >= self.max_file_bytes) {
            self.file = None;
            self.seq += 1;
        }
        if self.file.is_none() {
            let f = OpenOptions::new().create(true).append(true).open(self.path())?;
            let size = f.metadata()?.len();
            self.file = Some((f, size));
        }
        let (f, size) = self.file.as_mut().expect("opened above");
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum());
        for e in events {
            buf.extend_from_slice(e);
            buf.push(b'\n');
        }
        f.write_all(&buf)?;
        f.sync_data()?;
        *size += buf.len() as u64;
        Ok(())
    }
}

/// Lines that could not be shipped, with why: JSON lines in a 0600 file on
/// this machine (they may hold raw addresses; they are never shipped).
pub struct DeadLetters {
    file: File,
}

impl DeadLetters {
    pub fn open(path: PathBuf) -> std::io::Result<DeadLetters> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        Ok(DeadLetters { file })
    }

    pub fn add(&mut self, reason: &str, line: &[u8], len: u64) -> std::io::Result<()> {
        let sample = String::from_utf8_lossy(&line[..line.len().min(1024)]);
        let entry = serde_json::json!({"reason": reason, "length": len, "line": sample});
        writeln!(self.file, "{entry}")
    }

    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}
