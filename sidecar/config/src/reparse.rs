//! Re-reading routes.yaml after an edit: only the routes whose text changed
//! go through the YAML parser again.
//!
//! A file of 100,000 routes takes libyaml about a quarter second to parse,
//! and an edit usually touches one route. So the `routes:` block is cut into
//! its items by indentation, each item's text is looked up among the last
//! read's, and only new texts are parsed, each alone; the rest of the file
//! (with `routes: []` in place of the block) is parsed as it is.
//!
//! The cut is checked, not trusted: wherever it could differ from what the
//! YAML parser would see (document markers, directives, a `routes:` that is
//! not a plain block at the top, a line the cut cannot place), or where an
//! item does not parse alone as exactly one route (an alias to an anchor
//! elsewhere, a quoted scalar across items), the whole file is parsed the
//! usual way. Validation always runs on the whole file, so a route that
//! depends on the gateway settings is checked against the current ones.

use std::collections::HashMap;

use crate::raw::{RawFile, RawRoute};

/// The routes of the last read, by their text; holds only the current file's.
#[derive(Default)]
pub struct Reparser {
    routes: HashMap<String, RawRoute>,
    /// Route items the last read parsed (the rest it had already);
    /// `None`: it parsed the whole file.
    pub last_parsed: Option<usize>,
}

impl Reparser {
    /// The raw file, parsing only the route items not seen on the last read;
    /// `None` when the file must be parsed whole (see the module comment).
    pub(crate) fn raw(&mut self, src: &str) -> Option<RawFile> {
        self.last_parsed = None;
        let Some(cut) = cut(src) else {
            self.routes.clear();
            return None;
        };
        let mut raw: RawFile = serde_yaml::from_str(&cut.head).ok()?;
        if !raw.routes.is_empty() {
            return None;
        }
        let mut kept = HashMap::with_capacity(cut.items.len());
        let mut routes = Vec::with_capacity(cut.items.len());
        let mut parsed = 0;
        for item in cut.items {
            let (text, route) = match self.routes.remove_entry(item) {
                Some(known) => known,
                None => match kept.get(item) {
                    Some(twin) => (item.to_string(), RawRoute::clone(twin)),
                    None => {
                        parsed += 1;
                        let mut one: Vec<RawRoute> = serde_yaml::from_str(item).ok()?;
                        if one.len() != 1 {
                            return None;
                        }
                        (item.to_string(), one.pop()?)
                    }
                },
            };
            routes.push(route.clone());
            kept.insert(text, route);
        }
        raw.routes = routes;
        self.routes = kept;
        self.last_parsed = Some(parsed);
        Some(raw)
    }
}

/// routes.yaml cut at its route items.
#[derive(Debug, PartialEq)]
struct Cut<'a> {
    /// The file with `routes: []` in place of the block.
    head: String,
    /// Each item's text, from its `-` line to the line before the next item.
    items: Vec<&'a str>,
}

/// Lines with their end, and the byte offset each starts at.
fn lines(src: &str) -> impl Iterator<Item = (usize, &str)> {
    src.split_inclusive('\n').scan(0, |at, line| {
        let start = *at;
        *at += line.len();
        Some((start, line))
    })
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Blank, or a comment: belongs to no node.
fn is_filler(line: &str) -> bool {
    let t = line.trim_start_matches(' ').trim_end();
    t.is_empty() || t.starts_with('#')
}

/// A block sequence entry at this line's indentation: `-` then a space or the end.
fn is_entry(line: &str) -> bool {
    let t = line.trim_start_matches(' ').trim_end_matches(['\n', '\r']);
    t == "-" || t.starts_with("- ")
}

/// Cut `src` at its route items, or `None` where the cut could mislead (see the module comment).
fn cut(src: &str) -> Option<Cut<'_>> {
    let mut head = String::with_capacity(1024);
    let mut items: Vec<&str> = Vec::new();
    // (indent of the items, start of the current item) while inside the block.
    let mut block: Option<(Option<usize>, Option<usize>)> = None;
    let mut seen_routes = false;
    for (at, line) in lines(src) {
        if line.starts_with("---") || line.starts_with("...") || line.starts_with('%') || line.contains('\t') {
            return None;
        }
        if let Some((item_indent, item_start)) = &mut block {
            if is_filler(line) {
                continue;
            }
            let i = indent(line);
            let inside = match *item_indent {
                None => {
                    if !is_entry(line) {
                        return None; // a block that does not open with an entry
                    }
                    *item_indent = Some(i);
                    true
                }
                Some(n) => i > n || (i == n && is_entry(line)),
            };
            if inside {
                if i == item_indent.unwrap_or(i) && is_entry(line) {
                    if let Some(start) = item_start.replace(at) {
                        items.push(&src[start..at]);
                    }
                }
                continue;
            }
            if i > 0 {
                return None; // less indented than the items, yet not a top-level key
            }
            if let Some(start) = item_start.take() {
                items.push(&src[start..at]);
            }
            block = None;
        }
        if line.trim_end() == "routes:" {
            if seen_routes {
                return None;
            }
            seen_routes = true;
            head.push_str("routes: []\n");
            block = Some((None, None));
            continue;
        }
        if indent(line) == 0 && line.starts_with("routes") {
            return None; // `routes: [...]`, `routes: # ...`, `routes :`: parsed whole
        }
        head.push_str(line);
    }
    if let Some((_, Some(start))) = block {
        items.push(&src[start..]);
    }
    // The last item's text runs to the next top-level key: comments between are its own.
    seen_routes.then_some(Cut { head, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_block_items_of_either_indentation() {
        let src = "version: 1\nroutes:\n  - name: a\n    image: a\n\n  # b is next\n  - {name: b}\ngateway: {}\n";
        let c = cut(src).unwrap();
        assert_eq!(c.head, "version: 1\nroutes: []\ngateway: {}\n");
        assert_eq!(c.items, ["  - name: a\n    image: a\n\n  # b is next\n", "  - {name: b}\n"]);
        let src = "routes:\n- name: a\n  image: a\n-\n  name: b\n# end\nversion: 1";
        let c = cut(src).unwrap();
        assert_eq!(c.head, "routes: []\nversion: 1");
        assert_eq!(c.items, ["- name: a\n  image: a\n", "-\n  name: b\n# end\n"]);
    }

    #[test]
    fn refuses_what_it_cannot_cut_safely() {
        for src in [
            "version: 1\nroutes: []\n",
            "routes: # the routes\n  - {name: a}\n",
            "---\nroutes:\n  - {name: a}\n",
            "routes:\n  - {name: a}\n routes2: 1\n",
            "routes:\n  name: a\n",
            "routes:\n  - {name: a}\nroutes:\n  - {name: b}\n",
            "routes:\n\t- {name: a}\n",
            "version: 1\n",
        ] {
            assert_eq!(cut(src), None, "{src:?}");
        }
    }

    #[test]
    fn parses_only_new_items_and_falls_back_when_an_item_needs_the_rest() {
        let mut r = Reparser::default();
        let a = "version: 1\nroutes:\n  - {name: a, image: a, upstream: ghcr.io/a}\n  - {name: b, image: b, upstream: ghcr.io/b}\n";
        assert_eq!(r.raw(a).unwrap().routes.len(), 2);
        assert_eq!(r.last_parsed, Some(2));
        let b = a.replace("ghcr.io/b", "quay.io/b");
        let raw = r.raw(&b).unwrap();
        assert_eq!(r.last_parsed, Some(1));
        assert_eq!(raw.routes[1].upstream.as_deref(), Some("quay.io/b"));
        // Two items with the same text are parsed once.
        let twice = format!("{b}  - {{name: a, image: a, upstream: ghcr.io/a}}\n");
        assert_eq!(r.raw(&twice).unwrap().routes.len(), 3);
        assert_eq!(r.last_parsed, Some(0));
        // An alias to an anchor in another item: the file is parsed whole.
        let alias = "version: 1\nroutes:\n  - {name: a, image: a, upstream: &up ghcr.io/a}\n  - {name: b, image: b, upstream: *up}\n";
        assert!(r.raw(alias).is_none());
        assert_eq!(r.last_parsed, None);
        // A quoted scalar that runs across what looks like an item.
        let quoted = "version: 1\nroutes:\n  - {name: \"a\n  - b\", image: a}\n";
        assert!(r.raw(quoted).is_none());
    }
}
