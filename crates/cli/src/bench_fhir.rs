//! `tiercare bench fhir-search` (issue 7): FHIR read and search under concurrent load on
//! loopback — Patient read by id, Patient search by identifier (the resident identity
//! number), Encounter search by patient — against a real listening server, with our own
//! small client (`concurrency` connections, each sending its next request when the last is
//! answered). The county of `patients` residents (registered at the county hospital, whose
//! specialist reads them: a care relationship) with its year of encounters is built once per
//! size under the work directory (SQLite) or loaded into the PostgreSQL database given.
//!
//! Every answered read writes an access-log row (the privacy rule): the figures include
//! that write.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use tiercare_domain::role::Role;
use tiercare_sim::{County, Rng};
use tiercare_store::Store;

use crate::bench::{BENCH_PASSWORD, Server, ensure_user, load_registries_and_residents, login, machine, percentile};

const USER: &str = "bench-fhir";
/// Encounters per store import.
const BATCH: usize = 50_000;

#[derive(Args)]
pub struct FhirSearchArgs {
    /// Residents (patients) of the county.
    #[arg(long, default_value_t = 100_000)]
    patients: usize,
    /// Timed requests of each kind (after a tenth as many to warm up).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Connections sending at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// A PostgreSQL database (empty, or holding this bench's county) instead of SQLite.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Bytes of the SQLite database (with its WAL), when it is one.
fn sqlite_size(path: &Path) -> Option<u64> {
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let main = std::fs::metadata(path).ok()?.len();
    Some(main + size(path.with_extension("sqlite-wal")))
}

/// Build the county into an empty store: registries, residents at the county hospital,
/// their enrolments and their year of encounters. Returns the encounters stored.
async fn build(store: &Arc<dyn Store>, county: &Arc<County>) -> Result<u64> {
    let started = Instant::now();
    load_registries_and_residents(store, county, Some(county.county_hospital().id)).await?;
    eprintln!("loaded {} residents in {:.0} s", county.residents.len(), started.elapsed().as_secs_f64());
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let gen_county = county.clone();
    let producer = std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(BATCH);
        for i in 0..gen_county.residents.len() {
            batch.extend(gen_county.encounters_of(i));
            if batch.len() >= BATCH && tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                return;
            }
        }
        let _ = tx.blocking_send(batch);
    });
    let mut written = 0;
    while let Some(batch) = rx.recv().await {
        written += store.import_encounters(&batch).await?;
        eprint!("\rloaded {written} encounters ({:.0} s)", started.elapsed().as_secs_f64());
    }
    producer.join().map_err(|_| anyhow::anyhow!("the encounter generator panicked"))?;
    eprintln!("\rloaded {written} encounters in {:.0} s   ", started.elapsed().as_secs_f64());
    Ok(written)
}

pub async fn run(args: FhirSearchArgs) -> Result<()> {
    let n = args.patients;
    let (url, label, file) = match &args.database_url {
        Some(u) => (u.clone(), "PostgreSQL", None),
        None => {
            let dir = args.work_dir.join(format!("fhir-search-v1-{n}"));
            std::fs::create_dir_all(&dir)?;
            let f = dir.join("tiercare.sqlite");
            (f.to_string_lossy().into_owned(), "SQLite", Some(f))
        }
    };
    let store = tiercare_store::open(&url).await?;
    store.migrate().await?;
    let county = Arc::new(County::generate(tiercare_sim::Config { residents: n, ..Default::default() }));
    let have = store.count_patients().await? as usize;
    if have != n {
        if have != 0 {
            bail!("the database holds {have} patients, expected {n}; delete it or give an empty database");
        }
        eprintln!("building the {n}-patient FHIR bench database (once)…");
        build(&store, &county).await?;
    }
    let hospital = county.county_hospital().id;
    ensure_user(&store, USER, "专科医生", Role::Specialist, hospital).await?;
    // what the requests name: ids, identity numbers (kept in memory, never printed)
    let ids: Vec<uuid::Uuid> = county.residents.iter().map(|r| r.patient.id).collect();
    let numbers: Vec<String> =
        county.residents.iter().map(|r| r.patient.identity_number().unwrap_or_default().to_owned()).collect();
    let encounters: u64 = (0..n.min(2_000)).map(|i| county.encounters_of(i).len() as u64).sum();
    drop(county);
    let ids = Arc::new(ids);
    let numbers = Arc::new(numbers);

    let server = Server::start(store.clone()).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency.max(1) * 2).build()?;
    let token: Arc<str> = login(&client, &server.base, USER, BENCH_PASSWORD).await?.into();
    println!(
        "bench fhir-search: {label}, {n} patients (about {:.1} encounters each){}, {} requests of each kind, {} at a time ({})",
        encounters as f64 / n.min(2_000) as f64,
        file.as_deref()
            .and_then(sqlite_size)
            .map(|b| format!(", database {:.2} GB", b as f64 / 1e9))
            .unwrap_or_default(),
        args.requests,
        args.concurrency,
        machine()
    );
    let kinds: [(&str, Kind); 3] = [
        ("Patient read      GET /fhir/Patient/{id}", Kind::Read),
        ("Patient search    GET /fhir/Patient?identifier=…", Kind::Identifier),
        ("Encounter search  GET /fhir/Encounter?patient=…", Kind::Encounters),
    ];
    for (name, kind) in kinds {
        let load_before = load_average();
        let job = Job { client: client.clone(), base: server.base.clone(), token: token.clone(), kind };
        let warm = (args.requests / 10).max(args.concurrency);
        job.clone().run(ids.clone(), numbers.clone(), 0..warm, args.concurrency).await?;
        let started = Instant::now();
        let mut lat = job.run(ids.clone(), numbers.clone(), warm..warm + args.requests, args.concurrency).await?;
        let secs = started.elapsed().as_secs_f64();
        lat.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "  {name}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (load {load_before} → {})",
            lat.len() as f64 / secs,
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99)),
            ms(*lat.last().unwrap_or(&Duration::ZERO)),
            load_average()
        );
    }
    server.stop().await;
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    Read,
    Identifier,
    Encounters,
}

#[derive(Clone)]
struct Job {
    client: reqwest::Client,
    base: String,
    token: Arc<str>,
    kind: Kind,
}

impl Job {
    /// Requests `range` (request k names a pseudo-random patient), `concurrency` at a time;
    /// the latencies. A non-200 answer or a search that misses its patient stops the bench.
    async fn run(
        self,
        ids: Arc<Vec<uuid::Uuid>>,
        numbers: Arc<Vec<String>>,
        range: std::ops::Range<usize>,
        concurrency: usize,
    ) -> Result<Vec<Duration>> {
        let next = Arc::new(AtomicUsize::new(range.start));
        let mut tasks = Vec::new();
        for _ in 0..concurrency.max(1) {
            let (job, ids, numbers, next) = (self.clone(), ids.clone(), numbers.clone(), next.clone());
            let end = range.end;
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= end {
                        return Ok::<_, anyhow::Error>(lat);
                    }
                    let i = Rng::new(k as u64 + 17).below(ids.len() as u64) as usize;
                    let url = match job.kind {
                        Kind::Read => format!("{}/fhir/Patient/{}", job.base, ids[i]),
                        Kind::Identifier => format!(
                            "{}/fhir/Patient?identifier={}%7C{}",
                            job.base,
                            tiercare_fhir::RESIDENT_ID_SYSTEM,
                            numbers[i]
                        ),
                        Kind::Encounters => format!("{}/fhir/Encounter?patient=Patient/{}", job.base, ids[i]),
                    };
                    let t = Instant::now();
                    let resp = job.client.get(url).bearer_auth(&*job.token).send().await?;
                    let status = resp.status();
                    let bytes = resp.bytes().await?;
                    lat.push(t.elapsed());
                    if !status.is_success() {
                        bail!("request {k}: {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)]));
                    }
                    if matches!(job.kind, Kind::Identifier) {
                        // the search found its patient (the id is in the answer)
                        let id = ids[i].to_string();
                        if !bytes.windows(id.len()).any(|w| w == id.as_bytes()) {
                            bail!("request {k}: the identifier search did not find its patient");
                        }
                    }
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.context("a client task")??);
        }
        Ok(all)
    }
}
