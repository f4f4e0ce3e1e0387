//! `Val`: a JSONata value during one evaluation. JSON from the input stays what it is (the
//! `JArray`/`JObject` variants share the input's `Arc`s, so walking `$states.input.site.region`
//! copies nothing); what the expression builds (`[...]`, `{...}`, path results) is a JSONata
//! array or object, which may also hold functions. Sequences are arrays with flags, as in
//! jsonata-js: a one-item sequence collapses to its item, an empty one to undefined.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use super::func::Func;
use crate::json::{self, Number, Str, Value};

/// A JSONata value. `Undefined` is JSONata's undefined (no value), distinct from `Null`.
#[derive(Clone, Default)]
pub enum Val {
    #[default]
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(Str),
    /// An array built during evaluation (with sequence flags).
    Array(Rc<Array>),
    /// An array taken from JSON input, unchanged.
    JArray(Arc<json::Array>),
    /// An object built during evaluation.
    Object(Rc<Object>),
    /// An object taken from JSON input, unchanged.
    JObject(Arc<json::Object>),
    Func(Rc<Func>),
}

/// The flags jsonata-js puts on arrays.
pub mod flag {
    /// A sequence (the result of a path step), as opposed to a JSON array value.
    pub const SEQUENCE: u8 = 1;
    /// A sequence that stays an array even with one item (`[]` in a path).
    pub const KEEP_SINGLETON: u8 = 2;
    /// An array built by an array constructor (not flattened into a path's results).
    pub const CONS: u8 = 4;
    /// A one-item wrapper around a whole input array (`$` on an array input).
    pub const OUTER_WRAPPER: u8 = 8;
    /// A stream of tuples (objects binding `@` and the step variables), for `@`, `#`, `%`.
    pub const TUPLE_STREAM: u8 = 16;
}

/// An array built during evaluation. Flags live in a `Cell` because jsonata-js marks arrays
/// after building them (a path marks its result keep-singleton), and values share arrays.
pub struct Array {
    pub items: Vec<Val>,
    pub flags: Cell<u8>,
    /// Levels of built arrays and objects inside (the evaluator limits it: walking and
    /// dropping a value recurse).
    pub depth: u32,
}

/// How many levels of built arrays and objects `v` is.
pub fn nesting(v: &Val) -> u32 {
    match v {
        Val::Array(a) => a.depth + 1,
        Val::Object(o) => o.depth.get() + 1,
        _ => 0,
    }
}

fn nesting_of<'a>(items: impl Iterator<Item = &'a Val>) -> u32 {
    items.map(nesting).max().unwrap_or(0)
}

impl Array {
    pub fn has(&self, f: u8) -> bool {
        self.flags.get() & f != 0
    }
    pub fn set(&self, f: u8) {
        self.flags.set(self.flags.get() | f)
    }
}

/// An object built during evaluation: members in insertion order. The members sit in a
/// `RefCell` because the transform operator (`| pattern | update |`) updates the objects its
/// pattern matched inside a copy, as jsonata-js does; nothing else mutates a shared object.
#[derive(Default)]
pub struct Object {
    pub entries: RefCell<Vec<(Str, Val)>>,
    /// As [`Array::depth`].
    pub depth: Cell<u32>,
}

impl Object {
    pub fn new(entries: Vec<(Str, Val)>) -> Object {
        Object {
            depth: Cell::new(nesting_of(entries.iter().map(|(_, v)| v))),
            entries: RefCell::new(entries),
        }
    }
    pub fn get(&self, key: &str) -> Option<Val> {
        self.entries
            .borrow()
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v.clone())
    }
    /// Sets `key`, keeping the position of an existing key.
    pub fn insert(&self, key: Str, value: Val) {
        self.depth.set(self.depth.get().max(nesting(&value)));
        let mut entries = self.entries.borrow_mut();
        if let Some(slot) = entries.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            entries.push((key, value));
        }
    }
    pub fn remove(&self, key: &str) {
        self.entries.borrow_mut().retain(|(k, _)| k.as_str() != key);
    }
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Val {
    pub fn str(s: &str) -> Val {
        Val::Str(Str::new(s))
    }
    pub fn string(s: String) -> Val {
        Val::Str(Str::from(s))
    }
    /// A plain array (not a sequence).
    pub fn array(items: Vec<Val>) -> Val {
        Val::Array(Rc::new(Array {
            depth: nesting_of(items.iter()),
            items,
            flags: Cell::new(0),
        }))
    }
    pub fn array_with(items: Vec<Val>, flags: u8) -> Val {
        Val::Array(Rc::new(Array {
            depth: nesting_of(items.iter()),
            items,
            flags: Cell::new(flags),
        }))
    }
    /// A sequence of items.
    pub fn seq(items: Vec<Val>) -> Val {
        Val::array_with(items, flag::SEQUENCE)
    }
    pub fn object(entries: Vec<(Str, Val)>) -> Val {
        Val::Object(Rc::new(Object::new(entries)))
    }

    /// A JSON value as a JSONata value: scalars convert, containers are shared.
    pub fn from_json(v: &Value) -> Val {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n.as_f64()),
            Value::String(s) => Val::Str(s.clone()),
            Value::Array(a) => Val::JArray(a.clone()),
            Value::Object(o) => Val::JObject(o.clone()),
        }
    }

    /// The value as JSON (None for undefined). Functions have no JSON form; they print as
    /// `""`, as jsonata-js's own `$string` renders them.
    pub fn to_json(&self) -> Option<Value> {
        Some(match self {
            Val::Undefined => return None,
            Val::Func(_) => Value::string(""),
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) => number_to_json(*n),
            Val::Str(s) => Value::String(s.clone()),
            Val::JArray(a) => Value::Array(a.clone()),
            Val::JObject(o) => Value::Object(o.clone()),
            Val::Array(a) => {
                let items = a
                    .items
                    .iter()
                    .filter(|v| !matches!(v, Val::Undefined))
                    .filter_map(|v| v.to_json())
                    .collect();
                Value::array(items)
            }
            Val::Object(o) => {
                let entries = o.entries.borrow();
                let mut out = json::Object::with_capacity(entries.len());
                for (k, v) in entries.iter() {
                    if let Some(j) = v.to_json() {
                        out.push_unique(k.clone(), j);
                    }
                }
                Value::object(out)
            }
        })
    }

    pub fn is_undefined(&self) -> bool {
        matches!(self, Val::Undefined)
    }
    pub fn is_array(&self) -> bool {
        matches!(self, Val::Array(_) | Val::JArray(_))
    }
    pub fn is_object(&self) -> bool {
        matches!(self, Val::Object(_) | Val::JObject(_))
    }
    pub fn is_function(&self) -> bool {
        matches!(self, Val::Func(_))
    }
    pub fn as_num(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }
    /// Whether this is a sequence (a path result), as opposed to an array value.
    pub fn is_sequence(&self) -> bool {
        matches!(self, Val::Array(a) if a.has(flag::SEQUENCE))
    }
    pub fn has_flag(&self, f: u8) -> bool {
        matches!(self, Val::Array(a) if a.has(f))
    }

    /// The number of items of an array (0 for anything else).
    pub fn len(&self) -> usize {
        match self {
            Val::Array(a) => a.items.len(),
            Val::JArray(a) => a.len(),
            _ => 0,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Item `i` of an array (undefined past the end or for a non-array).
    pub fn item(&self, i: usize) -> Val {
        match self {
            Val::Array(a) => a.items.get(i).cloned().unwrap_or_default(),
            Val::JArray(a) => a.get(i).map(Val::from_json).unwrap_or_default(),
            _ => Val::Undefined,
        }
    }
    /// The items of an array, or the value itself as one item (none for undefined).
    pub fn items(&self) -> Vec<Val> {
        match self {
            Val::Array(a) => a.items.clone(),
            Val::JArray(a) => a.iter().map(Val::from_json).collect(),
            Val::Undefined => Vec::new(),
            v => vec![v.clone()],
        }
    }
    /// Member `key` of an object (undefined when absent or not an object).
    pub fn field(&self, key: &str) -> Val {
        match self {
            Val::Object(o) => o.get(key).unwrap_or_default(),
            Val::JObject(o) => o.get(key).map(Val::from_json).unwrap_or_default(),
            _ => Val::Undefined,
        }
    }
    /// The members of an object in order.
    pub fn entries(&self) -> Vec<(Str, Val)> {
        match self {
            Val::Object(o) => o.entries.borrow().clone(),
            Val::JObject(o) => o
                .iter()
                .map(|(k, v)| (k.clone(), Val::from_json(v)))
                .collect(),
            _ => Vec::new(),
        }
    }
    pub fn keys(&self) -> Vec<Str> {
        match self {
            Val::Object(o) => o.entries.borrow().iter().map(|(k, _)| k.clone()).collect(),
            Val::JObject(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// JSONata's type names, as `$type` returns them.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Undefined => "undefined",
            Val::Null => "null",
            Val::Bool(_) => "boolean",
            Val::Num(_) => "number",
            Val::Str(_) => "string",
            Val::Array(_) | Val::JArray(_) => "array",
            Val::Object(_) | Val::JObject(_) => "object",
            Val::Func(_) => "function",
        }
    }
}

/// A double as a JSON number: integral values in the safe range print without a fraction.
pub fn number_to_json(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        Value::Number(Number::Int(n as i64))
    } else {
        Value::Number(Number::Float(n))
    }
}

/// Deep equality as jsonata-js's `isDeepEqual` (numbers by value, objects by members).
pub fn deep_equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Undefined, Val::Undefined) | (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Func(x), Val::Func(y)) => Rc::ptr_eq(x, y),
        (Val::JArray(x), Val::JArray(y)) => Arc::ptr_eq(x, y) || x.as_slice() == y.as_slice(),
        (Val::JObject(x), Val::JObject(y)) => {
            Arc::ptr_eq(x, y) || Value::Object(x.clone()) == Value::Object(y.clone())
        }
        _ if a.is_array() && b.is_array() => {
            a.len() == b.len() && (0..a.len()).all(|i| deep_equal(&a.item(i), &b.item(i)))
        }
        _ if a.is_object() && b.is_object() => {
            let (ea, eb) = (a.entries(), b.entries());
            ea.len() == eb.len()
                && ea
                    .iter()
                    .all(|(k, v)| eb.iter().any(|(k2, v2)| k == k2 && deep_equal(v, v2)))
        }
        _ => false,
    }
}
