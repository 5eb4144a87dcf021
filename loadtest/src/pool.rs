//! This process's worker threads for a run (a whole run, or an agent's part of one): started
//! together on the run's clock, their ticks taken in as they come, their figures merged once
//! every one has ended.

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cli::Plan;
use crate::live::{Live, Tick};
use crate::stats::Stats;
use crate::system;
use crate::worker::{Shared, Worker};

/// The running workers.
pub struct Pool {
    handles: Vec<JoinHandle<io::Result<Stats>>>,
    ticks: Receiver<Tick>,
    /// Each worker's latest tick.
    pub live: Live,
    start: Instant,
    cpu_before: (Duration, Duration),
}

/// What the workers measured, and what they cost.
pub struct Finished {
    pub stats: Stats,
    /// From the shared start to the last worker's end.
    pub elapsed: Duration,
    /// The process's CPU time meanwhile, user and system.
    pub cpu: (Duration, Duration),
}

impl Pool {
    /// Starts `plan.threads` workers on `shared`; `label` names the live line.
    pub fn start(plan: &Arc<Plan>, shared: &Arc<Shared>, label: String) -> Result<Pool, String> {
        let cpu_before = system::cpu_time();
        let (ticks, tick_rx) = mpsc::channel();
        let mut handles = Vec::new();
        for thread in 0..plan.threads {
            let worker = Worker::new(thread, plan.clone(), shared.clone(), ticks.clone())
                .map_err(|e| format!("cannot create an event loop: {e}"))?;
            let handle = std::thread::Builder::new()
                .name(format!("load-{thread}"))
                .spawn(move || worker.run())
                .map_err(|e| format!("cannot start a worker thread: {e}"))?;
            handles.push(handle);
        }
        Ok(Pool {
            handles,
            ticks: tick_rx,
            live: Live::new(plan.threads, plan.mode.name(), label),
            start: shared.start,
            cpu_before,
        })
    }

    /// Takes in ticks until `until`; false once every worker has ended.
    pub fn wait(&mut self, until: Instant) -> bool {
        loop {
            match self
                .ticks
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(tick) => self.live.update(tick),
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Waits for every worker and merges their figures.
    pub fn finish(self) -> Result<Finished, String> {
        let mut stats = Stats::new();
        for handle in self.handles {
            let worker_stats = handle
                .join()
                .map_err(|_| "a worker thread panicked".to_string())?
                .map_err(|e| format!("event loop failed: {e}"))?;
            stats.merge(&worker_stats);
        }
        let elapsed = self.start.elapsed();
        let (user, system) = system::cpu_time();
        Ok(Finished {
            stats,
            elapsed,
            cpu: (user - self.cpu_before.0, system - self.cpu_before.1),
        })
    }
}
