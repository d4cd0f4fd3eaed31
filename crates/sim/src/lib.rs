//! tiercare-sim: the synthetic county — our Synthea for tiered care.
//!
//! Deterministic from a seed: facilities of one county medical community (a county
//! hospital, a TCM hospital, a maternal and child hospital, 20 township health centres,
//! about one village clinic per thousand residents), a city hospital and two
//! out-of-province tertiary hospitals outside it; residents with the age and sex structure
//! of China's 2020 census, households, valid GB 11643 numbers, Chinese names, phones,
//! insurance enrolment and chronic conditions at published adult prevalence; a year of care
//! by tier; and the year's referrals (upward, green channel, out of province, downward with
//! follow-up tasks, see [`referrals`]). Every record is made through the domain rules
//! (`NewFacility::validate`, `NewPatient::validate`, `NewEncounter::validate`,
//! `referral::request` and `referral::apply`), the same as real traffic.
//!
//! Each resident's year is drawn from a stream seeded by the county seed and the resident's
//! index, so encounters and referrals can be generated lazily, in any order, without holding
//! them all.

mod live;
mod names;
pub mod referrals;
pub mod results;
mod rng;
pub mod settlements;
pub mod stays;

use std::collections::HashMap;

use tiercare_domain::encounter::Encounter;
use tiercare_domain::facility::{
    Alliance, Capabilities, Community, EmergencyCentre, Facility, GeoPoint, Grade, NewFacility, Tier,
};
use tiercare_domain::identity::{IdentityNumber, Sex};
use tiercare_domain::patient::{Enrolment, FilingStatus, NewEnrolment, NewPatient, Patient, Scheme};
use time::{Date, Duration, Month, OffsetDateTime, UtcOffset};
use uuid::Uuid;

pub use live::live_referrals;
pub use referrals::GeneratedReferral;
pub use rng::Rng;
pub use settlements::{GeneratedSettlement, Settler, YearSettlements};

/// 四川省广安市岳池县: the county the synthetic community serves.
pub const COUNTY_REGION: &str = "511621";
/// 广安市广安区: where the city hospital is.
pub const CITY_REGION: &str = "511602";
/// 成都市武侯区: the out-of-county hospital in the same province (四川大学华西医院).
pub const CHENGDU_REGION: &str = "510107";
/// 重庆市渝中区: the out-of-province hospital.
pub const CHONGQING_REGION: &str = "500103";
/// 岳池县 county seat (九龙街道), where the three county hospitals are.
pub const COUNTY_SEAT: GeoPoint = GeoPoint { lat: 30.537, lon: 106.440 };
/// Townships lie within this many km of the county seat, villages within
/// [`VILLAGE_RADIUS_KM`] of their township.
const TOWNSHIP_RADIUS_KM: f64 = 25.0;
const VILLAGE_RADIUS_KM: f64 = 5.0;
/// Residents per village clinic.
const RESIDENTS_PER_VILLAGE: usize = 1_000;
const TOWNSHIPS: usize = 20;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub seed: u64,
    pub residents: usize,
    /// The calendar year of care.
    pub year: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config { seed: 2026, residents: 300_000, year: 2025 }
    }
}

/// A resident with what the generator knows about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resident {
    pub patient: Patient,
    pub enrolment: Enrolment,
    pub hypertension: bool,
    pub diabetes: bool,
    /// Index into [`County::facilities`] of the village clinic and township centre.
    pub village: usize,
    pub township: usize,
    pub household: u32,
}

/// The generated county.
#[derive(Debug, Clone)]
pub struct County {
    pub config: Config,
    pub alliance: Alliance,
    pub community: Community,
    /// Community members first (county hospitals, township centres, village clinics),
    /// then the city hospital (广安) and two tertiary hospitals: one in Chengdu (out of the
    /// county, same province) and one in Chongqing (out of the province).
    pub facilities: Vec<Facility>,
    pub residents: Vec<Resident>,
    county_hospitals: [usize; 3],
    city_hospital: usize,
    outside: [usize; 2],
}

/// 2020 census (第七次全国人口普查) population by five-year age group, per mille, 0-4 … 85+.
pub const AGE_GROUPS_PER_MILLE: [u32; 18] = [54, 63, 59, 53, 54, 66, 88, 69, 66, 83, 86, 71, 52, 55, 37, 23, 15, 10];
/// Share of men (sex ratio 105.07 : 100).
pub const MALE_SHARE: f64 = 0.5124;

/// A deterministic UUIDv7: `ms` orders the keys, the rest comes from the stream.
fn uuid_v7(ms: u64, rng: &mut Rng) -> Uuid {
    let r = rng.next_u64().to_be_bytes();
    let r2 = rng.next_u64().to_be_bytes();
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&r);
    bytes[8..].copy_from_slice(&r2[..2]);
    uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid()
}

fn year_start_ms(year: i32) -> u64 {
    let d = Date::from_calendar_date(year, Month::January, 1).unwrap_or(Date::MIN);
    (d.midnight().assume_utc().unix_timestamp() as u64) * 1000
}

fn china() -> UtcOffset {
    UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC)
}

/// The point `north_km` north and `east_km` east of `p` (flat-earth approximation, fine
/// within a county).
fn offset_km(p: GeoPoint, north_km: f64, east_km: f64) -> GeoPoint {
    let lat = p.lat + north_km / 111.2;
    let lon = p.lon + east_km / (111.2 * p.lat.to_radians().cos());
    // four decimals: about 10 m, what a registry would hold
    GeoPoint { lat: (lat * 1e4).round() / 1e4, lon: (lon * 1e4).round() / 1e4 }
}

/// A point at a uniformly random place within `radius_km` of `p` (at least `min_km` away).
fn scatter(p: GeoPoint, min_km: f64, radius_km: f64, rng: &mut Rng) -> GeoPoint {
    let r = min_km + (radius_km - min_km) * rng.unit().sqrt();
    let a = rng.unit() * std::f64::consts::TAU;
    offset_km(p, r * a.sin(), r * a.cos())
}

impl County {
    /// Facilities and residents (encounters are drawn on demand, see [`County::encounters_of`]).
    pub fn generate(config: Config) -> County {
        let mut rng = Rng::new(config.seed);
        let mut id_rng = rng.fork(1);
        // locations from their own stream, so ids and residents do not depend on them
        let mut geo = Rng::new(config.seed ^ 0x06E0_5EED_0F1A_710C);
        let base_ms = year_start_ms(config.year) - 86_400_000 * 400;
        let alliance = Alliance {
            id: uuid_v7(base_ms, &mut id_rng),
            name: "广安市城市医疗集团".into(),
            region_code: "511600".into(),
        };
        let community = Community {
            id: uuid_v7(base_ms + 1, &mut id_rng),
            alliance_id: Some(alliance.id),
            name: "岳池县紧密型县域医共体".into(),
            region_code: COUNTY_REGION.into(),
            community_wide_read: true,
        };
        let mut facilities = Vec::new();
        let mut add = |code: String,
                       name: String,
                       tier: Tier,
                       grade: Grade,
                       region: &str,
                       community_id: Option<Uuid>,
                       caps: Capabilities,
                       location: GeoPoint,
                       ms: u64,
                       rng: &mut Rng| {
            let f = NewFacility {
                code,
                name,
                tier,
                grade,
                region_code: region.into(),
                insurance_region: if region.starts_with("5116") { COUNTY_REGION.into() } else { region.into() },
                community_id,
                capabilities: caps,
                location: Some(location),
                referral_policy: Default::default(),
            }
            .validate(uuid_v7(ms, rng))
            .expect("generated facilities follow the registry rules");
            facilities.push(f);
            facilities.len() - 1
        };
        let c = Some(community.id);
        let mut ms = base_ms + 10;
        let mut next_ms = || {
            ms += 1;
            ms
        };
        let depts = |d: &[&str]| d.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let county_hospitals = [
            add(
                "H51162100001".into(),
                "岳池县人民医院".into(),
                Tier::County,
                Grade::Level2A,
                COUNTY_REGION,
                c,
                Capabilities {
                    departments: depts(&[
                        "急诊科",
                        "心血管内科",
                        "神经内科",
                        "呼吸内科",
                        "普外科",
                        "骨科",
                        "妇产科",
                        "儿科",
                        "检验科",
                        "放射科",
                    ]),
                    beds: 1_200,
                    emergency_centres: vec![
                        EmergencyCentre::ChestPain,
                        EmergencyCentre::Stroke,
                        EmergencyCentre::Trauma,
                    ],
                },
                offset_km(COUNTY_SEAT, 0.3, 0.2),
                next_ms(),
                &mut id_rng,
            ),
            add(
                "H51162100002".into(),
                "岳池县中医医院".into(),
                Tier::County,
                Grade::Level2A,
                COUNTY_REGION,
                c,
                Capabilities {
                    departments: depts(&["急诊科", "中医内科", "针灸推拿科", "骨伤科", "康复科", "检验科", "放射科"]),
                    beds: 600,
                    emergency_centres: vec![],
                },
                offset_km(COUNTY_SEAT, -0.8, 0.6),
                next_ms(),
                &mut id_rng,
            ),
            add(
                "H51162100003".into(),
                "岳池县妇幼保健院".into(),
                Tier::County,
                Grade::Level2,
                COUNTY_REGION,
                c,
                Capabilities {
                    departments: depts(&["妇科", "产科", "儿科", "新生儿科", "检验科"]),
                    beds: 300,
                    emergency_centres: vec![EmergencyCentre::CriticalMaternal, EmergencyCentre::CriticalNewborn],
                },
                offset_km(COUNTY_SEAT, 0.5, -0.9),
                next_ms(),
                &mut id_rng,
            ),
        ];
        // 九龙 (the first) is the seat's own town; the others ring the seat at 8-25 km
        let township_at: Vec<GeoPoint> = (0..TOWNSHIPS)
            .map(|t| {
                if t == 0 {
                    scatter(COUNTY_SEAT, 1.0, 3.0, &mut geo)
                } else {
                    let a = (t - 1) as f64 / (TOWNSHIPS - 1) as f64 * std::f64::consts::TAU + (geo.unit() - 0.5) * 0.3;
                    let r = 8.0 + (TOWNSHIP_RADIUS_KM - 8.0) * geo.unit().sqrt();
                    offset_km(COUNTY_SEAT, r * a.sin(), r * a.cos())
                }
            })
            .collect();
        let townships: Vec<usize> = (0..TOWNSHIPS)
            .map(|t| {
                add(
                    format!("H511621{:05}", 100 + t),
                    format!("岳池县{}镇卫生院", names::TOWNS[t]),
                    Tier::Township,
                    Grade::Level1,
                    COUNTY_REGION,
                    c,
                    Capabilities {
                        departments: depts(&["全科医疗科", "中医科", "预防保健科", "检验科"]),
                        beds: 40 + (t as u32 % 5) * 10,
                        emergency_centres: vec![],
                    },
                    township_at[t],
                    next_ms(),
                    &mut id_rng,
                )
            })
            .collect();
        let n_villages = (config.residents / RESIDENTS_PER_VILLAGE).max(TOWNSHIPS);
        let villages: Vec<usize> = (0..n_villages)
            .map(|v| {
                let town = v % TOWNSHIPS;
                let name = format!("岳池县{}镇{}村卫生室", names::TOWNS[town], names::village_name(v / TOWNSHIPS));
                add(
                    format!("H511621{:05}", 1_000 + v),
                    name,
                    Tier::Village,
                    Grade::Ungraded,
                    COUNTY_REGION,
                    c,
                    Capabilities { departments: depts(&["全科"]), beds: 0, emergency_centres: vec![] },
                    scatter(township_at[town], 0.5, VILLAGE_RADIUS_KM, &mut geo),
                    next_ms(),
                    &mut id_rng,
                )
            })
            .collect();
        let all_centres = EmergencyCentre::ALL.to_vec();
        let city_hospital = add(
            "H51160200001".into(),
            "广安市人民医院".into(),
            Tier::City,
            Grade::Level3A,
            CITY_REGION,
            None,
            Capabilities {
                departments: depts(&[
                    "急诊科",
                    "心血管内科",
                    "神经内科",
                    "肿瘤科",
                    "胸外科",
                    "骨科",
                    "产科",
                    "新生儿科",
                ]),
                beds: 2_000,
                emergency_centres: all_centres.clone(),
            },
            GeoPoint { lat: 30.456, lon: 106.633 },
            next_ms(),
            &mut id_rng,
        );
        let outside = [
            add(
                "H50010300001".into(),
                "重庆医科大学附属第一医院".into(),
                Tier::Provincial,
                Grade::Level3A,
                CHONGQING_REGION,
                None,
                Capabilities {
                    departments: depts(&["心血管内科", "神经外科", "肿瘤科", "器官移植科"]),
                    beds: 3_500,
                    emergency_centres: all_centres.clone(),
                },
                GeoPoint { lat: 29.563, lon: 106.551 },
                next_ms(),
                &mut id_rng,
            ),
            add(
                "H51010700001".into(),
                "四川大学华西医院".into(),
                Tier::National,
                Grade::Level3A,
                CHENGDU_REGION,
                None,
                Capabilities {
                    departments: depts(&["心血管内科", "神经内科", "神经外科", "胸外科", "肿瘤科", "器官移植科"]),
                    beds: 4_300,
                    emergency_centres: all_centres,
                },
                GeoPoint { lat: 30.640, lon: 104.060 },
                next_ms(),
                &mut id_rng,
            ),
        ];

        let residents = generate_residents(&config, &mut rng.fork(2), &facilities, &villages, &townships);
        County { config, alliance, community, facilities, residents, county_hospitals, city_hospital, outside }
    }

    /// The facilities that belong to the community.
    pub fn community_facilities(&self) -> impl Iterator<Item = &Facility> {
        self.facilities.iter().filter(|f| f.community_id == Some(self.community.id))
    }

    /// Resident `i`'s year of care, in time order. Depends only on the seed and `i`.
    pub fn encounters_of(&self, i: usize) -> Vec<Encounter> {
        care::year_of_care(self, i).0
    }

    /// Resident `i`'s referrals of the year, each with its whole history, in the order they
    /// were requested. Depends only on the seed and `i`.
    pub fn referrals_of(&self, i: usize) -> Vec<GeneratedReferral> {
        care::year_of_care(self, i).1
    }

    /// Resident `i`'s encounters and referrals in one draw (what a loader wants).
    pub fn year_of(&self, i: usize) -> (Vec<Encounter>, Vec<GeneratedReferral>) {
        care::year_of_care(self, i)
    }

    /// The county's "today": the end of the simulated year (midnight UTC after 31 December).
    /// Nothing in the generated data happens after it; referrals still under way then are
    /// left open.
    pub fn today(&self) -> OffsetDateTime {
        Date::from_calendar_date(self.config.year + 1, Month::January, 1).unwrap_or(Date::MAX).midnight().assume_utc()
    }

    /// The county people's hospital (胸痛, 卒中 and 创伤 centres; the referral centre).
    pub fn county_hospital(&self) -> &Facility {
        &self.facilities[self.county_hospitals[0]]
    }

    /// Every encounter of the year, resident by resident.
    pub fn encounters(&self) -> impl Iterator<Item = Encounter> + '_ {
        (0..self.residents.len()).flat_map(|i| self.encounters_of(i))
    }
}

fn generate_residents(
    config: &Config,
    rng: &mut Rng,
    facilities: &[Facility],
    villages: &[usize],
    townships: &[usize],
) -> Vec<Resident> {
    let year_end = Date::from_calendar_date(config.year, Month::December, 31).unwrap_or(Date::MAX);
    let today = year_end;
    let weights: Vec<f64> = AGE_GROUPS_PER_MILLE.iter().map(|w| f64::from(*w)).collect();
    let mut sequences: HashMap<(Date, bool), u16> = HashMap::new();
    let mut residents = Vec::with_capacity(config.residents);
    let base_ms = year_start_ms(config.year) - 86_400_000 * 300;
    let mut household = 0u32;
    while residents.len() < config.residents {
        household += 1;
        let size = [1usize, 2, 3, 4, 5][rng.weighted(&[15.0, 30.0, 25.0, 18.0, 12.0])];
        let surname = names::surname(rng);
        let village_slot = rng.below(villages.len() as u64) as usize;
        let village = villages[village_slot];
        let township = townships[village_slot % townships.len()];
        let group = 1 + rng.below(12);
        let house = 1 + rng.below(80);
        for _ in 0..size.min(config.residents - residents.len()) {
            let group_idx = rng.weighted(&weights);
            let age =
                if group_idx == 17 { 85 + rng.below(15) as i32 } else { group_idx as i32 * 5 + rng.below(5) as i32 };
            let birth = year_end - Duration::days(i64::from(age) * 365 + i64::from(age / 4) + rng.below(365) as i64);
            let sex = if rng.chance(MALE_SHARE) { Sex::Male } else { Sex::Female };
            let counter = sequences.entry((birth, sex == Sex::Male)).or_insert(0);
            let seq = *counter * 2 + u16::from(sex == Sex::Male);
            *counter += 1;
            let id = IdentityNumber::compose(COUNTY_REGION, birth, seq, sex).expect("a 6-digit county code composes");
            let name = format!("{surname}{}", names::given(rng, sex));
            let phone = (age >= 16)
                .then(|| format!("1{}{:09}", [3, 5, 7, 8, 9][rng.below(5) as usize], rng.below(1_000_000_000)));
            let village_f = &facilities[village];
            let address = format!("{}{}组{}号", village_f.name.trim_end_matches("卫生室"), group, house);
            let valid = NewPatient {
                identity_number: Some(id.as_str().to_owned()),
                phone,
                address: Some(address),
                home_facility_id: Some(village_f.id),
                ..NewPatient::new(&name, sex)
            }
            .validate(today, Some(COUNTY_REGION))
            .expect("generated residents follow the registration rules");
            let idx = residents.len() as u64;
            let patient = valid.into_patient(uuid_v7(base_ms + idx, rng));
            let adult = age >= 18;
            let (p_htn, p_dm) = match age {
                ..18 => (0.0, 0.0),
                18..=44 => (0.12, 0.06),
                45..=59 => (0.30, 0.14),
                _ => (0.50, 0.20),
            };
            let hypertension = adult && rng.chance(p_htn);
            let diabetes = adult && rng.chance(p_dm);
            let employee = (18..60).contains(&age) && rng.chance(0.18);
            let enrolment = NewEnrolment {
                scheme: if employee { Scheme::Employee } else { Scheme::Resident },
                insured_region: COUNTY_REGION.into(),
                filing_status: FilingStatus::NotFiled,
                filed_region: None,
                valid_from: Date::from_calendar_date(config.year, Month::January, 1).unwrap_or(Date::MIN),
                valid_to: None,
            }
            .validate(uuid_v7(base_ms + idx, rng), patient.id)
            .expect("generated enrolments follow the rules");
            residents.push(Resident { patient, enrolment, hypertension, diabetes, village, township, household });
        }
    }
    residents
}

mod care;
