//! The AWS Step Functions API (`stepstream serve`): the clients people already have (boto3,
//! the AWS CLI, the SDKs) create state machines and run executions here unchanged.
//!
//! - `http`: the AWS JSON 1.0 protocol over HTTP/1.1, limits, request ids.
//! - `service`: the actions, the store of state machines and executions, and the shard pool
//!   executions run on (an API request is one more source, its response one more sink).
//! - `state_dir`: state machines and tags kept across restarts.
//! - `sigv4`: Signature Version 4 checks, for listeners beyond loopback.

pub mod http;
pub mod service;
pub mod sigv4;
mod state_dir;

pub use http::{Limits, serve};
pub use service::{Service, Settings};

use std::fmt;

/// An error the API answers with: the `__type` code and the message, as the service words
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}
