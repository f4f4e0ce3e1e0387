//! Counters and histograms of a running process, kept per shard (written by that shard only)
//! and merged when `/metrics` is read, rendered as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::stream::shard::ShardStats;

/// The shards of one pipeline.
pub struct PipelineStats {
    pub name: String,
    pub shards: Vec<Arc<ShardStats>>,
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
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Ready means connected to the brokers with at least one partition assigned.
    pub fn ready(&self) -> bool {
        self.connected.load(Ordering::Relaxed) && self.assigned.load(Ordering::Relaxed) > 0
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
        let label = |p: &PipelineStats| format!("{{pipeline=\"{}\"}}", p.name);
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
            for (status, f) in [
                (
                    "SUCCEEDED",
                    &(|s: &ShardStats| s.succeeded.load(Ordering::Relaxed))
                        as &dyn Fn(&ShardStats) -> u64,
                ),
                ("FAILED", &|s: &ShardStats| s.failed.load(Ordering::Relaxed)),
                ("TIMED_OUT", &|s: &ShardStats| {
                    s.timed_out.load(Ordering::Relaxed)
                }),
                ("REJECTED", &|s: &ShardStats| {
                    s.rejected.load(Ordering::Relaxed)
                }),
            ] {
                by_status.push((
                    format!("{{pipeline=\"{}\",status=\"{status}\"}}", p.name),
                    sum(f, p),
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
                        format!("{{pipeline=\"{}\",quantile=\"{q}\"}}", p.name),
                        m.value_at_quantile(q) as f64 / 1e9,
                    ));
                }
                latency_rows.push((format!("_count{{pipeline=\"{}\"}}", p.name), m.len() as f64));
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
