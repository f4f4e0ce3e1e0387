//! Shards: N threads, each owning a driver and its executions (nothing shared on the hot
//! path). There is one shard loop (`Shard::run`) for every mode: it takes records from a
//! `RecordSource` (the pool's queue fed by standard input or Kafka readers, or the bench's
//! generator) and hands each result to a `ResultSink` (the pool's result channel, or the
//! bench's counters), so what `bench` measures is what production runs. A record goes to the shard of its key (or of its partition), so records with one key
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
use crate::exec::logging::Logging;
use crate::exec::{MapBudget, Outcome, PAYLOAD_LIMIT, Recording, StateCounts};
use crate::json::{self, Str};
use crate::plan::Plan;
use crate::stream::driver::{Driver, Finished, Program};
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
    /// Count what each state does (`ShardStats::states`); on by default, off only to measure
    /// what counting costs.
    pub state_counts: bool,
    /// Write the events of the pool's executions to an execution log (records their
    /// history; `None`: no history is recorded).
    pub logging: Option<Logging>,
}

/// The default shared bound on a shard's Map iterations (defined with the other defaults in
/// `config`).
pub use crate::config::DEFAULT_MAP_ITERATIONS;

/// The configuration's runtime defaults (`config::Runtime::default()`), unordered.
impl Default for ShardConfig {
    fn default() -> ShardConfig {
        let r = crate::config::Runtime::default();
        ShardConfig {
            shards: r.shards,
            max_in_flight: r.max_in_flight,
            queue: r.max_in_flight,
            ordered_keys: false,
            max_map_iterations: r.max_map_iterations,
            state_counts: true,
            logging: None,
        }
    }
}

/// Counters of one shard, written only by it (relaxed atomics), read by anyone; its latency
/// histogram is locked by the shard per record and by a scrape when metrics are read, never
/// by another shard.
#[derive(Debug)]
pub struct ShardStats {
    /// Nanoseconds from receiving a record to its result being ready (serialized).
    pub latency_ns: std::sync::Mutex<hdrhistogram::Histogram<u64>>,
    pub records: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub timed_out: AtomicU64,
    pub rejected: AtomicU64,
    pub transitions: AtomicU64,
    pub in_flight: AtomicU64,
    /// The Map iterations the shard's executions share, if bounded.
    pub map_budget: Option<Arc<MapBudget>>,
    /// What each state of the shard's plan did (unless counting is off), set when the shard
    /// starts.
    pub states: std::sync::OnceLock<Arc<StateCounts>>,
    /// The shard's most recent dead letters, newest last (at most `RECENT_DEAD_LETTERS`);
    /// locked by the shard per dead letter and by a reader.
    pub recent_dead_letters: std::sync::Mutex<VecDeque<DeadLetterNote>>,
}

/// Dead letters each shard remembers for the workflow page.
pub const RECENT_DEAD_LETTERS: usize = 20;

/// What the workflow page shows of a dead letter.
#[derive(Clone, Debug)]
pub struct DeadLetterNote {
    /// When it was produced (ms since the epoch).
    pub at_ms: i64,
    pub error: Str,
    pub cause: Str,
    /// The top-level state whose error failed the execution (none for a record that never
    /// ran, or an execution that timed out).
    pub state: Option<Str>,
    pub source: super::Source,
}

impl Default for ShardStats {
    fn default() -> ShardStats {
        ShardStats {
            latency_ns: std::sync::Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
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
            states: std::sync::OnceLock::new(),
            recent_dead_letters: std::sync::Mutex::new(VecDeque::new()),
        }
    }
}

impl ShardStats {
    /// Fresh counters for a shard laid out by `config` (with its Map budget, if bounded).
    pub fn new(config: &ShardConfig) -> ShardStats {
        ShardStats {
            map_budget: (config.max_map_iterations > 0)
                .then(|| Arc::new(MapBudget::new(config.max_map_iterations))),
            ..ShardStats::default()
        }
    }
}

/// Adds to a counter only this shard writes: a plain load and store (no locked
/// read-modify-write), still read whole by other threads.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

#[inline]
fn drop_one(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).saturating_sub(1),
        Ordering::Relaxed,
    );
}

fn record_latency(stats: &ShardStats, received: std::time::Instant) {
    let ns = received.elapsed().as_nanos().max(1) as u64;
    if let Ok(mut h) = stats.latency_ns.lock() {
        h.saturating_record(ns);
    }
}

/// Where a shard's records come from.
pub trait RecordSource {
    /// The next record, waiting until there is one; `None` once the source has ended.
    fn next(&mut self) -> impl std::future::Future<Output = Option<Record>>;
    /// The next record if one is there without waiting.
    fn ready(&mut self) -> Option<Record>;
    /// A spent byte buffer (a delivered result's) the source may fill with a later record.
    fn recycle(&mut self, buffer: Vec<u8>) {
        drop(buffer);
    }
}

/// Where a shard's results go.
pub trait ResultSink {
    /// Takes `result`; gives back its byte buffer when done with it (the bytes were copied
    /// or counted), for the shard's source to reuse.
    fn deliver(&mut self, result: Processed) -> Option<Vec<u8>>;
}

/// Results kept in delivery order (tests, one-off runs).
impl ResultSink for Vec<Processed> {
    fn deliver(&mut self, result: Processed) -> Option<Vec<u8>> {
        self.push(result);
        None
    }
}

/// The pool's queue: records handed over by `ShardPool::submit`.
impl RecordSource for mpsc::Receiver<Record> {
    async fn next(&mut self) -> Option<Record> {
        self.recv().await
    }

    fn ready(&mut self) -> Option<Record> {
        self.try_recv().ok()
    }
}

/// The pool's results, read by the pipeline's sink thread.
impl ResultSink for crossbeam_channel::Sender<Processed> {
    fn deliver(&mut self, result: Processed) -> Option<Vec<u8>> {
        // The receiver goes only when the pipeline stops; nothing is left to deliver to.
        let _ = self.send(result);
        None
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
    /// Starts the shards; each delivers its results to its own clone of `out`.
    pub fn start<K: ResultSink + Clone + Send + 'static>(
        plan: Arc<Plan>,
        registry: Arc<Registry>,
        config: &ShardConfig,
        out: K,
    ) -> std::io::Result<ShardPool> {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        let mut stats = Vec::new();
        for k in 0..config.shards.max(1) {
            let (tx, mut rx) = mpsc::channel(config.queue.max(1));
            let s = Arc::new(ShardStats::new(config));
            let shard = Shard::new(
                Arc::clone(&plan),
                Arc::clone(&registry),
                config,
                Arc::clone(&s),
                out.clone(),
            );
            let h = spawn_thread(k, move || async move {
                let mut shard = shard;
                shard.run(&mut rx).await
            })?;
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

fn processed(mut f: Finished<Tag>, stats: &ShardStats, log: Option<&ShardLog>) -> Processed {
    bump(&stats.transitions, f.transitions);
    drop_one(&stats.in_flight);
    let mut rec = f.tag;
    if let Some(job) = rec.job.as_mut() {
        job.started_ms = f.started_ms;
        job.stopped_ms = f.stopped_ms;
        job.events = std::mem::take(&mut f.history);
    } else if let Some(log) = log
        && !f.history.is_empty()
    {
        log.write(&f.history, &f.name);
    }
    let (disposition, status) = match &f.outcome {
        Outcome::Succeeded(v) => {
            bump(&stats.succeeded, 1);
            // The input's bytes are no longer needed: its buffer takes the output (its size
            // is the best guess of the output's), so a result costs no allocation.
            let mut out = std::mem::take(&mut rec.payload);
            out.clear();
            json::write(v, &mut out);
            (Disposition::Output(out), "SUCCEEDED")
        }
        other => {
            let status = other.status();
            if status == "TIMED_OUT" {
                bump(&stats.timed_out, 1);
            } else {
                bump(&stats.failed, 1);
            }
            let envelope = match rec.job.as_mut() {
                // The API answers with the error and cause themselves.
                Some(job) => {
                    (job.error, job.cause) = other.error_and_cause();
                    Vec::new()
                }
                None => {
                    let (error, cause) = other.error_and_cause();
                    note_dead_letter(stats, error, cause, f.failed_state.clone(), &rec.source);
                    let state = f.failed_state.as_deref();
                    outcome_dead_letter(other, state, &rec.payload, &rec.source, &f.name)
                }
            };
            (Disposition::DeadLetter(envelope), status)
        }
    };
    record_latency(stats, rec.received);
    Processed {
        source: rec.source,
        key: rec.key,
        execution_name: f.name,
        disposition,
        transitions: f.transitions,
        status,
        window: rec.window,
        job: rec.job,
    }
}

/// Remembers a dead letter for the workflow page (its cause cut to 500 bytes).
fn note_dead_letter(
    stats: &ShardStats,
    error: Option<Str>,
    cause: Option<Str>,
    state: Option<Str>,
    source: &super::Source,
) {
    let mut cause = cause.unwrap_or_else(|| Str::new(""));
    if cause.len() > 500 {
        let mut end = 500;
        while !cause.is_char_boundary(end) {
            end -= 1;
        }
        cause = Str::from(format!("{}...", &cause[..end]));
    }
    let note = DeadLetterNote {
        at_ms: crate::stream::driver::now_ms(),
        error: error.unwrap_or_else(|| Str::new("")),
        cause,
        state,
        source: source.clone(),
    };
    let mut recent = stats
        .recent_dead_letters
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if recent.len() >= RECENT_DEAD_LETTERS {
        recent.pop_front();
    }
    recent.push_back(note);
}

/// The error of a record that is not JSON, and how its cause begins (the API answers it
/// as `InvalidExecutionInput`).
pub const INVALID_JSON: &str = "stepstream.InvalidJSON";
pub const NOT_JSON_CAUSE: &str = "The record is not valid JSON: ";

/// A record that never becomes an execution (not JSON, too big).
fn rejected(mut rec: Record, error: &str, cause: &str, stats: &ShardStats) -> Processed {
    bump(&stats.rejected, 1);
    record_latency(stats, rec.received);
    let name = match rec.job.as_mut() {
        Some(job) => {
            job.error = Some(Str::new(error));
            job.cause = Some(Str::new(cause));
            job.name.clone()
        }
        None => {
            let (e, c) = (Some(Str::new(error)), Some(Str::new(cause)));
            note_dead_letter(stats, e, c, None, &rec.source);
            rec.source.execution_name()
        }
    };
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
        window: rec.window,
        job: rec.job,
    }
}

fn start(
    driver: &mut Driver<Tag>,
    rec: Record,
    stats: &ShardStats,
    log: Option<&ShardLog>,
) -> Option<Processed> {
    bump(&stats.records, 1);
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
            let cause = format!("{NOT_JSON_CAUSE}{e}");
            return Some(rejected(rec, INVALID_JSON, &cause, stats));
        }
    };
    let len = rec.payload.len();
    bump(&stats.in_flight, 1);
    let finished = match &rec.job {
        None => {
            let name = rec.source.execution_name();
            let history = log.map_or(Recording::Off, |l| Recording::Log(l.logging.settings));
            driver.start_program(rec, name, value, Some(len), None, history)
        }
        Some(job) => {
            let program = Program {
                plan: Arc::clone(&job.plan),
                registry: Arc::clone(&job.registry),
                counts: job.counts.clone(),
            };
            let own = Some((program, Arc::clone(&job.arns)));
            let (name, history) = (job.name.clone(), job.history);
            driver.start_program(rec, name, value, Some(len), own, history)
        }
    };
    finished.map(|f| processed(f, stats, log))
}

/// A shard's side of its pool's execution log: the settings, the writer, and the ARN prefix
/// its executions are known by (`$$.Execution.Id` without the name).
struct ShardLog {
    logging: Logging,
    arn_prefix: String,
}

impl ShardLog {
    fn new(logging: Logging, identity: &crate::exec::Identity, machine: &str) -> ShardLog {
        ShardLog {
            logging,
            arn_prefix: format!(
                "arn:aws:states:{}:{}:execution:{machine}:",
                identity.region, identity.account
            ),
        }
    }

    /// Formats what the log keeps of a finished execution's events and hands it on.
    fn write(&self, events: &[crate::exec::HistoryEvent], name: &str) {
        let mut arn = String::with_capacity(self.arn_prefix.len() + name.len());
        arn.push_str(&self.arn_prefix);
        arn.push_str(name);
        let mut out = Vec::new();
        self.logging.settings.format(events, &arn, &mut out);
        self.logging.log.write(out);
    }
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

/// Starts a shard thread (`shard-K`, with the stack deep JSON needs) running `body` on its
/// own single-threaded tokio runtime.
pub fn spawn_thread<F, R>(
    k: usize,
    body: impl FnOnce() -> F + Send + 'static,
) -> std::io::Result<JoinHandle<R>>
where
    F: std::future::Future<Output = R>,
    R: Send + 'static,
{
    #[cfg(test)]
    let paused = VIRTUAL_TIME.get();
    std::thread::Builder::new()
        .name(format!("shard-{k}"))
        .stack_size(crate::json::STACK_FOR_DEPTH)
        .spawn(move || {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_all();
            #[cfg(test)]
            builder.start_paused(paused);
            let rt = builder.build().expect("a tokio runtime for the shard");
            rt.block_on(body())
        })
}

#[cfg(test)]
thread_local! {
    /// Set by a test on its own thread: the shards it starts run on paused tokio time, which
    /// jumps ahead whenever a shard is idle, so Waits, backoffs and slow tasks take no real
    /// time.
    pub(crate) static VIRTUAL_TIME: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// One shard: its driver (the executions it runs), its key lanes when ordered, and where
/// its results go.
pub struct Shard<K> {
    driver: Driver<Tag>,
    sink: K,
    stats: Arc<ShardStats>,
    lanes: Option<KeyLanes>,
    max_in_flight: usize,
    /// Buffers the sink gave back, for the source (handed over between waits).
    spent: Vec<Vec<u8>>,
    /// Where its executions' events are logged, if anywhere (`ShardConfig::logging`).
    log: Option<ShardLog>,
}

impl<K: ResultSink> Shard<K> {
    pub fn new(
        plan: Arc<Plan>,
        registry: Arc<Registry>,
        config: &ShardConfig,
        stats: Arc<ShardStats>,
        sink: K,
    ) -> Shard<K> {
        let states = plan.states.len();
        let plan_name = plan.name.to_string();
        let mut driver = Driver::new(plan, registry);
        driver.set_map_budget(stats.map_budget.clone());
        if config.state_counts {
            let counts = stats
                .states
                .get_or_init(|| Arc::new(StateCounts::new(states)));
            driver.set_state_counts(Some(Arc::clone(counts)));
        }
        let log = config
            .logging
            .clone()
            .filter(|l| l.settings.records())
            .map(|l| ShardLog::new(l, driver.identity(), &plan_name));
        Shard {
            driver,
            sink,
            stats,
            lanes: config.ordered_keys.then(KeyLanes::default),
            max_in_flight: config.max_in_flight.max(1),
            spent: Vec::new(),
            log,
        }
    }

    /// Reads the time from `clock` (tests pass one on paused tokio time).
    pub fn set_clock(&mut self, clock: crate::time::Clock) {
        self.driver.set_clock(clock);
    }

    pub fn into_sink(self) -> K {
        self.sink
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    pub fn stats(&self) -> &Arc<ShardStats> {
        &self.stats
    }

    /// Records held: running, plus waiting for their key.
    pub fn held(&self) -> usize {
        self.driver.running() + self.lanes.as_ref().map_or(0, |l| l.waiting)
    }

    /// Runs until `source` has ended and every record taken from it has been delivered.
    /// Takes a record only while fewer than `max_in_flight` are held, and between waits
    /// takes every record that is ready without going back to the scheduler.
    pub async fn run(&mut self, source: &mut impl RecordSource) {
        let mut done: Vec<Finished<Tag>> = Vec::new();
        let mut open = true;
        while open || self.held() > 0 {
            self.recycle_into(source);
            let room = self.held() < self.max_in_flight;
            let running = self.driver.running() > 0;
            tokio::select! {
                biased;
                rec = source.next(), if open && room => match rec {
                    Some(rec) => {
                        self.admit(rec);
                        while self.held() < self.max_in_flight {
                            // Records that finish at once keep this loop going: their
                            // buffers go back before the next is taken.
                            self.recycle_into(source);
                            match source.ready() {
                                Some(rec) => self.admit(rec),
                                None => break,
                            }
                        }
                    }
                    None => open = false,
                },
                _ = self.driver.wait(&mut done), if running => {
                    for f in done.drain(..) {
                        self.finished(f);
                    }
                }
            }
        }
    }

    /// Takes a record in: starts it, or, when an execution of its key is running, queues it.
    fn admit(&mut self, mut rec: Record) {
        if rec.job.as_ref().is_some_and(|j| j.stop_request) {
            self.stop_cancelled();
            return;
        }
        if let Some(job) = rec.job.as_mut()
            && let Some(reply) = job.history_request.take()
        {
            let arn = &job.arns.0;
            let same = |r: &Record| r.job.as_ref().is_some_and(|j| j.arns.0 == *arn);
            if let Some(events) = self.driver.history_so_far(same) {
                let _ = reply.send(events);
            }
            return;
        }
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
        match start(&mut self.driver, rec, &self.stats, self.log.as_ref()) {
            Some(p) => {
                self.hand_on(p);
                true
            }
            None => false,
        }
    }

    fn recycle_into(&mut self, source: &mut impl RecordSource) {
        for b in self.spent.drain(..) {
            source.recycle(b);
        }
    }

    /// Delivers a result; a buffer the sink gives back goes to the source.
    fn hand_on(&mut self, p: Processed) {
        if let Some(b) = self.sink.deliver(p) {
            self.spent.push(b);
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

    /// Ends the jobs StopExecution has marked; their results go on as any other's.
    fn stop_cancelled(&mut self) {
        let mut done = Vec::new();
        let cancelled = |rec: &Record| {
            let flag = rec.job.as_ref().and_then(|j| j.cancel.as_ref());
            flag.is_some_and(|c| c.load(std::sync::atomic::Ordering::Acquire))
        };
        let aborted = || Outcome::Failed {
            error: Some(Str::new("States.Aborted")),
            cause: Some(Str::new("the execution was stopped (StopExecution)")),
        };
        self.driver.stop_where(cancelled, aborted, &mut done);
        for f in done {
            self.finished(f);
        }
    }

    /// Hands on a finished execution and, when ordered, starts the next record of its key.
    fn finished(&mut self, f: Finished<Tag>) {
        let lane = self.lanes.as_ref().and_then(|_| lane_of(&f.tag));
        let p = processed(f, &self.stats, self.log.as_ref());
        self.hand_on(p);
        if let Some(lane) = lane
            && let Some(next) = self.next_in_lane(lane)
        {
            self.run_lane(lane, next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::{MachineType, load};
    use crate::json::{Str, Value};
    use crate::stream::Source;

    /// Records all there from the start, so the shard never waits for its source (paused
    /// time jumps ahead only while every execution waits for time).
    struct Queue(VecDeque<Record>);

    impl RecordSource for Queue {
        async fn next(&mut self) -> Option<Record> {
            self.0.pop_front()
        }

        fn ready(&mut self) -> Option<Record> {
            self.0.pop_front()
        }
    }

    /// Runs `records` through one shard running `def` (tasks go to `registry`) on paused,
    /// auto-advancing time; returns the results in the order the shard delivered them, and
    /// its stats.
    fn one_shard(
        def: &str,
        registry: Registry,
        max_in_flight: usize,
        ordered_keys: bool,
        max_map_iterations: usize,
        records: Vec<Record>,
    ) -> (Vec<Processed>, Arc<ShardStats>) {
        let config = ShardConfig {
            shards: 1,
            max_in_flight,
            queue: max_in_flight,
            ordered_keys,
            max_map_iterations,
            state_counts: true,
            logging: None,
        };
        run_shard(
            def,
            registry,
            &config,
            Vec::new(),
            &mut Queue(records.into()),
        )
    }

    /// Runs one shard of `def` over `source` into `sink` on paused, auto-advancing time.
    fn run_shard<K: ResultSink>(
        def: &str,
        registry: Registry,
        config: &ShardConfig,
        sink: K,
        source: &mut impl RecordSource,
    ) -> (K, Arc<ShardStats>) {
        let plan = Arc::new(crate::plan::compile(
            &load(def.as_bytes(), MachineType::Express).unwrap(),
            "shard-test",
        ));
        let stats = Arc::new(ShardStats::new(config));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let sink = rt.block_on(async {
            let mut shard = Shard::new(plan, Arc::new(registry), config, Arc::clone(&stats), sink);
            shard.run(source).await;
            shard.into_sink()
        });
        (sink, stats)
    }

    #[test]
    fn a_pool_with_logging_writes_each_execution_s_events_under_its_arn() {
        // One execution waits (it ends later, from the driver), one fails at once, one is not
        // JSON (no execution, so no events).
        let def = r#"{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.ok","BooleanEquals":true,"Next":"W"}],"Default":"F"},
            "W":{"Type":"Wait","Seconds":3,"End":true},"F":{"Type":"Fail","Error":"Bad","Cause":"no"}}}"#;
        let run = |level| {
            let (log, buf) = crate::exec::logging::memory_log();
            let config = ShardConfig {
                shards: 1,
                logging: Some(Logging {
                    settings: crate::exec::logging::LogSettings {
                        level,
                        include_execution_data: true,
                    },
                    log: log.clone(),
                }),
                ..ShardConfig::default()
            };
            let records = vec![
                record(0, None, r#"{"ok":true}"#.into()),
                record(1, None, r#"{"ok":false}"#.into()),
                record(2, None, "not json".into()),
            ];
            let (out, _) = run_shard(
                def,
                Registry::new(),
                &config,
                Vec::new(),
                &mut Queue(records.into()),
            );
            assert_eq!(out.len(), 3);
            log.flush();
            buf.text()
                .lines()
                .map(|l| {
                    let v = json::parse(l.as_bytes()).unwrap();
                    let get = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap().to_string();
                    (get("execution_arn"), get("type"))
                })
                .collect::<Vec<_>>()
        };
        let arn =
            |n: i64| format!("arn:aws:states:us-east-1:123456789012:execution:shard-test:in-0-{n}");
        let all = run(crate::exec::logging::LogLevel::All);
        let of = |n| {
            all.iter()
                .filter(|(a, _)| *a == arn(n))
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            of(0),
            [
                "ExecutionStarted",
                "ChoiceStateEntered",
                "ChoiceStateExited",
                "WaitStateEntered",
                "WaitStateExited",
                "ExecutionSucceeded"
            ]
        );
        assert_eq!(
            of(1),
            [
                "ExecutionStarted",
                "ChoiceStateEntered",
                "ChoiceStateExited",
                "FailStateEntered",
                "ExecutionFailed"
            ]
        );
        assert!(of(2).is_empty());
        let errors = run(crate::exec::logging::LogLevel::Error);
        assert_eq!(errors, [(arn(1), "ExecutionFailed".to_string())]);
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
            window: None,
            job: None,
        }
    }

    /// A source that makes `n` records, each into a buffer given back if it has one; counts
    /// the buffers it had to allocate.
    struct Recycling {
        next: i64,
        n: i64,
        spare: Vec<Vec<u8>>,
        allocated: usize,
    }

    impl RecordSource for Recycling {
        async fn next(&mut self) -> Option<Record> {
            self.ready()
        }

        fn ready(&mut self) -> Option<Record> {
            if self.next >= self.n {
                return None;
            }
            let mut payload = self.spare.pop().unwrap_or_else(|| {
                self.allocated += 1;
                Vec::new()
            });
            payload.clear();
            payload.extend_from_slice(format!(r#"{{"n":{}}}"#, self.next).as_bytes());
            let mut r = record(self.next, None, String::new());
            r.payload = payload;
            self.next += 1;
            Some(r)
        }

        fn recycle(&mut self, buffer: Vec<u8>) {
            self.spare.push(buffer);
        }
    }

    /// Counts results and gives their buffers back.
    #[derive(Default)]
    struct Returning(Vec<i64>);

    impl ResultSink for Returning {
        fn deliver(&mut self, p: Processed) -> Option<Vec<u8>> {
            match p.disposition {
                Disposition::Output(b) => {
                    let v = crate::json::parse(&b).unwrap();
                    self.0.push(v.get("m").and_then(Value::as_i64).unwrap());
                    Some(b)
                }
                Disposition::DeadLetter(b) => panic!("{}", String::from_utf8_lossy(&b)),
            }
        }
    }

    #[test]
    fn result_buffers_go_back_to_the_source_so_a_stream_allocates_only_what_is_in_flight() {
        // Each output is written into its input's buffer, and the sink hands it back to the
        // source: 10,000 records that finish at once (the shard's inner loop never waits)
        // need one buffer, a Wait that keeps 8 in flight at most 9.
        let immediate = r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"m.$":"$.n"},"End":true}}}"#;
        let waiting = r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":1,"Next":"P"},"P":{"Type":"Pass","Parameters":{"m.$":"$.n"},"End":true}}}"#;
        for (def, max_in_flight, most) in [(immediate, 8, 1), (waiting, 8, 9)] {
            let config = ShardConfig {
                shards: 1,
                max_in_flight,
                queue: max_in_flight,
                ordered_keys: false,
                max_map_iterations: 0,
                state_counts: true,
                logging: None,
            };
            let mut source = Recycling {
                next: 0,
                n: 10_000,
                spare: Vec::new(),
                allocated: 0,
            };
            let (sink, _) = run_shard(
                def,
                Registry::new(),
                &config,
                Returning::default(),
                &mut source,
            );
            let mut seen = sink.0;
            seen.sort_unstable();
            assert_eq!(seen, (0..10_000).collect::<Vec<_>>());
            assert!(
                source.allocated <= most,
                "{} buffers allocated for {max_in_flight} in flight",
                source.allocated
            );
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
        let records = records
            .iter()
            .enumerate()
            .map(|(offset, (key, n, ms))| {
                record(
                    offset as i64,
                    Some(key),
                    format!(r#"{{"n":{n},"ms":{ms}}}"#),
                )
            })
            .collect();
        let (results, _) = one_shard(def, registry, 64, ordered_keys, 0, records);
        let finished = results
            .into_iter()
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
        let items: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let records = (0..4)
            .map(|offset| record(offset, None, format!("[{}]", items.join(","))))
            .collect();
        let (results, stats) = one_shard(def, registry, 4, false, max_map_iterations, records);
        let outputs = results
            .iter()
            .filter(|p| matches!(p.disposition, Disposition::Output(_)))
            .count();
        assert_eq!(outputs, 4);
        if let Some(b) = &stats.map_budget {
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
            // The shard's (virtual) time.
            seen.lock().unwrap().push((id, tokio::time::Instant::now()));
            let ms = call.input.get("ms").and_then(Value::as_i64).unwrap_or(0) as u64;
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(call.input)
            }
        });
        let a = r#"[{"id":"a0","ms":20},{"id":"a1","ms":20},{"id":"a2","ms":20}]"#;
        let b = r#"[{"id":"b0","ms":600},{"id":"b1","ms":0},{"id":"b2","ms":0}]"#;
        let records = vec![
            record(0, None, a.to_string()),
            record(1, None, b.to_string()),
        ];
        let (results, _) = one_shard(def, registry, 8, false, 2, records);
        assert_eq!(results.len(), 2);
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

    fn job_record(offset: i64, def: &str, name: &str, payload: &str) -> Record {
        let plan = crate::plan::compile(
            &load(def.as_bytes(), MachineType::Express).unwrap(),
            &format!("machine-{name}"),
        );
        let arn = format!("arn:aws:states:us-east-1:1:express:machine-{name}:{name}:u");
        let mut rec = record(offset, None, payload.to_string());
        rec.job = Some(Box::new(crate::stream::Job {
            plan: Arc::new(plan),
            registry: Arc::new(Registry::new()),
            name: Str::from(name),
            arns: Arc::new((Str::from(arn), Str::new("arn:machine"))),
            started_ms: 0,
            stopped_ms: 0,
            error: None,
            cause: None,
            reply: None,
            cancel: None,
            stop_request: false,
            history_request: None,
            history: Recording::Off,
            events: Vec::new(),
            counts: None,
        }));
        rec
    }

    #[test]
    fn a_history_request_gets_the_events_so_far_of_the_running_execution_it_names() {
        let def = r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Next":"W"},
            "W":{"Type":"Wait","Seconds":5,"End":true}}}"#;
        let mut running = job_record(0, def, "a", "{}");
        running.job.as_mut().unwrap().history = Recording::Full;
        // Asked while it waits (the next record the shard takes), and once more for an
        // execution that is not running: that one's sender is dropped unanswered.
        let ask = |offset, name| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let mut r = job_record(offset, def, name, "");
            r.job.as_mut().unwrap().history_request = Some(tx);
            (r, rx)
        };
        let (asked, mut answer) = ask(1, "a");
        let (elsewhere, mut none) = ask(2, "gone");
        let records = vec![running, asked, elsewhere];
        let (out, _) = one_shard(def, Registry::new(), 8, false, 0, records);
        // Only the execution itself has a result; the requests run nothing.
        assert_eq!(out.len(), 1);
        let events = answer.try_recv().expect("an answer");
        let kinds: Vec<&str> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                "ExecutionStarted",
                "PassStateEntered",
                "PassStateExited",
                "WaitStateEntered"
            ]
        );
        assert!(matches!(
            none.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed)
        ));
        // The finished execution still hands over its whole history.
        let job = out[0].job.as_ref().unwrap();
        assert_eq!(job.events.len(), 6);
    }

    #[test]
    fn jobs_run_their_own_plans_with_their_names_and_arns_on_one_shard() {
        // The shard's own plan is never used for a job: each brings its own.
        let own = r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Result":"shard","End":true}}}"#;
        let ids = r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{
            "id.$":"$$.Execution.Id","name.$":"$$.Execution.Name","sm.$":"$$.StateMachine.Id",
            "smName.$":"$$.StateMachine.Name"},"End":true}}}"#;
        let wait_fail = r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":5,"Next":"F"},
            "F":{"Type":"Fail","Error":"Job.Err","Cause":"why"}}}"#;
        let records = vec![
            job_record(0, wait_fail, "b", "{}"),
            job_record(1, ids, "a", "{}"),
            job_record(2, ids, "c", "not json"),
            record(3, None, "{}".into()),
        ];
        let (out, _) = one_shard(own, Registry::new(), 8, false, 0, records);
        let by_offset = |o: i64| out.iter().find(|p| p.source.offset == o).unwrap();
        let a = by_offset(1);
        let Disposition::Output(bytes) = &a.disposition else {
            panic!("{a:?}")
        };
        assert_eq!(
            json::parse(bytes).unwrap(),
            json::parse(
                br#"{"id":"arn:aws:states:us-east-1:1:express:machine-a:a:u","name":"a",
                    "sm":"arn:machine","smName":"machine-a"}"#
            )
            .unwrap()
        );
        let b = by_offset(0);
        let job = b.job.as_ref().unwrap();
        assert_eq!(
            (b.status, job.error.as_deref(), job.cause.as_deref()),
            ("FAILED", Some("Job.Err"), Some("why"))
        );
        assert_eq!(job.stopped_ms - job.started_ms, 5000);
        // A failed job carries no envelope: the API answers with the error and cause.
        assert!(matches!(&b.disposition, Disposition::DeadLetter(e) if e.is_empty()));
        let c = by_offset(2);
        assert_eq!(c.status, "REJECTED");
        assert_eq!(
            c.job.as_ref().unwrap().error.as_deref(),
            Some("stepstream.InvalidJSON")
        );
        assert_eq!(c.execution_name.as_str(), "c");
        // A stream record on the same shard still runs the shard's plan.
        let d = by_offset(3);
        assert!(matches!(&d.disposition, Disposition::Output(o) if o == b"\"shard\""));
    }
}
