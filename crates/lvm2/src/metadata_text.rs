//! The metadata text: lvm2's configuration syntax.
//!
//! Grammar as accepted by lvm2's `libdm/libdm-config.c` (`_file`, `_section`,
//! `_value`, `_type`) and written by `lib/format_text/export.c`:
//!
//! ```text
//! file    := item*
//! item    := ident '=' value | ident '{' item* '}'
//! value   := scalar | '[' (scalar (',' scalar)*)? ','? ']'
//! scalar  := integer | float | "string" | 'string' | bare-word
//! ```
//!
//! `#` starts a comment up to the end of the line (outside strings). Strings may
//! span lines, contain `{ } # [ ]`, and escape `"` and `\` with a backslash.
//! Input size and nesting depth are bounded.
//!
//! Why not nom (which the design card names for parsers like this): the
//! grammar is four rules, and the hand-written lexer and recursive-descent
//! parser below are about 290 lines, much of them error reporting. Every entry
//! keeps the line it came from (`Section` entries and [`ParseError::line`]);
//! with nom that means `nom_locate` or recomputing lines from offsets, and the
//! depth bound ([`MAX_DEPTH`]) still has to be threaded through the recursion
//! by hand. The result would not be shorter, and the crate would gain a
//! dependency, so the parser stays as it is.

/// Largest text accepted (8 MiB).
pub const MAX_TEXT: usize = 8 << 20;
/// Deepest section nesting accepted (lvm2 metadata uses 4 levels).
pub const MAX_DEPTH: usize = 32;
/// Most values in one list.
pub const MAX_LIST: usize = 1 << 20;

/// A scalar or list value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A floating-point number, kept as written.
    Float(String),
    /// A string, unescaped.
    Str(String),
    /// A list of scalars.
    List(Vec<Value>),
}

/// One `key = value` or `name { ... }` entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// `key = value`.
    Value(Value),
    /// `name { ... }`.
    Section(Section),
}

/// A section: ordered entries.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Section {
    /// `(key, line, node)` in file order.
    pub entries: Vec<(String, usize, Node)>,
}

impl Section {
    /// The first entry named `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, n)| n)
    }
    /// The value of `key` if it is a value.
    pub fn value(&self, key: &str) -> Option<&Value> {
        match self.get(key) {
            Some(Node::Value(v)) => Some(v),
            _ => None,
        }
    }
    /// The subsection `key`.
    pub fn section(&self, key: &str) -> Option<&Section> {
        match self.get(key) {
            Some(Node::Section(s)) => Some(s),
            _ => None,
        }
    }
    /// `key` as an integer.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.value(key) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
    /// `key` as a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.value(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
    /// `key` as a list of strings (non-strings skipped).
    pub fn str_list(&self, key: &str) -> Vec<String> {
        match self.value(key) {
            Some(Value::List(l)) => l
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
    /// Subsections in file order.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.entries.iter().filter_map(|(k, _, n)| match n {
            Node::Section(s) => Some((k.as_str(), s)),
            Node::Value(_) => None,
        })
    }
}

/// A parse error with its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Float(String),
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Eq,
    Eof,
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
}

fn is_ident_byte(b: u8) -> bool {
    !(b.is_ascii_whitespace()
        || matches!(
            b,
            b'{' | b'}' | b'[' | b']' | b',' | b'=' | b'"' | b'\'' | b'#'
        ))
}

impl<'a> Lexer<'a> {
    fn err<T>(&self, reason: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            line: self.line,
            reason: reason.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos = self.pos.saturating_add(1);
        if b == b'\n' {
            self.line = self.line.saturating_add(1);
        }
        Some(b)
    }

    fn skip_space(&mut self) {
        while let Some(b) = self.peek() {
            if b.is_ascii_whitespace() || b == 0 {
                self.bump();
            } else if b == b'#' {
                while let Some(c) = self.peek() {
                    if c == b'\n' {
                        break;
                    }
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    fn string(&mut self, quote: u8) -> Result<Tok, ParseError> {
        let start_line = self.line;
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => {
                    return Err(ParseError {
                        line: start_line,
                        reason: "string never ends".to_string(),
                    })
                }
                Some(b'\\') => match self.bump() {
                    Some(c) => out.push(c),
                    None => return self.err("string ends in a backslash"),
                },
                Some(c) if c == quote => break,
                Some(c) => out.push(c),
            }
        }
        Ok(Tok::Str(String::from_utf8_lossy(&out).into_owned()))
    }

    fn next(&mut self) -> Result<(Tok, usize), ParseError> {
        self.skip_space();
        let line = self.line;
        let Some(b) = self.peek() else {
            return Ok((Tok::Eof, line));
        };
        let tok = match b {
            b'{' | b'}' | b'[' | b']' | b',' | b'=' => {
                self.bump();
                match b {
                    b'{' => Tok::LBrace,
                    b'}' => Tok::RBrace,
                    b'[' => Tok::LBracket,
                    b']' => Tok::RBracket,
                    b',' => Tok::Comma,
                    _ => Tok::Eq,
                }
            }
            b'"' | b'\'' => {
                self.bump();
                self.string(b)?
            }
            _ => {
                let start = self.pos;
                while self.peek().is_some_and(is_ident_byte) {
                    self.bump();
                }
                let word = self.src.get(start..self.pos).unwrap_or_default();
                let word = String::from_utf8_lossy(word).into_owned();
                classify(word)
            }
        };
        Ok((tok, line))
    }
}

/// A bare word is a number when it looks like one (lvm2's `_get_token`).
fn classify(word: String) -> Tok {
    let body = word.strip_prefix('-').unwrap_or(&word);
    if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = word.parse::<i64>() {
            return Tok::Int(i);
        }
        return Tok::Float(word);
    }
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        if !hex.is_empty() {
            if let Ok(u) = i64::from_str_radix(hex, 16) {
                return Tok::Int(if word.starts_with('-') {
                    u.checked_neg().unwrap_or(i64::MIN)
                } else {
                    u
                });
            }
        }
    }
    if !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && body.bytes().filter(|&b| b == b'.').count() == 1
        && body.bytes().any(|b| b.is_ascii_digit())
    {
        return Tok::Float(word);
    }
    Tok::Ident(word)
}

struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<(Tok, usize)>,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<&(Tok, usize), ParseError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex.next()?);
        }
        match &self.peeked {
            Some(t) => Ok(t),
            None => self.lex.err("internal: no token"),
        }
    }
    fn next(&mut self) -> Result<(Tok, usize), ParseError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.next(),
        }
    }

    fn items(&mut self, depth: usize, top: bool) -> Result<Section, ParseError> {
        if depth > MAX_DEPTH {
            return self
                .lex
                .err(format!("sections nested deeper than {MAX_DEPTH}"));
        }
        let mut sec = Section::default();
        loop {
            let (tok, line) = self.next()?;
            match tok {
                Tok::Eof if top => return Ok(sec),
                Tok::Eof => {
                    return Err(ParseError {
                        line,
                        reason: "section never closed (missing '}')".to_string(),
                    })
                }
                Tok::RBrace if !top => return Ok(sec),
                Tok::Ident(key) | Tok::Str(key) => {
                    let (t2, l2) = self.next()?;
                    match t2 {
                        Tok::Eq => {
                            let v = self.value()?;
                            sec.entries.push((key, line, Node::Value(v)));
                        }
                        Tok::LBrace => {
                            let inner = self.items(depth.saturating_add(1), false)?;
                            sec.entries.push((key, line, Node::Section(inner)));
                        }
                        other => {
                            return Err(ParseError {
                                line: l2,
                                reason: format!(
                                    "expected '=' or '{{' after {key:?}, found {}",
                                    describe(&other)
                                ),
                            })
                        }
                    }
                }
                other => {
                    return Err(ParseError {
                        line,
                        reason: format!(
                            "expected a key or section name, found {}",
                            describe(&other)
                        ),
                    })
                }
            }
        }
    }

    fn scalar(tok: Tok) -> Option<Value> {
        match tok {
            Tok::Int(i) => Some(Value::Int(i)),
            Tok::Float(f) => Some(Value::Float(f)),
            Tok::Str(s) => Some(Value::Str(s)),
            // libdm accepts unquoted words as string values (TOK_STRING_BARE).
            Tok::Ident(s) => Some(Value::Str(s)),
            _ => None,
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        let (tok, line) = self.next()?;
        if tok == Tok::LBracket {
            let mut list = Vec::new();
            loop {
                let (t, l) = self.next()?;
                match t {
                    Tok::RBracket => return Ok(Value::List(list)),
                    Tok::Comma => continue,
                    other => match Self::scalar(other.clone()) {
                        Some(v) => {
                            if list.len() >= MAX_LIST {
                                return Err(ParseError {
                                    line: l,
                                    reason: "list too long".to_string(),
                                });
                            }
                            list.push(v);
                        }
                        None => {
                            return Err(ParseError {
                                line: l,
                                reason: format!(
                                    "expected a list value or ']', found {}",
                                    describe(&other)
                                ),
                            })
                        }
                    },
                }
            }
        }
        match Self::scalar(tok.clone()) {
            Some(v) => Ok(v),
            None => Err(ParseError {
                line,
                reason: format!("expected a value, found {}", describe(&tok)),
            }),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("{s:?}"),
        Tok::Str(_) => "a string".to_string(),
        Tok::Int(i) => format!("the number {i}"),
        Tok::Float(f) => format!("the number {f}"),
        Tok::LBrace => "'{'".to_string(),
        Tok::RBrace => "'}'".to_string(),
        Tok::LBracket => "'['".to_string(),
        Tok::RBracket => "']'".to_string(),
        Tok::Comma => "','".to_string(),
        Tok::Eq => "'='".to_string(),
        Tok::Eof => "the end of the text".to_string(),
    }
}

/// Parses metadata text (the on-disk copy, or an `/etc/lvm/backup` file).
pub fn parse(text: &[u8]) -> Result<Section, ParseError> {
    if text.len() > MAX_TEXT {
        return Err(ParseError {
            line: 1,
            reason: format!(
                "text of {} bytes exceeds the {MAX_TEXT}-byte limit",
                text.len()
            ),
        });
    }
    let mut p = Parser {
        lex: Lexer {
            src: text,
            pos: 0,
            line: 1,
        },
        peeked: None,
    };
    let _ = p.peek()?;
    p.items(0, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_span_lines_and_hold_braces() {
        let t = br#"
# comment { not a section
vg {
  id = "abc"
  seqno = 7
  description = "line one
with { and } and # and \"quote\" and \\"
  status = ["READ", "WRITE",
     "VISIBLE"]
  empty = []
  f = 1.5
  neg = -3
  inner { a = 1 b = 2 }
}
contents = "Text Format Volume Group"
"#;
        let s = parse(t).unwrap();
        let vg = s.section("vg").unwrap();
        assert_eq!(vg.str("id"), Some("abc"));
        assert_eq!(vg.int("seqno"), Some(7));
        assert_eq!(
            vg.str("description"),
            Some("line one\nwith { and } and # and \"quote\" and \\")
        );
        assert_eq!(vg.str_list("status"), vec!["READ", "WRITE", "VISIBLE"]);
        assert_eq!(vg.value("empty"), Some(&Value::List(vec![])));
        assert_eq!(vg.value("f"), Some(&Value::Float("1.5".into())));
        assert_eq!(vg.int("neg"), Some(-3));
        assert_eq!(vg.section("inner").unwrap().int("b"), Some(2));
        assert_eq!(s.str("contents"), Some("Text Format Volume Group"));
    }

    #[test]
    fn errors_carry_lines() {
        let e = parse(b"a {\n b = \n}\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(parse(b"a { b = 1").is_err());
        assert!(parse(b"a = \"unterminated").is_err());
        assert!(parse(b"}").is_err());
        let deep = "a {".repeat(100);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
