//! At-least-once bookkeeping: which consumed offsets of each partition are still on their
//! way, and so which offset may be committed. A record counts as done only when its output
//! (or dead letter) has been acknowledged by the broker; the commit point of a partition is its
//! oldest record not yet done, so no committed offset ever passes an unfinished record, and a
//! crash or rebalance re-runs at most the records in flight.
//!
//! Each partition owns its `Window` (Vector's ordered finalizer, per partition): the
//! partition's reader and the sinks acknowledging its results meet only there, so no lock is
//! shared between partitions, and a record carries its window to the sink (no lookup by
//! name per record). Only the total of records pending (for backpressure) is shared, as one
//! atomic counter. A window that empties signals it (a revocation waits on that, it does not
//! poll).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::json::Str;

#[derive(Debug, Default)]
struct State {
    /// Offsets consumed, in order, each with whether it is done.
    window: VecDeque<(i64, bool)>,
    /// Offsets in the window not yet done.
    pending: usize,
    /// The next offset to consume after everything done so far (the commit point).
    committable: Option<i64>,
    /// The partition was revoked: late acknowledgements change nothing here any more.
    forgotten: bool,
    /// Threads in `wait_drained`: only then does draining notify (a notify is a futex
    /// system call, and a window that keeps up empties after nearly every record).
    waiters: usize,
}

/// One partition's in-flight offsets.
#[derive(Debug, Default)]
pub struct Window {
    state: Mutex<State>,
    /// Notified when `pending` drops to 0.
    drained: Condvar,
}

impl Window {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offsets consumed and not yet done.
    pub fn pending(&self) -> usize {
        self.state().pending
    }

    /// The offset to commit (the oldest not done, or the next after all of them), if any
    /// record finished since the partition was assigned.
    pub fn committable(&self) -> Option<i64> {
        self.state().committable
    }

    /// Waits until nothing is pending or `deadline` passes; what is still pending.
    pub fn wait_drained(&self, deadline: Instant) -> usize {
        let mut s = self.state();
        s.waiters += 1;
        while s.pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = self
                .drained
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        s.waiters -= 1;
        s.pending
    }
}

/// The windows of every assigned partition, and how many records are pending over all.
#[derive(Debug, Default)]
pub struct Offsets {
    windows: Mutex<HashMap<(Str, i32), Arc<Window>>>,
    pending: AtomicUsize,
}

/// What a finished record changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// The partition's new commit point, when it moved.
    pub commit: Option<i64>,
    /// Records pending over all partitions before and after.
    pub pending_before: usize,
    pub pending_after: usize,
}

impl Offsets {
    pub fn new() -> Offsets {
        Offsets::default()
    }

    /// Records pending over all partitions.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// The window of a partition, made when first asked for (a reader asks once, when it
    /// starts).
    pub fn window(&self, topic: &Str, partition: i32) -> Arc<Window> {
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(w.entry((topic.clone(), partition)).or_default())
    }

    /// The window of a partition, if it has one.
    pub fn existing(&self, topic: &str, partition: i32) -> Option<Arc<Window>> {
        let w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        w.get(&(Str::new(topic), partition)).cloned()
    }

    /// A record at `offset` was consumed; returns the pending count over all, after.
    pub fn begin(&self, window: &Window, offset: i64) -> usize {
        let mut s = window.state();
        s.window.push_back((offset, false));
        s.pending += 1;
        drop(s);
        self.pending.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The record at `offset` is done (its result acknowledged). The commit point moves only
    /// when the oldest records are done; finishing one twice, or one of a forgotten window,
    /// changes nothing.
    pub fn finish(&self, window: &Window, offset: i64) -> Finished {
        let mut s = window.state();
        let unchanged = || {
            let now = self.pending();
            Finished {
                commit: None,
                pending_before: now,
                pending_after: now,
            }
        };
        if s.forgotten {
            return unchanged();
        }
        let Ok(i) = s.window.binary_search_by_key(&offset, |(o, _)| *o) else {
            return unchanged();
        };
        if s.window[i].1 {
            return unchanged();
        }
        s.window[i].1 = true;
        s.pending -= 1;
        let mut moved = None;
        while let Some(&(o, true)) = s.window.front() {
            s.window.pop_front();
            moved = Some(o + 1);
        }
        if moved.is_some() {
            s.committable = moved;
        }
        if s.pending == 0 && s.waiters > 0 {
            window.drained.notify_all();
        }
        drop(s);
        let before = self.pending.fetch_sub(1, Ordering::Relaxed);
        Finished {
            commit: moved,
            pending_before: before,
            pending_after: before - 1,
        }
    }

    /// The partition is gone (revoked): its window leaves, and its pending records no longer
    /// count. Returns how many were pending.
    pub fn forget(&self, topic: &str, partition: i32) -> usize {
        let removed = self
            .windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(Str::new(topic), partition));
        let Some(w) = removed else {
            return 0;
        };
        let mut s = w.state();
        s.forgotten = true;
        let left = s.pending;
        drop(s);
        self.pending.fetch_sub(left, Ordering::Relaxed);
        left
    }

    /// The commit point of every partition that has one.
    pub fn commit_points(&self) -> Vec<(Str, i32, i64)> {
        let w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        w.iter()
            .filter_map(|((t, p), w)| w.committable().map(|c| (t.clone(), *p, c)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_point_never_passes_an_unfinished_record() {
        let t = Str::new("in");
        let o = Offsets::new();
        let w = o.window(&t, 0);
        for off in 10..15 {
            o.begin(&w, off);
        }
        assert_eq!(o.pending(), 5);
        assert_eq!(o.finish(&w, 12).commit, None);
        assert_eq!(o.finish(&w, 11).commit, None);
        assert_eq!(w.committable(), None);
        assert_eq!(o.finish(&w, 10).commit, Some(13));
        assert_eq!(o.finish(&w, 14).commit, None);
        assert_eq!(w.committable(), Some(13));
        let last = o.finish(&w, 13);
        assert_eq!(last.commit, Some(15));
        assert_eq!((last.pending_before, last.pending_after), (1, 0));
        assert_eq!(o.pending(), 0);
        assert_eq!(o.finish(&w, 13).commit, None);
        assert_eq!(o.finish(&w, 99).commit, None);
        assert_eq!(o.pending(), 0);
    }

    #[test]
    fn partitions_are_independent_and_can_be_forgotten() {
        let t = Str::new("in");
        let o = Offsets::new();
        let (w0, w1) = (o.window(&t, 0), o.window(&t, 1));
        o.begin(&w0, 0);
        o.begin(&w1, 0);
        o.begin(&w1, 1);
        assert_eq!(o.finish(&w1, 0).commit, Some(1));
        assert_eq!(w1.pending(), 1);
        assert_eq!(o.forget("in", 1), 1);
        assert_eq!(o.pending(), 1);
        // A late acknowledgement of the revoked partition changes nothing.
        assert_eq!(o.finish(&w1, 1).commit, None);
        assert_eq!(o.pending(), 1);
        assert_eq!(o.finish(&w0, 0).commit, Some(1));
        assert_eq!(o.commit_points(), vec![(t.clone(), 0, 1)]);
        // A partition assigned again starts a fresh window.
        assert_eq!(o.window(&t, 1).committable(), None);
    }

    #[test]
    fn a_window_signals_when_it_drains() {
        let t = Str::new("in");
        let o = Arc::new(Offsets::new());
        let w = o.window(&t, 0);
        o.begin(&w, 7);
        let (o2, w2) = (Arc::clone(&o), Arc::clone(&w));
        let acker = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            o2.finish(&w2, 7);
        });
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        assert_eq!(w.wait_drained(deadline), 0);
        assert!(Instant::now() < deadline, "woken by the acknowledgement");
        acker.join().unwrap();
        // Nothing pending: no wait at all; something pending past the deadline: its count.
        assert_eq!(w.wait_drained(Instant::now()), 0);
        o.begin(&w, 8);
        assert_eq!(w.wait_drained(Instant::now()), 1);
    }
}
