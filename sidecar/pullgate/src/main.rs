//! `pullgate`: the binary. Parses flags (clap) and the environment (`env`),
//! turns them into each stage's settings, and runs the stages.

mod analytics;
mod cli;
mod dashboard;
mod env;
mod error;
mod report;
mod serve;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cli::{Cli, Command};
use env::Env;
use error::CliError;
use pullgate_config::Target;
use pullgate_daemon::{resolver, ReloadMethod, Source};

/// mimalloc: the daemon re-reads, validates and renders every route at each
/// edit, and the shipper and ingester build many small strings per line;
/// with glibc's malloc an edit of 100,000 routes took half again as long,
/// and the daemon's peak memory was higher (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    Env::clear_empty();
    let env = Env::read();
    let filter = tracing_subscriber::EnvFilter::try_new(env.log.as_deref().unwrap_or("info")).unwrap_or_else(|_| "info".into());
    // Colour only on a terminal: logs written to a file stay plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    let state_dir = env.state_dir(cli.state_dir);
    let source = |path: &Path| Source { path: path.to_path_buf(), resolv_conf: env.resolv_conf.clone(), vars: env.vars.clone() };
    let result = match cli.command {
        Command::Validate(c) => validate(&source(&c.path)),
        Command::Render { config, out, check } => pullgate_daemon::render_into(
            &env.nginx,
            &source(&config.path),
            &out,
            &state_dir.join("scratch"),
            check,
            Some(state_dir.join("index")),
        )
        .map_err(CliError::from)
        .map(|names| println!("wrote {} to {}{}", names.join(", "), out.display(), if check { " (nginx -t passed)" } else { "" })),
        Command::Up { config, daemon, no_ship, rotate, no_analytics, store, dashboard, ship } => serve::Serve {
            env: &env,
            config: &config.path,
            state_dir: &state_dir,
            daemon: &daemon,
            ship: (!no_ship).then_some(&ship),
            rotate_log_bytes: rotate.rotate_log_bytes,
            analytics: !no_analytics,
            store: store.with_env(&env),
            dashboard: (!dashboard.no_dashboard).then_some(&dashboard),
            nginx: serve::Nginx::Own,
        }
        .run(),
        Command::Run {
            config,
            daemon,
            out,
            pid_file,
            reload_command,
            control_socket,
            access_log,
            no_ship,
            rotate,
            no_analytics,
            store,
            dashboard,
            ship,
        } => {
            let reload = match (pid_file, reload_command) {
                (Some(p), _) => ReloadMethod::PidFile(p),
                (None, Some(c)) => ReloadMethod::Command(c.split_whitespace().map(str::to_string).collect()),
                (None, None) => unreachable!("clap requires one"),
            };
            let socket = control_socket.unwrap_or_else(|| state_dir.join("control.sock"));
            serve::Serve {
                env: &env,
                config: &config.path,
                state_dir: &state_dir,
                daemon: &daemon,
                ship: (!no_ship).then_some(&ship),
                rotate_log_bytes: rotate.rotate_log_bytes,
                analytics: !no_analytics,
                store: store.with_env(&env),
                dashboard: (!dashboard.no_dashboard).then_some(&dashboard),
                nginx: serve::Nginx::External { out, reload, socket, access_log },
            }
            .run()
        }
        Command::Status { status, json } => status_cmd(status, json),
        Command::Serve { listen, token_file, create_token, config, store } => {
            let store = store.with_env(&env);
            let made = match (&token_file, create_token) {
                (Some(file), true) => dashboard::create_token(file),
                _ => Ok(()),
            };
            made.and_then(|()| {
                dashboard::serve_cmd(listen, &store, &state_dir, config.path, env.resolv_conf.clone(), token_file.as_deref())
            })
        }
        Command::Analytics(cli::AnalyticsCommand::Ingest {
            sink_dir,
            cloudwatch_group,
            cloudwatch_stream_prefix,
            aws_region,
            cloudwatch_endpoint,
            since,
            overlap_s,
            follow,
            poll_ms,
            store,
        }) => {
            let store = store.with_env(&env);
            let poll = std::time::Duration::from_millis(poll_ms);
            match cloudwatch_group {
                Some(group) => {
                    let now = pullgate_base::clock::now_ms() as i64;
                    pullgate_analytics::time::parse(&since, now).map_err(error::CliError::Usage).and_then(|start_ms| {
                        let cw = pullgate_analytics::cloudwatch::CloudWatchSettings {
                            group,
                            stream_prefix: cloudwatch_stream_prefix,
                            start_ms,
                            overlap_ms: i64::from(overlap_s) * 1000,
                            window_ms: 3_600_000,
                        };
                        analytics::ingest_cloudwatch_cmd(
                            &cw,
                            aws_region.as_deref(),
                            cloudwatch_endpoint.as_deref(),
                            follow,
                            poll,
                            &store,
                            &state_dir,
                        )
                    })
                }
                None => {
                    let sink = sink_dir.unwrap_or_else(|| state_dir.join("events"));
                    analytics::ingest_cmd(&sink, follow, poll, &store, &state_dir)
                }
            }
        }
        Command::Analytics(cli::AnalyticsCommand::Import { files, enrich, store }) => {
            let store = store.with_env(&env);
            analytics::import_cmd(&files, &enrich, &store, &state_dir)
        }
        Command::Report(mut args) => {
            args.store = args.store.clone().with_env(&env);
            analytics::report_cmd(&args, &state_dir)
        }
        Command::Ship { log, ship } => ship.ship_args(log, &state_dir).and_then(|args| Ok(pullgate_ship::run(args)?)),
        Command::Schema => {
            print!("{}", pullgate_config::json_schema());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match &e {
                CliError::Invalid(c) => {
                    eprintln!("{c}");
                    if let n @ 2.. = c.problems().len() {
                        eprintln!("{n} problems");
                    }
                }
                other => eprintln!("error: {other}"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// `pullgate validate`: a one-line summary that says which DNS servers nginx
/// will use; a warning (on stderr) for each that does not answer.
fn validate(source: &Source) -> Result<(), CliError> {
    let c = source.load()?;
    let (oci, files, indexes) = c.routes.iter().fold((0, 0, 0), |(o, f, i), r| match r.target {
        Target::Oci(_) => (o + 1, f, i),
        Target::File(_) => (o, f + 1, i),
        Target::Index(_) => (o, f, i + 1),
    });
    let indexes = if indexes > 0 { format!(", {indexes} index") } else { String::new() };
    let resolver = match (c.gateway.resolver.as_slice(), c.gateway.resolver_from_system) {
        ([], _) => format!("no resolver (none in routes.yaml or {})", source.resolv_conf.display()),
        (list, true) => format!("resolver {} (from {})", list.join(" "), source.resolv_conf.display()),
        (list, false) => format!("resolver {}", list.join(" ")),
    };
    println!(
        "{}: ok: {} routes ({oci} oci, {files} file{indexes}) on {} hosts plus the catch-all; {resolver}",
        source.path.display(),
        c.routes.len(),
        c.gateway.hosts.len()
    );
    let rt = crate::error::runtime()?;
    for r in rt.block_on(resolver::silent(&c.gateway.resolver, Duration::from_secs(1))) {
        eprintln!("warning: resolver {r} does not answer DNS queries: nginx would answer proxied requests to upstream host names with 502");
    }
    Ok(())
}

fn status_cmd(addr: std::net::SocketAddr, json: bool) -> Result<(), CliError> {
    let rt = crate::error::runtime()?;
    let body = rt.block_on(pullgate_daemon::http::get(addr, "/status")).map_err(|source| CliError::NoDaemon { addr, source })?;
    if json {
        println!("{body}");
        return Ok(());
    }
    let report: report::Report = serde_json::from_str(&body).map_err(|e| CliError::Usage(format!("not a pullgate status: {e}")))?;
    print!("{}", report.human());
    Ok(())
}
