//! The PutLogEvents rules, enforced before anything is sent: a request
//! CloudWatch Logs would reject is never built.
//!
//! - at most 1,048,576 bytes, counting each message in UTF-8 plus 26 bytes;
//! - at most 10,000 events;
//! - in chronological order;
//! - spanning at most 24 hours;
//! - no event older than 14 days or more than 2 hours ahead, and none over
//!   256 KiB (with its 26 bytes): those can never be sent and are dead-lettered.

pub const MAX_REQUEST_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD: usize = 26;
pub const MAX_EVENTS: usize = 10_000;
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
const HOUR_MS: i64 = 3_600_000;
/// A request spans less than this (first to last timestamp).
pub const MAX_SPAN_MS: i64 = 24 * HOUR_MS;
pub const MAX_AGE_MS: i64 = 14 * 24 * HOUR_MS;
pub const MAX_AHEAD_MS: i64 = 2 * HOUR_MS;

/// One event as CloudWatch sees it: a time and a message.
pub trait LogEvent {
    fn ts_ms(&self) -> i64;
    fn message_len(&self) -> usize;
}

impl LogEvent for crate::batch::Prepared {
    fn ts_ms(&self) -> i64 {
        self.ts_ms
    }
    fn message_len(&self) -> usize {
        self.json.len()
    }
}

/// A borrowed event is the event (the sink sorts references).
impl<E: LogEvent> LogEvent for &E {
    fn ts_ms(&self) -> i64 {
        (**self).ts_ms()
    }
    fn message_len(&self) -> usize {
        (**self).message_len()
    }
}

/// Why an event can never be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsendable {
    TooOld,
    TooNew,
    TooLarge,
}

impl Unsendable {
    pub fn reason(self) -> &'static str {
        match self {
            Unsendable::TooOld => "older than the 14 days CloudWatch Logs accepts",
            Unsendable::TooNew => "more than 2 hours ahead of this machine's clock",
            Unsendable::TooLarge => "larger than the 256 KiB CloudWatch Logs accepts per event",
        }
    }
}

/// Whether `e` can be sent at all, at `now_ms`.
pub fn check<E: LogEvent>(e: &E, now_ms: i64) -> Result<(), Unsendable> {
    if e.message_len() + EVENT_OVERHEAD > MAX_EVENT_BYTES {
        Err(Unsendable::TooLarge)
    } else if e.ts_ms() < now_ms - MAX_AGE_MS {
        Err(Unsendable::TooOld)
    } else if e.ts_ms() > now_ms + MAX_AHEAD_MS {
        Err(Unsendable::TooNew)
    } else {
        Ok(())
    }
}

/// How many of `events` (sendable, sorted by time) the next request takes:
/// the longest prefix within the count, size and span limits (at least one).
pub fn next_request<E: LogEvent>(events: &[E]) -> usize {
    let Some(first) = events.first() else { return 0 };
    let mut bytes = 0;
    for (n, e) in events.iter().enumerate() {
        bytes += e.message_len() + EVENT_OVERHEAD;
        if n == MAX_EVENTS || bytes > MAX_REQUEST_BYTES || e.ts_ms() - first.ts_ms() >= MAX_SPAN_MS {
            return n.max(1);
        }
    }
    events.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Ev(i64, usize);
    impl LogEvent for Ev {
        fn ts_ms(&self) -> i64 {
            self.0
        }
        fn message_len(&self) -> usize {
            self.1
        }
    }

    const NOW: i64 = 1_800_000_000_000;

    /// Whether `events` make one valid request at `now_ms`: the proptest's oracle,
    /// what a strict server checks.
    fn valid_request<E: LogEvent>(events: &[E], now_ms: i64) -> Result<(), String> {
        if events.is_empty() || events.len() > MAX_EVENTS {
            return Err(format!("{} events", events.len()));
        }
        let bytes: usize = events.iter().map(|e| e.message_len() + EVENT_OVERHEAD).sum();
        if bytes > MAX_REQUEST_BYTES {
            return Err(format!("{bytes} bytes"));
        }
        if let Some(w) = events.windows(2).find(|w| w[1].ts_ms() < w[0].ts_ms()) {
            return Err(format!("not in chronological order: {} after {}", w[1].ts_ms(), w[0].ts_ms()));
        }
        let span = events.last().map_or(0, |l| l.ts_ms()) - events[0].ts_ms();
        if span >= MAX_SPAN_MS {
            return Err(format!("spans {span} ms"));
        }
        match events.iter().find_map(|e| check(e, now_ms).err()) {
            Some(why) => Err(why.reason().to_string()),
            None => Ok(()),
        }
    }

    #[test]
    fn unsendable_events_are_named() {
        assert_eq!(check(&Ev(NOW - MAX_AGE_MS - 1, 10), NOW), Err(Unsendable::TooOld));
        assert_eq!(check(&Ev(NOW + MAX_AHEAD_MS + 1, 10), NOW), Err(Unsendable::TooNew));
        assert_eq!(check(&Ev(NOW, MAX_EVENT_BYTES - EVENT_OVERHEAD + 1), NOW), Err(Unsendable::TooLarge));
        assert_eq!(check(&Ev(NOW, MAX_EVENT_BYTES - EVENT_OVERHEAD), NOW), Ok(()));
    }

    #[test]
    fn each_limit_cuts_a_request() {
        let small = vec![Ev(NOW, 10); 25_000];
        assert_eq!(next_request(&small), MAX_EVENTS);
        // 1,022 events of 1,000 bytes make 1,048,572 bytes with their overhead; 1,023 do not fit.
        assert_eq!(next_request(&vec![Ev(NOW, 1000); 5000]), 1022);
        let span = [Ev(NOW - 2 * MAX_SPAN_MS, 1), Ev(NOW - MAX_SPAN_MS - 1, 1), Ev(NOW - MAX_SPAN_MS, 1)];
        assert_eq!(next_request(&span), 2);
        assert_eq!(next_request::<Ev>(&[]), 0);
    }

    proptest! {
        /// Cutting any sorted, sendable sequence gives only valid requests, and uses every event once.
        #[test]
        fn cuts_are_always_valid(mut evs in proptest::collection::vec((0..MAX_AGE_MS, 0..60_000usize), 1..3000)) {
            let mut evs: Vec<Ev> = evs.drain(..).map(|(age, len)| Ev(NOW - age, len)).collect();
            evs.sort_by_key(|e| e.0);
            let mut rest = &evs[..];
            let mut used = 0;
            while !rest.is_empty() {
                let n = next_request(rest);
                prop_assert!(n >= 1);
                prop_assert_eq!(valid_request(&rest[..n], NOW), Ok(()));
                used += n;
                rest = &rest[n..];
            }
            prop_assert_eq!(used, evs.len());
        }
    }
}
