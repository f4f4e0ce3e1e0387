//! Errors: Retry (backoff, jitter, `MaxDelaySeconds`), Catch (`ResultPath` or `Output`, and
//! `Assign`, on the error output), and how an error no state handled travels up: it ends the
//! execution, or fails the Map iteration or Parallel branch it happened in, and so the Map
//! or Parallel state, unless the Map tolerates it.

use std::cmp::Reverse;

use crate::plan::{CatcherOp, ErrorMatch, Plan, RetrierOp, StateOp};

use super::data::{self, Failure, Handling, Sized};
use super::fiber::{Flow, JoinKind, NO_JOIN, Phase, Wake};
use super::query::States;
use super::{Execution, Outcome};

impl Execution {
    /// Retry, then Catch, then fail the fiber.
    pub(super) fn state_error(&mut self, plan: &Plan, fid: u32, failure: Failure) -> Flow {
        self.handle_error(plan, fid, failure, false)
    }

    /// `state_error`; `run_failed`: the failure is a Map's or Parallel's run failing (its
    /// children), which records MapStateFailed / ParallelStateFailed unless a retrier takes it.
    fn handle_error(&mut self, plan: &Plan, fid: u32, failure: Failure, run_failed: bool) -> Flow {
        let st = plan.state(self.fibers[fid as usize].state);
        let (retry, catch): (&[RetrierOp], &[CatcherOp]) = match &st.op {
            StateOp::Task(t) => (&t.retry, &t.catch),
            StateOp::Parallel(p) => (&p.retry, &p.catch),
            StateOp::Map(m) => (&m.retry, &m.catch),
            _ => (&[], &[]),
        };
        if failure.handling == Handling::Terminal {
            if run_failed {
                self.run_failed(plan, fid);
            }
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
                if let Some(c) = &self.counts {
                    c.retried(f.state);
                }
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
        if run_failed {
            self.run_failed(plan, fid);
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
            return match r
                .and_then(|(out, assigns)| self.assign_vars(plan, fid, assigns).map(|()| out))
            {
                Ok(out) => self.leave(plan, fid, c.next, out, true),
                Err(e) => self.fiber_failed(plan, fid, e),
            };
        }
        self.fiber_failed(plan, fid, failure)
    }

    /// The fiber's machine failed with `failure` (nothing in it handled the error).
    pub(super) fn fiber_failed(&mut self, plan: &Plan, fid: u32, failure: Failure) -> Flow {
        let (parent, slot) = {
            let f = &self.fibers[fid as usize];
            if let Some(c) = &self.counts {
                c.failed(f.state, failure.error.as_ref(), self.now - f.entered_ms);
            }
            (f.parent, f.slot)
        };
        if parent == NO_JOIN {
            self.failed_state = Some(self.fibers[fid as usize].state);
            self.events += 1; // ExecutionFailed
            if self.history.is_some() {
                self.note_execution_failed(fid, &failure);
            }
            self.outcome = Some(Outcome::Failed {
                error: failure.error,
                cause: failure.cause,
            });
            return Flow::Stop;
        }
        self.free_fiber(fid);
        let j = self.join_mut(parent);
        let map_state = matches!(j.kind, JoinKind::Map { .. }).then_some(j.state);
        if map_state.is_some() {
            self.events += 1; // MapIterationFailed (a branch has no event of its own)
        }
        if self.history.is_some() {
            self.note_child_failed(plan, fid, parent, slot, map_state);
        }
        self.join_mut(parent).running -= 1;
        self.settle_tokens(parent);
        self.join_mut(parent).children.retain(|c| *c != fid);
        match self.tolerate(parent, slot, failure) {
            None => self.pump_join(plan, parent),
            Some(failure) => self.fail_join(plan, parent, failure),
        }
        Flow::Stop
    }

    /// The Map or Parallel state waiting on join `jid` fails with `failure` (a child failed
    /// beyond what the state tolerates, or an `ItemSelector` failed): its other children
    /// stop, and the state's own Retry and Catch apply.
    pub(super) fn fail_join(&mut self, plan: &Plan, jid: u32, failure: Failure) {
        if self.history.is_some() {
            self.note_join_failed(jid);
        }
        let fid = self.cancel_join(jid);
        self.handle_error(plan, fid, failure, true);
        // The state's fiber waited on the join, so it is in no queue: unless it now sleeps
        // before a retry or is gone, it runs on.
        if matches!(
            self.fibers[fid as usize].phase,
            Phase::Enter | Phase::Attempt | Phase::Resume
        ) {
            self.ready.push_back(fid);
        }
    }

    /// MapStateFailed / ParallelStateFailed of the state fiber `fid` is in.
    fn run_failed(&mut self, plan: &Plan, fid: u32) {
        self.events += 1;
        if self.history.is_some() {
            self.note_run_failed(plan, fid);
        }
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
