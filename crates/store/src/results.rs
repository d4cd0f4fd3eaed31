//! Shared lab and imaging results with mutual recognition (issue 5): the records and the part of the [`Store`](crate::Store)
//! trait for them. Implemented per backend in `queries_results.rs`.

use async_trait::async_trait;

/// Shared lab and imaging results with mutual recognition (issue 5).
#[async_trait]
pub trait ResultStore: Send + Sync {}
