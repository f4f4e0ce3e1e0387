//! Counters and histograms of a running process, kept per shard (written by that shard only)
//! and merged when `/metrics` is read, rendered as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::exec::StateCounts;
use crate::exec::counts::DURATION_BOUNDS_MS;
use crate::json::Str;
use crate::plan::Plan;
use crate::stream::shard::{DeadLetterNote, RECENT_DEAD_LETTERS, ShardStats};

/// The shards of one pipeline.
pub struct PipelineStats {
    pub name: String,
    pub shards: Vec<Arc<ShardStats>>,
    /// Its plan, for the names of the states the shards count.
    pub plan: Option<Arc<Plan>>,
    /// The workflow drawn as SVG (the `graph` module's fragment), for the workflow page.
    pub drawing: Option<String>,
}

/// One state's counts, merged over a pipeline's shards.
#[derive(Clone, Debug, PartialEq)]
pub struct StateSummary {
    pub name: Str,
    pub entered: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub retried: u64,
    pub caught: u64,
    /// Failures by error name, most first.
    pub errors: Vec<(String, u64)>,
    /// Time in state by `DURATION_BOUNDS_MS` bucket (the last one unbounded).
    pub duration: Vec<u64>,
    pub duration_sum_ms: u64,
}

impl StateSummary {
    /// An upper bound of the `q` quantile of time in state, in ms (the bound of the bucket
    /// it falls in; `None` when nothing was timed or it lies beyond the last bound).
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let total: u64 = self.duration.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.duration.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return DURATION_BOUNDS_MS.get(i).copied();
            }
        }
        None
    }
}

impl PipelineStats {
    pub fn new(name: &str, shards: Vec<Arc<ShardStats>>) -> PipelineStats {
        PipelineStats {
            name: name.to_string(),
            shards,
            plan: None,
            drawing: None,
        }
    }

    /// Every state's counts, in plan order, summed over the shards (empty without a plan;
    /// zeros before the shards start).
    pub fn states(&self) -> Vec<StateSummary> {
        let Some(plan) = &self.plan else {
            return Vec::new();
        };
        let counts: Vec<&StateCounts> = self
            .shards
            .iter()
            .filter_map(|s| s.states.get().map(|c| &**c))
            .collect();
        summarize(plan, &counts)
    }

    /// The most recent dead letters over all shards, oldest first.
    pub fn recent_dead_letters(&self) -> Vec<DeadLetterNote> {
        let mut all: Vec<DeadLetterNote> = Vec::new();
        for s in &self.shards {
            let recent = s
                .recent_dead_letters
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            all.extend(recent.iter().cloned());
        }
        all.sort_by_key(|d| d.at_ms);
        let keep = all.len().saturating_sub(RECENT_DEAD_LETTERS);
        all.drain(..keep);
        all
    }

    /// Executions by final status, summed over the shards.
    pub fn executions(&self) -> [(&'static str, u64); 4] {
        let sum = |f: &dyn Fn(&ShardStats) -> &AtomicU64| -> u64 {
            self.shards
                .iter()
                .map(|s| f(s).load(Ordering::Relaxed))
                .sum()
        };
        [
            ("SUCCEEDED", sum(&|s| &s.succeeded)),
            ("FAILED", sum(&|s| &s.failed)),
            ("TIMED_OUT", sum(&|s| &s.timed_out)),
            ("REJECTED", sum(&|s| &s.rejected)),
        ]
    }
}

/// Every state of `plan`, its counts summed over `counts` (one table per shard).
pub fn summarize(plan: &Plan, counts: &[&StateCounts]) -> Vec<StateSummary> {
    plan.states
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let mut sum = StateSummary {
                name: st.name.clone(),
                entered: 0,
                succeeded: 0,
                failed: 0,
                retried: 0,
                caught: 0,
                errors: Vec::new(),
                duration: vec![0; DURATION_BOUNDS_MS.len() + 1],
                duration_sum_ms: 0,
            };
            for c in counts.iter().filter_map(|c| c.state(i)) {
                sum.entered += c.entered.get();
                sum.succeeded += c.succeeded.get();
                sum.failed += c.failed();
                sum.retried += c.retried.get();
                sum.caught += c.caught.get();
                for (e, n) in c.failures() {
                    match sum.errors.iter_mut().find(|(name, _)| name == e) {
                        Some((_, m)) => *m += n,
                        None => sum.errors.push((e.to_string(), n)),
                    }
                }
                for (d, n) in sum.duration.iter_mut().zip(&c.duration) {
                    *d += n.get();
                }
                sum.duration_sum_ms += c.duration_sum_ms.get();
            }
            sum.errors
                .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            sum
        })
        .collect()
}

/// A state machine of the API, as the workflow page shows it.
#[derive(Clone, Debug)]
pub struct MachineView {
    pub name: String,
    pub arn: String,
    /// `STANDARD` or `EXPRESS`.
    pub kind: &'static str,
    /// Its current definition drawn (the `graph` module's fragment).
    pub drawing: Option<String>,
    /// Its current definition's states, with what its executions did there.
    pub states: Vec<StateSummary>,
}

/// Where the page finds the API's state machines (the running `Service`).
pub type MachineSource = Arc<dyn Fn() -> Vec<MachineView> + Send + Sync>;

/// A Prometheus label value: backslash, double quote and newline escaped.
pub fn label_value(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '"', '\n']) {
        return s.into();
    }
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

/// Everything `/metrics` and `/ready` report.
#[derive(Default)]
pub struct Metrics {
    pub pipelines: Mutex<Vec<PipelineStats>>,
    /// Output records acknowledged by the broker.
    pub outputs: AtomicU64,
    /// Dead letters acknowledged by the broker.
    pub dead_letters: AtomicU64,
    /// Produce attempts the broker refused (retried).
    pub produce_errors: AtomicU64,
    /// Records consumed and not yet acknowledged downstream.
    pub pending: AtomicU64,
    /// The most records ever pending at once.
    pub pending_peak: AtomicU64,
    /// Consumer lag per (topic, partition), from librdkafka's statistics; reset on rebalance.
    pub lag: Mutex<BTreeMap<(String, i32), i64>>,
    /// Partitions currently assigned to this process.
    pub assigned: AtomicU64,
    pub connected: AtomicBool,
    /// Readers are waiting for pending records to drain (`runtime.max_pending` reached).
    pub paused: AtomicBool,
    /// The API's state machines, when the process serves the API.
    pub machines: std::sync::OnceLock<MachineSource>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Ready means connected to the brokers with at least one partition assigned.
    pub fn ready(&self) -> bool {
        self.connected.load(Ordering::Relaxed) && self.assigned.load(Ordering::Relaxed) > 0
    }

    /// The per-state series: entries, exits with an output, failures by error, retries,
    /// catches, and the time-in-state histogram.
    fn render_states(&self, pipelines: &[PipelineStats], out: &mut String) {
        let all: Vec<(String, Vec<StateSummary>)> = pipelines
            .iter()
            .map(|p| (label_value(&p.name).into_owned(), p.states()))
            .collect();
        type Counted = fn(&StateSummary) -> u64;
        let counters: [(&str, &str, Counted); 4] = [
            (
                "stepstream_state_entered_total",
                "Times each state was entered.",
                |s| s.entered,
            ),
            (
                "stepstream_state_succeeded_total",
                "Times each state was left with an output (not through a Catch).",
                |s| s.succeeded,
            ),
            (
                "stepstream_state_retried_total",
                "Errors of each state that a Retry rule retried.",
                |s| s.retried,
            ),
            (
                "stepstream_state_caught_total",
                "Errors of each state that a Catch rule handled.",
                |s| s.caught,
            ),
        ];
        for (name, help, f) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (p, states) in &all {
                for s in states {
                    let state = label_value(&s.name);
                    let _ = writeln!(out, "{name}{{pipeline=\"{p}\",state=\"{state}\"}} {}", f(s));
                }
            }
        }
        let name = "stepstream_state_failed_total";
        let _ = writeln!(
            out,
            "# HELP {name} Errors that left each state (not retried, not caught), by error name (at most {} names per state, then \"{}\").\n# TYPE {name} counter",
            crate::exec::counts::ERROR_NAMES,
            crate::exec::counts::OTHER_ERRORS
        );
        for (p, states) in &all {
            for s in states {
                let state = label_value(&s.name);
                for (e, n) in &s.errors {
                    let e = label_value(e);
                    let _ = writeln!(
                        out,
                        "{name}{{pipeline=\"{p}\",state=\"{state}\",error=\"{e}\"}} {n}"
                    );
                }
            }
        }
        let name = "stepstream_state_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time executions spent in each state, from entering to leaving it (retries included), at the millisecond resolution of the execution clock.\n# TYPE {name} histogram"
        );
        for (p, states) in &all {
            for s in states {
                let state = label_value(&s.name);
                let mut cumulative = 0;
                for (i, n) in s.duration.iter().enumerate() {
                    cumulative += n;
                    let le = match DURATION_BOUNDS_MS.get(i) {
                        Some(ms) => format!("{}", *ms as f64 / 1000.0),
                        None => "+Inf".to_string(),
                    };
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{pipeline=\"{p}\",state=\"{state}\",le=\"{le}\"}} {cumulative}"
                    );
                }
                let labels = format!("{{pipeline=\"{p}\",state=\"{state}\"}}");
                let sum = s.duration_sum_ms as f64 / 1000.0;
                let _ = writeln!(
                    out,
                    "{name}_sum{labels} {sum}\n{name}_count{labels} {cumulative}"
                );
            }
        }
    }

    /// The API's state machines as the page shows them (none when the API is not served).
    pub fn machines(&self) -> Vec<MachineView> {
        self.machines.get().map(|m| m()).unwrap_or_default()
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut series = |name: &str, help: &str, kind: &str, rows: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let pipelines = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        let sum = |f: &dyn Fn(&ShardStats) -> u64, p: &PipelineStats| -> f64 {
            p.shards.iter().map(|s| f(s)).sum::<u64>() as f64
        };
        let label = |p: &PipelineStats| format!("{{pipeline=\"{}\"}}", label_value(&p.name));
        series(
            "stepstream_records_total",
            "Records received.",
            "counter",
            pipelines
                .iter()
                .map(|p| (label(p), sum(&|s| s.records.load(Ordering::Relaxed), p)))
                .collect(),
        );
        let mut by_status = Vec::new();
        for p in pipelines.iter() {
            for (status, n) in p.executions() {
                by_status.push((
                    format!(
                        "{{pipeline=\"{}\",status=\"{status}\"}}",
                        label_value(&p.name)
                    ),
                    n as f64,
                ));
            }
        }
        series(
            "stepstream_executions_total",
            "Executions by final status (REJECTED: the record never ran: not JSON or too big).",
            "counter",
            by_status,
        );
        series(
            "stepstream_state_transitions_total",
            "States entered by all executions.",
            "counter",
            pipelines
                .iter()
                .map(|p| (label(p), sum(&|s| s.transitions.load(Ordering::Relaxed), p)))
                .collect(),
        );
        series(
            "stepstream_executions_in_flight",
            "Executions started and not finished.",
            "gauge",
            pipelines
                .iter()
                .map(|p| (label(p), sum(&|s| s.in_flight.load(Ordering::Relaxed), p)))
                .collect(),
        );
        series(
            "stepstream_map_iterations_running",
            "Map iterations running on tokens of the shards' shared budgets (runtime.max_map_iterations per shard; the first iteration of each Map state needs none).",
            "gauge",
            pipelines
                .iter()
                .map(|p| {
                    let used = |s: &ShardStats| {
                        s.map_budget
                            .as_ref()
                            .map_or(0, |b| (b.size() - b.available()) as u64)
                    };
                    (label(p), sum(&used, p))
                })
                .collect(),
        );
        // Latency: the shards' histograms merged now.
        let mut latency_rows = Vec::new();
        for p in pipelines.iter() {
            let mut merged: Option<hdrhistogram::Histogram<u64>> = None;
            for s in &p.shards {
                let h = s.latency_ns.lock().unwrap_or_else(|e| e.into_inner());
                match &mut merged {
                    None => merged = Some(h.clone()),
                    Some(m) => {
                        let _ = m.add(&*h);
                    }
                }
            }
            if let Some(m) = merged {
                for q in [0.5, 0.9, 0.99, 0.999] {
                    latency_rows.push((
                        format!("{{pipeline=\"{}\",quantile=\"{q}\"}}", label_value(&p.name)),
                        m.value_at_quantile(q) as f64 / 1e9,
                    ));
                }
                latency_rows.push((
                    format!("_count{{pipeline=\"{}\"}}", label_value(&p.name)),
                    m.len() as f64,
                ));
            }
        }
        let mut rows_q = Vec::new();
        let mut rows_c = Vec::new();
        for (l, v) in latency_rows {
            if let Some(rest) = l.strip_prefix("_count") {
                rows_c.push((rest.to_string(), v));
            } else {
                rows_q.push((l, v));
            }
        }
        series(
            "stepstream_execution_latency_seconds",
            "Time from receiving a record to its result being ready.",
            "summary",
            rows_q,
        );
        for (l, v) in rows_c {
            let _ = writeln!(out, "stepstream_execution_latency_seconds_count{l} {v}");
        }
        self.render_states(&pipelines, &mut out);
        drop(pipelines);
        let mut series = |name: &str, help: &str, kind: &str, rows: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        series(
            "stepstream_outputs_total",
            "Output records acknowledged by the broker.",
            "counter",
            vec![(String::new(), self.outputs.load(Ordering::Relaxed) as f64)],
        );
        series(
            "stepstream_dead_letters_total",
            "Dead letters acknowledged by the broker.",
            "counter",
            vec![(
                String::new(),
                self.dead_letters.load(Ordering::Relaxed) as f64,
            )],
        );
        series(
            "stepstream_produce_errors_total",
            "Produce attempts that failed and were retried.",
            "counter",
            vec![(
                String::new(),
                self.produce_errors.load(Ordering::Relaxed) as f64,
            )],
        );
        series(
            "stepstream_records_pending",
            "Records consumed and not yet acknowledged downstream.",
            "gauge",
            vec![(String::new(), self.pending.load(Ordering::Relaxed) as f64)],
        );
        series(
            "stepstream_records_pending_peak",
            "The most records pending at once since the start.",
            "gauge",
            vec![(
                String::new(),
                self.pending_peak.load(Ordering::Relaxed) as f64,
            )],
        );
        series(
            "stepstream_backpressure",
            "1 while the consumer waits because runtime.max_pending records are pending.",
            "gauge",
            vec![(
                String::new(),
                u8::from(self.paused.load(Ordering::Relaxed)) as f64,
            )],
        );
        let lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        series(
            "stepstream_consumer_lag",
            "Messages behind the end of each assigned partition.",
            "gauge",
            lag.iter()
                .map(|((t, p), v)| (format!("{{topic=\"{t}\",partition=\"{p}\"}}"), *v as f64))
                .collect(),
        );
        series(
            "stepstream_assigned_partitions",
            "Partitions assigned to this process.",
            "gauge",
            vec![(String::new(), self.assigned.load(Ordering::Relaxed) as f64)],
        );
        out
    }
}
