//! Reform indicators with incremental aggregates (issue 8): the records and the part of the [`Store`](crate::Store)
//! trait for them. Implemented per backend in `queries_indicators.rs`.

use async_trait::async_trait;

/// Reform indicators with incremental aggregates (issue 8).
#[async_trait]
pub trait IndicatorStore: Send + Sync {}
