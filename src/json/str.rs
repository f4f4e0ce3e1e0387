//! `Str`: the string type of JSON values and object keys.
//!
//! Most keys and many values in event payloads are short (`deviceId`, `eu-west-1`), so strings of
//! up to 22 bytes live inline in the 24-byte value and cost no allocation; longer ones are an
//! `Arc<str>`, so cloning any `Str` is O(1). Parsing a 1 KB IoT event allocates only for its few
//! long strings this way.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

const INLINE_CAP: usize = 22;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE_CAP] },
    Heap(Arc<str>),
}

/// An immutable UTF-8 string, inline when short, shared when long.
#[derive(Clone)]
pub struct Str(Repr);

impl Str {
    /// Makes a `Str` from text, inline when it fits.
    #[inline]
    pub fn new(s: &str) -> Str {
        let bytes = s.as_bytes();
        if bytes.len() <= INLINE_CAP {
            let mut buf = [0u8; INLINE_CAP];
            buf[..bytes.len()].copy_from_slice(bytes);
            Str(Repr::Inline {
                len: bytes.len() as u8,
                buf,
            })
        } else {
            Str(Repr::Heap(Arc::from(s)))
        }
    }

    /// The empty string.
    pub const fn empty() -> Str {
        Str(Repr::Inline {
            len: 0,
            buf: [0; INLINE_CAP],
        })
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // SAFETY: `buf[..len]` is always a copy of a whole `&str` (see `new`).
            Repr::Inline { len, buf } => unsafe {
                std::str::from_utf8_unchecked(buf.get_unchecked(..*len as usize))
            },
            Repr::Heap(s) => s,
        }
    }
}

impl Deref for Str {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Str {
    #[inline]
    fn eq(&self, other: &Str) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Str {}

impl PartialEq<str> for Str {
    #[inline]
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Str {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Str {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Str {
        Str::new(s)
    }
}

impl From<String> for Str {
    fn from(s: String) -> Str {
        if s.len() <= INLINE_CAP {
            Str::new(&s)
        } else {
            Str(Repr::Heap(Arc::from(s)))
        }
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_inline_and_long_ones_shared() {
        let short = Str::new("eu-west-1");
        assert!(matches!(short.0, Repr::Inline { .. }));
        assert_eq!(&*short, "eu-west-1");
        let exact = Str::new("0123456789012345678901");
        assert!(matches!(exact.0, Repr::Inline { .. }));
        let long = Str::new("sites/b7/floor3/thermo-eu-00042/telemetry");
        assert!(matches!(long.0, Repr::Heap(_)));
        assert_eq!(long.clone(), long);
        assert_eq!(&*long, "sites/b7/floor3/thermo-eu-00042/telemetry");
    }

    #[test]
    fn str_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Str>(), 24);
    }
}
