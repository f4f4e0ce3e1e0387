//! The embedded default: JSON lines in, JSON lines out, no broker. Each input line is a record
//! (`stdin`, partition 0, offset = line number from 0); outputs are written in input order to
//! the output, dead letters (JSON envelopes) to their own sink. The same shards run it as run
//! Kafka topics.
//!
//! Memory stays flat: the reader may run at most `window` records ahead of the oldest one not
//! yet written, so one slow execution cannot make the reorder buffer grow without bound.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Arc;

use super::shard::{ShardConfig, ShardPool};
use super::{Disposition, Processed, Record, Source};
use crate::json::Str;
use crate::metrics::{Metrics, PipelineStats};
use crate::plan::Plan;
use crate::tasks::Registry;

/// What happened to a stream of lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub outputs: u64,
    pub dead_letters: u64,
}

/// Runs every line of `input` through the workflow; with `observed`, the shards' counters
/// join that pipeline's entry in `metrics` (the one named after the plan, added if it is not
/// there yet) for the operations listener.
pub fn run(
    plan: Arc<Plan>,
    registry: Arc<Registry>,
    config: &ShardConfig,
    input: impl BufRead,
    output: &mut (dyn Write + Send),
    dead_letters: &mut (dyn Write + Send),
    observed: Option<&Metrics>,
) -> std::io::Result<Summary> {
    let (tx, rx) = crossbeam_channel::unbounded::<Processed>();
    let window = (config.shards.max(1) * (config.max_in_flight + config.queue)).max(1);
    // One token per record between reading and writing: the reader blocks when `window`
    // records are on their way.
    let (tokens_tx, tokens_rx) = crossbeam_channel::bounded::<()>(window);
    let name = plan.name.to_string();
    let pool = ShardPool::start(Arc::clone(&plan), registry, config, tx)?;
    if let Some(metrics) = observed {
        let mut pipelines = metrics.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        match pipelines.iter_mut().find(|p| p.name == name) {
            Some(p) => p.shards = pool.stats().to_vec(),
            None => pipelines.push(PipelineStats {
                plan: Some(plan),
                ..PipelineStats::new(&name, pool.stats().to_vec())
            }),
        }
        drop(pipelines);
        // Ready while there is input to read: the one "partition" is standard input.
        metrics
            .assigned
            .store(1, std::sync::atomic::Ordering::Relaxed);
        metrics
            .connected
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let topic = Str::new("stdin");

    std::thread::scope(|scope| -> std::io::Result<Summary> {
        let writer = scope.spawn(move || -> std::io::Result<Summary> {
            let mut summary = Summary::default();
            let mut next: i64 = 0;
            let mut pending: BTreeMap<i64, Processed> = BTreeMap::new();
            // Results come one at a time: rather than sleep and be woken for each one, the
            // writer naps while results are on their way (lines read and not yet written), and
            // blocks only when it has caught up with the reader.
            let next_result = || loop {
                match rx.try_recv() {
                    Ok(p) => return Some(p),
                    Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
                    Err(crossbeam_channel::TryRecvError::Empty) if !tokens_rx.is_empty() => {
                        std::thread::sleep(std::time::Duration::from_micros(100));
                    }
                    Err(crossbeam_channel::TryRecvError::Empty) => return rx.recv().ok(),
                }
            };
            while let Some(p) = next_result() {
                pending.insert(p.source.offset, p);
                while let Some(p) = pending.remove(&next) {
                    match p.disposition {
                        Disposition::Output(bytes) => {
                            output.write_all(&bytes)?;
                            output.write_all(b"\n")?;
                            summary.outputs += 1;
                        }
                        Disposition::DeadLetter(bytes) => {
                            dead_letters.write_all(&bytes)?;
                            dead_letters.write_all(b"\n")?;
                            summary.dead_letters += 1;
                        }
                    }
                    summary.records += 1;
                    next += 1;
                    let _ = tokens_rx.recv();
                }
                // Flush once caught up with the shards, so nothing finished is held back from
                // a reader downstream; not per record: under load results come in bursts.
                if pending.is_empty() && rx.is_empty() {
                    output.flush()?;
                    dead_letters.flush()?;
                }
            }
            output.flush()?;
            dead_letters.flush()?;
            Ok(summary)
        });
        let mut offset: i64 = 0;
        let mut read_error = None;
        for line in input.split(b'\n') {
            let mut payload = match line {
                Ok(l) => l,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            };
            if payload.last() == Some(&b'\r') {
                payload.pop();
            }
            if payload.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if tokens_tx.send(()).is_err() {
                break;
            }
            let record = Record {
                source: Source {
                    topic: topic.clone(),
                    partition: 0,
                    offset,
                },
                key: None,
                payload,
                received: std::time::Instant::now(),
                window: None,
                job: None,
            };
            offset += 1;
            if pool.submit(record).is_err() {
                break;
            }
        }
        pool.close();
        let summary = writer
            .join()
            .map_err(|_| std::io::Error::other("the output writer panicked"))??;
        match read_error {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::{MachineType, load};
    use crate::json::{self, Value};

    fn plan(def: &str) -> Arc<Plan> {
        Arc::new(crate::plan::compile(
            &load(def.as_bytes(), MachineType::Express).unwrap(),
            "lines",
        ))
    }

    fn run_lines(
        def: &str,
        input: &str,
        config: ShardConfig,
    ) -> (Vec<String>, Vec<Value>, Summary) {
        let mut out = Vec::new();
        let mut dlq = Vec::new();
        // Waits take no real time.
        crate::stream::shard::VIRTUAL_TIME.set(true);
        let s = run(
            plan(def),
            Arc::new(Registry::new()),
            &config,
            input.as_bytes(),
            &mut out,
            &mut dlq,
            None,
        )
        .unwrap();
        let outs = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let dead = String::from_utf8(dlq)
            .unwrap()
            .lines()
            .map(|l| json::parse(l.as_bytes()).unwrap())
            .collect();
        (outs, dead, s)
    }

    #[test]
    fn observed_lines_count_each_state_and_remember_dead_letters() {
        let def = r#"{"StartAt":"Pick","States":{
            "Pick":{"Type":"Choice","Choices":[{"Variable":"$.ok","BooleanEquals":true,"Next":"Fine"}],"Default":"Boom"},
            "Fine":{"Type":"Pass","End":true},
            "Boom":{"Type":"Fail","Error":"Bad","Cause":"not ok"}}}"#;
        let input = "{\"ok\":true}\n{\"ok\":false}\nnot json\n{\"ok\":true}\n{\"ok\":true}\n";
        let metrics = Metrics::default();
        let plan = plan(def);
        let (mut out, mut dlq) = (Vec::new(), Vec::new());
        let cfg = ShardConfig {
            shards: 2,
            ..ShardConfig::default()
        };
        let s = run(
            plan,
            Arc::new(Registry::new()),
            &cfg,
            input.as_bytes(),
            &mut out,
            &mut dlq,
            Some(&metrics),
        )
        .unwrap();
        assert_eq!((s.outputs, s.dead_letters), (3, 2));
        let pipelines = metrics.pipelines.lock().unwrap();
        let states = pipelines[0].states();
        let by = |n: &str| {
            states
                .iter()
                .find(|s| s.name.as_str() == n)
                .unwrap()
                .clone()
        };
        assert_eq!((by("Pick").entered, by("Pick").succeeded), (4, 4));
        assert_eq!((by("Fine").entered, by("Fine").succeeded), (3, 3));
        let boom = by("Boom");
        assert_eq!((boom.entered, boom.succeeded, boom.failed), (1, 0, 1));
        assert_eq!(boom.errors, vec![("Bad".to_string(), 1)]);
        let dead = pipelines[0].recent_dead_letters();
        let mut seen: Vec<(String, Option<String>, i64)> = dead
            .iter()
            .map(|d| {
                (
                    d.error.to_string(),
                    d.state.as_ref().map(|s| s.to_string()),
                    d.source.offset,
                )
            })
            .collect();
        seen.sort_by_key(|d| d.2);
        assert_eq!(
            seen,
            vec![
                ("Bad".to_string(), Some("Boom".to_string()), 1),
                ("stepstream.InvalidJSON".to_string(), None, 2)
            ]
        );
        // The envelope names the state too.
        let envelopes: Vec<Value> = String::from_utf8(dlq)
            .unwrap()
            .lines()
            .map(|l| json::parse(l.as_bytes()).unwrap())
            .collect();
        assert_eq!(envelopes[0].get("state"), Some(&Value::string("Boom")));
        assert_eq!(envelopes[1].get("state"), None);
        drop(pipelines);
        let text = metrics.render();
        assert!(
            text.contains("stepstream_state_entered_total{pipeline=\"lines\",state=\"Pick\"} 4")
        );
        assert!(text.contains(
            "stepstream_state_failed_total{pipeline=\"lines\",state=\"Boom\",error=\"Bad\"} 1"
        ));
        assert!(text.contains(
            "stepstream_state_duration_seconds_count{pipeline=\"lines\",state=\"Fine\"} 3"
        ));
        assert!(text.contains(
            "stepstream_state_duration_seconds_bucket{pipeline=\"lines\",state=\"Fine\",le=\"+Inf\"} 3"
        ));
    }

    #[test]
    fn outputs_keep_input_order_across_shards_and_waits() {
        // Odd numbers wait a second, so they finish after the even ones.
        let def = r#"{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.odd","BooleanEquals":true,"Next":"W"}],"Default":"P"},
            "W":{"Type":"Wait","Seconds":1,"Next":"P"},"P":{"Type":"Pass","OutputPath":"$.n","End":true}}}"#;
        let input: String = (0..200)
            .map(|n| format!("{{\"n\":{n},\"odd\":{}}}\n", n % 2 == 1))
            .collect();
        let cfg = ShardConfig {
            shards: 3,
            max_in_flight: 50,
            queue: 8,
            ordered_keys: false,
            max_map_iterations: 16,
            state_counts: true,
            logging: None,
        };
        let (outs, dead, s) = run_lines(def, &input, cfg);
        assert!(dead.is_empty());
        let want: Vec<String> = (0..200).map(|n| n.to_string()).collect();
        assert_eq!(outs, want);
        assert_eq!(s.records, 200);
    }

    #[test]
    fn bad_records_become_dead_letters_and_the_stream_goes_on() {
        let def = r#"{"StartAt":"P","States":{"P":{"Type":"Pass","InputPath":"$.v","End":true}}}"#;
        let big = format!("{{\"v\":\"{}\"}}", "x".repeat(300 * 1024));
        let input = format!("{{\"v\":1}}\nnot json\n{big}\n{{\"nope\":2}}\n{{\"v\":3}}\n");
        let (outs, dead, s) = run_lines(def, &input, ShardConfig::default());
        assert_eq!(outs, ["1", "3"]);
        assert_eq!(
            s,
            Summary {
                records: 5,
                outputs: 2,
                dead_letters: 3
            }
        );
        let errors: Vec<&str> = dead
            .iter()
            .map(|d| d.get("error").unwrap().as_str().unwrap())
            .collect();
        assert_eq!(
            errors,
            [
                "stepstream.InvalidJSON",
                "States.DataLimitExceeded",
                "States.Runtime"
            ]
        );
        assert_eq!(dead[0].get("input"), Some(&Value::string("not json")));
        assert_eq!(
            dead[2].get("source"),
            Some(&json::parse(br#"{"topic":"stdin","partition":0,"offset":3}"#).unwrap())
        );
        assert_eq!(
            dead[2].get("execution_name"),
            Some(&Value::string("stdin-0-3"))
        );
    }
}
