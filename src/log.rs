//! Structured lifecycle logging: one JSON line on standard error per event of the process's
//! life (started, partitions assigned or revoked, backpressure, draining, stopped), never per
//! record.

use crate::json::{self, Value};
use crate::time::Timestamp;

/// Writes one log line: `{"ts","level","event", ...fields}`.
pub fn event(level: &str, event: &str, fields: &[(&str, Value)]) {
    let mut pairs: Vec<(&str, Value)> = vec![
        ("ts", Value::from(Timestamp::now().to_iso8601())),
        ("level", Value::string(level)),
        ("event", Value::string(event)),
    ];
    pairs.extend(fields.iter().cloned());
    eprintln!("{}", json::to_string(&Value::object_from(pairs)));
}

pub fn info(e: &str, fields: &[(&str, Value)]) {
    event("INFO", e, fields)
}

pub fn warn(e: &str, fields: &[(&str, Value)]) {
    event("WARN", e, fields)
}

pub fn error(e: &str, fields: &[(&str, Value)]) {
    event("ERROR", e, fields)
}
