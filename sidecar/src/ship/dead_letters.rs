//! Lines and events that could not be shipped, with why: JSON lines in a 0600
//! file on this machine (they may hold raw addresses; they are never shipped).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::batch::DeadLetter;

pub struct DeadLetters {
    file: File,
}

impl DeadLetters {
    pub fn open(path: PathBuf) -> std::io::Result<DeadLetters> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        Ok(DeadLetters { file })
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
        self.file.write_all(&buf)?;
        self.file.sync_data()
    }
}
