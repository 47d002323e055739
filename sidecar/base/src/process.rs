//! Processes named by a pid file, and their children as /proc shows them;
//! and a thread's CPU priority.

use std::path::Path;

/// Run the calling thread only on CPU time that nothing else wants
/// (Linux `SCHED_IDLE`): for work that may lag, such as shipping the access
/// log, on a machine whose cores nginx may need. Its threads keep it.
pub fn idle_priority() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) reads `param` only; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The pid in `pid_file`. A missing file is an error of kind `NotFound`, a
/// file with no pid in it one of kind `InvalidData`.
pub fn read_pid_file(pid_file: &Path) -> std::io::Result<i32> {
    let text = std::fs::read_to_string(pid_file)?;
    text.trim().parse().map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("no pid in {text:?}")))
}

/// Send `signal` to the process whose pid is in `pid_file` (nginx's, for a
/// reload or a log reopen), with [`read_pid_file`]'s errors.
pub fn signal_pid_file(pid_file: &Path, signal: i32) -> std::io::Result<()> {
    let pid = read_pid_file(pid_file)?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("signal {signal} to pid {pid}: {e}")));
    }
    Ok(())
}

/// The children of `parent` and their titles (the command line, with its
/// NULs as spaces and trailing padding trimmed: nginx writes "nginx: worker
/// process" there). Empty where /proc cannot be read.
pub fn children(parent: i32) -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|entry| {
        let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        if parent_of(pid)? != parent {
            return None;
        }
        Some((pid, title(pid)?))
    })
    .collect()
}

/// The parent pid from /proc/PID/stat, whose second field (the command
/// name, in parentheses) may itself hold spaces and parentheses.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after) = stat.rsplit_once(')')?;
    after.split_whitespace().nth(1)?.parse().ok()
}

fn title(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
    Some(text.trim_end().to_string())
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

    #[test]
    fn children_are_found_with_their_titles() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let found = children(std::process::id() as i32);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found.contains(&(child.id() as i32, "sleep 30".to_string())), "{found:?}");
    }

    #[test]
    fn idle_priority_is_the_calling_threads_alone() {
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let idle = std::thread::spawn(move || {
            idle_priority().unwrap();
            policy()
        })
        .join()
        .unwrap();
        assert_eq!(idle, libc::SCHED_IDLE);
        assert_eq!(policy(), libc::SCHED_OTHER, "the thread that spawned it keeps its own");
    }
}
