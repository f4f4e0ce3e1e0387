//! `Plan`: a validated definition compiled into flat, index-addressed data for the executor.
//!
//! States live in one array (nested Parallel branches and Map processors included) and refer
//! to each other by `StateId`; paths are `Accessor`s; payload templates keep their static
//! parts as ready-made values; Choice rules hold typed operands (timestamps parsed, patterns
//! split); retry tables hold milliseconds; JSONata expressions are compiled programs whose
//! `$name` reads are slot numbers; workflow variables are slots numbered once per plan. The
//! executor never looks up a state or a variable by name, nor parses a path or an
//! expression. A plan is immutable and shared (`Arc`) by every shard.

mod access;
pub(crate) mod compile;

pub use access::{Accessor, ContextField, ContextSource};
pub use compile::compile;

use crate::asl::{Comparison, MachineType};
use crate::intrinsics::Call;
use crate::json::{Number, Str, Value};
use crate::jsonpath::Path;
use crate::time::Timestamp;

/// Index of a state in `Plan::states`.
pub type StateId = u32;

/// "No next state": the state ends its machine.
pub const END: StateId = u32::MAX;

/// A compiled state machine.
#[derive(Debug)]
pub struct Plan {
    /// The state machine's name (`$$.StateMachine.Name`).
    pub name: Str,
    pub machine_type: MachineType,
    pub states: Box<[StatePlan]>,
    /// Start state of each machine: `[0]` is the top level, then branches and processors.
    pub machines: Box<[StateId]>,
    /// The execution time limit (top-level `TimeoutSeconds`, at most 5 minutes for Express).
    pub timeout_ms: Option<u64>,
    /// Whether any path reads `$$.Execution.Input` (or the whole context object), so the
    /// executor must keep the original input.
    pub needs_execution_input: bool,
    /// The workflow variables, by slot: the names every `Assign` of the definition writes.
    pub variables: Box<[Str]>,
}

/// The slot of `$states` in JSONata expressions (variables use `0..variables.len()`).
pub const STATES_SLOT: u32 = u32::MAX;

impl Plan {
    #[inline]
    pub fn state(&self, id: StateId) -> &StatePlan {
        &self.states[id as usize]
    }

    /// The distinct Task resources, for binding checks before anything runs.
    pub fn resources(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .states
            .iter()
            .filter_map(|s| match &s.op {
                StateOp::Task(t) => Some(t.resource.as_str()),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[derive(Debug)]
pub struct StatePlan {
    pub name: Str,
    /// The state's query language is JSONata: `Output` and `$states` instead of the five
    /// JSONPath fields.
    pub jsonata: bool,
    pub input_path: PathOp,
    pub output_path: PathOp,
    /// `Assign` (for a Choice state: used when the Default is taken).
    pub assign: Option<AssignOp>,
    /// `Output` (for a Choice state: used when the Default is taken).
    pub output: Option<Box<TemplateOp>>,
    pub op: StateOp,
    /// The next state, or `END`.
    pub next: StateId,
}

/// An `Assign`: values for variable slots, all computed from the values before the state.
#[derive(Debug)]
pub struct AssignOp {
    pub slots: Box<[(u16, TemplateOp)]>,
}

/// A compiled JSONata expression with what error messages need.
#[derive(Debug)]
pub struct JsonataOp {
    /// The field it fills, as AWS names it in errors (`Output/result`, `Items`).
    pub field: Str,
    /// The expression text between `{%` and `%}`.
    pub text: Str,
    pub expr: crate::jsonata::Expression,
    /// The members of the context object it may read as `$states.context` (`context::*`
    /// bits; 0: none, so the context object is never built for it).
    pub context: u8,
    /// A plain read (`$states.input.a.b`, `$name.a`, `$states.context.Map.Item.Value`),
    /// done without the JSONata evaluator when the data allows.
    pub fast: Option<FastRead>,
    /// Comparisons of plain reads and literals joined by `and`, `or` and `$not`
    /// (`$states.input.v > $limit and $not($mode = 'dry')`), likewise.
    pub test: Option<Box<FastTest>>,
}

/// A boolean of `FastCompare`s, as JSONata evaluates it: `and` and `or` stop at the first
/// operand that decides them. Where a comparison it reaches cannot be done without the
/// evaluator, the evaluator does the whole expression.
#[derive(Debug)]
pub enum FastTest {
    Compare(FastCompare),
    And(Box<FastTest>, Box<FastTest>),
    Or(Box<FastTest>, Box<FastTest>),
    Not(Box<FastTest>),
}

/// `left op right` with each side a `FastRead` or a literal. Numbers and ASCII strings
/// compare as JSONata compares them, and `=`/`!=` also booleans and null; any other
/// pairing (an error or a deep comparison in JSONata) goes to the evaluator.
#[derive(Debug)]
pub struct FastCompare {
    pub left: CompareSide,
    pub op: CompareOp,
    pub right: CompareSide,
}

#[derive(Debug)]
pub enum CompareSide {
    Read(FastRead),
    Literal(Value),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A JSONata expression that is a path of plain names from `$states` or a variable. Read
/// directly through objects, it gives what JSONata gives; where the walk meets an array
/// (JSONata maps over it) or an integer beyond 2^53 (JSONata's doubles round it), the
/// evaluator runs instead.
#[derive(Debug)]
pub enum FastRead {
    Input(Box<[Member]>),
    Result(Box<[Member]>),
    ErrorOutput(Box<[Member]>),
    Context(ContextField),
    Variable(u16, Box<[Member]>),
}

/// One name of a `FastRead`, with the position its key had in the last object the shard
/// found it in (events share their shape, so the next lookup is one comparison).
#[derive(Debug)]
pub struct Member {
    pub key: Str,
    pub hint: crate::jsonpath::Hint,
}

/// Members of the context object a JSONata expression may read.
pub mod context {
    pub const EXECUTION: u8 = 1;
    pub const STATE_MACHINE: u8 = 2;
    pub const STATE: u8 = 4;
    pub const MAP: u8 = 8;
    pub const TASK: u8 = 16;
    pub const ALL: u8 = 31;
}

/// `InputPath` / `OutputPath` / `ItemsPath`.
#[derive(Debug)]
pub enum PathOp {
    /// `$` (or absent): the document itself.
    Identity,
    /// `null`: an empty object.
    Empty,
    Select(Box<Accessor>),
}

/// `ResultPath`.
#[derive(Debug)]
pub enum ResultPathOp {
    /// `$` (or absent): the result replaces the input.
    Replace,
    /// `null`: the result is discarded.
    Discard,
    /// A reference path into the input.
    Set(Path),
}

/// A compiled payload template.
#[derive(Debug)]
pub enum TemplateOp {
    /// A value with nothing dynamic inside; `len` is its encoded length.
    Static(Value, u64),
    Object {
        fields: Box<[(Str, TemplateOp)]>,
        /// Whether two fields write the same key (`"a"` and `"a.$"`): then later wins.
        duplicate_keys: bool,
    },
    Array(Box<[TemplateOp]>),
    /// `"key.$": "$.path"`; `key` is kept for error messages.
    Select {
        key: Str,
        accessor: Accessor,
    },
    /// `"key.$": "States.Fn(...)"`.
    Call {
        key: Str,
        call: Box<Call>,
    },
    /// `"{% expression %}"` (JSONata states).
    Jsonata(Box<JsonataOp>),
}

#[derive(Debug)]
pub enum StateOp {
    Pass(Box<PassOp>),
    Task(Box<TaskOp>),
    Choice(Box<ChoiceOp>),
    Wait(Box<WaitOp>),
    Succeed,
    Fail(Box<FailOp>),
    Parallel(Box<ParallelOp>),
    Map(Box<MapOp>),
}

#[derive(Debug)]
pub struct PassOp {
    pub parameters: Option<TemplateOp>,
    /// `Result`, with its encoded length.
    pub result: Option<(Value, u64)>,
    pub result_path: ResultPathOp,
}

/// A value given directly or read from the input (`TimeoutSeconds`/`TimeoutSecondsPath`).
#[derive(Debug)]
pub enum DynamicOp<T> {
    Fixed(T),
    Path(Accessor),
    Expr(Box<JsonataOp>),
}

#[derive(Debug)]
pub struct TaskOp {
    pub resource: Str,
    pub parameters: Option<TemplateOp>,
    pub result_selector: Option<TemplateOp>,
    pub result_path: ResultPathOp,
    pub retry: Box<[RetrierOp]>,
    pub catch: Box<[CatcherOp]>,
    pub timeout: Option<DynamicOp<u64>>,
    pub heartbeat: Option<DynamicOp<u64>>,
    pub credentials: Option<TemplateOp>,
}

/// Which errors a retrier or catcher handles.
#[derive(Debug)]
pub struct ErrorMatch {
    pub names: Box<[Str]>,
    /// `States.ALL` is listed.
    pub all: bool,
    /// `States.TaskFailed` is listed (matches every task error but `States.Timeout`).
    pub task_failed: bool,
}

#[derive(Debug)]
pub struct RetrierOp {
    pub errors: ErrorMatch,
    pub interval_ms: u64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_ms: Option<u64>,
    pub full_jitter: bool,
}

#[derive(Debug)]
pub struct CatcherOp {
    pub errors: ErrorMatch,
    pub next: StateId,
    pub result_path: ResultPathOp,
    pub assign: Option<AssignOp>,
    pub output: Option<TemplateOp>,
}

#[derive(Debug)]
pub struct ChoiceOp {
    pub rules: Box<[RuleOp]>,
    pub default: Option<StateId>,
}

/// A top-level choice rule: its condition, where it leads, and what it assigns and outputs
/// when it matches.
#[derive(Debug)]
pub struct RuleOp {
    pub condition: ConditionOp,
    pub next: StateId,
    pub assign: Option<AssignOp>,
    pub output: Option<TemplateOp>,
}

#[derive(Debug)]
pub enum ConditionOp {
    And(Box<[ConditionOp]>),
    Or(Box<[ConditionOp]>),
    Not(Box<ConditionOp>),
    Test {
        variable: Accessor,
        op: Comparison,
        operand: OperandOp,
    },
    /// A JSONata `Condition`: a literal boolean, or an expression that must give one.
    Jsonata(TemplateOp),
}

/// The right-hand side of a comparison, typed at compile time.
#[derive(Debug)]
pub enum OperandOp {
    Str(Str),
    Number(Number),
    Bool(bool),
    Timestamp(Timestamp),
    Pattern(Box<[PatternPiece]>),
    Path(Accessor),
}

/// A piece of a `StringMatches` pattern: literal text or a `*` wildcard.
#[derive(Debug, PartialEq, Eq)]
pub enum PatternPiece {
    Text(String),
    Star,
}

#[derive(Debug)]
pub enum WaitOp {
    Seconds(u64),
    SecondsPath(Accessor),
    Until(i64),
    TimestampPath(Accessor),
    SecondsExpr(Box<JsonataOp>),
    TimestampExpr(Box<JsonataOp>),
}

/// `Error`/`ErrorPath`, `Cause`/`CausePath`.
#[derive(Debug)]
pub enum TextOp {
    Fixed(Str),
    Select(Accessor),
    Call(Box<Call>),
    Expr(Box<JsonataOp>),
}

#[derive(Debug)]
pub struct FailOp {
    pub error: Option<TextOp>,
    pub cause: Option<TextOp>,
}

#[derive(Debug)]
pub struct ParallelOp {
    /// Machine index of each branch.
    pub branches: Box<[u32]>,
    pub parameters: Option<TemplateOp>,
    pub result_selector: Option<TemplateOp>,
    pub result_path: ResultPathOp,
    pub retry: Box<[RetrierOp]>,
    pub catch: Box<[CatcherOp]>,
}

#[derive(Debug)]
pub struct MapOp {
    /// Machine index of the item processor.
    pub processor: u32,
    pub distributed: bool,
    pub items_path: PathOp,
    /// `Items` (JSONata).
    pub items: Option<TemplateOp>,
    pub item_selector: Option<TemplateOp>,
    /// `MaxConcurrency` (0 = no limit).
    pub max_concurrency: Option<DynamicOp<u64>>,
    pub tolerated_failure_percentage: Option<DynamicOp<f64>>,
    pub tolerated_failure_count: Option<DynamicOp<u64>>,
    pub item_reader: Option<Value>,
    pub item_batcher: Option<Box<ItemBatcherOp>>,
    pub result_writer: Option<Value>,
    pub result_selector: Option<TemplateOp>,
    pub result_path: ResultPathOp,
    pub retry: Box<[RetrierOp]>,
    pub catch: Box<[CatcherOp]>,
}

/// `ItemBatcher`: how many items and bytes a batch may hold, and what it carries besides.
#[derive(Debug)]
pub struct ItemBatcherOp {
    /// `MaxItemsPerBatch` / `MaxItemsPerBatchPath`.
    pub max_items: BatchLimitOp,
    /// `MaxInputBytesPerBatch` / `MaxInputBytesPerBatchPath`.
    pub max_bytes: BatchLimitOp,
    /// `BatchInput`, added to every batch as written.
    pub batch_input: Option<Value>,
}

/// One limit of an `ItemBatcher`. Validation does not look inside `ItemBatcher`, so a limit
/// that cannot be used is kept as the error the Map state fails with when it runs.
#[derive(Debug)]
pub enum BatchLimitOp {
    /// Neither field: no limit of its own.
    Unset,
    Fixed(u64),
    /// The `...Path` field (named for errors), read from the Map state's effective input.
    Path {
        field: &'static str,
        path: Path,
    },
    Invalid(Str),
}
