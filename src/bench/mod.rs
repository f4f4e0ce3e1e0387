//! `stepstream bench`, part of the command line (not the library): N executions of a workflow in process, on K shard threads with up to C
//! executions in flight, timed from the input bytes (parse) to the output bytes (serialize).
//! Reports throughput, latency percentiles from hdrhistogram (merged across shards) and, for
//! workloads that wait, how many executions were waiting at once and what each cost in
//! resident memory.
//!
//! Inputs: the event file, with `eventId` made unique per execution (digits patched into a
//! pre-serialized copy, so generating an input is a copy, not a serialization) and optional
//! fields rotated over a list of values (`--rotate type=configs/events/w5_types.json`).

pub mod api;
pub mod kafka;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;

use std::sync::atomic::Ordering;
use stepstream::asl::{self, MachineType};

use stepstream::json::{self, Str, Value};
use stepstream::plan::{self, Plan};
use stepstream::stream::shard::{
    RecordSource, ResultSink, Shard, ShardConfig, ShardStats, spawn_thread,
};
use stepstream::stream::{Disposition, Processed, Record, Source};
use stepstream::tasks::mock::MockFile;
use stepstream::tasks::{Bindings, Registry};

/// What to run.
#[derive(Clone)]
pub struct Options {
    pub definition: PathBuf,
    pub input_file: PathBuf,
    pub mock_file: Option<PathBuf>,
    /// Resource bindings (`[[resources]]` of a configuration, built).
    pub bindings: Bindings,
    pub executions: u64,
    pub concurrency: usize,
    pub shards: usize,
    /// Fields set from a list of values, cycling with the execution number.
    pub rotate: Vec<(String, Vec<Value>)>,
    /// Executions started per second over all shards (open loop, paced by the schedule, not
    /// by completions; how far starts fell behind it is reported); `None` starts them as fast
    /// as the concurrency allows.
    pub rate: Option<f64>,
    /// Count what each state does, as production shards do (off only to measure the cost).
    pub state_counts: bool,
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub executions: u64,
    pub seconds: f64,
    pub latency_ns: [u64; 5],
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub peak_in_flight: u64,
    /// With `--rate`: how far behind its schedule the latest start was (the rate loop wakes on
    /// tokio's millisecond timer, so up to about 1 ms is the loop itself).
    pub max_start_lag_ns: Option<u64>,
    pub rss_base_bytes: u64,
    pub rss_peak_bytes: u64,
    pub shards: usize,
    pub concurrency: usize,
}

impl Report {
    pub fn executions_per_second(&self) -> f64 {
        self.executions as f64 / self.seconds
    }

    /// Resident memory added per execution in flight, at the moment most were in flight.
    pub fn bytes_per_in_flight(&self) -> Option<u64> {
        (self.peak_in_flight > 1)
            .then(|| self.rss_peak_bytes.saturating_sub(self.rss_base_bytes) / self.peak_in_flight)
    }

    pub fn to_json(&self) -> Value {
        let us = |ns: u64| Value::float(ns as f64 / 1000.0);
        let mut pairs = vec![
            ("executions", Value::int(self.executions as i64)),
            ("seconds", Value::float(self.seconds)),
            (
                "executions_per_second",
                Value::float(self.executions_per_second().round()),
            ),
            ("latency_us", percentiles_json(self.latency_ns.map(us))),
            (
                "outcomes",
                Value::object_from([
                    ("SUCCEEDED", Value::int(self.succeeded as i64)),
                    ("FAILED", Value::int(self.failed as i64)),
                    ("TIMED_OUT", Value::int(self.timed_out as i64)),
                ]),
            ),
            ("shards", Value::int(self.shards as i64)),
            ("concurrency", Value::int(self.concurrency as i64)),
            ("peak_in_flight", Value::int(self.peak_in_flight as i64)),
            ("rss_peak_bytes", Value::int(self.rss_peak_bytes as i64)),
        ];
        if let Some(lag) = self.max_start_lag_ns {
            pairs.push(("max_start_lag_us", us(lag)));
        }
        if let Some(b) = self.bytes_per_in_flight() {
            pairs.push(("bytes_per_in_flight_execution", Value::int(b as i64)));
        }
        Value::object_from(pairs)
    }

    pub fn to_text(&self) -> String {
        let us = |ns: u64| format!("{:.1}", ns as f64 / 1000.0);
        let mut s = format!(
            "executions   {} in {:.3} s on {} shard(s), up to {} in flight\nthroughput   {:.0} executions/s\nlatency (µs) p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\noutcomes     SUCCEEDED {}  FAILED {}  TIMED_OUT {}\n",
            self.executions,
            self.seconds,
            self.shards,
            self.concurrency,
            self.executions_per_second(),
            us(self.latency_ns[0]),
            us(self.latency_ns[1]),
            us(self.latency_ns[2]),
            us(self.latency_ns[3]),
            us(self.latency_ns[4]),
            self.succeeded,
            self.failed,
            self.timed_out
        );
        if let Some(b) = self.bytes_per_in_flight() {
            s.push_str(&format!(
                "in flight    peak {} executions, {} bytes of resident memory each\n",
                self.peak_in_flight, b
            ));
        }
        if let Some(lag) = self.max_start_lag_ns {
            s.push_str(&format!(
                "schedule     latest start {} µs behind its due time (latency counts from the actual start)\n",
                us(lag)
            ));
        }
        s
    }
}

/// `{p50, p90, p99, p999, max}` from the five values a report keeps, in that order.
pub fn percentiles_json(v: [Value; 5]) -> Value {
    Value::object_from(["p50", "p90", "p99", "p999", "max"].into_iter().zip(v))
}

/// A pre-serialized input and where its `eventId` digits are (offset, width).
type Template = (Vec<u8>, Option<(usize, usize)>);

/// Pre-serialized inputs, one per rotation step.
pub struct Inputs {
    templates: Vec<Template>,
}

impl Inputs {
    pub fn new(event: &Value, rotate: &[(String, Vec<Value>)], executions: u64) -> Inputs {
        let width = executions.saturating_sub(1).to_string().len().max(6);
        let count = rotate
            .iter()
            .map(|(_, v)| v.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let marker = format!("evt-{}", "0".repeat(width));
        let templates = (0..count)
            .map(|k| {
                let mut v = event.clone();
                if let Value::Object(o) = &mut v {
                    let o = Arc::make_mut(o);
                    for (field, values) in rotate {
                        if !values.is_empty() {
                            o.insert(Str::new(field), values[k % values.len()].clone());
                        }
                    }
                    if o.contains_key("eventId") {
                        o.insert(Str::new("eventId"), Value::string(&marker));
                    }
                }
                let bytes = json::to_string(&v).into_bytes();
                let needle = format!("\"eventId\":\"{marker}\"");
                let digits =
                    find(&bytes, needle.as_bytes()).map(|p| (p + needle.len() - 1 - width, width));
                (bytes, digits)
            })
            .collect();
        Inputs { templates }
    }

    /// The input of execution `i`, written into `buf`.
    pub fn fill(&self, i: u64, buf: &mut Vec<u8>) {
        let (bytes, digits) = &self.templates[(i % self.templates.len() as u64) as usize];
        buf.clear();
        buf.extend_from_slice(bytes);
        if let Some((at, width)) = digits {
            let mut n = i;
            for k in (0..*width).rev() {
                buf[at + k] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Resident set size of this process, from /proc (0 where unavailable).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The bench's source: the inputs of executions `next..end`, each as soon as the shard has
/// room, or at its due time when paced (`rate` per second from `started`). It also watches
/// the shard's in-flight gauge for the peak and the resident memory there.
struct Generator {
    inputs: Arc<Inputs>,
    next: u64,
    start: u64,
    end: u64,
    topic: Str,
    partition: i32,
    rate: Option<f64>,
    started: tokio::time::Instant,
    max_start_lag_ns: u64,
    stats: Arc<ShardStats>,
    max_in_flight: u64,
    peak_in_flight: u64,
    rss_peak: u64,
    /// Buffers of delivered results, filled again with later records (as the old bench
    /// loop reused one input buffer).
    spare: Vec<Vec<u8>>,
}

impl Generator {
    fn due(&self, i: u64) -> Option<tokio::time::Instant> {
        self.rate
            .map(|r| self.started + std::time::Duration::from_secs_f64((i - self.start) as f64 / r))
    }
}

impl RecordSource for Generator {
    async fn next(&mut self) -> Option<Record> {
        loop {
            if self.next >= self.end {
                return None;
            }
            if let Some(r) = self.ready() {
                return Some(r);
            }
            if let Some(at) = self.due(self.next) {
                tokio::time::sleep_until(at).await;
            }
        }
    }

    fn recycle(&mut self, buffer: Vec<u8>) {
        // As many as can be in flight at once are ever needed.
        if (self.spare.len() as u64) <= self.max_in_flight {
            self.spare.push(buffer);
        }
    }

    fn ready(&mut self) -> Option<Record> {
        if self.next >= self.end {
            return None;
        }
        if let Some(at) = self.due(self.next) {
            let now = tokio::time::Instant::now();
            if at > now {
                return None;
            }
            let lag = (now - at).as_nanos() as u64;
            self.max_start_lag_ns = self.max_start_lag_ns.max(lag);
        }
        let running = self.stats.in_flight.load(Ordering::Relaxed);
        if running > self.peak_in_flight {
            self.peak_in_flight = running;
            if running.is_multiple_of(1024) || running == self.max_in_flight {
                self.rss_peak = self.rss_peak.max(rss_bytes());
            }
        }
        let mut payload = self.spare.pop().unwrap_or_default();
        self.inputs.fill(self.next, &mut payload);
        let record = Record {
            source: Source {
                topic: self.topic.clone(),
                partition: self.partition,
                offset: self.next as i64,
            },
            key: None,
            payload,
            received: Instant::now(),
            window: None,
            job: None,
        };
        self.next += 1;
        Some(record)
    }
}

/// The bench's sink: counts outcomes (the output bytes were written by the shard).
#[derive(Default)]
struct Counter {
    succeeded: u64,
    failed: u64,
    timed_out: u64,
}

impl ResultSink for Counter {
    fn deliver(&mut self, result: Processed) -> Option<Vec<u8>> {
        match result.status {
            "SUCCEEDED" => self.succeeded += 1,
            "TIMED_OUT" => self.timed_out += 1,
            _ => self.failed += 1,
        }
        match result.disposition {
            Disposition::Output(b) | Disposition::DeadLetter(b) => Some(b),
        }
    }
}

/// The pipeline bench's sink: the shards have counted the outcome and written the output
/// bytes; as in the Kafka pipeline, the result leaves from the shard's own thread.
#[derive(Clone)]
struct Discard;

impl ResultSink for Discard {
    fn deliver(&mut self, result: Processed) -> Option<Vec<u8>> {
        drop(result);
        None
    }
}

/// Runs `range` of the executions on one shard thread: the production shard loop, fed by a
/// `Generator`, its results counted by a `Counter`.
fn spawn_shard(
    k: usize,
    shard: Shard<Counter>,
    inputs: Arc<Inputs>,
    range: std::ops::Range<u64>,
    rate: Option<f64>,
) -> std::io::Result<std::thread::JoinHandle<(Counter, Generator)>> {
    spawn_thread(k, move || async move {
        let mut shard = shard;
        let mut source = Generator {
            inputs,
            next: range.start,
            start: range.start,
            end: range.end,
            topic: Str::new("bench"),
            partition: k as i32,
            rate,
            started: tokio::time::Instant::now(),
            max_start_lag_ns: 0,
            stats: Arc::clone(shard.stats()),
            max_in_flight: shard.max_in_flight() as u64,
            peak_in_flight: 0,
            rss_peak: 0,
            spare: Vec::new(),
        };
        shard.run(&mut source).await;
        (shard.into_sink(), source)
    })
}

/// What every bench mode starts from: the compiled definition (named after its file), the
/// event, and the resources (bindings, then the mock file).
pub fn prepare(
    definition: &PathBuf,
    input_file: &PathBuf,
    mock_file: Option<&PathBuf>,
    bindings: &Bindings,
) -> Result<(Arc<Plan>, Value, Registry), String> {
    let read =
        |p: &PathBuf| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let validated = asl::load(&read(definition)?, MachineType::Express).map_err(|d| {
        let lines: Vec<String> = d.iter().map(|d| format!("  {d}")).collect();
        format!(
            "{} is not a valid definition:\n{}",
            definition.display(),
            lines.join("\n")
        )
    })?;
    let name = definition
        .file_name()
        .map(|f| {
            f.to_string_lossy()
                .split('.')
                .next()
                .unwrap_or("bench")
                .to_string()
        })
        .unwrap_or_else(|| "bench".into());
    let plan = Arc::new(plan::compile(&validated, &name));
    let event = json::parse(&read(input_file)?)
        .map_err(|e| format!("{}: not valid JSON: {e}", input_file.display()))?;
    let mut registry = Registry::new();
    registry.bind_all(bindings);
    if let Some(m) = mock_file {
        registry.mock(Arc::new(
            MockFile::parse(&read(m)?).map_err(|e| format!("{}: {e}", m.display()))?,
        ));
    }
    Ok((plan, event, registry))
}

/// What both in-process modes start from: the plan, the inputs, the bindings, the shard
/// count, executions in flight per shard, and a report with nothing counted yet.
fn setup(opts: &Options) -> Result<(Arc<Plan>, Inputs, Registry, Report), String> {
    let (plan, event, registry) = prepare(
        &opts.definition,
        &opts.input_file,
        opts.mock_file.as_ref(),
        &opts.bindings,
    )?;
    let inputs = Inputs::new(&event, &opts.rotate, opts.executions);
    let shards = opts.shards.max(1);
    let per_shard = opts.concurrency.div_ceil(shards).max(1);
    let report = Report {
        executions: opts.executions,
        seconds: 0.0,
        latency_ns: [0; 5],
        succeeded: 0,
        failed: 0,
        timed_out: 0,
        peak_in_flight: 0,
        max_start_lag_ns: None,
        rss_base_bytes: rss_bytes(),
        rss_peak_bytes: 0,
        shards,
        concurrency: per_shard * shards,
    };
    Ok((plan, inputs, registry, report))
}

/// p50, p90, p99, p99.9 and max of `hist`, in ns (`unit_ns` ns per recorded unit).
fn percentiles(hist: &Histogram<u64>, unit_ns: u64) -> [u64; 5] {
    [0.5, 0.9, 0.99, 0.999, 1.0].map(|q| hist.value_at_quantile(q) * unit_ns)
}

/// Runs the benchmark through the streaming pipeline's shards and channels (no broker, no
/// line I/O): one feeder thread hands the N events to a `ShardPool` of `--shards` shards
/// (`--concurrency` in flight over all of them, bounded queues), as a Kafka partition reader
/// does; each shard hands its results to its sink on its own thread, as the Kafka pipeline's
/// shards hand them to the producer. Outcomes come from the shards' counters; latency is
/// the shards' own (receipt to serialized result).
pub fn run_pipeline(opts: &Options) -> Result<Report, String> {
    use stepstream::stream::shard::ShardPool;
    let (plan, inputs, registry, mut report) = setup(opts)?;
    let per_shard = report.concurrency / report.shards;
    let config = ShardConfig {
        shards: report.shards,
        max_in_flight: per_shard,
        queue: per_shard,
        state_counts: opts.state_counts,
        ..ShardConfig::default()
    };
    let pool = ShardPool::start(plan, Arc::new(registry), &config, Discard)
        .map_err(|e| format!("cannot start the shards: {e}"))?;
    let n = opts.executions;
    let topic = Str::new("bench");
    let t0 = Instant::now();
    let stats = pool.stats().to_vec();
    let feeder = std::thread::Builder::new()
        .name("feeder".into())
        .spawn(move || {
            for i in 0..n {
                let mut payload = Vec::new();
                inputs.fill(i, &mut payload);
                let record = Record {
                    source: Source {
                        topic: topic.clone(),
                        partition: 0,
                        offset: i as i64,
                    },
                    key: None,
                    payload,
                    received: Instant::now(),
                    window: None,
                    job: None,
                };
                if pool.submit(record).is_err() {
                    break;
                }
            }
            pool.close();
        })
        .map_err(|e| format!("cannot start the feeder thread: {e}"))?;
    feeder
        .join()
        .map_err(|_| "the feeder thread panicked".to_string())?;
    report.seconds = t0.elapsed().as_secs_f64();
    let count = |c: fn(&ShardStats) -> &std::sync::atomic::AtomicU64| {
        stats
            .iter()
            .map(|s| c(s).load(std::sync::atomic::Ordering::Relaxed))
            .sum::<u64>()
    };
    report.succeeded = count(|s| &s.succeeded);
    report.timed_out = count(|s| &s.timed_out);
    report.failed = count(|s| &s.failed) + count(|s| &s.rejected);
    report.rss_peak_bytes = rss_bytes();
    report.latency_ns = percentiles(&merged(&stats)?, 1);
    Ok(report)
}

/// Runs the benchmark: `--shards` shard threads, each running the production shard loop on
/// its share of the executions with `--concurrency / shards` in flight.
pub fn run(opts: &Options) -> Result<Report, String> {
    let (plan, inputs, registry, mut report) = setup(opts)?;
    let (registry, inputs) = (Arc::new(registry), Arc::new(inputs));
    let shards = report.shards;
    let config = ShardConfig {
        shards,
        max_in_flight: report.concurrency / shards,
        state_counts: opts.state_counts,
        ..ShardConfig::default()
    };
    report.max_start_lag_ns = opts.rate.map(|_| 0);
    let rate = opts.rate.map(|r| r / shards as f64);
    let stats: Vec<Arc<ShardStats>> = (0..shards)
        .map(|_| Arc::new(ShardStats::new(&config)))
        .collect();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..shards)
        .map(|k| {
            let n = opts.executions;
            let range = (n * k as u64 / shards as u64)..(n * (k as u64 + 1) / shards as u64);
            let shard = Shard::new(
                Arc::clone(&plan),
                Arc::clone(&registry),
                &config,
                Arc::clone(&stats[k]),
                Counter::default(),
            );
            spawn_shard(k, shard, Arc::clone(&inputs), range, rate)
                .map_err(|e| format!("cannot start a shard thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    for h in handles {
        let (counts, source) = h
            .join()
            .map_err(|_| "a shard thread panicked".to_string())?;
        report.succeeded += counts.succeeded;
        report.failed += counts.failed;
        report.timed_out += counts.timed_out;
        report.peak_in_flight += source.peak_in_flight;
        report.max_start_lag_ns = report
            .max_start_lag_ns
            .map(|m| m.max(source.max_start_lag_ns));
        report.rss_peak_bytes = report.rss_peak_bytes.max(source.rss_peak);
    }
    report.seconds = t0.elapsed().as_secs_f64();
    report.latency_ns = percentiles(&merged(&stats)?, 1);
    Ok(report)
}

/// The cost of the per-state counts: the same executions with counting on and off, in
/// alternating slices of one run (on-off, then off-on), so that drift of the machine's speed
/// weighs on both alike.
pub struct CountsCost {
    pub slices: u32,
    /// Executions per second of each slice, counting on and off.
    pub on: Vec<f64>,
    pub off: Vec<f64>,
    pub executions: u64,
    pub seconds_on: f64,
    pub seconds_off: f64,
}

impl CountsCost {
    pub fn rate_on(&self) -> f64 {
        self.executions as f64 / self.seconds_on
    }

    pub fn rate_off(&self) -> f64 {
        self.executions as f64 / self.seconds_off
    }

    /// How much slower counting makes a run (0.01 = 1%).
    pub fn cost(&self) -> f64 {
        self.seconds_on / self.seconds_off - 1.0
    }

    pub fn to_json(&self) -> Value {
        let rates = |v: &[f64]| Value::array(v.iter().map(|r| Value::float(r.round())).collect());
        Value::object_from([
            ("slices", Value::int(self.slices as i64)),
            ("executions_per_mode", Value::int(self.executions as i64)),
            ("counts_on_per_second", Value::float(self.rate_on().round())),
            (
                "counts_off_per_second",
                Value::float(self.rate_off().round()),
            ),
            (
                "cost",
                Value::float((self.cost() * 10_000.0).round() / 10_000.0),
            ),
            ("slices_on_per_second", rates(&self.on)),
            ("slices_off_per_second", rates(&self.off)),
        ])
    }

    pub fn to_text(&self) -> String {
        let list = |v: &[f64]| {
            v.iter()
                .map(|r| format!("{:.0}", r))
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "per-state counts: {} executions each way in {} alternating slices\n  counts on:  {:.0}/s  (slices: {})\n  counts off: {:.0}/s  (slices: {})\n  cost: {:+.2}% time with counts on\n",
            self.executions,
            self.slices,
            self.rate_on(),
            list(&self.on),
            self.rate_off(),
            list(&self.off),
            self.cost() * 100.0
        )
    }
}

/// Runs `opts` with the per-state counts on and off in `slices` alternating slices of
/// `opts.executions / slices` executions each way.
pub fn compare_state_counts(opts: &Options, slices: u32) -> Result<CountsCost, String> {
    let slices = slices.max(1);
    let per = (opts.executions / slices as u64).max(1);
    let mut cost = CountsCost {
        slices,
        on: Vec::new(),
        off: Vec::new(),
        executions: 0,
        seconds_on: 0.0,
        seconds_off: 0.0,
    };
    for i in 0..slices {
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for on in order {
            let slice = Options {
                executions: per,
                rate: None,
                state_counts: on,
                ..opts.clone()
            };
            let r = run(&slice)?;
            if r.succeeded != per {
                return Err(format!(
                    "only {} of {per} executions succeeded (counts {}): the comparison needs a workload that succeeds",
                    r.succeeded,
                    if on { "on" } else { "off" }
                ));
            }
            if on {
                cost.seconds_on += r.seconds;
                cost.on.push(r.executions_per_second());
            } else {
                cost.seconds_off += r.seconds;
                cost.off.push(r.executions_per_second());
            }
        }
        cost.executions += per;
    }
    Ok(cost)
}

/// The shards' latency histograms (ns), merged.
pub fn merged(stats: &[Arc<ShardStats>]) -> Result<Histogram<u64>, String> {
    let mut hist: Histogram<u64> =
        Histogram::new_with_bounds(1, 3_600_000_000_000, 3).map_err(|e| e.to_string())?;
    for s in stats {
        let h = s.latency_ns.lock().unwrap_or_else(|e| e.into_inner());
        hist.add(&*h).map_err(|e| e.to_string())?;
    }
    Ok(hist)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_get_unique_event_ids_and_rotated_fields() {
        let event = json::parse(br#"{"eventId":"evt-000000","type":"a","x":1}"#).unwrap();
        let rotate = vec![(
            "type".to_string(),
            vec![Value::string("t0"), Value::string("t1")],
        )];
        let inputs = Inputs::new(&event, &rotate, 2_000_000);
        let mut buf = Vec::new();
        inputs.fill(1_234_567, &mut buf);
        let v = json::parse(&buf).unwrap();
        assert_eq!(v.get("eventId"), Some(&Value::string("evt-1234567")));
        assert_eq!(v.get("type"), Some(&Value::string("t1")));
        inputs.fill(42, &mut buf);
        let v = json::parse(&buf).unwrap();
        assert_eq!(v.get("eventId"), Some(&Value::string("evt-0000042")));
        assert_eq!(v.get("type"), Some(&Value::string("t0")));
    }
}
