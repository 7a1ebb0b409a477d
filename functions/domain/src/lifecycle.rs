//! The ticket's life: explicit states, the events that move it, and the append-only audit trail.
//!
//! Every change to a ticket is a [`TicketEvent`]. [`TicketStatus::after`] is the single place
//! that decides whether an event is allowed in a state and where it leads; [`Lifecycle`] applies
//! it and appends the [`AuditEvent`] (time, actor, event) or refuses both.

use std::fmt;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kinds::{Channel, Department, ProblemKind, ResolutionKind, Responsibility};
use crate::money::Money;

/// Where a ticket stands. `Closed` is the only terminal state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Accepted and acknowledged; the workflow has started.
    Received,
    /// Waiting for photos, video or documents from the customer.
    AwaitingEvidence,
    /// Classified and checked against policy; a proposal follows.
    Diagnosed,
    /// A person (agent, then supervisor) must decide.
    UnderReview,
    /// Options are with the customer, waiting for a decision.
    Proposed,
    /// A resolution was chosen and is being carried out (refund, exchange, repair, parts...).
    InProgress,
    /// Waiting for the customer's parcel to reach the warehouse.
    AwaitingReturn,
    /// The resolution has landed; the survey follows.
    Resolved,
    /// The request was turned down with reasons; the survey follows.
    Rejected,
    /// Nothing more will happen.
    Closed,
}

impl TicketStatus {
    pub const ALL: [TicketStatus; 10] = [
        TicketStatus::Received,
        TicketStatus::AwaitingEvidence,
        TicketStatus::Diagnosed,
        TicketStatus::UnderReview,
        TicketStatus::Proposed,
        TicketStatus::InProgress,
        TicketStatus::AwaitingReturn,
        TicketStatus::Resolved,
        TicketStatus::Rejected,
        TicketStatus::Closed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Received => "received",
            TicketStatus::AwaitingEvidence => "awaiting_evidence",
            TicketStatus::Diagnosed => "diagnosed",
            TicketStatus::UnderReview => "under_review",
            TicketStatus::Proposed => "proposed",
            TicketStatus::InProgress => "in_progress",
            TicketStatus::AwaitingReturn => "awaiting_return",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Rejected => "rejected",
            TicketStatus::Closed => "closed",
        }
    }

    pub const fn is_terminal(self) -> bool {
        matches!(self, TicketStatus::Closed)
    }

    /// Open tickets count against the resolution SLA.
    pub const fn is_open(self) -> bool {
        !matches!(
            self,
            TicketStatus::Resolved | TicketStatus::Rejected | TicketStatus::Closed
        )
    }

    /// The status after `event`, or why the event is not allowed now.
    pub fn after(self, event: &TicketEvent) -> Result<TicketStatus, TransitionError> {
        use TicketEvent as E;
        use TicketStatus as S;
        let refused = || {
            Err(TransitionError {
                from: self,
                event: event.name(),
            })
        };
        // Notes change nothing and are allowed whenever the ticket exists, closed or not.
        if event.is_note() {
            return Ok(self);
        }
        let next = match (self, event) {
            (S::Received, E::Diagnosed { .. }) => S::Diagnosed,
            (S::Received | S::Diagnosed, E::EvidenceRequested) => S::AwaitingEvidence,
            (S::AwaitingEvidence, E::EvidenceReceived { .. }) => S::Received,
            (
                S::Received | S::Diagnosed | S::Proposed | S::InProgress,
                E::EscalatedToAgent { .. },
            ) => S::UnderReview,
            (S::UnderReview, E::EscalatedToSupervisor) => S::UnderReview,
            (S::Diagnosed, E::Proposed { .. }) => S::Proposed,
            (S::UnderReview, E::AgentDecided { resolution, .. }) => {
                if *resolution == ResolutionKind::Reject {
                    S::Rejected
                } else {
                    S::InProgress
                }
            }
            (S::Proposed, E::OptionAccepted { .. }) => S::InProgress,
            (S::Proposed, E::ProposalDeclined | E::CounterOffered { .. }) => S::UnderReview,
            (S::InProgress, E::ReturnRequested) => S::AwaitingReturn,
            (S::AwaitingReturn, E::ReturnReceived { .. }) => S::InProgress,
            (
                S::InProgress,
                E::RefundIssued { .. }
                | E::ExchangeArranged
                | E::RepairArranged
                | E::PartsSent
                | E::CouponIssued { .. }
                | E::PriceAdjusted { .. },
            ) => S::InProgress,
            (S::InProgress, E::Resolved { .. }) => S::Resolved,
            (S::Diagnosed, E::Rejected { .. }) => S::Rejected,
            (S::Resolved | S::Rejected, E::SurveyAnswered { .. } | E::SurveyUnanswered) => {
                S::Closed
            }
            (S::AwaitingEvidence | S::Proposed | S::AwaitingReturn, E::ClosedUnanswered { .. }) => {
                S::Closed
            }
            _ => return refused(),
        };
        Ok(next)
    }
}

impl fmt::Display for TicketStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a ticket is waiting for (the API's `waiting_for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    Evidence,
    Decision,
    ReturnParcel,
    Survey,
    Agent,
}

impl WaitKind {
    pub const ALL: [WaitKind; 5] = [
        WaitKind::Evidence,
        WaitKind::Decision,
        WaitKind::ReturnParcel,
        WaitKind::Survey,
        WaitKind::Agent,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            WaitKind::Evidence => "evidence",
            WaitKind::Decision => "decision",
            WaitKind::ReturnParcel => "return_parcel",
            WaitKind::Survey => "survey",
            WaitKind::Agent => "agent",
        }
    }

    /// The only statuses in which a wait of this kind makes sense.
    pub fn fits(self, status: TicketStatus) -> bool {
        match self {
            WaitKind::Evidence => status == TicketStatus::AwaitingEvidence,
            WaitKind::Decision => status == TicketStatus::Proposed,
            WaitKind::ReturnParcel => status == TicketStatus::AwaitingReturn,
            WaitKind::Survey => matches!(status, TicketStatus::Resolved | TicketStatus::Rejected),
            WaitKind::Agent => status == TicketStatus::UnderReview,
        }
    }
}

impl fmt::Display for WaitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who caused an event. Agents are identified by their staff id, never by customer data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    Customer,
    Storefront,
    Warehouse,
    Agent {
        id: String,
    },
    /// One of our own steps (`diagnose`, `execute-refund`, ...).
    System {
        step: String,
    },
}

impl Actor {
    pub fn system(step: &str) -> Actor {
        Actor::System {
            step: step.to_owned(),
        }
    }

    /// A short label for timelines: `customer`, `agent:a-17`, `system:diagnose`.
    pub fn label(&self) -> String {
        match self {
            Actor::Customer => "customer".to_owned(),
            Actor::Storefront => "storefront".to_owned(),
            Actor::Warehouse => "warehouse".to_owned(),
            Actor::Agent { id } => format!("agent:{id}"),
            Actor::System { step } => format!("system:{step}"),
        }
    }
}

/// Everything that can happen to a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TicketEvent {
    /// The request was accepted (always the first event).
    Received {
        channel: Channel,
    },
    Diagnosed {
        problem_kind: ProblemKind,
        responsibility: Responsibility,
        needs_evidence: bool,
        needs_review: bool,
    },
    EvidenceRequested,
    EvidenceReceived {
        items: u32,
    },
    EscalatedToAgent {
        reason: String,
    },
    EscalatedToSupervisor,
    AgentDecided {
        resolution: ResolutionKind,
    },
    Proposed {
        options: u32,
    },
    OptionAccepted {
        option_id: String,
        kind: ResolutionKind,
        /// True when the decision deadline passed and the policy's default was applied.
        by_default: bool,
    },
    ProposalDeclined,
    CounterOffered {
        kind: ResolutionKind,
    },
    RefundIssued {
        amount: Money,
        refund_id: String,
    },
    ReturnRequested,
    ReturnReceived {
        units: u32,
        all_restockable: bool,
    },
    ExchangeArranged,
    RepairArranged,
    PartsSent,
    CouponIssued {
        value: Money,
    },
    PriceAdjusted {
        amount: Money,
    },
    Resolved {
        kind: ResolutionKind,
    },
    Rejected {
        reason: String,
    },
    SurveyAnswered {
        score: u8,
    },
    SurveyUnanswered,
    ClosedUnanswered {
        waiting_for: WaitKind,
    },
    // Notes: recorded for the timeline, they never change the status.
    NotificationSent {
        milestone: String,
    },
    ReminderSent {
        waiting_for: WaitKind,
    },
    FeedbackSent {
        department: Department,
    },
    FollowUpRequested {
        reason: String,
    },
}

impl TicketEvent {
    /// The wire name (`refund_issued`).
    pub fn name(&self) -> &'static str {
        match self {
            TicketEvent::Received { .. } => "received",
            TicketEvent::Diagnosed { .. } => "diagnosed",
            TicketEvent::EvidenceRequested => "evidence_requested",
            TicketEvent::EvidenceReceived { .. } => "evidence_received",
            TicketEvent::EscalatedToAgent { .. } => "escalated_to_agent",
            TicketEvent::EscalatedToSupervisor => "escalated_to_supervisor",
            TicketEvent::AgentDecided { .. } => "agent_decided",
            TicketEvent::Proposed { .. } => "proposed",
            TicketEvent::OptionAccepted { .. } => "option_accepted",
            TicketEvent::ProposalDeclined => "proposal_declined",
            TicketEvent::CounterOffered { .. } => "counter_offered",
            TicketEvent::RefundIssued { .. } => "refund_issued",
            TicketEvent::ReturnRequested => "return_requested",
            TicketEvent::ReturnReceived { .. } => "return_received",
            TicketEvent::ExchangeArranged => "exchange_arranged",
            TicketEvent::RepairArranged => "repair_arranged",
            TicketEvent::PartsSent => "parts_sent",
            TicketEvent::CouponIssued { .. } => "coupon_issued",
            TicketEvent::PriceAdjusted { .. } => "price_adjusted",
            TicketEvent::Resolved { .. } => "resolved",
            TicketEvent::Rejected { .. } => "rejected",
            TicketEvent::SurveyAnswered { .. } => "survey_answered",
            TicketEvent::SurveyUnanswered => "survey_unanswered",
            TicketEvent::ClosedUnanswered { .. } => "closed_unanswered",
            TicketEvent::NotificationSent { .. } => "notification_sent",
            TicketEvent::ReminderSent { .. } => "reminder_sent",
            TicketEvent::FeedbackSent { .. } => "feedback_sent",
            TicketEvent::FollowUpRequested { .. } => "follow_up_requested",
        }
    }

    /// Notes annotate the timeline without moving the ticket.
    pub fn is_note(&self) -> bool {
        matches!(
            self,
            TicketEvent::NotificationSent { .. }
                | TicketEvent::ReminderSent { .. }
                | TicketEvent::FeedbackSent { .. }
                | TicketEvent::FollowUpRequested { .. }
        )
    }
}

/// An event that is not allowed in the ticket's current status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{event}' is not allowed while the ticket is {from}")]
pub struct TransitionError {
    pub from: TicketStatus,
    pub event: &'static str,
}

/// One entry of a ticket's append-only audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditEvent {
    /// Position in the trail, from 1; the store uses it to refuse a second writer.
    pub seq: u32,
    #[schemars(with = "String")]
    pub at: Timestamp,
    pub actor: Actor,
    #[serde(flatten)]
    pub event: TicketEvent,
    /// Status after the event.
    pub status: TicketStatus,
}

/// A ticket's status together with the audit trail that produced it. The only way to change the
/// status is [`Lifecycle::record`], which appends exactly one audit event per accepted change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    status: TicketStatus,
    trail: Vec<AuditEvent>,
}

impl Lifecycle {
    /// A new ticket: its trail starts with `received`.
    pub fn start(at: Timestamp, actor: Actor, channel: Channel) -> Lifecycle {
        Lifecycle {
            status: TicketStatus::Received,
            trail: vec![AuditEvent {
                seq: 1,
                at,
                actor,
                event: TicketEvent::Received { channel },
                status: TicketStatus::Received,
            }],
        }
    }

    /// Rebuild from a stored trail, replaying every event: a trail that the model would not
    /// have produced is refused.
    pub fn replay(trail: Vec<AuditEvent>) -> Result<Lifecycle, ReplayError> {
        let mut iter = trail.iter();
        let Some(first) = iter.next() else {
            return Err(ReplayError::Empty);
        };
        if !matches!(first.event, TicketEvent::Received { .. }) || first.seq != 1 {
            return Err(ReplayError::DoesNotStartWithReceived);
        }
        let mut status = TicketStatus::Received;
        for (i, entry) in iter.enumerate() {
            let expected_seq = u32::try_from(i + 2).map_err(|_| ReplayError::TooLong)?;
            if entry.seq != expected_seq {
                return Err(ReplayError::Gap {
                    expected: expected_seq,
                    found: entry.seq,
                });
            }
            status = status.after(&entry.event).map_err(ReplayError::Illegal)?;
            if entry.status != status {
                return Err(ReplayError::StatusMismatch { seq: entry.seq });
            }
        }
        Ok(Lifecycle { status, trail })
    }

    pub fn status(&self) -> TicketStatus {
        self.status
    }

    pub fn trail(&self) -> &[AuditEvent] {
        &self.trail
    }

    pub fn last_seq(&self) -> u32 {
        self.trail.last().map_or(0, |e| e.seq)
    }

    /// Apply `event`: on success the status moves and exactly one audit event is appended;
    /// on refusal nothing changes.
    pub fn record(
        &mut self,
        at: Timestamp,
        actor: Actor,
        event: TicketEvent,
    ) -> Result<&AuditEvent, TransitionError> {
        let status = self.status.after(&event)?;
        let seq = self.last_seq().saturating_add(1);
        self.status = status;
        self.trail.push(AuditEvent {
            seq,
            at,
            actor,
            event,
            status,
        });
        Ok(self.trail.last().expect("just pushed"))
    }
}

/// A stored audit trail that cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("the audit trail is empty")]
    Empty,
    #[error("the audit trail does not start with 'received'")]
    DoesNotStartWithReceived,
    #[error("audit sequence gap: expected {expected}, found {found}")]
    Gap { expected: u32, found: u32 },
    #[error("audit event {seq} records a status the model does not reach")]
    StatusMismatch { seq: u32 },
    #[error("audit trail too long")]
    TooLong,
    #[error(transparent)]
    Illegal(TransitionError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn started() -> Lifecycle {
        Lifecycle::start(t("2026-11-20T09:30:00Z"), Actor::Storefront, Channel::Web)
    }

    fn diagnosed() -> TicketEvent {
        TicketEvent::Diagnosed {
            problem_kind: ProblemKind::DamagedInTransit,
            responsibility: Responsibility::Logistics,
            needs_evidence: false,
            needs_review: false,
        }
    }

    #[test]
    fn a_refund_without_return_runs_from_received_to_closed() {
        let mut life = started();
        let cny: Currency = "CNY".parse().unwrap();
        let at = t("2026-11-20T09:31:00Z");
        for event in [
            diagnosed(),
            TicketEvent::Proposed { options: 2 },
            TicketEvent::OptionAccepted {
                option_id: "opt-1".into(),
                kind: ResolutionKind::Refund,
                by_default: false,
            },
            TicketEvent::RefundIssued {
                amount: Money::new(29900, cny),
                refund_id: "re_1".into(),
            },
            TicketEvent::Resolved {
                kind: ResolutionKind::Refund,
            },
            TicketEvent::SurveyAnswered { score: 5 },
        ] {
            life.record(at, Actor::system("test"), event).unwrap();
        }
        assert_eq!(life.status(), TicketStatus::Closed);
        assert_eq!(life.trail().len(), 7);
        assert_eq!(life.last_seq(), 7);
    }

    #[test]
    fn a_refused_event_changes_nothing() {
        let mut life = started();
        let before = life.clone();
        let err = life
            .record(
                t("2026-11-20T09:31:00Z"),
                Actor::Customer,
                TicketEvent::Resolved {
                    kind: ResolutionKind::Refund,
                },
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "'resolved' is not allowed while the ticket is received"
        );
        assert_eq!(life, before);
    }

    #[test]
    fn notes_are_allowed_even_when_closed() {
        let mut life = started();
        let at = t("2026-11-20T09:31:00Z");
        life.record(at, Actor::system("t"), TicketEvent::EvidenceRequested)
            .unwrap();
        life.record(
            at,
            Actor::system("t"),
            TicketEvent::ClosedUnanswered {
                waiting_for: WaitKind::Evidence,
            },
        )
        .unwrap();
        assert!(life.status().is_terminal());
        life.record(
            at,
            Actor::system("survey"),
            TicketEvent::FeedbackSent {
                department: Department::Quality,
            },
        )
        .unwrap();
        assert_eq!(life.status(), TicketStatus::Closed);
        assert!(
            life.record(
                at,
                Actor::Customer,
                TicketEvent::EvidenceReceived { items: 1 }
            )
            .is_err()
        );
    }

    #[test]
    fn an_agent_rejection_leads_to_rejected_not_in_progress() {
        let mut life = started();
        let at = t("2026-11-20T09:31:00Z");
        life.record(
            at,
            Actor::system("t"),
            TicketEvent::EscalatedToAgent {
                reason: "amount_over_limit".into(),
            },
        )
        .unwrap();
        life.record(
            at,
            Actor::Agent { id: "a-17".into() },
            TicketEvent::AgentDecided {
                resolution: ResolutionKind::Reject,
            },
        )
        .unwrap();
        assert_eq!(life.status(), TicketStatus::Rejected);
    }

    #[test]
    fn replay_rebuilds_the_status_and_refuses_a_forged_trail() {
        let mut life = started();
        let at = t("2026-11-20T09:31:00Z");
        life.record(at, Actor::system("t"), diagnosed()).unwrap();
        life.record(at, Actor::system("t"), TicketEvent::Proposed { options: 1 })
            .unwrap();
        let replayed = Lifecycle::replay(life.trail().to_vec()).unwrap();
        assert_eq!(replayed, life);

        let mut forged = life.trail().to_vec();
        forged[2].event = TicketEvent::SurveyUnanswered;
        assert!(matches!(
            Lifecycle::replay(forged),
            Err(ReplayError::Illegal(_))
        ));
        let mut gap = life.trail().to_vec();
        gap.remove(1);
        assert_eq!(
            Lifecycle::replay(gap),
            Err(ReplayError::Gap {
                expected: 2,
                found: 3
            })
        );
    }

    #[test]
    fn audit_events_serialise_flat_with_the_event_name() {
        let life = started();
        let json = serde_json::to_value(&life.trail()[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "seq": 1,
                "at": "2026-11-20T09:30:00Z",
                "actor": {"kind": "storefront"},
                "event": "received",
                "channel": "web",
                "status": "received"
            })
        );
    }
}
