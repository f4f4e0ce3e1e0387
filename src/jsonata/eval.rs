//! The evaluator: runs the processed tree against an input, following jsonata-js 2.0.6's
//! `evaluate` step for step (paths and their sequences, tuple streams for `@`, `#` and `%`,
//! predicates, grouping, sorting, function application with signatures and the tail-call
//! trampoline). Limits: a nesting depth and a time budget end runaway expressions with
//! `U1001` instead of a stack overflow or a hang.

use std::rc::Rc;
use std::time::Instant;

use std::sync::Arc;

use super::ast::{BinOp, Group, Kind, LambdaDef, Node, Stage, TransformDef};
use super::error::{Error, Result};
use super::func::{Frame, Func};
use super::functions;
use super::value::{Val, deep_equal, flag};
use crate::json::Str;

/// Limits for one evaluation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Deepest nesting of evaluation steps (jsonata-js's harness counts the same way).
    pub max_depth: usize,
    /// Wall-clock budget for one evaluation, in milliseconds (0: none).
    pub time_limit_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 1000,
            time_limit_ms: 5000,
        }
    }
}

/// The state of one evaluation: limits, the fixed `$now()`, the random source. The clock is
/// read only when something needs it (`$now()`, a long evaluation's time check), since most
/// evaluations are a few field reads that would cost less than reading the clock.
pub struct Eval<'v> {
    /// The input document (`$$`).
    pub root: Val,
    /// Variables from outside the expression (Step Functions' `$states` and workflow
    /// variables), looked up after the expression's own bindings.
    pub vars: Option<&'v dyn Variables>,
    /// Step Functions' dialect: every built-in but `$eval` (use `$parse`).
    pub step_functions: bool,
    pub depth: usize,
    pub limits: Limits,
    /// When the time budget started: at the first check, after 4096 steps.
    started: Option<Instant>,
    ticks: u32,
    now: Option<i64>,
    seed: Option<u64>,
    rng: Option<crate::random::Rng>,
    /// Frames that `:=` gave a value that may hold a function. A lambda holds its frame, so
    /// `$f := function(){ $f() }` is a reference cycle: these are emptied when the
    /// evaluation ends.
    bound: Vec<std::rc::Weak<Frame>>,
}

/// The most items an array built by an expression may hold (jsonata-js's limit for `..`).
const MAX_ITEMS: usize = 10_000_000;
/// The longest string, in bytes (V8's limit, 2^29 - 24 characters).
pub const MAX_STRING: usize = (1 << 29) - 24;
/// The deepest nesting of arrays and objects an expression may build (as JSON input's).
const MAX_NESTING: u32 = 1000;

/// U1001 for a value past [`MAX_ITEMS`] or [`MAX_STRING`].
pub fn too_large(pos: usize) -> Error {
    Error::new(
        "U1001",
        "Out of memory: the expression built a value larger than the limit (1e7 items or 2^29 characters)",
    )
    .at(pos)
}

fn too_deep(pos: usize) -> Error {
    Error::new(
        "U1001",
        "Stack overflow error: the expression built a value nested more than 1000 levels deep",
    )
    .at(pos)
}

impl Drop for Eval<'_> {
    fn drop(&mut self) {
        for frame in self.bound.drain(..) {
            if let Some(frame) = frame.upgrade() {
                frame.clear();
            }
        }
    }
}

fn seq_of(v: &Val) -> Val {
    Val::seq(vec![v.clone()])
}

fn tuple_get(t: &Val, key: &str) -> Val {
    t.field(key)
}

/// Variables an expression reads from its surroundings: by the slot `compile_with` gave the
/// name, else by name (without `$`).
pub trait Variables {
    fn get(&self, name: &str) -> Option<crate::json::Value>;
    fn slot(&self, _slot: u32) -> Option<crate::json::Value> {
        None
    }
    /// The value of `slot` by reference, when the surroundings hold it as it is: a simple
    /// path walks it without a copy. `None` sends the reader to `slot`.
    fn slot_ref(&self, _slot: u32) -> Option<&crate::json::Value> {
        None
    }
    /// Member `key` of the object in `slot`, by reference, when the surroundings can lend
    /// it without making the object (`Some(None)`: it has no such member). `None` sends
    /// the reader to `slot_ref`.
    fn slot_member_ref(&self, _slot: u32, _key: &str) -> Option<Option<&crate::json::Value>> {
        None
    }
}

impl<'v> Eval<'v> {
    pub fn new(limits: Limits, now_millis: Option<i64>, seed: Option<u64>) -> Eval<'v> {
        Eval {
            root: Val::Undefined,
            vars: None,
            step_functions: false,
            depth: 0,
            limits,
            started: None,
            ticks: 0,
            now: now_millis,
            seed,
            rng: None,
            bound: Vec::new(),
        }
    }

    /// `$now()` and `$millis()`: milliseconds since the epoch, fixed for the evaluation.
    pub fn now_millis(&mut self) -> i64 {
        *self.now.get_or_insert_with(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        })
    }

    /// The random source of `$random()`, `$shuffle()`, `$uuid()`.
    pub fn rng(&mut self) -> &mut crate::random::Rng {
        if self.rng.is_none() {
            let seed = match self.seed {
                Some(s) => s,
                None => {
                    self.now_millis() as u64 ^ 0x9e37_79b9_7f4a_7c15 ^ (self as *const Eval as u64)
                }
            };
            self.rng = Some(crate::random::Rng::new(seed));
        }
        self.rng.get_or_insert_with(|| crate::random::Rng::new(0))
    }

    fn enter(&mut self, n: &Node) -> Result<()> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(Error::new(
                "U1001",
                "Stack overflow error: Check for non-terminating recursive function. Consider rewriting as tail-recursive.",
            )
            .at(n.pos));
        }
        self.ticks += 1;
        if self.ticks >= 4096 {
            self.ticks = 0;
            self.check_time(n.pos)?;
        }
        Ok(())
    }

    /// Called by long loops that do not evaluate nodes (ranges, sorting) too.
    pub fn check_time(&mut self, pos: usize) -> Result<()> {
        let started = *self.started.get_or_insert_with(Instant::now);
        if self.limits.time_limit_ms > 0
            && started.elapsed().as_millis() as u64 > self.limits.time_limit_ms
        {
            return Err(Error::new(
                "U1001",
                format!(
                    "Expression evaluation exceeded its time limit of {} ms: check for an infinite loop",
                    self.limits.time_limit_ms
                ),
            )
            .at(pos));
        }
        Ok(())
    }

    pub fn eval(&mut self, n: &Node, input: &Val, env: &Rc<Frame>) -> Result<Val> {
        self.enter(n)?;
        let r = self.eval_node(n, input, env);
        self.depth -= 1;
        if let Ok(v) = &r {
            self.charge(v, n.pos)?;
        }
        r
    }

    /// Counts a built value's size as work, so the time limit also ends a value that grows
    /// with each of a few steps (`$f([$s, $s])`), and ends one past the size limits.
    fn charge(&mut self, v: &Val, pos: usize) -> Result<()> {
        let size = match v {
            Val::Array(a) if a.items.len() > MAX_ITEMS => return Err(too_large(pos)),
            Val::Array(a) if a.depth > MAX_NESTING => return Err(too_deep(pos)),
            Val::Object(o) if o.depth.get() > MAX_NESTING => return Err(too_deep(pos)),
            Val::Array(a) => a.items.len() >> 4,
            Val::Str(s) if s.len() > MAX_STRING => return Err(too_large(pos)),
            Val::Str(s) => s.len() >> 6,
            _ => return Ok(()),
        };
        if size > 0 {
            self.ticks = self.ticks.saturating_add(size as u32);
            if self.ticks >= 4096 {
                self.ticks = 0;
                self.check_time(pos)?;
            }
        }
        Ok(())
    }

    fn eval_node(&mut self, n: &Node, input: &Val, env: &Rc<Frame>) -> Result<Val> {
        let mut result = match &n.kind {
            Kind::Path {
                steps,
                keep_singleton,
                simple: true,
            } => match self.walk_simple_path(steps, input, env) {
                Ok(v) => v,
                Err((from, seq)) => {
                    self.eval_path_from(n, steps, from, seq, *keep_singleton, env)?
                }
            },
            Kind::Path {
                steps,
                keep_singleton,
                ..
            } => self.eval_path(n, steps, *keep_singleton, input, env)?,
            Kind::Binary { op, lhs, rhs } => self.eval_binary(n, *op, lhs, rhs, input, env)?,
            Kind::Neg(e) => {
                let v = self.eval(e, input, env)?;
                match v {
                    Val::Undefined => Val::Undefined,
                    Val::Num(x) => Val::Num(-x),
                    other => {
                        return Err(Error::new(
                            "D1002",
                            format!(
                                "Cannot negate a non-numeric value: {}",
                                functions::describe(&other)
                            ),
                        )
                        .at(n.pos)
                        .token("-"));
                    }
                }
            }
            Kind::Array { items, cons } => {
                let mut out: Vec<Val> = Vec::new();
                for item in items {
                    let v = self.eval(item, input, env)?;
                    if v.is_undefined() {
                        continue;
                    }
                    if matches!(item.kind, Kind::Array { .. }) {
                        out.push(v);
                    } else if v.is_array() {
                        out.extend(v.items());
                    } else {
                        out.push(v);
                    }
                }
                Val::array_with(out, if *cons { flag::CONS } else { 0 })
            }
            Kind::Object(pairs) => self.eval_group_pairs(pairs, n.pos, input, env)?,
            Kind::Name(name) => lookup(input, name),
            Kind::Str(s) => Val::Str(s.clone()),
            Kind::Num(x) => Val::Num(*x),
            Kind::Bool(b) => Val::Bool(*b),
            Kind::Null => Val::Null,
            Kind::Wildcard => wildcard(input),
            Kind::Descendant => {
                if input.is_undefined() {
                    Val::Undefined
                } else {
                    let mut out = Vec::new();
                    descendants(input, &mut out);
                    if out.len() == 1 {
                        out.pop().unwrap_or_default()
                    } else {
                        Val::seq(out)
                    }
                }
            }
            Kind::Parent(label) => env.lookup(label).unwrap_or_default(),
            Kind::Condition {
                cond,
                then,
                otherwise,
            } => {
                let c = self.eval(cond, input, env)?;
                if functions::truthy(&c)? {
                    self.eval(then, input, env)?
                } else if let Some(o) = otherwise {
                    self.eval(o, input, env)?
                } else {
                    Val::Undefined
                }
            }
            Kind::Block { exprs, .. } => {
                let frame = Frame::child(env);
                let mut r = Val::Undefined;
                for e in exprs {
                    r = self.eval(e, input, &frame)?;
                }
                r
            }
            Kind::Bind { name, rhs } => {
                let v = self.eval(rhs, input, env)?;
                if matches!(v, Val::Func(_) | Val::Array(_) | Val::Object(_)) {
                    if self.bound.len() == self.bound.capacity() {
                        self.bound.retain(|f| f.strong_count() > 0);
                    }
                    self.bound.push(Rc::downgrade(env));
                }
                env.bind(name.clone(), v.clone());
                v
            }
            Kind::Regex(re) => Val::Func(Rc::new(Func::Regex(re.clone()))),
            Kind::Function {
                procedure,
                args,
                partial,
                builtin,
            } => {
                if *partial {
                    self.eval_partial(n, procedure, args, input, env)?
                } else if let Some(bi) = builtin
                    && let Kind::Variable(name, slot) = &procedure.kind
                    && !self.is_bound(env, name)
                    && !self.slot_holds(*slot)
                    && !(self.step_functions && name.as_str() == "eval")
                {
                    // Up to four arguments (every built-in but a few) sit on the stack.
                    let called = if args.len() <= 4 {
                        let mut evaluated: [Val; 4] = Default::default();
                        for (slot, a) in evaluated.iter_mut().zip(args) {
                            *slot = self.eval(a, input, env)?;
                        }
                        functions::call_builtin(self, *bi, &evaluated[..args.len()], input, env)
                    } else {
                        let mut evaluated = Vec::with_capacity(args.len());
                        for a in args {
                            evaluated.push(self.eval(a, input, env)?);
                        }
                        functions::call_builtin(self, *bi, &evaluated, input, env)
                    };
                    called.map_err(|e| e.at(n.pos).token(name.as_str()))?
                } else {
                    self.eval_function(n, procedure, args, input, env, None)?
                }
            }
            Kind::Placeholder => Val::Undefined,
            Kind::Variable(name, slot) => {
                if name.is_empty() {
                    match input {
                        Val::Array(a) if a.has(flag::OUTER_WRAPPER) => input.item(0),
                        _ => input.clone(),
                    }
                } else {
                    self.lookup_slot(env, name, *slot)
                }
            }
            Kind::Lambda(def) => Val::Func(Rc::new(Func::Lambda {
                def: def.clone(),
                env: env.clone(),
                input: input.clone(),
                params: None,
            })),
            Kind::Apply { lhs, rhs } => {
                let l = self.eval(lhs, input, env)?;
                if let Kind::Function {
                    procedure,
                    args,
                    partial: false,
                    ..
                } = &rhs.kind
                {
                    self.eval_function(rhs, procedure, args, input, env, Some(l))?
                } else {
                    let f = self.eval(rhs, input, env)?;
                    if !f.is_function() {
                        return Err(Error::new(
                            "T2006",
                            "The right side of the function application operator ~> must be a function",
                        )
                        .at(n.pos));
                    }
                    if l.is_function() {
                        Val::Func(Rc::new(Func::Chain { first: l, then: f }))
                    } else {
                        self.apply(&f, vec![l], &Val::Undefined, env, n.pos)?
                    }
                }
            }
            Kind::Transform(def) => Val::Func(Rc::new(Func::Transform {
                def: def.clone(),
                env: env.clone(),
            })),
            Kind::Sort { .. } => {
                let seq = if input.is_array() {
                    input.clone()
                } else {
                    seq_of(input)
                };
                self.eval_sort(n, &seq, env)?
            }
        };
        for stage in &n.predicate {
            if let Stage::Filter(expr) = stage {
                result = self.filter(expr, &result, env)?;
            }
        }
        if !matches!(n.kind, Kind::Path { .. })
            && let Some(g) = &n.group
        {
            result = self.eval_group(g, &result, env)?;
        }
        if let Val::Array(a) = &result
            && a.has(flag::SEQUENCE)
            && !a.has(flag::TUPLE_STREAM)
        {
            if n.keep_array {
                a.set(flag::KEEP_SINGLETON);
            }
            if a.items.is_empty() {
                return Ok(Val::Undefined);
            }
            if a.items.len() == 1 && !a.has(flag::KEEP_SINGLETON) {
                return Ok(a.items[0].clone());
            }
        }
        Ok(result)
    }

    /// Whether `name` is bound by the expression, the input (`$$`) or the surroundings.
    fn is_bound(&self, env: &Rc<Frame>, name: &str) -> bool {
        env.lookup(name).is_some()
            || name == "$"
            || self.vars.is_some_and(|v| v.get(name).is_some())
    }

    /// Whether a workflow variable's slot holds a value: then `$name` is that value, which
    /// shadows a built-in of the same name (as a binding does in jsonata-js).
    fn slot_holds(&self, slot: Option<u32>) -> bool {
        match (slot, self.vars) {
            (Some(slot), Some(vars)) => vars.slot(slot).is_some(),
            _ => false,
        }
    }

    /// A slot variable, or its member `next` names, as the surroundings hold it, when no
    /// binding of the expression shadows it and they can lend it without making a value:
    /// what was found (`None`: no such member) and how many steps that took.
    #[inline]
    fn held_slot(
        &self,
        env: &Rc<Frame>,
        name: &str,
        slot: u32,
        next: &Node,
    ) -> Option<(Option<&'v crate::json::Value>, usize)> {
        let vars: &'v dyn Variables = self.vars?;
        let held = match &next.kind {
            Kind::Name(key) => match vars.slot_member_ref(slot, key) {
                Some(member) => (member, 2),
                None => (Some(vars.slot_ref(slot)?), 1),
            },
            _ => (Some(vars.slot_ref(slot)?), 1),
        };
        env.lookup(name).is_none().then_some(held)
    }

    /// A variable with the slot the surroundings gave its name: the expression's own
    /// bindings first (they shadow), then the slot, without looking the name up outside.
    #[inline]
    fn lookup_slot(&self, env: &Rc<Frame>, name: &str, slot: Option<u32>) -> Val {
        if let Some(slot) = slot
            && let Some(vars) = self.vars
        {
            if let Some(v) = env.lookup(name) {
                return v;
            }
            return match vars.slot(slot) {
                Some(v) => Val::from_json(&v),
                None => Val::Undefined,
            };
        }
        self.lookup_var(env, name)
    }

    pub fn lookup_var(&self, env: &Rc<Frame>, name: &str) -> Val {
        if let Some(v) = env.lookup(name) {
            return v;
        }
        if name == "$" {
            return self.root.clone();
        }
        if let Some(vars) = self.vars
            && let Some(v) = vars.get(name)
        {
            return Val::from_json(&v);
        }
        if self.step_functions && name == "eval" {
            return Val::Undefined;
        }
        match functions::builtin(name) {
            Some(f) => f,
            None => Val::Undefined,
        }
    }

    /// A simple path (`$states.input.site.region`) walked through objects without making
    /// sequences. Where the walk meets an array, the general algorithm takes over from that
    /// step: `Err((step, input sequence))`.
    fn walk_simple_path(
        &mut self,
        steps: &[Node],
        input: &Val,
        env: &Rc<Frame>,
    ) -> std::result::Result<Val, (usize, Val)> {
        let mut cur;
        let mut from = 0;
        // A slot the surroundings hold as a JSON object is walked where it lies.
        let mut held: Option<&crate::json::Object> = None;
        match &steps[0].kind {
            Kind::Variable(name, Some(slot))
                if steps.len() > 1
                    && let Some((found, used)) = self.held_slot(env, name, *slot, &steps[1]) =>
            {
                let Some(found) = found else {
                    return Ok(Val::Undefined);
                };
                if used == steps.len() {
                    return Ok(Val::from_json(found));
                }
                cur = match found {
                    crate::json::Value::Object(o) => {
                        held = Some(o);
                        Val::Undefined
                    }
                    other => Val::from_json(other),
                };
                from = used;
            }
            Kind::Variable(name, slot) => {
                cur = if name.is_empty() {
                    match input {
                        Val::Array(a) if a.has(flag::OUTER_WRAPPER) => input.item(0),
                        _ => input.clone(),
                    }
                } else {
                    self.lookup_slot(env, name, *slot)
                };
                from = 1;
            }
            _ => cur = input.clone(),
        }
        // Through JSON objects by reference: no value is made for the steps in between.
        let root = match (held, &cur) {
            (Some(o), _) => Some(o),
            (None, Val::JObject(o)) => Some(&**o),
            _ => None,
        };
        if let Some(root) = root
            && from < steps.len()
        {
            let mut obj: &crate::json::Object = root;
            let mut i = from;
            let mut reached: Option<Val> = None;
            while i < steps.len() {
                let Kind::Name(key) = &steps[i].kind else {
                    break;
                };
                let found = match &steps[i].hint {
                    Some(hint) => hint.get(obj, key),
                    None => obj.get_key(key),
                };
                match found {
                    None => return Ok(Val::Undefined),
                    Some(crate::json::Value::Object(o)) if i + 1 < steps.len() => obj = o,
                    Some(v) => {
                        reached = Some(Val::from_json(v));
                        i += 1;
                        break;
                    }
                }
                i += 1;
            }
            match reached {
                Some(v) if i >= steps.len() => return Ok(v),
                Some(v) => {
                    cur = v;
                    from = i;
                }
                None => {
                    // Stopped on a step that is not a name (cannot happen in a simple
                    // path); resume generally from the object reached.
                    cur = Val::JObject(Arc::new(obj.clone()));
                    from = i;
                }
            }
        }
        for (i, step) in steps.iter().enumerate().skip(from) {
            let Kind::Name(key) = &step.kind else {
                return Err((i, seq_of(&cur)));
            };
            cur = match &cur {
                Val::JObject(o) => o.get_key(key).map(Val::from_json).unwrap_or_default(),
                Val::Object(o) => o.get(key).unwrap_or_default(),
                Val::Undefined => return Ok(Val::Undefined),
                Val::Array(_) | Val::JArray(_) => {
                    // As a path step's result, an array is flattened into the sequence the
                    // next step reads (unless an array constructor made it).
                    let seq = if i == 0 || cur.has_flag(flag::CONS) {
                        if i == 0 { cur.clone() } else { seq_of(&cur) }
                    } else {
                        Val::seq(cur.items())
                    };
                    return Err((i, seq));
                }
                _ => return Ok(Val::Undefined),
            };
        }
        Ok(cur)
    }

    fn eval_path(
        &mut self,
        n: &Node,
        steps: &[Node],
        keep_singleton: bool,
        input: &Val,
        env: &Rc<Frame>,
    ) -> Result<Val> {
        let input_seq = if matches!(steps.first().map(|s| &s.kind), Some(Kind::Variable(..))) {
            seq_of(input)
        } else if input.is_array() {
            input.clone()
        } else {
            seq_of(input)
        };
        self.eval_path_from(n, steps, 0, input_seq, keep_singleton, env)
    }

    /// jsonata-js's `evaluatePath` from step `start` on, reading `input_seq`.
    fn eval_path_from(
        &mut self,
        n: &Node,
        steps: &[Node],
        start: usize,
        mut input_seq: Val,
        keep_singleton: bool,
        env: &Rc<Frame>,
    ) -> Result<Val> {
        let mut result = Val::Undefined;
        let mut is_tuple = false;
        let mut tuples: Option<Vec<Val>> = None;
        let last = steps.len().saturating_sub(1);
        for (i, step) in steps.iter().enumerate().skip(start) {
            if step.tuple {
                is_tuple = true;
            }
            if i == 0 && matches!(step.kind, Kind::Array { cons: true, .. }) {
                result = self.eval(step, &input_seq, env)?;
            } else if is_tuple {
                tuples = Some(self.eval_tuple_step(step, &input_seq, tuples.take(), env)?);
            } else {
                result = self.eval_step(step, &input_seq, env, i == last)?;
            }
            if !is_tuple && (result.is_undefined() || (result.is_array() && result.is_empty())) {
                break;
            }
            if step.focus.is_none() {
                input_seq = result.clone();
            }
        }
        let mut stream = Val::Undefined;
        if is_tuple {
            let tuples = tuples.unwrap_or_default();
            if n.tuple {
                result = Val::array_with(tuples, flag::SEQUENCE | flag::TUPLE_STREAM);
            } else {
                result = Val::seq(tuples.iter().map(|t| tuple_get(t, "@")).collect());
                if n.group.is_some() {
                    stream = Val::array_with(tuples, flag::SEQUENCE | flag::TUPLE_STREAM);
                }
            }
        }
        if keep_singleton {
            if let Val::Array(a) = &result
                && a.has(flag::CONS)
                && !a.has(flag::SEQUENCE)
            {
                result = Val::seq(vec![result.clone()]);
            }
            if let Val::Array(a) = &result {
                a.set(flag::KEEP_SINGLETON);
            }
        }
        if let Some(g) = &n.group {
            let over = if is_tuple && !n.tuple {
                &stream
            } else {
                &result
            };
            result = self.eval_group(g, over, env)?;
        }
        Ok(result)
    }

    fn eval_step(
        &mut self,
        step: &Node,
        input: &Val,
        env: &Rc<Frame>,
        last_step: bool,
    ) -> Result<Val> {
        if matches!(step.kind, Kind::Sort { .. }) {
            let r = self.eval_sort(step, input, env)?;
            return self.eval_stages(&step.stages, r, env);
        }
        let mut results: Vec<Val> = Vec::new();
        let items = input.items();
        for item in &items {
            let mut r = self.eval(step, item, env)?;
            for stage in &step.stages {
                if let Stage::Filter(expr) = stage {
                    r = self.filter(expr, &r, env)?;
                }
            }
            if !r.is_undefined() {
                results.push(r);
            }
        }
        if last_step && results.len() == 1 && results[0].is_array() && !results[0].is_sequence() {
            return Ok(results.pop().unwrap_or_default());
        }
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            if !r.is_array() || r.has_flag(flag::CONS) {
                out.push(r);
            } else {
                out.extend(r.items());
                if out.len() > MAX_ITEMS {
                    return Err(too_large(step.pos));
                }
            }
        }
        Ok(Val::seq(out))
    }

    fn eval_stages(&mut self, stages: &[Stage], mut input: Val, env: &Rc<Frame>) -> Result<Val> {
        for stage in stages {
            match stage {
                Stage::Filter(expr) => input = self.filter(expr, &input, env)?,
                Stage::Index(name) => {
                    let items: Vec<Val> = input
                        .items()
                        .into_iter()
                        .enumerate()
                        .map(|(i, t)| with_binding(&t, name, Val::Num(i as f64)))
                        .collect();
                    input = Val::array_with(items, flag::SEQUENCE | flag::TUPLE_STREAM);
                }
            }
        }
        Ok(input)
    }

    fn eval_tuple_step(
        &mut self,
        step: &Node,
        input: &Val,
        tuples: Option<Vec<Val>>,
        env: &Rc<Frame>,
    ) -> Result<Vec<Val>> {
        if let Kind::Sort { .. } = step.kind {
            let result = match tuples {
                Some(t) => {
                    let ts = Val::array_with(t, flag::SEQUENCE | flag::TUPLE_STREAM);
                    self.eval_sort(step, &ts, env)?
                }
                None => {
                    let sorted = self.eval_sort(step, input, env)?;
                    let items: Vec<Val> = sorted
                        .items()
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| {
                            let mut entries = vec![(Str::new("@"), v)];
                            if let Some(ix) = &step.index {
                                entries.push((ix.clone(), Val::Num(i as f64)));
                            }
                            Val::object(entries)
                        })
                        .collect();
                    Val::array_with(items, flag::SEQUENCE | flag::TUPLE_STREAM)
                }
            };
            let r = self.eval_stages(&step.stages, result, env)?;
            return Ok(r.items());
        }
        let tuples = match tuples {
            Some(t) => t,
            None => input
                .items()
                .into_iter()
                .map(|v| Val::object(vec![(Str::new("@"), v)]))
                .collect(),
        };
        let mut out = Vec::new();
        for t in &tuples {
            let frame = frame_from_tuple(env, t);
            let context = tuple_get(t, "@");
            let res = self.eval(step, &context, &frame)?;
            if res.is_undefined() {
                continue;
            }
            let is_stream = res.has_flag(flag::TUPLE_STREAM);
            let items = if res.is_array() {
                res.items()
            } else {
                vec![res.clone()]
            };
            for (bb, item) in items.into_iter().enumerate() {
                let mut entries = t.entries();
                let mut set = |k: Str, v: Val| {
                    if let Some(slot) = entries.iter_mut().find(|(x, _)| *x == k) {
                        slot.1 = v;
                    } else {
                        entries.push((k, v));
                    }
                };
                if is_stream {
                    for (k, v) in item.entries() {
                        set(k, v);
                    }
                } else {
                    if let Some(focus) = &step.focus {
                        set(focus.clone(), item);
                        set(Str::new("@"), context.clone());
                    } else {
                        set(Str::new("@"), item);
                    }
                    if let Some(ix) = &step.index {
                        set(ix.clone(), Val::Num(bb as f64));
                    }
                    if let Some(label) = &step.ancestor_label {
                        set(label.clone(), context.clone());
                    }
                }
                out.push(Val::object(entries));
            }
        }
        let r = self.eval_stages(
            &step.stages,
            Val::array_with(out, flag::SEQUENCE | flag::TUPLE_STREAM),
            env,
        )?;
        Ok(r.items())
    }

    /// A predicate `[expr]` applied to a value: an index, or a filter.
    fn filter(&mut self, predicate: &Node, input: &Val, env: &Rc<Frame>) -> Result<Val> {
        let stream = input.has_flag(flag::TUPLE_STREAM);
        let flags = flag::SEQUENCE | if stream { flag::TUPLE_STREAM } else { 0 };
        let items = if input.is_array() {
            input.items()
        } else {
            vec![input.clone()]
        };
        if let Kind::Num(x) = predicate.kind
            && !predicate.folded
        {
            let mut index = x.floor();
            if index < 0.0 {
                index += items.len() as f64;
            }
            if index >= 0.0 && (index as usize) < items.len() {
                let item = items[index as usize].clone();
                if item.is_array() {
                    return Ok(item);
                }
                return Ok(Val::array_with(vec![item], flags));
            }
            return Ok(Val::array_with(Vec::new(), flags));
        }
        let mut out = Vec::new();
        let len = items.len();
        for (index, item) in items.into_iter().enumerate() {
            let (context, frame) = if stream {
                (tuple_get(&item, "@"), frame_from_tuple(env, &item))
            } else {
                (item.clone(), env.clone())
            };
            let res = self.eval(predicate, &context, &frame)?;
            let res = match res {
                Val::Num(x) => {
                    functions::check_finite(x)?;
                    Val::array(vec![Val::Num(x)])
                }
                r => r,
            };
            if res.is_array() && res.items().iter().all(|v| matches!(v, Val::Num(_))) {
                for v in res.items() {
                    let mut ii = v.as_num().unwrap_or(0.0).floor();
                    if ii < 0.0 {
                        ii += len as f64;
                    }
                    if ii == index as f64 {
                        out.push(item.clone());
                    }
                }
            } else if functions::truthy(&res)? {
                out.push(item);
            }
        }
        Ok(Val::array_with(out, flags))
    }

    fn eval_group(&mut self, g: &Group, input: &Val, env: &Rc<Frame>) -> Result<Val> {
        self.eval_group_pairs(&g.pairs, g.pos, input, env)
    }

    fn eval_group_pairs(
        &mut self,
        pairs: &[(Node, Node)],
        pos: usize,
        input: &Val,
        env: &Rc<Frame>,
    ) -> Result<Val> {
        let reduce = input.has_flag(flag::TUPLE_STREAM);
        if !reduce && !input.is_array() && distinct_literal_keys(pairs) {
            // One item and keys known to differ: every group is that item under one key,
            // in the pairs' order, so the grouping below would only rebuild this.
            let mut out: Vec<(Str, Val)> = Vec::with_capacity(pairs.len());
            for (k, v) in pairs {
                let Kind::Str(key) = &k.kind else {
                    unreachable!("distinct_literal_keys checked every key")
                };
                let v = self.eval(v, input, env)?;
                if !v.is_undefined() {
                    out.push((key.clone(), v));
                }
            }
            return Ok(Val::object(out));
        }
        let mut items = if input.is_array() {
            input.items()
        } else {
            vec![input.clone()]
        };
        if items.is_empty() {
            items.push(Val::Undefined);
        }
        // key -> (data, pair index), in first-seen order
        let mut groups: Vec<(Str, Val, usize)> = Vec::new();
        let mut index: std::collections::HashMap<Str, usize> = std::collections::HashMap::new();
        for item in &items {
            let frame = if reduce {
                frame_from_tuple(env, item)
            } else {
                env.clone()
            };
            let context = if reduce {
                tuple_get(item, "@")
            } else {
                item.clone()
            };
            for (pi, (kexpr, _)) in pairs.iter().enumerate() {
                let key = self.eval(kexpr, &context, &frame)?;
                let key = match key {
                    Val::Undefined => continue,
                    Val::Str(s) => s,
                    other => {
                        return Err(Error::new(
                            "T1003",
                            format!(
                                "Key in object structure must evaluate to a string; got: {}",
                                functions::describe(&other)
                            ),
                        )
                        .at(pos));
                    }
                };
                match index.get(&key) {
                    Some(&gi) => {
                        if groups[gi].2 != pi {
                            return Err(Error::new(
                                "D1009",
                                format!("Multiple key definitions evaluate to same key: {key}"),
                            )
                            .at(pos));
                        }
                        let data = std::mem::take(&mut groups[gi].1);
                        groups[gi].1 = functions::append(data, item.clone());
                    }
                    None => {
                        index.insert(key.clone(), groups.len());
                        groups.push((key, item.clone(), pi));
                    }
                }
            }
        }
        let mut out: Vec<(Str, Val)> = Vec::with_capacity(groups.len());
        for (key, data, pi) in groups {
            let (context, frame) = if reduce {
                let tuple = reduce_tuple_stream(&data);
                let context = tuple_get(&tuple, "@");
                let entries: Vec<(Str, Val)> = tuple
                    .entries()
                    .into_iter()
                    .filter(|(k, _)| k.as_str() != "@")
                    .collect();
                (context, frame_from_tuple(env, &Val::object(entries)))
            } else {
                (data, env.clone())
            };
            let v = self.eval(&pairs[pi].1, &context, &frame)?;
            if !v.is_undefined() {
                out.push((key, v));
            }
        }
        Ok(Val::object(out))
    }

    fn eval_sort(&mut self, n: &Node, input: &Val, env: &Rc<Frame>) -> Result<Val> {
        let Kind::Sort { terms } = &n.kind else {
            return Ok(input.clone());
        };
        let is_tuple = input.has_flag(flag::TUPLE_STREAM);
        let items = input.items();
        // Evaluate the sort keys once per item.
        let mut keyed: Vec<(Vec<Val>, Val)> = Vec::with_capacity(items.len());
        for item in items {
            let (context, frame) = if is_tuple {
                (tuple_get(&item, "@"), frame_from_tuple(env, &item))
            } else {
                (item.clone(), env.clone())
            };
            let mut keys = Vec::with_capacity(terms.len());
            for (t, _) in terms {
                keys.push(self.eval(t, &context, &frame)?);
            }
            keyed.push((keys, item));
        }
        let mut err: Option<Error> = None;
        let pos = n.pos;
        let cmp = |a: &(Vec<Val>, Val), b: &(Vec<Val>, Val)| -> std::cmp::Ordering {
            use std::cmp::Ordering;
            for (i, (_, descending)) in terms.iter().enumerate() {
                let (x, y) = (&a.0[i], &b.0[i]);
                let c = match (x, y) {
                    (Val::Undefined, Val::Undefined) => Ordering::Equal,
                    (Val::Undefined, _) => Ordering::Greater,
                    (_, Val::Undefined) => Ordering::Less,
                    (Val::Num(p), Val::Num(q)) => p.partial_cmp(q).unwrap_or(Ordering::Equal),
                    (Val::Str(p), Val::Str(q)) => functions::cmp_str(p, q),
                    (Val::Num(_) | Val::Str(_), Val::Num(_) | Val::Str(_)) => {
                        err.get_or_insert_with(|| {
                            Error::new(
                                "T2007",
                                "Type mismatch when comparing values in order-by clause",
                            )
                            .at(pos)
                        });
                        Ordering::Equal
                    }
                    _ => {
                        err.get_or_insert_with(|| {
                            Error::new("T2008", "The expressions within an order-by clause must evaluate to numeric or string values").at(pos)
                        });
                        Ordering::Equal
                    }
                };
                let c = if *descending
                    && !matches!((x, y), (Val::Undefined, _) | (_, Val::Undefined))
                {
                    c.reverse()
                } else {
                    c
                };
                if c != Ordering::Equal {
                    return c;
                }
            }
            Ordering::Equal
        };
        keyed.sort_by(cmp);
        if let Some(e) = err {
            return Err(e);
        }
        let flags = flag::SEQUENCE | if is_tuple { flag::TUPLE_STREAM } else { 0 };
        Ok(Val::array_with(
            keyed.into_iter().map(|(_, v)| v).collect(),
            flags,
        ))
    }

    fn eval_binary(
        &mut self,
        n: &Node,
        op: BinOp,
        lhs: &Node,
        rhs: &Node,
        input: &Val,
        env: &Rc<Frame>,
    ) -> Result<Val> {
        if op == BinOp::Concat && is_plain_concat(lhs) {
            // `a & b & c & ...` builds one string instead of one per operator.
            let mut s = String::with_capacity(64);
            self.concat_into(lhs, input, env, &mut s)?;
            self.concat_part(rhs, n.pos, input, env, &mut s)?;
            return Ok(Val::string(s));
        }
        let l = self.eval(lhs, input, env)?;
        match op {
            BinOp::And => {
                if !functions::truthy(&l)? {
                    return Ok(Val::Bool(false));
                }
                let r = self.eval(rhs, input, env)?;
                return Ok(Val::Bool(functions::truthy(&r)?));
            }
            BinOp::Or => {
                if functions::truthy(&l)? {
                    return Ok(Val::Bool(true));
                }
                let r = self.eval(rhs, input, env)?;
                return Ok(Val::Bool(functions::truthy(&r)?));
            }
            _ => {}
        }
        let r = self.eval(rhs, input, env)?;
        let pos = n.pos;
        let token = || match op {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Eq => "=",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Concat => "&",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::In => "in",
            BinOp::Range => "..",
        };
        Ok(match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                let ln = numeric(&l).map_err(|e| e.at(pos))?;
                if !l.is_undefined() && ln.is_none() {
                    return Err(Error::new(
                        "T2001",
                        format!(
                            "The left side of the {} operator must evaluate to a number",
                            token()
                        ),
                    )
                    .at(pos)
                    .token(token()));
                }
                let rn = numeric(&r).map_err(|e| e.at(pos))?;
                if !r.is_undefined() && rn.is_none() {
                    return Err(Error::new(
                        "T2002",
                        format!(
                            "The right side of the {} operator must evaluate to a number",
                            token()
                        ),
                    )
                    .at(pos)
                    .token(token()));
                }
                let (Some(a), Some(b)) = (ln, rn) else {
                    return Ok(Val::Undefined);
                };
                Val::Num(match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    _ => a % b,
                })
            }
            BinOp::Eq | BinOp::Ne => {
                if l.is_undefined() || r.is_undefined() {
                    return Ok(Val::Bool(false));
                }
                let eq = deep_equal(&l, &r);
                Val::Bool(if op == BinOp::Eq { eq } else { !eq })
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let comparable = |v: &Val| matches!(v, Val::Undefined | Val::Str(_) | Val::Num(_));
                if !comparable(&l) || !comparable(&r) {
                    return Err(Error::new(
                        "T2010",
                        format!("The expressions either side of operator \"{}\" must evaluate to numeric or string values", token()),
                    )
                    .at(pos)
                    .token(token()));
                }
                if l.is_undefined() || r.is_undefined() {
                    return Ok(Val::Undefined);
                }
                let ord = match (&l, &r) {
                    (Val::Num(a), Val::Num(b)) => a.partial_cmp(b),
                    (Val::Str(a), Val::Str(b)) => Some(functions::cmp_str(a, b)),
                    _ => {
                        return Err(Error::new(
                            "T2009",
                            format!("The values {} and {} either side of operator \"{}\" must be of the same data type", functions::describe(&l), functions::describe(&r), token()),
                        )
                        .at(pos)
                        .token(token()));
                    }
                };
                use std::cmp::Ordering::*;
                Val::Bool(match (op, ord) {
                    (_, None) => false,
                    (BinOp::Lt, Some(o)) => o == Less,
                    (BinOp::Le, Some(o)) => o != Greater,
                    (BinOp::Gt, Some(o)) => o == Greater,
                    (_, Some(o)) => o != Less,
                })
            }
            BinOp::Concat => {
                let mut s = String::new();
                functions::append_string(&mut s, &l).map_err(|e| e.at(pos))?;
                functions::append_string(&mut s, &r).map_err(|e| e.at(pos))?;
                Val::string(s)
            }
            BinOp::In => {
                if l.is_undefined() || r.is_undefined() {
                    return Ok(Val::Bool(false));
                }
                let items = if r.is_array() { r.items() } else { vec![r] };
                Val::Bool(items.iter().any(|v| functions::strict_equal(v, &l)))
            }
            BinOp::Range => {
                let int = |v: &Val| matches!(v, Val::Num(x) if x.fract() == 0.0 && x.is_finite());
                if !l.is_undefined() && !int(&l) {
                    return Err(Error::new(
                        "T2003",
                        "The left side of the range operator (..) must evaluate to an integer",
                    )
                    .at(pos)
                    .token(".."));
                }
                if !r.is_undefined() && !int(&r) {
                    return Err(Error::new(
                        "T2004",
                        "The right side of the range operator (..) must evaluate to an integer",
                    )
                    .at(pos)
                    .token(".."));
                }
                let (Val::Num(a), Val::Num(b)) = (l, r) else {
                    return Ok(Val::Undefined);
                };
                if a > b {
                    return Ok(Val::Undefined);
                }
                let size = b - a + 1.0;
                if size > 1e7 {
                    return Err(Error::new(
                        "D2014",
                        format!("The size of the sequence allocated by the range operator (..) must not exceed 1e7.  Attempted to allocate {}.", functions::num_text(size)),
                    )
                    .at(pos));
                }
                let mut out = Vec::with_capacity(size as usize);
                let mut x = a;
                while x <= b {
                    out.push(Val::Num(x));
                    x += 1.0;
                }
                Val::seq(out)
            }
            BinOp::And | BinOp::Or => Val::Undefined,
        })
    }

    /// Appends the string value of a chain of `&` operators to `out`.
    fn concat_into(
        &mut self,
        n: &Node,
        input: &Val,
        env: &Rc<Frame>,
        out: &mut String,
    ) -> Result<()> {
        if let Kind::Binary {
            op: BinOp::Concat,
            lhs,
            rhs,
        } = &n.kind
            && is_plain_concat(n)
        {
            self.concat_into(lhs, input, env, out)?;
            return self.concat_part(rhs, n.pos, input, env, out);
        }
        self.concat_part(n, n.pos, input, env, out)
    }

    /// One operand of `&` appended to `out`; `$string(x)` writes x's text straight in.
    fn concat_part(
        &mut self,
        n: &Node,
        pos: usize,
        input: &Val,
        env: &Rc<Frame>,
        out: &mut String,
    ) -> Result<()> {
        if let Kind::Function {
            procedure,
            args,
            partial: false,
            builtin: Some(bi),
        } = &n.kind
            && *bi == functions::STRING
            && let [arg] = args.as_slice()
            && !matches!(arg.kind, Kind::Placeholder)
            && let Kind::Variable(name, slot) = &procedure.kind
            && !self.is_bound(env, name)
            && !self.slot_holds(*slot)
        {
            let v = self.eval(arg, input, env)?;
            return functions::append_string(out, &v).map_err(|e| e.at(n.pos).token(name.as_str()));
        }
        let v = self.eval(n, input, env)?;
        functions::append_string(out, &v).map_err(|e| e.at(pos))
    }

    /// `name(...)` where `$name` is a function: the name, to suggest the missing `$`.
    fn forgot_dollar(&self, procedure: &Node, env: &Rc<Frame>) -> Option<Str> {
        let Kind::Path { steps, .. } = &procedure.kind else {
            return None;
        };
        let Some(Kind::Name(name)) = steps.first().map(|s| &s.kind) else {
            return None;
        };
        (!self.lookup_var(env, name).is_undefined()).then(|| name.clone())
    }

    fn eval_function(
        &mut self,
        n: &Node,
        procedure: &Node,
        args: &[Node],
        input: &Val,
        env: &Rc<Frame>,
        context: Option<Val>,
    ) -> Result<Val> {
        let proc = self.eval(procedure, input, env)?;
        let proc_name = procedure_name(procedure);
        if proc.is_undefined()
            && let Some(name) = self.forgot_dollar(procedure, env)
        {
            return Err(Error::new(
                "T1005",
                format!("Attempted to invoke a non-function. Did you mean ${name}?"),
            )
            .at(n.pos)
            .token(name.as_str()));
        }
        let mut evaluated = Vec::with_capacity(args.len() + 1);
        if let Some(c) = context {
            evaluated.push(c);
        }
        for a in args {
            evaluated.push(self.eval(a, input, env)?);
        }
        self.apply(&proc, evaluated, input, env, n.pos)
            .map_err(|e| match &proc_name {
                Some(name) => e.at(n.pos).token(name.clone()),
                None => e.at(n.pos),
            })
    }

    fn eval_partial(
        &mut self,
        n: &Node,
        procedure: &Node,
        args: &[Node],
        input: &Val,
        env: &Rc<Frame>,
    ) -> Result<Val> {
        let mut evaluated: Vec<Option<Val>> = Vec::with_capacity(args.len());
        for a in args {
            if matches!(a.kind, Kind::Placeholder) {
                evaluated.push(None);
            } else {
                evaluated.push(Some(self.eval(a, input, env)?));
            }
        }
        let proc = self.eval(procedure, input, env)?;
        let name = procedure_name(procedure);
        if proc.is_undefined()
            && let Some(nm) = self.forgot_dollar(procedure, env)
        {
            return Err(Error::new(
                "T1007",
                format!("Attempted to partially apply a non-function. Did you mean ${nm}?"),
            )
            .at(n.pos)
            .token(nm.as_str()));
        }
        match &proc {
            Val::Func(f) => {
                if let Func::Lambda {
                    def,
                    env: lenv,
                    input: linput,
                    params,
                } = &**f
                {
                    let frame = Frame::child(lenv);
                    let names = params.clone().unwrap_or_else(|| def.params.clone());
                    let mut open = Vec::new();
                    for (i, p) in names.iter().enumerate() {
                        match evaluated.get(i) {
                            Some(None) => open.push(p.clone()),
                            Some(Some(v)) => frame.bind(p.clone(), v.clone()),
                            None => frame.bind(p.clone(), Val::Undefined),
                        }
                    }
                    return Ok(Val::Func(Rc::new(Func::Lambda {
                        def: def.clone(),
                        env: frame,
                        input: linput.clone(),
                        params: Some(open),
                    })));
                }
                Ok(Val::Func(Rc::new(Func::Partial {
                    target: proc.clone(),
                    args: evaluated,
                })))
            }
            _ => Err(
                Error::new("T1008", "Attempted to partially apply a non-function")
                    .at(n.pos)
                    .token(name.unwrap_or_default()),
            ),
        }
    }

    /// Applies a function to arguments, running tail calls in a loop.
    pub fn apply(
        &mut self,
        f: &Val,
        args: Vec<Val>,
        input: &Val,
        env: &Rc<Frame>,
        pos: usize,
    ) -> Result<Val> {
        let mut result = self.apply_inner(f, args, input, env, pos)?;
        while let Some((def, lenv, linput)) = thunk_of(&result) {
            let Kind::Function {
                procedure, args, ..
            } = &def.body.kind
            else {
                break;
            };
            let next = self.eval(procedure, &linput, &lenv)?;
            let mut evaluated = Vec::with_capacity(args.len());
            for a in args {
                evaluated.push(self.eval(a, &linput, &lenv)?);
            }
            let tpos = procedure.pos;
            let name = procedure_name(procedure);
            result = self
                .apply_inner(&next, evaluated, input, env, tpos)
                .map_err(|e| match &name {
                    Some(n) => e.token(n.clone()),
                    None => e,
                })?;
        }
        Ok(result)
    }

    fn apply_inner(
        &mut self,
        f: &Val,
        args: Vec<Val>,
        input: &Val,
        env: &Rc<Frame>,
        pos: usize,
    ) -> Result<Val> {
        let Val::Func(func) = f else {
            return Err(Error::new("T1006", "Attempted to invoke a non-function").at(pos));
        };
        match &**func {
            Func::Builtin(b, sig) => {
                let args = sig.validate(&args, input).map_err(|e| e.at(pos))?;
                (b.imp)(self, &args, input, env).map_err(|e| e.at(pos))
            }
            Func::Lambda {
                def,
                env: lenv,
                input: linput,
                params,
            } => {
                let args = match &def.signature {
                    Some(sig) if params.is_none() => {
                        sig.validate(&args, input).map_err(|e| e.at(pos))?
                    }
                    _ => args,
                };
                let frame = Frame::child(lenv);
                let names = params.as_ref().unwrap_or(&def.params);
                for (i, p) in names.iter().enumerate() {
                    frame.bind(p.clone(), args.get(i).cloned().unwrap_or_default());
                }
                self.eval(&def.body, linput, &frame)
            }
            Func::Partial {
                target,
                args: fixed,
            } => {
                let mut supplied = args.into_iter();
                let full: Vec<Val> = fixed
                    .iter()
                    .map(|a| match a {
                        Some(v) => v.clone(),
                        None => supplied.next().unwrap_or_default(),
                    })
                    .collect();
                self.apply_inner(target, full, input, env, pos)
            }
            Func::Regex(re) => {
                let text = match args.first() {
                    Some(Val::Str(s)) => s.clone(),
                    _ => return Ok(Val::Undefined),
                };
                Ok(functions::regex_match_object(re, &text, 0))
            }
            Func::RegexNext { re, text, from } => {
                Ok(functions::regex_match_object(re, text, *from))
            }
            Func::Transform { def, env: tenv } => {
                let sig = functions::transform_signature();
                let args = sig.validate(&args, input).map_err(|e| e.at(pos))?;
                self.transform(def, args.into_iter().next().unwrap_or_default(), tenv)
            }
            Func::Chain { first, then } => {
                let mid = self.apply(first, args, input, env, pos)?;
                self.apply(then, vec![mid], input, env, pos)
            }
        }
    }

    /// Calls a function from a built-in (a higher-order function), passing as many of
    /// `args` as the function declares.
    pub fn call_hof(&mut self, f: &Val, args: &[Val]) -> Result<Val> {
        let arity = match f {
            Val::Func(func) => func.arity(),
            _ => args.len(),
        };
        let n = arity.max(1).min(args.len());
        let root = Frame::root();
        self.apply(f, args[..n].to_vec(), &Val::Undefined, &root, 0)
    }

    fn transform(&mut self, def: &TransformDef, obj: Val, env: &Rc<Frame>) -> Result<Val> {
        if obj.is_undefined() {
            return Ok(Val::Undefined);
        }
        let result = functions::deep_clone(&obj);
        let matches = self.eval(&def.pattern, &result, env)?;
        if !matches.is_undefined() {
            let list = if matches.is_array() {
                matches.items()
            } else {
                vec![matches]
            };
            for m in list {
                let update = self.eval(&def.update, &m, env)?;
                if !update.is_undefined() {
                    if !update.is_object() {
                        return Err(Error::new(
                            "T2011",
                            format!("The insert/update clause of the transform expression must evaluate to an object: {}", functions::describe(&update)),
                        )
                        .at(def.update.pos));
                    }
                    if let Val::Object(target) = &m {
                        for (k, v) in update.entries() {
                            // `| $ | {'me': $} |` would make the object contain itself
                            // (jsonata-js's result is circular, no JSON): it gets a copy.
                            let v = if reaches(&v, target) {
                                functions::deep_clone(&v)
                            } else {
                                v
                            };
                            target.insert(k, v);
                        }
                    }
                }
                if let Some(del) = &def.delete {
                    let deletions = self.eval(del, &m, env)?;
                    if !deletions.is_undefined() {
                        let list = if deletions.is_array() {
                            deletions.items()
                        } else {
                            vec![deletions.clone()]
                        };
                        if !list.iter().all(|v| matches!(v, Val::Str(_))) {
                            return Err(Error::new(
                                "T2012",
                                format!("The delete clause of the transform expression must evaluate to a string or array of strings: {}", functions::describe(&deletions)),
                            )
                            .at(del.pos));
                        }
                        if let Val::Object(target) = &m {
                            for k in list {
                                if let Some(k) = k.as_str() {
                                    target.remove(k);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(result)
    }
}

/// Whether `v` is or holds the built object `target` (a walk over built values, each once).
fn reaches(v: &Val, target: &Rc<super::value::Object>) -> bool {
    let mut todo = vec![v.clone()];
    let mut seen = std::collections::HashSet::new();
    while let Some(v) = todo.pop() {
        match &v {
            Val::Object(o) if Rc::ptr_eq(o, target) => return true,
            Val::Object(o) if seen.insert(Rc::as_ptr(o) as usize) => {
                todo.extend(o.entries.borrow().iter().map(|(_, x)| x.clone()));
            }
            Val::Array(a) if seen.insert(Rc::as_ptr(a) as usize) => {
                todo.extend(a.items.iter().cloned());
            }
            _ => {}
        }
    }
    false
}

/// Every key a string literal and no two equal (checked pairwise, so only for small
/// objects): an object constructor that cannot group or collide.
fn distinct_literal_keys(pairs: &[(Node, Node)]) -> bool {
    pairs.len() <= 16
        && pairs.iter().enumerate().all(|(i, (k, _))| match &k.kind {
            Kind::Str(key) => pairs[..i]
                .iter()
                .all(|(other, _)| !matches!(&other.kind, Kind::Str(o) if o == key)),
            _ => false,
        })
}

/// A `&` node with nothing applied to its result (no predicate, grouping or `[]`).
fn is_plain_concat(n: &Node) -> bool {
    matches!(
        n.kind,
        Kind::Binary {
            op: BinOp::Concat,
            ..
        }
    ) && n.predicate.is_empty()
        && n.group.is_none()
        && !n.keep_array
}

/// The parts of a tail-call thunk, when `v` is one.
fn thunk_of(v: &Val) -> Option<(Arc<LambdaDef>, Rc<Frame>, Val)> {
    match v {
        Val::Func(func) => match &**func {
            Func::Lambda {
                def, env, input, ..
            } if def.thunk => Some((def.clone(), env.clone(), input.clone())),
            _ => None,
        },
        _ => None,
    }
}

fn procedure_name(p: &Node) -> Option<String> {
    match &p.kind {
        Kind::Variable(v, _) => Some(v.to_string()),
        Kind::Path { steps, .. } => match steps.first().map(|s| &s.kind) {
            Some(Kind::Name(n)) => Some(n.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// `fn.lookup`: a field of an object, or of every object in an array (flattened).
pub fn lookup(input: &Val, key: &str) -> Val {
    match input {
        Val::Array(_) | Val::JArray(_) => {
            let mut out = Vec::new();
            for item in input.items() {
                let r = lookup(&item, key);
                if r.is_undefined() {
                    continue;
                }
                if r.is_array() {
                    out.extend(r.items());
                } else {
                    out.push(r);
                }
            }
            Val::seq(out)
        }
        Val::Object(_) | Val::JObject(_) => input.field(key),
        _ => Val::Undefined,
    }
}

fn wildcard(input: &Val) -> Val {
    let input = match input {
        Val::Array(a) if a.has(flag::OUTER_WRAPPER) && !a.items.is_empty() => a.items[0].clone(),
        v => v.clone(),
    };
    let mut out = Vec::new();
    let mut plain = false;
    let values: Vec<Val> = if input.is_object() {
        input.entries().into_iter().map(|(_, v)| v).collect()
    } else if input.is_array() {
        input.items()
    } else {
        Vec::new()
    };
    for v in values {
        if v.is_array() {
            flatten(&v, &mut out);
            plain = true;
        } else {
            out.push(v);
        }
    }
    if plain {
        Val::array(out)
    } else {
        Val::seq(out)
    }
}

pub fn flatten(v: &Val, out: &mut Vec<Val>) {
    if v.is_array() {
        for item in v.items() {
            flatten(&item, out);
        }
    } else {
        out.push(v.clone());
    }
}

fn descendants(v: &Val, out: &mut Vec<Val>) {
    if v.is_array() {
        for item in v.items() {
            descendants(&item, out);
        }
        return;
    }
    out.push(v.clone());
    if v.is_object() {
        for (_, child) in v.entries() {
            descendants(&child, out);
        }
    }
}

fn numeric(v: &Val) -> Result<Option<f64>> {
    match v {
        Val::Num(x) => {
            functions::check_finite(*x)?;
            Ok(Some(*x))
        }
        _ => Ok(None),
    }
}

fn frame_from_tuple(env: &Rc<Frame>, tuple: &Val) -> Rc<Frame> {
    let frame = Frame::child(env);
    for (k, v) in tuple.entries() {
        frame.bind(k, v);
    }
    frame
}

fn with_binding(t: &Val, name: &Str, v: Val) -> Val {
    let mut entries = t.entries();
    if let Some(slot) = entries.iter_mut().find(|(k, _)| k == name) {
        slot.1 = v;
    } else {
        entries.push((name.clone(), v));
    }
    Val::object(entries)
}

fn reduce_tuple_stream(data: &Val) -> Val {
    if !data.is_array() {
        return data.clone();
    }
    let items = data.items();
    let mut entries: Vec<(Str, Val)> = items.first().map(|t| t.entries()).unwrap_or_default();
    for t in items.iter().skip(1) {
        for (k, v) in t.entries() {
            if let Some(slot) = entries.iter_mut().find(|(x, _)| *x == k) {
                let cur = std::mem::take(&mut slot.1);
                slot.1 = functions::append(cur, v);
            } else {
                entries.push((k.clone(), functions::append(Val::Undefined, v)));
            }
        }
    }
    Val::object(entries)
}
