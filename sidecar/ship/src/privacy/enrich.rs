//! From raw lines to events that may leave the box: parse schema v1, look the
//! client's address up while it is still at hand, replace it by keyed hashes.

use std::net::IpAddr;

use super::anon::Anonymiser;
use super::cloud::Clouds;
use super::geo::Geo;
use super::mmdb::{Found, Mmdb};
use crate::batch::{Batch, DeadLetter, Prepared};
use crate::read::record::{self, Record};
use crate::read::tail::Chunk;

pub struct Enricher {
    pub anon: Anonymiser,
    pub geo: Option<Geo>,
    pub mmdb: Option<Mmdb>,
    pub clouds: Option<Clouds>,
    /// Lines longer than this were cut by the tailer; said in their dead letter.
    pub max_line: usize,
    /// DNT/GPC requests, grouped here while their address is at hand.
    pub dnt: super::dnt::DntSessions,
}

impl Enricher {
    pub fn batch(&mut self, chunk: Chunk) -> std::io::Result<Batch> {
        let mut b = Batch { events: Vec::with_capacity(chunk.lines.len()), position: chunk.position, ..Batch::default() };
        for line in &chunk.lines {
            b.lines += 1;
            b.bytes += line.len() as u64 + 1;
            // nginx's `escape=json` passes a client's bytes >= 0x80 through
            // as they came: a path or agent that is not UTF-8 makes a line
            // that is not either. Such a line is read with those bytes as
            // U+FFFD, so that no client can keep its requests out of the
            // counts; the JSON around them is nginx's and stays whole. A
            // line that is UTF-8 is borrowed as it is, not copied.
            let text = String::from_utf8_lossy(line);
            match Record::parse(&text) {
                Ok(r) => {
                    // Only a proxied request's 429 is the upstream's; a redirected client meets it elsewhere.
                    if r.status == 429 && record::text(r.mode) == "proxy" {
                        *b.throttled.entry(record::text(r.route).to_string()).or_default() += 1;
                    }
                    b.events.push(self.prepare(r, line.len())?)
                }
                Err(e) => b.dead.push(DeadLetter::new(e.0, line, line.len() as u64)),
            }
        }
        for (sample, len) in &chunk.too_long {
            b.lines += 1;
            b.bytes += len + 1;
            b.dead.push(DeadLetter::new(format!("line of {len} bytes is over the bound of {}", self.max_line), sample, *len));
        }
        Ok(b)
    }

    fn prepare(&mut self, r: Record, line_len: usize) -> std::io::Result<Prepared> {
        let ts = r.ts_ms;
        // Enrich with the raw address, which the event then drops.
        let ip_text = record::text(r.ip);
        let ip: Option<IpAddr> = ip_text.parse().ok();
        let found = match (&self.mmdb, ip) {
            (Some(db), Some(ip)) => db.lookup(ip),
            _ => Found::default(),
        };
        let country = found.country.or_else(|| self.geo.as_ref().zip(ip).and_then(|(g, ip)| g.country(ip)));
        let cloud = self.clouds.as_ref().zip(ip).and_then(|(c, ip)| c.provider(ip));
        let dnt_counts = (record::text(r.dnt) == "1")
            .then(|| {
                let t = record::text;
                self.dnt.mark(ts as i64, ip, ip_text, t(r.ua), t(r.method), t(r.uri), r.status, t(r.route), t(r.mode))
            })
            .flatten();
        let mut event = self.anon.event(r, ts, ip)?;
        event.dnt_counts = dnt_counts;
        event.country = country;
        event.asn = found.asn;
        event.as_org = found.as_org;
        event.cloud = cloud.map(str::to_string);
        // Sized once: the event is the line without `ip`, plus hashes and enrichment.
        let mut json = Vec::with_capacity(line_len + 192);
        serde_json::to_writer(&mut json, &event).expect("serialises");
        Ok(Prepared { ts_ms: ts as i64, json: String::from_utf8(json).expect("serde_json writes UTF-8") })
    }
}
