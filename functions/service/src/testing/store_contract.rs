//! The store contract: behaviours every `TicketStore` + `RefundLedger` implementation keeps —
//! `MemoryStore`, `DynamoStore` (on moto) in `tests/store_contract.rs`, and the local stack's
//! durable store in `local/stack/tests/store.rs`. [`store_contract!`](crate::store_contract)
//! makes one test per behaviour for a store:
//!
//! ```ignore
//! aftersales_service::store_contract!(memory, std::sync::Arc::new(MemoryStore::new()));
//! // a store that needs something kept alive (a temporary directory) gives a pair:
//! aftersales_service::store_contract!(local, { let dir = tempdir(); (open(&dir), dir) });
//! ```

use std::sync::Arc;

use aftersales_domain::lifecycle::{Actor, AuditEvent, TicketEvent, TicketStatus, WaitKind};
use aftersales_domain::ticket::{
    ChosenResolution, RecordedResponse, RefundRecord, ReturnedLine, SurveyResult, TaskToken,
    Ticket, Waiting,
};
use aftersales_domain::{
    CustomerId, Disposition, LineId, Money, OrderId, Policy, ProblemKind, RequestId,
    ResolutionKind, Responsibility, ServiceRequest, TicketId, diagnose, propose,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::store::{
    Created, LedgerEntry, RefundIntent, RefundLedger, Reservation, StoreError, StoredReceipt,
    TicketStore,
};

/// What every store is.
pub trait Store: TicketStore + RefundLedger + 'static {}
impl<S: TicketStore + RefundLedger + 'static> Store for S {}

/// What a contract test is given: the store, and whatever must live as long as it.
pub trait Subject {
    type Store: Store;
    fn split(self) -> (Arc<Self::Store>, Box<dyn std::any::Any + Send>);
}

impl<S: Store> Subject for Arc<S> {
    type Store = S;
    fn split(self) -> (Arc<S>, Box<dyn std::any::Any + Send>) {
        (self, Box::new(()))
    }
}

impl<S: Store, G: Send + 'static> Subject for (Arc<S>, G) {
    type Store = S;
    fn split(self) -> (Arc<S>, Box<dyn std::any::Any + Send>) {
        (self.0, Box::new(self.1))
    }
}

/// `store_contract!(module, store)`: a module of `#[tokio::test]`s, one per behaviour, each on
/// a fresh `store` (an expression evaluated in the async test: `Arc<S>` or `(Arc<S>, guard)`).
/// The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! store_contract {
    ($module:ident, $store:expr) => {
        $crate::store_contract!(@module $module, $store, [
            created_ticket_reads_back_with_its_first_audit_event,
            second_create_for_a_request_id_returns_the_first_ticket_unchanged,
            fifty_concurrent_creates_for_one_request_id_make_exactly_one_ticket,
            find_by_request_returns_the_ticket_or_nothing,
            a_ticket_with_every_part_filled_round_trips,
            save_with_the_current_version_replaces_the_ticket_and_appends_its_audit_events,
            save_with_a_stale_version_conflicts_and_writes_nothing,
            concurrent_saves_from_one_version_let_exactly_one_win,
            save_of_an_unknown_ticket_is_not_found,
            save_that_does_not_bump_the_version_by_one_is_refused,
            audit_trail_comes_back_in_sequence_order,
            audit_trail_is_append_only_a_reused_seq_conflicts_and_nothing_changes,
            tickets_by_customer_are_newest_first_and_limited,
            open_tickets_due_before_leave_out_resolved_rejected_and_closed_in_due_order,
            a_ticket_leaves_the_open_list_when_it_resolves_and_returns_when_reopened,
            history_counts_previous_tickets_and_the_customers_refunds_since,
            history_sums_the_orders_refunds_per_line_and_lists_open_claims_on_the_same_lines,
            reserve_then_complete_records_the_receipt,
            repeated_reserve_answers_already_reserved_then_already_completed,
            complete_is_idempotent_for_the_same_receipt_and_refuses_another,
            complete_or_release_of_an_unknown_key_is_not_found,
            reservation_above_what_is_left_is_refused_with_the_available_amount,
            release_frees_the_amount_and_the_key_can_be_reserved_again,
            completed_refund_cannot_be_released,
            twenty_concurrent_partial_refunds_never_exceed_what_was_paid,
            refund_in_another_currency_is_refused,
        ]);
    };
    (@module $module:ident, $store:expr, [$($behaviour:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $behaviour() {
                    let (store, _keep) = $crate::testing::store_contract::Subject::split($store);
                    $crate::testing::store_contract::$behaviour(store).await;
                }
            )*
        }
    };
}

/// The behaviours, by name.
pub const BEHAVIOURS: &[&str] = &[
    "created_ticket_reads_back_with_its_first_audit_event",
    "second_create_for_a_request_id_returns_the_first_ticket_unchanged",
    "fifty_concurrent_creates_for_one_request_id_make_exactly_one_ticket",
    "find_by_request_returns_the_ticket_or_nothing",
    "a_ticket_with_every_part_filled_round_trips",
    "save_with_the_current_version_replaces_the_ticket_and_appends_its_audit_events",
    "save_with_a_stale_version_conflicts_and_writes_nothing",
    "concurrent_saves_from_one_version_let_exactly_one_win",
    "save_of_an_unknown_ticket_is_not_found",
    "save_that_does_not_bump_the_version_by_one_is_refused",
    "audit_trail_comes_back_in_sequence_order",
    "audit_trail_is_append_only_a_reused_seq_conflicts_and_nothing_changes",
    "tickets_by_customer_are_newest_first_and_limited",
    "open_tickets_due_before_leave_out_resolved_rejected_and_closed_in_due_order",
    "a_ticket_leaves_the_open_list_when_it_resolves_and_returns_when_reopened",
    "history_counts_previous_tickets_and_the_customers_refunds_since",
    "history_sums_the_orders_refunds_per_line_and_lists_open_claims_on_the_same_lines",
    "reserve_then_complete_records_the_receipt",
    "repeated_reserve_answers_already_reserved_then_already_completed",
    "complete_is_idempotent_for_the_same_receipt_and_refuses_another",
    "complete_or_release_of_an_unknown_key_is_not_found",
    "reservation_above_what_is_left_is_refused_with_the_available_amount",
    "release_frees_the_amount_and_the_key_can_be_reserved_again",
    "completed_refund_cannot_be_released",
    "twenty_concurrent_partial_refunds_never_exceed_what_was_paid",
    "refund_in_another_currency_is_refused",
];

// ---------------------------------------------------------------------------------------------
// Fixtures

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn base() -> Timestamp {
    at("2026-11-20T09:30:00Z")
}

fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn cny(minor: i64) -> Money {
    Money::new(minor, "CNY".parse().unwrap())
}

fn line(id: &str) -> LineId {
    LineId::new(id).unwrap()
}

/// A request for `order` by `customer`, claiming `claims` (line, units) of a three-line order.
fn request(
    request_id: &str,
    customer: &str,
    order: &str,
    claims: &[(&str, u32)],
) -> ServiceRequest {
    let lines: Vec<_> = claims
        .iter()
        .map(|(line, units)| json!({"line_id": line, "quantity": units}))
        .collect();
    serde_json::from_value(json!({
        "request_id": request_id, "channel": "app", "submitted_at": "2026-11-20T09:29:00Z",
        "customer": {"id": customer, "locale": "en", "email": "someone@example.com"},
        "order": {"id": order, "currency": "CNY", "placed_at": "2026-11-01T10:00:00Z",
                  "delivered_at": "2026-11-05T10:00:00Z",
                  "lines": [
                      {"line_id": "L1", "sku": "KB-87", "title": "Keyboard",
                       "category": "electronics", "quantity": 3, "unit_price": 29900},
                      {"line_id": "L2", "sku": "MS-1", "title": "Mouse",
                       "category": "electronics", "quantity": 2, "unit_price": 9900},
                      {"line_id": "L3", "sku": "PAD-1", "title": "Pad",
                       "category": "electronics", "quantity": 1, "unit_price": 1900}],
                  "payment": {"provider": "stripe", "reference": "pi_1", "paid": 111500}},
        "problem": {"kind": "quality_defect", "description": "keys stick",
                    "lines": lines}
    }))
    .unwrap()
}

/// A new ticket (version 1, seq 1) received at `received`, due 48 hours later.
fn open_ticket(n: u128, request: ServiceRequest, received: Timestamp) -> (Ticket, AuditEvent) {
    Ticket::open(
        TicketId::generate(received, n),
        request,
        "f".repeat(64),
        received,
        received + minutes(60),
        received + SignedDuration::from_hours(48),
    )
}

fn simple_ticket(n: u128, request_id: &str) -> (Ticket, AuditEvent) {
    open_ticket(n, request(request_id, "C-1", "O-1", &[("L1", 1)]), base())
}

/// Applies `event` as the next change: status, audit seq and version move together.
fn change(ticket: &mut Ticket, event: TicketEvent) -> AuditEvent {
    let entry = ticket
        .record(
            ticket.received_at + minutes(i64::from(ticket.audit_seq)),
            Actor::system("test"),
            event,
        )
        .unwrap();
    ticket.version += 1;
    entry
}

fn diagnosed() -> TicketEvent {
    TicketEvent::Diagnosed {
        problem_kind: ProblemKind::QualityDefect,
        responsibility: Responsibility::Merchant,
        needs_evidence: false,
        needs_review: false,
    }
}

/// Events that take a received ticket to `status`.
fn events_to(status: TicketStatus) -> Vec<TicketEvent> {
    let accepted = vec![
        diagnosed(),
        TicketEvent::Proposed { options: 2 },
        TicketEvent::OptionAccepted {
            option_id: "opt-1".into(),
            kind: ResolutionKind::Refund,
            by_default: false,
        },
    ];
    match status {
        TicketStatus::Received => vec![],
        TicketStatus::AwaitingEvidence => vec![TicketEvent::EvidenceRequested],
        TicketStatus::InProgress => accepted,
        TicketStatus::Resolved => {
            let mut events = accepted;
            events.push(TicketEvent::Resolved {
                kind: ResolutionKind::Refund,
            });
            events
        }
        TicketStatus::Rejected => vec![
            diagnosed(),
            TicketEvent::Rejected {
                reason: "final sale".into(),
            },
        ],
        TicketStatus::Closed => vec![
            diagnosed(),
            TicketEvent::Rejected {
                reason: "final sale".into(),
            },
            TicketEvent::SurveyUnanswered,
        ],
        other => panic!("no fixture path to {other}"),
    }
}

/// Creates the ticket, then saves it once per event until it reaches `status`.
async fn store_in_status<S: Store>(
    store: &S,
    mut ticket: Ticket,
    first: AuditEvent,
    status: TicketStatus,
) -> Ticket {
    assert_eq!(store.create(&ticket, &first).await.unwrap(), Created::New);
    for event in events_to(status) {
        let expected = ticket.version;
        let entry = change(&mut ticket, event);
        store.save(&ticket, expected, &[entry]).await.unwrap();
    }
    assert_eq!(ticket.status, status);
    ticket
}

fn intent(
    key: &str,
    order: &str,
    customer: &str,
    minor: i64,
    lines: &[(&str, u32)],
    when: Timestamp,
) -> RefundIntent {
    RefundIntent {
        idempotency_key: key.to_owned(),
        ticket_id: TicketId::generate(when, 99),
        order_id: OrderId::new(order).unwrap(),
        customer_id: CustomerId::new(customer).unwrap(),
        amount: cny(minor),
        lines: lines.iter().map(|(l, q)| (line(l), *q)).collect(),
        at: when,
    }
}

fn receipt(id: &str, minor: i64) -> StoredReceipt {
    StoredReceipt {
        provider_refund_id: id.to_owned(),
        amount: cny(minor),
        at: base() + minutes(5),
    }
}

fn trail_seqs(trail: &[AuditEvent]) -> Vec<u32> {
    trail.iter().map(|e| e.seq).collect()
}

// ---------------------------------------------------------------------------------------------
// Tickets

pub async fn created_ticket_reads_back_with_its_first_audit_event<S: Store>(store: Arc<S>) {
    let (ticket, first) = simple_ticket(1, "evt-1");

    let created = store.create(&ticket, &first).await.unwrap();

    assert_eq!(created, Created::New);
    assert_eq!(store.get(&ticket.id).await.unwrap(), Some(ticket.clone()));
    assert_eq!(store.audit_trail(&ticket.id).await.unwrap(), vec![first]);
    let unknown = TicketId::generate(base(), 12345);
    assert_eq!(store.get(&unknown).await.unwrap(), None);
    assert_eq!(store.audit_trail(&unknown).await.unwrap(), vec![]);
}

pub async fn second_create_for_a_request_id_returns_the_first_ticket_unchanged<S: Store>(
    store: Arc<S>,
) {
    let (first_ticket, first_event) = simple_ticket(1, "evt-dup");
    let (retry_ticket, retry_event) = simple_ticket(2, "evt-dup");
    store.create(&first_ticket, &first_event).await.unwrap();

    let again = store.create(&retry_ticket, &retry_event).await.unwrap();

    assert_eq!(again, Created::Existing(Box::new(first_ticket.clone())));
    assert_eq!(store.get(&retry_ticket.id).await.unwrap(), None);
    assert_eq!(
        store.audit_trail(&first_ticket.id).await.unwrap(),
        vec![first_event]
    );
}

pub async fn fifty_concurrent_creates_for_one_request_id_make_exactly_one_ticket<S: Store>(
    store: Arc<S>,
) {
    let attempts: Vec<_> = (0..50u128)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let (ticket, first) = simple_ticket(1000 + n, "evt-storm");
                let created = store.create(&ticket, &first).await.unwrap();
                (ticket.id, created)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut existing = Vec::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            (id, Created::New) => winners.push(id),
            (_, Created::Existing(ticket)) => existing.push(ticket.id),
        }
    }

    assert_eq!(winners.len(), 1, "exactly one create stores a ticket");
    assert_eq!(existing.len(), 49);
    assert!(
        existing.iter().all(|id| *id == winners[0]),
        "every caller gets the one ticket"
    );
    let found = store
        .find_by_request(&RequestId::new("evt-storm").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, winners[0]);
    assert_eq!(
        trail_seqs(&store.audit_trail(&found.id).await.unwrap()),
        vec![1]
    );
}

pub async fn find_by_request_returns_the_ticket_or_nothing<S: Store>(store: Arc<S>) {
    let (ticket, first) = simple_ticket(1, "evt-find");
    store.create(&ticket, &first).await.unwrap();

    let found = store
        .find_by_request(&RequestId::new("evt-find").unwrap())
        .await
        .unwrap();
    let missing = store
        .find_by_request(&RequestId::new("evt-other").unwrap())
        .await
        .unwrap();

    assert_eq!(found, Some(ticket));
    assert_eq!(missing, None);
}

pub async fn a_ticket_with_every_part_filled_round_trips<S: Store>(store: Arc<S>) {
    let (mut ticket, first) = simple_ticket(1, "evt-full");
    store.create(&ticket, &first).await.unwrap();
    let policy = Policy::default_policy();
    let history = store
        .history(&ticket.request, &ticket.id, base())
        .await
        .unwrap();
    let diagnosis = diagnose(&ticket.request, &history, &policy, base());
    ticket.proposal = Some(propose(&ticket.request, &diagnosis, &history, &policy));
    ticket.diagnosis = Some(diagnosis);
    ticket.chosen = Some(ChosenResolution {
        option_id: Some("opt-1".into()),
        kind: ResolutionKind::ReturnRefund,
        amount: Some(cny(29900)),
        chosen_by: Actor::Agent { id: "a-17".into() },
        exchange: None,
    });
    ticket.waiting = Some(Waiting {
        kind: WaitKind::ReturnParcel,
        token: TaskToken::new("AQCEAAAAKgAAAAMAAAAAAAAAAf-token").unwrap(),
        since: base() + minutes(3),
    });
    ticket.responses = vec![RecordedResponse {
        kind: WaitKind::Decision,
        fingerprint: "a".repeat(64),
        at: base() + minutes(2),
    }];
    ticket.refunds = vec![RefundRecord {
        idempotency_key: format!("{}:refund", ticket.id),
        amount: cny(29900),
        provider_refund_id: "re_1".into(),
        at: base() + minutes(4),
    }];
    ticket.returned = vec![ReturnedLine {
        line_id: line("L1"),
        quantity: 1,
        disposition: Disposition::Restock,
    }];
    ticket.resolution = Some(ResolutionKind::ReturnRefund);
    ticket.survey = Some(SurveyResult {
        score: Some(4),
        at: base() + minutes(9),
    });
    let events = [
        change(&mut ticket, diagnosed()),
        change(&mut ticket, TicketEvent::Proposed { options: 3 }),
        change(
            &mut ticket,
            TicketEvent::OptionAccepted {
                option_id: "opt-1".into(),
                kind: ResolutionKind::ReturnRefund,
                by_default: false,
            },
        ),
        change(
            &mut ticket,
            TicketEvent::RefundIssued {
                amount: cny(29900),
                refund_id: "re_1".into(),
            },
        ),
        change(
            &mut ticket,
            TicketEvent::NotificationSent {
                milestone: "refunded".into(),
            },
        ),
    ];
    ticket.version = 2;

    store.save(&ticket, 1, &events).await.unwrap();

    assert_eq!(store.get(&ticket.id).await.unwrap(), Some(ticket.clone()));
    let mut trail = vec![first];
    trail.extend(events);
    assert_eq!(store.audit_trail(&ticket.id).await.unwrap(), trail);
}

pub async fn save_with_the_current_version_replaces_the_ticket_and_appends_its_audit_events<
    S: Store,
>(
    store: Arc<S>,
) {
    let (mut ticket, first) = simple_ticket(1, "evt-save");
    store.create(&ticket, &first).await.unwrap();
    let diagnosed_event = change(&mut ticket, diagnosed());
    let evidence = change(&mut ticket, TicketEvent::EvidenceRequested);
    ticket.version = 2;

    store
        .save(&ticket, 1, &[diagnosed_event.clone(), evidence.clone()])
        .await
        .unwrap();

    let stored = store.get(&ticket.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.status, TicketStatus::AwaitingEvidence);
    assert_eq!(
        store.audit_trail(&ticket.id).await.unwrap(),
        vec![first, diagnosed_event, evidence]
    );
}

pub async fn save_with_a_stale_version_conflicts_and_writes_nothing<S: Store>(store: Arc<S>) {
    let (ticket, first) = simple_ticket(1, "evt-stale");
    store.create(&ticket, &first).await.unwrap();
    let mut current = ticket.clone();
    let entry = change(&mut current, diagnosed());
    store.save(&current, 1, &[entry]).await.unwrap();
    let before = store.audit_trail(&ticket.id).await.unwrap();

    // A second writer still holding version 1.
    let mut stale = ticket.clone();
    let late = change(&mut stale, TicketEvent::EvidenceRequested);
    let refused = store.save(&stale, 1, &[late]).await;

    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.get(&ticket.id).await.unwrap(), Some(current));
    assert_eq!(store.audit_trail(&ticket.id).await.unwrap(), before);
}

pub async fn concurrent_saves_from_one_version_let_exactly_one_win<S: Store>(store: Arc<S>) {
    let (ticket, first) = simple_ticket(1, "evt-race");
    store.create(&ticket, &first).await.unwrap();

    let writers: Vec<_> = (0..10)
        .map(|n| {
            let store = Arc::clone(&store);
            let mut mine = ticket.clone();
            tokio::spawn(async move {
                let note = change(
                    &mut mine,
                    TicketEvent::FollowUpRequested {
                        reason: format!("writer {n}"),
                    },
                );
                let saved = store.save(&mine, 1, std::slice::from_ref(&note)).await;
                (saved, mine, note)
            })
        })
        .collect();
    let mut won = Vec::new();
    for writer in writers {
        match writer.await.unwrap() {
            (Ok(()), mine, note) => won.push((mine, note)),
            (Err(StoreError::Conflict(_)), _, _) => {}
            (Err(other), _, _) => panic!("unexpected {other:?}"),
        }
    }

    assert_eq!(won.len(), 1, "exactly one save from version 1 wins");
    let (winner, note) = &won[0];
    assert_eq!(store.get(&ticket.id).await.unwrap().as_ref(), Some(winner));
    assert_eq!(
        store.audit_trail(&ticket.id).await.unwrap(),
        vec![first, note.clone()],
        "the trail holds the winner's event only"
    );
}

pub async fn save_of_an_unknown_ticket_is_not_found<S: Store>(store: Arc<S>) {
    let (mut ticket, _) = simple_ticket(1, "evt-ghost");
    let entry = change(&mut ticket, diagnosed());

    let refused = store.save(&ticket, 1, &[entry]).await;

    assert!(
        matches!(refused, Err(StoreError::NotFound(_))),
        "{refused:?}"
    );
    assert_eq!(store.audit_trail(&ticket.id).await.unwrap(), vec![]);
}

pub async fn save_that_does_not_bump_the_version_by_one_is_refused<S: Store>(store: Arc<S>) {
    let (mut ticket, first) = simple_ticket(1, "evt-bump");
    store.create(&ticket, &first).await.unwrap();
    let entry = ticket
        .record(base(), Actor::system("test"), diagnosed())
        .unwrap();

    let refused = store.save(&ticket, 1, &[entry]).await;

    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "{refused:?}"
    );
    assert_eq!(store.audit_trail(&ticket.id).await.unwrap(), vec![first]);
}

pub async fn audit_trail_comes_back_in_sequence_order<S: Store>(store: Arc<S>) {
    let (mut ticket, first) = simple_ticket(1, "evt-order");
    store.create(&ticket, &first).await.unwrap();
    // Twelve events, so seq 10 and above must sort after 9 (zero-padded sort keys).
    for n in 0..11 {
        let expected = ticket.version;
        let note = change(
            &mut ticket,
            TicketEvent::ReminderSent {
                waiting_for: if n % 2 == 0 {
                    WaitKind::Decision
                } else {
                    WaitKind::Survey
                },
            },
        );
        store.save(&ticket, expected, &[note]).await.unwrap();
    }

    let trail = store.audit_trail(&ticket.id).await.unwrap();

    assert_eq!(trail_seqs(&trail), (1..=12).collect::<Vec<u32>>());
    assert_eq!(trail[0], first);
}

pub async fn audit_trail_is_append_only_a_reused_seq_conflicts_and_nothing_changes<S: Store>(
    store: Arc<S>,
) {
    let (mut ticket, first) = simple_ticket(1, "evt-append");
    store.create(&ticket, &first).await.unwrap();
    let entry = change(&mut ticket, diagnosed());
    store.save(&ticket, 1, &[entry]).await.unwrap();
    let before_ticket = store.get(&ticket.id).await.unwrap();
    let before_trail = store.audit_trail(&ticket.id).await.unwrap();

    // The right version, but an audit event that rewrites seq 2.
    let mut next = ticket.clone();
    next.version = 3;
    let forged = AuditEvent {
        seq: 2,
        at: base(),
        actor: Actor::Customer,
        event: TicketEvent::EvidenceRequested,
        status: TicketStatus::AwaitingEvidence,
    };
    let refused = store.save(&next, 2, &[forged]).await;

    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.get(&ticket.id).await.unwrap(), before_ticket);
    assert_eq!(store.audit_trail(&ticket.id).await.unwrap(), before_trail);
}

pub async fn tickets_by_customer_are_newest_first_and_limited<S: Store>(store: Arc<S>) {
    let mut ids = Vec::new();
    // Received out of order, at times whose text forms do not sort like the times do.
    for (n, offset_ms) in [(1u128, 500i64), (2, 0), (3, 1_000), (4, 1_250), (5, 30)] {
        let received = base() + SignedDuration::from_millis(offset_ms);
        let (ticket, first) = open_ticket(
            n,
            request(&format!("evt-c{n}"), "C-9", "O-9", &[("L1", 1)]),
            received,
        );
        store.create(&ticket, &first).await.unwrap();
        ids.push((received, ticket.id));
    }
    let (other, first) = open_ticket(9, request("evt-other", "C-10", "O-9", &[("L1", 1)]), base());
    store.create(&other, &first).await.unwrap();
    ids.sort();
    let newest_first: Vec<TicketId> = ids.into_iter().rev().map(|(_, id)| id).collect();

    let customer = CustomerId::new("C-9").unwrap();
    let all = store.tickets_by_customer(&customer, 10).await.unwrap();
    let two = store.tickets_by_customer(&customer, 2).await.unwrap();
    let none = store.tickets_by_customer(&customer, 0).await.unwrap();

    assert_eq!(
        all.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        newest_first
    );
    assert!(
        all.iter()
            .all(|t| t.customer_id == customer && t.order_id.as_str() == "O-9")
    );
    assert_eq!(
        two.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        newest_first[..2]
    );
    assert!(none.is_empty());
}

pub async fn open_tickets_due_before_leave_out_resolved_rejected_and_closed_in_due_order<
    S: Store,
>(
    store: Arc<S>,
) {
    let statuses = [
        TicketStatus::Received,
        TicketStatus::Resolved,
        TicketStatus::AwaitingEvidence,
        TicketStatus::Rejected,
        TicketStatus::InProgress,
        TicketStatus::Closed,
    ];
    let mut open = Vec::new();
    for (n, status) in statuses.into_iter().enumerate() {
        // Later tickets are due earlier, so due order is not creation order.
        let received = base() - minutes(i64::try_from(n).unwrap() * 10);
        let (ticket, first) = open_ticket(
            n as u128,
            request(
                &format!("evt-open-{n}"),
                "C-1",
                &format!("O-{n}"),
                &[("L1", 1)],
            ),
            received,
        );
        let ticket = store_in_status(&*store, ticket, first, status).await;
        if status.is_open() {
            open.push((ticket.resolution_due, ticket.id.clone()));
        }
    }
    // One open ticket due well after the cut-off.
    let (late, first) = open_ticket(
        50,
        request("evt-open-late", "C-1", "O-50", &[("L1", 1)]),
        base() + SignedDuration::from_hours(100),
    );
    store.create(&late, &first).await.unwrap();
    open.sort();
    let due_order: Vec<TicketId> = open.into_iter().map(|(_, id)| id).collect();
    let cutoff = base() + SignedDuration::from_hours(49);

    let due = store.open_tickets_due_before(cutoff, 10).await.unwrap();
    let first_two = store.open_tickets_due_before(cutoff, 2).await.unwrap();
    let nothing_yet = store.open_tickets_due_before(base(), 10).await.unwrap();

    assert_eq!(
        due.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        due_order
    );
    assert!(
        due.iter()
            .all(|t| t.status.is_open() && t.resolution_due < cutoff)
    );
    assert_eq!(
        first_two.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        due_order[..2]
    );
    assert!(nothing_yet.is_empty());
}

pub async fn a_ticket_leaves_the_open_list_when_it_resolves_and_returns_when_reopened<S: Store>(
    store: Arc<S>,
) {
    let (ticket, first) = simple_ticket(1, "evt-lifecycle");
    let mut ticket = store_in_status(&*store, ticket, first, TicketStatus::InProgress).await;
    let cutoff = base() + SignedDuration::from_hours(49);
    assert_eq!(
        store
            .open_tickets_due_before(cutoff, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    let expected = ticket.version;
    let resolved = change(
        &mut ticket,
        TicketEvent::Resolved {
            kind: ResolutionKind::Refund,
        },
    );
    store.save(&ticket, expected, &[resolved]).await.unwrap();
    assert!(
        store
            .open_tickets_due_before(cutoff, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // An agent reopens it with a new due time (status set directly: the store does not judge).
    let expected = ticket.version;
    ticket.version += 1;
    ticket.status = TicketStatus::UnderReview;
    ticket.resolution_due = base() + SignedDuration::from_hours(1);
    store.save(&ticket, expected, &[]).await.unwrap();
    let due = store
        .open_tickets_due_before(base() + SignedDuration::from_hours(2), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].resolution_due, ticket.resolution_due);
    assert_eq!(due[0].status, TicketStatus::UnderReview);
}

pub async fn history_counts_previous_tickets_and_the_customers_refunds_since<S: Store>(
    store: Arc<S>,
) {
    for n in 0..3u128 {
        let (t, first) = open_ticket(
            n,
            request(
                &format!("evt-h{n}"),
                "C-H",
                &format!("O-H{n}"),
                &[("L1", 1)],
            ),
            base() - SignedDuration::from_hours(24 * (10 - n as i64)),
        );
        store.create(&t, &first).await.unwrap();
    }
    let (other, first) = open_ticket(
        7,
        request("evt-h-other", "C-OTHER", "O-H0", &[("L1", 1)]),
        base(),
    );
    store.create(&other, &first).await.unwrap();
    let (current, first) =
        open_ticket(9, request("evt-h-now", "C-H", "O-H9", &[("L2", 1)]), base());
    store.create(&current, &first).await.unwrap();

    let paid = cny(111500);
    let old = intent(
        "old:refund",
        "O-H0",
        "C-H",
        1000,
        &[("L1", 1)],
        base() - SignedDuration::from_hours(24 * 60),
    );
    let recent = intent(
        "recent:refund",
        "O-H1",
        "C-H",
        2000,
        &[("L1", 1)],
        base() - SignedDuration::from_hours(24 * 5),
    );
    let pending = intent(
        "pending:refund",
        "O-H2",
        "C-H",
        3000,
        &[("L1", 1)],
        base() - SignedDuration::from_hours(24),
    );
    let released = intent(
        "released:refund",
        "O-H2",
        "C-H",
        500,
        &[("L1", 1)],
        base() - SignedDuration::from_hours(2),
    );
    let strangers = intent(
        "stranger:refund",
        "O-H0",
        "C-OTHER",
        700,
        &[("L1", 1)],
        base(),
    );
    for i in [&old, &recent, &pending, &released, &strangers] {
        assert_eq!(store.reserve(i, paid).await.unwrap(), Reservation::Reserved);
    }
    store
        .complete("recent:refund", &receipt("re_recent", 2000))
        .await
        .unwrap();
    store.release("released:refund").await.unwrap();
    let since = base() - SignedDuration::from_hours(24 * 30);

    let history = store
        .history(&current.request, &current.id, since)
        .await
        .unwrap();

    assert_eq!(history.customer.previous_tickets, 3);
    let refunds: Vec<(String, i64)> = history
        .customer
        .refunds
        .iter()
        .map(|r| (r.order_id.to_string(), r.amount.minor))
        .collect();
    assert_eq!(
        refunds,
        vec![("O-H1".to_owned(), 2000), ("O-H2".to_owned(), 3000)]
    );
    assert_eq!(history.customer.refunds[0].at, recent.at);
    assert_eq!(history.order.refunded.minor(), 0);
    assert!(history.order.open_claims.is_empty());
}

pub async fn history_sums_the_orders_refunds_per_line_and_lists_open_claims_on_the_same_lines<
    S: Store,
>(
    store: Arc<S>,
) {
    let order = "O-CLAIM";
    // Other tickets of the order: open on L1, open on L2+L3, resolved on L1, and another order.
    let (open_l1, f1) = open_ticket(
        1,
        request("evt-k1", "C-K", order, &[("L1", 2)]),
        base() - minutes(30),
    );
    store.create(&open_l1, &f1).await.unwrap();
    let (open_l2, f2) = open_ticket(
        2,
        request("evt-k2", "C-K2", order, &[("L2", 1), ("L3", 1)]),
        base() - minutes(20),
    );
    store.create(&open_l2, &f2).await.unwrap();
    let (done, f3) = open_ticket(
        3,
        request("evt-k3", "C-K", order, &[("L1", 1)]),
        base() - minutes(10),
    );
    store_in_status(&*store, done, f3, TicketStatus::Resolved).await;
    let (elsewhere, f4) = open_ticket(
        4,
        request("evt-k4", "C-K", "O-ELSEWHERE", &[("L1", 1)]),
        base() - minutes(5),
    );
    store.create(&elsewhere, &f4).await.unwrap();
    let (current, f5) = open_ticket(
        5,
        request("evt-k5", "C-K", order, &[("L1", 1), ("L2", 1)]),
        base(),
    );
    store.create(&current, &f5).await.unwrap();

    let paid = cny(111500);
    let a = intent(
        "k3:refund",
        order,
        "C-K",
        29900,
        &[("L1", 1)],
        base() - minutes(9),
    );
    let b = intent(
        "k2:refund",
        order,
        "C-K2",
        19800,
        &[("L2", 2)],
        base() - minutes(8),
    );
    let c = intent(
        "k9:refund",
        order,
        "C-K",
        29900,
        &[("L1", 1)],
        base() - minutes(7),
    );
    let gone = intent(
        "k8:refund",
        order,
        "C-K",
        1900,
        &[("L3", 1)],
        base() - minutes(6),
    );
    for i in [&a, &b, &c, &gone] {
        store.reserve(i, paid).await.unwrap();
    }
    store
        .complete("k3:refund", &receipt("re_k3", 29900))
        .await
        .unwrap();
    store.release("k8:refund").await.unwrap();

    let history = store
        .history(&current.request, &current.id, base() - minutes(60))
        .await
        .unwrap();

    assert_eq!(history.order.refunded.minor(), 29900 + 19800 + 29900);
    assert_eq!(history.order.refunded_quantity(&line("L1")), 2);
    assert_eq!(history.order.refunded_quantity(&line("L2")), 2);
    assert_eq!(history.order.refunded_quantity(&line("L3")), 0);
    let mut claims: Vec<(TicketId, String, u32)> = history
        .order
        .open_claims
        .iter()
        .map(|c| (c.ticket_id.clone(), c.line_id.to_string(), c.quantity))
        .collect();
    claims.sort();
    let mut expected = vec![
        (open_l1.id.clone(), "L1".to_owned(), 2),
        (open_l2.id.clone(), "L2".to_owned(), 1),
    ];
    expected.sort();
    assert_eq!(claims, expected, "open tickets of this order on L1/L2 only");
    assert_eq!(history.customer.previous_tickets, 3);
}

// ---------------------------------------------------------------------------------------------
// Refund ledger

pub async fn reserve_then_complete_records_the_receipt<S: Store>(store: Arc<S>) {
    let refund = intent("t1:refund", "O-L1", "C-1", 29900, &[("L1", 1)], base());
    let order = OrderId::new("O-L1").unwrap();
    assert_eq!(store.committed(&order).await.unwrap(), None);

    assert_eq!(
        store.reserve(&refund, cny(111500)).await.unwrap(),
        Reservation::Reserved
    );
    assert_eq!(
        store.entry("t1:refund").await.unwrap(),
        Some(LedgerEntry::Reserved {
            intent: refund.clone()
        })
    );
    store
        .complete("t1:refund", &receipt("re_1", 29900))
        .await
        .unwrap();

    assert_eq!(
        store.entry("t1:refund").await.unwrap(),
        Some(LedgerEntry::Completed {
            intent: refund,
            receipt: receipt("re_1", 29900)
        })
    );
    assert_eq!(store.committed(&order).await.unwrap(), Some(cny(29900)));
    assert_eq!(store.entry("never").await.unwrap(), None);
}

pub async fn repeated_reserve_answers_already_reserved_then_already_completed<S: Store>(
    store: Arc<S>,
) {
    let refund = intent("t2:refund", "O-L2", "C-1", 10000, &[], base());
    let paid = cny(20000);
    store.reserve(&refund, paid).await.unwrap();

    let retry = store.reserve(&refund, paid).await.unwrap();
    assert_eq!(retry, Reservation::AlreadyReserved(refund.clone()));

    store
        .complete("t2:refund", &receipt("re_2", 10000))
        .await
        .unwrap();
    let after = store.reserve(&refund, paid).await.unwrap();
    assert_eq!(after, Reservation::AlreadyCompleted(receipt("re_2", 10000)));

    // Even a retry that no longer fits under the cap is answered as the repeat it is.
    let oversized = store.reserve(&refund, cny(5000)).await.unwrap();
    assert_eq!(
        oversized,
        Reservation::AlreadyCompleted(receipt("re_2", 10000))
    );
    assert_eq!(
        store
            .committed(&OrderId::new("O-L2").unwrap())
            .await
            .unwrap(),
        Some(cny(10000))
    );
}

pub async fn complete_is_idempotent_for_the_same_receipt_and_refuses_another<S: Store>(
    store: Arc<S>,
) {
    let refund = intent("t3:refund", "O-L3", "C-1", 5000, &[], base());
    store.reserve(&refund, cny(5000)).await.unwrap();
    store
        .complete("t3:refund", &receipt("re_3", 5000))
        .await
        .unwrap();

    store
        .complete("t3:refund", &receipt("re_3", 5000))
        .await
        .unwrap();
    let other = store
        .complete("t3:refund", &receipt("re_other", 5000))
        .await;

    assert!(matches!(other, Err(StoreError::Conflict(_))), "{other:?}");
    assert_eq!(
        store.entry("t3:refund").await.unwrap(),
        Some(LedgerEntry::Completed {
            intent: refund.clone(),
            receipt: receipt("re_3", 5000)
        })
    );
    let wrong_amount = intent("t3b:refund", "O-L3b", "C-1", 5000, &[], base());
    store.reserve(&wrong_amount, cny(9000)).await.unwrap();
    let refused = store.complete("t3b:refund", &receipt("re_3b", 4000)).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
}

pub async fn complete_or_release_of_an_unknown_key_is_not_found<S: Store>(store: Arc<S>) {
    let completed = store.complete("nobody:refund", &receipt("re_x", 100)).await;
    let released = store.release("nobody:refund").await;

    assert!(
        matches!(completed, Err(StoreError::NotFound(_))),
        "{completed:?}"
    );
    assert!(
        matches!(released, Err(StoreError::NotFound(_))),
        "{released:?}"
    );
}

pub async fn reservation_above_what_is_left_is_refused_with_the_available_amount<S: Store>(
    store: Arc<S>,
) {
    let paid = cny(1000);
    store
        .reserve(&intent("t4a:refund", "O-L4", "C-1", 700, &[], base()), paid)
        .await
        .unwrap();

    let refused = store
        .reserve(&intent("t4b:refund", "O-L4", "C-1", 400, &[], base()), paid)
        .await;
    let never = store
        .reserve(
            &intent("t4c:refund", "O-L4", "C-1", 1001, &[], base()),
            paid,
        )
        .await;
    let exact = store
        .reserve(&intent("t4d:refund", "O-L4", "C-1", 300, &[], base()), paid)
        .await
        .unwrap();

    assert_eq!(
        refused,
        Err(StoreError::CapExceeded {
            requested: cny(400),
            available: cny(300)
        })
    );
    assert_eq!(
        never,
        Err(StoreError::CapExceeded {
            requested: cny(1001),
            available: cny(300)
        })
    );
    assert_eq!(exact, Reservation::Reserved);
    assert_eq!(store.entry("t4b:refund").await.unwrap(), None);
    assert_eq!(
        store
            .committed(&OrderId::new("O-L4").unwrap())
            .await
            .unwrap(),
        Some(cny(1000))
    );
}

pub async fn release_frees_the_amount_and_the_key_can_be_reserved_again<S: Store>(store: Arc<S>) {
    let paid = cny(1000);
    let order = OrderId::new("O-L5").unwrap();
    let declined = intent("t5:refund", "O-L5", "C-1", 800, &[], base());
    store.reserve(&declined, paid).await.unwrap();

    store.release("t5:refund").await.unwrap();
    store.release("t5:refund").await.unwrap();

    assert_eq!(store.committed(&order).await.unwrap(), Some(cny(0)));
    assert_eq!(store.entry("t5:refund").await.unwrap(), None);
    let other = intent("t6:refund", "O-L5", "C-1", 900, &[], base());
    assert_eq!(
        store.reserve(&other, paid).await.unwrap(),
        Reservation::Reserved
    );
    store.release("t6:refund").await.unwrap();
    assert_eq!(
        store.reserve(&declined, paid).await.unwrap(),
        Reservation::Reserved
    );
    assert_eq!(store.committed(&order).await.unwrap(), Some(cny(800)));
}

pub async fn completed_refund_cannot_be_released<S: Store>(store: Arc<S>) {
    let refund = intent("t7:refund", "O-L7", "C-1", 500, &[], base());
    store.reserve(&refund, cny(500)).await.unwrap();
    store
        .complete("t7:refund", &receipt("re_7", 500))
        .await
        .unwrap();

    let refused = store.release("t7:refund").await;

    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(
        store
            .committed(&OrderId::new("O-L7").unwrap())
            .await
            .unwrap(),
        Some(cny(500))
    );
}

pub async fn twenty_concurrent_partial_refunds_never_exceed_what_was_paid<S: Store>(store: Arc<S>) {
    let paid = cny(1000);
    let attempts: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let refund = intent(
                    &format!("storm-{n}:refund"),
                    "O-STORM",
                    "C-1",
                    100,
                    &[],
                    base(),
                );
                store.reserve(&refund, paid).await
            })
        })
        .collect();
    let mut reserved = 0;
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(Reservation::Reserved) => reserved += 1,
            Err(StoreError::CapExceeded {
                requested,
                available,
            }) => {
                assert_eq!(requested, cny(100));
                assert!(available.minor < 100, "refused while {available} was left");
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    assert_eq!((reserved, refused), (10, 10));
    assert_eq!(
        store
            .committed(&OrderId::new("O-STORM").unwrap())
            .await
            .unwrap(),
        Some(cny(1000))
    );
}

pub async fn refund_in_another_currency_is_refused<S: Store>(store: Arc<S>) {
    let usd = |minor| Money::new(minor, "USD".parse().unwrap());
    let mut dollars = intent("t8:refund", "O-L8", "C-1", 100, &[], base());
    dollars.amount = usd(100);

    let against_yuan = store.reserve(&dollars, cny(1000)).await;
    store
        .reserve(
            &intent("t8b:refund", "O-L8", "C-1", 100, &[], base()),
            cny(1000),
        )
        .await
        .unwrap();
    let against_yuan_ledger = store.reserve(&dollars, usd(1000)).await;

    assert!(
        matches!(against_yuan, Err(StoreError::Corrupt(_))),
        "{against_yuan:?}"
    );
    assert!(
        matches!(against_yuan_ledger, Err(StoreError::Corrupt(_))),
        "{against_yuan_ledger:?}"
    );
    assert_eq!(store.entry("t8:refund").await.unwrap(), None);
    assert_eq!(
        store
            .committed(&OrderId::new("O-L8").unwrap())
            .await
            .unwrap(),
        Some(cny(100))
    );
}
