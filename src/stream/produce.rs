//! Results to Kafka: the sink the shards deliver to, the producer's acknowledgement callback,
//! and the retrier.
//!
//! A shard hands each result straight to librdkafka (no thread or task in between); the
//! result's bookkeeping (its partition window and offset, its execution name and key for a
//! retry) rides along as the message's opaque and comes back in the producer's `delivery`
//! callback, on librdkafka's polling thread. An acknowledgement marks the input offset done in
//! its window; the commit point is stored from the windows by the consumer's loop (`kafka.rs`),
//! not per record. A failed delivery goes, with its bytes, to one retrier thread that sends it
//! again with backoff; a result the broker can never take (too large) becomes a dead letter,
//! so its partition moves on.
//!
//! The one copy of the result's bytes left is librdkafka's own: the rdkafka crate always
//! produces with `RD_KAFKA_MSG_F_COPY`, and the shard's buffer is dropped as soon as the
//! message is queued.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::kafka::{Shared, forward_log};
use super::shard::ResultSink;
use super::{Disposition, Processed, dead_letter};
use crate::config::Pipeline;
use crate::json::Value;
use crate::log;

/// Where one pipeline's results go.
pub(super) struct Route {
    pub output_topic: String,
    pub dead_letter_topic: String,
    /// Whether records carry the `stepstream-*` headers.
    pub headers: bool,
}

impl Route {
    pub fn of(p: &Pipeline) -> Route {
        Route {
            output_topic: p.output_topic.clone(),
            dead_letter_topic: p.dead_letter_topic.clone(),
            headers: p.headers,
        }
    }

    fn topic(&self, dead: bool) -> &str {
        if dead {
            &self.dead_letter_topic
        } else {
            &self.output_topic
        }
    }
}

/// One result on its way to the broker: the opaque librdkafka hands back with the
/// acknowledgement. Its bytes and key are not here: librdkafka holds its own copy, and a
/// failed message gives them back.
pub(super) struct InFlight {
    /// The result without its bytes or key.
    p: Processed,
    /// Index of its pipeline's `Route`.
    route: usize,
    /// Bound for the dead-letter topic.
    dead: bool,
    /// Deliveries tried and failed so far.
    attempts: u32,
}

/// A delivery that failed, for the retrier.
struct Failed {
    d: Box<InFlight>,
    payload: Vec<u8>,
    key: Option<Vec<u8>>,
    error: KafkaError,
}

pub(super) type Producer = ThreadedProducer<ProduceCtx>;

/// The producer's context: acknowledgements and failures of every pipeline's results.
pub(super) struct ProduceCtx {
    shared: Arc<Shared>,
    routes: Vec<Route>,
    retry: crossbeam_channel::Sender<Failed>,
}

impl ClientContext for ProduceCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        forward_log(level, fac, message);
    }
}

impl ProducerContext for ProduceCtx {
    type DeliveryOpaque = Box<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, d: Box<InFlight>) {
        match result {
            Ok(_) => done(&self.shared, &d.p, d.dead),
            Err((error, msg)) => self.to_retrier(Failed {
                d,
                payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                key: msg.key().map(<[u8]>::to_vec),
                error: error.clone(),
            }),
        }
    }
}

impl ProduceCtx {
    fn to_retrier(&self, f: Failed) {
        self.shared
            .metrics
            .produce_errors
            .fetch_add(1, Ordering::Relaxed);
        // The receiver goes only with the producer; what it would have retried stays
        // pending, so it is not committed and the next start runs it again.
        let _ = self.retry.send(f);
    }
}

/// Creates the producer for `routes` (one per pipeline, in pipeline order) and starts its
/// retrier.
pub(super) fn start(
    config: rdkafka::ClientConfig,
    shared: &Arc<Shared>,
    routes: Vec<Route>,
) -> Result<Arc<Producer>, KafkaError> {
    let (retry, failed) = crossbeam_channel::unbounded();
    let producer: Arc<Producer> = Arc::new(config.create_with_context(ProduceCtx {
        shared: Arc::clone(shared),
        routes,
        retry,
    })?);
    let weak = Arc::downgrade(&producer);
    // Detached: it ends when the producer (holding the channel's sender) is gone.
    std::thread::Builder::new()
        .name("produce-retry".into())
        .spawn(move || retry_loop(failed, weak))
        .map_err(|e| KafkaError::ClientCreation(format!("cannot start the retry thread: {e}")))?;
    Ok(producer)
}

/// What a shard delivers its results to: one pipeline's route on the shared producer.
#[derive(Clone)]
pub(super) struct KafkaSink {
    pub producer: Arc<Producer>,
    pub route: usize,
}

impl ResultSink for KafkaSink {
    fn deliver(&mut self, mut p: Processed) -> Option<Vec<u8>> {
        let taken = std::mem::replace(&mut p.disposition, Disposition::Output(Vec::new()));
        let (payload, dead) = match taken {
            Disposition::Output(b) => (b, false),
            Disposition::DeadLetter(b) => (b, true),
        };
        let key = p.key.take();
        let d = Box::new(InFlight {
            p,
            route: self.route,
            dead,
            attempts: 0,
        });
        match send(&self.producer, d, &payload, key.as_deref()) {
            // librdkafka holds its own copy.
            Ok(()) => Some(payload),
            Err((error, d)) => {
                self.producer.context().to_retrier(Failed {
                    d,
                    payload,
                    key,
                    error,
                });
                None
            }
        }
    }
}

/// The result is acknowledged: count it and mark its input offset done.
fn done(shared: &Shared, p: &Processed, dead: bool) {
    let m = &shared.metrics;
    if dead {
        m.dead_letters.fetch_add(1, Ordering::Relaxed);
    } else {
        m.outputs.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(window) = &p.window {
        let f = shared.offsets.finish(window, p.source.offset);
        shared.set_pending(f.pending_before, f.pending_after);
    }
}

fn headers(p: &Processed, source_text: &str) -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(3)
        .insert(Header {
            key: "stepstream-execution",
            value: Some(p.execution_name.as_bytes()),
        })
        .insert(Header {
            key: "stepstream-source",
            value: Some(source_text.as_bytes()),
        })
        .insert(Header {
            key: "stepstream-status",
            value: Some(p.status.as_bytes()),
        })
}

/// Puts a result on librdkafka's queue, waiting while the queue is full; gives the result
/// back when librdkafka refuses it.
fn send(
    producer: &Producer,
    d: Box<InFlight>,
    payload: &[u8],
    key: Option<&[u8]>,
) -> Result<(), (KafkaError, Box<InFlight>)> {
    let ctx = producer.context();
    let route = &ctx.routes[d.route];
    let source_text = route.headers.then(|| d.p.source.to_string());
    let hs = source_text.as_deref().map(|s| headers(&d.p, s));
    let mut record = BaseRecord::with_opaque_to(route.topic(d.dead), d).payload(payload);
    if let Some(h) = hs {
        record = record.headers(h);
    }
    if let Some(k) = key {
        record = record.key(k);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                if ctx.shared.abandoned.load(Ordering::Relaxed) {
                    // The stop gave up waiting for the broker: the result stays pending, so
                    // its offset is not committed and the next start runs it again.
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(2));
                record = r;
            }
            Err((e, r)) => return Err((e, r.delivery_opaque)),
        }
    }
}

/// Sends failed results again, a batch at a time, waiting longer after each failure of the
/// same result (100 ms doubling to 5 s).
fn retry_loop(failed: crossbeam_channel::Receiver<Failed>, producer: Weak<Producer>) {
    while let Ok(first) = failed.recv() {
        let mut batch = vec![first];
        batch.extend(failed.try_iter());
        let fewest = batch.iter().map(|f| f.d.attempts).min().unwrap_or(0);
        std::thread::sleep(Duration::from_millis(100 << fewest.min(6)).min(Duration::from_secs(5)));
        let Some(producer) = producer.upgrade() else {
            return;
        };
        for f in batch {
            retry(&producer, f);
        }
    }
}

fn retry(producer: &Producer, f: Failed) {
    let Failed {
        mut d,
        mut payload,
        key,
        error,
    } = f;
    let ctx = producer.context();
    let topic = ctx.routes[d.route].topic(d.dead).to_string();
    let too_large = error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge);
    if too_large && !d.dead {
        payload = dead_letter(
            "stepstream.ProduceFailed",
            &format!("the output could not be produced to '{topic}': {error}"),
            b"",
            &d.p.source,
            &d.p.execution_name,
        );
        d.dead = true;
    } else {
        log::warn(
            "produce_retry",
            &[
                ("topic", Value::from(topic)),
                ("source", Value::from(d.p.source.to_string())),
                ("attempt", Value::int(d.attempts as i64 + 1)),
                ("error", Value::from(error.to_string())),
            ],
        );
    }
    d.attempts += 1;
    if let Err((error, d)) = send(producer, d, &payload, key.as_deref()) {
        ctx.to_retrier(Failed {
            d,
            payload,
            key,
            error,
        });
    }
}
