//! Case-based payment: DIP scoring, CHS-DRG grouping and the global budget (issue 9): the records and the part of the [`Store`](crate::Store)
//! trait for them. Implemented per backend in `queries_case_payment.rs`.

use async_trait::async_trait;

/// Case-based payment: DIP scoring, CHS-DRG grouping and the global budget (issue 9).
#[async_trait]
pub trait CasePaymentStore: Send + Sync {}
