//! Expressions compiled once per state machine: payload templates and paths parsed when the
//! definition is loaded, so running a state neither re-parses nor looks up a parse cache
//! (hashing the expression text) nor re-scans template keys for `.$`. Evaluation gives exactly
//! what [`super::render_template`] and [`super::query_ref`] give for the same source, errors
//! included (an expression that does not parse fails when it runs, with the same text).

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Env, ExprError, cached_call, cached_path, intrinsics, path, to_compact};

/// A path field (InputPath, OutputPath, ResultPath, `*Path`), parsed once. Reads as its text.
#[derive(Debug, Clone)]
pub struct CompiledPath {
    text: String,
    parsed: Result<Arc<path::JsonPath>, String>,
    /// As a reference path (ResultPath): the parse plus the reference check.
    reference: Result<Arc<path::JsonPath>, String>,
}

impl CompiledPath {
    pub fn new(text: &str) -> CompiledPath {
        let parsed = cached_path(text);
        let reference = parsed.clone().and_then(|p| {
            path::check_reference(&p, text)?;
            Ok(p)
        });
        CompiledPath {
            text: text.to_owned(),
            parsed,
            reference,
        }
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// [`super::query_ref`] of this path.
    pub fn query_ref<'a>(&self, env: Env<'a>) -> Result<Cow<'a, Value>, ExprError> {
        let parsed = self
            .parsed
            .as_ref()
            .map_err(|e| ExprError::runtime(format!("Invalid path '{}' : {e}", self.text)))?;
        match parsed.select(env.input, env.context, env.variables) {
            Ok(path::Selected::One(v)) => Ok(Cow::Borrowed(v)),
            Ok(many) => Ok(Cow::Owned(many.into_value())),
            Err(miss) => Err(ExprError::runtime(format!(
                "Invalid path '{}' : {}",
                self.text,
                miss.detail()
            ))),
        }
    }

    /// [`super::query`] of this path.
    pub fn query(&self, env: Env) -> Result<Value, ExprError> {
        self.query_ref(env).map(Cow::into_owned)
    }

    /// [`super::try_apply_result_path`] with this path.
    pub fn try_apply_result_path(
        &self,
        mut input: Value,
        result: Value,
    ) -> Result<Value, (Value, ExprError)> {
        let parsed = match &self.reference {
            Ok(p) => p,
            Err(e) => {
                return Err((
                    input,
                    ExprError::runtime(format!("Invalid path '{}' : {e}", self.text)),
                ));
            }
        };
        if path::can_set(&input, &parsed.segments)
            && path::set_at(&mut input, &parsed.segments, result).is_ok()
        {
            return Ok(input);
        }
        Err(super::result_path_failure(
            input,
            &self.text,
            &parsed.segments,
        ))
    }
}

impl Deref for CompiledPath {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for CompiledPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A payload template (Parameters, ResultSelector, ItemSelector), compiled once. `source` is
/// the template as written.
#[derive(Debug, Clone)]
pub struct Template {
    pub source: Value,
    node: Node,
}

#[derive(Debug, Clone)]
enum Node {
    /// No `.$` key anywhere below: copied as it is.
    Literal(Value),
    /// `(output key, what it holds)` in the template's order.
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    /// The value of a `.$` key; `field` is the key with its `.$`.
    Dynamic {
        field: String,
        expr: Dynamic,
    },
}

#[derive(Debug, Clone)]
enum Dynamic {
    Path(Arc<path::JsonPath>, String),
    Call(Arc<intrinsics::Call>, String),
    /// Fails as [`super::render_template`] fails on it (not a string, does not parse).
    Invalid(Value),
}

impl Template {
    pub fn new(source: Value) -> Template {
        let node = compile(&source);
        Template { source, node }
    }

    /// [`super::render_template`] of `source`.
    pub fn render(&self, env: Env) -> Result<Value, ExprError> {
        render(&self.node, env)
    }
}

fn has_dynamic(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| k.ends_with(".$") || has_dynamic(v)),
        Value::Array(a) => a.iter().any(has_dynamic),
        _ => false,
    }
}

fn compile(v: &Value) -> Node {
    if !has_dynamic(v) {
        return Node::Literal(v.clone());
    }
    match v {
        Value::Object(map) => Node::Object(
            map.iter()
                .map(|(key, value)| match key.strip_suffix(".$") {
                    Some(name) => (
                        name.to_owned(),
                        Node::Dynamic {
                            field: key.clone(),
                            expr: compile_dynamic(value),
                        },
                    ),
                    None => (key.clone(), compile(value)),
                })
                .collect(),
        ),
        Value::Array(items) => Node::Array(items.iter().map(compile).collect()),
        other => Node::Literal(other.clone()),
    }
}

fn compile_dynamic(value: &Value) -> Dynamic {
    let Value::String(expr) = value else {
        return Dynamic::Invalid(value.clone());
    };
    if intrinsics::looks_like_call(expr) {
        return match cached_call(expr) {
            Ok(call) => Dynamic::Call(call, expr.clone()),
            Err(_) => Dynamic::Invalid(value.clone()),
        };
    }
    match cached_path(expr) {
        Ok(p) => Dynamic::Path(p, expr.clone()),
        Err(_) => Dynamic::Invalid(value.clone()),
    }
}

fn render(node: &Node, env: Env) -> Result<Value, ExprError> {
    match node {
        Node::Literal(v) => Ok(v.clone()),
        Node::Object(fields) => {
            let mut out = Map::with_capacity(fields.len());
            for (key, value) in fields {
                out.insert(key.clone(), render(value, env)?);
            }
            Ok(Value::Object(out))
        }
        Node::Array(items) => items
            .iter()
            .map(|v| render(v, env))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Node::Dynamic { field, expr } => match expr {
            Dynamic::Path(parsed, text) => select(parsed, text, field, env),
            Dynamic::Call(call, text) => intrinsics::evaluate(call, text, env),
            Dynamic::Invalid(v) => super::evaluate_field(field, v, env),
        },
    }
}

/// A template field's path: as [`super::evaluate_field`] evaluates it.
fn select(parsed: &path::JsonPath, expr: &str, field: &str, env: Env) -> Result<Value, ExprError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env_with<'a>(input: &'a Value, context: &'a Value, vars: &'a Map<String, Value>) -> Env<'a> {
        Env {
            input,
            context,
            variables: vars,
        }
    }

    #[test]
    fn compiled_templates_render_as_the_interpreted_ones() {
        let input = json!({"a": {"b": [1, 2, 3]}, "s": "x", "users": [{"y": 1}, {"y": 2}]});
        let context = json!({"Execution": {"Id": "arn:exec"}, "Task": {"Token": "t"}});
        let mut vars = Map::new();
        vars.insert("v".into(), json!({"w": 7}));
        let env = env_with(&input, &context, &vars);
        let templates = [
            json!({"FunctionName": "arn:f", "Payload": {"ticket_id.$": "$.s", "milestone": "m", "task_token.$": "$$.Task.Token"}}),
            json!({"lit": {"deep": [1, {"k": "$.s"}]}, "p.$": "$.a.b[1]", "many.$": "$.users[*].y"}),
            json!({"f.$": "States.Format('{}-{}', $.s, $v.w)", "arr": [{"x.$": "$.a"}, 3, "y"]}),
            json!({"a": 1, "a.$": "$.s"}),
            json!({"len.$": "$.a.b.length()"}),
            // failures: missing path, not a string, not a path, bad call, missing variable
            json!({"m.$": "$.nope.deeper"}),
            json!({"n.$": 3}),
            json!({"q.$": "not a path"}),
            json!({"c.$": "States.Nope(1)"}),
            json!({"u.$": "$undefined.x"}),
            json!({"t.$": "$$.Missing"}),
        ];
        for t in templates {
            let compiled = Template::new(t.clone());
            assert_eq!(
                compiled.render(env),
                super::super::render_template(&t, env),
                "{t}"
            );
            assert_eq!(compiled.source, t);
        }
        // key order is kept
        let t = Template::new(json!({"z": 1, "y.$": "$.s", "x": 2}));
        assert_eq!(
            t.render(env).map(|v| v.to_string()).ok(),
            Some(r#"{"z":1,"y":"x","x":2}"#.to_owned())
        );
    }

    #[test]
    fn literal_templates_are_copied_whole() {
        let t = Template::new(json!({"a": {"b": ["$.x", {"c": 1}]}}));
        assert!(matches!(t.node, Node::Literal(_)));
        let t = Template::new(json!({"a": {"b.$": "$.x"}, "l": [1, 2]}));
        let Node::Object(fields) = &t.node else {
            panic!("object expected");
        };
        assert!(matches!(fields[0].1, Node::Object(_)));
        assert!(matches!(fields[1].1, Node::Literal(_)));
    }

    #[test]
    fn compiled_paths_query_and_apply_as_the_interpreted_ones() {
        let input = json!({"a": {"b": [1, 2]}, "l": [], "n": 1});
        let context = json!({"State": {"Name": "S"}});
        let vars = Map::new();
        let env = env_with(&input, &context, &vars);
        for p in [
            "$",
            "$.a.b[1]",
            "$.a.b[*]",
            "$.x",
            "$.x.y",
            "$$.State.Name",
            "bad",
            "$.a..b",
        ] {
            let c = CompiledPath::new(p);
            assert_eq!(c.as_str(), p);
            assert_eq!(c.query(env), super::super::query(p, env), "{p}");
            assert_eq!(
                c.query_ref(env).map(Cow::into_owned),
                super::super::query_ref(p, env).map(Cow::into_owned),
                "{p}"
            );
        }
        for p in [
            "$",
            "$.r",
            "$.a.c",
            "$.n.m",
            "$.l[0]",
            "$.a.b[*]",
            "bad",
            "$.new.deep",
        ] {
            let c = CompiledPath::new(p);
            assert_eq!(
                c.try_apply_result_path(input.clone(), json!("R")),
                super::super::try_apply_result_path(input.clone(), p, json!("R")),
                "{p}"
            );
        }
        assert!(matches!(
            CompiledPath::new("$.a").query_ref(env),
            Ok(Cow::Borrowed(_))
        ));
    }
}
