//! `pullgate analytics ingest` and `pullgate report`: flags to the
//! analytics crate's settings and queries, and the three output formats.

use std::path::Path;
use std::time::Duration;

use pullgate_analytics::{ingest, Dim, Granularity, Query, Report, Settings, Sqlite};

use crate::cli::{FormatArg, GranularityArg, ReportArgs, StoreArgs};
use crate::error::CliError;

fn open(store: &StoreArgs, state_dir: &Path) -> Result<Sqlite, CliError> {
    let db = store.db.clone().unwrap_or_else(|| state_dir.join("analytics.db"));
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(CliError::io(format!("{}", dir.display())))?;
    }
    Ok(Sqlite::open(&db, Settings { window_ms: i64::from(store.window_s) * 1000 })?)
}

pub fn ingest_cmd(sink_dir: &Path, follow: bool, poll: Duration, store: &StoreArgs, state_dir: &Path) -> Result<(), CliError> {
    let mut db = open(store, state_dir)?;
    loop {
        let p = ingest::local_sink(&mut db, sink_dir)?;
        if p.events > 0 || !follow {
            println!("ingested {} events from {}: {} new, {} bad lines", p.events, sink_dir.display(), p.new, p.bad_lines);
        }
        if !follow {
            return Ok(());
        }
        std::thread::sleep(poll);
    }
}

pub fn report_cmd(args: &ReportArgs, state_dir: &Path) -> Result<(), CliError> {
    let now = pullgate_base::clock::now_ms() as i64;
    let time = |s: &str| pullgate_analytics::time::parse(s, now).map_err(CliError::Usage);
    let by = args
        .by
        .iter()
        .map(|d| {
            Dim::parse(d).ok_or_else(|| {
                let all: Vec<&str> = Dim::ALL.iter().map(|(n, _)| *n).collect();
                CliError::Usage(format!("--by {d}: not a dimension; expected {}", all.join(", ")))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let query = Query {
        since_ms: time(&args.since)?,
        until_ms: time(&args.until)?,
        granularity: match args.granularity {
            GranularityArg::Hour => Granularity::Hour,
            GranularityArg::Day => Granularity::Day,
            GranularityArg::Week => Granularity::Week,
            GranularityArg::Month => Granularity::Month,
            GranularityArg::Total => Granularity::Total,
        },
        by,
        route: args.route.clone(),
        repository: args.repository.clone(),
        client: args.client.clone(),
        weekday: args.weekday.clone(),
        top: args.top,
    };
    use pullgate_analytics::Store;
    let report = open(&args.store, state_dir)?.report(&query)?;
    print!("{}", render(&report, args.format));
    Ok(())
}

const COUNTERS: [&str; 6] = ["requests", "pulls", "version_checks", "downloads", "unique_origins", "unique_ips"];

fn counters(c: &pullgate_analytics::Counters) -> [u64; 6] {
    [c.requests, c.pulls, c.version_checks, c.downloads, c.unique_origins, c.unique_ips]
}

fn render(r: &Report, format: FormatArg) -> String {
    match format {
        FormatArg::Json => serde_json::to_string_pretty(r).expect("serialises") + "\n",
        FormatArg::Csv => {
            let dims: Vec<&str> = r.rows.first().map(|row| row.dims.0.iter().map(|(k, _)| k.as_str()).collect()).unwrap_or_default();
            let mut out = dims.iter().chain(COUNTERS.iter()).copied().collect::<Vec<_>>().join(",") + "\n";
            for row in &r.rows {
                let mut cells: Vec<String> = row.dims.0.iter().map(|(_, v)| csv(v)).collect();
                cells.extend(counters(&row.counters).iter().map(u64::to_string));
                out.push_str(&(cells.join(",") + "\n"));
            }
            out
        }
        FormatArg::Table => {
            let dims: Vec<String> = r.rows.first().map(|row| row.dims.0.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
            let head: Vec<String> = dims.iter().cloned().chain(COUNTERS.iter().map(|c| c.to_string())).collect();
            let mut lines: Vec<Vec<String>> = vec![head];
            for row in &r.rows {
                let mut cells: Vec<String> = row.dims.0.iter().map(|(_, v)| if v.is_empty() { "-".into() } else { v.clone() }).collect();
                cells.extend(counters(&row.counters).iter().map(u64::to_string));
                lines.push(cells);
            }
            let mut total: Vec<String> =
                dims.iter().enumerate().map(|(i, _)| if i == 0 { "total".into() } else { String::new() }).collect();
            total.extend(counters(&r.totals).iter().map(u64::to_string));
            lines.push(total);
            let widths: Vec<usize> = (0..lines[0].len()).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
            let mut out = String::new();
            for l in &lines {
                let cells: Vec<String> = l
                    .iter()
                    .enumerate()
                    .map(|(i, c)| if i < dims.len() { format!("{c:<w$}", w = widths[i]) } else { format!("{c:>w$}", w = widths[i]) })
                    .collect();
                out.push_str(cells.join("  ").trim_end());
                out.push('\n');
            }
            out
        }
    }
}

/// A CSV field, quoted when it must be.
fn csv(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}
