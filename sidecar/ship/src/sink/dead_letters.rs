//! Lines and events that could not be shipped, with why: JSON lines in a 0600
//! file on this machine (they may hold raw addresses; they are never shipped).
//! Past its size bound the file becomes `NAME.1` (replacing the one before),
//! so a flood of bad lines cannot fill the disk; the counters keep the total.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::batch::DeadLetter;

pub struct DeadLetters {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
}

fn open(path: &PathBuf) -> std::io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

impl DeadLetters {
    pub fn open(path: PathBuf, max_bytes: u64) -> std::io::Result<DeadLetters> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let (file, size) = open(&path)?;
        Ok(DeadLetters { path, file, size, max_bytes })
    }

    /// Append `letters` durably (fsync) before returning.
    pub fn add(&mut self, letters: &[DeadLetter]) -> std::io::Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for l in letters {
            let entry = serde_json::json!({"reason": l.reason, "length": l.len, "line": String::from_utf8_lossy(&l.sample)});
            serde_json::to_writer(&mut buf, &entry).expect("serialises");
            buf.push(b'\n');
        }
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            let old = self.path.with_extension("1.jsonl");
            std::fs::rename(&self.path, &old)?;
            tracing::warn!(file = %old.display(), "the dead letters passed their size bound; the older ones are in this file, the oldest are gone");
            (self.file, self.size) = open(&self.path)?;
        }
        self.file.write_all(&buf)?;
        self.size += buf.len() as u64;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_bound_the_file_moves_aside_once() {
        let dir = pullgate_base::fs::scratch_dir("dead-letters");
        let path = dir.join("dead-letters.jsonl");
        let mut d = DeadLetters::open(path.clone(), 300).unwrap();
        let letter = DeadLetter::new("why", &[b'x'; 100], 100);
        for _ in 0..5 {
            d.add(std::slice::from_ref(&letter)).unwrap();
        }
        let lines = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default().lines().count();
        assert_eq!((lines(&path), lines(&dir.join("dead-letters.1.jsonl"))), (1, 2), "the newest here, the ones before beside it");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
