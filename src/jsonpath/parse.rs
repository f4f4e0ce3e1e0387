//! JSONPath text to `Path`. Errors carry the byte offset inside the path string, so that
//! validation can point at the exact character.

use std::fmt;

use super::filter::{CmpOp, Filter, Operand};
use super::{Function, Path, Root, Segment};
use crate::json::{Str, Value};

/// A path that cannot be parsed: the byte offset in the path text and what is wrong there.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset)
    }
}

impl std::error::Error for SyntaxError {}

pub(super) fn parse(text: &str) -> Result<Path, SyntaxError> {
    let trimmed_end = text.trim_end().len();
    let mut p = Cursor {
        s: &text[..trimmed_end],
        i: 0,
        in_filter: false,
    };
    p.skip_ws();
    let mut variable = None;
    let root = if p.eat("$$") {
        Root::Context
    } else if p.eat("$") {
        // `$name`: a workflow variable (letters, digits and `_`, not starting with a digit).
        let start = p.i;
        if p.rest()
            .starts_with(|c: char| c.is_alphabetic() || c == '_')
        {
            let len = p
                .rest()
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(p.rest().len());
            p.i += len;
            variable = Some(&p.s[start..p.i]);
            Root::Variable
        } else {
            Root::Data
        }
    } else {
        return Err(p.err("a path must start with '$'"));
    };
    let (segments, function) = p.segments()?;
    if p.i < p.s.len() {
        return Err(p.err(&format!("unexpected '{}'", p.peek_char())));
    }
    let path = Path::build(text, root, segments, function);
    Ok(match variable {
        Some(name) => path.with_variable(name),
        None => path,
    })
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
    /// Inside a filter, names also end at operators and parentheses.
    in_filter: bool,
}

impl<'a> Cursor<'a> {
    fn err(&self, msg: &str) -> SyntaxError {
        SyntaxError {
            offset: self.i,
            message: msg.to_string(),
        }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn peek_char(&self) -> char {
        self.rest().chars().next().unwrap_or(' ')
    }

    fn eat(&mut self, tok: &str) -> bool {
        if self.rest().starts_with(tok) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn at_end_of_path(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) => {
                self.in_filter
                    && matches!(
                        c,
                        b' ' | b')' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|' | b',' | b']'
                    )
            }
        }
    }

    fn segments(&mut self) -> Result<(Vec<Segment>, Option<Function>), SyntaxError> {
        let mut segs = Vec::new();
        loop {
            if self.at_end_of_path() {
                return Ok((segs, None));
            }
            let start = self.i;
            if self.eat("..") {
                let inner = match self.peek() {
                    Some(b'[') => self.bracket()?,
                    Some(b'*') => {
                        self.i += 1;
                        Segment::Wildcard
                    }
                    Some(b'.') | None => {
                        self.i = start;
                        return Err(self.err("a path must not end with '..'"));
                    }
                    _ => match self.name()? {
                        NameOrCall::Name(n) => Segment::Member(n),
                        NameOrCall::Call(_) => {
                            return Err(self.err("a function cannot follow '..'"));
                        }
                    },
                };
                segs.push(Segment::Descendants(Box::new(inner)));
            } else if self.eat(".") {
                match self.peek() {
                    Some(b'*') => {
                        self.i += 1;
                        segs.push(Segment::Wildcard);
                    }
                    None => {
                        self.i = start;
                        return Err(self.err("a path must not end with '.'"));
                    }
                    Some(b'[') => {
                        // Jayway accepts `$.['a']` and reads it as `$['a']`.
                        segs.push(self.bracket()?);
                    }
                    _ => match self.name()? {
                        NameOrCall::Name(n) => segs.push(Segment::Member(n)),
                        NameOrCall::Call(f) => {
                            if !self.at_end_of_path() {
                                return Err(self.err("a function call must end the path"));
                            }
                            return Ok((segs, Some(f)));
                        }
                    },
                }
            } else if self.peek() == Some(b'[') {
                segs.push(self.bracket()?);
            } else {
                return Err(self.err(&format!(
                    "expected '.', '..' or '[' but found '{}'",
                    self.peek_char()
                )));
            }
        }
    }

    fn name(&mut self) -> Result<NameOrCall, SyntaxError> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let stop = matches!(c, b'.' | b'[' | b'(' | b' ' | b'\t')
                || (self.in_filter
                    && matches!(c, b')' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|' | b','));
            if stop {
                break;
            }
            self.i += 1;
        }
        if self.i == start {
            return Err(self.err("a member name is expected here"));
        }
        let name = &self.s[start..self.i];
        if self.peek() == Some(b'(') {
            let f = match name {
                "length" | "size" => Function::Length,
                "min" => Function::Min,
                "max" => Function::Max,
                "avg" => Function::Avg,
                "sum" => Function::Sum,
                "stddev" => Function::Stddev,
                "keys" => Function::Keys,
                "first" => Function::First,
                "last" => Function::Last,
                _ => {
                    self.i = start;
                    return Err(self.err(&format!("unknown function '{name}()'")));
                }
            };
            self.i += 1;
            self.skip_ws();
            if !self.eat(")") {
                return Err(self.err("functions take no arguments: expected ')'"));
            }
            return Ok(NameOrCall::Call(f));
        }
        if !self.in_filter && matches!(self.peek(), Some(b' ' | b'\t')) {
            return Err(self.err("a member name with spaces must use brackets: ['a b']"));
        }
        Ok(NameOrCall::Name(Str::new(name)))
    }

    fn bracket(&mut self) -> Result<Segment, SyntaxError> {
        let open = self.i;
        self.i += 1; // '['
        self.skip_ws();
        let seg = match self.peek() {
            Some(b'*') => {
                self.i += 1;
                Segment::Wildcard
            }
            Some(b'\'' | b'"') => {
                let mut names = vec![self.quoted()?];
                loop {
                    self.skip_ws();
                    if !self.eat(",") {
                        break;
                    }
                    self.skip_ws();
                    names.push(self.quoted()?);
                }
                if names.len() == 1 {
                    Segment::Member(names.pop().unwrap_or_else(Str::empty))
                } else {
                    Segment::Members(names)
                }
            }
            Some(b'?') => {
                self.i += 1;
                self.skip_ws();
                if !self.eat("(") {
                    return Err(self.err("expected '(' after '?'"));
                }
                let was = self.in_filter;
                self.in_filter = true;
                let f = self.or_expr()?;
                self.in_filter = was;
                self.skip_ws();
                if !self.eat(")") {
                    return Err(self.err("expected ')' to close the filter"));
                }
                Segment::Filter(Box::new(f))
            }
            Some(b'-' | b'0'..=b'9' | b':') => self.index_or_slice()?,
            None => {
                self.i = open;
                return Err(self.err("unclosed '['"));
            }
            _ => return Err(self.err("expected a quoted name, an index, a slice, '*' or '?('")),
        };
        self.skip_ws();
        if !self.eat("]") {
            if self.peek().is_none() {
                self.i = open;
                return Err(self.err("unclosed '['"));
            }
            return Err(self.err("expected ']'"));
        }
        Ok(seg)
    }

    fn int(&mut self) -> Result<i64, SyntaxError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.s[start..self.i].parse::<i64>().map_err(|_| {
            self.i = start;
            self.err("expected an integer")
        })
    }

    fn index_or_slice(&mut self) -> Result<Segment, SyntaxError> {
        let first = if self.peek() == Some(b':') {
            None
        } else {
            Some(self.int()?)
        };
        self.skip_ws();
        if self.eat(":") {
            self.skip_ws();
            let end = if matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
                Some(self.int()?)
            } else {
                None
            };
            self.skip_ws();
            if self.peek() == Some(b':') {
                return Err(self.err("slice steps are not supported"));
            }
            return Ok(Segment::Slice(first, end));
        }
        let Some(first) = first else {
            return Err(self.err("expected an integer"));
        };
        let mut all = vec![first];
        while self.eat(",") {
            self.skip_ws();
            all.push(self.int()?);
            self.skip_ws();
        }
        Ok(if all.len() == 1 {
            Segment::Index(first)
        } else {
            Segment::Indexes(all)
        })
    }

    /// A quoted name: `'a'` or `"a"`; a backslash escapes the quote and itself, and is
    /// kept as written before any other character (as Jayway reads it).
    fn quoted(&mut self) -> Result<Str, SyntaxError> {
        let open = self.i;
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.err("expected a quoted name")),
        };
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    self.i = open;
                    return Err(self.err("unterminated quoted name"));
                }
                Some(c) if c == q => {
                    self.i += 1;
                    return Ok(Str::from(out));
                }
                Some(b'\\') => {
                    let next = self.s.as_bytes().get(self.i + 1).copied();
                    if next == Some(q) {
                        out.push(q as char);
                        self.i += 2;
                    } else {
                        out.push('\\');
                        self.i += 1;
                    }
                }
                Some(_) => {
                    let ch = self.peek_char();
                    out.push(ch);
                    self.i += ch.len_utf8();
                }
            }
        }
    }

    // ---- filters ----

    fn or_expr(&mut self) -> Result<Filter, SyntaxError> {
        let mut parts = vec![self.and_expr()?];
        loop {
            self.skip_ws();
            if !self.eat("||") {
                break;
            }
            parts.push(self.and_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(Filter::Or(Vec::new()))
        } else {
            Filter::Or(parts)
        })
    }

    fn and_expr(&mut self) -> Result<Filter, SyntaxError> {
        let mut parts = vec![self.unary()?];
        loop {
            self.skip_ws();
            if !self.eat("&&") {
                break;
            }
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(Filter::And(Vec::new()))
        } else {
            Filter::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Filter, SyntaxError> {
        self.skip_ws();
        if self.peek() == Some(b'!') && self.rest().as_bytes().get(1) != Some(&b'=') {
            self.i += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(b'(') {
            self.i += 1;
            let inner = self.or_expr()?;
            self.skip_ws();
            if !self.eat(")") {
                return Err(self.err("expected ')'"));
            }
            return Ok(inner);
        }
        let left = self.operand()?;
        self.skip_ws();
        let op = self.cmp_op();
        let Some(op) = op else {
            return match left {
                Operand::Current(_) | Operand::Root(_) => Ok(Filter::Exists(left)),
                Operand::Literal(Value::Bool(b)) => Ok(Filter::Const(b)),
                _ => Err(self.err("expected a comparison operator")),
            };
        };
        self.skip_ws();
        let right = if op == CmpOp::Matches {
            self.regex()?
        } else {
            self.operand()?
        };
        Ok(Filter::Compare(Box::new((left, op, right))))
    }

    fn cmp_op(&mut self) -> Option<CmpOp> {
        const OPS: &[(&str, CmpOp)] = &[
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
            ("=~", CmpOp::Matches),
            ("nin ", CmpOp::Nin),
            ("in ", CmpOp::In),
            ("subsetof ", CmpOp::SubsetOf),
            ("anyof ", CmpOp::AnyOf),
            ("noneof ", CmpOp::NoneOf),
            ("size ", CmpOp::Size),
            ("empty ", CmpOp::Empty),
            ("contains ", CmpOp::Contains),
        ];
        for (tok, op) in OPS {
            if self.eat(tok) {
                return Some(*op);
            }
        }
        None
    }

    fn operand(&mut self) -> Result<Operand, SyntaxError> {
        self.skip_ws();
        match self.peek() {
            Some(b'@') => {
                let start = self.i;
                self.i += 1;
                let (segments, function) = self.segments()?;
                Ok(Operand::Current(Box::new(Path::build(
                    &self.s[start..self.i],
                    Root::Data,
                    segments,
                    function,
                ))))
            }
            Some(b'$') => {
                let start = self.i;
                self.i += 1;
                let (segments, function) = self.segments()?;
                Ok(Operand::Root(Box::new(Path::build(
                    &self.s[start..self.i],
                    Root::Data,
                    segments,
                    function,
                ))))
            }
            Some(b'\'' | b'"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            Some(b'[' | b'{') => {
                let start = self.i;
                let end = self.matching_close()?;
                let text = &self.s[start..end];
                // Jayway accepts single-quoted strings in literal lists.
                let json = text.replace('\'', "\"");
                let v = crate::json::parse(json.as_bytes()).map_err(|e| SyntaxError {
                    offset: start + e.offset,
                    message: format!("invalid literal in filter: {}", e.reason),
                })?;
                self.i = end;
                Ok(Operand::Literal(v))
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                self.i += 1;
                while matches!(
                    self.peek(),
                    Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                ) {
                    self.i += 1;
                }
                let text = &self.s[start..self.i];
                let v = crate::json::parse(text.as_bytes()).map_err(|_| SyntaxError {
                    offset: start,
                    message: format!("invalid number '{text}' in filter"),
                })?;
                Ok(Operand::Literal(v))
            }
            _ => {
                for (word, v) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.eat(word) {
                        return Ok(Operand::Literal(v));
                    }
                }
                Err(self.err("expected '@', '$', a number, a string, true, false or null"))
            }
        }
    }

    fn matching_close(&self) -> Result<usize, SyntaxError> {
        let b = self.s.as_bytes();
        let mut depth = 0usize;
        let mut quote: Option<u8> = None;
        let mut j = self.i;
        while j < b.len() {
            let c = b[j];
            match quote {
                Some(_) if c == b'\\' => j += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    b'\'' | b'"' => quote = Some(c),
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                },
            }
            j += 1;
        }
        Err(self.err("unclosed literal in filter"))
    }

    fn regex(&mut self) -> Result<Operand, SyntaxError> {
        self.skip_ws();
        if !self.eat("/") {
            return Err(self.err("expected a regular expression /.../ after '=~'"));
        }
        let start = self.i;
        let mut pattern = String::new();
        loop {
            match self.peek() {
                None => {
                    self.i = start - 1;
                    return Err(self.err("unterminated regular expression"));
                }
                Some(b'/') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') if self.s.as_bytes().get(self.i + 1) == Some(&b'/') => {
                    pattern.push('/');
                    self.i += 2;
                }
                Some(_) => {
                    let ch = self.peek_char();
                    pattern.push(ch);
                    self.i += ch.len_utf8();
                }
            }
        }
        let mut flags = String::new();
        while let Some(c @ (b'i' | b'm' | b's' | b'x')) = self.peek() {
            flags.push(c as char);
            self.i += 1;
        }
        let full = if flags.is_empty() {
            format!("^(?:{pattern})$")
        } else {
            format!("(?{flags})^(?:{pattern})$")
        };
        regex::Regex::new(&full)
            .map(|r| Operand::Regex(Box::new(r)))
            .map_err(|e| SyntaxError {
                offset: start,
                message: format!("invalid regular expression: {e}"),
            })
    }
}

enum NameOrCall {
    Name(Str),
    Call(Function),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> String {
        Path::parse(p).unwrap().normalized()
    }

    #[test]
    fn parses_dot_and_bracket_notation() {
        assert_eq!(segs("$.a.b"), "$['a']['b']");
        assert_eq!(segs("$['a b'].c"), "$['a b']['c']");
        assert_eq!(segs("$[\"x\"][0][-1]"), "$['x'][0][-1]");
        assert_eq!(segs("$.a[1:3][:2][-2:]"), "$['a'][1:3][:2][-2:]");
        assert_eq!(segs("$.a[*].b.*"), "$['a'][*]['b'][*]");
        assert_eq!(segs("$..name"), "$..['name']");
        assert_eq!(segs("$.a['x','y'][0,2]"), "$['a']['x','y'][0,2]");
        assert_eq!(segs("$.foo-bar:baz"), "$['foo-bar:baz']");
        assert_eq!(segs("$"), "$");
    }

    #[test]
    fn knows_definite_and_reference_paths() {
        assert!(Path::parse("$.a[0].b").unwrap().is_reference());
        assert!(!Path::parse("$.a[*]").unwrap().is_definite());
        assert!(!Path::parse("$$.Execution.Id").unwrap().is_reference());
        assert_eq!(
            Path::parse("$$.Map.Item.Value").unwrap().root(),
            Root::Context
        );
    }

    #[test]
    fn filters_parse() {
        let p = Path::parse("$.users[?(@.status == 0 && !(@.year < 1990) || @.tag =~ /a.*/i)]");
        assert!(p.is_ok(), "{p:?}");
        assert!(Path::parse("$[?(@.a in ['x', 'y'])]").is_ok());
        assert!(Path::parse("$[?(@.isbn)]").is_ok());
    }

    #[test]
    fn errors_point_at_the_byte() {
        let e = Path::parse("$.a[").unwrap_err();
        assert_eq!(e.offset, 3);
        let e = Path::parse("$.a.").unwrap_err();
        assert_eq!(e.offset, 3);
        let e = Path::parse("a.b").unwrap_err();
        assert_eq!(e.offset, 0);
        let e = Path::parse("$.a[0x]").unwrap_err();
        assert_eq!(e.offset, 5);
        let e = Path::parse("$.first name").unwrap_err();
        assert_eq!(e.offset, 7);
        assert!(Path::parse("$.a.nope()").is_err());
    }

    #[test]
    fn regression_unquoted_name_after_a_comma_in_brackets() {
        // Found by the jsonpath fuzz target: a non-ASCII character where a quote must follow
        // `,` made the parser slice inside that character.
        let e = Path::parse("$$.[',⤓$⤓ ⤓$.[',⤓⤓ '.").unwrap_err();
        assert_eq!(e.message, "expected a quoted name");
        assert!(Path::parse("$['a',b]").is_err());
    }

    #[test]
    fn quoted_names_keep_backslashes_before_other_characters() {
        // From the corpus: $['Test\""Name"'] names the key Test\""Name".
        let p = Path::parse(r#"$['Test\""Name"']"#).unwrap();
        match &p.segments()[0] {
            Segment::Member(m) => assert_eq!(m.as_str(), r#"Test\""Name""#),
            s => panic!("{s:?}"),
        }
        let p = Path::parse(r"$['it\'s']").unwrap();
        match &p.segments()[0] {
            Segment::Member(m) => assert_eq!(m.as_str(), "it's"),
            s => panic!("{s:?}"),
        }
    }
}
