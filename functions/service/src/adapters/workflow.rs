//! The workflow engine: one execution per ticket (execution name = ticket id), resumed through
//! task tokens when a person answers.
//!
//! [`StepFunctionsWorkflow`] talks to AWS Step Functions; [`InMemoryWorkflow`] records calls for
//! handler tests. Task tokens are never logged: they let anyone holding them steer a ticket.

use std::collections::{BTreeMap, BTreeSet};

use aftersales_domain::TicketId;
use async_trait::async_trait;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use serde_json::Value;

/// Step Functions' limit for execution input and task output (UTF-8 bytes).
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Step Functions' limits for a task failure's error name and cause (characters).
pub const MAX_ERROR_CHARS: usize = 256;
pub const MAX_CAUSE_CHARS: usize = 32_768;

/// What `start` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// A run for the ticket is under way (new, or an identical start while it runs).
    Started { execution_arn: String },
    /// The ticket already had a run (a retried webhook): nothing new was started.
    AlreadyStarted { execution_arn: String },
}

impl StartOutcome {
    pub fn execution_arn(&self) -> &str {
        match self {
            StartOutcome::Started { execution_arn }
            | StartOutcome::AlreadyStarted { execution_arn } => execution_arn,
        }
    }
}

/// Why a workflow call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    /// The token is not one the engine issued.
    #[error("the task token is invalid")]
    InvalidToken,
    /// The token was valid, but its task is over (already answered, or the run ended).
    #[error("the task no longer exists")]
    TaskDoesNotExist,
    /// The task waited past its timeout.
    #[error("the task timed out")]
    TaskTimedOut,
    /// The engine refused the input, output, name or error text we sent.
    #[error("the workflow refused the request ({code}): {message}")]
    InvalidRequest { code: String, message: String },
    /// Throttling, 5xx, timeouts, connection errors: try again.
    #[error("the workflow is temporarily unavailable ({code})")]
    Transient { code: String },
    /// Anything else (missing state machine, denied access): retrying will not help.
    #[error("the workflow call failed ({code}): {message}")]
    Failed { code: String, message: String },
}

impl WorkflowError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, WorkflowError::Transient { .. })
    }
}

/// Starts and resumes ticket workflows.
#[async_trait]
pub trait WorkflowClient: Send + Sync {
    /// Starts the ticket's run; starting it again is not an error.
    async fn start(
        &self,
        ticket_id: &TicketId,
        input: &Value,
    ) -> Result<StartOutcome, WorkflowError>;
    /// Resumes the task waiting on `token` with `output`.
    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), WorkflowError>;
    /// Fails the task waiting on `token`; `error` is what the state machine's `Catch` matches.
    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), WorkflowError>;
    /// Tells the engine the task waiting on `token` is still being worked on.
    async fn send_task_heartbeat(&self, token: &str) -> Result<(), WorkflowError>;
}

fn payload(value: &Value, what: &str) -> Result<String, WorkflowError> {
    let text = serde_json::to_string(value).map_err(|e| WorkflowError::InvalidRequest {
        code: "InvalidJson".into(),
        message: e.to_string(),
    })?;
    if text.len() > MAX_PAYLOAD_BYTES {
        return Err(WorkflowError::InvalidRequest {
            code: "PayloadTooLarge".into(),
            message: format!(
                "the {what} is {} bytes; Step Functions accepts at most {MAX_PAYLOAD_BYTES}",
                text.len()
            ),
        });
    }
    Ok(text)
}

fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// AWS Step Functions, one state machine.
#[derive(Debug, Clone)]
pub struct StepFunctionsWorkflow {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl StepFunctionsWorkflow {
    /// `client` is built once at start-up; `state_machine_arn` is the after-sales state machine.
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: impl Into<String>) -> Self {
        StepFunctionsWorkflow {
            client,
            state_machine_arn: state_machine_arn.into(),
        }
    }

    /// The ARN of the ticket's execution:
    /// `arn:aws:states:<region>:<account>:execution:<state machine name>:<ticket id>`.
    pub fn execution_arn(&self, ticket_id: &TicketId) -> String {
        let arn = &self.state_machine_arn;
        match arn.split_once(":stateMachine:") {
            Some((prefix, rest)) => {
                let name = rest.split(':').next().unwrap_or(rest);
                format!("{prefix}:execution:{name}:{ticket_id}")
            }
            None => format!("{arn}:{ticket_id}"),
        }
    }
}

fn classify<E, R>(error: SdkError<E, R>) -> WorkflowError
where
    E: ProvideErrorMetadata,
{
    let code = error.code().unwrap_or_default().to_owned();
    let message = error.message().unwrap_or_default().to_owned();
    match &error {
        SdkError::ServiceError(_) => match code.as_str() {
            "InvalidToken" => WorkflowError::InvalidToken,
            "TaskDoesNotExist" => WorkflowError::TaskDoesNotExist,
            "TaskTimedOut" => WorkflowError::TaskTimedOut,
            "InvalidOutput" | "InvalidExecutionInput" | "InvalidName" | "ValidationException" => {
                WorkflowError::InvalidRequest { code, message }
            }
            "ThrottlingException"
            | "Throttling"
            | "ServiceUnavailable"
            | "InternalFailure"
            | "InternalServerError"
            | "KmsThrottlingException"
            | "ExecutionLimitExceeded" => WorkflowError::Transient { code },
            _ => WorkflowError::Failed { code, message },
        },
        SdkError::ConstructionFailure(_) => WorkflowError::Failed {
            code: "ConstructionFailure".into(),
            message: "the request could not be built".into(),
        },
        SdkError::TimeoutError(_) => WorkflowError::Transient {
            code: "Timeout".into(),
        },
        SdkError::DispatchFailure(_) => WorkflowError::Transient {
            code: "DispatchFailure".into(),
        },
        _ => WorkflowError::Transient {
            code: if code.is_empty() {
                "ResponseError".into()
            } else {
                code
            },
        },
    }
}

#[async_trait]
impl WorkflowClient for StepFunctionsWorkflow {
    async fn start(
        &self,
        ticket_id: &TicketId,
        input: &Value,
    ) -> Result<StartOutcome, WorkflowError> {
        let input = payload(input, "execution input")?;
        let result = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(ticket_id.as_str())
            .input(input)
            .send()
            .await;
        match result {
            Ok(output) => {
                tracing::info!(ticket_id = %ticket_id, "workflow started");
                Ok(StartOutcome::Started {
                    execution_arn: output.execution_arn().to_owned(),
                })
            }
            Err(error) if error.code() == Some("ExecutionAlreadyExists") => {
                tracing::info!(ticket_id = %ticket_id, "workflow already started");
                Ok(StartOutcome::AlreadyStarted {
                    execution_arn: self.execution_arn(ticket_id),
                })
            }
            Err(error) => {
                let error = classify(error);
                tracing::warn!(ticket_id = %ticket_id, error = %error, "workflow not started");
                Err(error)
            }
        }
    }

    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), WorkflowError> {
        let output = payload(output, "task output")?;
        self.client
            .send_task_success()
            .task_token(token)
            .output(output)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), WorkflowError> {
        self.client
            .send_task_failure()
            .task_token(token)
            .error(truncate_chars(error, MAX_ERROR_CHARS))
            .cause(truncate_chars(cause, MAX_CAUSE_CHARS))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn send_task_heartbeat(&self, token: &str) -> Result<(), WorkflowError> {
        self.client
            .send_task_heartbeat()
            .task_token(token)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

/// One call made to an [`InMemoryWorkflow`].
#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowCall {
    Start {
        ticket_id: TicketId,
        input: Value,
    },
    TaskSuccess {
        token: String,
        output: Value,
    },
    TaskFailure {
        token: String,
        error: String,
        cause: String,
    },
    TaskHeartbeat {
        token: String,
    },
}

/// Records every call, starts at most one run per ticket, and answers tokens like Step
/// Functions: tokens opened with [`InMemoryWorkflow::open_task`] succeed once, then
/// `TaskDoesNotExist`; any other token is `InvalidToken`.
#[derive(Debug, Default)]
pub struct InMemoryWorkflow {
    state: std::sync::Mutex<InMemoryRuns>,
}

#[derive(Debug, Default)]
struct InMemoryRuns {
    calls: Vec<WorkflowCall>,
    runs: BTreeMap<TicketId, Value>,
    open_tokens: BTreeSet<String>,
    closed_tokens: BTreeSet<String>,
}

impl InMemoryWorkflow {
    pub fn new() -> Self {
        Self::default()
    }

    /// A task is now waiting on `token`.
    pub fn open_task(&self, token: impl Into<String>) {
        self.lock().open_tokens.insert(token.into());
    }

    /// Every call, in order.
    pub fn calls(&self) -> Vec<WorkflowCall> {
        self.lock().calls.clone()
    }

    /// The input each ticket's run was started with.
    pub fn runs(&self) -> BTreeMap<TicketId, Value> {
        self.lock().runs.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InMemoryRuns> {
        // A panic while holding the lock leaves plain data behind, still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn arn(ticket_id: &TicketId) -> String {
        format!("arn:aws:states:local:000000000000:execution:after-sales:{ticket_id}")
    }

    fn close(state: &mut InMemoryRuns, token: &str) -> Result<(), WorkflowError> {
        if state.open_tokens.remove(token) {
            state.closed_tokens.insert(token.to_owned());
            Ok(())
        } else if state.closed_tokens.contains(token) {
            Err(WorkflowError::TaskDoesNotExist)
        } else {
            Err(WorkflowError::InvalidToken)
        }
    }
}

#[async_trait]
impl WorkflowClient for InMemoryWorkflow {
    async fn start(
        &self,
        ticket_id: &TicketId,
        input: &Value,
    ) -> Result<StartOutcome, WorkflowError> {
        payload(input, "execution input")?;
        let mut state = self.lock();
        state.calls.push(WorkflowCall::Start {
            ticket_id: ticket_id.clone(),
            input: input.clone(),
        });
        let execution_arn = Self::arn(ticket_id);
        if state.runs.contains_key(ticket_id) {
            return Ok(StartOutcome::AlreadyStarted { execution_arn });
        }
        state.runs.insert(ticket_id.clone(), input.clone());
        Ok(StartOutcome::Started { execution_arn })
    }

    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), WorkflowError> {
        payload(output, "task output")?;
        let mut state = self.lock();
        state.calls.push(WorkflowCall::TaskSuccess {
            token: token.to_owned(),
            output: output.clone(),
        });
        Self::close(&mut state, token)
    }

    async fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), WorkflowError> {
        let mut state = self.lock();
        state.calls.push(WorkflowCall::TaskFailure {
            token: token.to_owned(),
            error: truncate_chars(error, MAX_ERROR_CHARS),
            cause: truncate_chars(cause, MAX_CAUSE_CHARS),
        });
        Self::close(&mut state, token)
    }

    async fn send_task_heartbeat(&self, token: &str) -> Result<(), WorkflowError> {
        let mut state = self.lock();
        state.calls.push(WorkflowCall::TaskHeartbeat {
            token: token.to_owned(),
        });
        if state.open_tokens.contains(token) {
            Ok(())
        } else if state.closed_tokens.contains(token) {
            Err(WorkflowError::TaskDoesNotExist)
        } else {
            Err(WorkflowError::InvalidToken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ticket() -> TicketId {
        "tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB".parse().unwrap()
    }

    #[test]
    fn the_execution_arn_is_the_state_machine_arn_with_the_ticket_as_name() {
        let config = aws_sdk_sfn::Config::builder()
            .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
            .build();
        let client = aws_sdk_sfn::Client::from_conf(config);
        for state_machine in [
            "arn:aws:states:eu-west-1:123456789012:stateMachine:after-sales",
            "arn:aws:states:eu-west-1:123456789012:stateMachine:after-sales:7",
        ] {
            let workflow = StepFunctionsWorkflow::new(client.clone(), state_machine);
            assert_eq!(
                workflow.execution_arn(&ticket()),
                "arn:aws:states:eu-west-1:123456789012:execution:after-sales:tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB"
            );
        }
    }

    #[test]
    fn failure_texts_are_cut_to_step_functions_limits_on_character_boundaries() {
        assert_eq!(
            truncate_chars(&"é".repeat(300), MAX_ERROR_CHARS)
                .chars()
                .count(),
            256
        );
        assert_eq!(truncate_chars("Declined", MAX_ERROR_CHARS), "Declined");
    }

    #[tokio::test]
    async fn oversized_input_is_refused_before_any_call() {
        let workflow = InMemoryWorkflow::new();
        let input = json!({"blob": "x".repeat(MAX_PAYLOAD_BYTES)});

        let error = workflow.start(&ticket(), &input).await.unwrap_err();

        assert_eq!(
            error,
            WorkflowError::InvalidRequest {
                code: "PayloadTooLarge".into(),
                message:
                    "the execution input is 262155 bytes; Step Functions accepts at most 262144"
                        .into(),
            }
        );
        assert_eq!(workflow.calls(), vec![]);
    }

    #[tokio::test]
    async fn in_memory_starts_one_run_per_ticket() {
        let workflow = InMemoryWorkflow::new();
        let arn = "arn:aws:states:local:000000000000:execution:after-sales:tkt_01JDQ3Y5N6V4C8M2Z7K9R1T0AB";

        let first = workflow.start(&ticket(), &json!({"n": 1})).await.unwrap();
        let second = workflow.start(&ticket(), &json!({"n": 2})).await.unwrap();

        assert_eq!(
            first,
            StartOutcome::Started {
                execution_arn: arn.into()
            }
        );
        assert_eq!(
            second,
            StartOutcome::AlreadyStarted {
                execution_arn: arn.into()
            }
        );
        assert_eq!(
            workflow.runs(),
            BTreeMap::from([(ticket(), json!({"n": 1}))])
        );
        assert_eq!(workflow.calls().len(), 2);
    }

    #[tokio::test]
    async fn in_memory_tokens_answer_once_then_no_longer_exist() {
        let workflow = InMemoryWorkflow::new();
        workflow.open_task("token-1");

        assert_eq!(workflow.send_task_heartbeat("token-1").await, Ok(()));
        assert_eq!(
            workflow
                .send_task_success("token-1", &json!({"ok": true}))
                .await,
            Ok(())
        );
        assert_eq!(
            workflow
                .send_task_failure("token-1", "Late", "too late")
                .await,
            Err(WorkflowError::TaskDoesNotExist)
        );
        assert_eq!(
            workflow.send_task_success("token-2", &json!({})).await,
            Err(WorkflowError::InvalidToken)
        );
        assert_eq!(
            workflow.calls(),
            vec![
                WorkflowCall::TaskHeartbeat {
                    token: "token-1".into()
                },
                WorkflowCall::TaskSuccess {
                    token: "token-1".into(),
                    output: json!({"ok": true})
                },
                WorkflowCall::TaskFailure {
                    token: "token-1".into(),
                    error: "Late".into(),
                    cause: "too late".into()
                },
                WorkflowCall::TaskSuccess {
                    token: "token-2".into(),
                    output: json!({})
                },
            ]
        );
    }
}
