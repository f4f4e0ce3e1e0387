//! The data flow of one state, as AWS applies it: `InputPath` → `Parameters` → (work) →
//! `ResultSelector` → `ResultPath` → `OutputPath`, with AWS's error names and texts when a
//! step cannot be applied.
//!
//! Every value travels with an upper bound of its encoded length (`bound`), kept without
//! walking the value: selections take the bound of their document (or the exact length of a
//! scalar), templates add their parts. The 256 KiB payload check only walks a value when the
//! bound is over the limit, so ordinary events pay nothing for it (an exact length needs a
//! walk of the whole value, formatting every double to count its digits).

use std::fmt;

use crate::intrinsics::{Call, IntrinsicError, Scope};
use crate::json::{Number, Object, Str, Value, encoded_len};
use crate::jsonpath::{PathError, Selected};
use crate::plan::{Accessor, ContextSource, PathOp, ResultPathOp, TemplateOp};
use crate::random::Rng;

/// AWS's payload limit: 256 KiB of UTF-8 JSON.
pub const PAYLOAD_LIMIT: u64 = 256 * 1024;

/// How a failure may be handled by Retry and Catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handling {
    /// Any matching retrier or catcher, `States.ALL` included.
    Normal,
    /// Only a retrier or catcher that names the error (`States.DataLimitExceeded` raised by
    /// the interpreter: `States.ALL` does not match it).
    ByNameOnly,
    /// Never: the execution fails (`States.Runtime`: a path or value the state cannot use).
    Terminal,
}

/// A failed state, as data: the ASL error name and cause.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub error: Option<Str>,
    pub cause: Option<Str>,
    pub handling: Handling,
}

impl Failure {
    pub fn new(error: &str, cause: impl Into<String>, handling: Handling) -> Failure {
        Failure {
            error: Some(Str::new(error)),
            cause: Some(Str::from(cause.into())),
            handling,
        }
    }

    /// `States.Runtime` in state `state`, entered at history event `event`.
    pub fn runtime(state: &str, event: u32, detail: impl fmt::Display) -> Failure {
        Failure::new(
            "States.Runtime",
            format!(
                "An error occurred while executing the state '{state}' (entered at the event id #{event}). {detail}"
            ),
            Handling::Terminal,
        )
    }

    pub fn data_limit(state: &str, handling: Handling) -> Failure {
        Failure::new(
            "States.DataLimitExceeded",
            format!(
                "The state/task '{state}' returned a result with a size exceeding the maximum number of bytes service limit."
            ),
            handling,
        )
    }

    /// The error output a catcher passes on: `{"Error": ..., "Cause": ...}`.
    pub fn to_error_output(&self) -> Value {
        let mut o = Object::with_capacity(2);
        if let Some(e) = &self.error {
            o.push_unique(Str::new("Error"), Value::String(e.clone()));
        }
        if let Some(c) = &self.cause {
            o.push_unique(Str::new("Cause"), Value::String(c.clone()));
        }
        Value::object(o)
    }
}

/// What a state is doing, for error messages: its name and the history event it entered at.
#[derive(Clone, Copy)]
pub struct Here<'a> {
    pub state: &'a str,
    pub event: u32,
}

impl Here<'_> {
    pub fn runtime(&self, detail: impl fmt::Display) -> Failure {
        Failure::runtime(self.state, self.event, detail)
    }
}

/// A value with an upper bound of its encoded length.
#[derive(Clone, Debug)]
pub struct Sized {
    pub value: Value,
    pub bound: u64,
}

impl Default for Sized {
    fn default() -> Sized {
        Sized {
            value: Value::Null,
            bound: 4,
        }
    }
}

impl Sized {
    pub fn exact(value: Value) -> Sized {
        let bound = encoded_len(&value) as u64;
        Sized { value, bound }
    }

    /// Fails with `States.DataLimitExceeded` when the value is over 256 KiB. Walks the value
    /// only when the bound says it might be.
    pub fn check(&mut self, state: &str, handling: Handling) -> Result<(), Failure> {
        if self.bound <= PAYLOAD_LIMIT {
            return Ok(());
        }
        let exact = encoded_len(&self.value) as u64;
        self.bound = exact;
        if exact > PAYLOAD_LIMIT {
            return Err(Failure::data_limit(state, handling));
        }
        Ok(())
    }
}

/// An upper bound of `v`'s encoded length, knowing it was selected from a document of
/// bound `doc`: exact for scalars; for containers the length or bound they remember, else
/// `doc`.
#[inline]
pub fn bound_of(v: &Value, doc: u64) -> u64 {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(Number::Int(_)) => 20,
        Value::Number(Number::Float(_)) => 25,
        Value::String(s) => {
            if s.len() <= 64 {
                // Each byte encodes to at most 6 (\u00XX); cheaper than scanning short text.
                s.len() as u64 * 6 + 2
            } else {
                encoded_len(v) as u64
            }
        }
        Value::Array(a) => match (a.cached_len(), a.cached_bound()) {
            (0, 0) => doc,
            (0, b) => b.min(doc),
            (n, _) => n as u64,
        },
        Value::Object(o) => match (o.cached_len(), o.cached_bound()) {
            (0, 0) => doc,
            (0, b) => b.min(doc),
            (n, _) => n as u64,
        },
    }
}

/// The context and randomness that paths and intrinsics need, besides the document.
pub struct Env<'a> {
    pub ctx: &'a dyn ContextSource,
    /// Bound of the context object's biggest member (the execution input).
    pub ctx_bound: u64,
    pub rng: &'a mut Rng,
    /// `$states` of a JSONata state.
    pub states: Option<&'a super::query::States>,
    /// The execution's clock (`$now()` in JSONata).
    pub now_ms: i64,
}

fn input_text(doc: &Value) -> String {
    crate::json::to_string(doc)
}

/// Applies an `InputPath`, `OutputPath` or `ItemsPath`.
pub fn apply_path(
    op: &PathOp,
    doc: Sized,
    env: &Env<'_>,
    here: Here<'_>,
) -> Result<Sized, Failure> {
    match op {
        PathOp::Identity => Ok(doc),
        PathOp::Empty => Ok(Sized {
            value: Value::empty_object(),
            bound: 2,
        }),
        PathOp::Select(a) => {
            let doc_bound = if a.context_field().is_some() {
                env.ctx_bound
            } else {
                doc.bound
            };
            match a.select(&doc.value, env.ctx) {
                Ok(s) => {
                    let value = s.into_owned();
                    let bound = bound_of(&value, doc_bound);
                    Ok(Sized { value, bound })
                }
                Err(e) => Err(here.runtime(format_args!("Invalid path '{}' : {e}", a.text()))),
            }
        }
    }
}

/// A value as AWS prints it inside quotes in messages: strings bare, the rest as JSON.
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        other => crate::json::to_string(other),
    }
}

/// Reads a path for a field of the state (`SecondsPath`, `ErrorPath`, ...), reporting a miss
/// with AWS's text for such fields.
pub fn select_field<'v>(
    a: &Accessor,
    field: &str,
    doc: &'v Value,
    env: &Env<'_>,
    here: Here<'_>,
) -> Result<Selected<'v>, Failure> {
    a.select(doc, env.ctx).map_err(|_| {
        here.runtime(format_args!(
            "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
            a.text(),
            input_text(doc)
        ))
    })
}

struct IntrinsicScope<'a, 'e> {
    doc: &'a Value,
    env: &'a mut Env<'e>,
}

impl Scope for IntrinsicScope<'_, '_> {
    fn select(&mut self, path: &crate::jsonpath::Path) -> Result<Value, PathError> {
        match path.root() {
            // The general evaluator reads a definite path without allocating.
            crate::jsonpath::Root::Data => path.select(self.doc).map(Selected::into_owned),
            crate::jsonpath::Root::Context => Accessor::new(path.clone())
                .select(self.doc, self.env.ctx)
                .map(Selected::into_owned),
            crate::jsonpath::Root::Variable => {
                let slot = path.variable_slot().unwrap_or(u16::MAX);
                match self
                    .env
                    .ctx
                    .field(crate::plan::ContextField::Variable(slot))
                {
                    Some(v) => path.select(&v).map(Selected::into_owned),
                    None => Err(PathError::Undefined {
                        name: path.variable().unwrap_or_default().to_string(),
                    }),
                }
            }
        }
    }
    fn rng(&mut self) -> &mut Rng {
        self.env.rng
    }
}

/// Evaluates an intrinsic call against `doc`.
pub fn eval_call(
    call: &Call,
    field: &str,
    doc: &Sized,
    env: &mut Env<'_>,
    here: Here<'_>,
) -> Result<Sized, Failure> {
    let mut scope = IntrinsicScope {
        doc: &doc.value,
        env,
    };
    match call.eval(&mut scope) {
        Ok(value) => {
            let bound = call_bound(&value);
            Ok(Sized { value, bound })
        }
        Err(IntrinsicError::Path { path, .. }) => Err(here.runtime(format_args!(
            "The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{}'",
            input_text(&doc.value)
        ))),
        Err(IntrinsicError::Failure(msg)) => Err(Failure::new(
            "States.IntrinsicFailure",
            format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {msg}",
                here.state, here.event
            ),
            Handling::Normal,
        )),
    }
}

/// A bound of an intrinsic's result. Containers are measured exactly: a result can be far
/// bigger than its inputs (`States.ArrayRange`, `States.Array` of many copies), results are
/// small in practice, and the walk fills the containers' length caches for later checks.
fn call_bound(v: &Value) -> u64 {
    match v {
        // Six bytes per byte covers any escaping, without scanning the text.
        Value::String(s) => s.len() as u64 * 6 + 2,
        other => encoded_len(other) as u64,
    }
}

/// Evaluates a payload template against `doc`.
pub fn eval_template(
    t: &TemplateOp,
    doc: &Sized,
    env: &mut Env<'_>,
    here: Here<'_>,
) -> Result<Sized, Failure> {
    match t {
        TemplateOp::Static(v, len) => Ok(Sized {
            value: v.clone(),
            bound: *len,
        }),
        TemplateOp::Object {
            fields,
            duplicate_keys,
        } => {
            let mut obj = Object::with_capacity(fields.len());
            let mut bound = 2 + fields.len() as u64;
            for (k, f) in fields.iter() {
                let part = eval_template(f, doc, env, here)?;
                bound += part.bound + k.len() as u64 * 6 + 3;
                if *duplicate_keys {
                    obj.insert(k.clone(), part.value);
                } else {
                    obj.push_unique(k.clone(), part.value);
                }
            }
            // Remembered, so that a JSONata expression given this object (`$merge`) later
            // counts it without a walk.
            Ok(Sized {
                value: Value::object_within(obj, bound),
                bound,
            })
        }
        TemplateOp::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut bound = 2 + items.len() as u64;
            for i in items.iter() {
                let part = eval_template(i, doc, env, here)?;
                bound += part.bound;
                out.push(part.value);
            }
            Ok(Sized {
                value: Value::array_within(out, bound),
                bound,
            })
        }
        TemplateOp::Select { key, accessor } => {
            let doc_bound = if accessor.context_field().is_some() {
                env.ctx_bound
            } else {
                doc.bound
            };
            match accessor.select(&doc.value, env.ctx) {
                Ok(s) => {
                    let value = s.into_owned();
                    let bound = bound_of(&value, doc_bound);
                    Ok(Sized { value, bound })
                }
                Err(_) => Err(here.runtime(format_args!(
                    "The JSONPath '{}' specified for the field '{key}' could not be found in the input '{}'",
                    accessor.text(),
                    input_text(&doc.value)
                ))),
            }
        }
        TemplateOp::Call { key, call } => eval_call(call, key, doc, env, here),
        TemplateOp::Jsonata(op) => super::query::eval_sized(op, env, here),
    }
}

/// The values an `Assign` computed, by variable slot, before they are stored.
pub type Assigned = Vec<(u16, Sized)>;

/// Evaluates an `Assign` against `doc` (JSONPath: the state's result; JSONata: unused, the
/// expressions read `$states`): every value is computed before any is stored.
pub fn eval_assign(
    a: &Option<crate::plan::AssignOp>,
    doc: &Sized,
    env: &mut Env<'_>,
    here: Here<'_>,
) -> Result<Assigned, Failure> {
    let Some(a) = a else {
        return Ok(Vec::new());
    };
    a.slots
        .iter()
        .map(|(slot, t)| Ok((*slot, eval_template(t, doc, env, here)?)))
        .collect()
}

/// Applies a `ResultPath`: where the result goes in the state's raw input. On failure the
/// input comes back untouched (a catcher still needs it).
pub fn apply_result_path(
    op: &ResultPathOp,
    input: Sized,
    result: Sized,
) -> Result<Sized, (Failure, Sized)> {
    match op {
        ResultPathOp::Replace => Ok(result),
        ResultPathOp::Discard => Ok(input),
        ResultPathOp::Set(path) => {
            let Sized { mut value, bound } = input;
            if path.set(&mut value, result.value).is_err() {
                let failure = Failure::new(
                    "States.ResultPathMatchFailure",
                    format!(
                        "Unable to apply ReferencePath {} to input {}",
                        path.text(),
                        input_text(&value)
                    ),
                    Handling::Normal,
                );
                return Err((failure, Sized { value, bound }));
            }
            let keys: u64 = path.text().len() as u64 * 6 + 16;
            Ok(Sized {
                value,
                bound: bound + result.bound + keys,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse, to_string};
    use crate::plan::ContextField;

    struct NoCtx;
    impl ContextSource for NoCtx {
        fn field(&self, _: ContextField) -> Option<Value> {
            None
        }
    }

    fn sized(s: &str) -> Sized {
        Sized::exact(parse(s.as_bytes()).unwrap())
    }

    #[test]
    fn bounds_never_undercount() {
        let doc = sized(r#"{"s":"a\"b\u0001","n":1.0E7,"i":-12,"a":[1.5,"x"],"o":{"k":null}}"#);
        for (k, v) in doc.value.as_object().unwrap().iter() {
            let b = bound_of(v, doc.bound);
            assert!(b >= encoded_len(v) as u64, "{k}: {b} < {}", encoded_len(v));
        }
    }

    #[test]
    fn payload_check_walks_only_over_the_bound() {
        let mut small = Sized {
            value: Value::string("x"),
            bound: 10,
        };
        assert!(small.check("S", Handling::Terminal).is_ok());
        let big = "a".repeat(300 * 1024);
        let mut lying = Sized {
            value: Value::string(&big),
            bound: 10,
        };
        // A bound under the limit is trusted: that is why bounds must never undercount.
        assert!(lying.check("S", Handling::Terminal).is_ok());
        let mut over = Sized {
            value: Value::string(&big),
            bound: u64::MAX,
        };
        let e = over.check("S", Handling::Terminal).unwrap_err();
        assert_eq!(e.error.as_deref(), Some("States.DataLimitExceeded"));
        let mut fits = Sized {
            value: Value::string("ok"),
            bound: u64::MAX,
        };
        assert!(fits.check("S", Handling::Terminal).is_ok());
        assert_eq!(fits.bound, 4);
    }

    /// `t` evaluated against `doc` in state `state`, event 2, without a context object.
    fn template(t: &TemplateOp, doc: &Sized, state: &str) -> Result<Sized, Failure> {
        let mut rng = Rng::new(1);
        let mut env = Env {
            ctx: &NoCtx,
            ctx_bound: 0,
            rng: &mut rng,
            states: None,
            now_ms: 0,
        };
        eval_template(t, doc, &mut env, Here { state, event: 2 })
    }

    #[test]
    fn built_containers_remember_a_bound_that_never_undercounts() {
        // A template's object carries its bound, so a later read of it (a JSONata `$merge`,
        // a plain read of a sub-document) counts it without a walk, and tighter than the
        // bound of the document it was read from.
        let fields = [("a", "$.s"), ("b", "$.a"), ("c", "$.o")]
            .map(|(k, p)| {
                let accessor = Accessor::new(crate::jsonpath::Path::parse(p).unwrap());
                (
                    Str::new(k),
                    TemplateOp::Select {
                        key: Str::new(k),
                        accessor,
                    },
                )
            })
            .into_iter()
            .collect();
        let t = TemplateOp::Object {
            fields,
            duplicate_keys: false,
        };
        let doc = sized(r#"{"s":"a\"b\u0001","a":[1.5,"x"],"o":{"k":null},"pad":"0123456789"}"#);
        let built = template(&t, &doc, "S").unwrap();
        let Value::Object(o) = &built.value else {
            panic!("an object")
        };
        assert_eq!(o.cached_bound(), built.bound);
        assert_eq!(bound_of(&built.value, u64::MAX), built.bound);
        assert_eq!(super::super::query::bound(&built.value), built.bound);
        let exact = encoded_len(&built.value) as u64;
        assert!(built.bound >= exact);
        // Once the exact length is known, it is the better bound.
        assert_eq!(bound_of(&built.value, u64::MAX), exact);
        // What is remembered is forgotten by a change.
        let mut changed = built.value.clone();
        if let Value::Object(o) = &mut changed {
            std::sync::Arc::make_mut(o).insert(Str::new("d"), Value::string(&"z".repeat(500)));
        }
        let b = super::super::query::bound(&changed);
        assert!(b >= encoded_len(&changed) as u64, "{b}");
    }

    #[test]
    fn result_path_failures_are_catchable_and_say_why() {
        let p = crate::jsonpath::Path::parse("$.x").unwrap();
        let (e, back) =
            apply_result_path(&ResultPathOp::Set(p), sized(r#""hello""#), sized("1")).unwrap_err();
        assert_eq!(back.value, Value::string("hello"));
        assert_eq!(e.error.as_deref(), Some("States.ResultPathMatchFailure"));
        assert_eq!(
            e.cause.as_deref(),
            Some(r#"Unable to apply ReferencePath $.x to input "hello""#)
        );
        assert_eq!(e.handling, Handling::Normal);
    }

    #[test]
    fn template_misses_name_the_field() {
        let t = TemplateOp::Select {
            key: Str::new("value.$"),
            accessor: Accessor::new(crate::jsonpath::Path::parse("$.nope").unwrap()),
        };
        let e = template(&t, &sized(r#"{"a":1}"#), "pass").unwrap_err();
        assert_eq!(
            e.cause.as_deref(),
            Some(
                r#"An error occurred while executing the state 'pass' (entered at the event id #2). The JSONPath '$.nope' specified for the field 'value.$' could not be found in the input '{"a":1}'"#
            )
        );
        assert_eq!(
            to_string(&e.to_error_output()),
            format!(
                r#"{{"Error":"States.Runtime","Cause":{}}}"#,
                to_string(&Value::String(e.cause.clone().unwrap()))
            )
        );
    }
}
