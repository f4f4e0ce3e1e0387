//! One execution of each benchmark workload (`configs/workflows`, copies of the shared
//! workloads), from input bytes (parse) to output bytes (serialize), next to the floor:
//! simd-json parsing and serializing the same event with no workflow at all, and W1's logic
//! written by hand over serde_json, the reference the engine is measured against.
//!
//!     cargo bench --bench exec

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use simd_json::prelude::Writable;
use stepstream::asl::{self, MachineType};
use stepstream::exec::Outcome;
use stepstream::json::{self, Str, Value};
use stepstream::plan::{self, Plan};
use stepstream::stream::driver::Driver;
use stepstream::tasks::Registry;
use stepstream::tasks::mock::MockFile;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn path(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

fn plan(name: &str) -> Arc<Plan> {
    let text = std::fs::read(path(&format!("configs/workflows/{name}.asl.json"))).unwrap();
    let v = asl::load(&text, MachineType::Express).unwrap();
    Arc::new(plan::compile(&v, name))
}

fn event() -> Vec<u8> {
    let raw = std::fs::read(path("configs/events/iot-event.json")).unwrap();
    json::to_string(&json::parse(&raw).unwrap()).into_bytes()
}

/// Parse, execute, serialize: what one execution costs a shard.
fn one(driver: &mut Driver<()>, input: &[u8], out: &mut Vec<u8>) {
    let v = json::parse(input).unwrap();
    let f = driver
        .start((), Str::new("bench"), v, Some(input.len()))
        .expect("finishes without waiting");
    out.clear();
    match &f.outcome {
        Outcome::Succeeded(v) => json::write(v, out),
        other => panic!("{other:?}"),
    }
}

fn workloads(c: &mut Criterion) {
    let input = event();
    let mut g = c.benchmark_group("execution");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(4096);
    for (name, mocks) in [
        ("w1_transform", None),
        ("w2_map", None),
        ("w3_parallel", None),
        ("w4_task_retry", Some("w4b_task.mocks.json")),
        ("w5_choice_heavy", None),
    ] {
        let mut registry = Registry::new();
        if let Some(m) = mocks {
            let text = std::fs::read(path(&format!("configs/workflows/{m}"))).unwrap();
            registry.mock(Arc::new(MockFile::parse(&text).unwrap()));
        }
        let mut driver: Driver<()> = Driver::new(plan(name), Arc::new(registry));
        let label = if mocks.is_some() { "w4b_task" } else { name };
        g.bench_function(label, |b| {
            b.iter(|| one(&mut driver, black_box(&input), &mut out))
        });
    }
    g.finish();
}

fn floor(c: &mut Criterion) {
    let input = event();
    let mut g = c.benchmark_group("floor");
    g.throughput(Throughput::Elements(1));
    g.bench_function("simd_json_parse_serialize", |b| {
        let mut buf = Vec::with_capacity(input.len());
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(black_box(&input));
            let v = simd_json::to_owned_value(&mut buf).unwrap();
            black_box(v.encode())
        })
    });
    g.bench_function("stepstream_json_parse_serialize", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            let v: Value = json::parse(black_box(&input)).unwrap();
            out.clear();
            json::write(&v, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("w1_by_hand_serde_json", |b| {
        b.iter(|| black_box(w1_by_hand(black_box(&input))))
    });
    g.finish();
}

/// W1's logic written by hand over serde_json: the reference point of the issue.
fn w1_by_hand(input: &[u8]) -> Vec<u8> {
    use serde_json::{Value as J, json};
    let e: J = serde_json::from_slice(input).unwrap();
    let key = format!(
        "{}#{}#{}",
        e["site"]["region"].as_str().unwrap(),
        e["deviceId"].as_str().unwrap(),
        e["ts"]
    );
    let meta: J = serde_json::from_str(e["meta"].as_str().unwrap()).unwrap();
    let tags = serde_json::to_string(&e["tags"]).unwrap();
    let next_seq = e["seq"].as_i64().unwrap() + 1;
    let count = e["readings"].as_array().unwrap().len();
    let floor = e["site"]["floor"].as_i64().unwrap();
    let battery = meta["battery"].as_i64().unwrap();
    let ty = e["type"].as_str().unwrap();
    let normal = battery < 20 && (ty == "device.telemetry" || ty == "device.heartbeat");
    let alert = !normal
        && count >= 10
        && (e["severity"] == "high" || floor > 10)
        && e["unit"] != "fahrenheit";
    let decision = if alert {
        json!({"level": "alert",
               "reason": format!("severity {} on floor {} with {} readings",
                                 e["severity"].as_str().unwrap(), floor, count),
               "at": e["ts"]})
    } else {
        json!({"level": "normal", "reason": "within limits"})
    };
    let out = json!({"key": key, "deviceId": e["deviceId"], "seq": next_seq,
                     "firmware": meta["fw"], "battery": battery, "count": count,
                     "tags": tags, "decision": decision});
    serde_json::to_vec(&out).unwrap()
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! { name = benches; config = config(); targets = workloads, floor }
criterion_main!(benches);
