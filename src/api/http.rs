//! The AWS JSON 1.0 protocol over HTTP/1.1, as the Step Functions endpoint speaks it: `POST /`
//! with `X-Amz-Target: AWSStepFunctions.<Action>` and a JSON body; answers are
//! `application/x-amz-json-1.0` with an `x-amzn-RequestId`, errors are HTTP 400 (500/503 for
//! the server's own trouble) with `{"__type", "message"}`. Any `Host` is accepted, so the
//! SDKs' `sync-` host prefix for StartSyncExecution works wherever it resolves.
//!
//! Limits: request headers (64 KiB, read within 30 s), bodies (`Limits::max_body`, read
//! within 60 s); connections are kept alive between requests.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::ApiError;
use super::service::Service;
use crate::json::{self, Value};
use crate::random::Rng;

/// Request limits, and the keys requests must be signed with (none: no signature is
/// checked, which `serve` allows only on loopback).
#[derive(Clone, Debug)]
pub struct Limits {
    pub credentials: Option<super::sigv4::Credentials>,
    /// The largest request body: a definition may be 1 MiB, and JSON escaping can double it.
    pub max_body: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            credentials: None,
            max_body: 4 << 20,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves `listener` until `stop` resolves; then stops accepting, lets each connection
/// finish the request it is answering (idle keep-alive connections close at once), and
/// gives them up to `grace` before dropping them.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    limits: Limits,
    stop: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    let limits = Arc::new(limits);
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((sock, _)) = accepted else { continue };
                let _ = sock.set_nodelay(true);
                let service = Arc::clone(&service);
                let limits = Arc::clone(&limits);
                let mut stopping = stopping.clone();
                connections.spawn(async move {
                    let conn_limits = Arc::clone(&limits);
                    let handler = hyper::service::service_fn(move |req| {
                        let service = Arc::clone(&service);
                        let limits = Arc::clone(&limits);
                        async move { Ok::<_, Infallible>(handle(&service, &limits, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(conn_limits.header_timeout)
                        .max_buf_size(64 << 10)
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(sock), handler);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => return,
                        _ = stopping.wait_for(|s| *s) => {}
                    }
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                });
            }
            // Reap finished connections so the set does not grow with every client.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stopping_tx.send(true);
    let _ = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}

async fn handle(
    service: &Arc<Service>,
    limits: &Limits,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let request_id = request_id();
    match answer(service, limits, req).await {
        Ok(body) => respond(StatusCode::OK, &request_id, json::to_string(&body)),
        Err(e) => {
            let status = match e.code {
                "ServiceUnavailable" => StatusCode::SERVICE_UNAVAILABLE,
                "InternalFailure" => StatusCode::INTERNAL_SERVER_ERROR,
                "RequestEntityTooLarge" => StatusCode::PAYLOAD_TOO_LARGE,
                "NotFound" => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            let body = Value::object_from([
                ("__type", Value::string(e.code)),
                ("message", Value::from(e.message)),
            ]);
            respond(status, &request_id, json::to_string(&body))
        }
    }
}

async fn answer(
    service: &Arc<Service>,
    limits: &Limits,
    req: Request<Incoming>,
) -> Result<Value, ApiError> {
    if req.method() != hyper::Method::POST || req.uri().path() != "/" {
        return Err(ApiError::new(
            "NotFound",
            format!(
                "{} {} is not an AWS JSON 1.0 request: send POST / with an X-Amz-Target header",
                req.method(),
                req.uri().path()
            ),
        ));
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                "UnknownOperationException",
                "the request has no X-Amz-Target header naming the action (AWSStepFunctions.<Action>)",
            )
        })?
        .to_string();
    let action = target.strip_prefix("AWSStepFunctions.").ok_or_else(|| {
        ApiError::new(
            "UnknownOperationException",
            format!("'{target}' is not an action of AWSStepFunctions"),
        )
    })?;
    let (head, body) = req.into_parts();
    let body = read_body(body, limits).await?;
    if let Some(credentials) = &limits.credentials {
        let headers: Vec<(&str, &str)> = head
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let signed = super::sigv4::SignedRequest {
            method: head.method.as_str(),
            path: head.uri.path(),
            query: head.uri.query().unwrap_or(""),
            headers: &headers,
            body: &body,
        };
        super::sigv4::verify(&signed, credentials, crate::time::Timestamp::now().secs)
            .map_err(|e| ApiError::new(e.code, e.message))?;
    }
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::empty_object()
    } else {
        json::parse(&body).map_err(|e| {
            ApiError::new(
                "SerializationException",
                format!("the request body is not valid JSON: {e}"),
            )
        })?
    };
    service.call(action, &value).await
}

async fn read_body(body: Incoming, limits: &Limits) -> Result<Bytes, ApiError> {
    let collect = Limited::new(body, limits.max_body).collect();
    match tokio::time::timeout(limits.body_timeout, collect).await {
        Err(_) => Err(ApiError::new(
            "RequestTimeout",
            format!(
                "the request body did not arrive within {} s",
                limits.body_timeout.as_secs()
            ),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            "RequestEntityTooLarge",
            format!(
                "the request body is over the {} byte limit",
                limits.max_body
            ),
        )),
        Ok(Err(e)) => Err(ApiError::new(
            "SerializationException",
            format!("the request body could not be read: {e}"),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn respond(status: StatusCode, request_id: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    response
}

/// A fresh id per response (a UUID, as the service's are).
fn request_id() -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    thread_local! {
        static RNG: std::cell::RefCell<Rng> = std::cell::RefCell::new(Rng::new(
            Rng::seed_from(&crate::time::Timestamp::now().nanos.to_le_bytes())
                ^ COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).rotate_left(40)
                ^ std::process::id() as u64,
        ));
    }
    RNG.with(|r| r.borrow_mut().uuid())
}
