//! FHIR Bulk Data pipelines (issue 7), shared by the `tiercare` command (`import fhir`,
//! `export fhir`) and the server's asynchronous `$import`/`$export` jobs
//! (`crate::fhir::bulk`): NDJSON in ([`import`]: streaming, chunked, per-line errors,
//! resumable from a checkpoint file) and out ([`export`]: keyset-paged walks of the store,
//! one file per resource type). They know files and the store, not HTTP; [`jobs`] keeps the
//! server's jobs in the memory of the serving process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub mod export;
pub mod import;
pub(crate) mod jobs;

/// Why a bulk run stopped with an error (a refused line is not an error: it is reported).
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// A file cannot be read or written, or its content cannot be imported at all (not
    /// NDJSON, changed since the checkpoint): the message names the file.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Store(#[from] tiercare_store::StoreError),
    /// Stopped by a [`Cancel`] (an export's files are incomplete).
    #[error("cancelled")]
    Cancelled,
}

pub type BulkResult<T> = std::result::Result<T, BulkError>;

/// `io::Result` (and the like) with the file they concern.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> BulkResult<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> BulkResult<T> {
        self.map_err(|e| BulkError::Input(format!("{}: {e}", what())))
    }
}

/// Where a run reports how far it is (the command's progress bars, a job's `X-Progress`).
pub trait Progress: Send + Sync {
    /// A new part begins: a file of `kind` of `size` bytes (import) or a resource type (export, size 0).
    fn start(&self, kind: &str, size: u64);
    /// The part is at `position` (bytes read, or resources written).
    fn at(&self, position: u64);
    /// The part is done.
    fn finish(&self) {}
}

/// Asks a run to stop at its next safe point (after a committed chunk, between pages).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
