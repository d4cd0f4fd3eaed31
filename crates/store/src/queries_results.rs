// Shared lab and imaging results with mutual recognition (issue 5): included into `mod results` inside `queries.rs`, so it is
// compiled once per backend like the rest. SQL here must be valid on both SQLite and
// PostgreSQL.

#[allow(unused_imports)]
use super::*;

#[async_trait::async_trait]
impl crate::ResultStore for This {}
