//! Number printing, number formatting and text encoding for the JSONata built-ins, with the
//! behaviour of jsonata-js 2.0.6 running on Node: JavaScript's `Number::toString`,
//! `toPrecision(15)` (what `$string` and `&` print), `toFixed`, `$round` (half to even on the
//! decimal representation), `$number`'s accepted strings, `$formatNumber` (XPath F&O 3.1
//! `format-number` as jsonata-js implements it, quirks included), `$formatBase`, the Latin-1
//! `$base64encode`/`$base64decode` of Node's `Buffer`, and the four URL functions
//! (`encodeURIComponent`, `encodeURI`, `decodeURIComponent`, `decodeURI`).
//!
//! Everything works on exact decimal expansions of doubles where JavaScript does, so results match
//! V8 digit for digit; no input panics (NaN and infinities included).

use super::error::{Error, Result};

// ---------------------------------------------------------------------------------------------
// Exact decimal expansion of a double
// ---------------------------------------------------------------------------------------------

/// A little-endian base-2^32 natural number, just big enough for the exact decimal expansion of
/// a double (at most about 2500 bits); `toFixed` and `toPrecision` round that exact value.
struct Big(Vec<u32>);

impl Big {
    fn from_u64(value: u64) -> Big {
        Big(vec![value as u32, (value >> 32) as u32])
    }

    fn mul_small(&mut self, factor: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let product = u64::from(*limb) * u64::from(factor) + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn shl(&mut self, bits: u32) {
        let limbs = (bits / 32) as usize;
        let rest = bits % 32;
        if rest > 0 {
            let mut carry = 0u32;
            for limb in &mut self.0 {
                let wide = (u64::from(*limb) << rest) | u64::from(carry);
                *limb = wide as u32;
                carry = (wide >> 32) as u32;
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        if limbs > 0 {
            let mut shifted = vec![0u32; limbs];
            shifted.append(&mut self.0);
            self.0 = shifted;
        }
    }

    fn is_zero(&self) -> bool {
        self.0.iter().all(|&limb| limb == 0)
    }

    /// Divides in place by `divisor` and returns the remainder.
    fn div_small(&mut self, divisor: u32) -> u32 {
        let mut remainder = 0u64;
        for limb in self.0.iter_mut().rev() {
            let wide = (remainder << 32) | u64::from(*limb);
            *limb = (wide / u64::from(divisor)) as u32;
            remainder = wide % u64::from(divisor);
        }
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
        remainder as u32
    }

    /// Decimal digits (values 0..=9), most significant first; empty for zero.
    fn decimal_digits(mut self) -> Vec<u8> {
        let mut chunks = Vec::new();
        while !self.is_zero() {
            chunks.push(self.div_small(1_000_000_000));
        }
        let mut digits = Vec::with_capacity(chunks.len() * 9);
        for (i, chunk) in chunks.iter().rev().enumerate() {
            let text = if i == 0 {
                chunk.to_string()
            } else {
                format!("{chunk:09}")
            };
            digits.extend(text.bytes().map(|b| b - b'0'));
        }
        digits
    }
}

/// The exact value of finite `|value|` as digits (no leading or trailing zeros, empty for zero)
/// and a decimal point position: `|value| = 0.d1d2d3... × 10^point`.
fn exact_digits(value: f64) -> (Vec<u8>, i32) {
    let bits = value.abs().to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    if biased == 0x7ff {
        return (Vec::new(), 0);
    }
    let (mantissa, exp2) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    if mantissa == 0 {
        return (Vec::new(), 0);
    }
    let mut big = Big::from_u64(mantissa);
    let mut scale = 0i32;
    if exp2 >= 0 {
        big.shl(exp2 as u32);
    } else {
        // m × 2^-k = m × 5^k / 10^k
        let k = -exp2;
        for _ in 0..k / 13 {
            big.mul_small(1_220_703_125); // 5^13
        }
        big.mul_small(5u32.pow((k % 13) as u32));
        scale = k;
    }
    let mut digits = big.decimal_digits();
    let point = digits.len() as i32 - scale;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    (digits, point)
}

/// The digits of the integer nearest to `0.digits × 10^keep` (ties away from zero, which is how
/// `toFixed` and `toPrecision` pick "the larger n"); empty means zero.
fn round_half_up(digits: &[u8], keep: i64) -> Vec<u8> {
    if keep < 0 {
        return Vec::new();
    }
    let keep_len = usize::try_from(keep).unwrap_or(usize::MAX);
    let mut kept: Vec<u8> = (0..keep_len)
        .map(|i| digits.get(i).copied().unwrap_or(0))
        .collect();
    if digits.get(keep_len).is_some_and(|&d| d >= 5) {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, 1);
                break;
            }
            i -= 1;
            if let Some(d) = kept.get_mut(i) {
                if *d == 9 {
                    *d = 0;
                } else {
                    *d += 1;
                    break;
                }
            }
        }
    }
    let leading = kept.iter().take_while(|&&d| d == 0).count();
    kept.drain(..leading);
    kept
}

fn digits_to_string(digits: &[u8]) -> String {
    digits.iter().map(|&d| char::from(b'0' + d)).collect()
}

// ---------------------------------------------------------------------------------------------
// JavaScript number to string
// ---------------------------------------------------------------------------------------------

/// The shortest digits that round-trip to finite non-zero `|value|` (what ECMAScript's
/// Number::toString calls s and k) and the exponent n with `|value| = 0.s × 10^n`.
fn shortest_digits(value: f64) -> (Vec<u8>, i32) {
    let text = format!("{:e}", value.abs());
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let mut digits: Vec<u8> = mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    let n = exponent.parse::<i32>().unwrap_or(0) + 1;
    // ECMAScript breaks a tie between two equally close shortest candidates towards the even
    // one, where Rust's formatter may take the other. A tie needs at least 15 digits (a grid at
    // least as fine as the double's spacing), so shorter forms skip the exact check.
    if digits.len() >= 15
        && let Some(even) = even_tie_candidate(value.abs(), &digits, n)
    {
        return even;
    }
    (digits, n)
}

/// When `|value|` lies exactly halfway between two `digits.len()`-digit decimals, the one with an
/// even last digit, if it also reads back as `value`.
fn even_tie_candidate(value: f64, digits: &[u8], n: i32) -> Option<(Vec<u8>, i32)> {
    let (exact, point) = exact_digits(value);
    let k = digits.len();
    if point != n || exact.len() != k + 1 || exact.last() != Some(&5) {
        return None;
    }
    let floor = exact.get(..k)?.to_vec();
    let ceil = round_half_up(&exact, k as i64);
    let (candidate, candidate_point) = if floor.last().is_some_and(|d| d % 2 == 0) {
        (floor, point)
    } else {
        let carried = ceil.len() as i32 - k as i32;
        (ceil, point + carried)
    };
    if candidate.as_slice() == digits {
        return None;
    }
    let text = format!("0.{}e{candidate_point}", digits_to_string(&candidate));
    if text.parse::<f64>().ok()? != value {
        return None;
    }
    let mut candidate = candidate;
    while candidate.len() > 1 && candidate.last() == Some(&0) {
        candidate.pop();
    }
    Some((candidate, candidate_point))
}

/// JavaScript's Number.prototype.toString() for a finite double: shortest round-trip digits,
/// "1e+21" / "1.5e-7" exponent forms exactly where JS uses them, "-0" prints "0", integers without ".0".
pub fn js_number_to_string(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if value == 0.0 {
        return "0".to_string();
    }
    // Integers below 2^53 print as their digits; most numbers in events are such.
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        return itoa::Buffer::new().format(value as i64).to_string();
    }
    let (digits, n) = shortest_digits(value);
    let k = digits.len() as i32;
    let s = digits_to_string(&digits);
    let mut out = String::new();
    if value < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&s);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (int, frac) = s.split_at(n as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&s);
    } else {
        let e = n - 1;
        let (first, rest) = s.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if e >= 0 { '+' } else { '-' });
        out.push_str(&e.unsigned_abs().to_string());
    }
    out
}

/// Number(value.toPrecision(15)): what JSONata's $string and `&` do to a number before printing
/// ($string(0.1+0.2) is "0.3", $string(5890840712243077) is "5890840712243080").
pub fn to_precision_15(value: f64) -> f64 {
    if !value.is_finite() || value == 0.0 {
        return value;
    }
    // Integers of at most 15 digits are their own 15-digit rounding.
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return value;
    }
    // A value whose shortest form has at most 15 digits is its own 15-digit rounding.
    if shortest_digits(value).0.len() <= 15 {
        return value;
    }
    let (digits, point) = exact_digits(value);
    let rounded = round_half_up(&digits, 15);
    let point = i64::from(point) + rounded.len() as i64 - 15;
    let sign = if value < 0.0 { "-" } else { "" };
    let text = format!("{sign}0.{}e{point}", digits_to_string(&rounded));
    text.parse().unwrap_or(value)
}

/// JavaScript's `Number.prototype.toFixed(fraction_digits)`: the exact value rounded half up
/// (ties to the larger n), and plain `toString` from 1e21 on.
fn js_to_fixed(value: f64, fraction_digits: usize) -> String {
    if !value.is_finite() || value.abs() >= 1e21 {
        return js_number_to_string(value);
    }
    let (digits, point) = exact_digits(value);
    let n = round_half_up(&digits, i64::from(point) + fraction_digits as i64);
    let mut m = if n.is_empty() {
        "0".to_string()
    } else {
        digits_to_string(&n)
    };
    if fraction_digits != 0 {
        if m.len() <= fraction_digits {
            let zeros = "0".repeat(fraction_digits + 1 - m.len());
            m.insert_str(0, &zeros);
        }
        let at = m.len() - fraction_digits;
        m.insert(at, '.');
    }
    if value < 0.0 {
        m.insert(0, '-');
    }
    m
}

/// `+"<mantissa>e<exponent>"` in JavaScript: NaN when the mantissa is not a finite number text.
fn js_scientific(mantissa: &str, exponent: i128) -> f64 {
    if mantissa.is_empty()
        || !mantissa
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return f64::NAN;
    }
    // Beyond ±100000 the result is 0 or infinite whatever the (at most 21-digit) mantissa.
    let exponent = exponent.clamp(-100_000, 100_000);
    format!("{mantissa}e{exponent}").parse().unwrap_or(f64::NAN)
}

/// Moves the decimal point of `value` by `places` through its JavaScript string form, as
/// jsonata-js's `$round` does to avoid binary multiplication errors.
fn shift_decimal(value: f64, places: i128) -> f64 {
    let text = js_number_to_string(value);
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let exponent: i128 = exponent.trim_start_matches('+').parse().unwrap_or(0);
            js_scientific(mantissa, exponent.saturating_add(places))
        }
        None => js_scientific(&text, places),
    }
}

/// JavaScript's `Math.round`: nearest integer, ties toward +∞, sign of zero kept.
fn js_math_round(value: f64) -> f64 {
    if !value.is_finite() {
        return value;
    }
    let floor = value.floor();
    let rounded = if value - floor >= 0.5 {
        floor + 1.0
    } else {
        floor
    };
    if rounded == 0.0 && value.is_sign_negative() {
        -0.0
    } else {
        rounded
    }
}

/// $round(value, precision?): round half to even on the decimal representation, as jsonata-js does
/// ($round(2.675, 2) is 2.68, $round(1.005, 2) is 1, $round(-0.5) is -0 (prints 0), negative precision rounds to tens etc.).
pub fn round_half_even(value: f64, precision: i64) -> f64 {
    let places = i128::from(precision);
    let shifted = if precision != 0 {
        shift_decimal(value, places)
    } else {
        value
    };
    let mut result = js_math_round(shifted);
    let diff = result - shifted;
    if diff.abs() == 0.5 && (result % 2.0).abs() == 1.0 {
        result -= 1.0;
    }
    if precision != 0 {
        result = shift_decimal(result, -places);
    }
    if result == 0.0 {
        // jsonata-js turns -0 into 0 (JSON has no -0)
        result = 0.0;
    }
    result
}

// ---------------------------------------------------------------------------------------------
// $number
// ---------------------------------------------------------------------------------------------

/// `^-?[0-9]+(\.[0-9]+)?([Ee][-+]?[0-9]+)?$`, the decimal form $number accepts.
fn is_json_decimal(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// JavaScript's regex `/^(0[xX][0-9A-Fa-f]+)|(0[oO][0-7]+)|(0[bB][0-1]+)$/` (sic: the anchors
/// bind to the first and last alternatives only), which jsonata-js 2.0.6 tests before `Number()`.
fn matches_radix_regex(text: &str) -> bool {
    let b = text.as_bytes();
    let hex = b.first() == Some(&b'0')
        && matches!(b.get(1), Some(b'x' | b'X'))
        && b.get(2).is_some_and(u8::is_ascii_hexdigit);
    let octal = b.windows(3).any(|w| {
        w.first() == Some(&b'0')
            && matches!(w.get(1), Some(b'o' | b'O'))
            && w.get(2).is_some_and(|c| (b'0'..=b'7').contains(c))
    });
    let run = b
        .iter()
        .rev()
        .take_while(|c| matches!(c, b'0' | b'1'))
        .count();
    let binary = run > 0
        && b.len() >= run + 2
        && matches!(b.get(b.len() - run - 1), Some(b'b' | b'B'))
        && b.get(b.len() - run - 2) == Some(&b'0');
    hex || octal || binary
}

/// ECMAScript's StrWhiteSpaceChar (WhiteSpace and LineTerminator), which `Number()` trims.
fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | ' '
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
            | '\u{feff}'
    )
}

/// `Number(text)` for the prefixed integer literals (0x, 0o, 0b, no sign); None when JavaScript
/// would give NaN (or an infinite value).
fn js_radix_literal(text: &str) -> Option<f64> {
    let t = text.trim_matches(is_js_whitespace);
    let radix = match t.get(..2) {
        Some("0x" | "0X") => 16,
        Some("0o" | "0O") => 8,
        Some("0b" | "0B") => 2,
        _ => return None,
    };
    let body = t.get(2..)?;
    if body.is_empty() {
        return None;
    }
    let mut exact: u128 = 0;
    let mut dropped: i32 = 0;
    for c in body.chars() {
        let d = c.to_digit(radix)?;
        if dropped > 0 {
            dropped = dropped.saturating_add(1);
            continue;
        }
        match exact
            .checked_mul(u128::from(radix))
            .and_then(|v| v.checked_add(u128::from(d)))
        {
            Some(v) => exact = v,
            None => dropped = 1,
        }
    }
    let value = exact as f64 * f64::from(radix).powi(dropped);
    value.is_finite().then_some(value)
}

/// $number(string): the string forms jsonata-js's $number accepts (JSON number syntax, and the 0x/0o/0b prefixed
/// integers that 2.0.6 accepts; check which). None when the string is not a number (caller raises D3030).
///
/// The prefixed forms go through jsonata-js's loosely anchored regex and then `Number()`, so
/// surrounding whitespace is accepted where that regex lets it through (`"0x1F "`, `" 0o17 "`).
pub fn parse_number(text: &str) -> Option<f64> {
    if is_json_decimal(text)
        && let Ok(value) = text.parse::<f64>()
        && value.is_finite()
    {
        return Some(value);
    }
    if matches_radix_regex(text) {
        return js_radix_literal(text);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// $formatNumber
// ---------------------------------------------------------------------------------------------

/// The decimal-format properties, as character sequences (jsonata-js lets any of them be a
/// string of any length and compares them as strings).
struct Symbols {
    decimal: Vec<char>,
    grouping: Vec<char>,
    exponent: Vec<char>,
    infinity: Vec<char>,
    minus: Vec<char>,
    nan: Vec<char>,
    percent: Vec<char>,
    per_mille: Vec<char>,
    zero: Vec<char>,
    digit: Vec<char>,
    pattern: Vec<char>,
    /// zero-digit and the nine code points after it
    family: Vec<Option<char>>,
}

impl Symbols {
    fn new(options: &[(String, String)]) -> Symbols {
        let get = |name: &str, default: &str| -> Vec<char> {
            options
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map_or(default, |(_, value)| value.as_str())
                .chars()
                .collect()
        };
        let zero = get("zero-digit", "0");
        let family = match zero.first() {
            Some(&z) => (0..10).map(|i| char::from_u32(u32::from(z) + i)).collect(),
            None => Vec::new(),
        };
        Symbols {
            decimal: get("decimal-separator", "."),
            grouping: get("grouping-separator", ","),
            exponent: get("exponent-separator", "e"),
            infinity: get("infinity", "Infinity"),
            minus: get("minus-sign", "-"),
            nan: get("NaN", "NaN"),
            percent: get("percent", "%"),
            per_mille: get("per-mille", "\u{2030}"),
            zero,
            digit: get("digit", "#"),
            pattern: get("pattern-separator", ";"),
            family,
        }
    }

    fn is_family(&self, c: char) -> bool {
        self.family.contains(&Some(c))
    }

    /// The optional-digit character (`#`), compared as a one-character string.
    fn is_digit_sign(&self, c: char) -> bool {
        self.digit == [c]
    }

    fn is_active(&self, c: char) -> bool {
        self.is_family(c)
            || [
                &self.decimal,
                &self.exponent,
                &self.grouping,
                &self.digit,
                &self.pattern,
            ]
            .iter()
            .any(|symbol| symbol.as_slice() == [c])
    }

    fn count_family(&self, s: &[char]) -> usize {
        s.iter().filter(|&&c| self.is_family(c)).count()
    }

    fn count_digits(&self, s: &[char]) -> usize {
        s.iter()
            .filter(|&&c| self.is_family(c) || self.is_digit_sign(c))
            .count()
    }
}

/// JavaScript `String.prototype.indexOf(needle, from)` on characters.
fn index_of(hay: &[char], needle: &[char], from: usize) -> Option<usize> {
    let from = from.min(hay.len());
    if needle.is_empty() {
        return Some(from);
    }
    let last = hay.len().checked_sub(needle.len())?;
    (from..=last).find(|&i| hay.get(i..i + needle.len()) == Some(needle))
}

/// JavaScript `indexOf` with its -1 for "not found", for the position arithmetic that relies on it.
fn index_of_js(hay: &[char], needle: &[char]) -> i64 {
    index_of(hay, needle, 0).map_or(-1, |i| i as i64)
}

/// JavaScript `String.prototype.lastIndexOf(needle)` on characters.
fn last_index_of(hay: &[char], needle: &[char]) -> Option<usize> {
    if needle.is_empty() {
        return Some(hay.len());
    }
    let last = hay.len().checked_sub(needle.len())?;
    (0..=last)
        .rev()
        .find(|&i| hay.get(i..i + needle.len()) == Some(needle))
}

fn contains(hay: &[char], needle: &[char]) -> bool {
    index_of(hay, needle, 0).is_some()
}

/// JavaScript `substring(start, end)`: both clamped to the length, swapped when reversed.
fn substring(s: &[char], start: usize, end: usize) -> Vec<char> {
    let (a, b) = (start.min(s.len()), end.min(s.len()));
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    s.get(a..b).unwrap_or_default().to_vec()
}

/// JavaScript `slice(start, end)`: negative positions count from the end, all clamped.
fn js_slice(s: &[char], start: i64, end: Option<i64>) -> &[char] {
    let len = s.len() as i64;
    let resolve = |p: i64| if p < 0 { (len + p).max(0) } else { p.min(len) };
    let a = resolve(start);
    let b = end.map_or(len, resolve);
    if a >= b {
        return &[];
    }
    s.get(a as usize..b as usize).unwrap_or_default()
}

/// `s.slice(0, at) + insert + s.slice(at)`, as jsonata-js inserts grouping separators.
fn insert_at(s: &[char], at: i64, insert: &[char]) -> Vec<char> {
    let mut out = js_slice(s, 0, Some(at)).to_vec();
    out.extend_from_slice(insert);
    out.extend_from_slice(js_slice(s, at, None));
    out
}

/// JavaScript `charAt(i)` as a string of zero or one character.
fn char_at(s: &[char], i: i64) -> &[char] {
    if i < 0 {
        return &[];
    }
    let i = i as usize;
    s.get(i..i + 1).unwrap_or_default()
}

/// JavaScript `split(separator)` (an empty separator splits into characters).
fn js_split(s: &[char], separator: &[char]) -> Vec<Vec<char>> {
    if separator.is_empty() {
        return s.iter().map(|&c| vec![c]).collect();
    }
    let mut parts = Vec::new();
    let mut start = 0;
    while let Some(found) = index_of(s, separator, start) {
        parts.push(substring(s, start, found));
        start = found + separator.len();
    }
    parts.push(substring(s, start, s.len()));
    parts
}

/// A sub-picture split as jsonata-js splits it (F&O 4.7.3 terms).
struct Parts {
    prefix: Vec<char>,
    suffix: Vec<char>,
    active: Vec<char>,
    mantissa: Vec<char>,
    exponent: Option<Vec<char>>,
    integer: Vec<char>,
    fractional: Vec<char>,
    picture: Vec<char>,
}

/// The variables F&O 4.7.4 derives from a sub-picture.
#[derive(Clone)]
struct Analysis {
    integer_groups: Vec<usize>,
    regular_grouping: usize,
    min_integer: usize,
    scaling_factor: usize,
    prefix: Vec<char>,
    fractional_groups: Vec<usize>,
    min_fraction: usize,
    max_fraction: usize,
    min_exponent: usize,
    suffix: Vec<char>,
    picture: Vec<char>,
}

fn picture_error(code: &'static str) -> Error {
    let message = match code {
        "D3080" => "The picture string must not contain more than one pattern-separator",
        "D3081" => "A sub-picture must not contain more than one decimal-separator",
        "D3082" => "A sub-picture must not contain more than one percent character",
        "D3083" => "A sub-picture must not contain more than one per-mille character",
        "D3084" => "A sub-picture must not contain both a percent and a per-mille character",
        "D3085" => {
            "The mantissa part of a sub-picture must contain at least one optional or mandatory digit"
        }
        "D3086" => {
            "A sub-picture must not contain a passive character between two active characters"
        }
        "D3087" => "A grouping-separator must not be adjacent to the decimal-separator",
        "D3088" => "The integer part of a sub-picture must not end with a grouping-separator",
        "D3089" => "A sub-picture must not contain two adjacent grouping-separators",
        "D3090" => {
            "The integer part of a sub-picture must not contain a mandatory digit followed by an optional digit"
        }
        "D3091" => {
            "The fractional part of a sub-picture must not contain an optional digit followed by a mandatory digit"
        }
        "D3092" => {
            "A sub-picture with a percent or per-mille character must not have an exponent part"
        }
        _ => "The exponent part of a sub-picture must consist of one or more mandatory digits",
    };
    Error::new(code, message)
}

/// Splits a sub-picture into prefix, active part, mantissa/exponent and integer/fractional parts,
/// exactly as jsonata-js does (the exponent position is taken in the sub-picture but applied to
/// the active part, and without a decimal-separator the suffix stands as the fractional part).
fn split_parts(sub: &[char], sym: &Symbols) -> Result<Parts> {
    let starts_active = |c: &char| sym.is_active(*c) && sym.exponent.as_slice() != [*c];
    // jsonata-js fails (TypeError) on a sub-picture without active characters; no digit at all.
    let first = sub
        .iter()
        .position(starts_active)
        .ok_or_else(|| picture_error("D3085"))?;
    let last = sub
        .iter()
        .rposition(starts_active)
        .ok_or_else(|| picture_error("D3085"))?;
    let prefix = substring(sub, 0, first);
    let suffix = substring(sub, last + 1, sub.len());
    let active = substring(sub, first, last + 1);
    let (mantissa, exponent) = match index_of(sub, &sym.exponent, prefix.len()) {
        Some(at) if at <= sub.len() - suffix.len() => (
            substring(&active, 0, at),
            Some(substring(&active, at + 1, active.len())),
        ),
        _ => (active.clone(), None),
    };
    let (integer, fractional) = match index_of(&mantissa, &sym.decimal, 0) {
        Some(at) => (
            substring(&mantissa, 0, at),
            substring(&mantissa, at + 1, mantissa.len()),
        ),
        None => (mantissa.clone(), suffix.clone()),
    };
    Ok(Parts {
        prefix,
        suffix,
        active,
        mantissa,
        exponent,
        integer,
        fractional,
        picture: sub.to_vec(),
    })
}

/// F&O 4.7.3 picture rules; like jsonata-js, every rule is checked and the last one broken wins.
fn validate(parts: &Parts, sym: &Symbols) -> Result<()> {
    let sub = &parts.picture;
    let mut error = None;
    let decimal_pos = index_of(sub, &sym.decimal, 0);
    if decimal_pos != last_index_of(sub, &sym.decimal) {
        error = Some("D3081");
    }
    if index_of(sub, &sym.percent, 0) != last_index_of(sub, &sym.percent) {
        error = Some("D3082");
    }
    if index_of(sub, &sym.per_mille, 0) != last_index_of(sub, &sym.per_mille) {
        error = Some("D3083");
    }
    if contains(sub, &sym.percent) && contains(sub, &sym.per_mille) {
        error = Some("D3084");
    }
    if sym.count_digits(&parts.mantissa) == 0 {
        error = Some("D3085");
    }
    if parts.active.iter().any(|&c| !sym.is_active(c)) {
        error = Some("D3086");
    }
    match decimal_pos {
        Some(at) => {
            let at = at as i64;
            if char_at(sub, at - 1) == sym.grouping.as_slice()
                || char_at(sub, at + 1) == sym.grouping.as_slice()
            {
                error = Some("D3087");
            }
        }
        None => {
            if char_at(&parts.integer, parts.integer.len() as i64 - 1) == sym.grouping.as_slice() {
                error = Some("D3088");
            }
        }
    }
    let double_grouping = [sym.grouping.as_slice(), sym.grouping.as_slice()].concat();
    if contains(sub, &double_grouping) {
        error = Some("D3089");
    }
    if let Some(at) = index_of(&parts.integer, &sym.digit, 0)
        && sym.count_family(&substring(&parts.integer, 0, at)) > 0
    {
        error = Some("D3090");
    }
    if let Some(at) = last_index_of(&parts.fractional, &sym.digit) {
        let len = parts.fractional.len();
        if sym.count_family(&substring(&parts.fractional, at, len)) > 0 {
            error = Some("D3091");
        }
    }
    if let Some(exponent) = &parts.exponent {
        if !exponent.is_empty() && (contains(sub, &sym.percent) || contains(sub, &sym.per_mille)) {
            error = Some("D3092");
        }
        if exponent.is_empty() || exponent.iter().any(|&c| !sym.is_family(c)) {
            error = Some("D3093");
        }
    }
    match error {
        Some(code) => Err(picture_error(code)),
        None => Ok(()),
    }
}

/// The grouping positions of a part: for the integer part, digits to the right of each
/// separator; for the fractional part, digits to the left. As in jsonata-js, the next separator is
/// always searched in the integer part.
fn grouping_positions(part: &[char], integer: &[char], to_left: bool, sym: &Symbols) -> Vec<usize> {
    let mut positions = Vec::new();
    let mut found = index_of(part, &sym.grouping, 0);
    while let Some(at) = found {
        let counted = if to_left {
            substring(part, 0, at)
        } else {
            substring(part, at, part.len())
        };
        positions.push(sym.count_digits(&counted));
        found = index_of(integer, &sym.grouping, at + 1).filter(|&next| next > at);
    }
    positions
}

/// The regular grouping interval (0 when the positions are not multiples of one interval).
fn regular_grouping(positions: &[usize]) -> usize {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let Some((&first, rest)) = positions.split_first() else {
        return 0;
    };
    let factor = rest.iter().fold(first, |a, &b| gcd(a, b));
    for index in 1..=positions.len() {
        if !positions.contains(&(index * factor)) {
            return 0;
        }
    }
    factor
}

fn analyse(parts: &Parts, sym: &Symbols) -> Analysis {
    let integer_groups = grouping_positions(&parts.integer, &parts.integer, false, sym);
    let regular = regular_grouping(&integer_groups);
    let fractional_groups = grouping_positions(&parts.fractional, &parts.integer, true, sym);
    let mut min_integer = sym.count_family(&parts.integer);
    let scaling_factor = min_integer;
    let mut min_fraction = sym.count_family(&parts.fractional);
    let mut max_fraction = sym.count_digits(&parts.fractional);
    let exponent_present = parts.exponent.is_some();
    if min_integer == 0 && max_fraction == 0 {
        if exponent_present {
            min_fraction = 1;
            max_fraction = 1;
        } else {
            min_integer = 1;
        }
    }
    if exponent_present && min_integer == 0 && contains(&parts.integer, &sym.digit) {
        min_integer = 1;
    }
    if min_integer == 0 && min_fraction == 0 {
        min_fraction = 1;
    }
    let min_exponent = parts.exponent.as_ref().map_or(0, |e| sym.count_family(e));
    Analysis {
        integer_groups,
        regular_grouping: regular,
        min_integer,
        scaling_factor,
        prefix: parts.prefix.clone(),
        fractional_groups,
        min_fraction,
        max_fraction,
        min_exponent,
        suffix: parts.suffix.clone(),
        picture: parts.picture.clone(),
    }
}

/// `Math.abs(value).toFixed(dp)` with ASCII digits replaced by the digit family.
fn make_string(value: f64, dp: usize, sym: &Symbols) -> Vec<char> {
    let text = js_to_fixed(value.abs(), dp);
    let ascii_zero = sym.zero.as_slice() == ['0'];
    text.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) if !ascii_zero => sym
                .family
                .get(d as usize)
                .copied()
                .flatten()
                .unwrap_or('\u{fffd}'),
            _ => c,
        })
        .collect()
}

fn pow10(exponent: i64) -> f64 {
    format!("1e{exponent}").parse().unwrap_or(f64::NAN)
}

/// $formatNumber(number, picture, options?): XPath F&O 3.1 format-number with JSONata's options object
/// (decimal-separator, grouping-separator, exponent-separator, infinity, minus-sign, NaN, percent, per-mille,
/// zero-digit, digit, pattern-separator). `options` are the (name, value) pairs given (values are strings).
/// Errors with JSONata's codes (D3080..D3093 family: check which code goes with which picture problem).
///
/// Follows jsonata-js step by step, including its quirks (fractional grouping found through the
/// integer part, a picture without decimal-separator losing its last character). Where jsonata-js
/// never finishes (exponent pictures with zero or negative numbers, infinities) this formats the
/// magnitude, and NaN and infinities print the `NaN` and `infinity` strings as F&O says.
pub fn format_number(value: f64, picture: &str, options: &[(String, String)]) -> Result<String> {
    let sym = Symbols::new(options);
    let picture: Vec<char> = picture.chars().collect();
    let sub_pictures = js_split(&picture, &sym.pattern);
    if sub_pictures.len() > 2 {
        return Err(picture_error("D3080"));
    }
    let parts = sub_pictures
        .iter()
        .map(|sub| split_parts(sub, &sym))
        .collect::<Result<Vec<_>>>()?;
    for part in &parts {
        validate(part, &sym)?;
    }
    let mut variables: Vec<Analysis> = parts.iter().map(|p| analyse(p, &sym)).collect();
    if let [positive] = variables.as_slice() {
        let mut negative = positive.clone();
        negative.prefix = [sym.minus.as_slice(), positive.prefix.as_slice()].concat();
        variables.push(negative);
    }
    let pic = match variables.as_slice() {
        [positive, _] if value >= 0.0 => positive,
        [_, negative] => negative,
        _ => return Err(picture_error("D3080")),
    };

    if value.is_nan() {
        return Ok(sym.nan.iter().collect());
    }
    let adjusted = if contains(&pic.picture, &sym.percent) {
        value * 100.0
    } else if contains(&pic.picture, &sym.per_mille) {
        value * 1000.0
    } else {
        value
    };
    if adjusted.is_infinite() {
        let text: Vec<char> = [
            pic.prefix.as_slice(),
            sym.infinity.as_slice(),
            pic.suffix.as_slice(),
        ]
        .concat();
        return Ok(text.into_iter().collect());
    }

    let (mantissa, exponent) = if pic.min_exponent == 0 {
        (adjusted, None)
    } else {
        let scaling = pic.scaling_factor as i64;
        let max_mantissa = pow10(scaling);
        let min_mantissa = pow10(scaling - 1);
        let mut mantissa = adjusted.abs();
        let mut exponent: i64 = 0;
        if mantissa > 0.0 {
            while mantissa < min_mantissa {
                mantissa *= 10.0;
                exponent -= 1;
            }
            while mantissa > max_mantissa {
                mantissa /= 10.0;
                exponent += 1;
            }
        }
        (mantissa, Some(exponent))
    };

    let rounded = round_half_even(mantissa, pic.max_fraction as i64);
    let mut s = make_string(rounded, pic.max_fraction, &sym);
    match s.iter().position(|&c| c == '.') {
        Some(at) => {
            s.splice(at..at + 1, sym.decimal.iter().copied());
        }
        None => s.extend_from_slice(&sym.decimal),
    }
    if let [zero] = sym.zero.as_slice() {
        let leading = s.iter().take_while(|&c| c == zero).count();
        s.drain(..leading);
        while s.last() == Some(zero) {
            s.pop();
        }
    }

    let decimal_pos = index_of_js(&s, &sym.decimal);
    let pad_left = pic.min_integer as i64 - decimal_pos;
    let pad_right = pic.min_fraction as i64 - (s.len() as i64 - decimal_pos - 1);
    if pad_left > 0 {
        let mut padded: Vec<char> = sym.zero.repeat(pad_left as usize);
        padded.append(&mut s);
        s = padded;
    }
    if pad_right > 0 {
        s.extend(sym.zero.repeat(pad_right as usize));
    }

    let mut decimal_pos = index_of_js(&s, &sym.decimal);
    if pic.regular_grouping > 0 {
        let g = pic.regular_grouping as i64;
        let group_count = (decimal_pos - 1).div_euclid(g);
        for group in 1..=group_count {
            s = insert_at(&s, decimal_pos - group * g, &sym.grouping);
        }
    } else {
        for &pos in &pic.integer_groups {
            s = insert_at(&s, decimal_pos - pos as i64, &sym.grouping);
            decimal_pos += 1;
        }
    }
    let decimal_pos = index_of_js(&s, &sym.decimal);
    for &pos in &pic.fractional_groups {
        s = insert_at(&s, pos as i64 + decimal_pos + 1, &sym.grouping);
    }
    let decimal_pos = index_of_js(&s, &sym.decimal);
    if !contains(&pic.picture, &sym.decimal) || decimal_pos == s.len() as i64 - 1 {
        s.pop();
    }

    if let Some(exponent) = exponent {
        let mut digits = make_string(exponent as f64, 0, &sym);
        let pad = pic.min_exponent as i64 - digits.len() as i64;
        if pad > 0 {
            let mut padded: Vec<char> = sym.zero.repeat(pad as usize);
            padded.append(&mut digits);
            digits = padded;
        }
        s.extend_from_slice(&sym.exponent);
        if exponent < 0 {
            s.extend_from_slice(&sym.minus);
        }
        s.append(&mut digits);
    }

    let mut out: String = pic.prefix.iter().collect();
    out.extend(s);
    out.extend(pic.suffix.iter());
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// $formatBase
// ---------------------------------------------------------------------------------------------

/// V8's `Number.prototype.toString(radix)` for an integral double and radix 2..36 other than 10:
/// digits below the double's precision are printed as zeros, as V8 does.
fn integer_to_radix(value: f64, radix: u32) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let negative = value < 0.0;
    let radix_f = f64::from(radix);
    let mut integer = value.abs().floor();
    let mut digits: Vec<char> = Vec::new();
    // Double(x).Exponent() > 0, i.e. x is at least 2^53
    let above_precision = |x: f64| (((x.to_bits() >> 52) & 0x7ff) as i64) - 1075 > 0;
    while above_precision(integer / radix_f) {
        integer /= radix_f;
        digits.push('0');
    }
    loop {
        let remainder = integer % radix_f;
        digits.push(char::from_digit(remainder as u32, radix).unwrap_or('0'));
        integer = (integer - remainder) / radix_f;
        if integer <= 0.0 {
            break;
        }
    }
    if negative {
        digits.push('-');
    }
    digits.iter().rev().collect()
}

/// $formatBase(number, radix?): radix 2..36 (default 10) else D3100; the number is rounded half-to-even first, as jsonata-js does.
pub fn format_base(value: f64, radix: Option<f64>) -> Result<String> {
    let value = round_half_even(value, 0);
    let radix = radix.map_or(10.0, |r| round_half_even(r, 0));
    if !(2.0..=36.0).contains(&radix) {
        return Err(Error::new(
            "D3100",
            format!(
                "The radix of the $formatBase function must be between 2 and 36. It was given {}",
                js_number_to_string(radix)
            ),
        ));
    }
    let radix = radix as u32;
    if radix == 10 {
        Ok(js_number_to_string(value))
    } else {
        Ok(integer_to_radix(value, radix))
    }
}

// ---------------------------------------------------------------------------------------------
// Base64 (Node's Buffer with the "binary" = Latin-1 encoding)
// ---------------------------------------------------------------------------------------------

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// $base64encode / $base64decode: jsonata-js on Node works on Latin-1 (btoa/atob semantics:
/// $base64encode("Ⅻ") is "aw==" because only the low byte of each UTF-16 unit is kept). Decode yields Latin-1 chars.
pub fn base64_encode(text: &str) -> String {
    let bytes: Vec<u8> = text.encode_utf16().map(|unit| unit as u8).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    let sextet = |n: u32, shift: u32| char::from(BASE64[((n >> shift) & 63) as usize]);
    for chunk in bytes.chunks(3) {
        let b0 = u32::from(chunk.first().copied().unwrap_or(0));
        let b1 = u32::from(chunk.get(1).copied().unwrap_or(0));
        let b2 = u32::from(chunk.get(2).copied().unwrap_or(0));
        let n = (b0 << 16) | (b1 << 8) | b2;
        out.push(sextet(n, 18));
        out.push(sextet(n, 12));
        out.push(if chunk.len() > 1 { sextet(n, 6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(n, 0) } else { '=' });
    }
    out
}

/// Node's base64 alphabet, which also takes the URL-safe `-` and `_`.
fn base64_value(c: char) -> Option<u32> {
    match c {
        'A'..='Z' => Some(c as u32 - 'A' as u32),
        'a'..='z' => Some(c as u32 - 'a' as u32 + 26),
        '0'..='9' => Some(c as u32 - '0' as u32 + 52),
        '+' | '-' => Some(62),
        '/' | '_' => Some(63),
        _ => None,
    }
}

/// Decodes as Node's `Buffer.from(text, "base64").toString("binary")`: each UTF-16 unit is read
/// through its low byte, characters outside the alphabet are skipped, `=` ends the data, a trailing partial group yields what it holds; each
/// byte becomes the character U+0000..U+00FF. Node never rejects input, so neither does this.
pub fn base64_decode(text: &str) -> Result<String> {
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut count = 0;
    // Node reads each UTF-16 unit of the text through its low byte
    for unit in text.encode_utf16() {
        let c = char::from(unit as u8);
        if c == '=' {
            break;
        }
        let Some(v) = base64_value(c) else {
            continue;
        };
        acc = (acc << 6) | v;
        count += 1;
        if count == 4 {
            for shift in [16, 8, 0] {
                out.push(char::from(((acc >> shift) & 0xff) as u8));
            }
            acc = 0;
            count = 0;
        }
    }
    match count {
        2 => out.push(char::from(((acc >> 4) & 0xff) as u8)),
        3 => {
            out.push(char::from(((acc >> 10) & 0xff) as u8));
            out.push(char::from(((acc >> 2) & 0xff) as u8));
        }
        _ => {}
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// URL encoding (ECMAScript Encode / Decode)
// ---------------------------------------------------------------------------------------------

/// ECMAScript's `uriReserved` plus `#`: what `encodeURI` leaves alone and `decodeURI` keeps escaped.
const URI_RESERVED: &str = ";/?:@&=+$,#";

fn is_uri_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()".contains(c)
}

fn encode(text: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for c in text.chars() {
        if keep(c) {
            out.push(c);
        } else {
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

/// $encodeUrlComponent / $encodeUrl / $decodeUrlComponent / $decodeUrl: JavaScript's encodeURIComponent,
/// encodeURI, decodeURIComponent, decodeURI (which characters each leaves alone; malformed input is error D3140 as jsonata-js raises it).
///
/// A Rust string cannot hold the lone surrogates that make JavaScript's encoders fail, so the
/// encoders always succeed here.
pub fn encode_url_component(text: &str) -> Result<String> {
    Ok(encode(text, is_uri_unreserved))
}

/// JavaScript's `encodeURI`: also leaves the reserved characters and `#` alone.
pub fn encode_url(text: &str) -> Result<String> {
    Ok(encode(text, |c| {
        is_uri_unreserved(c) || URI_RESERVED.contains(c)
    }))
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The byte of the `%XX` escape at `at`, or None when there is none there.
fn escape_at(bytes: &[u8], at: usize) -> Option<u8> {
    if bytes.get(at) != Some(&b'%') {
        return None;
    }
    let high = hex_value(*bytes.get(at + 1)?)?;
    let low = hex_value(*bytes.get(at + 2)?)?;
    Some((high << 4) | low)
}

/// ECMAScript's Decode: `%XX` escapes of UTF-8 sequences become characters, except single-byte
/// ones in `keep_escaped`, which stay as written; anything malformed is D3140.
fn decode(text: &str, keep_escaped: &str, function: &str) -> Result<String> {
    let malformed = || {
        Error::new(
            "D3140",
            format!("Malformed URL passed to ${function}(): \"{text}\""),
        )
    };
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let first = escape_at(bytes, i).ok_or_else(malformed)?;
        if first < 0x80 {
            if keep_escaped.as_bytes().contains(&first) {
                out.extend_from_slice(bytes.get(i..i + 3).ok_or_else(malformed)?);
            } else {
                out.push(first);
            }
            i += 3;
            continue;
        }
        let length = first.leading_ones() as usize;
        if length == 1 || length > 4 {
            return Err(malformed());
        }
        let mut octets = vec![first];
        for j in 1..length {
            let byte = escape_at(bytes, i + 3 * j).ok_or_else(malformed)?;
            if byte & 0xc0 != 0x80 {
                return Err(malformed());
            }
            octets.push(byte);
        }
        // from_utf8 rejects overlong forms, surrogates and code points above U+10FFFF
        std::str::from_utf8(&octets).map_err(|_| malformed())?;
        out.extend_from_slice(&octets);
        i += 3 * length;
    }
    String::from_utf8(out).map_err(|_| malformed())
}

/// JavaScript's `decodeURIComponent`.
pub fn decode_url_component(text: &str) -> Result<String> {
    decode(text, "", "decodeUrlComponent")
}

/// JavaScript's `decodeURI`: escapes of reserved characters and `#` stay escaped.
pub fn decode_url(text: &str) -> Result<String> {
    decode(text, URI_RESERVED, "decodeUrl")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn fmt(
        value: f64,
        picture: &str,
        options: &[(&str, &str)],
    ) -> std::result::Result<String, &'static str> {
        format_number(value, picture, &opts(options)).map_err(|e| e.code)
    }

    /// function-formatNumber: every case that is a direct call with literal arguments.
    #[test]
    fn format_number_suite() {
        type Case<'a> = (f64, &'a str, &'a [(&'a str, &'a str)], &'a str);
        let ok: &[Case] = &[
            (12345.6, "#,###.00", &[], "12,345.60"),
            (123412345678.9, "9,9,99.99", &[], "123412345,6,78.90"),
            (1234.56789, "9,999.999,999", &[], "1,234.567,890"),
            (123.9, "9999", &[], "0124"),
            (0.4857, "###.###\u{2030}", &[], "485.7\u{2030}"),
            (0.14, "###pm", &[("per-mille", "pm")], "140pm"),
            (-6.0, "000", &[], "-006"),
            (
                1234.5678,
                "①①.①①①e①",
                &[("zero-digit", "\u{245f}")],
                "\u{2460}\u{2461}.\u{2462}\u{2463}\u{2465}e\u{2461}",
            ),
            (0.234, "0.0e0", &[], "2.3e-1"),
            (0.234, "#.00e0", &[], "0.23e0"),
            (0.123, "#.e9", &[], "0.1e0"),
            (0.234, ".00e0", &[], ".23e0"),
            (
                2.14 * 86.58,
                "PREFIX##00.000###SUFFIX",
                &[],
                "PREFIX185.2812SUFFIX",
            ),
            (1E20, "#,######", &[], "100,000000,000000,000000"),
            (2.0, "000.000", &[], "002.000"),
            (0.1, "AeAAA", &[("zero-digit", "A")], "Be-AAB"),
        ];
        for (value, picture, options, expected) in ok {
            assert_eq!(
                fmt(*value, picture, options),
                Ok(expected.to_string()),
                "{picture}"
            );
        }
        let errors: &[(&str, &str)] = &[
            ("#;#;#", "D3080"),
            ("#.0.0", "D3081"),
            ("#0%%", "D3082"),
            ("0+.e0", "D3086"),
            ("0,.e0", "D3087"),
            ("0,", "D3088"),
            ("0#.e0", "D3090"),
            ("#0.0e0%", "D3092"),
            ("#0.0e0,0", "D3093"),
        ];
        for (picture, code) in errors {
            assert_eq!(fmt(20.0, picture, &[]), Err(*code), "{picture}");
        }
    }

    /// Behaviour beyond the suite's cases: the other picture errors, sub-pictures, grouping,
    /// exponents, percent and options.
    #[test]
    fn format_number_more() {
        assert_eq!(fmt(12345678.9, "9,999.99", &[]), Ok("12,345,678.90".into()));
        assert_eq!(fmt(0.14, "01%", &[]), Ok("14%".into()));
        assert_eq!(fmt(1234.5678, "00.000e0", &[]), Ok("12.346e2".into()));
        assert_eq!(fmt(1234.5678, "00.000e000", &[]), Ok("12.346e002".into()));
        assert_eq!(fmt(0.00012345, "0.00e0", &[]), Ok("1.23e-4".into()));
        assert_eq!(fmt(-1234.5, "0.0e0", &[]), Ok("-1.2e3".into()));
        assert_eq!(fmt(0.0, "0.0e0", &[]), Ok("0.0e0".into()));
        assert_eq!(fmt(1234567.891, "#,##0.00", &[]), Ok("1,234,567.89".into()));
        assert_eq!(fmt(0.5, "#,##0.00", &[]), Ok("0.50".into()));
        assert_eq!(fmt(0.0, "#", &[]), Ok("0".into()));
        assert_eq!(fmt(-3.0, "#;(#)", &[]), Ok("(3)".into()));
        assert_eq!(fmt(3.0, "#;(#)", &[]), Ok("3".into()));
        assert_eq!(fmt(-0.25, "0.0", &[]), Ok("-0.2".into()));
        assert_eq!(fmt(2.5, "0", &[]), Ok("2".into()));
        assert_eq!(fmt(3.5, "0", &[]), Ok("4".into()));
        assert_eq!(
            fmt(
                1234.5,
                "#.##0,00",
                &[("decimal-separator", ","), ("grouping-separator", ".")]
            ),
            Ok("1.234,50".into())
        );
        assert_eq!(
            fmt(-5.0, "0", &[("minus-sign", "\u{2212}")]),
            Ok("\u{2212}5".into())
        );
        assert_eq!(fmt(f64::NAN, "0", &[]), Ok("NaN".into()));
        assert_eq!(fmt(f64::INFINITY, "0", &[]), Ok("Infinity".into()));
        assert_eq!(fmt(f64::NEG_INFINITY, "0", &[]), Ok("-Infinity".into()));
        for (picture, code) in [
            ("#0\u{2030}\u{2030}", "D3083"),
            ("#0%\u{2030}", "D3084"),
            ("e", "D3085"),
            ("abc", "D3085"),
            ("0,,0", "D3089"),
            ("#0.#0", "D3091"),
        ] {
            assert_eq!(fmt(20.0, picture, &[]), Err(code), "{picture}");
        }
        // no panics on odd options
        let _ = fmt(1.5, "0.0", &[("decimal-separator", ""), ("zero-digit", "")]);
        let _ = fmt(1.5, "#,#,##0.0", &[("grouping-separator", "")]);
        let _ = fmt(1.5, "##", &[("pattern-separator", "")]);
        let _ = fmt(1e300, "#,##0.0##", &[]);
        let _ = fmt(5e-324, "0.0e0", &[]);
        // jsonata-js inserts irregular grouping separators even where there are no digits
        // (its `slice` with negative positions), so this prints ",5,".
        assert_eq!(fmt(5.0, "#,#,##0", &[]), Ok(",5,".into()));
        assert_eq!(fmt(1234567.0, "#,#,##0", &[]), Ok("123,4,567".into()));
    }

    #[test]
    fn format_base_suite() {
        assert_eq!(format_base(100.0, None), Ok("100".into()));
        assert_eq!(format_base(100.0, Some(2.0)), Ok("1100100".into()));
        assert_eq!(format_base(100.0, Some(36.0)), Ok("2s".into()));
        assert_eq!(format_base(99.5, Some(2.5)), Ok("1100100".into()));
        assert_eq!(
            format_base(100.0, Some(1.0)).map_err(|e| e.code),
            Err("D3100")
        );
        assert_eq!(
            format_base(100.0, Some(37.0)).map_err(|e| e.code),
            Err("D3100")
        );
        // beyond the suite
        assert_eq!(format_base(-255.0, Some(16.0)), Ok("-ff".into()));
        assert_eq!(format_base(0.0, Some(2.0)), Ok("0".into()));
        assert_eq!(format_base(2.5, None), Ok("2".into()));
        assert_eq!(
            format_base(1e21, Some(16.0)),
            Ok("3635c9adc5dea00000".into())
        );
        assert_eq!(
            format_base(2f64.powi(60), Some(2.0)),
            Ok(format!("1{}", "0".repeat(60)))
        );
        assert_eq!(
            format_base(1.0, Some(f64::NAN)).map_err(|e| e.code),
            Err("D3100")
        );
    }

    #[test]
    fn round_suite() {
        let cases: &[(f64, i64, f64)] = &[
            (4.0, 0, 4.0),
            (2.3, 0, 2.0),
            (2.5, 0, 2.0),
            (3.5, 0, 4.0),
            (-0.3, 0, 0.0),
            (0.5, 0, 0.0),
            (-7.5, 0, -8.0),
            (-8.5, 0, -8.0),
            (4.49, 1, 4.5),
            (4.515, 2, 4.52),
            (12345.0, -2, 12300.0),
            (12350.0, -2, 12400.0),
            (6.022e-23, 24, 6e-23),
            // beyond the suite
            (2.675, 2, 2.68),
            (1.005, 2, 1.0),
            (-0.5, 0, 0.0),
            (-1.5, 0, -2.0),
            (-2.5, 0, -2.0),
            (-2.675, 2, -2.68),
            (1.55, 1, 1.6),
            (2.55, 1, 2.6),
            (12250.0, -2, 12200.0),
            (1e21, 2, 1e21),
            (123.456, 10, 123.456),
            (0.0, 3, 0.0),
        ];
        for &(value, precision, expected) in cases {
            let got = round_half_even(value, precision);
            assert_eq!(got, expected, "$round({value}, {precision})");
        }
        assert!(round_half_even(-0.5, 0).is_sign_positive());
        assert!(round_half_even(f64::NAN, 2).is_nan());
        let _ = round_half_even(1.5, i64::MAX);
        let _ = round_half_even(1.5, i64::MIN);
        assert_eq!(round_half_even(f64::INFINITY, 0), f64::INFINITY);
    }

    #[test]
    fn number_suite() {
        let ok: &[(&str, f64)] = &[
            ("0", 0.0),
            ("-0.05", -0.05),
            ("1.0e-2", 0.01),
            ("1e0", 1.0),
            ("00", 0.0),
            ("0123", 123.0),
            ("000.00123000", 0.00123),
            ("0x12", 18.0),
            // beyond the suite
            ("0X1f", 31.0),
            ("0o17", 15.0),
            ("0b101", 5.0),
            ("0x12 ", 18.0),
            (" 0o17 ", 15.0),
            (" 0b11", 3.0),
            ("1E+3", 1000.0),
            ("-12.5e-1", -1.25),
        ];
        for &(text, expected) in ok {
            assert_eq!(parse_number(text), Some(expected), "{text}");
        }
        for text in [
            "10e500", "1/2", "", "[1]", "1.", ".5", "+1", " 1", "1 ", "0x", "0x1g", "-0x12",
            "0b12", "Infinity", "NaN", "1e", "--1", " 0x12", "0b11 ",
        ] {
            assert_eq!(parse_number(text), None, "{text:?}");
        }
        assert!(parse_number("-0").is_some_and(|v| v == 0.0));
    }

    #[test]
    fn number_to_string() {
        let cases: &[(f64, &str)] = &[
            (5.0, "5"),
            (22.0 / 7.0, "3.142857142857143"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (-0.0, "0"),
            (-42.0, "-42"),
            (2.5318, "2.5318"),
            (6.022e23, "6.022e+23"),
            (0.1 + 0.2, "0.30000000000000004"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (123.456, "123.456"),
            (0.000123, "0.000123"),
            // exactly halfway between two 16-digit forms: JavaScript takes the even one
            (738061057111411.2, "738061057111411.2"),
            (-930028800847448.2, "-930028800847448.2"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for &(value, expected) in cases {
            assert_eq!(js_number_to_string(value), expected);
        }
    }

    /// function-string and string-concat number printing: `$string` prints to_precision_15.
    #[test]
    fn string_suite() {
        let s = |v: f64| js_number_to_string(to_precision_15(v));
        assert_eq!(s(5.0), "5");
        assert_eq!(s(22.0 / 7.0), "3.14285714285714");
        assert_eq!(s(1e-6), "0.000001");
        assert_eq!(s(1e-7), "1e-7");
        assert_eq!(s(1e20), "100000000000000000000");
        assert_eq!(s(1e21), "1e+21");
        assert_eq!(s(78.8 / 2.0), "39.4");
        assert_eq!(s(0.1 + 0.2), "0.3");
        assert_eq!(s(5890840712243077.0), "5890840712243080");
        assert_eq!(s(34.45 * 2.0 + 21.67), "90.57");
        assert_eq!(s(1.0), "1");
        assert_eq!(s(2.0), "2");
        // ties at the 16th digit go up, as toPrecision picks the larger n
        assert_eq!(s(100000000000000.5), "100000000000001");
        assert_eq!(s(-100000000000000.5), "-100000000000001");
        assert_eq!(s(1000000000000000.5), "1000000000000000");
        assert_eq!(s(999999999999999.9), "1000000000000000");
        assert_eq!(s(1.2345678901234567e-300), "1.23456789012346e-300");
        // Number("1.79769313486232e+308") overflows in JavaScript too
        assert_eq!(s(f64::MAX), "Infinity");
    }

    #[test]
    fn to_fixed() {
        assert_eq!(js_to_fixed(2.5, 0), "3");
        assert_eq!(js_to_fixed(1.005, 2), "1.00");
        assert_eq!(js_to_fixed(0.0, 2), "0.00");
        assert_eq!(js_to_fixed(0.05, 1), "0.1");
        assert_eq!(js_to_fixed(123.456, 1), "123.5");
        assert_eq!(js_to_fixed(0.000001, 3), "0.000");
        assert_eq!(js_to_fixed(-1.5, 0), "-2");
        assert_eq!(js_to_fixed(1e21, 2), "1e+21");
        assert_eq!(js_to_fixed(0.5, 0), "1");
        assert_eq!(js_to_fixed(0.4, 0), "0");
        assert_eq!(js_to_fixed(9.995, 2), "9.99");
        assert_eq!(js_to_fixed(99.5, 0), "100");
    }

    #[test]
    fn base64_suite() {
        assert_eq!(base64_encode("hello:world"), "aGVsbG86d29ybGQ=");
        assert_eq!(base64_decode("aGVsbG86d29ybGQ="), Ok("hello:world".into()));
        // beyond the suite
        assert_eq!(base64_encode("\u{216b}"), "aw==");
        assert_eq!(base64_encode(""), "");
        assert_eq!(base64_encode("ab"), "YWI=");
        assert_eq!(base64_encode("\u{e9}"), "6Q==");
        assert_eq!(base64_decode("6Q=="), Ok("\u{e9}".into()));
        assert_eq!(base64_decode("YWI"), Ok("ab".into()));
        assert_eq!(base64_decode("YW Jj\n"), Ok("abc".into()));
        assert_eq!(base64_decode("Y"), Ok("".into()));
        assert_eq!(base64_decode("_-8="), Ok("\u{ff}\u{ef}".into()));
        // Node reads non-ASCII through the low byte: ш е л л ы are H 5 ; ; K
        assert_eq!(base64_decode("шеллы"), Ok("\u{1f}\u{92}".into()));
    }

    #[test]
    fn url_suite() {
        assert_eq!(
            encode_url("https://mozilla.org/?x=шеллы"),
            Ok("https://mozilla.org/?x=%D1%88%D0%B5%D0%BB%D0%BB%D1%8B".into())
        );
        assert_eq!(decode_url_component("%3Fx%3Dtest"), Ok("?x=test".into()));
        assert_eq!(decode_url("%E0%A4%A").map_err(|e| e.code), Err("D3140"));
        assert_eq!(
            decode_url_component("%E0%A4%A").map_err(|e| e.code),
            Err("D3140")
        );
        // beyond the suite
        assert_eq!(
            encode_url_component("?x=шеллы"),
            Ok("%3Fx%3D%D1%88%D0%B5%D0%BB%D0%BB%D1%8B".into())
        );
        assert_eq!(
            encode_url_component("a b-_.!~*'()#"),
            Ok("a%20b-_.!~*'()%23".into())
        );
        assert_eq!(encode_url("a b;/?:@&=+$,#"), Ok("a%20b;/?:@&=+$,#".into()));
        assert_eq!(encode_url_component("😀"), Ok("%F0%9F%98%80".into()));
        assert_eq!(decode_url("%3Fx%3d%20%D1%88"), Ok("%3Fx%3d ш".into()));
        assert_eq!(decode_url_component("%F0%9F%98%80+"), Ok("😀+".into()));
        for bad in [
            "%",
            "%4",
            "%G0",
            "%C0%80",
            "%ED%A0%80",
            "%80",
            "%F8%80%80%80",
            "%E0%A4",
            "%E0%A4x",
        ] {
            assert_eq!(
                decode_url_component(bad).map_err(|e| e.code),
                Err("D3140"),
                "{bad}"
            );
        }
    }
}
