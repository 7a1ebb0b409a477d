//! The local stack's durable store: one redb file in the data directory holding tickets, audit
//! trails, the refund ledger, workflow executions, department queues and the notification outbox.
//!
//! Every write is checked before it changes anything and answered only once committed with
//! fsync, so an answer given is never lost, even to `kill -9`. Writes are group-committed: one
//! writer thread takes every write waiting at that moment, applies them in order in one redb
//! write transaction and commits it once (one fsync for the group), then answers each. A write
//! that fails (a conflict, a refused check) is left out of its group's commit, which the others
//! still make; nothing of it is written. Semantics match `MemoryStore`, the reference
//! implementation.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

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

mod runs;

use runs::{DEFINITIONS, Definitions};

/// The store file inside the data directory.
pub const FILE_NAME: &str = "store.redb";

const TICKETS: TableDefinition<&str, &str> = TableDefinition::new("tickets");
const REQUESTS: TableDefinition<&str, &str> = TableDefinition::new("requests");
const AUDIT: TableDefinition<(&str, u32), &str> = TableDefinition::new("audit");
const COMMITTED: TableDefinition<&str, &str> = TableDefinition::new("committed");
const REFUNDS: TableDefinition<&str, &str> = TableDefinition::new("refunds");
const EXECUTIONS: TableDefinition<&str, &str> = TableDefinition::new("executions");
/// Each run's status and current state ("STATUS\tSTATE"), written with its execution, so runs
/// can be counted without reading whole executions.
const RUN_SUMMARIES: TableDefinition<&str, &str> = TableDefinition::new("run_summaries");
const QUEUES: TableDefinition<(&str, u64), &str> = TableDefinition::new("queues");
const OUTBOX: TableDefinition<u64, &str> = TableDefinition::new("outbox");
/// Idempotency keys of queue and outbox records already written.
const RECORD_KEYS: TableDefinition<&str, u64> = TableDefinition::new("record_keys");
/// Tickets by customer and by order: (customer or order id, ticket id).
const BY_CUSTOMER: TableDefinition<(&str, &str), ()> = TableDefinition::new("tickets_by_customer");
const BY_ORDER: TableDefinition<(&str, &str), ()> = TableDefinition::new("tickets_by_order");
/// Facts about the file itself, e.g. which indexes have been built.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const INDEXED: &str = "ticket_indexes";

/// At most this many writes share one commit.
const MAX_GROUP: usize = 1024;

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

/// The durable store. Clones share the file, its writer and the definitions read.
#[derive(Clone)]
pub struct LocalStore {
    db: Arc<Database>,
    writer: Arc<GroupWriter>,
    definitions: Arc<Definitions>,
}

/// A write waiting for its group's commit.
trait Pending: Send {
    /// Applies the write in `tx`. On `Err` the write is left out of the commit: the writer
    /// starts the group again without it, so whatever it had changed is gone.
    fn apply(&mut self, tx: &WriteTransaction) -> Result<(), StoreError>;
    /// Answers the caller: `Ok` once the group is durably committed.
    fn answer(self: Box<Self>, outcome: Result<(), StoreError>);
}

struct Job<T, F> {
    f: F,
    value: Option<T>,
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Pending for Job<T, F>
where
    T: Send,
    F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, tx: &WriteTransaction) -> Result<(), StoreError> {
        let f = &mut self.f;
        // The `local` profile and the tests unwind, so a panicking write fails alone. (Built
        // with --release, the Lambda profile, a panic aborts; the store keeps every commit.)
        match std::panic::catch_unwind(AssertUnwindSafe(|| f(tx))) {
            Ok(Ok(value)) => {
                self.value = Some(value);
                Ok(())
            }
            Ok(Err(error)) => Err(error),
            Err(_) => Err(StoreError::Unavailable(
                "local store: a write panicked".to_owned(),
            )),
        }
    }

    fn answer(self: Box<Self>, outcome: Result<(), StoreError>) {
        let Job { value, reply, .. } = *self;
        let result = outcome.and_then(|()| {
            value.ok_or_else(|| StoreError::Unavailable("local store: write not applied".into()))
        });
        let _ = reply.send(result);
    }
}

/// How many commits the writer made and how many writes they carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub commits: u64,
    pub writes: u64,
}

/// The one thread that writes: group commit over a queue of pending writes.
struct GroupWriter {
    queue: Mutex<Option<mpsc::Sender<Box<dyn Pending>>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    commits: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
}

impl GroupWriter {
    fn start(db: Arc<Database>) -> Result<GroupWriter, std::io::Error> {
        let (queue, pending) = mpsc::channel::<Box<dyn Pending>>();
        let commits = Arc::new(AtomicU64::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        let (c, w) = (Arc::clone(&commits), Arc::clone(&writes));
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                while let Ok(first) = pending.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match pending.try_recv() {
                            Ok(next) => group.push(next),
                            Err(_) => break,
                        }
                    }
                    w.fetch_add(group.len() as u64, Ordering::Relaxed);
                    commit_group(&db, group, &c);
                }
            })?;
        Ok(GroupWriter {
            queue: Mutex::new(Some(queue)),
            thread: Mutex::new(Some(thread)),
            commits,
            writes,
        })
    }

    fn submit(&self, job: Box<dyn Pending>) {
        let queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match queue {
            Some(queue) => {
                if let Err(mpsc::SendError(job)) = queue.send(job) {
                    job.answer(Err(StoreError::Unavailable(
                        "local store: the writer has stopped".into(),
                    )));
                }
            }
            None => job.answer(Err(StoreError::Unavailable(
                "local store: the writer has stopped".into(),
            ))),
        }
    }
}

impl Drop for GroupWriter {
    /// Lets the writer finish the writes queued, then waits for it, so the file is closed
    /// (and may be opened again) once the last handle is gone.
    fn drop(&mut self) {
        drop(
            self.queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        if let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = thread.join();
        }
    }
}

/// One write transaction and one commit for `group`, in order. A write that fails is taken
/// out and the transaction started again without it (dropping a transaction aborts it), so
/// the commit holds exactly the writes that succeeded, each as if applied alone in this order.
fn commit_group(db: &Database, mut group: Vec<Box<dyn Pending>>, commits: &AtomicU64) {
    let mut failed: Vec<(Box<dyn Pending>, StoreError)> = Vec::new();
    let outcome = loop {
        if group.is_empty() {
            break Ok(());
        }
        let tx = match db.begin_write() {
            Ok(tx) => tx,
            Err(error) => break Err(storage(error)),
        };
        let mut failure = None;
        for (at, job) in group.iter_mut().enumerate() {
            if let Err(error) = job.apply(&tx) {
                failure = Some((at, error));
                break;
            }
        }
        match failure {
            Some((at, error)) => {
                drop(tx);
                failed.push((group.remove(at), error));
            }
            None => break tx.commit().map_err(storage),
        }
    };
    // Counted before anyone is answered.
    commits.fetch_add(1, Ordering::Relaxed);
    for job in group {
        job.answer(outcome.clone());
    }
    for (job, error) in failed {
        job.answer(Err(error));
    }
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

fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let db = Arc::new(db);
        let writer = GroupWriter::start(Arc::clone(&db)).map_err(|e| OpenError::Io {
            path: path.display().to_string(),
            reason: format!("cannot start the writer thread: {e}"),
        })?;
        let store = LocalStore {
            db,
            writer: Arc::new(writer),
            definitions: Arc::default(),
        };
        store
            .write_now(|tx| {
                tx.open_table(TICKETS).map_err(storage)?;
                tx.open_table(REQUESTS).map_err(storage)?;
                tx.open_table(AUDIT).map_err(storage)?;
                tx.open_table(COMMITTED).map_err(storage)?;
                tx.open_table(REFUNDS).map_err(storage)?;
                tx.open_table(EXECUTIONS).map_err(storage)?;
                tx.open_table(DEFINITIONS).map_err(storage)?;
                tx.open_table(RUN_SUMMARIES).map_err(storage)?;
                tx.open_table(QUEUES).map_err(storage)?;
                tx.open_table(OUTBOX).map_err(storage)?;
                tx.open_table(RECORD_KEYS).map_err(storage)?;
                build_indexes(tx)?;
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

    /// A write, group-committed by the writer thread: answered once its group's commit (and
    /// fsync) is done. `f` may run more than once (its group is started again when another
    /// write of the group fails): it must only read and write `tx`.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer.submit(Box::new(Job {
            f,
            value: None,
            reply,
        }));
        answer.await.map_err(|_| {
            StoreError::Unavailable("local store: the writer stopped before answering".into())
        })?
    }

    /// A short read (a few keys), on the caller's thread: redb reads do not wait for writers.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let tx = self.db.begin_read().map_err(storage)?;
        f(&tx)
    }

    /// A read over whole tables, off the async runtime.
    async fn scan<T: Send + 'static>(
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

    /// How many commits this store's writer has made and how many writes they carried.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.writer.commits.load(Ordering::Relaxed),
            writes: self.writer.writes.load(Ordering::Relaxed),
        }
    }

    /// A reader of the same file for this process.
    pub fn reader(&self) -> Reader {
        Reader {
            db: Source::Writer(Arc::clone(&self.db)),
            definitions: Arc::clone(&self.definitions),
        }
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
                body: body.clone(),
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
                body: body.clone(),
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
    definitions: Arc<Definitions>,
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
                definitions: Arc::default(),
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
                    definitions: Arc::default(),
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

/// The ticket for `ticket.request`'s request id: an existing one, or `ticket` stored now with
/// its request claim, first audit event and index entries.
fn create_in(
    tx: &WriteTransaction,
    ticket: &Ticket,
    ticket_text: &str,
    first: &AuditEvent,
    first_text: &str,
) -> Result<Created, StoreError> {
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
        .insert(ticket.id.as_str(), ticket_text)
        .map_err(storage)?;
    tx.open_table(AUDIT)
        .map_err(storage)?
        .insert((ticket.id.as_str(), first.seq), first_text)
        .map_err(storage)?;
    index_ticket(tx, ticket)?;
    Ok(Created::New)
}

fn index_ticket(tx: &WriteTransaction, ticket: &Ticket) -> Result<(), StoreError> {
    let id = ticket.id.as_str();
    tx.open_table(BY_CUSTOMER)
        .map_err(storage)?
        .insert((ticket.request.customer.id.as_str(), id), ())
        .map_err(storage)?;
    tx.open_table(BY_ORDER)
        .map_err(storage)?
        .insert((ticket.request.order.id.as_str(), id), ())
        .map_err(storage)?;
    Ok(())
}

fn unindex_ticket(tx: &WriteTransaction, ticket: &Ticket) -> Result<(), StoreError> {
    let id = ticket.id.as_str();
    tx.open_table(BY_CUSTOMER)
        .map_err(storage)?
        .remove((ticket.request.customer.id.as_str(), id))
        .map_err(storage)?;
    tx.open_table(BY_ORDER)
        .map_err(storage)?
        .remove((ticket.request.order.id.as_str(), id))
        .map_err(storage)?;
    Ok(())
}

/// Builds the customer and order indexes of a store file written before they existed.
fn build_indexes(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut meta = tx.open_table(META).map_err(storage)?;
    if meta.get(INDEXED).map_err(storage)?.is_some() {
        return Ok(());
    }
    let tickets: Vec<Ticket> = {
        let table = tx.open_table(TICKETS).map_err(storage)?;
        table
            .iter()
            .map_err(storage)?
            .map(|row| from_text(row.map_err(storage)?.1.value()))
            .collect::<Result<_, _>>()?
    };
    for ticket in &tickets {
        index_ticket(tx, ticket)?;
    }
    meta.insert(INDEXED, "1").map_err(storage)?;
    Ok(())
}

/// The ids in an index under `key`.
fn indexed(
    tx: &ReadTransaction,
    index: TableDefinition<(&'static str, &'static str), ()>,
    key: &str,
) -> Result<Vec<String>, StoreError> {
    let table = tx.open_table(index).map_err(storage)?;
    table
        .range((key, "")..)
        .map_err(storage)?
        .map(|row| {
            row.map_err(storage).map(|(k, _)| {
                let (owner, id) = k.value();
                (owner == key, id.to_owned())
            })
        })
        .take_while(|row| !matches!(row, Ok((false, _))))
        .map(|row| row.map(|(_, id)| id))
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
        self.create_with_run(ticket, first, None).await
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
        let ticket_text = to_text(&ticket)?;
        let audit: Vec<(u32, String)> = audit
            .iter()
            .map(|event| Ok((event.seq, to_text(event)?)))
            .collect::<Result<_, StoreError>>()?;
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
            for (seq, _) in &audit {
                if trail
                    .get((ticket.id.as_str(), *seq))
                    .map_err(storage)?
                    .is_some()
                {
                    return Err(StoreError::Conflict(format!(
                        "ticket {}: audit seq {seq} is already recorded",
                        ticket.id
                    )));
                }
            }
            for (seq, text) in &audit {
                trail
                    .insert((ticket.id.as_str(), *seq), text.as_str())
                    .map_err(storage)?;
            }
            tickets
                .insert(ticket.id.as_str(), ticket_text.as_str())
                .map_err(storage)?;
            if stored.request.customer.id != ticket.request.customer.id
                || stored.request.order.id != ticket.request.order.id
            {
                unindex_ticket(tx, &stored)?;
                index_ticket(tx, &ticket)?;
            }
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
        self.scan(move |tx| {
            let tickets = tx.open_table(TICKETS).map_err(storage)?;
            let mut found: Vec<TicketSummary> = Vec::new();
            for id in indexed(tx, BY_CUSTOMER, customer.as_str())? {
                let ticket = get_ticket(&tickets, &id)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("the customer index names missing ticket {id}"))
                })?;
                found.push(TicketSummary::of(&ticket));
            }
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
        self.scan(move |tx| {
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

    /// Loads the order's tickets and the customer's and order's live refunds into a
    /// `MemoryStore` and asks it (the reference implementation assembles the history, so both
    /// agree by construction), then counts the customer's previous tickets from the customer
    /// index: a count is all the history takes of them.
    async fn history(
        &self,
        request: &ServiceRequest,
        excluding: &TicketId,
        since: Timestamp,
    ) -> Result<History, StoreError> {
        let customer = request.customer.id.clone();
        let order = request.order.id.clone();
        let except = excluding.clone();
        let (tickets, refunds, previous) = self
            .read(move |tx| {
                let audit = tx.open_table(AUDIT).map_err(storage)?;
                let table = tx.open_table(TICKETS).map_err(storage)?;
                // Of the customer's other tickets only their number counts; the order's are
                // read whole (their status and claimed lines).
                let previous = indexed(tx, BY_CUSTOMER, customer.as_str())?
                    .iter()
                    .filter(|id| id.as_str() != except.as_str())
                    .count();
                let ids = indexed(tx, BY_ORDER, order.as_str())?;
                let mut tickets = Vec::new();
                for id in ids {
                    let ticket = get_ticket(&table, &id)?.ok_or_else(|| {
                        StoreError::Corrupt(format!("an index names missing ticket {id}"))
                    })?;
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
                Ok((tickets, refunds, previous))
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
        let mut history = memory.history(request, excluding, since).await?;
        history.customer.previous_tickets = u32::try_from(previous).unwrap_or(u32::MAX);
        Ok(history)
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
                entry: LedgerEntry::Completed {
                    intent,
                    receipt: receipt.clone(),
                },
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

#[cfg(test)]
mod tests {
    use super::*;

    const MARKS: TableDefinition<&str, &str> = TableDefinition::new("test_marks");

    fn mark(store: &LocalStore, key: &str) -> Option<String> {
        let tx = store.db.begin_read().unwrap();
        let table = tx.open_table(MARKS).ok()?;
        table.get(key).unwrap().map(|v| v.value().to_owned())
    }

    /// A write of `key`, which fails after writing when `fail`.
    fn put(
        key: &'static str,
        fail: bool,
    ) -> impl FnMut(&WriteTransaction) -> Result<(), StoreError> + Send + 'static {
        move |tx| {
            tx.open_table(MARKS)
                .map_err(storage)?
                .insert(key, "x")
                .map_err(storage)?;
            if fail {
                Err(StoreError::Conflict(format!("{key} refused")))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_waiting_together_share_one_commit_and_a_failing_one_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let before = store.commit_stats();
        // Holds the writer while the others queue up behind it.
        let (started, hold) = std::sync::mpsc::channel::<()>();
        let holder = store.clone();
        let held = tokio::spawn(async move {
            holder
                .write(move |_tx| {
                    let _ = started.send(());
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    Ok(())
                })
                .await
        });
        hold.recv().unwrap();
        let (a, b, c, d) = tokio::join!(
            store.write(put("a", false)),
            store.write(put("b", true)),
            store.write(put("c", false)),
            store.write(put("d", true)),
        );
        held.await.unwrap().unwrap();
        assert!(a.is_ok() && c.is_ok());
        assert!(matches!(b, Err(StoreError::Conflict(_))));
        assert!(matches!(d, Err(StoreError::Conflict(_))));
        let after = store.commit_stats();
        assert_eq!(after.writes - before.writes, 5);
        assert_eq!(
            after.commits - before.commits,
            2,
            "the held write, then one commit for the four queued behind it"
        );
        assert_eq!(mark(&store, "a").as_deref(), Some("x"));
        assert_eq!(mark(&store, "c").as_deref(), Some("x"));
        assert_eq!(mark(&store, "b"), None, "a failed write leaves nothing");
        assert_eq!(mark(&store, "d"), None);
        drop(store);
        let store = LocalStore::open(dir.path()).unwrap();
        assert_eq!(mark(&store, "a").as_deref(), Some("x"));
        assert_eq!(mark(&store, "c").as_deref(), Some("x"));
        assert_eq!(mark(&store, "b"), None);
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let panicked = store
            .write(|_tx| -> Result<(), StoreError> { panic!("boom") })
            .await;
        assert!(matches!(panicked, Err(StoreError::Unavailable(_))));
        store.write(put("after", false)).await.unwrap();
        assert_eq!(mark(&store, "after").as_deref(), Some("x"));
    }
}
