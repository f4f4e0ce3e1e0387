//! Task resources: what runs when an execution reaches a Task state.
//!
//! A `Resource` turns a task request into a result, now (`Reply::Ready`) or later
//! (`Reply::Later`, a future the driver polls). A `Registry` binds resource ARNs (exact, or
//! patterns with `*`) to resources; mock tables (per-state files and AWS Step Functions Local
//! mock configurations) answer by state name before the registry is asked. A request nothing
//! answers fails the execution with `States.Runtime` naming the resource and what to add.
//!
//! The `[[resources]]` of a configuration are plain data (`config::ResourceBinding`);
//! `Bindings::build` is the one step that turns them into live resources (TLS settings read
//! from their files, Kafka producers), reporting each entry that cannot be built as a
//! `BindError` naming the entry, its resource and the key at fault.

pub mod http;
pub mod kafka;
pub mod lambda;
pub mod mock;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::exec::{TaskError, TaskRequest};
use crate::json::{Str, Value};

/// A task to perform: the request plus the execution it belongs to.
#[derive(Clone, Debug)]
pub struct TaskCall {
    pub execution: Str,
    pub state: Str,
    pub resource: Str,
    pub input: Value,
    /// `$$.State.RetryCount` of this attempt.
    pub attempt: u32,
    pub timeout_ms: Option<u64>,
    pub credentials: Option<Value>,
}

impl TaskCall {
    pub fn new(execution: &Str, req: &TaskRequest) -> TaskCall {
        TaskCall {
            execution: execution.clone(),
            state: req.state.clone(),
            resource: req.resource.clone(),
            input: req.input.clone(),
            attempt: req.attempt,
            timeout_ms: req.timeout_ms,
            credentials: req.credentials.clone(),
        }
    }
}

/// The result of a task, later.
pub type Pending = Pin<Box<dyn Future<Output = Result<Value, TaskError>> + Send>>;

/// A resource's answer.
pub enum Reply {
    Ready(Result<Value, TaskError>),
    Later(Pending),
}

/// The HTTP exchange a task made, as TestState's TRACE level shows it: the
/// `inspectionData.request` and `.response` objects (`None` when there was none, such as a
/// response that never came).
#[derive(Clone, Debug, Default)]
pub struct Exchange {
    pub request: Option<Value>,
    pub response: Option<Value>,
}

/// A task's result, later, with the HTTP exchange it made.
pub type Traced = Pin<Box<dyn Future<Output = (Result<Value, TaskError>, Exchange)> + Send>>;

/// Something that performs tasks.
pub trait Resource: Send + Sync {
    fn invoke(&self, call: TaskCall) -> Reply;

    /// Performs the task and reports the HTTP exchange it made (TestState's TRACE level);
    /// `reveal_secrets`: also show what the binding adds to the request (its credential
    /// headers), as AWS shows a connection's secrets only when asked. `None`: this resource
    /// makes no exchange to show, and is invoked as usual.
    fn invoke_traced(&self, _call: TaskCall, _reveal_secrets: bool) -> Option<Traced> {
        None
    }

    /// The execution ended; forget anything kept for it.
    fn finished(&self, _execution: &str) {}
}

/// Answers for some states by name (mocks), consulted before resource bindings.
pub trait StateMocks: Send + Sync {
    /// `None` when this table has nothing for the state.
    fn answer(&self, call: &TaskCall) -> Option<Result<Value, TaskError>>;
    fn finished(&self, _execution: &str) {}
}

/// A resource backed by a synchronous Rust function.
struct NativeFn<F>(F);

impl<F> Resource for NativeFn<F>
where
    F: Fn(TaskCall) -> Result<Value, TaskError> + Send + Sync,
{
    fn invoke(&self, call: TaskCall) -> Reply {
        Reply::Ready((self.0)(call))
    }
}

/// A resource backed by an async Rust function.
struct NativeAsync<F>(F);

impl<F, Fut> Resource for NativeAsync<F>
where
    F: Fn(TaskCall) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, TaskError>> + Send + 'static,
{
    fn invoke(&self, call: TaskCall) -> Reply {
        Reply::Later(Box::pin((self.0)(call)))
    }
}

/// Binds resource ARNs to resources.
#[derive(Default, Clone)]
pub struct Registry {
    exact: HashMap<String, Arc<dyn Resource>>,
    patterns: Vec<(String, Arc<dyn Resource>)>,
    mocks: Vec<Arc<dyn StateMocks>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Binds `resource` (an ARN, or a pattern where `*` matches any run of characters).
    pub fn bind(&mut self, resource: &str, r: Arc<dyn Resource>) {
        if resource.contains('*') {
            self.patterns.push((resource.to_string(), r));
        } else {
            self.exact.insert(resource.to_string(), r);
        }
    }

    /// Binds `resource` to a Rust function called with the task (its effective input is
    /// `call.input`). Its `Err` is the task's failure: `TaskError::new("Order.Invalid",
    /// "no items")` is caught by `"ErrorEquals": ["Order.Invalid"]`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use stepstream::{asl, stream::driver, exec::{Outcome, TaskError}, json::{self, Value}, tasks::Registry};
    ///
    /// let def = br#"{"StartAt":"Check","States":{"Check":{"Type":"Task",
    ///   "Resource":"arn:aws:lambda:us-east-1:123456789012:function:check",
    ///   "Catch":[{"ErrorEquals":["Order.Invalid"],"Next":"Rejected"}],"End":true},
    ///   "Rejected":{"Type":"Fail","Error":"Rejected"}}}"#;
    /// let plan = Arc::new(stepstream::plan::compile(
    ///     &asl::load(def, asl::MachineType::Express).unwrap(), "orders"));
    /// let mut registry = Registry::new();
    /// registry.native("arn:aws:lambda:*:function:check", |call| {
    ///     match call.input.get("items").and_then(Value::as_array) {
    ///         Some(items) if !items.is_empty() => Ok(Value::int(items.len() as i64)),
    ///         _ => Err(TaskError::new("Order.Invalid", "no items")),
    ///     }
    /// });
    /// let registry = Arc::new(registry);
    /// let ok = driver::run_one(plan.clone(), registry.clone(), "e1",
    ///     json::parse(br#"{"items":[1,2]}"#).unwrap(), None);
    /// assert_eq!(ok.outcome, Outcome::Succeeded(Value::int(2)));
    /// let bad = driver::run_one(plan, registry, "e2", json::parse(b"{}").unwrap(), None);
    /// assert!(matches!(bad.outcome, Outcome::Failed { error: Some(e), .. } if e.as_str() == "Rejected"));
    /// ```
    pub fn native<F>(&mut self, resource: &str, f: F)
    where
        F: Fn(TaskCall) -> Result<Value, TaskError> + Send + Sync + 'static,
    {
        self.bind(resource, Arc::new(NativeFn(f)));
    }

    /// Binds `resource` to an async Rust function; the execution waits for it without
    /// blocking its shard.
    pub fn native_async<F, Fut>(&mut self, resource: &str, f: F)
    where
        F: Fn(TaskCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, TaskError>> + Send + 'static,
    {
        self.bind(resource, Arc::new(NativeAsync(f)));
    }

    /// Binds the live resources built from a configuration's `[[resources]]`.
    pub fn bind_all(&mut self, bindings: &Bindings) {
        for (resource, r) in &bindings.bound {
            self.bind(resource, Arc::clone(r));
        }
    }

    /// Builds the `[[resources]]` of a configuration (`Bindings::build`) and binds them.
    pub fn bind_config(
        &mut self,
        bindings: &[crate::config::ResourceBinding],
    ) -> Result<(), Vec<BindError>> {
        self.bind_all(&Bindings::build(bindings)?);
        Ok(())
    }

    /// Adds a mock table, consulted (in the order added) before bindings.
    pub fn mock(&mut self, m: Arc<dyn StateMocks>) {
        self.mocks.push(m);
    }

    /// The resource bound to `arn`, exact bindings first, then patterns in order.
    pub fn resolve(&self, arn: &str) -> Option<&Arc<dyn Resource>> {
        self.exact.get(arn).or_else(|| {
            self.patterns
                .iter()
                .find(|(p, _)| wildcard(p, arn))
                .map(|(_, r)| r)
        })
    }

    /// Whether `arn` has a binding (mocks aside).
    pub fn is_bound(&self, arn: &str) -> bool {
        self.resolve(arn).is_some()
    }

    /// Performs a task: mocks first, then the binding, else a clear failure.
    pub fn invoke(&self, call: TaskCall) -> Reply {
        for m in &self.mocks {
            if let Some(answer) = m.answer(&call) {
                return Reply::Ready(answer);
            }
        }
        match self.resolve(&call.resource) {
            Some(r) => r.invoke(call),
            None => Reply::Ready(Err(unbound(&call))),
        }
    }

    /// Tells every resource and mock table that an execution ended.
    pub fn finished(&self, execution: &str) {
        for m in &self.mocks {
            m.finished(execution);
        }
        for r in self.exact.values() {
            r.finished(execution);
        }
        for (_, r) in &self.patterns {
            r.finished(execution);
        }
    }
}

/// The live resources of a configuration's `[[resources]]`, built once and bound into any
/// number of registries (one per pipeline) that then share them.
#[derive(Clone, Default)]
pub struct Bindings {
    /// In binding order: each entry's resource pattern and what performs it.
    bound: Vec<(String, Arc<dyn Resource>)>,
}

impl Bindings {
    /// HTTP Tasks and Lambda functions, each with its allowlist, credentials headers, time
    /// limit and TLS setting (read from its files now), and Kafka produce (with the AWS
    /// messaging integrations mapped onto topics). Every entry that cannot be built is
    /// reported; `entry` in an error is the position in `bindings`, which for a loaded
    /// configuration is the N of `resources[N]`.
    pub fn build(bindings: &[crate::config::ResourceBinding]) -> Result<Bindings, Vec<BindError>> {
        use crate::config::ResourceKind;
        let mut errors = Vec::new();
        // HTTP entries for one resource become the routes of one HttpInvoke, bound where the
        // first of them is.
        let mut bound: Vec<(&str, Option<Arc<dyn Resource>>)> = Vec::new();
        let mut http_routes: Vec<(usize, Vec<http::Route>)> = Vec::new();
        for (entry, b) in bindings.iter().enumerate() {
            let tls = match b.tls.as_ref().map(http::Tls::from_config).transpose() {
                Ok(tls) => tls,
                Err(error) => {
                    errors.push(BindError::Tls {
                        entry,
                        resource: b.resource.clone(),
                        error,
                    });
                    continue;
                }
            };
            let policy = http::Policy {
                allowed_hosts: b.allowed_hosts.clone(),
                headers: b.headers.clone(),
                timeout: std::time::Duration::from_millis(b.timeout_ms),
                tls,
            };
            let r: Arc<dyn Resource> = match b.kind {
                ResourceKind::Http => {
                    let route = http::Route {
                        connection: b.connection.clone(),
                        policy,
                    };
                    match http_routes
                        .iter_mut()
                        .find(|(at, _)| bound[*at].0 == b.resource)
                    {
                        Some((_, routes)) => routes.push(route),
                        None => {
                            http_routes.push((bound.len(), vec![route]));
                            bound.push((&b.resource, None));
                        }
                    }
                    continue;
                }
                ResourceKind::Lambda => Arc::new(lambda::LambdaInvoke {
                    endpoint: b.endpoint.clone().unwrap_or_default(),
                    policy,
                }),
                ResourceKind::Kafka => {
                    let brokers = b.brokers.as_deref().unwrap_or_default();
                    match kafka::KafkaProduce::new(
                        brokers,
                        b.topic.clone(),
                        std::time::Duration::from_millis(b.timeout_ms),
                    ) {
                        Ok(p) => Arc::new(p),
                        Err(error) => {
                            errors.push(BindError::Producer {
                                entry,
                                resource: b.resource.clone(),
                                brokers: brokers.to_string(),
                                error,
                            });
                            continue;
                        }
                    }
                }
            };
            bound.push((&b.resource, Some(r)));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        for (at, routes) in http_routes {
            bound[at].1 = Some(Arc::new(http::HttpInvoke { routes }));
        }
        Ok(Bindings {
            bound: bound
                .into_iter()
                .filter_map(|(resource, r)| Some((resource.to_string(), r?)))
                .collect(),
        })
    }
}

/// A `[[resources]]` entry whose resource cannot be built. It prints the resource, the
/// entry's key (`resources[N].ca_file`) and what is wrong.
#[derive(Debug)]
pub enum BindError {
    /// A TLS file of a `lambda` or `http` entry cannot be used.
    Tls {
        entry: usize,
        resource: String,
        error: http::TlsError,
    },
    /// librdkafka refused to create the producer of a `kafka` entry.
    Producer {
        entry: usize,
        resource: String,
        brokers: String,
        error: rdkafka::error::KafkaError,
    },
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Tls {
                entry,
                resource,
                error,
            } => write!(
                f,
                "[[resources]] '{resource}': resources[{entry}].{}: {error}",
                error.key()
            ),
            BindError::Producer {
                entry,
                resource,
                brokers,
                error,
            } => write!(
                f,
                "[[resources]] '{resource}': resources[{entry}]: cannot create a Kafka producer for {brokers}: {error}"
            ),
        }
    }
}

impl std::error::Error for BindError {}

/// The failure for a task nothing can run.
pub fn unbound(call: &TaskCall) -> TaskError {
    TaskError::new(
        "States.Runtime",
        format!(
            "State '{}' calls resource '{}', which has no binding: add a [[resources]] entry with resource = \"{}\" to the config (or run with --mock-file / --mock-config)",
            call.state, call.resource, call.resource
        ),
    )
}

/// `*` matches any run of characters; everything else literally.
pub fn wildcard(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, rest) = parts.split_first().unwrap_or((&"", &[]));
    let Some(mut tail) = s.strip_prefix(first) else {
        return false;
    };
    let (last, middle) = rest.split_last().unwrap_or((&"", &[]));
    for m in middle {
        match tail.find(m) {
            Some(i) => tail = &tail[i + m.len()..],
            None => return false,
        }
    }
    tail.len() >= last.len() && tail.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Resource for Echo {
        fn invoke(&self, call: TaskCall) -> Reply {
            Reply::Ready(Ok(call.input))
        }
    }

    fn call(resource: &str) -> TaskCall {
        TaskCall {
            execution: Str::new("e"),
            state: Str::new("S"),
            resource: Str::new(resource),
            input: Value::int(1),
            attempt: 0,
            timeout_ms: None,
            credentials: None,
        }
    }

    #[test]
    fn native_functions_answer_and_fail_with_asl_errors() {
        let mut r = Registry::new();
        r.native("arn:aws:lambda:*:function:double", |call| {
            let n = call.input.as_i64().ok_or_else(|| {
                TaskError::new(
                    "Input.NotANumber",
                    format!("{} is not a number", call.input),
                )
            })?;
            Ok(Value::int(n * 2))
        });
        let Reply::Ready(Ok(v)) = r.invoke(call("arn:aws:lambda:eu-west-1:1:function:double"))
        else {
            panic!()
        };
        assert_eq!(v, Value::int(2));
        let mut bad = call("arn:aws:lambda:eu-west-1:1:function:double");
        bad.input = Value::string("x");
        let Reply::Ready(Err(e)) = r.invoke(bad) else {
            panic!()
        };
        assert_eq!(e.error.as_str(), "Input.NotANumber");
        r.native_async("arn:slow", |call| async move { Ok(call.input) });
        assert!(matches!(r.invoke(call("arn:slow")), Reply::Later(_)));
    }

    /// Moved from config.rs (`tls_keys_are_checked_at_load_and_named`) when the config became
    /// plain data: the unreadable ca_file is now reported here, with the same key and path.
    #[test]
    fn unusable_tls_files_name_the_entry_key_and_path() {
        let bindings = crate::config::parse_resources(
            r#"
            [[resources]]
            resource = "a"
            kind = "http"
            ca_file = "/nonexistent/ca.pem"
            [[resources]]
            resource = "arn:aws:states:::http:invoke"
            kind = "http"
            ca_file = "/nonexistent"
            [[resources]]
            resource = "arn:aws:lambda:*"
            kind = "lambda"
            endpoint = "https://fn.internal"
            client_cert_file = "/nonexistent/client.pem"
            client_key_file = "/nonexistent/client.key"
            [[resources]]
            resource = "fine"
            kind = "http"
            "#,
        )
        .expect("plain data: the files are not read while parsing");
        let errors = Registry::new().bind_config(&bindings).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let text = text.join("\n");
        for want in [
            "resources[0].ca_file: cannot read '/nonexistent/ca.pem'",
            "[[resources]] 'a': resources[0].ca_file: cannot read '/nonexistent/ca.pem': ",
            "[[resources]] 'arn:aws:states:::http:invoke': resources[1].ca_file: cannot read '/nonexistent': ",
            "[[resources]] 'arn:aws:lambda:*': resources[2].client_cert_file: cannot read '/nonexistent/client.pem': ",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert_eq!(errors.len(), 3, "{text}");
        assert!(matches!(
            &errors[1],
            BindError::Tls { entry: 1, resource, error: http::TlsError::Unreadable { key: "ca_file", .. } }
                if resource == "arn:aws:states:::http:invoke"
        ));
        // Nothing is bound when an entry fails.
        let mut r = Registry::new();
        assert!(r.bind_config(&bindings).is_err());
        assert!(!r.is_bound("fine"));
        // The same data without the bad entries builds.
        r.bind_config(&bindings[3..]).unwrap();
        assert!(r.is_bound("fine"));
    }

    #[test]
    fn patterns_match_with_stars() {
        assert!(wildcard(
            "arn:aws:lambda:*:function:*",
            "arn:aws:lambda:us-east-1:1:function:f"
        ));
        assert!(wildcard("a*", "a"));
        assert!(wildcard("*b", "ab"));
        assert!(!wildcard("a*b", "ba"));
        assert!(!wildcard("exact", "exactly"));
    }

    #[test]
    fn unbound_resources_fail_naming_the_resource_and_the_fix() {
        let mut r = Registry::new();
        r.bind("arn:aws:lambda:*", Arc::new(Echo));
        assert!(matches!(
            r.invoke(call("arn:aws:lambda:x")),
            Reply::Ready(Ok(v)) if v == Value::int(1)
        ));
        let Reply::Ready(Err(e)) = r.invoke(call("arn:aws:states:::sqs:sendMessage")) else {
            panic!()
        };
        assert_eq!(e.error.as_str(), "States.Runtime");
        assert!(e.cause.contains("'arn:aws:states:::sqs:sendMessage'"));
        assert!(e.cause.contains("[[resources]]"));
    }
}
