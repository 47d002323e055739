//! Where the config comes from: routes.yaml, read with the defaults this
//! machine supplies where it is silent (nameservers from resolv.conf).

use std::path::PathBuf;

use pullgate_config::{Config, ConfigError, Defaults};

#[derive(Debug, Clone)]
pub struct Source {
    /// routes.yaml.
    pub path: PathBuf,
    /// The resolv.conf whose nameservers are the default `resolver`.
    pub resolv_conf: PathBuf,
}

impl Source {
    /// Read and validate routes.yaml as it is now.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(&self.path).map_err(|source| ConfigError::Read { path: self.path.clone(), source })?;
        pullgate_config::parse_with(&src, &self.path.display().to_string(), &self.defaults())
    }

    /// What the machine supplies; an unreadable resolv.conf supplies nothing.
    pub fn defaults(&self) -> Defaults {
        let resolver = std::fs::read_to_string(&self.resolv_conf).map(|t| pullgate_config::nameservers(&t)).unwrap_or_default();
        Defaults { resolver }
    }
}
