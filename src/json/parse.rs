//! Bytes to `Value`: simd-json builds its tape (SIMD structural scan, in-place unescaping), and
//! one pass over the tape builds our `Value` with exact capacities. A `Parser` keeps simd-json's
//! buffers and the tape between documents, so a shard parsing a stream of events does not
//! allocate for the parse machinery, only for the values it keeps.

use std::cell::RefCell;
use std::fmt;

use simd_json::{Buffers, Node, StaticNode, Tape};

use super::{Number, Object, Str, Value};

/// JSON that could not be parsed: where (byte offset, line, column) and why.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    /// Byte offset into the input.
    pub offset: usize,
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {}",
            self.reason, self.line, self.column
        )
    }
}

impl std::error::Error for ParseError {}

/// A reusable JSON parser (one per thread or shard).
pub struct Parser {
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    input: Vec<u8>,
}

impl Default for Parser {
    fn default() -> Parser {
        Parser::new()
    }
}

impl Parser {
    pub fn new() -> Parser {
        Parser {
            buffers: Buffers::new(4096),
            tape: Some(Tape::null().reset()),
            input: Vec::with_capacity(4096 + simd_json::INPUT_PADDING),
        }
    }

    /// Parses one JSON document.
    pub fn parse(&mut self, bytes: &[u8]) -> Result<Value, ParseError> {
        self.input.clear();
        self.input.extend_from_slice(bytes);
        let len = self.input.len();
        self.input.resize(len + simd_json::INPUT_PADDING, 0);
        let mut tape: Tape<'_> = self.tape.take().unwrap_or_else(Tape::null).reset();
        let result =
            match simd_json::fill_tape_padded(&mut self.input, len, &mut self.buffers, &mut tape) {
                Ok(()) => {
                    let mut i = 0;
                    Ok(build(&tape.0, &mut i))
                }
                Err(e) => Err(describe(bytes, &e)),
            };
        self.tape = Some(tape.reset());
        result
    }
}

thread_local! {
    static PARSER: RefCell<Parser> = RefCell::new(Parser::new());
}

/// Parses one JSON document with this thread's parser.
pub fn parse(bytes: &[u8]) -> Result<Value, ParseError> {
    PARSER.with(|p| match p.try_borrow_mut() {
        Ok(mut p) => p.parse(bytes),
        Err(_) => Parser::new().parse(bytes),
    })
}

fn build(nodes: &[Node<'_>], i: &mut usize) -> Value {
    let node = &nodes[*i];
    *i += 1;
    match node {
        Node::Static(s) => match s {
            StaticNode::Null => Value::Null,
            StaticNode::Bool(b) => Value::Bool(*b),
            StaticNode::I64(n) => Value::Number(Number::Int(*n)),
            StaticNode::U64(n) => Value::Number(match i64::try_from(*n) {
                Ok(n) => Number::Int(n),
                Err(_) => Number::Float(*n as f64),
            }),
            StaticNode::F64(f) => Value::Number(Number::Float(*f)),
        },
        Node::String(s) => Value::String(Str::new(s)),
        Node::Array { len, .. } => {
            let mut items = Vec::with_capacity(*len);
            for _ in 0..*len {
                items.push(build(nodes, i));
            }
            Value::array(items)
        }
        Node::Object { len, .. } => {
            let mut obj = Object::with_capacity(*len);
            for _ in 0..*len {
                let key = match &nodes[*i] {
                    Node::String(k) => Str::new(k),
                    _ => Str::empty(),
                };
                *i += 1;
                let value = build(nodes, i);
                // Jackson keeps the last of duplicate keys; checking costs a scan, so only
                // small objects are checked inline and big ones after the fact.
                if *len <= 32 {
                    obj.insert(key, value);
                } else {
                    obj.push_unique(key, value);
                }
            }
            if *len > 32 {
                obj = dedupe(obj);
            }
            Value::object(obj)
        }
    }
}

fn dedupe(obj: Object) -> Object {
    let mut seen = std::collections::HashMap::with_capacity(obj.len());
    let entries = obj.into_entries();
    let mut out: Vec<(Str, Value)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        match seen.get(&k) {
            Some(&idx) => out[idx] = (k, v),
            None => {
                seen.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    Object::from_entries(out)
}

/// Turns a simd-json failure into a located error. simd-json reports positions of structural
/// characters, not of the offending byte, so a small scalar scan (run only on failure) finds
/// the first byte that makes the text invalid and says why.
fn describe(bytes: &[u8], e: &simd_json::Error) -> ParseError {
    let (offset, reason) = match Locator::new(bytes).document() {
        Err(found) => found,
        // The scan accepted what simd-json refused: its own limits (depth, size).
        Ok(()) => {
            let reason = match e.error() {
                simd_json::ErrorType::DepthLimitExceeded => "nesting deeper than 1024 levels",
                simd_json::ErrorType::InputTooLarge => "input larger than 4 GiB",
                _ => "invalid JSON",
            };
            (e.index().min(bytes.len()), reason.to_string())
        }
    };
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    ParseError {
        offset,
        line,
        column,
        reason,
    }
}

/// A strict JSON syntax walker that stops at the first error.
struct Locator<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

type Found = (usize, String);

impl<'a> Locator<'a> {
    fn new(b: &'a [u8]) -> Self {
        Locator { b, i: 0, depth: 0 }
    }

    fn document(&mut self) -> Result<(), Found> {
        if std::str::from_utf8(self.b).is_err() {
            let valid = std::str::from_utf8(self.b)
                .err()
                .map_or(0, |e| e.valid_up_to());
            return Err((valid, "invalid UTF-8".into()));
        }
        self.ws();
        self.value()?;
        self.ws();
        if self.i < self.b.len() {
            return Err(self.unexpected("unexpected data after the JSON value"));
        }
        Ok(())
    }

    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn unexpected(&self, what: &str) -> Found {
        match self.b.get(self.i) {
            None => (self.i, "unexpected end of input".into()),
            Some(c) if c.is_ascii_graphic() => (self.i, format!("{what}: found '{}'", *c as char)),
            Some(c) => (self.i, format!("{what}: found byte 0x{c:02x}")),
        }
    }

    fn value(&mut self) -> Result<(), Found> {
        match self.b.get(self.i) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.unexpected("expected a JSON value")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Found> {
        let start = self.i;
        let end = start
            + self.b[start..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric())
                .count();
        if &self.b[start..end] != word {
            let token = String::from_utf8_lossy(&self.b[start..end]);
            return Err((start, format!("unrecognized token '{token}'")));
        }
        self.i = end;
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), Found> {
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        let start = self.i;
        if self.digits() == 0 {
            return Err(self.unexpected("invalid number"));
        }
        if self.b[start] == b'0' && self.i - start > 1 {
            return Err((start, "invalid number: leading zero".into()));
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.unexpected("invalid number: digits expected after '.'"));
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.unexpected("invalid number: digits expected in the exponent"));
            }
        }
        Ok(())
    }

    fn string(&mut self) -> Result<(), Found> {
        let open = self.i;
        self.i += 1;
        loop {
            match self.b.get(self.i) {
                None => return Err((open, "unterminated string".into())),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.b.get(self.i) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            self.i += 1;
                            for _ in 0..4 {
                                if !self.b.get(self.i).is_some_and(u8::is_ascii_hexdigit) {
                                    return Err(self.unexpected("invalid \\u escape"));
                                }
                                self.i += 1;
                            }
                        }
                        _ => return Err(self.unexpected("invalid escape sequence")),
                    }
                }
                Some(c) if *c < 0x20 => {
                    return Err((self.i, "control character inside a string".into()));
                }
                Some(_) => self.i += 1,
            }
        }
    }

    fn enter(&mut self) -> Result<(), Found> {
        self.depth += 1;
        if self.depth > simd_json::DEFAULT_MAX_DEPTH {
            return Err((self.i, "nesting deeper than 1024 levels".into()));
        }
        self.i += 1;
        self.ws();
        Ok(())
    }

    fn array(&mut self) -> Result<(), Found> {
        self.enter()?;
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.value()?;
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected("expected ',' or ']' in an array")),
            }
        }
    }

    fn object(&mut self) -> Result<(), Found> {
        self.enter()?;
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            if self.b.get(self.i) != Some(&b'"') {
                return Err(self.unexpected("expected a string key in an object"));
            }
            self.string()?;
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err(self.unexpected("expected ':' after an object key"));
            }
            self.i += 1;
            self.ws();
            self.value()?;
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected("expected ',' or '}' in an object")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::to_string;

    fn roundtrip(s: &str) -> String {
        to_string(&parse(s.as_bytes()).unwrap())
    }

    #[test]
    fn parses_every_kind_of_value() {
        assert_eq!(
            roundtrip(r#"{"a":[1,-2,3.5,true,false,null,"x\n\"y\""],"b":{}}"#),
            r#"{"a":[1,-2,3.5,true,false,null,"x\n\"y\""],"b":{}}"#
        );
        assert_eq!(roundtrip(" [ ] "), "[]");
        assert_eq!(roundtrip("\"\\ud83c\\udd97\""), "\"\u{1f197}\"");
    }

    #[test]
    fn big_integers_become_doubles_and_u64_fits() {
        assert_eq!(roundtrip("9223372036854775807"), "9223372036854775807");
        assert_eq!(roundtrip("18446744073709551615"), "1.8446744073709552E19");
    }

    #[test]
    fn last_duplicate_key_wins_in_place() {
        assert_eq!(roundtrip(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
        let big: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let doc = format!("{{{},\"k0\":99}}", big.join(","));
        let v = parse(doc.as_bytes()).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 40);
        assert_eq!(v.get("k0"), Some(&Value::int(99)));
    }

    #[test]
    fn errors_say_where() {
        let e = parse(b"{\n  \"a\": tru }").unwrap_err();
        assert_eq!((e.line, e.column, e.offset), (2, 8, 9), "{e}");
        assert_eq!(e.reason, "unrecognized token 'tru'");
        assert!(parse(b"").is_err());
        assert!(parse(b"not a definition").is_err());
        let e = parse(b"{} x").unwrap_err();
        assert!(e.reason.contains("after the JSON value"), "{e}");
        assert!(parse(b"\xff").is_err());
    }
}
