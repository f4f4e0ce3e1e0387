//! Kafka produce from a Task, and the AWS messaging integrations mapped onto topics.
//!
//! * `arn:aws:states:::kafka:produce`: Parameters `Topic`, `Key`, `Value`, `Headers` (strings)
//!   and `Partition`; the result is `{Topic, Partition, Offset}` once the broker acknowledged.
//! * `arn:aws:states:::sqs:sendMessage` (`MessageBody`, `MessageGroupId` as the key),
//!   `arn:aws:states:::sns:publish` (`Message`, `MessageGroupId`), and
//!   `arn:aws:states:::events:putEvents` (`Entries`, one record each) produce to the topic the
//!   binding names, so definitions written for AWS run unchanged; their results have the shape
//!   of the AWS responses (`MessageId`, `MD5OfMessageBody`; `Entries[].EventId`), the message
//!   ids being `topic/partition/offset`.
//!
//! A value is the string as is, or the JSON text of anything else; at most 256 KiB. A record
//! the broker does not take fails the task with `Kafka.ProduceFailed`.

use std::time::Duration;

use md5::{Digest, Md5};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use super::http::BODY_LIMIT;
use super::{Reply, Resource, TaskCall};
use crate::exec::TaskError;
use crate::json::{self, Value};

/// What a bound resource means.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mapping {
    Produce,
    SqsSendMessage,
    SnsPublish,
    EventsPutEvents,
}

impl Mapping {
    fn of(resource: &str) -> Option<Mapping> {
        let r = resource.trim_end_matches(".waitForTaskToken");
        Some(match r.rsplit_once(":::")?.1 {
            "kafka:produce" => Mapping::Produce,
            "sqs:sendMessage" => Mapping::SqsSendMessage,
            "sns:publish" => Mapping::SnsPublish,
            "events:putEvents" => Mapping::EventsPutEvents,
            _ => return None,
        })
    }
}

/// Produces records for the tasks bound to it.
pub struct KafkaProduce {
    producer: FutureProducer,
    /// The topic of the binding: where mapped integrations produce, and the only topic
    /// `kafka:produce` may name when set.
    topic: Option<String>,
    timeout: Duration,
}

impl KafkaProduce {
    /// A producer for `brokers` (connected lazily, so an unreachable broker fails the tasks,
    /// not this); the error is librdkafka's refusal of the settings, which the caller reports
    /// under the binding's entry (`BindError::Producer`).
    pub fn new(
        brokers: &str,
        topic: Option<String>,
        timeout: Duration,
    ) -> Result<KafkaProduce, rdkafka::error::KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("message.timeout.ms", timeout.as_millis().max(1).to_string())
            .create()?;
        Ok(KafkaProduce {
            producer,
            topic,
            timeout,
        })
    }
}

/// One record to produce.
struct Out {
    topic: String,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<(String, String)>,
    partition: Option<i32>,
}

fn runtime_error(what: String) -> TaskError {
    TaskError::new("States.Runtime", what)
}

/// A value as record bytes: a string as is, anything else as JSON text.
fn bytes_of(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_str().as_bytes().to_vec(),
        other => json::to_string(other).into_bytes(),
    }
}

impl KafkaProduce {
    fn topic_for(&self, mapping: Mapping, named: Option<&str>) -> Result<String, TaskError> {
        match (mapping, named, &self.topic) {
            (Mapping::Produce, Some(t), Some(only)) if t != only => Err(runtime_error(format!(
                "kafka:produce may only write to '{only}' (the topic of its [[resources]] entry), not '{t}'"
            ))),
            (Mapping::Produce, Some(t), _) => Ok(t.to_string()),
            (_, _, Some(t)) => Ok(t.clone()),
            (Mapping::Produce, None, None) => Err(runtime_error(
                "kafka:produce needs Parameters.Topic (or a topic in its [[resources]] entry)"
                    .into(),
            )),
            (_, _, None) => Err(runtime_error(
                "this integration is mapped to Kafka without a topic: add topic = \"...\" to its [[resources]] entry".into(),
            )),
        }
    }

    fn records(&self, mapping: Mapping, p: &Value) -> Result<Vec<Out>, TaskError> {
        let text = |field: &str| p.get(field).and_then(Value::as_str);
        let one = |topic: String, key: Option<&str>, value: Vec<u8>| Out {
            topic,
            key: key.map(|k| k.as_bytes().to_vec()),
            value,
            headers: Vec::new(),
            partition: None,
        };
        Ok(match mapping {
            Mapping::Produce => {
                let topic = self.topic_for(mapping, text("Topic"))?;
                let value = p
                    .get("Value")
                    .ok_or_else(|| runtime_error("kafka:produce needs Parameters.Value".into()))?;
                let mut headers = Vec::new();
                if let Some(h) = p.get("Headers") {
                    let Some(fields) = h.as_object() else {
                        return Err(runtime_error("Parameters.Headers must be an object".into()));
                    };
                    for (k, v) in fields.iter() {
                        headers.push((
                            k.as_str().to_string(),
                            String::from_utf8_lossy(&bytes_of(v)).into_owned(),
                        ));
                    }
                }
                let partition = match p.get("Partition") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(
                        || runtime_error("Parameters.Partition must be a partition number".into()),
                    )?),
                };
                let key = match p.get("Key") {
                    None | Some(Value::Null) => None,
                    Some(k) => Some(bytes_of(k)),
                };
                vec![Out {
                    topic,
                    key,
                    value: bytes_of(value),
                    headers,
                    partition,
                }]
            }
            Mapping::SqsSendMessage => {
                let body = p.get("MessageBody").ok_or_else(|| {
                    runtime_error("sqs:sendMessage needs Parameters.MessageBody".into())
                })?;
                vec![one(
                    self.topic_for(mapping, None)?,
                    text("MessageGroupId"),
                    bytes_of(body),
                )]
            }
            Mapping::SnsPublish => {
                let message = p
                    .get("Message")
                    .ok_or_else(|| runtime_error("sns:publish needs Parameters.Message".into()))?;
                vec![one(
                    self.topic_for(mapping, None)?,
                    text("MessageGroupId"),
                    bytes_of(message),
                )]
            }
            Mapping::EventsPutEvents => {
                let entries = p.get("Entries").and_then(Value::as_array).ok_or_else(|| {
                    runtime_error("events:putEvents needs Parameters.Entries (an array)".into())
                })?;
                let topic = self.topic_for(mapping, None)?;
                entries
                    .as_slice()
                    .iter()
                    .map(|e| {
                        one(
                            topic.clone(),
                            e.get("Source").and_then(Value::as_str),
                            bytes_of(e),
                        )
                    })
                    .collect()
            }
        })
    }
}

impl Resource for KafkaProduce {
    fn invoke(&self, call: TaskCall) -> Reply {
        let Some(mapping) = Mapping::of(call.resource.as_str()) else {
            return Reply::Ready(Err(runtime_error(format!(
                "'{}' is bound to kind = \"kafka\", which serves kafka:produce, sqs:sendMessage, sns:publish and events:putEvents",
                call.resource
            ))));
        };
        let records = match self.records(mapping, &call.input) {
            Ok(r) => r,
            Err(e) => return Reply::Ready(Err(e)),
        };
        let mut pending: Vec<(String, DeliveryFuture)> = Vec::with_capacity(records.len());
        for r in &records {
            if r.value.len() > BODY_LIMIT {
                return Reply::Ready(Err(TaskError::new(
                    "States.DataLimitExceeded",
                    format!(
                        "the record for '{}' is {} bytes, more than {BODY_LIMIT}",
                        r.topic,
                        r.value.len()
                    ),
                )));
            }
            let mut headers = OwnedHeaders::new();
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            let mut record = FutureRecord::to(&r.topic)
                .payload(&r.value)
                .headers(headers);
            if let Some(k) = &r.key {
                record = record.key(k);
            }
            if let Some(p) = r.partition {
                record = record.partition(p);
            }
            match self.producer.send_result(record) {
                Ok(d) => pending.push((r.topic.clone(), d)),
                Err((e, _)) => {
                    return Reply::Ready(Err(TaskError::new(
                        "Kafka.ProduceFailed",
                        format!("cannot produce to '{}': {e}", r.topic),
                    )));
                }
            }
        }
        let md5 = (mapping == Mapping::SqsSendMessage).then(|| {
            let digest = Md5::digest(&records[0].value);
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        });
        let timeout = self.timeout;
        Reply::Later(Box::pin(async move {
            let mut delivered = Vec::with_capacity(pending.len());
            for (topic, d) in pending {
                let answer = tokio::time::timeout(timeout + Duration::from_secs(1), d).await;
                match answer {
                    Ok(Ok(Ok(done))) => delivered.push((topic, done.partition, done.offset)),
                    Ok(Ok(Err((e, _)))) => {
                        return Err(TaskError::new(
                            "Kafka.ProduceFailed",
                            format!("the broker did not take the record for '{topic}': {e}"),
                        ));
                    }
                    Ok(Err(_)) | Err(_) => {
                        return Err(TaskError::new(
                            "States.Timeout",
                            format!(
                                "the record for '{topic}' was not acknowledged within {} s",
                                timeout.as_secs_f64()
                            ),
                        ));
                    }
                }
            }
            let id = |(t, p, o): &(String, i32, i64)| Value::string(&format!("{t}/{p}/{o}"));
            Ok(match mapping {
                Mapping::Produce => {
                    let (t, p, o) = &delivered[0];
                    Value::object_from([
                        ("Topic", Value::string(t)),
                        ("Partition", Value::int(*p as i64)),
                        ("Offset", Value::int(*o)),
                    ])
                }
                Mapping::SqsSendMessage => Value::object_from([
                    (
                        "MD5OfMessageBody",
                        Value::string(md5.as_deref().unwrap_or("")),
                    ),
                    ("MessageId", id(&delivered[0])),
                ]),
                Mapping::SnsPublish => Value::object_from([("MessageId", id(&delivered[0]))]),
                Mapping::EventsPutEvents => Value::object_from([
                    (
                        "Entries",
                        Value::array(
                            delivered
                                .iter()
                                .map(|d| Value::object_from([("EventId", id(d))]))
                                .collect(),
                        ),
                    ),
                    ("FailedEntryCount", Value::int(0)),
                ]),
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_map_to_their_integration() {
        assert_eq!(
            Mapping::of("arn:aws:states:::kafka:produce"),
            Some(Mapping::Produce)
        );
        assert_eq!(
            Mapping::of("arn:aws:states:::sqs:sendMessage"),
            Some(Mapping::SqsSendMessage)
        );
        assert_eq!(
            Mapping::of("arn:aws:states:::sns:publish"),
            Some(Mapping::SnsPublish)
        );
        assert_eq!(
            Mapping::of("arn:aws:states:::events:putEvents"),
            Some(Mapping::EventsPutEvents)
        );
        assert_eq!(Mapping::of("arn:aws:states:::dynamodb:putItem"), None);
    }
}
