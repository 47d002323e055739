//! The state directory: everything pullgate writes (nginx prefix, scratch space).

use std::path::PathBuf;

/// `--state-dir`, else `$PULLGATE_STATE_DIR` (handled by clap), else, for
/// root, `/var/lib/pullgate` (nginx's workers then run as another user and
/// must be able to read the route table; root's home is closed to them),
/// else `$XDG_STATE_HOME/pullgate`, else `~/.local/state/pullgate`.
pub fn resolve(flag: Option<PathBuf>) -> PathBuf {
    if let Some(dir) = flag {
        return dir;
    }
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/pullgate");
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("pullgate");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/pullgate"),
        None => PathBuf::from(".pullgate"),
    }
}
