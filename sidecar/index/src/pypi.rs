//! Python package indexes: a project's page in the simple repository API,
//! HTML (PEP 503) or JSON (PEP 691), read into a [`Project`], and written
//! again in either form with every file linked under the gateway's prefix.
//!
//! Kept per file: the file name, its hashes (the `#sha256=` of PEP 503, the
//! `hashes` of PEP 691), `requires-python` and `yanked`. Not kept: the
//! core-metadata files of PEP 658/714, which the gateway does not serve;
//! without them pip reads the metadata from the file itself.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;
use url::Url;

use crate::IndexError;

/// A distribution file name: a wheel, an sdist, an egg. No `/`, no leading
/// `.`, nothing HTML, JSON or nginx config gives a meaning to.
static FILENAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,254}$").unwrap());
/// A hash name (`sha256`, `blake2b_256`, ...) and its hex value.
static HASH_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9_]{1,32}$").unwrap());
static HASH_VALUE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[0-9a-fA-F]{16,256}$").unwrap());
/// An anchor and its text; attributes are read by [`attributes`].
static ANCHOR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?is)<a\s([^>]*)>(.*?)</a\s*>").unwrap());
static ATTRIBUTE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?s)([A-Za-z_:][A-Za-z0-9_:.-]*)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?"#).unwrap());

/// A project name as PEP 503 normalises it: `Acme_Client` is `acme-client`.
/// `None` when it is not a valid project name at all.
pub fn normalize(name: &str) -> Option<String> {
    pullgate_config::names::pypi_project(name).ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Yanked {
    No,
    Yes,
    /// Yanked, with the reason the maintainers gave.
    Because(String),
}

/// One file of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub filename: String,
    /// Where the file really is: absolute, `http(s)`, without its fragment.
    pub url: Url,
    /// Hash name to lower-case hex value.
    pub hashes: BTreeMap<String, String>,
    pub requires_python: Option<String>,
    pub yanked: Yanked,
}

/// A project's page, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Normalised.
    pub name: String,
    /// In the upstream's order; one per file name (the first is kept).
    pub files: Vec<File>,
    /// Entries left out: a file name, a link or a hash that did not pass.
    pub refused: usize,
}

/// The JSON form's media type (PEP 691).
pub const JSON_TYPE: &str = "application/vnd.pypi.simple.v1+json";
/// The HTML form's, as PEP 691 names it for content negotiation.
pub const HTML_TYPE: &str = "application/vnd.pypi.simple.v1+html";

#[derive(Deserialize)]
struct JsonPage {
    name: String,
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
    #[serde(rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default)]
    yanked: Option<serde_json::Value>,
}

impl Project {
    /// A PEP 691 page of project `want` (any spelling), fetched from `page`.
    pub fn from_json(body: &str, page: &Url, want: &str) -> Result<Project, IndexError> {
        let doc: JsonPage = serde_json::from_str(body).map_err(|e| IndexError::Malformed { format: "PEP 691 JSON", why: e.to_string() })?;
        let name = checked_name(&doc.name, want)?;
        let mut project = Project { name, files: Vec::new(), refused: 0 };
        for f in doc.files {
            let yanked = match f.yanked {
                None | Some(serde_json::Value::Bool(false)) => Yanked::No,
                Some(serde_json::Value::String(reason)) => Yanked::Because(reason),
                Some(_) => Yanked::Yes,
            };
            project.add(&f.filename, &f.url, page, f.hashes, f.requires_python, yanked);
        }
        Ok(project)
    }

    /// A PEP 503 page of project `want`, fetched from `page`.
    pub fn from_html(body: &str, page: &Url, want: &str) -> Result<Project, IndexError> {
        let name = normalize(want).ok_or_else(|| IndexError::WrongProject { want: want.into(), got: want.into() })?;
        if !body.trim_start().starts_with('<') {
            return Err(IndexError::Malformed { format: "PEP 503 HTML", why: "it does not begin with markup".into() });
        }
        let mut project = Project { name, files: Vec::new(), refused: 0 };
        for a in ANCHOR.captures_iter(body) {
            let attrs = attributes(&a[1]);
            let Some(href) = attrs.get("href") else {
                continue;
            };
            let text = unescape(a[2].trim());
            let (link, fragment) = href.split_once('#').unwrap_or((href, ""));
            let hashes: BTreeMap<String, String> =
                fragment.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).into_iter().collect();
            let yanked = match attrs.get("data-yanked") {
                None => Yanked::No,
                Some(r) if r.is_empty() => Yanked::Yes,
                Some(r) => Yanked::Because(r.clone()),
            };
            project.add(&text, link, page, hashes, attrs.get("data-requires-python").cloned(), yanked);
        }
        Ok(project)
    }

    fn add(
        &mut self,
        filename: &str,
        link: &str,
        page: &Url,
        hashes: BTreeMap<String, String>,
        requires_python: Option<String>,
        yanked: Yanked,
    ) {
        let url = crate::target(page, link);
        let hashes_ok = hashes.iter().all(|(k, v)| HASH_NAME.is_match(k) && HASH_VALUE.is_match(v));
        let duplicate = self.files.iter().any(|f| f.filename == filename);
        match url {
            Some(url) if FILENAME.is_match(filename) && hashes_ok && !duplicate => {
                let hashes = hashes.into_iter().map(|(k, v)| (k, v.to_ascii_lowercase())).collect();
                self.files.push(File { filename: filename.to_string(), url, hashes, requires_python, yanked });
            }
            _ => self.refused += 1,
        }
    }

    /// The PEP 503 page, each file linked as `{prefix}{filename}` with its
    /// first hash (sha256 when there is one) as the fragment.
    pub fn to_html(&self, prefix: &str) -> String {
        let mut out = format!(
            "<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"1.0\">\n<title>Links for {0}</title>\n</head>\n<body>\n<h1>Links for {0}</h1>\n",
            escape(&self.name)
        );
        for f in &self.files {
            let mut href = format!("{prefix}{}", f.filename);
            if let Some((k, v)) = f.hashes.get_key_value("sha256").or_else(|| f.hashes.iter().next()) {
                href.push_str(&format!("#{k}={v}"));
            }
            out.push_str(&format!("<a href=\"{}\"", escape(&href)));
            if let Some(rp) = &f.requires_python {
                out.push_str(&format!(" data-requires-python=\"{}\"", escape(rp)));
            }
            match &f.yanked {
                Yanked::No => {}
                Yanked::Yes => out.push_str(" data-yanked=\"\""),
                Yanked::Because(r) => out.push_str(&format!(" data-yanked=\"{}\"", escape(r))),
            }
            out.push_str(&format!(">{}</a><br>\n", escape(&f.filename)));
        }
        out.push_str("</body>\n</html>\n");
        out
    }

    /// The PEP 691 page (API version 1.0), each file's `url` `{prefix}{filename}`.
    pub fn to_json(&self, prefix: &str) -> String {
        let files: Vec<serde_json::Value> = self
            .files
            .iter()
            .map(|f| {
                let mut v = serde_json::json!({"filename": f.filename, "url": format!("{prefix}{}", f.filename), "hashes": f.hashes});
                if let Some(rp) = &f.requires_python {
                    v["requires-python"] = rp.clone().into();
                }
                match &f.yanked {
                    Yanked::No => {}
                    Yanked::Yes => v["yanked"] = true.into(),
                    Yanked::Because(r) => v["yanked"] = r.clone().into(),
                }
                v
            })
            .collect();
        let doc = serde_json::json!({"meta": {"api-version": "1.0"}, "name": self.name, "files": files});
        format!("{doc}\n")
    }
}

impl Project {
    /// The project's pages (`NAME/page.html`, `NAME/page.json`) for the route
    /// at `prefix` (its gateway path, ending in `/`), each file linked at
    /// `{prefix}NAME/{filename}`, and the files' real URLs.
    pub fn serve(&self, prefix: &str, out: &mut crate::Served) {
        let dir = format!("{prefix}{}/", self.name);
        let mut kept = self.clone();
        kept.files.retain(|f| out.link(format!("{dir}{}", f.filename), &f.url));
        out.refused += self.refused;
        out.docs.insert(format!("{}/page.html", self.name), kept.to_html(&dir));
        out.docs.insert(format!("{}/page.json", self.name), kept.to_json(&dir));
    }

    /// The root page (PEP 503 `/simple/`) listing `projects`, in both forms.
    pub fn serve_root(projects: &[String], prefix: &str, out: &mut crate::Served) {
        let mut html = String::from("<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"1.0\">\n<title>Simple index</title>\n</head>\n<body>\n");
        for p in projects {
            html.push_str(&format!("<a href=\"{}{}/\">{}</a><br>\n", escape(prefix), escape(p), escape(p)));
        }
        html.push_str("</body>\n</html>\n");
        let json = serde_json::json!({"meta": {"api-version": "1.0"}, "projects": projects.iter().map(|p| serde_json::json!({"name": p})).collect::<Vec<_>>()});
        out.docs.insert("root.html".into(), html);
        out.docs.insert("root.json".into(), format!("{json}\n"));
    }
}

fn checked_name(got: &str, want: &str) -> Result<String, IndexError> {
    match (normalize(got), normalize(want)) {
        (Some(g), Some(w)) if g == w => Ok(w),
        _ => Err(IndexError::WrongProject { want: want.into(), got: got.into() }),
    }
}

/// An anchor's attributes, names lower-cased, values unescaped; the first of a name wins.
fn attributes(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in ATTRIBUTE.captures_iter(s) {
        let value = c.get(2).or(c.get(3)).or(c.get(4)).map_or(String::new(), |m| unescape(m.as_str()));
        out.entry(c[1].to_ascii_lowercase()).or_insert(value);
    }
    out
}

/// HTML character references: the five named ones, and numeric ones.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let entity = &rest[1..e];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let n = if let Some(hex) = entity.strip_prefix("#x").or_else(|| entity.strip_prefix("#X")) {
                        u32::from_str_radix(hex, 16).ok()
                    } else {
                        entity.strip_prefix('#').and_then(|d| d.parse().ok())
                    };
                    n.and_then(char::from_u32)
                }
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text and attribute values, escaped for HTML.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Url {
        Url::parse("https://pypi.example.org/simple/acme-client/").unwrap()
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn names_normalise_as_pep_503_says() {
        assert_eq!(normalize("Acme_Client").as_deref(), Some("acme-client"));
        assert_eq!(normalize("acme.._-client").as_deref(), Some("acme-client"));
        assert_eq!(normalize("-acme"), None);
        assert_eq!(normalize("acme/client"), None);
        assert_eq!(normalize("acme<x>"), None);
    }

    #[test]
    fn html_pages_are_read_with_relative_links_hashes_and_attributes() {
        let html = format!(
            r#"<!DOCTYPE html><html><body>
<a href="../../packages/ab/acme_client-1.0-py3-none-any.whl#sha256={SHA}" data-requires-python="&gt;=3.8">acme_client-1.0-py3-none-any.whl</a><br/>
<A HREF='https://files.example.org/acme-client-1.0.tar.gz#SHA256={}' data-yanked="broken build">acme-client-1.0.tar.gz</A>
<a href="https://files.example.org/acme_client-0.9-py3-none-any.whl" data-yanked>acme_client-0.9-py3-none-any.whl</a>
<a href="/no/hash/acme_client-0.8.tar.gz">acme_client-0.8.tar.gz</a>
</body></html>"#,
            SHA.to_uppercase()
        );
        let p = Project::from_html(&html, &page(), "Acme_Client").unwrap();
        assert_eq!(p.name, "acme-client");
        assert_eq!(p.refused, 1, "SHA256 is not a hash name");
        assert_eq!(p.files.len(), 3);
        let wheel = &p.files[0];
        assert_eq!(wheel.url.as_str(), "https://pypi.example.org/packages/ab/acme_client-1.0-py3-none-any.whl");
        assert_eq!(wheel.hashes.get("sha256").map(String::as_str), Some(SHA));
        assert_eq!(wheel.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(p.files[1].yanked, Yanked::Yes);
        assert_eq!(p.files[2].url.as_str(), "https://pypi.example.org/no/hash/acme_client-0.8.tar.gz");
        assert!(p.files[2].hashes.is_empty());
    }

    #[test]
    fn json_pages_are_read_and_checked_against_the_project_asked_for() {
        let json = format!(
            r#"{{"meta":{{"api-version":"1.1"}},"name":"acme-client","files":[
{{"filename":"acme_client-1.0-py3-none-any.whl","url":"../../packages/acme_client-1.0-py3-none-any.whl","hashes":{{"sha256":"{SHA}"}},"requires-python":">=3.8","core-metadata":{{"sha256":"{SHA}"}}}},
{{"filename":"acme-client-1.0.tar.gz","url":"https://files.example.org/acme-client-1.0.tar.gz","hashes":{{}},"yanked":"a reason"}},
{{"filename":"../evil","url":"https://files.example.org/evil","hashes":{{}}}},
{{"filename":"acme-client-0.1.tar.gz","url":"javascript:alert(1)","hashes":{{}}}},
{{"filename":"acme-client-0.2.tar.gz","url":"file:///etc/passwd","hashes":{{}}}}]}}"#
        );
        let p = Project::from_json(&json, &page(), "acme_client").unwrap();
        assert_eq!(p.files.len(), 2);
        assert_eq!(p.refused, 3);
        assert_eq!(p.files[0].url.as_str(), "https://pypi.example.org/packages/acme_client-1.0-py3-none-any.whl");
        assert_eq!(p.files[1].yanked, Yanked::Because("a reason".into()));
        assert_eq!(
            Project::from_json(r#"{"name":"other","files":[]}"#, &page(), "acme-client"),
            Err(IndexError::WrongProject { want: "acme-client".into(), got: "other".into() })
        );
        assert!(matches!(Project::from_json("<html>", &page(), "acme-client"), Err(IndexError::Malformed { .. })));
    }

    #[test]
    fn written_pages_link_to_the_gateway_and_read_back_the_same() {
        let html = format!(
            r#"<html><a href="https://files.example.org/a/acme_client-1.0-py3-none-any.whl#sha256={SHA}" data-requires-python="&lt;4,&gt;=3.8" data-yanked="it &quot;broke&quot;">acme_client-1.0-py3-none-any.whl</a></html>"#
        );
        let p = Project::from_html(&html, &page(), "acme-client").unwrap();
        let gateway = Url::parse("https://get.acme.dev/simple/acme-client/").unwrap();
        let written = p.to_html("/simple/acme-client/");
        assert!(written.contains(&format!("href=\"/simple/acme-client/acme_client-1.0-py3-none-any.whl#sha256={SHA}\"")), "{written}");
        assert!(written.contains("data-requires-python=\"&lt;4,&gt;=3.8\""), "{written}");
        let again = Project::from_html(&written, &gateway, "acme-client").unwrap();
        assert_eq!(again.files[0].url.as_str(), "https://get.acme.dev/simple/acme-client/acme_client-1.0-py3-none-any.whl");
        assert_eq!(
            (&again.files[0].hashes, &again.files[0].requires_python, &again.files[0].yanked),
            (&p.files[0].hashes, &p.files[0].requires_python, &p.files[0].yanked)
        );
        let json = p.to_json("/simple/acme-client/");
        let back = Project::from_json(&json, &gateway, "acme-client").unwrap();
        assert_eq!(back.files[0].url, again.files[0].url);
        assert_eq!(back.files[0].yanked, Yanked::Because("it \"broke\"".into()));
    }

    proptest::proptest! {
        /// Whatever an upstream sends, what is written holds no markup of
        /// its own and links only under the prefix.
        #[test]
        fn hostile_pages_write_nothing_but_escaped_links_under_the_prefix(
            name in "[a-z<>\"'&/. -]{1,12}", file in "[A-Za-z0-9<>\"'&/#. -]{1,24}", link in "[a-z:/<>\"'&#. -]{0,24}",
            rp in "[<>\"'&=0-9. ]{0,12}",
        ) {
            let html = format!("<a href=\"{link}\" data-requires-python=\"{rp}\">{file}</a><a href='x/{name}.whl'>{name}.whl</a>");
            if let Ok(p) = Project::from_html(&html, &page(), "acme-client") {
                let out = p.to_html("/simple/acme-client/");
                let anchors = out.matches("<a ").count();
                proptest::prop_assert_eq!(anchors, p.files.len());
                for a in out.split("<a ").skip(1) {
                    proptest::prop_assert!(a.starts_with("href=\"/simple/acme-client/"), "{}", a);
                    let tag = &a[..a.find('>').unwrap()];
                    proptest::prop_assert!(!tag.contains('<') && tag.matches('"').count() % 2 == 0, "{}", tag);
                }
                let json: serde_json::Value = serde_json::from_str(&p.to_json("/simple/acme-client/")).unwrap();
                for f in json["files"].as_array().unwrap() {
                    proptest::prop_assert!(f["url"].as_str().unwrap().starts_with("/simple/acme-client/"));
                    proptest::prop_assert!(!f["filename"].as_str().unwrap().contains('/'));
                }
            }
        }
    }
}
