//! Any text as a JSONPath: parse errors are data; a parsed path reads and writes a document
//! without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stepstream::json::{self, Value};
use stepstream::jsonpath::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = Path::parse(text) else {
        return;
    };
    let mut doc = json::parse(br#"{"a":{"b":[1,2,{"c":null}],"d":"x"},"e":[[1],[2,3]],"f":1.5}"#).unwrap();
    let _ = p.select(&doc);
    if p.is_reference() {
        let _ = p.set(&mut doc, Value::int(7));
    }
});
