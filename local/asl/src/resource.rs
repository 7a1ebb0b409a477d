//! What a Task's `Resource` runs is the caller's business: the engine hands every invocation to
//! a [`ResourceResolver`] (an in-process handler, a mock, an SDK-integration stand-in).
//!
//! The engine classifies the ARN ([`ResourceKind`], [`IntegrationPattern`]) and shapes requests
//! and results like the service:
//! - a plain Lambda ARN (`arn:aws:lambda:...:function:name`) gets the effective parameters as the
//!   payload and its result is the function's return value;
//! - `arn:aws:states:::lambda:invoke` gets `Parameters.Payload` as the payload (the other
//!   parameters, `FunctionName`, `Qualifier`, ... stay in [`TaskRequest::parameters`]) and its
//!   result is wrapped like the real integration:
//!   `{"ExecutedVersion", "Payload", "SdkHttpMetadata", "SdkResponseMetadata", "StatusCode"}`;
//! - with `.waitForTaskToken` the resolver's success only means "the request was handed out":
//!   the execution then parks until `send_task_success`/`send_task_failure` with
//!   [`TaskRequest::task_token`] (also available to the template as `$$.Task.Token`).

use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How the Task waits for its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrationPattern {
    /// Call and take the response (`Resource` without suffix).
    RequestResponse,
    /// `.sync` / `.sync:2`: the resolver is expected to return when the job is done.
    Sync,
    /// `.waitForTaskToken`: park until a callback with the token.
    WaitForTaskToken,
}

/// What kind of resource the ARN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceKind {
    /// `arn:aws:lambda:<region>:<account>:function:<name>[:qualifier]`.
    LambdaFunction { function_arn: String },
    /// `arn:aws:states:::lambda:invoke` (the function is `Parameters.FunctionName`).
    LambdaInvoke { function_name: String },
    /// `arn:aws:states:<region>:<account>:activity:<name>`.
    Activity { activity_arn: String },
    /// Any other service integration: `arn:aws:states:::<service>:<action>` or
    /// `arn:aws:states:::aws-sdk:<service>:<action>`.
    Service { service: String, action: String },
}

/// One invocation of a Task's resource.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// The Task state's name.
    pub state_name: String,
    /// The `Resource` field as written.
    pub resource: String,
    pub kind: ResourceKind,
    pub pattern: IntegrationPattern,
    /// What the resource gets: the Lambda payload, or the effective parameters otherwise.
    pub input: Value,
    /// For `lambda:invoke`: the parameters other than `Payload`; otherwise `Null`.
    pub parameters: Value,
    /// Set for `.waitForTaskToken`.
    pub task_token: Option<String>,
    /// 0 for the first attempt, then 1, 2, ... for retries.
    pub retry_count: u32,
    /// The execution's ARN.
    pub execution_arn: String,
}

/// A failed invocation: `Error`/`Cause` as the service would report them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub error: String,
    pub cause: Option<String>,
}

impl TaskFailure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        TaskFailure {
            error: error.into(),
            cause: Some(cause.into()),
        }
    }
}

/// Runs Task resources. Implementations must be thread safe; the futures are `Send`.
#[async_trait::async_trait]
pub trait ResourceResolver: Send + Sync {
    /// Invokes the resource. For Lambda kinds, return the function's own result (the engine
    /// wraps it for `lambda:invoke`); for `.waitForTaskToken`, return `Ok` once the request is
    /// handed out (the value is ignored).
    async fn invoke(&self, request: TaskRequest) -> Result<Value, TaskFailure>;
}

/// Splits a `Resource` ARN into kind and pattern. `parameters` gives `FunctionName` for
/// `lambda:invoke`.
pub(crate) fn classify(resource: &str, parameters: &Value) -> (ResourceKind, IntegrationPattern) {
    let (base, pattern) = if let Some(b) = resource.strip_suffix(".waitForTaskToken") {
        (b, IntegrationPattern::WaitForTaskToken)
    } else if let Some(b) = resource.strip_suffix(".sync:2") {
        (b, IntegrationPattern::Sync)
    } else if let Some(b) = resource.strip_suffix(".sync") {
        (b, IntegrationPattern::Sync)
    } else {
        (resource, IntegrationPattern::RequestResponse)
    };
    let parts: Vec<&str> = base.splitn(6, ':').collect();
    let kind = match parts.as_slice() {
        ["arn", _, "lambda", _, _, rest] if rest.starts_with("function:") => {
            ResourceKind::LambdaFunction {
                function_arn: base.to_string(),
            }
        }
        ["arn", _, "states", _, _, rest] if rest.starts_with("activity:") => {
            ResourceKind::Activity {
                activity_arn: base.to_string(),
            }
        }
        ["arn", _, "states", "", "", rest] => {
            if *rest == "lambda:invoke" {
                ResourceKind::LambdaInvoke {
                    function_name: function_name(parameters),
                }
            } else if let Some(sdk) = rest.strip_prefix("aws-sdk:") {
                let (service, action) = sdk.split_once(':').unwrap_or((sdk, ""));
                ResourceKind::Service {
                    service: format!("aws-sdk:{service}"),
                    action: action.to_string(),
                }
            } else {
                let (service, action) = rest.split_once(':').unwrap_or((rest, ""));
                ResourceKind::Service {
                    service: service.to_string(),
                    action: action.to_string(),
                }
            }
        }
        _ => ResourceKind::Service {
            service: String::new(),
            action: base.to_string(),
        },
    };
    (kind, pattern)
}

/// `FunctionName` of `lambda:invoke` parameters (empty when there is none).
pub(crate) fn function_name(parameters: &Value) -> String {
    parameters
        .get("FunctionName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `resourceType`/`resource` of `Task*` history events (`lambda`/`invoke`, `sqs`/`sendMessage.waitForTaskToken`).
pub(crate) fn history_names(resource: &str) -> (&str, &str) {
    if let Some(rest) = resource.strip_prefix("arn:aws:states:::") {
        if let Some(sdk) = rest.strip_prefix("aws-sdk:") {
            let (service, action) = sdk.split_once(':').unwrap_or((sdk, ""));
            // "aws-sdk:<service>" is the start of `rest`
            return (&rest[..8 + service.len()], action);
        }
        return rest.split_once(':').unwrap_or((rest, ""));
    }
    ("lambda", resource)
}

/// The result of `arn:aws:states:::lambda:invoke` around the function's own result.
pub fn lambda_invoke_response(payload: Value, request_id: &str) -> Value {
    thread_local! {
        // built once per thread; each response is a copy with the payload and the request id set
        static TEMPLATE: Value = invoke_response_template();
    }
    let mut response = TEMPLATE.with(Value::clone);
    if let Value::Object(m) = &mut response {
        if let Some(p) = m.get_mut("Payload") {
            *p = payload;
        }
        if let Some(Value::Object(meta)) = m.get_mut("SdkHttpMetadata") {
            if let Some(Value::Object(all)) = meta.get_mut("AllHttpHeaders")
                && let Some(Value::Array(ids)) = all.get_mut("x-amzn-RequestId")
                && let Some(id) = ids.first_mut()
            {
                *id = Value::from(request_id);
            }
            if let Some(Value::Object(h)) = meta.get_mut("HttpHeaders")
                && let Some(id) = h.get_mut("x-amzn-RequestId")
            {
                *id = Value::from(request_id);
            }
        }
        if let Some(Value::Object(r)) = m.get_mut("SdkResponseMetadata")
            && let Some(id) = r.get_mut("RequestId")
        {
            *id = Value::from(request_id);
        }
    }
    response
}

fn invoke_response_template() -> Value {
    json!({
        "ExecutedVersion": "$LATEST",
        "Payload": null,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {
                "X-Amz-Executed-Version": ["$LATEST"],
                "x-amzn-Remapped-Content-Length": ["0"],
                "Connection": ["keep-alive"],
                "x-amzn-RequestId": [""],
                "Content-Type": ["application/json"],
            },
            "HttpHeaders": {
                "Connection": "keep-alive",
                "Content-Type": "application/json",
                "X-Amz-Executed-Version": "$LATEST",
                "x-amzn-Remapped-Content-Length": "0",
                "x-amzn-RequestId": "",
            },
            "HttpStatusCode": 200
        },
        "SdkResponseMetadata": {"RequestId": ""},
        "StatusCode": 200
    })
}

/// A random (version 4) UUID as text, from the thread's userspace generator (no system call per
/// id, unlike `Uuid::new_v4` without uuid's `fast-rng`).
pub(crate) fn new_uuid() -> String {
    uuid_text(rand::random())
}

/// The version 4 UUID text for 128 random bits.
pub(crate) fn uuid_text(bits: u128) -> String {
    let id = uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buf).to_owned()
}

/// One scripted outcome of a mocked task.
#[derive(Debug, Clone, PartialEq)]
pub enum MockOutcome {
    Return(Value),
    Throw(TaskFailure),
}

/// A resolver that replays scripted outcomes per state name, in invocation order (the
/// conformance corpus' `mocks`). A state without (remaining) outcomes fails with
/// `States.TaskFailed`.
#[derive(Debug, Default)]
pub struct MockResolver {
    outcomes: Mutex<HashMap<String, VecDeque<MockOutcome>>>,
}

impl MockResolver {
    pub fn new() -> Self {
        MockResolver::default()
    }

    /// Adds an outcome for `state`.
    pub fn push(&self, state: &str, outcome: MockOutcome) {
        let mut m = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(state.to_string()).or_default().push_back(outcome);
    }

    /// Reads the corpus' `mocks` object: `{"State": [{"return": X} | {"throw": {"error", "cause"}}]}`.
    pub fn from_json(mocks: &Value) -> Result<MockResolver, String> {
        let r = MockResolver::new();
        let Some(obj) = mocks.as_object() else {
            return if mocks.is_null() {
                Ok(r)
            } else {
                Err("mocks must be an object".into())
            };
        };
        for (state, list) in obj {
            let list = list
                .as_array()
                .ok_or_else(|| format!("mocks.{state} must be an array"))?;
            for item in list {
                if let Some(v) = item.get("return") {
                    r.push(state, MockOutcome::Return(v.clone()));
                } else if let Some(t) = item.get("throw") {
                    let error = t
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let cause = t.get("cause").and_then(Value::as_str).map(str::to_string);
                    r.push(state, MockOutcome::Throw(TaskFailure { error, cause }));
                } else {
                    return Err(format!(
                        "mocks.{state}: each item needs 'return' or 'throw'"
                    ));
                }
            }
        }
        Ok(r)
    }
}

#[async_trait::async_trait]
impl ResourceResolver for MockResolver {
    async fn invoke(&self, request: TaskRequest) -> Result<Value, TaskFailure> {
        let next = {
            let mut m = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
            m.get_mut(&request.state_name).and_then(VecDeque::pop_front)
        };
        match next {
            Some(MockOutcome::Return(v)) => Ok(v),
            Some(MockOutcome::Throw(f)) => Err(f),
            None => Err(TaskFailure::new(
                "States.TaskFailed",
                format!(
                    "No mocked result left for state '{}' ({})",
                    request.state_name, request.resource
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_invoke_response_wraps_the_payload_like_the_service() {
        let r = lambda_invoke_response(json!({"a": [1]}), "req-1");
        let expected = json!({
            "ExecutedVersion": "$LATEST",
            "Payload": {"a": [1]},
            "SdkHttpMetadata": {
                "AllHttpHeaders": {
                    "X-Amz-Executed-Version": ["$LATEST"],
                    "x-amzn-Remapped-Content-Length": ["0"],
                    "Connection": ["keep-alive"],
                    "x-amzn-RequestId": ["req-1"],
                    "Content-Type": ["application/json"],
                },
                "HttpHeaders": {
                    "Connection": "keep-alive",
                    "Content-Type": "application/json",
                    "X-Amz-Executed-Version": "$LATEST",
                    "x-amzn-Remapped-Content-Length": "0",
                    "x-amzn-RequestId": "req-1",
                },
                "HttpStatusCode": 200
            },
            "SdkResponseMetadata": {"RequestId": "req-1"},
            "StatusCode": 200
        });
        assert_eq!(r, expected);
        // same key order as well
        assert_eq!(r.to_string(), expected.to_string());
        let again = lambda_invoke_response(Value::Null, "req-2");
        assert_eq!(again["SdkResponseMetadata"]["RequestId"], "req-2");
        assert_eq!(again["Payload"], Value::Null);
    }

    #[test]
    fn new_uuid_is_a_version_4_uuid() {
        let a = new_uuid();
        let u = uuid::Uuid::parse_str(&a).expect("uuid");
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, new_uuid());
    }

    #[test]
    fn classify_recognises_lambda_arns_integrations_and_patterns() {
        let (k, p) = classify(
            "arn:aws:lambda:eu-west-1:123456789012:function:f",
            &Value::Null,
        );
        assert!(matches!(k, ResourceKind::LambdaFunction { .. }));
        assert_eq!(p, IntegrationPattern::RequestResponse);
        let (k, p) = classify(
            "arn:aws:states:::lambda:invoke.waitForTaskToken",
            &json!({"FunctionName": "f"}),
        );
        assert_eq!(
            k,
            ResourceKind::LambdaInvoke {
                function_name: "f".into()
            }
        );
        assert_eq!(p, IntegrationPattern::WaitForTaskToken);
        let (k, p) = classify("arn:aws:states:::aws-sdk:dynamodb:getItem", &Value::Null);
        assert_eq!(
            k,
            ResourceKind::Service {
                service: "aws-sdk:dynamodb".into(),
                action: "getItem".into()
            }
        );
        assert_eq!(p, IntegrationPattern::RequestResponse);
        let (_, p) = classify(
            "arn:aws:states:::states:startExecution.sync:2",
            &Value::Null,
        );
        assert_eq!(p, IntegrationPattern::Sync);
    }

    #[test]
    fn history_names_split_service_and_action() {
        assert_eq!(
            history_names("arn:aws:states:::lambda:invoke"),
            ("lambda", "invoke")
        );
        assert_eq!(
            history_names("arn:aws:states:::sqs:sendMessage.waitForTaskToken"),
            ("sqs", "sendMessage.waitForTaskToken")
        );
    }
}
