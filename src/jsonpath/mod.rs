//! JSONPath as AWS Step Functions evaluates it (Jayway JsonPath semantics): parsed once into a
//! list of segments, evaluated many times without looking at the text again.
//!
//! A *definite* path (only names and single indexes) selects at most one node and is read
//! without copying (`Selected::Borrowed`); a missing member is an error whose message is
//! Jayway's (`Missing property in path $['a']`, `No results for path: $['a']['b']`). An
//! *indefinite* path (wildcards, slices, unions, filters, `..`) collects every match into a
//! new array, and matches nothing without an error. A *reference path* (`ResultPath`) is a
//! definite path that can also be written to (`set`).

mod eval;
mod filter;
mod parse;

use std::fmt;
use std::sync::atomic::Ordering;

use crate::json::{Object, Str, Value};

pub use eval::{PathError, Selected, SetError};
pub use filter::{Filter, Operand};
pub use parse::SyntaxError;

/// Which document a path reads: the state's data (`$`), the context object (`$$`) or a
/// workflow variable (`$name`, whose name is `Path::variable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    Data,
    Context,
    Variable,
}

/// One step of a path.
#[derive(Clone, Debug)]
pub enum Segment {
    /// `.name` or `['name']`.
    Member(Str),
    /// `['a','b']`.
    Members(Vec<Str>),
    /// `[3]` or `[-1]`.
    Index(i64),
    /// `[0,2]`.
    Indexes(Vec<i64>),
    /// `[start:end]`, either side optional, negative counts from the end.
    Slice(Option<i64>, Option<i64>),
    /// `.*` or `[*]`.
    Wildcard,
    /// `..` followed by the segment to apply at every depth.
    Descendants(Box<Segment>),
    /// `[?(...)]`.
    Filter(Box<Filter>),
}

impl Segment {
    fn is_definite(&self) -> bool {
        matches!(self, Segment::Member(_) | Segment::Index(_))
    }
}

/// A function call at the end of a path (`$.items.length()`), as Jayway offers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Length,
    Min,
    Max,
    Avg,
    Sum,
    Stddev,
    Keys,
    First,
    Last,
}

/// Where a member was found last time, to look there first next time: events of one stream
/// share their shape, so a key sits at the same position in every event and the lookup
/// becomes one comparison instead of a scan (W1 runs about 5% slower without it).
///
/// The Plan stays immutable and shards share nothing: a hint is only a number, given once
/// when the path is built, naming a cell of a per-thread table (regex-automata's per-thread
/// cache, kept in a thread-local so no signature has to carry it). Each shard thread learns
/// its own positions; no cache line moves between cores when shapes differ. Numbers of
/// dropped paths are reused, and a hint left by an earlier path only costs the scan it would
/// have saved.
#[derive(Debug)]
pub struct Hint(u32);

static HINT_NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static HINT_FREE: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// Cells in each thread's table. A fixed array of `Cell`s, not a growable `RefCell<Vec>`: no
/// borrow flag, no destructor to register, so a lookup is a bounds check and a load (the
/// `RefCell` cost W1 about 600 instructions per execution, callgrind). Paths numbered past
/// it (more than this many member steps loaded at once) work, without a hint.
const HINT_CELLS: usize = 4096;

thread_local! {
    static HINTS: [std::cell::Cell<u32>; HINT_CELLS] =
        const { [const { std::cell::Cell::new(0) }; HINT_CELLS] };
}

impl Default for Hint {
    fn default() -> Hint {
        let free = HINT_FREE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Hint(free.unwrap_or_else(|| HINT_NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Clone for Hint {
    fn clone(&self) -> Hint {
        Hint::default()
    }
}

impl Drop for Hint {
    fn drop(&mut self) {
        HINT_FREE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.0);
    }
}

impl Hint {
    /// Member `key` of `o`, trying this thread's hinted position first.
    #[inline]
    pub fn get<'v>(&self, o: &'v Object, key: &Str) -> Option<&'v Value> {
        let entries = o.iter().as_slice();
        let cell = self.0 as usize;
        HINTS.with(|table| {
            let slot = table.get(cell);
            if let Some(h) = slot
                && let Some((k, v)) = entries.get(h.get() as usize)
                && k == key
            {
                return Some(v);
            }
            let i = entries.iter().position(|(k, _)| k == key)?;
            if let Some(h) = slot {
                h.set(i as u32);
            }
            Some(&entries[i].1)
        })
    }
}

/// A parsed JSONPath.
#[derive(Clone, Debug)]
pub struct Path {
    text: Box<str>,
    root: Root,
    segments: Vec<Segment>,
    /// One per segment (used by member segments of definite paths).
    hints: Box<[Hint]>,
    function: Option<Function>,
    definite: bool,
    /// The variable a `$name` path reads, and the slot the plan gave it (`u16::MAX` until
    /// then).
    variable: Option<(Str, u16)>,
}

impl Path {
    /// Parses `text` (which starts with `$` or `$$`).
    pub fn parse(text: &str) -> Result<Path, SyntaxError> {
        parse::parse(text)
    }

    /// The text the path was written as.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn root(&self) -> Root {
        self.root
    }

    /// The workflow variable a `$name...` path starts from.
    pub fn variable(&self) -> Option<&str> {
        self.variable.as_ref().map(|(n, _)| n.as_str())
    }

    /// The slot of the variable a `$name` path reads (`u16::MAX`: none).
    pub fn variable_slot(&self) -> Option<u16> {
        self.variable.as_ref().map(|(_, s)| *s)
    }

    pub fn set_variable_slot(&mut self, slot: u16) {
        if let Some((_, s)) = &mut self.variable {
            *s = slot;
        }
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the path selects at most one node (names and single indexes only).
    pub fn is_definite(&self) -> bool {
        self.definite
    }

    /// Whether this is `$` (or `$$`) alone.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty() && self.function.is_none()
    }

    /// Whether the path may be used as a reference path (`ResultPath`): `$` followed by
    /// names and indexes only.
    pub fn is_reference(&self) -> bool {
        self.root == Root::Data && self.definite && self.function.is_none()
    }

    /// The member names of a path made only of names (`$.a.b` -> `["a", "b"]`), for the
    /// executor's fast accessors.
    pub fn member_chain(&self) -> Option<Vec<Str>> {
        if self.function.is_some() {
            return None;
        }
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Member(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// A path made of the given segments (used to split `$$.Map.Item.Value.a` into a known
    /// context field and the rest, `$.a`, read from that field).
    pub fn from_segments(text: &str, root: Root, segments: Vec<Segment>) -> Path {
        Path::build(text, root, segments, None)
    }

    pub(crate) fn build(
        text: &str,
        root: Root,
        segments: Vec<Segment>,
        function: Option<Function>,
    ) -> Path {
        let definite = segments.iter().all(Segment::is_definite);
        Path {
            text: text.into(),
            root,
            hints: segments.iter().map(|_| Hint::default()).collect(),
            segments,
            function,
            definite,
            variable: None,
        }
    }

    pub(crate) fn with_variable(mut self, name: &str) -> Path {
        self.variable = Some((Str::new(name), u16::MAX));
        self
    }

    pub(crate) fn hints(&self) -> &[Hint] {
        &self.hints
    }

    /// The function applied at the end of the path, if any.
    pub fn function(&self) -> Option<Function> {
        self.function
    }

    /// Reads the path from `root`.
    #[inline]
    pub fn select<'v>(&self, root: &'v Value) -> Result<Selected<'v>, PathError> {
        eval::select(self, root)
    }

    /// Writes `value` at this reference path inside `root`, creating missing objects.
    pub fn set(&self, root: &mut Value, value: Value) -> Result<(), SetError> {
        eval::set(self, root, value)
    }

    /// Jayway's normalized form (`$['a'][0][*]`), used in its error messages.
    pub fn normalized(&self) -> String {
        let mut s = String::from("$");
        for seg in &self.segments {
            write_segment(&mut s, seg);
        }
        s
    }
}

fn write_segment(s: &mut String, seg: &Segment) {
    use std::fmt::Write;
    match seg {
        Segment::Member(m) => {
            let _ = write!(s, "['{m}']");
        }
        Segment::Members(ms) => {
            let list: Vec<String> = ms.iter().map(|m| format!("'{m}'")).collect();
            let _ = write!(s, "[{}]", list.join(","));
        }
        Segment::Index(i) => {
            let _ = write!(s, "[{i}]");
        }
        Segment::Indexes(is) => {
            let list: Vec<String> = is.iter().map(|i| i.to_string()).collect();
            let _ = write!(s, "[{}]", list.join(","));
        }
        Segment::Slice(a, b) => {
            let a = a.map(|v| v.to_string()).unwrap_or_default();
            let b = b.map(|v| v.to_string()).unwrap_or_default();
            let _ = write!(s, "[{a}:{b}]");
        }
        Segment::Wildcard => s.push_str("[*]"),
        Segment::Descendants(inner) => {
            s.push_str("..");
            write_segment(s, inner);
        }
        Segment::Filter(_) => s.push_str("[?]"),
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
