//! The `diagnose` step: classify the request, check it against the policy and decide where the
//! workflow goes next (propose, ask for evidence, or a person reviews it).

use std::sync::Arc;

use aftersales_domain::diagnosis::Diagnosis;
use aftersales_domain::lifecycle::{Actor, TicketEvent, TicketStatus};
use aftersales_domain::ticket::Ticket;
use aftersales_domain::{Department, Policy, ProblemKind, Responsibility, TicketId, diagnose};
use serde::{Deserialize, Serialize};

use super::error::StepError;
use super::ticket_change::{self, Change, SAVE_ATTEMPTS};
use super::{history_since, wire_code};
use crate::clock::Clock;
use crate::store::{StoreError, TicketStore};

pub const STEP: &str = "diagnose";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnoseInput {
    pub ticket_id: TicketId,
}

/// Where the workflow goes after the diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnoseRoute {
    Propose,
    RequestEvidence,
    Review,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnoseOutput {
    pub ticket_id: TicketId,
    pub route: DiagnoseRoute,
    pub problem_kind: ProblemKind,
    pub responsibility: Responsibility,
    pub department: Department,
    /// Why a person must review (codes such as `amount_over_auto_approve_limit`); empty otherwise.
    pub review_reasons: Vec<String>,
}

pub struct DiagnoseDeps {
    pub store: Arc<dyn TicketStore>,
    pub policy: Arc<Policy>,
    pub clock: Arc<dyn Clock>,
}

pub async fn handle(
    input: DiagnoseInput,
    deps: &DiagnoseDeps,
) -> Result<DiagnoseOutput, StepError> {
    let store = deps.store.as_ref();
    let now = deps.clock.now();
    let actor = Actor::system(STEP);
    let since = history_since(&deps.policy, now);

    let mut ticket = ticket_change::load(store, &input.ticket_id).await?;
    for _ in 0..SAVE_ATTEMPTS {
        if let Some(done) = already_diagnosed(&ticket)? {
            return Ok(done);
        }
        let history = store.history(&ticket.request, &ticket.id, since).await?;
        let diagnosis = diagnose(&ticket.request, &history, &deps.policy, now);
        let route = route_of(&diagnosis);
        let reasons = review_codes(&diagnosis);

        let mut change = Change::new(ticket.clone(), now, actor.clone());
        change.record(TicketEvent::Diagnosed {
            problem_kind: diagnosis.classification.kind,
            responsibility: diagnosis.responsibility,
            needs_evidence: diagnosis.evidence.is_needed(),
            needs_review: diagnosis.review.required,
        })?;
        match route {
            DiagnoseRoute::Propose => {}
            DiagnoseRoute::RequestEvidence => {
                change.record(TicketEvent::EvidenceRequested)?;
            }
            DiagnoseRoute::Review => {
                change.record(TicketEvent::EscalatedToAgent {
                    reason: reasons.join(","),
                })?;
            }
        }
        let output = output(&ticket.id, route, &diagnosis);
        change.ticket.diagnosis = Some(diagnosis);
        match ticket_change::save(store, &ticket, change).await {
            Ok(saved) => {
                tracing::info!(ticket_id = %saved.id, route = ?route, "diagnosed");
                return Ok(output);
            }
            Err(StoreError::Conflict(_)) => {
                ticket = ticket_change::load(store, &input.ticket_id).await?;
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(ticket_change::conflict(&input.ticket_id))
}

/// Evidence first: a reviewer needs it too, and the ticket comes back here once it arrives.
fn route_of(diagnosis: &Diagnosis) -> DiagnoseRoute {
    if diagnosis.evidence.is_needed() {
        DiagnoseRoute::RequestEvidence
    } else if diagnosis.review.required {
        DiagnoseRoute::Review
    } else {
        DiagnoseRoute::Propose
    }
}

fn review_codes(diagnosis: &Diagnosis) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for reason in &diagnosis.review.reasons {
        let code = wire_code(reason);
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

fn output(id: &TicketId, route: DiagnoseRoute, diagnosis: &Diagnosis) -> DiagnoseOutput {
    DiagnoseOutput {
        ticket_id: id.clone(),
        route,
        problem_kind: diagnosis.classification.kind,
        responsibility: diagnosis.responsibility,
        department: diagnosis.department,
        review_reasons: if route == DiagnoseRoute::Review {
            review_codes(diagnosis)
        } else {
            Vec::new()
        },
    }
}

/// A re-run after a diagnosis was stored (the answer was lost): the same answer, nothing
/// recorded twice. Diagnosing is only allowed from `received`. A ticket that has moved further
/// (a proposal, a choice) is a run replayed from an earlier point (the local stack after a
/// crash): the stored diagnosis' own route, so the replay reaches the step that was answered.
fn already_diagnosed(ticket: &Ticket) -> Result<Option<DiagnoseOutput>, StepError> {
    let route = match ticket.status {
        TicketStatus::Received => return Ok(None),
        TicketStatus::Diagnosed => DiagnoseRoute::Propose,
        TicketStatus::AwaitingEvidence => DiagnoseRoute::RequestEvidence,
        TicketStatus::UnderReview => DiagnoseRoute::Review,
        _ => match &ticket.diagnosis {
            Some(diagnosis) => route_of(diagnosis),
            None => DiagnoseRoute::Propose, // refused below: no stored diagnosis
        },
    };
    match &ticket.diagnosis {
        Some(diagnosis) => Ok(Some(output(&ticket.id, route, diagnosis))),
        None => Err(StepError::policy(format!(
            "ticket {} is {} without a stored diagnosis",
            ticket.id, ticket.status
        ))),
    }
}
