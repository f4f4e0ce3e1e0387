//! `stepstream bench --brokers`: the Kafka mode. On fresh topics of the given broker it
//! produces N events of a workload (unique `eventId`s), then, from the same input topic and in
//! the same run:
//!
//! 1. the passthrough baseline: a plain consumer and producer (acks=all, as stepstream's sink)
//!    that copy every record to another topic with the three headers stepstream's outputs
//!    carry, no workflow;
//! 2. stepstream: the full pipeline (`stream::kafka::run`: shards, executions, outputs and dead
//!    letters, offsets committed after acknowledgement).
//!
//! Each is timed from its start until the last of the N results was acknowledged by the
//! broker; the report gives both throughputs, their ratio, and the latency from a record's
//! arrival to its result being ready (the shards' histograms). The records are all in the
//! topic before either starts, so this measures how fast a backlog drains.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::bench::Inputs;
use stepstream::config::{Config, Http, Kafka, Pipeline, Runtime};
use stepstream::json::Value;
use stepstream::metrics::Metrics;
use stepstream::stream::kafka::{self, Prepared};

pub struct KafkaOptions {
    pub brokers: String,
    pub partitions: i32,
    pub definition: PathBuf,
    pub input_file: PathBuf,
    pub mock_file: Option<PathBuf>,
    /// Resource bindings (`[[resources]]` of a configuration, built).
    pub bindings: stepstream::tasks::Bindings,
    pub executions: u64,
    pub shards: usize,
    /// Whether results carry stepstream's headers (and the passthrough the same three).
    pub headers: bool,
    /// Use the existing (empty) topics PREFIX-in, -copy, -out and -dlq instead of creating
    /// fresh ones (for brokers where the bench may not create topics).
    pub topic_prefix: Option<String>,
}

#[derive(Debug, Clone)]
pub struct KafkaReport {
    pub executions: u64,
    pub partitions: i32,
    pub shards: usize,
    pub produce_seconds: f64,
    pub passthrough_seconds: f64,
    pub stepstream_seconds: f64,
    pub outputs: u64,
    pub dead_letters: u64,
    /// Arrival to result ready, microseconds: p50, p90, p99, p99.9, max.
    pub latency_us: [u64; 5],
    /// CPU time (user + system) of this process during each phase, seconds (the broker's
    /// own is not counted).
    pub passthrough_cpu_seconds: f64,
    pub stepstream_cpu_seconds: f64,
    /// The same workflow on the same N events in process (the production shard fed by the
    /// bench's generator, one shard), CPU seconds: the workflow's cost without Kafka.
    pub in_process_cpu_seconds: f64,
    /// The stepstream phase's CPU seconds by thread name (`shard-0`, `tokio-rt-worker`,
    /// librdkafka's `rdk:*`, ...), summed over threads of one name, busiest first: where the
    /// pipeline's cost beyond the workflow goes.
    pub stepstream_cpu_by_thread: Vec<(String, f64)>,
    /// The stepstream phase's voluntary context switches (a thread going to sleep to wait
    /// for work, to be woken again) by thread name: how often the hand-offs between threads
    /// put their receivers to sleep.
    pub stepstream_sleeps_by_thread: Vec<(String, u64)>,
}

impl KafkaReport {
    pub fn passthrough_per_second(&self) -> f64 {
        self.executions as f64 / self.passthrough_seconds
    }

    pub fn stepstream_per_second(&self) -> f64 {
        self.executions as f64 / self.stepstream_seconds
    }

    fn per_record_us(&self, cpu_seconds: f64) -> f64 {
        cpu_seconds * 1e6 / self.executions.max(1) as f64
    }

    /// What stepstream's pipeline costs per record beyond the passthrough's, against what
    /// the workflow alone costs per execution in process (1.0: Kafka adds nothing but the
    /// passthrough's own work).
    /// `None` when the in-process run was too short to register (CPU time comes in 10 ms
    /// ticks).
    pub fn pipeline_cost_ratio(&self) -> Option<f64> {
        (self.in_process_cpu_seconds > 0.0).then(|| {
            (self.per_record_us(self.stepstream_cpu_seconds)
                - self.per_record_us(self.passthrough_cpu_seconds))
                / self.per_record_us(self.in_process_cpu_seconds)
        })
    }

    pub fn to_json(&self) -> Value {
        let us = |v: u64| Value::int(v as i64);
        Value::object_from([
            ("executions", Value::int(self.executions as i64)),
            ("partitions", Value::int(self.partitions as i64)),
            ("shards", Value::int(self.shards as i64)),
            ("produce_seconds", Value::float(self.produce_seconds)),
            (
                "passthrough_seconds",
                Value::float(self.passthrough_seconds),
            ),
            (
                "passthrough_per_second",
                Value::float(self.passthrough_per_second().round()),
            ),
            ("stepstream_seconds", Value::float(self.stepstream_seconds)),
            (
                "stepstream_per_second",
                Value::float(self.stepstream_per_second().round()),
            ),
            (
                "stepstream_vs_passthrough",
                Value::float(
                    (self.stepstream_per_second() / self.passthrough_per_second() * 1000.0).round()
                        / 1000.0,
                ),
            ),
            ("outputs", Value::int(self.outputs as i64)),
            ("dead_letters", Value::int(self.dead_letters as i64)),
            (
                "cpu_us_per_record",
                Value::object_from([
                    (
                        "passthrough",
                        Value::float(round3(self.per_record_us(self.passthrough_cpu_seconds))),
                    ),
                    (
                        "stepstream",
                        Value::float(round3(self.per_record_us(self.stepstream_cpu_seconds))),
                    ),
                    (
                        "in_process",
                        Value::float(round3(self.per_record_us(self.in_process_cpu_seconds))),
                    ),
                ]),
            ),
            (
                "stepstream_minus_passthrough_vs_in_process",
                self.pipeline_cost_ratio()
                    .map_or(Value::Null, |r| Value::float(round3(r))),
            ),
            (
                "stepstream_cpu_us_per_record_by_thread",
                Value::object_from(self.stepstream_cpu_by_thread.iter().map(|(name, s)| {
                    (name.as_str(), Value::float(round3(self.per_record_us(*s))))
                })),
            ),
            (
                "stepstream_sleeps_per_record_by_thread",
                Value::object_from(self.stepstream_sleeps_by_thread.iter().map(|(name, n)| {
                    (
                        name.as_str(),
                        Value::float(round3(*n as f64 / self.executions.max(1) as f64)),
                    )
                })),
            ),
            (
                "latency_us",
                crate::bench::percentiles_json(self.latency_us.map(us)),
            ),
        ])
    }

    pub fn to_text(&self) -> String {
        format!(
            "kafka        {} records on {} partition(s), {} shard(s)\nproduce      {:.2} s\npassthrough  {:.2} s, {:.0} records/s (consume + produce, no workflow)\nstepstream   {:.2} s, {:.0} executions/s ({:.0}% of passthrough); {} outputs, {} dead letters\nlatency (µs) arrival to result: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\ncpu (µs/rec) passthrough {:.2}  stepstream {:.2}  in process {:.2}: (stepstream - passthrough) = {} in process\n",
            self.executions,
            self.partitions,
            self.shards,
            self.produce_seconds,
            self.passthrough_seconds,
            self.passthrough_per_second(),
            self.stepstream_seconds,
            self.stepstream_per_second(),
            self.stepstream_per_second() / self.passthrough_per_second() * 100.0,
            self.outputs,
            self.dead_letters,
            self.latency_us[0],
            self.latency_us[1],
            self.latency_us[2],
            self.latency_us[3],
            self.latency_us[4],
            self.per_record_us(self.passthrough_cpu_seconds),
            self.per_record_us(self.stepstream_cpu_seconds),
            self.per_record_us(self.in_process_cpu_seconds),
            self.pipeline_cost_ratio()
                .map_or("(too short to tell)".to_string(), |r| format!("{r:.2}x")),
        ) + &format!(
            "cpu (µs/rec) stepstream by thread: {}\nsleeps/rec   stepstream by thread: {}\n",
            self.stepstream_cpu_by_thread
                .iter()
                .map(|(name, s)| format!("{name} {:.2}", self.per_record_us(*s)))
                .collect::<Vec<_>>()
                .join(", "),
            self.stepstream_sleeps_by_thread
                .iter()
                .map(|(name, n)| format!("{name} {:.2}", *n as f64 / self.executions.max(1) as f64))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// How long a phase may take before the bench gives up on it.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

pub fn run_kafka(opts: &KafkaOptions) -> Result<KafkaReport, String> {
    let (plan, event, registry) = crate::bench::prepare(
        &opts.definition,
        &opts.input_file,
        opts.mock_file.as_ref(),
        &opts.bindings,
    )?;
    let inputs = Inputs::new(&event, &[], opts.executions);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let mut report = rt.block_on(async move {
        let tag = format!(
            "{}-{}",
            std::process::id(),
            stepstream::stream::driver::now_ms()
        );
        let prefix = opts
            .topic_prefix
            .clone()
            .unwrap_or_else(|| format!("bench-{tag}"));
        let topic = |what: &str| format!("{prefix}-{what}");
        let (input, copy, output, dead) = (topic("in"), topic("copy"), topic("out"), topic("dlq"));
        if opts.topic_prefix.is_none() {
            create_topics(
                &opts.brokers,
                &[&input, &copy, &output, &dead],
                opts.partitions,
            )
            .await?;
        }

        let t = Instant::now();
        produce(&opts.brokers, &input, &inputs, opts.executions).await?;
        let produce_seconds = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let cpu = cpu_seconds();
        passthrough(
            &opts.brokers,
            &input,
            &copy,
            &tag,
            opts.executions,
            opts.headers,
        )
        .await?;
        let passthrough_seconds = t.elapsed().as_secs_f64();
        let passthrough_cpu_seconds = cpu_seconds() - cpu;

        let config = Config {
            api: None,
            kafka: Kafka {
                brokers: opts.brokers.clone(),
                group_id: format!("bench-{tag}"),
                options: [("auto.offset.reset".to_string(), "earliest".to_string())]
                    .into_iter()
                    .collect(),
                producer_options: Default::default(),
            },
            runtime: Runtime {
                shards: opts.shards.max(1),
                ..Runtime::default()
            },
            http: Http {
                listen: None,
                credentials: None,
            },
            pipelines: vec![Pipeline {
                name: "bench".into(),
                definition: opts.definition.clone(),
                input_topic: input.clone(),
                output_topic: output.clone(),
                dead_letter_topic: dead.clone(),
                mock_file: opts.mock_file.clone(),
                headers: opts.headers,
                ordered_keys: false,
                logging: None,
            }],
            // The pipeline's registry (prepared above) already holds the bindings, and
            // `kafka::run` reads only the pipeline's.
            resources: Vec::new(),
        };
        let prepared = vec![Prepared {
            pipeline: config.pipelines[0].clone(),
            plan,
            registry: Arc::new(registry),
            drawing: None,
            logging: None,
        }];
        let metrics = Metrics::new();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let m = Arc::clone(&metrics);
        let t = Instant::now();
        let cpu = cpu_seconds();
        let threads_before = thread_cpu_ticks();
        let pipeline = tokio::spawn(async move { kafka::run(&config, prepared, m, stopped).await });
        let delivered = |m: &Metrics| {
            m.outputs.load(Ordering::Relaxed) + m.dead_letters.load(Ordering::Relaxed)
        };
        while delivered(&metrics) < opts.executions {
            if t.elapsed() > PHASE_LIMIT || pipeline.is_finished() {
                let _ = stop.send(true);
                return Err(format!(
                    "stepstream delivered {} of {} results (see the log above)",
                    delivered(&metrics),
                    opts.executions
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stepstream_seconds = t.elapsed().as_secs_f64();
        let stepstream_cpu_seconds = cpu_seconds() - cpu;
        // Taken before the stop, while the pipeline's threads still exist.
        let threads_after = thread_cpu_ticks();
        let stepstream_cpu_by_thread = cpu_by_thread(&threads_before, &threads_after);
        let stepstream_sleeps_by_thread = switches_by_thread(&threads_before, &threads_after);
        let _ = stop.send(true);
        pipeline
            .await
            .map_err(|e| format!("the pipeline task failed: {e}"))?
            .map_err(|e| e.to_string())?;

        let shards: Vec<_> = metrics
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|p| p.shards.iter().cloned())
            .collect();
        let hist = super::merged(&shards)?;
        Ok(KafkaReport {
            executions: opts.executions,
            partitions: opts.partitions,
            shards: opts.shards.max(1),
            produce_seconds,
            passthrough_seconds,
            stepstream_seconds,
            outputs: metrics.outputs.load(Ordering::Relaxed),
            dead_letters: metrics.dead_letters.load(Ordering::Relaxed),
            latency_us: [0.5, 0.9, 0.99, 0.999, 1.0].map(|q| hist.value_at_quantile(q) / 1000),
            passthrough_cpu_seconds,
            stepstream_cpu_seconds,
            in_process_cpu_seconds: 0.0,
            stepstream_cpu_by_thread,
            stepstream_sleeps_by_thread,
        })
    })?;
    drop(rt);
    // The workflow's own cost on the same events, in the same run.
    let cpu = cpu_seconds();
    super::run(&super::Options {
        definition: opts.definition.clone(),
        input_file: opts.input_file.clone(),
        mock_file: opts.mock_file.clone(),
        bindings: opts.bindings.clone(),
        executions: opts.executions,
        concurrency: 1024,
        shards: 1,
        rotate: Vec::new(),
        rate: None,
        state_counts: true,
    })?;
    report.in_process_cpu_seconds = cpu_seconds() - cpu;
    Ok(report)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// CPU time (user + system) this process has used, seconds, from /proc/self/stat (in the
/// kernel's USER_HZ ticks, 100 a second; 0 where /proc is not there).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat").map_or(0.0, |s| stat_ticks(&s).1 as f64 / 100.0)
}

/// The command name and utime + stime (clock ticks) of a `/proc/.../stat` line.
fn stat_ticks(stat: &str) -> (&str, u64) {
    // Fields after the command name (which may hold spaces and parentheses, so split at
    // its last ')'): state is field 3, utime 14 and stime 15.
    let Some((head, rest)) = stat.rsplit_once(')') else {
        return ("", 0);
    };
    let name = head.split_once('(').map_or("", |(_, n)| n);
    let ticks = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    (name, ticks)
}

/// One thread of this process at one moment.
struct ThreadSample {
    id: String,
    name: String,
    /// utime + stime, clock ticks.
    ticks: u64,
    /// Voluntary context switches so far.
    sleeps: u64,
}

/// Every thread of this process now.
fn thread_cpu_ticks() -> Vec<ThreadSample> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let (name, ticks) = stat_ticks(&stat);
            let sleeps = status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            Some(ThreadSample {
                id: e.file_name().to_string_lossy().into_owned(),
                name: name.to_string(),
                ticks,
                sleeps,
            })
        })
        .collect()
}

/// What each thread name added between two samples (`what` of a sample), largest first;
/// threads that added nothing are left out.
fn by_thread(
    before: &[ThreadSample],
    after: &[ThreadSample],
    what: fn(&ThreadSample) -> u64,
) -> Vec<(String, u64)> {
    let mut by: std::collections::BTreeMap<&str, u64> = Default::default();
    for t in after {
        let earlier = before.iter().find(|b| b.id == t.id).map_or(0, what);
        *by.entry(&t.name).or_default() += what(t).saturating_sub(earlier);
    }
    let mut out: Vec<(String, u64)> = by
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| (name.to_string(), n))
        .collect();
    out.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    out
}

/// CPU seconds spent between two samples, by thread name, busiest first.
fn cpu_by_thread(before: &[ThreadSample], after: &[ThreadSample]) -> Vec<(String, f64)> {
    by_thread(before, after, |t| t.ticks)
        .into_iter()
        .map(|(name, t)| (name, t as f64 / 100.0))
        .collect()
}

/// Voluntary context switches between two samples, by thread name.
fn switches_by_thread(before: &[ThreadSample], after: &[ThreadSample]) -> Vec<(String, u64)> {
    by_thread(before, after, |t| t.sleeps)
}

async fn create_topics(brokers: &str, names: &[&str], partitions: i32) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .map_err(|e| format!("cannot create the bench topics on {brokers}: {e}"))?;
    for r in results {
        if let Err((name, e)) = r {
            return Err(format!("cannot create topic {name}: {e}"));
        }
    }
    Ok(())
}

/// Puts `n` events on `topic`, keyed by their number.
async fn produce(brokers: &str, topic: &str, inputs: &Inputs, n: u64) -> Result<(), String> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()
        .map_err(|e| format!("cannot create a Kafka producer: {e}"))?;
    let mut buf = Vec::with_capacity(2048);
    let mut acks = Vec::with_capacity(n as usize);
    for i in 0..n {
        inputs.fill(i, &mut buf);
        let key = i.to_string();
        acks.push(send(&producer, topic, Some(key.as_bytes()), &buf, None).await?);
    }
    for a in acks {
        match a.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(format!("producing the bench events failed: {e}")),
            Err(_) => return Err("producing the bench events was cancelled".into()),
        }
    }
    Ok(())
}

/// Enqueues one record, waiting while the producer's queue is full.
async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: Option<&OwnedHeaders>,
) -> Result<rdkafka::producer::DeliveryFuture, String> {
    loop {
        let mut record = FutureRecord::to(topic).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(h) = headers {
            record = record.headers(h.clone());
        }
        match producer.send_result(record) {
            Ok(d) => return Ok(d),
            Err((e, _))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((e, _)) => return Err(format!("cannot produce to {topic}: {e}")),
        }
    }
}

/// The baseline: copies `n` records from `from` to `to` (acks=all), no workflow.
async fn passthrough(
    brokers: &str,
    from: &str,
    to: &str,
    tag: &str,
    n: u64,
    with_headers: bool,
) -> Result<(), String> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-passthrough-{tag}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("cannot create a Kafka consumer: {e}"))?;
    consumer
        .subscribe(&[from])
        .map_err(|e| format!("cannot subscribe to {from}: {e}"))?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .create()
        .map_err(|e| format!("cannot create a Kafka producer: {e}"))?;
    let mut acks = Vec::with_capacity(n as usize);
    let started = Instant::now();
    while (acks.len() as u64) < n {
        let m = tokio::time::timeout(
            PHASE_LIMIT.saturating_sub(started.elapsed()),
            consumer.recv(),
        )
        .await
        .map_err(|_| format!("the passthrough read {} of {n} records", acks.len()))?
        .map_err(|e| format!("the passthrough consumer failed: {e}"))?;
        // The headers stepstream's outputs carry, so both sides ask the broker for the same.
        let source = format!("{}/{}/{}", m.topic(), m.partition(), m.offset());
        let name = format!("{}-{}-{}", m.topic(), m.partition(), m.offset());
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "stepstream-execution",
                value: Some(name.as_bytes()),
            })
            .insert(Header {
                key: "stepstream-source",
                value: Some(source.as_bytes()),
            })
            .insert(Header {
                key: "stepstream-status",
                value: Some(b"SUCCEEDED".as_slice()),
            });
        let payload = m.payload().unwrap_or_default();
        let headers = with_headers.then_some(&headers);
        acks.push(send(&producer, to, m.key(), payload, headers).await?);
    }
    for a in acks {
        match a.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(format!("the passthrough could not produce: {e}")),
            Err(_) => return Err("the passthrough was cancelled".into()),
        }
    }
    Ok(())
}
