//! [`RefundLedger`] on the ledger table: one item per order holding the committed sum, one
//! item per refund intent; every change to the sum moves with its intent in one transaction.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use jiff::Timestamp;

use aftersales_domain::{CustomerId, Money, OrderId};

use super::errors::{
    ATTEMPTS, CONDITION_FAILED, TRANSACTION_CONFLICT, Transaction, backoff, encoding, sdk,
};
use super::items::{self, Item, OrderLedger, RefundState, StoredRefund, attr, index, n, s};
use super::{DynamoStore, RELEASED_RETENTION};
use crate::store::{
    LedgerEntry, RefundIntent, RefundLedger, Reservation, StoreError, StoredReceipt, checks,
};

fn update(
    table: &str,
    pk: String,
    expression: &str,
    condition: &str,
    names: &[(&str, &str)],
    values: Vec<(&str, AttributeValue)>,
) -> Result<TransactWriteItem, StoreError> {
    let mut update = Update::builder()
        .table_name(table)
        .key(attr::PK, s(pk))
        .update_expression(expression)
        .condition_expression(condition);
    for (placeholder, name) in names {
        update = update.expression_attribute_names(*placeholder, *name);
    }
    for (placeholder, value) in values {
        update = update.expression_attribute_values(placeholder, value);
    }
    Ok(TransactWriteItem::builder()
        .update(update.build().map_err(|e| encoding("update", e))?)
        .build())
}

fn not_found(key: &str) -> StoreError {
    StoreError::NotFound(format!("refund reservation {key}"))
}

fn busy(key: &str) -> StoreError {
    StoreError::Conflict(format!(
        "refund {key}: the order's ledger kept changing; retry"
    ))
}

impl DynamoStore {
    async fn load_refund(&self, key: &str) -> Result<Option<StoredRefund>, StoreError> {
        self.get_item(&self.tables.ledger, items::refund_pk(key), None)
            .await?
            .map(items::decode_refund)
            .transpose()
    }

    /// What a repeated reservation of `key` answers, if the key is live.
    async fn existing_reservation(&self, key: &str) -> Result<Option<Reservation>, StoreError> {
        Ok(match self.load_refund(key).await? {
            Some(StoredRefund {
                state: RefundState::Released,
                ..
            })
            | None => None,
            Some(StoredRefund {
                entry: LedgerEntry::Reserved { intent },
                ..
            }) => Some(Reservation::AlreadyReserved(intent)),
            Some(StoredRefund {
                entry: LedgerEntry::Completed { receipt, .. },
                ..
            }) => Some(Reservation::AlreadyCompleted(receipt)),
        })
    }

    /// Refused because of the cap (or the ledger's currency): the error to return, or `None`
    /// when the ledger has room again (a release got in between).
    async fn refusal(
        &self,
        intent: &RefundIntent,
        paid: Money,
    ) -> Result<Option<StoreError>, StoreError> {
        let committed = self
            .committed(&intent.order_id)
            .await?
            .unwrap_or(Money::zero(paid.currency));
        checks::ledger_currency(&intent.idempotency_key, committed, intent.amount)?;
        let fits = committed
            .checked_add(intent.amount)
            .is_ok_and(|after| after.minor <= paid.minor);
        Ok((!fits).then(|| checks::cap_exceeded(intent.amount, paid, committed)))
    }

    async fn live_refunds(
        &self,
        operation: &str,
        index_name: &str,
        hash: (&str, &str),
        from: Option<Timestamp>,
    ) -> Result<Vec<RefundIntent>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.ledger)
            .index_name(index_name)
            .expression_attribute_names("#hash", hash.0)
            .expression_attribute_values(":hash", s(hash.1));
        query = match from {
            Some(from) => query
                .key_condition_expression("#hash = :hash AND #refund >= :from")
                .expression_attribute_names("#refund", attr::REFUND_KEY)
                .expression_attribute_values(":from", s(items::sort_time(from))),
            None => query.key_condition_expression("#hash = :hash"),
        };
        let mut intents = Vec::new();
        for item in self.query_all(operation, query, None).await? {
            let refund = items::decode_refund(item)?;
            if refund.state != RefundState::Released {
                intents.push(refund.intent().clone());
            }
        }
        Ok(intents)
    }

    pub(super) async fn refunds_by_customer(
        &self,
        customer: &CustomerId,
        since: Timestamp,
    ) -> Result<Vec<RefundIntent>, StoreError> {
        self.live_refunds(
            "Query refunds by customer",
            index::REFUNDS_BY_CUSTOMER,
            (attr::CUSTOMER_ID, customer.as_str()),
            Some(since),
        )
        .await
    }

    pub(super) async fn refunds_by_order(
        &self,
        order: &OrderId,
    ) -> Result<Vec<RefundIntent>, StoreError> {
        self.live_refunds(
            "Query refunds by order",
            index::REFUNDS_BY_ORDER,
            (attr::ORDER_ID, order.as_str()),
            None,
        )
        .await
    }
}

#[async_trait]
impl RefundLedger for DynamoStore {
    async fn reserve(&self, intent: &RefundIntent, paid: Money) -> Result<Reservation, StoreError> {
        checks::reservation(intent, paid)?;
        let key = &intent.idempotency_key;
        let Some(limit) = paid
            .minor
            .checked_sub(intent.amount.minor)
            .filter(|l| *l >= 0)
        else {
            // More than was paid can never fit; a repeat of a live key still answers as one.
            if let Some(existing) = self.existing_reservation(key).await? {
                return Ok(existing);
            }
            return Err(self.refusal(intent, paid).await?.unwrap_or_else(|| {
                checks::cap_exceeded(intent.amount, paid, Money::zero(paid.currency))
            }));
        };

        let currency = intent.amount.currency.code().to_owned();
        let sum = update(
            &self.tables.ledger,
            items::order_pk(&intent.order_id),
            "SET #committed = if_not_exists(#committed, :zero) + :amount, #currency = :currency, #kind = :order",
            "attribute_not_exists(#committed) OR (#committed <= :limit AND #currency = :currency)",
            &[
                ("#committed", attr::COMMITTED),
                ("#currency", attr::CURRENCY),
                ("#kind", attr::KIND),
            ],
            vec![
                (":zero", n(0)),
                (":amount", n(intent.amount.minor)),
                (":limit", n(limit)),
                (":currency", s(currency)),
                (":order", s("order")),
            ],
        )?;
        let entry = Put::builder()
            .table_name(&self.tables.ledger)
            .set_item(Some(items::refund_item(&LedgerEntry::Reserved {
                intent: intent.clone(),
            })?))
            .condition_expression("attribute_not_exists(#pk) OR #state = :released")
            .expression_attribute_names("#pk", attr::PK)
            .expression_attribute_names("#state", attr::STATE)
            .expression_attribute_values(":released", s(RefundState::Released.name()))
            .build()
            .map_err(|e| encoding("put", e))?;
        let writes = vec![sum, TransactWriteItem::builder().put(entry).build()];

        for attempt in 0..ATTEMPTS {
            match self.transact("reserve", writes.clone()).await? {
                Transaction::Written => return Ok(Reservation::Reserved),
                Transaction::Cancelled(reasons) => {
                    if Transaction::failed(&reasons, 1, CONDITION_FAILED) {
                        if let Some(existing) = self.existing_reservation(key).await? {
                            return Ok(existing);
                        }
                    } else if Transaction::failed(&reasons, 0, CONDITION_FAILED) {
                        if let Some(refused) = self.refusal(intent, paid).await? {
                            return Err(refused);
                        }
                    } else if !reasons.iter().any(|r| r == TRANSACTION_CONFLICT) {
                        return Err(StoreError::Conflict(format!(
                            "reserve of refund {key} cancelled: {}",
                            reasons.join(",")
                        )));
                    }
                }
            }
            backoff(attempt).await;
        }
        Err(busy(key))
    }

    async fn complete(&self, key: &str, receipt: &StoredReceipt) -> Result<(), StoreError> {
        for attempt in 0..ATTEMPTS {
            let intent = match self.load_refund(key).await? {
                None
                | Some(StoredRefund {
                    state: RefundState::Released,
                    ..
                }) => return Err(not_found(key)),
                Some(StoredRefund {
                    entry:
                        LedgerEntry::Completed {
                            receipt: stored, ..
                        },
                    ..
                }) => {
                    return if checks::same_receipt(&stored, receipt) {
                        Ok(())
                    } else {
                        Err(checks::completed_differently(key))
                    };
                }
                Some(StoredRefund {
                    entry: LedgerEntry::Reserved { intent },
                    ..
                }) => intent,
            };
            checks::receipt_fits(&intent, receipt)?;
            let completed = LedgerEntry::Completed {
                intent,
                receipt: receipt.clone(),
            };
            let result = self
                .client
                .update_item()
                .table_name(&self.tables.ledger)
                .key(attr::PK, s(items::refund_pk(key)))
                .update_expression("SET #state = :completed, #body = :body, #provider = :provider")
                .condition_expression("#state = :reserved")
                .expression_attribute_names("#state", attr::STATE)
                .expression_attribute_names("#body", attr::BODY)
                .expression_attribute_names("#provider", attr::PROVIDER_REFUND_ID)
                .expression_attribute_values(":completed", s(RefundState::Completed.name()))
                .expression_attribute_values(":reserved", s(RefundState::Reserved.name()))
                .expression_attribute_values(":body", items::encode_entry(&completed)?)
                .expression_attribute_values(":provider", s(receipt.provider_refund_id.as_str()))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(error) => match sdk("UpdateItem complete", error) {
                    StoreError::Conflict(_) => {}
                    other => return Err(other),
                },
            }
            backoff(attempt).await;
        }
        Err(busy(key))
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        for attempt in 0..ATTEMPTS {
            let intent = match self.load_refund(key).await? {
                None => return Err(not_found(key)),
                Some(StoredRefund {
                    state: RefundState::Released,
                    ..
                }) => return Ok(()),
                Some(StoredRefund {
                    entry: LedgerEntry::Completed { .. },
                    ..
                }) => {
                    return Err(StoreError::Conflict(format!(
                        "refund {key} is completed and cannot be released"
                    )));
                }
                Some(StoredRefund {
                    entry: LedgerEntry::Reserved { intent },
                    ..
                }) => intent,
            };
            let now = self.clock.now();
            let expires = now
                .checked_add(RELEASED_RETENTION)
                .unwrap_or(now)
                .as_second();
            let released = update(
                &self.tables.ledger,
                items::refund_pk(key),
                "SET #state = :released, #released_at = :now, #expires = :expires REMOVE #refund",
                "#state = :reserved",
                &[
                    ("#state", attr::STATE),
                    ("#released_at", attr::RELEASED_AT),
                    ("#expires", attr::EXPIRES_AT),
                    ("#refund", attr::REFUND_KEY),
                ],
                vec![
                    (":released", s(RefundState::Released.name())),
                    (":reserved", s(RefundState::Reserved.name())),
                    (":now", s(now.to_string())),
                    (":expires", n(expires)),
                ],
            )?;
            let sum = update(
                &self.tables.ledger,
                items::order_pk(&intent.order_id),
                "SET #committed = #committed - :amount",
                "#committed >= :amount AND #currency = :currency",
                &[
                    ("#committed", attr::COMMITTED),
                    ("#currency", attr::CURRENCY),
                ],
                vec![
                    (":amount", n(intent.amount.minor)),
                    (":currency", s(intent.amount.currency.code())),
                ],
            )?;
            match self.transact("release", vec![released, sum]).await? {
                Transaction::Written => return Ok(()),
                Transaction::Cancelled(reasons) => {
                    if Transaction::failed(&reasons, 1, CONDITION_FAILED)
                        && !Transaction::failed(&reasons, 0, CONDITION_FAILED)
                    {
                        return Err(StoreError::Corrupt(format!(
                            "refund {key}: the order's ledger does not cover it"
                        )));
                    }
                    // The intent changed (completed or released meanwhile) or a transaction
                    // collided: read again and decide.
                }
            }
            backoff(attempt).await;
        }
        Err(busy(key))
    }

    async fn entry(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        Ok(self
            .load_refund(key)
            .await?
            .filter(|r| r.state != RefundState::Released)
            .map(|r| r.entry))
    }

    async fn committed(&self, order: &OrderId) -> Result<Option<Money>, StoreError> {
        let Some(item): Option<Item> = self
            .get_item(&self.tables.ledger, items::order_pk(order), None)
            .await?
        else {
            return Ok(None);
        };
        let ledger: OrderLedger = items::decode("order ledger", item)?;
        Ok(Some(Money::new(ledger.committed, ledger.currency)))
    }
}
