//! Replacing a file so that a reader, or a crash, sees the old contents or
//! the new, never a mix: write a temporary file beside it, fsync it, rename
//! it over the old one, fsync the directory. One rule for every file
//! pullgate writes this way (rendered config, route table, checkpoint, salts).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replace `path` with `contents`, readable as the umask allows.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    replace(path, contents, 0o666)
}

/// Replace `path` with `contents`, readable by this user only (0600): salts.
pub fn write_atomic_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    replace(path, contents, 0o600)
}

fn replace(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp~");
    let tmp = path.with_file_name(tmp_name);
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    drop(f);
    match std::fs::rename(&tmp, path) {
        Ok(()) => {}
        // A bind-mounted file (EBUSY) or another file system (EXDEV) cannot
        // be renamed over: write it in place, the best that can be done there.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EXDEV)) => {
            let _ = std::fs::remove_file(&tmp);
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
            f.write_all(contents)?;
            f.sync_all()?;
            return Ok(());
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// Fill `buf` from the kernel's random source (`/dev/urandom`): salts, tokens.
pub fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, buf)
}

/// A fresh, empty directory for one test: `NAME-PID` under the system's
/// temporary directory. For tests of every crate; nothing else uses it.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pullgate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_files_and_keeps_private_ones_private() {
        let dir = scratch_dir("base-fs");
        let p = dir.join("a.conf");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let s = dir.join("1.salt");
        write_atomic_private(&s, &[7; 32]).unwrap();
        assert_eq!(std::fs::metadata(&s).unwrap().permissions().mode() & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "no temporary file is left behind: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
