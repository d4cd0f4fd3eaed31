//! Contract cases for indicator aggregates (issue 8). Each case is a `pub async fn case(store: Arc<dyn Store>)`
//! like those of the parent module (whose fixtures and helpers it may use through `super::`),
//! and is listed in [`indicators_contract_tests!`](crate::indicators_contract_tests). Case names start with
//! the part's name so they never clash with the other suites' in a backend's test file.
//!
//! The small county (`small_county`) is written as data below; every expected number is
//! computed by hand from it in the comments, from the definitions of domain.md §4 M14.

/// Expand one `#[tokio::test]` per indicator aggregates (issue 8) contract case (see [`contract_tests!`](crate::contract_tests)).
#[macro_export]
macro_rules! indicators_contract_tests {
    ($open:expr) => {
        $crate::contract_tests!(@cases_in indicators, $open;
            indicators_small_county_by_hand,
            indicators_month_edges_in_china_time,
            indicators_incremental_equals_rebuild,
            indicators_hooks_off_only_inside_the_scope,
            indicators_shards_summed_on_read,
        );
    };
}

#[allow(unused_imports)]
use super::*;

use tiercare_domain::indicators::{self as ind, Cell, Definitions, Measure, Month, Period};

use crate::{CellQuery, CounterQuery, CounterRow};

/// China Standard Time: 2026-03-02 10:00 +08 is 02:00 UTC.
fn china(y: i32, m: u8, d: u8, h: u8) -> OffsetDateTime {
    let month = time::Month::try_from(m).expect("month");
    Date::from_calendar_date(y, month, d).expect("date").with_hms(h, 0, 0).expect("time").assume_utc()
        - Duration::hours(8)
}

fn month(s: &str) -> Month {
    Month::parse(s).expect("month")
}

/// A person registered in `region` (their `region_key`).
fn person_of(region: &str, name: &str, seq: u16) -> Patient {
    let birth = date!(1960 - 05 - 05);
    NewPatient { identity_number: Some(id_number(region, birth, seq, Sex::Male)), ..NewPatient::new(name, Sex::Male) }
        .validate(TODAY, None)
        .expect("valid registration")
        .into_patient(new_id())
}

fn visit(p: &Patient, f: &Facility, at: OffsetDateTime, cost: i64) -> Encounter {
    Encounter { total_cost_fen: cost, ..encounter(p, f, at, "J06.900") }
}

fn stay(p: &Patient, f: &Facility, at: OffsetDateTime, cost: i64) -> Encounter {
    Encounter { class: EncounterClass::Inpatient, ..visit(p, f, at, cost) }
}

/// A bill on `date` whose priced lines are `(code, quantity, unit price)`, one per claim line.
fn priced(
    p: &Patient,
    f: &Facility,
    txn: &str,
    mut claim: Claim,
    lines: &[(ItemClass, &str, i64, i64)],
    at: OffsetDateTime,
) -> SettleRequest {
    claim.lines = lines.iter().map(|(class, _, q, price)| BillLine { class: *class, amount_fen: q * price }).collect();
    let mut req = settle_request(p, f, txn, None, claim, at);
    req.items = lines
        .iter()
        .map(|(_, code, q, price)| PricedLine { code: (*code).into(), quantity: *q, unit_price_fen: *price })
        .collect();
    req
}

/// The cells of `rows` as the community of `county` sees them (`in_county`: its facilities).
fn cells(rows: &[CounterRow], in_county: &[&Facility], others: &[&Facility], county: &str) -> Vec<Cell> {
    rows.iter()
        .map(|r| {
            let f = in_county.iter().chain(others).find(|f| f.id == r.facility_id).expect("a known facility");
            Cell {
                tier: f.tier,
                in_scope: in_county.iter().any(|x| x.id == f.id),
                resident: r.home_region == county,
                month: r.month,
                counters: r.counters,
            }
        })
        .collect()
}

fn value(defs: &Definitions, id: &str, cells: &[Cell], p: Period) -> (i64, Option<i64>) {
    let v = ind::compute(defs.get(id).expect("defined"), cells, p);
    (v.numerator, v.denominator)
}

/// Incremental counters equal those computed from the events, and a rebuild changes nothing.
async fn assert_rebuild_agrees(s: &dyn Store, what: &str) {
    let incremental = s.all_indicator_counters().await.expect("counters");
    let from_events = s.indicator_counters_from_events().await.expect("from events");
    assert_eq!(incremental, from_events, "{what}: incremental counters = counters from the events");
    s.rebuild_indicator_counters().await.expect("rebuild");
    assert_eq!(s.all_indicator_counters().await.expect("counters"), incremental, "{what}: a rebuild changes nothing");
}

/// The small county, March 2026 (岳池县 community: county hospital H, township T, village V;
/// outside it the city hospital C in 广安区):
///
/// | who | where | what | cost (fen) |
/// |---|---|---|---|
/// | a (岳池) | T | visit 03-02 | 5,000 |
/// | a | V | visit 03-10 | 2,000 |
/// | b (岳池) | H | visit 03-05 | 20,000 |
/// | b | H | visit 03-01 00:00 China (02-28 16:00 UTC) | 10,000 |
/// | b | C | visit 03-20 | 30,000 |
/// | c (岳池) | H | stay 03-08 (bulk import) | 600,000 |
/// | c | C | stay 03-25 (bulk import) | 900,000 |
/// | w (武胜) | T | visit 03-12 | 4,000 |
/// | a | T | visit 04-01 00:00 China (03-31 16:00 UTC): April | 1,000 |
///
/// Settlements: a at T (outpatient, 80 yuan class A drug, 10 yuan class B drug, 10 yuan
/// self-pay consumable: fund (8,000 + 1,000 − 10% × 1,000) × 60% = 5,340); b at H (domain.md's
/// worked example, referred stay of 10,000 yuan: fund 760,000); c at C (referred city stay
/// 10,000 yuan of one drug: fund (1,000,000 − 80,000) × 70% = 644,000); b at T 5,340 then reversed.
/// Referrals: T → H upward (a), H → T downward (c), T → H upward (a) redirected by H to V
/// (now downward: it moves from the up count to the down count).
pub async fn indicators_small_county_by_hand(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let policies = default_policies();
    let yc = community(s, None, "岳池县医共体", YUECHI, false).await;
    let h = facility(s, "H51162100001", Tier::County, YUECHI, Some(yc.id)).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, Some(yc.id)).await;
    let v = facility(s, "H51162100003", Tier::Village, YUECHI, Some(yc.id)).await;
    let c = facility(s, "H51160200001", Tier::City, GUANG_AN, None).await;
    let (pa, pb, pc, pw) = (
        person_of(YUECHI, "甲", 11),
        person_of(YUECHI, "乙", 13),
        person_of(YUECHI, "丙", 15),
        person_of(WUSHENG, "丁", 17),
    );
    create_patients(s, &[&pa, &pb, &pc, &pw]).await;

    for e in [
        visit(&pa, &t, china(2026, 3, 2, 9), 5_000),
        visit(&pa, &v, china(2026, 3, 10, 9), 2_000),
        visit(&pb, &h, china(2026, 3, 5, 9), 20_000),
        visit(&pb, &h, china(2026, 3, 1, 0), 10_000),
        visit(&pb, &c, china(2026, 3, 20, 9), 30_000),
        visit(&pw, &t, china(2026, 3, 12, 9), 4_000),
        visit(&pa, &t, china(2026, 4, 1, 0), 1_000),
    ] {
        s.create_encounter(&e).await.expect("encounter");
    }
    s.import_encounters(&[stay(&pc, &h, china(2026, 3, 8, 9), 600_000), stay(&pc, &c, china(2026, 3, 25, 9), 900_000)])
        .await
        .expect("import stays");

    let outpatient = |d| bill(Setting::Outpatient, Tier::Township, Arrival::SelfReferred, d, vec![]);
    let referred = |tier, d| bill(Setting::Inpatient, tier, Arrival::UpwardReferral { after_stay_at: None }, d, vec![]);
    let visit_lines = [
        (ItemClass::A, "XJ01CAA040A001010100000", 4, 2_000),
        (ItemClass::B, "XC09CAX038E001010100000", 1, 1_000),
        (ItemClass::SelfPay, "C01020304050607080900", 1, 1_000),
    ];
    let a = s
        .settle(&priced(&pa, &t, "A-1", outpatient(date!(2026 - 03 - 02)), &visit_lines, NOW), &policies)
        .await
        .expect("settle a");
    assert_eq!(a.split.fund_fen, 5_340, "domain.md: (8,000 + 900) × 60%");
    let b = s
        .settle(
            &priced(
                &pb,
                &h,
                "B-1",
                referred(Tier::County, date!(2026 - 03 - 05)),
                &[(ItemClass::A, "T000", 1, 1_000_000)],
                NOW,
            ),
            &policies,
        )
        .await
        .expect("settle b");
    assert_eq!(b.split.fund_fen, 760_000, "domain.md's worked example");
    let cc = s
        .settle(
            &priced(
                &pc,
                &c,
                "C-1",
                referred(Tier::City, date!(2026 - 03 - 25)),
                &[(ItemClass::A, "XB05AAR051B002010100000", 1, 1_000_000)],
                NOW,
            ),
            &policies,
        )
        .await
        .expect("settle c");
    assert_eq!(cc.split.fund_fen, 644_000, "(1,000,000 − 80,000) × 70%");
    let gone = s
        .settle(&priced(&pb, &t, "B-2", outpatient(date!(2026 - 03 - 06)), &visit_lines, NOW), &policies)
        .await
        .expect("settle b again");
    s.reverse_settlement(gone.id, "R-1", "重复结算", NOW).await.expect("reverse");

    let up = create(s, &requested(referral_input(&pa, &h), &pa, &t, &h, china(2026, 3, 15, 9))).await;
    assert_eq!(up.direction, Direction::Upward);
    create(s, &requested(downward_input(&pc, &t), &pc, &h, &t, china(2026, 3, 16, 9))).await;
    let r = create(s, &requested(referral_input(&pa, &h), &pa, &t, &h, china(2026, 3, 17, 9))).await;
    let redirect = Command::Redirect { to_facility_id: v.id, reason: "村卫生室随访即可".into() };
    let r = write(s, &stepped_to(&r, redirect, Party::Receiver, &t, &h, Some(&v), china(2026, 3, 17, 10))).await;
    assert_eq!(r.direction, Direction::Downward, "township → village after the redirect");

    let march = Period { from: month("2026-03"), to: month("2026-03") };
    let q = CounterQuery {
        from: march.from,
        to: march.to,
        facility_ids: vec![h.id, t.id, v.id],
        home_prefix: Some(YUECHI.into()),
    };
    let rows = s.indicator_counters(&q).await.expect("counters");
    let cl = cells(&rows, &[&h, &t, &v], &[&c], YUECHI);
    let d = Definitions::default_set();
    // resident visits in the county: a@T, a@V, b@H, b@H (the 00:00 edge) = 4; all resident visits + b@C = 5
    assert_eq!(value(&d, "in_county_visit_rate", &cl, march), (4, Some(5)));
    // resident stays: c@H in county of c@H + c@C = 1 of 2
    assert_eq!(value(&d, "in_county_inpatient_share", &cl, march), (1, Some(2)));
    // in-county visits of anyone: T (a, w) + V (a) = 3 grassroots, + H (b, b) = 5
    assert_eq!(value(&d, "grassroots_visit_share", &cl, march), (3, Some(5)));
    // referrals from the county's facilities: down H→T and the redirected T→V = 2; up T→H = 1
    assert_eq!(value(&d, "down_referrals", &cl, march), (2, None));
    assert_eq!(value(&d, "down_up_ratio", &cl, march), (2, Some(1)));
    // residents' fund in county: 5,340 + 760,000 = 765,340; with c@C 644,000: 1,409,340 (the reversed one not counted)
    assert_eq!(value(&d, "fund_in_county_share", &cl, march), (765_340, Some(1_409_340)));
    // grassroots fund: T 5,340 of 765,340
    assert_eq!(value(&d, "grassroots_fund_share", &cl, march), (5_340, Some(765_340)));
    // cost per visit in county: (5,000 + 2,000 + 20,000 + 10,000 + 4,000) = 41,000 over 5 visits
    assert_eq!(value(&d, "cost_per_visit", &cl, march), (41_000, Some(5)));
    assert_eq!(value(&d, "cost_per_stay", &cl, march), (600_000, Some(1)));
    // drug share in county: drugs 4 × 2,000 + 1,000 = 9,000 of bills 10,000 + 1,000,000 = 1,010,000
    assert_eq!(value(&d, "drug_share", &cl, march), (9_000, Some(1_010_000)));
    // the same cells summed in the database (by tier, month, in scope, resident) give the same values
    let summed = s
        .indicator_cells(&CellQuery {
            from: march.from,
            to: march.to,
            area_prefix: YUECHI.into(),
            facility_id: None,
            tier: None,
        })
        .await
        .expect("cells");
    assert!(summed.len() <= cl.len(), "grouped, not more rows");
    for id in ["in_county_visit_rate", "grassroots_visit_share", "fund_in_county_share", "drug_share", "down_up_ratio"]
    {
        assert_eq!(value(&d, id, &summed, march), value(&d, id, &cl, march), "{id} from the database's sums");
    }
    // narrowed to the township tier: T alone is in scope (a and w: 2 visits, both grassroots)
    let t_only = s
        .indicator_cells(&CellQuery {
            from: march.from,
            to: march.to,
            area_prefix: YUECHI.into(),
            facility_id: None,
            tier: Some(Tier::Township),
        })
        .await
        .expect("township cells");
    assert_eq!(value(&d, "grassroots_visit_share", &t_only, march), (2, Some(2)));
    let h_only = s
        .indicator_cells(&CellQuery {
            from: march.from,
            to: march.to,
            area_prefix: YUECHI.into(),
            facility_id: Some(h.id),
            tier: None,
        })
        .await
        .expect("H cells");
    // H: b's 2 visits (20,000 + 10,000) and c's stay
    assert_eq!(value(&d, "cost_per_visit", &h_only, march), (30_000, Some(2)));
    // April: only a's 00:00 visit at T
    let april = Period { from: month("2026-04"), to: month("2026-04") };
    let rows =
        s.indicator_counters(&CounterQuery { from: april.from, to: april.to, ..q.clone() }).await.expect("april");
    assert_eq!(value(&d, "grassroots_visit_share", &cells(&rows, &[&h, &t, &v], &[&c], YUECHI), april), (1, Some(1)));
    // a facility's scope: T alone (its rows only, no residents elsewhere)
    let rows = s
        .indicator_counters(&CounterQuery { facility_ids: vec![t.id], home_prefix: None, ..q.clone() })
        .await
        .expect("T");
    assert!(rows.iter().all(|r| r.facility_id == t.id), "only T's rows");
    let total: i64 = rows.iter().map(|r| r.counters.get(Measure::Visits)).sum();
    assert_eq!(total, 2, "T's March visits: a and w");
    // the records behind T's March: 2 encounters, 1 settlement in force (a's; b's was reversed), 2 referrals sent
    let recs = s.indicator_records(t.id, month("2026-03"), 100).await.expect("records");
    let count = |src: &str| recs.iter().filter(|r| r.source == src).count();
    assert_eq!((count("encounter"), count("settlement"), count("referral")), (2, 1, 2));
    assert_rebuild_agrees(s, "the small county").await;
}

/// Events a millisecond either side of midnight at the month's end in China (UTC+8).
pub async fn indicators_month_edges_in_china_time(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let p = person_of(YUECHI, "甲", 11);
    create_patients(s, &[&p]).await;
    // 2025-12-31 23:59:59.999 China = 2025-12-31T15:59:59.999Z: December
    let last = datetime!(2025-12-31 15:59:59.999 UTC);
    // 2026-01-01 00:00 China = 2025-12-31T16:00:00Z: January, though still 2025 in UTC
    let first = datetime!(2025-12-31 16:00 UTC);
    s.create_encounter(&visit(&p, &t, last, 100)).await.expect("last");
    s.import_encounters(&[visit(&p, &t, first, 200)]).await.expect("first");
    let rows = s.all_indicator_counters().await.expect("counters");
    let by_month: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| (r.month.to_string(), r.counters.get(Measure::Visits), r.counters.get(Measure::VisitCostFen)))
        .collect();
    assert_eq!(by_month, vec![("2025-12".into(), 1, 100), ("2026-01".into(), 1, 200)]);
    assert_rebuild_agrees(s, "month edges").await;
}

/// SplitMix64: the cases' own generator (deterministic per seed).
struct Mix(u64);
impl Mix {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// Property over generated events (three seeds): encounters one by one and in bulk at
/// random instants (month edges included), referrals up and down and redirected,
/// settlements and reversals; the incremental counters always equal the rebuild.
pub async fn indicators_incremental_equals_rebuild(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let policies = default_policies();
    let yc = community(s, None, "岳池县医共体", YUECHI, false).await;
    let h = facility(s, "H51162100001", Tier::County, YUECHI, Some(yc.id)).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, Some(yc.id)).await;
    let v = facility(s, "H51162100003", Tier::Village, YUECHI, Some(yc.id)).await;
    let c = facility(s, "H51160200001", Tier::City, GUANG_AN, None).await;
    let fs = [&h, &t, &v, &c];
    let people: Vec<Patient> =
        (0..6).map(|k| person_of(if k % 3 == 2 { WUSHENG } else { YUECHI }, "某", 21 + 2 * k as u16)).collect();
    create_patients(s, &people.iter().collect::<Vec<_>>()).await;
    let mut txn = 0;
    for seed in [1u64, 2, 3] {
        let mut g = Mix(seed);
        // instants around the end of January to March 2026, China time, ±40 hours of midnight
        let instant = |g: &mut Mix| {
            let m = 1 + g.next(3) as u8;
            china(2026, m + 1, 1, 0) + Duration::minutes(g.next(4_800) as i64 - 2_400)
        };
        let mut bulk = Vec::new();
        for _ in 0..30 {
            let p = &people[g.next(people.len() as u64) as usize];
            let f = fs[g.next(4) as usize];
            let at = instant(&mut g);
            let e = if g.next(4) == 0 {
                stay(p, f, at, 1 + g.next(500_000) as i64)
            } else {
                visit(p, f, at, 1 + g.next(9_000) as i64)
            };
            if g.next(2) == 0 { s.create_encounter(&e).await.expect("encounter") } else { bulk.push(e) }
        }
        s.import_encounters(&bulk).await.expect("bulk");
        for _ in 0..6 {
            let p = &people[g.next(people.len() as u64) as usize];
            let (from, to) = match g.next(3) {
                0 => (&t, &h),
                1 => (&h, &t),
                _ => (&v, &h),
            };
            let at = instant(&mut g);
            let input = if from.id == h.id { downward_input(p, to) } else { referral_input(p, to) };
            let r = create(s, &requested(input, p, from, to, at)).await;
            if from.id == t.id && g.next(2) == 0 {
                let cmd = Command::Redirect { to_facility_id: v.id, reason: "村卫生室随访即可".into() };
                write(s, &stepped_to(&r, cmd, Party::Receiver, from, to, Some(&v), at + Duration::minutes(5))).await;
            }
        }
        for _ in 0..6 {
            txn += 1;
            let p = &people[g.next(people.len() as u64) as usize];
            let f = [&t, &v][g.next(2) as usize];
            let day = date!(2026 - 01 - 31) + Duration::days(g.next(60) as i64);
            let claim = bill(Setting::Outpatient, f.tier, Arrival::SelfReferred, day, vec![]);
            // a third of the bills have no drug line (the hook then updates fewer columns)
            let drug = if g.next(3) == 0 { 0 } else { 100 + g.next(3_000) as i64 };
            let lines = [(ItemClass::A, "XJ01CAA040A001010100000", 1, drug), (ItemClass::A, "T001", 1, 500)];
            let lines = if drug == 0 { &lines[1..] } else { &lines[..] };
            let done =
                s.settle(&priced(p, f, &format!("G-{txn}"), claim, lines, NOW), &policies).await.expect("settle");
            if g.next(3) == 0 {
                s.reverse_settlement(done.id, &format!("GR-{txn}"), "录入错误", NOW).await.expect("reverse");
            }
        }
        assert_rebuild_agrees(s, &format!("seed {seed}")).await;
    }
}

/// `without_counter_hooks` (the benchmark's switch) turns the counter updates off only for
/// the writes of the future it wraps: a write after it, and one in another task meanwhile,
/// are counted; the rebuild then counts all three.
pub async fn indicators_hooks_off_only_inside_the_scope(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let p = person_of(YUECHI, "甲", 11);
    create_patients(s, &[&p]).await;
    let at = china(2026, 3, 2, 10);
    let (off, after, other) = (visit(&p, &t, at, 100), visit(&p, &t, at, 20), visit(&p, &t, at, 3));
    let store2 = store.clone();
    let other_task = tokio::spawn(async move { store2.create_encounter(&other).await });
    crate::without_counter_hooks(async {
        assert!(!crate::counter_hooks(), "off inside the scope");
        s.create_encounter(&off).await.expect("uncounted write");
    })
    .await;
    other_task.await.expect("task").expect("other task's write");
    assert!(crate::counter_hooks(), "on again after the scope");
    s.create_encounter(&after).await.expect("counted write");
    let sums = |rows: &[CounterRow]| {
        rows.iter()
            .fold((0, 0), |(n, c), r| (n + r.counters.get(Measure::Visits), c + r.counters.get(Measure::VisitCostFen)))
    };
    // 20 + 3 fen: the two writes outside the scope
    assert_eq!(sums(&s.all_indicator_counters().await.expect("counters")), (2, 23));
    // 100 + 20 + 3 fen
    assert_eq!(sums(&s.indicator_counters_from_events().await.expect("from events")), (3, 123));
    s.rebuild_indicator_counters().await.expect("rebuild");
    assert_eq!(sums(&s.all_indicator_counters().await.expect("counters")), (3, 123));
}

/// A cell (facility × month × home county) written by concurrent writers and by bulk imports:
/// on PostgreSQL spread over shards (migration 0014: a single event takes a shard no other
/// transaction holds, each import one round robin), on SQLite one row; every read sums the
/// shards, so the numbers are those of one row either way; folding the shards while writers
/// write, `analyze` and a rebuild change none of them.
pub async fn indicators_shards_summed_on_read(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let yc = community(s, None, "岳池县医共体", YUECHI, false).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, Some(yc.id)).await;
    let p = person_of(YUECHI, "甲", 11);
    create_patients(s, &[&p]).await;
    // 8 tasks × 3 visits of 100 + k fen (k = 0..24) on 2026-03-02, then 4 imported of 500 fen:
    // 28 visits, 24 × 100 + (0 + 1 + … + 23) + 2,000 = 2,400 + 276 + 2,000 = 4,676 fen
    let at = china(2026, 3, 2, 10);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (store, p, t) = (store.clone(), p.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            for k in 0..3 {
                store.create_encounter(&visit(&p, &t, at, 100 + 3 * w + k)).await.expect("visit");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    // four imports of one visit of 500 fen each: each adds to the shard it takes round robin
    for _ in 0..4 {
        s.import_encounters(&[visit(&p, &t, at, 500)]).await.expect("import");
    }
    let (stored, cells) = s.indicator_counter_rows().await.expect("stored rows");
    assert_eq!(cells, 1, "one cell");
    match s.backend() {
        // four consecutive round-robin picks (other tests may take picks in between, but not
        // so that all four land on one shard in any run seen): several shards
        crate::Backend::Postgres => assert!(
            (2..=u64::from(crate::counter_shards())).contains(&stored),
            "spread over 2..={} shards, got {stored}",
            crate::counter_shards()
        ),
        crate::Backend::Sqlite => assert_eq!(stored, 1, "SQLite keeps a cell in one row"),
    }
    let want = |rows: &[CounterRow]| {
        assert_eq!(rows.len(), 1, "one row for the cell: {rows:?}");
        assert_eq!((rows[0].month, rows[0].home_region.as_str()), (month("2026-03"), YUECHI));
        assert_eq!((rows[0].counters.get(Measure::Visits), rows[0].counters.get(Measure::VisitCostFen)), (28, 4_676));
    };
    want(&s.all_indicator_counters().await.expect("all"));
    let march = CounterQuery {
        from: month("2026-03"),
        to: month("2026-03"),
        facility_ids: vec![t.id],
        home_prefix: Some(YUECHI.into()),
    };
    want(&s.indicator_counters(&march).await.expect("counters"));
    let summed = s
        .indicator_cells(&CellQuery {
            from: march.from,
            to: march.to,
            area_prefix: YUECHI.into(),
            facility_id: None,
            tier: None,
        })
        .await
        .expect("cells");
    let visits: i64 = summed.iter().map(|c| c.counters.get(Measure::Visits)).sum();
    let cost: i64 = summed.iter().map(|c| c.counters.get(Measure::VisitCostFen)).sum();
    assert_eq!((summed.len(), visits, cost), (1, 28, 4_676), "one tier-month cell, summed over the shards");
    // folding the shards into one row while 4 tasks add 10 more visits of 10 fen each: exact
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (store, p, t) = (store.clone(), p.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                store.create_encounter(&visit(&p, &t, at, 10)).await.expect("visit");
            }
        }));
    }
    let mut folded = 0;
    for _ in 0..3 {
        folded += s.fold_indicator_shards().await.expect("fold");
    }
    for task in tasks {
        task.await.expect("task");
    }
    if s.backend() == crate::Backend::Sqlite {
        assert_eq!(folded, 0, "nothing to fold on SQLite");
    } else {
        assert!(folded + 1 >= stored, "the {stored} rows of the cell folded ({folded} shard rows removed)");
    }
    // 28 + 40 visits; 4,676 + 400 fen
    let rows = s.all_indicator_counters().await.expect("all");
    assert_eq!((rows[0].counters.get(Measure::Visits), rows[0].counters.get(Measure::VisitCostFen)), (68, 5_076));
    s.fold_indicator_shards().await.expect("fold at rest");
    assert_eq!(s.indicator_counter_rows().await.expect("stored rows"), (1, 1), "folded: one row a cell");
    s.analyze().await.expect("analyze");
    assert_eq!(s.all_indicator_counters().await.expect("after analyze"), rows, "analyze changes no number");
    assert_rebuild_agrees(s, "sharded cell").await;
    assert_eq!(s.indicator_counter_rows().await.expect("stored rows"), (1, 1), "a rebuild writes one shard");
}
