//! Bytes to `Value` (the one-pass parser is in `direct.rs`), and when the bytes are not JSON,
//! an error that says where (byte, line, column) and why, found by a strict syntax walk.

use std::cell::Cell;
use std::fmt;

use super::direct::{Direct, MAX_DEPTH, Stacks};
use super::{Object, Str, Value};

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

/// A JSON parser (one per thread or shard). Documents are parsed by the one-pass `direct`
/// parser: on the 1 KB IoT event it takes ~1.9 µs per parse (value building and dropping
/// included) against ~2.1 µs for simd-json's tape plus a pass building the same values, and
/// it stays ahead up to 200 KB documents (`cargo bench --bench jsonpath -- parse`).
/// simd-json remains the reference floor in the benches.
#[derive(Default)]
pub struct Parser {
    _private: (),
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Parses one JSON document.
    #[inline]
    pub fn parse(&mut self, bytes: &[u8]) -> Result<Value, ParseError> {
        parse(bytes)
    }
}

thread_local! {
    static STACKS: Cell<Stacks> = Cell::new(Stacks::default());
}

/// Parses one JSON document (reusing this thread's parse stacks).
pub fn parse(bytes: &[u8]) -> Result<Value, ParseError> {
    let stacks = STACKS.with(Cell::take);
    let mut p = Direct::with_stacks(bytes, stacks);
    let r = p.document(ROOT_SPARE);
    STACKS.with(|s| s.set(p.into_stacks()));
    r.map_err(|invalid| locate(bytes, invalid.0))
}

/// Extra room in the top-level object: `ResultPath` writes land there, and growing a full
/// vector of 20 members costs a reallocation and a copy.
const ROOT_SPARE: usize = 4;

/// Keeps the last of duplicate keys, in the position of the first (Jackson's rule).
pub(super) fn dedupe(obj: Object) -> Object {
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

/// A located error for input the direct parser refused: the strict walk finds the first
/// byte that breaks the syntax; when the syntax is fine, the parser's own reason stands
/// (a number out of range, too deep a nesting).
fn locate(bytes: &[u8], refused: Option<&str>) -> ParseError {
    let (offset, reason) = match Locator::new(bytes).document() {
        Err(found) => found,
        Ok(()) => (0, refused.unwrap_or("invalid JSON").to_string()),
    };
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.len()
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
        if self.depth > MAX_DEPTH {
            return Err((self.i, "nesting deeper than 1000 levels".into()));
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

    #[test]
    fn numbers_parse_exactly() {
        for (text, want) in [
            ("-0", "0"),
            ("0.0", "0.0"),
            ("1e5", "100000.0"),
            ("1E-5", "1.0E-5"),
            ("-1.5e+3", "-1500.0"),
            ("123456789012345678901234567890", "1.2345678901234568E29"),
            ("1.7976931348623157e308", "1.7976931348623157E308"),
            ("5e-324", "5.0E-324"),
            ("0.1", "0.1"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("2.718281828459045", "2.718281828459045"),
            ("9007199254740993.0", "9.007199254740992E15"),
        ] {
            assert_eq!(roundtrip(text), want, "{text}");
        }
        // Every short decimal the fast path reads is the double the standard parser reads.
        for i in 0..20_000u64 {
            let text = format!("{}.{:03}e{}", i % 997, i % 1000, (i % 40) as i64 - 20);
            let ours = parse(text.as_bytes()).unwrap().as_f64().unwrap();
            assert_eq!(ours, text.parse::<f64>().unwrap(), "{text}");
        }
    }

    #[test]
    fn strings_unescape() {
        assert_eq!(
            parse(br#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#).unwrap(),
            Value::string("a\"b\\c/d\u{8}\u{c}\n\r\t\u{e9}\u{1f600}")
        );
        assert_eq!(parse(br#""\ud800x""#).unwrap(), Value::string("\u{fffd}x"));
    }

    #[test]
    fn invalid_documents_are_refused() {
        for bad in [
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "[1,]",
            r#"{"a":1,}"#,
            r#""\x""#,
            "\"a\nb\"",
            "[",
            r#"{"a"}"#,
            "nul",
            "1 2",
            r#""\u12""#,
            "1e400",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad} was accepted");
        }
        assert!(parse(b"1e400").unwrap_err().reason.contains("range"));
    }

    #[test]
    fn nesting_is_limited_like_jackson() {
        // Debug builds use big stack frames: give the walk the stack a shard thread has.
        std::thread::Builder::new()
            .stack_size(crate::json::STACK_FOR_DEPTH)
            .spawn(|| {
                let deep = format!("{}{}", "[".repeat(1001), "]".repeat(1001));
                let e = parse(deep.as_bytes()).unwrap_err();
                assert!(e.reason.contains("1000"), "{e}");
                let ok = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
                let v = parse(ok.as_bytes()).unwrap();
                assert_eq!(crate::json::to_string(&v), ok);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
