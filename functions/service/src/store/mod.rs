//! Where tickets, their audit trails, customer history and the refund ledger live.
//!
//! Two traits, each with a DynamoDB implementation (the cloud), an in-process one (tests) and
//! later the local stack's durable one; one contract suite (`tests/store_contract.rs`) runs
//! against every implementation. Every state change is a conditional write: a second writer
//! holding a stale `version` gets [`StoreError::Conflict`], never a lost update.

pub mod checks;
pub mod dynamo;
mod history;
pub mod memory;

pub use dynamo::{DynamoStore, TableNames, create_tables, table_definitions};
pub use memory::MemoryStore;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use aftersales_domain::history::History;
use aftersales_domain::lifecycle::{AuditEvent, TicketStatus};
use aftersales_domain::ticket::Ticket;
use aftersales_domain::{CustomerId, Money, OrderId, RequestId, ServiceRequest, TicketId};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Someone else changed the item first (stale version, or a concurrent create).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The refund would take the order's refunds above what was paid.
    #[error("refund of {requested} exceeds what is left to refund ({available})")]
    CapExceeded { requested: Money, available: Money },
    /// Throttling, timeouts, service errors: safe to retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data that does not deserialise, or a request the store cannot express.
    #[error("store data error: {0}")]
    Corrupt(String),
}

/// The answer to an idempotent create.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// The ticket was stored with its first audit event.
    New,
    /// A ticket for this `request_id` already exists; here it is, unchanged.
    Existing(Box<Ticket>),
}

/// A ticket as listed by the secondary indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSummary {
    pub id: TicketId,
    pub customer_id: CustomerId,
    pub order_id: OrderId,
    pub status: TicketStatus,
    pub received_at: Timestamp,
    pub resolution_due: Timestamp,
}

impl TicketSummary {
    pub fn of(ticket: &Ticket) -> TicketSummary {
        TicketSummary {
            id: ticket.id.clone(),
            customer_id: ticket.request.customer.id.clone(),
            order_id: ticket.request.order.id.clone(),
            status: ticket.status,
            received_at: ticket.received_at,
            resolution_due: ticket.resolution_due,
        }
    }
}

#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Store a new ticket and its first audit event, unless a ticket already exists for its
    /// `request_id`: then return that one. Atomic: concurrent creates for one request id yield
    /// exactly one ticket, and every caller gets it.
    async fn create(&self, ticket: &Ticket, first: &AuditEvent) -> Result<Created, StoreError>;

    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError>;

    async fn find_by_request(&self, request_id: &RequestId) -> Result<Option<Ticket>, StoreError>;

    /// Replace the stored ticket with `ticket` and append `audit` in one atomic write, if and
    /// only if the stored version is `expected_version`; `ticket.version` must be
    /// `expected_version + 1`. Otherwise [`StoreError::Conflict`] and nothing is written.
    async fn save(
        &self,
        ticket: &Ticket,
        expected_version: u64,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// The ticket's audit trail in sequence order.
    async fn audit_trail(&self, id: &TicketId) -> Result<Vec<AuditEvent>, StoreError>;

    /// The customer's tickets, newest first (GSI "tickets by customer").
    async fn tickets_by_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, StoreError>;

    /// Open tickets whose resolution is due before `before`, earliest first (GSI "open
    /// tickets by SLA due time").
    async fn open_tickets_due_before(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, StoreError>;

    /// What diagnosis and proposal need from the past for `request`: the customer's refunds
    /// since `since` and previous tickets, this order's refunded amount and units, and other
    /// open tickets claiming the same lines (the ticket `excluding` itself left out).
    async fn history(
        &self,
        request: &ServiceRequest,
        excluding: &TicketId,
        since: Timestamp,
    ) -> Result<History, StoreError>;
}

/// A refund about to be made: recorded before the gateway is called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundIntent {
    /// Deterministic: derived from ticket + step. The gateway's idempotency key too.
    pub idempotency_key: String,
    pub ticket_id: TicketId,
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub amount: Money,
    /// Units refunded per line, for the order's history.
    pub lines: Vec<(aftersales_domain::LineId, u32)>,
    pub at: Timestamp,
}

/// A refund the gateway confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReceipt {
    pub provider_refund_id: String,
    pub amount: Money,
    pub at: Timestamp,
}

/// Where an intent stands in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LedgerEntry {
    /// Reserved against the order's cap; the gateway call may or may not have happened.
    Reserved { intent: RefundIntent },
    /// The gateway confirmed it.
    Completed {
        intent: RefundIntent,
        receipt: StoredReceipt,
    },
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Newly reserved: call the gateway now.
    Reserved,
    /// This key was reserved before (a retry): call the gateway again with the same key —
    /// the gateway's idempotency makes that safe.
    AlreadyReserved(RefundIntent),
    /// This key already completed: return the stored receipt, do not call the gateway.
    AlreadyCompleted(StoredReceipt),
}

/// The order-level refund ledger: the sum of refunds for an order never exceeds what was paid,
/// however many tickets, retries and concurrent invocations there are.
#[async_trait]
pub trait RefundLedger: Send + Sync {
    /// Reserve `intent.amount` against `paid` for the order, keyed by `intent.idempotency_key`,
    /// with a conditional write: refused with [`StoreError::CapExceeded`] when reserved plus
    /// completed refunds would exceed `paid`. Idempotent by key.
    async fn reserve(&self, intent: &RefundIntent, paid: Money) -> Result<Reservation, StoreError>;

    /// Record the gateway's receipt for a reserved key. Idempotent for the same receipt.
    async fn complete(&self, key: &str, receipt: &StoredReceipt) -> Result<(), StoreError>;

    /// Give back a reservation the gateway definitively declined, so the amount is free again.
    async fn release(&self, key: &str) -> Result<(), StoreError>;

    async fn entry(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError>;

    /// Reserved plus completed refunds for the order, in its currency.
    async fn committed(&self, order: &OrderId) -> Result<Option<Money>, StoreError>;
}
