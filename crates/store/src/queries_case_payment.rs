// Case-based payment: DIP scoring, CHS-DRG grouping and the global budget (issue 9): included into `mod case_payment` inside `queries.rs`, so it is
// compiled once per backend like the rest. SQL here must be valid on both SQLite and
// PostgreSQL.

#[allow(unused_imports)]
use super::*;

#[async_trait::async_trait]
impl crate::CasePaymentStore for This {}
