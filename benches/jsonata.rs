//! The JSONata engine on W1j's expressions, exactly what `../shared/bench/anchors/
//! jsonata_js_w1j.mjs` times in jsonata-js: per event, parse the ~1 KB IoT event, evaluate
//! Enrich's five Assign expressions, Route's two Conditions, the Alert decision when taken,
//! Shape's eight Output expressions, and write the output as JSON. No workflow engine.
//!
//!     cargo bench --bench jsonata

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stepstream::json::{self, Value};
use stepstream::jsonata::{self, Expression, Options, Variables};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn read(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn compile(field: &Value) -> Expression {
    let text = field.as_str().unwrap().trim();
    let inner = text.strip_prefix("{%").unwrap().strip_suffix("%}").unwrap();
    jsonata::compile(inner.trim()).unwrap()
}

struct W1j {
    enrich: Vec<(String, Expression)>,
    conds: Vec<(String, Expression)>,
    alert: Expression,
    shape: Vec<(String, Expression)>,
}

fn w1j() -> W1j {
    let d = json::parse(&read("configs/workflows/w1j_transform.asl.json")).unwrap();
    let states = d.get("States").unwrap();
    let pairs = |v: &Value| {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, e)| (k.to_string(), compile(e)))
            .collect::<Vec<_>>()
    };
    W1j {
        enrich: pairs(states.get("Enrich").unwrap().get("Assign").unwrap()),
        conds: states
            .get("Route")
            .unwrap()
            .get("Choices")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c.get("Next").unwrap().as_str().unwrap().to_string(),
                    compile(c.get("Condition").unwrap()),
                )
            })
            .collect(),
        alert: compile(
            states
                .get("Alert")
                .unwrap()
                .get("Assign")
                .unwrap()
                .get("decision")
                .unwrap(),
        ),
        shape: pairs(states.get("Shape").unwrap().get("Output").unwrap()),
    }
}

/// The variables the expressions read (`$states` and the assigned ones), as a state
/// machine keeps them: looked up by name when an expression reads one, nothing copied in.
struct Vars<'a>(Vec<(&'a str, Value)>);

impl Variables for Vars<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

/// One event through W1j's expressions; returns the output JSON text.
fn one(w: &W1j, event: &[u8]) -> String {
    let opts = Options::default();
    let input = json::parse(event).unwrap();
    let states = Value::object_from([("input", input)]);
    let mut vars = Vars(vec![("states", states)]);
    let eval = |e: &Expression, vars: &Vars| e.evaluate_vars(None, vars, &opts).unwrap();
    for (k, e) in &w.enrich {
        let v = eval(e, &vars).unwrap_or_default();
        vars.0.push((k.as_str(), v));
    }
    let mut next = "Normal";
    for (n, e) in &w.conds {
        if eval(e, &vars) == Some(Value::Bool(true)) {
            next = n;
            break;
        }
    }
    let decision = if next == "Alert" {
        eval(&w.alert, &vars).unwrap_or_default()
    } else {
        json::parse(br#"{"level":"normal","reason":"within limits"}"#).unwrap()
    };
    vars.0.push(("decision", decision));
    let mut out = json::Object::with_capacity(w.shape.len());
    for (k, e) in &w.shape {
        if let Some(v) = eval(e, &vars) {
            out.push_unique(k.as_str().into(), v);
        }
    }
    json::to_string(&Value::object(out))
}

fn bench(c: &mut Criterion) {
    let w = w1j();
    let event = json::to_string(&json::parse(&read("configs/events/iot-event.json")).unwrap());
    let mut g = c.benchmark_group("jsonata");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("w1j_expressions", |b| {
        b.iter(|| {
            i += 1;
            let ev = event.replace("evt-000000", &format!("evt-{:06}", i % 1_000_000));
            black_box(one(&w, black_box(ev.as_bytes())))
        })
    });
    // Each W1j expression alone, with the variables Enrich assigns.
    let input = json::parse(event.as_bytes()).unwrap();
    let mut vars = Vars(vec![("states", Value::object_from([("input", input)]))]);
    let opts = Options::default();
    for (k, e) in &w.enrich {
        let v = e
            .evaluate_vars(None, &vars, &opts)
            .unwrap()
            .unwrap_or_default();
        vars.0.push((k.as_str(), v));
    }
    let all = w.enrich.iter().chain(&w.conds).chain(&w.shape);
    for (i, (name, e)) in all.enumerate() {
        g.bench_function(format!("w1j_{i:02}_{name}"), |b| {
            b.iter(|| black_box(e.evaluate_vars(None, &vars, &opts).unwrap()))
        });
    }
    let doc = json::parse(event.as_bytes()).unwrap();
    for expr in [
        "site.region & '#' & deviceId & '#' & $string(ts)",
        "$count(readings[$ > 20])",
        "readings^(>$)[[0..2]]",
        "{'avg': $average(readings), 'max': $max(readings)}",
    ] {
        let e = jsonata::compile(expr).unwrap();
        g.bench_function(expr, |b| {
            b.iter(|| black_box(e.evaluate(Some(&doc), &[]).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
