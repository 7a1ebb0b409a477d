//! Every path of `workflows/after-sales.asl.json`, run by the ASL interpreter on a virtual clock
//! with the real handlers (`aftersales_tests::stack`): tickets enter through `accept` (a signed
//! `POST /v1/requests`, which starts the execution), the five steps run in-process over an
//! in-memory store, payment gateway, outbox and feedback queues, and the customer, the warehouse
//! and the agents answer through `respond` (`POST /v1/tickets/{id}/responses`), which resumes
//! the execution with the token notify stored on the ticket.
//!
//! All scenarios run in one test so that the coverage check (every state of the definition is
//! entered by some scenario) sees them all, whatever order or parallelism cargo uses. The test
//! prints the state transitions of each path; `main_path_transitions` pins the counts
//! docs/workflow.md quotes.

use aftersales_domain::Policy;
use aftersales_service::adapters::payment::PaymentError;
use aftersales_tests::stack::Stack;
use aftersales_tests::workflow::{after_sales_machine, repo_root, state_names};
use asl::{Clock, ExecutionStatus};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const HOUR: i64 = 3600;

fn t0() -> Timestamp {
    "2026-11-02T08:00:00Z".parse().expect("fixed start time")
}

/// What the storefront sends. A keyboard order (electronics: 15-day window, repairable, parts
/// available) delivered five days ago; the claim covers both units.
#[derive(Clone)]
struct Claim {
    kind: &'static str,
    unit_price: i64,
    units: u32,
    evidence: bool,
}

impl Default for Claim {
    fn default() -> Self {
        Claim {
            kind: "quality_defect",
            unit_price: 14950,
            units: 2,
            evidence: true,
        }
    }
}

impl Claim {
    fn paid(&self) -> i64 {
        self.unit_price * i64::from(self.units)
    }

    fn request(&self, n: usize) -> Value {
        let evidence = if self.evidence {
            json!([{"kind": "photo", "url": "https://cdn.shop.example/u/1.jpg"}])
        } else {
            json!([])
        };
        json!({
            "request_id": format!("evt_path_{n}"),
            "channel": "app",
            "submitted_at": "2026-11-02T07:59:00Z",
            "customer": {"id": "C-1001", "name": "Li Wei", "email": "li.wei@example.com",
                         "phone": "+86 138 0013 8000", "locale": "en", "tier": "standard"},
            "order": {
                "id": format!("ORD-{n}"), "currency": "CNY",
                "placed_at": "2026-10-25T10:00:00Z", "delivered_at": "2026-10-28T10:00:00Z",
                "lines": [{"line_id": "L1", "sku": "KB-87", "title": "Keyboard",
                           "category": "electronics", "quantity": self.units,
                           "unit_price": self.unit_price}],
                "payment": {"provider": "stripe", "reference": format!("pi_{n}"),
                            "paid": self.paid()}
            },
            "problem": {
                "kind": self.kind,
                "description": "The keyboard stopped working after two days",
                "lines": [{"line_id": "L1", "quantity": self.units}],
                "evidence": evidence
            }
        })
    }
}

/// One ticket's run on its own stack.
struct Run {
    stack: Stack,
    ticket: String,
    paid: i64,
}

impl Run {
    async fn start(claim: Claim) -> Result<Run, String> {
        Run::start_with(claim, Policy::default_policy()).await
    }

    async fn start_with(claim: Claim, policy: Policy) -> Result<Run, String> {
        let stack = Stack::with_policy(t0(), policy);
        let answer = stack.submit(&claim.request(1)).await;
        if answer.status != 202 {
            return Err(format!(
                "accept answered {}: {}",
                answer.status, answer.body
            ));
        }
        let ticket = answer.body["ticket_id"]
            .as_str()
            .ok_or("accept's answer has no ticket_id")?
            .to_owned();
        // accept started the run with the policy's deadlines (docs/workflow-contract.md)
        let input = stack.with_execution(&ticket, |e| e.info().input.clone())?;
        if input["ticket_id"] != json!(ticket) || !input["deadlines"].is_object() {
            return Err(format!("execution input {input}"));
        }
        stack.settle(&ticket).await?;
        Ok(Run {
            stack,
            ticket,
            paid: claim.paid(),
        })
    }

    /// Someone answers through `respond`; the run goes on.
    async fn answer(&self, body: Value) -> Result<(), String> {
        let answer = self.stack.respond(&self.ticket, &body).await;
        if answer.status != 202 {
            let failure = self.stack.with_execution(&self.ticket, |e| {
                (
                    e.status(),
                    e.failure().cloned(),
                    e.states_entered().last().cloned(),
                )
            })?;
            return Err(format!(
                "respond answered {} to {body}: {} (execution {failure:?})",
                answer.status, answer.body
            ));
        }
        self.stack.settle(&self.ticket).await?;
        Ok(())
    }

    /// Nobody answers: the waiting state's deadline passes.
    async fn no_answer(&self) -> Result<(), String> {
        self.stack.no_answer(&self.ticket).await?;
        Ok(())
    }

    /// Hours after the start at which the customer got `milestone` (the last time).
    fn hours_at(&self, milestone: &str) -> Option<i64> {
        let at = self
            .stack
            .sent()
            .into_iter()
            .rev()
            .find(|(m, _)| m == milestone)?
            .1;
        Some(at.duration_since(t0()).as_secs() / HOUR)
    }

    fn expect_at(&self, milestone: &str, hours: i64) -> Result<(), String> {
        match self.hours_at(milestone) {
            Some(h) if h == hours => Ok(()),
            other => Err(format!("{milestone} at {other:?} h, expected {hours} h")),
        }
    }
}

/// What a scenario must end with.
struct Expect<'a> {
    states: Vec<&'a str>,
    /// The ticket's final status.
    status: &'a str,
    /// The chosen resolution's kind (`chosen.kind`), if any.
    chosen: Option<&'a str>,
    /// The audit trail without the `notification_sent` notes.
    events: Vec<&'a str>,
    /// Refunds at the gateway: (idempotency key suffix = step, amount).
    refunds: &'a [(&'a str, i64)],
    /// Messages sent to the customer, by milestone, in order.
    sent: Vec<&'a str>,
    /// Root-cause messages: (department, survey score or None when unanswered).
    feedback: Vec<(&'a str, Option<u64>)>,
}

struct Summary {
    states: Vec<String>,
    transitions: u64,
}

async fn check(run: &Run, e: Expect<'_>) -> Result<Summary, String> {
    let stack = &run.stack;
    let mut errors = Vec::new();
    let (status, failure, states, transitions) = stack.with_execution(&run.ticket, |x| {
        (
            x.status(),
            x.failure().cloned(),
            x.states_entered().to_vec(),
            x.state_transitions(),
        )
    })?;
    if status != ExecutionStatus::Succeeded {
        errors.push(format!(
            "execution {status:?} ({failure:?}), expected SUCCEEDED"
        ));
    }
    if states != e.states {
        errors.push(format!(
            "states entered\n    got      {states:?}\n    expected {:?}",
            e.states
        ));
    }
    let ticket = stack.ticket(&run.ticket).await?;
    let got_status = serde_json::to_value(ticket.status).map_err(|e| e.to_string())?;
    if got_status != json!(e.status) {
        errors.push(format!("status {got_status} expected {}", e.status));
    }
    let chosen = ticket.chosen.as_ref().map(|c| c.kind.as_str().to_owned());
    if chosen.as_deref() != e.chosen {
        errors.push(format!("chosen {chosen:?} expected {:?}", e.chosen));
    }
    if ticket.waiting.is_some() {
        errors.push("the finished ticket still waits for something".into());
    }
    let events: Vec<&str> = stack
        .audit(&run.ticket)
        .await?
        .iter()
        .map(|a| a.event.name())
        .filter(|n| *n != "notification_sent")
        .collect();
    if events != e.events {
        errors.push(format!(
            "audit events\n    got      {events:?}\n    expected {:?}",
            e.events
        ));
    }
    let refunds: Vec<(String, i64)> = stack
        .refunds()
        .iter()
        .map(|(request, receipt)| {
            let step = request
                .idempotency_key
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            (step, receipt.amount.minor)
        })
        .collect();
    let expected: Vec<(String, i64)> = e
        .refunds
        .iter()
        .map(|(s, a)| ((*s).to_owned(), *a))
        .collect();
    if refunds != expected {
        errors.push(format!("gateway refunds {refunds:?} expected {expected:?}"));
    }
    let recorded: Vec<(String, i64)> = ticket
        .refunds
        .iter()
        .map(|r| {
            let step = r.idempotency_key.rsplit(':').next().unwrap_or_default();
            (step.to_owned(), r.amount.minor)
        })
        .collect();
    if recorded != expected {
        errors.push(format!("ticket refunds {recorded:?} expected {expected:?}"));
    }
    let total: i64 = refunds.iter().map(|(_, a)| a).sum();
    if total > run.paid {
        errors.push(format!("refunded {total} of {} paid", run.paid));
    }
    let sent: Vec<String> = stack.sent().into_iter().map(|(m, _)| m).collect();
    if sent != e.sent {
        errors.push(format!(
            "messages sent\n    got      {sent:?}\n    expected {:?}",
            e.sent
        ));
    }
    let mut feedback = Vec::new();
    for (department, messages) in stack.feedback() {
        for m in messages {
            let score = m.body["survey"]["score"].as_u64();
            if m.body["survey"]["answered"] != json!(score.is_some()) {
                errors.push(format!("feedback survey {}", m.body["survey"]));
            }
            feedback.push((department.clone(), score));
        }
    }
    let expected: Vec<(String, Option<u64>)> = e
        .feedback
        .iter()
        .map(|(d, s)| ((*d).to_owned(), *s))
        .collect();
    if feedback != expected {
        errors.push(format!("feedback {feedback:?} expected {expected:?}"));
    }
    if errors.is_empty() {
        Ok(Summary {
            states,
            transitions,
        })
    } else {
        Err(errors.join("\n  "))
    }
}

// Building blocks of the expected state lists.
const HEAD: &[&str] = &[
    "Diagnose",
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
    "FollowUpIfLowScore",
];
const SURVEYED: &[&str] = &[
    "WaitBeforeSurvey",
    "Survey",
    "SendFeedback",
    "FollowUpIfLowScore",
];
const REVIEW: &[&str] = &["Diagnose", "Propose", "RouteProposal", "ReviewByAgent"];

fn path(parts: &[&[&'static str]]) -> Vec<&'static str> {
    parts.concat()
}

// Audit building blocks.
const OPENED: &[&str] = &["received", "diagnosed", "proposed"];
const SURVEY_OK: &[&str] = &["survey_answered", "feedback_sent"];

fn option(id: &str) -> Value {
    json!({"kind": "decision", "option_id": id})
}

fn agent_option(id: &str) -> Value {
    json!({"kind": "agent_decision", "agent": "agent-7", "option": {"option_id": id}})
}

fn agent_kind(kind: &str, amount: Option<i64>) -> Value {
    let mut option = json!({"kind": kind});
    if let Some(amount) = amount {
        option["amount"] = json!(amount);
    }
    json!({"kind": "agent_decision", "agent": "agent-7", "option": option})
}

fn agent_reject() -> Value {
    json!({"kind": "agent_decision", "agent": "agent-7",
           "reject": {"reason": "the damage is not covered"}})
}

fn survey(score: u64) -> Value {
    json!({"kind": "survey", "score": score})
}

fn parcel(units: u32, disposition: &str) -> Value {
    json!({"kind": "return_received",
           "lines": [{"line_id": "L1", "quantity": units, "disposition": disposition}]})
}

fn evidence() -> Value {
    json!({"kind": "evidence",
           "evidence": [{"kind": "photo", "url": "https://cdn.shop.example/u/2.jpg"}]})
}

/// A cheap order (below the keep-the-item threshold): the top option is a refund without return.
fn cheap() -> Claim {
    Claim {
        unit_price: 900,
        ..Claim::default()
    }
}

/// An order above the auto-approve limit (CNY 500.00): a person reviews it.
fn dear() -> Claim {
    Claim {
        unit_price: 29900,
        ..Claim::default()
    }
}

type Outcome = Result<Summary, String>;

// The default claim's proposal (quality defect, 2 × 149.50 CNY): opt-1 return_refund 29900,
// opt-2 exchange, opt-3 repair, opt-4 parts, opt-5 price_adjustment 2990, opt-6 coupon 4485.

/// The end of the cheap claim refunded without a return, the survey answered 5 (also the end
/// of the run whose refund is retried: retries change nothing the customer sees).
fn refunded_without_return() -> Expect<'static> {
    Expect {
        states: path(&[HEAD, &["ExecuteRefund"], RESOLVED]),
        status: "closed",
        chosen: Some("refund"),
        events: [
            OPENED,
            &["option_accepted", "refund_issued", "resolved"],
            SURVEY_OK,
        ]
        .concat(),
        refunds: &[("refund", 1800)],
        sent: vec![
            "acknowledged",
            "proposal",
            "refund_issued",
            "resolved",
            "survey",
        ],
        feedback: vec![("quality", Some(5))],
    }
}

async fn refund_without_return() -> Outcome {
    let run = Run::start(cheap()).await?;
    run.answer(option("opt-1")).await?;
    run.answer(survey(5)).await?;
    run.expect_at("survey", 24)?;
    check(&run, refunded_without_return()).await
}

/// The end of the default claim returned in full (2 units, restocked) and refunded, the survey
/// answered 4, through `return_states` (also the end of the run whose parcel arrives as the
/// deadline fires: the race changes nothing the customer sees).
fn returned_then_refunded(return_states: &[&'static str]) -> Expect<'static> {
    Expect {
        states: path(&[HEAD, return_states, RESOLVED]),
        status: "closed",
        chosen: Some("return_refund"),
        events: [
            OPENED,
            &[
                "option_accepted",
                "return_requested",
                "return_received",
                "refund_issued",
                "resolved",
            ],
            SURVEY_OK,
        ]
        .concat(),
        refunds: &[("return_refund", 29900)],
        sent: vec![
            "acknowledged",
            "proposal",
            "return_requested",
            "return_received",
            "refund_issued",
            "resolved",
            "survey",
        ],
        feedback: vec![("quality", Some(4))],
    }
}

async fn return_then_refund() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.answer(option("opt-1")).await?;
    run.answer(parcel(2, "restock")).await?;
    run.answer(survey(4)).await?;
    check(
        &run,
        returned_then_refunded(&["AwaitReturnParcel", "InspectReturn", "ExecuteRefund"]),
    )
    .await
}

async fn partial_receipt_after_reminder() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.answer(option("opt-1")).await?;
    run.no_answer().await?;
    // the reminder is the return_requested message again (same deadline)
    run.expect_at("return_requested", 7 * 24)?;
    // one of the two units arrives, restockable: only that unit is refunded
    run.answer(parcel(1, "restock")).await?;
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
            chosen: Some("return_refund"),
            events: [
                OPENED,
                &[
                    "option_accepted",
                    "return_requested",
                    "reminder_sent",
                    "return_received",
                    "refund_issued",
                    "resolved",
                ],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[("return_refund", 14950)],
            sent: vec![
                "acknowledged",
                "proposal",
                "return_requested",
                "return_requested",
                "return_received",
                "refund_issued",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(4))],
        },
    )
    .await
}

async fn damaged_return_goes_to_an_agent() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.answer(option("opt-1")).await?;
    run.answer(parcel(2, "damaged")).await?;
    // the agent grants the proposal's price adjustment instead
    run.answer(agent_option("opt-5")).await?;
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
            chosen: Some("price_adjustment"),
            events: [
                OPENED,
                &[
                    "option_accepted",
                    "return_requested",
                    "return_received",
                    "escalated_to_agent",
                    "agent_decided",
                    "refund_issued",
                    "resolved",
                ],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[("price_adjustment", 2990)],
            sent: vec![
                "acknowledged",
                "proposal",
                "return_requested",
                "return_received",
                "under_review",
                "price_adjusted",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(3))],
        },
    )
    .await
}

async fn return_parcel_never_arrives() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.answer(option("opt-1")).await?;
    run.no_answer().await?;
    run.no_answer().await?;
    run.expect_at("closed_unanswered", 14 * 24)?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &["AwaitReturnParcel", "RemindReturnParcel", "CloseUnanswered"],
            ]),
            status: "closed",
            chosen: Some("return_refund"),
            events: [
                OPENED,
                &[
                    "option_accepted",
                    "return_requested",
                    "reminder_sent",
                    "closed_unanswered",
                ],
            ]
            .concat(),
            refunds: &[],
            sent: vec![
                "acknowledged",
                "proposal",
                "return_requested",
                "return_requested",
                "closed_unanswered",
            ],
            feedback: vec![],
        },
    )
    .await
}

async fn exchange() -> Outcome {
    // a same-SKU exchange: no price difference, so nothing is refunded (execute-refund answers
    // PolicyViolation, which SettleExchangeDifference expects)
    let run = Run::start(Claim::default()).await?;
    run.answer(option("opt-2")).await?;
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
            chosen: Some("exchange"),
            events: [
                OPENED,
                &["option_accepted", "exchange_arranged", "resolved"],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[],
            sent: vec![
                "acknowledged",
                "proposal",
                "exchange_arranged",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(5))],
        },
    )
    .await
}

/// The customer exchanges both keyboards (14.950 CNY each) for another variant the storefront
/// prices at `unit_price`: a cheaper one refunds the difference once, a dearer one is charged
/// (the exchange message tells the customer the amount due; nothing is refunded).
async fn exchange_for_a_variant(unit_price: i64) -> Outcome {
    let run = Run::start(Claim::default()).await?;
    let choice = json!({"kind": "decision", "option_id": "opt-2",
                        "exchange_for": {"sku": "KB-87-BLK", "unit_price": unit_price}});
    run.answer(choice).await?;
    run.answer(survey(5)).await?;
    let difference = (unit_price - 14950) * 2;
    let refunded = difference < 0;
    let message = run.stack.bodies("exchange_arranged").concat();
    let amount = format!(
        "{}.{:02} CNY",
        difference.abs() / 100,
        difference.abs() % 100
    );
    let told = if refunded {
        format!("we refund you the difference of {amount}")
    } else {
        format!("the difference of {amount} is yours to pay")
    };
    if !message.contains(&told) {
        return Err(format!(
            "the exchange message does not say {told:?}: {message}"
        ));
    }
    let refund = [("exchange_difference", -difference)];
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &["ArrangeExchange", "SettleExchangeDifference"],
                RESOLVED,
            ]),
            status: "closed",
            chosen: Some("exchange"),
            events: [
                OPENED,
                &["option_accepted", "exchange_arranged"],
                if refunded {
                    &["refund_issued"][..]
                } else {
                    &[]
                },
                &["resolved"],
                SURVEY_OK,
            ]
            .concat(),
            refunds: if refunded { &refund } else { &[] },
            sent: [
                &["acknowledged", "proposal", "exchange_arranged"][..],
                if refunded {
                    &["refund_issued"][..]
                } else {
                    &[]
                },
                &["resolved", "survey"],
            ]
            .concat(),
            feedback: vec![("quality", Some(5))],
        },
    )
    .await
}

async fn simple_resolution(
    option_id: &str,
    kind: &'static str,
    state: &'static str,
    refunds: &[(&str, i64)],
) -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.answer(option(option_id)).await?;
    run.answer(survey(5)).await?;
    // the event and message of the execution step (a price adjustment is execute-refund's
    // refund_issued, told as price_adjusted by NotifyResolved before the resolution)
    let mut events: Vec<&str> = [OPENED, &["option_accepted"]].concat();
    let mut sent = vec!["acknowledged", "proposal"];
    match kind {
        "price_adjustment" => {
            events.push("refund_issued");
            sent.push("price_adjusted");
        }
        "repair" => {
            events.push("repair_arranged");
            sent.push("repair_arranged");
        }
        "parts" => {
            events.push("parts_sent");
            sent.push("parts_sent");
        }
        "coupon" => {
            events.push("coupon_issued");
            sent.push("coupon_issued");
        }
        _ => {}
    }
    events.push("resolved");
    events.extend(SURVEY_OK);
    sent.extend(["resolved", "survey"]);
    let states = path(&[HEAD, &[state], RESOLVED]);
    check(
        &run,
        Expect {
            states,
            status: "closed",
            chosen: Some(kind),
            events,
            refunds,
            sent,
            feedback: vec![("quality", Some(5))],
        },
    )
    .await
}

async fn reasoned_rejection() -> Outcome {
    // misuse is not covered by the policy: the only option is a reasoned rejection
    let claim = Claim {
        kind: "misuse",
        ..Claim::default()
    };
    let run = Run::start(claim).await?;
    run.answer(survey(4)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                &["Diagnose", "Propose", "RouteProposal"],
                &["NotifyRejected"],
                SURVEYED,
            ]),
            status: "closed",
            chosen: None,
            events: [&["received", "diagnosed", "rejected"][..], SURVEY_OK].concat(),
            refunds: &[],
            sent: vec!["acknowledged", "rejected", "survey"],
            feedback: vec![("service", Some(4))],
        },
    )
    .await
}

const EVIDENCE_HEAD: &[&str] = &["Diagnose", "Propose", "RouteProposal", "RequestEvidence"];

async fn evidence_loop() -> Outcome {
    let claim = Claim {
        evidence: false,
        ..cheap()
    };
    let run = Run::start(claim).await?;
    run.answer(evidence()).await?;
    run.answer(option("opt-1")).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[EVIDENCE_HEAD, HEAD, &["ExecuteRefund"], RESOLVED]),
            status: "closed",
            chosen: Some("refund"),
            events: [
                &[
                    "received",
                    "diagnosed",
                    "evidence_requested",
                    "evidence_received",
                ][..],
                &OPENED[1..],
                &["option_accepted", "refund_issued", "resolved"],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[("refund", 1800)],
            sent: vec![
                "acknowledged",
                "evidence_requested",
                "proposal",
                "refund_issued",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(5))],
        },
    )
    .await
}

async fn evidence_after_reminder() -> Outcome {
    let claim = Claim {
        evidence: false,
        ..cheap()
    };
    let run = Run::start(claim).await?;
    run.no_answer().await?;
    run.expect_at("evidence_reminder", 24)?;
    run.answer(evidence()).await?;
    run.answer(option("opt-1")).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                EVIDENCE_HEAD,
                &["AwaitEvidence"],
                HEAD,
                &["ExecuteRefund"],
                RESOLVED,
            ]),
            status: "closed",
            chosen: Some("refund"),
            events: [
                &[
                    "received",
                    "diagnosed",
                    "evidence_requested",
                    "reminder_sent",
                    "evidence_received",
                ][..],
                &OPENED[1..],
                &["option_accepted", "refund_issued", "resolved"],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[("refund", 1800)],
            sent: vec![
                "acknowledged",
                "evidence_requested",
                "evidence_reminder",
                "proposal",
                "refund_issued",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(5))],
        },
    )
    .await
}

async fn evidence_never_comes() -> Outcome {
    let claim = Claim {
        evidence: false,
        ..Claim::default()
    };
    let run = Run::start(claim).await?;
    run.no_answer().await?;
    run.no_answer().await?;
    run.expect_at("closed_unanswered", 72)?;
    check(
        &run,
        Expect {
            states: path(&[EVIDENCE_HEAD, &["AwaitEvidence", "CloseUnanswered"]]),
            status: "closed",
            chosen: None,
            events: vec![
                "received",
                "diagnosed",
                "evidence_requested",
                "reminder_sent",
                "closed_unanswered",
            ],
            refunds: &[],
            sent: vec![
                "acknowledged",
                "evidence_requested",
                "evidence_reminder",
                "closed_unanswered",
            ],
            feedback: vec![],
        },
    )
    .await
}

async fn decision_after_reminder() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.no_answer().await?;
    run.expect_at("decision_reminder", 48)?;
    run.answer(option("opt-3")).await?;
    run.answer(survey(4)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                &HEAD[..4],
                &["RemindCustomerDecision", "RouteDecision", "ArrangeRepair"],
                RESOLVED,
            ]),
            status: "closed",
            chosen: Some("repair"),
            events: [
                OPENED,
                &[
                    "reminder_sent",
                    "option_accepted",
                    "repair_arranged",
                    "resolved",
                ],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[],
            sent: vec![
                "acknowledged",
                "proposal",
                "decision_reminder",
                "repair_arranged",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(4))],
        },
    )
    .await
}

async fn decision_deadline_accepts_the_top_option() -> Outcome {
    let run = Run::start(cheap()).await?;
    run.no_answer().await?;
    run.no_answer().await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                &HEAD[..4],
                &[
                    "RemindCustomerDecision",
                    "ApplyDefaultDecision",
                    "AcceptTopOption",
                    "RouteDecision",
                    "ExecuteRefund",
                ],
                RESOLVED,
            ]),
            status: "closed",
            chosen: Some("refund"),
            events: [
                OPENED,
                &[
                    "reminder_sent",
                    "option_accepted",
                    "refund_issued",
                    "resolved",
                ],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[("refund", 1800)],
            sent: vec![
                "acknowledged",
                "proposal",
                "decision_reminder",
                "refund_issued",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(5))],
        },
    )
    .await
}

fn closing_policy() -> Result<Policy, String> {
    let path = repo_root()
        .join("functions")
        .join("domain")
        .join("policy")
        .join("default.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let text = text.replace(
        "default_action = \"accept_top_option\"",
        "default_action = \"close\"",
    );
    Policy::from_toml_str(&text).map_err(|e| e.to_string())
}

async fn decision_deadline_closes() -> Outcome {
    let run = Run::start_with(Claim::default(), closing_policy()?).await?;
    run.no_answer().await?;
    run.no_answer().await?;
    run.expect_at("closed_unanswered", 5 * 24)?;
    check(
        &run,
        Expect {
            states: path(&[
                &HEAD[..4],
                &[
                    "RemindCustomerDecision",
                    "ApplyDefaultDecision",
                    "CloseUnanswered",
                ],
            ]),
            status: "closed",
            chosen: None,
            events: [OPENED, &["reminder_sent", "closed_unanswered"]].concat(),
            refunds: &[],
            sent: vec![
                "acknowledged",
                "proposal",
                "decision_reminder",
                "closed_unanswered",
            ],
            feedback: vec![],
        },
    )
    .await
}

async fn review_by_agent() -> Outcome {
    let run = Run::start(dear()).await?;
    run.answer(agent_kind("refund", Some(59800))).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[REVIEW, &["RouteDecision", "ExecuteRefund"], RESOLVED]),
            status: "closed",
            chosen: Some("refund"),
            events: [
                &[
                    "received",
                    "diagnosed",
                    "escalated_to_agent",
                    "agent_decided",
                ][..],
                &["refund_issued", "resolved"],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[("refund", 59800)],
            sent: vec![
                "acknowledged",
                "under_review",
                "refund_issued",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(5))],
        },
    )
    .await
}

async fn review_escalates_to_supervisor_then_overdue() -> Outcome {
    let run = Run::start(dear()).await?;
    run.no_answer().await?;
    let escalated = run.stack.clock.now().duration_since(t0()).as_secs() / HOUR;
    if escalated != 24 {
        return Err(format!("escalated at {escalated} h, expected 24 h"));
    }
    run.no_answer().await?;
    let overdue = run.stack.clock.now().duration_since(t0()).as_secs() / HOUR;
    if overdue != 48 {
        return Err(format!("overdue at {overdue} h, expected 48 h"));
    }
    if run
        .stack
        .with_execution(&run.ticket, asl::Execution::next_wakeup)?
        .is_some()
    {
        return Err("an overdue review must wait for a person without a deadline".into());
    }
    run.answer(agent_reject()).await?;
    run.answer(survey(1)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                REVIEW,
                &[
                    "EscalateToSupervisor",
                    "ReviewOverdue",
                    "RouteDecision",
                    "NotifyRejected",
                ],
                SURVEYED,
            ]),
            status: "closed",
            chosen: Some("reject"),
            events: vec![
                "received",
                "diagnosed",
                "escalated_to_agent",
                "escalated_to_supervisor",
                "follow_up_requested",
                // the agent's reject is the rejection (agent_decided, resolution reject)
                "agent_decided",
                "survey_answered",
                "feedback_sent",
                "follow_up_requested",
            ],
            refunds: &[],
            sent: vec![
                "acknowledged",
                "under_review",
                "rejected",
                "survey",
                "follow_up",
            ],
            feedback: vec![("quality", Some(1))],
        },
    )
    .await
}

async fn customer_declines() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.answer(json!({"kind": "decision", "decline": {"reason": "I want my money back now"}}))
        .await?;
    run.answer(agent_option("opt-2")).await?;
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
            chosen: Some("exchange"),
            events: [
                OPENED,
                &[
                    "proposal_declined",
                    "agent_decided",
                    "exchange_arranged",
                    "resolved",
                ],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[],
            sent: vec![
                "acknowledged",
                "proposal",
                "under_review",
                "exchange_arranged",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(4))],
        },
    )
    .await
}

async fn customer_counters() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.answer(json!({"kind": "decision",
                      "counter": {"kind": "refund", "amount": 20000, "note": "keep it, refund part"}}))
        .await?;
    run.answer(agent_kind("refund", Some(20000))).await?;
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
            chosen: Some("refund"),
            events: [
                OPENED,
                &[
                    "counter_offered",
                    "agent_decided",
                    "refund_issued",
                    "resolved",
                ],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[("refund", 20000)],
            sent: vec![
                "acknowledged",
                "proposal",
                "under_review",
                "refund_issued",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(5))],
        },
    )
    .await
}

async fn refund_declined_goes_to_an_agent() -> Outcome {
    let run = Run::start(cheap()).await?;
    run.stack.gateway.fail_next(PaymentError::Declined {
        code: "card_expired".into(),
        message: "the card has expired".into(),
    });
    run.answer(option("opt-1")).await?;
    let attempts = run
        .stack
        .handlers
        .calls()
        .iter()
        .filter(|(f, _, _)| f == "execute-refund")
        .count();
    if attempts != 1 {
        return Err(format!("a declined refund was tried {attempts} times"));
    }
    // the agent offers the proposal's coupon instead
    run.answer(agent_option("opt-6")).await?;
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
            chosen: Some("coupon"),
            events: [
                OPENED,
                &[
                    "option_accepted",
                    "escalated_to_agent",
                    "agent_decided",
                    "coupon_issued",
                    "resolved",
                ],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[],
            sent: vec![
                "acknowledged",
                "proposal",
                "under_review",
                "coupon_issued",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(4))],
        },
    )
    .await
}

async fn refund_retried_then_succeeds() -> Outcome {
    let run = Run::start(cheap()).await?;
    for _ in 0..3 {
        run.stack.gateway.fail_next(PaymentError::Transient {
            message: "gateway timeout".into(),
        });
    }
    let before = run.stack.clock.now();
    run.answer(option("opt-1")).await?;
    let attempts: Vec<Result<Value, String>> = run
        .stack
        .handlers
        .calls()
        .into_iter()
        .filter(|(f, _, _)| f == "execute-refund")
        .map(|(_, _, r)| r)
        .collect();
    let names: Vec<&str> = attempts
        .iter()
        .map(|r| match r {
            Ok(_) => "ok",
            Err(e) => e.as_str(),
        })
        .collect();
    if names != ["Retryable", "Retryable", "Retryable", "ok"] {
        return Err(format!("execute-refund attempts {names:?}"));
    }
    // full jitter: each delay is in [0, min(2 * 2^n, 60)] s, so three of them stay under 14 s
    // (then the survey delay passes before the survey waits)
    let waited = run.stack.clock.now().duration_since(before);
    if waited > SignedDuration::from_secs(24 * HOUR + 14) {
        return Err(format!("retries waited {waited:?}"));
    }
    run.answer(survey(5)).await?;
    check(&run, refunded_without_return()).await
}

async fn survey_unanswered() -> Outcome {
    let run = Run::start(cheap()).await?;
    run.answer(option("opt-1")).await?;
    run.no_answer().await?;
    // the reminder is the survey message again
    run.expect_at("survey", 24 + 3 * 24)?;
    run.no_answer().await?;
    let closed = run.stack.clock.now().duration_since(t0()).as_secs() / HOUR;
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
            chosen: Some("refund"),
            events: [
                OPENED,
                &[
                    "option_accepted",
                    "refund_issued",
                    "resolved",
                    "reminder_sent",
                    "survey_unanswered",
                    "feedback_sent",
                ],
            ]
            .concat(),
            refunds: &[("refund", 1800)],
            sent: vec![
                "acknowledged",
                "proposal",
                "refund_issued",
                "resolved",
                "survey",
                "survey",
            ],
            feedback: vec![("quality", None)],
        },
    )
    .await
}

/// The parts claim resolved, the survey answered 1 after its reminder through `late` (the
/// states between `RemindSurvey` and `SendFeedback`), so the low score gets the follow-up (also
/// the end of the run whose score arrives as the last deadline fires).
fn parts_with_low_csat_after_the_reminder(late: &[&'static str]) -> Expect<'static> {
    Expect {
        states: path(&[
            HEAD,
            &[
                "SendParts",
                "NotifyResolved",
                "WaitBeforeSurvey",
                "Survey",
                "RemindSurvey",
            ],
            late,
            &["SendFeedback", "FollowUpIfLowScore"],
        ]),
        status: "closed",
        chosen: Some("parts"),
        events: [
            OPENED,
            &[
                "option_accepted",
                "parts_sent",
                "resolved",
                "reminder_sent",
                "survey_answered",
                "feedback_sent",
                "follow_up_requested",
            ],
        ]
        .concat(),
        refunds: &[],
        sent: vec![
            "acknowledged",
            "proposal",
            "parts_sent",
            "resolved",
            "survey",
            "survey",
            "follow_up",
        ],
        feedback: vec![("quality", Some(1))],
    }
}

async fn low_csat_after_the_survey_reminder() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.answer(option("opt-4")).await?;
    run.no_answer().await?;
    run.answer(survey(1)).await?;
    check(&run, parts_with_low_csat_after_the_reminder(&[])).await
}

/// The customer's choice arrives just as the decision's first deadline fires: `respond` records
/// it, but the wait has timed out. The reminder finds the ticket answered (no reminder is sent)
/// and the run goes on with the recorded decision.
async fn decision_as_the_deadline_fires() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    let answered = run
        .stack
        .answer_as_deadline_fires(&run.ticket, &option("opt-3"))
        .await?;
    // the run goes on with the answer, so the storefront hears it was taken
    if answered.status != 202 {
        return Err(format!(
            "respond answered {}: {}",
            answered.status, answered.body
        ));
    }
    run.answer(survey(4)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                &HEAD[..4],
                &[
                    "RemindCustomerDecision",
                    "TakeRecordedDecision",
                    "RouteDecision",
                    "ArrangeRepair",
                ],
                RESOLVED,
            ]),
            status: "closed",
            chosen: Some("repair"),
            events: [
                OPENED,
                &["option_accepted", "repair_arranged", "resolved"],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[],
            sent: vec![
                "acknowledged",
                "proposal",
                "repair_arranged",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(4))],
        },
    )
    .await
}

/// The photos arrive just as the evidence's first deadline fires: the reminder finds them and
/// the ticket goes back to Diagnose.
async fn evidence_as_the_deadline_fires() -> Outcome {
    let claim = Claim {
        evidence: false,
        ..cheap()
    };
    let run = Run::start(claim).await?;
    run.stack
        .answer_as_deadline_fires(&run.ticket, &evidence())
        .await?;
    run.answer(option("opt-1")).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                EVIDENCE_HEAD,
                &["AwaitEvidence"],
                HEAD,
                &["ExecuteRefund"],
                RESOLVED,
            ]),
            status: "closed",
            chosen: Some("refund"),
            events: [
                &[
                    "received",
                    "diagnosed",
                    "evidence_requested",
                    "evidence_received",
                ][..],
                &OPENED[1..],
                &["option_accepted", "refund_issued", "resolved"],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[("refund", 1800)],
            sent: vec![
                "acknowledged",
                "evidence_requested",
                "proposal",
                "refund_issued",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(5))],
        },
    )
    .await
}

/// The warehouse reports the parcel just as the return's first deadline fires: the reminder
/// finds the receipt, which is inspected and refunded.
async fn return_as_the_deadline_fires() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.answer(option("opt-1")).await?;
    run.stack
        .answer_as_deadline_fires(&run.ticket, &parcel(2, "restock"))
        .await?;
    run.answer(survey(4)).await?;
    check(
        &run,
        returned_then_refunded(&[
            "AwaitReturnParcel",
            "RemindReturnParcel",
            "TakeRecordedReturn",
            "InspectReturn",
            "ExecuteRefund",
        ]),
    )
    .await
}

/// The return instructions' step parks its token, then its email fails and Step Functions
/// retries the step (with a new token). The warehouse reports the parcel between the attempts,
/// against the first token: respond accepts it, and the retry finds the return already in
/// (`AlreadyAnswered`), asks for nothing and the parcel is inspected as if the wait had got it.
/// The same happens when a crash makes the local stack run the step again.
async fn parcel_between_attempts_of_the_return_request() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.stack.fail_next_send_of("return_requested");
    let chose = run.stack.respond(&run.ticket, &option("opt-1")).await;
    run.stack.advance_now(&run.ticket).await?;
    let pending = run.stack.with_execution(&run.ticket, |e| {
        (
            e.pending_task_tokens().len(),
            e.states_entered().last().cloned(),
        )
    })?;
    if chose.status != 202 || pending != (0, Some("AwaitReturnParcel".to_owned())) {
        return Err(format!(
            "the choice got {} and the run is at {pending:?}, expected the return request's \
             retry interval",
            chose.status
        ));
    }
    run.answer(parcel(2, "restock")).await?;
    run.answer(survey(4)).await?;
    let mut expect = returned_then_refunded(&[
        "AwaitReturnParcel",
        "TakeRecordedReturn",
        "InspectReturn",
        "ExecuteRefund",
    ]);
    // the return instructions never went out: the parcel was in before the retry
    expect.sent.retain(|m| *m != "return_requested");
    check(&run, expect).await
}

/// The customer's choice (after the reminder) arrives just as the decision's last deadline
/// fires, whatever the policy's default: the default step finds the ticket answered
/// (`AlreadyAnswered`) and the run goes on with the customer's choice, not the default.
async fn decision_at_the_last_deadline(closing: bool) -> Outcome {
    let run = if closing {
        Run::start_with(Claim::default(), closing_policy()?).await?
    } else {
        Run::start(Claim::default()).await?
    };
    run.no_answer().await?;
    let answered = run
        .stack
        .answer_as_deadline_fires(&run.ticket, &option("opt-3"))
        .await?;
    if answered.status != 202 {
        return Err(format!(
            "respond answered {}: {}",
            answered.status, answered.body
        ));
    }
    run.answer(survey(4)).await?;
    let default_step: &[&str] = if closing {
        &["CloseUnanswered", "RouteLateAnswer"]
    } else {
        &["AcceptTopOption"]
    };
    check(
        &run,
        Expect {
            states: path(&[
                &HEAD[..4],
                &["RemindCustomerDecision", "ApplyDefaultDecision"],
                default_step,
                &["TakeRecordedDecision", "RouteDecision", "ArrangeRepair"],
                RESOLVED,
            ]),
            status: "closed",
            chosen: Some("repair"),
            events: [
                OPENED,
                &[
                    "reminder_sent",
                    "option_accepted",
                    "repair_arranged",
                    "resolved",
                ],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[],
            sent: vec![
                "acknowledged",
                "proposal",
                "decision_reminder",
                "repair_arranged",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(4))],
        },
    )
    .await
}

/// The photos arrive (after the reminder) just as the evidence's last deadline fires: the close
/// finds them, and the ticket goes back to Diagnose instead of closing.
async fn evidence_at_the_last_deadline() -> Outcome {
    let claim = Claim {
        evidence: false,
        ..cheap()
    };
    let run = Run::start(claim).await?;
    run.no_answer().await?;
    run.stack
        .answer_as_deadline_fires(&run.ticket, &evidence())
        .await?;
    run.answer(option("opt-1")).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                EVIDENCE_HEAD,
                &["AwaitEvidence", "CloseUnanswered", "RouteLateAnswer"],
                HEAD,
                &["ExecuteRefund"],
                RESOLVED,
            ]),
            status: "closed",
            chosen: Some("refund"),
            events: [
                &[
                    "received",
                    "diagnosed",
                    "evidence_requested",
                    "reminder_sent",
                    "evidence_received",
                ][..],
                &OPENED[1..],
                &["option_accepted", "refund_issued", "resolved"],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[("refund", 1800)],
            sent: vec![
                "acknowledged",
                "evidence_requested",
                "evidence_reminder",
                "proposal",
                "refund_issued",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(5))],
        },
    )
    .await
}

/// The warehouse reports the parcel (after the reminder) just as the return's last deadline
/// fires: the close finds the receipt, which is inspected and refunded.
async fn return_at_the_last_deadline() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.answer(option("opt-1")).await?;
    run.no_answer().await?;
    run.stack
        .answer_as_deadline_fires(&run.ticket, &parcel(2, "restock"))
        .await?;
    run.answer(survey(4)).await?;
    let mut expect = returned_then_refunded(&[
        "AwaitReturnParcel",
        "RemindReturnParcel",
        "CloseUnanswered",
        "RouteLateAnswer",
        "TakeRecordedReturn",
        "InspectReturn",
        "ExecuteRefund",
    ]);
    let after = |list: &mut Vec<&str>, before: &str, item: &'static str| {
        let at = list.iter().position(|m| *m == before).map_or(0, |i| i + 1);
        list.insert(at, item);
    };
    after(&mut expect.events, "return_requested", "reminder_sent");
    // the reminder repeats the return instructions
    after(&mut expect.sent, "return_requested", "return_requested");
    check(&run, expect).await
}

/// The score (after the reminder) arrives just as the survey's last deadline fires: it is
/// recorded as an answer, not as "no answer", and a low score still gets the follow-up.
async fn survey_at_the_last_deadline() -> Outcome {
    let run = Run::start(Claim::default()).await?;
    run.answer(option("opt-4")).await?;
    run.no_answer().await?;
    run.stack
        .answer_as_deadline_fires(&run.ticket, &survey(1))
        .await?;
    check(
        &run,
        parts_with_low_csat_after_the_reminder(&["RecordNoAnswer"]),
    )
    .await
}

/// The local stack is killed after the customer chose but before the run's progress was
/// stored: on restart the run is replayed from its start. Diagnose and Propose answer what they
/// stored, the decision's wait finds the choice on the ticket (`AlreadyAnswered`) and the run
/// goes on with it: one refund, nothing sent twice.
async fn replayed_after_a_crash_once_the_customer_chose() -> Outcome {
    let stack = Stack::new(t0());
    let claim = cheap();
    let accepted = stack.submit(&claim.request(1)).await;
    let ticket = accepted.body["ticket_id"]
        .as_str()
        .ok_or("accept's answer has no ticket_id")?
        .to_owned();
    let started = stack.stored_run(&ticket)?;
    stack.settle(&ticket).await?;
    let run = Run {
        stack,
        ticket,
        paid: claim.paid(),
    };
    run.answer(option("opt-1")).await?;
    run.stack.restore_run(&run.ticket, &started)?;
    run.stack.settle(&run.ticket).await?;
    run.answer(survey(5)).await?;
    let mut expect = refunded_without_return();
    expect.states = path(&[
        &HEAD[..4],
        &["TakeRecordedDecision", "RouteDecision", "ExecuteRefund"],
        RESOLVED,
    ]);
    check(&run, expect).await
}

/// execute-refund keeps losing its write of the refund to concurrent changes of the ticket:
/// `Conflict` on every attempt (the gateway paid once). The run goes to a person, never fails;
/// the agent grants the refund again and the ledger answers with the first refund.
async fn refund_conflict_goes_to_an_agent() -> Outcome {
    let run = Run::start(cheap()).await?;
    // 7 attempts (1 + 6 retries), each re-applying its change 3 times
    run.stack
        .refund_store
        .conflicts
        .store(7 * 3, std::sync::atomic::Ordering::SeqCst);
    run.answer(option("opt-1")).await?;
    let attempts: Vec<String> = run
        .stack
        .handlers
        .calls()
        .into_iter()
        .filter(|(f, _, _)| f == "execute-refund")
        .map(|(_, _, r)| r.err().unwrap_or_else(|| "ok".into()))
        .collect();
    if attempts != vec!["Conflict"; 7] {
        return Err(format!("execute-refund attempts {attempts:?}"));
    }
    run.answer(agent_option("opt-1")).await?;
    run.answer(survey(5)).await?;
    check(
        &run,
        Expect {
            states: path(&[
                HEAD,
                &[
                    "ExecuteRefund",
                    "ReviewByAgent",
                    "RouteDecision",
                    "ExecuteRefund",
                ],
                RESOLVED,
            ]),
            status: "closed",
            chosen: Some("refund"),
            events: [
                OPENED,
                &[
                    "option_accepted",
                    "escalated_to_agent",
                    "agent_decided",
                    "refund_issued",
                    "resolved",
                ],
                SURVEY_OK,
            ]
            .concat(),
            refunds: &[("refund", 1800)],
            sent: vec![
                "acknowledged",
                "proposal",
                "under_review",
                "refund_issued",
                "resolved",
                "survey",
            ],
            feedback: vec![("quality", Some(5))],
        },
    )
    .await
}

/// Two tickets claim the same order line. The first is refunded in full; an agent then grants
/// the second a refund too, and execute-refund's cap refuses it (the order's ledger has nothing
/// left: `PolicyViolation`). The run goes back to a person, never fails, and the gateway pays
/// once for the order.
async fn refund_cap_taken_by_another_ticket() -> Outcome {
    // the agents' SLA outlasts the first ticket's survey delay (one virtual clock for both)
    let text = std::fs::read_to_string(
        repo_root()
            .join("functions")
            .join("domain")
            .join("policy")
            .join("default.toml"),
    )
    .map_err(|e| e.to_string())?
    .replace("\nsla = \"24h\"", "\nsla = \"72h\"");
    let policy = Policy::from_toml_str(&text).map_err(|e| e.to_string())?;
    let first = Run::start_with(cheap(), policy).await?;
    let stack = &first.stack;
    let mut request = cheap().request(1);
    request["request_id"] = json!("evt_path_same_order");
    let answer = stack.submit(&request).await;
    let second = answer.body["ticket_id"]
        .as_str()
        .ok_or(format!(
            "accept answered {}: {}",
            answer.status, answer.body
        ))?
        .to_owned();
    stack.settle(&second).await?;
    // the first ticket is refunded in full (1800 of 1800 paid)
    first.answer(option("opt-1")).await?;
    let respond = |body: Value| {
        let ticket = second.clone();
        async move {
            let answer = stack.respond(&ticket, &body).await;
            if answer.status != 202 {
                return Err(format!(
                    "respond answered {}: {}",
                    answer.status, answer.body
                ));
            }
            stack.settle(&ticket).await.map(|_| ())
        }
    };
    // the second is a duplicate claim: an agent grants a partial refund, which the cap refuses
    respond(agent_kind("refund", Some(900))).await?;
    respond(agent_reject()).await?;
    respond(survey(3)).await?;

    let (status, failure, states, transitions) = stack.with_execution(&second, |x| {
        (
            x.status(),
            x.failure().cloned(),
            x.states_entered().to_vec(),
            x.state_transitions(),
        )
    })?;
    let mut errors = Vec::new();
    if status != ExecutionStatus::Succeeded {
        errors.push(format!("execution {status:?} ({failure:?})"));
    }
    let expected = path(&[
        REVIEW,
        &[
            "RouteDecision",
            "ExecuteRefund",
            "ReviewByAgent",
            "RouteDecision",
            "NotifyRejected",
        ],
        SURVEYED,
    ]);
    if states != expected {
        errors.push(format!("states {states:?}\n    expected {expected:?}"));
    }
    let refunds: Vec<i64> = stack
        .refunds()
        .iter()
        .map(|(_, r)| r.amount.minor)
        .collect();
    if refunds != [1800] {
        errors.push(format!(
            "gateway refunds {refunds:?}, expected the first ticket's 1800"
        ));
    }
    let ticket = stack.ticket(&second).await?;
    if !ticket.refunds.is_empty() || ticket.status.as_str() != "closed" {
        errors.push(format!(
            "second ticket {} with refunds {:?}",
            ticket.status, ticket.refunds
        ));
    }
    let events: Vec<&str> = stack
        .audit(&second)
        .await?
        .iter()
        .map(|a| a.event.name())
        .filter(|n| *n != "notification_sent")
        .collect();
    let expected_events = [
        "received",
        "diagnosed",
        "escalated_to_agent",
        "agent_decided",
        "escalated_to_agent",
        "agent_decided",
        "survey_answered",
        "feedback_sent",
    ];
    if events != expected_events {
        errors.push(format!("audit events {events:?}"));
    }
    let refused = stack
        .handlers
        .calls()
        .into_iter()
        .filter(|(f, input, _)| f == "execute-refund" && input["ticket_id"] == json!(second))
        .map(|(_, _, r)| r.err().unwrap_or_else(|| "ok".into()))
        .collect::<Vec<_>>();
    if refused != ["PolicyViolation"] {
        errors.push(format!("execute-refund on the second ticket: {refused:?}"));
    }
    if errors.is_empty() {
        Ok(Summary {
            states,
            transitions,
        })
    } else {
        Err(errors.join("\n  "))
    }
}

/// The table under "## Transitions per path" in docs/workflow.md: path name -> transitions.
fn documented_transitions() -> BTreeMap<String, u64> {
    let doc =
        std::fs::read_to_string(repo_root().join("docs").join("workflow.md")).unwrap_or_default();
    let section = doc
        .split("## Transitions per path")
        .nth(1)
        .unwrap_or_default();
    section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| {
            let cells: Vec<&str> = l
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            match cells.as_slice() {
                [name, count] => Some(((*name).to_owned(), count.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

/// Every scenario, by name.
async fn scenarios() -> Vec<(&'static str, Outcome)> {
    vec![
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
        ("exchange", exchange().await),
        (
            "exchange for a cheaper variant",
            exchange_for_a_variant(12950).await,
        ),
        (
            "exchange for a dearer variant",
            exchange_for_a_variant(16950).await,
        ),
        (
            "repair",
            simple_resolution("opt-3", "repair", "ArrangeRepair", &[]).await,
        ),
        (
            "replacement parts",
            simple_resolution("opt-4", "parts", "SendParts", &[]).await,
        ),
        (
            "price adjustment",
            simple_resolution(
                "opt-5",
                "price_adjustment",
                "ExecuteRefund",
                &[("price_adjustment", 2990)],
            )
            .await,
        ),
        (
            "coupon",
            simple_resolution("opt-6", "coupon", "IssueCoupon", &[]).await,
        ),
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
        ("survey unanswered", survey_unanswered().await),
        (
            "low CSAT after the survey reminder",
            low_csat_after_the_survey_reminder().await,
        ),
        (
            "decision as the deadline fires",
            decision_as_the_deadline_fires().await,
        ),
        (
            "evidence as the deadline fires",
            evidence_as_the_deadline_fires().await,
        ),
        (
            "return as the deadline fires",
            return_as_the_deadline_fires().await,
        ),
        (
            "decision at the last deadline, default accepts",
            decision_at_the_last_deadline(false).await,
        ),
        (
            "decision at the last deadline, default closes",
            decision_at_the_last_deadline(true).await,
        ),
        (
            "evidence at the last deadline",
            evidence_at_the_last_deadline().await,
        ),
        (
            "return at the last deadline",
            return_at_the_last_deadline().await,
        ),
        (
            "survey at the last deadline",
            survey_at_the_last_deadline().await,
        ),
        (
            "replayed after a crash once the customer chose",
            replayed_after_a_crash_once_the_customer_chose().await,
        ),
        (
            "parcel between attempts of the return request",
            parcel_between_attempts_of_the_return_request().await,
        ),
        (
            "refund conflict goes to an agent",
            refund_conflict_goes_to_an_agent().await,
        ),
        (
            "refund cap taken by another ticket",
            refund_cap_taken_by_another_ticket().await,
        ),
    ]
}

#[tokio::test]
async fn every_path_of_the_after_sales_workflow_with_the_real_handlers() {
    let scenarios = scenarios().await;
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
    let counts: BTreeMap<&str, u64> = scenarios
        .iter()
        .filter_map(|(n, o)| o.as_ref().ok().map(|s| (*n, s.transitions)))
        .collect();
    // docs/workflow.md quotes the transitions of each path: keep the table measured
    if failures.is_empty() {
        let documented = documented_transitions();
        let measured: BTreeMap<String, u64> =
            counts.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect();
        if documented != measured {
            let rows: Vec<String> = measured
                .iter()
                .map(|(n, c)| format!("| {n} | {c} |"))
                .collect();
            failures.push(format!(
                "docs/workflow.md 'Transitions per path' is stale; measured:\n{}",
                rows.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n")
    );
}
