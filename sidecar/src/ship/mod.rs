//! Log shipping: tail the access log, parse schema v1, anonymise, and ship
//! to a sink, checkpointing only what the sink acknowledged. At least once:
//! a crash re-ships from the last checkpoint; `id` is the dedupe key.

pub mod anon;
pub mod geo;
pub mod local_sink;
pub mod record;
pub mod tail;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anon::Anonymiser;
use local_sink::{DeadLetters, LocalSink};
use record::Record;
use tail::Follower;

pub struct ShipArgs {
    pub log: PathBuf,
    /// Checkpoint, salts and dead letters live here.
    pub state: PathBuf,
    /// The local sink's directory; `None`: discard events (benchmarks).
    pub sink_dir: Option<PathBuf>,
    pub max_line: usize,
    /// Read at most this much per batch: memory stays bounded, and a slow
    /// sink slows reading down.
    pub batch_bytes: usize,
    pub poll: Duration,
    pub sink_file_bytes: u64,
    /// tor-geoipdb files for country enrichment; `None`: no country.
    pub geoip_dir: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub lines: u64,
    pub shipped: u64,
    pub dead: u64,
    pub bytes: u64,
    pub batches: u64,
}

/// Ship until killed.
pub fn run(args: ShipArgs) -> std::io::Result<()> {
    std::fs::create_dir_all(&args.state)?;
    let checkpoint = args.state.join("ship.checkpoint");
    let resume = tail::load_checkpoint(&checkpoint);
    let mut follower = Follower::new(args.log.clone(), args.max_line, resume)?;
    let mut anon = Anonymiser::new(args.state.join("salts"))?;
    let mut sink = match &args.sink_dir {
        Some(dir) => Some(LocalSink::open(dir.clone(), args.sink_file_bytes)?),
        None => None,
    };
    let mut dead = DeadLetters::open(args.state.join("dead-letters.jsonl"))?;
    let geo = match &args.geoip_dir {
        Some(dir) => match geo::Geo::load_tor(dir) {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "no country enrichment (install tor-geoipdb)");
                None
            }
        },
        None => None,
    };
    let mut c = Counters::default();
    let mut last_report = Instant::now();
    let mut dead_synced = 0;
    tracing::info!(log = %args.log.display(), sink = ?args.sink_dir, resume = ?resume, "shipping");
    loop {
        let chunk = follower.poll(args.batch_bytes)?;
        let idle = chunk.lines.is_empty() && chunk.too_long.is_empty();
        let mut batch = Vec::with_capacity(chunk.lines.len());
        for line in &chunk.lines {
            c.lines += 1;
            c.bytes += line.len() as u64 + 1;
            match Record::parse(line) {
                Ok(r) => {
                    let ts = r.ts_ms().expect("checked by parse");
                    // Enrich with the raw address, which the event then drops.
                    let country = geo.as_ref().and_then(|g| g.country(&r.ip));
                    let mut event = anon.event(r, ts)?;
                    event.country = country;
                    let mut out = Vec::with_capacity(line.len() + 64);
                    serde_json::to_writer(&mut out, &event).expect("serialises");
                    batch.push(out);
                }
                Err(e) => {
                    dead.add(&e.0, line, line.len() as u64)?;
                    c.dead += 1;
                }
            }
        }
        for (sample, len) in &chunk.too_long {
            c.lines += 1;
            c.bytes += len + 1;
            dead.add(&format!("line of {len} bytes is over the bound of {}", args.max_line), sample, *len)?;
            c.dead += 1;
        }
        if !idle {
            if c.dead > dead_synced {
                dead.sync()?;
                dead_synced = c.dead;
            }
            if let Some(sink) = &mut sink {
                sink.write(&batch)?;
            }
            c.shipped += batch.len() as u64;
            c.batches += 1;
        }
        // Acknowledged: the checkpoint may move past these lines.
        if let Some(pos) = chunk.position {
            if !idle {
                tail::save_checkpoint(&checkpoint, &pos)?;
            }
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            tracing::info!(lines = c.lines, shipped = c.shipped, dead_lettered = c.dead, bytes = c.bytes, batches = c.batches, "shipping");
            last_report = Instant::now();
        }
        if idle {
            std::thread::sleep(args.poll);
        }
    }
}
