//! The main paths of `workflows/after-sales.asl.json` with stub tasks: each Lambda task answers a
//! fixed payload by state name and each wait for a person is answered at once through its task
//! token (as `respond` does with SendTaskSuccess). Shared by the cost model (transitions and
//! invocations per path) and the interpreter speed comparison (the same stubs drive
//! aws-local-stepfunctions).

use asl::{
    Clock, Execution, ExecutionStatus, HistoryDetail, IntegrationPattern, ResourceResolver,
    StartOptions, StateMachine, TaskFailure, TaskRequest, VirtualClock,
};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

pub const TICKET: &str = "tkt_01JDBENCH00000000000000000";
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// One path: what each Lambda task returns (its `Payload`) and what each waiting state is
/// answered with, by state name.
#[derive(Debug, Clone)]
pub struct PathSpec {
    pub name: &'static str,
    /// The "common refund path" of the cost target.
    pub common: bool,
    pub payloads: BTreeMap<&'static str, Value>,
    pub answers: BTreeMap<&'static str, Value>,
}

/// The execution input `accept` passes (default policy deadlines, seconds).
pub fn input() -> Value {
    json!({"ticket_id": TICKET, "deadlines": {
        "evidence": {"reminder": DAY, "remaining": 2 * DAY},
        "decision": {"reminder": 2 * DAY, "remaining": 3 * DAY, "default_action": "accept_top_option"},
        "return_parcel": {"reminder": 7 * DAY, "remaining": 7 * DAY},
        "agent_review": {"sla": DAY, "supervisor_sla": DAY},
        "survey": {"delay": DAY, "reminder": 3 * DAY, "remaining": 4 * DAY}}})
}

fn base(
    diagnose_route: &str,
    propose_route: &str,
    top_kind: &str,
) -> BTreeMap<&'static str, Value> {
    let mut p = BTreeMap::new();
    p.insert(
        "Diagnose",
        json!({"ticket_id": TICKET, "route": diagnose_route, "department": "quality"}),
    );
    p.insert(
        "Propose",
        json!({"ticket_id": TICKET, "route": propose_route, "top_option": "opt-1", "top_kind": top_kind}),
    );
    let refund = json!({"ticket_id": TICKET, "refund_id": "re_1", "amount": 29900, "currency": "CNY", "replayed": false});
    p.insert("ExecuteRefund", refund.clone());
    p.insert("SettleExchangeDifference", refund);
    p.insert(
        "SendFeedback",
        json!({"ticket_id": TICKET, "department": "quality", "low_score": false}),
    );
    p
}

fn accepted(resolution: &str) -> Value {
    json!({"kind": "decision", "outcome": "accepted", "option_id": "opt-1", "resolution": resolution})
}

fn survey() -> Value {
    json!({"kind": "survey", "score": 5})
}

/// The main paths (docs/workflow.md names them the same way).
pub fn main_paths() -> Vec<PathSpec> {
    let decided = |name, resolution: &str, common| {
        let mut answers = BTreeMap::new();
        answers.insert("AwaitCustomerDecision", accepted(resolution));
        answers.insert(
            "AwaitReturnParcel",
            json!({"kind": "return_received", "all_restockable": true, "units": 2}),
        );
        answers.insert("Survey", survey());
        PathSpec {
            name,
            common,
            payloads: base("propose", "await_decision", resolution),
            answers,
        }
    };
    let mut paths = vec![
        decided("refund without return", "refund", true),
        decided("return then refund", "return_refund", false),
        decided("exchange", "exchange", false),
        decided("repair", "repair", false),
        decided("price adjustment", "price_adjustment", false),
        decided("coupon", "coupon", false),
    ];
    let mut answers = BTreeMap::new();
    answers.insert("Survey", survey());
    paths.push(PathSpec {
        name: "reasoned rejection",
        common: false,
        payloads: base("propose", "rejected", "reject"),
        answers: answers.clone(),
    });
    answers.insert(
        "ReviewByAgent",
        json!({"kind": "agent_decision", "outcome": "option", "resolution": "refund"}),
    );
    paths.push(PathSpec {
        name: "review by agent, then refund",
        common: false,
        // propose passes the diagnosis' route on when there is nothing to propose yet
        payloads: base("review", "review", "refund"),
        answers,
    });
    paths
}

/// The definition with the SAM substitutions filled by fake ARNs (as the path tests do).
pub fn definition_text(root: &Path) -> Result<String, String> {
    let path = root.join("workflows").join("after-sales.asl.json");
    let mut text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for (name, function) in [
        ("DiagnoseFunctionArn", "diagnose"),
        ("ProposeFunctionArn", "propose"),
        ("ExecuteRefundFunctionArn", "execute-refund"),
        ("NotifyFunctionArn", "notify"),
        ("SurveyFunctionArn", "survey"),
    ] {
        text = text.replace(
            &format!("${{{name}}}"),
            &format!("arn:aws:lambda:us-east-1:123456789012:function:aftersales-{function}"),
        );
    }
    if let Some(i) = text.find("${") {
        return Err(format!(
            "unknown substitution in the definition: {}",
            &text[i..text.len().min(i + 40)]
        ));
    }
    Ok(text)
}

/// What one execution of a path did.
#[derive(Debug, Clone, Default)]
pub struct PathRun {
    /// Billed state transitions (the interpreter's count, as Step Functions bills them).
    pub transitions: u64,
    /// Lambda invocations per function (`notify`, `diagnose`, ...), waits included.
    pub invocations: BTreeMap<String, u64>,
    /// Answers from people (each one a `respond` call through the API).
    pub answers: u64,
    pub states: Vec<String>,
}

/// Stub tasks: a Lambda task returns its path's payload (the engine wraps it in `Payload`); a
/// `.waitForTaskToken` task parks until the driver answers.
struct Stubs<'a> {
    spec: &'a PathSpec,
    invocations: Mutex<BTreeMap<String, u64>>,
}

#[async_trait::async_trait]
impl ResourceResolver for Stubs<'_> {
    async fn invoke(&self, request: TaskRequest) -> Result<Value, TaskFailure> {
        let function = request
            .parameters
            .get("FunctionName")
            .and_then(Value::as_str)
            // `...:function:aftersales-<name>` (fake ARNs, see definition_text): the text
            // after the last ':' without the prefix, found without a substring search
            .map(|arn| {
                let name = arn.rsplit_once(':').map_or(arn, |(_, name)| name);
                name.strip_prefix("aftersales-").unwrap_or(name)
            })
            .unwrap_or("unknown");
        if let Ok(mut counts) = self.invocations.lock() {
            match counts.get_mut(function) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(function.to_owned(), 1);
                }
            }
        }
        if request.pattern == IntegrationPattern::WaitForTaskToken {
            return Ok(Value::Null);
        }
        Ok(self
            .spec
            .payloads
            .get(request.state_name.as_str())
            .cloned()
            .unwrap_or_else(|| json!({"ticket_id": TICKET, "sent": 1})))
    }
}

/// Runs one path to its end on the virtual clock.
pub async fn run_path(
    machine: &StateMachine,
    spec: &PathSpec,
    history: HistoryDetail,
) -> Result<PathRun, String> {
    let clock = VirtualClock::starting_now();
    let stubs = Stubs {
        spec,
        invocations: Mutex::new(BTreeMap::new()),
    };
    let options = StartOptions {
        name: Some(TICKET.to_owned()),
        history,
        ..StartOptions::default()
    };
    let mut exec = Execution::start(machine, input(), options, &clock);
    let mut answers = 0;
    loop {
        let status = exec.advance(&stubs, &clock).await;
        if status != ExecutionStatus::Running {
            break;
        }
        let tokens = exec.pending_task_tokens();
        if let Some(token) = tokens.first() {
            let state = exec.states_entered().last().cloned().unwrap_or_default();
            let answer = spec
                .answers
                .get(state.as_str())
                .ok_or_else(|| format!("{}: nobody answers {state}", spec.name))?;
            exec.send_task_success(token, answer.clone())
                .map_err(|e| format!("{}: send_task_success: {e}", spec.name))?;
            answers += 1;
            continue;
        }
        match exec.next_wakeup() {
            Some(t) => clock.set(t),
            None => {
                return Err(format!(
                    "{}: stuck in {:?}",
                    spec.name,
                    exec.states_entered().last()
                ));
            }
        }
    }
    if exec.status() != ExecutionStatus::Succeeded {
        return Err(format!(
            "{}: execution {:?}: {:?}",
            spec.name,
            exec.status(),
            exec.failure()
        ));
    }
    let _ = clock.now();
    Ok(PathRun {
        transitions: exec.state_transitions(),
        invocations: stubs.invocations.into_inner().unwrap_or_default(),
        answers,
        states: exec.states_entered().to_vec(),
    })
}

/// The stubs as aws-local-stepfunctions local handlers need them: per state, the raw task
/// result (`{"Payload": ...}` for a Lambda invoke, the answer itself for a wait).
pub fn node_stubs(definition: &Value, spec: &PathSpec) -> Value {
    let mut out = Map::new();
    if let Some(states) = definition["States"].as_object() {
        for (name, state) in states {
            if state["Type"] != "Task" {
                continue;
            }
            let resource = state["Resource"].as_str().unwrap_or_default();
            let value = if resource.ends_with(".waitForTaskToken") {
                spec.answers
                    .get(name.as_str())
                    .cloned()
                    .unwrap_or(Value::Null)
            } else {
                json!({"Payload": spec.payloads.get(name.as_str()).cloned()
                    .unwrap_or_else(|| json!({"ticket_id": TICKET, "sent": 1})),
                    "StatusCode": 200})
            };
            out.insert(name.clone(), value);
        }
    }
    Value::Object(out)
}
