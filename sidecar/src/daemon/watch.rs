//! Watch the directory of routes.yaml, not the file: editors save by writing
//! a new file and renaming it, Kubernetes swaps a `..data` symlink, and both
//! replace the inode a file watch would follow. Every event in the directory
//! counts; the daemon re-reads the file and skips what did not change.

use std::path::Path;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::time::Instant;

/// How events are grouped: a batch ends after `quiet` without events, or
/// `max` after its first event, whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    pub quiet: Duration,
    pub max: Duration,
}

pub struct Events {
    _watcher: RecommendedWatcher,
    rx: UnboundedReceiver<()>,
}

impl Events {
    pub fn watch(config_path: &Path) -> notify::Result<Events> {
        let dir = match config_path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let (tx, rx) = unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Access events (reads, including our own) change nothing.
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(Events { _watcher: watcher, rx })
    }

    /// Wait for the next batch; returns how many events it held (0: the watcher is gone).
    pub async fn next_batch(&mut self, d: Debounce) -> usize {
        if self.rx.recv().await.is_none() {
            return 0;
        }
        let mut n = 1;
        let deadline = Instant::now() + d.max;
        loop {
            let quiet_until = (Instant::now() + d.quiet).min(deadline);
            match tokio::time::timeout_at(quiet_until, self.rx.recv()).await {
                Ok(Some(())) => n += 1,
                Ok(None) | Err(_) => return n,
            }
            if Instant::now() >= deadline {
                return n;
            }
        }
    }
}
