//! The Prometheus text exposition format (version 0.0.4), written one way
//! for every counter pullgate exposes.

use std::fmt::{Display, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// A page of metric families.
#[derive(Debug, Default)]
pub struct Metrics {
    text: String,
}

/// One family: its samples follow its HELP and TYPE lines.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Start a family; add its samples with [`Family::sample`].
    pub fn family<'a>(&'a mut self, name: &'a str, kind: Kind, help: &str) -> Family<'a> {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out: &mut self.text, name }
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Display) {
        self.family(name, kind, help).sample(&[], value);
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

impl Family<'_> {
    /// A sample with these labels (values escaped as the format requires).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Display) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_escaped_labels() {
        let mut m = Metrics::new();
        m.single("a_total", Kind::Counter, "As.", 3);
        m.family("b", Kind::Gauge, "Bs.").sample(&[("k", "x\"y\\z\n")], 1).sample(&[("k", "w"), ("j", "v")], 0);
        assert_eq!(
            m.into_text(),
            "# HELP a_total As.\n# TYPE a_total counter\na_total 3\n\
             # HELP b Bs.\n# TYPE b gauge\nb{k=\"x\\\"y\\\\z\\n\"} 1\nb{k=\"w\",j=\"v\"} 0\n"
        );
    }
}
