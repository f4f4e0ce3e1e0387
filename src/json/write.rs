//! `Value` to bytes, the way AWS's Jackson writes JSON: compact, members in insertion order,
//! non-ASCII left as UTF-8, and doubles formatted like Java's `Double.toString` (`100.0`,
//! `1.0E7`, `1.5E-4`), so outputs read the same as on AWS. Also the encoded length of a value,
//! for the 256 KiB payload limit, without writing it.

use super::{Number, Value};

/// Appends the compact JSON text of `v` to `out`.
pub fn write(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(*n, out),
        Value::String(s) => write_str(s, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::Object(o) => {
            out.push(b'{');
            for (i, (k, item)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write(item, out);
            }
            out.push(b'}');
        }
    }
}

/// The compact JSON text of `v`.
pub fn to_string(v: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    write(v, &mut out);
    // SAFETY: `write` only emits ASCII and whole UTF-8 strings taken from `&str`s.
    unsafe { String::from_utf8_unchecked(out) }
}

/// Text indented by two spaces per level, for people (`--format json` output of the CLI).
pub fn to_string_pretty(v: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_pretty(v, 0, &mut out);
    // SAFETY: as in `to_string`.
    unsafe { String::from_utf8_unchecked(out) }
}

fn write_pretty(v: &Value, depth: usize, out: &mut Vec<u8>) {
    let indent = |out: &mut Vec<u8>, d: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', d * 2));
    };
    match v {
        Value::Array(a) if !a.is_empty() => {
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                indent(out, depth + 1);
                write_pretty(item, depth + 1, out);
            }
            indent(out, depth);
            out.push(b']');
        }
        Value::Object(o) if !o.is_empty() => {
            out.push(b'{');
            for (i, (k, item)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                indent(out, depth + 1);
                write_str(k, out);
                out.extend_from_slice(b": ");
                write_pretty(item, depth + 1, out);
            }
            indent(out, depth);
            out.push(b'}');
        }
        _ => write(v, out),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether byte `b` needs an escape inside a JSON string.
#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Appends `s` as a quoted JSON string.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends a number as Jackson writes it.
pub fn write_number(n: Number, out: &mut Vec<u8>) {
    match n {
        Number::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Number::Float(f) => write_double(f, out),
    }
}

/// Java's `Double.toString` layout over the shortest round-trip digits.
fn write_double(f: f64, out: &mut Vec<u8>) {
    if !f.is_finite() {
        // JSON has no NaN or infinity; nothing in ASL produces them from valid input.
        out.extend_from_slice(b"null");
        return;
    }
    if f == 0.0 {
        out.extend_from_slice(if f.is_sign_negative() {
            b"-0.0"
        } else {
            b"0.0"
        });
        return;
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(f);
    // Split ryu's text into sign, significant digits and the decimal exponent `e` such that
    // the value is 0.DIGITS x 10^e.
    let (neg, text) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let (mantissa, exp) = match text.find('e') {
        Some(p) => (&text[..p], text[p + 1..].parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let mut digits = [0u8; 24];
    let mut nd = 0;
    let mut int_len = 0i32;
    let mut seen_point = false;
    for &c in mantissa.as_bytes() {
        if c == b'.' {
            seen_point = true;
        } else {
            if nd < digits.len() {
                digits[nd] = c;
                nd += 1;
            }
            if !seen_point {
                int_len += 1;
            }
        }
    }
    // Strip leading zeros (0.001 -> digits "1" with the point moved), then trailing zeros.
    let mut lead = 0;
    while lead < nd - 1 && digits[lead] == b'0' {
        lead += 1;
    }
    let mut digits = &digits[lead..nd];
    let e = int_len - lead as i32 + exp;
    while digits.len() > 1 && digits[digits.len() - 1] == b'0' {
        digits = &digits[..digits.len() - 1];
    }
    if neg {
        out.push(b'-');
    }
    let sci = e - 1; // exponent in d.ddd x 10^sci
    if (-3..7).contains(&sci) {
        if e <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-e) as usize));
            out.extend_from_slice(digits);
        } else {
            let e = e as usize;
            if digits.len() <= e {
                out.extend_from_slice(digits);
                out.extend(std::iter::repeat_n(b'0', e - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..e]);
                out.push(b'.');
                out.extend_from_slice(&digits[e..]);
            }
        }
    } else {
        out.push(digits[0]);
        out.push(b'.');
        if digits.len() > 1 {
            out.extend_from_slice(&digits[1..]);
        } else {
            out.push(b'0');
        }
        out.push(b'E');
        out.extend_from_slice(itoa::Buffer::new().format(sci).as_bytes());
    }
}

/// The length in bytes of the compact JSON text of `v`, as the payload limit counts it.
/// Containers remember their length, so a value made mostly of unchanged input is cheap.
pub fn encoded_len(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => number_len(*n),
        Value::String(s) => str_len(s),
        Value::Array(a) => {
            let cached = a.cached_len();
            if cached != 0 {
                return cached as usize;
            }
            let mut n = 2 + a.len().saturating_sub(1);
            for item in a.iter() {
                n += encoded_len(item);
            }
            if let Ok(c) = u32::try_from(n) {
                a.cache_len(c);
            }
            n
        }
        Value::Object(o) => {
            let cached = o.cached_len();
            if cached != 0 {
                return cached as usize;
            }
            let mut n = 2 + o.len().saturating_sub(1);
            for (k, item) in o.iter() {
                n += str_len(k) + 1 + encoded_len(item);
            }
            if let Ok(c) = u32::try_from(n) {
                o.cache_len(c);
            }
            n
        }
    }
}

fn str_len(s: &str) -> usize {
    let mut n = s.len() + 2;
    for &b in s.as_bytes() {
        if needs_escape(b) {
            n += match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
                _ => 5,
            };
        }
    }
    n
}

fn number_len(n: Number) -> usize {
    match n {
        Number::Int(i) => itoa::Buffer::new().format(i).len(),
        Number::Float(_) => {
            let mut out = Vec::with_capacity(24);
            write_number(n, &mut out);
            out.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn d(f: f64) -> String {
        let mut out = Vec::new();
        write_double(f, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn doubles_read_like_java() {
        assert_eq!(d(100.0), "100.0");
        assert_eq!(d(24.17), "24.17");
        assert_eq!(d(-1.5), "-1.5");
        assert_eq!(d(0.001), "0.001");
        assert_eq!(d(0.0001), "1.0E-4");
        assert_eq!(d(1.5e-7), "1.5E-7");
        assert_eq!(d(1e7), "1.0E7");
        assert_eq!(d(9999999.0), "9999999.0");
        assert_eq!(d(1.2345e21), "1.2345E21");
        assert_eq!(d(123.456), "123.456");
        assert_eq!(d(0.5), "0.5");
        assert_eq!(d(0.0), "0.0");
    }

    #[test]
    fn strings_escape_like_jackson() {
        let mut out = Vec::new();
        write_str("a\"b\\c\nd\u{1}é/", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\nd\\u0001é/\""
        );
    }

    #[test]
    fn encoded_len_matches_the_text() {
        for doc in [
            r#"{"a":[1,2.5,"x\ny",null,true,false],"b":{"c":"é\u0001"}}"#,
            "[]",
            "{}",
            "-12",
            r#"[1.0E7,0.001]"#,
        ] {
            let v = parse(doc.as_bytes()).unwrap();
            assert_eq!(encoded_len(&v), to_string(&v).len(), "{doc}");
            // Twice: the second answer comes from the caches.
            assert_eq!(encoded_len(&v), to_string(&v).len(), "{doc}");
        }
    }

    #[test]
    fn pretty_indents_two_spaces() {
        let v = parse(br#"{"a":[1],"b":{}}"#).unwrap();
        assert_eq!(
            to_string_pretty(&v),
            "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}"
        );
    }
}
