//! Streams of events through a workflow: records come from a source (standard input now,
//! Kafka topics next), go to the shard of their key, run as one execution each, and leave as
//! an output record or a dead letter that says why and where the record came from.
//!
//! The pieces: `shard` (threads that own executions), `lines` (the embedded default: JSON
//! lines on standard input and output, no broker), and the dead-letter envelope here.

pub mod driver;
pub mod kafka;
pub mod lines;
pub mod offsets;
mod produce;
pub mod shard;

use std::fmt;

use crate::exec::Outcome;
use crate::json::{self, Str, Value};

/// Where a record came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    pub topic: Str,
    pub partition: i32,
    pub offset: i64,
}

impl Source {
    /// The execution name for this record: derived from its coordinates, so a re-run of the
    /// same record is recognisable (AWS names allow letters, digits, `-` and `_`).
    pub fn execution_name(&self) -> Str {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        let topic = self.topic.as_str();
        let mut name = String::with_capacity(topic.len().min(60) + 24);
        match topic.get(..60.min(topic.len())) {
            // The usual topic name is already made of allowed characters.
            Some(head) if head.chars().all(allowed) => name.push_str(head),
            _ => name.extend(
                topic
                    .chars()
                    .take(60)
                    .map(|c| if allowed(c) { c } else { '_' }),
            ),
        }
        let mut digits = itoa::Buffer::new();
        name.push('-');
        name.push_str(digits.format(self.partition));
        name.push('-');
        name.push_str(digits.format(self.offset));
        Str::from(name)
    }

    pub fn to_json(&self) -> Value {
        Value::object_from([
            ("topic", Value::String(self.topic.clone())),
            ("partition", Value::int(self.partition as i64)),
            ("offset", Value::int(self.offset)),
        ])
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// One event to run.
#[derive(Debug)]
pub struct Record {
    pub source: Source,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// When the record was received, for the latency histogram.
    pub received: std::time::Instant,
    /// The partition window its offset is pending in (Kafka), acknowledged when its result
    /// is delivered.
    pub window: Option<std::sync::Arc<offsets::Window>>,
    /// For a record that runs a workflow of its own (a Step Functions API request): which,
    /// and how it ended. Stream records have none.
    pub job: Option<Box<Job>>,
}

/// An execution the API asked for: its own plan and resources (one shard pool serves every
/// state machine), its name and ARNs, and, once it has ended, its times and failure. The
/// shard fills in the end; the API's sink answers the request with it. A failed job's
/// `Processed` carries no dead-letter envelope: the error and cause are here.
pub struct Job {
    pub plan: std::sync::Arc<crate::plan::Plan>,
    pub registry: std::sync::Arc<crate::tasks::Registry>,
    pub name: Str,
    /// The execution's ARN and its state machine's (or version's), as `$$` shows them.
    pub arns: std::sync::Arc<(Str, Str)>,
    /// When it started and stopped (ms since the epoch), set by the shard.
    pub started_ms: i64,
    pub stopped_ms: i64,
    /// Set by the shard when the execution did not succeed.
    pub error: Option<Str>,
    pub cause: Option<Str>,
    /// Where the result is awaited; the API's sink sends it there.
    pub reply: Option<tokio::sync::oneshot::Sender<Processed>>,
    /// Set by StopExecution; the shard ends the execution when a stop request comes.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// This record runs nothing: it asks its shard to end the executions whose `cancel` is
    /// set (it is routed by the same key as they were).
    pub stop_request: bool,
    /// This record runs nothing either: it asks its shard for the history so far of the
    /// running execution with its ARN (GetExecutionHistory of a RUNNING execution); an
    /// execution no longer running drops the sender unanswered.
    pub history_request: Option<tokio::sync::oneshot::Sender<Vec<crate::exec::HistoryEvent>>>,
    /// What to record of the execution's history events (all of them for STANDARD
    /// executions, what its log keeps for a logged EXPRESS one); the shard puts them in
    /// `events` when it ends.
    pub history: crate::exec::Recording,
    pub events: Vec<crate::exec::HistoryEvent>,
    /// Where the execution counts what its states do: its state machine's counts for the
    /// shard the record is routed to (that shard alone writes them).
    pub counts: Option<std::sync::Arc<crate::exec::StateCounts>>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("machine", &self.plan.name)
            .field("arn", &self.arns.0)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// What became of a record.
#[derive(Debug)]
pub enum Disposition {
    /// The execution succeeded: its output JSON.
    Output(Vec<u8>),
    /// It could not be processed or its execution failed: the dead-letter envelope (JSON).
    DeadLetter(Vec<u8>),
}

/// The result of one record, ready for its sink.
#[derive(Debug)]
pub struct Processed {
    pub source: Source,
    pub key: Option<Vec<u8>>,
    pub execution_name: Str,
    pub disposition: Disposition,
    /// States entered (0 when no execution ran).
    pub transitions: u64,
    /// SUCCEEDED, FAILED, TIMED_OUT, or REJECTED (never ran).
    pub status: &'static str,
    /// The record's partition window, if its source keeps one.
    pub window: Option<std::sync::Arc<offsets::Window>>,
    /// The API execution this was, with its end filled in.
    pub job: Option<Box<Job>>,
}

/// The dead-letter envelope: `{"error","cause","input","source","execution_name"}` (and
/// `"state"` after the cause for an execution a state's error failed), where
/// `input` is the original payload as JSON when it parses, else as a string (base64 for
/// bytes that are not UTF-8, with `input_encoding` saying so).
pub fn dead_letter(
    error: &str,
    cause: &str,
    payload: &[u8],
    source: &Source,
    execution_name: &str,
) -> Vec<u8> {
    envelope(error, cause, None, payload, source, execution_name)
}

fn envelope(
    error: &str,
    cause: &str,
    state: Option<&str>,
    payload: &[u8],
    source: &Source,
    execution_name: &str,
) -> Vec<u8> {
    let mut pairs: Vec<(&str, Value)> = vec![
        ("error", Value::string(error)),
        ("cause", Value::string(cause)),
    ];
    if let Some(state) = state {
        pairs.push(("state", Value::string(state)));
    }
    match json::parse(payload) {
        Ok(v) => pairs.push(("input", v)),
        Err(_) => match std::str::from_utf8(payload) {
            Ok(text) => pairs.push(("input", Value::string(text))),
            Err(_) => {
                use base64::Engine as _;
                pairs.push((
                    "input",
                    Value::from(base64::engine::general_purpose::STANDARD.encode(payload)),
                ));
                pairs.push(("input_encoding", Value::string("base64")));
            }
        },
    }
    pairs.push(("source", source.to_json()));
    pairs.push(("execution_name", Value::string(execution_name)));
    json::to_string(&Value::object_from(pairs)).into_bytes()
}

/// The dead letter for a finished execution that did not succeed; `state`, the top-level
/// state whose error failed it, follows the cause when known.
pub fn outcome_dead_letter(
    outcome: &Outcome,
    state: Option<&str>,
    payload: &[u8],
    source: &Source,
    name: &str,
) -> Vec<u8> {
    let (error, cause) = outcome.error_and_cause();
    envelope(
        error.as_deref().unwrap_or(""),
        cause.as_deref().unwrap_or(""),
        state,
        payload,
        source,
        name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> Source {
        Source {
            topic: Str::new("iot.events"),
            partition: 3,
            offset: 42,
        }
    }

    #[test]
    fn execution_names_come_from_the_coordinates() {
        assert_eq!(src().execution_name().as_str(), "iot_events-3-42");
        let named = |topic: &str| {
            Source {
                topic: Str::new(topic),
                partition: 0,
                offset: 7,
            }
            .execution_name()
            .to_string()
        };
        // At most 60 characters of the topic, each outside [A-Za-z0-9_-] as one '_'.
        assert_eq!(named(&"a".repeat(70)), format!("{}-0-7", "a".repeat(60)));
        assert_eq!(named("tópico.x"), "t_pico_x-0-7");
        let wide = format!("{}é{}", "b".repeat(59), "c".repeat(10));
        assert_eq!(named(&wide), format!("{}_-0-7", "b".repeat(59)));
    }

    #[test]
    fn dead_letters_keep_the_input_as_json_text_or_base64() {
        let env =
            |payload: &[u8]| json::parse(&dead_letter("E", "why", payload, &src(), "n")).unwrap();
        let v = env(br#"{"a":1}"#);
        assert_eq!(v.get("input"), Some(&json::parse(br#"{"a":1}"#).unwrap()));
        assert_eq!(v.get("error"), Some(&Value::string("E")));
        assert_eq!(
            v.get("source"),
            Some(&json::parse(br#"{"topic":"iot.events","partition":3,"offset":42}"#).unwrap())
        );
        assert_eq!(v.get("execution_name"), Some(&Value::string("n")));
        assert_eq!(
            env(b"not json").get("input"),
            Some(&Value::string("not json"))
        );
        let v = env(&[0xff, 0xfe]);
        assert_eq!(v.get("input"), Some(&Value::string("//4=")));
        assert_eq!(v.get("input_encoding"), Some(&Value::string("base64")));
    }
}
