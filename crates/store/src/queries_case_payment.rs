// Case-based payment: DIP scoring, CHS-DRG grouping and the global budget (issue 9): included into `mod case_payment` inside `queries.rs`, so it is
// compiled once per backend like the rest. SQL here must be valid on both SQLite and
// PostgreSQL.
//
// A region-year is replaced as a whole: its rows are deleted and the new ones written in one
// transaction. A budget change reads the stored year inside its write transaction and asks the
// domain whether it may change (a closed year may not), so two changes cannot both pass.

use super::*;

use tiercare_domain::DomainError;
use tiercare_domain::budget::{BudgetTerms, MonthSpend};
use tiercare_domain::dip::{CaseStay, HospitalPosition, Packet, PacketKey, ProcedureKind, StayResult, YearOutcome};
use tiercare_domain::drg::weights::DrgWeight;

use crate::{CasePaymentYear, StayDetail, StoredBudget, StoredStayResult};

/// Rows per multi-row insert of results (7 columns).
const RESULT_CHUNK: usize = 1_000;

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Unix milliseconds of 1 January of `year`, 00:00 China time (UTC+8).
fn year_start_ms(year: i32) -> i64 {
    let d = Date::from_calendar_date(year, time::Month::January, 1).unwrap_or(Date::MIN);
    (d.midnight().assume_utc().unix_timestamp() - 8 * 3600) * 1000
}

fn year_of_ms(v: i64) -> i32 {
    from_ms(v + 8 * 3600 * 1000).map(|t| t.year()).unwrap_or(0)
}

fn packet_columns(key: &PacketKey) -> (&'static str, String, String) {
    match key {
        PacketKey::Core { diagnosis, procedures } => ("core", diagnosis.clone(), procedures.clone()),
        PacketKey::Comprehensive { group, kind } => ("comprehensive", group.clone(), kind.as_str().to_owned()),
    }
}

fn packet_key(class: &str, code: String, detail: &str) -> Result<PacketKey> {
    let kind = |s: &str| match s {
        "conservative" => Some(ProcedureKind::Conservative),
        "diagnostic" => Some(ProcedureKind::Diagnostic),
        "therapeutic" => Some(ProcedureKind::Therapeutic),
        "surgery" => Some(ProcedureKind::Surgery),
        _ => None,
    };
    match class {
        "core" => Ok(PacketKey::Core { diagnosis: code, procedures: detail.to_owned() }),
        "comprehensive" => kind(detail)
            .map(|kind| PacketKey::Comprehensive { group: code, kind })
            .ok_or_else(|| StoreError::Corrupt(format!("packet kind {detail}"))),
        other => Err(StoreError::Corrupt(format!("packet class {other}"))),
    }
}

#[async_trait::async_trait]
impl crate::CasePaymentStore for This {
    async fn import_stay_details(&self, rows: &[StayDetail]) -> Result<u64> {
        self.transact(rows, |tx, rows| Box::pin(import_stay_details_tx(tx, rows))).await
    }

    async fn case_stays(&self, region_prefix: &str, years: &[i32]) -> Result<Vec<CaseStay>> {
        let (Some(first), Some(last)) = (years.iter().min(), years.iter().max()) else {
            return Ok(Vec::new());
        };
        let rows = query(
            "SELECT e.id, e.region_key, e.facility_id, e.started_at, e.ended_at, e.diagnoses, e.procedures, e.total_cost_fen,
               p.sex, p.birth_date, d.newborn_weight_g,
               (SELECT s.patient_fen FROM settlement s WHERE s.region_key = e.region_key AND s.encounter_id = e.id
                  AND s.status = 'settled') AS patient_fen
             FROM encounter e
             JOIN facility f ON f.id = e.facility_id
             JOIN patient p ON p.id = e.patient_id AND p.region_key = e.region_key
             LEFT JOIN stay_detail d ON d.region_key = e.region_key AND d.encounter_id = e.id
             WHERE e.class = 'inpatient' AND e.ended_at >= $1 AND e.ended_at < $2 AND f.region_code LIKE $3
             ORDER BY e.id",
        )
        .bind(year_start_ms(*first))
        .bind(year_start_ms(*last + 1))
        .bind(format!("{region_prefix}%"))
        .fetch_all(self.read())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let stay = case_stay_from_row(r)?;
            if years.contains(&stay.year) {
                out.push(stay);
            }
        }
        Ok(out)
    }

    async fn replace_case_payment_year(&self, year: &CasePaymentYear, outcome: &YearOutcome) -> Result<()> {
        self.transact(&(year, outcome), |tx, (year, outcome)| Box::pin(replace_year_tx(tx, year, outcome))).await
    }

    async fn case_payment_year(&self, region_code: &str, year: i32) -> Result<Option<CasePaymentYear>> {
        let row = query(
            "SELECT region_code, year, terms, scheme, total_cases, mean_cost_fen, packets, core_packets, stays,
               fund_available_fen, reimbursement_ratio_bp, total_points_e4, fen_per_point_e4, drg_base_rate_fen,
               drg_weight_sum_e4, drg_groups, built_by, built_at
             FROM case_payment_year WHERE region_code = $1 AND year = $2",
        )
        .bind(region_code)
        .bind(i64::from(year))
        .fetch_optional(self.read())
        .await?;
        row.map(|r| year_from_row(&r)).transpose()
    }

    async fn case_payment_years(&self) -> Result<Vec<(String, i32)>> {
        let rows = query("SELECT region_code, year FROM case_payment_year ORDER BY year DESC, region_code")
            .fetch_all(self.read())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("region_code")?, i32::try_from(r.try_get::<i64, _>("year")?).unwrap_or(0))))
            .collect()
    }

    async fn dip_packets(
        &self,
        region_code: &str,
        year: i32,
        search: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Packet>> {
        let limit = if limit == 0 { 200 } else { limit.min(2_000) };
        let pattern = format!("{}%", search.unwrap_or("").trim().to_uppercase());
        let rows = query(
            "SELECT class, code, detail, cases, weight_sum, weighted_cost_fen, mean_cost_fen, score_e4 FROM dip_packet
             WHERE region_code = $1 AND year = $2 AND code LIKE $3
             ORDER BY class DESC, code, detail LIMIT $4 OFFSET $5",
        )
        .bind(region_code)
        .bind(i64::from(year))
        .bind(pattern)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(self.read())
        .await?;
        rows.iter().map(packet_from_row).collect()
    }

    async fn drg_weights(&self, region_code: &str, year: i32) -> Result<Vec<DrgWeight>> {
        let rows = query(
            "SELECT drg_code, cases, kept_cases, cost_fen, mean_cost_fen, weight_e4, low_volume, trim_skipped
             FROM drg_weight WHERE region_code = $1 AND year = $2 ORDER BY drg_code",
        )
        .bind(region_code)
        .bind(i64::from(year))
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|r| {
                let cost: String = r.try_get("cost_fen")?;
                Ok(DrgWeight {
                    drg_code: r.try_get("drg_code")?,
                    cases: int(r, "cases")?,
                    kept_cases: int(r, "kept_cases")?,
                    cost_fen: cost.parse().map_err(|_| StoreError::Corrupt(format!("DRG cost {cost}")))?,
                    mean_cost_fen: r.try_get("mean_cost_fen")?,
                    weight_e4: r.try_get("weight_e4")?,
                    low_volume: r.try_get("low_volume")?,
                    trim_skipped: r.try_get("trim_skipped")?,
                })
            })
            .collect()
    }

    async fn hospital_positions(
        &self,
        region_code: &str,
        year: i32,
        facility_id: Option<Uuid>,
    ) -> Result<Vec<HospitalPosition>> {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("SELECT position FROM case_hospital_position WHERE region_code = ");
        qb.push_bind(region_code.to_owned()).push(" AND year = ").push_bind(i64::from(year));
        if let Some(id) = facility_id {
            qb.push(" AND facility_id = ").push_bind(id);
        }
        qb.push(" ORDER BY facility_id");
        let rows = qb.build().fetch_all(self.read()).await?;
        rows.iter().map(|r| from_json("hospital position", &r.try_get::<String, _>("position")?)).collect()
    }

    async fn stay_result(&self, encounter_id: Uuid) -> Result<Option<StoredStayResult>> {
        let row = query(
            "SELECT r.region_key, e.patient_id, r.region_code, r.year, r.facility_id, r.result
             FROM case_stay_result r JOIN encounter e ON e.region_key = r.region_key AND e.id = r.encounter_id
             WHERE r.encounter_id = $1 ORDER BY r.year DESC LIMIT 1",
        )
        .bind(encounter_id)
        .fetch_optional(self.read())
        .await?;
        row.map(|r| stay_result_from_row(&r)).transpose()
    }

    async fn stay_results(
        &self,
        region_code: &str,
        year: i32,
        facility_id: Uuid,
        limit: u32,
    ) -> Result<Vec<StoredStayResult>> {
        let limit = if limit == 0 { 100 } else { limit.min(1_000) };
        let rows = query(
            "SELECT r.region_key, e.patient_id, r.region_code, r.year, r.facility_id, r.result
             FROM case_stay_result r JOIN encounter e ON e.region_key = r.region_key AND e.id = r.encounter_id
             WHERE r.region_code = $1 AND r.year = $2 AND r.facility_id = $3",
        )
        .bind(region_code)
        .bind(i64::from(year))
        .bind(facility_id)
        .fetch_all(self.read())
        .await?;
        let mut out = rows.iter().map(stay_result_from_row).collect::<Result<Vec<_>>>()?;
        let rank = |s: &StoredStayResult| {
            let d = s.result.dip.as_ref();
            let flagged = d.is_none_or(|d| d.expert_review || d.outlier != tiercare_domain::dip::Outlier::Normal);
            (!flagged, -s.result.cost_fen, s.result.id.clone())
        };
        out.sort_by_key(rank);
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn put_budget(
        &self,
        community_id: Uuid,
        terms: &BudgetTerms,
        by: Option<Uuid>,
        at: OffsetDateTime,
    ) -> Result<StoredBudget> {
        terms.validate()?;
        let stored = StoredBudget { community_id, terms: terms.clone(), updated_by: by, updated_at: at };
        self.transact(&stored, |tx, b| Box::pin(put_budget_tx(tx, b))).await?;
        Ok(stored)
    }

    async fn budget(&self, community_id: Uuid, year: i32) -> Result<Option<StoredBudget>> {
        let row = query(
            "SELECT community_id, year, budget_fen, savings_retained_bp, overspend_borne_bp, closed, updated_by, updated_at
             FROM community_budget WHERE community_id = $1 AND year = $2",
        )
        .bind(community_id)
        .bind(i64::from(year))
        .fetch_optional(self.read())
        .await?;
        row.map(|r| budget_from_row(&r)).transpose()
    }

    async fn community_spend(&self, community_id: Uuid, year: i32) -> Result<Vec<MonthSpend>> {
        let Some(community) = self.get_community(community_id).await? else {
            return Err(StoreError::not_found(format!("community {community_id}")));
        };
        let rows = query(
            "SELECT substr(s.service_date, 6, 2) AS month,
               CAST(SUM(CASE WHEN f.region_code = $1 THEN s.fund_fen ELSE 0 END) AS BIGINT) AS in_county,
               CAST(SUM(CASE WHEN f.region_code = $1 THEN 0 ELSE s.fund_fen END) AS BIGINT) AS out_of_county
             FROM settlement s JOIN facility f ON f.id = s.facility_id
             WHERE s.region_key = $2 AND s.status = 'settled' AND s.service_date >= $3 AND s.service_date < $4
             GROUP BY substr(s.service_date, 6, 2) ORDER BY substr(s.service_date, 6, 2)",
        )
        .bind(community.region_code.as_str())
        .bind(community.region_code.as_str())
        .bind(format!("{year:04}-01-01"))
        .bind(format!("{:04}-01-01", year + 1))
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|r| {
                let month: String = r.try_get("month")?;
                Ok(MonthSpend {
                    month: month.parse().map_err(|_| StoreError::Corrupt(format!("month {month}")))?,
                    in_county_fen: r.try_get("in_county")?,
                    out_of_county_fen: r.try_get("out_of_county")?,
                })
            })
            .collect()
    }
}

fn case_stay_from_row(r: &DbRow) -> Result<CaseStay> {
    let started = from_ms(r.try_get("started_at")?)?;
    let ended: Option<i64> = r.try_get("ended_at")?;
    let birth = parse_date(&r.try_get::<String, _>("birth_date")?)?;
    let admitted = (started + time::Duration::hours(8)).date();
    let age_days = u32::try_from((admitted - birth).whole_days()).ok();
    let mut age = admitted.year() - birth.year();
    if (admitted.month() as u8, admitted.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    let sex: String = r.try_get("sex")?;
    let weight: Option<i64> = r.try_get("newborn_weight_g")?;
    let id: Uuid = r.try_get("id")?;
    let facility: Uuid = r.try_get("facility_id")?;
    Ok(CaseStay {
        id: id.to_string(),
        region_key: r.try_get("region_key")?,
        facility_id: facility.to_string(),
        year: year_of_ms(ended.unwrap_or(0)),
        grouping: tiercare_domain::drg::Stay {
            sex: match Sex::parse(&sex) {
                Some(Sex::Male) => 1,
                Some(Sex::Female) => 2,
                None => 0,
            },
            age: u32::try_from(age).ok(),
            age_days: age_days.filter(|d| *d < 365),
            weight_g: weight.and_then(|w| u32::try_from(w).ok()),
            diagnoses: from_json("diagnoses", &r.try_get::<String, _>("diagnoses")?)?,
            procedures: from_json("procedures", &r.try_get::<String, _>("procedures")?)?,
        },
        cost_fen: r.try_get("total_cost_fen")?,
        patient_paid_fen: r.try_get::<Option<i64>, _>("patient_fen")?.unwrap_or(0),
    })
}

async fn import_stay_details_tx(tx: &mut Tx, rows: &[StayDetail]) -> Result<u64> {
    for (i, d) in rows.iter().enumerate() {
        if !crate::DISCHARGE_STATUSES.contains(&d.discharge_status.as_str()) {
            return Err(DomainError::field(
                &format!("rows[{i}].discharge_status"),
                "stay.discharge_status.unknown",
                format!("unknown discharge status '{}'", d.discharge_status),
            )
            .into());
        }
    }
    for chunk in rows.chunks(RESULT_CHUNK) {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("SELECT region_key, id FROM encounter WHERE class = 'inpatient' AND id IN (");
        let mut b = qb.separated(", ");
        for d in chunk {
            b.push_bind(d.encounter_id);
        }
        qb.push(")");
        let found: HashSet<(String, Uuid)> = qb
            .build()
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("region_key")?, r.try_get("id")?)))
            .collect::<Result<_>>()?;
        if let Some(d) = chunk.iter().find(|d| !found.contains(&(d.region_key.clone(), d.encounter_id))) {
            return Err(StoreError::not_found(format!("inpatient encounter {}", d.encounter_id)));
        }
        let mut del: QueryBuilder<Db> = QueryBuilder::new("DELETE FROM stay_detail WHERE encounter_id IN (");
        let mut b = del.separated(", ");
        for d in chunk {
            b.push_bind(d.encounter_id);
        }
        del.push(")");
        del.build().execute(&mut **tx).await?;
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO stay_detail (region_key, encounter_id, newborn_weight_g, discharge_status) ",
        );
        qb.push_values(chunk, |mut b, d| {
            b.push_bind(d.region_key.clone())
                .push_bind(d.encounter_id)
                .push_bind(d.newborn_weight_g.map(i64::from))
                .push_bind(d.discharge_status.clone());
        });
        qb.build().execute(&mut **tx).await?;
    }
    Ok(rows.len() as u64)
}

async fn replace_year_tx(tx: &mut Tx, y: &CasePaymentYear, outcome: &YearOutcome) -> Result<()> {
    let year = i64::from(y.year);
    for table in ["case_payment_year", "dip_packet", "drg_weight", "case_stay_result", "case_hospital_position"] {
        query(AssertSqlSafe(format!("DELETE FROM {table} WHERE region_code = $1 AND year = $2")))
            .bind(y.region_code.as_str())
            .bind(year)
            .execute(&mut **tx)
            .await?;
    }
    query(
        "INSERT INTO case_payment_year (region_code, year, terms, scheme, total_cases, mean_cost_fen, packets,
           core_packets, stays, fund_available_fen, reimbursement_ratio_bp, total_points_e4, fen_per_point_e4,
           drg_base_rate_fen, drg_weight_sum_e4, drg_groups, built_by, built_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(y.region_code.as_str())
    .bind(year)
    .bind(to_json(&y.terms)?)
    .bind(y.scheme.as_str())
    .bind(y.total_cases as i64)
    .bind(y.mean_cost_fen)
    .bind(y.packets as i64)
    .bind(y.core_packets as i64)
    .bind(y.stays as i64)
    .bind(y.fund_available_fen)
    .bind(i64::from(y.reimbursement_ratio_bp))
    .bind(y.total_points_e4)
    .bind(y.fen_per_point_e4)
    .bind(y.drg_base_rate_fen)
    .bind(y.drg_weight_sum_e4)
    .bind(y.drg_groups as i64)
    .bind(y.built_by)
    .bind(ms(y.built_at))
    .execute(&mut **tx)
    .await?;
    for chunk in outcome.catalogue.packets.chunks(RESULT_CHUNK) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO dip_packet (region_code, year, class, code, detail, cases, weight_sum, weighted_cost_fen,
               mean_cost_fen, score_e4) ",
        );
        qb.push_values(chunk, |mut b, p| {
            let (class, code, detail) = packet_columns(&p.key);
            b.push_bind(y.region_code.clone())
                .push_bind(year)
                .push_bind(class)
                .push_bind(code)
                .push_bind(detail)
                .push_bind(p.cases as i64)
                .push_bind(p.weight_sum)
                .push_bind(p.weighted_cost_fen.to_string())
                .push_bind(p.mean_cost_fen)
                .push_bind(p.score_e4);
        });
        qb.build().execute(&mut **tx).await?;
    }
    let weights = outcome.drg.table.as_ref().map_or(&[][..], |t| &t.groups[..]);
    for chunk in weights.chunks(RESULT_CHUNK) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO drg_weight (region_code, year, drg_code, cases, kept_cases, cost_fen, mean_cost_fen, weight_e4,
               low_volume, trim_skipped) ",
        );
        qb.push_values(chunk, |mut b, w| {
            b.push_bind(y.region_code.clone())
                .push_bind(year)
                .push_bind(w.drg_code.clone())
                .push_bind(w.cases as i64)
                .push_bind(w.kept_cases as i64)
                .push_bind(w.cost_fen.to_string())
                .push_bind(w.mean_cost_fen)
                .push_bind(w.weight_e4)
                .push_bind(w.low_volume)
                .push_bind(w.trim_skipped);
        });
        qb.build().execute(&mut **tx).await?;
    }
    insert_stay_results(tx, y, &outcome.stays).await?;
    for chunk in outcome.hospitals.chunks(RESULT_CHUNK) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO case_hospital_position (region_code, year, facility_id, position, payment_fen) ",
        );
        let mut values = Vec::with_capacity(chunk.len());
        for h in chunk {
            values.push((parse_uuid("facility_id", &h.facility_id)?, to_json(h)?, h.payment_fen));
        }
        qb.push_values(values, |mut b, (id, json, pay)| {
            b.push_bind(y.region_code.clone()).push_bind(year).push_bind(id).push_bind(json).push_bind(pay);
        });
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

fn parse_uuid(what: &str, s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| StoreError::not_found(format!("{what} {s}")))
}

/// The stays' results; each names an encounter whose region key is read here.
async fn insert_stay_results(tx: &mut Tx, y: &CasePaymentYear, stays: &[StayResult]) -> Result<()> {
    for chunk in stays.chunks(RESULT_CHUNK) {
        let ids = chunk.iter().map(|s| parse_uuid("encounter", &s.id)).collect::<Result<Vec<_>>>()?;
        let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT region_key, id FROM encounter WHERE id IN (");
        let mut b = qb.separated(", ");
        for id in &ids {
            b.push_bind(*id);
        }
        qb.push(")");
        let regions: HashMap<Uuid, String> = qb
            .build()
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("region_key")?)))
            .collect::<Result<_>>()?;
        let mut values = Vec::with_capacity(chunk.len());
        for (s, id) in chunk.iter().zip(&ids) {
            let region = regions.get(id).ok_or_else(|| StoreError::not_found(format!("encounter {id}")))?;
            values.push((region.clone(), *id, parse_uuid("facility_id", &s.facility_id)?, s.cost_fen, to_json(s)?));
        }
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!(
            "{BULK_INSERT} case_stay_result (region_key, encounter_id, region_code, year, facility_id, cost_fen, result) "
        ));
        qb.push_values(values, |mut b, (region, id, facility, cost, json)| {
            b.push_bind(region)
                .push_bind(id)
                .push_bind(y.region_code.clone())
                .push_bind(i64::from(y.year))
                .push_bind(facility)
                .push_bind(cost)
                .push_bind(json);
        });
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn put_budget_tx(tx: &mut Tx, b: &StoredBudget) -> Result<()> {
    let year = i64::from(b.terms.year);
    let exists = query("SELECT id FROM community WHERE id = $1").bind(b.community_id).fetch_optional(&mut **tx).await?;
    if exists.is_none() {
        return Err(StoreError::not_found(format!("community {}", b.community_id)));
    }
    let old = query(
        "SELECT community_id, year, budget_fen, savings_retained_bp, overspend_borne_bp, closed, updated_by, updated_at
         FROM community_budget WHERE community_id = $1 AND year = $2",
    )
    .bind(b.community_id)
    .bind(year)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(old) = old {
        budget_from_row(&old)?.terms.check_change(&b.terms)?;
        query("DELETE FROM community_budget WHERE community_id = $1 AND year = $2")
            .bind(b.community_id)
            .bind(year)
            .execute(&mut **tx)
            .await?;
    }
    query(
        "INSERT INTO community_budget (community_id, year, budget_fen, savings_retained_bp, overspend_borne_bp, closed,
           updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(b.community_id)
    .bind(year)
    .bind(b.terms.budget_fen)
    .bind(i64::from(b.terms.savings_retained_bp))
    .bind(i64::from(b.terms.overspend_borne_bp))
    .bind(b.terms.closed)
    .bind(b.updated_by)
    .bind(ms(b.updated_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn int<T: TryFrom<i64>>(r: &DbRow, col: &str) -> Result<T> {
    let v: i64 = r.try_get(col)?;
    T::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col} {v}")))
}

fn budget_from_row(r: &DbRow) -> Result<StoredBudget> {
    Ok(StoredBudget {
        community_id: r.try_get("community_id")?,
        terms: BudgetTerms {
            year: int(r, "year")?,
            budget_fen: r.try_get("budget_fen")?,
            savings_retained_bp: int(r, "savings_retained_bp")?,
            overspend_borne_bp: int(r, "overspend_borne_bp")?,
            closed: r.try_get("closed")?,
        },
        updated_by: r.try_get("updated_by")?,
        updated_at: from_ms(r.try_get("updated_at")?)?,
    })
}

fn year_from_row(r: &DbRow) -> Result<CasePaymentYear> {
    Ok(CasePaymentYear {
        region_code: r.try_get("region_code")?,
        year: int(r, "year")?,
        terms: from_json("terms", &r.try_get::<String, _>("terms")?)?,
        scheme: r.try_get("scheme")?,
        total_cases: int(r, "total_cases")?,
        mean_cost_fen: r.try_get("mean_cost_fen")?,
        packets: int(r, "packets")?,
        core_packets: int(r, "core_packets")?,
        stays: int(r, "stays")?,
        fund_available_fen: r.try_get("fund_available_fen")?,
        reimbursement_ratio_bp: int(r, "reimbursement_ratio_bp")?,
        total_points_e4: r.try_get("total_points_e4")?,
        fen_per_point_e4: r.try_get("fen_per_point_e4")?,
        drg_base_rate_fen: r.try_get("drg_base_rate_fen")?,
        drg_weight_sum_e4: r.try_get("drg_weight_sum_e4")?,
        drg_groups: int(r, "drg_groups")?,
        built_by: r.try_get("built_by")?,
        built_at: from_ms(r.try_get("built_at")?)?,
    })
}

fn packet_from_row(r: &DbRow) -> Result<Packet> {
    let class: String = r.try_get("class")?;
    let detail: String = r.try_get("detail")?;
    let weighted: String = r.try_get("weighted_cost_fen")?;
    Ok(Packet {
        key: packet_key(&class, r.try_get("code")?, &detail)?,
        cases: int(r, "cases")?,
        weight_sum: r.try_get("weight_sum")?,
        weighted_cost_fen: weighted.parse().map_err(|_| StoreError::Corrupt(format!("weighted cost {weighted}")))?,
        mean_cost_fen: r.try_get("mean_cost_fen")?,
        score_e4: r.try_get("score_e4")?,
    })
}

fn stay_result_from_row(r: &DbRow) -> Result<StoredStayResult> {
    Ok(StoredStayResult {
        region_key: r.try_get("region_key")?,
        patient_id: r.try_get("patient_id")?,
        region_code: r.try_get("region_code")?,
        year: int(r, "year")?,
        facility_id: r.try_get("facility_id")?,
        result: from_json("stay result", &r.try_get::<String, _>("result")?)?,
    })
}
