//! The run's SVG chart: per-task training loss (left) and dev metrics (right) over steps,
//! and, when the weighting moves them, the task weights and the task gradients' cosines
//! below; drawn with plotters and written atomically beside the log.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::files::write_atomic;

/// One named line of (step, value) points.
pub struct Series {
    pub name: String,
    /// Index into the palette: a task keeps its color in both panels.
    pub color: usize,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn bounds(series: &[Series], floor_zero: bool) -> (f64, f64, f64, f64) {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        if y.is_finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        return (0.0, 1.0, 0.0, 1.0);
    }
    if floor_zero {
        y0 = y0.min(0.0);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    (
        x0,
        x1.max(x0 + 1.0),
        y0 - if floor_zero { 0.0 } else { pad },
        y1 + pad,
    )
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    series: &[Series],
    floor_zero: bool,
    legend: SeriesLabelPosition,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (x0, x1, y0, y1) = bounds(series, floor_zero);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| anyhow!("chart: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| anyhow!("chart: {e}"))?;
    for s in series {
        let color = COLORS[s.color % COLORS.len()];
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.1.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("chart: {e}"))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        if points.len() <= 40 {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| anyhow!("chart: {e}"))?;
        }
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 14))
            .position(legend)
            .draw()
            .map_err(|e| anyhow!("chart: {e}"))?;
    }
    Ok(())
}

/// The lines of a run's chart.
pub struct ChartLines {
    pub losses: Vec<Series>,
    pub metrics: Vec<Series>,
    /// The task weights per logged step (drawn when the weighting changes them).
    pub weights: Vec<Series>,
    /// The pairwise cosines of the task gradients (gradient methods).
    pub cosines: Vec<Series>,
}

/// Draws the training losses and the dev metrics side by side into `path`, and below them
/// the task weights and gradient cosines when there are any.
pub fn write_chart(path: &Path, lines: &ChartLines) -> Result<()> {
    let mut svg = String::new();
    let second_row = !lines.weights.is_empty() || !lines.cosines.is_empty();
    {
        let height = if second_row { 920 } else { 460 };
        let root = SVGBackend::with_string(&mut svg, (1200, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("chart: {e}"))?;
        let (top, bottom) = root.split_vertically(460);
        let (left, right) = top.split_horizontally(600);
        panel(
            &left,
            "training loss per task",
            "loss (mean over logged steps)",
            &lines.losses,
            true,
            SeriesLabelPosition::UpperRight,
        )?;
        panel(
            &right,
            "dev metrics (each task's primary metric)",
            "metric",
            &lines.metrics,
            false,
            SeriesLabelPosition::LowerRight,
        )?;
        if second_row {
            let (left, right) = bottom.split_horizontally(600);
            panel(
                &left,
                "task weights (mean over logged steps)",
                "weight",
                &lines.weights,
                true,
                SeriesLabelPosition::UpperRight,
            )?;
            if !lines.cosines.is_empty() {
                panel(
                    &right,
                    "cosine of task gradients (shared encoder)",
                    "cosine",
                    &lines.cosines,
                    false,
                    SeriesLabelPosition::LowerRight,
                )?;
            }
        }
        root.present().map_err(|e| anyhow!("chart: {e}"))?;
    }
    write_atomic(path, svg.as_bytes())
}
