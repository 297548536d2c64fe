//! `--plot FILE.svg`: latency percentiles and throughput over the run, one point per second,
//! drawn with plotters' SVG backend (no font files needed: the SVG leaves text to the viewer).

use crate::latency::SecondReport;
use crate::BenchError;
use plotters::prelude::*;
use std::path::Path;

/// A latency line: its legend, how to read it from a second, its colour.
type LatencySeries = (&'static str, fn(&SecondReport) -> f64, RGBColor);

/// Writes the two charts (latency on top, throughput below) for `timeline` to `path`.
/// `what` names the unit of throughput ("requests", "queries").
pub fn write_svg(
    path: &Path,
    title: &str,
    what: &str,
    timeline: &[SecondReport],
) -> Result<(), BenchError> {
    draw(path, title, what, timeline)
        .map_err(|e| BenchError::runtime(format!("cannot draw {}: {e}", path.display())))
}

fn draw(
    path: &Path,
    title: &str,
    what: &str,
    timeline: &[SecondReport],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (960, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (upper, lower) = root.split_vertically(380);
    let seconds = timeline.len().max(1) as f64;
    let top_latency = timeline
        .iter()
        .map(|s| s.max_ms)
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.05;
    let mut latency = ChartBuilder::on(&upper)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .caption("latency per second (ms)", ("sans-serif", 16))
        .build_cartesian_2d(0f64..seconds, 0f64..top_latency)?;
    latency
        .configure_mesh()
        .x_desc("second")
        .y_desc("ms")
        .draw()?;
    let series: [LatencySeries; 3] = [
        ("p50", |s| s.p50_ms, BLUE),
        ("p99", |s| s.p99_ms, RGBColor(230, 120, 0)),
        ("max", |s| s.max_ms, RED),
    ];
    for (name, value, color) in series {
        latency
            .draw_series(LineSeries::new(
                timeline.iter().map(|s| (s.second as f64 + 0.5, value(s))),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    latency
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    let top_rate = timeline
        .iter()
        .map(|s| (s.answers + s.errors) as f64)
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.05;
    let mut rate = ChartBuilder::on(&lower)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .caption(format!("{what} per second"), ("sans-serif", 16))
        .build_cartesian_2d(0f64..seconds, 0f64..top_rate)?;
    rate.configure_mesh()
        .x_desc("second")
        .y_desc("per s")
        .draw()?;
    rate.draw_series(LineSeries::new(
        timeline
            .iter()
            .map(|s| (s.second as f64 + 0.5, s.answers as f64)),
        GREEN.stroke_width(2),
    ))?
    .label("answers")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], GREEN.stroke_width(2)));
    rate.draw_series(LineSeries::new(
        timeline
            .iter()
            .map(|s| (s.second as f64 + 0.5, s.errors as f64)),
        RED.stroke_width(2),
    ))?
    .label("errors")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
    rate.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let timeline: Vec<SecondReport> = (0..5)
            .map(|i| SecondReport {
                second: i,
                answers: 100 + i as u64,
                errors: 0,
                bytes: 0,
                p50_ms: 1.0,
                p99_ms: 2.0 + i as f64,
                max_ms: 9.0,
            })
            .collect();
        write_svg(&path, "test run", "requests", &timeline).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("p99") && svg.contains("polyline"));
    }
}
