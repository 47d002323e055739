//! Where counted requests and actions live. The semantics (what is a pull,
//! a version check, a unique origin) are computed here in the crate, never
//! in a store: a store keeps rows and answers grouped counts. SQLite is the
//! embedded one ([`crate::sqlite::Sqlite`]).

use crate::error::AnalyticsError;
use crate::event::Shipped;
use crate::query::{Query, Report};

/// What one ingested batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// Events in the batch.
    pub events: u64,
    /// Of them, requests not seen before (the rest were duplicates).
    pub new: u64,
    /// Origin-repository groups whose actions were computed again.
    pub groups: u64,
}

pub trait Store {
    /// Add a batch and move the cursor of `source` to `position`, in one
    /// transaction: after a crash, either both happened or neither did.
    fn ingest(&mut self, batch: &[Shipped], source: &str, position: &str) -> Result<Ingested, AnalyticsError>;
    /// Where `source` was read up to.
    /// Bring the aggregates up to date with what was ingested, and drop the
    /// requests that are past the raw window. Ingesting callers call it when
    /// a run (or a burst) ends; a report does it first when it must.
    fn settle(&mut self) -> Result<(), AnalyticsError>;
    /// What a long-running ingester calls between passes and during a
    /// long one: bring the aggregates up to date as often as the store can
    /// afford (ClickHouse rebuilds a day at a time, so at most every few
    /// seconds per day); `settle` when a run ends.
    fn tidy(&mut self) -> Result<(), AnalyticsError> {
        self.settle()
    }
    fn cursor(&self, source: &str) -> Result<Option<String>, AnalyticsError>;
    fn report(&mut self, query: &Query) -> Result<Report, AnalyticsError>;
    /// The rows `report` gives by each of `dims` alone over the whole
    /// range, at most `top` each, at once (a dashboard's breakdowns).
    fn breakdowns(&mut self, query: &Query, dims: &[crate::query::Dim], top: usize) -> Result<Vec<Vec<crate::query::Row>>, AnalyticsError>;
}

/// Windows and retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// An action closes after this long without a request of its own.
    pub window_ms: i64,
    /// Days (UTC, today included) whose requests are kept, so that late
    /// events are sessionised with the rest of their group; 0 keeps none
    /// past a settle.
    pub raw_days: u32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { window_ms: 60_000, raw_days: 7 }
    }
}
