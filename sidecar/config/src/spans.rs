//! Where each value of a YAML document sits, so that a problem found after
//! deserialisation can still be reported as `file:line:col`.
//!
//! serde_yaml gives positions only for its own errors; this walks the same
//! text once more with yaml-rust2's marked event parser and records, for every
//! path such as `routes[3].upstream`, where its key and its value start.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Default)]
pub struct Spans {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl Spans {
    /// Index `src`. A document the event parser rejects yields an empty index:
    /// serde_yaml reports that error with its own position.
    pub fn index(src: &str) -> Spans {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(src);
        if parser.load(&mut builder, false).is_err() {
            return Spans::default();
        }
        builder.spans
    }

    /// Where the value at `path` starts, or failing that its nearest ancestor.
    pub fn value(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return Some(*pos);
            }
            p = parent(p)?;
        }
    }

    /// Where the key of `path` is written (for unknown keys).
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }
}

fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}

/// `base.key`, or `key` at the top.
pub fn join_key(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

enum Frame {
    /// Inside a mapping: the path of the mapping, and the key awaiting its value.
    /// `located`: whether the mapping's own position is known yet (it is taken
    /// from its first key: the parser's mark for a block mapping is past it).
    Map {
        path: String,
        pending_key: Option<String>,
        located: bool,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    spans: Spans,
}

impl Builder {
    /// The path a new node (scalar or collection) gets, or `None` if the node
    /// is a mapping key.
    fn place_node(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, pending_key, .. }) => pending_key.take().map(|k| join_key(path, &k)),
        }
    }
}

fn pos(mark: Marker) -> Pos {
    Pos { line: mark.line(), col: mark.col() + 1 }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, ..) => match self.place_node() {
                Some(path) => {
                    self.spans.values.insert(path, pos(mark));
                }
                None => {
                    if let Some(Frame::Map { path, pending_key, located }) = self.stack.last_mut() {
                        if !*located {
                            self.spans.values.insert(path.clone(), pos(mark));
                            *located = true;
                        }
                        self.spans.keys.insert(join_key(path, &text), pos(mark));
                        *pending_key = Some(text);
                    }
                }
            },
            Event::Alias(_) => {
                if let Some(path) = self.place_node() {
                    self.spans.values.insert(path, pos(mark));
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A collection used as a mapping key has no useful path; give it a placeholder.
                let path = self.place_node().unwrap_or_else(|| "<complex key>".into());
                self.spans.values.insert(path.clone(), pos(mark));
                self.stack.push(match ev {
                    Event::MappingStart(..) => Frame::Map { path, pending_key: None, located: false },
                    _ => Frame::Seq { path, next: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_point_at_values_and_keys() {
        let src = "version: 1\nroutes:\n  - name: app\n    upstream: ghcr.io/x\n  - name: b\n    bogus: 1\n";
        let s = Spans::index(src);
        assert_eq!(s.value("version"), Some(Pos { line: 1, col: 10 }));
        assert_eq!(s.value("routes[0].upstream"), Some(Pos { line: 4, col: 15 }));
        assert_eq!(s.key("routes[1].bogus"), Some(Pos { line: 6, col: 5 }));
        // A missing field points at its parent.
        assert_eq!(s.value("routes[1].image"), Some(Pos { line: 5, col: 5 }));
    }
}
