//! Rotating the access log without losing a line: move it aside past a
//! size, keep one older generation (`LOG.1`), and delete that generation
//! only once the shipper's checkpoint has left it. The caller then tells
//! nginx to reopen its logs (SIGUSR1); until it does, nginx appends to the
//! file moved aside, which the follower reads to its end (see `tail`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::tail;

/// What one look at the log did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The log is below the size.
    NotDue,
    /// The log is past the size, but the generation before it is not
    /// shipped yet: nothing moved (the log grows until it is).
    Waiting,
    /// The log moved to `LOG.1`: reopen nginx's logs now.
    Rotated { deleted: Option<u64> },
}

/// `LOG.1`, where the log moves to.
pub fn rotated_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(".1");
    log.with_file_name(name)
}

/// Rotate `log` if it is `max_bytes` or more. `checkpoint`: the shipper's
/// (`STATE/ship/ship.checkpoint`); `None` when the log is not shipped, and
/// the older generation may go at once.
pub fn rotate_if_due(log: &Path, checkpoint: Option<&Path>, max_bytes: u64) -> std::io::Result<Rotation> {
    let current = match std::fs::metadata(log) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Rotation::NotDue),
        Err(e) => return Err(e),
    };
    if current.len() < max_bytes {
        return Ok(Rotation::NotDue);
    }
    let older = rotated_path(log);
    let mut deleted = None;
    match std::fs::metadata(&older) {
        Ok(m) => {
            if let Some(cp) = checkpoint {
                // Done with LOG.1 means reading LOG now: the follower moves on
                // only once the older file is read to its end and quiet.
                let at_current = tail::load_checkpoint(cp).is_some_and(|p| p.file.dev == current.dev() && p.file.ino == current.ino());
                if !at_current {
                    return Ok(Rotation::Waiting);
                }
            }
            std::fs::remove_file(&older)?;
            deleted = Some(m.len());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::rename(log, &older)?;
    Ok(Rotation::Rotated { deleted })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::tail::{Follower, Position};

    #[test]
    fn the_older_generation_goes_only_once_shipped() {
        let dir = pullgate_base::fs::scratch_dir("rotate");
        let (log, cp) = (dir.join("access.log"), dir.join("ship.checkpoint"));
        std::fs::write(&log, "a\n").unwrap();
        assert_eq!(rotate_if_due(&log, Some(&cp), 10).unwrap(), Rotation::NotDue);
        std::fs::write(&log, "0123456789\n").unwrap();
        assert_eq!(rotate_if_due(&log, Some(&cp), 10).unwrap(), Rotation::Rotated { deleted: None });
        assert!(!log.exists() && rotated_path(&log).exists());

        // A new log fills past the size while the follower is still on LOG.1.
        let mut f = Follower::new(rotated_path(&log), 1024, None).unwrap();
        let on_older: Position = f.poll(1 << 20).unwrap().position.expect("a position in LOG.1");
        tail::save_checkpoint(&cp, &on_older).unwrap();
        std::fs::write(&log, "abcdefghijk\n").unwrap();
        assert_eq!(rotate_if_due(&log, Some(&cp), 10).unwrap(), Rotation::Waiting);
        assert_eq!(std::fs::read_to_string(rotated_path(&log)).unwrap(), "0123456789\n");

        // Once the checkpoint is on LOG, LOG.1 goes and LOG moves aside.
        let mut g = Follower::new(log.clone(), 1024, None).unwrap();
        let at_log = g.poll(1 << 20).unwrap().position.unwrap();
        tail::save_checkpoint(&cp, &at_log).unwrap();
        assert_eq!(rotate_if_due(&log, Some(&cp), 10).unwrap(), Rotation::Rotated { deleted: Some(11) });
        assert_eq!(std::fs::read_to_string(rotated_path(&log)).unwrap(), "abcdefghijk\n");
    }
}
