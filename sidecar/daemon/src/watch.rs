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
/// `max` after its first event, whichever comes first; or at once with an
/// event that says the file is whole (see [`Event`]).
#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    pub quiet: Duration,
    pub max: Duration,
}

/// What an event says about routes.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// It is being changed: more may follow.
    Changed,
    /// It is whole: a rename put it (or a Kubernetes `..data` link) in
    /// place, or a writer closed it. Nothing need be waited for.
    Whole,
}

pub struct Events {
    _watcher: RecommendedWatcher,
    rx: UnboundedReceiver<Event>,
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
            let concerns_config =
                e.paths.iter().any(|p| p.file_name().is_some_and(|n| n == name.as_os_str() || n.as_encoded_bytes().starts_with(b"..")));
            if concerns_config {
                if let Some(event) = classify(&e.kind) {
                    let _ = tx.send(event);
                }
            }
        })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(Events { _watcher: watcher, rx })
    }

    /// Wait for the first event of a batch: whether it says the file is
    /// whole, or None if the watcher is gone.
    /// Cancellation-safe: dropping it loses no event.
    pub async fn first(&mut self) -> Option<bool> {
        self.rx.recv().await.map(|e| e == Event::Whole)
    }

    /// After `first`, gather the rest of the batch; returns the events in
    /// it. `whole`: the first event said the file is whole. Events already
    /// queued join the batch; after a whole file it ends at once.
    /// Not cancellation-safe: run it to completion.
    pub async fn rest(&mut self, d: Debounce, whole: bool) -> usize {
        let mut n = 1;
        let mut whole = whole;
        while let Ok(e) = self.rx.try_recv() {
            n += 1;
            whole = e == Event::Whole;
        }
        if whole {
            return n;
        }
        let deadline = Instant::now() + d.max;
        loop {
            let quiet_until = (Instant::now() + d.quiet).min(deadline);
            match tokio::time::timeout_at(quiet_until, self.rx.recv()).await {
                Ok(Some(Event::Whole)) => return n + 1,
                Ok(Some(Event::Changed)) => n += 1,
                Ok(None) | Err(_) => return n,
            }
            if Instant::now() >= deadline {
                return n;
            }
        }
    }
}

/// Reads (our own included) and opens change nothing; a close after a
/// write and a rename into place leave the file whole.
fn classify(kind: &notify::EventKind) -> Option<Event> {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    use notify::EventKind::*;
    match kind {
        Access(AccessKind::Close(AccessMode::Write)) => Some(Event::Whole),
        Access(_) => None,
        Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => Some(Event::Whole),
        _ => Some(Event::Changed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RenameMode};
    use notify::EventKind;

    #[test]
    fn a_close_after_writing_and_a_rename_into_place_leave_the_file_whole() {
        assert_eq!(classify(&EventKind::Access(AccessKind::Close(AccessMode::Write))), Some(Event::Whole));
        assert_eq!(classify(&EventKind::Modify(ModifyKind::Name(RenameMode::To))), Some(Event::Whole));
        assert_eq!(classify(&EventKind::Modify(ModifyKind::Data(DataChange::Any))), Some(Event::Changed));
        assert_eq!(classify(&EventKind::Create(CreateKind::File)), Some(Event::Changed));
        assert_eq!(classify(&EventKind::Modify(ModifyKind::Name(RenameMode::From))), Some(Event::Changed));
        assert_eq!(classify(&EventKind::Access(AccessKind::Close(AccessMode::Read))), None);
        assert_eq!(classify(&EventKind::Access(AccessKind::Open(AccessMode::Any))), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_ends_at_once_when_the_file_is_whole_else_after_quiet() {
        let (tx, rx) = unbounded_channel();
        let watcher = notify::recommended_watcher(|_| {}).unwrap();
        let mut events = Events { _watcher: watcher, rx };
        let d = Debounce { quiet: Duration::from_millis(100), max: Duration::from_secs(1) };
        for e in [Event::Changed, Event::Changed, Event::Whole] {
            tx.send(e).unwrap();
        }
        let start = Instant::now();
        let whole = events.first().await.unwrap();
        assert_eq!((whole, events.rest(d, whole).await), (false, 3));
        assert_eq!(start.elapsed(), Duration::ZERO, "a write closed: no quiet period");
        tx.send(Event::Changed).unwrap();
        let whole = events.first().await.unwrap();
        assert_eq!(events.rest(d, whole).await, 1);
        assert_eq!(start.elapsed(), Duration::from_millis(100), "a write not closed yet: waited for quiet");
    }
}
