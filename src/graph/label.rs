//! The short texts drawn on edges: a Choice rule as a condition (`$.n > 10`,
//! `IsPresent $.x`, `... and ...`), a JSONata `Condition` without its `{% %}`, a Catcher's
//! error names; and the shortening of long ones.

use crate::json::{self, Value};

/// The JSONPath comparison operators, as the symbols a reader expects.
const OPERATORS: &[(&str, &str)] = &[
    ("StringEquals", "=="),
    ("StringLessThan", "<"),
    ("StringGreaterThan", ">"),
    ("StringLessThanEquals", "<="),
    ("StringGreaterThanEquals", ">="),
    ("StringMatches", "matches"),
    ("NumericEquals", "=="),
    ("NumericLessThan", "<"),
    ("NumericGreaterThan", ">"),
    ("NumericLessThanEquals", "<="),
    ("NumericGreaterThanEquals", ">="),
    ("BooleanEquals", "=="),
    ("TimestampEquals", "=="),
    ("TimestampLessThan", "<"),
    ("TimestampGreaterThan", ">"),
    ("TimestampLessThanEquals", "<="),
    ("TimestampGreaterThanEquals", ">="),
];

/// The type tests, written as a prefix: `IsPresent $.x`, `not IsNull $.x`.
const TESTS: &[&str] = &[
    "IsNull",
    "IsPresent",
    "IsNumeric",
    "IsString",
    "IsBoolean",
    "IsTimestamp",
];

/// A Choice rule (JSONPath or JSONata) as a one-line condition.
pub(crate) fn rule(rule: &Value) -> String {
    if let Some(c) = rule.get("Condition") {
        return condition(c);
    }
    expression(rule)
}

/// A JSONata `Condition`: the expression between `{%` and `%}`, on one line.
fn condition(c: &Value) -> String {
    match c {
        Value::String(s) => {
            let s = s.trim();
            let inner = s
                .strip_prefix("{%")
                .and_then(|s| s.strip_suffix("%}"))
                .unwrap_or(s);
            one_line(inner)
        }
        other => json::to_string(other),
    }
}

/// Whitespace runs (newlines of a multi-line expression included) as one space.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A JSONPath Boolean expression: a comparison, or `And`/`Or`/`Not` of them.
fn expression(e: &Value) -> String {
    for (key, joiner) in [("And", " and "), ("Or", " or ")] {
        if let Some(items) = e.get(key).and_then(Value::as_array) {
            return items.iter().map(operand).collect::<Vec<_>>().join(joiner);
        }
    }
    if let Some(inner) = e.get("Not") {
        return format!("not {}", operand(inner));
    }
    comparison(e)
}

/// A sub-expression, in parentheses when it is itself an `And` or `Or`.
fn operand(e: &Value) -> String {
    let text = expression(e);
    if e.get("And").is_some() || e.get("Or").is_some() {
        format!("({text})")
    } else {
        text
    }
}

fn comparison(e: &Value) -> String {
    let variable = e.get("Variable").and_then(Value::as_str).unwrap_or("?");
    for (key, symbol) in OPERATORS {
        if let Some(v) = e.get(key) {
            return format!("{variable} {symbol} {}", json::to_string(v));
        }
        if let Some(Value::String(path)) = e.get(&format!("{key}Path")) {
            return format!("{variable} {symbol} {path}");
        }
    }
    for test in TESTS {
        if let Some(v) = e.get(test) {
            return match v {
                Value::Bool(false) => format!("not {test} {variable}"),
                _ => format!("{test} {variable}"),
            };
        }
    }
    variable.to_string()
}

/// A Catcher: `catch: ` and its error names.
pub(crate) fn catcher(c: &Value) -> String {
    let errors: Vec<String> = match c.get("ErrorEquals").and_then(Value::as_array) {
        Some(a) => a
            .iter()
            .map(|v| match v.as_str() {
                Some(s) => s.to_string(),
                None => json::to_string(v),
            })
            .collect(),
        None => Vec::new(),
    };
    format!("catch: {}", errors.join(", "))
}

/// `text` cut to at most `max` characters, the last one `…` when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}
