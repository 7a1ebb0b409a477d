//! Workflow runs in the store: each run (an `asl::Execution`) is one row of `executions`, which
//! names its workflow definition by fingerprint ([`StateMachine::fingerprint`]); each definition
//! is one row of `definitions`, written with the first run that needs it. As in Step Functions,
//! where an execution names the state machine version it runs, a run keeps the definition it
//! started with when the workflow file changes: the changed file is another fingerprint.
//!
//! Rows written before definitions had a table of their own hold the whole definition; they
//! still read, and the next write of the run stores it by reference.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use asl::{Execution, ExecutionStatus, StateMachine};
use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableError, WriteTransaction,
};

use aftersales_domain::lifecycle::AuditEvent;
use aftersales_domain::ticket::Ticket;
use aftersales_service::store::{Created, StoreError};

use super::{
    EXECUTIONS, LocalStore, RUN_SUMMARIES, Reader, create_in, lock_ignoring_poison, storage,
    to_text,
};

/// Workflow definitions by fingerprint: the compact definition text
/// ([`StateMachine::to_json`]), whose SHA-256 the fingerprint is.
pub(super) const DEFINITIONS: TableDefinition<&str, &str> = TableDefinition::new("definitions");

/// The definitions known to be in the file, each parsed once per process.
#[derive(Default)]
pub(super) struct Definitions {
    known: Mutex<HashMap<String, StateMachine>>,
}

impl Definitions {
    fn get(&self, fingerprint: &str) -> Option<StateMachine> {
        lock_ignoring_poison(&self.known).get(fingerprint).cloned()
    }

    fn contains(&self, fingerprint: &str) -> bool {
        lock_ignoring_poison(&self.known).contains_key(fingerprint)
    }

    fn note(&self, machine: &StateMachine) {
        lock_ignoring_poison(&self.known)
            .entry(machine.fingerprint().to_owned())
            .or_insert_with(|| machine.clone());
    }

    /// The machine named by `fingerprint`: known, or read from `table` and checked.
    fn resolve(
        &self,
        fingerprint: &str,
        table: Option<&DefinitionsTable>,
    ) -> Result<StateMachine, String> {
        if let Some(machine) = self.get(fingerprint) {
            return Ok(machine);
        }
        let missing = || format!("the workflow definition {fingerprint} is not in the store");
        let text = table
            .ok_or_else(missing)?
            .get(fingerprint)
            .map_err(|e| format!("local store: {e}"))?
            .ok_or_else(missing)?;
        let machine = StateMachine::from_json_str(text.value()).map_err(|e| {
            format!("the workflow definition {fingerprint} in the store is not valid: {e}")
        })?;
        if machine.fingerprint() != fingerprint {
            return Err(format!(
                "the workflow definition stored as {fingerprint} reads as {}",
                machine.fingerprint()
            ));
        }
        self.note(&machine);
        Ok(machine)
    }
}

/// A run made ready to write, off the writer thread.
struct Encoded {
    row: String,
    summary: String,
    /// The run's definition (fingerprint, text) when it may not be in the file yet.
    definition: Option<(String, String)>,
    machine: StateMachine,
}

impl Encoded {
    fn new(run: &Execution, definitions: &Definitions) -> Result<Encoded, StoreError> {
        let machine = run.machine().clone();
        let definition = (!definitions.contains(machine.fingerprint()))
            .then(|| (machine.fingerprint().to_owned(), machine.to_json()));
        Ok(Encoded {
            row: run
                .to_json_by_reference()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            summary: crate::inspect::run_summary(run),
            definition,
            machine,
        })
    }

    /// Writes the run of `ticket` (and its definition, unless already there).
    fn write(&self, tx: &WriteTransaction, ticket: &str) -> Result<(), StoreError> {
        if let Some((fingerprint, text)) = &self.definition {
            let mut table = tx.open_table(DEFINITIONS).map_err(storage)?;
            if table.get(fingerprint.as_str()).map_err(storage)?.is_none() {
                table
                    .insert(fingerprint.as_str(), text.as_str())
                    .map_err(storage)?;
            }
        }
        tx.open_table(EXECUTIONS)
            .map_err(storage)?
            .insert(ticket, self.row.as_str())
            .map_err(storage)?;
        tx.open_table(RUN_SUMMARIES)
            .map_err(storage)?
            .insert(ticket, self.summary.as_str())
            .map_err(storage)?;
        Ok(())
    }
}

fn has_run(tx: &WriteTransaction, ticket: &str) -> Result<bool, StoreError> {
    Ok(tx
        .open_table(EXECUTIONS)
        .map_err(storage)?
        .get(ticket)
        .map_err(storage)?
        .is_some())
}

impl LocalStore {
    /// `create`, and when the ticket is new, its workflow `run` (unless one exists) in the same
    /// commit: one fsync makes the ticket, its request claim, its first audit event and its run
    /// durable together.
    pub async fn create_with_run(
        &self,
        ticket: &Ticket,
        first: &AuditEvent,
        run: Option<&Execution>,
    ) -> Result<Created, StoreError> {
        let run = run
            .map(|run| Encoded::new(run, &self.definitions))
            .transpose()?;
        let ticket = ticket.clone();
        let first = first.clone();
        let ticket_text = to_text(&ticket)?;
        let first_text = to_text(&first)?;
        let (created, written) = self
            .write(move |tx| {
                let created = create_in(tx, &ticket, &ticket_text, &first, &first_text)?;
                let mut written = None;
                if let (Created::New, Some(run)) = (&created, &run)
                    && !has_run(tx, ticket.id.as_str())?
                {
                    run.write(tx, ticket.id.as_str())?;
                    written = Some(run.machine.clone());
                }
                Ok((created, written))
            })
            .await?;
        if let Some(machine) = written {
            // Committed with the run (or there before it).
            self.definitions.note(&machine);
        }
        Ok(created)
    }

    /// Stores the run of `ticket`, replacing the one stored.
    pub async fn put_run(&self, ticket: &str, run: &Execution) -> Result<(), StoreError> {
        let encoded = Encoded::new(run, &self.definitions)?;
        let ticket = ticket.to_owned();
        let machine = self
            .write(move |tx| {
                encoded.write(tx, &ticket)?;
                Ok(encoded.machine.clone())
            })
            .await?;
        self.definitions.note(&machine);
        Ok(())
    }

    /// Stores the run of `ticket` unless one exists; true when this call stored it.
    pub async fn insert_run(&self, ticket: &str, run: &Execution) -> Result<bool, StoreError> {
        let encoded = Encoded::new(run, &self.definitions)?;
        let ticket = ticket.to_owned();
        let (inserted, machine) = self
            .write(move |tx| {
                if has_run(tx, &ticket)? {
                    return Ok((false, None));
                }
                encoded.write(tx, &ticket)?;
                Ok((true, Some(encoded.machine.clone())))
            })
            .await?;
        if let Some(machine) = machine {
            self.definitions.note(&machine);
        }
        Ok(inserted)
    }

    /// The run of `ticket`.
    pub async fn run(&self, ticket: &str) -> Result<Option<Execution>, StoreError> {
        self.reader().run(ticket)
    }

    /// Every run, by ticket id.
    pub async fn runs(&self) -> Result<Vec<(String, Execution)>, StoreError> {
        let reader = self.reader();
        tokio::task::spawn_blocking(move || reader.all_runs())
            .await
            .map_err(storage)?
    }

    /// The runs still running, by ticket id (read from their summaries, not each whole run).
    pub async fn running_runs(&self) -> Result<Vec<(String, Execution)>, StoreError> {
        let reader = self.reader();
        tokio::task::spawn_blocking(move || reader.running_runs())
            .await
            .map_err(storage)?
    }
}

type DefinitionsTable = ReadOnlyTable<&'static str, &'static str>;

/// The definitions table; None in a file written before it existed, opened read-only.
fn definitions_table(tx: &ReadTransaction) -> Result<Option<DefinitionsTable>, StoreError> {
    match tx.open_table(DEFINITIONS) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(storage(e)),
    }
}

fn decode(
    ticket: &str,
    row: &str,
    definitions: &Definitions,
    table: Option<&DefinitionsTable>,
) -> Result<Execution, StoreError> {
    Execution::from_json_resolving(row, |fingerprint| definitions.resolve(fingerprint, table))
        .map_err(|e| StoreError::Corrupt(format!("the stored run of ticket {ticket}: {e}")))
}

impl Reader {
    /// The run of `ticket`.
    pub fn run(&self, ticket: &str) -> Result<Option<Execution>, StoreError> {
        let tx = self.begin()?;
        let runs = tx.open_table(EXECUTIONS).map_err(storage)?;
        let Some(row) = runs.get(ticket).map_err(storage)? else {
            return Ok(None);
        };
        let definitions = definitions_table(&tx)?;
        decode(ticket, row.value(), &self.definitions, definitions.as_ref()).map(Some)
    }

    /// Every run whose ticket id `wanted` accepts, by ticket id.
    fn runs(&self, wanted: impl Fn(&str) -> bool) -> Result<Vec<(String, Execution)>, StoreError> {
        let tx = self.begin()?;
        let runs = tx.open_table(EXECUTIONS).map_err(storage)?;
        let definitions = definitions_table(&tx)?;
        let mut found = Vec::new();
        for row in runs.iter().map_err(storage)? {
            let (ticket, row) = row.map_err(storage)?;
            if wanted(ticket.value()) {
                let run = decode(
                    ticket.value(),
                    row.value(),
                    &self.definitions,
                    definitions.as_ref(),
                )?;
                found.push((ticket.value().to_owned(), run));
            }
        }
        Ok(found)
    }

    /// Every run, by ticket id.
    pub fn all_runs(&self) -> Result<Vec<(String, Execution)>, StoreError> {
        self.runs(|_| true)
    }

    /// The runs still running: those whose summary says so, and those stored without one.
    pub fn running_runs(&self) -> Result<Vec<(String, Execution)>, StoreError> {
        let running = ExecutionStatus::Running.as_str();
        let finished: HashSet<String> = self
            .run_summaries()?
            .into_iter()
            .filter_map(|(ticket, summary)| {
                let status = summary?.split('\t').next()?.to_owned();
                (status != running).then_some(ticket)
            })
            .collect();
        let runs = self.runs(|ticket| !finished.contains(ticket))?;
        Ok(runs
            .into_iter()
            .filter(|(_, run)| run.status() == ExecutionStatus::Running)
            .collect())
    }

    /// Every run's summary ("STATUS\tSTATE"), by ticket id; None where the run was stored
    /// without one (read the run instead).
    pub fn run_summaries(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let tx = self.begin()?;
        let summaries = tx.open_table(RUN_SUMMARIES).map_err(storage)?;
        let executions = tx.open_table(EXECUTIONS).map_err(storage)?;
        let mut found: Vec<(String, Option<String>)> = summaries
            .iter()
            .map_err(storage)?
            .map(|row| {
                let (k, v) = row.map_err(storage)?;
                Ok((k.value().to_owned(), Some(v.value().to_owned())))
            })
            .collect::<Result<_, StoreError>>()?;
        if found.len() as u64 != executions.len().map_err(storage)? {
            let known: HashSet<String> = found.iter().map(|(t, _)| t.clone()).collect();
            for row in executions.iter().map_err(storage)? {
                let (k, _) = row.map_err(storage)?;
                if !known.contains(k.value()) {
                    found.push((k.value().to_owned(), None));
                }
            }
        }
        Ok(found)
    }

    /// The fingerprints of the workflow definitions in the store.
    pub fn definitions(&self) -> Result<Vec<String>, StoreError> {
        let tx = self.begin()?;
        let Some(table) = definitions_table(&tx)? else {
            return Ok(Vec::new());
        };
        table
            .iter()
            .map_err(storage)?
            .map(|row| Ok(row.map_err(storage)?.0.value().to_owned()))
            .collect()
    }
}
