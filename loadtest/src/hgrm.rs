//! The percentile distribution in HdrHistogram's `.hgrm` text format (the output of
//! `outputPercentileDistribution`, as wrk2 prints it), readable by HdrHistogram's plotter.
//! Values are written in milliseconds (the plotter's unit), from microsecond recordings.

use std::fmt::Write;

use hdrhistogram::Histogram;

/// Percentile steps per halving of the remaining distance to 100%, as in HdrHistogram's
/// default output.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Formats `histogram` (microseconds) as `.hgrm` text in milliseconds.
pub fn format(histogram: &Histogram<u64>) -> String {
    const SCALE: f64 = 1000.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for step in histogram.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += step.count_since_last_iteration();
        let value = step.value_iterated_to() as f64 / SCALE;
        let quantile = step.quantile_iterated_to();
        if quantile < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {quantile:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - quantile)
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {quantile:2.12} {total:10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        histogram.mean() / SCALE,
        histogram.stdev() / SCALE
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        histogram.max() as f64 / SCALE,
        histogram.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        histogram.buckets(),
        sub_buckets(histogram.sigfig())
    );
    out
}

/// The sub-bucket count HdrHistogram derives from the significant digits: the next power of
/// two at or above `2 * 10^sigfig`.
fn sub_buckets(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn writes_the_standard_layout() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let text = format(&h);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("       Value     Percentile TotalCount 1/(1-Percentile)")
        );
        assert_eq!(lines.next(), Some(""));
        assert_eq!(
            lines.next(),
            Some("       0.001 0.000000000000          1           1.00")
        );
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(['#', ' ']))
            .collect();
        assert!(rows.is_empty(), "every data row is right-aligned: {rows:?}");
        let last_row = text.lines().rfind(|l| !l.starts_with('#')).unwrap();
        assert!(
            last_row.contains(" 1.000000000000      10000"),
            "{last_row}"
        );
        assert!(text.contains("#[Max     =       10.007, Total count    =        10000]"));
        let footer = text.lines().last().unwrap();
        assert_eq!(
            footer,
            "#[Buckets =           16, SubBuckets     =         2048]"
        );
    }
}
