//! The `tiercare` command: serve, migrate, users, facilities, import, bench.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use tiercare_store::Store;

mod bench;
mod bench_case_payment;
mod bench_fhir;
mod bench_indicators;
mod bench_results;
mod config;
mod county;
mod county_case_payment;
mod county_results;
mod fhir_export;
mod fhir_import;
mod import;
mod synth;

use config::Settings;

/// mimalloc instead of glibc's malloc: malloc/free were a sixth of the CPU of the referral
/// life cycle over HTTP (perf, docs/benchmarks.md issue 4).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tiercare", version, about = "Tiered care for county medical communities (分级诊疗)")]
struct Cli {
    /// Settings file (TOML: listen, data_dir, database_url, session_ttl_hours, max_body_bytes, bulk_retention_hours).
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

/// The settlement rules a server loads at start.
#[derive(Args, Clone, Default)]
pub struct RulesArgs {
    /// Settlement policy file (TOML, the form of crates/domain/data/policy-default.toml);
    /// default: the policy set embedded in the binary.
    #[arg(long = "policy", value_name = "FILE", env = "TIERCARE_POLICY")]
    policy: Option<PathBuf>,
    /// Catalogue file of the places of treatment (TOML, the form of
    /// crates/domain/data/catalogue-default.toml); default: the embedded samples.
    #[arg(long = "catalogue", value_name = "FILE", env = "TIERCARE_CATALOGUE")]
    catalogue: Option<PathBuf>,
    /// The region's recognition catalogue of results (TOML, the form of
    /// crates/domain/data/recognition-default.toml); default: the embedded sample.
    #[arg(long = "recognition", value_name = "FILE", env = "TIERCARE_RECOGNITION")]
    recognition: Option<PathBuf>,
    /// Hours a finished FHIR bulk job ($export, $import) keeps its files; then they are
    /// removed and its status answers 404 (expired). Default 24.
    #[arg(long = "bulk-retention-hours", value_name = "HOURS", env = "TIERCARE_BULK_RETENTION_HOURS",
          value_parser = clap::value_parser!(u64).range(1..=8760))]
    bulk_retention_hours: Option<u64>,
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
        #[command(flatten)]
        rules: RulesArgs,
    },
    /// Generate the demo county into a SQLite file (reused when there), then serve it.
    Demo {
        /// Where the demo database lives.
        #[arg(long, default_value = "data/demo")]
        data_dir: PathBuf,
        #[arg(long, env = "TIERCARE_LISTEN")]
        listen: Option<String>,
        #[arg(long, default_value_t = 300_000)]
        residents: usize,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Generate and load, then exit without serving.
        #[arg(long)]
        no_serve: bool,
        #[command(flatten)]
        rules: RulesArgs,
    },
    /// Write the synthetic county as FHIR R4 NDJSON, one file per resource type.
    Generate {
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        #[arg(long, default_value_t = 300_000)]
        residents: usize,
        /// The calendar year of care.
        #[arg(long, default_value_t = 2025)]
        year: i32,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        quiet: bool,
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
    /// Bulk exports.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
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
    /// Import FHIR R4 NDJSON (a directory of `<Type>.ndjson` or files), resumable.
    Fhir(fhir_import::ImportFhirArgs),
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Write the store as FHIR R4 NDJSON into DIR, one file per resource type.
    Fhir(fhir_export::ExportFhirArgs),
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
        Command::Serve { store, listen, rules } => {
            let store = open_store(&store, &settings).await?;
            if store.list_users().await?.is_empty() {
                eprintln!(
                    "No users yet: add a facility and an admin with `tiercare facilities add` and `tiercare users add`."
                );
            }
            serve(store, listen, &rules, &settings, |addr| {
                eprintln!("tiercare serving on http://{addr}  (API: /api/v1, OpenAPI: /api/v1/openapi.json)")
            })
            .await
        }
        Command::Demo { data_dir, listen, residents, seed, no_serve, rules } => {
            demo(data_dir, listen, residents, seed, no_serve, &rules, &settings).await
        }
        Command::Generate { seed, residents, year, out, quiet } => {
            let started = std::time::Instant::now();
            let county = county::generate(tiercare_sim::Config { seed, residents, year }, !quiet);
            let counts = county::write_ndjson(&county, &out, !quiet)?;
            let summary: Vec<String> = counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
            println!(
                "wrote {} to {} in {:.1} s (peak memory {:.0} MiB)",
                summary.join(", "),
                out.display(),
                started.elapsed().as_secs_f64(),
                county::peak_memory_mib().unwrap_or(0.0)
            );
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
        Command::Import { command: ImportCommand::Fhir(args) } => fhir_import::run(args, &settings).await,
        Command::Export { command: ExportCommand::Fhir(args) } => fhir_export::run(args, &settings).await,
        Command::Bench { command } => bench::run(command, &settings).await,
    }
}

/// Serve `store` until Ctrl-C; `ready` is told the bound address.
async fn serve(
    store: Arc<dyn Store>,
    listen: Option<String>,
    rules: &RulesArgs,
    settings: &Settings,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let mut config = settings.server_config();
    config.policy_file = rules.policy.clone();
    config.catalogue_file = rules.catalogue.clone();
    config.recognition_file = rules.recognition.clone();
    if let Some(h) = rules.bulk_retention_hours {
        config.bulk_retention = std::time::Duration::from_secs(h * 3600);
    }
    // issue 7: where $import may read files and where bulk jobs write theirs
    config.import_dir = std::env::var_os("TIERCARE_IMPORT_DIR").map(PathBuf::from);
    config.bulk_dir = std::env::var_os("TIERCARE_BULK_DIR").map(PathBuf::from);
    // load (and check) the settlement rules before listening
    let state = tiercare_server::AppState::try_new(store, config).map_err(|e| anyhow::anyhow!(e))?;
    let listen = listen.or(settings.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener =
        tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    ready(listener.local_addr()?);
    tiercare_server::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// The password of every demo account (the demo database is synthetic and local).
const DEMO_PASSWORD: &str = "tiercare-demo";

async fn demo(
    data_dir: PathBuf,
    listen: Option<String>,
    residents: usize,
    seed: u64,
    no_serve: bool,
    rules: &RulesArgs,
    settings: &Settings,
) -> Result<()> {
    let args = StoreArgs { data_dir: Some(data_dir.clone()), database_url: None };
    let store = open_store(&args, settings).await?;
    let config = tiercare_sim::Config { seed, residents, ..Default::default() };
    let county = Arc::new(county::generate(config, true));
    if store.count_patients().await? == 0 {
        let stats = county::load(&store, county.clone(), true).await?;
        eprintln!(
            "loaded the demo county: {} facilities, {} residents, {} encounters, {} referrals in {:.1} s",
            stats.facilities, stats.residents, stats.encounters, stats.referrals, stats.seconds
        );
    } else {
        eprintln!("reusing the demo database in {} (delete the folder to generate it anew)", data_dir.display());
    }
    let live = county::add_live_referrals(&store, &county).await?;
    if live > 0 {
        eprintln!("added {live} referrals in flight today (the generated year has ended)");
    }
    let hash = tiercare_server::auth::hash_password(DEMO_PASSWORD).map_err(|e| anyhow::anyhow!(e))?;
    let mut logins = Vec::new();
    for (username, display, role, code) in county::demo_users(&county) {
        let facility = store.get_facility_by_code(&code).await?.with_context(|| format!("demo facility {code}"))?;
        if store.get_user_by_username(username).await?.is_none() {
            // the village, township and referral-centre users act as their facility's
            // stand-in in the generated referral histories, so those show their names
            let id = match role {
                tiercare_domain::role::Role::VillageDoctor
                | tiercare_domain::role::Role::TownshipClinician
                | tiercare_domain::role::Role::ReferralCentre => tiercare_sim::referrals::staff_user_id(facility.id),
                _ => tiercare_store::new_id(),
            };
            store
                .create_user(&tiercare_store::User {
                    id,
                    username: username.into(),
                    display_name: display.into(),
                    facility_id: facility.id,
                    roles: vec![role],
                    password_hash: hash.clone(),
                    active: true,
                })
                .await?;
        }
        logins.push(format!("  {username:<11} {display}（{}）@ {}", role.as_str(), facility.name));
    }
    if no_serve {
        return Ok(());
    }
    serve(store, listen, rules, settings, |addr| {
        println!("tiercare demo — {}，{} residents", county.community.name, county.residents.len());
        println!("open http://{addr}/");
        println!("logins (password: {DEMO_PASSWORD}):");
        for l in &logins {
            println!("{l}");
        }
    })
    .await
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
                location: None,
                referral_policy: Default::default(),
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
