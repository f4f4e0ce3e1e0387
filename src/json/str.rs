//! `Str`: the string type of JSON values and object keys.
//!
//! Most keys and many values in event payloads are short (`deviceId`, `eu-west-1`), so strings of
//! up to 23 bytes live inline in the 24-byte value and cost no allocation; longer ones are an
//! `Arc<str>`, so cloning any `Str` is O(1).
//!
//! Layout: 23 data bytes then a tag byte (the inline length, or `HEAP`), 8-byte aligned, so a
//! `Str` moves as three machine words. An earlier `enum { Inline { len: u8, buf: [u8; 22] },
//! Heap(Arc<str>) }` was moved byte-piecewise by the compiler and stalled on store
//! forwarding: those moves were the hottest instructions of JSON parsing in a profile
//! (`perf record` of the parse loop over the 1 KB IoT event). The tag is an enum with 24
//! values, so `Value` still finds a niche for its own tag and stays 24 bytes.

use std::borrow::Borrow;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::Arc;

const INLINE_CAP: usize = 23;

/// The length of an inline string, or `Heap`. 24 values: the other 232 are a niche.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[allow(dead_code)] // variants are made by transmuting a checked length
enum Tag {
    L0 = 0,
    L1,
    L2,
    L3,
    L4,
    L5,
    L6,
    L7,
    L8,
    L9,
    L10,
    L11,
    L12,
    L13,
    L14,
    L15,
    L16,
    L17,
    L18,
    L19,
    L20,
    L21,
    L22,
    L23,
    Heap,
}

/// An immutable UTF-8 string, inline when short, shared when long.
#[repr(C, align(8))]
pub struct Str {
    /// Inline: the bytes, zero padded. Heap: the `Arc<str>` fat pointer in the first 16.
    data: [u8; INLINE_CAP],
    tag: Tag,
}

// SAFETY: a `Str` is either plain bytes or an `Arc<str>`, both Send and Sync.
unsafe impl Send for Str {}
unsafe impl Sync for Str {}

impl Str {
    /// Makes a `Str` from text, inline when it fits.
    #[inline(always)]
    pub fn new(s: &str) -> Str {
        let bytes = s.as_bytes();
        if bytes.len() <= INLINE_CAP {
            Str::inline(bytes)
        } else {
            Str::heap(Arc::from(s))
        }
    }

    /// An inline string built in registers: the bytes are read with (overlapping) word loads
    /// and shifted into place, so the result is written as three whole words. A byte-sized
    /// copy into a stack buffer made the next word-sized read of it stall on store
    /// forwarding, the hottest spot of parsing in a profile.
    #[inline(always)]
    fn inline(b: &[u8]) -> Str {
        let n = b.len();
        debug_assert!(n <= INLINE_CAP);
        let load8 = |at: usize| -> u64 {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let load4 = |at: usize| -> u64 {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[at..at + 4]);
            u32::from_le_bytes(w) as u64
        };
        let (w0, w1, w2) = if n >= 16 {
            let tail = if n == 16 {
                0
            } else {
                load8(n - 8) >> (8 * (24 - n))
            };
            (load8(0), load8(8), tail)
        } else if n >= 8 {
            let tail = if n == 8 {
                0
            } else {
                load8(n - 8) >> (8 * (16 - n))
            };
            (load8(0), tail, 0)
        } else if n >= 4 {
            let tail = if n == 4 {
                0
            } else {
                (load4(n - 4) >> (8 * (8 - n))) << 32
            };
            (load4(0) | tail, 0, 0)
        } else {
            let mut w = 0u64;
            for (k, &c) in b.iter().enumerate() {
                w |= (c as u64) << (8 * k);
            }
            (w, 0, 0)
        };
        let w2 = w2 | ((n as u64) << 56);
        let words = [w0.to_le(), w1.to_le(), w2.to_le()];
        // SAFETY: 24 initialized bytes, the first `n` being the text and the rest zero, and
        // byte 23 (the tag) holding `n` <= 23, a valid `Tag`.
        unsafe { std::mem::transmute::<[u64; 3], Str>(words) }
    }

    #[inline(never)]
    fn heap(a: Arc<str>) -> Str {
        let raw: *const str = Arc::into_raw(a);
        let mut data = [0u8; INLINE_CAP];
        // SAFETY: a `*const str` is 16 bytes (address, length) and fits in `data`; it is read
        // back only by `arc`, with the same type.
        unsafe { std::ptr::write_unaligned(data.as_mut_ptr() as *mut *const str, raw) };
        Str {
            data,
            tag: Tag::Heap,
        }
    }

    /// The shared string, without touching its count (do not drop it).
    #[inline]
    fn arc(&self) -> ManuallyDrop<Arc<str>> {
        debug_assert!(self.tag == Tag::Heap);
        // SAFETY: for `Tag::Heap`, `data` holds a pointer from `Arc::into_raw` that this
        // `Str` owns one count of; `ManuallyDrop` keeps that count untouched.
        unsafe {
            let raw = std::ptr::read_unaligned(self.data.as_ptr() as *const *const str);
            ManuallyDrop::new(Arc::from_raw(raw))
        }
    }

    /// The empty string.
    pub const fn empty() -> Str {
        Str {
            data: [0; INLINE_CAP],
            tag: Tag::L0,
        }
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        if self.tag == Tag::Heap {
            // SAFETY: the Arc lives as long as `self` (it owns a count), so the text does too.
            unsafe {
                let raw = std::ptr::read_unaligned(self.data.as_ptr() as *const *const str);
                &*raw
            }
        } else {
            // SAFETY: `data[..tag]` is a copy of a whole `&str` (see `new`).
            unsafe { std::str::from_utf8_unchecked(self.data.get_unchecked(..self.tag as usize)) }
        }
    }

    /// The three words of the representation, for fast comparison of inline strings.
    #[inline]
    fn words(&self) -> [u64; 3] {
        // SAFETY: `Str` is 24 bytes, 8-aligned, all bytes initialized.
        unsafe { std::mem::transmute_copy(self) }
    }

    fn is_heap(&self) -> bool {
        self.tag == Tag::Heap
    }
}

impl Clone for Str {
    #[inline]
    fn clone(&self) -> Str {
        if self.is_heap() {
            Str::heap(Arc::clone(&self.arc()))
        } else {
            Str {
                data: self.data,
                tag: self.tag,
            }
        }
    }
}

impl Drop for Str {
    #[inline]
    fn drop(&mut self) {
        if self.is_heap() {
            // SAFETY: this `Str` owns one count of the Arc; release it once.
            unsafe { ManuallyDrop::drop(&mut self.arc()) }
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
    /// The representation is canonical (inline exactly when 23 bytes or fewer, zero padded),
    /// so two inline strings are equal when their three words are.
    #[inline]
    fn eq(&self, other: &Str) -> bool {
        match (self.is_heap(), other.is_heap()) {
            (false, false) => self.words() == other.words(),
            (true, true) => {
                let (a, b) = (self.arc(), other.arc());
                Arc::ptr_eq(&a, &b) || **a == **b
            }
            _ => false,
        }
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
            Str::heap(Arc::from(s))
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
        assert!(!short.is_heap());
        assert_eq!(&*short, "eu-west-1");
        let exact = Str::new("01234567890123456789012");
        assert!(!exact.is_heap());
        assert_eq!(&*exact, "01234567890123456789012");
        let long = Str::new("sites/b7/floor3/thermo-eu-00042/telemetry");
        assert!(long.is_heap());
        let copy = long.clone();
        assert_eq!(copy, long);
        drop(long);
        assert_eq!(&*copy, "sites/b7/floor3/thermo-eu-00042/telemetry");
    }

    #[test]
    fn equality_holds_across_constructors() {
        let long = "a string longer than twenty-three bytes";
        assert_eq!(Str::new(long), Str::from(long.to_string()));
        assert_eq!(Str::new("short"), Str::from("short".to_string()));
        assert_ne!(Str::new("short"), Str::new("shorT"));
        assert_ne!(Str::new(""), Str::new("a"));
        assert_eq!(Str::empty(), Str::new(""));
    }

    #[test]
    fn every_inline_length_round_trips() {
        let text = "abcdefghijklmnopqrstuvwxyz";
        for n in 0..=INLINE_CAP {
            let s = Str::new(&text[..n]);
            assert!(!s.is_heap());
            assert_eq!(s.as_str(), &text[..n], "length {n}");
            assert_eq!(s, Str::new(&text[..n]));
            if n > 0 {
                assert_ne!(s, Str::new(&text[1..n + 1]));
            }
        }
        assert_eq!(Str::new("héllo wörld ✓").as_str(), "héllo wörld ✓");
    }

    #[test]
    fn heap_counts_are_balanced() {
        let a: Arc<str> = Arc::from("x".repeat(40).as_str());
        let s = Str::heap(Arc::clone(&a));
        assert_eq!(Arc::strong_count(&a), 2);
        let t = s.clone();
        assert_eq!(Arc::strong_count(&a), 3);
        drop(s);
        drop(t);
        assert_eq!(Arc::strong_count(&a), 1);
    }

    #[test]
    fn str_is_24_bytes_with_a_niche() {
        assert_eq!(std::mem::size_of::<Str>(), 24);
        assert_eq!(std::mem::size_of::<Option<Str>>(), 24);
    }
}
