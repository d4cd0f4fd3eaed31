//! SQLite backend: the embedded default. One file in the data directory, WAL mode,
//! `synchronous=NORMAL`, foreign keys on. Statements run on the calling thread through
//! rusqlite (`lite.rs`, which mirrors the part of sqlx's API the queries use). Writes go
//! through the one writer connection and `BEGIN IMMEDIATE`, so writers queue on its lock
//! instead of failing busy; reads use a small pool of their own connections.

use std::path::Path;
use std::time::Duration;

use crate::lite::{AssertSqlSafe, Executor, QueryBuilder, Row, Separated, query, raw_sql};

type Db = crate::lite::Sqlite;
type Tx = crate::lite::Transaction;
type DbRow = Row;
type This = SqliteStore;
const BACKEND: Backend = Backend::Sqlite;
const MIGRATIONS: &[crate::migrate::Migration] = crate::migrate::SQLITE;
/// `OR FAIL`: a failing row ends the statement without undoing the rows before it, so
/// SQLite needs no statement journal (a copy of every page a 1,000-row insert touches).
/// The enclosing transaction is rolled back on any error, so nothing partial remains.
const BULK_INSERT: &str = "INSERT OR FAIL INTO";
/// Reader connections kept open (about one per thread that reads at once is used).
const MAX_READERS: usize = 8;

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    read: std::sync::Arc<crate::lite::ReadPool>,
    write: std::sync::Arc<crate::lite::Writer>,
}

impl SqliteStore {
    /// Open (creating if missing) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Corrupt(format!("cannot create {}: {e}", dir.display())))?;
        }
        let (write, read) = crate::lite::open(path, MAX_READERS)?;
        Ok(SqliteStore { read: std::sync::Arc::new(read), write })
    }

    fn read(&self) -> &crate::lite::ReadPool {
        &self.read
    }

    async fn begin(&self) -> Result<Tx> {
        Ok(crate::lite::Transaction::begin(&self.write, "BEGIN IMMEDIATE").await?)
    }

    /// The one writer serialises every write transaction already.
    async fn begin_row_locking(&self) -> Result<Tx> {
        self.begin().await
    }
}

/// SQLite has no row locks (and no `FOR UPDATE`): the single writer holds the database.
const FOR_UPDATE: &str = "";

fn busy_retry_delay(attempt: u32) -> Duration {
    Duration::from_millis(5 * u64::from(attempt))
}

/// `+column` keeps a column out of SQLite's index choice (see its use in the worklists).
const UNINDEXED: &str = "+";

include!("queries.rs");
