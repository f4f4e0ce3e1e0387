//! Executing a `Plan`: a pure, synchronous step function.
//!
//! An `Execution` runs until it ends or needs the outside world, then returns to its driver:
//! Task work leaves as `TaskRequest`s (the driver performs them, asynchronously or not, and
//! hands results back with `complete`), and waiting (Wait states, Retry backoff, task and
//! execution time limits) becomes a wake-up time. Time is an input (`poll`'s `now`), so nothing
//! here sleeps, spawns or locks, and tests control the clock.
//!
//! Inside, an execution is a set of *fibers*: the top-level one, one per running Parallel
//! branch and one per running Map iteration (at most `MaxConcurrency` at once, and never more
//! than AWS runs: 40 for an inline Map, 10,000 for a distributed one). Executions that share a
//! `MapBudget` (a shard's) also share a bound on their Map iterations: beyond the first running
//! iteration of each Map state, which always may run so that nested Maps cannot starve each
//! other, an iteration starts only with a token from the budget; a Map left waiting for
//! tokens is reported to the driver (`newly_starved`), which `feed`s it as soon as any of its
//! executions gives tokens back.
//!
//! One place for each mechanism: `fiber` (fibers, joins and the scheduler with its timers),
//! `states` (what each state type does, from its input to its output), `retry` (Retry, Catch
//! and how an unhandled error travels up), `map` (Map iterations, their shared budget and
//! batches); `data`, `query`, `choice`, `vars` and `context` hold the data flow, JSONata,
//! Choice rules, workflow variables and the context object; `history` records the events of
//! GetExecutionHistory for an execution started with `Start::history`.

mod choice;
mod context;
pub mod counts;
pub mod data;
mod fiber;
mod history;
pub mod logging;
mod map;
mod query;
mod retry;
mod states;
mod vars;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

pub use context::{ExecInfo, Identity};
pub use counts::StateCounts;
pub use data::{Failure, Handling, PAYLOAD_LIMIT};
pub use history::HistoryEvent;
pub use map::{DISTRIBUTED_MAP_CONCURRENCY, INLINE_MAP_CONCURRENCY, MapBudget};

use crate::json::{Str, Value, encoded_len};
use crate::plan::Plan;
use crate::random::Rng;
use data::Sized;
use fiber::{Fiber, Join, NO_JOIN, Phase, STEP_BUDGET};
use history::History;
use vars::{Frames, NO_FRAME};

/// How an execution ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    Failed {
        error: Option<Str>,
        cause: Option<Str>,
    },
    TimedOut {
        error: Str,
        cause: Str,
    },
}

impl Outcome {
    /// `SUCCEEDED`, `FAILED` or `TIMED_OUT`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Succeeded(_) => "SUCCEEDED",
            Outcome::Failed { .. } => "FAILED",
            Outcome::TimedOut { .. } => "TIMED_OUT",
        }
    }

    /// The error and cause of an execution that did not succeed (none for one that did).
    pub fn error_and_cause(&self) -> (Option<Str>, Option<Str>) {
        match self {
            Outcome::Succeeded(_) => (None, None),
            Outcome::Failed { error, cause } => (error.clone(), cause.clone()),
            Outcome::TimedOut { error, cause } => (Some(error.clone()), Some(cause.clone())),
        }
    }
}

/// What the driver should do next.
#[derive(Debug, PartialEq)]
pub enum Poll {
    Done(Outcome),
    /// Waiting for task results, or until `wake_at` (ms since the epoch) if set.
    Pending {
        wake_at: Option<i64>,
    },
}

/// Names one task attempt; results for a stale token are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskToken(u64);

impl TaskToken {
    fn new(fiber: u32, generation: u32) -> TaskToken {
        TaskToken(((fiber as u64) << 32) | generation as u64)
    }
    fn fiber(self) -> u32 {
        (self.0 >> 32) as u32
    }
    fn generation(self) -> u32 {
        self.0 as u32
    }
}

/// Work for the driver: run `resource` with `input` for state `state`.
#[derive(Clone, Debug)]
pub struct TaskRequest {
    pub token: TaskToken,
    pub state: Str,
    pub resource: Str,
    /// The effective input (after `InputPath` and `Parameters`).
    pub input: Value,
    /// `$$.State.RetryCount`: 0 on the first attempt of this entry into the state.
    pub attempt: u32,
    /// The task's own time limit; the executor enforces it too.
    pub timeout_ms: Option<u64>,
    pub heartbeat_ms: Option<u64>,
    pub credentials: Option<Value>,
}

/// A task that failed: an ASL error name and a cause.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskError {
    pub error: Str,
    pub cause: Str,
}

impl TaskError {
    pub fn new(error: &str, cause: impl Into<String>) -> TaskError {
        TaskError {
            error: Str::new(error),
            cause: Str::from(cause.into()),
        }
    }
}

/// How an execution starts.
pub struct Start {
    /// The execution's name (`$$.Execution.Name`); derive it from the event's source.
    pub name: Str,
    pub input: Value,
    /// The input's size in bytes when it came as text (a cheap bound for the payload check);
    /// `None` to measure the value.
    pub input_len: Option<usize>,
    /// The start time, ms since the epoch.
    pub now: i64,
    /// Seed for `States.UUID`, `States.MathRandom` and jitter.
    pub seed: u64,
    pub identity: Identity,
    /// The execution's and its state machine's ARNs when the caller named them (the API:
    /// an Express execution's ARN has its own form, a version's ARN its number); `None`
    /// derives both from the identity and the names.
    pub arns: Option<Arc<(Str, Str)>>,
    /// The Map iterations this execution shares with others (`None`: only each Map state's
    /// own limit).
    pub map_budget: Option<Arc<MapBudget>>,
    /// What to record of the execution's history events (`Execution::take_history`). Off,
    /// it costs one pointer test per event.
    pub history: Recording,
    /// Where to count what each state does (the shard's counts for this plan); `None`
    /// counts nothing.
    pub counts: Option<Arc<StateCounts>>,
    /// A context object to use whole instead of the one the execution knows (TestState's
    /// `context`).
    pub context: Option<Value>,
}

/// What an execution records of its history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recording {
    /// Nothing.
    #[default]
    Off,
    /// Every event with its data (GetExecutionHistory, TestState).
    Full,
    /// Only the events an execution log keeps, with their input and output only when it
    /// includes them: an ERROR log of executions that succeed builds no event at all.
    Log(logging::LogSettings),
}

impl Start {
    pub fn new(name: &str, input: Value, now: i64) -> Start {
        Start {
            name: Str::new(name),
            seed: Rng::seed_from(name.as_bytes()) ^ now as u64,
            input,
            input_len: None,
            now,
            identity: Identity::default(),
            arns: None,
            map_budget: None,
            history: Recording::Off,
            counts: None,
            context: None,
        }
    }
}

/// One execution of a plan. It does not hold its plan: `new`, `poll` and `feed` borrow it, so
/// executions cost no reference counting on a plan that every shard shares. They must all be
/// given the plan the execution was started with (states are addressed by index; another
/// plan's would run the wrong states or panic).
pub struct Execution {
    info: ExecInfo,
    input_bound: u64,
    fibers: Vec<Fiber>,
    free_fibers: Vec<u32>,
    joins: Vec<Option<Join>>,
    free_joins: Vec<u32>,
    ready: VecDeque<u32>,
    timers: BinaryHeap<Reverse<(i64, u32, u32)>>,
    rng: Rng,
    events: u32,
    transitions: u64,
    now: i64,
    deadline: Option<i64>,
    outcome: Option<Outcome>,
    /// States this poll may still enter.
    budget: u32,
    map_budget: Option<Arc<MapBudget>>,
    /// Tokens of `map_budget` this execution holds (given back when it is dropped).
    map_tokens: u32,
    /// Joins whose items wait for tokens, and whether the driver has been told.
    starved: Vec<u32>,
    starved_told: bool,
    /// Workflow variables, one frame per scope.
    frames: Frames,
    /// The history events, when asked for. Event ids are `events`, which counts them either
    /// way (error messages quote the id a state entered at).
    history: Option<Box<History>>,
    counts: Option<Arc<StateCounts>>,
    /// The top-level state whose error ended the execution.
    failed_state: Option<crate::plan::StateId>,
}

impl Drop for Execution {
    fn drop(&mut self) {
        if let Some(b) = &self.map_budget
            && self.map_tokens > 0
        {
            b.give_back(self.map_tokens);
        }
    }
}

impl Execution {
    pub fn new(plan: &Plan, start: Start) -> Execution {
        let input_bound = match start.input_len {
            Some(n) => 2 * n as u64 + 16,
            None => encoded_len(&start.input) as u64,
        };
        let info = ExecInfo {
            name: start.name,
            machine: plan.name.clone(),
            start_ms: start.now,
            input: plan.needs_execution_input.then(|| start.input.clone()),
            identity: start.identity,
            arns: start.arns,
            given: start.context,
        };
        let deadline = plan.timeout_ms.map(|t| start.now.saturating_add(t as i64));
        let mut exec = Execution {
            info,
            input_bound,
            fibers: Vec::with_capacity(1),
            free_fibers: Vec::new(),
            joins: Vec::new(),
            free_joins: Vec::new(),
            ready: VecDeque::with_capacity(1),
            timers: BinaryHeap::new(),
            rng: Rng::new(start.seed),
            events: 1, // ExecutionStarted
            transitions: 0,
            now: start.now,
            deadline,
            outcome: None,
            budget: 0,
            map_budget: start.map_budget,
            map_tokens: 0,
            starved: Vec::new(),
            starved_told: false,
            frames: Frames::default(),
            history: History::for_recording(start.history),
            counts: start.counts,
            failed_state: None,
        };
        if exec.history.is_some() {
            exec.note_execution_started(&start.input);
        }
        let mut input = Sized {
            value: start.input,
            bound: input_bound,
        };
        if input.bound > PAYLOAD_LIMIT && encoded_len(&input.value) as u64 > PAYLOAD_LIMIT {
            let error = Str::new("States.DataLimitExceeded");
            let cause = Str::from(format!(
                "The execution input is larger than the {PAYLOAD_LIMIT} byte payload limit."
            ));
            exec.events += 1; // ExecutionFailed
            if let Some(h) = exec.history.as_deref_mut() {
                h.execution_failed(exec.events, exec.now, 0, Some(&error), Some(&cause));
            }
            exec.outcome = Some(Outcome::Failed {
                error: Some(error),
                cause: Some(cause),
            });
            return exec;
        }
        input.bound = input.bound.min(PAYLOAD_LIMIT * 2 + 16);
        let start_state = plan.machines[0];
        let frame = if plan.variables.is_empty() {
            NO_FRAME
        } else {
            exec.frames.open(NO_FRAME, plan.variables.len())
        };
        let fid = exec.spawn(start_state, input, NO_JOIN, 0, frame);
        if let Some(h) = exec.history.as_deref_mut() {
            // The first state points at 0, not at ExecutionStarted, as AWS records it.
            h.spawned(fid, 0);
        }
        exec
    }

    /// The execution's name.
    pub fn name(&self) -> &Str {
        &self.info.name
    }

    /// The history events recorded so far (none unless started with `Start::history`); they
    /// are handed over, so a second call returns only the events since the first.
    pub fn take_history(&mut self) -> Vec<HistoryEvent> {
        self.history
            .as_deref_mut()
            .map(History::take)
            .unwrap_or_default()
    }

    /// A copy of the history events recorded and not yet handed over (`take_history`), for
    /// a look at an execution still running.
    pub fn history_so_far(&self) -> Vec<HistoryEvent> {
        self.history
            .as_deref()
            .map(History::so_far)
            .unwrap_or_default()
    }

    /// The name of the top-level state whose error failed the execution (a Map or Parallel
    /// state when the error came from inside it), if one did.
    pub fn failed_state<'p>(&self, plan: &'p Plan) -> Option<&'p Str> {
        self.failed_state.map(|id| &plan.state(id).name)
    }

    /// States entered so far (for metrics).
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// The outcome, once the execution has ended.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Whether a Map of this execution has items waiting for tokens of the shared budget that
    /// the driver has not been told of yet (it is told once; `feed` resets that).
    pub fn newly_starved(&mut self) -> bool {
        let news = !self.starved.is_empty() && !self.starved_told;
        self.starved_told |= news;
        news
    }

    /// Starts the Map items that waited for tokens, as far as the budget now allows (others'
    /// iterations gave tokens back); `poll` then runs them.
    pub fn feed(&mut self, plan: &Plan) {
        self.starved_told = false;
        for jid in std::mem::take(&mut self.starved) {
            if let Some(j) = self.joins[jid as usize].as_mut()
                && j.starved
            {
                j.starved = false;
                self.pump_join(plan, jid);
            }
        }
    }

    /// Runs everything that can run at time `now`; new task requests are appended to
    /// `requests`.
    pub fn poll(&mut self, plan: &Plan, now: i64, requests: &mut Vec<TaskRequest>) -> Poll {
        self.now = self.now.max(now);
        if let Some(h) = self.history.as_deref_mut() {
            h.stamp(self.now);
        }
        if self.outcome.is_none()
            && let Some(d) = self.deadline
            && self.now >= d
        {
            self.time_out(plan);
        }
        self.budget = STEP_BUDGET;
        while self.outcome.is_none() && self.budget > 0 {
            self.fire_timers(plan);
            let Some(fid) = self.ready.pop_front() else {
                break;
            };
            self.run(plan, fid, requests);
        }
        if let Some(o) = &self.outcome {
            return Poll::Done(o.clone());
        }
        if self.budget == 0 && !self.ready.is_empty() {
            // A long or endless run of states (a loop of Pass and Choice states) yields here,
            // so its driver can serve other executions and the time limit can fire.
            return Poll::Pending {
                wake_at: Some(self.now),
            };
        }
        Poll::Pending {
            wake_at: self.next_wake(),
        }
    }

    /// Hands a task's result back. Results for attempts that no longer matter (the state
    /// timed out, a sibling branch failed, the execution ended) are ignored.
    pub fn complete(&mut self, token: TaskToken, result: Result<Value, TaskError>) {
        let fid = token.fiber() as usize;
        let Some(f) = self.fibers.get_mut(fid) else {
            return;
        };
        if f.generation != token.generation() || !matches!(f.phase, Phase::Task) {
            return;
        }
        self.events += 1; // TaskSucceeded / TaskFailed
        if let Some(h) = self.history.as_deref_mut() {
            h.task_ended(self.events, self.now, fid as u32, result.as_ref());
        }
        f.generation = f.generation.wrapping_add(1);
        f.resume = Some(match result {
            Ok(v) => Ok(Sized::exact(v)),
            Err(e) => Err(Failure {
                // A task reporting States.Runtime (an unbound resource, a broken mock) ends
                // the execution: AWS never lets Retry or Catch handle States.Runtime.
                handling: if e.error.as_str() == "States.Runtime" {
                    Handling::Terminal
                } else {
                    Handling::Normal
                },
                error: Some(e.error),
                cause: Some(e.cause),
            }),
        });
        f.phase = Phase::Resume;
        self.ready.push_back(fid as u32);
    }
}

#[cfg(test)]
mod tests;
