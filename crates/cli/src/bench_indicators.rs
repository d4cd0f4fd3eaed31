//! Benchmarks of reform indicators (issue 8): each prints the figure its issue names.
//!
//! - `bench indicators scorecard`: a county-year of N encounters (default 5,000,000; the sim
//!   county's facilities and residents, encounters drawn here over the tiers so the in-county
//!   rate is about 90%); the scorecard's server time (`server_ms` of the answer) over HTTP
//!   for several scopes (target ≤ 50 ms), then a full rebuild of the counters from the
//!   events (target ≤ 30 s), checked identical to the incremental counters.
//! - `bench indicators hooks`: what the counter updates add to each event write (target ≤ 10%):
//!   single encounters and bulk imports timed with the hooks on and off, alternately.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use tiercare_domain::encounter::{Encounter, EncounterClass};
use tiercare_domain::facility::{Facility, Tier};
use tiercare_domain::indicators::Measure;
use tiercare_domain::role::Role;
use tiercare_sim::{County, Rng};
use tiercare_store::{Store, new_id, without_counter_hooks};
use time::{Date, Duration, Month};

use crate::bench::{Server, login, machine};
use crate::config::Settings;

const PASSWORD: &str = crate::bench::BENCH_PASSWORD;
const USER: &str = "bench-indicators";
/// Encounters per import transaction.
const BATCH: usize = 50_000;
/// Import transactions at once on PostgreSQL.
const LOAD_TASKS: usize = 3;

#[derive(Subcommand)]
pub enum IndicatorsBench {
    /// Scorecard server time and full rebuild on a county-year (targets ≤ 50 ms, ≤ 30 s).
    Scorecard {
        /// Encounters of the county-year.
        #[arg(long, default_value_t = 5_000_000)]
        encounters: usize,
        /// PostgreSQL URL (the database is built once and reused); default a SQLite file in the work dir.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
        /// Scorecard requests timed.
        #[arg(long, default_value_t = 40)]
        requests: usize,
    },
    /// What the counter updates add to each event write (target ≤ 10%).
    Hooks {
        /// Single encounters written in each of the on and off halves.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// An empty PostgreSQL database; default a new SQLite file in the work dir.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value = "target/bench")]
        work_dir: PathBuf,
    },
}

pub async fn run(cmd: IndicatorsBench, _settings: &Settings) -> Result<()> {
    match cmd {
        IndicatorsBench::Scorecard { encounters, database_url, work_dir, requests } => {
            scorecard(encounters, database_url, &work_dir, requests).await
        }
        IndicatorsBench::Hooks { events, database_url, work_dir } => hooks(events, database_url, &work_dir).await,
    }
}

/// The store at `url`, or a SQLite file `name` in `work_dir`; and its label.
async fn open(url: Option<String>, work_dir: &Path, name: &str) -> Result<(Arc<dyn Store>, &'static str)> {
    std::fs::create_dir_all(work_dir)?;
    let (url, label) = match url {
        Some(u) => (u, "PostgreSQL"),
        None => (work_dir.join(name).to_string_lossy().into_owned(), "SQLite"),
    };
    let store = tiercare_store::open(&url).await?;
    store.migrate().await?;
    Ok((store, label))
}

/// Registries, residents (no enrolments: not needed here) and the benchmark user.
/// The county's registries and residents (the referral and settlement benches' loader) and
/// the insurance officer who reads the scorecard.
async fn load_county(store: &Arc<dyn Store>, county: &County) -> Result<()> {
    crate::bench::load_registries_and_residents(store, county, None).await?;
    crate::bench::ensure_user(store, USER, "医保局", Role::InsuranceOfficer, county.county_hospital().id).await
}

/// Where visits go: (tier, in the community, weight) — grassroots about 55%, in-county about 90%.
const VISIT_WEIGHTS: [(Tier, bool, u64); 5] = [
    (Tier::Village, true, 22),
    (Tier::Township, true, 33),
    (Tier::County, true, 35),
    (Tier::City, false, 7),
    (Tier::Provincial, false, 3),
];

/// Draws encounters of the county's residents over its facilities in year `year`.
struct Draw<'a> {
    county: &'a County,
    by_place: Vec<Vec<&'a Facility>>,
    rng: Rng,
    year_start_ms: i64,
}

impl<'a> Draw<'a> {
    fn new(county: &'a County, seed: u64) -> Draw<'a> {
        let by_place = VISIT_WEIGHTS
            .iter()
            .map(|(tier, member, _)| {
                county
                    .facilities
                    .iter()
                    .filter(|f| {
                        (f.tier == *tier || (*tier == Tier::Provincial && f.tier > Tier::City))
                            && f.community_id.is_some() == *member
                    })
                    .collect()
            })
            .collect();
        let start = Date::from_calendar_date(county.config.year, Month::January, 1).unwrap_or(Date::MIN);
        // 00:00 China time
        let year_start_ms = (start.midnight().assume_utc().unix_timestamp() - 8 * 3600) * 1000;
        Draw { county, by_place, rng: Rng::new(seed), year_start_ms }
    }

    fn next(&mut self) -> Encounter {
        let r = &self.county.residents[self.rng.below(self.county.residents.len() as u64) as usize].patient;
        let mut w = self.rng.below(VISIT_WEIGHTS.iter().map(|x| x.2).sum());
        let mut place = 0;
        while w >= VISIT_WEIGHTS[place].2 {
            w -= VISIT_WEIGHTS[place].2;
            place += 1;
        }
        let fs = &self.by_place[place];
        let f = fs[self.rng.below(fs.len() as u64) as usize];
        let stay = self.rng.below(100) < 3 && f.tier != Tier::Village;
        let at_ms = self.year_start_ms + self.rng.below(365 * 86_400_000) as i64;
        let started_at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let cost = if stay { 300_000 + self.rng.below(2_700_000) } else { 2_000 + self.rng.below(28_000) } as i64;
        Encounter {
            id: new_id(),
            region_key: r.region_key.clone(),
            patient_id: r.id,
            facility_id: f.id,
            department: None,
            practitioner_id: None,
            class: if stay { EncounterClass::Inpatient } else { EncounterClass::Outpatient },
            started_at,
            ended_at: Some(started_at + Duration::minutes(30)),
            diagnoses: vec!["J06.900".into()],
            procedures: vec![],
            total_cost_fen: cost,
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// User + system CPU seconds of this process so far (`/proc/self/stat`, 100 ticks a second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // the fields after the command name (which is in parentheses and may hold spaces)
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn scorecard(encounters: usize, url: Option<String>, work_dir: &Path, requests: usize) -> Result<()> {
    let residents = (encounters / 6).max(1_000);
    let county = County::generate(tiercare_sim::Config { residents, ..Default::default() });
    let (store, label) = open(url, work_dir, &format!("indicators-{encounters}.sqlite")).await?;
    if store.count_patients().await? == 0 {
        let started = Instant::now();
        load_county(&store, &county).await?;
        eprintln!("loaded {residents} residents in {:.0} s", started.elapsed().as_secs_f64());
        let mut draw = Draw::new(&county, 8);
        let mut written = 0;
        // a few imports at once: on PostgreSQL each waits on its round trips and index
        // writes much of the time (their counter upserts take the cells in one order)
        let par = if label == "PostgreSQL" { LOAD_TASKS } else { 1 };
        while written < encounters {
            let mut imports = Vec::new();
            let mut drawn = written;
            for _ in 0..par {
                let n = BATCH.min(encounters - drawn);
                if n == 0 {
                    break;
                }
                drawn += n;
                let batch: Vec<Encounter> = (0..n).map(|_| draw.next()).collect();
                let store = store.clone();
                imports.push(tokio::spawn(async move { store.import_encounters(&batch).await }));
            }
            for i in imports {
                written += i.await?? as usize;
            }
            eprint!("\rloaded {written} encounters ({:.0} s)", started.elapsed().as_secs_f64());
        }
        let analyzed = Instant::now();
        store.analyze().await?;
        eprintln!(
            "\rloaded {written} encounters and {residents} residents in {:.0} s (statistics: {:.1} s)",
            started.elapsed().as_secs_f64(),
            analyzed.elapsed().as_secs_f64()
        );
    }
    let server = Server::start(store.clone()).await?;
    let client = reqwest::Client::new();
    let token = login(&client, &server.base, USER, PASSWORD).await?;
    let c = county.community.id;
    let township = county.facilities.iter().find(|f| f.tier == Tier::Township).context("a township")?.id;
    let year = county.config.year;
    let scopes = [
        format!("community_id={c}&from={year}-01&to={year}-12"),
        format!("community_id={c}&from={year}-07&to={year}-07"),
        format!("community_id={c}&from={year}-01&to={year}-12&facility_id={township}"),
        format!("community_id={c}&from={year}-01&to={year}-12&tier=village"),
    ];
    let (mut server_ms, mut wall_ms) = (Vec::new(), Vec::new());
    let mut first: Option<serde_json::Value> = None;
    for k in 0..requests.max(scopes.len()) {
        let url = format!("{}/api/v1/indicators/scorecard?{}", server.base, scopes[k % scopes.len()]);
        let t = Instant::now();
        let v: serde_json::Value = client.get(url).bearer_auth(&token).send().await?.error_for_status()?.json().await?;
        wall_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        server_ms.push(v["server_ms"].as_f64().unwrap_or(f64::NAN));
        first.get_or_insert(v);
    }
    server.stop().await;
    server_ms.sort_by(f64::total_cmp);
    wall_ms.sort_by(f64::total_cmp);
    println!(
        "indicators scorecard — {label}, {encounters} encounters, {residents} residents ({}; load {})",
        machine(),
        load_average()
    );
    println!(
        "  server time: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms; over HTTP p50 {:.1} ms ({} requests, 4 scopes)",
        percentile(&server_ms, 0.5),
        percentile(&server_ms, 0.95),
        percentile(&server_ms, 1.0),
        percentile(&wall_ms, 0.5),
        server_ms.len()
    );
    if let Some(v) = first {
        for i in v["indicators"].as_array().into_iter().flatten().take(3) {
            println!("  {}: {} / {} = {} ({})", i["id"], i["numerator"], i["denominator"], i["value"], i["rag"]);
        }
    }
    let (stored, cells) = store.indicator_counter_rows().await?;
    println!("  counter table: {cells} cells in {stored} rows (shards)");
    let before = store.all_indicator_counters().await?;
    let counted: i64 = before.iter().map(|r| r.counters.get(Measure::Visits) + r.counters.get(Measure::Stays)).sum();
    println!("  encounters counted in the counters: {counted}");
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let rows = store.rebuild_indicator_counters().await?;
    let (rebuild_s, rebuild_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let after = store.all_indicator_counters().await?;
    println!(
        "  full rebuild: {rebuild_s:.1} s wall, {rebuild_cpu:.1} s CPU of this process ({rows} counter rows); identical to the incremental counters: {}",
        if before == after { "yes" } else { "NO" }
    );
    Ok(())
}

/// Nanoseconds on a CPU of all this process's threads so far (the first field of each
/// thread's `/proc/self/task/*/schedstat`): unlike wall time, not stretched by other
/// processes' load; includes the SQLite checkpointer thread.
fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|x| x.parse::<u64>().ok()))
        .sum()
}

/// Writes `batch` one encounter at a time, counters on or off; seconds taken (wall, CPU).
async fn write_singles(store: &Arc<dyn Store>, batch: &[Encounter], on: bool) -> Result<(f64, f64)> {
    let (t, cpu) = (Instant::now(), process_cpu_ns());
    let write = async {
        for e in batch {
            store.create_encounter(e).await?;
        }
        Ok::<_, tiercare_store::StoreError>(())
    };
    if on {
        write.await?
    } else {
        without_counter_hooks(write).await?
    }
    Ok((t.elapsed().as_secs_f64(), process_cpu_ns().saturating_sub(cpu) as f64 / 1e9))
}

/// Writes `batch` from `tasks` tasks at once (their transactions share group commits),
/// counters on or off; seconds taken.
async fn write_concurrently(store: &Arc<dyn Store>, batch: Vec<Encounter>, tasks: usize, on: bool) -> Result<f64> {
    let per = batch.len().div_ceil(tasks.max(1));
    let t = Instant::now();
    let handles: Vec<_> = batch
        .chunks(per.max(1))
        .map(|part| {
            let (store, part) = (store.clone(), part.to_vec());
            tokio::spawn(async move {
                let write = async {
                    for e in &part {
                        store.create_encounter(e).await?;
                    }
                    Ok::<_, tiercare_store::StoreError>(())
                };
                if on { write.await } else { without_counter_hooks(write).await }
            })
        })
        .collect();
    for h in handles {
        h.await??;
    }
    Ok(t.elapsed().as_secs_f64())
}

async fn hooks(events: usize, url: Option<String>, work_dir: &Path) -> Result<()> {
    let county = County::generate(tiercare_sim::Config { residents: 5_000, ..Default::default() });
    let (store, label) = open(url, work_dir, &format!("indicators-hooks-{}.sqlite", new_id())).await?;
    if store.count_patients().await? > 0 {
        bail!("bench indicators hooks needs an empty database");
    }
    // residents registered at a township, where a clinician records encounters over HTTP
    let township = county.facilities.iter().find(|f| f.tier == Tier::Township).context("a township")?.id;
    crate::bench::load_registries_and_residents(&store, &county, Some(township)).await?;
    crate::bench::ensure_user(&store, USER, "乡镇医生", Role::TownshipClinician, township).await?;
    let mut draw = Draw::new(&county, 9);
    // single events: on and off in alternating blocks of 1,000, so drift hits both alike
    let (mut on_s, mut off_s, mut n_each) = (0.0, 0.0, 0usize);
    let (mut on_cpu, mut off_cpu) = (0.0, 0.0);
    let block = 1_000.min(events.max(1));
    while n_each < events {
        for on in [true, false] {
            let batch: Vec<Encounter> = (0..block).map(|_| draw.next()).collect();
            let (s, cpu) = write_singles(&store, &batch, on).await?;
            if on {
                (on_s, on_cpu) = (on_s + s, on_cpu + cpu);
            } else {
                (off_s, off_cpu) = (off_s + s, off_cpu + cpu);
            }
        }
        n_each += block;
    }
    // 16 writers at once (group commits), alternating
    let (mut conc_on, mut conc_off, tasks) = (0.0, 0.0, 16);
    for k in 0..6 {
        let on = k % 2 == 0;
        let batch: Vec<Encounter> = (0..events.min(4_000)).map(|_| draw.next()).collect();
        let s = write_concurrently(&store, batch, tasks, on).await?;
        if on { conc_on += s } else { conc_off += s }
    }
    let conc_n = 3 * events.min(4_000);
    // bulk: 10,000-row imports, alternately
    let (mut bulk_on, mut bulk_off, rounds) = (0.0, 0.0, 6);
    for k in 0..rounds * 2 {
        let on = k % 2 == 0;
        let batch: Vec<Encounter> = (0..10_000).map(|_| draw.next()).collect();
        let t = Instant::now();
        if on {
            store.import_encounters(&batch).await?;
        } else {
            without_counter_hooks(store.import_encounters(&batch)).await?;
        }
        if on { bulk_on += t.elapsed().as_secs_f64() } else { bulk_off += t.elapsed().as_secs_f64() }
    }
    // as a user sees it: POST /api/v1/encounters, one at a time, counters on (the server's
    // requests always update them)
    let server = Server::start(store.clone()).await?;
    let client = reqwest::Client::new();
    let token = login(&client, &server.base, USER, PASSWORD).await?;
    let api_n = events.min(5_000);
    let mut api_s = 0.0;
    for k in 0..api_n + 200 {
        let r = &county.residents[k % county.residents.len()].patient;
        let body = serde_json::json!({
            "patient_id": r.id,
            "facility_id": township,
            "class": "outpatient",
            "started_at": "2025-06-01T09:00:00+08:00",
            "diagnoses": ["J06.900"],
            "total_cost_fen": 4_500,
        });
        let t = Instant::now();
        client
            .post(format!("{}/api/v1/encounters", server.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        if k >= 200 {
            api_s += t.elapsed().as_secs_f64();
        }
    }
    server.stop().await;
    let t = Instant::now();
    store.rebuild_indicator_counters().await?;
    let per = |s: f64, n: usize| s / n as f64 * 1e6;
    let added_us = per(on_s, n_each) - per(off_s, n_each);
    println!("indicators hooks — {label} ({}; load {})", machine(), load_average());
    println!(
        "  single encounter write: {:.1} µs with the counter update, {:.1} µs without: +{added_us:.1} µs, +{:.1}% ({n_each} each)",
        per(on_s, n_each),
        per(off_s, n_each),
        (on_s / off_s - 1.0) * 100.0
    );
    println!(
        "  the same in CPU time of the process (all threads): {:.1} µs with, {:.1} µs without: +{:.1} µs, +{:.1}%",
        per(on_cpu, n_each),
        per(off_cpu, n_each),
        per(on_cpu, n_each) - per(off_cpu, n_each),
        (on_cpu / off_cpu - 1.0) * 100.0
    );
    println!(
        "  {tasks} writers at once: {:.1} µs/write with, {:.1} µs/write without: +{:.1}% ({conc_n} each)",
        per(conc_on, conc_n),
        per(conc_off, conc_n),
        (conc_on / conc_off - 1.0) * 100.0
    );
    println!(
        "  bulk import (10,000 a transaction): {:.1} µs/row with, {:.1} µs/row without: +{:.1}% ({} rows each)",
        per(bulk_on, rounds * 10_000),
        per(bulk_off, rounds * 10_000),
        (bulk_on / bulk_off - 1.0) * 100.0,
        rounds * 10_000
    );
    let api_us = per(api_s, api_n);
    println!(
        "  POST /api/v1/encounters (HTTP, one at a time): {api_us:.0} µs each with the counters; the single-write \
         difference above is {:.1}% of it ({api_n} requests)",
        added_us / (api_us - added_us) * 100.0
    );
    println!("  (counters rebuilt afterwards in {:.2} s)", t.elapsed().as_secs_f64());
    Ok(())
}
