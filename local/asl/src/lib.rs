//! An Amazon States Language interpreter faithful to AWS Step Functions (JSONPath query language).
//!
//! - [`StateMachine`] loads and validates a definition ([`InvalidDefinition`] like
//!   `CreateStateMachine`).
//! - [`Execution`] runs it as serialisable data: start, advance with a [`Clock`] and a
//!   [`ResourceResolver`], park on `.waitForTaskToken`, resume with task callbacks, read the
//!   [`HistoryEvent`]s and the state-transition count. See [`engine`] for the model.
//! - [`expr`] is the expression layer (paths, templates, intrinsics, Choice rules).

pub mod clock;
pub mod definition;
pub mod engine;
pub mod error;
pub mod expr;
pub mod history;
pub mod resource;

pub use clock::{Clock, SystemClock, VirtualClock};
pub use definition::StateMachine;
pub use engine::{Execution, ExecutionInfo, ExecutionStatus, Outcome, StartOptions};
pub use error::{ApiError, Diagnostic, Failure, InvalidDefinition};
pub use history::{HistoryDetail, HistoryEvent};
pub use resource::{
    IntegrationPattern, MockOutcome, MockResolver, ResourceKind, ResourceResolver, TaskFailure,
    TaskRequest, lambda_invoke_response,
};
