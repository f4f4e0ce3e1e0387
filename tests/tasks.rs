//! Task integrations against real local servers on 127.0.0.1:0: an HTTP service (success, 4xx,
//! 5xx, slow, connection refused, huge body, non-JSON body, echo) for the HTTP Task, and a Lambda
//! Invoke API server (success, handled and unhandled function errors, unknown function), with
//! Retry and Catch behaving as on AWS; the allowlist, credentials from the config, and
//! connection reuse.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use stepstream::asl::{self, MachineType};
use stepstream::config::{ResourceBinding, ResourceKind};
use stepstream::exec::Outcome;
use stepstream::json::{self, Value};
use stepstream::stream::driver::{self, Driver};
use stepstream::tasks::Registry;

/// A test server: requests served by `handle`, connections and requests counted.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

type Handler =
    fn(&str, &str, &hyper::HeaderMap, &[u8]) -> (u16, Vec<(&'static str, String)>, Vec<u8>, u64);

fn serve(handle: Handler) -> Server {
    serve_with(handle, None)
}

/// `serve`, speaking TLS with `tls` when set.
fn serve_with(handle: Handler, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let r = Arc::clone(&r);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => connection(stream, r, handle).await,
                        // A failed handshake is the client's to report.
                        Some(a) => {
                            if let Ok(stream) = a.accept(stream).await {
                                connection(stream, r, handle).await;
                            }
                        }
                    }
                });
            }
        });
    });
    Server {
        addr,
        connections,
        requests,
    }
}

/// Serves the requests of one connection with `handle`.
async fn connection<S>(stream: S, requests: Arc<AtomicUsize>, handle: Handler)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let r = Arc::clone(&requests);
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            let method = req.method().to_string();
            let target = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let headers = req.headers().clone();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let (status, hs, out, delay_ms) = handle(&method, &target, &headers, &body);
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            let mut resp = Response::builder().status(status);
            for (k, v) in hs {
                resp = resp.header(k, v);
            }
            Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(out))).unwrap())
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

const JSON: &str = "application/json";

/// The HTTP service.
fn api(
    method: &str,
    target: &str,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> (u16, Vec<(&'static str, String)>, Vec<u8>, u64) {
    let json_type = vec![("content-type", JSON.to_string())];
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/ok" => (200, json_type, br#"{"status":"fine","n":7}"#.to_vec(), 0),
        "/text" => (
            200,
            vec![("content-type", "text/plain".into())],
            b"plain words".to_vec(),
            0,
        ),
        "/missing" => (
            404,
            json_type,
            br#"{"message":"no such order"}"#.to_vec(),
            0,
        ),
        "/broken" => (503, json_type, br#"{"message":"try later"}"#.to_vec(), 0),
        "/slow" => (200, json_type, b"{}".to_vec(), 3000),
        "/huge" => (
            200,
            vec![("content-type", "text/plain".into())],
            vec![b'x'; 300 * 1024],
            0,
        ),
        "/echo" => {
            let hs: Vec<(String, Value)> = headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        Value::string(v.to_str().unwrap_or("")),
                    )
                })
                .collect();
            let out = Value::object_from([
                ("method", Value::string(method)),
                ("target", Value::string(target)),
                (
                    "headers",
                    Value::object_from(hs.iter().map(|(k, v)| (k.as_str(), v.clone()))),
                ),
                ("body", Value::string(&String::from_utf8_lossy(body))),
            ]);
            (200, json_type, json::to_string(&out).into_bytes(), 0)
        }
        _ => (404, json_type, b"{}".to_vec(), 0),
    }
}

/// A Lambda Invoke API server.
fn lambda_api(
    method: &str,
    target: &str,
    _headers: &hyper::HeaderMap,
    body: &[u8],
) -> (u16, Vec<(&'static str, String)>, Vec<u8>, u64) {
    let json_type = ("content-type", JSON.to_string());
    let Some(rest) = target.strip_prefix("/2015-03-31/functions/") else {
        return (400, vec![json_type], b"{}".to_vec(), 0);
    };
    let name = rest.split('/').next().unwrap_or("");
    assert_eq!(method, "POST");
    let request_id = ("x-amzn-requestid", "req-1".to_string());
    match name {
        "double" => {
            let v = json::parse(body).unwrap();
            let n = v.get("n").and_then(Value::as_i64).unwrap_or(0);
            let out = format!(r#"{{"doubled":{}}}"#, n * 2);
            (
                200,
                vec![json_type, request_id, ("x-amz-executed-version", "$LATEST".into())],
                out.into_bytes(),
                0,
            )
        }
        "handled" => (
            200,
            vec![json_type, request_id, ("x-amz-function-error", "Handled".into())],
            br#"{"errorMessage":"order 7 has no items","errorType":"OrderError","stackTrace":[]}"#.to_vec(),
            0,
        ),
        "crash" => (
            200,
            vec![json_type, request_id, ("x-amz-function-error", "Unhandled".into())],
            br#"{"errorMessage":"RequestId: req-1 Error: Runtime exited with error: exit status 1","errorType":"Runtime.ExitError"}"#.to_vec(),
            0,
        ),
        _ => (
            404,
            vec![json_type],
            format!(r#"{{"Type":"User","message":"Function not found: {name}"}}"#).into_bytes(),
            0,
        ),
    }
}

fn http_binding(allowed: &[&str], headers: &[(&str, &str)], timeout_ms: u64) -> ResourceBinding {
    ResourceBinding {
        resource: "arn:aws:states:::http:invoke".into(),
        kind: ResourceKind::Http,
        endpoint: None,
        timeout_ms,
        allowed_hosts: allowed.iter().map(|s| s.to_string()).collect(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        brokers: None,
        topic: None,
        connection: None,
        tls: None,
    }
}

fn registry(bindings: &[ResourceBinding]) -> Arc<Registry> {
    let mut r = Registry::new();
    r.bind_config(bindings).unwrap();
    Arc::new(r)
}

fn run(definition: &str, registry: &Arc<Registry>, input: &str) -> Outcome {
    let plan = Arc::new(stepstream::plan::compile(
        &asl::load(definition.as_bytes(), MachineType::Express).unwrap(),
        "t",
    ));
    driver::run_one(
        plan,
        Arc::clone(registry),
        "e",
        json::parse(input.as_bytes()).unwrap(),
        None,
    )
    .outcome
}

/// A one-state HTTP Task workflow with the given Parameters and extra state fields.
fn http_task(parameters: &str, extra: &str) -> String {
    format!(
        r#"{{"StartAt":"Call","States":{{"Call":{{"Type":"Task","Resource":"arn:aws:states:::http:invoke",
        "Parameters":{parameters}{extra},"End":true}}}}}}"#
    )
}

fn failed(o: &Outcome) -> (String, String) {
    match o {
        Outcome::Failed { error, cause } => (
            error
                .as_ref()
                .map(|e| e.as_str().to_string())
                .unwrap_or_default(),
            cause
                .as_ref()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn output(o: Outcome) -> Value {
    match o {
        Outcome::Succeeded(v) => v,
        other => panic!("expected success, got {other:?}"),
    }
}

#[test]
fn http_task_returns_status_headers_and_parsed_body() {
    let s = serve(api);
    let reg = registry(&[http_binding(&[], &[], 10_000)]);
    let def = http_task(
        &format!(
            r#"{{"ApiEndpoint":"http://{}/ok","Method":"GET","QueryParameters":{{"id.$":"$.id"}}}}"#,
            s.addr
        ),
        "",
    );
    let out = output(run(&def, &reg, r#"{"id":"o-1"}"#));
    assert_eq!(out.get("StatusCode"), Some(&Value::int(200)));
    assert_eq!(out.get("StatusText"), Some(&Value::string("OK")));
    assert_eq!(
        out.get("ResponseBody").unwrap().get("n"),
        Some(&Value::int(7))
    );
    assert_eq!(
        out.get("Headers").unwrap().get("content-type"),
        Some(&Value::array(vec![Value::string(JSON)]))
    );
    // A body that is not JSON stays a string.
    let def = http_task(
        &format!(
            r#"{{"ApiEndpoint":"http://{}/text","Method":"GET"}}"#,
            s.addr
        ),
        "",
    );
    let out = output(run(&def, &reg, "{}"));
    assert_eq!(out.get("ResponseBody"), Some(&Value::string("plain words")));
}

#[test]
fn http_task_sends_method_query_headers_and_json_body() {
    let s = serve(api);
    let reg = registry(&[http_binding(&[], &[], 10_000)]);
    let def = http_task(
        &format!(
            r#"{{"ApiEndpoint":"http://{}/echo","Method":"PUT","Headers":{{"X-Order":"o-9"}},
            "QueryParameters":{{"q":"a&b"}},"RequestBody":{{"items.$":"$.items"}}}}"#,
            s.addr
        ),
        "",
    );
    let out = output(run(&def, &reg, r#"{"items":[1,2]}"#));
    let echo = out.get("ResponseBody").unwrap();
    assert_eq!(echo.get("method"), Some(&Value::string("PUT")));
    assert_eq!(echo.get("target"), Some(&Value::string("/echo?q=a%26b")));
    assert_eq!(
        echo.get("headers").unwrap().get("x-order"),
        Some(&Value::string("o-9"))
    );
    assert_eq!(
        echo.get("headers").unwrap().get("content-type"),
        Some(&Value::string(JSON))
    );
    assert_eq!(echo.get("body"), Some(&Value::string(r#"{"items":[1,2]}"#)));
}

#[test]
fn non_2xx_responses_fail_with_the_status_code_error_and_retry_and_catch_see_it() {
    let s = serve(api);
    let reg = registry(&[http_binding(&[], &[], 10_000)]);
    // 404: caught by its own name; the cause carries the response.
    let def = format!(
        r#"{{"StartAt":"Call","States":{{"Call":{{"Type":"Task","Resource":"arn:aws:states:::http:invoke",
        "Parameters":{{"ApiEndpoint":"http://{}/missing","Method":"GET"}},
        "Catch":[{{"ErrorEquals":["States.Http.StatusCode.404"],"ResultPath":"$.error","Next":"Missing"}}],"End":true}},
        "Missing":{{"Type":"Pass","End":true}}}}}}"#,
        s.addr
    );
    let out = output(run(&def, &reg, "{}"));
    let error = out.get("error").unwrap();
    assert_eq!(
        error.get("Error"),
        Some(&Value::string("States.Http.StatusCode.404"))
    );
    let cause = json::parse(error.get("Cause").unwrap().as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(cause.get("StatusCode"), Some(&Value::int(404)));
    assert_eq!(
        cause.get("ResponseBody").unwrap().get("message"),
        Some(&Value::string("no such order"))
    );
    // 503: retried twice (three requests), then the execution fails with the status error.
    let before = s.requests.load(Ordering::SeqCst);
    let def = http_task(
        &format!(
            r#"{{"ApiEndpoint":"http://{}/broken","Method":"GET"}}"#,
            s.addr
        ),
        r#","Retry":[{"ErrorEquals":["States.Http.StatusCode.503"],"IntervalSeconds":1,"MaxAttempts":2,"BackoffRate":1}]"#,
    );
    let (error, _) = failed(&run(&def, &reg, "{}"));
    assert_eq!(error, "States.Http.StatusCode.503");
    assert_eq!(s.requests.load(Ordering::SeqCst) - before, 3);
}

#[test]
fn slow_refused_and_huge_responses_fail_with_aws_names() {
    let s = serve(api);
    let reg = registry(&[http_binding(&[], &[], 10_000)]);
    // The state's TimeoutSeconds.
    let def = http_task(
        &format!(
            r#"{{"ApiEndpoint":"http://{}/slow","Method":"GET"}}"#,
            s.addr
        ),
        r#","TimeoutSeconds":1"#,
    );
    let t0 = std::time::Instant::now();
    assert_eq!(failed(&run(&def, &reg, "{}")).0, "States.Timeout");
    assert!(t0.elapsed() < Duration::from_millis(2500));
    // The binding's timeout_seconds.
    let short = registry(&[http_binding(&[], &[], 500)]);
    assert_eq!(
        failed(&run(
            &def.replace(r#","TimeoutSeconds":1"#, ""),
            &short,
            "{}"
        ))
        .0,
        "States.Timeout"
    );
    // Nothing listening.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let def = http_task(
        &format!(r#"{{"ApiEndpoint":"http://127.0.0.1:{port}/x","Method":"GET"}}"#),
        "",
    );
    let (error, cause) = failed(&run(&def, &reg, "{}"));
    assert_eq!(error, "States.Http.Socket");
    assert!(cause.to_lowercase().contains("refused"), "{cause}");
    // More than 256 KiB back.
    let def = http_task(
        &format!(
            r#"{{"ApiEndpoint":"http://{}/huge","Method":"GET"}}"#,
            s.addr
        ),
        "",
    );
    assert_eq!(failed(&run(&def, &reg, "{}")).0, "States.DataLimitExceeded");
}

#[test]
fn the_allowlist_decides_where_requests_go_and_credentials_come_from_the_config() {
    let s = serve(api);
    // Default: loopback only. A definition (or its input) naming another host is refused
    // before any connection is made.
    let reg = registry(&[http_binding(&[], &[], 10_000)]);
    let def = http_task(r#"{"ApiEndpoint.$":"$.url","Method":"GET"}"#, "");
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://example.com/",
        "file:///etc/passwd",
    ] {
        let (error, cause) = failed(&run(&def, &reg, &format!(r#"{{"url":"{url}"}}"#)));
        assert_eq!(error, "States.Runtime", "{url}");
        assert!(
            cause.contains("not allowed")
                || cause.contains("not an http")
                || cause.contains("not a URL"),
            "{url}: {cause}"
        );
    }
    // An allowlist without loopback refuses the local server too.
    let only_api = registry(&[http_binding(&["api.internal"], &[], 10_000)]);
    let local = format!(r#"{{"url":"http://{}/ok"}}"#, s.addr);
    assert!(
        failed(&run(&def, &only_api, &local))
            .1
            .contains("allowed_hosts")
    );
    // Credentials: the binding's header replaces whatever the definition set.
    let with_token = registry(&[http_binding(
        &[],
        &[("Authorization", "Bearer from-config")],
        10_000,
    )]);
    let def = http_task(
        &format!(
            r#"{{"ApiEndpoint":"http://{}/echo","Method":"GET","Headers":{{"Authorization":"Bearer from-definition"}}}}"#,
            s.addr
        ),
        "",
    );
    let out = output(run(&def, &with_token, "{}"));
    assert_eq!(
        out.get("ResponseBody")
            .unwrap()
            .get("headers")
            .unwrap()
            .get("authorization"),
        Some(&Value::string("Bearer from-config"))
    );
    // A failing call's error names the response, never the request's credentials.
    let def = http_task(
        &format!(
            r#"{{"ApiEndpoint":"http://{}/missing","Method":"GET"}}"#,
            s.addr
        ),
        "",
    );
    let (_, cause) = failed(&run(&def, &with_token, "{}"));
    assert!(!cause.contains("from-config"), "{cause}");
    // An ordinary result carries none either.
    let def = http_task(
        &format!(r#"{{"ApiEndpoint":"http://{}/ok","Method":"GET"}}"#, s.addr),
        "",
    );
    let out = json::to_string(&output(run(&def, &with_token, "{}")));
    assert!(!out.contains("from-config"), "{out}");
}

#[test]
fn each_connection_arn_gets_the_credentials_of_its_binding() {
    let s = serve(api);
    let conn = |name: &str| format!("arn:aws:events:us-east-1:123456789012:connection/{name}/*");
    let routed = |name: &str, key: &str| ResourceBinding {
        connection: Some(conn(name)),
        ..http_binding(&[], &[("X-Api-Key", key)], 10_000)
    };
    let def = http_task(
        &format!(
            r#"{{"ApiEndpoint":"http://{}/echo","Method":"GET","Authentication":{{"ConnectionArn.$":"$.connection"}}}}"#,
            s.addr
        ),
        "",
    );
    let key_sent = |reg: &Arc<Registry>, connection: &str| {
        let input = format!(
            r#"{{"connection":"arn:aws:events:us-east-1:123456789012:connection/{connection}"}}"#
        );
        run(&def, reg, &input)
    };
    let header = |o: Outcome| {
        output(o)
            .get("ResponseBody")
            .and_then(|b| b.get("headers"))
            .and_then(|h| h.get("x-api-key"))
            .cloned()
    };
    let reg = registry(&[
        routed("orders", "orders-key"),
        routed("billing", "billing-key"),
    ]);
    assert_eq!(
        header(key_sent(&reg, "orders/6f1c")),
        Some(Value::string("orders-key"))
    );
    assert_eq!(
        header(key_sent(&reg, "billing/0a2b")),
        Some(Value::string("billing-key"))
    );
    // A connection no entry serves is refused before any request, naming the key to add.
    let before = s.requests.load(Ordering::SeqCst);
    let (error, cause) = failed(&key_sent(&reg, "payroll/77"));
    assert_eq!(error, "States.Runtime");
    assert!(
        cause.contains("connection/payroll/77") && cause.contains("connection = "),
        "{cause}"
    );
    assert_eq!(s.requests.load(Ordering::SeqCst), before);
    // An entry without `connection` serves the rest.
    let reg = registry(&[
        routed("orders", "orders-key"),
        http_binding(&[], &[("X-Api-Key", "shared-key")], 10_000),
    ]);
    assert_eq!(
        header(key_sent(&reg, "payroll/77")),
        Some(Value::string("shared-key"))
    );
    assert_eq!(
        header(key_sent(&reg, "orders/1")),
        Some(Value::string("orders-key"))
    );
}

#[test]
fn connections_are_pooled_and_reused() {
    let s = serve(api);
    let reg = registry(&[http_binding(&[], &[], 10_000)]);
    let plan = Arc::new(stepstream::plan::compile(
        &asl::load(
            http_task(
                &format!(r#"{{"ApiEndpoint":"http://{}/ok","Method":"GET"}}"#, s.addr),
                "",
            )
            .as_bytes(),
            MachineType::Express,
        )
        .unwrap(),
        "t",
    ));
    // 300 executions, 30 at a time, on one shard's runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let done = rt.block_on(async {
        let mut d: Driver<()> = Driver::new(plan, Arc::clone(&reg));
        let (mut started, mut done, mut out) = (0, 0, Vec::new());
        while done < 300 {
            while started < 300 && d.running() < 30 {
                if let Some(f) = d.start(
                    (),
                    format!("e{started}").as_str().into(),
                    Value::empty_object(),
                    None,
                ) {
                    out.push(f);
                }
                started += 1;
            }
            d.wait(&mut out).await;
            for f in out.drain(..) {
                assert!(
                    matches!(f.outcome, Outcome::Succeeded(_)),
                    "{:?}",
                    f.outcome
                );
                done += 1;
            }
        }
        done
    });
    assert_eq!(done, 300);
    assert_eq!(s.requests.load(Ordering::SeqCst), 300);
    let connections = s.connections.load(Ordering::SeqCst);
    assert!(
        connections <= 30,
        "{connections} connections for 300 requests"
    );
}

fn lambda_binding(resource: &str, addr: SocketAddr) -> ResourceBinding {
    ResourceBinding {
        resource: resource.into(),
        kind: ResourceKind::Lambda,
        endpoint: Some(format!("http://{addr}")),
        timeout_ms: 10_000,
        allowed_hosts: vec![addr.to_string()],
        headers: Vec::new(),
        brokers: None,
        topic: None,
        connection: None,
        tls: None,
    }
}

#[test]
fn lambda_functions_by_arn_and_through_lambda_invoke() {
    let s = serve(lambda_api);
    let reg = registry(&[
        lambda_binding("arn:aws:lambda:*", s.addr),
        lambda_binding("arn:aws:states:::lambda:invoke", s.addr),
    ]);
    // The function ARN: the result is the payload.
    let def = r#"{"StartAt":"F","States":{"F":{"Type":"Task",
        "Resource":"arn:aws:lambda:us-east-1:123456789012:function:double","End":true}}}"#;
    assert_eq!(
        output(run(def, &reg, r#"{"n":21}"#)),
        json::parse(br#"{"doubled":42}"#).unwrap()
    );
    // lambda:invoke: the invoke response.
    let def = r#"{"StartAt":"F","States":{"F":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
        "Parameters":{"FunctionName":"arn:aws:lambda:us-east-1:123456789012:function:double","Payload":{"n.$":"$.n"}},"End":true}}}"#;
    let out = output(run(def, &reg, r#"{"n":5}"#));
    assert_eq!(out.get("StatusCode"), Some(&Value::int(200)));
    assert_eq!(out.get("ExecutedVersion"), Some(&Value::string("$LATEST")));
    assert_eq!(
        out.get("Payload"),
        Some(&json::parse(br#"{"doubled":10}"#).unwrap())
    );
    assert_eq!(
        out.get("SdkResponseMetadata").unwrap().get("RequestId"),
        Some(&Value::string("req-1"))
    );
    assert_eq!(
        out.get("SdkHttpMetadata").unwrap().get("HttpStatusCode"),
        Some(&Value::int(200))
    );
}

#[test]
fn lambda_function_errors_become_asl_errors_as_on_aws() {
    let s = serve(lambda_api);
    let reg = registry(&[lambda_binding("arn:aws:lambda:*", s.addr)]);
    // `catch` names the one error the Catch handles.
    let def = |f: &str, retry: &str, catch: &str| {
        format!(
            r#"{{"StartAt":"F","States":{{"F":{{"Type":"Task",
            "Resource":"arn:aws:lambda:us-east-1:123456789012:function:{f}"{retry},
            "Catch":[{{"ErrorEquals":["{catch}"],"Next":"Caught"}}],"End":true}},
            "Caught":{{"Type":"Pass","End":true}}}}}}"#
        )
    };
    // A handled error: its errorType is the error, the payload the cause.
    let caught = output(run(&def("handled", "", "OrderError"), &reg, "{}"));
    assert_eq!(caught.get("Error"), Some(&Value::string("OrderError")));
    assert_eq!(
        caught.get("Cause"),
        Some(&Value::string(
            r#"{"errorMessage":"order 7 has no items","errorType":"OrderError","stackTrace":[]}"#
        ))
    );
    // An unhandled one, retried: the function is called three times.
    let before = s.requests.load(Ordering::SeqCst);
    let (error, cause) = failed(&run(
        &def(
            "crash",
            r#","Retry":[{"ErrorEquals":["Runtime.ExitError"],"IntervalSeconds":1,"MaxAttempts":2,"BackoffRate":1}]"#,
            "Not.This",
        ),
        &reg,
        "{}",
    ));
    assert_eq!(error, "Runtime.ExitError");
    assert!(cause.contains("Runtime exited"), "{cause}");
    assert_eq!(s.requests.load(Ordering::SeqCst) - before, 3);
    // An unknown function: the service error AWS names.
    assert_eq!(
        failed(&run(&def("nope", "", "Not.This"), &reg, "{}")).0,
        "Lambda.ResourceNotFoundException"
    );
    // Nothing listening: the SDK's client error.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let down = registry(&[lambda_binding("arn:aws:lambda:*", addr)]);
    assert_eq!(
        failed(&run(&def("double", "", "Not.This"), &down, "{}")).0,
        "Lambda.SdkClientException"
    );
}

/// A private CA, a server certificate for `localhost` and a client certificate it signed, as
/// PEM files in a fresh directory, and the server's TLS settings (asking for a client
/// certificate when `client_auth`).
struct Pki {
    dir: std::path::PathBuf,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("stepstream-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "stepstream test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let pki = Pki { dir, ca };
        let (cert, key) = pki.issue(
            "stepstream-client",
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        std::fs::write(pki.path("client.pem"), cert.pem()).unwrap();
        std::fs::write(pki.path("client.key"), key.serialize_pem()).unwrap();
        pki
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    fn issue(
        &self,
        name: &str,
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> (rcgen::Certificate, rcgen::KeyPair) {
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate().unwrap();
        (params.signed_by(&key, &self.ca).unwrap(), key)
    }

    fn server(&self, client_auth: bool) -> Arc<rustls::ServerConfig> {
        let (cert, key) = self.issue("localhost", rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        Arc::new(
            builder
                .with_single_cert(vec![cert.der().clone()], key)
                .unwrap(),
        )
    }

    /// The HTTP Task bound through the config reader, trusting this CA, with `extra` keys.
    fn http_registry(&self, extra: &str) -> Arc<Registry> {
        registry(&self.resources(&format!(
            "[[resources]]\nresource = \"arn:aws:states:::http:invoke\"\nkind = \"http\"\nca_file = \"{}\"\n{extra}",
            self.path("ca.pem")
        )))
    }

    /// The bindings of a `[[resources]]` config file, through the config reader.
    fn resources(&self, toml: &str) -> Vec<ResourceBinding> {
        let file = self.dir.join("resources.toml");
        std::fs::write(&file, toml).unwrap();
        stepstream::config::load_resources(&file).unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A workflow that GETs `url` once per item of `$.items`, one after the other.
fn https_gets(url: &str) -> String {
    format!(
        r#"{{"StartAt":"Each","States":{{"Each":{{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":1,
        "ItemProcessor":{{"StartAt":"Call","States":{{"Call":{{"Type":"Task","Resource":"arn:aws:states:::http:invoke",
        "Parameters":{{"ApiEndpoint":"{url}","Method":"GET"}},"ResultSelector":{{"s.$":"$.ResponseBody.status"}},"End":true}}}}}},
        "End":true}}}}}}"#
    )
}

#[test]
fn https_endpoints_are_verified_with_the_system_store_and_ca_file_and_stay_pooled() {
    let pki = Pki::new("https");
    let s = serve_with(api, Some(pki.server(false)));
    let url = format!("https://localhost:{}/ok", s.addr.port());
    let input = r#"{"items":[1,2,3,4,5]}"#;
    let trusted = pki.http_registry("");
    let out = output(run(&https_gets(&url), &trusted, input));
    let fine = Value::object_from([("s", Value::string("fine"))]);
    assert_eq!(out, Value::array(vec![fine; 5]));
    // Five requests over one TLS connection.
    assert_eq!(s.requests.load(Ordering::SeqCst), 5);
    assert_eq!(s.connections.load(Ordering::SeqCst), 1);

    // The certificate names localhost, not 127.0.0.1.
    let by_ip = format!("https://127.0.0.1:{}/ok", s.addr.port());
    let (error, cause) = failed(&run(&https_gets(&by_ip), &trusted, r#"{"items":[1]}"#));
    assert_eq!(error, "States.Http.Socket");
    assert!(cause.contains("certificate"), "{cause}");

    // Without ca_file the private CA is unknown: a socket failure naming the certificate, or
    // on a machine without a system store, advice to install one or set ca_file.
    let untrusted = registry(&[http_binding(&[], &[], 10_000)]);
    let (error, cause) = failed(&run(&https_gets(&url), &untrusted, r#"{"items":[1]}"#));
    match error.as_str() {
        "States.Http.Socket" => {
            assert!(
                cause.contains("UnknownIssuer") && cause.contains("set ca_file"),
                "{cause}"
            )
        }
        "States.Runtime" => assert!(cause.contains("ca_file"), "{cause}"),
        other => panic!("{other}: {cause}"),
    }
    assert_eq!(
        s.requests.load(Ordering::SeqCst),
        5,
        "nothing sent untrusted"
    );
}

#[test]
fn endpoints_that_ask_for_a_client_certificate_get_the_configured_one() {
    let pki = Pki::new("mtls");
    let s = serve_with(api, Some(pki.server(true)));
    let url = format!("https://localhost:{}/ok", s.addr.port());
    let one = r#"{"items":[1]}"#;
    let with_cert = pki.http_registry(&format!(
        "client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
        pki.path("client.pem"),
        pki.path("client.key")
    ));
    let out = output(run(&https_gets(&url), &with_cert, one));
    let fine = Value::object_from([("s", Value::string("fine"))]);
    assert_eq!(out, Value::array(vec![fine]));
    assert_eq!(s.requests.load(Ordering::SeqCst), 1);

    let without = pki.http_registry("");
    let (error, cause) = failed(&run(&https_gets(&url), &without, one));
    assert_eq!(error, "States.Http.Socket");
    assert!(cause.contains("client_cert_file"), "{cause}");
    assert_eq!(
        s.requests.load(Ordering::SeqCst),
        1,
        "refused without a certificate"
    );
}

#[test]
fn lambda_endpoints_may_be_https() {
    let pki = Pki::new("lambda-tls");
    let s = serve_with(lambda_api, Some(pki.server(false)));
    let reg = registry(&pki.resources(&format!(
        r#"[[resources]]
        resource = "arn:aws:lambda:*"
        kind = "lambda"
        endpoint = "https://localhost:{}"
        ca_file = "{}"
        "#,
        s.addr.port(),
        pki.path("ca.pem")
    )));
    let def = r#"{"StartAt":"F","States":{"F":{"Type":"Task",
        "Resource":"arn:aws:lambda:us-east-1:123456789012:function:double","End":true}}}"#;
    assert_eq!(
        output(run(def, &reg, r#"{"n":4}"#)),
        json::parse(br#"{"doubled":8}"#).unwrap()
    );
}
