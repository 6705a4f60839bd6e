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
    let mut rows: Vec<[String; 7]> = Vec::new();
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
        rows.push([
            format!("{} {}", ra.suite, ra.name),
            ra.shape.clone(),
            format!("{:.2}", ra.median_ms),
            format!("{:.2}", rb.median_ms),
            format!("{} {}", significant(va), short(unit)),
            format!("{} {}", significant(vb), short(unit)),
            format!("{:.3}", va / vb),
        ]);
        if let (Some(ma), Some(mb)) = (ra.peak_mem_mb, rb.peak_mem_mb) {
            rows.push([
                "  peak memory (MiB)".into(),
                String::new(),
                format!("{ma:.0}"),
                format!("{mb:.0}"),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    let header = [
        "benchmark",
        "shape",
        "A ms",
        "B ms",
        "A rate",
        "B rate",
        "A / B",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let render = |row: &[String; 7]| {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i < 2 {
                    format!(" {cell:<w$} ")
                } else {
                    format!(" {cell:>w$} ")
                }
            })
            .collect();
        format!("|{}|\n", cells.join("|"))
    };
    let mut out = format!(
        "A: {} on {} ({})\nB: {} on {} ({})\n\n",
        a.framework, a.device, a.timing, b.framework, b.device, b.timing
    );
    out.push_str(&render(&header));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    out.push_str(&format!("|{}|\n", rule.join("|")));
    for row in &rows {
        out.push_str(&render(row));
    }
    out
}

/// A rate with three significant digits at least one decimal (0.00123 stays readable).
fn significant(v: f64) -> String {
    if v >= 100.0 || v == 0.0 || !v.is_finite() {
        format!("{v:.1}")
    } else {
        let decimals = (2 - v.abs().log10().floor() as i32).max(1) as usize;
        format!("{v:.decimals$}")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, ms: f64, gflops: Option<f64>, tokens: Option<f64>) -> BenchResult {
        BenchResult {
            suite: "kernels".into(),
            name: name.into(),
            shape: "8x8".into(),
            median_ms: ms,
            min_ms: ms,
            samples: 3,
            gflops,
            gbps: None,
            tokens_per_s: tokens,
            peak_mem_mb: tokens.map(|_| 100.0),
            peak_mem_kind: None,
        }
    }

    fn report(results: Vec<BenchResult>) -> Report {
        Report {
            framework: "f".into(),
            device: "d".into(),
            timing: "t".into(),
            results,
        }
    }

    #[test]
    fn table_aligns_columns_and_divides_rates() {
        let a = report(vec![
            result("attention forward+backward", 2.0, Some(5.0), None),
            result("train", 4.0, None, Some(50.0)),
            result("only in a", 1.0, Some(1.0), None),
        ]);
        let b = report(vec![
            result("attention forward+backward", 1.0, Some(20.0), None),
            result("train", 1.0, None, Some(200.0)),
        ]);
        let text = table(&a, &b);
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{text}");
        assert!(
            lines[2].contains("0.250") && lines[3].contains("0.250"),
            "{text}"
        );
        assert!(lines[4].contains("peak memory"), "{text}");
        assert!(!text.contains("only in a"));
    }

    #[test]
    fn significant_keeps_small_rates_readable() {
        assert_eq!(significant(0.00165), "0.00165");
        assert_eq!(significant(9.554), "9.55");
        assert_eq!(significant(251.44), "251.4");
    }
}
