//! JSONPath filter expressions (`[?(@.price < 10 && @.tag =~ /a.*/)]`) and their evaluation,
//! following Jayway: a path that selects nothing makes its comparison false rather than an
//! error, numbers compare by value, strings lexicographically.

use crate::json::Value;

use super::Path;

/// A filter expression.
#[derive(Clone, Debug)]
pub enum Filter {
    Or(Vec<Filter>),
    And(Vec<Filter>),
    Not(Box<Filter>),
    /// `@.x`: true when the path selects something.
    Exists(Operand),
    /// `true` / `false` written alone.
    Const(bool),
    Compare(Box<(Operand, CmpOp, Operand)>),
}

/// One side of a comparison.
#[derive(Clone, Debug)]
pub enum Operand {
    /// A path from the current item (`@...`).
    Current(Box<Path>),
    /// A path from the document root (`$...`).
    Root(Box<Path>),
    Literal(Value),
    Regex(Box<regex::Regex>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches,
    In,
    Nin,
    SubsetOf,
    AnyOf,
    NoneOf,
    Size,
    Empty,
    Contains,
}

impl Filter {
    /// Whether `item` passes the filter; `root` is the whole document (for `$` operands).
    pub fn matches(&self, item: &Value, root: &Value) -> bool {
        match self {
            Filter::Or(fs) => fs.iter().any(|f| f.matches(item, root)),
            Filter::And(fs) => fs.iter().all(|f| f.matches(item, root)),
            Filter::Not(f) => !f.matches(item, root),
            Filter::Const(b) => *b,
            Filter::Exists(op) => resolve(op, item, root).is_some(),
            Filter::Compare(c) => {
                let (l, op, r) = &**c;
                let Some(left) = resolve(l, item, root) else {
                    // Jayway: a missing left side only satisfies `!=` ... and not even that
                    // for most providers; treat every comparison with a missing side as false.
                    return false;
                };
                if let (CmpOp::Matches, Operand::Regex(re)) = (op, r) {
                    return match &left {
                        Value::String(s) => re.is_match(s),
                        _ => false,
                    };
                }
                let Some(right) = resolve(r, item, root) else {
                    return false;
                };
                compare(&left, *op, &right)
            }
        }
    }
}

fn resolve(op: &Operand, item: &Value, root: &Value) -> Option<Value> {
    match op {
        Operand::Current(p) => p.select(item).ok().map(|s| s.into_owned()),
        Operand::Root(p) => p.select(root).ok().map(|s| s.into_owned()),
        Operand::Literal(v) => Some(v.clone()),
        Operand::Regex(_) => None,
    }
}

fn ordering(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

fn compare(left: &Value, op: CmpOp, right: &Value) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => left == right,
        CmpOp::Ne => left != right,
        CmpOp::Lt => ordering(left, right) == Some(Less),
        CmpOp::Le => matches!(ordering(left, right), Some(Less | Equal)),
        CmpOp::Gt => ordering(left, right) == Some(Greater),
        CmpOp::Ge => matches!(ordering(left, right), Some(Greater | Equal)),
        CmpOp::Matches => false,
        CmpOp::In => right.as_array().is_some_and(|a| a.contains(left)),
        CmpOp::Nin => right.as_array().is_some_and(|a| !a.contains(left)),
        CmpOp::SubsetOf => match (left.as_array(), right.as_array()) {
            (Some(l), Some(r)) => l.iter().all(|x| r.contains(x)),
            _ => false,
        },
        CmpOp::AnyOf => match (left.as_array(), right.as_array()) {
            (Some(l), Some(r)) => l.iter().any(|x| r.contains(x)),
            _ => false,
        },
        CmpOp::NoneOf => match (left.as_array(), right.as_array()) {
            (Some(l), Some(r)) => !l.iter().any(|x| r.contains(x)),
            _ => false,
        },
        CmpOp::Size => {
            let n = right.as_i64();
            let len = match left {
                Value::Array(a) => Some(a.len()),
                Value::String(s) => Some(s.chars().count()),
                Value::Object(o) => Some(o.len()),
                _ => None,
            };
            matches!((len, n), (Some(l), Some(n)) if l as i64 == n)
        }
        CmpOp::Empty => {
            let empty = match left {
                Value::Array(a) => Some(a.is_empty()),
                Value::String(s) => Some(s.is_empty()),
                Value::Object(o) => Some(o.is_empty()),
                _ => None,
            };
            matches!((empty, right), (Some(e), Value::Bool(want)) if e == *want)
        }
        CmpOp::Contains => match left {
            Value::Array(a) => a.contains(right),
            Value::String(s) => right.as_str().is_some_and(|r| s.contains(r)),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::json::{Value, parse, to_string};
    use crate::jsonpath::Path;

    fn sel(path: &str, doc: &str) -> String {
        let v: Value = parse(doc.as_bytes()).unwrap();
        to_string(&Path::parse(path).unwrap().select(&v).unwrap().into_owned())
    }

    #[test]
    fn filters_select_matching_items() {
        let users = r#"{"users":[{"year":1997,"status":0},{"year":1998,"status":1}]}"#;
        assert_eq!(
            sel("$.users[?(@.status == 0)]", users),
            r#"[{"year":1997,"status":0}]"#
        );
        assert_eq!(sel("$.users[?(@.year > 1997)].status", users), "[1]");
        assert_eq!(sel("$.users[?(@.nope)]", users), "[]");
        assert_eq!(
            sel("$.users[?(@.status != 0 || @.year <= 1997)].year", users),
            "[1997,1998]"
        );
        assert_eq!(sel("$.users[?(!(@.status == 0))].year", users), "[1998]");
    }

    #[test]
    fn filter_operators() {
        let doc = r#"{"a":[{"t":"apple","n":[1,2]},{"t":"Banana","n":[]},{"t":"cherry","n":[3]}]}"#;
        assert_eq!(sel("$.a[?(@.t =~ /b.*/i)].t", doc), r#"["Banana"]"#);
        assert_eq!(
            sel("$.a[?(@.t in ['apple','cherry'])].t", doc),
            r#"["apple","cherry"]"#
        );
        assert_eq!(
            sel("$.a[?(@.t nin ['apple'])].t", doc),
            r#"["Banana","cherry"]"#
        );
        assert_eq!(sel("$.a[?(@.n size 2)].t", doc), r#"["apple"]"#);
        assert_eq!(sel("$.a[?(@.n empty true)].t", doc), r#"["Banana"]"#);
        assert_eq!(sel("$.a[?(@.n anyof [3,4])].t", doc), r#"["cherry"]"#);
        assert_eq!(sel("$.a[?(@.t == $.a[0].t)].t", doc), r#"["apple"]"#);
    }
}
