//! routes.yaml: parse (raw serde types), validate (typed values), with every
//! problem reported as `file:line:col`.
//!
//! Pure: text in, typed config or problems out. Reading the file, and the
//! machine's own settings a default comes from (`/etc/resolv.conf`), is the
//! caller's (see `pullgate-daemon`'s `source`).

mod grammar;
mod model;
mod problem;
mod raw;
mod reparse;
mod resolv;
mod spans;
mod validate;

pub use model::*;

/// The package-name rules of the index routes, for what reads upstream documents.
pub mod names {
    pub use super::grammar::{helm_chart, npm_package, pypi_project};
}
pub use problem::{ConfigError, Problem};
pub use reparse::Reparser;
pub use resolv::nameservers;
pub use spans::Pos;
use spans::Spans;

/// Validate routes.yaml text with no system defaults; `file` names it in error messages.
pub fn parse(src: &str, file: &str) -> Result<Config, ConfigError> {
    parse_with(src, file, &Defaults::default())
}

/// Validate routes.yaml text, with `defaults` where it is silent.
pub fn parse_with(src: &str, file: &str, defaults: &Defaults) -> Result<Config, ConfigError> {
    parse_from(src, file, defaults, None)
}

/// [`parse_with`] for a file read before by the same `reparser`: only route
/// items whose text changed since go through the YAML parser again.
pub fn reparse_with(src: &str, file: &str, defaults: &Defaults, reparser: &mut Reparser) -> Result<Config, ConfigError> {
    parse_from(src, file, defaults, Some(reparser))
}

fn parse_from(src: &str, file: &str, defaults: &Defaults, reparser: Option<&mut Reparser>) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid { file: file.to_string(), problems };
    let raw: raw::RawFile = match reparser.and_then(|r| r.raw(src)) {
        Some(raw) => raw,
        None if src.trim().is_empty() => raw::RawFile::default(),
        None => serde_yaml::from_str(src).map_err(|e| invalid(vec![yaml_problem(&e)]))?,
    };
    // Positions are needed only to report problems: validate without them
    // first (a second parse of a large file costs as much as the first), and
    // on failure again with them; validation is deterministic.
    match validate::validate(raw, &Spans::default(), defaults) {
        Ok(config) => Ok(config),
        Err(_) => {
            let raw: raw::RawFile = serde_yaml::from_str(src).map_err(|e| invalid(vec![yaml_problem(&e)]))?;
            let problems = validate::validate(raw, &Spans::index(src), defaults).expect_err("validation is deterministic");
            Err(invalid(problems))
        }
    }
}

fn yaml_problem(e: &serde_yaml::Error) -> Problem {
    let pos = e.location().map(|l| Pos { line: l.line(), col: l.column() });
    // serde_yaml prefixes its message with the field path ("routes[0].mode: ..."); keep it.
    let mut message = e.to_string();
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    Problem { pos, subject: String::new(), field: String::new(), message }
}

/// The JSON Schema of routes.yaml version 1, for editors.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(raw::RawFile);
    serde_json::to_string_pretty(&schema).expect("schema serialises") + "\n"
}
