//! A person's answer as the waiting state receives it (the SendTaskSuccess output of `respond`,
//! `docs/workflow-contract.md`), rebuilt from the audit event that recorded it. The workflow
//! reads it when an answer arrived just as a wait's deadline fired: the reminder state finds
//! the ticket moved on, and the run goes on with the answer that was recorded.

use aftersales_domain::ResolutionKind;
use aftersales_domain::lifecycle::{AuditEvent, TicketEvent, WaitKind};
use serde::{Deserialize, Serialize};

/// Every key is written (`null` when it does not apply), so a `ResultSelector` can name the
/// ones its kind has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedAnswer {
    /// `evidence` | `decision` | `agent_decision` | `return_received` | `survey`.
    pub kind: String,
    /// Decisions: `accepted` | `declined` | `countered`; agent decisions: `option` | `reject`.
    pub outcome: Option<String>,
    pub option_id: Option<String>,
    pub resolution: Option<ResolutionKind>,
    pub all_restockable: Option<bool>,
    pub units: Option<u32>,
    pub items: Option<u32>,
    pub score: Option<u8>,
}

impl RecordedAnswer {
    fn new(kind: &str) -> RecordedAnswer {
        RecordedAnswer {
            kind: kind.to_owned(),
            outcome: None,
            option_id: None,
            resolution: None,
            all_restockable: None,
            units: None,
            items: None,
            score: None,
        }
    }

    fn outcome(mut self, outcome: &str) -> RecordedAnswer {
        self.outcome = Some(outcome.to_owned());
        self
    }

    /// The answer an event records, if it is one.
    pub fn of(event: &TicketEvent) -> Option<RecordedAnswer> {
        Some(match event {
            TicketEvent::EvidenceReceived { items } => RecordedAnswer {
                items: Some(*items),
                ..RecordedAnswer::new("evidence")
            },
            TicketEvent::OptionAccepted {
                option_id, kind, ..
            } => RecordedAnswer {
                option_id: Some(option_id.clone()),
                resolution: Some(*kind),
                ..RecordedAnswer::new("decision").outcome("accepted")
            },
            TicketEvent::ProposalDeclined => RecordedAnswer::new("decision").outcome("declined"),
            TicketEvent::CounterOffered { kind } => RecordedAnswer {
                resolution: Some(*kind),
                ..RecordedAnswer::new("decision").outcome("countered")
            },
            TicketEvent::AgentDecided { resolution } if *resolution == ResolutionKind::Reject => {
                RecordedAnswer::new("agent_decision").outcome("reject")
            }
            TicketEvent::AgentDecided { resolution } => RecordedAnswer {
                resolution: Some(*resolution),
                ..RecordedAnswer::new("agent_decision").outcome("option")
            },
            TicketEvent::ReturnReceived {
                units,
                all_restockable,
            } => RecordedAnswer {
                units: Some(*units),
                all_restockable: Some(*all_restockable),
                ..RecordedAnswer::new("return_received")
            },
            TicketEvent::SurveyAnswered { score } => RecordedAnswer {
                score: Some(*score),
                ..RecordedAnswer::new("survey")
            },
            _ => return None,
        })
    }
}

/// True when `event` answers a wait of `kind`.
fn answers(kind: WaitKind, event: &TicketEvent) -> bool {
    match event {
        TicketEvent::EvidenceReceived { .. } => kind == WaitKind::Evidence,
        TicketEvent::OptionAccepted { by_default, .. } => !by_default && kind == WaitKind::Decision,
        TicketEvent::ProposalDeclined | TicketEvent::CounterOffered { .. } => {
            kind == WaitKind::Decision
        }
        TicketEvent::AgentDecided { .. } => kind == WaitKind::Agent,
        TicketEvent::ReturnReceived { .. } => kind == WaitKind::ReturnParcel,
        TicketEvent::SurveyAnswered { .. } => kind == WaitKind::Survey,
        _ => false,
    }
}

/// Where the answer to the ticket's last wait of `kind` is in the trail, when one was recorded
/// and the ticket has not waited for that kind again since.
fn answered_at(trail: &[AuditEvent], kind: WaitKind) -> Option<usize> {
    let at = trail.iter().rposition(|e| answers(kind, &e.event))?;
    let waited_before = trail[..at].iter().any(|e| kind.fits(e.status));
    let waits_again = trail[at + 1..].iter().any(|e| kind.fits(e.status));
    (waited_before && !waits_again).then_some(at)
}

/// The answer to the ticket's last wait of `kind` (see [`answered_at`]).
pub fn answered_wait(trail: &[AuditEvent], kind: WaitKind) -> Option<RecordedAnswer> {
    answered_at(trail, kind).and_then(|at| RecordedAnswer::of(&trail[at].event))
}

/// The warehouse's receipt of the parcel the current decision asked for, when one is recorded:
/// no decision (the customer's or an agent's) came after it. Requesting the return again then
/// re-runs the step of a return that is already in, not a new return.
pub fn parcel_in_for_current_decision(trail: &[AuditEvent]) -> Option<RecordedAnswer> {
    let at = answered_at(trail, WaitKind::ReturnParcel)?;
    let decided_since = trail[at + 1..].iter().any(|e| {
        matches!(
            e.event,
            TicketEvent::OptionAccepted { .. } | TicketEvent::AgentDecided { .. }
        )
    });
    (!decided_since)
        .then(|| RecordedAnswer::of(&trail[at].event))
        .flatten()
}

/// Which of `kinds` the newest recorded answer is for (see [`answered_at`]).
pub fn last_answered_wait(trail: &[AuditEvent], kinds: &[WaitKind]) -> Option<WaitKind> {
    kinds
        .iter()
        .filter_map(|kind| answered_at(trail, *kind).map(|at| (at, *kind)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, kind)| kind)
}

/// The newest answer to any of `kinds` (a decision is the customer's or an agent's).
pub fn newest_answer(trail: &[AuditEvent], kinds: &[WaitKind]) -> Option<RecordedAnswer> {
    kinds
        .iter()
        .filter_map(|kind| answered_at(trail, *kind))
        .max()
        .and_then(|at| RecordedAnswer::of(&trail[at].event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aftersales_domain::lifecycle::{Actor, TicketStatus};
    use jiff::Timestamp;

    fn entry(seq: u32, event: TicketEvent, status: TicketStatus) -> AuditEvent {
        AuditEvent {
            seq,
            at: Timestamp::UNIX_EPOCH,
            actor: Actor::Customer,
            event,
            status,
        }
    }

    fn proposed_then(answer: TicketEvent, status: TicketStatus) -> Vec<AuditEvent> {
        vec![
            entry(
                1,
                TicketEvent::Proposed { options: 2 },
                TicketStatus::Proposed,
            ),
            entry(2, answer, status),
        ]
    }

    #[test]
    fn a_decision_recorded_after_the_wait_is_the_answer_respond_sent() {
        let trail = proposed_then(
            TicketEvent::OptionAccepted {
                option_id: "opt-3".into(),
                kind: ResolutionKind::Repair,
                by_default: false,
            },
            TicketStatus::InProgress,
        );
        let answer = answered_wait(&trail, WaitKind::Decision).expect("answered");
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({"kind": "decision", "outcome": "accepted", "option_id": "opt-3",
                "resolution": "repair", "all_restockable": null, "units": null, "items": null,
                "score": null})
        );
    }

    #[test]
    fn an_answer_to_an_earlier_wait_is_not_taken_again() {
        let mut trail = vec![entry(
            1,
            TicketEvent::EvidenceRequested,
            TicketStatus::AwaitingEvidence,
        )];
        trail.push(entry(
            2,
            TicketEvent::EvidenceReceived { items: 1 },
            TicketStatus::Received,
        ));
        trail.push(entry(
            3,
            TicketEvent::EvidenceRequested,
            TicketStatus::AwaitingEvidence,
        ));
        assert_eq!(answered_wait(&trail, WaitKind::Evidence), None);
        assert_eq!(answered_wait(&trail, WaitKind::Decision), None);
    }

    #[test]
    fn the_newest_of_a_decline_and_the_agents_decision_is_taken() {
        let mut trail = proposed_then(TicketEvent::ProposalDeclined, TicketStatus::UnderReview);
        trail.push(entry(
            3,
            TicketEvent::AgentDecided {
                resolution: ResolutionKind::Reject,
            },
            TicketStatus::Rejected,
        ));
        let answer = newest_answer(&trail, &[WaitKind::Decision, WaitKind::Agent]).unwrap();
        assert_eq!(
            (answer.kind.as_str(), answer.outcome.as_deref()),
            ("agent_decision", Some("reject"))
        );
    }

    #[test]
    fn a_parcel_counts_for_the_decision_that_asked_for_it_only() {
        let mut trail = vec![
            entry(
                1,
                TicketEvent::ReturnRequested,
                TicketStatus::AwaitingReturn,
            ),
            entry(
                2,
                TicketEvent::ReturnReceived {
                    units: 1,
                    all_restockable: false,
                },
                TicketStatus::InProgress,
            ),
            entry(
                3,
                TicketEvent::EscalatedToAgent {
                    reason: "damaged".into(),
                },
                TicketStatus::UnderReview,
            ),
        ];
        let parcel = parcel_in_for_current_decision(&trail).expect("the parcel is in");
        assert_eq!(parcel.units, Some(1));

        // the agent asks for another return: that one is not in yet
        trail.push(entry(
            4,
            TicketEvent::AgentDecided {
                resolution: ResolutionKind::ReturnRefund,
            },
            TicketStatus::InProgress,
        ));
        assert_eq!(parcel_in_for_current_decision(&trail), None);
    }
}
