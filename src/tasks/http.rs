//! HTTP out of tasks: the pooled client every HTTP-speaking resource shares, the host allowlist
//! that keeps a definition from calling where it should not, the TLS trust of https endpoints,
//! and the HTTP Task (`arn:aws:states:::http:invoke`) with AWS's request fields, result shape
//! and error names.
//!
//! Each shard thread has its own clients (and so its own pools of keep-alive connections), one
//! per TLS setting, built on first use on that thread's runtime. What a request may reach is
//! decided by the binding's `Policy`, never by the definition: the host must be on the allowlist
//! (loopback only unless configured), credentials come from the binding's configured headers
//! and client certificate, https trusts the system's CA certificates plus the binding's
//! `ca_file`, and the 256 KiB limit applies to what is sent and what is read back (a larger
//! response is not read past the limit).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{Exchange, Reply, Resource, TaskCall, Traced};
use crate::exec::TaskError;
use crate::json::{self, Value};

/// The most a task may send or receive, as for every payload of an execution.
pub const BODY_LIMIT: usize = 256 * 1024;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

thread_local! {
    /// This thread's clients, by `Tls::id`.
    static CLIENTS: RefCell<Vec<(usize, HttpClient)>> = const { RefCell::new(Vec::new()) };
}

/// This thread's pooled client for `tls` (http and https alike).
fn client(tls: &Tls) -> HttpClient {
    CLIENTS.with(|clients| {
        let mut clients = clients.borrow_mut();
        if let Some((_, c)) = clients.iter().find(|(id, _)| *id == tls.id) {
            return c.clone();
        }
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls.config).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let c = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .build(connector);
        clients.push((tls.id, c.clone()));
        c
    })
}

/// What https connections trust and present: the system's CA certificates (as found by
/// `rustls-native-certs`, which honours `SSL_CERT_FILE` and `SSL_CERT_DIR`), plus those of a
/// binding's `ca_file`, and optionally a client certificate for endpoints that ask for one.
#[derive(Clone)]
pub struct Tls {
    /// Which per-thread client serves this setting.
    id: usize,
    config: Arc<rustls::ClientConfig>,
    /// How many CA certificates are trusted; none means every https request would fail with
    /// a handshake error, so it is refused with advice instead.
    roots: usize,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls {{ roots: {} }}", self.roots)
    }
}

impl Tls {
    /// The system's CA certificates only; loaded once per process, on the first request.
    pub fn system() -> &'static Tls {
        static SYSTEM: OnceLock<Tls> = OnceLock::new();
        SYSTEM.get_or_init(|| {
            Tls::build(Vec::new(), None)
                .expect("a TLS setting without files or client certificate cannot fail")
        })
    }

    /// The system's CA certificates plus those in `ca_file` (PEM), presenting the certificate
    /// chain and key of `client` (PEM files) when set. An error names the config key of the
    /// file at fault (`TlsError::key`) and what is wrong.
    pub fn from_files(
        ca_file: Option<&Path>,
        client: Option<(&Path, &Path)>,
    ) -> Result<Tls, TlsError> {
        let mut extra = Vec::new();
        if let Some(path) = ca_file {
            extra = pem_certificates("ca_file", path)?;
        }
        let client = match client {
            None => None,
            Some((cert_path, key_path)) => {
                let chain = pem_certificates("client_cert_file", cert_path)?;
                let key =
                    PrivateKeyDer::from_pem_file(key_path).map_err(|error| TlsError::NoKey {
                        path: key_path.to_path_buf(),
                        error,
                    })?;
                Some((chain, key))
            }
        };
        Tls::build(extra, client)
    }

    /// The setting a `[[resources]]` entry's TLS files describe.
    pub fn from_config(files: &crate::config::TlsFiles) -> Result<Tls, TlsError> {
        Tls::from_files(
            files.ca_file.as_deref(),
            files
                .client
                .as_ref()
                .map(|(cert, key)| (cert.as_path(), key.as_path())),
        )
    }

    fn build(
        extra: Vec<CertificateDer<'static>>,
        client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<Tls, TlsError> {
        static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable entries of the system store are skipped, as a browser would.
        let system = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(system.certs);
        for cert in extra {
            roots.add(cert).map_err(TlsError::NotACa)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?;
        let n = roots.len();
        let builder = builder.with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsError::KeyMismatch)?,
        };
        Ok(Tls {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            config: Arc::new(config),
            roots: n,
        })
    }
}

/// Why the TLS files of a binding cannot be used; `key` is the config key of the file at
/// fault, and the message names the file.
#[derive(Debug)]
pub enum TlsError {
    /// A certificate file cannot be read.
    Unreadable {
        key: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// A certificate file is not PEM.
    NotPem {
        key: &'static str,
        path: PathBuf,
        error: rustls::pki_types::pem::Error,
    },
    /// A certificate file holds no certificate.
    NoCertificate { key: &'static str, path: PathBuf },
    /// `client_key_file` holds no private key rustls can use.
    NoKey {
        path: PathBuf,
        error: rustls::pki_types::pem::Error,
    },
    /// A certificate of `ca_file` cannot be a trust anchor.
    NotACa(rustls::Error),
    /// rustls refused the protocol versions (a build without TLS 1.2 or 1.3).
    Setup(rustls::Error),
    /// `client_key_file` does not go with `client_cert_file`.
    KeyMismatch(rustls::Error),
}

impl TlsError {
    /// The config key of the file at fault.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Unreadable { key, .. }
            | TlsError::NotPem { key, .. }
            | TlsError::NoCertificate { key, .. } => key,
            TlsError::NoKey { .. } | TlsError::KeyMismatch(_) => "client_key_file",
            TlsError::NotACa(_) | TlsError::Setup(_) => "ca_file",
        }
    }
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Unreadable { path, error, .. } => {
                write!(f, "cannot read '{}': {error}", path.display())
            }
            TlsError::NotPem { path, error, .. } => {
                write!(
                    f,
                    "'{}' is not a PEM certificate file: {error}",
                    path.display()
                )
            }
            TlsError::NoCertificate { path, .. } => write!(
                f,
                "'{}' holds no certificate (expected PEM blocks 'BEGIN CERTIFICATE')",
                path.display()
            ),
            TlsError::NoKey { path, error } => write!(
                f,
                "'{}' holds no usable private key (PEM: PKCS#8, PKCS#1 or SEC1): {error}",
                path.display()
            ),
            TlsError::NotACa(e) => write!(f, "a certificate is not a usable CA: {e}"),
            TlsError::Setup(e) => write!(f, "TLS setup failed: {e}"),
            TlsError::KeyMismatch(e) => {
                write!(f, "the key does not go with client_cert_file: {e}")
            }
        }
    }
}

impl std::error::Error for TlsError {}

/// The certificates of the PEM file of config key `key`; an error when it cannot be read or
/// holds none.
fn pem_certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = std::fs::read(path).map_err(|error| TlsError::Unreadable {
        key,
        path: path.to_path_buf(),
        error,
    })?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::NotPem {
            key,
            path: path.to_path_buf(),
            error,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            key,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// What a binding lets its requests do.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Hosts (`name`, `name:port`, or `*` for any) requests may go to. Empty means loopback
    /// only (`localhost`, `127.0.0.1`, `::1`).
    pub allowed_hosts: Vec<String>,
    /// Headers added to every request (credentials from the config or the environment);
    /// they replace a header of the same name that the definition set.
    pub headers: Vec<(String, String)>,
    /// Per-request time limit (on top of the state's TimeoutSeconds).
    pub timeout: Duration,
    /// What https connections trust and present; `None` = the system's CA certificates.
    pub tls: Option<Tls>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            allowed_hosts: Vec::new(),
            headers: Vec::new(),
            timeout: Duration::from_secs(crate::config::DEFAULT_RESOURCE_TIMEOUT_SECONDS),
            tls: None,
        }
    }
}

impl Policy {
    /// The TLS setting requests use.
    pub fn tls(&self) -> &Tls {
        self.tls.as_ref().unwrap_or_else(|| Tls::system())
    }

    /// Whether `uri` may be called; the error says which host and which key allows it.
    pub fn check(&self, uri: &hyper::Uri) -> Result<(), String> {
        let default_port = match uri.scheme_str() {
            Some("http") => 80,
            Some("https") => {
                if self.tls().roots == 0 {
                    return Err(format!(
                        "'{uri}': no CA certificate is trusted (the system store is empty or missing): install the ca-certificates package, or set ca_file in this [[resources]] entry"
                    ));
                }
                443
            }
            _ => return Err(format!("'{uri}' is not an http:// or https:// URL")),
        };
        let host = uri.host().unwrap_or("").trim_start_matches('[');
        let host = host.trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(default_port);
        let allowed = if self.allowed_hosts.is_empty() {
            matches!(host, "localhost" | "127.0.0.1" | "::1")
        } else {
            self.allowed_hosts.iter().any(|a| {
                a == "*"
                    || a.eq_ignore_ascii_case(host)
                    || a.rsplit_once(':').is_some_and(|(h, p)| {
                        h.trim_matches(|c| c == '[' || c == ']')
                            .eq_ignore_ascii_case(host)
                            && p.parse() == Ok(port)
                    })
            })
        };
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "host '{host}' (port {port}) is not allowed: add it to allowed_hosts of this [[resources]] entry (the default allows loopback only)"
            ))
        }
    }
}

/// A response, read to its end (at most `BODY_LIMIT` bytes of body).
pub struct Response {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// Why a request got no response.
pub enum Failure {
    /// The policy refused the request.
    Refused(String),
    /// Connecting, writing or reading failed.
    Socket(String),
    TimedOut,
    /// The response body is larger than `BODY_LIMIT`.
    TooLarge,
}

/// Sends one request with the policy's headers and time limit.
pub async fn send(
    policy: &Policy,
    mut request: hyper::Request<Full<Bytes>>,
) -> Result<Response, Failure> {
    policy.check(request.uri()).map_err(Failure::Refused)?;
    add_policy_headers(policy, request.headers_mut());
    let exchange = async {
        let response = client(policy.tls())
            .request(request)
            .await
            .map_err(|e| Failure::Socket(advise(describe(&e))))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Failure::TooLarge
                } else {
                    Failure::Socket(e.to_string())
                }
            })?
            .to_bytes();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    };
    match tokio::time::timeout(policy.timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(Failure::TimedOut),
    }
}

/// Sets the binding's headers (its credentials) on a request's headers.
fn add_policy_headers(policy: &Policy, headers: &mut hyper::HeaderMap) {
    for (k, v) in &policy.headers {
        let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) else {
            continue;
        };
        headers.insert(k, v);
    }
}

/// An error and its sources on one line ("client error (Connect): tcp connect error: Connection
/// refused").
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// A TLS failure the binding can fix, with the key that fixes it.
fn advise(mut why: String) -> String {
    if why.contains("UnknownIssuer") {
        why.push_str(
            " (the server's certificate is not signed by a trusted CA: to trust a private CA, set ca_file in this [[resources]] entry)",
        );
    } else if why.contains("CertificateRequired") {
        why.push_str(
            " (the server asks for a client certificate: set client_cert_file and client_key_file in this [[resources]] entry)",
        );
    }
    why
}

/// Response headers as AWS shows them: lower-case names, each with its list of values.
pub fn headers_json(headers: &hyper::HeaderMap) -> Value {
    let mut out: Vec<(&str, Vec<Value>)> = Vec::new();
    for (name, value) in headers {
        let v = Value::string(&String::from_utf8_lossy(value.as_bytes()));
        match out.iter_mut().find(|(n, _)| *n == name.as_str()) {
            Some((_, vs)) => vs.push(v),
            None => out.push((name.as_str(), vec![v])),
        }
    }
    Value::object_from(out.into_iter().map(|(n, vs)| (n, Value::array(vs))))
}

/// The HTTP Task: `arn:aws:states:::http:invoke`. Each task is sent with the policy of the
/// first route that serves its `Authentication.ConnectionArn`, so each EventBridge connection
/// a definition names can have its own credentials, hosts and TLS settings.
pub struct HttpInvoke {
    pub routes: Vec<Route>,
}

/// What serves the tasks of some connections.
pub struct Route {
    /// The `Authentication.ConnectionArn`s served (an ARN or a pattern with `*`); `None`:
    /// every task, whatever its connection.
    pub connection: Option<String>,
    pub policy: Policy,
}

impl HttpInvoke {
    /// The policy for a task naming `connection`, or why there is none.
    fn policy_for(&self, connection: Option<&str>) -> Result<&Policy, TaskError> {
        let served = |r: &&Route| match (&r.connection, connection) {
            (None, _) => true,
            (Some(pattern), Some(c)) => super::wildcard(pattern, c),
            (Some(_), None) => false,
        };
        match self.routes.iter().find(served) {
            Some(r) => Ok(&r.policy),
            None => Err(bad_parameter(match connection {
                Some(c) => format!(
                    "Authentication.ConnectionArn '{c}' has no binding: add connection = \"{c}\" (or a pattern with *) to a [[resources]] entry for arn:aws:states:::http:invoke"
                ),
                None => "this task names no Authentication.ConnectionArn, and every [[resources]] entry for arn:aws:states:::http:invoke serves only the connections its connection key names".to_string(),
            })),
        }
    }
}

impl HttpInvoke {
    /// The policy a task is sent with, its request, and the request body (for a trace).
    fn prepare(
        &self,
        call: &TaskCall,
    ) -> Result<(Policy, hyper::Request<Full<Bytes>>, Bytes), TaskError> {
        let connection = call
            .input
            .get("Authentication")
            .and_then(|a| a.get("ConnectionArn"))
            .and_then(Value::as_str);
        let policy = self.policy_for(connection)?.clone();
        let (request, body) = http_request_and_body(&call.input)?;
        Ok((policy, request, body))
    }
}

impl Resource for HttpInvoke {
    fn invoke(&self, call: TaskCall) -> Reply {
        let (policy, request, _) = match self.prepare(&call) {
            Ok(p) => p,
            Err(e) => return Reply::Ready(Err(e)),
        };
        Reply::Later(Box::pin(async move {
            let sent = send(&policy, request).await;
            outcome(&policy, &sent)
        }))
    }

    fn invoke_traced(&self, call: TaskCall, reveal_secrets: bool) -> Option<Traced> {
        let prepared = self.prepare(&call);
        Some(Box::pin(async move {
            let (policy, request, body) = match prepared {
                Ok(p) => p,
                Err(e) => return (Err(e), Exchange::default()),
            };
            let protocol = request.uri().scheme_str().unwrap_or("http").to_string();
            let mut shown = request.headers().clone();
            if reveal_secrets {
                add_policy_headers(&policy, &mut shown);
            }
            let request_view = Value::object_from([
                ("protocol", Value::string(&protocol)),
                ("method", Value::string(request.method().as_str())),
                ("url", Value::from(request.uri().to_string())),
                ("headers", Value::from(headers_text(&shown))),
                (
                    "body",
                    Value::from(String::from_utf8_lossy(&body).into_owned()),
                ),
            ]);
            let sent = send(&policy, request).await;
            let response_view = sent.as_ref().ok().map(|r| {
                Value::object_from([
                    ("protocol", Value::string(&protocol)),
                    ("statusCode", Value::from(r.status.to_string())),
                    ("statusMessage", Value::string(status_text(r.status))),
                    ("headers", Value::from(headers_text(&r.headers))),
                    (
                        "body",
                        Value::from(String::from_utf8_lossy(&r.body).into_owned()),
                    ),
                ])
            });
            let exchange = Exchange {
                request: Some(request_view),
                response: response_view,
            };
            (outcome(&policy, &sent), exchange)
        }))
    }
}

/// What a sent request comes to for the task: the result for a 2xx response, else AWS's
/// error for the status or the failure.
fn outcome(policy: &Policy, sent: &Result<Response, Failure>) -> Result<Value, TaskError> {
    let response = sent.as_ref().map_err(|f| match f {
        Failure::Refused(why) => TaskError::new("States.Runtime", why.clone()),
        Failure::Socket(why) => TaskError::new("States.Http.Socket", why.clone()),
        Failure::TimedOut => TaskError::new(
            "States.Timeout",
            format!(
                "the HTTP request did not complete within {} s (timeout_seconds of the binding)",
                policy.timeout.as_secs_f64()
            ),
        ),
        Failure::TooLarge => TaskError::new(
            "States.DataLimitExceeded",
            format!("the HTTP response body is larger than {BODY_LIMIT} bytes"),
        ),
    })?;
    let result = http_result(response);
    if (200..300).contains(&response.status) {
        Ok(result)
    } else {
        Err(TaskError::new(
            &format!("States.Http.StatusCode.{}", response.status),
            json::to_string(&result),
        ))
    }
}

/// Headers on one line, as TestState's trace shows them: `[name: value, name: value]`.
fn headers_text(headers: &hyper::HeaderMap) -> String {
    let mut out = String::from("[");
    for (i, (name, value)) in headers.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name.as_str());
        out.push_str(": ");
        out.push_str(&String::from_utf8_lossy(value.as_bytes()));
    }
    out.push(']');
    out
}

fn status_text(status: u16) -> &'static str {
    hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// `{StatusCode, StatusText, Headers, ResponseBody}`; a JSON body (by content type, or one that
/// parses) becomes JSON, any other body a string.
fn http_result(r: &Response) -> Value {
    let text = String::from_utf8_lossy(&r.body);
    let json_type = r
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    let body = if r.body.is_empty() {
        Value::string("")
    } else {
        match json::parse(&r.body) {
            Ok(v) if json_type || matches!(v, Value::Object(_) | Value::Array(_)) => v,
            _ => Value::string(&text),
        }
    };
    Value::object_from([
        ("StatusCode", Value::int(r.status as i64)),
        ("StatusText", Value::string(status_text(r.status))),
        ("Headers", headers_json(&r.headers)),
        ("ResponseBody", body),
    ])
}

fn bad_parameter(what: impl Into<String>) -> TaskError {
    TaskError::new("States.Runtime", what.into())
}

/// Builds the request from the task's Parameters.
#[cfg(test)]
fn http_request(p: &Value) -> Result<hyper::Request<Full<Bytes>>, TaskError> {
    http_request_and_body(p).map(|(r, _)| r)
}

/// Builds the request from the task's Parameters; also gives its body.
fn http_request_and_body(p: &Value) -> Result<(hyper::Request<Full<Bytes>>, Bytes), TaskError> {
    let endpoint = p
        .get("ApiEndpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_parameter("http:invoke needs Parameters.ApiEndpoint (a URL string)"))?;
    let method = p.get("Method").and_then(Value::as_str).ok_or_else(|| {
        bad_parameter(
            "http:invoke needs Parameters.Method (GET, POST, PUT, DELETE, PATCH, OPTIONS or HEAD)",
        )
    })?;
    let method = match method {
        "GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "HEAD" => {
            hyper::Method::from_bytes(method.as_bytes())
                .map_err(|e| bad_parameter(e.to_string()))?
        }
        other => {
            return Err(bad_parameter(format!(
                "Parameters.Method '{other}' is not one of GET, POST, PUT, DELETE, PATCH, OPTIONS, HEAD"
            )));
        }
    };
    let mut url = endpoint.to_string();
    if let Some(q) = p.get("QueryParameters") {
        let Some(fields) = q.as_object() else {
            return Err(bad_parameter(
                "Parameters.QueryParameters must be an object",
            ));
        };
        let mut pairs = Vec::new();
        for (k, v) in fields.iter() {
            flatten_query(k.as_str(), v, ArrayFormat::Repeat, &mut pairs);
        }
        if !pairs.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&encode_pairs(&pairs));
        }
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| bad_parameter(format!("Parameters.ApiEndpoint '{url}' is not a URL: {e}")))?;
    let mut builder = hyper::Request::builder().method(method).uri(uri);
    let mut has_content_type = false;
    if let Some(h) = p.get("Headers") {
        let Some(fields) = h.as_object() else {
            return Err(bad_parameter("Parameters.Headers must be an object"));
        };
        for (k, v) in fields.iter() {
            let value = match v {
                Value::String(s) => s.as_str().to_string(),
                other => json::to_string(other),
            };
            has_content_type |= k.as_str().eq_ignore_ascii_case("content-type");
            builder = builder.header(k.as_str(), value);
        }
    }
    let body = match p.get("RequestBody") {
        None => Vec::new(),
        Some(body) => {
            let encoding = p
                .get("Transform")
                .and_then(|t| t.get("RequestBodyEncoding"))
                .and_then(Value::as_str)
                .unwrap_or("NONE");
            match (encoding, body) {
                ("URL_ENCODED", Value::Object(fields)) => {
                    let format = p
                        .get("Transform")
                        .and_then(|t| t.get("RequestEncodingOptions"))
                        .and_then(|o| o.get("ArrayFormat"))
                        .and_then(Value::as_str)
                        .map_or(Ok(ArrayFormat::Indices), ArrayFormat::parse)?;
                    let mut pairs = Vec::new();
                    for (k, v) in fields.iter() {
                        flatten_query(k.as_str(), v, format, &mut pairs);
                    }
                    if !has_content_type {
                        builder = builder.header(
                            hyper::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        );
                    }
                    encode_pairs(&pairs).into_bytes()
                }
                ("URL_ENCODED", _) => {
                    return Err(bad_parameter(
                        "Transform.RequestBodyEncoding URL_ENCODED needs an object RequestBody",
                    ));
                }
                ("NONE", Value::String(s)) => s.as_str().as_bytes().to_vec(),
                ("NONE", v) => {
                    if !has_content_type {
                        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
                    }
                    json::to_string(v).into_bytes()
                }
                (other, _) => {
                    return Err(bad_parameter(format!(
                        "Transform.RequestBodyEncoding '{other}' is not NONE or URL_ENCODED"
                    )));
                }
            }
        }
    };
    if body.len() > BODY_LIMIT {
        return Err(TaskError::new(
            "States.DataLimitExceeded",
            format!(
                "the HTTP request body is {} bytes, more than {BODY_LIMIT}",
                body.len()
            ),
        ));
    }
    let body = Bytes::from(body);
    let request = builder
        .body(Full::new(body.clone()))
        .map_err(|e| bad_parameter(format!("http:invoke: {e}")))?;
    Ok((request, body))
}

/// How arrays are written in URL-encoded bodies (AWS's RequestEncodingOptions.ArrayFormat).
#[derive(Clone, Copy, PartialEq, Debug)]
enum ArrayFormat {
    /// `a[0]=x&a[1]=y`
    Indices,
    /// `a=x&a=y`
    Repeat,
    /// `a=x,y`
    Commas,
    /// `a[]=x&a[]=y`
    Brackets,
}

impl ArrayFormat {
    fn parse(s: &str) -> Result<ArrayFormat, TaskError> {
        Ok(match s {
            "INDICES" => ArrayFormat::Indices,
            "REPEAT" => ArrayFormat::Repeat,
            "COMMAS" => ArrayFormat::Commas,
            "BRACKETS" => ArrayFormat::Brackets,
            other => {
                return Err(bad_parameter(format!(
                    "RequestEncodingOptions.ArrayFormat '{other}' is not INDICES, REPEAT, COMMAS or BRACKETS"
                )));
            }
        })
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.as_str().to_string(),
        other => json::to_string(other),
    }
}

/// Flattens one field into `key=value` pairs (objects as `key[field]`).
fn flatten_query(key: &str, v: &Value, format: ArrayFormat, out: &mut Vec<(String, String)>) {
    match v {
        Value::Array(items) => match format {
            ArrayFormat::Commas => out.push((
                key.to_string(),
                items
                    .as_slice()
                    .iter()
                    .map(scalar_text)
                    .collect::<Vec<_>>()
                    .join(","),
            )),
            _ => {
                for (i, item) in items.as_slice().iter().enumerate() {
                    let k = match format {
                        ArrayFormat::Indices => format!("{key}[{i}]"),
                        ArrayFormat::Brackets => format!("{key}[]"),
                        _ => key.to_string(),
                    };
                    flatten_query(&k, item, format, out);
                }
            }
        },
        Value::Object(fields) => {
            for (k, v) in fields.iter() {
                flatten_query(&format!("{key}[{}]", k.as_str()), v, format, out);
            }
        }
        other => out.push((key.to_string(), scalar_text(other))),
    }
}

fn encode_pairs(pairs: &[(String, String)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        percent_encode(k, &mut s);
        s.push('=');
        percent_encode(v, &mut s);
    }
    s
}

/// application/x-www-form-urlencoded escaping (unreserved characters stay, the rest is %XX).
fn percent_encode(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_allows_loopback_only() {
        let p = Policy::default();
        for ok in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://[::1]:80/",
        ] {
            assert!(p.check(&ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/x",
            "http://example.com/",
            "http://127.0.0.1.nip.io/",
            "http://2130706433/",
            "ftp://127.0.0.1/x",
        ] {
            let e = p.check(&bad.parse().unwrap()).unwrap_err();
            assert!(
                e.contains("not allowed") || e.contains("not an http"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn https_is_checked_like_http_with_port_443_by_default() {
        let p = Policy {
            allowed_hosts: vec!["api.internal:443".into()],
            tls: Some(Tls::from_files(None, None).unwrap()),
            ..Policy::default()
        };
        // Whether the system store has certificates depends on the machine; with none, https
        // is refused with advice rather than allowed.
        match p.check(&"https://api.internal/x".parse().unwrap()) {
            Ok(()) => assert!(p.tls().roots > 0),
            Err(e) => {
                assert_eq!(p.tls().roots, 0);
                assert!(e.contains("ca_file"), "{e}");
            }
        }
        let e = p
            .check(&"http://api.internal/x".parse().unwrap())
            .unwrap_err();
        assert!(e.contains("port 80"), "{e}");
    }

    #[test]
    fn tls_files_that_cannot_be_used_are_named() {
        let dir = std::env::temp_dir().join(format!("stepstream-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "just words\n").unwrap();
        let missing = dir.join("missing.pem");
        let e = Tls::from_files(Some(&missing), None).unwrap_err();
        assert_eq!(e.key(), "ca_file");
        let e = e.to_string();
        assert!(
            e.contains("cannot read") && e.contains("missing.pem"),
            "{e}"
        );
        let e = Tls::from_files(Some(&not_pem), None).unwrap_err();
        assert_eq!(e.key(), "ca_file");
        let e = e.to_string();
        assert!(
            e.contains("holds no certificate") && e.contains("not.pem"),
            "{e}"
        );
        let e = Tls::from_files(None, Some((&not_pem, &not_pem))).unwrap_err();
        assert_eq!(e.key(), "client_cert_file");
        let e = e.to_string();
        assert!(e.contains("not.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn allowlists_match_hosts_and_ports() {
        let p = Policy {
            allowed_hosts: vec!["api.internal".into(), "10.0.0.5:8080".into()],
            ..Policy::default()
        };
        assert!(p.check(&"http://API.internal/x".parse().unwrap()).is_ok());
        assert!(p.check(&"http://10.0.0.5:8080/x".parse().unwrap()).is_ok());
        assert!(p.check(&"http://10.0.0.5:8081/x".parse().unwrap()).is_err());
        assert!(p.check(&"http://127.0.0.1/x".parse().unwrap()).is_err());
    }

    #[test]
    fn requests_carry_method_query_headers_and_body() {
        let p = json::parse(
            br#"{"ApiEndpoint":"http://127.0.0.1:1/orders?x=1","Method":"POST",
                "QueryParameters":{"id":"a b","tags":["p","q"]},
                "Headers":{"X-Trace":"t1"},"RequestBody":{"n":1}}"#,
        )
        .unwrap();
        let r = http_request(&p).unwrap();
        assert_eq!(r.method(), hyper::Method::POST);
        assert_eq!(
            r.uri().to_string(),
            "http://127.0.0.1:1/orders?x=1&id=a%20b&tags=p&tags=q"
        );
        assert_eq!(r.headers()["x-trace"], "t1");
        assert_eq!(r.headers()["content-type"], "application/json");
    }

    #[test]
    fn url_encoded_bodies_follow_the_array_format() {
        let body = |format: &str| {
            let p = json::parse(
                format!(
                    r#"{{"ApiEndpoint":"http://127.0.0.1/","Method":"POST",
                    "RequestBody":{{"a":["x","y"],"o":{{"k":"v w"}}}},
                    "Transform":{{"RequestBodyEncoding":"URL_ENCODED",
                      "RequestEncodingOptions":{{"ArrayFormat":"{format}"}}}}}}"#
                )
                .as_bytes(),
            )
            .unwrap();
            let r = http_request(&p).unwrap();
            assert_eq!(
                r.headers()["content-type"],
                "application/x-www-form-urlencoded"
            );
            let b = r.into_body();
            let bytes = futures_lite_collect(b);
            String::from_utf8(bytes).unwrap()
        };
        assert_eq!(body("INDICES"), "a%5B0%5D=x&a%5B1%5D=y&o%5Bk%5D=v%20w");
        assert_eq!(body("REPEAT"), "a=x&a=y&o%5Bk%5D=v%20w");
        assert_eq!(body("COMMAS"), "a=x%2Cy&o%5Bk%5D=v%20w");
        assert_eq!(body("BRACKETS"), "a%5B%5D=x&a%5B%5D=y&o%5Bk%5D=v%20w");
    }

    /// The bytes of a `Full` body (always ready).
    fn futures_lite_collect(b: Full<Bytes>) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { b.collect().await.unwrap().to_bytes().to_vec() })
    }

    #[test]
    fn bad_parameters_name_the_field() {
        for (p, want) in [
            (r#"{"Method":"GET"}"#, "ApiEndpoint"),
            (r#"{"ApiEndpoint":"http://127.0.0.1/"}"#, "Method"),
            (
                r#"{"ApiEndpoint":"http://127.0.0.1/","Method":"BREW"}"#,
                "BREW",
            ),
            (
                r#"{"ApiEndpoint":"http://127.0.0.1/","Method":"GET","Headers":[1]}"#,
                "Headers",
            ),
        ] {
            let e = http_request(&json::parse(p.as_bytes()).unwrap()).unwrap_err();
            assert!(e.cause.contains(want), "{p}: {}", e.cause);
        }
    }
}
