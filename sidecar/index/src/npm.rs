//! npm registries: a package's packument (the registry's JSON document of
//! every version) read, each version's `dist.tarball` pointed at the
//! gateway, and written again in full and in the abbreviated form that
//! `npm install` asks for (`application/vnd.npm.install-v1+json`).
//!
//! Everything else in the document is kept as the upstream wrote it,
//! `dist.integrity` and `dist.shasum` included, so clients check the bytes
//! they get from the real tarball host against the upstream's own hashes.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};
use url::Url;

use crate::{IndexError, Served};

static VERSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,127}$").unwrap());
static TARBALL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}\.tgz$").unwrap());

/// The abbreviated form's media type.
pub const CORGI_TYPE: &str = "application/vnd.npm.install-v1+json";

/// The fields of a version the abbreviated form keeps (npm's registry docs).
const CORGI_FIELDS: &[&str] = &[
    "name",
    "version",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bin",
    "directories",
    "dist",
    "engines",
    "_hasShrinkwrap",
    "hasInstallScript",
    "cpu",
    "os",
    "funding",
];

/// Whether `name` is a package name the gateway serves.
pub fn valid_name(name: &str) -> bool {
    pullgate_config::names::npm_package(name).is_ok()
}

/// The path of a package's packument under a registry: a scope's `/` is
/// sent as `%2f`, as npm itself does.
pub fn packument_path(name: &str) -> String {
    name.replacen('/', "%2f", 1)
}

/// A packument, read and pointed at the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Packument {
    pub name: String,
    /// The upstream's document with each kept version's tarball on the gateway.
    doc: Map<String, Value>,
    /// Gateway path (`{prefix}NAME/-/FILE.tgz`) and upstream URL of each kept version's tarball.
    tarballs: Vec<(String, Url)>,
    refused: usize,
}

impl Packument {
    /// The packument of `want` fetched from `page`, its tarballs served at
    /// `public` (the gateway's origin) + `prefix` (the route's path).
    pub fn from_json(body: &str, page: &Url, want: &str, public: &str, prefix: &str) -> Result<Packument, IndexError> {
        let malformed = |why: String| IndexError::Malformed { format: "npm packument", why };
        let Value::Object(mut doc) = serde_json::from_str(body).map_err(|e| malformed(e.to_string()))? else {
            return Err(malformed("not a JSON object".into()));
        };
        let got = doc.get("name").and_then(Value::as_str).unwrap_or_default();
        if got != want || !valid_name(want) {
            return Err(IndexError::WrongProject { want: want.into(), got: got.into() });
        }
        let Some(Value::Object(versions)) = doc.remove("versions") else {
            return Err(malformed("no `versions` object".into()));
        };
        let mut out = Packument { name: want.to_string(), doc: Map::new(), tarballs: Vec::new(), refused: 0 };
        let mut kept = Map::new();
        for (version, mut v) in versions {
            let target = v.pointer("/dist/tarball").and_then(Value::as_str).and_then(|t| crate::target(page, t));
            let file = target.as_ref().and_then(|u| u.path_segments()?.next_back().map(str::to_string));
            match (target, file) {
                (Some(target), Some(file)) if VERSION.is_match(&version) && TARBALL.is_match(&file) => {
                    let path = format!("{prefix}{want}/-/{file}");
                    if out.tarballs.iter().any(|(p, _)| *p == path) {
                        out.refused += 1;
                        continue;
                    }
                    v["dist"]["tarball"] = Value::String(format!("{public}{path}"));
                    out.tarballs.push((path, target));
                    kept.insert(version, v);
                }
                _ => out.refused += 1,
            }
        }
        // A tag naming a version left out would send clients to nothing.
        if let Some(Value::Object(tags)) = doc.get_mut("dist-tags") {
            tags.retain(|_, v| v.as_str().is_some_and(|v| kept.contains_key(v)));
        }
        doc.insert("versions".into(), Value::Object(kept));
        out.doc = doc;
        Ok(out)
    }

    /// The full document.
    pub fn full(&self) -> String {
        format!("{}\n", Value::Object(self.doc.clone()))
    }

    /// The abbreviated document npm installs from.
    pub fn abbreviated(&self) -> String {
        let mut doc = Map::new();
        doc.insert("name".into(), self.name.clone().into());
        if let Some(m) = self.doc.get("time").and_then(|t| t.get("modified")) {
            doc.insert("modified".into(), m.clone());
        }
        doc.insert("dist-tags".into(), self.doc.get("dist-tags").cloned().unwrap_or_else(|| Value::Object(Map::new())));
        let versions: Map<String, Value> = match self.doc.get("versions") {
            Some(Value::Object(vs)) => vs
                .iter()
                .map(|(k, v)| {
                    let kept: Map<String, Value> =
                        CORGI_FIELDS.iter().filter_map(|f| v.get(*f).map(|x| (f.to_string(), x.clone()))).collect();
                    (k.clone(), Value::Object(kept))
                })
                .collect(),
            _ => Map::new(),
        };
        doc.insert("versions".into(), Value::Object(versions));
        format!("{}\n", Value::Object(doc))
    }

    /// Its documents (`NAME/full.json`, and the abbreviated
    /// `NAME/corgi.install-v1`, whose extension gives its media type) and tarballs.
    pub fn serve(&self, out: &mut Served) {
        out.refused += self.refused;
        out.docs.insert(format!("{}/full.json", self.name), self.full());
        out.docs.insert(format!("{}/corgi.install-v1", self.name), self.abbreviated());
        for (path, url) in &self.tarballs {
            out.link(path.clone(), url);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Url {
        Url::parse("http://127.0.0.1:4873/@acme%2fcli").unwrap()
    }

    fn doc(tarball: &str) -> String {
        format!(
            r#"{{"name":"@acme/cli","dist-tags":{{"latest":"1.0.0","beta":"2.0.0-beta.1"}},"time":{{"modified":"2026-01-01T00:00:00.000Z"}},
"versions":{{
 "1.0.0":{{"name":"@acme/cli","version":"1.0.0","scripts":{{"test":"x"}},"dependencies":{{"a":"^1"}},"dist":{{"tarball":"{tarball}","integrity":"sha512-AAAA","shasum":"abcd"}}}},
 "2.0.0-beta.1":{{"name":"@acme/cli","version":"2.0.0-beta.1","dist":{{"tarball":"https://evil.example/$x;.tgz"}}}}
}}}}"#
        )
    }

    #[test]
    fn tarballs_point_at_the_gateway_and_hashes_stay() {
        let p = Packument::from_json(&doc("/@acme/cli/-/cli-1.0.0.tgz"), &page(), "@acme/cli", "https://get.acme.dev", "/npm/").unwrap();
        let mut served = Served::default();
        p.serve(&mut served);
        assert_eq!(served.refused, 1, "the unsafe tarball URL");
        assert_eq!(served.files.len(), 1);
        assert_eq!(served.files["/npm/@acme/cli/-/cli-1.0.0.tgz"].as_str(), "http://127.0.0.1:4873/@acme/cli/-/cli-1.0.0.tgz");
        let full: Value = serde_json::from_str(&served.docs["@acme/cli/full.json"]).unwrap();
        assert_eq!(full["versions"]["1.0.0"]["dist"]["tarball"], "https://get.acme.dev/npm/@acme/cli/-/cli-1.0.0.tgz");
        assert_eq!(full["versions"]["1.0.0"]["dist"]["integrity"], "sha512-AAAA");
        assert_eq!(full["versions"]["1.0.0"]["scripts"]["test"], "x");
        assert_eq!(full["dist-tags"], serde_json::json!({"latest": "1.0.0"}), "a tag of a refused version goes");
        let corgi: Value = serde_json::from_str(&served.docs["@acme/cli/corgi.install-v1"]).unwrap();
        assert_eq!(corgi["modified"], "2026-01-01T00:00:00.000Z");
        assert_eq!(corgi["versions"]["1.0.0"]["dependencies"]["a"], "^1");
        assert!(corgi["versions"]["1.0.0"].get("scripts").is_none());
        assert_eq!(corgi["versions"]["1.0.0"]["dist"]["shasum"], "abcd");
    }

    #[test]
    fn a_tarball_link_with_a_fragment_is_served_without_it() {
        let p = Packument::from_json(&doc("/@acme/cli/-/cli-1.0.0.tgz#sha1"), &page(), "@acme/cli", "https://g", "/npm/").unwrap();
        let mut served = Served::default();
        p.serve(&mut served);
        // The version the packument keeps is one the gateway redirects.
        assert_eq!(served.files["/npm/@acme/cli/-/cli-1.0.0.tgz"].as_str(), "http://127.0.0.1:4873/@acme/cli/-/cli-1.0.0.tgz");
    }

    #[test]
    fn another_package_or_a_bad_document_is_refused() {
        let err = Packument::from_json(&doc("x.tgz"), &page(), "@acme/other", "https://g", "/npm/").unwrap_err();
        assert!(matches!(err, IndexError::WrongProject { .. }));
        assert!(matches!(Packument::from_json("[]", &page(), "@acme/cli", "https://g", "/npm/"), Err(IndexError::Malformed { .. })));
        assert!(!valid_name("../x") && !valid_name("@a/../b") && !valid_name("A") && valid_name("@a/b.c-d"));
        assert_eq!(packument_path("@acme/cli"), "@acme%2fcli");
    }
}
