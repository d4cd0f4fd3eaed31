//! Contract cases for results (issue 5). Each case is a `pub async fn case(store: Arc<dyn Store>)`
//! like those of the parent module (whose fixtures and helpers it may use through `super::`),
//! and is listed in [`results_contract_tests!`](crate::results_contract_tests). Case names start with
//! the part's name so they never clash with the other suites' in a backend's test file.

/// Expand one `#[tokio::test]` per results (issue 5) contract case (see [`contract_tests!`](crate::contract_tests)).
#[macro_export]
macro_rules! results_contract_tests {
    ($open:expr) => {
        $crate::contract_tests!(@cases_in results, $open;);
    };
}

#[allow(unused_imports)]
use super::*;
