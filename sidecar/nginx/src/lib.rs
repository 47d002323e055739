//! The nginx binary and the files it reads: stage a rendered set and check
//! it with `nginx -t`, write the include set, lay out a prefix, run nginx.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use pullgate_render::{MainConf, RenderError, Rendered, INCLUDE_FILE};

#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error("cannot run {binary}: {source} (install nginx, or set PULLGATE_NGINX to its path)")]
    Spawn { binary: String, source: std::io::Error },
    #[error("nginx rejected the rendered config:\n{message}")]
    Rejected { message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Which nginx to run, and where its dynamic modules are (Lua mode loads two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nginx {
    pub binary: String,
    pub modules_dir: String,
}

impl Nginx {
    /// `nginx` if a directory of `path_var` (the value of `PATH`) has it,
    /// else Debian's `/usr/sbin/nginx`; Debian's module directory.
    pub fn locate(path_var: Option<&OsStr>) -> Nginx {
        let on_path = path_var.is_some_and(|p| std::env::split_paths(p).any(|d| d.join("nginx").is_file()));
        let binary = if on_path { "nginx" } else { "/usr/sbin/nginx" };
        Nginx { binary: binary.into(), modules_dir: pullgate_render::DEFAULT_MODULES_DIR.into() }
    }

    fn spawn_error(&self, source: std::io::Error) -> NginxError {
        NginxError::Spawn { binary: self.binary.clone(), source }
    }

    /// Check a rendered set with `nginx -t` in a scratch prefix under `scratch_parent`.
    /// Paths in nginx's message are shown as `<rendered>/FILE`.
    pub fn check(&self, rendered: &Rendered, scratch_parent: &Path) -> Result<(), NginxError> {
        std::fs::create_dir_all(scratch_parent).map_err(io(scratch_parent))?;
        static CHECKS: AtomicU64 = AtomicU64::new(0);
        let n = CHECKS.fetch_add(1, Ordering::Relaxed);
        let scratch = scratch_parent.join(format!("check-{}-{n}", std::process::id()));
        let prefix = Prefix::create(self.clone(), scratch.clone())?;
        let result = prefix.install(rendered, false, "stderr").and_then(|_| prefix.test());
        let _ = std::fs::remove_dir_all(&scratch);
        result.map_err(|e| match e {
            NginxError::Rejected { message } => {
                let staged = format!("{}/conf/", prefix.root.display());
                NginxError::Rejected { message: message.replace(&staged, "<rendered>/") }
            }
            other => other,
        })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NginxError + '_ {
    move |source| NginxError::Io { path: path.to_path_buf(), source }
}

/// Replace one file nginx reads (see [`pullgate_base::fs::write_atomic`]).
pub fn write_file(path: &Path, contents: &str) -> Result<(), NginxError> {
    pullgate_base::fs::write_atomic(path, contents.as_bytes()).map_err(io(path))
}

/// Write the include set into `dir` (the include last, so that what it
/// refers to is there first). A file that already holds its contents is
/// left alone; index documents the set no longer has are removed.
pub fn write_set(rendered: &Rendered, dir: &Path) -> Result<(), NginxError> {
    for (name, contents) in rendered.files.iter().rev() {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|old| old == contents.as_bytes()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        if rendered.private && name == INCLUDE_FILE {
            pullgate_base::fs::write_atomic_private(&path, contents.as_bytes()).map_err(io(&path))?;
        } else {
            write_file(&path, contents)?;
        }
    }
    let keep: std::collections::HashSet<PathBuf> = rendered.files.iter().map(|(n, _)| dir.join(n)).collect();
    prune(&dir.join(pullgate_render::INDEX_DIR), &keep)?;
    Ok(())
}

/// Remove the files under `dir` that are not in `keep`, and directories left empty.
fn prune(dir: &Path, keep: &std::collections::HashSet<PathBuf>) -> Result<(), NginxError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        let is_dir = std::fs::symlink_metadata(&path).map_err(io(&path))?.is_dir();
        if is_dir {
            prune(&path, keep)?;
            // Only if empty: a directory still holding kept files stays.
            let _ = std::fs::remove_dir(&path);
        } else if !keep.contains(&path) {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// An nginx prefix laid out for pullgate: `conf/`, `logs/`, `tmp/`.
pub struct Prefix {
    pub root: PathBuf,
    nginx: Nginx,
}

impl Prefix {
    pub fn create(nginx: Nginx, root: PathBuf) -> Result<Prefix, NginxError> {
        for sub in ["conf", "logs", "tmp"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        let root = root.canonicalize().map_err(io(&root))?;
        Ok(Prefix { root, nginx })
    }

    pub fn main_conf(&self) -> PathBuf {
        self.root.join("conf/nginx.conf")
    }

    /// Where the include set lives.
    pub fn conf_dir(&self) -> PathBuf {
        self.root.join("conf")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.root.join("nginx.pid")
    }

    /// Write the include set and a main nginx.conf around it.
    pub fn install(&self, rendered: &Rendered, foreground: bool, error_log: &str) -> Result<(), NginxError> {
        write_set(rendered, &self.conf_dir())?;
        self.install_main(foreground, error_log, rendered.table.is_some())
    }

    /// Write only the main nginx.conf, which includes `conf/pullgate.conf`.
    pub fn install_main(&self, foreground: bool, error_log: &str, lua: bool) -> Result<(), NginxError> {
        let root = self.root.display().to_string();
        let include = self.conf_dir().join(INCLUDE_FILE).display().to_string();
        let modules = if lua { pullgate_render::lua_modules(&self.nginx.modules_dir) } else { Vec::new() };
        let main = MainConf { prefix: &root, include: &include, error_log, workers: "auto", foreground, modules }.to_string()?;
        write_file(&self.main_conf(), &main)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.nginx.binary);
        cmd.arg("-p").arg(&self.root).arg("-c").arg(self.main_conf()).args(args);
        cmd
    }

    /// The error for an nginx of this prefix that could not be started.
    pub fn spawn_error(&self, source: std::io::Error) -> NginxError {
        self.nginx.spawn_error(source)
    }

    /// `nginx -t` on this prefix; nginx's own message on failure.
    pub fn test(&self) -> Result<(), NginxError> {
        let out = self.command(&["-t", "-q"]).output().map_err(|e| self.spawn_error(e))?;
        if out.status.success() {
            Ok(())
        } else {
            let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(NginxError::Rejected { message })
        }
    }
}
