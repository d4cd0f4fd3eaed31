//! Contract cases for the settlement journal (issue 6) added after the settlement cases of
//! the parent module (whose fixtures and helpers they use through `super::`), listed in
//! [`settlement_contract_tests!`](crate::settlement_contract_tests). Case names start with
//! `settlement_` like the parent's settlement cases.

/// Expand one `#[tokio::test]` per settlement-journal contract case (see
/// [`contract_tests!`](crate::contract_tests)).
#[macro_export]
macro_rules! settlement_contract_tests {
    ($open:expr) => {
        $crate::contract_tests!(@cases_in settlement, $open;
            settlement_journal_pages,
        );
    };
}

#[allow(unused_imports)]
use super::*;

use crate::{SettlementPosition, SettlementTotals};

/// Walk the journal `f` selects page by page (`limit` rows a page, each page after the
/// previous page's last row) until a short page; returns the pages.
async fn walk(s: &dyn Store, f: &SettlementFilter, limit: u32) -> Vec<Vec<SettlementRecord>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = s.list_settlements(&SettlementFilter { limit, after, ..f.clone() }).await.expect("a page");
        assert!(page.len() <= limit as usize, "a page has at most {limit} rows, got {}", page.len());
        let full = page.len() == limit as usize;
        after = page.last().map(SettlementPosition::of);
        pages.push(page);
        if !full {
            return pages;
        }
        assert!(pages.len() <= 1_000, "the walk does not end");
    }
}

/// 250 settlements of one county hospital on one day (China time), five made in each
/// millisecond, every tenth reversed, beside rows of the day before, the day after and of
/// another facility: read 100, 125, 7 and 50 at a time, the pages concatenate to the whole
/// day newest first — `(created_at, id)` descending — with no row twice or missing, also
/// where a page ends inside a millisecond; the totals are the whole day's whatever the page.
pub async fn settlement_journal_pages(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let h = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let p = resident("何一", Sex::Male, date!(1950 - 01 - 01), 81);
    let q = resident("何二", Sex::Female, date!(1951 - 02 - 02), 82);
    create_patients(s, &[&p, &q]).await;
    // 2026-11-23 in China starts at 2026-11-22 16:00 UTC
    let day_start = datetime!(2026-11-22 16:00 UTC);
    let day_end = day_start + Duration::days(1);
    use Setting::Inpatient as In;
    use SettlementStatus::{Reversed, Settled};
    let mut day: Vec<SettlementRecord> = (0..250i64)
        .map(|i| {
            let (who, status, total, fund) =
                if i % 10 == 9 { (&q, Reversed, 20_000, 12_000) } else { (&p, Settled, 10_000, 6_000) };
            let r = imported(who, &h, INSURED, In, date!(2026 - 11 - 23), total, fund, &format!("J-{i}"), status);
            // rows 0-4 at the first millisecond of the day, 5-9 a minute later, …; ids in
            // another order than the rows were made (7,919 is prime to 251: all distinct)
            let id = Uuid::from_u128((0x5E77_u128 << 112) | ((i as u128 * 7_919) % 251));
            SettlementRecord { id, created_at: day_start + Duration::minutes(i / 5), ..r }
        })
        .collect();
    day.reverse();
    let before = SettlementRecord {
        created_at: day_start - Duration::milliseconds(1),
        ..imported(&p, &h, INSURED, In, date!(2026 - 11 - 22), 50_000, 30_000, "J-BEFORE", Settled)
    };
    let after = SettlementRecord {
        created_at: day_end,
        ..imported(&p, &h, INSURED, In, date!(2026 - 11 - 24), 70_000, 40_000, "J-AFTER", Settled)
    };
    let elsewhere = SettlementRecord {
        created_at: day_start + Duration::hours(3),
        ..imported(&p, &t, INSURED, In, date!(2026 - 11 - 23), 90_000, 50_000, "J-T", Settled)
    };
    let mut rows = day.clone();
    rows.extend([before.clone(), after.clone(), elsewhere.clone()]);
    s.import_settlements(&rows).await.expect("import");

    // the contract's order, computed here: newest first, then the greater id
    let mut expected = day.clone();
    expected.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
    let expected_ids: Vec<Uuid> = expected.iter().map(|r| r.id).collect();
    let the_day =
        SettlementFilter { facility_id: Some(h.id), from: Some(day_start), to: Some(day_end), ..Default::default() };
    for limit in [100u32, 125, 7, 50] {
        let pages = walk(s, &the_day, limit).await;
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        let want: Vec<usize> = match limit {
            100 => vec![100, 100, 50],
            125 => vec![125, 125, 0],
            7 => [vec![7; 35], vec![5]].concat(),
            _ => vec![50, 50, 50, 50, 50, 0],
        };
        assert_eq!(sizes, want, "page sizes reading {limit} at a time");
        let got: Vec<Uuid> = pages.iter().flatten().map(|r| r.id).collect();
        let distinct: BTreeSet<Uuid> = got.iter().copied().collect();
        assert_eq!(distinct.len(), got.len(), "no row twice reading {limit} at a time");
        assert_eq!(got, expected_ids, "the pages of {limit} concatenate to the whole day, newest first");
    }
    // the full rows read back as imported (spot check across a page boundary)
    let second = walk(s, &the_day, 100).await.remove(1);
    assert_eq!(second[0], expected[100]);
    assert_eq!(second[99], expected[199]);

    // a position inside a millisecond: the rest of that millisecond (smaller ids) comes next
    let tied = &expected[12];
    assert_eq!(tied.created_at, expected[13].created_at, "rows 12 and 13 share a millisecond");
    let next = s
        .list_settlements(&SettlementFilter { limit: 3, after: Some(SettlementPosition::of(tied)), ..the_day.clone() })
        .await
        .expect("list");
    assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), expected_ids[13..16].to_vec());
    // after the last row: nothing
    let last = SettlementPosition::of(expected.last().expect("rows"));
    let none = s.list_settlements(&SettlementFilter { after: Some(last), ..the_day.clone() }).await.expect("list");
    assert_eq!(none, vec![], "nothing after the day's first settlement");

    // in force only, 50 a page: the 225 settled rows, in the same order
    let settled = SettlementFilter { status: Some(Settled), ..the_day.clone() };
    let got: Vec<Uuid> = walk(s, &settled, 50).await.into_iter().flatten().map(|r| r.id).collect();
    let want: Vec<Uuid> = expected.iter().filter(|r| r.status == Settled).map(|r| r.id).collect();
    assert_eq!(want.len(), 225);
    assert_eq!(got, want, "the settled rows, paged");

    // totals: 225 in force × (100 yuan, 60 fund, 40 patient); 25 reversed × 120 yuan of fund
    let whole_day = SettlementTotals {
        count: 225,
        total_fen: 2_250_000,
        fund_fen: 1_350_000,
        patient_fen: 900_000,
        reversed_count: 25,
        reversed_fund_fen: 300_000,
    };
    assert_eq!(s.settlement_totals(&the_day).await.expect("totals"), whole_day);
    let on_a_page =
        SettlementFilter { limit: 7, after: Some(SettlementPosition::of(&expected[100])), ..the_day.clone() };
    assert_eq!(s.settlement_totals(&on_a_page).await.expect("totals"), whole_day, "position and limit do not count");
    assert_eq!(
        s.settlement_totals(&settled).await.expect("totals"),
        SettlementTotals { reversed_count: 0, reversed_fund_fen: 0, ..whole_day },
        "the status filter applies"
    );
    assert_eq!(
        s.settlement_totals(&SettlementFilter { facility_id: Some(t.id), ..the_day.clone() }).await.expect("totals"),
        SettlementTotals { count: 1, total_fen: 90_000, fund_fen: 50_000, patient_fen: 40_000, ..Default::default() },
        "the other facility's day"
    );
    let empty = SettlementFilter { facility_id: Some(new_id()), ..the_day.clone() };
    assert_eq!(s.settlement_totals(&empty).await.expect("totals"), SettlementTotals::default(), "nothing: zeros");
    // the day before and after hold one row each (from inclusive, to exclusive)
    let ids = |rs: Vec<SettlementRecord>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let prev = SettlementFilter { from: Some(day_start - Duration::days(1)), to: Some(day_start), ..the_day.clone() };
    assert_eq!(ids(s.list_settlements(&prev).await.expect("list")), vec![before.id]);
    let next_day = SettlementFilter { from: Some(day_end), to: Some(day_end + Duration::days(1)), ..the_day.clone() };
    assert_eq!(ids(s.list_settlements(&next_day).await.expect("list")), vec![after.id]);
}
