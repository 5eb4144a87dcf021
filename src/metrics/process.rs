//! The process's own figures under the names every Prometheus client uses
//! (`process_resident_memory_bytes`, `process_open_fds`, ...), read from `/proc` on each
//! scrape. Elsewhere than Linux they are left out.

use super::text::{Exposition, Kind};

/// Clock ticks per second in `/proc/<pid>/stat`: USER_HZ, which Linux fixes at 100 for
/// userspace on every architecture (times(2), proc(5)).
const USER_HZ: f64 = 100.0;

pub(super) fn encode(out: &mut Exposition) {
    if let Some(bytes) = resident_bytes() {
        out.family(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            Kind::Gauge,
        );
        out.sample("process_resident_memory_bytes", &[], bytes as f64);
    }
    if let Some(open) = open_descriptors() {
        out.family(
            "process_open_fds",
            "Open file descriptors (connections, listeners, epoll, ...).",
            Kind::Gauge,
        );
        out.sample("process_open_fds", &[], open as f64);
    }
    if let Some(max) = max_descriptors() {
        out.family(
            "process_max_fds",
            "The soft open-file limit: connections beyond it cannot be accepted.",
            Kind::Gauge,
        );
        out.sample("process_max_fds", &[], max as f64);
    }
    if let Some(seconds) = cpu_seconds() {
        out.family(
            "process_cpu_seconds_total",
            "User and system CPU time spent in seconds, all threads.",
            Kind::Counter,
        );
        out.sample("process_cpu_seconds_total", &[], seconds);
    }
}

/// `VmRSS` of /proc/self/status, which is in kB.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

fn open_descriptors() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// The soft limit from the `Max open files` line of /proc/self/limits.
fn max_descriptors() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// utime + stime of /proc/self/stat (fields 14 and 15, counted after the parenthesised
/// command name, which may itself hold spaces).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / USER_HZ)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn figures_are_read_on_linux() {
        assert!(resident_bytes().is_some_and(|bytes| bytes > 0));
        assert!(open_descriptors().is_some_and(|open| open >= 3));
        assert!(max_descriptors().is_some_and(|max| max > 0));
        assert!(cpu_seconds().is_some());
    }
}
