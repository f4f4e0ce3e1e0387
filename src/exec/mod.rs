//! Executing a `Plan`: a pure, synchronous step function.
//!
//! An `Execution` runs until it ends or needs the outside world, then returns to its driver:
//! Task work leaves as `TaskRequest`s (the driver performs them, asynchronously or not, and
//! hands results back with `complete`), and waiting (Wait states, Retry backoff, task and
//! execution time limits) becomes a wake-up time. Time is an input (`poll(now)`), so nothing
//! here sleeps, spawns or locks, and tests control the clock.
//!
//! Inside, an execution is a set of *fibers*: the top-level one, one per running Parallel
//! branch and one per running Map iteration (at most `MaxConcurrency` at once, and never more
//! than AWS runs: 40 for an inline Map, 10,000 for a distributed one). Executions that share a
//! `MapBudget` (a shard's) also share a bound on their Map iterations: beyond the first running
//! iteration of each Map state, which always may run so that nested Maps cannot starve each
//! other, an iteration starts only with a token from the budget; a Map left waiting for
//! tokens is reported to the driver (`newly_starved`), which `feed`s it as soon as any of its
//! executions gives tokens back. A fiber
//! walks states until it blocks; a Map or Parallel state parks its fiber on a *join* until
//! its children are done. Fibers and joins live in vectors reused through free lists, and a
//! fiber that moves on bumps its generation so late task results and stale timers are
//! recognised and dropped.

mod choice;
mod context;
pub mod data;
mod query;
mod vars;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use context::{ExecInfo, Identity};
pub use data::{Failure, Handling, PAYLOAD_LIMIT};

use crate::json::{Str, Value, encoded_len};
use crate::jsonpath::Selected;
use crate::plan::{
    CatcherOp, ConditionOp, DynamicOp, END, ErrorMatch, MapOp, ParallelOp, Plan, RetrierOp,
    StateId, StateOp, StatePlan, TaskOp, TemplateOp, TextOp, WaitOp,
};
use crate::random::Rng;
use crate::time::Timestamp;
use context::Ctx;
use data::{Env, Here, Sized};
use query::States;
use vars::{Frames, NO_FRAME};

/// The values an `Assign` computed, by variable slot, before they are stored.
type Assigned = Vec<(u16, Sized)>;

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

/// Concurrent Map iterations AWS runs for an inline Map, whatever `MaxConcurrency` says.
pub const INLINE_MAP_CONCURRENCY: u32 = 40;
/// Concurrent child executions of a distributed Map on AWS.
pub const DISTRIBUTED_MAP_CONCURRENCY: u32 = 10_000;

/// Map iterations that executions sharing it may run at once, beyond the first of each Map
/// state (tokens, taken when an iteration starts and given back when it ends).
#[derive(Debug)]
pub struct MapBudget {
    free: AtomicUsize,
    size: usize,
}

impl MapBudget {
    pub fn new(size: usize) -> MapBudget {
        MapBudget {
            free: AtomicUsize::new(size),
            size,
        }
    }

    /// Tokens not taken.
    pub fn available(&self) -> usize {
        self.free.load(Ordering::Relaxed)
    }

    /// Tokens in all.
    pub fn size(&self) -> usize {
        self.size
    }

    fn try_take(&self) -> bool {
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    fn give_back(&self, n: u32) {
        self.free.fetch_add(n as usize, Ordering::AcqRel);
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
    /// The Map iterations this execution shares with others (`None`: only each Map state's
    /// own limit).
    pub map_budget: Option<Arc<MapBudget>>,
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
            map_budget: None,
        }
    }
}

const NO_JOIN: u32 = u32::MAX;

/// States entered per `poll` before the execution yields to its driver.
const STEP_BUDGET: u32 = 10_000;

#[derive(Debug)]
enum Phase {
    /// About to enter `state` with `input`.
    Enter,
    /// Entered; running (or re-running, after a retry) the state's work.
    Attempt,
    /// Waiting for a task result.
    Task,
    Sleep(Wake),
    /// Waiting for the children of a Map or Parallel state.
    Join(u32),
    /// A task result or the children's results arrived (`Fiber::resume`).
    Resume,
    Free,
}

#[derive(Debug, Clone, Copy)]
enum Wake {
    WaitState,
    Retry,
}

struct Fiber {
    generation: u32,
    state: StateId,
    phase: Phase,
    /// The state's raw input (for a Wait state while sleeping: its effective input).
    input: Sized,
    /// The join this fiber reports to, or `NO_JOIN` for the top-level fiber.
    parent: u32,
    slot: u32,
    entered_event: u32,
    entered_ms: i64,
    retry_count: u32,
    attempts: Vec<u32>,
    resume: Option<Result<Sized, Failure>>,
    /// For a task: its deadline, reported in the timeout cause.
    task_timeout_ms: u64,
    /// The fiber's frame of workflow variables (`NO_FRAME` when the plan has none).
    frame: u32,
}

enum JoinKind {
    Parallel,
    Map {
        items: Value,
        /// The Map state's effective input, for `ItemSelector`.
        doc: Sized,
        tolerated_count: u64,
        tolerated_pct: f64,
        failures: u64,
    },
}

struct Join {
    fiber: u32,
    state: StateId,
    kind: JoinKind,
    results: Vec<Value>,
    bound: u64,
    total: u32,
    remaining: u32,
    running: u32,
    next: u32,
    limit: u32,
    /// Map iterations running on a token of the shared budget (`running - 1` at most: the
    /// first needs none).
    tokens: u32,
    /// Items wait for a token of the shared budget (the join is in `Execution::starved`).
    starved: bool,
    children: Vec<u32>,
}

/// One execution of a plan.
pub struct Execution {
    plan: Arc<Plan>,
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

enum Flow {
    /// The fiber moved on; keep running it.
    Continue,
    /// The fiber waits (task, timer, children) or is gone.
    Stop,
}

impl Execution {
    pub fn new(plan: Arc<Plan>, start: Start) -> Execution {
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
            plan,
        };
        let mut input = Sized {
            value: start.input,
            bound: input_bound,
        };
        if input.bound > PAYLOAD_LIMIT && encoded_len(&input.value) as u64 > PAYLOAD_LIMIT {
            exec.outcome = Some(Outcome::Failed {
                error: Some(Str::new("States.DataLimitExceeded")),
                cause: Some(Str::from(format!(
                    "The execution input is larger than the {PAYLOAD_LIMIT} byte payload limit."
                ))),
            });
            return exec;
        }
        input.bound = input.bound.min(PAYLOAD_LIMIT * 2 + 16);
        let start_state = exec.plan.machines[0];
        let frame = if exec.plan.variables.is_empty() {
            NO_FRAME
        } else {
            exec.frames.open(NO_FRAME, exec.plan.variables.len())
        };
        exec.spawn(start_state, input, NO_JOIN, 0, frame);
        exec
    }

    /// The execution's name.
    pub fn name(&self) -> &Str {
        &self.info.name
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
    pub fn feed(&mut self) {
        self.starved_told = false;
        let plan = Arc::clone(&self.plan);
        for jid in std::mem::take(&mut self.starved) {
            if let Some(j) = self.joins[jid as usize].as_mut()
                && j.starved
            {
                j.starved = false;
                self.pump_join(&plan, jid);
            }
        }
    }

    /// Runs everything that can run at time `now`; new task requests are appended to
    /// `requests`.
    pub fn poll(&mut self, now: i64, requests: &mut Vec<TaskRequest>) -> Poll {
        self.now = self.now.max(now);
        if self.outcome.is_none()
            && let Some(d) = self.deadline
            && self.now >= d
        {
            self.time_out();
        }
        let plan = Arc::clone(&self.plan);
        self.budget = STEP_BUDGET;
        while self.outcome.is_none() && self.budget > 0 {
            self.fire_timers(&plan);
            let Some(fid) = self.ready.pop_front() else {
                break;
            };
            self.run(&plan, fid, requests);
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

    fn next_wake(&mut self) -> Option<i64> {
        while let Some(Reverse((t, fid, generation))) = self.timers.peek().copied() {
            if self.timer_live(fid, generation) {
                return Some(self.deadline.map_or(t, |d| d.min(t)));
            }
            self.timers.pop();
        }
        self.deadline
    }

    fn timer_live(&self, fid: u32, generation: u32) -> bool {
        self.fibers.get(fid as usize).is_some_and(|f| {
            f.generation == generation && matches!(f.phase, Phase::Sleep(_) | Phase::Task)
        })
    }

    fn fire_timers(&mut self, plan: &Plan) {
        while let Some(Reverse((t, fid, generation))) = self.timers.peek().copied() {
            if t > self.now {
                break;
            }
            self.timers.pop();
            if !self.timer_live(fid, generation) {
                continue;
            }
            let f = &mut self.fibers[fid as usize];
            f.generation = f.generation.wrapping_add(1);
            match f.phase {
                Phase::Sleep(Wake::Retry) => {
                    f.phase = Phase::Attempt;
                    self.ready.push_back(fid);
                }
                Phase::Sleep(Wake::WaitState) => {
                    f.phase = Phase::Resume;
                    f.resume = None;
                    self.ready.push_back(fid);
                }
                Phase::Task => {
                    self.events += 1; // TaskTimedOut
                    let st = plan.state(f.state);
                    let failure = Failure::new(
                        "States.Timeout",
                        format!(
                            "The task of state '{}' did not finish within its TimeoutSeconds ({} s)",
                            st.name,
                            f.task_timeout_ms / 1000
                        ),
                        Handling::Normal,
                    );
                    f.resume = Some(Err(failure));
                    f.phase = Phase::Resume;
                    self.ready.push_back(fid);
                }
                _ => {}
            }
        }
    }

    fn time_out(&mut self) {
        let secs = self.plan.timeout_ms.unwrap_or(0) / 1000;
        self.outcome = Some(Outcome::TimedOut {
            error: Str::new("States.Timeout"),
            cause: Str::from(format!(
                "The execution did not finish within its time limit of {secs} seconds"
            )),
        });
    }

    /// A frame for a child (a branch or an iteration) of fiber `fid`: reading through to the
    /// parent's, or a scope of its own (`isolated`: a distributed Map's iteration).
    fn child_frame(&mut self, fid: u32, isolated: bool) -> u32 {
        if self.plan.variables.is_empty() {
            return NO_FRAME;
        }
        let parent = if isolated {
            NO_FRAME
        } else {
            self.fibers[fid as usize].frame
        };
        self.frames.open(parent, self.plan.variables.len())
    }

    fn spawn(&mut self, state: StateId, input: Sized, parent: u32, slot: u32, frame: u32) -> u32 {
        let fiber = Fiber {
            frame,
            generation: 0,
            state,
            phase: Phase::Enter,
            input,
            parent,
            slot,
            entered_event: 0,
            entered_ms: self.now,
            retry_count: 0,
            attempts: Vec::new(),
            resume: None,
            task_timeout_ms: 0,
        };
        let fid = match self.free_fibers.pop() {
            Some(fid) => {
                let generation = self.fibers[fid as usize].generation.wrapping_add(1);
                self.fibers[fid as usize] = Fiber {
                    generation,
                    ..fiber
                };
                fid
            }
            None => {
                self.fibers.push(fiber);
                (self.fibers.len() - 1) as u32
            }
        };
        self.ready.push_back(fid);
        fid
    }

    fn free_fiber(&mut self, fid: u32) {
        let f = &mut self.fibers[fid as usize];
        if f.frame != NO_FRAME {
            self.frames.close(f.frame);
            f.frame = NO_FRAME;
        }
        f.phase = Phase::Free;
        f.generation = f.generation.wrapping_add(1);
        f.input = Sized {
            value: Value::Null,
            bound: 4,
        };
        f.resume = None;
        self.free_fibers.push(fid);
    }

    fn run(&mut self, plan: &Plan, fid: u32, requests: &mut Vec<TaskRequest>) {
        loop {
            if self.outcome.is_some() {
                return;
            }
            let flow = match self.fibers[fid as usize].phase {
                Phase::Enter if self.budget == 0 => {
                    self.ready.push_front(fid);
                    Flow::Stop
                }
                Phase::Enter => {
                    self.budget -= 1;
                    self.events += 1; // ...StateEntered
                    self.transitions += 1;
                    let f = &mut self.fibers[fid as usize];
                    f.entered_event = self.events;
                    f.entered_ms = self.now;
                    f.retry_count = 0;
                    f.attempts.clear();
                    f.phase = Phase::Attempt;
                    Flow::Continue
                }
                Phase::Attempt => self.attempt(plan, fid, requests),
                Phase::Resume => self.resume(plan, fid),
                _ => Flow::Stop,
            };
            if let Flow::Stop = flow {
                return;
            }
        }
    }

    /// Runs `f` with the context of fiber `fid` in state `st`.
    fn with_env<R>(
        &mut self,
        fid: u32,
        st_name: &str,
        item: Option<(u32, &Value)>,
        f: impl FnOnce(&mut Env<'_>, Here<'_>) -> R,
    ) -> R {
        self.with_query(fid, st_name, item, None, f)
    }

    /// `with_env` for a JSONata state, whose expressions read `states` as `$states`.
    fn with_query<R>(
        &mut self,
        fid: u32,
        st_name: &str,
        item: Option<(u32, &Value)>,
        states: Option<&States>,
        f: impl FnOnce(&mut Env<'_>, Here<'_>) -> R,
    ) -> R {
        let fiber = &self.fibers[fid as usize];
        let ctx = Ctx {
            info: &self.info,
            state: st_name,
            entered_ms: fiber.entered_ms,
            retry_count: fiber.retry_count,
            item,
            vars: &self.frames,
            frame: fiber.frame,
        };
        let here = Here {
            state: st_name,
            event: fiber.entered_event,
        };
        let mut env = Env {
            ctx: &ctx,
            ctx_bound: self.input_bound + 4096,
            rng: &mut self.rng,
            states,
            now_ms: self.now,
        };
        f(&mut env, here)
    }

    /// Stores the values of an `Assign` in fiber `fid`'s frame, after checking AWS's limits.
    fn assign_vars(&mut self, fid: u32, values: Assigned) -> Result<(), Failure> {
        if values.is_empty() {
            return Ok(());
        }
        let f = &self.fibers[fid as usize];
        let name = self.plan.state(f.state).name.clone();
        let frame = f.frame;
        let mut total = 0u64;
        let mut values = values;
        for (_, v) in values.iter_mut() {
            if v.bound > vars::ASSIGN_LIMIT {
                v.bound = encoded_len(&v.value) as u64;
            }
            total += v.bound;
        }
        if total > vars::ASSIGN_LIMIT {
            return Err(Failure::new(
                "States.DataLimitExceeded",
                format!(
                    "The variables assigned by state '{name}' are {total} bytes, over the {} byte limit of one Assign.",
                    vars::ASSIGN_LIMIT
                ),
                Handling::ByNameOnly,
            ));
        }
        for (slot, v) in values {
            if let Err(all) = self.frames.set(frame, slot, v.value, v.bound) {
                return Err(Failure::new(
                    "States.DataLimitExceeded",
                    format!(
                        "The workflow variables of the execution would be {all} bytes after state '{name}', over the {} byte limit.",
                        vars::TOTAL_LIMIT
                    ),
                    Handling::ByNameOnly,
                ));
            }
        }
        Ok(())
    }

    fn attempt(&mut self, plan: &Plan, fid: u32, requests: &mut Vec<TaskRequest>) -> Flow {
        let st = plan.state(self.fibers[fid as usize].state);
        // States that cannot retry or catch consume their input: a ResultPath write then
        // mutates it in place instead of copying a document shared with the fiber.
        let raw = match &st.op {
            StateOp::Task(_) | StateOp::Parallel(_) | StateOp::Map(_) => {
                self.fibers[fid as usize].input.clone()
            }
            _ => std::mem::take(&mut self.fibers[fid as usize].input),
        };
        if st.jsonata {
            return self.attempt_jsonata(plan, fid, st, raw, requests);
        }
        match &st.op {
            StateOp::Pass(p) => {
                let r = self.with_env(fid, &st.name, None, |env, here| {
                    let mut result = match (&p.parameters, &p.result) {
                        (Some(t), _) => {
                            let eff = data::apply_path(&st.input_path, raw.clone(), env, here)?;
                            data::eval_template(t, &eff, env, here)?
                        }
                        (None, Some((v, len))) => Sized {
                            value: v.clone(),
                            bound: *len,
                        },
                        (None, None) => data::apply_path(&st.input_path, raw.clone(), env, here)?,
                    };
                    result.check(here.state, Handling::ByNameOnly)?;
                    let assigns = data::eval_assign(&st.assign, &result, env, here)?;
                    let out =
                        data::apply_result_path(&p.result_path, raw, result).map_err(|(e, _)| e)?;
                    Ok((data::apply_path(&st.output_path, out, env, here)?, assigns))
                });
                self.finish_assigned(plan, fid, st.next, r)
            }
            StateOp::Task(t) => {
                let r = self.with_env(fid, &st.name, None, |env, here| {
                    // TimeoutSecondsPath and HeartbeatSecondsPath read the state's input.
                    let timeout = seconds(&t.timeout, "TimeoutSecondsPath", &raw.value, env, here)?;
                    let heartbeat =
                        seconds(&t.heartbeat, "HeartbeatSecondsPath", &raw.value, env, here)?;
                    let eff = data::apply_path(&st.input_path, raw, env, here)?;
                    let mut input = match &t.parameters {
                        Some(tpl) => data::eval_template(tpl, &eff, env, here)?,
                        None => eff,
                    };
                    input.check(here.state, Handling::ByNameOnly)?;
                    let credentials = match &t.credentials {
                        Some(tpl) => Some(data::eval_template(tpl, &input, env, here)?.value),
                        None => None,
                    };
                    Ok((input.value, credentials, timeout, heartbeat))
                });
                self.schedule_task(plan, fid, st, t, r, requests)
            }
            StateOp::Choice(c) => {
                let r = self.with_env(fid, &st.name, None, |env, here| {
                    let eff = data::apply_path(&st.input_path, raw, env, here)?;
                    let mut chosen = None;
                    for rule in c.rules.iter() {
                        if choice::eval(&rule.condition, &eff.value, env.ctx, here)? {
                            chosen = Some((rule.next, &rule.assign));
                            break;
                        }
                    }
                    let (next, rule_assign) = match (chosen, c.default) {
                        (Some(x), _) => x,
                        (None, Some(d)) => (d, &None),
                        (None, None) => return Err(no_choice(here)),
                    };
                    let assigns = choice_assigns(&st.assign, rule_assign, &eff, env, here)?;
                    let out = data::apply_path(&st.output_path, eff, env, here)?;
                    Ok((next, out, assigns))
                });
                self.choose(plan, fid, r)
            }
            StateOp::Wait(w) => {
                let now = self.now;
                let r = self.with_env(fid, &st.name, None, |env, here| {
                    let eff = data::apply_path(&st.input_path, raw, env, here)?;
                    let until = wait_until(w, &eff.value, now, env, here)?;
                    Ok((eff, until))
                });
                self.sleep(plan, fid, r)
            }
            StateOp::Succeed => {
                let r = self.with_env(fid, &st.name, None, |env, here| {
                    let eff = data::apply_path(&st.input_path, raw, env, here)?;
                    data::apply_path(&st.output_path, eff, env, here)
                });
                match r {
                    Ok(out) => self.advance(fid, END, out),
                    Err(e) => self.fiber_failed(plan, fid, e),
                }
            }
            StateOp::Fail(fail) => {
                self.fail_state(plan, fid, st, fail, &raw, None, ("ErrorPath", "CausePath"))
            }
            StateOp::Parallel(p) => {
                let r = self.with_env(fid, &st.name, None, |env, here| {
                    let eff = data::apply_path(&st.input_path, raw, env, here)?;
                    match &p.parameters {
                        Some(t) => data::eval_template(t, &eff, env, here),
                        None => Ok(eff),
                    }
                });
                self.start_parallel(plan, fid, p, r)
            }
            StateOp::Map(m) => self.start_map(plan, fid, m, raw),
        }
    }

    /// A JSONata state: `Arguments`, `Output`, `Assign` and the other fields read `$states`.
    fn attempt_jsonata(
        &mut self,
        plan: &Plan,
        fid: u32,
        st: &StatePlan,
        raw: Sized,
        requests: &mut Vec<TaskRequest>,
    ) -> Flow {
        let states = States::new(&raw, None, None);
        match &st.op {
            StateOp::Pass(_) | StateOp::Succeed => {
                let r = self.with_query(fid, &st.name, None, Some(&states), |env, here| {
                    let assigns = data::eval_assign(&st.assign, &raw, env, here)?;
                    let out = match &st.output {
                        Some(t) => data::eval_template(t, &raw, env, here)?,
                        None => raw,
                    };
                    Ok((out, assigns))
                });
                let next = if matches!(st.op, StateOp::Succeed) {
                    END
                } else {
                    st.next
                };
                self.finish_assigned(plan, fid, next, r)
            }
            StateOp::Task(t) => {
                let r = self.with_query(fid, &st.name, None, Some(&states), |env, here| {
                    let timeout = seconds(&t.timeout, "TimeoutSeconds", &raw.value, env, here)?;
                    let heartbeat =
                        seconds(&t.heartbeat, "HeartbeatSeconds", &raw.value, env, here)?;
                    let mut input = match &t.parameters {
                        Some(tpl) => data::eval_template(tpl, &raw, env, here)?,
                        None => raw.clone(),
                    };
                    input.check(here.state, Handling::ByNameOnly)?;
                    let credentials = match &t.credentials {
                        Some(tpl) => Some(data::eval_template(tpl, &raw, env, here)?.value),
                        None => None,
                    };
                    Ok((input.value, credentials, timeout, heartbeat))
                });
                self.schedule_task(plan, fid, st, t, r, requests)
            }
            StateOp::Choice(c) => {
                let r = self.with_query(fid, &st.name, None, Some(&states), |env, here| {
                    let mut chosen = None;
                    for rule in c.rules.iter() {
                        if jsonata_condition(&rule.condition, &raw, env, here)? {
                            chosen = Some((rule.next, &rule.assign, rule.output.as_ref()));
                            break;
                        }
                    }
                    let (next, rule_assign, rule_output) = match (chosen, c.default) {
                        (Some(x), _) => x,
                        (None, Some(d)) => (d, &None, None),
                        (None, None) => return Err(no_choice(here)),
                    };
                    let assigns = choice_assigns(&st.assign, rule_assign, &raw, env, here)?;
                    let out = match rule_output.or(st.output.as_deref()) {
                        Some(t) => data::eval_template(t, &raw, env, here)?,
                        None => raw,
                    };
                    Ok((next, out, assigns))
                });
                self.choose(plan, fid, r)
            }
            StateOp::Wait(w) => {
                let now = self.now;
                let r = self.with_query(fid, &st.name, None, Some(&states), |env, here| {
                    let until = wait_until(w, &raw.value, now, env, here)?;
                    Ok((raw, until))
                });
                self.sleep(plan, fid, r)
            }
            StateOp::Fail(fail) => {
                self.fail_state(plan, fid, st, fail, &raw, Some(&states), ("Error", "Cause"))
            }
            StateOp::Parallel(p) => {
                let r = self.with_query(fid, &st.name, None, Some(&states), |env, here| {
                    match &p.parameters {
                        Some(t) => data::eval_template(t, &raw, env, here),
                        None => Ok(raw),
                    }
                });
                self.start_parallel(plan, fid, p, r)
            }
            StateOp::Map(m) => self.start_map(plan, fid, m, raw),
        }
    }

    /// A Fail state: its `Error` and `Cause` (fields named `fields` in errors), read from
    /// its raw input, fail the fiber.
    #[allow(clippy::too_many_arguments)]
    fn fail_state(
        &mut self,
        plan: &Plan,
        fid: u32,
        st: &StatePlan,
        fail: &crate::plan::FailOp,
        raw: &Sized,
        states: Option<&States>,
        fields: (&str, &str),
    ) -> Flow {
        let r = self.with_query(fid, &st.name, None, states, |env, here| {
            let error = text(&fail.error, fields.0, raw, env, here)?;
            let cause = text(&fail.cause, fields.1, raw, env, here)?;
            Ok(Failure {
                error,
                cause,
                handling: Handling::Normal,
            })
        });
        let failure = r.unwrap_or_else(|e| e);
        self.fiber_failed(plan, fid, failure)
    }

    /// Stores a state's assignments and moves on to `next` with its output.
    fn finish_assigned(
        &mut self,
        plan: &Plan,
        fid: u32,
        next: StateId,
        r: Result<(Sized, Assigned), Failure>,
    ) -> Flow {
        match r.and_then(|(out, assigns)| self.assign_vars(fid, assigns).map(|()| out)) {
            Ok(out) => self.advance(fid, next, out),
            Err(e) => self.state_error(plan, fid, e),
        }
    }

    fn choose(
        &mut self,
        plan: &Plan,
        fid: u32,
        r: Result<(StateId, Sized, Assigned), Failure>,
    ) -> Flow {
        match r
            .and_then(|(next, out, assigns)| self.assign_vars(fid, assigns).map(|()| (next, out)))
        {
            Ok((next, out)) => self.advance(fid, next, out),
            Err(e) => self.fiber_failed(plan, fid, e),
        }
    }

    /// A Wait state sleeps until `until` with its input kept for `resume`.
    fn sleep(&mut self, plan: &Plan, fid: u32, r: Result<(Sized, i64), Failure>) -> Flow {
        let now = self.now;
        match r {
            Err(e) => self.fiber_failed(plan, fid, e),
            Ok((eff, until)) => {
                let f = &mut self.fibers[fid as usize];
                f.input = eff;
                if until <= now {
                    f.phase = Phase::Resume;
                    f.resume = None;
                    return Flow::Continue;
                }
                f.generation = f.generation.wrapping_add(1);
                f.phase = Phase::Sleep(Wake::WaitState);
                self.timers.push(Reverse((until, fid, f.generation)));
                Flow::Stop
            }
        }
    }

    /// Sends a Task's request to the driver (or handles the failure to build it).
    #[allow(clippy::type_complexity)]
    fn schedule_task(
        &mut self,
        plan: &Plan,
        fid: u32,
        st: &StatePlan,
        t: &TaskOp,
        r: Result<(Value, Option<Value>, Option<u64>, Option<u64>), Failure>,
        requests: &mut Vec<TaskRequest>,
    ) -> Flow {
        match r {
            Err(e) => self.state_error(plan, fid, e),
            Ok((input, credentials, timeout, heartbeat)) => {
                self.events += 2; // TaskScheduled, TaskStarted
                let now = self.now;
                let f = &mut self.fibers[fid as usize];
                f.generation = f.generation.wrapping_add(1);
                f.phase = Phase::Task;
                let token = TaskToken::new(fid, f.generation);
                if let Some(ms) = timeout {
                    f.task_timeout_ms = ms;
                    self.timers
                        .push(Reverse((now.saturating_add(ms as i64), fid, f.generation)));
                }
                requests.push(TaskRequest {
                    token,
                    state: st.name.clone(),
                    resource: t.resource.clone(),
                    input,
                    attempt: f.retry_count,
                    timeout_ms: timeout,
                    heartbeat_ms: heartbeat,
                    credentials,
                });
                Flow::Stop
            }
        }
    }

    /// Starts the branches of a Parallel state with their input.
    fn start_parallel(
        &mut self,
        plan: &Plan,
        fid: u32,
        p: &ParallelOp,
        r: Result<Sized, Failure>,
    ) -> Flow {
        let input = match r {
            Ok(i) => i,
            Err(e) => return self.state_error(plan, fid, e),
        };
        self.events += 1; // ParallelStateStarted
        let n = p.branches.len() as u32;
        let jid = self.new_join(Join {
            fiber: fid,
            state: self.fibers[fid as usize].state,
            kind: JoinKind::Parallel,
            results: vec![Value::Null; n as usize],
            bound: 2 + n as u64,
            total: n,
            remaining: n,
            running: n,
            next: n,
            limit: 0,
            tokens: 0,
            starved: false,
            children: Vec::with_capacity(n as usize),
        });
        self.fibers[fid as usize].phase = Phase::Join(jid);
        for (i, m) in p.branches.iter().enumerate() {
            let start = plan.machines[*m as usize];
            let frame = self.child_frame(fid, false);
            let child = self.spawn(start, input.clone(), jid, i as u32, frame);
            self.join_mut(jid).children.push(child);
        }
        Flow::Stop
    }

    fn advance(&mut self, fid: u32, next: StateId, mut out: Sized) -> Flow {
        self.events += 1; // ...StateExited
        let name = self
            .plan
            .state(self.fibers[fid as usize].state)
            .name
            .clone();
        if let Err(e) = out.check(&name, Handling::ByNameOnly) {
            let plan = Arc::clone(&self.plan);
            return self.fiber_failed(&plan, fid, e);
        }
        if next == END {
            let plan = Arc::clone(&self.plan);
            self.fiber_done(&plan, fid, out);
            return Flow::Stop;
        }
        let f = &mut self.fibers[fid as usize];
        f.state = next;
        f.input = out;
        f.phase = Phase::Enter;
        Flow::Continue
    }

    /// A task result, the end of a Wait, or the children's results.
    fn resume(&mut self, plan: &Plan, fid: u32) -> Flow {
        let st = plan.state(self.fibers[fid as usize].state);
        let resumed = self.fibers[fid as usize].resume.take();
        let raw = std::mem::take(&mut self.fibers[fid as usize].input);
        match (&st.op, resumed) {
            (StateOp::Wait(_), _) => {
                let states = st.jsonata.then(|| States::new(&raw, None, None));
                let r = self.with_query(fid, &st.name, None, states.as_ref(), |env, here| {
                    let assigns = data::eval_assign(&st.assign, &raw, env, here)?;
                    let out = match (&st.output, st.jsonata) {
                        (Some(t), true) => data::eval_template(t, &raw, env, here)?,
                        (_, true) => raw,
                        (_, false) => data::apply_path(&st.output_path, raw, env, here)?,
                    };
                    Ok((out, assigns))
                });
                match r.and_then(|(out, assigns)| self.assign_vars(fid, assigns).map(|()| out)) {
                    Ok(out) => self.advance(fid, st.next, out),
                    Err(e) => self.fiber_failed(plan, fid, e),
                }
            }
            (_, Some(Err(e))) => {
                self.fibers[fid as usize].input = raw;
                self.state_error(plan, fid, e)
            }
            (_, None) => Flow::Stop,
            (op, Some(Ok(mut result))) => {
                let (selector, result_path) = match op {
                    StateOp::Task(t) => {
                        if let Err(e) = result.check(&st.name, Handling::Normal) {
                            self.fibers[fid as usize].input = raw;
                            return self.state_error(plan, fid, e);
                        }
                        (&t.result_selector, &t.result_path)
                    }
                    StateOp::Parallel(p) => (&p.result_selector, &p.result_path),
                    StateOp::Map(m) => (&m.result_selector, &m.result_path),
                    _ => return Flow::Stop,
                };
                if !matches!(op, StateOp::Task(_)) {
                    self.events += 1; // MapStateSucceeded / ParallelStateSucceeded
                    if let Err(e) = result.check(&st.name, Handling::ByNameOnly) {
                        self.fibers[fid as usize].input = raw;
                        return self.state_error(plan, fid, e);
                    }
                }
                let r = if st.jsonata {
                    let states = States::new(&raw, Some(&result), None);
                    self.with_query(fid, &st.name, None, Some(&states), |env, here| {
                        let assigns = data::eval_assign(&st.assign, &result, env, here)?;
                        let out = match &st.output {
                            Some(t) => data::eval_template(t, &raw, env, here)?,
                            None => result,
                        };
                        Ok((out, assigns))
                    })
                    .map_err(|e| (e, Some(raw)))
                } else {
                    self.with_env(fid, &st.name, None, |env, here| {
                        let selected = match selector {
                            Some(t) => {
                                data::eval_template(t, &result, env, here).map_err(|e| (e, None))?
                            }
                            None => result,
                        };
                        let assigns = data::eval_assign(&st.assign, &selected, env, here)
                            .map_err(|e| (e, None))?;
                        let out = data::apply_result_path(result_path, raw, selected)
                            .map_err(|(e, raw)| (e, Some(raw)))?;
                        let out = data::apply_path(&st.output_path, out, env, here)
                            .map_err(|e| (e, None))?;
                        Ok((out, assigns))
                    })
                };
                let r = r.and_then(|(out, assigns)| {
                    self.assign_vars(fid, assigns)
                        .map(|()| out)
                        .map_err(|e| (e, None))
                });
                match r {
                    Ok(out) => self.advance(fid, st.next, out),
                    Err((e, raw)) => {
                        if let Some(raw) = raw {
                            self.fibers[fid as usize].input = raw;
                        }
                        self.state_error(plan, fid, e)
                    }
                }
            }
        }
    }

    /// Retry, then Catch, then fail the fiber.
    fn state_error(&mut self, plan: &Plan, fid: u32, failure: Failure) -> Flow {
        let st = plan.state(self.fibers[fid as usize].state);
        let (retry, catch): (&[RetrierOp], &[CatcherOp]) = match &st.op {
            StateOp::Task(t) => (&t.retry, &t.catch),
            StateOp::Parallel(p) => (&p.retry, &p.catch),
            StateOp::Map(m) => (&m.retry, &m.catch),
            _ => (&[], &[]),
        };
        if failure.handling == Handling::Terminal {
            return self.fiber_failed(plan, fid, failure);
        }
        if let Some((i, r)) = retry
            .iter()
            .enumerate()
            .find(|(_, r)| matches(&r.errors, &failure))
        {
            let f = &mut self.fibers[fid as usize];
            if f.attempts.len() < retry.len() {
                f.attempts.resize(retry.len(), 0);
            }
            let done = f.attempts[i];
            if done < r.max_attempts {
                f.attempts[i] += 1;
                f.retry_count += 1;
                let mut delay = r.interval_ms as f64 * r.backoff_rate.powi(done as i32);
                if let Some(max) = r.max_delay_ms {
                    delay = delay.min(max as f64);
                }
                if r.full_jitter {
                    delay *= self.rng.next_f64();
                }
                let until = self
                    .now
                    .saturating_add(delay.min(i64::MAX as f64 / 2.0) as i64);
                let f = &mut self.fibers[fid as usize];
                f.generation = f.generation.wrapping_add(1);
                f.phase = Phase::Sleep(Wake::Retry);
                self.timers.push(Reverse((until, fid, f.generation)));
                return Flow::Stop;
            }
        }
        if let Some(c) = catch.iter().find(|c| matches(&c.errors, &failure)) {
            let raw = std::mem::take(&mut self.fibers[fid as usize].input);
            let error_output = Sized::exact(failure.to_error_output());
            let r = if st.jsonata {
                let states = States::new(&raw, None, Some(&error_output));
                self.with_query(fid, &st.name, None, Some(&states), |env, here| {
                    let assigns = data::eval_assign(&c.assign, &error_output, env, here)?;
                    let out = match &c.output {
                        Some(t) => data::eval_template(t, &raw, env, here)?,
                        None => error_output,
                    };
                    Ok((out, assigns))
                })
            } else {
                self.with_env(fid, &st.name, None, |env, here| {
                    let assigns = data::eval_assign(&c.assign, &error_output, env, here)?;
                    let out = data::apply_result_path(&c.result_path, raw, error_output)
                        .map_err(|(e, _)| e)?;
                    Ok((out, assigns))
                })
            };
            return match r.and_then(|(out, assigns)| self.assign_vars(fid, assigns).map(|()| out)) {
                Ok(out) => self.advance(fid, c.next, out),
                Err(e) => self.fiber_failed(plan, fid, e),
            };
        }
        self.fiber_failed(plan, fid, failure)
    }

    /// The fiber's machine ended successfully with `out`.
    fn fiber_done(&mut self, plan: &Plan, fid: u32, out: Sized) {
        let (parent, slot) = {
            let f = &self.fibers[fid as usize];
            (f.parent, f.slot)
        };
        if parent == NO_JOIN {
            self.outcome = Some(Outcome::Succeeded(out.value));
            return;
        }
        self.free_fiber(fid);
        let is_map = {
            let j = self.join_mut(parent);
            j.results[slot as usize] = out.value;
            j.bound += out.bound;
            j.remaining -= 1;
            j.running -= 1;
            j.children.retain(|c| *c != fid);
            matches!(j.kind, JoinKind::Map { .. })
        };
        if is_map {
            self.events += 1; // MapIterationSucceeded
            self.settle_tokens(parent);
        }
        self.pump_join(plan, parent);
    }

    /// The fiber's machine failed with `failure` (nothing in it handled the error).
    fn fiber_failed(&mut self, plan: &Plan, fid: u32, failure: Failure) -> Flow {
        let (parent, slot) = {
            let f = &self.fibers[fid as usize];
            (f.parent, f.slot)
        };
        if parent == NO_JOIN {
            self.outcome = Some(Outcome::Failed {
                error: failure.error,
                cause: failure.cause,
            });
            return Flow::Stop;
        }
        self.free_fiber(fid);
        self.events += 1; // MapIterationFailed / branch failure
        self.join_mut(parent).running -= 1;
        self.settle_tokens(parent);
        let tolerated = {
            let j = self.join_mut(parent);
            j.children.retain(|c| *c != fid);
            match &mut j.kind {
                JoinKind::Map {
                    tolerated_count,
                    tolerated_pct,
                    failures,
                    ..
                } if failure.handling != Handling::Terminal => {
                    *failures += 1;
                    let pct = *failures as f64 * 100.0 / j.total.max(1) as f64;
                    let ok = *failures <= *tolerated_count && pct <= *tolerated_pct;
                    if ok {
                        j.results[slot as usize] = failure.to_error_output();
                        j.remaining -= 1;
                    }
                    ok
                }
                _ => false,
            }
        };
        if tolerated {
            self.pump_join(plan, parent);
            return Flow::Stop;
        }
        // The whole Map or Parallel state fails: stop the other children.
        let join = self.take_join(parent);
        for child in join.children {
            self.cancel_fiber(child);
        }
        let exceeded = matches!(join.kind, JoinKind::Map { tolerated_count, tolerated_pct, .. }
            if failure.handling != Handling::Terminal && (tolerated_count > 0 || tolerated_pct > 0.0));
        let failure = if exceeded {
            Failure::new(
                "States.ExceedToleratedFailureThreshold",
                "The specified tolerated failure threshold was exceeded",
                Handling::Normal,
            )
        } else {
            failure
        };
        self.state_error(plan, join.fiber, failure);
        let parent_fiber = join.fiber;
        if matches!(
            self.fibers[parent_fiber as usize].phase,
            Phase::Enter | Phase::Attempt | Phase::Resume
        ) {
            self.ready.push_back(parent_fiber);
        }
        Flow::Stop
    }

    fn cancel_fiber(&mut self, fid: u32) {
        if let Phase::Join(jid) = self.fibers[fid as usize].phase {
            let join = self.take_join(jid);
            for child in join.children {
                self.cancel_fiber(child);
            }
        }
        self.free_fiber(fid);
    }

    fn new_join(&mut self, join: Join) -> u32 {
        match self.free_joins.pop() {
            Some(j) => {
                self.joins[j as usize] = Some(join);
                j
            }
            None => {
                self.joins.push(Some(join));
                (self.joins.len() - 1) as u32
            }
        }
    }

    fn join_mut(&mut self, jid: u32) -> &mut Join {
        self.joins[jid as usize]
            .as_mut()
            .expect("a live join for a live child")
    }

    /// Gives back a token when more are held than iterations run beyond the first.
    fn settle_tokens(&mut self, jid: u32) {
        let j = self.join_mut(jid);
        if j.tokens > j.running.saturating_sub(1) {
            j.tokens -= 1;
            self.give_back_tokens(1);
        }
    }

    fn give_back_tokens(&mut self, n: u32) {
        if n > 0
            && let Some(b) = &self.map_budget
        {
            b.give_back(n);
            self.map_tokens -= n;
        }
    }

    fn take_join(&mut self, jid: u32) -> Join {
        self.free_joins.push(jid);
        let join = self.joins[jid as usize]
            .take()
            .expect("a live join for a live child");
        self.give_back_tokens(join.tokens);
        join
    }

    /// Starts Map items while there is room, and resumes the parent when all are done.
    fn pump_join(&mut self, plan: &Plan, jid: u32) {
        loop {
            let j = self.join_mut(jid);
            if j.remaining == 0 {
                let join = self.take_join(jid);
                let f = &mut self.fibers[join.fiber as usize];
                f.resume = Some(Ok(Sized {
                    value: Value::array(join.results),
                    bound: join.bound,
                }));
                f.phase = Phase::Resume;
                self.ready.push_back(join.fiber);
                return;
            }
            if j.next >= j.total || (j.limit > 0 && j.running >= j.limit) {
                return;
            }
            // Beyond its first running iteration, a Map needs a token of the shared budget;
            // without one it waits (`starved`) for one of its iterations to end or for its
            // driver to `feed` it.
            let needs_token = j.running > 0 && self.map_budget.is_some();
            if needs_token && !self.map_budget.as_ref().is_some_and(|b| b.try_take()) {
                if !std::mem::replace(&mut self.join_mut(jid).starved, true) {
                    self.starved.push(jid);
                }
                return;
            }
            let j = self.join_mut(jid);
            let index = j.next;
            j.next += 1;
            j.running += 1;
            j.tokens += u32::from(needs_token);
            self.map_tokens += u32::from(needs_token);
            if let Err(e) = self.start_item(plan, jid, index) {
                // The ItemSelector failed: the Map state fails.
                let join = self.take_join(jid);
                for child in join.children {
                    self.cancel_fiber(child);
                }
                let parent = join.fiber;
                self.state_error(plan, parent, e);
                if matches!(
                    self.fibers[parent as usize].phase,
                    Phase::Enter | Phase::Attempt | Phase::Resume
                ) {
                    self.ready.push_back(parent);
                }
                return;
            }
        }
    }

    fn start_item(&mut self, plan: &Plan, jid: u32, index: u32) -> Result<(), Failure> {
        let (fiber, state) = {
            let j = self.join_mut(jid);
            (j.fiber, j.state)
        };
        let st = plan.state(state);
        let StateOp::Map(m) = &st.op else {
            return Ok(());
        };
        let (item, doc) = match &self.join_mut(jid).kind {
            JoinKind::Map { items, doc, .. } => (
                items
                    .as_array()
                    .and_then(|a| a.get(index as usize).cloned())
                    .unwrap_or_default(),
                doc.clone(),
            ),
            JoinKind::Parallel => return Ok(()),
        };
        let input = match &m.item_selector {
            Some(t) => {
                let states = st.jsonata.then(|| States::new(&doc, None, None));
                self.with_query(
                    fiber,
                    &st.name,
                    Some((index, &item)),
                    states.as_ref(),
                    |env, here| data::eval_template(t, &doc, env, here),
                )?
            }
            None => {
                let bound = data::bound_of(&item, doc.bound);
                Sized { value: item, bound }
            }
        };
        self.events += 1; // MapIterationStarted
        let start = plan.machines[m.processor as usize];
        let frame = self.child_frame(fiber, m.distributed);
        let child = self.spawn(start, input, jid, index, frame);
        self.join_mut(jid).children.push(child);
        Ok(())
    }

    fn start_map(&mut self, plan: &Plan, fid: u32, m: &MapOp, raw: Sized) -> Flow {
        let st = plan.state(self.fibers[fid as usize].state);
        let states = st.jsonata.then(|| States::new(&raw, None, None));
        let r = self.with_query(fid, &st.name, None, states.as_ref(), |env, here| {
            if m.item_reader.is_some() {
                return Err(Failure::new(
                    "States.ItemReaderFailed",
                    format!(
                        "State '{}' reads its items with an ItemReader (S3), which stepstream does not bind: pass the items in the input and use ItemsPath",
                        here.state
                    ),
                    Handling::Normal,
                ));
            }
            if m.result_writer.is_some() {
                return Err(Failure::new(
                    "States.ResultWriterFailed",
                    format!(
                        "State '{}' writes its results with a ResultWriter (S3), which stepstream does not bind: remove ResultWriter to get the results as the state's output",
                        here.state
                    ),
                    Handling::Normal,
                ));
            }
            let eff = data::apply_path(&st.input_path, raw, env, here)?;
            let items = match &m.items {
                Some(TemplateOp::Jsonata(op)) => {
                    let v = query::eval_sized(op, env, here)?;
                    if !matches!(v.value, Value::Array(_)) {
                        return Err(query::wrong_type(op, "array", &v.value, here));
                    }
                    v
                }
                Some(t) => data::eval_template(t, &eff, env, here)?,
                None => data::apply_path(&m.items_path, eff.clone(), env, here)?,
            };
            if !matches!(items.value, Value::Array(_)) {
                let detail = format!(
                    "Map state input must be an array but was: {}",
                    crate::json::to_string(&items.value)
                );
                return Err(if st.jsonata {
                    query::query_error(here, detail)
                } else {
                    here.runtime(detail)
                });
            }
            let limit = match &m.max_concurrency {
                None => 0,
                Some(DynamicOp::Fixed(n)) => *n,
                Some(DynamicOp::Path(a)) => {
                    count_field(a, "MaxConcurrency", &eff.value, env, here)?
                }
                Some(DynamicOp::Expr(op)) => query::eval_count(op, env, here)?,
            };
            let tolerated_count = match &m.tolerated_failure_count {
                None => 0,
                Some(DynamicOp::Fixed(n)) => *n,
                Some(DynamicOp::Path(a)) => {
                    count_field(a, "ToleratedFailureCount", &eff.value, env, here)?
                }
                Some(DynamicOp::Expr(op)) => query::eval_count(op, env, here)?,
            };
            let tolerated_pct = match &m.tolerated_failure_percentage {
                None => 0.0,
                Some(DynamicOp::Fixed(p)) => *p,
                Some(DynamicOp::Expr(op)) => {
                    let v = query::eval(op, env, here)?;
                    match v.as_f64() {
                        Some(p) if (0.0..=100.0).contains(&p) => p,
                        _ => return Err(query::wrong_type(op, "number", &v, here)),
                    }
                }
                Some(DynamicOp::Path(a)) => {
                    let v = data::select_field(
                        a,
                        "ToleratedFailurePercentagePath",
                        &eff.value,
                        env,
                        here,
                    )?;
                    let pct = match v.value() {
                        Value::String(s) => s.parse::<f64>().ok().filter(|p| p.is_finite()),
                        other => other.as_f64(),
                    };
                    match pct {
                        Some(p) if (0.0..=100.0).contains(&p) => p,
                        Some(_) => {
                            return Err(here.runtime(
                                "ToleratedFailurePercentage must be between 0 and 100.",
                            ));
                        }
                        None => {
                            return Err(here.runtime(format_args!(
                                "The ToleratedFailurePercentagePath field refers to value \"{}\" which is not a valid float: {}",
                                display(v.value()),
                                a.text()
                            )));
                        }
                    }
                }
            };
            Ok((eff, items.value, limit, tolerated_count, tolerated_pct))
        });
        let (eff, items, limit, tolerated_count, tolerated_pct) = match r {
            Ok(x) => x,
            Err(e) => return self.state_error(plan, fid, e),
        };
        let items = match &m.item_batcher {
            Some(batcher) => match batch_items(&items, batcher, &eff.value) {
                Ok(b) => b,
                Err(e) => {
                    let here_fail =
                        Failure::runtime(&st.name, self.fibers[fid as usize].entered_event, e);
                    return self.state_error(plan, fid, here_fail);
                }
            },
            None => items,
        };
        let total = items.as_array().map_or(0, |a| a.len()) as u32;
        self.events += 1; // MapStateStarted
        // A tolerance of 100% (or more failures than items) never fails the Map.
        let jid = self.new_join(Join {
            fiber: fid,
            state: self.fibers[fid as usize].state,
            kind: JoinKind::Map {
                items,
                doc: eff,
                tolerated_count: if m.tolerated_failure_count.is_none()
                    && m.tolerated_failure_percentage.is_some()
                {
                    u64::MAX
                } else {
                    tolerated_count
                },
                tolerated_pct: if m.tolerated_failure_percentage.is_none()
                    && m.tolerated_failure_count.is_some()
                {
                    100.0
                } else {
                    tolerated_pct
                },
                failures: 0,
            },
            results: vec![Value::Null; total as usize],
            bound: 2 + total as u64,
            total,
            remaining: total,
            running: 0,
            next: 0,
            limit: effective_limit(limit, m.distributed),
            tokens: 0,
            starved: false,
            children: Vec::new(),
        });
        self.fibers[fid as usize].phase = Phase::Join(jid);
        self.pump_join(plan, jid);
        Flow::Stop
    }
}

/// The iterations a Map state runs at once: `MaxConcurrency` (0 = no limit of its own), never
/// more than AWS runs in the Map's mode.
fn effective_limit(max_concurrency: u64, distributed: bool) -> u32 {
    let cap = if distributed {
        DISTRIBUTED_MAP_CONCURRENCY
    } else {
        INLINE_MAP_CONCURRENCY
    };
    if max_concurrency == 0 {
        cap
    } else {
        max_concurrency.min(cap as u64) as u32
    }
}

/// A non-negative integer read through `<field>Path` (`MaxConcurrencyPath`,
/// `ToleratedFailureCountPath`), refused with AWS's messages.
fn count_field(
    a: &crate::plan::Accessor,
    field: &str,
    doc: &Value,
    env: &Env<'_>,
    here: Here<'_>,
) -> Result<u64, Failure> {
    let v = data::select_field(a, &format!("{field}Path"), doc, env, here)?;
    // A string of digits counts, as Java's Integer.parseInt reads it (the corpus's
    // `"maxConcurrency": "1"` variable).
    let number = match v.value() {
        Value::String(s) => s.parse::<i64>().ok().map(crate::json::Number::Int),
        other => other.as_number(),
    };
    match number {
        Some(crate::json::Number::Int(n)) if n >= 0 => Ok(n as u64),
        Some(crate::json::Number::Int(_)) => {
            Err(here.runtime(format_args!("{field} cannot be negative.")))
        }
        _ => Err(here.runtime(format_args!(
            "The {field}Path field refers to value \"{}\" which is not a valid integer: {}",
            display(v.value()),
            a.text()
        ))),
    }
}

/// A value as AWS prints it inside quotes in messages: strings bare, the rest as JSON.
fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        other => crate::json::to_string(other),
    }
}

/// Whether a retrier's or catcher's `ErrorEquals` covers `f`.
fn matches(m: &ErrorMatch, f: &Failure) -> bool {
    if f.handling == Handling::Terminal {
        return false;
    }
    let name = f.error.as_deref().unwrap_or("");
    if m.names.iter().any(|n| n.as_str() == name) {
        return true;
    }
    if f.handling != Handling::Normal {
        return false;
    }
    m.all || (m.task_failed && name != "States.Timeout")
}

/// `TimeoutSeconds`/`HeartbeatSeconds` (or their `...Path`) in milliseconds.
fn seconds(
    d: &Option<DynamicOp<u64>>,
    field: &str,
    doc: &Value,
    env: &mut Env<'_>,
    here: Here<'_>,
) -> Result<Option<u64>, Failure> {
    match d {
        None => Ok(None),
        Some(DynamicOp::Fixed(s)) => Ok(Some(s.saturating_mul(1000))),
        Some(DynamicOp::Expr(op)) => {
            let v = query::eval(op, env, here)?;
            match v.as_number().and_then(|n| n.as_i64()) {
                Some(n) if n > 0 => Ok(Some((n as u64).saturating_mul(1000))),
                _ => Err(query::wrong_type(op, "integer", &v, here)),
            }
        }
        Some(DynamicOp::Path(a)) => {
            let v = data::select_field(a, field, doc, env, here)?;
            match v.value().as_number() {
                Some(crate::json::Number::Int(n)) if n > 0 => {
                    Ok(Some((n as u64).saturating_mul(1000)))
                }
                _ => Err(here.runtime(format_args!(
                    "The {field} parameter must reference a positive integer: {} == {}",
                    a.text(),
                    display(v.value())
                ))),
            }
        }
    }
}

/// The value at `a` in `doc`, or `States.Runtime` saying the path selects nothing.
fn read_path(
    a: &crate::plan::Accessor,
    doc: &Value,
    env: &Env<'_>,
    here: Here<'_>,
) -> Result<Value, Failure> {
    a.select(doc, env.ctx)
        .map(Selected::into_owned)
        .map_err(|e| here.runtime(format_args!("Invalid path '{}' : {e}", a.text())))
}

/// When a Wait state ends, in ms since the epoch.
fn wait_until(
    w: &WaitOp,
    doc: &Value,
    now: i64,
    env: &mut Env<'_>,
    here: Here<'_>,
) -> Result<i64, Failure> {
    match w {
        WaitOp::SecondsExpr(op) => {
            let n = query::eval_count(op, env, here)?;
            Ok(now.saturating_add((n.min(i64::MAX as u64) as i64).saturating_mul(1000)))
        }
        WaitOp::TimestampExpr(op) => {
            let v = query::eval(op, env, here)?;
            match v.as_str().and_then(Timestamp::parse_rfc3339) {
                Some(t) => Ok(t.as_millis()),
                None => Err(query::query_error(
                    here,
                    format_args!(
                        "The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {}",
                        display(&v)
                    ),
                )),
            }
        }
        WaitOp::Seconds(s) => Ok(now.saturating_add((*s as i64).saturating_mul(1000))),
        WaitOp::Until(ms) => Ok(*ms),
        WaitOp::SecondsPath(a) => {
            let v = read_path(a, doc, env, here)?;
            match v.as_number() {
                Some(crate::json::Number::Int(n)) if n >= 0 => {
                    Ok(now.saturating_add(n.saturating_mul(1000)))
                }
                Some(crate::json::Number::Int(_)) => Err(here.runtime(format_args!(
                    "The SecondsPath parameter references a negative value: {} == {}",
                    a.text(),
                    display(&v)
                ))),
                _ => Err(here.runtime(format_args!(
                    "The SecondsPath parameter cannot be parsed as a long value: {} == {}",
                    a.text(),
                    display(&v)
                ))),
            }
        }
        WaitOp::TimestampPath(a) => {
            let v = read_path(a, doc, env, here)?;
            match v.as_str().and_then(Timestamp::parse_rfc3339) {
                Some(t) => Ok(t.as_millis()),
                None => Err(here.runtime(format_args!(
                    "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {}",
                    a.text(),
                    display(&v)
                ))),
            }
        }
    }
}

/// `Error`/`Cause` of a Fail state, read from its raw input.
fn text(
    t: &Option<TextOp>,
    field: &str,
    raw: &Sized,
    env: &mut Env<'_>,
    here: Here<'_>,
) -> Result<Option<Str>, Failure> {
    match t {
        None => Ok(None),
        Some(TextOp::Fixed(s)) => Ok(Some(s.clone())),
        Some(TextOp::Select(a)) => {
            let v = data::select_field(a, field, &raw.value, env, here)?;
            Ok(Some(match v {
                Selected::Borrowed(Value::String(s)) => s.clone(),
                Selected::Owned(Value::String(s)) => s,
                other => Str::from(crate::json::to_string(other.value())),
            }))
        }
        Some(TextOp::Call(c)) => {
            let v = data::eval_call(c, field, raw, env, here)?.value;
            Ok(Some(match v {
                Value::String(s) => s,
                other => Str::from(crate::json::to_string(&other)),
            }))
        }
        Some(TextOp::Expr(op)) => match query::eval(op, env, here)? {
            Value::String(s) => Ok(Some(s)),
            other => Err(query::wrong_type(op, "string", &other, here)),
        },
    }
}

/// `ItemBatcher`: groups items into `{"Items": [...], "BatchInput": ...}` batches of at most
/// `MaxItemsPerBatch` items and `MaxInputBytesPerBatch` bytes.
fn batch_items(items: &Value, batcher: &Value, doc: &Value) -> Result<Value, String> {
    let read = |key: &str| -> Result<Option<u64>, String> {
        if let Some(v) = batcher.get(key) {
            return v
                .as_i64()
                .filter(|n| *n > 0)
                .map(|n| Some(n as u64))
                .ok_or_else(|| format!("ItemBatcher.{key} must be a positive integer"));
        }
        let path_key = format!("{key}Path");
        if let Some(Value::String(p)) = batcher.get(&path_key) {
            let path = crate::jsonpath::Path::parse(p).map_err(|e| e.to_string())?;
            let v = path
                .select(doc)
                .map_err(|e| format!("ItemBatcher.{path_key}: {e}"))?
                .into_owned();
            return v
                .as_i64()
                .filter(|n| *n > 0)
                .map(|n| Some(n as u64))
                .ok_or_else(|| {
                    format!("ItemBatcher.{path_key} must reference a positive integer")
                });
        }
        Ok(None)
    };
    let max_items = read("MaxItemsPerBatch")?.unwrap_or(u64::MAX);
    let max_bytes = read("MaxInputBytesPerBatch")?.unwrap_or(PAYLOAD_LIMIT);
    let batch_input = batcher.get("BatchInput").cloned();
    let mut batches = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut bytes = 0u64;
    for item in items.as_array().map(|a| a.as_slice()).unwrap_or(&[]) {
        let len = encoded_len(item) as u64 + 1;
        if !current.is_empty() && (current.len() as u64 >= max_items || bytes + len > max_bytes) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += len;
        current.push(item.clone());
    }
    if !current.is_empty() {
        batches.push(current);
    }
    Ok(Value::array(
        batches
            .into_iter()
            .map(|b| {
                let mut pairs = vec![("Items", Value::array(b))];
                if let Some(bi) = &batch_input {
                    pairs.push(("BatchInput", bi.clone()));
                }
                Value::object_from(pairs)
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests;

/// `States.NoChoiceMatched`: no rule matched and there is no Default.
fn no_choice(here: Here<'_>) -> Failure {
    Failure::new(
        "States.NoChoiceMatched",
        format!(
            "No choice rule of state '{}' matched its input and it has no Default",
            here.state
        ),
        Handling::Normal,
    )
}

/// A JSONata `Condition`: a literal boolean, or an expression that must give one.
fn jsonata_condition(
    c: &ConditionOp,
    raw: &Sized,
    env: &mut Env<'_>,
    here: Here<'_>,
) -> Result<bool, Failure> {
    let ConditionOp::Jsonata(t) = c else {
        return Ok(false);
    };
    let v = data::eval_template(t, raw, env, here)?;
    match (&v.value, t) {
        (Value::Bool(b), _) => Ok(*b),
        (other, TemplateOp::Jsonata(op)) => Err(query::wrong_type(op, "boolean", other, here)),
        (other, _) => Err(query::query_error(
            here,
            format_args!(
                "The Condition must be a boolean, but was '{}'",
                other.type_name()
            ),
        )),
    }
}

/// The assignments of a Choice state: the state's own `Assign` applies whichever way the
/// state goes ("regardless of which choice rule matches", AWS's Choice page), then the
/// matched rule's, whose values win for a name both assign (as the rule's `Output` wins
/// over the state's, which the corpus shows).
fn choice_assigns(
    state: &Option<crate::plan::AssignOp>,
    rule: &Option<crate::plan::AssignOp>,
    doc: &Sized,
    env: &mut Env<'_>,
    here: Here<'_>,
) -> Result<Assigned, Failure> {
    let mut out = data::eval_assign(state, doc, env, here)?;
    out.extend(data::eval_assign(rule, doc, env, here)?);
    Ok(out)
}
