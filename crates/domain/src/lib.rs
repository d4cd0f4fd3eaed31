//! tiercare-domain: the types and rules of tiered care.
//!
//! Architecture invariant: this crate does no I/O, knows no storage, no HTTP and no
//! FHIR JSON. Everything here is a pure function of its inputs, so it can be tested with
//! hand-computed cases and property tests. Money is `i64` fen.

/// A closed set of codes as an enum: serde snake_case names, `ALL`, `as_str` and `parse`
/// (the stable machine codes the API, the store and the UI's dictionary share).
macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s),+ } }
            pub fn parse(s: &str) -> Option<Self> { Self::ALL.iter().copied().find(|x| x.as_str() == s) }
        }
    };
}

pub mod access;
pub mod billing;
pub mod budget;
pub mod codes;
pub mod dip;
pub mod drg;
pub mod encounter;
pub mod error;
pub mod facility;
pub mod filing;
pub mod identity;
pub mod indicators;
pub mod matching;
pub mod patient;
pub mod recognition;
pub mod referral;
pub mod region;
pub mod results;
pub mod role;
pub mod settlement;

pub use error::{DomainError, FieldError};

/// Current time as a UTC timestamp. The one place the domain asks for the clock is the
/// caller: every rule takes times as arguments; this helper exists for callers.
pub type Timestamp = time::OffsetDateTime;
