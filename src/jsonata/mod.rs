//! JSONata 2.0.6, the second query language of Step Functions (`"QueryLanguage": "JSONata"`),
//! and the functions Step Functions adds to it. Text is parsed once into an [`Expression`]
//! (tokens with positions, a Pratt parser, then jsonata-js's tree processing: paths, stages,
//! ancestry, tail calls); an expression is immutable and shared, and each evaluation runs
//! against a `json::Value` with its own small state (limits, the fixed `$now()`, a random
//! source). Errors are data: JSONata's codes with the character position.
//!
//! ```
//! use stepstream::jsonata;
//! use stepstream::json;
//!
//! let expr = jsonata::compile("$sum(items.price) & ' ' & $uppercase(site)").unwrap();
//! let input = json::parse(br#"{"site":"eu","items":[{"price":2},{"price":3}]}"#).unwrap();
//! let out = expr.evaluate(Some(&input), &[]).unwrap();
//! assert_eq!(out.unwrap().as_str(), Some("5 EU"));
//! ```

pub(crate) mod ast;
pub mod datetime;
pub mod error;
mod eval;
mod func;
pub(crate) mod functions;
mod lexer;
pub mod numfmt;
mod parser;
mod regex;
mod signature;
mod value;

pub use error::Error;
pub use eval::{Limits, Variables};

use crate::json::Value;
use func::Frame;
use value::{Val, flag};

/// A compiled JSONata expression.
#[derive(Debug)]
pub struct Expression {
    root: ast::Node,
}

impl Expression {
    /// The compiled tree (the Plan reads shortcuts off it).
    pub fn root(&self) -> &ast::Node {
        &self.root
    }
}

/// Options of one evaluation.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub limits: Limits,
    /// `$now()` and `$millis()` (milliseconds since the epoch); the clock when None.
    pub now_millis: Option<i64>,
    /// Seed of `$random()`, `$shuffle()` and `$uuid()`; from the clock when None.
    pub seed: Option<u64>,
    /// JSONata as Step Functions provides it: `$eval` is left out (AWS offers `$parse`
    /// instead); Step Functions' own functions are there in both dialects.
    pub step_functions: bool,
}

/// Parses and processes JSONata text.
pub fn compile(text: &str) -> Result<Expression, Error> {
    Ok(Expression {
        root: parse_tree(text, None)?,
    })
}

/// Gives the slot of a name the surroundings provide (see `compile_with`).
pub type SlotOf<'a> = &'a dyn Fn(&str) -> Option<u32>;

/// Compiles with the names the surroundings provide resolved to slots once: `$name` with
/// `slot(name) == Some(i)` is read with `Variables::slot(i)` (unless the expression binds
/// the name itself), never looked up by name.
pub fn compile_with(text: &str, slot: SlotOf<'_>) -> Result<Expression, Error> {
    Ok(Expression {
        root: parse_tree(text, Some(slot))?,
    })
}

pub(crate) fn parse_tree(text: &str, outer: Option<SlotOf<'_>>) -> Result<ast::Node, Error> {
    let raw = parser::parse(text)?;
    ast::process(raw, outer)
}

/// What an evaluation gave, for callers that treat a function result apart.
#[derive(Debug)]
pub enum Evaluated {
    Value(Value),
    Undefined,
    /// A function (lambda or built-in): it has no JSON form.
    Function,
}

impl Expression {
    /// The names the expression reads from its input at the top level (see
    /// `ast::top_level_names`): what Step Functions refuses, as it gives no input.
    pub fn top_level_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        ast::top_level_names(&self.root, &mut out);
        out
    }

    /// Evaluates against `input` (None: JSONata's undefined input) with variable `bindings`
    /// (names without `$`). `Ok(None)` is an undefined result.
    pub fn evaluate(
        &self,
        input: Option<&Value>,
        bindings: &[(&str, Value)],
    ) -> Result<Option<Value>, Error> {
        self.evaluate_with(input, bindings, &Options::default())
    }

    pub fn evaluate_with(
        &self,
        input: Option<&Value>,
        bindings: &[(&str, Value)],
        options: &Options,
    ) -> Result<Option<Value>, Error> {
        let mut vars: Vec<(crate::json::Str, Val)> = Vec::with_capacity(bindings.len());
        for (name, v) in bindings {
            if !vars.iter().any(|(k, _)| k.as_str() == *name) {
                vars.push(((*name).into(), Val::from_json(v)));
            }
        }
        self.run(input, Frame::root_with(vars), None, options)
    }

    /// Evaluates with variables read from `vars` (no bindings copied in): what a state
    /// machine does, where `$states` and the workflow variables live outside the expression.
    pub fn evaluate_vars(
        &self,
        input: Option<&Value>,
        vars: &dyn Variables,
        options: &Options,
    ) -> Result<Option<Value>, Error> {
        self.run(input, Frame::root(), Some(vars), options)
    }

    /// As `evaluate_vars`, telling a function result from a value.
    pub fn evaluate_in(
        &self,
        input: Option<&Value>,
        vars: &dyn Variables,
        options: &Options,
    ) -> Result<Evaluated, Error> {
        let root = SPARE_ROOT.take().unwrap_or_else(Frame::root);
        let result = self.run_val(input, root.clone(), Some(vars), options);
        // The root frame comes back for the thread's next evaluation when nothing kept it
        // (a function in the result holds it); its bindings go now.
        if std::rc::Rc::strong_count(&root) == 1 && std::rc::Rc::weak_count(&root) == 0 {
            root.clear();
            SPARE_ROOT.set(Some(root));
        }
        let result = result?;
        if matches!(result, Val::Func(_)) {
            return Ok(Evaluated::Function);
        }
        check_result(&result)?;
        Ok(match result.to_json() {
            Some(v) => Evaluated::Value(v),
            None => Evaluated::Undefined,
        })
    }

    fn run(
        &self,
        input: Option<&Value>,
        env: std::rc::Rc<Frame>,
        vars: Option<&dyn Variables>,
        options: &Options,
    ) -> Result<Option<Value>, Error> {
        let result = self.run_val(input, env, vars, options)?;
        check_result(&result)?;
        Ok(result.to_json())
    }

    /// One evaluation, its result still the evaluator's value.
    fn run_val(
        &self,
        input: Option<&Value>,
        env: std::rc::Rc<Frame>,
        vars: Option<&dyn Variables>,
        options: &Options,
    ) -> Result<Val, Error> {
        let mut ev = eval::Eval::new(options.limits, options.now_millis, options.seed);
        ev.vars = vars;
        ev.step_functions = options.step_functions;
        let input = input.map(Val::from_json).unwrap_or_default();
        ev.root = input.clone();
        let input = if matches!(input, Val::JArray(_)) {
            Val::array_with(vec![input], flag::SEQUENCE | flag::OUTER_WRAPPER)
        } else {
            input
        };
        ev.eval(&self.root, &input, &env)
    }
}

/// A result holding NaN or an infinity has no JSON form: JSONata's D1001.
fn check_result(v: &Val) -> Result<(), Error> {
    match v {
        Val::Num(x) => functions::check_finite(*x),
        Val::Array(_) | Val::Object(_) => {
            if v.is_array() {
                v.items().iter().try_for_each(check_result)
            } else {
                v.entries().iter().try_for_each(|(_, x)| check_result(x))
            }
        }
        _ => Ok(()),
    }
}

thread_local! {
    /// An emptied root frame left by the thread's last evaluation in a workflow.
    static SPARE_ROOT: std::cell::Cell<Option<std::rc::Rc<Frame>>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
mod tests;
