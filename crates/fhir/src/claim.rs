//! Insurance settlement as FHIR R4 (issue 6, part 8): a hospital system sends a `Claim`
//! (`POST /fhir/Claim/$submit`) and gets back a `ClaimResponse` carrying the split of the
//! bill. This module reads a Claim into a [`ClaimInput`] (the JSON API's bill, without any
//! dependency on the server) and writes a settlement as a ClaimResponse. Hand-written
//! JSON; the official R4 JSON Schema checks it in the tests.
//!
//! # Reading a Claim
//!
//! | Claim | bill |
//! |---|---|
//! | `identifier[0].value` | `txn_no` (the caller's transaction number; required for `use` `claim`) |
//! | `use` | `claim` → settle (stored); `preauthorization` or `predetermination` → preview (what-if, nothing stored) |
//! | `status` | must be `active` |
//! | `type` (`http://terminology.hl7.org/CodeSystem/claim-type`) | `institutional` → inpatient, `professional` → outpatient |
//! | `patient` | `Patient/{id}` |
//! | `billablePeriod.start` | the day of care (a date, or the date part of a dateTime); absent → today |
//! | `provider` | optional `Organization/{id}`: must be the user's facility |
//! | `insurance[0].coverage` | optional `Coverage/{id}`: must be the enrolment in force |
//! | `item[i].sequence` | optional; when given, `i + 1` |
//! | `item[i].productOrService.coding` | the item code, system [`ITEM_SYSTEM`] |
//! | `item[i].quantity.value` | a whole number ≥ 1 |
//! | `item[i].unitPrice` | `{ value, currency: "CNY" }`, yuan with at most two decimals → fen exactly |
//! | `item[i].net` | optional; when given, must be quantity × unitPrice |
//! | `item[i].encounter[0]` | optional `Encounter/{id}`; every item naming one names the same |
//! | `total` | optional; when given, must be the sum of the items |
//! | extension [`EXT_ARRIVAL`] | optional valueCode `self_referred` \| `upward_referral` \| `downward_referral` \| `emergency` (absent: the server derives it from referrals); [`EXT_AFTER_STAY_AT`] valueCode tier with `upward_referral` |
//!
//! `id`, `meta`, `text`, `language`, `created` (the server assigns it) and `priority` (a
//! `processpriority` code) are accepted and ignored; every other R4 Claim element is refused
//! (`not-supported`), an element R4 does not have is refused (`structure`), so nothing a
//! client sends is silently dropped. Every problem is reported at once, each with its
//! FHIRPath `expression`; the unitPrice problems (more than two decimals, negative, not
//! CNY) are at `Claim.item[i].unitPrice`.
//!
//! JSON numbers: serde_json is built without `arbitrary_precision`, so a decimal arrives as
//! an `f64`. [`fen_from_yuan`] takes `round(v × 100)` only when that many fen divided by 100
//! gives back exactly the same `f64` (IEEE division is correctly rounded, so for every
//! amount below 10^13 yuan this holds exactly for the decimals with at most two places and
//! for no other `f64`). A decimal that differs from a two-place one only beyond the 17th
//! significant digit is indistinguishable from it after parsing and is read as it.
//!
//! # Writing a ClaimResponse
//!
//! One settlement is one ClaimResponse with the settlement's id (`request` =
//! `Claim/{id}`): `status` `active` (`cancelled` once reversed), `outcome` `complete`,
//! `insurer` the insured region's 医疗保障局 (display), `requestor` the facility. The split
//! is in `total[]` and, without `submitted`, in the header `adjudication[]` (with the rate
//! as `eligpercent`):
//!
//! | split | category |
//! |---|---|
//! | total | `submitted` (<http://terminology.hl7.org/CodeSystem/adjudication>) |
//! | fund | `benefit` |
//! | coinsurance | `copay` |
//! | deductible | `deductible` |
//! | self-pay | `self_pay` ([`SPLIT_SYSTEM`]) |
//! | class-B first share | `class_b_share` |
//! | above the ceiling / pool | `above_ceiling` |
//! | the patient's total | `patient_total` |
//!
//! `item[i]` (`itemSequence` `i + 1`) has its class in the extension [`EXT_ITEM_CLASS`] and
//! the bill's split apportioned to the line ([`crate::apportion`]: each category's item
//! amounts add up to its total) as `adjudication[]`: `submitted` (the line's amount),
//! `eligible`, `deductible`, `copay`, `benefit` (HL7) and `self_pay`, `class_b_share`,
//! `above_ceiling`, `patient_total` ([`SPLIT_SYSTEM`]); `processNote[]` is the explanation, one note per
//! rule applied, its code and amount in the extensions [`EXT_STEP_CODE`] and
//! [`EXT_STEP_AMOUNT`]. Money is CNY yuan, a JSON decimal written from fen exactly
//! ([`yuan`]).
//!
//! # Canonical URLs (defined by tiercare, under `http://tiercare.org/fhir/`)
//!
//! - `CodeSystem/nhsa-item` — the national medical-insurance item codes (医保药品、医疗服务
//!   项目、医用耗材编码) of the place-of-treatment catalogue ([`ITEM_SYSTEM`])
//! - `CodeSystem/settlement-split` — `self_pay`, `class_b_share`, `above_ceiling`,
//!   `patient_total` ([`SPLIT_SYSTEM`])
//! - `CodeSystem/item-class` — `a`, `b`, `self_pay` (甲类, 乙类, 丙类/自费)
//! - `CodeSystem/settlement-place` — `home`, `filed_long_term`, `filed_temporary`, `unfiled`
//! - `CodeSystem/settlement-arrival` — the arrival codes above
//! - `sid/txn-no` — the caller's transaction number (unique per facility: the identifier's
//!   `assigner` is the facility)
//! - extensions (`StructureDefinition/…`): `settlement-arrival`,
//!   `settlement-arrival-after-stay-at` (Claim and ClaimResponse), `settlement-place`,
//!   `settlement-policy` (valueString), `insured-region` (ClaimResponse), `item-class`
//!   (ClaimResponse.item), `settlement-step`, `settlement-step-amount` (processNote)

use serde_json::{Map, Number, Value, json};
use tiercare_domain::facility::Tier;
use tiercare_domain::settlement::{Arrival, Claim, ItemClass, Place, Setting, Split};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};
use uuid::Uuid;

use crate::apportion::{LineSplit, line_splits};
use crate::ext;
use crate::outcome::{Issue, IssueType};
use crate::read::{CODING_KEYS, CONCEPT_KEYS, Reader};

/// Code system of the item codes on `Claim.item.productOrService`.
pub const ITEM_SYSTEM: &str = "http://tiercare.org/fhir/CodeSystem/nhsa-item";
/// HL7's adjudication categories.
pub const ADJUDICATION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/adjudication";
/// Our categories for the parts of the patient's share HL7 has no code for.
pub const SPLIT_SYSTEM: &str = "http://tiercare.org/fhir/CodeSystem/settlement-split";
pub const ITEM_CLASS_SYSTEM: &str = "http://tiercare.org/fhir/CodeSystem/item-class";
pub const PLACE_SYSTEM: &str = "http://tiercare.org/fhir/CodeSystem/settlement-place";
pub const CLAIM_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/claim-type";
pub const TXN_SYSTEM: &str = "http://tiercare.org/fhir/sid/txn-no";

pub const EXT_ARRIVAL: &str = "settlement-arrival";
pub const EXT_AFTER_STAY_AT: &str = "settlement-arrival-after-stay-at";
pub const EXT_PLACE: &str = "settlement-place";
pub const EXT_POLICY: &str = "settlement-policy";
pub const EXT_INSURED_REGION: &str = "insured-region";
pub const EXT_ITEM_CLASS: &str = "item-class";
pub const EXT_STEP_CODE: &str = "settlement-step";
pub const EXT_STEP_AMOUNT: &str = "settlement-step-amount";

/// The most lines one Claim may carry.
pub const MAX_ITEMS: usize = 2000;
/// The longest transaction number.
pub const MAX_TXN_NO: usize = 64;
/// The largest amount read, in yuan (10^13: fen stay below 2^53).
const MAX_YUAN: f64 = 1e13;

/// The R4 Claim.status value set.
pub const CLAIM_STATUSES: [&str; 4] = ["active", "cancelled", "draft", "entered-in-error"];
/// The R4 Claim.use value set.
pub const CLAIM_USES: [&str; 3] = ["claim", "preauthorization", "predetermination"];
/// The R4 claim-type codes.
pub const CLAIM_TYPES: [&str; 5] = ["institutional", "oral", "pharmacy", "professional", "vision"];
const PRIORITIES: [&str; 3] = ["stat", "normal", "deferred"];
const ARRIVALS: [&str; 4] = ["self_referred", "upward_referral", "downward_referral", "emergency"];

/// A bill read from a Claim: what the JSON API's `POST /api/v1/settlements` (or
/// `/preview`) takes, plus the references the server checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimInput {
    /// `identifier[0].value`; always present when `preview` is false.
    pub txn_no: Option<String>,
    /// `use` preauthorization / predetermination: adjudicate, store nothing.
    pub preview: bool,
    pub patient_id: Uuid,
    pub encounter_id: Option<Uuid>,
    /// `provider`, when given: the server checks it is the user's facility.
    pub provider_id: Option<Uuid>,
    /// `insurance[0].coverage`, when given: the server checks it is the enrolment in force.
    pub coverage_id: Option<Uuid>,
    pub setting: Setting,
    pub date: Option<Date>,
    pub arrival: Option<Arrival>,
    pub lines: Vec<ClaimLine>,
}

/// One item of a Claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimLine {
    pub code: String,
    pub quantity: i64,
    pub unit_price_fen: i64,
}

// ---------------------------------------------------------------------------------------
// money

/// Why a decimal is not an amount of fen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyError {
    /// Not a JSON number.
    NotANumber,
    /// More than two decimals (not a whole number of fen).
    TooPrecise,
    Negative,
    /// Beyond 10^13 yuan.
    TooLarge,
}

impl MoneyError {
    fn message(self) -> &'static str {
        match self {
            MoneyError::NotANumber => "the amount is not a JSON number",
            MoneyError::TooPrecise => "an amount in CNY has at most two decimals (whole fen)",
            MoneyError::Negative => "an amount cannot be negative",
            MoneyError::TooLarge => "the amount is too large",
        }
    }
}

/// A JSON decimal of yuan as fen, exactly (see the module notes): `11.75` → 1175; `0.125`,
/// `-1`, `"3.00"` are refused.
pub fn fen_from_yuan(v: &Value) -> Result<i64, MoneyError> {
    let Value::Number(n) = v else { return Err(MoneyError::NotANumber) };
    if let Some(i) = n.as_i64() {
        if i < 0 {
            return Err(MoneyError::Negative);
        }
        return i.checked_mul(100).filter(|f| *f as f64 <= MAX_YUAN * 100.0).ok_or(MoneyError::TooLarge);
    }
    if n.is_u64() {
        return Err(MoneyError::TooLarge);
    }
    let f = n.as_f64().ok_or(MoneyError::NotANumber)?;
    if !f.is_finite() || f.abs() > MAX_YUAN {
        return Err(MoneyError::TooLarge);
    }
    let fen = (f * 100.0).round();
    if fen / 100.0 != f {
        return Err(MoneyError::TooPrecise);
    }
    if fen < 0.0 {
        return Err(MoneyError::Negative);
    }
    // |fen| ≤ 10^15 < 2^53: the conversion is exact
    Ok(fen as i64)
}

/// Fen as a JSON decimal of yuan: 1175 → `11.75`, 5 → `0.05`, 100 → `1.0`. Exact for every
/// amount below 10^15 fen (the shortest decimal that reads back as the nearest `f64` to
/// `fen / 100` is that decimal itself).
pub fn yuan(fen: i64) -> Value {
    Number::from_f64(fen as f64 / 100.0).map_or(Value::Null, Value::Number)
}

/// A FHIR Money in CNY from fen.
pub fn money(fen: i64) -> Value {
    json!({ "value": yuan(fen), "currency": "CNY" })
}

// ---------------------------------------------------------------------------------------
// reading

const USED: &[&str] = &[
    "resourceType",
    "extension",
    "identifier",
    "status",
    "type",
    "use",
    "patient",
    "billablePeriod",
    "provider",
    "priority",
    "insurance",
    "item",
    "total",
];
const IGNORED: &[&str] = &["id", "meta", "text", "language", "created"];
const UNSUPPORTED: &[&str] = &[
    "implicitRules",
    "contained",
    "modifierExtension",
    "subType",
    "enterer",
    "insurer",
    "fundsReserve",
    "related",
    "prescription",
    "originalPrescription",
    "payee",
    "referral",
    "facility",
    "careTeam",
    "supportingInfo",
    "diagnosis",
    "procedure",
    "accident",
];
const ITEM_USED: &[&str] = &["sequence", "productOrService", "quantity", "unitPrice", "net", "encounter"];
const ITEM_UNSUPPORTED: &[&str] = &[
    "extension",
    "modifierExtension",
    "careTeamSequence",
    "diagnosisSequence",
    "procedureSequence",
    "informationSequence",
    "revenue",
    "category",
    "modifier",
    "programCode",
    "servicedDate",
    "servicedPeriod",
    "locationCodeableConcept",
    "locationAddress",
    "locationReference",
    "factor",
    "udi",
    "bodySite",
    "subSite",
    "detail",
];
const INSURANCE_KEYS: &[&str] = &[
    "id",
    "extension",
    "modifierExtension",
    "sequence",
    "focal",
    "identifier",
    "coverage",
    "businessArrangement",
    "preAuthRef",
    "claimResponse",
];
const IDENTIFIER_KEYS: &[&str] = &["id", "extension", "use", "type", "system", "value", "period", "assigner"];
const MONEY_KEYS: &[&str] = &["id", "extension", "value", "currency"];
const QUANTITY_KEYS: &[&str] = &["id", "extension", "value", "comparator", "unit", "system", "code"];
const PERIOD_KEYS: &[&str] = &["id", "extension", "start", "end"];

/// The Claim-specific readings; the shared ones are in [`crate::read`].
impl Reader {
    /// The codes of a CodeableConcept in `system`.
    fn codes_in<'a>(&mut self, v: &'a Value, path: &str, system: &str) -> Option<Vec<(String, &'a str)>> {
        let o = self.object(v, path, CONCEPT_KEYS)?;
        if let Some(t) = o.get("text") {
            self.string(t, &format!("{path}.text"));
        }
        let mut found = Vec::new();
        let Some(cs) = o.get("coding") else { return Some(found) };
        for (j, c) in self.array(cs, &format!("{path}.coding")).unwrap_or_default().iter().enumerate() {
            let cpath = format!("{path}.coding[{j}]");
            let Some(co) = self.object(c, &cpath, CODING_KEYS) else { continue };
            let sys = co.get("system").and_then(|s| self.string(s, &format!("{cpath}.system")));
            let code = co.get("code").and_then(|s| self.string(s, &format!("{cpath}.code")));
            if let (Some(s), Some(c)) = (sys, code)
                && s == system
            {
                found.push((format!("{cpath}.code"), c));
            }
        }
        Some(found)
    }

    /// A Money in CNY, as fen; problems are reported at `path`.
    fn money(&mut self, v: &Value, path: &str) -> Option<i64> {
        let o = self.object(v, path, MONEY_KEYS)?;
        if o.contains_key("extension") {
            self.add(IssueType::NotSupported, &format!("{path}.extension"), "extensions on Money are not supported");
        }
        match o.get("currency") {
            None => self.add(IssueType::Required, path, "currency is required: CNY"),
            Some(c) => match c.as_str() {
                Some("CNY") => {}
                Some(_) => self.add(IssueType::Value, path, "amounts are in CNY (yuan)"),
                None => self.add(IssueType::Structure, &format!("{path}.currency"), "expected a string"),
            },
        }
        let Some(value) = o.get("value") else {
            self.add(IssueType::Required, path, "value is required (yuan, at most two decimals)");
            return None;
        };
        match fen_from_yuan(value) {
            Ok(f) => Some(f),
            Err(MoneyError::NotANumber) => {
                self.add(IssueType::Structure, &format!("{path}.value"), "expected a JSON number (a decimal)");
                None
            }
            Err(e) => {
                self.add(IssueType::Value, path, e.message());
                None
            }
        }
    }

    /// A positive whole number (`sequence`, `quantity.value`).
    fn whole(&mut self, v: &Value, path: &str, what: &str) -> Option<i64> {
        let n = match v {
            Value::Number(n) => n,
            _ => {
                self.add(IssueType::Structure, path, "expected a JSON number");
                return None;
            }
        };
        let w = n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15).map(|f| f as i64));
        match w {
            Some(w) if (1..=1_000_000_000).contains(&w) => Some(w),
            _ => {
                self.add(IssueType::Value, path, format!("{what} is a whole number from 1"));
                None
            }
        }
    }

    /// An extension's value, which must be `valueCode`.
    fn ext_code<'a>(&mut self, o: &'a Map<String, Value>, path: &str, allowed: &[&str]) -> Option<&'a str> {
        let values: Vec<&String> = o.keys().filter(|k| k.starts_with("value")).collect();
        match (o.get("valueCode"), values.len()) {
            (Some(v), 1) => self.code(v, &format!("{path}.valueCode"), allowed),
            _ => {
                self.add(IssueType::Structure, path, "expected exactly one value, valueCode");
                None
            }
        }
    }
}

/// A FHIR date, or the date part of a dateTime (`2026-12-03`, `2026-12-03T10:00:00+08:00`).
fn fhir_date(s: &str) -> Option<Date> {
    let d = s.get(..10)?;
    if s.len() > 10 && !s[10..].starts_with('T') {
        return None;
    }
    let b = d.as_bytes();
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u16> {
        d.get(r).filter(|p| p.bytes().all(|c| c.is_ascii_digit()))?.parse().ok()
    };
    let (y, m, day) = (num(0..4)?, u8::try_from(num(5..7)?).ok()?, u8::try_from(num(8..10)?).ok()?);
    Date::from_calendar_date(i32::from(y), Month::try_from(m).ok()?, day).ok()
}

fn tier_codes() -> Vec<&'static str> {
    Tier::ALL.iter().map(|t| t.as_str()).collect()
}

/// Read a Claim sent to `$submit`. Every problem is reported, each naming its element.
pub fn parse_claim(v: &Value) -> Result<ClaimInput, Vec<Issue>> {
    let mut rd = Reader::default();
    let Some(o) = v.as_object() else {
        return Err(vec![Issue::error(IssueType::Structure, None, "the body is not a JSON object (a FHIR resource)")]);
    };
    match o.get("resourceType").and_then(Value::as_str) {
        Some("Claim") => {}
        Some(other) => {
            return Err(vec![Issue::error(IssueType::Invalid, None, format!("expected a Claim, got a {other}"))]);
        }
        None => return Err(vec![Issue::error(IssueType::Structure, None, "resourceType is missing")]),
    }
    for k in o.keys() {
        let path = format!("Claim.{k}");
        if USED.contains(&k.as_str()) || IGNORED.contains(&k.as_str()) {
            continue;
        }
        if UNSUPPORTED.contains(&k.as_str()) {
            rd.add(IssueType::NotSupported, &path, format!("{k} is not supported for settlement claims"));
        } else if k.starts_with('_') {
            rd.add(IssueType::NotSupported, &path, "extensions on primitive values are not supported");
        } else {
            rd.add(IssueType::Structure, &path, format!("unknown element {k:?}: not part of an R4 Claim"));
        }
    }

    match o.get("status") {
        None => rd.add(IssueType::Required, "Claim.status", "status is required (active)"),
        Some(s) => {
            if let Some(s) = rd.code(s, "Claim.status", &CLAIM_STATUSES)
                && s != "active"
            {
                rd.add(IssueType::Value, "Claim.status", "a claim to settle is active");
            }
        }
    }
    let preview = match o.get("use") {
        None => {
            rd.add(IssueType::Required, "Claim.use", "use is required: claim (settle) or preauthorization (preview)");
            None
        }
        Some(u) => rd.code(u, "Claim.use", &CLAIM_USES).map(|u| u != "claim"),
    };
    let setting = match o.get("type") {
        None => {
            rd.add(
                IssueType::Required,
                "Claim.type",
                "type is required: institutional (inpatient) or professional (outpatient)",
            );
            None
        }
        Some(t) => match rd.codes_in(t, "Claim.type", CLAIM_TYPE_SYSTEM).as_deref() {
            None => None,
            Some([]) => {
                rd.add(IssueType::CodeInvalid, "Claim.type", format!("no coding of {CLAIM_TYPE_SYSTEM}"));
                None
            }
            Some([(_, "institutional")]) => Some(Setting::Inpatient),
            Some([(_, "professional")]) => Some(Setting::Outpatient),
            Some([(p, c)]) if CLAIM_TYPES.contains(c) => {
                let msg = format!(
                    "claim type {c} is not settled here: institutional (inpatient) or professional (outpatient)"
                );
                rd.add(IssueType::NotSupported, p, msg);
                None
            }
            Some([(p, c)]) => {
                rd.add(IssueType::CodeInvalid, p, format!("{c:?} is not one of {}", CLAIM_TYPES.join(", ")));
                None
            }
            Some(_) => {
                rd.add(IssueType::Value, "Claim.type", format!("give one coding of {CLAIM_TYPE_SYSTEM}"));
                None
            }
        },
    };
    if let Some(p) = o.get("priority")
        && let Some(codes) = rd.codes_in(p, "Claim.priority", "http://terminology.hl7.org/CodeSystem/processpriority")
    {
        for (path, c) in codes {
            if !PRIORITIES.contains(&c) {
                rd.add(IssueType::CodeInvalid, &path, format!("{c:?} is not one of {}", PRIORITIES.join(", ")));
            }
        }
    }
    let patient_id = match o.get("patient") {
        None => {
            rd.add(IssueType::Required, "Claim.patient", "patient is required: Patient/<id>");
            None
        }
        Some(p) => rd.reference(p, "Claim.patient", "Patient"),
    };
    let provider_id = o.get("provider").and_then(|p| rd.reference(p, "Claim.provider", "Organization"));

    let mut txn_no = None;
    if let Some(ids) = o.get("identifier")
        && let Some(first) = rd.array(ids, "Claim.identifier").unwrap_or_default().first()
        && let Some(io) = rd.object(first, "Claim.identifier[0]", IDENTIFIER_KEYS)
    {
        match io.get("value").map(|v| rd.string(v, "Claim.identifier[0].value")) {
            None => rd.add(IssueType::Required, "Claim.identifier[0].value", "the transaction number is required"),
            Some(None) => {}
            Some(Some(s)) => {
                let s = s.trim();
                if s.is_empty() || s.chars().count() > MAX_TXN_NO || s.chars().any(char::is_control) {
                    rd.add(
                        IssueType::Value,
                        "Claim.identifier[0].value",
                        format!("a transaction number is 1 to {MAX_TXN_NO} printable characters"),
                    );
                } else {
                    txn_no = Some(s.to_owned());
                }
            }
        }
    }
    if preview == Some(false)
        && txn_no.is_none()
        && !rd.issues.iter().any(|i| i.expression.as_deref().is_some_and(|e| e.starts_with("Claim.identifier")))
    {
        rd.add(
            IssueType::Required,
            "Claim.identifier",
            "a claim to settle carries the caller's transaction number in identifier[0].value",
        );
    }

    let mut date = None;
    if let Some(bp) = o.get("billablePeriod")
        && let Some(po) = rd.object(bp, "Claim.billablePeriod", PERIOD_KEYS)
    {
        match po.get("start").map(|s| rd.string(s, "Claim.billablePeriod.start")) {
            None => {
                rd.add(IssueType::Required, "Claim.billablePeriod.start", "the day of care is billablePeriod.start")
            }
            Some(None) => {}
            Some(Some(s)) => match fhir_date(s) {
                Some(d) => date = Some(d),
                None => rd.add(IssueType::Value, "Claim.billablePeriod.start", "expected a date, YYYY-MM-DD"),
            },
        }
        if let Some(e) = po.get("end") {
            rd.string(e, "Claim.billablePeriod.end");
        }
    }

    let mut coverage_id = None;
    if let Some(ins) = o.get("insurance") {
        let list = rd.array(ins, "Claim.insurance").unwrap_or_default();
        if let Some(first) = list.first()
            && let Some(io) = rd.object(first, "Claim.insurance[0]", INSURANCE_KEYS)
        {
            for k in ["modifierExtension", "identifier", "businessArrangement", "preAuthRef", "claimResponse"] {
                if io.contains_key(k) {
                    rd.add(
                        IssueType::NotSupported,
                        &format!("Claim.insurance[0].{k}"),
                        format!("{k} is not supported"),
                    );
                }
            }
            match io.get("coverage") {
                None => {
                    rd.add(IssueType::Required, "Claim.insurance[0].coverage", "coverage is required: Coverage/<id>")
                }
                Some(c) => coverage_id = rd.reference(c, "Claim.insurance[0].coverage", "Coverage"),
            }
        }
        if list.len() > 1 {
            rd.add(IssueType::NotSupported, "Claim.insurance[1]", "a claim is settled against one coverage");
        }
    }

    let mut arrival_code = None;
    let mut after_stay_at = None;
    let mut after_path = None;
    if let Some(exts) = o.get("extension") {
        for (i, e) in rd.array(exts, "Claim.extension").unwrap_or_default().iter().enumerate() {
            let path = format!("Claim.extension[{i}]");
            let Some(eo) = e.as_object() else {
                rd.add(IssueType::Structure, &path, "expected a JSON object");
                continue;
            };
            let Some(url) = eo.get("url").and_then(Value::as_str) else {
                rd.add(IssueType::Required, &format!("{path}.url"), "an extension has a url");
                continue;
            };
            let mut keys = vec!["id", "url"];
            keys.extend(eo.keys().map(String::as_str).filter(|k| k.starts_with("value")));
            rd.object(e, &path, &keys);
            if url == ext(EXT_ARRIVAL) {
                arrival_code = rd.ext_code(eo, &path, &ARRIVALS);
            } else if url == ext(EXT_AFTER_STAY_AT) {
                after_path = Some(path.clone());
                after_stay_at = rd.ext_code(eo, &path, &tier_codes()).and_then(Tier::parse);
            } else {
                rd.add(IssueType::Extension, &path, "unknown extension");
            }
        }
    }
    let arrival = match arrival_code {
        None => None,
        Some("self_referred") => Some(Arrival::SelfReferred),
        Some("upward_referral") => Some(Arrival::UpwardReferral { after_stay_at }),
        Some("downward_referral") => Some(Arrival::DownwardReferral),
        Some(_) => Some(Arrival::Emergency),
    };
    if let Some(p) = after_path
        && !matches!(arrival, Some(Arrival::UpwardReferral { .. }))
    {
        rd.add(IssueType::Value, &p, format!("{EXT_AFTER_STAY_AT} goes with an upward_referral arrival"));
    }

    let mut lines = Vec::new();
    let mut encounter: Option<(Uuid, String)> = None;
    let mut sum: Option<i64> = Some(0);
    match o.get("item").map(|i| rd.array(i, "Claim.item")) {
        None | Some(Some([])) => rd.add(IssueType::Required, "Claim.item", "a claim lists at least one item"),
        Some(None) => {}
        Some(Some(items)) if items.len() > MAX_ITEMS => {
            rd.add(IssueType::TooLong, "Claim.item", format!("a claim lists at most {MAX_ITEMS} items"));
        }
        Some(Some(items)) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("Claim.item[{i}]");
                let Some(io) = item.as_object() else {
                    rd.add(IssueType::Structure, &path, "expected a JSON object");
                    sum = None;
                    continue;
                };
                for k in io.keys() {
                    let kp = format!("{path}.{k}");
                    if k == "id" || ITEM_USED.contains(&k.as_str()) {
                        continue;
                    }
                    if ITEM_UNSUPPORTED.contains(&k.as_str()) {
                        rd.add(IssueType::NotSupported, &kp, format!("item {k} is not supported"));
                    } else {
                        rd.add(
                            IssueType::Structure,
                            &kp,
                            format!("unknown element {k:?}: not part of an R4 Claim.item"),
                        );
                    }
                }
                if let Some(s) = io.get("sequence")
                    && let Some(s) = rd.whole(s, &format!("{path}.sequence"), "sequence")
                    && s != i as i64 + 1
                {
                    rd.add(
                        IssueType::Value,
                        &format!("{path}.sequence"),
                        format!("items are numbered 1, 2, 3 … in order: expected {}", i + 1),
                    );
                }
                let code = match io.get("productOrService") {
                    None => {
                        rd.add(
                            IssueType::Required,
                            &format!("{path}.productOrService"),
                            format!("the item code, a coding of {ITEM_SYSTEM}"),
                        );
                        None
                    }
                    Some(p) => {
                        let ppath = format!("{path}.productOrService");
                        match rd.codes_in(p, &ppath, ITEM_SYSTEM) {
                            None => None,
                            Some(codes) => match codes.as_slice() {
                                [] => {
                                    rd.add(
                                        IssueType::CodeInvalid,
                                        &ppath,
                                        format!("no coding of {ITEM_SYSTEM} (the national insurance item code)"),
                                    );
                                    None
                                }
                                [(cp, c)] => {
                                    let c = c.trim();
                                    if c.is_empty() || c.chars().count() > 64 {
                                        rd.add(IssueType::Value, cp, "an item code is 1 to 64 characters");
                                        None
                                    } else {
                                        Some(c.to_owned())
                                    }
                                }
                                _ => {
                                    rd.add(IssueType::Value, &ppath, format!("give one coding of {ITEM_SYSTEM}"));
                                    None
                                }
                            },
                        }
                    }
                };
                let quantity = match io.get("quantity") {
                    None => {
                        rd.add(
                            IssueType::Required,
                            &format!("{path}.quantity"),
                            "quantity is required: a whole number from 1",
                        );
                        None
                    }
                    Some(q) => {
                        let qpath = format!("{path}.quantity");
                        match rd.object(q, &qpath, QUANTITY_KEYS) {
                            None => None,
                            Some(qo) => {
                                if qo.contains_key("comparator") {
                                    rd.add(
                                        IssueType::NotSupported,
                                        &format!("{qpath}.comparator"),
                                        "a billed quantity is exact",
                                    );
                                }
                                match qo.get("value") {
                                    None => {
                                        rd.add(IssueType::Required, &qpath, "quantity.value is required");
                                        None
                                    }
                                    Some(Value::Number(n)) => {
                                        let w = n.as_i64().or_else(|| {
                                            n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15).map(|f| f as i64)
                                        });
                                        match w {
                                            Some(w) if (1..=1_000_000).contains(&w) => Some(w),
                                            _ => {
                                                rd.add(
                                                    IssueType::Value,
                                                    &qpath,
                                                    "a quantity is a whole number from 1 to 1,000,000",
                                                );
                                                None
                                            }
                                        }
                                    }
                                    Some(_) => {
                                        rd.add(
                                            IssueType::Structure,
                                            &format!("{qpath}.value"),
                                            "expected a JSON number",
                                        );
                                        None
                                    }
                                }
                            }
                        }
                    }
                };
                let unit_price = match io.get("unitPrice") {
                    None => {
                        rd.add(
                            IssueType::Required,
                            &format!("{path}.unitPrice"),
                            "unitPrice is required: { value (yuan), currency: CNY }",
                        );
                        None
                    }
                    Some(m) => rd.money(m, &format!("{path}.unitPrice")),
                };
                let amount = match (quantity, unit_price) {
                    (Some(q), Some(p)) => {
                        let a = q.checked_mul(p).filter(|a| (*a as f64) <= MAX_YUAN * 100.0);
                        if a.is_none() {
                            rd.add(IssueType::Value, &path, "quantity × unitPrice is too large");
                        }
                        a
                    }
                    _ => None,
                };
                sum = sum.zip(amount).and_then(|(s, a)| s.checked_add(a));
                if let Some(net) = io.get("net") {
                    let npath = format!("{path}.net");
                    if let (Some(n), Some(a)) = (rd.money(net, &npath), amount)
                        && n != a
                    {
                        rd.add(IssueType::Value, &npath, "net is quantity × unitPrice");
                    }
                }
                if let Some(es) = io.get("encounter") {
                    let epath = format!("{path}.encounter");
                    let list = rd.array(es, &epath).unwrap_or_default();
                    if list.len() > 1 {
                        rd.add(IssueType::NotSupported, &format!("{epath}[1]"), "a claim settles one encounter");
                    }
                    if let Some(e) = list.first() {
                        let p0 = format!("{epath}[0]");
                        if let Some(id) = rd.reference(e, &p0, "Encounter") {
                            match &encounter {
                                None => encounter = Some((id, p0)),
                                Some((first, _)) if *first == id => {}
                                Some((_, fp)) => {
                                    let msg = format!("a claim settles one encounter; {fp} names another");
                                    rd.add(IssueType::Value, &p0, msg);
                                }
                            }
                        }
                    }
                }
                if let (Some(code), Some(quantity), Some(unit_price_fen)) = (code, quantity, unit_price) {
                    lines.push(ClaimLine { code, quantity, unit_price_fen });
                }
            }
        }
    }
    if let Some(t) = o.get("total")
        && let Some(t) = rd.money(t, "Claim.total")
        && let Some(s) = sum
        && rd.issues.is_empty()
        && t != s
    {
        rd.add(IssueType::Value, "Claim.total", "total is the sum of the items' quantity × unitPrice");
    }

    match (rd.issues.is_empty(), patient_id, setting, preview) {
        (true, Some(patient_id), Some(setting), Some(preview)) => Ok(ClaimInput {
            txn_no,
            preview,
            patient_id,
            encounter_id: encounter.map(|(id, _)| id),
            provider_id,
            coverage_id,
            setting,
            date,
            arrival,
            lines,
        }),
        _ => Err(rd.issues),
    }
}

/// The FHIRPath of a field the JSON API names in an error (`lines[2].unit_price_fen` →
/// `Claim.item[2].unitPrice`); `None` for a field without a place in the Claim.
pub fn field_expression(field: &str) -> Option<String> {
    if let Some(rest) = field.strip_prefix("lines[") {
        let (i, tail) = rest.split_once(']')?;
        let i: usize = i.parse().ok()?;
        let elem = match tail.strip_prefix('.') {
            None if tail.is_empty() => "",
            Some("code") => ".productOrService",
            Some("quantity") => ".quantity",
            Some("unit_price_fen") => ".unitPrice",
            _ => return None,
        };
        return Some(format!("Claim.item[{i}]{elem}"));
    }
    Some(
        match field {
            "lines" => "Claim.item",
            "txn_no" => "Claim.identifier[0].value",
            "patient_id" => "Claim.patient",
            "encounter_id" => "Claim.item.encounter",
            "setting" => "Claim.type",
            "date" => "Claim.billablePeriod.start",
            "facility_id" => "Claim.provider",
            "arrival" => return Some(format!("Claim.extension('{}')", ext(EXT_ARRIVAL))),
            _ => return None,
        }
        .to_owned(),
    )
}

// ---------------------------------------------------------------------------------------
// writing

/// One settlement (or a preview) to answer as a ClaimResponse.
#[derive(Debug, Clone)]
pub struct SettlementView<'a> {
    /// The settlement's id; `None` for a preview (nothing stored).
    pub id: Option<Uuid>,
    pub txn_no: Option<&'a str>,
    pub reversed: bool,
    pub patient_id: Uuid,
    pub facility_id: Uuid,
    pub facility_name: Option<&'a str>,
    /// The claim as adjudicated (scheme, insured region, setting, place, arrival, lines).
    pub claim: &'a Claim,
    pub split: &'a Split,
    pub created_at: OffsetDateTime,
}

/// A FHIR instant in UTC, to the millisecond.
pub(crate) fn instant(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// The claim type of a setting.
pub fn claim_type(setting: Setting) -> Value {
    let code = match setting {
        Setting::Inpatient => "institutional",
        Setting::Outpatient => "professional",
    };
    json!({ "coding": [{ "system": CLAIM_TYPE_SYSTEM, "code": code }] })
}

pub fn arrival_code(a: Arrival) -> &'static str {
    match a {
        Arrival::SelfReferred => "self_referred",
        Arrival::UpwardReferral { .. } => "upward_referral",
        Arrival::DownwardReferral => "downward_referral",
        Arrival::Emergency => "emergency",
    }
}

pub fn place_code(p: Place) -> &'static str {
    match p {
        Place::Home => "home",
        Place::FiledLongTerm => "filed_long_term",
        Place::FiledTemporary => "filed_temporary",
        Place::Unfiled => "unfiled",
    }
}

pub fn class_code(c: ItemClass) -> &'static str {
    match c {
        ItemClass::A => "a",
        ItemClass::B => "b",
        ItemClass::SelfPay => "self_pay",
    }
}

/// The 医疗保障局 of an insured region, e.g. 四川省广安市医疗保障局.
pub fn insurer_display(region: &str) -> String {
    match tiercare_domain::region::full_name(region) {
        Some(name) => format!("{name}医疗保障局"),
        None => format!("{region} 医疗保障局"),
    }
}

pub(crate) fn category(system: &str, code: &str) -> Value {
    json!({ "coding": [{ "system": system, "code": code }] })
}

/// The split as (category system, code, fen), in the order of `ClaimResponse.total`.
pub fn split_categories(s: &Split) -> [(&'static str, &'static str, i64); 8] {
    [
        (ADJUDICATION_SYSTEM, "submitted", s.total_fen),
        (ADJUDICATION_SYSTEM, "benefit", s.fund_fen),
        (ADJUDICATION_SYSTEM, "copay", s.coinsurance_fen),
        (ADJUDICATION_SYSTEM, "deductible", s.deductible_fen),
        (SPLIT_SYSTEM, "self_pay", s.self_pay_fen),
        (SPLIT_SYSTEM, "class_b_share", s.class_b_share_fen),
        (SPLIT_SYSTEM, "above_ceiling", s.above_ceiling_fen),
        (SPLIT_SYSTEM, "patient_total", s.patient_fen),
    ]
}

/// One line's split as (category system, code, fen), in the order of
/// `ClaimResponse.item.adjudication`: HL7's `submitted`, `eligible`, `deductible`, `copay`
/// (coinsurance), `benefit` (the fund), then ours (`self_pay`, `class_b_share`,
/// `above_ceiling`, `patient_total`). See [`crate::apportion`] for how a line's parts are
/// derived from the bill's.
pub fn item_categories(l: &LineSplit) -> [(&'static str, &'static str, i64); 9] {
    [
        (ADJUDICATION_SYSTEM, "submitted", l.submitted_fen),
        (ADJUDICATION_SYSTEM, "eligible", l.eligible_fen),
        (ADJUDICATION_SYSTEM, "deductible", l.deductible_fen),
        (ADJUDICATION_SYSTEM, "copay", l.copay_fen),
        (ADJUDICATION_SYSTEM, "benefit", l.benefit_fen),
        (SPLIT_SYSTEM, "self_pay", l.self_pay_fen),
        (SPLIT_SYSTEM, "class_b_share", l.class_b_share_fen),
        (SPLIT_SYSTEM, "above_ceiling", l.above_ceiling_fen),
        (SPLIT_SYSTEM, "patient_total", l.patient_fen),
    ]
}

/// The ClaimResponse of a settlement (or a preview).
pub fn claim_response(v: &SettlementView<'_>) -> Value {
    let (claim, split) = (v.claim, v.split);
    let mut extension = vec![
        json!({ "url": ext(EXT_INSURED_REGION), "valueCode": claim.insured_region }),
        json!({ "url": ext(EXT_PLACE), "valueCode": place_code(claim.place) }),
        json!({ "url": ext(EXT_ARRIVAL), "valueCode": arrival_code(claim.arrival) }),
    ];
    if let Arrival::UpwardReferral { after_stay_at: Some(t) } = claim.arrival {
        extension.push(json!({ "url": ext(EXT_AFTER_STAY_AT), "valueCode": t.as_str() }));
    }
    if !split.policy.is_empty() {
        extension.push(json!({ "url": ext(EXT_POLICY), "valueString": split.policy }));
    }
    let totals: Vec<Value> = split_categories(split)
        .iter()
        .map(|(sys, code, fen)| json!({ "category": category(sys, code), "amount": money(*fen) }))
        .collect();
    let mut adjudication: Vec<Value> = split_categories(split)
        .iter()
        .skip(1)
        .map(|(sys, code, fen)| json!({ "category": category(sys, code), "amount": money(*fen) }))
        .collect();
    adjudication.push(json!({
        "category": category(ADJUDICATION_SYSTEM, "eligpercent"),
        // basis points → percent, exact (bp / 100 has at most two decimals)
        "value": yuan(i64::from(split.rate_bp)),
    }));
    let mut requestor = json!({ "reference": format!("Organization/{}", v.facility_id) });
    if let Some(n) = v.facility_name {
        requestor["display"] = json!(n);
    }
    let mut r = json!({ "resourceType": "ClaimResponse" });
    if let Some(id) = v.id {
        r["id"] = json!(id.to_string());
    }
    r["extension"] = json!(extension);
    if let Some(t) = v.txn_no {
        r["identifier"] = json!([{
            "system": TXN_SYSTEM,
            "value": t,
            "assigner": { "reference": format!("Organization/{}", v.facility_id) },
        }]);
    }
    r["status"] = json!(if v.reversed { "cancelled" } else { "active" });
    r["type"] = claim_type(claim.setting);
    r["use"] = json!(if v.id.is_some() { "claim" } else { "preauthorization" });
    r["patient"] = json!({ "reference": format!("Patient/{}", v.patient_id) });
    r["created"] = json!(instant(v.created_at));
    r["insurer"] = json!({ "display": insurer_display(&claim.insured_region) });
    r["requestor"] = requestor;
    if let Some(id) = v.id {
        r["request"] = json!({ "reference": format!("Claim/{id}") });
    }
    r["outcome"] = json!("complete");
    r["disposition"] = json!(if v.reversed {
        "reversed (冲正): the fund payment was taken back"
    } else if v.id.is_some() {
        "settled"
    } else {
        "preview: nothing stored"
    });
    if !claim.lines.is_empty() {
        r["item"] = json!(
            claim
                .lines
                .iter()
                .zip(line_splits(claim, split))
                .enumerate()
                .map(|(i, (l, parts))| json!({
                    "extension": [{
                        "url": ext(EXT_ITEM_CLASS),
                        "valueCoding": { "system": ITEM_CLASS_SYSTEM, "code": class_code(l.class) },
                    }],
                    "itemSequence": i + 1,
                    "adjudication": item_categories(&parts)
                        .iter()
                        .map(|(sys, code, fen)| json!({ "category": category(sys, code), "amount": money(*fen) }))
                        .collect::<Vec<_>>(),
                }))
                .collect::<Vec<_>>()
        );
    }
    r["adjudication"] = json!(adjudication);
    r["total"] = json!(totals);
    if !split.explanation.is_empty() {
        r["processNote"] = json!(
            split
                .explanation
                .iter()
                .enumerate()
                .map(|(i, s)| json!({
                    "extension": [
                        { "url": ext(EXT_STEP_CODE), "valueCode": s.code },
                        { "url": ext(EXT_STEP_AMOUNT), "valueMoney": money(s.amount_fen) },
                    ],
                    "number": i + 1,
                    "type": "display",
                    "text": s.message,
                }))
                .collect::<Vec<_>>()
        );
    }
    r
}
