//! Definition text to `Definition`, collecting every problem as a `Diagnostic` instead of
//! stopping at the first: wrong types, unknown fields, paths and intrinsics that do not parse
//! (with the byte where they go wrong), fields that exclude each other, values out of range.
//! Graph rules (transitions, reachability, terminal states) are `validate`'s.

use super::definition::*;
use super::diagnostic::{Diagnostic, code};
use crate::intrinsics::{Call, looks_like_call};
use crate::json::{Object, Str, Value};
use crate::jsonpath::Path;
use crate::time::Timestamp;

/// What parsing produced: the definition when its shape could be read, and every problem.
pub struct Parsed {
    pub definition: Option<Definition>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses definition text.
pub fn parse(text: &[u8]) -> Parsed {
    let value = match crate::json::parse(text) {
        Ok(v) => v,
        Err(e) => {
            let message = if text.iter().all(u8::is_ascii_whitespace) {
                "Definition must be a valid JSON object (the text is empty)".to_string()
            } else {
                format!("Definition is not valid JSON: {e}")
            };
            return Parsed {
                definition: None,
                diagnostics: vec![Diagnostic::error(
                    code::INVALID_JSON_DESCRIPTION,
                    "",
                    message,
                )],
            };
        }
    };
    parse_value(&value)
}

/// Parses a definition already read as JSON.
pub fn parse_value(value: &Value) -> Parsed {
    let mut r = Reader {
        diags: Vec::new(),
        top_ql: QueryLanguage::JsonPath,
        ql: QueryLanguage::JsonPath,
    };
    let definition = r.definition(value);
    Parsed {
        definition,
        diagnostics: r.diags,
    }
}

/// The fields of one JSON object, remembering which were read so the rest can be reported.
struct Fields<'a> {
    obj: &'a Object,
    used: Vec<bool>,
}

impl<'a> Fields<'a> {
    fn new(obj: &'a Object) -> Self {
        Fields {
            obj,
            used: vec![false; obj.len()],
        }
    }

    fn take(&mut self, key: &str) -> Option<&'a Value> {
        let i = self.obj.iter().position(|(k, _)| k.as_str() == key)?;
        self.used[i] = true;
        Some(&self.obj.iter().as_slice()[i].1)
    }

    fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    fn unused(&self) -> Vec<&'a str> {
        self.obj
            .iter()
            .zip(&self.used)
            .filter(|(_, u)| !**u)
            .map(|((k, _), _)| k.as_str())
            .collect()
    }
}

/// Fields of the JSONPath query language only: an error in a JSONata state.
const JSONPATH_FIELDS: &[(&str, &str)] = &[
    ("InputPath", "$states.input in the expressions"),
    ("OutputPath", "Output"),
    ("Parameters", "Arguments"),
    ("ResultSelector", "Output"),
    ("ResultPath", "Output"),
    ("Result", "Output"),
    ("ItemsPath", "Items"),
    ("TimeoutSecondsPath", "TimeoutSeconds with an expression"),
    (
        "HeartbeatSecondsPath",
        "HeartbeatSeconds with an expression",
    ),
    ("SecondsPath", "Seconds with an expression"),
    ("TimestampPath", "Timestamp with an expression"),
    ("ErrorPath", "Error with an expression"),
    ("CausePath", "Cause with an expression"),
    ("MaxConcurrencyPath", "MaxConcurrency with an expression"),
    (
        "ToleratedFailureCountPath",
        "ToleratedFailureCount with an expression",
    ),
    (
        "ToleratedFailurePercentagePath",
        "ToleratedFailurePercentage with an expression",
    ),
];

/// Fields of the JSONata query language only: an error in a JSONPath state.
const JSONATA_FIELDS: &[&str] = &["Arguments", "Output", "Items", "Condition"];

const MAX_INT: u64 = 99_999_999;

struct Reader {
    diags: Vec<Diagnostic>,
    /// The definition's `QueryLanguage`, which every state inherits.
    top_ql: QueryLanguage,
    /// The query language of the state being read.
    ql: QueryLanguage,
}

/// Whether `name` may name a workflow variable: a letter or `_`, then letters, digits and
/// `_`; `states` is reserved for `$states`.
pub fn valid_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// The template of the array `v` made of `items`: `v` itself when nothing in it is dynamic.
fn array_template(v: &Value, items: Vec<Template>) -> Template {
    if items.iter().all(|t| matches!(t, Template::Static(_))) {
        Template::Static(v.clone())
    } else {
        Template::Array(items)
    }
}

/// The expression inside `{% ... %}`, when `s` is one.
pub fn jsonata_text(s: &str) -> Option<&str> {
    s.strip_prefix("{%")?.strip_suffix("%}")
}

fn at(loc: &str, field: &str) -> String {
    format!("{loc}/{field}")
}

impl Reader {
    fn schema(&mut self, loc: impl Into<String>, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(code::SCHEMA_VALIDATION_FAILED, loc, msg));
    }

    fn finish(&mut self, f: &Fields<'_>, loc: &str) {
        for key in f.unused() {
            self.schema(loc, format!("Field '{key}' is not supported"));
        }
    }

    /// Takes the fields of the other query language than the state's, reporting each.
    fn other_language_fields(&mut self, f: &mut Fields<'_>, loc: &str) {
        match self.ql {
            QueryLanguage::Jsonata => {
                for (key, instead) in JSONPATH_FIELDS {
                    if f.take(key).is_some() {
                        self.schema(
                            loc,
                            format!(
                                "The QueryLanguage is set to 'JSONata', but field '{key}' is only supported for the 'JSONPath' QueryLanguage (use {instead})"
                            ),
                        );
                    }
                }
            }
            QueryLanguage::JsonPath => {
                for key in JSONATA_FIELDS {
                    if f.take(key).is_some() {
                        self.schema(
                            loc,
                            format!(
                                "The QueryLanguage is set to 'JSONPath', but field '{key}' is only supported for the 'JSONata' QueryLanguage (set \"QueryLanguage\": \"JSONata\" on the state or the definition)"
                            ),
                        );
                    }
                }
            }
        }
    }

    /// A string of a JSONata state: a `{% %}` expression (checked to compile), or a literal.
    fn jsonata_string(&mut self, s: &str, loc: &str) -> Result<Option<JsonataExpr>, ()> {
        let Some(inner) = jsonata_text(s) else {
            if s.starts_with("{%") {
                self.schema(
                    loc,
                    format!(
                        "The value '{s}' starts a JSONata expression with '{{%' but does not end it with '%}}'"
                    ),
                );
                return Err(());
            }
            return Ok(None);
        };
        let text = inner.trim();
        if text.is_empty() {
            self.schema(loc, "The JSONata expression between '{%' and '%}' is empty");
            return Err(());
        }
        match crate::jsonata::compile(text) {
            Ok(expr) => {
                let names = expr.top_level_names();
                for name in &names {
                    self.diags.push(Diagnostic::error(
                        code::UNSUPPORTED_JSONATA_EXPRESSION,
                        loc,
                        format!(
                            "Reference to '{name}' at the top level is not supported. The expression has no input: read the state's input as $states.input.{name}"
                        ),
                    ));
                }
                if !names.is_empty() {
                    return Err(());
                }
                Ok(Some(JsonataExpr {
                    text: Str::new(text),
                }))
            }
            Err(e) => {
                // The error's position counts characters of the expression: make it a byte
                // span inside the field's string.
                let lead = 2 + (inner.len() - inner.trim_start().len());
                let start = lead
                    + text
                        .char_indices()
                        .nth(e.position.saturating_sub(1))
                        .map_or(text.len(), |(i, _)| i);
                self.diags.push(
                    Diagnostic::error(
                        code::INVALID_JSONATA_EXPRESSION,
                        loc,
                        format!(
                            "{} (in the JSONata expression '{text}', at character {})",
                            e.message, e.position
                        ),
                    )
                    .with_span(start.min(s.len()), (start + 1).min(s.len())),
                );
                Err(())
            }
        }
    }

    /// Any JSON value of a JSONata state's field: literals, with `{% %}` strings anywhere
    /// inside objects and arrays.
    fn jsonata_template(&mut self, v: &Value, loc: &str) -> Option<Template> {
        let mut ok = true;
        let t = self.jsonata_node(v, loc, &mut ok);
        ok.then_some(t)
    }

    fn jsonata_node(&mut self, v: &Value, loc: &str, ok: &mut bool) -> Template {
        match v {
            Value::String(s) => match self.jsonata_string(s, loc) {
                Ok(Some(e)) => Template::Jsonata(Box::new(e)),
                Ok(None) => Template::Static(v.clone()),
                Err(()) => {
                    *ok = false;
                    Template::Static(v.clone())
                }
            },
            Value::Object(o) => {
                let fields: Vec<(Str, Template)> = o
                    .iter()
                    .map(|(k, child)| (k.clone(), self.jsonata_node(child, &at(loc, k), ok)))
                    .collect();
                if fields.iter().all(|(_, t)| matches!(t, Template::Static(_))) {
                    Template::Static(v.clone())
                } else {
                    Template::Object(fields)
                }
            }
            Value::Array(a) => {
                let items: Vec<Template> = a
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.jsonata_node(item, &format!("{loc}[{i}]"), ok))
                    .collect();
                array_template(v, items)
            }
            other => Template::Static(other.clone()),
        }
    }

    /// A field that takes a JSONata expression or a literal: `Some(Err(expr))` for an
    /// expression, `Some(Ok(value))` for a literal.
    fn expr_or_literal<'v>(
        &mut self,
        v: &'v Value,
        loc: &str,
    ) -> Option<Result<&'v Value, Box<JsonataExpr>>> {
        if let Value::String(s) = v {
            match self.jsonata_string(s, loc) {
                Ok(Some(e)) => return Some(Err(Box::new(e))),
                Ok(None) => {}
                Err(()) => return None,
            }
        }
        Some(Ok(v))
    }

    /// `Assign`: an object whose keys name variables.
    fn assign(&mut self, v: &Value, loc: &str) -> Option<Template> {
        let Value::Object(o) = v else {
            self.schema(
                loc,
                format!(
                    "Assign must be a JSON object of variable names, found {}",
                    v.type_name()
                ),
            );
            return None;
        };
        let mut ok = true;
        for (k, _) in o.iter() {
            let name = match self.ql {
                QueryLanguage::JsonPath => k.strip_suffix(".$").unwrap_or(k),
                QueryLanguage::Jsonata => k.as_str(),
            };
            if name == "states" {
                self.schema(
                    at(loc, k),
                    "The variable name 'states' is reserved for $states",
                );
                ok = false;
            } else if !valid_variable_name(name) {
                self.schema(
                    at(loc, k),
                    format!(
                        "'{name}' is not a valid variable name: use a letter or '_' followed by letters, digits or '_'"
                    ),
                );
                ok = false;
            }
        }
        let t = match self.ql {
            QueryLanguage::JsonPath => Some(self.template_node(v, loc)),
            QueryLanguage::Jsonata => self.jsonata_template(v, loc),
        };
        if ok { t } else { None }
    }

    fn string(&mut self, v: &Value, loc: &str) -> Option<String> {
        match v {
            Value::String(s) => Some(s.to_string()),
            other => {
                self.schema(
                    loc,
                    format!("The value must be a string, found {}", other.type_name()),
                );
                None
            }
        }
    }

    fn uint(&mut self, v: &Value, loc: &str, min: u64, max: u64) -> Option<u64> {
        match v.as_number() {
            Some(crate::json::Number::Int(i)) if i >= min as i64 && i as u64 <= max => {
                Some(i as u64)
            }
            Some(crate::json::Number::Int(_)) => {
                self.schema(loc, format!("The value must be between {min} and {max}"));
                None
            }
            _ => {
                self.schema(loc, format!("The value must be an integer, found {v}"));
                None
            }
        }
    }

    fn comment(&mut self, f: &mut Fields<'_>, loc: &str) -> Option<String> {
        let v = f.take("Comment")?;
        self.string(v, &at(loc, "Comment"))
    }

    /// A JSONPath string (any path, `$` or `$$`).
    fn path(&mut self, v: &Value, loc: &str) -> Option<Path> {
        let Value::String(s) = v else {
            self.schema(
                loc,
                format!(
                    "The value must be a JSONPath string, found {}",
                    v.type_name()
                ),
            );
            return None;
        };
        match Path::parse(s) {
            Ok(p) => Some(p),
            Err(e) => {
                self.diags.push(
                    Diagnostic::error(
                        code::SCHEMA_VALIDATION_FAILED,
                        loc,
                        format!("The value '{s}' is not a valid JSONPath: {}", e.message),
                    )
                    .with_span(e.offset, (e.offset + 1).min(s.len().max(e.offset + 1))),
                );
                None
            }
        }
    }

    /// `InputPath`, `OutputPath`, `ItemsPath`: a path or null.
    fn path_field(&mut self, f: &mut Fields<'_>, field: &str, loc: &str) -> PathField {
        match f.take(field) {
            None => PathField::Default,
            Some(Value::Null) => PathField::Null,
            Some(v) => match self.path(v, &at(loc, field)) {
                Some(p) => PathField::Path(p),
                None => PathField::Default,
            },
        }
    }

    /// A `ResultPath`: a reference path or null.
    fn result_path(&mut self, v: Option<&Value>, loc: &str) -> ResultPath {
        match v {
            None => ResultPath::Default,
            Some(Value::Null) => ResultPath::Discard,
            Some(v) => match self.path(v, loc) {
                Some(p) if p.is_reference() => ResultPath::Path(p),
                Some(p) => {
                    self.schema(
                        loc,
                        format!(
                            "The value for the field 'ResultPath' must be a valid ReferencePath ($ followed by names and indexes only): '{}'",
                            p.text()
                        ),
                    );
                    ResultPath::Default
                }
                None => ResultPath::Default,
            },
        }
    }

    /// The value of a `"key.$"` field: a path or an intrinsic call.
    fn dynamic_value(&mut self, key: &str, v: &Value, loc: &str) -> Option<Template> {
        let bad = |r: &mut Reader, detail: String, span: Option<(usize, usize)>| {
            let mut d = Diagnostic::error(
                code::SCHEMA_VALIDATION_FAILED,
                loc,
                format!(
                    "The value for the field '{key}' must be a valid JSONPath or a valid intrinsic function call{detail}"
                ),
            );
            if let Some((a, b)) = span {
                d = d.with_span(a, b);
            }
            r.diags.push(d);
        };
        let Value::String(s) = v else {
            bad(self, format!(" (found {})", v.type_name()), None);
            return None;
        };
        if s.trim_start().starts_with('$') {
            match Path::parse(s) {
                Ok(p) => Some(Template::Path(p)),
                Err(e) => {
                    bad(
                        self,
                        format!(": {}", e.message),
                        Some((e.offset, e.offset + 1)),
                    );
                    None
                }
            }
        } else if looks_like_call(s) {
            match Call::parse(s) {
                Ok(c) => Some(Template::Call(Box::new(c))),
                Err(e) => {
                    bad(
                        self,
                        format!(": {}", e.message),
                        Some((e.offset, e.offset + 1)),
                    );
                    None
                }
            }
        } else {
            bad(self, String::new(), None);
            None
        }
    }

    /// A payload template (`Parameters`, `ResultSelector`, `ItemSelector`, `Credentials`).
    fn template(&mut self, v: &Value, loc: &str) -> Option<Template> {
        if !matches!(v, Value::Object(_)) {
            self.schema(
                loc,
                format!("The value must be a JSON object, found {}", v.type_name()),
            );
            return None;
        }
        Some(self.template_node(v, loc))
    }

    fn template_node(&mut self, v: &Value, loc: &str) -> Template {
        match v {
            Value::Object(o) => {
                let mut dynamic = false;
                let mut fields = Vec::with_capacity(o.len());
                for (k, child) in o.iter() {
                    if let Some(name) = k.strip_suffix(".$") {
                        dynamic = true;
                        if let Some(t) = self.dynamic_value(k, child, loc) {
                            fields.push((Str::new(name), t));
                        }
                    } else {
                        let t = self.template_node(child, &at(loc, k));
                        dynamic |= !matches!(t, Template::Static(_));
                        fields.push((k.clone(), t));
                    }
                }
                if dynamic {
                    Template::Object(fields)
                } else {
                    Template::Static(v.clone())
                }
            }
            Value::Array(a) => {
                let items: Vec<Template> = a
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.template_node(item, &format!("{loc}[{i}]")))
                    .collect();
                array_template(v, items)
            }
            other => Template::Static(other.clone()),
        }
    }

    /// `Error`/`ErrorPath` or `Cause`/`CausePath` of a Fail state.
    fn text_source(&mut self, f: &mut Fields<'_>, name: &str, loc: &str) -> Option<TextSource> {
        let path_name = format!("{name}Path");
        let fixed = f.take(name);
        let path = f.take(&path_name);
        match (fixed, path) {
            (Some(_), Some(_)) => {
                self.schema(
                    loc,
                    format!("Fields '{name}' and '{path_name}' are mutually exclusive"),
                );
                None
            }
            (Some(v), None) if self.ql == QueryLanguage::Jsonata => {
                match self.expr_or_literal(v, &at(loc, name))? {
                    Err(e) => Some(TextSource::Expr(e)),
                    Ok(v) => self.string(v, &at(loc, name)).map(TextSource::Fixed),
                }
            }
            (Some(v), None) => self.string(v, &at(loc, name)).map(TextSource::Fixed),
            (None, Some(v)) => {
                let floc = at(loc, &path_name);
                match v {
                    Value::String(s) if looks_like_call(s) => match Call::parse(s) {
                        Ok(c) => Some(TextSource::Call(Box::new(c))),
                        Err(e) => {
                            self.diags.push(
                                Diagnostic::error(
                                    code::SCHEMA_VALIDATION_FAILED,
                                    floc,
                                    format!(
                                        "The value for the field '{path_name}' must be a valid JSONPath or a valid intrinsic function call: {}",
                                        e.message
                                    ),
                                )
                                .with_span(e.offset, e.offset + 1),
                            );
                            None
                        }
                    },
                    _ => self.path(v, &floc).map(TextSource::Path),
                }
            }
            (None, None) => None,
        }
    }

    fn error_equals(&mut self, f: &mut Fields<'_>, loc: &str) -> Vec<String> {
        let floc = at(loc, "ErrorEquals");
        match f.take("ErrorEquals") {
            None => {
                self.schema(loc, "These fields are required: [ErrorEquals]");
                Vec::new()
            }
            Some(Value::Array(a)) if !a.is_empty() => {
                let names: Vec<String> = a
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| self.string(v, &format!("{floc}[{i}]")))
                    .collect();
                if names.len() > 1 && names.iter().any(|n| n == "States.ALL") {
                    self.schema(
                        floc,
                        "States.ALL must appear alone in its ErrorEquals array",
                    );
                }
                names
            }
            Some(_) => {
                self.schema(floc, "ErrorEquals must be a non-empty array of error names");
                Vec::new()
            }
        }
    }

    /// The members of a Retry or Catch array, each with its location, its fields (Comment
    /// taken) and whether it is the array's last; a non-array or a non-object member is
    /// reported and skipped.
    fn objects<'v>(
        &mut self,
        v: &'v Value,
        loc: &str,
        field: &str,
        member: &str,
    ) -> Vec<(String, Fields<'v>, bool)> {
        let Value::Array(items) = v else {
            self.schema(
                loc.to_string(),
                format!("{field} must be an array of {member}s"),
            );
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let iloc = format!("{loc}[{i}]");
            let Value::Object(o) = item else {
                self.schema(iloc, format!("A {member} must be a JSON object"));
                continue;
            };
            let mut f = Fields::new(o);
            self.comment(&mut f, &iloc);
            out.push((iloc, f, i + 1 == items.len()));
        }
        out
    }

    fn retriers(&mut self, v: Option<&Value>, loc: &str) -> Vec<Retrier> {
        let Some(v) = v else { return Vec::new() };
        let mut out = Vec::new();
        for (rloc, mut f, last) in self.objects(v, &at(loc, "Retry"), "Retry", "retrier") {
            let error_equals = self.error_equals(&mut f, &rloc);
            let interval_seconds = f
                .take("IntervalSeconds")
                .and_then(|v| self.uint(v, &at(&rloc, "IntervalSeconds"), 1, MAX_INT))
                .unwrap_or(1);
            let max_attempts = f
                .take("MaxAttempts")
                .and_then(|v| self.uint(v, &at(&rloc, "MaxAttempts"), 0, MAX_INT))
                .unwrap_or(3);
            let backoff_rate = match f.take("BackoffRate") {
                None => 2.0,
                Some(v) => match v.as_f64() {
                    Some(b) if b >= 1.0 => b,
                    _ => {
                        self.schema(
                            at(&rloc, "BackoffRate"),
                            "BackoffRate must be a number greater than or equal to 1.0",
                        );
                        2.0
                    }
                },
            };
            let max_delay_seconds = f
                .take("MaxDelaySeconds")
                .and_then(|v| self.uint(v, &at(&rloc, "MaxDelaySeconds"), 1, 31_622_400));
            let jitter = match f.take("JitterStrategy") {
                None => Jitter::None,
                Some(Value::String(s)) if s.as_str() == "FULL" => Jitter::Full,
                Some(Value::String(s)) if s.as_str() == "NONE" => Jitter::None,
                Some(_) => {
                    self.schema(
                        at(&rloc, "JitterStrategy"),
                        "JitterStrategy must be \"FULL\" or \"NONE\"",
                    );
                    Jitter::None
                }
            };
            self.finish(&f, &rloc);
            if !last && error_equals.iter().any(|e| e == "States.ALL") {
                self.schema(
                    at(&rloc, "ErrorEquals"),
                    "A retrier with States.ALL must be the last retrier",
                );
            }
            out.push(Retrier {
                error_equals,
                interval_seconds,
                max_attempts,
                backoff_rate,
                max_delay_seconds,
                jitter,
            });
        }
        out
    }

    fn catchers(&mut self, v: Option<&Value>, loc: &str) -> Vec<Catcher> {
        let Some(v) = v else { return Vec::new() };
        let mut out = Vec::new();
        for (cloc, mut f, last) in self.objects(v, &at(loc, "Catch"), "Catch", "catcher") {
            let error_equals = self.error_equals(&mut f, &cloc);
            let next = match f.take("Next") {
                Some(v) => self.string(v, &at(&cloc, "Next")).unwrap_or_default(),
                None => {
                    self.schema(cloc.clone(), "These fields are required: [Next]");
                    String::new()
                }
            };
            let (mut result_path, mut output) = (ResultPath::Default, None);
            match self.ql {
                QueryLanguage::JsonPath => {
                    result_path = self.result_path(f.take("ResultPath"), &at(&cloc, "ResultPath"));
                    if f.take("Output").is_some() {
                        self.schema(
                            at(&cloc, "Output"),
                            "The field 'Output' is a JSONata field and cannot be used in a state whose QueryLanguage is JSONPath: use ResultPath",
                        );
                    }
                }
                QueryLanguage::Jsonata => {
                    if f.take("ResultPath").is_some() {
                        self.schema(
                            at(&cloc, "ResultPath"),
                            "The field 'ResultPath' is a JSONPath field and cannot be used in a state whose QueryLanguage is JSONata: use Output",
                        );
                    }
                    output = f
                        .take("Output")
                        .and_then(|v| self.jsonata_template(v, &at(&cloc, "Output")));
                }
            }
            let assign = f
                .take("Assign")
                .and_then(|v| self.assign(v, &at(&cloc, "Assign")));
            self.finish(&f, &cloc);
            if !last && error_equals.iter().any(|e| e == "States.ALL") {
                self.schema(
                    at(&cloc, "ErrorEquals"),
                    "A catcher with States.ALL must be the last catcher",
                );
            }
            out.push(Catcher {
                error_equals,
                next,
                result_path,
                assign,
                output,
            });
        }
        out
    }

    fn definition(&mut self, v: &Value) -> Option<Definition> {
        let Value::Object(o) = v else {
            self.diags.push(Diagnostic::error(
                code::INVALID_JSON_DESCRIPTION,
                "",
                format!(
                    "Definition must be a valid JSON object, found {}",
                    v.type_name()
                ),
            ));
            return None;
        };
        let mut f = Fields::new(o);
        let comment = self.comment(&mut f, "");
        let version = match f.take("Version") {
            None => None,
            Some(v) => match self.string(v, "/Version") {
                Some(s) if s == "1.0" => Some(s),
                Some(s) => {
                    self.schema(
                        "/Version",
                        format!("Version must be \"1.0\", found \"{s}\""),
                    );
                    None
                }
                None => None,
            },
        };
        let timeout_seconds = f
            .take("TimeoutSeconds")
            .and_then(|v| self.uint(v, "/TimeoutSeconds", 1, MAX_INT));
        let query_language = match f.take("QueryLanguage") {
            None => QueryLanguage::JsonPath,
            Some(v) => self.query_language(v, "/QueryLanguage"),
        };
        self.top_ql = query_language;
        let machine = self.machine(&mut f, "", "/");
        self.finish(&f, "/");
        Some(Definition {
            comment,
            version,
            timeout_seconds,
            query_language,
            machine: machine?,
        })
    }

    fn query_language(&mut self, v: &Value, loc: &str) -> QueryLanguage {
        match v.as_str() {
            Some("JSONPath") => QueryLanguage::JsonPath,
            Some("JSONata") => QueryLanguage::Jsonata,
            _ => {
                self.schema(loc, "QueryLanguage must be \"JSONPath\" or \"JSONata\"");
                QueryLanguage::JsonPath
            }
        }
    }

    /// `StartAt` + `States` of the object behind `f`; `base` is the object's location,
    /// `report` where to report missing fields (`/` at the top level).
    fn machine(&mut self, f: &mut Fields<'_>, base: &str, report: &str) -> Option<Machine> {
        let ql = self.ql;
        let m = self.machine_inner(f, base, report);
        self.ql = ql;
        m
    }

    fn machine_inner(&mut self, f: &mut Fields<'_>, base: &str, report: &str) -> Option<Machine> {
        let states_loc = at(base, "States");
        let start_at = f.take("StartAt");
        let states = f.take("States");
        let mut missing = Vec::new();
        if states.is_none() {
            missing.push("States");
        }
        if start_at.is_none() {
            missing.push("StartAt");
        }
        if !missing.is_empty() {
            self.schema(
                report,
                format!("These fields are required: [{}]", missing.join(", ")),
            );
        }
        let start_at = start_at.and_then(|v| self.string(v, &at(base, "StartAt")));
        let states = match states {
            Some(Value::Object(o)) => {
                if o.is_empty() {
                    self.schema(states_loc.clone(), "States must not be empty");
                }
                let mut out = Vec::with_capacity(o.len());
                for (name, sv) in o.iter() {
                    let sloc = at(&states_loc, name);
                    if name.is_empty() || name.chars().count() > 80 {
                        self.schema(sloc.clone(), "State names must be 1 to 80 characters long");
                    }
                    if let Some(s) = self.state(name, sv, &sloc) {
                        out.push(s);
                    }
                }
                Some(out)
            }
            Some(other) => {
                self.schema(
                    states_loc.clone(),
                    format!("States must be a JSON object, found {}", other.type_name()),
                );
                None
            }
            None => None,
        };
        Some(Machine {
            start_at: start_at?,
            states: states?,
            location: states_loc,
        })
    }

    fn transition(&mut self, f: &mut Fields<'_>, loc: &str) -> Transition {
        let next = f.take("Next");
        let end = f.take("End");
        match (next, end) {
            (Some(_), Some(_)) => {
                self.schema(loc, "Only one of 'Next' or 'End' may be present");
                Transition::End
            }
            (Some(v), None) => match self.string(v, &at(loc, "Next")) {
                Some(s) => Transition::Next(s),
                None => Transition::End,
            },
            (None, Some(Value::Bool(true))) => Transition::End,
            (None, Some(_)) => {
                self.schema(at(loc, "End"), "End must be true when present");
                Transition::End
            }
            (None, None) => {
                self.schema(
                    loc,
                    "This state must have either a 'Next' or an 'End' field",
                );
                Transition::End
            }
        }
    }

    fn state(&mut self, name: &str, v: &Value, loc: &str) -> Option<State> {
        let Value::Object(o) = v else {
            self.schema(
                loc,
                format!("A state must be a JSON object, found {}", v.type_name()),
            );
            return None;
        };
        let mut f = Fields::new(o);
        let ty = match f.take("Type") {
            None => {
                self.schema(loc, "The field 'Type' should be non-null");
                return None;
            }
            Some(Value::String(s)) => s.to_string(),
            Some(_) => {
                self.schema(at(loc, "Type"), "Type must be a string");
                return None;
            }
        };
        let comment = self.comment(&mut f, loc);
        self.ql = self.top_ql;
        if let Some(q) = f.take("QueryLanguage") {
            let qloc = at(loc, "QueryLanguage");
            let ql = self.query_language(q, &qloc);
            if ql == QueryLanguage::JsonPath && self.top_ql == QueryLanguage::Jsonata {
                self.schema(
                    qloc,
                    "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
                );
            }
            self.ql = ql;
        }
        let query_language = self.ql;
        self.other_language_fields(&mut f, loc);
        let mut input_path = PathField::Default;
        let mut output_path = PathField::Default;
        if ty != "Fail" {
            input_path = self.path_field(&mut f, "InputPath", loc);
            output_path = self.path_field(&mut f, "OutputPath", loc);
        }
        let assign = match f.take("Assign") {
            Some(_) if matches!(ty.as_str(), "Succeed" | "Fail") => {
                self.schema(
                    at(loc, "Assign"),
                    format!("Field 'Assign' is not supported by a {ty} state"),
                );
                None
            }
            Some(v) => self.assign(v, &at(loc, "Assign")),
            None => None,
        };
        let output = match f.take("Output") {
            Some(_) if ty == "Fail" => {
                self.schema(
                    at(loc, "Output"),
                    "Field 'Output' is not supported by a Fail state",
                );
                None
            }
            Some(v) => self.jsonata_template(v, &at(loc, "Output")),
            None => None,
        };
        let (kind, transition) = match ty.as_str() {
            "Pass" => {
                let parameters = f
                    .take("Parameters")
                    .and_then(|v| self.template(v, &at(loc, "Parameters")));
                let result = f.take("Result").cloned();
                let result_path = self.result_path(f.take("ResultPath"), &at(loc, "ResultPath"));
                let t = self.transition(&mut f, loc);
                (
                    Kind::Pass(Box::new(Pass {
                        parameters,
                        result,
                        result_path,
                    })),
                    t,
                )
            }
            "Task" => {
                let t = self.task(&mut f, loc);
                let tr = self.transition(&mut f, loc);
                (Kind::Task(Box::new(t?)), tr)
            }
            "Choice" => (
                Kind::Choice(Box::new(self.choice(&mut f, loc)?)),
                Transition::None,
            ),
            "Wait" => {
                let w = self.wait(&mut f, loc);
                let t = self.transition(&mut f, loc);
                (Kind::Wait(Box::new(w?)), t)
            }
            "Succeed" => (Kind::Succeed, Transition::None),
            "Fail" => {
                let error = self.text_source(&mut f, "Error", loc);
                let cause = self.text_source(&mut f, "Cause", loc);
                (
                    Kind::Fail(Box::new(Fail { error, cause })),
                    Transition::None,
                )
            }
            "Parallel" => {
                let p = self.parallel(&mut f, loc);
                let t = self.transition(&mut f, loc);
                (Kind::Parallel(Box::new(p?)), t)
            }
            "Map" => {
                let m = self.map(&mut f, loc);
                let t = self.transition(&mut f, loc);
                (Kind::Map(Box::new(m?)), t)
            }
            other => {
                self.schema(
                    at(loc, "Type"),
                    format!(
                        "'{other}' is not a state type: use Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map"
                    ),
                );
                return None;
            }
        };
        self.finish(&f, loc);
        self.ql = query_language;
        Some(State {
            name: name.to_string(),
            comment,
            kind,
            query_language,
            assign,
            output,
            input_path,
            output_path,
            transition,
            location: loc.to_string(),
        })
    }

    fn seconds(&mut self, f: &mut Fields<'_>, name: &str, loc: &str) -> Option<Dynamic<u64>> {
        let path_name = format!("{name}Path");
        match (f.take(name), f.take(&path_name)) {
            (Some(_), Some(_)) => {
                self.schema(
                    loc,
                    format!("Fields '{name}' and '{path_name}' are mutually exclusive"),
                );
                None
            }
            (Some(v), None) => self.uint_or_expr(v, &at(loc, name), 1),
            (None, Some(v)) => self.path(v, &at(loc, &path_name)).map(Dynamic::Path),
            (None, None) => None,
        }
    }

    /// An integer field, or in a JSONata state an expression giving one.
    fn uint_or_expr(&mut self, v: &Value, loc: &str, min: u64) -> Option<Dynamic<u64>> {
        if self.ql == QueryLanguage::Jsonata {
            return match self.expr_or_literal(v, loc)? {
                Err(e) => Some(Dynamic::Expr(e)),
                Ok(v) => self.uint(v, loc, min, MAX_INT).map(Dynamic::Fixed),
            };
        }
        self.uint(v, loc, min, MAX_INT).map(Dynamic::Fixed)
    }

    /// A payload template: `Parameters`-style in JSONPath, any value in JSONata.
    fn payload(&mut self, v: &Value, loc: &str) -> Option<Template> {
        match self.ql {
            QueryLanguage::JsonPath => self.template(v, loc),
            QueryLanguage::Jsonata => match v {
                Value::Object(_) | Value::String(_) => self.jsonata_template(v, loc),
                other => {
                    self.schema(
                        loc,
                        format!(
                            "The value must be a JSON object or a JSONata expression, found {}",
                            other.type_name()
                        ),
                    );
                    None
                }
            },
        }
    }

    fn task(&mut self, f: &mut Fields<'_>, loc: &str) -> Option<Task> {
        let resource = match f.take("Resource") {
            Some(v) => self.string(v, &at(loc, "Resource")),
            None => {
                self.schema(loc, "These fields are required: [Resource]");
                None
            }
        };
        if let Some(r) = &resource {
            self.check_resource(r, &at(loc, "Resource"));
        }
        let parameters = self.parameters(f, loc);
        let result_selector = f
            .take("ResultSelector")
            .and_then(|v| self.template(v, &at(loc, "ResultSelector")));
        let result_path = self.result_path(f.take("ResultPath"), &at(loc, "ResultPath"));
        let retry = self.retriers(f.take("Retry"), loc);
        let catch = self.catchers(f.take("Catch"), loc);
        let timeout = self.seconds(f, "TimeoutSeconds", loc);
        let heartbeat = self.seconds(f, "HeartbeatSeconds", loc);
        if let (Some(Dynamic::Fixed(t)), Some(Dynamic::Fixed(h))) = (&timeout, &heartbeat)
            && h >= t
        {
            self.schema(
                at(loc, "HeartbeatSeconds"),
                "HeartbeatSeconds must be smaller than TimeoutSeconds",
            );
        }
        let credentials = f.take("Credentials").and_then(|v| {
            let cloc = at(loc, "Credentials");
            let t = self.payload(v, &cloc)?;
            if let Value::Object(o) = v
                && !(o.contains_key("RoleArn") || o.contains_key("RoleArn.$"))
            {
                self.schema(cloc, "Credentials must name a RoleArn (or RoleArn.$)");
            }
            Some(t)
        });
        Some(Task {
            resource: resource?,
            parameters,
            result_selector,
            result_path,
            retry,
            catch,
            timeout,
            heartbeat,
            credentials,
        })
    }

    /// `Parameters` (JSONPath) or `Arguments` (JSONata) of a Task or Parallel state.
    fn parameters(&mut self, f: &mut Fields<'_>, loc: &str) -> Option<Template> {
        let key = match self.ql {
            QueryLanguage::JsonPath => "Parameters",
            QueryLanguage::Jsonata => "Arguments",
        };
        f.take(key).and_then(|v| self.payload(v, &at(loc, key)))
    }

    /// Resources of the form `arn:<partition>:states:::service:action` must name an
    /// integration AWS offers (or stepstream's own `kafka:produce`).
    fn check_resource(&mut self, r: &str, loc: &str) {
        let parts: Vec<&str> = r.splitn(6, ':').collect();
        if parts.len() < 6 || parts[0] != "arn" {
            self.schema(
                loc,
                format!("The resource provided {r} is not a valid resource ARN"),
            );
            return;
        }
        if parts[2] != "states" || !parts[3].is_empty() || !parts[4].is_empty() {
            return; // lambda function ARNs, activities, ... are checked when bound
        }
        let integration = parts[5];
        let base = integration
            .strip_suffix(".sync:2")
            .or_else(|| integration.strip_suffix(".sync"))
            .or_else(|| integration.strip_suffix(".waitForTaskToken"))
            .unwrap_or(integration);
        if !super::integrations::is_known(base) {
            self.schema(
                loc,
                format!(
                    "The resource provided arn:<partition>:states:::{integration} is not recognized. The value is not a valid resource ARN, or the resource is not available in this region."
                ),
            );
        }
    }

    fn condition(
        &mut self,
        v: &Value,
        loc: &str,
        top: bool,
    ) -> Option<(Condition, Option<String>, Option<Template>)> {
        let Value::Object(o) = v else {
            self.schema(loc, "A choice rule must be a JSON object");
            return None;
        };
        let mut f = Fields::new(o);
        self.comment(&mut f, loc);
        let assign = match f.take("Assign") {
            Some(v) if top => self.assign(v, &at(loc, "Assign")),
            Some(_) => {
                self.schema(
                    at(loc, "Assign"),
                    "Only top-level choice rules may have 'Assign'",
                );
                None
            }
            None => None,
        };
        if f.take("Output").is_some() {
            self.schema(
                at(loc, "Output"),
                "The field 'Output' is a JSONata field and cannot be used in a state whose QueryLanguage is JSONPath",
            );
        }
        if f.take("Condition").is_some() {
            self.schema(
                at(loc, "Condition"),
                "The field 'Condition' is a JSONata field and cannot be used in a state whose QueryLanguage is JSONPath: use Variable and a comparison operator",
            );
        }
        let next = match f.take("Next") {
            Some(n) if top => self.string(n, &at(loc, "Next")),
            Some(_) => {
                self.schema(
                    at(loc, "Next"),
                    "Only top-level choice rules may have 'Next'",
                );
                None
            }
            None if top => {
                self.schema(loc, "These fields are required: [Next]");
                None
            }
            None => None,
        };
        let combinators: Vec<&str> = ["And", "Or", "Not"]
            .into_iter()
            .filter(|k| f.has(k))
            .collect();
        let ops: Vec<(&str, Comparison, bool)> = Comparison::ALL
            .iter()
            .flat_map(|(name, op, has_path)| {
                let mut v = Vec::new();
                if f.has(name) {
                    v.push((*name, *op, false));
                }
                if *has_path && f.has(&format!("{name}Path")) {
                    v.push((*name, *op, true));
                }
                v
            })
            .collect();
        let cond = if combinators.len() + ops.len() != 1 {
            self.schema(
                loc,
                "A choice rule must have exactly one of And, Or, Not or a comparison operator",
            );
            // Read what is there anyway, to report problems inside.
            None
        } else if let Some(&c) = combinators.first() {
            let cv = f.take(c);
            let cloc = at(loc, c);
            if f.take("Variable").is_some() {
                self.schema(
                    at(loc, "Variable"),
                    format!("'Variable' cannot be used with '{c}'"),
                );
            }
            match (c, cv) {
                ("Not", Some(inner)) => self
                    .condition(inner, &cloc, false)
                    .map(|(c, _, _)| Condition::Not(Box::new(c))),
                (_, Some(Value::Array(items))) if !items.is_empty() => {
                    let mut parts = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        if let Some((c, _, _)) =
                            self.condition(item, &format!("{cloc}[{i}]"), false)
                        {
                            parts.push(c);
                        }
                    }
                    if parts.len() != items.len() {
                        None
                    } else if c == "And" {
                        Some(Condition::And(parts))
                    } else {
                        Some(Condition::Or(parts))
                    }
                }
                _ => {
                    self.schema(
                        cloc,
                        format!("'{c}' must be a non-empty array of choice rules"),
                    );
                    None
                }
            }
        } else {
            let (name, op, is_path) = ops[0];
            let variable = match f.take("Variable") {
                Some(v) => self.path(v, &at(loc, "Variable")),
                None => {
                    self.schema(loc, "These fields are required: [Variable]");
                    None
                }
            };
            let key = if is_path {
                format!("{name}Path")
            } else {
                name.to_string()
            };
            let oloc = at(loc, &key);
            let raw = f.take(&key).cloned().unwrap_or(Value::Null);
            let operand = if is_path {
                self.path(&raw, &oloc).map(Operand::Path)
            } else {
                self.literal_operand(op, &raw, &oloc).map(Operand::Value)
            };
            match (variable, operand) {
                (Some(variable), Some(operand)) => Some(Condition::Compare {
                    variable,
                    op,
                    operand,
                }),
                _ => None,
            }
        };
        self.finish(&f, loc);
        Some((cond?, next, assign))
    }

    /// A choice rule of a JSONata state: `Condition`, `Next`, and optionally `Assign` and
    /// `Output`.
    fn jsonata_rule(&mut self, v: &Value, loc: &str) -> Option<ChoiceRule> {
        let Value::Object(o) = v else {
            self.schema(loc, "A choice rule must be a JSON object");
            return None;
        };
        let mut f = Fields::new(o);
        self.comment(&mut f, loc);
        for key in ["Variable", "And", "Or", "Not"]
            .into_iter()
            .chain(Comparison::ALL.iter().map(|(n, _, _)| *n))
        {
            for k in [key.to_string(), format!("{key}Path")] {
                if f.take(&k).is_some() {
                    self.schema(
                        at(loc, &k),
                        format!(
                            "The field '{k}' is a JSONPath field and cannot be used in a state whose QueryLanguage is JSONata: use Condition"
                        ),
                    );
                }
            }
        }
        let next = match f.take("Next") {
            Some(n) => self.string(n, &at(loc, "Next")),
            None => {
                self.schema(loc, "These fields are required: [Next]");
                None
            }
        };
        let cloc = at(loc, "Condition");
        let condition = match f.take("Condition") {
            None => {
                self.schema(loc, "These fields are required: [Condition]");
                None
            }
            Some(v @ Value::Bool(_)) => Some(Condition::Jsonata(Template::Static(v.clone()))),
            Some(Value::String(s)) => match self.jsonata_string(s, &cloc) {
                Ok(Some(e)) => Some(Condition::Jsonata(Template::Jsonata(Box::new(e)))),
                Ok(None) => {
                    self.schema(
                        cloc,
                        format!("Condition must be a boolean or a JSONata expression '{{% ... %}}', found the string '{s}'"),
                    );
                    None
                }
                Err(()) => None,
            },
            Some(other) => {
                self.schema(
                    cloc,
                    format!(
                        "Condition must be a boolean or a JSONata expression, found {}",
                        other.type_name()
                    ),
                );
                None
            }
        };
        let assign = f
            .take("Assign")
            .and_then(|v| self.assign(v, &at(loc, "Assign")));
        let output = f
            .take("Output")
            .and_then(|v| self.jsonata_template(v, &at(loc, "Output")));
        self.finish(&f, loc);
        Some(ChoiceRule {
            condition: condition?,
            next: next?,
            assign,
            output,
        })
    }

    fn literal_operand(&mut self, op: Comparison, v: &Value, loc: &str) -> Option<Value> {
        use Comparison::*;
        let ok = match op {
            StringEquals
            | StringLessThan
            | StringGreaterThan
            | StringLessThanEquals
            | StringGreaterThanEquals
            | StringMatches => matches!(v, Value::String(_)),
            NumericEquals
            | NumericLessThan
            | NumericGreaterThan
            | NumericLessThanEquals
            | NumericGreaterThanEquals => matches!(v, Value::Number(_)),
            BooleanEquals | IsNull | IsPresent | IsNumeric | IsString | IsBoolean | IsTimestamp => {
                matches!(v, Value::Bool(_))
            }
            TimestampEquals
            | TimestampLessThan
            | TimestampGreaterThan
            | TimestampLessThanEquals
            | TimestampGreaterThanEquals => match v.as_str() {
                Some(s) if Timestamp::parse_rfc3339(s).is_some() => true,
                Some(_) => {
                    self.schema(loc, "String does not match RFC3339 timestamp");
                    return None;
                }
                None => false,
            },
        };
        if ok {
            Some(v.clone())
        } else {
            let want = match op {
                NumericEquals
                | NumericLessThan
                | NumericGreaterThan
                | NumericLessThanEquals
                | NumericGreaterThanEquals => "a number",
                BooleanEquals | IsNull | IsPresent | IsNumeric | IsString | IsBoolean
                | IsTimestamp => "a boolean",
                _ => "a string",
            };
            self.schema(loc, format!("The value must be {want}, found {v}"));
            None
        }
    }

    fn choice(&mut self, f: &mut Fields<'_>, loc: &str) -> Option<Choice> {
        let cloc = at(loc, "Choices");
        let choices = match f.take("Choices") {
            Some(Value::Array(items)) if !items.is_empty() => {
                let mut rules = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let rloc = format!("{cloc}[{i}]");
                    if self.ql == QueryLanguage::Jsonata {
                        rules.extend(self.jsonata_rule(item, &rloc));
                    } else if let Some((condition, Some(next), assign)) =
                        self.condition(item, &rloc, true)
                    {
                        rules.push(ChoiceRule {
                            condition,
                            next,
                            assign,
                            output: None,
                        });
                    }
                }
                rules
            }
            Some(_) => {
                self.schema(cloc, "Choices must be a non-empty array of choice rules");
                Vec::new()
            }
            None => {
                self.schema(loc, "These fields are required: [Choices]");
                Vec::new()
            }
        };
        let default = f
            .take("Default")
            .and_then(|v| self.string(v, &at(loc, "Default")));
        Some(Choice { choices, default })
    }

    fn wait(&mut self, f: &mut Fields<'_>, loc: &str) -> Option<Wait> {
        let given: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
            .into_iter()
            .filter(|k| f.has(k))
            .collect();
        if given.len() != 1 {
            self.schema(
                loc,
                "A Wait state must have exactly one of Seconds, SecondsPath, Timestamp or TimestampPath",
            );
            for k in given {
                f.take(k);
            }
            return None;
        }
        let key = given[0];
        let v = f.take(key)?;
        let floc = at(loc, key);
        if self.ql == QueryLanguage::Jsonata
            && let Err(e) = self.expr_or_literal(v, &floc)?
        {
            return Some(Wait {
                wait: if key == "Seconds" {
                    WaitFor::SecondsExpr(e)
                } else {
                    WaitFor::TimestampExpr(e)
                },
            });
        }
        let wait = match key {
            "Seconds" => WaitFor::Seconds(self.uint(v, &floc, 0, MAX_INT)?),
            "SecondsPath" => WaitFor::SecondsPath(self.path(v, &floc)?),
            "TimestampPath" => WaitFor::TimestampPath(self.path(v, &floc)?),
            _ => {
                let s = self.string(v, &floc)?;
                match Timestamp::parse_rfc3339(&s) {
                    Some(t) => WaitFor::Timestamp(t.as_millis()),
                    None => {
                        self.schema(floc, "String does not match RFC3339 timestamp");
                        return None;
                    }
                }
            }
        };
        Some(Wait { wait })
    }

    fn parallel(&mut self, f: &mut Fields<'_>, loc: &str) -> Option<Parallel> {
        let bloc = at(loc, "Branches");
        let branches = match f.take("Branches") {
            Some(Value::Array(items)) if !items.is_empty() => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let iloc = format!("{bloc}[{i}]");
                    let Value::Object(o) = item else {
                        self.schema(iloc, "A branch must be a JSON object");
                        continue;
                    };
                    let mut bf = Fields::new(o);
                    self.comment(&mut bf, &iloc);
                    if let Some(q) = bf.take("QueryLanguage") {
                        self.query_language(q, &at(&iloc, "QueryLanguage"));
                    }
                    let m = self.machine(&mut bf, &iloc, &iloc);
                    self.finish(&bf, &iloc);
                    if let Some(m) = m {
                        out.push(m);
                    }
                }
                out
            }
            Some(_) => {
                self.schema(bloc, "Branches must be a non-empty array");
                Vec::new()
            }
            None => {
                self.schema(loc, "These fields are required: [Branches]");
                Vec::new()
            }
        };
        let parameters = self.parameters(f, loc);
        let result_selector = f
            .take("ResultSelector")
            .and_then(|v| self.template(v, &at(loc, "ResultSelector")));
        let result_path = self.result_path(f.take("ResultPath"), &at(loc, "ResultPath"));
        let retry = self.retriers(f.take("Retry"), loc);
        let catch = self.catchers(f.take("Catch"), loc);
        Some(Parallel {
            branches,
            parameters,
            result_selector,
            result_path,
            retry,
            catch,
        })
    }

    fn map(&mut self, f: &mut Fields<'_>, loc: &str) -> Option<Map> {
        let processor_v = f.take("ItemProcessor");
        let iterator_v = f.take("Iterator");
        let (pv, pname, legacy_iterator) = match (processor_v, iterator_v) {
            (Some(_), Some(_)) => {
                self.schema(
                    loc,
                    "Fields 'ItemProcessor' and 'Iterator' are mutually exclusive",
                );
                return None;
            }
            (Some(v), None) => (v, "ItemProcessor", false),
            (None, Some(v)) => (v, "Iterator", true),
            (None, None) => {
                self.schema(loc, "These fields are required: [ItemProcessor]");
                return None;
            }
        };
        let ploc = at(loc, pname);
        let Value::Object(po) = pv else {
            self.schema(ploc, format!("{pname} must be a JSON object"));
            return None;
        };
        let mut pf = Fields::new(po);
        self.comment(&mut pf, &ploc);
        // AWS refuses QueryLanguage here ("Field 'QueryLanguage' is not supported"): the
        // processor's states inherit the definition's.
        let mut mode = ProcessorMode::Inline;
        if let Some(cfg) = pf.take("ProcessorConfig") {
            let cloc = at(&ploc, "ProcessorConfig");
            match cfg {
                Value::Object(co) => {
                    let mut cf = Fields::new(co);
                    match cf.take("Mode").map(|m| m.as_str()) {
                        None | Some(Some("INLINE")) => {}
                        Some(Some("DISTRIBUTED")) => mode = ProcessorMode::Distributed,
                        Some(_) => self.schema(
                            at(&cloc, "Mode"),
                            "Mode must be \"INLINE\" or \"DISTRIBUTED\"",
                        ),
                    }
                    match cf.take("ExecutionType").map(|m| m.as_str()) {
                        None | Some(Some("STANDARD" | "EXPRESS")) => {}
                        Some(_) => self.schema(
                            at(&cloc, "ExecutionType"),
                            "ExecutionType must be \"STANDARD\" or \"EXPRESS\"",
                        ),
                    }
                    self.finish(&cf, &cloc);
                }
                _ => self.schema(cloc, "ProcessorConfig must be a JSON object"),
            }
        }
        let processor = self.machine(&mut pf, &ploc, &ploc);
        self.finish(&pf, &ploc);

        let items_path = self.path_field(f, "ItemsPath", loc);
        let items = match f.take("Items") {
            Some(v @ (Value::Array(_) | Value::String(_))) => {
                let t = self.jsonata_template(v, &at(loc, "Items"));
                if let Some(Template::Static(Value::String(_))) = &t {
                    self.schema(
                        at(loc, "Items"),
                        "Items must be a JSON array or a JSONata expression",
                    );
                    None
                } else {
                    t
                }
            }
            Some(_) => {
                self.schema(
                    at(loc, "Items"),
                    "Items must be a JSON array or a JSONata expression",
                );
                None
            }
            None => None,
        };
        let item_selector = match (f.take("ItemSelector"), f.take("Parameters")) {
            (Some(_), Some(_)) => {
                self.schema(
                    loc,
                    "Fields 'ItemSelector' and 'Parameters' are mutually exclusive",
                );
                None
            }
            (Some(v), None) if self.ql == QueryLanguage::Jsonata => {
                self.payload(v, &at(loc, "ItemSelector"))
            }
            (Some(v), None) => self.template(v, &at(loc, "ItemSelector")),
            (None, Some(v)) => self.template(v, &at(loc, "Parameters")),
            (None, None) => None,
        };
        let distributed_only = |r: &mut Reader, key: &str, present: bool| {
            if present && mode != ProcessorMode::Distributed {
                r.schema(
                    at(loc, key),
                    format!("Field '{key}' is only supported by a Map state in DISTRIBUTED mode"),
                );
            }
        };
        let item_reader = f.take("ItemReader").cloned();
        distributed_only(self, "ItemReader", item_reader.is_some());
        let item_batcher = f.take("ItemBatcher").cloned();
        distributed_only(self, "ItemBatcher", item_batcher.is_some());
        let result_writer = f.take("ResultWriter").cloned();
        distributed_only(self, "ResultWriter", result_writer.is_some());
        let max_concurrency = match (f.take("MaxConcurrency"), f.take("MaxConcurrencyPath")) {
            (Some(_), Some(_)) => {
                self.schema(
                    loc,
                    "Fields 'MaxConcurrency' and 'MaxConcurrencyPath' are mutually exclusive",
                );
                None
            }
            (Some(v), None) => self.uint_or_expr(v, &at(loc, "MaxConcurrency"), 0),
            (None, Some(v)) => self
                .path(v, &at(loc, "MaxConcurrencyPath"))
                .map(Dynamic::Path),
            (None, None) => None,
        };
        let tolerated_failure_percentage = match (
            f.take("ToleratedFailurePercentage"),
            f.take("ToleratedFailurePercentagePath"),
        ) {
            (Some(_), Some(_)) => {
                self.schema(
                    loc,
                    "Fields 'ToleratedFailurePercentage' and 'ToleratedFailurePercentagePath' are mutually exclusive",
                );
                None
            }
            (Some(v), None)
                if self.ql == QueryLanguage::Jsonata && matches!(v, Value::String(_)) =>
            {
                match self.expr_or_literal(v, &at(loc, "ToleratedFailurePercentage"))? {
                    Err(e) => Some(Dynamic::Expr(e)),
                    Ok(_) => {
                        self.schema(
                            at(loc, "ToleratedFailurePercentage"),
                            "ToleratedFailurePercentage must be a number between 0 and 100",
                        );
                        None
                    }
                }
            }
            (Some(v), None) => match v.as_f64() {
                Some(p) if (0.0..=100.0).contains(&p) => Some(Dynamic::Fixed(p)),
                _ => {
                    self.schema(
                        at(loc, "ToleratedFailurePercentage"),
                        "ToleratedFailurePercentage must be a number between 0 and 100",
                    );
                    None
                }
            },
            (None, Some(v)) => self
                .path(v, &at(loc, "ToleratedFailurePercentagePath"))
                .map(Dynamic::Path),
            (None, None) => None,
        };
        let tolerated_failure_count = match (
            f.take("ToleratedFailureCount"),
            f.take("ToleratedFailureCountPath"),
        ) {
            (Some(_), Some(_)) => {
                self.schema(
                    loc,
                    "Fields 'ToleratedFailureCount' and 'ToleratedFailureCountPath' are mutually exclusive",
                );
                None
            }
            (Some(v), None) => self.uint_or_expr(v, &at(loc, "ToleratedFailureCount"), 0),
            (None, Some(v)) => self
                .path(v, &at(loc, "ToleratedFailureCountPath"))
                .map(Dynamic::Path),
            (None, None) => None,
        };
        // AWS accepts the tolerated-failure fields on an inline Map too (the corpus's
        // JSONata Map cases), and applies them there.
        let label = match f.take("Label") {
            None => None,
            Some(v) => {
                let lloc = at(loc, "Label");
                let s = self.string(v, &lloc);
                if let Some(s) = &s {
                    self.check_label(s, &lloc);
                }
                distributed_only(self, "Label", true);
                s
            }
        };
        let result_selector = f
            .take("ResultSelector")
            .and_then(|v| self.template(v, &at(loc, "ResultSelector")));
        let result_path = self.result_path(f.take("ResultPath"), &at(loc, "ResultPath"));
        let retry = self.retriers(f.take("Retry"), loc);
        let catch = self.catchers(f.take("Catch"), loc);
        Some(Map {
            processor: processor?,
            mode,
            legacy_iterator,
            items_path,
            items,
            item_selector,
            item_reader,
            item_batcher,
            result_writer,
            max_concurrency,
            tolerated_failure_percentage,
            tolerated_failure_count,
            label,
            result_selector,
            result_path,
            retry,
            catch,
        })
    }

    /// A Map `Label`: 1 to 40 characters, none of whitespace, brackets, wildcards, the
    /// special characters `"#%\^|~`$&,;:/` or control characters.
    fn check_label(&mut self, s: &str, loc: &str) {
        if s.is_empty() || s.chars().count() > 40 {
            self.schema(loc, "Label must be 1 to 40 characters long");
            return;
        }
        if let Some((i, c)) = s.char_indices().find(|(_, c)| {
            c.is_whitespace()
                || c.is_control()
                || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(*c)
                || ('\u{7f}'..='\u{9f}').contains(c)
        }) {
            self.diags.push(
                Diagnostic::error(
                    code::SCHEMA_VALIDATION_FAILED,
                    loc,
                    format!("Label must not contain the character {c:?}"),
                )
                .with_span(i, i + c.len_utf8()),
            );
        }
    }
}
