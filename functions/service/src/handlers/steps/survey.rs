//! The `survey` step: close the loop. Takes the survey's outcome, sends the root cause to the
//! owning department's queue (no personal data) and flags low scores for a follow-up.

use std::sync::Arc;

use aftersales_domain::lifecycle::{Actor, AuditEvent, TicketEvent, TicketStatus, WaitKind};
use aftersales_domain::ticket::{SurveyResult, Ticket};
use aftersales_domain::{Department, Policy, ProblemKind, ResolutionKind, TicketId};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::StepError;
use super::ticket_change;
use crate::adapters::feedback::{FeedbackMessage, FeedbackPublisher};
use crate::clock::Clock;
use crate::metrics::{self, BusinessEvent};
use crate::store::TicketStore;

pub const STEP: &str = "survey";

/// The reason recorded with `follow_up_requested`.
pub const LOW_SCORE_REASON: &str = "low_survey_score";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurveyAction {
    /// The customer answered: the score is on the ticket (stored by `respond`).
    Record,
    /// The survey's deadline passed without an answer.
    NoAnswer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyInput {
    pub ticket_id: TicketId,
    pub action: SurveyAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyOutput {
    pub ticket_id: TicketId,
    pub department: Department,
    pub low_score: bool,
}

pub struct SurveyDeps {
    pub store: Arc<dyn TicketStore>,
    pub feedback: Arc<dyn FeedbackPublisher>,
    pub policy: Arc<Policy>,
    pub clock: Arc<dyn Clock>,
}

pub async fn handle(input: SurveyInput, deps: &SurveyDeps) -> Result<SurveyOutput, StepError> {
    let store = deps.store.as_ref();
    let now = deps.clock.now();
    let ticket = ticket_change::load(store, &input.ticket_id).await?;
    let score = match input.action {
        SurveyAction::Record => Some(answered_score(&ticket)?),
        SurveyAction::NoAnswer => match ticket.survey.as_ref().and_then(|s| s.score) {
            // The answer came as the survey's deadline fired: the workflow records it instead.
            Some(_) => {
                return Err(StepError::AlreadyAnswered(format!(
                    "ticket {} already has its survey answer; it no longer waits for survey",
                    ticket.id
                )));
            }
            None => None,
        },
    };
    let department = department_of(&ticket, &deps.policy);
    let low_score = score.is_some_and(|s| s <= deps.policy.survey.follow_up_at_or_below);

    // Published before anything is recorded: a retry publishes again with the same
    // deduplication id (the ticket id), and records what the first attempt could not.
    let message = FeedbackMessage {
        department,
        ticket_id: ticket.id.clone(),
        body: root_cause(&ticket, department, score, now),
        dedup_id: ticket.id.to_string(),
    };
    deps.feedback
        .publish(std::slice::from_ref(&message))
        .await?;

    let (_, (feedback_now, follow_up_now)) = ticket_change::update_with_trail(
        store,
        &ticket.id,
        now,
        &Actor::system(STEP),
        true,
        |change, trail| {
            close_survey(change, score)?;
            let sent = TicketEvent::FeedbackSent { department };
            let feedback_now = !trail.iter().any(|e| e.event == sent);
            if feedback_now {
                change.record(sent)?;
            }
            let follow_up_now = low_score && !follow_up_recorded(trail);
            if follow_up_now {
                change.record(TicketEvent::FollowUpRequested {
                    reason: LOW_SCORE_REASON.to_owned(),
                })?;
            }
            Ok((feedback_now, follow_up_now))
        },
    )
    .await?;
    // Counted by the run that recorded the fact, so a re-run counts nothing.
    let root_cause = problem_kind(&ticket);
    if feedback_now {
        let event = match score {
            Some(score) => BusinessEvent::SurveyScored {
                score,
                root_cause,
                department,
            },
            None => BusinessEvent::SurveyUnanswered,
        };
        metrics::emit(now, &event);
    }
    if follow_up_now {
        metrics::emit(now, &BusinessEvent::LowScoreFollowUp { root_cause });
    }
    tracing::info!(ticket_id = %ticket.id, %department, low_score, "survey closed the loop");
    Ok(SurveyOutput {
        ticket_id: ticket.id,
        department,
        low_score,
    })
}

/// The score `respond` stored with the customer's answer.
fn answered_score(ticket: &Ticket) -> Result<u8, StepError> {
    let score = ticket
        .survey
        .as_ref()
        .and_then(|s| s.score)
        .ok_or_else(|| {
            StepError::invalid(format!(
                "ticket {} has no survey answer to record",
                ticket.id
            ))
        })?;
    if (1..=5).contains(&score) {
        Ok(score)
    } else {
        Err(StepError::invalid(format!(
            "survey score {score} of ticket {} is not between 1 and 5",
            ticket.id
        )))
    }
}

/// Records the survey's outcome while the ticket still waits for it; once closed (by `respond`
/// or an earlier attempt) there is nothing left to record.
fn close_survey(change: &mut ticket_change::Change, score: Option<u8>) -> Result<(), StepError> {
    let ticket = &change.ticket;
    let waiting = matches!(
        ticket.status,
        TicketStatus::Resolved | TicketStatus::Rejected
    ) || ticket.waiting_for() == Some(WaitKind::Survey);
    if !waiting || ticket.status.is_terminal() {
        return Ok(());
    }
    let at = change.at();
    match score {
        Some(score) => {
            // the score itself is on the ticket already (`answered_score`)
            change.record(TicketEvent::SurveyAnswered { score })?;
        }
        None => {
            change.record(TicketEvent::SurveyUnanswered)?;
            change.ticket.survey = Some(SurveyResult { score: None, at });
        }
    }
    change.ticket.waiting = None;
    Ok(())
}

fn follow_up_recorded(trail: &[AuditEvent]) -> bool {
    trail.iter().any(|e| {
        matches!(&e.event, TicketEvent::FollowUpRequested { reason } if reason == LOW_SCORE_REASON)
    })
}

/// The problem as diagnosed, or as claimed when there is no diagnosis.
fn problem_kind(ticket: &Ticket) -> ProblemKind {
    ticket
        .diagnosis
        .as_ref()
        .map_or(ticket.request.problem.kind, |d| d.classification.kind)
}

fn department_of(ticket: &Ticket, policy: &Policy) -> Department {
    match &ticket.diagnosis {
        Some(diagnosis) => diagnosis.department,
        None => policy.department_for(ticket.request.problem.kind),
    }
}

fn resolution_of(ticket: &Ticket) -> Option<ResolutionKind> {
    ticket
        .resolution
        .or_else(|| ticket.chosen.as_ref().map(|c| c.kind))
        .or_else(|| {
            let rejected = ticket.status == TicketStatus::Rejected
                || ticket
                    .proposal
                    .as_ref()
                    .is_some_and(|p| p.options.iter().all(|o| o.kind == ResolutionKind::Reject));
            rejected.then_some(ResolutionKind::Reject)
        })
}

/// The root cause as the department needs it: what went wrong with which products, whose fault
/// it was, how it was resolved and how the customer felt. No name, contact, address,
/// description or evidence link: only the ticket id leads back to the case.
fn root_cause(
    ticket: &Ticket,
    department: Department,
    score: Option<u8>,
    now: Timestamp,
) -> serde_json::Value {
    let diagnosis = ticket.diagnosis.as_ref();
    let order = &ticket.request.order;
    let lines: Vec<serde_json::Value> = ticket
        .request
        .problem
        .lines
        .iter()
        .map(|problem| {
            let line = order.line(&problem.line_id);
            json!({
                "line_id": problem.line_id,
                "sku": line.map(|l| l.sku.as_str()),
                "category": line.map(|l| l.category.as_str()),
                "quantity": problem.quantity.get(),
            })
        })
        .collect();
    json!({
        "schema": "aftersales.root_cause.v1",
        "ticket_id": ticket.id,
        "department": department,
        "problem_kind": problem_kind(ticket),
        "claimed_kind": ticket.request.problem.kind,
        "responsibility": diagnosis.map(|d| d.responsibility),
        "late_delivery": diagnosis.map(|d| d.delivery.late),
        "channel": ticket.request.channel,
        "lines": lines,
        "evidence_items": ticket.request.problem.evidence.len(),
        "resolution": resolution_of(ticket),
        "refunded_minor": ticket.refunded().ok().map(|m| m.minor),
        "currency": order.currency,
        "survey": {
            "answered": score.is_some(),
            "score": score,
        },
        "received_at": ticket.received_at,
        "summarised_at": now,
    })
}
