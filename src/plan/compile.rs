//! `Validated` to `Plan`. Cannot fail: everything that could go wrong was reported by
//! validation.

use std::collections::HashMap;

use super::*;
use crate::asl::{
    self, Catcher, Condition, Definition, Dynamic, Jitter, Kind, Machine, Operand, PathField,
    ResultPath, Retrier, Template, TextSource, Transition, Validated, WaitFor,
};
use crate::json::encoded_len;

/// Express executions run for at most five minutes.
pub const EXPRESS_MAX_MS: u64 = 5 * 60 * 1000;

/// Compiles a validated definition; `name` is the state machine's name.
pub fn compile(validated: &Validated, name: &str) -> Plan {
    let def: &Definition = validated.definition();
    let mut c = Compiler {
        states: Vec::new(),
        machines: Vec::new(),
        needs_execution_input: false,
    };
    c.machine(&def.machine);
    let timeout_ms = match (validated.machine_type(), def.timeout_seconds) {
        (MachineType::Express, t) => Some(
            t.map_or(EXPRESS_MAX_MS, |s| s.saturating_mul(1000))
                .min(EXPRESS_MAX_MS),
        ),
        (MachineType::Standard, t) => t.map(|s| s.saturating_mul(1000)),
    };
    Plan {
        name: Str::new(name),
        machine_type: validated.machine_type(),
        states: c
            .states
            .into_iter()
            .map(|s| s.expect("every state compiled"))
            .collect(),
        machines: c.machines.into_boxed_slice(),
        timeout_ms,
        needs_execution_input: c.needs_execution_input,
    }
}

struct Compiler {
    states: Vec<Option<StatePlan>>,
    machines: Vec<StateId>,
    needs_execution_input: bool,
}

impl Compiler {
    /// Compiles a machine and returns its index in `machines`.
    fn machine(&mut self, m: &Machine) -> u32 {
        let index = self.machines.len() as u32;
        self.machines.push(END);
        // Reserve ids first so that transitions can name states compiled later.
        let base = self.states.len() as StateId;
        self.states.extend((0..m.states.len()).map(|_| None));
        let ids: HashMap<&str, StateId> = m
            .states
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), base + i as StateId))
            .collect();
        self.machines[index as usize] = ids[m.start_at.as_str()];
        for (i, s) in m.states.iter().enumerate() {
            let plan = self.state(s, &ids);
            self.states[base as usize + i] = Some(plan);
        }
        index
    }

    fn accessor(&mut self, p: &Path) -> Accessor {
        let a = Accessor::new(p.clone());
        if a.context_field()
            .is_some_and(ContextField::needs_execution_input)
        {
            self.needs_execution_input = true;
        }
        a
    }

    fn call(&mut self, c: &Call) -> Box<Call> {
        for p in c.paths() {
            self.accessor(p);
        }
        Box::new(c.clone())
    }

    fn path_op(&mut self, f: &PathField) -> PathOp {
        match f {
            PathField::Default => PathOp::Identity,
            PathField::Null => PathOp::Empty,
            PathField::Path(p) if p.is_root() && p.root() == crate::jsonpath::Root::Data => {
                PathOp::Identity
            }
            PathField::Path(p) => PathOp::Select(Box::new(self.accessor(p))),
        }
    }

    fn result_path(&mut self, r: &ResultPath) -> ResultPathOp {
        match r {
            ResultPath::Default => ResultPathOp::Replace,
            ResultPath::Discard => ResultPathOp::Discard,
            ResultPath::Path(p) if p.is_root() => ResultPathOp::Replace,
            ResultPath::Path(p) => ResultPathOp::Set(p.clone()),
        }
    }

    fn template(&mut self, t: &Template) -> TemplateOp {
        self.template_field(t, "")
    }

    fn template_field(&mut self, t: &Template, key: &str) -> TemplateOp {
        match t {
            Template::Static(v) => TemplateOp::Static(v.clone(), encoded_len(v) as u64),
            Template::Object(fields) => {
                let mut seen = std::collections::HashSet::new();
                let duplicate_keys = !fields.iter().all(|(k, _)| seen.insert(k.as_str()));
                TemplateOp::Object {
                    fields: fields
                        .iter()
                        .map(|(k, v)| (k.clone(), self.template_field(v, k)))
                        .collect(),
                    duplicate_keys,
                }
            }
            Template::Array(items) => {
                TemplateOp::Array(items.iter().map(|i| self.template_field(i, key)).collect())
            }
            Template::Path(p) => TemplateOp::Select {
                key: Str::from(format!("{key}.$")),
                accessor: self.accessor(p),
            },
            Template::Call(c) => TemplateOp::Call {
                key: Str::from(format!("{key}.$")),
                call: self.call(c),
            },
        }
    }

    fn errors(names: &[String]) -> ErrorMatch {
        ErrorMatch {
            all: names.iter().any(|n| n == "States.ALL"),
            task_failed: names.iter().any(|n| n == "States.TaskFailed"),
            names: names.iter().map(|n| Str::new(n)).collect(),
        }
    }

    fn retriers(rs: &[Retrier]) -> Box<[RetrierOp]> {
        rs.iter()
            .map(|r| RetrierOp {
                errors: Self::errors(&r.error_equals),
                interval_ms: r.interval_seconds.saturating_mul(1000),
                max_attempts: r.max_attempts.min(u32::MAX as u64) as u32,
                backoff_rate: r.backoff_rate,
                max_delay_ms: r.max_delay_seconds.map(|s| s.saturating_mul(1000)),
                full_jitter: r.jitter == Jitter::Full,
            })
            .collect()
    }

    fn catchers(&mut self, cs: &[Catcher], ids: &HashMap<&str, StateId>) -> Box<[CatcherOp]> {
        cs.iter()
            .map(|c| CatcherOp {
                errors: Self::errors(&c.error_equals),
                next: ids[c.next.as_str()],
                result_path: self.result_path(&c.result_path),
            })
            .collect()
    }

    fn dynamic<T: Copy>(&mut self, d: &Dynamic<T>) -> DynamicOp<T> {
        match d {
            Dynamic::Fixed(v) => DynamicOp::Fixed(*v),
            Dynamic::Path(p) => DynamicOp::Path(self.accessor(p)),
        }
    }

    fn text(&mut self, t: &TextSource) -> TextOp {
        match t {
            TextSource::Fixed(s) => TextOp::Fixed(Str::new(s)),
            TextSource::Path(p) => TextOp::Select(self.accessor(p)),
            TextSource::Call(c) => TextOp::Call(self.call(c)),
        }
    }

    fn condition(&mut self, c: &Condition) -> ConditionOp {
        match c {
            Condition::And(cs) => ConditionOp::And(cs.iter().map(|c| self.condition(c)).collect()),
            Condition::Or(cs) => ConditionOp::Or(cs.iter().map(|c| self.condition(c)).collect()),
            Condition::Not(c) => ConditionOp::Not(Box::new(self.condition(c))),
            Condition::Compare {
                variable,
                op,
                operand,
            } => {
                let operand = match operand {
                    Operand::Path(p) => OperandOp::Path(self.accessor(p)),
                    Operand::Value(v) => literal_operand(*op, v),
                };
                ConditionOp::Test {
                    variable: self.accessor(variable),
                    op: *op,
                    operand,
                }
            }
        }
    }

    fn state(&mut self, s: &asl::State, ids: &HashMap<&str, StateId>) -> StatePlan {
        let next = match &s.transition {
            Transition::Next(n) => ids[n.as_str()],
            Transition::End | Transition::None => END,
        };
        let op = match &s.kind {
            Kind::Pass(p) => StateOp::Pass(Box::new(PassOp {
                parameters: p.parameters.as_ref().map(|t| self.template(t)),
                result: p
                    .result
                    .as_ref()
                    .map(|v| (v.clone(), encoded_len(v) as u64)),
                result_path: self.result_path(&p.result_path),
            })),
            Kind::Task(t) => StateOp::Task(Box::new(TaskOp {
                resource: Str::new(&t.resource),
                parameters: t.parameters.as_ref().map(|t| self.template(t)),
                result_selector: t.result_selector.as_ref().map(|t| self.template(t)),
                result_path: self.result_path(&t.result_path),
                retry: Self::retriers(&t.retry),
                catch: self.catchers(&t.catch, ids),
                timeout: t.timeout.as_ref().map(|d| self.dynamic(d)),
                heartbeat: t.heartbeat.as_ref().map(|d| self.dynamic(d)),
                credentials: t.credentials.as_ref().map(|t| self.template(t)),
            })),
            Kind::Choice(c) => StateOp::Choice(Box::new(ChoiceOp {
                rules: c
                    .choices
                    .iter()
                    .map(|r| (self.condition(&r.condition), ids[r.next.as_str()]))
                    .collect(),
                default: c.default.as_ref().map(|d| ids[d.as_str()]),
            })),
            Kind::Wait(w) => StateOp::Wait(Box::new(match &w.wait {
                WaitFor::Seconds(s) => WaitOp::Seconds(*s),
                WaitFor::SecondsPath(p) => WaitOp::SecondsPath(self.accessor(p)),
                WaitFor::Timestamp(ms) => WaitOp::Until(*ms),
                WaitFor::TimestampPath(p) => WaitOp::TimestampPath(self.accessor(p)),
            })),
            Kind::Succeed => StateOp::Succeed,
            Kind::Fail(f) => StateOp::Fail(Box::new(FailOp {
                error: f.error.as_ref().map(|t| self.text(t)),
                cause: f.cause.as_ref().map(|t| self.text(t)),
            })),
            Kind::Parallel(p) => {
                let branches = p.branches.iter().map(|b| self.machine(b)).collect();
                StateOp::Parallel(Box::new(ParallelOp {
                    branches,
                    parameters: p.parameters.as_ref().map(|t| self.template(t)),
                    result_selector: p.result_selector.as_ref().map(|t| self.template(t)),
                    result_path: self.result_path(&p.result_path),
                    retry: Self::retriers(&p.retry),
                    catch: self.catchers(&p.catch, ids),
                }))
            }
            Kind::Map(m) => {
                let processor = self.machine(&m.processor);
                StateOp::Map(Box::new(MapOp {
                    processor,
                    distributed: m.mode == asl::ProcessorMode::Distributed,
                    items_path: self.path_op(&m.items_path),
                    item_selector: m.item_selector.as_ref().map(|t| self.template(t)),
                    max_concurrency: m.max_concurrency.as_ref().map(|d| self.dynamic(d)),
                    tolerated_failure_percentage: m
                        .tolerated_failure_percentage
                        .as_ref()
                        .map(|d| self.dynamic(d)),
                    tolerated_failure_count: m
                        .tolerated_failure_count
                        .as_ref()
                        .map(|d| self.dynamic(d)),
                    item_reader: m.item_reader.clone(),
                    item_batcher: m.item_batcher.clone(),
                    result_writer: m.result_writer.clone(),
                    result_selector: m.result_selector.as_ref().map(|t| self.template(t)),
                    result_path: self.result_path(&m.result_path),
                    retry: Self::retriers(&m.retry),
                    catch: self.catchers(&m.catch, ids),
                }))
            }
        };
        StatePlan {
            name: Str::new(&s.name),
            input_path: self.path_op(&s.input_path),
            output_path: self.path_op(&s.output_path),
            op,
            next,
        }
    }
}

fn literal_operand(op: Comparison, v: &Value) -> OperandOp {
    use Comparison::*;
    match (op, v) {
        (StringMatches, Value::String(s)) => OperandOp::Pattern(pattern(s)),
        (
            TimestampEquals
            | TimestampLessThan
            | TimestampGreaterThan
            | TimestampLessThanEquals
            | TimestampGreaterThanEquals,
            Value::String(s),
        ) => match crate::time::Timestamp::parse_rfc3339(s) {
            Some(t) => OperandOp::Timestamp(t),
            None => OperandOp::Str(s.clone()),
        },
        (_, Value::String(s)) => OperandOp::Str(s.clone()),
        (_, Value::Number(n)) => OperandOp::Number(*n),
        (_, Value::Bool(b)) => OperandOp::Bool(*b),
        _ => OperandOp::Bool(false),
    }
}

/// Splits a `StringMatches` pattern: `*` matches any run of characters, `\*` is a literal
/// star and `\\` a literal backslash.
pub fn pattern(s: &str) -> Box<[PatternPiece]> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => text.push(n),
                None => text.push('\\'),
            },
            '*' => {
                if !text.is_empty() {
                    pieces.push(PatternPiece::Text(std::mem::take(&mut text)));
                }
                if pieces.last() != Some(&PatternPiece::Star) {
                    pieces.push(PatternPiece::Star);
                }
            }
            _ => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(PatternPiece::Text(text));
    }
    pieces.into_boxed_slice()
}
