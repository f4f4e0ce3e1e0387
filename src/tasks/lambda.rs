//! Lambda-compatible invocation: any endpoint that speaks the Lambda Invoke API
//! (`POST /2015-03-31/functions/{name}/invocations`: SAM's `start-lambda`, the runtime interface
//! emulator, LocalStack, or a service of your own).
//!
//! Two resource forms, as on AWS:
//! * `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`: the effective input is the
//!   payload and the result is the function's payload;
//! * `arn:aws:states:::lambda:invoke`: `Parameters.FunctionName` (a name or ARN) and `Payload`;
//!   the result is the invoke response (`ExecutedVersion`, `Payload`, `StatusCode`,
//!   `SdkHttpMetadata`, `SdkResponseMetadata`).
//!
//! A function error (`X-Amz-Function-Error`) fails the task with the payload's `errorType` as
//! the error and the payload text as the cause, as AWS reports it; a service failure gets the
//! `Lambda.*` name AWS uses for it.

use http_body_util::Full;
use hyper::body::Bytes;

use super::http::{self, BODY_LIMIT, Failure, Policy};
use super::{Reply, Resource, TaskCall};
use crate::exec::TaskError;
use crate::json::{self, Value};

/// Invokes functions on one Lambda Invoke API endpoint.
pub struct LambdaInvoke {
    /// `http://host:port` or `https://host:port`, without a trailing slash.
    pub endpoint: String,
    pub policy: Policy,
}

impl Resource for LambdaInvoke {
    fn invoke(&self, call: TaskCall) -> Reply {
        let optimized = call
            .resource
            .as_str()
            .starts_with("arn:aws:states:::lambda:invoke");
        let (function, payload) = if optimized {
            let Some(f) = call.input.get("FunctionName").and_then(Value::as_str) else {
                return Reply::Ready(Err(TaskError::new(
                    "States.Runtime",
                    "lambda:invoke needs Parameters.FunctionName (a function name or ARN)",
                )));
            };
            let payload = call.input.get("Payload").cloned().unwrap_or(Value::Null);
            let qualifier = call.input.get("Qualifier").and_then(Value::as_str);
            (function_path(f, qualifier), payload)
        } else {
            (
                function_path(call.resource.as_str(), None),
                call.input.clone(),
            )
        };
        let (name, qualifier) = match function {
            Ok(f) => f,
            Err(e) => return Reply::Ready(Err(e)),
        };
        let body = if payload.is_null() && optimized {
            Vec::new()
        } else {
            json::to_string(&payload).into_bytes()
        };
        if body.len() > BODY_LIMIT {
            return Reply::Ready(Err(TaskError::new(
                "States.DataLimitExceeded",
                format!(
                    "the Lambda payload is {} bytes, more than {BODY_LIMIT}",
                    body.len()
                ),
            )));
        }
        let mut url = format!("{}/2015-03-31/functions/{name}/invocations", self.endpoint);
        if let Some(q) = &qualifier {
            url.push_str("?Qualifier=");
            url.push_str(q);
        }
        let request = match hyper::Request::post(&url)
            .header("content-type", "application/json")
            .header("x-amz-invocation-type", "RequestResponse")
            .body(Full::new(Bytes::from(body)))
        {
            Ok(r) => r,
            Err(e) => {
                return Reply::Ready(Err(TaskError::new(
                    "States.Runtime",
                    format!("cannot call function '{name}' at '{url}': {e}"),
                )));
            }
        };
        let policy = self.policy.clone();
        Reply::Later(Box::pin(async move {
            let r = http::send(&policy, request).await.map_err(|f| match f {
                Failure::Refused(why) => TaskError::new("States.Runtime", why),
                Failure::Socket(why) => TaskError::new(
                    "Lambda.SdkClientException",
                    format!("Unable to execute HTTP request to {url}: {why}"),
                ),
                Failure::TimedOut => TaskError::new(
                    "States.Timeout",
                    format!(
                        "function '{name}' did not answer within {} s (timeout_seconds of the binding)",
                        policy.timeout.as_secs_f64()
                    ),
                ),
                Failure::TooLarge => TaskError::new(
                    "Lambda.AWSLambdaException",
                    format!("the response of function '{name}' is larger than {BODY_LIMIT} bytes"),
                ),
            })?;
            let text = String::from_utf8_lossy(&r.body).into_owned();
            if !(200..300).contains(&r.status) {
                let error = match r.status {
                    404 => "Lambda.ResourceNotFoundException",
                    429 => "Lambda.TooManyRequestsException",
                    500..=599 => "Lambda.ServiceException",
                    _ => "Lambda.AWSLambdaException",
                };
                return Err(TaskError::new(
                    error,
                    format!("function '{name}': HTTP {} {text}", r.status),
                ));
            }
            let payload = if r.body.is_empty() {
                Value::Null
            } else {
                json::parse(&r.body).unwrap_or_else(|_| Value::string(&text))
            };
            if let Some(kind) = r.headers.get("x-amz-function-error") {
                let error = payload
                    .get("errorType")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| String::from_utf8_lossy(kind.as_bytes()).into_owned());
                return Err(TaskError::new(&error, text));
            }
            if !optimized {
                return Ok(payload);
            }
            let header = |n: &str| {
                r.headers
                    .get(n)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            };
            let request_id = header("x-amzn-requestid").unwrap_or_default();
            let flat = Value::object_from(r.headers.iter().map(|(k, v)| {
                (
                    k.as_str(),
                    Value::string(&String::from_utf8_lossy(v.as_bytes())),
                )
            }));
            Ok(Value::object_from([
                (
                    "ExecutedVersion",
                    Value::string(&header("x-amz-executed-version").unwrap_or("$LATEST".into())),
                ),
                ("Payload", payload),
                (
                    "SdkHttpMetadata",
                    Value::object_from([
                        ("AllHttpHeaders", http::headers_json(&r.headers)),
                        ("HttpHeaders", flat),
                        ("HttpStatusCode", Value::int(r.status as i64)),
                    ]),
                ),
                (
                    "SdkResponseMetadata",
                    Value::object_from([("RequestId", Value::string(&request_id))]),
                ),
                ("StatusCode", Value::int(r.status as i64)),
            ]))
        }))
    }
}

/// The function name and qualifier from a name, a partial ARN or a full ARN
/// (`arn:aws:lambda:us-east-1:123456789012:function:NAME:QUALIFIER`).
fn function_path(f: &str, qualifier: Option<&str>) -> Result<(String, Option<String>), TaskError> {
    let (name, from_arn) = match f.split_once(":function:") {
        Some((_, rest)) => match rest.split_once(':') {
            Some((n, q)) => (n, Some(q)),
            None => (rest, None),
        },
        None => (f, None),
    };
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(TaskError::new(
            "States.Runtime",
            format!("'{f}' is not a Lambda function name or ARN"),
        ));
    }
    let qualifier = qualifier.or(from_arn).map(str::to_string);
    if let Some(q) = &qualifier
        && !q
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'$')
    {
        return Err(TaskError::new(
            "States.Runtime",
            format!("'{q}' is not a Lambda qualifier"),
        ));
    }
    Ok((name.to_string(), qualifier))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_come_from_names_and_arns() {
        assert_eq!(function_path("f1", None).unwrap(), ("f1".into(), None));
        assert_eq!(
            function_path(
                "arn:aws:lambda:us-east-1:123456789012:function:f2:live",
                None
            )
            .unwrap(),
            ("f2".into(), Some("live".into()))
        );
        assert_eq!(
            function_path("arn:aws:lambda:us-east-1:1:function:f3", Some("7")).unwrap(),
            ("f3".into(), Some("7".into()))
        );
        for bad in ["", "../etc", "a/b", "arn:aws:lambda:x:1:function:f?x=1"] {
            assert!(function_path(bad, None).is_err(), "{bad}");
        }
    }
}
