//! The settlement journal (日结, issue 6) read page by page through a real listening server
//! over a fresh SQLite store: keyset paging with an opaque `cursor`, the whole day's totals
//! on every page, a malformed cursor refused naming the field.
//!
//! Amounts by hand (domain.md M7 default table, resident scheme, county outpatient 50 %,
//! no deductible; the sample catalogue's 床位费 is class A): a bill of one bed day at 35.00
//! yuan settles 17.50 yuan of fund and 17.50 yuan for the patient.

mod common;

use common::{TestServer, YUECHI};
use serde_json::{Value, json};
use tiercare_domain::referral::CHINA_TIME;
use tiercare_domain::role::Role;
use tiercare_store::{SettlementRecord, new_id};
use time::{Duration, Time};
use uuid::Uuid;

const BED: &str = "001107000010000"; // 床位费, class A, limit 35.00 yuan

/// GB 11643 check character (ISO 7064 MOD 11-2), computed here from the standard.
fn with_check(body17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body17.chars().zip(W).map(|(c, w)| c.to_digit(10).expect("digit") * w).sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body17}{check}")
}

fn ids(page: &Value) -> Vec<Uuid> {
    page["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("rows in {page}"))
        .iter()
        .map(|r| r["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()).expect("row id"))
        .collect()
}

fn totals(count: i64, total: i64, fund: i64, patient: i64, reversed: i64, reversed_fund: i64) -> Value {
    json!({"count": count, "total_fen": total, "fund_fen": fund, "patient_fen": patient,
           "reversed_count": reversed, "reversed_fund_fen": reversed_fund})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_pages_with_a_cursor_and_whole_day_totals() {
    let mut s = TestServer::start_without_sweeper().await;
    let h = s.seed.county_hospital;
    s.add_user("clerk_journal", h, Role::SettlementClerk).await;
    let clerk = s.login("clerk_journal").await;
    let number = with_check("51162119620308102");
    let r =
        s.post("/api/v1/patients", &clerk, json!({"name": "王秀英", "sex": "female", "identity_number": number})).await;
    r.expect_status(201);
    let p = r.id();
    s.post(
        &format!("/api/v1/patients/{p}/enrolments"),
        &clerk,
        json!({"scheme": "resident", "insured_region": YUECHI, "valid_from": "2026-01-01"}),
    )
    .await
    .expect_status(201);

    // seven bills at the desk today, one reversed
    let mut made = Vec::new();
    for i in 0..7 {
        let bill = json!({"txn_no": format!("JN-{i}"), "patient_id": p, "setting": "outpatient",
                          "lines": [{"code": BED, "quantity": 1, "unit_price_fen": 3_500}]});
        let r = s.post("/api/v1/settlements", &clerk, bill).await;
        r.expect_status(201);
        assert_eq!(
            (r.json["total_fen"].as_i64(), r.json["fund_fen"].as_i64()),
            (Some(3_500), Some(1_750)),
            "{}",
            r.text
        );
        made.push(r.id());
    }
    s.post(
        &format!("/api/v1/settlements/{}/reversal", made[2]),
        &clerk,
        json!({"txn_no": "JN-R", "reason": "录入错误"}),
    )
    .await
    .expect_status(200);
    let day = time::OffsetDateTime::now_utc().to_offset(CHINA_TIME).date();
    let day_of = |at: time::OffsetDateTime| at.to_offset(CHINA_TIME).date();
    assert_eq!(day_of(s.now()), day, "the server's clock is not moved");
    // newest first: the reverse of the order they were made (UUIDv7 ids grow with time)
    let newest_first: Vec<Uuid> = made.iter().rev().copied().collect();
    let day_totals = totals(6, 21_000, 10_500, 10_500, 1, 1_750);

    // three a page: 3 + 3 + 1, a cursor on the first two only, the same totals on each
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    for (n, want) in [3usize, 3, 1].into_iter().enumerate() {
        let path = match &cursor {
            Some(c) => format!("/api/v1/settlements?date={day}&limit=3&cursor={c}"),
            None => format!("/api/v1/settlements?date={day}&limit=3"),
        };
        let page = s.get(&path, &clerk).await;
        page.expect_status(200);
        assert_eq!(ids(&page.json).len(), want, "page {n}: {}", page.text);
        assert_eq!(page.json["totals"], day_totals, "page {n}: the whole day's totals");
        got.extend(ids(&page.json));
        cursor = page.json.get("cursor").and_then(Value::as_str).map(str::to_owned);
        assert_eq!(cursor.is_some(), n < 2, "page {n}: a cursor unless it is the last page");
    }
    assert_eq!(got, newest_first, "the pages concatenate to the day, newest first, no row twice");
    // a page that ends exactly at the day's end has no cursor either
    let all = s.get(&format!("/api/v1/settlements?date={day}&limit=7"), &clerk).await;
    assert_eq!(ids(&all.json), newest_first);
    assert!(all.json.get("cursor").is_none(), "no next page: {}", all.text);

    // a county hospital's busy day: 1,000 more, imported earlier today (one millisecond
    // apart from the day's first); 1,000 a page (the most a page has): 1,000 + 7
    let model: SettlementRecord = s.store.get_settlement(made[0]).await.expect("get").expect("stored");
    let day_start = time::OffsetDateTime::new_in_offset(day, Time::MIDNIGHT, CHINA_TIME);
    let imported: Vec<SettlementRecord> = (0..1_000i64)
        .map(|i| SettlementRecord {
            id: new_id(),
            txn_no: format!("IMP-{i}"),
            created_at: day_start + Duration::milliseconds(i),
            ..model.clone()
        })
        .collect();
    assert!(imported.last().is_some_and(|r| r.created_at < model.created_at), "imported before the desk's bills");
    s.store.import_settlements(&imported).await.expect("import");
    let first = s.get(&format!("/api/v1/settlements?date={day}&limit=1000"), &clerk).await;
    first.expect_status(200);
    let day_totals = totals(1_006, 3_521_000, 1_760_500, 1_760_500, 1, 1_750);
    assert_eq!(first.json["totals"], day_totals);
    let c = first.json["cursor"].as_str().expect("a cursor after 1,000 rows").to_owned();
    let second = s.get(&format!("/api/v1/settlements?date={day}&limit=1000&cursor={c}"), &clerk).await;
    second.expect_status(200);
    assert_eq!(second.json["totals"], day_totals, "the same totals on the second page");
    assert!(second.json.get("cursor").is_none(), "the last page");
    let mut want: Vec<Uuid> = newest_first.clone();
    want.extend(imported.iter().rev().map(|r| r.id));
    let got: Vec<Uuid> = ids(&first.json).into_iter().chain(ids(&second.json)).collect();
    assert_eq!(ids(&first.json).len(), 1_000);
    assert_eq!(got, want, "1,007 rows in two pages, newest first");
    // the limit above 1,000 is capped (unchanged behaviour)
    let capped = s.get(&format!("/api/v1/settlements?date={day}&limit=5000"), &clerk).await;
    assert_eq!(ids(&capped.json).len(), 1_000);

    // malformed cursors: 400 naming the field
    let bad_cursors = [
        "abc".to_owned(),
        "zz".repeat(24),
        format!("{c}0"),
        "%E4%B8%AD".repeat(16), // 中 × 16: 48 bytes, not hex
    ];
    for bad in &bad_cursors {
        let r = s.get(&format!("/api/v1/settlements?date={day}&cursor={bad}"), &clerk).await;
        r.expect_error(400, "query.invalid");
        assert_eq!(r.detail_field(0), "cursor", "{bad}: {}", r.text);
        assert!(r.json["error"]["message"].as_str().is_some_and(|m| m.contains("cursor")), "{}", r.text);
    }
    // an empty cursor is the first page
    let again = s.get(&format!("/api/v1/settlements?date={day}&limit=3&cursor="), &clerk).await;
    assert_eq!(ids(&again.json), newest_first[..3].to_vec());
}
