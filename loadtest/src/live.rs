//! The live line: once a second, what every worker reported, merged (latencies from the
//! measured window only, so none during the warm-up). Printed for people on stderr, or as
//! one JSON object per line on stdout (--live-json).

use std::time::Duration;

use serde::Serialize;

use crate::stats::new_histogram;
use crate::units::{format_count, format_micros};
use crate::worker::Tick;

/// The latest figures of each worker.
pub struct Live {
    mode: &'static str,
    label: String,
    latest: Vec<Option<Tick>>,
    last_sent: u64,
    last_received: u64,
}

/// One live line's figures; its field names are what --live-json writes (keep them stable,
/// and in step with the option's help in cli.rs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the start of the run.
    pub elapsed_s: f64,
    pub mode: &'static str,
    pub label: String,
    /// Connections open now.
    pub open: u64,
    /// Seconds since the previous line (about one).
    pub interval_s: f64,
    /// Data messages sent and received in that interval (received: echoes or deliveries).
    pub sent: u64,
    pub received: u64,
    /// The same per second.
    pub sent_per_sec: f64,
    pub received_per_sec: f64,
    /// Data messages sent and received since the start (warm-up included).
    pub sent_total: u64,
    pub received_total: u64,
    /// Errors of every kind so far.
    pub errors: u64,
    /// Latencies measured so far (after the warm-up), and their percentiles in
    /// microseconds; `None` (JSON `null`) before the first or in modes without messages.
    pub latency_count: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

impl Sample {
    /// The line for people.
    pub fn text(&self) -> String {
        let latency = match (self.p50_us, self.p99_us) {
            (Some(p50), Some(p99)) => {
                format!("p50 {} p99 {}", format_micros(p50), format_micros(p99))
            }
            _ => "-".to_string(),
        };
        format!(
            "[{:>4.0}s] open {}  {} msg/s  errors {}  {latency} so far",
            self.elapsed_s,
            self.open,
            format_count(self.received_per_sec),
            self.errors
        )
    }

    /// The line as one JSON object (JSON Lines).
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a sample of numbers and strings serializes")
    }
}

impl Live {
    pub fn new(threads: usize, mode: &'static str, label: String) -> Live {
        Live {
            mode,
            label,
            latest: (0..threads).map(|_| None).collect(),
            last_sent: 0,
            last_received: 0,
        }
    }

    /// Takes in one worker's tick.
    pub fn update(&mut self, tick: Tick) {
        let thread = tick.thread;
        self.latest[thread] = Some(tick);
    }

    /// The figures for second `elapsed`, given `period` since the previous line.
    pub fn sample(&mut self, elapsed: Duration, period: Duration) -> Sample {
        let ticks = self.latest.iter().flatten();
        let (open, sent_total, received_total, errors) = ticks
            .fold((0, 0, 0, 0), |(o, s, r, e), t| {
                (o + t.open, s + t.sent, r + t.received, e + t.errors)
            });
        let sent = sent_total - self.last_sent.min(sent_total);
        let received = received_total - self.last_received.min(received_total);
        self.last_sent = sent_total;
        self.last_received = received_total;
        let mut so_far = new_histogram();
        for tick in self.latest.iter().flatten() {
            // Auto-resizing histograms accept any values, so adding cannot fail.
            let _ = so_far.add(&tick.latency);
        }
        let quantile = |q| (!so_far.is_empty()).then(|| so_far.value_at_quantile(q));
        let period_s = period.as_secs_f64();
        let per_sec = |count: u64| {
            if period_s > 0.0 {
                round3(count as f64 / period_s)
            } else {
                0.0
            }
        };
        Sample {
            elapsed_s: round3(elapsed.as_secs_f64()),
            mode: self.mode,
            label: self.label.clone(),
            open,
            interval_s: round3(period_s),
            sent,
            received,
            sent_per_sec: per_sec(sent),
            received_per_sec: per_sec(received),
            sent_total,
            received_total,
            errors,
            latency_count: so_far.len(),
            p50_us: quantile(0.5),
            p99_us: quantile(0.99),
        }
    }
}

/// Milliseconds are precision enough for a once-a-second line.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(thread: usize, sent: u64, received: u64, latencies: &[u64]) -> Tick {
        let mut latency = new_histogram();
        for &v in latencies {
            latency.record(v).unwrap();
        }
        Tick {
            thread,
            open: 5,
            sent,
            received,
            errors: 1,
            latency,
        }
    }

    #[test]
    fn merges_threads_and_counts_each_interval() {
        let mut live = Live::new(2, "echo", "echo ws://127.0.0.1:1/".into());
        let first = live.sample(Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!((first.open, first.sent, first.p50_us), (0, 0, None));
        assert_eq!(first.text(), "[   1s] open 0  0 msg/s  errors 0  - so far");

        live.update(tick(0, 100, 90, &[10, 20, 30]));
        live.update(tick(1, 50, 50, &[40]));
        let s = live.sample(Duration::from_secs(2), Duration::from_millis(500));
        assert_eq!((s.open, s.errors), (10, 2));
        assert_eq!((s.sent, s.received), (150, 140));
        assert_eq!((s.sent_total, s.received_total), (150, 140));
        assert_eq!((s.sent_per_sec, s.received_per_sec), (300.0, 280.0));
        assert_eq!(
            (s.latency_count, s.p50_us, s.p99_us),
            (4, Some(20), Some(40))
        );

        live.update(tick(0, 130, 120, &[10, 20, 30]));
        let s = live.sample(Duration::from_secs(3), Duration::from_secs(1));
        assert_eq!((s.sent, s.received), (30, 30));
        assert_eq!((s.sent_total, s.received_total), (180, 170));

        let json: serde_json::Value = serde_json::from_str(&s.json()).unwrap();
        assert_eq!(json["mode"], "echo");
        assert_eq!(json["label"], "echo ws://127.0.0.1:1/");
        assert_eq!(json["elapsed_s"], 3.0);
        assert_eq!(json["sent_total"], 180);
        assert_eq!(json["p99_us"], 40);
        assert!(!s.json().contains('\n'), "one object per line");
    }
}
