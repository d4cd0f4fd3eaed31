//! DRG grouping throughput on one thread: loads the CHS-DRG 1.1 scheme from `../shared/data`,
//! groups the 3,000 regression stays for a number of rounds and prints stays/s.
//!
//! `cargo run --release -p tiercare-domain --example bench_drg [rounds]` (default 200).

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use tiercare_domain::drg::{GroupingStatus, Scheme, Stay};

fn num(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f.trunc() as u32)
}

fn codes(s: &str) -> Vec<String> {
    s.split(['|', ',']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
}

#[allow(dead_code)] // not used where the CLI includes this file (`tiercare bench case-payment drg`)
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(200);
    run(rounds, &PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")))
}

/// Load CHS-DRG 1.1 from `data/chs-drg-1.1`, group the regression stays of
/// `data/drg-regression/chsdrg11_dev.csv` `rounds` times on this thread and print stays/s.
pub fn run(rounds: usize, data: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let dir = data.join("chs-drg-1.1");
    let csv = data.join("drg-regression/chsdrg11_dev.csv");
    if !dir.join("scheme.json").exists() || !csv.exists() {
        eprintln!("skip: {} not found", data.display());
        return Ok(());
    }
    let json = std::fs::read_to_string(dir.join("scheme.json"))?;
    let v: serde_json::Value = serde_json::from_str(&json)?;
    let mut tables = HashMap::new();
    for (_, file) in v["files"].as_object().ok_or("scheme has no files")? {
        let file = file.as_str().ok_or("file name is not a string")?;
        tables.insert(file.to_owned(), std::fs::read_to_string(dir.join(file))?);
    }
    let t0 = Instant::now();
    let scheme = Scheme::load(&json, &tables)?;
    println!(
        "scheme {} loaded in {:.1} ms ({} codes)",
        scheme.name(),
        t0.elapsed().as_secs_f64() * 1e3,
        scheme.code_count()
    );

    let text = std::fs::read_to_string(&csv)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty csv")?.split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).ok_or(format!("no column {name}"));
    let (ig, ia, iad, iw, izd, iss) =
        (col("gender")?, col("age")?, col("ageDay")?, col("weight")?, col("zdList")?, col("ssList")?);
    let mut stays = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        stays.push(Stay {
            sex: field(ig).trim().parse().unwrap_or(0),
            age: num(field(ia)),
            age_days: num(field(iad)),
            weight_g: num(field(iw)),
            diagnoses: codes(field(izd)),
            procedures: codes(field(iss)),
        });
    }

    // Warm-up round.
    let grouped = stays.iter().filter(|s| scheme.group(s).status == GroupingStatus::Grouped).count();
    let t = Instant::now();
    let mut n = 0usize;
    for _ in 0..rounds {
        for s in &stays {
            black_box(scheme.group(black_box(s)));
            n += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{n} groupings ({} stays x {rounds} rounds, {grouped} grouped) in {secs:.3} s: {:.0} stays/s on one thread",
        stays.len(),
        n as f64 / secs
    );
    Ok(())
}
