//! Synthetic residents for benchmarks: valid GB 11643 numbers, Chinese names, phones.
//! (The synthetic county is the `sim` crate's job; this is the flat list of people the
//! import and lookup benchmarks need, deterministic from a seed.)

use tiercare_domain::identity::{IdentityNumber, Sex};
use time::{Date, Duration};

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
    "秀兰", "霞", "平", "刚", "桂英", "建华", "志强", "红梅", "玉兰", "海燕", "德福", "春生",
];

pub struct Person {
    pub name: String,
    pub sex: Sex,
    pub birth: Date,
    pub identity_number: String,
    pub phone: String,
}

/// `n` distinct residents of `region` (GB/T 2260 county code). Identity numbers are unique:
/// the sequence digits and birth date are derived from the person's index.
pub fn people(n: usize, region: &str, seed: u64) -> Vec<Person> {
    let mut rng = tiercare_sim::Rng::new(seed);
    let base = Date::from_calendar_date(1930, time::Month::January, 1).unwrap_or(Date::MIN);
    // 32,500 birth days × 500 sequence pairs per sex: up to 16 million distinct numbers
    (0..n)
        .map(|i| {
            let sex = if rng.below(2) == 0 { Sex::Male } else { Sex::Female };
            let day = (i % 32_500) as i64;
            let seq = ((i / 32_500) % 500) as u16 * 2;
            let birth = base + Duration::days(day);
            let id =
                IdentityNumber::compose(region, birth, seq, sex).map(|x| x.as_str().to_owned()).unwrap_or_default();
            let name = format!(
                "{}{}",
                SURNAMES[rng.below(SURNAMES.len() as u64) as usize],
                GIVEN[rng.below(GIVEN.len() as u64) as usize]
            );
            let phone = format!("13{:09}", rng.below(1_000_000_000));
            Person { name, sex, birth, identity_number: id, phone }
        })
        .collect()
}

/// Write people as an import CSV.
pub fn write_csv(people: &[Person], path: &std::path::Path) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(["name", "sex", "birth_date", "identity_number", "phone", "address", "region_code"])?;
    for p in people {
        w.write_record([
            p.name.as_str(),
            p.sex.as_str(),
            &p.birth.to_string(),
            p.identity_number.as_str(),
            p.phone.as_str(),
            "",
            "",
        ])?;
    }
    w.flush()?;
    Ok(())
}
