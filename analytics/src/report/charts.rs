//! SVG charts drawn with plotters (SVG backend only: no fonts or system
//! libraries needed; text is escaped by the backend).

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

const SERIES: [RGBColor; 3] = [
    RGBColor(37, 99, 235),
    RGBColor(220, 38, 38),
    RGBColor(217, 119, 6),
];

/// Hourly series over a window: `hours` are the bucket starts
/// (microseconds), `series` are (name, one value per bucket).
pub fn time_series(
    title: &str,
    from_us: i64,
    to_us: i64,
    hours: &[i64],
    series: &[(&str, Vec<f64>)],
) -> String {
    let mut svg = String::new();
    let span_h = ((to_us - from_us) as f64 / 3.6e9).max(1.0);
    let ymax = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    let x_of = |t: i64| (t - from_us) as f64 / 3.6e9;
    let label = move |x: &f64| {
        let t = from_us + (*x * 3.6e9) as i64;
        chrono::DateTime::from_timestamp_micros(t)
            .map(|d| {
                if span_h > 48.0 {
                    d.format("%m-%d").to_string()
                } else {
                    d.format("%H:%M").to_string()
                }
            })
            .unwrap_or_default()
    };
    let r = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (860, 260)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..span_h, 0.0..ymax)?;
        chart
            .configure_mesh()
            .x_labels(12)
            .y_labels(6)
            .x_label_formatter(&label)
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        for (i, (name, values)) in series.iter().enumerate() {
            let color = SERIES[i % SERIES.len()];
            let points: Vec<(f64, f64)> = hours
                .iter()
                .zip(values.iter())
                .map(|(h, v)| (x_of(*h) + 0.5, *v))
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()?;
        root.present()?;
        Ok(())
    })();
    if let Err(e) = r {
        tracing::warn!(error = %e, chart = title, "chart not drawn");
    }
    svg
}

/// Horizontal bars, largest first as given.
pub fn bars(title: &str, labels: &[String], values: &[f64]) -> String {
    let mut svg = String::new();
    let n = labels.len().min(values.len());
    if n == 0 {
        return svg;
    }
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1.0) * 1.12;
    let short: Vec<String> = labels
        .iter()
        .map(|l| {
            let mut s: String = l.chars().take(34).collect();
            if l.chars().count() > 34 {
                s.push('…');
            }
            s
        })
        .collect();
    let height = 60 + 24 * n as u32;
    let r = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (860, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(24)
            .y_label_area_size(240)
            .build_cartesian_2d(0.0..max, (0usize..n).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            // Segments count from the bottom: the first label goes on top.
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if *i < n => {
                    short.get(n - 1 - *i).cloned().unwrap_or_default()
                }
                _ => String::new(),
            })
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        chart.draw_series(values.iter().take(n).enumerate().map(|(i, v)| {
            let slot = n - 1 - i;
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(slot)),
                    (*v, SegmentValue::Exact(slot + 1)),
                ],
                SERIES[0].filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            bar
        }))?;
        root.present()?;
        Ok(())
    })();
    if let Err(e) = r {
        tracing::warn!(error = %e, chart = title, "chart not drawn");
    }
    svg
}
