//! Every generated encounter settled through the engine (issue 6): the splits add up, the
//! accumulators never pass the ceiling or the pool, the fund's share by tier is what the
//! policy table of domain.md M7/M8 gives, the same seed settles the same way.
//!
//! The policy set here is written from domain.md's default table (not from the shipped
//! file, which the sim crate does not parse): resident scheme, 广安市 511600, in force from
//! the generated year's 1 January; the employee scheme with rates 10 points higher.

use std::collections::HashMap;

use tiercare_domain::billing::{CatalogueSet, DEFAULT_CATALOGUE_TOML, price_bill};
use tiercare_domain::encounter::EncounterClass;
use tiercare_domain::facility::Tier;
use tiercare_domain::patient::Scheme;
use tiercare_domain::settlement::{Arrival, Place, Policy, PolicySet, Setting, TierRule};
use tiercare_sim::{Config, County, GeneratedSettlement, Rng, Settler, YearSettlements};
use time::macros::date;

const RESIDENT_CEILING: i64 = 30_000_000; // 300,000 yuan
const EMPLOYEE_CEILING: i64 = 50_000_000; // 500,000 yuan
const OUTPATIENT_CAP: i64 = 40_000; // 400 yuan

fn rule(tier: Tier, deductible_yuan: i64, rate_pct: u32) -> TierRule {
    TierRule { tier, deductible_fen: deductible_yuan * 100, rate_bp: rate_pct * 100 }
}

/// domain.md M7/M8's defaults; `plus` points on every rate (employee: 10, capped at 95 %).
fn policy(scheme: Scheme, plus: u32, ceiling: i64) -> Policy {
    let r = |pct: u32| (pct + plus).min(95);
    Policy {
        name: format!("test {}", scheme.as_str()),
        insured_region: "511600".into(),
        scheme,
        effective_from: date!(2025 - 01 - 01),
        effective_to: None,
        inpatient: vec![
            rule(Tier::Township, 200, r(90)),
            rule(Tier::County, 500, r(80)),
            rule(Tier::City, 800, r(70)),
            rule(Tier::Provincial, 1_200, r(60)),
            rule(Tier::National, 1_200, r(60)),
        ],
        outpatient: vec![rule(Tier::Village, 0, r(60)), rule(Tier::Township, 0, r(60)), rule(Tier::County, 0, r(50))],
        annual_ceiling_fen: ceiling,
        outpatient_cap_fen: OUTPATIENT_CAP,
        class_b_share_bp: 1_000,
        no_referral_reduction_bp: 1_000,
        no_referral_from_tier: Tier::County,
        filed_temporary_reduction_bp: 1_000,
        unfiled_reduction_bp: 2_000,
    }
}

fn policies() -> PolicySet {
    let set = PolicySet {
        policies: vec![policy(Scheme::Resident, 0, RESIDENT_CEILING), policy(Scheme::Employee, 10, EMPLOYEE_CEILING)],
    };
    set.validate().expect("a valid policy set");
    set
}

fn catalogues() -> CatalogueSet {
    CatalogueSet::load_toml(DEFAULT_CATALOGUE_TOML).expect("the default catalogues")
}

fn settle_all(c: &County, policies: &PolicySet, catalogues: &CatalogueSet) -> Vec<(usize, YearSettlements)> {
    let settler = Settler::new(c, policies, catalogues);
    (0..c.residents.len())
        .map(|i| {
            let (e, r) = c.year_of(i);
            (i, c.settle_year(i, &e, &r, &settler))
        })
        .collect()
}

#[test]
fn every_encounter_settles_and_every_split_adds_up() {
    let c = County::generate(Config { seed: 6, residents: 4_000, year: 2025 });
    let (policies, catalogues) = (policies(), catalogues());
    let all = settle_all(&c, &policies, &catalogues);
    let (mut encounters, mut stays_open, mut settled, mut reversed, mut not_enrolled) = (0, 0, 0, 0, 0);
    for (i, y) in &all {
        let (es, _) = c.year_of(*i);
        let cost: HashMap<_, _> = es.iter().map(|e| (e.id, (e.total_cost_fen, e.class))).collect();
        encounters += es.len();
        stays_open += y.in_hospital as usize;
        not_enrolled += y.not_enrolled as usize;
        assert!(y.refused.is_empty(), "resident {i}: refused {:?}", y.refused);
        for s in &y.settlements {
            let sp = &s.split;
            assert_eq!(sp.fund_fen + sp.patient_fen, sp.total_fen, "{}: fund + patient = total", s.txn_no);
            assert_eq!(
                sp.self_pay_fen + sp.class_b_share_fen + sp.deductible_fen + sp.coinsurance_fen + sp.above_ceiling_fen,
                sp.patient_fen,
                "{}: the patient's parts",
                s.txn_no
            );
            assert!(sp.fund_fen >= 0 && sp.patient_fen >= 0);
            let (fen, class) = cost[&s.encounter_id];
            assert_eq!(sp.total_fen, fen, "{}: the bill is the encounter's cost", s.txn_no);
            assert_eq!(s.claim.lines.iter().map(|l| l.amount_fen).sum::<i64>(), fen);
            // the bill as sent is kept with it: one priced line per claim line, quantity × price
            assert_eq!(s.items.len(), s.claim.lines.len(), "{}: one priced line per claim line", s.txn_no);
            for (item, line) in s.items.iter().zip(&s.claim.lines) {
                assert!(item.quantity >= 1 && !item.code.is_empty(), "{}: {item:?}", s.txn_no);
                assert_eq!(item.quantity * item.unit_price_fen, line.amount_fen, "{}: {item:?}", s.txn_no);
            }
            assert_eq!(s.claim.setting == Setting::Inpatient, class == EncounterClass::Inpatient);
            settled += usize::from(s.reversal.is_none());
            reversed += usize::from(s.reversal.is_some());
        }
    }
    eprintln!(
        "{encounters} encounters: {settled} settled, {reversed} reversed and settled again, {stays_open} stays open at the end of the year, {not_enrolled} not enrolled"
    );
    assert_eq!(settled + stays_open + not_enrolled, encounters, "every encounter is settled once or said why not");
    assert!(stays_open < encounters / 200, "few stays span the new year");
    assert!(reversed > 0 && reversed < settled / 100, "a few reversals: {reversed}");
}

/// In the order the settlements were made (reversed ones left out), each person's
/// accumulators are the running sums of the fund, and never pass the ceiling or the pool.
#[test]
fn accumulators_run_in_time_order_within_the_ceiling_and_the_pool() {
    let c = County::generate(Config { seed: 8, residents: 4_000, year: 2025 });
    let (policies, catalogues) = (policies(), catalogues());
    let mut capped = 0;
    for (i, y) in settle_all(&c, &policies, &catalogues) {
        let mut sums: HashMap<i32, (i64, i64)> = HashMap::new();
        let mut last = None;
        for s in y.settlements.iter().filter(|s| s.reversal.is_none()) {
            assert!(last <= Some(s.settled_at), "resident {i}: in time order");
            last = Some(s.settled_at);
            let sum = sums.entry(s.claim.date.year()).or_default();
            assert_eq!(
                (s.claim.accumulators.inpatient_fund_paid_fen, s.claim.accumulators.outpatient_fund_paid_fen),
                *sum,
                "{}: adjudicated against the running sums",
                s.txn_no
            );
            match s.claim.setting {
                Setting::Inpatient => sum.0 += s.split.fund_fen,
                Setting::Outpatient => sum.1 += s.split.fund_fen,
            }
            assert_eq!((s.split.after.inpatient_fund_paid_fen, s.split.after.outpatient_fund_paid_fen), *sum);
            let ceiling = if s.claim.scheme == Scheme::Employee { EMPLOYEE_CEILING } else { RESIDENT_CEILING };
            assert!(sum.0 <= ceiling, "{}: within the ceiling", s.txn_no);
            assert!(sum.1 <= OUTPATIENT_CAP, "{}: within the outpatient pool", s.txn_no);
            capped += usize::from(sum.1 == OUTPATIENT_CAP);
        }
    }
    assert!(capped > 0, "some people use up the outpatient pool (400 yuan)");
}

/// The fund's share of the money by tier and setting, against what the default table gives
/// for the bills drawn (self-pay and class-B parts, deductibles, rates, reductions):
///  - visits: 60 % (village, township) and 50 % (county) of the eligible part, but only
///    until the person's 400-yuan pool is used; at about six visits a year of 40–270 yuan
///    on average the pool runs out for many, so 35–60 % of the bill at village and township
///    and 30–50 % at the county; city and tertiary visits are not pooled: 0;
///  - township stays (2–5 thousand yuan, 200 deductible, 90 %): 65–85 %;
///  - county stays (5–15 thousand, 500, 80 %, −10 points unreferred): 55–78 %;
///  - city stays (10–30 thousand, 800, 70 %, −10 unreferred): 45–68 %;
///  - tertiary stays out of the pooling region (1,200, 60 %, −10 filed / −20 unfiled):
///    25–55 %.
#[test]
fn fund_share_by_tier_is_what_the_policy_table_gives() {
    let c = County::generate(Config { seed: 10, residents: 8_000, year: 2025 });
    let (policies, catalogues) = (policies(), catalogues());
    let mut sums: HashMap<(Setting, Tier), (i64, i64)> = HashMap::new();
    let mut arrivals: HashMap<&'static str, usize> = HashMap::new();
    let mut places: HashMap<&'static str, usize> = HashMap::new();
    for (_, y) in settle_all(&c, &policies, &catalogues) {
        for s in y.settlements.iter().filter(|s| s.reversal.is_none()) {
            let e = sums.entry((s.claim.setting, s.claim.tier)).or_default();
            e.0 += s.split.fund_fen;
            e.1 += s.split.total_fen;
            *arrivals
                .entry(match s.claim.arrival {
                    Arrival::SelfReferred => "self",
                    Arrival::UpwardReferral { .. } => "upward",
                    Arrival::DownwardReferral => "downward",
                    Arrival::Emergency => "emergency",
                })
                .or_default() += 1;
            *places
                .entry(match s.claim.place {
                    Place::Home => "home",
                    Place::FiledLongTerm => "filed_long_term",
                    Place::FiledTemporary => "filed_temporary",
                    Place::Unfiled => "unfiled",
                })
                .or_default() += 1;
        }
    }
    eprintln!("arrivals {arrivals:?}, places {places:?}");
    let share = |setting, tier| {
        let (fund, total) = sums.get(&(setting, tier)).copied().unwrap_or_default();
        assert!(total > 0, "{setting:?} at {tier:?} settled");
        fund as f64 / total as f64
    };
    use Setting::{Inpatient as In, Outpatient as Out};
    for (setting, tier, low, high) in [
        (Out, Tier::Village, 0.35, 0.60),
        (Out, Tier::Township, 0.35, 0.60),
        (Out, Tier::County, 0.30, 0.50),
        (Out, Tier::City, 0.0, 0.0),
        (In, Tier::Township, 0.65, 0.85),
        (In, Tier::County, 0.55, 0.78),
        (In, Tier::City, 0.45, 0.68),
        (In, Tier::Provincial, 0.25, 0.55),
        (In, Tier::National, 0.25, 0.55),
    ] {
        let s = share(setting, tier);
        eprintln!("{setting:?} {tier:?}: fund share {s:.3}");
        assert!((low..=high).contains(&s), "{setting:?} at {tier:?}: fund share {s:.3} not in {low}–{high}");
    }
    for kind in ["self", "upward", "downward", "emergency"] {
        assert!(arrivals.get(kind).copied().unwrap_or(0) > 0, "some settlements arrive {kind}");
    }
    for kind in ["home", "filed_temporary", "unfiled"] {
        assert!(places.get(kind).copied().unwrap_or(0) > 0, "some settlements are {kind}");
    }
}

#[test]
fn same_seed_same_settlements() {
    let (policies, catalogues) = (policies(), catalogues());
    let flat = |seed| -> Vec<GeneratedSettlement> {
        let c = County::generate(Config { seed, residents: 1_500, year: 2025 });
        settle_all(&c, &policies, &catalogues).into_iter().flat_map(|(_, y)| y.settlements).collect()
    };
    let a = flat(21);
    assert_eq!(a, flat(21), "same seed, same settlements");
    assert_ne!(a, flat(22));
    // one resident alone settles as in the whole county
    let c = County::generate(Config { seed: 21, residents: 1_500, year: 2025 });
    let settler = Settler::new(&c, &policies, &catalogues);
    let (e, r) = c.year_of(700);
    let alone = c.settle_year(700, &e, &r, &settler).settlements;
    let txn = format!("SIM2025-{:07}-", 700);
    assert_eq!(alone, a.iter().filter(|s| s.txn_no.starts_with(&txn)).cloned().collect::<Vec<_>>());
}

/// The bills the generator draws are valid at the desk: every code in the catalogue of the
/// place of treatment, every price within its limit, the total the encounter's cost.
#[test]
fn bills_price_against_the_catalogue_of_the_place_of_treatment() {
    let c = County::generate(Config { seed: 12, residents: 2_000, year: 2025 });
    let (policies, catalogues) = (policies(), catalogues());
    let settler = Settler::new(&c, &policies, &catalogues);
    let region: HashMap<_, _> = c.facilities.iter().map(|f| (f.id, f.region_code.clone())).collect();
    let mut rng = Rng::new(1);
    let mut lines = 0usize;
    let mut bills = 0usize;
    for e in c.encounters() {
        let bill = settler.bill(&c, &e, &mut rng).expect("every facility has a catalogue");
        let catalogue = catalogues.for_facility_region(&region[&e.facility_id]).expect("a catalogue");
        let priced = price_bill(catalogue, &bill).unwrap_or_else(|err| panic!("a valid bill: {err:?}: {bill:?}"));
        assert_eq!(priced.iter().map(|(_, l)| l.amount_fen).sum::<i64>(), e.total_cost_fen);
        lines += bill.len();
        bills += 1;
    }
    let per_bill = lines as f64 / bills as f64;
    assert!((2.0..=12.0).contains(&per_bill), "{per_bill:.1} lines a bill");
}
