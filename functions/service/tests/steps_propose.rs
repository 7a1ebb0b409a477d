//! The `propose` step: options to decide on, or a reasoned rejection.

mod steps_support;

use std::sync::Arc;

use aftersales_domain::lifecycle::{TicketEvent, TicketStatus};
use aftersales_domain::{ResolutionKind, TicketId};
use aftersales_service::handlers::steps::diagnose::{self, DiagnoseDeps, DiagnoseInput};
use aftersales_service::handlers::steps::propose::{
    ProposeDeps, ProposeInput, ProposeRoute, handle,
};
use aftersales_service::store::MemoryStore;
use serde_json::json;
use steps_support::*;

async fn diagnosed(store: &Arc<MemoryStore>, json: serde_json::Value) -> TicketId {
    let id = open(store, request_from(json)).await;
    let deps = DiagnoseDeps {
        store: store.clone(),
        policy: policy(),
        clock: clock(),
    };
    diagnose::handle(
        DiagnoseInput {
            ticket_id: id.clone(),
        },
        &deps,
    )
    .await
    .unwrap();
    id
}

fn deps(store: &Arc<MemoryStore>) -> ProposeDeps {
    ProposeDeps {
        store: store.clone(),
        policy: policy(),
        clock: clock(),
    }
}

fn input(id: &TicketId) -> ProposeInput {
    ProposeInput {
        ticket_id: id.clone(),
    }
}

#[tokio::test]
async fn a_diagnosed_defect_gets_ranked_options_and_awaits_the_decision() {
    let store = Arc::new(MemoryStore::new());
    let id = diagnosed(&store, request_json("evt_options")).await;

    let out = handle(input(&id), &deps(&store)).await.unwrap();

    assert_eq!(out.route, ProposeRoute::AwaitDecision);
    assert!(out.options >= 2, "{out:?}");
    assert_eq!(out.top_option.as_deref(), Some("opt-1"));
    let ticket = load(store.as_ref(), &id).await;
    assert_eq!(ticket.status, TicketStatus::Proposed);
    let proposal = ticket.proposal.unwrap();
    assert_eq!(proposal.options.len() as u32, out.options);
    assert_eq!(Some(proposal.options[0].kind), out.top_kind);
    assert_eq!(
        trail(store.as_ref(), &id).await.last().unwrap().event,
        TicketEvent::Proposed {
            options: out.options
        }
    );
}

#[tokio::test]
async fn the_customers_expected_resolution_comes_first_when_offered() {
    let store = Arc::new(MemoryStore::new());
    let mut json = request_json("evt_expected");
    json["expected_resolution"] = json!("exchange");
    let id = diagnosed(&store, json).await;

    let out = handle(input(&id), &deps(&store)).await.unwrap();

    assert_eq!(out.top_kind, Some(ResolutionKind::Exchange));
}

#[tokio::test]
async fn a_kind_the_policy_does_not_cover_is_rejected_with_the_reason() {
    let store = Arc::new(MemoryStore::new());
    let mut json = request_json("evt_misuse");
    json["problem"]["kind"] = json!("misuse");
    let id = diagnosed(&store, json).await;

    let out = handle(input(&id), &deps(&store)).await.unwrap();

    assert_eq!(out.route, ProposeRoute::Rejected);
    assert_eq!(out.options, 1);
    assert_eq!(out.top_kind, Some(ResolutionKind::Reject));
    assert_eq!(
        load(store.as_ref(), &id).await.status,
        TicketStatus::Rejected
    );
    match &trail(store.as_ref(), &id).await.last().unwrap().event {
        TicketEvent::Rejected { reason } => assert!(reason.contains("not_covered"), "{reason}"),
        other => panic!("expected rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_rerun_returns_the_same_options_and_records_once() {
    let store = Arc::new(MemoryStore::new());
    let id = diagnosed(&store, request_json("evt_propose_twice")).await;

    let first = handle(input(&id), &deps(&store)).await.unwrap();
    let second = handle(input(&id), &deps(&store)).await.unwrap();

    assert_eq!(first, second);
    assert_eq!(
        events(store.as_ref(), &id).await,
        ["received", "diagnosed", "proposed"]
    );
}

/// The run replayed from before its proposal was stored (the local stack after kill -9) while
/// the customer had already chosen: the same answer, nothing recorded twice.
#[tokio::test]
async fn a_replay_after_the_customer_chose_answers_the_stored_proposal() {
    let store = Arc::new(MemoryStore::new());
    let id = diagnosed(&store, request_json("evt_replayed_proposal")).await;
    let first = handle(input(&id), &deps(&store)).await.unwrap();
    advance(
        store.as_ref(),
        &id,
        vec![TicketEvent::OptionAccepted {
            option_id: "opt-1".into(),
            kind: ResolutionKind::Refund,
            by_default: false,
        }],
        |_| {},
    )
    .await;
    let before = events(store.as_ref(), &id).await;

    let replayed = handle(input(&id), &deps(&store)).await.unwrap();

    assert_eq!(replayed, first);
    assert_eq!(events(store.as_ref(), &id).await, before);
}

#[tokio::test]
async fn proposing_before_the_diagnosis_is_a_policy_violation() {
    let store = Arc::new(MemoryStore::new());
    let id = open(&store, request_from(request_json("evt_too_early"))).await;

    let error = handle(input(&id), &deps(&store)).await.unwrap_err();

    assert_eq!(error.name(), "PolicyViolation");
    assert_eq!(events(store.as_ref(), &id).await, ["received"]);
}
