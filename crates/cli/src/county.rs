//! The synthetic county, loaded into a store (`tiercare demo`) or written as FHIR NDJSON
//! (`tiercare generate`): registries, residents, enrolments, a year of care and the year's
//! referrals with their histories, follow-up tasks and filings.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tiercare_domain::billing::CatalogueSet;
use tiercare_domain::encounter::Encounter;
use tiercare_domain::facility::Tier;
use tiercare_domain::role::Role;
use tiercare_domain::settlement::{DEFAULT_POLICY_TOML, PolicySet};
use tiercare_sim::settlements::in_force_for_year;
use tiercare_sim::{Config, County, GeneratedReferral, GeneratedSettlement, Settler, YearSettlements};
use tiercare_store::{ReferralBundle, SettlementRecord, SettlementStatus, Store};

pub fn bar(len: u64, what: &str, visible: bool) -> ProgressBar {
    let b = if visible { ProgressBar::new(len) } else { ProgressBar::hidden() };
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what:<10} [{{bar:40}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Generate the county's residents and facilities, with a spinner.
pub fn generate(config: Config, progress: bool) -> County {
    let spinner = if progress { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    spinner.set_message(format!("generating {} residents…", config.residents));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let county = County::generate(config);
    spinner.finish_and_clear();
    county
}

/// Residents per batch when loading or writing encounters.
const RESIDENTS_PER_BATCH: usize = 10_000;

/// What a load wrote.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub facilities: usize,
    pub residents: u64,
    pub encounters: u64,
    pub referrals: u64,
    pub seconds: f64,
}

/// What settling the generated year left unsettled, and why.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SettleStats {
    pub settlements: u64,
    pub reversed: u64,
    pub not_enrolled: u64,
    pub in_hospital: u64,
    /// Refusals by the engine, by code (none expected).
    pub refused: std::collections::BTreeMap<String, u64>,
}

impl SettleStats {
    fn add(&mut self, y: &YearSettlements) {
        self.settlements += y.settlements.len() as u64;
        self.reversed += y.settlements.iter().filter(|s| s.reversal.is_some()).count() as u64;
        self.not_enrolled += u64::from(y.not_enrolled);
        self.in_hospital += u64::from(y.in_hospital);
        for code in &y.refused {
            *self.refused.entry(code.clone()).or_default() += 1;
        }
    }

    /// One line for the console.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} settlements ({} of them reversed, each followed by the same bill settled again); not settled: {} encounters without an enrolment on the day, {} stays not yet discharged at the end of the year",
            self.settlements, self.reversed, self.not_enrolled, self.in_hospital
        );
        if !self.refused.is_empty() {
            let r: Vec<String> = self.refused.iter().map(|(c, n)| format!("{n} {c}")).collect();
            s.push_str(&format!(", refused: {}", r.join(", ")));
        }
        s
    }
}

/// The rules the generated year is settled by: the default policy set (in force from 1
/// January of the generated year, see [`in_force_for_year`]) and the default catalogues.
pub fn settlement_rules(year: i32) -> Result<(PolicySet, CatalogueSet)> {
    let policies: PolicySet = toml::from_str(DEFAULT_POLICY_TOML).context("the default policy set")?;
    policies.validate().map_err(|e| anyhow::anyhow!("the default policy set: {e}"))?;
    let catalogues = CatalogueSet::load_toml(tiercare_domain::billing::DEFAULT_CATALOGUE_TOML)
        .map_err(|e| anyhow::anyhow!("the default catalogue: {e}"))?;
    Ok((in_force_for_year(&policies, year), catalogues))
}

/// A generated settlement as the store's bulk import takes it.
pub fn settlement_record(g: GeneratedSettlement) -> SettlementRecord {
    let (status, reversal_txn_no, reversed_at) = match g.reversal {
        Some((no, at)) => (SettlementStatus::Reversed, Some(no), Some(at)),
        None => (SettlementStatus::Settled, None, None),
    };
    SettlementRecord {
        id: g.id,
        region_key: g.region_key,
        facility_id: g.facility_id,
        txn_no: g.txn_no,
        patient_id: g.patient_id,
        encounter_id: Some(g.encounter_id),
        claim: g.claim,
        items: g.items,
        split: g.split,
        status,
        created_at: g.settled_at,
        reversed_at,
        reversal_reason: reversal_txn_no.is_some().then(|| tiercare_sim::settlements::REVERSAL_REASON.to_owned()),
        reversal_txn_no,
        replayed: false,
    }
}

/// A generated referral as the store's bulk import takes it.
pub fn bundle(g: GeneratedReferral) -> ReferralBundle {
    ReferralBundle { referral: g.referral, events: g.events, follow_ups: g.follow_ups, filings: g.filings }
}

/// Load the county into an empty store: registries, residents, enrolments, a year of care.
pub async fn load(store: &Arc<dyn Store>, county: Arc<County>, progress: bool) -> Result<LoadStats> {
    let started = Instant::now();
    if store.count_patients().await? > 0 {
        bail!("the database already holds patients; the demo county loads into an empty one");
    }
    store.create_alliance(&county.alliance).await?;
    store.create_community(&county.community).await?;
    for f in &county.facilities {
        store.create_facility(f).await?;
    }
    let n = county.residents.len();
    let b = bar(n as u64, "residents", progress);
    for (k, chunk) in county.residents.chunks(100_000).enumerate() {
        let rows: Vec<(u64, tiercare_domain::patient::Patient)> =
            chunk.iter().enumerate().map(|(i, r)| ((k * 100_000 + i + 1) as u64, r.patient.clone())).collect();
        let out = store.import_patients(&rows, true).await?;
        if let Some(r) = out.rejected.first() {
            bail!("the generated resident on row {} was refused: {}", r.line, r.message);
        }
        let enrolments: Vec<_> = chunk.iter().map(|r| r.enrolment.clone()).collect();
        store.import_enrolments(&enrolments).await?;
        b.inc(chunk.len() as u64);
    }
    b.finish_and_clear();

    // care, referrals and settlements: drawn on a second thread while the store writes the
    // previous batch
    let b = bar(n as u64, "care", progress);
    type Batch = (usize, Vec<Encounter>, Vec<ReferralBundle>, Vec<SettlementRecord>);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let gen_county = county.clone();
    let (policies, catalogues) = settlement_rules(county.config.year)?;
    let producer = std::thread::spawn(move || {
        let settler = Settler::new(&gen_county, &policies, &catalogues);
        let mut stats = SettleStats::default();
        for start in (0..n).step_by(RESIDENTS_PER_BATCH) {
            let end = (start + RESIDENTS_PER_BATCH).min(n);
            let (mut encounters, mut referrals, mut settlements) = (Vec::new(), Vec::new(), Vec::new());
            for i in start..end {
                let (e, r) = gen_county.year_of(i);
                let settled = gen_county.settle_year(i, &e, &r, &settler);
                stats.add(&settled);
                settlements.extend(settled.settlements.into_iter().map(settlement_record));
                encounters.extend(e);
                referrals.extend(r.into_iter().map(bundle));
            }
            if tx.blocking_send((end - start, encounters, referrals, settlements)).is_err() {
                break;
            }
        }
        stats
    });
    let (mut encounters, mut referrals) = (0, 0);
    while let Some((residents, batch, bundles, settled)) = rx.recv().await {
        encounters += store.import_encounters(&batch).await?;
        referrals += store.import_referrals(&bundles).await?;
        store.import_settlements(&settled).await?;
        b.inc(residents as u64);
    }
    let stats = producer.join().map_err(|_| anyhow::anyhow!("the care generator panicked"))?;
    b.finish_and_clear();
    if progress {
        eprintln!("settled the year through the engine: {}", stats.summary());
    }
    // the capability parts' data, each from the county and what is stored so far
    crate::county_results::load(store, &county, progress).await?;
    crate::county_case_payment::load(store, &county, progress).await?;
    // planner statistics for the tables just loaded (PostgreSQL plans them as empty otherwise)
    store.analyze().await?;
    Ok(LoadStats {
        facilities: county.facilities.len(),
        residents: n as u64,
        encounters,
        referrals,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Add the referrals in flight "today" ([`tiercare_sim::live_referrals`]) unless the
/// county hospital's inbox already has referrals requested in the last two days (a demo
/// database reused on the same day). Returns how many were added.
pub async fn add_live_referrals(store: &Arc<dyn Store>, county: &County) -> Result<u64> {
    let now = time::OffsetDateTime::now_utc();
    let Some(hospital) = county.community_facilities().find(|f| f.tier == Tier::County) else { return Ok(0) };
    let recent = tiercare_store::ReferralFilter {
        to_facility_id: Some(hospital.id),
        requested_from: Some(now - time::Duration::days(2)),
        ..Default::default()
    };
    if store.count_referrals(&recent).await? > 0 {
        return Ok(0);
    }
    let bundles: Vec<ReferralBundle> = tiercare_sim::live_referrals(county, now).into_iter().map(bundle).collect();
    Ok(store.import_referrals(&bundles).await?)
}

/// The demo's users: one per role, at a fitting facility. (username, display name, role, facility code)
pub fn demo_users(county: &County) -> Vec<(&'static str, &'static str, Role, String)> {
    let code =
        |tier: Tier| county.community_facilities().find(|f| f.tier == tier).map(|f| f.code.clone()).unwrap_or_default();
    let (county_h, township, village) = (code(Tier::County), code(Tier::Township), code(Tier::Village));
    vec![
        ("village", "李村医", Role::VillageDoctor, village),
        ("township", "王医生", Role::TownshipClinician, township),
        ("referral", "转诊中心张老师", Role::ReferralCentre, county_h.clone()),
        ("specialist", "陈主任", Role::Specialist, county_h.clone()),
        ("lab", "检验科刘老师", Role::Lab, county_h.clone()),
        ("clerk", "医保窗口赵老师", Role::SettlementClerk, county_h.clone()),
        ("insurance", "医保局周科长", Role::InsuranceOfficer, county_h.clone()),
        ("admin", "医共体管理员", Role::CommunityAdmin, county_h.clone()),
        ("sysadmin", "系统管理员", Role::SystemAdmin, county_h),
    ]
}

/// Peak resident memory of this process (Linux), in MiB.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Write the county as FHIR R4 NDJSON, one file per resource type. Returns lines per file.
pub fn write_ndjson(county: &County, out: &Path, progress: bool) -> Result<Vec<(String, u64)>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let open = |name: &str| -> Result<std::io::BufWriter<std::fs::File>> {
        let path = out.join(format!("{name}.ndjson"));
        Ok(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?,
        ))
    };
    let mut counts = Vec::new();
    let line = |w: &mut std::io::BufWriter<std::fs::File>, v: &serde_json::Value| -> Result<()> {
        serde_json::to_writer(&mut *w, v)?;
        w.write_all(b"\n")?;
        Ok(())
    };
    let mut w = open("Organization")?;
    for f in &county.facilities {
        line(&mut w, &tiercare_fhir::organization(f))?;
    }
    w.flush()?;
    counts.push(("Organization".to_owned(), county.facilities.len() as u64));
    let (mut pw, mut cw, mut dw, mut ew) =
        (open("Patient")?, open("Coverage")?, open("Condition")?, open("Encounter")?);
    let (mut sw, mut tw) = (open("ServiceRequest")?, open("Task")?);
    let (mut conditions, mut encounters, mut referrals) = (0u64, 0u64, 0u64);
    let (policies, catalogues) = settlement_rules(county.config.year)?;
    let settler = Settler::new(county, &policies, &catalogues);
    let mut stats = SettleStats::default();
    let facility: std::collections::HashMap<uuid::Uuid, &tiercare_domain::facility::Facility> =
        county.facilities.iter().map(|f| (f.id, f)).collect();
    let b = bar(county.residents.len() as u64, "residents", progress);
    for (i, r) in county.residents.iter().enumerate() {
        line(&mut pw, &tiercare_fhir::patient(&r.patient))?;
        line(&mut cw, &tiercare_fhir::coverage(&r.enrolment))?;
        for (has, code) in [(r.hypertension, "I10.x00"), (r.diabetes, "E11.900")] {
            if has {
                line(&mut dw, &tiercare_fhir::chronic_condition(&r.patient, code))?;
                conditions += 1;
            }
        }
        let (year, referred) = county.year_of(i);
        // every encounter settled through the engine (checked, counted; the ClaimResponses
        // are not written: about 7 KB each, some 10 GB for the default county)
        let settled = county.settle_year(i, &year, &referred, &settler);
        stats.add(&settled);
        for e in year {
            line(&mut ew, &tiercare_fhir::encounter(&e))?;
            encounters += 1;
        }
        for g in referred {
            let r = &g.referral;
            let (Some(from), Some(to)) = (facility.get(&r.from_facility_id), facility.get(&r.to_facility_id)) else {
                bail!("a generated referral names a facility the county does not have");
            };
            line(&mut sw, &tiercare_fhir::referral::service_request(r, from, to))?;
            line(&mut tw, &tiercare_fhir::referral::task(r, &g.events))?;
            referrals += 1;
        }
        if i % 10_000 == 0 {
            b.set_position(i as u64);
        }
    }
    b.finish_and_clear();
    if progress {
        eprintln!("settled the year through the engine: {}", stats.summary());
    }
    for w in [&mut pw, &mut cw, &mut dw, &mut ew, &mut sw, &mut tw] {
        w.flush()?;
    }
    let n = county.residents.len() as u64;
    counts.extend([
        ("Patient".to_owned(), n),
        ("Coverage".to_owned(), n),
        ("Condition".to_owned(), conditions),
        ("Encounter".to_owned(), encounters),
        ("ServiceRequest".to_owned(), referrals),
        ("Task".to_owned(), referrals),
    ]);
    Ok(counts)
}
