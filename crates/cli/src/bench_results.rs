//! Benchmarks of results and mutual recognition (issue 5): each prints the figure its issue names.

use anyhow::Result;
use clap::Subcommand;

use crate::config::Settings;

#[derive(Subcommand)]
pub enum ResultsBench {}

pub async fn run(cmd: ResultsBench, _settings: &Settings) -> Result<()> {
    match cmd {}
}
