//! `Value`: the JSON value every layer works on (parser, JSONPath, intrinsics, executor).
//!
//! Arrays and objects sit behind `Arc`, so passing a sub-document from a state's input to its
//! output (`"site.$": "$.site"`) is a pointer copy, and a `ResultPath` write into an input
//! nobody else holds mutates it in place (`Arc::make_mut`). Objects keep insertion order, as
//! AWS's Jackson `ObjectNode` does, and are a flat vector: payload objects are small, and a
//! linear scan over inline keys beats hashing them. Each container caches its encoded length
//! so that the 256 KiB payload check does not re-walk unchanged sub-trees.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::Str;

/// A JSON number as Jackson keeps it: integers stay integers, everything else is a double.
#[derive(Clone, Copy, Debug)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    /// The value as a double (integers convert exactly up to 2^53).
    #[inline]
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    /// The value as an integer when it is one (`3` or `3.0`).
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(i),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(f as i64),
            Number::Float(_) => None,
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            _ => self.as_f64() == other.as_f64(),
        }
    }
}

/// A JSON value.
#[derive(Clone, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(Str),
    Array(Arc<Array>),
    Object(Arc<Object>),
}

/// The items of a JSON array, with what is known of their encoded length.
#[derive(Default)]
pub struct Array {
    items: Vec<Value>,
    lengths: Lengths,
}

/// The members of a JSON object in insertion order, with what is known of their encoded
/// length.
#[derive(Default)]
pub struct Object {
    entries: Vec<(Str, Value)>,
    lengths: Lengths,
}

/// A container's encoded length as far as it is known, each 0 when not: the exact length
/// (the payload check), and an upper bound of it (counted without formatting numbers, for
/// containers that JSONata builds). Both fit the padding after the vector, so a container
/// is no bigger for the second; mutation forgets both.
#[derive(Default)]
struct Lengths {
    exact: AtomicU32,
    bound: AtomicU32,
}

impl Lengths {
    fn copy(&self) -> Lengths {
        Lengths {
            exact: AtomicU32::new(self.exact.load(Ordering::Relaxed)),
            bound: AtomicU32::new(self.bound.load(Ordering::Relaxed)),
        }
    }
    #[inline]
    fn forget(&mut self) {
        *self.exact.get_mut() = 0;
        *self.bound.get_mut() = 0;
    }
}

/// The length-cache methods of `Array` and `Object` (both keep a `lengths: Lengths`).
macro_rules! length_caches {
    () => {
        /// The remembered exact encoded length (0: not known).
        pub(crate) fn cached_len(&self) -> u32 {
            self.lengths.exact.load(Ordering::Relaxed)
        }
        pub(crate) fn cache_len(&self, n: u32) {
            self.lengths.exact.store(n, Ordering::Relaxed)
        }
        /// The remembered upper bound of the encoded length (0: none); the exact length,
        /// when known, is a better one.
        pub fn cached_bound(&self) -> u64 {
            self.lengths.bound.load(Ordering::Relaxed) as u64
        }
        /// Remembers an upper bound of the encoded length (one past `u32` is not kept).
        pub fn cache_bound(&self, n: u64) {
            if let Ok(n) = u32::try_from(n) {
                self.lengths.bound.store(n, Ordering::Relaxed)
            }
        }
    };
}

impl Clone for Array {
    fn clone(&self) -> Array {
        Array {
            items: self.items.clone(),
            lengths: self.lengths.copy(),
        }
    }
}

impl Clone for Object {
    fn clone(&self) -> Object {
        Object {
            entries: self.entries.clone(),
            lengths: self.lengths.copy(),
        }
    }
}

impl Array {
    pub fn new(items: Vec<Value>) -> Array {
        Array {
            items,
            lengths: Lengths::default(),
        }
    }
    #[inline]
    pub fn as_slice(&self) -> &[Value] {
        &self.items
    }
    /// The items for mutation; forgets the cached length.
    pub fn items_mut(&mut self) -> &mut Vec<Value> {
        self.lengths.forget();
        &mut self.items
    }
    pub fn into_vec(self) -> Vec<Value> {
        self.items
    }
    length_caches!();
}

impl std::ops::Deref for Array {
    type Target = [Value];
    #[inline]
    fn deref(&self) -> &[Value] {
        &self.items
    }
}

impl Object {
    pub fn new() -> Object {
        Object::default()
    }
    pub fn with_capacity(n: usize) -> Object {
        Object {
            entries: Vec::with_capacity(n),
            lengths: Lengths::default(),
        }
    }
    /// Builds an object from members known to have distinct keys.
    pub fn from_entries(entries: Vec<(Str, Value)>) -> Object {
        Object {
            entries,
            lengths: Lengths::default(),
        }
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The value of `key`, if present.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        let kb = key.as_bytes();
        self.entries
            .iter()
            .find(|(k, _)| k.as_bytes() == kb)
            .map(|(_, v)| v)
    }
    /// The value of `key`, comparing keys as `Str`s (cheaper than text for inline keys).
    #[inline]
    pub fn get_key(&self, key: &Str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
    /// The value of `key` for mutation; forgets the cached length.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.lengths.forget();
        self.entries
            .iter_mut()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }
    /// Sets `key` to `value`: replaces the value in place when the key exists (keeping its
    /// position, as Jackson's `ObjectNode.set` does), appends otherwise.
    pub fn insert(&mut self, key: Str, value: Value) {
        self.lengths.forget();
        if let Some(slot) = self.entries.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.entries.push((key, value));
        }
    }
    /// Appends a member without looking for an existing key (the caller knows it is new).
    #[inline]
    pub fn push_unique(&mut self, key: Str, value: Value) {
        self.lengths.forget();
        self.entries.push((key, value));
    }
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.lengths.forget();
        let i = self.entries.iter().position(|(k, _)| k.as_str() == key)?;
        Some(self.entries.remove(i).1)
    }
    #[inline]
    pub fn iter(&self) -> std::slice::Iter<'_, (Str, Value)> {
        self.entries.iter()
    }
    pub fn keys(&self) -> impl Iterator<Item = &Str> {
        self.entries.iter().map(|(k, _)| k)
    }
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.entries.iter().map(|(_, v)| v)
    }
    pub fn into_entries(self) -> Vec<(Str, Value)> {
        self.entries
    }
    length_caches!();
}

impl Value {
    /// A string value.
    #[inline]
    pub fn string(s: &str) -> Value {
        Value::String(Str::new(s))
    }
    pub fn int(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }
    pub fn float(f: f64) -> Value {
        Value::Number(Number::Float(f))
    }
    pub fn array(items: Vec<Value>) -> Value {
        Value::Array(Arc::new(Array::new(items)))
    }
    pub fn object(obj: Object) -> Value {
        Value::Object(Arc::new(obj))
    }
    /// An array whose encoded length is known to be at most `bound`.
    pub fn array_within(items: Vec<Value>, bound: u64) -> Value {
        let a = Array::new(items);
        a.cache_bound(bound);
        Value::Array(Arc::new(a))
    }
    /// An object whose encoded length is known to be at most `bound`.
    pub fn object_within(obj: Object, bound: u64) -> Value {
        obj.cache_bound(bound);
        Value::Object(Arc::new(obj))
    }
    /// An object from `(key, value)` pairs; later duplicates replace earlier ones.
    pub fn object_from<K: Into<Str>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        let mut o = Object::new();
        for (k, v) in pairs {
            o.insert(k.into(), v);
        }
        Value::object(o)
    }
    pub fn empty_object() -> Value {
        Value::object(Object::new())
    }

    /// The JSON type name as AWS error messages spell it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    #[inline]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    #[inline]
    pub fn as_number(&self) -> Option<Number> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        self.as_number().map(Number::as_f64)
    }
    /// The value as an integer when it is an integral number.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_number().and_then(Number::as_i64)
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    #[inline]
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    #[inline]
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    /// Member `key` of an object value.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }
}

impl PartialEq for Value {
    /// JSON equality: numbers by value, objects regardless of member order.
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => Arc::ptr_eq(a, b) || a.items == b.items,
            (Value::Object(a), Value::Object(b)) => {
                Arc::ptr_eq(a, b)
                    || (a.len() == b.len()
                        && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| v == w)))
            }
            _ => false,
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::int(i)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::string(s)
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(Str::from(s))
    }
}
impl From<Str> for Value {
    fn from(s: Str) -> Value {
        Value::String(s)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::to_string(self))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::to_string(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn v(s: &str) -> Value {
        parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn hot_types_keep_their_size() {
        // Growth of these is a visible decision: every state copies them around.
        assert_eq!(std::mem::size_of::<Value>(), 24);
        assert_eq!(std::mem::size_of::<Number>(), 16);
        assert_eq!(std::mem::size_of::<(Str, Value)>(), 48);
        // The length caches sit in the padding after the vector.
        assert_eq!(std::mem::size_of::<Array>(), 32);
        assert_eq!(std::mem::size_of::<Object>(), 32);
    }

    #[test]
    fn mutation_forgets_the_remembered_lengths() {
        let mut o = Object::new();
        o.push_unique(Str::new("a"), Value::int(1));
        o.cache_len(7);
        o.cache_bound(30);
        let copy = o.clone();
        assert_eq!((copy.cached_len(), copy.cached_bound()), (7, 30));
        o.insert(Str::new("b"), Value::string("longer"));
        assert_eq!((o.cached_len(), o.cached_bound()), (0, 0));
        let mut a = Array::new(vec![Value::int(1)]);
        a.cache_bound(25);
        a.items_mut().push(Value::int(2));
        assert_eq!((a.cached_len(), a.cached_bound()), (0, 0));
    }

    #[test]
    fn equality_is_json_equality() {
        assert_eq!(v(r#"{"a":1,"b":[1,2.0]}"#), v(r#"{"b":[1.0,2],"a":1.0}"#));
        assert_ne!(v(r#"{"a":1}"#), v(r#"{"a":1,"b":2}"#));
        assert_ne!(v("1"), v("\"1\""));
        assert_ne!(v("true"), v("1"));
    }

    #[test]
    fn insert_replaces_in_place_and_appends_new_keys() {
        let mut o = Object::new();
        o.insert("a".into(), Value::int(1));
        o.insert("b".into(), Value::int(2));
        o.insert("a".into(), Value::int(3));
        let keys: Vec<&str> = o.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(o.get("a"), Some(&Value::int(3)));
    }
}
