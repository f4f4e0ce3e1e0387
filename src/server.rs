//! The operations listener: `GET /metrics` (Prometheus text), `/ping` (alive), `/ready`
//! (connected and assigned partitions). Plain HTTP/1.1, one request per connection.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Binds `listen` and serves until the task is dropped; returns the bound address.
pub async fn bind(listen: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).await
}

pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n =
                match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("/");
            let (status, ctype, body) = match path {
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
                    "try /metrics, /ping or /ready\n".to_string(),
                ),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
        });
    }
}
