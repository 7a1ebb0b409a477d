//! Item layouts: key patterns, attribute names, and the encoding of domain values with
//! serde_dynamo. Each domain value is stored whole in `body`; the other attributes are keys,
//! index keys and copies for conditions and projections, written in the same put.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use aftersales_domain::lifecycle::{AuditEvent, TicketStatus};
use aftersales_domain::ticket::Ticket;
use aftersales_domain::{Currency, OrderId, RequestId, TicketId};

use super::errors::encoding;
use crate::store::history::{ClaimedLine, OrderTicket};
use crate::store::{LedgerEntry, RefundIntent, StoreError, TicketSummary};

pub(super) type Item = HashMap<String, AttributeValue>;

/// Attribute names.
pub(super) mod attr {
    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    pub const KIND: &str = "kind";
    pub const BODY: &str = "body";
    pub const VERSION: &str = "version";
    pub const TICKET_ID: &str = "ticket_id";
    pub const ID: &str = "id";
    pub const CUSTOMER_ID: &str = "customer_id";
    pub const ORDER_ID: &str = "order_id";
    pub const STATUS: &str = "status";
    pub const RECEIVED_AT: &str = "received_at";
    pub const RESOLUTION_DUE: &str = "resolution_due";
    pub const CREATED_KEY: &str = "created_key";
    pub const OPEN_KEY: &str = "open_key";
    pub const DUE_KEY: &str = "due_key";
    pub const CLAIMS: &str = "claims";
    pub const STATE: &str = "state";
    pub const COMMITTED: &str = "committed";
    pub const CURRENCY: &str = "currency";
    pub const REFUND_KEY: &str = "refund_key";
    pub const PROVIDER_REFUND_ID: &str = "provider_refund_id";
    pub const RELEASED_AT: &str = "released_at";
    pub const EXPIRES_AT: &str = "expires_at";
}

/// Global secondary index names.
pub(super) mod index {
    /// tickets: `customer_id` / `created_key`.
    pub const TICKETS_BY_CUSTOMER: &str = "by_customer";
    /// tickets: `open_key` / `due_key`, sparse: only open tickets carry the keys.
    pub const OPEN_TICKETS_BY_DUE: &str = "open_by_due";
    /// tickets: `order_id` / `created_key`.
    pub const TICKETS_BY_ORDER: &str = "by_order";
    /// ledger: `customer_id` / `refund_key`, live refund intents only.
    pub const REFUNDS_BY_CUSTOMER: &str = "refunds_by_customer";
    /// ledger: `order_id` / `refund_key`, live refund intents only.
    pub const REFUNDS_BY_ORDER: &str = "refunds_by_order";
}

/// The single partition of the open-tickets index.
pub(super) const OPEN: &str = "open";

pub(super) const TICKET_SK: &str = "TICKET";
pub(super) const REQUEST_SK: &str = "REQUEST";
pub(super) const AUDIT_PREFIX: &str = "AUDIT#";

pub(super) fn ticket_pk(id: &TicketId) -> String {
    format!("TICKET#{id}")
}

pub(super) fn audit_sk(seq: u32) -> String {
    format!("{AUDIT_PREFIX}{seq:010}")
}

pub(super) fn request_pk(id: &RequestId) -> String {
    format!("REQUEST#{id}")
}

pub(super) fn order_pk(id: &OrderId) -> String {
    format!("ORDER#{id}")
}

pub(super) fn refund_pk(key: &str) -> String {
    format!("REFUND#{key}")
}

/// A fixed-width UTC time (`2026-11-20T09:30:00.000000000Z`) whose text order is time order.
pub(super) fn sort_time(at: Timestamp) -> String {
    let at = at.max(Timestamp::UNIX_EPOCH);
    format!(
        "{}.{:09}Z",
        at.strftime("%Y-%m-%dT%H:%M:%S"),
        at.subsec_nanosecond()
    )
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn body<T: Serialize>(what: &str, value: &T) -> Result<AttributeValue, StoreError> {
    let item: Item = serde_dynamo::to_item(value).map_err(|e| encoding(what, e))?;
    Ok(AttributeValue::M(item))
}

fn decode_body<T: DeserializeOwned>(what: &str, item: &mut Item) -> Result<T, StoreError> {
    match item.remove(attr::BODY) {
        Some(AttributeValue::M(map)) => serde_dynamo::from_item(map).map_err(|e| encoding(what, e)),
        _ => Err(StoreError::Corrupt(format!("{what}: no body"))),
    }
}

/// Decodes the top-level attributes of an item (or an index projection of it).
pub(super) fn decode<T: DeserializeOwned>(what: &str, item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| encoding(what, e))
}

/// The ticket item: the ticket in `body`, its summary at the top level for the indexes.
pub(super) fn ticket_item(ticket: &Ticket) -> Result<Item, StoreError> {
    let what = "ticket";
    let mut item: Item =
        serde_dynamo::to_item(TicketSummary::of(ticket)).map_err(|e| encoding(what, e))?;
    let claims: AttributeValue = serde_dynamo::to_attribute_value(ClaimedLine::of(&ticket.request))
        .map_err(|e| encoding(what, e))?;
    let created = format!("{}#{}", sort_time(ticket.received_at), ticket.id);
    item.extend([
        (attr::PK.to_owned(), s(ticket_pk(&ticket.id))),
        (attr::SK.to_owned(), s(TICKET_SK)),
        (attr::KIND.to_owned(), s("ticket")),
        (attr::VERSION.to_owned(), n(ticket.version)),
        (attr::CREATED_KEY.to_owned(), s(created)),
        (attr::CLAIMS.to_owned(), claims),
        (attr::BODY.to_owned(), body(what, ticket)?),
    ]);
    // Sparse index: a ticket leaves "open by due time" by not carrying the keys.
    if ticket.status.is_open() {
        let due = format!("{}#{}", sort_time(ticket.resolution_due), ticket.id);
        item.insert(attr::OPEN_KEY.to_owned(), s(OPEN));
        item.insert(attr::DUE_KEY.to_owned(), s(due));
    }
    Ok(item)
}

pub(super) fn decode_ticket(mut item: Item) -> Result<Ticket, StoreError> {
    decode_body("ticket", &mut item)
}

pub(super) fn audit_item(ticket: &TicketId, event: &AuditEvent) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        (attr::PK.to_owned(), s(ticket_pk(ticket))),
        (attr::SK.to_owned(), s(audit_sk(event.seq))),
        (attr::KIND.to_owned(), s("audit")),
        (attr::BODY.to_owned(), body("audit event", event)?),
    ]))
}

pub(super) fn decode_audit(mut item: Item) -> Result<AuditEvent, StoreError> {
    decode_body("audit event", &mut item)
}

pub(super) fn request_item(request: &RequestId, ticket: &TicketId) -> Item {
    HashMap::from([
        (attr::PK.to_owned(), s(request_pk(request))),
        (attr::SK.to_owned(), s(REQUEST_SK)),
        (attr::KIND.to_owned(), s("request")),
        (attr::TICKET_ID.to_owned(), s(ticket.as_str())),
    ])
}

#[derive(Deserialize)]
pub(super) struct RequestClaim {
    pub ticket_id: TicketId,
}

/// What the "tickets by order" index projects.
#[derive(Deserialize)]
struct OrderTicketItem {
    id: TicketId,
    status: TicketStatus,
    #[serde(default)]
    claims: Vec<ClaimedLine>,
}

pub(super) fn decode_order_ticket(item: Item) -> Result<OrderTicket, StoreError> {
    let found: OrderTicketItem = decode("ticket of order", item)?;
    Ok(OrderTicket {
        id: found.id,
        status: found.status,
        claims: found.claims,
    })
}

#[derive(Deserialize)]
pub(super) struct IdOnly {
    pub id: TicketId,
}

/// The per-order ledger item: the sum of reserved and completed refunds.
#[derive(Deserialize)]
pub(super) struct OrderLedger {
    pub committed: i64,
    pub currency: Currency,
}

/// Where a refund intent item stands (`state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RefundState {
    Reserved,
    Completed,
    /// Given back; kept until `expires_at` so operators can see it, reservable again.
    Released,
}

impl RefundState {
    pub(super) fn name(self) -> &'static str {
        match self {
            RefundState::Reserved => "reserved",
            RefundState::Completed => "completed",
            RefundState::Released => "released",
        }
    }
}

/// A refund intent item as read back.
pub(super) struct StoredRefund {
    pub state: RefundState,
    pub entry: LedgerEntry,
}

impl StoredRefund {
    pub(super) fn intent(&self) -> &RefundIntent {
        match &self.entry {
            LedgerEntry::Reserved { intent } | LedgerEntry::Completed { intent, .. } => intent,
        }
    }
}

#[derive(Deserialize)]
struct StateOnly {
    state: RefundState,
}

pub(super) fn refund_item(entry: &LedgerEntry) -> Result<Item, StoreError> {
    let (intent, state) = match entry {
        LedgerEntry::Reserved { intent } => (intent, RefundState::Reserved),
        LedgerEntry::Completed { intent, .. } => (intent, RefundState::Completed),
    };
    let refund_key = format!("{}#{}", sort_time(intent.at), intent.idempotency_key);
    let mut item = HashMap::from([
        (attr::PK.to_owned(), s(refund_pk(&intent.idempotency_key))),
        (attr::KIND.to_owned(), s("refund")),
        (attr::STATE.to_owned(), s(state.name())),
        (attr::ORDER_ID.to_owned(), s(intent.order_id.as_str())),
        (attr::CUSTOMER_ID.to_owned(), s(intent.customer_id.as_str())),
        (attr::REFUND_KEY.to_owned(), s(refund_key)),
        (attr::BODY.to_owned(), body("refund", entry)?),
    ]);
    if let LedgerEntry::Completed { receipt, .. } = entry {
        item.insert(
            attr::PROVIDER_REFUND_ID.to_owned(),
            s(receipt.provider_refund_id.as_str()),
        );
    }
    Ok(item)
}

pub(super) fn encode_entry(entry: &LedgerEntry) -> Result<AttributeValue, StoreError> {
    body("refund", entry)
}

pub(super) fn decode_refund(mut item: Item) -> Result<StoredRefund, StoreError> {
    let entry: LedgerEntry = decode_body("refund", &mut item)?;
    let StateOnly { state } = decode("refund state", item)?;
    Ok(StoredRefund { state, entry })
}
