//! The study's SVG (`study.svg`): the objective per trial (with the best so far), then the
//! objective against each searched setting (log axes for `log` ranges, the listed values in
//! order for lists); drawn with plotters and written atomically.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::record::TrialRecord;
use crate::config::tune::{Choice, Domain, Param, format_float};
use crate::files::write_atomic;

const POINT: RGBColor = RGBColor(31, 119, 180);
const BEST: RGBColor = RGBColor(214, 39, 40);

/// One panel: points (x, objective), an optional best-so-far line, and how x is labelled.
struct Panel {
    title: String,
    x_desc: String,
    points: Vec<(f64, f64)>,
    line: Vec<(f64, f64)>,
    x_range: (f64, f64),
    label: Box<dyn Fn(f64) -> String>,
}

fn y_range(records: &[TrialRecord]) -> (f64, f64) {
    let ys: Vec<f64> = records
        .iter()
        .filter_map(|r| r.objective)
        .filter(|y| y.is_finite())
        .collect();
    let lo = ys.iter().copied().fold(f64::MAX, f64::min);
    let hi = ys.iter().copied().fold(f64::MIN, f64::max);
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (lo - pad, hi + pad)
}

fn trial_panel(records: &[TrialRecord]) -> Panel {
    let mut sorted: Vec<&TrialRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.trial);
    let mut best = f64::NEG_INFINITY;
    let mut line = Vec::new();
    let mut points = Vec::new();
    for r in sorted {
        if let Some(y) = r.objective.filter(|y| y.is_finite()) {
            points.push((r.trial as f64, y));
            best = best.max(y);
            line.push((r.trial as f64, best));
        }
    }
    let last = records.iter().map(|r| r.trial).max().unwrap_or(0) as f64;
    Panel {
        title: "objective per trial (line: best so far)".into(),
        x_desc: "trial".into(),
        points,
        line,
        x_range: (-0.5, last + 0.5),
        label: Box::new(|x| format!("{x:.0}")),
    }
}

fn param_panel(records: &[TrialRecord], param: &Param) -> Panel {
    let value_of = |c: &Choice| -> Option<f64> {
        match &param.domain {
            Domain::Values(values) => values.iter().position(|v| v == c).map(|i| i as f64),
            Domain::Range { log: true, .. } => c.as_f64().map(f64::log10),
            Domain::Range { .. } => c.as_f64(),
        }
    };
    let points = records
        .iter()
        .filter_map(|r| Some((value_of(r.params.get(&param.path)?)?, r.objective?)))
        .filter(|p| p.1.is_finite())
        .collect();
    let (x_range, x_desc, label): (_, _, Box<dyn Fn(f64) -> String>) = match &param.domain {
        Domain::Values(values) => {
            let names: Vec<String> = values.iter().map(Choice::to_string).collect();
            let n = names.len() as f64;
            (
                (-0.5, n - 0.5),
                param.path.clone(),
                Box::new(move |x: f64| {
                    let i = x.round();
                    if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                        names[i as usize].clone()
                    } else {
                        String::new()
                    }
                }),
            )
        }
        Domain::Range {
            low,
            high,
            log: true,
            ..
        } => (
            (low.log10(), high.log10()),
            format!("{} (log scale)", param.path),
            Box::new(|x: f64| format_float(10f64.powf(x))),
        ),
        Domain::Range { low, high, .. } => (
            (*low, *high),
            param.path.clone(),
            Box::new(|x: f64| format_float(x)),
        ),
    };
    Panel {
        title: format!("objective against {}", param.path),
        x_desc,
        points,
        line: Vec::new(),
        x_range,
        label,
    }
}

fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    y: (f64, f64),
    y_desc: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (x0, x1) = panel.x_range;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y.0..y.1)
        .map_err(|e| anyhow!("chart: {e}"))?;
    chart
        .configure_mesh()
        .x_desc(&panel.x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 13))
        .x_label_formatter(&|x| (panel.label)(*x))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| anyhow!("chart: {e}"))?;
    if !panel.line.is_empty() {
        chart
            .draw_series(LineSeries::new(panel.line.clone(), BEST.stroke_width(2)))
            .map_err(|e| anyhow!("chart: {e}"))?;
    }
    chart
        .draw_series(
            panel
                .points
                .iter()
                .map(|&p| Circle::new(p, 4, POINT.filled())),
        )
        .map_err(|e| anyhow!("chart: {e}"))?;
    Ok(())
}

/// Draws the study into `path`: two panels per row.
pub fn write_study_chart(
    path: &Path,
    records: &[TrialRecord],
    params: &[Param],
    objective: &str,
) -> Result<()> {
    let mut panels = vec![trial_panel(records)];
    panels.extend(params.iter().map(|p| param_panel(records, p)));
    let rows = panels.len().div_ceil(2);
    let y = y_range(records);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 400 * rows as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("chart: {e}"))?;
        let areas = root.split_evenly((rows, 2));
        for (area, panel) in areas.iter().zip(&panels) {
            draw(area, panel, y, objective)?;
        }
        root.present().map_err(|e| anyhow!("chart: {e}"))?;
    }
    write_atomic(path, svg.as_bytes())
}
