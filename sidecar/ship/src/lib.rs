//! Log shipping: tail the access log, parse schema v1, anonymise, and ship
//! to a sink, checkpointing only what the sink acknowledged. At least once:
//! a crash re-ships from the last checkpoint; `id` is the dedupe key.
//!
//! Two threads: the reader (tail, parse, enrich, anonymise: CPU work) and the
//! sink (I/O, retries). Between them a queue of two batches: when the sink is
//! slow or down, reading pauses, and memory stays bounded. Optionally both
//! run at idle priority: nginx has the CPU first, and shipping catches up.

mod ascii;
mod batch;
mod error;
mod prepare;
mod privacy;
mod read;
pub mod rules;
pub mod sink;
mod stats;

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use batch::Batch;
pub use error::ShipError;
pub use prepare::{is_gzip, PrepareSettings, Prepared, Preparer};
pub use privacy::dnt::DntCounts;
use privacy::enrich::Enricher;
pub use privacy::TOR_GEOIP_DIR;
use privacy::{Anonymiser, Clouds, Geo, Mmdb};
pub use read::rotate::{rotate_if_due, rotated_path, Rotation};
use read::tail::{self, Follower};
use sink::dead_letters::DeadLetters;
use sink::Sink;
pub use stats::{Snapshot, Stats};
use tokio::sync::mpsc;

pub struct ShipArgs {
    pub log: PathBuf,
    /// Checkpoint, salts and dead letters live here.
    pub state: PathBuf,
    pub sink: sink::Settings,
    pub max_line: usize,
    /// Read at most this much per batch: with the two-batch queue, this bounds memory.
    pub batch_bytes: usize,
    pub poll: Duration,
    /// tor-geoipdb files for country enrichment; `None`: no country.
    pub geoip_dir: Option<PathBuf>,
    /// MaxMind DB files: country (before tor-geoipdb's), ASN, organisation.
    pub mmdb: Vec<PathBuf>,
    /// Cloud providers' published range files.
    pub cloud_ranges: Vec<PathBuf>,
    /// Run on CPU time nothing else wants (nginx first): under a load that
    /// keeps every core busy, shipping waits, and catches up afterwards.
    pub idle: bool,
}

/// With `idle`, put the calling thread (one of `what`'s) on idle priority;
/// where the system refuses, say so and go on at normal priority.
pub fn yield_to_gateway(idle: bool, what: &str) {
    if idle {
        if let Err(e) = pullgate_base::process::idle_priority() {
            tracing::warn!(error = %e, "{what} runs at normal priority: SCHED_IDLE refused");
        }
    }
}

/// The shipper's checkpoint, under its state directory (`ShipArgs::state`).
pub fn checkpoint_file(state: &std::path::Path) -> PathBuf {
    state.join("ship.checkpoint")
}

/// Batches between reader and sink.
const QUEUE: usize = 2;
/// The dead-letter file moves aside past this size (one older file is kept).
const DEAD_LETTER_BYTES: u64 = 64 << 20;

/// Start shipping on threads of its own, once the sink is open; runs until
/// the process ends. A failure later is logged and kept in `stats.failed`.
pub fn start(args: ShipArgs, stats: Arc<Stats>) -> Result<std::thread::JoinHandle<()>, ShipError> {
    stats.started_ms.store(pullgate_base::clock::now_ms(), Relaxed);
    fn io<'p>(what: &'static str, path: &'p std::path::Path) -> impl FnOnce(std::io::Error) -> ShipError + 'p {
        move |source| ShipError::Io { what, path: path.to_path_buf(), source }
    }
    std::fs::create_dir_all(&args.state).map_err(io("state directory", &args.state))?;
    let checkpoint = checkpoint_file(&args.state);
    let resume = tail::load_checkpoint(&checkpoint);
    let follower = Follower::new(args.log.clone(), args.max_line, resume).map_err(io("access log", &args.log))?;
    let salts = args.state.join("salts");
    let anon = Anonymiser::new(salts.clone()).map_err(io("salts", &salts))?;
    // Loaded before starting: a file named but unreadable is a setup error, said at once.
    let mmdb = (!args.mmdb.is_empty()).then(|| Mmdb::open(&args.mmdb)).transpose()?;
    let clouds = (!args.cloud_ranges.is_empty()).then(|| Clouds::load(&args.cloud_ranges)).transpose()?;
    let dead_path = args.state.join("dead-letters.jsonl");
    let dead = DeadLetters::open(dead_path.clone(), DEAD_LETTER_BYTES).map_err(io("dead letters", &dead_path))?;
    tracing::info!(log = %args.log.display(), resume = ?resume, "shipping");

    let (tx, rx) = mpsc::channel::<Batch>(QUEUE);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sink_stats = stats.clone();
    let settings = args.sink.clone();
    let idle = args.idle;
    let sink_thread = std::thread::Builder::new()
        .name("ship-sink".into())
        .spawn(move || {
            yield_to_gateway(idle, "shipping");
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return drop(ready_tx.send(Err(ShipError::Thread(e.to_string())))),
            };
            rt.block_on(async move {
                let sink = match Sink::open(settings).await {
                    Ok(s) => s,
                    Err(e) => return drop(ready_tx.send(Err(e))),
                };
                let _ = ready_tx.send(Ok(()));
                if let Err(e) = deliver_all(rx, sink, dead, checkpoint, &sink_stats).await {
                    fail(&sink_stats, format!("the sink stage stopped: {e}"));
                }
            })
        })
        .map_err(|e| ShipError::Thread(e.to_string()))?;
    ready_rx.recv().map_err(|_| ShipError::Thread("the sink thread ended".into()))??;
    let reader_stats = stats.clone();
    std::thread::Builder::new()
        .name("ship-read".into())
        .spawn(move || {
            yield_to_gateway(args.idle, "shipping");
            // Loaded here, not before: a quarter second that start-up need not wait for.
            let geo = args.geoip_dir.as_ref().and_then(|dir| match Geo::load_tor(dir) {
                Ok(g) => Some(g),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "no country enrichment (install tor-geoipdb)");
                    None
                }
            });
            let enricher = Enricher { anon, geo, mmdb, clouds, max_line: args.max_line, dnt: Default::default() };
            if let Err(e) = read_all(follower, enricher, tx, &args, &reader_stats) {
                fail(&reader_stats, format!("reading {} stopped: {e}", args.log.display()));
            }
            let _ = sink_thread.join();
        })
        .map_err(|e| ShipError::Thread(e.to_string()))
}

fn fail(stats: &Stats, why: String) {
    tracing::error!("shipping stopped: {why}");
    *stats.failed.lock().expect("stats lock") = Some(why);
}

/// The reader: poll the log, prepare batches, queue them; wait while the queue is full.
fn read_all(
    mut follower: Follower,
    mut enricher: Enricher,
    tx: mpsc::Sender<Batch>,
    args: &ShipArgs,
    stats: &Stats,
) -> std::io::Result<()> {
    loop {
        let chunk = follower.poll(args.batch_bytes)?;
        stats.unread.store(chunk.unread, Relaxed);
        if chunk.lines.is_empty() && chunk.too_long.is_empty() {
            // Mid-rotation, the new file fills while the old one is awaited.
            std::thread::sleep(if follower.rotating() { args.poll.min(Duration::from_millis(20)) } else { args.poll });
            continue;
        }
        let mut batch = enricher.batch(chunk)?;
        stats.lines_read.fetch_add(batch.lines, Relaxed);
        stats.bytes_read.fetch_add(batch.bytes, Relaxed);
        if !batch.throttled.is_empty() {
            let mut t = stats.throttled.lock().expect("stats lock");
            for (route, n) in std::mem::take(&mut batch.throttled) {
                *t.entry(route).or_default() += n;
            }
        }
        loop {
            match tx.try_send(batch) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Full(b)) => {
                    // Backpressure: the log keeps growing; say by how much.
                    batch = b;
                    std::thread::sleep(Duration::from_millis(20));
                    stats.unread.store(follower.unread(), Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
            }
        }
    }
}

/// How often, at most, the checkpoint moves while batches keep coming.
/// Each move is two fsyncs, and on ext4 (`data=ordered`) each also waits
/// for the data nginx appended to the log meanwhile: saved per batch, some
/// 70 a second under load, they cost a saturated gateway a tenth of its
/// throughput. A crash re-ships at most this much more (ids dedupe).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The sink stage: deliver each batch, dead-letter what is refused, then
/// move the checkpoint past it: at most every [`CHECKPOINT_EVERY`], and at
/// once when no batch follows within that time.
async fn deliver_all(
    mut rx: mpsc::Receiver<Batch>,
    mut sink: Sink,
    mut dead: DeadLetters,
    checkpoint: PathBuf,
    stats: &Stats,
) -> std::io::Result<()> {
    let mut unsaved: Option<tail::Position> = None;
    let mut saved_at = std::time::Instant::now();
    loop {
        let next = match &unsaved {
            None => rx.recv().await,
            // None when the time is up, as when the flow ends.
            Some(_) => tokio::time::timeout(CHECKPOINT_EVERY.saturating_sub(saved_at.elapsed()), rx.recv()).await.unwrap_or(None),
        };
        let paused = next.is_none();
        if let Some(mut batch) = next {
            dead.add(&batch.dead)?;
            let refused = sink.deliver(&batch.events, stats).await;
            dead.add(&refused)?;
            // Acknowledged: the checkpoint may move past these lines.
            if let Some(pos) = batch.position.take() {
                unsaved = Some(pos);
            }
            stats.dead_unparsed.fetch_add(batch.dead.len() as u64, Relaxed);
            stats.dead_refused.fetch_add(refused.len() as u64, Relaxed);
            stats.shipped.fetch_add((batch.events.len() - refused.len()) as u64, Relaxed);
            stats.bytes_acked.fetch_add(batch.bytes, Relaxed);
            if let Some(newest) = batch.events.iter().map(|e| e.ts_ms.max(0) as u64).max() {
                stats.newest_acked_ms.fetch_max(newest, Relaxed);
            }
        }
        if paused || saved_at.elapsed() >= CHECKPOINT_EVERY {
            if let Some(pos) = unsaved.take() {
                tail::save_checkpoint(&checkpoint, &pos)?;
                saved_at = std::time::Instant::now();
            }
        }
        if paused && rx.is_closed() && rx.is_empty() {
            return Ok(());
        }
    }
}

/// `pullgate ship`: ship until killed, with a summary in the log every 10 s.
pub fn run(args: ShipArgs) -> Result<(), ShipError> {
    let stats = Arc::new(Stats::default());
    let shipping = start(args, stats.clone())?;
    loop {
        std::thread::sleep(Duration::from_secs(10));
        let s = stats.snapshot();
        if let Some(why) = s.failed {
            return Err(ShipError::Stopped(why));
        }
        if shipping.is_finished() {
            return Err(ShipError::Stopped("the reader thread ended".into()));
        }
        tracing::info!(
            lines = s.lines_read,
            shipped = s.shipped,
            dead_lettered = s.dead_lettered_unparsed + s.dead_lettered_refused,
            batches = s.batches,
            retries = s.retries,
            lag_bytes = s.lag_bytes,
            "shipping"
        );
    }
}
