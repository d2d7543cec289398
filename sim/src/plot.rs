//! The what-if's picture, like the tutorial's Grafana screenshots: request rate and mean
//! latency per version, and the traffic split, over the experiment; one SVG with three panels.

use plotters::prelude::*;

/// A version's lines.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionLine {
    /// The version's name.
    pub name: String,
    /// (seconds since start, requests per second).
    pub rate: Vec<(f64, f64)>,
    /// (seconds since start, mean latency in ms); no point where there were no requests.
    pub latency: Vec<(f64, f64)>,
}

/// What the picture shows.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotData {
    /// The title.
    pub title: String,
    /// Baseline then candidate.
    pub versions: Vec<VersionLine>,
    /// (seconds since start, candidate percentage), as a step line.
    pub split: Vec<(f64, f64)>,
}

/// Drawing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("drawing the plot: {0}")]
pub struct PlotError(String);

fn err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError(format!("{e:?}"))
}

/// A named, coloured line: (label, colour, points).
type Line<'a> = (String, RGBColor, &'a [(f64, f64)]);

const COLORS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];

fn max_of<'a>(points: impl Iterator<Item = &'a (f64, f64)>) -> f64 {
    points
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    x_max: f64,
    y_max: f64,
    lines: &[Line<'_>],
) -> Result<(), PlotError> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the experiment started")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    for (name, color, points) in lines {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Draws the three panels as an SVG document.
pub fn render_svg(data: &PlotData) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 960)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root.titled(&data.title, ("sans-serif", 22)).map_err(err)?;
        let panels = root.split_evenly((3, 1));
        let x_max = data
            .split
            .iter()
            .chain(data.versions.iter().flat_map(|v| v.rate.iter()))
            .map(|p| p.0)
            .fold(1.0, f64::max);
        let colored = |f: fn(&VersionLine) -> &[(f64, f64)]| -> Vec<Line<'_>> {
            data.versions
                .iter()
                .enumerate()
                .map(|(i, v)| (v.name.clone(), COLORS[i % COLORS.len()], f(v)))
                .collect()
        };
        let rates = colored(|v| &v.rate);
        let latencies = colored(|v| &v.latency);
        let y_rate = max_of(data.versions.iter().flat_map(|v| v.rate.iter())).max(1.0) * 1.15;
        let y_lat = max_of(data.versions.iter().flat_map(|v| v.latency.iter())).max(1.0) * 1.15;
        panel(
            &panels[0],
            "Request rate",
            "requests/s",
            x_max,
            y_rate,
            &rates,
        )?;
        panel(&panels[1], "Mean latency", "ms", x_max, y_lat, &latencies)?;
        let candidate = data
            .versions
            .get(1)
            .map(|v| format!("{} share", v.name))
            .unwrap_or_else(|| "candidate share".into());
        panel(
            &panels[2],
            "Traffic split",
            "% to the candidate",
            x_max,
            105.0,
            &[(candidate, COLORS[1], &data.split)],
        )?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
