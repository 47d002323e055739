//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use pullgate_daemon::{Debounce, HealthArgs};
use pullgate_ship::sink::{self, cloudwatch};
use pullgate_ship::ShipArgs;

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
    /// otherwise, and is shipped (see `pullgate ship`). Ctrl-C (or SIGTERM)
    /// stops nginx gracefully.
    Up {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Do not ship the access log.
        #[arg(long)]
        no_ship: bool,
        #[command(flatten)]
        rotate: RotateOpts,
        /// Do not ingest the shipped events into STATE_DIR/analytics.db
        /// (done every 2 s from the local sink, every 10 s from CloudWatch).
        #[arg(long)]
        no_analytics: bool,
        /// Where the events are ingested and the dashboard reads them.
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        dashboard: DashboardOpts,
        #[command(flatten)]
        ship: ShipOpts,
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
        /// The access log to ship (default: routes.yaml's `gateway.access_log`
        /// if it is an absolute path; else nothing is shipped).
        #[arg(long, value_name = "FILE")]
        access_log: Option<PathBuf>,
        /// Do not ship the access log.
        #[arg(long, conflicts_with = "access_log")]
        no_ship: bool,
        #[command(flatten)]
        rotate: RotateOpts,
        /// Do not ingest the shipped events into STATE_DIR/analytics.db
        /// (done every 2 s from the local sink, every 10 s from CloudWatch).
        #[arg(long)]
        no_analytics: bool,
        /// Where the events are ingested and the dashboard reads them.
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        dashboard: DashboardOpts,
        #[command(flatten)]
        ship: ShipOpts,
    },
    /// The dashboard: pulls, version checks, downloads and unique origins
    /// over time, breakdowns, badges, a JSON and CSV API, Prometheus counters.
    ///
    /// Reads the analytics store (`up` and `run` serve it too). Badges are
    /// served for the repositories routes.yaml routes, read again when it
    /// changes. See docs/dashboard.md.
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:9300", value_name = "ADDR")]
        listen: SocketAddr,
        /// A file holding the token every request but badges must carry
        /// (`Authorization: Bearer`, or once `/login?token=` in a browser);
        /// needed to listen beyond loopback.
        #[arg(long, value_name = "FILE", env = "PULLGATE_DASHBOARD_TOKEN_FILE")]
        token_file: Option<PathBuf>,
        /// If the token file does not exist, write a new random token to it
        /// (mode 0600) first: a container's first start.
        #[arg(long, requires = "token_file")]
        create_token: bool,
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        store: StoreArgs,
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
    /// Analytics: read shipped events into the analytics store.
    #[command(subcommand)]
    Analytics(AnalyticsCommand),
    /// Pulls, version checks, downloads and unique origins, from the
    /// analytics store: totals, and rows by period and dimensions.
    ///
    /// Times: `30d`, `12h`, `90m`, `now`, a date (2026-11-01) or a UTC time
    /// (2026-11-01T12:00). `--format json` is a documented contract
    /// (docs/report.md).
    Report(ReportArgs),
    /// Ship the access log: tail it through rotation, parse schema v1, replace
    /// the client address by keyed hashes, and send the events to CloudWatch
    /// Logs or the local sink, checkpointing only what the sink has taken.
    ///
    /// At least once: after a crash it re-ships from its checkpoint; each
    /// event's `id` is the dedupe key. Lines it cannot parse, and events a
    /// sink refuses, go with the reason to STATE_DIR/ship/dead-letters.jsonl.
    /// `up` and `run` ship too; this runs the shipper alone.
    Ship {
        /// The access log (schema v1).
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
        #[command(flatten)]
        ship: ShipOpts,
    },
}

#[derive(Debug, Subcommand)]
pub enum AnalyticsCommand {
    /// Read the shipper's local sink (STATE_DIR/events), or with
    /// --cloudwatch-group every stream of a CloudWatch Logs group, into the
    /// store, from where the last run stopped. Each request counts once
    /// however often it is read; a crash at any moment loses and doubles nothing.
    Ingest {
        /// The local sink's directory (default STATE_DIR/events).
        #[arg(long, value_name = "DIR", conflicts_with = "cloudwatch_group")]
        sink_dir: Option<PathBuf>,
        /// Read this CloudWatch Logs group instead (all of its streams, one
        /// per gateway node). Credentials come from the standard chain.
        #[arg(long, env = "PULLGATE_CLOUDWATCH_GROUP", value_name = "NAME")]
        cloudwatch_group: Option<String>,
        /// Only the group's streams whose names begin with PREFIX: a pool of
        /// ingesters splits a group by stream, one prefix each (node-1,
        /// node-2, ...); each prefix keeps a cursor of its own.
        #[arg(long, value_name = "PREFIX", requires = "cloudwatch_group")]
        cloudwatch_stream_prefix: Option<String>,
        /// Region (default: the standard chain, e.g. AWS_REGION).
        #[arg(long, value_name = "REGION")]
        aws_region: Option<String>,
        /// Another CloudWatch Logs endpoint than the region's.
        #[arg(long, env = "PULLGATE_CLOUDWATCH_ENDPOINT", value_name = "URL")]
        cloudwatch_endpoint: Option<String>,
        /// For a group never read: from this time (`30d`, a date, ...).
        #[arg(long, default_value = "30d", value_name = "TIME")]
        since: String,
        /// Each run reads again this far before where the last one ended,
        /// for events CloudWatch took in late (ids keep them counted once).
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        overlap_s: u32,
        /// Keep reading as the shipper writes (every --poll-ms).
        #[arg(long)]
        follow: bool,
        /// With --follow, look for new events this often.
        #[arg(long, default_value_t = 2000, value_name = "MS")]
        poll_ms: u64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Import raw schema-v1 access logs (rotated ones, other nodes', gzip
    /// too) through the shipper's own parse, enrich and anonymise code: no
    /// raw address or credential reaches the store. Each event is keyed
    /// with its own day's salt; the salts of old days are deleted when the
    /// import is done, so give all the logs of a day in one run. Importing a
    /// file again counts nothing twice, and an interrupted import resumes
    /// where it stopped. A progress bar shows on a terminal.
    Import {
        /// Access logs; `.gz` or not, recognised by content.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        enrich: EnrichOpts,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Rotating the access log.
#[derive(Debug, Clone, clap::Args)]
pub struct RotateOpts {
    /// Move the access log to LOG.1 once it is this large, and have nginx
    /// reopen it (SIGUSR1 to the pid in the pid file). One older
    /// generation is kept, and deleted only once shipped, so no line is
    /// lost. Default: never (leave it to logrotate).
    #[arg(long, value_name = "BYTES")]
    pub rotate_log_bytes: Option<u64>,
}

/// The dashboard that `up` and `run` serve.
#[derive(Debug, Clone, clap::Args)]
pub struct DashboardOpts {
    /// Where the dashboard listens (see `pullgate serve`).
    #[arg(long, default_value = "127.0.0.1:9300", value_name = "ADDR")]
    pub dashboard_listen: SocketAddr,
    /// Do not serve the dashboard.
    #[arg(long)]
    pub no_dashboard: bool,
    /// The dashboard's token file (see `pullgate serve --token-file`).
    #[arg(long, value_name = "FILE", env = "PULLGATE_DASHBOARD_TOKEN_FILE")]
    pub dashboard_token_file: Option<PathBuf>,
}

/// The analytics store and its windows.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The SQLite file (default STATE_DIR/analytics.db).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// A ClickHouse store instead of SQLite, over its HTTP interface:
    /// clickhouse://HOST:PORT/DATABASE (clickhouses:// for HTTPS). The
    /// database and its tables are created when missing. Several ingesters
    /// may write one store (docs/scale.md). No account in the address: see
    /// --store-account-file.
    #[arg(long, value_name = "URL", env = "PULLGATE_STORE", conflicts_with = "db")]
    pub store: Option<String>,
    /// A file holding the ClickHouse account as USER:PASSWORD; else the
    /// environment's PULLGATE_STORE_USER and PULLGATE_STORE_PASSWORD; else
    /// ClickHouse's `default` user without a password.
    #[arg(long, value_name = "FILE", env = "PULLGATE_STORE_ACCOUNT_FILE")]
    pub store_account_file: Option<PathBuf>,
    /// PULLGATE_STORE_USER and PULLGATE_STORE_PASSWORD (read in env.rs).
    #[arg(skip)]
    pub account_env: Option<(String, String)>,
    /// This machine's name: a shared store keeps each node's local-sink
    /// cursor apart (every node's sink may have the same path).
    #[arg(skip)]
    pub node: Option<String>,
    /// An action (a pull, a version check) ends after this many seconds
    /// without a request of its own.
    #[arg(long, default_value_t = StoreArgs::default().window_s, value_name = "SECONDS")]
    pub window_s: u32,
    /// Keep each request (hashed origin, time, kind, tag) for this many
    /// UTC days, today included, so that late events (another node's,
    /// an import) are sessionised with the rest of their client's day;
    /// then only the actions and aggregates stay. 0 keeps none past the end
    /// of each ingest run.
    #[arg(long, default_value_t = StoreArgs::default().raw_days, value_name = "DAYS")]
    pub raw_days: u32,
}

impl StoreArgs {
    /// With what the environment says: the store account, the node's name.
    pub fn with_env(mut self, env: &crate::env::Env) -> StoreArgs {
        self.account_env = env.store_account.clone();
        self.node = env.hostname.clone();
        self
    }
}

/// The analytics crate's own defaults.
impl Default for StoreArgs {
    fn default() -> StoreArgs {
        let s = pullgate_analytics::Settings::default();
        StoreArgs {
            db: None,
            store: None,
            store_account_file: None,
            account_env: None,
            node: None,
            window_s: (s.window_ms / 1000) as u32,
            raw_days: s.raw_days,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// From this time (inclusive): `now`, a span back from now (`30d`,
    /// `12h`, `90m`, taken from the start of the hour it reaches into), a
    /// date (`2026-11-01`) or a UTC time (`2026-11-01T12:00`). The store
    /// counts by hour: the range covers the hours that begin in it.
    #[arg(long, default_value = "30d", value_name = "TIME")]
    pub since: String,
    /// Until this time (exclusive).
    #[arg(long, default_value = "now", value_name = "TIME")]
    pub until: String,
    #[arg(long, value_enum, default_value = "total")]
    pub granularity: GranularityArg,
    /// Group rows by these, comma-separated: route, repository, tag, digest,
    /// client, client_version, os, arch, country, asn, as_org, cloud, class
    /// (ci, laptop, server, unknown), poller (yes, no), weekday, hour.
    #[arg(long, value_delimiter = ',', value_name = "DIM[,DIM]")]
    pub by: Vec<String>,
    #[arg(long)]
    pub route: Option<String>,
    #[arg(long)]
    pub repository: Option<String>,
    /// A client family: docker, containerd, podman, skopeo, cri-o, pip, ...
    #[arg(long)]
    pub client: Option<String>,
    /// Only actions on this weekday (mon .. sun, UTC): "every Tuesday".
    #[arg(long)]
    pub weekday: Option<String>,
    /// Only the N rows most used: the most pulls (for files, downloads).
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: FormatArg,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GranularityArg {
    Hour,
    Day,
    Week,
    Month,
    Total,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Table,
    Json,
    Csv,
    /// The columns of Docker Hub's usage export (datehour, repository, tag,
    /// digest, version_checks, pulls), hourly: compare the gateway's numbers with Docker Hub's.
    DockerhubCsv,
}

/// Where and how the access log is shipped.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Shipping the access log")]
pub struct ShipOpts {
    /// Where events go: `cloudwatch` (CloudWatch Logs), `local` (JSON-lines
    /// files), `null` (discard: measures the shipper), or `auto`: cloudwatch
    /// when a log group is set, else local.
    #[arg(long, default_value = "auto", env = "PULLGATE_SINK", value_name = "auto|cloudwatch|local|null")]
    pub sink: SinkKind,
    /// The local sink's directory (default STATE_DIR/events).
    #[arg(long, value_name = "DIR")]
    pub sink_dir: Option<PathBuf>,
    /// A local sink file is closed past this size and a new one begun.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub sink_file_bytes: u64,
    /// CloudWatch Logs group; created if missing. Credentials come from the
    /// standard chain (environment, profile, web identity, instance role).
    #[arg(long, env = "PULLGATE_CLOUDWATCH_GROUP", value_name = "NAME")]
    pub cloudwatch_group: Option<String>,
    /// The stream this node writes to (default: the host name).
    #[arg(long, env = "PULLGATE_CLOUDWATCH_STREAM", value_name = "NAME")]
    pub cloudwatch_stream: Option<String>,
    /// Region (default: the standard chain, e.g. AWS_REGION).
    #[arg(long, value_name = "REGION")]
    pub aws_region: Option<String>,
    /// Another CloudWatch Logs endpoint than the region's (a VPC endpoint, a test server).
    #[arg(long, env = "PULLGATE_CLOUDWATCH_ENDPOINT", value_name = "URL")]
    pub cloudwatch_endpoint: Option<String>,
    /// Retention set on the log group when pullgate creates it (1, 3, 5, 7, 14, 30, 60, 90, ... days).
    #[arg(long, value_name = "DAYS", value_parser = retention_days)]
    pub cloudwatch_retention_days: Option<i32>,
    /// Longest wait between two attempts while the sink is down or throttling.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    pub retry_max_ms: u64,
    /// One request to CloudWatch Logs fails after this long.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    pub sink_timeout_ms: u64,
    /// At most this much is read per batch; two batches are queued for the
    /// sink at most, which bounds memory while it is slow or down.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub batch_bytes: usize,
    /// At the end of the log, look for new lines this often. Longer: fewer,
    /// larger batches (less CPU, fewer requests), and events later.
    #[arg(long, default_value_t = 250, value_name = "MS")]
    pub poll_ms: u64,
    /// CPU priority of shipping (and, in `up` and `run`, of the analytics
    /// ingest). `normal` shares the CPU with nginx as any process does.
    /// `idle` runs only on CPU time nothing else wants (Linux SCHED_IDLE):
    /// nginx is never slowed by it, but while every core stays busy shipping
    /// waits, lagging (see `status`: lag_bytes) until the load passes.
    #[arg(long, default_value = "normal", env = "PULLGATE_SHIP_PRIORITY", value_name = "normal|idle")]
    pub ship_priority: Priority,
    #[command(flatten)]
    pub enrich: EnrichOpts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Priority {
    Idle,
    Normal,
}

/// How lines become events: their bound, and the data that enriches them.
#[derive(Debug, Clone, clap::Args)]
pub struct EnrichOpts {
    /// Longer lines are dead-lettered.
    #[arg(long, default_value_t = 65536, value_name = "BYTES")]
    pub max_line: usize,
    /// Directory of tor-geoipdb's `geoip` and `geoip6`, for each event's
    /// country; `none` for no country.
    #[arg(long, default_value = pullgate_ship::TOR_GEOIP_DIR, value_name = "DIR|none")]
    pub geoip_dir: String,
    /// A MaxMind DB (GeoLite2/GeoIP2 Country, City or ASN, DB-IP lite):
    /// country, `asn` and `as_org` of each event. Repeat for several; the
    /// first that knows a field wins, before tor-geoipdb for the country.
    #[arg(long, value_name = "FILE")]
    pub mmdb: Vec<PathBuf>,
    /// A cloud provider's published ranges (AWS ip-ranges.json, Google
    /// Cloud cloud.json, Azure Service Tags, Oracle Cloud): each event's
    /// `cloud`. Repeat for several.
    #[arg(long, value_name = "FILE")]
    pub cloud_ranges: Vec<PathBuf>,
}

impl EnrichOpts {
    /// The shipper's preparation settings, with its salts under `state`.
    pub fn prepare(&self, state: PathBuf) -> pullgate_ship::PrepareSettings {
        pullgate_ship::PrepareSettings {
            state,
            geoip_dir: (self.geoip_dir != "none").then(|| self.geoip_dir.clone().into()),
            mmdb: self.mmdb.clone(),
            cloud_ranges: self.cloud_ranges.clone(),
            max_line: self.max_line,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkKind {
    Auto,
    Cloudwatch,
    Local,
    Null,
}

/// The retention periods CloudWatch Logs accepts.
const RETENTION_DAYS: [i32; 22] = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

fn retention_days(s: &str) -> Result<i32, String> {
    let days: i32 = s.parse().map_err(|e| format!("{e}"))?;
    RETENTION_DAYS.contains(&days).then_some(days).ok_or_else(|| format!("CloudWatch Logs accepts only {RETENTION_DAYS:?}"))
}

impl ShipOpts {
    /// What to ship `log` with, state under `state_dir`.
    pub fn ship_args(&self, log: PathBuf, state_dir: &std::path::Path) -> Result<ShipArgs, crate::error::CliError> {
        let kind = match (self.sink, &self.cloudwatch_group) {
            (SinkKind::Auto, Some(_)) | (SinkKind::Cloudwatch, _) => SinkKind::Cloudwatch,
            (SinkKind::Auto, None) => SinkKind::Local,
            (k, _) => k,
        };
        let sink = match kind {
            SinkKind::Null => sink::Settings::Null,
            SinkKind::Local | SinkKind::Auto => sink::Settings::Local {
                dir: self.sink_dir.clone().unwrap_or_else(|| state_dir.join("events")),
                file_bytes: self.sink_file_bytes,
            },
            SinkKind::Cloudwatch => sink::Settings::CloudWatch(cloudwatch::Settings {
                group: self
                    .cloudwatch_group
                    .clone()
                    .ok_or_else(|| crate::error::CliError::Usage("--sink cloudwatch needs --cloudwatch-group".into()))?,
                stream: self.cloudwatch_stream.clone(),
                region: self.aws_region.clone(),
                endpoint: self.cloudwatch_endpoint.clone(),
                retention_days: self.cloudwatch_retention_days,
                retry_max: Duration::from_millis(self.retry_max_ms),
                timeout: Duration::from_millis(self.sink_timeout_ms),
            }),
        };
        Ok(ShipArgs {
            log,
            state: state_dir.join("ship"),
            sink,
            max_line: self.enrich.max_line,
            batch_bytes: self.batch_bytes,
            poll: Duration::from_millis(self.poll_ms),
            geoip_dir: (self.enrich.geoip_dir != "none").then(|| self.enrich.geoip_dir.clone().into()),
            mmdb: self.enrich.mmdb.clone(),
            cloud_ranges: self.enrich.cloud_ranges.clone(),
            idle: self.ship_priority == Priority::Idle,
        })
    }
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
    /// A burst of file events ends after this many milliseconds without one
    /// (at once when a writer closes routes.yaml or a rename puts it in place).
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
    /// How often the index routes' (pypi, npm, helm) upstream documents are
    /// asked for again (conditionally: an unchanged one costs a 304).
    #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub index_refresh_s: u64,
}

impl DaemonArgs {
    pub fn debounce(&self) -> Debounce {
        Debounce { quiet: Duration::from_millis(self.debounce_ms), max: Duration::from_millis(self.debounce_max_ms) }
    }

    pub fn index_refresh(&self) -> Duration {
        Duration::from_secs(self.index_refresh_s)
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
