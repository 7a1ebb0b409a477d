//! The expression layer of the JSONPath query language: paths, payload templates (`.$` keys,
//! context object `$$`, variables `$name`), intrinsic functions and Choice rules.
//! The engine (everything outside `expr/`) calls only what this module exports.
//!
//! Paths and intrinsic calls are parsed once and cached per thread, so evaluating the same
//! definition many times does not re-parse; selections borrow from the documents and only the
//! selected values are copied.

mod choice;
mod compiled;
mod intrinsics;
mod path;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

pub use choice::{ChoiceRule, parse_timestamp};
pub use compiled::{CompiledPath, Template};

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {message}")]
pub struct ExprError {
    pub error: String,
    pub message: String,
}

impl ExprError {
    /// An error with the given Step Functions error name and detail text.
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> ExprError {
        ExprError {
            error: error.into(),
            message: message.into(),
        }
    }

    pub(crate) fn runtime(message: String) -> ExprError {
        ExprError {
            error: "States.Runtime".to_string(),
            message,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parse caches
// ---------------------------------------------------------------------------------------------

/// Entries kept per cache before it is reset (definitions are small; this only bounds abuse).
const CACHE_LIMIT: usize = 4096;

thread_local! {
    static PATHS: RefCell<HashMap<String, Arc<path::JsonPath>>> = RefCell::new(HashMap::new());
    static CALLS: RefCell<HashMap<String, Arc<intrinsics::Call>>> = RefCell::new(HashMap::new());
}

fn cached<T>(
    cache: &'static std::thread::LocalKey<RefCell<HashMap<String, Arc<T>>>>,
    key: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Arc<T>, String> {
    if let Some(hit) = cache.with(|c| c.borrow().get(key).cloned()) {
        return Ok(hit);
    }
    let parsed = Arc::new(parse(key)?);
    cache.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_LIMIT {
            c.clear();
        }
        c.insert(key.to_string(), Arc::clone(&parsed));
    });
    Ok(parsed)
}

pub(crate) fn cached_path(source: &str) -> Result<Arc<path::JsonPath>, String> {
    cached(&PATHS, source, path::parse)
}

fn cached_call(source: &str) -> Result<Arc<intrinsics::Call>, String> {
    cached(&CALLS, source, intrinsics::parse)
}

/// Compact JSON text, as AWS quotes documents in its messages.
pub(crate) fn to_compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

/// Evaluates a path (`$...`, `$$...` context, `$var...` variables), as InputPath, OutputPath,
/// ItemsPath and the other `*Path` fields do. Indefinite paths (wildcards, slices, filters,
/// `..`) yield an array. A definite path that selects nothing fails with `States.Runtime`
/// "Invalid path '$.x' : No results for path: $['x']".
pub fn query(path: &str, env: Env) -> Result<Value, ExprError> {
    query_ref(path, env).map(Cow::into_owned)
}

/// Like [`query`], but borrows the selected value from the environment when the path is
/// definite, so `"$"` or `"$.big.subtree"` costs no copy.
pub fn query_ref<'a>(path: &str, env: Env<'a>) -> Result<Cow<'a, Value>, ExprError> {
    let parsed = cached_path(path)
        .map_err(|e| ExprError::runtime(format!("Invalid path '{path}' : {e}")))?;
    match parsed.select(env.input, env.context, env.variables) {
        Ok(path::Selected::One(v)) => Ok(Cow::Borrowed(v)),
        Ok(many) => Ok(Cow::Owned(many.into_value())),
        Err(miss) => Err(ExprError::runtime(format!(
            "Invalid path '{path}' : {}",
            miss.detail()
        ))),
    }
}

/// Applies a ResultPath reference path: `"$"` replaces the input with `result`; otherwise the
/// result is placed at the path inside a copy of the input, creating missing objects on the way.
pub fn apply_result_path(input: &Value, path: &str, result: Value) -> Result<Value, ExprError> {
    if path == "$" {
        return Ok(result);
    }
    apply_result_path_owned(input.clone(), path, result)
}

/// [`apply_result_path`] for an input the caller no longer needs: no copy is made.
pub fn apply_result_path_owned(
    input: Value,
    path: &str,
    result: Value,
) -> Result<Value, ExprError> {
    try_apply_result_path(input, path, result).map_err(|(_, e)| e)
}

/// [`apply_result_path_owned`] that hands the input back, unchanged, when the path cannot be
/// applied (a catcher or a retry still reads the state's raw input then).
pub fn try_apply_result_path(
    mut input: Value,
    path: &str,
    result: Value,
) -> Result<Value, (Value, ExprError)> {
    let parsed = match cached_reference(path) {
        Ok(p) => p,
        Err(e) => {
            return Err((
                input,
                ExprError::runtime(format!("Invalid path '{path}' : {e}")),
            ));
        }
    };
    if path::can_set(&input, &parsed.segments)
        && path::set_at(&mut input, &parsed.segments, result).is_ok()
    {
        return Ok(input);
    }
    Err(result_path_failure(input, path, &parsed.segments))
}

/// The failure of a ResultPath that cannot be applied, with the input handed back.
fn result_path_failure(input: Value, path: &str, segments: &[path::Segment]) -> (Value, ExprError) {
    // the failure quotes the input as the failed attempt leaves it (objects it created included)
    let mut attempted = input.clone();
    let _ = path::set_at(&mut attempted, segments, Value::Null);
    (
        input,
        ExprError::new(
            "States.ResultPathMatchFailure",
            format!(
                "Unable to apply ReplacementPath '{path}' to input '{}'",
                to_compact(&attempted)
            ),
        ),
    )
}

/// A reference path (ResultPath), parsed once per thread.
fn cached_reference(path: &str) -> Result<Arc<path::JsonPath>, String> {
    let parsed = cached_path(path)?;
    path::check_reference(&parsed, path)?;
    Ok(parsed)
}

// ---------------------------------------------------------------------------------------------
// Payload templates, dynamic values, Assign
// ---------------------------------------------------------------------------------------------

/// Renders a payload template (Parameters, ResultSelector, ItemSelector, Arguments): keys
/// ending in `.$` are evaluated (path or intrinsic) and lose the suffix; everything else is
/// copied literally, recursively through objects and arrays.
pub fn render_template(template: &Value, env: Env) -> Result<Value, ExprError> {
    match template {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, value) in map {
                match key.strip_suffix(".$") {
                    Some(name) => {
                        out.insert(name.to_string(), evaluate_field(key, value, env)?);
                    }
                    None => {
                        out.insert(key.clone(), render_template(value, env)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|v| render_template(v, env))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// Evaluates the value of one `.$` field of a template; `field` is the key with its `.$`,
/// quoted in AWS's failure text.
fn evaluate_field(field: &str, value: &Value, env: Env) -> Result<Value, ExprError> {
    let Value::String(expr) = value else {
        return Err(ExprError::runtime(format!(
            "The value for the field '{field}' must be a STRING that contains a JSONPath or an intrinsic function"
        )));
    };
    if intrinsics::looks_like_call(expr) {
        return evaluate_call(expr, env);
    }
    let parsed = cached_path(expr).map_err(|_| {
        ExprError::runtime(format!(
            "The value for the field '{field}' must be a valid JSONPath or a valid intrinsic function call"
        ))
    })?;
    match parsed.select(env.input, env.context, env.variables) {
        Ok(path::Selected::One(v)) => Ok(v.clone()),
        Ok(many) => Ok(many.into_value()),
        Err(_) => {
            let doc = if parsed.root == path::Root::Context {
                env.context
            } else {
                env.input
            };
            Err(ExprError::runtime(format!(
                "The JSONPath '{expr}' specified for the field '{field}' could not be found in the input '{}'",
                to_compact(doc)
            )))
        }
    }
}

fn evaluate_call(expr: &str, env: Env) -> Result<Value, ExprError> {
    let call = cached_call(expr)
        .map_err(|e| ExprError::runtime(format!("Invalid intrinsic function '{expr}': {e}")))?;
    intrinsics::evaluate(&call, expr, env)
}

/// Evaluates one dynamic value: a path (`$...`, `$$...`, `$var...`) or an intrinsic function
/// call such as `States.Format('{}', $.x)`, as Fail's ErrorPath/CausePath accept.
pub fn evaluate_dynamic(expr: &str, env: Env) -> Result<Value, ExprError> {
    if intrinsics::looks_like_call(expr) {
        evaluate_call(expr, env)
    } else {
        query(expr, env)
    }
}

/// Evaluates an `Assign` block into variable values: `name.$` keys are evaluated like template
/// fields (the variable is `name`), other values are taken as templates.
pub fn render_assign(assign: &Value, env: Env) -> Result<Map<String, Value>, ExprError> {
    let Value::Object(map) = assign else {
        return Err(ExprError::runtime(
            "The value of 'Assign' must be a JSON object".to_string(),
        ));
    };
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        match key.strip_suffix(".$") {
            Some(name) => {
                out.insert(name.to_string(), evaluate_field(key, value, env)?);
            }
            None => {
                out.insert(key.clone(), render_template(value, env)?);
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Load-time validation
// ---------------------------------------------------------------------------------------------

/// Checks a path at load time (InputPath, OutputPath, ItemsPath, `*Path` fields, Variable).
pub fn validate_path(path: &str) -> Result<(), String> {
    cached_path(path).map(|_| ())
}

/// Checks a reference path at load time (ResultPath): `$`, or `$` followed by property names
/// and non-negative indexes only.
pub fn validate_reference_path(path: &str) -> Result<(), String> {
    path::parse_reference(path).map(|_| ())
}

/// Checks a dynamic value at load time: a valid path or a syntactically valid intrinsic call.
pub fn validate_dynamic(expr: &str) -> Result<(), String> {
    if intrinsics::looks_like_call(expr) {
        cached_call(expr).map(|_| ())
    } else {
        validate_path(expr)
    }
}

/// Checks a payload template at load time: every `.$` value is a string holding a valid path
/// or a syntactically valid intrinsic call.
pub fn validate_template(template: &Value) -> Result<(), String> {
    match template {
        Value::Object(map) => {
            for (key, value) in map {
                if key.ends_with(".$") {
                    let Value::String(expr) = value else {
                        return Err(format!(
                            "The value for the field '{key}' must be a STRING that contains a JSONPath or an intrinsic function"
                        ));
                    };
                    validate_dynamic(expr).map_err(|e| {
                        format!(
                            "The value for the field '{key}' must be a valid JSONPath or a valid intrinsic function call: {e}"
                        )
                    })?;
                } else {
                    validate_template(value)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(validate_template),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixture {
        input: Value,
        context: Value,
        vars: Map<String, Value>,
    }

    impl Fixture {
        fn new(input: Value) -> Fixture {
            let context = json!({"Execution": {"Id": "arn:exec", "Input": input.clone()}, "Map": {"Item": {"Value": "Pikachu", "Index": 1}}});
            Fixture {
                input,
                context,
                vars: Map::new(),
            }
        }

        fn var(mut self, name: &str, v: Value) -> Fixture {
            self.vars.insert(name.to_string(), v);
            self
        }

        fn env(&self) -> Env<'_> {
            Env {
                input: &self.input,
                context: &self.context,
                variables: &self.vars,
            }
        }
    }

    #[test]
    fn query_reads_input_context_and_variables() {
        let f = Fixture::new(json!({"a": {"b": [1, 2]}})).var("theAnswer", json!({"x": 42}));
        assert_eq!(query("$", f.env()), Ok(json!({"a": {"b": [1, 2]}})));
        assert_eq!(query("$.a.b[1]", f.env()), Ok(json!(2)));
        assert_eq!(query("$$.Execution.Input.a.b[0]", f.env()), Ok(json!(1)));
        assert_eq!(query("$theAnswer.x", f.env()), Ok(json!(42)));
        assert_eq!(query("$.a.b[*]", f.env()), Ok(json!([1, 2])));
    }

    #[test]
    fn query_ref_borrows_definite_selections() {
        let f = Fixture::new(json!({"a": 1}));
        assert!(matches!(query_ref("$", f.env()), Ok(Cow::Borrowed(_))));
        assert!(matches!(query_ref("$..a", f.env()), Ok(Cow::Owned(_))));
    }

    #[test]
    fn query_reports_missing_paths_with_aws_text() {
        let f = Fixture::new(json!({}));
        assert_eq!(
            query("$.x", f.env()),
            Err(ExprError::new(
                "States.Runtime",
                "Invalid path '$.x' : No results for path: $['x']"
            ))
        );
        assert_eq!(
            query("$.no.such.result.path", f.env()),
            Err(ExprError::new(
                "States.Runtime",
                "Invalid path '$.no.such.result.path' : Missing property in path $['no']"
            ))
        );
    }

    #[test]
    fn result_path_dollar_replaces_the_input() {
        assert_eq!(
            apply_result_path(&json!({"a": 1}), "$", json!([1])),
            Ok(json!([1]))
        );
    }

    #[test]
    fn result_path_creates_missing_objects_and_keeps_siblings() {
        assert_eq!(
            apply_result_path(&json!({"a": 1}), "$.r.s", json!("x")),
            Ok(json!({"a": 1, "r": {"s": "x"}}))
        );
        assert_eq!(
            apply_result_path(
                &json!({"result": 1}),
                "$.result",
                json!({"result": "foobar"})
            ),
            Ok(json!({"result": {"result": "foobar"}}))
        );
    }

    #[test]
    fn result_path_into_a_non_object_fails() {
        assert_eq!(
            apply_result_path(&json!([1, 2]), "$.r", json!(1)),
            Err(ExprError::new(
                "States.ResultPathMatchFailure",
                "Unable to apply ReplacementPath '$.r' to input '[1,2]'"
            ))
        );
    }

    #[test]
    fn failed_result_path_hands_the_input_back_unchanged() {
        let input = json!({"a": 1, "l": []});
        let (back, e) = try_apply_result_path(input.clone(), "$.a.b", json!(2)).unwrap_err();
        assert_eq!(back, input);
        assert_eq!(e.error, "States.ResultPathMatchFailure");
        // the text quotes the input as the attempt left it, as before
        let (back, e) = try_apply_result_path(input.clone(), "$.n[0]", json!(2)).unwrap_err();
        assert_eq!(back, input);
        assert_eq!(
            e.message,
            "Unable to apply ReplacementPath '$.n[0]' to input '{\"a\":1,\"l\":[],\"n\":{}}'"
        );
        assert_eq!(
            try_apply_result_path(input, "$.n.m", json!(2)).ok(),
            Some(json!({"a": 1, "l": [], "n": {"m": 2}}))
        );
    }

    #[test]
    fn template_evaluates_dollar_keys_and_keeps_literals() {
        let f = Fixture::new(json!({"input_value": "v", "n": 1}));
        let template = json!({
            "literal": "$.input_value",
            "path.$": "$.input_value",
            "ctx.$": "$$.Execution.Id",
            "fn.$": "States.Format('Format Func {}', $.input_value)",
            "nested": {"deep.$": "$.n", "list": [{"x.$": "$.n"}, "$.n", 3]},
            "Comment": "Comment text"
        });
        assert_eq!(
            render_template(&template, f.env()),
            Ok(json!({
                "literal": "$.input_value",
                "path": "v",
                "ctx": "arn:exec",
                "fn": "Format Func v",
                "nested": {"deep": 1, "list": [{"x": 1}, "$.n", 3]},
                "Comment": "Comment text"
            }))
        );
    }

    #[test]
    fn template_filter_and_wildcard_yield_arrays() {
        let f = Fixture::new(
            json!({"users": [{"year": 1997, "status": 0}, {"year": 1998, "status": 1}]}),
        );
        assert_eq!(
            render_template(
                &json!({"FromInput.$": "$.users[?(@.status == 0)]"}),
                f.env()
            ),
            Ok(json!({"FromInput": [{"year": 1997, "status": 0}]}))
        );
        let empty = Fixture::new(json!({}));
        assert_eq!(
            render_template(&json!({"item.$": "$.items[:1]"}), empty.env()),
            Ok(json!({"item": []}))
        );
    }

    #[test]
    fn template_missing_path_names_the_field_and_the_input() {
        let f = Fixture::new(json!({"flagged": false}));
        assert_eq!(
            render_template(&json!({"address.$": "$.application.address"}), f.env()),
            Err(ExprError::new(
                "States.Runtime",
                "The JSONPath '$.application.address' specified for the field 'address.$' could not be found in the input '{\"flagged\":false}'"
            ))
        );
    }

    #[test]
    fn template_reads_variables_and_map_item_context() {
        let f = Fixture::new(json!({})).var("AnswerTemplate", json!("It's {}!"));
        assert_eq!(
            render_template(
                &json!({"AnnouncePokemon.$": "States.Format($AnswerTemplate, $$.Map.Item.Value)"}),
                f.env()
            ),
            Ok(json!({"AnnouncePokemon": "It's Pikachu!"}))
        );
    }

    #[test]
    fn dynamic_values_accept_paths_and_intrinsics() {
        let f = Fixture::new(json!({"Error": "error string", "Cause": "cause string"}))
            .var("errorVar", json!("Exception"));
        assert_eq!(
            evaluate_dynamic("$.Error", f.env()),
            Ok(json!("error string"))
        );
        assert_eq!(
            evaluate_dynamic("$errorVar", f.env()),
            Ok(json!("Exception"))
        );
        assert_eq!(
            evaluate_dynamic(
                "States.Format('This is a custom error message for {}, caused by {}.', $.Error, $.Cause)",
                f.env()
            ),
            Ok(json!(
                "This is a custom error message for error string, caused by cause string."
            ))
        );
    }

    #[test]
    fn assign_evaluates_dollar_keys_and_keeps_constants() {
        let f = Fixture::new(json!({"input_value": "v", "theQuestion": "q"})).var("old", json!(1));
        let assign = json!({
            "constant_str_path": "$.no.such.path",
            "constant_lst": [null, 0, 0.1, true, "$varname", "States.Format('{}', $varname)"],
            "question.$": "$.theQuestion",
            "sum.$": "States.MathAdd($old, 41)",
            "str_contextpath_root.$": "$$"
        });
        let vars = render_assign(&assign, f.env()).unwrap();
        assert_eq!(
            vars.get("constant_str_path"),
            Some(&json!("$.no.such.path"))
        );
        assert_eq!(
            vars.get("constant_lst"),
            Some(&json!([
                null,
                0,
                0.1,
                true,
                "$varname",
                "States.Format('{}', $varname)"
            ]))
        );
        assert_eq!(vars.get("question"), Some(&json!("q")));
        assert_eq!(vars.get("sum"), Some(&json!(42)));
        assert_eq!(vars.get("str_contextpath_root"), Some(&f.context));
        assert_eq!(render_assign(&json!({}), f.env()), Ok(Map::new()));
    }

    #[test]
    fn validation_accepts_good_and_names_bad_expressions() {
        assert_eq!(validate_path("$.a[0]['b']"), Ok(()));
        assert!(validate_path("a.b").is_err());
        assert_eq!(validate_reference_path("$.a.b"), Ok(()));
        assert!(validate_reference_path("$.a[*]").is_err());
        assert_eq!(
            validate_template(
                &json!({"a.$": "States.UUID()", "b": {"c.$": "$$.Execution.Id"}, "d": "States.Nope("})
            ),
            Ok(())
        );
        let err = validate_template(&json!({"x": [{"a.$": "States.Nope()"}]})).unwrap_err();
        assert!(
            err.contains("'a.$'") && err.contains("States.Nope"),
            "{err}"
        );
        assert!(validate_template(&json!({"a.$": 1})).is_err());
        assert!(validate_template(&json!({"a.$": "not a path"})).is_err());
    }

    #[test]
    fn every_prefix_of_valid_expressions_is_handled_without_panicking() {
        let f = Fixture::new(json!({"a": [{"v": 1, "s": "x"}, {"v": 2}], "b c": {"d": "é"}}));
        let expressions = [
            "$.a[?(@.v >= 1 && !(@.s == 'x') || @.v in [2, 3])].v",
            "$..['b c'].d",
            "$.a[-1:][0:2:1]['v']",
            "$$.Map.Item.Value",
            "States.Format('\\{é\\} {} \\'{}\\'', $.a[0].v, States.ArrayGetItem(States.StringSplit('a,b', ','), 1))",
            "States.MathRandom(1, States.MathAdd(2, 1.5), 7)",
            "States.JsonMerge(States.StringToJson('{\"k\": [1]}'), $['b c'], false)",
        ];
        for expr in expressions {
            assert!(validate_dynamic(expr).is_ok(), "{expr}");
            assert!(evaluate_dynamic(expr, f.env()).is_ok(), "{expr}");
            for (i, _) in expr.char_indices() {
                let prefix = &expr[..i];
                let _ = validate_dynamic(prefix);
                let _ = evaluate_dynamic(prefix, f.env());
                let _ = validate_reference_path(prefix);
                let _ = apply_result_path(&f.input, prefix, json!(1));
                let _ = ChoiceRule::parse(&json!({"Variable": prefix, "StringMatches": prefix}));
            }
        }
    }

    #[test]
    fn parsed_expressions_are_cached_per_thread() {
        let a = cached_path("$.cache.me").unwrap();
        let b = cached_path("$.cache.me").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = cached_call("States.Array(1)").unwrap();
        let d = cached_call("States.Array(1)").unwrap();
        assert!(Arc::ptr_eq(&c, &d));
    }
}
