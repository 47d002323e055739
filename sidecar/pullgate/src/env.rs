//! Every environment variable pullgate reads, read here once at start (clap
//! reads the ones that stand for flags: PULLGATE_CONFIG, PULLGATE_STATE_DIR,
//! PULLGATE_SINK, PULLGATE_CLOUDWATCH_*). Nothing else in pullgate reads the
//! environment; the stages get settings.

use std::ffi::OsString;
use std::path::PathBuf;

use pullgate_nginx::Nginx;

pub struct Env {
    /// `PULLGATE_NGINX`, else `nginx` on `PATH`, else `/usr/sbin/nginx`;
    /// modules from `PULLGATE_NGINX_MODULES`, else Debian's directory.
    pub nginx: Nginx,
    /// `PULLGATE_RESOLV_CONF`, else `/etc/resolv.conf`: where the default resolver comes from.
    pub resolv_conf: PathBuf,
    /// `PULLGATE_LOG`: the log filter (`info`, `debug`, `pullgate_daemon=debug`).
    pub log: Option<String>,
    /// Every variable, for the upstream credentials routes.yaml may name
    /// (`credentials: {env: NAME}`); the environment does not change while we run.
    pub vars: std::sync::Arc<std::collections::BTreeMap<String, String>>,
    /// `PULLGATE_STORE_USER` and `PULLGATE_STORE_PASSWORD`: the ClickHouse
    /// store's account when no account file is given (both, or neither).
    pub store_account: Option<(String, String)>,
    /// The machine's host name (gethostname(2)), if it has one.
    pub hostname: Option<String>,
    home: Option<OsString>,
    xdg_state_home: Option<OsString>,
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `len` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    (rc == 0 && end > 0).then(|| String::from_utf8_lossy(&buf[..end]).into_owned())
}

impl Env {
    /// Unset pullgate's and AWS's variables that are set but empty, so that
    /// empty means unset everywhere: for clap's flags, and for the AWS SDK
    /// (a Compose file passes `AWS_REGION: ${AWS_REGION:-}` as empty when
    /// .env leaves it blank). Call first, before any thread starts.
    pub fn clear_empty() {
        let empty: Vec<OsString> = std::env::vars_os()
            .filter(|(k, v)| v.is_empty() && k.to_str().is_some_and(|k| k.starts_with("PULLGATE_") || k.starts_with("AWS_")))
            .map(|(k, _)| k)
            .collect();
        for k in empty {
            std::env::remove_var(k);
        }
    }

    pub fn read() -> Env {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let mut nginx = Nginx::locate(var("PATH").as_deref());
        if let Some(b) = var("PULLGATE_NGINX") {
            nginx.binary = b.to_string_lossy().into_owned();
        }
        if let Some(d) = var("PULLGATE_NGINX_MODULES") {
            nginx.modules_dir = d.to_string_lossy().into_owned();
        }
        Env {
            nginx,
            resolv_conf: var("PULLGATE_RESOLV_CONF").map_or_else(|| "/etc/resolv.conf".into(), PathBuf::from),
            log: var("PULLGATE_LOG").map(|v| v.to_string_lossy().into_owned()),
            vars: std::sync::Arc::new(std::env::vars().collect()),
            store_account: var("PULLGATE_STORE_USER").map(|u| {
                let password = var("PULLGATE_STORE_PASSWORD").unwrap_or_default();
                (u.to_string_lossy().into_owned(), password.to_string_lossy().into_owned())
            }),
            hostname: hostname(),
            home: var("HOME"),
            xdg_state_home: var("XDG_STATE_HOME"),
        }
    }

    /// The state directory: `--state-dir` (or `PULLGATE_STATE_DIR`, through
    /// clap), else, for root, `/var/lib/pullgate` (nginx's workers then run
    /// as another user and must be able to read the route table; root's home
    /// is closed to them), else `$XDG_STATE_HOME/pullgate`, else
    /// `~/.local/state/pullgate`.
    pub fn state_dir(&self, flag: Option<PathBuf>) -> PathBuf {
        if let Some(dir) = flag {
            return dir;
        }
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return PathBuf::from("/var/lib/pullgate");
        }
        if let Some(xdg) = &self.xdg_state_home {
            return PathBuf::from(xdg).join("pullgate");
        }
        match &self.home {
            Some(home) => PathBuf::from(home).join(".local/state/pullgate"),
            None => PathBuf::from(".pullgate"),
        }
    }
}
