//! A resident's year of care: outpatient visits and inpatient stays by tier, with
//! ICD-10 / ICD-9-CM-3 codes and costs in fen.
//!
//! The rates are set so that the county's indicators come out plausible (domain.md M14):
//! about 5–6 outpatient visits and 0.15–0.2 stays per resident a year; grassroots share of
//! visits around 55%; in-county visit rate around 88%.
//!
//! Emergencies the county hospital's centres treat (stroke, myocardial infarction, hip
//! fracture) go to the county people's hospital when they stay in the county; births to the
//! maternal and child hospital. The year's referrals (see [`crate::referrals`]) are drawn
//! from these stays and may add the visit a referral starts from.

use tiercare_domain::encounter::{Encounter, EncounterClass, NewEncounter};
use tiercare_domain::identity::Sex;
use time::{Date, Duration, Month, OffsetDateTime, Time};

use crate::referrals::{self, GeneratedReferral};
use crate::{County, Rng, china, uuid_v7, year_start_ms};

/// Where a visit goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    Village,
    Township,
    County,
    City,
    Outside,
}

/// Chronic follow-ups stay near home; other visits spread over the tiers.
const CHRONIC_WEIGHTS: [f64; 5] = [50.0, 40.0, 10.0, 0.0, 0.0];
const GENERAL_WEIGHTS: [f64; 5] = [20.0, 26.0, 39.0, 10.0, 5.0];
const STAY_WEIGHTS: [f64; 5] = [0.0, 25.0, 55.0, 13.0, 7.0];
const PLACES: [Place; 5] = [Place::Village, Place::Township, Place::County, Place::City, Place::Outside];

const CHILD_COMPLAINTS: [&str; 4] = ["J06.900", "J20.900", "A09.900", "H10.900"];
const ADULT_COMPLAINTS: [&str; 9] =
    ["J06.900", "K29.700", "M54.500", "R51.x00", "N39.000", "H10.900", "L30.900", "K59.000", "J20.900"];
const OLD_COMPLAINTS: [&str; 4] = ["M17.900", "J44.100", "I25.100", "K29.700"];

/// (diagnosis, procedure if any, lowest tier that treats it)
const STAYS: [(&str, Option<&str>, Place); 11] = [
    ("J18.900", None, Place::Township),
    ("I63.900", Some("99.2900"), Place::County),
    ("I21.900", None, Place::County),
    ("I25.100", Some("36.0600"), Place::City),
    ("K80.200", Some("51.2300"), Place::County),
    ("S72.000", Some("79.3500"), Place::County),
    ("J44.100", None, Place::Township),
    ("I50.900", None, Place::County),
    ("K35.800", Some("47.0100"), Place::County),
    ("M17.900", Some("81.5400"), Place::City),
    ("C34.900", Some("88.3800"), Place::Outside),
];

fn cost(rng: &mut Rng, low_yuan: u64, high_yuan: u64) -> i64 {
    // skewed towards the low end, like real bills
    let u = rng.unit();
    let yuan = low_yuan as f64 + (high_yuan - low_yuan) as f64 * u * u;
    (yuan * 100.0).round() as i64
}

/// A time in clinic hours (08:00–17:00 China time) on `date`.
pub(crate) fn at(date: Date, rng: &mut Rng) -> OffsetDateTime {
    let minutes = 8 * 60 + rng.below(9 * 60);
    let t = Time::from_hms((minutes / 60) as u8, (minutes % 60) as u8, 0).unwrap_or(Time::MIDNIGHT);
    date.with_time(t).assume_offset(china())
}

/// Diagnoses of stays that the county people's hospital's emergency centres take (chest
/// pain, stroke, trauma).
pub(crate) const CENTRE_STAYS: [&str; 3] = ["I21.900", "I63.900", "S72.000"];

/// Resident `i`'s year: encounters in time order, and referrals.
pub(crate) fn year_of_care(county: &County, i: usize) -> (Vec<Encounter>, Vec<GeneratedReferral>) {
    let r = &county.residents[i];
    let mut rng = Rng::new(county.config.seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let year = county.config.year;
    let start = Date::from_calendar_date(year, Month::January, 1).unwrap_or(Date::MIN);
    let now = Date::from_calendar_date(year + 1, Month::January, 1).unwrap_or(Date::MAX).midnight().assume_utc();
    let age = r.patient.age_on(start);
    let chronic = r.hypertension || r.diabetes;
    let mut visits: Vec<(Date, bool)> = Vec::new();
    let general = 3.2 + if age >= 60 { 2.0 } else { 0.0 } + if age < 6 { 2.5 } else { 0.0 };
    for _ in 0..rng.poisson(general) {
        visits.push((start + Duration::days(rng.below(365) as i64), false));
    }
    // chronic follow-up: at least four a year (basic public health service specification)
    if chronic {
        for q in 0..4 {
            visits.push((start + Duration::days(q * 91 + rng.below(60) as i64), true));
        }
    }
    let female = r.patient.sex == Sex::Female;
    let stay_rate = 0.11 + if age >= 65 { 0.18 } else { 0.0 } + if chronic { 0.04 } else { 0.0 };
    let births = female && (20..=38).contains(&age) && rng.chance(0.06);
    let mut out = Vec::new();
    let mut seq = 0u64;
    let mut push = |new: NewEncounter, rng: &mut Rng| {
        seq += 1;
        let ms = year_start_ms(year) + (i as u64) * 64 + seq;
        let e = new
            .validate(uuid_v7(ms, rng), r.patient.region_key.clone(), now)
            .expect("generated encounters follow the encounter rules");
        out.push(e);
    };
    for (date, is_chronic) in visits {
        let place = PLACES[rng.weighted(if is_chronic { &CHRONIC_WEIGHTS } else { &GENERAL_WEIGHTS })];
        let facility = facility_for(county, r, place, &mut rng);
        let diagnosis = if is_chronic {
            if r.hypertension && (!r.diabetes || rng.chance(0.5)) { "I10.x00" } else { "E11.900" }
        } else if age < 14 {
            rng.pick(&CHILD_COMPLAINTS)
        } else if age >= 60 && rng.chance(0.4) {
            rng.pick(&OLD_COMPLAINTS)
        } else {
            rng.pick(&ADULT_COMPLAINTS)
        };
        let fen = match place {
            Place::Village => cost(&mut rng, 20, 80),
            Place::Township => cost(&mut rng, 60, 200),
            Place::County => cost(&mut rng, 150, 500),
            Place::City => cost(&mut rng, 250, 800),
            Place::Outside => cost(&mut rng, 400, 1_500),
        };
        let started = at(date, &mut rng);
        let department = match county.facilities[facility].tier {
            tiercare_domain::facility::Tier::Village => "全科",
            tiercare_domain::facility::Tier::Township => "全科医疗科",
            _ if age < 14 => "儿科",
            _ => "内科",
        };
        push(
            NewEncounter {
                patient_id: r.patient.id,
                facility_id: county.facilities[facility].id,
                department: Some(department.into()),
                practitioner_id: None,
                class: EncounterClass::Outpatient,
                started_at: started,
                ended_at: Some(started + Duration::minutes(15 + rng.below(45) as i64)),
                diagnoses: vec![diagnosis.into()],
                procedures: vec![],
                total_cost_fen: fen,
            },
            &mut rng,
        );
    }
    let n_stays = rng.poisson(stay_rate) + u32::from(births);
    for k in 0..n_stays {
        let (dx, px, lowest) = if births && k == 0 {
            if rng.chance(0.35) {
                ("O82.000", Some("74.1x00"), Place::Township)
            } else {
                ("O80.000", None, Place::Township)
            }
        } else {
            *rng.pick(&STAYS)
        };
        let mut place = PLACES[rng.weighted(&STAY_WEIGHTS)];
        if rank(place) < rank(lowest) {
            place = lowest;
        }
        let facility = if dx.starts_with('O') && place == Place::County {
            county.county_hospitals[2]
        } else if place == Place::County && CENTRE_STAYS.contains(&dx) {
            county.county_hospitals[0]
        } else {
            facility_for(county, r, place, &mut rng)
        };
        let los = 3 + rng.below(10) as i64;
        let date = start + Duration::days(rng.below(355) as i64);
        let started = at(date, &mut rng);
        let fen = match place {
            Place::Village | Place::Township => cost(&mut rng, 2_000, 5_000),
            Place::County => cost(&mut rng, 5_000, 15_000),
            Place::City => cost(&mut rng, 10_000, 30_000),
            Place::Outside => cost(&mut rng, 20_000, 60_000),
        };
        let mut diagnoses = vec![dx.to_owned()];
        if r.hypertension {
            diagnoses.push("I10.x00".into());
        }
        if r.diabetes {
            diagnoses.push("E11.900".into());
        }
        push(
            NewEncounter {
                patient_id: r.patient.id,
                facility_id: county.facilities[facility].id,
                department: None,
                practitioner_id: None,
                class: EncounterClass::Inpatient,
                started_at: started,
                ended_at: Some((started + Duration::days(los)).min(now)),
                diagnoses,
                procedures: px.map(|p| vec![p.to_owned()]).unwrap_or_default(),
                total_cost_fen: fen,
            },
            &mut rng,
        );
    }
    let referrals = referrals::draw(county, i, &mut out, now);
    out.sort_by_key(|e| e.started_at);
    (out, referrals)
}

fn rank(p: Place) -> u8 {
    match p {
        Place::Village => 0,
        Place::Township => 1,
        Place::County => 2,
        Place::City => 3,
        Place::Outside => 4,
    }
}

fn facility_for(county: &County, r: &crate::Resident, place: Place, rng: &mut Rng) -> usize {
    match place {
        Place::Village => r.village,
        Place::Township => r.township,
        Place::County => county.county_hospitals[rng.weighted(&[70.0, 20.0, 10.0])],
        Place::City => county.city_hospital,
        Place::Outside => county.outside[rng.below(2) as usize],
    }
}

#[cfg(test)]
mod tests {
    use tiercare_domain::facility::Tier;

    use super::*;
    use crate::Config;

    /// issue 8: the demo county's indicators look like a real county's (domain.md M14):
    /// in-county visit rate near 90% and grassroots visit share 50–65%, counted over the
    /// visits (outpatient and emergency) of 3,000 residents' years, the way
    /// `indicators-default.toml` defines them (in county: a facility of the community).
    #[test]
    fn the_demo_county_has_plausible_indicators() {
        let county = County::generate(Config { residents: 3_000, ..Default::default() });
        let (mut visits, mut in_county, mut grassroots) = (0u32, 0u32, 0u32);
        for i in 0..county.residents.len() {
            for e in year_of_care(&county, i).0.iter().filter(|e| e.class != EncounterClass::Inpatient) {
                let f = county.facilities.iter().find(|f| f.id == e.facility_id).expect("a generated facility");
                visits += 1;
                if f.community_id.is_some() {
                    in_county += 1;
                    if matches!(f.tier, Tier::Village | Tier::Township) {
                        grassroots += 1;
                    }
                }
            }
        }
        let rate = f64::from(in_county) / f64::from(visits);
        let share = f64::from(grassroots) / f64::from(in_county);
        eprintln!("in-county visit rate {rate:.3}, grassroots visit share {share:.3} ({visits} visits)");
        assert!((0.86..=0.94).contains(&rate), "in-county visit rate {rate:.3} of {visits} visits");
        assert!((0.50..=0.65).contains(&share), "grassroots visit share {share:.3}");
    }
}
