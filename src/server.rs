//! The operations listener: `GET /` (the workflow page: each pipeline's and each API state
//! machine's workflow drawn with live per-state counts, `page`), `/api/pipelines`,
//! `/api/pipelines/NAME/states`, `/api/machines` and `/api/machines/NAME/states` (its JSON),
//! `/metrics` (Prometheus text), `/ping` (alive), `/ready` (connected and assigned
//! partitions). Plain HTTP/1.1, one request per connection, GET and HEAD only: nothing here
//! changes a pipeline or a state machine.

mod page;

pub use page::escape_html;

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::api::sigv4::Credentials;
use crate::metrics::Metrics;

/// The most a request's head may take (a browser's, with its cookies, fits).
const MAX_HEAD: usize = 16 * 1024;

/// Reads a request's head (up to the blank line) within 5 s; `None` when it does not come,
/// or is too long.
async fn read_head(sock: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(2048);
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = sock.read(&mut buf).await.ok()?;
            if n == 0 {
                return (!head.is_empty()).then_some(());
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Some(());
            }
            if head.len() > MAX_HEAD {
                return None;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .ok()??;
    Some(head)
}

/// Whether the request's `Authorization: Basic` names a key of `keys`.
fn authorized(request: &str, keys: &Credentials) -> bool {
    use base64::Engine as _;
    request.lines().skip(1).any(|line| {
        let Some((name, value)) = line.split_once(':') else {
            return false;
        };
        if !name.trim().eq_ignore_ascii_case("authorization") {
            return false;
        }
        let value = value.trim();
        let Some(encoded) = value
            .get(..6)
            .filter(|scheme| scheme.eq_ignore_ascii_case("basic "))
            .map(|_| value[6..].trim())
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        let Ok(pair) = String::from_utf8(decoded) else {
            return false;
        };
        pair.split_once(':')
            .is_some_and(|(id, secret)| keys.accepts(id, secret))
    })
}

/// NAME of `PREFIX/NAME/states` (percent-decoded), if `path` is one.
fn named(path: &str, prefix: &str) -> Option<String> {
    let name = path.strip_prefix(prefix)?.strip_suffix("/states")?;
    page::percent_decode(name)
}

/// The 404 answer for a name the listener does not know, pointing at the list.
fn missing(what: &str, name: &str, list: &str) -> String {
    crate::json::to_string(&crate::json::Value::object_from([(
        "message",
        crate::json::Value::from(format!(
            "no {what} is named '{name}': /api/{list} lists them"
        )),
    )]))
}

/// Binds `listen` and serves until the task is dropped; returns the bound address.
pub async fn bind(listen: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).await
}

/// Serves `metrics` on `listener` until the task is dropped. With `auth`, every request but
/// `/ping` must carry HTTP Basic credentials of one of its keys (access key id, secret
/// access key), as a listener beyond loopback must.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, auth: Option<Arc<Credentials>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = Arc::clone(&metrics);
        let auth = auth.clone();
        tokio::spawn(async move {
            let Some(head) = read_head(&mut sock).await else {
                return;
            };
            let request = String::from_utf8_lossy(&head);
            let mut first = request.lines().next().unwrap_or("").split_whitespace();
            let method = first.next().unwrap_or("GET");
            let target = first.next().unwrap_or("/");
            let path = target.split(['?', '#']).next().unwrap_or("/");
            if let Some(keys) = &auth
                && path != "/ping"
                && !authorized(&request, keys)
            {
                let body = "this listener needs the access key id and secret access key of its credentials file (HTTP Basic)\n";
                let head = format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"stepstream\", charset=\"UTF-8\"\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
                return;
            }
            let json = "application/json";
            let (status, ctype, body) = match path {
                _ if method != "GET" && method != "HEAD" => (
                    "405 Method Not Allowed",
                    "text/plain",
                    format!(
                        "{method} is not served here: the operations listener only reads (GET)\n"
                    ),
                ),
                "/" | "/index.html" => {
                    let machines = metrics.machines();
                    let pipelines = metrics.pipelines.lock().unwrap_or_else(|e| e.into_inner());
                    let html = page::index(&pipelines, &machines);
                    ("200 OK", "text/html; charset=utf-8", html)
                }
                "/api/machines" => {
                    let machines = metrics.machines();
                    ("200 OK", json, page::machines_json(&machines))
                }
                "/api/pipelines" => {
                    let pipelines = metrics.pipelines.lock().unwrap_or_else(|e| e.into_inner());
                    ("200 OK", json, page::pipelines_json(&pipelines))
                }
                _ if named(path, "/api/machines/").is_some() => {
                    let name = named(path, "/api/machines/").unwrap_or_default();
                    let machines = metrics.machines();
                    match machines.iter().find(|m| m.name == name) {
                        Some(m) => ("200 OK", json, page::machine_states_json(m)),
                        None => (
                            "404 Not Found",
                            json,
                            missing("state machine", &name, "machines"),
                        ),
                    }
                }
                _ if named(path, "/api/pipelines/").is_some() => {
                    let name = named(path, "/api/pipelines/").unwrap_or_default();
                    let pipelines = metrics.pipelines.lock().unwrap_or_else(|e| e.into_inner());
                    match pipelines.iter().find(|p| p.name == name) {
                        Some(p) => ("200 OK", json, page::states_json(p)),
                        None => (
                            "404 Not Found",
                            json,
                            missing("pipeline", &name, "pipelines"),
                        ),
                    }
                }
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
                "/ping" => ("200 OK", "text/plain", "pong\n".to_string()),
                "/ready" if metrics.ready() => ("200 OK", "text/plain", "ready\n".to_string()),
                "/ready" => (
                    "503 Service Unavailable",
                    "text/plain",
                    "not ready: not connected or no partition assigned\n".to_string(),
                ),
                _ => (
                    "404 Not Found",
                    "text/plain",
                    "try / (the workflow page), /metrics, /ping or /ready\n".to_string(),
                ),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            if method != "HEAD" {
                let _ = sock.write_all(body.as_bytes()).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PipelineStats;

    /// Sends `request` to a listener serving `metrics`; the status line and the body.
    async fn ask(addr: std::net::SocketAddr, request: &str) -> (String, String) {
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        sock.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        sock.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_string(), body.to_string())
    }

    async fn start(auth: Option<Arc<Credentials>>) -> std::net::SocketAddr {
        let metrics = Metrics::new();
        metrics
            .pipelines
            .lock()
            .unwrap()
            .push(PipelineStats::new("orders v2", Vec::new()));
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, metrics, auth));
        addr
    }

    #[tokio::test]
    async fn the_page_and_its_json_are_served_and_nothing_else_is_accepted() {
        let addr = start(None).await;
        let (status, body) = ask(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body.contains("data-pipeline=\"orders v2\""), "{body}");
        let (status, body) = ask(addr, "GET /api/pipelines HTTP/1.1\r\n\r\n").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let v = crate::json::parse(body.as_bytes()).unwrap();
        assert_eq!(
            v.get("pipelines")
                .and_then(|p| p.as_array())
                .map(|a| a.len()),
            Some(1)
        );
        let (status, body) = ask(
            addr,
            "GET /api/pipelines/orders%20v2/states?t=1 HTTP/1.1\r\n\r\n",
        )
        .await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let v = crate::json::parse(body.as_bytes()).unwrap();
        assert_eq!(
            v.get("pipeline").and_then(|p| p.as_str()),
            Some("orders v2")
        );
        let (status, body) = ask(addr, "GET /api/pipelines/nope/states HTTP/1.1\r\n\r\n").await;
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        assert!(body.contains("no pipeline is named 'nope'"), "{body}");
        let (status, _) = ask(addr, "POST /api/pipelines HTTP/1.1\r\n\r\n").await;
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        let (status, body) = ask(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
    }

    #[tokio::test]
    async fn with_credentials_every_request_but_ping_needs_a_key() {
        let keys = Credentials::new([("AKID".to_string(), "s3cret".to_string())]);
        let addr = start(Some(Arc::new(keys))).await;
        let (status, _) = ask(addr, "GET /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(status, "HTTP/1.1 401 Unauthorized");
        let (status, _) = ask(addr, "GET /ping HTTP/1.1\r\n\r\n").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        use base64::Engine as _;
        let basic = |pair: &str| base64::engine::general_purpose::STANDARD.encode(pair);
        let with = |pair: &str| {
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nauthorization: Basic {}\r\n\r\n",
                basic(pair)
            )
        };
        let (status, _) = ask(addr, &with("AKID:wrong")).await;
        assert_eq!(status, "HTTP/1.1 401 Unauthorized");
        let (status, _) = ask(addr, &with("OTHER:s3cret")).await;
        assert_eq!(status, "HTTP/1.1 401 Unauthorized");
        let (status, body) = ask(addr, &with("AKID:s3cret")).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body.contains("data-pipeline=\"orders v2\""), "{body}");
    }
}
