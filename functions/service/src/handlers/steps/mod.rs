//! The workflow's task steps: `diagnose`, `propose`, `execute-refund`, `notify` and `survey`.
//! Each is `handle(input, deps)` over typed input and output (`docs/workflow-contract.md`) and
//! fails with a [`StepError`] whose name the state machine matches.

pub mod answer;
pub mod config;
pub mod diagnose;
pub mod error;
pub mod execute_refund;
pub mod notify;
pub mod propose;
pub mod survey;
mod ticket_change;

pub use error::StepError;

use std::future::Future;

use aftersales_domain::Policy;
use jiff::{SignedDuration, Timestamp};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Serves one step: each invocation's input is parsed (a malformed one is `InvalidInput`),
/// handed to `handler`, and a failure reaches the workflow under its stable name.
pub async fn serve<I, O, H, F>(handler: H) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned,
    O: Serialize,
    H: Fn(I) -> F,
    F: Future<Output = Result<O, StepError>>,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let run = parse_input::<I>(event.payload).map(&handler);
        async move {
            let outcome = match run {
                Ok(step) => step.await,
                Err(invalid) => Err(invalid),
            };
            if let Err(error) = &outcome {
                tracing::warn!(error_type = error.name(), error = %error, "step failed");
            }
            outcome
        }
    }))
    .await
}

/// Parses a step's raw input, so a malformed one reaches the workflow as `InvalidInput`
/// (naming the field at fault) rather than as the runtime's own error.
pub fn parse_input<T: DeserializeOwned>(input: serde_json::Value) -> Result<T, StepError> {
    serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        StepError::invalid(format!("step input at '{path}': {}", e.into_inner()))
    })
}

/// The start of the period whose refunds count for the repeat-refund rule.
pub(crate) fn history_since(policy: &Policy, now: Timestamp) -> Timestamp {
    let days = i64::from(policy.repeat_refunds.within_days);
    now.checked_sub(SignedDuration::from_hours(days * 24))
        .unwrap_or(Timestamp::MIN)
}

/// The `code` of a value serialised with `#[serde(tag = "code")]` (review and rejection
/// reasons): the machine-readable part only, never the values beside it.
pub(crate) fn wire_code<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "other".to_owned())
}
