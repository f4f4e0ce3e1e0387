//! `Definition`: the Amazon States Language document as typed data, every state type and
//! field of both query languages (JSONPath and JSONata) and workflow variables (`Assign`).
//! Paths, templates, intrinsic calls and JSONata expressions are already parsed here, so
//! validation and compilation never look at their syntax again.

use crate::intrinsics::Call;
use crate::json::{Str, Value};
use crate::jsonpath::Path;

/// A whole state machine document.
#[derive(Clone, Debug)]
pub struct Definition {
    pub comment: Option<String>,
    pub version: Option<String>,
    /// Top-level `TimeoutSeconds`: the execution's time limit.
    pub timeout_seconds: Option<u64>,
    pub query_language: QueryLanguage,
    pub machine: Machine,
}

/// `StartAt` + `States`: the top level, a Parallel branch or a Map's item processor.
#[derive(Clone, Debug)]
pub struct Machine {
    pub start_at: String,
    pub states: Vec<State>,
    /// JSON-pointer-like location of this machine's `States` object (`/States`,
    /// `/States/Fan/Branches[0]/States`), for diagnostics.
    pub location: String,
}

impl Machine {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.states.iter().position(|s| s.name == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryLanguage {
    JsonPath,
    Jsonata,
}

/// The state machine type, which decides a few validation rules and the time limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineType {
    Standard,
    Express,
}

/// One state.
#[derive(Clone, Debug)]
pub struct State {
    pub name: String,
    pub comment: Option<String>,
    pub kind: Kind,
    /// The state's own `QueryLanguage`, or the definition's.
    pub query_language: QueryLanguage,
    /// `Assign`: an object of variable names. In a JSONPath state its `.$` fields are paths
    /// or intrinsic calls; in a JSONata state its strings may be `{% %}` expressions.
    pub assign: Option<Template>,
    /// `Output` (JSONata states): what the state passes on.
    pub output: Option<Template>,
    /// `InputPath` (absent means `$`).
    pub input_path: PathField,
    /// `OutputPath` (absent means `$`).
    pub output_path: PathField,
    pub transition: Transition,
    /// Location of the state (`/States/Name`).
    pub location: String,
}

/// An `InputPath` / `OutputPath` / `ItemsPath` value.
#[derive(Clone, Debug)]
pub enum PathField {
    /// Not given: the whole document (`$`).
    Default,
    /// `null`: an empty object.
    Null,
    Path(Path),
}

/// A `ResultPath` value.
#[derive(Clone, Debug)]
pub enum ResultPath {
    /// Not given: the result replaces the input (`$`).
    Default,
    /// `null`: the result is discarded and the input passes through.
    Discard,
    Path(Path),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    Next(String),
    End,
    /// Choice, Succeed and Fail have no `Next`/`End`.
    None,
}

/// A payload template (`Parameters`, `ResultSelector`, `ItemSelector`, `Credentials`).
#[derive(Clone, Debug)]
pub enum Template {
    /// A value with no `.$` field anywhere inside.
    Static(Value),
    /// An object with at least one dynamic field somewhere inside.
    Object(Vec<(Str, Template)>),
    Array(Vec<Template>),
    /// `"key.$": "$.path"` (the key stored without `.$`).
    Path(Path),
    /// `"key.$": "States.Fn(...)"`.
    Call(Box<Call>),
    /// `"{% expression %}"` in a JSONata state.
    Jsonata(Box<JsonataExpr>),
}

/// A JSONata expression as written between `{%` and `%}` (trimmed), already checked to
/// compile; the plan compiles it again with its variables resolved to slots.
#[derive(Clone, Debug)]
pub struct JsonataExpr {
    pub text: Str,
}

/// A value given directly, through a path (`Seconds`/`SecondsPath`, ...) or, in a JSONata
/// state, by an expression.
#[derive(Clone, Debug)]
pub enum Dynamic<T> {
    Fixed(T),
    Path(Path),
    Expr(Box<JsonataExpr>),
}

/// A string given directly or computed (`Error`/`ErrorPath`, `Cause`/`CausePath`).
#[derive(Clone, Debug)]
pub enum TextSource {
    Fixed(String),
    Path(Path),
    Call(Box<Call>),
    Expr(Box<JsonataExpr>),
}

#[derive(Clone, Debug)]
pub enum Kind {
    Pass(Box<Pass>),
    Task(Box<Task>),
    Choice(Box<Choice>),
    Wait(Box<Wait>),
    Succeed,
    Fail(Box<Fail>),
    Parallel(Box<Parallel>),
    Map(Box<Map>),
}

impl Kind {
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Pass(_) => "Pass",
            Kind::Task(_) => "Task",
            Kind::Choice(_) => "Choice",
            Kind::Wait(_) => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail(_) => "Fail",
            Kind::Parallel(_) => "Parallel",
            Kind::Map(_) => "Map",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Pass {
    /// `Parameters` (JSONPath).
    pub parameters: Option<Template>,
    pub result: Option<Value>,
    pub result_path: ResultPath,
}

#[derive(Clone, Debug)]
pub struct Task {
    pub resource: String,
    /// `Parameters`, or `Arguments` in a JSONata state.
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub timeout: Option<Dynamic<u64>>,
    pub heartbeat: Option<Dynamic<u64>>,
    pub credentials: Option<Template>,
}

#[derive(Clone, Debug)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u64,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
    pub jitter: Jitter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    None,
    Full,
}

#[derive(Clone, Debug)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: ResultPath,
    pub assign: Option<Template>,
    /// `Output` (JSONata): what the catcher passes on instead of the error output.
    pub output: Option<Template>,
}

#[derive(Clone, Debug)]
pub struct Choice {
    pub choices: Vec<ChoiceRule>,
    pub default: Option<String>,
}

/// A top-level rule of `Choices`: a condition and where it leads.
#[derive(Clone, Debug)]
pub struct ChoiceRule {
    pub condition: Condition,
    pub next: String,
    /// `Assign` and `Output` of the rule, used when it matches (the state's own are used
    /// when the Default is taken).
    pub assign: Option<Template>,
    pub output: Option<Template>,
}

#[derive(Clone, Debug)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Compare {
        variable: Path,
        op: Comparison,
        operand: Operand,
    },
    /// `Condition` (JSONata): `true`/`false` or an expression that must give a boolean.
    Jsonata(Template),
}

/// The right-hand side of a comparison: a literal, or a path for the `...Path` operators.
#[derive(Clone, Debug)]
pub enum Operand {
    Value(Value),
    Path(Path),
}

/// A Choice comparison operator (the `...Path` variants share one with `Operand::Path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

impl Comparison {
    /// Every operator with its name, and whether a `...Path` form exists.
    pub const ALL: &'static [(&'static str, Comparison, bool)] = &[
        ("StringEquals", Comparison::StringEquals, true),
        ("StringLessThan", Comparison::StringLessThan, true),
        ("StringGreaterThan", Comparison::StringGreaterThan, true),
        (
            "StringLessThanEquals",
            Comparison::StringLessThanEquals,
            true,
        ),
        (
            "StringGreaterThanEquals",
            Comparison::StringGreaterThanEquals,
            true,
        ),
        ("StringMatches", Comparison::StringMatches, false),
        ("NumericEquals", Comparison::NumericEquals, true),
        ("NumericLessThan", Comparison::NumericLessThan, true),
        ("NumericGreaterThan", Comparison::NumericGreaterThan, true),
        (
            "NumericLessThanEquals",
            Comparison::NumericLessThanEquals,
            true,
        ),
        (
            "NumericGreaterThanEquals",
            Comparison::NumericGreaterThanEquals,
            true,
        ),
        ("BooleanEquals", Comparison::BooleanEquals, true),
        ("TimestampEquals", Comparison::TimestampEquals, true),
        ("TimestampLessThan", Comparison::TimestampLessThan, true),
        (
            "TimestampGreaterThan",
            Comparison::TimestampGreaterThan,
            true,
        ),
        (
            "TimestampLessThanEquals",
            Comparison::TimestampLessThanEquals,
            true,
        ),
        (
            "TimestampGreaterThanEquals",
            Comparison::TimestampGreaterThanEquals,
            true,
        ),
        ("IsNull", Comparison::IsNull, false),
        ("IsPresent", Comparison::IsPresent, false),
        ("IsNumeric", Comparison::IsNumeric, false),
        ("IsString", Comparison::IsString, false),
        ("IsBoolean", Comparison::IsBoolean, false),
        ("IsTimestamp", Comparison::IsTimestamp, false),
    ];
}

#[derive(Clone, Debug)]
pub enum WaitFor {
    Seconds(u64),
    SecondsPath(Path),
    /// An RFC 3339 timestamp, as milliseconds since the Unix epoch.
    Timestamp(i64),
    TimestampPath(Path),
    SecondsExpr(Box<JsonataExpr>),
    TimestampExpr(Box<JsonataExpr>),
}

#[derive(Clone, Debug)]
pub struct Wait {
    pub wait: WaitFor,
}

#[derive(Clone, Debug)]
pub struct Fail {
    pub error: Option<TextSource>,
    pub cause: Option<TextSource>,
}

#[derive(Clone, Debug)]
pub struct Parallel {
    pub branches: Vec<Machine>,
    /// `Parameters`, or `Arguments` in a JSONata state.
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessorMode {
    Inline,
    Distributed,
}

#[derive(Clone, Debug)]
pub struct Map {
    pub processor: Machine,
    pub mode: ProcessorMode,
    /// Written with the legacy `Iterator` field rather than `ItemProcessor`.
    pub legacy_iterator: bool,
    pub items_path: PathField,
    /// `Items` (JSONata): an array, or an expression giving one.
    pub items: Option<Template>,
    /// `ItemSelector`, or the legacy `Parameters`.
    pub item_selector: Option<Template>,
    pub item_reader: Option<Value>,
    pub item_batcher: Option<Value>,
    pub result_writer: Option<Value>,
    pub max_concurrency: Option<Dynamic<u64>>,
    pub tolerated_failure_percentage: Option<Dynamic<f64>>,
    pub tolerated_failure_count: Option<Dynamic<u64>>,
    pub label: Option<String>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}
