//! The live line: once a second, what every worker reported, merged (latencies from the
//! measured window only, so none during the warm-up).

use std::time::Duration;

use crate::stats::new_histogram;
use crate::units::{format_count, format_micros};
use crate::worker::Tick;

/// The latest figures of each worker.
pub struct Live {
    latest: Vec<Option<Tick>>,
    last_received: u64,
}

impl Live {
    pub fn new(threads: usize) -> Live {
        Live {
            latest: (0..threads).map(|_| None).collect(),
            last_received: 0,
        }
    }

    /// Takes in one worker's tick.
    pub fn update(&mut self, tick: Tick) {
        let thread = tick.thread;
        self.latest[thread] = Some(tick);
    }

    /// The line for second `elapsed`, given `period` since the previous line.
    pub fn line(&mut self, elapsed: Duration, period: Duration) -> String {
        let ticks = self.latest.iter().flatten();
        let (open, received, errors) = ticks.fold((0, 0, 0), |(o, r, e), t| {
            (o + t.open, r + t.received, e + t.errors)
        });
        let rate = (received - self.last_received.min(received)) as f64 / period.as_secs_f64();
        self.last_received = received;
        let mut so_far = new_histogram();
        for tick in self.latest.iter().flatten() {
            // Auto-resizing histograms accept any values, so adding cannot fail.
            let _ = so_far.add(&tick.latency);
        }
        let latency = if so_far.is_empty() {
            "-".to_string()
        } else {
            format!(
                "p50 {} p99 {}",
                format_micros(so_far.value_at_quantile(0.5)),
                format_micros(so_far.value_at_quantile(0.99))
            )
        };
        format!(
            "[{:>4.0}s] open {open}  {} msg/s  errors {errors}  {latency} so far",
            elapsed.as_secs_f64(),
            format_count(rate)
        )
    }
}
