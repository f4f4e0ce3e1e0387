//! A one-pass JSON parser that builds `Value`s straight from the bytes, for the small
//! documents events are: no intermediate tape, strings found eight bytes at a time, numbers
//! with the exact fast path for short decimals (Clinger: a mantissa below 2^53 scaled by a
//! power of ten up to 10^22 is exact in doubles), the standard library's correct parser for
//! the rest. Errors are located by the `Locator` of `parse.rs`, which gives the messages.

use super::{Number, Object, Str, Value};

/// Nesting deeper than this is refused, as Jackson (AWS's parser) refuses it, so every
/// recursive walk over a value (parse, write, drop, JSONPath) stays bounded.
pub const MAX_DEPTH: usize = 1000;

pub(super) struct Direct<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
    scratch: String,
    members: Vec<(Str, Value)>,
    items: Vec<Value>,
}

/// Why the direct parser stopped; `parse.rs` turns it into a located message. Syntax errors
/// are described by the `Locator`; the reason here covers what is valid syntax but refused.
pub(super) struct Invalid(pub Option<&'static str>);

/// The working storage of a parse, kept between documents so that a thread parsing a stream
/// stops allocating for it after the first few.
#[derive(Default)]
pub(super) struct Stacks {
    scratch: String,
    members: Vec<(Str, Value)>,
    items: Vec<Value>,
}

/// A syntax error (the `Locator` says which).
const BAD: Invalid = Invalid(None);

type R<T> = Result<T, Invalid>;

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl<'a> Direct<'a> {
    /// A parser reusing the stacks (and their capacity) of an earlier one.
    pub(super) fn with_stacks(b: &'a [u8], stacks: Stacks) -> Direct<'a> {
        Direct {
            b,
            i: 0,
            depth: 0,
            scratch: stacks.scratch,
            members: stacks.members,
            items: stacks.items,
        }
    }

    /// Gives the stacks back, emptied, for the next document.
    pub(super) fn into_stacks(mut self) -> Stacks {
        self.members.clear();
        self.items.clear();
        Stacks {
            scratch: self.scratch,
            members: self.members,
            items: self.items,
        }
    }

    /// Parses the whole input as one document; `root_spare` extra member slots for a root
    /// object.
    pub(super) fn document(&mut self, root_spare: usize) -> R<Value> {
        if std::str::from_utf8(self.b).is_err() {
            return Err(BAD);
        }
        self.ws();
        let v = self.value(root_spare)?;
        self.ws();
        if self.i != self.b.len() {
            return Err(BAD);
        }
        Ok(v)
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    /// A value; scalars are parsed in place (this is inlined into the container loops, so
    /// only containers recurse and scalars are not returned through memory).
    #[inline(always)]
    fn value(&mut self, spare: usize) -> R<Value> {
        match self.b.get(self.i) {
            Some(b'{' | b'[') => self.container(spare),
            _ => self.scalar(),
        }
    }

    #[inline(never)]
    fn container(&mut self, spare: usize) -> R<Value> {
        match self.b.get(self.i) {
            Some(b'{') => self.object(spare),
            _ => self.array(),
        }
    }

    #[inline(always)]
    fn scalar(&mut self) -> R<Value> {
        match self.b.get(self.i) {
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(BAD),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> R<Value> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(BAD)
        }
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Invalid(Some("nesting deeper than 1000 levels")));
        }
        self.i += 1;
        self.ws();
        Ok(())
    }

    /// Members are collected on a stack shared by all objects of the document and moved
    /// into an exactly sized vector at the closing brace: one allocation per object and no
    /// regrowth (growing vectors cost ~6% of an execution's instructions before).
    fn object(&mut self, spare: usize) -> R<Value> {
        self.enter()?;
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Value::object(Object::with_capacity(spare)));
        }
        let base = self.members.len();
        let mut seen: u64 = 0;
        loop {
            if self.b.get(self.i) != Some(&b'"') {
                return Err(BAD);
            }
            let key = self.string()?;
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err(BAD);
            }
            self.i += 1;
            self.ws();
            let value = self.value(0)?;
            // Jackson keeps the last of duplicate keys. A 64-bit summary of (length, first
            // byte) of the keys seen rules out a duplicate without a scan for almost every key.
            let first = key.as_bytes().first().copied().unwrap_or(0) as usize;
            let bit = 1u64 << ((key.len().wrapping_mul(7) ^ first) & 63);
            let count = self.members.len() - base;
            let dup = if seen & bit != 0 && count <= 32 {
                self.members[base..].iter_mut().find(|(k, _)| *k == key)
            } else {
                None
            };
            match dup {
                Some(slot) => slot.1 = value,
                None => self.members.push((key, value)),
            }
            seen |= bit;
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    let n = self.members.len() - base;
                    let mut entries = Vec::with_capacity(n + spare);
                    entries.extend(self.members.drain(base..));
                    let mut obj = Object::from_entries(entries);
                    if n > 33 {
                        // Past 32 members duplicates were not looked for on the way.
                        obj = super::parse::dedupe(obj);
                    }
                    return Ok(Value::object(obj));
                }
                _ => return Err(BAD),
            }
        }
    }

    /// Items go through a shared stack too, for the same reason.
    fn array(&mut self) -> R<Value> {
        self.enter()?;
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Value::array(Vec::new()));
        }
        let base = self.items.len();
        loop {
            let v = self.value(0)?;
            self.items.push(v);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    let items: Vec<Value> = self.items.drain(base..).collect();
                    return Ok(Value::array(items));
                }
                _ => return Err(BAD),
            }
        }
    }

    /// The index of the next `"`, `\` or control byte at or after `from` (the bytes that
    /// end a string's plain run are the ones the writer escapes: one scanner serves both).
    #[inline]
    fn string_end(&self, from: usize) -> Option<usize> {
        super::write::next_escape(self.b, from)
    }

    #[inline(always)]
    fn string(&mut self) -> R<Str> {
        let start = self.i + 1;
        let end = self.string_end(start).ok_or(BAD)?;
        if self.b[end] == b'"' {
            self.i = end + 1;
            // SAFETY: the whole input was checked to be UTF-8, and `start..end` lies between
            // two ASCII quotes, so it is on character boundaries.
            let s = unsafe { std::str::from_utf8_unchecked(&self.b[start..end]) };
            return Ok(Str::new(s));
        }
        self.escaped_string(start, end)
    }

    fn hex4(&self, at: usize) -> R<u32> {
        let digits = self.b.get(at..at + 4).ok_or(BAD)?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16 + (d as char).to_digit(16).ok_or(BAD)?;
        }
        Ok(v)
    }

    #[cold]
    fn escaped_string(&mut self, start: usize, mut end: usize) -> R<Str> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let mut from = start;
        loop {
            // SAFETY: as in `string`: ASCII delimiters on both sides, UTF-8 input.
            out.push_str(unsafe { std::str::from_utf8_unchecked(&self.b[from..end]) });
            match self.b[end] {
                b'"' => {
                    self.i = end + 1;
                    let s = Str::new(&out);
                    self.scratch = out;
                    return Ok(s);
                }
                b'\\' => {
                    let c = *self.b.get(end + 1).ok_or(BAD)?;
                    from = end + 2;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4(end + 2)?;
                            from = end + 6;
                            let code = if (0xD800..0xDC00).contains(&hi)
                                && self.b.get(from..from + 2) == Some(b"\\u")
                            {
                                let lo = self.hex4(from + 2)?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    from += 6;
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                } else {
                                    0xFFFD
                                }
                            } else {
                                hi
                            };
                            // A lone surrogate cannot be UTF-8: Jackson keeps it, we replace it.
                            out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                        }
                        _ => return Err(BAD),
                    }
                }
                _ => return Err(BAD), // a control character inside a string
            }
            end = self.string_end(from).ok_or(BAD)?;
        }
    }

    /// A run of digits as a number; past 19 digits (which always fit a u64) it reports
    /// overflow instead of checking every step.
    #[inline(always)]
    fn digits(&mut self) -> (u64, usize, bool) {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(&c) = self.b.get(self.i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            v = v.wrapping_mul(10).wrapping_add(d as u64);
            self.i += 1;
        }
        let n = self.i - start;
        (v, n, n > 19)
    }

    #[inline(always)]
    fn number(&mut self) -> R<Value> {
        let start = self.i;
        let neg = self.b[self.i] == b'-';
        if neg {
            self.i += 1;
        }
        let int_start = self.i;
        let (int, int_len, mut overflow) = self.digits();
        if int_len == 0 || (int_len > 1 && self.b[int_start] == b'0') {
            return Err(BAD);
        }
        let mut mantissa = int;
        let mut frac_len = 0;
        let mut is_float = false;
        if self.b.get(self.i) == Some(&b'.') {
            is_float = true;
            self.i += 1;
            let frac_start = self.i;
            while let Some(&c) = self.b.get(self.i) {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                mantissa = mantissa.wrapping_mul(10).wrapping_add(d as u64);
                self.i += 1;
            }
            frac_len = self.i - frac_start;
            // More than 19 significant digits may have wrapped: the exact slow path decides.
            if int_len + frac_len > 19 {
                overflow = true;
            }
            if frac_len == 0 {
                return Err(BAD);
            }
        }
        let mut exp: i64 = 0;
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            is_float = true;
            self.i += 1;
            let eneg = match self.b.get(self.i) {
                Some(b'-') => {
                    self.i += 1;
                    true
                }
                Some(b'+') => {
                    self.i += 1;
                    false
                }
                _ => false,
            };
            let (e, elen, eover) = self.digits();
            if elen == 0 {
                return Err(BAD);
            }
            let e = if eover {
                i64::MAX / 2
            } else {
                e.min(i64::MAX as u64 / 2) as i64
            };
            exp = if eneg { -e } else { e };
        }
        if !is_float && !overflow {
            if neg {
                if mantissa <= i64::MAX as u64 + 1 {
                    return Ok(Value::Number(Number::Int((mantissa as i64).wrapping_neg())));
                }
            } else if mantissa <= i64::MAX as u64 {
                return Ok(Value::Number(Number::Int(mantissa as i64)));
            }
            // An integer beyond i64 becomes a double, as big integers do elsewhere.
        }
        let scale = exp - frac_len as i64;
        if !overflow && mantissa < (1u64 << 53) && scale.unsigned_abs() <= 22 {
            let m = mantissa as f64;
            let f = if scale >= 0 {
                m * POW10[scale as usize]
            } else {
                m / POW10[(-scale) as usize]
            };
            return Ok(Value::Number(Number::Float(if neg { -f } else { f })));
        }
        // SAFETY: the number's bytes are ASCII.
        let text = unsafe { std::str::from_utf8_unchecked(&self.b[start..self.i]) };
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Number(Number::Float(f))),
            _ => Err(Invalid(Some("number out of the range of a double"))),
        }
    }
}
