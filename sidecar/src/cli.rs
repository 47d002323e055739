//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::daemon::health::HealthArgs;
use crate::daemon::Debounce;

/// pullgate serves container images and release files from your own domain:
/// stock nginx redirects (or proxies) each request to where the bytes live and
/// logs it, and pullgate renders that nginx config from routes.yaml.
#[derive(Debug, Parser)]
#[command(name = "pullgate", version, propagate_version = true)]
pub struct Cli {
    /// Where pullgate keeps what it writes: the nginx prefix of `up`, scratch
    /// space for checks, the route table. nginx's workers must be able to read it.
    /// Default: /var/lib/pullgate as root, else $XDG_STATE_HOME/pullgate or ~/.local/state/pullgate.
    #[arg(long, global = true, env = "PULLGATE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check routes.yaml; print a one-line summary, or every problem as FILE:LINE:COL (exit 2).
    Validate(ConfigArg),
    /// Render the nginx include set into a directory.
    ///
    /// Writes `pullgate.conf`, a file your own nginx.conf includes inside `http {}`.
    /// With --check, runs `nginx -t` on a staged copy first and writes nothing if nginx rejects it.
    Render {
        #[command(flatten)]
        config: ConfigArg,
        /// Directory to write the include set into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Run `nginx -t` on the rendered set before writing it.
        #[arg(long)]
        check: bool,
    },
    /// Run nginx in the foreground on a prefix under the state directory, and
    /// keep it serving the latest good routes.yaml.
    ///
    /// Edits to routes.yaml go live within about a second: validated, rendered,
    /// checked with `nginx -t`, swapped in, reloaded and verified; a broken edit
    /// never goes live and is reported (log, `pullgate status`, metrics).
    /// The access log goes to STATE_DIR/nginx/logs/ unless routes.yaml says
    /// otherwise. Ctrl-C (or SIGTERM) stops nginx gracefully.
    Up {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// The sidecar for an nginx that pullgate does not start: keep DIR/pullgate.conf
    /// in step with routes.yaml and reload that nginx.
    ///
    /// Your nginx.conf includes DIR/pullgate.conf inside `http {}`. Every change is
    /// checked with `nginx -t` first, and verified after the reload through a
    /// control socket the rendered config listens on.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Directory nginx includes pullgate.conf from.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// nginx's pid file: reload with SIGHUP to that process.
        #[arg(long, value_name = "FILE", required_unless_present = "reload_command", conflicts_with = "reload_command")]
        pid_file: Option<PathBuf>,
        /// Reload with this command instead, e.g. "nginx -s reload" (split on spaces).
        #[arg(long, value_name = "CMD")]
        reload_command: Option<String>,
        /// Unix socket the rendered config answers on (default STATE_DIR/control.sock).
        #[arg(long, value_name = "PATH")]
        control_socket: Option<PathBuf>,
    },
    /// Show what a running `up` or `run` reports: the config serving, reloads, the last error.
    Status {
        /// The status endpoint of the daemon (its --status-listen).
        #[arg(long, default_value = "127.0.0.1:9477", value_name = "ADDR")]
        status: SocketAddr,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of routes.yaml (for editors).
    Schema,
    /// Ship the access log: tail it through rotation, parse schema v1, replace
    /// the client address by keyed hashes, and append the events to the local
    /// sink, checkpointing only what the sink has made durable.
    ///
    /// At least once: after a crash it re-ships from its checkpoint; each
    /// event's `id` is the dedupe key. Lines it cannot parse go, with the
    /// reason, to STATE_DIR/ship/dead-letters.jsonl.
    Ship {
        /// The access log (schema v1).
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
        /// Directory of the local sink (default STATE_DIR/events).
        #[arg(long, value_name = "DIR", conflicts_with = "null_sink")]
        sink_dir: Option<PathBuf>,
        /// Discard the events instead (for measuring the shipper itself).
        #[arg(long)]
        null_sink: bool,
        /// Longer lines are dead-lettered.
        #[arg(long, default_value_t = 65536, value_name = "BYTES")]
        max_line: usize,
        /// At most this much is read per batch.
        #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
        batch_bytes: usize,
        /// A sink file is closed past this size and a new one begun.
        #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
        sink_file_bytes: u64,
        /// Directory of tor-geoipdb's `geoip` and `geoip6`, for each event's
        /// country; `none` for no country.
        #[arg(long, default_value = "/usr/share/tor", value_name = "DIR|none")]
        geoip_dir: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The routes file.
    #[arg(short = 'c', long = "config", default_value = "routes.yaml", env = "PULLGATE_CONFIG", value_name = "FILE")]
    pub path: PathBuf,
}

/// How the daemon watches routes.yaml and reports.
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Serve /metrics (Prometheus) and /status (JSON) here; `off` to disable.
    #[arg(long, default_value = "127.0.0.1:9477", value_name = "ADDR|off")]
    pub status_listen: Listen,
    /// A burst of file events ends after this many milliseconds without one.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub debounce_ms: u64,
    /// ... or this many milliseconds after it began, whichever is first.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub debounce_max_ms: u64,
    /// At least this many milliseconds between the starts of two reloads.
    #[arg(long, default_value_t = 200, value_name = "MS")]
    pub min_reload_interval_ms: u64,
    /// How often upstreams with fallbacks are health-checked (GET /v2/).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub health_interval_ms: u64,
    /// A health check not answered 200 or 401 within this long fails.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub health_timeout_ms: u64,
    /// Consecutive failed checks before an upstream counts as down.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub health_fall: u32,
    /// Consecutive passed checks before it counts as up again.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub health_rise: u32,
}

impl DaemonArgs {
    pub fn debounce(&self) -> Debounce {
        Debounce { quiet: Duration::from_millis(self.debounce_ms), max: Duration::from_millis(self.debounce_max_ms) }
    }

    pub fn min_interval(&self) -> Duration {
        Duration::from_millis(self.min_reload_interval_ms)
    }

    pub fn health(&self) -> HealthArgs {
        HealthArgs {
            interval: Duration::from_millis(self.health_interval_ms),
            timeout: Duration::from_millis(self.health_timeout_ms),
            fall: self.health_fall,
            rise: self.health_rise,
        }
    }
}

/// An address to listen on, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct Listen(pub Option<SocketAddr>);

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Listen, String> {
        if s == "off" {
            return Ok(Listen(None));
        }
        s.parse().map(|a| Listen(Some(a))).map_err(|e| format!("{e}: expected IP:PORT or `off`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent_and_daemon_flags_parse() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["pullgate", "up", "--status-listen", "off", "--debounce-ms", "50"]).unwrap();
        let Command::Up { daemon, .. } = cli.command else { panic!("not up") };
        assert!(daemon.status_listen.0.is_none());
        assert_eq!(daemon.debounce().quiet, Duration::from_millis(50));
        let cli = Cli::try_parse_from(["pullgate", "run", "--out", "/x", "--reload-command", "nginx -s reload"]).unwrap();
        assert!(matches!(cli.command, Command::Run { reload_command: Some(_), .. }));
        assert!(Cli::try_parse_from(["pullgate", "run", "--out", "/x"]).is_err(), "run needs a way to reload");
    }
}
