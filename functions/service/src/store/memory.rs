//! The in-process store: the reference implementation of both traits, for handler tests.
//!
//! One mutex guards everything, so each operation is atomic like a DynamoDB transaction; every
//! check runs before the first change, so a refused operation writes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use jiff::Timestamp;

use aftersales_domain::history::History;
use aftersales_domain::lifecycle::AuditEvent;
use aftersales_domain::ticket::Ticket;
use aftersales_domain::{CustomerId, Money, OrderId, RequestId, ServiceRequest, TicketId};

use super::history::{self, ClaimedLine, Found, OrderTicket};
use super::{
    Created, LedgerEntry, RefundIntent, RefundLedger, Reservation, StoreError, StoredReceipt,
    TicketStore, TicketSummary, checks,
};

/// Tickets, audit trails and the refund ledger in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tickets: HashMap<TicketId, Ticket>,
    audit: HashMap<TicketId, BTreeMap<u32, AuditEvent>>,
    requests: HashMap<RequestId, TicketId>,
    committed: HashMap<OrderId, Money>,
    /// Refund intents by key; `None` once released (the key may be reserved again).
    refunds: HashMap<String, Option<LedgerEntry>>,
}

fn intent_of(entry: &LedgerEntry) -> &RefundIntent {
    match entry {
        LedgerEntry::Reserved { intent } | LedgerEntry::Completed { intent, .. } => intent,
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every operation checks before it changes anything, so a panicking holder leaves
        // consistent state behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn live_refunds(&self) -> impl Iterator<Item = &RefundIntent> {
        self.refunds.values().flatten().map(intent_of)
    }
}

#[async_trait]
impl TicketStore for MemoryStore {
    async fn create(&self, ticket: &Ticket, first: &AuditEvent) -> Result<Created, StoreError> {
        let mut state = self.state();
        if let Some(id) = state.requests.get(&ticket.request.request_id) {
            let existing = state.tickets.get(id).ok_or_else(|| {
                StoreError::Corrupt(format!("request claim points at missing ticket {id}"))
            })?;
            return Ok(Created::Existing(Box::new(existing.clone())));
        }
        if state.tickets.contains_key(&ticket.id) {
            return Err(StoreError::Conflict(format!(
                "ticket {} exists for another request",
                ticket.id
            )));
        }
        state
            .requests
            .insert(ticket.request.request_id.clone(), ticket.id.clone());
        state.tickets.insert(ticket.id.clone(), ticket.clone());
        state.audit.insert(
            ticket.id.clone(),
            BTreeMap::from([(first.seq, first.clone())]),
        );
        Ok(Created::New)
    }

    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        Ok(self.state().tickets.get(id).cloned())
    }

    async fn find_by_request(&self, request_id: &RequestId) -> Result<Option<Ticket>, StoreError> {
        let state = self.state();
        Ok(state
            .requests
            .get(request_id)
            .and_then(|id| state.tickets.get(id))
            .cloned())
    }

    async fn save(
        &self,
        ticket: &Ticket,
        expected_version: u64,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        checks::save_request(ticket, expected_version, audit)?;
        let mut state = self.state();
        let stored = state
            .tickets
            .get(&ticket.id)
            .ok_or_else(|| StoreError::NotFound(format!("ticket {}", ticket.id)))?;
        if stored.version != expected_version {
            return Err(StoreError::Conflict(format!(
                "ticket {} is at version {}, not {expected_version}",
                ticket.id, stored.version
            )));
        }
        let trail = state.audit.entry(ticket.id.clone()).or_default();
        if let Some(taken) = audit.iter().find(|e| trail.contains_key(&e.seq)) {
            return Err(StoreError::Conflict(format!(
                "ticket {}: audit seq {} is already recorded",
                ticket.id, taken.seq
            )));
        }
        for event in audit {
            trail.insert(event.seq, event.clone());
        }
        state.tickets.insert(ticket.id.clone(), ticket.clone());
        Ok(())
    }

    async fn audit_trail(&self, id: &TicketId) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(self
            .state()
            .audit
            .get(id)
            .map(|trail| trail.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn tickets_by_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, StoreError> {
        let state = self.state();
        let mut found: Vec<TicketSummary> = state
            .tickets
            .values()
            .filter(|t| &t.request.customer.id == customer)
            .map(TicketSummary::of)
            .collect();
        found.sort_by(|a, b| (b.received_at, &b.id).cmp(&(a.received_at, &a.id)));
        found.truncate(limit);
        Ok(found)
    }

    async fn open_tickets_due_before(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, StoreError> {
        let state = self.state();
        let mut found: Vec<TicketSummary> = state
            .tickets
            .values()
            .filter(|t| t.status.is_open() && t.resolution_due < before)
            .map(TicketSummary::of)
            .collect();
        found.sort_by(|a, b| (a.resolution_due, &a.id).cmp(&(b.resolution_due, &b.id)));
        found.truncate(limit);
        Ok(found)
    }

    async fn history(
        &self,
        request: &ServiceRequest,
        excluding: &TicketId,
        since: Timestamp,
    ) -> Result<History, StoreError> {
        let state = self.state();
        let customer = &request.customer.id;
        let order = &request.order.id;
        let customer_tickets: Vec<TicketId> = state
            .tickets
            .values()
            .filter(|t| &t.request.customer.id == customer)
            .map(|t| t.id.clone())
            .collect();
        let customer_refunds: Vec<RefundIntent> = state
            .live_refunds()
            .filter(|r| &r.customer_id == customer)
            .cloned()
            .collect();
        let order_refunds: Vec<RefundIntent> = state
            .live_refunds()
            .filter(|r| &r.order_id == order)
            .cloned()
            .collect();
        let order_tickets: Vec<OrderTicket> = state
            .tickets
            .values()
            .filter(|t| &t.request.order.id == order)
            .map(|t| OrderTicket {
                id: t.id.clone(),
                status: t.status,
                claims: ClaimedLine::of(&t.request),
            })
            .collect();
        history::assemble(
            request,
            excluding,
            since,
            Found {
                customer_tickets: &customer_tickets,
                customer_refunds: &customer_refunds,
                order_refunds: &order_refunds,
                order_tickets: &order_tickets,
            },
        )
    }
}

#[async_trait]
impl RefundLedger for MemoryStore {
    async fn reserve(&self, intent: &RefundIntent, paid: Money) -> Result<Reservation, StoreError> {
        checks::reservation(intent, paid)?;
        let mut state = self.state();
        let key = &intent.idempotency_key;
        match state.refunds.get(key) {
            Some(Some(LedgerEntry::Reserved { intent })) => {
                return Ok(Reservation::AlreadyReserved(intent.clone()));
            }
            Some(Some(LedgerEntry::Completed { receipt, .. })) => {
                return Ok(Reservation::AlreadyCompleted(receipt.clone()));
            }
            Some(None) | None => {}
        }
        let committed = state
            .committed
            .get(&intent.order_id)
            .copied()
            .unwrap_or(Money::zero(paid.currency));
        checks::ledger_currency(key, committed, intent.amount)?;
        let after = committed
            .checked_add(intent.amount)
            .map_err(|_| checks::cap_exceeded(intent.amount, paid, committed))?;
        if after.minor > paid.minor {
            return Err(checks::cap_exceeded(intent.amount, paid, committed));
        }
        state.committed.insert(intent.order_id.clone(), after);
        state.refunds.insert(
            key.clone(),
            Some(LedgerEntry::Reserved {
                intent: intent.clone(),
            }),
        );
        Ok(Reservation::Reserved)
    }

    async fn complete(&self, key: &str, receipt: &StoredReceipt) -> Result<(), StoreError> {
        let mut state = self.state();
        let intent = match state.refunds.get(key) {
            Some(Some(LedgerEntry::Reserved { intent })) => intent.clone(),
            Some(Some(LedgerEntry::Completed {
                receipt: stored, ..
            })) => {
                return if checks::same_receipt(stored, receipt) {
                    Ok(())
                } else {
                    Err(checks::completed_differently(key))
                };
            }
            Some(None) | None => {
                return Err(StoreError::NotFound(format!("refund reservation {key}")));
            }
        };
        checks::receipt_fits(&intent, receipt)?;
        state.refunds.insert(
            key.to_owned(),
            Some(LedgerEntry::Completed {
                intent,
                receipt: receipt.clone(),
            }),
        );
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        let intent = match state.refunds.get(key) {
            Some(Some(LedgerEntry::Reserved { intent })) => intent.clone(),
            Some(Some(LedgerEntry::Completed { .. })) => {
                return Err(StoreError::Conflict(format!(
                    "refund {key} is completed and cannot be released"
                )));
            }
            Some(None) => return Ok(()),
            None => return Err(StoreError::NotFound(format!("refund reservation {key}"))),
        };
        let committed = state
            .committed
            .get(&intent.order_id)
            .copied()
            .ok_or_else(|| {
                StoreError::Corrupt(format!("refund {key} reserved without an order ledger"))
            })?;
        let after = committed
            .checked_sub(intent.amount)
            .ok()
            .filter(|m| !m.is_negative())
            .ok_or_else(|| {
                StoreError::Corrupt(format!("refund {key}: the order ledger does not cover it"))
            })?;
        state.committed.insert(intent.order_id.clone(), after);
        state.refunds.insert(key.to_owned(), None);
        Ok(())
    }

    async fn entry(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        Ok(match self.state().refunds.get(key) {
            Some(Some(entry)) => Some(entry.clone()),
            Some(None) | None => None,
        })
    }

    async fn committed(&self, order: &OrderId) -> Result<Option<Money>, StoreError> {
        Ok(self.state().committed.get(order).copied())
    }
}
