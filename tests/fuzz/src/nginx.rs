//! nginx's config syntax as nginx reads it (ngx_conf_read_token: words,
//! quotes and escapes, `;`, blocks, comments; Lua blocks by lua-nginx-module's
//! rules), and the shape of what the templates write, learnt from the golden
//! files: the directives they use, and the code of their Lua blocks.
//!
//! A value from routes.yaml that broke out of its quotes would show as a
//! directive no template writes, a map entry of the wrong arity or name, or
//! Lua code that differs from the template's in more than its strings.

use std::collections::BTreeSet;
use std::sync::OnceLock;

#[derive(Debug)]
pub struct Word {
    pub text: String,
    pub quoted: bool,
}

#[derive(Debug)]
pub enum Body {
    Conf(Vec<Stmt>),
    /// The Lua code's skeleton: its strings emptied, its spaces collapsed.
    Lua(String),
}

#[derive(Debug)]
pub struct Stmt {
    pub words: Vec<Word>,
    pub body: Option<Body>,
}

/// Blocks whose statements are entries (key and value), not directives.
const ENTRY_BLOCKS: [&str; 4] = ["map", "geo", "types", "split_clients"];
/// Words an entry block gives a meaning of its own.
const ENTRY_KEYWORDS: [&str; 3] = ["default", "hostnames", "volatile"];

const GOLDEN: [&str; 6] = [
    include_str!("../../golden/files.conf"),
    include_str!("../../golden/gateway-auth.conf"),
    include_str!("../../golden/indexes.conf"),
    include_str!("../../golden/lua.conf"),
    include_str!("../../golden/pass-through.conf"),
    include_str!("../../golden/tls.conf"),
];

pub fn parse(text: &str) -> Result<Vec<Stmt>, String> {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    p.block(false)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at(&self) -> String {
        let line = self.s[..self.i.min(self.s.len())].iter().filter(|b| **b == b'\n').count() + 1;
        format!("line {line}")
    }

    /// Statements up to the end (top level) or the closing brace.
    fn block(&mut self, inner: bool) -> Result<Vec<Stmt>, String> {
        let mut stmts = Vec::new();
        loop {
            self.skip_space_and_comments();
            match self.peek() {
                None if inner => return Err(format!("{}: unexpected end of file, expecting \"}}\"", self.at())),
                None => return Ok(stmts),
                Some(b'}') if inner => {
                    self.i += 1;
                    return Ok(stmts);
                }
                Some(b'}') => return Err(format!("{}: unexpected \"}}\"", self.at())),
                _ => stmts.push(self.statement()?),
            }
        }
    }

    fn skip_space_and_comments(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() {
                self.i += 1;
            } else if c == b'#' {
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.i += 1;
                }
            } else {
                break;
            }
        }
    }

    fn statement(&mut self) -> Result<Stmt, String> {
        let mut words = Vec::new();
        loop {
            while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                self.i += 1;
            }
            match self.peek() {
                None => return Err(format!("{}: unexpected end of file in a directive", self.at())),
                Some(b';') => {
                    self.i += 1;
                    return nonempty(words, None, self);
                }
                Some(b'{') => {
                    self.i += 1;
                    let lua = words.first().is_some_and(|w: &Word| !w.quoted && w.text.ends_with("_by_lua_block"));
                    let body = if lua { Body::Lua(self.lua()?) } else { Body::Conf(self.block(true)?) };
                    return nonempty(words, Some(body), self);
                }
                Some(b'}') => return Err(format!("{}: unexpected \"}}\"", self.at())),
                Some(b'#') if words.is_empty() => self.skip_space_and_comments(),
                Some(q @ (b'"' | b'\'')) => words.push(self.quoted(q)?),
                Some(_) => words.push(self.bare()),
            }
        }
    }

    fn quoted(&mut self, q: u8) -> Result<Word, String> {
        self.i += 1;
        let mut text = Vec::new();
        loop {
            match self.peek() {
                None => return Err(format!("{}: unterminated string", self.at())),
                Some(b'\\') => {
                    text.extend_from_slice(&self.s[self.i..(self.i + 2).min(self.s.len())]);
                    self.i += 2;
                }
                Some(c) if c == q => {
                    self.i += 1;
                    break;
                }
                Some(c) => {
                    text.push(c);
                    self.i += 1;
                }
            }
        }
        // nginx wants a space, `;`, `{` or `)` after a quoted word.
        if !self.peek().is_none_or(|c| c.is_ascii_whitespace() || matches!(c, b';' | b'{' | b')')) {
            return Err(format!("{}: unexpected character after a quoted word", self.at()));
        }
        Ok(Word { text: String::from_utf8_lossy(&text).into_owned(), quoted: true })
    }

    fn bare(&mut self) -> Word {
        let start = self.i;
        let mut variable = false;
        while let Some(c) = self.peek() {
            if c == b'{' && variable {
                // `${name}`: the brace belongs to the word.
                while self.peek().is_some_and(|c| c != b'}') {
                    self.i += 1;
                }
                self.i = (self.i + 1).min(self.s.len());
                variable = false;
                continue;
            }
            variable = c == b'$';
            if c == b'\\' {
                self.i = (self.i + 2).min(self.s.len());
                continue;
            }
            if c.is_ascii_whitespace() || c == b';' || c == b'{' {
                break;
            }
            self.i += 1;
        }
        Word { text: String::from_utf8_lossy(&self.s[start..self.i]).into_owned(), quoted: false }
    }

    /// A Lua block's body up to its closing brace, as a skeleton.
    fn lua(&mut self) -> Result<String, String> {
        let mut skeleton = String::new();
        let mut depth = 1;
        loop {
            let Some(c) = self.peek() else { return Err(format!("{}: unterminated Lua block", self.at())) };
            self.i += 1;
            match c {
                b'"' | b'\'' => {
                    loop {
                        match self.peek() {
                            None | Some(b'\n') => return Err(format!("{}: unterminated Lua string", self.at())),
                            Some(b'\\') => self.i += 2,
                            Some(x) if x == c => break,
                            Some(_) => self.i += 1,
                        }
                    }
                    self.i += 1;
                    skeleton.push_str("\"\"");
                }
                b'-' if self.peek() == Some(b'-') => return Err(format!("{}: a Lua comment", self.at())),
                b'[' if matches!(self.peek(), Some(b'[' | b'=')) => return Err(format!("{}: a Lua long string", self.at())),
                b'{' => {
                    depth += 1;
                    skeleton.push('{');
                }
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(skeleton.split_whitespace().collect::<Vec<_>>().join(" "));
                    }
                    skeleton.push('}');
                }
                c if c.is_ascii_whitespace() => skeleton.push(' '),
                c => skeleton.push(c as char),
            }
        }
    }
}

fn nonempty(words: Vec<Word>, body: Option<Body>, p: &Parser) -> Result<Stmt, String> {
    if words.is_empty() {
        return Err(format!("{}: a statement with no directive", p.at()));
    }
    Ok(Stmt { words, body })
}

/// What the templates write.
pub struct Shape {
    pub directives: BTreeSet<String>,
    pub lua: BTreeSet<String>,
}

impl Shape {
    /// Learnt once from the golden files.
    pub fn of_templates() -> &'static Shape {
        static SHAPE: OnceLock<Shape> = OnceLock::new();
        SHAPE.get_or_init(|| {
            let mut shape = Shape { directives: BTreeSet::new(), lua: BTreeSet::new() };
            for text in GOLDEN {
                let stmts = parse(text).expect("a golden file parses");
                shape.learn(&stmts);
            }
            shape
        })
    }

    fn learn(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            let name = &s.words[0].text;
            self.directives.insert(name.clone());
            match &s.body {
                Some(Body::Conf(inner)) if !ENTRY_BLOCKS.contains(&name.as_str()) => self.learn(inner),
                Some(Body::Lua(code)) => {
                    self.lua.insert(code.clone());
                }
                _ => {}
            }
        }
    }

    /// Whether `text` has this shape: an error says where it has not.
    pub fn check(&self, text: &str) -> Result<(), String> {
        self.check_stmts(&parse(text)?)
    }

    fn check_stmts(&self, stmts: &[Stmt]) -> Result<(), String> {
        for s in stmts {
            let name = s.words[0].text.as_str();
            if s.words[0].quoted {
                return Err(format!("a quoted directive name {name:?}"));
            }
            if !self.directives.contains(name) {
                return Err(format!("directive {name:?}, which no template writes"));
            }
            match &s.body {
                Some(Body::Conf(inner)) if ENTRY_BLOCKS.contains(&name) => self.check_entries(name, inner)?,
                Some(Body::Conf(inner)) => self.check_stmts(inner)?,
                Some(Body::Lua(code)) if !self.lua.contains(code) => return Err(format!("Lua code no template writes: {code}")),
                _ => {}
            }
        }
        Ok(())
    }

    fn check_entries(&self, block: &str, entries: &[Stmt]) -> Result<(), String> {
        for e in entries {
            let key = &e.words[0];
            if e.body.is_some() || e.words.len() > 2 {
                return Err(format!("an entry of {block} with {} words or a block: {:?}", e.words.len(), key.text));
            }
            let keyword = ENTRY_KEYWORDS.contains(&key.text.as_str());
            if !key.quoted && !keyword && (self.directives.contains(&key.text) || key.text == "include") {
                return Err(format!("a directive's name as an entry of {block}: {:?}", key.text));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_golden_files_have_the_templates_shape() {
        let shape = Shape::of_templates();
        assert!(shape.directives.contains("proxy_pass") && shape.directives.contains("map"));
        assert!(!shape.lua.is_empty());
        for text in GOLDEN {
            shape.check(text).unwrap();
        }
    }

    #[test]
    fn a_value_out_of_its_quotes_is_seen() {
        let shape = Shape::of_templates();
        for (broken, why) in [
            ("location = /x { return 307 \"http://a\"; include /etc/passwd; }", "which no template writes"),
            ("location = /x { return 307 \"http://a\"x; }", "after a quoted word"),
            ("map $x $y { \"a\" b; include c; }", "a directive's name"),
            ("map $x $y { \"a\" b c; }", "3 words"),
            ("location = /x { return 307 \"http://a; }", "unterminated"),
            ("location = /x { return 307 http://a; } }", "unexpected \"}\""),
            ("init_worker_by_lua_block { require(\"a\").start({file = \"x\", y = os.execute(\"id\")}) }", "Lua code"),
            ("init_worker_by_lua_block { require(\"a\") -- x\n }", "Lua comment"),
        ] {
            let e = shape.check(broken).unwrap_err();
            assert!(e.contains(why), "{broken}: {e}");
        }
        shape.check("location = /x { return 307 \"http://a\\\"; include x;\"; }").unwrap();
        shape.check("location = /x { return 307 http://a${b}c; }").unwrap();
    }
}
