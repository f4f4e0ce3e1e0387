//! Kafka in, Kafka out, at least once.
//!
//! One consumer (in the configured group) reads every pipeline's input topic; each record goes
//! to its pipeline's shards; each shard produces its results to the output topic (or the
//! dead-letter topic) itself (`produce.rs`), and only when the broker acknowledges one is its
//! input offset marked done. The commit point of a partition is its oldest record not yet
//! done, kept in the partition's own window (`offsets.rs`; a record carries its window to the
//! acknowledgement, so partitions share no lock), stored every 50 ms for librdkafka's
//! auto-commit; a crash re-runs at most what was in flight.
//!
//! Backpressure without pausing: every assigned partition gets its own librdkafka queue
//! (split off the consumer's before the assignment starts fetching) and a reader task that
//! takes a record only while fewer than `max_pending` are pending. A partition nobody reads
//! stops fetching once its queue holds `queued.max.messages.kbytes`, so memory stays bounded,
//! and nothing prefetched is thrown away. (Pausing would purge the prefetched records and fetch
//! them again from the middle of a batch on resume; brokers handle that badly, tansu 0.6 very
//! badly.) The consumer's own queue keeps serving rebalances, statistics and errors.
//!
//! On a rebalance, revoked partitions stop being read and get `drain_timeout` to finish and
//! commit before they go (their windows signal when they drain; nothing polls). On shutdown the readers stop, in-flight work finishes (or the deadline
//! passes), the producer flushes and the offsets are committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::Message;
use rdkafka::producer::Producer as _;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::offsets::{Offsets, Window};
use super::produce::{self, KafkaSink, Route};
use super::shard::{ShardConfig, ShardPool};
use super::{Record, Source};
use crate::config::{Config, Pipeline};
use crate::json::{Str, Value};
use crate::log;
use crate::metrics::{Metrics, PipelineStats};
use crate::plan::Plan;
use crate::tasks::Registry;

/// A pipeline ready to run: its plan and resources.
pub struct Prepared {
    pub pipeline: Pipeline,
    pub plan: Arc<Plan>,
    pub registry: Arc<Registry>,
    /// The workflow drawn as SVG, for the workflow page.
    pub drawing: Option<String>,
    /// Where its executions' events are logged, if anywhere.
    pub logging: Option<crate::exec::logging::Logging>,
}

/// A topic and a partition number.
type PartitionId = (String, i32);

pub(super) struct Shared {
    pub offsets: Offsets,
    pub metrics: Arc<Metrics>,
    drain: Duration,
    /// Records pending (consumed, not yet delivered) above which readers wait.
    max_pending: usize,
    /// Woken when pending falls below `max_pending`.
    room: tokio::sync::Notify,
    /// The partitions with a reader task, and how to stop each.
    readers: Mutex<HashMap<PartitionId, Arc<ReaderCtl>>>,
    /// Set by every rebalance; wakes the main loop to start (and stop) partition readers.
    rebalanced: AtomicBool,
    assigned: tokio::sync::Notify,
    /// Woken when nothing is pending any more (the stop waits on it).
    idle: tokio::sync::Notify,
    /// Set when the stop's deadline has passed: results still waiting for room in the
    /// producer's queue are left undelivered.
    pub abandoned: AtomicBool,
}

impl Shared {
    /// The pending count changed from `before` to `after`: the gauges follow, the readers are
    /// woken when there is room again, and the stop when nothing is left.
    pub fn set_pending(&self, before: usize, after: usize) {
        let m = &self.metrics;
        m.pending.store(after as u64, Ordering::Relaxed);
        if after > before {
            m.pending_peak.fetch_max(after as u64, Ordering::Relaxed);
        }
        if before >= self.max_pending && after < self.max_pending {
            self.room.notify_waiters();
        }
        if after == 0 && before > 0 {
            self.idle.notify_waiters();
        }
    }

    /// Stops the readers of `parts` (the partitions are being revoked, or the process stops).
    fn stop_readers(&self, parts: &[PartitionId]) {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        for key in parts {
            if let Some(r) = readers.remove(key) {
                r.stop();
            }
        }
    }
}

/// Stops one partition's reader task.
struct ReaderCtl {
    active: AtomicBool,
    stop: tokio::sync::Notify,
}

impl ReaderCtl {
    fn stop(&self) {
        self.active.store(false, Ordering::Relaxed);
        self.stop.notify_one();
    }
}

/// The consumer's context: rebalance handling and statistics.
struct Ctx {
    shared: Arc<Shared>,
    /// The consumer itself, set once it exists (rebalances split partition queues off it).
    consumer: OnceLock<Weak<StreamConsumer<Ctx>>>,
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        let mut lag = self
            .shared
            .metrics
            .lag
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        lag.clear();
        for (topic, t) in stats.topics {
            for (p, part) in t.partitions {
                if p >= 0 && part.consumer_lag >= 0 {
                    lag.insert((topic.clone(), p), part.consumer_lag);
                }
            }
        }
    }

    /// librdkafka's own log lines (including what its `debug` option turns on) go to the same
    /// JSON log, rather than to the `log` facade nobody listens to here.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        forward_log(level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        log::warn(
            "kafka_error",
            &[
                ("error", Value::from(error.to_string())),
                ("reason", Value::string(reason)),
            ],
        );
    }
}

/// One librdkafka log line (consumer or producer) as a line of the JSON log.
pub(super) fn forward_log(level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
    use rdkafka::config::RDKafkaLogLevel as L;
    let level = match level {
        L::Emerg | L::Alert | L::Critical | L::Error => "ERROR",
        L::Warning => "WARN",
        L::Notice | L::Info => "INFO",
        L::Debug => "DEBUG",
    };
    log::event(
        level,
        "librdkafka",
        &[
            ("facility", Value::string(fac)),
            ("message", Value::string(message)),
        ],
    );
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let tpl = match rebalance {
            Rebalance::Assign(tpl) => {
                // Before librdkafka starts fetching them, give the partitions their own queues,
                // so backpressure can leave a partition's records where they are. Splitting a
                // queue off stops librdkafka forwarding it to the consumer's queue, and it
                // leaves it so on every later fetch start; the handle itself is not needed
                // yet (the main loop splits it again to read it).
                if let Some(c) = self.consumer.get().and_then(Weak::upgrade) {
                    for e in tpl.elements() {
                        drop(c.split_partition_queue(e.topic(), e.partition()));
                    }
                }
                return;
            }
            Rebalance::Revoke(tpl) => tpl,
            Rebalance::Error(_) => return,
        };
        let parts: Vec<PartitionId> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        // No new records from them; let those in flight finish (bounded), then commit them.
        self.shared.stop_readers(&parts);
        // Each revoked partition's window signals when its last result is acknowledged.
        let wait = || {
            let deadline = Instant::now() + self.shared.drain;
            parts
                .iter()
                .filter_map(|(t, p)| self.shared.offsets.existing(t, *p))
                .map(|w| w.wait_drained(deadline))
                .sum::<usize>()
        };
        // This runs inside the main loop's poll: hand the worker's other tasks (the readers
        // of the partitions that stay) to another thread while it blocks.
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let pending = if on_worker {
            tokio::task::block_in_place(wait)
        } else {
            wait()
        };
        log::info(
            "partitions_revoked",
            &[
                ("partitions", Value::int(parts.len() as i64)),
                ("abandoned_in_flight", Value::int(pending as i64)),
            ],
        );
        let mut commit = TopicPartitionList::new();
        for (t, p) in &parts {
            let o = &self.shared.offsets;
            if let Some(c) = o.existing(t, *p).and_then(|w| w.committable()) {
                let _ = commit.add_partition_offset(t, *p, Offset::Offset(c));
            }
            let before = o.pending();
            let left = o.forget(t, *p);
            self.shared.set_pending(before, before.saturating_sub(left));
        }
        if commit.count() > 0
            && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
        {
            log::warn("commit_failed", &[("error", Value::from(e.to_string()))]);
        }
        self.shared
            .metrics
            .lag
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let n = consumer.assignment().map_or(0, |a| a.count());
        self.shared
            .metrics
            .assigned
            .store(n as u64, Ordering::Relaxed);
        self.shared.rebalanced.store(true, Ordering::Relaxed);
        if let Rebalance::Assign(tpl) = rebalance {
            self.shared.assigned.notify_one();
            log::info(
                "partitions_assigned",
                &[
                    ("assigned_now", Value::int(tpl.count() as i64)),
                    ("assigned_total", Value::int(n as i64)),
                ],
            );
        }
    }
}

/// librdkafka settings: `defaults` unless the user set them, then the user's options, then
/// what stepstream's delivery guarantee depends on (`forced`).
fn client_config(
    config: &Config,
    defaults: &[(&str, &str)],
    extra: &std::collections::BTreeMap<String, String>,
    forced: &[(&str, &str)],
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers);
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    for (k, v) in config.kafka.options.iter().chain(extra) {
        c.set(k, v);
    }
    for (k, v) in forced {
        c.set(*k, *v);
    }
    // rdkafka takes its log level from the `log` facade, which is off here; without this,
    // librdkafka drops its own warnings and the lines its `debug` option asks for.
    let debugging = c.get("debug").is_some_and(|d| !d.is_empty());
    c.set_log_level(if debugging {
        rdkafka::config::RDKafkaLogLevel::Debug
    } else {
        rdkafka::config::RDKafkaLogLevel::Warning
    });
    c
}

/// How the process should stop.
pub type Shutdown = tokio::sync::watch::Receiver<bool>;

/// Runs the pipelines until `shutdown` turns true. Returns when everything in flight has been
/// delivered and committed, or the drain deadline passed.
pub async fn run(
    config: &Config,
    pipelines: Vec<Prepared>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) -> Result<Stopped, StreamError> {
    let shared = Arc::new(Shared {
        offsets: Offsets::new(),
        metrics: Arc::clone(&metrics),
        drain: Duration::from_millis(config.runtime.drain_timeout_ms),
        max_pending: config.runtime.max_pending,
        room: tokio::sync::Notify::new(),
        readers: Mutex::new(HashMap::new()),
        rebalanced: AtomicBool::new(false),
        assigned: tokio::sync::Notify::new(),
        idle: tokio::sync::Notify::new(),
        abandoned: AtomicBool::new(false),
    });
    let mut cc = client_config(
        config,
        &[
            ("statistics.interval.ms", "5000"),
            ("auto.commit.interval.ms", "1000"),
            // Each partition's prefetch queue is its own (see the module docs): these bound
            // what a partition that is not being read may hold.
            ("queued.min.messages", "20000"),
            ("queued.max.messages.kbytes", "16384"),
        ],
        &Default::default(),
        &[
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "false"),
        ],
    );
    cc.set("group.id", &config.kafka.group_id);
    let consumer: Arc<StreamConsumer<Ctx>> = Arc::new(
        cc.create_with_context(Ctx {
            shared: Arc::clone(&shared),
            consumer: OnceLock::new(),
        })
        .map_err(|error| StreamError::Client {
            role: "consumer",
            error,
        })?,
    );
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
    let producer_defaults = [("acks", "all")];
    let pc = client_config(
        config,
        &producer_defaults,
        &config.kafka.producer_options,
        &[],
    );
    let routes = pipelines.iter().map(|p| Route::of(&p.pipeline)).collect();
    let producer = produce::start(pc, &shared, routes).map_err(|error| StreamError::Client {
        role: "producer",
        error,
    })?;

    let topics: Vec<&str> = pipelines
        .iter()
        .map(|p| p.pipeline.input_topic.as_str())
        .collect();
    consumer
        .subscribe(&topics)
        .map_err(|error| StreamError::Subscribe {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            error,
        })?;
    metrics.connected.store(true, Ordering::Relaxed);

    // Shards per pipeline, delivering straight to the producer.
    let shard_config = ShardConfig {
        shards: config.runtime.shards,
        max_in_flight: config.runtime.max_in_flight,
        queue: config.runtime.max_in_flight,
        ordered_keys: false,
        max_map_iterations: config.runtime.max_map_iterations,
        state_counts: true,
        logging: None,
    };
    let mut pools = Vec::new();
    let mut by_topic: HashMap<String, usize> = HashMap::new();
    for (i, p) in pipelines.into_iter().enumerate() {
        let sink = KafkaSink {
            producer: Arc::clone(&producer),
            route: i,
        };
        let pool = ShardPool::start(
            Arc::clone(&p.plan),
            Arc::clone(&p.registry),
            &ShardConfig {
                ordered_keys: p.pipeline.ordered_keys,
                logging: p.logging.clone(),
                ..shard_config.clone()
            },
            sink,
        )
        .map_err(|error| StreamError::StartShards {
            pipeline: p.pipeline.name.clone(),
            error,
        })?;
        metrics
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(PipelineStats {
                plan: Some(Arc::clone(&p.plan)),
                drawing: p.drawing.clone(),
                ..PipelineStats::new(&p.pipeline.name, pool.stats().to_vec())
            });
        by_topic.insert(p.pipeline.input_topic.clone(), i);
        pools.push(pool);
    }
    log::info(
        "started",
        &[
            ("brokers", Value::from(config.kafka.brokers.clone())),
            ("group_id", Value::from(config.kafka.group_id.clone())),
            ("pipelines", Value::int(pools.len() as i64)),
            (
                "shards_per_pipeline",
                Value::int(config.runtime.shards as i64),
            ),
        ],
    );

    let pools = Arc::new(pools);
    let by_topic = Arc::new(by_topic);
    let mut readers: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut backpressure = false;
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
            _ = shared.assigned.notified() => {}
            // Acknowledged results move their windows' commit points; librdkafka's
            // auto-commit takes what is stored.
            _ = tick.tick() => store_commit_points(&consumer, &shared),
            // The consumer's own queue: rebalances, statistics and errors are served while it
            // is polled; a message arrives here only if its partition could not be split off.
            msg = consumer.recv() => {
                if let Some((i, record)) = admit(msg, &by_topic, &shared, None)
                    && pools[i].submit_async(record).await.is_err()
                {
                    return Err(StreamError::ShardsStopped { pipeline: i });
                }
            }
        }
        if shared.rebalanced.swap(false, Ordering::Relaxed) {
            start_readers(&consumer, &shared, &pools, &by_topic, &mut readers).await?;
        }
        readers.retain(|r| !r.is_finished());
        let pending = metrics.pending.load(Ordering::Relaxed) as usize;
        let now = pending >= config.runtime.max_pending;
        if now != backpressure {
            backpressure = now;
            metrics.paused.store(now, Ordering::Relaxed);
            log::info(
                if now {
                    "backpressure_on"
                } else {
                    "backpressure_off"
                },
                &[("pending", Value::int(pending as i64))],
            );
        }
    }

    // Shutdown: no more records (the readers finish the record in hand and stop); let the
    // shards finish and hand their last results to the producer.
    let all: Vec<PartitionId> = shared
        .readers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .cloned()
        .collect();
    shared.stop_readers(&all);
    for r in readers {
        let _ = r.await;
    }
    let pools = Arc::try_unwrap(pools).map_err(|_| StreamError::ReaderOutlived)?;
    log::info(
        "draining",
        &[("pending", Value::int(shared.offsets.pending() as i64))],
    );
    let deadline = Instant::now() + shared.drain;
    let closing = tokio::task::spawn_blocking(move || {
        for p in pools {
            p.close();
        }
    });
    let _ = tokio::time::timeout(shared.drain, closing).await;
    // Woken by the last acknowledgement (checked again after arming, so one that lands in
    // between is not missed).
    while shared.offsets.pending() > 0 {
        let idle = shared.idle.notified();
        tokio::pin!(idle);
        idle.as_mut().enable();
        let left = deadline.saturating_duration_since(Instant::now());
        if shared.offsets.pending() == 0 || left.is_zero() {
            break;
        }
        let _ = tokio::time::timeout(left, idle).await;
    }
    shared.abandoned.store(true, Ordering::Relaxed);
    // Every step from here is bounded: a broker that stops answering must not keep the
    // process (librdkafka's flush, commit and close all wait on the broker). What was not
    // acknowledged is not committed, so the next start runs it again.
    let flushing = {
        let producer = Arc::clone(&producer);
        tokio::task::spawn_blocking(move || producer.flush(STOP_STEP))
    };
    let _ = tokio::time::timeout(STOP_STEP + Duration::from_secs(1), flushing).await;
    store_commit_points(&consumer, &shared);
    let committing = {
        let consumer = Arc::clone(&consumer);
        tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync))
    };
    match tokio::time::timeout(STOP_STEP, committing).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => log::warn("commit_failed", &[("error", Value::from(e.to_string()))]),
        Ok(Err(_)) | Err(_) => log::warn(
            "commit_failed",
            &[(
                "error",
                Value::from(format!(
                    "the broker did not answer the commit within {} s",
                    STOP_STEP.as_secs()
                )),
            )],
        ),
    }
    let left = shared.offsets.pending();
    // Close the consumer now, so it leaves the group and its
    // partitions go to the other members at once; a broker that does not answer gets
    // `STOP_STEP` for that too.
    let closing = tokio::task::spawn_blocking(move || drop(consumer));
    let _ = tokio::time::timeout(STOP_STEP, closing).await;
    // Dropping the producer purges what it still holds (bounded by librdkafka's own wait).
    let closing = tokio::task::spawn_blocking(move || drop(producer));
    let _ = tokio::time::timeout(STOP_STEP, closing).await;
    metrics.assigned.store(0, Ordering::Relaxed);
    log::info(
        "stopped",
        &[("abandoned_in_flight", Value::int(left as i64))],
    );
    Ok(Stopped { undelivered: left })
}

/// Why the Kafka pipelines could not start, or stopped before they were asked to.
#[derive(Debug)]
pub enum StreamError {
    /// librdkafka refused the settings of the consumer or the producer.
    Client {
        role: &'static str,
        error: rdkafka::error::KafkaError,
    },
    Subscribe {
        topics: Vec<String>,
        error: rdkafka::error::KafkaError,
    },
    /// A pipeline's shard threads could not be started.
    StartShards {
        pipeline: String,
        error: std::io::Error,
    },
    /// The shards of the pipeline with this index ended while records still came (they end
    /// only when closed, so this is a bug).
    ShardsStopped { pipeline: usize },
    /// A partition reader was still running after the shutdown waited for every reader.
    ReaderOutlived,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Client { role, error } => write!(
                f,
                "cannot create the Kafka {role}: {error} (check [kafka] brokers and options)"
            ),
            StreamError::Subscribe { topics, error } => write!(
                f,
                "cannot subscribe to {topics:?}: {error} (check the pipelines' input_topic)"
            ),
            StreamError::StartShards { pipeline, error } => {
                write!(
                    f,
                    "cannot start the shards of pipeline '{pipeline}': {error}"
                )
            }
            StreamError::ShardsStopped { pipeline } => write!(
                f,
                "internal error: the shards of pipeline {} stopped while records were coming; \
                 please report it",
                pipeline + 1
            ),
            StreamError::ReaderOutlived => write!(
                f,
                "internal error: a partition reader outlived the shutdown; please report it"
            ),
        }
    }
}

impl std::error::Error for StreamError {}

/// The most each step of the stop after the drain (flush, commit, close) may take.
const STOP_STEP: Duration = Duration::from_secs(5);

/// How a pipeline run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Records consumed whose result the broker never acknowledged: not committed, so the
    /// next start runs them again.
    pub undelivered: usize,
}

/// Starts a reader task for every assigned partition that has none, and stops the readers of
/// partitions no longer assigned.
async fn start_readers(
    consumer: &Arc<StreamConsumer<Ctx>>,
    shared: &Arc<Shared>,
    pools: &Arc<Vec<ShardPool>>,
    by_topic: &Arc<HashMap<String, usize>>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), StreamError> {
    let Ok(assignment) = consumer.assignment() else {
        return Ok(());
    };
    let assigned: Vec<PartitionId> = assignment
        .elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect();
    let (new, gone): (Vec<PartitionId>, Vec<PartitionId>) = {
        let readers = shared.readers.lock().unwrap_or_else(|e| e.into_inner());
        (
            assigned
                .iter()
                .filter(|k| !readers.contains_key(*k))
                .cloned()
                .collect(),
            readers
                .keys()
                .filter(|k| !assigned.contains(k))
                .cloned()
                .collect(),
        )
    };
    shared.stop_readers(&gone);
    for (topic, partition) in new {
        let Some(queue) = consumer.split_partition_queue(&topic, partition) else {
            // Not expected (librdkafka creates the partition's queue on demand); try again on
            // the next pass rather than leave the partition unread.
            log::warn(
                "partition_queue_unavailable",
                &[
                    ("topic", Value::from(topic.clone())),
                    ("partition", Value::int(partition as i64)),
                ],
            );
            shared.rebalanced.store(true, Ordering::Relaxed);
            continue;
        };
        // Messages fetched before the split sit in the consumer's queue: take them first, so
        // the partition's records still enter in offset order.
        while let Ok(msg) = tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
            if let Some((i, record)) = admit(msg, by_topic, shared, None)
                && pools[i].submit_async(record).await.is_err()
            {
                return Err(StreamError::ShardsStopped { pipeline: i });
            }
        }
        let ctl = Arc::new(ReaderCtl {
            active: AtomicBool::new(true),
            stop: tokio::sync::Notify::new(),
        });
        shared
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((topic.clone(), partition), Arc::clone(&ctl));
        let name = Str::new(&topic);
        let window = shared.offsets.window(&name, partition);
        tasks.push(tokio::spawn(read_partition(
            queue,
            name,
            window,
            ctl,
            Arc::clone(shared),
            Arc::clone(pools),
            Arc::clone(by_topic),
        )));
    }
    Ok(())
}

/// One partition's reader: takes a record whenever fewer than `max_pending` are pending, until
/// stopped. A record taken is always handed on; one seen after the stop is left for the
/// partition's next owner.
async fn read_partition(
    queue: StreamPartitionQueue<Ctx>,
    topic: Str,
    window: Arc<Window>,
    ctl: Arc<ReaderCtl>,
    shared: Arc<Shared>,
    pools: Arc<Vec<ShardPool>>,
    by_topic: Arc<HashMap<String, usize>>,
) {
    // A fallback wake-up: a split queue's wake-up callback is the only thing that would
    // otherwise wake this task.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while ctl.active.load(Ordering::Relaxed) {
        if shared.metrics.pending.load(Ordering::Relaxed) as usize >= shared.max_pending {
            let room = shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if shared.metrics.pending.load(Ordering::Relaxed) as usize >= shared.max_pending {
                tokio::select! {
                    _ = room => {}
                    _ = ctl.stop.notified() => {}
                    _ = tick.tick() => {}
                }
            }
            continue;
        }
        let msg = tokio::select! {
            _ = ctl.stop.notified() => break,
            _ = tick.tick() => continue,
            m = queue.recv() => m,
        };
        if !ctl.active.load(Ordering::Relaxed) {
            break;
        }
        if let Some((i, record)) = admit(msg, &by_topic, &shared, Some((&window, &topic)))
            && pools[i].submit_async(record).await.is_err()
        {
            break;
        }
    }
}

/// Takes one consumed message into the pipeline's bookkeeping: it becomes a pending offset and a
/// record for the pipeline reading its topic (returned with that pipeline's index).
fn admit(
    msg: rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>,
    by_topic: &HashMap<String, usize>,
    shared: &Shared,
    reader: Option<(&Arc<Window>, &Str)>,
) -> Option<(usize, Record)> {
    let msg = match msg {
        Ok(m) => m,
        Err(e) => {
            log::warn("consume_error", &[("error", Value::from(e.to_string()))]);
            return None;
        }
    };
    let &i = by_topic.get(msg.topic())?;
    // A partition's reader knows its window and holds its topic's name; a record that came
    // through the consumer's own queue (before its partition was split off) looks them up.
    let topic = reader.map_or_else(|| Str::new(msg.topic()), |(_, t)| t.clone());
    let source = Source {
        topic,
        partition: msg.partition(),
        offset: msg.offset(),
    };
    let window = match reader {
        Some((w, _)) => Arc::clone(w),
        None => shared.offsets.window(&source.topic, source.partition),
    };
    let after = shared.offsets.begin(&window, source.offset);
    shared.set_pending(after - 1, after);
    let record = Record {
        key: msg.key().map(<[u8]>::to_vec),
        payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        received: Instant::now(),
        source,
        window: Some(window),
        job: None,
    };
    Some((i, record))
}

fn store_commit_points(consumer: &StreamConsumer<Ctx>, shared: &Shared) {
    let points = shared.offsets.commit_points();
    let mut tpl = TopicPartitionList::new();
    for (t, p, c) in points {
        let _ = tpl.add_partition_offset(&t, p, Offset::Offset(c));
    }
    if tpl.count() > 0 {
        let _ = consumer.store_offsets(&tpl);
    }
}
