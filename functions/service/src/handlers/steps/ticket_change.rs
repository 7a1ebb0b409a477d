//! Loading a ticket and saving one step's change to it: the new state and its audit events in
//! one conditional write, re-applied to a fresh copy when a concurrent writer won.

use aftersales_domain::TicketId;
use aftersales_domain::lifecycle::{Actor, AuditEvent, TicketEvent};
use aftersales_domain::ticket::Ticket;
use jiff::Timestamp;

use super::error::StepError;
use crate::store::{StoreError, TicketStore};

/// How often a step re-applies its change after losing a conditional write.
pub(crate) const SAVE_ATTEMPTS: u32 = 3;

pub(crate) async fn load(store: &dyn TicketStore, id: &TicketId) -> Result<Ticket, StepError> {
    store
        .get(id)
        .await?
        .ok_or_else(|| StepError::NotFound(format!("ticket {id} does not exist")))
}

/// One step's change to a ticket: the events it records, in order, with one time and actor.
pub(crate) struct Change {
    pub ticket: Ticket,
    audit: Vec<AuditEvent>,
    at: Timestamp,
    actor: Actor,
}

impl Change {
    pub fn new(ticket: Ticket, at: Timestamp, actor: Actor) -> Change {
        Change {
            ticket,
            audit: Vec::new(),
            at,
            actor,
        }
    }

    /// Records `event` under the lifecycle rules; returns its audit sequence number.
    pub fn record(&mut self, event: TicketEvent) -> Result<u32, StepError> {
        let entry = self.ticket.record(self.at, self.actor.clone(), event)?;
        let seq = entry.seq;
        self.audit.push(entry);
        Ok(seq)
    }

    pub fn at(&self) -> Timestamp {
        self.at
    }
}

/// Saves `change` with a conditional write on `original`'s version, unless it changed nothing.
/// A lost race is `Err(StoreError::Conflict)`.
pub(crate) async fn save(
    store: &dyn TicketStore,
    original: &Ticket,
    change: Change,
) -> Result<Ticket, StoreError> {
    let Change {
        mut ticket, audit, ..
    } = change;
    if audit.is_empty() && &ticket == original {
        return Ok(ticket);
    }
    ticket.version = original.version.saturating_add(1);
    store.save(&ticket, original.version, &audit).await?;
    Ok(ticket)
}

/// Loads the ticket, applies `apply` and saves the result; when another writer got there first,
/// re-loads and applies again, up to [`SAVE_ATTEMPTS`] times, then gives up with `Conflict`.
pub(crate) async fn update<T>(
    store: &dyn TicketStore,
    id: &TicketId,
    at: Timestamp,
    actor: &Actor,
    mut apply: impl FnMut(&mut Change) -> Result<T, StepError>,
) -> Result<(Ticket, T), StepError> {
    update_with_trail(store, id, at, actor, false, |change, _| apply(change)).await
}

/// As [`update`], and `apply` also sees the ticket's audit trail (loaded when `with_trail`),
/// to tell whether an event was recorded already.
pub(crate) async fn update_with_trail<T>(
    store: &dyn TicketStore,
    id: &TicketId,
    at: Timestamp,
    actor: &Actor,
    with_trail: bool,
    mut apply: impl FnMut(&mut Change, &[AuditEvent]) -> Result<T, StepError>,
) -> Result<(Ticket, T), StepError> {
    for _ in 0..SAVE_ATTEMPTS {
        let original = load(store, id).await?;
        let trail = if with_trail {
            store.audit_trail(id).await?
        } else {
            Vec::new()
        };
        let mut change = Change::new(original.clone(), at, actor.clone());
        let out = apply(&mut change, &trail)?;
        match save(store, &original, change).await {
            Ok(saved) => return Ok((saved, out)),
            Err(StoreError::Conflict(_)) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(conflict(id))
}

pub(crate) fn conflict(id: &TicketId) -> StepError {
    StepError::Conflict(format!(
        "ticket {id} kept changing concurrently ({SAVE_ATTEMPTS} attempts); re-running is safe"
    ))
}
