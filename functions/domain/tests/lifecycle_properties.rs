//! Property: the lifecycle accepts exactly the transitions of the documented table, and any
//! sequence it accepts is legal: replayable, gap-free and never leaving `closed`.

use aftersales_domain::lifecycle::{Actor, Lifecycle, TicketEvent, TicketStatus, WaitKind};
use aftersales_domain::{
    Channel, Currency, Department, Money, ProblemKind, ResolutionKind, Responsibility,
};
use proptest::prelude::*;

/// The transition table as written in docs/lifecycle.md: (from, event, to). Independent of the
/// implementation's `match`, so a change to either shows up here.
const TABLE: &[(&str, &str, &str)] = &[
    ("received", "diagnosed", "diagnosed"),
    ("received", "evidence_requested", "awaiting_evidence"),
    ("diagnosed", "evidence_requested", "awaiting_evidence"),
    ("awaiting_evidence", "evidence_received", "received"),
    ("received", "escalated_to_agent", "under_review"),
    ("diagnosed", "escalated_to_agent", "under_review"),
    ("proposed", "escalated_to_agent", "under_review"),
    ("in_progress", "escalated_to_agent", "under_review"),
    ("under_review", "escalated_to_supervisor", "under_review"),
    ("diagnosed", "proposed", "proposed"),
    ("under_review", "agent_decided:reject", "rejected"),
    ("under_review", "agent_decided:other", "in_progress"),
    ("proposed", "option_accepted", "in_progress"),
    ("proposed", "proposal_declined", "under_review"),
    ("proposed", "counter_offered", "under_review"),
    ("in_progress", "return_requested", "awaiting_return"),
    ("awaiting_return", "return_received", "in_progress"),
    ("in_progress", "refund_issued", "in_progress"),
    ("in_progress", "exchange_arranged", "in_progress"),
    ("in_progress", "repair_arranged", "in_progress"),
    ("in_progress", "parts_sent", "in_progress"),
    ("in_progress", "coupon_issued", "in_progress"),
    ("in_progress", "price_adjusted", "in_progress"),
    ("in_progress", "resolved", "resolved"),
    ("diagnosed", "rejected", "rejected"),
    ("resolved", "survey_answered", "closed"),
    ("rejected", "survey_answered", "closed"),
    ("resolved", "survey_unanswered", "closed"),
    ("rejected", "survey_unanswered", "closed"),
    ("awaiting_evidence", "closed_unanswered", "closed"),
    ("proposed", "closed_unanswered", "closed"),
    ("awaiting_return", "closed_unanswered", "closed"),
];

const NOTES: &[&str] = &[
    "notification_sent",
    "reminder_sent",
    "feedback_sent",
    "follow_up_requested",
];

fn table_key(event: &TicketEvent) -> String {
    match event {
        TicketEvent::AgentDecided { resolution } if *resolution == ResolutionKind::Reject => {
            "agent_decided:reject".to_owned()
        }
        TicketEvent::AgentDecided { .. } => "agent_decided:other".to_owned(),
        other => other.name().to_owned(),
    }
}

fn expected_next(from: TicketStatus, event: &TicketEvent) -> Option<&'static str> {
    if NOTES.contains(&event.name()) {
        return Some(from.as_str());
    }
    let key = table_key(event);
    TABLE
        .iter()
        .find(|(f, e, _)| *f == from.as_str() && *e == key)
        .map(|(_, _, to)| *to)
}

fn every_event() -> Vec<TicketEvent> {
    let cny: Currency = "CNY".parse().unwrap();
    vec![
        TicketEvent::Received {
            channel: Channel::App,
        },
        TicketEvent::Diagnosed {
            problem_kind: ProblemKind::QualityDefect,
            responsibility: Responsibility::Merchant,
            needs_evidence: true,
            needs_review: false,
        },
        TicketEvent::EvidenceRequested,
        TicketEvent::EvidenceReceived { items: 2 },
        TicketEvent::EscalatedToAgent {
            reason: "vip_complaint".into(),
        },
        TicketEvent::EscalatedToSupervisor,
        TicketEvent::AgentDecided {
            resolution: ResolutionKind::Reject,
        },
        TicketEvent::AgentDecided {
            resolution: ResolutionKind::Exchange,
        },
        TicketEvent::Proposed { options: 3 },
        TicketEvent::OptionAccepted {
            option_id: "opt-1".into(),
            kind: ResolutionKind::ReturnRefund,
            by_default: true,
        },
        TicketEvent::ProposalDeclined,
        TicketEvent::CounterOffered {
            kind: ResolutionKind::Refund,
        },
        TicketEvent::RefundIssued {
            amount: Money::new(100, cny),
            refund_id: "re_1".into(),
        },
        TicketEvent::ReturnRequested,
        TicketEvent::ReturnReceived {
            units: 1,
            all_restockable: true,
        },
        TicketEvent::ExchangeArranged,
        TicketEvent::RepairArranged,
        TicketEvent::PartsSent,
        TicketEvent::CouponIssued {
            value: Money::new(500, cny),
        },
        TicketEvent::PriceAdjusted {
            amount: Money::new(300, cny),
        },
        TicketEvent::Resolved {
            kind: ResolutionKind::Refund,
        },
        TicketEvent::Rejected {
            reason: "outside_window".into(),
        },
        TicketEvent::SurveyAnswered { score: 2 },
        TicketEvent::SurveyUnanswered,
        TicketEvent::ClosedUnanswered {
            waiting_for: WaitKind::Decision,
        },
        TicketEvent::NotificationSent {
            milestone: "proposal".into(),
        },
        TicketEvent::ReminderSent {
            waiting_for: WaitKind::Evidence,
        },
        TicketEvent::FeedbackSent {
            department: Department::Logistics,
        },
        TicketEvent::FollowUpRequested {
            reason: "low_csat".into(),
        },
    ]
}

#[test]
fn the_table_names_only_statuses_and_events_that_exist() {
    let statuses: Vec<&str> = TicketStatus::ALL.iter().map(|s| s.as_str()).collect();
    let events: Vec<String> = every_event().iter().map(table_key).collect();
    for (from, event, to) in TABLE {
        assert!(statuses.contains(from), "{from}");
        assert!(statuses.contains(to), "{to}");
        assert!(events.iter().any(|e| e == event), "{event}");
    }
}

#[test]
fn every_status_but_closed_is_reachable_and_left() {
    for status in TicketStatus::ALL {
        let entered = status == TicketStatus::Received
            || TABLE.iter().any(|(_, _, to)| *to == status.as_str());
        let left = TABLE
            .iter()
            .any(|(from, _, to)| *from == status.as_str() && *to != *from);
        assert!(entered, "{status} is never entered");
        assert_eq!(left, !status.is_terminal(), "{status}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_lifecycle_accepts_exactly_the_table(picks in proptest::collection::vec(0usize..29, 0..40)) {
        let events = every_event();
        let at: jiff::Timestamp = "2026-11-20T09:30:00Z".parse().unwrap();
        let mut life = Lifecycle::start(at, Actor::Storefront, Channel::Web);
        for i in picks {
            let event = events[i % events.len()].clone();
            let before = life.clone();
            let expected = expected_next(life.status(), &event);
            match life.record(at, Actor::system("prop"), event) {
                Ok(entry) => {
                    prop_assert_eq!(Some(entry.status.as_str()), expected);
                    prop_assert_eq!(entry.seq, before.last_seq() + 1);
                }
                Err(_) => {
                    prop_assert_eq!(expected, None);
                    prop_assert_eq!(&life, &before);
                }
            }
            if before.status().is_terminal() {
                prop_assert!(life.status().is_terminal());
            }
        }
        // Any accepted sequence is legal: it replays to the same lifecycle.
        let replayed = Lifecycle::replay(life.trail().to_vec()).unwrap();
        prop_assert_eq!(replayed, life);
    }
}
