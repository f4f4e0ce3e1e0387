//! JSONata in a state: `$states` (input, result, errorOutput, context) and the workflow
//! variables given to compiled expressions by slot, and AWS's `States.QueryEvaluationError`
//! texts when an expression fails, gives nothing, or gives the wrong type for its field.

use std::cell::OnceCell;

use super::data::{Env, Failure, Handling, Here, Sized};
use crate::json::{Object, Str, Value, encoded_len};
use crate::jsonata::{Evaluated, Options, Variables};
use crate::plan::{ContextField, ContextSource, JsonataOp, STATES_SLOT};

/// What `$states` holds in one state's evaluation. The object is built once per state, the
/// first time an expression reads it (with the context object only for expressions that
/// may read `$states.context`).
pub struct States {
    pub input: Value,
    pub result: Option<Value>,
    pub error_output: Option<Value>,
    plain: OnceCell<Value>,
    full: OnceCell<Value>,
}

impl States {
    pub fn new(input: Value, result: Option<Value>, error_output: Option<Value>) -> States {
        States {
            input,
            result,
            error_output,
            plain: OnceCell::new(),
            full: OnceCell::new(),
        }
    }

    fn value(&self, ctx: &dyn ContextSource, context: bool) -> Value {
        let build = |with_context: bool| {
            let mut o = Object::with_capacity(4);
            o.push_unique(Str::new("input"), self.input.clone());
            if let Some(r) = &self.result {
                o.push_unique(Str::new("result"), r.clone());
            }
            if let Some(e) = &self.error_output {
                o.push_unique(Str::new("errorOutput"), e.clone());
            }
            if with_context {
                o.push_unique(
                    Str::new("context"),
                    ctx.field(ContextField::Whole).unwrap_or_default(),
                );
            }
            Value::object(o)
        };
        if context {
            self.full.get_or_init(|| build(true)).clone()
        } else {
            self.plain.get_or_init(|| build(false)).clone()
        }
    }
}

struct Scope<'a> {
    ctx: &'a dyn ContextSource,
    states: &'a States,
    context: bool,
}

impl Variables for Scope<'_> {
    fn get(&self, _name: &str) -> Option<Value> {
        None
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

/// Evaluates one expression of the state; undefined and function results are errors.
pub fn eval(op: &JsonataOp, env: &mut Env<'_>, here: Here<'_>) -> Result<Value, Failure> {
    let Some(states) = env.states else {
        return Err(query_error(
            here,
            format_args!(
                "The JSONata expression '{}' specified for the field '{}' has no $states here.",
                op.text, op.field
            ),
        ));
    };
    let scope = Scope {
        ctx: env.ctx,
        states,
        context: op.needs_context,
    };
    let options = Options {
        now_millis: Some(env.now_ms),
        seed: Some(env.rng.next_u64()),
        step_functions: true,
        ..Options::default()
    };
    match op.expr.evaluate_in(None, &scope, &options) {
        Ok(Evaluated::Value(v)) => Ok(v),
        Ok(Evaluated::Undefined) => Err(query_error(
            here,
            format_args!(
                "The JSONata expression '{}' specified for the field '{}' returned nothing (undefined).",
                op.text, op.field
            ),
        )),
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

/// Evaluates an expression as a `Sized` value (its exact length, measured once).
pub fn eval_sized(op: &JsonataOp, env: &mut Env<'_>, here: Here<'_>) -> Result<Sized, Failure> {
    let value = eval(op, env, here)?;
    let bound = encoded_len(&value) as u64;
    Ok(Sized { value, bound })
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

/// An expression that must give a non-negative integer (seconds, counts, concurrency).
pub fn eval_count(op: &JsonataOp, env: &mut Env<'_>, here: Here<'_>) -> Result<u64, Failure> {
    let v = eval(op, env, here)?;
    match v.as_number().and_then(|n| n.as_i64()) {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(wrong_type(op, "integer", &v, here)),
    }
}
