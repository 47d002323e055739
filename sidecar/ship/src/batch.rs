//! What the reader hands the sink: a bounded batch of prepared events, the
//! lines that could not be prepared, and where reading stands after them.

use crate::read::tail::Position;

/// An event ready to ship: its time, and the JSON that leaves the box.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub ts_ms: i64,
    pub json: String,
}

/// Something not shipped, and why: a line that did not parse (which may hold
/// a raw address: it stays on this machine), or an event a sink refused.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub reason: String,
    /// The line or event, cut to its first KiB.
    pub sample: Vec<u8>,
    /// Its whole length.
    pub len: u64,
}

impl DeadLetter {
    pub fn new(reason: impl Into<String>, line: &[u8], len: u64) -> DeadLetter {
        DeadLetter { reason: reason.into(), sample: line[..line.len().min(1024)].to_vec(), len }
    }

    /// A prepared event a sink will not take.
    pub fn event(reason: impl Into<String>, e: &Prepared) -> DeadLetter {
        DeadLetter::new(reason, e.json.as_bytes(), e.json.len() as u64)
    }
}

#[derive(Debug, Default)]
pub struct Batch {
    /// In log order.
    pub events: Vec<Prepared>,
    pub dead: Vec<DeadLetter>,
    /// Where reading stands after this batch: the checkpoint once the sink has it.
    pub position: Option<Position>,
    /// Lines read, and their bytes with newlines.
    pub lines: u64,
    pub bytes: u64,
    /// Requests an upstream answered 429 (over its rate limit), by route.
    pub throttled: std::collections::BTreeMap<String, u64>,
}
