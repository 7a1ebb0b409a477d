//! The ticket: one after-sales case, from the accepted request to the closed survey.
//!
//! A ticket is plain data the store keeps. Its status moves only through [`Ticket::record`],
//! which applies the lifecycle rules and returns the audit event the store must append in the
//! same conditional write (`version` guards against lost updates).

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::diagnosis::Diagnosis;
use crate::ids::TicketId;
use crate::ids::{LineId, Sku};
use crate::kinds::{Disposition, ResolutionKind};
use crate::lifecycle::{Actor, AuditEvent, TicketEvent, TicketStatus, TransitionError, WaitKind};
use crate::money::Money;
use crate::proposal::Proposal;
use crate::request::ServiceRequest;

/// A Step Functions task token. Never shown to customers or written to logs.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskToken(String);

impl TaskToken {
    pub fn new(token: impl Into<String>) -> Option<TaskToken> {
        let token = token.into();
        (!token.is_empty()).then_some(TaskToken(token))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TaskToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskToken(<redacted>)")
    }
}

/// What the ticket waits for, and the token that resumes the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub kind: WaitKind,
    pub token: TaskToken,
    pub since: Timestamp,
}

/// The resolution chosen by the customer, an agent or the policy's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChosenResolution {
    /// The proposal option taken, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option_id: Option<String>,
    pub kind: ResolutionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    pub chosen_by: Actor,
    /// An exchange for another variant at its own price, when the chooser named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<ExchangeFor>,
}

/// The variant an exchange sends instead of the claimed one (another size or colour), as the
/// storefront priced it, and what that changes: fixed when the choice is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeFor {
    pub sku: Sku,
    pub unit_price: Money,
    /// For every unit the exchange covers: positive is charged to the customer, negative
    /// refunded (`proposal::exchange_price_difference`).
    pub price_difference: Money,
}

/// A returned line as the warehouse found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnedLine {
    pub line_id: LineId,
    pub quantity: u32,
    pub disposition: Disposition,
}

/// One refund of this ticket, as the payment gateway confirmed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRecord {
    /// Deterministic key derived from ticket + step: the gateway's idempotency key.
    pub idempotency_key: String,
    pub amount: Money,
    pub provider_refund_id: String,
    pub at: Timestamp,
}

/// The customer's satisfaction answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyResult {
    /// 1 to 5; absent when the survey went unanswered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    pub at: Timestamp,
}

/// Free text that came with an answer, and what it was about. It may carry personal data, so
/// it lives on the ticket only: never in the audit trail (which records the fact), the logs or
/// the departments' feedback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemarkText {
    /// The customer declined the proposal (`decline.reason`).
    DeclineReason { reason: String },
    /// The customer asked for another resolution (`counter`).
    Counter {
        resolution: ResolutionKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<Money>,
        note: String,
    },
    /// The survey answer's `comment`.
    SurveyComment { comment: String },
    /// An agent turned the request down (`reject.reason`).
    RejectReason { reason: String },
}

impl RemarkText {
    /// The wire name of what the text is about (`decline_reason`).
    pub const fn kind(&self) -> &'static str {
        match self {
            RemarkText::DeclineReason { .. } => "decline_reason",
            RemarkText::Counter { .. } => "counter",
            RemarkText::SurveyComment { .. } => "survey_comment",
            RemarkText::RejectReason { .. } => "reject_reason",
        }
    }

    /// The free text itself.
    pub fn text(&self) -> &str {
        match self {
            RemarkText::DeclineReason { reason } | RemarkText::RejectReason { reason } => reason,
            RemarkText::Counter { note, .. } => note,
            RemarkText::SurveyComment { comment } => comment,
        }
    }
}

/// A text answer kept for the person who handles the ticket: who wrote it, when, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remark {
    pub by: Actor,
    pub at: Timestamp,
    pub text: RemarkText,
}

/// An answer the ticket already took (`POST /responses`), kept so an identical repeat is
/// recognised and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedResponse {
    pub kind: WaitKind,
    /// SHA-256 (hex) of the canonical response body.
    pub fingerprint: String,
    pub at: Timestamp,
}

/// One after-sales case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub request: ServiceRequest,
    /// SHA-256 (hex) of the canonical request: the same `request_id` with another body is a conflict.
    pub request_fingerprint: String,
    pub received_at: Timestamp,
    pub first_response_due: Timestamp,
    pub resolution_due: Timestamp,
    pub status: TicketStatus,
    /// Sequence number of the last audit event.
    pub audit_seq: u32,
    /// Bumped by every stored change; the store's conditional write compares it.
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<Proposal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<ChosenResolution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub responses: Vec<RecordedResponse>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refunds: Vec<RefundRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub returned: Vec<ReturnedLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ResolutionKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<SurveyResult>,
    /// Text answers, oldest first (absent in records written before they were kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remarks: Vec<Remark>,
    /// The acknowledgement message is owed to the customer: `accept` sets it (it has no
    /// notification channels); the first `notify` sends the message, then clears it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acknowledgement_owed: bool,
}

impl Ticket {
    /// A new ticket for an accepted request, with its first audit event (`received`).
    pub fn open(
        id: TicketId,
        request: ServiceRequest,
        request_fingerprint: String,
        received_at: Timestamp,
        first_response_due: Timestamp,
        resolution_due: Timestamp,
    ) -> (Ticket, AuditEvent) {
        let first = AuditEvent {
            seq: 1,
            at: received_at,
            actor: Actor::Storefront,
            event: TicketEvent::Received {
                channel: request.channel,
            },
            status: TicketStatus::Received,
        };
        let ticket = Ticket {
            id,
            request,
            request_fingerprint,
            received_at,
            first_response_due,
            resolution_due,
            status: TicketStatus::Received,
            audit_seq: 1,
            version: 1,
            diagnosis: None,
            proposal: None,
            chosen: None,
            waiting: None,
            responses: Vec::new(),
            refunds: Vec::new(),
            returned: Vec::new(),
            resolution: None,
            survey: None,
            remarks: Vec::new(),
            acknowledgement_owed: false,
        };
        (ticket, first)
    }

    /// Apply `event` under the lifecycle rules. On success the status and audit sequence move
    /// and the audit event to append is returned; on refusal the ticket is unchanged.
    pub fn record(
        &mut self,
        at: Timestamp,
        actor: Actor,
        event: TicketEvent,
    ) -> Result<AuditEvent, TransitionError> {
        let status = self.status.after(&event)?;
        let seq = self.audit_seq.saturating_add(1);
        self.status = status;
        self.audit_seq = seq;
        Ok(AuditEvent {
            seq,
            at,
            actor,
            event,
            status,
        })
    }

    /// What the ticket waits for, if anything (the API's `waiting_for`).
    pub fn waiting_for(&self) -> Option<WaitKind> {
        self.waiting.as_ref().map(|w| w.kind)
    }

    /// Total refunded on this ticket so far.
    pub fn refunded(&self) -> Result<Money, crate::money::MoneyError> {
        Money::sum(
            self.request.order.currency,
            self.refunds.iter().map(|r| r.amount),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ServiceRequest {
        serde_json::from_value(serde_json::json!({
            "request_id": "evt_1", "channel": "app", "submitted_at": "2026-11-20T09:30:00Z",
            "customer": {"id": "C-1", "locale": "en"},
            "order": {"id": "O-1", "currency": "CNY", "placed_at": "2026-11-01T10:00:00Z",
                      "lines": [{"line_id": "L1", "sku": "KB-87", "title": "Keyboard",
                                 "category": "electronics", "quantity": 1, "unit_price": 29900}],
                      "payment": {"provider": "stripe", "reference": "pi_1", "paid": 29900}},
            "problem": {"kind": "quality_defect", "lines": [{"line_id": "L1", "quantity": 1}]}
        }))
        .unwrap()
    }

    fn open() -> Ticket {
        let at: Timestamp = "2026-11-20T09:30:01Z".parse().unwrap();
        Ticket::open(
            TicketId::generate(at, 7),
            request(),
            "f".repeat(64),
            at,
            at,
            at,
        )
        .0
    }

    #[test]
    fn recording_moves_status_and_sequence_together() {
        let mut ticket = open();
        let at = ticket.received_at;
        let entry = ticket
            .record(
                at,
                Actor::system("diagnose"),
                TicketEvent::EvidenceRequested,
            )
            .unwrap();
        assert_eq!(entry.seq, 2);
        assert_eq!(entry.status, TicketStatus::AwaitingEvidence);
        assert_eq!(ticket.status, TicketStatus::AwaitingEvidence);
        assert_eq!(ticket.audit_seq, 2);
    }

    #[test]
    fn a_refused_event_leaves_the_ticket_unchanged() {
        let mut ticket = open();
        let before = ticket.clone();
        assert!(
            ticket
                .record(ticket.received_at, Actor::Customer, TicketEvent::PartsSent)
                .is_err()
        );
        assert_eq!(ticket, before);
    }

    #[test]
    fn task_tokens_never_show_in_debug_output() {
        let token = TaskToken::new("AQCEAAAAKgAAAAMAAAAAAAAAAf-secret").unwrap();
        assert_eq!(format!("{token:?}"), "TaskToken(<redacted>)");
        assert!(TaskToken::new("").is_none());
    }

    fn remarks() -> Vec<Remark> {
        let at = "2026-11-21T10:00:00Z".parse().unwrap();
        let cny = "CNY".parse().unwrap();
        vec![
            Remark {
                by: Actor::Customer,
                at,
                text: RemarkText::Counter {
                    resolution: ResolutionKind::PriceAdjustment,
                    amount: Some(Money::new(5000, cny)),
                    note: "I would keep it for a partial refund".into(),
                },
            },
            Remark {
                by: Actor::Agent {
                    id: "agent-7".into(),
                },
                at,
                text: RemarkText::RejectReason {
                    reason: "Damage caused by misuse".into(),
                },
            },
        ]
    }

    #[test]
    fn remarks_round_trip_with_their_kind_as_tag() {
        let mut ticket = open();
        ticket.remarks = remarks();
        let json = serde_json::to_value(&ticket).unwrap();
        assert_eq!(json["remarks"][0]["text"]["kind"], "counter");
        assert_eq!(json["remarks"][0]["text"]["amount"]["minor"], 5000);
        assert_eq!(json["remarks"][1]["text"]["kind"], "reject_reason");
        assert_eq!(serde_json::from_value::<Ticket>(json).unwrap(), ticket);
    }

    #[test]
    fn a_record_written_before_remarks_were_kept_loads_without_them() {
        let ticket = open();
        let mut json = serde_json::to_value(&ticket).unwrap();
        assert!(json.get("remarks").is_none(), "no empty list is written");
        json.as_object_mut().unwrap().remove("remarks");
        assert!(
            serde_json::from_value::<Ticket>(json)
                .unwrap()
                .remarks
                .is_empty()
        );
    }

    #[test]
    fn every_remark_names_its_kind_and_gives_its_text() {
        let texts = [
            (
                RemarkText::DeclineReason {
                    reason: "too slow".into(),
                },
                "decline_reason",
                "too slow",
            ),
            (
                RemarkText::SurveyComment {
                    comment: "thanks".into(),
                },
                "survey_comment",
                "thanks",
            ),
            (
                remarks()[0].text.clone(),
                "counter",
                "I would keep it for a partial refund",
            ),
            (
                remarks()[1].text.clone(),
                "reject_reason",
                "Damage caused by misuse",
            ),
        ];
        for (remark, kind, text) in texts {
            assert_eq!((remark.kind(), remark.text()), (kind, text));
            assert_eq!(serde_json::to_value(&remark).unwrap()["kind"], kind);
        }
    }

    #[test]
    fn a_ticket_round_trips_through_json() {
        let ticket = open();
        let json = serde_json::to_string(&ticket).unwrap();
        assert_eq!(serde_json::from_str::<Ticket>(&json).unwrap(), ticket);
    }
}
