//! The checks behind the fuzz targets (`fuzz_targets/*.rs` are one line
//! each), so that `tests/replay.rs` runs every kept input through exactly
//! the same code on stable, in `tests/run`.
//!
//! Each check panics on what must never happen: a panic in the code under
//! test, or a broken property.

pub mod nginx;
mod token;

pub use token::token_scope;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use pullgate_config::Target;

/// routes.yaml: validation never panics (positions included); the
/// daemon's incremental re-read (which keeps the last input's routes) says
/// exactly what a whole-file read says; and every accepted file renders an include set in which every directive is one the
/// templates write, every map entry is an entry, and every Lua block is a
/// template's code with only its string values changed.
pub fn routes(data: &[u8]) {
    static REPARSER: OnceLock<Mutex<pullgate_config::Reparser>> = OnceLock::new();
    let Ok(src) = std::str::from_utf8(data) else { return };
    let whole = pullgate_config::parse(src, "routes.yaml");
    let mut reparser = REPARSER.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let again = pullgate_config::reparse_with(src, "routes.yaml", &Default::default(), &mut reparser);
    assert_eq!(format!("{again:?}"), format!("{whole:?}"), "the incremental read differs\n--- routes.yaml\n{src}");
    let Ok(config) = whole else { return };
    let credentials: BTreeMap<String, String> = config
        .routes
        .iter()
        .filter(|r| matches!(&r.target, Target::Oci(o) if o.credentials.is_some()))
        .map(|r| (r.name.clone(), "dXNlcjp0b2tlbg==".to_string()))
        .collect();
    let options = pullgate_render::Options {
        control_socket: Some("/run/pullgate/control.sock"),
        dir: Some("/etc/pullgate"),
        indexes: None,
        credentials: Some(&credentials),
    };
    let rendered = pullgate_render::render_with(&config, options).expect("an accepted routes.yaml renders");
    for (name, text) in rendered.files.iter().filter(|(n, _)| n.ends_with(".conf")) {
        if let Err(e) = nginx::Shape::of_templates().check(text) {
            panic!("{name} is not the templates' shape: {e}\n--- routes.yaml\n{src}\n--- {name}\n{text}");
        }
    }
    if let Some(table) = &rendered.table {
        // The Lua hooks split the table on tabs and line ends: none in a field.
        let text = table.text(0);
        for line in text.lines().skip(1) {
            assert_eq!(line.split('\t').count(), 10, "a route table line has 10 fields: {line:?}");
        }
    }
}

/// The shipper's line path (parse, enrich, anonymise): every line becomes
/// an event or a dead letter, no event holds the line's raw address, and
/// every event reads back as the analytics store reads it.
pub fn access_log(data: &[u8]) {
    static PREPARER: OnceLock<Mutex<pullgate_ship::Preparer>> = OnceLock::new();
    let preparer = PREPARER.get_or_init(|| {
        let state = std::env::temp_dir().join(format!("pullgate-fuzz-{}", std::process::id()));
        let settings =
            pullgate_ship::PrepareSettings { state, geoip_dir: None, mmdb: Vec::new(), cloud_ranges: Vec::new(), max_line: 16384 };
        Mutex::new(pullgate_ship::Preparer::open(&settings).expect("a preparer in a scratch directory"))
    });
    let lines: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let raw_ips: Vec<String> = lines.iter().filter_map(|l| raw_ip(l)).collect();
    let n = lines.len();
    let prepared = preparer.lock().unwrap_or_else(|e| e.into_inner()).lines(lines).expect("salts in a scratch directory");
    assert_eq!(prepared.events.len() + prepared.dead.len(), n, "every line is an event or a dead letter");
    for event in &prepared.events {
        for ip in &raw_ips {
            let field = format!("\"ip\":\"{ip}\"");
            assert!(!event.contains(&field), "a raw address was shipped: {event}");
        }
        if let Err(e) = pullgate_analytics::Shipped::parse(event) {
            panic!("the store cannot read a shipped event ({e}): {event}");
        }
    }
}

/// The `ip` of a line, when it is a real address.
fn raw_ip(line: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let ip = v.get("ip")?.as_str()?;
    ip.parse::<std::net::IpAddr>().is_ok().then(|| ip.to_string())
}

/// The user-agent parser: never panics, is deterministic, and keeps every
/// field it reports within the agent's own text (or a fixed family name).
pub fn user_agent(data: &[u8]) {
    let Ok(ua) = std::str::from_utf8(data) else { return };
    let client = pullgate_analytics::ua::parse(ua);
    assert_eq!(client, pullgate_analytics::ua::parse(ua), "parsing is deterministic");
    for field in [&client.version, &client.os, &client.arch] {
        assert!(field.len() <= ua.len() + 16, "a field longer than the agent: {field:?} from {ua:?}");
    }
}

/// The dashboard's query (what any visitor sends) and the report's time
/// arguments: never panic; an accepted view has a non-empty range.
pub fn report_filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let now_ms = 1_796_000_000_000;
    let _ = pullgate_analytics::time::parse(text, now_ms);
    let pairs: Vec<(String, String)> = text
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect();
    if let Ok(view) = pullgate_dashboard::params::View::parse(&pairs, now_ms) {
        assert!(view.since_ms < view.until_ms, "an empty range was accepted from {text:?}");
    }
}
