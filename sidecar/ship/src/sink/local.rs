//! The local sink: append-only JSON-lines files, fsynced per batch, a new
//! file once one passes its size bound (`events-000001.jsonl`, ...).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use crate::batch::Prepared;

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

    /// Append one batch durably (fsync) before returning: this is the
    /// acknowledgement. A failed append is cut off again, so that a retry
    /// leaves no half line behind.
    pub fn write(&mut self, events: &[Prepared]) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if self.file.as_ref().is_some_and(|(_, size)| *size >= self.max_file_bytes) {
            self.file = None;
            self.seq += 1;
        }
        if self.file.is_none() {
            let f = OpenOptions::new().create(true).read(true).append(true).open(self.path())?;
            let size = whole_lines(&f)?;
            self.file = Some((f, size));
        }
        let (f, size) = self.file.as_mut().expect("opened above");
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.json.len() + 1).sum());
        for e in events {
            buf.extend_from_slice(e.json.as_bytes());
            buf.push(b'\n');
        }
        if let Err(e) = f.write_all(&buf).and_then(|()| f.sync_data()) {
            let _ = f.set_len(*size);
            return Err(e);
        }
        *size += buf.len() as u64;
        Ok(())
    }
}

/// Cut a half-written last line off `f`, and say how long it is then. A
/// SIGKILL can stop a write(2) part way (the kernel checks for fatal signals
/// between pages); that batch was not acknowledged, so it is shipped again.
fn whole_lines(f: &File) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let size = f.metadata()?.len();
    let mut end = size;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.read_exact_at(chunk, start)?;
        if let Some(nl) = chunk.iter().rposition(|b| *b == b'\n') {
            end = start + nl as u64 + 1;
            break;
        }
        end = start;
    }
    if end < size {
        tracing::warn!(cut = size - end, "the local sink ended in a half-written line (a crash); cut off, it is shipped again");
        f.set_len(end)?;
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_before_appending() {
        let dir = pullgate_base::fs::scratch_dir("sink");
        std::fs::write(dir.join("events-000001.jsonl"), "{\"a\":1}\n{\"b\":").unwrap();
        let mut sink = LocalSink::open(dir.clone(), 1 << 20).unwrap();
        sink.write(&[Prepared { ts_ms: 1, json: "{\"c\":3}".into() }]).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("events-000001.jsonl")).unwrap(), "{\"a\":1}\n{\"c\":3}\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
