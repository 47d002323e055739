//! User agents to clients: family, version, OS, architecture, and the hints
//! classification uses (a CI marker, Docker Desktop, WSL2, a cloud kernel).
//! Table-driven: each family is a row of [`RULES`]; an unknown agent is
//! family `other` with its first product token as the version's owner.

/// What an agent says about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// Lowercase family name: `docker`, `containerd`, `podman`, `skopeo`, `pip`, ... or `other`.
    pub family: String,
    pub version: String,
    pub os: String,
    pub arch: String,
    /// The CI system the agent names (`github-actions`, `gitlab`, `ci`), if any.
    pub ci: Option<String>,
    /// `desktop` (Docker Desktop), `wsl`, or a cloud (`aws`, `azure`, `gcp`) from the kernel.
    pub platform: Option<String>,
}

/// A row: a product token's name (case-insensitive) and the family it makes.
struct Rule {
    token: &'static str,
    family: &'static str,
}

/// In the order they are tried against the first product token; the
/// wrapped client of an `UpstreamClient(...)` is read by the docker row.
const RULES: &[Rule] = &[
    Rule { token: "docker", family: "docker" },
    Rule { token: "containerd", family: "containerd" },
    Rule { token: "cri-o", family: "cri-o" },
    // containers/image's own agent: podman (buildah sets its own).
    Rule { token: "containers", family: "podman" },
    Rule { token: "podman", family: "podman" },
    Rule { token: "libpod", family: "podman" },
    Rule { token: "skopeo", family: "skopeo" },
    Rule { token: "buildah", family: "buildah" },
    Rule { token: "buildkit", family: "buildkit" },
    Rule { token: "kaniko", family: "kaniko" },
    Rule { token: "crane", family: "crane" },
    Rule { token: "go-containerregistry", family: "crane" },
    Rule { token: "helm", family: "helm" },
    Rule { token: "oras", family: "oras" },
    Rule { token: "oras-go", family: "oras" },
    Rule { token: "watchtower", family: "watchtower" },
    Rule { token: "diun", family: "diun" },
    Rule { token: "renovate", family: "renovate" },
    Rule { token: "renovatebot", family: "renovate" },
    Rule { token: "dependabot-core", family: "dependabot" },
    Rule { token: "pip", family: "pip" },
    Rule { token: "uv", family: "uv" },
    Rule { token: "poetry", family: "poetry" },
    Rule { token: "npm", family: "npm" },
    Rule { token: "pnpm", family: "pnpm" },
    Rule { token: "yarn", family: "yarn" },
    Rule { token: "cargo", family: "cargo" },
    Rule { token: "curl", family: "curl" },
    Rule { token: "wget", family: "wget" },
    Rule { token: "go-http-client", family: "go-http-client" },
    Rule { token: "python-requests", family: "python-requests" },
];

/// Product tokens (`name/version`) in order, outside parentheses and JSON.
fn tokens(ua: &str) -> Vec<(&str, &str)> {
    let plain = ua.split('{').next().unwrap_or("");
    let mut out = Vec::new();
    let mut depth = 0;
    for word in plain.split_whitespace() {
        let starts_comment = word.starts_with('(') || word.starts_with("\\(");
        if depth == 0 && !starts_comment {
            if let Some((name, version)) = word.split_once('/') {
                out.push((name, version));
            } else {
                out.push((word, ""));
            }
        }
        depth += word.matches('(').count() as i32 - word.matches(')').count() as i32;
        depth = depth.max(0);
    }
    out
}

pub fn parse(ua: &str) -> Client {
    let toks = tokens(ua);
    let Some(&(first, first_version)) = toks.first() else { return Client { family: "other".into(), ..Client::default() } };
    let lower = first.to_ascii_lowercase();
    let Some(rule) = RULES.iter().find(|r| r.token == lower) else {
        return Client { family: "other".into(), version: first.to_string(), ..Client::default() };
    };
    let get = |name: &str| toks.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_string()).unwrap_or_default();
    let mut c = Client { family: rule.family.into(), version: first_version.trim_start_matches('v').to_string(), ..Client::default() };
    match rule.family {
        "docker" => {
            c.os = get("os");
            c.arch = get("arch");
            let kernel = get("kernel");
            c.platform = if kernel.contains("linuxkit") {
                Some("desktop".into())
            } else if kernel.contains("microsoft-standard") {
                Some("wsl".into())
            } else {
                ["aws", "azure", "gcp"].iter().find(|cloud| kernel.contains(&format!("-{cloud}"))).map(|c| c.to_string())
            };
            // The version the engine reports may carry a distribution suffix (`+dfsg1`).
            c.version = c.version.split('+').next().unwrap_or("").to_string();
        }
        "containerd" => {
            c.version = c.version.split('~').next().unwrap_or("").to_string();
            if c.version.contains("-k3s") || c.version.contains("rke2") {
                c.family = "containerd".into();
                c.platform = Some("k3s".into());
            }
        }
        "cri-o" => {
            c.os = get("os");
            c.arch = get("arch");
        }
        "pip" | "uv" => {
            if let Some(json) = ua.find('{').and_then(|i| serde_json::from_str::<serde_json::Value>(&ua[i..]).ok()) {
                c.os = json["system"]["name"].as_str().unwrap_or("").to_ascii_lowercase();
                c.arch = json["cpu"].as_str().unwrap_or("").to_string();
                if json["ci"] == true {
                    c.ci = Some("ci".into());
                }
            }
        }
        "npm" | "pnpm" | "yarn" => {
            c.ci = toks.iter().find(|(n, _)| *n == "ci").map(|(_, v)| v.to_string());
            // `npm/10.8.2 node/v22.9.0 linux x64 ...`
            let words: Vec<&str> = ua.split_whitespace().collect();
            if let Some(i) = words.iter().position(|w| w.starts_with("node/")) {
                c.os = words.get(i + 1).unwrap_or(&"").to_string();
                c.arch = words.get(i + 2).unwrap_or(&"").to_string();
            }
        }
        _ => {}
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ua: &str, family: &str, version: &str, os: &str, arch: &str, platform: Option<&str>, ci: Option<&str>) {
        let c = parse(ua);
        assert_eq!(
            (c.family.as_str(), c.version.as_str(), c.os.as_str(), c.arch.as_str(), c.platform.as_deref(), c.ci.as_deref()),
            (family, version, os, arch, platform, ci),
            "{ua}"
        );
    }

    #[test]
    fn container_clients_seen_through_the_gateway() {
        // Strings as the test clients send them (Debian 12's packages).
        check("docker/20.10.24+dfsg1 go/go1.19.8 git-commit/5d6db84 kernel/6.1.0-26-cloud-amd64 os/linux arch/amd64 UpstreamClient(Docker-Client/28.2.2 \\(linux\\))", "docker", "20.10.24", "linux", "amd64", None, None);
        check("containerd/1.6.20~ds1", "containerd", "1.6.20", "", "", None, None);
        check("skopeo/1.9.3", "skopeo", "1.9.3", "", "", None, None);
        check("containers/5.23.1 (github.com/containers/image)", "podman", "5.23.1", "", "", None, None);
        check("curl/7.88.1", "curl", "7.88.1", "", "", None, None);
    }

    #[test]
    fn engines_on_desktops_wsl_and_clouds() {
        check("docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.10.14-linuxkit os/linux arch/arm64 UpstreamClient(Docker-Client/27.3.1 \\(darwin\\))", "docker", "27.3.1", "linux", "arm64", Some("desktop"), None);
        check(
            "docker/26.1.4 go/go1.21.11 git-commit/de5c9cf kernel/5.15.153.1-microsoft-standard-WSL2 os/linux arch/amd64",
            "docker",
            "26.1.4",
            "linux",
            "amd64",
            Some("wsl"),
            None,
        );
        check(
            "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.5.0-1025-azure os/linux arch/amd64",
            "docker",
            "24.0.7",
            "linux",
            "amd64",
            Some("azure"),
            None,
        );
        check(
            "docker/25.0.3 go/go1.21.6 git-commit/f417435 kernel/6.1.66-91.160.amzn2023.x86_64-aws os/linux arch/amd64",
            "docker",
            "25.0.3",
            "linux",
            "amd64",
            Some("aws"),
            None,
        );
        check("containerd/v1.7.21-k3s2", "containerd", "1.7.21-k3s2", "", "", Some("k3s"), None);
        check("cri-o/1.30.4 go/go1.22.5 os/linux arch/amd64", "cri-o", "1.30.4", "linux", "amd64", None, None);
    }

    #[test]
    fn package_managers_and_tools() {
        check(
            r#"pip/24.2 {"ci":true,"cpu":"x86_64","distro":{"name":"Ubuntu","version":"22.04"},"implementation":{"name":"CPython","version":"3.12.5"},"installer":{"name":"pip","version":"24.2"},"system":{"name":"Linux","release":"6.5.0"}}"#,
            "pip",
            "24.2",
            "linux",
            "x86_64",
            None,
            Some("ci"),
        );
        check(
            r#"uv/0.4.18 {"installer":{"name":"uv","version":"0.4.18"},"python":"3.12.6","system":{"name":"Darwin","release":"23.6.0"},"cpu":"arm64","ci":null}"#,
            "uv",
            "0.4.18",
            "darwin",
            "arm64",
            None,
            None,
        );
        check(
            "npm/10.8.2 node/v22.9.0 linux x64 workspaces/false ci/github-actions",
            "npm",
            "10.8.2",
            "linux",
            "x64",
            None,
            Some("github-actions"),
        );
        check("Helm/3.16.1", "helm", "3.16.1", "", "", None, None);
        check("crane/v0.20.2", "crane", "0.20.2", "", "", None, None);
        check("go-containerregistry/v0.20.2", "crane", "0.20.2", "", "", None, None);
        check("Go-http-client/1.1", "go-http-client", "1.1", "", "", None, None);
        check("python-requests/2.32.3", "python-requests", "2.32.3", "", "", None, None);
        check("Wget/1.21.3", "wget", "1.21.3", "", "", None, None);
        check("cargo/1.81.0 (2dbb1af80 2024-08-20)", "cargo", "1.81.0", "", "", None, None);
    }

    #[test]
    fn unknown_and_empty_agents() {
        check("Mozilla/5.0 (X11; Linux x86_64)", "other", "Mozilla", "", "", None, None);
        check("", "other", "", "", "", None, None);
    }
}
