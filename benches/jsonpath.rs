//! JSONPath reads and writes on the IoT event, and the JSON parser against simd-json.
//!
//!     cargo bench --bench jsonpath

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stepstream::json::{self, Value};
use stepstream::jsonpath::Path;
use stepstream::plan::{Accessor, ContextField, ContextSource};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct NoContext;
impl ContextSource for NoContext {
    fn field(&self, _: ContextField) -> Option<Value> {
        None
    }
}

fn event() -> Vec<u8> {
    let raw = std::fs::read(format!(
        "{}/configs/events/iot-event.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    json::to_string(&json::parse(&raw).unwrap()).into_bytes()
}

fn get(c: &mut Criterion) {
    let doc = json::parse(&event()).unwrap();
    let mut g = c.benchmark_group("jsonpath_get");
    for p in [
        "$.deviceId",
        "$.site.region",
        "$.readings[3]",
        "$.readings[*]",
        "$.readings[?(@ > 30)]",
        "$..gateway",
    ] {
        let a = Accessor::new(Path::parse(p).unwrap());
        g.bench_function(p, |b| {
            b.iter(|| black_box(a.select(black_box(&doc), &NoContext).unwrap().into_owned()))
        });
    }
    g.finish();
}

fn set(c: &mut Criterion) {
    let bytes = event();
    let mut g = c.benchmark_group("jsonpath_set");
    for p in ["$.enriched", "$.site.zone", "$.result.nested.deep"] {
        let path = Path::parse(p).unwrap();
        g.bench_function(p, |b| {
            b.iter_batched(
                || json::parse(&bytes).unwrap(),
                |mut doc| {
                    path.set(&mut doc, Value::int(1)).unwrap();
                    doc
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn parse(c: &mut Criterion) {
    let one = event();
    let mut g = c.benchmark_group("parse");
    for copies in [1usize, 16, 200] {
        let text = String::from_utf8(one.clone()).unwrap();
        let doc = if copies == 1 {
            one.clone()
        } else {
            format!("[{}]", vec![text; copies].join(",")).into_bytes()
        };
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_function(format!("stepstream/{}B", doc.len()), |b| {
            b.iter(|| black_box(json::parse(black_box(&doc)).unwrap()))
        });
        g.bench_function(format!("simd_json_owned/{}B", doc.len()), |b| {
            let mut buf = Vec::with_capacity(doc.len());
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(&doc);
                black_box(simd_json::to_owned_value(&mut buf).unwrap())
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = get, set, parse }
criterion_main!(benches);
