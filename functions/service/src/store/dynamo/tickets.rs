//! [`TicketStore`] on the tickets table (and the ledger table for history).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use jiff::Timestamp;

use aftersales_domain::history::History;
use aftersales_domain::lifecycle::AuditEvent;
use aftersales_domain::ticket::Ticket;
use aftersales_domain::{CustomerId, RequestId, ServiceRequest, TicketId};

use super::DynamoStore;
use super::errors::{
    ATTEMPTS, CONDITION_FAILED, TRANSACTION_CONFLICT, Transaction, backoff, encoding,
};
use super::items::{
    self, AUDIT_PREFIX, IdOnly, Item, OPEN, REQUEST_SK, RequestClaim, TICKET_SK, attr, index, s,
};
use crate::store::history::{self, Found};
use crate::store::{Created, StoreError, TicketStore, TicketSummary, checks};

fn put(
    table: &str,
    item: Item,
    condition: &str,
    names: &[(&str, &str)],
    values: &[(&str, aws_sdk_dynamodb::types::AttributeValue)],
) -> Result<TransactWriteItem, StoreError> {
    let mut put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition);
    for (placeholder, name) in names {
        put = put.expression_attribute_names(*placeholder, *name);
    }
    for (placeholder, value) in values {
        put = put.expression_attribute_values(*placeholder, value.clone());
    }
    Ok(TransactWriteItem::builder()
        .put(put.build().map_err(|e| encoding("put", e))?)
        .build())
}

const NEW_ITEM: &str = "attribute_not_exists(#pk)";

impl DynamoStore {
    fn new_item(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        put(
            &self.tables.tickets,
            item,
            NEW_ITEM,
            &[("#pk", attr::PK)],
            &[],
        )
    }

    fn audit_puts(
        &self,
        ticket: &TicketId,
        audit: &[AuditEvent],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        audit
            .iter()
            .map(|event| self.new_item(items::audit_item(ticket, event)?))
            .collect()
    }
}

#[async_trait]
impl TicketStore for DynamoStore {
    async fn create(&self, ticket: &Ticket, first: &AuditEvent) -> Result<Created, StoreError> {
        let request_id = &ticket.request.request_id;
        let mut writes = vec![
            self.new_item(items::request_item(request_id, &ticket.id))?,
            self.new_item(items::ticket_item(ticket)?)?,
        ];
        writes.extend(self.audit_puts(&ticket.id, std::slice::from_ref(first))?);

        for attempt in 0..ATTEMPTS {
            match self.transact("create", writes.clone()).await? {
                Transaction::Written => return Ok(Created::New),
                Transaction::Cancelled(reasons) => {
                    if Transaction::failed(&reasons, 0, CONDITION_FAILED) {
                        // The claim exists; its ticket was written in the same transaction but
                        // may take a moment to be readable.
                        if let Some(existing) = self.find_by_request(request_id).await? {
                            return Ok(Created::Existing(Box::new(existing)));
                        }
                    } else if Transaction::failed(&reasons, 1, CONDITION_FAILED) {
                        return Err(StoreError::Conflict(format!(
                            "ticket {} exists for another request",
                            ticket.id
                        )));
                    } else if !reasons.iter().any(|r| r == TRANSACTION_CONFLICT) {
                        return Err(StoreError::Conflict(format!(
                            "create of ticket {} cancelled: {}",
                            ticket.id,
                            reasons.join(",")
                        )));
                    }
                }
            }
            backoff(attempt).await;
        }
        Err(StoreError::Unavailable(format!(
            "create of ticket {}: the request claim did not settle",
            ticket.id
        )))
    }

    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        self.get_item(&self.tables.tickets, items::ticket_pk(id), Some(TICKET_SK))
            .await?
            .map(items::decode_ticket)
            .transpose()
    }

    async fn find_by_request(&self, request_id: &RequestId) -> Result<Option<Ticket>, StoreError> {
        let Some(claim) = self
            .get_item(
                &self.tables.tickets,
                items::request_pk(request_id),
                Some(REQUEST_SK),
            )
            .await?
        else {
            return Ok(None);
        };
        let RequestClaim { ticket_id } = items::decode("request claim", claim)?;
        self.get(&ticket_id).await
    }

    async fn save(
        &self,
        ticket: &Ticket,
        expected_version: u64,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        checks::save_request(ticket, expected_version, audit)?;
        let mut writes = vec![put(
            &self.tables.tickets,
            items::ticket_item(ticket)?,
            "#version = :expected",
            &[("#version", attr::VERSION)],
            &[(":expected", items::n(expected_version))],
        )?];
        writes.extend(self.audit_puts(&ticket.id, audit)?);

        match self.transact("save", writes).await? {
            Transaction::Written => Ok(()),
            Transaction::Cancelled(reasons) => {
                if Transaction::failed(&reasons, 0, CONDITION_FAILED) {
                    return match self.get(&ticket.id).await? {
                        None => Err(StoreError::NotFound(format!("ticket {}", ticket.id))),
                        Some(stored) => Err(StoreError::Conflict(format!(
                            "ticket {} is at version {}, not {expected_version}",
                            ticket.id, stored.version
                        ))),
                    };
                }
                let taken = reasons
                    .iter()
                    .skip(1)
                    .zip(audit)
                    .find(|(reason, _)| *reason == CONDITION_FAILED);
                if let Some((_, event)) = taken {
                    return Err(StoreError::Conflict(format!(
                        "ticket {}: audit seq {} is already recorded",
                        ticket.id, event.seq
                    )));
                }
                Err(StoreError::Conflict(format!(
                    "save of ticket {} cancelled: {}",
                    ticket.id,
                    reasons.join(",")
                )))
            }
        }
    }

    async fn audit_trail(&self, id: &TicketId) -> Result<Vec<AuditEvent>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.tables.tickets)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :audit)")
            .expression_attribute_names("#pk", attr::PK)
            .expression_attribute_names("#sk", attr::SK)
            .expression_attribute_values(":pk", s(items::ticket_pk(id)))
            .expression_attribute_values(":audit", s(AUDIT_PREFIX));
        self.query_all("Query audit", query, None)
            .await?
            .into_iter()
            .map(items::decode_audit)
            .collect()
    }

    async fn tickets_by_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let query = self
            .client
            .query()
            .table_name(&self.tables.tickets)
            .index_name(index::TICKETS_BY_CUSTOMER)
            .key_condition_expression("#customer = :customer")
            .expression_attribute_names("#customer", attr::CUSTOMER_ID)
            .expression_attribute_values(":customer", s(customer.as_str()))
            .scan_index_forward(false);
        self.query_all("Query tickets by customer", query, Some(limit))
            .await?
            .into_iter()
            .map(|item| items::decode("ticket summary", item))
            .collect()
    }

    async fn open_tickets_due_before(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let query = self
            .client
            .query()
            .table_name(&self.tables.tickets)
            .index_name(index::OPEN_TICKETS_BY_DUE)
            .key_condition_expression("#open = :open AND #due < :before")
            .expression_attribute_names("#open", attr::OPEN_KEY)
            .expression_attribute_names("#due", attr::DUE_KEY)
            .expression_attribute_values(":open", s(OPEN))
            .expression_attribute_values(":before", s(items::sort_time(before)));
        self.query_all("Query open tickets by due time", query, Some(limit))
            .await?
            .into_iter()
            .map(|item| items::decode("ticket summary", item))
            .collect()
    }

    async fn history(
        &self,
        request: &ServiceRequest,
        excluding: &TicketId,
        since: Timestamp,
    ) -> Result<History, StoreError> {
        let customer = request.customer.id.as_str();
        let order = request.order.id.as_str();

        let customer_tickets = self
            .client
            .query()
            .table_name(&self.tables.tickets)
            .index_name(index::TICKETS_BY_CUSTOMER)
            .key_condition_expression("#customer = :customer")
            .projection_expression("#id")
            .expression_attribute_names("#customer", attr::CUSTOMER_ID)
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_values(":customer", s(customer));
        let customer_tickets = self
            .query_all("Query tickets by customer", customer_tickets, None)
            .await?
            .into_iter()
            .map(|item| items::decode::<IdOnly>("ticket id", item).map(|t| t.id))
            .collect::<Result<Vec<_>, _>>()?;

        let order_tickets = self
            .client
            .query()
            .table_name(&self.tables.tickets)
            .index_name(index::TICKETS_BY_ORDER)
            .key_condition_expression("#order = :order")
            .expression_attribute_names("#order", attr::ORDER_ID)
            .expression_attribute_values(":order", s(order));
        let order_tickets = self
            .query_all("Query tickets by order", order_tickets, None)
            .await?
            .into_iter()
            .map(items::decode_order_ticket)
            .collect::<Result<Vec<_>, _>>()?;

        let customer_refunds = self
            .refunds_by_customer(&request.customer.id, since)
            .await?;
        let order_refunds = self.refunds_by_order(&request.order.id).await?;

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
