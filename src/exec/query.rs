//! JSONata in a state: `$states` (input, result, errorOutput, context) and the workflow
//! variables given to compiled expressions by slot, and AWS's `States.QueryEvaluationError`
//! texts when an expression fails, gives nothing, or gives the wrong type for its field.

use std::cell::{OnceCell, RefCell};

use super::data::{Env, Failure, Handling, Here, Sized};
use crate::json::{Number, Object, Str, Value};
use crate::jsonata::{Evaluated, Options, Variables};
use crate::plan::{
    CompareOp, CompareSide, ContextField, ContextSource, FastCompare, FastRead, FastTest,
    JsonataOp, Member, STATES_SLOT, context,
};

/// What `$states` holds in one state's evaluation. The object is built once per state, the
/// first time an expression reads it, with only the members of the context object that the
/// expressions may read (building `Execution` formats ARNs and times: the W2j Map's
/// ItemSelector reads only `Map`).
pub struct States {
    pub input: Value,
    pub result: Option<Value>,
    pub error_output: Option<Value>,
    /// Bounds of the encoded lengths of input, result and error output, so that a part read
    /// from them is bounded without a walk.
    bounds: [u64; 3],
    plain: OnceCell<Value>,
    /// The object with a context object of these members.
    with_context: RefCell<Option<(u8, Value)>>,
}

impl States {
    pub fn new(input: &Sized, result: Option<&Sized>, error_output: Option<&Sized>) -> States {
        States {
            input: input.value.clone(),
            result: result.map(|r| r.value.clone()),
            error_output: error_output.map(|e| e.value.clone()),
            bounds: [
                input.bound,
                result.map_or(0, |r| r.bound),
                error_output.map_or(0, |e| e.bound),
            ],
            plain: OnceCell::new(),
            with_context: RefCell::new(None),
        }
    }

    /// `$states` without the context object.
    fn plain(&self, ctx: &dyn ContextSource) -> &Value {
        self.plain.get_or_init(|| self.build(ctx, 0))
    }

    fn value(&self, ctx: &dyn ContextSource, parts: u8) -> Value {
        if parts == 0 {
            return self.plain(ctx).clone();
        }
        let mut cached = self.with_context.borrow_mut();
        match &*cached {
            Some((have, v)) if have & parts == parts => v.clone(),
            other => {
                let all = parts | other.as_ref().map_or(0, |(p, _)| *p);
                let v = self.build(ctx, all);
                *cached = Some((all, v.clone()));
                v
            }
        }
    }

    /// The object, with the context object's members `parts` names.
    fn build(&self, ctx: &dyn ContextSource, parts: u8) -> Value {
        let mut o = Object::with_capacity(4);
        o.push_unique(Str::new("input"), self.input.clone());
        if let Some(r) = &self.result {
            o.push_unique(Str::new("result"), r.clone());
        }
        if let Some(e) = &self.error_output {
            o.push_unique(Str::new("errorOutput"), e.clone());
        }
        if parts != 0 {
            o.push_unique(Str::new("context"), context_object(ctx, parts));
        }
        Value::object(o)
    }
}

/// The context object with the members `parts` names (those that exist here).
fn context_object(ctx: &dyn ContextSource, parts: u8) -> Value {
    if parts == context::ALL {
        return ctx.field(ContextField::Whole).unwrap_or_default();
    }
    let mut o = Object::with_capacity(4);
    for (bit, name, field) in [
        (context::EXECUTION, "Execution", ContextField::Execution),
        (
            context::STATE_MACHINE,
            "StateMachine",
            ContextField::StateMachine,
        ),
        (context::STATE, "State", ContextField::State),
        (context::MAP, "Map", ContextField::Map),
        (context::TASK, "Task", ContextField::Task),
    ] {
        if parts & bit != 0
            && let Some(v) = ctx.field(field)
        {
            o.push_unique(Str::new(name), v);
        }
    }
    Value::object(o)
}

struct Scope<'a> {
    ctx: &'a dyn ContextSource,
    states: &'a States,
    context: u8,
}

impl Variables for Scope<'_> {
    fn get(&self, _name: &str) -> Option<Value> {
        None
    }

    fn slot_member_ref(&self, slot: u32, key: &str) -> Option<Option<&Value>> {
        if slot != STATES_SLOT {
            return None;
        }
        // `$states.input` and the like are read without building `$states`; the context
        // object is built, with the members the expression names.
        match key {
            "input" => Some(Some(&self.states.input)),
            "result" => Some(self.states.result.as_ref()),
            "errorOutput" => Some(self.states.error_output.as_ref()),
            "context" => None,
            _ => Some(None),
        }
    }

    fn slot_ref(&self, slot: u32) -> Option<&Value> {
        (slot == STATES_SLOT && self.context == 0).then(|| self.states.plain(self.ctx))
    }

    fn slot(&self, slot: u32) -> Option<Value> {
        if slot == STATES_SLOT {
            Some(self.states.value(self.ctx, self.context))
        } else {
            self.ctx.field(ContextField::Variable(slot as u16))
        }
    }
}

/// `States.QueryEvaluationError` in the state `here`.
pub fn query_error(here: Here<'_>, detail: impl std::fmt::Display) -> Failure {
    Failure::new(
        "States.QueryEvaluationError",
        format!(
            "An error occurred while executing the state '{}' (entered at the event id #{}). {detail}",
            here.state, here.event
        ),
        Handling::Normal,
    )
}

/// What a `FastRead` finds, read where it lies: `Err(())` when the evaluator must decide.
fn fast_find<'v>(
    f: &FastRead,
    states: &'v States,
    ctx: &'v dyn ContextSource,
) -> Result<Option<Found<'v>>, ()> {
    #[inline]
    fn walk<'v>(mut cur: &'v Value, steps: &[Member]) -> Result<Option<&'v Value>, ()> {
        for s in steps {
            match cur {
                Value::Object(o) => match s.hint.get(o, &s.key) {
                    Some(v) => cur = v,
                    None => return Ok(None),
                },
                Value::Array(_) => return Err(()),
                _ => return Ok(None),
            }
        }
        match cur {
            Value::Number(Number::Int(i)) if i.unsigned_abs() > 1 << 53 => Err(()),
            v => Ok(Some(v)),
        }
    }
    let lent = |doc: &'v Value, steps: &[Member], bound: u64| {
        walk(doc, steps).map(|v| v.map(|v| Found::Lent(v, bound)))
    };
    match f {
        FastRead::Input(steps) => lent(&states.input, steps, states.bounds[0]),
        FastRead::Result(steps) => match &states.result {
            Some(r) => lent(r, steps, states.bounds[1]),
            None => Ok(None),
        },
        FastRead::ErrorOutput(steps) => match &states.error_output {
            Some(e) => lent(e, steps, states.bounds[2]),
            None => Ok(None),
        },
        FastRead::Context(field) => match ctx.field_ref(*field) {
            Some(Some(v)) => lent(v, &[], u64::MAX),
            Some(None) => Ok(None),
            None => match ctx.field(*field) {
                Some(v) => {
                    let exists = walk(&v, &[])?.is_some();
                    Ok(exists.then_some(Found::Made(v)))
                }
                None => Ok(None),
            },
        },
        FastRead::Variable(slot, steps) => {
            let field = ContextField::Variable(*slot);
            match ctx.field_ref(field) {
                Some(Some(v)) => lent(v, steps, u64::MAX),
                Some(None) => Ok(None),
                None => match ctx.field(field) {
                    Some(v) => walk(&v, steps).map(|v| v.map(|v| Found::Made(v.clone()))),
                    None => Ok(None),
                },
            }
        }
    }
}

/// A value a `FastRead` found.
enum Found<'v> {
    /// Lent from a document whose encoded length is at most the number (`u64::MAX`: not
    /// known).
    Lent(&'v Value, u64),
    /// Made for the read.
    Made(Value),
}

impl Found<'_> {
    fn value(&self) -> &Value {
        match self {
            Found::Lent(v, _) => v,
            Found::Made(v) => v,
        }
    }

    fn into_sized(self) -> Sized {
        match self {
            Found::Lent(v, doc) => Sized {
                value: v.clone(),
                bound: if doc == u64::MAX {
                    bound(v)
                } else {
                    super::data::bound_of(v, doc)
                },
            },
            Found::Made(value) => {
                let bound = bound(&value);
                Sized { value, bound }
            }
        }
    }
}

/// What a `FastTest` gives; `None` when the evaluator must decide.
fn fast_test<'a>(t: &'a FastTest, states: &'a States, ctx: &'a dyn ContextSource) -> Option<bool> {
    match t {
        FastTest::Compare(c) => fast_compare(c, states, ctx),
        FastTest::And(a, b) => match fast_test(a, states, ctx)? {
            false => Some(false),
            true => fast_test(b, states, ctx),
        },
        FastTest::Or(a, b) => match fast_test(a, states, ctx)? {
            true => Some(true),
            false => fast_test(b, states, ctx),
        },
        FastTest::Not(a) => fast_test(a, states, ctx).map(|b| !b),
    }
}

/// What a `FastCompare` gives; `None` when the evaluator must decide.
fn fast_compare<'a>(
    c: &'a FastCompare,
    states: &'a States,
    ctx: &'a dyn ContextSource,
) -> Option<bool> {
    let side = |o: &'a CompareSide| -> Option<Option<Found<'a>>> {
        match o {
            CompareSide::Literal(v) => Some(Some(Found::Lent(v, 0))),
            CompareSide::Read(f) => fast_find(f, states, ctx).ok(),
        }
    };
    let found = (side(&c.left)?, side(&c.right)?);
    let (Some(l), Some(r)) = (
        found.0.as_ref().map(Found::value),
        found.1.as_ref().map(Found::value),
    ) else {
        // JSONata: `=` and `!=` with an undefined side are false; `<` and the others are
        // undefined, which the evaluator reports.
        return matches!(c.op, CompareOp::Eq | CompareOp::Ne).then_some(false);
    };
    let ord = match (l, r) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64())?,
        (Value::String(a), Value::String(b)) if a.is_ascii() && b.is_ascii() => {
            a.as_str().cmp(b.as_str())
        }
        (Value::Bool(_) | Value::Null, _) | (_, Value::Bool(_) | Value::Null)
            if matches!(c.op, CompareOp::Eq | CompareOp::Ne)
                && !matches!(l, Value::Array(_) | Value::Object(_))
                && !matches!(r, Value::Array(_) | Value::Object(_)) =>
        {
            let same = match (l, r) {
                (Value::Bool(a), Value::Bool(b)) => a == b,
                (Value::Null, Value::Null) => true,
                _ => false,
            };
            return Some(same == (c.op == CompareOp::Eq));
        }
        (Value::Number(_), Value::String(_)) | (Value::String(_), Value::Number(_))
            if matches!(c.op, CompareOp::Eq | CompareOp::Ne) =>
        {
            return Some(c.op == CompareOp::Ne);
        }
        _ => return None,
    };
    use std::cmp::Ordering::*;
    Some(match c.op {
        CompareOp::Eq => ord == Equal,
        CompareOp::Ne => ord != Equal,
        CompareOp::Lt => ord == Less,
        CompareOp::Le => ord != Greater,
        CompareOp::Gt => ord == Greater,
        CompareOp::Ge => ord != Less,
    })
}

/// Evaluates one expression of the state; undefined and function results are errors.
pub fn eval(op: &JsonataOp, env: &mut Env<'_>, here: Here<'_>) -> Result<Value, Failure> {
    Ok(match find(op, env, here)? {
        Found::Lent(v, _) => v.clone(),
        Found::Made(v) => v,
    })
}

/// Evaluates an expression as a `Sized` value.
pub fn eval_sized(op: &JsonataOp, env: &mut Env<'_>, here: Here<'_>) -> Result<Sized, Failure> {
    find(op, env, here).map(Found::into_sized)
}

/// The value of one expression: lent where a plain read finds it, made by the evaluator
/// otherwise.
fn find<'a>(op: &JsonataOp, env: &mut Env<'a>, here: Here<'_>) -> Result<Found<'a>, Failure> {
    let (Some(states), ctx) = (env.states, env.ctx) else {
        return Err(query_error(
            here,
            format_args!(
                "The JSONata expression '{}' specified for the field '{}' has no $states here.",
                op.text, op.field
            ),
        ));
    };
    if let Some(t) = &op.test
        && let Some(b) = fast_test(t, states, ctx)
    {
        return Ok(Found::Made(Value::Bool(b)));
    }
    if let Some(f) = &op.fast {
        match fast_find(f, states, ctx) {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => return Err(undefined(op, here)),
            Err(()) => {}
        }
    }
    let scope = Scope {
        ctx,
        states,
        context: op.context,
    };
    let options = Options {
        now_millis: Some(env.now_ms),
        seed: Some(env.rng.next_u64()),
        step_functions: true,
        ..Options::default()
    };
    match op.expr.evaluate_in(None, &scope, &options) {
        Ok(Evaluated::Value(v)) => Ok(Found::Made(v)),
        Ok(Evaluated::Undefined) => Err(undefined(op, here)),
        Ok(Evaluated::Function) => Err(query_error(
            here,
            format_args!(
                "The JSONata expression '{}' specified for the field '{}' returned an unsupported result type.",
                op.text, op.field
            ),
        )),
        Err(e) => Err(query_error(
            here,
            format_args!(
                "The JSONata expression '{}' specified for the field '{}' threw an error during evaluation: {e}",
                op.text, op.field
            ),
        )),
    }
}

/// An upper bound of a result's encoded length without formatting its numbers (exact
/// lengths format every double; `perf` put that at 4% of W2j): the exact length or the bound
/// a container remembers, else 25 bytes a double and 6 bytes a string byte, remembered in
/// the container (a Map's results are counted once, not again in each state reading them).
pub(super) fn bound(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64 * 6 + 2,
        Value::Number(_) => 25,
        Value::Null | Value::Bool(_) => 5,
        Value::Array(a) => match (a.cached_len(), a.cached_bound()) {
            (0, 0) => {
                let n = 2 + a.iter().map(|x| bound(x) + 1).sum::<u64>();
                a.cache_bound(n);
                n
            }
            (0, b) => b,
            (n, _) => n as u64,
        },
        Value::Object(o) => match (o.cached_len(), o.cached_bound()) {
            (0, 0) => {
                let n = 2 + o
                    .iter()
                    .map(|(k, x)| k.len() as u64 * 6 + 3 + bound(x))
                    .sum::<u64>();
                o.cache_bound(n);
                n
            }
            (0, b) => b,
            (n, _) => n as u64,
        },
    }
}

/// The error for a result of the wrong type: `want` is AWS's name of the expected type.
pub fn wrong_type(op: &JsonataOp, want: &str, got: &Value, here: Here<'_>) -> Failure {
    query_error(
        here,
        format_args!(
            "The JSONata expression '{}' specified for the field '{}' returned an unexpected result type. Expected '{want}', but was '{}' for value: {}",
            op.text,
            op.field,
            got.type_name(),
            crate::json::to_string(got)
        ),
    )
}

fn undefined(op: &JsonataOp, here: Here<'_>) -> Failure {
    query_error(
        here,
        format_args!(
            "The JSONata expression '{}' specified for the field '{}' returned nothing (undefined).",
            op.text, op.field
        ),
    )
}

/// An expression that must give a non-negative integer (seconds, counts, concurrency).
pub fn eval_count(op: &JsonataOp, env: &mut Env<'_>, here: Here<'_>) -> Result<u64, Failure> {
    let v = eval(op, env, here)?;
    match v.as_number().and_then(|n| n.as_i64()) {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(wrong_type(op, "integer", &v, here)),
    }
}
