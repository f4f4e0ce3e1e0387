//! Map: reading the items (`ItemsPath` or `Items`), batching them (`ItemBatcher`), starting
//! iterations as `MaxConcurrency`, AWS's own caps and the shared `MapBudget` allow, giving
//! each its input (`ItemSelector`), and tolerating failed iterations.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::json::{Value, encoded_len};
use crate::plan::{BatchLimitOp, DynamicOp, ItemBatcherOp, MapOp, Plan, StateOp, TemplateOp};

use super::Execution;
use super::data::{self, Env, Failure, Handling, Here, PAYLOAD_LIMIT, Sized, display};
use super::fiber::{Flow, Join, JoinKind, Phase};
use super::query::{self, States};

/// Concurrent Map iterations AWS runs for an inline Map, whatever `MaxConcurrency` says.
pub const INLINE_MAP_CONCURRENCY: u32 = 40;
/// Concurrent child executions of a distributed Map on AWS.
pub const DISTRIBUTED_MAP_CONCURRENCY: u32 = 10_000;

/// Map iterations that executions sharing it may run at once, beyond the first of each Map
/// state (tokens, taken when an iteration starts and given back when it ends). Taken and
/// given back only by the executions of one thread (a shard's), read by any (metrics): so a
/// plain load and store, no locked read-modify-write per iteration.
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
        match self.free.load(Ordering::Relaxed).checked_sub(1) {
            Some(left) => {
                self.free.store(left, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    pub(super) fn give_back(&self, n: u32) {
        let free = self.free.load(Ordering::Relaxed) + n as usize;
        self.free.store(free, Ordering::Relaxed);
    }
}

impl Execution {
    /// Iteration `slot` of join `jid` failed with `failure`. A Map that tolerates it
    /// (`ToleratedFailureCount`, `ToleratedFailurePercentage`) keeps the error output as the
    /// iteration's result (`None`); otherwise the error its Map or Parallel state fails with:
    /// the child's own, or `States.ExceedToleratedFailureThreshold` beyond a tolerance.
    pub(super) fn tolerate(&mut self, jid: u32, slot: u32, failure: Failure) -> Option<Failure> {
        let j = self.join_mut(jid);
        let JoinKind::Map {
            tolerated_count,
            tolerated_pct,
            failures,
            ..
        } = &mut j.kind
        else {
            return Some(failure);
        };
        if failure.handling == Handling::Terminal {
            return Some(failure);
        }
        *failures += 1;
        let pct = *failures as f64 * 100.0 / j.total.max(1) as f64;
        if *failures <= *tolerated_count && pct <= *tolerated_pct {
            j.results[slot as usize] = failure.to_error_output();
            j.remaining -= 1;
            return None;
        }
        if *tolerated_count > 0 || *tolerated_pct > 0.0 {
            return Some(Failure::new(
                "States.ExceedToleratedFailureThreshold",
                "The specified tolerated failure threshold was exceeded",
                Handling::Normal,
            ));
        }
        Some(failure)
    }

    /// Gives back a token when more are held than iterations run beyond the first.
    pub(super) fn settle_tokens(&mut self, jid: u32) {
        let j = self.join_mut(jid);
        if j.tokens > j.running.saturating_sub(1) {
            j.tokens -= 1;
            self.give_back_tokens(1);
        }
    }

    pub(super) fn give_back_tokens(&mut self, n: u32) {
        if n > 0
            && let Some(b) = &self.map_budget
        {
            b.give_back(n);
            self.map_tokens -= n;
        }
    }

    /// Starts Map items while there is room, and resumes the parent when all are done.
    pub(super) fn pump_join(&mut self, plan: &Plan, jid: u32) {
        loop {
            let j = self.join_mut(jid);
            if j.remaining == 0 {
                if self.history.is_some() {
                    self.note_join_done(jid);
                }
                let join = self.take_join(jid);
                let f = &mut self.fibers[join.fiber as usize];
                f.resume = Some(Ok(Sized {
                    value: Value::array_within(join.results, join.bound),
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
                self.fail_join(plan, jid, e);
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
        let start = plan.machines[m.processor as usize];
        let frame = self.child_frame(plan, fiber, m.distributed);
        let child = self.spawn(start, input, jid, index, frame);
        self.fibers[child as usize].phase = Phase::Iterate;
        self.join_mut(jid).children.push(child);
        Ok(())
    }

    pub(super) fn start_map(&mut self, plan: &Plan, fid: u32, m: &MapOp, raw: Sized) -> Flow {
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
        if self.history.is_some() {
            self.note_map_started(fid, jid, total);
        }
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

/// `ItemBatcher`: groups items into `{"Items": [...], "BatchInput": ...}` batches of at most
/// `MaxItemsPerBatch` items and `MaxInputBytesPerBatch` bytes.
fn batch_items(items: &Value, batcher: &ItemBatcherOp, doc: &Value) -> Result<Value, String> {
    let max_items = batch_limit(&batcher.max_items, doc)?.unwrap_or(u64::MAX);
    let max_bytes = batch_limit(&batcher.max_bytes, doc)?.unwrap_or(PAYLOAD_LIMIT);
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
                if let Some(bi) = &batcher.batch_input {
                    pairs.push(("BatchInput", bi.clone()));
                }
                Value::object_from(pairs)
            })
            .collect(),
    ))
}

/// One limit of an `ItemBatcher` (`None`: not set), with the Map state's effective input.
fn batch_limit(limit: &BatchLimitOp, doc: &Value) -> Result<Option<u64>, String> {
    match limit {
        BatchLimitOp::Unset => Ok(None),
        BatchLimitOp::Fixed(n) => Ok(Some(*n)),
        BatchLimitOp::Invalid(e) => Err(e.to_string()),
        BatchLimitOp::Path { field, path } => {
            let v = path
                .select(doc)
                .map_err(|e| format!("ItemBatcher.{field}: {e}"))?;
            v.value()
                .as_i64()
                .filter(|n| *n > 0)
                .map(|n| Some(n as u64))
                .ok_or_else(|| format!("ItemBatcher.{field} must reference a positive integer"))
        }
    }
}
