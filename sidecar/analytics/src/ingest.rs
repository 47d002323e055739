//! Ingest from the shipper's local sink (`STATE/events/events-NNNNNN.jsonl`):
//! resumable through a cursor (file number and byte offset) that moves in
//! the same transaction as the batch it covers, so a crash at any moment
//! loses nothing and counts nothing twice; and request ids dedupe what a
//! second read of the same events would add.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::AnalyticsError;
use crate::event::Shipped;
use crate::store::Store;

/// What a pass over the sink read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub events: u64,
    /// Requests not ingested before.
    pub new: u64,
    /// Lines that are not shipped events: counted and logged, never fatal.
    pub bad_lines: u64,
}

/// Events per transaction.
pub const BATCH: usize = 5_000;

/// A long pass (a backlog after a restart, a node that ships faster than
/// the store takes) settles this often, so that reports lag by this much
/// at most rather than by the whole pass.
pub const SETTLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Settles the store when [`SETTLE_EVERY`] has passed since it last did.
pub(crate) struct Settler(std::time::Instant);

impl Settler {
    pub(crate) fn new() -> Settler {
        Settler(std::time::Instant::now())
    }

    pub(crate) fn maybe(&mut self, store: &mut dyn Store) -> Result<(), AnalyticsError> {
        if self.0.elapsed() >= SETTLE_EVERY {
            store.tidy()?;
            self.0 = std::time::Instant::now();
        }
        Ok(())
    }
}

fn files(dir: &Path) -> Result<Vec<(u64, std::path::PathBuf)>, AnalyticsError> {
    let io = |source| AnalyticsError::Io { what: "the local sink", path: dir.display().to_string(), source };
    let mut out: Vec<(u64, std::path::PathBuf)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| {
                let seq = e.file_name().to_str()?.strip_prefix("events-")?.strip_suffix(".jsonl")?.parse::<u64>().ok()?;
                Some((seq, e.path()))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(e)),
    };
    out.sort();
    Ok(out)
}

/// Read everything the sink in `dir` holds past the cursor into `store`,
/// tidying as it goes; a caller that stops after it settles the store.
/// `node` names the machine when the store is shared by several (each
/// keeps its own cursor, though their sinks may have the same path).
pub fn local_sink(store: &mut dyn Store, dir: &Path, node: Option<&str>) -> Result<Progress, AnalyticsError> {
    let source = match node {
        Some(node) => format!("local:{node}:{}", dir.display()),
        None => format!("local:{}", dir.display()),
    };
    let (mut at_seq, mut at_offset) = match store.cursor(&source)? {
        Some(p) => p.split_once(':').and_then(|(s, o)| Some((s.parse::<u64>().ok()?, o.parse::<u64>().ok()?))).unwrap_or((0, 0)),
        None => (0, 0),
    };
    let mut progress = Progress::default();
    let mut settler = Settler::new();
    for (seq, path) in files(dir)? {
        if seq < at_seq {
            continue;
        }
        let offset = if seq == at_seq { at_offset } else { 0 };
        let io = |source| AnalyticsError::Io { what: "a local sink file", path: path.display().to_string(), source };
        let mut file = std::fs::File::open(&path).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut reader = BufReader::new(file.take(u64::MAX));
        let mut pos = offset;
        let mut batch = Vec::with_capacity(BATCH);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(io)?;
            // A line without its newline is being written: wait for the rest.
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            pos += n as u64;
            match Shipped::parse(line.trim_end()) {
                Ok(e) => batch.push(e),
                Err(why) => {
                    progress.bad_lines += 1;
                    tracing::warn!(file = %path.display(), offset = pos - n as u64, %why, "skipping a line of the local sink");
                }
            }
            if batch.len() >= BATCH {
                let done = store.ingest(&batch, &source, &format!("{seq}:{pos}"))?;
                progress.events += done.events;
                progress.new += done.new;
                batch.clear();
                settler.maybe(store)?;
            }
        }
        let done = store.ingest(&batch, &source, &format!("{seq}:{pos}"))?;
        progress.events += done.events;
        progress.new += done.new;
        (at_seq, at_offset) = (seq, pos);
    }
    // Also when nothing came: what an earlier pass left pending.
    store.tidy()?;
    Ok(progress)
}
