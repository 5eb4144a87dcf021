//! The live line: once a second, what every worker (or, on a controller, every agent)
//! reported, merged (latencies from the measured window only, so none during the warm-up).
//! Printed for people on stderr, or as one JSON object per line on stdout (--live-json).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::agent::histogram as wire;
use crate::stats::new_histogram;
use crate::units::{format_count, format_micros};

/// What a worker has done so far; an agent sends its workers' figures added up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    /// Connections open now.
    pub open: u64,
    /// Data messages sent and received so far (warm-up included).
    pub sent: u64,
    pub received: u64,
    pub errors: u64,
    /// The latencies measured so far (inside the window).
    #[serde(with = "wire")]
    pub latency: Histogram<u64>,
}

/// One source's latest figures: a worker thread's, or on a controller an agent's.
#[derive(Debug)]
pub struct Tick {
    /// Which worker (or agent) they come from.
    pub thread: usize,
    pub figures: Figures,
}

/// The latest figures of each worker.
pub struct Live {
    mode: &'static str,
    label: String,
    latest: Vec<Option<Figures>>,
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
        self.latest[tick.thread] = Some(tick.figures);
    }

    /// Every worker's latest figures added up.
    pub fn merged(&self) -> Figures {
        let mut total = Figures {
            open: 0,
            sent: 0,
            received: 0,
            errors: 0,
            latency: new_histogram(),
        };
        for figures in self.latest.iter().flatten() {
            total.open += figures.open;
            total.sent += figures.sent;
            total.received += figures.received;
            total.errors += figures.errors;
            // Auto-resizing histograms accept any values, so adding cannot fail.
            let _ = total.latency.add(&figures.latency);
        }
        total
    }

    /// The figures for second `elapsed`, given `period` since the previous line.
    pub fn sample(&mut self, elapsed: Duration, period: Duration) -> Sample {
        let Figures {
            open,
            sent: sent_total,
            received: received_total,
            errors,
            latency: so_far,
        } = self.merged();
        let sent = sent_total - self.last_sent.min(sent_total);
        let received = received_total - self.last_received.min(received_total);
        self.last_sent = sent_total;
        self.last_received = received_total;
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

/// How long after each second the workers' ticks for it have all arrived.
pub const TICK_GRACE: Duration = Duration::from_millis(50);

/// When the live line (or an agent's progress) is due: `grace` after each second of a run,
/// so that the figures for that second have arrived.
pub struct Seconds {
    start: Instant,
    next: Instant,
    last: Instant,
}

impl Seconds {
    pub fn new(start: Instant, grace: Duration) -> Seconds {
        Seconds {
            start,
            next: start + Duration::from_secs(1) + grace,
            last: start,
        }
    }

    /// When the next line is due.
    pub fn next(&self) -> Instant {
        self.next
    }

    /// If a line is due at `now`: the time since the start and since the previous line.
    pub fn due(&mut self, now: Instant) -> Option<(Duration, Duration)> {
        if now < self.next {
            return None;
        }
        let period = now - self.last;
        self.last = now;
        self.next += Duration::from_secs(1);
        Some((now - self.start, period))
    }
}

/// Prints a live line: JSON on stdout (--live-json) or text on stderr.
pub fn print(sample: &Sample, json: bool) {
    if json {
        println!("{}", sample.json());
    } else {
        eprintln!("{}", sample.text());
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
            figures: Figures {
                open: 5,
                sent,
                received,
                errors: 1,
                latency,
            },
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

    #[test]
    fn lines_fall_due_a_little_after_each_second() {
        let start = Instant::now();
        let mut seconds = Seconds::new(start, TICK_GRACE);
        assert_eq!(seconds.due(start + Duration::from_millis(1000)), None);
        let at = start + Duration::from_millis(1100);
        assert_eq!(seconds.due(at), Some((at - start, at - start)));
        assert_eq!(seconds.next(), start + Duration::from_millis(2050));
        let at = start + Duration::from_millis(2060);
        let (elapsed, period) = seconds.due(at).unwrap();
        assert_eq!((elapsed, period), (at - start, Duration::from_millis(960)));
    }
}
