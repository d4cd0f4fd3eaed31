//! Benchmarks of case-based payment (issue 9): each prints the figure its issue names.
//!
//! The measuring code is the domain crate's examples (`crates/domain/examples/bench_dip.rs`,
//! `bench_drg.rs`), included here so `cargo run --example` and `tiercare bench` run the same code.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use crate::config::Settings;

#[path = "../../domain/examples/bench_dip.rs"]
mod dip_example;
#[path = "../../domain/examples/bench_drg.rs"]
mod drg_example;

#[derive(Subcommand)]
pub enum CasePaymentBench {
    /// DIP catalogue build + year-end settlement of a province-sized year (target ≤ 60 s for
    /// 5,000,000 stays), one thread.
    Dip {
        /// Stays of the settlement year.
        #[arg(long, default_value_t = 5_000_000)]
        stays: usize,
        /// Stays of the three history years the catalogue is built from.
        #[arg(long, default_value_t = 5_000_000)]
        history: usize,
    },
    /// DRG grouping throughput with the CHS-DRG 1.1 scheme (target ≥ 200,000 stays/s per core).
    Drg {
        /// Rounds over the 3,000 regression stays.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
        /// The folder holding `chs-drg-1.1/` and `drg-regression/` (the shared data).
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
    },
}

pub async fn run(cmd: CasePaymentBench, _settings: &Settings) -> Result<()> {
    let outcome = tokio::task::spawn_blocking(move || match cmd {
        CasePaymentBench::Dip { stays, history } => dip_example::run(stays, history).map_err(|e| e.to_string()),
        CasePaymentBench::Drg { rounds, data } => drg_example::run(rounds, &data).map_err(|e| e.to_string()),
    })
    .await?;
    outcome.map_err(anyhow::Error::msg)
}
