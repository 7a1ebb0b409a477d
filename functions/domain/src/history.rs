//! What diagnosis and proposal need to know from past tickets: the customer's refunds and
//! tickets, and what is already refunded or claimed on this order. Plain data the store fills.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{LineId, OrderId, TicketId};
use crate::money::{Amount, Money};

/// The past that matters for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    #[serde(default)]
    pub customer: CustomerHistory,
    #[serde(default)]
    pub order: OrderHistory,
}

/// The customer's record with this merchant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerHistory {
    /// Tickets this customer opened before this one, any outcome.
    #[serde(default)]
    pub previous_tickets: u32,
    /// Refunds paid to this customer (any order). The store may leave out refunds older than
    /// the policy's `repeat_refunds.within_days`.
    #[serde(default)]
    pub refunds: Vec<PastRefund>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PastRefund {
    pub order_id: OrderId,
    pub at: Timestamp,
    pub amount: Money,
}

/// What happened to this order before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderHistory {
    /// Total already refunded on this order, in minor units of the order's currency.
    #[serde(default)]
    pub refunded: Amount,
    /// Units already refunded, per line (several entries for a line add up).
    #[serde(default)]
    pub refunded_lines: Vec<RefundedLine>,
    /// Tickets still open that claim lines of this order.
    #[serde(default)]
    pub open_claims: Vec<OpenClaim>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundedLine {
    pub line_id: LineId,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenClaim {
    pub ticket_id: TicketId,
    pub line_id: LineId,
    pub quantity: u32,
}

impl CustomerHistory {
    /// Refunds paid at or after `since` (and not after `now`).
    pub fn refunds_between(&self, since: Timestamp, now: Timestamp) -> u32 {
        let count = self
            .refunds
            .iter()
            .filter(|r| r.at >= since && r.at <= now)
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }
}

impl OrderHistory {
    /// Units of a line refunded so far.
    pub fn refunded_quantity(&self, line: &LineId) -> u32 {
        self.refunded_lines
            .iter()
            .filter(|r| &r.line_id == line)
            .fold(0u32, |acc, r| acc.saturating_add(r.quantity))
    }

    /// Open tickets that claim this line.
    pub fn open_claims_on<'a>(&'a self, line: &'a LineId) -> impl Iterator<Item = &'a OpenClaim> {
        self.open_claims.iter().filter(move |c| &c.line_id == line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refund(at: &str) -> PastRefund {
        PastRefund {
            order_id: OrderId::new("ORD-1").unwrap(),
            at: at.parse().unwrap(),
            amount: Money::new(100, "CNY".parse().unwrap()),
        }
    }

    #[test]
    fn refunds_are_counted_inside_the_period_only() {
        let history = CustomerHistory {
            previous_tickets: 3,
            refunds: vec![
                refund("2026-08-01T00:00:00Z"),
                refund("2026-10-01T00:00:00Z"),
                refund("2026-11-19T00:00:00Z"),
            ],
        };
        let count = history.refunds_between(
            "2026-09-01T00:00:00Z".parse().unwrap(),
            "2026-11-20T00:00:00Z".parse().unwrap(),
        );
        assert_eq!(count, 2);
    }

    #[test]
    fn refunded_quantities_add_up_per_line() {
        let l1 = LineId::new("L1").unwrap();
        let l2 = LineId::new("L2").unwrap();
        let order = OrderHistory {
            refunded: Amount::ZERO,
            refunded_lines: vec![
                RefundedLine {
                    line_id: l1.clone(),
                    quantity: 1,
                },
                RefundedLine {
                    line_id: l1.clone(),
                    quantity: 2,
                },
            ],
            open_claims: vec![],
        };
        assert_eq!(order.refunded_quantity(&l1), 3);
        assert_eq!(order.refunded_quantity(&l2), 0);
    }
}
