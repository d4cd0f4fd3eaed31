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
    assert_eq!(outside.len(), 3, "a city hospital and two tertiary hospitals");
    // 成都 is in 四川 like 岳池 (out of the county, same province); 重庆 is another province
    assert_eq!(outside.iter().filter(|f| !f.region_code.starts_with("51")).count(), 1, "one outside Sichuan");
    assert_eq!(outside.iter().filter(|f| f.region_code.starts_with("5101")).count(), 1, "one in Chengdu");
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

// --- facility locations and referrals (issue 4)

#[test]
fn every_facility_has_a_plausible_location() {
    let c = county(3_000, 2);
    let seat = tiercare_sim::COUNTY_SEAT;
    let at = |f: &tiercare_domain::facility::Facility| f.location.expect("every generated facility has a location");
    let by_code = |code: &str| c.facilities.iter().find(|f| f.code == code).expect("facility");
    for f in &c.facilities {
        let km = at(f).distance_km(seat);
        match f.tier {
            Tier::County => assert!(km < 3.0, "{} is {km:.1} km from the seat", f.name),
            Tier::Township => assert!(km <= 25.5, "{} is {km:.1} km from the seat", f.name),
            _ => {}
        }
    }
    // a village clinic is within ~5 km of its township's centre (same town name)
    for v in c.facilities.iter().filter(|f| f.tier == Tier::Village) {
        let town = v.name.split('镇').next().expect("岳池县X镇…");
        let t = c
            .facilities
            .iter()
            .find(|f| f.tier == Tier::Township && f.name.starts_with(&format!("{town}镇")))
            .expect("the village's township");
        let km = at(v).distance_km(at(t));
        assert!(km <= 5.1, "{} is {km:.1} km from {}", v.name, t.name);
    }
    // hand-computed from the coordinates: 广安 ≈ 9 km south and 18.5 km east of the seat,
    // 重庆 ≈ 108 km south, 成都 ≈ 228 km west
    let city = at(by_code("H51160200001")).distance_km(seat);
    let chongqing = at(by_code("H50010300001")).distance_km(seat);
    let chengdu = at(by_code("H51010700001")).distance_km(seat);
    assert!((17.0..=24.0).contains(&city), "city hospital {city:.1} km");
    assert!((95.0..=125.0).contains(&chongqing), "Chongqing {chongqing:.1} km");
    assert!((215.0..=245.0).contains(&chengdu), "Chengdu {chengdu:.1} km");
    // the county people's hospital has the chest-pain, stroke and trauma centres, the
    // maternal and child hospital the critical maternal and newborn ones, the tertiary all five
    use tiercare_domain::facility::EmergencyCentre as E;
    assert_eq!(c.county_hospital().capabilities.emergency_centres, vec![E::ChestPain, E::Stroke, E::Trauma]);
    assert_eq!(by_code("H51162100003").capabilities.emergency_centres, vec![E::CriticalMaternal, E::CriticalNewborn]);
    for code in ["H51160200001", "H50010300001", "H51010700001"] {
        assert_eq!(by_code(code).capabilities.emergency_centres, E::ALL.to_vec(), "{code}");
    }
}

fn all_referrals(
    c: &County,
) -> Vec<(usize, Vec<tiercare_domain::encounter::Encounter>, Vec<tiercare_sim::GeneratedReferral>)> {
    (0..c.residents.len())
        .map(|i| {
            let (e, r) = c.year_of(i);
            (i, e, r)
        })
        .collect()
}

#[test]
fn same_seed_same_referrals_in_any_order() {
    let a = county(3_000, 7);
    let b = county(3_000, 7);
    let forward: Vec<_> = (0..a.residents.len()).flat_map(|i| a.referrals_of(i)).collect();
    let mut backward: Vec<_> = (0..b.residents.len()).rev().map(|i| b.referrals_of(i)).collect();
    backward.reverse();
    assert_eq!(forward, backward.into_iter().flatten().collect::<Vec<_>>());
    assert!(!forward.is_empty());
    // encounters_of and year_of agree (the visits referrals start from are in both)
    for i in 0..200 {
        assert_eq!(a.encounters_of(i), a.year_of(i).0);
    }
    let c = county(3_000, 8);
    let other: Vec<_> = (0..c.residents.len()).flat_map(|i| c.referrals_of(i)).collect();
    assert_ne!(forward.first().map(|r| r.referral.id), other.first().map(|r| r.referral.id));
}

#[test]
fn every_referral_history_is_consistent() {
    use tiercare_domain::referral::ReferralState;
    let c = county(20_000, 13);
    let today = c.today();
    let patients: std::collections::HashSet<_> = c.residents.iter().map(|r| r.patient.id).collect();
    let facilities: std::collections::HashSet<_> = c.facilities.iter().map(|f| f.id).collect();
    let mut ids = std::collections::HashSet::new();
    let mut n = 0;
    for (i, encounters, referrals) in all_referrals(&c) {
        let encounter_ids: std::collections::HashSet<_> = encounters.iter().map(|e| e.id).collect();
        for g in referrals {
            n += 1;
            let r = &g.referral;
            assert!(ids.insert(r.id), "referral ids are unique");
            assert_eq!(r.patient_id, c.residents[i].patient.id);
            assert!(patients.contains(&r.patient_id) && facilities.contains(&r.from_facility_id));
            assert!(facilities.contains(&r.to_facility_id));
            assert!(r.encounter_ids.iter().all(|e| encounter_ids.contains(e)), "links name the resident's encounters");
            assert_eq!(g.events.len() as i64, r.version, "one event per version");
            let mut previous: Option<ReferralState> = None;
            for (k, e) in g.events.iter().enumerate() {
                assert_eq!(e.version, k as i64 + 1, "versions 1..n");
                assert_eq!(e.referral_id, r.id);
                assert_eq!(e.from_state, previous, "each step starts where the last ended");
                assert!(e.at < today, "nothing happens after the county's today");
                if k > 0 {
                    assert!(e.at >= g.events[k - 1].at, "history in time order");
                }
                previous = Some(e.to_state);
            }
            assert_eq!(g.events[0].action, "request");
            assert_eq!(previous, Some(r.state), "the last event ends in the referral's state");
            for t in &g.follow_ups {
                assert_eq!((t.referral_id, t.patient_id, t.facility_id), (r.id, r.patient_id, r.to_facility_id));
                assert_eq!(t.done_at.is_some(), t.done_by.is_some());
                assert!(t.done_at.is_none_or(|d| d < today));
            }
            for f in &g.filings {
                assert_eq!((f.referral_id, f.patient_id), (Some(r.id), r.patient_id));
            }
        }
    }
    assert!(n > 500, "{n} referrals for 20,000 residents");
}

/// Where a facility is, for the rates: a county or city hospital ("in the city"), a
/// hospital outside the city, or grassroots.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Grassroots,
    InCity,
    Outside,
}

fn kinds(c: &County) -> std::collections::HashMap<uuid::Uuid, Kind> {
    c.facilities
        .iter()
        .map(|f| {
            let k = if f.tier.is_grassroots() {
                Kind::Grassroots
            } else if f.region_code.starts_with("5116") {
                Kind::InCity
            } else {
                Kind::Outside
            };
            (f.id, k)
        })
        .collect()
}

#[test]
fn referral_rates_match_the_stated_assumptions() {
    use tiercare_domain::referral::{Direction, ReferralState};
    use tiercare_sim::referrals::{DOWNWARD_SHARE, OUTSIDE_SHARE, UPWARD_SHARE};
    let c = county(40_000, 5);
    let kind = kinds(&c);
    let today = c.today();
    let (mut in_city_stays, mut ended_stays, mut outside_stays, mut stroke_stays) = (0usize, 0usize, 0usize, 0usize);
    let (mut green, mut upward_in, mut upward_out, mut downward, mut stroke_green) = (0usize, 0usize, 0, 0, 0usize);
    let (mut completed, mut ended_otherwise, mut total) = (0usize, 0usize, 0usize);
    for (_, encounters, referrals) in all_referrals(&c) {
        for e in encounters.iter().filter(|e| e.class == EncounterClass::Inpatient) {
            match kind[&e.facility_id] {
                Kind::InCity => {
                    in_city_stays += 1;
                    ended_stays += usize::from(e.ended_at.is_some_and(|t| t <= today - time::Duration::days(1)));
                    stroke_stays += usize::from(e.diagnoses[0] == "I63.900");
                }
                Kind::Outside => outside_stays += 1,
                Kind::Grassroots => {}
            }
        }
        for g in &referrals {
            let r = &g.referral;
            total += 1;
            match r.state {
                ReferralState::Completed => completed += 1,
                ReferralState::Rejected | ReferralState::Cancelled | ReferralState::Expired => ended_otherwise += 1,
                _ => {}
            }
            if r.green_channel.is_some() {
                green += 1;
                stroke_green += usize::from(r.diagnoses[0] == "I63.900");
            } else if r.direction == Direction::Downward {
                downward += 1;
            } else if kind[&r.to_facility_id] == Kind::Outside {
                upward_out += 1;
            } else {
                upward_in += 1;
            }
        }
    }
    let share = |a: usize, b: usize| a as f64 / b.max(1) as f64;
    eprintln!(
        "{total} referrals: {upward_in} upward in the city, {upward_out} out, {green} green, {downward} downward; \
         {in_city_stays} in-city stays, {outside_stays} outside"
    );
    // each stay not taken by the green channel is referred up with the stated probability
    // (binomial standard deviation about 0.01 here: tolerance 0.03)
    let up = share(upward_in, in_city_stays - green);
    assert!((up - UPWARD_SHARE).abs() < 0.03, "upward share {up:.3} vs {UPWARD_SHARE}");
    let out = share(upward_out, outside_stays);
    assert!((out - OUTSIDE_SHARE).abs() < 0.06, "outside share {out:.3} vs {OUTSIDE_SHARE}");
    let down = share(downward, ended_stays);
    assert!((down - DOWNWARD_SHARE).abs() < 0.02, "downward share {down:.3} vs {DOWNWARD_SHARE}");
    let stroke = share(stroke_green, stroke_stays);
    let want = tiercare_sim::referrals::GREEN_SHARES[0].2;
    assert!((stroke - want).abs() < 0.08, "green-channel share of stroke stays {stroke:.3} vs {want}");
    // most complete; upward 7% and downward 6% end otherwise (rejected, cancelled, expired)
    let done = share(completed, total);
    let other = share(ended_otherwise, total);
    assert!(done > 0.85, "completed {done:.3}");
    assert!((0.03..=0.09).contains(&other), "rejected, cancelled or expired {other:.3}");
}

#[test]
fn green_channel_referrals_go_to_a_facility_with_the_centre_in_minutes() {
    use tiercare_domain::referral::{ReferralState, Timepoint, Urgency, intervals};
    let c = county(40_000, 17);
    let by_id: std::collections::HashMap<_, _> = c.facilities.iter().map(|f| (f.id, f)).collect();
    let (mut n, mut escalated, mut needles) = (0usize, 0usize, Vec::new());
    for (_, _, referrals) in all_referrals(&c) {
        for g in referrals.iter().filter(|g| g.referral.green_channel.is_some()) {
            n += 1;
            let r = &g.referral;
            let centre = r.green_channel.expect("green");
            assert_eq!(r.urgency, Urgency::Emergency);
            let to = by_id[&r.to_facility_id];
            assert!(to.capabilities.emergency_centres.contains(&centre), "{} lacks {centre:?}", to.name);
            let first = g.events[0].to_facility_id.expect("the request names the receiver");
            assert!(by_id[&first].capabilities.emergency_centres.contains(&centre));
            let ack = r.acknowledged_at.expect("acknowledged");
            if r.escalations > 0 {
                escalated += 1;
                let e = g.events.iter().find(|e| e.action == "escalate").expect("escalate event");
                assert!(e.at >= r.requested_at + time::Duration::minutes(10), "escalates after the 10 minutes");
                assert_eq!(e.actor_user_id, None, "the sweeper escalates");
                assert_ne!(first, r.to_facility_id);
            } else {
                assert!(ack - r.requested_at < time::Duration::minutes(10), "acknowledged within 10 minutes");
            }
            let at = |t: Timepoint| r.timepoints.iter().find(|(x, _)| *x == t).map(|(_, a)| *a);
            let fmc = at(Timepoint::FirstMedicalContact).expect("first medical contact");
            assert!(fmc <= r.requested_at);
            if r.state == ReferralState::Completed || r.state == ReferralState::Arrived {
                let door = at(Timepoint::Door).expect("door");
                let departed = at(Timepoint::Departed).expect("departed");
                assert!(fmc < departed && departed < door);
                let i = intervals(r);
                if centre == tiercare_domain::facility::EmergencyCentre::Stroke
                    && to.tier == Tier::County
                    && let Some(m) = i.door_to_needle
                {
                    needles.push(m);
                }
            }
        }
    }
    needles.sort();
    let median = needles.get(needles.len() / 2).copied().unwrap_or(0);
    eprintln!(
        "{n} green-channel referrals, {escalated} escalated; county stroke door-to-needle median {median} min of {}",
        needles.len()
    );
    assert!(n > 100 && escalated > 0);
    assert!((45..=60).contains(&median), "door-to-needle median {median} min (county hospitals: 45-60)");
}

#[test]
fn downward_referrals_carry_plans_and_make_follow_up_tasks() {
    use tiercare_domain::referral::{Direction, china_date};
    let c = county(40_000, 19);
    let kind = kinds(&c);
    let today = china_date(c.today());
    let (mut n, mut due, mut done) = (0usize, 0usize, 0usize);
    for (_, _, referrals) in all_referrals(&c) {
        for g in referrals.iter().filter(|g| g.referral.direction == Direction::Downward) {
            n += 1;
            let r = &g.referral;
            assert!(r.discharge_summary.as_deref().is_some_and(|s| !s.is_empty()), "discharge summary");
            assert!(!r.follow_up_plan.is_empty(), "follow-up plan");
            assert_eq!(kind[&r.from_facility_id], Kind::InCity);
            assert_eq!(kind[&r.to_facility_id], Kind::Grassroots);
            match g.events.iter().find(|e| e.action == "accept") {
                Some(accept) => {
                    // one task per step of the plan, due that many days after acceptance
                    assert_eq!(g.follow_ups.len(), r.follow_up_plan.len());
                    for (t, p) in g.follow_ups.iter().zip(&r.follow_up_plan) {
                        assert_eq!(t.what, p.what);
                        assert_eq!(t.due_date, china_date(accept.at) + time::Duration::days(i64::from(p.due_in_days)));
                        if t.due_date >= today {
                            assert!(t.done_at.is_none(), "a task not yet due is open");
                        } else {
                            due += 1;
                            done += usize::from(t.done_at.is_some());
                        }
                    }
                }
                None => assert!(g.follow_ups.is_empty(), "no tasks before acceptance"),
            }
        }
    }
    let share = done as f64 / due.max(1) as f64;
    eprintln!("{n} downward referrals, {due} tasks due, {share:.3} done");
    assert!(n > 100);
    assert!((share - tiercare_sim::referrals::FOLLOW_UP_DONE).abs() < 0.05, "done share {share:.3}");
}

#[test]
fn transfers_out_of_the_insured_region_are_filed() {
    use tiercare_domain::filing::FilingCategory;
    use tiercare_domain::referral::{Reach, china_date};
    let c = county(40_000, 23);
    let code: std::collections::HashMap<_, _> = c.facilities.iter().map(|f| (f.id, f.code.as_str())).collect();
    let (mut chongqing, mut chengdu) = (0usize, 0usize);
    for (_, _, referrals) in all_referrals(&c) {
        for g in &referrals {
            let r = &g.referral;
            let accept = g.events.iter().find(|e| e.action == "accept");
            match code[&r.to_facility_id] {
                "H50010300001" => {
                    chongqing += 1;
                    assert_eq!(r.reach, Reach::OutOfProvince);
                }
                "H51010700001" => {
                    chengdu += 1;
                    assert_eq!(r.reach, Reach::OutOfCounty, "Chengdu is in Sichuan");
                }
                // reach is counted from the sender's county: a downward referral from the city
                // hospital back to the township also leaves the sender's county
                _ if [r.from_facility_id, r.to_facility_id].iter().any(|f| code[f] == "H51160200001") => {
                    assert_eq!(r.reach, Reach::OutOfCounty);
                    assert!(g.filings.is_empty(), "the city hospital is in the county's insurance region");
                    continue;
                }
                _ => {
                    assert_eq!(r.reach, Reach::InCounty);
                    assert!(g.filings.is_empty());
                    continue;
                }
            }
            // out of the insured region: accepting files the patient (temporary, referred)
            match accept {
                Some(a) => {
                    assert_eq!(g.filings.len(), 1);
                    let f = &g.filings[0];
                    assert_eq!(f.category, FilingCategory::Referred);
                    assert_eq!(f.insured_region, "511621");
                    assert_eq!(
                        f.filed_region,
                        if code[&r.to_facility_id] == "H50010300001" { "500103" } else { "510107" }
                    );
                    assert_eq!(f.valid_from, china_date(a.at));
                }
                None => assert!(g.filings.is_empty()),
            }
        }
    }
    eprintln!("{chongqing} to Chongqing, {chengdu} to Chengdu");
    assert!(chongqing > 20 && chengdu > 20);
}

/// The demo's referrals in flight: made through the domain relative to the clock, one of
/// each worklist state the demo should show (the scenario table in live.rs, counted by hand).
#[test]
fn live_referrals_fill_the_worklists_of_today() {
    use tiercare_domain::referral::{Direction, ReferralState};
    let county = county(20_000, 7);
    let now = time::macros::datetime!(2026-11-23 02:00 UTC);
    let live = tiercare_sim::live_referrals(&county, now);
    assert_eq!(live.len(), 11);
    let count = |s: ReferralState| live.iter().filter(|g| g.referral.state == s).count();
    assert_eq!(
        [
            count(ReferralState::Requested),
            count(ReferralState::Accepted),
            count(ReferralState::Scheduled),
            count(ReferralState::Arrived)
        ],
        [5, 3, 2, 1]
    );
    assert_eq!(live.iter().filter(|g| g.referral.direction == Direction::Downward).count(), 2);
    // the stroke green channel was requested 3 minutes ago: 7 minutes left to acknowledge
    let green: Vec<_> = live.iter().filter(|g| g.referral.green_channel.is_some()).collect();
    assert_eq!(green.len(), 1);
    assert_eq!(green[0].referral.due_at, Some(now + time::Duration::minutes(7)));
    // the accepted downward referral made its three follow-up tasks; Chongqing made a filing
    assert_eq!(live.iter().map(|g| g.follow_ups.len()).sum::<usize>(), 3);
    assert_eq!(live.iter().map(|g| g.filings.len()).sum::<usize>(), 1);
    for g in &live {
        assert_eq!(g.events.len() as i64, g.referral.version);
        assert!(g.events.iter().all(|e| e.at <= now));
    }
}
