//! `Error`: a JSONata error as data. The code is JSONata's own (`S0201` for syntax, `T2001` for
//! a type error, `D3030` for a dynamic error, `U1001` for a limit), with the character position
//! in the expression text where it is known and a message that names the offending token.

use std::fmt;

/// One JSONata error: code, position (a character offset into the expression, 0 when unknown),
/// the token involved when there is one, and the message a person reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub code: &'static str,
    pub position: usize,
    pub token: Option<String>,
    pub message: String,
}

impl Error {
    /// An error without a position; the evaluator adds the position of the node it was
    /// evaluating when the error passes through it.
    pub fn new(code: &'static str, message: impl Into<String>) -> Error {
        Error {
            code,
            position: 0,
            token: None,
            message: message.into(),
        }
    }

    /// The same error at `position` (a character offset), unless it already has one.
    pub fn at(mut self, position: usize) -> Error {
        if self.position == 0 {
            self.position = position;
        }
        self
    }

    /// The same error naming `token`, unless it already names one.
    pub fn token(mut self, token: impl Into<String>) -> Error {
        if self.token.is_none() {
            self.token = Some(token.into());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at position {}: {}",
            self.code, self.position, self.message
        )
    }
}

impl std::error::Error for Error {}

/// Shorthand for a result of a JSONata operation.
pub type Result<T> = std::result::Result<T, Error>;
