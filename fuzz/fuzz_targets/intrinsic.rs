//! Any text as an intrinsic call: parse errors are data; a parsed call evaluates against a
//! document to a value or an error, without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stepstream::intrinsics::{Call, Scope};
use stepstream::json::{self, Value};
use stepstream::jsonpath::{Path, PathError};
use stepstream::random::Rng;

struct Doc(Value, Rng);

impl Scope for Doc {
    fn select(&mut self, path: &Path) -> Result<Value, PathError> {
        path.select(&self.0).map(|s| s.into_owned())
    }
    fn rng(&mut self) -> &mut Rng {
        &mut self.1
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(call) = Call::parse(text) else {
        return;
    };
    let doc = json::parse(br#"{"s":"a,b","n":3,"a":[1,2,3],"o":{"k":"v"},"j":"{\"x\":1}"}"#).unwrap();
    let mut scope = Doc(doc, Rng::new(1));
    let _ = call.eval(&mut scope);
});
