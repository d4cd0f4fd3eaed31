//! Shared lab and imaging results with mutual recognition (issue 5): the records and the part of the [`Store`](crate::Store)
//! trait for them. Implemented per backend in `queries_results.rs`.
//!
//! A stored result is one recognisable unit (an observation of a lab report, or the exam of an
//! imaging report) with its report's facility, lab, times and `HR` mark: [`ResultRecord`]. The
//! order-time check reads a patient's results of the ordered items through the index
//! `(patient_id, item_code, specimen_time)`; orders are kept per item with their outcome
//! (reused, repeated with a reason, performed), and the reused ones are the savings ledger.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use tiercare_domain::facility::Tier;
use tiercare_domain::recognition::{LabQualification, PriorResult, RepeatReason, Scope};
use tiercare_domain::results::{Category, Decision, Entry, ImagingReport, Outcome, Report};

use crate::Result;

/// One stored result: an entry with its report's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRecord {
    pub region_key: String,
    pub report_id: Uuid,
    pub patient_id: Uuid,
    pub category: Category,
    pub facility_id: Uuid,
    pub facility_tier: Tier,
    pub lab_id: Uuid,
    pub specimen_time: OffsetDateTime,
    pub report_time: OffsetDateTime,
    pub mark: Option<Scope>,
    pub imaging: Option<ImagingReport>,
    pub entry: Entry,
}

impl ResultRecord {
    /// The rows of a validated report, one per entry.
    pub fn of_report(r: &Report) -> impl Iterator<Item = ResultRecord> + '_ {
        r.entries.iter().map(|e| ResultRecord {
            region_key: r.region_key.clone(),
            report_id: r.id,
            patient_id: r.patient_id,
            category: r.category,
            facility_id: r.facility_id,
            facility_tier: r.facility_tier,
            lab_id: r.lab_id,
            specimen_time: r.specimen_time,
            report_time: r.report_time,
            mark: r.mark.clone(),
            imaging: r.imaging.clone(),
            entry: e.clone(),
        })
    }

    /// The result as the order-time check sees it.
    pub fn prior(&self) -> PriorResult {
        PriorResult {
            id: self.entry.id,
            item_code: self.entry.item_code.clone(),
            facility_id: self.facility_id,
            facility_tier: self.facility_tier,
            lab_id: self.lab_id,
            specimen_time: self.specimen_time,
            report_time: self.report_time,
            mark: self.mark.clone(),
            value: self.entry.value.clone(),
            unit: self.entry.unit.clone(),
        }
    }
}

/// Which results of which patients to read.
#[derive(Debug, Clone, Default)]
pub struct ResultQuery {
    /// The patient and the records merged into them.
    pub patient_ids: Vec<Uuid>,
    /// Entries of these local item codes match …
    pub item_codes: Vec<String>,
    /// … and so do all entries of these categories (`item_codes` and `categories` both
    /// empty: every entry matches).
    pub categories: Vec<Category>,
    /// Specimen time at or after this.
    pub since: Option<OffsetDateTime>,
    /// Specimen time before this.
    pub until: Option<OffsetDateTime>,
    /// Specimen time outside each of these ranges `[from, to)` (a FHIR `ne` date).
    pub except: Vec<(OffsetDateTime, OffsetDateTime)>,
    /// Read every entry of each report with a matching entry (a DiagnosticReport shows all
    /// its observations), not only the matching entries. The time filters are the
    /// report's (its entries share its specimen time).
    pub whole_reports: bool,
    /// The order (FHIR `_sort`), ahead of the default: newest specimen first, then by entry
    /// id (with `whole_reports`: by the report's first entry id; its entries by id).
    pub sort: Vec<ResultSort>,
    /// Skip this many in that order (entries; with `whole_reports`, reports).
    pub offset: u64,
    /// At most this many after `offset` (entries; with `whole_reports`, whole reports: a
    /// report's entries are never split) (0: no limit).
    pub limit: u32,
}

/// A result search's sort key (FHIR `_sort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultSortKey {
    /// The specimen (or exam) time.
    SpecimenTime,
    /// The report time.
    ReportTime,
}

/// One key of a [`ResultQuery`]'s order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultSort {
    pub key: ResultSortKey,
    pub descending: bool,
}

/// One ordered item as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub id: Uuid,
    /// The order the item belongs to (the items ordered together share it).
    pub order_id: Uuid,
    pub region_key: String,
    pub patient_id: Uuid,
    /// The ordering facility.
    pub facility_id: Uuid,
    pub ordered_by: Option<Uuid>,
    pub ordered_at: OffsetDateTime,
    pub decision: Decision,
}

/// One line of the savings report: per facility, China-time month, outcome and repeat reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub facility_id: Uuid,
    /// `YYYY-MM`.
    pub month: String,
    pub outcome: Outcome,
    pub repeat_reason: Option<RepeatReason>,
    pub count: i64,
    /// Sum of the items' prices (for `reused`: money saved).
    pub price_fen: i64,
}

/// Shared lab and imaging results with mutual recognition (issue 5).
#[async_trait]
pub trait ResultStore: Send + Sync {
    /// Store validated reports, all or nothing (multi-row inserts). Refuses a report of an
    /// unknown patient (or one whose region key is not the patient's) or facility.
    async fn insert_results(&self, reports: &[Report]) -> Result<u64>;
    /// Bulk load (imports, benchmarks): the rows as given (one per entry), all or nothing,
    /// by the backend's fastest path: `COPY … FROM STDIN` on PostgreSQL, the multi-row
    /// inserts of [`Self::insert_results`] on SQLite. Patients and facilities are checked as
    /// there. Rows given in patient order land on few pages per patient. Call
    /// [`Self::results_loaded`] after a large load.
    async fn bulk_insert_results(&self, rows: &[ResultRecord]) -> Result<u64>;
    /// After a large load: planner statistics, and on PostgreSQL the visibility map
    /// (`VACUUM (ANALYZE)`) so that the order check's look-up stays an index-only scan.
    async fn results_loaded(&self) -> Result<()>;
    /// The records merged into `survivor` (and into those, to the end of the chain): their
    /// results are the survivor's too.
    async fn merged_patient_ids(&self, survivor: Uuid) -> Result<Vec<Uuid>>;
    /// Results by patient (and items, and time), in the query's order (default newest
    /// specimen first), a page of it when `offset`/`limit` are given.
    async fn find_results(&self, q: &ResultQuery) -> Result<Vec<ResultRecord>>;
    /// How many [`Self::find_results`] finds without `offset` and `limit`: entries, or with
    /// `whole_reports` reports (FHIR `total`, `_summary=count`).
    async fn count_results(&self, q: &ResultQuery) -> Result<u64>;
    /// The results with these entry ids (FHIR Observation read), in no particular order.
    async fn results_by_ids(&self, ids: &[Uuid]) -> Result<Vec<ResultRecord>>;
    /// The entries of one report (FHIR DiagnosticReport read), in the order they were sent;
    /// empty when there is no such report.
    async fn report_results(&self, report_id: Uuid) -> Result<Vec<ResultRecord>>;
    /// The order-time check's look-up: the patients' results of these items with only what
    /// the rule needs (no findings, ranges or flags), newest specimen first.
    async fn prior_results(&self, patient_ids: &[Uuid], item_codes: &[String]) -> Result<Vec<PriorResult>>;
    /// The qualification periods of these labs.
    async fn lab_qualifications(&self, lab_ids: &[Uuid]) -> Result<Vec<LabQualification>>;
    /// Record a new qualification period (a lab gaining status).
    async fn add_lab_qualification(&self, q: &LabQualification, note: Option<&str>) -> Result<()>;
    /// End the open qualification period of `lab_id` at `at` (a lab losing status); false
    /// when none was open.
    async fn end_lab_qualification(&self, lab_id: Uuid, at: OffsetDateTime) -> Result<bool>;
    /// Record the items of orders, all or nothing.
    async fn record_orders(&self, rows: &[OrderRecord]) -> Result<()>;
    /// The orders of a patient, newest first.
    async fn patient_orders(&self, patient_id: Uuid, limit: u32) -> Result<Vec<OrderRecord>>;
    /// The ledger from month `from` to month `to` inclusive (`YYYY-MM`), for some facilities
    /// (`None`: all).
    async fn results_ledger(&self, from: &str, to: &str, facility_ids: Option<&[Uuid]>) -> Result<Vec<LedgerRow>>;
}

/// The backend's `COPY … FROM STDIN` in text format, inside the caller's transaction:
/// `Some(rows)` on PostgreSQL; `None` on SQLite, which has no COPY (its multi-row inserts
/// are its fast path).
#[async_trait]
pub(crate) trait CopyIn {
    async fn copy_in_text(&mut self, statement: &str, data: Vec<u8>) -> Result<Option<u64>>;
}

#[async_trait]
impl CopyIn for sqlx::PgConnection {
    async fn copy_in_text(&mut self, statement: &str, data: Vec<u8>) -> Result<Option<u64>> {
        let mut copy = self.copy_in_raw(statement).await?;
        copy.send(data).await?;
        Ok(Some(copy.finish().await?))
    }
}

#[async_trait]
impl CopyIn for rusqlite::Connection {
    async fn copy_in_text(&mut self, _statement: &str, _data: Vec<u8>) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// One row of a `COPY … FROM STDIN` text-format stream: tab-separated, `\N` for NULL,
/// backslash, tab, newline and carriage return escaped.
pub(crate) struct CopyRow<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> CopyRow<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u8>) -> Self {
        CopyRow { buf, first: true }
    }

    fn sep(&mut self) -> &mut Vec<u8> {
        let first = std::mem::replace(&mut self.first, false);
        if !first {
            self.buf.push(b'\t');
        }
        self.buf
    }

    pub(crate) fn text(&mut self, v: &str) -> &mut Self {
        let buf = self.sep();
        for b in v.bytes() {
            match b {
                b'\\' => buf.extend_from_slice(b"\\\\"),
                b'\t' => buf.extend_from_slice(b"\\t"),
                b'\n' => buf.extend_from_slice(b"\\n"),
                b'\r' => buf.extend_from_slice(b"\\r"),
                b => buf.push(b),
            }
        }
        self
    }

    pub(crate) fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    pub(crate) fn null(&mut self) -> &mut Self {
        self.sep().extend_from_slice(b"\\N");
        self
    }

    pub(crate) fn display(&mut self, v: impl std::fmt::Display) -> &mut Self {
        use std::io::Write;
        let _ = write!(self.sep(), "{v}");
        self
    }

    pub(crate) fn opt_f64(&mut self, v: Option<f64>) -> &mut Self {
        match v {
            // `{:?}` prints an f64 so that it reads back equal (1e300, 0.1, -0.0)
            Some(v) if v.is_finite() => self.display(format_args!("{v:?}")),
            Some(v) => self.text(if v.is_nan() {
                "NaN"
            } else if v > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            }),
            None => self.null(),
        }
    }

    pub(crate) fn end(self) {
        self.buf.push(b'\n');
    }
}
