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

impl ExprError {
    fn provisional() -> ExprError {
        ExprError {
            error: "States.Runtime".to_string(),
            message: "expression layer not implemented yet".to_string(),
        }
    }
}

/// Evaluates a path (`$...`, `$$...`, `$var...`) against the environment.
pub fn query(_path: &str, _env: Env) -> Result<Value, ExprError> {
    Err(ExprError::provisional())
}

/// Applies a ResultPath reference path: places `result` into `input`.
pub fn apply_result_path(_input: &Value, _path: &str, result: Value) -> Result<Value, ExprError> {
    Ok(result)
}

/// Renders a payload template (Parameters, ResultSelector, ItemSelector, Arguments).
pub fn render_template(template: &Value, _env: Env) -> Result<Value, ExprError> {
    Ok(template.clone())
}

/// Evaluates one `.$` value: a path or an intrinsic function call.
pub fn evaluate_dynamic(_expr: &str, _env: Env) -> Result<Value, ExprError> {
    Err(ExprError::provisional())
}

/// Evaluates an `Assign` block into variable values.
pub fn render_assign(_assign: &Value, _env: Env) -> Result<Map<String, Value>, ExprError> {
    Ok(Map::new())
}

/// A parsed Choice rule.
#[derive(Debug, Clone)]
pub struct ChoiceRule {
    _raw: Value,
}

impl ChoiceRule {
    /// Parses one element of `Choices` (or a nested rule of And/Or/Not).
    pub fn parse(rule: &Value) -> Result<ChoiceRule, String> {
        Ok(ChoiceRule { _raw: rule.clone() })
    }

    /// Evaluates the rule.
    pub fn evaluate(&self, _env: Env) -> Result<bool, ExprError> {
        Ok(false)
    }
}

/// Load-time check of a path.
pub fn validate_path(_path: &str) -> Result<(), String> {
    Ok(())
}

/// Load-time check of a reference path (ResultPath).
pub fn validate_reference_path(_path: &str) -> Result<(), String> {
    Ok(())
}

/// Load-time check of a payload template.
pub fn validate_template(_template: &Value) -> Result<(), String> {
    Ok(())
}
