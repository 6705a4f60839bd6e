//! `taskgate bench compare A.json B.json`: a side-by-side table with ratios.

use std::path::Path;

use anyhow::Result;

use super::report::{BenchResult, Report};

/// The headline number of a result: tokens/s, GFLOP/s or GB/s (higher is better), else
/// 1 / milliseconds.
fn rate(r: &BenchResult) -> (f64, &'static str) {
    if let Some(t) = r.tokens_per_s {
        (t, "tokens/s")
    } else if let Some(g) = r.gflops {
        (g, "GFLOP/s")
    } else if let Some(g) = r.gbps {
        (g, "GB/s")
    } else {
        (1e3 / r.median_ms, "runs/s")
    }
}

/// The table comparing `a` with `b` (ratio = a / b on the headline rate).
pub fn table(a: &Report, b: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "A: {} on {} ({})\nB: {} on {} ({})\n\n",
        a.framework, a.device, a.timing, b.framework, b.device, b.timing
    ));
    out.push_str(&format!(
        "| {:<27} | {:<22} | {:>10} | {:>10} | {:>12} | {:>12} | {:>8} |\n",
        "benchmark", "shape", "A ms", "B ms", "A rate", "B rate", "A / B"
    ));
    out.push_str(&format!(
        "|{:-<29}|{:-<24}|{:-<12}|{:-<12}|{:-<14}|{:-<14}|{:-<10}|\n",
        "", "", "", "", "", "", ""
    ));
    for ra in &a.results {
        let Some(rb) = b
            .results
            .iter()
            .find(|rb| rb.suite == ra.suite && rb.name == ra.name && rb.shape == ra.shape)
        else {
            continue;
        };
        let (va, unit) = rate(ra);
        let (vb, _) = rate(rb);
        out.push_str(&format!(
            "| {:<27} | {:<22} | {:>10.2} | {:>10.2} | {:>12} | {:>12} | {:>8.3} |\n",
            format!("{} {}", ra.suite, ra.name),
            ra.shape,
            ra.median_ms,
            rb.median_ms,
            format!("{va:.1} {}", short(unit)),
            format!("{vb:.1} {}", short(unit)),
            va / vb
        ));
        if let (Some(ma), Some(mb)) = (ra.peak_mem_mb, rb.peak_mem_mb) {
            out.push_str(&format!(
                "|   peak memory (MiB)         |                        | {ma:>10.0} | {mb:>10.0} | {:>12} | {:>12} |          |\n",
                "", ""
            ));
        }
    }
    out
}

fn short(unit: &str) -> &str {
    match unit {
        "tokens/s" => "tok/s",
        "GFLOP/s" => "GF/s",
        other => other,
    }
}

pub fn run(a: &Path, b: &Path) -> Result<()> {
    let (ra, rb) = (Report::load(a)?, Report::load(b)?);
    print!("{}", table(&ra, &rb));
    for r in ra.results.iter().chain(&rb.results) {
        if let Some(kind) = &r.peak_mem_kind {
            println!("memory of {} {}: {kind}", r.name, r.shape);
        }
    }
    Ok(())
}
