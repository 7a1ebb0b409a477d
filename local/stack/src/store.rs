//! The local stack's durable store: one redb file in the data directory holding tickets, audit
//! trails, the refund ledger, workflow executions, department queues and the notification outbox.
//!
//! Every operation is one redb write transaction (redb runs them one at a time), checked before
//! it changes anything and committed with fsync, so an answer given is never lost, even to
//! `kill -9`. Semantics match `MemoryStore`, the reference implementation.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use redb::{
    ConcurrencyMode, Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use aftersales_domain::history::History;
use aftersales_domain::lifecycle::AuditEvent;
use aftersales_domain::ticket::Ticket;
use aftersales_domain::{CustomerId, Money, OrderId, RequestId, ServiceRequest, TicketId};
use aftersales_service::store::checks;
use aftersales_service::store::{
    Created, LedgerEntry, MemoryStore, RefundIntent, RefundLedger, Reservation, StoreError,
    StoredReceipt, TicketStore, TicketSummary,
};

/// The store file inside the data directory.
pub const FILE_NAME: &str = "store.redb";

const TICKETS: TableDefinition<&str, &str> = TableDefinition::new("tickets");
const REQUESTS: TableDefinition<&str, &str> = TableDefinition::new("requests");
const AUDIT: TableDefinition<(&str, u32), &str> = TableDefinition::new("audit");
const COMMITTED: TableDefinition<&str, &str> = TableDefinition::new("committed");
const REFUNDS: TableDefinition<&str, &str> = TableDefinition::new("refunds");
const EXECUTIONS: TableDefinition<&str, &str> = TableDefinition::new("executions");
const QUEUES: TableDefinition<(&str, u64), &str> = TableDefinition::new("queues");
const OUTBOX: TableDefinition<u64, &str> = TableDefinition::new("outbox");
/// Idempotency keys of queue and outbox records already written.
const RECORD_KEYS: TableDefinition<&str, u64> = TableDefinition::new("record_keys");

/// Why the store file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the store {path} is in use by another process (is `aftersales-local serve` running?)")]
    InUse { path: String },
    #[error(
        "the store {path} is not a readable store file ({reason}); move it away to start afresh"
    )]
    Corrupt { path: String, reason: String },
    #[error("the store {path} cannot be opened: {reason}")]
    Io { path: String, reason: String },
}

/// A slot of the refund ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "slot", rename_all = "snake_case")]
// Only ever a short-lived value read from or written to the file: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Slot {
    Live {
        entry: LedgerEntry,
    },
    /// Given back: the key may be reserved again.
    Released,
}

/// A record of a department queue or the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub at: Timestamp,
    pub body: Value,
}

/// The durable store. Clones share the file.
#[derive(Clone)]
pub struct LocalStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalStore")
    }
}

fn open_error(path: &Path, error: DatabaseError) -> OpenError {
    let path = path.display().to_string();
    match error {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            OpenError::InUse { path }
        }
        DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() != std::io::ErrorKind::InvalidData =>
        {
            OpenError::Io {
                path,
                reason: io.to_string(),
            }
        }
        other => OpenError::Corrupt {
            path,
            reason: other.to_string(),
        },
    }
}

fn storage<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::Unavailable(format!("local store: {error}"))
}

fn to_text<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_text<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl LocalStore {
    /// Opens (or creates) the store in `dir` for this process to write; other processes may
    /// read it meanwhile ([`ReadOnlyStore`]).
    pub fn open(dir: &Path) -> Result<LocalStore, OpenError> {
        let path = dir.join(FILE_NAME);
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .create(&path)
            .map_err(|e| open_error(&path, e))?;
        let store = LocalStore { db: Arc::new(db) };
        store
            .write_now(|tx| {
                tx.open_table(TICKETS).map_err(storage)?;
                tx.open_table(REQUESTS).map_err(storage)?;
                tx.open_table(AUDIT).map_err(storage)?;
                tx.open_table(COMMITTED).map_err(storage)?;
                tx.open_table(REFUNDS).map_err(storage)?;
                tx.open_table(EXECUTIONS).map_err(storage)?;
                tx.open_table(QUEUES).map_err(storage)?;
                tx.open_table(OUTBOX).map_err(storage)?;
                tx.open_table(RECORD_KEYS).map_err(storage)?;
                Ok(())
            })
            .map_err(|e| OpenError::Corrupt {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(store)
    }

    /// One write transaction, committed only when `f` succeeds (dropping it aborts).
    fn write_now<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.db.begin_write().map_err(storage)?;
        let value = f(&tx)?;
        tx.commit().map_err(storage)?;
        Ok(value)
    }

    /// A write transaction off the async runtime: commits wait for fsync.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_now(f))
            .await
            .map_err(storage)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_read().map_err(storage)?;
            f(&tx)
        })
        .await
        .map_err(storage)?
    }

    /// A reader of the same file for this process.
    pub fn reader(&self) -> Reader {
        Reader {
            db: Source::Writer(Arc::clone(&self.db)),
        }
    }

    /// Stores the execution of `ticket` (serialised `asl::Execution`).
    pub async fn put_execution(&self, ticket: &str, json: String) -> Result<(), StoreError> {
        let ticket = ticket.to_owned();
        self.write(move |tx| {
            let mut table = tx.open_table(EXECUTIONS).map_err(storage)?;
            table
                .insert(ticket.as_str(), json.as_str())
                .map_err(storage)?;
            Ok(())
        })
        .await
    }

    /// Stores the execution of `ticket` unless one exists; true when this call stored it.
    pub async fn insert_execution(&self, ticket: &str, json: String) -> Result<bool, StoreError> {
        let ticket = ticket.to_owned();
        self.write(move |tx| {
            let mut table = tx.open_table(EXECUTIONS).map_err(storage)?;
            if table.get(ticket.as_str()).map_err(storage)?.is_some() {
                return Ok(false);
            }
            table
                .insert(ticket.as_str(), json.as_str())
                .map_err(storage)?;
            Ok(true)
        })
        .await
    }

    pub async fn execution(&self, ticket: &str) -> Result<Option<String>, StoreError> {
        let ticket = ticket.to_owned();
        let reader = self.reader();
        tokio::task::spawn_blocking(move || reader.execution(&ticket))
            .await
            .map_err(storage)?
    }

    pub async fn executions(&self) -> Result<Vec<(String, String)>, StoreError> {
        let reader = self.reader();
        tokio::task::spawn_blocking(move || reader.executions())
            .await
            .map_err(storage)?
    }

    /// Appends `body` to the department's queue once per `key`; returns its sequence number.
    pub async fn enqueue(
        &self,
        department: &str,
        key: &str,
        body: Value,
    ) -> Result<u64, StoreError> {
        let department = department.to_owned();
        let key = format!("queue/{department}/{key}");
        self.write(move |tx| {
            let mut keys = tx.open_table(RECORD_KEYS).map_err(storage)?;
            if let Some(seq) = keys.get(key.as_str()).map_err(storage)? {
                return Ok(seq.value());
            }
            let mut table = tx.open_table(QUEUES).map_err(storage)?;
            let seq = table
                .range((department.as_str(), 0)..=(department.as_str(), u64::MAX))
                .map_err(storage)?
                .next_back()
                .transpose()
                .map_err(storage)?
                .map_or(1, |(k, _)| k.value().1 + 1);
            let record = Record {
                seq,
                at: Timestamp::now(),
                body,
            };
            table
                .insert((department.as_str(), seq), to_text(&record)?.as_str())
                .map_err(storage)?;
            keys.insert(key.as_str(), seq).map_err(storage)?;
            Ok(seq)
        })
        .await
    }

    /// Appends `body` to the notification outbox once per `key`; returns its sequence number.
    pub async fn push_outbox(&self, key: &str, body: Value) -> Result<u64, StoreError> {
        let key = format!("outbox/{key}");
        self.write(move |tx| {
            let mut keys = tx.open_table(RECORD_KEYS).map_err(storage)?;
            if let Some(seq) = keys.get(key.as_str()).map_err(storage)? {
                return Ok(seq.value());
            }
            let mut table = tx.open_table(OUTBOX).map_err(storage)?;
            let seq = table
                .last()
                .map_err(storage)?
                .map_or(1, |(k, _)| k.value() + 1);
            let record = Record {
                seq,
                at: Timestamp::now(),
                body,
            };
            table
                .insert(seq, to_text(&record)?.as_str())
                .map_err(storage)?;
            keys.insert(key.as_str(), seq).map_err(storage)?;
            Ok(seq)
        })
        .await
    }
}

enum Source {
    Writer(Arc<Database>),
    ReadOnly(redb::ReadOnlyDatabase),
}

/// Reads the store: in the writing process, or from another one while it runs.
pub struct Reader {
    db: Source,
}

impl Reader {
    /// Opens the store in `dir` read-only, beside a running `serve` or alone.
    pub fn open_read_only(dir: &Path) -> Result<Reader, OpenError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Err(OpenError::Io {
                path: path.display().to_string(),
                reason: "no such file (has `serve` or `demo` run with this data directory?)".into(),
            });
        }
        let opened = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .open_read_only(&path);
        match opened {
            Ok(db) => Ok(Reader {
                db: Source::ReadOnly(db),
            }),
            // Left unclean by a stopped `serve` (a read-only handle may not repair): no writer
            // holds it, so open it for writing, which repairs it, and read from that.
            Err(DatabaseError::RepairAborted) => {
                let db = Database::builder()
                    .set_concurrency_mode(ConcurrencyMode::SingleWriter)
                    .open(&path)
                    .map_err(|e| open_error(&path, e))?;
                Ok(Reader {
                    db: Source::Writer(Arc::new(db)),
                })
            }
            Err(e) => Err(open_error(&path, e)),
        }
    }

    fn begin(&self) -> Result<ReadTransaction, StoreError> {
        match &self.db {
            Source::Writer(db) => db.begin_read().map_err(storage),
            Source::ReadOnly(db) => db.begin_read().map_err(storage),
        }
    }

    pub fn execution(&self, ticket: &str) -> Result<Option<String>, StoreError> {
        let tx = self.begin()?;
        let table = tx.open_table(EXECUTIONS).map_err(storage)?;
        Ok(table
            .get(ticket)
            .map_err(storage)?
            .map(|v| v.value().to_owned()))
    }

    /// Every execution, by ticket id.
    pub fn executions(&self) -> Result<Vec<(String, String)>, StoreError> {
        let tx = self.begin()?;
        let table = tx.open_table(EXECUTIONS).map_err(storage)?;
        table
            .iter()
            .map_err(storage)?
            .map(|row| {
                let (k, v) = row.map_err(storage)?;
                Ok((k.value().to_owned(), v.value().to_owned()))
            })
            .collect()
    }

    pub fn ticket(&self, id: &str) -> Result<Option<Ticket>, StoreError> {
        let tx = self.begin()?;
        get_ticket(&tx.open_table(TICKETS).map_err(storage)?, id)
    }

    pub fn audit_trail(&self, id: &str) -> Result<Vec<AuditEvent>, StoreError> {
        let tx = self.begin()?;
        trail(&tx.open_table(AUDIT).map_err(storage)?, id)
    }

    /// The department's queue, oldest first.
    pub fn queue(&self, department: &str) -> Result<Vec<Record>, StoreError> {
        let tx = self.begin()?;
        let table = tx.open_table(QUEUES).map_err(storage)?;
        table
            .range((department, 0)..=(department, u64::MAX))
            .map_err(storage)?
            .map(|row| from_text(row.map_err(storage)?.1.value()))
            .collect()
    }

    /// The notification outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<Record>, StoreError> {
        let tx = self.begin()?;
        let table = tx.open_table(OUTBOX).map_err(storage)?;
        table
            .iter()
            .map_err(storage)?
            .map(|row| from_text(row.map_err(storage)?.1.value()))
            .collect()
    }
}

fn get_ticket(
    table: &impl ReadableTable<&'static str, &'static str>,
    id: &str,
) -> Result<Option<Ticket>, StoreError> {
    table
        .get(id)
        .map_err(storage)?
        .map(|v| from_text(v.value()))
        .transpose()
}

fn trail(
    table: &impl ReadableTable<(&'static str, u32), &'static str>,
    id: &str,
) -> Result<Vec<AuditEvent>, StoreError> {
    table
        .range((id, 0)..=(id, u32::MAX))
        .map_err(storage)?
        .map(|row| from_text(row.map_err(storage)?.1.value()))
        .collect()
}

fn all_tickets(tx: &ReadTransaction) -> Result<Vec<Ticket>, StoreError> {
    let table = tx.open_table(TICKETS).map_err(storage)?;
    table
        .iter()
        .map_err(storage)?
        .map(|row| from_text(row.map_err(storage)?.1.value()))
        .collect()
}

fn live_refunds(tx: &ReadTransaction) -> Result<Vec<RefundIntent>, StoreError> {
    let table = tx.open_table(REFUNDS).map_err(storage)?;
    let mut found = Vec::new();
    for row in table.iter().map_err(storage)? {
        if let Slot::Live { entry } = from_text(row.map_err(storage)?.1.value())? {
            found.push(intent_of(&entry).clone());
        }
    }
    Ok(found)
}

fn intent_of(entry: &LedgerEntry) -> &RefundIntent {
    match entry {
        LedgerEntry::Reserved { intent } | LedgerEntry::Completed { intent, .. } => intent,
    }
}

#[async_trait]
impl TicketStore for LocalStore {
    async fn create(&self, ticket: &Ticket, first: &AuditEvent) -> Result<Created, StoreError> {
        let ticket = ticket.clone();
        let first = first.clone();
        self.write(move |tx| {
            let mut requests = tx.open_table(REQUESTS).map_err(storage)?;
            let mut tickets = tx.open_table(TICKETS).map_err(storage)?;
            let claimed = requests
                .get(ticket.request.request_id.as_str())
                .map_err(storage)?
                .map(|v| v.value().to_owned());
            if let Some(id) = claimed {
                let existing = get_ticket(&tickets, &id)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("request claim points at missing ticket {id}"))
                })?;
                return Ok(Created::Existing(Box::new(existing)));
            }
            if tickets.get(ticket.id.as_str()).map_err(storage)?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "ticket {} exists for another request",
                    ticket.id
                )));
            }
            requests
                .insert(ticket.request.request_id.as_str(), ticket.id.as_str())
                .map_err(storage)?;
            tickets
                .insert(ticket.id.as_str(), to_text(&ticket)?.as_str())
                .map_err(storage)?;
            tx.open_table(AUDIT)
                .map_err(storage)?
                .insert((ticket.id.as_str(), first.seq), to_text(&first)?.as_str())
                .map_err(storage)?;
            Ok(Created::New)
        })
        .await
    }

    async fn get(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        let id = id.clone();
        self.read(move |tx| get_ticket(&tx.open_table(TICKETS).map_err(storage)?, id.as_str()))
            .await
    }

    async fn find_by_request(&self, request_id: &RequestId) -> Result<Option<Ticket>, StoreError> {
        let request_id = request_id.clone();
        self.read(move |tx| {
            let requests = tx.open_table(REQUESTS).map_err(storage)?;
            let Some(id) = requests
                .get(request_id.as_str())
                .map_err(storage)?
                .map(|v| v.value().to_owned())
            else {
                return Ok(None);
            };
            get_ticket(&tx.open_table(TICKETS).map_err(storage)?, &id)
        })
        .await
    }

    async fn save(
        &self,
        ticket: &Ticket,
        expected_version: u64,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        checks::save_request(ticket, expected_version, audit)?;
        let ticket = ticket.clone();
        let audit = audit.to_vec();
        self.write(move |tx| {
            let mut tickets = tx.open_table(TICKETS).map_err(storage)?;
            let stored = get_ticket(&tickets, ticket.id.as_str())?
                .ok_or_else(|| StoreError::NotFound(format!("ticket {}", ticket.id)))?;
            if stored.version != expected_version {
                return Err(StoreError::Conflict(format!(
                    "ticket {} is at version {}, not {expected_version}",
                    ticket.id, stored.version
                )));
            }
            let mut trail = tx.open_table(AUDIT).map_err(storage)?;
            for event in &audit {
                if trail
                    .get((ticket.id.as_str(), event.seq))
                    .map_err(storage)?
                    .is_some()
                {
                    return Err(StoreError::Conflict(format!(
                        "ticket {}: audit seq {} is already recorded",
                        ticket.id, event.seq
                    )));
                }
            }
            for event in &audit {
                trail
                    .insert((ticket.id.as_str(), event.seq), to_text(event)?.as_str())
                    .map_err(storage)?;
            }
            tickets
                .insert(ticket.id.as_str(), to_text(&ticket)?.as_str())
                .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn audit_trail(&self, id: &TicketId) -> Result<Vec<AuditEvent>, StoreError> {
        let id = id.clone();
        self.read(move |tx| trail(&tx.open_table(AUDIT).map_err(storage)?, id.as_str()))
            .await
    }

    async fn tickets_by_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, StoreError> {
        let customer = customer.clone();
        self.read(move |tx| {
            let mut found: Vec<TicketSummary> = all_tickets(tx)?
                .iter()
                .filter(|t| t.request.customer.id == customer)
                .map(TicketSummary::of)
                .collect();
            found.sort_by(|a, b| (b.received_at, &b.id).cmp(&(a.received_at, &a.id)));
            found.truncate(limit);
            Ok(found)
        })
        .await
    }

    async fn open_tickets_due_before(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, StoreError> {
        self.read(move |tx| {
            let mut found: Vec<TicketSummary> = all_tickets(tx)?
                .iter()
                .filter(|t| t.status.is_open() && t.resolution_due < before)
                .map(TicketSummary::of)
                .collect();
            found.sort_by(|a, b| (a.resolution_due, &a.id).cmp(&(b.resolution_due, &b.id)));
            found.truncate(limit);
            Ok(found)
        })
        .await
    }

    /// Loads the customer's and the order's tickets and live refunds into a `MemoryStore` and
    /// asks it: the reference implementation assembles the history, so both agree by construction.
    async fn history(
        &self,
        request: &ServiceRequest,
        excluding: &TicketId,
        since: Timestamp,
    ) -> Result<History, StoreError> {
        let customer = request.customer.id.clone();
        let order = request.order.id.clone();
        let (tickets, refunds) = self
            .read(move |tx| {
                let audit = tx.open_table(AUDIT).map_err(storage)?;
                let mut tickets = Vec::new();
                for ticket in all_tickets(tx)? {
                    if ticket.request.customer.id != customer && ticket.request.order.id != order {
                        continue;
                    }
                    let first = audit
                        .range((ticket.id.as_str(), 0)..=(ticket.id.as_str(), u32::MAX))
                        .map_err(storage)?
                        .next()
                        .transpose()
                        .map_err(storage)?
                        .map(|(_, v)| from_text::<AuditEvent>(v.value()))
                        .transpose()?
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!("ticket {} has no audit trail", ticket.id))
                        })?;
                    tickets.push((ticket, first));
                }
                let refunds: Vec<RefundIntent> = live_refunds(tx)?
                    .into_iter()
                    .filter(|r| r.customer_id == customer || r.order_id == order)
                    .collect();
                Ok((tickets, refunds))
            })
            .await?;
        let memory = MemoryStore::new();
        for (ticket, first) in &tickets {
            memory.create(ticket, first).await?;
        }
        for intent in &refunds {
            let unlimited = Money::new(i64::MAX, intent.amount.currency);
            memory.reserve(intent, unlimited).await?;
        }
        memory.history(request, excluding, since).await
    }
}

#[async_trait]
impl RefundLedger for LocalStore {
    async fn reserve(&self, intent: &RefundIntent, paid: Money) -> Result<Reservation, StoreError> {
        checks::reservation(intent, paid)?;
        let intent = intent.clone();
        self.write(move |tx| {
            let mut refunds = tx.open_table(REFUNDS).map_err(storage)?;
            let key = intent.idempotency_key.as_str();
            let slot: Option<Slot> = refunds
                .get(key)
                .map_err(storage)?
                .map(|v| from_text(v.value()))
                .transpose()?;
            match slot {
                Some(Slot::Live {
                    entry: LedgerEntry::Reserved { intent },
                }) => return Ok(Reservation::AlreadyReserved(intent)),
                Some(Slot::Live {
                    entry: LedgerEntry::Completed { receipt, .. },
                }) => return Ok(Reservation::AlreadyCompleted(receipt)),
                Some(Slot::Released) | None => {}
            }
            let mut committed_table = tx.open_table(COMMITTED).map_err(storage)?;
            let committed: Money = committed_table
                .get(intent.order_id.as_str())
                .map_err(storage)?
                .map(|v| from_text(v.value()))
                .transpose()?
                .unwrap_or(Money::zero(paid.currency));
            checks::ledger_currency(key, committed, intent.amount)?;
            let after = committed
                .checked_add(intent.amount)
                .map_err(|_| checks::cap_exceeded(intent.amount, paid, committed))?;
            if after.minor > paid.minor {
                return Err(checks::cap_exceeded(intent.amount, paid, committed));
            }
            committed_table
                .insert(intent.order_id.as_str(), to_text(&after)?.as_str())
                .map_err(storage)?;
            let slot = Slot::Live {
                entry: LedgerEntry::Reserved {
                    intent: intent.clone(),
                },
            };
            refunds
                .insert(key, to_text(&slot)?.as_str())
                .map_err(storage)?;
            Ok(Reservation::Reserved)
        })
        .await
    }

    async fn complete(&self, key: &str, receipt: &StoredReceipt) -> Result<(), StoreError> {
        let key = key.to_owned();
        let receipt = receipt.clone();
        self.write(move |tx| {
            let mut refunds = tx.open_table(REFUNDS).map_err(storage)?;
            let slot: Option<Slot> = refunds
                .get(key.as_str())
                .map_err(storage)?
                .map(|v| from_text(v.value()))
                .transpose()?;
            let intent = match slot {
                Some(Slot::Live {
                    entry: LedgerEntry::Reserved { intent },
                }) => intent,
                Some(Slot::Live {
                    entry:
                        LedgerEntry::Completed {
                            receipt: stored, ..
                        },
                }) => {
                    return if checks::same_receipt(&stored, &receipt) {
                        Ok(())
                    } else {
                        Err(checks::completed_differently(&key))
                    };
                }
                Some(Slot::Released) | None => {
                    return Err(StoreError::NotFound(format!("refund reservation {key}")));
                }
            };
            checks::receipt_fits(&intent, &receipt)?;
            let slot = Slot::Live {
                entry: LedgerEntry::Completed { intent, receipt },
            };
            refunds
                .insert(key.as_str(), to_text(&slot)?.as_str())
                .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(move |tx| {
            let mut refunds = tx.open_table(REFUNDS).map_err(storage)?;
            let slot: Option<Slot> = refunds
                .get(key.as_str())
                .map_err(storage)?
                .map(|v| from_text(v.value()))
                .transpose()?;
            let intent = match slot {
                Some(Slot::Live {
                    entry: LedgerEntry::Reserved { intent },
                }) => intent,
                Some(Slot::Live {
                    entry: LedgerEntry::Completed { .. },
                }) => {
                    return Err(StoreError::Conflict(format!(
                        "refund {key} is completed and cannot be released"
                    )));
                }
                Some(Slot::Released) => return Ok(()),
                None => return Err(StoreError::NotFound(format!("refund reservation {key}"))),
            };
            let mut committed_table = tx.open_table(COMMITTED).map_err(storage)?;
            let committed: Money = committed_table
                .get(intent.order_id.as_str())
                .map_err(storage)?
                .map(|v| from_text(v.value()))
                .transpose()?
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
            committed_table
                .insert(intent.order_id.as_str(), to_text(&after)?.as_str())
                .map_err(storage)?;
            refunds
                .insert(key.as_str(), to_text(&Slot::Released)?.as_str())
                .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn entry(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        let key = key.to_owned();
        self.read(move |tx| {
            let refunds = tx.open_table(REFUNDS).map_err(storage)?;
            let slot: Option<Slot> = refunds
                .get(key.as_str())
                .map_err(storage)?
                .map(|v| from_text(v.value()))
                .transpose()?;
            Ok(match slot {
                Some(Slot::Live { entry }) => Some(entry),
                Some(Slot::Released) | None => None,
            })
        })
        .await
    }

    async fn committed(&self, order: &OrderId) -> Result<Option<Money>, StoreError> {
        let order = order.clone();
        self.read(move |tx| {
            tx.open_table(COMMITTED)
                .map_err(storage)?
                .get(order.as_str())
                .map_err(storage)?
                .map(|v| from_text(v.value()))
                .transpose()
        })
        .await
    }
}
