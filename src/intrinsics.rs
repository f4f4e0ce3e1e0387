//! The 18 `States.*` intrinsic functions: parsed once from their text
//! (`States.Format('{}#{}', $.a, States.MathAdd($.n, 1))`) into a call tree, evaluated against
//! the state's data and context object with AWS's semantics: `MathAdd` rounds its arguments
//! like Java's `Math.round`, `StringSplit` splits on any delimiter character and drops empty
//! pieces, `Format` prints objects the way Java prints maps (`{a=1, b=[1, x]}`), and the
//! documented limits (1000 items from `ArrayRange`, 10,000 characters into `Base64*` and
//! `Hash`) apply.

use std::fmt;

use base64::Engine as _;

use crate::json::{Number, Object, Value};
use crate::jsonpath::{Path, PathError, SyntaxError};
use crate::random::{JavaRandom, Rng};

/// An intrinsic function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "Format" => Func::Format,
            "StringToJson" => Func::StringToJson,
            "JsonToString" => Func::JsonToString,
            "Array" => Func::Array,
            "ArrayPartition" => Func::ArrayPartition,
            "ArrayContains" => Func::ArrayContains,
            "ArrayRange" => Func::ArrayRange,
            "ArrayGetItem" => Func::ArrayGetItem,
            "ArrayLength" => Func::ArrayLength,
            "ArrayUnique" => Func::ArrayUnique,
            "Base64Encode" => Func::Base64Encode,
            "Base64Decode" => Func::Base64Decode,
            "Hash" => Func::Hash,
            "JsonMerge" => Func::JsonMerge,
            "MathRandom" => Func::MathRandom,
            "MathAdd" => Func::MathAdd,
            "StringSplit" => Func::StringSplit,
            "UUID" => Func::Uuid,
            _ => return None,
        })
    }

    /// The function's name as written (`States.Format`).
    pub fn name(self) -> &'static str {
        match self {
            Func::Format => "States.Format",
            Func::StringToJson => "States.StringToJson",
            Func::JsonToString => "States.JsonToString",
            Func::Array => "States.Array",
            Func::ArrayPartition => "States.ArrayPartition",
            Func::ArrayContains => "States.ArrayContains",
            Func::ArrayRange => "States.ArrayRange",
            Func::ArrayGetItem => "States.ArrayGetItem",
            Func::ArrayLength => "States.ArrayLength",
            Func::ArrayUnique => "States.ArrayUnique",
            Func::Base64Encode => "States.Base64Encode",
            Func::Base64Decode => "States.Base64Decode",
            Func::Hash => "States.Hash",
            Func::JsonMerge => "States.JsonMerge",
            Func::MathRandom => "States.MathRandom",
            Func::MathAdd => "States.MathAdd",
            Func::StringSplit => "States.StringSplit",
            Func::Uuid => "States.UUID",
        }
    }

    /// The allowed argument counts.
    fn arity(self) -> (usize, usize) {
        match self {
            Func::Format => (1, usize::MAX),
            Func::Array => (0, usize::MAX),
            Func::Uuid => (0, 0),
            Func::StringToJson
            | Func::JsonToString
            | Func::ArrayLength
            | Func::ArrayUnique
            | Func::Base64Encode
            | Func::Base64Decode => (1, 1),
            Func::ArrayPartition
            | Func::ArrayContains
            | Func::ArrayGetItem
            | Func::Hash
            | Func::MathAdd
            | Func::StringSplit => (2, 2),
            Func::MathRandom => (2, 3),
            Func::ArrayRange | Func::JsonMerge => (3, 3),
        }
    }
}

/// One argument of a call.
#[derive(Clone, Debug)]
pub enum Arg {
    Literal(Value),
    Path(Path),
    Call(Box<Call>),
}

/// A piece of a `States.Format` template.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Slot,
}

/// A parsed intrinsic function call.
#[derive(Clone, Debug)]
pub struct Call {
    func: Func,
    args: Vec<Arg>,
    /// For `States.Format` with a literal template: the template split at its `{}` slots.
    template: Option<Vec<Piece>>,
    text: Box<str>,
}

/// Where an intrinsic reads its paths and draws its random numbers.
pub trait Scope {
    /// Evaluates a path (`$...` on the state's data, `$$...` on the context object).
    fn select(&mut self, path: &Path) -> Result<Value, PathError>;
    /// The execution's random generator.
    fn rng(&mut self) -> &mut Rng;
}

/// Why a call failed at run time.
#[derive(Clone, Debug, PartialEq)]
pub enum IntrinsicError {
    /// A path argument selected nothing.
    Path { path: String, error: PathError },
    /// The function refused its arguments.
    Failure(String),
}

impl fmt::Display for IntrinsicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntrinsicError::Path { path, error } => write!(f, "Invalid path '{path}' : {error}"),
            IntrinsicError::Failure(m) => f.write_str(m),
        }
    }
}

/// Whether `text` is written as an intrinsic function call (starts with `States.` and a name).
pub fn looks_like_call(text: &str) -> bool {
    text.trim_start().starts_with("States.")
}

impl Call {
    /// Parses a call; syntax errors carry the byte offset in `text`.
    pub fn parse(text: &str) -> Result<Call, SyntaxError> {
        let mut p = Parser { s: text, i: 0 };
        p.ws();
        let call = p.call()?;
        p.ws();
        if p.i < text.len() {
            return Err(p.err("unexpected text after the closing ')'"));
        }
        Ok(call)
    }

    pub fn func(&self) -> Func {
        self.func
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The paths this call reads, nested calls included.
    pub fn paths(&self) -> Vec<&Path> {
        let mut out = Vec::new();
        for a in &self.args {
            match a {
                Arg::Path(p) => out.push(p),
                Arg::Call(c) => out.extend(c.paths()),
                Arg::Literal(_) => {}
            }
        }
        out
    }

    /// The paths this call reads, nested calls included, to resolve their variables.
    pub fn paths_mut(&mut self) -> Vec<&mut Path> {
        let mut out = Vec::new();
        for a in &mut self.args {
            match a {
                Arg::Path(p) => out.push(p),
                Arg::Call(c) => out.extend(c.paths_mut()),
                Arg::Literal(_) => {}
            }
        }
        out
    }

    /// Evaluates the call.
    pub fn eval(&self, scope: &mut dyn Scope) -> Result<Value, IntrinsicError> {
        // Arguments of the usual calls (at most four) stay on the stack.
        let n = self.args.len();
        if n <= 4 {
            let mut args: [Value; 4] = Default::default();
            for (slot, a) in args.iter_mut().zip(&self.args) {
                *slot = self.arg(a, scope)?;
            }
            self.apply(&mut args[..n], scope)
        } else {
            let mut args = Vec::with_capacity(n);
            for a in &self.args {
                args.push(self.arg(a, scope)?);
            }
            self.apply(&mut args, scope)
        }
    }

    #[inline]
    fn arg(&self, a: &Arg, scope: &mut dyn Scope) -> Result<Value, IntrinsicError> {
        Ok(match a {
            Arg::Literal(v) => v.clone(),
            Arg::Path(p) => scope.select(p).map_err(|error| IntrinsicError::Path {
                path: p.text().to_string(),
                error,
            })?,
            Arg::Call(c) => c.eval(scope)?,
        })
    }

    fn fail<T>(&self, why: impl fmt::Display) -> Result<T, IntrinsicError> {
        Err(IntrinsicError::Failure(format!(
            "The function '{}' had the following error: {why}",
            self.text
        )))
    }

    fn apply(&self, args: &mut [Value], scope: &mut dyn Scope) -> Result<Value, IntrinsicError> {
        let name = self.func.name();
        match self.func {
            Func::Format => {
                let owned;
                let pieces = match &self.template {
                    Some(t) => t,
                    None => match &args[0] {
                        Value::String(s) => {
                            owned = split_template(s);
                            &owned
                        }
                        v => {
                            return self.fail(format!(
                                "the template must be a string, found {}",
                                v.type_name()
                            ));
                        }
                    },
                };
                let slots = pieces.iter().filter(|p| **p == Piece::Slot).count();
                if slots != args.len() - 1 {
                    return self.fail(format!(
                        "the template has {slots} placeholder(s) but {} argument(s) follow it",
                        args.len() - 1
                    ));
                }
                let mut out: Vec<u8> = Vec::with_capacity(64);
                let mut next = args[1..].iter();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                        Piece::Slot => {
                            if let Some(v) = next.next() {
                                java_string(v, &mut out);
                            }
                        }
                    }
                }
                // SAFETY: only whole UTF-8 strings and ASCII were appended.
                Ok(Value::from(unsafe { String::from_utf8_unchecked(out) }))
            }
            Func::StringToJson => {
                let Value::String(s) = &args[0] else {
                    return self.fail(format!(
                        "{name} needs a string argument, found {}",
                        args[0].type_name()
                    ));
                };
                if s.trim().is_empty() {
                    return Ok(Value::Null);
                }
                crate::json::parse(s.as_bytes())
                    .or_else(|e| self.fail(format!("the string is not valid JSON: {e}")))
            }
            Func::JsonToString => Ok(Value::from(crate::json::to_string(&args[0]))),
            Func::Array => Ok(Value::array(args.iter_mut().map(std::mem::take).collect())),
            Func::ArrayPartition => {
                let items = self.array_arg(&args[0])?;
                let size = self.int_arg(&args[1], "chunk size")?;
                if size <= 0 {
                    return self.fail("the chunk size must be a positive integer");
                }
                Ok(Value::array(
                    items
                        .chunks(size as usize)
                        .map(|c| Value::array(c.to_vec()))
                        .collect(),
                ))
            }
            Func::ArrayContains => {
                let items = self.array_arg(&args[0])?;
                Ok(Value::Bool(items.contains(&args[1])))
            }
            Func::ArrayRange => {
                let start = self.int_arg(&args[0], "start")?;
                let end = self.int_arg(&args[1], "end")?;
                let step = self.int_arg(&args[2], "step")?;
                if step == 0 {
                    return self.fail("the step must not be 0");
                }
                let count = if (step > 0 && end < start) || (step < 0 && end > start) {
                    0
                } else {
                    (end - start) / step + 1
                };
                if count > 1000 {
                    return self.fail("the range has more than 1000 items");
                }
                Ok(Value::array(
                    (0..count).map(|k| Value::int(start + k * step)).collect(),
                ))
            }
            Func::ArrayGetItem => {
                let items = self.array_arg(&args[0])?;
                let idx = self.int_arg(&args[1], "index")?;
                if idx < 0 || idx as usize >= items.len() {
                    return self.fail(format!(
                        "the index {idx} is out of bounds for an array of {} item(s)",
                        items.len()
                    ));
                }
                Ok(items[idx as usize].clone())
            }
            Func::ArrayLength => Ok(Value::int(self.array_arg(&args[0])?.len() as i64)),
            Func::ArrayUnique => {
                let items = self.array_arg(&args[0])?;
                let mut out: Vec<Value> = Vec::with_capacity(items.len());
                for v in items {
                    if !out.contains(v) {
                        out.push(v.clone());
                    }
                }
                Ok(Value::array(out))
            }
            Func::Base64Encode => {
                let s = self.limited_str(&args[0])?;
                Ok(Value::from(
                    base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
                ))
            }
            Func::Base64Decode => {
                let s = self.limited_str(&args[0])?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .or_else(|e| self.fail(format!("the input is not valid base64: {e}")))?;
                let text = String::from_utf8(bytes)
                    .or_else(|_| self.fail("the decoded bytes are not UTF-8 text"))?;
                Ok(Value::from(text))
            }
            Func::Hash => {
                let data = match &args[0] {
                    Value::String(s) => s.to_string(),
                    other => crate::json::to_string(other),
                };
                if data.chars().count() > 10_000 {
                    return self.fail("the input is longer than 10000 characters");
                }
                let Value::String(alg) = &args[1] else {
                    return self.fail("the algorithm must be a string");
                };
                Ok(Value::from(
                    hash_hex(alg, data.as_bytes())
                        .ok_or(())
                        .or_else(|_| {
                            self.fail(format!(
                                "the algorithm '{alg}' is not one of MD5, SHA-1, SHA-256, SHA-384, SHA-512"
                            ))
                        })?,
                ))
            }
            Func::JsonMerge => {
                let (Value::Object(a), Value::Object(b)) = (&args[0], &args[1]) else {
                    return self.fail("both values to merge must be JSON objects");
                };
                match &args[2] {
                    Value::Bool(false) => {}
                    Value::Bool(true) => {
                        return self
                            .fail("deep merge is not supported: the third argument must be false");
                    }
                    _ => return self.fail("the third argument must be a boolean"),
                }
                let mut merged: Object = (**a).clone();
                for (k, v) in b.iter() {
                    merged.insert(k.clone(), v.clone());
                }
                Ok(Value::object(merged))
            }
            Func::MathRandom => {
                let start = self.rounded_int(&args[0], "start")?;
                let end = self.rounded_int(&args[1], "end")?;
                if end <= start {
                    return self.fail("the end must be greater than the start");
                }
                let span = end - start;
                let pick = match args.get(2) {
                    Some(seed) => {
                        let seed = self.rounded_int(seed, "seed")?;
                        match i32::try_from(span) {
                            Ok(b) => JavaRandom::new(seed).next_int(b) as i64,
                            Err(_) => return self.fail("the range is too large"),
                        }
                    }
                    None => (scope.rng().next_u64() % span as u64) as i64,
                };
                Ok(Value::int(start + pick))
            }
            Func::MathAdd => {
                let a = self.rounded_int(&args[0], "first value")?;
                let b = self.rounded_int(&args[1], "second value")?;
                Ok(Value::int(a.saturating_add(b)))
            }
            Func::StringSplit => {
                let (Value::String(s), Value::String(delims)) = (&args[0], &args[1]) else {
                    return self.fail("both arguments must be strings");
                };
                let parts: Vec<Value> = s
                    .split(|c: char| delims.contains(c))
                    .filter(|p| !p.is_empty())
                    .map(Value::string)
                    .collect();
                Ok(Value::array(parts))
            }
            Func::Uuid => Ok(Value::from(scope.rng().uuid())),
        }
    }

    fn array_arg<'v>(&self, v: &'v Value) -> Result<&'v [Value], IntrinsicError> {
        match v {
            Value::Array(a) => Ok(a.as_slice()),
            other => self.fail(format!("expected an array, found {}", other.type_name())),
        }
    }

    fn int_arg(&self, v: &Value, what: &str) -> Result<i64, IntrinsicError> {
        match v.as_i64() {
            Some(i) => Ok(i),
            None => self.fail(format!("the {what} must be an integer, found {v}")),
        }
    }

    /// A number rounded as Java's `Math.round` does (half up: -1.5 -> -1, 2.5 -> 3).
    fn rounded_int(&self, v: &Value, what: &str) -> Result<i64, IntrinsicError> {
        match v.as_number() {
            Some(Number::Int(i)) => Ok(i),
            Some(Number::Float(f)) => Ok((f + 0.5).floor() as i64),
            None => self.fail(format!("the {what} must be a number, found {v}")),
        }
    }

    fn limited_str<'v>(&self, v: &'v Value) -> Result<&'v str, IntrinsicError> {
        let Value::String(s) = v else {
            return self.fail(format!("expected a string, found {}", v.type_name()));
        };
        if s.chars().count() > 10_000 {
            return self.fail("the input is longer than 10000 characters");
        }
        Ok(s)
    }
}

pub(crate) fn hash_hex(alg: &str, data: &[u8]) -> Option<String> {
    use sha2::Digest;
    let bytes: Vec<u8> = match alg {
        "MD5" => md5::Md5::digest(data).to_vec(),
        "SHA-1" => sha1::Sha1::digest(data).to_vec(),
        "SHA-256" => sha2::Sha256::digest(data).to_vec(),
        "SHA-384" => sha2::Sha384::digest(data).to_vec(),
        "SHA-512" => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    };
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Appends `v` as Java's `String.valueOf` prints the value AWS holds: strings bare at the top
/// and inside containers, objects as `{k=v, ...}`, arrays as `[a, b]`.
fn java_string(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::String(s) => out.extend_from_slice(s.as_bytes()),
        Value::Array(a) => {
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                java_string(item, out);
            }
            out.push(b']');
        }
        Value::Object(o) => {
            out.push(b'{');
            for (i, (k, item)) in o.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(k.as_bytes());
                out.push(b'=');
                java_string(item, out);
            }
            out.push(b'}');
        }
        other => crate::json::write(other, out),
    }
}

/// Splits a Format template at its `{}` slots; `\{`, `\}`, `\'` and `\\` are literal.
fn split_template(t: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => text.push(n),
                None => text.push('\\'),
            },
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Slot);
            }
            _ => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, msg: &str) -> SyntaxError {
        SyntaxError {
            offset: self.i,
            message: msg.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn call(&mut self) -> Result<Call, SyntaxError> {
        let start = self.i;
        if !self.s[self.i..].starts_with("States.") {
            return Err(self.err("an intrinsic function call starts with 'States.'"));
        }
        self.i += "States.".len();
        let name_start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric()) {
            self.i += 1;
        }
        let name = &self.s[name_start..self.i];
        let Some(func) = Func::from_name(name) else {
            self.i = start;
            return Err(self.err(&format!("'States.{name}' is not an intrinsic function")));
        };
        self.ws();
        if self.peek() != Some(b'(') {
            return Err(self.err("expected '(' after the function name"));
        }
        self.i += 1;
        self.ws();
        let mut args = Vec::new();
        let mut raw_template = None;
        if self.peek() == Some(b')') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                let (arg, raw) = self.arg()?;
                if args.is_empty() {
                    raw_template = raw;
                }
                args.push(arg);
                self.ws();
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b')') => {
                        self.i += 1;
                        break;
                    }
                    None => return Err(self.err("missing ')' at the end of the call")),
                    _ => return Err(self.err("expected ',' or ')' after an argument")),
                }
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            let want = if min == max {
                format!("{min}")
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(SyntaxError {
                offset: start,
                message: format!(
                    "{} takes {want} argument(s), {} given",
                    func.name(),
                    args.len()
                ),
            });
        }
        let template = match (func, raw_template) {
            (Func::Format, Some(raw)) => Some(split_template(&raw)),
            _ => None,
        };
        Ok(Call {
            func,
            args,
            template,
            text: self.s[start..self.i].into(),
        })
    }

    /// One argument; for a string literal also its raw text (escapes kept) for templates.
    fn arg(&mut self) -> Result<(Arg, Option<String>), SyntaxError> {
        match self.peek() {
            Some(b'\'') => {
                let (decoded, raw) = self.string()?;
                Ok((Arg::Literal(Value::from(decoded)), Some(raw)))
            }
            Some(b'$') => {
                let start = self.i;
                self.path_end()?;
                let text = self.s[start..self.i].trim_end();
                let path = Path::parse(text).map_err(|e| SyntaxError {
                    offset: start + e.offset,
                    message: e.message,
                })?;
                Ok((Arg::Path(path), None))
            }
            Some(b'S') => Ok((Arg::Call(Box::new(self.call()?)), None)),
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
                match crate::json::parse(text.as_bytes()) {
                    Ok(v @ Value::Number(_)) => Ok((Arg::Literal(v), None)),
                    _ => {
                        self.i = start;
                        Err(self.err(&format!("'{text}' is not a number")))
                    }
                }
            }
            _ => {
                for (word, v) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.s[self.i..].starts_with(word) {
                        self.i += word.len();
                        return Ok((Arg::Literal(v), None));
                    }
                }
                Err(self.err(
                    "expected an argument: a 'string', a number, true, false, null, a path or a call",
                ))
            }
        }
    }

    /// A single-quoted string: returns the decoded text and the raw text between the quotes.
    fn string(&mut self) -> Result<(String, String), SyntaxError> {
        let open = self.i;
        self.i += 1;
        let start = self.i;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    self.i = open;
                    return Err(self.err("unterminated string literal"));
                }
                Some(b'\'') => {
                    let raw = self.s[start..self.i].to_string();
                    self.i += 1;
                    return Ok((out, raw));
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.s[self.i..].chars().next() {
                        Some(c) => {
                            out.push(c);
                            self.i += c.len_utf8();
                        }
                        None => {
                            self.i = open;
                            return Err(self.err("unterminated string literal"));
                        }
                    }
                }
                Some(_) => {
                    let c = self.s[self.i..].chars().next().unwrap_or(' ');
                    out.push(c);
                    self.i += c.len_utf8();
                }
            }
        }
    }

    /// Advances to the end of a path argument: the first ',' or ')' outside brackets, quotes
    /// and filter parentheses.
    fn path_end(&mut self) -> Result<(), SyntaxError> {
        let b = self.s.as_bytes();
        let mut depth = 0i32;
        let mut quote: Option<u8> = None;
        while self.i < b.len() {
            let c = b[self.i];
            match quote {
                Some(_) if c == b'\\' => self.i += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    b'\'' | b'"' => quote = Some(c),
                    b'[' | b'(' => depth += 1,
                    b']' => depth -= 1,
                    b')' if depth == 0 => return Ok(()),
                    b')' => depth -= 1,
                    b',' if depth == 0 => return Ok(()),
                    _ => {}
                },
            }
            self.i += 1;
        }
        // A backslash as the very last byte skipped past the end.
        self.i = self.i.min(b.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse, to_string};

    struct Data(Value, Rng);
    impl Scope for Data {
        fn select(&mut self, path: &Path) -> Result<Value, PathError> {
            path.select(&self.0).map(|s| s.into_owned())
        }
        fn rng(&mut self) -> &mut Rng {
            &mut self.1
        }
    }

    fn run(call: &str, input: &str) -> Result<String, String> {
        let c = Call::parse(call).map_err(|e| e.to_string())?;
        let mut scope = Data(parse(input.as_bytes()).unwrap(), Rng::new(7));
        c.eval(&mut scope)
            .map(|v| to_string(&v))
            .map_err(|e| e.to_string())
    }

    fn ok(call: &str, input: &str) -> String {
        run(call, input).unwrap()
    }

    #[test]
    fn format_prints_values_the_java_way() {
        assert_eq!(
            ok(
                "States.Format('{}#{}#{}', $.r, $.d, $.t)",
                r#"{"r":"eu","d":"x","t":17}"#
            ),
            r#""eu#x#17""#
        );
        assert_eq!(
            ok(
                "States.Format('a {} b', $.o)",
                r#"{"o":{"Arg1":1,"Arg2":[],"s":"x"}}"#
            ),
            r#""a {Arg1=1, Arg2=[], s=x} b""#
        );
        assert_eq!(ok("States.Format('{}', $.n)", r#"{"n":null}"#), r#""null""#);
        assert_eq!(ok("States.Format('{}', $.n)", r#"{"n":1.1}"#), r#""1.1""#);
        assert_eq!(ok(r"States.Format('\{\} {}', 'x')", "{}"), r#""{} x""#);
        assert!(run("States.Format('{} {}', 'x')", "{}").is_err());
    }

    #[test]
    fn math_add_rounds_like_java() {
        for (a, b, want) in [
            ("1.49", "1.5", "3"),
            ("-1.5", "0", "-1"),
            ("-2.5", "0", "-2"),
            ("-0.5", "0.5", "1"),
            ("-1.51", "0", "-2"),
            ("-9", "3", "-6"),
        ] {
            assert_eq!(
                ok(&format!("States.MathAdd({a}, {b})"), "{}"),
                want,
                "{a}+{b}"
            );
        }
        assert!(run("States.MathAdd('x', 1)", "{}").is_err());
    }

    #[test]
    fn string_split_splits_on_any_delimiter_and_drops_empty_pieces() {
        assert_eq!(
            ok("States.StringSplit($.s, $.d)", r#"{"s":", , ,","d":","}"#),
            r#"[" "," "]"#
        );
        assert_eq!(
            ok(
                "States.StringSplit($.s, '.+,=')",
                r#"{"s":"This.is+a,test=string"}"#
            ),
            r#"["This","is","a","test","string"]"#
        );
        assert_eq!(ok("States.StringSplit(',,,', ',')", "{}"), "[]");
    }

    #[test]
    fn arrays() {
        assert_eq!(ok("States.Array()", "{}"), "[]");
        assert_eq!(
            ok("States.Array(1, 'a', $.x)", r#"{"x":null}"#),
            r#"[1,"a",null]"#
        );
        assert_eq!(
            ok("States.ArrayPartition($.a, 2)", r#"{"a":[0,1,2]}"#),
            "[[0,1],[2]]"
        );
        assert_eq!(ok("States.ArrayRange(0, 10, 3)", "{}"), "[0,3,6,9]");
        assert_eq!(ok("States.ArrayRange(1, 9, 2)", "{}"), "[1,3,5,7,9]");
        assert_eq!(ok("States.ArrayRange(5, 1, -2)", "{}"), "[5,3,1]");
        assert!(run("States.ArrayRange(0, 5000, 1)", "{}").is_err());
        assert_eq!(ok("States.ArrayGetItem($.a, 1)", r#"{"a":[4,5]}"#), "5");
        assert!(run("States.ArrayGetItem($.a, 2)", r#"{"a":[4,5]}"#).is_err());
        assert_eq!(
            ok(
                "States.ArrayContains($.a, $.v)",
                r#"{"a":[[1,2,3],2],"v":[1,2,3]}"#
            ),
            "true"
        );
        assert_eq!(
            ok(
                "States.ArrayUnique($.a)",
                r#"{"a":[1,1,"x",{"a":1},{"a":1},null,null]}"#
            ),
            r#"[1,"x",{"a":1},null]"#
        );
        assert_eq!(ok("States.ArrayLength($.a)", r#"{"a":[1,2,3]}"#), "3");
    }

    #[test]
    fn json_conversions_and_merge() {
        assert_eq!(ok("States.StringToJson($.s)", r#"{"s":" "}"#), "null");
        assert_eq!(
            ok("States.StringToJson($.s)", r#"{"s":"{\"a\": [1]}"}"#),
            r#"{"a":[1]}"#
        );
        assert_eq!(
            ok("States.JsonToString($.o)", r#"{"o":{"Arg1":1,"Arg2":[]}}"#),
            r#""{\"Arg1\":1,\"Arg2\":[]}""#
        );
        assert_eq!(
            ok(
                "States.JsonMerge($.a, $.b, false)",
                r#"{"a":{"x":{"p":1},"y":2},"b":{"x":{"q":1},"z":3}}"#
            ),
            r#"{"x":{"q":1},"y":2,"z":3}"#
        );
        assert!(run("States.JsonMerge($.a, $.a, true)", r#"{"a":{}}"#).is_err());
    }

    #[test]
    fn encodings_and_hashes() {
        assert_eq!(
            ok("States.Base64Encode('Data to encode')", "{}"),
            r#""RGF0YSB0byBlbmNvZGU=""#
        );
        assert_eq!(
            ok("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", "{}"),
            r#""Data to encode""#
        );
        assert_eq!(
            ok("States.Hash('input data', 'SHA-1')", "{}"),
            r#""aaff4a450a104cd177d28d18d74485e8cae074b7""#
        );
        assert_eq!(
            ok("States.Hash('input data', 'MD5')", "{}"),
            r#""812f45842bc6d66ee14572ce20db8e86""#
        );
        assert!(run("States.Hash('x', 'SHA-3')", "{}").is_err());
    }

    #[test]
    fn random_and_uuid() {
        let r: i64 = ok("States.MathRandom(1, 10)", "{}").parse().unwrap();
        assert!((1..10).contains(&r));
        assert_eq!(ok("States.MathRandom(0, 999, 3)", "{}"), "239");
        assert_eq!(ok("States.UUID()", "{}").len(), 38);
    }

    #[test]
    fn nested_calls_and_context_paths_parse() {
        assert_eq!(
            ok(
                "States.ArrayGetItem(States.StringSplit($.n, '-'), States.MathAdd(States.ArrayLength(States.StringSplit($.n, '-')), -1))",
                r#"{"n":"a-b-c"}"#
            ),
            r#""c""#
        );
        assert!(Call::parse("States.Format('{}', $$.Execution.Id)").is_ok());
        assert!(Call::parse("States.Format('{}', $.a['x,y'])").is_ok());
    }

    #[test]
    fn regression_backslash_at_the_end_of_a_quoted_path() {
        // Found by the intrinsic fuzz target: a path argument ending inside a quoted name
        // with a backslash as its last byte sliced past the end of the text.
        assert!(Call::parse("States.Array($['a\\").is_err());
        assert!(Call::parse("States.Array($['\\").is_err());
    }

    #[test]
    fn syntax_errors_point_into_the_text() {
        let e = Call::parse("States.Nope(1)").unwrap_err();
        assert_eq!(e.offset, 0);
        let e = Call::parse("States.MathAdd(1)").unwrap_err();
        assert!(e.message.contains("takes 2"), "{e}");
        let e = Call::parse("States.Format('x', $.a[)").unwrap_err();
        assert_eq!(e.offset, 23, "{e}");
        let e = Call::parse("States.Format('x'").unwrap_err();
        assert!(e.message.contains("')'"), "{e}");
        assert!(Call::parse("States.UUID() x").is_err());
    }
}
