//! `tiercare bench …`: end-to-end figures, printed, never asserted.
//!
//! - `bench import`    bulk patient import throughput (patients/s)
//! - `bench lookup`    identity-number lookup latency through the HTTP API (p50/p95/p99)
//! - `bench coldstart` time from starting `tiercare serve` to the first 200 from /healthz

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use tiercare_domain::facility::{Capabilities, Grade, NewFacility, Tier};
use tiercare_store::Store;

use crate::StoreArgs;
use crate::config::Settings;
use crate::synth;
use tiercare_sim::Rng;

/// The county the benchmark people live in (岳池县).
const REGION: &str = "511621";
const BENCH_FACILITY: &str = "H51162100001";

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Bulk patient import throughput.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value_t = 200_000)]
        patients: usize,
        /// Working directory for the generated file and the SQLite database.
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
    },
    /// Identity-number lookup latency through the HTTP API, on SQLite.
    Lookup {
        #[arg(long, default_value_t = 1_000_000)]
        patients: usize,
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
    },
    /// Patient page (`GET /api/v1/patients/{id}`, the record with a year of encounters) on
    /// the demo county's database (run `tiercare demo --no-serve` first).
    PatientPage {
        #[arg(long, default_value = "data/demo")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 5_000)]
        requests: usize,
    },
    /// Cold start of `tiercare serve` on an existing database.
    Coldstart {
        #[arg(long, default_value_t = 1_000_000)]
        patients: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
    },
}

pub async fn run(cmd: BenchCommand, settings: &Settings) -> Result<()> {
    match cmd {
        BenchCommand::Import { store, patients, work_dir } => bench_import(store, patients, &work_dir, settings).await,
        BenchCommand::Lookup { patients, requests, work_dir } => bench_lookup(patients, requests, &work_dir).await,
        BenchCommand::Coldstart { patients, runs, work_dir } => bench_coldstart(patients, runs, &work_dir).await,
        BenchCommand::PatientPage { data_dir, requests } => bench_patient_page(&data_dir, requests).await,
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned()))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{cores} cores, {mem}")
}

async fn ensure_facility(store: &Arc<dyn Store>) -> Result<()> {
    if store.get_facility_by_code(BENCH_FACILITY).await?.is_none() {
        let f = NewFacility {
            code: BENCH_FACILITY.into(),
            name: "岳池县人民医院".into(),
            tier: Tier::County,
            grade: Grade::Level2A,
            region_code: REGION.into(),
            insurance_region: REGION.into(),
            community_id: None,
            capabilities: Capabilities::default(),
            location: None,
            referral_policy: Default::default(),
        }
        .validate(tiercare_store::new_id())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        store.create_facility(&f).await?;
    }
    Ok(())
}

fn people_file(work_dir: &Path, n: usize) -> Result<(PathBuf, Vec<synth::Person>)> {
    std::fs::create_dir_all(work_dir)?;
    // the name carries the generator version: a file from an older one holds other people
    let path = work_dir.join(format!("patients-v2-{n}.csv"));
    let people = synth::people(n, REGION, 2026);
    if !path.exists() {
        synth::write_csv(&people, &path)?;
    }
    Ok((path, people))
}

async fn bench_import(args: StoreArgs, n: usize, work_dir: &Path, settings: &Settings) -> Result<()> {
    let (csv, _) = people_file(work_dir, n)?;
    let (url, label) = match args.database_url.clone().or(settings.database_url.clone()) {
        Some(u) => (u, "PostgreSQL".to_owned()),
        None => {
            let db = work_dir.join(format!("import-{}.sqlite", tiercare_store::new_id()));
            (db.to_string_lossy().into_owned(), "SQLite".to_owned())
        }
    };
    let store = tiercare_store::open(&url).await?;
    store.migrate().await?;
    if store.count_patients().await? > 0 {
        bail!("bench import needs an empty database; this one already holds patients");
    }
    ensure_facility(&store).await?;
    let stats = crate::import::import_file(&store, &csv, false, Some(BENCH_FACILITY), false).await?;
    if !stats.rejected.is_empty() {
        bail!("{} rows rejected: {:?}", stats.rejected.len(), stats.rejected.first());
    }
    println!(
        "bench import: {label}, {} patients in {:.2} s = {:.0} patients/s (parse + GB 11643 validation + dedup + insert; {})",
        stats.inserted,
        stats.seconds,
        stats.inserted as f64 / stats.seconds,
        machine()
    );
    if !url.starts_with("postgres") {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{url}{suffix}"));
        }
    }
    Ok(())
}

/// A SQLite database with `n` bench patients and a bench user, built once and reused.
async fn bench_database(n: usize, work_dir: &Path) -> Result<(PathBuf, Vec<synth::Person>)> {
    let dir = work_dir.join(format!("db-v2-{n}"));
    let db = dir.join("tiercare.sqlite");
    let (csv, people) = people_file(work_dir, n)?;
    let store = tiercare_store::open(&db.to_string_lossy()).await?;
    store.migrate().await?;
    let have = store.count_patients().await? as usize;
    if have != n {
        if have != 0 {
            bail!("{} holds {have} patients, expected {n}; delete it", db.display());
        }
        ensure_facility(&store).await?;
        eprintln!("building the {n}-patient bench database (once)…");
        crate::import::import_file(&store, &csv, false, Some(BENCH_FACILITY), true).await?;
    }
    if store.get_user_by_username("bench").await?.is_none() {
        let f = store.get_facility_by_code(BENCH_FACILITY).await?.context("bench facility")?;
        let hash = tiercare_server::auth::hash_password("bench-password").map_err(|e| anyhow::anyhow!(e))?;
        store
            .create_user(&tiercare_store::User {
                id: tiercare_store::new_id(),
                username: "bench".into(),
                display_name: "基准测试".into(),
                facility_id: f.id,
                roles: vec![tiercare_domain::role::Role::SettlementClerk],
                password_hash: hash,
                active: true,
            })
            .await?;
    }
    Ok((dir, people))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn bench_lookup(n: usize, requests: usize, work_dir: &Path) -> Result<()> {
    let (dir, people) = bench_database(n, work_dir).await?;
    let store = tiercare_store::open(&dir.join("tiercare.sqlite").to_string_lossy()).await?;
    let mut rng = Rng::new(7);
    let picks: Vec<usize> = (0..requests * 2).map(|_| rng.below(people.len() as u64) as usize).collect();
    let lat = time_requests(store, "bench", "bench-password", requests, |client, base, i| {
        client
            .post(format!("{base}/api/v1/patients/lookup"))
            .json(&serde_json::json!({"type": "resident_id", "value": people[picks[i]].identity_number}))
    })
    .await?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "bench lookup: SQLite, {n} patients, {requests} sequential POST /api/v1/patients/lookup (each also writes an access-log row): \
         p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({})",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.95)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
        machine()
    );
    Ok(())
}

async fn bench_coldstart(n: usize, runs: usize, work_dir: &Path) -> Result<()> {
    let (dir, _) = bench_database(n, work_dir).await?;
    let exe = std::env::current_exe()?;
    let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).build()?;
    let mut times = Vec::new();
    for run in 0..runs {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&exe)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(&dir)
            .env("TIERCARE_LOG", "warn")
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}/healthz");
        let ready = loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                break started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("server did not become ready in 60 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        child.kill().await?;
        eprintln!("run {}: {:.0} ms", run + 1, ready.as_secs_f64() * 1000.0);
        times.push(ready);
    }
    times.sort();
    println!(
        "bench coldstart: `tiercare serve` on an existing {n}-patient SQLite database, process start to first 200 /healthz: \
         median {:.0} ms, max {:.0} ms over {runs} runs ({})",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
        machine()
    );
    Ok(())
}

/// Time `requests` sequential requests (after a tenth as many to warm up) against an
/// in-process server on `store`, signed in as `username`; `request(client, base, i)` makes
/// the i-th. Returns the latencies, sorted.
async fn time_requests(
    store: Arc<dyn Store>,
    username: &str,
    password: &str,
    requests: usize,
    mut request: impl FnMut(&reqwest::Client, &str, usize) -> reqwest::RequestBuilder,
) -> Result<Vec<Duration>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = tiercare_server::AppState::new(store, tiercare_server::ServerConfig::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tiercare_server::serve(listener, state, async {
        let _ = stop_rx.await;
    }));
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"].as_str().context("login gave no token")?.to_owned();
    let mut lat = Vec::with_capacity(requests);
    for i in 0..requests + requests / 10 {
        let t = Instant::now();
        let resp = request(&client, &base, i).bearer_auth(&token).send().await?;
        let status = resp.status();
        let _ = resp.bytes().await?;
        if !status.is_success() {
            bail!("request {i} answered {status}");
        }
        if i >= requests / 10 {
            lat.push(t.elapsed());
        }
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    lat.sort();
    Ok(lat)
}

async fn bench_patient_page(data_dir: &Path, requests: usize) -> Result<()> {
    let db = data_dir.join("tiercare.sqlite");
    if !db.exists() {
        bail!("{} does not exist: run `tiercare demo --no-serve` first", db.display());
    }
    let store = tiercare_store::open(&db.to_string_lossy()).await?;
    // residents with their year of care: draw from the demo county's own ids
    let county = tiercare_sim::County::generate(tiercare_sim::Config::default());
    let n = county.residents.len();
    if store.count_patients().await? as usize != n {
        bail!("{} does not hold the default demo county", db.display());
    }
    let mut rng = Rng::new(11);
    let ids: Vec<uuid::Uuid> =
        (0..requests * 2).map(|_| county.residents[rng.below(n as u64) as usize].patient.id).collect();
    let encounters: usize = ids
        .iter()
        .take(200)
        .map(|id| {
            county
                .residents
                .iter()
                .position(|r| r.patient.id == *id)
                .map(|i| county.encounters_of(i).len())
                .unwrap_or(0)
        })
        .sum();
    let lat = time_requests(store, "specialist", "tiercare-demo", requests, |client, base, i| {
        client.get(format!("{base}/api/v1/patients/{}", ids[i]))
    })
    .await?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "bench patient-page: demo county ({n} residents) on SQLite, {requests} sequential GET /api/v1/patients/{{id}} of random residents \
         (about {:.1} encounters each; each read also writes an access-log row): p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({})",
        encounters as f64 / 200.0,
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.95)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
        machine()
    );
    Ok(())
}
