//! Every message the workflow sends to a customer, and the values each one needs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A customer-facing message of the after-sales process. The wire name (`refund_issued`) keys
/// the templates and travels in webhook payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Milestone {
    /// The request was accepted: ticket id and the first-response promise.
    Acknowledged,
    EvidenceRequested,
    EvidenceReminder,
    /// A person is deciding the case.
    UnderReview,
    /// The options the customer may choose from.
    Proposal,
    DecisionReminder,
    RefundIssued,
    /// How to ship the item back and who pays for it.
    ReturnRequested,
    ReturnReceived,
    ExchangeArranged,
    RepairArranged,
    PartsSent,
    CouponIssued,
    PriceAdjusted,
    Resolved,
    Rejected,
    /// Closed because the customer did not answer in time.
    ClosedUnanswered,
    /// The satisfaction survey (answered by POST from the page the link opens).
    Survey,
    /// The apology after a low survey score.
    FollowUp,
}

/// A value a template may insert: `{ticket_id}`, `{amount}`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Placeholder {
    TicketId,
    /// The salutation line, with the customer's first name when known.
    Greeting,
    /// Money with its currency: `608.00 CNY`.
    Amount,
    /// A deadline or promised time, in the customer's locale style and time zone.
    Due,
    /// The proposal's options, one numbered line each.
    Options,
    /// Why a request was rejected, one line each.
    Reasons,
    /// A ticket-scoped link supplied by the caller (the survey page).
    Link,
    ReturnAddress,
    /// Who pays return shipping and how the label works.
    ReturnPostage,
    /// What an exchange for another variant changes: nothing, an amount due, or a refund.
    PriceDifference,
}

impl Placeholder {
    pub const ALL: &'static [Placeholder] = &[
        Placeholder::TicketId,
        Placeholder::Greeting,
        Placeholder::Amount,
        Placeholder::Due,
        Placeholder::Options,
        Placeholder::Reasons,
        Placeholder::Link,
        Placeholder::ReturnAddress,
        Placeholder::ReturnPostage,
        Placeholder::PriceDifference,
    ];

    /// The name written between braces in templates.
    pub const fn as_str(self) -> &'static str {
        match self {
            Placeholder::TicketId => "ticket_id",
            Placeholder::Greeting => "greeting",
            Placeholder::Amount => "amount",
            Placeholder::Due => "due",
            Placeholder::Options => "options",
            Placeholder::Reasons => "reasons",
            Placeholder::Link => "link",
            Placeholder::ReturnAddress => "return_address",
            Placeholder::ReturnPostage => "return_postage",
            Placeholder::PriceDifference => "price_difference",
        }
    }

    pub fn from_name(name: &str) -> Option<Placeholder> {
        Placeholder::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Milestone {
    /// Every milestone, in the order the process usually reaches them.
    pub const ALL: &'static [Milestone] = &[
        Milestone::Acknowledged,
        Milestone::EvidenceRequested,
        Milestone::EvidenceReminder,
        Milestone::UnderReview,
        Milestone::Proposal,
        Milestone::DecisionReminder,
        Milestone::RefundIssued,
        Milestone::ReturnRequested,
        Milestone::ReturnReceived,
        Milestone::ExchangeArranged,
        Milestone::RepairArranged,
        Milestone::PartsSent,
        Milestone::CouponIssued,
        Milestone::PriceAdjusted,
        Milestone::Resolved,
        Milestone::Rejected,
        Milestone::ClosedUnanswered,
        Milestone::Survey,
        Milestone::FollowUp,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Milestone::Acknowledged => "acknowledged",
            Milestone::EvidenceRequested => "evidence_requested",
            Milestone::EvidenceReminder => "evidence_reminder",
            Milestone::UnderReview => "under_review",
            Milestone::Proposal => "proposal",
            Milestone::DecisionReminder => "decision_reminder",
            Milestone::RefundIssued => "refund_issued",
            Milestone::ReturnRequested => "return_requested",
            Milestone::ReturnReceived => "return_received",
            Milestone::ExchangeArranged => "exchange_arranged",
            Milestone::RepairArranged => "repair_arranged",
            Milestone::PartsSent => "parts_sent",
            Milestone::CouponIssued => "coupon_issued",
            Milestone::PriceAdjusted => "price_adjusted",
            Milestone::Resolved => "resolved",
            Milestone::Rejected => "rejected",
            Milestone::ClosedUnanswered => "closed_unanswered",
            Milestone::Survey => "survey",
            Milestone::FollowUp => "follow_up",
        }
    }

    /// The values this milestone's templates use, each of which the caller must provide.
    /// Templates must use every one of them and nothing else (checked when a catalog loads).
    pub const fn placeholders(self) -> &'static [Placeholder] {
        use Placeholder::*;
        match self {
            Milestone::Acknowledged
            | Milestone::EvidenceRequested
            | Milestone::EvidenceReminder
            | Milestone::DecisionReminder => &[Greeting, TicketId, Due],
            Milestone::Proposal => &[Greeting, TicketId, Options, Due],
            Milestone::RefundIssued | Milestone::CouponIssued | Milestone::PriceAdjusted => {
                &[Greeting, TicketId, Amount]
            }
            Milestone::ReturnRequested => &[Greeting, TicketId, ReturnAddress, ReturnPostage, Due],
            Milestone::Rejected => &[Greeting, TicketId, Reasons],
            Milestone::Survey => &[Greeting, TicketId, Link],
            Milestone::ExchangeArranged => &[Greeting, TicketId, PriceDifference],
            Milestone::UnderReview
            | Milestone::ReturnReceived
            | Milestone::RepairArranged
            | Milestone::PartsSent
            | Milestone::Resolved
            | Milestone::ClosedUnanswered
            | Milestone::FollowUp => &[Greeting, TicketId],
        }
    }
}

impl fmt::Display for Milestone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown milestone name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown milestone '{0}'")]
pub struct UnknownMilestone(pub String);

impl FromStr for Milestone {
    type Err = UnknownMilestone;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Milestone::ALL
            .iter()
            .copied()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMilestone(s.to_owned()))
    }
}
