//! The workflow files in `workflows/`, loaded like the cloud does, and their diagram.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The after-sales definition's path.
pub fn after_sales_path() -> PathBuf {
    repo_root().join("workflows").join("after-sales.asl.json")
}

/// The `${...}` substitutions the SAM template fills (`DefinitionSubstitutions`), each with the
/// fake function ARN the path tests use. docs/workflow.md lists the same names.
pub const SUBSTITUTIONS: &[(&str, &str)] = &[
    ("DiagnoseFunctionArn", "diagnose"),
    ("ProposeFunctionArn", "propose"),
    ("ExecuteRefundFunctionArn", "execute-refund"),
    ("NotifyFunctionArn", "notify"),
    ("SurveyFunctionArn", "survey"),
];

/// The fake ARN standing in for a function in the path tests.
pub fn fake_arn(function: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:aftersales-{function}")
}

/// The function name (`diagnose`, `notify`, ...) of a fake ARN.
pub fn function_of(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:aws:lambda:us-east-1:123456789012:function:aftersales-")
}

/// Fills every `${Name}` of [`SUBSTITUTIONS`]; fails on a substitution the list does not know,
/// so the definition and the template cannot drift apart unnoticed.
pub fn substitute(text: &str) -> Result<String, String> {
    let mut out = text.to_owned();
    for (name, function) in SUBSTITUTIONS {
        out = out.replace(&format!("${{{name}}}"), &fake_arn(function));
    }
    match out.find("${") {
        Some(i) => Err(format!(
            "unknown substitution in the definition: {}",
            &out[i..out.len().min(i + 40)]
        )),
        None => Ok(out),
    }
}

/// The after-sales definition as committed (substitutions unfilled).
pub fn after_sales_source() -> String {
    let path = after_sales_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The after-sales state machine with fake ARNs, validated by the interpreter.
pub fn after_sales_machine() -> asl::StateMachine {
    let text = substitute(&after_sales_source()).unwrap_or_else(|e| panic!("{e}"));
    asl::StateMachine::from_json_str(&text)
        .unwrap_or_else(|e| panic!("workflows/after-sales.asl.json rejected: {e}"))
}

/// Every state name of a definition (top level; the workflow has no Parallel or Map).
pub fn state_names(definition: &Value) -> Vec<String> {
    definition["States"]
        .as_object()
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default()
}

/// A Mermaid `stateDiagram-v2` of a definition: one arrow per Next/Default/Choice/Catch, labelled
/// with the condition or the error names; Choice states drawn as diamonds.
pub fn mermaid(definition: &Value) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    let empty = Map::new();
    let states = definition["States"].as_object().unwrap_or(&empty);
    for (name, state) in states {
        if state["Type"] == "Choice" {
            let _ = writeln!(out, "    state {name} <<choice>>");
        }
    }
    if let Some(start) = definition["StartAt"].as_str() {
        let _ = writeln!(out, "    [*] --> {start}");
    }
    for (name, state) in states {
        // (target, labels) in first-seen order; several conditions to one target share an arrow
        let mut edges: Vec<(String, Vec<String>)> = Vec::new();
        let mut add = |to: &str, label: String| match edges.iter_mut().find(|(t, _)| t == to) {
            Some((_, labels)) => {
                if !label.is_empty() && !labels.contains(&label) {
                    labels.push(label);
                }
            }
            None => edges.push((
                to.to_owned(),
                [label].into_iter().filter(|l| !l.is_empty()).collect(),
            )),
        };
        for choice in state["Choices"].as_array().into_iter().flatten() {
            if let Some(next) = choice["Next"].as_str() {
                add(next, condition(choice));
            }
        }
        if let Some(default) = state["Default"].as_str() {
            add(default, "otherwise".into());
        }
        if let Some(next) = state["Next"].as_str() {
            add(next, String::new());
        }
        for catch in state["Catch"].as_array().into_iter().flatten() {
            if let Some(next) = catch["Next"].as_str() {
                add(next, errors(&catch["ErrorEquals"]));
            }
        }
        let terminal = state["End"] == Value::Bool(true)
            || state["Type"] == "Succeed"
            || state["Type"] == "Fail";
        if terminal {
            add("[*]", String::new());
        }
        for (to, labels) in edges {
            if labels.is_empty() {
                let _ = writeln!(out, "    {name} --> {to}");
            } else {
                let _ = writeln!(out, "    {name} --> {to}: {}", labels.join(" / "));
            }
        }
    }
    out
}

fn errors(names: &Value) -> String {
    names
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A short reading of a Choice rule: `outcome = declined`, `all_restockable`, `no resolution`.
fn condition(rule: &Value) -> String {
    if let Some(any) = rule["Or"].as_array() {
        return any.iter().map(condition).collect::<Vec<_>>().join(" or ");
    }
    if let Some(all) = rule["And"].as_array() {
        return all.iter().map(condition).collect::<Vec<_>>().join(" and ");
    }
    if rule.get("Not").is_some() {
        let inner = &rule["Not"];
        if inner["IsPresent"] == Value::Bool(true) {
            return format!("no {}", field(inner));
        }
        return format!("not ({})", condition(inner));
    }
    let ops: BTreeMap<&str, &str> = [
        ("StringEquals", "="),
        ("NumericEquals", "="),
        ("BooleanEquals", "="),
        ("NumericGreaterThan", ">"),
        ("NumericLessThanEquals", "<="),
    ]
    .into_iter()
    .collect();
    for (op, sign) in &ops {
        if let Some(v) = rule.get(*op) {
            return match v {
                Value::Bool(true) => field(rule),
                Value::Bool(false) => format!("not {}", field(rule)),
                Value::String(s) => format!("{} {sign} {s}", field(rule)),
                other => format!("{} {sign} {other}", field(rule)),
            };
        }
    }
    field(rule)
}

fn field(rule: &Value) -> String {
    rule["Variable"]
        .as_str()
        .and_then(|v| v.rsplit('.').next())
        .unwrap_or("?")
        .to_owned()
}

/// The markers around the generated diagram in docs/workflow.md.
pub const DIAGRAM_BEGIN: &str = "<!-- BEGIN GENERATED DIAGRAM: UPDATE_DIAGRAM=1 cargo test -p aftersales-tests --test workflow_diagram -->";
pub const DIAGRAM_END: &str = "<!-- END GENERATED DIAGRAM -->";

/// docs/workflow.md with the block between the markers replaced by `diagram`.
pub fn with_diagram(doc: &str, diagram: &str) -> Result<String, String> {
    let begin = doc
        .find(DIAGRAM_BEGIN)
        .ok_or_else(|| format!("marker missing: {DIAGRAM_BEGIN}"))?;
    let end = doc
        .find(DIAGRAM_END)
        .ok_or_else(|| format!("marker missing: {DIAGRAM_END}"))?;
    if end < begin {
        return Err("the end marker comes before the begin marker".into());
    }
    let head = &doc[..begin + DIAGRAM_BEGIN.len()];
    let tail = &doc[end..];
    Ok(format!("{head}\n```mermaid\n{diagram}```\n{tail}"))
}
