//! Processes named by a pid file.

use std::path::Path;

/// Send `signal` to the process whose pid is in `pid_file` (nginx's, for a
/// reload or a log reopen). A missing file is an error of kind `NotFound`,
/// a file with no pid in it one of kind `InvalidData`.
pub fn signal_pid_file(pid_file: &Path, signal: i32) -> std::io::Result<()> {
    let text = std::fs::read_to_string(pid_file)?;
    let pid: i32 = text.trim().parse().map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("no pid in {text:?}")))?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("signal {signal} to pid {pid}: {e}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_the_pid_in_the_file_and_says_why_not() {
        let dir = crate::fs::scratch_dir("pidfile");
        let file = dir.join("x.pid");
        assert_eq!(signal_pid_file(&file, 0).unwrap_err().kind(), std::io::ErrorKind::NotFound);
        std::fs::write(&file, "nginx\n").unwrap();
        assert_eq!(signal_pid_file(&file, 0).unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        // Signal 0 checks that the process exists and may be signalled: this one.
        std::fs::write(&file, format!("{}\n", std::process::id())).unwrap();
        signal_pid_file(&file, 0).unwrap();
    }
}
