//! Where events go: CloudWatch Logs, the local sink, or nowhere (benchmarks).
//! Delivering returns only once the sink has the events: that is what lets
//! the checkpoint move.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

pub mod cloudwatch;
pub(crate) mod dead_letters;
mod local;
mod retry;

use cloudwatch::CloudWatch;
use local::LocalSink;
use retry::Retries;

use crate::batch::{DeadLetter, Prepared};
use crate::error::ShipError;
use crate::stats::Stats;

#[derive(Debug, Clone)]
pub enum Settings {
    /// Discard events (for measuring the shipper itself).
    Null,
    /// JSON lines in `dir`, a new file past `file_bytes`.
    Local {
        dir: PathBuf,
        file_bytes: u64,
    },
    CloudWatch(cloudwatch::Settings),
}

pub enum Sink {
    Null,
    Local(LocalSink, Retries),
    CloudWatch(CloudWatch),
}

impl Sink {
    pub async fn open(settings: Settings) -> Result<Sink, ShipError> {
        Ok(match settings {
            Settings::Null => Sink::Null,
            Settings::Local { dir, file_bytes } => {
                tracing::info!(dir = %dir.display(), "shipping to the local sink");
                let sink =
                    LocalSink::open(dir.clone(), file_bytes).map_err(|source| ShipError::Io { what: "local sink", path: dir, source })?;
                Sink::Local(sink, Retries::new("local", Duration::from_secs(10)))
            }
            Settings::CloudWatch(s) => Sink::CloudWatch(CloudWatch::connect(s).await?),
        })
    }

    /// Deliver `events`; the ones the sink can never take come back as dead letters.
    pub async fn deliver(&mut self, events: &[Prepared], stats: &Stats) -> Vec<DeadLetter> {
        match self {
            Sink::Null => {
                stats.batches.fetch_add(u64::from(!events.is_empty()), Relaxed);
                Vec::new()
            }
            Sink::Local(sink, retries) => loop {
                match sink.write(events) {
                    Ok(()) => {
                        stats.batches.fetch_add(u64::from(!events.is_empty()), Relaxed);
                        retries.succeeded();
                        return Vec::new();
                    }
                    // A full or failing disk: the access log keeps the lines meanwhile.
                    Err(e) => retries.wait(stats, &e.to_string()).await,
                }
            },
            Sink::CloudWatch(cw) => cw.deliver(events, stats).await,
        }
    }
}
