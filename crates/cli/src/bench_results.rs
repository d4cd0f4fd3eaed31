//! Benchmarks of results and mutual recognition (issue 5): each prints the figure its issue names.
//!
//! - `bench results ingest`      bulk result ingestion (`Store::insert_results`: multi-row
//!   inserts, one transaction per batch), observations/s; validation timed apart
//! - `bench results order-check` the order-time check for a 10-item order against a patient
//!   with 200 prior results among `results` stored: the records merged into the patient, the
//!   store's look-up, the labs' qualifications and the rule (the first run loads the results
//!   through the store's bulk load, `COPY` on PostgreSQL), p50/p95/p99 (and with `--http` the whole
//!   `POST /api/v1/results/order-check`, which also writes an access-log row)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use tiercare_domain::facility::{Facility, Grade, NewFacility, Tier};
use tiercare_domain::patient::{NewPatient, Patient};
use tiercare_domain::recognition::{FacilityContext, LabQualification, RecognitionConfig, Scope, check_order};
use tiercare_domain::results::{AbnormalFlag, Category, Entry, NewObservation, NewReport, Performer, Report};
use tiercare_sim::Rng;
use tiercare_store::{ResultQuery, ResultRecord, Store, new_id};
use time::{Duration as TimeDuration, OffsetDateTime};
use uuid::Uuid;

use crate::bench::{Server, login, machine, percentile};
use crate::config::Settings;
use crate::synth;

const REGION: &str = "511621";
const FACILITY_CODE: &str = "H51162100001";
/// Lab items of the sample catalogue the generated reports use (17 items).
const ITEMS: [&str; 17] = [
    "K", "NA", "CL", "GLU", "WBC", "HGB", "PLT", "CRP", "HBA1C", "CREA", "UREA", "ALT", "AST", "TC", "TG", "LDL", "TSH",
];
/// The 10-item order of the order-check bench.
const ORDER: [&str; 10] = ["HBA1C", "GLU", "CREA", "K", "NA", "TC", "LDL", "ALT", "WBC", "HGB"];
/// Observations per generated report.
const PER_REPORT: usize = 10;

#[derive(Subcommand)]
pub enum ResultsBench {
    /// Bulk result ingestion into a fresh SQLite database (or an empty PostgreSQL one):
    /// observations/s.
    Ingest {
        #[arg(long, default_value_t = 300_000)]
        observations: usize,
        /// Observations per `insert_results` call (one transaction).
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
    },
    /// The order-time check: 10 items, a patient with `per_patient` prior results, `results`
    /// stored (the SQLite database is built once under the work directory and reused).
    OrderCheck {
        #[arg(long, default_value_t = 5_000_000)]
        results: usize,
        #[arg(long, default_value_t = 200)]
        per_patient: usize,
        #[arg(long, default_value_t = 5_000)]
        requests: usize,
        /// A PostgreSQL database (empty, or holding this bench's data) instead of SQLite.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
        /// Also time the HTTP endpoint (with its access-log write).
        #[arg(long)]
        http: bool,
    },
}

pub async fn run(cmd: ResultsBench, _settings: &Settings) -> Result<()> {
    match cmd {
        ResultsBench::Ingest { observations, batch, database_url, work_dir } => {
            ingest(observations, batch.max(PER_REPORT), database_url, &work_dir).await
        }
        ResultsBench::OrderCheck { results, per_patient, requests, database_url, work_dir, http } => {
            order_check(results, per_patient.max(1), requests.max(10), database_url, &work_dir, http).await
        }
    }
}

/// Open (fresh for SQLite unless `keep`) and migrate.
async fn open(database_url: Option<String>, dir: &Path, fresh: bool) -> Result<Arc<dyn Store>> {
    let url = match database_url {
        Some(u) => u,
        None => {
            if fresh && dir.exists() {
                std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
            }
            std::fs::create_dir_all(dir)?;
            dir.join("tiercare.sqlite").to_string_lossy().into_owned()
        }
    };
    let store = tiercare_store::open(&url).await?;
    store.migrate().await?;
    Ok(store)
}

/// The county hospital (its lab qualified for HR since 2020) and `n` patients registered
/// there, created unless present.
async fn fixture(store: &Arc<dyn Store>, n: usize) -> Result<(Facility, Vec<Patient>)> {
    let f = match store.get_facility_by_code(FACILITY_CODE).await? {
        Some(f) => f,
        None => {
            let f = NewFacility {
                code: FACILITY_CODE.into(),
                name: "岳池县人民医院".into(),
                tier: Tier::County,
                grade: Grade::Level2A,
                region_code: REGION.into(),
                insurance_region: "511600".into(),
                community_id: None,
                capabilities: Default::default(),
                location: None,
                referral_policy: Default::default(),
            }
            .validate(new_id())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            store.create_facility(&f).await?;
            let q = LabQualification {
                lab_id: f.id,
                qualified_from: time::macros::datetime!(2020-01-01 00:00 UTC),
                qualified_to: None,
            };
            store.add_lab_qualification(&q, None).await?;
            f
        }
    };
    let today = OffsetDateTime::now_utc().date();
    let patients: Vec<Patient> = synth::people(n, REGION, 55)
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let np = NewPatient {
                identity_number: Some(p.identity_number),
                home_facility_id: Some(f.id),
                ..NewPatient::new(&p.name, p.sex)
            };
            np.validate(today, None).map(|v| v.into_patient(uuid_for(i))).map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect::<Result<_>>()?;
    if store.count_patients().await? < n as u64 {
        for chunk in patients.chunks(50_000) {
            let rows: Vec<(u64, Patient)> = chunk.iter().map(|p| (0, p.clone())).collect();
            store.import_patients(&rows, false).await?;
        }
    }
    Ok((f, patients))
}

/// Stable patient ids (so a reused database is found again).
fn uuid_for(i: usize) -> Uuid {
    Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0000 | i as u128)
}

/// `n` observations of `p` at `f`, in reports of ten, specimen times spread over 400 days
/// before `now`; built directly (validation is timed apart).
fn reports_of(p: &Patient, f: &Facility, n: usize, now: OffsetDateTime, rng: &mut Rng) -> Vec<Report> {
    let config = RecognitionConfig::default_config();
    let mut out = Vec::with_capacity(n.div_ceil(PER_REPORT));
    let mut left = n;
    while left > 0 {
        let k = left.min(PER_REPORT);
        left -= k;
        let specimen = now - TimeDuration::minutes(rng.below(400 * 24 * 60) as i64 + 180);
        let first = rng.below(ITEMS.len() as u64) as usize;
        let entries = (0..k)
            .map(|j| {
                let code = ITEMS[(first + j) % ITEMS.len()];
                let item = config.catalogue.get(code);
                let v = 1.0 + rng.unit() * 9.0;
                Entry {
                    id: new_id(),
                    item_code: code.to_owned(),
                    sent_code: code.to_owned(),
                    value: format!("{v:.1}"),
                    value_num: Some((v * 10.0).round() / 10.0),
                    unit: item.and_then(|i| i.unit.clone()),
                    reference: config.reference(code),
                    reference_text: None,
                    flag: Some(AbnormalFlag::Normal),
                }
            })
            .collect();
        out.push(Report {
            id: new_id(),
            region_key: p.region_key.clone(),
            patient_id: p.id,
            facility_id: f.id,
            facility_tier: f.tier,
            lab_id: f.id,
            category: Category::Lab,
            specimen_time: specimen,
            report_time: specimen + TimeDuration::hours(2),
            mark: Some(Scope::Province { province: "51".into() }),
            imaging: None,
            entries,
        });
    }
    out
}

async fn ingest(observations: usize, batch: usize, database_url: Option<String>, work_dir: &Path) -> Result<()> {
    let backend = if database_url.is_some() { "PostgreSQL" } else { "SQLite" };
    let store = open(database_url, &work_dir.join("results-ingest"), true).await?;
    let patients_n = (observations / 200).max(1);
    let (f, patients) = fixture(&store, patients_n).await?;
    let now = OffsetDateTime::now_utc();
    let mut rng = Rng::new(11);
    let reports: Vec<Report> =
        patients.iter().flat_map(|p| reports_of(p, &f, observations / patients_n, now, &mut rng)).collect();
    let total: usize = reports.iter().map(|r| r.entries.len()).sum();
    // the validation a lab system's report passes, timed on its own (one report per 10 obs)
    let config = RecognitionConfig::default_config();
    let quals = store.lab_qualifications(&[f.id]).await?;
    let sample: Vec<NewReport> = reports.iter().take(10_000).map(as_new).collect();
    let t = Instant::now();
    let performer = Performer { facility_tier: f.tier, region_key: REGION.into() };
    let mut validated = 0usize;
    for n in sample {
        validated += tiercare_domain::results::prepare_report(n, &performer, &config, &quals, now, new_id)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .entries
            .len();
    }
    let validate_rate = validated as f64 / t.elapsed().as_secs_f64();
    let per_call = (batch / PER_REPORT).max(1);
    let t = Instant::now();
    let mut stored = 0u64;
    for chunk in reports.chunks(per_call) {
        stored += store.insert_results(chunk).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    if stored as usize != total {
        bail!("stored {stored} of {total} observations");
    }
    println!(
        "bench results ingest: {backend}, {total} observations in reports of {PER_REPORT}, {} per transaction: \
         {:.0} observations/s stored ({secs:.2} s); validation alone {:.0} observations/s ({})",
        per_call * PER_REPORT,
        total as f64 / secs,
        validate_rate,
        machine()
    );
    Ok(())
}

fn as_new(r: &Report) -> NewReport {
    NewReport {
        patient_id: r.patient_id,
        facility_id: r.facility_id,
        lab_id: r.lab_id,
        category: r.category,
        specimen_time: r.specimen_time,
        report_time: r.report_time,
        mark: r.mark.clone(),
        observations: r
            .entries
            .iter()
            .map(|e| NewObservation {
                code: e.item_code.clone(),
                value: e.value.clone(),
                unit: e.unit.clone(),
                reference_low: None,
                reference_high: None,
                reference_text: None,
                flag: None,
            })
            .collect(),
        imaging: None,
    }
}

async fn order_check(
    results: usize,
    per_patient: usize,
    requests: usize,
    database_url: Option<String>,
    work_dir: &Path,
    http: bool,
) -> Result<()> {
    let backend = if database_url.is_some() { "PostgreSQL" } else { "SQLite" };
    let store = open(database_url, &work_dir.join(format!("results-{results}-{per_patient}")), false).await?;
    let n = (results / per_patient).max(1);
    let (f, patients) = fixture(&store, n).await?;
    load_results(&store, &f, &patients, per_patient).await?;
    let config = RecognitionConfig::default_config();
    let here = FacilityContext::of(&f);
    let items: Vec<String> = ORDER.iter().map(|c| (*c).to_owned()).collect();
    let mut rng = Rng::new(3);
    let picks: Vec<usize> = (0..requests + requests / 10).map(|_| rng.below(n as u64) as usize).collect();
    let mut lat = Vec::with_capacity(requests);
    let mut rows_read = 0usize;
    for (k, &i) in picks.iter().enumerate() {
        let t = Instant::now();
        // as the served check: the patient's record and those merged into it
        let mut ids = vec![patients[i].id];
        ids.extend(store.merged_patient_ids(patients[i].id).await?);
        let prior = store.prior_results(&ids, &items).await?;
        let mut labs: Vec<Uuid> = prior.iter().map(|r| r.lab_id).collect();
        labs.sort_unstable();
        labs.dedup();
        let quals = store.lab_qualifications(&labs).await?;
        let answers = check_order(&ORDER, &prior, &here, &config.catalogue, &quals, OffsetDateTime::now_utc());
        std::hint::black_box(&answers);
        if k >= requests / 10 {
            lat.push(t.elapsed());
            rows_read += prior.len();
        }
    }
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "bench results order-check: {backend}, {} results stored ({n} patients × {per_patient}), 10-item order, \
         {requests} checks (merged records + look-up + qualifications + rule, in process; {:.0} prior results read per check): \
         p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({})",
        n * per_patient,
        rows_read as f64 / requests as f64,
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.95)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
        machine()
    );
    if http {
        http_check(store, &f, &patients, &picks, requests).await?;
    }
    Ok(())
}

/// Store `per_patient` results for every patient that has none yet (resumable: patients are
/// loaded in order), through the store's bulk load (`COPY` on PostgreSQL), in patient order
/// and 1,000 patients per transaction; then the store's after-load step (statistics, and on
/// PostgreSQL the visibility map the order check's index-only scan needs).
async fn load_results(store: &Arc<dyn Store>, f: &Facility, patients: &[Patient], per_patient: usize) -> Result<()> {
    let has = |i: usize| {
        let store = store.clone();
        let id = patients[i].id;
        async move {
            let q = ResultQuery { patient_ids: vec![id], limit: 1, ..Default::default() };
            Ok::<bool, anyhow::Error>(!store.find_results(&q).await?.is_empty())
        }
    };
    let (mut lo, mut hi) = (0usize, patients.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if has(mid).await? { lo = mid + 1 } else { hi = mid }
    }
    if lo == patients.len() {
        return Ok(());
    }
    let started = Instant::now();
    let now = OffsetDateTime::now_utc();
    let mut rng = Rng::new(17 ^ lo as u64);
    let per_batch = (200_000 / per_patient).max(1);
    let mut done = 0usize;
    for chunk in patients[lo..].chunks(per_batch) {
        let rows: Vec<ResultRecord> = chunk
            .iter()
            .flat_map(|p| reports_of(p, f, per_patient, now, &mut rng))
            .flat_map(|r| ResultRecord::of_report(&r).collect::<Vec<_>>())
            .collect();
        store.bulk_insert_results(&rows).await?;
        done += chunk.len();
        if done % (per_batch * 10) < per_batch {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "loaded results of {} of {} patients ({:.0} rows/s, {secs:.0} s)",
                lo + done,
                patients.len(),
                (done * per_patient) as f64 / secs
            );
        }
    }
    let copied = started.elapsed();
    store.results_loaded().await?;
    let rows = (patients.len() - lo) * per_patient;
    eprintln!(
        "loaded {rows} results in {:.0} s ({:.0} rows/s), then statistics and visibility map in {:.0} s \
         (whole load {:.0} rows/s)",
        copied.as_secs_f64(),
        rows as f64 / copied.as_secs_f64(),
        (started.elapsed() - copied).as_secs_f64(),
        rows as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The same checks through `POST /api/v1/results/order-check` (a specialist of the hospital
/// where the patients are registered; each check also writes an access-log row).
async fn http_check(
    store: Arc<dyn Store>,
    f: &Facility,
    patients: &[Patient],
    picks: &[usize],
    requests: usize,
) -> Result<()> {
    if store.get_user_by_username("bench_results").await?.is_none() {
        let hash = tiercare_server::auth::hash_password("bench-password").map_err(|e| anyhow::anyhow!(e))?;
        store
            .create_user(&tiercare_store::User {
                id: new_id(),
                username: "bench_results".into(),
                display_name: "基准测试医生".into(),
                facility_id: f.id,
                roles: vec![tiercare_domain::role::Role::Specialist],
                password_hash: hash,
                active: true,
            })
            .await?;
    }
    let server = Server::start(store).await?;
    let client = reqwest::Client::new();
    let token = login(&client, &server.base, "bench_results", "bench-password").await?;
    let mut lat = Vec::with_capacity(requests);
    for (k, &i) in picks.iter().enumerate() {
        let t = Instant::now();
        let resp = client
            .post(format!("{}/api/v1/results/order-check", server.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({"patient_id": patients[i].id, "items": ORDER}))
            .send()
            .await?;
        let status = resp.status();
        let _ = resp.bytes().await?;
        if !status.is_success() {
            bail!("order check {k} answered {status}");
        }
        if k >= requests / 10 {
            lat.push(t.elapsed());
        }
    }
    server.stop().await;
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "bench results order-check --http: {requests} sequential POST /api/v1/results/order-check (each writes an access-log row): \
         p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({})",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.95)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
        machine()
    );
    Ok(())
}
