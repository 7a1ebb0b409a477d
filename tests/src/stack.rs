//! The after-sales service in one process, for the workflow path tests: the real `accept` and
//! `respond` HTTP handlers and the real step handlers (`aftersales_service::handlers::steps`)
//! over an in-memory store, an in-memory payment gateway, an outbox notification channel and an
//! in-memory feedback publisher, all on the interpreter's virtual clock.
//!
//! - [`InterpreterWorkflow`] is the [`WorkflowClient`] `accept` and `respond` call: `start`
//!   starts an interpreter execution of `workflows/after-sales.asl.json` (execution name = ticket
//!   id), the task callbacks go to the execution that issued the token.
//! - [`Handlers`] is the interpreter's [`ResourceResolver`]: each `${...}Function` ARN runs its
//!   step handler with the payload the state built, and a step error reaches the state machine
//!   under its stable name (`Retryable`, `PaymentDeclined`, ...), as the Lambda runtime reports it.
//! - [`Stack`] wires them together and runs an execution until it ends or waits for a person.

use crate::workflow::{after_sales_machine, function_of};
use aftersales_domain::lifecycle::AuditEvent;
use aftersales_domain::ticket::Ticket;
use aftersales_domain::{Department, Policy, TicketId};
use aftersales_service::adapters::feedback::{FeedbackMessage, InMemoryFeedbackPublisher};
use aftersales_service::adapters::notify::{
    Delivery, FanOut, NotificationChannel, NotifyError, OutboxChannel, OutgoingMessage,
};
use aftersales_service::adapters::payment::{InMemoryPaymentGateway, RefundReceipt, RefundRequest};
use aftersales_service::adapters::workflow::{StartOutcome, WorkflowClient, WorkflowError};
use aftersales_service::handlers::steps::diagnose::DiagnoseDeps;
use aftersales_service::handlers::steps::execute_refund::ExecuteRefundDeps;
use aftersales_service::handlers::steps::notify::{NotifyDeps, SurveyLink};
use aftersales_service::handlers::steps::propose::ProposeDeps;
use aftersales_service::handlers::steps::survey::SurveyDeps;
use aftersales_service::handlers::steps::{
    StepError, diagnose, execute_refund, notify, parse_input, propose, survey,
};
use aftersales_service::handlers::{accept, respond};
use aftersales_service::signature::{WebhookSecret, sign};
use aftersales_service::store::{MemoryStore, StoreError, TicketStore};
use asl::{
    ApiError, Clock as _, Execution, ExecutionStatus, ResourceKind, ResourceResolver, StartOptions,
    StateMachine, TaskFailure, TaskRequest, VirtualClock,
};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The webhook secret requests are signed with.
pub const SECRET: &str = "whsec_workflow_paths";

/// The service's clock reading the interpreter's virtual time, so steps, `accept` and `respond`
/// see the time the workflow's waits and timeouts moved to.
pub struct SharedClock(pub Arc<VirtualClock>);

impl aftersales_service::clock::Clock for SharedClock {
    fn now(&self) -> Timestamp {
        self.0.now()
    }
}

/// The outbox, noting the virtual time each message (each idempotency key) was first sent.
pub struct TimedOutbox {
    pub outbox: OutboxChannel,
    clock: Arc<VirtualClock>,
    sent: Mutex<Vec<(String, String, Timestamp)>>,
    /// A milestone whose next message fails, retryably (the channel's provider is down).
    fail_next: Mutex<Option<String>>,
}

impl TimedOutbox {
    /// (milestone, time) of each message, in sending order.
    pub fn sent(&self) -> Vec<(String, Timestamp)> {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, m, t)| (m.clone(), *t))
            .collect()
    }
}

#[async_trait::async_trait]
impl NotificationChannel for TimedOutbox {
    fn name(&self) -> &'static str {
        self.outbox.name()
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<Delivery, NotifyError> {
        let key = msg.idempotency_key().as_str().to_owned();
        let milestone = serde_json::to_value(msg.milestone())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        {
            let mut fail = self.fail_next.lock().unwrap_or_else(|e| e.into_inner());
            if fail.as_deref() == Some(milestone.as_str()) {
                *fail = None;
                return Err(NotifyError::Retryable {
                    channel: self.outbox.name(),
                    reason: "503 from the provider".into(),
                });
            }
        }
        {
            let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            if !sent.iter().any(|(k, _, _)| *k == key) {
                sent.push((key, milestone, self.clock.now()));
            }
        }
        self.outbox.send(msg).await
    }
}

/// Step Functions for `accept` and `respond`: one interpreter execution per ticket.
pub struct InterpreterWorkflow {
    machine: StateMachine,
    clock: Arc<VirtualClock>,
    runs: Mutex<BTreeMap<String, Execution>>,
    /// While set, every SendTaskSuccess comes too late: the waiting task timed out.
    late: AtomicBool,
}

impl InterpreterWorkflow {
    pub fn new(machine: StateMachine, clock: Arc<VirtualClock>) -> Self {
        InterpreterWorkflow {
            machine,
            clock,
            runs: Mutex::new(BTreeMap::new()),
            late: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Execution>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the ticket's execution out (to advance it without holding the lock).
    fn take(&self, ticket_id: &str) -> Option<Execution> {
        self.lock().remove(ticket_id)
    }

    fn put(&self, ticket_id: &str, execution: Execution) {
        self.lock().insert(ticket_id.to_owned(), execution);
    }

    /// Runs `f` on the execution holding `token`.
    fn with_token<T>(
        &self,
        token: &str,
        f: impl FnOnce(&mut Execution) -> Result<T, ApiError>,
    ) -> Result<T, WorkflowError> {
        let mut runs = self.lock();
        let execution = runs
            .values_mut()
            .find(|e| e.pending_task_tokens().iter().any(|t| t == token));
        match execution {
            Some(execution) => f(execution).map_err(|e| match e {
                ApiError::TaskDoesNotExist(_) | ApiError::ExecutionNotRunning(_) => {
                    WorkflowError::TaskDoesNotExist
                }
                ApiError::InvalidToken(_) => WorkflowError::InvalidToken,
                other => WorkflowError::InvalidRequest {
                    code: "InvalidOutput".into(),
                    message: other.to_string(),
                },
            }),
            // Tokens of finished tasks are no longer pending anywhere.
            None => Err(WorkflowError::TaskDoesNotExist),
        }
    }
}

#[async_trait::async_trait]
impl WorkflowClient for InterpreterWorkflow {
    async fn start(
        &self,
        ticket_id: &TicketId,
        input: &Value,
    ) -> Result<StartOutcome, WorkflowError> {
        let mut runs = self.lock();
        if let Some(existing) = runs.get(ticket_id.as_str()) {
            return Ok(StartOutcome::AlreadyStarted {
                execution_arn: existing.info().execution_arn.clone(),
            });
        }
        let options = StartOptions {
            name: Some(ticket_id.as_str().to_owned()),
            ..StartOptions::default()
        };
        let execution =
            Execution::start(&self.machine, input.clone(), options, self.clock.as_ref());
        let execution_arn = execution.info().execution_arn.clone();
        runs.insert(ticket_id.as_str().to_owned(), execution);
        Ok(StartOutcome::Started { execution_arn })
    }

    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), WorkflowError> {
        if self.late.load(Ordering::SeqCst) {
            return Err(WorkflowError::TaskTimedOut);
        }
        self.with_token(token, |e| e.send_task_success(token, output.clone()))
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), WorkflowError> {
        self.with_token(token, |e| {
            e.send_task_failure(token, Some(error.to_owned()), Some(cause.to_owned()))
        })
    }

    async fn send_task_heartbeat(&self, token: &str) -> Result<(), WorkflowError> {
        let clock = self.clock.clone();
        self.with_token(token, |e| e.send_task_heartbeat(token, clock.as_ref()))
    }
}

/// One step invocation: (function, input, output or error name).
/// The store as execute-refund sees it: while `conflicts` lasts, each save loses the race
/// (another writer keeps changing the ticket), as a `Conflict` the step reports after its own
/// re-applies.
pub struct ContendedStore {
    pub inner: Arc<MemoryStore>,
    pub conflicts: AtomicU32,
}

#[async_trait::async_trait]
impl TicketStore for ContendedStore {
    async fn create(
        &self,
        ticket: &Ticket,
        first: &AuditEvent,
    ) -> Result<aftersales_service::store::Created, StoreError> {
        self.inner.create(ticket, first).await
    }
    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        self.inner.get(id).await
    }
    async fn find_by_request(
        &self,
        r: &aftersales_domain::RequestId,
    ) -> Result<Option<Ticket>, StoreError> {
        self.inner.find_by_request(r).await
    }
    async fn save(
        &self,
        ticket: &Ticket,
        expected: u64,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let lost = self
            .conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if lost {
            return Err(StoreError::Conflict(format!(
                "ticket {} changed",
                ticket.id
            )));
        }
        self.inner.save(ticket, expected, audit).await
    }
    async fn audit_trail(&self, id: &TicketId) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.audit_trail(id).await
    }
    async fn tickets_by_customer(
        &self,
        customer: &aftersales_domain::CustomerId,
        limit: usize,
    ) -> Result<Vec<aftersales_service::store::TicketSummary>, StoreError> {
        self.inner.tickets_by_customer(customer, limit).await
    }
    async fn open_tickets_due_before(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<aftersales_service::store::TicketSummary>, StoreError> {
        self.inner.open_tickets_due_before(before, limit).await
    }
    async fn history(
        &self,
        request: &aftersales_domain::ServiceRequest,
        excluding: &TicketId,
        since: Timestamp,
    ) -> Result<aftersales_domain::History, StoreError> {
        self.inner.history(request, excluding, since).await
    }
}

pub type Call = (String, Value, Result<Value, String>);

/// The five step handlers with their dependencies, as the Lambda binaries run them.
pub struct Handlers {
    pub diagnose: DiagnoseDeps,
    pub propose: ProposeDeps,
    pub execute_refund: ExecuteRefundDeps,
    pub notify: NotifyDeps,
    pub survey: SurveyDeps,
    /// Every invocation: (function, input, result or error name).
    calls: Mutex<Vec<Call>>,
}

impl Handlers {
    /// Every invocation so far: (function, input, output or error name).
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn run(&self, function: &str, input: Value) -> Result<Value, StepError> {
        fn out<T: serde::Serialize>(value: T) -> Result<Value, StepError> {
            serde_json::to_value(value).map_err(|e| StepError::InvalidInput(e.to_string()))
        }
        match function {
            "diagnose" => out(diagnose::handle(parse_input(input)?, &self.diagnose).await?),
            "propose" => out(propose::handle(parse_input(input)?, &self.propose).await?),
            "execute-refund" => {
                out(execute_refund::handle(parse_input(input)?, &self.execute_refund).await?)
            }
            "notify" => out(notify::handle(parse_input(input)?, &self.notify).await?),
            "survey" => out(survey::handle(parse_input(input)?, &self.survey).await?),
            other => Err(StepError::InvalidInput(format!("unknown function {other}"))),
        }
    }
}

#[async_trait::async_trait]
impl ResourceResolver for Handlers {
    async fn invoke(&self, request: TaskRequest) -> Result<Value, TaskFailure> {
        let function = match &request.kind {
            ResourceKind::LambdaInvoke { function_name } => function_of(function_name),
            ResourceKind::LambdaFunction { function_arn } => function_of(function_arn),
            _ => None,
        }
        .ok_or_else(|| {
            TaskFailure::new(
                "States.TaskFailed",
                format!(
                    "{} is not one of the workflow's functions",
                    request.resource
                ),
            )
        })?
        .to_owned();
        // The token the state put in the payload must be the state's own.
        if let Some(token) = &request.task_token
            && request.input.get("task_token").and_then(Value::as_str) != Some(token.as_str())
        {
            return Err(TaskFailure::new(
                "States.TaskFailed",
                format!(
                    "{}: the payload's task_token is not $$.Task.Token",
                    request.state_name
                ),
            ));
        }
        let result = self.run(&function, request.input.clone()).await;
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push((
            function.clone(),
            request.input.clone(),
            result.clone().map_err(|e| e.name().to_owned()),
        ));
        // The Lambda runtime reports the error type as the variant's stable name.
        result.map_err(|e| TaskFailure::new(e.name(), e.to_string()))
    }
}

/// An HTTP answer: status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: i64,
    pub body: Value,
}

/// The whole service in one process, on one virtual clock.
pub struct Stack {
    pub clock: Arc<VirtualClock>,
    pub store: Arc<MemoryStore>,
    /// execute-refund's view of `store` (see [`ContendedStore`]).
    pub refund_store: Arc<ContendedStore>,
    pub gateway: Arc<InMemoryPaymentGateway>,
    pub outbox: Arc<TimedOutbox>,
    pub feedback: Arc<InMemoryFeedbackPublisher>,
    pub workflow: Arc<InterpreterWorkflow>,
    pub handlers: Handlers,
    pub policy: Arc<Policy>,
    accept: accept::Deps,
    respond: respond::Deps,
}

impl Stack {
    /// A stack whose clock starts at `start`, with the default policy.
    pub fn new(start: Timestamp) -> Stack {
        Stack::with_policy(start, Policy::default_policy())
    }

    pub fn with_policy(start: Timestamp, policy: Policy) -> Stack {
        let clock = Arc::new(VirtualClock::new(start));
        let service_clock: Arc<dyn aftersales_service::clock::Clock> =
            Arc::new(SharedClock(clock.clone()));
        let store = Arc::new(MemoryStore::new());
        let gateway = Arc::new(InMemoryPaymentGateway::new());
        let outbox = Arc::new(TimedOutbox {
            outbox: OutboxChannel::new(),
            clock: clock.clone(),
            sent: Mutex::new(Vec::new()),
            fail_next: Mutex::new(None),
        });
        let feedback = Arc::new(InMemoryFeedbackPublisher::new());
        let refund_store = Arc::new(ContendedStore {
            inner: store.clone(),
            conflicts: AtomicU32::new(0),
        });
        let policy = Arc::new(policy);
        let workflow = Arc::new(InterpreterWorkflow::new(
            after_sales_machine(),
            clock.clone(),
        ));
        let secret = || WebhookSecret::new(SECRET).expect("test secret");
        let handlers = Handlers {
            diagnose: DiagnoseDeps {
                store: store.clone(),
                policy: policy.clone(),
                clock: service_clock.clone(),
            },
            propose: ProposeDeps {
                store: store.clone(),
                policy: policy.clone(),
                clock: service_clock.clone(),
            },
            execute_refund: ExecuteRefundDeps {
                store: refund_store.clone(),
                ledger: store.clone(),
                gateway: gateway.clone(),
                clock: service_clock.clone(),
            },
            notify: NotifyDeps {
                store: store.clone(),
                channels: FanOut::new(vec![outbox.clone()]),
                policy: policy.clone(),
                clock: service_clock.clone(),
                return_address: Some("Returns, 88 Warehouse Road, Shanghai".to_owned()),
                survey_link: Some(SurveyLink {
                    template: "https://shop.example/survey/{ticket_id}".to_owned(),
                    secret: Some(secret()),
                }),
            },
            survey: SurveyDeps {
                store: store.clone(),
                feedback: feedback.clone(),
                policy: policy.clone(),
                clock: service_clock.clone(),
            },
            calls: Mutex::new(Vec::new()),
        };
        let accept = accept::Deps {
            store: store.clone(),
            workflow: workflow.clone(),
            clock: service_clock.clone(),
            policy: policy.clone(),
            secrets: vec![secret()],
        };
        let respond = respond::Deps {
            store: store.clone(),
            workflow: workflow.clone(),
            clock: service_clock,
            secrets: vec![secret()],
        };
        Stack {
            clock,
            store,
            refund_store,
            gateway,
            outbox,
            feedback,
            workflow,
            handlers,
            policy,
            accept,
            respond,
        }
    }

    /// A JSON request signed now, as API Gateway hands it to the function.
    fn signed(&self, path: &str, body: &Value) -> ApiGatewayV2httpRequest {
        let bytes = serde_json::to_vec(body).expect("JSON body");
        let secret = WebhookSecret::new(SECRET).expect("test secret");
        let signature = sign(&secret, self.clock.now(), &bytes);
        let body = String::from_utf8(bytes).expect("UTF-8 JSON");
        serde_json::from_value(json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"content-type": "application/json", "x-aftersales-signature": signature},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "api.example",
                "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "192.0.2.1", "userAgent": "storefront"},
                "requestId": "req-1", "routeKey": "$default", "stage": "$default",
                "time": "01/Nov/2026:00:00:00 +0000", "timeEpoch": 0
            },
            "body": body,
            "isBase64Encoded": false
        }))
        .expect("API Gateway event")
    }

    fn answer(response: ApiGatewayV2httpResponse) -> Answer {
        let body = match &response.body {
            Some(Body::Text(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        Answer {
            status: response.status_code,
            body,
        }
    }

    /// `POST /v1/requests`: the storefront submits `request`; the workflow starts.
    pub async fn submit(&self, request: &Value) -> Answer {
        let event = self.signed(accept::ROUTE, request);
        Self::answer(accept::handle(event, &self.accept).await)
    }

    /// `POST /v1/tickets/{id}/responses`: a customer, the warehouse or an agent answers.
    pub async fn respond(&self, ticket_id: &str, answer: &Value) -> Answer {
        let path = format!("/v1/tickets/{ticket_id}/responses");
        let event = self.signed(&path, answer);
        Self::answer(respond::handle(event, &self.respond).await)
    }

    /// Runs the ticket's execution until it ends or waits for a person (a pending task token):
    /// Wait states and retry intervals pass on the virtual clock; a person's deadline only
    /// passes through [`Stack::no_answer`].
    pub async fn settle(&self, ticket_id: &str) -> Result<ExecutionStatus, String> {
        let mut execution = self
            .workflow
            .take(ticket_id)
            .ok_or_else(|| format!("no execution for {ticket_id}"))?;
        let status = loop {
            let status = execution.advance(&self.handlers, self.clock.as_ref()).await;
            if status != ExecutionStatus::Running || !execution.pending_task_tokens().is_empty() {
                break status;
            }
            match execution.next_wakeup() {
                Some(t) => self.clock.set(t),
                None => break status,
            }
        };
        self.workflow.put(ticket_id, execution);
        Ok(status)
    }

    /// The ticket's run as the local stack stores it (JSON).
    pub fn stored_run(&self, ticket_id: &str) -> Result<String, String> {
        let runs = self.workflow.lock();
        let run = runs
            .get(ticket_id)
            .ok_or_else(|| format!("no execution for {ticket_id}"))?;
        run.to_json().map_err(|e| e.to_string())
    }

    /// Puts back a run stored earlier, as the local stack finds it after a crash that lost
    /// everything the run did since (the ticket keeps what the steps and people wrote).
    pub fn restore_run(&self, ticket_id: &str, stored: &str) -> Result<(), String> {
        let run = Execution::from_json(stored).map_err(|e| e.to_string())?;
        self.workflow.put(ticket_id, run);
        Ok(())
    }

    /// The next message of `milestone` fails retryably; the workflow retries the step.
    pub fn fail_next_send_of(&self, milestone: &str) {
        *self
            .outbox
            .fail_next
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(milestone.to_owned());
    }

    /// Runs the ticket's execution as far as it goes without the clock moving: it stops at a
    /// person's wait, a Wait state or a retry interval.
    pub async fn advance_now(&self, ticket_id: &str) -> Result<ExecutionStatus, String> {
        let mut execution = self
            .workflow
            .take(ticket_id)
            .ok_or_else(|| format!("no execution for {ticket_id}"))?;
        let status = execution.advance(&self.handlers, self.clock.as_ref()).await;
        self.workflow.put(ticket_id, execution);
        Ok(status)
    }

    /// The answer is recorded as the waiting state's deadline fires: `respond` stores it, but its
    /// SendTaskSuccess finds the task timed out, and the run goes on to the next state (a
    /// reminder) with the answer already on the ticket. Returns `respond`'s answer.
    pub async fn answer_as_deadline_fires(
        &self,
        ticket_id: &str,
        answer: &Value,
    ) -> Result<Answer, String> {
        let wakeup = self
            .with_execution(ticket_id, Execution::next_wakeup)?
            .ok_or("the waiting state has no deadline")?;
        self.clock.set(wakeup);
        self.workflow.late.store(true, Ordering::SeqCst);
        let answered = self.respond(ticket_id, answer).await;
        self.workflow.late.store(false, Ordering::SeqCst);
        self.settle(ticket_id).await?;
        Ok(answered)
    }

    /// Nobody answers: the clock reaches the waiting state's deadline, then the run goes on.
    pub async fn no_answer(&self, ticket_id: &str) -> Result<ExecutionStatus, String> {
        let wakeup = self
            .with_execution(ticket_id, Execution::next_wakeup)?
            .ok_or("the waiting state has no deadline")?;
        self.clock.set(wakeup);
        self.settle(ticket_id).await
    }

    /// Reads the ticket's execution.
    pub fn with_execution<T>(
        &self,
        ticket_id: &str,
        f: impl FnOnce(&Execution) -> T,
    ) -> Result<T, String> {
        let runs = self.workflow.lock();
        runs.get(ticket_id)
            .map(f)
            .ok_or_else(|| format!("no execution for {ticket_id}"))
    }

    /// The stored ticket.
    pub async fn ticket(&self, ticket_id: &str) -> Result<Ticket, String> {
        let id: TicketId = ticket_id.parse().map_err(|e| format!("{e:?}"))?;
        self.store
            .get(&id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("ticket {ticket_id} not stored"))
    }

    /// The ticket's audit trail.
    pub async fn audit(&self, ticket_id: &str) -> Result<Vec<AuditEvent>, String> {
        let id: TicketId = ticket_id.parse().map_err(|e| format!("{e:?}"))?;
        self.store.audit_trail(&id).await.map_err(|e| e.to_string())
    }

    /// (milestone, virtual time) of each message sent to the customer, in order.
    pub fn sent(&self) -> Vec<(String, Timestamp)> {
        self.outbox.sent()
    }

    /// The bodies of the messages of `milestone` sent to the customer, in order.
    pub fn bodies(&self, milestone: &str) -> Vec<String> {
        self.outbox
            .outbox
            .messages()
            .iter()
            .filter(|m| serde_json::to_value(m.milestone()).is_ok_and(|v| v == milestone))
            .map(|m| m.body().to_owned())
            .collect()
    }

    /// The refunds the gateway made.
    pub fn refunds(&self) -> Vec<(RefundRequest, RefundReceipt)> {
        self.gateway.refunds()
    }

    /// Root-cause messages per department.
    pub fn feedback(&self) -> BTreeMap<String, Vec<FeedbackMessage>> {
        let mut out = BTreeMap::new();
        for department in [
            Department::Quality,
            Department::Logistics,
            Department::Warehouse,
            Department::Service,
        ] {
            let messages = self.feedback.messages(department);
            if !messages.is_empty() {
                let name = serde_json::to_value(department)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                out.insert(name, messages);
            }
        }
        out
    }
}
