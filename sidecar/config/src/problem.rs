//! Problems found in routes.yaml, reported all at once with their positions.

use std::fmt;
use std::path::PathBuf;

use super::spans::Pos;

/// One thing wrong with routes.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pos: Option<Pos>,
    /// `route "app"`, `route #3` or `gateway`.
    pub subject: String,
    /// The field, e.g. `upstream` or `hosts[0].tls.cert`.
    pub field: String,
    pub message: String,
}

/// Everything wrong with one file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}", render_problems(.file, .problems))]
    Invalid { file: String, problems: Vec<Problem> },
}

impl ConfigError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn render_problems(file: &str, problems: &[Problem]) -> String {
    problems.iter().map(|p| p.display(file).to_string()).collect::<Vec<_>>().join("\n")
}

impl Problem {
    pub fn display<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        struct D<'a>(&'a Problem, &'a str);
        impl fmt::Display for D<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let p = self.0;
                match p.pos {
                    Some(pos) => write!(f, "{}:{}:{}: ", self.1, pos.line, pos.col)?,
                    None => write!(f, "{}: ", self.1)?,
                }
                if !p.subject.is_empty() {
                    write!(f, "{}: ", p.subject)?;
                }
                if !p.field.is_empty() {
                    write!(f, "{}: ", p.field)?;
                }
                f.write_str(&p.message)
            }
        }
        D(self, file)
    }
}
