//! Errors of the engine: invalid definitions (load time), failures of states (run time) and
//! misuse of the execution API (callbacks with unknown tokens, ...).

use serde::{Deserialize, Serialize};
use std::fmt;

/// One problem found while validating a definition, in the words Step Functions uses for
/// `InvalidDefinition` (`CODE: message at /States/X/Field`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// `SCHEMA_VALIDATION_FAILED`, `MISSING_TRANSITION_TARGET`, `UNREACHABLE_STATE`, ...
    pub code: &'static str,
    /// Human readable text.
    pub message: String,
    /// JSON pointer of the offending element, e.g. `/States/Foo/Next`.
    pub location: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} at {}", self.code, self.message, self.location)
    }
}

/// The definition was rejected, like `CreateStateMachine` rejects it with `InvalidDefinition`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidDefinition {
    /// Every problem found, in definition order.
    pub diagnostics: Vec<Diagnostic>,
}

impl InvalidDefinition {
    pub(crate) fn single(
        code: &'static str,
        message: impl Into<String>,
        location: impl Into<String>,
    ) -> Self {
        InvalidDefinition {
            diagnostics: vec![Diagnostic {
                code,
                message: message.into(),
                location: location.into(),
            }],
        }
    }
}

impl fmt::Display for InvalidDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Invalid State Machine Definition: '")?;
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "'")
    }
}

/// An error raised by a state at run time (`Error`/`Cause` of the execution or of a catcher's
/// error output). Both are optional: a `Fail` state may set neither.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Failure {
    /// A failure with an error name and a cause.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Failure {
            error: Some(error.into()),
            cause: Some(cause.into()),
        }
    }

    /// The error name used for Retry/Catch matching (`""` when the state set none).
    pub fn name(&self) -> &str {
        self.error.as_deref().unwrap_or("")
    }
}

/// Misuse of the execution API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// `SendTaskSuccess`/`Failure`/`Heartbeat` with a token no waiting task holds (never issued,
    /// already completed or timed out), like Step Functions' `TaskDoesNotExist`.
    #[error("TaskDoesNotExist: Task Token does not exist: {0}")]
    TaskDoesNotExist(String),
    /// A token that is not a token this engine could have issued, like `InvalidToken`.
    #[error("InvalidToken: Invalid Token: '{0}'")]
    InvalidToken(String),
    /// `SendTaskSuccess` output that is not valid JSON, like `InvalidOutput`.
    #[error("InvalidOutput: {0}")]
    InvalidOutput(String),
    /// The execution is not running any more, like `ExecutionDoesNotExist`/`TaskTimedOut`.
    #[error("ExecutionNotRunning: the execution has already finished with status {0}")]
    ExecutionNotRunning(String),
    /// A snapshot could not be read back.
    #[error("InvalidSnapshot: {0}")]
    InvalidSnapshot(String),
}
