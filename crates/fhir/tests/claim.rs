//! Claim → bill, settlement → ClaimResponse, enrolment → Coverage (issue 6, part 8).
//! Expected values are worked out by hand from the mapping in `claim.rs`'s module notes
//! and the FHIR R4 specification; conformance is judged by the official R4 JSON Schema
//! (../shared/data/fhir-r4), not by the code under test.

use std::path::PathBuf;

use serde_json::{Value, json};
use tiercare_domain::facility::Tier;
use tiercare_domain::patient::{Enrolment, FilingStatus, Scheme};
use tiercare_domain::settlement::{Accumulators, Arrival, BillLine, Claim, ItemClass, Place, Setting, Split, Step};
use tiercare_fhir::claim::{
    ClaimInput, ClaimLine, MoneyError, SettlementView, claim_response, fen_from_yuan, field_expression, parse_claim,
    yuan,
};
use tiercare_fhir::coverage::coverage;
use tiercare_fhir::outcome::{Issue, IssueType, operation_outcome};
use time::macros::{date, datetime};
use uuid::Uuid;

const ITEM: &str = "http://tiercare.org/fhir/CodeSystem/nhsa-item";
const ADJ: &str = "http://terminology.hl7.org/CodeSystem/adjudication";
const SPLIT: &str = "http://tiercare.org/fhir/CodeSystem/settlement-split";
const PATIENT: &str = "0193a1b2-0000-7000-8000-000000000001";
const ENCOUNTER: &str = "0193a1b2-0000-7000-8000-000000000002";
const FACILITY: &str = "0193a1b2-0000-7000-8000-000000000003";

// ---------------------------------------------------------------------------------------
// the oracle: the official R4 JSON Schema

mod support;
use support::{fhir_data, read_json, schema_errors};

// ---------------------------------------------------------------------------------------
// yuan ⇄ fen

#[test]
fn yuan_decimals_become_fen_exactly() {
    let ok = [
        (json!(11.75), 1175),
        (json!(0.05), 5),
        (json!(0.1), 10),
        (json!(0.3), 30),     // 0.3 × 100 = 30.000000000000004 in f64
        (json!(19.99), 1999), // 19.99 × 100 = 1998.9999999999998 in f64
        (json!(3), 300),
        (json!(3.0), 300),
        (json!(0), 0),
        (json!(1234567.89), 123_456_789),
        (json!(99999999999.99), 9_999_999_999_999),
    ];
    for (v, fen) in ok {
        assert_eq!(fen_from_yuan(&v), Ok(fen), "{v}");
    }
    let refused = [
        (json!(0.125), MoneyError::TooPrecise),
        (json!(1.005), MoneyError::TooPrecise), // 100.49999999999999 fen in f64: not rounded to 1.00 or 1.01
        (json!(2.675), MoneyError::TooPrecise),
        (json!(11.751), MoneyError::TooPrecise),
        (json!(-1), MoneyError::Negative),
        (json!(-0.5), MoneyError::Negative),
        (json!("3.00"), MoneyError::NotANumber),
        (json!(null), MoneyError::NotANumber),
        (json!(1e14), MoneyError::TooLarge),
        (json!(u64::MAX), MoneyError::TooLarge),
        (json!(i64::MAX), MoneyError::TooLarge),
    ];
    for (v, e) in refused {
        assert_eq!(fen_from_yuan(&v), Err(e), "{v}");
    }
}

#[test]
fn fen_are_written_as_yuan_decimals_that_read_back_exactly() {
    // as JSON text, by hand
    for (fen, text) in
        [(1175, "11.75"), (5, "0.05"), (10, "0.1"), (100, "1.0"), (0, "0.0"), (123_456_789, "1234567.89")]
    {
        assert_eq!(yuan(fen).to_string(), text, "{fen} fen");
    }
    // and every amount up to 5,000 yuan, and some large ones, round-trips through JSON text
    let large = [9_999_999_999_999, 1_000_000_000_001, 450_359_962_737_049];
    for fen in (0..500_000).chain(large) {
        let text = yuan(fen).to_string();
        let back: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(fen_from_yuan(&back), Ok(fen), "{fen} → {text}");
    }
}

// ---------------------------------------------------------------------------------------
// reading a Claim

/// An outpatient visit: 阿莫西林 2 boxes at 11.75, a consultation at 25, a CT at 0.5 (sic).
fn claim() -> Value {
    json!({
        "resourceType": "Claim",
        "identifier": [{ "system": "urn:his:yuechi-county", "value": "HIS-20261203-000123" }],
        "status": "active",
        "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional" }] },
        "use": "claim",
        "patient": { "reference": format!("Patient/{PATIENT}") },
        "billablePeriod": { "start": "2026-12-03" },
        "created": "2026-12-03T10:15:00+08:00",
        "provider": { "reference": format!("Organization/{FACILITY}") },
        "priority": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal" }] },
        "insurance": [{ "sequence": 1, "focal": true, "coverage": { "reference": format!("Coverage/{ENCOUNTER}") } }],
        "item": [
            {
                "sequence": 1,
                "productOrService": { "coding": [{ "system": ITEM, "code": "XJ01CAA040A001010100739", "display": "阿莫西林胶囊" }] },
                "quantity": { "value": 2 },
                "unitPrice": { "value": 11.75, "currency": "CNY" },
                "net": { "value": 23.5, "currency": "CNY" },
                "encounter": [{ "reference": format!("Encounter/{ENCOUNTER}") }]
            },
            {
                "sequence": 2,
                "productOrService": { "coding": [{ "system": ITEM, "code": "001102000010000" }] },
                "quantity": { "value": 1 },
                "unitPrice": { "value": 25, "currency": "CNY" }
            },
            {
                "sequence": 3,
                "productOrService": { "coding": [{ "system": ITEM, "code": "002301000010000" }] },
                "quantity": { "value": 1.0 },
                "unitPrice": { "value": 0.5, "currency": "CNY" },
                "encounter": [{ "reference": format!("Encounter/{ENCOUNTER}") }]
            }
        ],
        "total": { "value": 49.0, "currency": "CNY" }
    })
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("a UUID")
}

#[test]
fn a_claim_reads_as_the_bill_it_describes() {
    let got = parse_claim(&claim()).expect("a good claim");
    let want = ClaimInput {
        txn_no: Some("HIS-20261203-000123".into()),
        preview: false,
        patient_id: uuid(PATIENT),
        encounter_id: Some(uuid(ENCOUNTER)),
        provider_id: Some(uuid(FACILITY)),
        coverage_id: Some(uuid(ENCOUNTER)),
        setting: Setting::Outpatient,
        date: Some(date!(2026 - 12 - 03)),
        arrival: None,
        lines: vec![
            ClaimLine { code: "XJ01CAA040A001010100739".into(), quantity: 2, unit_price_fen: 1175 },
            ClaimLine { code: "001102000010000".into(), quantity: 1, unit_price_fen: 2500 },
            ClaimLine { code: "002301000010000".into(), quantity: 1, unit_price_fen: 50 },
        ],
    };
    assert_eq!(got, want);
}

#[test]
fn the_minimal_claim_and_the_variants() {
    let minimal = json!({
        "resourceType": "Claim",
        "status": "active",
        "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "institutional" }] },
        "use": "preauthorization",
        "patient": { "reference": format!("Patient/{PATIENT}") },
        "item": [{
            "productOrService": { "coding": [{ "system": ITEM, "code": "C1" }] },
            "quantity": { "value": 3 },
            "unitPrice": { "value": 0.01, "currency": "CNY" }
        }]
    });
    let got = parse_claim(&minimal).expect("a minimal preview");
    assert!(got.preview);
    assert_eq!(got.txn_no, None, "a preview needs no transaction number");
    assert_eq!(got.setting, Setting::Inpatient);
    assert_eq!(
        (got.date, got.encounter_id, got.provider_id, got.coverage_id, got.arrival),
        (None, None, None, None, None)
    );
    assert_eq!(got.lines, vec![ClaimLine { code: "C1".into(), quantity: 3, unit_price_fen: 1 }]);

    let mut v = minimal.clone();
    v["use"] = json!("predetermination");
    assert!(parse_claim(&v).expect("predetermination").preview);

    // a dateTime gives its date; the arrival extensions
    let mut v = claim();
    v["billablePeriod"] = json!({ "start": "2026-11-30T23:10:00+08:00", "end": "2026-12-03T09:00:00+08:00" });
    v["extension"] = json!([
        { "url": "http://tiercare.org/fhir/StructureDefinition/settlement-arrival", "valueCode": "upward_referral" },
        { "url": "http://tiercare.org/fhir/StructureDefinition/settlement-arrival-after-stay-at", "valueCode": "township" }
    ]);
    let got = parse_claim(&v).expect("with arrival");
    assert_eq!(got.date, Some(date!(2026 - 11 - 30)));
    assert_eq!(got.arrival, Some(Arrival::UpwardReferral { after_stay_at: Some(Tier::Township) }));
    for (code, arrival) in [
        ("self_referred", Arrival::SelfReferred),
        ("downward_referral", Arrival::DownwardReferral),
        ("emergency", Arrival::Emergency),
    ] {
        let mut v = claim();
        v["extension"] =
            json!([{ "url": "http://tiercare.org/fhir/StructureDefinition/settlement-arrival", "valueCode": code }]);
        assert_eq!(parse_claim(&v).expect(code).arrival, Some(arrival));
    }
}

fn issues_of(v: &Value) -> Vec<Issue> {
    match parse_claim(v) {
        Ok(c) => panic!("expected issues, got {c:?}"),
        Err(i) => i,
    }
}

type Edit = Box<dyn Fn(&mut Value)>;

/// Set the element at `pointer` (its parent must exist).
fn set(pointer: &'static str, to: Value) -> Edit {
    Box::new(move |v: &mut Value| {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        match v.pointer_mut(parent).unwrap_or_else(|| panic!("{parent} in the claim")) {
            Value::Array(a) => a[key.parse::<usize>().expect("an index")] = to.clone(),
            Value::Object(o) => {
                o.insert(key.to_owned(), to.clone());
            }
            other => panic!("{parent} is {other}"),
        }
    })
}

fn remove(key: &'static str) -> Edit {
    Box::new(move |v: &mut Value| {
        v.as_object_mut().map(|o| o.remove(key));
    })
}

fn remove_in(pointer: &'static str, key: &'static str) -> Edit {
    Box::new(move |v: &mut Value| {
        v.pointer_mut(pointer).and_then(Value::as_object_mut).map(|o| o.remove(key));
    })
}

#[test]
fn each_bad_claim_is_refused_at_its_element() {
    use IssueType::*;
    let cases: Vec<(&str, Edit, IssueType, &str)> = vec![
        // unitPrice: the three refusals the issue names, at item[2]
        ("three decimals", set("/item/2/unitPrice/value", json!(0.505)), Value, "Claim.item[2].unitPrice"),
        ("negative price", set("/item/2/unitPrice/value", json!(-0.5)), Value, "Claim.item[2].unitPrice"),
        ("US dollars", set("/item/2/unitPrice/currency", json!("USD")), Value, "Claim.item[2].unitPrice"),
        ("no currency", remove_in("/item/2/unitPrice", "currency"), Required, "Claim.item[2].unitPrice"),
        ("no value", remove_in("/item/2/unitPrice", "value"), Required, "Claim.item[2].unitPrice"),
        ("price as text", set("/item/2/unitPrice/value", json!("0.50")), Structure, "Claim.item[2].unitPrice.value"),
        ("no unit price", remove_in("/item/1", "unitPrice"), Required, "Claim.item[1].unitPrice"),
        ("quantity 0", set("/item/0/quantity/value", json!(0)), Value, "Claim.item[0].quantity"),
        ("quantity 1.5", set("/item/0/quantity/value", json!(1.5)), Value, "Claim.item[0].quantity"),
        ("quantity -2", set("/item/0/quantity/value", json!(-2)), Value, "Claim.item[0].quantity"),
        ("no quantity", remove_in("/item/0", "quantity"), Required, "Claim.item[0].quantity"),
        (
            "quantity <",
            set("/item/0/quantity/comparator", json!("<")),
            NotSupported,
            "Claim.item[0].quantity.comparator",
        ),
        ("net wrong", set("/item/0/net/value", json!(23.49)), Value, "Claim.item[0].net"),
        ("total wrong", set("/total/value", json!(48.99)), Value, "Claim.total"),
        ("no item code", remove_in("/item/1", "productOrService"), Required, "Claim.item[1].productOrService"),
        (
            "item code of another system",
            set("/item/1/productOrService/coding/0/system", json!("http://snomed.info/sct")),
            CodeInvalid,
            "Claim.item[1].productOrService",
        ),
        (
            "blank item code",
            set("/item/1/productOrService/coding/0/code", json!(" ")),
            Value,
            "Claim.item[1].productOrService.coding[0].code",
        ),
        ("sequence out of order", set("/item/1/sequence", json!(3)), Value, "Claim.item[1].sequence"),
        ("item factor", set("/item/1/factor", json!(0.5)), NotSupported, "Claim.item[1].factor"),
        ("item unknown element", set("/item/1/price", json!(1)), Structure, "Claim.item[1].price"),
        (
            "two encounters",
            set("/item/2/encounter/0/reference", json!(format!("Encounter/{PATIENT}"))),
            Value,
            "Claim.item[2].encounter[0]",
        ),
        (
            "encounter not a UUID",
            set("/item/0/encounter/0/reference", json!("Encounter/123")),
            Value,
            "Claim.item[0].encounter[0]",
        ),
        ("no items", set("/item", json!([])), Required, "Claim.item"),
        ("no patient", remove("patient"), Required, "Claim.patient"),
        (
            "patient an identity number",
            set("/patient/reference", json!("Patient/511621196203081027")),
            Value,
            "Claim.patient",
        ),
        ("patient a Group", set("/patient/reference", json!(format!("Group/{PATIENT}"))), Value, "Claim.patient"),
        ("no type", remove("type"), Required, "Claim.type"),
        ("pharmacy claim", set("/type/coding/0/code", json!("pharmacy")), NotSupported, "Claim.type.coding[0].code"),
        (
            "type not a claim type",
            set("/type/coding/0/code", json!("inpatient")),
            CodeInvalid,
            "Claim.type.coding[0].code",
        ),
        ("no use", remove("use"), Required, "Claim.use"),
        ("use not a code", set("/use", json!("settle")), CodeInvalid, "Claim.use"),
        ("status draft", set("/status", json!("draft")), Value, "Claim.status"),
        ("no status", remove("status"), Required, "Claim.status"),
        ("no transaction number", remove("identifier"), Required, "Claim.identifier"),
        ("blank transaction number", set("/identifier/0/value", json!("  ")), Value, "Claim.identifier[0].value"),
        ("bad date", set("/billablePeriod/start", json!("2026-02-30")), Value, "Claim.billablePeriod.start"),
        ("partial date", set("/billablePeriod/start", json!("2026-12")), Value, "Claim.billablePeriod.start"),
        (
            "provider a practitioner",
            set("/provider/reference", json!(format!("Practitioner/{FACILITY}"))),
            Value,
            "Claim.provider",
        ),
        (
            "coverage by identifier",
            set("/insurance/0/coverage", json!({ "identifier": { "value": "x" } })),
            NotSupported,
            "Claim.insurance[0].coverage.identifier",
        ),
        ("a diagnosis", set("/diagnosis", json!([])), NotSupported, "Claim.diagnosis"),
        ("an unknown element", set("/bill", json!(1)), Structure, "Claim.bill"),
        ("a primitive extension", set("/_use", json!({})), NotSupported, "Claim._use"),
        (
            "unknown extension",
            set("/extension", json!([{ "url": "http://example.org/x", "valueCode": "y" }])),
            Extension,
            "Claim.extension[0]",
        ),
        (
            "unknown arrival",
            set(
                "/extension",
                json!([{ "url": "http://tiercare.org/fhir/StructureDefinition/settlement-arrival", "valueCode": "walk_in" }]),
            ),
            CodeInvalid,
            "Claim.extension[0].valueCode",
        ),
        (
            "after-stay without an upward arrival",
            set(
                "/extension",
                json!([{ "url": "http://tiercare.org/fhir/StructureDefinition/settlement-arrival-after-stay-at", "valueCode": "county" }]),
            ),
            Value,
            "Claim.extension[0]",
        ),
    ];
    for (name, edit, code, expression) in cases {
        let mut v = claim();
        edit(&mut v);
        let issues = issues_of(&v);
        assert!(
            issues.iter().any(|i| i.code == code && i.expression.as_deref() == Some(expression)),
            "{name}: expected {} at {expression}, got {issues:?}",
            code.as_str()
        );
        assert!(issues.iter().all(|i| i.expression.is_some()), "{name}: every issue names its element: {issues:?}");
        assert!(issues.iter().all(|i| !i.diagnostics.contains("511621196203081027")), "{name}: not echoed");
    }
}

#[test]
fn every_problem_is_reported_at_once_and_not_a_claim_is_refused_whole() {
    let mut v = claim();
    v["item"][0]["unitPrice"]["value"] = json!(1.234);
    v["item"][2]["quantity"]["value"] = json!(0);
    v.as_object_mut().map(|o| o.remove("patient"));
    let exprs: Vec<String> = issues_of(&v).into_iter().filter_map(|i| i.expression).collect();
    for e in ["Claim.item[0].unitPrice", "Claim.item[2].quantity", "Claim.patient"] {
        assert!(exprs.iter().any(|x| x == e), "{e} in {exprs:?}");
    }
    let issues = issues_of(&json!({ "resourceType": "ServiceRequest" }));
    assert_eq!((issues.len(), issues[0].code), (1, IssueType::Invalid));
    assert_eq!(issues_of(&json!([1]))[0].code, IssueType::Structure);
    assert_eq!(issues_of(&json!({ "use": "claim" }))[0].code, IssueType::Structure);
}

#[test]
fn api_fields_map_to_claim_paths() {
    let e = |f: &str| field_expression(f);
    assert_eq!(e("lines[2].unit_price_fen").as_deref(), Some("Claim.item[2].unitPrice"));
    assert_eq!(e("lines[0].quantity").as_deref(), Some("Claim.item[0].quantity"));
    assert_eq!(e("lines[11].code").as_deref(), Some("Claim.item[11].productOrService"));
    assert_eq!(e("lines[1]").as_deref(), Some("Claim.item[1]"));
    assert_eq!(e("lines").as_deref(), Some("Claim.item"));
    assert_eq!(e("patient_id").as_deref(), Some("Claim.patient"));
    assert_eq!(e("txn_no").as_deref(), Some("Claim.identifier[0].value"));
    assert_eq!(e("date").as_deref(), Some("Claim.billablePeriod.start"));
    assert_eq!(e("lines[x].code"), None);
    assert_eq!(e("identity_number"), None);
}

#[test]
fn official_claim_examples_are_read_or_refused_precisely() {
    let Some(dir) = fhir_data() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("examples"))
        .expect("the examples directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("Claim-")))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the R4 Claim examples are there");
    for f in files {
        // they refer to Patient/1 and code items with USCLS and the like: each is refused,
        // every issue naming an element of the Claim
        let issues = issues_of(&read_json(&f));
        for i in &issues {
            let e =
                i.expression.as_deref().unwrap_or_else(|| panic!("{}: issue without expression {i:?}", f.display()));
            assert!(e.starts_with("Claim."), "{}: {e}", f.display());
        }
    }
    // one in detail: an oral claim, patient 1, a USCLS item, a diagnosis
    let exprs: Vec<String> = issues_of(&read_json(&dir.join("examples/Claim-100150.json")))
        .into_iter()
        .filter_map(|i| i.expression)
        .collect();
    for e in ["Claim.patient", "Claim.type.coding[0].code", "Claim.diagnosis", "Claim.item[0].productOrService"] {
        assert!(exprs.iter().any(|x| x == e), "{e} in {exprs:?}");
    }
}

// ---------------------------------------------------------------------------------------
// writing a ClaimResponse and a Coverage

/// An inpatient stay at a county hospital, 6,000.00 yuan, split by hand:
/// self-pay 300.00; class-B 1,000.00 at 10 % → 100.00; eligible 5,600.00; deductible
/// 500.00; (5,600.00 − 500.00) × 75 % = 3,825.00 fund; coinsurance 1,275.00; patient
/// 300 + 100 + 500 + 1,275 = 2,175.00 = 6,000.00 − 3,825.00.
fn settled() -> (Claim, Split) {
    let claim = Claim {
        scheme: Scheme::Resident,
        insured_region: "511600".into(),
        setting: Setting::Inpatient,
        tier: Tier::County,
        arrival: Arrival::UpwardReferral { after_stay_at: None },
        place: Place::Home,
        date: date!(2026 - 12 - 03),
        lines: vec![
            BillLine { class: ItemClass::A, amount_fen: 470_000 },
            BillLine { class: ItemClass::B, amount_fen: 100_000 },
            BillLine { class: ItemClass::SelfPay, amount_fen: 30_000 },
        ],
        accumulators: Accumulators::default(),
    };
    let split = Split {
        total_fen: 600_000,
        fund_fen: 382_500,
        patient_fen: 217_500,
        self_pay_fen: 30_000,
        class_b_share_fen: 10_000,
        deductible_fen: 50_000,
        coinsurance_fen: 127_500,
        above_ceiling_fen: 0,
        rate_bp: 7_500,
        policy: "广安市城乡居民医保 2026".into(),
        explanation: vec![
            Step { code: "self_pay".into(), amount_fen: 30_000, message: "self-pay items: 300.00".into() },
            Step { code: "class_b_share".into(), amount_fen: 10_000, message: "class-B share 10%: 100.00".into() },
            Step { code: "deductible".into(), amount_fen: 50_000, message: "deductible: 500.00".into() },
            Step { code: "fund".into(), amount_fen: 382_500, message: "fund 75%: 3825.00".into() },
        ],
        after: Accumulators { inpatient_fund_paid_fen: 382_500, ..Accumulators::default() },
    };
    (claim, split)
}

fn view<'a>(claim: &'a Claim, split: &'a Split, id: Option<Uuid>, reversed: bool) -> SettlementView<'a> {
    SettlementView {
        id,
        txn_no: id.map(|_| "HIS-20261203-000123"),
        reversed,
        patient_id: uuid(PATIENT),
        facility_id: uuid(FACILITY),
        facility_name: Some("岳池县人民医院"),
        claim,
        split,
        created_at: datetime!(2026-12-03 02:15:30.123456 UTC),
    }
}

fn total_of(r: &Value, system: &str, code: &str) -> Value {
    r["total"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|t| t["category"]["coding"][0]["system"] == system && t["category"]["coding"][0]["code"] == code)
        })
        .map(|t| t["amount"].clone())
        .unwrap_or_else(|| panic!("total {code} in {r}"))
}

#[test]
fn a_settlement_is_a_claim_response_with_the_split_in_yuan() {
    let (claim, split) = settled();
    let id = uuid(ENCOUNTER);
    let r = claim_response(&view(&claim, &split, Some(id), false));
    assert_eq!(r["resourceType"], "ClaimResponse");
    assert_eq!(r["id"], ENCOUNTER);
    assert_eq!(r["status"], "active");
    assert_eq!(r["use"], "claim");
    assert_eq!(r["outcome"], "complete");
    assert_eq!(r["type"]["coding"][0]["code"], "institutional");
    assert_eq!(r["patient"]["reference"], format!("Patient/{PATIENT}"));
    assert_eq!(r["request"]["reference"], format!("Claim/{ENCOUNTER}"));
    assert_eq!(r["requestor"]["reference"], format!("Organization/{FACILITY}"));
    assert_eq!(r["insurer"]["display"], "四川省广安市医疗保障局");
    assert_eq!(r["identifier"][0]["value"], "HIS-20261203-000123");
    assert_eq!(r["created"], "2026-12-03T02:15:30.123Z");
    let m = |yuan: Value| json!({ "value": yuan, "currency": "CNY" });
    assert_eq!(total_of(&r, ADJ, "submitted"), m(json!(6000.0)));
    assert_eq!(total_of(&r, ADJ, "benefit"), m(json!(3825.0)));
    assert_eq!(total_of(&r, ADJ, "copay"), m(json!(1275.0)));
    assert_eq!(total_of(&r, ADJ, "deductible"), m(json!(500.0)));
    assert_eq!(total_of(&r, SPLIT, "self_pay"), m(json!(300.0)));
    assert_eq!(total_of(&r, SPLIT, "class_b_share"), m(json!(100.0)));
    assert_eq!(total_of(&r, SPLIT, "above_ceiling"), m(json!(0.0)));
    assert_eq!(total_of(&r, SPLIT, "patient_total"), m(json!(2175.0)));
    // the header adjudication: the same parts and the rate
    let adj = r["adjudication"].as_array().expect("adjudication");
    assert!(adj.iter().any(|a| a["category"]["coding"][0]["code"] == "eligpercent" && a["value"] == json!(75.0)));
    assert!(
        adj.iter().any(|a| a["category"]["coding"][0]["code"] == "benefit" && a["amount"]["value"] == json!(3825.0))
    );
    // per line: its amount and class
    let items = r["item"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(items[1]["itemSequence"], 2);
    assert_eq!(items[1]["adjudication"][0]["category"]["coding"][0]["code"], "submitted");
    assert_eq!(items[1]["adjudication"][0]["amount"]["value"], json!(1000.0));
    assert_eq!(items[1]["extension"][0]["valueCoding"]["code"], "b");
    // the explanation
    let notes = r["processNote"].as_array().expect("notes");
    assert_eq!(notes.len(), 4);
    assert_eq!(notes[2]["number"], 3);
    assert_eq!(notes[2]["text"], "deductible: 500.00");
    assert_eq!(notes[2]["extension"][0]["valueCode"], "deductible");
    assert_eq!(notes[2]["extension"][1]["valueMoney"]["value"], json!(500.0));

    let cancelled = claim_response(&view(&claim, &split, Some(id), true));
    assert_eq!(cancelled["status"], "cancelled");
    let preview = claim_response(&view(&claim, &split, None, false));
    assert_eq!(preview["use"], "preauthorization");
    assert!(preview.get("id").is_none() && preview.get("request").is_none() && preview.get("identifier").is_none());
}

fn enrolment() -> Enrolment {
    Enrolment {
        id: uuid(ENCOUNTER),
        patient_id: uuid(PATIENT),
        scheme: Scheme::Employee,
        insured_region: "511600".into(),
        filing_status: FilingStatus::Temporary,
        filed_region: Some("510100".into()),
        valid_from: date!(2026 - 01 - 01),
        valid_to: Some(date!(2026 - 12 - 31)),
    }
}

#[test]
fn an_enrolment_is_a_coverage() {
    let c = coverage(&enrolment(), date!(2026 - 12 - 03));
    assert_eq!(c["resourceType"], "Coverage");
    assert_eq!(c["id"], ENCOUNTER);
    assert_eq!(c["status"], "active");
    assert_eq!(c["type"]["coding"][0]["code"], "employee");
    assert_eq!(c["type"]["coding"][0]["display"], "职工基本医疗保险");
    assert_eq!(c["beneficiary"]["reference"], format!("Patient/{PATIENT}"));
    assert_eq!(c["payor"][0]["display"], "四川省广安市医疗保障局");
    assert_eq!(c["period"], json!({ "start": "2026-01-01", "end": "2026-12-31" }));
    assert_eq!(c["class"][0]["value"], "employee");
    let ext = |name: &str| {
        c["extension"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["url"] == format!("http://tiercare.org/fhir/StructureDefinition/{name}")))
            .map(|e| e["valueCode"].clone())
    };
    assert_eq!(ext("insured-region"), Some(json!("511600")));
    assert_eq!(ext("filing-status"), Some(json!("temporary")));
    assert_eq!(ext("filed-region"), Some(json!("510100")));
    // the day after it ends
    assert_eq!(coverage(&enrolment(), date!(2027 - 01 - 01))["status"], "cancelled");
    assert_eq!(coverage(&enrolment(), date!(2026 - 12 - 31))["status"], "active");
}

#[test]
fn everything_written_conforms_to_the_official_r4_schema() {
    let Some(dir) = fhir_data() else { return };
    let schema = read_json(&dir.join("fhir.schema.json"));
    // the oracle catches what it should: money as a string, an unknown element
    let (claim, split) = settled();
    let mut bad = claim_response(&view(&claim, &split, Some(uuid(ENCOUNTER)), false));
    bad["total"][0]["amount"]["value"] = json!("6000.00");
    bad["settlement"] = json!(1);
    assert!(schema_errors(&schema, &bad).len() >= 2, "the schema refuses a string amount and an unknown element");

    for (id, reversed) in [(Some(uuid(ENCOUNTER)), false), (Some(uuid(ENCOUNTER)), true), (None, false)] {
        let r = claim_response(&view(&claim, &split, id, reversed));
        assert_eq!(schema_errors(&schema, &r), Vec::<String>::new(), "{r}");
    }
    let mut e = enrolment();
    e.filing_status = FilingStatus::NotFiled;
    e.filed_region = None;
    e.valid_to = None;
    for c in [coverage(&enrolment(), date!(2026 - 12 - 03)), coverage(&e, date!(2026 - 12 - 03))] {
        assert_eq!(schema_errors(&schema, &c), Vec::<String>::new(), "{c}");
    }
    // the Claim we document as input is R4 too
    assert_eq!(schema_errors(&schema, &self::claim()), Vec::<String>::new());
    // and so are the refusals
    let mut bad_claim = self::claim();
    bad_claim["item"][2]["unitPrice"]["value"] = json!(0.505);
    let oo = operation_outcome(&issues_of(&bad_claim));
    assert_eq!(schema_errors(&schema, &oo), Vec::<String>::new(), "{oo}");
}

#[test]
fn the_element_lists_cover_exactly_r4_claim() {
    let Some(dir) = fhir_data() else { return };
    let schema = read_json(&dir.join("fhir.schema.json"));
    // every R4 Claim element is either read, ignored or refused as not supported — never
    // refused as unknown (structure)
    let props = schema["definitions"]["Claim"]["properties"].as_object().expect("properties");
    for k in props.keys().filter(|k| !k.starts_with('_') && *k != "resourceType") {
        let mut v = claim();
        if v.get(k).is_some() {
            continue;
        }
        v[k] = json!({});
        if let Err(issues) = parse_claim(&v) {
            assert!(!issues.iter().any(|i| i.diagnostics.contains("not part of an R4 Claim")), "{k} is R4: {issues:?}");
        }
    }
}

/// The engine's own split of a bill under the shipped default policy, written as a
/// ClaimResponse: it conforms, and its totals are the hand-computed ones. The bill (resident
/// of 广安市, inpatient at a county hospital, referred up, not after a stay; default policy:
/// deductible 500.00, rate 80 %, class-B first share 10 %):
///   class A 150.00; class B 158.50 + 149.90 + 1,800.00 = 2,108.40 (share 210.84);
///   self-pay 240.00; total 2,498.40; eligible 2,047.56; fund (2,047.56 − 500.00) × 80 %
///   = 1,238.048 → 1,238.05; coinsurance 309.51; patient 1,260.35.
#[test]
fn the_engines_split_under_the_default_policy_is_written_exactly() {
    let policies = tiercare_domain::settlement::PolicySet::load_toml(tiercare_domain::settlement::DEFAULT_POLICY_TOML)
        .expect("the default policy set");
    let claim = Claim {
        scheme: Scheme::Resident,
        insured_region: "511600".into(),
        setting: Setting::Inpatient,
        tier: Tier::County,
        arrival: Arrival::UpwardReferral { after_stay_at: None },
        place: Place::Home,
        date: date!(2026 - 12 - 03),
        lines: vec![
            BillLine { class: ItemClass::A, amount_fen: 10_500 },
            BillLine { class: ItemClass::A, amount_fen: 4_500 },
            BillLine { class: ItemClass::B, amount_fen: 15_850 },
            BillLine { class: ItemClass::B, amount_fen: 14_990 },
            BillLine { class: ItemClass::B, amount_fen: 180_000 },
            BillLine { class: ItemClass::SelfPay, amount_fen: 24_000 },
        ],
        accumulators: Accumulators::default(),
    };
    let split = tiercare_domain::settlement::adjudicate(&policies, &claim).expect("adjudicated");
    let r = claim_response(&view(&claim, &split, Some(uuid(ENCOUNTER)), false));
    let m = |yuan: Value| json!({ "value": yuan, "currency": "CNY" });
    assert_eq!(total_of(&r, ADJ, "submitted"), m(json!(2498.4)));
    assert_eq!(total_of(&r, ADJ, "benefit"), m(json!(1238.05)));
    assert_eq!(total_of(&r, ADJ, "copay"), m(json!(309.51)));
    assert_eq!(total_of(&r, ADJ, "deductible"), m(json!(500.0)));
    assert_eq!(total_of(&r, SPLIT, "self_pay"), m(json!(240.0)));
    assert_eq!(total_of(&r, SPLIT, "class_b_share"), m(json!(210.84)));
    assert_eq!(total_of(&r, SPLIT, "above_ceiling"), m(json!(0.0)));
    assert_eq!(total_of(&r, SPLIT, "patient_total"), m(json!(1260.35)));
    let adj = r["adjudication"].as_array().expect("adjudication");
    assert!(adj.iter().any(|a| a["category"]["coding"][0]["code"] == "eligpercent" && a["value"] == json!(80.0)));
    assert_eq!(r["processNote"].as_array().map(Vec::len), Some(split.explanation.len()));
    assert!(!split.explanation.is_empty());
    if let Some(dir) = fhir_data() {
        let schema = read_json(&dir.join("fhir.schema.json"));
        assert_eq!(schema_errors(&schema, &r), Vec::<String>::new(), "{r}");
    }
}

// ---------------------------------------------------------------------------------------
// the split per line (ClaimResponse.item.adjudication) and the stored Claim

/// The amount of category `code` (of `system`) of one adjudication list, in fen.
fn adjudicated(list: &Value, system: &str, code: &str) -> i64 {
    let a = list
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|x| x["category"]["coding"][0]["system"] == system && x["category"]["coding"][0]["code"] == code)
        })
        .unwrap_or_else(|| panic!("{code} in {list}"));
    assert_eq!(a["amount"]["currency"], "CNY");
    fen_from_yuan(&a["amount"]["value"]).expect("an amount in yuan")
}

/// Every item category: (system, code, the ClaimResponse.total it adds up to, if any).
const ITEM_CATEGORIES: [(&str, &str, bool); 9] = [
    (ADJ, "submitted", true),
    (ADJ, "eligible", false),
    (ADJ, "deductible", true),
    (ADJ, "copay", true),
    (ADJ, "benefit", true),
    (SPLIT, "self_pay", true),
    (SPLIT, "class_b_share", true),
    (SPLIT, "above_ceiling", true),
    (SPLIT, "patient_total", true),
];

/// Each category's item amounts add up to its total; each item's parts add up to the line
/// (submitted = benefit + patient; patient = self-pay + class-B share + deductible + copay
/// + above the ceiling); no part is negative.
fn assert_items_add_up(r: &Value) {
    let items = r["item"].as_array().expect("items");
    for (system, code, has_total) in ITEM_CATEGORIES {
        let sum: i64 = items.iter().map(|i| adjudicated(&i["adjudication"], system, code)).sum();
        if has_total {
            let total = fen_from_yuan(&total_of(r, system, code)["value"]).expect("a total");
            assert_eq!(sum, total, "{code}: items {sum} fen, total {total} fen");
        }
    }
    for i in items {
        let a = |code: &str| {
            let system =
                if ["submitted", "eligible", "deductible", "copay", "benefit"].contains(&code) { ADJ } else { SPLIT };
            adjudicated(&i["adjudication"], system, code)
        };
        assert_eq!(a("submitted"), a("benefit") + a("patient_total"), "{i}");
        let parts = a("self_pay") + a("class_b_share") + a("deductible") + a("copay") + a("above_ceiling");
        assert_eq!(a("patient_total"), parts, "{i}");
        assert_eq!(a("eligible"), a("submitted") - a("self_pay") - a("class_b_share"), "{i}");
        assert!(ITEM_CATEGORIES.iter().all(|(_, c, _)| a(c) >= 0), "{i}");
    }
}

/// The stay of [`settled`], per line (fen), by the apportioning rule of `apportion.rs`
/// (line k gets round(X·cum_k/W) − round(X·cum_{k−1}/W), half-up):
///   class-B share 10,000 over the class-B lines: line 2 all of it.
///   eligible: 470,000; 100,000 − 10,000 = 90,000; 0 (self-pay).
///   deductible 50,000 over 470,000 : 90,000 (W 560,000): 50,000 × 470,000 / 560,000 =
///   41,964.29 → 41,964; line 2 50,000 − 41,964 = 8,036.
///   bases: 428,036; 81,964 (sum 510,000). fund 382,500 over them (382,500 / 510,000 is
///   exactly 75 %): 321,027; 61,473. copay: 107,009; 20,491 (sum 127,500).
///   patient: 470,000 − 321,027 = 148,973; 100,000 − 61,473 = 38,527; 30,000 (sum 217,500).
#[test]
fn each_item_carries_its_share_of_the_split() {
    let (claim, split) = settled();
    let r = claim_response(&view(&claim, &split, Some(uuid(ENCOUNTER)), false));
    let items = r["item"].as_array().expect("items");
    let expected: [[i64; 9]; 3] = [
        // submitted, eligible, deductible, copay, benefit, self_pay, class_b_share, above_ceiling, patient
        [470_000, 470_000, 41_964, 107_009, 321_027, 0, 0, 0, 148_973],
        [100_000, 90_000, 8_036, 20_491, 61_473, 0, 10_000, 0, 38_527],
        [30_000, 0, 0, 0, 0, 30_000, 0, 0, 30_000],
    ];
    for (item, want) in items.iter().zip(expected) {
        let got: Vec<i64> =
            ITEM_CATEGORIES.iter().map(|(sys, code, _)| adjudicated(&item["adjudication"], sys, code)).collect();
        assert_eq!(got, want, "{item}");
    }
    // in yuan as written: 419.64 of the deductible on the class-A line
    assert_eq!(items[0]["adjudication"][2]["amount"], json!({ "value": 419.64, "currency": "CNY" }));
    assert_items_add_up(&r);
    if let Some(dir) = fhir_data() {
        let schema = read_json(&dir.join("fhir.schema.json"));
        assert_eq!(schema_errors(&schema, &r), Vec::<String>::new(), "{r}");
    }
}

/// Above the ceiling, per line: an outpatient visit of two class-A lines, 100.00 and 300.00,
/// no deductible, rate 50 %: the fund's share 200.00, of which the pool has 50.00 left
/// (150.00 above it). Over the bases 10,000 : 30,000 (fen): fund's share 5,000 and 15,000,
/// copay the same; the fund's 5,000 over 5,000 : 15,000 → 1,250 and 3,750; above the ceiling
/// 3,750 and 11,250; patient 10,000 − 1,250 = 8,750 and 30,000 − 3,750 = 26,250 (sum 35,000
/// = 40,000 − 5,000).
#[test]
fn money_above_the_ceiling_is_apportioned_per_line() {
    let claim = Claim {
        scheme: Scheme::Resident,
        insured_region: "511600".into(),
        setting: Setting::Outpatient,
        tier: Tier::Township,
        arrival: Arrival::SelfReferred,
        place: Place::Home,
        date: date!(2026 - 12 - 03),
        lines: vec![
            BillLine { class: ItemClass::A, amount_fen: 10_000 },
            BillLine { class: ItemClass::A, amount_fen: 30_000 },
        ],
        accumulators: Accumulators::default(),
    };
    let split = Split {
        total_fen: 40_000,
        fund_fen: 5_000,
        patient_fen: 35_000,
        self_pay_fen: 0,
        class_b_share_fen: 0,
        deductible_fen: 0,
        coinsurance_fen: 20_000,
        above_ceiling_fen: 15_000,
        rate_bp: 5_000,
        policy: String::new(),
        explanation: Vec::new(),
        after: Accumulators::default(),
    };
    let lines = tiercare_fhir::apportion::line_splits(&claim, &split);
    let got: Vec<[i64; 4]> =
        lines.iter().map(|l| [l.copay_fen, l.benefit_fen, l.above_ceiling_fen, l.patient_fen]).collect();
    assert_eq!(got, vec![[5_000, 1_250, 3_750, 8_750], [15_000, 3_750, 11_250, 26_250]]);
    assert_items_add_up(&claim_response(&view(&claim, &split, None, false)));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// Whatever the bill and the accumulators (crossing the deductible, the ceiling or the
    /// outpatient pool), the engine's split under the default policy, written per line,
    /// adds up to its totals.
    #[test]
    fn item_amounts_add_up_to_the_totals(
        lines in proptest::collection::vec((0u8..3, 0i64..5_000_000), 1..12),
        inpatient in proptest::bool::ANY,
        tier in 0usize..3,
        fund_paid in 0i64..30_000_000,
        deductible_paid in 0i64..200_000,
    ) {
        let policies = tiercare_domain::settlement::PolicySet::load_toml(tiercare_domain::settlement::DEFAULT_POLICY_TOML)
            .expect("the default policy set");
        let classes = [ItemClass::A, ItemClass::B, ItemClass::SelfPay];
        let claim = Claim {
            scheme: Scheme::Resident,
            insured_region: "511600".into(),
            setting: if inpatient { Setting::Inpatient } else { Setting::Outpatient },
            tier: [Tier::Township, Tier::County, Tier::City][tier],
            arrival: Arrival::SelfReferred,
            place: Place::Home,
            date: date!(2026 - 12 - 03),
            lines: lines.iter().map(|(c, a)| BillLine { class: classes[*c as usize], amount_fen: *a }).collect(),
            accumulators: Accumulators {
                inpatient_fund_paid_fen: fund_paid,
                outpatient_fund_paid_fen: fund_paid / 100,
                stay_deductible_paid_fen: deductible_paid,
            },
        };
        let split = tiercare_domain::settlement::adjudicate(&policies, &claim).expect("adjudicated");
        assert_items_add_up(&claim_response(&view(&claim, &split, Some(uuid(ENCOUNTER)), false)));
    }
}

/// The settled stay of [`settled`] as its Claim: read back by `parse_claim` it is the same
/// bill (2 × 2,350.00 + 4 × 250.00 + 1 × 300.00 = 6,000.00), it conforms, and once reversed
/// it is cancelled.
#[test]
fn a_stored_claim_reads_back_as_the_bill_that_was_settled() {
    use tiercare_domain::billing::PricedLine;
    use tiercare_fhir::stored_claim::{StoredClaim, claim as stored_claim};
    let (claim, _) = settled();
    let items = [
        PricedLine { code: "001107000010000".into(), quantity: 2, unit_price_fen: 235_000 },
        PricedLine { code: "XJ01DDT098B001010100000".into(), quantity: 4, unit_price_fen: 25_000 },
        PricedLine { code: "XL03AXX045B001010100000".into(), quantity: 1, unit_price_fen: 30_000 },
    ];
    let coverage = Uuid::now_v7();
    let stored = |reversed: bool, items: &[PricedLine]| {
        stored_claim(&StoredClaim {
            id: uuid(ENCOUNTER),
            txn_no: "HIS-20261203-000123",
            reversed,
            patient_id: uuid(PATIENT),
            facility_id: uuid(FACILITY),
            facility_name: Some("岳池县人民医院"),
            encounter_id: Some(uuid(ENCOUNTER)),
            coverage_id: Some(coverage),
            claim: &claim,
            items,
            created_at: datetime!(2026-12-03 02:15:30 UTC),
        })
    };
    let v = stored(false, &items);
    assert_eq!(v["id"], ENCOUNTER);
    assert_eq!(v["total"], json!({ "value": 6000.0, "currency": "CNY" }));
    let back = parse_claim(&v).unwrap_or_else(|e| panic!("{v}: {e:#?}"));
    let want = ClaimInput {
        txn_no: Some("HIS-20261203-000123".into()),
        preview: false,
        patient_id: uuid(PATIENT),
        encounter_id: Some(uuid(ENCOUNTER)),
        provider_id: Some(uuid(FACILITY)),
        coverage_id: Some(coverage),
        setting: Setting::Inpatient,
        date: Some(date!(2026 - 12 - 03)),
        arrival: Some(Arrival::UpwardReferral { after_stay_at: None }),
        lines: items
            .iter()
            .map(|p| ClaimLine { code: p.code.clone(), quantity: p.quantity, unit_price_fen: p.unit_price_fen })
            .collect(),
    };
    assert_eq!(back, want);
    let reversed = stored(true, &items);
    assert_eq!(reversed["status"], "cancelled");
    // a settlement stored before its priced lines were kept: each line's amount only
    let old = stored(false, &[]);
    assert_eq!(old["item"][2]["net"], json!({ "value": 300.0, "currency": "CNY" }));
    if let Some(dir) = fhir_data() {
        let schema = read_json(&dir.join("fhir.schema.json"));
        for c in [&v, &reversed, &old] {
            assert_eq!(schema_errors(&schema, c), Vec::<String>::new(), "{c}");
        }
    }
}
