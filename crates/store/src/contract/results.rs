//! Contract cases for results (issue 5). Each case is a `pub async fn case(store: Arc<dyn Store>)`
//! like those of the parent module (whose fixtures and helpers it may use through `super::`),
//! and is listed in [`results_contract_tests!`](crate::results_contract_tests). Case names start with
//! the part's name so they never clash with the other suites' in a backend's test file.

/// Expand one `#[tokio::test]` per results (issue 5) contract case (see [`contract_tests!`](crate::contract_tests)).
#[macro_export]
macro_rules! results_contract_tests {
    ($open:expr) => {
        $crate::contract_tests!(@cases_in results, $open;
            results_round_trip,
            results_bulk_all_or_nothing,
            results_bulk_load,
            results_query_filters,
            results_query_pages,
            results_lab_qualifications,
            results_orders_and_ledger,
            results_order_check_over_the_store,
        );
    };
}

#[allow(unused_imports)]
use super::*;

use tiercare_domain::recognition::{
    Answer, FacilityContext, LabQualification, RecognitionConfig, RepeatReason, Scope, check_order,
};
use tiercare_domain::results::{
    Category, Decision, ImagingReport, Modality, NewObservation, NewReport, Outcome, Performer, Report, prepare_report,
};

use crate::{LedgerRow, OrderRecord, ResultQuery, ResultRecord, ResultSort, ResultSortKey};

const LAB: Uuid = Uuid::from_u128(0x1AB);

fn obs(code: &str, value: &str, unit: &str) -> NewObservation {
    NewObservation {
        code: code.into(),
        value: value.into(),
        unit: Some(unit.into()),
        reference_low: None,
        reference_high: None,
        reference_text: None,
        flag: None,
    }
}

/// A validated lab report of `p` at `f`, specimen at `specimen`, marked 川HR (province 51).
fn lab_report(p: &Patient, f: &Facility, specimen: OffsetDateTime, observations: Vec<NewObservation>) -> Report {
    let new = NewReport {
        patient_id: p.id,
        facility_id: f.id,
        lab_id: LAB,
        category: Category::Lab,
        specimen_time: specimen,
        report_time: specimen + Duration::hours(2),
        mark: Some(Scope::Province { province: "51".into() }),
        observations,
        imaging: None,
    };
    prepare(new, p, f)
}

fn prepare(new: NewReport, p: &Patient, f: &Facility) -> Report {
    let quals = [LabQualification { lab_id: LAB, qualified_from: datetime!(2020-01-01 00:00 UTC), qualified_to: None }];
    let performer = Performer { facility_tier: f.tier, region_key: p.region_key.clone() };
    prepare_report(new, &performer, &RecognitionConfig::default_config(), &quals, NOW, new_id).expect("valid report")
}

fn ct_report(p: &Patient, f: &Facility, exam: OffsetDateTime) -> Report {
    let new = NewReport {
        patient_id: p.id,
        facility_id: f.id,
        lab_id: LAB,
        category: Category::Imaging,
        specimen_time: exam,
        report_time: exam + Duration::hours(1),
        mark: None,
        observations: vec![],
        imaging: Some(ImagingReport {
            code: "CT-HEAD".into(),
            modality: Modality::Ct,
            body_site: "头颅".into(),
            findings: "未见异常密度影".into(),
            conclusion: "头颅CT平扫未见异常".into(),
        }),
    };
    prepare(new, p, f)
}

async fn count_results(s: &dyn Store, p: &Patient) -> usize {
    s.find_results(&ResultQuery { patient_ids: vec![p.id], ..Default::default() }).await.expect("read results").len()
}

/// Reports round-trip: every field of every entry, newest specimen first, filtered by item
/// and time; an unknown patient or facility writes nothing.
pub async fn results_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let p = resident("王芳", Sex::Female, date!(1961 - 03 - 08), 22);
    let other = resident("李强", Sex::Male, date!(1970 - 01 - 01), 31);
    create_patients(s, &[&p, &other]).await;
    let older = lab_report(&p, &county, NOW - Duration::days(40), vec![obs("HBA1C", "7.9", "%")]);
    let newer = lab_report(
        &p,
        &county,
        NOW - Duration::days(3),
        vec![obs("4548-4", "7.1", "%"), obs("K", "5.9", "mmol/L"), obs("GLU", "8.2", "mmol/L")],
    );
    let ct = ct_report(&p, &county, NOW - Duration::days(10));
    let noise = lab_report(&other, &county, NOW - Duration::days(1), vec![obs("HBA1C", "5.5", "%")]);
    assert_eq!(s.insert_results(&[older.clone(), newer.clone(), ct.clone(), noise]).await.expect("insert"), 6);

    let all = s.find_results(&ResultQuery { patient_ids: vec![p.id], ..Default::default() }).await.expect("read");
    assert_eq!(all.len(), 5, "the other patient's result is not read");
    // newest specimen first: the 3-day report (3 entries), the CT (10 days), the 40-day HbA1c
    assert!(all[..3].iter().all(|r| r.report_id == newer.id));
    assert_eq!(all[3].report_id, ct.id);
    assert_eq!(all[4].report_id, older.id);
    let mut want: Vec<_> = crate::ResultRecord::of_report(&newer).collect();
    let mut got = all[..3].to_vec();
    want.sort_by_key(|r| r.entry.id);
    got.sort_by_key(|r| r.entry.id);
    assert_eq!(got, want, "every field round-trips");
    assert_eq!(all[3], crate::ResultRecord::of_report(&ct).next().expect("the exam"));

    let hba1c = s
        .find_results(&ResultQuery { patient_ids: vec![p.id], item_codes: vec!["HBA1C".into()], ..Default::default() })
        .await
        .expect("read HbA1c");
    assert_eq!(hba1c.iter().map(|r| r.entry.value.as_str()).collect::<Vec<_>>(), vec!["7.1", "7.9"]);
    let recent = s
        .find_results(&ResultQuery {
            patient_ids: vec![p.id],
            since: Some(NOW - Duration::days(10)),
            limit: 3,
            ..Default::default()
        })
        .await
        .expect("read recent");
    assert_eq!(recent.len(), 3, "limit 3 of the 4 since 10 days ago");

    // an unknown patient (or a wrong region key), an unknown facility: nothing written
    let stranger = resident("赵六", Sex::Male, date!(1980 - 05 - 05), 41);
    let bad = lab_report(&stranger, &county, NOW - Duration::days(1), vec![obs("K", "4.0", "mmol/L")]);
    let good = lab_report(&p, &county, NOW - Duration::days(1), vec![obs("K", "4.0", "mmol/L")]);
    expect_not_found(s.insert_results(&[good.clone(), bad]).await, "a report of an unknown patient");
    let mut moved = good.clone();
    moved.region_key = WUSHENG.into();
    expect_not_found(s.insert_results(&[moved]).await, "a report under another region key");
    let nowhere = new_facility("H51162100999", "未登记机构", Tier::County, YUECHI, None);
    expect_not_found(
        s.insert_results(&[lab_report(&p, &nowhere, NOW - Duration::days(1), vec![obs("K", "4.0", "mmol/L")])]).await,
        "a report of an unknown facility",
    );
    assert_eq!(count_results(s, &p).await, 5, "the refused batches wrote nothing");
}

/// A bulk batch of 2,500 observations lands whole or not at all (multi-row inserts in one
/// transaction; the bad report is the last one, after two full chunks were inserted).
pub async fn results_bulk_all_or_nothing(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let p = resident("王芳", Sex::Female, date!(1961 - 03 - 08), 22);
    create_patients(s, &[&p]).await;
    // 250 reports × 10 observations = 2,500 entries
    let codes = ["K", "NA", "CL", "GLU", "WBC", "HGB", "PLT", "CRP", "CREA", "ALT"];
    let reports: Vec<Report> = (0..250)
        .map(|i| {
            let obs = codes
                .iter()
                .map(|c| {
                    let unit = RecognitionConfig::default_config().catalogue.get(c).and_then(|it| it.unit.clone());
                    obs(c, "5", unit.as_deref().unwrap_or(""))
                })
                .collect();
            lab_report(&p, &county, NOW - Duration::hours(i + 2), obs)
        })
        .collect();
    let stranger = resident("赵六", Sex::Male, date!(1980 - 05 - 05), 41);
    let mut with_bad = reports.clone();
    with_bad.push(lab_report(&stranger, &county, NOW - Duration::days(1), vec![obs("K", "4.0", "mmol/L")]));
    expect_not_found(s.insert_results(&with_bad).await, "a batch with one bad report");
    assert_eq!(count_results(s, &p).await, 0, "nothing of the batch was written");
    assert_eq!(s.insert_results(&reports).await.expect("the good batch"), 2_500);
    assert_eq!(count_results(s, &p).await, 2_500);
}

/// The bulk load (`COPY` on PostgreSQL): every field round-trips, text that COPY must
/// escape (tab, newline, carriage return, backslash, `\N`) and absent values included; a
/// batch with a row of an unknown patient or facility writes nothing; the after-load step
/// runs.
pub async fn results_bulk_load(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let p = resident("王芳", Sex::Female, date!(1961 - 03 - 08), 22);
    create_patients(s, &[&p]).await;
    let mut lab = lab_report(
        &p,
        &county,
        NOW - Duration::days(2),
        vec![obs("HBA1C", "7.1", "%"), obs("K", "0.1", "mmol/L"), obs("GLU", "1e-7", "mmol/L")],
    );
    lab.entries[0].reference_text = Some("tab\there\nnew line\r\\N back\\slash 中文".into());
    lab.entries[1].unit = None;
    lab.entries[1].value_num = Some(0.1);
    lab.entries[2].flag = None;
    lab.entries[2].reference = None;
    let mut ct = ct_report(&p, &county, NOW - Duration::days(5));
    if let Some(img) = ct.imaging.as_mut() {
        img.findings = "line one\nline\ttwo \\ \"quoted\"".into();
    }
    let rows: Vec<crate::ResultRecord> = [&lab, &ct].into_iter().flat_map(crate::ResultRecord::of_report).collect();
    assert_eq!(rows.len(), 4);

    // one row of an unknown patient, then of an unknown facility: nothing written
    let stranger = resident("赵六", Sex::Male, date!(1980 - 05 - 05), 41);
    let mut bad = rows.clone();
    bad.extend(crate::ResultRecord::of_report(&lab_report(
        &stranger,
        &county,
        NOW - Duration::days(1),
        vec![obs("K", "4.0", "mmol/L")],
    )));
    expect_not_found(s.bulk_insert_results(&bad).await, "a bulk batch with a row of an unknown patient");
    let nowhere = new_facility("H51162100999", "未登记机构", Tier::County, YUECHI, None);
    let mut bad = rows.clone();
    bad.extend(crate::ResultRecord::of_report(&lab_report(
        &p,
        &nowhere,
        NOW - Duration::days(1),
        vec![obs("K", "4.0", "mmol/L")],
    )));
    expect_not_found(s.bulk_insert_results(&bad).await, "a bulk batch with a row of an unknown facility");
    assert_eq!(count_results(s, &p).await, 0, "the refused batches wrote nothing");

    assert_eq!(s.bulk_insert_results(&rows).await.expect("bulk load"), 4);
    assert_eq!(s.bulk_insert_results(&[]).await.expect("nothing to load"), 0);
    s.results_loaded().await.expect("after the load");
    let mut got = s.find_results(&ResultQuery { patient_ids: vec![p.id], ..Default::default() }).await.expect("read");
    let mut want = rows.clone();
    got.sort_by_key(|r| r.entry.id);
    want.sort_by_key(|r| r.entry.id);
    assert_eq!(got, want, "every field round-trips through the bulk load");
    // the order check's look-up reads them too
    let prior = s.prior_results(&[p.id], &["HBA1C".into(), "CT-HEAD".into()]).await.expect("look-up");
    assert_eq!(prior.iter().map(|r| r.item_code.as_str()).collect::<Vec<_>>(), vec!["HBA1C", "CT-HEAD"]);
    // a duplicate entry id is refused whole
    assert!(s.bulk_insert_results(&rows[..1]).await.is_err(), "the same entry twice is refused");
    assert_eq!(count_results(s, &p).await, 4);
}

/// `ResultQuery`'s filters, in the store: items OR categories, the specimen-time range and
/// its exclusions, whole reports, several record ids (a merged record's results), and the
/// merged records of a survivor.
pub async fn results_query_filters(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let p = resident("王芳", Sex::Female, date!(1961 - 03 - 08), 22);
    let dup = without_id_number(
        "王芳",
        Sex::Female,
        date!(1961 - 03 - 08),
        tiercare_domain::identity::IdentifierType::InsuranceCard,
        "YB5116210077",
    );
    create_patients(s, &[&p, &dup]).await;
    let a = lab_report(&p, &county, NOW - Duration::days(2), vec![obs("K", "4.1", "mmol/L"), obs("HBA1C", "6.5", "%")]);
    let b = lab_report(&p, &county, NOW - Duration::days(20), vec![obs("GLU", "6.1", "mmol/L")]);
    let ct = ct_report(&p, &county, NOW - Duration::days(10));
    let other = lab_report(&dup, &county, NOW - Duration::days(5), vec![obs("HBA1C", "7.0", "%")]);
    s.insert_results(&[a.clone(), b.clone(), ct.clone(), other.clone()]).await.expect("insert");
    let read = |q: ResultQuery| async move {
        s.find_results(&q).await.expect("read").iter().map(|r| r.entry.item_code.clone()).collect::<Vec<_>>()
    };
    let base = ResultQuery { patient_ids: vec![p.id], ..Default::default() };
    assert_eq!(read(base.clone()).await, ["K", "HBA1C", "CT-HEAD", "GLU"], "newest first, a report's in order");
    let lab = ResultQuery { categories: vec![Category::Lab], ..base.clone() };
    assert_eq!(read(lab).await, ["K", "HBA1C", "GLU"]);
    let either = ResultQuery { categories: vec![Category::Lab], item_codes: vec!["CT-HEAD".into()], ..base.clone() };
    assert_eq!(read(either).await, ["K", "HBA1C", "CT-HEAD", "GLU"], "items OR categories");
    let window =
        ResultQuery { since: Some(NOW - Duration::days(20)), until: Some(NOW - Duration::days(10)), ..base.clone() };
    assert_eq!(read(window).await, ["GLU"], "since inclusive, until exclusive");
    let except = ResultQuery { except: vec![(NOW - Duration::days(3), NOW - Duration::days(1))], ..base.clone() };
    assert_eq!(read(except).await, ["CT-HEAD", "GLU"]);
    let whole = ResultQuery { item_codes: vec!["HBA1C".into()], whole_reports: true, ..base.clone() };
    assert_eq!(read(whole).await, ["K", "HBA1C"], "the whole report of the matching entry");
    let whole_old = ResultQuery {
        item_codes: vec!["HBA1C".into()],
        whole_reports: true,
        until: Some(NOW - Duration::days(3)),
        ..base.clone()
    };
    assert!(read(whole_old).await.is_empty(), "the time filter applies to the matching report");
    let both = ResultQuery { patient_ids: vec![p.id, dup.id], item_codes: vec!["HBA1C".into()], ..base.clone() };
    assert_eq!(read(both).await, ["HBA1C", "HBA1C"]);

    // a merge: the survivor's merged records, followed through a chain
    assert!(s.merged_patient_ids(p.id).await.expect("none yet").is_empty());
    s.merge_patients(p.id, dup.id, Uuid::from_u128(9), "同一人，重复登记", NOW).await.expect("merge");
    assert_eq!(s.merged_patient_ids(p.id).await.expect("merged"), vec![dup.id]);
    assert!(s.merged_patient_ids(dup.id).await.expect("nothing merged into it").is_empty());
}

/// Every page of `q` (`limit` each) read in turn from offset 0 to the first empty page.
async fn all_pages(s: &dyn Store, q: &ResultQuery, limit: u32) -> Vec<Vec<ResultRecord>> {
    let mut pages = Vec::new();
    loop {
        let q = ResultQuery { offset: u64::from(limit) * pages.len() as u64, limit, ..q.clone() };
        let page = s.find_results(&q).await.expect("a page");
        if page.is_empty() {
            return pages;
        }
        pages.push(page);
    }
}

/// The report ids of rows, one per run of a report's rows.
fn report_runs(rows: &[ResultRecord]) -> Vec<Uuid> {
    let mut runs: Vec<Uuid> = Vec::new();
    for r in rows {
        if runs.last() != Some(&r.report_id) {
            runs.push(r.report_id);
        }
    }
    runs
}

/// Pages in the store (`offset`/`limit`, `sort`) and the count: pages of entries concatenate
/// to the whole in order; with `whole_reports` a page is so many whole reports (a report's
/// entries never split over pages); the count ignores the page and counts reports there.
pub async fn results_query_pages(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let p = resident("王芳", Sex::Female, date!(1961 - 03 - 08), 22);
    create_patients(s, &[&p]).await;
    let day = |d: i64| NOW - Duration::days(d);
    let r1 = lab_report(
        &p,
        &county,
        day(1),
        vec![obs("K", "4.1", "mmol/L"), obs("HBA1C", "6.5", "%"), obs("GLU", "6.0", "mmol/L")],
    );
    // r2 and r3: the same specimen time (ordered by their first entry id)
    let r2 = lab_report(&p, &county, day(2), vec![obs("HBA1C", "6.9", "%")]);
    let r3 = lab_report(&p, &county, day(2), vec![obs("K", "4.4", "mmol/L"), obs("GLU", "6.3", "mmol/L")]);
    let ct = ct_report(&p, &county, day(5));
    // the oldest specimen, reported last
    let mut r5 = lab_report(&p, &county, day(10), vec![obs("HBA1C", "7.2", "%"), obs("K", "4.0", "mmol/L")]);
    r5.report_time = NOW;
    s.insert_results(&[r3.clone(), ct.clone(), r5.clone(), r1.clone(), r2.clone()]).await.expect("insert");
    let first_id = |r: &Report| r.entries.iter().map(|e| e.id).min().expect("entries");
    let (tied_a, tied_b) = if first_id(&r2) < first_id(&r3) { (&r2, &r3) } else { (&r3, &r2) };
    let ids = |rows: &[ResultRecord]| rows.iter().map(|r| r.entry.id).collect::<Vec<_>>();
    let entry_ids = |reports: &[&Report]| {
        reports
            .iter()
            .flat_map(|r| {
                let mut e: Vec<Uuid> = r.entries.iter().map(|e| e.id).collect();
                e.sort();
                e
            })
            .collect::<Vec<_>>()
    };

    // entries: newest specimen first, ties by entry id (r2's and r3's interleave by id)
    let base = ResultQuery { patient_ids: vec![p.id], ..Default::default() };
    let mut tied: Vec<Uuid> = r2.entries.iter().chain(&r3.entries).map(|e| e.id).collect();
    tied.sort();
    let expected: Vec<Uuid> =
        entry_ids(&[&r1]).into_iter().chain(tied).chain(entry_ids(&[&ct])).chain(entry_ids(&[&r5])).collect();
    assert_eq!(ids(&s.find_results(&base).await.expect("all")), expected);
    assert_eq!(s.count_results(&base).await.expect("count"), 9);
    for limit in [1, 2, 4, 9, 50] {
        let pages = all_pages(s, &base, limit).await;
        assert_eq!(pages.len(), 9usize.div_ceil(limit as usize), "pages of {limit}");
        assert!(pages.iter().all(|p| p.len() <= limit as usize));
        assert_eq!(ids(&pages.concat()), expected, "pages of {limit} concatenate to the whole");
    }
    let past = ResultQuery { offset: 9, limit: 5, ..base.clone() };
    assert!(s.find_results(&past).await.expect("past the end").is_empty());
    assert_eq!(s.count_results(&past).await.expect("count"), 9, "the count ignores the page");

    // sorted (ascending specimen time) and filtered: the lab entries, oldest first
    let lab_oldest = ResultQuery {
        categories: vec![Category::Lab],
        sort: vec![ResultSort { key: ResultSortKey::SpecimenTime, descending: false }],
        ..base.clone()
    };
    let mut tied: Vec<Uuid> = r2.entries.iter().chain(&r3.entries).map(|e| e.id).collect();
    tied.sort();
    let expected: Vec<Uuid> = entry_ids(&[&r5]).into_iter().chain(tied).chain(entry_ids(&[&r1])).collect();
    assert_eq!(s.count_results(&lab_oldest).await.expect("count"), 8);
    assert_eq!(ids(&all_pages(s, &lab_oldest, 3).await.concat()), expected);

    // whole reports with an HbA1c: r1, r2, r5 (r3 has none); pages of reports, never split
    let whole = ResultQuery { item_codes: vec!["HBA1C".into()], whole_reports: true, ..base.clone() };
    assert_eq!(s.count_results(&whole).await.expect("count"), 3, "reports, not entries");
    let expected = entry_ids(&[&r1, &r2, &r5]);
    for limit in [1, 2, 3] {
        let pages = all_pages(s, &whole, limit).await;
        assert_eq!(ids(&pages.concat()), expected, "pages of {limit} reports concatenate to the whole");
        let runs: Vec<Vec<Uuid>> = pages.iter().map(|p| report_runs(p)).collect();
        assert!(runs.iter().all(|r| r.len() <= limit as usize), "at most {limit} reports a page");
        assert_eq!(runs.concat(), vec![r1.id, r2.id, r5.id], "a report on one page only, whole");
        assert_eq!(pages.len(), 3usize.div_ceil(limit as usize));
    }
    // every report, latest report time first: r5 (reported now), r1, the tied pair, the CT
    let issued = ResultQuery {
        whole_reports: true,
        sort: vec![ResultSort { key: ResultSortKey::ReportTime, descending: true }],
        ..base.clone()
    };
    assert_eq!(s.count_results(&issued).await.expect("count"), 5);
    let pages = all_pages(s, &issued, 2).await;
    assert_eq!(
        pages.iter().map(|p| report_runs(p)).collect::<Vec<_>>(),
        vec![vec![r5.id, r1.id], vec![tied_a.id, tied_b.id], vec![ct.id]]
    );
    assert_eq!(ids(&pages.concat()), entry_ids(&[&r5, &r1, tied_a, tied_b, &ct]));
    let lone = ResultQuery { offset: 4, limit: 10, ..issued.clone() };
    assert_eq!(report_runs(&s.find_results(&lone).await.expect("last page")), vec![ct.id]);
    let nobody = ResultQuery { patient_ids: vec![], ..whole.clone() };
    assert_eq!(s.count_results(&nobody).await.expect("count"), 0);
}

/// Qualification periods: one open period per lab; ending it keeps the history, so a result
/// reported before the end is still judged qualified.
pub async fn results_lab_qualifications(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let from = datetime!(2024-01-01 00:00 +08:00);
    let q = LabQualification { lab_id: LAB, qualified_from: from, qualified_to: None };
    s.add_lab_qualification(&q, Some("省临检中心室间质评合格")).await.expect("qualify");
    match s
        .add_lab_qualification(&LabQualification { qualified_from: from + Duration::days(1), ..q.clone() }, None)
        .await
    {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a second open period: expected a conflict, got {other:?}"),
    }
    let lost = datetime!(2026-06-01 00:00 +08:00);
    assert!(s.end_lab_qualification(LAB, lost).await.expect("end"));
    assert!(!s.end_lab_qualification(LAB, lost).await.expect("end again"), "nothing open to end");
    let again = datetime!(2026-09-01 00:00 +08:00);
    s.add_lab_qualification(&LabQualification { lab_id: LAB, qualified_from: again, qualified_to: None }, None)
        .await
        .expect("qualified again");
    let bad = LabQualification { lab_id: LAB, qualified_from: again, qualified_to: Some(again) };
    assert!(s.add_lab_qualification(&bad, None).await.is_err(), "an empty period is refused");
    let got = s.lab_qualifications(&[LAB, Uuid::from_u128(7)]).await.expect("read");
    assert_eq!(
        got,
        vec![
            LabQualification { lab_id: LAB, qualified_from: from, qualified_to: Some(lost) },
            LabQualification { lab_id: LAB, qualified_from: again, qualified_to: None },
        ]
    );
    // judged at the report time: before the loss yes, in the gap no, after requalifying yes
    use tiercare_domain::recognition::lab_qualified_at;
    assert!(lab_qualified_at(&got, LAB, lost - Duration::seconds(1)));
    assert!(!lab_qualified_at(&got, LAB, lost));
    assert!(lab_qualified_at(&got, LAB, again));
}

fn order(p: &Patient, f: &Facility, at: OffsetDateTime, item: &str, outcome: Outcome, fen: i64) -> OrderRecord {
    OrderRecord {
        id: new_id(),
        order_id: new_id(),
        region_key: p.region_key.clone(),
        patient_id: p.id,
        facility_id: f.id,
        ordered_by: None,
        ordered_at: at,
        decision: Decision {
            item_code: item.into(),
            outcome,
            result_id: (outcome != Outcome::Performed).then(new_id),
            repeat_reason: (outcome == Outcome::Repeated).then_some(RepeatReason::ConditionChanged),
            price_fen: fen,
        },
    }
}

/// The savings ledger per facility and China-time month, hand-computed.
pub async fn results_orders_and_ledger(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let town = facility(s, "H51162100201", Tier::Township, YUECHI, None).await;
    let p = resident("王芳", Sex::Female, date!(1961 - 03 - 08), 22);
    create_patients(s, &[&p]).await;
    // 2026-10-31 16:30 UTC is 2026-11-01 00:30 China time: November
    let nov_start = datetime!(2026-10-31 16:30 UTC);
    let oct_end = datetime!(2026-10-31 15:59 UTC);
    let rows = vec![
        order(&p, &county, nov_start, "HBA1C", Outcome::Reused, 3_500),
        order(&p, &county, nov_start, "CT-HEAD", Outcome::Reused, 28_000),
        order(&p, &county, nov_start, "K", Outcome::Repeated, 400),
        order(&p, &county, oct_end, "HBA1C", Outcome::Reused, 3_500),
        order(&p, &town, nov_start, "GLU", Outcome::Performed, 500),
        order(&p, &town, nov_start, "ALT", Outcome::Reused, 500),
    ];
    // one bad row (unknown patient) refuses the batch
    let stranger = resident("赵六", Sex::Male, date!(1980 - 05 - 05), 41);
    let mut bad = rows.clone();
    bad.push(order(&stranger, &county, nov_start, "K", Outcome::Performed, 400));
    expect_not_found(s.record_orders(&bad).await, "orders with an unknown patient");
    assert!(s.patient_orders(p.id, 0).await.expect("orders").is_empty(), "nothing written");
    s.record_orders(&rows).await.expect("record");
    assert_eq!(s.patient_orders(p.id, 0).await.expect("orders").len(), 6);

    let ledger = s.results_ledger("2026-10", "2026-11", None).await.expect("ledger");
    let find = |f: &Facility, m: &str, o: Outcome| -> Vec<(i64, i64)> {
        ledger
            .iter()
            .filter(|r| r.facility_id == f.id && r.month == m && r.outcome == o)
            .map(|r| (r.count, r.price_fen))
            .collect()
    };
    // county, November: reused HbA1c 3,500 + head CT 28,000 = 2 tests, 31,500 fen saved
    assert_eq!(find(&county, "2026-11", Outcome::Reused), vec![(2, 31_500)]);
    // county, October: the HbA1c ordered at 23:59 China time on 31 October
    assert_eq!(find(&county, "2026-10", Outcome::Reused), vec![(1, 3_500)]);
    // the repeat keeps its reason
    let repeats: Vec<&LedgerRow> = ledger.iter().filter(|r| r.outcome == Outcome::Repeated).collect();
    assert_eq!(repeats.len(), 1);
    assert_eq!(
        (repeats[0].repeat_reason, repeats[0].count, repeats[0].price_fen),
        (Some(RepeatReason::ConditionChanged), 1, 400)
    );
    assert_eq!(find(&town, "2026-11", Outcome::Reused), vec![(1, 500)]);
    let only_town = s.results_ledger("2026-11", "2026-11", Some(&[town.id])).await.expect("ledger");
    assert!(only_town.iter().all(|r| r.facility_id == town.id));
    assert_eq!(only_town.iter().map(|r| r.count).sum::<i64>(), 2);
    assert!(s.results_ledger("2026-12", "2027-01", None).await.expect("empty").is_empty());
}

/// The order-time check over stored results: the store's look-up feeds the domain rule.
pub async fn results_order_check_over_the_store(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let town = facility(s, "H51162100201", Tier::Township, YUECHI, None).await;
    let p = resident("王芳", Sex::Female, date!(1961 - 03 - 08), 22);
    create_patients(s, &[&p]).await;
    s.add_lab_qualification(
        &LabQualification { lab_id: LAB, qualified_from: datetime!(2020-01-01 00:00 UTC), qualified_to: None },
        None,
    )
    .await
    .expect("qualify");
    // HbA1c 20 days ago (window 60 days), K 8 days ago (window 7 days: expired)
    let r = lab_report(&p, &county, NOW - Duration::days(20), vec![obs("HBA1C", "7.1", "%")]);
    let k = lab_report(&p, &county, NOW - Duration::days(8), vec![obs("K", "4.2", "mmol/L")]);
    s.insert_results(&[r.clone(), k]).await.expect("insert");
    let items = ["HBA1C", "K", "ECG"];
    let found = s
        .find_results(&ResultQuery {
            patient_ids: vec![p.id],
            item_codes: items.iter().map(|c| (*c).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .expect("look-up");
    let prior: Vec<_> = found.iter().map(crate::ResultRecord::prior).collect();
    let codes: Vec<String> = items.iter().map(|c| (*c).to_owned()).collect();
    let lean = s.prior_results(&[p.id], &codes).await.expect("the lean look-up");
    assert_eq!(lean, prior, "the order-check look-up reads the same results");
    assert!(s.prior_results(&[p.id], &[]).await.expect("no items").is_empty());
    let labs: Vec<Uuid> = prior.iter().map(|r| r.lab_id).collect();
    let quals = s.lab_qualifications(&labs).await.expect("qualifications");
    let at =
        FacilityContext { facility_id: town.id, community_id: None, region_code: YUECHI.into(), tier: Tier::Township };
    let answers = check_order(&items, &prior, &at, &RecognitionConfig::default_config().catalogue, &quals, NOW);
    assert!(matches!(&answers[0].answer, Answer::Recognised(x) if x.result_id == r.entries[0].id));
    assert!(matches!(&answers[1].answer, Answer::NotRecognised { rejected } if rejected.len() == 1));
    assert!(matches!(&answers[2].answer, Answer::NotRecognised { rejected } if rejected.is_empty()));
}
