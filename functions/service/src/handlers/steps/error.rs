//! The errors a step reports to the workflow. Step Functions matches `ErrorEquals` on the
//! Lambda error type, so each variant's name is part of the contract (`docs/workflow-contract.md`)
//! and never changes; messages carry ids and codes only, never personal data.

use aftersales_domain::MoneyError;
use aftersales_domain::lifecycle::TransitionError;

use crate::adapters::feedback::PublishError;
use crate::adapters::payment::PaymentError;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Throttling, timeouts, a gateway or queue that did not answer: retry with backoff.
    #[error("{0}")]
    Retryable(String),
    /// The payment gateway refused the refund, or needs an operator before it can refund.
    #[error("{0}")]
    PaymentDeclined(String),
    /// The refund cap would be exceeded, or the step is not allowed in the ticket's state.
    #[error("{0}")]
    PolicyViolation(String),
    /// A wait was entered after its answer had been recorded (the answer came as the previous
    /// wait's deadline fired, or while the step was re-run after a crash): the workflow goes on
    /// with the recorded answer instead of waiting for one that already came.
    #[error("{0}")]
    AlreadyAnswered(String),
    #[error("{0}")]
    NotFound(String),
    /// A concurrent change won more than once; re-running the step is safe.
    #[error("{0}")]
    Conflict(String),
    /// The step input (or stored data it refers to) is malformed.
    #[error("{0}")]
    InvalidInput(String),
}

impl StepError {
    /// Every stable name, as the workflow's `ErrorEquals` lists them.
    pub const NAMES: [&'static str; 7] = [
        "Retryable",
        "PaymentDeclined",
        "PolicyViolation",
        "AlreadyAnswered",
        "NotFound",
        "Conflict",
        "InvalidInput",
    ];

    /// The stable name Step Functions sees as the error type.
    pub const fn name(&self) -> &'static str {
        match self {
            StepError::Retryable(_) => "Retryable",
            StepError::PaymentDeclined(_) => "PaymentDeclined",
            StepError::PolicyViolation(_) => "PolicyViolation",
            StepError::AlreadyAnswered(_) => "AlreadyAnswered",
            StepError::NotFound(_) => "NotFound",
            StepError::Conflict(_) => "Conflict",
            StepError::InvalidInput(_) => "InvalidInput",
        }
    }

    pub(crate) fn policy(message: impl Into<String>) -> StepError {
        StepError::PolicyViolation(message.into())
    }

    pub(crate) fn invalid(message: impl Into<String>) -> StepError {
        StepError::InvalidInput(message.into())
    }
}

impl From<StepError> for lambda_runtime::Diagnostic {
    fn from(error: StepError) -> lambda_runtime::Diagnostic {
        lambda_runtime::Diagnostic {
            error_type: error.name().to_owned(),
            error_message: error.to_string(),
        }
    }
}

impl From<StoreError> for StepError {
    fn from(error: StoreError) -> StepError {
        match error {
            StoreError::Conflict(what) => StepError::Conflict(format!("store conflict: {what}")),
            StoreError::NotFound(what) => StepError::NotFound(format!("not found: {what}")),
            cap @ StoreError::CapExceeded { .. } => StepError::PolicyViolation(cap.to_string()),
            StoreError::Unavailable(why) => {
                StepError::Retryable(format!("store unavailable: {why}"))
            }
            // Retrying cannot repair stored data: the run fails and an operator looks.
            StoreError::Corrupt(why) => StepError::InvalidInput(format!("stored data: {why}")),
        }
    }
}

impl From<PaymentError> for StepError {
    fn from(error: PaymentError) -> StepError {
        match error {
            PaymentError::Transient { message } => {
                StepError::Retryable(format!("payment gateway: {message}"))
            }
            // Declined is final; a misconfigured gateway or an answer we cannot trust needs a
            // person (the reservation is kept, so a re-run reuses the key and cannot pay twice).
            PaymentError::Declined { code, .. } => {
                StepError::PaymentDeclined(format!("refund declined ({code})"))
            }
            PaymentError::Misconfigured { message } => StepError::PaymentDeclined(format!(
                "payment gateway misconfigured, an operator must fix it: {message}"
            )),
            PaymentError::UnexpectedResponse { message } => StepError::PaymentDeclined(format!(
                "unexpected payment gateway answer, the refund may have been made: {message}"
            )),
        }
    }
}

impl From<PublishError> for StepError {
    fn from(error: PublishError) -> StepError {
        match error {
            invalid @ PublishError::InvalidMessage { .. } => {
                StepError::InvalidInput(invalid.to_string())
            }
            undelivered @ PublishError::Undelivered { .. } => {
                StepError::Retryable(undelivered.to_string())
            }
        }
    }
}

impl From<TransitionError> for StepError {
    fn from(error: TransitionError) -> StepError {
        StepError::PolicyViolation(error.to_string())
    }
}

impl From<MoneyError> for StepError {
    fn from(error: MoneyError) -> StepError {
        StepError::PolicyViolation(format!("amount: {error}"))
    }
}
