//! End-to-end tests of the `tiercare` binary: imports and the privacy of its logs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tiercare_domain::identity::{IdentityNumber, Sex};
use time::macros::date;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tiercare"));
    c.env_remove("TIERCARE_DATABASE_URL").env_remove("TIERCARE_CONFIG").env("TIERCARE_LOG", "warn");
    c
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tiercare-cli-{tag}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run tiercare")
}

fn add_facility(dir: &Path) {
    let out = run(bin()
        .args(["facilities", "add", "--code", "H51162100001", "--name", "岳池县人民医院", "--tier", "county"])
        .args(["--region", "511621", "--data-dir", dir.to_str().expect("utf-8 path")]));
    assert!(out.status.success(), "facilities add: {}", String::from_utf8_lossy(&out.stderr));
}

async fn count_patients(dir: &Path) -> u64 {
    let store = tiercare_store::open(&dir.join("tiercare.sqlite").to_string_lossy()).await.expect("open");
    store.count_patients().await.expect("count")
}

fn id(birth: time::Date, seq: u16, sex: Sex) -> String {
    IdentityNumber::compose("511621", birth, seq, sex).expect("compose").as_str().to_owned()
}

#[tokio::test]
async fn csv_import_reports_bad_rows_and_atomic_writes_nothing() {
    let dir = temp_dir("csv");
    add_facility(&dir);
    let good1 = id(date!(1958 - 04 - 12), 11, Sex::Male);
    let good2 = id(date!(1990 - 10 - 01), 22, Sex::Female);
    let mut bad_check = id(date!(1970 - 01 - 01), 33, Sex::Male);
    // change the check character to a wrong one
    let last = bad_check.pop().expect("char");
    bad_check.push(if last == '0' { '1' } else { '0' });
    let csv = format!(
        "name,sex,birth_date,identity_number,phone,address,region_code\n\
         张德福,male,,{good1},13900001111,,\n\
         李秀兰,女,,{good2},,,\n\
         王强,male,,{bad_check},,,\n\
         张德福二,male,,{good1},,,\n\
         赵六,unknown,,,,,\n"
    );
    let file = dir.join("residents.csv");
    std::fs::write(&file, csv).expect("write csv");
    let data = dir.to_str().expect("utf-8");

    let atomic = run(bin()
        .args(["import", "patients", "--atomic", "--quiet", "--facility", "H51162100001", "--data-dir", data])
        .arg(&file));
    assert_eq!(atomic.status.code(), Some(2), "bad rows give exit code 2");
    let stdout = String::from_utf8_lossy(&atomic.stdout);
    assert!(stdout.contains("nothing written"), "{stdout}");
    assert_eq!(count_patients(&dir).await, 0, "atomic import with bad rows writes nothing");

    let partial =
        run(bin().args(["import", "patients", "--quiet", "--facility", "H51162100001", "--data-dir", data]).arg(&file));
    assert_eq!(partial.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&partial.stderr);
    // header is line 1: the bad rows are lines 4 (check character), 5 (duplicate of line 2), 6 (sex)
    assert!(stderr.contains("line 4: identity_number.check_character"), "{stderr}");
    assert!(stderr.contains("line 5: identifier.duplicate_in_file"), "{stderr}");
    assert!(stderr.contains("line 6: sex.unknown"), "{stderr}");
    assert!(!stderr.contains(&good1) && !stderr.contains(&bad_check), "reports name the rule, not the number");
    assert_eq!(count_patients(&dir).await, 2, "the two good rows land");

    // importing the same file again: the good rows are now duplicates of stored patients
    let again = run(bin().args(["import", "patients", "--quiet", "--data-dir", data]).arg(&file));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("line 2: identifier.duplicate"), "{stderr}");
    assert_eq!(count_patients(&dir).await, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn ndjson_import_with_line_numbers() {
    let dir = temp_dir("ndjson");
    add_facility(&dir);
    let a = id(date!(2001 - 02 - 03), 40, Sex::Female);
    let lines = format!(
        "{{\"name\":\"陈静\",\"sex\":\"female\",\"identity_number\":\"{a}\"}}\n\
         {{\"name\":\"刘洋\",\"sex\":\"male\",\"birth_date\":\"2026-01-05\",\"other_identifiers\":[{{\"type\":\"birth_certificate\",\"value\":\"R5116210001\"}}],\"region_code\":\"511621\"}}\n\
         {{\"name\": 5}}\n\
         \n\
         {{\"name\":\"周杰\",\"sex\":\"male\"}}\n"
    );
    let file = dir.join("residents.ndjson");
    std::fs::write(&file, lines).expect("write");
    let out = run(bin().args(["import", "patients", "--quiet", "--data-dir", dir.to_str().expect("utf-8")]).arg(&file));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 3: json.data"), "{stderr}");
    // line 4 is blank and skipped; line 5 has no identifier and no region
    assert!(
        stderr.contains("line 5: identifiers.missing") || stderr.contains("line 5: birth_date.missing"),
        "{stderr}"
    );
    assert_eq!(count_patients(&dir).await, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run `tiercare serve` with debug logging, register and look up a person, and check that
/// neither the identity number nor the name ever reaches the log.
#[tokio::test]
async fn logs_never_carry_identity_numbers_or_names() {
    let dir = temp_dir("privacy");
    add_facility(&dir);
    let data = dir.to_str().expect("utf-8");
    let user = run(bin()
        .env("TIERCARE_PASSWORD", "clerk-password-1")
        .args(["users", "add", "--username", "clerk", "--display-name", "窗口", "--facility", "H51162100001"])
        .args(["--roles", "settlement_clerk", "--data-dir", data]));
    assert!(user.status.success(), "{}", String::from_utf8_lossy(&user.stderr));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let log_path = dir.join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = bin()
        .env("TIERCARE_LOG", "debug")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir", data])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "clerk", "password": "clerk-password-1"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["token"].as_str().expect("token").to_owned();
    let number = id(date!(1949 - 12 - 31), 2, Sex::Female);
    let name = "欧阳秀英";
    let created = client
        .post(format!("{base}/api/v1/patients"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": name, "sex": "female", "identity_number": number, "phone": "13812345678"}))
        .send()
        .await
        .expect("register");
    assert_eq!(created.status(), 201);
    let dup = client
        .post(format!("{base}/api/v1/patients"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": name, "sex": "female", "identity_number": number}))
        .send()
        .await
        .expect("register again");
    assert_eq!(dup.status(), 409);
    let found = client
        .post(format!("{base}/api/v1/patients/lookup"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"type": "resident_id", "value": number}))
        .send()
        .await
        .expect("lookup");
    assert_eq!(found.status(), 200);
    let matched = client
        .post(format!("{base}/api/v1/patients/match"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": name, "birth_date": "1949-12-31", "sex": "female"}))
        .send()
        .await
        .expect("match");
    assert_eq!(matched.status(), 200);
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log_path).expect("read log");
    assert!(text.contains("/api/v1/patients/lookup"), "the request log is written: {text}");
    assert!(!text.contains(&number), "identity number in the log:\n{text}");
    assert!(!text.contains(&number[6..14]), "birth-date digits of the number in the log");
    assert!(!text.contains(name), "name in the log:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn read_dir_sorted(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read out dir")
        .map(|e| {
            let e = e.expect("entry");
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("read file"))
        })
        .collect();
    files.sort();
    files
}

/// The same seed writes byte-identical NDJSON; another seed does not.
#[test]
fn generate_is_deterministic() {
    let dir = temp_dir("generate");
    let run_gen = |seed: &str, out: &str| {
        let o =
            run(bin().args(["generate", "--quiet", "--residents", "2000", "--seed", seed, "--out"]).arg(dir.join(out)));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run_gen("42", "a");
    run_gen("42", "b");
    run_gen("43", "c");
    let (a, b, c) = (read_dir_sorted(&dir.join("a")), read_dir_sorted(&dir.join("b")), read_dir_sorted(&dir.join("c")));
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Condition.ndjson",
            "Coverage.ndjson",
            "Encounter.ndjson",
            "Organization.ndjson",
            "Patient.ndjson",
            "ServiceRequest.ndjson",
            "Task.ndjson"
        ]
    );
    assert!(a == b, "same seed, same bytes");
    assert!(a != c, "another seed, another county");
    // every line is a JSON object of the file's resource type
    for (name, bytes) in &a {
        let kind = name.trim_end_matches(".ndjson");
        for line in String::from_utf8_lossy(bytes).lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert_eq!(v["resourceType"], kind);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `demo` loads the county once, adds one user per role, and reuses the database after.
#[tokio::test]
async fn demo_loads_once_and_reuses() {
    let dir = temp_dir("demo");
    let args = ["demo", "--no-serve", "--residents", "1500", "--data-dir", dir.to_str().expect("utf-8")];
    let first = run(bin().args(args));
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stderr).contains("loaded the demo county"));
    assert_eq!(count_patients(&dir).await, 1500);
    let store = tiercare_store::open(&dir.join("tiercare.sqlite").to_string_lossy()).await.expect("open");
    let roles: std::collections::BTreeSet<_> =
        store.list_users().await.expect("users").iter().flat_map(|u| u.roles.clone()).collect();
    assert_eq!(roles.len(), tiercare_domain::role::Role::ALL.len(), "one login per role");
    let again = run(bin().args(args));
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("reusing the demo database"));
    assert_eq!(count_patients(&dir).await, 1500);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `demo` settles every generated encounter through the engine and loads the settlements:
/// the fund report covers the year, the settled fund adds up across the reports, and each
/// person's accumulators are the sum of their settled fund (inpatient and outpatient apart).
#[tokio::test]
async fn demo_settles_the_generated_year() {
    let dir = temp_dir("demo-settle");
    let args = ["demo", "--no-serve", "--residents", "1200", "--data-dir", dir.to_str().expect("utf-8")];
    let out = run(bin().args(args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr.lines().find(|l| l.contains("settled the year through the engine")).expect("a settle summary");
    assert!(!line.contains("refused"), "nothing refused: {line}");
    let store = tiercare_store::open(&dir.join("tiercare.sqlite").to_string_lossy()).await.expect("open");
    let (from, to) = (date!(2025 - 01 - 01), date!(2026 - 01 - 01));
    let by_tier = store.fund_report(from, to, false, None).await.expect("fund report");
    let months: std::collections::BTreeSet<_> = by_tier.iter().map(|r| r.month.clone()).collect();
    assert_eq!(months.len(), 12, "every month of the year: {months:?}");
    let count: i64 = by_tier.iter().map(|r| r.count).sum();
    let n: i64 = line.split_whitespace().find_map(|w| w.parse().ok()).expect("a count");
    assert!(count > 0 && count <= n, "{count} settled of {n} settlement rows");
    assert!(by_tier.iter().all(|r| r.fund_fen + r.patient_fen == r.total_fen), "fund + patient = total");
    let by_facility = store.fund_report(from, to, true, None).await.expect("by facility");
    let fund = |rows: &[tiercare_store::FundReportRow]| rows.iter().map(|r| r.fund_fen).sum::<i64>();
    assert_eq!(fund(&by_facility), fund(&by_tier), "the same money by facility");
    let outflow = store.outflow_report("511621", from, to).await.expect("outflow");
    assert!(outflow.iter().any(|r| r.destination == "out_of_province"), "重庆 stays are outflow out of the province");
    assert!(outflow.iter().any(|r| r.destination == "out_of_county_in_province"));
    let clearing = store.clearing_report(from, to).await.expect("clearing");
    assert!(clearing.iter().all(|r| r.insured_province == "510000" && r.treatment_province == "500000"));
    // the accumulator invariant for the people of the newest settlements
    let recent = store
        .list_settlements(&tiercare_store::SettlementFilter { limit: 200, ..Default::default() })
        .await
        .expect("journal");
    let people: std::collections::BTreeSet<_> = recent.iter().map(|s| s.patient_id).collect();
    for p in people {
        let rows = store
            .list_settlements(&tiercare_store::SettlementFilter {
                patient_id: Some(p),
                limit: 1_000,
                ..Default::default()
            })
            .await
            .expect("a person's settlements");
        let (mut inpatient, mut outpatient) = (0, 0);
        for s in rows.iter().filter(|s| s.status == tiercare_store::SettlementStatus::Settled) {
            match s.claim.setting {
                tiercare_domain::settlement::Setting::Inpatient => inpatient += s.split.fund_fen,
                tiercare_domain::settlement::Setting::Outpatient => outpatient += s.split.fund_fen,
            }
        }
        let acc = store.accumulators(p, 2025).await.expect("accumulators");
        assert_eq!((acc.inpatient_fund_paid_fen, acc.outpatient_fund_paid_fen), (inpatient, outpatient));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
