//! The DynamoDB store: a `tickets` table (tickets, audit events, request claims) and a `ledger`
//! table (per-order refund sums and refund intents). Keys, indexes and the conditional-write
//! rules are in `docs/storage.md`.

mod errors;
mod items;
mod ledger;
mod query;
mod tables;
mod tickets;

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use jiff::SignedDuration;

use crate::clock::{Clock, SystemClock};

pub use tables::{IndexDefinition, TableDefinition, create_tables, table_definitions};

/// The two table names (the SAM template's `TicketsTable` and `LedgerTable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub tickets: String,
    pub ledger: String,
}

/// A table name the environment does not provide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {0} (a DynamoDB table name) is not set")]
pub struct MissingTableName(pub &'static str);

impl TableNames {
    /// The environment variables the template sets on every function.
    pub const TICKETS_ENV: &'static str = "TICKETS_TABLE";
    pub const LEDGER_ENV: &'static str = "LEDGER_TABLE";

    /// `<prefix>-tickets` and `<prefix>-ledger`.
    pub fn with_prefix(prefix: &str) -> TableNames {
        TableNames {
            tickets: format!("{prefix}-tickets"),
            ledger: format!("{prefix}-ledger"),
        }
    }

    /// From `TICKETS_TABLE` and `LEDGER_TABLE`.
    pub fn from_env() -> Result<TableNames, MissingTableName> {
        let read = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(MissingTableName(name))
        };
        Ok(TableNames {
            tickets: read(Self::TICKETS_ENV)?,
            ledger: read(Self::LEDGER_ENV)?,
        })
    }
}

/// How long a released refund reservation stays readable before DynamoDB's TTL removes it.
pub const RELEASED_RETENTION: SignedDuration = SignedDuration::from_hours(90 * 24);

/// Tickets, audit trails, history and the refund ledger in DynamoDB.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames) -> DynamoStore {
        DynamoStore {
            client,
            tables,
            clock: Arc::new(SystemClock),
        }
    }

    /// The clock that stamps released reservations (their TTL).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> DynamoStore {
        self.clock = clock;
        self
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }
}
