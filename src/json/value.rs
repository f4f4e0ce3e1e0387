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

/// The items of a JSON array, with a cache of their encoded length.
#[derive(Default)]
pub struct Array {
    items: Vec<Value>,
    encoded_len: AtomicU32,
}

/// The members of a JSON object in insertion order, with a cache of their encoded length.
#[derive(Default)]
pub struct Object {
    entries: Vec<(Str, Value)>,
    encoded_len: AtomicU32,
}

impl Clone for Array {
    fn clone(&self) -> Array {
        Array {
            items: self.items.clone(),
            encoded_len: AtomicU32::new(self.encoded_len.load(Ordering::Relaxed)),
        }
    }
}

impl Clone for Object {
    fn clone(&self) -> Object {
        Object {
            entries: self.entries.clone(),
            encoded_len: AtomicU32::new(self.encoded_len.load(Ordering::Relaxed)),
        }
    }
}

impl Array {
    pub fn new(items: Vec<Value>) -> Array {
        Array {
            items,
            encoded_len: AtomicU32::new(0),
        }
    }
    #[inline]
    pub fn as_slice(&self) -> &[Value] {
        &self.items
    }
    /// The items for mutation; forgets the cached length.
    pub fn items_mut(&mut self) -> &mut Vec<Value> {
        *self.encoded_len.get_mut() = 0;
        &mut self.items
    }
    pub fn into_vec(self) -> Vec<Value> {
        self.items
    }
    pub(crate) fn cached_len(&self) -> u32 {
        self.encoded_len.load(Ordering::Relaxed)
    }
    pub(crate) fn cache_len(&self, n: u32) {
        self.encoded_len.store(n, Ordering::Relaxed)
    }
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
            encoded_len: AtomicU32::new(0),
        }
    }
    /// Builds an object from members known to have distinct keys.
    pub fn from_entries(entries: Vec<(Str, Value)>) -> Object {
        Object {
            entries,
            encoded_len: AtomicU32::new(0),
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
        *self.encoded_len.get_mut() = 0;
        self.entries
            .iter_mut()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }
    /// Sets `key` to `value`: replaces the value in place when the key exists (keeping its
    /// position, as Jackson's `ObjectNode.set` does), appends otherwise.
    pub fn insert(&mut self, key: Str, value: Value) {
        *self.encoded_len.get_mut() = 0;
        if let Some(slot) = self.entries.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.entries.push((key, value));
        }
    }
    /// Appends a member without looking for an existing key (the caller knows it is new).
    #[inline]
    pub fn push_unique(&mut self, key: Str, value: Value) {
        *self.encoded_len.get_mut() = 0;
        self.entries.push((key, value));
    }
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        *self.encoded_len.get_mut() = 0;
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
    pub(crate) fn cached_len(&self) -> u32 {
        self.encoded_len.load(Ordering::Relaxed)
    }
    pub(crate) fn cache_len(&self, n: u32) {
        self.encoded_len.store(n, Ordering::Relaxed)
    }
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
