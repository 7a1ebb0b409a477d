//! The `execute-refund` step: pay the customer back exactly once per (ticket, step), never more
//! than the order's payment, however often the step is retried or re-run.
//!
//! Order of effects: reserve the amount in the order's ledger (conditional write against what
//! was paid), call the gateway with the same idempotency key, complete the ledger entry, then
//! record `refund_issued` on the ticket. A completed key is answered from the ledger without
//! calling the gateway; a reserved one (a crash or a transient failure in between) calls the
//! gateway again with the same key, which the gateway answers with the first refund.

use std::sync::Arc;

use aftersales_domain::lifecycle::{Actor, TicketEvent, TicketStatus};
use aftersales_domain::proposal::ProposalOption;
use aftersales_domain::ticket::{RefundRecord, Ticket};
use aftersales_domain::{Currency, Disposition, LineId, Money, ResolutionKind, TicketId};
use serde::{Deserialize, Serialize};

use super::error::StepError;
use super::ticket_change;
use crate::adapters::payment::{PaymentError, PaymentGateway, RefundRequest};
use crate::clock::Clock;
use crate::metrics::{self, BusinessEvent};
use crate::store::{
    RefundIntent, RefundLedger, Reservation, StoreError, StoredReceipt, TicketStore,
};

pub const STEP: &str = "execute-refund";

/// Which refund of the ticket this is; part of the idempotency key `<ticket_id>:<step>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStep {
    /// The chosen option's amount (refund without return).
    Refund,
    /// After the return arrived: only what came back restockable, prorated.
    ReturnRefund,
    /// A partial refund while the customer keeps the item.
    PriceAdjustment,
    /// An exchange for a cheaper item: the difference goes back.
    ExchangeDifference,
}

impl RefundStep {
    pub const fn as_str(self) -> &'static str {
        match self {
            RefundStep::Refund => "refund",
            RefundStep::ReturnRefund => "return_refund",
            RefundStep::PriceAdjustment => "price_adjustment",
            RefundStep::ExchangeDifference => "exchange_difference",
        }
    }

    /// The resolution this refund belongs to.
    pub const fn resolution(self) -> ResolutionKind {
        match self {
            RefundStep::Refund => ResolutionKind::Refund,
            RefundStep::ReturnRefund => ResolutionKind::ReturnRefund,
            RefundStep::PriceAdjustment => ResolutionKind::PriceAdjustment,
            RefundStep::ExchangeDifference => ResolutionKind::Exchange,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRefundInput {
    pub ticket_id: TicketId,
    pub step: RefundStep,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecuteRefundOutput {
    pub ticket_id: TicketId,
    pub refund_id: String,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: Currency,
    /// True when this refund had been made before and nothing was paid now.
    pub replayed: bool,
}

pub struct ExecuteRefundDeps {
    pub store: Arc<dyn TicketStore>,
    pub ledger: Arc<dyn RefundLedger>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub clock: Arc<dyn Clock>,
}

pub async fn handle(
    input: ExecuteRefundInput,
    deps: &ExecuteRefundDeps,
) -> Result<ExecuteRefundOutput, StepError> {
    let now = deps.clock.now();
    let ticket = ticket_change::load(deps.store.as_ref(), &input.ticket_id).await?;
    let key = RefundRequest::idempotency_key(&ticket.id, input.step.as_str());
    if let Some(record) = ticket.refunds.iter().find(|r| r.idempotency_key == key) {
        return Ok(output(
            &ticket.id,
            &record.provider_refund_id,
            record.amount,
            true,
        ));
    }
    if ticket.status != TicketStatus::InProgress {
        return Err(StepError::policy(format!(
            "ticket {} is {}; refunds are made only while it is in progress",
            ticket.id, ticket.status
        )));
    }
    let (amount, lines) = refund_amount(&ticket, input.step)?;
    let order = &ticket.request.order;
    let intent = RefundIntent {
        idempotency_key: key.clone(),
        ticket_id: ticket.id.clone(),
        order_id: order.id.clone(),
        customer_id: ticket.request.customer.id.clone(),
        amount,
        lines,
        at: now,
    };
    let paid = order.payment.paid.in_currency(order.currency);

    let (receipt, replayed) = match deps.ledger.reserve(&intent, paid).await {
        Ok(Reservation::Reserved) => (pay(deps, &ticket, &intent).await?, false),
        // A retry: the first attempt's amount, so the gateway sees the very same request.
        Ok(Reservation::AlreadyReserved(first)) => (pay(deps, &ticket, &first).await?, false),
        Ok(Reservation::AlreadyCompleted(receipt)) => (receipt, true),
        Err(StoreError::CapExceeded {
            requested,
            available,
        }) => {
            return Err(StepError::policy(format!(
                "refund of {requested} for ticket {} exceeds what is left to refund on the order ({available})",
                ticket.id
            )));
        }
        Err(other) => return Err(other.into()),
    };

    if !replayed {
        // Counted as soon as the gateway confirmed it: a retry after this point finds the
        // ledger entry completed and is a replay.
        metrics::emit(
            now,
            &BusinessEvent::RefundIssued {
                step: input.step,
                amount: receipt.amount,
            },
        );
    }
    record_refund(deps, &ticket.id, &key, &receipt).await?;
    tracing::info!(
        ticket_id = %ticket.id,
        step = input.step.as_str(),
        refund_id = %receipt.provider_refund_id,
        replayed,
        "refund executed"
    );
    Ok(output(
        &ticket.id,
        &receipt.provider_refund_id,
        receipt.amount,
        replayed,
    ))
}

fn output(id: &TicketId, refund_id: &str, amount: Money, replayed: bool) -> ExecuteRefundOutput {
    ExecuteRefundOutput {
        ticket_id: id.clone(),
        refund_id: refund_id.to_owned(),
        amount: amount.minor,
        currency: amount.currency,
        replayed,
    }
}

/// Calls the gateway for a reserved intent and settles the ledger entry with the outcome.
async fn pay(
    deps: &ExecuteRefundDeps,
    ticket: &Ticket,
    intent: &RefundIntent,
) -> Result<StoredReceipt, StepError> {
    let request = RefundRequest {
        idempotency_key: intent.idempotency_key.clone(),
        payment_reference: ticket.request.order.payment.reference.clone(),
        amount: intent.amount,
        reason: ticket
            .diagnosis
            .as_ref()
            .map_or(ticket.request.problem.kind, |d| d.classification.kind),
        ticket_id: ticket.id.clone(),
    };
    match deps.gateway.refund(&request).await {
        Ok(receipt) => {
            if receipt.amount != intent.amount {
                tracing::warn!(
                    ticket_id = %ticket.id,
                    refund_id = %receipt.provider_refund_id,
                    "the gateway refunded another amount than requested"
                );
            }
            let stored = StoredReceipt {
                provider_refund_id: receipt.provider_refund_id,
                amount: receipt.amount,
                at: receipt.created_at,
            };
            deps.ledger
                .complete(&intent.idempotency_key, &stored)
                .await?;
            Ok(stored)
        }
        Err(declined @ PaymentError::Declined { .. }) => {
            // Final for this request: free the amount for other refunds of the order.
            deps.ledger.release(&intent.idempotency_key).await?;
            Err(declined.into())
        }
        // Transient: the reservation stays, the retry reuses the key. Misconfigured or an
        // untrusted answer: it stays too, so a re-run after an operator's fix cannot pay twice.
        Err(other) => Err(other.into()),
    }
}

/// Adds the refund to the ticket with its `refund_issued` event, once per idempotency key.
async fn record_refund(
    deps: &ExecuteRefundDeps,
    id: &TicketId,
    key: &str,
    receipt: &StoredReceipt,
) -> Result<(), StepError> {
    ticket_change::update(
        deps.store.as_ref(),
        id,
        deps.clock.now(),
        &Actor::system(STEP),
        |change| {
            if change
                .ticket
                .refunds
                .iter()
                .any(|r| r.idempotency_key == key)
            {
                return Ok(());
            }
            change.record(TicketEvent::RefundIssued {
                amount: receipt.amount,
                refund_id: receipt.provider_refund_id.clone(),
            })?;
            change.ticket.refunds.push(RefundRecord {
                idempotency_key: key.to_owned(),
                amount: receipt.amount,
                provider_refund_id: receipt.provider_refund_id.clone(),
                at: receipt.at,
            });
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// What `step` refunds on this ticket, and the units per line it refunds (for the order's
/// history). Never more than the chosen option's amount.
pub fn refund_amount(
    ticket: &Ticket,
    step: RefundStep,
) -> Result<(Money, Vec<(LineId, u32)>), StepError> {
    let chosen = ticket.chosen.as_ref().ok_or_else(|| {
        StepError::policy(format!("ticket {} has no chosen resolution", ticket.id))
    })?;
    if chosen.kind != step.resolution() {
        return Err(StepError::policy(format!(
            "step {} does not fit the chosen resolution {} of ticket {}",
            step.as_str(),
            chosen.kind,
            ticket.id
        )));
    }
    let option = chosen_option(ticket);
    let currency = ticket.request.order.currency;
    let option_amount = chosen.amount.or_else(|| option.and_then(|o| o.amount));
    let (amount, lines) = match step {
        RefundStep::Refund => (
            require_amount(ticket, option_amount)?,
            covered_lines(ticket, option),
        ),
        RefundStep::PriceAdjustment => (require_amount(ticket, option_amount)?, Vec::new()),
        RefundStep::ReturnRefund => {
            let full = require_amount(ticket, option_amount)?;
            restockable_share(ticket, full, &covered_lines(ticket, option))?
        }
        RefundStep::ExchangeDifference => {
            // the variant the customer or agent named, else the proposed option's own
            let named = chosen.exchange.as_ref().map(|e| e.price_difference);
            let proposed = option.and_then(|o| o.price_difference);
            let difference = named.or(proposed).ok_or_else(|| {
                StepError::policy(format!(
                    "the chosen exchange of ticket {} has no price difference",
                    ticket.id
                ))
            })?;
            let refund = Money::zero(difference.currency).checked_sub(difference)?;
            let capped = match &ticket.proposal {
                Some(proposal) => refund.min(proposal.cap)?,
                None => refund,
            };
            (capped, Vec::new())
        }
    };
    if amount.currency != currency {
        return Err(StepError::policy(format!(
            "the refund of ticket {} is in {}, the order in {currency}",
            ticket.id, amount.currency
        )));
    }
    if amount.minor <= 0 {
        return Err(StepError::policy(format!(
            "nothing to refund for step {} of ticket {}",
            step.as_str(),
            ticket.id
        )));
    }
    Ok((amount, lines))
}

fn chosen_option(ticket: &Ticket) -> Option<&ProposalOption> {
    let id = ticket.chosen.as_ref()?.option_id.as_deref()?;
    ticket
        .proposal
        .as_ref()?
        .options
        .iter()
        .find(|o| o.id.as_str() == id)
}

fn require_amount(ticket: &Ticket, amount: Option<Money>) -> Result<Money, StepError> {
    amount.ok_or_else(|| {
        StepError::policy(format!(
            "the chosen resolution of ticket {} has no amount",
            ticket.id
        ))
    })
}

/// The lines and units the chosen resolution covers: the option's, or (an agent's choice
/// without an option) every line the diagnosis found refundable.
fn covered_lines(ticket: &Ticket, option: Option<&ProposalOption>) -> Vec<(LineId, u32)> {
    match option {
        Some(option) => option
            .lines
            .iter()
            .map(|l| (l.line_id.clone(), l.quantity))
            .collect(),
        None => ticket
            .diagnosis
            .iter()
            .flat_map(|d| d.lines.iter())
            .filter(|l| l.eligible && l.refundable > 0)
            .map(|l| (l.line_id.clone(), l.refundable))
            .collect(),
    }
}

/// `full` × (value of the units that came back restockable) / (value of the covered units),
/// rounded down; value is unit price × units, or units alone when every price is zero.
fn restockable_share(
    ticket: &Ticket,
    full: Money,
    covered: &[(LineId, u32)],
) -> Result<(Money, Vec<(LineId, u32)>), StepError> {
    let mut restocked = Vec::new();
    let (mut value_back, mut value_all, mut units_back, mut units_all) =
        (0i128, 0i128, 0i128, 0i128);
    for (line_id, quantity) in covered {
        let back: u32 = ticket
            .returned
            .iter()
            .filter(|r| &r.line_id == line_id && r.disposition == Disposition::Restock)
            .fold(0u32, |acc, r| acc.saturating_add(r.quantity))
            .min(*quantity);
        let price = ticket
            .request
            .order
            .line(line_id)
            .map_or(0, |l| l.unit_price.minor());
        value_back += i128::from(price) * i128::from(back);
        value_all += i128::from(price) * i128::from(*quantity);
        units_back += i128::from(back);
        units_all += i128::from(*quantity);
        if back > 0 {
            restocked.push((line_id.clone(), back));
        }
    }
    let (part, whole) = if value_all > 0 {
        (value_back, value_all)
    } else {
        (units_back, units_all)
    };
    if whole == 0 || part == 0 {
        return Err(StepError::policy(format!(
            "nothing that came back for ticket {} is restockable: a person decides",
            ticket.id
        )));
    }
    let minor = i128::from(full.minor) * part / whole;
    let minor = i64::try_from(minor).map_err(|_| aftersales_domain::MoneyError::Overflow)?;
    Ok((Money::new(minor.min(full.minor), full.currency), restocked))
}
