//! Benchmarks of case-based payment (issue 9): each prints the figure its issue names.

use anyhow::Result;
use clap::Subcommand;

use crate::config::Settings;

#[derive(Subcommand)]
pub enum CasePaymentBench {}

pub async fn run(cmd: CasePaymentBench, _settings: &Settings) -> Result<()> {
    match cmd {}
}
