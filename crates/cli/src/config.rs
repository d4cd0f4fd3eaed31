//! Settings: command-line flags win over environment variables (clap), which win over the
//! settings file, which wins over the defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::StoreArgs;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub session_ttl_hours: Option<u64>,
    pub max_body_bytes: Option<usize>,
    /// Hours a finished FHIR bulk job's files are kept (`serve --bulk-retention-hours`).
    pub bulk_retention_hours: Option<u64>,
}

impl Settings {
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else { return Ok(Settings::default()) };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading settings file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("settings file {} is not valid", path.display()))
    }

    /// The database URL: flag/env URL, else settings URL, else SQLite in the data directory.
    pub fn database_url(&self, args: &StoreArgs) -> String {
        if let Some(u) = args.database_url.clone().or(self.database_url.clone()) {
            return u;
        }
        let dir = args.data_dir.clone().or(self.data_dir.clone()).unwrap_or_else(|| PathBuf::from("data"));
        dir.join("tiercare.sqlite").to_string_lossy().into_owned()
    }

    pub fn server_config(&self) -> tiercare_server::ServerConfig {
        let mut c = tiercare_server::ServerConfig::default();
        if let Some(h) = self.session_ttl_hours {
            c.session_ttl = Duration::from_secs(h * 3600);
        }
        if let Some(b) = self.max_body_bytes {
            c.max_body_bytes = b;
        }
        if let Some(h) = self.bulk_retention_hours {
            c.bulk_retention = Duration::from_secs(h * 3600);
        }
        c
    }
}
