//! SQLite backend: the embedded default. One file in the data directory, WAL mode,
//! `synchronous=NORMAL`, foreign keys on. Writes go through a single-connection pool and
//! `BEGIN IMMEDIATE`, so writers queue instead of failing busy; reads use their own pool.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Pool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

type Db = sqlx::Sqlite;
type This = SqliteStore;
const BACKEND: Backend = Backend::Sqlite;
const MIGRATIONS: &[crate::migrate::Migration] = crate::migrate::SQLITE;
/// `OR FAIL`: a failing row ends the statement without undoing the rows before it, so
/// SQLite needs no statement journal (a copy of every page a 1,000-row insert touches).
/// The enclosing transaction is rolled back on any error, so nothing partial remains.
const BULK_INSERT: &str = "INSERT OR FAIL INTO";

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    read: Pool<Db>,
    write: Pool<Db>,
}

impl SqliteStore {
    /// Open (creating if missing) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Corrupt(format!("cannot create {}: {e}", dir.display())))?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory");
        // the writer keeps more pages (up to 1 GiB, allocated as used): bulk imports touch every index
        // and checkpoints less often (40 MB of WAL), so bulk writes are not copied twice as often
        let write_opts = opts.clone().pragma("cache_size", "-1048576").pragma("wal_autocheckpoint", "10000");
        let write = SqlitePoolOptions::new().max_connections(1).connect_with(write_opts).await?;
        let read =
            SqlitePoolOptions::new().max_connections(8).connect_with(opts.pragma("cache_size", "-65536")).await?;
        Ok(SqliteStore { read, write })
    }

    fn read(&self) -> &Pool<Db> {
        &self.read
    }

    async fn begin(&self) -> Result<Tx> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn busy_retry_delay(attempt: u32) -> Duration {
    Duration::from_millis(5 * u64::from(attempt))
}

/// `+column` keeps a column out of SQLite's index choice (see its use in the worklists).
const UNINDEXED: &str = "+";

include!("queries.rs");
