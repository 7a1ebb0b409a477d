//! A simulated after-sales world behind the workflow's five Lambdas, answering exactly as
//! `docs/workflow-contract.md` says (inputs, outputs, error names), with a ticket whose status,
//! resolution, refunds, notifications and feedback the path tests assert.
//!
//! It keeps the invariants the real steps keep: execute-refund is idempotent per
//! (ticket, step) and never refunds more than was paid; notify stores the task token with the
//! ticket (`waiting`), and the simulated person answers through that stored token, as `respond`
//! does.

use crate::workflow::function_of;
use asl::{Clock, ResourceResolver, TaskFailure, TaskRequest, VirtualClock};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// One scripted answer of execute-refund before it behaves normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundFault {
    /// Fails with this error name (`Retryable`, `Conflict`, `PaymentDeclined`, ...).
    Error(&'static str),
}

/// What the scenario's ticket looks like and how the steps decide.
#[derive(Debug, Clone)]
pub struct Script {
    /// Diagnose's routes, one per call (`propose`, `request_evidence`, `review`); the last one
    /// repeats.
    pub diagnose_routes: Vec<&'static str>,
    /// Propose's route: `await_decision` or `rejected`.
    pub propose_route: &'static str,
    /// The best-ranked option's kind.
    pub top_kind: &'static str,
    /// Root-cause department diagnose attributes.
    pub department: &'static str,
    /// Units bought (all affected) and the unit price, minor units of CNY.
    pub units: i64,
    pub unit_price: i64,
    /// For an exchange: new item price minus old (negative: money back to the customer).
    pub price_difference: i64,
    /// Failures execute-refund returns first, in order.
    pub refund_faults: Vec<RefundFault>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            diagnose_routes: vec!["propose"],
            propose_route: "await_decision",
            top_kind: "refund",
            department: "quality",
            units: 2,
            unit_price: 14950,
            price_difference: 0,
            refund_faults: Vec::new(),
        }
    }
}

/// One refund the gateway made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub step: String,
    pub amount: i64,
}

/// One root-cause message on a department's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    pub department: String,
    pub score: Option<u64>,
    pub low_score: bool,
}

/// The ticket as the store would hold it.
#[derive(Debug, Clone, Default)]
pub struct Ticket {
    pub status: String,
    pub resolution: Option<String>,
    /// The waiting state's token and what it waits for (set by notify with a token).
    pub waiting: Option<(String, String)>,
    /// Units the warehouse received and found restockable.
    pub returned_units: Option<i64>,
    pub refunds: Vec<Refund>,
    /// Customer notifications sent: milestones in order (internal escalations are not sent to
    /// the customer but recorded the same way).
    pub notifications: Vec<String>,
    /// Every refund-gateway call, including refused and retried ones.
    pub refund_attempts: u32,
    pub feedback: Vec<Feedback>,
    pub follow_up_requested: bool,
    /// (virtual time, milestone) of each notification, to check deadlines.
    pub notified_at: Vec<(Timestamp, String)>,
}

/// The shared world: the ticket, the scripted decisions and the clock.
pub struct World {
    pub clock: Arc<VirtualClock>,
    pub ticket_id: String,
    script: Mutex<Script>,
    diagnose_calls: Mutex<VecDeque<&'static str>>,
    faults: Mutex<VecDeque<RefundFault>>,
    ticket: Mutex<Ticket>,
}

/// Milestones that change the ticket's status (the event notify records for them).
fn status_after(milestone: &str) -> Option<&'static str> {
    Some(match milestone {
        "under_review" => "under_review",
        "return_requested" => "awaiting_return",
        "resolved" => "resolved",
        "rejected" => "rejected",
        "closed_unanswered" => "closed",
        "default_option_accepted" => "in_progress",
        _ => return None,
    })
}

impl World {
    pub fn new(clock: Arc<VirtualClock>, ticket_id: &str, script: Script) -> Self {
        World {
            clock,
            ticket_id: ticket_id.to_owned(),
            diagnose_calls: Mutex::new(script.diagnose_routes.iter().copied().collect()),
            faults: Mutex::new(script.refund_faults.iter().cloned().collect()),
            script: Mutex::new(script),
            ticket: Mutex::new(Ticket {
                status: "received".into(),
                ..Ticket::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ticket> {
        self.ticket.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn script(&self) -> Script {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A copy of the ticket now.
    pub fn ticket(&self) -> Ticket {
        self.lock().clone()
    }

    pub fn paid(&self) -> i64 {
        let s = self.script();
        s.units * s.unit_price
    }

    /// What `respond` does before SendTaskSuccess: check the ticket waits for this kind of
    /// answer, record it on the ticket, and hand back the stored token.
    pub fn answer(&self, answer: &Value) -> Result<String, String> {
        let mut t = self.lock();
        let (token, wait_for) = t
            .waiting
            .take()
            .ok_or_else(|| format!("the ticket waits for nothing, answer {answer}"))?;
        let kind = answer["kind"].as_str().unwrap_or_default();
        let expected = match kind {
            "evidence" => "evidence",
            "decision" => "decision",
            "return_received" => "return_parcel",
            "survey" => "survey",
            "agent_decision" => "agent",
            other => return Err(format!("unknown answer kind {other}")),
        };
        if wait_for != expected {
            return Err(format!("the ticket waits for {wait_for}, not {kind}"));
        }
        match (kind, answer["outcome"].as_str()) {
            ("evidence", _) => t.status = "received".into(),
            ("decision", Some("accepted")) | ("agent_decision", Some("option")) => {
                t.status = "in_progress".into();
                t.resolution = answer["resolution"].as_str().map(str::to_owned);
            }
            ("decision", Some(_)) => t.status = "under_review".into(),
            ("agent_decision", Some("reject")) => t.resolution = Some("reject".into()),
            ("return_received", _) => {
                t.status = "in_progress".into();
                t.returned_units = answer["units"].as_i64();
            }
            _ => {}
        }
        Ok(token)
    }

    fn diagnose(&self) -> Result<Value, TaskFailure> {
        let route = {
            let mut calls = self
                .diagnose_calls
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if calls.len() > 1 {
                calls.pop_front()
            } else {
                calls.front().copied()
            }
        }
        .unwrap_or("propose");
        let script = self.script();
        let mut t = self.lock();
        t.status = match route {
            "request_evidence" => "awaiting_evidence",
            "review" => "under_review",
            _ => "diagnosed",
        }
        .into();
        Ok(json!({"ticket_id": self.ticket_id, "route": route,
            "problem_kind": "quality_defect", "responsibility": "merchant",
            "department": script.department,
            "review_reasons": if route == "review" { json!(["amount_over_auto_approve_limit"]) } else { json!([]) }}))
    }

    fn propose(&self) -> Result<Value, TaskFailure> {
        let script = self.script();
        let mut t = self.lock();
        if script.propose_route == "rejected" {
            t.status = "rejected".into();
            t.resolution = Some("reject".into());
        } else {
            t.status = "proposed".into();
        }
        Ok(
            json!({"ticket_id": self.ticket_id, "route": script.propose_route,
            "options": if script.propose_route == "rejected" { 1 } else { 3 },
            "top_option": "opt-1", "top_kind": script.top_kind}),
        )
    }

    fn notify(&self, input: &Value, token: Option<&str>) -> Result<Value, TaskFailure> {
        let milestone = input["milestone"]
            .as_str()
            .ok_or_else(|| TaskFailure::new("InvalidInput", "milestone missing"))?;
        let mut t = self.lock();
        if let Some(status) = status_after(milestone) {
            t.status = status.into();
        }
        if milestone == "default_option_accepted" {
            t.resolution = Some(self.script().top_kind.to_owned());
        }
        match (token, input.get("task_token"), input["wait_for"].as_str()) {
            (Some(engine_token), Some(Value::String(passed)), Some(wait_for)) => {
                if engine_token != passed {
                    return Err(TaskFailure::new(
                        "InvalidInput",
                        "task_token is not the state's $$.Task.Token",
                    ));
                }
                t.waiting = Some((passed.clone(), wait_for.to_owned()));
            }
            (Some(_), _, _) => {
                return Err(TaskFailure::new(
                    "InvalidInput",
                    "a waiting state must pass task_token and wait_for",
                ));
            }
            (None, None, None) => {}
            (None, _, _) => {
                return Err(TaskFailure::new(
                    "InvalidInput",
                    "task_token/wait_for without .waitForTaskToken",
                ));
            }
        }
        t.notifications.push(milestone.to_owned());
        let now = self.clock.now();
        t.notified_at.push((now, milestone.to_owned()));
        Ok(
            json!({"ticket_id": self.ticket_id, "milestone": milestone, "sent": 1, "replayed": false}),
        )
    }

    fn execute_refund(&self, input: &Value) -> Result<Value, TaskFailure> {
        let step = input["step"]
            .as_str()
            .ok_or_else(|| TaskFailure::new("InvalidInput", "step missing"))?
            .to_owned();
        let script = self.script();
        let mut t = self.lock();
        t.refund_attempts += 1;
        if let Some(RefundFault::Error(name)) = self
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
        {
            return Err(TaskFailure::new(name, format!("scripted {name}")));
        }
        if let Some(done) = t.refunds.iter().find(|r| r.step == step) {
            return Ok(
                json!({"ticket_id": self.ticket_id, "refund_id": format!("re_{step}"),
                "amount": done.amount, "currency": "CNY", "replayed": true}),
            );
        }
        let paid = script.units * script.unit_price;
        let amount = match step.as_str() {
            "refund" => paid,
            "return_refund" => t.returned_units.unwrap_or(0).min(script.units) * script.unit_price,
            "price_adjustment" => paid / 10,
            "exchange_difference" => -script.price_difference,
            other => {
                return Err(TaskFailure::new(
                    "InvalidInput",
                    format!("unknown refund step {other}"),
                ));
            }
        };
        let refunded: i64 = t.refunds.iter().map(|r| r.amount).sum();
        if amount <= 0 || refunded + amount > paid {
            return Err(TaskFailure::new(
                "PolicyViolation",
                format!("nothing to refund or over the cap for step {step}"),
            ));
        }
        t.refunds.push(Refund {
            step: step.clone(),
            amount,
        });
        Ok(
            json!({"ticket_id": self.ticket_id, "refund_id": format!("re_{step}"),
            "amount": amount, "currency": "CNY", "replayed": false}),
        )
    }

    fn survey(&self, input: &Value) -> Result<Value, TaskFailure> {
        let department = self.script().department;
        let mut t = self.lock();
        let (score, low) = match input["action"].as_str() {
            Some("record") => {
                let score = input["score"]
                    .as_u64()
                    .ok_or_else(|| TaskFailure::new("InvalidInput", "record without a score"))?;
                (Some(score), score <= 2)
            }
            Some("no_answer") => (None, false),
            _ => return Err(TaskFailure::new("InvalidInput", "unknown survey action")),
        };
        t.feedback.push(Feedback {
            department: department.to_owned(),
            score,
            low_score: low,
        });
        t.follow_up_requested |= low;
        t.status = "closed".into();
        Ok(json!({"ticket_id": self.ticket_id, "department": department, "low_score": low}))
    }
}

/// Routes each fake Lambda ARN to the world's step, with the contract's input checks.
pub struct Steps(pub Arc<World>);

#[async_trait::async_trait]
impl ResourceResolver for Steps {
    async fn invoke(&self, request: TaskRequest) -> Result<Value, TaskFailure> {
        let world = &self.0;
        let function = match &request.kind {
            asl::ResourceKind::LambdaInvoke { function_name } => function_of(function_name),
            _ => None,
        }
        .ok_or_else(|| {
            TaskFailure::new("States.TaskFailed", "not one of the workflow's functions")
        })?
        .to_owned();
        let input = &request.input;
        if input["ticket_id"].as_str() != Some(world.ticket_id.as_str()) {
            return Err(TaskFailure::new(
                "InvalidInput",
                "ticket_id missing or wrong",
            ));
        }
        match function.as_str() {
            "diagnose" => world.diagnose(),
            "propose" => world.propose(),
            "notify" => world.notify(input, request.task_token.as_deref()),
            "execute-refund" => world.execute_refund(input),
            "survey" => world.survey(input),
            other => Err(TaskFailure::new(
                "States.TaskFailed",
                format!("unknown function {other}"),
            )),
        }
    }
}
