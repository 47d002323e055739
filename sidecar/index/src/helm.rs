//! Helm chart repositories: `index.yaml` read, each chart version's first
//! URL pointed at the gateway (`NAME/NAME-VERSION.tgz` under the route,
//! relative, as Helm resolves it against the repository URL), and written
//! again with every other field (`digest` included) as the upstream wrote it.

use std::sync::LazyLock;

use regex::Regex;
use serde_yaml::{Mapping, Value};
use url::Url;

use crate::{IndexError, Served};

static VERSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,127}$").unwrap());

/// Whether `name` is a chart name the gateway serves.
pub fn valid_chart(name: &str) -> bool {
    pullgate_config::names::helm_chart(name).is_ok()
}

/// A repository's index, pointed at the gateway: its `index.yaml` and chart
/// files, for the route at `prefix`. `charts`: the charts to keep (all when empty).
pub fn serve(body: &str, page: &Url, prefix: &str, charts: &[String], out: &mut Served) -> Result<(), IndexError> {
    let malformed = |why: String| IndexError::Malformed { format: "Helm index.yaml", why };
    let mut doc: Mapping = serde_yaml::from_str(body).map_err(|e| malformed(e.to_string()))?;
    let Some(Value::Mapping(entries)) = doc.remove("entries") else {
        return Err(malformed("no `entries` mapping".into()));
    };
    let mut kept = Mapping::new();
    for (name, versions) in entries {
        let (Some(name), Value::Sequence(versions)) = (name.as_str().map(str::to_string), versions) else {
            out.refused += 1;
            continue;
        };
        if !charts.is_empty() && !charts.contains(&name) {
            continue;
        }
        if !valid_chart(&name) {
            out.refused += versions.len();
            continue;
        }
        let mut list = Vec::new();
        for mut v in versions {
            let version = v.get("version").and_then(Value::as_str).filter(|s| VERSION.is_match(s)).map(str::to_string);
            let target = v.get("urls").and_then(|u| u.get(0)).and_then(Value::as_str).and_then(|u| crate::target(page, u));
            let (Some(version), Some(target)) = (version, target) else {
                out.refused += 1;
                continue;
            };
            if v.get("name").and_then(Value::as_str) != Some(name.as_str()) {
                out.refused += 1;
                continue;
            }
            let file = format!("{name}/{name}-{version}.tgz");
            // `link` counts what it refuses.
            if !out.link(format!("{prefix}{file}"), &target) {
                continue;
            }
            v["urls"] = Value::Sequence(vec![Value::String(file)]);
            list.push(v);
        }
        if !list.is_empty() {
            kept.insert(Value::String(name), Value::Sequence(list));
        }
    }
    doc.insert(Value::String("entries".into()), Value::Mapping(kept));
    let text = serde_yaml::to_string(&doc).map_err(|e| malformed(e.to_string()))?;
    out.docs.insert("index.yaml".into(), text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_urls_point_at_the_gateway_and_the_rest_stays() {
        let page = Url::parse("http://127.0.0.1:8081/charts/index.yaml").unwrap();
        let body = r#"apiVersion: v1
entries:
  acme:
  - name: acme
    version: 0.1.0
    digest: "abc123"
    urls: [acme-0.1.0.tgz]
  - name: acme
    version: 0.2.0
    urls: ["https://cdn.example.org/acme-0.2.0.tgz", "mirror"]
  - name: other
    version: 0.3.0
    urls: [x.tgz]
  "../evil":
  - name: "../evil"
    version: 1.0.0
    urls: [e.tgz]
generated: "2026-01-01T00:00:00Z"
"#;
        let mut out = Served::default();
        serve(body, &page, "/charts/", &[], &mut out).unwrap();
        assert_eq!(out.refused, 2, "a version named for another chart, a hostile chart name");
        assert_eq!(out.files["/charts/acme/acme-0.1.0.tgz"].as_str(), "http://127.0.0.1:8081/charts/acme-0.1.0.tgz");
        assert_eq!(out.files["/charts/acme/acme-0.2.0.tgz"].as_str(), "https://cdn.example.org/acme-0.2.0.tgz");
        let index: Value = serde_yaml::from_str(&out.docs["index.yaml"]).unwrap();
        assert_eq!(index["entries"]["acme"][0]["urls"][0], "acme/acme-0.1.0.tgz");
        assert_eq!(index["entries"]["acme"][0]["digest"], "abc123");
        assert_eq!(index["generated"], "2026-01-01T00:00:00Z");
        let mut only = Served::default();
        serve(body, &page, "/charts/", &["nothing".into()], &mut only).unwrap();
        assert!(only.files.is_empty());
        assert!(serve("entries: 3", &page, "/charts/", &[], &mut only).is_err());
    }
}
