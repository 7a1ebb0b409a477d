//! The `propose` step: build and rank the options the policy allows, store them, and send the
//! workflow to the customer's decision (or to the rejection when nothing is allowed).

use std::sync::Arc;

use aftersales_domain::diagnosis::Diagnosis;
use aftersales_domain::lifecycle::{Actor, TicketEvent, TicketStatus};
use aftersales_domain::proposal::{BasisReason, Proposal};
use aftersales_domain::ticket::Ticket;
use aftersales_domain::{Policy, ResolutionKind, TicketId, propose};
use serde::{Deserialize, Serialize};

use super::error::StepError;
use super::ticket_change::{self, Change, SAVE_ATTEMPTS};
use super::{history_since, wire_code};
use crate::clock::Clock;
use crate::store::{StoreError, TicketStore};

pub const STEP: &str = "propose";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposeInput {
    pub ticket_id: TicketId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposeRoute {
    AwaitDecision,
    Rejected,
    /// The diagnosis asked for evidence first: nothing is proposed yet.
    RequestEvidence,
    /// The diagnosis sent the ticket to a person: nothing is proposed.
    Review,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposeOutput {
    pub ticket_id: TicketId,
    pub route: ProposeRoute,
    /// How many options the customer may choose from (1 for a rejection, 0 when nothing was
    /// proposed).
    pub options: u32,
    pub top_option: Option<String>,
    pub top_kind: Option<ResolutionKind>,
}

pub struct ProposeDeps {
    pub store: Arc<dyn TicketStore>,
    pub policy: Arc<Policy>,
    pub clock: Arc<dyn Clock>,
}

pub async fn handle(input: ProposeInput, deps: &ProposeDeps) -> Result<ProposeOutput, StepError> {
    let store = deps.store.as_ref();
    let now = deps.clock.now();
    let actor = Actor::system(STEP);

    let mut ticket = ticket_change::load(store, &input.ticket_id).await?;
    if let Some(route) = nothing_to_propose(&ticket) {
        return Ok(ProposeOutput {
            ticket_id: ticket.id,
            route,
            options: 0,
            top_option: None,
            top_kind: None,
        });
    }
    for _ in 0..SAVE_ATTEMPTS {
        if let Some(done) = already_proposed(&ticket)? {
            return Ok(done);
        }
        let diagnosis = diagnosis_of(&ticket)?;
        let since = history_since(&deps.policy, now);
        let history = store.history(&ticket.request, &ticket.id, since).await?;
        let proposal = propose(&ticket.request, diagnosis, &history, &deps.policy);
        let output = output(&ticket.id, &proposal)?;

        let mut change = Change::new(ticket.clone(), now, actor.clone());
        let event = if is_rejection(&proposal) {
            TicketEvent::Rejected {
                reason: rejection_codes(&proposal).join(","),
            }
        } else {
            TicketEvent::Proposed {
                options: output.options,
            }
        };
        change.record(event)?;
        change.ticket.proposal = Some(proposal);
        match ticket_change::save(store, &ticket, change).await {
            Ok(saved) => {
                tracing::info!(ticket_id = %saved.id, route = ?output.route, options = output.options, "proposed");
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

/// The diagnosis' own route when it wants evidence or a person before any proposal (the
/// workflow runs propose after every diagnosis, so that one Choice routes both).
fn nothing_to_propose(ticket: &Ticket) -> Option<ProposeRoute> {
    match ticket.status {
        TicketStatus::AwaitingEvidence => Some(ProposeRoute::RequestEvidence),
        TicketStatus::UnderReview => Some(ProposeRoute::Review),
        _ => None,
    }
}

fn diagnosis_of(ticket: &Ticket) -> Result<&Diagnosis, StepError> {
    if ticket.status != TicketStatus::Diagnosed {
        return Err(StepError::policy(format!(
            "ticket {} is {}; propose runs only on a diagnosed ticket",
            ticket.id, ticket.status
        )));
    }
    ticket
        .diagnosis
        .as_ref()
        .ok_or_else(|| StepError::policy(format!("ticket {} has no stored diagnosis", ticket.id)))
}

fn is_rejection(proposal: &Proposal) -> bool {
    proposal.options.len() == 1
        && proposal
            .options
            .first()
            .is_some_and(|o| o.kind == ResolutionKind::Reject)
}

fn output(id: &TicketId, proposal: &Proposal) -> Result<ProposeOutput, StepError> {
    let top = proposal
        .options
        .first()
        .ok_or_else(|| StepError::policy(format!("the proposal for ticket {id} has no option")))?;
    Ok(ProposeOutput {
        ticket_id: id.clone(),
        route: if is_rejection(proposal) {
            ProposeRoute::Rejected
        } else {
            ProposeRoute::AwaitDecision
        },
        options: u32::try_from(proposal.options.len()).unwrap_or(u32::MAX),
        top_option: Some(top.id.to_string()),
        top_kind: Some(top.kind),
    })
}

/// The rejection's reason codes (`outside_window`, `final_sale`, …), each once.
fn rejection_codes(proposal: &Proposal) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for option in &proposal.options {
        if let BasisReason::Rejected { reasons } = &option.basis.reason {
            for reason in reasons {
                let code = wire_code(&reason.reason);
                if !codes.contains(&code) {
                    codes.push(code);
                }
            }
        }
    }
    if codes.is_empty() {
        codes.push("not_eligible".to_owned());
    }
    codes
}

/// A re-run after the proposal was stored: the same answer, nothing recorded twice. A ticket
/// whose proposal was answered since (in progress, awaiting the return, resolved, closed) is a
/// run replayed from an earlier point (the local stack after a crash): the same answer too, and
/// the decision's wait then finds the answer on the ticket (`AlreadyAnswered`).
fn already_proposed(ticket: &Ticket) -> Result<Option<ProposeOutput>, StepError> {
    if let (
        TicketStatus::InProgress
        | TicketStatus::AwaitingReturn
        | TicketStatus::Resolved
        | TicketStatus::Closed,
        Some(proposal),
    ) = (ticket.status, &ticket.proposal)
    {
        return Ok(Some(output(&ticket.id, proposal)?));
    }
    match (ticket.status, &ticket.proposal) {
        (TicketStatus::Proposed | TicketStatus::Rejected, Some(proposal)) => {
            let recorded = if is_rejection(proposal) {
                TicketStatus::Rejected
            } else {
                TicketStatus::Proposed
            };
            if ticket.status == recorded {
                Ok(Some(output(&ticket.id, proposal)?))
            } else {
                Err(StepError::policy(format!(
                    "ticket {} is {}; propose runs only on a diagnosed ticket",
                    ticket.id, ticket.status
                )))
            }
        }
        _ => Ok(None),
    }
}
