//! Fibers and joins: the scheduler inside one execution. A fiber walks one machine (the top
//! level, a Parallel branch, a Map iteration) state by state until it blocks; a Map or
//! Parallel state parks its fiber on a *join* until its children are done. Both live in
//! vectors reused through free lists, and a fiber that moves on bumps its generation, so late
//! task results and stale timers (Wait, Retry backoff, task time limits) are recognised and
//! dropped. The execution's own time limit is here too.

use std::cmp::Reverse;

use crate::json::{Str, Value};
use crate::plan::{Plan, StateId};

use super::data::{Failure, Handling, Sized};
use super::vars::NO_FRAME;
use super::{Execution, Outcome, TaskRequest};

/// The parent of the top-level fiber: no join.
pub(super) const NO_JOIN: u32 = u32::MAX;

/// States entered per `poll` before the execution yields to its driver.
pub(super) const STEP_BUDGET: u32 = 10_000;

#[derive(Debug)]
pub(super) enum Phase {
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
    /// A Map iteration about to run its first state: its MapIterationStarted event comes when
    /// it first runs (not when it is spawned), so that iterations that finish at once (Pass
    /// states) follow one another in the history, as AWS records them.
    Iterate,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Wake {
    WaitState,
    Retry,
}

/// One running machine: where it is, and what it waits for.
pub(super) struct Fiber {
    pub(super) generation: u32,
    pub(super) state: StateId,
    pub(super) phase: Phase,
    /// The state's raw input (for a Wait state while sleeping: its effective input).
    pub(super) input: Sized,
    /// The join this fiber reports to, or `NO_JOIN` for the top-level fiber.
    pub(super) parent: u32,
    pub(super) slot: u32,
    pub(super) entered_event: u32,
    pub(super) entered_ms: i64,
    pub(super) retry_count: u32,
    pub(super) attempts: Vec<u32>,
    pub(super) resume: Option<Result<Sized, Failure>>,
    /// For a task: its deadline, reported in the timeout cause.
    pub(super) task_timeout_ms: u64,
    /// The fiber's frame of workflow variables (`NO_FRAME` when the plan has none).
    pub(super) frame: u32,
}

pub(super) enum JoinKind {
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

/// A Map or Parallel state waiting for its children: their results by slot, and which run.
pub(super) struct Join {
    pub(super) fiber: u32,
    pub(super) state: StateId,
    pub(super) kind: JoinKind,
    pub(super) results: Vec<Value>,
    pub(super) bound: u64,
    pub(super) total: u32,
    pub(super) remaining: u32,
    pub(super) running: u32,
    pub(super) next: u32,
    pub(super) limit: u32,
    /// Map iterations running on a token of the shared budget (`running - 1` at most: the
    /// first needs none).
    pub(super) tokens: u32,
    /// Items wait for a token of the shared budget (the join is in `Execution::starved`).
    pub(super) starved: bool,
    pub(super) children: Vec<u32>,
}

/// What a step of a fiber leaves it doing.
pub(super) enum Flow {
    /// The fiber moved on; keep running it.
    Continue,
    /// The fiber waits (task, timer, children) or is gone.
    Stop,
}

impl Execution {
    pub(super) fn next_wake(&mut self) -> Option<i64> {
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

    pub(super) fn fire_timers(&mut self, plan: &Plan) {
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
                    if self.history.is_some() {
                        self.note_task_timed_out(fid, &failure);
                    }
                    let f = &mut self.fibers[fid as usize];
                    f.resume = Some(Err(failure));
                    f.phase = Phase::Resume;
                    self.ready.push_back(fid);
                }
                _ => {}
            }
        }
    }

    pub(super) fn time_out(&mut self, plan: &Plan) {
        let secs = plan.timeout_ms.unwrap_or(0) / 1000;
        let error = Str::new("States.Timeout");
        let cause = Str::from(format!(
            "The execution did not finish within its time limit of {secs} seconds"
        ));
        self.events += 1; // ExecutionTimedOut
        if let Some(h) = self.history.as_deref_mut() {
            h.execution_timed_out(self.events, self.now, &error, &cause);
        }
        self.outcome = Some(Outcome::TimedOut { error, cause });
    }

    /// A frame for a child (a branch or an iteration) of fiber `fid`: reading through to the
    /// parent's, or a scope of its own (`isolated`: a distributed Map's iteration).
    pub(super) fn child_frame(&mut self, plan: &Plan, fid: u32, isolated: bool) -> u32 {
        if plan.variables.is_empty() {
            return NO_FRAME;
        }
        let parent = if isolated {
            NO_FRAME
        } else {
            self.fibers[fid as usize].frame
        };
        self.frames.open(parent, plan.variables.len())
    }

    pub(super) fn spawn(
        &mut self,
        state: StateId,
        input: Sized,
        parent: u32,
        slot: u32,
        frame: u32,
    ) -> u32 {
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

    pub(super) fn free_fiber(&mut self, fid: u32) {
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

    pub(super) fn run(&mut self, plan: &Plan, fid: u32, requests: &mut Vec<TaskRequest>) {
        // Checked once per run of a fiber, not per state: the state loop stays as it was.
        if let Phase::Iterate = self.fibers[fid as usize].phase {
            self.fibers[fid as usize].phase = Phase::Enter;
            self.events += 1; // MapIterationStarted
            if self.history.is_some() {
                self.note_iteration_started(plan, fid);
            }
        }
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
                    if let Some(c) = &self.counts {
                        c.entered(f.state);
                    }
                    if self.history.is_some() {
                        self.note_entered(plan, fid);
                    }
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

    /// The fiber's machine ended successfully with `out`.
    pub(super) fn fiber_done(&mut self, plan: &Plan, fid: u32, out: Sized) {
        let (parent, slot) = {
            let f = &self.fibers[fid as usize];
            (f.parent, f.slot)
        };
        if parent == NO_JOIN {
            self.events += 1; // ExecutionSucceeded
            if self.history.is_some() {
                self.note_execution_succeeded(fid, &out.value);
            }
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
        if self.history.is_some() {
            self.note_child_succeeded(plan, fid, parent, slot, is_map);
        }
        self.pump_join(plan, parent);
    }

    /// Ends join `jid` and every fiber below it; returns the fiber that waited on it.
    pub(super) fn cancel_join(&mut self, jid: u32) -> u32 {
        let join = self.take_join(jid);
        for child in join.children {
            self.cancel_fiber(child);
        }
        join.fiber
    }

    fn cancel_fiber(&mut self, fid: u32) {
        if let Phase::Join(jid) = self.fibers[fid as usize].phase {
            self.cancel_join(jid);
        }
        self.free_fiber(fid);
    }

    pub(super) fn new_join(&mut self, join: Join) -> u32 {
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

    pub(super) fn join_mut(&mut self, jid: u32) -> &mut Join {
        self.joins[jid as usize]
            .as_mut()
            .expect("a live join for a live child")
    }

    pub(super) fn take_join(&mut self, jid: u32) -> Join {
        self.free_joins.push(jid);
        let join = self.joins[jid as usize]
            .take()
            .expect("a live join for a live child");
        self.give_back_tokens(join.tokens);
        join
    }
}
