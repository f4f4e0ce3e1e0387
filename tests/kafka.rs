//! Kafka pipelines against librdkafka's in-process mock cluster: outputs and dead letters,
//! order per key, and offsets committed only after the results were delivered (a stop that
//! abandons in-flight work loses nothing: the next run picks it up).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use md5::Digest;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use stepstream::asl::{self, MachineType};
use stepstream::config::{Config, Http, Kafka, Pipeline, ResourceBinding, ResourceKind, Runtime};
use stepstream::exec::Outcome;
use stepstream::json::{self, Value};
use stepstream::metrics::Metrics;
use stepstream::stream::kafka::{self, Prepared};
use stepstream::tasks::Registry;

const PARTITIONS: i32 = 3;

fn config(brokers: &str, group: &str, drain_ms: u64) -> Config {
    Config {
        kafka: Kafka {
            brokers: brokers.to_string(),
            group_id: group.to_string(),
            options: [
                ("auto.offset.reset", "earliest"),
                ("session.timeout.ms", "6000"),
                ("heartbeat.interval.ms", "500"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            producer_options: Default::default(),
        },
        runtime: Runtime {
            shards: 2,
            max_in_flight: 64,
            max_pending: 200,
            drain_timeout_ms: drain_ms,
            max_map_iterations: stepstream::stream::shard::DEFAULT_MAP_ITERATIONS,
        },
        http: Http {
            listen: None,
            credentials: None,
        },
        api: None,
        pipelines: vec![Pipeline {
            name: "t".into(),
            definition: "inline".into(),
            input_topic: "in".into(),
            output_topic: "out".into(),
            dead_letter_topic: "dlq".into(),
            mock_file: None,
            headers: true,
            ordered_keys: false,
            logging: None,
        }],
        resources: Vec::new(),
    }
}

fn prepared(c: &Config, definition: &str) -> Vec<Prepared> {
    let v = asl::load(definition.as_bytes(), MachineType::Express).unwrap();
    vec![Prepared {
        pipeline: c.pipelines[0].clone(),
        plan: Arc::new(stepstream::plan::compile(&v, "t")),
        registry: Arc::new(Registry::new()),
        drawing: None,
        logging: None,
    }]
}

async fn produce(brokers: &str, records: &[(String, Vec<u8>)]) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for (key, payload) in records {
        p.send(
            FutureRecord::to("in").key(key).payload(payload),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    }
}

/// Every record of `topic` (key, value), per partition in order.
fn read_all(brokers: &str, topic: &str, expect: usize) -> Vec<(String, Value)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{topic}-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut idle = 0;
    while std::time::Instant::now() < deadline && (out.len() < expect || idle < 5) {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                idle = 0;
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
                out.push((key, json::parse(m.payload().unwrap_or_default()).unwrap()));
            }
            _ => idle += 1,
        }
    }
    out
}

/// The committed offset of each input partition for `group`.
fn committed(brokers: &str, group: &str) -> HashMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition("in", p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .map(|e| {
            (
                e.partition(),
                match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                },
            )
        })
        .collect()
}

/// Runs the pipeline until `until` says stop (checked every 100 ms) or 30 s pass.
async fn run_until(c: &Config, definition: &str, until: impl FnMut(&Metrics) -> bool) {
    run_prepared_until(c, prepared(c, definition), until).await
}

/// `run_until` for pipelines already prepared.
async fn run_prepared_until(c: &Config, p: Vec<Prepared>, mut until: impl FnMut(&Metrics) -> bool) {
    let metrics = Metrics::new();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let m = Arc::clone(&metrics);
    let c2 = c.clone();
    let task = tokio::spawn(async move { kafka::run(&c2, p, m, rx).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !until(&metrics) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();
}

fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let mock = MockCluster::new(1).unwrap();
    for t in ["in", "out", "dlq"] {
        mock.create_topic(t, PARTITIONS, 1).unwrap();
    }
    mock
}

const SEQ: &str = r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"key.$":"$.key","seq.$":"$.seq","doubled.$":"States.MathAdd($.seq, $.seq)"},"End":true}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_dead_letters_order_per_key_and_commits() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    let mut records = Vec::new();
    for i in 0..300 {
        let key = format!("k{}", i % 7);
        let payload = if i % 50 == 13 {
            b"{not json".to_vec()
        } else {
            format!(r#"{{"key":"{key}","seq":{i}}}"#).into_bytes()
        };
        records.push((key, payload));
    }
    produce(&brokers, &records).await;
    let c = config(&brokers, "g1", 5000);
    run_until(&c, SEQ, |m| {
        m.outputs.load(std::sync::atomic::Ordering::Relaxed)
            + m.dead_letters.load(std::sync::atomic::Ordering::Relaxed)
            >= 300
    })
    .await;

    let outs = read_all(&brokers, "out", 294);
    let dead = read_all(&brokers, "dlq", 6);
    assert_eq!(outs.len(), 294);
    assert_eq!(dead.len(), 6);
    // Exactly one output per good record, with the input's key.
    let mut seen: Vec<i64> = outs
        .iter()
        .map(|(k, v)| {
            assert_eq!(v.get("key"), Some(&Value::string(k)));
            v.get("seq").unwrap().as_i64().unwrap()
        })
        .collect();
    seen.sort_unstable();
    let want: Vec<i64> = (0..300).filter(|i| i % 50 != 13).collect();
    assert_eq!(seen, want);
    // Order per key: a key's outputs are in one partition, in input order.
    let mut last: HashMap<String, i64> = HashMap::new();
    for (k, v) in &outs {
        let s = v.get("seq").unwrap().as_i64().unwrap();
        if let Some(prev) = last.insert(k.clone(), s) {
            assert!(prev < s, "key {k}: {prev} before {s}");
        }
    }
    // Dead letters say why and where from.
    for (_, d) in &dead {
        assert_eq!(
            d.get("error"),
            Some(&Value::string("stepstream.InvalidJSON"))
        );
        assert_eq!(d.get("input"), Some(&Value::string("{not json")));
        assert_eq!(
            d.get("source").unwrap().get("topic"),
            Some(&Value::string("in"))
        );
    }
    // Everything delivered is committed.
    let committed = committed(&brokers, "g1");
    assert_eq!(committed.values().sum::<i64>(), 300, "{committed:?}");
}

/// Every fifth record waits a second.
const SOME_WAIT: &str = r#"{"StartAt":"C","States":{
  "C":{"Type":"Choice","Choices":[{"Variable":"$.slow","BooleanEquals":true,"Next":"W"}],"Default":"P"},
  "W":{"Type":"Wait","Seconds":1,"Next":"P"},
  "P":{"Type":"Pass","End":true}}}"#;

/// An output larger than the producer may send is refused by librdkafka at once: it becomes a
/// `stepstream.ProduceFailed` dead letter (so its partition moves on and its offset commits),
/// while the records around it are delivered as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_the_broker_can_never_take_becomes_a_dead_letter_and_commits() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    let pad = "x".repeat(5000);
    let records: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| {
            let key = format!("k{}", i % 4);
            let body = if i % 2 == 0 {
                format!(r#"{{"seq":{i},"pad":"{pad}"}}"#)
            } else {
                format!(r#"{{"seq":{i}}}"#)
            };
            (key, body.into_bytes())
        })
        .collect();
    produce(&brokers, &records).await;
    let mut c = config(&brokers, "gbig", 5000);
    c.kafka.producer_options = [("message.max.bytes".to_string(), "2000".to_string())].into();
    let mut errors = 0;
    run_until(
        &c,
        r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#,
        |m| {
            errors = m.produce_errors.load(std::sync::atomic::Ordering::Relaxed);
            m.outputs.load(std::sync::atomic::Ordering::Relaxed)
                + m.dead_letters.load(std::sync::atomic::Ordering::Relaxed)
                >= 20
        },
    )
    .await;
    assert!(
        errors >= 10,
        "each big output failed once: {errors} produce errors"
    );
    let outs = read_all(&brokers, "out", 10);
    let dead = read_all(&brokers, "dlq", 10);
    let mut small: Vec<i64> = outs
        .iter()
        .map(|(_, v)| v.get("seq").and_then(Value::as_i64).unwrap())
        .collect();
    small.sort();
    assert_eq!(small, (0..20).filter(|i| i % 2 == 1).collect::<Vec<_>>());
    assert_eq!(dead.len(), 10);
    for (_, d) in &dead {
        assert_eq!(
            d.get("error"),
            Some(&Value::string("stepstream.ProduceFailed"))
        );
        let cause = d.get("cause").and_then(Value::as_str).unwrap();
        assert!(cause.contains("'out'"), "{cause}");
        let offset = d
            .get("source")
            .and_then(|s| s.get("offset"))
            .and_then(Value::as_i64);
        assert!(offset.is_some(), "{d:?}");
    }
    assert_eq!(committed(&brokers, "gbig").values().sum::<i64>(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_by_key_keeps_waiting_workflows_in_input_order() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    let records: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            let key = format!("k{}", i % 4);
            let slow = i % 5 == 0;
            let v = format!(r#"{{"key":"{key}","seq":{i},"slow":{slow}}}"#);
            (key, v.into_bytes())
        })
        .collect();
    produce(&brokers, &records).await;
    let mut c = config(&brokers, "g-ordered", 10_000);
    c.pipelines[0].ordered_keys = true;
    run_until(&c, SOME_WAIT, |m| {
        m.outputs.load(std::sync::atomic::Ordering::Relaxed) >= 40
    })
    .await;
    let outs = read_all(&brokers, "out", 40);
    assert_eq!(outs.len(), 40);
    // Each key's outputs are in one partition in input order, though its first record
    // waited a second and the later ones did not.
    let mut by_key: HashMap<String, Vec<i64>> = HashMap::new();
    for (k, v) in &outs {
        by_key
            .entry(k.clone())
            .or_default()
            .push(v.get("seq").unwrap().as_i64().unwrap());
    }
    assert_eq!(by_key.len(), 4);
    for (k, seqs) in &by_key {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs, &sorted, "key {k}");
        assert_eq!(seqs.len(), 10, "key {k}");
    }
}

const SLOW_FOR_K0: &str = r#"{"StartAt":"C","States":{
  "C":{"Type":"Choice","Choices":[{"Variable":"$.key","StringEquals":"k0","Next":"W"}],"Default":"P"},
  "W":{"Type":"Wait","Seconds":3,"Next":"P"},
  "P":{"Type":"Pass","End":true}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_abandons_work_commits_nothing_past_it_and_loses_nothing() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    let records: Vec<(String, Vec<u8>)> = (0..60)
        .map(|i| {
            let key = format!("k{}", i % 3);
            (
                key.clone(),
                format!(r#"{{"key":"{key}","seq":{i}}}"#).into_bytes(),
            )
        })
        .collect();
    produce(&brokers, &records).await;
    // First run: stop as soon as the fast keys are done, with almost no time to drain: the
    // records of k0 (waiting 3 s) are abandoned.
    let c = config(&brokers, "g2", 1);
    run_until(&c, SLOW_FOR_K0, |m| {
        m.outputs.load(std::sync::atomic::Ordering::Relaxed) >= 40
    })
    .await;
    let first = read_all(&brokers, "out", 40);
    assert_eq!(first.len(), 40);
    assert!(first.iter().all(|(k, _)| k != "k0"));
    let committed_after_stop = committed(&brokers, "g2");
    assert!(committed_after_stop.values().sum::<i64>() < 60);
    // Second run: the abandoned records (at least the 20 of k0) run again.
    let c = config(&brokers, "g2", 10_000);
    run_until(&c, SLOW_FOR_K0, |m| {
        m.outputs.load(std::sync::atomic::Ordering::Relaxed) >= 20
            && m.pending.load(std::sync::atomic::Ordering::Relaxed) == 0
    })
    .await;
    let all = read_all(&brokers, "out", 60);
    let mut seqs: Vec<i64> = all
        .iter()
        .map(|(_, v)| v.get("seq").unwrap().as_i64().unwrap())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs, (0..60).collect::<Vec<_>>(), "records were lost");
    assert_eq!(committed(&brokers, "g2").values().sum::<i64>(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_bounds_pending_records_and_loses_none() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    let records: Vec<(String, Vec<u8>)> = (0..400)
        .map(|i| {
            let key = format!("k{}", i % 11);
            (
                key.clone(),
                format!(r#"{{"key":"{key}","seq":{i}}}"#).into_bytes(),
            )
        })
        .collect();
    produce(&brokers, &records).await;
    let mut c = config(&brokers, "g3", 5000);
    c.runtime.max_pending = 10;
    let metrics = Metrics::new();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (m, c2, p) = (Arc::clone(&metrics), c.clone(), prepared(&c, SEQ));
    let task = tokio::spawn(async move { kafka::run(&c2, p, m, rx).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let done = |m: &Metrics| m.outputs.load(std::sync::atomic::Ordering::Relaxed) >= 400;
    while !done(&metrics) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tx.send(true).unwrap();
    task.await.unwrap().unwrap();

    // Readers wait at the limit; several may pass the check together, one record each.
    let peak = metrics
        .pending_peak
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(peak <= 10 + PARTITIONS as u64, "peak pending {peak}");
    assert!(peak >= 10, "the limit was never reached (peak {peak})");
    let outs = read_all(&brokers, "out", 400);
    let mut seqs: Vec<i64> = outs
        .iter()
        .map(|(_, v)| v.get("seq").unwrap().as_i64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..400).collect::<Vec<_>>());
    assert_eq!(committed(&brokers, "g3").values().sum::<i64>(), 400);
}

fn kafka_binding(resource: &str, brokers: &str, topic: Option<&str>) -> ResourceBinding {
    ResourceBinding {
        resource: resource.into(),
        kind: ResourceKind::Kafka,
        endpoint: None,
        timeout_ms: 10_000,
        allowed_hosts: Vec::new(),
        headers: Vec::new(),
        brokers: Some(brokers.into()),
        topic: topic.map(str::to_string),
        connection: None,
        tls: None,
    }
}

const PRODUCERS: &str = r#"{"StartAt":"Produce","States":{
  "Produce":{"Type":"Task","Resource":"arn:aws:states:::kafka:produce",
    "Parameters":{"Topic":"events","Key.$":"$.id","Value.$":"$","Headers":{"source":"test"}},
    "ResultPath":"$.produced","Next":"Queue"},
  "Queue":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage",
    "Parameters":{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/123456789012/orders","MessageBody":{"orderId.$":"$.id"}},
    "ResultPath":"$.queued","Next":"Bus"},
  "Bus":{"Type":"Task","Resource":"arn:aws:states:::events:putEvents",
    "Parameters":{"Entries":[{"Source":"shop","DetailType":"OrderPlaced","Detail":{"id.$":"$.id"}}]},
    "ResultPath":"$.bus","End":true}}}"#;

#[test]
fn tasks_produce_to_kafka_and_aws_messaging_maps_onto_topics() {
    let mock = MockCluster::new(1).unwrap();
    for t in ["events", "orders-queue", "bus"] {
        mock.create_topic(t, PARTITIONS, 1).unwrap();
    }
    let brokers = mock.bootstrap_servers();
    let mut registry = Registry::new();
    registry
        .bind_config(&[
            kafka_binding("arn:aws:states:::kafka:produce", &brokers, None),
            kafka_binding(
                "arn:aws:states:::sqs:sendMessage",
                &brokers,
                Some("orders-queue"),
            ),
            kafka_binding("arn:aws:states:::events:putEvents", &brokers, Some("bus")),
        ])
        .unwrap();
    let plan = Arc::new(stepstream::plan::compile(
        &asl::load(PRODUCERS.as_bytes(), MachineType::Express).unwrap(),
        "p",
    ));
    let input = json::parse(br#"{"id":"o-1","total":12}"#).unwrap();
    let done =
        stepstream::stream::driver::run_one(plan, Arc::new(registry), "e", input.clone(), None);
    let Outcome::Succeeded(out) = done.outcome else {
        panic!("{:?}", done.outcome)
    };
    // kafka:produce answers with where the record went.
    let produced = out.get("produced").unwrap();
    assert_eq!(produced.get("Topic"), Some(&Value::string("events")));
    let (p, o) = (
        produced.get("Partition").unwrap().as_i64().unwrap(),
        produced.get("Offset").unwrap().as_i64().unwrap(),
    );
    assert!((0..PARTITIONS as i64).contains(&p) && o == 0, "{p} {o}");
    // sqs:sendMessage answers as SQS does, with the body's MD5.
    let queued = out.get("queued").unwrap();
    let md5: String = md5::Md5::digest(br#"{"orderId":"o-1"}"#)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(queued.get("MD5OfMessageBody"), Some(&Value::string(&md5)));
    assert!(
        queued
            .get("MessageId")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("orders-queue/")
    );
    assert_eq!(
        out.get("bus").unwrap().get("FailedEntryCount"),
        Some(&Value::int(0))
    );
    // And the records are on the topics.
    let events = read_all(&brokers, "events", 1);
    assert_eq!(events, vec![("o-1".to_string(), input)]);
    let queue = read_all(&brokers, "orders-queue", 1);
    assert_eq!(queue[0].1, json::parse(br#"{"orderId":"o-1"}"#).unwrap());
    let bus = read_all(&brokers, "bus", 1);
    assert_eq!(bus[0].0, "shop");
    assert_eq!(
        bus[0].1.get("DetailType"),
        Some(&Value::string("OrderPlaced"))
    );
}

#[test]
fn a_binding_topic_limits_where_kafka_produce_may_write() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("allowed", PARTITIONS, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let mut registry = Registry::new();
    registry
        .bind_config(&[kafka_binding(
            "arn:aws:states:::kafka:produce",
            &brokers,
            Some("allowed"),
        )])
        .unwrap();
    let def = r#"{"StartAt":"P","States":{"P":{"Type":"Task","Resource":"arn:aws:states:::kafka:produce",
        "Parameters":{"Topic.$":"$.topic","Value":"x"},"End":true}}}"#;
    let plan = Arc::new(stepstream::plan::compile(
        &asl::load(def.as_bytes(), MachineType::Express).unwrap(),
        "p",
    ));
    let done = stepstream::stream::driver::run_one(
        plan,
        Arc::new(registry),
        "e",
        json::parse(br#"{"topic":"elsewhere"}"#).unwrap(),
        None,
    );
    let Outcome::Failed { error, cause } = done.outcome else {
        panic!("{:?}", done.outcome)
    };
    assert_eq!(error.as_deref(), Some("States.Runtime"));
    assert!(cause.as_deref().unwrap_or("").contains("'allowed'"));
}

#[test]
fn the_kafka_bench_times_a_passthrough_and_the_workflow_on_the_same_records() {
    // The mock cluster has no CreateTopics: the bench runs on topics made here.
    let mock = MockCluster::new(1).unwrap();
    for t in ["kb-in", "kb-copy", "kb-out", "kb-dlq"] {
        mock.create_topic(t, 2, 1).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("stepstream-kbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let def = dir.join("seq.asl.json");
    std::fs::write(&def, SEQ).unwrap();
    let event = dir.join("event.json");
    std::fs::write(&event, br#"{"eventId":"evt-000000","key":"k","seq":1}"#).unwrap();
    // The bench is part of the command line: run it as a user does, on the mock's port.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stepstream"))
        .arg("bench")
        .arg(&def)
        .arg("--input-file")
        .arg(&event)
        .args(["--brokers", &mock.bootstrap_servers()])
        .args(["--partitions", "2", "--executions", "500", "--shards", "2"])
        .args(["--topic-prefix", "kb", "--format", "json"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = stepstream::json::parse(&out.stdout).unwrap();
    let num = |k: &str| j.get(k).and_then(|v| v.as_f64()).unwrap_or(-1.0);
    assert_eq!(num("executions"), 500.0);
    assert_eq!(num("outputs"), 500.0);
    assert_eq!(num("dead_letters"), 0.0);
    assert!(num("passthrough_seconds") > 0.0 && num("stepstream_seconds") > 0.0);
    let lat = j.get("latency_us").unwrap();
    let q = |k: &str| lat.get(k).and_then(|v| v.as_f64()).unwrap();
    assert!(q("p99") >= q("p50") && q("p50") > 0.0, "{lat:?}");
    for k in [
        "passthrough_per_second",
        "stepstream_per_second",
        "stepstream_vs_passthrough",
    ] {
        assert!(num(k) > 0.0, "{k}");
    }
    // CPU per record of each side (10 ms ticks: a short run may show 0 for one of them).
    let cpu = j.get("cpu_us_per_record").unwrap();
    for k in ["passthrough", "stepstream", "in_process"] {
        assert!(cpu.get(k).and_then(|v| v.as_f64()).unwrap() >= 0.0, "{k}");
    }
    assert!(
        j.get("stepstream_minus_passthrough_vs_in_process")
            .is_some(),
        "{j:?}"
    );
    // The phase's CPU by thread name adds up to no more than the process's (threads that
    // did not register a tick are left out).
    let by_thread = j
        .get("stepstream_cpu_us_per_record_by_thread")
        .and_then(|v| v.as_object())
        .expect("an object of thread names");
    let sum: f64 = by_thread
        .iter()
        .map(|(name, v)| {
            assert!(!name.is_empty());
            v.as_f64().unwrap()
        })
        .sum();
    let sleeps = j
        .get("stepstream_sleeps_per_record_by_thread")
        .and_then(|v| v.as_object())
        .expect("an object of thread names");
    assert!(
        sleeps.iter().all(|(_, v)| v.as_f64().unwrap() >= 0.0) && !sleeps.is_empty(),
        "some thread of the pipeline waited for work at least once: {j:?}"
    );
    let total = cpu.get("stepstream").and_then(|v| v.as_f64()).unwrap();
    assert!(
        sum <= total + 0.001 * by_thread.len() as f64,
        "{sum} > {total}: {j:?}"
    );
}

/// `{"key","seq"}` records over `keys` keys; those `without_seq` picks lack the `seq`.
fn keyed_records(
    n: usize,
    keys: usize,
    without_seq: impl Fn(usize) -> bool,
) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let key = format!("k{}", i % keys);
            let payload = if without_seq(i) {
                format!(r#"{{"key":"{key}"}}"#)
            } else {
                format!(r#"{{"key":"{key}","seq":{i}}}"#)
            };
            (key, payload.into_bytes())
        })
        .collect()
}

/// Records with a result: outputs and dead letters.
fn handled(m: &Metrics) -> u64 {
    m.outputs.load(std::sync::atomic::Ordering::Relaxed)
        + m.dead_letters.load(std::sync::atomic::Ordering::Relaxed)
}

/// W1-like JSONata with variables: records without a `seq` fail in the expression.
const JSONATA_SEQ: &str = r#"{"QueryLanguage":"JSONata","StartAt":"A","States":{
  "A":{"Type":"Pass","Assign":{"s":"{% $states.input.seq %}"},"Next":"B"},
  "B":{"Type":"Pass","Output":{"key":"{% $states.input.key %}","seq":"{% $s %}","doubled":"{% $s * 2 %}"},"End":true}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonata_workflows_run_on_kafka_and_dead_letter_their_evaluation_errors() {
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    produce(&brokers, &keyed_records(60, 5, |i| i % 20 == 7)).await;
    let c = config(&brokers, "gj", 5000);
    run_until(&c, JSONATA_SEQ, |m| handled(m) >= 60).await;
    let outs = read_all(&brokers, "out", 57);
    let dead = read_all(&brokers, "dlq", 3);
    assert_eq!((outs.len(), dead.len()), (57, 3));
    for (k, v) in &outs {
        let seq = v.get("seq").unwrap().as_i64().unwrap();
        assert_eq!(v.get("key"), Some(&Value::string(k)));
        assert_eq!(v.get("doubled").unwrap().as_i64(), Some(2 * seq));
    }
    for (_, d) in &dead {
        assert_eq!(
            d.get("error"),
            Some(&Value::string("States.QueryEvaluationError"))
        );
        let cause = d.get("cause").and_then(|c| c.as_str()).unwrap_or("");
        assert!(cause.contains("'Assign/s'"), "{cause}");
    }
    assert_eq!(committed(&brokers, "gj").values().sum::<i64>(), 60);
}

/// A pipeline's execution log (`[pipelines.logging]`) gets the events of its Kafka records'
/// executions under the ARNs `$$.Execution.Id` gives them; at FATAL, only how the failed
/// ones ended, matching their dead letters one for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_s_execution_log_names_each_failed_record_s_execution() {
    use stepstream::exec::logging::{ExecutionLog, LogDestination, LogLevel, LogSettings, Logging};
    let mock = cluster();
    let brokers = mock.bootstrap_servers();
    produce(&brokers, &keyed_records(40, 4, |i| i % 10 == 3)).await;
    let c = config(&brokers, "glog", 5000);
    let path =
        std::env::temp_dir().join(format!("stepstream-kafka-log-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let log = ExecutionLog::open(LogDestination::File(path.clone())).unwrap();
    let mut p = prepared(&c, SEQ);
    p[0].logging = Some(Logging {
        settings: LogSettings {
            level: LogLevel::Fatal,
            include_execution_data: false,
        },
        log: log.clone(),
    });
    run_prepared_until(&c, p, |m| handled(m) >= 40).await;
    log.flush();
    let dead = read_all(&brokers, "dlq", 4);
    assert_eq!(dead.len(), 4);
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let mut logged: Vec<String> = text
        .lines()
        .map(|l| {
            let v = json::parse(l.as_bytes()).unwrap();
            assert_eq!(
                v.get("type"),
                Some(&Value::string("ExecutionFailed")),
                "{l}"
            );
            let details = v.get("details").unwrap();
            assert_eq!(details.get("error"), Some(&Value::string("States.Runtime")));
            v.get("execution_arn")
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut expected: Vec<String> = dead
        .iter()
        .map(|(_, d)| {
            let name = d.get("execution_name").unwrap().as_str().unwrap();
            format!("arn:aws:states:us-east-1:123456789012:execution:t:{name}")
        })
        .collect();
    logged.sort();
    expected.sort();
    assert_eq!(logged, expected);
}
