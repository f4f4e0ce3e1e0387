//! At-least-once bookkeeping: which consumed offsets of each partition are still on their
//! way, and so which offset may be committed. A record counts as done only when its output
//! (or dead letter) has been acknowledged by the broker; the commit point of a partition is its
//! oldest record not yet done, so no committed offset ever passes an unfinished record, and a
//! crash or rebalance re-runs at most the records in flight.

use std::collections::{HashMap, VecDeque};

use crate::json::Str;

#[derive(Debug, Default)]
struct Partition {
    /// Offsets consumed, in order, with whether each is done.
    window: VecDeque<(i64, bool)>,
    /// The next offset to commit (one past the last contiguous done offset).
    committable: Option<i64>,
}

/// Per-partition windows of offsets in flight.
#[derive(Debug, Default)]
pub struct Offsets {
    parts: HashMap<(Str, i32), Partition>,
    pending: usize,
}

impl Offsets {
    pub fn new() -> Offsets {
        Offsets::default()
    }

    /// Records consumed and not yet done, over all partitions.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Pending records of one partition.
    pub fn pending_in(&self, topic: &str, partition: i32) -> usize {
        self.parts
            .get(&(Str::new(topic), partition))
            .map_or(0, |p| p.window.iter().filter(|(_, done)| !done).count())
    }

    /// A record was consumed. Offsets of a partition arrive in increasing order.
    pub fn begin(&mut self, topic: &Str, partition: i32, offset: i64) {
        let p = self.parts.entry((topic.clone(), partition)).or_default();
        p.window.push_back((offset, false));
        self.pending += 1;
    }

    /// A record's result was acknowledged. Returns the partition's new commit point (the next
    /// offset to consume) when it moved.
    pub fn finish(&mut self, topic: &Str, partition: i32, offset: i64) -> Option<i64> {
        let p = self.parts.get_mut(&(topic.clone(), partition))?;
        let i = p.window.binary_search_by_key(&offset, |(o, _)| *o).ok()?;
        if p.window[i].1 {
            return None;
        }
        p.window[i].1 = true;
        self.pending -= 1;
        let mut moved = None;
        while let Some(&(o, true)) = p.window.front() {
            p.window.pop_front();
            moved = Some(o + 1);
        }
        if let Some(c) = moved {
            p.committable = Some(c);
        }
        moved
    }

    /// The partition's commit point, if any record of it has been done.
    pub fn committable(&self, topic: &str, partition: i32) -> Option<i64> {
        self.parts
            .get(&(Str::new(topic), partition))
            .and_then(|p| p.committable)
    }

    /// Forgets a partition (revoked or lost): results that still arrive for it are ignored;
    /// its new owner re-runs what was not committed.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        if let Some(p) = self.parts.remove(&(Str::new(topic), partition)) {
            self.pending -= p.window.iter().filter(|(_, done)| !done).count();
        }
    }

    /// The partitions known, with their commit points.
    pub fn commit_points(&self) -> Vec<(Str, i32, i64)> {
        self.parts
            .iter()
            .filter_map(|((t, p), part)| part.committable.map(|c| (t.clone(), *p, c)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_point_never_passes_an_unfinished_record() {
        let t = Str::new("in");
        let mut o = Offsets::new();
        for off in 10..15 {
            o.begin(&t, 0, off);
        }
        assert_eq!(o.pending(), 5);
        assert_eq!(o.finish(&t, 0, 12), None);
        assert_eq!(o.finish(&t, 0, 11), None);
        assert_eq!(o.committable("in", 0), None);
        assert_eq!(o.finish(&t, 0, 10), Some(13));
        assert_eq!(o.finish(&t, 0, 14), None);
        assert_eq!(o.committable("in", 0), Some(13));
        assert_eq!(o.finish(&t, 0, 13), Some(15));
        assert_eq!(o.pending(), 0);
        // Twice the same acknowledgement, or one for an offset never seen: nothing moves.
        assert_eq!(o.finish(&t, 0, 13), None);
        assert_eq!(o.finish(&t, 0, 99), None);
    }

    #[test]
    fn partitions_are_independent_and_can_be_forgotten() {
        let t = Str::new("in");
        let mut o = Offsets::new();
        o.begin(&t, 0, 0);
        o.begin(&t, 1, 0);
        o.begin(&t, 1, 1);
        assert_eq!(o.finish(&t, 1, 0), Some(1));
        assert_eq!(o.pending_in("in", 1), 1);
        o.forget("in", 1);
        assert_eq!(o.pending(), 1);
        assert_eq!(o.finish(&t, 1, 1), None);
        assert_eq!(o.finish(&t, 0, 0), Some(1));
    }
}
