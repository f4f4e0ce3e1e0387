//! stepstream: AWS Step Functions Express workflows (Amazon States Language) run on streams.

pub mod asl;
pub mod bench;
pub mod driver;
pub mod exec;
pub mod intrinsics;
pub mod json;
pub mod jsonpath;
pub mod plan;
pub mod random;
pub mod stream;
pub mod tasks;
pub mod time;
