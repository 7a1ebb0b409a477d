//! Assembling [`History`] from what a store found, identically for every store.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use aftersales_domain::history::{
    CustomerHistory, History, OpenClaim, OrderHistory, PastRefund, RefundedLine,
};
use aftersales_domain::lifecycle::TicketStatus;
use aftersales_domain::{Amount, LineId, Money, ServiceRequest, TicketId};

use super::{RefundIntent, StoreError};

/// Units of an order line a ticket claims (its problem lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClaimedLine {
    pub line_id: LineId,
    pub quantity: u32,
}

impl ClaimedLine {
    pub(crate) fn of(request: &ServiceRequest) -> Vec<ClaimedLine> {
        request
            .problem
            .lines
            .iter()
            .map(|l| ClaimedLine {
                line_id: l.line_id.clone(),
                quantity: l.quantity.get(),
            })
            .collect()
    }
}

/// A ticket of the order, as far as open claims go.
#[derive(Debug, Clone)]
pub(crate) struct OrderTicket {
    pub id: TicketId,
    pub status: TicketStatus,
    pub claims: Vec<ClaimedLine>,
}

/// What a store found for one request.
pub(crate) struct Found<'a> {
    /// Every ticket of the customer.
    pub customer_tickets: &'a [TicketId],
    /// The customer's live (reserved or completed) refunds, at least those since `since`.
    pub customer_refunds: &'a [RefundIntent],
    /// The order's live refunds.
    pub order_refunds: &'a [RefundIntent],
    /// Every ticket of the order.
    pub order_tickets: &'a [OrderTicket],
}

pub(crate) fn assemble(
    request: &ServiceRequest,
    excluding: &TicketId,
    since: Timestamp,
    found: Found<'_>,
) -> Result<History, StoreError> {
    let previous = found
        .customer_tickets
        .iter()
        .filter(|id| *id != excluding)
        .count();

    let mut refunds: Vec<&RefundIntent> = found
        .customer_refunds
        .iter()
        .filter(|r| r.at >= since)
        .collect();
    refunds.sort_by(|a, b| (a.at, &a.idempotency_key).cmp(&(b.at, &b.idempotency_key)));

    let currency = request.order.currency;
    let mut refunded = Money::zero(currency);
    let mut lines: BTreeMap<LineId, u32> = BTreeMap::new();
    for intent in found.order_refunds {
        refunded = refunded.checked_add(intent.amount).map_err(|e| {
            StoreError::Corrupt(format!(
                "order {}: refund {}: {e}",
                request.order.id, intent.idempotency_key
            ))
        })?;
        for (line, units) in &intent.lines {
            let total = lines.entry(line.clone()).or_insert(0);
            *total = total.saturating_add(*units);
        }
    }
    let refunded = Amount::new(refunded.minor)
        .map_err(|e| StoreError::Corrupt(format!("order {}: refunded {e}", request.order.id)))?;

    let mut open_claims = Vec::new();
    let mut tickets: Vec<&OrderTicket> = found
        .order_tickets
        .iter()
        .filter(|t| &t.id != excluding && t.status.is_open())
        .collect();
    tickets.sort_by(|a, b| a.id.cmp(&b.id));
    for ticket in tickets {
        for claim in &ticket.claims {
            let same_line = request
                .problem
                .lines
                .iter()
                .any(|l| l.line_id == claim.line_id);
            if same_line {
                open_claims.push(OpenClaim {
                    ticket_id: ticket.id.clone(),
                    line_id: claim.line_id.clone(),
                    quantity: claim.quantity,
                });
            }
        }
    }

    Ok(History {
        customer: CustomerHistory {
            previous_tickets: u32::try_from(previous).unwrap_or(u32::MAX),
            refunds: refunds
                .into_iter()
                .map(|r| PastRefund {
                    order_id: r.order_id.clone(),
                    at: r.at,
                    amount: r.amount,
                })
                .collect(),
        },
        order: OrderHistory {
            refunded,
            refunded_lines: lines
                .into_iter()
                .map(|(line_id, quantity)| RefundedLine { line_id, quantity })
                .collect(),
            open_claims,
        },
    })
}
