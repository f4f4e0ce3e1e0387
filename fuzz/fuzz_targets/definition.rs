//! Any bytes as a definition: parse and validate must give diagnostics, never panic; a
//! definition that validates must compile and run on a small input without panicking.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use stepstream::asl::{self, MachineType};
use stepstream::exec::{Execution, Poll, Start};
use stepstream::json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = asl::load(data, MachineType::Express) else {
        return;
    };
    let plan = Arc::new(stepstream::plan::compile(&v, "fuzz"));
    let mut exec = Execution::new(plan, Start::new("e", Value::empty_object(), 0));
    let mut reqs = Vec::new();
    let mut now = 0;
    for _ in 0..64 {
        match exec.poll(now, &mut reqs) {
            Poll::Done(_) => break,
            Poll::Pending { wake_at } => {
                for r in reqs.drain(..) {
                    exec.complete(r.token, Ok(r.input));
                }
                now = wake_at.unwrap_or(now + 1000);
            }
        }
    }
});
