//! The `tiercare` command: serve, migrate, users, facilities, import, bench.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use tiercare_store::Store;

mod bench;
mod config;
mod import;
mod synth;

use config::Settings;

#[derive(Parser)]
#[command(name = "tiercare", version, about = "Tiered care for county medical communities (分级诊疗)")]
struct Cli {
    /// Settings file (TOML: listen, data_dir, database_url, session_ttl_hours, max_body_bytes).
    #[arg(long, global = true, env = "TIERCARE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives; shared by every command that opens the store.
#[derive(Args, Clone, Default)]
pub struct StoreArgs {
    /// Directory of the SQLite file (tiercare.sqlite) when no database URL is given.
    #[arg(long, env = "TIERCARE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A postgres:// URL selects PostgreSQL; otherwise SQLite in the data directory.
    #[arg(long, env = "TIERCARE_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve the API (GET /healthz answers once ready).
    Serve {
        #[command(flatten)]
        store: StoreArgs,
        /// Address to listen on.
        #[arg(long, env = "TIERCARE_LISTEN")]
        listen: Option<String>,
    },
    /// Apply pending database migrations.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage user accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manage facilities.
    Facilities {
        #[command(subcommand)]
        command: FacilitiesCommand,
    },
    /// Bulk imports.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Benchmarks that print the figures the issues ask for.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user. The password is read from TIERCARE_PASSWORD or the first line of standard input.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: String,
        /// Facility code (e.g. H51162100001).
        #[arg(long)]
        facility: String,
        /// Comma-separated roles: village_doctor, township_clinician, referral_centre, specialist, lab,
        /// settlement_clerk, insurance_officer, community_admin, system_admin.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// List users.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum FacilitiesCommand {
    /// Register a facility.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        /// village, township, county, city, provincial or national
        #[arg(long)]
        tier: String,
        /// ungraded, level1, level2, level2a, level3, level3a
        #[arg(long, default_value = "ungraded")]
        grade: String,
        /// GB/T 2260 code of the facility's county.
        #[arg(long)]
        region: String,
        /// Insurance pooling region; defaults to the region.
        #[arg(long)]
        insurance_region: Option<String>,
    },
    /// List facilities.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Import patients from CSV (header row) or NDJSON (one registration per line).
    Patients(import::ImportPatientsArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TIERCARE_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(cli.command, settings))
}

/// Open the store the arguments (or settings) name, and migrate it.
pub async fn open_store(args: &StoreArgs, settings: &Settings) -> Result<Arc<dyn Store>> {
    let url = settings.database_url(args);
    let store = tiercare_store::open(&url).await.with_context(|| format!("opening the database ({})", redact(&url)))?;
    let applied = store.migrate().await.context("migrating the database")?;
    for m in applied {
        tracing::info!(migration = m, "applied migration");
    }
    Ok(store)
}

/// Hide a password in a database URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}

async fn run(command: Command, settings: Settings) -> Result<()> {
    match command {
        Command::Serve { store, listen } => {
            let listen = listen.or(settings.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
            let store = open_store(&store, &settings).await?;
            let listener =
                tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
            let addr = listener.local_addr()?;
            if store.list_users().await?.is_empty() {
                eprintln!(
                    "No users yet: add a facility and an admin with `tiercare facilities add` and `tiercare users add`."
                );
            }
            eprintln!("tiercare serving on http://{addr}  (API: /api/v1, OpenAPI: /api/v1/openapi.json)");
            let state = tiercare_server::AppState::new(store, settings.server_config());
            tiercare_server::serve(listener, state, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            Ok(())
        }
        Command::Migrate { store } => {
            open_store(&store, &settings).await?;
            eprintln!("database is up to date");
            Ok(())
        }
        Command::Users { command } => users(command, &settings).await,
        Command::Facilities { command } => facilities(command, &settings).await,
        Command::Import { command: ImportCommand::Patients(args) } => import::run(args, &settings).await,
        Command::Bench { command } => bench::run(command, &settings).await,
    }
}

async fn users(command: UsersCommand, settings: &Settings) -> Result<()> {
    match command {
        UsersCommand::Add { store, username, display_name, facility, roles } => {
            let store = open_store(&store, settings).await?;
            let f = store
                .get_facility_by_code(&facility)
                .await?
                .with_context(|| format!("no facility with code {facility}; add it with `tiercare facilities add`"))?;
            let password = match std::env::var("TIERCARE_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    eprintln!("password (read from standard input):");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let (username, display_name, roles, password_hash) =
                tiercare_server::validate_user(&username, &display_name, &roles, &password)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            let user = tiercare_store::User {
                id: tiercare_store::new_id(),
                username,
                display_name,
                facility_id: f.id,
                roles,
                password_hash,
                active: true,
            };
            store.create_user(&user).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("added user {} ({})", user.username, user.id);
            Ok(())
        }
        UsersCommand::List { store } => {
            let store = open_store(&store, settings).await?;
            for u in store.list_users().await? {
                let roles: Vec<&str> = u.roles.iter().map(|r| r.as_str()).collect();
                println!("{}\t{}\t{}\t{}", u.username, u.display_name, u.facility_id, roles.join(","));
            }
            Ok(())
        }
    }
}

async fn facilities(command: FacilitiesCommand, settings: &Settings) -> Result<()> {
    use tiercare_domain::facility::{Capabilities, Grade, NewFacility, Tier};
    match command {
        FacilitiesCommand::Add { store, code, name, tier, grade, region, insurance_region } => {
            let store = open_store(&store, settings).await?;
            let Some(tier) = Tier::parse(&tier) else {
                bail!("unknown tier {tier:?}; use village, township, county, city, provincial or national")
            };
            let Some(grade) = Grade::parse(&grade) else {
                bail!("unknown grade {grade:?}; use ungraded, level1, level2, level2a, level3 or level3a")
            };
            let f = NewFacility {
                code,
                name,
                tier,
                grade,
                insurance_region: insurance_region.unwrap_or_else(|| region.clone()),
                region_code: region,
                community_id: None,
                capabilities: Capabilities::default(),
            }
            .validate(tiercare_store::new_id())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            store.create_facility(&f).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("added facility {} {} ({})", f.code, f.name, f.id);
            Ok(())
        }
        FacilitiesCommand::List { store } => {
            let store = open_store(&store, settings).await?;
            for f in store.list_facilities(&Default::default()).await? {
                println!("{}\t{}\t{}\t{}", f.code, f.name, f.tier.as_str(), f.region_code);
            }
            Ok(())
        }
    }
}
