//! The JSONata parser: a Pratt parser over the tokenizer's tokens, with the binding powers and
//! error codes of jsonata-js 2.0.6, producing the raw syntax tree that `ast` then turns into
//! paths, steps, stages and ancestry slots.

use super::error::{Error, Result};
use super::lexer::{Lexer, Tok};
use super::signature::Signature;

/// The raw syntax tree, as written.
#[derive(Debug)]
pub enum Raw {
    Name(String),
    Variable(String),
    Str(String),
    Num(f64),
    Value(Option<bool>),
    Regex {
        pattern: String,
        flags: String,
    },
    /// `and`, `or`, `in` in an operand position (they are names there); `?` as a placeholder.
    Op(&'static str),
    End,
    Binary {
        op: &'static str,
        lhs: Box<RawNode>,
        rhs: Box<RawNode>,
    },
    Predicate {
        lhs: Box<RawNode>,
        rhs: Box<RawNode>,
    },
    Group {
        lhs: Box<RawNode>,
        pairs: Vec<(RawNode, RawNode)>,
    },
    Sort {
        lhs: Box<RawNode>,
        terms: Vec<(RawNode, bool)>,
    },
    Bind {
        lhs: Box<RawNode>,
        rhs: Box<RawNode>,
    },
    Focus {
        lhs: Box<RawNode>,
        var: String,
    },
    Index {
        lhs: Box<RawNode>,
        var: String,
    },
    Apply {
        lhs: Box<RawNode>,
        rhs: Box<RawNode>,
    },
    Neg(Box<RawNode>),
    ArrayCons(Vec<RawNode>),
    ObjectCons(Vec<(RawNode, RawNode)>),
    Function {
        procedure: Box<RawNode>,
        args: Vec<RawNode>,
        partial: bool,
    },
    Lambda {
        params: Vec<String>,
        signature: Option<Signature>,
        body: Box<RawNode>,
    },
    Condition {
        cond: Box<RawNode>,
        then: Box<RawNode>,
        otherwise: Option<Box<RawNode>>,
    },
    Transform {
        pattern: Box<RawNode>,
        update: Box<RawNode>,
        delete: Option<Box<RawNode>>,
    },
    Block(Vec<RawNode>),
    Wildcard,
    Descendant,
    Parent,
}

#[derive(Debug)]
pub struct RawNode {
    pub raw: Raw,
    pub pos: usize,
    pub keep_array: bool,
}

fn node(raw: Raw, pos: usize) -> RawNode {
    RawNode {
        raw,
        pos,
        keep_array: false,
    }
}

/// Deepest nesting the parser accepts; deeper text is refused rather than overflowing the
/// stack (a fuzzer finds `((((...` quickly).
const MAX_NESTING: usize = 400;

fn lbp(tok: &Tok) -> u32 {
    match tok {
        Tok::Op(op) => match *op {
            "." => 75,
            "[" | "(" | "@" | "#" => 80,
            "{" => 70,
            "?" => 20,
            "+" | "-" | "&" => 50,
            "*" | "/" | "%" => 60,
            "=" | "<" | ">" | "^" | "!=" | "<=" | ">=" | "~>" | "in" => 40,
            "and" => 30,
            "or" => 25,
            ":=" => 10,
            _ => 0,
        },
        _ => 0,
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Name(s) | Tok::Variable(s) | Tok::Str(s) => s.clone(),
        Tok::Num(n) => n.to_string(),
        Tok::Value(Some(b)) => b.to_string(),
        Tok::Value(None) => "null".to_string(),
        Tok::Regex { pattern, .. } => pattern.clone(),
        Tok::Op(o) => o.to_string(),
        Tok::End => "(end)".to_string(),
    }
}

struct Parser {
    lexer: Lexer,
    tok: Tok,
    pos: usize,
    depth: usize,
}

/// Parses JSONata text into its raw tree.
pub fn parse(text: &str) -> Result<RawNode> {
    let mut p = Parser {
        lexer: Lexer::new(text),
        tok: Tok::End,
        pos: 0,
        depth: 0,
    };
    p.advance(None, false)?;
    let expr = p.expression(0)?;
    if p.tok != Tok::End {
        return Err(
            Error::new("S0201", format!("Syntax error: {}", describe(&p.tok)))
                .at(p.pos)
                .token(describe(&p.tok)),
        );
    }
    Ok(expr)
}

impl Parser {
    fn is_op(&self, op: &str) -> bool {
        matches!(&self.tok, Tok::Op(o) if *o == op)
    }

    /// Checks that the current token is `expect` (when given) and reads the next one.
    fn advance(&mut self, expect: Option<&str>, infix: bool) -> Result<Tok> {
        if let Some(id) = expect
            && !self.is_op(id)
        {
            let (code, what) = if self.tok == Tok::End {
                ("S0203", format!("Expected {id} before end of expression"))
            } else {
                (
                    "S0202",
                    format!("Expected {id}, got {}", describe(&self.tok)),
                )
            };
            return Err(Error::new(code, what)
                .at(self.pos)
                .token(describe(&self.tok)));
        }
        let (tok, pos) = self.lexer.next(infix)?;
        if let Tok::Op(op) = &tok
            && matches!(*op, "!" | "~")
        {
            return Err(Error::new("S0204", format!("Unknown operator: {op}"))
                .at(pos)
                .token(*op));
        }
        let prev = std::mem::replace(&mut self.tok, tok);
        self.pos = pos;
        Ok(prev)
    }

    fn expression(&mut self, rbp: u32) -> Result<RawNode> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(Error::new("U1001", "Expression nested too deeply to parse").at(self.pos));
        }
        let pos = self.pos;
        let t = self.advance(None, true)?;
        let mut left = self.nud(t, pos)?;
        while rbp < lbp(&self.tok) {
            let pos = self.pos;
            let t = self.advance(None, false)?;
            left = self.led(t, pos, left)?;
        }
        self.depth -= 1;
        Ok(left)
    }

    fn nud(&mut self, t: Tok, pos: usize) -> Result<RawNode> {
        Ok(match t {
            Tok::Name(n) => node(Raw::Name(n), pos),
            Tok::Variable(n) => node(Raw::Variable(n), pos),
            Tok::Str(s) => node(Raw::Str(s), pos),
            Tok::Num(n) => node(Raw::Num(n), pos),
            Tok::Value(v) => node(Raw::Value(v), pos),
            Tok::Regex { pattern, flags } => node(Raw::Regex { pattern, flags }, pos),
            Tok::End => node(Raw::End, pos),
            Tok::Op(op) => match op {
                "and" | "or" | "in" => node(Raw::Op(op), pos),
                "-" => {
                    let e = self.expression(70)?;
                    node(Raw::Neg(Box::new(e)), pos)
                }
                "*" => node(Raw::Wildcard, pos),
                "**" => node(Raw::Descendant, pos),
                "%" => node(Raw::Parent, pos),
                "(" => {
                    let mut exprs = Vec::new();
                    while !self.is_op(")") {
                        exprs.push(self.expression(0)?);
                        if !self.is_op(";") {
                            break;
                        }
                        self.advance(Some(";"), false)?;
                    }
                    self.advance(Some(")"), true)?;
                    node(Raw::Block(exprs), pos)
                }
                "[" => {
                    let mut items = Vec::new();
                    if !self.is_op("]") {
                        loop {
                            let mut item = self.expression(0)?;
                            if self.is_op("..") {
                                let rpos = self.pos;
                                self.advance(Some(".."), false)?;
                                let rhs = self.expression(0)?;
                                item = node(
                                    Raw::Binary {
                                        op: "..",
                                        lhs: Box::new(item),
                                        rhs: Box::new(rhs),
                                    },
                                    rpos,
                                );
                            }
                            items.push(item);
                            if !self.is_op(",") {
                                break;
                            }
                            self.advance(Some(","), false)?;
                        }
                    }
                    self.advance(Some("]"), true)?;
                    node(Raw::ArrayCons(items), pos)
                }
                "{" => {
                    let pairs = self.object_pairs()?;
                    node(Raw::ObjectCons(pairs), pos)
                }
                "|" => {
                    let pattern = self.expression(0)?;
                    self.advance(Some("|"), false)?;
                    let update = self.expression(0)?;
                    let delete = if self.is_op(",") {
                        self.advance(Some(","), false)?;
                        Some(Box::new(self.expression(0)?))
                    } else {
                        None
                    };
                    self.advance(Some("|"), false)?;
                    node(
                        Raw::Transform {
                            pattern: Box::new(pattern),
                            update: Box::new(update),
                            delete,
                        },
                        pos,
                    )
                }
                _ => {
                    return Err(Error::new(
                        "S0211",
                        format!("The symbol {op} cannot be used as a unary operator"),
                    )
                    .at(pos)
                    .token(op));
                }
            },
        })
    }

    fn object_pairs(&mut self) -> Result<Vec<(RawNode, RawNode)>> {
        let mut pairs = Vec::new();
        if !self.is_op("}") {
            loop {
                let k = self.expression(0)?;
                self.advance(Some(":"), false)?;
                let v = self.expression(0)?;
                pairs.push((k, v));
                if !self.is_op(",") {
                    break;
                }
                self.advance(Some(","), false)?;
            }
        }
        self.advance(Some("}"), true)?;
        Ok(pairs)
    }

    fn led(&mut self, t: Tok, pos: usize, left: RawNode) -> Result<RawNode> {
        let Tok::Op(op) = t else {
            return Err(Error::new("S0201", format!("Syntax error: {}", describe(&t))).at(pos));
        };
        let bp = lbp(&Tok::Op(op));
        Ok(match op {
            "(" => {
                let mut args = Vec::new();
                let mut partial = false;
                if !self.is_op(")") {
                    loop {
                        if self.is_op("?") {
                            partial = true;
                            args.push(node(Raw::Op("?"), self.pos));
                            self.advance(Some("?"), false)?;
                        } else {
                            args.push(self.expression(0)?);
                        }
                        if !self.is_op(",") {
                            break;
                        }
                        self.advance(Some(","), false)?;
                    }
                }
                self.advance(Some(")"), true)?;
                if let Raw::Name(n) = &left.raw
                    && (n == "function" || n == "\u{3bb}")
                {
                    let mut params = Vec::new();
                    for (i, a) in args.iter().enumerate() {
                        match &a.raw {
                            Raw::Variable(v) => params.push(v.clone()),
                            _ => {
                                return Err(Error::new(
                                    "S0208",
                                    format!("Parameter {} of function definition must be a variable name (start with $)", i + 1),
                                )
                                .at(a.pos));
                            }
                        }
                    }
                    let mut signature = None;
                    if self.is_op("<") {
                        let sig_pos = self.pos;
                        let mut depth = 1;
                        let mut sig = String::from("<");
                        while depth > 0 && !self.is_op("{") && self.tok != Tok::End {
                            self.advance(None, false)?;
                            if self.is_op(">") {
                                depth -= 1;
                            } else if self.is_op("<") {
                                depth += 1;
                            }
                            sig.push_str(&describe(&self.tok));
                        }
                        self.advance(Some(">"), false)?;
                        signature = Some(Signature::parse(&sig).map_err(|e| {
                            let offset = e.position;
                            Error {
                                position: sig_pos + offset,
                                ..e
                            }
                        })?);
                    }
                    self.advance(Some("{"), false)?;
                    let body = self.expression(0)?;
                    self.advance(Some("}"), false)?;
                    return Ok(node(
                        Raw::Lambda {
                            params,
                            signature,
                            body: Box::new(body),
                        },
                        pos,
                    ));
                }
                node(
                    Raw::Function {
                        procedure: Box::new(left),
                        args,
                        partial,
                    },
                    pos,
                )
            }
            "[" => {
                if self.is_op("]") {
                    let mut left = left;
                    mark_keep_array(&mut left);
                    self.advance(Some("]"), false)?;
                    return Ok(left);
                }
                let rhs = self.expression(0)?;
                self.advance(Some("]"), true)?;
                node(
                    Raw::Predicate {
                        lhs: Box::new(left),
                        rhs: Box::new(rhs),
                    },
                    pos,
                )
            }
            "^" => {
                self.advance(Some("("), false)?;
                let mut terms = Vec::new();
                loop {
                    let mut descending = false;
                    if self.is_op("<") {
                        self.advance(Some("<"), false)?;
                    } else if self.is_op(">") {
                        descending = true;
                        self.advance(Some(">"), false)?;
                    }
                    let e = self.expression(0)?;
                    terms.push((e, descending));
                    if !self.is_op(",") {
                        break;
                    }
                    self.advance(Some(","), false)?;
                }
                self.advance(Some(")"), false)?;
                node(
                    Raw::Sort {
                        lhs: Box::new(left),
                        terms,
                    },
                    pos,
                )
            }
            "{" => {
                let pairs = self.object_pairs()?;
                node(
                    Raw::Group {
                        lhs: Box::new(left),
                        pairs,
                    },
                    pos,
                )
            }
            ":=" => {
                if !matches!(left.raw, Raw::Variable(_)) {
                    return Err(Error::new(
                        "S0212",
                        "The left side of := must be a variable name (start with $)",
                    )
                    .at(left.pos));
                }
                let rhs = self.expression(bp - 1)?;
                node(
                    Raw::Bind {
                        lhs: Box::new(left),
                        rhs: Box::new(rhs),
                    },
                    pos,
                )
            }
            "@" | "#" => {
                let rhs = self.expression(bp)?;
                let Raw::Variable(var) = rhs.raw else {
                    return Err(Error::new(
                        "S0214",
                        format!("The right side of {op} must be a variable name (start with $)"),
                    )
                    .at(rhs.pos)
                    .token(op));
                };
                let lhs = Box::new(left);
                if op == "@" {
                    node(Raw::Focus { lhs, var }, pos)
                } else {
                    node(Raw::Index { lhs, var }, pos)
                }
            }
            "?" => {
                let then = self.expression(0)?;
                let otherwise = if self.is_op(":") {
                    self.advance(Some(":"), false)?;
                    Some(Box::new(self.expression(0)?))
                } else {
                    None
                };
                node(
                    Raw::Condition {
                        cond: Box::new(left),
                        then: Box::new(then),
                        otherwise,
                    },
                    pos,
                )
            }
            "~>" => {
                let rhs = self.expression(bp)?;
                node(
                    Raw::Apply {
                        lhs: Box::new(left),
                        rhs: Box::new(rhs),
                    },
                    pos,
                )
            }
            _ => {
                let rhs = self.expression(bp)?;
                node(
                    Raw::Binary {
                        op,
                        lhs: Box::new(left),
                        rhs: Box::new(rhs),
                    },
                    pos,
                )
            }
        })
    }
}

/// `[]` after a step: the step (under any predicates) keeps singleton arrays.
fn mark_keep_array(n: &mut RawNode) {
    match &mut n.raw {
        Raw::Predicate { lhs, .. } => mark_keep_array(lhs),
        _ => n.keep_array = true,
    }
}
