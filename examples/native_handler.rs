//! A workflow whose Task is a Rust function: `cargo run --release --example native_handler`.
//!
//! The definition is the one you would deploy to AWS (its Task names a Lambda function); here
//! that ARN is bound to a native handler, and a failure it returns is retried and caught like a
//! Lambda error.

use std::sync::Arc;

use stepstream::asl::{self, MachineType};
use stepstream::exec::{Outcome, TaskError};
use stepstream::json::{self, Value};
use stepstream::stream::driver;
use stepstream::tasks::Registry;

const DEFINITION: &str = r#"{
  "StartAt": "Price",
  "States": {
    "Price": {
      "Type": "Task",
      "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:price",
      "Retry": [{"ErrorEquals": ["Price.Busy"], "IntervalSeconds": 1, "MaxAttempts": 2}],
      "Catch": [{"ErrorEquals": ["Price.Unknown"], "ResultPath": "$.error", "Next": "Unpriced"}],
      "ResultPath": "$.price",
      "End": true
    },
    "Unpriced": {"Type": "Pass", "End": true}
  }
}"#;

fn main() {
    let validated = asl::load(DEFINITION.as_bytes(), MachineType::Express).expect("valid");
    let plan = Arc::new(stepstream::plan::compile(&validated, "pricing"));
    let mut registry = Registry::new();
    registry.native("arn:aws:lambda:*:function:price", |call| {
        let sku = call.input.get("sku").and_then(Value::as_str).unwrap_or("");
        match sku {
            "A-1" => Ok(Value::object_from([
                ("amount", Value::int(1250)),
                ("currency", Value::string("EUR")),
            ])),
            _ => Err(TaskError::new(
                "Price.Unknown",
                format!("no price for sku '{sku}'"),
            )),
        }
    });
    let registry = Arc::new(registry);
    for input in [r#"{"sku":"A-1"}"#, r#"{"sku":"Z-9"}"#] {
        let f = driver::run_one(
            Arc::clone(&plan),
            Arc::clone(&registry),
            "example",
            json::parse(input.as_bytes()).unwrap(),
            None,
        );
        match f.outcome {
            Outcome::Succeeded(v) => println!("{input} -> {v}"),
            other => println!("{input} -> {other:?}"),
        }
    }
}
