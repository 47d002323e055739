//! ClickHouse's HTTP interface (the only one pullgate speaks): a query is a
//! POST whose body is the SQL; an insert names its table and format in the
//! `query` parameter and sends its rows as the body. Answers are
//! JSONEachRow, one object per line. An error is a non-200 status whose
//! body is the server's exception text.
//!
//! Values never reach SQL as text except through [`quote`]: ClickHouse
//! 18.16 (Debian's) has no query parameters.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::AnalyticsError;

/// Where the store is: `clickhouse://HOST:PORT/DB` (HTTP) or
/// `clickhouses://HOST:PORT/DB` (HTTPS). The account never comes in the
/// address (it is logged and shown): see [`Account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `http://HOST:PORT/` or `https://HOST:PORT/`.
    pub base: String,
    pub database: String,
}

impl Address {
    pub fn parse(s: &str) -> Result<Address, String> {
        // Said without what comes before an `@`: it may be an account.
        let shown = match s.rsplit_once('@') {
            Some((before, after)) => format!("{}…@{after}", &before[..before.find("://").map_or(0, |i| i + 3)]),
            None => s.to_string(),
        };
        let bad = |why: &str| format!("{shown:?}: {why}; expected clickhouse://HOST:PORT/DATABASE (or clickhouses:// for HTTPS)");
        let (scheme, rest) = if let Some(r) = s.strip_prefix("clickhouse://") {
            ("http", r)
        } else if let Some(r) = s.strip_prefix("clickhouses://") {
            ("https", r)
        } else {
            return Err(bad("not a ClickHouse address"));
        };
        let (host, database) = rest.split_once('/').ok_or_else(|| bad("no database"))?;
        if host.contains('@') {
            return Err(bad("an account in the address would be logged: give it with --store-account-file or PULLGATE_STORE_USER and PULLGATE_STORE_PASSWORD"));
        }
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            && host.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !host_ok {
            return Err(bad("the host must be HOST:PORT"));
        }
        let db_ok = !database.is_empty()
            && database.len() <= 64
            && database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !database.as_bytes()[0].is_ascii_digit();
        if !db_ok {
            return Err(bad("the database name must be letters, digits and _, not starting with a digit"));
        }
        Ok(Address { base: format!("{scheme}://{host}/"), database: database.to_string() })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.base, self.database)
    }
}

/// A ClickHouse user and password, sent as HTTP Basic on each request.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Account {{ user: {:?}, password: <hidden> }}", self.user)
    }
}

/// What every request but one carrying external data sends.
const TEXT: &str = "text/plain; charset=utf-8";

pub struct Http {
    agent: ureq::Agent,
    address: Address,
    authorization: Option<String>,
}

impl Http {
    pub fn new(address: Address, account: Option<Account>) -> Http {
        use base64::Engine as _;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(Duration::from_secs(600))
            .timeout_write(Duration::from_secs(120))
            .build();
        let authorization =
            account.map(|a| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", a.user, a.password))));
        Http { agent, address, authorization }
    }

    /// POST `body` to database `database` with the URL parameters
    /// `params` besides the settings every request carries; the answer's
    /// text, or the server's exception.
    fn send(&self, database: &str, params: &[(&str, &str)], content_type: &str, body: &str, what: &str) -> Result<String, AnalyticsError> {
        let mut url = format!("{}?database={database}&output_format_json_quote_64bit_integers=0&max_query_size=1048576", self.address.base);
        for (name, value) in params {
            url.push_str(&format!("&{name}="));
            url.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
        }
        let mut req = self.agent.post(&url).set("Content-Type", content_type);
        if let Some(a) = &self.authorization {
            req = req.set("Authorization", a);
        }
        let _took = Took(what, std::time::Instant::now());
        match req.send_string(body) {
            Ok(resp) => resp.into_string().map_err(|e| self.error(what, e.to_string())),
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                Err(self.error(what, format!("HTTP {code}: {}", text.trim())))
            }
            Err(e) => Err(self.error(what, e.to_string())),
        }
    }

    fn error(&self, what: &str, message: String) -> AnalyticsError {
        AnalyticsError::ClickHouse { at: self.address.to_string(), what: what.to_string(), message }
    }

    /// One `T` per line of a JSONEachRow answer.
    fn parse<T: DeserializeOwned>(&self, text: &str, what: &str) -> Result<Vec<T>, AnalyticsError> {
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| self.error(what, format!("an answer that does not read: {e}: {l}"))))
            .collect()
    }

    /// Run a statement that answers nothing (DDL, INSERT ... SELECT).
    pub fn execute(&self, sql: &str, what: &str) -> Result<(), AnalyticsError> {
        self.send(&self.address.database, &[], TEXT, sql, what).map(|_| ())
    }

    /// Create the store's database (in `default`: it may not exist yet).
    pub fn create_database(&self) -> Result<(), AnalyticsError> {
        let sql = format!("CREATE DATABASE IF NOT EXISTS {}", self.address.database);
        self.send("default", &[], TEXT, &sql, "creating the database").map(|_| ())
    }

    /// Rows of a SELECT (the caller's SQL without its FORMAT), one `T` each.
    pub fn rows<T: DeserializeOwned>(&self, sql: &str, what: &str) -> Result<Vec<T>, AnalyticsError> {
        let text = self.send(&self.address.database, &[], TEXT, &format!("{sql} FORMAT JSONEachRow"), what)?;
        self.parse(&text, what)
    }

    /// Rows of a SELECT that reads an external table `keys` (ClickHouse's
    /// external data: sent as TSV beside the query, so that thousands of
    /// keys cost no SQL parsing) of `structure` (`day Int64, ...`).
    pub fn rows_with<T: DeserializeOwned>(&self, sql: &str, structure: &str, tsv: &str, what: &str) -> Result<Vec<T>, AnalyticsError> {
        const BOUNDARY: &str = "pullgate-external-data-7d1c";
        let query = format!("{sql} FORMAT JSONEachRow");
        let body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"keys\"; filename=\"keys\"\r\nContent-Type: application/octet-stream\r\n\r\n{tsv}\r\n--{BOUNDARY}--\r\n"
        );
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        let text = self.send(&self.address.database, &[("keys_structure", structure), ("query", &query)], &content_type, &body, what)?;
        self.parse(&text, what)
    }

    /// Insert rows (each serialised as one JSON object) into `table`.
    pub fn insert<T: serde::Serialize>(&self, table: &str, rows: &[T], what: &str) -> Result<(), AnalyticsError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut body = String::with_capacity(rows.len() * 160);
        for r in rows {
            body.push_str(&serde_json::to_string(r).expect("rows serialise"));
            body.push('\n');
        }
        let query = format!("INSERT INTO {table} FORMAT JSONEachRow");
        self.send(&self.address.database, &[("query", &query)], TEXT, &body, what).map(|_| ())
    }
}

/// Logs (at trace level) how long a request took, when dropped.
struct Took<'a>(&'a str, std::time::Instant);

impl Drop for Took<'_> {
    fn drop(&mut self) {
        tracing::trace!(what = self.0, ms = self.1.elapsed().as_secs_f64() * 1000.0, "clickhouse");
    }
}

/// A field of a TSV row as ClickHouse reads it: backslash, tab and newline escaped.
pub fn tsv(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n")
}

/// A ClickHouse string literal of `s`: quotes and backslashes escaped,
/// every byte outside printable ASCII as `\xHH`, so nothing a value holds
/// can end the literal or be read as anything but its bytes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for b in s.bytes() {
        match b {
            b'\'' => out.push_str("\\'"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_host_port_and_database_and_never_an_account() {
        let a = Address::parse("clickhouse://127.0.0.1:8123/pullgate").unwrap();
        assert_eq!((a.base.as_str(), a.database.as_str()), ("http://127.0.0.1:8123/", "pullgate"));
        assert_eq!(Address::parse("clickhouses://ch.example.org:8443/stats").unwrap().base, "https://ch.example.org:8443/");
        for bad in [
            "clickhouse://u:p@127.0.0.1:8123/db",
            "clickhouse://127.0.0.1/db",
            "clickhouse://127.0.0.1:8123/",
            "clickhouse://127.0.0.1:8123/a;DROP",
            "clickhouse://127.0.0.1:8123/1db",
            "http://127.0.0.1:8123/db",
            "clickhouse://h o:1/db",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
        let said = Address::parse("clickhouse://u:secret@h:1/db").unwrap_err();
        assert!(said.contains("would be logged") && !said.contains("secret"), "{said}");
    }

    #[test]
    fn tsv_fields_keep_their_bytes() {
        assert_eq!(tsv("acme/app"), "acme/app");
        assert_eq!(tsv("a\tb\nc\\d"), "a\\tb\\nc\\\\d");
    }

    #[test]
    fn quoted_values_stay_one_literal() {
        assert_eq!(quote("acme/app"), "'acme/app'");
        assert_eq!(quote("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(quote("x\n\u{e9}"), "'x\\x0A\\xC3\\xA9'");
        assert_eq!(quote("') OR 1 --"), "'\\') OR 1 --'");
    }
}
