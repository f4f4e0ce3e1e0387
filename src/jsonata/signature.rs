//! Function signatures (`<s-nn?:s>`): parsed once, then used to check and fix up the arguments
//! of every call, as jsonata-js does: a missing argument marked `-` takes the context value, a
//! single value where an array is expected is wrapped, and a mismatch names the argument.

use super::error::{Error, Result};
use super::value::Val;

impl std::fmt::Debug for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::functions::describe(self))
    }
}

/// One parameter: the type symbols it accepts and how many arguments it takes.
#[derive(Clone, Debug)]
struct Param {
    /// Accepted symbols (`s`, `n`, `b`, `l`, `a`, `o`, `f`, and `m` for a missing argument).
    accepts: Vec<u8>,
    /// The parameter's own type letter (`a` for arrays, `(` for a choice).
    kind: u8,
    optional: bool,
    repeated: bool,
    /// `-`: when missing, the context value is used (if it has an accepted type).
    context: bool,
    /// For `a<n>`: the type every item must have.
    subtype: Option<u8>,
}

/// A parsed signature.
#[derive(Clone, Debug)]
pub struct Signature {
    params: Vec<Param>,
    pub text: String,
}

fn symbol_of(v: &Val) -> u8 {
    match v {
        Val::Func(_) => b'f',
        Val::Str(_) => b's',
        Val::Num(_) => b'n',
        Val::Bool(_) => b'b',
        Val::Null => b'l',
        Val::Array(_) | Val::JArray(_) => b'a',
        Val::Object(_) | Val::JObject(_) => b'o',
        Val::Undefined => b'm',
    }
}

impl Signature {
    /// Parses `<...>`. Errors carry the character offset inside the signature.
    pub fn parse(text: &str) -> Result<Signature> {
        let chars: Vec<char> = text.chars().collect();
        let mut params: Vec<Param> = Vec::new();
        let mut i = 1;
        while i < chars.len() {
            let c = chars[i];
            if c == ':' {
                break;
            }
            let simple = |accepts: &str, kind: u8| Param {
                accepts: accepts.bytes().collect(),
                kind,
                optional: false,
                repeated: false,
                context: false,
                subtype: None,
            };
            match c {
                's' | 'n' | 'b' | 'l' | 'o' => {
                    let mut s = String::new();
                    s.push(c);
                    s.push('m');
                    params.push(simple(&s, c as u8));
                }
                'a' => params.push(simple("asnblfom", b'a')),
                'f' => params.push(simple("f", b'f')),
                'j' => params.push(simple("asnblom", b'j')),
                'x' => params.push(simple("asnblfom", b'x')),
                '-' => {
                    if let Some(p) = params.last_mut() {
                        p.context = true;
                        p.optional = true;
                    }
                }
                '?' => {
                    if let Some(p) = params.last_mut() {
                        p.optional = true;
                    }
                }
                '+' => {
                    if let Some(p) = params.last_mut() {
                        p.repeated = true;
                    }
                }
                '(' => {
                    let end = closing(&chars, i, '(', ')');
                    let choice: String = chars[i + 1..end.min(chars.len())].iter().collect();
                    if choice.contains('<') {
                        return Err(Error::new(
                            "S0402",
                            format!("Choice groups containing parameterized types are not supported: {choice}"),
                        )
                        .at(i));
                    }
                    let mut accepts: Vec<u8> = choice.bytes().collect();
                    accepts.push(b'm');
                    params.push(Param {
                        accepts,
                        kind: b'(',
                        optional: false,
                        repeated: false,
                        context: false,
                        subtype: None,
                    });
                    i = end;
                }
                '<' => {
                    let ok = matches!(params.last(), Some(p) if p.kind == b'a' || p.kind == b'f');
                    if !ok {
                        let ty = params
                            .last()
                            .map(|p| (p.kind as char).to_string())
                            .unwrap_or_default();
                        return Err(Error::new(
                            "S0401",
                            format!(
                                "Type parameters can only be applied to functions and arrays: {ty}"
                            ),
                        )
                        .at(i));
                    }
                    let end = closing(&chars, i, '<', '>');
                    let sub: String = chars[i + 1..end.min(chars.len())].iter().collect();
                    if let Some(p) = params.last_mut()
                        && p.kind == b'a'
                    {
                        p.subtype = sub.bytes().next();
                    }
                    i = end;
                }
                _ => {}
            }
            i += 1;
        }
        Ok(Signature {
            params,
            text: text.to_string(),
        })
    }

    /// Whether `args` pass as they are: each of a type its parameter takes, none to be
    /// wrapped, filled in from the context or checked item by item (`validate` does those).
    pub fn passes(&self, args: &[Val]) -> bool {
        args.len() <= self.params.len()
            && self.params.iter().zip(args).all(|(p, a)| {
                let s = symbol_of(a);
                // An array given for an array parameter without an item type passes as it
                // is; anything else for one is wrapped or checked by `validate`.
                let as_is = p.kind != b'a' || (s == b'a' && p.subtype.is_none());
                s != b'm' && !p.repeated && as_is && p.accepts.contains(&s)
            })
            && self.params[args.len()..]
                .iter()
                .all(|p| p.optional && !p.context)
    }

    /// Checks `args` against the signature and returns them fixed up: context values put in
    /// for missing `-` arguments, single values wrapped where an array is expected.
    pub fn validate(&self, args: &[Val], context: &Val) -> Result<Vec<Val>> {
        let symbols: Vec<u8> = args.iter().map(symbol_of).collect();
        let mut counts = vec![0usize; self.params.len()];
        if !self.matches(&symbols, 0, 0, &mut counts) {
            return Err(self.mismatch(args, &symbols));
        }
        let mut out = Vec::with_capacity(self.params.len().max(args.len()));
        let mut next = 0usize;
        for (param, &count) in self.params.iter().zip(&counts) {
            if count == 0 {
                if param.context {
                    let sym = symbol_of(context);
                    if param.accepts.contains(&sym) {
                        out.push(context.clone());
                    } else {
                        return Err(Error::new(
                            "T0411",
                            format!(
                                "Context value is not a compatible type with argument {} of function signature {}",
                                next + 1,
                                self.text
                            ),
                        ));
                    }
                } else {
                    // An optional argument left out entirely.
                    out.push(Val::Undefined);
                }
                continue;
            }
            for _ in 0..count {
                let arg = args.get(next).cloned().unwrap_or_default();
                if param.kind == b'a' {
                    if arg.is_undefined() {
                        out.push(arg);
                    } else {
                        if let Some(sub) = param.subtype {
                            let ok = if arg.is_array() {
                                let items = arg.items();
                                match items.first() {
                                    None => true,
                                    Some(first) => {
                                        let t = symbol_of(first);
                                        t == sub && items.iter().all(|v| symbol_of(v) == t)
                                    }
                                }
                            } else {
                                symbol_of(&arg) == sub
                            };
                            if !ok {
                                return Err(Error::new(
                                    "T0412",
                                    format!(
                                        "Argument {} of function must be an array of {}",
                                        next + 1,
                                        type_word(sub)
                                    ),
                                ));
                            }
                        }
                        if arg.is_array() {
                            out.push(arg);
                        } else {
                            out.push(Val::array(vec![arg]));
                        }
                    }
                } else {
                    out.push(arg);
                }
                next += 1;
            }
        }
        Ok(out)
    }

    /// Regex-like matching with greedy quantifiers and backtracking, as `^(p1)(p2)...$`.
    fn matches(&self, symbols: &[u8], pi: usize, si: usize, counts: &mut [usize]) -> bool {
        if pi == self.params.len() {
            return si == symbols.len();
        }
        let p = &self.params[pi];
        let mut max = 0;
        while si + max < symbols.len() && p.accepts.contains(&symbols[si + max]) {
            max += 1;
            if !p.repeated {
                break;
            }
        }
        let min = if p.optional { 0 } else { 1 };
        let mut n = max;
        loop {
            if n < min {
                return false;
            }
            counts[pi] = n;
            if self.matches(symbols, pi + 1, si + n, counts) {
                return true;
            }
            if n == 0 {
                return false;
            }
            n -= 1;
        }
    }

    /// T0410 naming the first argument that no prefix of the signature accepts.
    fn mismatch(&self, args: &[Val], symbols: &[u8]) -> Error {
        // Walk the parameters greedily, as the reference does with partial patterns.
        let mut good = 0usize;
        for p in &self.params {
            let mut n = 0;
            while good + n < symbols.len() && p.accepts.contains(&symbols[good + n]) {
                n += 1;
                if !p.repeated {
                    break;
                }
            }
            if n == 0 && !p.optional {
                break;
            }
            good += n;
        }
        let _ = args;
        Error::new(
            "T0410",
            format!(
                "Argument {} of function does not match function signature {}",
                good + 1,
                self.text
            ),
        )
    }
}

fn type_word(c: u8) -> &'static str {
    match c {
        b's' => "strings",
        b'n' => "numbers",
        b'b' => "booleans",
        b'l' => "nulls",
        b'o' => "objects",
        b'a' => "arrays",
        b'f' => "functions",
        _ => "values",
    }
}

fn closing(chars: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 1;
    let mut i = start;
    while i + 1 < chars.len() {
        i += 1;
        if chars[i] == close {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        } else if chars[i] == open {
            depth += 1;
        }
    }
    chars.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(x: f64) -> Val {
        Val::Num(x)
    }

    #[test]
    fn context_fills_a_missing_dash_argument() {
        let sig = Signature::parse("<s-nn?:s>").unwrap();
        let out = sig.validate(&[n(1.0)], &Val::str("abc")).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].as_str(), Some("abc"));
        let err = sig.validate(&[n(1.0)], &n(3.0)).unwrap_err();
        assert_eq!(err.code, "T0411");
    }

    #[test]
    fn a_mismatch_names_the_argument() {
        let sig = Signature::parse("<s-nn?:s>").unwrap();
        let err = sig
            .validate(&[Val::str("a"), Val::str("b")], &Val::Undefined)
            .unwrap_err();
        assert_eq!(err.code, "T0410");
        assert!(err.message.contains("Argument 2"), "{}", err.message);
    }

    #[test]
    fn arrays_are_wrapped_and_item_types_checked() {
        let sig = Signature::parse("<a<n>:n>").unwrap();
        let out = sig.validate(&[n(2.0)], &Val::Undefined).unwrap();
        assert!(out[0].is_array());
        let err = sig
            .validate(&[Val::array(vec![n(1.0), Val::str("x")])], &Val::Undefined)
            .unwrap_err();
        assert_eq!(err.code, "T0412");
    }

    #[test]
    fn repeated_and_bad_type_parameters() {
        let sig = Signature::parse("<a+>").unwrap();
        assert_eq!(
            sig.validate(&[Val::array(vec![]), Val::array(vec![])], &Val::Undefined)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(Signature::parse("<n<n>>").unwrap_err().code, "S0401");
        assert_eq!(Signature::parse("<(sa<n>)>").unwrap_err().code, "S0402");
    }
}
