//! Kafka in, Kafka out, at least once.
//!
//! One consumer (in the configured group) reads every pipeline's input topic; each record goes
//! to its pipeline's shards; each result is produced to the output topic (or the dead-letter
//! topic), and only when the broker acknowledges it is the input offset marked done. The
//! commit point of a partition is its oldest record not yet done (`offsets.rs`), stored for
//! librdkafka's auto-commit; a crash re-runs at most what was in flight. When too many records
//! are pending the consumer pauses its partitions and resumes when half have drained. On a
//! rebalance, revoked partitions get `drain_timeout` to finish and commit before they go. On
//! shutdown the consumer stops, in-flight work finishes (or the deadline passes), the producer
//! flushes and the offsets are committed.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::offsets::Offsets;
use super::shard::{ShardConfig, ShardPool};
use super::{Disposition, Processed, Record, Source, dead_letter};
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
}

struct Shared {
    offsets: Mutex<Offsets>,
    metrics: Arc<Metrics>,
    drain: Duration,
}

/// The consumer's context: rebalance handling and statistics.
struct Ctx {
    shared: Arc<Shared>,
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

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let parts: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        // Let the records of the revoked partitions finish (bounded), then commit them.
        let deadline = Instant::now() + self.shared.drain;
        loop {
            let pending: usize = {
                let o = self
                    .shared
                    .offsets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                parts.iter().map(|(t, p)| o.pending_in(t, *p)).sum()
            };
            if pending == 0 || Instant::now() >= deadline {
                log::info(
                    "partitions_revoked",
                    &[
                        ("partitions", Value::int(parts.len() as i64)),
                        ("abandoned_in_flight", Value::int(pending as i64)),
                    ],
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut o = self
            .shared
            .offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut commit = TopicPartitionList::new();
        for (t, p) in &parts {
            if let Some(c) = o.committable(t, *p) {
                let _ = commit.add_partition_offset(t, *p, Offset::Offset(c));
            }
            o.forget(t, *p);
        }
        self.shared
            .metrics
            .pending
            .store(o.pending() as u64, Ordering::Relaxed);
        drop(o);
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
        if let Rebalance::Assign(tpl) = rebalance {
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
) -> Result<(), String> {
    let shared = Arc::new(Shared {
        offsets: Mutex::new(Offsets::new()),
        metrics: Arc::clone(&metrics),
        drain: Duration::from_millis(config.runtime.drain_timeout_ms),
    });
    let mut cc = client_config(
        config,
        &[
            ("statistics.interval.ms", "5000"),
            ("auto.commit.interval.ms", "1000"),
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
        })
        .map_err(|e| format!("cannot create the Kafka consumer: {e}"))?,
    );
    let producer_defaults = [("acks", "all")];
    let pc = client_config(
        config,
        &producer_defaults,
        &config.kafka.producer_options,
        &[],
    );
    let producer: FutureProducer = pc
        .create()
        .map_err(|e| format!("cannot create the Kafka producer: {e}"))?;

    let topics: Vec<&str> = pipelines
        .iter()
        .map(|p| p.pipeline.input_topic.as_str())
        .collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))?;
    metrics.connected.store(true, Ordering::Relaxed);

    // Shards and a sink per pipeline.
    let shard_config = ShardConfig {
        shards: config.runtime.shards,
        max_in_flight: config.runtime.max_in_flight,
        queue: config.runtime.max_in_flight,
    };
    let mut pools = Vec::new();
    let mut sinks = Vec::new();
    let mut by_topic: HashMap<String, usize> = HashMap::new();
    let runtime = tokio::runtime::Handle::current();
    for (i, p) in pipelines.into_iter().enumerate() {
        let (tx, rx) = crossbeam_channel::unbounded::<Processed>();
        let pool = ShardPool::start(
            Arc::clone(&p.plan),
            Arc::clone(&p.registry),
            &shard_config,
            tx,
        )
        .map_err(|e| {
            format!(
                "cannot start the shards of pipeline '{}': {e}",
                p.pipeline.name
            )
        })?;
        metrics
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(PipelineStats {
                name: p.pipeline.name.clone(),
                shards: pool.stats().to_vec(),
            });
        by_topic.insert(p.pipeline.input_topic.clone(), i);
        let sink = Sink {
            pipeline: p.pipeline.clone(),
            producer: producer.clone(),
            consumer: Arc::downgrade(&consumer),
            shared: Arc::clone(&shared),
            runtime: runtime.clone(),
        };
        let h = std::thread::Builder::new()
            .name(format!("sink-{}", p.pipeline.name))
            .spawn(move || sink.run(rx))
            .map_err(|e| format!("cannot start a sink thread: {e}"))?;
        pools.push(pool);
        sinks.push(h);
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

    let max_pending = config.runtime.max_pending;
    let mut paused = false;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
            _ = tick.tick() => {}
            msg = consumer.recv(), if !paused => {
                if let Some((i, record)) = admit(msg, &by_topic, &shared)
                    && pools[i].submit_async(record).await.is_err()
                {
                    return Err(format!("the shards of pipeline {i} stopped"));
                }
            }
        }
        // Backpressure: pause every assigned partition while too much is pending.
        let pending = shared
            .offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pending();
        if !paused && pending >= max_pending {
            if let Ok(a) = consumer.assignment()
                && consumer.pause(&a).is_ok()
            {
                paused = true;
                metrics.paused.store(true, Ordering::Relaxed);
                log::info("paused", &[("pending", Value::int(pending as i64))]);
            }
        } else if paused && pending <= max_pending / 2 {
            if let Ok(a) = consumer.assignment() {
                let _ = consumer.resume(&a);
            }
            paused = false;
            metrics.paused.store(false, Ordering::Relaxed);
            log::info("resumed", &[("pending", Value::int(pending as i64))]);
        }
        // Keep serving rebalances and statistics while paused. Pausing purges librdkafka's
        // prefetched messages, but one already handed over still arrives here; it is admitted,
        // because resume() continues after the last message the application saw and dropping it
        // would skip it.
        if paused
            && let Ok(msg) = tokio::time::timeout(Duration::from_millis(10), consumer.recv()).await
            && let Some((i, record)) = admit(msg, &by_topic, &shared)
            && pools[i].submit_async(record).await.is_err()
        {
            return Err(format!("the shards of pipeline {i} stopped"));
        }
    }

    // Shutdown: no more records; let the shards finish, then the sinks deliver.
    log::info(
        "draining",
        &[(
            "pending",
            Value::int(
                shared
                    .offsets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pending() as i64,
            ),
        )],
    );
    let deadline = Instant::now() + shared.drain;
    let closing = tokio::task::spawn_blocking(move || {
        for p in pools {
            p.close();
        }
        for s in sinks {
            let _ = s.join();
        }
    });
    let _ = tokio::time::timeout(shared.drain, closing).await;
    while shared
        .offsets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pending()
        > 0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = producer.flush(Duration::from_secs(5));
    store_commit_points(&consumer, &shared);
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        log::warn("commit_failed", &[("error", Value::from(e.to_string()))]);
    }
    let left = shared
        .offsets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pending();
    // Close the consumer now (the sinks only hold it weakly), so it leaves the group and its
    // partitions go to the other members at once.
    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    metrics.assigned.store(0, Ordering::Relaxed);
    log::info(
        "stopped",
        &[("abandoned_in_flight", Value::int(left as i64))],
    );
    Ok(())
}

/// Takes one consumed message into the pipeline's bookkeeping: it becomes a pending offset and a
/// record for the pipeline reading its topic (returned with that pipeline's index).
fn admit(
    msg: rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>,
    by_topic: &HashMap<String, usize>,
    shared: &Shared,
) -> Option<(usize, Record)> {
    let msg = match msg {
        Ok(m) => m,
        Err(e) => {
            log::warn("consume_error", &[("error", Value::from(e.to_string()))]);
            return None;
        }
    };
    let &i = by_topic.get(msg.topic())?;
    let source = Source {
        topic: Str::new(msg.topic()),
        partition: msg.partition(),
        offset: msg.offset(),
    };
    let record = Record {
        key: msg.key().map(<[u8]>::to_vec),
        payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        received: Instant::now(),
        source: source.clone(),
    };
    let mut o = shared.offsets.lock().unwrap_or_else(|e| e.into_inner());
    o.begin(&source.topic, source.partition, source.offset);
    shared
        .metrics
        .pending
        .store(o.pending() as u64, Ordering::Relaxed);
    Some((i, record))
}

fn store_commit_points(consumer: &StreamConsumer<Ctx>, shared: &Shared) {
    let points = shared
        .offsets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .commit_points();
    let mut tpl = TopicPartitionList::new();
    for (t, p, c) in points {
        let _ = tpl.add_partition_offset(&t, p, Offset::Offset(c));
    }
    if tpl.count() > 0 {
        let _ = consumer.store_offsets(&tpl);
    }
}

/// Produces a pipeline's results and marks their input offsets done when acknowledged.
struct Sink {
    pipeline: Pipeline,
    producer: FutureProducer,
    consumer: std::sync::Weak<StreamConsumer<Ctx>>,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
}

impl Sink {
    /// Enqueues results in the order the shards made them (librdkafka keeps that order per
    /// partition), and waits for each acknowledgement on the runtime.
    fn run(self, rx: crossbeam_channel::Receiver<Processed>) {
        let this = Arc::new(self);
        for p in rx.iter() {
            let (topic, payload, dead) = match &p.disposition {
                Disposition::Output(b) => (this.pipeline.output_topic.clone(), b.clone(), false),
                Disposition::DeadLetter(b) => {
                    (this.pipeline.dead_letter_topic.clone(), b.clone(), true)
                }
            };
            let delivery = this.enqueue(&p, &topic, &payload);
            let this2 = Arc::clone(&this);
            this.runtime.spawn(async move {
                let ok = match delivery {
                    Some(d) => matches!(d.await, Ok(Ok(_))),
                    None => false,
                };
                if ok {
                    this2.done(&p, dead);
                } else {
                    this2.deliver_slowly(p, topic, payload, dead).await;
                }
            });
        }
    }

    fn headers(p: &Processed, source_text: &str) -> OwnedHeaders {
        OwnedHeaders::new()
            .insert(Header {
                key: "stepstream-execution",
                value: Some(p.execution_name.as_bytes()),
            })
            .insert(Header {
                key: "stepstream-source",
                value: Some(source_text.as_bytes()),
            })
            .insert(Header {
                key: "stepstream-status",
                value: Some(p.status.as_bytes()),
            })
    }

    /// Puts a result on librdkafka's queue, waiting while the queue is full.
    fn enqueue(
        &self,
        p: &Processed,
        topic: &str,
        payload: &[u8],
    ) -> Option<rdkafka::producer::DeliveryFuture> {
        let source_text = p.source.to_string();
        loop {
            let mut record = FutureRecord::to(topic)
                .payload(payload)
                .headers(Self::headers(p, &source_text));
            if let Some(k) = &p.key {
                record = record.key(k);
            }
            match self.producer.send_result(record) {
                Ok(d) => return Some(d),
                Err((e, _)) => {
                    if matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ) {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    self.shared
                        .metrics
                        .produce_errors
                        .fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
    }

    /// The result is acknowledged: mark its input offset done and store the commit point.
    fn done(&self, p: &Processed, dead: bool) {
        let m = &self.shared.metrics;
        if dead {
            m.dead_letters.fetch_add(1, Ordering::Relaxed);
        } else {
            m.outputs.fetch_add(1, Ordering::Relaxed);
        }
        let commit = {
            let mut o = self
                .shared
                .offsets
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let c = o.finish(&p.source.topic, p.source.partition, p.source.offset);
            m.pending.store(o.pending() as u64, Ordering::Relaxed);
            c
        };
        if let Some(c) = commit {
            let mut tpl = TopicPartitionList::new();
            if tpl
                .add_partition_offset(&p.source.topic, p.source.partition, Offset::Offset(c))
                .is_ok()
            {
                // Fails only for a partition no longer assigned (or a consumer already
                // closed): its new owner re-runs the record.
                if let Some(c) = self.consumer.upgrade() {
                    let _ = c.store_offsets(&tpl);
                }
            }
        }
    }

    /// A result the first attempt did not deliver: retried with backoff until the broker takes
    /// it; one it can never take (too large) becomes a dead letter, so the partition moves on.
    async fn deliver_slowly(
        &self,
        p: Processed,
        mut topic: String,
        mut payload: Vec<u8>,
        mut dead: bool,
    ) {
        let source_text = p.source.to_string();
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut record = FutureRecord::to(&topic)
                .payload(&payload)
                .headers(Self::headers(&p, &source_text));
            if let Some(k) = &p.key {
                record = record.key(k);
            }
            match self.producer.send(record, Duration::from_secs(30)).await {
                Ok(_) => break,
                Err((e, _)) => {
                    self.shared
                        .metrics
                        .produce_errors
                        .fetch_add(1, Ordering::Relaxed);
                    let permanent = matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge)
                    );
                    if permanent && !dead {
                        payload = dead_letter(
                            "stepstream.ProduceFailed",
                            &format!("the output could not be produced to '{topic}': {e}"),
                            b"",
                            &p.source,
                            &p.execution_name,
                        );
                        topic = self.pipeline.dead_letter_topic.clone();
                        dead = true;
                        continue;
                    }
                    log::warn(
                        "produce_retry",
                        &[
                            ("topic", Value::from(topic.clone())),
                            ("source", Value::from(source_text.clone())),
                            ("error", Value::from(e.to_string())),
                        ],
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.done(&p, dead);
    }
}
