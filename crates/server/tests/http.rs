//! HTTP integration tests: every request goes through a real listening server
//! (`tiercare_server::serve` on 127.0.0.1), over a fresh SQLite store per test.
//! Expectations are reasoned from domain.md §3 and §4/M2 and the API's documented
//! error shape, not copied from what the server prints.

mod common;

use common::{PASSWORD, Resp, TestServer, WUSHENG, YUECHI};
use reqwest::Method;
use serde_json::{Value, json};
use tiercare_domain::facility::{Capabilities, Facility, Grade, Tier};
use tiercare_domain::role::Role;
use tiercare_store::new_id;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// GB 11643 identity numbers, computed here independently of tiercare-domain.

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_MAP: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// ISO 7064 MOD 11-2 check character of 17 digits.
fn check_char(first17: &str) -> char {
    assert_eq!(first17.len(), 17, "17 digits");
    let sum: u32 = first17.bytes().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    CHECK_MAP[(sum % 11) as usize]
}

/// region (6) + birth date YYYYMMDD (8) + sequence (3) + check character.
fn id_number(region: &str, birth: &str, seq: &str) -> String {
    let body = format!("{region}{birth}{seq}");
    format!("{body}{}", check_char(&body))
}

/// 王秀英, female, 1962-03-08, 岳池县. Sequence 102: last digit 2 is even, so female.
/// By hand: 5·7+1·9+1·10+6·5+2·8+1·4+1·2+9·1+6·6+2·3+0·7+3·9+0·10+8·5+1·8+0·4+2·2 = 236;
/// 236 mod 11 = 5 -> '7'.
const WANG_ID: &str = "511621196203081027";
/// 张桂兰, female, 1962-03-08, 岳池县, sequence 104.
fn zhang_id() -> String {
    id_number(YUECHI, "19620308", "104")
}
/// 李明, male, 1962-03-08, 岳池县, sequence 113 (3 is odd: male).
fn li_id() -> String {
    id_number(YUECHI, "19620308", "113")
}
/// 赵德明, male, 1949-10-01, 岳池县, sequence 027; its check character is X.
/// By hand: 35+9+10+30+16+4+2+9+24+27+7+0+0+5+0+8+14 = 200; 200 mod 11 = 2 -> 'X'.
const ZHAO_ID_X: &str = "51162119491001027X";

#[test]
fn gb11643_helper_agrees_with_hand_computed_numbers() {
    assert_eq!(id_number(YUECHI, "19620308", "102"), WANG_ID);
    assert_eq!(id_number(YUECHI, "19491001", "027"), ZHAO_ID_X);
    // the standard's own example
    assert_eq!(id_number("440524", "18800101", "001"), "440524188001010014");
    assert_eq!(check_char("11010519491231002"), 'X');
}

// ---------------------------------------------------------------------------------------
// helpers

fn patient(name: &str, sex: &str, identity_number: &str) -> Value {
    json!({ "name": name, "sex": sex, "identity_number": identity_number })
}

/// Register and return the new patient's id (asserting 201).
async fn register(s: &TestServer, token: &str, body: Value) -> Uuid {
    let r = s.post("/api/v1/patients", token, body).await;
    r.expect_status(201);
    r.id()
}

fn yesterday_rfc3339() -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format a time")
}

fn encounter(patient: Uuid, facility: Uuid, diagnoses: &[&str]) -> Value {
    json!({
        "patient_id": patient,
        "facility_id": facility,
        "department": "全科",
        "class": "outpatient",
        "started_at": yesterday_rfc3339(),
        "diagnoses": diagnoses,
        "total_cost_fen": 3500,
    })
}

async fn access_log(s: &TestServer, token: &str, query: &str) -> Vec<Value> {
    let r = s.get(&format!("/api/v1/access-log?{query}"), token).await;
    r.expect_status(200);
    r.json["entries"].as_array().expect("entries").clone()
}

// ---------------------------------------------------------------------------------------
// 1. health, OpenAPI, route table

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_openapi_document() {
    let s = TestServer::start().await;
    let r = s.call(Method::GET, "/healthz", None, None).await;
    r.expect_status(200);
    assert_eq!(r.text, "ok");

    let r = s.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    r.expect_status(200);
    assert!(r.json.is_object(), "valid JSON: {}", r.text);
    assert_eq!(r.json["openapi"], "3.1.0");
    assert!(r.json["paths"]["/api/v1/patients/{id}"]["get"].is_object());
    // every documented (path, method) is in the document
    for (method, path, _, _, auth) in tiercare_server::openapi::all_routes() {
        let op = &r.json["paths"][*path][*method];
        assert!(op.is_object(), "{method} {path} missing from the document");
        assert_eq!(op["security"].is_array(), *auth, "{method} {path}: security matches the auth flag");
    }

    // an unknown route answers the JSON error shape
    let r = s.call(Method::GET, "/api/v1/nope", None, None).await;
    r.expect_error(404, "route.unknown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_routes_are_served() {
    let s = TestServer::start().await;
    assert!(tiercare_server::openapi::all_routes().next().is_some(), "the route table is not empty");
    for (method, path, _, _, auth) in tiercare_server::openapi::all_routes() {
        let concrete = path.replace("{id}", &Uuid::now_v7().to_string());
        let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("an HTTP method");
        let r = s.call(m, &concrete, None, None).await;
        let code = r.status.as_u16();
        assert!(code != 404 && code != 405, "{method} {path} is documented but answers {code}: {}", r.text);
        if *auth {
            r.expect_error(401, "auth.required");
        } else {
            assert!(code < 500, "{method} {path} answers {code}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_shell_is_served_with_strict_headers() {
    let s = TestServer::start().await;
    let r = s.call(Method::GET, "/", None, None).await;
    r.expect_status(200);
    let header = |r: &Resp, name: &str| r.headers.get(name).map(|v| v.to_str().expect("ascii").to_owned());
    assert_eq!(header(&r, "content-type").as_deref(), Some("text/html; charset=utf-8"));
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-cache"));
    let csp = header(&r, "content-security-policy").expect("a CSP header");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval") && !csp.contains("http"), "{csp}");
    assert_eq!(header(&r, "x-content-type-options").as_deref(), Some("nosniff"));
    assert!(r.text.contains("<html lang=\"zh-CN\">"), "Chinese by default");
    assert!(!r.text.contains("<script>") && !r.text.contains("style="), "no inline script or style");

    // the page names each asset with a version; that exact URL is immutable
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in r.text.split(attr).skip(1) {
            let url = &part[..part.find('"').expect("closing quote")];
            if url.starts_with('#') {
                continue; // the skip link
            }
            assert!(url.starts_with("/assets/"), "only local assets: {url}");
            assets.push(url.to_owned());
        }
    }
    assert_eq!(assets.len(), 6, "the shell's script, the three page scripts, stylesheet and icon: {assets:?}");
    for (url, ty) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("results.js", "text/javascript; charset=utf-8"),
        ("case-payment.js", "text/javascript; charset=utf-8"),
        ("indicators.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let versioned = assets.iter().find(|a| a.starts_with(&format!("/assets/{url}?v="))).expect("named by the page");
        let r = s.call(Method::GET, versioned, None, None).await;
        r.expect_status(200);
        assert_eq!(header(&r, "content-type").as_deref(), Some(ty));
        assert_eq!(header(&r, "cache-control").as_deref(), Some("public, max-age=31536000, immutable"));
        assert!(header(&r, "content-security-policy").is_some());
        if url != "icon.svg" {
            assert!(!r.text.contains("http://") && !r.text.contains("https://"), "{url} references no URL");
        }
        // an unversioned (or stale) request is revalidated; the ETag answers 304
        let r = s.call(Method::GET, &format!("/assets/{url}"), None, None).await;
        assert_eq!(header(&r, "cache-control").as_deref(), Some("no-cache"));
        let etag = header(&r, "etag").expect("an ETag");
        let rb = s.client.get(s.url(&format!("/assets/{url}"))).header("if-none-match", &etag);
        let r = s.send(rb).await;
        r.expect_status(304);
        assert!(r.text.is_empty());
    }
    let r = s.call(Method::GET, "/assets/nope.js", None, None).await;
    r.expect_error(404, "asset.unknown");
    let r = s.call(Method::GET, "/assets/../Cargo.toml", None, None).await;
    assert_eq!(r.status.as_u16(), 404);
    // the API's own fallback is untouched
    let r = s.call(Method::GET, "/api/v1/nope", None, None).await;
    r.expect_error(404, "route.unknown");
}

// ---------------------------------------------------------------------------------------
// 2. authentication

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_or_unknown_user_is_auth_invalid() {
    let s = TestServer::start().await;
    let r = s.try_login("vdoc_a", "not-the-password").await;
    r.expect_error(401, "auth.invalid");
    let wrong_password_message = r.json["error"]["message"].clone();
    // an unknown user name gets the very same answer (no user enumeration)
    let r = s.try_login("nobody_here", "not-the-password").await;
    r.expect_error(401, "auth.invalid");
    assert_eq!(r.json["error"]["message"], wrong_password_message);
    assert!(r.json.get("token").is_none());
    // the right password still works after two failures
    let r = s.try_login("vdoc_a", PASSWORD).await;
    r.expect_status(200);
    assert_eq!(r.json["user"]["username"], "vdoc_a");
    assert_eq!(r.json["user"]["roles"], json!(["village_doctor"]));
    assert!(r.json["token"].as_str().is_some_and(|t| t.len() > 32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixth_failed_login_is_rate_limited() {
    let s = TestServer::start().await;
    for attempt in 1..=5 {
        let r = s.try_login("clin_b", &format!("guess-number-{attempt}")).await;
        assert_eq!(r.status.as_u16(), 401, "attempt {attempt}: {}", r.text);
        assert_eq!(r.code(), "auth.invalid");
    }
    let r = s.try_login("clin_b", "guess-number-6").await;
    r.expect_error(429, "auth.rate_limited");
    // while blocked, even the right password is refused: no guessing around the limit
    let r = s.try_login("clin_b", PASSWORD).await;
    r.expect_error(429, "auth.rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_bad_tokens_are_refused() {
    let s = TestServer::start().await;
    let r = s.call(Method::GET, "/api/v1/auth/me", None, None).await;
    r.expect_error(401, "auth.required");
    let challenge = r.headers.get("www-authenticate").expect("a WWW-Authenticate header on 401");
    assert_eq!(challenge.to_str().expect("ascii"), "Bearer");

    let r = s.call(Method::GET, "/api/v1/auth/me", Some("garbage"), None).await;
    r.expect_error(401, "auth.required");
    assert!(r.headers.get("www-authenticate").is_some());

    // a well-formed but never issued token
    let fake = format!("tc_{}", "ab".repeat(32));
    let r = s.call(Method::GET, "/api/v1/auth/me", Some(&fake), None).await;
    r.expect_error(401, "auth.required");

    // not a bearer scheme
    let rb = s.client.get(s.url("/api/v1/auth/me")).header("authorization", "Basic dmRvY19hOnNlY3JldA==");
    s.send(rb).await.expect_error(401, "auth.required");

    // a protected write without a token writes nothing
    let r = s.call(Method::POST, "/api/v1/patients", None, Some(&patient("王秀英", "female", WANG_ID))).await;
    r.expect_error(401, "auth.required");
    assert_eq!(s.patient_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_scheme_is_case_insensitive() {
    let s = TestServer::start().await;
    let token = s.login("vdoc_a").await;
    let rb = s.client.get(s.url("/api/v1/auth/me")).header("authorization", format!("bearer {token}"));
    s.send(rb).await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_token() {
    let s = TestServer::start().await;
    let token = s.login("vdoc_a").await;
    let other_session = s.login("vdoc_a").await;
    let r = s.get("/api/v1/auth/me", &token).await;
    r.expect_status(200);
    assert_eq!(r.json["username"], "vdoc_a");
    assert_eq!(r.json["facility_id"], json!(s.seed.village_clinic));

    let r = s.call(Method::POST, "/api/v1/auth/logout", Some(&token), None).await;
    r.expect_status(204);
    let r = s.get("/api/v1/auth/me", &token).await;
    r.expect_error(401, "auth.required");
    // logging out again with the revoked token is itself unauthenticated
    s.call(Method::POST, "/api/v1/auth/logout", Some(&token), None).await.expect_error(401, "auth.required");
    // only that session ended
    s.get("/api/v1/auth/me", &other_session).await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_and_disabled_accounts_cannot_sign_in() {
    let config = tiercare_server::ServerConfig {
        session_ttl: std::time::Duration::from_secs(1),
        ..tiercare_server::ServerConfig::default()
    };
    let s = TestServer::start_with(config).await;
    let token = s.login("vdoc_a").await;
    s.get("/api/v1/auth/me", &token).await.expect_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    s.get("/api/v1/auth/me", &token).await.expect_error(401, "auth.required");

    let disabled = tiercare_store::User {
        id: new_id(),
        username: "retired_doc".into(),
        display_name: "退休医生".into(),
        facility_id: s.seed.village_clinic,
        roles: vec![Role::VillageDoctor],
        password_hash: tiercare_server::auth::hash_password(PASSWORD).expect("hash"),
        active: false,
    };
    s.store.create_user(&disabled).await.expect("create a disabled user");
    s.try_login("retired_doc", PASSWORD).await.expect_error(401, "auth.invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_are_created_and_used() {
    let s = TestServer::start().await;
    let session = s.login("spec_a").await;
    let r = s.post("/api/v1/auth/api-tokens", &session, json!({ "label": "LIS 检验系统" })).await;
    r.expect_status(201);
    assert_eq!(r.json["label"], "LIS 检验系统");
    let api = r.json["token"].as_str().expect("the API token is shown once").to_owned();
    assert_ne!(api, session);

    let r = s.get("/api/v1/auth/me", &api).await;
    r.expect_status(200);
    assert_eq!(r.json["username"], "spec_a");
    assert_eq!(r.json["roles"], json!(["specialist"]));

    // the API token outlives the session it was made in
    s.call(Method::POST, "/api/v1/auth/logout", Some(&session), None).await.expect_status(204);
    s.get("/api/v1/auth/me", &api).await.expect_status(200);

    // an empty label is refused
    let r = s.post("/api/v1/auth/api-tokens", &api, json!({ "label": "   " })).await;
    r.expect_error(400, "token.label");

    // and an API token can be revoked like any other
    s.call(Method::POST, "/api/v1/auth/logout", Some(&api), None).await.expect_status(204);
    s.get("/api/v1/auth/me", &api).await.expect_error(401, "auth.required");
}

// ---------------------------------------------------------------------------------------
// 3. roles

fn new_user(username: &str, facility: Uuid, roles: &[&str]) -> Value {
    json!({
        "username": username,
        "display_name": "王医生",
        "facility_id": facility,
        "roles": roles,
        "password": "another-long-password",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_create_users() {
    let s = TestServer::start().await;
    let before = s.user_count().await;
    let vdoc = s.login("vdoc_a").await;
    let r = s.post("/api/v1/users", &vdoc, new_user("new_doctor", s.seed.village_clinic, &["village_doctor"])).await;
    r.expect_error(403, "role.forbidden");
    s.get("/api/v1/users", &vdoc).await.expect_error(403, "role.forbidden");
    assert_eq!(s.user_count().await, before);

    let admin = s.login("sysadmin").await;
    let r = s.post("/api/v1/users", &admin, new_user("new_doctor", s.seed.village_clinic, &["village_doctor"])).await;
    r.expect_status(201);
    assert_eq!(r.json["username"], "new_doctor");
    assert_eq!(r.json["roles"], json!(["village_doctor"]));
    assert!(r.json.get("password").is_none() && r.json.get("password_hash").is_none());
    assert_eq!(s.user_count().await, before + 1);
    // the new account can sign in
    let r = s.try_login("new_doctor", "another-long-password").await;
    r.expect_status(200);

    // the same user name again is a conflict
    let r = s.post("/api/v1/users", &admin, new_user("new_doctor", s.seed.county_hospital, &["specialist"])).await;
    r.expect_error(409, "duplicate");
    // an unknown facility is an unknown reference
    let r = s.post("/api/v1/users", &admin, new_user("ghost", new_id(), &["specialist"])).await;
    r.expect_error(422, "reference.unknown");
    assert_eq!(s.user_count().await, before + 1);

    let list = s.get("/api/v1/users", &admin).await;
    list.expect_status(200);
    assert_eq!(list.json.as_array().map(Vec::len), Some(before + 1));
    assert!(!list.text.contains("argon2"), "password hashes are never listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_names_are_case_insensitive_at_sign_in() {
    let s = TestServer::start().await;
    let admin = s.login("sysadmin").await;
    let r = s.post("/api/v1/users", &admin, new_user("Wang.Yi", s.seed.village_clinic, &["village_doctor"])).await;
    r.expect_status(201);
    assert_eq!(r.json["username"], "wang.yi");
    // the name exactly as the admin typed it, and as stored, both sign in
    s.try_login("wang.yi", "another-long-password").await.expect_status(200);
    s.try_login("Wang.Yi", "another-long-password").await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_admin_manages_only_their_own_community() {
    let s = TestServer::start().await;
    let before = s.user_count().await;
    let admin_a = s.login("admin_a").await;
    // B's township centre is not in community A
    let r = s.post("/api/v1/users", &admin_a, new_user("intruder", s.seed.township_b, &["township_clinician"])).await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text);
    assert_eq!(r.code(), "users.other_community");
    // nor may a community admin make a system admin, even at home
    let r = s.post("/api/v1/users", &admin_a, new_user("root2", s.seed.county_hospital, &["system_admin"])).await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text);
    assert_eq!(s.user_count().await, before);
    // inside community A it works
    let r = s.post("/api/v1/users", &admin_a, new_user("vdoc_a2", s.seed.village_clinic, &["village_doctor"])).await;
    r.expect_status(201);
    assert_eq!(s.user_count().await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_role_is_named_in_the_details() {
    let s = TestServer::start().await;
    let before = s.user_count().await;
    let admin = s.login("sysadmin").await;
    let r = s
        .post("/api/v1/users", &admin, new_user("new_doctor", s.seed.village_clinic, &["village_doctor", "doctor"]))
        .await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_field(0), "roles[1]");
    assert_eq!(r.detail_code(0), "role.unknown");
    assert_eq!(r.json["error"]["details"].as_array().map(Vec::len), Some(1), "{}", r.text);
    assert_eq!(s.user_count().await, before);
}

// ---------------------------------------------------------------------------------------
// 4. registration and GB 11643

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_derives_birth_date_sex_and_region() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let r = s.post("/api/v1/patients", &vdoc, patient("王秀英", "female", WANG_ID)).await;
    r.expect_status(201);
    assert_eq!(r.json["birth_date"], "1962-03-08");
    assert_eq!(r.json["sex"], "female");
    assert_eq!(r.json["name"], "王秀英");
    assert_eq!(r.json["region_key"], YUECHI);
    assert_eq!(r.json["status"], "active");
    assert_eq!(r.json["home_facility_id"], json!(s.seed.village_clinic), "defaults to the registering facility");
    assert_eq!(r.json["identifiers"], json!([{ "type": "resident_id", "value": WANG_ID }]));

    // a number whose check character is X, sent with a lowercase x, is normalised
    let r = s.post("/api/v1/patients", &vdoc, patient("赵德明", "male", &ZHAO_ID_X.to_lowercase())).await;
    r.expect_status(201);
    assert_eq!(r.json["birth_date"], "1949-10-01");
    assert_eq!(r.json["identifiers"][0]["value"], ZHAO_ID_X);
    assert_eq!(s.patient_count().await, 2);

    // a township clinician in B registers a resident of 武胜县 at their centre
    let clin = s.login("clin_b").await;
    let id = id_number(WUSHENG, "19900512", "002");
    let r = s.post("/api/v1/patients", &clin, patient("陈晓梅", "female", &id)).await;
    r.expect_status(201);
    assert_eq!(r.json["birth_date"], "1990-05-12");
    assert_eq!(r.json["region_key"], WUSHENG);
    assert_eq!(r.json["home_facility_id"], json!(s.seed.township_b));

    // a birth date that disagrees with the number is refused
    let mut body = patient("李明", "male", &li_id());
    body["birth_date"] = json!("1962-03-09");
    let r = s.post("/api/v1/patients", &vdoc, body).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "birth_date.mismatch");
    assert_eq!(s.patient_count().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_identity_number_twice_is_a_conflict_naming_the_existing_patient() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let first = register(&s, &vdoc, patient("赵德明", "male", ZHAO_ID_X)).await;
    assert_eq!(s.patient_count().await, 1);

    let r = s.post("/api/v1/patients", &vdoc, patient("赵德明", "male", ZHAO_ID_X)).await;
    r.expect_error(409, "duplicate");
    assert!(r.text.contains(&first.to_string()), "names the existing patient {first}: {}", r.text);
    assert_eq!(s.patient_count().await, 1, "nothing written");

    // same number with lowercase x, different name, from another community: still one person
    let clin = s.login("clin_b").await;
    let r = s.post("/api/v1/patients", &clin, patient("赵得明", "male", &ZHAO_ID_X.to_lowercase())).await;
    r.expect_error(409, "duplicate");
    assert!(r.text.contains(&first.to_string()), "{}", r.text);
    assert_eq!(s.patient_count().await, 1, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_number_make_one_record() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let clin = s.login("clin_b").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = s.client.clone();
        let url = s.url("/api/v1/patients");
        let token = if i % 2 == 0 { vdoc.clone() } else { clin.clone() };
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).bearer_auth(token).json(&patient("李明", "male", &li_id())).send().await;
            r.expect("the server answers").status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("the task finishes"));
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(s.patient_count().await, 1);
}

/// (case, number, stated sex, expected detail code)
fn invalid_numbers() -> Vec<(&'static str, String, &'static str, &'static str)> {
    let mut wrong_check = WANG_ID.to_owned();
    wrong_check.replace_range(17.., "8");
    vec![
        ("wrong check character", wrong_check, "female", "identity_number.check_character"),
        ("wrong check character (X expected)", ZHAO_ID_X.replace('X', "0"), "male", "identity_number.check_character"),
        // 1962-02-30 does not exist; the check character is right, so only the date is wrong
        ("impossible date", id_number(YUECHI, "19620230", "102"), "female", "identity_number.birth_date"),
        ("month 13", id_number(YUECHI, "19621301", "102"), "female", "identity_number.birth_date"),
        // sequence 113 is odd: a man's number given for a woman
        ("sex mismatch", li_id(), "female", "identity_number.sex_mismatch"),
        ("17 characters", WANG_ID[..17].to_owned(), "female", "identity_number.length"),
        ("19 characters", format!("{WANG_ID}1"), "female", "identity_number.length"),
        ("letter inside", format!("5116211962A3081{}", &WANG_ID[15..]), "female", "identity_number.characters"),
        // born in the future
        ("future birth", id_number(YUECHI, "20991231", "102"), "female", "identity_number.birth_date_future"),
        // 99 is no province
        ("unknown province", id_number("991621", "19620308", "102"), "female", "identity_number.region"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_identity_numbers_are_refused_with_the_reason() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    for (case, number, sex, code) in invalid_numbers() {
        let r = s.post("/api/v1/patients", &vdoc, patient("王秀英", sex, &number)).await;
        assert_eq!(r.status.as_u16(), 422, "{case}: {}", r.text);
        assert_eq!(r.code(), "validation", "{case}");
        assert_eq!(r.detail_field(0), "identity_number", "{case}: {}", r.text);
        assert_eq!(r.detail_code(0), code, "{case}: {}", r.text);
        assert_eq!(s.patient_count().await, 0, "{case}: nothing written");
    }
}

// ---------------------------------------------------------------------------------------
// 9. privacy of identity-number errors

fn assert_number_not_echoed(r: &Resp, number: &str, case: &str) {
    assert!(!r.text.contains(number), "{case}: the answer echoes the submitted number: {}", r.text);
    if number.len() >= 17 {
        assert!(!r.text.contains(&number[..17]), "{case}: the answer echoes the number's 17 digits: {}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_number_errors_name_the_failure_not_the_number() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    for (case, number, sex, code) in invalid_numbers() {
        let r = s.post("/api/v1/patients", &vdoc, patient("王秀英", sex, &number)).await;
        assert_eq!(r.detail_code(0), code, "{case}");
        let message = r.json["error"]["details"][0]["message"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "{case}: a message a person can act on");
        assert_number_not_echoed(&r, &number, case);

        if code == "identity_number.sex_mismatch" {
            continue; // a lookup states no sex: the number itself is valid
        }
        let r = s.post("/api/v1/patients/lookup", &vdoc, json!({ "type": "resident_id", "value": number })).await;
        assert_eq!(r.status.as_u16(), 422, "lookup {case}: {}", r.text);
        assert_eq!(r.detail_code(0), code, "lookup {case}");
        assert_number_not_echoed(&r, &number, case);
    }
    // a duplicate names the existing patient, not the number
    register(&s, &vdoc, patient("王秀英", "female", WANG_ID)).await;
    let r = s.post("/api/v1/patients", &vdoc, patient("王秀英", "female", WANG_ID)).await;
    r.expect_error(409, "duplicate");
    assert_number_not_echoed(&r, WANG_ID, "duplicate");
    // an unknown number in a lookup is not echoed either
    let r = s.post("/api/v1/patients/lookup", &vdoc, json!({ "type": "resident_id", "value": li_id() })).await;
    r.expect_error(404, "patient.not_registered");
    assert_number_not_echoed(&r, &li_id(), "lookup not registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_number_sent_as_json_number_is_not_echoed() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    // spreadsheets and careless clients turn 18-digit numbers into integers
    let number = li_id();
    let raw = format!(r#"{{"name":"李明","sex":"male","identity_number":{number}}}"#);
    let rb = s
        .client
        .post(s.url("/api/v1/patients"))
        .bearer_auth(&vdoc)
        .header("content-type", "application/json")
        .body(raw);
    let r = s.send(rb).await;
    r.expect_error(422, "json.data");
    assert_number_not_echoed(&r, &number, "integer identity_number");
    let raw = format!(r#"{{"type":"resident_id","value":{number}}}"#);
    let rb = s
        .client
        .post(s.url("/api/v1/patients/lookup"))
        .bearer_auth(&vdoc)
        .header("content-type", "application/json")
        .body(raw);
    let r = s.send(rb).await;
    r.expect_error(422, "json.data");
    assert_number_not_echoed(&r, &number, "integer lookup value");
}

// ---------------------------------------------------------------------------------------
// 5. bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_refused_and_nothing_is_written() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let url = s.url("/api/v1/patients");
    let raw = |body: String| {
        s.client.post(url.as_str()).bearer_auth(&vdoc).header("content-type", "application/json").body(body)
    };

    // not JSON at all
    let r = s.send(raw(r#"{"name": "王秀英", "sex": "female",,}"#.into())).await;
    r.expect_error(400, "json.syntax");
    assert_eq!(s.patient_count().await, 0);

    // a wrong type
    let r = s.send(raw(format!(r#"{{"name": 5, "sex": "female", "identity_number": "{WANG_ID}"}}"#))).await;
    r.expect_error(422, "json.data");
    assert!(r.json["error"]["message"].as_str().is_some_and(|m| m.contains("name")), "names the field: {}", r.text);
    assert_eq!(s.patient_count().await, 0);

    // an unknown field
    let mut body = patient("王秀英", "female", WANG_ID);
    body["nickname"] = json!("小英");
    let r = s.post("/api/v1/patients", &vdoc, body).await;
    r.expect_error(422, "json.data");
    assert!(r.text.contains("nickname"), "names the unknown field: {}", r.text);
    assert_eq!(s.patient_count().await, 0);

    // an unknown enum value
    let r = s.post("/api/v1/patients", &vdoc, patient("王秀英", "unknown", WANG_ID)).await;
    r.expect_error(422, "json.data");
    assert_eq!(s.patient_count().await, 0);

    // a missing required field
    let r = s.post("/api/v1/patients", &vdoc, json!({ "name": "王秀英", "identity_number": WANG_ID })).await;
    r.expect_error(422, "json.data");
    assert_eq!(s.patient_count().await, 0);

    // valid JSON without a content type
    let body = serde_json::to_string(&patient("王秀英", "female", WANG_ID)).expect("serialise");
    let r = s.send(s.client.post(url.as_str()).bearer_auth(&vdoc).body(body.clone())).await;
    r.expect_error(415, "json.content_type");
    // or with the wrong one
    let r =
        s.send(s.client.post(url.as_str()).bearer_auth(&vdoc).header("content-type", "text/plain").body(body)).await;
    r.expect_error(415, "json.content_type");
    assert_eq!(s.patient_count().await, 0);

    // larger than 1 MiB
    let big = format!(
        r#"{{"name": "王秀英", "sex": "female", "identity_number": "{WANG_ID}", "address": "{}"}}"#,
        "岳".repeat(400_000)
    );
    assert!(big.len() > 1024 * 1024);
    let r = s.send(raw(big)).await;
    r.expect_error(413, "body.too_large");
    assert_eq!(s.patient_count().await, 0);

    // and after all that, the same registration done right is accepted once
    register(&s, &vdoc, patient("王秀英", "female", WANG_ID)).await;
    assert_eq!(s.patient_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_references_are_refused() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;

    // unknown home facility
    let mut body = patient("王秀英", "female", WANG_ID);
    body["home_facility_id"] = json!(new_id());
    let r = s.post("/api/v1/patients", &vdoc, body).await;
    r.expect_error(422, "reference.unknown");
    assert_eq!(s.patient_count().await, 0);

    let p = register(&s, &vdoc, patient("王秀英", "female", WANG_ID)).await;

    // encounter for an unknown patient
    let r = s.post("/api/v1/encounters", &vdoc, encounter(new_id(), s.seed.village_clinic, &["I10.x00"])).await;
    r.expect_error(422, "reference.unknown");

    // encounter naming an unknown practitioner
    let mut body = encounter(p, s.seed.village_clinic, &["I10.x00"]);
    body["practitioner_id"] = json!(new_id());
    let r = s.post("/api/v1/encounters", &vdoc, body).await;
    r.expect_error(422, "reference.unknown");
    assert_eq!(s.encounter_count(p).await, 0, "nothing written");

    // merge naming an unknown record
    let admin = s.login("admin_a").await;
    let r = s
        .post(&format!("/api/v1/patients/{p}/merge"), &admin, json!({ "merged_id": new_id(), "reason": "重复登记" }))
        .await;
    r.expect_error(422, "reference.unknown");
    let r = s.get(&format!("/api/v1/patients/{p}/merges"), &admin).await;
    r.expect_status(200);
    assert_eq!(r.json["merges"], json!([]));
}

/// A user records encounters only at their own facility, so a facility id that is not
/// theirs (known or not) is refused as another facility, before anything is looked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encounter_at_unknown_facility_is_refused() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let p = register(&s, &vdoc, patient("王秀英", "female", WANG_ID)).await;
    let r = s.post("/api/v1/encounters", &vdoc, encounter(p, new_id(), &["I10.x00"])).await;
    r.expect_error(403, "encounter.other_facility");
    assert_eq!(s.encounter_count(p).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encounters_are_recorded_only_with_known_codes_at_the_own_facility() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let p = register(&s, &vdoc, patient("王秀英", "female", WANG_ID)).await;

    // unknown ICD-10 code
    let r = s.post("/api/v1/encounters", &vdoc, encounter(p, s.seed.village_clinic, &["ZZZ.999"])).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_field(0), "diagnoses[0]");
    assert_eq!(r.detail_code(0), "diagnosis.unknown");
    // the second of two diagnoses is unknown
    let r = s.post("/api/v1/encounters", &vdoc, encounter(p, s.seed.village_clinic, &["I10.x00", "I10"])).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_field(0), "diagnoses[1]");
    assert_eq!(r.detail_code(0), "diagnosis.unknown");
    // no diagnosis at all
    let r = s.post("/api/v1/encounters", &vdoc, encounter(p, s.seed.village_clinic, &[])).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "diagnoses.missing");
    // a village doctor cannot record at the county hospital
    let r = s.post("/api/v1/encounters", &vdoc, encounter(p, s.seed.county_hospital, &["I10.x00"])).await;
    r.expect_error(403, "encounter.other_facility");
    // a system admin records no clinical encounters
    let admin = s.login("sysadmin").await;
    let r = s.post("/api/v1/encounters", &admin, encounter(p, s.seed.county_hospital, &["I10.x00"])).await;
    r.expect_error(403, "role.forbidden");
    assert_eq!(s.encounter_count(p).await, 0, "nothing written");

    // a correct one
    let r = s.post("/api/v1/encounters", &vdoc, encounter(p, s.seed.village_clinic, &["I10.x00"])).await;
    r.expect_status(201);
    assert_eq!(r.json["patient_id"], json!(p));
    assert_eq!(r.json["region_key"], YUECHI);
    assert_eq!(r.json["diagnoses"], json!(["I10.x00"]));
    assert_eq!(s.encounter_count(p).await, 1);
}

// ---------------------------------------------------------------------------------------
// 6. lookup and match

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_by_identity_number() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let p = register(&s, &vdoc, patient("赵德明", "male", ZHAO_ID_X)).await;

    let r = s.post("/api/v1/patients/lookup", &vdoc, json!({ "type": "resident_id", "value": ZHAO_ID_X })).await;
    r.expect_status(200);
    assert_eq!(r.json["id"], json!(p));
    assert_eq!(r.json["name"], "赵德明");
    assert!(r.json.get("found_via_merged_record").is_none());
    // lowercase x finds the same person
    let r = s
        .post("/api/v1/patients/lookup", &vdoc, json!({ "type": "resident_id", "value": ZHAO_ID_X.to_lowercase() }))
        .await;
    r.expect_status(200);
    assert_eq!(r.json["id"], json!(p));
    // someone in another community can identify the person too (identification, not the record)
    let clin = s.login("clin_b").await;
    let r = s.post("/api/v1/patients/lookup", &clin, json!({ "type": "resident_id", "value": ZHAO_ID_X })).await;
    r.expect_status(200);
    assert!(r.json.get("encounters").is_none(), "a lookup is not the record");

    // a valid number nobody registered
    let r = s.post("/api/v1/patients/lookup", &vdoc, json!({ "type": "resident_id", "value": WANG_ID })).await;
    r.expect_error(404, "patient.not_registered");
    // an unknown identifier type
    let r = s.post("/api/v1/patients/lookup", &vdoc, json!({ "type": "social_security", "value": WANG_ID })).await;
    r.expect_error(422, "json.data");
    // a system admin does not identify patients
    let admin = s.login("sysadmin").await;
    let r = s.post("/api/v1/patients/lookup", &admin, json!({ "type": "resident_id", "value": ZHAO_ID_X })).await;
    r.expect_error(403, "role.forbidden");

    // the successful lookups are logged as identification
    let admin_a = s.login("admin_a").await;
    let entries = access_log(&s, &admin_a, &format!("patient_id={p}")).await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(entries.iter().all(|e| e["basis"] == "identification" && e["action"] == "lookup"));
    assert!(entries.iter().any(|e| e["user_id"] == json!(s.user_id("clin_b"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_ranks_candidates_creates_nothing_and_masks_numbers() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let mut wang = patient("王秀英", "female", WANG_ID);
    wang["phone"] = json!("13800001111");
    let exact = register(&s, &vdoc, wang).await;
    let similar = register(&s, &vdoc, patient("王秀音", "female", &zhang_id())).await; // one character off
    let other = register(&s, &vdoc, patient("李明", "male", &li_id())).await; // same birth date only
    let far = register(&s, &vdoc, patient("赵德明", "male", ZHAO_ID_X)).await;
    assert_eq!(s.patient_count().await, 4);

    let q = json!({ "name": "王秀英", "birth_date": "1962-03-08", "sex": "female" });
    let r = s.post("/api/v1/patients/match", &vdoc, q).await;
    r.expect_status(200);
    let c = r.json["candidates"].as_array().expect("candidates");
    let ids: Vec<&Value> = c.iter().map(|x| &x["patient_id"]).collect();
    assert_eq!(ids.first(), Some(&&json!(exact)), "the exact match ranks first: {}", r.text);
    assert!(
        ids.contains(&&json!(similar)),
        "a one-character name variant with the same birth date and sex is a candidate"
    );
    assert!(!ids.contains(&&json!(other)), "a man with another name but the same birth date is no candidate");
    assert!(!ids.contains(&&json!(far)));
    assert_eq!(c.len(), 2);
    let s0 = c[0]["score"].as_u64().expect("score");
    let s1 = c[1]["score"].as_u64().expect("score");
    assert!(s0 > s1, "ranked by score: {s0} > {s1}");
    let agreements = c[0]["agreements"].as_array().expect("agreements");
    for f in ["name", "birth_date", "sex"] {
        assert!(agreements.contains(&json!(f)), "exact candidate agrees on {f}: {}", r.text);
    }
    // numbers are masked: first 6 and last 4 kept
    assert_eq!(c[0]["identity_number_masked"], "511621********1027");
    for n in [WANG_ID.to_owned(), zhang_id(), li_id(), ZHAO_ID_X.to_owned(), "13800001111".to_owned()] {
        assert!(!r.text.contains(&n), "the match answer carries the full number {n}: {}", r.text);
    }
    assert_eq!(s.patient_count().await, 4, "matching creates nothing");

    // too little to match on
    let r = s.post("/api/v1/patients/match", &vdoc, json!({ "name": "王秀英" })).await;
    r.expect_error(422, "match.too_little");
    // an identity number alone is a sure match
    let r = s.post("/api/v1/patients/match", &vdoc, json!({ "identity_number": WANG_ID })).await;
    r.expect_status(200);
    assert_eq!(r.json["candidates"][0]["patient_id"], json!(exact));
    assert_eq!(r.json["candidates"][0]["grade"], "certain");
    assert_eq!(s.patient_count().await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_name_or_phone_masks_numbers_and_is_logged() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let mut wang = patient("王秀英", "female", WANG_ID);
    wang["phone"] = json!("13800001111");
    let wang = register(&s, &vdoc, wang).await;
    let mut zhang = patient("张桂兰", "female", &zhang_id());
    zhang["phone"] = json!("13800001111"); // same household phone
    let zhang = register(&s, &vdoc, zhang).await;
    let li = register(&s, &vdoc, patient("李明", "male", &li_id())).await;
    // a one-character variant of the name: no hit for a search by name
    let similar = register(&s, &vdoc, patient("王秀音", "female", &id_number(YUECHI, "19700101", "206"))).await;
    let ids = |r: &Resp| -> Vec<Value> {
        r.json["patients"].as_array().expect("patients").iter().map(|p| p["patient_id"].clone()).collect()
    };

    // by name: exactly that name (a one-character variant is no hit)
    let r = s.post("/api/v1/patients/search", &vdoc, json!({ "name": " 王秀英 " })).await;
    r.expect_status(200);
    assert_eq!(ids(&r), vec![json!(wang)], "{}", r.text);
    let hit = &r.json["patients"][0];
    assert_eq!(hit["name"], "王秀英");
    assert_eq!(hit["sex"], "female");
    assert_eq!(hit["birth_date"], "1962-03-08");
    assert!(hit["age"].as_i64().is_some_and(|a| a >= 64));
    assert_eq!(hit["status"], "active");
    assert_eq!(hit["identity_number_masked"], "511621********1027");
    assert_eq!(hit["phone_masked"], "1******1111");
    assert_eq!(hit["home_facility_id"], json!(s.seed.village_clinic));
    assert!(!ids(&r).contains(&json!(similar)));

    // by phone: everyone with that phone
    let r = s.post("/api/v1/patients/search", &vdoc, json!({ "phone": "13800001111" })).await;
    r.expect_status(200);
    let found = ids(&r);
    assert_eq!(found.len(), 2, "{}", r.text);
    assert!(found.contains(&json!(wang)) && found.contains(&json!(zhang)));
    // name and phone together: both must agree
    let r = s.post("/api/v1/patients/search", &vdoc, json!({ "name": "张桂兰", "phone": "13800001111" })).await;
    r.expect_status(200);
    assert_eq!(ids(&r), vec![json!(zhang)]);
    let r = s.post("/api/v1/patients/search", &vdoc, json!({ "name": "李明", "phone": "13800001111" })).await;
    r.expect_status(200);
    assert!(ids(&r).is_empty(), "{}", r.text);
    // no full number anywhere in the answers
    let r = s.post("/api/v1/patients/search", &vdoc, json!({ "name": "李明" })).await;
    r.expect_status(200);
    assert_eq!(ids(&r), vec![json!(li)]);
    assert!(!r.text.contains(&li_id()), "{}", r.text);
    assert_eq!(r.json["patients"][0]["phone_masked"], Value::Null);

    // too little: nothing, blanks, or only fields search does not take
    for body in [json!({}), json!({ "name": "  ", "phone": "" })] {
        let r = s.post("/api/v1/patients/search", &vdoc, body).await;
        r.expect_error(422, "search.too_little");
    }
    let r = s.post("/api/v1/patients/search", &vdoc, json!({ "identity_number": WANG_ID })).await;
    r.expect_error(422, "json.data");
    // the same roles as lookup: a system admin does not identify patients
    let admin = s.login("sysadmin").await;
    let r = s.post("/api/v1/patients/search", &admin, json!({ "name": "王秀英" })).await;
    r.expect_error(403, "role.forbidden");

    // each patient answered is logged once per search, as identification
    let admin_a = s.login("admin_a").await;
    let entries = access_log(&s, &admin_a, &format!("patient_id={wang}")).await;
    let searches: Vec<&Value> = entries.iter().filter(|e| e["action"] == "search").collect();
    assert_eq!(searches.len(), 2, "by name and by phone: {entries:?}");
    assert!(searches.iter().all(|e| e["basis"] == "identification" && e["user_id"] == json!(s.user_id("vdoc_a"))));
    let entries = access_log(&s, &admin_a, &format!("patient_id={similar}")).await;
    assert!(entries.iter().all(|e| e["action"] != "search"), "patients not answered are not logged: {entries:?}");
}

// ---------------------------------------------------------------------------------------
// 7. the access rule, break-glass and the access log

const BREAK_GLASS_REASON: &str = "急诊昏迷患者，需要既往史";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rule_break_glass_and_access_log() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let p = register(&s, &vdoc, patient("王秀英", "female", WANG_ID)).await;
    let path = format!("/api/v1/patients/{p}");

    // the village doctor whose clinic registered the patient reads the record
    let r = s.get(&path, &vdoc).await;
    r.expect_status(200);
    assert_eq!(r.json["access"]["basis"], "care_relationship");
    assert_eq!(r.json["patient"]["id"], json!(p));
    assert_eq!(r.json["merged_ids"], json!([]));

    // a township clinician of community B has no relationship
    let clin = s.login("clin_b").await;
    let r = s.get(&path, &clin).await;
    r.expect_error(403, "access.no_relationship");
    assert!(r.json.get("patient").is_none());

    // break-glass with too short a reason
    let r = s.post(&format!("{path}/break-glass"), &clin, json!({ "reason": "急诊" })).await;
    r.expect_error(403, "access.reason_too_short");
    let r = s.post(&format!("{path}/break-glass"), &clin, json!({ "reason": "   急诊   " })).await;
    r.expect_error(403, "access.reason_too_short");

    // break-glass with a real reason
    let r = s.post(&format!("{path}/break-glass"), &clin, json!({ "reason": BREAK_GLASS_REASON })).await;
    r.expect_status(200);
    assert_eq!(r.json["access"]["basis"], "break_glass");
    assert_eq!(r.json["patient"]["id"], json!(p));

    // break-glass opened one read, not a lasting relationship
    s.get(&path, &clin).await.expect_error(403, "access.no_relationship");

    // the community admin of A sees who read what
    let admin_a = s.login("admin_a").await;
    let entries = access_log(&s, &admin_a, &format!("patient_id={p}")).await;
    assert_eq!(entries.len(), 2, "one ordinary read and one break-glass read, no refused attempts: {entries:?}");
    let bg = entries.iter().find(|e| e["basis"] == "break_glass").expect("the break-glass read is logged");
    assert_eq!(bg["reason"], BREAK_GLASS_REASON);
    assert_eq!(bg["user_id"], json!(s.user_id("clin_b")));
    assert_eq!(bg["facility_id"], json!(s.seed.township_b));
    assert_eq!(bg["patient_id"], json!(p));
    assert_eq!(bg["client_addr"], "127.0.0.1");
    assert!(bg["at"].as_str().is_some_and(|t| !t.is_empty()));
    let ordinary = entries.iter().find(|e| e["basis"] == "care_relationship").expect("the ordinary read is logged");
    assert_eq!(ordinary["user_id"], json!(s.user_id("vdoc_a")));
    assert_eq!(ordinary["reason"], Value::Null);
    // newest first
    assert_eq!(entries[0]["basis"], "break_glass");

    // the system admin can filter by basis and user
    let sys = s.login("sysadmin").await;
    let entries = access_log(&s, &sys, "basis=break_glass").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["reason"], BREAK_GLASS_REASON);
    let entries = access_log(&s, &sys, &format!("user_id={}", s.user_id("vdoc_a"))).await;
    assert_eq!(entries.len(), 1);
    s.get("/api/v1/access-log?basis=sideways", &sys).await.expect_error(400, "basis.unknown");

    // clinicians do not read the access log
    s.get("/api/v1/access-log", &vdoc).await.expect_error(403, "role.forbidden");
    s.get("/api/v1/access-log", &clin).await.expect_error(403, "role.forbidden");

    // unknown and malformed ids
    s.get(&format!("/api/v1/patients/{}", new_id()), &vdoc).await.expect_error(404, "not_found");
    s.get("/api/v1/patients/not-a-uuid", &vdoc).await.expect_error(404, "not_found");
    let r = s
        .post(&format!("/api/v1/patients/{}/break-glass", new_id()), &clin, json!({ "reason": BREAK_GLASS_REASON }))
        .await;
    r.expect_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_without_record_access_are_refused() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let p = register(&s, &vdoc, patient("王秀英", "female", WANG_ID)).await;
    let path = format!("/api/v1/patients/{p}");
    for user in ["sysadmin", "admin_a"] {
        let token = s.login(user).await;
        s.get(&path, &token).await.expect_error(403, "role.forbidden");
        let r = s.post(&format!("{path}/break-glass"), &token, json!({ "reason": BREAK_GLASS_REASON })).await;
        r.expect_error(403, "role.forbidden");
    }
    let sys = s.login("sysadmin").await;
    assert_eq!(access_log(&s, &sys, &format!("patient_id={p}")).await.len(), 0, "refused reads are no reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_policy_decides_same_community_reads() {
    let mut s = TestServer::start().await;
    // community A (community_wide_read = false): the county hospital does not read what
    // the village clinic registered, though both are members
    let vdoc = s.login("vdoc_a").await;
    let p = register(&s, &vdoc, patient("王秀英", "female", WANG_ID)).await;
    let spec = s.login("spec_a").await;
    s.get(&format!("/api/v1/patients/{p}"), &spec).await.expect_error(403, "access.no_relationship");

    // recording an encounter is no way around the rule: without a relationship the
    // specialist must first identify the patient at the desk (a logged lookup)
    s.post("/api/v1/encounters", &spec, encounter(p, s.seed.county_hospital, &["I10.x00"]))
        .await
        .expect_error(403, "encounter.no_relationship");
    s.post("/api/v1/patients/lookup", &spec, json!({ "type": "resident_id", "value": WANG_ID }))
        .await
        .expect_status(200);
    // an encounter at the county hospital creates the relationship
    s.post("/api/v1/encounters", &spec, encounter(p, s.seed.county_hospital, &["I10.x00"])).await.expect_status(201);
    let r = s.get(&format!("/api/v1/patients/{p}"), &spec).await;
    r.expect_status(200);
    assert_eq!(r.json["access"]["basis"], "care_relationship");
    assert_eq!(r.json["encounters"].as_array().map(Vec::len), Some(1));

    // community B (community_wide_read = true): a second member, a village clinic, reads
    // what the township centre registered
    let village_b = Facility {
        id: new_id(),
        code: "H51162200301".into(),
        name: "武胜县沿口镇观音村卫生室".into(),
        tier: Tier::Village,
        grade: Grade::Ungraded,
        region_code: WUSHENG.into(),
        insurance_region: common::GUANG_AN.into(),
        community_id: Some(s.seed.community_b),
        capabilities: Capabilities::default(),
        location: None,
        referral_policy: Default::default(),
    };
    s.store.create_facility(&village_b).await.expect("add a village clinic to B");
    s.add_user("vdoc_b", village_b.id, Role::VillageDoctor).await;
    let clin = s.login("clin_b").await;
    let q = register(&s, &clin, patient("陈晓梅", "female", &id_number(WUSHENG, "19900512", "002"))).await;
    let vdoc_b = s.login("vdoc_b").await;
    let r = s.get(&format!("/api/v1/patients/{q}"), &vdoc_b).await;
    r.expect_status(200);
    assert_eq!(r.json["access"]["basis"], "same_community");
    // the policy of B does not open A's patients to B's members
    s.get(&format!("/api/v1/patients/{p}"), &vdoc_b).await.expect_error(403, "access.no_relationship");
    // nor B's patients to A's members
    s.get(&format!("/api/v1/patients/{q}"), &vdoc).await.expect_error(403, "access.no_relationship");

    let admin_b = s.login("admin_b").await;
    let entries = access_log(&s, &admin_b, &format!("patient_id={q}")).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["basis"], "same_community");
    assert_eq!(entries[0]["user_id"], json!(s.user_id("vdoc_b")));
}

// ---------------------------------------------------------------------------------------
// 8. merge and unmerge

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_and_unmerge_over_http() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    // the same woman registered twice: once by identity number, once by insurance card
    let a = register(&s, &vdoc, patient("王秀英", "female", WANG_ID)).await;
    let b = register(
        &s,
        &vdoc,
        json!({
            "name": "王秀英",
            "sex": "female",
            "birth_date": "1962-03-08",
            "other_identifiers": [{ "type": "insurance_card", "value": "YB5116210001234" }],
        }),
    )
    .await;
    s.post("/api/v1/encounters", &vdoc, encounter(b, s.seed.village_clinic, &["I10.x00"])).await.expect_status(201);
    // a different person (another identity number) for the refused merge
    let c = register(&s, &vdoc, patient("王秀音", "female", &zhang_id())).await;

    let admin = s.login("admin_a").await;
    // clinicians do not merge
    let r = s
        .post(
            &format!("/api/v1/patients/{a}/merge"),
            &vdoc,
            json!({ "merged_id": b, "reason": "同一人，医保卡重复登记" }),
        )
        .await;
    r.expect_error(403, "role.forbidden");
    // two identity numbers are two people
    let r =
        s.post(&format!("/api/v1/patients/{a}/merge"), &admin, json!({ "merged_id": c, "reason": "疑似同一人" })).await;
    r.expect_error(409, "conflict");
    // a reason is needed
    let r = s.post(&format!("/api/v1/patients/{a}/merge"), &admin, json!({ "merged_id": b, "reason": "x" })).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "reason.length");

    let r = s
        .post(
            &format!("/api/v1/patients/{a}/merge"),
            &admin,
            json!({ "merged_id": b, "reason": "同一人，医保卡重复登记" }),
        )
        .await;
    r.expect_status(200);
    assert_eq!(r.json["survivor_id"], json!(a));
    assert_eq!(r.json["merged_id"], json!(b));
    assert_eq!(r.json["merged_by"], json!(s.user_id("admin_a")));
    assert_eq!(r.json["undone_at"], Value::Null);
    let merge_id = r.id();

    // reading B gives A's record, with B merged into it and B's encounter on it
    let r = s.get(&format!("/api/v1/patients/{b}"), &vdoc).await;
    r.expect_status(200);
    assert_eq!(r.json["patient"]["id"], json!(a));
    assert_eq!(r.json["merged_ids"], json!([b]));
    assert_eq!(r.json["encounters"].as_array().map(Vec::len), Some(1));
    // looking B's card up finds A, saying how
    let r =
        s.post("/api/v1/patients/lookup", &vdoc, json!({ "type": "insurance_card", "value": "yb5116210001234" })).await;
    r.expect_status(200);
    assert_eq!(r.json["id"], json!(a));
    assert_eq!(r.json["found_via_merged_record"], json!(b));
    // B is merged already
    let r =
        s.post(&format!("/api/v1/patients/{a}/merge"), &admin, json!({ "merged_id": b, "reason": "再次合并" })).await;
    r.expect_error(409, "conflict");
    // and takes no new encounters
    let r = s.post("/api/v1/encounters", &vdoc, encounter(b, s.seed.village_clinic, &["I10.x00"])).await;
    r.expect_error(409, "patient.merged");

    let r = s.get(&format!("/api/v1/patients/{a}/merges"), &admin).await;
    r.expect_status(200);
    assert_eq!(r.json["merges"].as_array().map(Vec::len), Some(1));

    // undo
    let undo = format!("/api/v1/merges/{merge_id}/undo");
    s.post(&undo, &vdoc, json!({ "reason": "误合并，撤销" })).await.expect_error(403, "role.forbidden");
    let r = s.post(&undo, &admin, json!({ "reason": "误合并，撤销" })).await;
    r.expect_status(200);
    assert_eq!(r.json["undone_by"], json!(s.user_id("admin_a")));
    assert_eq!(r.json["undo_reason"], "误合并，撤销");
    assert!(r.json["undone_at"].is_string());

    let r = s.get(&format!("/api/v1/patients/{b}"), &vdoc).await;
    r.expect_status(200);
    assert_eq!(r.json["patient"]["id"], json!(b));
    assert_eq!(r.json["patient"]["status"], "active");
    assert_eq!(r.json["encounters"].as_array().map(Vec::len), Some(1), "B keeps its encounter");
    let r = s.get(&format!("/api/v1/patients/{a}"), &vdoc).await;
    r.expect_status(200);
    assert_eq!(r.json["merged_ids"], json!([]));
    assert_eq!(r.json["encounters"].as_array().map(Vec::len), Some(0));

    // a second undo is a conflict; an unknown merge is not found
    s.post(&undo, &admin, json!({ "reason": "再撤销一次" })).await.expect_error(409, "conflict");
    s.post(&format!("/api/v1/merges/{}/undo", new_id()), &admin, json!({ "reason": "不存在的合并" }))
        .await
        .expect_error(404, "not_found");
    assert_eq!(s.patient_count().await, 3);
}

fn facility_body(code: &str, community: Option<Uuid>) -> Value {
    json!({
        "code": code, "name": "新卫生室", "tier": "village", "grade": "ungraded",
        "region_code": "511621", "insurance_region": "511621", "community_id": community,
    })
}

/// A community admin manages their own community: facilities, roles, merges and the access
/// log there, and nothing elsewhere; alliances and communities are the system admin's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_admins_are_confined_to_their_community() {
    let s = TestServer::start().await;
    let admin_a = s.login("admin_a").await;
    let sys = s.login("sysadmin").await;

    // alliances and communities
    s.post("/api/v1/communities", &admin_a, json!({ "name": "新医共体", "region_code": "511623" }))
        .await
        .expect_error(403, "registry.system_admin");
    s.post("/api/v1/communities", &sys, json!({ "name": "邻水县医共体", "region_code": "511623" }))
        .await
        .expect_status(201);

    // facilities: own community yes, another community or none no
    let before = s.store.list_facilities(&Default::default()).await.expect("list").len();
    s.post("/api/v1/facilities", &admin_a, facility_body("H51162100501", Some(s.seed.community_b)))
        .await
        .expect_error(403, "registry.other_community");
    s.post("/api/v1/facilities", &admin_a, facility_body("H51162100502", None))
        .await
        .expect_error(403, "registry.other_community");
    assert_eq!(s.store.list_facilities(&Default::default()).await.expect("list").len(), before, "nothing written");
    s.post("/api/v1/facilities", &admin_a, facility_body("H51162100503", Some(s.seed.community_a)))
        .await
        .expect_status(201);

    // merges: records known only in community B are out of reach for admin A
    let clin_b = s.login("clin_b").await;
    let b1 = register(&s, &clin_b, patient("王秀英", "female", WANG_ID)).await;
    let b2 = register(
        &s,
        &clin_b,
        json!({ "name": "王秀英", "sex": "female", "birth_date": "1962-03-08",
                "other_identifiers": [{ "type": "insurance_card", "value": "YB5116220001" }] }),
    )
    .await;
    let merge = json!({ "merged_id": b2, "reason": "同一人重复登记" });
    s.post(&format!("/api/v1/patients/{b1}/merge"), &admin_a, merge.clone())
        .await
        .expect_error(403, "admin.other_community");
    s.get(&format!("/api/v1/patients/{b1}/merges"), &admin_a).await.expect_error(403, "admin.other_community");
    let admin_b = s.login("admin_b").await;
    let m = s.post(&format!("/api/v1/patients/{b1}/merge"), &admin_b, merge).await;
    m.expect_status(200);
    let merge_id = m.json["id"].as_str().expect("merge id").to_owned();
    s.post(&format!("/api/v1/merges/{merge_id}/undo"), &admin_a, json!({ "reason": "误合并，撤销" }))
        .await
        .expect_error(403, "admin.other_community");

    // the access log: admin A sees reads by community A users only
    let vdoc = s.login("vdoc_a").await;
    let a1 = register(&s, &vdoc, patient("张桂兰", "female", &zhang_id())).await;
    s.get(&format!("/api/v1/patients/{a1}"), &vdoc).await.expect_status(200);
    s.get(&format!("/api/v1/patients/{b1}"), &clin_b).await.expect_status(200);
    let seen_by_a = access_log(&s, &admin_a, "limit=100").await;
    assert!(!seen_by_a.is_empty());
    assert!(
        seen_by_a.iter().all(|e| e["user_id"] != json!(s.user_id("clin_b"))),
        "a community B user's reads of a community B patient are not shown to admin A"
    );
    let seen_by_sys = access_log(&s, &sys, "limit=100").await;
    assert!(seen_by_sys.iter().any(|e| e["user_id"] == json!(s.user_id("clin_b"))), "the system admin sees all");

    // users: admin A lists only community A's users
    let listed = s.get("/api/v1/users", &admin_a).await;
    listed.expect_status(200);
    let names: Vec<&str> =
        listed.json.as_array().expect("list").iter().filter_map(|u| u["username"].as_str()).collect();
    assert!(names.contains(&"vdoc_a") && !names.contains(&"clin_b"), "{names:?}");
}
