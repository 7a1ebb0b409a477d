//! The expression layer of the JSONPath query language: paths, payload templates (`.$` keys,
//! context object `$$`, variables `$name`), intrinsic functions and Choice rules.
//! The engine (everything outside `expr/`) calls only what this module exports.

use serde_json::{Map, Value};

/// What an expression can read while a state runs.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The effective input of the current step (after InputPath, or the task result for ResultSelector).
    pub input: &'a Value,
    /// The context object (`$$`): Execution, State, StateMachine, Task, Map.Item ...
    pub context: &'a Value,
    /// Workflow variables set by `Assign`, read as `$name`.
    pub variables: &'a Map<String, Value>,
}

/// A runtime failure of an expression. `error` is the Step Functions error name
/// (`States.Runtime`, `States.IntrinsicFailure`, ...); `message` is AWS's detail text for it,
/// *without* the engine's "An error occurred while executing the state '...' (entered at the
/// event id #N). " prefix, which the engine adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub error: String,
    pub message: String,
}
