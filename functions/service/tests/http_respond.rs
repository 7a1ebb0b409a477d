//! `GET /v1/tickets/{id}` and `POST /v1/tickets/{id}/responses` through
//! `handlers::respond::handle`, with the in-memory store and workflow and a fixed clock.

mod http_support;
mod steps_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aftersales_domain::lifecycle::{TicketStatus, WaitKind};
use aftersales_domain::ticket::Ticket;
use aftersales_domain::{Disposition, EvidenceKind, ResolutionKind, TicketId};
use aftersales_service::adapters::workflow::{
    InMemoryWorkflow, StartOutcome, WorkflowCall, WorkflowClient, WorkflowError,
};
use aftersales_service::clock::FixedClock;
use aftersales_service::handlers::respond::{Deps, handle};
use aftersales_service::store::{MemoryStore, TicketStore};
use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use http_support::*;
use serde_json::{Value, json};

const TOKEN: &str = "AQB8AAAAKgAAAAMAAAAAAAAAAfSecretTaskToken";

struct World {
    store: Arc<MemoryStore>,
    workflow: Arc<InMemoryWorkflow>,
    deps: Deps,
}

fn world_with(workflow: Arc<dyn WorkflowClient>, recorder: Arc<InMemoryWorkflow>) -> World {
    let store = Arc::new(MemoryStore::new());
    let deps = Deps {
        store: store.clone(),
        workflow,
        clock: Arc::new(FixedClock::at(now())),
        secrets: secrets(),
    };
    World {
        store,
        workflow: recorder,
        deps,
    }
}

fn world() -> World {
    let workflow = Arc::new(InMemoryWorkflow::new());
    world_with(workflow.clone(), workflow)
}

/// A ticket waiting for `kind`, whose workflow task is open.
async fn waiting(w: &World, kind: WaitKind) -> Ticket {
    let ticket = ticket_waiting(w.store.as_ref(), &format!("evt_{kind}"), kind, TOKEN).await;
    w.workflow.open_task(TOKEN);
    ticket
}

fn responses(id: &TicketId) -> String {
    format!("/v1/tickets/{id}/responses")
}

async fn answer(w: &World, id: &TicketId, body: Value) -> ApiGatewayV2httpResponse {
    handle(signed_post(&responses(id), &body), &w.deps).await
}

fn task_successes(w: &World) -> Vec<(String, Value)> {
    w.workflow
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            WorkflowCall::TaskSuccess { token, output } => Some((token, output)),
            _ => None,
        })
        .collect()
}

async fn stored(w: &World, id: &TicketId) -> Ticket {
    w.store.get(id).await.unwrap().unwrap()
}

async fn events(w: &World, id: &TicketId) -> Vec<&'static str> {
    w.store
        .audit_trail(id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.name())
        .collect()
}

/// Accepted: 202 with the body of the contract, the step resumed once with `output`, the wait
/// released.
async fn assert_accepted(
    w: &World,
    response: &ApiGatewayV2httpResponse,
    ticket: &Ticket,
    kind: &str,
    expected_status: &str,
    output: Value,
) {
    assert_eq!(status(response), 202, "{:?}", response.body);
    assert_eq!(
        body(response),
        json!({"ticket_id": ticket.id.as_str(), "status": expected_status, "accepted": kind})
    );
    assert_eq!(task_successes(w), vec![(TOKEN.to_owned(), output)]);
    let after = stored(w, &ticket.id).await;
    assert_eq!(after.status.as_str(), expected_status);
    assert_eq!(after.waiting, None);
    assert_eq!(after.responses.len(), 1);
}

#[tokio::test]
async fn evidence_resumes_the_waiting_step_and_sends_the_ticket_back_to_diagnosis() {
    // given
    let w = world();
    let ticket = waiting(&w, WaitKind::Evidence).await;
    // when
    let response = answer(
        &w,
        &ticket.id,
        json!({"kind": "evidence", "evidence": [
        {"kind": "photo", "url": "https://cdn.shop.example/u/2.jpg"},
        {"kind": "video", "url": "https://cdn.shop.example/u/3.mp4"}]}),
    )
    .await;
    // then
    assert_accepted(
        &w,
        &response,
        &ticket,
        "evidence",
        "received",
        json!({"kind": "evidence", "items": 2}),
    )
    .await;
    let after = stored(&w, &ticket.id).await;
    let kinds: Vec<EvidenceKind> = after
        .request
        .problem
        .evidence
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            EvidenceKind::Photo,
            EvidenceKind::Photo,
            EvidenceKind::Video
        ]
    );
    assert_eq!(
        events(&w, &ticket.id).await.last(),
        Some(&"evidence_received")
    );
}

#[tokio::test]
async fn accepting_an_option_records_the_choice_and_resumes_with_its_resolution() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Decision).await;
    let option = ticket.proposal.as_ref().unwrap().options[0].clone();

    let response = answer(
        &w,
        &ticket.id,
        json!({"kind": "decision", "option_id": option.id.as_str()}),
    )
    .await;

    assert_accepted(
        &w,
        &response,
        &ticket,
        "decision",
        "in_progress",
        json!({"kind": "decision", "outcome": "accepted",
                           "option_id": option.id.as_str(), "resolution": option.kind.as_str()}),
    )
    .await;
    let chosen = stored(&w, &ticket.id).await.chosen.unwrap();
    assert_eq!(chosen.option_id.as_deref(), Some(option.id.as_str()));
    assert_eq!(chosen.kind, option.kind);
    assert_eq!(chosen.amount, option.amount);
}

/// A ticket waiting for the customer's decision whose proposal also offers an exchange of the
/// claimed lines (`opt-9`; the fixture's order is past its return window, so the proposal
/// itself only rejects).
async fn waiting_with_an_exchange(w: &World) -> Ticket {
    let ticket = waiting(w, WaitKind::Decision).await;
    let mut changed = ticket.clone();
    let proposal = changed.proposal.as_mut().unwrap();
    let mut exchange = proposal.options[0].clone();
    exchange.id = serde_json::from_value(json!("opt-9")).unwrap();
    exchange.kind = ResolutionKind::Exchange;
    exchange.amount = None;
    proposal.options.push(exchange);
    changed.version = ticket.version + 1;
    w.store.save(&changed, ticket.version, &[]).await.unwrap();
    changed
}

/// The customer exchanges for another variant the storefront prices: the difference over the
/// units the option covers is fixed on the chosen resolution (execute-refund refunds a negative
/// one, the exchange message names a positive one as due).
#[tokio::test]
async fn an_exchange_for_another_variant_records_its_price_difference() {
    let w = world();
    let ticket = waiting_with_an_exchange(&w).await;
    let options = &ticket.proposal.as_ref().unwrap().options;
    let exchange = options
        .iter()
        .find(|o| o.kind == ResolutionKind::Exchange)
        .expect("the proposal has an exchange");
    let units: u32 = exchange.lines.iter().map(|l| l.quantity).sum();

    let response = answer(
        &w,
        &ticket.id,
        json!({"kind": "decision", "option_id": exchange.id.as_str(),
               "exchange_for": {"sku": "KB-87-BLK", "unit_price": 27900}}),
    )
    .await;

    assert_eq!(status(&response), 202, "{:?}", body(&response));
    let chosen = stored(&w, &ticket.id).await.chosen.unwrap();
    let named = chosen.exchange.expect("the variant is kept");
    assert_eq!(named.sku.as_str(), "KB-87-BLK");
    assert_eq!(named.unit_price.minor, 27900);
    assert_eq!(
        named.price_difference.minor,
        (27900 - 29900) * i64::from(units)
    );
    let shown = status_of(&w, &ticket.id).await;
    assert_eq!(
        shown["exchange"],
        json!({"sku": "KB-87-BLK", "unit_price": 27900,
               "price_difference": (27900 - 29900) * i64::from(units), "currency": "CNY"})
    );
}

/// An agent grants an exchange for another variant without a proposal option: the difference
/// covers the claimed units; `exchange_for` with another kind is refused.
#[tokio::test]
async fn an_agent_can_grant_an_exchange_for_another_variant() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Agent).await;
    let units: u32 = ticket
        .request
        .problem
        .lines
        .iter()
        .map(|l| l.quantity.get())
        .sum();
    let variant = json!({"sku": "KB-87-XL", "unit_price": 31900});

    let refused = answer(
        &w,
        &ticket.id,
        json!({"kind": "agent_decision", "agent": "a-17",
               "option": {"kind": "refund", "amount": 100, "exchange_for": variant}}),
    )
    .await;
    let granted = answer(
        &w,
        &ticket.id,
        json!({"kind": "agent_decision", "agent": "a-17",
               "option": {"kind": "exchange", "exchange_for": variant}}),
    )
    .await;

    assert_eq!(
        error(&refused),
        ("invalid_field".into(), Some("option.exchange_for".into()))
    );
    assert_eq!(status(&granted), 202, "{:?}", body(&granted));
    let named = stored(&w, &ticket.id)
        .await
        .chosen
        .unwrap()
        .exchange
        .unwrap();
    assert_eq!(
        named.price_difference.minor,
        (31900 - 29900) * i64::from(units)
    );
}

/// `exchange_for` only goes with an exchange: without an option, with another kind of option,
/// with a blank sku or a negative price it is refused, naming the field, and nothing resumes.
#[tokio::test]
async fn an_exchange_variant_for_anything_but_an_exchange_is_refused() {
    let w = world();
    let ticket = waiting_with_an_exchange(&w).await;
    let options = &ticket.proposal.as_ref().unwrap().options;
    let exchange = options
        .iter()
        .find(|o| o.kind == ResolutionKind::Exchange)
        .unwrap();
    let other = options
        .iter()
        .find(|o| o.kind != ResolutionKind::Exchange)
        .unwrap();
    let variant = json!({"sku": "KB-87-BLK", "unit_price": 27900});
    let cases = [
        (
            json!({"kind": "decision", "decline": {"reason": "too slow"}, "exchange_for": variant}),
            "exchange_for",
        ),
        (
            json!({"kind": "decision", "option_id": other.id.as_str(), "exchange_for": variant}),
            "exchange_for",
        ),
        (
            json!({"kind": "decision", "option_id": exchange.id.as_str(),
                   "exchange_for": {"sku": "", "unit_price": 27900}}),
            "exchange_for.sku",
        ),
        (
            json!({"kind": "decision", "option_id": exchange.id.as_str(),
                   "exchange_for": {"sku": "KB-87-BLK", "unit_price": -1}}),
            "exchange_for.unit_price",
        ),
    ];
    for (body, field) in cases {
        let response = answer(&w, &ticket.id, body.clone()).await;
        assert_eq!(status(&response), 400, "{body}");
        assert_eq!(
            error(&response),
            ("invalid_field".into(), Some(field.into())),
            "{body}"
        );
    }
    assert!(task_successes(&w).is_empty());
    assert!(stored(&w, &ticket.id).await.chosen.is_none());
}

#[tokio::test]
async fn declining_the_proposal_sends_the_ticket_to_review() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Decision).await;

    let response = answer(
        &w,
        &ticket.id,
        json!({"kind": "decision", "decline": {"reason": "too slow"}}),
    )
    .await;

    assert_accepted(
        &w,
        &response,
        &ticket,
        "decision",
        "under_review",
        json!({"kind": "decision", "outcome": "declined"}),
    )
    .await;
    assert_eq!(
        events(&w, &ticket.id).await.last(),
        Some(&"proposal_declined")
    );
}

#[tokio::test]
async fn a_counter_offer_goes_to_review_with_its_resolution() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Decision).await;

    let response = answer(
        &w,
        &ticket.id,
        json!({"kind": "decision",
        "counter": {"kind": "exchange", "note": "I would rather have a new one"}}),
    )
    .await;

    assert_accepted(
        &w,
        &response,
        &ticket,
        "decision",
        "under_review",
        json!({"kind": "decision", "outcome": "countered", "resolution": "exchange"}),
    )
    .await;
}

#[tokio::test]
async fn a_counter_above_what_was_paid_is_refused() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Decision).await;

    let response = answer(
        &w,
        &ticket.id,
        json!({"kind": "decision",
        "counter": {"kind": "refund", "amount": 70701, "note": "all of it and more"}}),
    )
    .await;

    assert_eq!(status(&response), 400);
    assert_eq!(
        error(&response),
        ("invalid_field".into(), Some("counter.amount".into()))
    );
    assert!(task_successes(&w).is_empty());
}

#[tokio::test]
async fn a_returned_parcel_records_each_line_as_the_warehouse_found_it() {
    let w = world();
    let ticket = waiting(&w, WaitKind::ReturnParcel).await;

    let response = answer(
        &w,
        &ticket.id,
        json!({"kind": "return_received",
        "lines": [{"line_id": "L1", "quantity": 2, "disposition": "damaged"}]}),
    )
    .await;

    assert_accepted(
        &w,
        &response,
        &ticket,
        "return_received",
        "in_progress",
        json!({"kind": "return_received", "all_restockable": false, "units": 2}),
    )
    .await;
    let returned = stored(&w, &ticket.id).await.returned;
    assert_eq!(returned.len(), 1);
    assert_eq!(returned[0].disposition, Disposition::Damaged);
    let audit = w.store.audit_trail(&ticket.id).await.unwrap();
    assert!(matches!(
        audit.last().unwrap().actor,
        aftersales_domain::lifecycle::Actor::Warehouse
    ));
}

#[tokio::test]
async fn a_survey_answer_is_stored_and_closes_the_ticket() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Survey).await;

    let response = answer(
        &w,
        &ticket.id,
        json!({"kind": "survey", "score": 4, "comment": "fine"}),
    )
    .await;

    assert_accepted(
        &w,
        &response,
        &ticket,
        "survey",
        "closed",
        json!({"kind": "survey", "score": 4}),
    )
    .await;
    assert_eq!(stored(&w, &ticket.id).await.survey.unwrap().score, Some(4));
}

#[tokio::test]
async fn an_agent_granting_a_resolution_moves_the_ticket_on() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Agent).await;

    let response = answer(
        &w,
        &ticket.id,
        json!({"kind": "agent_decision", "agent": "a-17",
        "option": {"kind": "refund", "amount": 29900}}),
    )
    .await;

    assert_accepted(
        &w,
        &response,
        &ticket,
        "agent_decision",
        "in_progress",
        json!({"kind": "agent_decision", "outcome": "option", "resolution": "refund"}),
    )
    .await;
    let chosen = stored(&w, &ticket.id).await.chosen.unwrap();
    assert_eq!(chosen.kind, ResolutionKind::Refund);
    assert_eq!(chosen.amount.unwrap().minor, 29900);
}

#[tokio::test]
async fn an_agent_rejecting_the_request_turns_it_down() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Agent).await;

    let response = answer(
        &w,
        &ticket.id,
        json!({"kind": "agent_decision", "agent": "a-17",
        "reject": {"reason": "outside the policy"}}),
    )
    .await;

    assert_accepted(
        &w,
        &response,
        &ticket,
        "agent_decision",
        "rejected",
        json!({"kind": "agent_decision", "outcome": "reject"}),
    )
    .await;
}

#[tokio::test]
async fn an_answer_the_ticket_is_not_waiting_for_is_a_conflict_that_names_what_it_waits_for() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Decision).await;

    let response = answer(&w, &ticket.id, json!({"kind": "survey", "score": 5})).await;

    assert_eq!(status(&response), 409);
    assert_eq!(error(&response).0, "conflict");
    let message = body(&response)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("waiting for decision"), "{message}");
    assert!(task_successes(&w).is_empty());
    assert_eq!(stored(&w, &ticket.id).await, ticket);
}

#[tokio::test]
async fn an_identical_repeat_is_200_with_the_same_body_and_resumes_nothing() {
    // given
    let w = world();
    let ticket = waiting(&w, WaitKind::Survey).await;
    let first = answer(&w, &ticket.id, json!({"kind": "survey", "score": 2})).await;
    let after_first = stored(&w, &ticket.id).await;
    // when: the same answer, keys in another order
    let again = handle(
        signed_at(
            "POST",
            &responses(&ticket.id),
            br#"{ "score": 2, "kind": "survey" }"#,
            "application/json",
            now(),
        ),
        &w.deps,
    )
    .await;
    // then
    assert_eq!(status(&again), 200);
    assert_eq!(body(&again), body(&first));
    assert_eq!(task_successes(&w).len(), 1);
    assert_eq!(stored(&w, &ticket.id).await, after_first);
}

#[tokio::test]
async fn a_different_answer_after_the_first_is_a_conflict() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Survey).await;
    answer(&w, &ticket.id, json!({"kind": "survey", "score": 2})).await;

    let other = answer(&w, &ticket.id, json!({"kind": "survey", "score": 5})).await;

    assert_eq!(status(&other), 409);
    assert_eq!(task_successes(&w).len(), 1);
    assert_eq!(stored(&w, &ticket.id).await.survey.unwrap().score, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_different_answers_racing_resume_the_step_once() {
    let w = Arc::new(world());
    let ticket = waiting(&w, WaitKind::Decision).await;
    let options = ticket.proposal.as_ref().unwrap().options.clone();
    let bodies = [
        json!({"kind": "decision", "option_id": options[0].id.as_str()}),
        json!({"kind": "decision", "decline": {"reason": "no"}}),
    ];

    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|b| {
            let w = w.clone();
            let event = signed_post(&responses(&ticket.id), &b);
            tokio::spawn(async move { status(&handle(event, &w.deps).await) })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort();

    assert_eq!(statuses, vec![202, 409]);
    assert_eq!(task_successes(&w).len(), 1);
    assert_eq!(stored(&w, &ticket.id).await.responses.len(), 1);
}

#[tokio::test]
async fn an_answer_whose_token_the_workflow_rejects_is_recorded_but_a_conflict() {
    // given: the workflow does not take the token (InvalidToken); a wait that timed out is
    // different, the run takes the recorded answer (tests/tests/workflow_paths.rs)
    let w = world();
    let ticket = ticket_waiting(w.store.as_ref(), "evt_gone", WaitKind::Survey, TOKEN).await;
    // when
    let response = answer(&w, &ticket.id, json!({"kind": "survey", "score": 3})).await;
    // then
    assert_eq!(status(&response), 409);
    let message = body(&response)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("no longer waiting"), "{message}");
    let after = stored(&w, &ticket.id).await;
    assert_eq!(after.survey.unwrap().score, Some(3));
    assert_eq!(after.status, TicketStatus::Closed);
    assert_eq!(after.waiting, None);
}

/// Step Functions throttles the first `SendTaskSuccess`.
struct ThrottledOnce {
    inner: Arc<InMemoryWorkflow>,
    calls: AtomicU32,
}

#[async_trait]
impl WorkflowClient for ThrottledOnce {
    async fn start(&self, id: &TicketId, input: &Value) -> Result<StartOutcome, WorkflowError> {
        self.inner.start(id, input).await
    }
    async fn send_task_success(&self, token: &str, output: &Value) -> Result<(), WorkflowError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(WorkflowError::Transient {
                code: "ThrottlingException".into(),
            });
        }
        self.inner.send_task_success(token, output).await
    }
    async fn send_task_failure(&self, token: &str, e: &str, c: &str) -> Result<(), WorkflowError> {
        self.inner.send_task_failure(token, e, c).await
    }
    async fn send_task_heartbeat(&self, token: &str) -> Result<(), WorkflowError> {
        self.inner.send_task_heartbeat(token).await
    }
}

#[tokio::test]
async fn a_throttled_resume_is_completed_by_the_repeat_and_the_answer_is_kept() {
    // given: the answer was recorded but the workflow could not be resumed
    let recorder = Arc::new(InMemoryWorkflow::new());
    let throttled = Arc::new(ThrottledOnce {
        inner: recorder.clone(),
        calls: AtomicU32::new(0),
    });
    let w = world_with(throttled, recorder);
    let ticket = waiting(&w, WaitKind::Survey).await;
    let first = answer(&w, &ticket.id, json!({"kind": "survey", "score": 5})).await;
    assert_eq!(status(&first), 503);
    assert_eq!(error(&first).0, "unavailable");
    assert_eq!(stored(&w, &ticket.id).await.survey.unwrap().score, Some(5));
    // when: the storefront sends the same answer again
    let again = answer(&w, &ticket.id, json!({"kind": "survey", "score": 5})).await;
    // then: resumed exactly once, the wait released
    assert_eq!(status(&again), 200);
    assert_eq!(body(&again)["status"], "closed");
    assert_eq!(
        task_successes(&w),
        vec![(TOKEN.to_owned(), json!({"kind": "survey", "score": 5}))]
    );
    assert_eq!(stored(&w, &ticket.id).await.waiting, None);
    // and a third delivery changes nothing
    assert_eq!(
        status(&answer(&w, &ticket.id, json!({"kind": "survey", "score": 5})).await),
        200
    );
    assert_eq!(task_successes(&w).len(), 1);
}

#[tokio::test]
async fn invalid_answers_name_the_field_at_fault() {
    let w = world();
    let survey = waiting(&w, WaitKind::Survey).await;
    let decision = ticket_waiting(w.store.as_ref(), "evt_d2", WaitKind::Decision, "tok-d").await;
    let parcel = ticket_waiting(w.store.as_ref(), "evt_r2", WaitKind::ReturnParcel, "tok-r").await;
    let line = |id: &str, q: u32, d: &str| json!({"line_id": id, "quantity": q, "disposition": d});
    let cases = [
        (&survey, json!({"kind": "survey", "score": 6}), "score"),
        (&survey, json!({"kind": "survey", "score": 0}), "score"),
        (&survey, json!({"kind": "survey", "score": "5"}), "score"),
        (&survey, json!({"kind": "survey"}), "score"),
        (&survey, json!({"kind": "feedback"}), "kind"),
        (&survey, json!({"score": 4}), "kind"),
        (
            &decision,
            json!({"kind": "decision", "option_id": "opt-99"}),
            "option_id",
        ),
        (&decision, json!({"kind": "decision"}), "option_id"),
        (
            &decision,
            json!({"kind": "decision", "option_id": "opt-1", "decline": {"reason": "x"}}),
            "decline",
        ),
        (
            &parcel,
            json!({"kind": "return_received",
                         "lines": [line("L1", 1, "restock"), line("L1", 1, "smashed")]}),
            "lines[1].disposition",
        ),
        (
            &parcel,
            json!({"kind": "return_received", "lines": [line("L9", 1, "restock")]}),
            "lines[0].line_id",
        ),
        (
            &parcel,
            json!({"kind": "return_received", "lines": [line("L2", 1, "restock")]}),
            "lines[0].line_id",
        ),
        (
            &parcel,
            json!({"kind": "return_received", "lines": [line("L1", 3, "restock")]}),
            "lines[0].quantity",
        ),
        (
            &parcel,
            json!({"kind": "return_received", "lines": []}),
            "lines",
        ),
    ];
    for (ticket, body, field) in cases {
        let response = answer(&w, &ticket.id, body.clone()).await;
        assert_eq!(status(&response), 400, "{body}");
        assert_eq!(
            error(&response),
            ("invalid_field".into(), Some(field.into())),
            "{body}"
        );
    }
    assert!(task_successes(&w).is_empty());
}

#[tokio::test]
async fn the_status_shows_the_proposal_and_timeline_but_no_token_or_contact_data() {
    // given
    let w = world();
    let ticket = waiting(&w, WaitKind::Decision).await;
    // when
    let response = handle(signed_get(&format!("/v1/tickets/{}", ticket.id)), &w.deps).await;
    // then
    assert_eq!(status(&response), 200);
    let doc = body(&response);
    assert_eq!(doc["ticket_id"], ticket.id.as_str());
    assert_eq!(doc["status"], "proposed");
    assert_eq!(doc["order_id"], "ORD-5521");
    assert_eq!(doc["problem_kind"], "damaged_in_transit");
    assert_eq!(doc["responsibility"], "logistics");
    assert_eq!(doc["waiting_for"], "decision");
    let option = &doc["proposal"]["options"][0];
    assert_eq!(option["id"], "opt-1");
    assert!(
        option["explanation"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    let timeline: Vec<&str> = doc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, vec!["received", "diagnosed", "proposed"]);
    assert_eq!(doc["timeline"][0]["actor"], "storefront");
    let text = doc.to_string();
    for hidden in [
        TOKEN,
        CUSTOMER_EMAIL,
        CUSTOMER_PHONE,
        CUSTOMER_NAME,
        DESCRIPTION,
        "task_token",
    ] {
        assert!(!text.contains(hidden), "{hidden:?} shown: {text}");
    }
}

#[tokio::test]
async fn unknown_and_malformed_ticket_ids_are_not_found() {
    let w = world();
    let unknown = TicketId::generate(now(), 99);

    for path in [
        format!("/v1/tickets/{unknown}"),
        "/v1/tickets/T-123".to_owned(),
    ] {
        let response = handle(signed_get(&path), &w.deps).await;
        assert_eq!(status(&response), 404, "{path}");
        assert_eq!(error(&response).0, "not_found");
    }
    let response = answer(&w, &unknown, json!({"kind": "survey", "score": 4})).await;
    assert_eq!(status(&response), 404);
}

#[tokio::test]
async fn the_status_needs_a_signature_over_the_empty_body() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Decision).await;
    let path = format!("/v1/tickets/{}", ticket.id);

    let unsigned = handle(event("GET", &path, json!({}), None), &w.deps).await;

    assert_eq!(status(&unsigned), 401);
    assert_eq!(error(&unsigned).0, "invalid_signature");
}

#[tokio::test]
async fn wrong_methods_and_unknown_routes_are_refused() {
    let w = world();
    let id = TicketId::generate(now(), 5);

    let post_status = handle(
        signed_post(&format!("/v1/tickets/{id}"), &json!({})),
        &w.deps,
    )
    .await;
    let get_responses = handle(signed_get(&responses(&id)), &w.deps).await;
    let unknown = handle(signed_get(&format!("/v1/tickets/{id}/other")), &w.deps).await;

    assert_eq!(
        (
            status(&post_status),
            post_status.headers.get("allow").unwrap().to_str().unwrap()
        ),
        (405, "GET")
    );
    assert_eq!(status(&get_responses), 405);
    assert_eq!(status(&unknown), 404);
}

async fn status_of(w: &World, id: &TicketId) -> Value {
    let response = handle(signed_get(&format!("/v1/tickets/{id}")), &w.deps).await;
    assert_eq!(status(&response), 200);
    body(&response)
}

#[tokio::test]
async fn text_answers_are_kept_on_the_ticket_shown_in_its_status_and_kept_out_of_the_trail() {
    let cases = [
        (
            WaitKind::Decision,
            json!({"kind": "decision", "decline": {"reason": "Too slow, call me on 139 5550 1234"}}),
            json!({"actor": "customer", "kind": "decline_reason",
                   "text": "Too slow, call me on 139 5550 1234"}),
        ),
        (
            WaitKind::Decision,
            json!({"kind": "decision", "counter": {"kind": "price_adjustment", "amount": 5000,
                   "note": "I keep it for 50 yuan back"}}),
            json!({"actor": "customer", "kind": "counter", "text": "I keep it for 50 yuan back",
                   "resolution": "price_adjustment", "amount": 5000, "currency": "CNY"}),
        ),
        (
            WaitKind::Survey,
            json!({"kind": "survey", "score": 2, "comment": "The courier was rude"}),
            json!({"actor": "customer", "kind": "survey_comment", "text": "The courier was rude"}),
        ),
        (
            WaitKind::Agent,
            json!({"kind": "agent_decision", "agent": "a-17",
                   "reject": {"reason": "The damage comes from a fall after delivery"}}),
            json!({"actor": "agent", "kind": "reject_reason",
                   "text": "The damage comes from a fall after delivery"}),
        ),
    ];
    for (kind, answer_body, mut expected) in cases {
        let w = world();
        let ticket = waiting(&w, kind).await;

        let response = answer(&w, &ticket.id, answer_body.clone()).await;

        assert_eq!(status(&response), 202, "{answer_body}");
        let text = expected["text"].as_str().unwrap().to_owned();
        let stored = stored(&w, &ticket.id).await;
        assert_eq!(stored.remarks.len(), 1, "{answer_body}");
        assert_eq!(stored.remarks[0].text.text(), text);
        assert_eq!(stored.remarks[0].at, now());
        let status = status_of(&w, &ticket.id).await;
        expected["at"] = json!(now().to_string());
        assert_eq!(status["remarks"], json!([expected]), "{answer_body}");
        assert!(
            !status.to_string().contains("a-17"),
            "no staff id: {status}"
        );
        let trail = format!("{:?}", w.store.audit_trail(&ticket.id).await.unwrap());
        assert!(
            !trail.contains(&text),
            "the trail records the fact only: {trail}"
        );
    }
}

#[tokio::test]
async fn answers_without_text_keep_no_remarks() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Survey).await;

    let response = answer(&w, &ticket.id, json!({"kind": "survey", "score": 5})).await;

    assert_eq!(status(&response), 202);
    assert!(stored(&w, &ticket.id).await.remarks.is_empty());
    assert!(status_of(&w, &ticket.id).await.get("remarks").is_none());
}

#[tokio::test]
async fn a_repeated_text_answer_is_kept_once() {
    let w = world();
    let ticket = waiting(&w, WaitKind::Decision).await;
    let decline = json!({"kind": "decision", "decline": {"reason": "too slow"}});

    let first = answer(&w, &ticket.id, decline.clone()).await;
    let repeat = answer(&w, &ticket.id, decline).await;

    assert_eq!((status(&first), status(&repeat)), (202, 200));
    assert_eq!(stored(&w, &ticket.id).await.remarks.len(), 1);
}

#[tokio::test]
async fn an_answer_that_loses_saves_to_concurrent_writers_is_retried_then_refused_as_a_conflict() {
    for (lost_saves, expected) in [(4, 202), (5, 409)] {
        let store = Arc::new(steps_support::RacingStore::new(0));
        let workflow = Arc::new(InMemoryWorkflow::new());
        let ticket = ticket_waiting(store.as_ref(), "evt_racing", WaitKind::Survey, TOKEN).await;
        workflow.open_task(TOKEN);
        let deps = Deps {
            store: store.clone(),
            workflow: workflow.clone(),
            clock: Arc::new(FixedClock::at(now())),
            secrets: secrets(),
        };
        store.conflicts_left.store(lost_saves, Ordering::SeqCst);

        let body = json!({"kind": "survey", "score": 4});
        let response = handle(signed_post(&responses(&ticket.id), &body), &deps).await;

        assert_eq!(status(&response), expected, "{lost_saves} lost saves");
        let stored = store.get(&ticket.id).await.unwrap().unwrap();
        let resumed = workflow
            .calls()
            .into_iter()
            .filter(|call| matches!(call, WorkflowCall::TaskSuccess { .. }))
            .count();
        if expected == 202 {
            assert_eq!(stored.survey.map(|s| s.score), Some(Some(4)));
            assert_eq!(resumed, 1);
        } else {
            assert_eq!(error(&response).0, "conflict");
            assert_eq!(stored.version, ticket.version, "nothing written");
            assert_eq!(resumed, 0, "not resumed");
        }
    }
}
