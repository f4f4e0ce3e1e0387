//! Choice rule evaluation with AWS's semantics: a comparison of values of the wrong type is
//! false (not an error), `IsPresent` is the only test that tolerates a missing `Variable`,
//! strings compare as Java strings (UTF-16 code units), numbers by value, timestamps as
//! instants. A JSONata `Condition` must give a boolean; no match without a Default is
//! `States.NoChoiceMatched`; the state's and the matched rule's `Assign` both apply.

use std::cmp::Ordering;

use crate::asl::Comparison;
use crate::json::Value;
use crate::jsonpath::Selected;
use crate::plan::{
    Accessor, AssignOp, ConditionOp, ContextSource, OperandOp, PatternPiece, TemplateOp,
};
use crate::time::Timestamp;

use super::data::{self, Assigned, Env, Failure, Handling, Here, Sized};
use super::query;

/// Evaluates a rule against the Choice state's effective input.
pub fn eval(
    cond: &ConditionOp,
    doc: &Value,
    ctx: &dyn ContextSource,
    here: Here<'_>,
) -> Result<bool, Failure> {
    match cond {
        ConditionOp::And(cs) => {
            for c in cs.iter() {
                if !eval(c, doc, ctx, here)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        ConditionOp::Or(cs) => {
            for c in cs.iter() {
                if eval(c, doc, ctx, here)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        ConditionOp::Not(c) => Ok(!eval(c, doc, ctx, here)?),
        // JSONata conditions belong to JSONata states, which the executor evaluates with
        // `$states` (`jsonata_condition`); a JSONPath state never holds one.
        ConditionOp::Jsonata(_) => Ok(false),
        ConditionOp::Test {
            variable,
            op,
            operand,
        } => {
            let selected = variable.select(doc, ctx);
            if *op == Comparison::IsPresent {
                let present = match &selected {
                    Ok(Selected::Owned(Value::Array(a))) if !variable.path().is_definite() => {
                        !a.is_empty()
                    }
                    Ok(_) => true,
                    Err(_) => false,
                };
                return Ok(matches!(operand, OperandOp::Bool(b) if *b == present));
            }
            let Ok(v) = selected else {
                return Err(invalid(variable, here));
            };
            test(v.value(), *op, operand, doc, ctx, here)
        }
    }
}

#[cold]
fn invalid(a: &Accessor, here: Here<'_>) -> Failure {
    here.runtime(format_args!(
        "Invalid path '{}': The choice state's condition path references an invalid value.",
        a.text()
    ))
}

/// Java's `String.compareTo`: UTF-16 code units.
fn java_cmp(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.cmp(b)
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

fn ordered(op: Comparison, ord: Ordering) -> bool {
    use Comparison::*;
    match op {
        StringEquals | NumericEquals | TimestampEquals => ord == Ordering::Equal,
        StringLessThan | NumericLessThan | TimestampLessThan => ord == Ordering::Less,
        StringGreaterThan | NumericGreaterThan | TimestampGreaterThan => ord == Ordering::Greater,
        StringLessThanEquals | NumericLessThanEquals | TimestampLessThanEquals => {
            ord != Ordering::Greater
        }
        StringGreaterThanEquals | NumericGreaterThanEquals | TimestampGreaterThanEquals => {
            ord != Ordering::Less
        }
        _ => false,
    }
}

fn timestamp(v: &Value) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(v.as_str()?)
}

fn test(
    v: &Value,
    op: Comparison,
    operand: &OperandOp,
    doc: &Value,
    ctx: &dyn ContextSource,
    here: Here<'_>,
) -> Result<bool, Failure> {
    use Comparison::*;
    Ok(match (op, operand) {
        (IsNull, OperandOp::Bool(b)) => v.is_null() == *b,
        (IsNumeric, OperandOp::Bool(b)) => matches!(v, Value::Number(_)) == *b,
        (IsString, OperandOp::Bool(b)) => matches!(v, Value::String(_)) == *b,
        (IsBoolean, OperandOp::Bool(b)) => matches!(v, Value::Bool(_)) == *b,
        (IsTimestamp, OperandOp::Bool(b)) => timestamp(v).is_some() == *b,
        (StringMatches, OperandOp::Pattern(p)) => v.as_str().is_some_and(|s| glob(p, s)),
        (_, OperandOp::Path(a)) => {
            let Ok(other) = a.select(doc, ctx) else {
                return Err(invalid(a, here));
            };
            compare_values(v, op, other.value())
        }
        (BooleanEquals, OperandOp::Bool(b)) => v.as_bool() == Some(*b),
        (_, OperandOp::Str(s)) => match v.as_str() {
            Some(x) if is_string_op(op) => ordered(op, java_cmp(x, s)),
            _ => false,
        },
        (_, OperandOp::Number(n)) => match v.as_number() {
            Some(x) => x
                .as_f64()
                .partial_cmp(&n.as_f64())
                .is_some_and(|o| ordered(op, exact_cmp(x, *n, o))),
            None => false,
        },
        (_, OperandOp::Timestamp(t)) => timestamp(v).is_some_and(|x| ordered(op, x.cmp(t))),
        _ => false,
    })
}

fn is_string_op(op: Comparison) -> bool {
    use Comparison::*;
    matches!(
        op,
        StringEquals
            | StringLessThan
            | StringGreaterThan
            | StringLessThanEquals
            | StringGreaterThanEquals
    )
}

/// Integers compare exactly even beyond 2^53; anything else as doubles.
fn exact_cmp(a: crate::json::Number, b: crate::json::Number, as_f64: Ordering) -> Ordering {
    use crate::json::Number::Int;
    match (a, b) {
        (Int(x), Int(y)) => x.cmp(&y),
        _ => as_f64,
    }
}

/// A `...Path` comparison: both sides from the input, of the operator's type.
fn compare_values(v: &Value, op: Comparison, other: &Value) -> bool {
    use Comparison::*;
    match op {
        StringEquals
        | StringLessThan
        | StringGreaterThan
        | StringLessThanEquals
        | StringGreaterThanEquals => match (v.as_str(), other.as_str()) {
            (Some(a), Some(b)) => ordered(op, java_cmp(a, b)),
            _ => false,
        },
        NumericEquals
        | NumericLessThan
        | NumericGreaterThan
        | NumericLessThanEquals
        | NumericGreaterThanEquals => match (v.as_number(), other.as_number()) {
            (Some(a), Some(b)) => a
                .as_f64()
                .partial_cmp(&b.as_f64())
                .is_some_and(|o| ordered(op, exact_cmp(a, b, o))),
            _ => false,
        },
        BooleanEquals => matches!((v.as_bool(), other.as_bool()), (Some(a), Some(b)) if a == b),
        TimestampEquals
        | TimestampLessThan
        | TimestampGreaterThan
        | TimestampLessThanEquals
        | TimestampGreaterThanEquals => match (timestamp(v), timestamp(other)) {
            (Some(a), Some(b)) => ordered(op, a.cmp(&b)),
            _ => false,
        },
        _ => false,
    }
}

/// `StringMatches`: `*` matches any run of characters (greedy-safe backtracking over pieces).
pub fn glob(pieces: &[PatternPiece], s: &str) -> bool {
    match pieces.split_first() {
        None => s.is_empty(),
        Some((PatternPiece::Text(t), rest)) => {
            s.strip_prefix(t.as_str()).is_some_and(|r| glob(rest, r))
        }
        Some((PatternPiece::Star, rest)) => {
            if rest.is_empty() {
                return true;
            }
            // Try every position where the rest could start.
            let mut idx = 0;
            loop {
                if glob(rest, &s[idx..]) {
                    return true;
                }
                match s[idx..].chars().next() {
                    Some(c) => idx += c.len_utf8(),
                    None => return false,
                }
            }
        }
    }
}

/// `States.NoChoiceMatched`: no rule matched and there is no Default.
pub(super) fn no_choice(here: Here<'_>) -> Failure {
    Failure::new(
        "States.NoChoiceMatched",
        format!(
            "No choice rule of state '{}' matched its input and it has no Default",
            here.state
        ),
        Handling::Normal,
    )
}

/// A JSONata `Condition`: a literal boolean, or an expression that must give one.
pub(super) fn jsonata_condition(
    c: &ConditionOp,
    raw: &Sized,
    env: &mut Env<'_>,
    here: Here<'_>,
) -> Result<bool, Failure> {
    let ConditionOp::Jsonata(t) = c else {
        return Ok(false);
    };
    let v = data::eval_template(t, raw, env, here)?;
    match (&v.value, t) {
        (Value::Bool(b), _) => Ok(*b),
        (other, TemplateOp::Jsonata(op)) => Err(query::wrong_type(op, "boolean", other, here)),
        (other, _) => Err(query::query_error(
            here,
            format_args!(
                "The Condition must be a boolean, but was '{}'",
                other.type_name()
            ),
        )),
    }
}

/// The assignments of a Choice state: the state's own `Assign` applies whichever way the
/// state goes ("regardless of which choice rule matches", AWS's Choice page), then the
/// matched rule's, whose values win for a name both assign (as the rule's `Output` wins
/// over the state's, which the corpus shows).
pub(super) fn assigns(
    state: &Option<AssignOp>,
    rule: &Option<AssignOp>,
    doc: &Sized,
    env: &mut Env<'_>,
    here: Here<'_>,
) -> Result<Assigned, Failure> {
    let mut out = data::eval_assign(state, doc, env, here)?;
    out.extend(data::eval_assign(rule, doc, env, here)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::compile::pattern;

    #[test]
    fn string_matches_wildcards_and_escapes() {
        let m = |p: &str, s: &str| glob(&pattern(p), s);
        assert!(m("log-*.txt", "log-2024.txt"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m(r"a\\*", r"a\anything"));
        assert!(m("*.é", "x.é"));
    }

    #[test]
    fn java_string_order_uses_utf16_units() {
        // U+FF5E (one unit) sorts after U+1F600 (a surrogate pair starting 0xD83D) in Java.
        assert_eq!(java_cmp("\u{ff5e}", "\u{1f600}"), Ordering::Greater);
        assert_eq!(java_cmp("a", "b"), Ordering::Less);
    }
}
