//! Execution logs: the history events of finished EXPRESS executions written as JSON lines in
//! the shape CloudWatch Logs receives them from Step Functions, filtered by a
//! `loggingConfiguration` (level ALL / ERROR / FATAL / OFF, `includeExecutionData`). The API's
//! state machines and the stream pipelines both log through here.
//!
//! Lines are formatted by whoever finished the execution (a shard thread, an API request) into
//! a buffer of its own and handed to one writer thread per destination over a bounded
//! channel, so no shard waits on a file or shares a lock with another; a full channel (the
//! destination slower than the executions) holds the sender back rather than dropping lines.

use std::io::Write;
use std::path::PathBuf;

use crate::json::{self, Value};

use super::HistoryEvent;

/// Which events a log receives (`loggingConfiguration.level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogLevel {
    #[default]
    Off,
    /// Every event.
    All,
    /// Events of errors: `*Failed`, `*TimedOut`, `*Aborted`.
    Error,
    /// Only how a failed execution ended: ExecutionFailed, ExecutionTimedOut, ExecutionAborted.
    Fatal,
}

impl LogLevel {
    /// The level named as AWS names it, or `None` for anything else.
    pub fn parse(name: &str) -> Option<LogLevel> {
        Some(match name {
            "ALL" => LogLevel::All,
            "ERROR" => LogLevel::Error,
            "FATAL" => LogLevel::Fatal,
            "OFF" => LogLevel::Off,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Off => "OFF",
            LogLevel::All => "ALL",
            LogLevel::Error => "ERROR",
            LogLevel::Fatal => "FATAL",
        }
    }

    /// Whether an event of type `kind` goes to a log at this level.
    pub fn keeps(self, kind: &str) -> bool {
        let error = ["Failed", "TimedOut", "Aborted"]
            .iter()
            .any(|s| kind.ends_with(s));
        match self {
            LogLevel::Off => false,
            LogLevel::All => true,
            LogLevel::Error => error,
            LogLevel::Fatal => error && kind.starts_with("Execution"),
        }
    }
}

/// What one state machine or pipeline logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LogSettings {
    pub level: LogLevel,
    /// Keep the events' `input` and `output` (and their `*Details`).
    pub include_execution_data: bool,
}

impl LogSettings {
    /// The settings of a `loggingConfiguration` object (already validated; anything else
    /// logs nothing).
    pub fn of_configuration(logging: &Value) -> LogSettings {
        LogSettings {
            level: logging
                .get("level")
                .and_then(Value::as_str)
                .and_then(LogLevel::parse)
                .unwrap_or_default(),
            include_execution_data: logging.get("includeExecutionData").and_then(Value::as_bool)
                == Some(true),
        }
    }

    /// Whether executions must record their history for this log.
    pub fn records(&self) -> bool {
        self.level != LogLevel::Off
    }

    /// Appends the lines of `events` this log keeps to `out`, one JSON object per line:
    /// `id`, `type`, `details`, `previous_event_id`, `event_timestamp` (strings, as
    /// CloudWatch receives them), `execution_arn`, `redrive_count`. Returns how many.
    pub fn format(&self, events: &[HistoryEvent], execution_arn: &str, out: &mut Vec<u8>) -> usize {
        let mut lines = 0;
        let mut digits = itoa::Buffer::new();
        for ev in events {
            if !self.level.keeps(ev.kind) {
                continue;
            }
            let mut details = ev.details.clone();
            if !self.include_execution_data {
                strip_execution_data(&mut details);
            }
            if details.is_null() {
                details = Value::empty_object();
            }
            let line = Value::object_from([
                ("id", Value::from(digits.format(ev.id))),
                ("type", Value::string(ev.kind)),
                ("details", details),
                (
                    "previous_event_id",
                    Value::from(digits.format(ev.previous_id)),
                ),
                (
                    "event_timestamp",
                    Value::from(digits.format(ev.timestamp_ms)),
                ),
                ("execution_arn", Value::from(execution_arn)),
                ("redrive_count", Value::string("0")),
            ]);
            json::write(&line, out);
            out.push(b'\n');
            lines += 1;
        }
        lines
    }
}

/// Leaves the input and output out of an event's details (`includeExecutionData: false`).
pub fn strip_execution_data(details: &mut Value) {
    const DATA: [&str; 4] = ["input", "output", "inputDetails", "outputDetails"];
    if let Value::Object(d) = details {
        // Details recorded without data (a log's recording) have none to strip: no copy.
        if !DATA.iter().any(|f| d.contains_key(f)) {
            return;
        }
        let d = std::sync::Arc::make_mut(d);
        for field in DATA {
            d.remove(field);
        }
    }
}

/// A pipeline's execution log: what it keeps and where it goes.
#[derive(Clone, Debug)]
pub struct Logging {
    pub settings: LogSettings,
    pub log: ExecutionLog,
}

/// Where a log's lines go.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LogDestination {
    Stderr,
    /// A file, appended to (created when missing).
    File(PathBuf),
}

impl LogDestination {
    /// The file when one is named, else standard error.
    pub fn file_or_stderr(path: Option<&std::path::Path>) -> LogDestination {
        match path {
            Some(p) => LogDestination::File(p.to_path_buf()),
            None => LogDestination::Stderr,
        }
    }
}

impl std::fmt::Display for LogDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogDestination::Stderr => f.write_str("standard error"),
            LogDestination::File(p) => write!(f, "{}", p.display()),
        }
    }
}

enum Message {
    Lines(Vec<u8>),
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// Batches of lines in flight to the writer before senders wait.
const QUEUED_BATCHES: usize = 4096;

/// A handle on one destination's writer thread; clones share it. The thread ends, flushing
/// what it holds, when the last handle is dropped; `flush` waits until every line sent
/// before it is written.
#[derive(Clone)]
pub struct ExecutionLog {
    tx: crossbeam_channel::Sender<Message>,
    destination: std::sync::Arc<LogDestination>,
}

impl std::fmt::Debug for ExecutionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExecutionLog({})", self.destination)
    }
}

impl ExecutionLog {
    /// Opens the destination (a file is created or appended to) and starts its writer.
    pub fn open(destination: LogDestination) -> Result<ExecutionLog, String> {
        let out: Box<dyn Write + Send> = match &destination {
            LogDestination::Stderr => Box::new(std::io::stderr()),
            LogDestination::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        format!(
                            "cannot open the execution log {}: {e}; check that its directory exists and is writable",
                            path.display()
                        )
                    })?,
            ),
        };
        Ok(Self::start(destination, out))
    }

    /// A log writing to `out` (tests hand in a buffer they read back).
    pub fn start(destination: LogDestination, out: Box<dyn Write + Send>) -> ExecutionLog {
        let (tx, rx) = crossbeam_channel::bounded(QUEUED_BATCHES);
        let name = destination.to_string();
        let spawned = std::thread::Builder::new()
            .name("execution-log".into())
            .spawn(move || write_lines(rx, out, &name));
        if let Err(e) = spawned {
            crate::log::warn(
                "execution_log_not_started",
                &[("error", Value::from(e.to_string()))],
            );
        }
        ExecutionLog {
            tx,
            destination: std::sync::Arc::new(destination),
        }
    }

    pub fn destination(&self) -> &LogDestination {
        &self.destination
    }

    /// Whether both handles write through the same writer thread.
    pub fn same_writer(&self, other: &ExecutionLog) -> bool {
        self.tx.same_channel(&other.tx)
    }

    /// Hands formatted lines to the writer (nothing when `lines` is empty).
    pub fn write(&self, lines: Vec<u8>) {
        if !lines.is_empty() {
            let _ = self.tx.send(Message::Lines(lines));
        }
    }

    /// Waits until everything sent before has been written and flushed.
    pub fn flush(&self) {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        if self.tx.send(Message::Flush(ack)).is_ok() {
            let _ = done.recv();
        }
    }
}

/// The writer thread: writes batches as they come, flushing whenever none is waiting. A
/// destination that fails is reported once and its lines dropped from then on (the
/// executions go on).
fn write_lines(rx: crossbeam_channel::Receiver<Message>, out: Box<dyn Write + Send>, name: &str) {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    let mut failed = false;
    let report = |e: std::io::Error, failed: &mut bool| {
        if !*failed {
            *failed = true;
            crate::log::warn(
                "execution_log_failed",
                &[
                    ("destination", Value::from(name)),
                    ("error", Value::from(e.to_string())),
                ],
            );
        }
    };
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Message::Lines(b) => {
                    if !failed && let Err(e) = out.write_all(&b) {
                        report(e, &mut failed);
                    }
                }
                Message::Flush(ack) => {
                    if !failed && let Err(e) = out.flush() {
                        report(e, &mut failed);
                    }
                    let _ = ack.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        if !failed && let Err(e) = out.flush() {
            report(e, &mut failed);
        }
    }
    let _ = out.flush();
}

/// A log into memory, for tests: the handle, and the buffer its lines land in.
#[cfg(test)]
pub(crate) fn memory_log() -> (ExecutionLog, MemoryLog) {
    let buf = MemoryLog::default();
    let log = ExecutionLog::start(LogDestination::Stderr, Box::new(buf.clone()));
    (log, buf)
}

#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct MemoryLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl MemoryLog {
    /// What has been written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl Write for MemoryLog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64, kind: &'static str, details: &str) -> HistoryEvent {
        HistoryEvent {
            id,
            previous_id: id - 1,
            timestamp_ms: 1_700_000_000_000 + id as i64,
            kind,
            details: json::parse(details.as_bytes()).unwrap(),
        }
    }

    fn history() -> Vec<HistoryEvent> {
        vec![
            event(
                1,
                "ExecutionStarted",
                r#"{"input":"{\"k\":1}","roleArn":"r"}"#,
            ),
            event(2, "TaskStateEntered", r#"{"name":"T","input":"{}"}"#),
            event(3, "TaskFailed", r#"{"error":"E","cause":"c"}"#),
            event(4, "ExecutionFailed", r#"{"error":"E","cause":"c"}"#),
        ]
    }

    fn lines(settings: LogSettings) -> Vec<Value> {
        let mut out = Vec::new();
        let n = settings.format(&history(), "arn:x", &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| json::parse(l.as_bytes()).unwrap())
            .collect();
        assert_eq!(lines.len(), n);
        lines
    }

    fn types(lines: &[Value]) -> Vec<&str> {
        lines
            .iter()
            .map(|l| l.get("type").and_then(Value::as_str).unwrap())
            .collect()
    }

    #[test]
    fn each_level_keeps_its_events() {
        let at = |level| LogSettings {
            level,
            include_execution_data: false,
        };
        assert_eq!(types(&lines(at(LogLevel::All))).len(), 4);
        assert_eq!(
            types(&lines(at(LogLevel::Error))),
            ["TaskFailed", "ExecutionFailed"]
        );
        assert_eq!(types(&lines(at(LogLevel::Fatal))), ["ExecutionFailed"]);
        assert!(lines(at(LogLevel::Off)).is_empty());
        assert!(!at(LogLevel::Off).records() && at(LogLevel::Fatal).records());
    }

    #[test]
    fn lines_have_cloudwatch_fields_and_data_only_when_included() {
        let with = lines(LogSettings {
            level: LogLevel::All,
            include_execution_data: true,
        });
        let first = &with[0];
        assert_eq!(json::to_string(first.get("id").unwrap()), r#""1""#);
        assert_eq!(
            json::to_string(first.get("previous_event_id").unwrap()),
            r#""0""#
        );
        assert_eq!(
            first.get("event_timestamp").and_then(Value::as_str),
            Some("1700000000001")
        );
        assert_eq!(
            first.get("execution_arn").and_then(Value::as_str),
            Some("arn:x")
        );
        assert_eq!(
            first
                .get("details")
                .and_then(|d| d.get("input"))
                .and_then(Value::as_str),
            Some(r#"{"k":1}"#)
        );
        let without = lines(LogSettings {
            level: LogLevel::All,
            include_execution_data: false,
        });
        assert!(
            without[0]
                .get("details")
                .and_then(|d| d.get("input"))
                .is_none()
        );
        assert_eq!(
            without[0]
                .get("details")
                .and_then(|d| d.get("roleArn"))
                .and_then(Value::as_str),
            Some("r")
        );
    }

    #[test]
    fn the_configuration_object_sets_level_and_data() {
        let v = json::parse(br#"{"level":"ERROR","includeExecutionData":true}"#).unwrap();
        assert_eq!(
            LogSettings::of_configuration(&v),
            LogSettings {
                level: LogLevel::Error,
                include_execution_data: true
            }
        );
        let off = json::parse(br#"{"level":"LOUD"}"#).unwrap();
        assert_eq!(LogSettings::of_configuration(&off), LogSettings::default());
    }

    #[test]
    fn flush_waits_for_every_line_sent_before_it() {
        let (log, buf) = memory_log();
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        log.write(format!("{t}-{i}\n").into_bytes());
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        log.flush();
        let text = buf.text();
        assert_eq!(text.lines().count(), 1000);
        assert!(text.lines().any(|l| l == "3-249"));
    }
}
