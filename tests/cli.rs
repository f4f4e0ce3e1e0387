//! The `stepstream` binary through its command-line contract: validate diagnostics and exit
//! codes, run results (StartSyncExecution-shaped), both mock formats, input from every
//! source, and the errors a person sees.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use stepstream::json::{self, Value};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stepstream"))
}

/// A temporary file holding `text`, removed when dropped.
struct Temp(PathBuf);

impl Temp {
    fn new(name: &str, text: &str) -> Temp {
        let dir = std::env::temp_dir().join(format!(
            "stepstream-cli-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        Temp(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn run(args: &[&str]) -> Output {
    bin().args(args).stdin(Stdio::null()).output().unwrap()
}

/// Runs `cmd` with `input` on its standard input, capturing standard output and error.
fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Asserts exit code 0, showing stderr when it is not.
fn assert_succeeded(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn stdout_json(o: &Output) -> Value {
    json::parse(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn output_of(result: &Value) -> Value {
    json::parse(result.get("output").unwrap().as_str().unwrap().as_bytes()).unwrap()
}

const HELLO: &str = r#"{"StartAt":"Hello","States":{"Hello":{"Type":"Pass","Parameters":{"greeting.$":"States.Format('hello {}', $.name)"},"End":true}}}"#;

#[test]
fn validate_accepts_a_valid_definition() {
    let def = Temp::new("ok.asl.json", HELLO);
    let o = run(&["validate", def.path()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("valid"));
}

#[test]
fn validate_lists_every_problem_as_json_like_the_aws_api() {
    let def = Temp::new(
        "bad.asl.json",
        r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"Nope"},"B":{"Type":"Task","Resource":"arn:aws:states:::dynamodb:query","End":true}}}"#,
    );
    let o = run(&["validate", def.path(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = stdout_json(&o);
    assert_eq!(v.get("result"), Some(&Value::string("FAIL")));
    let diags = v.get("diagnostics").unwrap().as_array().unwrap();
    let pairs: Vec<(String, String)> = diags
        .iter()
        .map(|d| {
            (
                d.get("code").unwrap().as_str().unwrap().to_string(),
                d.get("location").unwrap().as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("MISSING_TRANSITION_TARGET", "/States/A/Next"),
        ("SCHEMA_VALIDATION_FAILED", "/States/B/Resource"),
        ("MISSING_TRANSITION_TARGET", "/States/B"),
    ] {
        assert!(
            pairs.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {pairs:?}"
        );
    }
    assert!(
        diags
            .iter()
            .all(|d| d.get("severity") == Some(&Value::string("ERROR")))
    );
}

#[test]
fn validate_reports_the_byte_of_a_bad_path_and_not_json_at_all() {
    let def = Temp::new(
        "path.asl.json",
        r#"{"StartAt":"A","States":{"A":{"Type":"Pass","InputPath":"$.a[","End":true}}}"#,
    );
    let o = run(&["validate", def.path()]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("/States/A/InputPath"), "{text}");
    assert!(text.contains("characters 3-4"), "{text}");
    let junk = Temp::new("junk.json", "{\"StartAt\": ");
    let o = run(&["validate", junk.path()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("INVALID_JSON_DESCRIPTION"));
    let o = run(&["validate", "/no/such/file.json"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn express_rules_apply_with_the_express_type() {
    let def = Temp::new(
        "cb.asl.json",
        r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken","End":true}}}"#,
    );
    assert_eq!(run(&["validate", def.path()]).status.code(), Some(0));
    assert_eq!(
        run(&["validate", def.path(), "--type", "express"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn run_prints_a_start_sync_execution_result() {
    let def = Temp::new("hello.asl.json", HELLO);
    let o = run(&["run", def.path(), "--input", r#"{"name":"world"}"#]);
    assert_succeeded(&o);
    let v = stdout_json(&o);
    assert_eq!(v.get("status"), Some(&Value::string("SUCCEEDED")));
    assert_eq!(
        output_of(&v),
        json::parse(br#"{"greeting":"hello world"}"#).unwrap()
    );
    for field in [
        "executionArn",
        "stateMachineArn",
        "name",
        "startDate",
        "stopDate",
        "input",
    ] {
        assert!(
            v.get(field).is_some_and(|f| f.as_str().is_some()),
            "{field}"
        );
    }
    assert!(
        v.get("stateMachineArn")
            .unwrap()
            .as_str()
            .unwrap()
            .ends_with(":stateMachine:hello")
    );
}

#[test]
fn run_reads_input_from_a_file_or_standard_input() {
    let def = Temp::new("hello.asl.json", HELLO);
    let input = Temp::new("in.json", r#"{"name":"file"}"#);
    let o = run(&["run", def.path(), "--input-file", input.path()]);
    assert_eq!(
        output_of(&stdout_json(&o)).get("greeting"),
        Some(&Value::string("hello file"))
    );
    let o = run_with_stdin(bin().args(["run", def.path()]), br#"{"name":"stdin"}"#);
    assert_eq!(
        output_of(&stdout_json(&o)).get("greeting"),
        Some(&Value::string("hello stdin"))
    );
}

#[test]
fn a_failed_execution_exits_1_and_names_error_and_cause() {
    let def = Temp::new(
        "fail.asl.json",
        r#"{"StartAt":"F","States":{"F":{"Type":"Fail","Error":"Order.Invalid","Cause":"no items"}}}"#,
    );
    let o = run(&["run", def.path()]);
    assert_eq!(o.status.code(), Some(1));
    let v = stdout_json(&o);
    assert_eq!(v.get("status"), Some(&Value::string("FAILED")));
    assert_eq!(v.get("error"), Some(&Value::string("Order.Invalid")));
    assert_eq!(v.get("cause"), Some(&Value::string("no items")));
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let def = Temp::new("hello.asl.json", HELLO);
    let o = run(&["run", def.path(), "--input", "{not json"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not valid JSON") && err.contains("column"),
        "{err}"
    );
    let bad = Temp::new("bad.asl.json", r#"{"StartAt":"X","States":{}}"#);
    let o = run(&["run", bad.path()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a valid definition"));
    assert_eq!(run(&["run"]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
}

const ORDER: &str = r#"{"StartAt":"Charge","States":{
  "Charge":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:charge","Retry":[{"ErrorEquals":["Lambda.TooManyRequestsException"],"IntervalSeconds":1,"MaxAttempts":2}],"ResultPath":"$.charge","Next":"Done"},
  "Done":{"Type":"Succeed"}}}"#;

#[test]
fn per_state_mock_files_answer_by_attempt() {
    let def = Temp::new("order.asl.json", ORDER);
    let mocks = Temp::new(
        "mocks.json",
        r#"{"MockedResponses":{"Charge":{"0":{"Throw":{"Error":"Lambda.TooManyRequestsException","Cause":"slow down"}},"1":{"Return":{"charged":42}}}}}"#,
    );
    let o = run(&[
        "run",
        def.path(),
        "--input",
        "{}",
        "--mock-file",
        mocks.path(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        output_of(&stdout_json(&o)),
        json::parse(br#"{"charge":{"charged":42}}"#).unwrap()
    );
}

#[test]
fn step_functions_local_mock_configs_are_read_as_users_write_them() {
    let def = Temp::new("OrderFlow.asl.json", ORDER);
    let config = Temp::new(
        "MockConfigFile.json",
        r#"{
          "StateMachines": {"OrderFlow": {"TestCases": {
            "HappyPath": {"Charge": "ChargeOk"},
            "Declined": {"Charge": "ChargeDeclined"}}}},
          "MockedResponses": {
            "ChargeOk": {"0": {"Return": {"StatusCode": 200, "Payload": {"charged": 7}}}},
            "ChargeDeclined": {"0": {"Throw": {"Error": "Card.Declined", "Cause": "insufficient funds"}}}
          }
        }"#,
    );
    let o = run(&[
        "run",
        def.path(),
        "--mock-config",
        config.path(),
        "--test-case",
        "HappyPath",
    ]);
    assert_succeeded(&o);
    assert_eq!(
        output_of(&stdout_json(&o))
            .get("charge")
            .unwrap()
            .get("StatusCode"),
        Some(&Value::int(200))
    );
    let o = run(&[
        "run",
        def.path(),
        "--mock-config",
        config.path(),
        "--test-case",
        "Declined",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout_json(&o).get("error"),
        Some(&Value::string("Card.Declined"))
    );
    let o = run(&[
        "run",
        def.path(),
        "--mock-config",
        config.path(),
        "--test-case",
        "Nope",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HappyPath"));
}

#[test]
fn an_unbound_task_fails_fast_naming_the_resource() {
    let def = Temp::new("order.asl.json", ORDER);
    let t0 = std::time::Instant::now();
    let o = run(&["run", def.path()]);
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(1));
    let v = stdout_json(&o);
    assert_eq!(v.get("error"), Some(&Value::string("States.Runtime")));
    let cause = v.get("cause").unwrap().as_str().unwrap();
    assert!(
        cause.contains("arn:aws:lambda:us-east-1:123456789012:function:charge"),
        "{cause}"
    );
}

#[test]
fn run_process_and_bench_take_resource_bindings_from_config() {
    // A Lambda endpoint where nothing listens: the binding is used (the error is the Lambda
    // client's), where without --config the resource would be unbound (States.Runtime).
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let config = Temp::new(
        "resources.toml",
        &format!(
            r#"
[[resources]]
resource = "arn:aws:lambda:*"
kind = "lambda"
endpoint = "http://127.0.0.1:{port}"
"#
        ),
    );
    let def = Temp::new("order.asl.json", ORDER);
    let o = run(&["run", def.path(), "--config", config.path()]);
    assert_eq!(o.status.code(), Some(1));
    let v = stdout_json(&o);
    assert_eq!(
        v.get("error"),
        Some(&Value::string("Lambda.SdkClientException"))
    );
    // process with a definition and --config: standard input through the bindings.
    let o = run_with_stdin(
        bin().args(["process", def.path(), "--config", config.path()]),
        b"{\"amount\":1}\n",
    );
    assert_succeeded(&o);
    let dead = String::from_utf8_lossy(&o.stderr);
    assert!(dead.contains("Lambda.SdkClientException"), "{dead}");
    // Credentials from the environment never reach outputs, dead letters or logs.
    let http_config = Temp::new(
        "http.toml",
        "[[resources]]\nresource = \"arn:aws:states:::http:invoke\"\nkind = \"http\"\nheaders = { Authorization = \"Bearer ${STEPSTREAM_TEST_TOKEN}\" }\n",
    );
    let http_def = Temp::new(
        "call.asl.json",
        &format!(
            r#"{{"StartAt":"C","States":{{"C":{{"Type":"Task","Resource":"arn:aws:states:::http:invoke",
            "Parameters":{{"ApiEndpoint":"http://127.0.0.1:{port}/x","Method":"GET"}},"End":true}}}}}}"#
        ),
    );
    let o = run_with_stdin(
        bin()
            .args(["process", http_def.path(), "--config", http_config.path()])
            .env("STEPSTREAM_TEST_TOKEN", "tok-3141592653"),
        b"{}\n{}\n",
    );
    assert_succeeded(&o);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(all.contains("States.Http.Socket"), "{all}");
    assert!(!all.contains("tok-3141592653"), "{all}");
    // A problem in the bindings is a usage error naming the key.
    let bad = Temp::new(
        "bad.toml",
        "[[resources]]\nresource = \"x\"\nkind = \"lambda\"\n",
    );
    let o = run(&[
        "bench",
        def.path(),
        "--input-file",
        def.path(),
        "--config",
        bad.path(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("resources[0].endpoint: required"), "{err}");
}

/// A TLS file that cannot be used is reported before anything runs, by every command that
/// takes --config, with the file, the resource, the key and the path; the config itself is
/// plain data and reads it only when the resources are built.
#[test]
fn unusable_tls_files_are_reported_before_anything_starts() {
    let def = Temp::new("order.asl.json", ORDER);
    let resources = "[[resources]]\nresource = \"arn:aws:lambda:*\"\nkind = \"lambda\"\n\
                     endpoint = \"https://127.0.0.1:1\"\nca_file = \"/nonexistent/ca.pem\"\n";
    let bindings = Temp::new("tls.toml", resources);
    let w1 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/workflows/w1_transform.asl.json"
    );
    // The Kafka pipelines of a whole file: refused before any broker is contacted.
    let pipelines = Temp::new(
        "pipelines.toml",
        &format!(
            "[kafka]\nbrokers = \"127.0.0.1:1\"\n[http]\nlisten = \"\"\n\
             [[pipelines]]\nname = \"p\"\ndefinition = \"{w1}\"\ninput_topic = \"in\"\n\
             output_topic = \"out\"\ndead_letter_topic = \"dlq\"\n{resources}"
        ),
    );
    let runs: [(&str, &Temp, Vec<&str>); 4] = [
        ("run", &bindings, vec!["run", def.path()]),
        ("process", &bindings, vec!["process", def.path()]),
        (
            "bench",
            &bindings,
            vec!["bench", def.path(), "--input-file", def.path()],
        ),
        ("process", &pipelines, vec!["process"]),
    ];
    for (command, cfg, mut args) in runs {
        args.extend(["--config", cfg.path()]);
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        for want in [
            format!("stepstream {command}: {} is not a usable configuration:", cfg.path()),
            "  [[resources]] 'arn:aws:lambda:*': resources[0].ca_file: cannot read '/nonexistent/ca.pem': ".to_string(),
        ] {
            assert!(err.contains(&want), "{args:?}: missing {want:?} in:\n{err}");
        }
        assert!(!err.contains("\"event\""), "{args:?}: started: {err}");
    }
}

#[test]
fn bench_reports_json_with_percentiles() {
    let def = Temp::new("hello.asl.json", HELLO);
    let input = Temp::new("event.json", r#"{"eventId":"evt-000000","name":"x"}"#);
    // One driver per thread, then through the streaming pipeline's shards and channels.
    for pipeline in [false, true] {
        let mut args = vec![
            "bench",
            def.path(),
            "--input-file",
            input.path(),
            "--executions",
            "2000",
            "--shards",
            "2",
            "--concurrency",
            "4",
            "--format",
            "json",
        ];
        if pipeline {
            args.push("--pipeline");
        }
        let o = run(&args);
        assert_succeeded(&o);
        let v = stdout_json(&o);
        assert_eq!(v.get("executions"), Some(&Value::int(2000)), "{pipeline}");
        assert_eq!(
            v.get("outcomes").unwrap().get("SUCCEEDED"),
            Some(&Value::int(2000)),
            "{pipeline}"
        );
        let lat = v.get("latency_us").unwrap();
        for p in ["p50", "p90", "p99", "p999", "max"] {
            assert!(
                lat.get(p).unwrap().as_f64().unwrap() > 0.0,
                "{p} {pipeline}"
            );
        }
        assert!(v.get("executions_per_second").unwrap().as_f64().unwrap() > 0.0);
        assert_eq!(v.get("max_start_lag_us"), None);
    }
}

#[test]
fn bench_with_a_rate_paces_the_starts() {
    let def = Temp::new("hello.asl.json", HELLO);
    let input = Temp::new("event.json", r#"{"eventId":"evt-000000","name":"x"}"#);
    let o = run(&[
        "bench",
        def.path(),
        "--input-file",
        input.path(),
        "--executions",
        "1000",
        "--rate",
        "2000",
        "--format",
        "json",
    ]);
    assert_succeeded(&o);
    let v = stdout_json(&o);
    // 1000 executions at 2000 a second cannot finish before half a second has passed, however
    // fast each one is (without --rate they take a few milliseconds).
    let seconds = v.get("seconds").unwrap().as_f64().unwrap();
    assert!(seconds >= 0.45, "{seconds} s");
    assert!(v.get("max_start_lag_us").unwrap().as_f64().unwrap() >= 0.0);
}

#[test]
fn process_runs_every_line_keeping_order_and_dead_letters_apart() {
    let def = Temp::new("hello.asl.json", HELLO);
    let dlq = Temp::new("dead.jsonl", "");
    let mut child = bin()
        .args([
            "process",
            def.path(),
            "--shards",
            "2",
            "--dead-letters",
            dlq.path(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for i in 0..500 {
        if i == 100 {
            input.push_str("{broken\n");
        } else {
            input.push_str(&format!("{{\"name\":\"n{i}\"}}\n"));
        }
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_succeeded(&o);
    let lines: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let want: Vec<String> = (0..500)
        .filter(|i| *i != 100)
        .map(|i| format!("{{\"greeting\":\"hello n{i}\"}}"))
        .collect();
    assert_eq!(lines, want);
    let dead = std::fs::read_to_string(&dlq.0).unwrap();
    let envelope = json::parse(dead.trim().as_bytes()).unwrap();
    assert_eq!(
        envelope.get("error"),
        Some(&Value::string("stepstream.InvalidJSON"))
    );
    assert_eq!(envelope.get("input"), Some(&Value::string("{broken")));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("500 record(s): 499 output(s), 1 dead letter(s)")
    );
}

#[test]
fn process_writes_an_execution_log_at_the_level_asked_for() {
    let def = Temp::new("hello.asl.json", HELLO);
    let log = Temp::new("executions.log", "");
    let input = "{\"name\":\"a\"}\n{\"name\":\"b\"}\n";
    let o = run_with_stdin(
        bin().args([
            "process",
            def.path(),
            "--log-level",
            "ALL",
            "--log-execution-data",
            "--execution-log",
            log.path(),
        ]),
        input.as_bytes(),
    );
    assert_succeeded(&o);
    let lines: Vec<Value> = std::fs::read_to_string(&log.0)
        .unwrap()
        .lines()
        .map(|l| json::parse(l.as_bytes()).unwrap())
        .collect();
    let field = |l: &Value, k: &str| l.get(k).and_then(Value::as_str).unwrap().to_string();
    let second: Vec<&Value> = lines
        .iter()
        .filter(|l| field(l, "execution_arn").ends_with(":execution:hello:stdin-0-1"))
        .collect();
    let types: Vec<String> = second.iter().map(|l| field(l, "type")).collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    let details = second[3].get("details").unwrap();
    assert_eq!(
        details.get("output").and_then(Value::as_str),
        Some(r#"{"greeting":"hello b"}"#)
    );
    assert_eq!(lines.len(), 8);
    // Without --log-level nothing is logged; an unknown level is a usage error.
    let quiet = Temp::new("quiet.log", "");
    let o = run_with_stdin(
        bin().args(["process", def.path(), "--execution-log", quiet.path()]),
        input.as_bytes(),
    );
    assert_succeeded(&o);
    assert_eq!(std::fs::read_to_string(&quiet.0).unwrap(), "");
    let o = run(&["process", def.path(), "--log-level", "LOUD"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ALL"));
}

/// librdkafka's log reaches the JSON log: its errors always, the lines of its `debug` option
/// when that is set (rdkafka would otherwise drop them, taking its level from an idle `log`).
#[test]
fn librdkafka_logs_reach_the_json_log_and_debug_turns_on_its_detail() {
    let def = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/workflows/w1_transform.asl.json"
    );
    // Runs the process until a line of its log matches `seen` (no fixed sleep), stops it
    // with SIGTERM, and returns its whole log.
    let stderr_of = |options: &str, seen: &str| {
        let cfg = Temp::new(
            "stepstream.toml",
            &format!(
                "[kafka]\nbrokers = \"127.0.0.1:1\"\n[kafka.options]\n{options}\n[http]\nlisten = \"\"\n\
                 [[pipelines]]\nname = \"p\"\ndefinition = \"{def}\"\ninput_topic = \"in\"\n\
                 output_topic = \"out\"\ndead_letter_topic = \"dlq\"\n"
            ),
        );
        let mut child = bin()
            .args(["process", "--config", cfg.path()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut log = String::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !log.contains(seen) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    log.push_str(&line);
                    log.push('\n');
                }
                Err(_) => break,
            }
        }
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        reader.join().unwrap();
        for line in rx.try_iter() {
            log.push_str(&line);
            log.push('\n');
        }
        assert_eq!(status.code(), Some(0), "SIGTERM stops it cleanly:\n{log}");
        log
    };
    let plain = stderr_of("", r#""facility":"FAIL""#);
    assert!(
        plain.contains(r#""level":"ERROR","event":"librdkafka","facility":"FAIL""#)
            && plain.contains("127.0.0.1:1"),
        "a refused connection is logged with librdkafka's own words:\n{plain}"
    );
    assert!(!plain.contains(r#""level":"DEBUG""#), "{plain}");
    let debug = stderr_of("\"debug\" = \"broker\"", r#""level":"DEBUG""#);
    assert!(
        debug.contains(r#""level":"DEBUG","event":"librdkafka""#),
        "debug lines appear when asked for:\n{}",
        &debug[..debug.len().min(2000)]
    );
}

#[test]
fn a_kafka_option_librdkafka_refuses_stops_the_start_with_what_to_check() {
    let def = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/workflows/w1_transform.asl.json"
    );
    let cfg = Temp::new(
        "stepstream.toml",
        &format!(
            "[kafka]\nbrokers = \"127.0.0.1:1\"\n[kafka.options]\n\"no.such.option\" = \"1\"\n\
             [http]\nlisten = \"\"\n[[pipelines]]\nname = \"p\"\ndefinition = \"{def}\"\n\
             input_topic = \"in\"\noutput_topic = \"out\"\ndead_letter_topic = \"dlq\"\n"
        ),
    );
    let out = bin()
        .args(["process", "--config", cfg.path()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot create the Kafka consumer")
            && err.contains("no.such.option")
            && err.contains("check [kafka] brokers and options"),
        "{err}"
    );
}

/// `stepstream jsonata EXPR --format json`: its contract with the JSONata suite's runner.
fn jsonata(args: &[&str]) -> (Value, i32) {
    let o = run(&[&["jsonata"], args, &["--format", "json"]].concat());
    (stdout_json(&o), o.status.code().unwrap_or(-1))
}

#[test]
fn jsonata_prints_result_undefined_or_error_with_exit_codes() {
    let input = Temp::new("in.json", r#"{"a":[{"b":1},{"b":2}],"name":"x"}"#);
    let bindings = Temp::new("b.json", r#"{"n":10}"#);
    let (out, code) = jsonata(&[
        "$sum(a.b) + $n",
        "--input-file",
        input.path(),
        "--bindings-file",
        bindings.path(),
    ]);
    assert_eq!((out, code), (json::parse(br#"{"result":13}"#).unwrap(), 0));
    let (out, code) = jsonata(&["nothing", "--input-file", input.path()]);
    assert_eq!(
        (out, code),
        (json::parse(br#"{"undefined":true}"#).unwrap(), 0)
    );
    let (out, code) = jsonata(&["name + 1", "--input-file", input.path()]);
    assert_eq!(code, 1);
    assert_eq!(
        out.get("error").unwrap().get("code").unwrap().as_str(),
        Some("T2001")
    );
    // A syntax error carries its position in the expression.
    let (out, _) = jsonata(&["[1, 2"]);
    let err = out.get("error").unwrap();
    assert_eq!(err.get("code").unwrap().as_str(), Some("S0203"));
    assert_eq!(err.get("position").unwrap().as_i64(), Some(5));
}

#[test]
fn jsonata_takes_an_expression_starting_with_a_minus_and_input_on_stdin() {
    let (out, code) = jsonata(&["-42"]);
    assert_eq!((out, code), (json::parse(br#"{"result":-42}"#).unwrap(), 0));
    let o = run_with_stdin(
        bin().args(["jsonata", "site.region"]),
        br#"{"site":{"region":"eu"}}"#,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "\"eu\"\n");
    // Plain output prints nothing for undefined.
    let o = run_with_stdin(bin().args(["jsonata", "missing"]), b"{}");
    assert!(o.status.success() && o.stdout.is_empty());
}

#[test]
fn jsonata_bad_usage_exits_2_and_step_functions_mode_has_no_eval() {
    let o = run(&["jsonata", "1", "--input-file", "/no/such/file.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/file.json"));
    let bad = Temp::new("bad.json", "{not json");
    let o = run(&["jsonata", "1", "--input-file", bad.path()]);
    assert_eq!(o.status.code(), Some(2));
    let (out, _) = jsonata(&["$eval('1 + 1')"]);
    assert_eq!(out.get("result").and_then(Value::as_i64), Some(2));
    let (out, code) = jsonata(&["$eval('1 + 1')", "--step-functions"]);
    assert_eq!(code, 1);
    assert!(out.get("error").is_some());
    // Runaway recursion ends with U1001 rather than a crash.
    let (out, code) = jsonata(&["($f := function($n){ 1 + $f($n) }; $f(1))"]);
    assert_eq!(code, 1);
    assert_eq!(
        out.get("error").unwrap().get("code").unwrap().as_str(),
        Some("U1001")
    );
}

/// W1-like JSONata workflow with a Task: `Arguments` is what the resource receives.
const JSONATA_ORDER: &str = r#"{"QueryLanguage":"JSONata","StartAt":"Prepare","States":{
  "Prepare":{"Type":"Pass","Assign":{"customer":"{% $states.input.customer %}"},"Next":"Charge"},
  "Charge":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
    "Arguments":{"FunctionName":"charge","Payload":{"who":"{% $customer %}","cents":"{% $states.input.amount * 100 %}"}},
    "Catch":[{"ErrorEquals":["Card.Declined"],"Output":{"declined":"{% $customer %}","why":"{% $states.errorOutput.Cause %}"},"Next":"Done"}],
    "Output":{"customer":"{% $customer %}","charged":"{% $states.result.Payload.charged %}"},"Next":"Done"},
  "Done":{"Type":"Succeed"}}}"#;

#[test]
fn jsonata_workflows_run_with_mock_configs_and_catch_with_variables() {
    let def = Temp::new("JOrder.asl.json", JSONATA_ORDER);
    let config = Temp::new(
        "JMockConfigFile.json",
        r#"{
          "StateMachines": {"JOrder": {"TestCases": {
            "HappyPath": {"Charge": "ChargeOk"},
            "Declined": {"Charge": "ChargeDeclined"}}}},
          "MockedResponses": {
            "ChargeOk": {"0": {"Return": {"StatusCode": 200, "Payload": {"charged": 700}}}},
            "ChargeDeclined": {"0": {"Throw": {"Error": "Card.Declined", "Cause": "insufficient funds"}}}
          }
        }"#,
    );
    let input = r#"{"customer":"ada","amount":7}"#;
    let o = run(&[
        "run",
        def.path(),
        "--input",
        input,
        "--mock-config",
        config.path(),
        "--test-case",
        "HappyPath",
    ]);
    assert_succeeded(&o);
    assert_eq!(
        json::to_string(&output_of(&stdout_json(&o))),
        r#"{"customer":"ada","charged":700}"#
    );
    let o = run(&[
        "run",
        def.path(),
        "--input",
        input,
        "--mock-config",
        config.path(),
        "--test-case",
        "Declined",
    ]);
    assert_succeeded(&o);
    assert_eq!(
        json::to_string(&output_of(&stdout_json(&o))),
        r#"{"declined":"ada","why":"insufficient funds"}"#
    );
}

#[test]
fn process_runs_jsonata_and_dead_letters_query_evaluation_errors() {
    let def = Temp::new(
        "jsonata-hello.asl.json",
        r#"{"QueryLanguage":"JSONata","StartAt":"Greet","States":{
          "Greet":{"Type":"Pass","Assign":{"n":"{% $states.input.name %}"},"Next":"Out"},
          "Out":{"Type":"Pass","Output":{"greeting":"{% 'hello ' & $n %}"},"End":true}}}"#,
    );
    let dlq = Temp::new("jsonata-dead.jsonl", "");
    let mut child = bin()
        .args(["process", def.path(), "--dead-letters", dlq.path()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"name\":\"a\"}\n{\"nameless\":true}\n{\"name\":\"b\"}\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_succeeded(&o);
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "{\"greeting\":\"hello a\"}\n{\"greeting\":\"hello b\"}\n"
    );
    let dead = std::fs::read_to_string(&dlq.0).unwrap();
    let envelope = json::parse(dead.trim().as_bytes()).unwrap();
    assert_eq!(
        envelope.get("error"),
        Some(&Value::string("States.QueryEvaluationError"))
    );
    let cause = envelope.get("cause").and_then(|c| c.as_str()).unwrap_or("");
    assert!(
        cause.contains("'$states.input.name'") && cause.contains("'Assign/n'"),
        "{cause}"
    );
}

#[test]
fn bench_compares_state_counts_on_and_off_in_one_run() {
    let def = Temp::new("hello.asl.json", HELLO);
    let input = Temp::new("event.json", r#"{"eventId":"evt-000000","name":"x"}"#);
    let o = run(&[
        "bench",
        def.path(),
        "--input-file",
        input.path(),
        "--executions",
        "2000",
        "--state-counts",
        "compare",
        "--format",
        "json",
    ]);
    assert_succeeded(&o);
    let v = stdout_json(&o);
    assert_eq!(v.get("slices"), Some(&Value::int(10)));
    assert_eq!(v.get("executions_per_mode"), Some(&Value::int(2000)));
    for key in ["slices_on_per_second", "slices_off_per_second"] {
        let slices = v.get(key).and_then(|s| s.as_array()).unwrap();
        assert_eq!(slices.len(), 10, "{key}");
        assert!(slices.as_slice().iter().all(|r| r.as_f64().unwrap() > 0.0));
    }
    assert!(v.get("cost").unwrap().as_f64().is_some());
    // Compare is the in-process bench only.
    let o = run(&[
        "bench",
        def.path(),
        "--input-file",
        input.path(),
        "--pipeline",
        "--state-counts",
        "compare",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("in-process bench only"));
}

/// An HTTP GET to `addr`: the status code and the body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::Read;
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    write!(sock, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    sock.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

#[test]
fn process_on_standard_input_serves_the_workflow_page_and_its_counts() {
    use std::io::{BufRead, BufReader};
    let def = Temp::new(
        "pick.asl.json",
        r#"{"StartAt":"Pick","States":{
            "Pick":{"Type":"Choice","Choices":[{"Variable":"$.ok","BooleanEquals":true,"Next":"Fine"}],"Default":"Boom"},
            "Fine":{"Type":"Pass","End":true},
            "Boom":{"Type":"Fail","Error":"Bad","Cause":"not ok"}}}"#,
    );
    let mut child = bin()
        .args(["process", def.path(), "--http-listen", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no http_listening line"
        );
        if line.contains("\"http_listening\"") {
            let v = json::parse(line.trim().as_bytes()).unwrap();
            break v.get("address").unwrap().as_str().unwrap().to_string();
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"{\"ok\":true}\n{\"ok\":false}\n{\"ok\":true}\n")
        .unwrap();
    stdin.flush().unwrap();
    // The counts appear while the input is still open.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let states = loop {
        let (code, body) = http_get(&addr, "/api/pipelines/pick/states");
        assert_eq!(code, 200, "{body}");
        let v = json::parse(body.as_bytes()).unwrap();
        let entered = |name: &str| {
            v.get("states")
                .and_then(|s| s.as_array())
                .and_then(|a| {
                    a.as_slice()
                        .iter()
                        .find(|s| s.get("name").and_then(|n| n.as_str()) == Some(name))
                        .cloned()
                })
                .unwrap()
        };
        if entered("Pick").get("entered") == Some(&Value::int(3)) {
            break (entered("Fine"), entered("Boom"), v);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "counts never reached 3: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let (fine, boom, v) = states;
    assert_eq!(fine.get("succeeded"), Some(&Value::int(2)));
    assert_eq!(boom.get("failed"), Some(&Value::int(1)));
    let dead = v.get("dead_letters").and_then(|d| d.as_array()).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead.as_slice()[0].get("state"),
        Some(&Value::string("Boom"))
    );
    assert_eq!(
        dead.as_slice()[0]
            .get("source")
            .and_then(|s| s.get("offset")),
        Some(&Value::int(1))
    );
    let (code, page) = http_get(&addr, "/");
    assert_eq!(code, 200);
    assert!(page.contains("data-pipeline=\"pick\""), "{page}");
    // The workflow is drawn in the page, every state by its name.
    for state in ["Pick", "Fine", "Boom"] {
        assert!(page.contains(&format!("data-state=\"{state}\"")), "{state}");
    }
    let (code, metrics) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("stepstream_state_entered_total{pipeline=\"pick\",state=\"Pick\"} 3"));
    assert_eq!(http_get(&addr, "/ready").0, 200);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
}

#[test]
fn the_operations_listener_stays_on_loopback_without_credentials() {
    let def = Temp::new("hello.asl.json", HELLO);
    let o = run_with_stdin(
        bin().args(["process", def.path(), "--http-listen", "0.0.0.0:0"]),
        b"{}\n",
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is not a loopback address") && err.contains("http.credentials"),
        "{err}"
    );
}
