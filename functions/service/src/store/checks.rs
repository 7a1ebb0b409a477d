//! Requests every store refuses the same way, before anything is read or written: shared by
//! `MemoryStore`, `DynamoStore` and the local stack's durable store.

use std::collections::BTreeSet;

use aftersales_domain::Money;
use aftersales_domain::lifecycle::AuditEvent;
use aftersales_domain::ticket::Ticket;

use super::{RefundIntent, StoreError, StoredReceipt};

/// One DynamoDB transaction holds at most 100 writes: the ticket and 99 audit events.
pub const MAX_AUDIT_EVENTS_PER_SAVE: usize = 99;

/// A save must move the version by exactly one and append distinct audit sequence numbers.
pub fn save_request(
    ticket: &Ticket,
    expected_version: u64,
    audit: &[AuditEvent],
) -> Result<(), StoreError> {
    if expected_version.checked_add(1) != Some(ticket.version) {
        return Err(StoreError::Corrupt(format!(
            "ticket {} carries version {} but the save expects {expected_version}",
            ticket.id, ticket.version
        )));
    }
    if audit.len() > MAX_AUDIT_EVENTS_PER_SAVE {
        return Err(StoreError::Corrupt(format!(
            "ticket {}: {} audit events in one save, at most {MAX_AUDIT_EVENTS_PER_SAVE}",
            ticket.id,
            audit.len()
        )));
    }
    let mut seen = BTreeSet::new();
    for event in audit {
        if !seen.insert(event.seq) {
            return Err(StoreError::Corrupt(format!(
                "ticket {}: audit seq {} appears twice in one save",
                ticket.id, event.seq
            )));
        }
    }
    Ok(())
}

/// A reservation is a positive amount in the currency that was paid, under a non-empty key.
pub fn reservation(intent: &RefundIntent, paid: Money) -> Result<(), StoreError> {
    if intent.idempotency_key.is_empty() {
        return Err(StoreError::Corrupt(
            "empty refund idempotency key".to_owned(),
        ));
    }
    if intent.amount.currency != paid.currency {
        return Err(StoreError::Corrupt(format!(
            "refund {} is in {} but the order was paid in {}",
            intent.idempotency_key, intent.amount.currency, paid.currency
        )));
    }
    if intent.amount.minor <= 0 || paid.minor < 0 {
        return Err(StoreError::Corrupt(format!(
            "refund {}: amount must be positive and paid not negative",
            intent.idempotency_key
        )));
    }
    Ok(())
}

/// The ledger already holds refunds for the order in another currency.
pub fn ledger_currency(key: &str, committed: Money, requested: Money) -> Result<(), StoreError> {
    if committed.currency == requested.currency {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "refund {key} is in {} but the order's ledger is in {}",
            requested.currency, committed.currency
        )))
    }
}

/// What is left to refund: never negative.
pub fn available(paid: Money, committed: Money) -> Money {
    Money::new(
        paid.minor.saturating_sub(committed.minor).max(0),
        paid.currency,
    )
}

pub fn cap_exceeded(requested: Money, paid: Money, committed: Money) -> StoreError {
    StoreError::CapExceeded {
        requested,
        available: available(paid, committed),
    }
}

/// The gateway's receipt must be for exactly the reserved amount, or the ledger's sum drifts.
pub fn receipt_fits(intent: &RefundIntent, receipt: &StoredReceipt) -> Result<(), StoreError> {
    if receipt.amount == intent.amount {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "receipt for refund {} is for {}, the reservation for {}",
            intent.idempotency_key, receipt.amount, intent.amount
        )))
    }
}

/// A repeated `complete` is the same receipt when the gateway's id and amount agree.
pub fn same_receipt(stored: &StoredReceipt, new: &StoredReceipt) -> bool {
    stored.provider_refund_id == new.provider_refund_id && stored.amount == new.amount
}

pub fn completed_differently(key: &str) -> StoreError {
    StoreError::Conflict(format!("refund {key} was completed with another receipt"))
}
