//! SDK errors to [`StoreError`], and the transaction helper shared by both traits.

use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::TransactWriteItem;
use rand::Rng;

use super::DynamoStore;
use crate::store::StoreError;

/// Error codes that mean "try again later".
const RETRYABLE: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "LimitExceededException",
];

/// The cancellation reason code DynamoDB gives a failed condition.
pub(super) const CONDITION_FAILED: &str = "ConditionalCheckFailed";
/// The reason code for a transaction that collided with another one in flight.
pub(super) const TRANSACTION_CONFLICT: &str = "TransactionConflict";

/// Maps an SDK error. Only the operation and the error code are kept: messages can quote
/// request values.
pub(super) fn sdk<E>(operation: &str, error: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata,
{
    match &error {
        SdkError::TimeoutError(_) => StoreError::Unavailable(format!("{operation}: timed out")),
        SdkError::DispatchFailure(_) => {
            StoreError::Unavailable(format!("{operation}: cannot reach DynamoDB"))
        }
        SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("{operation}: unreadable response"))
        }
        SdkError::ConstructionFailure(_) => {
            StoreError::Corrupt(format!("{operation}: request could not be built"))
        }
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or("Unknown");
            let status = context.raw().status().as_u16();
            if RETRYABLE.contains(&code) || status >= 500 {
                StoreError::Unavailable(format!("{operation}: {code}"))
            } else if code == "ConditionalCheckFailedException"
                || code == "TransactionConflictException"
            {
                StoreError::Conflict(format!("{operation}: {code}"))
            } else {
                StoreError::Corrupt(format!("{operation}: {code}"))
            }
        }
        _ => StoreError::Unavailable(format!("{operation}: SDK error")),
    }
}

/// A value or request that serde_dynamo or a builder refused.
pub(super) fn encoding(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

/// Whether a transaction went through, and if not, each item's cancellation reason code
/// (`"None"` for items that were fine).
pub(super) enum Transaction {
    Written,
    Cancelled(Vec<String>),
}

impl Transaction {
    /// The reason code for item `index` of the transaction.
    pub(super) fn failed(reasons: &[String], index: usize, code: &str) -> bool {
        reasons.get(index).is_some_and(|r| r == code)
    }
}

impl DynamoStore {
    pub(super) async fn transact(
        &self,
        operation: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Transaction, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Transaction::Written),
            Err(error) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                    error.as_service_error()
                {
                    let reasons = cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("None").to_owned())
                        .collect();
                    return Ok(Transaction::Cancelled(reasons));
                }
                Err(sdk(operation, error))
            }
        }
    }
}

/// Attempts for operations that retry internally after a transaction conflict.
pub(super) const ATTEMPTS: u32 = 8;

/// Jittered exponential backoff before retry `attempt` (0-based): up to 10, 20, 40... 640 ms.
pub(super) async fn backoff(attempt: u32) {
    let ceiling = 10u64.saturating_mul(1 << attempt.min(6));
    let millis = rand::rng().random_range(1..=ceiling);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}
