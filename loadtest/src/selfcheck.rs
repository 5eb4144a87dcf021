//! The generator's checks on itself: how busy each worker thread kept its core, how long it
//! waited for one, how late its event loop got round to its deadlines, how late scheduled
//! sends left; and the warnings when these could explain the latency tail, which would then
//! be the generator's and not the server's.

use serde::Serialize;

use crate::cli::ModeKind;
use crate::report::main_distribution;
use crate::stats::{Percentiles, Stats};
use crate::units::format_micros;

/// A worker thread busy this share of the time or more has saturated its core: events queue
/// up behind it and every latency it measures grows.
pub const SATURATED: f64 = 0.8;
/// A worker thread that waited this share of the time for a CPU, ready to run, was held up by
/// other work on its core: events waited for it as if it were saturated.
pub const STARVED: f64 = 0.2;
/// The generator's own delays could explain the tail when their p99 reaches this share of
/// the measured p99...
const EXPLAINS: f64 = 0.25;
/// ...and is at least this many microseconds (below that, it is noise on any network).
const NOTICEABLE_US: u64 = 100;
/// What every warning suggests.
const REMEDY: &str = "tail percentiles may be the generator's; add threads or agents";

/// How hard the generator worked while it measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelfCheck {
    /// Each worker thread's CPU time over wall time while it generated load (the measured
    /// window; connect and idle modes: the ramp). 1.0 is its core kept busy.
    pub thread_busy: Vec<f64>,
    /// The busiest thread's share.
    pub busiest_thread: f64,
    /// Whether that reaches [`SATURATED`].
    pub saturated: bool,
    /// Each thread's share of the same time spent ready to run but waiting for a CPU (empty
    /// where the kernel does not say).
    pub thread_waiting: Vec<f64>,
    /// Whether one of them waited [`STARVED`] or more of the time.
    pub starved: bool,
    /// How late the event loops ran a timer they set every 10 ms, while the load ran.
    pub loop_lag_us: Option<Percentiles>,
}

impl SelfCheck {
    pub fn of(stats: &Stats) -> SelfCheck {
        let busiest_thread = stats.thread_busy.iter().copied().fold(0.0, f64::max);
        SelfCheck {
            thread_busy: stats.thread_busy.iter().map(|&b| round3(b)).collect(),
            busiest_thread: round3(busiest_thread),
            saturated: busiest_thread >= SATURATED,
            thread_waiting: stats.thread_waiting.iter().map(|&w| round3(w)).collect(),
            starved: stats.thread_waiting.iter().any(|&w| w >= STARVED),
            loop_lag_us: (!stats.loop_lag.is_empty()).then(|| Percentiles::of(&stats.loop_lag)),
        }
    }

    /// The longest any thread waited for a CPU, as a share of the time.
    pub fn most_waiting(&self) -> f64 {
        self.thread_waiting.iter().copied().fold(0.0, f64::max)
    }
}

/// The warnings `stats` (measured in `mode`) call for: a saturated core, a thread kept from
/// its core, or an event loop or a send schedule running late by a good part of the tail.
pub fn warnings(mode: ModeKind, stats: &Stats) -> Vec<String> {
    let check = SelfCheck::of(stats);
    let mut warnings = Vec::new();
    if check.saturated {
        warnings.push(format!(
            "generator core {:.0}% busy: {REMEDY}",
            check.busiest_thread * 100.0
        ));
    }
    if check.starved {
        warnings.push(format!(
            "a generator thread waited for a CPU {:.0}% of the time (other work on its core): \
             tail percentiles may be the generator's; give it a core of its own",
            check.most_waiting() * 100.0
        ));
    }
    let (tail, what) = main_distribution(mode, stats);
    if tail.is_empty() {
        return warnings;
    }
    let tail_p99 = tail.value_at_quantile(0.99);
    let explains = |lag: u64| lag >= NOTICEABLE_US && lag as f64 >= EXPLAINS * tail_p99 as f64;
    let against = format!("against a {what} p99 of {}", format_micros(tail_p99));
    if let Some(lag) = check
        .loop_lag_us
        .map(|p| p.p99)
        .filter(|&lag| explains(lag))
    {
        let lag = format_micros(lag);
        warnings.push(match mode {
            ModeKind::Broadcast => format!(
                "receive side lagging: the generator's event loop ran {lag} late at p99 \
                 {against}: {REMEDY}"
            ),
            _ => format!("generator event loop {lag} late at p99 {against}: {REMEDY}"),
        });
    }
    let send_lag = (!stats.send_lag.is_empty()).then(|| stats.send_lag.value_at_quantile(0.99));
    if let Some(lag) = send_lag.filter(|&lag| explains(lag)) {
        warnings.push(format!(
            "sends left {} behind schedule at p99 {against}: {REMEDY}",
            format_micros(lag)
        ));
    }
    warnings
}

/// A tenth of a percent is precision enough for a share of a core.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::record;
    use std::time::Duration;

    /// Stats with round trips of `tail_us`, a loop late by `lag_us` and sends by `send_us`.
    fn stats(busy: &[f64], tail_us: u64, lag_us: u64, send_us: u64) -> Stats {
        let mut stats = Stats::new();
        stats.thread_busy = busy.to_vec();
        for _ in 0..100 {
            record(&mut stats.latency, Duration::from_micros(tail_us));
            record(&mut stats.loop_lag, Duration::from_micros(lag_us));
            record(&mut stats.send_lag, Duration::from_micros(send_us));
        }
        stats
    }

    #[test]
    fn a_saturated_core_is_named_as_the_issue_words_it() {
        let warnings = warnings(ModeKind::Latency, &stats(&[0.3, 0.8712], 10_000, 5, 5));
        assert_eq!(
            warnings,
            [
                "generator core 87% busy: tail percentiles may be the generator's; add threads \
              or agents"
            ]
        );
        let check = SelfCheck::of(&stats(&[0.3, 0.8712], 10_000, 5, 5));
        assert_eq!((check.busiest_thread, check.saturated), (0.871, true));
        assert_eq!(check.thread_busy, [0.3, 0.871]);
        assert!(!SelfCheck::of(&stats(&[0.79], 1, 1, 1)).saturated);
    }

    #[test]
    fn a_thread_kept_from_its_core_is_named() {
        let mut starved = stats(&[0.4], 10_000, 5, 5);
        starved.thread_waiting = vec![0.05, 0.3512];
        let check = SelfCheck::of(&starved);
        assert!(check.starved && !check.saturated);
        assert_eq!(check.thread_waiting, [0.05, 0.351]);
        assert_eq!(
            warnings(ModeKind::Echo, &starved),
            [
                "a generator thread waited for a CPU 35% of the time (other work on its core): \
              tail percentiles may be the generator's; give it a core of its own"
            ]
        );
        starved.thread_waiting = vec![0.19];
        assert!(warnings(ModeKind::Echo, &starved).is_empty());
    }

    #[test]
    fn lags_count_when_they_are_a_good_part_of_the_tail() {
        // 3 ms of a 10 ms p99: the loop and the sends could explain the tail.
        let late = warnings(ModeKind::Latency, &stats(&[0.5], 10_000, 3_000, 3_000));
        assert_eq!(late.len(), 2, "{late:?}");
        assert!(late[0].starts_with("generator event loop 3"), "{late:?}");
        assert!(
            late[0].contains("round-trip latency p99 of 10.0ms"),
            "{late:?}"
        );
        assert!(late[1].starts_with("sends left 3"), "{late:?}");
        // 1 ms of 10 ms is not; nor is 60 us of 100 us, too little to matter.
        assert!(warnings(ModeKind::Latency, &stats(&[0.5], 10_000, 1_000, 1_000)).is_empty());
        assert!(warnings(ModeKind::Echo, &stats(&[0.5], 100, 60, 60)).is_empty());
        // Broadcast: the receive side is named.
        let broadcast = warnings(ModeKind::Broadcast, &stats(&[0.5], 2_000, 1_000, 0));
        assert_eq!(broadcast.len(), 1, "{broadcast:?}");
        assert!(
            broadcast[0].starts_with("receive side lagging"),
            "{broadcast:?}"
        );
        assert!(
            broadcast[0].contains("delivery latency p99"),
            "{broadcast:?}"
        );
        // Nothing measured, nothing to explain.
        let mut idle = Stats::new();
        idle.thread_busy = vec![0.1];
        record(&mut idle.loop_lag, Duration::from_millis(50));
        assert!(warnings(ModeKind::Idle, &idle).is_empty());
    }
}
