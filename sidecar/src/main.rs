use std::process::ExitCode;

use clap::Parser;
use pullgate::cli::{Cli, Command};
use pullgate::config::{self, ConfigError, Target};
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
        Command::Up(c) => pullgate::up::run(&c.path, &state_dir),
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
    let rendered = render::render(&c).map_err(|e| Failure::Other(e.into()))?;
    if check {
        nginx::check(&rendered, &state_dir.join("scratch")).map_err(|e| Failure::Other(e.into()))?;
    }
    nginx::write_set(&rendered, out).map_err(|e| Failure::Other(e.into()))?;
    let names: Vec<&str> = rendered.files.iter().map(|(n, _)| n.as_str()).collect();
    println!("wrote {} to {}{}", names.join(", "), out.display(), if check { " (nginx -t passed)" } else { "" });
    Ok(())
}
