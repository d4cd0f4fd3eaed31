//! Every synthetic encounter settled through the engine (issue 6).
//!
//! For each encounter of a resident's year a bill is drawn from the catalogue of the place
//! of treatment ([`CatalogueSet::for_facility_region`]): a consultation, bed days and
//! nursing for a stay, tests, the procedure's own items, drugs for the diagnosis, some
//! class-B items and now and then a self-pay one; its total is the encounter's
//! `total_cost_fen` exactly. The place (home, filed, unfiled) comes from the facility's
//! region and the resident's filings, the arrival from the resident's referrals
//! ([`derive_arrival`]: upward, downward, green channel = emergency, else self-referred),
//! and the bill is adjudicated by [`settlement::adjudicate`] against the resident's
//! accumulators of the year, kept here in the order the settlements are made (a visit when
//! it ends, a stay at discharge). Stays not yet discharged at the end of the year are not
//! settled, nor is any care of a person without an enrolment valid on the day.
//!
//! Deterministic: the bill of resident `i` is drawn from a stream of its own (seeded by the
//! county seed and `i`), apart from the one that draws the care, so adding settlements
//! changed no encounter or referral.

use std::collections::HashMap;

use tiercare_domain::billing::{
    CatalogueSet, PricedLine, REFERRAL_WINDOW_DAYS, ReferralFact, covering_filing, derive_arrival, place_of_care,
    pool_region,
};
use tiercare_domain::encounter::{Encounter, EncounterClass};
use tiercare_domain::facility::Tier;
use tiercare_domain::settlement::{self, Accumulators, BillLine, Claim, PolicySet, Setting, Split};
use time::{Date, Duration, Month, OffsetDateTime};
use uuid::Uuid;

use crate::{County, GeneratedReferral, Rng, china, uuid_v7};

/// One settled encounter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSettlement {
    pub id: Uuid,
    /// The patient's region key.
    pub region_key: String,
    pub facility_id: Uuid,
    /// Unique in the county (so per facility too).
    pub txn_no: String,
    pub patient_id: Uuid,
    pub encounter_id: Uuid,
    /// The claim as adjudicated, with the accumulators before it.
    pub claim: Claim,
    /// The bill as the desk sent it (code, quantity, unit price), one per claim line.
    pub items: Vec<PricedLine>,
    pub split: Split,
    /// When the desk settled it (the visit's end, or the discharge).
    pub settled_at: OffsetDateTime,
    /// Set when the settlement was reversed (冲正) afterwards; a reversed settlement is
    /// followed by the same bill settled again under a new number.
    pub reversal: Option<(String, OffsetDateTime)>,
}

/// Why a generated settlement was reversed (the desk corrected the bill and settled it again).
pub const REVERSAL_REASON: &str = "收费项目录入有误，冲正后重新结算";

/// A resident's settlements of the year, in the order they were made, and the encounters
/// left unsettled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YearSettlements {
    pub settlements: Vec<GeneratedSettlement>,
    /// Encounters on a day without an enrolment valid on it.
    pub not_enrolled: u32,
    /// Stays still under way at the end of the year (settled at discharge, later).
    pub in_hospital: u32,
    /// Refused by the engine or without a catalogue or policy (should be 0; counted by code).
    pub refused: Vec<String>,
}

/// Share of settlements reversed and settled again (a desk correcting a bill).
const REVERSED_SHARE: f64 = 0.003;

// Items by role (codes of the default catalogues; a catalogue without one falls back to
// the next of its role).
const GRASSROOTS_CONSULT: &[&str] = &["001101000010000", "001102000010000"];
const CONSULT: &[&str] = &["001102000010000", "001101000010000"];
const SENIOR_CONSULT: &[&str] = &["001102000020000", "001102000010000"];
const WARD_ROUND: &[&str] = &["001103000010000"];
const BED: &[&str] = &["001107000010000"];
const NURSING: &[&str] = &["001202000010000"];
const INFUSION: &[&str] = &["001204000010000"];
const SALINE: &[&str] = &["XB05XAL126B002010100000"];
const INFUSION_SET: &[&str] = &["C0304010010100102301"];
const BLOOD_COUNT: &[&str] = &["250101015000000"];
const LIVER: &[&str] = &["250305001000000"];
const TROPONIN: &[&str] = &["250304001000000"];
const ECG: &[&str] = &["310701001000000"];
const ULTRASOUND: &[&str] = &["220600001000000"];
const CT: &[&str] = &["210300001000000"];
const MRI: &[&str] = &["210200001000000"];
const PCI: &[&str] = &["330803020000000"];
const ANGIOGRAPHY: &[&str] = &["310803001000000"];
const STENT: &[&str] = &["C0201010010000102077"];
const BALLOON: &[&str] = &["C0202010010000100341"];
const HIP: &[&str] = &["C1302010010000100125"];
const APPENDECTOMY: &[&str] = &["331003001000000"];
const SUTURE: &[&str] = &["C0701010010000100098"];
const GAUZE: &[&str] = &["C1403010010000100013"];
const CENTRAL_LINE: &[&str] = &["C0305010010000100087"];
const ACUPUNCTURE: &[&str] = &["430000001000000"];
const ALTEPLASE: &[&str] = &["XB01ADA165B001010100000"];
const ALBUMIN: &[&str] = &["XB05AAR051B002010100000"];
const CEFTRIAXONE: &[&str] = &["XJ01DDT098B001010100000"];
const THYMALFASIN: &[&str] = &["XL03AXX045B001010100000"];
const VITAMIN_C: &[&str] = &["XA11GAW001A001010100000"];
const BRACE: &[&str] = &["C1801010010000100016"];
const CHECK_UP: &[&str] = &["120400001000000"];
// drugs by diagnosis: (ICD-10 prefix, class-A drugs, class-B drugs)
const DRUGS: &[(&str, &[&str], &[&str])] = &[
    ("I10", &["XC08CAA057A001010100000", "XC08CAX079A010010100000"], &["XC09CAX038E001010100000"]),
    ("E11", &["XA10BAE052A001010100000"], &["XA10BFA002A001010100000", "XA10AEG007B002010100000"]),
    ("I2", &["XB01ACA056A012010100000"], &["XB01ACL047A001010100000", "XB01ACT125A001010100000"]),
    ("I63", &["XB01ACA056A012010100000"], &["XC10AAA134A001010100000", "XB01ACL047A001010100000"]),
    ("I50", &["XB01ACA056A012010100000"], &["XC10AAA134A001010100000"]),
    (
        "J",
        &["XJ01CAA040A001010100000", "XJ01MAL080A001010100000", "XJ01FAA155A001010100000"],
        &["XJ01DCT035A001010100000", "XJ01DDT098B001010100000"],
    ),
    ("A09", &["XJ01MAL080A001010100000"], &["XJ01DCT035A001010100000"]),
    ("N39", &["XJ01MAL080A001010100000"], &["XJ01DCT035A001010100000"]),
    ("K", &["XA02BCA211E001010100000"], &["XJ01DDT098B001010100000"]),
    ("M", &["XM01AEB144N001010100000"], &["XC10AAA134A001010100000"]),
    ("S", &["XM01AEB144N001010100000"], &["XJ01DDT098B001010100000"]),
    ("", &["XJ01CAA040A001010100000", "XM01AEB144N001010100000"], &["XJ01DCT035A001010100000"]),
];

/// The catalogue of one place of treatment, with each code's position.
struct Place<'a> {
    catalogue: &'a tiercare_domain::billing::Catalogue,
    index: HashMap<&'a str, usize>,
}

impl<'a> Place<'a> {
    /// The first of `codes` the catalogue has.
    fn item(&self, codes: &[&str]) -> Option<usize> {
        codes.iter().find_map(|c| self.index.get(c).copied())
    }
    fn limit(&self, item: usize) -> Option<i64> {
        self.catalogue.items[item].price_limit_fen
    }
}

/// A bill under construction: (item, quantity, unit price), summing to at most the total.
struct Bill<'p, 'a> {
    place: &'p Place<'a>,
    lines: Vec<(usize, i64, i64)>,
    left: i64,
}

impl<'p, 'a> Bill<'p, 'a> {
    /// `quantity` units of the first of `codes` at `price_share` (0–1) of its limit, if the
    /// bill has room; fewer units when it has not.
    fn fixed(&mut self, codes: &[&str], quantity: i64, price_share: f64) {
        let Some(item) = self.place.item(codes) else { return };
        let limit = self.place.limit(item).unwrap_or(10_000);
        let price = ((limit as f64 * price_share) as i64).clamp(1, limit.max(1));
        let q = quantity.min(self.left / price);
        if q >= 1 {
            self.lines.push((item, q, price));
            self.left -= q * price;
        }
    }

    /// Exactly `amount` (at most what is left) of the first of `codes`: as few units as the
    /// limit allows, at one price, or two prices one fen apart.
    fn fill(&mut self, codes: &[&str], amount: i64) -> bool {
        let amount = amount.min(self.left);
        if amount <= 0 {
            return true;
        }
        let Some(item) = self.place.item(codes) else { return false };
        let limit = self.place.limit(item).unwrap_or(amount).max(1);
        let q = (amount + limit - 1) / limit;
        let p = amount / q;
        let r = amount - q * p;
        if r == 0 {
            self.lines.push((item, q, p));
        } else {
            if q > r {
                self.lines.push((item, q - r, p));
            }
            self.lines.push((item, r, p + 1));
        }
        self.left -= amount;
        true
    }
}

/// What settling needs, prepared once for a county.
pub struct Settler<'a> {
    policies: &'a PolicySet,
    /// Per facility (as in `County::facilities`): its place of treatment, if catalogued.
    places: Vec<Option<usize>>,
    catalogues: Vec<Place<'a>>,
    facility_index: HashMap<Uuid, usize>,
}

impl<'a> Settler<'a> {
    pub fn new(county: &County, policies: &'a PolicySet, catalogues: &'a CatalogueSet) -> Settler<'a> {
        let mut cats: Vec<Place<'a>> = Vec::new();
        let places = county
            .facilities
            .iter()
            .map(|f| {
                let c = catalogues.for_facility_region(&f.region_code)?;
                if let Some(k) = cats.iter().position(|p| std::ptr::eq(p.catalogue, c)) {
                    return Some(k);
                }
                let index = c.items.iter().enumerate().map(|(k, it)| (it.code.as_str(), k)).collect();
                cats.push(Place { catalogue: c, index });
                Some(cats.len() - 1)
            })
            .collect();
        let facility_index = county.facilities.iter().enumerate().map(|(k, f)| (f.id, k)).collect();
        Settler { policies, places, catalogues: cats, facility_index }
    }

    /// The bill of one encounter at facility `f` (index into the county's facilities), as
    /// the desk sends it: codes, quantities, unit prices. `None` when the facility's region
    /// has no catalogue. Its total is the encounter's cost.
    pub fn bill(&self, county: &County, e: &Encounter, rng: &mut Rng) -> Option<Vec<PricedLine>> {
        let f = *self.facility_index.get(&e.facility_id)?;
        let (place, lines) = self.draw_bill(county, f, e, rng)?;
        Some(
            lines
                .into_iter()
                .map(|(item, quantity, unit_price_fen)| PricedLine {
                    code: place.catalogue.items[item].code.clone(),
                    quantity,
                    unit_price_fen,
                })
                .collect(),
        )
    }

    #[allow(clippy::type_complexity)]
    fn draw_bill(
        &self,
        county: &County,
        f: usize,
        e: &Encounter,
        rng: &mut Rng,
    ) -> Option<(&Place<'a>, Vec<(usize, i64, i64)>)> {
        let place = &self.catalogues[(*self.places.get(f)?)?];
        let tier = county.facilities[f].tier;
        let total = e.total_cost_fen.max(1);
        let dx = e.diagnoses.first().map(String::as_str).unwrap_or("");
        let (drugs_a, drugs_b) =
            DRUGS.iter().find(|(p, _, _)| dx.starts_with(p)).map(|(_, a, b)| (*a, *b)).unwrap_or((&[], &[]));
        let procedure = e.procedures.first().map(String::as_str).unwrap_or("");
        let mut bill = Bill { place, lines: Vec::with_capacity(12), left: total };
        let stay = e.class == EncounterClass::Inpatient;
        // the shares of self-pay and class-B items
        let self_pay = if rng.chance(if stay { 0.35 } else { 0.12 }) {
            (total as f64 * (0.02 + 0.06 * rng.unit())) as i64
        } else {
            0
        };
        let class_b = if rng.chance(if stay { 0.85 } else { 0.35 }) {
            let surgical = stay && !procedure.is_empty();
            (total as f64 * if surgical { 0.15 + 0.25 * rng.unit() } else { 0.08 + 0.2 * rng.unit() }) as i64
        } else {
            0
        };
        let class_a = total - self_pay - class_b;
        // class A: the services of the visit or stay, then drugs for the rest
        bill.left = class_a;
        if stay {
            let days = e.ended_at.map(|end| (end - e.started_at).whole_days()).unwrap_or(3).max(1);
            bill.fixed(BED, days, 0.6 + 0.4 * rng.unit());
            bill.fixed(WARD_ROUND, days, 0.8);
            bill.fixed(NURSING, days, 0.8);
            bill.fixed(INFUSION, days, 0.9);
            bill.fixed(INFUSION_SET, days, 0.9);
            bill.fixed(BLOOD_COUNT, 2, 0.9);
            bill.fixed(LIVER, 2, 0.9);
            if dx.starts_with("I2") {
                bill.fixed(TROPONIN, 2, 0.9);
                bill.fixed(ECG, 2, 0.9);
            }
            match procedure {
                "36.0600" => bill.fixed(PCI, 1, 0.7 + 0.3 * rng.unit()),
                "47.0100" => bill.fixed(APPENDECTOMY, 1, 0.8),
                "74.1x00" | "51.2300" | "79.3500" | "81.5400" => {
                    bill.fixed(SUTURE, 3, 0.9);
                    bill.fixed(GAUZE, 4, 0.9);
                }
                _ => {}
            }
            // the rest: tests and imaging, infusions, drugs
            let rest = bill.left;
            bill.fill(ULTRASOUND, rest / 5);
            bill.fill(SALINE, rest / 5);
            let a = *rng.pick(if drugs_a.is_empty() { &["XB05XAL126B002010100000"][..] } else { drugs_a });
            let drug_ok = bill.fill(&[a], bill.left);
            if !drug_ok || bill.left > 0 {
                bill.fill(SALINE, bill.left);
            }
        } else {
            let grassroots = tier.is_grassroots();
            let consult = if grassroots {
                GRASSROOTS_CONSULT
            } else if rng.chance(0.3) {
                SENIOR_CONSULT
            } else {
                CONSULT
            };
            bill.fixed(consult, 1, 0.8 + 0.2 * rng.unit());
            if !grassroots && rng.chance(0.5) {
                bill.fixed(BLOOD_COUNT, 1, 0.9);
            }
            if !grassroots && rng.chance(0.2) {
                bill.fixed(ULTRASOUND, 1, 0.9);
            }
            if tier == Tier::Township && dx.starts_with('M') && rng.chance(0.5) {
                bill.fixed(ACUPUNCTURE, 2, 0.8);
            }
            if dx.starts_with("I10") || dx.starts_with("E11") {
                bill.fixed(ECG, 1, 0.8);
            }
            let a = *rng.pick(if drugs_a.is_empty() { &["XM01AEB144N001010100000"][..] } else { drugs_a });
            if !bill.fill(&[a], bill.left) {
                bill.fill(consult, bill.left);
            }
        }
        // class B: a drug for the diagnosis, imaging, the procedure's materials
        bill.left += class_b;
        let b_items: &[&[&str]] = if stay {
            match procedure {
                "36.0600" => &[STENT, BALLOON, ANGIOGRAPHY],
                "79.3500" | "81.5400" => &[HIP, CENTRAL_LINE],
                "88.3800" => &[CT, ALBUMIN],
                "99.2900" => &[ALTEPLASE, MRI],
                _ if dx.starts_with("I63") => &[MRI, CEFTRIAXONE],
                _ if dx.starts_with('J') => &[CT, CEFTRIAXONE],
                _ => &[CEFTRIAXONE, ALBUMIN],
            }
        } else if !tier.is_grassroots() && rng.chance(0.25) {
            &[CT]
        } else {
            &[]
        };
        let mut b_amount = bill.left;
        for (k, codes) in b_items.iter().enumerate() {
            let share = if k + 1 == b_items.len() { b_amount } else { b_amount * 6 / 10 };
            if bill.fill(codes, share) {
                b_amount -= share;
            }
        }
        if bill.left > 0 {
            let b = if drugs_b.is_empty() { CEFTRIAXONE } else { std::slice::from_ref(rng.pick(drugs_b)) };
            bill.fill(b, bill.left);
        }
        // self-pay
        bill.left += self_pay;
        if bill.left > 0 {
            let codes = if stay {
                THYMALFASIN
            } else if dx.starts_with('M') || dx.starts_with('S') {
                BRACE
            } else {
                VITAMIN_C
            };
            bill.fill(codes, bill.left);
        }
        // anything no item took (a catalogue without these codes): an unlimited self-pay item
        if bill.left > 0 && !bill.fill(CHECK_UP, bill.left) {
            return None;
        }
        Some((place, bill.lines))
    }
}

/// The China date of an instant.
fn china_date(t: OffsetDateTime) -> Date {
    t.to_offset(china()).date()
}

/// The default policy set made to cover `year`: each region and scheme's earliest version
/// in force from 1 January of `year` when it starts later. The shipped policies start in
/// 2026; a county generated for an earlier year is settled by them, as if in force then.
pub fn in_force_for_year(policies: &PolicySet, year: i32) -> PolicySet {
    let jan1 = Date::from_calendar_date(year, Month::January, 1).unwrap_or(Date::MIN);
    let mut set = policies.clone();
    let earliest: Vec<Date> = set
        .policies
        .iter()
        .map(|p| {
            set.policies
                .iter()
                .filter(|q| q.insured_region == p.insured_region && q.scheme == p.scheme)
                .map(|q| q.effective_from)
                .min()
                .unwrap_or(p.effective_from)
        })
        .collect();
    for (p, first) in set.policies.iter_mut().zip(earliest) {
        if p.effective_from == first && first > jan1 {
            p.effective_from = jan1;
        }
    }
    set
}

impl County {
    /// Resident `i`'s settlements, given the encounters and referrals of
    /// [`County::year_of`] (in time order). Depends only on the seed, `i` and the rules.
    pub fn settle_year(
        &self,
        i: usize,
        encounters: &[Encounter],
        referrals: &[GeneratedReferral],
        settler: &Settler<'_>,
    ) -> YearSettlements {
        let r = &self.residents[i];
        let mut rng = Rng::new(self.config.seed ^ 0x5E77_1E00 ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut out = YearSettlements::default();
        let today = self.today();
        let enrolment = &r.enrolment;
        let pool = pool_region(settler.policies, &enrolment.insured_region);
        // what settlement needs of the referrals and filings
        let tier_of = |id: &Uuid| settler.facility_index.get(id).map(|k| self.facilities[*k].tier);
        let facts: Vec<ReferralFact> = referrals
            .iter()
            .filter_map(|g| {
                let rf = &g.referral;
                Some(ReferralFact {
                    to_facility_id: rf.to_facility_id,
                    direction: rf.direction,
                    state: rf.state,
                    green_channel: rf.green_channel.is_some(),
                    from_tier: tier_of(&rf.from_facility_id)?,
                    from_stay: rf
                        .encounter_ids
                        .iter()
                        .any(|id| encounters.iter().any(|e| e.id == *id && e.class == EncounterClass::Inpatient)),
                    requested_on: china_date(rf.requested_at),
                })
            })
            .collect();
        let filings: Vec<_> = referrals.iter().flat_map(|g| g.filings.iter().cloned()).collect();
        // the order the desks settle in: a visit when it ends, a stay at discharge (the
        // delay drawn in the encounters' order, so it does not depend on the sort)
        let mut due: Vec<(OffsetDateTime, &Encounter)> = Vec::with_capacity(encounters.len());
        for e in encounters {
            let end = e.ended_at.unwrap_or(e.started_at);
            if e.class == EncounterClass::Inpatient && (e.ended_at.is_none() || end >= today) {
                out.in_hospital += 1;
                continue;
            }
            let stay = e.class == EncounterClass::Inpatient;
            let delay = Duration::minutes(if stay { 30 + rng.below(120) } else { 1 + rng.below(10) } as i64);
            due.push((end + delay, e));
        }
        due.sort_by_key(|(t, e)| (*t, e.id));
        let mut acc: HashMap<i32, Accumulators> = HashMap::new();
        let mut k = 0u32;
        for (settled_at, e) in due {
            let stay = e.class == EncounterClass::Inpatient;
            // the day of care: a visit's day, a stay's discharge day
            let day = china_date(if stay { e.ended_at.unwrap_or(e.started_at) } else { e.started_at });
            if enrolment.valid_from > day || enrolment.valid_to.is_some_and(|to| to < day) {
                out.not_enrolled += 1;
                continue;
            }
            let Some(pool) = pool else {
                out.refused.push("settlement.no_policy".into());
                continue;
            };
            let Some(&f) = settler.facility_index.get(&e.facility_id) else {
                out.refused.push("sim.unknown_facility".into());
                continue;
            };
            let facility = &self.facilities[f];
            let Some((_, lines)) = settler.draw_bill(self, f, e, &mut rng) else {
                out.refused.push("sim.no_catalogue".into());
                continue;
            };
            let place_cat = &settler.catalogues[settler.places[f].unwrap_or_default()];
            let items: Vec<PricedLine> = lines
                .iter()
                .map(|&(item, quantity, unit_price_fen)| PricedLine {
                    code: place_cat.catalogue.items[item].code.clone(),
                    quantity,
                    unit_price_fen,
                })
                .collect();
            let lines: Vec<BillLine> = lines
                .iter()
                .map(|&(item, q, p)| BillLine { class: place_cat.catalogue.items[item].class, amount_fen: q * p })
                .collect();
            let filing = covering_filing(&filings, &enrolment.insured_region, &facility.region_code, day);
            let year = day.year();
            let before = acc.get(&year).copied().unwrap_or_default();
            let claim = Claim {
                scheme: enrolment.scheme,
                insured_region: pool.to_owned(),
                setting: if stay { Setting::Inpatient } else { Setting::Outpatient },
                tier: facility.tier,
                arrival: derive_arrival(facility.id, day, REFERRAL_WINDOW_DAYS, &facts),
                place: place_of_care(pool, &facility.region_code, filing),
                date: day,
                lines,
                accumulators: before,
            };
            let split = match settlement::adjudicate(settler.policies, &claim) {
                Ok(s) => s,
                Err(err) => {
                    out.refused.push(match err {
                        tiercare_domain::DomainError::Invalid(v) => {
                            v.first().map(|f| f.code.clone()).unwrap_or_default()
                        }
                        other => other.to_string(),
                    });
                    continue;
                }
            };
            acc.insert(year, Accumulators { stay_deductible_paid_fen: 0, ..split.after });
            let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as u64;
            let txn = |k: u32| format!("SIM{}-{i:07}-{k:03}", self.config.year);
            let mut s = GeneratedSettlement {
                id: Uuid::nil(),
                region_key: r.patient.region_key.clone(),
                facility_id: facility.id,
                txn_no: String::new(),
                patient_id: r.patient.id,
                encounter_id: e.id,
                claim,
                items,
                split,
                settled_at,
                reversal: None,
            };
            if rng.chance(REVERSED_SHARE) {
                // a first settlement two minutes earlier, reversed a minute later (the desk
                // corrected the bill); the same bill against the same (restored)
                // accumulators gives the same split
                k += 1;
                let at = settled_at - Duration::minutes(2);
                out.settlements.push(GeneratedSettlement {
                    id: uuid_v7(ms(at), &mut rng),
                    txn_no: txn(k),
                    settled_at: at,
                    reversal: Some((format!("{}-R", txn(k)), settled_at - Duration::minutes(1))),
                    ..s.clone()
                });
            }
            k += 1;
            s.id = uuid_v7(ms(settled_at), &mut rng);
            s.txn_no = txn(k);
            out.settlements.push(s);
        }
        out
    }
}
