//! tiercare-domain: the types and rules of tiered care.
//!
//! Architecture invariant: this crate does no I/O, knows no storage, no HTTP and no
//! FHIR JSON. Everything here is a pure function of its inputs, so it can be tested with
//! hand-computed cases and property tests. Money is `i64` fen.

pub mod access;
pub mod codes;
pub mod dip;
pub mod drg;
pub mod encounter;
pub mod error;
pub mod facility;
pub mod filing;
pub mod identity;
pub mod matching;
pub mod patient;
pub mod recognition;
pub mod referral;
pub mod region;
pub mod role;
pub mod settlement;

pub use error::{DomainError, FieldError};

/// Current time as a UTC timestamp. The one place the domain asks for the clock is the
/// caller: every rule takes times as arguments; this helper exists for callers.
pub type Timestamp = time::OffsetDateTime;
