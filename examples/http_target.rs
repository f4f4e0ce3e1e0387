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
//!
//! With `--tls CA_FILE` it speaks https instead: it makes a throwaway CA and a certificate for
//! `localhost` and `127.0.0.1`, and writes the CA (PEM) to CA_FILE for the client to trust:
//!
//! ```text
//! cargo run --release --example http_target -- 127.0.0.1:8443 --tls target/http-target-ca.pem
//! stepstream bench configs/workflows/w6_https_task.asl.json --config configs/https-bench.toml \
//!     --input-file configs/events/iot-event.json --executions 200000 --concurrency 64
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

/// A throwaway CA (written to `ca_out`) and the server settings of a certificate it signed.
fn tls_acceptor(ca_out: &str) -> tokio_rustls::TlsAcceptor {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "http_target CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().expect("a key"))
        .expect("a CA certificate");
    std::fs::write(ca_out, ca.pem()).unwrap_or_else(|e| panic!("cannot write {ca_out}: {e}"));
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("server parameters")
        .signed_by(&key, &ca)
        .expect("a server certificate");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("a key"),
    )
    .expect("a server certificate and key");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let tls = match args.get(1).map(String::as_str) {
        Some("--tls") => Some(tls_acceptor(
            args.get(2).map_or("http-target-ca.pem", String::as_str),
        )),
        _ => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        eprintln!(
            "http_target listening on {} ({})",
            listener.local_addr()?,
            if tls.is_some() { "https" } else { "http" }
        );
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
            let tls = tls.clone();
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
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                    Some(tls) => {
                        if let Ok(stream) = tls.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                }
            });
        }
    })
}
