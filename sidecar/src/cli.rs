//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// pullgate serves container images and release files from your own domain:
/// stock nginx redirects (or proxies) each request to where the bytes live and
/// logs it, and pullgate renders that nginx config from routes.yaml.
#[derive(Debug, Parser)]
#[command(name = "pullgate", version, propagate_version = true)]
pub struct Cli {
    /// Where pullgate keeps what it writes: the nginx prefix of `up`, scratch
    /// space for checks. Default: $XDG_STATE_HOME/pullgate or ~/.local/state/pullgate.
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
    /// Render, check and run nginx in the foreground on a prefix under the state directory.
    ///
    /// The access log goes to STATE_DIR/nginx/logs/ unless routes.yaml says otherwise.
    /// Ctrl-C (or SIGTERM) stops nginx gracefully.
    Up(ConfigArg),
    /// Print the JSON Schema of routes.yaml (for editors).
    Schema,
}

#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The routes file.
    #[arg(short = 'c', long = "config", default_value = "routes.yaml", env = "PULLGATE_CONFIG", value_name = "FILE")]
    pub path: PathBuf,
}
