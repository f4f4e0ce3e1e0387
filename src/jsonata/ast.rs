//! The processed syntax tree the evaluator runs: paths as lists of steps, predicates as stages,
//! focus (`@$v`) and index (`#$i`) bindings, group-by, sort steps, parent (`%`) references
//! resolved to the ancestor step they name, and lambda bodies with their tail calls marked,
//! following jsonata-js 2.0.6's `processAST` so that results agree case by case.

use std::sync::Arc;

use super::error::{Error, Result};
use super::parser::{Raw, RawNode};
use super::regex::JsRegex;
use super::signature::Signature;
use crate::json::Str;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Concat,
    And,
    Or,
    In,
    Range,
}

#[derive(Debug)]
pub enum Stage {
    Filter(Box<Node>),
    Index(Str),
}

#[derive(Debug)]
pub struct Group {
    pub pairs: Vec<(Node, Node)>,
    pub pos: usize,
}

#[derive(Debug)]
pub struct LambdaDef {
    pub params: Vec<Str>,
    pub signature: Option<Signature>,
    pub body: Node,
    pub thunk: bool,
}

#[derive(Debug)]
pub struct TransformDef {
    pub pattern: Node,
    pub update: Node,
    pub delete: Option<Node>,
}

#[derive(Debug)]
pub enum Kind {
    /// `simple`: every step a plain name (the first may be a variable) with no predicate,
    /// binding or grouping, so the evaluator can walk objects directly.
    Path {
        steps: Vec<Node>,
        keep_singleton: bool,
        simple: bool,
    },
    Binary {
        op: BinOp,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
    Neg(Box<Node>),
    Array {
        items: Vec<Node>,
        cons: bool,
    },
    Object(Vec<(Node, Node)>),
    Name(Str),
    Str(Str),
    Num(f64),
    Bool(bool),
    Null,
    Wildcard,
    Descendant,
    /// `%`: the label of the ancestor binding it reads.
    Parent(Str),
    Condition {
        cond: Box<Node>,
        then: Box<Node>,
        otherwise: Option<Box<Node>>,
    },
    Block {
        exprs: Vec<Node>,
        cons: bool,
    },
    Bind {
        name: Str,
        rhs: Box<Node>,
    },
    Regex(Arc<JsRegex>),
    /// `builtin`: the built-in that `$name` names, when nothing binds that name.
    Function {
        procedure: Box<Node>,
        args: Vec<Node>,
        partial: bool,
        builtin: Option<u16>,
    },
    Placeholder,
    /// `$name`; the slot, when the surroundings give this name one (a workflow variable).
    Variable(Str, Option<u32>),
    Lambda(Arc<LambdaDef>),
    Apply {
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
    Transform(Arc<TransformDef>),
    Sort {
        terms: Vec<(Node, bool)>,
    },
}

#[derive(Debug)]
pub struct Node {
    pub kind: Kind,
    pub pos: usize,
    pub keep_array: bool,
    /// Filters applied to the value of a node that is not a path step.
    pub predicate: Vec<Stage>,
    /// Filters and index bindings of a path step.
    pub stages: Vec<Stage>,
    pub group: Option<Box<Group>>,
    pub focus: Option<Str>,
    pub index: Option<Str>,
    pub tuple: bool,
    /// Slot (resolved to a label at the end) this step binds for a `%` below it.
    pub ancestor: Option<usize>,
    pub ancestor_label: Option<Str>,
    /// Parent slots still looking for their step.
    pub seeking_parent: Vec<usize>,
    /// A literal made by constant folding (`60 * 60`): as a predicate it still filters like
    /// the expression it was, not like a literal index.
    pub folded: bool,
    /// A name step of a simple path: where its key sat in the last JSON object this thread
    /// read it from (`jsonpath::Hint`), so that a lookup in an event of the same shape is one
    /// comparison.
    pub hint: Option<crate::jsonpath::Hint>,
}

impl Node {
    fn new(kind: Kind, pos: usize) -> Node {
        Node {
            kind,
            pos,
            keep_array: false,
            predicate: Vec::new(),
            stages: Vec::new(),
            group: None,
            focus: None,
            index: None,
            tuple: false,
            ancestor: None,
            ancestor_label: None,
            seeking_parent: Vec::new(),
            folded: false,
            hint: None,
        }
    }
    fn is_path(&self) -> bool {
        matches!(self.kind, Kind::Path { .. })
    }
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Path { .. } => "path",
            Kind::Binary { .. } => "binary",
            Kind::Neg(_) | Kind::Array { .. } | Kind::Object(_) => "unary",
            Kind::Name(_) => "name",
            Kind::Str(_) => "string",
            Kind::Num(_) => "number",
            Kind::Bool(_) | Kind::Null => "value",
            Kind::Wildcard => "wildcard",
            Kind::Descendant => "descendant",
            Kind::Parent(_) => "parent",
            Kind::Condition { .. } => "condition",
            Kind::Block { .. } => "block",
            Kind::Bind { .. } => "bind",
            Kind::Regex(_) => "regex",
            Kind::Function { partial: false, .. } => "function",
            Kind::Function { partial: true, .. } => "partial",
            Kind::Placeholder => "operator",
            Kind::Variable(..) => "variable",
            Kind::Lambda(_) => "lambda",
            Kind::Apply { .. } => "apply",
            Kind::Transform(_) => "transform",
            Kind::Sort { .. } => "sort",
        }
    }
}

struct Slot {
    label: u32,
    level: i32,
}

/// The processor: the ancestry slots of `%` operators, shared by reference in jsonata-js.
struct Processor<'r> {
    /// Slots of the names the surroundings provide (`compile_with`).
    outer: Option<super::SlotOf<'r>>,
    slots: Vec<Slot>,
    next_label: u32,
    /// Slot index of each `%` node, to resolve its label at the end.
    depth: usize,
}

/// Turns a raw tree into the evaluator's tree.
pub fn process(raw: RawNode, outer: Option<super::SlotOf<'_>>) -> Result<Node> {
    let mut p = Processor {
        outer,
        slots: Vec::new(),
        next_label: 0,
        depth: 0,
    };
    let mut node = p.process(raw)?;
    if matches!(node.kind, Kind::Parent(_)) || !node.seeking_parent.is_empty() {
        return Err(Error::new(
            "S0217",
            "The object representing the 'parent' cannot be derived from this expression",
        )
        .at(node.pos)
        .token(node.type_name()));
    }
    p.resolve(&mut node);
    Ok(node)
}

fn parent_slot(n: &Node) -> Option<usize> {
    if let Kind::Parent(label) = &n.kind {
        label
            .as_str()
            .strip_prefix('#')
            .and_then(|s| s.parse().ok())
    } else {
        None
    }
}

impl Processor<'_> {
    fn new_parent(&mut self, pos: usize) -> Node {
        let index = self.slots.len();
        self.slots.push(Slot {
            label: self.next_label,
            level: 1,
        });
        self.next_label += 1;
        // The slot index is kept in the label until `resolve` writes the final label.
        Node::new(Kind::Parent(Str::from(format!("#{index}"))), pos)
    }

    /// Writes the final ancestor labels into the tree.
    fn resolve(&self, n: &mut Node) {
        if let Some(slot) = parent_slot(n) {
            n.kind = Kind::Parent(Str::from(format!("!{}", self.slots[slot].label)));
        }
        if let Some(slot) = n.ancestor {
            n.ancestor_label = Some(Str::from(format!("!{}", self.slots[slot].label)));
        }
        let resolve_stages = |p: &Processor, stages: &mut Vec<Stage>| {
            for s in stages {
                if let Stage::Filter(expr) = s {
                    p.resolve(expr);
                }
            }
        };
        resolve_stages(self, &mut n.predicate);
        resolve_stages(self, &mut n.stages);
        if let Some(g) = &mut n.group {
            for (k, v) in &mut g.pairs {
                self.resolve(k);
                self.resolve(v);
            }
        }
        match &mut n.kind {
            Kind::Path { steps, .. } => steps.iter_mut().for_each(|s| self.resolve(s)),
            Kind::Binary { lhs, rhs, .. } | Kind::Apply { lhs, rhs } => {
                self.resolve(lhs);
                self.resolve(rhs);
            }
            Kind::Neg(e) | Kind::Bind { rhs: e, .. } => self.resolve(e),
            Kind::Array { items, .. } => items.iter_mut().for_each(|s| self.resolve(s)),
            Kind::Block { exprs, .. } => exprs.iter_mut().for_each(|s| self.resolve(s)),
            Kind::Object(pairs) => {
                for (k, v) in pairs {
                    self.resolve(k);
                    self.resolve(v);
                }
            }
            Kind::Condition {
                cond,
                then,
                otherwise,
            } => {
                self.resolve(cond);
                self.resolve(then);
                if let Some(o) = otherwise {
                    self.resolve(o);
                }
            }
            Kind::Function {
                procedure, args, ..
            } => {
                self.resolve(procedure);
                args.iter_mut().for_each(|s| self.resolve(s));
            }
            Kind::Lambda(def) => {
                if let Some(def) = Arc::get_mut(def) {
                    self.resolve(&mut def.body);
                }
            }
            Kind::Transform(def) => {
                if let Some(def) = Arc::get_mut(def) {
                    self.resolve(&mut def.pattern);
                    self.resolve(&mut def.update);
                    if let Some(d) = &mut def.delete {
                        self.resolve(d);
                    }
                }
            }
            Kind::Sort { terms } => terms.iter_mut().for_each(|(t, _)| self.resolve(t)),
            _ => {}
        }
        finish(n);
    }

    fn seek_parent(&mut self, n: &mut Node, slot: usize) -> Result<()> {
        match &mut n.kind {
            Kind::Name(_) | Kind::Wildcard => {
                self.slots[slot].level -= 1;
                if self.slots[slot].level == 0 {
                    match n.ancestor {
                        None => n.ancestor = Some(slot),
                        Some(existing) => {
                            // Reuse the label of the ancestor already bound here.
                            self.slots[slot].label = self.slots[existing].label;
                            n.ancestor = Some(slot);
                        }
                    }
                    n.tuple = true;
                }
            }
            Kind::Parent(_) => self.slots[slot].level += 1,
            Kind::Block { exprs, .. } => {
                if let Some(last) = exprs.last_mut() {
                    n.tuple = true;
                    self.seek_parent(last, slot)?;
                }
            }
            Kind::Path { steps, .. } => {
                n.tuple = true;
                let mut index = steps.len() as isize - 1;
                if index >= 0 {
                    self.seek_parent(&mut steps[index as usize], slot)?;
                    index -= 1;
                }
                while self.slots[slot].level > 0 && index >= 0 {
                    self.seek_parent(&mut steps[index as usize], slot)?;
                    index -= 1;
                }
            }
            _ => {
                return Err(Error::new(
                    "S0217",
                    format!(
                        "The object representing the 'parent' cannot be derived from this expression: {}",
                        n.type_name()
                    ),
                )
                .at(n.pos)
                .token(n.type_name()));
            }
        }
        Ok(())
    }

    fn push_ancestry(result: &mut Node, value: &Node) {
        let mut slots = value.seeking_parent.clone();
        if let Some(s) = parent_slot(value) {
            slots.push(s);
        }
        result.seeking_parent.extend(slots);
    }

    fn resolve_ancestry(&mut self, path: &mut Node) -> Result<()> {
        let Kind::Path { steps, .. } = &mut path.kind else {
            return Ok(());
        };
        let Some(last) = steps.last() else {
            return Ok(());
        };
        let mut slots = last.seeking_parent.clone();
        if let Some(s) = parent_slot(last) {
            slots.push(s);
        }
        let mut unresolved = Vec::new();
        for slot in slots {
            let mut index = steps.len() as isize - 2;
            while self.slots[slot].level > 0 {
                if index < 0 {
                    unresolved.push(slot);
                    break;
                }
                let mut si = index as usize;
                index -= 1;
                // Contiguous steps that bind the focus are skipped together.
                while index >= 0
                    && steps[si].focus.is_some()
                    && steps[index as usize].focus.is_some()
                {
                    si = index as usize;
                    index -= 1;
                }
                self.seek_parent(&mut steps[si], slot)?;
            }
        }
        path.seeking_parent.extend(unresolved);
        Ok(())
    }

    fn process(&mut self, raw: RawNode) -> Result<Node> {
        self.depth += 1;
        if self.depth > 1000 {
            return Err(Error::new("U1001", "Expression nested too deeply").at(raw.pos));
        }
        let r = self.process_inner(raw);
        self.depth -= 1;
        r
    }

    fn process_inner(&mut self, raw: RawNode) -> Result<Node> {
        let pos = raw.pos;
        let keep_array = raw.keep_array;
        let mut result = match raw.raw {
            Raw::Binary { op: ".", lhs, rhs } => {
                let lstep = self.process(*lhs)?;
                let mut result = if lstep.is_path() {
                    lstep
                } else {
                    let seeking = parent_slot(&lstep);
                    let mut p = Node::new(
                        Kind::Path {
                            steps: vec![lstep],
                            keep_singleton: false,
                            simple: false,
                        },
                        pos,
                    );
                    if let Some(s) = seeking {
                        p.seeking_parent = vec![s];
                    }
                    p
                };
                let mut rest = self.process(*rhs)?;
                if let Kind::Path { steps, .. } = &mut result.kind {
                    if let Kind::Path { steps: rsteps, .. } = &mut rest.kind {
                        steps.append(rsteps);
                    } else {
                        if !rest.predicate.is_empty() {
                            rest.stages = std::mem::take(&mut rest.predicate);
                        }
                        steps.push(rest);
                    }
                    for step in steps.iter_mut() {
                        match &step.kind {
                            Kind::Num(_) | Kind::Bool(_) | Kind::Null => {
                                return Err(Error::new(
                                    "S0213",
                                    format!("The literal value {} cannot be used as a step within a path expression", literal_text(step)),
                                )
                                .at(step.pos)
                                .token(literal_text(step)));
                            }
                            Kind::Str(s) => step.kind = Kind::Name(s.clone()),
                            _ => {}
                        }
                    }
                    let keep = steps.iter().any(|s| s.keep_array);
                    if let Some(first) = steps.first_mut()
                        && let Kind::Array { cons, .. } = &mut first.kind
                    {
                        *cons = true;
                    }
                    if let Some(last) = steps.last_mut()
                        && let Kind::Array { cons, .. } = &mut last.kind
                    {
                        *cons = true;
                    }
                    if keep && let Kind::Path { keep_singleton, .. } = &mut result.kind {
                        *keep_singleton = true;
                    }
                }
                self.resolve_ancestry(&mut result)?;
                result
            }
            Raw::Predicate { lhs, rhs } => {
                let mut result = self.process(*lhs)?;
                let is_path = result.is_path();
                let mut predicate = self.process(*rhs)?;
                {
                    let step: &mut Node = match &mut result.kind {
                        Kind::Path { steps, .. } if is_path => match steps.last_mut() {
                            Some(s) => s,
                            None => unreachable_step()?,
                        },
                        _ => &mut result,
                    };
                    if step.group.is_some() {
                        return Err(Error::new(
                            "S0209",
                            "A predicate cannot follow a grouping expression in a step",
                        )
                        .at(pos));
                    }
                    let seeking = std::mem::take(&mut predicate.seeking_parent);
                    let mut keep = Vec::new();
                    for slot in seeking {
                        if self.slots[slot].level == 1 {
                            self.seek_parent(step, slot)?;
                        } else {
                            self.slots[slot].level -= 1;
                        }
                        keep.push(slot);
                    }
                    step.seeking_parent.extend(keep.iter().copied());
                    if let Some(s) = parent_slot(&predicate) {
                        step.seeking_parent.push(s);
                    }
                    let stage = Stage::Filter(Box::new(predicate));
                    if is_path {
                        step.stages.push(stage);
                    } else {
                        step.predicate.push(stage);
                    }
                }
                result
            }
            Raw::Group { lhs, pairs } => {
                let mut result = self.process(*lhs)?;
                if result.group.is_some() {
                    return Err(Error::new(
                        "S0210",
                        "Each step can only have one grouping expression",
                    )
                    .at(pos));
                }
                let mut out = Vec::new();
                for (k, v) in pairs {
                    out.push((self.process(k)?, self.process(v)?));
                }
                result.group = Some(Box::new(Group { pairs: out, pos }));
                result
            }
            Raw::Sort { lhs, terms } => {
                let lhs = self.process(*lhs)?;
                let mut result = if lhs.is_path() {
                    lhs
                } else {
                    Node::new(
                        Kind::Path {
                            steps: vec![lhs],
                            keep_singleton: false,
                            simple: false,
                        },
                        pos,
                    )
                };
                let mut sort = Node::new(Kind::Sort { terms: Vec::new() }, pos);
                let mut out = Vec::new();
                for (t, descending) in terms {
                    let e = self.process(t)?;
                    Self::push_ancestry(&mut sort, &e);
                    out.push((e, descending));
                }
                sort.kind = Kind::Sort { terms: out };
                if let Kind::Path { steps, .. } = &mut result.kind {
                    steps.push(sort);
                }
                self.resolve_ancestry(&mut result)?;
                result
            }
            Raw::Bind { lhs, rhs } => {
                let Raw::Variable(name) = lhs.raw else {
                    return Err(Error::new(
                        "S0212",
                        "The left side of := must be a variable name (start with $)",
                    )
                    .at(pos));
                };
                let rhs = self.process(*rhs)?;
                let mut n = Node::new(Kind::Null, pos);
                Self::push_ancestry(&mut n, &rhs);
                n.kind = Kind::Bind {
                    name: Str::from(name),
                    rhs: Box::new(rhs),
                };
                n
            }
            Raw::Focus { lhs, var } => {
                let mut result = self.process(*lhs)?;
                let step: &mut Node = match &mut result.kind {
                    Kind::Path { steps, .. } => match steps.last_mut() {
                        Some(s) => s,
                        None => unreachable_step()?,
                    },
                    _ => &mut result,
                };
                if !step.stages.is_empty() || !step.predicate.is_empty() {
                    return Err(Error::new(
                        "S0215",
                        "A context variable binding must precede any predicates on a step",
                    )
                    .at(pos));
                }
                if matches!(step.kind, Kind::Sort { .. }) {
                    return Err(Error::new(
                        "S0216",
                        "A context variable binding must precede the 'order-by' clause on a step",
                    )
                    .at(pos));
                }
                if keep_array {
                    step.keep_array = true;
                }
                step.focus = Some(Str::from(var));
                step.tuple = true;
                result
            }
            Raw::Index { lhs, var } => {
                let mut result = self.process(*lhs)?;
                if !result.is_path() {
                    let mut inner = result;
                    if !inner.predicate.is_empty() {
                        inner.stages = std::mem::take(&mut inner.predicate);
                    }
                    result = Node::new(
                        Kind::Path {
                            steps: vec![inner],
                            keep_singleton: false,
                            simple: false,
                        },
                        pos,
                    );
                }
                if let Kind::Path { steps, .. } = &mut result.kind
                    && let Some(step) = steps.last_mut()
                {
                    if step.stages.is_empty() {
                        step.index = Some(Str::from(var));
                    } else {
                        step.stages.push(Stage::Index(Str::from(var)));
                    }
                    step.tuple = true;
                }
                result
            }
            Raw::Apply { lhs, rhs } => {
                let lhs = self.process(*lhs)?;
                let rhs = self.process(*rhs)?;
                let keep = lhs.keep_array || rhs.keep_array;
                let mut n = Node::new(
                    Kind::Apply {
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    },
                    pos,
                );
                n.keep_array = keep;
                n
            }
            Raw::Binary { op, lhs, rhs } => {
                let op = match op {
                    "+" => BinOp::Add,
                    "-" => BinOp::Sub,
                    "*" => BinOp::Mul,
                    "/" => BinOp::Div,
                    "%" => BinOp::Mod,
                    "=" => BinOp::Eq,
                    "!=" => BinOp::Ne,
                    "<" => BinOp::Lt,
                    "<=" => BinOp::Le,
                    ">" => BinOp::Gt,
                    ">=" => BinOp::Ge,
                    "&" => BinOp::Concat,
                    "and" => BinOp::And,
                    "or" => BinOp::Or,
                    "in" => BinOp::In,
                    ".." => BinOp::Range,
                    other => {
                        return Err(Error::new("S0201", format!("Syntax error: {other}"))
                            .at(pos)
                            .token(other));
                    }
                };
                let lhs = self.process(*lhs)?;
                let rhs = self.process(*rhs)?;
                let mut n = Node::new(Kind::Null, pos);
                Self::push_ancestry(&mut n, &lhs);
                Self::push_ancestry(&mut n, &rhs);
                n.kind = Kind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                };
                n
            }
            Raw::ArrayCons(items) => {
                let mut n = Node::new(Kind::Null, pos);
                let mut out = Vec::new();
                for i in items {
                    let v = self.process(i)?;
                    Self::push_ancestry(&mut n, &v);
                    out.push(v);
                }
                n.kind = Kind::Array {
                    items: out,
                    cons: false,
                };
                n
            }
            Raw::ObjectCons(pairs) => {
                let mut n = Node::new(Kind::Null, pos);
                let mut out = Vec::new();
                for (k, v) in pairs {
                    let k = self.process(k)?;
                    Self::push_ancestry(&mut n, &k);
                    let v = self.process(v)?;
                    Self::push_ancestry(&mut n, &v);
                    out.push((k, v));
                }
                n.kind = Kind::Object(out);
                n
            }
            Raw::Neg(e) => {
                let e = self.process(*e)?;
                if let Kind::Num(x) = e.kind {
                    let mut lit = e;
                    lit.kind = Kind::Num(-x);
                    lit
                } else {
                    let mut n = Node::new(Kind::Null, pos);
                    Self::push_ancestry(&mut n, &e);
                    n.kind = Kind::Neg(Box::new(e));
                    n
                }
            }
            Raw::Function {
                procedure,
                args,
                partial,
            } => {
                let mut n = Node::new(Kind::Null, pos);
                let mut out = Vec::new();
                for a in args {
                    let v = self.process(a)?;
                    Self::push_ancestry(&mut n, &v);
                    out.push(v);
                }
                let procedure = self.process(*procedure)?;
                n.kind = Kind::Function {
                    procedure: Box::new(procedure),
                    args: out,
                    partial,
                    builtin: None,
                };
                n
            }
            Raw::Lambda {
                params,
                signature,
                body,
            } => {
                let body = self.process(*body)?;
                let body = tail_call_optimize(body);
                Node::new(
                    Kind::Lambda(Arc::new(LambdaDef {
                        params: params.into_iter().map(Str::from).collect(),
                        signature,
                        body,
                        thunk: false,
                    })),
                    pos,
                )
            }
            Raw::Condition {
                cond,
                then,
                otherwise,
            } => {
                let mut n = Node::new(Kind::Null, pos);
                let cond = self.process(*cond)?;
                Self::push_ancestry(&mut n, &cond);
                let then = self.process(*then)?;
                Self::push_ancestry(&mut n, &then);
                let otherwise = match otherwise {
                    Some(o) => {
                        let o = self.process(*o)?;
                        Self::push_ancestry(&mut n, &o);
                        Some(Box::new(o))
                    }
                    None => None,
                };
                n.kind = Kind::Condition {
                    cond: Box::new(cond),
                    then: Box::new(then),
                    otherwise,
                };
                n
            }
            Raw::Transform {
                pattern,
                update,
                delete,
            } => {
                let pattern = self.process(*pattern)?;
                let update = self.process(*update)?;
                let delete = match delete {
                    Some(d) => Some(self.process(*d)?),
                    None => None,
                };
                Node::new(
                    Kind::Transform(Arc::new(TransformDef {
                        pattern,
                        update,
                        delete,
                    })),
                    pos,
                )
            }
            Raw::Block(exprs) => {
                let mut n = Node::new(Kind::Null, pos);
                let mut out = Vec::new();
                let mut cons = false;
                for e in exprs {
                    let part = self.process(e)?;
                    Self::push_ancestry(&mut n, &part);
                    let part_cons = match &part.kind {
                        Kind::Array { cons: true, .. } => true,
                        Kind::Block { cons: true, .. } => true,
                        Kind::Path { steps, .. } => {
                            matches!(
                                steps.first().map(|s| &s.kind),
                                Some(Kind::Array { cons: true, .. })
                            )
                        }
                        _ => false,
                    };
                    cons |= part_cons;
                    out.push(part);
                }
                n.kind = Kind::Block { exprs: out, cons };
                n
            }
            Raw::Name(name) => {
                let step = Node::new(Kind::Name(Str::from(name)), pos);
                let keep = keep_array;
                let mut step = step;
                step.keep_array = keep;
                Node::new(
                    Kind::Path {
                        steps: vec![step],
                        keep_singleton: keep,
                        simple: false,
                    },
                    pos,
                )
            }
            Raw::Parent => self.new_parent(pos),
            Raw::Str(s) => Node::new(Kind::Str(Str::from(s)), pos),
            Raw::Num(n) => Node::new(Kind::Num(n), pos),
            Raw::Value(Some(b)) => Node::new(Kind::Bool(b), pos),
            Raw::Value(None) => Node::new(Kind::Null, pos),
            Raw::Wildcard => Node::new(Kind::Wildcard, pos),
            Raw::Descendant => Node::new(Kind::Descendant, pos),
            Raw::Variable(v) => {
                let slot = match self.outer {
                    Some(f) if !v.is_empty() => f(&v),
                    _ => None,
                };
                Node::new(Kind::Variable(Str::from(v), slot), pos)
            }
            Raw::Regex { pattern, flags } => {
                let re = JsRegex::new(&pattern, &flags).map_err(|e| e.at(pos))?;
                Node::new(Kind::Regex(Arc::new(re)), pos)
            }
            Raw::Op("?") => Node::new(Kind::Placeholder, pos),
            Raw::Op(name) => {
                // `and`, `or`, `in` used as field names.
                let step = Node::new(Kind::Name(Str::new(name)), pos);
                Node::new(
                    Kind::Path {
                        steps: vec![step],
                        keep_singleton: false,
                        simple: false,
                    },
                    pos,
                )
            }
            Raw::End => {
                return Err(Error::new("S0207", "Unexpected end of expression").at(pos));
            }
        };
        if keep_array {
            result.keep_array = true;
        }
        Ok(result)
    }
}

/// Marks what the evaluator can take a shorter way: simple paths, calls of built-ins.
fn finish(n: &mut Node) {
    let plain = |s: &Node| {
        s.stages.is_empty()
            && s.predicate.is_empty()
            && s.group.is_none()
            && s.focus.is_none()
            && s.index.is_none()
            && !s.tuple
            && !s.keep_array
            && s.ancestor.is_none()
    };
    let whole_plain = plain(n);
    if whole_plain && let Some(k) = fold(n) {
        n.kind = k;
        n.folded = true;
        return;
    }
    match &mut n.kind {
        Kind::Path {
            steps,
            keep_singleton,
            simple,
        } => {
            *simple = whole_plain
                && !*keep_singleton
                && !steps.is_empty()
                && steps.iter().enumerate().all(|(i, s)| {
                    plain(s)
                        && match &s.kind {
                            Kind::Name(_) => true,
                            Kind::Variable(..) => i == 0,
                            _ => false,
                        }
                });
            if *simple {
                for s in steps.iter_mut() {
                    if matches!(s.kind, Kind::Name(_)) && s.hint.is_none() {
                        s.hint = Some(Default::default());
                    }
                }
            }
        }
        Kind::Function {
            procedure,
            partial: false,
            builtin,
            ..
        } => {
            if let Kind::Variable(name, _) = &procedure.kind
                && plain(procedure)
            {
                *builtin = super::functions::builtin_index(name);
            }
        }
        _ => {}
    }
}

/// Constant folding: an operator whose operands are literals becomes the literal it
/// yields, when that cannot fail (a type error or an infinite result is left to run time,
/// so that it reports as it would).
fn fold(n: &Node) -> Option<Kind> {
    let Kind::Binary { op, lhs, rhs } = &n.kind else {
        return None;
    };
    let literal = |x: &Node| {
        x.predicate.is_empty() && x.stages.is_empty() && x.group.is_none() && !x.keep_array
    };
    if !literal(lhs) || !literal(rhs) {
        return None;
    }
    Some(match (&lhs.kind, &rhs.kind) {
        (Kind::Num(a), Kind::Num(b)) => {
            let (a, b) = (*a, *b);
            let r = match op {
                BinOp::Add => Kind::Num(a + b),
                BinOp::Sub => Kind::Num(a - b),
                BinOp::Mul => Kind::Num(a * b),
                BinOp::Div => Kind::Num(a / b),
                BinOp::Mod => Kind::Num(a % b),
                BinOp::Eq => Kind::Bool(a == b),
                BinOp::Ne => Kind::Bool(a != b),
                BinOp::Lt => Kind::Bool(a < b),
                BinOp::Le => Kind::Bool(a <= b),
                BinOp::Gt => Kind::Bool(a > b),
                BinOp::Ge => Kind::Bool(a >= b),
                _ => return None,
            };
            if let Kind::Num(x) = r
                && !x.is_finite()
            {
                return None;
            }
            r
        }
        (Kind::Str(a), Kind::Str(b)) => match op {
            BinOp::Concat => Kind::Str(Str::from(format!("{a}{b}"))),
            BinOp::Eq => Kind::Bool(a == b),
            BinOp::Ne => Kind::Bool(a != b),
            _ => return None,
        },
        _ => return None,
    })
}

fn unreachable_step<'a>() -> Result<&'a mut Node> {
    Err(Error::new("S0201", "Syntax error: an empty path"))
}

fn literal_text(n: &Node) -> String {
    match &n.kind {
        Kind::Num(x) => super::numfmt::js_number_to_string(*x),
        Kind::Bool(b) => b.to_string(),
        Kind::Null => "null".to_string(),
        _ => String::new(),
    }
}

/// Marks calls in tail position of a lambda body as thunks, so that the trampoline in
/// `apply` runs them without growing the stack.
fn tail_call_optimize(mut expr: Node) -> Node {
    match &mut expr.kind {
        Kind::Function { partial: false, .. } if expr.predicate.is_empty() => {
            let pos = expr.pos;
            Node::new(
                Kind::Lambda(Arc::new(LambdaDef {
                    params: Vec::new(),
                    signature: None,
                    body: expr,
                    thunk: true,
                })),
                pos,
            )
        }
        Kind::Condition {
            then, otherwise, ..
        } => {
            let t = std::mem::replace(then.as_mut(), Node::new(Kind::Null, 0));
            **then = tail_call_optimize(t);
            if let Some(o) = otherwise {
                let e = std::mem::replace(o.as_mut(), Node::new(Kind::Null, 0));
                **o = tail_call_optimize(e);
            }
            expr
        }
        Kind::Block { exprs, .. } => {
            if let Some(last) = exprs.pop() {
                exprs.push(tail_call_optimize(last));
            }
            expr
        }
        _ => expr,
    }
}

/// Names read from the expression's own input at the top level (`phone` in `phone & 'x'`,
/// but not in `$states.input.phone` nor inside a predicate or a later path step). Step
/// Functions evaluates with no input, so it refuses these at definition time.
pub fn top_level_names(n: &Node, out: &mut Vec<String>) {
    visit(n, true, out);
}

fn visit(n: &Node, top: bool, out: &mut Vec<String>) {
    for s in n.predicate.iter().chain(&n.stages) {
        if let Stage::Filter(f) = s {
            visit(f, false, out);
        }
    }
    if let Some(g) = &n.group {
        for (k, v) in &g.pairs {
            visit(k, false, out);
            visit(v, false, out);
        }
    }
    match &n.kind {
        Kind::Path { steps, .. } => {
            for (i, s) in steps.iter().enumerate() {
                visit(s, top && i == 0, out);
            }
        }
        Kind::Name(name) if top && !out.iter().any(|o| o == name.as_str()) => {
            out.push(name.to_string());
        }
        Kind::Binary { lhs, rhs, .. } | Kind::Apply { lhs, rhs } => {
            visit(lhs, top, out);
            visit(rhs, top, out);
        }
        Kind::Neg(x) => visit(x, top, out),
        Kind::Array { items, .. } | Kind::Block { exprs: items, .. } => {
            items.iter().for_each(|i| visit(i, top, out))
        }
        Kind::Object(pairs) => {
            for (k, v) in pairs {
                visit(k, top, out);
                visit(v, top, out);
            }
        }
        Kind::Condition {
            cond,
            then,
            otherwise,
        } => {
            visit(cond, top, out);
            visit(then, top, out);
            if let Some(o) = otherwise {
                visit(o, top, out);
            }
        }
        Kind::Bind { rhs, .. } => visit(rhs, top, out),
        Kind::Function {
            procedure, args, ..
        } => {
            visit(procedure, top, out);
            args.iter().for_each(|a| visit(a, top, out));
        }
        Kind::Lambda(def) => visit(&def.body, top, out),
        Kind::Transform(def) => {
            visit(&def.pattern, false, out);
            visit(&def.update, false, out);
            if let Some(d) = &def.delete {
                visit(d, false, out);
            }
        }
        Kind::Sort { terms } => terms.iter().for_each(|(t, _)| visit(t, false, out)),
        _ => {}
    }
}
