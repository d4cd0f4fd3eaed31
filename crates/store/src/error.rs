use tiercare_domain::DomainError;
use uuid::Uuid;

/// Why a store operation failed. Callers map these to user-facing errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken, e.g. an identity number already registered.
    #[error("{what} already exists")]
    Duplicate { what: String, existing: Option<Uuid> },
    /// A referenced record does not exist (unknown facility, patient…).
    #[error("unknown {what}")]
    NotFound { what: String },
    /// The record changed since it was read (optimistic concurrency), or is already in
    /// the state the change would bring it to; the message names its current state.
    #[error("{0}")]
    Conflict(String),
    /// A settlement's transaction number was already used by this facility for another
    /// bill (another patient, other lines or other priced items); the message names the
    /// number and the first settlement. A repeat of the same bill is a replay, not this.
    #[error("{0}")]
    TxnNumberUsed(String),
    /// The settlement's encounter already has a settlement in force (reverse it first);
    /// the message names the encounter, the settlement and its transaction number.
    #[error("{0}")]
    EncounterSettled(String),
    /// A domain rule refused the change (e.g. an impossible merge).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The database stayed busy or kept failing serialization after retries.
    #[error("the database is busy; try again")]
    Busy,
    /// A migration that was applied has changed since (migrations are append-only).
    #[error("migration {0} was changed after it was applied; migrations are append-only")]
    MigrationChanged(String),
    /// A value in the database could not be read back.
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    /// An all-or-nothing import had bad rows; nothing was written.
    #[error("{} rows were refused; nothing was imported", .0.len())]
    Rejected(Vec<crate::RowRejection>),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// An error of the SQLite backend's driver (`lite.rs`).
    #[error("database error: {0}")]
    Sqlite(#[source] crate::lite::Error),
}

impl StoreError {
    pub fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }
    /// Serialization failure (40001), deadlock (40P01) or SQLite busy/locked: retry the transaction.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("40001" | "40P01" | "5" | "6" | "517" | "261" | "262"))
            }
            StoreError::Sqlite(e) => e.is_busy(),
            StoreError::Busy => true,
            _ => false,
        }
    }

    /// A UNIQUE or PRIMARY KEY constraint refused the write, on either backend.
    pub(crate) fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => db.is_unique_violation(),
            StoreError::Sqlite(e) => e.is_unique_violation(),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

impl From<crate::lite::Error> for StoreError {
    fn from(e: crate::lite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}
