//! The year's referrals (issue 4, domain.md M3/M4/M5), drawn from a resident's year of care
//! and made through the domain: `referral::request`, then `referral::apply` step by step with
//! the party and the facilities of each step, so that every generated referral, event,
//! follow-up task and filing obeys the rules a referral made through the API obeys.
//!
//! # Rates and times (assumptions)
//!
//! There is no national register of referrals per resident; the rates are assumptions that
//! give a county of 300,000 on the order of ten thousand upward and a few thousand downward
//! referrals a year, upward several times downward, the shape county medical communities
//! report. They are constants so that the tests can hold the generator to them.
//!
//! - **Upward** (上转): a stay at a county or city hospital gets a referral from the
//!   resident's township health centre (75%) or village clinic (25%) with probability
//!   [`UPWARD_SHARE`]; a stay outside the city (Chengdu, Chongqing) with [`OUTSIDE_SHARE`]
//!   (higher, because out of the insured region only a referral with its filing gets the
//!   registered rate), sent by the county people's hospital's referral centre (60%) or the
//!   township. The referral starts at a grassroots visit in the 14 days before the stay, or at
//!   a visit added 1–3 days before it. 25% are urgent. 15% of grassroots referrals that end
//!   at the city hospital were first sent to the county hospital, which redirected them.
//! - **Green channel** (绿色通道): stays at a county or city hospital for stroke (I63.900),
//!   acute myocardial infarction (I21.900, chest pain) or hip fracture (S72.000, trauma), and
//!   a share of births at the maternal and child hospital (critical maternal: severe
//!   pre-eclampsia or placenta praevia with haemorrhage), with the shares of
//!   [`GREEN_SHARES`] and [`CRITICAL_MATERNAL_SHARE`], come as emergencies from the township
//!   (85%) or village (15%), where the first medical contact is an emergency visit. Times:
//!   request 5–40 min after first contact; acknowledged 1–9 min later, inside the default
//!   10 minutes, except that 25% of those bound for the city hospital were first sent to
//!   the county hospital, not acknowledged in time and escalated by the deadline sweeper;
//!   departure 3–30 min after acceptance; door = departure + the domain's road travel time
//!   ([`referral::travel_minutes`]), and the door is the stay's start. Stroke: door-to-CT
//!   median 20 min; 40% thrombolysed, door-to-needle median 52 min at the county hospital
//!   and 45 min at the city hospital (national stroke-centre target ≤ 60 min; county
//!   hospitals' medians taken as 45–60 min). Chest pain (targets of the chest-pain centre
//!   standard: first ECG ≤ 10 min, door-to-needle ≤ 30, door-to-balloon ≤ 90): door-to-ECG
//!   median 5 min; at the county hospital 50% thrombolysis (median 38 min) and 35% primary
//!   PCI (median 88 min); at the city hospital 80% PCI (median 78 min). Trauma: door-to-CT
//!   median 25 min. Intervals are log-normal around their medians.
//! - **Out of county / province**: the Chengdu hospital is out of the county in the same
//!   province, the Chongqing one out of the province; the receiver's acceptance produces
//!   the insurance filing (备案) because its insurance region differs from the patient's.
//! - **Downward** (下转): [`DOWNWARD_SHARE`] of stays at a county or city hospital that ended
//!   a day or more before the county's today, to the resident's township (80%) or village
//!   clinic (20%), requested on the day of discharge with the discharge summary and a
//!   follow-up plan by diagnosis (e.g. blood pressure in 7 days, review in 30). The receiver
//!   accepts within 1–30 hours (which creates the follow-up tasks), schedules the first
//!   visit 1–3 days later, the patient arrives and the referral completes. Tasks due before
//!   the county's today are done with probability [`FOLLOW_UP_DONE`], the rest stay open.
//! - **Endings**: of non-emergency upward referrals 2% expire (nobody answers in time; the
//!   sweeper expires them 15 s after the deadline), 2% are rejected and 3% cancelled by the
//!   sender; of downward ones 3% expire unanswered, 2% expire after a no-show and 1% are
//!   cancelled. What would happen after the county's today does not: such referrals stay
//!   open (requested, accepted, scheduled or arrived).
//!
//! The acting users are stand-ins, one per facility ([`staff_user_id`]): the generator has
//! no staff register.

use std::cell::RefCell;

use tiercare_domain::encounter::{Encounter, EncounterClass, NewEncounter};
use tiercare_domain::facility::{EmergencyCentre, Facility, Tier};
use tiercare_domain::filing::Filing;
use tiercare_domain::identity::Sex;
use tiercare_domain::referral::{
    self, Command, Context, FollowUpItem, FollowUpTask, NewReferral, Party, Referral, ReferralEvent, Timepoint,
    Urgency, china_date,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::care::{CENTRE_STAYS, at};
use crate::{County, Resident, Rng, uuid_v7, year_start_ms};

/// Share of stays at a county or city hospital that come with an upward referral.
pub const UPWARD_SHARE: f64 = 0.30;
/// Share of stays at a hospital outside the city that come with a referral.
pub const OUTSIDE_SHARE: f64 = 0.60;
/// Share of stays at a county or city hospital followed by a downward referral.
pub const DOWNWARD_SHARE: f64 = 0.12;
/// Share of centre-treated stays (county or city hospital) that came by the green channel.
pub const GREEN_SHARES: [(&str, EmergencyCentre, f64); 3] = [
    ("I63.900", EmergencyCentre::Stroke, 0.30),
    ("I21.900", EmergencyCentre::ChestPain, 0.50),
    ("S72.000", EmergencyCentre::Trauma, 0.20),
];
/// Share of births at the maternal and child hospital that came as critical maternal cases.
pub const CRITICAL_MATERNAL_SHARE: f64 = 0.05;
/// Share of follow-up tasks due before the county's today that were done.
pub const FOLLOW_UP_DONE: f64 = 0.85;

/// A referral with its whole history, as the store's bulk import takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedReferral {
    pub referral: Referral,
    /// Oldest first; versions 1..=referral.version.
    pub events: Vec<ReferralEvent>,
    pub follow_ups: Vec<FollowUpTask>,
    pub filings: Vec<Filing>,
}

/// The stand-in user who acts for `facility_id` in generated referrals (deterministic, so
/// the same county gives the same ids; UUID version 8).
pub fn staff_user_id(facility_id: Uuid) -> Uuid {
    let mut b = facility_id.into_bytes();
    for (k, x) in b"tiercare-staff!!".iter().enumerate() {
        b[k] ^= x;
    }
    uuid::Builder::from_custom_bytes(b).into_uuid()
}

// The domain asks for ids through a plain `fn() -> Uuid`; the generator's ids must follow
// from the seed, so each step seeds this per-thread stream first.
thread_local! {
    static IDS: RefCell<(u64, Rng)> = RefCell::new((0, Rng::new(0)));
}

fn next_id() -> Uuid {
    IDS.with(|c| {
        let mut c = c.borrow_mut();
        let (ms, rng) = &mut *c;
        uuid_v7(*ms, rng)
    })
}

fn seed_ids(ms: u64, rng: &mut Rng) {
    let seed = rng.next_u64();
    IDS.with(|c| *c.borrow_mut() = (ms, Rng::new(seed)));
}

/// Minutes as a duration (to the second).
fn minutes(m: f64) -> Duration {
    Duration::seconds((m * 60.0).round() as i64)
}

/// A log-normal draw around `median` (spread `sigma` in log units), clamped to `lo..=hi`.
fn around(rng: &mut Rng, median: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
    let (u1, u2) = (1.0 - rng.unit(), rng.unit());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (median * (sigma * z).exp()).clamp(lo, hi)
}

/// The department that treats a diagnosis.
fn department(dx: &str) -> &'static str {
    match dx.get(..3).unwrap_or("") {
        "J18" | "J44" => "呼吸内科",
        "I63" => "神经内科",
        "I21" | "I25" | "I50" | "I10" => "心血管内科",
        "K80" | "K35" => "普外科",
        "S72" | "M17" => "骨科",
        "C34" => "肿瘤科",
        d if d.starts_with('O') => "产科",
        _ => "内科",
    }
}

/// The department at `f` for a diagnosis, if `f` has it (obstetrics at a general hospital
/// is 妇产科).
fn department_at(f: &Facility, dx: &str) -> Option<String> {
    let d = department(dx);
    let has = |d: &str| f.capabilities.departments.iter().any(|x| x == d);
    if has(d) {
        Some(d.to_owned())
    } else if d == "产科" && has("妇产科") {
        Some("妇产科".to_owned())
    } else {
        None
    }
}

fn grassroots_department(f: &Facility) -> Option<String> {
    match f.tier {
        Tier::Village => Some("全科".into()),
        Tier::Township => Some("全科医疗科".into()),
        _ => None,
    }
}

/// Why a stay needs the higher tier.
fn upward_reason(dx: &str) -> &'static str {
    match dx.get(..3).unwrap_or("") {
        "J18" => "肺炎，基层抗感染治疗效果欠佳，需住院治疗",
        "J44" => "慢阻肺急性加重，需上级医院住院治疗",
        "I63" => "急性脑梗死，需卒中专科诊治",
        "I21" => "急性心肌梗死，需胸痛中心救治",
        "I25" => "冠心病，需行冠脉造影评估",
        "I50" => "心力衰竭，需住院调整治疗",
        "K80" => "胆囊结石伴胆囊炎，需手术治疗",
        "K35" => "急性阑尾炎，需手术治疗",
        "S72" => "股骨颈骨折，需手术治疗",
        "M17" => "膝骨关节炎，需关节置换评估",
        "C34" => "肺部占位，需进一步明确诊断并治疗",
        _ => "病情超出本院诊疗能力，需上级医院诊治",
    }
}

/// What the receiver does after a downward referral, by diagnosis (what, days after acceptance).
fn follow_up_plan(stay: &Encounter) -> Vec<FollowUpItem> {
    let dx = stay.diagnoses.first().map(String::as_str).unwrap_or("");
    let items: &[(&str, u16)] = match dx.get(..3).unwrap_or("") {
        "I63" => &[("测血压，评估肢体功能和吞咽", 7), ("康复训练指导", 14), ("复查血脂、血糖，评估二级预防用药", 30)],
        "I21" | "I25" | "I50" => &[("测血压、心率，询问胸闷胸痛", 7), ("复查心电图，评估用药依从性", 30)],
        "K80" | "K35" | "S72" | "M17" => &[("伤口检查、换药", 7), ("功能锻炼指导", 14), ("门诊复查", 30)],
        "J18" | "J44" => &[("测体温、血氧，观察咳嗽咳痰", 7), ("复诊评估用药", 30)],
        "C34" => &[("随访症状与营养状况", 14), ("复诊，按上级医院方案复查", 30)],
        d if d.starts_with('O') => &[("产后访视", 7), ("产后42天健康检查", 42)],
        _ => &[("测血压", 7), ("复诊", 30)],
    };
    let mut plan: Vec<FollowUpItem> =
        items.iter().map(|(what, days)| FollowUpItem { what: (*what).to_owned(), due_in_days: *days }).collect();
    if stay.diagnoses.iter().any(|d| d == "I10.x00") && !plan.iter().any(|p| p.what.starts_with("测血压")) {
        plan.insert(0, FollowUpItem { what: "测血压，调整降压药".into(), due_in_days: 7 });
    }
    if stay.diagnoses.iter().any(|d| d == "E11.900") {
        plan.push(FollowUpItem { what: "测空腹血糖".into(), due_in_days: 14 });
    }
    plan.sort_by_key(|p| p.due_in_days);
    plan
}

fn dx_name(code: &str) -> &'static str {
    tiercare_domain::codes::diagnosis_name(code).unwrap_or("")
}

/// A short clinical summary: age, sex, diagnoses. Never a name.
fn clinical_summary(r: &Resident, on: OffsetDateTime, diagnoses: &[String]) -> String {
    let sex = if r.patient.sex == Sex::Male { "男" } else { "女" };
    let names: Vec<&str> = diagnoses.iter().map(|d| dx_name(d)).filter(|n| !n.is_empty()).collect();
    format!("{}岁，{sex}。{}。", r.patient.age_on(china_date(on)), names.join("，"))
}

/// One resident's draw: the county, the resident, the streams, and the visits it adds.
struct Draw<'c> {
    county: &'c County,
    i: usize,
    r: &'c Resident,
    rng: Rng,
    today: OffsetDateTime,
    /// Encounters added (the visits referrals start from).
    added: Vec<Encounter>,
    /// Referrals so far (for their ids' time part).
    count: u64,
}

/// One referral being played through the domain.
struct Flow<'c> {
    county: &'c County,
    from: usize,
    to: usize,
    home: &'c str,
    today: OffsetDateTime,
    ms: u64,
    rng: Rng,
    referral: Referral,
    events: Vec<ReferralEvent>,
    follow_ups: Vec<FollowUpTask>,
    filings: Vec<Filing>,
    stopped: bool,
}

impl<'c> Flow<'c> {
    /// Apply one step at `at`, unless the flow has stopped or `at` is not before the
    /// county's today (then it stops: the referral stays as it is). Returns whether it applied.
    fn step(&mut self, party: Party, cmd: Command, at: OffsetDateTime) -> bool {
        self.step_to(party, cmd, at, None)
    }

    fn step_to(&mut self, party: Party, cmd: Command, at: OffsetDateTime, new_receiver: Option<usize>) -> bool {
        if self.stopped || at >= self.today {
            self.stopped = true;
            return false;
        }
        seed_ids(self.ms, &mut self.rng);
        let f = &self.county.facilities;
        let user_id = match party {
            Party::Sender => Some(staff_user_id(f[self.from].id)),
            Party::Receiver => Some(staff_user_id(f[self.to].id)),
            Party::System => None,
        };
        let ctx = Context {
            now: at,
            party,
            user_id,
            sender: &f[self.from],
            receiver: &f[self.to],
            new_receiver: new_receiver.map(|k| &f[k]),
            home_region: self.home,
            new_id: next_id,
        };
        let change =
            referral::apply(&self.referral, &cmd, ctx).expect("generated referral steps follow the referral rules");
        if let Some(k) = new_receiver {
            self.to = k;
        }
        self.referral = change.referral;
        self.events.push(change.event);
        self.follow_ups.extend(change.follow_ups);
        self.filings.extend(change.filing);
        true
    }

    /// Record a clock time (sender or receiver side, as the timepoint says), a minute or
    /// two after it happened.
    fn timepoint(&mut self, tp: Timepoint, at: OffsetDateTime) -> bool {
        let delay = minutes(1.0 + self.rng.unit() * 2.0);
        let party = if tp.is_sender_side() { Party::Sender } else { Party::Receiver };
        // the history stays in time order
        let recorded = self.events.last().map_or(at + delay, |e| (at + delay).max(e.at));
        self.step(party, Command::RecordTimepoint { timepoint: tp, at }, recorded)
    }

    /// The deadline sweeper's step, 15 s after the deadline.
    fn expire(&mut self) -> bool {
        match self.referral.due_at {
            Some(due) => self.step(Party::System, Command::Expire, due + Duration::seconds(15)),
            None => false,
        }
    }

    fn finish(self) -> GeneratedReferral {
        GeneratedReferral {
            referral: self.referral,
            events: self.events,
            follow_ups: self.follow_ups,
            filings: self.filings,
        }
    }
}

impl<'c> Draw<'c> {
    /// Start a referral through `referral::request`; `None` when it would be requested at or
    /// after the county's today.
    fn request(&mut self, input: NewReferral, from: usize, to: usize, at: OffsetDateTime) -> Option<Flow<'c>> {
        if at >= self.today {
            return None;
        }
        self.count += 1;
        let ms = year_start_ms(self.county.config.year) + (self.i as u64) * 16 + self.count;
        let mut rng = self.rng.fork(self.count);
        let id = uuid_v7(ms, &mut rng);
        let f = &self.county.facilities;
        let home = self.r.enrolment.insured_region.as_str();
        let change = referral::request(
            input,
            id,
            self.r.patient.region_key.clone(),
            staff_user_id(f[from].id),
            &f[from],
            &f[to],
            home,
            at,
        )
        .expect("generated referrals follow the referral rules");
        Some(Flow {
            county: self.county,
            from,
            to,
            home,
            today: self.today,
            ms,
            rng,
            referral: change.referral,
            events: vec![change.event],
            follow_ups: Vec::new(),
            filings: Vec::new(),
            stopped: false,
        })
    }

    /// Add a visit (through the encounter rules) that a referral starts from.
    fn add_visit(
        &mut self,
        facility: usize,
        class: EncounterClass,
        started: OffsetDateTime,
        ended: OffsetDateTime,
        diagnoses: Vec<String>,
    ) -> Encounter {
        let f = &self.county.facilities[facility];
        let yuan = match f.tier {
            Tier::Village => 30 + self.rng.below(60),
            Tier::Township => 80 + self.rng.below(220),
            _ => 150 + self.rng.below(350),
        };
        let department = grassroots_department(f).or_else(|| diagnoses.first().and_then(|d| department_at(f, d)));
        let ms = year_start_ms(self.county.config.year) + (self.i as u64) * 64 + 48 + self.added.len() as u64;
        let e = NewEncounter {
            patient_id: self.r.patient.id,
            facility_id: f.id,
            department,
            practitioner_id: None,
            class,
            started_at: started,
            ended_at: Some(ended),
            diagnoses,
            procedures: vec![],
            total_cost_fen: yuan as i64 * 100,
        }
        .validate(uuid_v7(ms, &mut self.rng), self.r.patient.region_key.clone(), self.today)
        .expect("generated encounters follow the encounter rules");
        self.added.push(e.clone());
        e
    }

    /// The grassroots sender for a resident: township (share `township`) or village clinic.
    fn grassroots(&mut self, township: f64) -> usize {
        if self.rng.chance(township) { self.r.township } else { self.r.village }
    }

    /// Upward referral ahead of a planned stay at facility `to`.
    fn upward(&mut self, encounters: &[Encounter], stay: &Encounter, to: usize) -> Option<GeneratedReferral> {
        let county = self.county;
        let outside = county.outside.contains(&to);
        let from = if outside && self.rng.chance(0.6) { county.county_hospitals[0] } else { self.grassroots(0.75) };
        let fac = &county.facilities;
        // the visit it starts from: a recent one at the sender, or one added 1–3 days before
        let start = stay.started_at;
        let recent = encounters
            .iter()
            .filter(|e| {
                e.facility_id == fac[from].id
                    && e.class == EncounterClass::Outpatient
                    && e.started_at >= start - Duration::days(14)
                    && e.ended_at.unwrap_or(e.started_at) <= start - Duration::hours(2)
            })
            .max_by_key(|e| e.started_at)
            .cloned();
        let visit = match recent {
            Some(v) => v,
            None => {
                let day = china_date(start) - Duration::days(1 + self.rng.below(3) as i64);
                let t = at(day, &mut self.rng);
                let end = t + minutes(10.0 + self.rng.unit() * 30.0);
                self.add_visit(from, EncounterClass::Outpatient, t, end, vec![stay.diagnoses[0].clone()])
            }
        };
        let requested = visit.ended_at.unwrap_or(visit.started_at);
        let dx = stay.diagnoses[0].as_str();
        let urgency = if self.rng.chance(0.25) { Urgency::Urgent } else { Urgency::Routine };
        // 15% of grassroots referrals to the city hospital went to the county hospital first
        let redirected = to == county.city_hospital && fac[from].tier.is_grassroots() && self.rng.chance(0.15);
        let first = if redirected { county.county_hospitals[0] } else { to };
        let input = NewReferral {
            patient_id: self.r.patient.id,
            from_facility_id: Some(fac[from].id),
            from_department: grassroots_department(&fac[from]).or_else(|| department_at(&fac[from], dx)),
            to_facility_id: fac[first].id,
            to_department: department_at(&fac[first], dx),
            urgency,
            green_channel: None,
            reason: upward_reason(dx).into(),
            diagnoses: stay.diagnoses.clone(),
            clinical_summary: clinical_summary(self.r, requested, &stay.diagnoses),
            discharge_summary: None,
            follow_up_plan: vec![],
            encounter_ids: vec![visit.id],
        };
        let mut flow = self.request(input, from, first, requested)?;
        // time left before the stay, and the receiver's answer deadline
        let lead = (start - requested).as_seconds_f64() / 60.0;
        let cap = if urgency == Urgency::Routine { 40.0 * 60.0 } else { 3.5 * 60.0 };
        let budget = (lead - 30.0).min(cap).max(10.0);
        let answer = |rng: &mut Rng, share: f64| {
            let median = if urgency == Urgency::Routine { 180.0 } else { 40.0 };
            minutes(around(rng, median, 0.8, 5.0, (budget * share).max(5.0)))
        };
        let ending = flow.rng.unit();
        if ending < 0.02 {
            flow.expire();
        } else if ending < 0.04 {
            let why = *flow.rng.pick(&["本院该专科床位已满，请转其他医院", "病情稳定，建议在基层继续治疗观察"]);
            let t = requested + answer(&mut flow.rng, 0.5);
            flow.step(Party::Receiver, Command::Reject { reason: why.into() }, t);
        } else if ending < 0.07 {
            let why = *flow.rng.pick(&["患者及家属决定自行前往就诊", "患者及家属放弃转诊"]);
            let t = requested + answer(&mut flow.rng, 0.5);
            flow.step(Party::Sender, Command::Cancel { reason: why.into() }, t);
        } else {
            let mut t = requested + answer(&mut flow.rng, 0.4);
            if redirected {
                let why = "本院无相应专科诊疗条件，转上级医院";
                flow.step_to(
                    Party::Receiver,
                    Command::Redirect { to_facility_id: fac[to].id, reason: why.into() },
                    t,
                    Some(to),
                );
                t += answer(&mut flow.rng, 0.3);
            }
            flow.step(Party::Receiver, Command::Accept { note: None }, t);
            let scheduled_on = t + minutes(2.0 + flow.rng.unit() * 20.0);
            let department = department_at(&fac[to], dx);
            flow.step(
                Party::Receiver,
                Command::Schedule { at: start, department, note: None },
                scheduled_on.min(start),
            );
            flow.step(Party::Receiver, Command::Arrive, start);
            if let Some(end) = stay.ended_at {
                let days = (end - start).whole_days();
                let outcome = format!("住院{days}天，经治疗好转出院");
                flow.step(Party::Receiver, Command::Complete { outcome }, end);
            }
        }
        Some(flow.finish())
    }

    /// A green-channel emergency that ended in `stay` at facility `to` (which has `centre`).
    fn green(&mut self, stay: &Encounter, to: usize, centre: EmergencyCentre) -> Option<GeneratedReferral> {
        let county = self.county;
        let fac = &county.facilities;
        let from = self.grassroots(0.85);
        // escalation: the county hospital was asked first and did not acknowledge in time; the
        // sweeper sends it to the next capable facility, which must be where the stay is
        let county_h = county.county_hospitals[0];
        let escalated = to == county.city_hospital
            && fac[county_h].capabilities.emergency_centres.contains(&centre)
            && self.rng.chance(0.25)
            && referral::propose_receivers(&fac[from], Some(centre), fac, &[fac[county_h].id])
                .first()
                .is_some_and(|p| p.facility_id == fac[to].id);
        let first = if escalated { county_h } else { to };
        // times relative to first medical contact, in minutes
        let rng = &mut self.rng;
        let request = around(rng, 15.0, 0.4, 5.0, 40.0);
        let escalate = request + 10.0 + 0.25;
        let ack = if escalated {
            escalate + around(rng, 2.0, 0.5, 0.5, 8.0)
        } else {
            request + around(rng, 3.0, 0.5, 1.0, 9.0)
        };
        let accept = ack + around(rng, 2.0, 0.5, 0.5, 8.0);
        let depart = accept + around(rng, 10.0, 0.4, 3.0, 30.0);
        let travel = referral::travel_minutes(&fac[from], &fac[to]).unwrap_or(30).max(5) as f64;
        let door_after = depart + travel;
        let door = stay.started_at;
        let fmc = door - minutes(door_after);
        let t = |m: f64| fmc + minutes(m);
        let (diagnoses, reason) = match centre {
            EmergencyCentre::CriticalMaternal => {
                let (dx, why) = *rng.pick(&[
                    ("O14.100", "重度子痫前期，需危重孕产妇救治中心救治"),
                    ("O44.100", "前置胎盘伴出血，需危重孕产妇救治中心救治"),
                ]);
                (vec![dx.to_owned()], why)
            }
            _ => (stay.diagnoses.clone(), upward_reason(&stay.diagnoses[0])),
        };
        let visit = self.add_visit(from, EncounterClass::Emergency, fmc, t(depart), diagnoses.clone());
        let input = NewReferral {
            patient_id: self.r.patient.id,
            from_facility_id: Some(fac[from].id),
            from_department: grassroots_department(&fac[from]),
            to_facility_id: fac[first].id,
            to_department: None,
            urgency: Urgency::Emergency,
            green_channel: Some(centre),
            reason: reason.into(),
            diagnoses: diagnoses.clone(),
            clinical_summary: clinical_summary(self.r, fmc, &diagnoses),
            discharge_summary: None,
            follow_up_plan: vec![],
            encounter_ids: vec![visit.id],
        };
        let mut flow = self.request(input, from, first, t(request))?;
        flow.step(
            Party::Sender,
            Command::RecordTimepoint { timepoint: Timepoint::FirstMedicalContact, at: fmc },
            t(request) + Duration::seconds(30),
        );
        if escalated {
            flow.step_to(Party::System, Command::Escalate { to_facility_id: Some(fac[to].id) }, t(escalate), Some(to));
        }
        flow.step(Party::Receiver, Command::Acknowledge, t(ack));
        flow.step(Party::Receiver, Command::Accept { note: None }, t(accept));
        flow.timepoint(Timepoint::Departed, t(depart));
        flow.step(Party::Receiver, Command::Arrive, door);
        // the receiver's clock times, in the order they happen
        let county_level = fac[to].tier == Tier::County;
        let rng = &mut flow.rng;
        let mut times: Vec<(Timepoint, f64)> = Vec::new();
        match centre {
            EmergencyCentre::Stroke => {
                let ct = around(rng, 20.0, 0.35, 6.0, 60.0);
                times.push((Timepoint::Ct, ct));
                if rng.chance(0.4) {
                    let median = if county_level { 52.0 } else { 45.0 };
                    times.push((Timepoint::Needle, around(rng, median, 0.35, ct + 5.0, 180.0)));
                }
            }
            EmergencyCentre::ChestPain => {
                times.push((Timepoint::Ecg, around(rng, 5.0, 0.5, 1.0, 30.0)));
                let u = rng.unit();
                let (needle, balloon) = if county_level { (0.50, 0.35) } else { (0.10, 0.80) };
                if u < needle {
                    times.push((Timepoint::Needle, around(rng, 38.0, 0.35, 10.0, 150.0)));
                } else if u < needle + balloon {
                    let m = if county_level { 88.0 } else { 78.0 };
                    times.push((Timepoint::Balloon, around(rng, m, 0.3, 30.0, 240.0)));
                }
            }
            EmergencyCentre::Trauma => times.push((Timepoint::Ct, around(rng, 25.0, 0.4, 5.0, 90.0))),
            EmergencyCentre::CriticalMaternal | EmergencyCentre::CriticalNewborn => {}
        }
        times.sort_by(|a, b| a.1.total_cmp(&b.1));
        for (tp, m) in times {
            flow.timepoint(tp, door + minutes(m));
        }
        if let Some(end) = stay.ended_at {
            let days = (end - door).whole_days();
            flow.step(
                Party::Receiver,
                Command::Complete { outcome: format!("急诊收治入院，住院{days}天，好转出院") },
                end,
            );
        }
        Some(flow.finish())
    }

    /// Downward referral after `stay` at facility `from` (county or city hospital).
    fn downward(&mut self, stay: &Encounter, from: usize) -> Option<GeneratedReferral> {
        let county = self.county;
        let fac = &county.facilities;
        let end = stay.ended_at?;
        let to = self.grassroots(0.8);
        let dx = stay.diagnoses[0].as_str();
        let days = (end - stay.started_at).whole_days();
        let names: Vec<&str> = stay.diagnoses.iter().map(|d| dx_name(d)).filter(|n| !n.is_empty()).collect();
        let discharge = format!(
            "住院{days}天。出院诊断：{}。经治疗病情稳定，急性期已过，转回基层继续康复和随访。",
            names.join("，")
        );
        let requested = (end - minutes(30.0 + self.rng.unit() * 150.0)).max(stay.started_at);
        let input = NewReferral {
            patient_id: self.r.patient.id,
            from_facility_id: Some(fac[from].id),
            from_department: department_at(&fac[from], dx),
            to_facility_id: fac[to].id,
            to_department: grassroots_department(&fac[to]),
            urgency: Urgency::Routine,
            green_channel: None,
            reason: "急性期治疗结束，转回基层康复及随访管理".into(),
            diagnoses: stay.diagnoses.clone(),
            clinical_summary: clinical_summary(self.r, requested, &stay.diagnoses),
            discharge_summary: Some(discharge),
            follow_up_plan: follow_up_plan(stay),
            encounter_ids: vec![stay.id],
        };
        let mut flow = self.request(input, from, to, requested)?;
        let ending = flow.rng.unit();
        if ending < 0.03 {
            flow.expire();
        } else if ending < 0.04 {
            let t = requested + minutes(60.0 + flow.rng.unit() * 600.0);
            flow.step(Party::Sender, Command::Cancel { reason: "患者选择在上级医院继续康复".into() }, t);
        } else {
            let accepted = requested + minutes(60.0 + flow.rng.unit() * 29.0 * 60.0);
            if flow.step(Party::Receiver, Command::Accept { note: None }, accepted) {
                let day = china_date(accepted) + Duration::days(1 + flow.rng.below(3) as i64);
                let visit = at(day, &mut flow.rng);
                let scheduled_on = accepted + minutes(5.0 + flow.rng.unit() * 25.0);
                flow.step(Party::Receiver, Command::Schedule { at: visit, department: None, note: None }, scheduled_on);
                if ending < 0.06 {
                    flow.expire(); // the patient did not come
                } else {
                    let arrived = visit + minutes(flow.rng.unit() * 90.0 - 30.0);
                    flow.step(Party::Receiver, Command::Arrive, arrived);
                    let outcome = "已接收，纳入家庭医生签约随访管理".to_owned();
                    let done = arrived + minutes(20.0 + flow.rng.unit() * 40.0);
                    flow.step(Party::Receiver, Command::Complete { outcome }, done);
                }
            }
        }
        // follow-up tasks: done (on the due day, in clinic hours) or left open
        let today = china_date(self.today);
        let who = staff_user_id(fac[to].id);
        for task in &mut flow.follow_ups {
            if task.due_date < today && flow.rng.chance(FOLLOW_UP_DONE) {
                task.done_at = Some(at(task.due_date, &mut flow.rng));
                task.done_by = Some(who);
                task.note = Some(
                    (*flow.rng.pick(&["已随访，病情稳定", "已随访，已调整用药", "电话随访，患者恢复良好"])).to_owned(),
                );
            }
        }
        Some(flow.finish())
    }
}

/// Resident `i`'s referrals, drawn from the year's `encounters` (to which it adds the visits
/// referrals start from). `today` is the county's today.
pub(crate) fn draw(
    county: &County,
    i: usize,
    encounters: &mut Vec<Encounter>,
    today: OffsetDateTime,
) -> Vec<GeneratedReferral> {
    let r = &county.residents[i];
    let mut d = Draw {
        county,
        i,
        r,
        rng: Rng::new(county.config.seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0x5245_4645_5252_414C),
        today,
        added: Vec::new(),
        count: 0,
    };
    let mut stays: Vec<(Encounter, usize)> = encounters
        .iter()
        .filter(|e| e.class == EncounterClass::Inpatient)
        .filter_map(|e| {
            let k = [
                county.county_hospitals[0],
                county.county_hospitals[1],
                county.county_hospitals[2],
                county.city_hospital,
                county.outside[0],
                county.outside[1],
            ]
            .into_iter()
            .find(|k| county.facilities[*k].id == e.facility_id)?;
            Some((e.clone(), k))
        })
        .collect();
    stays.sort_by_key(|(e, _)| e.started_at);
    let mut out = Vec::new();
    for (stay, k) in &stays {
        let (stay, k) = (stay, *k);
        let f = &county.facilities[k];
        let dx = stay.diagnoses[0].as_str();
        let in_city = k != county.outside[0] && k != county.outside[1];
        let green = if !in_city {
            None
        } else if CENTRE_STAYS.contains(&dx) {
            GREEN_SHARES.iter().find(|(code, _, _)| *code == dx).map(|(_, c, p)| (*c, *p))
        } else if dx.starts_with('O') && k == county.county_hospitals[2] {
            Some((EmergencyCentre::CriticalMaternal, CRITICAL_MATERNAL_SHARE))
        } else {
            None
        };
        let green = green.filter(|(c, p)| f.capabilities.emergency_centres.contains(c) && d.rng.chance(*p));
        let made = match green {
            Some((centre, _)) => d.green(stay, k, centre),
            None if d.rng.chance(if in_city { UPWARD_SHARE } else { OUTSIDE_SHARE }) => d.upward(encounters, stay, k),
            None => None,
        };
        out.extend(made);
        let ended_early = stay.ended_at.is_some_and(|e| e <= today - Duration::days(1));
        if in_city && ended_early && d.rng.chance(DOWNWARD_SHARE) {
            out.extend(d.downward(stay, k));
        }
    }
    encounters.append(&mut d.added);
    out
}
