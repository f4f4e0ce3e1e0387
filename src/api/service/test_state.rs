//! TestState: one state run on its own, with AWS's answer: the output, the next state, the
//! status (SUCCEEDED, FAILED, RETRIABLE when a retrier would retry the error, CAUGHT_ERROR
//! when a catcher takes it), at DEBUG the data flow step by step (`inspectionData`, for a Map
//! also its items after ItemsPath, ItemSelector and ItemBatcher), and at TRACE the HTTP
//! request and response of an HTTP Task (the binding's credential headers only with
//! `revealSecrets`). `context` gives the state its context object whole.
//!
//! The state runs inside a small generated machine, on the same executor as everything else:
//! its transitions lead to stand-in Pass states that report which target was reached, the
//! output and the variables. The Task's resource is called once (or answered by `mock`);
//! every further step (a catcher's handling, the DEBUG views after InputPath, Parameters,
//! ResultSelector and ResultPath) runs again with the result or error fixed by a mock, so a
//! real resource sees one call. Retry is decided here, from the state's retriers, as TestState
//! reports it rather than performing it. A Map or Parallel state runs, as on AWS, only with
//! a mock of its whole result: a Task with its data flow stands in for it.

use std::sync::{Arc, Mutex};

use super::{ApiError, Service, compile, string, validation};
use crate::asl::MachineType;
use crate::exec::Outcome;
use crate::json::{self, Object, Str, Value};
use crate::stream::driver::{self, Finished};
use crate::tasks::mock::MockFile;
use crate::tasks::{Exchange, Registry, Reply, Resource, TaskCall};

/// The stand-in states' names; a definition's own states never start with this.
const STAND_IN: &str = "stepstream.TestState.";
/// The Lambda function the DEBUG steps use to see a state's effective task input.
const ECHO: &str = "arn:aws:lambda:us-east-1:123456789012:function:stepstream-test-state-echo";

/// The fields a state applies to its result (and to its errors): left out to see the
/// result itself.
const AFTER_THE_RESULT: [&str; 7] = [
    "ResultSelector",
    "ResultPath",
    "OutputPath",
    "Output",
    "Assign",
    "Retry",
    "Catch",
];

/// How the tested Task's resource answers: as it does, or as `mock` says.
#[derive(Clone, Debug)]
enum Answer {
    Return(Value),
    Throw(String, String),
}

struct Test {
    name: String,
    state: Object,
    /// A Map or Parallel state as written, when a mocked Task stands in for it.
    written: Option<Object>,
    jsonata: bool,
    input: Value,
    variables: Option<Object>,
    /// `context`: the context object the state sees, given whole.
    context: Option<Value>,
    debug: bool,
    /// TRACE: also the HTTP request and response of an HTTP Task.
    trace: bool,
    reveal_secrets: bool,
    retry_count: u32,
    /// `stateConfiguration.mapIterationFailureCount`: iterations of a mocked Map that failed.
    map_failures: Option<u32>,
}

/// What one run of the generated machine ended with.
struct Ran {
    /// The output the stand-in saw, or the whole output of a terminal state.
    output: Option<Value>,
    /// The target reached (`None` for the end of the machine).
    next: Option<String>,
    caught: Option<usize>,
    variables: Option<Value>,
    error: Option<(String, String)>,
}

impl Service {
    pub(super) async fn test_state(&self, body: &Value) -> Result<Value, ApiError> {
        let test = Test::parse(body)?;
        let mock = mock_answer(body)?;
        let registry = Arc::clone(&self.registry);
        tokio::task::spawn_blocking(move || test.run(&registry, mock))
            .await
            .map_err(|_| ApiError::new("InternalFailure", "the TestState run stopped"))?
    }
}

/// The resource of the Task that stands in for a tested Map or Parallel state; the mock
/// answers it.
const RUN_STAND_IN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:stepstream-test-state-run";

/// A Map or Parallel state as TestState runs it, with `mock` giving the result (or error) of
/// its whole run: checked as written first, then replaced by a Task with the same data flow
/// around the run (ResultSelector, ResultPath, OutputPath, or Output; Assign, Retry, Catch,
/// Next or End), whose result the mock gives. Without a mock such a state is refused, as AWS
/// refuses it.
fn as_mocked_task(
    name: &str,
    state: Object,
    jsonata: bool,
    mocked: bool,
) -> Result<Object, ApiError> {
    let kind = state.get("Type").and_then(Value::as_str).unwrap_or("");
    if !mocked {
        return Err(validation(
            "mock",
            &format!(
                "TestState runs a {kind} state only with a mock of its result or error: give mock.result (the {kind} state's whole result) or mock.errorOutput"
            ),
        ));
    }
    // The state as written must be valid on its own (its transitions aside).
    let mut alone = state.clone();
    for f in ["Next", "Catch"] {
        alone.remove(f);
    }
    alone.insert(Str::new("End"), Value::Bool(true));
    if jsonata && !alone.contains_key("QueryLanguage") {
        alone.insert(Str::new("QueryLanguage"), Value::string("JSONata"));
    }
    let machine = Value::object_from([
        ("StartAt", Value::from(name)),
        ("States", Value::object_from([(name, Value::object(alone))])),
    ]);
    compile(
        &json::to_string(&machine),
        "TestState",
        MachineType::Standard,
    )?;
    let mut task = Object::new();
    task.insert(Str::new("Type"), Value::string("Task"));
    task.insert(Str::new("Resource"), Value::string(RUN_STAND_IN));
    for (k, v) in state.iter() {
        let around_the_run = matches!(
            k.as_str(),
            "Comment"
                | "QueryLanguage"
                | "InputPath"
                | "ResultSelector"
                | "ResultPath"
                | "OutputPath"
                | "Output"
                | "Assign"
                | "Retry"
                | "Catch"
                | "Next"
                | "End"
        ) || (kind == "Parallel"
            && matches!(k.as_str(), "Parameters" | "Arguments"));
        if around_the_run {
            task.insert(k.clone(), v.clone());
        }
    }
    Ok(task)
}

fn mock_answer(body: &Value) -> Result<Option<Answer>, ApiError> {
    let Some(mock) = body.get("mock") else {
        return Ok(None);
    };
    // Mocked results are not checked against the services' API models (stepstream has none
    // of them): every mode is taken as NONE.
    match string(mock, "fieldValidationMode", 0, 16)? {
        None | Some("STRICT" | "PRESENT" | "NONE") => {}
        Some(other) => {
            return Err(validation(
                "mock.fieldValidationMode",
                &format!(
                    "Member must satisfy enum value set: [STRICT, PRESENT, NONE] (got '{other}')"
                ),
            ));
        }
    }
    if let Some(r) = mock.get("result").and_then(Value::as_str) {
        let v = json::parse(r.as_bytes())
            .map_err(|e| validation("mock.result", &format!("Member must be JSON text ({e})")))?;
        return Ok(Some(Answer::Return(v)));
    }
    if let Some(e) = mock.get("errorOutput") {
        let text = |f: &str| e.get(f).and_then(Value::as_str).unwrap_or("").to_string();
        return Ok(Some(Answer::Throw(text("error"), text("cause"))));
    }
    Err(validation(
        "mock",
        "Member must have either result or errorOutput",
    ))
}

impl Test {
    fn parse(body: &Value) -> Result<Test, ApiError> {
        let definition = string(body, "definition", 1, 1_048_576)?
            .ok_or_else(|| super::missing("definition"))?;
        let doc = json::parse(definition.as_bytes()).map_err(|e| {
            ApiError::new(
                "InvalidDefinition",
                format!("Invalid State Machine Definition: 'INVALID_JSON_DESCRIPTION: {e}'"),
            )
        })?;
        let asked = string(body, "stateName", 1, 80)?;
        let top_jsonata = doc.get("QueryLanguage").and_then(Value::as_str) == Some("JSONata");
        // A whole state machine and the state to test, or a state on its own.
        let (name, state, inherited) = match doc.get("States").and_then(Value::as_object) {
            Some(states) => {
                let name = asked.ok_or_else(|| {
                    validation(
                        "stateName",
                        "Member is required when the definition is a state machine",
                    )
                })?;
                let state = states.get(name).and_then(Value::as_object).ok_or_else(|| {
                    ApiError::new(
                        "InvalidDefinition",
                        format!("Invalid State Machine Definition: 'the definition has no state named {name}'"),
                    )
                })?;
                (name.to_string(), state.clone(), top_jsonata)
            }
            None => {
                let state = doc.as_object().ok_or_else(|| {
                    ApiError::new(
                        "InvalidDefinition",
                        "Invalid State Machine Definition: 'the definition must be a state or a state machine'",
                    )
                })?;
                (
                    asked.unwrap_or("TestState").to_string(),
                    state.clone(),
                    false,
                )
            }
        };
        if name.starts_with(STAND_IN) {
            return Err(validation(
                "stateName",
                "Member must not start with stepstream.TestState.",
            ));
        }
        let jsonata = match state.get("QueryLanguage").and_then(Value::as_str) {
            Some(q) => q == "JSONata",
            None => inherited,
        };
        let kind = state
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mocked = body.get("mock").is_some();
        if mocked && !matches!(kind.as_str(), "Task" | "Map" | "Parallel") {
            return Err(validation(
                "mock",
                &format!(
                    "A mock can only be given for a Task, Map or Parallel state, not a {kind} state"
                ),
            ));
        }
        let (state, written) = if matches!(kind.as_str(), "Map" | "Parallel") {
            let task = as_mocked_task(&name, state.clone(), jsonata, mocked)?;
            (task, Some(state))
        } else {
            (state, None)
        };
        let input_text = string(body, "input", 0, 262_144)?.unwrap_or("{}");
        let input = json::parse(input_text.as_bytes()).map_err(|e| {
            ApiError::new(
                "InvalidExecutionInput",
                format!("Invalid State Machine Execution Input: '{e}'"),
            )
        })?;
        let variables = match string(body, "variables", 0, 262_144)? {
            None => None,
            Some(text) => match json::parse(text.as_bytes()) {
                Ok(Value::Object(o)) => Some((*o).clone()),
                _ => {
                    return Err(ApiError::new(
                        "InvalidExecutionInput",
                        "Invalid variables: 'variables must be a JSON object of names to values'",
                    ));
                }
            },
        };
        let (debug, trace) = match string(body, "inspectionLevel", 0, 16)? {
            None | Some("INFO") => (false, false),
            Some("DEBUG") => (true, false),
            Some("TRACE") => (true, true),
            Some(other) => {
                return Err(validation(
                    "inspectionLevel",
                    &format!(
                        "Member must satisfy enum value set: [INFO, DEBUG, TRACE] (got '{other}')"
                    ),
                ));
            }
        };
        let context = match string(body, "context", 0, 262_144)? {
            None => None,
            Some(_) if !mocked => {
                return Err(validation(
                    "context",
                    "Member may only be given together with a mock (mock.result or mock.errorOutput)",
                ));
            }
            Some(text) => match json::parse(text.as_bytes()) {
                Ok(v @ Value::Object(_)) => Some(v),
                _ => {
                    return Err(validation(
                        "context",
                        "Member must be a JSON object: the context object the state sees ($$)",
                    ));
                }
            },
        };
        let reveal_secrets = body
            .get("revealSecrets")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let config = body.get("stateConfiguration");
        let number = |field: &str| config.and_then(|c| c.get(field)).and_then(Value::as_i64);
        let retry_count = number("retrierRetryCount").unwrap_or(0).max(0) as u32;
        let map_failures = number("mapIterationFailureCount").map(|n| n.max(0) as u32);
        if map_failures.is_some() && kind != "Map" {
            return Err(validation(
                "stateConfiguration.mapIterationFailureCount",
                &format!("Member applies only to a Map state, not a {kind} state"),
            ));
        }
        if let Some(origin) = config
            .and_then(|c| c.get("errorCausedByState"))
            .and_then(Value::as_str)
        {
            check_error_origin(origin, &kind, written.as_ref(), body)?;
        }
        Ok(Test {
            name,
            state,
            written,
            jsonata,
            input,
            variables,
            context,
            debug,
            trace,
            reveal_secrets,
            retry_count,
            map_failures,
        })
    }

    fn kind(&self) -> &str {
        self.state.get("Type").and_then(Value::as_str).unwrap_or("")
    }

    fn run(self, registry: &Registry, mock: Option<Answer>) -> Result<Value, ApiError> {
        let mut inspection: Vec<(&'static str, Value)> = Vec::new();
        if self.debug {
            inspection.push(("input", text(&self.input)));
        }
        let is_task = self.kind() == "Task";
        let mut exchange = None;
        // The resource's answer: from the mock, or from one real call.
        let answer = if !is_task {
            None
        } else if let Some(m) = mock {
            Some(self.with_map_failures(m, registry)?)
        } else {
            let (answer, seen) = self.call_resource(registry)?;
            exchange = seen;
            Some(answer)
        };
        if let Some(Answer::Return(result)) = &answer
            && self.debug
        {
            self.debug_views(registry, result, &mut inspection)?;
        }
        if let Some(e) = exchange {
            inspection.extend(e.request.map(|r| ("request", r)));
            inspection.extend(e.response.map(|r| ("response", r)));
        }
        if let Some(Answer::Throw(error, cause)) = &answer
            && let Some((index, backoff)) = self.retrier_for(error)
        {
            if self.debug {
                inspection.push((
                    "errorDetails",
                    Value::object_from([
                        ("retryIndex", Value::int(index as i64)),
                        ("retryBackoffIntervalSeconds", Value::int(backoff)),
                    ]),
                ));
            }
            return Ok(answer_json(
                "RETRIABLE",
                None,
                None,
                Some((error, cause)),
                inspection,
            ));
        }
        let ran = self.run_state(self.without(&["Retry"]), registry, answer.clone(), true)?;
        if let Some((e, c)) = &ran.error {
            return Ok(answer_json("FAILED", None, None, Some((e, c)), inspection));
        }
        if self.debug
            && let Some(v) = ran
                .variables
                .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        {
            inspection.push(("variables", text(&v)));
        }
        let output = ran.output.unwrap_or_default();
        if let Some(i) = ran.caught {
            if self.debug {
                inspection.push((
                    "errorDetails",
                    Value::object_from([("catchIndex", Value::int(i as i64))]),
                ));
            }
            let err = match &answer {
                Some(Answer::Throw(e, c)) => Some((e.as_str(), c.as_str())),
                _ => None,
            };
            return Ok(answer_json(
                "CAUGHT_ERROR",
                Some(&output),
                ran.next.as_deref(),
                err,
                inspection,
            ));
        }
        Ok(answer_json(
            "SUCCEEDED",
            Some(&output),
            ran.next.as_deref(),
            None,
            inspection,
        ))
    }

    /// The tested Task's resource called once, with its input as the state's data flow
    /// makes it, and at TRACE the HTTP exchange it made.
    fn call_resource(&self, registry: &Registry) -> Result<(Answer, Option<Exchange>), ApiError> {
        let bare = self.without(&AFTER_THE_RESULT);
        let (ran, exchange) = if self.trace {
            let (traced, seen) = self.tracing(registry);
            let ran = self.run_state(bare, &traced, None, false)?;
            (ran, seen.lock().ok().and_then(|mut e| e.take()))
        } else {
            (self.run_state(bare, registry, None, false)?, None)
        };
        let answer = match ran.error {
            Some((e, c)) => Answer::Throw(e, c),
            None => Answer::Return(ran.output.unwrap_or_default()),
        };
        Ok((answer, exchange))
    }

    /// A registry whose binding for the tested Task's resource reports the HTTP exchange it
    /// makes into the slot returned with it.
    fn tracing(&self, registry: &Registry) -> (Registry, Arc<Mutex<Option<Exchange>>>) {
        let seen = Arc::new(Mutex::new(None));
        let mut traced = registry.clone();
        let resource = self.state.get("Resource").and_then(Value::as_str);
        if let Some(resource) = resource
            && let Some(inner) = registry.resolve(resource)
        {
            let tracer = Tracer {
                inner: Arc::clone(inner),
                seen: Arc::clone(&seen),
                reveal_secrets: self.reveal_secrets,
            };
            traced.bind(resource, Arc::new(tracer));
        }
        (traced, seen)
    }

    /// A Map's mocked result as `mapIterationFailureCount` leaves it: beyond the Map's
    /// tolerated failures, the Map fails as it would have.
    fn with_map_failures(&self, mock: Answer, registry: &Registry) -> Result<Answer, ApiError> {
        let (Some(failures), Some(map)) = (self.map_failures, &self.written) else {
            return Ok(mock);
        };
        if failures == 0 || matches!(mock, Answer::Throw(..)) {
            return Ok(mock);
        }
        let count = self.map_number(map, "ToleratedFailureCount", registry)?;
        let pct = self.map_number(map, "ToleratedFailurePercentage", registry)?;
        if count.is_none() && pct.is_none() {
            return Err(validation(
                "stateConfiguration.mapIterationFailureCount",
                "A Map without ToleratedFailureCount or ToleratedFailurePercentage fails with its first failed iteration's error: mock that error with mock.errorOutput",
            ));
        }
        let items = match self.map_view(map, &["ItemSelector", "ItemBatcher"], registry)? {
            Value::Array(a) => a.len(),
            _ => 0,
        };
        let within_count = count.is_none_or(|c| f64::from(failures) <= c);
        let within_pct = pct.is_none_or(|p| f64::from(failures) * 100.0 / items.max(1) as f64 <= p);
        if within_count && within_pct {
            return Ok(mock);
        }
        Ok(Answer::Throw(
            "States.ExceedToleratedFailureThreshold".into(),
            "The specified tolerated failure threshold was exceeded".into(),
        ))
    }

    /// The DEBUG views of a Map state as written: its items after ItemsPath, ItemSelector
    /// and ItemBatcher (each from a run of the Map whose iterations echo their input), and
    /// its concurrency and tolerated failures as evaluated.
    fn map_views(
        &self,
        map: &Object,
        out: &mut Vec<(&'static str, Value)>,
        registry: &Registry,
    ) -> Result<(), ApiError> {
        if map.contains_key("ItemReader") {
            // The items come from elsewhere (S3), which these runs cannot read.
            return Ok(());
        }
        if !self.jsonata {
            let items = self.map_view(map, &["ItemSelector", "ItemBatcher"], registry)?;
            out.push(("afterItemsPath", text(&items)));
        }
        if map.contains_key("ItemSelector") {
            let selected = self.map_view(map, &["ItemBatcher"], registry)?;
            out.push(("afterItemSelector", text(&selected)));
        }
        if map.contains_key("ItemBatcher") {
            out.push((
                "afterItemBatcher",
                text(&self.map_view(map, &[], registry)?),
            ));
        }
        let concurrency = self.map_number(map, "MaxConcurrency", registry)?;
        out.push((
            "maxConcurrency",
            Value::int(concurrency.unwrap_or(0.0) as i64),
        ));
        if let Some(n) = self.map_number(map, "ToleratedFailureCount", registry)? {
            out.push(("toleratedFailureCount", Value::int(n as i64)));
        }
        if let Some(p) = self.map_number(map, "ToleratedFailurePercentage", registry)? {
            out.push(("toleratedFailurePercentage", Value::float(p)));
        }
        Ok(())
    }

    /// The result of the Map as written, without `leave_out`, with iterations that echo their
    /// input and nothing applied after the run.
    fn map_view(
        &self,
        map: &Object,
        leave_out: &[&str],
        registry: &Registry,
    ) -> Result<Value, ApiError> {
        let mut m = map.clone();
        for f in leave_out.iter().chain(&AFTER_THE_RESULT).chain(&[
            "ResultWriter",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
        ]) {
            m.remove(f);
        }
        let mut processor = Object::new();
        if let Some(config) = map
            .get("ItemProcessor")
            .and_then(|p| p.get("ProcessorConfig"))
        {
            processor.insert(Str::new("ProcessorConfig"), config.clone());
        }
        processor.insert(Str::new("StartAt"), Value::string("Echo"));
        processor.insert(
            Str::new("States"),
            Value::object_from([(
                "Echo",
                Value::object_from([("Type", Value::string("Pass")), ("End", Value::Bool(true))]),
            )]),
        );
        m.remove("Iterator");
        m.insert(Str::new("ItemProcessor"), Value::object(processor));
        let ran = self.run_state(m, registry, None, false)?;
        match ran.error {
            Some((e, c)) => Err(ApiError::new(
                "ValidationException",
                format!("the Map state's items could not be found: {e}: {c}"),
            )),
            None => Ok(ran.output.unwrap_or_default()),
        }
    }

    /// A numeric field of the Map as written (`F`, or `FPath` in JSONPath), evaluated
    /// against the state's input; `None` when the Map does not set it.
    fn map_number(
        &self,
        map: &Object,
        field: &str,
        registry: &Registry,
    ) -> Result<Option<f64>, ApiError> {
        let path_field = format!("{field}Path");
        let pass = if self.jsonata {
            let Some(v) = map.get(field) else {
                return Ok(None);
            };
            Value::object_from([("Type", Value::string("Pass")), ("Output", v.clone())])
        } else if let Some(v) = map.get(field) {
            return Ok(v.as_f64());
        } else if let Some(path) = map.get(path_field.as_str()) {
            let mut pass = Object::new();
            pass.insert(Str::new("Type"), Value::string("Pass"));
            if let Some(p) = map.get("InputPath") {
                pass.insert(Str::new("InputPath"), p.clone());
            }
            pass.insert(
                Str::new("Parameters"),
                Value::object_from([("v.$", path.clone())]),
            );
            Value::object(pass)
        } else {
            return Ok(None);
        };
        let Value::Object(pass) = pass else {
            return Ok(None);
        };
        let ran = self.run_state((*pass).clone(), registry, None, false)?;
        let value = ran.output.map(|o| {
            if self.jsonata {
                o
            } else {
                o.get("v").cloned().unwrap_or_default()
            }
        });
        match (ran.error, value.as_ref().and_then(Value::as_f64)) {
            (None, Some(n)) => Ok(Some(n)),
            (Some((e, c)), _) => Err(validation(field, &format!("{e}: {c}"))),
            (None, _) => Err(validation(field, "did not evaluate to a number")),
        }
    }

    /// The DEBUG views of the data flow, each from a run with the result fixed.
    fn debug_views(
        &self,
        registry: &Registry,
        result: &Value,
        out: &mut Vec<(&'static str, Value)>,
    ) -> Result<(), ApiError> {
        let fixed = || Some(Answer::Return(result.clone()));
        let map = self
            .written
            .as_ref()
            .filter(|w| w.get("Type").and_then(Value::as_str) == Some("Map"));
        if self.jsonata {
            if let Some(map) = map {
                self.map_views(map, out, registry)?;
            }
            if self.state.contains_key("Arguments") {
                let echo = self.echo(&["Arguments"]);
                out.push(("afterArguments", self.view(echo, registry, None)?));
            }
            out.push(("result", text(result)));
            return Ok(());
        }
        let pass_with = |keep: &[&str]| {
            let mut s = Object::new();
            s.insert(Str::new("Type"), Value::string("Pass"));
            for k in keep {
                if let Some(v) = self.state.get(k) {
                    s.insert(Str::new(k), v.clone());
                }
            }
            s
        };
        out.push((
            "afterInputPath",
            self.view(pass_with(&["InputPath"]), registry, None)?,
        ));
        if let Some(map) = map {
            self.map_views(map, out, registry)?;
        }
        if self.state.contains_key("Parameters") {
            let echo = self.echo(&["InputPath", "Parameters"]);
            out.push(("afterParameters", self.view(echo, registry, None)?));
        }
        out.push(("result", text(result)));
        if self.state.contains_key("ResultSelector") {
            let s = self.without(&["ResultPath", "OutputPath", "Assign", "Retry", "Catch"]);
            out.push(("afterResultSelector", self.view(s, registry, fixed())?));
        }
        let s = self.without(&["OutputPath", "Assign", "Retry", "Catch"]);
        out.push(("afterResultPath", self.view(s, registry, fixed())?));
        Ok(())
    }

    /// A Task that calls the echo function with the fields `keep` of the tested state: its
    /// output is the effective task input.
    fn echo(&self, keep: &[&str]) -> Object {
        let mut s = Object::new();
        s.insert(Str::new("Type"), Value::string("Task"));
        s.insert(Str::new("Resource"), Value::string(ECHO));
        if self.jsonata {
            s.insert(Str::new("QueryLanguage"), Value::string("JSONata"));
        }
        for k in keep {
            if let Some(v) = self.state.get(k) {
                s.insert(Str::new(k), v.clone());
            }
        }
        s
    }

    fn view(
        &self,
        state: Object,
        registry: &Registry,
        answer: Option<Answer>,
    ) -> Result<Value, ApiError> {
        let ran = self.run_state(state, registry, answer, false)?;
        match ran.error {
            Some((e, c)) => Ok(Value::from(format!("{e}: {c}"))),
            None => Ok(text(&ran.output.unwrap_or_default())),
        }
    }

    fn without(&self, fields: &[&str]) -> Object {
        let mut s = self.state.clone();
        for f in fields {
            s.remove(f);
        }
        // A Wait is tested for its data flow; it does not wait.
        if s.get("Type").and_then(Value::as_str) == Some("Wait") {
            for f in ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"] {
                s.remove(f);
            }
            s.insert(Str::new("Type"), Value::string("Pass"));
        }
        s
    }

    /// The retrier that would retry `error` now, and the seconds it would wait.
    fn retrier_for(&self, error: &str) -> Option<(usize, i64)> {
        let retriers = self.state.get("Retry")?.as_array()?;
        for (i, r) in retriers.as_slice().iter().enumerate() {
            if !error_matches(r, error) {
                continue;
            }
            let max = r.get("MaxAttempts").and_then(Value::as_i64).unwrap_or(3);
            if i64::from(self.retry_count) >= max {
                // Exhausted: Catch decides.
                return None;
            }
            let interval = r
                .get("IntervalSeconds")
                .and_then(Value::as_f64)
                .unwrap_or(1.0);
            let rate = r.get("BackoffRate").and_then(Value::as_f64).unwrap_or(2.0);
            let mut wait = interval * rate.powi(self.retry_count as i32);
            if let Some(m) = r.get("MaxDelaySeconds").and_then(Value::as_f64) {
                wait = wait.min(m);
            }
            return Some((i, wait as i64));
        }
        None
    }

    /// Runs `state` as the tested state inside a generated machine; with `routes`, its
    /// transitions go to stand-ins that report where they lead, the output and variables.
    fn run_state(
        &self,
        mut state: Object,
        registry: &Registry,
        answer: Option<Answer>,
        routes: bool,
    ) -> Result<Ran, ApiError> {
        let mut states = Object::new();
        let mut targets: Vec<(String, Option<usize>)> = Vec::new();
        let terminal = matches!(
            state.get("Type").and_then(Value::as_str),
            Some("Succeed" | "Fail")
        );
        if self.jsonata && !state.contains_key("QueryLanguage") {
            state.insert(Str::new("QueryLanguage"), Value::string("JSONata"));
        }
        if terminal {
        } else if routes {
            let mut to = |target: &str, caught: Option<usize>| {
                let k = targets.len();
                targets.push((target.to_string(), caught));
                Value::from(format!("{STAND_IN}{k}"))
            };
            if state.get("End").and_then(Value::as_bool) == Some(true) || !has_transition(&state) {
                state.remove("End");
                let k = to("", None);
                state.insert(Str::new("Next"), k);
            }
            if let Some(Value::String(n)) = state.get("Next").cloned()
                && !n.as_str().starts_with(STAND_IN)
            {
                state.insert(Str::new("Next"), to(n.as_str(), None));
            }
            if let Some(Value::String(d)) = state.get("Default").cloned() {
                state.insert(Str::new("Default"), to(d.as_str(), None));
            }
            for (field, caught) in [("Choices", false), ("Catch", true)] {
                if let Some(Value::Array(list)) = state.get_mut(field) {
                    for (i, c) in Arc::make_mut(list).items_mut().iter_mut().enumerate() {
                        if let Some(Value::String(n)) = c.get("Next").cloned()
                            && let Value::Object(o) = c
                        {
                            let next = to(n.as_str(), caught.then_some(i));
                            Arc::make_mut(o).insert(Str::new("Next"), next);
                        }
                    }
                }
            }
        } else {
            for f in ["Next", "Default", "Choices", "Catch"] {
                state.remove(f);
            }
            if state.get("Type").and_then(Value::as_str) == Some("Choice") {
                state.insert(Str::new("Type"), Value::string("Pass"));
            }
            state.insert(Str::new("End"), Value::Bool(true));
        }
        let mut start = self.name.clone();
        if let Some(vars) = &self.variables {
            let first = format!("{STAND_IN}variables");
            states.insert(
                Str::from(first.as_str()),
                Value::object_from([
                    ("Type", Value::string("Pass")),
                    ("Assign", Value::object(vars.clone())),
                    ("Next", Value::from(self.name.as_str())),
                ]),
            );
            start = first;
        }
        let assigned = self.variable_names(&state);
        states.insert(Str::from(self.name.as_str()), Value::object(state));
        for (k, (target, caught)) in targets.iter().enumerate() {
            let mut vars = Object::new();
            for v in assigned
                .iter()
                .chain(caught.map(|i| self.catcher_variables(i)).iter().flatten())
            {
                vars.insert(Str::from(format!("{v}.$")), Value::from(format!("${v}")));
            }
            let mut report = vec![
                ("next", Value::from(target.as_str())),
                ("output.$", Value::string("$")),
                ("variables", Value::object(vars)),
            ];
            if let Some(i) = caught {
                report.push(("caught", Value::int(*i as i64)));
            }
            states.insert(
                Str::from(format!("{STAND_IN}{k}")),
                Value::object_from([
                    ("Type", Value::string("Pass")),
                    ("QueryLanguage", Value::string("JSONPath")),
                    ("Parameters", Value::object_from(report)),
                    ("End", Value::Bool(true)),
                ]),
            );
        }
        let machine = Value::object_from([
            ("StartAt", Value::from(start)),
            ("TimeoutSeconds", Value::int(300)),
            ("States", Value::object(states)),
        ]);
        let program = compile(
            &json::to_string(&machine),
            "TestState",
            MachineType::Standard,
        )?;
        let mut registry = registry.clone();
        registry.native(ECHO, |call| Ok(call.input));
        if let Some(a) = answer {
            let response = match a {
                Answer::Return(v) => Value::object_from([("Return", v)]),
                Answer::Throw(e, c) => Value::object_from([(
                    "Throw",
                    Value::object_from([("Error", Value::from(e)), ("Cause", Value::from(c))]),
                )]),
            };
            let mocks = Value::object_from([(
                "MockedResponses",
                Value::object_from([(self.name.as_str(), Value::object_from([("0", response)]))]),
            )]);
            let file = MockFile::parse(json::to_string(&mocks).as_bytes()).map_err(|e| {
                ApiError::new("InternalFailure", format!("the TestState mock: {e}"))
            })?;
            registry.mock(Arc::new(file));
        }
        let finished: Finished<()> = driver::run_one_in_context(
            program.plan,
            Arc::new(registry),
            "test-state",
            self.input.clone(),
            None,
            self.context.clone(),
        );
        Ok(match finished.outcome {
            Outcome::Succeeded(v) if !targets.is_empty() => Ran {
                next: v
                    .get("next")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
                caught: v.get("caught").and_then(Value::as_i64).map(|i| i as usize),
                variables: v.get("variables").cloned(),
                output: v.get("output").cloned(),
                error: None,
            },
            Outcome::Succeeded(v) => Ran {
                output: Some(v),
                next: None,
                caught: None,
                variables: None,
                error: None,
            },
            other => {
                let (e, c) = other.error_and_cause();
                Ran {
                    output: None,
                    next: None,
                    caught: None,
                    variables: None,
                    error: Some((
                        e.map(|s| s.to_string()).unwrap_or_default(),
                        c.map(|s| s.to_string()).unwrap_or_default(),
                    )),
                }
            }
        })
    }

    /// The variables there are after the state succeeds: those given, and its Assign's.
    fn variable_names(&self, state: &Object) -> Vec<String> {
        let mut names: Vec<String> = self
            .variables
            .iter()
            .flat_map(|o| o.keys().map(ToString::to_string))
            .collect();
        if let Some(Value::Object(a)) = state.get("Assign") {
            for k in a.keys() {
                let k = k.as_str().trim_end_matches(".$").to_string();
                if !names.contains(&k) {
                    names.push(k);
                }
            }
        }
        names
    }

    /// The variables a catcher's Assign adds.
    fn catcher_variables(&self, i: usize) -> Vec<String> {
        let Some(Value::Object(a)) = self
            .state
            .get("Catch")
            .and_then(Value::as_array)
            .and_then(|c| c.as_slice().get(i))
            .and_then(|c| c.get("Assign"))
        else {
            return Vec::new();
        };
        a.keys()
            .map(|k| k.as_str().trim_end_matches(".$").to_string())
            .collect()
    }
}

/// The tested resource as TRACE sees it: performed with its exchange recorded.
struct Tracer {
    inner: Arc<dyn Resource>,
    seen: Arc<Mutex<Option<Exchange>>>,
    reveal_secrets: bool,
}

impl Resource for Tracer {
    fn invoke(&self, call: TaskCall) -> Reply {
        let Some(traced) = self.inner.invoke_traced(call.clone(), self.reveal_secrets) else {
            return self.inner.invoke(call);
        };
        let seen = Arc::clone(&self.seen);
        Reply::Later(Box::pin(async move {
            let (result, exchange) = traced.await;
            if let Ok(mut slot) = seen.lock() {
                *slot = Some(exchange);
            }
            result
        }))
    }
}

/// `stateConfiguration.errorCausedByState` names a state inside the mocked Map or Parallel
/// whose error `mock.errorOutput` gives.
fn check_error_origin(
    origin: &str,
    kind: &str,
    written: Option<&Object>,
    body: &Value,
) -> Result<(), ApiError> {
    const FIELD: &str = "stateConfiguration.errorCausedByState";
    let Some(state) = written else {
        return Err(validation(
            FIELD,
            &format!("Member applies only to a Map or Parallel state, not a {kind} state"),
        ));
    };
    if body
        .get("mock")
        .and_then(|m| m.get("errorOutput"))
        .is_none()
    {
        return Err(validation(
            FIELD,
            "Member needs mock.errorOutput: the error the named state raised",
        ));
    }
    fn contains(v: &Value, name: &str) -> bool {
        match v {
            Value::Object(o) => {
                o.get("States")
                    .and_then(Value::as_object)
                    .is_some_and(|s| s.contains_key(name))
                    || o.iter().any(|(_, v)| contains(v, name))
            }
            Value::Array(a) => a.as_slice().iter().any(|v| contains(v, name)),
            _ => false,
        }
    }
    let inside = ["ItemProcessor", "Iterator", "Branches"]
        .iter()
        .filter_map(|f| state.get(f))
        .any(|v| contains(v, origin));
    if !inside {
        return Err(validation(
            FIELD,
            &format!("'{origin}' is not a state inside the tested {kind} state"),
        ));
    }
    Ok(())
}

fn has_transition(state: &Object) -> bool {
    state.contains_key("Next") || state.contains_key("Choices")
}

/// Whether a retrier's `ErrorEquals` covers `error` as the executor decides it (a runtime
/// error is never retried; `States.ALL` does not cover `States.DataLimitExceeded`).
fn error_matches(retrier: &Value, error: &str) -> bool {
    if error == "States.Runtime" {
        return false;
    }
    let names = retrier.get("ErrorEquals").and_then(Value::as_array);
    names.is_some_and(|n| {
        n.as_slice().iter().filter_map(Value::as_str).any(|n| {
            n == error
                || (n == "States.ALL" && error != "States.DataLimitExceeded")
                || (n == "States.TaskFailed"
                    && !matches!(error, "States.Timeout" | "States.DataLimitExceeded"))
        })
    })
}

fn text(v: &Value) -> Value {
    Value::from(json::to_string(v))
}

fn answer_json(
    status: &str,
    output: Option<&Value>,
    next: Option<&str>,
    error: Option<(&str, &str)>,
    inspection: Vec<(&'static str, Value)>,
) -> Value {
    let mut pairs = vec![("status", Value::string(status))];
    if let Some(o) = output {
        pairs.push(("output", text(o)));
    }
    if let Some(n) = next {
        pairs.push(("nextState", Value::string(n)));
    }
    if let Some((e, c)) = error {
        pairs.push(("error", Value::string(e)));
        pairs.push(("cause", Value::string(c)));
    }
    if !inspection.is_empty() {
        pairs.push(("inspectionData", Value::object_from(inspection)));
    }
    Value::object_from(pairs)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::api::Settings;

    fn call(service: &Arc<Service>, body: &str) -> Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let body = json::parse(body.as_bytes()).unwrap();
        rt.block_on(service.call("TestState", &body)).unwrap()
    }

    #[test]
    fn a_real_resource_is_called_once_for_every_debug_view() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut registry = Registry::new();
        let seen = Arc::clone(&calls);
        registry.native(
            "arn:aws:lambda:us-east-1:123456789012:function:price",
            move |call| {
                seen.fetch_add(1, Ordering::SeqCst);
                let qty = call.input.get("qty").and_then(Value::as_i64).unwrap_or(0);
                Ok(Value::object_from([("total", Value::int(qty * 3))]))
            },
        );
        let mut settings = Settings::default();
        settings.shards.shards = 1;
        let service = Arc::new(Service::start(settings, registry).unwrap());
        let state = r#"{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:price",
            "InputPath":"$.line","Parameters":{"qty.$":"$.n"},"ResultSelector":{"t.$":"$.total"},
            "ResultPath":"$.price","End":true}"#;
        let body = Value::object_from([
            ("definition", Value::string(state)),
            ("input", Value::string(r#"{"line":{"n":4}}"#)),
            ("inspectionLevel", Value::string("DEBUG")),
        ]);
        let v = call(&service, &json::to_string(&body));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{v:?}");
        assert_eq!(v.get("status"), Some(&Value::string("SUCCEEDED")));
        assert_eq!(v.get("nextState"), None);
        let data = v.get("inspectionData").unwrap();
        let view =
            |k: &str| json::parse(data.get(k).unwrap().as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(view("afterInputPath"), json::parse(br#"{"n":4}"#).unwrap());
        assert_eq!(
            view("afterParameters"),
            json::parse(br#"{"qty":4}"#).unwrap()
        );
        assert_eq!(view("result"), json::parse(br#"{"total":12}"#).unwrap());
        assert_eq!(
            view("afterResultSelector"),
            json::parse(br#"{"t":12}"#).unwrap()
        );
        assert_eq!(
            view("afterResultPath"),
            json::parse(br#"{"line":{"n":4},"price":{"t":12}}"#).unwrap()
        );
        let output = v.get("output").and_then(Value::as_str).unwrap();
        assert_eq!(
            json::parse(output.as_bytes()).unwrap(),
            view("afterResultPath")
        );
    }

    /// TestState with `pairs` as its request body (strings, and `mock` as an object).
    fn test_state(service: &Arc<Service>, pairs: &[(&str, &str)]) -> Result<Value, ApiError> {
        let body = Value::object_from(pairs.iter().map(|(k, v)| {
            let v = match *k {
                "mock" => json::parse(v.as_bytes()).unwrap(),
                _ => Value::string(v),
            };
            (*k, v)
        }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(service.call("TestState", &body))
    }

    #[test]
    fn map_and_parallel_states_run_with_a_mock_of_their_whole_result() {
        let mut settings = Settings::default();
        settings.shards.shards = 1;
        let service = Arc::new(Service::start(settings, Registry::new()).unwrap());
        let machine = r#"{"StartAt":"M","States":{
            "M":{"Type":"Map","ItemsPath":"$.items","ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}},
              "ResultSelector":{"n.$":"States.ArrayLength($)"},"ResultPath":"$.count",
              "Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.err","Next":"Recover"}],"Next":"After"},
            "After":{"Type":"Succeed"},"Recover":{"Type":"Succeed"}}}"#;
        let asked = |mock: Option<&str>| {
            let mut body = vec![
                ("definition", machine),
                ("stateName", "M"),
                ("input", r#"{"items":[1,2,3]}"#),
                ("inspectionLevel", "DEBUG"),
            ];
            body.extend(mock.map(|m| ("mock", m)));
            test_state(&service, &body)
        };
        let v = asked(Some(r#"{"result":"[10,20,30,40]"}"#)).unwrap();
        assert_eq!(v.get("status"), Some(&Value::string("SUCCEEDED")), "{v:?}");
        assert_eq!(v.get("nextState"), Some(&Value::string("After")));
        let output = v.get("output").and_then(Value::as_str).unwrap();
        assert_eq!(
            json::parse(output.as_bytes()).unwrap(),
            json::parse(br#"{"items":[1,2,3],"count":{"n":4}}"#).unwrap()
        );
        let data = v.get("inspectionData").unwrap();
        assert_eq!(
            data.get("result").and_then(Value::as_str),
            Some("[10,20,30,40]")
        );
        // A mocked error goes to the Map's catcher.
        let v = asked(Some(
            r#"{"errorOutput":{"error":"States.ExceedToleratedFailureThreshold","cause":"too many"}}"#,
        ))
        .unwrap();
        assert_eq!(
            v.get("status"),
            Some(&Value::string("CAUGHT_ERROR")),
            "{v:?}"
        );
        assert_eq!(v.get("nextState"), Some(&Value::string("Recover")));
        // Without a mock it is refused, saying what to give.
        let e = asked(None).unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(e.message.contains("mock.result"), "{}", e.message);
        // A Parallel in JSONata: Output reads $states.result, the mocked branches' outputs.
        let parallel = r#"{"QueryLanguage":"JSONata","Type":"Parallel","Branches":[
            {"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}],
            "Output":"{% $states.result[0].x + $states.result[1].x %}","End":true}"#;
        let mock = r#"{"result":"[{\"x\":1},{\"x\":2}]"}"#;
        let v = test_state(&service, &[("definition", parallel), ("mock", mock)]).unwrap();
        assert_eq!(v.get("status"), Some(&Value::string("SUCCEEDED")), "{v:?}");
        assert_eq!(v.get("output"), Some(&Value::string("3")));
        // The state as written is checked: a Map without its processor is invalid.
        let broken = r#"{"Type":"Map","End":true}"#;
        let e = test_state(
            &service,
            &[("definition", broken), ("mock", r#"{"result":"[]"}"#)],
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidDefinition", "{}", e.message);
    }
}
