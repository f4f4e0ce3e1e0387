//! `stepstream serve` through the AWS JSON 1.0 protocol, on a real server on port 0: the
//! protocol's framing and errors, the state machine and execution actions, the limits, and a
//! restart with `--state-dir`. (The boto3 and AWS CLI suite is tests/api/clients.py.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use stepstream::json::{self, Value};

/// A running `stepstream serve`, stopped when dropped.
struct Server {
    child: Child,
    addr: String,
    /// The operations listener's address, when started with --http-listen.
    ops: Option<String>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--shards", "1"];
        args.extend_from_slice(extra);
        Server::spawn(&args)
    }

    /// Runs the binary with `args` and waits for the API's address in its log.
    fn spawn(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stepstream"))
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut ops = None;
        let addr = loop {
            let line = lines.next().expect("serve logs its address").unwrap();
            if line.contains("\"http_listening\"") {
                let v = json::parse(line.as_bytes()).unwrap();
                ops = v
                    .get("address")
                    .and_then(|a| a.as_str())
                    .map(str::to_string);
            }
            if line.contains("api_listening")
                && let Some(i) = line.find("http://")
            {
                let rest = &line[i + 7..];
                break rest[..rest.find('"').unwrap()].to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr, ops }
    }

    /// Sends raw bytes, returns (status, headers lowercased, body).
    fn raw(&self, request: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.write_all(request).unwrap();
        let mut reader = BufReader::new(s);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        (status, headers, body)
    }

    /// Calls an action; (HTTP status, the JSON answer).
    fn call(&self, action: &str, body: &str) -> (u16, Value) {
        let req = format!(
            "POST / HTTP/1.1\r\nHost: sync-states.us-east-1.amazonaws.com\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: AWSStepFunctions.{action}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (status, headers, body) = self.raw(req.as_bytes());
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "x-amzn-requestid" && v.len() == 36),
            "{headers:?}"
        );
        (status, json::parse(&body).unwrap())
    }

    fn ok(&self, action: &str, body: &str) -> Value {
        let (status, v) = self.call(action, body);
        assert_eq!(status, 200, "{action}: {v:?}");
        v
    }

    /// The `__type` and message of an error answer (HTTP 400).
    fn error(&self, action: &str, body: &str) -> (String, String) {
        let (status, v) = self.call(action, body);
        assert_eq!(status, 400, "{action}: {v:?}");
        (text(&v, "__type"), text(&v, "message"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {field} in {v:?}"))
        .to_string()
}

const ROLE: &str = "arn:aws:iam::123456789012:role/stepstream";

fn create(server: &Server, name: &str, definition: &str, kind: &str) -> String {
    let body = Value::object_from([
        ("name", Value::string(name)),
        ("definition", Value::string(definition)),
        ("roleArn", Value::string(ROLE)),
        ("type", Value::string(kind)),
    ]);
    let v = server.ok("CreateStateMachine", &json::to_string(&body));
    text(&v, "stateMachineArn")
}

fn start_body(arn: &str, input: &str) -> String {
    json::to_string(&Value::object_from([
        ("stateMachineArn", Value::string(arn)),
        ("input", Value::string(input)),
    ]))
}

const PASS: &str = r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"in.$":"$","id.$":"$$.Execution.Id"},"End":true}}}"#;

#[test]
fn start_sync_execution_runs_the_machine_and_answers_in_the_service_shape() {
    let server = Server::start(&[]);
    let arn = create(&server, "sync", PASS, "EXPRESS");
    assert_eq!(
        arn,
        "arn:aws:states:us-east-1:123456789012:stateMachine:sync"
    );
    let v = server.ok("StartSyncExecution", &start_body(&arn, r#"{"a":1}"#));
    assert_eq!(text(&v, "status"), "SUCCEEDED");
    let exec_arn = text(&v, "executionArn");
    assert!(
        exec_arn.starts_with("arn:aws:states:us-east-1:123456789012:express:sync:"),
        "{exec_arn}"
    );
    // The workflow sees the ARN the caller gets back.
    let output = json::parse(text(&v, "output").as_bytes()).unwrap();
    assert_eq!(output.get("id"), Some(&Value::string(&exec_arn)));
    assert_eq!(output.get("in"), Some(&json::parse(br#"{"a":1}"#).unwrap()));
    assert_eq!(text(&v, "input"), r#"{"a":1}"#);
    assert!(v.get("startDate").and_then(Value::as_f64).unwrap() > 1.7e9);
    let billing = v.get("billingDetails").unwrap();
    assert_eq!(billing.get("billedMemoryUsedInMB"), Some(&Value::int(64)));
    assert_eq!(
        billing.get("billedDurationInMilliseconds"),
        Some(&Value::int(100))
    );

    let fail = r#"{"StartAt":"F","States":{"F":{"Type":"Fail","Error":"Order.Invalid","Cause":"no items"}}}"#;
    let arn = create(&server, "fails", fail, "EXPRESS");
    let v = server.ok("StartSyncExecution", &start_body(&arn, "{}"));
    assert_eq!(
        (text(&v, "status"), text(&v, "error"), text(&v, "cause")),
        ("FAILED".into(), "Order.Invalid".into(), "no items".into())
    );
    assert_eq!(v.get("output"), None);
}

#[test]
fn executions_are_refused_with_the_services_errors() {
    let server = Server::start(&[]);
    let express = create(&server, "e", PASS, "EXPRESS");
    let standard = create(&server, "s", PASS, "STANDARD");
    let (code, msg) = server.error("StartSyncExecution", &start_body(&standard, "{}"));
    assert_eq!(code, "StateMachineTypeNotSupported", "{msg}");
    let (code, msg) = server.error("StartSyncExecution", &start_body(&express, "{not json"));
    assert_eq!(code, "InvalidExecutionInput", "{msg}");
    // The shard's parse error, in the service's words (not the stream's dead-letter cause).
    assert!(
        msg.starts_with("Invalid State Machine Execution Input: '")
            && !msg.contains("The record is not valid JSON"),
        "{msg}"
    );
    let big = format!("\"{}\"", "x".repeat(262_144));
    let (code, msg) = server.error("StartSyncExecution", &start_body(&express, &big));
    assert_eq!(code, "InvalidExecutionInput", "{msg}");
    assert!(msg.contains("262144"), "{msg}");
    let missing = format!("{express}-nope");
    let (code, msg) = server.error("StartSyncExecution", &start_body(&missing, "{}"));
    assert_eq!(
        (code.as_str(), msg),
        (
            "StateMachineDoesNotExist",
            format!("State Machine Does Not Exist: '{missing}'")
        )
    );
    let (code, _) = server.error("StartSyncExecution", &start_body("not-an-arn", "{}"));
    assert_eq!(code, "InvalidArn");
    let (code, msg) = server.error("StartSyncExecution", r#"{"input":"{}"}"#);
    assert_eq!(code, "ValidationException");
    assert!(msg.contains("'stateMachineArn'"), "{msg}");
    let named = r#"{"stateMachineArn":"ARN","name":"has space"}"#.replace("ARN", &express);
    assert_eq!(server.error("StartSyncExecution", &named).0, "InvalidName");
}

#[test]
fn the_protocol_answers_bad_requests_with_aws_json_errors() {
    let server = Server::start(&[]);
    let (code, _) = server.error("NoSuchAction", "{}");
    assert_eq!(code, "UnknownOperationException");
    let (code, msg) = server.error("ListStateMachines", "{oops");
    assert_eq!(code, "SerializationException", "{msg}");
    // An action the model has and stepstream does not answer yet says so.
    let (code, msg) = server.error("SendTaskSuccess", "{}");
    assert_eq!(code, "UnknownOperationException");
    assert!(msg.contains("does not implement SendTaskSuccess"), "{msg}");
    let (status, _, body) =
        server.raw(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("POST /"));
    let no_target =
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let (status, _, body) = server.raw(no_target);
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("UnknownOperationException"));
    // A body over the limit is refused without being read whole.
    let huge = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AWSStepFunctions.ListStateMachines\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        5 << 20
    );
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.write_all(huge.as_bytes()).unwrap();
    let _ = s.write_all(&vec![b' '; 5 << 20]);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
}

#[test]
fn state_machines_are_created_idempotently_listed_by_page_updated_and_deleted() {
    let server = Server::start(&[]);
    let arn = create(&server, "m0", PASS, "STANDARD");
    // The same request again is the same machine; a different one is a conflict.
    assert_eq!(create(&server, "m0", PASS, "STANDARD"), arn);
    let other =
        r#"{"name":"m0","definition":"DEF","roleArn":"arn:aws:iam::123456789012:role/other"}"#
            .replace("DEF", &PASS.replace('"', "\\\""));
    let (code, msg) = server.error("CreateStateMachine", &other);
    assert_eq!(
        (code.as_str(), msg),
        (
            "StateMachineAlreadyExists",
            format!("State Machine Already Exists: '{arn}'")
        )
    );
    let bad = r#"{"name":"bad","definition":"{\"StartAt\":\"X\",\"States\":{\"A\":{\"Type\":\"Pass\",\"Next\":\"B\"}}}","roleArn":"ROLE"}"#
        .replace("ROLE", ROLE);
    let (code, msg) = server.error("CreateStateMachine", &bad);
    assert_eq!(code, "InvalidDefinition");
    assert!(
        msg.starts_with("Invalid State Machine Definition: '"),
        "{msg}"
    );
    assert!(msg.contains("/States/A/Next"), "{msg}");
    for i in 1..5 {
        create(&server, &format!("m{i}"), PASS, "EXPRESS");
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let body = match &token {
            Some(t) => format!(r#"{{"maxResults":2,"nextToken":"{t}"}}"#),
            None => r#"{"maxResults":2}"#.to_string(),
        };
        let v = server.ok("ListStateMachines", &body);
        pages += 1;
        for m in v
            .get("stateMachines")
            .unwrap()
            .as_array()
            .unwrap()
            .as_slice()
        {
            names.push(text(m, "name"));
        }
        match v.get("nextToken") {
            Some(t) => token = Some(t.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(names, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(pages, 3);
    let (code, _) = server.error("ListStateMachines", r#"{"nextToken":"garbage"}"#);
    assert_eq!(code, "InvalidToken");

    let update =
        format!(r#"{{"stateMachineArn":"{arn}","roleArn":"arn:aws:iam::123456789012:role/new"}}"#);
    let v = server.ok("UpdateStateMachine", &update);
    assert_eq!(text(&v, "revisionId").len(), 36);
    let d = server.ok(
        "DescribeStateMachine",
        &format!(r#"{{"stateMachineArn":"{arn}"}}"#),
    );
    assert_eq!(text(&d, "roleArn"), "arn:aws:iam::123456789012:role/new");
    assert_eq!(text(&d, "definition"), PASS);
    assert_eq!(text(&d, "type"), "STANDARD");
    let (code, _) = server.error(
        "UpdateStateMachine",
        &format!(r#"{{"stateMachineArn":"{arn}"}}"#),
    );
    assert_eq!(code, "MissingRequiredParameter");

    server.ok(
        "DeleteStateMachine",
        &format!(r#"{{"stateMachineArn":"{arn}"}}"#),
    );
    let (code, _) = server.error(
        "DescribeStateMachine",
        &format!(r#"{{"stateMachineArn":"{arn}"}}"#),
    );
    assert_eq!(code, "StateMachineDoesNotExist");
    // Deleting what is not there succeeds, as on AWS.
    server.ok(
        "DeleteStateMachine",
        &format!(r#"{{"stateMachineArn":"{arn}"}}"#),
    );
}

#[test]
fn standard_executions_are_described_listed_and_stopped() {
    let server = Server::start(&[]);
    let wait = r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":30,"End":true}}}"#;
    let slow = create(&server, "slow", wait, "STANDARD");
    let quick = create(&server, "quick", PASS, "STANDARD");
    let body = format!(r#"{{"stateMachineArn":"{quick}","name":"one","input":"{{\"k\":2}}"}}"#);
    let started = server.ok("StartExecution", &body);
    let exec_arn = text(&started, "executionArn");
    assert_eq!(
        exec_arn,
        "arn:aws:states:us-east-1:123456789012:execution:quick:one"
    );
    let describe = format!(r#"{{"executionArn":"{exec_arn}"}}"#);
    let mut d = server.ok("DescribeExecution", &describe);
    for _ in 0..100 {
        if text(&d, "status") != "RUNNING" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        d = server.ok("DescribeExecution", &describe);
    }
    assert_eq!(text(&d, "status"), "SUCCEEDED");
    let out = json::parse(text(&d, "output").as_bytes()).unwrap();
    assert_eq!(out.get("id"), Some(&Value::string(&exec_arn)));
    // The same name again is a conflict once the first has ended.
    let (code, _) = server.error("StartExecution", &body);
    assert_eq!(code, "ExecutionAlreadyExists");

    let run = server.ok(
        "StartExecution",
        &format!(r#"{{"stateMachineArn":"{slow}","name":"long"}}"#),
    );
    let long = text(&run, "executionArn");
    let listed = server.ok(
        "ListExecutions",
        &format!(r#"{{"stateMachineArn":"{slow}","statusFilter":"RUNNING"}}"#),
    );
    let items = listed.get("executions").unwrap().as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(text(&items.as_slice()[0], "executionArn"), long);
    server.ok(
        "StopExecution",
        &format!(r#"{{"executionArn":"{long}","error":"Op.Stop","cause":"by test"}}"#),
    );
    let d = server.ok(
        "DescribeExecution",
        &format!(r#"{{"executionArn":"{long}"}}"#),
    );
    assert_eq!(
        (text(&d, "status"), text(&d, "error"), text(&d, "cause")),
        ("ABORTED".into(), "Op.Stop".into(), "by test".into())
    );
    let for_exec = server.ok(
        "DescribeStateMachineForExecution",
        &format!(r#"{{"executionArn":"{long}"}}"#),
    );
    assert_eq!(text(&for_exec, "definition"), wait);
    let missing = format!("{exec_arn}x");
    let (code, msg) = server.error(
        "DescribeExecution",
        &format!(r#"{{"executionArn":"{missing}"}}"#),
    );
    assert_eq!(
        (code.as_str(), msg),
        (
            "ExecutionDoesNotExist",
            format!("Execution Does Not Exist: '{missing}'")
        )
    );
    // EXPRESS executions are not kept, and their ARNs are refused as on AWS.
    let express = create(&server, "ex", PASS, "EXPRESS");
    let run = server.ok("StartExecution", &start_body(&express, "{}"));
    let arn = text(&run, "executionArn");
    assert!(arn.contains(":express:ex:"), "{arn}");
    let (code, _) = server.error(
        "DescribeExecution",
        &format!(r#"{{"executionArn":"{arn}"}}"#),
    );
    assert_eq!(code, "InvalidArn");
    let (code, _) = server.error(
        "ListExecutions",
        &format!(r#"{{"stateMachineArn":"{express}"}}"#),
    );
    assert_eq!(code, "StateMachineTypeNotSupported");
}

#[test]
fn tags_and_validation() {
    let server = Server::start(&[]);
    let arn = create(&server, "t", PASS, "EXPRESS");
    server.ok(
        "TagResource",
        &format!(r#"{{"resourceArn":"{arn}","tags":[{{"key":"team","value":"iot"}},{{"key":"env","value":"dev"}}]}}"#),
    );
    server.ok(
        "UntagResource",
        &format!(r#"{{"resourceArn":"{arn}","tagKeys":["env"]}}"#),
    );
    let v = server.ok(
        "ListTagsForResource",
        &format!(r#"{{"resourceArn":"{arn}"}}"#),
    );
    assert_eq!(
        v.get("tags"),
        Some(&json::parse(br#"[{"key":"team","value":"iot"}]"#).unwrap())
    );
    let (code, _) = server.error(
        "ListTagsForResource",
        &format!(r#"{{"resourceArn":"{arn}-gone"}}"#),
    );
    assert_eq!(code, "ResourceNotFound");

    let v = server.ok(
        "ValidateStateMachineDefinition",
        r#"{"definition":"{\"StartAt\":\"A\",\"States\":{\"A\":{\"Type\":\"Pass\",\"Next\":\"B\"}}}"}"#,
    );
    assert_eq!(text(&v, "result"), "FAIL");
    let d = &v.get("diagnostics").unwrap().as_array().unwrap().as_slice()[0];
    assert_eq!(text(d, "code"), "MISSING_TRANSITION_TARGET");
    assert_eq!(text(d, "location"), "/States/A/Next");
    let v = server.ok(
        "ValidateStateMachineDefinition",
        &format!(
            r#"{{"definition":{}}}"#,
            json::to_string(&Value::string(PASS))
        ),
    );
    assert_eq!(text(&v, "result"), "OK");
}

#[test]
fn state_machines_and_tags_survive_a_restart_with_a_state_dir() {
    let dir: PathBuf = std::env::temp_dir().join(format!("stepstream-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_str().unwrap().to_string();
    let arn = {
        let server = Server::start(&["--state-dir", &dir_arg]);
        let arn = create(&server, "kept", PASS, "EXPRESS");
        server.ok(
            "TagResource",
            &format!(r#"{{"resourceArn":"{arn}","tags":[{{"key":"k","value":"v"}}]}}"#),
        );
        arn
        // Killed here, as a crash would.
    };
    let server = Server::start(&["--state-dir", &dir_arg]);
    let d = server.ok(
        "DescribeStateMachine",
        &format!(r#"{{"stateMachineArn":"{arn}"}}"#),
    );
    assert_eq!(text(&d, "definition"), PASS);
    let v = server.ok(
        "ListTagsForResource",
        &format!(r#"{{"resourceArn":"{arn}"}}"#),
    );
    assert_eq!(
        v.get("tags"),
        Some(&json::parse(br#"[{"key":"k","value":"v"}]"#).unwrap())
    );
    let v = server.ok("StartSyncExecution", &start_body(&arn, "{}"));
    assert_eq!(text(&v, "status"), "SUCCEEDED");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_listener_beyond_loopback_is_refused_without_credentials() {
    let out = Command::new(env!("CARGO_BIN_EXE_stepstream"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

#[test]
fn with_credentials_an_unsigned_request_runs_nothing() {
    let dir = std::env::temp_dir().join(format!("stepstream-api-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("credentials");
    std::fs::write(
        &file,
        "[default]\naws_access_key_id = AKID\naws_secret_access_key = s\n",
    )
    .unwrap();
    let server = Server::start(&["--credentials", file.to_str().unwrap()]);
    let body = r#"{"name":"x","definition":"{}","roleArn":"arn:aws:iam::1:role/r"}"#;
    let (code, msg) = server.error("CreateStateMachine", body);
    assert_eq!(code, "MissingAuthenticationTokenException", "{msg}");
    let bad_file = dir.join("bad");
    std::fs::write(&bad_file, "[p]\naws_access_key_id = only-the-id\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stepstream"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--credentials",
            bad_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[p] needs both"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_api_section_serves_the_api_next_to_the_kafka_pipelines() {
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    for t in ["in", "out", "dlq"] {
        mock.create_topic(t, 1, 1).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("stepstream-api-section-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("p.json"), PASS).unwrap();
    let config = format!(
        "[kafka]\nbrokers = \"{}\"\n[http]\nlisten = \"\"\n[api]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n\n[[pipelines]]\nname = \"p\"\ndefinition = \"{}\"\ninput_topic = \"in\"\noutput_topic = \"out\"\ndead_letter_topic = \"dlq\"\n",
        mock.bootstrap_servers(),
        dir.join("state").display(),
        dir.join("p.json").display()
    );
    let file = dir.join("stepstream.toml");
    std::fs::write(&file, config).unwrap();
    let server = Server::spawn(&["process", "--config", file.to_str().unwrap()]);
    let arn = create(&server, "beside", PASS, "EXPRESS");
    let v = server.ok("StartSyncExecution", &start_body(&arn, r#"{"x":1}"#));
    assert_eq!(text(&v, "status"), "SUCCEEDED");
    assert!(dir.join("state").join("state-machines.json").exists());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stopped_execution_ends_at_once_and_frees_its_place() {
    // One execution at a time: a stopped one that kept waiting would throttle the next.
    let server = Server::start(&["--max-executions", "1"]);
    let wait = r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":3600,"End":true}}}"#;
    let slow = create(&server, "slow", wait, "STANDARD");
    let quick = create(&server, "quick", PASS, "EXPRESS");
    let run = server.ok("StartExecution", &start_body(&slow, "{}"));
    let long = text(&run, "executionArn");
    let (code, _) = server.error("StartSyncExecution", &start_body(&quick, "{}"));
    assert_eq!(code, "ThrottlingException");
    server.ok("StopExecution", &format!(r#"{{"executionArn":"{long}"}}"#));
    let mut answer = server.call("StartSyncExecution", &start_body(&quick, "{}"));
    for _ in 0..100 {
        if answer.0 == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        answer = server.call("StartSyncExecution", &start_body(&quick, "{}"));
    }
    assert_eq!(answer.0, 200, "{:?}", answer.1);
    assert_eq!(text(&answer.1, "status"), "SUCCEEDED");
    let d = server.ok(
        "DescribeExecution",
        &format!(r#"{{"executionArn":"{long}"}}"#),
    );
    assert_eq!(text(&d, "status"), "ABORTED");
}

/// A GET on the operations listener: the status and the body.
fn ops_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

#[test]
fn the_workflow_page_draws_each_state_machine_with_its_executions_counts() {
    let server = Server::start(&["--http-listen", "127.0.0.1:0"]);
    let ops = server.ops.clone().expect("serve logs http_listening");
    let def = r#"{"StartAt":"Check","States":{
        "Check":{"Type":"Choice","Choices":[{"Variable":"$.ok","BooleanEquals":true,"Next":"Fine"}],"Default":"Boom"},
        "Fine":{"Type":"Pass","End":true},
        "Boom":{"Type":"Fail","Error":"Bad"}}}"#;
    let arn = create(&server, "paged", def, "EXPRESS");
    for input in [r#"{"ok":true}"#, r#"{"ok":true}"#, r#"{"ok":false}"#] {
        server.ok("StartSyncExecution", &start_body(&arn, input));
    }
    let (code, page) = ops_get(&ops, "/");
    assert_eq!(code, 200);
    assert!(page.contains("data-machine=\"paged\""), "{page}");
    for state in ["Check", "Fine", "Boom"] {
        assert!(page.contains(&format!("data-state=\"{state}\"")), "{state}");
    }
    let (code, body) = ops_get(&ops, "/api/machines/paged/states");
    assert_eq!(code, 200, "{body}");
    let v = json::parse(body.as_bytes()).unwrap();
    let states = v.get("states").and_then(|s| s.as_array()).unwrap();
    let of = |name: &str, field: &str| {
        states
            .as_slice()
            .iter()
            .find(|s| s.get("name").and_then(|n| n.as_str()) == Some(name))
            .and_then(|s| s.get(field))
            .and_then(|n| n.as_i64())
    };
    assert_eq!(of("Check", "entered"), Some(3));
    assert_eq!(of("Fine", "succeeded"), Some(2));
    assert_eq!(of("Boom", "failed"), Some(1));
    assert_eq!(
        v.get("stateMachineArn").and_then(|a| a.as_str()),
        Some(arn.as_str())
    );
    // A new definition counts from zero.
    let update = Value::object_from([
        ("stateMachineArn", Value::string(&arn)),
        ("definition", Value::string(&def.replace("Bad", "Worse"))),
    ]);
    server.ok("UpdateStateMachine", &json::to_string(&update));
    let (_, body) = ops_get(&ops, "/api/machines/paged/states");
    assert!(
        body.contains("\"entered\":0") && !body.contains("\"entered\":3"),
        "{body}"
    );
    assert_eq!(ops_get(&ops, "/api/machines/nope/states").0, 404);
    assert_eq!(ops_get(&ops, "/ready").0, 200);
}
