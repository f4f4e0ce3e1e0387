//! Executor tests, driven by a synchronous test driver with a manual clock.

use std::sync::Arc;

use super::*;
use crate::asl::{MachineType, load};
use crate::json::{parse, to_string};
use crate::plan::{Plan, compile};

fn plan(def: &str) -> Plan {
    let v = load(def.as_bytes(), MachineType::Express)
        .unwrap_or_else(|d| panic!("invalid definition: {d:?}"));
    compile(&v, "machine")
}

fn v(s: &str) -> Value {
    parse(s.as_bytes()).unwrap()
}

/// Runs to the end: tasks answered by `task` at once, the clock jumping to each wake-up.
/// Returns the outcome and the clock at the end (ms from 0).
fn drive(
    def: &str,
    input: &str,
    mut task: impl FnMut(&TaskRequest, i64) -> Result<Value, TaskError>,
) -> (Outcome, i64) {
    let p = plan(def);
    let mut exec = Execution::new(&p, Start::new("exec", v(input), 0));
    let mut now = 0;
    let mut reqs = Vec::new();
    for _ in 0..100_000 {
        match exec.poll(&p, now, &mut reqs) {
            Poll::Done(o) => return (o, now),
            Poll::Pending { wake_at } => {
                if reqs.is_empty() {
                    now = wake_at.expect("a pending execution with nothing to wait for");
                }
                for r in reqs.drain(..) {
                    let res = task(&r, now);
                    exec.complete(r.token, res);
                }
            }
        }
    }
    panic!("execution did not end");
}

fn run(def: &str, input: &str) -> Outcome {
    drive(def, input, |r, _| {
        panic!("unexpected task for {}", r.resource)
    })
    .0
}

fn ok(def: &str, input: &str) -> String {
    match run(def, input) {
        Outcome::Succeeded(v) => to_string(&v),
        other => panic!("{other:?}"),
    }
}

fn failed(o: Outcome) -> (String, String) {
    match o {
        Outcome::Failed { error, cause } => (
            error.map(|e| e.to_string()).unwrap_or_default(),
            cause.map(|c| c.to_string()).unwrap_or_default(),
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn pass_data_flow() {
    assert_eq!(
        ok(
            r#"{"StartAt":"P","States":{"P":{"Type":"Pass","InputPath":"$.a","Parameters":{"x.$":"$.b","k":1},"ResultPath":"$.r","OutputPath":"$.r","End":true}}}"#,
            r#"{"a":{"b":[1,2]}}"#
        ),
        r#"{"x":[1,2],"k":1}"#
    );
    assert_eq!(
        ok(
            r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Result":{"z":1},"ResultPath":null,"End":true}}}"#,
            r#"{"a":1}"#
        ),
        r#"{"a":1}"#
    );
    assert_eq!(
        ok(
            r#"{"StartAt":"P","States":{"P":{"Type":"Pass","InputPath":null,"OutputPath":null,"End":true}}}"#,
            r#"{"a":1}"#
        ),
        "{}"
    );
}

#[test]
fn the_w1_workload_gives_the_summary() {
    let def = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/workflows/w1_transform.asl.json"
    ))
    .unwrap();
    let event = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/events/iot-event.json"
    ))
    .unwrap();
    let out = ok(&def, &event);
    assert_eq!(
        out,
        r#"{"key":"eu-west-1#thermo-eu-00042#1732200000123","deviceId":"thermo-eu-00042","seq":42,"firmware":"2.4.1","battery":87,"count":20,"tags":"[\"hvac\",\"critical\",\"floor3\",\"north\",\"tenant-acme\"]","decision":{"level":"alert","reason":"severity high on floor 3 with 20 readings","at":1732200000123}}"#
    );
}

#[test]
fn path_errors_are_runtime_failures_naming_the_state_and_event() {
    let (e, c) = failed(run(
        r#"{"StartAt":"a","States":{"a":{"Type":"Pass","Next":"pass"},"pass":{"Type":"Pass","InputPath":"$.NoSuchInputPath","End":true}}}"#,
        "{}",
    ));
    assert_eq!(e, "States.Runtime");
    assert_eq!(
        c,
        "An error occurred while executing the state 'pass' (entered at the event id #4). Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']"
    );
}

#[test]
fn runtime_errors_are_not_caught_even_by_name() {
    let (e, _) = failed(
        drive(
            r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:f","OutputPath":"$.no.such","Catch":[{"ErrorEquals":["States.Runtime"],"Next":"C"},{"ErrorEquals":["States.ALL"],"Next":"C"}],"End":true},"C":{"Type":"Succeed"}}}"#,
            "{}",
            |_, _| Ok(v("{}")),
        )
        .0,
    );
    assert_eq!(e, "States.Runtime");
}

#[test]
fn retry_backs_off_then_catch_shapes_the_error() {
    let mut times = Vec::new();
    let (o, _) = drive(
        r#"{"StartAt":"T","States":{
            "T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:r","Retry":[{"ErrorEquals":["Boom"],"IntervalSeconds":1,"MaxAttempts":3,"BackoffRate":2}],
                 "Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.err","Next":"C"}],"End":true},
            "C":{"Type":"Pass","End":true}}}"#,
        r#"{"in":1}"#,
        |r, now| {
            times.push((now, r.attempt));
            Err(TaskError::new("Boom", "it broke"))
        },
    );
    assert_eq!(times, [(0, 0), (1000, 1), (3000, 2), (7000, 3)]);
    assert_eq!(
        o,
        Outcome::Succeeded(v(r#"{"in":1,"err":{"Error":"Boom","Cause":"it broke"}}"#))
    );
}

#[test]
fn max_delay_caps_and_full_jitter_stays_within_the_delay() {
    let mut times = Vec::new();
    drive(
        r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:r","Retry":[{"ErrorEquals":["States.ALL"],"IntervalSeconds":2,"MaxAttempts":3,"BackoffRate":10,"MaxDelaySeconds":5}],"End":true}}}"#,
        "{}",
        |_, now| {
            times.push(now);
            Err(TaskError::new("X", ""))
        },
    );
    assert_eq!(times, [0, 2000, 7000, 12000]);
    let mut gaps = Vec::new();
    let mut last = 0;
    drive(
        r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:r","Retry":[{"ErrorEquals":["States.ALL"],"IntervalSeconds":4,"MaxAttempts":5,"BackoffRate":1,"JitterStrategy":"FULL"}],"End":true}}}"#,
        "{}",
        |_, now| {
            gaps.push(now - last);
            last = now;
            Err(TaskError::new("X", ""))
        },
    );
    assert!(gaps[1..].iter().all(|g| (0..=4000).contains(g)), "{gaps:?}");
}

#[test]
fn task_failed_matches_everything_but_timeouts() {
    let def = r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:r","Catch":[{"ErrorEquals":["States.TaskFailed"],"Next":"C"}],"End":true},"C":{"Type":"Pass","Result":"caught","End":true}}}"#;
    let (o, _) = drive(def, "{}", |_, _| Err(TaskError::new("Any.Error", "")));
    assert_eq!(o, Outcome::Succeeded(v(r#""caught""#)));
    let (o, _) = drive(def, "{}", |_, _| Err(TaskError::new("States.Timeout", "")));
    assert_eq!(failed(o).0, "States.Timeout");
}

#[test]
fn task_timeout_fires_without_a_result() {
    let p = plan(
        r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:r","TimeoutSeconds":10,"End":true}}}"#,
    );
    let mut exec = Execution::new(&p, Start::new("e", v("{}"), 0));
    let mut reqs = Vec::new();
    let Poll::Pending { wake_at } = exec.poll(&p, 0, &mut reqs) else {
        panic!()
    };
    assert_eq!(wake_at, Some(10_000));
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].timeout_ms, Some(10_000));
    assert!(matches!(
        exec.poll(&p, 9_999, &mut reqs),
        Poll::Pending { .. }
    ));
    let Poll::Done(o) = exec.poll(&p, 10_000, &mut reqs) else {
        panic!()
    };
    assert_eq!(failed(o).0, "States.Timeout");
    // A result that arrives too late is ignored.
    exec.complete(reqs[0].token, Ok(v("1")));
}

#[test]
fn waits_do_not_block_and_the_execution_times_out() {
    let p = plan(
        r#"{"StartAt":"W","TimeoutSeconds":30,"States":{"W":{"Type":"Wait","Seconds":20,"Next":"V"},"V":{"Type":"Wait","Seconds":20,"End":true}}}"#,
    );
    let mut exec = Execution::new(&p, Start::new("e", v("{}"), 1_000));
    let mut reqs = Vec::new();
    assert_eq!(
        exec.poll(&p, 1_000, &mut reqs),
        Poll::Pending {
            wake_at: Some(21_000)
        }
    );
    assert_eq!(
        exec.poll(&p, 21_000, &mut reqs),
        Poll::Pending {
            wake_at: Some(31_000)
        }
    );
    let Poll::Done(Outcome::TimedOut { error, .. }) = exec.poll(&p, 31_000, &mut reqs) else {
        panic!()
    };
    assert_eq!(error.as_str(), "States.Timeout");
}

#[test]
fn express_executions_stop_at_five_minutes() {
    let p = plan(r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":3600,"End":true}}}"#);
    let mut exec = Execution::new(&p, Start::new("e", v("{}"), 0));
    assert_eq!(
        exec.poll(&p, 0, &mut Vec::new()),
        Poll::Pending {
            wake_at: Some(300_000)
        }
    );
}

#[test]
fn wait_paths_reject_bad_values_like_aws() {
    let def = r#"{"StartAt":"WaitState","States":{"WaitState":{"Type":"Wait","SecondsPath":"$.s","End":true}}}"#;
    assert_eq!(
        failed(run(def, r#"{"s":1.5}"#)).1,
        "An error occurred while executing the state 'WaitState' (entered at the event id #2). The SecondsPath parameter cannot be parsed as a long value: $.s == 1.5"
    );
    assert!(
        failed(run(def, r#"{"s":-1}"#))
            .1
            .ends_with("references a negative value: $.s == -1")
    );
    let (o, t) = drive(def, r#"{"s":3}"#, |_, _| unreachable!());
    assert_eq!((o, t), (Outcome::Succeeded(v(r#"{"s":3}"#)), 3000));
}

#[test]
fn map_concurrency_is_really_bounded() {
    let p = plan(
        r#"{"StartAt":"M","States":{"M":{"Type":"Map","MaxConcurrency":3,"ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:r","End":true}}},"End":true}}}"#,
    );
    let items: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let mut exec = Execution::new(&p, Start::new("e", v(&format!("[{}]", items.join(","))), 0));
    let mut pending: Vec<TaskRequest> = Vec::new();
    let mut most = 0;
    loop {
        let mut reqs = Vec::new();
        match exec.poll(&p, 0, &mut reqs) {
            Poll::Done(o) => {
                assert_eq!(o, Outcome::Succeeded(v("[0,10,20,30,40,50,60,70,80,90]")));
                break;
            }
            Poll::Pending { .. } => {
                pending.extend(reqs);
                most = most.max(pending.len());
                // Finish the oldest one only.
                let r = pending.remove(0);
                let n = r.input.as_i64().unwrap();
                exec.complete(r.token, Ok(Value::int(n * 10)));
            }
        }
    }
    assert_eq!(most, 3);
}

/// Runs executions of `def` (one per input) together, answering the oldest outstanding task
/// request each round with its input times 10; returns the outcomes and the most task
/// requests outstanding at once.
fn most_outstanding(
    def: &str,
    inputs: &[&str],
    budget: Option<&Arc<MapBudget>>,
) -> (Vec<Outcome>, usize) {
    let p = plan(def);
    let mut execs: Vec<Execution> = inputs
        .iter()
        .map(|i| {
            let mut start = Start::new("e", v(i), 0);
            start.map_budget = budget.cloned();
            Execution::new(&p, start)
        })
        .collect();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; execs.len()];
    let mut pending: Vec<(usize, TaskRequest)> = Vec::new();
    let mut most = 0;
    for _ in 0..100_000 {
        for (k, exec) in execs.iter_mut().enumerate() {
            if outcomes[k].is_some() {
                continue;
            }
            let mut reqs = Vec::new();
            if let Poll::Done(o) = exec.poll(&p, 0, &mut reqs) {
                outcomes[k] = Some(o);
            }
            pending.extend(reqs.into_iter().map(|r| (k, r)));
        }
        most = most.max(pending.len());
        if pending.is_empty() {
            break;
        }
        let (k, r) = pending.remove(0);
        let n = r.input.as_i64().unwrap();
        execs[k].complete(r.token, Ok(Value::int(n * 10)));
    }
    (outcomes.into_iter().map(Option::unwrap).collect(), most)
}

fn tens(n: usize) -> (String, String) {
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let out: Vec<String> = (0..n).map(|i| (i * 10).to_string()).collect();
    (
        format!("[{}]", items.join(",")),
        format!("[{}]", out.join(",")),
    )
}

#[test]
fn map_concurrency_never_exceeds_what_aws_runs() {
    let (input, want) = tens(100);
    let map = |fields: &str| {
        format!(
            r#"{{"StartAt":"M","States":{{"M":{{"Type":"Map"{fields},"ItemProcessor":{{{mode}"StartAt":"T","States":{{"T":{{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:r","End":true}}}}}},"End":true}}}}}}"#,
            mode = if fields.contains("dist") {
                r#""ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"EXPRESS"},"#
            } else {
                ""
            },
            fields = fields.replace(",\"dist\"", "")
        )
    };
    // Inline: 40 at once, whether MaxConcurrency is 0 (no limit of its own) or larger.
    for fields in ["", r#","MaxConcurrency":0"#, r#","MaxConcurrency":500"#] {
        let (outs, most) = most_outstanding(&map(fields), &[&input], None);
        assert_eq!(outs, vec![Outcome::Succeeded(v(&want))], "{fields}");
        assert_eq!(most, 40, "{fields}");
    }
    // Distributed: all 100.
    let (outs, most) = most_outstanding(&map(r#","dist""#), &[&input], None);
    assert_eq!(outs, vec![Outcome::Succeeded(v(&want))]);
    assert_eq!(most, 100);
}

#[test]
fn executions_sharing_a_budget_run_that_many_iterations_beyond_one_per_map() {
    let def = r#"{"StartAt":"M","States":{"M":{"Type":"Map","MaxConcurrency":30,"ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:r","End":true}}},"End":true}}}"#;
    let (input, want) = tens(50);
    let budget = Arc::new(MapBudget::new(10));
    let (outs, most) = most_outstanding(def, &[&input, &input, &input], Some(&budget));
    assert_eq!(outs, vec![Outcome::Succeeded(v(&want)); 3]);
    // 10 tokens, plus the first iteration of each of the three Maps.
    assert_eq!(most, 13);
    assert_eq!(budget.available(), 10, "every token is given back");
    // Without the shared budget each Map runs its own 30.
    let (_, most) = most_outstanding(def, &[&input, &input, &input], None);
    assert_eq!(most, 90);
}

#[test]
fn a_starved_map_takes_tokens_others_give_back_without_waiting_for_its_own_items() {
    let def = r#"{"StartAt":"M","States":{"M":{"Type":"Map","ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:r","End":true}}},"End":true}}}"#;
    let p = plan(def);
    let budget = Arc::new(MapBudget::new(2));
    let start = || {
        let mut s = Start::new("e", v("[1,2,3]"), 0);
        s.map_budget = Some(Arc::clone(&budget));
        Execution::new(&p, s)
    };
    let (mut a, mut b) = (start(), start());
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    a.poll(&p, 0, &mut ra);
    b.poll(&p, 0, &mut rb);
    // A: its first item and two on tokens; B: only its first.
    assert_eq!((ra.len(), rb.len()), (3, 1));
    assert!(!a.newly_starved());
    assert!(b.newly_starved());
    assert!(!b.newly_starved(), "told once");
    for r in ra.drain(..) {
        let n = r.input.as_i64().unwrap();
        a.complete(r.token, Ok(Value::int(n)));
    }
    assert!(matches!(a.poll(&p, 0, &mut ra), Poll::Done(_)));
    assert_eq!(budget.available(), 2);
    // Fed, B starts its other two items while its first is still running.
    b.feed(&p);
    b.poll(&p, 0, &mut rb);
    assert_eq!(rb.len(), 3);
    assert_eq!(budget.available(), 0);
    for r in rb.drain(..) {
        let n = r.input.as_i64().unwrap();
        b.complete(r.token, Ok(Value::int(n * 10)));
    }
    assert_eq!(
        b.poll(&p, 0, &mut rb),
        Poll::Done(Outcome::Succeeded(v("[10,20,30]")))
    );
    assert_eq!(budget.available(), 2);
}

#[test]
fn nested_maps_finish_on_an_empty_budget_and_dropped_executions_give_tokens_back() {
    // Each outer iteration runs an inner Map: with no token to spare, each Map still runs
    // one iteration, so nothing waits forever.
    let def = r#"{"StartAt":"Outer","States":{"Outer":{"Type":"Map","ItemProcessor":{"StartAt":"Inner","States":{
        "Inner":{"Type":"Map","ItemsPath":"$.xs","ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:r","End":true}}},"End":true}}},"End":true}}}"#;
    let input = r#"[{"xs":[1,2,3]},{"xs":[4,5]},{"xs":[6]}]"#;
    let empty = Arc::new(MapBudget::new(0));
    let (outs, most) = most_outstanding(def, &[input], Some(&empty));
    assert_eq!(
        outs,
        vec![Outcome::Succeeded(v("[[10,20,30],[40,50],[60]]"))]
    );
    assert_eq!(most, 1);
    let some = Arc::new(MapBudget::new(3));
    let (outs, _) = most_outstanding(def, &[input], Some(&some));
    assert_eq!(
        outs,
        vec![Outcome::Succeeded(v("[[10,20,30],[40,50],[60]]"))]
    );
    assert_eq!(some.available(), 3);

    // An execution dropped mid-Map (its time limit, a stop) gives its tokens back.
    let (input, _) = tens(20);
    let budget = Arc::new(MapBudget::new(8));
    let mut start = Start::new("e", v(&input), 0);
    start.map_budget = Some(Arc::clone(&budget));
    let p = plan(
        r#"{"StartAt":"M","States":{"M":{"Type":"Map","ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:r","End":true}}},"End":true}}}"#,
    );
    let mut exec = Execution::new(&p, start);
    let mut reqs = Vec::new();
    assert!(matches!(exec.poll(&p, 0, &mut reqs), Poll::Pending { .. }));
    assert_eq!(reqs.len(), 9);
    assert_eq!(budget.available(), 0);
    drop(exec);
    assert_eq!(budget.available(), 8);
}

#[test]
fn map_item_selector_sees_the_item_and_index() {
    assert_eq!(
        ok(
            r#"{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.xs","ItemSelector":{"v.$":"$$.Map.Item.Value","i.$":"$$.Map.Item.Index","t.$":"$.t"},
               "ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}},"End":true}}}"#,
            r#"{"xs":["a","b"],"t":7}"#
        ),
        r#"[{"v":"a","i":0,"t":7},{"v":"b","i":1,"t":7}]"#
    );
}

#[test]
fn nested_map_in_parallel_and_branch_order() {
    assert_eq!(
        ok(
            r#"{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[
                {"StartAt":"M","States":{"M":{"Type":"Map","ItemProcessor":{"StartAt":"Q","States":{"Q":{"Type":"Pass","Parameters":{"x.$":"$"},"End":true}}},"End":true}}},
                {"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":1,"Next":"R"},"R":{"Type":"Pass","Result":"second","End":true}}}]}}}"#,
            "[1,2]"
        ),
        r#"[[{"x":1},{"x":2}],"second"]"#
    );
}

#[test]
fn a_failing_branch_stops_its_siblings_and_is_caught_by_name() {
    let mut seen = Vec::new();
    let (o, _) = drive(
        r#"{"StartAt":"P","States":{"P":{"Type":"Parallel","Next":"Done","Catch":[{"ErrorEquals":["Broken"],"Next":"Caught"}],"Branches":[
            {"StartAt":"F","States":{"F":{"Type":"Fail","Error":"Broken","Cause":"branch 0"}}},
            {"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":5,"Next":"T"},"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:r","End":true}}}]},
            "Done":{"Type":"Succeed"},"Caught":{"Type":"Pass","End":true}}}"#,
        "{}",
        |r, _| {
            seen.push(r.state.to_string());
            Ok(Value::Null)
        },
    );
    assert_eq!(
        o,
        Outcome::Succeeded(v(r#"{"Error":"Broken","Cause":"branch 0"}"#))
    );
    assert!(seen.is_empty(), "the cancelled branch still ran {seen:?}");
}

#[test]
fn tolerated_failures() {
    let def = |tol: &str| {
        format!(
            r#"{{"StartAt":"M","States":{{"M":{{"Type":"Map",{tol}"ItemProcessor":{{"ProcessorConfig":{{"Mode":"DISTRIBUTED","ExecutionType":"EXPRESS"}},"StartAt":"C","States":{{
                "C":{{"Type":"Choice","Choices":[{{"Variable":"$","NumericGreaterThan":1,"Next":"F"}}],"Default":"P"}},
                "F":{{"Type":"Fail","Error":"Big"}},"P":{{"Type":"Pass","End":true}}}}}},"End":true}}}}}}"#
        )
    };
    assert_eq!(failed(run(&def(""), "[1,2,3]")).0, "Big");
    assert_eq!(
        failed(run(&def(r#""ToleratedFailureCount":1,"#), "[1,2,3]")).0,
        "States.ExceedToleratedFailureThreshold"
    );
    assert_eq!(
        ok(&def(r#""ToleratedFailureCount":2,"#), "[1,2,3]"),
        r#"[1,{"Error":"Big"},{"Error":"Big"}]"#
    );
}

#[test]
fn choice_falls_to_default_or_fails() {
    let def = r#"{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"And":[{"Variable":"$.n","NumericGreaterThan":1},{"Not":{"Variable":"$.s","StringMatches":"a*"}}],"Next":"Big"}]},"Big":{"Type":"Succeed"}}}"#;
    assert_eq!(ok(def, r#"{"n":2,"s":"bcd"}"#), r#"{"n":2,"s":"bcd"}"#);
    assert_eq!(
        failed(run(def, r#"{"n":2,"s":"abc"}"#)).0,
        "States.NoChoiceMatched"
    );
    let (e, c) = failed(run(def, r#"{"s":"abc"}"#));
    assert_eq!(e, "States.Runtime");
    assert!(
        c.ends_with(
            "Invalid path '$.n': The choice state's condition path references an invalid value."
        ),
        "{c}"
    );
}

#[test]
fn fail_reads_error_and_cause_from_paths_and_intrinsics() {
    let (e, c) = failed(run(
        r#"{"StartAt":"F","States":{"F":{"Type":"Fail","ErrorPath":"$.e","CausePath":"States.Format('because {}', $.c)"}}}"#,
        r#"{"e":"Custom","c":42}"#,
    ));
    assert_eq!((e.as_str(), c.as_str()), ("Custom", "because 42"));
    assert_eq!(
        run(r#"{"StartAt":"F","States":{"F":{"Type":"Fail"}}}"#, "{}"),
        Outcome::Failed {
            error: None,
            cause: None
        }
    );
}

#[test]
fn the_payload_limit_holds_at_every_boundary() {
    let big = format!(r#""{}""#, "a".repeat(260 * 1024));
    // Input.
    assert_eq!(
        failed(run(
            r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#,
            &big
        ))
        .0,
        "States.DataLimitExceeded"
    );
    // A state's result.
    let def = format!(
        r#"{{"StartAt":"P","States":{{"P":{{"Type":"Pass","Result":{big},"End":true}}}}}}"#
    );
    let (e, c) = failed(run(&def, "{}"));
    assert_eq!(e, "States.DataLimitExceeded");
    assert_eq!(
        c,
        "The state/task 'P' returned a result with a size exceeding the maximum number of bytes service limit."
    );
    // Output grown by intrinsics from a small input: 70 copies of a 4 KB array.
    let copies = vec!["$.r"; 70].join(", ");
    let def = format!(
        r#"{{"StartAt":"P","States":{{"P":{{"Type":"Pass","Parameters":{{"a.$":"States.ArrayRange(1, 1000, 1)"}},"ResultPath":"$.r","Next":"Q"}},
        "Q":{{"Type":"Pass","Parameters":{{"c.$":"States.Array({copies})"}},"End":true}}}}}}"#
    );
    let (e, c) = failed(run(&def, r#"{"x":[1]}"#));
    assert_eq!(e, "States.DataLimitExceeded");
    assert!(c.contains("'Q'"), "{c}");
    // A task's result: catchable, as AWS does for a Lambda's oversized response.
    let (o, _) = drive(
        r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:r","Catch":[{"ErrorEquals":["States.ALL"],"Next":"C"}],"End":true},"C":{"Type":"Pass","End":true}}}"#,
        "{}",
        |_, _| Ok(Value::string(&"x".repeat(300 * 1024))),
    );
    let Outcome::Succeeded(out) = o else { panic!() };
    assert_eq!(
        out.get("Error"),
        Some(&Value::string("States.DataLimitExceeded"))
    );
}

#[test]
fn context_object_fields() {
    let out = ok(
        r#"{"StartAt":"S","States":{"S":{"Type":"Pass","Parameters":{"name.$":"$$.Execution.Name","input.$":"$$.Execution.Input","state.$":"$$.State.Name","retry.$":"$$.State.RetryCount","sm.$":"$$.StateMachine.Name","id.$":"$$.Execution.Id","start.$":"$$.Execution.StartTime"},"End":true}}}"#,
        r#"{"a":1}"#,
    );
    assert_eq!(
        out,
        r#"{"name":"exec","input":{"a":1},"state":"S","retry":0,"sm":"machine","id":"arn:aws:states:us-east-1:123456789012:execution:machine:exec","start":"1970-01-01T00:00:00.000Z"}"#
    );
}

#[test]
fn the_original_input_is_kept_only_when_read() {
    assert!(
        !plan(r#"{"StartAt":"S","States":{"S":{"Type":"Pass","End":true}}}"#).needs_execution_input
    );
    assert!(plan(r#"{"StartAt":"S","States":{"S":{"Type":"Pass","Parameters":{"a.$":"States.JsonToString($$.Execution.Input)"},"End":true}}}"#).needs_execution_input);
}

#[test]
fn hot_types_keep_their_size() {
    // Growth here is a decision: the executor copies these around on every state.
    assert_eq!(std::mem::size_of::<Sized>(), 32);
    assert_eq!(std::mem::size_of::<Fiber>(), 168);
    assert_eq!(std::mem::size_of::<crate::plan::StatePlan>(), 104);
    assert_eq!(std::mem::size_of::<Outcome>(), 56);
}

#[test]
fn an_endless_loop_yields_and_times_out() {
    let p = plan(
        r#"{"StartAt":"A","TimeoutSeconds":2,"States":{
            "A":{"Type":"Pass","Next":"B"},
            "B":{"Type":"Pass","Next":"C"},
            "C":{"Type":"Choice","Choices":[{"Variable":"$.x","IsPresent":true,"Next":"A"}],"Default":"End"},
            "End":{"Type":"Succeed"}}}"#,
    );
    let mut exec = Execution::new(&p, Start::new("e", v(r#"{"x":1}"#), 0));
    let mut reqs = Vec::new();
    // Each poll enters a bounded number of states and asks to be polled again at once.
    assert_eq!(
        exec.poll(&p, 0, &mut reqs),
        Poll::Pending { wake_at: Some(0) }
    );
    assert_eq!(exec.transitions(), STEP_BUDGET as u64);
    assert_eq!(
        exec.poll(&p, 1000, &mut reqs),
        Poll::Pending {
            wake_at: Some(1000)
        }
    );
    let Poll::Done(Outcome::TimedOut { .. }) = exec.poll(&p, 2000, &mut reqs) else {
        panic!("the time limit did not stop the loop")
    };
}

#[test]
fn jsonpath_and_jsonata_states_share_variables_and_data() {
    // JSONPath assigns, JSONata reads and assigns, JSONPath reads again.
    let def = r#"{"StartAt":"P","States":{
        "P":{"Type":"Pass","Parameters":{"n.$":"$.n"},"Assign":{"fromPath.$":"$.n"},"Next":"J"},
        "J":{"Type":"Pass","QueryLanguage":"JSONata",
             "Assign":{"fromJsonata":"{% $fromPath * 10 %}"},
             "Output":{"sum":"{% $states.input.n + $fromPath %}"},"Next":"Q"},
        "Q":{"Type":"Pass","Parameters":{"sum.$":"$.sum","both.$":"States.Array($fromPath, $fromJsonata)"},"End":true}}}"#;
    assert_eq!(ok(def, r#"{"n":4}"#), r#"{"sum":8,"both":[4,40]}"#);
}

#[test]
fn every_expression_of_an_assign_sees_the_values_from_before_the_state() {
    let def = r#"{"QueryLanguage":"JSONata","StartAt":"A","States":{
        "A":{"Type":"Pass","Assign":{"a":1,"b":2},"Next":"Swap"},
        "Swap":{"Type":"Pass","Assign":{"a":"{% $b %}","b":"{% $a %}"},"Output":"{% [$a, $b] %}","Next":"Show"},
        "Show":{"Type":"Pass","Output":"{% [$states.input, [$a, $b]] %}","End":true}}}"#;
    // Output of Swap is computed with the old values too (JSONata's array constructor
    // flattens it into Show's array); Show sees the swap.
    assert_eq!(ok(def, "{}"), "[1,2,[2,1]]");
}

#[test]
fn map_and_parallel_children_read_outer_variables_and_keep_their_own() {
    let def = r#"{"QueryLanguage":"JSONata","StartAt":"Init","States":{
        "Init":{"Type":"Pass","Assign":{"x":"outer","y":1},"Next":"Map"},
        "Map":{"Type":"Map","Items":"{% [1,2,3] %}","ItemProcessor":{"StartAt":"Set","States":{
            "Set":{"Type":"Pass","Assign":{"x":"{% 'inner' & $states.input %}"},"Next":"Read"},
            "Read":{"Type":"Pass","Output":"{% $x & ':' & $string($y) %}","End":true}}},
          "Next":"Par"},
        "Par":{"Type":"Parallel","Arguments":"{% $states.input %}","Branches":[
            {"StartAt":"B1","States":{"B1":{"Type":"Pass","Assign":{"x":"b1"},"Next":"B1r"},
                                      "B1r":{"Type":"Pass","Output":"{% $x %}","End":true}}},
            {"StartAt":"B2","States":{"B2":{"Type":"Pass","Output":"{% $x %}","End":true}}}],
          "Next":"After"},
        "After":{"Type":"Pass","Output":"{% {'map': $states.input, 'x': $x} %}","End":true}}}"#;
    // Iterations shadow `x` for themselves; branch 2 reads the outer `x`, branch 1 its own;
    // after both, the outer `x` is untouched. Parallel's output is the branches' outputs.
    assert_eq!(ok(def, "{}"), r#"{"map":["b1","outer"],"x":"outer"}"#);
    let map_only = r#"{"QueryLanguage":"JSONata","StartAt":"Init","States":{
        "Init":{"Type":"Pass","Assign":{"x":"outer","y":1},"Next":"Map"},
        "Map":{"Type":"Map","Items":"{% [1,2,3] %}","ItemProcessor":{"StartAt":"Set","States":{
            "Set":{"Type":"Pass","Assign":{"x":"{% 'inner' & $states.input %}"},"Next":"Read"},
            "Read":{"Type":"Pass","Output":"{% $x & ':' & $string($y) %}","End":true}}},
          "Next":"After"},
        "After":{"Type":"Pass","Output":"{% {'map': $states.input, 'x': $x} %}","End":true}}}"#;
    assert_eq!(
        ok(map_only, "{}"),
        r#"{"map":["inner1:1","inner2:1","inner3:1"],"x":"outer"}"#
    );
}

#[test]
fn a_distributed_map_iteration_does_not_see_outer_variables() {
    let def = |mode: &str| {
        format!(
            r#"{{"QueryLanguage":"JSONata","StartAt":"Init","States":{{
            "Init":{{"Type":"Pass","Assign":{{"y":1}},"Next":"Map"}},
            "Map":{{"Type":"Map","Items":[0],"ItemProcessor":{{"ProcessorConfig":{{"Mode":"{mode}","ExecutionType":"EXPRESS"}},
              "StartAt":"R","States":{{"R":{{"Type":"Pass","Output":"{{% $exists($y) %}}","End":true}}}}}},"End":true}}}}}}"#
        )
    };
    assert_eq!(ok(&def("INLINE"), "{}"), "[true]");
    assert_eq!(ok(&def("DISTRIBUTED"), "{}"), "[false]");
}

#[test]
fn variables_survive_a_retry_and_a_catch_assigns_instead_of_the_state() {
    let def = r#"{"QueryLanguage":"JSONata","StartAt":"Init","States":{
        "Init":{"Type":"Pass","Assign":{"target":"fn-1","status":"unknown"},"Next":"Call"},
        "Call":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
                "Arguments":{"FunctionName":"{% $target %}","Payload":"{% $states.input %}"},
                "Retry":[{"ErrorEquals":["Flaky"],"IntervalSeconds":1,"MaxAttempts":1}],
                "Catch":[{"ErrorEquals":["Broken"],"Assign":{"error":"{% $states.errorOutput.Error %}"},
                          "Output":"{% {'caught': $states.errorOutput.Cause, 'in': $states.input} %}","Next":"Report"}],
                "Assign":{"status":"{% $states.result.ok %}"},"Output":"{% $states.result %}","Next":"Report"},
        "Report":{"Type":"Pass","Output":"{% {'out': $states.input, 'status': $status, 'error': $exists($error) ? $error : null} %}","End":true}}}"#;
    // First attempt fails with a retried error, the second succeeds: the Arguments of the
    // retry read the same variable, and the state's Assign stores the result.
    let mut calls = Vec::new();
    let (o, _) = drive(def, r#"{"k":1}"#, |r, _| {
        calls.push(to_string(&r.input));
        if calls.len() == 1 {
            Err(TaskError::new("Flaky", "once"))
        } else {
            Ok(v(r#"{"ok":"yes"}"#))
        }
    });
    assert_eq!(calls, [r#"{"FunctionName":"fn-1","Payload":{"k":1}}"#; 2]);
    match o {
        Outcome::Succeeded(out) => assert_eq!(
            to_string(&out),
            r#"{"out":{"ok":"yes"},"status":"yes","error":null}"#
        ),
        other => panic!("{other:?}"),
    }
    // Caught: the catcher's Assign runs, the state's does not (status keeps its value).
    let (o, _) = drive(def, r#"{"k":1}"#, |_, _| {
        Err(TaskError::new("Broken", "why"))
    });
    match o {
        Outcome::Succeeded(out) => assert_eq!(
            to_string(&out),
            r#"{"out":{"caught":"why","in":{"k":1}},"status":"unknown","error":"Broken"}"#
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn assign_limits_and_expression_failures_are_aws_errors() {
    let big = r#"{"QueryLanguage":"JSONata","StartAt":"A","States":{
        "A":{"Type":"Pass","Assign":{"s":"{% $join($map([1..300000], function($i){'x'})) %}"},"End":true}}}"#;
    let (e, c) = failed(run(big, "{}"));
    assert_eq!(e, "States.DataLimitExceeded");
    assert!(c.contains("'A'") && c.contains("262144"), "{c}");
    let undefined = r#"{"QueryLanguage":"JSONata","StartAt":"A","States":{
        "A":{"Type":"Pass","Output":{"r":"{% $nope %}"},"End":true}}}"#;
    assert_eq!(
        failed(run(undefined, "{}")),
        (
            "States.QueryEvaluationError".to_string(),
            "An error occurred while executing the state 'A' (entered at the event id #2). The JSONata expression '$nope' specified for the field 'Output/r' returned nothing (undefined).".to_string()
        )
    );
    let throws = r#"{"QueryLanguage":"JSONata","StartAt":"A","States":{
        "A":{"Type":"Pass","Output":"{% $number('x') + {} %}","End":true}}}"#;
    let (e, c) = failed(run(throws, "{}"));
    assert_eq!(e, "States.QueryEvaluationError");
    assert!(c.contains("threw an error"), "{c}");
    // A JSONPath read of a variable nothing assigned names it.
    let (e, c) = failed(run(
        r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{"v.$":"$nope"},"End":true}}}"#,
        "{}",
    ));
    assert_eq!(e, "States.Runtime");
    assert!(c.contains("$nope"), "{c}");
}

#[test]
fn plain_reads_taken_without_the_evaluator_give_what_jsonata_gives() {
    // Regression guard for the FastRead shortcut: arrays on the way and integers beyond
    // 2^53 go to the evaluator, everything else reads the same either way.
    let def = r#"{"QueryLanguage":"JSONata","StartAt":"A","States":{
        "A":{"Type":"Pass","Assign":{"x":"{% $states.input.o %}"},"Next":"B"},
        "B":{"Type":"Pass","Output":{"mapped":"{% $states.input.a.b %}","big":"{% $states.input.n %}",
             "var":"{% $x.k %}","whole":"{% $states.input.o %}","item":"{% $states.context.State.Name %}"},"End":true}}}"#;
    assert_eq!(
        ok(
            def,
            r#"{"a":[{"b":1},{"b":2}],"n":9007199254740993,"o":{"k":[1,[2]]}}"#
        ),
        r#"{"mapped":[1,2],"big":9.007199254740992E15,"var":[1,[2]],"whole":{"k":[1,[2]]},"item":"B"}"#
    );
    let missing = r#"{"QueryLanguage":"JSONata","StartAt":"A","States":{
        "A":{"Type":"Pass","Output":"{% $states.input.a.b %}","End":true}}}"#;
    assert_eq!(
        failed(run(missing, r#"{"a":5}"#)).0,
        "States.QueryEvaluationError"
    );
}

/// A JSONata machine of one Pass state whose Output is `expr`.
fn output_machine(expr: &str) -> String {
    format!(
        r#"{{"QueryLanguage":"JSONata","StartAt":"A","States":{{"A":{{"Type":"Pass","Output":"{{% {expr} %}}","End":true}}}}}}"#
    )
}

/// What the JSONata evaluator gives: the result's JSON, or `Err` for an error or undefined.
fn evaluator_says(
    reference: &crate::jsonata::Expression,
    bindings: &[(&str, Value)],
) -> Result<String, ()> {
    match reference.evaluate(None, bindings) {
        Ok(Some(v)) => Ok(to_string(&v)),
        Ok(None) | Err(_) => Err(()),
    }
}

/// What a workflow gives, in the same terms as `evaluator_says`.
fn workflow_says(def: &str, input: &str) -> Result<String, ()> {
    match run(def, input) {
        Outcome::Succeeded(v) => Ok(to_string(&v)),
        _ => Err(()),
    }
}

#[test]
fn comparisons_taken_without_the_evaluator_agree_with_it() {
    // Regression guard for the FastCompare shortcut: every pairing of these values under
    // every operator gives what the JSONata evaluator gives (or its error).
    let values = [
        "1",
        "2.5",
        "1.0",
        "\"a\"",
        "\"b\"",
        "\"é\"",
        "true",
        "false",
        "null",
        "[1]",
        "{\"a\":1}",
    ];
    for op in ["=", "!=", "<", "<=", ">", ">="] {
        let expr = format!("$states.input.l {op} $states.input.r");
        let def = output_machine(&expr);
        let reference = crate::jsonata::compile(&format!("$l {op} $r")).unwrap();
        for l in values.iter().map(Some).chain([None]) {
            for r in values.iter().map(Some).chain([None]) {
                let mut input = String::from("{");
                let mut bindings = Vec::new();
                if let Some(l) = l {
                    input.push_str(&format!(r#""l":{l}"#));
                    bindings.push(("l", v(l)));
                }
                if let Some(r) = r {
                    if l.is_some() {
                        input.push(',');
                    }
                    input.push_str(&format!(r#""r":{r}"#));
                    bindings.push(("r", v(r)));
                }
                input.push('}');
                assert_eq!(
                    workflow_says(&def, &input),
                    evaluator_says(&reference, &bindings),
                    "{l:?} {op} {r:?}"
                );
            }
        }
    }
}

#[test]
fn a_choice_state_assigns_whichever_way_it_goes_and_the_matched_rule_wins() {
    let def = r#"{"QueryLanguage":"JSONata","StartAt":"C","States":{
        "C":{"Type":"Choice","Assign":{"a":"state","b":"state"},
             "Choices":[{"Condition":"{% $states.input.go %}","Assign":{"b":"rule"},"Next":"Show"}],
             "Default":"Show"},
        "Show":{"Type":"Pass","Output":"{% [$a, $b] %}","End":true}}}"#;
    assert_eq!(ok(def, r#"{"go":true}"#), r#"["state","rule"]"#);
    assert_eq!(ok(def, r#"{"go":false}"#), r#"["state","state"]"#);
    // The same in JSONPath.
    let def = r#"{"StartAt":"C","States":{
        "C":{"Type":"Choice","Assign":{"a":"state","b":"state"},
             "Choices":[{"Variable":"$.go","BooleanEquals":true,"Assign":{"b":"rule"},"Next":"Show"}],
             "Default":"Show"},
        "Show":{"Type":"Pass","Parameters":{"v.$":"States.Array($a, $b)"},"OutputPath":"$.v","End":true}}}"#;
    assert_eq!(ok(def, r#"{"go":true}"#), r#"["state","rule"]"#);
    assert_eq!(ok(def, r#"{"go":false}"#), r#"["state","state"]"#);
}

#[test]
fn an_item_batcher_groups_items_by_count_bytes_and_path() {
    let def = |batcher: &str| {
        format!(
            r#"{{"StartAt":"M","States":{{"M":{{"Type":"Map","ItemsPath":"$.xs","ItemBatcher":{batcher},"ItemProcessor":{{"ProcessorConfig":{{"Mode":"DISTRIBUTED","ExecutionType":"EXPRESS"}},"StartAt":"P","States":{{"P":{{"Type":"Pass","End":true}}}}}},"End":true}}}}}}"#
        )
    };
    let input = r#"{"xs":["aaaa","bbbb","cccc","dddd","eeee"],"n":2}"#;
    assert_eq!(
        ok(
            &def(r#"{"MaxItemsPerBatch":2,"BatchInput":{"k":"v"}}"#),
            input
        ),
        r#"[{"Items":["aaaa","bbbb"],"BatchInput":{"k":"v"}},{"Items":["cccc","dddd"],"BatchInput":{"k":"v"}},{"Items":["eeee"],"BatchInput":{"k":"v"}}]"#
    );
    // Each item counts its encoded length plus one: 7 bytes for "aaaa".
    assert_eq!(
        ok(&def(r#"{"MaxInputBytesPerBatch":21}"#), input),
        r#"[{"Items":["aaaa","bbbb","cccc"]},{"Items":["dddd","eeee"]}]"#
    );
    assert_eq!(
        ok(
            &def(r#"{"MaxItemsPerBatchPath":"$.n","MaxInputBytesPerBatch":7}"#),
            input
        ),
        r#"[{"Items":["aaaa"]},{"Items":["bbbb"]},{"Items":["cccc"]},{"Items":["dddd"]},{"Items":["eeee"]}]"#
    );
    assert_eq!(
        ok(&def(r#"{"MaxItemsPerBatchPath":"$.n"}"#), input),
        r#"[{"Items":["aaaa","bbbb"]},{"Items":["cccc","dddd"]},{"Items":["eeee"]}]"#
    );
    // The field wins over its path; a path that is not a string is not read.
    assert_eq!(
        ok(
            &def(r#"{"MaxItemsPerBatch":4,"MaxItemsPerBatchPath":"$.n"}"#),
            input
        ),
        r#"[{"Items":["aaaa","bbbb","cccc","dddd"]},{"Items":["eeee"]}]"#
    );
    assert_eq!(
        ok(&def(r#"{"MaxItemsPerBatchPath":3}"#), input),
        r#"[{"Items":["aaaa","bbbb","cccc","dddd","eeee"]}]"#
    );
    assert_eq!(ok(&def("{}"), r#"{"xs":[]}"#), "[]");
}

#[test]
fn an_item_batcher_refuses_bad_limits_with_a_runtime_error() {
    let def = |batcher: &str| {
        format!(
            r#"{{"StartAt":"M","States":{{"M":{{"Type":"Map","ItemsPath":"$.xs","ItemBatcher":{batcher},"Catch":[{{"ErrorEquals":["States.ALL"],"Next":"C"}}],"ItemProcessor":{{"ProcessorConfig":{{"Mode":"DISTRIBUTED","ExecutionType":"EXPRESS"}},"StartAt":"P","States":{{"P":{{"Type":"Pass","End":true}}}}}},"End":true}},"C":{{"Type":"Pass","End":true}}}}}}"#
        )
    };
    // Not even a catcher of States.ALL handles a runtime error.
    let cause = |batcher: &str, input: &str| {
        let (error, cause) = failed(run(&def(batcher), input));
        assert_eq!(error, "States.Runtime", "{cause}");
        let prefix =
            "An error occurred while executing the state 'M' (entered at the event id #2). ";
        cause
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{cause}"))
            .to_string()
    };
    assert_eq!(
        cause(r#"{"MaxItemsPerBatch":0}"#, r#"{"xs":[1]}"#),
        "ItemBatcher.MaxItemsPerBatch must be a positive integer"
    );
    assert_eq!(
        cause(r#"{"MaxInputBytesPerBatch":"10"}"#, r#"{"xs":[1]}"#),
        "ItemBatcher.MaxInputBytesPerBatch must be a positive integer"
    );
    assert_eq!(
        cause(r#"{"MaxItemsPerBatchPath":"$.n"}"#, r#"{"xs":[1],"n":-1}"#),
        "ItemBatcher.MaxItemsPerBatchPath must reference a positive integer"
    );
    // A bad count fails before a bad byte limit is looked at.
    assert_eq!(
        cause(
            r#"{"MaxItemsPerBatch":1.5,"MaxInputBytesPerBatchPath":"$.n"}"#,
            r#"{"xs":[1]}"#
        ),
        "ItemBatcher.MaxItemsPerBatch must be a positive integer"
    );
    assert_eq!(
        cause(r#"{"MaxInputBytesPerBatchPath":"$.n"}"#, r#"{"xs":[1]}"#),
        "ItemBatcher.MaxInputBytesPerBatchPath: No results for path: $['n']"
    );
    // A path that does not parse (validation does not look inside ItemBatcher).
    assert_eq!(
        cause(r#"{"MaxItemsPerBatchPath":"n["}"#, r#"{"xs":[1]}"#),
        "a path must start with '$' (at character 0)"
    );
}

#[test]
fn a_failing_item_selector_stops_the_running_iterations_and_the_map_catches_it() {
    let mut seen = Vec::new();
    let (o, _) = drive(
        r#"{"QueryLanguage":"JSONata","StartAt":"M","States":{"M":{"Type":"Map","Items":"{% $states.input %}","MaxConcurrency":1,
            "ItemSelector":"{% $states.context.Map.Item.Value + 1 %}",
            "Retry":[{"ErrorEquals":["States.QueryEvaluationError"],"MaxAttempts":1,"IntervalSeconds":1}],
            "Catch":[{"ErrorEquals":["States.QueryEvaluationError"],"Next":"Caught","Output":"{% $states.errorOutput.Error %}"}],
            "ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:r","End":true}}},"End":true},
            "Caught":{"Type":"Pass","End":true}}}"#,
        r#"[1,"a",3]"#,
        |r, now| {
            seen.push((r.input.clone(), now));
            Ok(Value::Null)
        },
    );
    assert_eq!(o, Outcome::Succeeded(v(r#""States.QueryEvaluationError""#)));
    // Each attempt runs the first item, then fails at the second: no third item ever runs.
    let inputs: Vec<String> = seen
        .iter()
        .map(|(i, t)| format!("{}@{t}", to_string(i)))
        .collect();
    assert_eq!(inputs, ["2@0", "2@1000"]);
}

#[test]
fn event_ids_count_the_events_of_aws_history_past_a_failed_map() {
    // ExecutionStarted 1, MapStateEntered 2, MapStateStarted 3, MapIterationStarted 4,
    // FailStateEntered 5, MapIterationFailed 6, MapStateFailed 7, MapStateExited 8: the
    // state after the catch enters at 9 (MapStateFailed was not counted, so it said 8).
    let def = r#"{"StartAt":"M","States":{
        "M":{"Type":"Map","ItemProcessor":{"StartAt":"X","States":{"X":{"Type":"Fail","Error":"E"}}},
             "Catch":[{"ErrorEquals":["States.ALL"],"Next":"Bad"}],"End":true},
        "Bad":{"Type":"Pass","InputPath":"$.nope","End":true}}}"#;
    let (_, c) = failed(run(def, "[1]"));
    assert!(c.contains("'Bad' (entered at the event id #9)"), "{c}");
    // A failed Parallel branch has no event of its own; ParallelStateFailed is one.
    let def = r#"{"StartAt":"P","States":{
        "P":{"Type":"Parallel","Branches":[{"StartAt":"X","States":{"X":{"Type":"Fail","Error":"E"}}}],
             "Catch":[{"ErrorEquals":["States.ALL"],"Next":"Bad"}],"End":true},
        "Bad":{"Type":"Pass","InputPath":"$.nope","End":true}}}"#;
    let (_, c) = failed(run(def, "{}"));
    assert!(c.contains("'Bad' (entered at the event id #7)"), "{c}");
}

#[test]
fn state_counts_follow_entries_retries_catches_and_failures() {
    // Try fails twice: retried once, then caught into Recover; Inner of the Map fails for
    // the item 3 only, which the Map tolerates; the last Fail fails the execution.
    let def = r#"{"StartAt":"Try","States":{
        "Try":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Retry":[{"ErrorEquals":["Flaky"],"MaxAttempts":1,"IntervalSeconds":2}],
               "Catch":[{"ErrorEquals":["States.ALL"],"Next":"Recover"}],"Next":"Never"},
        "Never":{"Type":"Pass","End":true},
        "Recover":{"Type":"Pass","Result":[1,2,3],"Next":"Each"},
        "Each":{"Type":"Map","ToleratedFailureCount":1,"ItemProcessor":{"StartAt":"Inner","States":{
            "Inner":{"Type":"Choice","Choices":[{"Variable":"$","NumericEquals":3,"Next":"Bad"}],"Default":"Good"},
            "Good":{"Type":"Pass","End":true},
            "Bad":{"Type":"Fail","Error":"Three"}}},"Next":"Stop"},
        "Stop":{"Type":"Fail","Error":"Done","Cause":"by design"}}}"#;
    let p = plan(def);
    let counts = Arc::new(StateCounts::new(p.states.len()));
    let mut start = Start::new("exec", v("{}"), 0);
    start.counts = Some(Arc::clone(&counts));
    let mut exec = Execution::new(&p, start);
    let mut now = 0;
    let mut reqs = Vec::new();
    let outcome = loop {
        match exec.poll(&p, now, &mut reqs) {
            Poll::Done(o) => break o,
            Poll::Pending { wake_at } => {
                if reqs.is_empty() {
                    now = wake_at.unwrap();
                }
                for r in reqs.drain(..) {
                    exec.complete(r.token, Err(TaskError::new("Flaky", "again")));
                }
            }
        }
    };
    assert_eq!(failed(outcome).0, "Done");
    assert_eq!(
        exec.failed_state(&p).map(|s| s.as_str()),
        Some("Stop"),
        "the top-level state that failed the execution"
    );
    let id = |name: &str| {
        p.states
            .iter()
            .position(|s| s.name.as_str() == name)
            .unwrap()
    };
    let of = |name: &str| counts.state(id(name)).unwrap();
    let t = of("Try");
    assert_eq!(
        (
            t.entered.get(),
            t.retried.get(),
            t.caught.get(),
            t.succeeded.get(),
            t.failed()
        ),
        (1, 1, 1, 0, 0)
    );
    // Retried once after 2 s, so the Try state took 2000 ms (the 1000..2500 bucket).
    assert_eq!(t.duration_sum_ms.get(), 2000);
    assert_eq!(t.duration[10].get(), 1);
    assert_eq!(of("Never").entered.get(), 0);
    assert_eq!(
        (of("Inner").entered.get(), of("Inner").succeeded.get()),
        (3, 3)
    );
    assert_eq!((of("Good").succeeded.get(), of("Bad").failed()), (2, 1));
    assert_eq!(of("Bad").failures(), vec![("Three", 1)]);
    let each = of("Each");
    assert_eq!(
        (each.entered.get(), each.succeeded.get(), each.failed()),
        (1, 1, 0)
    );
    assert_eq!(of("Stop").failures(), vec![("Done", 1)]);
}

#[test]
fn jsonata_reads_of_states_members_agree_with_the_whole_object() {
    // `$states.input...` is read where it lies; `$states` whole is built. Both must say
    // the same, and an expression's own `$states` binding still shadows the slot.
    let def = r#"{"QueryLanguage":"JSONata","StartAt":"P","States":{"P":{"Type":"Pass","Output":{
        "whole":"{% $states.input %}",
        "deep":"{% $states.input.a.b & '|' & $string($states.input.list.v) %}",
        "viaObject":"{% ($s := $states; $s.input.a.b) %}",
        "missing":"{% $exists($states.nothing) or $exists($states.input.nope.deeper) %}",
        "result":"{% $exists($states.result) %}",
        "keys":"{% $keys($states) %}",
        "shadowed":"{% ($states := {'input': {'a': {'b': 'mine'}}}; $states.input.a.b) %}"
      },"End":true}}}"#;
    assert_eq!(
        ok(def, r#"{"a":{"b":"x"},"list":[{"v":1},{"v":2}]}"#),
        r#"{"whole":{"a":{"b":"x"},"list":[{"v":1},{"v":2}]},"deep":"x|[1,2]","viaObject":"x","missing":false,"result":false,"keys":["input","context"],"shadowed":"mine"}"#
    );
}

#[test]
fn booleans_of_comparisons_taken_without_the_evaluator_agree_with_it() {
    // Regression guard for the FastTest shortcut: `and`, `or` and `$not` over comparisons,
    // including ones the shortcut leaves to the evaluator (an object compared: T2010) and
    // ones `and`/`or` never reach, give what the JSONata evaluator gives.
    let exprs = [
        "$states.input.a = 1 and $states.input.b = 'x'",
        "$states.input.a = 1 or $states.input.b = 'x'",
        "$not($states.input.a = 1)",
        "($states.input.a > 0 or $states.input.o < 1) and $not($states.input.b != 'x')",
        "$states.input.a < 1 and $states.input.o < 1",
        "$states.input.a >= 1 or $states.input.o < 1",
        "$not($states.input.missing < 1) or $states.input.a = 1",
    ];
    let inputs = [
        r#"{"a":1,"b":"x","o":{"k":1}}"#,
        r#"{"a":0,"b":"x","o":{"k":1}}"#,
        r#"{"a":2,"b":"y","o":{"k":1}}"#,
        r#"{"b":"x","o":[1]}"#,
        r#"{"a":"1","b":null}"#,
        r#"{}"#,
    ];
    for expr in exprs {
        let def = output_machine(expr);
        let reference = crate::jsonata::compile(&expr.replace("$states.input.", "$i.")).unwrap();
        for input in inputs {
            assert_eq!(
                workflow_says(&def, input),
                evaluator_says(&reference, &[("i", v(input))]),
                "{expr} on {input}"
            );
        }
    }
}

#[test]
fn a_workflow_variable_shadows_the_builtin_of_its_name() {
    // `$not` is the variable once it is assigned (calling it is T1006, as jsonata-js gives
    // for a bound non-function), and the built-in before.
    let def = r#"{"QueryLanguage":"JSONata","StartAt":"Before","States":{
        "Before":{"Type":"Pass","Output":"{% $not(false) %}","Next":"A"},
        "A":{"Type":"Pass","Assign":{"not":5},"Next":"B"},
        "B":{"Type":"Pass","Output":"{% $not(false) %}","End":true}}}"#;
    let (error, cause) = failed(run(def, "{}"));
    assert_eq!(error, "States.QueryEvaluationError");
    assert!(cause.contains("T1006"), "{cause}");
    assert!(cause.contains("'B'"), "{cause}");
    // The same inside `&`, where `$string(x)` has a shortcut of its own.
    let def = r#"{"QueryLanguage":"JSONata","StartAt":"Before","States":{
        "Before":{"Type":"Pass","Output":"{% 'a' & $string(1) %}","Next":"A"},
        "A":{"Type":"Pass","Assign":{"string":"s"},"Next":"B"},
        "B":{"Type":"Pass","Output":"{% 'a' & $string(1) %}","End":true}}}"#;
    let (error, cause) = failed(run(def, "{}"));
    assert_eq!(error, "States.QueryEvaluationError");
    assert!(cause.contains("T1006") && cause.contains("'B'"), "{cause}");
}
