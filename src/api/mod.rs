//! The AWS Step Functions API.

pub mod sigv4;
