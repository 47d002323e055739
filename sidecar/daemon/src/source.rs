//! Where the config comes from: routes.yaml, read with the defaults this
//! machine supplies where it is silent (nameservers from resolv.conf).

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use pullgate_config::{Config, ConfigError, Credentials, Defaults, Reparser, Target};

#[derive(Debug, Clone)]
pub struct Source {
    /// routes.yaml.
    pub path: PathBuf,
    /// The resolv.conf whose nameservers are the default `resolver`.
    pub resolv_conf: PathBuf,
    /// The process's environment, where `credentials: {env: NAME}` are found.
    pub vars: std::sync::Arc<BTreeMap<String, String>>,
}

impl Source {
    /// Read and validate routes.yaml as it is now.
    pub fn load(&self) -> Result<Config, ConfigError> {
        pullgate_config::parse_with(&self.text()?, &self.path.display().to_string(), &self.defaults())
    }

    /// [`Source::load`] for a daemon that reads the file at every change:
    /// only routes whose text changed since `reparser`'s last read are parsed.
    pub fn reload(&self, reparser: &mut Reparser) -> Result<Config, ConfigError> {
        let config = pullgate_config::reparse_with(&self.text()?, &self.path.display().to_string(), &self.defaults(), reparser);
        tracing::debug!(routes_parsed = ?reparser.last_parsed, "routes.yaml read (None: the whole file)");
        config
    }

    fn text(&self) -> Result<String, ConfigError> {
        std::fs::read_to_string(&self.path).map_err(|source| ConfigError::Read { path: self.path.clone(), source })
    }

    /// What the machine supplies; an unreadable resolv.conf supplies nothing.
    pub fn defaults(&self) -> Defaults {
        let resolver = std::fs::read_to_string(&self.resolv_conf).map(|t| pullgate_config::nameservers(&t)).unwrap_or_default();
        Defaults { resolver }
    }
}

/// Why a route's upstream credentials could not be read. Never holds the secret.
#[derive(Debug, thiserror::Error)]
#[error("route \"{route}\": credentials: {what}")]
pub struct CredentialsError {
    pub route: String,
    pub what: String,
}

/// Each route's upstream credentials, read now from the file or variable
/// routes.yaml names, as the base64 of `USER:TOKEN` (what a Basic header
/// carries). Read at every apply, so a rotated secret goes live as an edit.
pub fn credentials(config: &Config, vars: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, CredentialsError> {
    let mut out = BTreeMap::new();
    for r in &config.routes {
        let Target::Oci(o) = &r.target else { continue };
        let Some(c) = &o.credentials else { continue };
        let fail = |what: String| CredentialsError { route: r.name.clone(), what };
        let text = match c {
            Credentials::File(path) => std::fs::read_to_string(path).map_err(|e| fail(format!("{path}: {e}")))?,
            Credentials::Env(name) => vars.get(name).cloned().ok_or_else(|| fail(format!("the environment variable {name} is not set")))?,
        };
        let secret = text.strip_suffix('\n').unwrap_or(&text);
        let secret = secret.strip_suffix('\r').unwrap_or(secret);
        let well_formed = secret.split_once(':').is_some_and(|(user, token)| !user.is_empty() && !token.is_empty())
            && secret.bytes().all(|b| b.is_ascii_graphic())
            && secret.len() <= 4096;
        if !well_formed {
            let from = match c {
                Credentials::File(path) => path.clone(),
                Credentials::Env(name) => format!("${name}"),
            };
            return Err(fail(format!("{from} must hold one line `USER:TOKEN` (printable, no spaces)")));
        }
        out.insert(r.name.clone(), base64::engine::general_purpose::STANDARD.encode(secret));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_checked_and_never_said() {
        let dir = pullgate_base::fs::scratch_dir("credentials");
        let file = dir.join("hub.txt");
        let yaml = |c: &str| {
            format!("version: 1\ngateway: {{resolver: [127.0.0.53]}}\nroutes:\n  - {{name: hub, image: app, upstream: docker.io/acme/app, credentials: {c}}}\n")
        };
        let vars = BTreeMap::from([("HUB_BOT".to_string(), "acme-bot:dckr_pat_123".to_string())]);
        std::fs::write(&file, "acme-bot:dckr_pat_123\n").unwrap();
        let config = pullgate_config::parse(&yaml(&format!("{{file: {}}}", file.display())), "t").unwrap();
        assert_eq!(credentials(&config, &vars).unwrap()["hub"], "YWNtZS1ib3Q6ZGNrcl9wYXRfMTIz");
        std::fs::write(&file, "no colon here secret123").unwrap();
        let err = credentials(&config, &vars).unwrap_err().to_string();
        assert!(err.contains("USER:TOKEN") && !err.contains("secret123"), "{err}");
        let config = pullgate_config::parse(&yaml("{env: HUB_BOT}"), "t").unwrap();
        assert_eq!(credentials(&config, &vars).unwrap()["hub"], "YWNtZS1ib3Q6ZGNrcl9wYXRfMTIz");
        let config = pullgate_config::parse(&yaml("{env: UNSET_VARIABLE}"), "t").unwrap();
        assert!(credentials(&config, &vars).unwrap_err().to_string().contains("UNSET_VARIABLE is not set"));
    }
}
