//! `stepstream bench --api URL`: the Step Functions API of a running `stepstream serve`,
//! measured from the outside as a client sees it. In one run, against the same server:
//!
//! 1. the baseline: a one-Pass-state EXPRESS machine run with `{}` as input, so nearly all
//!    that is timed is the HTTP exchange (framing, the AWS JSON 1.0 envelope, the hand-off to
//!    a shard and back);
//! 2. the workload: DEF run with the event file's text as its input.
//!
//! Each phase creates its state machine (CreateStateMachine), sends a short warm-up that is
//! not counted, then N StartSyncExecution requests over C keep-alive HTTP/1.1 connections,
//! one request at a time on each (closed loop); the state machines are deleted at the end,
//! also when the run fails part way. The report gives both rates, latency percentiles (from
//! sending the request to having read the whole answer), the errors, and the ratio
//! workload / baseline: what the execution costs against what the exchange costs.
//!
//! The client runs in this process on a current-thread tokio runtime: one client thread for
//! all C connections. On a small machine (the development machine has 2 cores) the server's
//! threads share the cores with it, so the figures are the pair's, not the server's alone;
//! the report says how busy the client thread was, so a client-bound run shows as one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use stepstream::json::{self, Value};

/// What to run, and where.
pub struct ApiOptions {
    /// The server, `http://HOST:PORT`.
    pub url: String,
    pub definition: PathBuf,
    pub input_file: PathBuf,
    /// Connections, each with one request in flight.
    pub concurrency: usize,
    /// Requests counted per phase (after the warm-up).
    pub executions: u64,
}

/// The one-Pass-state definition of the baseline.
pub const BASELINE_DEFINITION: &str =
    r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#;

/// The role the bench's state machines name (the server checks only its form).
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/stepstream-bench";

/// Threads of the client's runtime (a current-thread runtime: this one).
const CLIENT_THREADS: usize = 1;

/// Distinct errors kept word for word per phase (with how often each came); errors beyond
/// them are only counted.
const KEPT_ERRORS: usize = 5;

/// How long a connection may take to open, and an answer to arrive, before the bench calls
/// the server unreachable or the request failed.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
const REQUEST_LIMIT: Duration = Duration::from_secs(60);

/// What one phase measured.
#[derive(Debug, Clone, Default)]
pub struct PhaseReport {
    /// Requests counted (answered or failed), after the warm-up.
    pub requests: u64,
    pub seconds: f64,
    /// Request sent to answer read, ns: p50, p90, p99, p99.9, max (of the answered ones).
    pub latency_ns: [u64; 5],
    /// Answers with status SUCCEEDED.
    pub succeeded: u64,
    /// Everything else: HTTP errors, other statuses, broken connections, time-outs.
    pub errors: u64,
    /// Connections opened again after the server closed one or it broke.
    pub reconnects: u64,
    /// The first few distinct errors of the counted requests, as the server worded them,
    /// and how many times each came.
    pub first_errors: Vec<(String, u64)>,
    pub warmup_requests: u64,
    pub warmup_errors: u64,
    /// CPU time of the client thread during the counted requests, seconds (in 10 ms ticks).
    pub client_cpu_seconds: f64,
    /// Requests per second of each slice (the phases alternate slice by slice).
    pub slices: Vec<f64>,
}

impl PhaseReport {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// The share of the phase's wall time the client thread was on a core.
    pub fn client_busy(&self) -> f64 {
        self.client_cpu_seconds / self.seconds
    }

    fn to_json(&self) -> Value {
        let us = |ns: u64| Value::float(ns as f64 / 1000.0);
        Value::object_from([
            ("requests", Value::int(self.requests as i64)),
            ("seconds", Value::float(self.seconds)),
            (
                "requests_per_second",
                Value::float(self.requests_per_second().round()),
            ),
            (
                "latency_us",
                super::percentiles_json(self.latency_ns.map(us)),
            ),
            ("succeeded", Value::int(self.succeeded as i64)),
            ("errors", Value::int(self.errors as i64)),
            ("reconnects", Value::int(self.reconnects as i64)),
            ("warmup_requests", Value::int(self.warmup_requests as i64)),
            ("warmup_errors", Value::int(self.warmup_errors as i64)),
            (
                "client_busy",
                Value::float((self.client_busy() * 1000.0).round() / 1000.0),
            ),
            (
                "slices_per_second",
                Value::array(
                    self.slices
                        .iter()
                        .map(|r| Value::float(r.round()))
                        .collect(),
                ),
            ),
            (
                "first_errors",
                Value::array(
                    self.first_errors
                        .iter()
                        .map(|(e, n)| {
                            Value::object_from([
                                ("message", Value::string(e)),
                                ("count", Value::int(*n as i64)),
                            ])
                        })
                        .collect(),
                ),
            ),
        ])
    }

    fn to_text(&self, name: &str) -> String {
        let us = |ns: u64| format!("{:.1}", ns as f64 / 1000.0);
        let mut s = format!(
            "{name:<12} {} requests in {:.3} s: {:.0} requests/s; {} SUCCEEDED, {} errors, {} reconnects; client thread {:.0}% busy\nlatency (µs) p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n",
            self.requests,
            self.seconds,
            self.requests_per_second(),
            self.succeeded,
            self.errors,
            self.reconnects,
            self.client_busy() * 100.0,
            us(self.latency_ns[0]),
            us(self.latency_ns[1]),
            us(self.latency_ns[2]),
            us(self.latency_ns[3]),
            us(self.latency_ns[4]),
        );
        if !self.slices.is_empty() {
            let rates: Vec<String> = self.slices.iter().map(|r| format!("{r:.0}")).collect();
            s.push_str(&format!(
                "             slices (requests/s): {}\n",
                rates.join(" ")
            ));
        }
        if self.warmup_errors > 0 {
            s.push_str(&format!(
                "             ({} of the {} warm-up requests failed too)\n",
                self.warmup_errors, self.warmup_requests
            ));
        }
        for (e, n) in &self.first_errors {
            s.push_str(&format!("  error      {n} x {e}\n"));
        }
        s
    }
}

/// What the run measured: both phases, against the same server.
#[derive(Debug, Clone)]
pub struct ApiReport {
    /// This process's command line, as typed (quoted where needed).
    pub command: String,
    pub url: String,
    pub definition: PathBuf,
    pub concurrency: usize,
    pub client_threads: usize,
    pub baseline: PhaseReport,
    pub workload: PhaseReport,
}

impl ApiReport {
    /// The workload's rate as a share of the baseline's.
    pub fn ratio(&self) -> f64 {
        self.workload.requests_per_second() / self.baseline.requests_per_second()
    }

    pub fn to_json(&self) -> Value {
        Value::object_from([
            ("command", Value::string(&self.command)),
            ("api", Value::string(&self.url)),
            (
                "definition",
                Value::from(self.definition.display().to_string()),
            ),
            ("concurrency", Value::int(self.concurrency as i64)),
            ("client_threads", Value::int(self.client_threads as i64)),
            ("baseline", self.baseline.to_json()),
            ("workload", self.workload.to_json()),
            (
                "workload_vs_baseline",
                Value::float((self.ratio() * 1000.0).round() / 1000.0),
            ),
        ])
    }

    pub fn to_text(&self) -> String {
        format!(
            "command      {}\napi          {}: StartSyncExecution over {} keep-alive HTTP/1.1 connection(s), one request in flight on each; {} client thread(s) in this process; the phases alternate in {SLICES} slices\n{}{}ratio        workload / baseline = {:.3} ({:.0}% of the one-Pass rate)\n",
            self.command,
            self.url,
            self.concurrency,
            self.client_threads,
            self.baseline.to_text("baseline"),
            self.workload.to_text("workload"),
            self.ratio(),
            self.ratio() * 100.0,
        )
    }
}

/// Runs both phases against `opts.url`.
pub fn run_api(opts: &ApiOptions) -> Result<ApiReport, String> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let definition = read(&opts.definition)?;
    let event = read(&opts.input_file)?;
    // The server would refuse every request; say so once, naming the file.
    json::parse(event.as_bytes())
        .map_err(|e| format!("{}: not valid JSON: {e}", opts.input_file.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the client runtime: {e}"))?;
    let (baseline, workload) = rt.block_on(async {
        let target = Arc::new(Target::parse(&opts.url).await?);
        run_phases(&target, opts, &definition, &event).await
    })?;
    Ok(ApiReport {
        command: command_line(),
        url: opts.url.clone(),
        definition: opts.definition.clone(),
        concurrency: opts.concurrency.max(1),
        client_threads: CLIENT_THREADS,
        baseline,
        workload,
    })
}

/// Creates the machines, runs the phases, and deletes what it created whatever happened.
async fn run_phases(
    target: &Arc<Target>,
    opts: &ApiOptions,
    definition: &str,
    event: &str,
) -> Result<(PhaseReport, PhaseReport), String> {
    let tag = format!(
        "{}-{}",
        std::process::id(),
        stepstream::stream::driver::now_ms()
    );
    let mut created = Vec::new();
    let measured = async {
        let arn = create(
            target,
            &format!("stepstream-bench-{tag}-baseline"),
            BASELINE_DEFINITION,
            "the baseline's one-Pass definition",
        )
        .await?;
        created.push(arn.clone());
        let what = opts.definition.display().to_string();
        let workload = create(
            target,
            &format!("stepstream-bench-{tag}-workload"),
            definition,
            &what,
        )
        .await?;
        created.push(workload.clone());
        let (baseline, workload) = phases(
            target,
            opts,
            [(&arn, "{}", "the baseline"), (&workload, event, &what)],
        )
        .await?;
        Ok((baseline, workload))
    }
    .await;
    let mut cleanup = Vec::new();
    for arn in &created {
        let body = Value::object_from([("stateMachineArn", Value::string(arn))]);
        if let Err(e) = target.call("DeleteStateMachine", &body).await {
            cleanup.push(format!("cannot delete {arn}: {e}"));
        }
    }
    match measured {
        Ok(r) if cleanup.is_empty() => Ok(r),
        Ok(r) => {
            // The figures stand; the leftover machines are worth a line.
            for c in &cleanup {
                eprintln!("stepstream bench: warning: {c}");
            }
            Ok(r)
        }
        Err(e) if cleanup.is_empty() => Err(e),
        Err(e) => Err(format!("{e}\n(and {})", cleanup.join("; "))),
    }
}

/// CreateStateMachine (EXPRESS); the new machine's ARN. `what` names the definition in errors.
async fn create(
    target: &Target,
    name: &str,
    definition: &str,
    what: &str,
) -> Result<String, String> {
    let body = Value::object_from([
        ("name", Value::string(name)),
        ("definition", Value::string(definition)),
        ("roleArn", Value::string(ROLE_ARN)),
        ("type", Value::string("EXPRESS")),
    ]);
    let answer = target
        .call("CreateStateMachine", &body)
        .await
        .map_err(|e| match e {
            CallError::Api { .. } => {
                format!("{} refused {what} (CreateStateMachine): {e}", target.url)
            }
            CallError::Transport(_) => e.to_string(),
        })?;
    answer
        .get("stateMachineArn")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "{}: the CreateStateMachine answer has no stateMachineArn: {}",
                target.url,
                json::to_string(&answer)
            )
        })
}

/// The phases alternate in this many slices over the same connections (baseline first in
/// the even slices, the workload first in the odd ones), so that the server's and the
/// machine's drift weigh on both alike: run one after the other, two identical phases
/// measured 0.82-1.29x of each other here; alternating, 0.97-1.05x.
const SLICES: u64 = 10;

/// Warm-up, then the counted requests, of StartSyncExecution on the baseline's and the
/// workload's `(arn, input, what)`: each phase's requests split in `SLICES` slices that
/// alternate with the other phase's.
async fn phases(
    target: &Arc<Target>,
    opts: &ApiOptions,
    machines: [(&str, &str, &str); 2],
) -> Result<(PhaseReport, PhaseReport), String> {
    let exchanges = machines.map(|(arn, input, _)| {
        let body = Value::object_from([
            ("stateMachineArn", Value::string(arn)),
            ("input", Value::string(input)),
        ]);
        Arc::new(Exchange {
            headers: target.headers("StartSyncExecution"),
            body: Bytes::from(json::to_string(&body)),
            errors: Mutex::new(Vec::new()),
        })
    });
    let connections = opts.concurrency.max(1);
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        workers.push(Connection::open(Arc::clone(target)).await?);
    }
    let warmup = (opts.executions / 50).max(200);
    let mut reports = [PhaseReport::default(), PhaseReport::default()];
    let mut hists = [latency_histogram(), latency_histogram()];
    for (k, exchange) in exchanges.iter().enumerate() {
        let (w, warm, _, _) = round(workers, exchange, warmup).await?;
        workers = w;
        if warm.succeeded == 0 {
            let first = exchange.kept().first().map(|(e, _)| e.clone());
            return Err(format!(
                "none of the {warmup} warm-up StartSyncExecution requests of {} at {} succeeded; the first: {}",
                machines[k].2,
                target.url,
                first.unwrap_or_default()
            ));
        }
        // The errors reported are the counted requests'; the warm-up's are only counted.
        exchange.kept().clear();
        reports[k].warmup_requests = warmup;
        reports[k].warmup_errors = warm.errors;
        reports[k].reconnects = warm.reconnects;
    }
    let slices = SLICES.min(opts.executions.max(1));
    for i in 0..slices {
        // This slice's share of the counted requests (they add up to `executions`).
        let count = opts.executions * (i + 1) / slices - opts.executions * i / slices;
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let cpu = thread_cpu_seconds();
            let (w, counted, seconds, hist) = round(workers, &exchanges[k], count).await?;
            workers = w;
            let r = &mut reports[k];
            r.client_cpu_seconds += thread_cpu_seconds() - cpu;
            r.requests += counted.succeeded + counted.errors;
            r.succeeded += counted.succeeded;
            r.errors += counted.errors;
            r.reconnects += counted.reconnects;
            r.seconds += seconds;
            r.slices
                .push((counted.succeeded + counted.errors) as f64 / seconds);
            hists[k].add(&hist).map_err(|e| e.to_string())?;
        }
    }
    drop(workers);
    for (k, r) in reports.iter_mut().enumerate() {
        r.latency_ns = [0.5, 0.9, 0.99, 0.999, 1.0].map(|q| hists[k].value_at_quantile(q));
        r.first_errors = std::mem::take(&mut *exchanges[k].kept());
    }
    let [baseline, workload] = reports;
    Ok((baseline, workload))
}

/// What one phase's requests share: the prepared request and the errors kept.
struct Exchange {
    headers: HeaderMap,
    body: Bytes,
    errors: Mutex<Vec<(String, u64)>>,
}

impl Exchange {
    /// Counts an error among the first few distinct ones (a lock taken only when a request
    /// failed).
    fn note(&self, error: String) {
        let mut kept = self.kept();
        if let Some((_, n)) = kept.iter_mut().find(|(e, _)| *e == error) {
            *n += 1;
        } else if kept.len() < KEPT_ERRORS {
            kept.push((error, 1));
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<(String, u64)>> {
        self.errors.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = Uri::from_static("/");
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Counts of one round.
#[derive(Default)]
struct Tally {
    succeeded: u64,
    errors: u64,
    reconnects: u64,
}

/// `count` requests over the connections, each taking the next number until none is left;
/// the connections (to use again), the counts, the seconds it took and the latencies (ns).
async fn round(
    workers: Vec<Connection>,
    exchange: &Arc<Exchange>,
    count: u64,
) -> Result<(Vec<Connection>, Tally, f64, Histogram<u64>), String> {
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in workers {
        let (exchange, next) = (Arc::clone(exchange), Arc::clone(&next));
        tasks.spawn(async move {
            let r = conn.requests(&exchange, &next, count).await;
            (conn, r)
        });
    }
    let mut hist = latency_histogram();
    let mut tally = Tally::default();
    let mut workers = Vec::new();
    let mut failed = None;
    while let Some(joined) = tasks.join_next().await {
        let (conn, r) = joined.map_err(|e| format!("a client task failed: {e}"))?;
        match r {
            Ok((t, h)) => {
                tally.succeeded += t.succeeded;
                tally.errors += t.errors;
                tally.reconnects += t.reconnects;
                hist.add(&h).map_err(|e| e.to_string())?;
                workers.push(conn);
            }
            // Stop the others: the server is gone.
            Err(e) => {
                failed.get_or_insert(e);
                next.store(count, Ordering::Relaxed);
            }
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    match failed {
        Some(e) => Err(e),
        None => Ok((workers, tally, seconds, hist)),
    }
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// One keep-alive connection to the server, opened again when it closes.
struct Connection {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    async fn open(target: Arc<Target>) -> Result<Connection, String> {
        let sender = target.connect().await?;
        Ok(Connection {
            target,
            sender: Some(sender),
        })
    }

    /// Requests until `next` passes `count`. Errors are counted and a few kept; an `Err` is
    /// only for a server that cannot be reached any more.
    async fn requests(
        &mut self,
        exchange: &Exchange,
        next: &AtomicU64,
        count: u64,
    ) -> Result<(Tally, Histogram<u64>), String> {
        let mut tally = Tally::default();
        let mut hist = latency_histogram();
        while next.fetch_add(1, Ordering::Relaxed) < count {
            let ready = match self.sender.as_mut() {
                Some(s) => s.ready().await.is_ok(),
                None => false,
            };
            if !ready {
                self.sender = Some(self.target.connect().await?);
                tally.reconnects += 1;
            }
            let Some(sender) = self.sender.as_mut() else {
                continue;
            };
            let t = Instant::now();
            let answer = tokio::time::timeout(REQUEST_LIMIT, async {
                let response = sender.send_request(exchange.request()).await?;
                let status = response.status().as_u16();
                let body = response.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, body))
            })
            .await;
            match answer {
                Ok(Ok((status, body))) => {
                    hist.saturating_record(t.elapsed().as_nanos() as u64);
                    match outcome(status, &body) {
                        None => tally.succeeded += 1,
                        Some(e) => {
                            tally.errors += 1;
                            exchange.note(e);
                        }
                    }
                }
                Ok(Err(e)) => {
                    tally.errors += 1;
                    exchange.note(format!("the connection broke: {e}"));
                    self.sender = None;
                }
                Err(_) => {
                    tally.errors += 1;
                    exchange.note(format!(
                        "no answer within {} s; the connection was closed",
                        REQUEST_LIMIT.as_secs()
                    ));
                    self.sender = None;
                }
            }
        }
        Ok((tally, hist))
    }
}

/// `None` for an answer with status SUCCEEDED, else what went wrong, in the server's words.
///
/// A success is recognised by `"status":"SUCCEEDED"` in the answer's bytes, without parsing
/// it: the answer is one flat object whose nested documents (`input`, `output`) are JSON
/// strings, where every quote is escaped, so that text can only be the top-level field. The
/// client shares the cores with the server, and a 2 KiB parse per request would be its work
/// counted against the server's rate.
fn outcome(status: u16, body: &[u8]) -> Option<String> {
    if status == 200 && super::find(body, br#""status":"SUCCEEDED""#).is_some() {
        return None;
    }
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let Ok(v) = json::parse(body) else {
        return Some(format!(
            "HTTP {status}, not a JSON answer: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    };
    Some(if status == 200 {
        let mut s = format!(
            "status {}",
            field(&v, "status").unwrap_or_else(|| "(none)".into())
        );
        for k in ["error", "cause"] {
            if let Some(x) = field(&v, k) {
                s.push_str(&format!(", {k} {x}"));
            }
        }
        s
    } else {
        format!(
            "HTTP {status} {}: {}",
            field(&v, "__type").unwrap_or_else(|| "(no __type)".into()),
            field(&v, "message").unwrap_or_default()
        )
    })
}

/// Where the server is: `http://HOST[:PORT]`, resolved once.
struct Target {
    url: String,
    addr: SocketAddr,
    /// `HOST[:PORT]` as given, for the Host header.
    authority: HeaderValue,
}

/// Why an action failed: the server's error answer, or no answer at all.
#[derive(Debug)]
enum CallError {
    Api {
        status: u16,
        code: String,
        message: String,
    },
    Transport(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Api {
                status,
                code,
                message,
            } => write!(f, "{code}: {message} (HTTP {status})"),
            CallError::Transport(s) => f.write_str(s),
        }
    }
}

impl Target {
    async fn parse(url: &str) -> Result<Target, String> {
        let bad = |why: &str| format!("--api {url}: {why}");
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some(("https", _)) => {
                return Err(bad(
                    "the bench's client speaks plain http only; give the http:// address of stepstream serve",
                ));
            }
            _ => return Err(bad("expected http://HOST:PORT")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(bad(
                "expected http://HOST:PORT (the API is served at /, so no path)",
            ));
        }
        let uri: Uri = format!("http://{authority}/")
            .parse()
            .map_err(|e| bad(&format!("not a valid address: {e}")))?;
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| bad(&format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| bad(&format!("{host} resolves to no address")))?;
        Ok(Target {
            url: url.to_string(),
            addr,
            authority: HeaderValue::from_str(authority).map_err(|e| bad(&e.to_string()))?,
        })
    }

    fn headers(&self, action: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, self.authority.clone());
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        h.insert(
            "x-amz-target",
            HeaderValue::from_str(&format!("AWSStepFunctions.{action}"))
                .expect("action names are header-safe"),
        );
        h
    }

    /// A new keep-alive connection (TCP_NODELAY, as the server's side is).
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let unreachable = |why: String| {
            format!(
                "cannot connect to {} ({}): {why}; is `stepstream serve` listening there?",
                self.url, self.addr
            )
        };
        let stream = tokio::time::timeout(CONNECT_LIMIT, TcpStream::connect(self.addr))
            .await
            .map_err(|_| unreachable(format!("no answer within {} s", CONNECT_LIMIT.as_secs())))?
            .map_err(|e| unreachable(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| unreachable(e.to_string()))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(async move {
            // Its end shows on the sender (not ready, or the request fails).
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// One action on a connection of its own; the answer, or the server's error.
    async fn call(&self, action: &str, body: &Value) -> Result<Value, CallError> {
        let mut sender = self.connect().await.map_err(CallError::Transport)?;
        let mut req = Request::new(Full::new(Bytes::from(json::to_string(body))));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = Uri::from_static("/");
        *req.headers_mut() = self.headers(action);
        let broke = |e: String| CallError::Transport(format!("{action} at {}: {e}", self.url));
        let (status, bytes) = tokio::time::timeout(REQUEST_LIMIT, async {
            let response = sender.send_request(req).await?;
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, bytes))
        })
        .await
        .map_err(|_| broke(format!("no answer within {} s", REQUEST_LIMIT.as_secs())))?
        .map_err(|e| broke(e.to_string()))?;
        let v = json::parse(&bytes).map_err(|_| {
            broke(format!(
                "HTTP {status}, not an AWS JSON answer (is this stepstream serve?): {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })?;
        if status == 200 {
            return Ok(v);
        }
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Err(CallError::Api {
            status,
            code: field("__type"),
            message: field("message"),
        })
    }
}

/// CPU time (user + system) of the calling thread, seconds (0 where /proc is not there).
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/stat").map_or(0.0, |s| {
        // utime and stime are fields 14 and 15, counted after the command name (which
        // may hold spaces, so split at its last ')'); clock ticks of 1/100 s.
        s.rsplit_once(')').map_or(0, |(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
        }) as f64
            / 100.0
    })
}

/// This process's arguments, quoted for a POSIX shell where they need it.
fn command_line() -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    std::env::args()
        .enumerate()
        .map(|(i, a)| {
            // The program as a person types it, not the path it was found at.
            let a = if i == 0 {
                std::path::Path::new(&a)
                    .file_name()
                    .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
            } else {
                a
            };
            if !a.is_empty() && a.chars().all(plain) {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use stepstream::api::{Limits, Service, Settings};
    use stepstream::tasks::Registry;

    /// A real API server on 127.0.0.1:0, on its own runtime thread, stopped when dropped.
    struct Server {
        url: String,
        service: Arc<Service>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Server {
        fn start() -> Server {
            let service = Arc::new(Service::start(Settings::default(), Registry::new()).unwrap());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let (addr_tx, addr_rx) = std::sync::mpsc::channel();
            let s = Arc::clone(&service);
            let thread = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    addr_tx.send(listener.local_addr().unwrap()).unwrap();
                    let stop = async move {
                        let _ = stopped.await;
                    };
                    stepstream::api::serve(
                        listener,
                        s,
                        Limits::default(),
                        stop,
                        Duration::from_secs(1),
                    )
                    .await;
                });
            });
            let addr = addr_rx.recv().unwrap();
            Server {
                url: format!("http://{addr}"),
                service,
                stop: Some(stop),
                thread: Some(thread),
            }
        }

        /// The names of the state machines the server holds.
        fn machines(&self) -> Vec<String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let v = rt
                .block_on(
                    self.service
                        .call("ListStateMachines", &Value::empty_object()),
                )
                .unwrap();
            v.get("stateMachines")
                .and_then(Value::as_array)
                .map(|a| {
                    a.as_slice()
                        .iter()
                        .filter_map(|m| m.get("name")?.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn workloads() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/workloads")
    }

    /// A file in a fresh temporary directory, holding `text`.
    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "stepstream-bench-api-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn opts(url: &str, definition: PathBuf, input_file: PathBuf) -> ApiOptions {
        ApiOptions {
            url: url.to_string(),
            definition,
            input_file,
            concurrency: 4,
            executions: 300,
        }
    }

    #[test]
    fn both_phases_count_every_request_and_the_machines_are_deleted() {
        let server = Server::start();
        let def = temp_file(
            "shape.asl.json",
            r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{"id.$":"$.eventId"},"Next":"B"},"B":{"Type":"Succeed"}}}"#,
        );
        let event = temp_file("event.json", r#"{"eventId":"e-1","n":1}"#);
        let r = run_api(&opts(&server.url, def, event)).unwrap();
        for p in [&r.baseline, &r.workload] {
            assert_eq!(p.requests, 300, "{p:?}");
            assert_eq!(p.succeeded + p.errors, p.requests, "{p:?}");
            assert_eq!(p.errors, 0, "{p:?}");
            assert_eq!(p.warmup_requests, 200);
            // Ten alternating slices of 30 requests each.
            assert_eq!(p.slices.len(), 10, "{p:?}");
            assert!(p.slices.iter().all(|r| *r > 0.0), "{p:?}");
            assert!(p.latency_ns[0] > 0 && p.latency_ns[0] <= p.latency_ns[4]);
        }
        assert!(r.ratio() > 0.0);
        assert_eq!(server.machines(), Vec::<String>::new());
        let j = r.to_json();
        assert_eq!(j.get("concurrency").and_then(Value::as_i64), Some(4));
        assert_eq!(
            j.get("workload")
                .and_then(|w| w.get("requests"))
                .and_then(Value::as_i64),
            Some(300)
        );
        assert!(r.to_text().contains("workload / baseline"));
    }

    #[test]
    fn executions_that_fail_are_counted_as_errors_with_their_error_and_cause() {
        let server = Server::start();
        // Half the executions fail (States.MathRandom picks 0 or 1 in each).
        let def = temp_file(
            "half.asl.json",
            r#"{"StartAt":"R","States":{
                "R":{"Type":"Pass","Parameters":{"r.$":"States.MathRandom(0, 2)"},"Next":"C"},
                "C":{"Type":"Choice","Choices":[{"Variable":"$.r","NumericEquals":0,"Next":"F"}],"Default":"S"},
                "F":{"Type":"Fail","Error":"Bench.Boom","Cause":"on purpose"},
                "S":{"Type":"Succeed"}}}"#,
        );
        let event = temp_file("half-event.json", "{}");
        let r = run_api(&opts(&server.url, def, event)).unwrap();
        let w = &r.workload;
        assert_eq!(w.succeeded + w.errors, 300, "{w:?}");
        assert!(w.succeeded > 0 && w.errors > 0, "{w:?}");
        assert_eq!(
            w.first_errors,
            vec![(
                "status FAILED, error Bench.Boom, cause on purpose".to_string(),
                w.errors
            )]
        );
        assert!(r.to_text().contains(&format!(
            "{} x status FAILED, error Bench.Boom, cause on purpose",
            w.errors
        )));
        assert_eq!(r.baseline.errors, 0);
        assert!(r.baseline.first_errors.is_empty());
    }

    #[test]
    fn a_workload_whose_every_execution_fails_stops_after_the_warm_up_with_its_error() {
        let server = Server::start();
        let def = temp_file(
            "fail.asl.json",
            r#"{"StartAt":"F","States":{"F":{"Type":"Fail","Error":"Bench.Boom","Cause":"on purpose"}}}"#,
        );
        let event = temp_file("e.json", "{}");
        // Every warm-up request fails too, which stops the run with the first error.
        let e = run_api(&opts(&server.url, def, event)).unwrap_err();
        assert!(
            e.contains("status FAILED, error Bench.Boom, cause on purpose"),
            "{e}"
        );
        assert_eq!(server.machines(), Vec::<String>::new());
    }

    #[test]
    fn a_definition_the_server_rejects_gives_its_message() {
        let server = Server::start();
        let def = temp_file(
            "broken.asl.json",
            r#"{"StartAt":"Nowhere","States":{"A":{"Type":"Pass","End":true}}}"#,
        );
        let event = temp_file("e2.json", "{}");
        let e = run_api(&opts(&server.url, def.clone(), event)).unwrap_err();
        assert!(e.contains(&def.display().to_string()), "{e}");
        assert!(
            e.contains("InvalidDefinition: Invalid State Machine Definition"),
            "{e}"
        );
        assert!(e.contains("Nowhere"), "{e}");
        // The baseline's machine, created first, is gone as well.
        assert_eq!(server.machines(), Vec::<String>::new());
    }

    #[test]
    fn an_unreachable_url_says_where() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let w = workloads();
        let e = run_api(&opts(
            &url,
            w.join("w1_transform.asl.json"),
            w.join("event.json"),
        ))
        .unwrap_err();
        assert!(e.starts_with(&format!("cannot connect to {url}")), "{e}");
        assert!(e.contains("is `stepstream serve` listening there?"), "{e}");
    }

    #[test]
    fn connections_the_server_closes_are_opened_again_and_counted() {
        // A stand-in server that answers each request with `Connection: close`.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        return;
                    };
                    tokio::spawn(async move {
                        let answer = hyper::service::service_fn(|req: Request<_>| async move {
                            let target = req.headers()["x-amz-target"].to_str().unwrap();
                            let body = match target {
                                "AWSStepFunctions.CreateStateMachine" => {
                                    r#"{"stateMachineArn":"arn:aws:states:us-east-1:123456789012:stateMachine:x"}"#
                                }
                                "AWSStepFunctions.StartSyncExecution" => r#"{"status":"SUCCEEDED"}"#,
                                _ => "{}",
                            };
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from(body),
                            )))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(false)
                            .serve_connection(TokioIo::new(sock), answer)
                            .await;
                    });
                }
            })
        });
        let w = workloads();
        let mut o = opts(&url, w.join("w1_transform.asl.json"), w.join("event.json"));
        o.concurrency = 2;
        o.executions = 100;
        let r = run_api(&o).unwrap();
        for p in [&r.baseline, &r.workload] {
            assert_eq!((p.succeeded, p.errors), (100, 0), "{p:?}");
            // Every request but each connection's first needed a new connection.
            assert!(p.reconnects >= 100 + p.warmup_requests - 2, "{p:?}");
        }
        drop(thread);
    }

    #[test]
    fn bad_urls_are_refused_before_connecting() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for (url, why) in [
            ("https://127.0.0.1:8083", "plain http only"),
            ("127.0.0.1:8083", "expected http://HOST:PORT"),
            ("http://127.0.0.1:8083/states", "no path"),
        ] {
            let e = rt.block_on(Target::parse(url)).err().unwrap();
            assert!(
                e.starts_with(&format!("--api {url}: ")) && e.contains(why),
                "{e}"
            );
        }
        let t = rt
            .block_on(Target::parse("http://127.0.0.1:8083/"))
            .unwrap();
        assert_eq!(t.addr, "127.0.0.1:8083".parse().unwrap());
        assert_eq!(t.authority, "127.0.0.1:8083");
    }

    #[test]
    fn answers_are_told_apart_without_parsing_successes() {
        let ok = br#"{"executionArn":"a","input":"{\"status\":\"FAILED\"}","status":"SUCCEEDED"}"#;
        assert_eq!(outcome(200, ok), None);
        // A quoted status inside the input string is not the answer's.
        let failed =
            br#"{"input":"{\"status\":\"SUCCEEDED\"}","status":"FAILED","error":"E","cause":"C"}"#;
        assert_eq!(
            outcome(200, failed).as_deref(),
            Some("status FAILED, error E, cause C")
        );
        assert_eq!(
            outcome(
                400,
                br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#
            )
            .as_deref(),
            Some("HTTP 400 ThrottlingException: Rate exceeded")
        );
        assert_eq!(
            outcome(502, b"bad gateway").as_deref(),
            Some("HTTP 502, not a JSON answer: bad gateway")
        );
    }
}
