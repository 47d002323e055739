//! Watch the directory of routes.yaml, not the file: editors save by writing
//! a new file and renaming it, Kubernetes swaps a `..data` symlink, and both
//! replace the inode a file watch would follow. Events count when they name
//! the file itself or a Kubernetes `..` entry; anything else in the
//! directory (a log file written next to it, an editor's swap file) is
//! ignored, so the daemon's own output can never drive it in a loop.

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
        let name = config_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        let (tx, rx) = unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(e) = event else { return };
            // Access events (reads, including our own) change nothing.
            let concerns_config =
                e.paths.iter().any(|p| p.file_name().is_some_and(|n| n == name.as_os_str() || n.as_encoded_bytes().starts_with(b"..")));
            if concerns_config && !e.kind.is_access() {
                let _ = tx.send(());
            }
        })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(Events { _watcher: watcher, rx })
    }

    /// Wait for the first event of a batch; false if the watcher is gone.
    /// Cancellation-safe: dropping it loses no event.
    pub async fn first(&mut self) -> bool {
        self.rx.recv().await.is_some()
    }

    /// After `first`, gather the rest of the batch; returns the events in it.
    /// Not cancellation-safe: run it to completion.
    pub async fn rest(&mut self, d: Debounce) -> usize {
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
