//! Throughput of the pure settlement engine (issue 6: "adjudication alone ≥ 1,000,000
//! line-item bills/s per core").
//!
//! Builds ~100,000 varied claims (5–20 lines each, every scheme, region, setting, tier,
//! arrival and place, random accumulators) against the default policy set, adjudicates them
//! several times on this one thread, and prints bills/s (best and median of the rounds).
//!
//! Run: `cargo run --release -p tiercare-domain --example bench_adjudicate [claims] [rounds]`

use std::hint::black_box;
use std::time::Instant;

use tiercare_domain::facility::Tier;
use tiercare_domain::patient::Scheme;
use tiercare_domain::settlement::{
    Accumulators, Arrival, BillLine, Claim, DEFAULT_POLICY_TOML, ItemClass, Place, PolicySet, Setting, adjudicate,
};
use time::macros::date;

/// SplitMix64: a small, deterministic generator (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn claims(n: usize, rng: &mut Rng) -> Vec<Claim> {
    (0..n)
        .map(|_| {
            let setting = rng.pick(&[Setting::Inpatient, Setting::Outpatient]);
            let tier = rng.pick(&Tier::ALL);
            let arrival = match rng.below(4) {
                0 => Arrival::SelfReferred,
                1 => Arrival::UpwardReferral {
                    after_stay_at: if rng.below(2) == 0 { None } else { Some(rng.pick(&Tier::ALL)) },
                },
                2 => Arrival::DownwardReferral,
                _ => Arrival::Emergency,
            };
            let place = match rng.below(8) {
                0 => Place::FiledLongTerm,
                1 => Place::FiledTemporary,
                2 => Place::Unfiled,
                _ => Place::Home,
            };
            let max_line = if setting == Setting::Inpatient { 500_000 } else { 20_000 };
            let lines = (0..5 + rng.below(16))
                .map(|_| BillLine {
                    class: match rng.below(10) {
                        0..=5 => ItemClass::A,
                        6..=8 => ItemClass::B,
                        _ => ItemClass::SelfPay,
                    },
                    amount_fen: rng.below(max_line) as i64,
                })
                .collect();
            Claim {
                scheme: rng.pick(&[Scheme::Resident, Scheme::Employee]),
                insured_region: rng.pick(&["511600", "500100"]).to_owned(),
                setting,
                tier,
                arrival,
                place,
                date: date!(2026 - 01 - 01).saturating_add(time::Duration::days(rng.below(365) as i64)),
                lines,
                accumulators: Accumulators {
                    inpatient_fund_paid_fen: rng.below(31_000_000) as i64,
                    outpatient_fund_paid_fen: rng.below(45_000) as i64,
                    stay_deductible_paid_fen: if rng.below(3) == 0 { rng.below(120_000) as i64 } else { 0 },
                },
            }
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let rounds: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(7);

    let policies: PolicySet = toml::from_str(DEFAULT_POLICY_TOML)?;
    policies.validate()?;
    let claims = claims(n, &mut Rng(0x7ead_ca4e));
    let lines: usize = claims.iter().map(|c| c.lines.len()).sum();
    println!(
        "{n} claims, {lines} lines ({:.1} per bill), default policy set, 1 thread, {rounds} rounds",
        lines as f64 / n as f64
    );

    // Warm-up, and a checksum so the work cannot be optimised away.
    let mut fund_total: i64 = 0;
    for c in &claims {
        fund_total += adjudicate(&policies, c)?.fund_fen;
    }
    println!("fund paid over one round: {:.2} yuan", fund_total as f64 / 100.0);

    let mut rates = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let start = Instant::now();
        for c in &claims {
            black_box(adjudicate(&policies, black_box(c))?);
        }
        let secs = start.elapsed().as_secs_f64();
        let rate = n as f64 / secs;
        println!("round {round}: {secs:.3} s, {rate:.0} bills/s ({:.0} ns/bill)", 1e9 / rate);
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    let best = rates.last().copied().unwrap_or(0.0);
    let median = rates[rates.len() / 2];
    println!("adjudication alone (with explanations): best {best:.0} bills/s, median {median:.0} bills/s per core");
    println!(
        "target ≥ 1,000,000 line-item bills/s per core: {}",
        if median >= 1_000_000.0 { "met" } else { "NOT met" }
    );
    Ok(())
}
