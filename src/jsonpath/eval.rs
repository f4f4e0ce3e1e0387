//! Evaluation of parsed paths: `select` (read) and `set` (write at a reference path).

use std::fmt;
use std::sync::Arc;

use crate::json::{Number, Value};

use super::{Function, Path, Segment};

/// What a path selected: a node of the document (no copy), or a new value built from several
/// matches or by a function.
#[derive(Debug)]
pub enum Selected<'v> {
    Borrowed(&'v Value),
    Owned(Value),
}

impl<'v> Selected<'v> {
    #[inline]
    pub fn into_owned(self) -> Value {
        match self {
            Selected::Borrowed(v) => v.clone(),
            Selected::Owned(v) => v,
        }
    }
    #[inline]
    pub fn value(&self) -> &Value {
        match self {
            Selected::Borrowed(v) => v,
            Selected::Owned(v) => v,
        }
    }
}

/// A definite path that does not select anything, with Jayway's explanation.
#[derive(Clone, Debug, PartialEq)]
pub enum PathError {
    /// A member before the last step is missing: `Missing property in path $['a']`.
    MissingProperty { at: String },
    /// The last step selects nothing: `No results for path: $['a']['b']`.
    NoResults { path: String },
    /// A member step met something that is not an object.
    NotAnObject {
        member: String,
        at: String,
        found: &'static str,
    },
    /// An index step met something that is not an array.
    NotAnArray { step: String, found: String },
    /// A function could not be applied (`min()` of an empty array, `keys()` of a number).
    Function { message: String },
    /// A `$name` path whose variable has no value here.
    Undefined { name: String },
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::MissingProperty { at } => write!(f, "Missing property in path {at}"),
            PathError::NoResults { path } => write!(f, "No results for path: {path}"),
            PathError::Undefined { name } => write!(f, "The variable '${name}' is not defined"),
            PathError::NotAnObject { member, at, found } => write!(
                f,
                "Expected to find an object with property {member} in path {at} but found '{found}'"
            ),
            PathError::NotAnArray { step, found } => write!(
                f,
                "Filter: {step} can only be applied to arrays. Current context is: {found}"
            ),
            PathError::Function { message } => f.write_str(message),
        }
    }
}

/// A reference path that cannot be applied to the document it should write into.
#[derive(Clone, Debug, PartialEq)]
pub struct SetError;

pub(super) fn select<'v>(path: &Path, root: &'v Value) -> Result<Selected<'v>, PathError> {
    let selected = if path.definite {
        Selected::Borrowed(select_definite(path, root)?)
    } else {
        let mut out = Vec::new();
        walk(&path.segments, root, root, &mut out);
        Selected::Owned(Value::array(out))
    };
    match path.function {
        None => Ok(selected),
        Some(f) => apply_function(f, selected.value()).map(Selected::Owned),
    }
}

fn prefix(path: &Path, upto: usize) -> String {
    let mut s = String::from("$");
    for seg in &path.segments[..upto] {
        super::write_segment(&mut s, seg);
    }
    s
}

#[inline]
fn select_definite<'v>(path: &Path, root: &'v Value) -> Result<&'v Value, PathError> {
    let mut cur = root;
    let n = path.segments.len();
    for (i, seg) in path.segments.iter().enumerate() {
        match seg {
            Segment::Member(name) => match cur {
                Value::Object(o) => match path.hints()[i].get(o, name) {
                    Some(v) => cur = v,
                    None if i + 1 == n => {
                        return Err(PathError::NoResults {
                            path: path.normalized(),
                        });
                    }
                    None => {
                        return Err(PathError::MissingProperty {
                            at: prefix(path, i + 1),
                        });
                    }
                },
                other => {
                    return Err(PathError::NotAnObject {
                        member: format!("['{name}']"),
                        at: prefix(path, i),
                        found: other.type_name(),
                    });
                }
            },
            Segment::Index(idx) => match cur {
                Value::Array(a) => {
                    let len = a.len() as i64;
                    let j = if *idx < 0 { len + idx } else { *idx };
                    if j < 0 || j >= len {
                        return Err(PathError::NoResults {
                            path: path.normalized(),
                        });
                    }
                    cur = &a[j as usize];
                }
                other => {
                    return Err(PathError::NotAnArray {
                        step: format!("[{idx}]"),
                        found: crate::json::to_string(other),
                    });
                }
            },
            _ => unreachable!("definite paths hold only members and indexes"),
        }
    }
    Ok(cur)
}

fn slice_bounds(len: i64, from: Option<i64>, to: Option<i64>) -> (usize, usize) {
    let norm = |v: i64| if v < 0 { (len + v).max(0) } else { v.min(len) };
    let a = from.map_or(0, norm);
    let b = to.map_or(len, norm);
    (a as usize, b.max(a) as usize)
}

/// Collects every match of `segs` under `cur` into `out` (indefinite paths).
fn walk(segs: &[Segment], cur: &Value, root: &Value, out: &mut Vec<Value>) {
    let Some((seg, rest)) = segs.split_first() else {
        out.push(cur.clone());
        return;
    };
    match seg {
        Segment::Member(name) => {
            if let Some(v) = cur.get(name) {
                walk(rest, v, root, out);
            }
        }
        Segment::Members(names) => {
            if let Value::Object(o) = cur {
                for name in names {
                    if let Some(v) = o.get(name) {
                        walk(rest, v, root, out);
                    }
                }
            }
        }
        Segment::Index(i) => {
            if let Value::Array(a) = cur {
                let len = a.len() as i64;
                let j = if *i < 0 { len + i } else { *i };
                if (0..len).contains(&j) {
                    walk(rest, &a[j as usize], root, out);
                }
            }
        }
        Segment::Indexes(is) => {
            if let Value::Array(a) = cur {
                let len = a.len() as i64;
                for i in is {
                    let j = if *i < 0 { len + i } else { *i };
                    if (0..len).contains(&j) {
                        walk(rest, &a[j as usize], root, out);
                    }
                }
            }
        }
        Segment::Slice(from, to) => {
            if let Value::Array(a) = cur {
                let (s, e) = slice_bounds(a.len() as i64, *from, *to);
                for v in &a[s..e] {
                    walk(rest, v, root, out);
                }
            }
        }
        Segment::Wildcard => match cur {
            Value::Array(a) => {
                for v in a.iter() {
                    walk(rest, v, root, out);
                }
            }
            Value::Object(o) => {
                for v in o.values() {
                    walk(rest, v, root, out);
                }
            }
            _ => {}
        },
        Segment::Descendants(inner) => {
            // Pre-order, as Jayway scans: the node itself, then each child in order.
            let mut here = Vec::with_capacity(1 + rest.len());
            here.push((**inner).clone());
            here.extend_from_slice(rest);
            walk(&here, cur, root, out);
            match cur {
                Value::Array(a) => {
                    for v in a.iter() {
                        walk(segs, v, root, out);
                    }
                }
                Value::Object(o) => {
                    for v in o.values() {
                        walk(segs, v, root, out);
                    }
                }
                _ => {}
            }
        }
        Segment::Filter(f) => match cur {
            Value::Array(a) => {
                for v in a.iter() {
                    if f.matches(v, root) {
                        walk(rest, v, root, out);
                    }
                }
            }
            Value::Object(_) if f.matches(cur, root) => walk(rest, cur, root, out),
            _ => {}
        },
    }
}

fn numbers(v: &Value, name: &str) -> Result<Vec<f64>, PathError> {
    let items = v.as_array().ok_or_else(|| PathError::Function {
        message: format!("Aggregation function {name}() can only be applied to arrays"),
    })?;
    let nums: Vec<f64> = items.iter().filter_map(Value::as_f64).collect();
    if nums.is_empty() {
        return Err(PathError::Function {
            message: "Aggregation function attempted to calculate value using empty array"
                .to_string(),
        });
    }
    Ok(nums)
}

fn apply_function(f: Function, v: &Value) -> Result<Value, PathError> {
    let num = |x: f64| Value::Number(Number::Float(x));
    match f {
        Function::Length => match v {
            Value::Array(a) => Ok(Value::int(a.len() as i64)),
            Value::Object(o) => Ok(Value::int(o.len() as i64)),
            Value::String(s) => Ok(Value::int(s.chars().count() as i64)),
            _ => Err(PathError::Function {
                message: "length() can only be applied to arrays, objects and strings".into(),
            }),
        },
        Function::Min => Ok(num(numbers(v, "min")?
            .into_iter()
            .fold(f64::INFINITY, f64::min))),
        Function::Max => Ok(num(numbers(v, "max")?
            .into_iter()
            .fold(f64::NEG_INFINITY, f64::max))),
        Function::Sum => Ok(num(numbers(v, "sum")?.into_iter().sum())),
        Function::Avg => {
            let n = numbers(v, "avg")?;
            Ok(num(n.iter().sum::<f64>() / n.len() as f64))
        }
        Function::Stddev => {
            let n = numbers(v, "stddev")?;
            let mean = n.iter().sum::<f64>() / n.len() as f64;
            let var = n.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n.len() as f64;
            Ok(num(var.sqrt()))
        }
        Function::Keys => match v {
            Value::Object(o) => Ok(Value::array(
                o.keys().map(|k| Value::String(k.clone())).collect(),
            )),
            _ => Err(PathError::Function {
                message: "keys() can only be applied to objects".into(),
            }),
        },
        Function::First | Function::Last => match v.as_array() {
            Some(a) if !a.is_empty() => Ok(if f == Function::First {
                a[0].clone()
            } else {
                a[a.len() - 1].clone()
            }),
            _ => Err(PathError::Function {
                message: "first() and last() need a non-empty array".into(),
            }),
        },
    }
}

pub(super) fn set(path: &Path, root: &mut Value, value: Value) -> Result<(), SetError> {
    // The common case, `$.name` into an object: one scan for the key.
    if let [Segment::Member(name)] = path.segments.as_slice() {
        let Value::Object(o) = root else {
            return Err(SetError);
        };
        Arc::make_mut(o).insert(name.clone(), value);
        return Ok(());
    }
    // Check first, so that a failed write leaves the document untouched.
    let mut probe: Option<&Value> = Some(root);
    for seg in &path.segments {
        match (seg, probe) {
            (_, None) => {
                // Created along the way: only members can follow.
                if !matches!(seg, Segment::Member(_)) {
                    return Err(SetError);
                }
            }
            (Segment::Member(name), Some(Value::Object(o))) => probe = o.get(name),
            (Segment::Index(i), Some(Value::Array(a))) => {
                let len = a.len() as i64;
                let j = if *i < 0 { len + i } else { *i };
                if !(0..len).contains(&j) {
                    return Err(SetError);
                }
                probe = Some(&a[j as usize]);
            }
            _ => return Err(SetError),
        }
    }
    let mut cur = root;
    for seg in &path.segments {
        let c = cur;
        cur = match seg {
            Segment::Member(name) => {
                let Value::Object(o) = c else {
                    return Err(SetError);
                };
                let obj = Arc::make_mut(o);
                if !obj.contains_key(name) {
                    obj.push_unique(name.clone(), Value::Null);
                    let slot = obj.get_mut(name).ok_or(SetError)?;
                    *slot = Value::empty_object();
                    slot
                } else {
                    obj.get_mut(name).ok_or(SetError)?
                }
            }
            Segment::Index(i) => {
                let Value::Array(a) = c else {
                    return Err(SetError);
                };
                let items = Arc::make_mut(a).items_mut();
                let len = items.len() as i64;
                let j = if *i < 0 { len + i } else { *i };
                items.get_mut(j as usize).ok_or(SetError)?
            }
            _ => return Err(SetError),
        };
    }
    *cur = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse, to_string};

    fn v(s: &str) -> Value {
        parse(s.as_bytes()).unwrap()
    }
    fn sel(path: &str, doc: &str) -> Result<String, String> {
        let d = v(doc);
        Path::parse(path)
            .unwrap()
            .select(&d)
            .map(|s| to_string(s.value()))
            .map_err(|e| e.to_string())
    }
    #[test]
    fn paths_numbered_past_the_hint_table_still_select_and_change_shape() {
        // Keep every hint cell taken, so the next paths get numbers past the table.
        let held: Vec<super::super::Hint> = (0..super::super::HINT_CELLS + 8)
            .map(|_| super::super::Hint::default())
            .collect();
        let p = Path::parse("$.b.c").unwrap();
        let first = v(r#"{"a":1,"b":{"x":0,"c":"one"}}"#);
        let moved = v(r#"{"b":{"c":"two","x":0},"a":1}"#);
        for _ in 0..3 {
            assert_eq!(to_string(p.select(&first).unwrap().value()), r#""one""#);
            assert_eq!(to_string(p.select(&moved).unwrap().value()), r#""two""#);
        }
        drop(held);
        // And with a cell again (numbers are reused), keys that move are still found.
        let q = Path::parse("$.b.c").unwrap();
        for _ in 0..3 {
            assert_eq!(to_string(q.select(&first).unwrap().value()), r#""one""#);
            assert_eq!(to_string(q.select(&moved).unwrap().value()), r#""two""#);
        }
    }

    fn set(path: &str, doc: &str, val: &str) -> Result<String, SetError> {
        let mut d = v(doc);
        Path::parse(path).unwrap().set(&mut d, v(val))?;
        Ok(to_string(&d))
    }

    #[test]
    fn definite_paths_read_one_node() {
        let doc = r#"{"a":{"b":[10,20,30]},"n":null}"#;
        assert_eq!(sel("$.a.b[1]", doc).unwrap(), "20");
        assert_eq!(sel("$.a.b[-1]", doc).unwrap(), "30");
        assert_eq!(sel("$", doc).unwrap(), doc);
        assert_eq!(sel("$.n", doc).unwrap(), "null");
    }

    #[test]
    fn definite_misses_say_what_jayway_says() {
        let doc = r#"{"a":{"b":1}}"#;
        assert_eq!(
            sel("$.NoSuchInputPath", doc).unwrap_err(),
            "No results for path: $['NoSuchInputPath']"
        );
        assert_eq!(
            sel("$.no.such.result.path", doc).unwrap_err(),
            "Missing property in path $['no']"
        );
        assert_eq!(
            sel("$.a.c", doc).unwrap_err(),
            "No results for path: $['a']['c']"
        );
        assert!(
            sel("$.a.b.c", doc)
                .unwrap_err()
                .contains("Expected to find an object")
        );
        assert_eq!(
            sel("$.a[0]", doc).unwrap_err(),
            r#"Filter: [0] can only be applied to arrays. Current context is: {"b":1}"#
        );
    }

    #[test]
    fn indefinite_paths_collect_and_never_fail() {
        let doc = r#"{"items":[{"v":1},{"v":2},{"w":3}],"o":{"x":1,"y":2}}"#;
        assert_eq!(sel("$.items[*].v", doc).unwrap(), "[1,2]");
        assert_eq!(sel("$.items[1:].v", doc).unwrap(), "[2]");
        assert_eq!(sel("$.items[:1]", doc).unwrap(), r#"[{"v":1}]"#);
        assert_eq!(sel("$.items[-2:].w", doc).unwrap(), "[3]");
        assert_eq!(sel("$.items[0,2]", doc).unwrap(), r#"[{"v":1},{"w":3}]"#);
        assert_eq!(sel("$.o.*", doc).unwrap(), "[1,2]");
        assert_eq!(sel("$..v", doc).unwrap(), "[1,2]");
        assert_eq!(sel("$.missing[*]", doc).unwrap(), "[]");
        assert_eq!(sel("$[*]", "{}").unwrap(), "[]");
        assert_eq!(sel("$..x", doc).unwrap(), "[1]");
        assert_eq!(sel("$.o['x','y']", doc).unwrap(), "[1,2]");
    }

    #[test]
    fn functions_apply_to_the_selection() {
        let doc = r#"{"r":[1,2,3,6],"o":{"a":1,"b":2}}"#;
        assert_eq!(sel("$.r.length()", doc).unwrap(), "4");
        assert_eq!(sel("$.r.max()", doc).unwrap(), "6.0");
        assert_eq!(sel("$.r.avg()", doc).unwrap(), "3.0");
        assert_eq!(sel("$.o.keys()", doc).unwrap(), r#"["a","b"]"#);
    }

    #[test]
    fn set_writes_creating_missing_objects() {
        assert_eq!(set("$.x", r#"{"a":1}"#, "2").unwrap(), r#"{"a":1,"x":2}"#);
        assert_eq!(set("$.a", r#"{"a":1}"#, "2").unwrap(), r#"{"a":2}"#);
        assert_eq!(
            set("$.p.q.r", "{}", "true").unwrap(),
            r#"{"p":{"q":{"r":true}}}"#
        );
        assert_eq!(
            set("$.l[1]", r#"{"l":[1,2]}"#, "9").unwrap(),
            r#"{"l":[1,9]}"#
        );
        assert_eq!(set("$", r#"{"a":1}"#, "[1]").unwrap(), "[1]");
    }

    #[test]
    fn set_refuses_what_cannot_hold_the_value() {
        assert_eq!(set("$.x", r#""hello""#, "1"), Err(SetError));
        assert_eq!(set("$.a.b", r#"{"a":3}"#, "1"), Err(SetError));
        assert_eq!(set("$.l[5]", r#"{"l":[1]}"#, "1"), Err(SetError));
        assert_eq!(set("$.p.q[0]", "{}", "1"), Err(SetError));
    }

    #[test]
    fn set_copies_shared_documents_instead_of_mutating_them() {
        let original = v(r#"{"a":{"b":1}}"#);
        let mut copy = original.clone();
        Path::parse("$.a.c")
            .unwrap()
            .set(&mut copy, Value::int(2))
            .unwrap();
        assert_eq!(to_string(&original), r#"{"a":{"b":1}}"#);
        assert_eq!(to_string(&copy), r#"{"a":{"b":1,"c":2}}"#);
    }
}
