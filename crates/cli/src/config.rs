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
        let settings: Settings =
            toml::from_str(&text).with_context(|| format!("settings file {} is not valid", path.display()))?;
        if let Some(h) = settings.bulk_retention_hours.filter(|h| !(1..=8760).contains(h)) {
            anyhow::bail!(
                "settings file {}: bulk_retention_hours must be 1 to 8760 (hours a finished bulk job's files are \
                 kept), not {h}",
                path.display()
            );
        }
        Ok(settings)
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
            c.session_ttl = Duration::from_secs(h.saturating_mul(3600));
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

#[cfg(test)]
mod tests {
    use super::Settings;

    fn load(text: &str) -> anyhow::Result<Settings> {
        let path = std::env::temp_dir().join(format!("tiercare-settings-{}.toml", tiercare_store::new_id()));
        std::fs::write(&path, text).expect("write settings");
        let s = Settings::load(Some(&path));
        let _ = std::fs::remove_file(&path);
        s
    }

    #[test]
    fn bulk_retention_is_one_hour_to_a_year() {
        assert_eq!(load("bulk_retention_hours = 1").expect("1 h").bulk_retention_hours, Some(1));
        assert_eq!(load("bulk_retention_hours = 8760").expect("a year").bulk_retention_hours, Some(8760));
        for bad in ["0", "8761", "9223372036854775807"] {
            let e = load(&format!("bulk_retention_hours = {bad}")).expect_err(bad).to_string();
            assert!(e.contains("bulk_retention_hours must be 1 to 8760"), "{bad}: {e}");
        }
    }
}
