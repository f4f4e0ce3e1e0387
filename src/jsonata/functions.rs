//! The built-in functions of JSONata 2.0.6 and the ones Step Functions adds (`$partition`,
//! `$range`, `$hash`, `$random` with a seed, `$uuid`, `$parse`), with their signatures and
//! the helpers the evaluator shares with them (truthiness, `$string`'s printing, equality).

use std::cmp::Ordering;
use std::rc::Rc;
use std::sync::OnceLock;

use super::error::{Error, Result};
use super::eval::{Eval, lookup};
use super::func::{Builtin, Frame, Func};
use super::numfmt;
use super::regex::JsRegex;
use super::signature::Signature;
use super::value::{Val, deep_equal, flag};
use crate::json::Str;

type Imp = fn(&mut Eval, &[Val], &Val, &Rc<Frame>) -> Result<Val>;

const fn b(name: &'static str, signature: &'static str, arity: usize, imp: Imp) -> Builtin {
    Builtin {
        name,
        signature,
        arity,
        imp,
    }
}

static BUILTINS: &[Builtin] = &[
    b("sum", "<a<n>:n>", 1, sum),
    b("count", "<a:n>", 1, count),
    b("max", "<a<n>:n>", 1, max),
    b("min", "<a<n>:n>", 1, min),
    b("average", "<a<n>:n>", 1, average),
    // `prettify` has a default value in jsonata-js, so the function declares one parameter.
    b("string", "<x-b?:s>", 1, string),
    b("substring", "<s-nn?:s>", 3, substring),
    b("substringBefore", "<s-s:s>", 2, substring_before),
    b("substringAfter", "<s-s:s>", 2, substring_after),
    b("lowercase", "<s-:s>", 1, lowercase),
    b("uppercase", "<s-:s>", 1, uppercase),
    b("length", "<s-:n>", 1, length),
    b("trim", "<s-:s>", 1, trim),
    b("pad", "<s-ns?:s>", 3, pad),
    b("match", "<s-f<s:o>n?:a<o>>", 3, match_),
    b("contains", "<s-(sf):b>", 2, contains),
    b("replace", "<s-(sf)(sf)n?:s>", 4, replace),
    b("split", "<s-(sf)n?:a<s>>", 3, split),
    b("join", "<a<s>s?:s>", 2, join),
    b("formatNumber", "<n-so?:s>", 3, format_number),
    b("formatBase", "<n-n?:s>", 2, format_base),
    b("formatInteger", "<n-s:s>", 2, format_integer),
    b("parseInteger", "<s-s:n>", 2, parse_integer),
    b("number", "<(nsb)-:n>", 1, number),
    b("floor", "<n-:n>", 1, floor),
    b("ceil", "<n-:n>", 1, ceil),
    b("round", "<n-n?:n>", 2, round),
    b("abs", "<n-:n>", 1, abs),
    b("sqrt", "<n-:n>", 1, sqrt),
    b("power", "<n-n:n>", 2, power),
    b("random", "<n?:n>", 0, random),
    b("boolean", "<x-:b>", 1, boolean),
    b("not", "<x-:b>", 1, not),
    b("map", "<af>", 2, map),
    b("zip", "<a+>", 0, zip),
    b("filter", "<af>", 2, filter),
    b("single", "<af?>", 2, single),
    b("reduce", "<afj?:j>", 3, reduce),
    b("sift", "<o-f?:o>", 2, sift),
    b("keys", "<x-:a<s>>", 1, keys),
    b("lookup", "<x-s:x>", 2, lookup_fn),
    b("append", "<xx:a>", 2, append_fn),
    b("exists", "<x:b>", 1, exists),
    b("spread", "<x-:a<o>>", 1, spread),
    b("merge", "<a<o>:o>", 1, merge),
    b("reverse", "<a:a>", 1, reverse),
    b("each", "<o-f:a>", 2, each),
    b("error", "<s?:x>", 1, error),
    b("assert", "<bs?:x>", 2, assert),
    b("type", "<x:s>", 1, type_),
    b("sort", "<af?:a>", 2, sort),
    b("shuffle", "<a:a>", 1, shuffle),
    b("distinct", "<x:x>", 1, distinct),
    b("base64encode", "<s-:s>", 1, base64encode),
    b("base64decode", "<s-:s>", 1, base64decode),
    b("encodeUrlComponent", "<s-:s>", 1, encode_url_component),
    b("encodeUrl", "<s-:s>", 1, encode_url),
    b("decodeUrlComponent", "<s-:s>", 1, decode_url_component),
    b("decodeUrl", "<s-:s>", 1, decode_url),
    b("eval", "<sx?:x>", 2, eval_fn),
    b("toMillis", "<s-s?:n>", 2, to_millis),
    b("fromMillis", "<n-s?s?:s>", 3, from_millis),
    b("clone", "<(oa)-:o>", 1, clone),
    b("now", "<s?s?:s>", 2, now),
    b("millis", "<:n>", 0, millis),
    // Added by AWS Step Functions.
    b("partition", "<an:a>", 2, partition),
    b("range", "<nnn?:a>", 3, range),
    b("hash", "<ss?:s>", 2, hash),
    b("uuid", "<:s>", 0, uuid),
    b("parse", "<s-:j>", 1, parse),
];

/// The index of `$string` in the table (`string_index_is_the_table_s` checks it).
pub const STRING: u16 = 5;

fn signatures() -> &'static Vec<Signature> {
    static SIGS: OnceLock<Vec<Signature>> = OnceLock::new();
    SIGS.get_or_init(|| {
        BUILTINS
            .iter()
            .map(|b| Signature::parse(b.signature).unwrap_or_else(|_| unreachable_sig()))
            .collect()
    })
}

/// Every signature in the table parses (`every_builtin_signature_parses` checks it), so
/// this is never reached; it stands in for a panic on a path that has no error to return.
fn unreachable_sig() -> Signature {
    Signature::parse("<x*>").unwrap_or_else(|_| std::process::abort())
}

/// The built-in named `name` as a function value.
pub fn builtin(name: &str) -> Option<Val> {
    let i = builtin_index(name)? as usize;
    Some(Val::Func(Rc::new(Func::Builtin(
        &BUILTINS[i],
        &signatures()[i],
    ))))
}

/// The index of the built-in named `name`, resolved once when an expression is compiled.
pub fn builtin_index(name: &str) -> Option<u16> {
    BUILTINS
        .iter()
        .position(|b| b.name == name)
        .map(|i| i as u16)
}

/// Calls built-in `i` directly (no function value is made): signature check, then the call.
pub fn call_builtin(
    ev: &mut Eval,
    i: u16,
    args: &[Val],
    input: &Val,
    env: &Rc<Frame>,
) -> Result<Val> {
    let b = &BUILTINS[i as usize];
    let signature = &signatures()[i as usize];
    if signature.passes(args) {
        return (b.imp)(ev, args, input, env);
    }
    let fixed = signature.validate(args, input)?;
    (b.imp)(ev, &fixed, input, env)
}

pub fn transform_signature() -> &'static Signature {
    static SIG: OnceLock<Signature> = OnceLock::new();
    SIG.get_or_init(|| Signature::parse("<(oa):o>").unwrap_or_else(|_| unreachable_sig()))
}

// ---------------------------------------------------------------------------------------
// Helpers shared with the evaluator.

pub fn check_finite(x: f64) -> Result<()> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(Error::new(
            "D1001",
            format!("Number out of range: {}", num_text(x)),
        ))
    }
}

/// A number as JavaScript prints it.
pub fn num_text(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        numfmt::js_number_to_string(x)
    }
}

/// A value for an error message.
pub fn describe(v: &Val) -> String {
    match v {
        Val::Undefined => "undefined".into(),
        Val::Func(_) => "a function".into(),
        Val::Num(x) => num_text(*x),
        other => stringify(other, false, false).unwrap_or_default(),
    }
}

/// The effective boolean value (`$boolean`), or false for undefined.
pub fn truthy(v: &Val) -> Result<bool> {
    Ok(boolean_of(v)?.unwrap_or(false))
}

fn boolean_of(v: &Val) -> Result<Option<bool>> {
    Ok(Some(match v {
        Val::Undefined => return Ok(None),
        Val::Array(_) | Val::JArray(_) => {
            let items = v.items();
            match items.len() {
                0 => false,
                1 => boolean_of(&items[0])?.unwrap_or(false),
                _ => {
                    let mut any = false;
                    for i in &items {
                        if boolean_of(i)?.unwrap_or(false) {
                            any = true;
                            break;
                        }
                    }
                    any
                }
            }
        }
        Val::Str(s) => !s.is_empty(),
        Val::Num(x) => {
            check_finite(*x)?;
            *x != 0.0
        }
        Val::Object(o) => !o.is_empty(),
        Val::JObject(o) => !o.is_empty(),
        Val::Bool(b) => *b,
        Val::Null | Val::Func(_) => false,
    }))
}

/// JavaScript's `===`: primitives by value, containers and functions by identity.
pub fn strict_equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Array(x), Val::Array(y)) => Rc::ptr_eq(x, y),
        (Val::JArray(x), Val::JArray(y)) => std::sync::Arc::ptr_eq(x, y),
        (Val::Object(x), Val::Object(y)) => Rc::ptr_eq(x, y),
        (Val::JObject(x), Val::JObject(y)) => std::sync::Arc::ptr_eq(x, y),
        (Val::Func(x), Val::Func(y)) => Rc::ptr_eq(x, y),
        _ => false,
    }
}

/// String order as JavaScript compares strings: by UTF-16 code unit.
pub fn cmp_str(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// `fn.append`: concatenates, making arrays of single values.
pub fn append(a: Val, b: Val) -> Val {
    if a.is_undefined() {
        return b;
    }
    if b.is_undefined() {
        return a;
    }
    let mut items = if a.is_array() {
        a.items()
    } else {
        vec![a.clone()]
    };
    if b.is_array() {
        items.extend(b.items());
    } else {
        items.push(b);
    }
    Val::array(items)
}

/// Appends what `&` makes of `v` to `out` (nothing for undefined).
pub fn append_string(out: &mut String, v: &Val) -> Result<()> {
    match v {
        Val::Undefined => Ok(()),
        other => write_string(other, out),
    }
}

/// `$string` of a value: strings as they are, everything else as JSON with numbers at 15
/// significant digits.
pub fn to_string(v: &Val) -> Result<String> {
    let mut out = String::with_capacity(64);
    write_string(v, &mut out)?;
    Ok(out)
}

/// `$string` of a value appended to `out` (no string is made for it on the way).
pub fn write_string(v: &Val, out: &mut String) -> Result<()> {
    match v {
        Val::Str(s) => out.push_str(s),
        Val::Func(_) => {}
        Val::Num(x) if !x.is_finite() => {
            return Err(Error::new(
                "D3001",
                "Attempting to invoke string function on Infinity or NaN",
            ));
        }
        Val::Array(a) if a.has(flag::OUTER_WRAPPER) => {
            let first = a.items.first().cloned().unwrap_or_default();
            write_json(&first, false, true, 0, out)?;
        }
        other => write_json(other, false, true, 0, out)?,
    }
    Ok(())
}

/// JSON.stringify as jsonata-js calls it (numbers through toPrecision(15) when `round`).
pub fn stringify(v: &Val, pretty: bool, round: bool) -> Result<String> {
    let mut out = String::new();
    let v = match v {
        Val::Array(a) if a.has(flag::OUTER_WRAPPER) => a.items.first().cloned().unwrap_or_default(),
        other => other.clone(),
    };
    write_json(&v, pretty, round, 0, &mut out)?;
    Ok(out)
}

fn write_json(v: &Val, pretty: bool, round: bool, depth: usize, out: &mut String) -> Result<()> {
    // A value an expression nested deeper than JSON allows (one `[$a]` per `$reduce` step)
    // ends with U1001, as the JavaScript stack would, instead of overflowing this one.
    if depth > 2000 {
        return Err(Error::new(
            "U1001",
            "Stack overflow error: the value is nested too deeply to print",
        ));
    }
    let indent = |out: &mut String, d: usize| {
        if pretty {
            out.push('\n');
            for _ in 0..d {
                out.push_str("  ");
            }
        }
    };
    match v {
        Val::Undefined | Val::Null => out.push_str("null"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Num(x) => {
            check_finite(*x)?;
            let x = if round {
                numfmt::to_precision_15(*x)
            } else {
                *x
            };
            if x.fract() == 0.0 && x.abs() < 1e15 {
                out.push_str(itoa::Buffer::new().format(x as i64));
            } else if x.is_finite() {
                out.push_str(&numfmt::js_number_to_string(x));
            } else {
                out.push_str("null");
            }
        }
        Val::Str(s) => quote(s, out),
        Val::Func(_) => out.push_str("\"\""),
        Val::JArray(items) => {
            // Read where it lies: each item becomes a value only as it is written.
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                write_json(&Val::from_json(item), pretty, round, depth + 1, out)?;
            }
            if !items.is_empty() {
                indent(out, depth);
            }
            out.push(']');
        }
        Val::JObject(o) => {
            out.push('{');
            for (i, (k, item)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                quote(k, out);
                out.push(':');
                if pretty {
                    out.push(' ');
                }
                write_json(&Val::from_json(item), pretty, round, depth + 1, out)?;
            }
            if !o.is_empty() {
                indent(out, depth);
            }
            out.push('}');
        }
        Val::Array(_) => {
            let items = v.items();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                write_json(item, pretty, round, depth + 1, out)?;
            }
            if !items.is_empty() {
                indent(out, depth);
            }
            out.push(']');
        }
        Val::Object(_) => {
            let entries = v.entries();
            out.push('{');
            let mut first = true;
            for (k, item) in entries.iter() {
                if item.is_undefined() {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                indent(out, depth + 1);
                quote(k, out);
                out.push(':');
                if pretty {
                    out.push(' ');
                }
                write_json(item, pretty, round, depth + 1, out)?;
            }
            if !first {
                indent(out, depth);
            }
            out.push('}');
        }
    }
    Ok(())
}

/// A string as JSON.stringify writes it.
fn quote(s: &str, out: &mut String) {
    crate::json::write_str_to_string(s, out);
}

/// `$clone`: a deep copy made of values built here (so a transform can update it).
pub fn deep_clone(v: &Val) -> Val {
    match v {
        Val::Array(_) | Val::JArray(_) => Val::array(
            v.items()
                .iter()
                .map(|i| match i {
                    Val::Undefined | Val::Func(_) => Val::Null,
                    other => deep_clone(other),
                })
                .collect(),
        ),
        Val::Object(_) | Val::JObject(_) => Val::object(
            v.entries()
                .into_iter()
                .filter(|(_, i)| !matches!(i, Val::Undefined | Val::Func(_)))
                .map(|(k, i)| (k, deep_clone(&i)))
                .collect(),
        ),
        Val::Num(x) if !x.is_finite() => Val::Null,
        other => other.clone(),
    }
}

/// Character offset (UTF-16 units, as JavaScript counts) of byte offset `byte` in `s`.
fn utf16_index(s: &str, byte: usize) -> usize {
    let prefix = s.get(..byte).unwrap_or(s);
    if prefix.is_ascii() {
        prefix.len()
    } else {
        prefix.encode_utf16().count()
    }
}

/// Byte offset of UTF-16 index `units` in `s` (clamped).
fn byte_index(s: &str, units: f64) -> usize {
    if units <= 0.0 || units.is_nan() {
        return 0;
    }
    let units = units as usize;
    if s.is_ascii() {
        return units.min(s.len());
    }
    let mut count = 0;
    for (i, c) in s.char_indices() {
        if count >= units {
            return i;
        }
        count += c.len_utf16();
    }
    s.len()
}

/// The object a regex returns for a match at or after byte `from`: `match`, `start`, `end`,
/// `groups` and `next`.
pub fn regex_match_object(re: &std::sync::Arc<JsRegex>, text: &Str, from: usize) -> Val {
    let Some(m) = re.find_at(text, from) else {
        return Val::Undefined;
    };
    let groups = m
        .groups
        .iter()
        .map(|g| match g {
            Some((s, e)) => Val::str(&text[*s..*e]),
            None => Val::Undefined,
        })
        .collect();
    Val::object(vec![
        (Str::new("match"), Val::str(&text[m.start..m.end])),
        (
            Str::new("start"),
            Val::Num(utf16_index(text, m.start) as f64),
        ),
        (Str::new("end"), Val::Num(utf16_index(text, m.end) as f64)),
        (Str::new("groups"), Val::array(groups)),
        (
            Str::new("next"),
            Val::Func(Rc::new(Func::RegexNext {
                re: re.clone(),
                text: text.clone(),
                from: m.end,
            })),
        ),
    ])
}

/// One match found by a matcher (a regex or a function returning match objects).
struct Found {
    start: usize,
    end: usize,
    text: String,
    groups: Vec<Val>,
}

/// Runs `matcher` over `text`, at most `limit` matches, as jsonata-js iterates `next()`.
fn find_all(ev: &mut Eval, matcher: &Val, text: &str, limit: Option<usize>) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    if limit == Some(0) {
        return Ok(out);
    }
    if let Val::Func(f) = matcher
        && let Func::Regex(re) = &**f
    {
        let mut from = 0;
        let mut first = true;
        while let Some(m) = re.find_at(text, from) {
            if !first && m.start == m.end {
                return Err(Error::new(
                    "D1004",
                    format!(
                        "Regular expression matches zero length string: {}",
                        re.source
                    ),
                ));
            }
            first = false;
            let groups = m
                .groups
                .iter()
                .map(|g| match g {
                    Some((s, e)) => Val::str(&text[*s..*e]),
                    None => Val::Undefined,
                })
                .collect();
            out.push(Found {
                start: m.start,
                end: m.end,
                text: text[m.start..m.end].to_string(),
                groups,
            });
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            if m.end >= text.len() {
                break;
            }
            from = m.end;
            ev.check_time(0)?;
        }
        return Ok(out);
    }
    // A custom matcher: a function taking the string and returning match objects.
    let mut m = ev.call_hof(matcher, &[Val::str(text)])?;
    while m.is_object() {
        let start = byte_index(text, m.field("start").as_num().unwrap_or(0.0));
        let end = byte_index(text, m.field("end").as_num().unwrap_or(0.0)).max(start);
        let mtext = m
            .field("match")
            .as_str()
            .map(str::to_string)
            .unwrap_or_default();
        out.push(Found {
            start,
            end,
            text: mtext,
            groups: m.field("groups").items(),
        });
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let next = m.field("next");
        if !next.is_function() {
            break;
        }
        m = ev.call_hof(&next, &[])?;
        ev.check_time(0)?;
    }
    Ok(out)
}

fn limit_arg(v: &Val, code: &'static str) -> Result<Option<usize>> {
    match v {
        Val::Num(x) if *x < 0.0 => Err(Error::new(
            code,
            "Third argument of the function must evaluate to a positive number",
        )),
        Val::Num(x) => Ok(Some(if x.is_finite() {
            x.floor() as usize
        } else {
            usize::MAX
        })),
        _ => Ok(None),
    }
}

fn arg(args: &[Val], i: usize) -> Val {
    args.get(i).cloned().unwrap_or_default()
}

fn num(args: &[Val], i: usize) -> Option<f64> {
    args.get(i).and_then(Val::as_num)
}

fn text(args: &[Val], i: usize) -> Option<&str> {
    args.get(i).and_then(Val::as_str)
}

fn chars_of(s: &str) -> Vec<char> {
    s.chars().collect()
}

fn num_result(x: f64) -> Result<Val> {
    Ok(Val::Num(x))
}

// ---------------------------------------------------------------------------------------
// Aggregation.

fn numbers(v: &Val) -> Vec<f64> {
    v.items().iter().filter_map(Val::as_num).collect()
}

fn sum(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    if a.is_undefined() {
        return Ok(Val::Undefined);
    }
    num_result(numbers(&a).iter().sum())
}

fn count(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    num_result(if a.is_undefined() {
        0.0
    } else {
        a.len() as f64
    })
}

fn max(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let n = numbers(&arg(args, 0));
    if n.is_empty() {
        return Ok(Val::Undefined);
    }
    num_result(n.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

fn min(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let n = numbers(&arg(args, 0));
    if n.is_empty() {
        return Ok(Val::Undefined);
    }
    num_result(n.iter().copied().fold(f64::INFINITY, f64::min))
}

fn average(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let n = numbers(&arg(args, 0));
    if n.is_empty() {
        return Ok(Val::Undefined);
    }
    num_result(n.iter().sum::<f64>() / n.len() as f64)
}

// ---------------------------------------------------------------------------------------
// Strings.

fn string(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    if a.is_undefined() {
        return Ok(Val::Undefined);
    }
    let pretty = matches!(args.get(1), Some(Val::Bool(true)));
    if pretty && !matches!(a, Val::Str(_) | Val::Func(_)) {
        if let Val::Num(x) = a
            && !x.is_finite()
        {
            return to_string(&a).map(Val::string);
        }
        return stringify(&a, true, true).map(Val::string);
    }
    if let Val::Str(_) = a {
        return Ok(a);
    }
    to_string(&a).map(Val::string)
}

fn substring(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(s) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    let chars = chars_of(s);
    let len = chars.len() as f64;
    let mut start = num(args, 1).unwrap_or(0.0).trunc();
    if len + start < 0.0 {
        start = 0.0;
    }
    let slice = |from: f64, to: f64| -> String {
        let norm = |x: f64| {
            if x < 0.0 {
                (len + x).max(0.0)
            } else {
                x.min(len)
            }
        };
        let (a, b) = (norm(from) as usize, norm(to) as usize);
        if a >= b {
            String::new()
        } else {
            chars[a..b].iter().collect()
        }
    };
    match num(args, 2) {
        Some(length) => {
            let length = length.trunc();
            if length <= 0.0 {
                return Ok(Val::str(""));
            }
            let end = if start >= 0.0 {
                start + length
            } else {
                len + start + length
            };
            Ok(Val::string(slice(start, end)))
        }
        None => Ok(Val::string(slice(start, len))),
    }
}

fn substring_before(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(s) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    let Some(c) = text(args, 1) else {
        return Ok(Val::str(s));
    };
    Ok(Val::str(match s.find(c) {
        Some(i) => &s[..i],
        None => s,
    }))
}

fn substring_after(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(s) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    let Some(c) = text(args, 1) else {
        return Ok(Val::str(s));
    };
    Ok(Val::str(match s.find(c) {
        Some(i) => &s[i + c.len()..],
        None => s,
    }))
}

fn lowercase(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    Ok(text(args, 0).map_or(Val::Undefined, |s| Val::string(s.to_lowercase())))
}

fn uppercase(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    Ok(text(args, 0).map_or(Val::Undefined, |s| Val::string(s.to_uppercase())))
}

fn length(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    Ok(text(args, 0).map_or(Val::Undefined, |s| Val::Num(s.chars().count() as f64)))
}

fn trim(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(s) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    let mut out = String::with_capacity(s.len());
    let mut in_space = false;
    for c in s.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    let t = out.strip_prefix(' ').unwrap_or(&out);
    let t = t.strip_suffix(' ').unwrap_or(t);
    Ok(Val::str(t))
}

fn pad(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(s) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    let width = num(args, 1).unwrap_or(0.0);
    let ch = match text(args, 2) {
        Some(c) if !c.is_empty() => c,
        _ => " ",
    };
    let len = s.chars().count() as f64;
    let pad_len = width.abs().trunc() - len;
    if pad_len <= 0.0 || !pad_len.is_finite() {
        return Ok(Val::str(s));
    }
    if pad_len + s.len() as f64 > super::eval::MAX_STRING as f64 {
        return Err(super::eval::too_large(0));
    }
    let pad_len = pad_len as usize;
    let padding: String = ch.chars().cycle().take(pad_len).collect();
    Ok(Val::string(if width > 0.0 {
        format!("{s}{padding}")
    } else {
        format!("{padding}{s}")
    }))
}

fn match_(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(s) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    let limit = limit_arg(&arg(args, 2), "D3040")?;
    let found = find_all(ev, &arg(args, 1), s, limit)?;
    let items = found
        .into_iter()
        .map(|f| {
            Val::object(vec![
                (Str::new("match"), Val::string(f.text)),
                (Str::new("index"), Val::Num(utf16_index(s, f.start) as f64)),
                (Str::new("groups"), Val::array(f.groups)),
            ])
        })
        .collect();
    Ok(Val::seq(items))
}

fn contains(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(s) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    match &arg(args, 1) {
        Val::Str(t) => Ok(Val::Bool(s.contains(t.as_str()))),
        m => Ok(Val::Bool(!find_all(ev, m, s, Some(1))?.is_empty())),
    }
}

fn replace(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(s) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    let pattern = arg(args, 1);
    let replacement = arg(args, 2);
    if pattern.as_str() == Some("") {
        return Err(Error::new(
            "D3010",
            "Second argument of replace function cannot be an empty string",
        ));
    }
    let limit = match arg(args, 3) {
        Val::Num(x) if x < 0.0 => {
            return Err(Error::new(
                "D3011",
                "Fourth argument of replace function must evaluate to a positive number",
            ));
        }
        Val::Num(x) => Some(if x.is_finite() {
            x.floor() as usize
        } else {
            usize::MAX
        }),
        _ => None,
    };
    if let Val::Str(p) = &pattern {
        let rep = match &replacement {
            Val::Str(r) => r.to_string(),
            other => to_string(other)?,
        };
        let mut out = String::new();
        let mut pos = 0;
        let mut count = 0;
        while limit.is_none_or(|l| count < l) {
            let Some(i) = s[pos..].find(p.as_str()) else {
                break;
            };
            out.push_str(&s[pos..pos + i]);
            out.push_str(&rep);
            pos += i + p.len();
            count += 1;
        }
        out.push_str(&s[pos..]);
        return Ok(Val::string(out));
    }
    let found = find_all(ev, &pattern, s, limit)?;
    if found.is_empty() {
        return Ok(Val::str(s));
    }
    let mut out = String::new();
    let mut pos = 0;
    for f in found {
        out.push_str(s.get(pos..f.start).unwrap_or(""));
        let with = match &replacement {
            Val::Str(r) => substitute(r, &f),
            func => {
                let m = Val::object(vec![
                    (Str::new("match"), Val::str(&f.text)),
                    (Str::new("index"), Val::Num(utf16_index(s, f.start) as f64)),
                    (Str::new("groups"), Val::array(f.groups.clone())),
                ]);
                match ev.call_hof(func, &[m])? {
                    Val::Str(r) => r.to_string(),
                    other => {
                        return Err(Error::new(
                            "D3012",
                            format!(
                                "Attempted to replace a matched string with a non-string value: {}",
                                describe(&other)
                            ),
                        ));
                    }
                }
            }
        };
        out.push_str(&with);
        pos = f.start + f.text.len();
    }
    out.push_str(s.get(pos..).unwrap_or(""));
    Ok(Val::string(out))
}

/// `$n` references in a replacement string, with jsonata-js's rules for multi-digit groups.
fn substitute(rep: &str, f: &Found) -> String {
    let r: Vec<char> = rep.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let ngroups = f.groups.len();
    while i < r.len() {
        if r[i] != '$' {
            out.push(r[i]);
            i += 1;
            continue;
        }
        i += 1;
        match r.get(i) {
            Some('$') => {
                out.push('$');
                i += 1;
            }
            Some('0') => {
                out.push_str(&f.text);
                i += 1;
            }
            _ => {
                let max_digits = if ngroups == 0 {
                    1
                } else {
                    (ngroups as f64).log10().floor() as usize + 1
                };
                let digits = |n: usize| -> Option<usize> {
                    let s: String = r
                        .iter()
                        .skip(i)
                        .take(n)
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    s.parse().ok()
                };
                let mut index = digits(max_digits);
                if max_digits > 1 && index.is_some_and(|x| x > ngroups) {
                    index = digits(max_digits - 1);
                }
                match index {
                    Some(ix) => {
                        if ngroups > 0
                            && ix >= 1
                            && let Some(Val::Str(g)) = f.groups.get(ix - 1)
                        {
                            out.push_str(g);
                        }
                        i += ix.to_string().len();
                    }
                    None => out.push('$'),
                }
            }
        }
    }
    out
}

fn split(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(s) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    let limit = match arg(args, 2) {
        Val::Num(x) if x < 0.0 => {
            return Err(Error::new(
                "D3020",
                "Third argument of split function must evaluate to a positive number",
            ));
        }
        Val::Num(x) => Some(if x.is_finite() {
            x.floor() as usize
        } else {
            usize::MAX
        }),
        _ => None,
    };
    if limit == Some(0) {
        return Ok(Val::array(Vec::new()));
    }
    let sep = arg(args, 1);
    let mut parts: Vec<Val> = Vec::new();
    if let Val::Str(sep) = &sep {
        if sep.is_empty() {
            for c in s.chars() {
                parts.push(Val::string(c.to_string()));
            }
        } else {
            for p in s.split(sep.as_str()) {
                parts.push(Val::str(p));
            }
        }
        if let Some(l) = limit {
            parts.truncate(l);
        }
        return Ok(Val::array(parts));
    }
    let found = find_all(ev, &sep, s, limit)?;
    if found.is_empty() {
        return Ok(Val::array(vec![Val::str(s)]));
    }
    let mut start = 0;
    let n = found.len();
    for f in found {
        parts.push(Val::str(s.get(start..f.start).unwrap_or("")));
        start = f.end;
    }
    if limit.is_none_or(|l| n < l) {
        parts.push(Val::str(s.get(start..).unwrap_or("")));
    }
    Ok(Val::array(parts))
}

fn join(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    if a.is_undefined() {
        return Ok(Val::Undefined);
    }
    let sep = text(args, 1).unwrap_or("");
    let parts: Vec<String> = a
        .items()
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect();
    Ok(Val::string(parts.join(sep)))
}

// ---------------------------------------------------------------------------------------
// Numbers.

fn format_number(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(x) = num(args, 0) else {
        return Ok(Val::Undefined);
    };
    let picture = text(args, 1).unwrap_or("");
    let options: Vec<(String, String)> = arg(args, 2)
        .entries()
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| to_string(&v).unwrap_or_default()),
            )
        })
        .collect();
    numfmt::format_number(x, picture, &options).map(Val::string)
}

fn format_base(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(x) = num(args, 0) else {
        return Ok(Val::Undefined);
    };
    numfmt::format_base(x, num(args, 1)).map(Val::string)
}

fn format_integer(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(x) = num(args, 0) else {
        return Ok(Val::Undefined);
    };
    super::datetime::format_integer(x, text(args, 1).unwrap_or("")).map(Val::string)
}

fn parse_integer(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(s) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    Ok(
        super::datetime::parse_integer(s, text(args, 1).unwrap_or(""))?
            .map_or(Val::Undefined, Val::Num),
    )
}

fn number(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    match &a {
        Val::Undefined => Ok(Val::Undefined),
        Val::Num(x) => Ok(Val::Num(*x)),
        Val::Bool(b) => Ok(Val::Num(if *b { 1.0 } else { 0.0 })),
        Val::Str(s) => match numfmt::parse_number(s) {
            Some(x) => Ok(Val::Num(x)),
            None => Err(Error::new(
                "D3030",
                format!("Unable to cast value to a number: {}", describe(&a)),
            )),
        },
        _ => Err(Error::new(
            "D3030",
            format!("Unable to cast value to a number: {}", describe(&a)),
        )),
    }
}

fn unary_num(args: &[Val], f: fn(f64) -> f64) -> Result<Val> {
    Ok(num(args, 0).map_or(Val::Undefined, |x| Val::Num(f(x))))
}

fn floor(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    unary_num(args, f64::floor)
}

fn ceil(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    unary_num(args, f64::ceil)
}

fn abs(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    unary_num(args, f64::abs)
}

fn round(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(x) = num(args, 0) else {
        return Ok(Val::Undefined);
    };
    let p = num(args, 1).unwrap_or(0.0);
    Ok(Val::Num(numfmt::round_half_even(
        x,
        if p.is_finite() { p.trunc() as i64 } else { 0 },
    )))
}

fn sqrt(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(x) = num(args, 0) else {
        return Ok(Val::Undefined);
    };
    if x < 0.0 {
        return Err(Error::new(
            "D3060",
            format!(
                "The sqrt function cannot be applied to a negative number: {}",
                num_text(x)
            ),
        ));
    }
    Ok(Val::Num(x.sqrt()))
}

fn power(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(x) = num(args, 0) else {
        return Ok(Val::Undefined);
    };
    let e = num(args, 1).unwrap_or(f64::NAN);
    let r = x.powf(e);
    if !r.is_finite() {
        return Err(Error::new(
            "D3061",
            format!(
                "The power function has resulted in a value that cannot be represented as a JSON number: base={}, exponent={}",
                num_text(x),
                num_text(e)
            ),
        ));
    }
    Ok(Val::Num(r))
}

/// `$random()`, and Step Functions' `$random(seed)`: the same seed gives the same number.
fn random(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    match num(args, 0) {
        Some(seed) => {
            let mut rng = crate::random::Rng::new(crate::random::Rng::seed_from(
                &seed.to_bits().to_le_bytes(),
            ));
            Ok(Val::Num(rng.next_f64()))
        }
        None => Ok(Val::Num(ev.rng().next_f64())),
    }
}

// ---------------------------------------------------------------------------------------
// Booleans.

fn boolean(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    Ok(boolean_of(&arg(args, 0))?.map_or(Val::Undefined, Val::Bool))
}

fn not(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    Ok(boolean_of(&arg(args, 0))?.map_or(Val::Undefined, |b| Val::Bool(!b)))
}

// ---------------------------------------------------------------------------------------
// Higher-order functions.

/// The arguments a higher-order function passes: value, index, array, as many as `f` takes.
fn hof_args(f: &Val, value: Val, index: Val, whole: &Val) -> Vec<Val> {
    let arity = match f {
        Val::Func(func) => func.arity(),
        _ => 1,
    };
    let mut v = vec![value];
    if arity >= 2 {
        v.push(index);
    }
    if arity >= 3 {
        v.push(whole.clone());
    }
    v
}

fn call(ev: &mut Eval, f: &Val, args: Vec<Val>) -> Result<Val> {
    let root = Frame::root();
    ev.apply(f, args, &Val::Undefined, &root, 0)
}

fn map(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let arr = arg(args, 0);
    if arr.is_undefined() {
        return Ok(Val::Undefined);
    }
    let f = arg(args, 1);
    let mut out = Vec::new();
    for (i, item) in arr.items().into_iter().enumerate() {
        let r = call(ev, &f, hof_args(&f, item, Val::Num(i as f64), &arr))?;
        if !r.is_undefined() {
            out.push(r);
        }
    }
    Ok(Val::seq(out))
}

fn filter(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let arr = arg(args, 0);
    if arr.is_undefined() {
        return Ok(Val::Undefined);
    }
    let f = arg(args, 1);
    let mut out = Vec::new();
    for (i, item) in arr.items().into_iter().enumerate() {
        let r = call(ev, &f, hof_args(&f, item.clone(), Val::Num(i as f64), &arr))?;
        if truthy(&r)? {
            out.push(item);
        }
    }
    Ok(Val::seq(out))
}

fn single(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let arr = arg(args, 0);
    if arr.is_undefined() {
        return Ok(Val::Undefined);
    }
    let f = arg(args, 1);
    let mut found: Option<Val> = None;
    for (i, item) in arr.items().into_iter().enumerate() {
        let ok = if f.is_undefined() {
            true
        } else {
            truthy(&call(
                ev,
                &f,
                hof_args(&f, item.clone(), Val::Num(i as f64), &arr),
            )?)?
        };
        if ok {
            if found.is_some() {
                return Err(Error::new(
                    "D3138",
                    "The $single() function expected exactly 1 matching result.  Instead it matched more.",
                ));
            }
            found = Some(item);
        }
    }
    found.ok_or_else(|| {
        Error::new(
            "D3139",
            "The $single() function expected exactly 1 matching result.  Instead it matched 0.",
        )
    })
}

fn reduce(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let seq = arg(args, 0);
    if seq.is_undefined() {
        return Ok(Val::Undefined);
    }
    let f = arg(args, 1);
    let arity = match &f {
        Val::Func(func) => func.arity(),
        _ => 0,
    };
    if arity < 2 {
        return Err(Error::new(
            "D3050",
            "The second argument of reduce function must be a function with at least two arguments",
        ));
    }
    let items = seq.items();
    let init = arg(args, 2);
    let (mut acc, start) = if init.is_undefined() && !items.is_empty() {
        (items[0].clone(), 1)
    } else {
        (init, 0)
    };
    for (i, item) in items.iter().enumerate().skip(start) {
        let mut a = vec![acc, item.clone()];
        if arity >= 3 {
            a.push(Val::Num(i as f64));
        }
        if arity >= 4 {
            a.push(seq.clone());
        }
        acc = call(ev, &f, a)?;
    }
    Ok(acc)
}

fn sift(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let obj = arg(args, 0);
    if obj.is_undefined() {
        return Ok(Val::Undefined);
    }
    let f = arg(args, 1);
    let mut out = Vec::new();
    for (k, v) in obj.entries() {
        let r = call(ev, &f, hof_args(&f, v.clone(), Val::Str(k.clone()), &obj))?;
        if truthy(&r)? {
            out.push((k, v));
        }
    }
    if out.is_empty() {
        return Ok(Val::Undefined);
    }
    Ok(Val::object(out))
}

fn each(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let obj = arg(args, 0);
    if obj.is_undefined() {
        return Ok(Val::Undefined);
    }
    let f = arg(args, 1);
    let mut out = Vec::new();
    for (k, v) in obj.entries() {
        let r = call(ev, &f, hof_args(&f, v, Val::Str(k), &obj))?;
        if !r.is_undefined() {
            out.push(r);
        }
    }
    Ok(Val::seq(out))
}

fn zip(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let len = args
        .iter()
        .map(|a| if a.is_array() { a.len() } else { 0 })
        .min()
        .unwrap_or(0);
    let out = (0..len)
        .map(|i| Val::array(args.iter().map(|a| a.item(i)).collect()))
        .collect();
    Ok(Val::array(out))
}

// ---------------------------------------------------------------------------------------
// Objects and arrays.

fn keys_of(v: &Val) -> Vec<Str> {
    if v.is_array() {
        let mut all: Vec<Str> = Vec::new();
        for item in v.items() {
            for k in keys_of(&item) {
                if !all.contains(&k) {
                    all.push(k);
                }
            }
        }
        all
    } else {
        v.keys()
    }
}

fn keys(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    Ok(Val::seq(
        keys_of(&arg(args, 0)).into_iter().map(Val::Str).collect(),
    ))
}

fn lookup_fn(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    Ok(lookup(&arg(args, 0), text(args, 1).unwrap_or("")))
}

fn append_fn(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    Ok(append(arg(args, 0), arg(args, 1)))
}

fn exists(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    Ok(Val::Bool(!arg(args, 0).is_undefined()))
}

/// `$spread`: an array's items spread and flattened in one pass (jsonata-js appends item by
/// item, copying the result each time: quadratic, so a 10-million-item range never ended),
/// with the time budget checked as it goes; an object as one-member objects; else itself.
fn spread_of(ev: &mut Eval, v: &Val) -> Result<Val> {
    if v.is_array() {
        let mut out = Vec::new();
        // As jsonata-js's `append` leaves it: a plain array once anything was appended.
        let mut appended = false;
        for (i, item) in v.items().iter().enumerate() {
            if i % 65_536 == 65_535 {
                ev.check_time(0)?;
            }
            match spread_of(ev, item)? {
                Val::Undefined => {}
                s if s.is_array() => {
                    appended = true;
                    out.extend(s.items());
                }
                s => {
                    appended = true;
                    out.push(s);
                }
            }
        }
        Ok(if appended {
            Val::array(out)
        } else {
            Val::seq(out)
        })
    } else if v.is_object() {
        Ok(Val::seq(
            v.entries()
                .into_iter()
                .map(|(k, x)| Val::object(vec![(k, x)]))
                .collect(),
        ))
    } else {
        Ok(v.clone())
    }
}

fn spread(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    spread_of(ev, &arg(args, 0))
}

fn merge(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    if a.is_undefined() {
        return Ok(Val::Undefined);
    }
    if let Some(out) = merge_json(&a) {
        return Ok(Val::JObject(std::sync::Arc::new(out)));
    }
    let out = super::value::Object::default();
    for o in a.items() {
        for (k, v) in o.entries() {
            out.insert(k, v);
        }
    }
    Ok(Val::Object(Rc::new(out)))
}

/// `$merge` of objects whose members are all JSON already (input objects, or built ones
/// holding scalars and input values), built straight as a JSON object: no member is turned
/// into a `Val` and back. Numbers come out as the general path gives them (through a
/// double); `None` when a member is something else (a function, a built array or object).
fn merge_json(a: &Val) -> Option<crate::json::Object> {
    use crate::json::Value;
    fn member(v: &Val) -> Option<Value> {
        match v {
            Val::Null
            | Val::Bool(_)
            | Val::Num(_)
            | Val::Str(_)
            | Val::JArray(_)
            | Val::JObject(_) => v.to_json(),
            _ => None,
        }
    }
    let one = |out: &mut crate::json::Object, o: &Val| -> Option<()> {
        match o {
            Val::JObject(o) => {
                // The keys of a JSON object differ: into an empty result, no search.
                let fresh = out.is_empty();
                for (k, v) in o.iter() {
                    let v = match v {
                        Value::Number(n) => super::value::number_to_json(n.as_f64()),
                        v => v.clone(),
                    };
                    if fresh {
                        out.push_unique(k.clone(), v);
                    } else {
                        out.insert(k.clone(), v);
                    }
                }
            }
            Val::Object(o) => {
                for (k, v) in o.entries.borrow().iter() {
                    out.insert(k.clone(), member(v)?);
                }
            }
            _ => return None,
        }
        Some(())
    };
    let mut out = crate::json::Object::new();
    match a {
        Val::Array(items) => {
            for o in &items.items {
                one(&mut out, o)?;
            }
        }
        Val::JArray(items) => {
            for o in items.iter() {
                one(&mut out, &Val::from_json(o))?;
            }
        }
        o => one(&mut out, o)?,
    }
    Some(out)
}

fn reverse(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    if a.is_undefined() {
        return Ok(Val::Undefined);
    }
    if a.len() <= 1 {
        return Ok(a);
    }
    let mut items = a.items();
    items.reverse();
    Ok(Val::array(items))
}

fn error(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let msg = text(args, 0).unwrap_or("$error() function evaluated");
    Err(Error::new("D3137", msg))
}

fn assert(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    if !matches!(args.first(), Some(Val::Bool(true))) {
        let msg = text(args, 1).unwrap_or("$assert() statement failed");
        return Err(Error::new("D3141", msg));
    }
    Ok(Val::Undefined)
}

fn type_(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    if a.is_undefined() {
        return Ok(Val::Undefined);
    }
    Ok(Val::str(a.type_name()))
}

/// JavaScript truthiness (a custom `$sort` comparator's result is read this way).
fn js_truthy(v: &Val) -> bool {
    match v {
        Val::Undefined | Val::Null => false,
        Val::Bool(b) => *b,
        Val::Num(x) => *x != 0.0 && !x.is_nan(),
        Val::Str(s) => !s.is_empty(),
        _ => true,
    }
}

fn sort(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    if a.is_undefined() {
        return Ok(Val::Undefined);
    }
    if a.len() <= 1 {
        return Ok(a);
    }
    let items = a.items();
    let f = arg(args, 1);
    if f.is_undefined() {
        let all_num = items.iter().all(|v| matches!(v, Val::Num(_)));
        let all_str = items.iter().all(|v| matches!(v, Val::Str(_)));
        if !all_num && !all_str {
            return Err(Error::new(
                "D3070",
                "The single argument form of the sort function can only be applied to an array of strings or an array of numbers.  Use the second argument to specify a comparison function",
            ));
        }
        let mut items = items;
        items.sort_by(|x, y| match (x, y) {
            (Val::Num(p), Val::Num(q)) => p.partial_cmp(q).unwrap_or(Ordering::Equal),
            (Val::Str(p), Val::Str(q)) => cmp_str(p, q),
            _ => Ordering::Equal,
        });
        return Ok(Val::array(items));
    }
    // Stable merge sort where the comparator says whether to swap, as jsonata-js does.
    fn msort(ev: &mut Eval, f: &Val, items: Vec<Val>) -> Result<Vec<Val>> {
        if items.len() <= 1 {
            return Ok(items);
        }
        let mut left = items;
        let right = left.split_off(left.len() / 2);
        let left = msort(ev, f, left)?;
        let right = msort(ev, f, right)?;
        let mut out = Vec::with_capacity(left.len() + right.len());
        let (mut i, mut j) = (0, 0);
        while i < left.len() && j < right.len() {
            let r = call(ev, f, vec![left[i].clone(), right[j].clone()])?;
            if js_truthy(&r) {
                out.push(right[j].clone());
                j += 1;
            } else {
                out.push(left[i].clone());
                i += 1;
            }
        }
        out.extend_from_slice(&left[i..]);
        out.extend_from_slice(&right[j..]);
        Ok(out)
    }
    Ok(Val::array(msort(ev, &f, items)?))
}

fn shuffle(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    if a.is_undefined() {
        return Ok(Val::Undefined);
    }
    if a.len() <= 1 {
        return Ok(a);
    }
    let mut items = a.items();
    for i in (1..items.len()).rev() {
        let j = (ev.rng().next_f64() * (i + 1) as f64) as usize;
        items.swap(i, j.min(i));
    }
    Ok(Val::array(items))
}

fn distinct(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    if a.is_undefined() {
        return Ok(Val::Undefined);
    }
    if !a.is_array() || a.len() <= 1 {
        return Ok(a);
    }
    let mut out: Vec<Val> = Vec::new();
    for v in a.items() {
        if !out.iter().any(|x| deep_equal(x, &v)) {
            out.push(v);
        }
    }
    Ok(if a.is_sequence() {
        Val::seq(out)
    } else {
        Val::array(out)
    })
}

fn clone(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    if a.is_undefined() {
        return Ok(Val::Undefined);
    }
    Ok(deep_clone(&a))
}

// ---------------------------------------------------------------------------------------
// Encodings.

fn str_fn(args: &[Val], f: fn(&str) -> Result<String>) -> Result<Val> {
    match text(args, 0) {
        Some(s) => f(s).map(Val::string),
        None => Ok(Val::Undefined),
    }
}

fn base64encode(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    str_fn(args, |s| Ok(numfmt::base64_encode(s)))
}

fn base64decode(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    str_fn(args, numfmt::base64_decode)
}

fn encode_url_component(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    str_fn(args, numfmt::encode_url_component)
}

fn encode_url(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    str_fn(args, numfmt::encode_url)
}

fn decode_url_component(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    str_fn(args, numfmt::decode_url_component)
}

fn decode_url(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    str_fn(args, numfmt::decode_url)
}

// ---------------------------------------------------------------------------------------
// $eval, date and time.

fn eval_fn(ev: &mut Eval, args: &[Val], input: &Val, env: &Rc<Frame>) -> Result<Val> {
    let Some(expr) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    let node = super::parse_tree(expr, None).map_err(|e| {
        Error::new(
            "D3120",
            format!(
                "Syntax error in expression passed to function eval: {}",
                e.message
            ),
        )
    })?;
    let focus = match args.get(1) {
        Some(v) if !v.is_undefined() => {
            if v.is_array() && !v.is_sequence() {
                Val::array_with(vec![v.clone()], flag::SEQUENCE | flag::OUTER_WRAPPER)
            } else {
                v.clone()
            }
        }
        _ => input.clone(),
    };
    ev.eval(&node, &focus, env).map_err(|e| {
        Error::new(
            "D3121",
            format!(
                "Dynamic error evaluating the expression passed to function eval: {}",
                e.message
            ),
        )
    })
}

fn to_millis(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(s) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    Ok(super::datetime::parse_date_time(s, text(args, 1))?.map_or(Val::Undefined, Val::Num))
}

fn from_millis(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(x) = num(args, 0) else {
        return Ok(Val::Undefined);
    };
    super::datetime::format_date_time(x, text(args, 1), text(args, 2)).map(Val::string)
}

fn now(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    super::datetime::format_date_time(ev.now_millis() as f64, text(args, 0), text(args, 1))
        .map(Val::string)
}

fn millis(ev: &mut Eval, _: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    Ok(Val::Num(ev.now_millis() as f64))
}

// ---------------------------------------------------------------------------------------
// Step Functions' additions.

/// `$partition(array, size)`: the array in chunks of `size` (the last may be shorter).
fn partition(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let a = arg(args, 0);
    let size = num(args, 1).unwrap_or(0.0);
    if size.fract() != 0.0 || size < 1.0 {
        return Err(Error::new(
            "D3040",
            "The size argument of $partition must be a positive integer",
        ));
    }
    let items = a.items();
    let chunks = items
        .chunks(size as usize)
        .map(|c| Val::array(c.to_vec()))
        .collect();
    Ok(Val::array(chunks))
}

/// `$range(start, end, step?)`: numbers from start to end inclusive, step 1 by default.
fn range(ev: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let start = num(args, 0).unwrap_or(0.0);
    let end = num(args, 1).unwrap_or(0.0);
    let step = num(args, 2).unwrap_or(1.0);
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
        return Err(Error::new(
            "D3040",
            "The step argument of $range must be a non-zero number",
        ));
    }
    let count = ((end - start) / step).floor() + 1.0;
    if count > 1e7 {
        return Err(Error::new(
            "D2014",
            "The size of the sequence allocated by $range must not exceed 1e7",
        ));
    }
    let mut out = Vec::new();
    let mut i = 0.0;
    while i < count {
        out.push(Val::Num(start + i * step));
        i += 1.0;
        if out.len() % 65536 == 0 {
            ev.check_time(0)?;
        }
    }
    Ok(Val::seq(out))
}

/// `$hash(data, algorithm?)`: hex digest; MD5, SHA-1, SHA-256 (default), SHA-384, SHA-512.
fn hash(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(data) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    let alg = text(args, 1).unwrap_or("SHA-256");
    let hex = crate::intrinsics::hash_hex(alg, data.as_bytes())
        .ok_or_else(|| Error::new("D3040", format!("Unsupported hash algorithm '{alg}': use one of MD5, SHA-1, SHA-256, SHA-384, SHA-512")))?;
    Ok(Val::string(hex))
}

fn uuid(ev: &mut Eval, _: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    Ok(Val::string(ev.rng().uuid()))
}

/// `$parse(text)`: a JSON string as a value.
fn parse(_: &mut Eval, args: &[Val], _: &Val, _: &Rc<Frame>) -> Result<Val> {
    let Some(s) = text(args, 0) else {
        return Ok(Val::Undefined);
    };
    match crate::json::parse(s.as_bytes()) {
        Ok(v) => Ok(Val::from_json(&v)),
        Err(e) => Err(Error::new(
            "D3140",
            format!("$parse could not parse its argument as JSON: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_signature_parses() {
        for b in BUILTINS {
            assert!(Signature::parse(b.signature).is_ok(), "{}", b.name);
        }
    }

    #[test]
    fn string_index_is_the_table_s() {
        assert_eq!(builtin_index("string"), Some(STRING));
    }
}
