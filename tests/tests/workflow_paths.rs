//! Every path of `workflows/after-sales.asl.json`, run by the ASL interpreter on a virtual clock
//! against the simulated steps of `aftersales_tests::steps` (the contract in
//! docs/workflow-contract.md), with the customer, the warehouse and the agents answering through
//! the task token the notify step stored, as `respond` does.
//!
//! All scenarios run in one test so that the coverage check (every state of the definition is
//! entered by some scenario) sees them all, whatever order or parallelism cargo uses. The test
//! prints the state transitions of each path (docs/workflow.md quotes them).

use aftersales_tests::steps::{Refund, RefundFault, Script, Steps, World};
use aftersales_tests::workflow::{after_sales_machine, state_names};
use asl::{Clock, Execution, ExecutionStatus, StartOptions, VirtualClock};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

const TICKET: &str = "tkt_01JDPATHTEST0000000000000";
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn t0() -> Timestamp {
    "2026-11-02T08:00:00Z".parse().expect("fixed start time")
}

/// The execution input `accept` passes: the ticket id and the merchant policy's deadlines in
/// seconds (functions/domain/policy/default.toml), `remaining` = deadline - reminder.
fn input() -> Value {
    json!({"ticket_id": TICKET, "deadlines": {
        "evidence": {"reminder": DAY, "remaining": 2 * DAY},
        "decision": {"reminder": 2 * DAY, "remaining": 3 * DAY, "default_action": "accept_top_option"},
        "return_parcel": {"reminder": 7 * DAY, "remaining": 7 * DAY},
        "agent_review": {"sla": DAY, "supervisor_sla": DAY},
        "survey": {"delay": DAY, "reminder": 3 * DAY, "remaining": 4 * DAY}}})
}

struct Run {
    world: Arc<World>,
    steps: Steps,
    clock: Arc<VirtualClock>,
    exec: Execution,
}

impl Run {
    async fn start(script: Script, input: Value) -> Run {
        let clock = Arc::new(VirtualClock::new(t0()));
        let world = Arc::new(World::new(clock.clone(), TICKET, script));
        let steps = Steps(world.clone());
        let options = StartOptions {
            name: Some(TICKET.to_owned()),
            ..StartOptions::default()
        };
        let exec = Execution::start(&after_sales_machine(), input, options, clock.as_ref());
        let mut run = Run {
            world,
            steps,
            clock,
            exec,
        };
        run.settle().await;
        run
    }

    /// Runs until the execution ends or waits for a person (a pending task token). Wait states
    /// and retry intervals pass on the virtual clock; a person's deadline only passes through
    /// [`Run::no_answer`].
    async fn settle(&mut self) {
        loop {
            let status = self.exec.advance(&self.steps, self.clock.as_ref()).await;
            if status != ExecutionStatus::Running || !self.exec.pending_task_tokens().is_empty() {
                return;
            }
            match self.exec.next_wakeup() {
                Some(t) => self.clock.set(t),
                None => return,
            }
        }
    }

    /// A person answers (through the token stored with the ticket, as `respond` does).
    async fn answer(&mut self, answer: Value) -> Result<(), String> {
        let token = self
            .world
            .answer(&answer)
            .map_err(|e| format!("{e} ({:?} {:?})", self.exec.status(), self.exec.failure()))?;
        self.exec
            .send_task_success(&token, answer)
            .map_err(|e| format!("send_task_success: {e}"))?;
        self.settle().await;
        Ok(())
    }

    /// Nobody answers: the clock reaches the waiting state's deadline.
    async fn no_answer(&mut self) -> Result<(), String> {
        let t = self
            .exec
            .next_wakeup()
            .ok_or("the waiting state has no deadline")?;
        self.clock.set(t);
        self.settle().await;
        Ok(())
    }

    /// Hours after the start at which `milestone` was (last) notified.
    fn hours_at(&self, milestone: &str) -> Option<i64> {
        self.world
            .ticket()
            .notified_at
            .iter()
            .rev()
            .find(|(_, m)| m == milestone)
            .map(|(t, _)| t.duration_since(t0()).as_secs() / HOUR)
    }
}

struct Expect<'a> {
    states: Vec<&'a str>,
    status: &'a str,
    resolution: Option<&'a str>,
    refunds: &'a [(&'a str, i64)],
    notifications: Vec<&'a str>,
    /// (score, low_score) of the one root-cause message; None: no message.
    feedback: Option<(Option<u64>, bool)>,
}

struct Summary {
    states: Vec<String>,
    transitions: u64,
}

fn check(run: &Run, e: Expect<'_>) -> Result<Summary, String> {
    let mut errors = Vec::new();
    if run.exec.status() != ExecutionStatus::Succeeded {
        errors.push(format!(
            "execution {:?} ({:?}), expected SUCCEEDED",
            run.exec.status(),
            run.exec.failure()
        ));
    }
    let states: Vec<String> = run.exec.states_entered().to_vec();
    if states != e.states {
        errors.push(format!(
            "states entered\n    got      {states:?}\n    expected {:?}",
            e.states
        ));
    }
    let t = run.world.ticket();
    if t.status != e.status {
        errors.push(format!("status {} expected {}", t.status, e.status));
    }
    if t.resolution.as_deref() != e.resolution {
        errors.push(format!(
            "resolution {:?} expected {:?}",
            t.resolution, e.resolution
        ));
    }
    let refunds: Vec<Refund> = e
        .refunds
        .iter()
        .map(|(step, amount)| Refund {
            step: (*step).to_owned(),
            amount: *amount,
        })
        .collect();
    if t.refunds != refunds {
        errors.push(format!("refunds {:?} expected {refunds:?}", t.refunds));
    }
    let total: i64 = t.refunds.iter().map(|r| r.amount).sum();
    if total > run.world.paid() {
        errors.push(format!("refunded {total} of {} paid", run.world.paid()));
    }
    if t.notifications != e.notifications {
        errors.push(format!(
            "notifications\n    got      {:?}\n    expected {:?}",
            t.notifications, e.notifications
        ));
    }
    let feedback: Vec<(Option<u64>, bool)> =
        t.feedback.iter().map(|f| (f.score, f.low_score)).collect();
    let expected: Vec<(Option<u64>, bool)> = e.feedback.into_iter().collect();
    if feedback != expected {
        errors.push(format!("feedback {feedback:?} expected {expected:?}"));
    }
    if t.follow_up_requested != expected.iter().any(|(_, low)| *low) {
        errors.push("follow-up flag does not match the score".into());
    }
    if errors.is_empty() {
        Ok(Summary {
            states,
            transitions: run.exec.state_transitions(),
        })
    } else {
        Err(errors.join("\n  "))
    }
}

fn expect_at(run: &Run, milestone: &str, hours: i64) -> Result<(), String> {
    match run.hours_at(milestone) {
        Some(h) if h == hours => Ok(()),
        other => Err(format!("{milestone} at {other:?} h, expected {hours} h")),
    }
}

// Building blocks of the expected state lists.
const HEAD: &[&str] = &[
    "Acknowledge",
    "Diagnose",
    "RouteDiagnosis",
    "Propose",
    "RouteProposal",
    "AwaitCustomerDecision",
    "RouteDecision",
];
const RESOLVED: &[&str] = &[
    "NotifyResolved",
    "WaitBeforeSurvey",
    "Survey",
    "SendFeedback",
    "CheckScore",
    "Done",
];
const SURVEYED: &[&str] = &[
    "WaitBeforeSurvey",
    "Survey",
    "SendFeedback",
    "CheckScore",
    "Done",
];

fn path(parts: &[&[&'static str]]) -> Vec<&'static str> {
    parts.concat()
}

fn accepted(resolution: &str) -> Value {
    json!({"kind": "decision", "outcome": "accepted", "option_id": "opt-1", "resolution": resolution})
}

fn agent(resolution: &str) -> Value {
    json!({"kind": "agent_decision", "outcome": "option", "resolution": resolution})
}

fn survey(score: u64) -> Value {
    json!({"kind": "survey", "score": score})
}

fn parcel(all_restockable: bool, units: i64) -> Value {
    json!({"kind": "return_received", "all_restockable": all_restockable, "units": units})
}

type Outcome = Result<Summary, String>;

async fn refund_without_return() -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.answer(accepted("refund")).await?;
    run.answer(survey(5)).await?;
    expect_at(&run, "survey", 24)?;
    check(
        &run,
        Expect {
            states: path(&[HEAD, &["ExecuteRefund"], RESOLVED]),
            status: "closed",
            resolution: Some("refund"),
            refunds: &[("refund", 29900)],
            notifications: vec!["acknowledged", "proposal", "resolved", "survey"],
            feedback: Some((Some(5), false)),
        },
    )
}

async fn return_then_refund() -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.answer(accepted("return_refund")).await?;
    run.answer(parcel(true, 2)).await?;
    run.answer(survey(4)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &["AwaitReturnParcel", "InspectReturn", "ExecuteRefund"],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("return_refund"),
            refunds: &[("return_refund", 29900)],
            notifications: vec![
                "acknowledged",
                "proposal",
                "return_requested",
                "resolved",
                "survey",
            ],
            feedback: Some((Some(4), false)),
        },
    )
}

async fn partial_receipt_after_reminder() -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.answer(accepted("return_refund")).await?;
    run.no_answer().await?;
    expect_at(&run, "return_reminder", 7 * 24)?;
    // one of the two units arrives, restockable: only that unit is refunded
    run.answer(parcel(true, 1)).await?;
    run.answer(survey(4)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &[
                    "AwaitReturnParcel",
                    "RemindReturnParcel",
                    "InspectReturn",
                    "ExecuteRefund",
                ],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("return_refund"),
            refunds: &[("return_refund", 14950)],
            notifications: vec![
                "acknowledged",
                "proposal",
                "return_requested",
                "return_reminder",
                "resolved",
                "survey",
            ],
            feedback: Some((Some(4), false)),
        },
    )
}

async fn damaged_return_goes_to_an_agent() -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.answer(accepted("return_refund")).await?;
    run.answer(parcel(false, 2)).await?;
    // the agent grants a price adjustment for the damaged item instead
    run.answer(agent("price_adjustment")).await?;
    run.answer(survey(3)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &[
                    "AwaitReturnParcel",
                    "InspectReturn",
                    "ReviewByAgent",
                    "RouteDecision",
                    "ExecuteRefund",
                ],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("price_adjustment"),
            refunds: &[("price_adjustment", 2990)],
            notifications: vec![
                "acknowledged",
                "proposal",
                "return_requested",
                "under_review",
                "resolved",
                "survey",
            ],
            feedback: Some((Some(3), false)),
        },
    )
}

async fn return_parcel_never_arrives() -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.answer(accepted("return_refund")).await?;
    run.no_answer().await?;
    run.no_answer().await?;
    expect_at(&run, "closed_unanswered", 14 * 24)?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &["AwaitReturnParcel", "RemindReturnParcel", "CloseUnanswered"],
            ]),
            status: "closed",
            resolution: Some("return_refund"),
            refunds: &[],
            notifications: vec![
                "acknowledged",
                "proposal",
                "return_requested",
                "return_reminder",
                "closed_unanswered",
            ],
            feedback: None,
        },
    )
}

async fn exchange_for_a_cheaper_item() -> Outcome {
    let script = Script {
        price_difference: -2000,
        ..Script::default()
    };
    let mut run = Run::start(script, input()).await;
    run.answer(accepted("exchange")).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &["ArrangeExchange", "SettleExchangeDifference"],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("exchange"),
            refunds: &[("exchange_difference", 2000)],
            notifications: vec![
                "acknowledged",
                "proposal",
                "exchange_arranged",
                "resolved",
                "survey",
            ],
            feedback: Some((Some(5), false)),
        },
    )
}

async fn exchange_for_a_dearer_item() -> Outcome {
    let script = Script {
        price_difference: 1500,
        ..Script::default()
    };
    let mut run = Run::start(script, input()).await;
    run.answer(accepted("exchange")).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &["ArrangeExchange", "SettleExchangeDifference"],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("exchange"),
            refunds: &[],
            notifications: vec![
                "acknowledged",
                "proposal",
                "exchange_arranged",
                "resolved",
                "survey",
            ],
            feedback: Some((Some(5), false)),
        },
    )
}

async fn simple_resolution(
    kind: &'static str,
    state: &'static str,
    milestone: &'static str,
) -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.answer(accepted(kind)).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[HEAD, &[state], RESOLVED]),
            status: "closed",
            resolution: Some(kind),
            refunds: &[],
            notifications: vec!["acknowledged", "proposal", milestone, "resolved", "survey"],
            feedback: Some((Some(5), false)),
        },
    )
}

async fn repair() -> Outcome {
    simple_resolution("repair", "ArrangeRepair", "repair_arranged").await
}

async fn parts() -> Outcome {
    simple_resolution("parts", "SendParts", "parts_sent").await
}

async fn coupon() -> Outcome {
    simple_resolution("coupon", "IssueCoupon", "coupon_issued").await
}

async fn price_adjustment() -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.answer(accepted("price_adjustment")).await?;
    run.answer(survey(4)).await?;
    check(
        &run,
        Expect {
            states: path(&[HEAD, &["ExecuteRefund"], RESOLVED]),
            status: "closed",
            resolution: Some("price_adjustment"),
            refunds: &[("price_adjustment", 2990)],
            notifications: vec!["acknowledged", "proposal", "resolved", "survey"],
            feedback: Some((Some(4), false)),
        },
    )
}

async fn reasoned_rejection() -> Outcome {
    let script = Script {
        propose_route: "rejected",
        top_kind: "reject",
        department: "service",
        ..Script::default()
    };
    let mut run = Run::start(script, input()).await;
    run.answer(survey(3)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                &[
                    "Acknowledge",
                    "Diagnose",
                    "RouteDiagnosis",
                    "Propose",
                    "RouteProposal",
                    "NotifyRejected",
                ],
                SURVEYED,
            ]),
            status: "closed",
            resolution: Some("reject"),
            refunds: &[],
            notifications: vec!["acknowledged", "rejected", "survey"],
            feedback: Some((Some(3), false)),
        },
    )
}

async fn evidence_loop() -> Outcome {
    let script = Script {
        diagnose_routes: vec!["request_evidence", "propose"],
        ..Script::default()
    };
    let mut run = Run::start(script, input()).await;
    run.answer(json!({"kind": "evidence", "items": 2})).await?;
    run.answer(accepted("refund")).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                &[
                    "Acknowledge",
                    "Diagnose",
                    "RouteDiagnosis",
                    "RequestEvidence",
                ],
                HEAD[1..].as_ref(),
                &["ExecuteRefund"],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("refund"),
            refunds: &[("refund", 29900)],
            notifications: vec![
                "acknowledged",
                "evidence_requested",
                "proposal",
                "resolved",
                "survey",
            ],
            feedback: Some((Some(5), false)),
        },
    )
}

async fn evidence_after_reminder() -> Outcome {
    let script = Script {
        diagnose_routes: vec!["request_evidence", "propose"],
        ..Script::default()
    };
    let mut run = Run::start(script, input()).await;
    run.no_answer().await?;
    expect_at(&run, "evidence_reminder", 24)?;
    run.answer(json!({"kind": "evidence", "items": 1})).await?;
    run.answer(accepted("coupon")).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                &[
                    "Acknowledge",
                    "Diagnose",
                    "RouteDiagnosis",
                    "RequestEvidence",
                    "AwaitEvidence",
                ],
                HEAD[1..].as_ref(),
                &["IssueCoupon"],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("coupon"),
            refunds: &[],
            notifications: vec![
                "acknowledged",
                "evidence_requested",
                "evidence_reminder",
                "proposal",
                "coupon_issued",
                "resolved",
                "survey",
            ],
            feedback: Some((Some(5), false)),
        },
    )
}

async fn evidence_never_comes() -> Outcome {
    let script = Script {
        diagnose_routes: vec!["request_evidence"],
        ..Script::default()
    };
    let mut run = Run::start(script, input()).await;
    run.no_answer().await?;
    run.no_answer().await?;
    expect_at(&run, "evidence_reminder", 24)?;
    expect_at(&run, "closed_unanswered", 72)?;
    check(
        &run,
        Expect {
            states: vec![
                "Acknowledge",
                "Diagnose",
                "RouteDiagnosis",
                "RequestEvidence",
                "AwaitEvidence",
                "CloseUnanswered",
            ],
            status: "closed",
            resolution: None,
            refunds: &[],
            notifications: vec![
                "acknowledged",
                "evidence_requested",
                "evidence_reminder",
                "closed_unanswered",
            ],
            feedback: None,
        },
    )
}

async fn decision_after_reminder() -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.no_answer().await?;
    expect_at(&run, "decision_reminder", 48)?;
    run.answer(accepted("refund")).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                &HEAD[..6],
                &["RemindCustomerDecision", "RouteDecision", "ExecuteRefund"],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("refund"),
            refunds: &[("refund", 29900)],
            notifications: vec![
                "acknowledged",
                "proposal",
                "decision_reminder",
                "resolved",
                "survey",
            ],
            feedback: Some((Some(5), false)),
        },
    )
}

async fn decision_deadline_accepts_the_top_option() -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.no_answer().await?;
    run.no_answer().await?;
    expect_at(&run, "default_option_accepted", 5 * 24)?;
    run.answer(survey(4)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                &HEAD[..6],
                &[
                    "RemindCustomerDecision",
                    "ApplyDefaultDecision",
                    "AcceptTopOption",
                    "TakeTopOption",
                    "RouteDecision",
                    "ExecuteRefund",
                ],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("refund"),
            refunds: &[("refund", 29900)],
            notifications: vec![
                "acknowledged",
                "proposal",
                "decision_reminder",
                "default_option_accepted",
                "resolved",
                "survey",
            ],
            feedback: Some((Some(4), false)),
        },
    )
}

async fn decision_deadline_closes() -> Outcome {
    let mut input = input();
    input["deadlines"]["decision"]["default_action"] = json!("close");
    let mut run = Run::start(Script::default(), input).await;
    run.no_answer().await?;
    run.no_answer().await?;
    expect_at(&run, "closed_unanswered", 5 * 24)?;
    check(
        &run,
        Expect {
            states: path(&[
                &HEAD[..6],
                &[
                    "RemindCustomerDecision",
                    "ApplyDefaultDecision",
                    "CloseUnanswered",
                ],
            ]),
            status: "closed",
            resolution: None,
            refunds: &[],
            notifications: vec![
                "acknowledged",
                "proposal",
                "decision_reminder",
                "closed_unanswered",
            ],
            feedback: None,
        },
    )
}

async fn review_by_agent() -> Outcome {
    let script = Script {
        diagnose_routes: vec!["review"],
        ..Script::default()
    };
    let mut run = Run::start(script, input()).await;
    run.answer(agent("refund")).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                &[
                    "Acknowledge",
                    "Diagnose",
                    "RouteDiagnosis",
                    "ReviewByAgent",
                    "RouteDecision",
                    "ExecuteRefund",
                ],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("refund"),
            refunds: &[("refund", 29900)],
            notifications: vec!["acknowledged", "under_review", "resolved", "survey"],
            feedback: Some((Some(5), false)),
        },
    )
}

async fn review_escalates_to_supervisor_then_overdue() -> Outcome {
    let script = Script {
        diagnose_routes: vec!["review"],
        ..Script::default()
    };
    let mut run = Run::start(script, input()).await;
    run.no_answer().await?;
    expect_at(&run, "escalated_to_supervisor", 24)?;
    run.no_answer().await?;
    expect_at(&run, "review_overdue", 48)?;
    if run.exec.next_wakeup().is_some() {
        return Err("an overdue review must wait for a person without a deadline".into());
    }
    run.answer(json!({"kind": "agent_decision", "outcome": "reject"}))
        .await?;
    run.answer(survey(1)).await?;
    check(
        &run,
        Expect {
            states: path(&[&[
                "Acknowledge",
                "Diagnose",
                "RouteDiagnosis",
                "ReviewByAgent",
                "EscalateToSupervisor",
                "ReviewOverdue",
                "RouteDecision",
                "NotifyRejected",
                "WaitBeforeSurvey",
                "Survey",
                "SendFeedback",
                "CheckScore",
                "FollowUp",
            ]]),
            status: "closed",
            resolution: Some("reject"),
            refunds: &[],
            notifications: vec![
                "acknowledged",
                "under_review",
                "escalated_to_supervisor",
                "review_overdue",
                "rejected",
                "survey",
                "follow_up",
            ],
            feedback: Some((Some(1), true)),
        },
    )
}

async fn customer_declines() -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.answer(json!({"kind": "decision", "outcome": "declined"}))
        .await?;
    run.answer(agent("exchange")).await?;
    run.answer(survey(4)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &[
                    "ReviewByAgent",
                    "RouteDecision",
                    "ArrangeExchange",
                    "SettleExchangeDifference",
                ],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("exchange"),
            refunds: &[],
            notifications: vec![
                "acknowledged",
                "proposal",
                "under_review",
                "exchange_arranged",
                "resolved",
                "survey",
            ],
            feedback: Some((Some(4), false)),
        },
    )
}

async fn customer_counters() -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.answer(json!({"kind": "decision", "outcome": "countered", "resolution": "refund"}))
        .await?;
    run.answer(agent("refund")).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &["ReviewByAgent", "RouteDecision", "ExecuteRefund"],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("refund"),
            refunds: &[("refund", 29900)],
            notifications: vec![
                "acknowledged",
                "proposal",
                "under_review",
                "resolved",
                "survey",
            ],
            feedback: Some((Some(5), false)),
        },
    )
}

async fn refund_declined_goes_to_an_agent() -> Outcome {
    let script = Script {
        refund_faults: vec![RefundFault::Error("PaymentDeclined")],
        ..Script::default()
    };
    let mut run = Run::start(script, input()).await;
    run.answer(accepted("refund")).await?;
    if run.world.ticket().refund_attempts != 1 {
        return Err("a declined refund must not be retried".into());
    }
    // the agent offers store credit instead
    run.answer(agent("coupon")).await?;
    run.answer(survey(4)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &[
                    "ExecuteRefund",
                    "ReviewByAgent",
                    "RouteDecision",
                    "IssueCoupon",
                ],
                RESOLVED,
            ]),
            status: "closed",
            resolution: Some("coupon"),
            refunds: &[],
            notifications: vec![
                "acknowledged",
                "proposal",
                "under_review",
                "coupon_issued",
                "resolved",
                "survey",
            ],
            feedback: Some((Some(4), false)),
        },
    )
}

async fn refund_retried_then_succeeds() -> Outcome {
    let script = Script {
        refund_faults: vec![
            RefundFault::Error("Retryable"),
            RefundFault::Error("Conflict"),
            RefundFault::Error("Retryable"),
        ],
        ..Script::default()
    };
    let mut run = Run::start(script, input()).await;
    let before = run.clock.now();
    run.answer(accepted("refund")).await?;
    if run.world.ticket().refund_attempts != 4 {
        return Err(format!(
            "expected 3 retries, got {} attempts",
            run.world.ticket().refund_attempts
        ));
    }
    // full jitter: each delay is in [0, min(2 * 2^n, 60)] s, so three of them stay under 14 s
    // (then the survey delay passes before the survey waits)
    let waited = run.clock.now().duration_since(before);
    if waited > SignedDuration::from_secs(DAY + 14) {
        return Err(format!("retries waited {waited:?}"));
    }
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[HEAD, &["ExecuteRefund"], RESOLVED]),
            status: "closed",
            resolution: Some("refund"),
            refunds: &[("refund", 29900)],
            notifications: vec!["acknowledged", "proposal", "resolved", "survey"],
            feedback: Some((Some(5), false)),
        },
    )
}

async fn refund_over_the_cap_goes_to_an_agent() -> Outcome {
    // execute-refund refuses: the refund cap (sum of refunds <= paid) would be exceeded
    let script = Script {
        refund_faults: vec![RefundFault::Error("PolicyViolation")],
        ..Script::default()
    };
    let mut run = Run::start(script, input()).await;
    run.answer(accepted("refund")).await?;
    run.answer(json!({"kind": "agent_decision", "outcome": "reject"}))
        .await?;
    run.answer(survey(2)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &[
                    "ExecuteRefund",
                    "ReviewByAgent",
                    "RouteDecision",
                    "NotifyRejected",
                    "WaitBeforeSurvey",
                    "Survey",
                    "SendFeedback",
                    "CheckScore",
                    "FollowUp",
                ],
            ]),
            status: "closed",
            resolution: Some("reject"),
            refunds: &[],
            notifications: vec![
                "acknowledged",
                "proposal",
                "under_review",
                "rejected",
                "survey",
                "follow_up",
            ],
            feedback: Some((Some(2), true)),
        },
    )
}

async fn survey_unanswered() -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.answer(accepted("refund")).await?;
    run.no_answer().await?;
    expect_at(&run, "survey_reminder", 24 + 3 * 24)?;
    run.no_answer().await?;
    let closed = run.clock.now().duration_since(t0()).as_secs() / HOUR;
    if closed != 24 + 7 * 24 {
        return Err(format!("survey closed at {closed} h, expected 192 h"));
    }
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &[
                    "ExecuteRefund",
                    "NotifyResolved",
                    "WaitBeforeSurvey",
                    "Survey",
                    "RemindSurvey",
                    "RecordNoAnswer",
                ],
            ]),
            status: "closed",
            resolution: Some("refund"),
            refunds: &[("refund", 29900)],
            notifications: vec![
                "acknowledged",
                "proposal",
                "resolved",
                "survey",
                "survey_reminder",
            ],
            feedback: Some((None, false)),
        },
    )
}

async fn survey_answered_after_reminder_with_low_csat() -> Outcome {
    let mut run = Run::start(Script::default(), input()).await;
    run.answer(accepted("parts")).await?;
    run.no_answer().await?;
    run.answer(survey(1)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &[
                    "SendParts",
                    "NotifyResolved",
                    "WaitBeforeSurvey",
                    "Survey",
                    "RemindSurvey",
                    "SendFeedback",
                    "CheckScore",
                    "FollowUp",
                ],
            ]),
            status: "closed",
            resolution: Some("parts"),
            refunds: &[],
            notifications: vec![
                "acknowledged",
                "proposal",
                "parts_sent",
                "resolved",
                "survey",
                "survey_reminder",
                "follow_up",
            ],
            feedback: Some((Some(1), true)),
        },
    )
}

#[tokio::test]
async fn every_path_of_the_after_sales_workflow() {
    let scenarios: Vec<(&str, Outcome)> = vec![
        ("refund without return", refund_without_return().await),
        ("return then refund", return_then_refund().await),
        (
            "partial receipt after the return reminder",
            partial_receipt_after_reminder().await,
        ),
        (
            "damaged return goes to an agent",
            damaged_return_goes_to_an_agent().await,
        ),
        (
            "return parcel never arrives",
            return_parcel_never_arrives().await,
        ),
        (
            "exchange for a cheaper item",
            exchange_for_a_cheaper_item().await,
        ),
        (
            "exchange for a dearer item",
            exchange_for_a_dearer_item().await,
        ),
        ("repair", repair().await),
        ("replacement parts", parts().await),
        ("price adjustment", price_adjustment().await),
        ("coupon", coupon().await),
        ("reasoned rejection", reasoned_rejection().await),
        ("evidence loop", evidence_loop().await),
        (
            "evidence after the reminder",
            evidence_after_reminder().await,
        ),
        ("evidence never comes", evidence_never_comes().await),
        (
            "decision after the reminder",
            decision_after_reminder().await,
        ),
        (
            "decision deadline accepts the top option",
            decision_deadline_accepts_the_top_option().await,
        ),
        ("decision deadline closes", decision_deadline_closes().await),
        ("review by agent", review_by_agent().await),
        (
            "review escalates to a supervisor, then overdue",
            review_escalates_to_supervisor_then_overdue().await,
        ),
        ("customer declines", customer_declines().await),
        ("customer counters", customer_counters().await),
        (
            "refund declined goes to an agent",
            refund_declined_goes_to_an_agent().await,
        ),
        (
            "refund retried then succeeds",
            refund_retried_then_succeeds().await,
        ),
        (
            "refund over the cap goes to an agent",
            refund_over_the_cap_goes_to_an_agent().await,
        ),
        ("survey unanswered", survey_unanswered().await),
        (
            "low CSAT after the survey reminder",
            survey_answered_after_reminder_with_low_csat().await,
        ),
    ];

    let mut failures = Vec::new();
    let mut entered = BTreeSet::new();
    println!("\n{:<50} {:>11} {:>7}", "path", "transitions", "states");
    for (name, outcome) in &scenarios {
        match outcome {
            Ok(summary) => {
                println!(
                    "{name:<50} {:>11} {:>7}",
                    summary.transitions,
                    summary.states.len()
                );
                entered.extend(summary.states.iter().cloned());
            }
            Err(e) => failures.push(format!("{name}:\n  {e}")),
        }
    }
    let machine = after_sales_machine();
    let never: Vec<String> = state_names(machine.source())
        .into_iter()
        .filter(|s| !entered.contains(s))
        .collect();
    if !never.is_empty() && failures.is_empty() {
        failures.push(format!("states no scenario enters: {never:?}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n")
    );
}
