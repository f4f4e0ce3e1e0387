//! A keep-alive HTTP service to benchmark HTTP Tasks against: answers every request with a
//! small JSON body and counts connections and requests, so a run shows whether connections are
//! reused. `GET /stats` returns the counts; they are also printed once a second while they
//! change.
//!
//! ```text
//! cargo run --release --example http_target -- 127.0.0.1:8080
//! stepstream bench configs/workflows/w6_http_task.asl.json --config configs/http-bench.toml \
//!     --input-file configs/events/iot-event.json --executions 200000 --concurrency 64
//! curl http://127.0.0.1:8080/stats
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    requests: AtomicU64,
}

impl Counts {
    fn json(&self) -> String {
        format!(
            r#"{{"connections":{},"requests":{}}}"#,
            self.connections.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed)
        )
    }
}

fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        eprintln!("http_target listening on {}", listener.local_addr()?);
        let counts = Arc::new(Counts::default());
        let c = Arc::clone(&counts);
        tokio::spawn(async move {
            let mut last = String::new();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = c.json();
                if now != last {
                    eprintln!("{now}");
                    last = now;
                }
            }
        });
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            counts.connections.fetch_add(1, Ordering::Relaxed);
            let c = Arc::clone(&counts);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let c = Arc::clone(&c);
                    async move {
                        let n = c.requests.fetch_add(1, Ordering::Relaxed) + 1;
                        let body = if req.uri().path() == "/stats" {
                            c.json()
                        } else {
                            format!(r#"{{"ok":true,"n":{n}}}"#)
                        };
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .expect("a valid response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
