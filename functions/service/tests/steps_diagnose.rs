//! The `diagnose` step: every route, what it records, re-runs and races.

mod steps_support;

use std::sync::Arc;

use aftersales_domain::lifecycle::{TicketEvent, TicketStatus};
use aftersales_domain::{Department, ProblemKind, Responsibility, TicketId};
use aftersales_service::handlers::steps::diagnose::{
    DiagnoseDeps, DiagnoseInput, DiagnoseRoute, handle,
};
use aftersales_service::store::{MemoryStore, TicketStore};
use serde_json::json;
use steps_support::*;

fn deps(store: Arc<dyn TicketStore>) -> DiagnoseDeps {
    DiagnoseDeps {
        store,
        policy: policy(),
        clock: clock(),
    }
}

fn input(id: &TicketId) -> DiagnoseInput {
    DiagnoseInput {
        ticket_id: id.clone(),
    }
}

#[tokio::test]
async fn a_photographed_defect_under_the_auto_approve_limit_goes_to_propose() {
    let store = Arc::new(MemoryStore::new());
    let id = open(&store, request_from(request_json("evt_ok"))).await;

    let out = handle(input(&id), &deps(store.clone())).await.unwrap();

    assert_eq!(out.route, DiagnoseRoute::Propose);
    assert_eq!(out.problem_kind, ProblemKind::QualityDefect);
    assert_eq!(out.responsibility, Responsibility::Merchant);
    assert_eq!(out.department, Department::Quality);
    assert!(out.review_reasons.is_empty());
    let ticket = load(store.as_ref(), &id).await;
    assert_eq!(ticket.status, TicketStatus::Diagnosed);
    assert!(ticket.diagnosis.is_some());
    assert_eq!(events(store.as_ref(), &id).await, ["received", "diagnosed"]);
}

#[tokio::test]
async fn a_damage_claim_without_photos_asks_for_evidence() {
    let store = Arc::new(MemoryStore::new());
    let mut json = request_json("evt_no_photo");
    json["problem"]["kind"] = json!("damaged_in_transit");
    json["problem"]["evidence"] = json!([]);
    let id = open(&store, request_from(json)).await;

    let out = handle(input(&id), &deps(store.clone())).await.unwrap();

    assert_eq!(out.route, DiagnoseRoute::RequestEvidence);
    assert_eq!(out.department, Department::Logistics);
    assert_eq!(
        load(store.as_ref(), &id).await.status,
        TicketStatus::AwaitingEvidence
    );
    assert_eq!(
        events(store.as_ref(), &id).await,
        ["received", "diagnosed", "evidence_requested"]
    );
}

#[tokio::test]
async fn an_amount_over_the_auto_approve_limit_goes_to_a_person_with_the_reason() {
    let store = Arc::new(MemoryStore::new());
    let mut json = request_json("evt_big");
    json["order"]["lines"][0]["unit_price"] = json!(89900);
    json["order"]["payment"]["paid"] = json!(89900);
    let id = open(&store, request_from(json)).await;

    let out = handle(input(&id), &deps(store.clone())).await.unwrap();

    assert_eq!(out.route, DiagnoseRoute::Review);
    assert_eq!(out.review_reasons, ["amount_over_auto_approve_limit"]);
    assert_eq!(
        load(store.as_ref(), &id).await.status,
        TicketStatus::UnderReview
    );
    let trail = trail(store.as_ref(), &id).await;
    let last = trail.last().unwrap();
    assert_eq!(
        last.event,
        TicketEvent::EscalatedToAgent {
            reason: "amount_over_auto_approve_limit".into()
        }
    );
}

#[tokio::test]
async fn a_rerun_returns_the_same_route_and_records_nothing_twice() {
    let store = Arc::new(MemoryStore::new());
    let mut json = request_json("evt_rerun");
    json["problem"]["evidence"] = json!([]);
    let id = open(&store, request_from(json)).await;
    let deps = deps(store.clone());

    let first = handle(input(&id), &deps).await.unwrap();
    let second = handle(input(&id), &deps).await.unwrap();

    assert_eq!(first, second);
    assert_eq!(
        events(store.as_ref(), &id).await,
        ["received", "diagnosed", "evidence_requested"]
    );
}

#[tokio::test]
async fn an_unknown_ticket_is_not_found() {
    let store = Arc::new(MemoryStore::new());
    let id = TicketId::generate(now(), 99);

    let error = handle(input(&id), &deps(store)).await.unwrap_err();

    assert_eq!(error.name(), "NotFound");
}

#[tokio::test]
async fn a_lost_race_is_retried_inside_the_step() {
    let store = Arc::new(RacingStore::new(2));
    let id = open_in(store.as_ref(), request_from(request_json("evt_race"))).await;

    let out = handle(input(&id), &deps(store.clone())).await.unwrap();

    assert_eq!(out.route, DiagnoseRoute::Propose);
    assert_eq!(events(store.as_ref(), &id).await, ["received", "diagnosed"]);
}

#[tokio::test]
async fn a_race_lost_every_time_is_a_conflict_and_writes_nothing() {
    let store = Arc::new(RacingStore::new(100));
    let id = open_in(store.as_ref(), request_from(request_json("evt_lost"))).await;

    let error = handle(input(&id), &deps(store.clone())).await.unwrap_err();

    assert_eq!(error.name(), "Conflict");
    assert_eq!(events(store.as_ref(), &id).await, ["received"]);
}

/// The run replayed from before its diagnosis was stored (the local stack after kill -9) while
/// the customer had already chosen: the stored diagnosis' route again, nothing recorded, so the
/// replay reaches the decision's wait, which finds the answer.
#[tokio::test]
async fn a_replay_after_the_ticket_moved_on_answers_the_stored_route() {
    let store = Arc::new(MemoryStore::new());
    let id = open(&store, request_from(request_json("evt_replayed"))).await;
    let first = handle(input(&id), &deps(store.clone())).await.unwrap();
    advance(
        store.as_ref(),
        &id,
        vec![
            TicketEvent::Proposed { options: 1 },
            TicketEvent::OptionAccepted {
                option_id: "opt-1".into(),
                kind: aftersales_domain::ResolutionKind::Refund,
                by_default: false,
            },
        ],
        |_| {},
    )
    .await;
    let before = events(store.as_ref(), &id).await;

    let replayed = handle(input(&id), &deps(store.clone())).await.unwrap();

    assert_eq!(replayed, first);
    assert_eq!(events(store.as_ref(), &id).await, before);
}

#[tokio::test]
async fn diagnosing_a_proposed_ticket_without_a_stored_diagnosis_is_a_policy_violation() {
    let store = Arc::new(MemoryStore::new());
    let id = open(&store, request_from(request_json("evt_late_call"))).await;
    advance(
        store.as_ref(),
        &id,
        vec![diagnosed_event(), TicketEvent::Proposed { options: 1 }],
        |_| {},
    )
    .await;

    let error = handle(input(&id), &deps(store)).await.unwrap_err();

    assert_eq!(error.name(), "PolicyViolation");
}
