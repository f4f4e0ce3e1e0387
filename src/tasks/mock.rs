//! Mocked task results, in the two formats users have:
//!
//! * the per-state mock file (`{"MockedResponses": {"State": {"0": {"Return": ...}}}}`), keyed
//!   by state name and by the attempt of the current entry into the state (`RetryCount`);
//! * AWS Step Functions Local's mock configuration (`StateMachines` / `TestCases` /
//!   `MockedResponses`), where a test case binds states to named responses and the keys count
//!   the invocations of the state during the execution.
//!
//! `Throw` fails the attempt with the given error and cause; `States.Timeout` behaves as a
//! time-out of the task.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use super::{StateMocks, TaskCall};
use crate::exec::TaskError;
use crate::json::{Str, Value};

/// A mock file that cannot be used: where in the file and why.
#[derive(Debug, Clone, PartialEq)]
pub struct MockError {
    pub location: String,
    pub message: String,
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{} (at {})", self.message, self.location)
        }
    }
}

impl std::error::Error for MockError {}

fn err(location: impl Into<String>, message: impl Into<String>) -> MockError {
    MockError {
        location: location.into(),
        message: message.into(),
    }
}

#[derive(Clone, Debug)]
enum Response {
    Return(Value),
    Throw(TaskError),
}

/// Responses by number (attempt or invocation), from keys like `"0"` and `"1-2"`.
#[derive(Clone, Debug, Default)]
struct Responses(Vec<(u32, u32, Response)>);

impl Responses {
    fn parse(v: &Value, loc: &str) -> Result<Responses, MockError> {
        let Value::Object(o) = v else {
            return Err(err(
                loc,
                "expected an object of numbered responses (\"0\", \"1-2\", ...)",
            ));
        };
        let mut out = Vec::new();
        for (key, r) in o.iter() {
            let rloc = format!("{loc}/{key}");
            let (from, to) = match key.split_once('-') {
                Some((a, b)) => (a.trim().parse::<u32>(), b.trim().parse::<u32>()),
                None => (key.trim().parse::<u32>(), key.trim().parse::<u32>()),
            };
            let (Ok(from), Ok(to)) = (from, to) else {
                return Err(err(
                    rloc,
                    format!("'{key}' is not a number or a range like \"1-2\""),
                ));
            };
            if to < from {
                return Err(err(
                    rloc,
                    format!("the range '{key}' ends before it starts"),
                ));
            }
            let response = match (r.get("Return"), r.get("Throw")) {
                (Some(v), None) => Response::Return(v.clone()),
                (None, Some(t)) => {
                    let error = t.get("Error").and_then(Value::as_str);
                    let cause = t.get("Cause").and_then(Value::as_str).unwrap_or("");
                    let Some(error) = error else {
                        return Err(err(
                            format!("{rloc}/Throw"),
                            "a Throw needs an \"Error\" string (and optionally a \"Cause\")",
                        ));
                    };
                    Response::Throw(TaskError::new(error, cause))
                }
                _ => {
                    return Err(err(
                        rloc,
                        "a response is an object with exactly one of \"Return\" or \"Throw\"",
                    ));
                }
            };
            out.push((from, to, response));
        }
        Ok(Responses(out))
    }

    fn answer(&self, n: u32, state: &str, what: &str) -> Result<Value, TaskError> {
        match self.0.iter().find(|(a, b, _)| (*a..=*b).contains(&n)) {
            Some((_, _, Response::Return(v))) => Ok(v.clone()),
            Some((_, _, Response::Throw(e))) => Err(e.clone()),
            None => {
                let covered: Vec<String> = self
                    .0
                    .iter()
                    .map(|(a, b, _)| {
                        if a == b {
                            a.to_string()
                        } else {
                            format!("{a}-{b}")
                        }
                    })
                    .collect();
                Err(TaskError::new(
                    "States.Runtime",
                    format!(
                        "The mock has no response for {what} {n} of state '{state}' (it covers {}): add a key for it",
                        covered.join(", ")
                    ),
                ))
            }
        }
    }
}

/// The per-state mock file (the conformance corpus's format).
#[derive(Clone, Debug, Default)]
pub struct MockFile {
    states: HashMap<String, Responses>,
}

impl MockFile {
    pub fn parse(text: &[u8]) -> Result<MockFile, MockError> {
        let v = crate::json::parse(text).map_err(|e| err("", format!("not valid JSON: {e}")))?;
        let Some(Value::Object(states)) = v.get("MockedResponses") else {
            return Err(err(
                "/",
                "expected {\"MockedResponses\": {\"StateName\": {...}}}",
            ));
        };
        let mut out = HashMap::new();
        for (name, responses) in states.iter() {
            let loc = format!("/MockedResponses/{name}");
            out.insert(name.to_string(), Responses::parse(responses, &loc)?);
        }
        Ok(MockFile { states: out })
    }

    /// The state names this file answers for.
    pub fn states(&self) -> impl Iterator<Item = &str> {
        self.states.keys().map(String::as_str)
    }
}

impl StateMocks for MockFile {
    fn answer(&self, call: &TaskCall) -> Option<Result<Value, TaskError>> {
        let r = self.states.get(call.state.as_str())?;
        Some(r.answer(call.attempt, &call.state, "attempt"))
    }
}

/// One test case of an AWS Step Functions Local mock configuration.
#[derive(Debug, Default)]
pub struct MockConfig {
    states: HashMap<String, (String, Responses)>,
    invocations: Mutex<HashMap<(Str, Str), u32>>,
}

impl MockConfig {
    /// Reads test case `test_case` of state machine `machine`.
    pub fn parse(text: &[u8], machine: &str, test_case: &str) -> Result<MockConfig, MockError> {
        let v = crate::json::parse(text).map_err(|e| err("", format!("not valid JSON: {e}")))?;
        let Some(Value::Object(machines)) = v.get("StateMachines") else {
            return Err(err("/", "expected a \"StateMachines\" object"));
        };
        let names = |o: &crate::json::Object| {
            o.keys()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(m) = machines.get(machine) else {
            return Err(err(
                "/StateMachines",
                format!(
                    "no state machine named '{machine}' (it has: {}); name it with --name",
                    names(machines)
                ),
            ));
        };
        let Some(Value::Object(cases)) = m.get("TestCases") else {
            return Err(err(
                format!("/StateMachines/{machine}"),
                "expected a \"TestCases\" object",
            ));
        };
        let Some(Value::Object(case)) = cases.get(test_case) else {
            return Err(err(
                format!("/StateMachines/{machine}/TestCases"),
                format!(
                    "no test case named '{test_case}' (it has: {})",
                    names(cases)
                ),
            ));
        };
        let responses = match v.get("MockedResponses") {
            Some(Value::Object(o)) => o.clone(),
            _ => return Err(err("/", "expected a \"MockedResponses\" object")),
        };
        let mut states = HashMap::new();
        for (state, name) in case.iter() {
            let loc = format!("/StateMachines/{machine}/TestCases/{test_case}/{state}");
            let Some(name) = name.as_str() else {
                return Err(err(loc, "expected the name of a mocked response"));
            };
            let Some(r) = responses.get(name) else {
                return Err(err(
                    loc,
                    format!(
                        "'{name}' is not in MockedResponses (it has: {})",
                        names(&responses)
                    ),
                ));
            };
            let parsed = Responses::parse(r, &format!("/MockedResponses/{name}"))?;
            states.insert(state.to_string(), (name.to_string(), parsed));
        }
        Ok(MockConfig {
            states,
            invocations: Mutex::new(HashMap::new()),
        })
    }
}

impl StateMocks for MockConfig {
    fn answer(&self, call: &TaskCall) -> Option<Result<Value, TaskError>> {
        let (_, responses) = self.states.get(call.state.as_str())?;
        let n = {
            let mut counts = self.invocations.lock().unwrap_or_else(|e| e.into_inner());
            let c = counts
                .entry((call.execution.clone(), call.state.clone()))
                .or_insert(0);
            let n = *c;
            *c += 1;
            n
        };
        Some(responses.answer(n, &call.state, "invocation"))
    }

    fn finished(&self, execution: &str) {
        let mut counts = self.invocations.lock().unwrap_or_else(|e| e.into_inner());
        counts.retain(|(e, _), _| e.as_str() != execution);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(state: &str, attempt: u32) -> TaskCall {
        TaskCall {
            execution: Str::new("e1"),
            state: Str::new(state),
            resource: Str::new("arn:aws:lambda:us-east-1:1:function:f"),
            input: Value::Null,
            attempt,
            timeout_ms: None,
            credentials: None,
        }
    }

    #[test]
    fn per_state_file_answers_by_attempt() {
        let m = MockFile::parse(
            br#"{"MockedResponses":{"V":{"0":{"Return":{"ok":true}},"1-2":{"Throw":{"Error":"Custom.Err","Cause":"why"}}}}}"#,
        )
        .unwrap();
        assert_eq!(
            m.answer(&call("V", 0)),
            Some(Ok(crate::json::parse(br#"{"ok":true}"#).unwrap()))
        );
        assert_eq!(
            m.answer(&call("V", 2)),
            Some(Err(TaskError::new("Custom.Err", "why")))
        );
        let Some(Err(e)) = m.answer(&call("V", 3)) else {
            panic!()
        };
        assert!(e.cause.contains("attempt 3 of state 'V'"), "{}", e.cause);
        assert_eq!(m.answer(&call("Other", 0)), None);
    }

    #[test]
    fn bad_mock_files_say_where() {
        let e = MockFile::parse(br#"{"MockedResponses":{"V":{"x":{"Return":1}}}}"#).unwrap_err();
        assert_eq!(e.location, "/MockedResponses/V/x");
        let e = MockFile::parse(br#"{"MockedResponses":{"V":{"0":{}}}}"#).unwrap_err();
        assert!(e.message.contains("exactly one of"));
        assert!(MockFile::parse(b"{}").is_err());
    }

    #[test]
    fn step_functions_local_config_counts_invocations() {
        let text = br#"{
          "StateMachines": {"Orders": {"TestCases": {"HappyPath": {"Charge": "ChargeOk"}}}},
          "MockedResponses": {"ChargeOk": {"0": {"Throw": {"Error": "Lambda.TooManyRequestsException", "Cause": "slow down"}}, "1": {"Return": {"charged": 10}}}}
        }"#;
        let m = MockConfig::parse(text, "Orders", "HappyPath").unwrap();
        // Attempt numbers do not matter: invocations are counted.
        assert!(matches!(m.answer(&call("Charge", 0)), Some(Err(_))));
        assert!(matches!(m.answer(&call("Charge", 0)), Some(Ok(_))));
        m.finished("e1");
        assert!(matches!(m.answer(&call("Charge", 0)), Some(Err(_))));
        let e = MockConfig::parse(text, "Orders", "Sad").unwrap_err();
        assert!(e.message.contains("HappyPath"), "{e}");
        let e = MockConfig::parse(text, "Nope", "HappyPath").unwrap_err();
        assert!(e.message.contains("Orders"), "{e}");
    }
}
