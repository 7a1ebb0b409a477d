//! Loading a state machine definition: parsing the Amazon States Language JSON into a compiled,
//! index-based form the engine runs, and rejecting what Step Functions rejects.
//!
//! Validation follows `CreateStateMachine`'s `InvalidDefinition` error: every problem is a
//! [`Diagnostic`] `CODE: message at /pointer` (`SCHEMA_VALIDATION_FAILED` for malformed fields,
//! `MISSING_TRANSITION_TARGET` for a `Next`/`Default`/catcher target that is not a state,
//! `UNREACHABLE_STATE` for a state no transition leads to, `MISSING_END_STATE` for a (sub)machine
//! without a terminal state, `INVALID_JSON_PATH`/`INVALID_INTRINSIC`-style codes reported by the
//! expression layer's `validate_*` functions), the pointer naming the state.
//!
//! Nested state machines (Parallel branches, Map item processors) are flattened into one list of
//! [`Machine`]s addressed by index, so an execution snapshot can refer to "machine 3, state 5"
//! without holding references into the definition.

use crate::error::{Diagnostic, InvalidDefinition};
use crate::expr::{self, ChoiceRule, CompiledPath, Template};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

/// A validated state machine definition, cheap to clone and shareable between executions.
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub(crate) def: Arc<Definition>,
}

impl StateMachine {
    /// Parses and validates a definition given as JSON text.
    pub fn from_json_str(text: &str) -> Result<StateMachine, InvalidDefinition> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            InvalidDefinition::single(
                "INVALID_JSON_DESCRIPTION",
                format!("Cannot parse the definition: {e}"),
                "/",
            )
        })?;
        StateMachine::from_value(value)
    }

    /// Parses and validates a definition given as a JSON value.
    pub fn from_value(source: Value) -> Result<StateMachine, InvalidDefinition> {
        let mut loader = Loader {
            diags: Vec::new(),
            machines: Vec::new(),
        };
        let root_jsonata = match source.get("QueryLanguage") {
            None => false,
            Some(Value::String(s)) if s == "JSONPath" => false,
            Some(Value::String(s)) if s == "JSONata" => true,
            Some(_) => {
                loader.err(
                    "SCHEMA_VALIDATION_FAILED",
                    "The value for the field 'QueryLanguage' must be one of [JSONPath, JSONata]",
                    "/QueryLanguage",
                );
                false
            }
        };
        let timeout_seconds = match source.get("TimeoutSeconds") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Some(n),
                _ => {
                    loader.err(
                        "SCHEMA_VALIDATION_FAILED",
                        "The value for the field 'TimeoutSeconds' must be a positive integer",
                        "/TimeoutSeconds",
                    );
                    None
                }
            },
        };
        if let Some(obj) = source.as_object() {
            for key in obj.keys() {
                if !matches!(
                    key.as_str(),
                    "StartAt"
                        | "States"
                        | "Comment"
                        | "Version"
                        | "TimeoutSeconds"
                        | "QueryLanguage"
                ) {
                    loader.err(
                        "SCHEMA_VALIDATION_FAILED",
                        format!("The field \"{key}\" is not supported by Step Functions"),
                        format!("/{key}"),
                    );
                }
            }
        }
        let root = loader.machine(&source, "", root_jsonata);
        if !loader.diags.is_empty() {
            return Err(InvalidDefinition {
                diagnostics: loader.diags,
            });
        }
        let root = root.unwrap_or(0);
        Ok(StateMachine {
            def: Arc::new(Definition {
                source,
                machines: loader.machines,
                root,
                timeout_seconds,
                fingerprint: OnceLock::new(),
            }),
        })
    }

    /// The definition as it was loaded.
    pub fn source(&self) -> &Value {
        &self.def.source
    }

    /// The definition as compact JSON text: what [`StateMachine::fingerprint`] digests, and what
    /// [`StateMachine::from_json_str`] reads back into a machine with the same fingerprint.
    pub fn to_json(&self) -> String {
        self.def.source.to_string()
    }

    /// `sha256:` and the hex SHA-256 of [`StateMachine::to_json`]: names this definition, as a
    /// state machine revision does, so that execution snapshots can refer to it
    /// ([`crate::Execution::to_json_by_reference`]) instead of each holding a copy. Computed once
    /// per machine; clones share it.
    pub fn fingerprint(&self) -> &str {
        self.def.fingerprint.get_or_init(|| {
            let digest = Sha256::digest(self.to_json().as_bytes());
            format!("sha256:{}", hex::encode(digest))
        })
    }
}

/// The compiled definition.
#[derive(Debug)]
pub(crate) struct Definition {
    pub source: Value,
    pub machines: Vec<Machine>,
    pub root: usize,
    pub timeout_seconds: Option<u64>,
    pub fingerprint: OnceLock<String>,
}

/// One (sub) state machine: the top level, a Parallel branch or a Map item processor.
#[derive(Debug)]
pub(crate) struct Machine {
    pub states: Vec<State>,
    pub start: usize,
}

/// Where a path-like field points: absent (`$`), JSON `null`, or a path.
#[derive(Debug, Clone)]
pub(crate) enum PathField {
    Default,
    Null,
    Path(CompiledPath),
}

#[derive(Debug)]
pub(crate) struct State {
    pub name: Arc<str>,
    pub kind: Kind,
    pub input_path: PathField,
    pub output_path: PathField,
    pub result_path: PathField,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    /// `None` when the state ends its machine (`End: true`, Succeed, Fail, Choice).
    pub next: Option<usize>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub assign: Option<Value>,
    /// Whether anything in the state mentions `$$` (the context object is only built then).
    pub uses_context: bool,
    /// Whether the context object may be read as a whole or at `$$.Execution.Input` (copying
    /// the execution input into it is skipped otherwise: a 10,000-item Map would copy it
    /// 10,000 times).
    pub context_input: bool,
    /// Every `$$` in the state is `$$.Task.Token`: with a task token, the context object is
    /// just `{"Task": {"Token": ..}}`.
    pub context_token_only: bool,
    /// A `lambda:invoke` result is only read through `Payload` (a ResultSelector reading
    /// `$.Payload...`, or not at all): the full response (`SdkHttpMetadata`, ...) is then built
    /// only for the history, when it is read.
    pub lambda_result_payload_only: bool,
    /// The state is written in JSONata (not supported by this engine beyond literal fields).
    pub jsonata: bool,
    /// JSONata `Output` field (literal values only).
    pub output: Option<Value>,
}

#[derive(Debug)]
pub(crate) struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u64,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub jitter_full: bool,
}

#[derive(Debug)]
pub(crate) struct Catcher {
    pub error_equals: Vec<String>,
    pub next: usize,
    pub result_path: PathField,
    pub assign: Option<Value>,
}

/// A number given literally or through a path (`TimeoutSeconds`/`TimeoutSecondsPath`, ...).
#[derive(Debug, Clone)]
pub(crate) enum NumberField {
    Literal(f64),
    Path(CompiledPath),
}

#[derive(Debug)]
pub(crate) enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task(TaskSpec),
    Choice {
        choices: Vec<ChoiceBranch>,
        default: Option<usize>,
    },
    Wait(WaitSpec),
    Succeed,
    Fail(FailSpec),
    Parallel {
        branches: Vec<usize>,
    },
    Map(Box<MapSpec>),
}

impl Kind {
    /// The history event type on entering a state of this kind (`TaskStateEntered`, ...).
    pub fn entered_event(&self) -> &'static str {
        match self {
            Kind::Pass { .. } => "PassStateEntered",
            Kind::Task(_) => "TaskStateEntered",
            Kind::Choice { .. } => "ChoiceStateEntered",
            Kind::Wait(_) => "WaitStateEntered",
            Kind::Succeed => "SucceedStateEntered",
            Kind::Fail(_) => "FailStateEntered",
            Kind::Parallel { .. } => "ParallelStateEntered",
            Kind::Map(_) => "MapStateEntered",
        }
    }

    /// The history event type on leaving a state of this kind (`TaskStateExited`, ...).
    pub fn exited_event(&self) -> &'static str {
        match self {
            Kind::Pass { .. } => "PassStateExited",
            Kind::Task(_) => "TaskStateExited",
            Kind::Choice { .. } => "ChoiceStateExited",
            Kind::Wait(_) => "WaitStateExited",
            Kind::Succeed => "SucceedStateExited",
            Kind::Fail(_) => "FailStateExited",
            Kind::Parallel { .. } => "ParallelStateExited",
            Kind::Map(_) => "MapStateExited",
        }
    }
}

#[derive(Debug)]
pub(crate) struct TaskSpec {
    pub resource: String,
    /// `resource` shared with the history events.
    pub resource_text: Arc<str>,
    /// `resourceType` / `resource` as task history events show them.
    pub history_type: Arc<str>,
    pub history_resource: Arc<str>,
    /// What `resource` names and how the task waits, classified once (for `lambda:invoke`,
    /// `function_name` is filled from each request's `FunctionName`).
    pub kind: crate::resource::ResourceKind,
    pub pattern: crate::resource::IntegrationPattern,
    pub timeout: Option<NumberField>,
    pub heartbeat: Option<NumberField>,
}

#[derive(Debug)]
pub(crate) struct ChoiceBranch {
    pub rule: ChoiceRule,
    pub next: usize,
    pub assign: Option<Value>,
}

#[derive(Debug)]
pub(crate) enum WaitSpec {
    Seconds(u64),
    Timestamp(String),
    SecondsPath(CompiledPath),
    TimestampPath(CompiledPath),
}

#[derive(Debug)]
pub(crate) struct FailSpec {
    pub error: Option<String>,
    pub error_path: Option<String>,
    pub cause: Option<String>,
    pub cause_path: Option<String>,
}

#[derive(Debug)]
pub(crate) struct MapSpec {
    pub processor: usize,
    pub items_path: Option<String>,
    /// JSONata `Items` given as a literal array.
    pub items_literal: Option<Value>,
    pub item_selector: Option<Template>,
    pub max_concurrency: Option<NumberField>,
    pub tolerated_count: Option<NumberField>,
    pub tolerated_percentage: Option<NumberField>,
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];
const FLOW: &[&str] = &["Next", "End"];
const IO: &[&str] = &["InputPath", "OutputPath"];
const RESULT: &[&str] = &[
    "ResultPath",
    "Parameters",
    "ResultSelector",
    "Retry",
    "Catch",
];
const JSONATA: &[&str] = &["Arguments", "Output", "Assign"];

fn allowed(ty: &str, field: &str) -> bool {
    if COMMON.contains(&field) {
        return true;
    }
    match ty {
        "Pass" => {
            FLOW.contains(&field)
                || IO.contains(&field)
                || matches!(
                    field,
                    "ResultPath" | "Parameters" | "Result" | "Assign" | "Output"
                )
        }
        "Task" => {
            FLOW.contains(&field)
                || IO.contains(&field)
                || RESULT.contains(&field)
                || JSONATA.contains(&field)
                || matches!(
                    field,
                    "Resource"
                        | "TimeoutSeconds"
                        | "TimeoutSecondsPath"
                        | "HeartbeatSeconds"
                        | "HeartbeatSecondsPath"
                        | "Credentials"
                )
        }
        "Choice" => {
            IO.contains(&field) || matches!(field, "Choices" | "Default" | "Assign" | "Output")
        }
        "Wait" => {
            FLOW.contains(&field)
                || IO.contains(&field)
                || matches!(
                    field,
                    "Seconds" | "Timestamp" | "SecondsPath" | "TimestampPath" | "Assign" | "Output"
                )
        }
        "Succeed" => IO.contains(&field) || field == "Output",
        "Fail" => matches!(field, "Error" | "Cause" | "ErrorPath" | "CausePath"),
        "Parallel" => {
            FLOW.contains(&field)
                || IO.contains(&field)
                || RESULT.contains(&field)
                || JSONATA.contains(&field)
                || field == "Branches"
        }
        "Map" => {
            FLOW.contains(&field)
                || IO.contains(&field)
                || RESULT.contains(&field)
                || JSONATA.contains(&field)
                || matches!(
                    field,
                    "ItemsPath"
                        | "Items"
                        | "ItemSelector"
                        | "ItemProcessor"
                        | "Iterator"
                        | "MaxConcurrency"
                        | "MaxConcurrencyPath"
                        | "ToleratedFailureCount"
                        | "ToleratedFailureCountPath"
                        | "ToleratedFailurePercentage"
                        | "ToleratedFailurePercentagePath"
                        | "ItemReader"
                        | "ItemBatcher"
                        | "ResultWriter"
                        | "Label"
                )
        }
        _ => true,
    }
}

struct Loader {
    diags: Vec<Diagnostic>,
    machines: Vec<Machine>,
}

/// What a state's transition fields point at, by name, resolved once all names are known.
struct Pending {
    name: String,
    loc: String,
}

/// One element of a `Retry` or `Catch` array: position, location, value, object.
type Handler<'v> = (usize, String, &'v Value, &'v Map<String, Value>);

impl Loader {
    fn err(&mut self, code: &'static str, message: impl Into<String>, location: impl Into<String>) {
        self.diags.push(Diagnostic {
            code,
            message: message.into(),
            location: location.into(),
        });
    }

    /// Parses one (sub) machine at JSON pointer `ptr`; returns its index in `machines`.
    fn machine(&mut self, src: &Value, ptr: &str, jsonata: bool) -> Option<usize> {
        let here = if ptr.is_empty() {
            "/".to_string()
        } else {
            ptr.to_string()
        };
        let Some(obj) = src.as_object() else {
            self.err("SCHEMA_VALIDATION_FAILED", "Expected an object", here);
            return None;
        };
        let states_obj = match obj.get("States") {
            Some(Value::Object(m)) => m,
            Some(_) => {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    "The value for the field 'States' must be an object",
                    format!("{ptr}/States"),
                );
                return None;
            }
            None => {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    "These fields are required: [States]",
                    here,
                );
                return None;
            }
        };
        if states_obj.is_empty() {
            self.err(
                "SCHEMA_VALIDATION_FAILED",
                "The field 'States' must contain at least one state",
                format!("{ptr}/States"),
            );
            return None;
        }
        let index: HashMap<&str, usize> = states_obj
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let start = match obj.get("StartAt") {
            Some(Value::String(s)) => match index.get(s.as_str()) {
                Some(i) => Some(*i),
                None => {
                    self.err(
                        "MISSING_TRANSITION_TARGET",
                        format!("Missing 'Next' target: {s}"),
                        format!("{ptr}/StartAt"),
                    );
                    None
                }
            },
            Some(_) => {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    "The value for the field 'StartAt' must be a string",
                    format!("{ptr}/StartAt"),
                );
                None
            }
            None => {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    "These fields are required: [StartAt]",
                    here,
                );
                None
            }
        };
        let mut states = Vec::with_capacity(states_obj.len());
        let mut edges: Vec<Vec<usize>> = Vec::with_capacity(states_obj.len());
        let mut terminal = false;
        for (name, sv) in states_obj {
            let loc = format!("{ptr}/States/{name}");
            let mut targets = Vec::new();
            if let Some(state) = self.state(name, sv, &loc, &index, jsonata, &mut targets) {
                if state.next.is_none() && !matches!(state.kind, Kind::Choice { .. }) {
                    terminal = true;
                }
                states.push(state);
            } else {
                // keep indices aligned; the definition is rejected anyway
                terminal = true;
            }
            edges.push(targets);
        }
        if !terminal {
            self.err(
                "MISSING_END_STATE",
                "Workflow has no terminal state",
                format!("{ptr}/States"),
            );
        }
        let start = start?;
        // reachability
        let mut seen = vec![false; edges.len()];
        let mut queue = VecDeque::from([start]);
        seen[start] = true;
        while let Some(i) = queue.pop_front() {
            for &t in &edges[i] {
                if !seen[t] {
                    seen[t] = true;
                    queue.push_back(t);
                }
            }
        }
        for (i, name) in states_obj.keys().enumerate() {
            if !seen[i] {
                self.err(
                    "MISSING_TRANSITION_TARGET",
                    format!("State \"{name}\" is not reachable."),
                    format!("{ptr}/States/{name}"),
                );
            }
        }
        if states.len() != states_obj.len() {
            return None;
        }
        self.machines.push(Machine { states, start });
        Some(self.machines.len() - 1)
    }

    fn target(
        &mut self,
        v: Option<&Value>,
        index: &HashMap<&str, usize>,
        p: Pending,
        targets: &mut Vec<usize>,
    ) -> Option<usize> {
        match v {
            Some(Value::String(s)) => match index.get(s.as_str()) {
                Some(i) => {
                    targets.push(*i);
                    Some(*i)
                }
                None => {
                    self.err(
                        "MISSING_TRANSITION_TARGET",
                        format!("Missing 'Next' target: {s}"),
                        p.loc,
                    );
                    None
                }
            },
            _ => {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    format!("The value for the field '{}' must be a STRING", p.name),
                    p.loc,
                );
                None
            }
        }
    }

    fn path_field(
        &mut self,
        obj: &Map<String, Value>,
        field: &str,
        loc: &str,
        reference: bool,
        jsonata: bool,
    ) -> PathField {
        match obj.get(field) {
            None => PathField::Default,
            Some(Value::Null) => PathField::Null,
            Some(Value::String(s)) => {
                if !jsonata {
                    let check = if reference {
                        expr::validate_reference_path(s)
                    } else {
                        expr::validate_path(s)
                    };
                    if let Err(m) = check {
                        self.err("INVALID_JSON_PATH", m, format!("{loc}/{field}"));
                    }
                }
                PathField::Path(CompiledPath::new(s))
            }
            Some(_) => {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    format!("The value for the field '{field}' must be a STRING"),
                    format!("{loc}/{field}"),
                );
                PathField::Default
            }
        }
    }

    fn opt_path(
        &mut self,
        obj: &Map<String, Value>,
        field: &str,
        loc: &str,
        jsonata: bool,
    ) -> Option<String> {
        match obj.get(field) {
            None => None,
            Some(Value::String(s)) => {
                if !jsonata && let Err(m) = expr::validate_path(s) {
                    self.err("INVALID_JSON_PATH", m, format!("{loc}/{field}"));
                }
                Some(s.clone())
            }
            Some(_) => {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    format!("The value for the field '{field}' must be a STRING"),
                    format!("{loc}/{field}"),
                );
                None
            }
        }
    }

    fn template(
        &mut self,
        obj: &Map<String, Value>,
        field: &str,
        loc: &str,
        jsonata: bool,
    ) -> Option<Value> {
        let v = obj.get(field)?;
        if !jsonata {
            if !v.is_object() {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    format!("The value for the field '{field}' must be an OBJECT"),
                    format!("{loc}/{field}"),
                );
            } else if let Err(m) = expr::validate_template(v) {
                self.err("SCHEMA_VALIDATION_FAILED", m, format!("{loc}/{field}"));
            }
        }
        Some(v.clone())
    }

    fn assign(&mut self, obj: &Map<String, Value>, loc: &str, jsonata: bool) -> Option<Value> {
        let v = obj.get("Assign")?;
        if !v.is_object() {
            self.err(
                "SCHEMA_VALIDATION_FAILED",
                "The value for the field 'Assign' must be an OBJECT",
                format!("{loc}/Assign"),
            );
        } else if !jsonata && let Err(m) = expr::validate_template(v) {
            self.err("SCHEMA_VALIDATION_FAILED", m, format!("{loc}/Assign"));
        }
        Some(v.clone())
    }

    /// A literal-or-path number pair such as `TimeoutSeconds`/`TimeoutSecondsPath`.
    fn number_pair(
        &mut self,
        obj: &Map<String, Value>,
        field: &str,
        loc: &str,
        jsonata: bool,
        integer: bool,
    ) -> Option<NumberField> {
        let path_name = format!("{field}Path");
        match (obj.get(field), obj.get(&path_name)) {
            (Some(_), Some(_)) => {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    format!("These fields cannot be specified together: [{field}, {path_name}]"),
                    loc.to_string(),
                );
                None
            }
            (Some(v), None) => match v.as_f64() {
                Some(n) if n >= 0.0 && (!integer || n.fract() == 0.0) => {
                    Some(NumberField::Literal(n))
                }
                _ if jsonata && v.is_string() => None,
                _ => {
                    let kind = if integer {
                        "a non-negative integer"
                    } else {
                        "a non-negative number"
                    };
                    self.err(
                        "SCHEMA_VALIDATION_FAILED",
                        format!("The value for the field '{field}' must be {kind}"),
                        format!("{loc}/{field}"),
                    );
                    None
                }
            },
            (None, Some(_)) => self
                .opt_path(obj, &path_name, loc, jsonata)
                .map(|p| NumberField::Path(CompiledPath::new(&p))),
            (None, None) => None,
        }
    }

    fn error_equals(&mut self, v: &Value, loc: &str, last: bool, what: &str) -> Vec<String> {
        let Some(arr) = v.get("ErrorEquals").and_then(Value::as_array) else {
            self.err(
                "SCHEMA_VALIDATION_FAILED",
                "These fields are required: [ErrorEquals]",
                loc.to_string(),
            );
            return Vec::new();
        };
        if arr.is_empty() {
            self.err(
                "SCHEMA_VALIDATION_FAILED",
                "The field 'ErrorEquals' must contain at least one error name",
                format!("{loc}/ErrorEquals"),
            );
        }
        let mut out = Vec::with_capacity(arr.len());
        for e in arr {
            match e.as_str() {
                Some(s) => out.push(s.to_string()),
                None => self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    "Error names must be strings",
                    format!("{loc}/ErrorEquals"),
                ),
            }
        }
        if out.iter().any(|e| e == "States.ALL") {
            if out.len() > 1 {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    format!("{what}: States.ALL must appear alone in ErrorEquals"),
                    format!("{loc}/ErrorEquals"),
                );
            } else if !last {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    format!(
                        "{what}: States.ALL must appear in the last {}",
                        what.to_lowercase()
                    ),
                    format!("{loc}/ErrorEquals"),
                );
            }
        }
        out
    }

    /// The objects of a `Retry` or `Catch` array, each with its position and location, after
    /// reporting a field that is not an array, an element that is not an object and
    /// unsupported fields; and the array's length.
    fn handler_list<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        loc: &str,
        field: &str,
        what: &str,
        allowed: &[&str],
    ) -> (usize, Vec<Handler<'v>>) {
        let Some(v) = obj.get(field) else {
            return (0, Vec::new());
        };
        let Some(arr) = v.as_array() else {
            self.err(
                "SCHEMA_VALIDATION_FAILED",
                format!("The value for the field '{field}' must be an ARRAY"),
                format!("{loc}/{field}"),
            );
            return (0, Vec::new());
        };
        let mut out = Vec::new();
        for (i, element) in arr.iter().enumerate() {
            let eloc = format!("{loc}/{field}[{i}]");
            let Some(eobj) = element.as_object() else {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    format!("{what} must be an OBJECT"),
                    eloc,
                );
                continue;
            };
            for k in eobj.keys() {
                if !allowed.contains(&k.as_str()) {
                    self.err(
                        "SCHEMA_VALIDATION_FAILED",
                        format!("The field \"{k}\" is not supported by Step Functions"),
                        format!("{eloc}/{k}"),
                    );
                }
            }
            out.push((i, eloc, element, eobj));
        }
        (arr.len(), out)
    }

    fn retriers(&mut self, obj: &Map<String, Value>, loc: &str) -> Vec<Retrier> {
        const FIELDS: &[&str] = &[
            "ErrorEquals",
            "IntervalSeconds",
            "MaxAttempts",
            "BackoffRate",
            "MaxDelaySeconds",
            "JitterStrategy",
            "Comment",
        ];
        let (count, handlers) = self.handler_list(obj, loc, "Retry", "A retrier", FIELDS);
        let mut out = Vec::new();
        for (i, rloc, r, robj) in handlers {
            let error_equals = self.error_equals(r, &rloc, i + 1 == count, "Retrier");
            let int_field = |this: &mut Loader, name: &str, min: u64, default: u64| -> u64 {
                match robj.get(name) {
                    None => default,
                    Some(v) => {
                        match v.as_u64() {
                            Some(n) if n >= min => n,
                            _ => {
                                this.err(
                                "SCHEMA_VALIDATION_FAILED",
                                format!("The value for the field '{name}' must be an integer >= {min}"),
                                format!("{rloc}/{name}"),
                            );
                                default
                            }
                        }
                    }
                }
            };
            let interval = int_field(self, "IntervalSeconds", 1, 1);
            let max_attempts = int_field(self, "MaxAttempts", 0, 3);
            let max_delay = robj
                .get("MaxDelaySeconds")
                .map(|_| int_field(self, "MaxDelaySeconds", 1, 1) as f64);
            let backoff_rate = match robj.get("BackoffRate") {
                None => 2.0,
                Some(v) => match v.as_f64() {
                    Some(n) if n >= 1.0 => n,
                    _ => {
                        self.err(
                            "SCHEMA_VALIDATION_FAILED",
                            "The value for the field 'BackoffRate' must be a number >= 1.0",
                            format!("{rloc}/BackoffRate"),
                        );
                        2.0
                    }
                },
            };
            let jitter_full = match robj.get("JitterStrategy") {
                None => false,
                Some(Value::String(s)) if s == "FULL" => true,
                Some(Value::String(s)) if s == "NONE" => false,
                Some(_) => {
                    self.err(
                        "SCHEMA_VALIDATION_FAILED",
                        "The value for the field 'JitterStrategy' must be one of [FULL, NONE]",
                        format!("{rloc}/JitterStrategy"),
                    );
                    false
                }
            };
            out.push(Retrier {
                error_equals,
                interval_seconds: interval as f64,
                max_attempts,
                backoff_rate,
                max_delay_seconds: max_delay,
                jitter_full,
            });
        }
        out
    }

    fn catchers(
        &mut self,
        obj: &Map<String, Value>,
        loc: &str,
        index: &HashMap<&str, usize>,
        jsonata: bool,
        targets: &mut Vec<usize>,
    ) -> Vec<Catcher> {
        const FIELDS: &[&str] = &[
            "ErrorEquals",
            "Next",
            "ResultPath",
            "Assign",
            "Output",
            "Comment",
        ];
        let (count, handlers) = self.handler_list(obj, loc, "Catch", "A catcher", FIELDS);
        let mut out = Vec::new();
        for (i, cloc, c, cobj) in handlers {
            let error_equals = self.error_equals(c, &cloc, i + 1 == count, "Catcher");
            let next = match cobj.get("Next") {
                None => {
                    self.err(
                        "SCHEMA_VALIDATION_FAILED",
                        "These fields are required: [Next]",
                        cloc.clone(),
                    );
                    None
                }
                v => self.target(
                    v,
                    index,
                    Pending {
                        name: "Next".into(),
                        loc: format!("{cloc}/Next"),
                    },
                    targets,
                ),
            };
            let result_path = self.path_field(cobj, "ResultPath", &cloc, true, jsonata);
            let assign = self.assign(cobj, &cloc, jsonata);
            if let Some(next) = next {
                out.push(Catcher {
                    error_equals,
                    next,
                    result_path,
                    assign,
                });
            }
        }
        out
    }

    fn state(
        &mut self,
        name: &str,
        sv: &Value,
        loc: &str,
        index: &HashMap<&str, usize>,
        machine_jsonata: bool,
        targets: &mut Vec<usize>,
    ) -> Option<State> {
        let Some(obj) = sv.as_object() else {
            self.err(
                "SCHEMA_VALIDATION_FAILED",
                "A state must be an OBJECT",
                loc.to_string(),
            );
            return None;
        };
        if name.is_empty() || name.chars().count() > 80 {
            self.err(
                "SCHEMA_VALIDATION_FAILED",
                "State names must be 1 to 80 characters long",
                loc.to_string(),
            );
        }
        let ty = match obj.get("Type") {
            Some(Value::String(t)) => t.as_str(),
            Some(_) | None => {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    "These fields are required: [Type]",
                    loc.to_string(),
                );
                return None;
            }
        };
        if !matches!(
            ty,
            "Pass" | "Task" | "Choice" | "Wait" | "Succeed" | "Fail" | "Parallel" | "Map"
        ) {
            self.err(
                "SCHEMA_VALIDATION_FAILED",
                format!("The value for the field 'Type' must be one of [Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map] but was '{ty}'"),
                format!("{loc}/Type"),
            );
            return None;
        }
        let jsonata = match obj.get("QueryLanguage") {
            None => machine_jsonata,
            Some(Value::String(s)) if s == "JSONata" => true,
            Some(Value::String(s)) if s == "JSONPath" => {
                if machine_jsonata {
                    self.err(
                        "SCHEMA_VALIDATION_FAILED",
                        "A state cannot use JSONPath when the state machine uses JSONata",
                        format!("{loc}/QueryLanguage"),
                    );
                }
                false
            }
            Some(_) => {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    "The value for the field 'QueryLanguage' must be one of [JSONPath, JSONata]",
                    format!("{loc}/QueryLanguage"),
                );
                false
            }
        };
        for key in obj.keys() {
            if !allowed(ty, key) {
                self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    format!("The field \"{key}\" is not supported by Step Functions"),
                    format!("{loc}/{key}"),
                );
            }
        }
        // transitions
        let transitions = matches!(ty, "Pass" | "Task" | "Wait" | "Parallel" | "Map");
        let mut next = None;
        if transitions {
            let end = match obj.get("End") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    self.err(
                        "SCHEMA_VALIDATION_FAILED",
                        "The value for the field 'End' must be a BOOLEAN",
                        format!("{loc}/End"),
                    );
                    false
                }
            };
            match (obj.get("Next"), end) {
                (Some(_), true) => self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    "These fields cannot be specified together: [Next, End]",
                    loc.to_string(),
                ),
                (None, false) => self.err(
                    "SCHEMA_VALIDATION_FAILED",
                    "These fields are required: [Next or End: true]",
                    loc.to_string(),
                ),
                (Some(v), false) => {
                    next = self.target(
                        Some(v),
                        index,
                        Pending {
                            name: "Next".into(),
                            loc: format!("{loc}/Next"),
                        },
                        targets,
                    );
                    if next.is_none() {
                        // keep the state non-terminal for the MISSING_END_STATE check
                        next = Some(usize::MAX);
                    }
                }
                (None, true) => {}
            }
        }
        let input_path = self.path_field(obj, "InputPath", loc, false, jsonata);
        let output_path = self.path_field(obj, "OutputPath", loc, false, jsonata);
        let result_path = self.path_field(obj, "ResultPath", loc, true, jsonata);
        let parameters = self.template(obj, "Parameters", loc, jsonata);
        let result_selector = self.template(obj, "ResultSelector", loc, jsonata);
        let retry = self.retriers(obj, loc);
        let catch = self.catchers(obj, loc, index, jsonata, targets);
        let assign = self.assign(obj, loc, jsonata);
        let output = obj.get("Output").cloned();
        let kind = match ty {
            "Pass" => Kind::Pass {
                result: obj.get("Result").cloned(),
            },
            "Task" => {
                let resource = match obj.get("Resource") {
                    Some(Value::String(r)) if r.starts_with("arn:") => r.clone(),
                    Some(_) => {
                        self.err(
                            "SCHEMA_VALIDATION_FAILED",
                            "Value is not a valid resource ARN",
                            format!("{loc}/Resource"),
                        );
                        String::new()
                    }
                    None => {
                        self.err(
                            "SCHEMA_VALIDATION_FAILED",
                            "These fields are required: [Resource]",
                            loc.to_string(),
                        );
                        String::new()
                    }
                };
                let timeout = self.number_pair(obj, "TimeoutSeconds", loc, jsonata, true);
                let heartbeat = self.number_pair(obj, "HeartbeatSeconds", loc, jsonata, true);
                for (f, v) in [
                    ("TimeoutSeconds", &timeout),
                    ("HeartbeatSeconds", &heartbeat),
                ] {
                    if let Some(NumberField::Literal(n)) = v
                        && *n < 1.0
                    {
                        self.err(
                            "SCHEMA_VALIDATION_FAILED",
                            format!("The value for the field '{f}' must be a positive integer"),
                            format!("{loc}/{f}"),
                        );
                    }
                }
                if let (Some(NumberField::Literal(t)), Some(NumberField::Literal(h))) =
                    (&timeout, &heartbeat)
                    && h >= t
                {
                    self.err(
                        "SCHEMA_VALIDATION_FAILED",
                        "The value of HeartbeatSeconds must be smaller than the value of TimeoutSeconds",
                        format!("{loc}/HeartbeatSeconds"),
                    );
                }
                let (history_type, history_resource) = crate::resource::history_names(&resource);
                let (kind, pattern) = crate::resource::classify(&resource, &Value::Null);
                Kind::Task(TaskSpec {
                    kind,
                    pattern,
                    resource_text: Arc::from(resource.as_str()),
                    history_type: Arc::from(history_type),
                    history_resource: Arc::from(history_resource),
                    resource,
                    timeout,
                    heartbeat,
                })
            }
            "Choice" => {
                let mut choices = Vec::new();
                match obj.get("Choices") {
                    Some(Value::Array(arr)) if !arr.is_empty() => {
                        for (i, c) in arr.iter().enumerate() {
                            let cloc = format!("{loc}/Choices[{i}]");
                            let rule = if jsonata {
                                None
                            } else {
                                match ChoiceRule::parse(c) {
                                    Ok(r) => Some(r),
                                    Err(m) => {
                                        self.err("SCHEMA_VALIDATION_FAILED", m, cloc.clone());
                                        None
                                    }
                                }
                            };
                            let n = match c.get("Next") {
                                None => {
                                    self.err(
                                        "SCHEMA_VALIDATION_FAILED",
                                        "These fields are required: [Next]",
                                        cloc.clone(),
                                    );
                                    None
                                }
                                v => self.target(
                                    v,
                                    index,
                                    Pending {
                                        name: "Next".into(),
                                        loc: format!("{cloc}/Next"),
                                    },
                                    targets,
                                ),
                            };
                            let assign = c.get("Assign").cloned();
                            if jsonata {
                                self.err(
                                    "SCHEMA_VALIDATION_FAILED",
                                    "JSONata Choice rules (Condition) are not supported by this interpreter",
                                    format!("{cloc}/Condition"),
                                );
                            }
                            if let (Some(rule), Some(next)) = (rule, n) {
                                choices.push(ChoiceBranch { rule, next, assign });
                            }
                        }
                    }
                    _ => self.err(
                        "SCHEMA_VALIDATION_FAILED",
                        "The field 'Choices' is required and must be a non-empty ARRAY",
                        format!("{loc}/Choices"),
                    ),
                }
                let default = match obj.get("Default") {
                    None => None,
                    v => self.target(
                        v,
                        index,
                        Pending {
                            name: "Default".into(),
                            loc: format!("{loc}/Default"),
                        },
                        targets,
                    ),
                };
                Kind::Choice { choices, default }
            }
            "Wait" => {
                let present: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
                    .into_iter()
                    .filter(|f| obj.contains_key(*f))
                    .collect();
                if present.len() != 1 {
                    self.err(
                        "SCHEMA_VALIDATION_FAILED",
                        "A Wait state must have exactly one of [Seconds, Timestamp, SecondsPath, TimestampPath]",
                        loc.to_string(),
                    );
                    Kind::Wait(WaitSpec::Seconds(0))
                } else {
                    let f = present[0];
                    let v = &obj[f];
                    let spec = match f {
                        "Seconds" => match v.as_u64() {
                            Some(n) => WaitSpec::Seconds(n),
                            None if jsonata && v.is_string() => WaitSpec::Seconds(0),
                            None => {
                                self.err("SCHEMA_VALIDATION_FAILED", "The value for the field 'Seconds' must be a non-negative integer", format!("{loc}/Seconds"));
                                WaitSpec::Seconds(0)
                            }
                        },
                        "Timestamp" => match v.as_str() {
                            Some(s) if jsonata || crate::engine::parse_timestamp(s).is_some() => {
                                WaitSpec::Timestamp(s.to_string())
                            }
                            _ => {
                                self.err(
                                    "SCHEMA_VALIDATION_FAILED",
                                    "The value for the field 'Timestamp' must be a valid ISO-8601 extended offset date-time format string",
                                    format!("{loc}/Timestamp"),
                                );
                                WaitSpec::Seconds(0)
                            }
                        },
                        "SecondsPath" => WaitSpec::SecondsPath(CompiledPath::new(
                            &self.opt_path(obj, f, loc, jsonata).unwrap_or_default(),
                        )),
                        _ => WaitSpec::TimestampPath(CompiledPath::new(
                            &self.opt_path(obj, f, loc, jsonata).unwrap_or_default(),
                        )),
                    };
                    Kind::Wait(spec)
                }
            }
            "Succeed" => Kind::Succeed,
            "Fail" => {
                let s = |this: &mut Loader, f: &str| match obj.get(f) {
                    None => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => {
                        this.err(
                            "SCHEMA_VALIDATION_FAILED",
                            format!("The value for the field '{f}' must be a STRING"),
                            format!("{loc}/{f}"),
                        );
                        None
                    }
                };
                let error = s(self, "Error");
                let cause = s(self, "Cause");
                let error_path = s(self, "ErrorPath");
                let cause_path = s(self, "CausePath");
                if !jsonata {
                    for (f, v) in [("ErrorPath", &error_path), ("CausePath", &cause_path)] {
                        if let Some(p) = v
                            && let Err(m) = expr::validate_dynamic(p)
                        {
                            self.err("SCHEMA_VALIDATION_FAILED", m, format!("{loc}/{f}"));
                        }
                    }
                }
                for (a, b) in [("Error", "ErrorPath"), ("Cause", "CausePath")] {
                    if obj.contains_key(a) && obj.contains_key(b) {
                        self.err(
                            "SCHEMA_VALIDATION_FAILED",
                            format!("These fields cannot be specified together: [{a}, {b}]"),
                            loc.to_string(),
                        );
                    }
                }
                Kind::Fail(FailSpec {
                    error,
                    error_path,
                    cause,
                    cause_path,
                })
            }
            "Parallel" => {
                let mut branches = Vec::new();
                match obj.get("Branches") {
                    Some(Value::Array(arr)) if !arr.is_empty() => {
                        for (i, b) in arr.iter().enumerate() {
                            if let Some(m) =
                                self.machine(b, &format!("{loc}/Branches[{i}]"), jsonata)
                            {
                                branches.push(m);
                            }
                        }
                    }
                    _ => self.err(
                        "SCHEMA_VALIDATION_FAILED",
                        "The field 'Branches' is required and must be a non-empty ARRAY",
                        format!("{loc}/Branches"),
                    ),
                }
                Kind::Parallel { branches }
            }
            _ => {
                // Map
                let (proc_field, proc) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
                    (Some(p), None) => ("ItemProcessor", Some(p)),
                    (None, Some(p)) => ("Iterator", Some(p)),
                    (Some(_), Some(_)) => {
                        self.err(
                            "SCHEMA_VALIDATION_FAILED",
                            "These fields cannot be specified together: [ItemProcessor, Iterator]",
                            loc.to_string(),
                        );
                        ("ItemProcessor", None)
                    }
                    (None, None) => {
                        self.err(
                            "SCHEMA_VALIDATION_FAILED",
                            "These fields are required: [ItemProcessor]",
                            loc.to_string(),
                        );
                        ("ItemProcessor", None)
                    }
                };
                let processor = proc.and_then(|p| {
                    if let Some(pc) = p.get("ProcessorConfig")
                        && let Some(mode) = pc.get("Mode")
                        && !matches!(mode.as_str(), Some("INLINE" | "DISTRIBUTED"))
                    {
                        self.err(
                            "SCHEMA_VALIDATION_FAILED",
                            "The value for the field 'Mode' must be one of [INLINE, DISTRIBUTED]",
                            format!("{loc}/{proc_field}/ProcessorConfig/Mode"),
                        );
                    }
                    self.machine(p, &format!("{loc}/{proc_field}"), jsonata)
                });
                if obj.contains_key("Parameters") && obj.contains_key("ItemSelector") {
                    self.err(
                        "SCHEMA_VALIDATION_FAILED",
                        "These fields cannot be specified together: [Parameters, ItemSelector]",
                        loc.to_string(),
                    );
                }
                let item_selector = self.template(obj, "ItemSelector", loc, jsonata);
                let items_path = self.opt_path(obj, "ItemsPath", loc, jsonata);
                let max_concurrency = self.number_pair(obj, "MaxConcurrency", loc, jsonata, true);
                let tolerated_count =
                    self.number_pair(obj, "ToleratedFailureCount", loc, jsonata, true);
                let tolerated_percentage =
                    self.number_pair(obj, "ToleratedFailurePercentage", loc, jsonata, false);
                if let Some(NumberField::Literal(p)) = tolerated_percentage
                    && p > 100.0
                {
                    self.err(
                        "SCHEMA_VALIDATION_FAILED",
                        "The value for the field 'ToleratedFailurePercentage' must be between 0 and 100",
                        format!("{loc}/ToleratedFailurePercentage"),
                    );
                }
                let items_literal = obj.get("Items").cloned();
                Kind::Map(Box::new(MapSpec {
                    processor: processor.unwrap_or(0),
                    items_path,
                    items_literal,
                    // legacy maps put the item selector in Parameters
                    item_selector: item_selector
                        .or_else(|| parameters.clone())
                        .map(Template::new),
                    max_concurrency,
                    tolerated_count,
                    tolerated_percentage,
                }))
            }
        };
        let parameters = if matches!(kind, Kind::Map(_)) {
            None
        } else {
            parameters
        };
        if !matches!(ty, "Task" | "Parallel" | "Map") && (!retry.is_empty() || !catch.is_empty()) {
            // already reported as unsupported fields
        }
        let text = serde_json::to_string(sv).unwrap_or_else(|_| "$$".to_string());
        let uses_context = text.contains("$$");
        let context_input = needs_execution_input(&text);
        let context_token_only = only_task_token(&text);
        let lambda_result_payload_only = !jsonata
            && match &result_selector {
                Some(rs) => reads_only_payload(rs),
                None => matches!(result_path, PathField::Null) && assign.is_none(),
            };
        Some(State {
            name: Arc::from(name),
            kind,
            input_path,
            output_path,
            result_path,
            parameters: parameters.map(Template::new),
            result_selector: result_selector.map(Template::new),
            next: next.filter(|n| *n != usize::MAX),
            retry,
            catch,
            assign,
            uses_context,
            context_input,
            context_token_only,
            lambda_result_payload_only,
            jsonata,
            output,
        })
    }
}

/// Whether every `$$` in a state's text is exactly `$$.Task.Token` (not followed by more path).
fn only_task_token(text: &str) -> bool {
    text.match_indices("$$").all(|(i, _)| {
        text[i + 2..]
            .strip_prefix(".Task.Token")
            .is_some_and(|rest| {
                !rest
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '[' | '$'))
            })
    })
}

/// Whether a ResultSelector reads the task result only below `$.Payload` (context and variable
/// paths read no result; intrinsic calls and other forms count as reading it all).
fn reads_only_payload(template: &Value) -> bool {
    match template {
        Value::Object(m) => m.iter().all(|(k, v)| {
            if k.ends_with(".$") {
                v.as_str().is_some_and(|p| {
                    let p = p.trim();
                    if p.starts_with("$$") {
                        return true;
                    }
                    if let Some(rest) = p.strip_prefix("$.Payload") {
                        return rest.is_empty() || rest.starts_with('.') || rest.starts_with('[');
                    }
                    p.strip_prefix('$')
                        .and_then(|r| r.chars().next())
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                })
            } else {
                reads_only_payload(v)
            }
        }),
        Value::Array(a) => a.iter().all(reads_only_payload),
        _ => true,
    }
}

/// Whether a state's text may read `$$` whole or `$$.Execution.Input`: any `$$` not followed by
/// a member known not to contain the input.
fn needs_execution_input(text: &str) -> bool {
    const SAFE: &[&str] = &[
        ".Map",
        ".State",
        ".Task",
        ".Execution.Id",
        ".Execution.Name",
        ".Execution.StartTime",
        ".Execution.RoleArn",
        ".Execution.RedriveCount",
    ];
    text.match_indices("$$").any(|(i, _)| {
        let rest = &text[i + 2..];
        !SAFE.iter().any(|s| rest.starts_with(s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_task_token_accepts_exactly_the_token_path() {
        assert!(only_task_token(r#"{"t.$":"$$.Task.Token","a.$":"$.x"}"#));
        assert!(only_task_token(
            r#"{"t.$":"States.Format('{}', $$.Task.Token)"}"#
        ));
        assert!(only_task_token(r#"{"a.$":"$.x"}"#));
        assert!(!only_task_token(r#"{"t.$":"$$.Task.Token.x"}"#));
        assert!(!only_task_token(r#"{"t.$":"$$.Task.TokenX"}"#));
        assert!(!only_task_token(r#"{"t.$":"$$.Task"}"#));
        assert!(!only_task_token(
            r#"{"t.$":"$$.Task.Token","n.$":"$$.State.Name"}"#
        ));
        assert!(!only_task_token(r#"{"c.$":"$$"}"#));
    }

    #[test]
    fn reads_only_payload_accepts_payload_context_and_variable_paths() {
        assert!(reads_only_payload(
            &json!({"a.$": "$.Payload.route", "b.$": "$.Payload", "c.$": "$$.Execution.Id",
                    "d.$": "$var.x", "e": {"f.$": "$.Payload[0]"}, "g": "$.StatusCode"})
        ));
        assert!(!reads_only_payload(&json!({"a.$": "$.StatusCode"})));
        assert!(!reads_only_payload(&json!({"a.$": "$"})));
        assert!(!reads_only_payload(&json!({"a.$": "$.PayloadX"})));
        assert!(!reads_only_payload(&json!({"a.$": "$['Payload']"})));
        assert!(!reads_only_payload(&json!({"a.$": "$..Payload"})));
        assert!(!reads_only_payload(
            &json!({"a.$": "States.JsonToString($.Payload)"})
        ));
        assert!(!reads_only_payload(&json!([{"a.$": "$.SdkHttpMetadata"}])));
    }
}
