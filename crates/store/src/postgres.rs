//! PostgreSQL backend, chosen by a `postgres://` URL. Write transactions run SERIALIZABLE
//! and are retried on SQLSTATE 40001. The schema avoids sequences, triggers, LISTEN/NOTIFY
//! and advisory locks so it can move to a distributed PostgreSQL unchanged.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::query_builder::Separated;
use sqlx::{AssertSqlSafe, Executor, Pool, QueryBuilder, Row, query, raw_sql};

type Db = sqlx::Postgres;
type Tx = sqlx::Transaction<'static, Db>;
type DbRow = <Db as sqlx::Database>::Row;
type This = PgStore;
const BACKEND: Backend = Backend::Postgres;
const MIGRATIONS: &[crate::migrate::Migration] = crate::migrate::POSTGRES;
const BULK_INSERT: &str = "INSERT INTO";

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<Db>,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        Ok(PgStore { pool })
    }

    fn read(&self) -> &Pool<Db> {
        &self.pool
    }

    async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin_with("BEGIN ISOLATION LEVEL SERIALIZABLE").await?)
    }

    /// READ COMMITTED, for a transaction whose correctness rests on the row locks it takes
    /// (`FOR_UPDATE`): a settlement locks the person's accumulator row, so two settlements
    /// of one person queue on it, and those of different people (at one facility, through
    /// the same index pages) no longer fail SERIALIZABLE and retry.
    async fn begin_row_locking(&self) -> Result<Tx> {
        Ok(self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?)
    }
}

/// Appended to a SELECT that reads a row to update it in the same transaction.
const FOR_UPDATE: &str = " FOR UPDATE";

fn busy_retry_delay(attempt: u32) -> Duration {
    // jittered backoff: two serialization failures should not retry in lockstep
    let jitter = u64::from(uuid::Uuid::now_v7().as_bytes()[15] % 10);
    Duration::from_millis(2u64.pow(attempt.min(6)) + jitter)
}

/// PostgreSQL chooses indexes by its statistics; nothing to add (unary `+` is not defined on UUID).
const UNINDEXED: &str = "";

include!("queries.rs");
