//! Referral API tests (issue 4) through a real listening server over a fresh SQLite store.
//! Expected values come from domain.md M3/M4/M5, the issue and docs/api (notes/api.md):
//! the life cycle, who may act, deadlines (green channel: acknowledge within 10 minutes;
//! routine: answer within 48 hours), the seeded facilities' places and centres.

mod common;

use common::{CHENGDU, GUANG_AN, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use tiercare_store::ReferralFilter;
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// helpers

/// 王秀英, female, 1962-03-08, 岳池县 (check character computed by hand in tests/http.rs).
const WANG_ID: &str = "511621196203081027";
/// 赵德明, male, 1949-10-01, 岳池县; check character X (by hand in tests/http.rs).
const ZHAO_ID: &str = "51162119491001027X";

/// The day of `t` in China Standard Time (UTC+8), computed here independently.
fn china_day(t: OffsetDateTime) -> Date {
    t.to_offset(UtcOffset::from_hms(8, 0, 0).expect("UTC+8")).date()
}

fn rfc(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format a time")
}

fn parse_time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap_or_else(|| panic!("a time, got {v}")), &Rfc3339).expect("RFC 3339")
}

async fn register(s: &TestServer, token: &str, name: &str, sex: &str, number: &str) -> Uuid {
    let r = s.post("/api/v1/patients", token, json!({ "name": name, "sex": sex, "identity_number": number })).await;
    r.expect_status(201);
    r.id()
}

/// An identity lookup by a user of another facility: what lets them refer the patient.
async fn lookup(s: &TestServer, token: &str, number: &str) {
    s.post("/api/v1/patients/lookup", token, json!({ "type": "resident_id", "value": number }))
        .await
        .expect_status(200);
}

fn upward(patient: Uuid, to: Uuid) -> Value {
    json!({
        "patient_id": patient,
        "to_facility_id": to,
        "reason": "血压控制不佳，需上级医院调整治疗",
        "diagnoses": ["I10.x00"],
        "clinical_summary": "收缩压持续170以上，两种降压药联用无效",
    })
}

fn stroke(patient: Uuid, to: Uuid) -> Value {
    json!({
        "patient_id": patient,
        "to_facility_id": to,
        "green_channel": "stroke",
        "reason": "突发左侧肢体无力40分钟，疑急性脑梗死",
        "diagnoses": ["I63.000"],
    })
}

async fn refer(s: &TestServer, token: &str, body: Value) -> Value {
    let r = s.post("/api/v1/referrals", token, body).await;
    r.expect_status(201);
    r.json
}

fn id_of(v: &Value) -> Uuid {
    Uuid::parse_str(v["id"].as_str().expect("an id")).expect("a UUID")
}

async fn act(s: &TestServer, token: &str, id: Uuid, body: Value) -> common::Resp {
    s.post(&format!("/api/v1/referrals/{id}/transitions"), token, body).await
}

async fn act_ok(s: &TestServer, token: &str, id: Uuid, body: Value) -> Value {
    let r = act(s, token, id, body).await;
    r.expect_status(200);
    r.json
}

async fn detail(s: &TestServer, token: &str, id: Uuid) -> Value {
    let r = s.get(&format!("/api/v1/referrals/{id}"), token).await;
    r.expect_status(200);
    r.json
}

async fn stored(s: &TestServer) -> u64 {
    s.store.count_referrals(&ReferralFilter::default()).await.expect("count referrals")
}

fn ids(list: &Value) -> Vec<Uuid> {
    list["items"].as_array().expect("items").iter().map(id_of).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().expect("an array").iter().map(|x| x.as_str().expect("a string").to_owned()).collect()
}

fn kinds(list: &Value) -> Vec<String> {
    list["items"].as_array().expect("items").iter().map(|n| n["kind"].as_str().expect("kind").to_owned()).collect()
}

async fn sweep(s: &TestServer) -> Value {
    let admin = s.login("admin_a").await;
    let r = s.call(Method::POST, "/api/v1/referrals/sweep", Some(&admin), None).await;
    r.expect_status(200);
    r.json
}

// ---------------------------------------------------------------------------------------
// the closed loop

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn township_refers_up_and_the_county_takes_it_to_completion() {
    let s = TestServer::start_without_sweeper().await;
    let clin = s.login("clin_a").await;
    let rc = s.login("rc_county").await;
    let p = register(&s, &clin, "王秀英", "female", WANG_ID).await;

    let created = refer(&s, &clin, upward(p, s.seed.county_hospital)).await;
    let id = id_of(&created);
    assert_eq!(created["state"], "requested");
    assert_eq!(created["version"], 1);
    // township → county: up one tier; both in 岳池县 and its community
    assert_eq!(created["direction"], "upward");
    assert_eq!(created["reach"], "in_county");
    assert_eq!(created["urgency"], "routine");
    assert_eq!(created["my_side"], "sender");
    assert_eq!(strings(&created["actions"]), ["cancel", "record_timepoint"]);
    assert_eq!(created["from_facility"]["name"], "岳池县罗渡镇中心卫生院");
    assert_eq!(created["to_facility"]["tier"], "county");
    assert_eq!(created["diagnoses"][0]["code"], "I10.x00");
    assert_eq!(created["diagnoses"][0]["name"], "特发性（原发性）高血压");
    assert_eq!(created["patient"]["name"], "王秀英");
    assert_eq!(created["patient"]["identity_masked"], "511621********1027");
    // routine: 48 hours to answer
    assert_eq!(parse_time(&created["due_at"]) - parse_time(&created["requested_at"]), Duration::hours(48));

    // the county's inbox: new
    let inbox = s.get("/api/v1/referrals?box=inbox&category=new", &rc).await;
    inbox.expect_status(200);
    assert_eq!(ids(&inbox.json), [id]);
    assert_eq!(inbox.json["total"], 1);
    assert_eq!(inbox.json["items"][0]["patient"]["name"], "王秀英");
    let summary = s.get("/api/v1/referrals/summary", &rc).await;
    summary.expect_status(200);
    assert_eq!(summary.json["new"], 1);
    assert_eq!(summary.json["awaiting_scheduling"], 0);
    assert_eq!(summary.json["notifications_unseen"], 1, "the incoming referral");

    let seen = detail(&s, &rc, id).await;
    assert_eq!(seen["my_side"], "receiver");
    assert_eq!(strings(&seen["actions"]), ["acknowledge", "accept", "reject", "redirect", "record_timepoint"]);

    let accepted = act_ok(&s, &rc, id, json!({ "action": "accept", "version": 1, "note": "同意接收" })).await;
    assert_eq!(accepted["state"], "accepted");
    assert_eq!(accepted["version"], 2);
    let awaiting = s.get("/api/v1/referrals?category=awaiting_scheduling", &rc).await;
    assert_eq!(ids(&awaiting.json), [id]);

    let at = s.now();
    let scheduled =
        act_ok(&s, &rc, id, json!({ "action": "schedule", "version": 2, "at": rfc(at), "department": "心血管内科" }))
            .await;
    assert_eq!(scheduled["state"], "scheduled");
    assert_eq!(scheduled["to_department"], "心血管内科");
    assert_eq!(parse_time(&scheduled["scheduled_at"]).unix_timestamp(), at.unix_timestamp());
    // scheduled for now: arriving today (China time)
    let today = s.get("/api/v1/referrals?category=arriving_today", &rc).await;
    assert_eq!(ids(&today.json), [id]);

    act_ok(&s, &rc, id, json!({ "action": "arrive" })).await;
    let done =
        act_ok(&s, &rc, id, json!({ "action": "complete", "outcome": "调整为三联降压，血压控制达标后出院" })).await;
    assert_eq!(done["state"], "completed");
    assert_eq!(done["version"], 5);
    // the life cycle is over; clock times may still be added afterwards
    assert_eq!(strings(&done["actions"]), ["record_timepoint"]);
    assert_eq!(done["outcome"], "调整为三联降压，血压控制达标后出院");
    assert!(done["timepoints"].as_array().expect("timepoints").iter().any(|t| t["timepoint"] == "door"));

    // the township's outbox shows where it went
    let outbox = s.get("/api/v1/referrals?box=outbox", &clin).await;
    outbox.expect_status(200);
    assert_eq!(ids(&outbox.json), [id]);
    assert_eq!(outbox.json["items"][0]["state"], "completed");
    assert_eq!(s.get("/api/v1/referrals?box=outbox&category=open", &clin).await.json["total"], 0);
    assert_eq!(s.get("/api/v1/referrals?box=outbox&category=closed", &clin).await.json["total"], 1);

    // who did what, when, why
    let d = detail(&s, &clin, id).await;
    let history = d["history"].as_array().expect("history");
    let actions: Vec<&str> = history.iter().map(|e| e["action"].as_str().expect("action")).collect();
    assert_eq!(actions, ["request", "accept", "schedule", "arrive", "complete"]);
    let states: Vec<&str> = history.iter().map(|e| e["to_state"].as_str().expect("state")).collect();
    assert_eq!(states, ["requested", "accepted", "scheduled", "arrived", "completed"]);
    assert_eq!(history[0]["actor"]["name"], "陈医生");
    assert_eq!(history[0]["actor"]["facility_name"], "岳池县罗渡镇中心卫生院");
    assert_eq!(history[0]["reason"], "血压控制不佳，需上级医院调整治疗");
    assert_eq!(history[1]["actor"]["name"], "县转诊中心周护士");
    assert_eq!(history[1]["actor"]["facility_name"], "岳池县人民医院");
    assert_eq!(history[1]["reason"], "同意接收");
    assert_eq!(history[1]["from_state"], "requested");
    assert_eq!(parse_time(&history[2]["time"]).unix_timestamp(), at.unix_timestamp());
    for (i, e) in history.iter().enumerate() {
        assert_eq!(e["version"], i + 1);
        parse_time(&e["at"]);
    }

    // the township was told of each answer and of the progress
    let n = s.get("/api/v1/notifications", &clin).await;
    n.expect_status(200);
    let mut k = kinds(&n.json);
    k.sort();
    assert_eq!(k, ["answered", "answered", "progress", "progress"]);
    assert_eq!(n.json["unseen"], 4);
    s.post("/api/v1/notifications/seen", &clin, json!({})).await.expect_status(204);
    assert_eq!(s.get("/api/v1/notifications", &clin).await.json["unseen"], 0);
    assert_eq!(kinds(&s.get("/api/v1/notifications", &rc).await.json), ["incoming"]);

    // each detail read was logged: the county's and the township's (worklists are not
    // record reads); so was each answer that showed the patient's detail: the township's
    // creation and the county's four steps, each by the user who took it
    let sys = s.login("sysadmin").await;
    let log = s.get(&format!("/api/v1/access-log?patient_id={p}"), &sys).await;
    log.expect_status(200);
    let entries = log.json["entries"].as_array().expect("entries");
    let rows = |action: &str| entries.iter().filter(|e| e["action"] == action).collect::<Vec<_>>();
    assert_eq!(rows("read_referral").len(), 2);
    let created = rows("create_referral");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["user_id"], json!(s.user_id("clin_a")));
    let steps = rows("act_referral");
    assert_eq!(steps.len(), 4, "accept, schedule, arrive, complete");
    for e in &steps {
        assert_eq!(e["user_id"], json!(s.user_id("rc_county")));
        assert_eq!(e["basis"], "care_relationship");
    }

    // the patient page shows the referral
    let record = s.get(&format!("/api/v1/patients/{p}"), &clin).await;
    record.expect_status(200);
    assert_eq!(ids(&json!({ "items": record.json["referrals"] })), [id]);
    assert_eq!(record.json["filings"], json!([]), "in the insured region: no filing");

    // the community view masks the name
    let admin = s.login("admin_a").await;
    let community = s.get("/api/v1/referrals?box=community", &admin).await;
    community.expect_status(200);
    assert_eq!(ids(&community.json), [id]);
    assert_eq!(community.json["items"][0]["patient"]["name"], "王**");
    s.get("/api/v1/referrals?box=community", &clin).await.expect_error(403, "role.forbidden");
}

// ---------------------------------------------------------------------------------------
// bad input: refused with the reason, nothing changed

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_referrals_are_refused_and_nothing_is_written() {
    let s = TestServer::start_without_sweeper().await;
    let clin = s.login("clin_a").await;
    let p = register(&s, &clin, "王秀英", "female", WANG_ID).await;
    let url = s.url("/api/v1/referrals");
    let raw = |body: String| {
        s.client.post(url.as_str()).bearer_auth(&clin).header("content-type", "application/json").body(body)
    };

    s.send(raw(r#"{"patient_id": "#.into())).await.expect_error(400, "json.syntax");
    let mut wrong = upward(p, s.seed.county_hospital);
    wrong["diagnoses"] = json!("I10.x00");
    let r = s.post("/api/v1/referrals", &clin, wrong).await;
    r.expect_error(422, "json.data");
    assert!(r.text.contains("sequence"), "names what was expected: {}", r.text);

    // to the sender itself
    let r = s.post("/api/v1/referrals", &clin, upward(p, s.seed.township_a)).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "referral.same_facility");

    // trauma to a hospital without a trauma centre
    let mut trauma = stroke(p, s.seed.county_hospital);
    trauma["green_channel"] = json!("trauma");
    let r = s.post("/api/v1/referrals", &clin, trauma).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "referral.capability");
    assert_eq!(r.detail_field(0), "to_facility_id");

    let r = s.post("/api/v1/referrals", &clin, upward(Uuid::now_v7(), s.seed.county_hospital)).await;
    r.expect_error(422, "reference.unknown");
    assert_eq!(r.detail_field(0), "patient_id");
    let r = s.post("/api/v1/referrals", &clin, upward(p, Uuid::now_v7())).await;
    r.expect_error(422, "reference.unknown");
    assert_eq!(r.detail_field(0), "to_facility_id");

    let mut unknown_code = upward(p, s.seed.county_hospital);
    unknown_code["diagnoses"] = json!(["I10"]);
    let r = s.post("/api/v1/referrals", &clin, unknown_code).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "diagnosis.unknown");

    // from another facility than the user's
    let mut other = upward(p, s.seed.county_hospital);
    other["from_facility_id"] = json!(s.seed.township_b);
    s.post("/api/v1/referrals", &clin, other).await.expect_error(403, "referral.other_facility");

    // a facility that does not know the patient and did not identify them
    let clin_b = s.login("clin_b").await;
    s.post("/api/v1/referrals", &clin_b, upward(p, s.seed.county_hospital))
        .await
        .expect_error(403, "referral.no_relationship");

    // downward without discharge summary and plan
    let rc = s.login("rc_county").await;
    lookup(&s, &rc, WANG_ID).await;
    let down = json!({
        "patient_id": p, "to_facility_id": s.seed.township_a, "reason": "急性期已过，回乡镇康复",
        "diagnoses": ["I63.000"],
    });
    let r = s.post("/api/v1/referrals", &rc, down).await;
    r.expect_error(422, "validation");
    let codes: Vec<&str> = r.json["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["code"].as_str().expect("code"))
        .collect();
    assert_eq!(codes, ["referral.discharge_summary", "referral.follow_up_plan"]);

    // a role that may not refer
    let admin = s.login("admin_a").await;
    s.post("/api/v1/referrals", &admin, upward(p, s.seed.county_hospital)).await.expect_error(403, "role.forbidden");

    assert_eq!(stored(&s).await, 0, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transitions_are_refused_and_nothing_changes() {
    let s = TestServer::start_without_sweeper().await;
    let clin = s.login("clin_a").await;
    let rc = s.login("rc_county").await;
    let p = register(&s, &clin, "王秀英", "female", WANG_ID).await;
    let id = id_of(&refer(&s, &clin, upward(p, s.seed.county_hospital)).await);

    // impossible in this state: named
    let r = act(&s, &rc, id, json!({ "action": "complete", "outcome": "x" })).await;
    r.expect_error(409, "referral.transition");
    assert_eq!(r.json["error"]["message"], "cannot complete a referral that is requested");
    // not a party
    let clin_b = s.login("clin_b").await;
    act(&s, &clin_b, id, json!({ "action": "accept" })).await.expect_error(403, "referral.not_party");
    s.get(&format!("/api/v1/referrals/{id}"), &clin_b).await.expect_error(403, "referral.not_party");
    // the sender cannot answer its own referral
    act(&s, &clin, id, json!({ "action": "accept" })).await.expect_error(403, "referral.not_your_turn");
    // nor the receiver cancel it
    act(&s, &rc, id, json!({ "action": "cancel", "reason": "x" })).await.expect_error(403, "referral.not_your_turn");
    // a stale version
    let r = act(&s, &rc, id, json!({ "action": "accept", "version": 7 })).await;
    r.expect_error(409, "conflict");
    assert!(r.text.contains("requested") && r.text.contains("version 1"), "{}", r.text);
    // version of the wrong type
    act(&s, &rc, id, json!({ "action": "accept", "version": "1" })).await.expect_error(422, "json.data");
    // unknown action, missing argument, unknown field
    let r = act(&s, &rc, id, json!({ "action": "approve" })).await;
    r.expect_error(422, "json.data");
    assert!(r.text.contains("approve"), "{}", r.text);
    act(&s, &rc, id, json!({ "action": "reject" })).await.expect_error(422, "json.data");
    act(&s, &rc, id, json!({ "action": "accept", "colour": "red" })).await.expect_error(422, "json.data");
    act(&s, &rc, id, json!(["accept"])).await.expect_error(422, "json.data");
    // empty reason
    let r = act(&s, &rc, id, json!({ "action": "reject", "reason": "  " })).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "text.empty");
    // the system's actions
    act(&s, &rc, id, json!({ "action": "expire" })).await.expect_error(403, "referral.system_action");
    act(&s, &rc, id, json!({ "action": "escalate", "to_facility_id": null }))
        .await
        .expect_error(403, "referral.system_action");
    // redirect to an unknown facility
    let r =
        act(&s, &rc, id, json!({ "action": "redirect", "to_facility_id": Uuid::now_v7(), "reason": "无床位" })).await;
    r.expect_error(422, "reference.unknown");
    // malformed and oversized bodies
    let url = s.url(&format!("/api/v1/referrals/{id}/transitions"));
    let raw = |body: String| {
        s.client.post(url.as_str()).bearer_auth(&rc).header("content-type", "application/json").body(body)
    };
    s.send(raw(r#"{"action": "accept",,}"#.into())).await.expect_error(400, "json.syntax");
    let big = format!(r#"{{"action": "accept", "note": "{}"}}"#, "岳".repeat(400_000));
    assert!(big.len() > 1024 * 1024);
    s.send(raw(big)).await.expect_error(413, "body.too_large");
    // an unknown referral
    act(&s, &rc, Uuid::now_v7(), json!({ "action": "accept" })).await.expect_error(404, "not_found");

    // nothing changed
    let d = detail(&s, &rc, id).await;
    assert_eq!(d["state"], "requested");
    assert_eq!(d["version"], 1);
    assert_eq!(d["history"].as_array().map(Vec::len), Some(1));
    assert_eq!(d["acknowledged_at"], Value::Null);
    // and no refused step was logged as a read of the patient (only the creation and the
    // detail read just now)
    let sys = s.login("sysadmin").await;
    let log = s.get(&format!("/api/v1/access-log?patient_id={p}"), &sys).await;
    log.expect_status(200);
    let mut actions: Vec<&str> =
        log.json["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    actions.sort();
    assert_eq!(actions.iter().filter(|a| **a == "act_referral").count(), 0, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "create_referral").count(), 1, "{actions:?}");

    // bad worklist queries
    s.get("/api/v1/referrals?from=2026-03-02&to=2026-03-01", &rc).await.expect_error(422, "validation");
    s.get("/api/v1/referrals?category=soon", &rc).await.expect_error(422, "validation");
    s.get("/api/v1/referrals?state=requested,lost", &rc).await.expect_error(422, "validation");
    s.get("/api/v1/referrals?sort=name", &rc).await.expect_error(422, "validation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accepts_at_once_one_wins() {
    let s = TestServer::start_without_sweeper().await;
    let clin = s.login("clin_a").await;
    let rc = s.login("rc_county").await;
    let spec = s.login("spec_a").await;
    let p = register(&s, &clin, "王秀英", "female", WANG_ID).await;
    let id = id_of(&refer(&s, &clin, upward(p, s.seed.county_hospital)).await);

    let (a, b) = tokio::join!(
        act(&s, &rc, id, json!({ "action": "accept", "version": 1 })),
        act(&s, &spec, id, json!({ "action": "accept", "version": 1, "note": "专科同意" })),
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.text, b.text);
    let loser = if a.status.as_u16() == 409 { &a } else { &b };
    assert_eq!(loser.code(), "conflict", "{}", loser.text);

    let d = detail(&s, &rc, id).await;
    assert_eq!(d["state"], "accepted");
    assert_eq!(d["version"], 2);
    let actions: Vec<&str> =
        d["history"].as_array().expect("history").iter().map(|e| e["action"].as_str().expect("a")).collect();
    assert_eq!(actions, ["request", "accept"], "one accept recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_hands_the_referral_to_another_receiver() {
    let s = TestServer::start_without_sweeper().await;
    let clin = s.login("clin_a").await;
    let rc = s.login("rc_county").await;
    let city = s.login("rc_city").await;
    let p = register(&s, &clin, "王秀英", "female", WANG_ID).await;
    let id = id_of(&refer(&s, &clin, upward(p, s.seed.county_hospital)).await);

    let r = act_ok(
        &s,
        &rc,
        id,
        json!({ "action": "redirect", "to_facility_id": s.seed.city_hospital, "reason": "本院心内科无床位" }),
    )
    .await;
    assert_eq!(r["state"], "redirected");
    assert_eq!(r["to_facility"]["name"], "广安市人民医院");
    // 广安区 is another county and the city hospital is in no community: out of the county
    assert_eq!(r["reach"], "out_of_county");
    assert_eq!(r["acknowledged_at"], Value::Null, "the new receiver's clock starts afresh");
    // the county handed it on: no longer a side of it, nothing left for it to do
    assert_eq!(r["my_side"], Value::Null);
    assert_eq!(r["actions"], json!([]));
    let last = &r["history"][1];
    assert_eq!(last["action"], "redirect");
    assert_eq!(last["reason"], "本院心内科无床位");
    assert_eq!(last["to_facility"]["name"], "广安市人民医院");

    // now the city's, no longer the county's
    assert_eq!(ids(&s.get("/api/v1/referrals?category=new", &city).await.json), [id]);
    assert_eq!(s.get("/api/v1/referrals?category=new", &rc).await.json["total"], 0);
    act(&s, &rc, id, json!({ "action": "accept" })).await.expect_error(403, "referral.not_party");
    act_ok(&s, &city, id, json!({ "action": "accept" })).await;
    // the sender was told of both answers
    assert_eq!(kinds(&s.get("/api/v1/notifications", &clin).await.json), ["answered", "answered"]);
}

// ---------------------------------------------------------------------------------------
// green channel and deadlines (the clock is moved by the test)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_stroke_referral_escalates_to_the_next_capable_facility() {
    let s = TestServer::start_without_sweeper().await;
    let clin = s.login("clin_a").await;
    let rc = s.login("rc_county").await;
    let city = s.login("rc_city").await;
    let prov = s.login("rc_prov").await;
    let p = register(&s, &clin, "王秀英", "female", WANG_ID).await;
    let q = register(&s, &clin, "赵德明", "male", ZHAO_ID).await;

    // the proposals from the township: the capable facilities nearest first. By hand
    // (1.3 × straight line at 50 km/h): county ≈ 13 km → ≈20 min, city ≈ 27 km → ≈43 min,
    // Chengdu ≈ 220 km → hours.
    let proposals = s.get("/api/v1/referrals/proposals?green_channel=stroke", &clin).await;
    proposals.expect_status(200);
    let order: Vec<&str> =
        proposals.json["items"].as_array().expect("items").iter().map(|i| i["name"].as_str().expect("name")).collect();
    assert_eq!(order, ["岳池县人民医院", "广安市人民医院", "四川省人民医院"]);

    let r1 = refer(&s, &clin, stroke(p, s.seed.county_hospital)).await;
    let r2 = refer(&s, &clin, stroke(q, s.seed.county_hospital)).await;
    let (id1, id2) = (id_of(&r1), id_of(&r2));
    assert_eq!(r1["urgency"], "emergency", "a green channel is an emergency");
    assert_eq!(parse_time(&r1["due_at"]) - parse_time(&r1["requested_at"]), Duration::minutes(10));
    // the county acknowledges the second one only
    let acked = act_ok(&s, &rc, id2, json!({ "action": "acknowledge" })).await;
    assert_eq!(acked["state"], "requested", "acknowledging changes no state");
    assert!(!strings(&acked["actions"]).contains(&"acknowledge".to_owned()), "only once");

    // nothing is due yet
    assert_eq!(sweep(&s).await, json!({ "escalated": 0, "expired": 0 }));
    s.advance(Duration::minutes(11));
    assert_eq!(sweep(&s).await, json!({ "escalated": 1, "expired": 0 }));

    let d = detail(&s, &city, id1).await;
    assert_eq!(d["to_facility"]["name"], "广安市人民医院", "the next capable facility by travel time");
    assert_eq!(d["escalations"], 1);
    assert_eq!(d["state"], "redirected");
    let last = d["history"].as_array().expect("history").last().expect("an event").clone();
    assert_eq!(last["action"], "escalate");
    assert_eq!(last["actor"], Value::Null, "the system acted");
    assert_eq!(last["to_facility"]["name"], "广安市人民医院");
    assert_eq!(parse_time(&d["due_at"]) - parse_time(&last["at"]), Duration::minutes(10));
    // the county's supervisors are told; the city has it in its inbox; the county is no party any more
    assert!(kinds(&s.get("/api/v1/notifications", &rc).await.json).contains(&"escalated".to_owned()));
    assert!(kinds(&s.get("/api/v1/notifications", &city).await.json).contains(&"incoming".to_owned()));
    s.get(&format!("/api/v1/referrals/{id1}"), &rc).await.expect_error(403, "referral.not_party");
    // the acknowledged one stayed
    let d2 = detail(&s, &rc, id2).await;
    assert_eq!(d2["to_facility"]["name"], "岳池县人民医院");
    assert_eq!(d2["escalations"], 0);

    // still nobody answers: on to Chengdu (the county already had it)
    s.advance(Duration::minutes(11));
    assert_eq!(sweep(&s).await, json!({ "escalated": 1, "expired": 0 }));
    let d = detail(&s, &prov, id1).await;
    assert_eq!(d["to_facility"]["name"], "四川省人民医院");
    assert_eq!(d["escalations"], 2);
    // and then no capable facility is left: it stays, the supervisors are told again
    s.advance(Duration::minutes(11));
    assert_eq!(sweep(&s).await, json!({ "escalated": 1, "expired": 0 }));
    let d = detail(&s, &prov, id1).await;
    assert_eq!(d["to_facility"]["name"], "四川省人民医院");
    assert_eq!(d["escalations"], 3);
    let escalated_to_sender = kinds(&s.get("/api/v1/notifications", &clin).await.json);
    assert!(escalated_to_sender.contains(&"escalated".to_owned()), "{escalated_to_sender:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_channel_clock_times_give_door_to_needle() {
    let s = TestServer::start_without_sweeper().await;
    let clin = s.login("clin_a").await;
    let rc = s.login("rc_county").await;
    let p = register(&s, &clin, "王秀英", "female", WANG_ID).await;
    let contact = s.now() - Duration::minutes(40);
    let id = id_of(&refer(&s, &clin, stroke(p, s.seed.county_hospital)).await);

    // the sender records first contact; the needle is the receiver's to record
    act_ok(
        &s,
        &clin,
        id,
        json!({ "action": "record_timepoint", "timepoint": "first_medical_contact", "at": rfc(contact) }),
    )
    .await;
    act(&s, &clin, id, json!({ "action": "record_timepoint", "timepoint": "needle", "at": rfc(s.now()) }))
        .await
        .expect_error(403, "referral.not_your_turn");
    act_ok(&s, &rc, id, json!({ "action": "accept" })).await;
    // an emergency comes straight in once accepted: the door time is the arrival
    act_ok(&s, &rc, id, json!({ "action": "arrive" })).await;
    s.advance(Duration::minutes(25));
    let d =
        act_ok(&s, &rc, id, json!({ "action": "record_timepoint", "timepoint": "needle", "at": rfc(s.now()) })).await;
    assert_eq!(d["intervals"]["door_to_needle"], 25);
    assert_eq!(d["intervals"]["first_contact_to_door"], 40);
    assert_eq!(d["intervals"]["request_to_acknowledge"], 0, "accepted at once");
    assert_eq!(d["intervals"]["door_to_ct"], Value::Null, "no CT time recorded");
    let tps: Vec<&str> =
        d["timepoints"].as_array().expect("timepoints").iter().map(|t| t["timepoint"].as_str().expect("tp")).collect();
    assert_eq!(tps, ["first_medical_contact", "door", "needle"]);
    // twice is refused
    let r = act(&s, &rc, id, json!({ "action": "record_timepoint", "timepoint": "needle", "at": rfc(s.now()) })).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "timepoint.duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routine_referral_expires_after_its_deadline() {
    let s = TestServer::start_without_sweeper().await;
    let clin = s.login("clin_a").await;
    let rc = s.login("rc_county").await;
    let p = register(&s, &clin, "王秀英", "female", WANG_ID).await;
    let id = id_of(&refer(&s, &clin, upward(p, s.seed.county_hospital)).await);

    // 48 hours to answer
    s.advance(Duration::hours(47));
    assert_eq!(sweep(&s).await, json!({ "escalated": 0, "expired": 0 }));
    let overdue = s.get("/api/v1/referrals?category=overdue", &rc).await;
    assert_eq!(overdue.json["total"], 0);
    s.advance(Duration::hours(2));
    let overdue = s.get("/api/v1/referrals?category=overdue", &rc).await;
    assert_eq!(ids(&overdue.json), [id]);
    assert_eq!(overdue.json["items"][0]["overdue"], true);
    assert_eq!(s.get("/api/v1/referrals/summary", &rc).await.json["overdue"], 1);
    assert_eq!(sweep(&s).await, json!({ "escalated": 0, "expired": 1 }));

    let d = detail(&s, &clin, id).await;
    assert_eq!(d["state"], "expired");
    assert_eq!(d["due_at"], Value::Null);
    assert!(kinds(&s.get("/api/v1/notifications", &clin).await.json).contains(&"expired".to_owned()));
    assert!(kinds(&s.get("/api/v1/notifications", &rc).await.json).contains(&"expired".to_owned()));
    let r = act(&s, &rc, id, json!({ "action": "accept" })).await;
    r.expect_error(409, "referral.transition");
    assert_eq!(r.json["error"]["message"], "cannot accept a referral that is expired");
    // only administrators run the sweeper by hand
    s.call(Method::POST, "/api/v1/referrals/sweep", Some(&clin), None).await.expect_error(403, "role.forbidden");
}

// ---------------------------------------------------------------------------------------
// downward referral and follow-up; transfer out of the insured region

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downward_referral_puts_follow_ups_on_the_township_worklist() {
    let s = TestServer::start_without_sweeper().await;
    let clin = s.login("clin_a").await;
    let rc = s.login("rc_county").await;
    let p = register(&s, &clin, "王秀英", "female", WANG_ID).await;
    lookup(&s, &rc, WANG_ID).await;

    let down = refer(
        &s,
        &rc,
        json!({
            "patient_id": p,
            "to_facility_id": s.seed.township_a,
            "reason": "脑梗死急性期已过，回乡镇康复",
            "diagnoses": ["I63.000"],
            "discharge_summary": "溶栓后神经功能明显改善，左侧肌力4级",
            "follow_up_plan": [
                { "what": "测血压、调整降压药", "due_in_days": 7 },
                { "what": "康复评估", "due_in_days": 30 }
            ],
        }),
    )
    .await;
    assert_eq!(down["direction"], "downward");
    let id = id_of(&down);
    let accepted = act_ok(&s, &clin, id, json!({ "action": "accept" })).await;
    let today = china_day(s.now());
    let due: Vec<String> = accepted["follow_ups"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["due_date"].as_str().expect("date").to_owned())
        .collect();
    assert_eq!(due, [(today + Duration::days(7)).to_string(), (today + Duration::days(30)).to_string()]);

    let list = s.get("/api/v1/follow-ups", &clin).await;
    list.expect_status(200);
    let items = list.json["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["what"], "测血压、调整降压药");
    assert_eq!(items[0]["patient"]["name"], "王秀英");
    assert_eq!(items[0]["overdue"], false);
    assert!(kinds(&s.get("/api/v1/notifications", &clin).await.json).contains(&"follow_up".to_owned()));
    let task = id_of(&items[0]);

    // only the township completes its tasks
    s.post(&format!("/api/v1/follow-ups/{task}/complete"), &rc, json!({}))
        .await
        .expect_error(403, "follow_up.other_facility");
    let done = s.post(&format!("/api/v1/follow-ups/{task}/complete"), &clin, json!({ "note": "血压135/85" })).await;
    done.expect_status(200);
    assert_eq!(done.json["note"], "血压135/85");
    assert!(done.json["done_at"].is_string());
    s.post(&format!("/api/v1/follow-ups/{task}/complete"), &clin, json!({})).await.expect_status(409);
    assert_eq!(s.get("/api/v1/follow-ups?status=open", &clin).await.json["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(s.get("/api/v1/follow-ups?status=done", &clin).await.json["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(s.get("/api/v1/follow-ups?status=all", &clin).await.json["items"].as_array().map(Vec::len), Some(2));
    // nothing is due today yet
    assert_eq!(s.get("/api/v1/referrals/summary", &clin).await.json["follow_ups_due"], 0);
    // a month on, the open task (due in 30 days) is due
    s.advance(Duration::days(31));
    assert_eq!(s.get("/api/v1/referrals/summary", &clin).await.json["follow_ups_due"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_a_transfer_out_of_the_insured_region_files_the_patient() {
    let s = TestServer::start_without_sweeper().await;
    let clin = s.login("clin_a").await;
    let prov = s.login("rc_prov").await;
    let p = register(&s, &clin, "王秀英", "female", WANG_ID).await;
    let created = refer(&s, &clin, upward(p, s.seed.provincial_hospital)).await;
    let id = id_of(&created);
    // 510104 is in Sichuan (51) like the insured region 511600: out of the county, not of the province
    assert_eq!(created["reach"], "out_of_county");
    assert_eq!(created["filing"], Value::Null);

    let accepted = act_ok(&s, &prov, id, json!({ "action": "accept" })).await;
    let filing = &accepted["filing"];
    let today = china_day(s.now());
    assert_eq!(filing["category"], "referred");
    // no enrolment: the sender's insurance region is the patient's
    assert_eq!(filing["insured_region"], GUANG_AN);
    assert_eq!(filing["filed_region"], CHENGDU);
    assert_eq!(filing["valid_from"], today.to_string());
    assert_eq!(filing["referral_id"], id.to_string());

    let record = s.get(&format!("/api/v1/patients/{p}"), &clin).await;
    record.expect_status(200);
    let filings = record.json["filings"].as_array().expect("filings");
    assert_eq!(filings.len(), 1);
    assert_eq!(filings[0]["filed_region"], CHENGDU);
    assert_eq!(record.json["referrals"][0]["state"], "accepted");
}

/// A busy inbox: past 1,000 matches the total is capped ("1000+" on the page), and the
/// pages (`next` → `before`) still give every referral exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_inbox_caps_its_total_and_pages_through_everything() {
    use tiercare_domain::referral::{NewReferral, Urgency, request};
    let s = TestServer::start_without_sweeper().await;
    let clin = s.login("clin_a").await;
    let rc = s.login("rc_county").await;
    let p = register(&s, &clin, "王秀英", "female", WANG_ID).await;
    let patient = s.store.get_patient(p).await.expect("read").expect("registered");
    let from = s.store.get_facility(s.seed.township_a).await.expect("read").expect("seeded");
    let to = s.store.get_facility(s.seed.county_hospital).await.expect("read").expect("seeded");
    let t0 = s.now() - Duration::hours(30);
    let bundles: Vec<tiercare_store::ReferralBundle> = (0..1001)
        .map(|i| {
            let input = NewReferral {
                patient_id: p,
                from_facility_id: Some(from.id),
                from_department: None,
                to_facility_id: to.id,
                to_department: None,
                urgency: Urgency::Routine,
                green_channel: None,
                reason: format!("第 {i} 次转诊"),
                diagnoses: vec!["I10.x00".into()],
                clinical_summary: String::new(),
                discharge_summary: None,
                follow_up_plan: vec![],
                encounter_ids: vec![],
            };
            let c = request(
                input,
                tiercare_store::new_id(),
                patient.region_key.clone(),
                Uuid::nil(),
                &from,
                &to,
                GUANG_AN,
                t0 + Duration::seconds(i),
            )
            .expect("a valid referral");
            tiercare_store::ReferralBundle {
                referral: c.referral,
                events: vec![c.event],
                follow_ups: vec![],
                filings: vec![],
            }
        })
        .collect();
    assert_eq!(s.store.import_referrals(&bundles).await.expect("import"), 1001);

    let first = s.get("/api/v1/referrals?box=inbox&category=new&limit=500", &rc).await;
    first.expect_status(200);
    assert_eq!(first.json["total"], 1000);
    assert_eq!(first.json["total_capped"], true);
    let mut seen: Vec<Uuid> = ids(&first.json);
    let mut next = first.json["next"].as_str().map(str::to_owned);
    while let Some(cursor) = next {
        let page = s.get(&format!("/api/v1/referrals?box=inbox&category=new&limit=500&before={cursor}"), &rc).await;
        page.expect_status(200);
        seen.extend(ids(&page.json));
        next = page.json["next"].as_str().map(str::to_owned);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (1001, 1001), "every referral once");
    // newest first: the last one imported heads the first page
    assert_eq!(seen[0], bundles[1000].referral.id);
    // the sender's outbox holds the same 1,001: capped too; an empty list is counted exactly
    let outbox = s.get("/api/v1/referrals?box=outbox", &clin).await;
    assert_eq!((outbox.json["total"].clone(), outbox.json["total_capped"].clone()), (json!(1000), json!(true)));
    let empty = s.get("/api/v1/referrals?box=inbox", &clin).await;
    assert_eq!((empty.json["total"].clone(), empty.json["total_capped"].clone()), (json!(0), json!(false)));
}
