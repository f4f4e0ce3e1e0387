//! Per-state counts: for every state of one plan, how often it was entered, left with an
//! output, failed (by error name), retried and caught, and how long executions spent in it.
//! One `StateCounts` belongs to one shard and is written only by that shard's thread (plain
//! relaxed loads and stores, no locked read-modify-write, no lock); readers on other threads
//! (a `/metrics` scrape, the workflow page) read each counter whole and merge the shards'.
//!
//! Time in state is measured on the execution's clock, which moves in milliseconds, from
//! entering the state to leaving it (with an output, through a Catch, or failing), retries
//! included. A state that finishes within the same millisecond counts as 0 ms.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::json::Str;

/// Upper bounds (ms, exclusive) of the time-in-state buckets; one more bucket takes the rest.
pub const DURATION_BOUNDS_MS: [u64; 16] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000,
];

/// Distinct error names kept per state; later names count as `OTHER_ERRORS`.
pub const ERROR_NAMES: usize = 8;
/// The name failures beyond `ERROR_NAMES` distinct ones are counted under (error names come
/// from task results, so a misbehaving resource must not grow the label set without bound).
pub const OTHER_ERRORS: &str = "(other)";

/// A counter one thread writes.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The counts of one state.
#[derive(Default, Debug)]
pub struct StateCount {
    pub entered: Counter,
    pub succeeded: Counter,
    pub retried: Counter,
    pub caught: Counter,
    /// Failures that left the state (not retried, not caught), by error name: a name is
    /// set once by the writer and never changes.
    errors: [(OnceLock<Str>, Counter); ERROR_NAMES],
    other_errors: Counter,
    /// Time in state, by `DURATION_BOUNDS_MS` bucket (the last one unbounded).
    pub duration: [Counter; DURATION_BOUNDS_MS.len() + 1],
    pub duration_sum_ms: Counter,
}

impl StateCount {
    /// Failures by error name (an error without a name counts as the empty name).
    pub fn failures(&self) -> Vec<(&str, u64)> {
        let mut out: Vec<(&str, u64)> = self
            .errors
            .iter()
            .filter_map(|(name, n)| name.get().map(|s| (s.as_str(), n.get())))
            .collect();
        if self.other_errors.get() > 0 {
            out.push((OTHER_ERRORS, self.other_errors.get()));
        }
        out
    }

    /// All failures, whatever their name.
    pub fn failed(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n.get()).sum::<u64>() + self.other_errors.get()
    }

    fn failed_with(&self, error: Option<&Str>) {
        let error = error.map_or("", Str::as_str);
        for (name, n) in &self.errors {
            match name.get() {
                Some(s) if s.as_str() == error => return n.add(1),
                Some(_) => {}
                None => {
                    // Only this shard's thread writes, so the slot is still empty here.
                    let _ = name.set(Str::new(error));
                    return n.add(1);
                }
            }
        }
        self.other_errors.add(1);
    }

    fn spent(&self, ms: i64) {
        let ms = ms.max(0) as u64;
        let bucket = DURATION_BOUNDS_MS
            .iter()
            .position(|&b| ms < b)
            .unwrap_or(DURATION_BOUNDS_MS.len());
        self.duration[bucket].add(1);
        self.duration_sum_ms.add(ms);
    }
}

/// The counts of every state of one plan, by state index, for one shard.
#[derive(Debug)]
pub struct StateCounts {
    states: Box<[StateCount]>,
}

impl StateCounts {
    pub fn new(states: usize) -> StateCounts {
        StateCounts {
            states: (0..states).map(|_| StateCount::default()).collect(),
        }
    }

    /// The counts of state `id` (the plan's index).
    pub fn state(&self, id: usize) -> Option<&StateCount> {
        self.states.get(id)
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    #[inline]
    pub(super) fn entered(&self, id: u32) {
        if let Some(s) = self.states.get(id as usize) {
            s.entered.add(1);
        }
    }

    #[inline]
    pub(super) fn succeeded(&self, id: u32, ms: i64) {
        if let Some(s) = self.states.get(id as usize) {
            s.succeeded.add(1);
            s.spent(ms);
        }
    }

    pub(super) fn retried(&self, id: u32) {
        if let Some(s) = self.states.get(id as usize) {
            s.retried.add(1);
        }
    }

    pub(super) fn caught(&self, id: u32, ms: i64) {
        if let Some(s) = self.states.get(id as usize) {
            s.caught.add(1);
            s.spent(ms);
        }
    }

    pub(super) fn failed(&self, id: u32, error: Option<&Str>, ms: i64) {
        if let Some(s) = self.states.get(id as usize) {
            s.failed_with(error);
            s.spent(ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_a_bounded_set_of_error_names() {
        let c = StateCounts::new(2);
        c.failed(1, Some(&Str::new("States.Timeout")), 3);
        c.failed(1, Some(&Str::new("States.Timeout")), 3);
        for i in 0..ERROR_NAMES + 2 {
            c.failed(1, Some(&Str::from(format!("E{i}"))), 0);
        }
        let s = c.state(1).unwrap();
        let f = s.failures();
        assert_eq!(f[0], ("States.Timeout", 2));
        assert_eq!(f.len(), ERROR_NAMES + 1);
        // E0..E6 took the seven free names; E7, E8 and E9 are "other".
        assert_eq!(f[ERROR_NAMES], (OTHER_ERRORS, 3));
        assert_eq!(s.failed(), 2 + ERROR_NAMES as u64 + 2);
        assert_eq!(c.state(0).unwrap().failed(), 0);
    }

    #[test]
    fn time_in_state_falls_in_the_first_bucket_above_it() {
        let c = StateCounts::new(1);
        c.succeeded(0, 0);
        c.succeeded(0, 1);
        c.caught(0, 999);
        c.failed(0, None, 400_000);
        let s = c.state(0).unwrap();
        let counts: Vec<u64> = s.duration.iter().map(Counter::get).collect();
        assert_eq!(counts[0], 1, "0 ms is below 1 ms");
        assert_eq!(counts[1], 1, "1 ms is below 2 ms");
        assert_eq!(counts[9], 1, "999 ms is below 1000 ms");
        assert_eq!(counts[16], 1, "beyond the last bound");
        assert_eq!(s.duration_sum_ms.get(), 401_000);
        assert_eq!((s.succeeded.get(), s.caught.get(), s.failed()), (2, 1, 1));
        assert_eq!(s.failures(), vec![("", 1)]);
        // An index beyond the plan's states is ignored, not a panic.
        c.entered(7);
    }
}
