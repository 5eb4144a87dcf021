//! A latency-by-percentile chart as hand-written SVG, laid out like HdrHistogram's plotter:
//! the horizontal axis is the percentile on a log scale of `1/(1 - percentile)`, so 90%,
//! 99%, 99.9%... are evenly spaced and the tail gets as much room as the median.

use std::fmt::Write;

use hdrhistogram::Histogram;

use crate::hgrm::TICKS_PER_HALF_DISTANCE;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
/// One colour per line, cycling after ten (the first three as a single run's chart had them).
const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Draws one line per `(label, histogram)` (microseconds) under `title`.
pub fn svg(title: &str, series: &[(&str, &Histogram<u64>)]) -> String {
    let spectra: Vec<(&str, Vec<(f64, u64)>)> = series
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(label, h)| (*label, spectrum(h)))
        .collect();
    let spectra: Vec<(&str, &[(f64, u64)])> = spectra
        .iter()
        .map(|(label, pts)| (*label, pts.as_slice()))
        .collect();
    svg_spectra(title, &spectra)
}

/// `(quantile, value)` at HdrHistogram's percentile steps (as in .hgrm output): ever closer
/// steps towards 100%, which is the last one, at the maximum.
pub fn spectrum(histogram: &Histogram<u64>) -> Vec<(f64, u64)> {
    histogram
        .iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .map(|step| (step.quantile_iterated_to(), step.value_iterated_to()))
        .collect()
}

/// Draws one line per `(label, spectrum)` under `title`: each spectrum is `(quantile,
/// microseconds)` pairs in rising order, as [`spectrum`] gives them. Empty spectra are left
/// out.
pub fn svg_spectra(title: &str, series: &[(&str, &[(f64, u64)])]) -> String {
    let series: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .filter(|(_, spectrum)| !spectrum.is_empty())
        .map(|(label, spectrum)| (*label, points(spectrum)))
        .collect();
    // Nines shown: at least to 99.99%, more if the data reaches further.
    let nines = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.0))
        .fold(4.0f64, f64::max)
        .ceil();
    let top_value = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let (unit, divisor) = if top_value >= 10_000.0 {
        ("ms", 1000.0)
    } else {
        ("us", 1.0)
    };
    let y_max = nice_ceiling(top_value / divisor);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |nines_x: f64| LEFT + nines_x / nines * plot_w;
    let y = |value: f64| TOP + plot_h - value / divisor / y_max * plot_h;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="25" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    // Vertical grid: one line per nine.
    for n in 0..=nines as u32 {
        let px = x(f64::from(n));
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0,
            percentile_label(n)
        );
    }
    // Horizontal grid: five steps.
    for step in 0..=5 {
        let value = y_max * f64::from(step) / 5.0;
        let py = y(value * divisor);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 8.0,
            py + 4.0,
            trim_number(value)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">Percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 15.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">Latency ({unit})</text>"#,
        TOP + plot_h / 2.0
    );
    for (i, (_, pts)) in series.iter().enumerate() {
        let path: Vec<String> = pts
            .iter()
            .map(|&(nx, v)| format!("{:.1},{:.1}", x(nx.min(nines)), y(v)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            COLORS[i % COLORS.len()],
            path.join(" ")
        );
    }
    // The legend over every line, on a backdrop so that no line hides a label.
    if !series.is_empty() {
        let longest = series
            .iter()
            .map(|(label, _)| label.chars().count())
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="white" fill-opacity="0.8"/>"#,
            LEFT + 6.0,
            TOP + 6.0,
            (42.0 + 7.0 * longest as f64).min(plot_w - 12.0),
            18.0 * series.len() as f64 + 4.0
        );
    }
    for (i, (label, _)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let ly = TOP + 18.0 * (i as f64 + 1.0);
        let _ = writeln!(
            out,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 12.0,
            LEFT + 36.0,
            LEFT + 42.0,
            ly + 4.0,
            escape(label)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// `(nines, value)` pairs: `nines = log10(1 / (1 - percentile))`. The 100% point, at
/// infinity, is drawn at the last percentile step's position.
fn points(spectrum: &[(f64, u64)]) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = Vec::new();
    for &(q, value) in spectrum {
        let value = value as f64;
        let nx = if q < 1.0 {
            (1.0 / (1.0 - q)).log10()
        } else {
            pts.last().map_or(0.0, |p| p.0)
        };
        pts.push((nx, value));
    }
    pts
}

fn percentile_label(nines: u32) -> String {
    match nines {
        0 => "0%".into(),
        1 => "90%".into(),
        n => format!("99.{}%", "9".repeat(n as usize - 2)).replace("99.%", "99%"),
    }
}

/// The smallest 1, 1.5, 2, 3, 5 or 7.5 times a power of ten at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.max(1e-9).log10().floor());
    [1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&nice| nice >= value)
        .unwrap_or(10.0 * magnitude)
}

fn trim_number(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn labels_and_scales() {
        let labels: Vec<String> = (0..5).map(percentile_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
        assert_eq!(nice_ceiling(730.0), 750.0);
        assert_eq!(nice_ceiling(10.8), 15.0);
        assert_eq!(nice_ceiling(120.0), 150.0);
        assert_eq!(nice_ceiling(5.0), 5.0);
    }

    #[test]
    fn draws_every_series_with_a_log_percentile_axis() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        // One slow message in 100,000: the iteration walks the percentiles up to it.
        for v in 1..100_000u64 {
            a.record(v % 500 + 20).unwrap();
            b.record(v % 900 + 20).unwrap();
        }
        a.record(10_000).unwrap();
        b.record(20_000).unwrap();
        let svg = svg("echo <test>", &[("corrected", &a), ("uncorrected", &b)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("99.999%"), "100k samples reach five nines");
        assert!(svg.contains("echo &lt;test&gt;"));
        assert!(
            svg.contains("Latency (ms)"),
            "20 ms at the top switches to ms"
        );
        // The same drawing from the spectra alone, as `plot` draws saved reports.
        let (sa, sb) = (spectrum(&a), spectrum(&b));
        assert_eq!(sa.last(), Some(&(1.0, a.max())));
        let again = svg_spectra("echo <test>", &[("corrected", &sa), ("uncorrected", &sb)]);
        assert_eq!(again, svg);
    }

    #[test]
    fn colours_every_line_of_many() {
        let spectra: Vec<Vec<(f64, u64)>> = (1..=12u64)
            .map(|i| vec![(0.0, i), (0.9, 10 * i), (0.99, 20 * i), (1.0, 30 * i)])
            .collect();
        let labels: Vec<String> = (1..=12).map(|i| format!("run {i}")).collect();
        let series: Vec<(&str, &[(f64, u64)])> = labels
            .iter()
            .zip(&spectra)
            .map(|(label, s)| (label.as_str(), s.as_slice()))
            .collect();
        let svg = svg_spectra("many", &series);
        assert_eq!(svg.matches("<polyline").count(), 12);
        assert!(svg.contains(">run 12</text>"));
        assert!(svg.contains(r##"stroke="#17becf""##));
    }
}
