//! `pullgate analytics ingest` and `pullgate report`: flags to the
//! analytics crate's settings and queries, and the three output formats.

use std::path::Path;
use std::time::Duration;

use pullgate_analytics::{
    ingest, ClickHouse, ClickHouseAccount, ClickHouseAddress, Dim, Granularity, Query, Report, Settings, Sqlite, Store,
};

use crate::cli::{EnrichOpts, FormatArg, GranularityArg, ReportArgs, StoreArgs};
use crate::error::CliError;

/// The store the flags name: ClickHouse with `--store`, else the SQLite file.
pub fn open(store: &StoreArgs, state_dir: &Path) -> Result<Box<dyn Store + Send>, CliError> {
    let settings = Settings { window_ms: i64::from(store.window_s) * 1000, raw_days: store.raw_days };
    if let Some(url) = &store.store {
        let address = ClickHouseAddress::parse(url).map_err(|e| CliError::Usage(format!("--store {e}")))?;
        let account = match (&store.store_account_file, &store.account_env) {
            (Some(file), _) => Some(account_file(file)?),
            (None, Some((user, password))) => Some(ClickHouseAccount { user: user.clone(), password: password.clone() }),
            (None, None) => None,
        };
        return Ok(Box::new(ClickHouse::open(address, account, settings)?));
    }
    let db = store.db.clone().unwrap_or_else(|| state_dir.join("analytics.db"));
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(CliError::io(format!("{}", dir.display())))?;
    }
    Ok(Box::new(Sqlite::open(&db, settings)?))
}

/// USER:PASSWORD from a file; what is wrong with it is said, never its text.
fn account_file(file: &Path) -> Result<ClickHouseAccount, CliError> {
    let text = std::fs::read_to_string(file).map_err(CliError::io(format!("the store account file {}", file.display())))?;
    account(&text, &format!("the store account file {}", file.display()))
}

/// A store account: one line, `USER:PASSWORD` (a line end after it is
/// dropped), from a file or a variable that `from` names when it is not.
pub fn account(text: &str, from: &str) -> Result<ClickHouseAccount, CliError> {
    let line = text.trim_end_matches(['\n', '\r']);
    match line.split_once(':') {
        Some((user, password)) if !user.is_empty() && !line.contains('\n') => {
            Ok(ClickHouseAccount { user: user.to_string(), password: password.to_string() })
        }
        _ => Err(CliError::Usage(format!("{from} must hold one line, USER:PASSWORD"))),
    }
}

/// The node a local sink's cursor is kept under: its host name in a shared
/// (ClickHouse) store, where every node's sink may have the same path;
/// none in a store of its own.
fn sink_node(store: &StoreArgs) -> Option<String> {
    store.store.as_ref().and(store.node.clone())
}

pub fn ingest_cmd(sink_dir: &Path, follow: bool, poll: Duration, store: &StoreArgs, state_dir: &Path) -> Result<(), CliError> {
    let mut db = open(store, state_dir)?;
    let node = sink_node(store);
    loop {
        let p = ingest::local_sink(db.as_mut(), sink_dir, node.as_deref())?;
        if p.events > 0 || !follow {
            println!("ingested {} events from {}: {} new, {} bad lines", p.events, sink_dir.display(), p.new, p.bad_lines);
        }
        if !follow {
            return Ok(db.settle()?);
        }
        std::thread::sleep(poll);
    }
}

/// `pullgate analytics ingest --cloudwatch-group`.
pub fn ingest_cloudwatch_cmd(
    cw: &pullgate_analytics::cloudwatch::CloudWatchSettings,
    region: Option<&str>,
    endpoint: Option<&str>,
    follow: bool,
    poll: Duration,
    store: &StoreArgs,
    state_dir: &Path,
) -> Result<(), CliError> {
    let mut db = open(store, state_dir)?;
    let rt = crate::error::runtime()?;
    rt.block_on(async {
        let client = pullgate_ship::sink::cloudwatch::client(region, endpoint, Duration::from_secs(10)).await?;
        loop {
            let now = pullgate_base::clock::now_ms() as i64;
            let p = pullgate_analytics::cloudwatch::ingest(&client, db.as_mut(), cw, now).await?;
            if p.events > 0 || !follow {
                println!("ingested {} events from CloudWatch Logs group {}: {} new, {} bad lines", p.events, cw.group, p.new, p.bad_lines);
            }
            if !follow {
                return Ok(db.settle()?);
            }
            tokio::time::sleep(poll).await;
        }
    })
}

/// Where `up` and `run` read what they ship.
pub enum Follow {
    Local(std::path::PathBuf),
    /// The group every node ships to: the store counts all of them.
    CloudWatch {
        group: String,
        region: Option<String>,
        endpoint: Option<String>,
    },
}

/// `up` and `run`: ingest what is shipped into STATE_DIR/analytics.db on a
/// thread of its own, every 2 s from the local sink, every 10 s from
/// CloudWatch Logs (starting an hour back the first time). The store opens
/// first: a broken one is said at start.
/// With `idle`, the thread runs at idle priority, as shipping does.
pub fn follow_in_background(from: Follow, store: &StoreArgs, state_dir: &Path, idle: bool) -> Result<(), CliError> {
    let mut db = open(store, state_dir)?;
    let node = sink_node(store);
    // Each way's loop, made here so that what it needs fails at start.
    let run: Box<dyn FnOnce(&mut Warn) + Send> = match from {
        Follow::Local(sink) => Box::new(move |warn| {
            tracing::info!(sink = %sink.display(), "ingesting shipped events into the analytics store");
            loop {
                if let Err(e) = ingest::local_sink(db.as_mut(), &sink, node.as_deref()) {
                    warn.say(&e);
                }
                std::thread::sleep(Duration::from_secs(2));
            }
        }),
        Follow::CloudWatch { group, region, endpoint } => {
            let rt = crate::error::runtime()?;
            Box::new(move |warn| {
                tracing::info!(%group, "ingesting CloudWatch Logs into the analytics store");
                rt.block_on(async {
                    let client = loop {
                        match pullgate_ship::sink::cloudwatch::client(region.as_deref(), endpoint.as_deref(), Duration::from_secs(10)).await
                        {
                            Ok(c) => break c,
                            Err(e) => warn.say(&e),
                        }
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    };
                    let now = pullgate_base::clock::now_ms() as i64;
                    let cw = pullgate_analytics::cloudwatch::CloudWatchSettings {
                        group,
                        stream_prefix: None,
                        start_ms: now - 3_600_000,
                        overlap_ms: 300_000,
                        window_ms: 3_600_000,
                    };
                    loop {
                        let now = pullgate_base::clock::now_ms() as i64;
                        if let Err(e) = pullgate_analytics::cloudwatch::ingest(&client, db.as_mut(), &cw, now).await {
                            warn.say(&e);
                        }
                        tokio::time::sleep(Duration::from_secs(10)).await;
                    }
                })
            })
        }
    };
    std::thread::Builder::new()
        .name("analytics".into())
        .spawn(move || {
            pullgate_ship::yield_to_gateway(idle, "the analytics ingest");
            run(&mut Warn::default())
        })
        .map_err(CliError::io("the analytics thread"))?;
    Ok(())
}

/// A failing ingest: the same error said at most once a minute, a
/// different one at once (the first error of a start, such as a log group
/// not created yet, must not hide the next).
#[derive(Default)]
struct Warn {
    last: Option<(std::time::Instant, String)>,
}

impl Warn {
    fn say(&mut self, e: &dyn std::fmt::Display) {
        let text = e.to_string();
        if self.due(&text, std::time::Instant::now()) {
            tracing::warn!(error = %text, "analytics ingest failed; trying again");
        }
    }

    /// Whether `text`, failing at `now`, is to be said; if so, it is the last said.
    fn due(&mut self, text: &str, now: std::time::Instant) -> bool {
        let due = self.last.as_ref().is_none_or(|(t, said)| said != text || now.duration_since(*t) > Duration::from_secs(60));
        if due {
            self.last = Some((now, text.to_string()));
        }
        due
    }
}

/// Lines per batch (one store transaction, one cursor move).
const IMPORT_BATCH: usize = 20_000;

/// A batch of one file, prepared: for the store, with where it ends.
struct Prepared {
    source: String,
    /// Lines of the file up to the end of this batch.
    number: u64,
    lines: u64,
    events: Vec<pullgate_analytics::Shipped>,
    dead: u64,
    first_dead: Option<String>,
}

/// `pullgate analytics import`: raw logs through the shipper's preparation
/// into the store. Two stages on two threads: reading and preparing (parse,
/// enrich, anonymise) while the store sessionises and writes the batch before.
pub fn import_cmd(files: &[std::path::PathBuf], enrich: &EnrichOpts, store: &StoreArgs, state_dir: &Path) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let mut db = open(store, state_dir)?;
    let prep = pullgate_ship::Preparer::open(&enrich.prepare(state_dir.join("ship")))?;
    let size = |f: &Path| std::fs::metadata(f).map(|m| m.len()).map_err(CliError::io(format!("{}", f.display())));
    let total: u64 = files.iter().map(|f| size(f)).sum::<Result<u64, _>>()?;
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(total).with_style(
            indicatif::ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta} {msg}")
                .expect("a valid template"),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    // Each file resumes after the lines its cursor covers.
    let mut plan = Vec::new();
    for file in files {
        let source = format!("import:{}", file.canonicalize().map_err(CliError::io(format!("{}", file.display())))?.display());
        let skip: u64 = db.cursor(&source)?.and_then(|c| c.parse().ok()).unwrap_or(0);
        plan.push((file.clone(), source, skip));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Prepared>(1);
    let reader_bar = bar.clone();
    let reader = std::thread::Builder::new()
        .name("prepare".into())
        .spawn(move || -> Result<pullgate_ship::Preparer, CliError> {
            let mut prep = prep;
            for (file, source, skip) in plan {
                read_file(&file, source, skip, &mut prep, &reader_bar, &tx)?;
            }
            Ok(prep)
        })
        .map_err(CliError::io("the preparing thread"))?;
    let (mut lines, mut events, mut new, mut dead) = (0u64, 0u64, 0u64, 0u64);
    let mut stored: Result<(), CliError> = Ok(());
    let mut warned = std::collections::HashSet::new();
    for batch in rx {
        // After a store error, drain (the reader stops at its next send).
        if stored.is_err() {
            break;
        }
        stored = db
            .ingest(&batch.events, &batch.source, &batch.number.to_string())
            .map(|done| {
                (lines, events, new, dead) = (lines + batch.lines, events + done.events, new + done.new, dead + batch.dead);
                if let Some(why) = batch.first_dead.as_ref().filter(|_| warned.insert(batch.source.clone())) {
                    tracing::warn!(source = %batch.source, first = %why, "lines that are not schema-v1 access log lines were skipped");
                }
            })
            .map_err(CliError::from);
    }
    let prep = reader.join().map_err(|_| CliError::Usage("the preparing thread panicked".into()))?;
    stored?;
    let prep = prep?;
    bar.set_message("aggregating");
    db.settle()?;
    bar.finish_and_clear();
    prep.finish(pullgate_base::clock::now_ms());
    println!(
        "imported {} files: {lines} lines, {events} events ({new} new), {dead} dead letters, {:.1} s",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Read one file (gzip or not) past its first `skip` lines, in prepared batches.
fn read_file(
    file: &Path,
    source: String,
    skip: u64,
    prep: &mut pullgate_ship::Preparer,
    bar: &indicatif::ProgressBar,
    out: &std::sync::mpsc::SyncSender<Prepared>,
) -> Result<(), CliError> {
    use std::io::{BufRead, BufReader};

    let io = |f: &Path| CliError::io(format!("{}", f.display()));
    bar.set_message(file.display().to_string());
    let raw = bar.wrap_read(std::fs::File::open(file).map_err(io(file))?);
    let mut reader: Box<dyn BufRead> = if pullgate_ship::is_gzip(file).map_err(io(file))? {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(raw)))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, raw))
    };
    let mut number = 0u64;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(IMPORT_BATCH);
    let mut send = |batch: &mut Vec<Vec<u8>>, number: u64| -> Result<bool, CliError> {
        let n = batch.len() as u64;
        let prepared = prep.lines(std::mem::take(batch))?;
        let events = prepared.events.iter().filter_map(|e| pullgate_analytics::Shipped::parse(e).ok()).collect();
        let p = Prepared {
            source: source.clone(),
            number,
            lines: n,
            events,
            dead: prepared.dead.len() as u64,
            first_dead: prepared.dead.into_iter().next(),
        };
        // The store side has gone (it failed): stop reading.
        Ok(out.send(p).is_ok())
    };
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line).map_err(io(file))?;
        if n == 0 {
            break;
        }
        number += 1;
        if number <= skip {
            continue;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        batch.push(line);
        if batch.len() >= IMPORT_BATCH && !send(&mut batch, number)? {
            return Ok(());
        }
    }
    send(&mut batch, number)?;
    Ok(())
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
    let (granularity, by) = if args.format == FormatArg::DockerhubCsv {
        (GranularityArg::Hour, vec![Dim::Repository, Dim::Tag, Dim::Digest])
    } else {
        (args.granularity, by)
    };
    let query = Query {
        since_ms: time(&args.since)?,
        until_ms: time(&args.until)?,
        granularity: match granularity {
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
        filters: Vec::new(),
    };
    let report = open(&args.store, state_dir)?.report(&query)?;
    print!("{}", render(&report, args.format));
    Ok(())
}

use pullgate_analytics::query::{csv_field as csv, COUNTERS};

fn render(r: &Report, format: FormatArg) -> String {
    match format {
        FormatArg::DockerhubCsv => {
            let mut out = String::from("datehour,repository,tag,digest,version_checks,pulls\n");
            for row in &r.rows {
                let d = |k: &str| row.dims.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("");
                // 2026-11-01T13:00Z -> 2026-11-01 13:00:00
                let hour = d("period").replace('T', " ").replace('Z', ":00");
                out.push_str(&format!(
                    "{hour},{},{},{},{},{}\n",
                    csv(d("repository")),
                    csv(d("tag")),
                    csv(d("digest")),
                    row.counters.version_checks,
                    row.counters.pulls
                ));
            }
            out
        }
        FormatArg::Json => serde_json::to_string_pretty(r).expect("serialises") + "\n",
        FormatArg::Csv => r.to_csv(),
        FormatArg::Table => {
            let dims: Vec<String> = r.rows.first().map(|row| row.dims.0.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
            let head: Vec<String> = dims.iter().cloned().chain(COUNTERS.iter().map(|c| c.to_string())).collect();
            let mut lines: Vec<Vec<String>> = vec![head];
            for row in &r.rows {
                let mut cells: Vec<String> = row.dims.0.iter().map(|(_, v)| if v.is_empty() { "-".into() } else { v.clone() }).collect();
                cells.extend(row.counters.values().iter().map(u64::to_string));
                lines.push(cells);
            }
            let mut total: Vec<String> =
                dims.iter().enumerate().map(|(i, _)| if i == 0 { "total".into() } else { String::new() }).collect();
            total.extend(r.totals.values().iter().map(u64::to_string));
            lines.push(total);
            let widths: Vec<usize> = (0..lines[0].len()).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
            let mut out = String::new();
            let tail = r.concentration.describe().map(|d| format!("concentration: {d}\n")).unwrap_or_default();
            for l in &lines {
                let cells: Vec<String> = l
                    .iter()
                    .enumerate()
                    .map(|(i, c)| if i < dims.len() { format!("{c:<w$}", w = widths[i]) } else { format!("{c:>w$}", w = widths[i]) })
                    .collect();
                out.push_str(cells.join("  ").trim_end());
                out.push('\n');
            }
            out + &tail
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Warn;
    use std::time::{Duration, Instant};

    #[test]
    fn a_repeated_error_is_said_once_a_minute_and_a_new_one_at_once() {
        let (mut w, t0) = (Warn::default(), Instant::now());
        assert!(w.due("no group", t0));
        assert!(!w.due("no group", t0 + Duration::from_secs(30)));
        assert!(w.due("the store refused", t0 + Duration::from_secs(31)));
        assert!(!w.due("the store refused", t0 + Duration::from_secs(90)));
        assert!(w.due("the store refused", t0 + Duration::from_secs(92)));
    }
}
