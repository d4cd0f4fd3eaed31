// Reform indicators with incremental aggregates (issue 8): included into `mod indicators` inside `queries.rs`, so it is
// compiled once per backend like the rest. SQL here must be valid on both SQLite and
// PostgreSQL.

#[allow(unused_imports)]
use super::*;

#[async_trait::async_trait]
impl crate::IndicatorStore for This {}
