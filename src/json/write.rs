//! `Value` to bytes, the way AWS's Jackson writes JSON: compact, members in insertion order,
//! non-ASCII left as UTF-8, and doubles formatted like Java's `Double.toString` (`100.0`,
//! `1.0E7`, `1.5E-4`), so outputs read the same as on AWS. Also the encoded length of a value,
//! for the 256 KiB payload limit, without writing it.

use super::{Number, Value};

/// Appends `b` to `out`. Keys and values in events are mostly short, and for short slices a
/// call into libc's memcpy costs more than the copy: up to 16 bytes are moved with two
/// overlapping word copies instead.
#[inline(always)]
fn put(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    if n > 16 {
        out.extend_from_slice(b);
        return;
    }
    out.reserve(n);
    let len = out.len();
    // SAFETY: `reserve` made room for `n` more bytes after `len`; every copy below stays
    // inside `b[..n]` and `out[len..len + n]`, and those bytes are initialized before
    // `set_len` exposes them.
    unsafe {
        let src = b.as_ptr();
        let dst = out.as_mut_ptr().add(len);
        if n >= 8 {
            std::ptr::copy_nonoverlapping(src, dst, 8);
            std::ptr::copy_nonoverlapping(src.add(n - 8), dst.add(n - 8), 8);
        } else if n >= 4 {
            std::ptr::copy_nonoverlapping(src, dst, 4);
            std::ptr::copy_nonoverlapping(src.add(n - 4), dst.add(n - 4), 4);
        } else {
            for k in 0..n {
                *dst.add(k) = *src.add(k);
            }
        }
        out.set_len(len + n);
    }
}

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

/// The index of the first byte of `bytes[from..]` that needs an escape, eight bytes at a
/// time (SWAR: a zero byte in `x ^ pattern`, or a byte below 0x20, sets its high bit). A
/// borrow can also flag a byte above a flagged one, never below it, so the lowest flag is
/// the answer and is read off the word instead of scanning the chunk again byte by byte.
#[inline]
pub(super) fn next_escape(bytes: &[u8], mut from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while from + 8 <= bytes.len() {
        let mut chunk = [0u8; 8];
        chunk.copy_from_slice(&bytes[from..from + 8]);
        let x = u64::from_le_bytes(chunk);
        let quote = x ^ (LO * b'"' as u64);
        let slash = x ^ (LO * b'\\' as u64);
        let hit = ((quote.wrapping_sub(LO) & !quote)
            | (slash.wrapping_sub(LO) & !slash)
            | (x.wrapping_sub(LO * 0x20) & !x))
            & HI;
        if hit != 0 {
            return Some(from + (hit.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    bytes[from..]
        .iter()
        .position(|&b| needs_escape(b))
        .map(|p| from + p)
}

/// Appends `s` as a quoted JSON string.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(i) = next_escape(bytes, start) {
        let b = bytes[i];
        put(out, &bytes[start..i]);
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
    put(out, &bytes[start..]);
    out.push(b'"');
}

/// `write_str` onto a `String` (JSON.stringify escapes the same characters the same way).
pub fn write_str_to_string(s: &str, out: &mut String) {
    // SAFETY: `write_str` appends `s`'s bytes cut only before ASCII bytes (whole UTF-8
    // characters) and ASCII escapes, so `out` stays valid UTF-8.
    write_str(s, unsafe { out.as_mut_vec() })
}

/// Appends a number as Jackson writes it.
pub fn write_number(n: Number, out: &mut Vec<u8>) {
    match n {
        Number::Int(i) => put(out, itoa::Buffer::new().format(i).as_bytes()),
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
    let a = f.abs();
    if (1e-3..1e7).contains(&a) {
        if short_decimal(f, out) {
            return;
        }
        // Between 10^-3 and 10^7 Java prints plain decimals, and ryu prints the same shortest
        // digits the same way (`28.23`, `0.001`): copy them.
        put(out, ryu::Buffer::new().format_finite(f).as_bytes());
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

/// Writes `f` (with 10^-3 <= |f| < 10^7) as its shortest decimal when that has at most six
/// fractional digits, which covers most measured values (`28.23`) at a fraction of ryu's cost.
/// Exact: `m / 10^k` (both exact doubles) is the double nearest to the decimal m·10^-k, the
/// same one a parser reads back, and trying k = 0, 1, 2, ... finds the fewest digits first.
fn short_decimal(f: f64, out: &mut Vec<u8>) -> bool {
    const POW: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];
    let a = f.abs();
    for (k, p) in POW.iter().enumerate() {
        let m = (a * p).round();
        if m >= 9_007_199_254_740_992.0 {
            return false;
        }
        if m / p == a {
            let m = m as u64;
            if f < 0.0 {
                out.push(b'-');
            }
            let scale = 10u64.pow(k as u32);
            put(out, itoa::Buffer::new().format(m / scale).as_bytes());
            out.push(b'.');
            if k == 0 {
                out.push(b'0');
            } else {
                let frac = m % scale;
                let mut digits = [b'0'; 6];
                let mut x = frac;
                for d in digits[..k].iter_mut().rev() {
                    *d = b'0' + (x % 10) as u8;
                    x /= 10;
                }
                put(out, &digits[..k]);
            }
            return true;
        }
    }
    false
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
    let bytes = s.as_bytes();
    let mut n = bytes.len() + 2;
    let mut from = 0;
    while let Some(i) = next_escape(bytes, from) {
        n += match bytes[i] {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            _ => 5,
        };
        from = i + 1;
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
    fn the_word_scan_finds_the_same_escape_as_a_byte_scan() {
        // Bytes around every boundary the word tricks test: the escapes themselves, their
        // neighbours, and the values a borrow turns into false flags above a true one.
        let alphabet = [
            b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, b'!', b'#', b'[', b']', b'a', 0x7f, 0x80, 0xff,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| alphabet[((x >> (i * 2 % 60)) % alphabet.len() as u64) as usize])
                .collect();
            let from = if len == 0 {
                0
            } else {
                (x >> 40) as usize % len
            };
            let expected = bytes[from..]
                .iter()
                .position(|&b| needs_escape(b))
                .map(|p| from + p);
            assert_eq!(next_escape(&bytes, from), expected, "{bytes:?} from {from}");
        }
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
        assert_eq!(d(28.23), "28.23");
        assert_eq!(d(-0.5), "-0.5");
        assert_eq!(d(0.0012), "0.0012");
        assert_eq!(d(53.3498), "53.3498");
        assert_eq!(d(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn the_short_path_agrees_with_ryu() {
        // Every double the fast path prints must read back as itself, with ryu's digits.
        let mut x: u64 = 0x1234_5678_9abc_def0;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 7) as i32;
            let f = ((x >> 8) % 10_000_000) as f64 / 10f64.powi(digits);
            if !(1e-3..1e7).contains(&f) {
                continue;
            }
            let mut fast = Vec::new();
            if short_decimal(f, &mut fast) {
                let text = String::from_utf8(fast).unwrap();
                assert_eq!(text.parse::<f64>().unwrap(), f);
                assert_eq!(text, ryu::Buffer::new().format_finite(f), "{f}");
            }
        }
    }

    #[test]
    fn escapes_are_found_in_every_position() {
        for len in 0..24 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x01u8, 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert_eq!(next_escape(&bytes, 0), Some(at), "len {len} at {at}");
                }
                let mut bytes = vec![b'a'; len];
                bytes[at] = 0x20;
                assert_eq!(next_escape(&bytes, 0), None);
            }
        }
        // Non-ASCII bytes (>= 0x80) never need an escape.
        assert_eq!(next_escape("é€𝄞 plain text".as_bytes(), 0), None);
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
