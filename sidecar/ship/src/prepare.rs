//! The shipper's reading, enrichment and anonymisation, for lines that do
//! not come from tailing the live log: `pullgate analytics import` of
//! rotated or other nodes' logs goes through exactly this code, so no raw
//! address or credential reaches anything it feeds.

use std::path::{Path, PathBuf};

use crate::error::ShipError;
use crate::privacy::enrich::Enricher;
use crate::privacy::{Anonymiser, Clouds, Geo, Mmdb};
use crate::read::tail::{Chunk, SAMPLE};

/// Where enrichment data and salts come from.
#[derive(Debug, Clone)]
pub struct PrepareSettings {
    /// The shipper's state directory (its `salts/` are used and kept).
    pub state: PathBuf,
    pub geoip_dir: Option<PathBuf>,
    pub mmdb: Vec<PathBuf>,
    pub cloud_ranges: Vec<PathBuf>,
    pub max_line: usize,
}

/// Events that may leave the box, from raw schema-v1 lines.
pub struct Preparer {
    enricher: Enricher,
}

/// What a set of lines became.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Shipped events, one JSON object each.
    pub events: Vec<String>,
    /// Why each line that did not become an event did not.
    pub dead: Vec<String>,
}

impl Preparer {
    pub fn open(s: &PrepareSettings) -> Result<Preparer, ShipError> {
        let salts = s.state.join("salts");
        let anon = Anonymiser::new(salts.clone()).map_err(|source| ShipError::Io { what: "salts", path: salts, source })?.keep_salts();
        let geo = match &s.geoip_dir {
            Some(dir) => Some(Geo::load_tor(dir).map_err(|source| ShipError::Io { what: "tor-geoipdb", path: dir.clone(), source })?),
            None => None,
        };
        let mmdb = (!s.mmdb.is_empty()).then(|| Mmdb::open(&s.mmdb)).transpose()?;
        let clouds = (!s.cloud_ranges.is_empty()).then(|| Clouds::load(&s.cloud_ranges)).transpose()?;
        Ok(Preparer { enricher: Enricher { anon, geo, mmdb, clouds, max_line: s.max_line, dnt: Default::default() } })
    }

    /// Parse, enrich and anonymise `lines` (without their newlines). Each
    /// event is keyed with the salt of its own UTC day, never today's.
    pub fn lines(&mut self, lines: Vec<Vec<u8>>) -> Result<Prepared, ShipError> {
        let max = self.enricher.max_line;
        let (lines, too_long): (Vec<Vec<u8>>, Vec<Vec<u8>>) = lines.into_iter().partition(|l| l.len() <= max);
        let too_long = too_long.into_iter().map(|l| (l[..SAMPLE.min(l.len())].to_vec(), l.len() as u64)).collect();
        let chunk = Chunk { lines, too_long, ..Chunk::default() };
        let batch = self.enricher.batch(chunk).map_err(|source| ShipError::Io { what: "salts", path: PathBuf::new(), source })?;
        Ok(Prepared {
            events: batch.events.into_iter().map(|e| e.json).collect(),
            dead: batch.dead.into_iter().map(|d| d.reason).collect(),
        })
    }

    /// Delete the salts of days more than 48 h before `now_ms`: an import of
    /// old logs creates the salts of those days; they go when it is done.
    pub fn finish(self, now_ms: u64) {
        self.enricher.anon.forget_before(now_ms);
    }
}

/// Whether `path` names a gzip file (by its first two bytes).
pub fn is_gzip(path: &Path) -> std::io::Result<bool> {
    let mut magic = [0u8; 2];
    let mut f = std::fs::File::open(path)?;
    Ok(std::io::Read::read(&mut f, &mut magic)? == 2 && magic == [0x1f, 0x8b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_s_bytes_that_are_not_utf8_are_shipped_as_replacement_characters() {
        // Found by tests/bench/hostile.sh: such requests were dead letters, out of every count.
        let state = pullgate_base::fs::scratch_dir("prepare-utf8");
        let settings = PrepareSettings { state, geoip_dir: None, mmdb: Vec::new(), cloud_ranges: Vec::new(), max_line: 16384 };
        let mut p = Preparer::open(&settings).unwrap();
        let line = br#"{"ts":"1795347790.304","id":"b1e10aa14e207fbb9e1fabf8f527754f","ip":"203.0.113.9","host":"get.acme.dev","method":"GET","uri":"/v2/acme/PATH/manifests/1","status":404,"bytes":86,"rt":0.000,"ua":"AGENT storm","accept":"","auth":"none","range":"","dnt":"","route":"","upstream":"","mode":"local"}"#;
        let line = String::from_utf8_lossy(line).replace("PATH", "\u{1}").replace("AGENT", "\u{2}");
        let line: Vec<u8> = line
            .bytes()
            .flat_map(|b| match b {
                1 => vec![0xff, 0xfe],
                2 => vec![0xc3, 0x28],
                b => vec![b],
            })
            .collect();
        let out = p.lines(vec![line, b"\xff\xfe not JSON".to_vec()]).unwrap();
        assert_eq!(out.events.len(), 1, "dead: {:?}", out.dead);
        let event: serde_json::Value = serde_json::from_str(&out.events[0]).unwrap();
        assert_eq!((event["uri"].as_str(), event["ua"].as_str()), (Some("/v2/acme/\u{fffd}\u{fffd}/manifests/1"), Some("\u{fffd}( storm")));
        assert!(!out.events[0].contains("203.0.113.9"));
        assert_eq!(out.dead.len(), 1);
        assert!(out.dead[0].contains("not a schema v1 line"), "{:?}", out.dead);
    }
}
