//! The execution engine.
//!
//! # Execution state is data
//! An [`Execution`] is plain data (serde): the definition source, the execution's identity and
//! input, its status, its [`History`], the transition count, and a tree of *frames*. A frame is
//! one thread of control inside one (sub) state machine: the top level, a Parallel branch or a
//! Map iteration. It holds the current state (by index), the raw state input, the workflow
//! variables visible to it, the retry counters of the current state, and what it is doing:
//! about to enter a state, attempting a Task/Parallel/Map, sleeping until an absolute time
//! (Wait state, retry interval), waiting for a task-token callback (with absolute timeout and
//! heartbeat deadlines), fanning out to child frames, or done. Nothing is a suspended Rust
//! future, so a parked execution can be serialised ([`Execution::to_json`]), kept in a durable
//! store, read back after a restart ([`Execution::from_json`]) and resumed.
//!
//! # Driving an execution
//! - [`Execution::start`] records `ExecutionStarted`; nothing runs yet.
//! - [`Execution::advance`] runs everything that can run *now* (per the [`Clock`]) and returns
//!   when the execution has finished or every frame is blocked on a future time or a callback.
//! - [`Execution::next_wakeup`] is the earliest absolute time at which a blocked frame becomes
//!   runnable (end of a Wait, end of a retry interval, a task timeout or heartbeat deadline, the
//!   execution's own `TimeoutSeconds`). A scheduler calls `advance` again at that time: timeouts
//!   of parked `.waitForTaskToken` tasks fire when `advance` runs with the clock past them, even
//!   for an execution that was serialised and read back in between.
//! - [`Execution::run`] = `advance`, then `clock.sleep_until(next_wakeup)`, repeatedly, until
//!   the execution finishes or only callbacks can unblock it. Under a [`crate::VirtualClock`]
//!   the sleeps are instant.
//! - [`Execution::send_task_success`] / [`Execution::send_task_failure`] /
//!   [`Execution::send_task_heartbeat`] deliver callbacks; call `advance`/`run` afterwards.
//!
//! Branches and iterations run one after the other in a single task (deterministic order;
//! each runs until it blocks), which is observably the same as the service's concurrency for
//! everything but wall-clock timing. `MaxConcurrency` bounds how many iterations are in flight.
//!
//! # State transitions
//! Counted as Step Functions bills Standard workflows: one transition each time a state is
//! entered (states inside Parallel branches and Map iterations included), plus one for every
//! retry attempt of a Task, Parallel or Map state. Starting and finishing the execution are not
//! transitions.

use crate::clock::Clock;
use crate::definition::{
    Definition, Kind, MapSpec, NumberField, PathField, State, StateMachine, TaskSpec, WaitSpec,
};
use crate::error::{ApiError, Failure};
use crate::expr::{self, CompiledPath, Env, ExprError, Template};
use crate::history::{Details, Field, Fields, History, HistoryDetail, HistoryEvent, Shared};
use crate::resource::{self, IntegrationPattern, ResourceKind, ResourceResolver, TaskRequest};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

/// How an execution is started.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Execution name (default: a random UUID).
    pub name: Option<String>,
    /// State machine ARN (default: `arn:aws:states:us-east-1:123456789012:stateMachine:local`).
    pub state_machine_arn: Option<String>,
    /// `$$.Execution.RoleArn`.
    pub role_arn: Option<String>,
    /// How much payload the history keeps.
    pub history: HistoryDetail,
    /// Keep the list of entered state names ([`Execution::states_entered`]).
    pub record_states_entered: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            name: None,
            state_machine_arn: None,
            role_arn: None,
            history: HistoryDetail::Full,
            record_states_entered: true,
        }
    }
}

/// Status of an execution, as `DescribeExecution` words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl ExecutionStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Aborted => "ABORTED",
        }
    }
}

/// Identity and input of an execution (what `$$.Execution` shows).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutionInfo {
    pub execution_arn: String,
    pub name: String,
    pub state_machine_arn: String,
    pub state_machine_name: String,
    pub role_arn: String,
    pub start_time: Timestamp,
    pub input: Value,
}

/// What a frame does next.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Step {
    /// Enter `frame.state` with `frame.input`.
    Enter,
    /// Run (or re-run, after a retry interval) the body of a Task, Parallel or Map state.
    Attempt,
    /// Blocked until `until`.
    Sleep { until: Timestamp, after: AfterSleep },
    /// A `.waitForTaskToken` task waiting for its callback.
    Callback(Box<Waiting>),
    /// Parallel branches / Map iterations in flight.
    Fanout(Box<Fanout>),
    /// The frame's machine finished (Succeed/End) or failed (unhandled error).
    Done(Result<Shared, Failure>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum AfterSleep {
    /// A Wait state's time is up: leave it with this effective input.
    WaitDone(Shared),
    /// A retry interval is over: attempt again.
    Retry,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Waiting {
    token: String,
    resource: String,
    lambda: bool,
    timeout_at: Option<Timestamp>,
    heartbeat_at: Option<Timestamp>,
    heartbeat_seconds: Option<u64>,
    outcome: Option<Result<Value, Failure>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Fanout {
    map: bool,
    /// Inputs of branches/items not started yet (`Null` once started).
    pending: Vec<Value>,
    next: usize,
    active: Vec<Child>,
    results: Vec<Value>,
    max_concurrency: usize,
    tolerated_count: Option<u64>,
    tolerated_percentage: Option<f64>,
    failures: u64,
    /// Effective input for a Map's ItemSelector (when it has one).
    selector_input: Option<Value>,
    /// Branch machines (Parallel) or the item processor (Map).
    machines: Vec<usize>,
    started_event: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Child {
    index: usize,
    frame: Frame,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Frame {
    machine: usize,
    state: usize,
    input: Shared,
    step: Step,
    entered_event: u64,
    last_event: u64,
    entered_time: Timestamp,
    retry_counts: Vec<u32>,
    retry_total: u32,
    vars: Map<String, Value>,
}

impl Frame {
    fn new(
        machine: usize,
        state: usize,
        input: Value,
        vars: Map<String, Value>,
        last_event: u64,
        now: Timestamp,
    ) -> Frame {
        Frame {
            machine,
            state,
            input: Shared::new(input),
            step: Step::Enter,
            entered_event: 0,
            last_event,
            entered_time: now,
            retry_counts: Vec::new(),
            retry_total: 0,
            vars,
        }
    }
}

/// Bookkeeping shared by all frames of an execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Core {
    info: ExecutionInfo,
    history: History,
    transitions: u64,
    states_entered: Option<Vec<String>>,
}

/// One execution of a state machine. See the module docs.
#[derive(Debug, Clone)]
pub struct Execution {
    machine: StateMachine,
    core: Core,
    status: ExecutionStatus,
    output: Option<Shared>,
    failure: Option<Failure>,
    root: Frame,
    deadline: Option<Timestamp>,
    stop_time: Option<Timestamp>,
}

/// An execution as written: the definition either embedded (`machine`, [`Execution::to_json`])
/// or named by its fingerprint (`definition`, [`Execution::to_json_by_reference`]).
#[derive(Serialize)]
struct SnapshotOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    machine: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    definition: Option<&'a str>,
    core: &'a Core,
    status: ExecutionStatus,
    output: &'a Option<Shared>,
    failure: &'a Option<Failure>,
    root: &'a Frame,
    deadline: Option<Timestamp>,
    stop_time: Option<Timestamp>,
}

/// An execution as read back: see [`SnapshotOut`].
#[derive(Deserialize)]
struct SnapshotIn {
    #[serde(default)]
    machine: Option<Value>,
    #[serde(default)]
    definition: Option<String>,
    core: Core,
    status: ExecutionStatus,
    output: Option<Shared>,
    failure: Option<Failure>,
    root: Frame,
    deadline: Option<Timestamp>,
    stop_time: Option<Timestamp>,
}

/// The final or current result of an execution.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Running,
    Succeeded(Value),
    Failed(Failure),
    TimedOut(Failure),
    Aborted(Failure),
}

impl Execution {
    /// Starts an execution: records `ExecutionStarted` at `clock.now()`. Nothing runs until
    /// [`Execution::advance`] or [`Execution::run`].
    pub fn start(
        machine: &StateMachine,
        input: Value,
        options: StartOptions,
        clock: &dyn Clock,
    ) -> Execution {
        let now = clock.now();
        let name = options.name.unwrap_or_else(resource::new_uuid);
        let sm_arn = options.state_machine_arn.unwrap_or_else(|| {
            "arn:aws:states:us-east-1:123456789012:stateMachine:local".to_string()
        });
        let sm_name = sm_arn.rsplit(':').next().unwrap_or("local").to_string();
        let execution_arn = match sm_arn.split_once(":stateMachine:") {
            Some((prefix, sm)) => format!("{prefix}:execution:{sm}:{name}"),
            None => format!("{sm_arn}:execution:{name}"),
        };
        let role_arn = options
            .role_arn
            .unwrap_or_else(|| "arn:aws:iam::123456789012:role/StepFunctionsLocal".to_string());
        let mut history = History::new(options.history);
        let def = &machine.def;
        let start = def.machines[def.root].start;
        let mut root = Frame::new(def.root, start, input.clone(), Map::new(), 0, now);
        let details = Details::Fields(
            Fields::new()
                .text("roleArn", Field::Text(role_arn.clone()))
                .payload(history.payloads(), "input", &root.input),
        );
        root.last_event = history.record_details(
            now,
            "ExecutionStarted",
            0,
            Some(("executionStartedEventDetails", details)),
        );
        let deadline = def.timeout_seconds.and_then(|s| {
            now.checked_add(SignedDuration::from_secs(
                i64::try_from(s).unwrap_or(i64::MAX),
            ))
            .ok()
        });
        Execution {
            machine: machine.clone(),
            core: Core {
                info: ExecutionInfo {
                    execution_arn,
                    name,
                    state_machine_arn: sm_arn,
                    state_machine_name: sm_name,
                    role_arn,
                    start_time: now,
                    input,
                },
                history,
                transitions: 0,
                states_entered: options.record_states_entered.then(Vec::new),
            },
            status: ExecutionStatus::Running,
            output: None,
            failure: None,
            root,
            deadline,
            stop_time: None,
        }
    }

    /// Runs what can run at `clock.now()`; returns the status afterwards.
    pub async fn advance(
        &mut self,
        resolver: &dyn ResourceResolver,
        clock: &dyn Clock,
    ) -> ExecutionStatus {
        if self.status != ExecutionStatus::Running {
            return self.status;
        }
        if let Some(d) = self.deadline
            && clock.now() >= d
        {
            self.finish_timed_out(clock.now());
            return self.status;
        }
        let def: &Definition = &self.machine.def;
        let mut cx = Cx {
            def,
            core: &mut self.core,
            resolver,
            clock,
        };
        drive(&mut cx, &mut self.root).await;
        let now = clock.now();
        if let Step::Done(result) = &self.root.step {
            match result {
                Ok(v) => {
                    let v = v.clone();
                    let details = Details::Fields(Fields::new().payload(
                        self.core.history.payloads(),
                        "output",
                        &v,
                    ));
                    self.core.history.record_details(
                        now,
                        "ExecutionSucceeded",
                        self.root.last_event,
                        Some(("executionSucceededEventDetails", details)),
                    );
                    self.status = ExecutionStatus::Succeeded;
                    self.output = Some(v);
                }
                Err(f) => {
                    let details = failure_details(f);
                    self.core.history.record(
                        now,
                        "ExecutionFailed",
                        self.root.last_event,
                        Some(("executionFailedEventDetails", details)),
                    );
                    self.status = ExecutionStatus::Failed;
                    self.failure = Some(f.clone());
                }
            }
            self.stop_time = Some(now);
        } else if let Some(d) = self.deadline
            && now >= d
        {
            self.finish_timed_out(now);
        }
        self.status
    }

    /// Advances, sleeping (on `clock`) until the next wake-up each time, until the execution
    /// finishes or can only be unblocked by a callback.
    pub async fn run(
        &mut self,
        resolver: &dyn ResourceResolver,
        clock: &dyn Clock,
    ) -> ExecutionStatus {
        loop {
            let status = self.advance(resolver, clock).await;
            if status != ExecutionStatus::Running {
                return status;
            }
            match self.next_wakeup() {
                Some(t) => clock.sleep_until(t).await,
                None => return status,
            }
        }
    }

    fn finish_timed_out(&mut self, now: Timestamp) {
        let f = Failure {
            error: Some("States.Timeout".into()),
            cause: None,
        };
        self.core.history.record(
            now,
            "ExecutionTimedOut",
            self.root.last_event,
            Some(("executionTimedOutEventDetails", failure_details(&f))),
        );
        self.status = ExecutionStatus::TimedOut;
        self.failure = Some(f);
        self.stop_time = Some(now);
    }

    /// Stops a running execution (`StopExecution`): status `ABORTED`.
    pub fn stop(
        &mut self,
        error: Option<String>,
        cause: Option<String>,
        clock: &dyn Clock,
    ) -> Result<(), ApiError> {
        if self.status != ExecutionStatus::Running {
            return Err(ApiError::ExecutionNotRunning(self.status.as_str().into()));
        }
        let now = clock.now();
        let f = Failure { error, cause };
        self.core.history.record(
            now,
            "ExecutionAborted",
            self.root.last_event,
            Some(("executionAbortedEventDetails", failure_details(&f))),
        );
        self.status = ExecutionStatus::Aborted;
        self.failure = Some(f);
        self.stop_time = Some(now);
        Ok(())
    }

    /// The earliest time at which something blocked becomes runnable (`None` when finished or
    /// waiting only for callbacks).
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        if self.status != ExecutionStatus::Running {
            return None;
        }
        let mut best = self.deadline;
        wakeup(&self.root, &mut best);
        best
    }

    /// Task tokens of the tasks currently waiting for a callback.
    pub fn pending_task_tokens(&self) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(f: &Frame, out: &mut Vec<String>) {
            match &f.step {
                Step::Callback(w) if w.outcome.is_none() => out.push(w.token.clone()),
                Step::Fanout(fan) => fan.active.iter().for_each(|c| walk(&c.frame, out)),
                _ => {}
            }
        }
        walk(&self.root, &mut out);
        out
    }

    fn waiting_mut(&mut self, token: &str) -> Result<&mut Waiting, ApiError> {
        if self.status != ExecutionStatus::Running {
            return Err(ApiError::TaskDoesNotExist(token.to_string()));
        }
        fn walk<'a>(f: &'a mut Frame, token: &str) -> Option<&'a mut Waiting> {
            match &mut f.step {
                Step::Callback(w) if w.token == token && w.outcome.is_none() => Some(w),
                Step::Fanout(fan) => fan
                    .active
                    .iter_mut()
                    .find_map(|c| walk(&mut c.frame, token)),
                _ => None,
            }
        }
        if !is_token(token) {
            return Err(ApiError::InvalidToken(token.to_string()));
        }
        walk(&mut self.root, token).ok_or_else(|| ApiError::TaskDoesNotExist(token.to_string()))
    }

    /// `SendTaskSuccess`: completes the waiting task with `output`. Call `advance` afterwards.
    pub fn send_task_success(&mut self, token: &str, output: Value) -> Result<(), ApiError> {
        let w = self.waiting_mut(token)?;
        w.outcome = Some(Ok(output));
        Ok(())
    }

    /// `SendTaskFailure`: fails the waiting task (Retry/Catch apply). Call `advance` afterwards.
    pub fn send_task_failure(
        &mut self,
        token: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<(), ApiError> {
        let w = self.waiting_mut(token)?;
        w.outcome = Some(Err(Failure { error, cause }));
        Ok(())
    }

    /// `SendTaskHeartbeat`: pushes the task's heartbeat deadline to `now + HeartbeatSeconds`.
    pub fn send_task_heartbeat(&mut self, token: &str, clock: &dyn Clock) -> Result<(), ApiError> {
        let now = clock.now();
        let w = self.waiting_mut(token)?;
        if let Some(secs) = w.heartbeat_seconds {
            w.heartbeat_at = add_secs(now, secs as f64);
        }
        Ok(())
    }

    /// Serialises the whole execution, definition included, to JSON: a snapshot that stands
    /// alone.
    pub fn to_json(&self) -> Result<String, ApiError> {
        self.snapshot(Some(self.machine.source()), None)
    }

    /// Serialises the execution with its definition named by [`StateMachine::fingerprint`]
    /// instead of copied in: for a store that keeps each definition once. Read it back with
    /// [`Execution::from_json_resolving`].
    pub fn to_json_by_reference(&self) -> Result<String, ApiError> {
        self.snapshot(None, Some(self.machine.fingerprint()))
    }

    fn snapshot(
        &self,
        machine: Option<&Value>,
        definition: Option<&str>,
    ) -> Result<String, ApiError> {
        serde_json::to_string(&SnapshotOut {
            machine,
            definition,
            core: &self.core,
            status: self.status,
            output: &self.output,
            failure: &self.failure,
            root: &self.root,
            deadline: self.deadline,
            stop_time: self.stop_time,
        })
        .map_err(|e| ApiError::InvalidSnapshot(e.to_string()))
    }

    /// Reads back an execution written by [`Execution::to_json`]. A snapshot written by
    /// [`Execution::to_json_by_reference`] is refused: it needs
    /// [`Execution::from_json_resolving`].
    pub fn from_json(text: &str) -> Result<Execution, ApiError> {
        Execution::from_json_resolving(text, |fingerprint| {
            Err(format!(
                "the snapshot names its definition ({fingerprint}) instead of holding it"
            ))
        })
    }

    /// Reads back an execution written by [`Execution::to_json`] or
    /// [`Execution::to_json_by_reference`]. For the latter, `resolve` is given the definition's
    /// fingerprint and returns that state machine (or why it cannot); a machine with another
    /// fingerprint is refused, as the snapshot's positions only make sense in its own definition.
    pub fn from_json_resolving(
        text: &str,
        resolve: impl FnOnce(&str) -> Result<StateMachine, String>,
    ) -> Result<Execution, ApiError> {
        let snapshot: SnapshotIn =
            serde_json::from_str(text).map_err(|e| ApiError::InvalidSnapshot(e.to_string()))?;
        let machine = match (snapshot.machine, snapshot.definition) {
            (Some(source), _) => StateMachine::from_value(source)
                .map_err(|e| ApiError::InvalidSnapshot(e.to_string()))?,
            (None, Some(fingerprint)) => {
                let machine = resolve(&fingerprint).map_err(ApiError::InvalidSnapshot)?;
                if machine.fingerprint() != fingerprint {
                    return Err(ApiError::InvalidSnapshot(format!(
                        "the snapshot's definition is {fingerprint}, but {} was given",
                        machine.fingerprint()
                    )));
                }
                machine
            }
            (None, None) => {
                return Err(ApiError::InvalidSnapshot(
                    "the snapshot has neither a definition nor a definition fingerprint".into(),
                ));
            }
        };
        Ok(Execution {
            machine,
            core: snapshot.core,
            status: snapshot.status,
            output: snapshot.output,
            failure: snapshot.failure,
            root: snapshot.root,
            deadline: snapshot.deadline,
            stop_time: snapshot.stop_time,
        })
    }

    /// The state machine this execution runs.
    pub fn machine(&self) -> &StateMachine {
        &self.machine
    }

    pub fn status(&self) -> ExecutionStatus {
        self.status
    }

    /// The result so far.
    pub fn outcome(&self) -> Outcome {
        let f = || {
            self.failure.clone().unwrap_or(Failure {
                error: None,
                cause: None,
            })
        };
        match self.status {
            ExecutionStatus::Running => Outcome::Running,
            ExecutionStatus::Succeeded => {
                Outcome::Succeeded(self.output.as_deref().cloned().unwrap_or(Value::Null))
            }
            ExecutionStatus::Failed => Outcome::Failed(f()),
            ExecutionStatus::TimedOut => Outcome::TimedOut(f()),
            ExecutionStatus::Aborted => Outcome::Aborted(f()),
        }
    }

    pub fn output(&self) -> Option<&Value> {
        self.output.as_deref()
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    pub fn info(&self) -> &ExecutionInfo {
        &self.core.info
    }

    pub fn stop_time(&self) -> Option<Timestamp> {
        self.stop_time
    }

    /// History events so far (`GetExecutionHistory`).
    pub fn history(&self) -> &[HistoryEvent] {
        self.core.history.events()
    }

    /// State transitions so far, counted as described in the module docs.
    pub fn state_transitions(&self) -> u64 {
        self.core.transitions
    }

    /// Names of the states entered, in order (empty unless `record_states_entered`).
    pub fn states_entered(&self) -> &[String] {
        self.core.states_entered.as_deref().unwrap_or(&[])
    }
}

fn is_token(t: &str) -> bool {
    uuid::Uuid::parse_str(t).is_ok()
}

fn wakeup(f: &Frame, best: &mut Option<Timestamp>) {
    let mut consider = |t: Option<Timestamp>| {
        if let Some(t) = t
            && best.is_none_or(|b| t < b)
        {
            *best = Some(t);
        }
    };
    match &f.step {
        Step::Sleep { until, .. } => consider(Some(*until)),
        Step::Callback(w) if w.outcome.is_none() => {
            consider(w.timeout_at);
            consider(w.heartbeat_at);
        }
        Step::Fanout(fan) => fan.active.iter().for_each(|c| wakeup(&c.frame, best)),
        _ => {}
    }
}

fn failure_details(f: &Failure) -> Value {
    let mut m = Map::new();
    if let Some(e) = &f.error {
        m.insert("error".into(), Value::from(e.clone()));
    }
    if let Some(c) = &f.cause {
        m.insert("cause".into(), Value::from(c.clone()));
    }
    Value::Object(m)
}

fn add_secs(t: Timestamp, secs: f64) -> Option<Timestamp> {
    let d = SignedDuration::try_from_secs_f64(secs).ok()?;
    t.checked_add(d).ok()
}

/// Parses an ISO-8601 extended offset date-time (`2016-03-14T01:59:00Z`,
/// `2016-03-05T21:29:29.243167252+01:00`) strictly: `T` separator and an offset are required.
pub(crate) fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[10] != b'T'
        || b[4] != b'-'
        || b[7] != b'-'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let last = *b.last()?;
    let has_offset = last == b'Z'
        || (b.len() >= 6 && matches!(b[b.len() - 6], b'+' | b'-') && b[b.len() - 3] == b':');
    if !has_offset {
        return None;
    }
    s.parse::<Timestamp>().ok()
}

/// Error-name matching of Retry/Catch, with Step Functions' wildcards:
/// `States.ALL` matches everything, `States.TaskFailed` everything but timeouts, `States.Timeout`
/// also heartbeat timeouts; `States.Runtime` and `States.DataLimitExceeded` are terminal and
/// match nothing (not even an explicit `States.Runtime`).
pub(crate) fn error_matches(names: &[String], error: &str) -> bool {
    if error == "States.Runtime" || error == "States.DataLimitExceeded" {
        return false;
    }
    names.iter().any(|n| {
        n == error
            || n == "States.ALL"
            || (n == "States.TaskFailed"
                && error != "States.Timeout"
                && error != "States.HeartbeatTimeout")
            || (n == "States.Timeout" && error == "States.HeartbeatTimeout")
    })
}

/// Delay before retry number `attempt` (0-based) of a retrier, before jitter:
/// `IntervalSeconds * BackoffRate^attempt`, capped by `MaxDelaySeconds`.
pub(crate) fn retry_delay(
    interval: f64,
    backoff: f64,
    attempt: u32,
    max_delay: Option<f64>,
) -> f64 {
    let d = interval * backoff.powi(i32::try_from(attempt).unwrap_or(i32::MAX));
    let d = if d.is_finite() { d } else { f64::MAX };
    match max_delay {
        Some(m) => d.min(m),
        None => d.min(99_999_999.0),
    }
}

struct Cx<'a> {
    def: &'a Definition,
    core: &'a mut Core,
    resolver: &'a dyn ResourceResolver,
    clock: &'a dyn Clock,
}

type BoxFut<'f> = Pin<Box<dyn Future<Output = ()> + Send + 'f>>;

impl Cx<'_> {
    fn record(
        &mut self,
        frame: &mut Frame,
        ty: &'static str,
        details: Option<(&'static str, Value)>,
    ) -> u64 {
        let id = self
            .core
            .history
            .record(self.clock.now(), ty, frame.last_event, details);
        frame.last_event = id;
        id
    }

    /// Records an event whose details are rendered when the history is read.
    fn record_details(
        &mut self,
        frame: &mut Frame,
        ty: &'static str,
        key: &'static str,
        details: Details,
    ) -> u64 {
        if self.core.history.detail == HistoryDetail::Off {
            return self.record(frame, ty, None);
        }
        let id = self.core.history.record_details(
            self.clock.now(),
            ty,
            frame.last_event,
            Some((key, details)),
        );
        frame.last_event = id;
        id
    }

    /// `{"name": <state>, "<key>": <payload>, "<key>Details": ...}`.
    fn state_details(&self, state: &State, key: &'static str, value: &Shared) -> Details {
        Details::Fields(
            Fields::new()
                .text("name", Field::Str(state.name.clone()))
                .payload(self.payloads(), key, value),
        )
    }

    fn payloads(&self) -> bool {
        self.core.history.payloads()
    }

    fn prefix(state: &State, frame: &Frame, message: &str) -> String {
        format!(
            "An error occurred while executing the state '{}' (entered at the event id #{}). {}",
            state.name, frame.entered_event, message
        )
    }

    fn expr_failure(state: &State, frame: &Frame, e: ExprError) -> Failure {
        Failure {
            error: Some(e.error),
            cause: Some(Cx::prefix(state, frame, &e.message)),
        }
    }

    fn runtime(state: &State, frame: &Frame, message: &str) -> Failure {
        Failure {
            error: Some("States.Runtime".into()),
            cause: Some(Cx::prefix(state, frame, message)),
        }
    }

    /// The context object `$$` for `state` (only built when the state mentions `$$`).
    fn context(&self, state: &State, frame: &Frame, token: Option<&str>) -> Value {
        if !state.uses_context {
            return Value::Null;
        }
        if state.context_token_only
            && let Some(t) = token
        {
            // every `$$` in the state is `$$.Task.Token`
            return json!({"Task": {"Token": t}});
        }
        let info = &self.core.info;
        let mut ctx = json!({
            "Execution": {
                "Id": info.execution_arn,
                "Name": info.name,
                "RoleArn": info.role_arn,
                "StartTime": info.start_time.to_string(),
                "RedriveCount": 0
            },
            "State": {
                "EnteredTime": frame.entered_time.to_string(),
                "Name": &*state.name,
                "RetryCount": frame.retry_total
            },
            "StateMachine": {
                "Id": info.state_machine_arn,
                "Name": info.state_machine_name
            }
        });
        if state.context_input
            && let Some(e) = ctx.get_mut("Execution").and_then(Value::as_object_mut)
        {
            e.insert("Input".into(), info.input.clone());
        }
        if let (Some(t), Some(m)) = (token, ctx.as_object_mut()) {
            m.insert("Task".into(), json!({ "Token": t }));
        }
        ctx
    }
}

fn state_of<'a>(def: &'a Definition, frame: &Frame) -> &'a State {
    &def.machines[frame.machine].states[frame.state]
}

fn input_path<'v>(
    state: &State,
    frame: &'v Frame,
    input: &'v Value,
    ctx: &'v Value,
) -> Result<Cow<'v, Value>, Failure> {
    match &state.input_path {
        PathField::Default => Ok(Cow::Borrowed(input)),
        PathField::Null => Ok(Cow::Owned(json!({}))),
        PathField::Path(p) => p
            .query_ref(Env {
                input,
                context: ctx,
                variables: &frame.vars,
            })
            .map_err(|e| Cx::expr_failure(state, frame, e)),
    }
}

/// The effective input as a shared value: without an InputPath, the raw input itself (no copy).
fn shared_input(state: &State, frame: &Frame, ctx: &Value) -> Result<Shared, Failure> {
    match &state.input_path {
        PathField::Default => Ok(frame.input.clone()),
        _ => input_path(state, frame, &frame.input, ctx).map(|v| Shared::new(v.into_owned())),
    }
}

fn output_path(
    state: &State,
    frame: &Frame,
    value: Shared,
    ctx: &Value,
) -> Result<Shared, Failure> {
    match &state.output_path {
        PathField::Default => Ok(value),
        PathField::Null => Ok(Shared::new(json!({}))),
        PathField::Path(p) => p
            .query(Env {
                input: &value,
                context: ctx,
                variables: &frame.vars,
            })
            .map(Shared::new)
            .map_err(|e| Cx::expr_failure(state, frame, e)),
    }
}

fn result_path(
    state: &State,
    frame: &Frame,
    path: &PathField,
    raw: &Value,
    result: Value,
) -> Result<Value, Failure> {
    match path {
        PathField::Default => Ok(result),
        PathField::Null => Ok(raw.clone()),
        PathField::Path(p) => {
            expr::apply_result_path(raw, p, result).map_err(|e| Cx::expr_failure(state, frame, e))
        }
    }
}

fn template(
    state: &State,
    frame: &Frame,
    t: &Template,
    input: &Value,
    ctx: &Value,
) -> Result<Value, Failure> {
    t.render(Env {
        input,
        context: ctx,
        variables: &frame.vars,
    })
    .map_err(|e| Cx::expr_failure(state, frame, e))
}

fn assign(
    state: &State,
    frame: &Frame,
    a: Option<&Value>,
    input: &Value,
    ctx: &Value,
) -> Result<Option<Map<String, Value>>, Failure> {
    match a {
        None => Ok(None),
        Some(a) => expr::render_assign(
            a,
            Env {
                input,
                context: ctx,
                variables: &frame.vars,
            },
        )
        .map(Some)
        .map_err(|e| Cx::expr_failure(state, frame, e)),
    }
}

fn apply_vars(frame: &mut Frame, vars: Option<Map<String, Value>>) {
    if let Some(v) = vars {
        for (k, val) in v {
            frame.vars.insert(k, val);
        }
    }
}

/// JSON text of a value for error messages: strings bare, everything else compact JSON.
fn bare(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Leaves the current state with `output`: records `<Type>StateExited`, moves on.
fn exit_state(cx: &mut Cx<'_>, frame: &mut Frame, state: &State, output: Shared) {
    let details = cx.state_details(state, "output", &output);
    cx.record_details(
        frame,
        state.kind.exited_event(),
        "stateExitedEventDetails",
        details,
    );
    goto(frame, state.next, output);
}

fn goto(frame: &mut Frame, next: Option<usize>, output: Shared) {
    match next {
        Some(n) => {
            frame.state = n;
            frame.input = output;
            frame.step = Step::Enter;
        }
        None => frame.step = Step::Done(Ok(output)),
    }
}

/// Result processing common to Pass/Task/Parallel/Map: ResultSelector, Assign (evaluated on the
/// selected result, applied after OutputPath), ResultPath, OutputPath, exit.
fn complete(
    cx: &mut Cx<'_>,
    frame: &mut Frame,
    state: &State,
    result: Shared,
    lambda_request: Option<u128>,
) -> Result<(), Failure> {
    // only ResultSelector, Assign and OutputPath read the context object here
    let ctx = if state.result_selector.is_some()
        || state.assign.is_some()
        || matches!(state.output_path, PathField::Path(_))
    {
        cx.context(state, frame, None)
    } else {
        Value::Null
    };
    let selected = match &state.result_selector {
        Some(rs) => match (template(state, frame, rs, &result, &ctx), lambda_request) {
            (Ok(v), _) => Shared::new(v),
            // `result` is a lambda:invoke response reduced to `{"Payload": ..}`: the failure
            // quotes the whole response, as without the reduction
            (Err(_), Some(id)) => {
                let payload = result.get("Payload").cloned().unwrap_or(Value::Null);
                let full = resource::lambda_invoke_response(payload, &resource::uuid_text(id));
                Shared::new(template(state, frame, rs, &full, &ctx)?)
            }
            (Err(f), None) => return Err(f),
        },
        None => result,
    };
    let new_vars = assign(state, frame, state.assign.as_ref(), &selected, &ctx)?;
    // the raw input is moved into the result (copied only if the history shares it); a failure
    // hands it back (catchers and retries read it)
    let combined = match &state.result_path {
        PathField::Default => selected,
        PathField::Null => frame.input.clone(),
        PathField::Path(p) => {
            let raw = Shared::take(&mut frame.input);
            match p.try_apply_result_path(raw, selected.into_value()) {
                Ok(v) => Shared::new(v),
                Err((raw, e)) => {
                    frame.input = Shared::new(raw);
                    return Err(Cx::expr_failure(state, frame, e));
                }
            }
        }
    };
    let mut output = output_path(state, frame, combined, &ctx)?;
    if state.jsonata
        && let Some(o) = &state.output
    {
        output = Shared::new(o.clone());
    }
    apply_vars(frame, new_vars);
    exit_state(cx, frame, state, output);
    Ok(())
}

/// A state failed: Retry (Task/Parallel/Map), then Catch, else the frame fails.
fn fail_state(cx: &mut Cx<'_>, frame: &mut Frame, state: &State, failure: Failure) {
    let name = failure.name().to_string();
    if let Some((i, r)) = state
        .retry
        .iter()
        .enumerate()
        .find(|(_, r)| error_matches(&r.error_equals, &name))
    {
        if frame.retry_counts.len() < state.retry.len() {
            frame.retry_counts.resize(state.retry.len(), 0);
        }
        let done = frame.retry_counts[i];
        if u64::from(done) < r.max_attempts {
            let mut delay = retry_delay(
                r.interval_seconds,
                r.backoff_rate,
                done,
                r.max_delay_seconds,
            );
            if r.jitter_full {
                delay *= rand::random::<f64>();
            }
            frame.retry_counts[i] += 1;
            frame.retry_total += 1;
            cx.core.transitions += 1;
            let now = cx.clock.now();
            let until = add_secs(now, delay).unwrap_or(now);
            frame.step = Step::Sleep {
                until,
                after: AfterSleep::Retry,
            };
            return;
        }
    }
    if let Some(c) = state
        .catch
        .iter()
        .find(|c| error_matches(&c.error_equals, &name))
    {
        let mut err_out = Map::new();
        err_out.insert(
            "Error".into(),
            failure
                .error
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
        if let Some(cause) = &failure.cause {
            err_out.insert("Cause".into(), Value::String(cause.clone()));
        }
        let err_out = Value::Object(err_out);
        let ctx = cx.context(state, frame, None);
        let caught = assign(state, frame, c.assign.as_ref(), &err_out, &ctx).and_then(|vars| {
            result_path(state, frame, &c.result_path, &frame.input, err_out).map(|o| (vars, o))
        });
        match caught {
            Ok((vars, output)) => {
                apply_vars(frame, vars);
                let output = Shared::new(output);
                let details = cx.state_details(state, "output", &output);
                cx.record_details(
                    frame,
                    state.kind.exited_event(),
                    "stateExitedEventDetails",
                    details,
                );
                goto(frame, Some(c.next), output);
            }
            Err(f) => frame.step = Step::Done(Err(f)),
        }
        return;
    }
    frame.step = Step::Done(Err(failure));
}

/// Runs `frame` until it is done or blocked.
fn drive<'f, 'a: 'f>(cx: &'f mut Cx<'a>, frame: &'f mut Frame) -> BoxFut<'f> {
    Box::pin(async move {
        let def = cx.def;
        loop {
            let state = state_of(def, frame);
            match &mut frame.step {
                Step::Done(_) => return,
                Step::Enter => enter(cx, frame, state),
                Step::Attempt => {
                    if let Err(f) = attempt(cx, frame, state).await {
                        fail_state(cx, frame, state, f);
                    }
                }
                Step::Sleep { until, after } => {
                    if cx.clock.now() < *until {
                        return;
                    }
                    match std::mem::replace(after, AfterSleep::Retry) {
                        AfterSleep::Retry => frame.step = Step::Attempt,
                        AfterSleep::WaitDone(eff) => {
                            if let Err(f) = leave_wait(cx, frame, state, eff) {
                                frame.step = Step::Done(Err(f));
                            }
                        }
                    }
                }
                Step::Callback(w) => {
                    let now = cx.clock.now();
                    let outcome = match w.outcome.take() {
                        Some(o) => o,
                        None => {
                            if w.timeout_at.is_some_and(|t| now >= t) {
                                Err(Failure {
                                    error: Some("States.Timeout".into()),
                                    cause: None,
                                })
                            } else if w.heartbeat_at.is_some_and(|t| now >= t) {
                                Err(Failure {
                                    error: Some("States.HeartbeatTimeout".into()),
                                    cause: None,
                                })
                            } else {
                                return;
                            }
                        }
                    };
                    // the step is replaced by what follows the task
                    let lambda = w.lambda;
                    if let Kind::Task(spec) = &state.kind {
                        finish_task(cx, frame, state, spec, lambda, false, outcome, true);
                    }
                }
                Step::Fanout(_) => {
                    if !drive_fanout(cx, frame, state).await {
                        return;
                    }
                }
            }
        }
    })
}

fn enter(cx: &mut Cx<'_>, frame: &mut Frame, state: &State) {
    cx.core.transitions += 1;
    if let Some(se) = &mut cx.core.states_entered {
        se.push(state.name.to_string());
    }
    frame.entered_time = cx.clock.now();
    frame.retry_counts.clear();
    frame.retry_total = 0;
    let details = cx.state_details(state, "input", &frame.input);
    let id = cx.record_details(
        frame,
        state.kind.entered_event(),
        "stateEnteredEventDetails",
        details,
    );
    frame.entered_event = id;
    if state.jsonata && jsonata_expressions(state) {
        frame.step = Step::Done(Err(Failure {
            error: Some("States.QueryEvaluationError".into()),
            cause: Some(Cx::prefix(
                state,
                frame,
                "JSONata expressions are not supported by this interpreter.",
            )),
        }));
        return;
    }
    let r = match &state.kind {
        Kind::Pass { result } => run_pass(cx, frame, state, result.as_ref()),
        Kind::Choice { .. } => run_choice(cx, frame, state),
        Kind::Wait(spec) => start_wait(cx, frame, state, spec),
        Kind::Succeed => {
            let ctx = cx.context(state, frame, None);
            shared_input(state, frame, &ctx)
                .and_then(|eff| output_path(state, frame, eff, &ctx))
                .map(|out| {
                    let out = match (&state.output, state.jsonata) {
                        (Some(o), true) => Shared::new(o.clone()),
                        _ => out,
                    };
                    let details = cx.state_details(state, "output", &out);
                    cx.record_details(
                        frame,
                        "SucceedStateExited",
                        "stateExitedEventDetails",
                        details,
                    );
                    frame.step = Step::Done(Ok(out));
                })
        }
        Kind::Fail(spec) => {
            let ctx = cx.context(state, frame, None);
            let eval =
                |lit: &Option<String>, path: &Option<String>| -> Result<Option<String>, Failure> {
                    if let Some(l) = lit {
                        return Ok(Some(l.clone()));
                    }
                    match path {
                        None => Ok(None),
                        Some(p) => expr::evaluate_dynamic(
                            p,
                            Env {
                                input: &frame.input,
                                context: &ctx,
                                variables: &frame.vars,
                            },
                        )
                        .map(|v| Some(bare(&v)))
                        .map_err(|e| Cx::expr_failure(state, frame, e)),
                    }
                };
            eval(&spec.error, &spec.error_path)
                .and_then(|error| eval(&spec.cause, &spec.cause_path).map(|cause| (error, cause)))
                .map(|(error, cause)| frame.step = Step::Done(Err(Failure { error, cause })))
        }
        Kind::Task(_) | Kind::Parallel { .. } | Kind::Map(_) => {
            frame.step = Step::Attempt;
            Ok(())
        }
    };
    if let Err(f) = r {
        // Pass/Choice/Wait/Succeed/Fail have no Retry/Catch
        frame.step = Step::Done(Err(f));
    }
}

fn jsonata_expressions(state: &State) -> bool {
    fn has(v: &Value) -> bool {
        match v {
            Value::String(s) => s.trim_start().starts_with("{%"),
            Value::Array(a) => a.iter().any(has),
            Value::Object(o) => o.values().any(has),
            _ => false,
        }
    }
    let in_kind = match &state.kind {
        Kind::Map(m) => m.items_literal.as_ref().is_some_and(has),
        Kind::Pass { result } => result.as_ref().is_some_and(has),
        _ => false,
    };
    in_kind
        || state.output.as_ref().is_some_and(has)
        || state.assign.as_ref().is_some_and(has)
        || state.parameters.as_ref().is_some_and(|t| has(&t.source))
        || matches!(
            state.kind,
            Kind::Choice { .. } | Kind::Fail(_) | Kind::Wait(_)
        )
}

fn run_pass(
    cx: &mut Cx<'_>,
    frame: &mut Frame,
    state: &State,
    result: Option<&Value>,
) -> Result<(), Failure> {
    let ctx = cx.context(state, frame, None);
    let result = match result {
        Some(r) => {
            // InputPath/Parameters still run (and may fail) but the result is `Result`
            let eff = input_path(state, frame, &frame.input, &ctx)?;
            if let Some(p) = &state.parameters {
                template(state, frame, p, &eff, &ctx)?;
            }
            Shared::new(r.clone())
        }
        None => match &state.parameters {
            Some(p) => {
                let eff = input_path(state, frame, &frame.input, &ctx)?;
                Shared::new(template(state, frame, p, &eff, &ctx)?)
            }
            None => shared_input(state, frame, &ctx)?,
        },
    };
    complete(cx, frame, state, result, None)
}

fn run_choice(cx: &mut Cx<'_>, frame: &mut Frame, state: &State) -> Result<(), Failure> {
    let Kind::Choice { choices, default } = &state.kind else {
        return Ok(());
    };
    let ctx = cx.context(state, frame, None);
    let eff = shared_input(state, frame, &ctx)?;
    let env = Env {
        input: &eff,
        context: &ctx,
        variables: &frame.vars,
    };
    let mut chosen = None;
    for c in choices {
        if c.rule
            .evaluate(env)
            .map_err(|e| Cx::expr_failure(state, frame, e))?
        {
            chosen = Some(c);
            break;
        }
    }
    let (next, assign_block) = match chosen {
        Some(c) => (c.next, c.assign.as_ref()),
        None => match default {
            Some(d) => (*d, state.assign.as_ref()),
            None => {
                return Err(Failure {
                    error: Some("States.NoChoiceMatched".into()),
                    cause: Some(Cx::prefix(
                        state,
                        frame,
                        "Failed to transition out of the state. The state does not point to a next state.",
                    )),
                });
            }
        },
    };
    let new_vars = assign(state, frame, assign_block, &eff, &ctx)?;
    let output = output_path(state, frame, eff, &ctx)?;
    apply_vars(frame, new_vars);
    let details = cx.state_details(state, "output", &output);
    cx.record_details(
        frame,
        "ChoiceStateExited",
        "stateExitedEventDetails",
        details,
    );
    goto(frame, Some(next), output);
    Ok(())
}

fn start_wait(
    cx: &mut Cx<'_>,
    frame: &mut Frame,
    state: &State,
    spec: &WaitSpec,
) -> Result<(), Failure> {
    let ctx = cx.context(state, frame, None);
    let eff = shared_input(state, frame, &ctx)?;
    let now = cx.clock.now();
    let env = Env {
        input: &eff,
        context: &ctx,
        variables: &frame.vars,
    };
    let until = match spec {
        WaitSpec::Seconds(n) => add_secs(now, *n as f64).unwrap_or(now),
        WaitSpec::Timestamp(s) => parse_timestamp(s).unwrap_or(now),
        WaitSpec::SecondsPath(p) => {
            let v = p
                .query(env)
                .map_err(|e| Cx::expr_failure(state, frame, e))?;
            let secs = match v.as_i64() {
                Some(n) => n,
                None => {
                    return Err(Cx::runtime(
                        state,
                        frame,
                        &format!(
                            "The SecondsPath parameter cannot be parsed as a long value: {p} == {}",
                            bare(&v)
                        ),
                    ));
                }
            };
            if secs < 0 {
                return Err(Cx::runtime(
                    state,
                    frame,
                    &format!(
                        "The SecondsPath parameter references a negative value: {p} == {secs}"
                    ),
                ));
            }
            add_secs(now, secs as f64).unwrap_or(now)
        }
        WaitSpec::TimestampPath(p) => {
            let v = p
                .query(env)
                .map_err(|e| Cx::expr_failure(state, frame, e))?;
            match v.as_str().and_then(parse_timestamp) {
                Some(t) => t,
                None => {
                    return Err(Cx::runtime(
                        state,
                        frame,
                        &format!(
                            "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {p} == {}",
                            bare(&v)
                        ),
                    ));
                }
            }
        }
    };
    frame.step = Step::Sleep {
        until,
        after: AfterSleep::WaitDone(eff),
    };
    Ok(())
}

fn leave_wait(
    cx: &mut Cx<'_>,
    frame: &mut Frame,
    state: &State,
    eff: Shared,
) -> Result<(), Failure> {
    let ctx = cx.context(state, frame, None);
    let new_vars = assign(state, frame, state.assign.as_ref(), &eff, &ctx)?;
    let output = output_path(state, frame, eff, &ctx)?;
    apply_vars(frame, new_vars);
    exit_state(cx, frame, state, output);
    Ok(())
}

/// Reads a `MaxConcurrencyPath`-style integer.
fn path_integer(
    state: &State,
    frame: &Frame,
    field: &str,
    path: &CompiledPath,
    eff: &Value,
    ctx: &Value,
) -> Result<i64, Failure> {
    let read = PathNumber {
        kind: "integer",
        from_number: serde_json::Number::as_i64,
        from_text: |s| s.parse::<i64>().ok(),
    };
    read.of(state, frame, field, path, eff, ctx)
}

/// Reads a `ToleratedFailurePercentagePath`-style number.
fn path_float(
    state: &State,
    frame: &Frame,
    field: &str,
    path: &CompiledPath,
    eff: &Value,
    ctx: &Value,
) -> Result<f64, Failure> {
    let read = PathNumber {
        kind: "float",
        from_number: serde_json::Number::as_f64,
        from_text: |s| s.parse::<f64>().ok(),
    };
    read.of(state, frame, field, path, eff, ctx)
}

/// How a `*Path` field's value becomes a number: a JSON number or a numeric string.
struct PathNumber<T> {
    kind: &'static str,
    from_number: fn(&serde_json::Number) -> Option<T>,
    from_text: fn(&str) -> Option<T>,
}

impl<T> PathNumber<T> {
    fn of(
        &self,
        state: &State,
        frame: &Frame,
        field: &str,
        path: &CompiledPath,
        eff: &Value,
        ctx: &Value,
    ) -> Result<T, Failure> {
        let v = path
            .query(Env {
                input: eff,
                context: ctx,
                variables: &frame.vars,
            })
            .map_err(|e| Cx::expr_failure(state, frame, e))?;
        let n = match &v {
            Value::Number(n) => (self.from_number)(n),
            Value::String(s) => (self.from_text)(s.trim()),
            _ => None,
        };
        n.ok_or_else(|| {
            Cx::runtime(
                state,
                frame,
                &format!(
                    "The {field}Path field refers to value \"{}\" which is not a valid {}: {path}",
                    bare(&v),
                    self.kind
                ),
            )
        })
    }
}

/// The body of a Task/Parallel/Map state (run again on retry).
async fn attempt(cx: &mut Cx<'_>, frame: &mut Frame, state: &State) -> Result<(), Failure> {
    match &state.kind {
        Kind::Task(spec) => {
            let pattern_token = spec.pattern == IntegrationPattern::WaitForTaskToken;
            let token = pattern_token.then(resource::new_uuid);
            let ctx = cx.context(state, frame, token.as_deref());
            let eff = input_path(state, frame, &frame.input, &ctx)?;
            let params = match &state.parameters {
                Some(p) => template(state, frame, p, &eff, &ctx)?,
                None => eff.into_owned(),
            };
            let seconds = |f: &Option<NumberField>, name: &str| -> Result<Option<u64>, Failure> {
                match f {
                    None => Ok(None),
                    Some(NumberField::Literal(n)) => Ok(Some(*n as u64)),
                    Some(NumberField::Path(p)) => {
                        let eff = input_path(state, frame, &frame.input, &ctx)?;
                        let n = path_integer(state, frame, name, p, &eff, &ctx)?;
                        if n <= 0 {
                            return Err(Cx::runtime(
                                state,
                                frame,
                                &format!(
                                    "The {name}Path field refers to value \"{n}\" which is not a valid positive integer: {p}"
                                ),
                            ));
                        }
                        Ok(Some(n as u64))
                    }
                }
            };
            let timeout = seconds(&spec.timeout, "TimeoutSeconds")?;
            let heartbeat = seconds(&spec.heartbeat, "HeartbeatSeconds")?;
            let pattern = spec.pattern;
            let kind = match &spec.kind {
                ResourceKind::LambdaInvoke { .. } => ResourceKind::LambdaInvoke {
                    function_name: resource::function_name(&params),
                },
                other => other.clone(),
            };
            let lambda = matches!(kind, ResourceKind::LambdaFunction { .. });
            // scheduled / started events; the history shares the parameters
            let (shown, params) = if cx.payloads() {
                (Some(Shared::new(params)), Value::Null)
            } else {
                (None, params)
            };
            if lambda {
                let mut f = Fields::new().text("resource", Field::Str(spec.resource_text.clone()));
                if let Some(p) = &shown {
                    f = f.payload(true, "input", p);
                }
                if let Some(t) = timeout {
                    f = f.number("timeoutInSeconds", t);
                }
                cx.record_details(
                    frame,
                    "LambdaFunctionScheduled",
                    "lambdaFunctionScheduledEventDetails",
                    Details::Fields(f),
                );
                cx.record(frame, "LambdaFunctionStarted", None);
            } else {
                let mut f = resource_fields(spec).text("region", Field::Static("us-east-1"));
                if let Some(p) = &shown {
                    f = f.bare_payload("parameters", p);
                }
                if let Some(t) = timeout {
                    f = f.number("timeoutInSeconds", t);
                }
                if let Some(h) = heartbeat {
                    f = f.number("heartbeatInSeconds", h);
                }
                cx.record_details(
                    frame,
                    "TaskScheduled",
                    "taskScheduledEventDetails",
                    Details::Fields(f),
                );
                cx.record_details(
                    frame,
                    "TaskStarted",
                    "taskStartedEventDetails",
                    Details::Fields(resource_fields(spec)),
                );
            }
            let (input, parameters) = match shown {
                Some(p) => split_request_shared(&kind, &p),
                None => split_request(&kind, params),
            };
            let request = TaskRequest {
                state_name: state.name.to_string(),
                resource: spec.resource.clone(),
                kind: kind.clone(),
                pattern,
                input,
                parameters,
                task_token: token.clone(),
                retry_count: frame.retry_total,
                execution_arn: cx.core.info.execution_arn.clone(),
            };
            let started = cx.clock.now();
            let invoked = match timeout {
                Some(t)
                    if cx.clock.is_real() && pattern != IntegrationPattern::WaitForTaskToken =>
                {
                    match tokio::time::timeout(
                        std::time::Duration::from_secs(t),
                        cx.resolver.invoke(request),
                    )
                    .await
                    {
                        Ok(r) => r.map_err(|f| Failure {
                            error: Some(f.error),
                            cause: f.cause,
                        }),
                        Err(_) => Err(Failure {
                            error: Some("States.Timeout".into()),
                            cause: None,
                        }),
                    }
                }
                _ => cx.resolver.invoke(request).await.map_err(|f| Failure {
                    error: Some(f.error),
                    cause: f.cause,
                }),
            };
            match (invoked, token) {
                (Ok(submitted), Some(token)) => {
                    let details = Details::Fields(resource_fields(spec).payload(
                        cx.payloads(),
                        "output",
                        &Shared::new(submitted),
                    ));
                    cx.record_details(frame, "TaskSubmitted", "taskSubmittedEventDetails", details);
                    frame.step = Step::Callback(Box::new(Waiting {
                        token,
                        resource: spec.resource.clone(),
                        lambda,
                        timeout_at: timeout.and_then(|t| add_secs(started, t as f64)),
                        heartbeat_at: heartbeat.and_then(|h| add_secs(started, h as f64)),
                        heartbeat_seconds: heartbeat,
                        outcome: None,
                    }));
                    Ok(())
                }
                (outcome, _) => {
                    let wrap = matches!(kind, ResourceKind::LambdaInvoke { .. });
                    finish_task(cx, frame, state, spec, lambda, wrap, outcome, false);
                    Ok(())
                }
            }
        }
        Kind::Parallel { branches } => {
            let ctx = cx.context(state, frame, None);
            let eff = input_path(state, frame, &frame.input, &ctx)?;
            let branch_input = match &state.parameters {
                Some(p) => template(state, frame, p, &eff, &ctx)?,
                None => eff.into_owned(),
            };
            let started = cx.record(frame, "ParallelStateStarted", None);
            let n = branches.len();
            let mut pending = vec![branch_input; n];
            if n == 0 {
                pending.clear();
            }
            frame.step = Step::Fanout(Box::new(Fanout {
                map: false,
                pending,
                next: 0,
                active: Vec::new(),
                results: vec![Value::Null; n],
                max_concurrency: 0,
                tolerated_count: None,
                tolerated_percentage: None,
                failures: 0,
                selector_input: None,
                machines: branches.clone(),
                started_event: started,
            }));
            Ok(())
        }
        Kind::Map(spec) => start_map(cx, frame, state, spec),
        _ => Ok(()),
    }
}

/// Records the end of a task invocation and continues with its result or failure.
#[allow(clippy::too_many_arguments)]
fn finish_task(
    cx: &mut Cx<'_>,
    frame: &mut Frame,
    state: &State,
    spec: &TaskSpec,
    lambda: bool,
    wrap: bool,
    outcome: Result<Value, Failure>,
    callback: bool,
) {
    match outcome {
        Ok(v) => {
            // a lambda:invoke response read only through `Payload` is kept as `{"Payload": ..}`
            // (the whole response is built for the history when it is read)
            let mut lambda_request = None;
            let result = Shared::new(if wrap && !callback {
                let request_id: u128 = rand::random();
                if state.lambda_result_payload_only {
                    lambda_request = Some(request_id);
                    let mut m = Map::new();
                    m.insert("Payload".into(), v);
                    Value::Object(m)
                } else {
                    resource::lambda_invoke_response(v, &resource::uuid_text(request_id))
                }
            } else {
                v
            });
            let payloads = cx.payloads();
            if lambda && !callback {
                let d = Details::Fields(Fields::new().payload(payloads, "output", &result));
                cx.record_details(
                    frame,
                    "LambdaFunctionSucceeded",
                    "lambdaFunctionSucceededEventDetails",
                    d,
                );
            } else {
                let f = resource_fields(spec);
                let d = Details::Fields(match lambda_request {
                    Some(id) => f.lambda_response(payloads, "output", &result, id),
                    None => f.payload(payloads, "output", &result),
                });
                cx.record_details(frame, "TaskSucceeded", "taskSucceededEventDetails", d);
            }
            if let Err(f) = complete(cx, frame, state, result, lambda_request) {
                fail_state(cx, frame, state, f);
            }
        }
        Err(f) => {
            let timed_out = matches!(
                f.error.as_deref(),
                Some("States.Timeout" | "States.HeartbeatTimeout")
            );
            let mut d = failure_details(&f);
            let (ty, key) = match (lambda && !callback, timed_out) {
                (true, true) => (
                    "LambdaFunctionTimedOut",
                    "lambdaFunctionTimedOutEventDetails",
                ),
                (true, false) => ("LambdaFunctionFailed", "lambdaFunctionFailedEventDetails"),
                (false, true) => ("TaskTimedOut", "taskTimedOutEventDetails"),
                (false, false) => ("TaskFailed", "taskFailedEventDetails"),
            };
            if (!lambda || callback)
                && let Some(m) = d.as_object_mut()
            {
                m.insert("resourceType".into(), Value::from(&*spec.history_type));
                m.insert("resource".into(), Value::from(&*spec.history_resource));
            }
            cx.record(frame, ty, Some((key, d)));
            fail_state(cx, frame, state, f);
        }
    }
}

/// `resourceType` and `resource` as task events show them.
fn resource_fields(spec: &TaskSpec) -> Fields {
    Fields::new()
        .text("resourceType", Field::Str(spec.history_type.clone()))
        .text("resource", Field::Str(spec.history_resource.clone()))
}

/// What the resolver gets: for `lambda:invoke` the `Payload` and the other parameters apart.
fn split_request(kind: &ResourceKind, params: Value) -> (Value, Value) {
    match (kind, params) {
        (ResourceKind::LambdaInvoke { .. }, Value::Object(mut m)) => {
            let payload = m.shift_remove("Payload").unwrap_or(Value::Null);
            (payload, Value::Object(m))
        }
        (_, p) => (p, Value::Null),
    }
}

/// [`split_request`] for parameters the history keeps.
fn split_request_shared(kind: &ResourceKind, params: &Value) -> (Value, Value) {
    match (kind, params) {
        (ResourceKind::LambdaInvoke { .. }, Value::Object(m)) => {
            let payload = m.get("Payload").cloned().unwrap_or(Value::Null);
            let rest = m
                .iter()
                .filter(|(k, _)| k.as_str() != "Payload")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (payload, Value::Object(rest))
        }
        (_, p) => (p.clone(), Value::Null),
    }
}

fn start_map(
    cx: &mut Cx<'_>,
    frame: &mut Frame,
    state: &State,
    spec: &MapSpec,
) -> Result<(), Failure> {
    let ctx = cx.context(state, frame, None);
    let eff = input_path(state, frame, &frame.input, &ctx)?;
    let max_concurrency = match &spec.max_concurrency {
        None => 0,
        Some(NumberField::Literal(n)) => *n as usize,
        Some(NumberField::Path(p)) => {
            let n = path_integer(state, frame, "MaxConcurrency", p, &eff, &ctx)?;
            if n < 0 {
                return Err(Cx::runtime(
                    state,
                    frame,
                    "MaxConcurrency cannot be negative.",
                ));
            }
            usize::try_from(n).unwrap_or(usize::MAX)
        }
    };
    let tolerated_count = match &spec.tolerated_count {
        None => None,
        Some(NumberField::Literal(n)) => Some(*n as u64),
        Some(NumberField::Path(p)) => {
            let n = path_integer(state, frame, "ToleratedFailureCount", p, &eff, &ctx)?;
            if n < 0 {
                return Err(Cx::runtime(
                    state,
                    frame,
                    "ToleratedFailureCount cannot be negative.",
                ));
            }
            Some(n as u64)
        }
    };
    let tolerated_percentage = match &spec.tolerated_percentage {
        None => None,
        Some(NumberField::Literal(n)) => Some(*n),
        Some(NumberField::Path(p)) => {
            let n = path_float(state, frame, "ToleratedFailurePercentage", p, &eff, &ctx)?;
            if !(0.0..=100.0).contains(&n) {
                return Err(Cx::runtime(
                    state,
                    frame,
                    "ToleratedFailurePercentage must be between 0 and 100.",
                ));
            }
            Some(n)
        }
    };
    let selector_input = spec.item_selector.as_ref().map(|_| eff.as_ref().clone());
    let items_value = if let (true, Some(items)) = (state.jsonata, &spec.items_literal) {
        items.clone()
    } else {
        match &spec.items_path {
            Some(p) => expr::query(
                p,
                Env {
                    input: &eff,
                    context: &ctx,
                    variables: &frame.vars,
                },
            )
            .map_err(|e| Cx::expr_failure(state, frame, e))?,
            None => eff.into_owned(),
        }
    };
    let items = match items_value {
        Value::Array(a) => a,
        other => {
            let error = if state.jsonata {
                "States.QueryEvaluationError"
            } else {
                "States.Runtime"
            };
            return Err(Failure {
                error: Some(error.into()),
                cause: Some(Cx::prefix(
                    state,
                    frame,
                    &format!("Map state input must be an array but was: {other}"),
                )),
            });
        }
    };
    let n = items.len();
    cx.record(
        frame,
        "MapStateStarted",
        Some(("mapStateStartedEventDetails", json!({"length": n}))),
    );
    let started = frame.last_event;
    frame.step = Step::Fanout(Box::new(Fanout {
        map: true,
        pending: items,
        next: 0,
        active: Vec::new(),
        results: vec![Value::Null; n],
        max_concurrency,
        tolerated_count,
        tolerated_percentage,
        failures: 0,
        selector_input,
        machines: vec![spec.processor],
        started_event: started,
    }));
    Ok(())
}

/// Drives the children of a Parallel/Map state. Returns `true` when the fanout finished (the
/// frame moved on), `false` when blocked.
async fn drive_fanout(cx: &mut Cx<'_>, frame: &mut Frame, state: &State) -> bool {
    let Step::Fanout(mut fan) = std::mem::replace(&mut frame.step, Step::Attempt) else {
        return true;
    };
    let mut failed: Option<Failure> = None;
    'outer: loop {
        let mut progressed = false;
        let mut i = 0;
        while i < fan.active.len() {
            drive(cx, &mut fan.active[i].frame).await;
            if matches!(fan.active[i].frame.step, Step::Done(_)) {
                let child = fan.active.swap_remove(i);
                progressed = true;
                if let Some(f) = child_done(cx, frame, state, &mut fan, child) {
                    failed = Some(f);
                    break 'outer;
                }
            } else {
                i += 1;
            }
        }
        while fan.next < fan.pending.len()
            && (fan.max_concurrency == 0 || fan.active.len() < fan.max_concurrency)
        {
            let index = fan.next;
            fan.next += 1;
            progressed = true;
            let child = match start_child(cx, frame, state, &mut fan, index) {
                Ok(c) => c,
                Err(f) => {
                    failed = Some(f);
                    break 'outer;
                }
            };
            let mut child = child;
            drive(cx, &mut child.frame).await;
            if matches!(child.frame.step, Step::Done(_)) {
                if let Some(f) = child_done(cx, frame, state, &mut fan, child) {
                    failed = Some(f);
                    break 'outer;
                }
            } else {
                fan.active.push(child);
            }
        }
        if fan.active.is_empty() && fan.next >= fan.pending.len() {
            break;
        }
        if !progressed {
            frame.step = Step::Fanout(fan);
            return false;
        }
    }
    frame.last_event = frame.last_event.max(fan.started_event);
    if let Some(f) = failed {
        if fan.map {
            fan.active.sort_by_key(|c| c.index);
            for c in &fan.active {
                cx.record(
                    frame,
                    "MapIterationAborted",
                    Some((
                        "mapIterationAbortedEventDetails",
                        json!({"name": &*state.name, "index": c.index}),
                    )),
                );
            }
            cx.record(frame, "MapStateFailed", None);
        } else {
            cx.record(frame, "ParallelStateFailed", None);
        }
        fail_state(cx, frame, state, f);
        return true;
    }
    cx.record(
        frame,
        if fan.map {
            "MapStateSucceeded"
        } else {
            "ParallelStateSucceeded"
        },
        None,
    );
    let results = std::mem::take(&mut fan.results);
    if let Err(f) = complete(cx, frame, state, Shared::new(Value::Array(results)), None) {
        fail_state(cx, frame, state, f);
    }
    true
}

fn start_child(
    cx: &mut Cx<'_>,
    frame: &mut Frame,
    state: &State,
    fan: &mut Fanout,
    index: usize,
) -> Result<Child, Failure> {
    let def = cx.def;
    let now = cx.clock.now();
    let item = std::mem::take(&mut fan.pending[index]);
    let (machine, input, prev) = if fan.map {
        let id = cx.core.history.record(
            now,
            "MapIterationStarted",
            fan.started_event,
            Some((
                "mapIterationStartedEventDetails",
                json!({"name": &*state.name, "index": index}),
            )),
        );
        let input = match (&state.kind, &fan.selector_input) {
            (Kind::Map(spec), Some(sel_input)) => match &spec.item_selector {
                Some(sel) => {
                    let mut ctx = cx.context(state, frame, None);
                    if let Some(m) = ctx.as_object_mut() {
                        m.insert(
                            "Map".into(),
                            json!({"Item": {"Index": index, "Value": item}}),
                        );
                    }
                    template(state, frame, sel, sel_input, &ctx)?
                }
                None => item,
            },
            _ => item,
        };
        (fan.machines[0], input, id)
    } else {
        (fan.machines[index], item, fan.started_event)
    };
    let start = def.machines[machine].start;
    Ok(Child {
        index,
        frame: Frame::new(machine, start, input, frame.vars.clone(), prev, now),
    })
}

/// Handles a finished child; returns the failure that fails the whole fanout, if any.
fn child_done(
    cx: &mut Cx<'_>,
    frame: &mut Frame,
    state: &State,
    fan: &mut Fanout,
    child: Child,
) -> Option<Failure> {
    let now = cx.clock.now();
    let Step::Done(result) = child.frame.step else {
        return None;
    };
    match result {
        Ok(v) => {
            if fan.map {
                cx.core.history.record(
                    now,
                    "MapIterationSucceeded",
                    child.frame.last_event,
                    Some((
                        "mapIterationSucceededEventDetails",
                        json!({"name": &*state.name, "index": child.index}),
                    )),
                );
            }
            frame.last_event = frame.last_event.max(child.frame.last_event);
            fan.results[child.index] = v.into_value();
            None
        }
        Err(f) => {
            if fan.map {
                cx.core.history.record(
                    now,
                    "MapIterationFailed",
                    child.frame.last_event,
                    Some((
                        "mapIterationFailedEventDetails",
                        json!({"name": &*state.name, "index": child.index}),
                    )),
                );
            }
            if fan.map && (fan.tolerated_count.is_some() || fan.tolerated_percentage.is_some()) {
                fan.failures += 1;
                let total = fan.pending.len().max(1) as f64;
                let over_count = fan.tolerated_count.is_some_and(|c| fan.failures > c);
                let over_pct = fan
                    .tolerated_percentage
                    .is_some_and(|p| (fan.failures as f64) * 100.0 / total > p);
                let within = match (fan.tolerated_count, fan.tolerated_percentage) {
                    (Some(_), Some(_)) => !(over_count && over_pct),
                    _ => !(over_count || over_pct),
                };
                if within {
                    let mut m = Map::new();
                    m.insert(
                        "Error".into(),
                        f.error.clone().map(Value::String).unwrap_or(Value::Null),
                    );
                    if let Some(c) = &f.cause {
                        m.insert("Cause".into(), Value::String(c.clone()));
                    }
                    fan.results[child.index] = Value::Object(m);
                    return None;
                }
                return Some(Failure::new(
                    "States.ExceedToleratedFailureThreshold",
                    "The specified tolerance threshold was exceeded",
                ));
            }
            Some(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn states_all_matches_any_error_but_terminal_ones() {
        let all = names(&["States.ALL"]);
        assert!(error_matches(&all, "Custom"));
        assert!(error_matches(&all, "States.Timeout"));
        assert!(!error_matches(&all, "States.Runtime"));
        assert!(!error_matches(&all, "States.DataLimitExceeded"));
    }

    #[test]
    fn task_failed_excludes_timeouts_and_timeout_includes_heartbeat_timeouts() {
        let tf = names(&["States.TaskFailed"]);
        assert!(error_matches(&tf, "Lambda.Unknown"));
        assert!(!error_matches(&tf, "States.Timeout"));
        assert!(!error_matches(&tf, "States.HeartbeatTimeout"));
        assert!(error_matches(
            &names(&["States.Timeout"]),
            "States.HeartbeatTimeout"
        ));
        assert!(!error_matches(
            &names(&["States.Runtime"]),
            "States.Runtime"
        ));
        assert!(!error_matches(&names(&["Other"]), "Custom"));
    }

    #[test]
    fn retry_delay_grows_by_the_backoff_rate_and_is_capped() {
        assert_eq!(retry_delay(1.0, 2.0, 0, None), 1.0);
        assert_eq!(retry_delay(1.0, 2.0, 3, None), 8.0);
        assert_eq!(retry_delay(3.0, 2.0, 2, Some(5.0)), 5.0);
        // absurd exponents stay finite and bounded
        assert!(retry_delay(1.0, 2.0, 5000, None) <= 99_999_999.0);
    }

    #[test]
    fn timestamps_need_the_t_separator_and_an_offset() {
        assert!(parse_timestamp("2016-03-14T01:59:00Z").is_some());
        assert!(parse_timestamp("2016-03-05T21:29:29.243167252Z").is_some());
        assert!(parse_timestamp("2016-03-14T01:59:00+02:00").is_some());
        assert!(parse_timestamp("2016-12-05 21:29:29Z").is_none());
        assert!(parse_timestamp("2016-12-05T21:29:29").is_none());
        assert!(parse_timestamp("2016-13-05T21:29:29Z").is_none());
        assert!(parse_timestamp("05-12-2016T21:29:29Z").is_none());
    }
}
