//! Billing for settlement (issue 6): the catalogue of the place of treatment (drugs,
//! service items, materials with their insurance class and unit price limit), pricing a
//! bill against it, and the facts a settlement needs that are not on the bill — where the
//! care is relative to the insured region ([`place_of_care`]) and how the patient came
//! ([`derive_arrival`]).
//!
//! Cross-region rule (domain.md M7): the *place of treatment's* catalogue classifies the
//! items; the *home region's* policy sets the deductible, rate and ceiling
//! ([`crate::settlement`]). Pure: the catalogue is data loaded by the caller
//! ([`CatalogueSet::load_toml`], the shipped default in `data/catalogue-default.toml`).

use std::collections::HashSet;

use time::Date;
use uuid::Uuid;

use crate::error::{DomainError, FieldError, Problems};
use crate::facility::Tier;
use crate::filing::{Filing, FilingCategory};
use crate::referral::{Direction, ReferralState};
use crate::region;
use crate::settlement::{Arrival, BillLine, ItemClass, Place, PolicySet};

/// The shipped sample catalogues (四川省, 重庆市), TOML. Users replace it with their own.
pub const DEFAULT_CATALOGUE_TOML: &str = include_str!("../data/catalogue-default.toml");

code_enum! {
    /// 药品 / 医疗服务项目 / 医用耗材.
    ItemKind { Drug = "drug", Service = "service", Material = "material" }
}

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueItem {
    /// National insurance code (医保编码).
    pub code: String,
    pub name: String,
    pub kind: ItemKind,
    /// 甲类 / 乙类 / 自费 at this place of treatment.
    pub class: ItemClass,
    /// Unit of sale (盒, 次, 支, …).
    pub unit: String,
    /// 最高限价 per unit, fen; `None`: no limit.
    #[serde(default)]
    pub price_limit_fen: Option<i64>,
}

/// The catalogue of one place of treatment (a province or a city).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// GB/T 2260 code: a province ends in `0000`, a city in `00`.
    pub region: String,
    pub name: String,
    pub items: Vec<CatalogueItem>,
}

/// Every catalogue a server knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueSet {
    pub catalogues: Vec<Catalogue>,
}

impl CatalogueSet {
    /// Parse and validate a catalogue file (see `data/catalogue-default.toml` for the form).
    pub fn load_toml(text: &str) -> Result<CatalogueSet, DomainError> {
        let set: CatalogueSet = toml::from_str(text).map_err(|e| {
            DomainError::field("catalogue", "catalogue.syntax", format!("the catalogue file is not valid: {e}"))
        })?;
        set.validate()?;
        Ok(set)
    }

    /// The shipped default set.
    pub fn default_set() -> CatalogueSet {
        // The file is in the repository and checked by the tests below; an error here is a
        // build defect, so fall back to an empty set rather than panic.
        Self::load_toml(DEFAULT_CATALOGUE_TOML).unwrap_or_default()
    }

    /// Regions valid and not repeated, codes unique within a catalogue and not empty,
    /// names not empty, limits not negative. Fields are named `catalogues[i].items[j].code`.
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut p = Problems::default();
        let mut regions = HashSet::new();
        for (i, c) in self.catalogues.iter().enumerate() {
            let f = |s: &str| format!("catalogues[{i}].{s}");
            if region::division6(&c.region).is_none() {
                p.add(
                    &f("region"),
                    "catalogue.region",
                    format!("{:?} is not a GB/T 2260 province or city code (e.g. 510000, 511600)", c.region),
                );
            } else if !regions.insert(c.region.as_str()) {
                p.add(&f("region"), "catalogue.duplicate_region", format!("region {} has two catalogues", c.region));
            }
            let mut codes = HashSet::new();
            for (j, it) in c.items.iter().enumerate() {
                let g = |s: &str| format!("catalogues[{i}].items[{j}].{s}");
                if it.code.trim().is_empty() || it.code.len() > 64 {
                    p.add(&g("code"), "catalogue.code", "an item code is 1 to 64 characters");
                } else if !codes.insert(it.code.as_str()) {
                    p.add(
                        &g("code"),
                        "catalogue.duplicate_code",
                        format!("the code {} appears twice in the catalogue of {}", it.code, c.region),
                    );
                }
                if it.name.trim().is_empty() {
                    p.add(&g("name"), "catalogue.name", "an item needs a name");
                }
                if let Some(l) = it.price_limit_fen
                    && l < 0
                {
                    p.add(&g("price_limit_fen"), "catalogue.price_limit", format!("the limit {l} fen is negative"));
                }
            }
        }
        p.into_result()
    }

    /// The catalogue of the place of treatment: the most specific catalogue whose region
    /// contains `facility_region` (a city's before its province's).
    pub fn for_facility_region(&self, facility_region: &str) -> Option<&Catalogue> {
        self.catalogues
            .iter()
            .filter(|c| region_contains(&c.region, facility_region))
            .max_by_key(|c| specificity(&c.region))
    }
}

impl Catalogue {
    pub fn get(&self, code: &str) -> Option<&CatalogueItem> {
        self.items.iter().find(|i| i.code == code)
    }

    /// Items whose code starts with `q` (case-insensitive) or whose name contains it, of
    /// `kind` if given, at most `limit`, in catalogue order. An empty `q` matches all.
    pub fn search(&self, q: &str, kind: Option<ItemKind>, limit: usize) -> Vec<&CatalogueItem> {
        let q = q.trim();
        let upper = q.to_ascii_uppercase();
        self.items
            .iter()
            .filter(|i| kind.is_none_or(|k| i.kind == k))
            .filter(|i| q.is_empty() || i.code.to_ascii_uppercase().starts_with(&upper) || i.name.contains(q))
            .take(limit)
            .collect()
    }
}

/// One line of a bill as the caller sends it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricedLine {
    pub code: String,
    /// Units, an integer ≥ 1.
    pub quantity: i64,
    /// Price per unit, fen, ≥ 0 and ≤ the item's limit.
    pub unit_price_fen: i64,
}

/// Most lines one bill may have (a long inpatient stay has a few hundred).
pub const MAX_LINES: usize = 2_000;

/// Price a bill against the catalogue of the place of treatment: each line's amount is
/// quantity × unit price (exact) and its class the catalogue's. Refuses, one field error
/// per problem (`lines[i].code`, `lines[i].quantity`, `lines[i].unit_price_fen`, `lines`):
/// an empty bill, unknown codes, quantity < 1, price < 0, price above the item's limit,
/// amounts or a total beyond `i64`.
pub fn price_bill(catalogue: &Catalogue, lines: &[PricedLine]) -> Result<Vec<(CatalogueItem, BillLine)>, DomainError> {
    let mut p = Problems::default();
    if lines.is_empty() {
        p.add("lines", "settlement.no_lines", "a bill needs at least one line");
    }
    if lines.len() > MAX_LINES {
        return Err(DomainError::Invalid(vec![FieldError::new(
            "lines",
            "settlement.too_many_lines",
            format!("a bill has at most {MAX_LINES} lines; split it into interim bills"),
        )]));
    }
    let mut out = Vec::with_capacity(lines.len());
    let mut total: i64 = 0;
    for (i, l) in lines.iter().enumerate() {
        let f = |s: &str| format!("lines[{i}].{s}");
        let item = catalogue.get(&l.code);
        if item.is_none() {
            p.add(
                &f("code"),
                "settlement.unknown_item",
                format!(
                    "line {}: {:?} is not in the catalogue of {} ({})",
                    i + 1,
                    l.code,
                    catalogue.region,
                    catalogue.name
                ),
            );
        }
        let mut ok = item.is_some();
        if l.quantity < 1 {
            ok = false;
            p.add(
                &f("quantity"),
                "settlement.quantity",
                format!("line {}: the quantity must be a whole number of at least 1, not {}", i + 1, l.quantity),
            );
        }
        if l.unit_price_fen < 0 {
            ok = false;
            p.add(
                &f("unit_price_fen"),
                "settlement.price_negative",
                format!("line {}: the unit price {} fen is negative", i + 1, l.unit_price_fen),
            );
        } else if let Some(limit) = item.and_then(|it| it.price_limit_fen)
            && l.unit_price_fen > limit
        {
            ok = false;
            p.add(
                &f("unit_price_fen"),
                "settlement.price_above_limit",
                format!(
                    "line {}: the unit price {} fen is above the catalogue limit of {} fen per {}",
                    i + 1,
                    l.unit_price_fen,
                    limit,
                    item.map_or("unit", |it| it.unit.as_str())
                ),
            );
        }
        let (Some(item), true) = (item, ok) else { continue };
        let Some(amount) = l.quantity.checked_mul(l.unit_price_fen) else {
            p.add(
                &f("quantity"),
                "settlement.amount_overflow",
                format!("line {}: quantity × price is too large", i + 1),
            );
            continue;
        };
        match total.checked_add(amount) {
            Some(t) => total = t,
            None => {
                p.add(&f("quantity"), "settlement.amount_overflow", "the bill's total is too large");
                continue;
            }
        }
        out.push((item.clone(), BillLine { class: item.class, amount_fen: amount }));
    }
    p.into_result()?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Regions and place of care
// ---------------------------------------------------------------------------------------

/// Province-level municipalities (北京, 天津, 上海, 重庆): their `xx0100` pooling region
/// (市辖区) covers the whole municipality (municipal pooling), `5002xx` counties included.
const MUNICIPALITIES: [&str; 4] = ["11", "12", "31", "50"];

/// Does the pooling or catalogue region `pool` contain the 6-digit `region`?
/// `510000` (a province) contains every `51xxxx`; `511600` (a city) every `5116xx`;
/// `500100` (Chongqing's 市辖区, pooled municipality-wide) every `50xxxx`; a county only
/// itself.
pub fn region_contains(pool: &str, region: &str) -> bool {
    if pool.len() != 6 || region.len() != 6 || !pool.is_ascii() || !region.is_ascii() {
        return false;
    }
    if pool == region {
        return true;
    }
    if pool.ends_with("0000") || (MUNICIPALITIES.contains(&&pool[..2]) && &pool[2..] == "0100") {
        pool[..2] == region[..2]
    } else if pool.ends_with("00") {
        pool[..4] == region[..4]
    } else {
        false
    }
}

/// 3 for a county, 2 for a city, 1 for a province (municipality pools count as provinces).
fn specificity(pool: &str) -> u8 {
    if pool.ends_with("0000") || (pool.len() == 6 && MUNICIPALITIES.contains(&&pool[..2]) && &pool[2..] == "0100") {
        1
    } else if pool.ends_with("00") {
        2
    } else {
        3
    }
}

/// The pooling region whose policy applies to a person insured in `insured_region`: the
/// most specific region of `policies` that contains it (`511621` → `511600`).
pub fn pool_region<'a>(policies: &'a PolicySet, insured_region: &str) -> Option<&'a str> {
    policies
        .policies
        .iter()
        .map(|p| p.insured_region.as_str())
        .filter(|r| region_contains(r, insured_region))
        .max_by_key(|r| specificity(r))
}

/// Where the care is, relative to the insured (pooling) region: at home when the
/// facility's region is inside it; else by the filing covering it (domain.md M7): a
/// long-term filing gives home rates; a temporary one for a referral or an emergency the
/// filed rate (at most 10 points less); other temporary filings ("otherwise", at most 20
/// points less) and no filing the unfiled rate.
pub fn place_of_care(insured_region: &str, facility_region: &str, filing: Option<FilingCategory>) -> Place {
    if region_contains(insured_region, facility_region) {
        return Place::Home;
    }
    match filing {
        Some(c) if c.is_long_term() => Place::FiledLongTerm,
        Some(FilingCategory::Referred | FilingCategory::Emergency) => Place::FiledTemporary,
        Some(_) | None => Place::Unfiled,
    }
}

/// Long-term first, then referred or emergency, then other temporary filings.
fn filing_rank(c: FilingCategory) -> u8 {
    match c {
        c if c.is_long_term() => 2,
        FilingCategory::Referred | FilingCategory::Emergency => 1,
        _ => 0,
    }
}

/// The category of the filing that covers care at `facility_region` on `day` for a person
/// insured in `insured_region` (the most favourable: long-term, then referred or
/// emergency, then other temporary).
pub fn covering_filing(
    filings: &[Filing],
    insured_region: &str,
    facility_region: &str,
    day: Date,
) -> Option<FilingCategory> {
    filings
        .iter()
        .filter(|f| {
            region_contains(&f.filed_region, facility_region)
                && (f.insured_region == insured_region
                    || region_contains(insured_region, &f.insured_region)
                    || region_contains(&f.insured_region, insured_region))
                && f.valid_from <= day
                && f.valid_to.is_none_or(|to| day <= to)
        })
        .map(|f| f.category)
        .max_by_key(|c| filing_rank(*c))
}

// ---------------------------------------------------------------------------------------
// Arrival
// ---------------------------------------------------------------------------------------

/// Days a referral counts for a settlement at its receiver (default of the API contract).
pub const REFERRAL_WINDOW_DAYS: i64 = 90;

/// What settlement needs to know of one of the patient's referrals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralFact {
    pub to_facility_id: Uuid,
    pub direction: Direction,
    pub state: ReferralState,
    /// Sent through a green channel (胸痛, 卒中, …): an emergency.
    pub green_channel: bool,
    /// Tier of the sending facility.
    pub from_tier: Tier,
    /// The sender's encounter was an inpatient stay (for the continuous deductible).
    pub from_stay: bool,
    /// The day it was requested (China time).
    pub requested_on: Date,
}

/// How the patient came to facility `facility_id` for care on `day`, from their referrals:
/// the latest referral to this facility requested within `window_days` before `day` (and
/// not after it) that was accepted, scheduled, arrived or completed. A green channel is an
/// emergency; upward is an upward referral (after a stay at the sender's tier when the
/// sender's encounter was a stay); downward a downward referral; lateral counts as referred
/// (no continuous deductible). None: self-referred.
pub fn derive_arrival(facility_id: Uuid, day: Date, window_days: i64, facts: &[ReferralFact]) -> Arrival {
    let earliest = day - time::Duration::days(window_days.max(0));
    let found = facts
        .iter()
        .filter(|f| {
            f.to_facility_id == facility_id
                && matches!(
                    f.state,
                    ReferralState::Accepted
                        | ReferralState::Scheduled
                        | ReferralState::Arrived
                        | ReferralState::Completed
                )
                && f.requested_on <= day
                && f.requested_on >= earliest
        })
        .max_by_key(|f| f.requested_on);
    match found {
        None => Arrival::SelfReferred,
        Some(f) if f.green_channel => Arrival::Emergency,
        Some(f) => match f.direction {
            Direction::Upward => Arrival::UpwardReferral { after_stay_at: f.from_stay.then_some(f.from_tier) },
            Direction::Downward => Arrival::DownwardReferral,
            Direction::Lateral => Arrival::UpwardReferral { after_stay_at: None },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn set() -> CatalogueSet {
        CatalogueSet::load_toml(DEFAULT_CATALOGUE_TOML).expect("the default catalogue is valid")
    }

    fn sichuan() -> Catalogue {
        set().for_facility_region("511621").expect("sichuan").clone()
    }

    fn line(code: &str, quantity: i64, unit_price_fen: i64) -> PricedLine {
        PricedLine { code: code.into(), quantity, unit_price_fen }
    }

    fn codes(e: DomainError) -> Vec<(String, String)> {
        match e {
            DomainError::Invalid(v) => v.into_iter().map(|f| (f.field, f.code)).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_default_set_has_two_provinces_of_about_forty_items() {
        let s = set();
        assert_eq!(s.catalogues.len(), 2);
        for c in &s.catalogues {
            assert!(c.items.len() >= 38, "{} has {}", c.region, c.items.len());
            for k in ItemKind::ALL {
                assert!(c.items.iter().any(|i| i.kind == *k), "{} lacks {k:?}", c.region);
            }
            for cl in [ItemClass::A, ItemClass::B, ItemClass::SelfPay] {
                assert!(c.items.iter().any(|i| i.class == cl), "{} lacks {cl:?}", c.region);
            }
        }
        assert_eq!(CatalogueSet::default_set(), s);
        // some items are classed differently in the two provinces
        let (sc, cq) = (&s.catalogues[0], &s.catalogues[1]);
        let differing = sc.items.iter().filter(|i| cq.get(&i.code).is_some_and(|j| j.class != i.class)).count();
        assert!(differing >= 3, "only {differing} items differ");
    }

    #[test]
    fn the_place_of_treatment_picks_the_catalogue() {
        let s = set();
        assert_eq!(s.for_facility_region("511621").map(|c| c.region.as_str()), Some("510000"));
        assert_eq!(s.for_facility_region("510107").map(|c| c.region.as_str()), Some("510000"));
        assert_eq!(s.for_facility_region("500103").map(|c| c.region.as_str()), Some("500000"));
        assert_eq!(s.for_facility_region("110105"), None);
        // a city catalogue is more specific than its province's
        let mut s2 = s.clone();
        let mut city = s.catalogues[0].clone();
        city.region = "511600".into();
        s2.catalogues.push(city);
        assert_eq!(s2.for_facility_region("511621").map(|c| c.region.as_str()), Some("511600"));
        assert_eq!(s2.for_facility_region("510107").map(|c| c.region.as_str()), Some("510000"));
    }

    #[test]
    fn validation_names_each_problem() {
        let text = r#"
[[catalogues]]
region = "519999"
name = "x"
items = [
  { code = "A1", name = "a", kind = "drug", class = "a", unit = "盒", price_limit_fen = -1 },
  { code = "A1", name = "", kind = "service", class = "b", unit = "次" },
]
[[catalogues]]
region = "510000"
name = "y"
items = []
[[catalogues]]
region = "510000"
name = "z"
items = []
"#;
        assert_eq!(
            codes(CatalogueSet::load_toml(text).expect_err("refused")),
            vec![
                ("catalogues[0].region".into(), "catalogue.region".into()),
                ("catalogues[0].items[0].price_limit_fen".into(), "catalogue.price_limit".into()),
                ("catalogues[0].items[1].code".into(), "catalogue.duplicate_code".into()),
                ("catalogues[0].items[1].name".into(), "catalogue.name".into()),
                ("catalogues[2].region".into(), "catalogue.duplicate_region".into()),
            ]
        );
        assert_eq!(
            codes(CatalogueSet::load_toml("catalogues = 3").expect_err("refused")),
            vec![("catalogue".into(), "catalogue.syntax".into())]
        );
        let unknown_field = "[[catalogues]]\nregion = \"510000\"\nname = \"x\"\ncolour = 1\nitems = []\n";
        assert!(CatalogueSet::load_toml(unknown_field).is_err());
    }

    #[test]
    fn search_by_code_prefix_or_name() {
        let c = sichuan();
        let all = c.search("", None, 1000);
        assert_eq!(all.len(), c.items.len());
        assert_eq!(c.search("", None, 3).len(), 3);
        let amox = c.search("阿莫西林", None, 10);
        assert!(!amox.is_empty() && amox.iter().all(|i| i.name.contains("阿莫西林")));
        let first = &c.items[0];
        assert!(c.search(&first.code[..6].to_ascii_lowercase(), None, 100).iter().any(|i| i.code == first.code));
        assert!(c.search("", Some(ItemKind::Material), 100).iter().all(|i| i.kind == ItemKind::Material));
        assert!(c.search("no such thing", None, 10).is_empty());
    }

    /// A made-up catalogue so that the arithmetic is independent of the shipped prices.
    fn small() -> Catalogue {
        let item = |code: &str, kind, class, limit| CatalogueItem {
            code: code.into(),
            name: format!("item {code}"),
            kind,
            class,
            unit: "盒".into(),
            price_limit_fen: limit,
        };
        Catalogue {
            region: "510000".into(),
            name: "test".into(),
            items: vec![
                item("D1", ItemKind::Drug, ItemClass::A, Some(2_350)),
                item("D2", ItemKind::Drug, ItemClass::B, None),
                item("S1", ItemKind::Service, ItemClass::A, Some(1_000)),
                item("M1", ItemKind::Material, ItemClass::SelfPay, Some(0)),
            ],
        }
    }

    #[test]
    fn pricing_is_quantity_times_price_with_the_catalogue_class() {
        // D1: 3 × 23.50 yuan = 70.50 yuan = 7,050 fen (at the limit exactly), class A
        // D2: 1 × 123,456.78 yuan (no limit) = 12,345,678 fen, class B
        // S1: 12 × 0 fen = 0, class A (a free service is allowed)
        // M1: 2 × 0 fen = 0, self-pay (a zero limit admits zero)
        let priced = price_bill(
            &small(),
            &[line("D1", 3, 2_350), line("D2", 1, 12_345_678), line("S1", 12, 0), line("M1", 2, 0)],
        )
        .expect("valid");
        let got: Vec<(&str, ItemClass, i64)> =
            priced.iter().map(|(i, l)| (i.code.as_str(), l.class, l.amount_fen)).collect();
        assert_eq!(
            got,
            vec![
                ("D1", ItemClass::A, 7_050),
                ("D2", ItemClass::B, 12_345_678),
                ("S1", ItemClass::A, 0),
                ("M1", ItemClass::SelfPay, 0)
            ]
        );
    }

    #[test]
    fn pricing_refuses_every_bad_line_by_name() {
        let c = small();
        assert_eq!(
            codes(price_bill(&c, &[]).expect_err("refused")),
            vec![("lines".into(), "settlement.no_lines".into())]
        );
        let e = price_bill(
            &c,
            &[
                line("D1", 1, 100),      // fine
                line("XX", 1, 100),      // unknown
                line("D1", 0, 100),      // quantity 0
                line("D1", -2, 100),     // negative quantity
                line("D2", 1, -1),       // negative price
                line("D1", 1, 2_351),    // 1 fen above the limit
                line("D2", i64::MAX, 2), // overflow of the line
                line("M1", 1, 1),        // above a zero limit
                line("YY", -1, -1),      // unknown, bad quantity, bad price: all three
            ],
        )
        .expect_err("refused");
        assert_eq!(
            codes(e),
            vec![
                ("lines[1].code".into(), "settlement.unknown_item".into()),
                ("lines[2].quantity".into(), "settlement.quantity".into()),
                ("lines[3].quantity".into(), "settlement.quantity".into()),
                ("lines[4].unit_price_fen".into(), "settlement.price_negative".into()),
                ("lines[5].unit_price_fen".into(), "settlement.price_above_limit".into()),
                ("lines[6].quantity".into(), "settlement.amount_overflow".into()),
                ("lines[7].unit_price_fen".into(), "settlement.price_above_limit".into()),
                ("lines[8].code".into(), "settlement.unknown_item".into()),
                ("lines[8].quantity".into(), "settlement.quantity".into()),
                ("lines[8].unit_price_fen".into(), "settlement.price_negative".into()),
            ]
        );
        // each line fits but the total does not
        let half = i64::MAX / 2 + 1;
        assert_eq!(
            codes(price_bill(&c, &[line("D2", 1, half), line("D2", 1, half)]).expect_err("refused")),
            vec![("lines[1].quantity".into(), "settlement.amount_overflow".into())]
        );
        let many: Vec<PricedLine> = (0..=MAX_LINES).map(|_| line("D1", 1, 1)).collect();
        assert_eq!(
            codes(price_bill(&c, &many).expect_err("refused")),
            vec![("lines".into(), "settlement.too_many_lines".into())]
        );
    }

    #[test]
    fn region_containment() {
        assert!(region_contains("511600", "511621"));
        assert!(region_contains("511600", "511602"));
        assert!(!region_contains("511600", "510107"));
        assert!(region_contains("510000", "511621"));
        assert!(region_contains("510000", "510107"));
        assert!(!region_contains("510000", "500103"));
        assert!(region_contains("500100", "500103"));
        assert!(region_contains("500100", "500229"));
        assert!(region_contains("500000", "500103"));
        assert!(!region_contains("500100", "510107"));
        assert!(region_contains("511621", "511621"));
        assert!(!region_contains("511621", "511622"));
        assert!(!region_contains("5116", "511621"));
        assert!(!region_contains("", ""));
        assert!(!region_contains("51160０", "511601"));
    }

    #[test]
    fn the_pool_of_an_insured_county() {
        let policies = PolicySet {
            policies: ["511600", "500100", "510000"]
                .iter()
                .map(|r| {
                    let mut p: crate::settlement::Policy = toml::from_str(&format!(
                        "name = \"p\"\ninsured_region = \"{r}\"\nscheme = \"resident\"\neffective_from = \"2026-01-01\"\n\
                         inpatient = []\noutpatient = []\nannual_ceiling_fen = 0\noutpatient_cap_fen = 0\n\
                         class_b_share_bp = 0\nno_referral_reduction_bp = 0\nno_referral_from_tier = \"county\"\n\
                         filed_temporary_reduction_bp = 0\nunfiled_reduction_bp = 0\n"
                    ))
                    .expect("valid");
                    p.insured_region = (*r).into();
                    p
                })
                .collect(),
        };
        assert_eq!(pool_region(&policies, "511621"), Some("511600"));
        assert_eq!(pool_region(&policies, "511600"), Some("511600"));
        assert_eq!(pool_region(&policies, "510107"), Some("510000"));
        assert_eq!(pool_region(&policies, "500103"), Some("500100"));
        assert_eq!(pool_region(&policies, "110105"), None);
    }

    #[test]
    fn place_of_care_by_region_and_filing() {
        assert_eq!(place_of_care("511600", "511621", None), Place::Home);
        assert_eq!(place_of_care("511600", "511602", Some(FilingCategory::Referred)), Place::Home);
        assert_eq!(place_of_care("511600", "510107", None), Place::Unfiled);
        assert_eq!(place_of_care("511600", "500103", Some(FilingCategory::Referred)), Place::FiledTemporary);
        assert_eq!(place_of_care("511600", "500103", Some(FilingCategory::Emergency)), Place::FiledTemporary);
        // "otherwise": the unfiled rate (at most 20 points less)
        assert_eq!(place_of_care("511600", "500103", Some(FilingCategory::OtherTemporary)), Place::Unfiled);
        assert_eq!(place_of_care("511600", "500103", Some(FilingCategory::RelocatedRetiree)), Place::FiledLongTerm);
        assert_eq!(place_of_care("500100", "511621", None), Place::Unfiled);
        assert_eq!(place_of_care("500100", "500229", None), Place::Home);
    }

    #[test]
    fn the_filing_that_covers_the_care() {
        let f = |cat, filed: &str, from, to| Filing {
            id: Uuid::nil(),
            region_key: "511621".into(),
            patient_id: Uuid::nil(),
            category: cat,
            insured_region: "511600".into(),
            filed_region: filed.into(),
            valid_from: from,
            valid_to: to,
            referral_id: None,
            created_at: datetime!(2026-01-01 0:00 UTC),
        };
        let temp = f(FilingCategory::Referred, "500100", date!(2026 - 06 - 01), Some(date!(2026 - 12 - 01)));
        let long = f(FilingCategory::LongTermResident, "500000", date!(2026 - 09 - 01), None);
        let day = date!(2026 - 10 - 01);
        assert_eq!(
            covering_filing(std::slice::from_ref(&temp), "511600", "500103", day),
            Some(FilingCategory::Referred)
        );
        assert_eq!(
            covering_filing(&[temp.clone(), long.clone()], "511600", "500103", day),
            Some(FilingCategory::LongTermResident)
        );
        assert_eq!(covering_filing(std::slice::from_ref(&temp), "511600", "500103", date!(2026 - 12 - 02)), None);
        assert_eq!(covering_filing(std::slice::from_ref(&temp), "511600", "500103", date!(2026 - 05 - 31)), None);
        assert_eq!(covering_filing(std::slice::from_ref(&temp), "511600", "510107", day), None);
        // the filing's insured region may be the county (511621) inside the pool (511600)
        let mut county = temp.clone();
        county.insured_region = "511621".into();
        assert_eq!(covering_filing(&[county], "511600", "500103", day), Some(FilingCategory::Referred));
        // another person's insured region does not count
        let mut other = temp;
        other.insured_region = "110105".into();
        assert_eq!(covering_filing(&[other], "511600", "500103", day), None);
    }

    #[test]
    fn arrival_from_the_recent_referrals() {
        let here = Uuid::from_u128(1);
        let there = Uuid::from_u128(2);
        let day = date!(2026 - 12 - 03);
        let fact = |to, direction, state, green, from_tier, from_stay, on| ReferralFact {
            to_facility_id: to,
            direction,
            state,
            green_channel: green,
            from_tier,
            from_stay,
            requested_on: on,
        };
        use Direction::*;
        use ReferralState::*;
        let up = fact(here, Upward, Arrived, false, Tier::Township, true, date!(2026 - 11 - 20));
        assert_eq!(derive_arrival(here, day, 90, &[]), Arrival::SelfReferred);
        assert_eq!(
            derive_arrival(here, day, 90, std::slice::from_ref(&up)),
            Arrival::UpwardReferral { after_stay_at: Some(Tier::Township) }
        );
        // from a visit: no earlier stay
        let visit = ReferralFact { from_stay: false, ..up.clone() };
        assert_eq!(derive_arrival(here, day, 90, &[visit]), Arrival::UpwardReferral { after_stay_at: None });
        // to another facility, not yet accepted, rejected, or too old: self-referred
        for f in [
            ReferralFact { to_facility_id: there, ..up.clone() },
            ReferralFact { state: Requested, ..up.clone() },
            ReferralFact { state: Rejected, ..up.clone() },
            ReferralFact { state: Cancelled, ..up.clone() },
            ReferralFact { requested_on: date!(2026 - 09 - 03), ..up.clone() },
            ReferralFact { requested_on: date!(2026 - 12 - 04), ..up.clone() },
        ] {
            assert_eq!(derive_arrival(here, day, 90, std::slice::from_ref(&f)), Arrival::SelfReferred, "{f:?}");
        }
        // exactly 90 days before still counts; accepted and scheduled count
        let edge = ReferralFact { requested_on: date!(2026 - 09 - 04), state: Accepted, ..up.clone() };
        assert_eq!(
            derive_arrival(here, day, 90, &[edge]),
            Arrival::UpwardReferral { after_stay_at: Some(Tier::Township) }
        );
        let down = fact(here, Downward, Completed, false, Tier::County, true, date!(2026 - 11 - 25));
        assert_eq!(derive_arrival(here, day, 90, std::slice::from_ref(&down)), Arrival::DownwardReferral);
        // the latest wins
        assert_eq!(derive_arrival(here, day, 90, &[up.clone(), down.clone()]), Arrival::DownwardReferral);
        let green = fact(here, Upward, Scheduled, true, Tier::Township, false, date!(2026 - 12 - 03));
        assert_eq!(derive_arrival(here, day, 90, &[down, green]), Arrival::Emergency);
        let lateral = fact(here, Lateral, Arrived, false, Tier::County, true, date!(2026 - 12 - 01));
        assert_eq!(derive_arrival(here, day, 90, &[lateral]), Arrival::UpwardReferral { after_stay_at: None });
    }
}
