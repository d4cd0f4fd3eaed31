//! The submitted Claim as stored (issue 6, part 8: `GET /fhir/Claim/{id}`, the id of the
//! settlement, as in `ClaimResponse.request`). It is written with the elements
//! [`crate::claim::parse_claim`] reads (see the mapping there), so a settled Claim read back
//! through `$submit` is the same bill:
//!
//! | settlement | Claim |
//! |---|---|
//! | id, transaction number | `id`, `identifier[0]` (system `sid/txn-no`, assigner the facility) |
//! | reversed (冲正) | `status` `cancelled`; otherwise `active` |
//! | setting, day of care | `type` (institutional / professional), `billablePeriod.start` |
//! | patient, facility | `patient`, `provider` |
//! | the enrolment used (scheme, insured region, valid that day) | `insurance[0].coverage` = `Coverage/{id}` (display only when it is no longer on file) |
//! | arrival as adjudicated (sent, or derived from referrals) | extensions `settlement-arrival`, `settlement-arrival-after-stay-at` |
//! | priced lines | `item[i]`: `sequence`, `productOrService` (system `CodeSystem/nhsa-item`), `quantity`, `unitPrice`, `net`, `encounter` |
//! | total | `total` |
//!
//! Settlements stored before their priced lines were kept (migration 0005) have only each
//! line's amount: their items carry `net` and a `productOrService.text` saying so.

use serde_json::{Value, json};
use tiercare_domain::billing::PricedLine;
use tiercare_domain::settlement::{Arrival, Claim};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::claim::{EXT_AFTER_STAY_AT, EXT_ARRIVAL, ITEM_SYSTEM, TXN_SYSTEM, arrival_code, claim_type, instant, money};
use crate::coverage::scheme_name;
use crate::ext;

pub const PRIORITY_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/processpriority";

/// One stored settlement's claim.
#[derive(Debug, Clone)]
pub struct StoredClaim<'a> {
    pub id: Uuid,
    pub txn_no: &'a str,
    pub reversed: bool,
    pub patient_id: Uuid,
    pub facility_id: Uuid,
    pub facility_name: Option<&'a str>,
    pub encounter_id: Option<Uuid>,
    /// The enrolment the claim was settled against, when it is still on file.
    pub coverage_id: Option<Uuid>,
    /// The claim as adjudicated (setting, day, arrival, each line's class and amount).
    pub claim: &'a Claim,
    /// The priced lines, one per `claim.lines` entry (empty for old settlements).
    pub items: &'a [PricedLine],
    pub created_at: OffsetDateTime,
}

/// The Claim of a stored settlement.
pub fn claim(v: &StoredClaim<'_>) -> Value {
    let c = v.claim;
    let mut extension = vec![json!({ "url": ext(EXT_ARRIVAL), "valueCode": arrival_code(c.arrival) })];
    if let Arrival::UpwardReferral { after_stay_at: Some(t) } = c.arrival {
        extension.push(json!({ "url": ext(EXT_AFTER_STAY_AT), "valueCode": t.as_str() }));
    }
    let org = format!("Organization/{}", v.facility_id);
    let mut provider = json!({ "reference": org });
    if let Some(n) = v.facility_name {
        provider["display"] = json!(n);
    }
    let coverage = match v.coverage_id {
        Some(id) => json!({ "reference": format!("Coverage/{id}") }),
        None => json!({ "display": format!("{} {}", c.insured_region, scheme_name(c.scheme)) }),
    };
    let mut r = json!({
        "resourceType": "Claim",
        "id": v.id.to_string(),
        "extension": extension,
        "identifier": [{ "system": TXN_SYSTEM, "value": v.txn_no, "assigner": { "reference": org } }],
        "status": if v.reversed { "cancelled" } else { "active" },
        "type": claim_type(c.setting),
        "use": "claim",
        "patient": { "reference": format!("Patient/{}", v.patient_id) },
        "billablePeriod": { "start": c.date.to_string() },
        "created": instant(v.created_at),
        "provider": provider,
        "priority": { "coding": [{ "system": PRIORITY_SYSTEM, "code": "normal" }] },
        "insurance": [{ "sequence": 1, "focal": true, "coverage": coverage }],
    });
    r["item"] = json!(items(v));
    r["total"] = money(c.lines.iter().map(|l| l.amount_fen).sum());
    r
}

/// `Claim.item`: the priced lines, or each line's amount for an old settlement.
fn items(v: &StoredClaim<'_>) -> Vec<Value> {
    let priced = v.items.len() == v.claim.lines.len();
    v.claim
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let mut item = match v.items.get(i).filter(|_| priced) {
                Some(p) => json!({
                    "sequence": i + 1,
                    "productOrService": { "coding": [{ "system": ITEM_SYSTEM, "code": p.code }] },
                    "quantity": { "value": p.quantity },
                    "unitPrice": money(p.unit_price_fen),
                    "net": money(line.amount_fen),
                }),
                None => json!({
                    "sequence": i + 1,
                    "productOrService": { "text": "item code not kept (settled before item codes were stored)" },
                    "net": money(line.amount_fen),
                }),
            };
            if let Some(e) = v.encounter_id {
                item["encounter"] = json!([{ "reference": format!("Encounter/{e}") }]);
            }
            item
        })
        .collect()
}
