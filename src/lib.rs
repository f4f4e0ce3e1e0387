//! stepstream runs AWS Step Functions Express workflows (Amazon States Language) on streams of
//! events: one short-lived execution per event, with AWS's semantics.
//!
//! ```text
//! definition JSON --asl::parse--> Definition --asl::validate--> Validated --plan::compile--> Plan
//!                                                                                              |
//! event (stdin line, Kafka record) --> stream::shard (by key) --> exec: Execution::poll(&Plan) --> Outcome
//!                                                                                              |
//!                                  output / dead letter <-- SUCCEEDED | FAILED | TIMED_OUT <---
//! ```
//!
//! * [`asl`]: parse and validate definitions; every problem is a [`asl::Diagnostic`].
//! * [`plan`]: compile a validated definition into a flat, index-addressed [`plan::Plan`].
//! * [`exec`]: the pure step function that runs one execution of a plan.
//! * [`graph`]: a definition drawn as a graph (SVG for the workflow page, Graphviz DOT).
//! * [`tasks`]: the resources tasks call, and mocks.
//! * [`stream`]: shards, sources and sinks, dead letters.
//! * [`json`], [`jsonpath`], [`intrinsics`], [`time`], [`random`]: the languages and values.
//!
//! Running one execution:
//!
//! ```
//! use stepstream::asl::{self, MachineType};
//! use stepstream::exec::{Execution, Outcome, Poll, Start};
//! use stepstream::json;
//!
//! let definition = br#"{"StartAt":"Hello","States":{"Hello":{"Type":"Pass",
//!     "Parameters":{"greeting.$":"States.Format('hello {}', $.name)"},"End":true}}}"#;
//! let validated = asl::load(definition, MachineType::Express).expect("a valid definition");
//! let plan = stepstream::plan::compile(&validated, "hello");
//!
//! let input = json::parse(br#"{"name":"world"}"#).unwrap();
//! let mut execution = Execution::new(&plan, Start::new("exec-1", input, 0));
//! let mut task_requests = Vec::new();
//! let Poll::Done(Outcome::Succeeded(output)) = execution.poll(&plan, 0, &mut task_requests) else {
//!     panic!("a Pass state needs nothing from outside");
//! };
//! assert_eq!(json::to_string(&output), r#"{"greeting":"hello world"}"#);
//! ```

pub mod api;
pub mod asl;
pub mod config;
pub mod exec;
pub mod graph;
pub mod intrinsics;
pub mod json;
pub mod jsonata;
pub mod jsonpath;
pub mod log;
pub mod metrics;
pub mod plan;
pub mod random;
pub mod server;
pub mod stream;
pub mod tasks;
pub mod time;
