//! The state directory: everything pullgate writes (nginx prefix, scratch space).

use std::path::PathBuf;

/// `--state-dir`, else `$PULLGATE_STATE_DIR` (handled by clap), else
/// `$XDG_STATE_HOME/pullgate`, else `~/.local/state/pullgate`.
pub fn resolve(flag: Option<PathBuf>) -> PathBuf {
    if let Some(dir) = flag {
        return dir;
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("pullgate");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/pullgate"),
        None => PathBuf::from(".pullgate"),
    }
}
