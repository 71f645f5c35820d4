//! The limit over time, one line per algorithm, as SVG.

use std::path::Path;

use plotters::prelude::*;

use crate::scenario::Run;

const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

/// Two panels: the knee scenario and the capacity step.
pub(crate) fn draw(
    out: &Path,
    knee: &[(&'static str, Run)],
    step: &[(&'static str, Run)],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(out, (900, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(320);
    panel(
        &top,
        "Capacity 8, 503 above 16 in flight, 64 callers",
        knee,
        120.0,
        24,
        &[(0.0, 120.0, 8)],
    )?;
    panel(
        &bottom,
        "Capacity 16 → 4 at 60 s → 16 at 120 s",
        step,
        180.0,
        52,
        &[(0.0, 60.0, 16), (60.0, 120.0, 4), (120.0, 180.0, 16)],
    )?;
    root.present()?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    runs: &[(&'static str, Run)],
    seconds: f64,
    top: usize,
    capacity: &[(f64, f64, usize)],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(40)
        .build_cartesian_2d(0.0..seconds, 0usize..top)?;
    chart
        .configure_mesh()
        .x_desc("simulated seconds")
        .y_desc("limit")
        .light_line_style(WHITE)
        .draw()?;
    for &(from, to, c) in capacity {
        chart.draw_series(LineSeries::new(
            [(from, c), (to, c)],
            ShapeStyle::from(&BLACK.mix(0.35)).stroke_width(1),
        ))?;
    }
    for ((name, run), color) in runs.iter().zip(COLORS) {
        chart
            .draw_series(LineSeries::new(
                run.limits.iter().map(|&(t, l)| (t, l.min(top))),
                ShapeStyle::from(&color).stroke_width(2),
            ))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(
                    [(x, y), (x + 16, y)],
                    ShapeStyle::from(&color).stroke_width(2),
                )
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}
