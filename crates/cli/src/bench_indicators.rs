//! Benchmarks of reform indicators (issue 8): each prints the figure its issue names.

use anyhow::Result;
use clap::Subcommand;

use crate::config::Settings;

#[derive(Subcommand)]
pub enum IndicatorsBench {}

pub async fn run(cmd: IndicatorsBench, _settings: &Settings) -> Result<()> {
    match cmd {}
}
