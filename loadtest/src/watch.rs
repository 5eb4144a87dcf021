//! The server's side of a run (--server-pid): its CPU time over the run, and its resident
//! memory before the first connection and once every connection has settled.

use std::time::Duration;

use crate::system;

/// What is known of the server so far; inert without a process id.
pub struct ServerWatch {
    pid: Option<u32>,
    cpu_before: Option<(Duration, Duration)>,
    rss_before: Option<u64>,
    rss_after: Option<u64>,
}

/// What the watch found: CPU time (user, system) over the run, memory before and after.
pub type ServerSide = (Option<(Duration, Duration)>, (Option<u64>, Option<u64>));

impl ServerWatch {
    /// Starts watching `pid`; `Err` when its memory cannot be read (no such process).
    pub fn start(pid: Option<u32>) -> Result<ServerWatch, String> {
        let rss_before = pid
            .map(system::rss_bytes)
            .transpose()
            .map_err(|e| format!("cannot read the server's memory: {e}"))?;
        Ok(ServerWatch {
            pid,
            cpu_before: pid.and_then(|pid| system::process_cpu_time(pid).ok()),
            rss_before,
            rss_after: None,
        })
    }

    /// Whether it waits for every connection to settle, to read the memory again.
    pub fn waiting(&self) -> bool {
        self.pid.is_some() && self.rss_after.is_none()
    }

    /// Every connection has settled: reads the memory (the first time only).
    pub fn settled(&mut self) {
        if self.waiting() {
            self.rss_after = self.pid.and_then(|pid| system::rss_bytes(pid).ok());
        }
    }

    /// The run is over: the CPU time it took, and the memory before and after.
    pub fn finish(self) -> ServerSide {
        let cpu_after = self.pid.and_then(|pid| system::process_cpu_time(pid).ok());
        let cpu = match (self.cpu_before, cpu_after) {
            (Some(before), Some(after)) => Some((after.0 - before.0, after.1 - before.1)),
            _ => None,
        };
        (cpu, (self.rss_before, self.rss_after))
    }
}
