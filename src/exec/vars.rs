//! Workflow variables at run time: one frame of slots per scope (the execution's top level,
//! each Parallel branch, each Map iteration). A frame reads through to its parent, except
//! a distributed Map iteration's, which starts a scope of its own as AWS's child workflows
//! do. Slots are numbered by the plan (`Plan::variables`), so nothing is looked up by name;
//! values are shared (`Value` clones are reference counts), never deep-copied.

use crate::json::Value;

/// No frame: the end of a chain, or an execution without variables.
pub const NO_FRAME: u32 = u32::MAX;

/// AWS's limit for the values of one `Assign`, and for one variable.
pub const ASSIGN_LIMIT: u64 = 256 * 1024;

/// AWS's limit for all variables of an execution together.
pub const TOTAL_LIMIT: u64 = 10 * 1024 * 1024;

struct Frame {
    parent: u32,
    values: Vec<Option<Value>>,
    /// Encoded-length bounds of the values, for the execution-wide limit.
    sizes: Vec<u64>,
}

/// Every frame of one execution, reused through a free list.
#[derive(Default)]
pub struct Frames {
    frames: Vec<Frame>,
    free: Vec<u32>,
    /// Sum of the bounds of all values held.
    total: u64,
}

impl Frames {
    /// Opens a frame of `slots` empty slots under `parent` (`NO_FRAME` for none).
    pub fn open(&mut self, parent: u32, slots: usize) -> u32 {
        match self.free.pop() {
            Some(id) => {
                let f = &mut self.frames[id as usize];
                f.parent = parent;
                f.values.resize(slots, None);
                f.sizes.resize(slots, 0);
                id
            }
            None => {
                self.frames.push(Frame {
                    parent,
                    values: vec![None; slots],
                    sizes: vec![0; slots],
                });
                (self.frames.len() - 1) as u32
            }
        }
    }

    /// Closes a frame: its values are dropped and its slot reused.
    pub fn close(&mut self, id: u32) {
        if let Some(f) = self.frames.get_mut(id as usize) {
            self.total -= f.sizes.iter().sum::<u64>();
            f.values.iter_mut().for_each(|v| *v = None);
            f.sizes.iter_mut().for_each(|s| *s = 0);
            self.free.push(id);
        }
    }

    /// The value of `slot` seen from `frame`: its own, else the nearest parent's.
    pub fn get(&self, mut frame: u32, slot: u16) -> Option<&Value> {
        while let Some(f) = self.frames.get(frame as usize) {
            if let Some(Some(v)) = f.values.get(slot as usize) {
                return Some(v);
            }
            frame = f.parent;
        }
        None
    }

    /// Sets `slot` in `frame`; `Err` with the new total when the execution's variables
    /// would exceed `TOTAL_LIMIT` (nothing is changed then).
    pub fn set(&mut self, frame: u32, slot: u16, value: Value, size: u64) -> Result<(), u64> {
        let Some(f) = self.frames.get_mut(frame as usize) else {
            return Ok(());
        };
        let Some(old) = f.sizes.get(slot as usize).copied() else {
            return Ok(());
        };
        let total = self.total - old + size;
        if total > TOTAL_LIMIT {
            return Err(total);
        }
        f.values[slot as usize] = Some(value);
        f.sizes[slot as usize] = size;
        self.total = total;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_frames_read_through_and_shadow_without_touching_the_outer() {
        let mut fr = Frames::default();
        let top = fr.open(NO_FRAME, 2);
        fr.set(top, 0, Value::int(1), 1).unwrap();
        let inner = fr.open(top, 2);
        assert_eq!(fr.get(inner, 0), Some(&Value::int(1)));
        fr.set(inner, 0, Value::int(2), 1).unwrap();
        assert_eq!(fr.get(inner, 0), Some(&Value::int(2)));
        assert_eq!(fr.get(top, 0), Some(&Value::int(1)));
        assert_eq!(fr.get(inner, 1), None);
        let separate = fr.open(NO_FRAME, 2);
        assert_eq!(
            fr.get(separate, 0),
            None,
            "a distributed iteration sees no outer value"
        );
        fr.close(inner);
        let reused = fr.open(top, 2);
        assert_eq!(reused, inner);
        assert_eq!(
            fr.get(reused, 0),
            Some(&Value::int(1)),
            "a reused frame starts empty"
        );
    }

    #[test]
    fn the_execution_wide_limit_refuses_and_keeps_the_old_value() {
        let mut fr = Frames::default();
        let top = fr.open(NO_FRAME, 1);
        fr.set(top, 0, Value::int(1), TOTAL_LIMIT).unwrap();
        assert!(fr.set(top, 0, Value::int(2), TOTAL_LIMIT + 1).is_err());
        assert_eq!(fr.get(top, 0), Some(&Value::int(1)));
        // Replacing a value frees its share first.
        fr.set(top, 0, Value::int(3), 10).unwrap();
        let other = fr.open(NO_FRAME, 1);
        fr.set(other, 0, Value::int(4), TOTAL_LIMIT - 10).unwrap();
    }
}
