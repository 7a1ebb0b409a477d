//! The local workflow engine: each ticket's run is an `asl::Execution` of the real
//! `workflows/after-sales.asl.json`, driven on a tokio task with the step handlers called
//! in-process, and persisted in the store after every advance, so a run parked on a
//! `.waitForTaskToken` or a `Wait` survives a restart.
//!
//! A request's run is stored in the same commit as its ticket ([`IntakeStore`]), so the 202
//! waits for one group commit. Runs are then advanced in the background, many at a time, on
//! threads of their own at low priority; each advance waits while intake is busy (up to five
//! seconds), so under a burst of requests intake comes first and the advances catch up when
//! it eases.
//! Each advance stores its run when done, so a run not yet advanced (or half way) resumes
//! after a restart.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aftersales_domain::lifecycle::AuditEvent;
use aftersales_domain::ticket::Ticket;
use aftersales_domain::{CustomerId, Department, Policy, RequestId, ServiceRequest, TicketId};
use aftersales_service::adapters::feedback::{
    FeedbackMessage, FeedbackPublisher, PublishError, UndeliveredMessage,
};
use aftersales_service::adapters::notify::{
    Delivery, FanOut, NotificationChannel, NotifyError, OutgoingMessage,
};
use aftersales_service::adapters::payment::InMemoryPaymentGateway;
use aftersales_service::adapters::workflow::{StartOutcome, WorkflowClient, WorkflowError};
use aftersales_service::clock::SystemClock;
use aftersales_service::handlers::accept;
use aftersales_service::handlers::steps::notify::SurveyLink;
use aftersales_service::handlers::steps::{
    self, StepError, diagnose, execute_refund, notify, propose, survey,
};
use asl::{
    ApiError, Clock as _, Execution, ResourceKind, ResourceResolver, StartOptions, StateMachine,
    TaskFailure, TaskRequest,
};
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use aftersales_domain::history::History;
use aftersales_service::store::{Created, StoreError, TicketStore, TicketSummary};

use crate::store::LocalStore;

/// How many runs are advanced at once in the background.
/// Many, so that their writes share commits.
const DRIVERS: usize = 64;
/// The background runtime's worker threads: once intake eases, the advances may use both cores.
const BACKGROUND_THREADS: usize = 2;
/// The background threads' nice value: the scheduler gives the HTTP workers and the store
/// writer the CPU first, and the advances what is left (all of it when intake is idle).
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`BACKGROUND_NICE`]. On Linux nice is per
/// thread, and lowering it needs no privilege; elsewhere (where it would apply to the whole
/// process) this does nothing.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take no pointers; setpriority only changes this thread.
        let done = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE)
        };
        if done != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot lower the priority of a run-advances thread"
            );
        }
    }
}

/// The local state machine's ARN: executions are `...:execution:after-sales:<ticket id>`.
pub const STATE_MACHINE_ARN: &str = "arn:aws:states:local:000000000000:stateMachine:after-sales";

/// The SAM template's `DefinitionSubstitutions` and the step each one names.
const SUBSTITUTIONS: &[(&str, &str)] = &[
    ("DiagnoseFunctionArn", "diagnose"),
    ("ProposeFunctionArn", "propose"),
    ("ExecuteRefundFunctionArn", "execute-refund"),
    ("NotifyFunctionArn", "notify"),
    ("SurveyFunctionArn", "survey"),
];

fn local_arn(step: &str) -> String {
    format!("arn:aws:lambda:local:000000000000:function:aftersales-{step}")
}

/// Loads the workflow file with its `${...}Arn` placeholders replaced by local ARNs.
pub fn load_machine(path: &Path) -> Result<StateMachine, String> {
    let mut text = std::fs::read_to_string(path)
        .map_err(|e| format!("the workflow {} cannot be read: {e}", path.display()))?;
    for (name, step) in SUBSTITUTIONS {
        text = text.replace(&format!("${{{name}}}"), &local_arn(step));
    }
    if let Some(at) = text.find("${") {
        let rest: String = text[at..].chars().take(60).collect();
        return Err(format!(
            "the workflow {} has a substitution the local stack does not know: {rest}",
            path.display()
        ));
    }
    StateMachine::from_json_str(&text)
        .map_err(|e| format!("the workflow {} is not valid: {e}", path.display()))
}

/// The engine's clock, `scale` times faster than the wall clock (waits end `scale` times sooner).
#[derive(Debug)]
pub struct ScaledClock {
    origin: Timestamp,
    scale: u32,
}

impl ScaledClock {
    pub fn new(scale: u32) -> ScaledClock {
        ScaledClock {
            origin: Timestamp::now(),
            scale: scale.max(1),
        }
    }

    /// How long to really wait until the engine's `deadline`.
    fn real_wait(&self, deadline: Timestamp) -> std::time::Duration {
        let left = deadline.duration_since(self.now());
        if left <= SignedDuration::ZERO {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::try_from(left / i32::try_from(self.scale).unwrap_or(i32::MAX))
            .unwrap_or(std::time::Duration::ZERO)
    }
}

#[async_trait]
impl asl::Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        let real = Timestamp::now().duration_since(self.origin);
        let scaled = real
            .checked_mul(i32::try_from(self.scale).unwrap_or(i32::MAX))
            .unwrap_or(SignedDuration::MAX);
        self.origin.checked_add(scaled).unwrap_or(Timestamp::MAX)
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        tokio::time::sleep(self.real_wait(deadline)).await;
    }

    fn is_real(&self) -> bool {
        true
    }
}

impl aftersales_service::clock::Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        asl::Clock::now(self)
    }
}

/// Department feedback into the store's queues.
struct LocalQueues(LocalStore);

#[async_trait]
impl FeedbackPublisher for LocalQueues {
    async fn publish(&self, messages: &[FeedbackMessage]) -> Result<(), PublishError> {
        let mut undelivered = Vec::new();
        for message in messages {
            let body = json!({"ticket_id": message.ticket_id.as_str(), "body": message.body});
            if let Err(error) = self
                .0
                .enqueue(
                    &department_name(message.department),
                    &message.dedup_id,
                    body,
                )
                .await
            {
                tracing::warn!(ticket_id = %message.ticket_id, %error, "feedback not queued");
                undelivered.push(UndeliveredMessage {
                    dedup_id: message.dedup_id.clone(),
                    ticket_id: message.ticket_id.clone(),
                    department: message.department,
                    code: "LocalStoreUnavailable".to_owned(),
                    attempts: 1,
                });
            }
        }
        if undelivered.is_empty() {
            Ok(())
        } else {
            Err(PublishError::Undelivered { undelivered })
        }
    }
}

/// A department's queue name, as the domain spells it (`quality`, `logistics`, ...).
pub fn department_name(department: Department) -> String {
    serde_json::to_value(department)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{department:?}").to_lowercase())
}

/// Customer notifications into the store's outbox instead of being sent.
struct LocalOutbox(LocalStore);

const OUTBOX: &str = "outbox";

#[async_trait]
impl NotificationChannel for LocalOutbox {
    fn name(&self) -> &'static str {
        OUTBOX
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<Delivery, NotifyError> {
        let body = serde_json::to_value(msg).map_err(|e| NotifyError::Rejected {
            channel: OUTBOX,
            reason: e.to_string(),
        })?;
        let seq = self
            .0
            .push_outbox(&msg.idempotency_key().to_string(), body)
            .await
            .map_err(|e| NotifyError::Retryable {
                channel: OUTBOX,
                reason: e.to_string(),
            })?;
        Ok(Delivery {
            channel: OUTBOX,
            reference: Some(format!("outbox-{seq}")),
        })
    }
}

/// The workflow's Lambda functions, called in-process.
struct Steps {
    diagnose: diagnose::DiagnoseDeps,
    propose: propose::ProposeDeps,
    refund: execute_refund::ExecuteRefundDeps,
    notify: notify::NotifyDeps,
    survey: survey::SurveyDeps,
}

fn task_failure(error: StepError) -> TaskFailure {
    TaskFailure::new(error.name(), error.to_string())
}

fn output<T: serde::Serialize>(out: Result<T, StepError>) -> Result<Value, TaskFailure> {
    let out = out.map_err(task_failure)?;
    serde_json::to_value(out).map_err(|e| TaskFailure::new("States.Runtime", e.to_string()))
}

#[async_trait]
impl ResourceResolver for Steps {
    async fn invoke(&self, request: TaskRequest) -> Result<Value, TaskFailure> {
        let function = match &request.kind {
            ResourceKind::LambdaFunction { function_arn } => function_arn.as_str(),
            ResourceKind::LambdaInvoke { function_name } => function_name.as_str(),
            _ => {
                return Err(TaskFailure::new(
                    "States.Runtime",
                    format!(
                        "the local stack runs Lambda tasks only, not {}",
                        request.resource
                    ),
                ));
            }
        };
        let step = SUBSTITUTIONS
            .iter()
            .map(|(_, step)| *step)
            .find(|step| function == local_arn(step))
            .ok_or_else(|| {
                TaskFailure::new(
                    "Lambda.ResourceNotFoundException",
                    format!("no local function {function}"),
                )
            })?;
        let input = request.input;
        match step {
            "diagnose" => {
                let input = steps::parse_input(input).map_err(task_failure)?;
                output(diagnose::handle(input, &self.diagnose).await)
            }
            "propose" => {
                let input = steps::parse_input(input).map_err(task_failure)?;
                output(propose::handle(input, &self.propose).await)
            }
            "execute-refund" => {
                let input = steps::parse_input(input).map_err(task_failure)?;
                output(execute_refund::handle(input, &self.refund).await)
            }
            "notify" => {
                let input = steps::parse_input(input).map_err(task_failure)?;
                output(notify::handle(input, &self.notify).await)
            }
            _ => {
                let input = steps::parse_input(input).map_err(task_failure)?;
                output(survey::handle(input, &self.survey).await)
            }
        }
    }
}

/// Starts, resumes and wakes the local executions.
pub struct Runner {
    store: LocalStore,
    machine: Option<StateMachine>,
    missing: String,
    steps: Steps,
    clock: Arc<ScaledClock>,
    /// One driver at a time per execution.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Which execution each pending task token belongs to.
    tokens: Mutex<Tokens>,
    /// When each sleeping execution wakes (engine time).
    wakeups: Mutex<Wakeups>,
    timer: tokio::sync::Notify,
    /// Set by [`Runner::stop`]: nothing new is driven; parked runs stay in the store.
    stopping: AtomicBool,
    /// Drives in flight, and a wake-up when the last one ends.
    active: AtomicUsize,
    idle: tokio::sync::Notify,
    /// Woken whenever a run's tokens and wake-up are noted after an advance.
    noted: tokio::sync::Notify,
    policy: Arc<Policy>,
    /// Runs stored with their ticket by [`IntakeStore::create`], not yet reported started:
    /// ticket id → execution ARN.
    fresh: Mutex<HashMap<String, String>>,
    /// Where advances run: a runtime of its own, on threads of low priority.
    background: Background,
    /// Advances at once.
    drivers: Arc<tokio::sync::Semaphore>,
    /// Runs waiting for a driver.
    queued: AtomicUsize,
    /// Intakes in flight, and when the last one was seen (ms since `origin`).
    intakes: AtomicUsize,
    last_intake: std::sync::atomic::AtomicU64,
    origin: std::time::Instant,
}

/// Advances wait while an intake was seen this recently...
const QUIET: std::time::Duration = std::time::Duration::from_millis(10);
/// ...but never longer than this each, so runs still move under sustained load.
const MAX_DEFER: std::time::Duration = std::time::Duration::from_secs(5);

/// Pending task tokens: which run each belongs to, and each run's.
#[derive(Default)]
struct Tokens {
    ticket_of: HashMap<String, String>,
    of_ticket: HashMap<String, Vec<String>>,
}

/// When each sleeping run wakes (engine time), soonest first.
#[derive(Default)]
struct Wakeups {
    at: HashMap<String, Timestamp>,
    order: std::collections::BTreeSet<(Timestamp, String)>,
}

impl Wakeups {
    fn set(&mut self, ticket: &str, when: Option<Timestamp>) {
        if let Some(old) = self.at.remove(ticket) {
            self.order.remove(&(old, ticket.to_owned()));
        }
        if let Some(when) = when {
            self.at.insert(ticket.to_owned(), when);
            self.order.insert((when, ticket.to_owned()));
        }
    }

    fn next(&self) -> Option<Timestamp> {
        self.order.first().map(|(at, _)| *at)
    }

    /// The runs due at `now`, no longer listed.
    fn take_due(&mut self, now: Timestamp) -> Vec<String> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.order.first() {
            if *at > now {
                break;
            }
            if let Some((_, ticket)) = self.order.pop_first() {
                self.at.remove(&ticket);
                due.push(ticket);
            }
        }
        due
    }
}

/// A tokio runtime of its own for the background advances ([`BACKGROUND_THREADS`] workers), so
/// they never hold up the HTTP workers; it stops when dropped.
struct Background {
    handle: tokio::runtime::Handle,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Background {
    fn start() -> Background {
        let (give, take) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("run-advances".into())
            .spawn(move || {
                lower_priority();
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(BACKGROUND_THREADS)
                    .thread_name("run-advances")
                    // Threads inherit their creator's priority; this covers those a thread of
                    // another runtime makes (spawn_blocking through the handle).
                    .on_thread_start(lower_priority)
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = give.send(Err(error.to_string()));
                        return;
                    }
                };
                let _ = give.send(Ok(runtime.handle().clone()));
                runtime.block_on(async move {
                    let _ = stopped.await;
                });
            });
        let started = spawned.map_err(|e| e.to_string()).and_then(|thread| {
            take.recv()
                .map_err(|e| e.to_string())
                .and_then(|h| h)
                .map(|handle| (handle, thread))
        });
        match started {
            Ok((handle, thread)) => Background {
                handle,
                stop: Mutex::new(Some(stop)),
                thread: Mutex::new(Some(thread)),
            },
            // No thread of its own: advances share the caller's runtime (at normal priority).
            Err(error) => {
                tracing::warn!(%error, "no background thread for run advances");
                Background {
                    handle: tokio::runtime::Handle::current(),
                    stop: Mutex::new(None),
                    thread: Mutex::new(None),
                }
            }
        }
    }

    /// Stops the runtime (dropping what it has not run) and waits for its thread.
    fn shutdown(&self) {
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Background {
    /// Stops the runtime without waiting: this may run on its own thread.
    fn drop(&mut self) {
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
    }
}

/// How long an answer waits for the advance that is about to park on its token.
const TOKEN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the notify step needs beyond the store: the return address and the survey page.
#[derive(Clone, Default)]
pub struct NotifySettings {
    pub return_address: Option<String>,
    pub survey_link: Option<SurveyLink>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn workflow_error(error: ApiError) -> WorkflowError {
    match error {
        ApiError::InvalidToken(_) => WorkflowError::InvalidToken,
        ApiError::TaskDoesNotExist(_) | ApiError::ExecutionNotRunning(_) => {
            WorkflowError::TaskDoesNotExist
        }
        other => WorkflowError::InvalidRequest {
            code: "InvalidOutput".to_owned(),
            message: other.to_string(),
        },
    }
}

fn unavailable(error: impl std::fmt::Display) -> WorkflowError {
    tracing::error!(%error, "local workflow store failed");
    WorkflowError::Transient {
        code: "LocalStoreUnavailable".to_owned(),
    }
}

impl Runner {
    /// `machine` is `Err(why)` when the workflow file is missing or invalid: requests are then
    /// stored but their runs refused with `why`, until `serve` restarts with a workflow.
    pub fn new(
        store: LocalStore,
        machine: Result<StateMachine, String>,
        policy: Arc<Policy>,
        scale: u32,
        notify_settings: NotifySettings,
    ) -> Arc<Runner> {
        let clock = Arc::new(ScaledClock::new(scale));
        let runner_policy = policy.clone();
        // The steps keep the wall clock, as `accept` and `respond` do: tickets, their timelines,
        // return windows and answers all share one time. Only the engine's waits run faster.
        let service_clock: Arc<dyn aftersales_service::clock::Clock> = Arc::new(SystemClock);
        let tickets: Arc<dyn aftersales_service::store::TicketStore> = Arc::new(store.clone());
        let steps = Steps {
            diagnose: diagnose::DiagnoseDeps {
                store: tickets.clone(),
                policy: policy.clone(),
                clock: service_clock.clone(),
            },
            propose: propose::ProposeDeps {
                store: tickets.clone(),
                policy: policy.clone(),
                clock: service_clock.clone(),
            },
            refund: execute_refund::ExecuteRefundDeps {
                store: tickets.clone(),
                ledger: Arc::new(store.clone()),
                gateway: Arc::new(InMemoryPaymentGateway::new()),
                clock: service_clock.clone(),
            },
            notify: notify::NotifyDeps {
                store: tickets.clone(),
                channels: FanOut::new(vec![Arc::new(LocalOutbox(store.clone()))]),
                policy: policy.clone(),
                clock: service_clock.clone(),
                return_address: notify_settings.return_address,
                survey_link: notify_settings.survey_link,
            },
            survey: survey::SurveyDeps {
                store: tickets,
                feedback: Arc::new(LocalQueues(store.clone())),
                policy,
                clock: service_clock,
            },
        };
        let (machine, missing) = match machine {
            Ok(machine) => (Some(machine), String::new()),
            Err(why) => (None, why),
        };
        Arc::new(Runner {
            store,
            machine,
            missing,
            steps,
            clock,
            locks: Mutex::default(),
            tokens: Mutex::default(),
            wakeups: Mutex::default(),
            timer: tokio::sync::Notify::new(),
            stopping: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
            noted: tokio::sync::Notify::new(),
            policy: runner_policy,
            fresh: Mutex::default(),
            background: Background::start(),
            drivers: Arc::new(tokio::sync::Semaphore::new(DRIVERS)),
            queued: AtomicUsize::new(0),
            intakes: AtomicUsize::new(0),
            last_intake: std::sync::atomic::AtomicU64::new(0),
            origin: std::time::Instant::now(),
        })
    }

    /// Runs waiting to be advanced plus those being advanced now.
    pub fn backlog(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// A new run of the workflow for `ticket`, not yet stored (None without a workflow).
    fn new_execution(&self, ticket: &TicketId) -> Option<Execution> {
        let machine = self.machine.as_ref()?;
        let options = StartOptions {
            name: Some(ticket.as_str().to_owned()),
            state_machine_arn: Some(STATE_MACHINE_ARN.to_owned()),
            ..StartOptions::default()
        };
        let input = accept::execution_input(ticket, &self.policy);
        Some(Execution::start(
            machine,
            input,
            options,
            self.clock.as_ref(),
        ))
    }

    /// Notes an intake starting or ending: advances wait while intake is busy.
    fn intake_seen(&self) {
        self.last_intake
            .store(self.since_origin_ms(), Ordering::Relaxed);
    }

    fn since_origin_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Waits (at most [`MAX_DEFER`]) until no intake is in flight and none was for [`QUIET`]:
    /// under a burst of requests the advances give the CPU to intake, and catch up after.
    async fn wait_for_quiet(&self) {
        let deadline = tokio::time::Instant::now() + MAX_DEFER;
        let quiet = u64::try_from(QUIET.as_millis()).unwrap_or(u64::MAX);
        loop {
            let busy = self.intakes.load(Ordering::Relaxed) > 0
                || self
                    .since_origin_ms()
                    .saturating_sub(self.last_intake.load(Ordering::Relaxed))
                    < quiet;
            if !busy || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(QUIET).await;
        }
    }

    /// Stops driving runs: no new advance starts, and this returns once the advances in flight
    /// have stored their runs (or after `grace`). Parked runs resume at the next start.
    pub async fn stop(&self, grace: std::time::Duration) -> bool {
        self.stopping.store(true, Ordering::SeqCst);
        self.timer.notify_one();
        let deadline = tokio::time::Instant::now() + grace;
        let idle = loop {
            let idle = self.idle.notified();
            if self.active.load(Ordering::SeqCst) == 0 {
                break true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                break self.active.load(Ordering::SeqCst) == 0;
            }
        };
        // Whatever is left of the background runtime goes with it, so every handle on the
        // store is released and the file closes cleanly.
        // (A short wait: nothing there waits on this runtime.)
        self.background.shutdown();
        idle
    }

    fn lock_for(&self, ticket: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.locks)
            .entry(ticket.to_owned())
            .or_default()
            .clone()
    }

    /// Resumes every running execution in the store and starts the timer; returns how many.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, String> {
        let runs = self.store.running_runs().await.map_err(|e| e.to_string())?;
        let running = runs.len();
        for (ticket, execution) in runs {
            self.note(&ticket, &execution);
            self.spawn_drive(ticket);
        }
        let runner = Arc::clone(self);
        tokio::spawn(async move { runner.timer_loop().await });
        Ok(running)
    }

    fn note(&self, ticket: &str, execution: &Execution) {
        {
            let mut tokens = lock(&self.tokens);
            for token in tokens.of_ticket.remove(ticket).unwrap_or_default() {
                tokens.ticket_of.remove(&token);
            }
            let pending = execution.pending_task_tokens();
            for token in &pending {
                tokens.ticket_of.insert(token.clone(), ticket.to_owned());
            }
            if !pending.is_empty() {
                tokens.of_ticket.insert(ticket.to_owned(), pending);
            }
        }
        lock(&self.wakeups).set(ticket, execution.next_wakeup());
        self.timer.notify_one();
        self.noted.notify_waiters();
    }

    /// The ticket whose run waits on `token`. A waiting step hands its token to people (the
    /// ticket's `waiting`) before the advance that runs it has stored the run, so an answer can
    /// arrive first: it then waits for the advances in flight to store their runs.
    async fn ticket_waiting_on(&self, token: &str) -> Result<String, WorkflowError> {
        let deadline = tokio::time::Instant::now() + TOKEN_WAIT;
        loop {
            let noted = self.noted.notified();
            if let Some(ticket) = lock(&self.tokens).ticket_of.get(token).cloned() {
                return Ok(ticket);
            }
            if self.active.load(Ordering::SeqCst) == 0 {
                return Err(WorkflowError::TaskDoesNotExist);
            }
            if tokio::time::timeout_at(deadline, noted).await.is_err() {
                return Err(WorkflowError::TaskDoesNotExist);
            }
        }
    }

    /// Queues an advance of `ticket`'s run on the background thread.
    fn spawn_drive(self: &Arc<Self>, ticket: String) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        self.queued.fetch_add(1, Ordering::SeqCst);
        let runner = Arc::clone(self);
        self.background.handle.spawn(async move {
            let permit = Arc::clone(&runner.drivers).acquire_owned().await;
            runner.queued.fetch_sub(1, Ordering::SeqCst);
            runner.wait_for_quiet().await;
            // Once stopping, queued runs stay as stored: they resume at the next start.
            if permit.is_ok()
                && !runner.stopping.load(Ordering::SeqCst)
                && let Err(error) = runner.drive(&ticket).await
            {
                tracing::error!(ticket_id = %ticket, %error, "local run not advanced");
            }
            drop(permit);
            if runner.active.fetch_sub(1, Ordering::SeqCst) == 1 {
                runner.idle.notify_waiters();
            }
        });
    }

    /// Runs what can run now, then persists the execution.
    async fn drive(&self, ticket: &str) -> Result<(), String> {
        let guard = self.lock_for(ticket);
        let _held = guard.lock().await;
        let Some(mut execution) = self.store.run(ticket).await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        execution.advance(&self.steps, self.clock.as_ref()).await;
        self.store
            .put_run(ticket, &execution)
            .await
            .map_err(|e| e.to_string())?;
        self.note(ticket, &execution);
        Ok(())
    }

    async fn timer_loop(self: Arc<Self>) {
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let next = lock(&self.wakeups).next();
            let wait = next.map(|at| self.clock.real_wait(at));
            match wait {
                Some(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.timer.notified() => continue,
                    }
                }
                None => {
                    self.timer.notified().await;
                    continue;
                }
            }
            let now = asl::Clock::now(self.clock.as_ref());
            let due: Vec<String> = { lock(&self.wakeups).take_due(now) };
            for ticket in due {
                self.spawn_drive(ticket);
            }
        }
    }

    /// Applies `change` to the execution waiting on `token` and persists it, then advances it.
    async fn resume(
        self: &Arc<Self>,
        token: &str,
        change: impl FnOnce(&mut Execution) -> Result<(), ApiError>,
    ) -> Result<(), WorkflowError> {
        let ticket = self.ticket_waiting_on(token).await?;
        {
            let guard = self.lock_for(&ticket);
            let _held = guard.lock().await;
            let mut execution = self
                .store
                .run(&ticket)
                .await
                .map_err(unavailable)?
                .ok_or(WorkflowError::TaskDoesNotExist)?;
            change(&mut execution).map_err(workflow_error)?;
            self.store
                .put_run(&ticket, &execution)
                .await
                .map_err(unavailable)?;
            self.note(&ticket, &execution);
        }
        self.spawn_drive(ticket);
        Ok(())
    }
}

/// The `WorkflowClient` the HTTP handlers get.
#[derive(Clone)]
pub struct LocalWorkflow(pub Arc<Runner>);

#[async_trait]
impl WorkflowClient for LocalWorkflow {
    async fn start(
        &self,
        ticket_id: &TicketId,
        input: &Value,
    ) -> Result<StartOutcome, WorkflowError> {
        let runner = &self.0;
        let Some(machine) = &runner.machine else {
            tracing::error!(ticket_id = %ticket_id, reason = %runner.missing, "run not started");
            return Err(WorkflowError::Failed {
                code: "StateMachineDoesNotExist".to_owned(),
                message: runner.missing.clone(),
            });
        };
        // Stored with its ticket by `IntakeStore::create` (and already queued to advance).
        if let Some(execution_arn) = lock(&runner.fresh).remove(ticket_id.as_str()) {
            return Ok(StartOutcome::Started { execution_arn });
        }
        let options = StartOptions {
            name: Some(ticket_id.as_str().to_owned()),
            state_machine_arn: Some(STATE_MACHINE_ARN.to_owned()),
            ..StartOptions::default()
        };
        let execution = Execution::start(machine, input.clone(), options, runner.clock.as_ref());
        let execution_arn = execution.info().execution_arn.clone();
        let new = runner
            .store
            .insert_run(ticket_id.as_str(), &execution)
            .await
            .map_err(unavailable)?;
        if new {
            runner.spawn_drive(ticket_id.as_str().to_owned());
            Ok(StartOutcome::Started { execution_arn })
        } else {
            Ok(StartOutcome::AlreadyStarted { execution_arn })
        }
    }

    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), WorkflowError> {
        let output = output.clone();
        self.0
            .resume(token, move |e| e.send_task_success(token, output))
            .await
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), WorkflowError> {
        self.0
            .resume(token, |e| {
                e.send_task_failure(token, Some(error.to_owned()), Some(cause.to_owned()))
            })
            .await
    }

    async fn send_task_heartbeat(&self, token: &str) -> Result<(), WorkflowError> {
        let clock = Arc::clone(&self.0.clock);
        self.0
            .resume(token, move |e| e.send_task_heartbeat(token, clock.as_ref()))
            .await
    }
}

/// The store `accept` gets: creating a ticket also stores its workflow run in the same commit
/// (so a 202 costs one group commit, and a ticket is never stored without its run), and queues
/// the run's first advance; `LocalWorkflow::start` then finds it started. Everything else is
/// the [`LocalStore`].
#[derive(Clone)]
pub struct IntakeStore {
    store: LocalStore,
    runner: Arc<Runner>,
}

impl IntakeStore {
    pub fn new(store: LocalStore, runner: Arc<Runner>) -> IntakeStore {
        IntakeStore { store, runner }
    }

    async fn create_with_run(
        &self,
        ticket: &Ticket,
        first: &AuditEvent,
    ) -> Result<Created, StoreError> {
        let runner = &self.runner;
        let run = runner.new_execution(&ticket.id);
        let arn = run.as_ref().map(|run| run.info().execution_arn.clone());
        let created = self
            .store
            .create_with_run(ticket, first, run.as_ref())
            .await?;
        if let (Created::New, Some(arn)) = (&created, arn) {
            lock(&runner.fresh).insert(ticket.id.as_str().to_owned(), arn);
            runner.spawn_drive(ticket.id.as_str().to_owned());
        }
        Ok(created)
    }
}

#[async_trait]
impl TicketStore for IntakeStore {
    async fn create(&self, ticket: &Ticket, first: &AuditEvent) -> Result<Created, StoreError> {
        let runner = &self.runner;
        runner.intakes.fetch_add(1, Ordering::Relaxed);
        runner.intake_seen();
        let created = self.create_with_run(ticket, first).await;
        runner.intake_seen();
        runner.intakes.fetch_sub(1, Ordering::Relaxed);
        created
    }

    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        self.store.get(id).await
    }

    async fn find_by_request(&self, request_id: &RequestId) -> Result<Option<Ticket>, StoreError> {
        self.store.find_by_request(request_id).await
    }

    async fn save(
        &self,
        ticket: &Ticket,
        expected_version: u64,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.store.save(ticket, expected_version, audit).await
    }

    async fn audit_trail(&self, id: &TicketId) -> Result<Vec<AuditEvent>, StoreError> {
        self.store.audit_trail(id).await
    }

    async fn tickets_by_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, StoreError> {
        self.store.tickets_by_customer(customer, limit).await
    }

    async fn open_tickets_due_before(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, StoreError> {
        self.store.open_tickets_due_before(before, limit).await
    }

    async fn history(
        &self,
        request: &ServiceRequest,
        excluding: &TicketId,
        since: Timestamp,
    ) -> Result<History, StoreError> {
        self.store.history(request, excluding, since).await
    }
}
