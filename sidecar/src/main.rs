use std::process::ExitCode;

use clap::Parser;
use pullgate::cli::{Cli, Command};
use pullgate::config::{self, ConfigError, Target};
use pullgate::daemon::ReloadMethod;
use pullgate::{nginx, render, state};

/// Exit code for an invalid routes.yaml.
const EXIT_INVALID: u8 = 2;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PULLGATE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let state_dir = state::resolve(cli.state_dir);
    let result = match cli.command {
        Command::Validate(c) => validate(&c.path),
        Command::Render { config, out, check } => render_cmd(&config.path, &out, check, &state_dir),
        Command::Up { config, daemon, no_ship, ship } => pullgate::up::run(&config.path, &state_dir, &daemon, (!no_ship).then_some(&ship)),
        Command::Run { config, daemon, out, pid_file, reload_command, control_socket, access_log, no_ship, ship } => {
            let reload = match (pid_file, reload_command) {
                (Some(p), _) => ReloadMethod::PidFile(p),
                (None, Some(c)) => ReloadMethod::Command(c.split_whitespace().map(str::to_string).collect()),
                (None, None) => unreachable!("clap requires one"),
            };
            let socket = control_socket.unwrap_or_else(|| state_dir.join("control.sock"));
            let ship = (!no_ship).then_some((access_log, &ship));
            pullgate::sidecar::run(&config.path, &state_dir, &daemon, out, reload, socket, ship)
        }
        Command::Status { status, json } => status_cmd(status, json),
        Command::Ship { log, ship } => {
            ship.ship_args(log, &state_dir).and_then(pullgate::ship::run).map_err(|e| Failure::other(format!("shipping: {e}")))
        }
        Command::Schema => {
            print!("{}", config::json_schema());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(e)) => {
            eprintln!("{e}");
            if let n @ 2.. = e.problems().len() {
                eprintln!("{n} problems");
            }
            ExitCode::from(EXIT_INVALID)
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

use pullgate::Failure;

fn validate(path: &std::path::Path) -> Result<(), Failure> {
    let c = config::load(path).map_err(invalid)?;
    let (oci, files) = c.routes.iter().fold((0, 0), |(o, f), r| match r.target {
        Target::Oci(_) => (o + 1, f),
        Target::File(_) => (o, f + 1),
    });
    println!(
        "{}: ok: {} routes ({oci} oci, {files} file) on {} hosts plus the catch-all",
        path.display(),
        c.routes.len(),
        c.gateway.hosts.len()
    );
    Ok(())
}

fn invalid(e: ConfigError) -> Failure {
    match e {
        e @ ConfigError::Invalid { .. } => Failure::Invalid(e),
        e => Failure::Other(e.into()),
    }
}

fn render_cmd(path: &std::path::Path, out: &std::path::Path, check: bool, state_dir: &std::path::Path) -> Result<(), Failure> {
    let c = config::load(path).map_err(invalid)?;
    std::fs::create_dir_all(out).map_err(Failure::other)?;
    // Lua mode refers to the Lua files and the route table by absolute path.
    let dir = out.canonicalize().map_err(Failure::other)?.display().to_string();
    let rendered = render::render_with(&c, render::Options { control_socket: None, dir: Some(&dir) }).map_err(Failure::other)?;
    if check {
        nginx::check(&rendered, &state_dir.join("scratch")).map_err(Failure::other)?;
    }
    nginx::write_set(&rendered, out).map_err(Failure::other)?;
    let mut names: Vec<&str> = rendered.files.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(table) = &rendered.table {
        nginx::write_atomic(&out.join(render::TABLE_FILE), &table.text_now()).map_err(Failure::other)?;
        names.push(render::TABLE_FILE);
    }
    println!("wrote {} to {}{}", names.join(", "), out.display(), if check { " (nginx -t passed)" } else { "" });
    Ok(())
}

fn status_cmd(addr: std::net::SocketAddr, json: bool) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Failure::other)?;
    let body = rt
        .block_on(pullgate::daemon::http::get(addr, "/status"))
        .map_err(|e| Failure::other(format!("no pullgate daemon answers on {addr}: {e}")))?;
    if json {
        println!("{body}");
        return Ok(());
    }
    let status: pullgate::daemon::status::Status = serde_json::from_str(&body).map_err(Failure::other)?;
    print!("{}", status.human());
    Ok(())
}
