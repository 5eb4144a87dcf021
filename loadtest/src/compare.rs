//! `wsloop-load plot`: several runs' latency distributions, read back from their --json
//! reports, on one latency-by-percentile chart.

use std::path::Path;
use std::process::ExitCode;

use serde::Deserialize;

use crate::cli::PlotArgs;
use crate::plot;
use crate::report::Distribution;

/// What `plot` needs of a report; the rest of it is left unread.
#[derive(Debug, Deserialize)]
struct SavedReport {
    mode: String,
    url: String,
    /// Absent in reports from before --label.
    label: Option<String>,
    /// Absent in reports from before `plot`; `null` when the run measured nothing.
    latency_distribution: Option<Distribution>,
}

/// One run to draw.
#[derive(Debug)]
struct Series {
    label: String,
    distribution: Distribution,
}

/// Reads every report, draws the chart and writes it to `--out`.
pub fn run(args: &PlotArgs) -> Result<ExitCode, String> {
    let mut series = args
        .reports
        .iter()
        .map(|path| read(path))
        .collect::<Result<Vec<Series>, String>>()?;
    // Runs with the same label (say, the same mode and URL before and after a change) are
    // told apart by their file names.
    let labels: Vec<String> = series.iter().map(|s| s.label.clone()).collect();
    for (s, path) in series.iter_mut().zip(&args.reports) {
        if labels.iter().filter(|&l| *l == s.label).count() > 1 {
            s.label = format!("{} ({})", s.label, path.display());
        }
    }
    let title = args.title.clone().unwrap_or_else(|| default_title(&series));
    let pairs: Vec<Vec<(f64, u64)>> = series.iter().map(|s| s.distribution.pairs()).collect();
    let drawn: Vec<(&str, &[(f64, u64)])> = series
        .iter()
        .zip(&pairs)
        .map(|(s, pairs)| (s.label.as_str(), pairs.as_slice()))
        .collect();
    let svg = plot::svg_spectra(&title, &drawn);
    std::fs::write(&args.out, svg)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    println!(
        "wrote {}: {} run{}",
        args.out.display(),
        series.len(),
        if series.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

/// One report's label and distribution, or why it cannot be drawn, naming the file.
fn read(path: &Path) -> Result<Series, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let report: SavedReport = serde_json::from_str(&text)
        .map_err(|e| format!("{name} is not a wsloop-load --json report: {e}"))?;
    let label = report
        .label
        .unwrap_or_else(|| format!("{} {}", report.mode, report.url));
    let Some(distribution) = report.latency_distribution.filter(|d| !d.points.is_empty()) else {
        return Err(format!(
            "{name} has no latency distribution to plot ({} run \"{label}\": nothing was \
             timed, or the report was written by a wsloop-load without latency_distribution)",
            report.mode
        ));
    };
    Ok(Series {
        label,
        distribution,
    })
}

/// "wsloop-load: round-trip latency by percentile" when every run timed the same thing.
fn default_title(series: &[Series]) -> String {
    let what = match series.first() {
        Some(first)
            if series
                .iter()
                .all(|s| s.distribution.of == first.distribution.of) =>
        {
            first.distribution.of.as_str()
        }
        _ => "latency",
    };
    format!("wsloop-load: {what} by percentile")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::SpectrumPoint;

    fn series(of: &str) -> Series {
        Series {
            label: "x".into(),
            distribution: Distribution {
                of: of.into(),
                points: vec![SpectrumPoint {
                    quantile: 1.0,
                    value_us: 5,
                }],
            },
        }
    }

    #[test]
    fn titles_say_what_was_timed() {
        let rt = series("round-trip latency");
        let hs = series("handshake");
        assert_eq!(
            default_title(std::slice::from_ref(&rt)),
            "wsloop-load: round-trip latency by percentile"
        );
        assert_eq!(
            default_title(&[rt, hs]),
            "wsloop-load: latency by percentile"
        );
    }
}
