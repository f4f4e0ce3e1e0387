//! The driver: runs many executions of one plan on one thread (a shard), performing what
//! they ask for. An execution that needs nothing from the outside (the common case for
//! transform workflows) finishes inside `start` without touching the async machinery; one
//! that waits is kept in a slot until its task results arrive (from futures spawned on the
//! thread's tokio runtime) or its wake-up time passes. Thousands can wait at once: a waiting
//! execution costs its slot and one heap entry, no thread and no task.
//!
//! Timers are cancelable: an execution has at most one live entry in the heap (the wake-up
//! time it last asked for), an entry whose execution moved on or finished is dead, and the
//! heap is compacted when dead entries outnumber the live ones. So timer memory follows what
//! is in flight: every Express execution that waits asks to be woken at its 5-minute
//! deadline, and without reclaiming, one execution hung for 30 s would keep the deadline of
//! every execution started after it (about 2.7 million entries at 90k/s).
//!
//! Time comes from the driver's `Clock` (tokio's clock from a wall-clock anchor), so tests
//! run Waits, Retry backoff and time-outs on virtual time.
//!
//! An execution started with `history` records its history events (`exec::HistoryEvent`),
//! handed over in `Finished::history`; the others record nothing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::exec::{
    Execution, HistoryEvent, Identity, MapBudget, Outcome, Poll, Recording, Start, StateCounts,
    TaskError, TaskRequest, TaskToken,
};
use crate::json::{Str, Value};
use crate::plan::Plan;
use crate::tasks::{Registry, Reply, TaskCall};
use crate::time::{Clock, Timestamp};

/// A finished execution and what the caller attached to it.
#[derive(Debug)]
pub struct Finished<T> {
    pub tag: T,
    pub name: Str,
    pub outcome: Outcome,
    /// When it started and ended (ms since the epoch).
    pub started_ms: i64,
    pub stopped_ms: i64,
    /// States entered.
    pub transitions: u64,
    /// Its history events, when it was started with `history` (else empty).
    pub history: Vec<HistoryEvent>,
    /// The top-level state whose error failed it, if one did.
    pub failed_state: Option<Str>,
}

struct Running<T> {
    exec: Execution,
    /// The plan and resources of an execution that brought its own (API jobs); `None` runs
    /// the driver's.
    own: Option<Program>,
    tag: T,
    started_ms: i64,
    /// Bumped when the slot is reused, so stale timers and results are dropped.
    generation: u32,
    /// The wake-up time of this execution's live timer entry, if it has one.
    armed: Option<i64>,
}

/// Wake-up times of waiting executions: (time, slot, generation), earliest first.
#[derive(Default)]
struct Timers {
    heap: BinaryHeap<Reverse<(i64, u32, u32)>>,
    /// Executions with a live entry (`Running::armed`).
    live: usize,
}

impl Timers {
    /// Dead entries allowed beyond the live ones before the heap is compacted; compacting
    /// when dead entries outnumber live ones keeps the cost amortised O(log n) per push.
    const SLACK: usize = 64;

    fn needs_compaction(&self) -> bool {
        self.heap.len() > 2 * self.live + Self::SLACK
    }
}

type Completion = (u32, u32, TaskToken, Result<Value, TaskError>);

/// A workflow to run and the resources its Tasks call.
#[derive(Clone)]
pub struct Program {
    pub plan: Arc<Plan>,
    pub registry: Arc<Registry>,
    /// Where its executions on this driver count what their states do (sized for `plan`,
    /// written by this driver's thread only).
    pub counts: Option<Arc<StateCounts>>,
}

/// Runs executions of one plan.
pub struct Driver<T> {
    plan: Arc<Plan>,
    registry: Arc<Registry>,
    identity: Identity,
    slots: Vec<Option<Running<T>>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    timers: Timers,
    clock: Clock,
    tx: mpsc::UnboundedSender<Completion>,
    rx: mpsc::UnboundedReceiver<Completion>,
    requests: Vec<TaskRequest>,
    running: usize,
    map_budget: Option<Arc<MapBudget>>,
    /// Executions (slot, generation) whose Maps wait for tokens of `map_budget`.
    starved: Vec<(u32, u32)>,
    /// Where executions of the driver's own plan count what their states do.
    counts: Option<Arc<StateCounts>>,
    /// A context object every execution started sees instead of its own (TestState).
    context: Option<Value>,
}

/// The current time in ms since the epoch.
pub fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}

impl<T> Driver<T> {
    pub fn new(plan: Arc<Plan>, registry: Arc<Registry>) -> Driver<T> {
        let (tx, rx) = mpsc::unbounded_channel();
        Driver {
            plan,
            registry,
            identity: Identity::default(),
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            timers: Timers::default(),
            clock: Clock::system(),
            tx,
            rx,
            requests: Vec::new(),
            running: 0,
            map_budget: None,
            starved: Vec::new(),
            counts: None,
            context: None,
        }
    }

    /// Gives every execution started from now on `context` as its whole context object
    /// (`$$`, `$states.context`) instead of the one it knows: TestState's `context`.
    pub fn set_context(&mut self, context: Option<Value>) {
        self.context = context;
    }

    /// Counts what the states of the driver's plan do in `counts` (sized for that plan),
    /// for every execution started from now on; `None` stops counting.
    pub fn set_state_counts(&mut self, counts: Option<Arc<StateCounts>>) {
        self.counts = counts.filter(|c| c.len() == self.plan.states.len());
    }

    /// Reads the time from `clock` from now on.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// Entries in the timer heap, live and not yet reclaimed (at most about twice the
    /// executions waiting for a time).
    pub fn timer_entries(&self) -> usize {
        self.timers.heap.len()
    }

    /// Bounds the Map iterations of all executions this driver starts from now on (beyond
    /// the first of each Map state).
    pub fn set_map_budget(&mut self, budget: Option<Arc<MapBudget>>) {
        self.map_budget = budget;
    }

    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Executions started and not yet finished.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Starts an execution and runs it as far as it goes; returns it if it already ended.
    /// Needs a tokio runtime on this thread only when a resource answers later.
    pub fn start(
        &mut self,
        tag: T,
        name: Str,
        input: Value,
        input_len: Option<usize>,
    ) -> Option<Finished<T>> {
        self.start_program(tag, name, input, input_len, None, Recording::Off)
    }

    /// Starts an execution of `own`'s plan (the driver's when `None`) with the ARNs it is
    /// known by, and runs it as far as it goes; `history`: what to record of its history
    /// events (`Finished::history`).
    pub fn start_program(
        &mut self,
        tag: T,
        name: Str,
        input: Value,
        input_len: Option<usize>,
        own: Option<(Program, Arc<(Str, Str)>)>,
        history: Recording,
    ) -> Option<Finished<T>> {
        let now = self.clock.now_ms();
        let mut start = Start::new(&name, input, now);
        start.input_len = input_len;
        start.history = history;
        start.identity = self.identity.clone();
        start.map_budget = self.map_budget.clone();
        start.context = self.context.clone();
        let (own, exec) = match own {
            None => {
                start.counts = self.counts.clone();
                (None, Execution::new(&self.plan, start))
            }
            Some((program, arns)) => {
                start.arns = Some(arns);
                start.counts = program
                    .counts
                    .clone()
                    .filter(|c| c.len() == program.plan.states.len());
                let exec = Execution::new(&program.plan, start);
                (Some(program), exec)
            }
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.generations[slot as usize].wrapping_add(1);
        self.generations[slot as usize] = generation;
        self.slots[slot as usize] = Some(Running {
            exec,
            own,
            tag,
            started_ms: now,
            generation,
            armed: None,
        });
        self.running += 1;
        self.advance(slot, now)
    }

    /// Polls the execution in `slot` until it waits or ends; `now` is the current time.
    fn advance(&mut self, slot: u32, mut now: i64) -> Option<Finished<T>> {
        loop {
            let running = self.slots[slot as usize].as_mut()?;
            let (plan, registry) = match &running.own {
                Some(p) => (&*p.plan, &*p.registry),
                None => (&*self.plan, &*self.registry),
            };
            let poll = running.exec.poll(plan, now, &mut self.requests);
            let generation = running.generation;
            if running.exec.newly_starved() {
                self.starved.push((slot, generation));
            }
            let mut answered = false;
            for req in self.requests.drain(..) {
                let call = TaskCall::new(running.exec.name(), &req);
                match registry.invoke(call) {
                    Reply::Ready(result) => {
                        running.exec.complete(req.token, result);
                        answered = true;
                    }
                    Reply::Later(fut) => {
                        let tx = self.tx.clone();
                        let token = req.token;
                        tokio::spawn(async move {
                            let result = fut.await;
                            let _ = tx.send((slot, generation, token, result));
                        });
                    }
                }
            }
            match poll {
                Poll::Done(outcome) => return Some(self.finish(slot, outcome, now)),
                Poll::Pending { wake_at } => {
                    if answered {
                        now = self.clock.now_ms();
                        continue;
                    }
                    if running.armed != wake_at {
                        // The old entry (if any) is dead from here on.
                        match (running.armed, wake_at) {
                            (None, Some(_)) => self.timers.live += 1,
                            (Some(_), None) => self.timers.live -= 1,
                            _ => {}
                        }
                        running.armed = wake_at;
                        if let Some(t) = wake_at {
                            self.timers.heap.push(Reverse((t, slot, generation)));
                            if self.timers.needs_compaction() {
                                self.compact_timers();
                            }
                        }
                    }
                    return None;
                }
            }
        }
    }

    fn finish(&mut self, slot: u32, outcome: Outcome, now: i64) -> Finished<T> {
        let mut running = self.slots[slot as usize]
            .take()
            .expect("finishing a running slot");
        self.free.push(slot);
        self.running -= 1;
        if running.armed.is_some() {
            self.timers.live -= 1;
            if self.timers.needs_compaction() {
                self.compact_timers();
            }
        }
        match &running.own {
            Some(p) => p.registry.finished(running.exec.name()),
            None => self.registry.finished(running.exec.name()),
        }
        let plan = running.own.as_ref().map_or(&*self.plan, |p| &*p.plan);
        Finished {
            failed_state: running.exec.failed_state(plan).cloned(),
            name: running.exec.name().clone(),
            transitions: running.exec.transitions(),
            history: running.exec.take_history(),
            tag: running.tag,
            outcome,
            started_ms: running.started_ms,
            stopped_ms: now,
        }
    }

    fn live(&self, slot: u32, generation: u32) -> bool {
        matches!(&self.slots[slot as usize], Some(r) if r.generation == generation)
    }

    /// Whether a timer entry is still wanted: its execution runs and waits for that time.
    fn timer_live(slots: &[Option<Running<T>>], (t, slot, generation): (i64, u32, u32)) -> bool {
        matches!(&slots[slot as usize], Some(r) if r.generation == generation && r.armed == Some(t))
    }

    /// Drops every dead entry.
    fn compact_timers(&mut self) {
        let slots = &self.slots;
        self.timers
            .heap
            .retain(|Reverse(e)| Self::timer_live(slots, *e));
    }

    /// The next wake-up time among waiting executions.
    fn next_timer(&mut self) -> Option<i64> {
        while let Some(Reverse(e)) = self.timers.heap.peek().copied() {
            if Self::timer_live(&self.slots, e) {
                return Some(e.0);
            }
            self.timers.heap.pop();
        }
        None
    }

    /// Ends every running execution whose tag `stop` picks, with `outcome`; they go to
    /// `out`. (StopExecution: the execution may be waiting for days.)
    pub fn stop_where(
        &mut self,
        stop: impl Fn(&T) -> bool,
        outcome: impl Fn() -> Outcome,
        out: &mut Vec<Finished<T>>,
    ) {
        let now = self.clock.now_ms();
        for slot in 0..self.slots.len() as u32 {
            if matches!(&self.slots[slot as usize], Some(r) if stop(&r.tag)) {
                out.push(self.finish(slot, outcome(), now));
            }
        }
    }

    /// The history recorded so far by the running execution `pick` chooses (the first), if
    /// one is running.
    pub fn history_so_far(&self, pick: impl Fn(&T) -> bool) -> Option<Vec<HistoryEvent>> {
        self.slots
            .iter()
            .flatten()
            .find(|r| pick(&r.tag))
            .map(|r| r.exec.history_so_far())
    }

    /// Handles whatever is due now without waiting; finished executions go to `out`.
    pub fn run_due(&mut self, out: &mut Vec<Finished<T>>) {
        while let Ok((slot, generation, token, result)) = self.rx.try_recv() {
            self.deliver(slot, generation, token, result, out);
        }
        let now = self.clock.now_ms();
        while let Some(Reverse(e)) = self.timers.heap.peek().copied() {
            if e.0 > now {
                break;
            }
            self.timers.heap.pop();
            if !Self::timer_live(&self.slots, e) {
                continue;
            }
            if let Some(r) = self.slots[e.1 as usize].as_mut() {
                r.armed = None;
                self.timers.live -= 1;
            }
            if let Some(f) = self.advance(e.1, now) {
                out.push(f);
            }
        }
        self.feed_starved(out);
    }

    /// Lets executions whose Maps waited for tokens start more items once tokens are free
    /// (given back by any execution of this driver), oldest first.
    fn feed_starved(&mut self, out: &mut Vec<Finished<T>>) {
        let Some(budget) = &self.map_budget else {
            return;
        };
        if self.starved.is_empty() || budget.available() == 0 {
            return;
        }
        let budget = Arc::clone(budget);
        let waiting = std::mem::take(&mut self.starved);
        let now = self.clock.now_ms();
        for (k, &(slot, generation)) in waiting.iter().enumerate() {
            if budget.available() == 0 {
                self.starved.extend_from_slice(&waiting[k..]);
                break;
            }
            if !self.live(slot, generation) {
                continue;
            }
            if let Some(r) = self.slots[slot as usize].as_mut() {
                let plan = r.own.as_ref().map_or(&*self.plan, |p| &*p.plan);
                r.exec.feed(plan);
            }
            if let Some(f) = self.advance(slot, now) {
                out.push(f);
            }
        }
    }

    fn deliver(
        &mut self,
        slot: u32,
        generation: u32,
        token: TaskToken,
        result: Result<Value, TaskError>,
        out: &mut Vec<Finished<T>>,
    ) {
        if !self.live(slot, generation) {
            return;
        }
        if let Some(r) = self.slots[slot as usize].as_mut() {
            r.exec.complete(token, result);
        }
        let now = self.clock.now_ms();
        if let Some(f) = self.advance(slot, now) {
            out.push(f);
        }
    }

    /// Waits until a task result arrives or a timer is due, then handles everything due.
    /// Returns at once when nothing is running.
    pub async fn wait(&mut self, out: &mut Vec<Finished<T>>) {
        if self.running == 0 {
            return;
        }
        let next = self.next_timer();
        let clock = self.clock;
        let sleep = async move {
            match next {
                Some(t) => tokio::time::sleep_until(clock.instant_at(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some((slot, generation, token, result)) = self.rx.recv() => {
                self.deliver(slot, generation, token, result, out);
            }
            _ = sleep => {}
        }
        self.run_due(out);
    }
}

/// Runs one execution to its end on the current thread.
pub fn run_one(
    plan: Arc<Plan>,
    registry: Arc<Registry>,
    name: &str,
    input: Value,
    input_len: Option<usize>,
) -> Finished<()> {
    run_one_in_context(plan, registry, name, input, input_len, None)
}

/// `run_one` with `context` given whole as the execution's context object (TestState).
pub fn run_one_in_context(
    plan: Arc<Plan>,
    registry: Arc<Registry>,
    name: &str,
    input: Value,
    input_len: Option<usize>,
    context: Option<Value>,
) -> Finished<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for this thread");
    rt.block_on(async {
        let mut driver = Driver::new(plan, registry);
        driver.set_context(context);
        if let Some(f) = driver.start((), Str::new(name), input, input_len) {
            return f;
        }
        let mut out = Vec::new();
        loop {
            driver.wait(&mut out).await;
            if let Some(f) = out.pop() {
                return f;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::{MachineType, load};
    use crate::tasks::{Resource, mock::MockFile};

    fn plan(def: &str) -> Arc<Plan> {
        Arc::new(crate::plan::compile(
            &load(def.as_bytes(), MachineType::Express).unwrap(),
            "m",
        ))
    }

    /// Answers after a delay, like a remote service.
    struct Slow(u64);
    impl Resource for Slow {
        fn invoke(&self, call: TaskCall) -> Reply {
            let ms = self.0;
            Reply::Later(Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(call.input)
            }))
        }
    }

    /// Runs one execution to its end on the (paused) runtime of the calling test.
    async fn finish_one(d: &mut Driver<()>, input: Value) -> Finished<()> {
        if let Some(f) = d.start((), Str::new("e"), input, None) {
            return f;
        }
        let mut out = Vec::new();
        loop {
            d.wait(&mut out).await;
            if let Some(f) = out.pop() {
                return f;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn later_results_and_retry_intervals_on_virtual_time() {
        let def = r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:f","Retry":[{"ErrorEquals":["Flaky"],"IntervalSeconds":1}],"Next":"S"},
            "S":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:slow","End":true}}}"#;
        let mut reg = Registry::new();
        reg.mock(Arc::new(
            MockFile::parse(br#"{"MockedResponses":{"T":{"0":{"Throw":{"Error":"Flaky","Cause":""}},"1":{"Return":{"v":1}}}}}"#)
                .unwrap(),
        ));
        reg.bind(
            "arn:aws:lambda:us-east-1:1:function:slow",
            Arc::new(Slow(50)),
        );
        let mut d: Driver<()> = Driver::new(plan(def), Arc::new(reg));
        d.set_clock(Clock::starting_at(1_000_000));
        let wall = std::time::Instant::now();
        let f = finish_one(&mut d, Value::Null).await;
        assert_eq!(
            f.outcome,
            Outcome::Succeeded(crate::json::parse(br#"{"v":1}"#).unwrap())
        );
        // One second of backoff and 50 ms of task, on the driver's clock exactly.
        assert_eq!((f.started_ms, f.stopped_ms), (1_000_000, 1_001_050));
        assert_eq!(f.transitions, 2);
        // Virtual time: nothing slept for real.
        assert!(wall.elapsed() < std::time::Duration::from_millis(900));
    }

    #[tokio::test(start_paused = true)]
    async fn a_history_comes_with_the_finished_execution_only_when_asked() {
        let def = r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:f","Retry":[{"ErrorEquals":["Flaky"],"IntervalSeconds":1}],"Next":"S"},
            "S":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:slow","End":true}}}"#;
        let mut reg = Registry::new();
        reg.mock(Arc::new(
            MockFile::parse(br#"{"MockedResponses":{"T":{"0":{"Throw":{"Error":"Flaky","Cause":"c"}},"1":{"Return":{"v":1}}}}}"#)
                .unwrap(),
        ));
        reg.bind(
            "arn:aws:lambda:us-east-1:1:function:slow",
            Arc::new(Slow(50)),
        );
        let mut d: Driver<()> = Driver::new(plan(def), Arc::new(reg));
        d.set_clock(Clock::starting_at(1_000_000));
        assert!(
            d.start_program((), Str::new("e"), Value::Null, None, None, Recording::Full)
                .is_none()
        );
        let mut out = Vec::new();
        while out.is_empty() {
            d.wait(&mut out).await;
        }
        let f = out.pop().unwrap();
        let kinds: Vec<(&str, u64, u64, i64)> = f
            .history
            .iter()
            .map(|e| (e.kind, e.id, e.previous_id, e.timestamp_ms - 1_000_000))
            .collect();
        assert_eq!(
            kinds,
            [
                ("ExecutionStarted", 1, 0, 0),
                ("TaskStateEntered", 2, 0, 0),
                ("LambdaFunctionScheduled", 3, 2, 0),
                ("LambdaFunctionStarted", 4, 3, 0),
                ("LambdaFunctionFailed", 5, 4, 0),
                ("LambdaFunctionScheduled", 6, 5, 1000),
                ("LambdaFunctionStarted", 7, 6, 1000),
                ("LambdaFunctionSucceeded", 8, 7, 1000),
                ("TaskStateExited", 9, 8, 1000),
                ("TaskStateEntered", 10, 9, 1000),
                ("LambdaFunctionScheduled", 11, 10, 1000),
                ("LambdaFunctionStarted", 12, 11, 1000),
                // The slow task's result takes the time it arrived at.
                ("LambdaFunctionSucceeded", 13, 12, 1050),
                ("TaskStateExited", 14, 13, 1050),
                ("ExecutionSucceeded", 15, 14, 1050),
            ]
        );
        // Not asked: nothing recorded.
        let f = finish_one(&mut d, Value::Null).await;
        assert!(matches!(f.outcome, Outcome::Succeeded(_)));
        assert!(f.history.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn many_executions_wait_at_once_on_one_thread() {
        let def = r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":1,"End":true}}}"#;
        let mut d: Driver<u32> = Driver::new(plan(def), Arc::new(Registry::new()));
        d.set_clock(Clock::starting_at(0));
        for i in 0..5000 {
            assert!(
                d.start(i, Str::new("e"), Value::int(i as i64), None)
                    .is_none()
            );
        }
        assert_eq!(d.running(), 5000);
        let mut done = Vec::new();
        while d.running() > 0 {
            d.wait(&mut done).await;
        }
        assert_eq!(done.len(), 5000);
        assert!(done.iter().all(|f| f.stopped_ms == 1000));
        let mut tags: Vec<u32> = done.iter().map(|f| f.tag).collect();
        tags.sort_unstable();
        assert_eq!(tags, (0..5000).collect::<Vec<_>>());
    }

    /// Never answers, like a service that hangs.
    struct Hang;
    impl Resource for Hang {
        fn invoke(&self, _: TaskCall) -> Reply {
            Reply::Later(Box::pin(std::future::pending()))
        }
    }

    /// Regression (issue 11): timers were removed only from the top of the heap, so one
    /// hung execution (its deadline at the top) kept the 5-minute deadline of every
    /// execution started after it, long after they had finished.
    #[tokio::test(start_paused = true)]
    async fn a_million_finished_executions_leave_only_the_in_flight_timers() {
        let def = r#"{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.hang","BooleanEquals":true,"Next":"H"}],"Default":"T"},
            "H":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:hang","End":true},
            "T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:quick","End":true}}}"#;
        let mut reg = Registry::new();
        reg.bind("arn:aws:lambda:us-east-1:1:function:hang", Arc::new(Hang));
        reg.bind(
            "arn:aws:lambda:us-east-1:1:function:quick",
            Arc::new(Slow(0)),
        );
        let mut d: Driver<u32> = Driver::new(plan(def), Arc::new(reg));
        let hang = crate::json::parse(br#"{"hang":true}"#).unwrap();
        assert!(d.start(0, Str::new("hung"), hang, None).is_none());
        let (total, in_flight) = (1_000_000u32, 100usize);
        let (mut started, mut finished, mut most) = (0u32, 0u32, 0usize);
        let mut done = Vec::new();
        while finished < total {
            while started < total && d.running() < in_flight + 1 {
                let input = Value::object_from([("hang", Value::Bool(false))]);
                assert!(d.start(started + 1, Str::new("e"), input, None).is_none());
                started += 1;
            }
            d.wait(&mut done).await;
            finished += done.len() as u32;
            done.clear();
            most = most.max(d.timer_entries());
        }
        // Every execution armed its deadline once, behind the hung one's; at most the
        // in-flight ones (twice over, before compaction) and the slack remain.
        assert!(
            most <= 2 * (in_flight + 1) + Timers::SLACK,
            "{most} entries"
        );
        assert_eq!(d.running(), 1, "the hung execution still waits");
        assert!(d.timer_entries() <= 2 + Timers::SLACK);
    }
}
