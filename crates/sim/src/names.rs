//! Chinese names and place names for the synthetic county.

use tiercare_domain::identity::Sex;

use crate::rng::Rng;

/// Twenty towns of the synthetic county (names of real 岳池 towns, used as labels only).
pub const TOWNS: [&str; 20] = [
    "九龙", "顾县", "苟角", "罗渡", "裕民", "中和", "普安", "坪滩", "石垭", "镇裕", "白庙", "酉溪", "同兴", "兴隆",
    "秦溪", "乔家", "花园", "新场", "伏龙", "赛龙",
];

const VILLAGE_WORDS: [&str; 30] = [
    "桂花", "石桥", "龙泉", "青山", "柏树", "双河", "凤凰", "新民", "红星", "和平", "高峰", "梨园", "竹林", "白鹤",
    "金鸡", "黄桷", "清水", "马鞍", "太平", "长田", "永安", "团结", "杨柳", "莲花", "天池", "松林", "回龙", "观音",
    "狮子", "三合",
];

/// A village name for the n-th village of a town ("桂花", "石桥", … then "桂花二", …).
pub fn village_name(n: usize) -> String {
    let word = VILLAGE_WORDS[n % VILLAGE_WORDS.len()];
    match n / VILLAGE_WORDS.len() {
        0 => word.to_owned(),
        k => format!("{word}{}", ["二", "三", "四", "五", "六", "七", "八", "九", "十"][(k - 1) % 9]),
    }
}

/// Surnames with rough national frequencies (per mille of the population, top 40).
const SURNAMES: [(&str, f64); 40] = [
    ("王", 71.0),
    ("李", 71.0),
    ("张", 67.0),
    ("刘", 53.0),
    ("陈", 45.0),
    ("杨", 31.0),
    ("黄", 22.0),
    ("赵", 20.0),
    ("吴", 20.0),
    ("周", 19.0),
    ("徐", 13.0),
    ("孙", 12.0),
    ("马", 12.0),
    ("朱", 11.0),
    ("胡", 11.0),
    ("郭", 11.0),
    ("何", 10.0),
    ("林", 10.0),
    ("罗", 10.0),
    ("高", 10.0),
    ("郑", 8.0),
    ("梁", 8.0),
    ("谢", 7.0),
    ("宋", 7.0),
    ("唐", 7.0),
    ("许", 6.0),
    ("韩", 6.0),
    ("邓", 6.0),
    ("冯", 6.0),
    ("曹", 6.0),
    ("彭", 6.0),
    ("曾", 5.0),
    ("肖", 5.0),
    ("田", 5.0),
    ("董", 5.0),
    ("潘", 4.0),
    ("袁", 4.0),
    ("蒋", 4.0),
    ("蔡", 4.0),
    ("余", 4.0),
];

pub fn surname(rng: &mut Rng) -> &'static str {
    let weights: Vec<f64> = SURNAMES.iter().map(|(_, w)| *w).collect();
    SURNAMES[rng.weighted(&weights)].0
}

const MALE_CHARS: [&str; 32] = [
    "伟", "强", "磊", "军", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞", "斌", "宇", "浩", "凯",
    "健", "俊", "帆", "帅", "旭", "宁", "龙", "林", "波", "国", "建", "德", "文",
];
const FEMALE_CHARS: [&str; 32] = [
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "燕", "玲", "桂", "英", "秀", "兰", "萍", "红", "梅", "琳", "雪",
    "慧", "婷", "倩", "洁", "颖", "琴", "云", "莉", "珍", "蓉", "凤", "佳", "欣",
];

/// A one- or two-character given name.
pub fn given(rng: &mut Rng, sex: Sex) -> String {
    let chars: &[&str] = if sex == Sex::Male { &MALE_CHARS } else { &FEMALE_CHARS };
    if rng.chance(0.3) { (*rng.pick(chars)).to_owned() } else { format!("{}{}", rng.pick(chars), rng.pick(chars)) }
}
