//! DIP for a province-sized year on one thread (issue 9's figure: catalogue build and
//! year-end settlement for 5,000,000 stays, target ≤ 60 s).
//!
//! A synthetic province: 400 hospitals, three history years of stays (weights 1:2:7) from
//! which the packet catalogue is built, then the settlement year's stays scored one by one
//! (packet, outlier rule, facility coefficient, explanation) and settled (point value from the
//! regional fund, each hospital's payment). Diagnoses are real ICD-10 医保版 codes from the
//! embedded table, drawn with a skew so that some keys are core packets and many are not.
//!
//! `cargo run --release -p tiercare-domain --example bench_dip [stays] [history]`
//! (defaults 5,000,000 and 5,000,000).

use std::collections::HashMap;
use std::time::Instant;

use tiercare_domain::codes;
use tiercare_domain::dip::{
    DipParameters, DipStay, HistoricalStay, build_catalogue, classify_procedures, score_stay, settle,
};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

/// Real ICD-9-CM-3 codes of common inpatient procedures (checked against the embedded table).
const PROCEDURES: &[&str] = &[
    "51.2300", "47.0100", "36.0600", "81.5400", "74.1x00", "68.4900", "00.6600", "53.0200", "79.3501", "45.2301",
    "88.7201", "99.2500", "96.0400", "38.9300", "86.2200",
];

fn make_stay(rng: &mut Rng, diagnoses: &[&str], procedures: &[&str], hospitals: usize) -> DipStay {
    // skewed diagnosis choice: u³ puts most stays on the first codes of the list
    let u = rng.unit();
    let dx = diagnoses[((u * u * u) * diagnoses.len() as f64) as usize];
    let roll = rng.unit();
    let procs: Vec<String> = if roll < 0.6 {
        Vec::new()
    } else {
        // a diagnosis keeps to a few procedures, so core keys repeat
        let base = dx.bytes().map(usize::from).sum::<usize>();
        let n = if roll < 0.92 { 1 } else { 2 };
        (0..n).map(|i| procedures[(base + i * 3 + rng.below(2)) % procedures.len()].to_owned()).collect()
    };
    let kind = classify_procedures(&procs);
    let base_yuan = 3_000.0 + (dx.as_bytes()[1] as f64 - 48.0) * 900.0 + procs.len() as f64 * 8_000.0;
    // a long right tail: a few stays cost several times the mean (outliers)
    let spread = 0.45 + rng.unit() * 1.1 + if rng.unit() < 0.03 { 2.0 + rng.unit() * 4.0 } else { 0.0 };
    DipStay {
        facility_id: format!("H{:04}", rng.below(hospitals)),
        principal_diagnosis: dx.to_owned(),
        procedures: procs,
        procedure_kind: kind,
        cost_fen: (base_yuan * spread * 100.0).round() as i64,
    }
}

#[allow(dead_code)] // not used where the CLI includes this file (`tiercare bench case-payment dip`)
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let year_stays: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5_000_000);
    let history_stays: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5_000_000);
    run(year_stays, history_stays)
}

/// Make the synthetic province, then time the catalogue build, scoring and settlement; prints
/// each stage and the total.
pub fn run(year_stays: usize, history_stays: usize) -> Result<(), Box<dyn std::error::Error>> {
    let hospitals = 400;

    // every 5th code of the table: about 6,000 diagnoses across all chapters
    let diagnoses: Vec<&str> = codes::diagnosis_codes().map(|(c, _)| c).step_by(5).collect();
    for p in PROCEDURES {
        if codes::procedure_name(p).is_none() {
            return Err(format!("procedure {p} is not in the embedded ICD-9-CM-3 table").into());
        }
    }

    let t = Instant::now();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let history: Vec<HistoricalStay> = (0..history_stays)
        .map(|_| {
            let stay = make_stay(&mut rng, &diagnoses, PROCEDURES, hospitals);
            HistoricalStay { stay, year_index: rng.below(3) as u8 }
        })
        .collect();
    let year: Vec<DipStay> = (0..year_stays).map(|_| make_stay(&mut rng, &diagnoses, PROCEDURES, hospitals)).collect();
    println!(
        "data: {} history stays, {} stays in the year, {} diagnoses, {} hospitals (made in {:.1} s, not timed below)",
        history.len(),
        year.len(),
        diagnoses.len(),
        hospitals,
        t.elapsed().as_secs_f64()
    );

    let t_all = Instant::now();
    let t = Instant::now();
    let catalogue = build_catalogue(&history, &DipParameters::default())?;
    let core =
        catalogue.packets.iter().filter(|p| matches!(p.key, tiercare_domain::dip::PacketKey::Core { .. })).count();
    let build_s = t.elapsed().as_secs_f64();
    println!(
        "catalogue: {} packets ({} core, {} comprehensive) in {:.2} s",
        catalogue.packets.len(),
        core,
        catalogue.packets.len() - core,
        build_s
    );

    let t = Instant::now();
    let coefficient = |facility: &str| -> u32 {
        // three levels of hospital, as the facility-level coefficients of a region would be
        match facility.as_bytes()[facility.len() - 1] % 3 {
            0 => 10_500,
            1 => 10_000,
            _ => 9_200,
        }
    };
    let mut scores = Vec::with_capacity(year.len());
    let mut unscored = 0usize;
    let mut outliers = 0usize;
    let mut patients_paid: HashMap<String, i64> = HashMap::new();
    for s in &year {
        match score_stay(&catalogue, s, coefficient(&s.facility_id)) {
            Ok(sc) => {
                if sc.outlier != tiercare_domain::dip::Outlier::Normal {
                    outliers += 1;
                }
                // patients pay about a third of a stay in this synthetic region
                *patients_paid.entry(s.facility_id.clone()).or_default() += s.cost_fen / 3;
                scores.push(sc);
            }
            Err(_) => unscored += 1,
        }
    }
    let score_s = t.elapsed().as_secs_f64();
    println!(
        "scored: {} stays ({} outliers, {} fit no packet) in {:.2} s = {:.0} stays/s",
        scores.len(),
        outliers,
        unscored,
        score_s,
        year.len() as f64 / score_s
    );

    let t = Instant::now();
    let fund: i64 = year.iter().map(|s| s.cost_fen).sum::<i64>() / 2;
    let (value, payments) = settle(&scores, fund, 6_500, &patients_paid)?;
    let settle_s = t.elapsed().as_secs_f64();
    let paid: i64 = payments.iter().map(|p| p.payment_fen).sum();
    println!(
        "settled: point value {:.4} fen/point, {} hospitals, payments {} fen in {:.2} s",
        value.fen_per_point_e4() as f64 / 1e4,
        payments.len(),
        paid,
        settle_s
    );
    println!(
        "DIP catalogue build + year-end settlement, {} + {} stays: {:.1} s (target ≤ 60 s)",
        history.len(),
        year.len(),
        t_all.elapsed().as_secs_f64()
    );
    Ok(())
}
