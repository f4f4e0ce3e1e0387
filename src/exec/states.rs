//! What each state type does with its input, and its way out: attempting Pass, Task,
//! Choice, Wait, Succeed, Fail and Parallel (Map has its own file), handing a Task to the
//! driver, resuming with a task's or the children's results, and moving on to the next
//! state. Both query languages are here, side by side: JSONPath states run the five-step data
//! flow of `data`, JSONata states their `Arguments`/`Output` with `$states`.

use std::cmp::Reverse;

use crate::json::{Str, Value, encoded_len};
use crate::jsonpath::Selected;
use crate::plan::{
    DynamicOp, END, FailOp, ParallelOp, Plan, StateId, StateOp, StatePlan, TaskOp, TextOp, WaitOp,
};
use crate::time::Timestamp;

use super::context::Ctx;
use super::data::{self, Assigned, Env, Failure, Handling, Here, Sized, display};
use super::fiber::{Flow, Join, JoinKind, Phase, Wake};
use super::query::{self, States};
use super::{Execution, TaskRequest, TaskToken, choice, vars};

impl Execution {
    /// Runs `f` with the context of fiber `fid` in state `st`.
    pub(super) fn with_env<R>(
        &mut self,
        fid: u32,
        st_name: &str,
        item: Option<(u32, &Value)>,
        f: impl FnOnce(&mut Env<'_>, Here<'_>) -> R,
    ) -> R {
        self.with_query(fid, st_name, item, None, f)
    }

    /// `with_env` for a JSONata state, whose expressions read `states` as `$states`.
    pub(super) fn with_query<R>(
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
    pub(super) fn assign_vars(
        &mut self,
        plan: &Plan,
        fid: u32,
        values: Assigned,
    ) -> Result<(), Failure> {
        if values.is_empty() {
            return Ok(());
        }
        if self.history.is_some() {
            self.note_assigned(plan, fid, &values);
        }
        let f = &self.fibers[fid as usize];
        let name = &plan.state(f.state).name;
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

    pub(super) fn attempt(
        &mut self,
        plan: &Plan,
        fid: u32,
        requests: &mut Vec<TaskRequest>,
    ) -> Flow {
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
                        (None, None) => return Err(choice::no_choice(here)),
                    };
                    let assigns = choice::assigns(&st.assign, rule_assign, &eff, env, here)?;
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
                    Ok(out) => self.advance(plan, fid, END, out),
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
                        if choice::jsonata_condition(&rule.condition, &raw, env, here)? {
                            chosen = Some((rule.next, &rule.assign, rule.output.as_ref()));
                            break;
                        }
                    }
                    let (next, rule_assign, rule_output) = match (chosen, c.default) {
                        (Some(x), _) => x,
                        (None, Some(d)) => (d, &None, None),
                        (None, None) => return Err(choice::no_choice(here)),
                    };
                    let assigns = choice::assigns(&st.assign, rule_assign, &raw, env, here)?;
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
        fail: &FailOp,
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
        match r.and_then(|(out, assigns)| self.assign_vars(plan, fid, assigns).map(|()| out)) {
            Ok(out) => self.advance(plan, fid, next, out),
            Err(e) => self.state_error(plan, fid, e),
        }
    }

    fn choose(
        &mut self,
        plan: &Plan,
        fid: u32,
        r: Result<(StateId, Sized, Assigned), Failure>,
    ) -> Flow {
        match r.and_then(|(next, out, assigns)| {
            self.assign_vars(plan, fid, assigns).map(|()| (next, out))
        }) {
            Ok((next, out)) => self.advance(plan, fid, next, out),
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
                if self.history.is_some() {
                    let limits = (timeout, heartbeat);
                    self.note_task_scheduled(
                        fid,
                        &t.resource,
                        &input,
                        limits,
                        credentials.as_ref(),
                    );
                }
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
            let frame = self.child_frame(plan, fid, false);
            let child = self.spawn(start, input.clone(), jid, i as u32, frame);
            self.join_mut(jid).children.push(child);
        }
        if self.history.is_some() {
            self.note_parallel_started(fid, jid);
        }
        Flow::Stop
    }

    pub(super) fn advance(&mut self, plan: &Plan, fid: u32, next: StateId, out: Sized) -> Flow {
        self.leave(plan, fid, next, out, false)
    }

    /// Leaves the fiber's state for `next` with `out`, which a Catch produced when `caught`
    /// (the state counts as caught, not as succeeded).
    pub(super) fn leave(
        &mut self,
        plan: &Plan,
        fid: u32,
        next: StateId,
        mut out: Sized,
        caught: bool,
    ) -> Flow {
        let name = &plan.state(self.fibers[fid as usize].state).name;
        if let Err(e) = out.check(name, Handling::ByNameOnly) {
            return self.fiber_failed(plan, fid, e);
        }
        if let Some(c) = &self.counts {
            let f = &self.fibers[fid as usize];
            let ms = self.now - f.entered_ms;
            if caught {
                c.caught(f.state, ms);
            } else {
                c.succeeded(f.state, ms);
            }
        }
        self.events += 1; // ...StateExited
        if self.history.is_some() {
            self.note_exited(plan, fid, &out.value);
        }
        if next == END {
            self.fiber_done(plan, fid, out);
            return Flow::Stop;
        }
        let f = &mut self.fibers[fid as usize];
        f.state = next;
        f.input = out;
        f.phase = Phase::Enter;
        Flow::Continue
    }

    /// A task result, the end of a Wait, or the children's results.
    pub(super) fn resume(&mut self, plan: &Plan, fid: u32) -> Flow {
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
                match r
                    .and_then(|(out, assigns)| self.assign_vars(plan, fid, assigns).map(|()| out))
                {
                    Ok(out) => self.advance(plan, fid, st.next, out),
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
                    if self.history.is_some() {
                        self.note_run_succeeded(plan, fid);
                    }
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
                    self.assign_vars(plan, fid, assigns)
                        .map(|()| out)
                        .map_err(|e| (e, None))
                });
                match r {
                    Ok(out) => self.advance(plan, fid, st.next, out),
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
