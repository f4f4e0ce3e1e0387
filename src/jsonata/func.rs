//! Function values and variable frames. A function is a built-in (a Rust fn with its
//! signature), a lambda closed over its frame and input, a partial application, a regex, a
//! transform (`| pattern | update |`) or a chain (`$f ~> $g`).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::ast::{LambdaDef, TransformDef};
use super::error::Result;
use super::eval::Eval;
use super::regex::JsRegex;
use super::signature::Signature;
use super::value::Val;
use crate::json::Str;

/// A built-in function: what `$name` finds when no variable of that name is bound.
pub struct Builtin {
    pub name: &'static str,
    /// The signature text as jsonata-js declares it (`<s-nn?:s>`), parsed once.
    pub signature: &'static str,
    /// How many arguments the JavaScript implementation declares: what a higher-order
    /// function passes to it (`$map(xs, $round)` passes the index as the precision).
    pub arity: usize,
    pub imp: fn(&mut Eval, &[Val], &Val, &Rc<Frame>) -> Result<Val>,
}

impl std::fmt::Debug for Builtin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${}", self.name)
    }
}

pub enum Func {
    Builtin(&'static Builtin, &'static Signature),
    Lambda {
        def: Arc<LambdaDef>,
        env: Rc<Frame>,
        input: Val,
        /// Parameters already bound by a partial application live in `env`; these are the
        /// ones still open (all of `def.params` for an ordinary lambda).
        params: Option<Vec<Str>>,
    },
    /// A built-in or other function with some arguments fixed (`None` is a `?` placeholder).
    Partial {
        target: Val,
        args: Vec<Option<Val>>,
    },
    Regex(Arc<JsRegex>),
    /// The `next` of a regex match object: the same regex from a later offset.
    RegexNext {
        re: Arc<JsRegex>,
        text: Str,
        from: usize,
    },
    Transform {
        def: Arc<TransformDef>,
        env: Rc<Frame>,
    },
    Chain {
        first: Val,
        then: Val,
    },
}

impl Func {
    /// The number of arguments a higher-order function passes to this function.
    pub fn arity(&self) -> usize {
        match self {
            Func::Builtin(b, _) => b.arity,
            Func::Lambda { def, params, .. } => {
                params.as_ref().map_or(def.params.len(), |p| p.len())
            }
            Func::Partial { args, .. } => args.iter().filter(|a| a.is_none()).count(),
            Func::Regex(_) => 2,
            Func::RegexNext { .. } => 0,
            Func::Transform { .. } | Func::Chain { .. } => 1,
        }
    }
}

/// A frame of variable bindings, with its enclosing frame.
pub struct Frame {
    vars: RefCell<Vec<(Str, Val)>>,
    parent: Option<Rc<Frame>>,
}

impl Frame {
    pub fn root() -> Rc<Frame> {
        Rc::new(Frame {
            vars: RefCell::new(Vec::new()),
            parent: None,
        })
    }
    pub fn child(parent: &Rc<Frame>) -> Rc<Frame> {
        Rc::new(Frame {
            vars: RefCell::new(Vec::new()),
            parent: Some(parent.clone()),
        })
    }
    /// A root frame holding `vars`, whose names are distinct.
    pub fn root_with(vars: Vec<(Str, Val)>) -> Rc<Frame> {
        Rc::new(Frame {
            vars: RefCell::new(vars),
            parent: None,
        })
    }
    /// Drops every binding (what ends a cycle of a frame and a lambda closed over it).
    pub fn clear(&self) {
        let vars = std::mem::take(&mut *self.vars.borrow_mut());
        drop(vars);
    }
    pub fn bind(&self, name: Str, value: Val) {
        let mut vars = self.vars.borrow_mut();
        if let Some(slot) = vars.iter_mut().find(|(k, _)| *k == name) {
            slot.1 = value;
        } else {
            vars.push((name, value));
        }
    }
    pub fn lookup(&self, name: &str) -> Option<Val> {
        let mut frame = self;
        loop {
            if let Some((_, v)) = frame.vars.borrow().iter().find(|(k, _)| k.as_str() == name) {
                return Some(v.clone());
            }
            match &frame.parent {
                Some(p) => frame = p,
                None => return None,
            }
        }
    }
}
