//! Shared givens for the step tests: requests, tickets in every status, a fixed clock, and
//! stores and gateways that misbehave on purpose.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use aftersales_domain::lifecycle::{Actor, AuditEvent, TicketEvent};
use aftersales_domain::ticket::{ChosenResolution, Ticket};
use aftersales_domain::{Money, Policy, RequestId, ResolutionKind, ServiceRequest, TicketId};
use aftersales_service::adapters::payment::{
    PaymentError, PaymentGateway, RefundReceipt, RefundRequest, RefundStatus,
};
use aftersales_service::clock::{Clock, FixedClock};
use aftersales_service::store::memory::MemoryStore;
use aftersales_service::store::{Created, StoreError, TicketStore};
use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::{Value, json};

pub const EMAIL: &str = "li.wei@example.com";
pub const PHONE: &str = "+86 138 0013 8000";
pub const NAME: &str = "Li Wei";
pub const DESCRIPTION: &str = "The keyboard stopped working after two days, very disappointed";

pub fn t(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

/// "Now" in every step test: five days after delivery.
pub fn now() -> Timestamp {
    t("2026-11-10T10:00:00Z")
}

pub fn clock() -> Arc<dyn Clock> {
    Arc::new(FixedClock::at(now()))
}

pub fn policy() -> Arc<Policy> {
    Arc::new(Policy::default_policy())
}

/// A keyboard order (29900 CNY paid, delivered) and a claim about it; `change` edits the JSON.
pub fn request_json(request_id: &str) -> Value {
    json!({
        "request_id": request_id,
        "channel": "app",
        "submitted_at": "2026-11-10T09:30:00Z",
        "customer": {"id": "C-1001", "name": NAME, "email": EMAIL, "phone": PHONE, "locale": "en"},
        "order": {
            "id": "ORD-1", "currency": "CNY",
            "placed_at": "2026-11-01T10:00:00Z", "delivered_at": "2026-11-05T10:00:00Z",
            "lines": [{"line_id": "L1", "sku": "KB-87", "title": "Keyboard",
                       "category": "electronics", "quantity": 1, "unit_price": 29900}],
            "payment": {"provider": "stripe", "reference": "pi_123", "paid": 29900}
        },
        "problem": {
            "kind": "quality_defect", "description": DESCRIPTION,
            "lines": [{"line_id": "L1", "quantity": 1}],
            "evidence": [{"kind": "photo", "url": "https://cdn.example.com/p/1.jpg"}]
        }
    })
}

pub fn request_from(json: Value) -> ServiceRequest {
    serde_json::from_value(json).expect("test request")
}

static ENTROPY: AtomicU64 = AtomicU64::new(1);

/// Opens a ticket for `request` in `store` (status `received`).
pub async fn open(store: &MemoryStore, request: ServiceRequest) -> TicketId {
    open_in(store, request).await
}

pub async fn open_in(store: &dyn TicketStore, request: ServiceRequest) -> TicketId {
    let at = t("2026-11-10T09:30:01Z");
    let entropy = u128::from(ENTROPY.fetch_add(1, Ordering::Relaxed));
    let (ticket, first) = Ticket::open(
        TicketId::generate(at, entropy),
        request,
        "f".repeat(64),
        at,
        t("2026-11-10T13:30:00Z"),
        t("2026-11-13T09:30:00Z"),
    );
    match store.create(&ticket, &first).await.expect("create ticket") {
        Created::New => ticket.id,
        Created::Existing(existing) => existing.id,
    }
}

pub async fn load(store: &dyn TicketStore, id: &TicketId) -> Ticket {
    store.get(id).await.expect("get").expect("ticket exists")
}

pub async fn events(store: &dyn TicketStore, id: &TicketId) -> Vec<&'static str> {
    store
        .audit_trail(id)
        .await
        .expect("audit trail")
        .iter()
        .map(|e| e.event.name())
        .collect()
}

pub async fn trail(store: &dyn TicketStore, id: &TicketId) -> Vec<AuditEvent> {
    store.audit_trail(id).await.expect("audit trail")
}

/// Records `events` (as the other steps or a person would) and applies `edit`, in one save.
pub async fn advance(
    store: &dyn TicketStore,
    id: &TicketId,
    events: Vec<TicketEvent>,
    edit: impl FnOnce(&mut Ticket),
) {
    let original = load(store, id).await;
    let mut ticket = original.clone();
    let mut audit = Vec::new();
    for event in events {
        audit.push(
            ticket
                .record(now(), Actor::Agent { id: "a-1".into() }, event)
                .expect("allowed transition"),
        );
    }
    edit(&mut ticket);
    ticket.version = original.version + 1;
    store
        .save(&ticket, original.version, &audit)
        .await
        .expect("save");
}

pub fn diagnosed_event() -> TicketEvent {
    TicketEvent::Diagnosed {
        problem_kind: aftersales_domain::ProblemKind::QualityDefect,
        responsibility: aftersales_domain::Responsibility::Merchant,
        needs_evidence: false,
        needs_review: true,
    }
}

/// A ticket an agent decided: `in_progress` with `kind` chosen for `amount` (no option).
pub async fn decided(
    store: &dyn TicketStore,
    request: ServiceRequest,
    kind: ResolutionKind,
    amount: Option<i64>,
) -> TicketId {
    let currency = request.order.currency;
    let id = open_in(store, request).await;
    advance(
        store,
        &id,
        vec![
            diagnosed_event(),
            TicketEvent::EscalatedToAgent {
                reason: "test".into(),
            },
            TicketEvent::AgentDecided { resolution: kind },
        ],
        |ticket| {
            ticket.chosen = Some(ChosenResolution {
                option_id: None,
                kind,
                amount: amount.map(|a| Money::new(a, currency)),
                chosen_by: Actor::Agent { id: "a-1".into() },
                exchange: None,
            });
        },
    )
    .await;
    id
}

pub fn request_id(n: usize) -> String {
    RequestId::new(format!("evt_{n}"))
        .expect("request id")
        .as_str()
        .to_owned()
}

/// A store whose first `n` saves lose the race (another writer got there first).
pub struct RacingStore {
    pub inner: MemoryStore,
    pub conflicts_left: AtomicU32,
}

impl RacingStore {
    pub fn new(conflicts: u32) -> RacingStore {
        RacingStore {
            inner: MemoryStore::new(),
            conflicts_left: AtomicU32::new(conflicts),
        }
    }
}

#[async_trait]
impl TicketStore for RacingStore {
    async fn create(&self, ticket: &Ticket, first: &AuditEvent) -> Result<Created, StoreError> {
        self.inner.create(ticket, first).await
    }
    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        self.inner.get(id).await
    }
    async fn find_by_request(&self, r: &RequestId) -> Result<Option<Ticket>, StoreError> {
        self.inner.find_by_request(r).await
    }
    async fn save(
        &self,
        ticket: &Ticket,
        expected: u64,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let raced = self
            .conflicts_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if raced {
            return Err(StoreError::Conflict(format!(
                "ticket {} changed",
                ticket.id
            )));
        }
        self.inner.save(ticket, expected, audit).await
    }
    async fn audit_trail(&self, id: &TicketId) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.audit_trail(id).await
    }
    async fn tickets_by_customer(
        &self,
        customer: &aftersales_domain::CustomerId,
        limit: usize,
    ) -> Result<Vec<aftersales_service::store::TicketSummary>, StoreError> {
        self.inner.tickets_by_customer(customer, limit).await
    }
    async fn open_tickets_due_before(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<aftersales_service::store::TicketSummary>, StoreError> {
        self.inner.open_tickets_due_before(before, limit).await
    }
    async fn history(
        &self,
        request: &ServiceRequest,
        excluding: &TicketId,
        since: Timestamp,
    ) -> Result<aftersales_domain::History, StoreError> {
        self.inner.history(request, excluding, since).await
    }
}

/// A gateway that counts its calls and refunds once per idempotency key, like a real one.
#[derive(Default)]
pub struct CountingGateway {
    pub calls: AtomicU32,
    pub keys: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl PaymentGateway for CountingGateway {
    async fn refund(&self, req: &RefundRequest) -> Result<RefundReceipt, PaymentError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(req.idempotency_key.clone());
        Ok(RefundReceipt {
            provider_refund_id: format!("re_{n}"),
            amount: req.amount,
            status: RefundStatus::Succeeded,
            created_at: now(),
        })
    }
}

/// A DynamoDB client on the shared moto server that sends one request at a time: moto's
/// `TransactWriteItems` is not atomic across its request threads, where DynamoDB serialises
/// conflicting transactions (as in `store_contract.rs` and docs/storage.md). Concurrent callers
/// still interleave between requests, act on stale reads and lose conditional writes.
pub async fn moto_dynamodb() -> aws_sdk_dynamodb::Client {
    use aftersales_service::testing::moto;
    let sdk = moto::shared().sdk_config().await;
    // moto listens on plain http on loopback.
    let plain_http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .http_client(one_at_a_time(plain_http))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

fn one_at_a_time(
    inner: aws_smithy_runtime_api::client::http::SharedHttpClient,
) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_runtime_api::client::http::{HttpClient, SharedHttpConnector, http_client_fn};
    static TURN: OnceLock<Arc<tokio::sync::Mutex<()>>> = OnceLock::new();
    http_client_fn(move |settings, components| {
        SharedHttpConnector::new(OneAtATime {
            inner: inner.http_connector(settings, components),
            turn: Arc::clone(TURN.get_or_init(Arc::default)),
        })
    })
}

#[derive(Debug)]
struct OneAtATime {
    inner: aws_smithy_runtime_api::client::http::SharedHttpConnector,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl aws_smithy_runtime_api::client::http::HttpConnector for OneAtATime {
    fn call(
        &self,
        request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        let inner = self.inner.clone();
        let turn = Arc::clone(&self.turn);
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::new(async move {
            let _turn = turn.lock_owned().await;
            inner.call(request).await
        })
    }
}
