//! Execution history, recorded only when asked for (`Start::history`): the events
//! GetExecutionHistory returns, in the shapes of AWS's service model (`HistoryEvent` and its
//! `*EventDetails` members), in AWS's order and with AWS's `previousEventId` chaining.
//!
//! The ids are the execution's own event counter, the one that "entered at the event id #N"
//! in error messages quotes, so a history and the errors of its execution agree. The chaining
//! is the one AWS records (read from recorded GetExecutionHistory answers):
//!
//! * every fiber (the top level, a Parallel branch, a Map iteration) chains its own events,
//!   each pointing at the fiber's previous one; the first state of the execution points at 0,
//!   not at ExecutionStarted; a branch starts from ParallelStateStarted, an iteration from
//!   its MapIterationStarted;
//! * MapIterationStarted points at the last event of the iteration that ended before it
//!   (MapStateStarted while none has); MapIterationSucceeded and MapIterationFailed point at
//!   the iteration's last event and are no link of any chain;
//! * MapStateSucceeded (ParallelStateSucceeded) and the state's Exited both point at the last
//!   child event: the last MapIterationSucceeded, or the last event of the last branch;
//! * a run that fails: MapStateFailed (ParallelStateFailed) points at the failing child's
//!   last event and the state's chain goes on from it (the Exited of a Catch, ExecutionFailed);
//!   a retried Map or Parallel state records no *StateFailed, its next *StateStarted follows
//!   the failing child;
//! * a Task records TaskScheduled, TaskStarted and TaskSucceeded / TaskFailed /
//!   TaskTimedOut (LambdaFunction* for a Lambda function ARN as Resource), again after each
//!   retry, and its Exited points at the last of them when it succeeds or a Catch takes it.
//!
//! Nothing here runs unless recording: the executor holds an `Option<Box<History>>` and
//! checks it once per event point, and only these methods build detail objects or serialize
//! values.

use crate::json::{Object, Str, Value, to_string};
use crate::plan::{Plan, StateOp, StatePlan};

use super::data::{Assigned, Failure};
use super::logging::LogLevel;
use super::{Execution, Recording, TaskError};

/// One event of an execution's history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEvent {
    /// Events are numbered from 1 in the order they happened.
    pub id: u64,
    /// The event this one follows (0 for none).
    pub previous_id: u64,
    /// When it happened, ms since the epoch.
    pub timestamp_ms: i64,
    /// The `HistoryEventType`, e.g. `PassStateEntered`.
    pub kind: &'static str,
    /// The `*EventDetails` object (`Null` for the types that have none, like
    /// `ParallelStateStarted`).
    pub details: Value,
}

impl HistoryEvent {
    /// The `HistoryEvent` member that holds this type's details: `stateEnteredEventDetails`
    /// for every `*StateEntered`, `stateExitedEventDetails` for every `*StateExited`, else the
    /// type in lower camel case and `EventDetails` (`taskScheduledEventDetails`).
    pub fn details_member(&self) -> String {
        if self.kind.ends_with("StateEntered") {
            return "stateEnteredEventDetails".to_string();
        }
        if self.kind.ends_with("StateExited") {
            return "stateExitedEventDetails".to_string();
        }
        let mut s = String::with_capacity(self.kind.len() + 12);
        let mut chars = self.kind.chars();
        if let Some(c) = chars.next() {
            s.push(c.to_ascii_lowercase());
        }
        s.extend(chars);
        s.push_str("EventDetails");
        s
    }

    /// The event as the API returns it: `timestamp` (epoch seconds), `type`, `id`,
    /// `previousEventId` and the details member, when the type has one.
    pub fn to_json(&self) -> Value {
        let mut o = Object::with_capacity(5);
        o.push_unique(
            Str::new("timestamp"),
            Value::float(self.timestamp_ms as f64 / 1000.0),
        );
        o.push_unique(Str::new("type"), Value::string(self.kind));
        o.push_unique(Str::new("id"), Value::int(self.id as i64));
        o.push_unique(
            Str::new("previousEventId"),
            Value::int(self.previous_id as i64),
        );
        if !self.details.is_null() {
            o.push_unique(Str::from(self.details_member()), self.details.clone());
        }
        Value::object(o)
    }
}

/// How a Task's resource appears in its events.
#[derive(Clone, Debug)]
struct TaskResource {
    /// A Lambda function ARN as the Resource: the LambdaFunction* events, which name the ARN.
    lambda_function: bool,
    resource_type: Str,
    resource: Str,
}

/// `arn:aws:states:::lambda:invoke` is `lambda` / `invoke`; `arn:aws:states:::aws-sdk:s3:
/// listBuckets` is `aws-sdk:s3` / `listBuckets` (a suffix such as `.sync` stays with the
/// action); `arn:aws:lambda:REGION:ACCOUNT:function:NAME` is a Lambda function. Anything else
/// (an activity, a resource name of stepstream's own) splits at its first colon, or is both.
fn task_resource(arn: &str) -> TaskResource {
    let split = |s: &str| match s.split_once(':') {
        Some((t, r)) => (Str::new(t), Str::new(r)),
        None => (Str::new(s), Str::new(s)),
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let (lambda_function, (resource_type, resource)) = match parts.as_slice() {
        ["arn", _, "lambda", _, _, rest] if rest.starts_with("function:") => {
            (true, (Str::new("lambda"), Str::new(arn)))
        }
        ["arn", _, "states", "", "", rest] => match rest.strip_prefix("aws-sdk:") {
            Some(sdk) => match sdk.split_once(':') {
                Some((service, action)) => (
                    false,
                    (Str::from(format!("aws-sdk:{service}")), Str::new(action)),
                ),
                None => (false, split(rest)),
            },
            None => (false, split(rest)),
        },
        _ => (false, split(arn)),
    };
    TaskResource {
        lambda_function,
        resource_type,
        resource,
    }
}

/// `{"truncated": false}`: the API never truncates.
fn not_truncated() -> Value {
    Value::object_from([("truncated", Value::Bool(false))])
}

fn json_text(v: &Value) -> Value {
    Value::from(to_string(v))
}

fn entered_kind(st: &StatePlan) -> &'static str {
    match st.op {
        StateOp::Pass(_) => "PassStateEntered",
        StateOp::Task(_) => "TaskStateEntered",
        StateOp::Choice(_) => "ChoiceStateEntered",
        StateOp::Wait(_) => "WaitStateEntered",
        StateOp::Succeed => "SucceedStateEntered",
        StateOp::Fail(_) => "FailStateEntered",
        StateOp::Parallel(_) => "ParallelStateEntered",
        StateOp::Map(_) => "MapStateEntered",
    }
}

/// A Fail state has no Exited event (it never calls for one).
fn exited_kind(st: &StatePlan) -> &'static str {
    match st.op {
        StateOp::Pass(_) => "PassStateExited",
        StateOp::Task(_) => "TaskStateExited",
        StateOp::Choice(_) => "ChoiceStateExited",
        StateOp::Wait(_) => "WaitStateExited",
        StateOp::Succeed | StateOp::Fail(_) => "SucceedStateExited",
        StateOp::Parallel(_) => "ParallelStateExited",
        StateOp::Map(_) => "MapStateExited",
    }
}

/// `resourceType` and `resource` (a Task event's first members).
fn resource_members(r: &TaskResource, o: &mut Object) {
    o.push_unique(
        Str::new("resourceType"),
        Value::String(r.resource_type.clone()),
    );
    o.push_unique(Str::new("resource"), Value::String(r.resource.clone()));
}

/// `{"error": ..., "cause": ...}` with the members that are set.
fn error_details(error: Option<&str>, cause: Option<&str>) -> Object {
    let mut o = Object::with_capacity(2);
    if let Some(e) = error {
        o.push_unique(Str::new("error"), Value::string(e));
    }
    if let Some(c) = cause {
        o.push_unique(Str::new("cause"), Value::string(c));
    }
    o
}

/// Where a fiber's chain is, and what its current state has told the recorder.
#[derive(Clone, Default)]
struct FiberChain {
    /// The fiber's last event: the one its next event points at.
    last: u64,
    /// The task being run, for the events after TaskScheduled.
    task: Option<TaskResource>,
    /// `assignedVariables` for the state's Exited event.
    assigned: Option<Value>,
}

/// Where a Map's or Parallel's children chain from.
#[derive(Clone, Copy, Default)]
struct JoinChain {
    /// MapStateStarted / ParallelStateStarted, then the last event of the child that ended
    /// last (what the next MapIterationStarted, or a failed run, follows).
    chain: u64,
    /// The last child event a success follows: the last MapIterationSucceeded, or the last
    /// event of the last branch to end.
    done: u64,
}

/// The recorder: the events so far and where each fiber and join chains from.
pub(super) struct History {
    events: Vec<HistoryEvent>,
    /// The events kept (others only move their fiber's chain on).
    level: LogLevel,
    /// Whether events carry their `input` / `output` (and `*Details`).
    data: bool,
    /// Events left out by `level`, so ids still follow the execution's counter.
    skipped: usize,
    fibers: Vec<FiberChain>,
    joins: Vec<JoinChain>,
    /// Events handed out already (`take`).
    taken: usize,
    /// Events recorded when a task result was handed in (`Execution::complete`, which is
    /// given no time): they take the time of the poll that follows.
    unstamped: Vec<usize>,
}

impl History {
    /// A recorder for `recording`, or none.
    pub(super) fn for_recording(recording: Recording) -> Option<Box<History>> {
        let (level, data) = match recording {
            Recording::Off => return None,
            Recording::Full => (LogLevel::All, true),
            Recording::Log(s) if !s.records() => return None,
            Recording::Log(s) => (s.level, s.include_execution_data),
        };
        Some(Box::new(History {
            events: Vec::new(),
            level,
            data,
            skipped: 0,
            fibers: Vec::new(),
            joins: Vec::new(),
            taken: 0,
            unstamped: Vec::new(),
        }))
    }

    /// Whether the recorder keeps events of type `kind`: the hooks of the events that carry
    /// data ask first, and build nothing for the events left out.
    fn keeps(&self, kind: &str) -> bool {
        self.level == LogLevel::All || self.level.keeps(kind)
    }

    /// For the hooks whose events carry data: when `level` leaves `kind` out, moves fiber
    /// `fid`'s chain past event `id` without building its details, and says so.
    fn left_out(&mut self, fid: u32, id: u32, now: i64, kind: &'static str) -> bool {
        if self.keeps(kind) {
            return false;
        }
        self.link(fid, id, now, kind, Value::Null);
        true
    }

    /// Adds `v` as JSON text under `field`, and `{"truncated": false}` under `details`,
    /// when events carry data.
    fn data(&self, o: &mut Object, field: &'static str, details: &'static str, v: &Value) {
        if self.data {
            o.push_unique(Str::new(field), json_text(v));
            o.push_unique(Str::new(details), not_truncated());
        }
    }

    pub(super) fn so_far(&self) -> Vec<HistoryEvent> {
        self.events.clone()
    }

    pub(super) fn take(&mut self) -> Vec<HistoryEvent> {
        self.unstamped.clear();
        self.taken += self.events.len();
        std::mem::take(&mut self.events)
    }

    /// Dates the events recorded since the last poll without a time of their own.
    pub(super) fn stamp(&mut self, now: i64) {
        for i in self.unstamped.drain(..) {
            if let Some(e) = self.events.get_mut(i) {
                e.timestamp_ms = now;
            }
        }
    }

    /// Records an event, unless `level` leaves its type out; true when recorded.
    fn push(
        &mut self,
        id: u32,
        previous_id: u64,
        now: i64,
        kind: &'static str,
        details: Value,
    ) -> bool {
        debug_assert_eq!(
            id as usize,
            self.taken + self.skipped + self.events.len() + 1,
            "event ids follow the execution's counter ({kind})"
        );
        if !self.keeps(kind) {
            self.skipped += 1;
            return false;
        }
        self.events.push(HistoryEvent {
            id: id as u64,
            previous_id,
            timestamp_ms: now,
            kind,
            details,
        });
        true
    }

    fn fiber(&mut self, fid: u32) -> &mut FiberChain {
        let i = fid as usize;
        if self.fibers.len() <= i {
            self.fibers.resize(i + 1, FiberChain::default());
        }
        &mut self.fibers[i]
    }

    fn join(&mut self, jid: u32) -> &mut JoinChain {
        let i = jid as usize;
        if self.joins.len() <= i {
            self.joins.resize(i + 1, JoinChain::default());
        }
        &mut self.joins[i]
    }

    /// An event of fiber `fid`'s chain; true when recorded.
    fn link(&mut self, fid: u32, id: u32, now: i64, kind: &'static str, details: Value) -> bool {
        let f = self.fiber(fid);
        let prev = std::mem::replace(&mut f.last, id as u64);
        self.push(id, prev, now, kind, details)
    }

    #[cold]
    pub(super) fn execution_started(&mut self, now: i64, input: &Value, role_arn: &str) {
        let kind = "ExecutionStarted";
        if !self.keeps(kind) {
            self.push(1, 0, now, kind, Value::Null);
            return;
        }
        let mut o = Object::with_capacity(3);
        self.data(&mut o, "input", "inputDetails", input);
        o.push_unique(Str::new("roleArn"), Value::string(role_arn));
        self.push(1, 0, now, kind, Value::object(o));
    }

    /// Fiber `fid` starts (or, a Map iteration, will start), its chain at `last`.
    #[cold]
    pub(super) fn spawned(&mut self, fid: u32, last: u64) {
        *self.fiber(fid) = FiberChain {
            last,
            task: None,
            assigned: None,
        };
    }

    #[cold]
    pub(super) fn entered(&mut self, id: u32, now: i64, fid: u32, st: &StatePlan, input: &Value) {
        self.fiber(fid).assigned = None;
        let kind = entered_kind(st);
        if self.left_out(fid, id, now, kind) {
            return;
        }
        let mut o = Object::with_capacity(3);
        o.push_unique(Str::new("name"), Value::String(st.name.clone()));
        self.data(&mut o, "input", "inputDetails", input);
        self.link(fid, id, now, kind, Value::object(o));
    }

    /// What an `Assign` stored, for the Exited event that follows: each variable's value as
    /// JSON text, by name.
    #[cold]
    pub(super) fn assigned(&mut self, fid: u32, plan: &Plan, values: &Assigned) {
        if self.level != LogLevel::All {
            // Only Exited events show them, and no other level keeps those.
            return;
        }
        let mut pairs: Vec<(Str, Value)> = values
            .iter()
            .filter_map(|(slot, v)| {
                let name = plan.variables.get(*slot as usize)?;
                Some((name.clone(), json_text(&v.value)))
            })
            .collect();
        pairs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        pairs.dedup_by(|a, b| a.0.as_str() == b.0.as_str());
        self.fiber(fid).assigned = Some(Value::object(Object::from_entries(pairs)));
    }

    #[cold]
    pub(super) fn exited(&mut self, id: u32, now: i64, fid: u32, st: &StatePlan, output: &Value) {
        let assigned = self.fiber(fid).assigned.take();
        let kind = exited_kind(st);
        if self.left_out(fid, id, now, kind) {
            return;
        }
        let mut o = Object::with_capacity(5);
        o.push_unique(Str::new("name"), Value::String(st.name.clone()));
        self.data(&mut o, "output", "outputDetails", output);
        if let Some(a) = assigned {
            o.push_unique(Str::new("assignedVariables"), a);
            o.push_unique(Str::new("assignedVariablesDetails"), not_truncated());
        }
        self.link(fid, id, now, kind, Value::object(o));
    }

    /// TaskScheduled (`id - 1`) and TaskStarted (`id`), or their LambdaFunction* forms.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn task_scheduled(
        &mut self,
        id: u32,
        now: i64,
        fid: u32,
        arn: &str,
        region: &str,
        input: &Value,
        timeout_ms: Option<u64>,
        heartbeat_ms: Option<u64>,
        credentials: Option<&Value>,
    ) {
        let r = task_resource(arn);
        if !self.keeps("TaskScheduled") {
            // Neither it nor TaskStarted is an error event.
            let (scheduled, started) = if r.lambda_function {
                ("LambdaFunctionScheduled", "LambdaFunctionStarted")
            } else {
                ("TaskScheduled", "TaskStarted")
            };
            self.link(fid, id - 1, now, scheduled, Value::Null);
            self.link(fid, id, now, started, Value::Null);
            self.fiber(fid).task = Some(r);
            return;
        }
        let role = credentials.and_then(|c| c.get("RoleArn")).map(|role| {
            let role = match role {
                Value::String(s) => Value::String(s.clone()),
                other => json_text(other),
            };
            Value::object_from([("roleArn", role)])
        });
        let mut o = Object::with_capacity(7);
        if r.lambda_function {
            o.push_unique(Str::new("resource"), Value::String(r.resource.clone()));
            self.data(&mut o, "input", "inputDetails", input);
            if let Some(ms) = timeout_ms {
                o.push_unique(Str::new("timeoutInSeconds"), Value::int((ms / 1000) as i64));
            }
        } else {
            resource_members(&r, &mut o);
            o.push_unique(Str::new("region"), Value::string(region));
            o.push_unique(Str::new("parameters"), json_text(input));
            if let Some(ms) = timeout_ms {
                o.push_unique(Str::new("timeoutInSeconds"), Value::int((ms / 1000) as i64));
            }
            if let Some(ms) = heartbeat_ms {
                o.push_unique(
                    Str::new("heartbeatInSeconds"),
                    Value::int((ms / 1000) as i64),
                );
            }
        }
        if let Some(role) = role {
            o.push_unique(Str::new("taskCredentials"), role);
        }
        let (scheduled, started, started_details) = if r.lambda_function {
            (
                "LambdaFunctionScheduled",
                "LambdaFunctionStarted",
                Value::Null,
            )
        } else {
            let mut started = Object::with_capacity(2);
            resource_members(&r, &mut started);
            ("TaskScheduled", "TaskStarted", Value::object(started))
        };
        self.link(fid, id - 1, now, scheduled, Value::object(o));
        self.link(fid, id, now, started, started_details);
        self.fiber(fid).task = Some(r);
    }

    /// TaskSucceeded or TaskFailed (LambdaFunctionSucceeded / LambdaFunctionFailed).
    #[cold]
    pub(super) fn task_ended(
        &mut self,
        id: u32,
        now: i64,
        fid: u32,
        result: Result<&Value, &TaskError>,
    ) {
        if result.is_ok() && self.left_out(fid, id, now, "TaskSucceeded") {
            return;
        }
        let r = self
            .fiber(fid)
            .task
            .clone()
            .unwrap_or_else(|| task_resource(""));
        let mut o = Object::with_capacity(4);
        if !r.lambda_function {
            resource_members(&r, &mut o);
        }
        let kind = match (result, r.lambda_function) {
            (Ok(v), lambda) => {
                self.data(&mut o, "output", "outputDetails", v);
                if lambda {
                    "LambdaFunctionSucceeded"
                } else {
                    "TaskSucceeded"
                }
            }
            (Err(e), lambda) => {
                for (k, v) in error_details(Some(&e.error), Some(&e.cause)).into_entries() {
                    o.push_unique(k, v);
                }
                if lambda {
                    "LambdaFunctionFailed"
                } else {
                    "TaskFailed"
                }
            }
        };
        if self.link(fid, id, now, kind, Value::object(o)) {
            self.unstamped.push(self.events.len() - 1);
        }
    }

    /// TaskTimedOut (LambdaFunctionTimedOut): the task's own time limit passed.
    #[cold]
    pub(super) fn task_timed_out(&mut self, id: u32, now: i64, fid: u32, cause: &str) {
        let r = self
            .fiber(fid)
            .task
            .clone()
            .unwrap_or_else(|| task_resource(""));
        let mut o = Object::with_capacity(4);
        if !r.lambda_function {
            resource_members(&r, &mut o);
        }
        for (k, v) in error_details(Some("States.Timeout"), Some(cause)).into_entries() {
            o.push_unique(k, v);
        }
        let kind = if r.lambda_function {
            "LambdaFunctionTimedOut"
        } else {
            "TaskTimedOut"
        };
        let details = Value::object(o);
        self.link(fid, id, now, kind, details);
    }

    /// MapStateStarted of fiber `fid`, whose iterations join at `jid`.
    #[cold]
    pub(super) fn map_started(&mut self, id: u32, now: i64, fid: u32, jid: u32, length: u32) {
        let details = Value::object_from([("length", Value::int(length as i64))]);
        self.link(fid, id, now, "MapStateStarted", details);
        *self.join(jid) = JoinChain {
            chain: id as u64,
            done: id as u64,
        };
    }

    /// ParallelStateStarted of fiber `fid`, whose branches (`branches`) join at `jid`.
    #[cold]
    pub(super) fn parallel_started(
        &mut self,
        id: u32,
        now: i64,
        fid: u32,
        jid: u32,
        branches: &[u32],
    ) {
        self.link(fid, id, now, "ParallelStateStarted", Value::Null);
        *self.join(jid) = JoinChain {
            chain: id as u64,
            done: id as u64,
        };
        for &b in branches {
            self.spawned(b, id as u64);
        }
    }

    /// MapIterationStarted: iteration `index` of Map state `name` (joined at `jid`) runs in
    /// fiber `fid` from now on.
    #[cold]
    pub(super) fn iteration_started(
        &mut self,
        id: u32,
        now: i64,
        fid: u32,
        jid: u32,
        name: &Str,
        index: u32,
    ) {
        let prev = self.join(jid).chain;
        self.push(
            id,
            prev,
            now,
            "MapIterationStarted",
            iteration_details(name, index),
        );
        self.spawned(fid, id as u64);
    }

    /// Child fiber `fid` of join `jid` ended well: `map` names the Map iteration (its
    /// MapIterationSucceeded is event `id`); a branch records no event.
    #[cold]
    pub(super) fn child_succeeded(
        &mut self,
        id: u32,
        now: i64,
        fid: u32,
        jid: u32,
        map: Option<(&Str, u32)>,
    ) {
        let last = self.fiber(fid).last;
        let done = match map {
            Some((name, index)) => {
                let details = iteration_details(name, index);
                self.push(id, last, now, "MapIterationSucceeded", details);
                id as u64
            }
            None => last,
        };
        *self.join(jid) = JoinChain { chain: last, done };
    }

    /// Child fiber `fid` of join `jid` failed (MapIterationFailed, event `id`, for a Map
    /// iteration; no event for a branch).
    #[cold]
    pub(super) fn child_failed(
        &mut self,
        id: u32,
        now: i64,
        fid: u32,
        jid: u32,
        map: Option<(&Str, u32)>,
    ) {
        let last = self.fiber(fid).last;
        if let Some((name, index)) = map {
            self.push(
                id,
                last,
                now,
                "MapIterationFailed",
                iteration_details(name, index),
            );
        }
        self.join(jid).chain = last;
    }

    /// The children of join `jid` all ended well: fiber `fid` (the Map or Parallel state)
    /// goes on from the last of them.
    #[cold]
    pub(super) fn join_done(&mut self, jid: u32, fid: u32) {
        let done = self.join(jid).done;
        self.fiber(fid).last = done;
    }

    /// The run waited on at join `jid` failed: fiber `fid` goes on from the failing child.
    #[cold]
    pub(super) fn join_failed(&mut self, jid: u32, fid: u32) {
        let chain = self.join(jid).chain;
        self.fiber(fid).last = chain;
    }

    /// MapStateFailed / ParallelStateFailed: the run failed and no retrier takes it.
    #[cold]
    pub(super) fn run_failed(&mut self, id: u32, now: i64, fid: u32, st: &StatePlan) {
        let kind = match st.op {
            StateOp::Map(_) => "MapStateFailed",
            _ => "ParallelStateFailed",
        };
        self.link(fid, id, now, kind, Value::Null);
    }

    /// MapStateSucceeded / ParallelStateSucceeded: a side event, the Exited that follows
    /// points where it does.
    #[cold]
    pub(super) fn run_succeeded(&mut self, id: u32, now: i64, fid: u32, st: &StatePlan) {
        let kind = match st.op {
            StateOp::Map(_) => "MapStateSucceeded",
            _ => "ParallelStateSucceeded",
        };
        let last = self.fiber(fid).last;
        self.push(id, last, now, kind, Value::Null);
    }

    #[cold]
    pub(super) fn execution_succeeded(&mut self, id: u32, now: i64, fid: u32, output: &Value) {
        let kind = "ExecutionSucceeded";
        if self.left_out(fid, id, now, kind) {
            return;
        }
        let mut o = Object::with_capacity(2);
        self.data(&mut o, "output", "outputDetails", output);
        self.link(fid, id, now, kind, Value::object(o));
    }

    #[cold]
    pub(super) fn execution_failed(
        &mut self,
        id: u32,
        now: i64,
        fid: u32,
        error: Option<&str>,
        cause: Option<&str>,
    ) {
        let details = Value::object(error_details(error, cause));
        self.link(fid, id, now, "ExecutionFailed", details);
    }

    /// ExecutionTimedOut, after the top-level fiber's last event.
    #[cold]
    pub(super) fn execution_timed_out(&mut self, id: u32, now: i64, error: &str, cause: &str) {
        let details = Value::object(error_details(Some(error), Some(cause)));
        self.link(0, id, now, "ExecutionTimedOut", details);
    }
}

/// The executor's side: each hook is called only when recording (`if self.history.is_some()`
/// at the event point) and is kept out of line, so an execution that records nothing pays one
/// test per event point and nothing else: no argument is gathered, no register kept for it.
/// Measured in instructions per execution (callgrind, `stepstream bench` of W2, a Map of 20
/// items): calling the recorder inline at each point cost +0.84% over no history at all;
/// these out-of-line hooks, with MapIterationStarted tested once per fiber run (not per
/// state), +0.36% (W1, a chain of Pass states: +0.17%).
impl Execution {
    fn recorder(&mut self) -> Option<&mut History> {
        self.history.as_deref_mut()
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_execution_started(&mut self, input: &Value) {
        let (now, role) = (self.now, self.info.identity.role_arn.clone());
        if let Some(h) = self.recorder() {
            h.execution_started(now, input, &role);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_entered(&mut self, plan: &Plan, fid: u32) {
        let (id, now) = (self.events, self.now);
        let f = &self.fibers[fid as usize];
        if let Some(h) = self.history.as_deref_mut() {
            h.entered(id, now, fid, plan.state(f.state), &f.input.value);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_exited(&mut self, plan: &Plan, fid: u32, output: &Value) {
        let (id, now) = (self.events, self.now);
        let st = plan.state(self.fibers[fid as usize].state);
        if let Some(h) = self.recorder() {
            h.exited(id, now, fid, st, output);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_assigned(&mut self, plan: &Plan, fid: u32, values: &Assigned) {
        if let Some(h) = self.recorder() {
            h.assigned(fid, plan, values);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_task_scheduled(
        &mut self,
        fid: u32,
        resource: &str,
        input: &Value,
        (timeout_ms, heartbeat_ms): (Option<u64>, Option<u64>),
        credentials: Option<&Value>,
    ) {
        let (id, now) = (self.events, self.now);
        let region = &self.info.identity.region;
        if let Some(h) = self.history.as_deref_mut() {
            h.task_scheduled(
                id,
                now,
                fid,
                resource,
                region,
                input,
                timeout_ms,
                heartbeat_ms,
                credentials,
            );
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_task_timed_out(&mut self, fid: u32, failure: &Failure) {
        let (id, now) = (self.events, self.now);
        let cause = failure.cause.as_deref().unwrap_or("");
        if let Some(h) = self.history.as_deref_mut() {
            h.task_timed_out(id, now, fid, cause);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_map_started(&mut self, fid: u32, jid: u32, length: u32) {
        let (id, now) = (self.events, self.now);
        if let Some(h) = self.recorder() {
            h.map_started(id, now, fid, jid, length);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_parallel_started(&mut self, fid: u32, jid: u32) {
        let (id, now) = (self.events, self.now);
        let Some(j) = self.joins[jid as usize].as_ref() else {
            return;
        };
        if let Some(h) = self.history.as_deref_mut() {
            h.parallel_started(id, now, fid, jid, &j.children);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_iteration_started(&mut self, plan: &Plan, fid: u32) {
        let (id, now) = (self.events, self.now);
        let f = &self.fibers[fid as usize];
        let (jid, index) = (f.parent, f.slot);
        let Some(j) = self.joins[jid as usize].as_ref() else {
            return;
        };
        let name = &plan.state(j.state).name;
        if let Some(h) = self.history.as_deref_mut() {
            h.iteration_started(id, now, fid, jid, name, index);
        }
    }

    /// Child `fid` (item `slot`) of join `jid` ended well.
    #[cold]
    #[inline(never)]
    pub(super) fn note_child_succeeded(
        &mut self,
        plan: &Plan,
        fid: u32,
        jid: u32,
        slot: u32,
        is_map: bool,
    ) {
        let (id, now) = (self.events, self.now);
        let state = self.joins[jid as usize].as_ref().map(|j| j.state);
        let map = state
            .filter(|_| is_map)
            .map(|s| (&plan.state(s).name, slot));
        if let Some(h) = self.history.as_deref_mut() {
            h.child_succeeded(id, now, fid, jid, map);
        }
    }

    /// Child `fid` (item `slot`) of join `jid` failed; `map_state`: the Map state, for an
    /// iteration.
    #[cold]
    #[inline(never)]
    pub(super) fn note_child_failed(
        &mut self,
        plan: &Plan,
        fid: u32,
        jid: u32,
        slot: u32,
        map_state: Option<crate::plan::StateId>,
    ) {
        let (id, now) = (self.events, self.now);
        let map = map_state.map(|s| (&plan.state(s).name, slot));
        if let Some(h) = self.history.as_deref_mut() {
            h.child_failed(id, now, fid, jid, map);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_join_done(&mut self, jid: u32) {
        let Some(fid) = self.joins[jid as usize].as_ref().map(|j| j.fiber) else {
            return;
        };
        if let Some(h) = self.recorder() {
            h.join_done(jid, fid);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_join_failed(&mut self, jid: u32) {
        let Some(fid) = self.joins[jid as usize].as_ref().map(|j| j.fiber) else {
            return;
        };
        if let Some(h) = self.recorder() {
            h.join_failed(jid, fid);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_run_failed(&mut self, plan: &Plan, fid: u32) {
        let (id, now) = (self.events, self.now);
        let st = plan.state(self.fibers[fid as usize].state);
        if let Some(h) = self.recorder() {
            h.run_failed(id, now, fid, st);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_run_succeeded(&mut self, plan: &Plan, fid: u32) {
        let (id, now) = (self.events, self.now);
        let st = plan.state(self.fibers[fid as usize].state);
        if let Some(h) = self.recorder() {
            h.run_succeeded(id, now, fid, st);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_execution_succeeded(&mut self, fid: u32, output: &Value) {
        let (id, now) = (self.events, self.now);
        if let Some(h) = self.recorder() {
            h.execution_succeeded(id, now, fid, output);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn note_execution_failed(&mut self, fid: u32, failure: &Failure) {
        let (id, now) = (self.events, self.now);
        let (error, cause) = (failure.error.as_deref(), failure.cause.as_deref());
        if let Some(h) = self.history.as_deref_mut() {
            h.execution_failed(id, now, fid, error, cause);
        }
    }
}

fn iteration_details(name: &Str, index: u32) -> Value {
    Value::object_from([
        ("name", Value::String(name.clone())),
        ("index", Value::int(index as i64)),
    ])
}

#[cfg(test)]
mod tests {
    //! Whole histories, checked against the sequences AWS records (type, id, previousEventId
    //! and the details that matter), for one machine of each kind.

    use super::*;
    use crate::asl::{MachineType, load};
    use crate::exec::{Execution, Outcome, Poll, Start, TaskRequest};
    use crate::json::parse;
    use crate::plan::compile;

    /// Start time of every execution here: 1 700 000 000.5 s since the epoch.
    const T0: i64 = 1_700_000_000_500;

    fn v(s: &str) -> Value {
        parse(s.as_bytes()).unwrap()
    }

    fn plan(def: &str) -> Plan {
        let v = load(def.as_bytes(), MachineType::Express)
            .unwrap_or_else(|d| panic!("invalid definition: {d:?}"));
        compile(&v, "machine")
    }

    /// Runs `def` on `input` to its end, recording when `record`: tasks are answered by
    /// `task` at once, the clock jumps to each wake-up. Returns the outcome and the history.
    fn run_with(
        def: &str,
        input: &str,
        record: Recording,
        mut task: impl FnMut(&TaskRequest) -> Result<Value, TaskError>,
    ) -> (Outcome, Vec<HistoryEvent>) {
        let p = plan(def);
        let mut start = Start::new("exec", v(input), T0);
        start.history = record;
        let mut exec = Execution::new(&p, start);
        let mut now = T0;
        let mut reqs = Vec::new();
        for _ in 0..10_000 {
            match exec.poll(&p, now, &mut reqs) {
                Poll::Done(o) => return (o, exec.take_history()),
                Poll::Pending { wake_at } => {
                    if reqs.is_empty() {
                        now = wake_at.expect("something to wait for");
                    }
                    for r in reqs.drain(..) {
                        let res = task(&r);
                        exec.complete(r.token, res);
                    }
                }
            }
        }
        panic!("the execution did not end");
    }

    fn history(def: &str, input: &str) -> Vec<HistoryEvent> {
        run_with(def, input, Recording::Full, |r| {
            panic!("no task expected: {}", r.resource)
        })
        .1
    }

    /// (type, id, previousEventId) of each event.
    fn chain(events: &[HistoryEvent]) -> Vec<(&'static str, u64, u64)> {
        events
            .iter()
            .map(|e| (e.kind, e.id, e.previous_id))
            .collect()
    }

    /// The event with id `id`, its details as JSON text.
    fn details(events: &[HistoryEvent], id: u64) -> String {
        to_string(&events[id as usize - 1].details)
    }

    #[test]
    fn pass_then_succeed() {
        let h = history(
            r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Result":{"a":1},"Next":"S"},"S":{"Type":"Succeed"}}}"#,
            r#"{"x":1}"#,
        );
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                // The first state points at 0, not at ExecutionStarted.
                ("PassStateEntered", 2, 0),
                ("PassStateExited", 3, 2),
                ("SucceedStateEntered", 4, 3),
                ("SucceedStateExited", 5, 4),
                ("ExecutionSucceeded", 6, 5),
            ]
        );
        assert_eq!(
            details(&h, 1),
            r#"{"input":"{\"x\":1}","inputDetails":{"truncated":false},"roleArn":"arn:aws:iam::123456789012:role/stepstream"}"#
        );
        assert_eq!(
            details(&h, 3),
            r#"{"name":"P","output":"{\"a\":1}","outputDetails":{"truncated":false}}"#
        );
        assert_eq!(
            details(&h, 6),
            r#"{"output":"{\"a\":1}","outputDetails":{"truncated":false}}"#
        );
        // The API's shape: epoch seconds (written as AWS's Java services write a double),
        // the type, the ids, the one details member.
        let json = h[1].to_json();
        assert_eq!(
            json.get("timestamp").and_then(Value::as_f64),
            Some(1_700_000_000.5)
        );
        assert_eq!(
            to_string(&json),
            r#"{"timestamp":1.7000000005E9,"type":"PassStateEntered","id":2,"previousEventId":0,"stateEnteredEventDetails":{"name":"P","input":"{\"x\":1}","inputDetails":{"truncated":false}}}"#
        );
        assert_eq!(
            to_string(&h[0].to_json()),
            format!(
                r#"{{"timestamp":1.7000000005E9,"type":"ExecutionStarted","id":1,"previousEventId":0,"executionStartedEventDetails":{}}}"#,
                details(&h, 1)
            )
        );
    }

    #[test]
    fn a_task_that_fails_once_is_retried_and_succeeds() {
        let def = r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
            "Parameters":{"FunctionName":"f","Payload.$":"$"},"TimeoutSeconds":30,
            "Retry":[{"ErrorEquals":["Boom"],"IntervalSeconds":2,"MaxAttempts":2}],"End":true}}}"#;
        let mut calls = 0;
        let (o, h) = run_with(def, r#"{"n":1}"#, Recording::Full, |r| {
            calls += 1;
            match r.attempt {
                0 => Err(TaskError::new("Boom", "once")),
                _ => Ok(v(r#"{"Payload":7}"#)),
            }
        });
        assert_eq!(o, Outcome::Succeeded(v(r#"{"Payload":7}"#)));
        assert_eq!(calls, 2);
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                ("TaskStateEntered", 2, 0),
                ("TaskScheduled", 3, 2),
                ("TaskStarted", 4, 3),
                ("TaskFailed", 5, 4),
                // The retry: scheduled again after the failure, no new Entered.
                ("TaskScheduled", 6, 5),
                ("TaskStarted", 7, 6),
                ("TaskSucceeded", 8, 7),
                ("TaskStateExited", 9, 8),
                ("ExecutionSucceeded", 10, 9),
            ]
        );
        assert_eq!(
            details(&h, 3),
            r#"{"resourceType":"lambda","resource":"invoke","region":"us-east-1","parameters":"{\"FunctionName\":\"f\",\"Payload\":{\"n\":1}}","timeoutInSeconds":30}"#
        );
        assert_eq!(
            details(&h, 4),
            r#"{"resourceType":"lambda","resource":"invoke"}"#
        );
        assert_eq!(
            details(&h, 5),
            r#"{"resourceType":"lambda","resource":"invoke","error":"Boom","cause":"once"}"#
        );
        assert_eq!(
            details(&h, 8),
            r#"{"resourceType":"lambda","resource":"invoke","output":"{\"Payload\":7}","outputDetails":{"truncated":false}}"#
        );
        // The retry waited its 2 s; each result takes the time it was handed back at.
        let times: Vec<i64> = h.iter().map(|e| e.timestamp_ms - T0).collect();
        assert_eq!(times, [0, 0, 0, 0, 0, 2000, 2000, 2000, 2000, 2000]);

        // A Lambda function's ARN as the Resource: the LambdaFunction* events.
        let def = r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:f",
            "Retry":[{"ErrorEquals":["States.ALL"],"IntervalSeconds":1}],"End":true}}}"#;
        let (_, h) = run_with(def, "{}", Recording::Full, |r| match r.attempt {
            0 => Err(TaskError::new("Boom", "once")),
            _ => Ok(v("1")),
        });
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                ("TaskStateEntered", 2, 0),
                ("LambdaFunctionScheduled", 3, 2),
                ("LambdaFunctionStarted", 4, 3),
                ("LambdaFunctionFailed", 5, 4),
                ("LambdaFunctionScheduled", 6, 5),
                ("LambdaFunctionStarted", 7, 6),
                ("LambdaFunctionSucceeded", 8, 7),
                ("TaskStateExited", 9, 8),
                ("ExecutionSucceeded", 10, 9),
            ]
        );
        assert_eq!(
            details(&h, 3),
            r#"{"resource":"arn:aws:lambda:us-east-1:123456789012:function:f","input":"{}","inputDetails":{"truncated":false}}"#
        );
        assert!(
            h[3].details.is_null(),
            "LambdaFunctionStarted has no details"
        );
        assert_eq!(details(&h, 5), r#"{"error":"Boom","cause":"once"}"#);
        assert_eq!(
            details(&h, 8),
            r#"{"output":"1","outputDetails":{"truncated":false}}"#
        );
        assert_eq!(
            h[3].to_json().as_object().map(|o| o.len()),
            Some(4),
            "no details member"
        );
    }

    #[test]
    fn a_catch_to_a_fail_state() {
        let def = r#"{"StartAt":"T","States":{
            "T":{"Type":"Task","Resource":"arn:aws:states:::aws-sdk:s3:listBuckets","Parameters":{},
                 "Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.err","Next":"F"}],"End":true},
            "F":{"Type":"Fail","Error":"Failed.Caught","Cause":"caught it"}}}"#;
        let (o, h) = run_with(def, r#"{"k":1}"#, Recording::Full, |_| {
            Err(TaskError::new("S3.NoSuchBucket", "gone"))
        });
        assert_eq!(
            o,
            Outcome::Failed {
                error: Some(Str::new("Failed.Caught")),
                cause: Some(Str::new("caught it")),
            }
        );
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                ("TaskStateEntered", 2, 0),
                ("TaskScheduled", 3, 2),
                ("TaskStarted", 4, 3),
                ("TaskFailed", 5, 4),
                // The catcher's output leaves the state, then the Fail state is entered.
                ("TaskStateExited", 6, 5),
                ("FailStateEntered", 7, 6),
                ("ExecutionFailed", 8, 7),
            ]
        );
        assert_eq!(
            details(&h, 3),
            r#"{"resourceType":"aws-sdk:s3","resource":"listBuckets","region":"us-east-1","parameters":"{}"}"#
        );
        assert_eq!(
            details(&h, 6),
            r#"{"name":"T","output":"{\"k\":1,\"err\":{\"Error\":\"S3.NoSuchBucket\",\"Cause\":\"gone\"}}","outputDetails":{"truncated":false}}"#
        );
        assert_eq!(
            details(&h, 7),
            r#"{"name":"F","input":"{\"k\":1,\"err\":{\"Error\":\"S3.NoSuchBucket\",\"Cause\":\"gone\"}}","inputDetails":{"truncated":false}}"#
        );
        assert_eq!(
            details(&h, 8),
            r#"{"error":"Failed.Caught","cause":"caught it"}"#
        );
        // A Fail state without Error or Cause: empty details, as AWS records them.
        let h = history(r#"{"StartAt":"F","States":{"F":{"Type":"Fail"}}}"#, "{}");
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                ("FailStateEntered", 2, 0),
                ("ExecutionFailed", 3, 2),
            ]
        );
        assert_eq!(details(&h, 3), "{}");
    }

    #[test]
    fn a_choice_and_a_wait() {
        let def = r#"{"StartAt":"C","States":{
            "C":{"Type":"Choice","Choices":[{"Variable":"$.n","NumericGreaterThan":1,"Next":"W"}],"Default":"D"},
            "W":{"Type":"Wait","Seconds":2,"Next":"D"},
            "D":{"Type":"Pass","End":true}}}"#;
        let h = history(def, r#"{"n":5}"#);
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                ("ChoiceStateEntered", 2, 0),
                ("ChoiceStateExited", 3, 2),
                ("WaitStateEntered", 4, 3),
                ("WaitStateExited", 5, 4),
                ("PassStateEntered", 6, 5),
                ("PassStateExited", 7, 6),
                ("ExecutionSucceeded", 8, 7),
            ]
        );
        assert_eq!(
            details(&h, 3),
            r#"{"name":"C","output":"{\"n\":5}","outputDetails":{"truncated":false}}"#
        );
        let times: Vec<i64> = h.iter().map(|e| e.timestamp_ms - T0).collect();
        assert_eq!(times, [0, 0, 0, 0, 2000, 2000, 2000, 2000]);
        // The other way: straight to the Default.
        let h = history(def, r#"{"n":0}"#);
        assert_eq!(h[3].kind, "PassStateEntered");
        assert_eq!((h[3].id, h[3].previous_id), (4, 3));
    }

    #[test]
    fn a_map_of_two_items() {
        // AWS's recorded shape: each iteration runs in turn; MapIterationStarted follows the
        // last event of the iteration before; MapStateSucceeded and MapStateExited both follow
        // the last MapIterationSucceeded.
        let def = r#"{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items",
            "ItemProcessor":{"StartAt":"H","States":{"H":{"Type":"Pass","End":true}}},"End":true}}}"#;
        let h = history(def, r#"{"items":[1,"a"]}"#);
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                ("MapStateEntered", 2, 0),
                ("MapStateStarted", 3, 2),
                ("MapIterationStarted", 4, 3),
                ("PassStateEntered", 5, 4),
                ("PassStateExited", 6, 5),
                ("MapIterationSucceeded", 7, 6),
                ("MapIterationStarted", 8, 6),
                ("PassStateEntered", 9, 8),
                ("PassStateExited", 10, 9),
                ("MapIterationSucceeded", 11, 10),
                ("MapStateSucceeded", 12, 11),
                ("MapStateExited", 13, 11),
                ("ExecutionSucceeded", 14, 13),
            ]
        );
        assert_eq!(details(&h, 3), r#"{"length":2}"#);
        assert_eq!(details(&h, 4), r#"{"name":"M","index":0}"#);
        assert_eq!(details(&h, 11), r#"{"name":"M","index":1}"#);
        assert_eq!(
            details(&h, 9),
            r#"{"name":"H","input":"\"a\"","inputDetails":{"truncated":false}}"#
        );
        assert!(h[11].details.is_null(), "MapStateSucceeded has no details");
        assert_eq!(
            details(&h, 13),
            r#"{"name":"M","output":"[1,\"a\"]","outputDetails":{"truncated":false}}"#
        );

        // A failing iteration caught by the Map (AWS's test_map_state_catch): MapStateFailed
        // follows the failed state, the Exited of the catch follows MapStateFailed.
        let def = r#"{"StartAt":"M","States":{
            "M":{"Type":"Map","ItemProcessor":{"StartAt":"X","States":{"X":{"Type":"Fail","Error":"E","Cause":"C"}}},
                 "Catch":[{"ErrorEquals":["States.ALL"],"Next":"Caught"}],"End":true},
            "Caught":{"Type":"Pass","End":true}}}"#;
        let h = history(def, "[1]");
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                ("MapStateEntered", 2, 0),
                ("MapStateStarted", 3, 2),
                ("MapIterationStarted", 4, 3),
                ("FailStateEntered", 5, 4),
                ("MapIterationFailed", 6, 5),
                ("MapStateFailed", 7, 5),
                ("MapStateExited", 8, 7),
                ("PassStateEntered", 9, 8),
                ("PassStateExited", 10, 9),
                ("ExecutionSucceeded", 11, 10),
            ]
        );
        assert_eq!(
            details(&h, 8),
            r#"{"name":"M","output":"{\"Error\":\"E\",\"Cause\":\"C\"}","outputDetails":{"truncated":false}}"#
        );

        // Retried (AWS's test_map_state_retry): no MapStateFailed until the last attempt,
        // each new MapStateStarted follows the failed state.
        let def = r#"{"StartAt":"M","States":{
            "M":{"Type":"Map","ItemProcessor":{"StartAt":"X","States":{"X":{"Type":"Fail","Error":"E","Cause":"C"}}},
                 "Retry":[{"ErrorEquals":["E"],"IntervalSeconds":1,"MaxAttempts":1}],"End":true}}}"#;
        let h = history(def, "[1]");
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                ("MapStateEntered", 2, 0),
                ("MapStateStarted", 3, 2),
                ("MapIterationStarted", 4, 3),
                ("FailStateEntered", 5, 4),
                ("MapIterationFailed", 6, 5),
                ("MapStateStarted", 7, 5),
                ("MapIterationStarted", 8, 7),
                ("FailStateEntered", 9, 8),
                ("MapIterationFailed", 10, 9),
                ("MapStateFailed", 11, 9),
                ("ExecutionFailed", 12, 11),
            ]
        );
        assert_eq!(details(&h, 12), r#"{"error":"E","cause":"C"}"#);
    }

    #[test]
    fn a_parallel_of_two_branches() {
        let def = r#"{"StartAt":"P","States":{"P":{"Type":"Parallel","Branches":[
            {"StartAt":"A","States":{"A":{"Type":"Pass","Result":"a","End":true}}},
            {"StartAt":"B","States":{"B":{"Type":"Pass","Result":"b","End":true}}}],"Next":"Z"},
            "Z":{"Type":"Pass","End":true}}}"#;
        let h = history(def, "{}");
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                ("ParallelStateEntered", 2, 0),
                ("ParallelStateStarted", 3, 2),
                // Each branch chains from ParallelStateStarted.
                ("PassStateEntered", 4, 3),
                ("PassStateExited", 5, 4),
                ("PassStateEntered", 6, 3),
                ("PassStateExited", 7, 6),
                // Both follow the last branch event.
                ("ParallelStateSucceeded", 8, 7),
                ("ParallelStateExited", 9, 7),
                ("PassStateEntered", 10, 9),
                ("PassStateExited", 11, 10),
                ("ExecutionSucceeded", 12, 11),
            ]
        );
        assert!(h[2].details.is_null() && h[7].details.is_null());
        assert_eq!(
            details(&h, 9),
            r#"{"name":"P","output":"[\"a\",\"b\"]","outputDetails":{"truncated":false}}"#
        );

        // A failing branch: ParallelStateFailed follows its last event (not the other
        // branch's, waiting meanwhile); ExecutionFailed follows ParallelStateFailed.
        let def = r#"{"StartAt":"P","States":{"P":{"Type":"Parallel","Branches":[
            {"StartAt":"B","States":{"B":{"Type":"Wait","Seconds":5,"End":true}}},
            {"StartAt":"A","States":{"A":{"Type":"Fail","Error":"E"}}}],"End":true}}}"#;
        let h = history(def, "{}");
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                ("ParallelStateEntered", 2, 0),
                ("ParallelStateStarted", 3, 2),
                ("WaitStateEntered", 4, 3),
                ("FailStateEntered", 5, 3),
                ("ParallelStateFailed", 6, 5),
                ("ExecutionFailed", 7, 6),
            ]
        );
        assert_eq!(details(&h, 7), r#"{"error":"E"}"#);
    }

    #[test]
    fn assigned_variables_show_on_the_exited_event() {
        let def = r#"{"StartAt":"S","States":{
            "S":{"Type":"Pass","Assign":{"s":"hi","a.$":"$.x","o":{"k":[1,2]}},"Next":"U"},
            "U":{"Type":"Pass","End":true}}}"#;
        let h = history(def, r#"{"x":1}"#);
        assert_eq!(h[2].kind, "PassStateExited");
        // Each value as JSON text, by name.
        assert_eq!(
            details(&h, 3),
            r#"{"name":"S","output":"{\"x\":1}","outputDetails":{"truncated":false},"assignedVariables":{"a":"1","o":"{\"k\":[1,2]}","s":"\"hi\""},"assignedVariablesDetails":{"truncated":false}}"#
        );
        assert_eq!(h[4].kind, "PassStateExited");
        assert!(
            !details(&h, 5).contains("assignedVariables"),
            "a state that assigns nothing shows none"
        );
        // A Choice assigns whichever way it goes (JSONata).
        let def = r#"{"QueryLanguage":"JSONata","StartAt":"C","States":{
            "C":{"Type":"Choice","Choices":[{"Condition":"{% $states.input.go %}","Assign":{"way":"rule"},"Next":"E"}],
                 "Default":"E","Assign":{"way":"default"}},
            "E":{"Type":"Succeed"}}}"#;
        let h = history(def, r#"{"go":false}"#);
        assert_eq!(
            details(&h, 3),
            r#"{"name":"C","output":"{\"go\":false}","outputDetails":{"truncated":false},"assignedVariables":{"way":"\"default\""},"assignedVariablesDetails":{"truncated":false}}"#
        );
    }

    #[test]
    fn nothing_is_recorded_unless_asked_and_the_ids_are_those_errors_quote() {
        // Past a Map, a state fails at run time: its message quotes the id it entered at,
        // the same with or without a history, and the history's Entered event has that id.
        let def = r#"{"StartAt":"M","States":{
            "M":{"Type":"Map","ItemProcessor":{"StartAt":"H","States":{"H":{"Type":"Pass","End":true}}},"Next":"Bad"},
            "Bad":{"Type":"Pass","InputPath":"$.nope","End":true}}}"#;
        let (quiet, none) = run_with(def, "[1,2,3]", Recording::Off, |_| unreachable!());
        assert!(none.is_empty(), "no history unless asked");
        let (loud, h) = run_with(def, "[1,2,3]", Recording::Full, |_| unreachable!());
        assert_eq!(quiet, loud);
        let Outcome::Failed { cause: Some(c), .. } = loud else {
            panic!("{loud:?}")
        };
        let bad = h
            .iter()
            .find(|e| e.kind == "PassStateEntered" && details(&h, e.id).contains("\"Bad\""))
            .expect("Bad was entered");
        assert!(
            c.contains(&format!("(entered at the event id #{})", bad.id)),
            "{c} / {}",
            bad.id
        );
        // 1 + Entered, MapStateStarted + 4 per item + MapStateSucceeded, Exited.
        assert_eq!(bad.id, 18);
        assert_eq!(
            h.last().map(|e| (e.kind, e.previous_id)),
            Some(("ExecutionFailed", 18))
        );
        // Handed over once: a second take is empty.
        let p = plan(def);
        let mut start = Start::new("exec", v("[1]"), T0);
        start.history = Recording::Full;
        let mut exec = Execution::new(&p, start);
        exec.poll(&p, T0, &mut Vec::new());
        assert_eq!(exec.take_history().len(), 11);
        assert!(exec.take_history().is_empty());
        // Off, an execution keeps no recorder at all.
        let mut exec = Execution::new(&p, Start::new("exec", v("[1]"), T0));
        assert!(exec.history.is_none());
        exec.poll(&p, T0, &mut Vec::new());
        assert!(exec.take_history().is_empty());
    }

    /// A log's recording builds exactly the events the log keeps of a full history, with
    /// their data only when it includes it: the same ids, chains, times and details.
    #[test]
    fn a_log_s_recording_is_the_full_history_filtered() {
        use crate::exec::logging::{LogSettings, strip_execution_data};
        let defs = [
            // Retried and caught tasks (a Lambda function, an optimized integration).
            r#"{"StartAt":"L","States":{"L":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:f",
                "Retry":[{"ErrorEquals":["Boom"],"IntervalSeconds":1}],"Assign":{"x.$":"$"},"Next":"T"},
              "T":{"Type":"Task","Resource":"arn:aws:states:::http:invoke","Parameters":{"a":1},
                "Catch":[{"ErrorEquals":["States.ALL"],"Next":"F"}],"End":true},
              "F":{"Type":"Fail","Error":"E","Cause":"c"}}}"#,
            // Map and Parallel, one iteration failing past a tolerance.
            r#"{"StartAt":"M","States":{"M":{"Type":"Map","ToleratedFailureCount":1,"ItemProcessor":{"StartAt":"C","States":{
                "C":{"Type":"Choice","Choices":[{"Variable":"$","NumericEquals":2,"Next":"Bad"}],"Default":"Ok"},
                "Bad":{"Type":"Fail","Error":"Two"},"Ok":{"Type":"Pass","End":true}}},"Next":"P"},
              "P":{"Type":"Parallel","Branches":[{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}},
                {"StartAt":"B","States":{"B":{"Type":"Wait","Seconds":1,"End":true}}}],"End":true}}}"#,
        ];
        let inputs = [r#"{"k":1}"#, "[1,2,3]"];
        let answer = |r: &TaskRequest| match r.attempt {
            0 => Err(TaskError::new("Boom", "once")),
            _ => Ok(v(r#"{"ok":true}"#)),
        };
        for (def, input) in defs.iter().zip(inputs) {
            let (full_outcome, full) = run_with(def, input, Recording::Full, answer);
            for level in [LogLevel::All, LogLevel::Error, LogLevel::Fatal] {
                for include_execution_data in [true, false] {
                    let s = LogSettings {
                        level,
                        include_execution_data,
                    };
                    let (o, got) = run_with(def, input, Recording::Log(s), answer);
                    assert_eq!(o, full_outcome);
                    let want: Vec<HistoryEvent> = full
                        .iter()
                        .filter(|e| level.keeps(e.kind))
                        .cloned()
                        .map(|mut e| {
                            if !include_execution_data {
                                strip_execution_data(&mut e.details);
                            }
                            e
                        })
                        .collect();
                    let show = |h: &[HistoryEvent]| {
                        h.iter()
                            .map(|e| {
                                format!(
                                    "{} {} {} {} {}",
                                    e.id,
                                    e.previous_id,
                                    e.timestamp_ms,
                                    e.kind,
                                    to_string(&e.details)
                                )
                            })
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(
                        show(&got),
                        show(&want),
                        "{level:?} data {include_execution_data}"
                    );
                }
            }
        }
    }

    #[test]
    fn time_limits_of_a_task_and_of_the_execution() {
        // The task never answers: TaskTimedOut at its limit, then the execution fails.
        let p = plan(
            r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::http:invoke","TimeoutSeconds":3,"End":true}}}"#,
        );
        let mut start = Start::new("exec", v("{}"), T0);
        start.history = Recording::Full;
        let mut exec = Execution::new(&p, start);
        let mut reqs = Vec::new();
        assert!(matches!(exec.poll(&p, T0, &mut reqs), Poll::Pending { .. }));
        assert!(matches!(exec.poll(&p, T0 + 3000, &mut reqs), Poll::Done(_)));
        let h = exec.take_history();
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                ("TaskStateEntered", 2, 0),
                ("TaskScheduled", 3, 2),
                ("TaskStarted", 4, 3),
                ("TaskTimedOut", 5, 4),
                ("ExecutionFailed", 6, 5),
            ]
        );
        assert_eq!(h[4].timestamp_ms, T0 + 3000);
        assert!(details(&h, 5).starts_with(
            r#"{"resourceType":"http","resource":"invoke","error":"States.Timeout","cause":"#
        ));
        // The execution's own limit: ExecutionTimedOut after the last event.
        let p = plan(
            r#"{"StartAt":"W","TimeoutSeconds":5,"States":{"W":{"Type":"Wait","Seconds":60,"End":true}}}"#,
        );
        let mut start = Start::new("exec", v("{}"), T0);
        start.history = Recording::Full;
        let mut exec = Execution::new(&p, start);
        assert!(matches!(exec.poll(&p, T0, &mut reqs), Poll::Pending { .. }));
        assert!(matches!(exec.poll(&p, T0 + 5000, &mut reqs), Poll::Done(_)));
        let h = exec.take_history();
        assert_eq!(
            chain(&h),
            [
                ("ExecutionStarted", 1, 0),
                ("WaitStateEntered", 2, 0),
                ("ExecutionTimedOut", 3, 2),
            ]
        );
        assert_eq!(
            details(&h, 3),
            r#"{"error":"States.Timeout","cause":"The execution did not finish within its time limit of 5 seconds"}"#
        );
    }

    #[test]
    fn resources_split_as_aws_names_them() {
        let split = |arn: &str| {
            let r = task_resource(arn);
            (
                r.lambda_function,
                r.resource_type.to_string(),
                r.resource.to_string(),
            )
        };
        let s = |a: &str, b: &str| (false, a.to_string(), b.to_string());
        assert_eq!(
            split("arn:aws:states:::lambda:invoke"),
            s("lambda", "invoke")
        );
        assert_eq!(
            split("arn:aws:states:::lambda:invoke.waitForTaskToken"),
            s("lambda", "invoke.waitForTaskToken")
        );
        assert_eq!(
            split("arn:aws:states:::states:startExecution.sync:2"),
            s("states", "startExecution.sync:2")
        );
        assert_eq!(
            split("arn:aws:states:::aws-sdk:dynamodb:getItem"),
            s("aws-sdk:dynamodb", "getItem")
        );
        assert_eq!(split("arn:aws:states:::http:invoke"), s("http", "invoke"));
        assert_eq!(
            split("arn:aws-cn:lambda:cn-north-1:1:function:f:prod"),
            (
                true,
                "lambda".to_string(),
                "arn:aws-cn:lambda:cn-north-1:1:function:f:prod".to_string()
            )
        );
        assert_eq!(split("echo"), s("echo", "echo"));
    }
}
