//! `Diagnostic`: one problem found in a definition, in the shape of AWS's
//! ValidateStateMachineDefinition API (code, location, message, severity), plus the byte span
//! inside a path or intrinsic string when the problem is there.

use std::fmt;

use crate::json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
        }
    }
}

/// A byte range inside the string value at a diagnostic's location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// The codes AWS uses.
pub mod code {
    pub const INVALID_JSON_DESCRIPTION: &str = "INVALID_JSON_DESCRIPTION";
    pub const SCHEMA_VALIDATION_FAILED: &str = "SCHEMA_VALIDATION_FAILED";
    pub const MISSING_TRANSITION_TARGET: &str = "MISSING_TRANSITION_TARGET";
    pub const MISSING_END_STATE: &str = "MISSING_END_STATE";
    pub const DUPLICATE_STATE_NAME: &str = "DUPLICATE_STATE_NAME";
    /// A `{% %}` expression that does not parse.
    pub const INVALID_JSONATA_EXPRESSION: &str = "INVALID_JSONATA_EXPRESSION";
    /// A JSONata expression Step Functions refuses (a name read from no input).
    pub const UNSUPPORTED_JSONATA_EXPRESSION: &str = "UNSUPPORTED_JSONATA_EXPRESSION";
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    /// Where: a JSON-pointer-like path into the definition (`/States/Fetch/Next`); empty when
    /// the problem is the definition as a whole.
    pub location: String,
    pub message: String,
    pub span: Option<Span>,
}

impl Diagnostic {
    pub fn error(
        code: &'static str,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            location: location.into(),
            message: message.into(),
            span: None,
        }
    }

    pub fn with_span(mut self, start: usize, end: usize) -> Self {
        self.span = Some(Span { start, end });
        self
    }

    /// As the validate API prints it: `{"severity","code","message","location"}` (+ `span`).
    pub fn to_json(&self) -> Value {
        let mut pairs = vec![
            ("severity", Value::string(self.severity.as_str())),
            ("code", Value::string(self.code)),
            ("message", Value::from(self.message.clone())),
        ];
        if !self.location.is_empty() {
            pairs.push(("location", Value::from(self.location.clone())));
        }
        if let Some(s) = self.span {
            pairs.push((
                "span",
                Value::array(vec![Value::int(s.start as i64), Value::int(s.end as i64)]),
            ));
        }
        Value::object_from(pairs)
    }
}

impl fmt::Display for Diagnostic {
    /// `CODE: message at /location (characters a-b)`, AWS's own layout plus the span.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if !self.location.is_empty() {
            write!(f, " at {}", self.location)?;
        }
        if let Some(s) = self.span {
            write!(f, " (characters {}-{})", s.start, s.end)?;
        }
        Ok(())
    }
}
