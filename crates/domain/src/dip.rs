//! DIP (按病种分值付费, diagnosis-intervention packets; domain.md M9, issue 9 item 1): the
//! packet catalogue from a region's historical stays, the score of one stay, the year's
//! point value and each hospital's payment. Pure arithmetic, no I/O.
//!
//! Numbers:
//! - money is `i64` fen;
//! - scores (分值) are `i64` in **1/10,000 of a point** (`*_e4`): a packet scored 77.9487
//!   points is `779_487`;
//! - coefficients and ratios are basis points (1 bp = 0.01 %, 10,000 bp = 1.0);
//! - every intermediate value is an exact rational in `i128`; a result is rounded once,
//!   half-up, when it is stored (a packet's score, a stay's score, a payment). No floats.
//!
//! Rules (the technical specification's defaults are in [`DipParameters::default`]):
//! 1. A packet key is the principal diagnosis (ICD-10, trimmed and upper-cased, matched
//!    verbatim: `I63.900` and `I63.9` are different) plus the procedure combination: the
//!    set of ICD-9-CM-3 codes, trimmed, de-duplicated and sorted, joined with `+`, or
//!    `conservative` when there is none.
//! 2. A key with at least `core_threshold` historical cases (counted, not weighted) is a
//!    **core packet** (核心病种). The other cases go to **comprehensive packets** (综合病种)
//!    keyed by the diagnosis group and the stay's [`ProcedureKind`]; the diagnosis group is
//!    the ICD-10 category — the first three characters, e.g. `K80` — or, with
//!    [`ComprehensiveBy::Chapter`], the ICD-10 chapter the category falls in.
//! 3. Means are weighted by year: a stay of `year_index` 0 (oldest), 1, 2 (latest) weighs
//!    `year_weights[year_index]` (default 1:2:7). Packet mean = Σ(w·cost) ÷ Σw over its
//!    cases; the overall mean the same over all cases.
//! 4. Packet score RW = packet mean ÷ overall mean × `score_scale` (default 100).
//! 5. A stay is scored with its packet's (rounded, published) score. With r = cost ÷ packet
//!    mean (exact): r < `low_ratio` (50 %) → score × r; r > `high_ratio` (200 %) →
//!    score × ((r − 2) + 1); 0.5 ≤ r ≤ 2 → score; r > `review_ratio` (5×) is also flagged for
//!    expert review. Then × the facility coefficient. The boundaries themselves are normal.
//! 6. Settlement point value = (fund available ÷ reimbursement ratio) ÷ Σ points; a
//!    hospital's payment = round(its points × point value) − what its patients paid.
//!
//! The procedure kind (conservative, diagnostic, therapeutic, surgery) is **input** on each
//! stay: the real classification comes from the procedure catalogue the region uses
//! (手术操作分类代码, with its operation / diagnostic / therapeutic flags).
//! [`classify_procedures`] is a coarse default from the ICD-9-CM-3 chapter numbers for callers
//! that have nothing better; any function `&[String] -> ProcedureKind` can be used instead.

use std::collections::HashMap;

use crate::error::{DomainError, Problems};

/// Points are stored in 1/10,000 of a point.
pub const POINT_E4: i64 = 10_000;
const BP: i128 = 10_000;

/// The treatment kind of a stay, for comprehensive packets. Ordered by "weight": a stay with
/// several procedures takes the highest kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcedureKind {
    /// 保守治疗: no procedure.
    Conservative,
    /// 诊断性操作.
    Diagnostic,
    /// 治疗性操作.
    Therapeutic,
    /// 相关手术.
    Surgery,
}

impl ProcedureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcedureKind::Conservative => "conservative",
            ProcedureKind::Diagnostic => "diagnostic",
            ProcedureKind::Therapeutic => "therapeutic",
            ProcedureKind::Surgery => "surgery",
        }
    }
}

/// A coarse default classification from ICD-9-CM-3 chapter numbers (the two digits before
/// the dot): 01–86 operations → surgery; 87–91 (imaging, other diagnostic procedures,
/// interviews and examinations, laboratory) → diagnostic; 00 and 92–99 (procedures NEC,
/// nuclear medicine, physical therapy, other non-operative procedures) → therapeutic. The
/// highest kind over all procedures wins; none → conservative; an unreadable code counts
/// as therapeutic. Replace with the region's catalogue where it exists.
pub fn classify_procedures(procedures: &[String]) -> ProcedureKind {
    procedures
        .iter()
        .map(|p| {
            let digits: String = p.trim().chars().take_while(char::is_ascii_digit).take(2).collect();
            match digits.parse::<u32>() {
                Ok(n) if digits.len() == 2 && (1..=86).contains(&n) => ProcedureKind::Surgery,
                Ok(n) if digits.len() == 2 && (87..=91).contains(&n) => ProcedureKind::Diagnostic,
                _ => ProcedureKind::Therapeutic,
            }
        })
        .max()
        .unwrap_or(ProcedureKind::Conservative)
}

/// How non-core cases are grouped by diagnosis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComprehensiveBy {
    /// The ICD-10 category: the first three characters (`K80`).
    #[default]
    Category,
    /// The ICD-10 chapter of the category (`XI` for `K80`).
    Chapter,
}

/// Every DIP number, as data. `Default` is the technical specification's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DipParameters {
    /// Cases a key needs to be a core packet (default 15).
    pub core_threshold: u64,
    /// Weights of the three history years, oldest first (default 1:2:7).
    pub year_weights: [u32; 3],
    /// Display scale of scores (default 100: a packet at the overall mean scores 100).
    pub score_scale: u32,
    /// Below this share of the packet mean (bp) a stay is a low outlier (default 5,000 = 50 %).
    pub low_ratio_bp: u32,
    /// Above this (bp) a high outlier (default 20,000 = 200 %).
    pub high_ratio_bp: u32,
    /// Above this (bp) also flagged for expert review (default 50,000 = 5×).
    pub review_ratio_bp: u32,
    /// How non-core cases are grouped (default: ICD-10 category).
    pub comprehensive_by: ComprehensiveBy,
}

impl Default for DipParameters {
    fn default() -> Self {
        Self {
            core_threshold: 15,
            year_weights: [1, 2, 7],
            score_scale: 100,
            low_ratio_bp: 5_000,
            high_ratio_bp: 20_000,
            review_ratio_bp: 50_000,
            comprehensive_by: ComprehensiveBy::Category,
        }
    }
}

impl DipParameters {
    fn validate(&self) -> Result<(), DomainError> {
        let mut p = Problems::default();
        if self.core_threshold == 0 {
            p.add("core_threshold", "dip.core_threshold.zero", "the core threshold must be at least 1 case");
        }
        if self.year_weights.contains(&0) {
            p.add("year_weights", "dip.year_weights.zero", "every year weight must be positive");
        }
        if self.score_scale == 0 {
            p.add("score_scale", "dip.score_scale.zero", "the score scale must be positive");
        }
        if !(self.low_ratio_bp <= self.high_ratio_bp && self.high_ratio_bp <= self.review_ratio_bp) {
            p.add("high_ratio_bp", "dip.ratios.order", "outlier ratios must be ordered: low ≤ high ≤ expert review");
        }
        p.into_result()
    }
}

/// One stay as DIP sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DipStay {
    pub facility_id: String,
    /// ICD-10 principal diagnosis (主要诊断).
    pub principal_diagnosis: String,
    /// ICD-9-CM-3 procedures, the principal first (order does not matter for the packet).
    #[serde(default)]
    pub procedures: Vec<String>,
    /// Input: see the module documentation and [`classify_procedures`].
    pub procedure_kind: ProcedureKind,
    /// Total cost of the stay, fen.
    pub cost_fen: i64,
}

/// A stay of the history the catalogue is built from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoricalStay {
    #[serde(flatten)]
    pub stay: DipStay,
    /// 0 = the oldest of the three years, 2 = the latest; weighs `year_weights[year_index]`.
    pub year_index: u8,
}

/// Which kind of packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum PacketKey {
    /// 核心病种: diagnosis + procedure combination.
    Core { diagnosis: String, procedures: String },
    /// 综合病种: diagnosis group (category or chapter) + treatment kind.
    Comprehensive { group: String, kind: ProcedureKind },
}

impl std::fmt::Display for PacketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketKey::Core { diagnosis, procedures } => write!(f, "core {diagnosis} / {procedures}"),
            PacketKey::Comprehensive { group, kind } => write!(f, "comprehensive {group} / {}", kind.as_str()),
        }
    }
}

/// One packet of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Packet {
    pub key: PacketKey,
    /// Historical cases (unweighted).
    pub cases: u64,
    /// Σ year weight.
    pub weight_sum: i64,
    /// Σ year weight × cost, fen.
    pub weighted_cost_fen: i128,
    /// The weighted mean cost rounded half-up to the fen (for display; scoring uses the exact
    /// mean `weighted_cost_fen ÷ weight_sum`).
    pub mean_cost_fen: i64,
    /// RW, 1/10,000 point.
    pub score_e4: i64,
}

/// The packet catalogue (病种目录库) of a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    /// Core packets first, then comprehensive, each sorted by key.
    pub packets: Vec<Packet>,
    pub total_cases: u64,
    pub total_weight: i64,
    pub total_weighted_cost_fen: i128,
    /// The overall weighted mean cost, rounded (display).
    pub mean_cost_fen: i64,
    pub params: DipParameters,
    index: HashMap<PacketKey, usize>,
}

impl Catalogue {
    pub fn packet(&self, key: &PacketKey) -> Option<&Packet> {
        self.index.get(key).map(|&i| &self.packets[i])
    }
}

/// `round(n ÷ d)` half-up for `n ≥ 0`, `d > 0`.
fn div_round(n: i128, d: i128) -> i128 {
    (2 * n + d) / (2 * d)
}

fn to_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn normalize_diagnosis(s: &str) -> String {
    s.trim().to_uppercase()
}

/// The procedure-combination part of a core key.
pub fn procedure_combination(procedures: &[String]) -> String {
    let mut v: Vec<&str> = procedures.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect();
    v.sort_unstable();
    v.dedup();
    if v.is_empty() { "conservative".to_owned() } else { v.join("+") }
}

/// The ICD-10 chapter (Roman numeral, WHO 2019) of a 3-character category, e.g. `K80` → `XI`.
pub fn icd10_chapter(category: &str) -> Option<&'static str> {
    let mut c = category.chars();
    let letter = c.next()?.to_ascii_uppercase();
    let digits: String = c.take(2).collect();
    let n: u32 = if digits.len() == 2 { digits.parse().ok()? } else { return None };
    Some(match letter {
        'A' | 'B' => "I",
        'C' => "II",
        'D' if n <= 48 => "II",
        'D' => "III",
        'E' => "IV",
        'F' => "V",
        'G' => "VI",
        'H' if n <= 59 => "VII",
        'H' => "VIII",
        'I' => "IX",
        'J' => "X",
        'K' => "XI",
        'L' => "XII",
        'M' => "XIII",
        'N' => "XIV",
        'O' => "XV",
        'P' => "XVI",
        'Q' => "XVII",
        'R' => "XVIII",
        'S' | 'T' => "XIX",
        'V' | 'W' | 'X' | 'Y' => "XX",
        'Z' => "XXI",
        'U' => "XXII",
        _ => return None,
    })
}

fn comprehensive_group(diagnosis: &str, by: ComprehensiveBy) -> String {
    let category: String = diagnosis.chars().take(3).collect();
    match by {
        ComprehensiveBy::Category => category,
        ComprehensiveBy::Chapter => icd10_chapter(&category).map_or(category, str::to_owned),
    }
}

/// Check one stay; `prefix` names it in field errors (e.g. `stays[3].`).
fn check_stay(p: &mut Problems, prefix: &str, s: &DipStay) {
    let dx = normalize_diagnosis(&s.principal_diagnosis);
    if dx.is_empty() {
        p.add(
            &format!("{prefix}principal_diagnosis"),
            "dip.principal_diagnosis.missing",
            "a stay needs a principal diagnosis (ICD-10)",
        );
    } else {
        let b = dx.as_bytes();
        if !(b.len() >= 3 && b[0].is_ascii_uppercase() && b[1].is_ascii_digit() && b[2].is_ascii_alphanumeric()) {
            p.add(
                &format!("{prefix}principal_diagnosis"),
                "dip.principal_diagnosis.format",
                format!("'{}' is not an ICD-10 code (a letter, two digits, …)", s.principal_diagnosis),
            );
        }
    }
    if s.cost_fen < 0 {
        p.add(
            &format!("{prefix}cost_fen"),
            "dip.cost.negative",
            format!("the cost of a stay cannot be negative ({} fen)", s.cost_fen),
        );
    }
    // Procedures may be present on a conservative stay (the caller's classification may
    // ignore minor ones), but a procedural kind needs a procedure.
    if s.procedures.iter().all(|x| x.trim().is_empty()) && s.procedure_kind != ProcedureKind::Conservative {
        p.add(
            &format!("{prefix}procedure_kind"),
            "dip.procedure_kind.mismatch",
            format!("a stay without procedures cannot be {}", s.procedure_kind.as_str()),
        );
    }
}

#[derive(Default)]
struct Acc {
    cases: u64,
    weight: i64,
    weighted_cost: i128,
}

impl Acc {
    fn add(&mut self, w: i64, cost: i64) {
        self.cases += 1;
        self.weight += w;
        self.weighted_cost += i128::from(w) * i128::from(cost);
    }
}

/// Build the catalogue from the historical stays (rules 1–4 of the module documentation).
///
/// Refused (`DomainError::Invalid`, every problem listed) for: an empty history, a stay
/// without (or with an unreadable) principal diagnosis, a negative cost, a `year_index`
/// above 2, a procedural kind without procedures, invalid parameters, or a
/// history whose costs are all zero (no overall mean to divide by).
pub fn build_catalogue(stays: &[HistoricalStay], params: &DipParameters) -> Result<Catalogue, DomainError> {
    params.validate()?;
    let mut p = Problems::default();
    if stays.is_empty() {
        p.add("stays", "dip.history.empty", "the catalogue needs at least one historical stay");
    }
    for (i, h) in stays.iter().enumerate() {
        let prefix = format!("stays[{i}].");
        check_stay(&mut p, &prefix, &h.stay);
        if h.year_index > 2 {
            p.add(
                &format!("{prefix}year_index"),
                "dip.year_index.range",
                format!("year_index is 0, 1 or 2 (oldest to latest), not {}", h.year_index),
            );
        }
    }
    p.into_result()?;

    // Pass 1: count and sum by core key.
    let mut by_core: HashMap<(String, String), Acc> = HashMap::new();
    let mut total = Acc::default();
    let keys: Vec<(String, String)> = stays
        .iter()
        .map(|h| (normalize_diagnosis(&h.stay.principal_diagnosis), procedure_combination(&h.stay.procedures)))
        .collect();
    for (h, k) in stays.iter().zip(&keys) {
        let w = i64::from(params.year_weights[usize::from(h.year_index)]);
        by_core.entry(k.clone()).or_default().add(w, h.stay.cost_fen);
        total.add(w, h.stay.cost_fen);
    }
    if total.weighted_cost == 0 {
        return Err(DomainError::field(
            "stays",
            "dip.history.zero_cost",
            "every historical stay costs nothing: there is no mean cost to score against",
        ));
    }

    // Pass 2: the cases of small keys go to comprehensive packets.
    let mut packets: HashMap<PacketKey, Acc> = HashMap::new();
    for (k, acc) in &by_core {
        if acc.cases >= params.core_threshold {
            packets.insert(PacketKey::Core { diagnosis: k.0.clone(), procedures: k.1.clone() }, Acc { ..*acc });
        }
    }
    for (h, k) in stays.iter().zip(&keys) {
        if by_core[k].cases < params.core_threshold {
            let key = PacketKey::Comprehensive {
                group: comprehensive_group(&k.0, params.comprehensive_by),
                kind: h.stay.procedure_kind,
            };
            let w = i64::from(params.year_weights[usize::from(h.year_index)]);
            packets.entry(key).or_default().add(w, h.stay.cost_fen);
        }
    }

    let scale = i128::from(params.score_scale) * i128::from(POINT_E4);
    let mut list: Vec<Packet> = packets
        .into_iter()
        .map(|(key, a)| {
            // RW = (Σ_p wc ÷ Σ_p w) ÷ (Σ wc ÷ Σ w) × scale, one rounding.
            let score = div_round(
                a.weighted_cost * i128::from(total.weight) * scale,
                i128::from(a.weight) * total.weighted_cost,
            );
            Packet {
                key,
                cases: a.cases,
                weight_sum: a.weight,
                weighted_cost_fen: a.weighted_cost,
                mean_cost_fen: to_i64(div_round(a.weighted_cost, i128::from(a.weight))),
                score_e4: to_i64(score),
            }
        })
        .collect();
    list.sort_by(|a, b| a.key.cmp(&b.key));
    let index = list.iter().enumerate().map(|(i, p)| (p.key.clone(), i)).collect();
    Ok(Catalogue {
        packets: list,
        total_cases: total.cases,
        total_weight: total.weight,
        total_weighted_cost_fen: total.weighted_cost,
        mean_cost_fen: to_i64(div_round(total.weighted_cost, i128::from(total.weight))),
        params: params.clone(),
        index,
    })
}

/// A stay's position against its packet mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outlier {
    /// Within [50 %, 200 %] of the packet mean (bounds included).
    Normal,
    /// Below 50 %: score × cost ÷ mean.
    Low,
    /// Above 200 %: score × ((cost ÷ mean − 2) + 1).
    High,
}

/// One explained step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DipStep {
    /// `packet`, `base_score`, `outlier_low`, `outlier_high`, `normal`, `expert_review`,
    /// `facility_coefficient`, `score`.
    pub code: String,
    pub message: String,
}

/// The DIP result of one stay.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StayScore {
    pub facility_id: String,
    pub packet: PacketKey,
    /// Why this packet: a core packet, or a comprehensive one because the core key had too
    /// few historical cases (or none).
    pub reason: String,
    /// The packet's score, 1/10,000 point.
    pub base_score_e4: i64,
    pub outlier: Outlier,
    /// Cost above `review_ratio` × the packet mean.
    pub expert_review: bool,
    /// Cost ÷ packet mean, bp (rounded half-up; for display, the rules use the exact ratio).
    pub cost_ratio_bp: i64,
    pub facility_coefficient_bp: u32,
    /// The stay's score after outlier rule and coefficient, 1/10,000 point, ≥ 0.
    pub score_e4: i64,
    pub cost_fen: i64,
    pub explanation: Vec<DipStep>,
}

fn points(e4: i128) -> String {
    format!("{}.{:04}", e4 / i128::from(POINT_E4), e4 % i128::from(POINT_E4))
}

/// Score one stay against the catalogue (rule 5); `facility_coefficient_bp` is the
/// facility-level coefficient (10,000 = 1.0).
///
/// The parameters are the catalogue's ([`Catalogue::params`]), so a stay is always scored by
/// the rules its catalogue was built with.
///
/// Refused for: no principal diagnosis, a negative cost, a procedural kind without procedures, a zero coefficient, and a stay that fits no packet
/// (`dip.packet.none`: neither its core key nor its comprehensive group is in the catalogue).
pub fn score_stay(
    catalogue: &Catalogue,
    stay: &DipStay,
    facility_coefficient_bp: u32,
) -> Result<StayScore, DomainError> {
    let params = &catalogue.params;
    let mut p = Problems::default();
    check_stay(&mut p, "", stay);
    if facility_coefficient_bp == 0 {
        p.add("facility_coefficient_bp", "dip.coefficient.zero", "the facility coefficient must be positive");
    }
    p.into_result()?;

    let dx = normalize_diagnosis(&stay.principal_diagnosis);
    let combo = procedure_combination(&stay.procedures);
    let core = PacketKey::Core { diagnosis: dx.clone(), procedures: combo.clone() };
    let (packet, reason) = if let Some(pk) = catalogue.packet(&core) {
        (pk, format!("core packet: {dx} with {combo} had {} historical cases (≥ {})", pk.cases, params.core_threshold))
    } else {
        let comp = PacketKey::Comprehensive {
            group: comprehensive_group(&dx, params.comprehensive_by),
            kind: stay.procedure_kind,
        };
        let Some(pk) = catalogue.packet(&comp) else {
            return Err(DomainError::field(
                "principal_diagnosis",
                "dip.packet.none",
                format!("no packet for {dx} with {combo}: neither a core packet nor the {comp} packet exists"),
            ));
        };
        (pk, format!("{comp}: {dx} with {combo} is not a core packet (fewer than {} cases)", params.core_threshold))
    };

    let mut steps = vec![
        DipStep { code: "packet".into(), message: reason.clone() },
        DipStep {
            code: "base_score".into(),
            message: format!(
                "packet score {} points, mean cost {} fen",
                points(packet.score_e4.into()),
                packet.mean_cost_fen
            ),
        },
    ];

    // Exact: r = cost × W ÷ WC.
    let s = i128::from(packet.score_e4);
    let cw = i128::from(stay.cost_fen) * i128::from(packet.weight_sum);
    let wc = packet.weighted_cost_fen;
    let coef = i128::from(facility_coefficient_bp);
    let ratio_bp = if wc == 0 { 0 } else { to_i64(div_round(cw * BP, wc)) };
    // cw ÷ wc compared with x bp ⇔ cw × 10,000 compared with x × wc.
    let above = |x: u32| cw * BP > i128::from(x) * wc;
    let below = |x: u32| cw * BP < i128::from(x) * wc;
    let (outlier, num, den) = if wc == 0 {
        (Outlier::Normal, s, 1)
    } else if below(params.low_ratio_bp) {
        steps.push(DipStep {
            code: "outlier_low".into(),
            message: format!(
                "cost is {ratio_bp} bp of the packet mean (< {}): score × cost ÷ mean",
                params.low_ratio_bp
            ),
        });
        (Outlier::Low, s * cw, wc)
    } else if above(params.high_ratio_bp) {
        steps.push(DipStep {
            code: "outlier_high".into(),
            message: format!(
                "cost is {ratio_bp} bp of the packet mean (> {}): score × ((cost ÷ mean − 2) + 1)",
                params.high_ratio_bp
            ),
        });
        (Outlier::High, s * (cw - wc), wc)
    } else {
        steps.push(DipStep {
            code: "normal".into(),
            message: format!("cost is {ratio_bp} bp of the packet mean: the packet score"),
        });
        (Outlier::Normal, s, 1)
    };
    let expert_review = wc != 0 && above(params.review_ratio_bp);
    if expert_review {
        steps.push(DipStep {
            code: "expert_review".into(),
            message: format!("cost above {} bp of the packet mean: flagged for expert review", params.review_ratio_bp),
        });
    }
    steps.push(DipStep {
        code: "facility_coefficient".into(),
        message: format!("facility coefficient {facility_coefficient_bp} bp"),
    });
    let score = to_i64(div_round(num * coef, den * BP));
    steps.push(DipStep { code: "score".into(), message: format!("stay score {} points", points(score.into())) });

    Ok(StayScore {
        facility_id: stay.facility_id.clone(),
        packet: packet.key.clone(),
        reason,
        base_score_e4: packet.score_e4,
        outlier,
        expert_review,
        cost_ratio_bp: ratio_bp,
        facility_coefficient_bp,
        score_e4: score,
        cost_fen: stay.cost_fen,
        explanation: steps,
    })
}

/// The settlement point value, kept exact as its three inputs so that every payment is
/// rounded once: fen per point = (fund ÷ ratio) ÷ Σ points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PointValue {
    pub fund_available_fen: i64,
    pub reimbursement_ratio_bp: u32,
    /// Σ points of all stays of the year, 1/10,000 point.
    pub total_points_e4: i64,
}

impl PointValue {
    /// Fen per point, rounded half-up to 1/10,000 fen (display).
    pub fn fen_per_point_e4(&self) -> i64 {
        // (F ÷ (ratio ÷ 10,000)) ÷ (T ÷ 10,000) × 10,000 fen-e4.
        let n = i128::from(self.fund_available_fen) * BP * BP * BP;
        let d = i128::from(self.reimbursement_ratio_bp) * i128::from(self.total_points_e4);
        to_i64(div_round(n, d))
    }

    /// `round(points × point value)`, fen, half-up.
    pub fn amount_fen(&self, points_e4: i64) -> i64 {
        let n = i128::from(points_e4) * i128::from(self.fund_available_fen) * BP;
        let d = i128::from(self.reimbursement_ratio_bp) * i128::from(self.total_points_e4);
        to_i64(div_round(n, d))
    }
}

/// Settlement point value = (fund available ÷ reimbursement ratio) ÷ Σ points.
///
/// Refused for: a negative fund, a ratio outside 1..=10,000 bp, total points ≤ 0.
pub fn point_value(
    fund_available_fen: i64,
    reimbursement_ratio_bp: u32,
    total_points_e4: i64,
) -> Result<PointValue, DomainError> {
    let mut p = Problems::default();
    if fund_available_fen < 0 {
        p.add("fund_available_fen", "dip.fund.negative", "the fund available cannot be negative");
    }
    if !(1..=10_000).contains(&reimbursement_ratio_bp) {
        p.add(
            "reimbursement_ratio_bp",
            "dip.ratio.range",
            format!("the reimbursement ratio is 1–10,000 bp, not {reimbursement_ratio_bp}"),
        );
    }
    if total_points_e4 <= 0 {
        p.add("total_points", "dip.points.none", "there are no points to divide the fund by");
    }
    p.into_result()?;
    Ok(PointValue { fund_available_fen, reimbursement_ratio_bp, total_points_e4 })
}

/// One hospital's year.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HospitalPayment {
    pub facility_id: String,
    pub points_e4: i64,
    /// round(points × point value), fen.
    pub gross_fen: i64,
    /// What its patients paid for these stays, fen.
    pub patients_paid_fen: i64,
    /// gross − patients paid (negative: the hospital owes the fund).
    pub payment_fen: i64,
}

/// A hospital's payment = round(points × point value) − what its patients paid.
pub fn hospital_payment(
    facility_id: &str,
    points_e4: i64,
    value: &PointValue,
    patients_paid_fen: i64,
) -> Result<HospitalPayment, DomainError> {
    let mut p = Problems::default();
    if points_e4 < 0 {
        p.add("points", "dip.points.negative", "a hospital's points cannot be negative");
    }
    if patients_paid_fen < 0 {
        p.add("patients_paid_fen", "dip.patients_paid.negative", "what patients paid cannot be negative");
    }
    p.into_result()?;
    let gross = value.amount_fen(points_e4);
    Ok(HospitalPayment {
        facility_id: facility_id.to_owned(),
        points_e4,
        gross_fen: gross,
        patients_paid_fen,
        payment_fen: gross - patients_paid_fen,
    })
}

/// Year-end settlement: sum the stay scores by facility, compute the point value over all of
/// them, and each facility's payment. `patients_paid` gives fen per facility (missing: 0).
/// Facilities in order of id.
pub fn settle(
    scores: &[StayScore],
    fund_available_fen: i64,
    reimbursement_ratio_bp: u32,
    patients_paid: &HashMap<String, i64>,
) -> Result<(PointValue, Vec<HospitalPayment>), DomainError> {
    let mut by: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for s in scores {
        *by.entry(&s.facility_id).or_default() += s.score_e4;
    }
    let total: i64 = by.values().sum();
    let value = point_value(fund_available_fen, reimbursement_ratio_bp, total)?;
    let payments = by
        .into_iter()
        .map(|(f, pts)| hospital_payment(f, pts, &value, patients_paid.get(f).copied().unwrap_or(0)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((value, payments))
}

// ---------------------------------------------------------------------------------------------
// The year-end settlement of a region: DIP and DRG together (what the store keeps and the pages
// show). Pure: the caller reads the stays and writes the outcome.

/// A stay of the region as the year's settlement reads it: what DIP and the DRG grouper need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseStay {
    /// The stay's key (the encounter id).
    pub id: String,
    /// Where the caller keeps the patient's records (the store's region key); not used here.
    pub region_key: String,
    pub facility_id: String,
    /// The year of discharge.
    pub year: i32,
    /// Sex, age, newborn age and weight, diagnoses (principal first) and procedures.
    pub grouping: crate::drg::Stay,
    pub cost_fen: i64,
    /// What the patient paid of the stay (the settlement's patient part), fen.
    pub patient_paid_fen: i64,
}

impl CaseStay {
    /// The stay as DIP sees it (treatment kind from its procedures).
    pub fn dip_stay(&self) -> DipStay {
        DipStay {
            facility_id: self.facility_id.clone(),
            principal_diagnosis: self.grouping.diagnoses.first().cloned().unwrap_or_default(),
            procedures: self.grouping.procedures.clone(),
            procedure_kind: classify_procedures(&self.grouping.procedures),
            cost_fen: self.cost_fen,
        }
    }
}

/// The terms of a region-year's settlement, as data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YearTerms {
    pub year: i32,
    /// The history years the catalogue is built from, oldest first, at most three; the last
    /// weighs `year_weights[2]`. Empty: the three years before `year`.
    #[serde(default)]
    pub history_years: Vec<i32>,
    #[serde(default)]
    pub params: DipParameters,
    /// The fund available for the region's inpatient stays of the year (fen).
    pub fund_available_fen: i64,
    /// The fund's share of the stays' cost (bp), for the settlement point value.
    pub reimbursement_ratio_bp: u32,
    /// Facility-level coefficients (bp) by facility id; missing: 10,000.
    #[serde(default)]
    pub facility_coefficients_bp: std::collections::BTreeMap<String, u32>,
    /// DRG weights and base rate (default: see [`DrgTerms`]).
    #[serde(default)]
    pub drg: DrgTerms,
}

/// The DRG side of a region-year's terms, as data.
///
/// - Weights come from the history years' stays the scheme groups into a DRG (unweighted by
///   year; ungroupable stays are left out of every mean): weight = DRG mean cost ÷ mean cost of
///   all grouped history stays ([`crate::drg::weights`]).
/// - The base rate (费率, fen per weight 1.0000) is `base_rate_fen` when given; by default it is
///   budget-neutral with DIP: (fund available ÷ reimbursement ratio) ÷ Σ weights of the year's
///   stays that have a weight, rounded half-up to the fen.
/// - A stay's DRG payment = its weight × the base rate (half-up); a hospital's CMI = mean weight
///   of its stays that have one; its DRG payment = Σ its stays' DRG payments − what its patients
///   paid (as for DIP).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrgTerms {
    /// Trimming and low-volume flag of the weights (default: no trimming, low volume below 5).
    pub weights: crate::drg::weights::WeightParams,
    /// The base rate in fen per weight 1.0000; `None` (default): budget-neutral, see above.
    pub base_rate_fen: Option<i64>,
}

impl YearTerms {
    /// The history years, defaulted and checked (1–3 distinct years, ascending, none after `year`).
    pub fn history(&self) -> Result<Vec<i32>, DomainError> {
        let years = if self.history_years.is_empty() {
            vec![self.year - 3, self.year - 2, self.year - 1]
        } else {
            self.history_years.clone()
        };
        let mut p = Problems::default();
        if !(2000..=2100).contains(&self.year) {
            p.add("year", "dip.year.range", format!("{} is not a settlement year (2000–2100)", self.year));
        }
        if years.len() > 3 {
            p.add("history_years", "dip.history_years.count", "at most three history years (weights 1:2:7)");
        }
        if years.windows(2).any(|w| w[0] >= w[1]) || years.iter().any(|y| *y > self.year) {
            p.add(
                "history_years",
                "dip.history_years.order",
                "history years are distinct, ascending and not after the settlement year",
            );
        }
        for (id, c) in &self.facility_coefficients_bp {
            if !(1..=30_000).contains(c) {
                p.add(
                    &format!("facility_coefficients_bp.{id}"),
                    "dip.coefficient.range",
                    format!("a facility coefficient is 1–30,000 bp, not {c}"),
                );
            }
        }
        if let Some(rate) = self.drg.base_rate_fen.filter(|r| *r <= 0) {
            p.add(
                "drg.base_rate_fen",
                "drg.base_rate.not_positive",
                format!("the DRG base rate must be more than 0 fen, not {rate}"),
            );
        }
        p.into_result()?;
        self.params.validate()?;
        self.drg.weights.validate()?;
        Ok(years)
    }

    fn coefficient(&self, facility_id: &str) -> u32 {
        self.facility_coefficients_bp.get(facility_id).copied().unwrap_or(10_000)
    }
}

/// One stay's DIP and DRG result, with their explanations.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StayResult {
    pub id: String,
    pub facility_id: String,
    pub cost_fen: i64,
    /// The DIP score and its explanation; `None` when no packet fits (see `dip_refusal`).
    pub dip: Option<StayScore>,
    pub dip_refusal: Option<String>,
    /// `grouped`, `check_failed` or `ungroupable`.
    pub drg_status: String,
    pub mdc: Option<String>,
    pub adrg: Option<String>,
    pub drg: Option<String>,
    /// The DRG's weight from the history (1/10,000), when the DRG has one.
    pub drg_weight_e4: Option<i64>,
    /// weight × base rate, fen, when the stay has a weight and the year a base rate.
    #[serde(default)]
    pub drg_payment_fen: Option<i64>,
    /// The rules that placed the stay.
    pub drg_trace: Vec<String>,
}

/// A hospital's position in the year: DIP points, outliers, payment, DRG CMI.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HospitalPosition {
    pub facility_id: String,
    pub stays: u64,
    pub points_e4: i64,
    pub outliers_low: u64,
    pub outliers_high: u64,
    pub expert_review: u64,
    /// Stays no packet fits (not paid by points).
    pub unscored: u64,
    /// points × point value.
    pub gross_fen: i64,
    pub patients_paid_fen: i64,
    /// gross − what patients paid.
    pub payment_fen: i64,
    pub drg_grouped: u64,
    /// Σ weights ÷ grouped stays with a weight (1/10,000); `None` without weights.
    pub cmi_e4: Option<i64>,
    /// Stays with a DRG weight, and the sum of their weights (1/10,000).
    #[serde(default)]
    pub drg_weighted: u64,
    #[serde(default)]
    pub drg_weight_sum_e4: i64,
    /// Σ the stays' DRG payments (weight × base rate); `None` without a base rate.
    #[serde(default)]
    pub drg_gross_fen: Option<i64>,
    /// DRG gross − what patients paid; `None` without a base rate.
    #[serde(default)]
    pub drg_payment_fen: Option<i64>,
}

/// The DRG side of a region-year's settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrgOutcome {
    /// The weights from the history; `None` when no history stay was grouped into a DRG (or
    /// all grouped ones cost nothing).
    pub table: Option<crate::drg::weights::WeightTable>,
    /// Σ weights of the year's stays that have one (1/10,000).
    pub weight_sum_e4: i64,
    /// The base rate used (the terms' or the budget-neutral default); `None` without weights.
    pub base_rate_fen: Option<i64>,
}

/// The budget-neutral base rate: (fund ÷ ratio) ÷ (Σ weights_e4 ÷ 10,000), half-up; `None`
/// for a weight sum that is not positive (or a ratio of 0).
pub fn neutral_base_rate(fund_available_fen: i64, reimbursement_ratio_bp: u32, weight_sum_e4: i64) -> Option<i64> {
    if weight_sum_e4 <= 0 || reimbursement_ratio_bp == 0 || fund_available_fen < 0 {
        return None;
    }
    let n = i128::from(fund_available_fen) * BP * BP;
    let d = i128::from(reimbursement_ratio_bp) * i128::from(weight_sum_e4);
    Some(to_i64(div_round(n, d)))
}

/// The region-year's settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearOutcome {
    pub catalogue: Catalogue,
    pub value: PointValue,
    pub stays: Vec<StayResult>,
    /// In order of facility id.
    pub hospitals: Vec<HospitalPosition>,
    pub drg: DrgOutcome,
}

/// Build the catalogue from `history` (stays of `terms.history()` years; others are ignored),
/// score and group the year's stays, and settle: point value and each hospital's position.
/// A stay no packet fits is kept with its reason and earns no points.
pub fn settle_year(
    terms: &YearTerms,
    history: &[CaseStay],
    year: &[CaseStay],
    scheme: &crate::drg::Scheme,
) -> Result<YearOutcome, DomainError> {
    let years = terms.history()?;
    let offset = 3 - years.len();
    let weighted: Vec<HistoricalStay> = history
        .iter()
        .filter_map(|s| {
            let i = years.iter().position(|y| *y == s.year)?;
            Some(HistoricalStay { stay: s.dip_stay(), year_index: (offset + i) as u8 })
        })
        .collect();
    if weighted.is_empty() {
        return Err(DomainError::field(
            "history_years",
            "dip.history.empty",
            format!("no stays in the history years {years:?}: the catalogue needs history"),
        ));
    }
    let catalogue = build_catalogue(&weighted, &terms.params)?;
    let drg_history: Vec<(String, String, i64)> = history
        .iter()
        .filter(|s| years.contains(&s.year))
        .filter_map(|s| scheme.group(&s.grouping).drg.map(|d| (d, s.facility_id.clone(), s.cost_fen)))
        .collect();
    // No grouped history (or a grouped history that costs nothing): no weights, no DRG payment.
    let table = crate::drg::weights::weights(&drg_history, &terms.drg.weights).ok();
    let mut stays: Vec<StayResult> =
        year.iter().map(|s| stay_result(&catalogue, terms, table.as_ref(), scheme, s)).collect();
    let total: i64 = stays.iter().filter_map(|s| s.dip.as_ref()).map(|d| d.score_e4).sum();
    let value = point_value(terms.fund_available_fen, terms.reimbursement_ratio_bp, total)?;
    let weight_sum_e4: i64 = stays.iter().filter_map(|s| s.drg_weight_e4).sum();
    // without weights there is nothing to pay by DRG, whatever the terms' rate
    let base_rate_fen = table.as_ref().and_then(|_| {
        terms
            .drg
            .base_rate_fen
            .or_else(|| neutral_base_rate(terms.fund_available_fen, terms.reimbursement_ratio_bp, weight_sum_e4))
    });
    if let Some(rate) = base_rate_fen {
        for s in &mut stays {
            s.drg_payment_fen = s.drg_weight_e4.map(|w| crate::drg::weights::payment(w, rate));
        }
    }
    let hospitals = positions(year, &stays, &value, base_rate_fen.is_some());
    Ok(YearOutcome { catalogue, value, stays, hospitals, drg: DrgOutcome { table, weight_sum_e4, base_rate_fen } })
}

fn stay_result(
    catalogue: &Catalogue,
    terms: &YearTerms,
    table: Option<&crate::drg::weights::WeightTable>,
    scheme: &crate::drg::Scheme,
    s: &CaseStay,
) -> StayResult {
    let (dip, dip_refusal) = match score_stay(catalogue, &s.dip_stay(), terms.coefficient(&s.facility_id)) {
        Ok(score) => (Some(score), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let g = scheme.group(&s.grouping);
    StayResult {
        id: s.id.clone(),
        facility_id: s.facility_id.clone(),
        cost_fen: s.cost_fen,
        dip,
        dip_refusal,
        drg_status: g.status.outcome_key().to_owned(),
        drg_weight_e4: g.drg.as_deref().and_then(|d| table?.weight_e4(d)),
        drg_payment_fen: None,
        mdc: g.mdc,
        adrg: g.adrg,
        drg: g.drg,
        drg_trace: g.trace,
    }
}

fn positions(year: &[CaseStay], stays: &[StayResult], value: &PointValue, drg_paid: bool) -> Vec<HospitalPosition> {
    let mut by: std::collections::BTreeMap<&str, HospitalPosition> = std::collections::BTreeMap::new();
    for (s, r) in year.iter().zip(stays) {
        let h = by.entry(&s.facility_id).or_default();
        h.stays += 1;
        h.patients_paid_fen += s.patient_paid_fen;
        match &r.dip {
            Some(d) => {
                h.points_e4 += d.score_e4;
                h.outliers_low += u64::from(d.outlier == Outlier::Low);
                h.outliers_high += u64::from(d.outlier == Outlier::High);
                h.expert_review += u64::from(d.expert_review);
            }
            None => h.unscored += 1,
        }
        h.drg_grouped += u64::from(r.drg.is_some());
        if let Some(w) = r.drg_weight_e4 {
            h.drg_weight_sum_e4 += w;
            h.drg_weighted += 1;
        }
        if drg_paid {
            *h.drg_gross_fen.get_or_insert(0) += r.drg_payment_fen.unwrap_or(0);
        }
    }
    by.into_iter()
        .map(|(id, mut h)| {
            h.facility_id = id.to_owned();
            h.gross_fen = value.amount_fen(h.points_e4);
            h.payment_fen = h.gross_fen - h.patients_paid_fen;
            h.cmi_e4 = (h.drg_weighted > 0)
                .then(|| to_i64(div_round(i128::from(h.drg_weight_sum_e4), i128::from(h.drg_weighted))));
            h.drg_payment_fen = h.drg_gross_fen.map(|g| g - h.patients_paid_fen);
            h
        })
        .collect()
}

#[cfg(test)]
mod year_tests {
    use super::*;

    fn stay(id: &str, facility: &str, year: i32, dx: &str, cost_fen: i64, paid: i64) -> CaseStay {
        CaseStay {
            id: id.into(),
            region_key: "511621".into(),
            facility_id: facility.into(),
            year,
            grouping: crate::drg::Stay { sex: 1, age: Some(50), diagnoses: vec![dx.into()], ..Default::default() },
            cost_fen,
            patient_paid_fen: paid,
        }
    }

    fn terms(history: Vec<i32>) -> YearTerms {
        YearTerms {
            year: 2025,
            history_years: history,
            params: DipParameters { core_threshold: 2, ..DipParameters::default() },
            fund_available_fen: 1_450_000,
            reimbursement_ratio_bp: 10_000,
            facility_coefficients_bp: [("H1".to_owned(), 12_000)].into_iter().collect(),
            drg: DrgTerms::default(),
        }
    }

    #[test]
    fn a_year_is_settled_from_its_history_years_only() -> Result<(), DomainError> {
        let scheme = crate::drg::sample_scheme().map_err(|e| DomainError::field("scheme", "scheme", e.to_string()))?;
        // history 2024: J18.900 at 300,000 and 500,000 → core packet, mean 400,000 = the mean of
        // all → 100 points. The 2023 stay (9,000,000) is not a history year and changes nothing.
        let history = [
            stay("a", "H1", 2024, "J18.900", 300_000, 0),
            stay("b", "H1", 2024, "J18.900", 500_000, 0),
            stay("c", "H1", 2023, "J18.900", 9_000_000, 0),
        ];
        // 2025: H1 400,000 → 100 points × coefficient 1.2 = 120; H2 100,000 → 0.25 of the mean,
        // a low outlier: 100 × 0.25 = 25 points; H2 I63.900 → no packet. Σ 145 points;
        // 1,450,000 fen at 100 % → 10,000 fen a point: H1 1,200,000; H2 250,000 − 50,000 paid.
        let year = [
            stay("y1", "H1", 2025, "J18.900", 400_000, 0),
            stay("y2", "H2", 2025, "J18.900", 100_000, 50_000),
            stay("y3", "H2", 2025, "I63.900", 600_000, 0),
        ];
        let out = settle_year(&terms(vec![2024]), &history, &year, &scheme)?;
        assert_eq!(out.catalogue.total_cases, 2);
        assert_eq!(out.value.total_points_e4, 1_450_000);
        assert_eq!(out.value.fen_per_point_e4(), 100_000_000);
        let s: Vec<(Option<i64>, Option<Outlier>)> =
            out.stays.iter().map(|s| (s.dip.as_ref().map(|d| d.score_e4), s.dip.as_ref().map(|d| d.outlier))).collect();
        assert_eq!(
            s,
            vec![(Some(1_200_000), Some(Outlier::Normal)), (Some(250_000), Some(Outlier::Low)), (None, None)]
        );
        assert!(out.stays[2].dip_refusal.is_some());
        let h: Vec<(&str, i64, i64, u64)> =
            out.hospitals.iter().map(|h| (h.facility_id.as_str(), h.gross_fen, h.payment_fen, h.unscored)).collect();
        assert_eq!(h, vec![("H1", 1_200_000, 1_200_000, 0), ("H2", 250_000, 200_000, 1)]);
        // ES25 (J18.900 without CC) is the only DRG of the history: weight 1.0 (its mean is the
        // overall mean); H2's I63.900 groups to BR25, which has no weight, so H2's CMI is ES25's.
        assert_eq!(out.hospitals[1].cmi_e4, Some(10_000));
        assert_eq!(out.stays[2].drg.as_deref(), Some("BR25"));
        // DRG payment: y1 and y2 weigh 1.0, y3 none → Σ 2.0; the budget-neutral base rate is
        // (1,450,000 ÷ 100 %) ÷ 2.0 = 725,000 fen; each ES25 stay is paid 725,000. H1 725,000;
        // H2 725,000 − 50,000 its patients paid = 675,000.
        assert_eq!((out.drg.weight_sum_e4, out.drg.base_rate_fen), (20_000, Some(725_000)));
        let pay: Vec<Option<i64>> = out.stays.iter().map(|s| s.drg_payment_fen).collect();
        assert_eq!(pay, vec![Some(725_000), Some(725_000), None]);
        let h: Vec<(Option<i64>, Option<i64>, u64)> =
            out.hospitals.iter().map(|h| (h.drg_gross_fen, h.drg_payment_fen, h.drg_weighted)).collect();
        assert_eq!(h, vec![(Some(725_000), Some(725_000), 1), (Some(725_000), Some(675_000), 1)]);
        // a base rate given as data wins: 1.0 × 600,001 fen
        let mut t = terms(vec![2024]);
        t.drg.base_rate_fen = Some(600_001);
        let out = settle_year(&t, &history, &year, &scheme)?;
        assert_eq!(out.drg.base_rate_fen, Some(600_001));
        assert_eq!(out.hospitals[1].drg_payment_fen, Some(550_001));
        // the rounding of the default: 1,000 fen over 3 × 1.0 → 333.33… → 333 fen; 2,000 over
        // 3 → 666.67 → 667; half-up at the half: 1 fen ÷ 2.0 = 0.5 → 1
        assert_eq!(neutral_base_rate(1_000, 10_000, 30_000), Some(333));
        assert_eq!(neutral_base_rate(2_000, 10_000, 30_000), Some(667));
        assert_eq!(neutral_base_rate(1, 10_000, 20_000), Some(1));
        assert_eq!(neutral_base_rate(1_000, 10_000, 0), None);
        // a history the scheme cannot group (A00.000 enters no MDC of the sample): no weights,
        // so no DRG payment even with a base rate given
        let history = [stay("a", "H1", 2024, "A00.000", 300_000, 0)];
        let year = [stay("y1", "H1", 2025, "A00.000", 300_000, 0)];
        let mut t = terms(vec![2024]);
        t.drg.base_rate_fen = Some(600_001);
        let out = settle_year(&t, &history, &year, &scheme)?;
        assert_eq!((out.drg.table.is_none(), out.drg.base_rate_fen), (true, None));
        assert_eq!((out.hospitals[0].drg_payment_fen, out.hospitals[0].cmi_e4), (None, None));
        Ok(())
    }

    #[test]
    fn a_year_without_history_or_with_bad_terms_is_refused() {
        let scheme = crate::drg::sample_scheme().ok();
        let Some(scheme) = scheme else { panic!("the sample scheme loads") };
        let year = [stay("y1", "H1", 2025, "J18.900", 400_000, 0)];
        let e = settle_year(&terms(vec![2022]), &year, &year, &scheme).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("catalogue needs history"), "{e}");
        let mut t = terms(vec![2024, 2023]);
        assert!(t.history().is_err(), "history years must ascend");
        t.history_years = vec![2026];
        assert!(t.history().is_err(), "no history after the year");
        let mut t = terms(vec![2024]);
        t.facility_coefficients_bp.insert("H2".into(), 0);
        assert!(t.history().is_err(), "a zero coefficient");
        let mut t = terms(vec![2024]);
        t.drg.base_rate_fen = Some(0);
        let e = t.history().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("base rate"), "{e}");
        let mut t = terms(vec![2024]);
        t.drg.weights.high_ratio_bp = 5_000;
        assert!(t.history().is_err(), "a high trimming ratio below 1×");
        assert_eq!(terms(vec![]).history().ok(), Some(vec![2022, 2023, 2024]), "default: the three years before");
    }
}
