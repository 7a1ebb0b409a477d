//! The durable store keeps the store contract: every behaviour of
//! `aftersales_service::testing::store_contract` (module `contract`, a fresh store file per
//! test), plus durability across reopening, a differential test against `MemoryStore` (the
//! reference) and a clear refusal of a file that is not a store.

use std::sync::Arc;

use aftersales_domain::lifecycle::{Actor, AuditEvent, TicketEvent};
use aftersales_domain::ticket::Ticket;
use aftersales_domain::{
    CustomerId, LineId, Money, OrderId, ProblemKind, Responsibility, ServiceRequest, TicketId,
};
use aftersales_local::store::{LocalStore, OpenError};
use aftersales_service::store::{Created, MemoryStore, RefundIntent, RefundLedger, TicketStore};
use asl::{Execution, StartOptions, StateMachine, VirtualClock};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

fn base() -> Timestamp {
    "2026-11-20T09:30:00Z".parse().unwrap()
}

fn cny(minor: i64) -> Money {
    Money::new(minor, "CNY".parse().unwrap())
}

fn request(request_id: &str, customer: &str, order: &str) -> ServiceRequest {
    serde_json::from_value(json!({
        "request_id": request_id, "channel": "app", "submitted_at": "2026-11-20T09:29:00Z",
        "customer": {"id": customer, "locale": "en", "email": "someone@example.com"},
        "order": {"id": order, "currency": "CNY", "placed_at": "2026-11-01T10:00:00Z",
                  "delivered_at": "2026-11-05T10:00:00Z",
                  "lines": [{"line_id": "L1", "sku": "KB-87", "title": "Keyboard",
                             "category": "electronics", "quantity": 3, "unit_price": 29900}],
                  "payment": {"provider": "stripe", "reference": "pi_1", "paid": 89700}},
        "problem": {"kind": "quality_defect", "description": "keys stick",
                    "lines": [{"line_id": "L1", "quantity": 1}]}
    }))
    .unwrap()
}

fn ticket(n: u128, request_id: &str, customer: &str, order: &str) -> (Ticket, AuditEvent) {
    Ticket::open(
        TicketId::generate(base(), n),
        request(request_id, customer, order),
        "f".repeat(64),
        base(),
        base() + SignedDuration::from_mins(60),
        base() + SignedDuration::from_hours(48),
    )
}

fn diagnose(ticket: &mut Ticket) -> AuditEvent {
    let entry = ticket
        .record(
            base() + SignedDuration::from_mins(1),
            Actor::system("test"),
            TicketEvent::Diagnosed {
                problem_kind: ProblemKind::QualityDefect,
                responsibility: Responsibility::Merchant,
                needs_evidence: false,
                needs_review: false,
            },
        )
        .unwrap();
    ticket.version += 1;
    entry
}

fn intent(key: &str, order: &str, customer: &str, minor: i64) -> RefundIntent {
    RefundIntent {
        idempotency_key: key.to_owned(),
        ticket_id: TicketId::generate(base(), 99),
        order_id: OrderId::new(order).unwrap(),
        customer_id: CustomerId::new(customer).unwrap(),
        amount: cny(minor),
        lines: vec![(LineId::new("L1").unwrap(), 1)],
        at: base(),
    }
}

fn open(dir: &tempfile::TempDir) -> Arc<LocalStore> {
    Arc::new(LocalStore::open(dir.path()).unwrap())
}

/// A workflow run named after `ticket`, parked on a Wait state.
fn run_for(ticket: &TicketId) -> Execution {
    let machine = StateMachine::from_json_str(
        r#"{"StartAt":"Hold","States":{"Hold":{"Type":"Wait","Seconds":60,"End":true}}}"#,
    )
    .unwrap();
    let options = StartOptions {
        name: Some(ticket.as_str().to_owned()),
        ..StartOptions::default()
    };
    Execution::start(
        &machine,
        json!({"ticket": ticket.as_str()}),
        options,
        &VirtualClock::new(base()),
    )
}

/// The run stored for `ticket`, as self-contained JSON.
async fn stored_run(store: &LocalStore, ticket: &TicketId) -> String {
    let run = store.run(ticket.as_str()).await.unwrap();
    run.expect("a stored run").to_json().unwrap()
}

/// A store in a new temporary directory, kept as long as the store.
fn fresh_store() -> (Arc<LocalStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (open(&dir), dir)
}

aftersales_service::store_contract!(contract, fresh_store());

#[tokio::test]
async fn everything_survives_closing_and_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (mut t, first) = ticket(1, "evt-1", "C-1", "O-1");
    {
        let store = open(&dir);
        store.create(&t, &first).await.unwrap();
        let entry = diagnose(&mut t);
        store.save(&t, 1, &[entry]).await.unwrap();
        store
            .reserve(&intent("k:refund", "O-1", "C-1", 700), cny(1000))
            .await
            .unwrap();
        store.put_run(t.id.as_str(), &run_for(&t.id)).await.unwrap();
        store
            .enqueue("quality", "k1", json!({"n": 1}))
            .await
            .unwrap();
        store
            .enqueue("quality", "k1", json!({"n": 1}))
            .await
            .unwrap();
        store.push_outbox("m1", json!({"n": 2})).await.unwrap();
    }
    let store = open(&dir);
    assert_eq!(store.get(&t.id).await.unwrap().unwrap(), t);
    assert_eq!(store.audit_trail(&t.id).await.unwrap().len(), 2);
    assert_eq!(
        store
            .committed(&OrderId::new("O-1").unwrap())
            .await
            .unwrap(),
        Some(cny(700))
    );
    assert_eq!(
        stored_run(&store, &t.id).await,
        run_for(&t.id).to_json().unwrap()
    );
    let reader = store.reader();
    assert_eq!(
        reader.queue("quality").unwrap().len(),
        1,
        "one record per key"
    );
    assert_eq!(reader.outbox().unwrap().len(), 1);
}

#[tokio::test]
async fn history_agrees_with_the_reference_store() {
    let dir = tempfile::tempdir().unwrap();
    let local = open(&dir);
    let memory = MemoryStore::new();
    let (t1, f1) = ticket(1, "evt-1", "C-1", "O-1");
    let (t2, f2) = ticket(2, "evt-2", "C-1", "O-2");
    let (t3, f3) = ticket(3, "evt-3", "C-2", "O-1");
    for (t, f) in [(&t1, &f1), (&t2, &f2), (&t3, &f3)] {
        local.create(t, f).await.unwrap();
        memory.create(t, f).await.unwrap();
    }
    for i in [
        intent("r1", "O-1", "C-1", 300),
        intent("r2", "O-2", "C-1", 200),
    ] {
        local.reserve(&i, cny(89700)).await.unwrap();
        memory.reserve(&i, cny(89700)).await.unwrap();
    }
    local.release("r2").await.unwrap();
    memory.release("r2").await.unwrap();

    let since = base() - SignedDuration::from_hours(24 * 90);
    for (t, _) in [(&t1, &f1), (&t2, &f2), (&t3, &f3)] {
        assert_eq!(
            local.history(&t.request, &t.id, since).await.unwrap(),
            memory.history(&t.request, &t.id, since).await.unwrap()
        );
    }
}

#[test]
fn a_file_that_is_not_a_store_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(aftersales_local::store::FILE_NAME),
        b"this is not a database".repeat(300),
    )
    .unwrap();
    match LocalStore::open(dir.path()) {
        Err(OpenError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_share_commits_and_all_are_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let n = 200u128;
    let tickets: Vec<(Ticket, AuditEvent)> = (0..n)
        .map(|i| {
            ticket(
                1000 + i,
                &format!("evt-group-{i}"),
                &format!("C-{}", i % 7),
                &format!("O-{i}"),
            )
        })
        .collect();
    {
        let store = open(&dir);
        let before = store.commit_stats();
        let mut tasks = Vec::new();
        for (t, first) in tickets.clone() {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                store
                    .create_with_run(&t, &first, Some(&run_for(&t.id)))
                    .await
            }));
        }
        // A repeat of one request id in the same burst gets the same ticket, not a second one.
        let (again, again_first) = ticket(5000, "evt-group-0", "C-0", "O-0");
        let repeat = store.create(&again, &again_first);
        let (repeat, created) = tokio::join!(repeat, async {
            let mut all = Vec::new();
            for task in tasks {
                all.push(task.await.unwrap());
            }
            all
        });
        for result in created {
            assert!(
                matches!(result, Ok(Created::New)) || matches!(result, Ok(Created::Existing(_)))
            );
        }
        match repeat.unwrap() {
            Created::Existing(existing) => assert_eq!(existing.id, tickets[0].0.id),
            Created::New => {}
        }
        let after = store.commit_stats();
        let writes = after.writes - before.writes;
        let commits = after.commits - before.commits;
        assert_eq!(writes, n as u64 + 1);
        assert!(
            commits < writes,
            "{writes} concurrent writes took {commits} commits: none were grouped"
        );
    }
    let store = open(&dir);
    let mut found = 0;
    for (t, _) in &tickets {
        let Some(stored) = store.find_by_request(&t.request.request_id).await.unwrap() else {
            panic!("request {} lost", t.request.request_id);
        };
        if stored.id == t.id {
            found += 1;
            assert_eq!(store.audit_trail(&t.id).await.unwrap().len(), 1);
            assert_eq!(
                stored_run(&store, &t.id).await,
                run_for(&t.id).to_json().unwrap()
            );
        }
    }
    // Only the repeat (evt-group-0) may have won its request id over the original.
    assert!(found >= n as usize - 1);
    let by_customer = store
        .tickets_by_customer(&CustomerId::new("C-3").unwrap(), 1000)
        .await
        .unwrap();
    assert_eq!(
        by_customer.len(),
        tickets
            .iter()
            .filter(|(t, _)| t.request.customer.id.as_str() == "C-3")
            .count()
    );
}
