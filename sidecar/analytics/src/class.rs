//! What kind of machine an origin is, from what its agent and address say,
//! and whether it polls.
//!
//! - `ci`: the agent carries a CI marker (pip and uv's `"ci": true`, npm's `ci/NAME`);
//! - `laptop`: Docker Desktop or WSL2 kernels, or a macOS or Windows client;
//! - `server`: a cloud provider's kernel, an address in a cloud's published
//!   ranges (the shipper's `cloud`), or a cluster runtime (containerd, cri-o);
//! - `unknown`: the rest.
//!
//! A poller (watchtower, diun, a cron job) sends version checks at regular
//! short intervals: at least [`POLLER_MIN_CHECKS`] checks for one
//! repository whose gaps are all within 20% of their median, itself at most
//! an hour.

use crate::ua::Client;

pub const POLLER_MIN_CHECKS: usize = 3;

pub fn class(client: &Client, cloud: Option<&str>) -> &'static str {
    let platform = client.platform.as_deref();
    if client.ci.is_some() {
        "ci"
    } else if matches!(platform, Some("desktop" | "wsl")) || matches!(client.os.as_str(), "darwin" | "windows") {
        "laptop"
    } else if matches!(platform, Some("aws" | "azure" | "gcp" | "k3s"))
        || cloud.is_some_and(|c| !c.is_empty())
        || matches!(client.family.as_str(), "containerd" | "cri-o")
    {
        "server"
    } else {
        "unknown"
    }
}

/// Whether version checks at these times (ms, any order) are a poller's.
pub fn polls(check_times: &[i64]) -> bool {
    if check_times.len() < POLLER_MIN_CHECKS {
        return false;
    }
    let mut t = check_times.to_vec();
    t.sort_unstable();
    let mut gaps: Vec<i64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    let median = gaps[gaps.len() / 2];
    median > 0 && median <= 3_600_000 && gaps.iter().all(|g| (g - median).abs() * 5 <= median)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ua::parse;

    #[test]
    fn classes_from_agents_and_clouds() {
        let c = |ua: &str, cloud: Option<&str>| class(&parse(ua), cloud);
        assert_eq!(c(r#"pip/24.2 {"ci":true,"cpu":"x86_64","system":{"name":"Linux"}}"#, None), "ci");
        assert_eq!(c("npm/10.8.2 node/v22.9.0 linux x64 workspaces/false ci/github-actions", Some("azure")), "ci");
        assert_eq!(c("docker/27.3.1 go/go1.22.7 git-commit/x kernel/6.10.14-linuxkit os/linux arch/arm64", None), "laptop");
        assert_eq!(
            c("docker/26.1.4 go/go1.21.11 git-commit/x kernel/5.15.153.1-microsoft-standard-WSL2 os/linux arch/amd64", None),
            "laptop"
        );
        assert_eq!(c("docker/24.0.7 go/go1.20.10 git-commit/x kernel/6.5.0-1025-azure os/linux arch/amd64", None), "server");
        assert_eq!(c("cri-o/1.30.4 go/go1.22.5 os/linux arch/amd64", None), "server");
        assert_eq!(c("skopeo/1.9.3", Some("aws")), "server");
        assert_eq!(c("skopeo/1.9.3", None), "unknown");
    }

    #[test]
    fn pollers_poll_regularly() {
        let every = |n: i64, gap: i64| (0..n).map(|i| i * gap).collect::<Vec<_>>();
        assert!(polls(&every(4, 300_000)));
        assert!(polls(&[0, 300_000, 610_000, 900_000]), "small jitter");
        assert!(!polls(&every(2, 300_000)), "two checks are not a pattern");
        assert!(!polls(&[0, 300_000, 2_000_000, 2_300_000]), "irregular");
        assert!(!polls(&every(5, 7_200_000)), "every two hours is not short");
    }
}
