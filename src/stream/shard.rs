//! Shards: N threads, each owning a driver and its executions (nothing shared on the hot
//! path). A record goes to the shard of its key (or of its partition), so records with one key
//! start in order on one thread. With `ordered_keys`, a record also waits until the execution
//! of the previous record with its key has finished, so executions that wait (Wait states,
//! I/O tasks) still finish, produce and call out in input order per key. Each shard holds at
//! most `max_in_flight` records at once (running or waiting for their key) and stops taking
//! more until some finish; its input queue is bounded too, so a fast source blocks instead of
//! filling memory. Its executions share a `MapBudget` of `max_map_iterations`, so Map states
//! together run a bounded number of iterations per shard.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::{Disposition, Processed, Record, dead_letter, outcome_dead_letter};
use crate::driver::{Driver, Finished};
use crate::exec::{MapBudget, Outcome, PAYLOAD_LIMIT};
use crate::json;
use crate::plan::Plan;
use crate::tasks::Registry;

/// How the pool is laid out.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    pub shards: usize,
    /// Executions in flight per shard.
    pub max_in_flight: usize,
    /// Records queued per shard before the source blocks.
    pub queue: usize,
    /// At most one execution per key at a time; later records of the key wait for it
    /// (records without a key are not ordered).
    pub ordered_keys: bool,
    /// Map iterations the shard's executions run at once, beyond the first of each Map
    /// state (`0`: no shared bound, only each Map's own).
    pub max_map_iterations: usize,
}

/// The default shared bound on a shard's Map iterations.
pub const DEFAULT_MAP_ITERATIONS: usize = 4096;

impl Default for ShardConfig {
    fn default() -> ShardConfig {
        ShardConfig {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_in_flight: 1024,
            queue: 1024,
            ordered_keys: false,
            max_map_iterations: DEFAULT_MAP_ITERATIONS,
        }
    }
}

/// Counters of one shard, written only by it (relaxed atomics), read by anyone; its latency
/// histogram is locked by the shard per record and by a scrape when metrics are read, never
/// by another shard.
#[derive(Debug)]
pub struct ShardStats {
    /// Microseconds from receiving a record to its result being ready.
    pub latency_us: std::sync::Mutex<hdrhistogram::Histogram<u64>>,
    pub records: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub timed_out: AtomicU64,
    pub rejected: AtomicU64,
    pub transitions: AtomicU64,
    pub in_flight: AtomicU64,
    /// The Map iterations the shard's executions share, if bounded.
    pub map_budget: Option<Arc<MapBudget>>,
}

impl Default for ShardStats {
    fn default() -> ShardStats {
        ShardStats {
            latency_us: std::sync::Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                    .expect("valid histogram bounds"),
            ),
            records: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            transitions: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            map_budget: None,
        }
    }
}

fn record_latency(stats: &ShardStats, received: std::time::Instant) {
    let us = received.elapsed().as_micros().max(1) as u64;
    if let Ok(mut h) = stats.latency_us.lock() {
        h.saturating_record(us);
    }
}

/// The shard threads.
pub struct ShardPool {
    senders: Vec<mpsc::Sender<Record>>,
    handles: Vec<JoinHandle<()>>,
    stats: Vec<Arc<ShardStats>>,
}

type Tag = Record;

impl ShardPool {
    /// Starts the shards; every processed record is sent to `out`.
    pub fn start(
        plan: Arc<Plan>,
        registry: Arc<Registry>,
        config: &ShardConfig,
        out: crossbeam_channel::Sender<Processed>,
    ) -> std::io::Result<ShardPool> {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        let mut stats = Vec::new();
        for k in 0..config.shards.max(1) {
            let (tx, rx) = mpsc::channel(config.queue.max(1));
            let s = Arc::new(ShardStats {
                map_budget: (config.max_map_iterations > 0)
                    .then(|| Arc::new(MapBudget::new(config.max_map_iterations))),
                ..ShardStats::default()
            });
            let (plan, registry, out, st) = (
                Arc::clone(&plan),
                Arc::clone(&registry),
                out.clone(),
                Arc::clone(&s),
            );
            let max = config.max_in_flight.max(1);
            let ordered = config.ordered_keys;
            let h = std::thread::Builder::new()
                .name(format!("shard-{k}"))
                .stack_size(crate::json::STACK_FOR_DEPTH)
                .spawn(move || shard_main(plan, registry, rx, out, max, ordered, st))?;
            senders.push(tx);
            handles.push(h);
            stats.push(s);
        }
        Ok(ShardPool {
            senders,
            handles,
            stats,
        })
    }

    pub fn shards(&self) -> usize {
        self.senders.len()
    }

    /// The shard for a record: by key when it has one, else by partition and offset.
    pub fn route(&self, record: &Record) -> usize {
        let n = self.senders.len() as u64;
        let h = match &record.key {
            Some(k) => crate::random::Rng::seed_from(k),
            None => record.source.partition as u64 ^ record.source.offset as u64,
        };
        (h % n) as usize
    }

    /// Hands a record to its shard, waiting while that shard's queue is full. Fails only when
    /// the shard has stopped. A full queue is waited on until the shard has taken half of it,
    /// not slot by slot: waking this thread for every record the shard takes would cost a
    /// context switch per record exactly when the shard is the bottleneck.
    pub fn submit(&self, record: Record) -> Result<(), Record> {
        use tokio::sync::mpsc::error::TrySendError;
        let tx = &self.senders[self.route(&record)];
        match tx.try_send(record) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed(r)) => Err(r),
            Err(TrySendError::Full(r)) => {
                while tx.capacity() < tx.max_capacity().div_ceil(2) && !tx.is_closed() {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                tx.blocking_send(r).map_err(|e| e.0)
            }
        }
    }

    /// Hands a record to its shard from async code, waiting while its queue is full.
    pub async fn submit_async(&self, record: Record) -> Result<(), Record> {
        let k = self.route(&record);
        self.senders[k].send(record).await.map_err(|e| e.0)
    }

    pub fn stats(&self) -> &[Arc<ShardStats>] {
        &self.stats
    }

    /// Stops taking records, lets the shards finish what they hold, and waits for them.
    pub fn close(self) {
        drop(self.senders);
        for h in self.handles {
            let _ = h.join();
        }
    }
}

fn processed(f: Finished<Tag>, stats: &ShardStats) -> Processed {
    stats
        .transitions
        .fetch_add(f.transitions, Ordering::Relaxed);
    stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    let rec = f.tag;
    record_latency(stats, rec.received);
    let (disposition, status) = match &f.outcome {
        Outcome::Succeeded(v) => {
            stats.succeeded.fetch_add(1, Ordering::Relaxed);
            let mut out = Vec::with_capacity(256);
            json::write(v, &mut out);
            (Disposition::Output(out), "SUCCEEDED")
        }
        other => {
            let status = other.status();
            if status == "TIMED_OUT" {
                stats.timed_out.fetch_add(1, Ordering::Relaxed);
            } else {
                stats.failed.fetch_add(1, Ordering::Relaxed);
            }
            (
                Disposition::DeadLetter(outcome_dead_letter(
                    other,
                    &rec.payload,
                    &rec.source,
                    &f.name,
                )),
                status,
            )
        }
    };
    Processed {
        source: rec.source,
        key: rec.key,
        execution_name: f.name,
        disposition,
        transitions: f.transitions,
        status,
    }
}

/// A record that never becomes an execution (not JSON, too big).
fn rejected(rec: Record, error: &str, cause: &str, stats: &ShardStats) -> Processed {
    stats.rejected.fetch_add(1, Ordering::Relaxed);
    record_latency(stats, rec.received);
    let name = rec.source.execution_name();
    Processed {
        disposition: Disposition::DeadLetter(dead_letter(
            error,
            cause,
            &rec.payload,
            &rec.source,
            &name,
        )),
        source: rec.source,
        key: rec.key,
        execution_name: name,
        transitions: 0,
        status: "REJECTED",
    }
}

fn start(driver: &mut Driver<Tag>, rec: Record, stats: &ShardStats) -> Option<Processed> {
    stats.records.fetch_add(1, Ordering::Relaxed);
    if rec.payload.len() as u64 > PAYLOAD_LIMIT {
        let cause = format!(
            "The record is {} bytes, over the {PAYLOAD_LIMIT} byte payload limit of an execution input",
            rec.payload.len()
        );
        return Some(rejected(rec, "States.DataLimitExceeded", &cause, stats));
    }
    let value = match json::parse(&rec.payload) {
        Ok(v) => v,
        Err(e) => {
            let cause = format!("The record is not valid JSON: {e}");
            return Some(rejected(rec, "stepstream.InvalidJSON", &cause, stats));
        }
    };
    let name = rec.source.execution_name();
    let len = rec.payload.len();
    stats.in_flight.fetch_add(1, Ordering::Relaxed);
    driver
        .start(rec, name, value, Some(len))
        .map(|f| processed(f, stats))
}

/// Per-key order on one shard: the keys (by hash) with an execution running, each with the
/// records of that key waiting behind it. Two keys with the same 64-bit hash share a lane,
/// which only orders them more than asked.
#[derive(Default)]
struct KeyLanes {
    lanes: HashMap<u64, VecDeque<Record>>,
    /// Records waiting in all lanes.
    waiting: usize,
}

fn lane_of(rec: &Record) -> Option<u64> {
    rec.key.as_deref().map(crate::random::Rng::seed_from)
}

/// One shard's loop: its driver, and its key lanes when ordered.
struct ShardLoop {
    driver: Driver<Tag>,
    out: crossbeam_channel::Sender<Processed>,
    stats: Arc<ShardStats>,
    lanes: Option<KeyLanes>,
}

impl ShardLoop {
    /// Records held: running, plus waiting for their key.
    fn held(&self) -> usize {
        self.driver.running() + self.lanes.as_ref().map_or(0, |l| l.waiting)
    }

    /// Takes a record in: starts it, or, when an execution of its key is running, queues it.
    fn admit(&mut self, rec: Record) {
        let lane = self.lanes.as_ref().and_then(|_| lane_of(&rec));
        let (Some(lane), Some(lanes)) = (lane, self.lanes.as_mut()) else {
            self.start_one(rec);
            return;
        };
        match lanes.lanes.get_mut(&lane) {
            Some(queue) => {
                queue.push_back(rec);
                lanes.waiting += 1;
            }
            None => {
                lanes.lanes.insert(lane, VecDeque::new());
                self.run_lane(lane, rec);
            }
        }
    }

    /// Starts `rec`, the head of its lane, and the records behind it as long as each finishes
    /// at once (rejected records, workflows that never wait).
    fn run_lane(&mut self, lane: u64, mut rec: Record) {
        while self.start_one(rec) {
            match self.next_in_lane(lane) {
                Some(next) => rec = next,
                None => return,
            }
        }
    }

    /// Starts `rec`; true when it finished at once (its result is then handed on).
    fn start_one(&mut self, rec: Record) -> bool {
        match start(&mut self.driver, rec, &self.stats) {
            Some(p) => {
                let _ = self.out.send(p);
                true
            }
            None => false,
        }
    }

    /// The record waiting behind a finished one in `lane`; the lane closes when none is.
    fn next_in_lane(&mut self, lane: u64) -> Option<Record> {
        let lanes = self.lanes.as_mut()?;
        let queue = lanes.lanes.get_mut(&lane)?;
        match queue.pop_front() {
            Some(next) => {
                lanes.waiting -= 1;
                Some(next)
            }
            None => {
                lanes.lanes.remove(&lane);
                None
            }
        }
    }

    /// Hands on a finished execution and, when ordered, starts the next record of its key.
    fn finished(&mut self, f: Finished<Tag>) {
        let lane = self.lanes.as_ref().and_then(|_| lane_of(&f.tag));
        let _ = self.out.send(processed(f, &self.stats));
        if let Some(lane) = lane
            && let Some(next) = self.next_in_lane(lane)
        {
            self.run_lane(lane, next);
        }
    }
}

fn shard_main(
    plan: Arc<Plan>,
    registry: Arc<Registry>,
    mut rx: mpsc::Receiver<Record>,
    out: crossbeam_channel::Sender<Processed>,
    max_in_flight: usize,
    ordered_keys: bool,
    stats: Arc<ShardStats>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the shard");
    rt.block_on(async move {
        let mut driver = Driver::new(plan, registry);
        driver.set_map_budget(stats.map_budget.clone());
        let mut shard = ShardLoop {
            driver,
            out,
            stats,
            lanes: ordered_keys.then(KeyLanes::default),
        };
        let mut done: Vec<Finished<Tag>> = Vec::new();
        let mut open = true;
        while open || shard.held() > 0 {
            let room = shard.held() < max_in_flight;
            let running = shard.driver.running() > 0;
            tokio::select! {
                biased;
                rec = rx.recv(), if open && room => match rec {
                    Some(rec) => {
                        shard.admit(rec);
                        // Take what is already queued without going back to the scheduler.
                        while shard.held() < max_in_flight {
                            match rx.try_recv() {
                                Ok(rec) => shard.admit(rec),
                                Err(_) => break,
                            }
                        }
                    }
                    None => open = false,
                },
                _ = shard.driver.wait(&mut done), if running => {
                    for f in done.drain(..) {
                        shard.finished(f);
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::{MachineType, load};
    use crate::json::{Str, Value};
    use crate::stream::Source;

    /// One shard running `def` (tasks go to `registry`), its results sent to the receiver.
    fn one_shard(
        def: &str,
        registry: Registry,
        max_in_flight: usize,
        ordered_keys: bool,
        max_map_iterations: usize,
    ) -> (ShardPool, crossbeam_channel::Receiver<Processed>) {
        let plan = Arc::new(crate::plan::compile(
            &load(def.as_bytes(), MachineType::Express).unwrap(),
            "shard-test",
        ));
        let (tx, rx) = crossbeam_channel::unbounded();
        let config = ShardConfig {
            shards: 1,
            max_in_flight,
            queue: max_in_flight,
            ordered_keys,
            max_map_iterations,
        };
        (
            ShardPool::start(plan, Arc::new(registry), &config, tx).unwrap(),
            rx,
        )
    }

    fn record(offset: i64, key: Option<&str>, payload: String) -> Record {
        Record {
            source: Source {
                topic: Str::new("in"),
                partition: 0,
                offset,
            },
            key: key.map(|k| k.as_bytes().to_vec()),
            payload: payload.into_bytes(),
            received: std::time::Instant::now(),
        }
    }

    /// Runs `(key, n, sleep_ms)` records through one shard whose task sleeps `sleep_ms`;
    /// returns the `n` of each result in the order the shard handed them on, and the order
    /// the task was called in.
    fn finish_order(records: &[(&str, i64, u64)], ordered_keys: bool) -> (Vec<i64>, Vec<i64>) {
        let def = r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:sleep","OutputPath":"$.n","End":true}}}"#;
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut registry = Registry::new();
        let seen = Arc::clone(&calls);
        registry.native_async("arn:aws:lambda:*", move |call| {
            let n = call.input.get("n").and_then(Value::as_i64).unwrap_or(-1);
            seen.lock().unwrap().push(n);
            let ms = call.input.get("ms").and_then(Value::as_i64).unwrap_or(0) as u64;
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(call.input)
            }
        });
        let (pool, rx) = one_shard(def, registry, 64, ordered_keys, 0);
        for (offset, (key, n, ms)) in records.iter().enumerate() {
            let payload = format!(r#"{{"n":{n},"ms":{ms}}}"#);
            pool.submit(record(offset as i64, Some(key), payload))
                .unwrap();
        }
        pool.close();
        let finished = rx
            .iter()
            .map(|p| match p.disposition {
                Disposition::Output(b) => String::from_utf8(b).unwrap().parse().unwrap(),
                Disposition::DeadLetter(b) => panic!("{}", String::from_utf8_lossy(&b)),
            })
            .collect();
        let called = calls.lock().unwrap().clone();
        (finished, called)
    }

    /// The most Map iterations (task calls) running at once when four records, each a Map of
    /// 20 slow items, run on one shard with `max_map_iterations`.
    fn peak_iterations(max_map_iterations: usize) -> usize {
        let def = r#"{"StartAt":"M","States":{"M":{"Type":"Map","ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:slow","End":true}}},"End":true}}}"#;
        let now = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        let mut registry = Registry::new();
        let (n, p) = (Arc::clone(&now), Arc::clone(&peak));
        registry.native_async("arn:aws:lambda:*", move |call| {
            let running = n.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(running, Ordering::SeqCst);
            let n = Arc::clone(&n);
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                Ok(call.input)
            }
        });
        let (pool, rx) = one_shard(def, registry, 4, false, max_map_iterations);
        let items: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        for offset in 0..4 {
            pool.submit(record(offset, None, format!("[{}]", items.join(","))))
                .unwrap();
        }
        let budget = pool.stats()[0].map_budget.clone();
        pool.close();
        let outputs = rx
            .iter()
            .filter(|p| matches!(p.disposition, Disposition::Output(_)))
            .count();
        assert_eq!(outputs, 4);
        if let Some(b) = budget {
            assert_eq!(b.available(), max_map_iterations, "tokens given back");
        }
        peak.load(Ordering::SeqCst) as usize
    }

    #[test]
    fn a_shards_map_iterations_share_one_budget() {
        // Without a shared bound all 80 run at once (each Map's 20 are under AWS's 40).
        assert_eq!(peak_iterations(0), 80);
        // With 6 tokens: 6, plus the first iteration of each of the four Maps.
        let peak = peak_iterations(6);
        assert!((6..=10).contains(&peak), "{peak}");
    }

    #[test]
    fn a_map_waiting_for_tokens_gets_them_when_another_execution_gives_them_back() {
        // Two tokens. The first record's Map takes both; the second's runs only its first
        // item (slow). When the first finishes, the second's other items start at once, not
        // after its slow item.
        let def = r#"{"StartAt":"M","States":{"M":{"Type":"Map","ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:slow","End":true}}},"End":true}}}"#;
        let started = std::time::Instant::now();
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut registry = Registry::new();
        let seen = Arc::clone(&calls);
        registry.native_async("arn:aws:lambda:*", move |call| {
            let id = call
                .input
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            seen.lock().unwrap().push((id, started.elapsed()));
            let ms = call.input.get("ms").and_then(Value::as_i64).unwrap_or(0) as u64;
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(call.input)
            }
        });
        let (pool, rx) = one_shard(def, registry, 8, false, 2);
        let a = r#"[{"id":"a0","ms":20},{"id":"a1","ms":20},{"id":"a2","ms":20}]"#;
        let b = r#"[{"id":"b0","ms":600},{"id":"b1","ms":0},{"id":"b2","ms":0}]"#;
        pool.submit(record(0, None, a.to_string())).unwrap();
        pool.submit(record(1, None, b.to_string())).unwrap();
        pool.close();
        assert_eq!(rx.iter().count(), 2);
        let calls = calls.lock().unwrap();
        let at = |id: &str| calls.iter().find(|(i, _)| i == id).unwrap().1;
        assert!(at("b1") > at("a0"));
        assert!(
            at("b1") < at("b0") + std::time::Duration::from_millis(300),
            "{calls:?}"
        );
    }

    #[test]
    fn ordered_keys_run_one_execution_per_key_at_a_time() {
        // a1 is slow; a2 and a3 follow it; b1 and b2 have their own lane.
        let records = [
            ("a", 1, 300),
            ("a", 2, 0),
            ("b", 10, 50),
            ("a", 3, 0),
            ("b", 11, 0),
        ];
        let (finished, called) = finish_order(&records, true);
        let pos = |n: i64| finished.iter().position(|&x| x == n).unwrap();
        assert_eq!(finished.len(), 5);
        assert!(pos(1) < pos(2) && pos(2) < pos(3), "{finished:?}");
        assert!(pos(10) < pos(11), "{finished:?}");
        // Other keys do not wait for the slow one.
        assert!(pos(11) < pos(1), "{finished:?}");
        // a2 is called only after a1 finished.
        let c = |n: i64| called.iter().position(|&x| x == n).unwrap();
        assert!(c(10) < c(2) && c(11) < c(2), "{called:?}");

        // Unordered, the slow record finishes last and its key's later records are called
        // while it runs.
        let (finished, called) = finish_order(&records, false);
        assert_eq!(finished.last(), Some(&1), "{finished:?}");
        assert_eq!(called, vec![1, 2, 10, 3, 11]);
    }
}
