//! Shards: N threads, each owning a driver and its executions (nothing shared on the hot
//! path). A record goes to the shard of its key (or of its partition), so records with one key
//! run in order on one thread. Each shard takes at most `max_in_flight` records at once and
//! stops taking more until some finish; its input queue is bounded too, so a fast source
//! blocks instead of filling memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::{Disposition, Processed, Record, dead_letter, outcome_dead_letter};
use crate::driver::{Driver, Finished};
use crate::exec::{Outcome, PAYLOAD_LIMIT};
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
}

impl Default for ShardConfig {
    fn default() -> ShardConfig {
        ShardConfig {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_in_flight: 1024,
            queue: 1024,
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
            let s = Arc::new(ShardStats::default());
            let (plan, registry, out, st) = (
                Arc::clone(&plan),
                Arc::clone(&registry),
                out.clone(),
                Arc::clone(&s),
            );
            let max = config.max_in_flight.max(1);
            let h = std::thread::Builder::new()
                .name(format!("shard-{k}"))
                .stack_size(crate::json::STACK_FOR_DEPTH)
                .spawn(move || shard_main(plan, registry, rx, out, max, st))?;
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
    /// the shard has stopped.
    pub fn submit(&self, record: Record) -> Result<(), Record> {
        let k = self.route(&record);
        self.senders[k].blocking_send(record).map_err(|e| e.0)
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

fn shard_main(
    plan: Arc<Plan>,
    registry: Arc<Registry>,
    mut rx: mpsc::Receiver<Record>,
    out: crossbeam_channel::Sender<Processed>,
    max_in_flight: usize,
    stats: Arc<ShardStats>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the shard");
    rt.block_on(async move {
        let mut driver: Driver<Tag> = Driver::new(plan, registry);
        let mut done: Vec<Finished<Tag>> = Vec::new();
        let mut open = true;
        while open || driver.running() > 0 {
            let room = driver.running() < max_in_flight;
            tokio::select! {
                biased;
                rec = rx.recv(), if open && room => match rec {
                    Some(rec) => {
                        if let Some(p) = start(&mut driver, rec, &stats) {
                            let _ = out.send(p);
                        }
                        // Take what is already queued without going back to the scheduler.
                        while driver.running() < max_in_flight {
                            match rx.try_recv() {
                                Ok(rec) => {
                                    if let Some(p) = start(&mut driver, rec, &stats) {
                                        let _ = out.send(p);
                                    }
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    None => open = false,
                },
                _ = driver.wait(&mut done), if driver.running() > 0 => {
                    for f in done.drain(..) {
                        let _ = out.send(processed(f, &stats));
                    }
                }
            }
        }
    });
}
