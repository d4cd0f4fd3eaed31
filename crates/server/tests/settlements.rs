//! Settlement API tests (issue 6) through a real listening server over a fresh SQLite
//! store. Expected amounts are computed by hand in the comments from domain.md M7/M8's
//! default table (resident scheme: county inpatient deductible 500 yuan, 80 %; provincial
//! 1,200 yuan, 60 %; class B first share 10 %; without a referral −10 points from the
//! county tier up; out of the insured region −10 points with a temporary filing, −20
//! without one, replacing the no-referral reduction; annual ceiling 300,000 yuan) and
//! from the sample catalogue's classes (crates/domain/data/catalogue-default.toml), not
//! from the engine's output.

mod common;

use std::sync::Arc;

use common::{TestServer, YUECHI};
use reqwest::Method;
use serde_json::{Value, json};
use tiercare_domain::facility::{Capabilities, Facility, Grade, Tier};
use tiercare_domain::role::Role;
use tiercare_server::ServerConfig;
use tiercare_store::{AccessLogFilter, SettlementFilter, new_id};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// helpers

// Codes of the sample catalogue (classes: 四川 / 重庆).
const APPENDECTOMY: &str = "331003001000000"; // 阑尾切除术, A/A, limit 1,200.00 / 1,100.00 yuan
const BED: &str = "001107000010000"; // 床位费, A/A, limit 35.00 / 32.00
const CEFTRIAXONE: &str = "XJ01DDT098B001010100000"; // 头孢曲松, B/B, limit 16.00 / 15.50
const THYMALFASIN: &str = "XL03AXX045B001010100000"; // 胸腺法新, self-pay, limit 120.00
const VALSARTAN: &str = "XC09CAX038E001010100000"; // 缬沙坦, B in 四川, A in 重庆, limit 36.00 / 35.00
const ACARBOSE: &str = "XA10BFA002A001010100000"; // 阿卡波糖, B in 四川, A in 重庆, limit 42.00 / 40.00
const PCI: &str = "330803020000000"; // PCI, A/A, limit 6,000.00
const ALBUMIN: &str = "XB05AAR051B002010100000"; // 人血白蛋白, B in 四川, self-pay in 重庆, 450.00 / 460.00

/// GB 11643 check character (ISO 7064 MOD 11-2), computed here from the standard.
fn with_check(body17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body17.chars().zip(W).map(|(c, w)| c.to_digit(10).expect("digit") * w).sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body17}{check}")
}

fn line(code: &str, quantity: i64, price: i64) -> Value {
    json!({"code": code, "quantity": quantity, "unit_price_fen": price})
}

/// Register a person at the user's facility (a care relationship) with a resident
/// enrolment in `insured_region` from 2026-01-01 (and a filing when given).
async fn insured(
    s: &TestServer,
    token: &str,
    name: &str,
    number: &str,
    insured_region: &str,
    filed: Option<&str>,
) -> Uuid {
    let id = registered_only(s, token, name, number).await;
    let mut e = json!({"scheme": "resident", "insured_region": insured_region, "valid_from": "2026-01-01"});
    if let Some(f) = filed {
        e["filing_status"] = json!("temporary");
        e["filed_region"] = json!(f);
    }
    s.post(&format!("/api/v1/patients/{id}/enrolments"), token, e).await.expect_status(201);
    id
}

async fn registered_only(s: &TestServer, token: &str, name: &str, number: &str) -> Uuid {
    // GB 11643: the 17th digit is odd for men
    let odd = number.as_bytes()[16] % 2 == 1;
    let sex = if odd { "male" } else { "female" };
    let r = s.post("/api/v1/patients", token, json!({"name": name, "sex": sex, "identity_number": number})).await;
    r.expect_status(201);
    r.id()
}

fn bill(txn: &str, patient: Uuid, setting: &str, lines: Vec<Value>) -> Value {
    json!({"txn_no": txn, "patient_id": patient, "setting": setting, "date": "2026-11-20", "lines": lines})
}

async fn settlement_count(s: &TestServer) -> usize {
    s.store.list_settlements(&SettlementFilter { limit: 1000, ..Default::default() }).await.expect("list").len()
}

async fn inpatient_fund(s: &TestServer, p: Uuid) -> i64 {
    s.store.accumulators(p, 2026).await.expect("accumulators").inpatient_fund_paid_fen
}

async fn outpatient_fund(s: &TestServer, p: Uuid) -> i64 {
    s.store.accumulators(p, 2026).await.expect("accumulators").outpatient_fund_paid_fen
}

fn money(v: &Value) -> [i64; 8] {
    let f = |k: &str| v[k].as_i64().unwrap_or_else(|| panic!("{k} in {v}"));
    [
        f("total_fen"),
        f("fund_fen"),
        f("patient_fen"),
        f("self_pay_fen"),
        f("class_b_share_fen"),
        f("deductible_fen"),
        f("coinsurance_fen"),
        f("above_ceiling_fen"),
    ]
}

/// A clerk at the county hospital (岳池县人民医院, county tier, 511621).
async fn county_clerk(s: &mut TestServer) -> String {
    let h = s.seed.county_hospital;
    s.add_user("clerk_county", h, Role::SettlementClerk).await;
    s.login("clerk_county").await
}

/// 重庆医科大学附属第一医院 (provincial tier, 渝中区 500103, insurance region 500100) and a clerk.
async fn chongqing_clerk(s: &mut TestServer) -> (Uuid, String) {
    let f = Facility {
        id: new_id(),
        code: "H50010300001".into(),
        name: "重庆医科大学附属第一医院".into(),
        tier: Tier::Provincial,
        grade: Grade::Level3A,
        region_code: "500103".into(),
        insurance_region: "500100".into(),
        community_id: None,
        capabilities: Capabilities::default(),
        location: None,
        referral_policy: Default::default(),
    };
    s.store.create_facility(&f).await.expect("create the Chongqing hospital");
    s.add_user("clerk_cq", f.id, Role::SettlementClerk).await;
    (f.id, s.login("clerk_cq").await)
}

// ---------------------------------------------------------------------------------------
// tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_bill_is_split_to_the_fen_and_previews_store_nothing() {
    let mut s = TestServer::start_without_sweeper().await;
    let clerk = county_clerk(&mut s).await;
    let p = insured(&s, &clerk, "王秀英", &with_check("51162119620308102"), YUECHI, None).await;

    // Inpatient at the county hospital, self-referred, 四川 catalogue:
    //   阑尾切除术 1 × 1,200.00 = 120,000 fen (A)
    //   床位费     4 ×    35.00 =  14,000 fen (A)
    //   头孢曲松  10 ×    16.00 =  16,000 fen (B)
    //   胸腺法新   1 ×   120.00 =  12,000 fen (self-pay)
    //   total 162,000 fen
    // self-pay 12,000; class-B share 10 % × 16,000 = 1,600; eligible 162,000 − 12,000 −
    // 1,600 = 148,400; deductible (county, 500 yuan) 50,000 → 98,400; rate 80 % − 10
    // (no referral at the county tier) = 70 % → fund 68,880; coinsurance 98,400 − 68,880 =
    // 29,520; patient 162,000 − 68,880 = 93,120 (= 12,000 + 1,600 + 50,000 + 29,520).
    let lines = vec![
        line(APPENDECTOMY, 1, 120_000),
        line(BED, 4, 3_500),
        line(CEFTRIAXONE, 10, 1_600),
        line(THYMALFASIN, 1, 12_000),
    ];
    let expected = [162_000, 68_880, 93_120, 12_000, 1_600, 50_000, 29_520, 0];

    let pre = s.post("/api/v1/settlements/preview", &clerk, bill("", p, "inpatient", lines.clone())).await;
    pre.expect_status(200);
    assert_eq!(money(&pre.json), expected, "{}", pre.text);
    assert_eq!(pre.json["status"], "preview");
    assert_eq!(pre.json["id"], Value::Null);
    assert_eq!(pre.json["rate_bp"], 7000);
    assert_eq!(pre.json["place"], "home");
    assert_eq!(pre.json["arrival"]["kind"], "self_referred");
    assert_eq!(pre.json["insured_region"], "511600");
    assert_eq!(pre.json["lines"][2]["class"], "b");
    assert_eq!(pre.json["lines"][2]["amount_fen"], 16_000);
    assert!(pre.json["explanation"].as_array().is_some_and(|a| !a.is_empty()));
    assert_eq!(settlement_count(&s).await, 0, "a preview stores nothing");
    assert_eq!(inpatient_fund(&s, p).await, 0);

    let done = s.post("/api/v1/settlements", &clerk, bill("HIS-1", p, "inpatient", lines.clone())).await;
    done.expect_status(201);
    assert_eq!(money(&done.json), expected);
    assert_eq!(done.json["status"], "settled");
    assert_eq!(done.json["replayed"], false);
    assert_eq!(done.json["accumulators_after"]["inpatient_fund_paid_fen"], 68_880);
    assert_eq!(inpatient_fund(&s, p).await, 68_880);
    let id = done.id();

    // the same transaction again: the first answer, nothing new
    let again = s.post("/api/v1/settlements", &clerk, bill("HIS-1", p, "inpatient", lines.clone())).await;
    again.expect_status(200);
    assert_eq!(again.id(), id);
    assert_eq!(again.json["replayed"], true);
    assert_eq!(settlement_count(&s).await, 1);
    assert_eq!(inpatient_fund(&s, p).await, 68_880);
    // …with another bill: refused
    s.post("/api/v1/settlements", &clerk, bill("HIS-1", p, "inpatient", vec![line(BED, 1, 3_500)]))
        .await
        .expect_error(409, "settlement.txn_conflict");

    // With an upward referral (explicit) the rate is 80 %: fund 98,400 × 0.8 = 78,720.
    let mut up = bill("", p, "inpatient", lines.clone());
    up["arrival"] = json!({"kind": "upward_referral", "after_stay_at": null});
    let pre = s.post("/api/v1/settlements/preview", &clerk, up).await;
    pre.expect_status(200);
    assert_eq!(pre.json["fund_fen"], 78_720, "{}", pre.text);

    // Reading it back writes an access-log row
    let read = s.get(&format!("/api/v1/settlements/{id}"), &clerk).await;
    read.expect_status(200);
    assert_eq!(money(&read.json), expected);
    // …with the lines as billed (the receipt can be printed again)
    assert_eq!(read.json["lines"], done.json["lines"], "read back with the settle answer's lines");
    assert_eq!(read.json["lines"].as_array().map(Vec::len), Some(4));
    let l1 = &read.json["lines"][1];
    assert_eq!(
        (l1["code"].as_str(), l1["quantity"].as_i64(), l1["unit_price_fen"].as_i64(), l1["amount_fen"].as_i64()),
        (Some(BED), Some(4), Some(3_500), Some(14_000)),
        "{l1}"
    );
    assert!(l1["name"].as_str().is_some_and(|n| !n.is_empty()), "the catalogue's name: {l1}");
    assert!(l1["kind"].is_string() && l1["class"].is_string(), "{l1}");
    let l2 = &read.json["lines"][2];
    assert_eq!(
        (l2["code"].as_str(), l2["quantity"].as_i64(), l2["class"].as_str()),
        (Some(CEFTRIAXONE), Some(10), Some("b"))
    );
    assert_eq!(read.json["reversal_reason"], Value::Null);
    assert_eq!(again.json["lines"], done.json["lines"], "a replay answers the same lines");
    let log = s
        .store
        .query_access_log(&AccessLogFilter { patient_id: Some(p), limit: 100, ..Default::default() })
        .await
        .expect("access log");
    assert!(log.iter().any(|e| e.action == "read_settlement"), "{log:?}");

    // the journal of the day it was made, and the accumulators view
    let j = s.get("/api/v1/settlements", &clerk).await;
    j.expect_status(200);
    assert_eq!(j.json["totals"]["count"], 1);
    assert_eq!(j.json["rows"][0]["lines"], done.json["lines"], "the journal row has the lines");
    assert_eq!(j.json["totals"]["fund_fen"], 68_880);
    let a = s.get(&format!("/api/v1/patients/{p}/accumulators?year=2026"), &clerk).await;
    a.expect_status(200);
    assert_eq!(a.json["inpatient_fund_paid_fen"], 68_880);
    assert_eq!(a.json["annual_ceiling_fen"], 30_000_000);

    // a reversal needs a reason (1 to 200 characters): refused, nothing written
    for body in [
        json!({"txn_no": "R-1"}),
        json!({"txn_no": "R-1", "reason": "   "}),
        json!({"txn_no": "R-1", "reason": "错".repeat(201)}),
    ] {
        s.post(&format!("/api/v1/settlements/{id}/reversal"), &clerk, body)
            .await
            .expect_error(422, "settlement.reversal_reason");
    }
    assert_eq!(inpatient_fund(&s, p).await, 68_880, "not reversed");
    // reversal restores the accumulators exactly and is idempotent
    let rev = s
        .post(&format!("/api/v1/settlements/{id}/reversal"), &clerk, json!({"txn_no": "R-1", "reason": "录入错误"}))
        .await;
    rev.expect_status(200);
    assert_eq!(rev.json["status"], "reversed");
    assert_eq!(rev.json["reversal_reason"], "录入错误");
    assert_eq!(rev.json["lines"], done.json["lines"], "the reversal answer has the lines");
    assert_eq!(inpatient_fund(&s, p).await, 0);
    let back = s.get(&format!("/api/v1/settlements/{id}"), &clerk).await;
    back.expect_status(200);
    assert_eq!(
        (back.json["status"].as_str(), back.json["reversal_reason"].as_str()),
        (Some("reversed"), Some("录入错误"))
    );
    let rev2 = s
        .post(&format!("/api/v1/settlements/{id}/reversal"), &clerk, json!({"txn_no": "R-1", "reason": "重复提交"}))
        .await;
    rev2.expect_status(200);
    assert_eq!(rev2.json["status"], "reversed");
    assert_eq!(rev2.json["reversal_reason"], "录入错误", "the first reversal's reason");
    assert_eq!(inpatient_fund(&s, p).await, 0);
    s.post(&format!("/api/v1/settlements/{id}/reversal"), &clerk, json!({"txn_no": "R-2", "reason": "再次冲正"}))
        .await
        .expect_error(409, "settlement.reversal_conflict");
    s.post(&format!("/api/v1/settlements/{}/reversal", new_id()), &clerk, json!({"txn_no": "R-3", "reason": "x"}))
        .await
        .expect_error(404, "not_found");

    // Outpatient at the county: no deductible, 50 %, pool 400 yuan (the no-referral
    // reduction is for stays: policy-default.toml).
    //   缬沙坦 2 × 36.00 = 7,200 (B): share 720; eligible 6,480 × 50 % = 3,240 fund;
    //   coinsurance 3,240; patient 7,200 − 3,240 = 3,960.
    let o =
        s.post("/api/v1/settlements", &clerk, bill("HIS-2", p, "outpatient", vec![line(VALSARTAN, 2, 3_600)])).await;
    o.expect_status(201);
    assert_eq!(money(&o.json), [7_200, 3_240, 3_960, 0, 720, 0, 3_240, 0], "{}", o.text);
    assert_eq!(outpatient_fund(&s, p).await, 3_240);

    // the person's settlements at this desk, every day: HIS-1 (reversed) and HIS-2
    let mine = s.get(&format!("/api/v1/settlements?patient_id={p}"), &clerk).await;
    mine.expect_status(200);
    assert_eq!(mine.json["rows"].as_array().map(Vec::len), Some(2), "{}", mine.text);
    assert_eq!(
        (mine.json["totals"]["count"].as_i64(), mine.json["totals"]["reversed_count"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(mine.json["date"], Value::Null);
    // an insurance officer sees them everywhere, names masked
    s.add_user("officer", s.seed.county_hospital, Role::InsuranceOfficer).await;
    let officer = s.login("officer").await;
    let all = s.get(&format!("/api/v1/settlements?patient_id={p}"), &officer).await;
    all.expect_status(200);
    assert_eq!(all.json["rows"][0]["patient"]["name"], "王**");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_settlements_of_one_person_never_pass_the_ceiling() {
    let mut s = TestServer::start_without_sweeper().await;
    let clerk = county_clerk(&mut s).await;
    let p = insured(&s, &clerk, "赵德明", &with_check("51162119491001027"), YUECHI, None).await;
    let referred = |txn: &str, q: i64| {
        let mut b = bill(txn, p, "inpatient", vec![line(APPENDECTOMY, q, 120_000)]);
        b["arrival"] = json!({"kind": "upward_referral", "after_stay_at": null});
        b
    };
    // 312 × 1,200.00 = 37,440,000; − 50,000 deductible = 37,390,000 × 80 % = 29,912,000
    // fund; 30,000,000 − 29,912,000 = 88,000 fen left under the ceiling.
    let first = s.post("/api/v1/settlements", &clerk, referred("BIG", 312)).await;
    first.expect_status(201);
    assert_eq!(first.json["fund_fen"], 29_912_000, "{}", first.text);
    // 16 bills at once, each (120,000 − 50,000) × 80 % = 56,000 before the ceiling: at
    // most 88,000 in all can still be paid (56,000 + 32,000 + 0 × 14).
    let s = Arc::new(s);
    let clerk: Arc<str> = clerk.into();
    let mut tasks = Vec::new();
    for k in 0..16 {
        let (s, clerk, body) = (s.clone(), clerk.clone(), referred(&format!("C-{k}"), 1));
        tasks.push(tokio::spawn(async move { s.post("/api/v1/settlements", &clerk, body).await }));
    }
    let mut fund = 0;
    let mut above = 0;
    for t in tasks {
        let r = t.await.expect("task");
        r.expect_status(201);
        fund += r.json["fund_fen"].as_i64().expect("fund");
        above += r.json["above_ceiling_fen"].as_i64().expect("above");
    }
    assert_eq!(fund, 88_000);
    assert_eq!(above, 16 * 56_000 - 88_000);
    assert_eq!(inpatient_fund(&s, p).await, 30_000_000);
    assert_eq!(settlement_count(&s).await, 17);

    // reversing the big one gives back exactly its 29,912,000
    let id = first.id();
    s.post(&format!("/api/v1/settlements/{id}/reversal"), &clerk, json!({"txn_no": "R-BIG", "reason": "超限测试"}))
        .await
        .expect_status(200);
    assert_eq!(inpatient_fund(&s, p).await, 88_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_province_uses_the_home_policy_and_the_catalogue_of_the_place_of_care() {
    let mut s = TestServer::start_without_sweeper().await;
    let clerk = county_clerk(&mut s).await;
    // A person insured in Chongqing (渝中区 500103 → pool 500100) treated at the county
    // hospital in Sichuan, no filing. 四川 catalogue: 缬沙坦 is class B here (A at home).
    //   缬沙坦 2 × 36.00 = 7,200 (B) ; 阑尾切除术 1 × 1,200.00 = 120,000 (A);
    //   床位费 5 × 35.00 = 17,500 (A); total 144,700
    // share 720; eligible 143,980; deductible (Chongqing resident, county, 500 yuan) 50,000
    // → 93,980; rate 80 % − 20 (unfiled; replaces the no-referral reduction) = 60 % →
    // fund 56,388; coinsurance 37,592; patient 88,312.
    let cq = insured(&s, &clerk, "陈静", &with_check("50010319700512123"), "500103", None).await;
    let r = s
        .post(
            "/api/v1/settlements",
            &clerk,
            bill(
                "X-1",
                cq,
                "inpatient",
                vec![line(VALSARTAN, 2, 3_600), line(APPENDECTOMY, 1, 120_000), line(BED, 5, 3_500)],
            ),
        )
        .await;
    r.expect_status(201);
    assert_eq!(money(&r.json), [144_700, 56_388, 88_312, 0, 720, 50_000, 37_592, 0], "{}", r.text);
    assert_eq!(r.json["place"], "unfiled");
    assert_eq!(r.json["insured_region"], "500100");
    assert_eq!(r.json["rate_bp"], 6000);
    assert!(r.json["policy"].as_str().is_some_and(|p| p.contains("重庆")), "{}", r.text);

    // County residents at the Chongqing provincial hospital, 重庆 catalogue (阿卡波糖 A,
    // 人血白蛋白 self-pay there):
    //   阿卡波糖 3 × 40.00 = 12,000 (A); PCI 1 × 6,000.00 = 600,000 (A);
    //   人血白蛋白 2 × 460.00 = 92,000 (self-pay); total 704,000
    // self-pay 92,000; eligible 612,000; deductible (广安 resident, provincial) 120,000 →
    // 492,000.
    //   unfiled: 60 % − 20 = 40 % → fund 196,800; coinsurance 295,200; patient 507,200.
    //   filed by an accepted referral (temporary, referred): 60 % − 10 = 50 % → fund
    //   246,000; coinsurance 246,000; patient 458,000.
    let (cq_hospital, cq_clerk) = chongqing_clerk(&mut s).await;
    s.add_user("rc_cq", cq_hospital, Role::ReferralCentre).await;
    let n1 = with_check("51162119800101123");
    let n2 = with_check("51162119810202124");
    let unfiled = insured(&s, &clerk, "刘洋", &n1, YUECHI, None).await;
    let filed = insured(&s, &clerk, "周敏", &n2, YUECHI, None).await;
    // the county's referral centre refers 周敏 to Chongqing; accepting it files her
    let rc = s.login("rc_county").await;
    let referral = s
        .post(
            "/api/v1/referrals",
            &rc,
            json!({"patient_id": filed, "to_facility_id": cq_hospital, "urgency": "routine",
                   "reason": "冠脉多支病变，需上级医院介入治疗", "diagnoses": ["I10.x00"],
                   "clinical_summary": "反复胸痛，冠脉CTA提示三支病变"}),
        )
        .await;
    referral.expect_status(201);
    let rc_cq = s.login("rc_cq").await;
    s.post(
        &format!("/api/v1/referrals/{}/transitions", referral.id()),
        &rc_cq,
        json!({"action": "accept", "version": referral.json["version"]}),
    )
    .await
    .expect_status(200);
    let lines = || vec![line(ACARBOSE, 3, 4_000), line(PCI, 1, 600_000), line(ALBUMIN, 2, 46_000)];
    let today_bill = |txn: &str, p: Uuid| {
        let mut b = bill(txn, p, "inpatient", lines());
        b.as_object_mut().expect("object").remove("date");
        b
    };
    // the Chongqing desk has no relationship with 刘洋 until she is identified there
    s.post("/api/v1/settlements", &cq_clerk, today_bill("CQ-0", unfiled))
        .await
        .expect_error(403, "settlement.no_relationship");
    s.post("/api/v1/patients/lookup", &cq_clerk, json!({"type": "resident_id", "value": n1})).await.expect_status(200);
    let u = s.post("/api/v1/settlements", &cq_clerk, today_bill("CQ-1", unfiled)).await;
    u.expect_status(201);
    assert_eq!(money(&u.json), [704_000, 196_800, 507_200, 92_000, 0, 120_000, 295_200, 0], "{}", u.text);
    assert_eq!(u.json["place"], "unfiled");
    assert_eq!(u.json["lines"][0]["class"], "a");
    assert_eq!(u.json["lines"][2]["class"], "self_pay");
    let f = s.post("/api/v1/settlements", &cq_clerk, today_bill("CQ-2", filed)).await;
    f.expect_status(201);
    assert_eq!(money(&f.json), [704_000, 246_000, 458_000, 92_000, 0, 120_000, 246_000, 0], "{}", f.text);
    assert_eq!(f.json["place"], "filed_temporary");
    assert_eq!(f.json["arrival"]["kind"], "upward_referral", "derived from the accepted referral");
    // 42.00 is within the Sichuan limit but above Chongqing's 40.00
    let over = s
        .post(
            "/api/v1/settlements/preview",
            &cq_clerk,
            json!({"patient_id": filed, "setting": "inpatient", "lines": [line(ACARBOSE, 1, 4_200)]}),
        )
        .await;
    over.expect_error(422, "validation");
    assert_eq!(over.detail_code(0), "settlement.price_above_limit");

    // the clearing reports, seen from Sichuan (the first community's province): November
    // has the inbound Chongqing patient, this month the two outbound county patients
    let sys = s.login("sysadmin").await;
    let c = s.get("/api/v1/settlement/reports/clearing?month=2026-11", &sys).await;
    c.expect_status(200);
    let rows = c.json["rows"].as_array().expect("rows").clone();
    let inbound = rows.iter().find(|r| r["direction"] == "inbound").expect("inbound row");
    assert_eq!(
        (inbound["insured_region"].as_str(), inbound["count"].as_i64(), inbound["fund_fen"].as_i64()),
        (Some("500000"), Some(1), Some(56_388))
    );
    let today = (time::OffsetDateTime::now_utc() + time::Duration::hours(8)).date();
    let c = s
        .get(&format!("/api/v1/settlement/reports/clearing?month={}-{:02}", today.year(), today.month() as u8), &sys)
        .await;
    c.expect_status(200);
    let rows = c.json["rows"].as_array().expect("rows").clone();
    let outbound = rows.iter().find(|r| r["direction"] == "outbound").expect("outbound row");
    assert_eq!(
        (outbound["treatment_region"].as_str(), outbound["count"].as_i64(), outbound["fund_fen"].as_i64()),
        (Some("500000"), Some(2), Some(196_800 + 246_000))
    );
    s.get("/api/v1/settlement/reports/clearing?month=2026-13", &sys).await.expect_error(400, "query.invalid");
    s.get("/api/v1/settlement/reports/fund?from=2026-12&to=2026-01", &sys).await.expect_error(400, "query.invalid");
    s.get("/api/v1/settlement/reports/clearing?month=2026-11", &clerk).await.expect_error(403, "role.forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bills_are_refused_and_nothing_is_written() {
    let mut s = TestServer::start_without_sweeper().await;
    let clerk = county_clerk(&mut s).await;
    let p = insured(&s, &clerk, "王秀英", &with_check("51162119620308102"), YUECHI, None).await;
    let q = insured(&s, &clerk, "赵德明", &with_check("51162119491001027"), YUECHI, None).await;
    let unenrolled = registered_only(&s, &clerk, "孙强", &with_check("51162119900303111")).await;
    // one good settlement so that "unchanged" is not just "zero"
    s.post("/api/v1/settlements", &clerk, bill("OK-1", p, "inpatient", vec![line(APPENDECTOMY, 1, 120_000)]))
        .await
        .expect_status(201);
    let before = (settlement_count(&s).await, inpatient_fund(&s, p).await, outpatient_fund(&s, p).await);
    assert_eq!(before.0, 1);

    // encounters: one of q at the county hospital, one of p at a township
    let spec = s.login("spec_a").await;
    let enc = |patient: Uuid, facility: Uuid| {
        json!({"patient_id": patient, "facility_id": facility, "class": "inpatient",
               "started_at": "2026-11-18T02:00:00Z", "diagnoses": ["I10.x00"], "total_cost_fen": 120000})
    };
    let e_q = s.post("/api/v1/encounters", &spec, enc(q, s.seed.county_hospital)).await;
    e_q.expect_status(201);
    let clin_a = s.login("clin_a").await;
    s.post(
        "/api/v1/patients/lookup",
        &clin_a,
        json!({"type": "resident_id", "value": with_check("51162119620308102")}),
    )
    .await
    .expect_status(200);
    let e_town = s.post("/api/v1/encounters", &clin_a, enc(p, s.seed.township_a)).await;
    e_town.expect_status(201);

    let good = || vec![line(APPENDECTOMY, 1, 120_000)];
    let with = |mut b: Value, k: &str, v: Value| {
        b[k] = v;
        b
    };
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "unknown item",
            bill("B-1", p, "inpatient", vec![line("XX0000", 1, 100)]),
            422,
            "validation",
            "settlement.unknown_item",
        ),
        (
            "negative quantity",
            bill("B-2", p, "inpatient", vec![line(BED, -1, 3_500)]),
            422,
            "validation",
            "settlement.quantity",
        ),
        (
            "zero quantity",
            bill("B-3", p, "inpatient", vec![line(BED, 0, 3_500)]),
            422,
            "validation",
            "settlement.quantity",
        ),
        (
            "negative price",
            bill("B-4", p, "inpatient", vec![line(BED, 1, -1)]),
            422,
            "validation",
            "settlement.price_negative",
        ),
        (
            "above the limit",
            bill("B-5", p, "inpatient", vec![line(BED, 1, 3_501)]),
            422,
            "validation",
            "settlement.price_above_limit",
        ),
        ("no lines", bill("B-6", p, "inpatient", vec![]), 422, "validation", "settlement.no_lines"),
        (
            "not enrolled",
            bill("B-7", unenrolled, "inpatient", good()),
            422,
            "settlement.not_enrolled",
            "settlement.not_enrolled",
        ),
        (
            "before the enrolment",
            with(bill("B-8", p, "inpatient", good()), "date", json!("2025-12-31")),
            422,
            "settlement.not_enrolled",
            "settlement.not_enrolled",
        ),
        (
            "in the future",
            with(bill("B-9", p, "inpatient", good()), "date", json!("2099-01-01")),
            422,
            "settlement.date_future",
            "settlement.date_future",
        ),
        (
            "another patient's encounter",
            with(bill("B-10", p, "inpatient", good()), "encounter_id", json!(e_q.id())),
            422,
            "validation",
            "settlement.encounter_patient",
        ),
        (
            "another facility's encounter",
            with(bill("B-11", p, "inpatient", good()), "encounter_id", json!(e_town.id())),
            422,
            "validation",
            "settlement.encounter_facility",
        ),
        (
            "unknown encounter",
            with(bill("B-12", p, "inpatient", good()), "encounter_id", json!(new_id())),
            422,
            "reference.unknown",
            "reference.unknown",
        ),
        ("unknown patient", bill("B-13", new_id(), "inpatient", good()), 422, "reference.unknown", "reference.unknown"),
        (
            "no transaction number",
            with(bill("", p, "inpatient", good()), "txn_no", Value::Null),
            422,
            "settlement.txn_no",
            "settlement.txn_no",
        ),
        (
            "replay with another bill",
            bill("OK-1", p, "inpatient", vec![line(BED, 1, 3_500)]),
            409,
            "settlement.txn_conflict",
            "",
        ),
        ("wrong type", with(bill("B-14", p, "inpatient", good()), "lines", json!("lots")), 422, "json.data", ""),
        (
            "fractional quantity",
            bill("B-15", p, "inpatient", vec![json!({"code": BED, "quantity": 1.5, "unit_price_fen": 100})]),
            422,
            "json.data",
            "",
        ),
        ("unknown setting", bill("B-16", p, "daycare", good()), 422, "json.data", ""),
        ("unknown field", with(bill("B-17", p, "inpatient", good()), "discount", json!(5)), 422, "json.data", ""),
    ];
    for (what, body, status, code, detail) in cases {
        let r = s.post("/api/v1/settlements", &clerk, body).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.text);
        assert_eq!(r.code(), code, "{what}: {}", r.text);
        if !detail.is_empty() {
            assert!(
                r.json["error"]["details"].as_array().is_some_and(|d| d.iter().any(|e| e["code"] == detail)),
                "{what}: {}",
                r.text
            );
        }
        assert!(!r.json["error"]["message"].as_str().unwrap_or("").is_empty(), "{what}: a message");
        let now = (settlement_count(&s).await, inpatient_fund(&s, p).await, outpatient_fund(&s, p).await);
        assert_eq!(now, before, "{what} wrote something");
    }
    // a line problem names the line
    let r = s
        .post(
            "/api/v1/settlements",
            &clerk,
            bill("B-20", p, "inpatient", vec![line(BED, 1, 3_500), line(BED, 1, 9_999)]),
        )
        .await;
    assert_eq!(r.detail_field(0), "lines[1].unit_price_fen", "{}", r.text);

    // malformed JSON
    let raw = s
        .send(
            s.client
                .post(s.url("/api/v1/settlements"))
                .bearer_auth(&clerk)
                .header("content-type", "application/json")
                .body("{\"txn_no\": "),
        )
        .await;
    raw.expect_error(400, "json.syntax");
    // oversized body (the default limit is 1 MiB)
    let many: Vec<Value> = (0..40_000).map(|_| line(BED, 1, 3_500)).collect();
    let big = s.post("/api/v1/settlements", &clerk, bill("B-21", p, "inpatient", many)).await;
    big.expect_error(413, "body.too_large");
    // a clinician may not settle, nor preview
    s.post("/api/v1/settlements", &spec, bill("B-22", p, "inpatient", good()))
        .await
        .expect_error(403, "role.forbidden");
    s.post("/api/v1/settlements/preview", &spec, bill("B-23", p, "inpatient", good()))
        .await
        .expect_error(403, "role.forbidden");
    // nor read one, nor reverse one
    let id = s.store.list_settlements(&SettlementFilter { limit: 10, ..Default::default() }).await.expect("list")[0].id;
    s.get(&format!("/api/v1/settlements/{id}"), &spec).await.expect_error(403, "role.forbidden");
    s.post(&format!("/api/v1/settlements/{id}/reversal"), &spec, json!({"txn_no": "R-9", "reason": "无权"}))
        .await
        .expect_error(403, "role.forbidden");
    s.call(Method::GET, "/api/v1/settlements/not-a-uuid", Some(&clerk), None).await.expect_error(404, "not_found");
    let now = (settlement_count(&s).await, inpatient_fund(&s, p).await, outpatient_fund(&s, p).await);
    assert_eq!(now, before);
    // an encounter is settled once
    let e_p = s.post("/api/v1/encounters", &spec, enc(p, s.seed.county_hospital)).await;
    e_p.expect_status(201);
    let once = with(bill("E-1", p, "inpatient", good()), "encounter_id", json!(e_p.id()));
    s.post("/api/v1/settlements", &clerk, once).await.expect_status(201);
    let twice = with(bill("E-2", p, "inpatient", good()), "encounter_id", json!(e_p.id()));
    s.post("/api/v1/settlements", &clerk, twice).await.expect_error(409, "settlement.encounter_settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_policy_refuses_the_bill() {
    // the default policies with 广安市's resident policy ending on 2026-06-30
    let dir = std::env::temp_dir().join(format!("tiercare-policy-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("dir");
    let text = tiercare_domain::settlement::DEFAULT_POLICY_TOML.replacen(
        "effective_from = \"2026-01-01\"  # [R]",
        "effective_from = \"2026-01-01\"\neffective_to = \"2026-06-30\"",
        1,
    );
    assert!(text.contains("effective_to = \"2026-06-30\""));
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).expect("write");
    let config = ServerConfig {
        sweep_interval: std::time::Duration::ZERO,
        policy_file: Some(path.clone()),
        ..ServerConfig::default()
    };
    let mut s = TestServer::start_with(config).await;
    let clerk = county_clerk(&mut s).await;
    let p = insured(&s, &clerk, "王秀英", &with_check("51162119620308102"), YUECHI, None).await;
    let r = s.post("/api/v1/settlements", &clerk, bill("P-1", p, "inpatient", vec![line(BED, 1, 3_500)])).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "settlement.policy_expired", "{}", r.text);
    assert_eq!(settlement_count(&s).await, 0);
    assert_eq!(inpatient_fund(&s, p).await, 0);
    // before the end it is in force
    let mut ok = bill("P-2", p, "inpatient", vec![line(BED, 1, 3_500)]);
    ok["date"] = json!("2026-06-30");
    s.post("/api/v1/settlements", &clerk, ok).await.expect_status(201);
    let pol = s.get("/api/v1/settlement/policies", &clerk).await;
    pol.expect_status(200);
    assert_eq!(pol.json["source"], path.display().to_string());
    // a broken file stops the server at start
    std::fs::write(&path, "policies = [").expect("write");
    let err =
        tiercare_server::load_settlement_rules(&ServerConfig { policy_file: Some(path), ..ServerConfig::default() });
    assert!(err.is_err_and(|e| e.contains("policy.toml")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_and_the_journal_by_role() {
    let mut s = TestServer::start_without_sweeper().await;
    let clerk = county_clerk(&mut s).await;
    let c = s.get("/api/v1/settlement/catalogue?q=阿莫西林", &clerk).await;
    c.expect_status(200);
    assert_eq!(c.json["region"], "510000");
    assert_eq!(c.json["items"][0]["code"], "XJ01CAA040A001010100000");
    assert_eq!(c.json["items"][0]["class"], "a");
    let m = s.get("/api/v1/settlement/catalogue?kind=material&limit=3", &clerk).await;
    assert_eq!(m.json["items"].as_array().map(Vec::len), Some(3));
    s.get("/api/v1/settlement/catalogue?kind=food", &clerk).await.expect_error(400, "query.invalid");
    let cq = s.get("/api/v1/settlement/catalogue?region=500103&q=缬沙坦", &clerk).await;
    assert_eq!(cq.json["items"][0]["class"], "a");

    // a community admin sees the journal of a facility in the community; the clerk not of another
    let p = insured(&s, &clerk, "王秀英", &with_check("51162119620308102"), YUECHI, None).await;
    s.post("/api/v1/settlements", &clerk, bill("J-1", p, "outpatient", vec![line(BED, 1, 3_500)]))
        .await
        .expect_status(201);
    let admin = s.login("admin_a").await;
    let h = s.seed.county_hospital;
    let j = s.get(&format!("/api/v1/settlements?facility_id={h}"), &admin).await;
    j.expect_status(200);
    assert_eq!(j.json["totals"]["count"], 1);
    let admin_b = s.login("admin_b").await;
    s.get(&format!("/api/v1/settlements?facility_id={h}"), &admin_b)
        .await
        .expect_error(403, "settlement.other_facility");
    let t = s.seed.township_a;
    s.get(&format!("/api/v1/settlements?facility_id={t}"), &clerk).await.expect_error(403, "settlement.other_facility");
    s.get("/api/v1/settlements?date=2026-13-01", &clerk).await.expect_error(400, "query.invalid");
    // fund report by facility: the outpatient bill of 35.00 at 50 % = 17.50 fund
    let sys = s.login("sysadmin").await;
    let f = s.get("/api/v1/settlement/reports/fund?from=2026-01&to=2026-12&group=facility", &sys).await;
    f.expect_status(200);
    let row = &f.json["rows"][0];
    assert_eq!(
        (row["count"].as_i64(), row["total_fen"].as_i64(), row["fund_fen"].as_i64()),
        (Some(1), Some(3_500), Some(1_750)),
        "{}",
        f.text
    );
    assert_eq!(row["facility_name"], "岳池县人民医院");
}
