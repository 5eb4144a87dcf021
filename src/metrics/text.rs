//! The Prometheus text exposition format, version 0.0.4: what every Prometheus server
//! scrapes and what `promtool check metrics` lints.
//!
//! (The Prometheus org's `prometheus-client` crate writes only OpenMetrics, whose counter
//! families drop the `_total` suffix from `# HELP`/`# TYPE`; `promtool check metrics` reads
//! the 0.0.4 format and rejects that. The format is small enough to write directly.)

use std::fmt::Write;

/// The `Content-Type` of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a family's samples mean to Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Labels of one sample, in order.
pub(crate) type Labels<'a> = &'a [(&'a str, &'a str)];

/// A scrape's text, family by family.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    text: String,
}

impl Exposition {
    pub(crate) fn into_text(self) -> String {
        self.text
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. Counter names end in `_total`.
    pub(crate) fn family(&mut self, name: &str, help: &str, kind: Kind) {
        debug_assert!(kind != Kind::Counter || name.ends_with("_total"));
        self.text.push_str("# HELP ");
        self.text.push_str(name);
        self.text.push(' ');
        // "help ... can contain any sequence of UTF-8 characters ... backslash and
        // line-feed characters have to be escaped as \\ and \n".
        for c in help.chars() {
            match c {
                '\\' => self.text.push_str("\\\\"),
                '\n' => self.text.push_str("\\n"),
                c => self.text.push(c),
            }
        }
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.text, "\n# TYPE {name} {kind}");
    }

    /// One sample line: `name{labels} value`.
    pub(crate) fn sample(&mut self, name: &str, labels: Labels<'_>, value: f64) {
        self.text.push_str(name);
        self.labels(labels, None);
        self.value(value);
    }

    /// A histogram's lines from per-bucket counts (one more than `bounds`: the last bucket
    /// is unbounded), made cumulative as the format wants.
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        labels: Labels<'_>,
        bounds: impl IntoIterator<Item = f64>,
        counts: impl IntoIterator<Item = u64>,
        sum: f64,
    ) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        let mut bounds = bounds.into_iter();
        for count in counts {
            cumulative += count;
            let le = match bounds.next() {
                Some(bound) => format_value(bound),
                None => "+Inf".to_owned(),
            };
            self.text.push_str(&bucket);
            self.labels(labels, Some(&le));
            self.value(cumulative as f64);
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }

    fn labels(&mut self, labels: Labels<'_>, le: Option<&str>) {
        let le = le.map(|le| ("le", le));
        let mut all = labels.iter().copied().chain(le).peekable();
        if all.peek().is_none() {
            return;
        }
        self.text.push('{');
        for (i, (name, value)) in all.enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            self.text.push_str(name);
            self.text.push_str("=\"");
            // "label_value can be any sequence of UTF-8 characters, but the backslash, the
            // double-quote, and the line-feed characters have to be escaped".
            for c in value.chars() {
                match c {
                    '\\' => self.text.push_str("\\\\"),
                    '"' => self.text.push_str("\\\""),
                    '\n' => self.text.push_str("\\n"),
                    c => self.text.push(c),
                }
            }
            self.text.push('"');
        }
        self.text.push('}');
    }

    fn value(&mut self, value: f64) {
        self.text.push(' ');
        self.text.push_str(&format_value(value));
        self.text.push('\n');
    }
}

/// A sample value as Go's ParseFloat reads it: integers without a fraction, `+Inf`, `NaN`.
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut out = Exposition::default();
        out.family("x_total", "Things.\nMore \\ help.", Kind::Counter);
        out.sample("x_total", &[("loop", "0"), ("path", "a\"b\\c\nd")], 3.0);
        out.family("g", "A gauge.", Kind::Gauge);
        out.sample("g", &[], 0.25);
        assert_eq!(
            out.into_text(),
            "# HELP x_total Things.\\nMore \\\\ help.\n# TYPE x_total counter\n\
             x_total{loop=\"0\",path=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 0.25\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_an_infinite_bucket() {
        let mut out = Exposition::default();
        out.histogram("h", &[("loop", "1")], [0.5, 1.0], [1, 0, 2], 4.5);
        assert_eq!(
            out.into_text(),
            "h_bucket{loop=\"1\",le=\"0.5\"} 1\nh_bucket{loop=\"1\",le=\"1\"} 1\n\
             h_bucket{loop=\"1\",le=\"+Inf\"} 3\nh_sum{loop=\"1\"} 4.5\nh_count{loop=\"1\"} 3\n"
        );
    }

    #[test]
    fn values_read_back_as_written() {
        assert_eq!(format_value(1e-5), "0.00001");
        assert_eq!(format_value(12.0), "12");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(1e20), "100000000000000000000");
    }
}
