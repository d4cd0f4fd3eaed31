//! `tiercare bench …`: end-to-end figures, printed, never asserted.
//!
//! - `bench import`    bulk patient import throughput (patients/s)
//! - `bench lookup`    identity-number lookup latency through the HTTP API (p50/p95/p99)
//! - `bench coldstart` time from starting `tiercare serve` to the first 200 from /healthz
//! - `bench referrals` full referral life cycles through the HTTP API (referrals/s)
//! - `bench inbox`     the receiver's inbox worklist with a million referrals stored (p50/p95/p99)
//! - `bench fhir-search` FHIR read and search under concurrent load (issue 7; `bench_fhir`)
//! - `bench settlements` insurance settlements through the HTTP API with a million insured
//!   persons (settlements/s, p50/p99)

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
    /// Results and mutual recognition (issue 5).
    #[command(subcommand)]
    Results(crate::bench_results::ResultsBench),
    /// Case-based payment: DIP, DRG, budget (issue 9).
    #[command(subcommand)]
    CasePayment(crate::bench_case_payment::CasePaymentBench),
    /// Reform indicators (issue 8).
    #[command(subcommand)]
    Indicators(crate::bench_indicators::IndicatorsBench),
    /// FHIR read and search under concurrent load on loopback (issue 7): Patient read,
    /// Patient search by identifier, Encounter search by patient (throughput, p50/p99).
    FhirSearch(crate::bench_fhir::FhirSearchArgs),
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
    /// Full referral life cycles (create → accept → schedule → arrive → complete: five HTTP
    /// requests each) through the HTTP API of an in-process server, `concurrency` at a time,
    /// on a fresh SQLite database (or an empty PostgreSQL one).
    Referrals {
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// An empty PostgreSQL database instead of a fresh SQLite file.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
        /// Also time the parts: the same life cycles straight into the store (domain +
        /// writes, no HTTP), and GET /healthz at the same concurrency (HTTP alone).
        #[arg(long)]
        breakdown: bool,
        /// The load generator's HTTP client (both keep-alive HTTP/1.1 over loopback TCP).
        #[arg(long, value_enum, default_value = "hyper")]
        client: BenchClient,
    },
    /// The receiver's inbox (`GET /api/v1/referrals?box=inbox&category=…`) of the county
    /// hospital with `referrals` stored over the county's facilities, on SQLite (the database
    /// is built once under the work directory and reused).
    Inbox {
        #[arg(long, default_value_t = 1_000_000)]
        referrals: usize,
        /// Requests per category.
        #[arg(long, default_value_t = 1_000)]
        requests: usize,
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
    },
    /// Insurance settlements (`POST /api/v1/settlements`, stored with the accumulators)
    /// through the HTTP API of an in-process server, `concurrency` at a time, with `insured`
    /// insured persons (the sim county; built once under the work directory and reused, or
    /// loaded into the PostgreSQL database given).
    Settlements {
        #[arg(long, default_value_t = 1_000_000)]
        insured: usize,
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// A PostgreSQL database (empty, or holding this bench's county) instead of SQLite.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
        /// Also time the same bills as pre-settlements (`POST /api/v1/settlements/preview`:
        /// the reads and the adjudication, nothing written).
        #[arg(long)]
        breakdown: bool,
        /// PostgreSQL: spread each indicator counter cell over this many rows (1 = one row a
        /// cell, the layout before migration 0014; default 8). The numbers are the same.
        #[arg(long)]
        counter_shards: Option<u16>,
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
        BenchCommand::Results(b) => crate::bench_results::run(b, settings).await,
        BenchCommand::CasePayment(b) => crate::bench_case_payment::run(b, settings).await,
        BenchCommand::Indicators(b) => crate::bench_indicators::run(b, settings).await,
        BenchCommand::FhirSearch(a) => crate::bench_fhir::run(a).await,
        BenchCommand::Import { store, patients, work_dir } => bench_import(store, patients, &work_dir, settings).await,
        BenchCommand::Lookup { patients, requests, work_dir } => bench_lookup(patients, requests, &work_dir).await,
        BenchCommand::Coldstart { patients, runs, work_dir } => bench_coldstart(patients, runs, &work_dir).await,
        BenchCommand::PatientPage { data_dir, requests } => bench_patient_page(&data_dir, requests).await,
        BenchCommand::Referrals { count, concurrency, database_url, work_dir, breakdown, client } => {
            bench_referrals(count, concurrency, database_url, &work_dir, breakdown, client).await
        }
        BenchCommand::Inbox { referrals, requests, work_dir } => bench_inbox(referrals, requests, &work_dir).await,
        BenchCommand::Settlements {
            insured,
            count,
            concurrency,
            database_url,
            work_dir,
            breakdown,
            counter_shards,
        } => {
            if let Some(n) = counter_shards {
                tiercare_store::set_counter_shards(n);
            }
            bench_settlements(insured, count, concurrency, database_url, &work_dir, breakdown).await
        }
    }
}

pub(crate) fn machine() -> String {
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

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
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
    let server = Server::start(store).await?;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let token = login(&client, &base, username, password).await?;
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
    server.stop().await;
    lat.sort();
    Ok(lat)
}

/// An in-process server on a loopback port (the deadline sweeper off: a benchmark times
/// requests, not background writes).
pub(crate) struct Server {
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(store: Arc<dyn Store>) -> Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let config = tiercare_server::ServerConfig { sweep_interval: Duration::ZERO, ..Default::default() };
        let state = tiercare_server::AppState::new(store, config);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tiercare_server::serve(listener, state, async {
            let _ = stop_rx.await;
        }));
        Ok(Server { base: format!("http://{addr}"), stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Sign in; returns the bearer token.
pub(crate) async fn login(client: &reqwest::Client, base: &str, username: &str, password: &str) -> Result<String> {
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await?
        .json()
        .await?;
    Ok(login["token"].as_str().context("login gave no token")?.to_owned())
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

// --- referrals (issue 4)

/// 九龙镇卫生院 (the demo's township) and 岳池县人民医院 (the referral centre) in the sim county.
const TOWNSHIP_CODE: &str = "H51162100100";
pub(crate) const BENCH_PASSWORD: &str = "bench-password";

/// The sim county's registries and residents (registered at `home` when given, else where
/// the generator put them) with their enrolments, through the bulk paths.
pub(crate) async fn load_registries_and_residents(
    store: &Arc<dyn Store>,
    county: &tiercare_sim::County,
    home: Option<uuid::Uuid>,
) -> Result<()> {
    store.create_alliance(&county.alliance).await?;
    store.create_community(&county.community).await?;
    for f in &county.facilities {
        store.create_facility(f).await?;
    }
    for (k, chunk) in county.residents.chunks(100_000).enumerate() {
        let rows: Vec<(u64, tiercare_domain::patient::Patient)> = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut p = r.patient.clone();
                if home.is_some() {
                    p.home_facility_id = home;
                }
                ((k * 100_000 + i + 1) as u64, p)
            })
            .collect();
        let out = store.import_patients(&rows, true).await?;
        if let Some(r) = out.rejected.first() {
            bail!("resident on row {} refused: {}", r.line, r.message);
        }
        let enrolments: Vec<_> = chunk.iter().map(|r| r.enrolment.clone()).collect();
        store.import_enrolments(&enrolments).await?;
    }
    // planner statistics for the tables just loaded (PostgreSQL plans them as empty otherwise)
    store.analyze().await?;
    Ok(())
}

pub(crate) async fn ensure_user(
    store: &Arc<dyn Store>,
    username: &str,
    display_name: &str,
    role: tiercare_domain::role::Role,
    facility_id: uuid::Uuid,
) -> Result<()> {
    if store.get_user_by_username(username).await?.is_none() {
        let hash = tiercare_server::auth::hash_password(BENCH_PASSWORD).map_err(|e| anyhow::anyhow!(e))?;
        store
            .create_user(&tiercare_store::User {
                id: tiercare_store::new_id(),
                username: username.into(),
                display_name: display_name.into(),
                facility_id,
                roles: vec![role],
                password_hash: hash,
                active: true,
            })
            .await?;
    }
    Ok(())
}

/// Send, fail on a non-2xx answer (naming it), parse the JSON body.
async fn send_json(request: reqwest::RequestBuilder) -> Result<serde_json::Value> {
    let resp = request.send().await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if !status.is_success() {
        bail!("{status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(400)]));
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// The life cycle's HTTP client (`--client`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum BenchClient {
    /// One keep-alive HTTP/1.1 connection per concurrent task on hyper's connection API: no
    /// pool, no URL parsing, no redirect or proxy policy per request.
    Hyper,
    /// reqwest's pooled client (as before 2026-12-03 evening), for comparison.
    Reqwest,
}

/// One concurrent task's connection to the server. Either way it is HTTP/1.1 over a
/// loopback TCP socket, kept alive; each answer's status is checked and its body read.
enum BenchConn {
    Hyper { send: hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>, host: String },
    Reqwest { client: reqwest::Client, base: String },
}

impl BenchConn {
    async fn open(kind: BenchClient, client: &reqwest::Client, base: &str) -> Result<BenchConn> {
        Ok(match kind {
            BenchClient::Reqwest => BenchConn::Reqwest { client: client.clone(), base: base.to_owned() },
            BenchClient::Hyper => {
                let host = base.trim_start_matches("http://").to_owned();
                let tcp = tokio::net::TcpStream::connect(&host).await?;
                tcp.set_nodelay(true)?;
                let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        eprintln!("bench connection closed: {e}");
                    }
                });
                BenchConn::Hyper { send, host }
            }
        })
    }

    /// `POST path` with a JSON body (or `GET path` without one) as `token`; fails on a
    /// non-2xx answer, naming it; the answer's body.
    async fn call(&mut self, path: &str, token: Option<&str>, body: Option<Vec<u8>>) -> Result<hyper::body::Bytes> {
        use http_body_util::BodyExt;
        let (status, bytes) = match self {
            BenchConn::Hyper { send, host } => {
                send.ready().await?;
                let mut req = hyper::Request::builder()
                    .method(if body.is_some() { hyper::Method::POST } else { hyper::Method::GET })
                    .uri(path)
                    .header(hyper::header::HOST, host.as_str());
                if let Some(t) = token {
                    req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
                }
                if body.is_some() {
                    req = req.header(hyper::header::CONTENT_TYPE, "application/json");
                }
                let req = req.body(http_body_util::Full::new(hyper::body::Bytes::from(body.unwrap_or_default())))?;
                let resp = send.send_request(req).await?;
                let status = resp.status().as_u16();
                (status, resp.into_body().collect().await?.to_bytes())
            }
            BenchConn::Reqwest { client, base } => {
                let url = format!("{base}{path}");
                let mut req = match body {
                    Some(b) => client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(b),
                    None => client.get(url),
                };
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await?;
                let status = resp.status().as_u16();
                (status, resp.bytes().await?)
            }
        };
        if !(200..300).contains(&status) {
            bail!("{status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(400)]));
        }
        Ok(bytes)
    }
}

/// What the life cycle's client reads of an answer (the rest of the detail is skipped, not
/// built into a `serde_json::Value`: the client shares the two cores with the server).
#[derive(serde::Deserialize)]
struct StepAnswer {
    #[serde(default)]
    id: Option<uuid::Uuid>,
    state: String,
    version: i64,
}

/// POST one step; fail on a non-2xx answer (naming it) or an answer not in `want` state at
/// `version`.
async fn send_step(
    conn: &mut BenchConn,
    path: &str,
    token: &str,
    body: serde_json::Value,
    want: (&str, i64),
) -> Result<StepAnswer> {
    let bytes = conn.call(path, Some(token), Some(serde_json::to_vec(&body)?)).await?;
    let a: StepAnswer = serde_json::from_slice(&bytes)?;
    if (a.state.as_str(), a.version) != want {
        bail!("{path}: the answer is {} at version {}, expected {} at {}", a.state, a.version, want.0, want.1);
    }
    Ok(a)
}

/// The five requests of one referral's life cycle; their latencies.
async fn life_cycle(
    conn: &mut BenchConn,
    tokens: &(String, String),
    to: uuid::Uuid,
    patient: uuid::Uuid,
) -> Result<[Duration; 5]> {
    use serde_json::json;
    let mut lat = [Duration::ZERO; 5];
    let t = Instant::now();
    let created = send_step(
        conn,
        "/api/v1/referrals",
        &tokens.0,
        json!({
            "patient_id": patient,
            "to_facility_id": to,
            "to_department": "心血管内科",
            "urgency": "routine",
            "reason": "高血压控制不佳，需上级医院调整治疗",
            "diagnoses": ["I10.x00"],
            "clinical_summary": "血压 172/104 mmHg，三种降压药联用效果欠佳。",
        }),
        ("requested", 1),
    )
    .await?;
    lat[0] = t.elapsed();
    let id = created.id.context("the created referral has no id")?;
    let mut version = created.version;
    let at = (time::OffsetDateTime::now_utc() + time::Duration::hours(2))
        .format(&time::format_description::well_known::Rfc3339)?;
    let steps = [
        (json!({"action": "accept"}), "accepted"),
        (json!({"action": "schedule", "at": at, "department": "心血管内科"}), "scheduled"),
        (json!({"action": "arrive"}), "arrived"),
        (json!({"action": "complete", "outcome": "住院调整降压方案，血压达标出院"}), "completed"),
    ];
    let path = format!("/api/v1/referrals/{id}/transitions");
    for (k, (mut body, state)) in steps.into_iter().enumerate() {
        body["version"] = json!(version);
        let t = Instant::now();
        let v = send_step(conn, &path, &tokens.1, body, (state, version + 1)).await?;
        lat[k + 1] = t.elapsed();
        version = v.version;
    }
    Ok(lat)
}

/// Life cycles `from..to` (referral k refers patient k mod n), `concurrency` at a time, each
/// concurrent task on its own connection.
#[allow(clippy::too_many_arguments)]
async fn run_life_cycles(
    kind: BenchClient,
    client: &reqwest::Client,
    base: &str,
    tokens: Arc<(String, String)>,
    to: uuid::Uuid,
    patients: Arc<Vec<uuid::Uuid>>,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> Result<Vec<[Duration; 5]>> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(range.start));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let mut conn = BenchConn::open(kind, client, base).await?;
        let (tokens, patients, next) = (tokens.clone(), patients.clone(), next.clone());
        let end = range.end;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= end {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let patient = patients[k % patients.len()];
                lat.push(life_cycle(&mut conn, &tokens, to, patient).await.with_context(|| format!("referral {k}"))?);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

async fn bench_referrals(
    count: usize,
    concurrency: usize,
    database_url: Option<String>,
    work_dir: &Path,
    breakdown: bool,
    kind: BenchClient,
) -> Result<()> {
    use tiercare_domain::role::Role;
    std::fs::create_dir_all(work_dir)?;
    let (url, label) = match database_url {
        Some(u) => (u, "PostgreSQL"),
        None => (
            work_dir.join(format!("referrals-{}.sqlite", tiercare_store::new_id())).to_string_lossy().into_owned(),
            "SQLite",
        ),
    };
    let store = tiercare_store::open(&url).await?;
    store.migrate().await?;
    if store.count_patients().await? > 0 {
        bail!("bench referrals needs an empty database; this one already holds patients");
    }
    // the sim county's registries; its residents registered at the township (a care relationship)
    let patients = count.clamp(1, 20_000);
    let county = tiercare_sim::County::generate(tiercare_sim::Config { residents: patients, ..Default::default() });
    let township = county.facilities.iter().find(|f| f.code == TOWNSHIP_CODE).context("the sim's township")?;
    let hospital = county.county_hospital();
    load_registries_and_residents(&store, &county, Some(township.id)).await?;
    ensure_user(&store, "bench-township", "王医生", Role::TownshipClinician, township.id).await?;
    ensure_user(&store, "bench-referral", "转诊中心", Role::ReferralCentre, hospital.id).await?;
    let ids: Arc<Vec<uuid::Uuid>> = Arc::new(county.residents.iter().map(|r| r.patient.id).collect());

    let server = Server::start(store.clone()).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency.max(1) * 2).build()?;
    let tokens = Arc::new((
        login(&client, &server.base, "bench-township", BENCH_PASSWORD).await?,
        login(&client, &server.base, "bench-referral", BENCH_PASSWORD).await?,
    ));
    let warm = (count / 20).clamp(concurrency.max(1), 1_000);
    run_life_cycles(kind, &client, &server.base, tokens.clone(), hospital.id, ids.clone(), 0..warm, concurrency)
        .await?;
    let started = Instant::now();
    let lat =
        run_life_cycles(kind, &client, &server.base, tokens, hospital.id, ids, warm..warm + count, concurrency).await?;
    let secs = started.elapsed().as_secs_f64();
    let parts = if breakdown {
        let hz = healthz_rate(kind, &client, &server.base, count * 5, concurrency).await?;
        let direct = store_life_cycles(&store, &county, township, hospital, count, concurrency).await?;
        Some((hz, direct))
    } else {
        None
    };
    server.stop().await;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut every: Vec<Duration> = lat.iter().flatten().copied().collect();
    every.sort();
    println!(
        "bench referrals: {label}, {count} life cycles (create → accept → schedule → arrive → complete, 5 HTTP requests each), \
         {concurrency} at a time, client {kind:?}: {:.2} s = {:.0} referrals/s, {:.0} requests/s; per request p50 {:.2} ms, \
         p99 {:.2} ms ({})",
        secs,
        count as f64 / secs,
        (count * 5) as f64 / secs,
        ms(percentile(&every, 0.50)),
        ms(percentile(&every, 0.99)),
        machine()
    );
    for (k, step) in ["create", "accept", "schedule", "arrive", "complete"].iter().enumerate() {
        let mut one: Vec<Duration> = lat.iter().map(|l| l[k]).collect();
        one.sort();
        println!("  {step:<9} p50 {:.2} ms, p99 {:.2} ms", ms(percentile(&one, 0.50)), ms(percentile(&one, 0.99)));
    }
    if let Some((hz, direct)) = parts {
        println!(
            "  where the time goes: the same {count} life cycles straight into the store (domain rules + the five \
             write transactions, no HTTP, no reads): {direct:.0} referrals/s; GET /healthz at {concurrency} at a time \
             (HTTP, routing, logging, no store): {hz:.0} requests/s"
        );
    }
    if !url.starts_with("postgres") {
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{url}{suffix}"));
        }
    }
    Ok(())
}

/// `n` GET /healthz, `concurrency` at a time (each on its own connection): requests per second.
async fn healthz_rate(
    kind: BenchClient,
    client: &reqwest::Client,
    base: &str,
    n: usize,
    concurrency: usize,
) -> Result<f64> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut conns = Vec::new();
    for _ in 0..concurrency.max(1) {
        conns.push(BenchConn::open(kind, client, base).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                conn.call("/healthz", None, None).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The life cycle through the domain and the store's write path only (what the HTTP
/// handlers write, without their reads and without HTTP): referrals per second.
async fn store_life_cycles(
    store: &Arc<dyn Store>,
    county: &tiercare_sim::County,
    from: &tiercare_domain::facility::Facility,
    to: &tiercare_domain::facility::Facility,
    n: usize,
    concurrency: usize,
) -> Result<f64> {
    use tiercare_domain::referral::{self as rules, Command, Context, NewReferral, Party};
    let patients: Arc<Vec<(uuid::Uuid, String)>> =
        Arc::new(county.residents.iter().map(|r| (r.patient.id, r.patient.region_key.clone())).collect());
    let (from, to) = (Arc::new(from.clone()), Arc::new(to.clone()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (store, patients, from, to, next) =
            (store.clone(), patients.clone(), from.clone(), to.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let (patient, region) = &patients[k % patients.len()];
                let input = NewReferral {
                    patient_id: *patient,
                    from_facility_id: None,
                    from_department: None,
                    to_facility_id: to.id,
                    to_department: None,
                    urgency: tiercare_domain::referral::Urgency::Routine,
                    green_channel: None,
                    reason: "高血压控制不佳，需上级医院调整治疗".into(),
                    diagnoses: vec!["I10.x00".into()],
                    clinical_summary: String::new(),
                    discharge_summary: None,
                    follow_up_plan: vec![],
                    encounter_ids: vec![],
                };
                let now = time::OffsetDateTime::now_utc();
                let user = tiercare_store::new_id();
                let change = rules::request(
                    input,
                    tiercare_store::new_id(),
                    region.clone(),
                    user,
                    &from,
                    &to,
                    &from.insurance_region,
                    now,
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                store.create_referral(&change).await?;
                let mut r = change.referral;
                for cmd in [
                    Command::Accept { note: None },
                    Command::Schedule { at: now + time::Duration::hours(2), department: None, note: None },
                    Command::Arrive,
                    Command::Complete { outcome: "好转出院".into() },
                ] {
                    let ctx = Context {
                        now: time::OffsetDateTime::now_utc(),
                        party: Party::Receiver,
                        user_id: Some(user),
                        sender: &from,
                        receiver: &to,
                        new_receiver: None,
                        home_region: &from.insurance_region,
                        new_id: tiercare_store::new_id,
                    };
                    let c = rules::apply(&r, &cmd, ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
                    store.apply_referral_change(&c).await?;
                    r = c.referral;
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Facilities of the sim county the inbox benchmark's referrals use.
struct Places<'a> {
    county: &'a tiercare_sim::County,
    /// The three county hospitals (people's, TCM, maternal and child), the city hospital,
    /// Chongqing and Chengdu.
    hospitals: [&'a tiercare_domain::facility::Facility; 6],
}

/// Referral `k` of the inbox benchmark, made through the domain like the generator's:
/// mostly upward from the grassroots to the county hospitals, some to the city and out of
/// the province, green-channel emergencies, downward ones after stays; requested over the
/// year before `now`; a few thousand in a million still open.
fn inbox_referral(p: &Places<'_>, k: usize, now: time::OffsetDateTime) -> Result<tiercare_store::ReferralBundle> {
    use tiercare_domain::facility::EmergencyCentre;
    use tiercare_domain::referral::{self as rules, Command, Context, FollowUpItem, NewReferral, Party, Urgency};
    use time::Duration as D;
    let mut rng = Rng::new(0x1B0C ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let county = p.county;
    let r = &county.residents[rng.below(county.residents.len() as u64) as usize];
    let grassroots = |rng: &mut Rng| &county.facilities[if rng.chance(0.7) { r.township } else { r.village }];
    let [people, tcm, mch, city, chongqing, chengdu] = p.hospitals;
    let u = rng.unit();
    let mut input = NewReferral {
        patient_id: r.patient.id,
        from_facility_id: None,
        from_department: None,
        to_facility_id: people.id,
        to_department: None,
        urgency: if rng.chance(0.25) { Urgency::Urgent } else { Urgency::Routine },
        green_channel: None,
        reason: "病情超出本院诊疗能力，需上级医院诊治".into(),
        diagnoses: vec![(*rng.pick(&["I10.x00", "J18.900", "K80.200", "I50.900", "M17.900"])).into()],
        clinical_summary: String::new(),
        discharge_summary: None,
        follow_up_plan: vec![],
        encounter_ids: vec![],
    };
    let (from, to) = if u < 0.62 {
        (
            grassroots(&mut rng),
            [people, people, people, people, people, people, people, tcm, tcm, mch][rng.below(10) as usize],
        )
    } else if u < 0.70 {
        (grassroots(&mut rng), city)
    } else if u < 0.75 {
        input.diagnoses = vec!["C34.900".into()];
        (people, if rng.chance(0.5) { chongqing } else { chengdu })
    } else if u < 0.80 {
        let (centre, dx) = if rng.chance(0.5) {
            (EmergencyCentre::Stroke, "I63.900")
        } else {
            (EmergencyCentre::ChestPain, "I21.900")
        };
        input.green_channel = Some(centre);
        input.diagnoses = vec![dx.into()];
        (grassroots(&mut rng), people)
    } else {
        input.discharge_summary = Some("经治疗病情稳定出院，转回基层康复随访。".into());
        input.follow_up_plan = vec![
            FollowUpItem { what: "测血压".into(), due_in_days: 7 },
            FollowUpItem { what: "复诊".into(), due_in_days: 30 },
        ];
        input.reason = "急性期治疗结束，转回基层康复及随访管理".into();
        (if rng.chance(0.8) { people } else { city }, grassroots(&mut rng))
    };
    input.to_facility_id = to.id;
    // a few thousand in a million still open, requested in the last three days
    let open = rng.chance(0.004);
    let requested = if open {
        now - D::minutes(rng.below(3 * 24 * 60) as i64)
    } else {
        now - D::days(7) - D::minutes(rng.below(358 * 24 * 60) as i64)
    };
    let home = r.enrolment.insured_region.clone();
    let change = rules::request(
        input,
        tiercare_store::new_id(),
        r.patient.region_key.clone(),
        tiercare_sim::referrals::staff_user_id(from.id),
        from,
        to,
        &home,
        requested,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut b = tiercare_store::ReferralBundle {
        referral: change.referral,
        events: vec![change.event],
        follow_ups: vec![],
        filings: vec![],
    };
    let step = |b: &mut tiercare_store::ReferralBundle, party: Party, cmd: Command, at: time::OffsetDateTime| {
        let user = match party {
            Party::Sender => Some(tiercare_sim::referrals::staff_user_id(from.id)),
            Party::Receiver => Some(tiercare_sim::referrals::staff_user_id(to.id)),
            Party::System => None,
        };
        let ctx = Context {
            now: at,
            party,
            user_id: user,
            sender: from,
            receiver: to,
            new_receiver: None,
            home_region: &home,
            new_id: tiercare_store::new_id,
        };
        let c = rules::apply(&b.referral, &cmd, ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
        b.referral = c.referral;
        b.events.push(c.event);
        b.follow_ups.extend(c.follow_ups);
        b.filings.extend(c.filing);
        Ok::<_, anyhow::Error>(())
    };
    let emergency = b.referral.urgency == Urgency::Emergency;
    let t = |m: i64| requested + D::minutes(m);
    let ending = rng.unit();
    let stop = if open { 1 + rng.below(4) } else { 5 };
    if !open && ending < 0.07 {
        if ending < 0.02 {
            let due = b.referral.due_at.context("an open referral has a deadline")?;
            step(&mut b, Party::System, Command::Expire, due + D::seconds(15))?;
        } else if ending < 0.04 {
            step(&mut b, Party::Receiver, Command::Reject { reason: "本院该专科床位已满".into() }, t(90))?;
        } else {
            step(&mut b, Party::Sender, Command::Cancel { reason: "患者放弃转诊".into() }, t(60))?;
        }
        return Ok(b);
    }
    if emergency {
        step(&mut b, Party::Receiver, Command::Acknowledge, t(3))?;
    }
    if stop >= 2 {
        step(&mut b, Party::Receiver, Command::Accept { note: None }, t(if emergency { 5 } else { 60 }))?;
    }
    if stop >= 3 && !emergency {
        let at = if open { now + D::minutes(rng.below(48 * 60) as i64 - 12 * 60) } else { t(24 * 60) };
        step(&mut b, Party::Receiver, Command::Schedule { at, department: None, note: None }, t(70).min(at))?;
    }
    if stop >= 4 {
        let at = b.referral.scheduled_at.unwrap_or(t(40)).min(now);
        step(&mut b, Party::Receiver, Command::Arrive, at.max(t(40)))?;
    }
    if stop >= 5 {
        step(&mut b, Party::Receiver, Command::Complete { outcome: "好转出院".into() }, t(5 * 24 * 60))?;
    }
    Ok(b)
}

async fn bench_inbox(n: usize, requests: usize, work_dir: &Path) -> Result<()> {
    use tiercare_domain::role::Role;
    let dir = work_dir.join(format!("inbox-v1-{n}"));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("tiercare.sqlite");
    let store = tiercare_store::open(&db.to_string_lossy()).await?;
    store.migrate().await?;
    let county = Arc::new(tiercare_sim::County::generate(tiercare_sim::Config::default()));
    let have = store.count_referrals(&tiercare_store::ReferralFilter::default()).await? as usize;
    if have != n {
        if have != 0 || store.count_patients().await? != 0 {
            bail!("{} holds {have} referrals, expected {n}; delete it", db.display());
        }
        eprintln!("building the {n}-referral bench database (once)…");
        let started = Instant::now();
        load_registries_and_residents(&store, &county, None).await?;
        let now = time::OffsetDateTime::now_utc();
        let b = crate::county::bar(n as u64, "referrals", true);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<tiercare_store::ReferralBundle>>>(2);
        let gen_county = county.clone();
        let producer = std::thread::spawn(move || {
            let c = &gen_county;
            let code = |code: &str| c.facilities.iter().find(|f| f.code == code);
            let hospitals =
                ["H51162100001", "H51162100002", "H51162100003", "H51160200001", "H50010300001", "H51010700001"]
                    .map(code);
            let [Some(a), Some(b), Some(cc), Some(d), Some(e), Some(f)] = hospitals else {
                let _ = tx.blocking_send(Err(anyhow::anyhow!("the sim county lacks a hospital")));
                return;
            };
            let places = Places { county: c, hospitals: [a, b, cc, d, e, f] };
            for start in (0..n).step_by(20_000) {
                let batch: Result<Vec<_>> =
                    (start..(start + 20_000).min(n)).map(|k| inbox_referral(&places, k, now)).collect();
                if tx.blocking_send(batch).is_err() {
                    return;
                }
            }
        });
        while let Some(batch) = rx.recv().await {
            let batch = batch?;
            store.import_referrals(&batch).await?;
            b.inc(batch.len() as u64);
        }
        producer.join().map_err(|_| anyhow::anyhow!("the referral generator panicked"))?;
        b.finish_and_clear();
        eprintln!("built in {:.0} s", started.elapsed().as_secs_f64());
    }
    let hospital = county.county_hospital().clone();
    ensure_user(&store, "bench-referral", "转诊中心", Role::ReferralCentre, hospital.id).await?;
    let mine = tiercare_store::ReferralFilter { to_facility_id: Some(hospital.id), ..Default::default() };
    let in_inbox = store.count_referrals(&mine).await?;

    let server = Server::start(store.clone()).await?;
    let client = reqwest::Client::new();
    let token = login(&client, &server.base, "bench-referral", BENCH_PASSWORD).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "bench inbox: SQLite, {n} referrals over {} facilities, {in_inbox} of them to {} ({})",
        county.facilities.len(),
        hospital.name,
        machine()
    );
    let mut every = Vec::new();
    for query in [
        "category=new",
        // one row: the cost of the page without its per-row patient reads
        "category=new&limit=1",
        "category=awaiting_scheduling",
        "category=arriving_today",
        "category=overdue",
        "category=open",
        "category=closed",
        "state=completed&green=true",
        "category=closed&tier=township&from=2026-01-01&to=2026-03-31",
    ] {
        let url = format!("{}/api/v1/referrals?box=inbox&{query}", server.base);
        let mut lat = Vec::with_capacity(requests);
        let mut total = 0;
        for i in 0..requests + requests / 10 {
            let t = Instant::now();
            let v = send_json(client.get(&url).bearer_auth(&token)).await?;
            if i >= requests / 10 {
                lat.push(t.elapsed());
            }
            total = v["total"].as_u64().unwrap_or(0);
        }
        lat.sort();
        println!(
            "  {query:<60} total {total:>7}: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.95)),
            ms(percentile(&lat, 0.99))
        );
        every.extend(lat);
    }
    server.stop().await;
    every.sort();
    println!(
        "  all {} sequential GET /api/v1/referrals?box=inbox…: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        every.len(),
        ms(percentile(&every, 0.50)),
        ms(percentile(&every, 0.95)),
        ms(percentile(&every, 0.99))
    );
    Ok(())
}

// --- settlements (issue 6)

/// Bills of the bench: (setting, [(code, quantity, unit price fen)]) from the Sichuan
/// sample catalogue — outpatient visits and short stays, as at a county hospital's desk.
type BenchLine = (&'static str, i64, i64);
const BENCH_BILLS: &[(&str, &[BenchLine])] = &[
    ("outpatient", &[("001102000010000", 1, 1_000), ("XC08CAA057A001010100000", 2, 2_350)]),
    (
        "outpatient",
        &[("001102000020000", 1, 2_000), ("250101015000000", 1, 2_000), ("XJ01CAA040A001010100000", 1, 1_200)],
    ),
    (
        "outpatient",
        &[
            ("XA10BAE052A001010100000", 3, 900),
            ("XC09CAX038E001010100000", 2, 3_600),
            ("XL03AXX045B001010100000", 1, 12_000),
        ],
    ),
    (
        "inpatient",
        &[
            ("001103000010000", 5, 1_500),
            ("001107000010000", 5, 3_500),
            ("001202000010000", 5, 2_800),
            ("XJ01DDT098B001010100000", 10, 1_600),
            ("XB05XAL126B002010100000", 10, 450),
            ("210300001000000", 1, 15_000),
            ("331003001000000", 1, 120_000),
            ("C0304010010100102301", 10, 300),
        ],
    ),
];

async fn bench_settlements(
    insured: usize,
    count: usize,
    concurrency: usize,
    database_url: Option<String>,
    work_dir: &Path,
    breakdown: bool,
) -> Result<()> {
    use tiercare_domain::role::Role;
    let (url, label) = match database_url {
        Some(u) => (u, "PostgreSQL"),
        None => {
            let dir = work_dir.join(format!("settlements-v1-{insured}"));
            std::fs::create_dir_all(&dir)?;
            (dir.join("tiercare.sqlite").to_string_lossy().into_owned(), "SQLite")
        }
    };
    let store = tiercare_store::open(&url).await?;
    store.migrate().await?;
    let county = tiercare_sim::County::generate(tiercare_sim::Config { residents: insured, ..Default::default() });
    let hospital = county.county_hospital().clone();
    let have = store.count_patients().await? as usize;
    if have != insured {
        if have != 0 {
            bail!("{url} holds {have} patients, expected {insured}; delete it or give an empty database");
        }
        eprintln!("building the {insured}-insured bench database (once)…");
        let started = Instant::now();
        // registered at the county hospital: the desk has a care relationship with them
        load_registries_and_residents(&store, &county, Some(hospital.id)).await?;
        eprintln!("built in {:.0} s", started.elapsed().as_secs_f64());
    }
    ensure_user(&store, "bench-clerk", "结算员", Role::SettlementClerk, hospital.id).await?;
    let ids: Arc<Vec<uuid::Uuid>> = Arc::new(county.residents.iter().map(|r| r.patient.id).collect());
    drop(county);

    let server = Server::start(store.clone()).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency.max(1) * 2).build()?;
    let token: Arc<str> = login(&client, &server.base, "bench-clerk", BENCH_PASSWORD).await?.into();
    let run = tiercare_store::new_id().simple().to_string();
    let run: Arc<str> = run[run.len() - 8..].into();
    let warm = (count / 20).clamp(concurrency.max(1), 1_000);
    let go = |range: std::ops::Range<usize>, preview: bool| {
        run_settlements(&client, &server.base, token.clone(), ids.clone(), run.clone(), range, concurrency, preview)
    };
    go(0..warm, false).await?;
    let started = Instant::now();
    let (mut lat, busy) = go(warm..warm + count, false).await?;
    if lat.is_empty() {
        bail!("every settlement answered 503 busy");
    }
    let secs = started.elapsed().as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if breakdown {
        let started = Instant::now();
        let (mut pre, _) = go(warm + count..warm + 2 * count, true).await?;
        if pre.is_empty() {
            bail!("every preview answered 503 busy");
        }
        let secs = started.elapsed().as_secs_f64();
        pre.sort();
        println!(
            "  breakdown: the same bills as previews (reads + adjudication, nothing written): {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
            count as f64 / secs,
            ms(percentile(&pre, 0.50)),
            ms(percentile(&pre, 0.99)),
        );
    }
    server.stop().await;
    lat.sort();
    println!(
        "bench settlements: {label}, {} insured persons, {count} POST /api/v1/settlements ({concurrency} at a time; each prices \
         the bill, reads enrolment, filings and referrals, adjudicates and stores the settlement with the accumulators in \
         one transaction): {:.0} settlements/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {busy} answered 503 busy \
         (not counted) ({})",
        ids.len(),
        (count - busy) as f64 / secs,
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
        machine()
    );
    if label == "PostgreSQL" {
        let (rows, cells) = store.indicator_counter_rows().await?;
        println!(
            "  indicator counters: {cells} cells in {rows} rows ({} shards a cell at most)",
            tiercare_store::counter_shards()
        );
    }
    Ok(())
}

/// Settlements `range` (settlement k bills a pseudo-random person), `concurrency` at a time
/// (previews when `preview`).
#[allow(clippy::too_many_arguments)]
async fn run_settlements(
    client: &reqwest::Client,
    base: &str,
    token: Arc<str>,
    patients: Arc<Vec<uuid::Uuid>>,
    run: Arc<str>,
    range: std::ops::Range<usize>,
    concurrency: usize,
    preview: bool,
) -> Result<(Vec<Duration>, usize)> {
    let path = if preview { "/api/v1/settlements/preview" } else { "/api/v1/settlements" };
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(range.start));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, base, token, patients, run, next) =
            (client.clone(), base.to_owned(), token.clone(), patients.clone(), run.clone(), next.clone());
        let end = range.end;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut busy = 0usize;
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= end {
                    return Ok::<_, anyhow::Error>((lat, busy));
                }
                let mut rng = Rng::new(k as u64 + 1);
                let patient = patients[rng.below(patients.len() as u64) as usize];
                let (setting, lines) = BENCH_BILLS[k % BENCH_BILLS.len()];
                let lines: Vec<serde_json::Value> = lines
                    .iter()
                    .map(|(code, q, p)| serde_json::json!({"code": code, "quantity": q, "unit_price_fen": p}))
                    .collect();
                let body = serde_json::json!({
                    "txn_no": format!("BENCH-{run}-{k}"),
                    "patient_id": patient,
                    "setting": setting,
                    "lines": lines,
                });
                let t = Instant::now();
                let resp = client.post(format!("{base}{path}")).bearer_auth(&*token).json(&body).send().await?;
                let status = resp.status();
                let bytes = resp.bytes().await?;
                if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                    // the store gave up retrying a serialization conflict: counted, not retried
                    busy += 1;
                    continue;
                }
                if !status.is_success() {
                    bail!("settlement {k}: {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(400)]));
                }
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    let mut busy = 0;
    for t in tasks {
        let (lat, b) = t.await??;
        all.extend(lat);
        busy += b;
    }
    Ok((all, busy))
}
