//! `Validated` to `Plan`. Cannot fail: everything that could go wrong was reported by
//! validation.

use std::collections::HashMap;

use super::*;
use crate::asl::{
    self, Catcher, Condition, Definition, Dynamic, Jitter, JsonataExpr, Kind, Machine, Operand,
    PathField, QueryLanguage, ResultPath, Retrier, Template, TextSource, Transition, Validated,
    WaitFor,
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
        variables: Vec::new(),
        slots: HashMap::new(),
    };
    c.collect_variables(&def.machine);
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
        variables: c.variables.into_boxed_slice(),
    }
}

struct Compiler {
    states: Vec<Option<StatePlan>>,
    machines: Vec<StateId>,
    needs_execution_input: bool,
    /// Variable names by slot, and the slot of each name.
    variables: Vec<Str>,
    slots: HashMap<String, u16>,
}

/// The fields of an `Assign` template: variable names and their values.
fn assign_fields(t: &Template) -> Vec<(Str, Template)> {
    match t {
        Template::Static(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| (k.clone(), Template::Static(v.clone())))
            .collect(),
        Template::Object(fields) => fields.clone(),
        _ => Vec::new(),
    }
}

/// The members of the context object a JSONata expression may read through
/// `$states.context`: those it names, or all when it takes `$states` or `$states.context`
/// whole or names none. Over-counting only costs time; under-counting is what must not be.
fn context_parts(text: &str) -> u8 {
    if text
        .match_indices("$states")
        .any(|(i, m)| !text[i + m.len()..].starts_with('.'))
    {
        return context::ALL;
    }
    if !text.contains("context") {
        return 0;
    }
    let mut parts = 0;
    for (word, bit) in [
        ("Execution", context::EXECUTION),
        ("StateMachine", context::STATE_MACHINE),
        ("State", context::STATE),
        ("Map", context::MAP),
        ("Task", context::TASK),
    ] {
        if text.contains(word) {
            parts |= bit;
        }
    }
    if parts == 0 { context::ALL } else { parts }
}

/// The `FastRead` an expression is, if it is a path of plain names from `$states` or a
/// variable.
fn fast_read(text: &str, slots: &HashMap<String, u16>) -> Option<FastRead> {
    let plain = |n: &str| {
        let mut c = n.chars();
        matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
            && !matches!(
                n,
                "and" | "or" | "in" | "true" | "false" | "null" | "function"
            )
    };
    let mut parts = text.strip_prefix('$')?.split('.');
    let root = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    if !plain(root) || !rest.iter().all(|n| plain(n)) {
        return None;
    }
    let names = |r: &[&str]| {
        r.iter()
            .map(|n| Member {
                key: Str::new(n),
                hint: Default::default(),
            })
            .collect::<Box<[Member]>>()
    };
    if root != "states" {
        return slots
            .get(root)
            .map(|slot| FastRead::Variable(*slot, names(&rest)));
    }
    let (member, below) = rest.split_first()?;
    Some(match *member {
        "input" => FastRead::Input(names(below)),
        "result" => FastRead::Result(names(below)),
        "errorOutput" => FastRead::ErrorOutput(names(below)),
        "context" => {
            // Only a path that ends on a field the executor produces directly.
            let path = Path::parse(&format!("$${}", text.strip_prefix("$states.context")?)).ok()?;
            let a = Accessor::new(path);
            match a.context_field() {
                Some(f) if f != ContextField::Whole && a.is_field_only() => FastRead::Context(f),
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// The `FastTest` an expression is, if it is comparisons of plain reads and literals
/// joined by `and`, `or`, `$not` and parentheses.
fn fast_test(e: &crate::jsonata::Expression, slots: &HashMap<String, u16>) -> Option<FastTest> {
    use crate::jsonata::ast::{BinOp, Kind, Node};
    // Nothing applied to the node itself: no filter, grouping or `[]`.
    let bare = |n: &Node| {
        n.predicate.is_empty() && n.stages.is_empty() && n.group.is_none() && !n.keep_array
    };
    fn side(n: &Node, slots: &HashMap<String, u16>) -> Option<CompareSide> {
        let lit = match &n.kind {
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Num(x) => Value::Number(crate::json::Number::Float(*x)),
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Null => Value::Null,
            Kind::Variable(name, _) if !name.is_empty() => {
                return fast_read(&format!("${name}"), slots).map(CompareSide::Read);
            }
            Kind::Path {
                steps,
                simple: true,
                ..
            } => {
                let mut text = String::new();
                for (i, step) in steps.iter().enumerate() {
                    match (&step.kind, i) {
                        (Kind::Variable(name, _), 0) if !name.is_empty() => {
                            text.push('$');
                            text.push_str(name);
                        }
                        (Kind::Name(name), 1..) => {
                            text.push('.');
                            text.push_str(name);
                        }
                        _ => return None,
                    }
                }
                // `fast_read` takes only plain names, so the text means what the steps do.
                return fast_read(&text, slots).map(CompareSide::Read);
            }
            _ => return None,
        };
        Some(CompareSide::Literal(lit))
    }
    fn walk(
        n: &Node,
        slots: &HashMap<String, u16>,
        bare: &dyn Fn(&Node) -> bool,
    ) -> Option<FastTest> {
        if !bare(n) {
            return None;
        }
        match &n.kind {
            Kind::Block { exprs, .. } if exprs.len() == 1 => walk(&exprs[0], slots, bare),
            Kind::Binary { op, lhs, rhs } => {
                let both = || {
                    Some((
                        Box::new(walk(lhs, slots, bare)?),
                        Box::new(walk(rhs, slots, bare)?),
                    ))
                };
                let op = match op {
                    BinOp::And => return both().map(|(a, b)| FastTest::And(a, b)),
                    BinOp::Or => return both().map(|(a, b)| FastTest::Or(a, b)),
                    BinOp::Eq => CompareOp::Eq,
                    BinOp::Ne => CompareOp::Ne,
                    BinOp::Lt => CompareOp::Lt,
                    BinOp::Le => CompareOp::Le,
                    BinOp::Gt => CompareOp::Gt,
                    BinOp::Ge => CompareOp::Ge,
                    _ => return None,
                };
                if !bare(lhs) || !bare(rhs) {
                    return None;
                }
                Some(FastTest::Compare(FastCompare {
                    left: side(lhs, slots)?,
                    op,
                    right: side(rhs, slots)?,
                }))
            }
            // `$not` itself, not a workflow variable of that name.
            Kind::Function {
                procedure,
                args,
                partial: false,
                builtin: Some(bi),
            } if crate::jsonata::functions::builtin_index("not") == Some(*bi)
                && matches!(&procedure.kind, Kind::Variable(name, None) if name.as_str() == "not")
                && args.len() == 1 =>
            {
                Some(FastTest::Not(Box::new(walk(&args[0], slots, bare)?)))
            }
            _ => None,
        }
    }
    walk(e.root(), slots, &bare)
}

impl Compiler {
    /// Numbers every variable name that some `Assign` writes, in order of appearance.
    fn collect_variables(&mut self, m: &Machine) {
        for s in &m.states {
            let mut assigns: Vec<&Template> = s.assign.iter().collect();
            let catch: &[Catcher] = match &s.kind {
                Kind::Task(t) => &t.catch,
                Kind::Parallel(p) => &p.catch,
                Kind::Map(m) => &m.catch,
                _ => &[],
            };
            assigns.extend(catch.iter().filter_map(|c| c.assign.as_ref()));
            if let Kind::Choice(c) = &s.kind {
                assigns.extend(c.choices.iter().filter_map(|r| r.assign.as_ref()));
            }
            for t in assigns {
                for (name, _) in assign_fields(t) {
                    if !self.slots.contains_key(name.as_str())
                        && self.variables.len() < u16::MAX as usize
                    {
                        self.slots
                            .insert(name.to_string(), self.variables.len() as u16);
                        self.variables.push(name);
                    }
                }
            }
            match &s.kind {
                Kind::Parallel(p) => p.branches.iter().for_each(|b| self.collect_variables(b)),
                Kind::Map(m) => self.collect_variables(&m.processor),
                _ => {}
            }
        }
    }

    fn assign(&mut self, t: &Template) -> AssignOp {
        AssignOp {
            slots: assign_fields(t)
                .iter()
                .map(|(name, v)| {
                    let field = format!("Assign/{name}");
                    (self.slots[name.as_str()], self.tpl(v, name, &field))
                })
                .collect(),
        }
    }

    /// Compiles a JSONata expression with `$states` and the variables resolved to slots.
    fn jsonata(&mut self, e: &JsonataExpr, field: &str) -> Box<JsonataOp> {
        let slots = &self.slots;
        let resolve = |name: &str| -> Option<u32> {
            if name == "states" {
                Some(STATES_SLOT)
            } else {
                slots.get(name).map(|s| *s as u32)
            }
        };
        // Validation compiled the same text already; should it fail here anyway, the
        // expression reports that when it runs instead of the plan failing to build.
        let expr = crate::jsonata::compile_with(&e.text, &resolve).unwrap_or_else(|err| {
            let msg = format!("{err}").replace('\'', "");
            crate::jsonata::compile(&format!("$error('{msg}')")).expect("a literal call")
        });
        let context = context_parts(&e.text);
        let fast = fast_read(&e.text, &self.slots);
        let test = fast_test(&expr, &self.slots).map(Box::new);
        self.needs_execution_input |= context & context::EXECUTION != 0;
        Box::new(JsonataOp {
            field: Str::new(field),
            text: e.text.clone(),
            expr,
            context,
            fast,
            test,
        })
    }

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

    fn resolve_path(&self, p: &mut Path) {
        if let Some(name) = p.variable() {
            let slot = self.slots.get(name).copied().unwrap_or(u16::MAX);
            p.set_variable_slot(slot);
        }
    }

    fn accessor(&mut self, p: &Path) -> Accessor {
        let mut p = p.clone();
        self.resolve_path(&mut p);
        let a = Accessor::new(p);
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
        let mut c = c.clone();
        for p in c.paths_mut() {
            self.resolve_path(p);
        }
        Box::new(c)
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

    /// A payload template; `field` names it in JSONata errors (`Arguments`, `Output`).
    fn template(&mut self, t: &Template, field: &str) -> TemplateOp {
        self.tpl(t, "", field)
    }

    /// `key` is the JSON key a JSONPath error names (`value.$`), `field` the path of keys a
    /// JSONata error names (`Output/result`).
    fn tpl(&mut self, t: &Template, key: &str, field: &str) -> TemplateOp {
        match t {
            Template::Static(v) => TemplateOp::Static(v.clone(), encoded_len(v) as u64),
            Template::Object(fields) => {
                let mut seen = std::collections::HashSet::new();
                let duplicate_keys = !fields.iter().all(|(k, _)| seen.insert(k.as_str()));
                TemplateOp::Object {
                    fields: fields
                        .iter()
                        .map(|(k, v)| {
                            let f = if field.is_empty() {
                                k.to_string()
                            } else {
                                format!("{field}/{k}")
                            };
                            (k.clone(), self.tpl(v, k, &f))
                        })
                        .collect(),
                    duplicate_keys,
                }
            }
            Template::Array(items) => TemplateOp::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.tpl(item, key, &format!("{field}[{i}]")))
                    .collect(),
            ),
            Template::Jsonata(e) => TemplateOp::Jsonata(self.jsonata(e, field)),
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
                assign: c.assign.as_ref().map(|t| self.assign(t)),
                output: c.output.as_ref().map(|t| self.template(t, "Output")),
            })
            .collect()
    }

    fn dynamic<T: Copy>(&mut self, d: &Dynamic<T>, field: &str) -> DynamicOp<T> {
        match d {
            Dynamic::Fixed(v) => DynamicOp::Fixed(*v),
            Dynamic::Path(p) => DynamicOp::Path(self.accessor(p)),
            Dynamic::Expr(e) => DynamicOp::Expr(self.jsonata(e, field)),
        }
    }

    fn text(&mut self, t: &TextSource, field: &str) -> TextOp {
        match t {
            TextSource::Fixed(s) => TextOp::Fixed(Str::new(s)),
            TextSource::Path(p) => TextOp::Select(self.accessor(p)),
            TextSource::Call(c) => TextOp::Call(self.call(c)),
            TextSource::Expr(e) => TextOp::Expr(self.jsonata(e, field)),
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
            Condition::Jsonata(t) => ConditionOp::Jsonata(self.template(t, "Condition")),
        }
    }

    fn state(&mut self, s: &asl::State, ids: &HashMap<&str, StateId>) -> StatePlan {
        let next = match &s.transition {
            Transition::Next(n) => ids[n.as_str()],
            Transition::End | Transition::None => END,
        };
        let jsonata = s.query_language == QueryLanguage::Jsonata;
        let args = if jsonata { "Arguments" } else { "Parameters" };
        let op = match &s.kind {
            Kind::Pass(p) => StateOp::Pass(Box::new(PassOp {
                parameters: p
                    .parameters
                    .as_ref()
                    .map(|t| self.template(t, "Parameters")),
                result: p
                    .result
                    .as_ref()
                    .map(|v| (v.clone(), encoded_len(v) as u64)),
                result_path: self.result_path(&p.result_path),
            })),
            Kind::Task(t) => StateOp::Task(Box::new(TaskOp {
                resource: Str::new(&t.resource),
                parameters: t.parameters.as_ref().map(|t| self.template(t, args)),
                result_selector: t
                    .result_selector
                    .as_ref()
                    .map(|t| self.template(t, "ResultSelector")),
                result_path: self.result_path(&t.result_path),
                retry: Self::retriers(&t.retry),
                catch: self.catchers(&t.catch, ids),
                timeout: t
                    .timeout
                    .as_ref()
                    .map(|d| self.dynamic(d, "TimeoutSeconds")),
                heartbeat: t
                    .heartbeat
                    .as_ref()
                    .map(|d| self.dynamic(d, "HeartbeatSeconds")),
                credentials: t
                    .credentials
                    .as_ref()
                    .map(|t| self.template(t, "Credentials")),
            })),
            Kind::Choice(c) => StateOp::Choice(Box::new(ChoiceOp {
                rules: c
                    .choices
                    .iter()
                    .map(|r| RuleOp {
                        condition: self.condition(&r.condition),
                        next: ids[r.next.as_str()],
                        assign: r.assign.as_ref().map(|t| self.assign(t)),
                        output: r.output.as_ref().map(|t| self.template(t, "Output")),
                    })
                    .collect(),
                default: c.default.as_ref().map(|d| ids[d.as_str()]),
            })),
            Kind::Wait(w) => StateOp::Wait(Box::new(match &w.wait {
                WaitFor::Seconds(s) => WaitOp::Seconds(*s),
                WaitFor::SecondsPath(p) => WaitOp::SecondsPath(self.accessor(p)),
                WaitFor::Timestamp(ms) => WaitOp::Until(*ms),
                WaitFor::TimestampPath(p) => WaitOp::TimestampPath(self.accessor(p)),
                WaitFor::SecondsExpr(e) => WaitOp::SecondsExpr(self.jsonata(e, "Seconds")),
                WaitFor::TimestampExpr(e) => WaitOp::TimestampExpr(self.jsonata(e, "Timestamp")),
            })),
            Kind::Succeed => StateOp::Succeed,
            Kind::Fail(f) => StateOp::Fail(Box::new(FailOp {
                error: f.error.as_ref().map(|t| self.text(t, "Error")),
                cause: f.cause.as_ref().map(|t| self.text(t, "Cause")),
            })),
            Kind::Parallel(p) => {
                let branches = p.branches.iter().map(|b| self.machine(b)).collect();
                StateOp::Parallel(Box::new(ParallelOp {
                    branches,
                    parameters: p.parameters.as_ref().map(|t| self.template(t, args)),
                    result_selector: p
                        .result_selector
                        .as_ref()
                        .map(|t| self.template(t, "ResultSelector")),
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
                    items: m.items.as_ref().map(|t| self.template(t, "Items")),
                    item_selector: m
                        .item_selector
                        .as_ref()
                        .map(|t| self.template(t, "ItemSelector")),
                    max_concurrency: m
                        .max_concurrency
                        .as_ref()
                        .map(|d| self.dynamic(d, "MaxConcurrency")),
                    tolerated_failure_percentage: m
                        .tolerated_failure_percentage
                        .as_ref()
                        .map(|d| self.dynamic(d, "ToleratedFailurePercentage")),
                    tolerated_failure_count: m
                        .tolerated_failure_count
                        .as_ref()
                        .map(|d| self.dynamic(d, "ToleratedFailureCount")),
                    item_reader: m.item_reader.clone(),
                    item_batcher: m.item_batcher.as_ref().map(item_batcher),
                    result_writer: m.result_writer.clone(),
                    result_selector: m
                        .result_selector
                        .as_ref()
                        .map(|t| self.template(t, "ResultSelector")),
                    result_path: self.result_path(&m.result_path),
                    retry: Self::retriers(&m.retry),
                    catch: self.catchers(&m.catch, ids),
                }))
            }
        };
        StatePlan {
            name: Str::new(&s.name),
            jsonata,
            assign: s.assign.as_ref().map(|t| self.assign(t)),
            output: s
                .output
                .as_ref()
                .map(|t| Box::new(self.template(t, "Output"))),
            input_path: self.path_op(&s.input_path),
            output_path: self.path_op(&s.output_path),
            op,
            next,
        }
    }
}

/// `ItemBatcher`, read as the executor used to read it on every entry into the Map state: a
/// limit's field wins over its `...Path`, which is read only when it is a string.
fn item_batcher(b: &Value) -> Box<ItemBatcherOp> {
    let limit = |key: &str, path_key: &'static str| -> BatchLimitOp {
        if let Some(v) = b.get(key) {
            return match v.as_i64().filter(|n| *n > 0) {
                Some(n) => BatchLimitOp::Fixed(n as u64),
                None => BatchLimitOp::Invalid(Str::from(format!(
                    "ItemBatcher.{key} must be a positive integer"
                ))),
            };
        }
        match b.get(path_key) {
            Some(Value::String(p)) => match Path::parse(p) {
                Ok(path) => BatchLimitOp::Path {
                    field: path_key,
                    path,
                },
                Err(e) => BatchLimitOp::Invalid(Str::from(e.to_string())),
            },
            _ => BatchLimitOp::Unset,
        }
    };
    Box::new(ItemBatcherOp {
        max_items: limit("MaxItemsPerBatch", "MaxItemsPerBatchPath"),
        max_bytes: limit("MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath"),
        batch_input: b.get("BatchInput").cloned(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn test_of(text: &str) -> Option<FastTest> {
        let slots = HashMap::from([("limit".to_string(), 0u16)]);
        let resolve = |name: &str| match name {
            "states" => Some(STATES_SLOT),
            other => slots.get(other).map(|s| *s as u32),
        };
        let e = crate::jsonata::compile_with(text, &resolve).unwrap();
        fast_test(&e, &slots)
    }

    /// The shape of a test, as text: `c` for a comparison.
    fn shape(t: &FastTest) -> String {
        match t {
            FastTest::Compare(_) => "c".into(),
            FastTest::And(a, b) => format!("({} and {})", shape(a), shape(b)),
            FastTest::Or(a, b) => format!("({} or {})", shape(a), shape(b)),
            FastTest::Not(a) => format!("not {}", shape(a)),
        }
    }

    #[test]
    fn booleans_of_plain_comparisons_become_fast_tests() {
        let cases = [
            ("$states.input.a = 1", Some("c")),
            (
                "$limit >= 10 and ($states.input.s = 'x' or $states.input.f > 10)",
                Some("(c and (c or c))"),
            ),
            (
                "$not($states.input.u = 'f') or $limit < -2.5",
                Some("(not c or c)"),
            ),
            ("$states.context.Execution.Name = 'n'", Some("c")),
            // Anything else is the evaluator's: arithmetic, a call, a filter, a function of
            // another name, a name that is not plain, a bare read as a boolean.
            ("$states.input.a + 1 > 2", None),
            ("$count($states.input.r) > 2 and true = true", None),
            ("$states.input.a[0] = 1", None),
            ("$boolean($states.input.a = 1)", None),
            ("$states.input.`a b` = 1", None),
            ("$states.input.a and $states.input.b = 1", None),
        ];
        for (text, want) in cases {
            assert_eq!(test_of(text).as_ref().map(shape).as_deref(), want, "{text}");
        }
    }
}
