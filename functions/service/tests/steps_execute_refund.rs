//! The `execute-refund` step: exactly once per (ticket, step), never more than paid, and what
//! each gateway answer does to the ledger and the ticket.

mod metrics_support;
mod steps_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aftersales_domain::lifecycle::{Actor, TicketEvent};
use aftersales_domain::ticket::{ChosenResolution, ReturnedLine};
use aftersales_domain::{Disposition, LineId, Money, ResolutionKind, TicketId};
use aftersales_service::adapters::payment::{
    HttpTimeouts, InMemoryPaymentGateway, MerchantEndpointGateway, PaymentError, PaymentGateway,
    http_client,
};
use aftersales_service::handlers::steps::diagnose::{self, DiagnoseDeps, DiagnoseInput};
use aftersales_service::handlers::steps::execute_refund::{
    ExecuteRefundDeps, ExecuteRefundInput, RefundStep, handle,
};
use aftersales_service::signature::WebhookSecret;
use aftersales_service::store::{
    DynamoStore, MemoryStore, RefundLedger, TableNames, TicketStore, create_tables,
};
use metrics_support::captured;
use serde_json::json;
use steps_support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn deps<S: TicketStore + RefundLedger + 'static>(
    store: &Arc<S>,
    gateway: Arc<dyn PaymentGateway>,
) -> ExecuteRefundDeps {
    ExecuteRefundDeps {
        store: store.clone(),
        ledger: store.clone(),
        gateway,
        clock: clock(),
    }
}

fn input(id: &TicketId, step: RefundStep) -> ExecuteRefundInput {
    ExecuteRefundInput {
        ticket_id: id.clone(),
        step,
    }
}

async fn merchant_endpoint(server: &MockServer) -> Arc<dyn PaymentGateway> {
    let http = http_client(HttpTimeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(2),
    })
    .unwrap();
    let secret = WebhookSecret::new("whsec_merchant_test").unwrap();
    Arc::new(
        MerchantEndpointGateway::new(http, &format!("{}/refunds", server.uri()), secret).unwrap(),
    )
}

fn merchant_receipt(refund_id: &str, amount: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "refund_id": refund_id, "amount": amount, "currency": "CNY",
        "status": "succeeded", "created_at": "2026-11-10T10:00:01Z"
    }))
}

fn refund_issued_count(trail: &[aftersales_domain::lifecycle::AuditEvent]) -> usize {
    trail
        .iter()
        .filter(|e| matches!(e.event, TicketEvent::RefundIssued { .. }))
        .count()
}

#[tokio::test]
async fn invoked_three_times_the_gateway_is_called_once_with_the_same_receipt() {
    let store = Arc::new(MemoryStore::new());
    let gateway = Arc::new(CountingGateway::default());
    let id = decided(
        store.as_ref(),
        request_from(request_json("evt_once")),
        ResolutionKind::Refund,
        Some(29900),
    )
    .await;
    let deps = deps(&store, gateway.clone());

    let first = handle(input(&id, RefundStep::Refund), &deps).await.unwrap();
    let second = handle(input(&id, RefundStep::Refund), &deps).await.unwrap();
    let third = handle(input(&id, RefundStep::Refund), &deps).await.unwrap();

    assert_eq!(gateway.calls.load(Ordering::SeqCst), 1);
    assert!(!first.replayed && second.replayed && third.replayed);
    assert_eq!((first.amount, first.refund_id.as_str()), (29900, "re_1"));
    assert_eq!(second.refund_id, first.refund_id);
    assert_eq!(third.refund_id, first.refund_id);
    let ticket = load(store.as_ref(), &id).await;
    assert_eq!(ticket.refunds.len(), 1);
    assert_eq!(ticket.refunds[0].idempotency_key, format!("{id}:refund"));
    assert_eq!(refund_issued_count(&trail(store.as_ref(), &id).await), 1);
}

#[tokio::test]
async fn invoked_three_times_the_merchant_endpoint_sees_one_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/refunds"))
        .respond_with(merchant_receipt("rf_1", 29900))
        .expect(1)
        .mount(&server)
        .await;
    let store = Arc::new(MemoryStore::new());
    let id = decided(
        store.as_ref(),
        request_from(request_json("evt_once_http")),
        ResolutionKind::Refund,
        Some(29900),
    )
    .await;
    let deps = deps(&store, merchant_endpoint(&server).await);

    let outputs = [
        handle(input(&id, RefundStep::Refund), &deps).await.unwrap(),
        handle(input(&id, RefundStep::Refund), &deps).await.unwrap(),
        handle(input(&id, RefundStep::Refund), &deps).await.unwrap(),
    ];

    assert!(
        outputs
            .iter()
            .all(|o| o.refund_id == "rf_1" && o.amount == 29900)
    );
    server.verify().await;
}

/// Twenty tickets of one order (paid 20000), each decided for 3000: only six fit.
async fn twenty_concurrent_refunds_stay_within_what_was_paid<S>(store: Arc<S>)
where
    S: TicketStore + RefundLedger + 'static,
{
    let gateway = Arc::new(CountingGateway::default());
    let mut ids = Vec::new();
    for n in 0..20 {
        let mut json = request_json(&request_id(n));
        json["order"]["lines"][0]["quantity"] = json!(20);
        json["order"]["lines"][0]["unit_price"] = json!(1000);
        json["order"]["payment"]["paid"] = json!(20000);
        ids.push(
            decided(
                store.as_ref(),
                request_from(json),
                ResolutionKind::Refund,
                Some(3000),
            )
            .await,
        );
    }
    let deps = Arc::new(deps(&store, gateway.clone()));

    let runs: Vec<_> = ids
        .iter()
        .map(|id| {
            let deps = deps.clone();
            let id = id.clone();
            tokio::spawn(async move { handle(input(&id, RefundStep::Refund), &deps).await })
        })
        .collect();
    let mut results = Vec::new();
    for run in runs {
        results.push(run.await.expect("task"));
    }

    let paid: i64 = results.iter().flatten().map(|o| o.amount).sum();
    let refused = results.iter().filter(|r| r.is_err()).count();
    assert!(paid <= 20000, "refunded {paid} of 20000");
    assert_eq!(paid, 18000, "six refunds of 3000 fit");
    assert_eq!(refused, 14);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.name() == "PolicyViolation")
    );
    assert_eq!(gateway.calls.load(Ordering::SeqCst), 6);
    let order = "ORD-1".parse().unwrap();
    let committed = store.committed(&order).await.unwrap().unwrap();
    assert_eq!(committed.minor, 18000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_refunds_for_one_order_never_exceed_paid_in_memory() {
    twenty_concurrent_refunds_stay_within_what_was_paid(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_refunds_for_one_order_never_exceed_paid_in_dynamodb() {
    let client = moto_dynamodb().await;
    let names = TableNames::with_prefix(&format!("steps-refund-{}", std::process::id()));
    create_tables(&client, &names).await.unwrap();
    twenty_concurrent_refunds_stay_within_what_was_paid(Arc::new(DynamoStore::new(client, names)))
        .await;
}

#[tokio::test]
async fn a_declined_refund_is_payment_declined_and_frees_the_reservation() {
    let store = Arc::new(MemoryStore::new());
    let gateway = Arc::new(InMemoryPaymentGateway::new());
    gateway.fail_next(PaymentError::Declined {
        code: "charge_already_refunded".into(),
        message: "already refunded".into(),
    });
    let id = decided(
        store.as_ref(),
        request_from(request_json("evt_declined")),
        ResolutionKind::Refund,
        Some(29900),
    )
    .await;

    let error = handle(
        input(&id, RefundStep::Refund),
        &deps(&store, gateway.clone()),
    )
    .await
    .unwrap_err();

    assert_eq!(error.name(), "PaymentDeclined");
    let order = "ORD-1".parse().unwrap();
    let committed = store.committed(&order).await.unwrap();
    assert!(committed.is_none_or(|m| m.minor == 0), "{committed:?}");
    assert!(load(store.as_ref(), &id).await.refunds.is_empty());
}

#[tokio::test]
async fn a_transient_failure_is_retryable_and_the_retry_reuses_the_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/refunds"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/refunds"))
        .respond_with(merchant_receipt("rf_after_retry", 29900))
        .with_priority(2)
        .mount(&server)
        .await;
    let store = Arc::new(MemoryStore::new());
    let id = decided(
        store.as_ref(),
        request_from(request_json("evt_transient")),
        ResolutionKind::Refund,
        Some(29900),
    )
    .await;
    let deps = deps(&store, merchant_endpoint(&server).await);

    let error = handle(input(&id, RefundStep::Refund), &deps)
        .await
        .unwrap_err();
    let reserved = store.committed(&"ORD-1".parse().unwrap()).await.unwrap();
    let retried = handle(input(&id, RefundStep::Refund), &deps).await.unwrap();

    assert_eq!(error.name(), "Retryable");
    assert_eq!(
        reserved.map(|m| m.minor),
        Some(29900),
        "kept while retrying"
    );
    assert_eq!(retried.refund_id, "rf_after_retry");
    assert!(!retried.replayed);
    let requests = server.received_requests().await.unwrap();
    let keys: Vec<_> = requests
        .iter()
        .map(|r| {
            r.headers
                .get("Idempotency-Key")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(keys, [format!("{id}:refund"), format!("{id}:refund")]);
}

#[tokio::test]
async fn a_return_refund_pays_only_the_share_that_came_back_restockable() {
    let store = Arc::new(MemoryStore::new());
    let gateway = Arc::new(CountingGateway::default());
    let mut json = request_json("evt_return");
    json["order"]["lines"][0]["quantity"] = json!(2);
    json["order"]["lines"][0]["unit_price"] = json!(10000);
    json["order"]["payment"]["paid"] = json!(20000);
    json["problem"]["lines"][0]["quantity"] = json!(2);
    let id = open(&store, request_from(json)).await;
    let diagnose_deps = DiagnoseDeps {
        store: store.clone(),
        policy: policy(),
        clock: clock(),
    };
    let diagnose_input = DiagnoseInput {
        ticket_id: id.clone(),
    };
    diagnose::handle(diagnose_input, &diagnose_deps)
        .await
        .unwrap();
    advance(
        store.as_ref(),
        &id,
        vec![
            TicketEvent::EscalatedToAgent {
                reason: "test".into(),
            },
            TicketEvent::AgentDecided {
                resolution: ResolutionKind::ReturnRefund,
            },
        ],
        |ticket| {
            let line = LineId::new("L1").unwrap();
            ticket.chosen = Some(ChosenResolution {
                option_id: None,
                kind: ResolutionKind::ReturnRefund,
                amount: Some(Money::new(18800, "CNY".parse().unwrap())),
                chosen_by: Actor::Agent { id: "a-1".into() },
                exchange: None,
            });
            ticket.returned = vec![
                ReturnedLine {
                    line_id: line.clone(),
                    quantity: 1,
                    disposition: Disposition::Restock,
                },
                ReturnedLine {
                    line_id: line,
                    quantity: 1,
                    disposition: Disposition::Damaged,
                },
            ];
        },
    )
    .await;

    let out = handle(input(&id, RefundStep::ReturnRefund), &deps(&store, gateway))
        .await
        .unwrap();

    assert_eq!(
        out.amount, 9400,
        "half of 18800: one of two units is restockable"
    );
    assert_eq!(out.currency.code(), "CNY");
}

#[tokio::test]
async fn a_step_that_does_not_fit_the_chosen_resolution_is_a_policy_violation() {
    let store = Arc::new(MemoryStore::new());
    let gateway = Arc::new(CountingGateway::default());
    let id = decided(
        store.as_ref(),
        request_from(request_json("evt_mismatch")),
        ResolutionKind::Exchange,
        None,
    )
    .await;

    let error = handle(
        input(&id, RefundStep::Refund),
        &deps(&store, gateway.clone()),
    )
    .await
    .unwrap_err();

    assert_eq!(error.name(), "PolicyViolation");
    assert_eq!(gateway.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_price_adjustment_refunds_the_chosen_amount_once() {
    let store = Arc::new(MemoryStore::new());
    let gateway = Arc::new(CountingGateway::default());
    let id = decided(
        store.as_ref(),
        request_from(request_json("evt_adjust")),
        ResolutionKind::PriceAdjustment,
        Some(2990),
    )
    .await;

    let out = handle(
        input(&id, RefundStep::PriceAdjustment),
        &deps(&store, gateway.clone()),
    )
    .await
    .unwrap();

    assert_eq!(out.amount, 2990);
    assert_eq!(
        gateway.keys.lock().unwrap().as_slice(),
        [format!("{id}:price_adjustment")]
    );
}

#[tokio::test]
async fn a_refund_is_counted_once_by_step_and_its_amount_by_currency() {
    let store = Arc::new(MemoryStore::new());
    let gateway = Arc::new(CountingGateway::default());
    let id = decided(
        store.as_ref(),
        request_from(request_json("evt_metrics_refund")),
        ResolutionKind::Refund,
        Some(29900),
    )
    .await;
    let deps = deps(&store, gateway.clone());

    let (first, emitted) = captured(handle(input(&id, RefundStep::Refund), &deps)).await;

    assert!(!first.unwrap().replayed);
    assert_eq!(emitted.names(), ["RefundsIssued", "RefundedAmount"]);
    assert_eq!(emitted.value("RefundsIssued"), (json!(1), "Count".into()));
    assert_eq!(
        emitted.dimension_sets("RefundsIssued"),
        json!([["Stack"], ["Stack", "Step"]])
    );
    assert_eq!(
        emitted.value("RefundedAmount"),
        (json!(29900), "None".into())
    );
    assert_eq!(
        emitted.dimension_sets("RefundedAmount"),
        json!([["Stack", "Currency"]])
    );
    let document = emitted.document_of("RefundedAmount");
    assert_eq!(
        (&document["Step"], &document["Currency"]),
        (&json!("refund"), &json!("CNY"))
    );

    let (replay, emitted) = captured(handle(input(&id, RefundStep::Refund), &deps)).await;
    assert!(replay.unwrap().replayed);
    assert!(emitted.is_empty(), "a replayed refund counts nothing");
}

#[tokio::test]
async fn a_retry_after_the_ticket_could_not_record_the_refund_counts_it_once() {
    let store = Arc::new(RacingStore::new(3));
    let ledger = Arc::new(MemoryStore::new());
    let gateway = Arc::new(CountingGateway::default());
    let id = decided(
        &store.inner,
        request_from(request_json("evt_metrics_retry")),
        ResolutionKind::Refund,
        Some(29900),
    )
    .await;
    let deps = ExecuteRefundDeps {
        store: store.clone(),
        ledger,
        gateway: gateway.clone(),
        clock: clock(),
    };

    let (first, counted) = captured(handle(input(&id, RefundStep::Refund), &deps)).await;
    let (retry, recounted) = captured(handle(input(&id, RefundStep::Refund), &deps)).await;

    assert_eq!(first.unwrap_err().name(), "Conflict");
    assert!(retry.unwrap().replayed);
    assert_eq!(gateway.calls.load(Ordering::SeqCst), 1);
    assert_eq!(counted.names(), ["RefundsIssued", "RefundedAmount"]);
    assert!(recounted.is_empty());
    assert_eq!(load(&store.inner, &id).await.refunds.len(), 1);
}
