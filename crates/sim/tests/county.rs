//! The synthetic county against published figures, within stated tolerances.

use tiercare_domain::encounter::EncounterClass;
use tiercare_domain::facility::Tier;
use tiercare_domain::identity::IdentityNumber;
use tiercare_sim::{AGE_GROUPS_PER_MILLE, Config, County};

fn county(residents: usize, seed: u64) -> County {
    County::generate(Config { seed, residents, year: 2025 })
}

#[test]
fn same_seed_same_county_other_seed_other_county() {
    let a = county(3_000, 7);
    let b = county(3_000, 7);
    assert_eq!(a.residents, b.residents);
    assert_eq!(a.facilities, b.facilities);
    assert_eq!(a.encounters().collect::<Vec<_>>(), b.encounters().collect::<Vec<_>>());
    let c = county(3_000, 8);
    assert_ne!(a.residents[0].patient.name, c.residents[0].patient.name);
}

#[test]
fn facilities_of_the_default_county() {
    let c = county(300_000 / 100, 1); // facility counts scale with residents: check the shape at 3,000
    let members: Vec<_> = c.community_facilities().collect();
    assert_eq!(members.iter().filter(|f| f.tier == Tier::County).count(), 3);
    assert_eq!(members.iter().filter(|f| f.tier == Tier::Township).count(), 20);
    assert!(members.iter().filter(|f| f.tier == Tier::Village).count() >= 20);
    let outside: Vec<_> = c.facilities.iter().filter(|f| f.community_id.is_none()).collect();
    assert_eq!(outside.len(), 3, "a city hospital and two out-of-province hospitals");
    assert_eq!(outside.iter().filter(|f| !f.region_code.starts_with("51")).count(), 2, "two outside Sichuan");
    // about 300 village clinics for 300,000 residents: one per thousand
    assert_eq!(
        County::generate(Config { residents: 50_000, ..Config::default() })
            .community_facilities()
            .filter(|f| f.tier == Tier::Village)
            .count(),
        50
    );
}

#[test]
fn every_identity_number_validates_and_is_unique() {
    let c = county(20_000, 3);
    let today = time::macros::date!(2026 - 01 - 01);
    let mut seen = std::collections::HashSet::new();
    for r in &c.residents {
        let n = r.patient.identity_number().expect("every resident has a number");
        let id = IdentityNumber::parse_for(n, r.patient.sex, today).expect("valid GB 11643");
        assert_eq!(id.birth_date(), r.patient.birth_date);
        assert!(seen.insert(n.to_owned()), "numbers are unique");
    }
}

#[test]
fn age_pyramid_and_prevalence_match_published_figures() {
    let c = county(60_000, 11);
    let on = time::macros::date!(2025 - 07 - 01);
    let n = c.residents.len() as f64;
    let share = |f: &dyn Fn(i32) -> bool| c.residents.iter().filter(|r| f(r.patient.age_on(on))).count() as f64 / n;
    // 2020 census: 0-14 17.95%, 15-59 63.35%, 60+ 18.70%, 65+ 13.50% (tolerance ±1.5 points)
    for (what, got, want) in [
        ("0-14", share(&|a| a < 15), 0.1795),
        ("60+", share(&|a| a >= 60), 0.1870),
        ("65+", share(&|a| a >= 65), 0.1350),
    ] {
        assert!((got - want).abs() < 0.015, "{what}: {got:.4} vs census {want}");
    }
    // the table itself sums to 1,000 per mille (±5 for rounding of the published groups)
    let total: u32 = AGE_GROUPS_PER_MILLE.iter().sum();
    assert!((995..=1010).contains(&total), "{total}");
    let males = c.residents.iter().filter(|r| r.patient.sex == tiercare_domain::identity::Sex::Male).count() as f64 / n;
    assert!((males - 0.5124).abs() < 0.01, "male share {males}");
    let adults: Vec<_> = c.residents.iter().filter(|r| r.patient.age_on(on) >= 18).collect();
    let htn = adults.iter().filter(|r| r.hypertension).count() as f64 / adults.len() as f64;
    let dm = adults.iter().filter(|r| r.diabetes).count() as f64 / adults.len() as f64;
    assert!((htn - 0.27).abs() < 0.02, "adult hypertension {htn:.4} vs about 27%");
    assert!((dm - 0.12).abs() < 0.015, "adult type-2 diabetes {dm:.4} vs about 12%");
    let households = c.residents.last().map(|r| r.household).unwrap_or(0) as f64;
    let size = n / households;
    assert!((2.4..=3.2).contains(&size), "mean household size {size:.2} (2020 census: 2.62)");
}

#[test]
fn a_year_of_care_gives_plausible_indicators() {
    let c = county(20_000, 5);
    let tier_of: std::collections::HashMap<_, _> =
        c.facilities.iter().map(|f| (f.id, (f.tier, f.community_id.is_some()))).collect();
    let (mut visits, mut grassroots, mut in_county, mut stays) = (0usize, 0usize, 0usize, 0usize);
    for e in c.encounters() {
        let (tier, member) = tier_of[&e.facility_id];
        match e.class {
            EncounterClass::Outpatient => {
                visits += 1;
                grassroots += usize::from(tier.is_grassroots());
                in_county += usize::from(member);
            }
            _ => stays += 1,
        }
        assert!(e.total_cost_fen > 0);
    }
    let n = c.residents.len() as f64;
    let per_person = visits as f64 / n;
    let grassroots_share = grassroots as f64 / visits as f64;
    let in_county_rate = in_county as f64 / visits as f64;
    let stays_per_person = stays as f64 / n;
    eprintln!(
        "visits/resident {per_person:.2}, grassroots {grassroots_share:.3}, in-county {in_county_rate:.3}, stays/resident {stays_per_person:.3}"
    );
    assert!((4.0..=7.5).contains(&per_person), "outpatient visits per resident {per_person:.2}");
    assert!((0.50..=0.60).contains(&grassroots_share), "grassroots share of visits {grassroots_share:.3}");
    assert!((0.85..=0.90).contains(&in_county_rate), "in-county visit rate {in_county_rate:.3}");
    assert!((0.10..=0.25).contains(&stays_per_person), "stays per resident {stays_per_person:.3}");
}
