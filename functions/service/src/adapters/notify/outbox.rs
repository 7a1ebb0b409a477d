//! An in-memory outbox: records messages instead of sending them (tests, the local stack).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aftersales_domain::TicketId;
use async_trait::async_trait;

use super::message::{Delivery, NotificationChannel, NotifyError, OutgoingMessage, log_outcome};

const CHANNEL: &str = "outbox";

/// Records every message once per idempotency key, in sending order. Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct OutboxChannel {
    messages: Arc<Mutex<Vec<OutgoingMessage>>>,
}

impl OutboxChannel {
    pub fn new() -> Self {
        OutboxChannel::default()
    }

    /// Every recorded message, oldest first.
    pub fn messages(&self) -> Vec<OutgoingMessage> {
        self.lock().clone()
    }

    /// The recorded messages of one ticket, oldest first.
    pub fn for_ticket(&self, ticket_id: &TicketId) -> Vec<OutgoingMessage> {
        self.lock()
            .iter()
            .filter(|m| m.ticket_id() == ticket_id)
            .cloned()
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<OutgoingMessage>> {
        // A panic elsewhere while holding the lock cannot leave a half-pushed Vec.
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl NotificationChannel for OutboxChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    /// A repeated idempotency key is not recorded again; it gets the first message's position.
    async fn send(&self, msg: &OutgoingMessage) -> Result<Delivery, NotifyError> {
        let position = {
            let mut messages = self.lock();
            match messages
                .iter()
                .position(|m| m.idempotency_key() == msg.idempotency_key())
            {
                Some(position) => position,
                None => {
                    messages.push(msg.clone());
                    messages.len() - 1
                }
            }
        };
        let outcome = Ok(Delivery {
            channel: CHANNEL,
            reference: Some(format!("outbox-{}", position + 1)),
        });
        log_outcome(CHANNEL, msg, &outcome);
        outcome
    }
}
