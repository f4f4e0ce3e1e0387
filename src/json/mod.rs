//! JSON for the whole crate: the `Value` model (shared, ordered, cheap to copy), the parser from
//! bytes (simd-json underneath) and the writer (Jackson's layout, as AWS prints results).

mod direct;
mod parse;
mod str;
mod value;
mod write;

pub use parse::{ParseError, Parser, parse};
pub use str::Str;
pub use value::{Array, Number, Object, Value};
pub use write::{
    encoded_len, to_string, to_string_pretty, write, write_number, write_str, write_str_to_string,
};

/// Stack for a thread that parses, writes or walks values nested up to the depth limit, with
/// room to spare (debug builds use far bigger frames than release builds).
pub const STACK_FOR_DEPTH: usize = 64 * 1024 * 1024;
