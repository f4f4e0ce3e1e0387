//! Any text as a JSONata expression: the first line is the expression, the rest an input
//! document (undefined input when it isn't JSON). Compile errors are data; a compiled
//! expression evaluates within fuzzer-sized limits to a value or a coded error, without
//! panicking, overflowing the stack or hanging.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stepstream::json;
use stepstream::jsonata::{self, Limits, Options};

fuzz_target!(|data: &[u8]| {
    let (expr, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(expr) else {
        return;
    };
    let Ok(e) = jsonata::compile(text) else {
        return;
    };
    let input = json::parse(rest).ok();
    let options = Options {
        limits: Limits {
            max_depth: 500,
            time_limit_ms: 1000,
        },
        now_millis: Some(1_700_000_000_000),
        seed: Some(1),
        ..Options::default()
    };
    let _ = e.evaluate_with(input.as_ref(), &[], &options);
});
