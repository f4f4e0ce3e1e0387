//! Any bytes as JSON: parse or a located error; what parses writes back to text that parses
//! to an equal value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stepstream::json;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = json::parse(data) {
        let text = json::to_string(&v);
        let again = json::parse(text.as_bytes()).expect("written JSON parses");
        assert!(again == v, "round trip changed the value: {text}");
        assert_eq!(json::encoded_len(&v), text.len());
    }
});
