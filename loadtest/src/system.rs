//! What the operating system can tell or give the generator: the open-file limit, CPU time
//! used (by the process, or by one thread), how long a thread waited for a CPU, and another
//! process's resident memory.

use std::time::Duration;

/// File descriptors kept back from the connection budget (stdio, epoll, report files).
const RESERVED_FDS: u64 = 32;

/// Raises the open-file soft limit to the hard limit (each connection is one descriptor) and
/// returns the new soft limit.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; the kernel only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit.rlim_cur = limit.rlim_max;
    }
    Ok(limit.rlim_cur)
}

/// How many connections an open-file limit leaves room for.
pub fn connection_budget(open_file_limit: u64) -> u64 {
    open_file_limit.saturating_sub(RESERVED_FDS)
}

/// CPU time this process has used, user and system.
pub fn cpu_time() -> (Duration, Duration) {
    usage(libc::RUSAGE_SELF)
}

/// CPU time the calling thread has used, user and system together.
pub fn thread_cpu_time() -> Duration {
    let (user, system) = usage(libc::RUSAGE_THREAD);
    user + system
}

/// How long the calling thread has waited, ready to run, for a CPU (the kernel's run-queue
/// delay, from `/proc/thread-self/schedstat`); `None` where the kernel does not say.
pub fn thread_wait_time() -> Option<Duration> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    parse_run_delay(&schedstat)
}

/// The second of `schedstat`'s fields: nanoseconds on CPU, waiting for one, time slices.
fn parse_run_delay(schedstat: &str) -> Option<Duration> {
    let waited = schedstat.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(waited))
}

fn usage(who: libc::c_int) -> (Duration, Duration) {
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid and writable; RUSAGE_SELF and RUSAGE_THREAD cannot fail with
    // a valid pointer.
    unsafe { libc::getrusage(who, &mut usage) };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (time(usage.ru_utime), time(usage.ru_stime))
}

/// CPU time process `pid` has used, user and system, from `/proc/PID/stat`.
pub fn process_cpu_time(pid: u32) -> std::io::Result<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    parse_stat_times(&stat, ticks_per_sec).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat"),
        )
    })
}

/// utime and stime: fields 14 and 15, counted after the command name, which may itself hold
/// spaces and parentheses and so is skipped up to its last `)`.
fn parse_stat_times(stat: &str, ticks_per_sec: f64) -> Option<(Duration, Duration)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let mut next = || -> Option<Duration> {
        let ticks: u64 = fields.next()?.parse().ok()?;
        Some(Duration::from_secs_f64(ticks as f64 / ticks_per_sec))
    };
    Some((next()?, next()?))
}

/// The resident set size of process `pid` in bytes, from `VmRSS` in `/proc/PID/status`.
pub fn rss_bytes(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no VmRSS line in /proc/{pid}/status"),
        )
    })
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let kib: u64 = fields.next()?.parse().ok()?;
    (fields.next()? == "kB").then_some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\twsloop\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(4321 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        let own = rss_bytes(std::process::id()).unwrap();
        assert!(own > 100 * 1024, "{own}");
    }

    #[test]
    fn reads_cpu_times() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0";
        let (user, system) = parse_stat_times(stat, 100.0).unwrap();
        assert_eq!(
            (user, system),
            (Duration::from_millis(2500), Duration::from_millis(750))
        );
        assert!(process_cpu_time(std::process::id()).is_ok());
    }

    #[test]
    fn reads_the_run_queue_delay() {
        assert_eq!(
            parse_run_delay("625316 27081 3\n"),
            Some(Duration::from_nanos(27081))
        );
        assert_eq!(parse_run_delay("625316"), None);
        // Where schedstat exists, it counts up.
        if let Some(before) = thread_wait_time() {
            std::thread::yield_now();
            assert!(thread_wait_time().unwrap() >= before);
        }
    }

    #[test]
    fn a_thread_counts_only_its_own_cpu() {
        // Spins until the thread has used `cpu`, or for 5 s on a machine too busy to give it.
        let spin = |cpu: Duration| {
            let (start, from) = (std::time::Instant::now(), thread_cpu_time());
            while thread_cpu_time() - from < cpu && start.elapsed() < Duration::from_secs(5) {
                std::hint::black_box(0u64);
            }
        };
        let before = thread_cpu_time();
        std::thread::spawn(move || spin(Duration::from_millis(200)))
            .join()
            .unwrap();
        let other = thread_cpu_time() - before;
        assert!(other < Duration::from_millis(50), "{other:?}");
        spin(Duration::from_millis(50));
        let own = thread_cpu_time() - before;
        assert!(own >= Duration::from_millis(50), "{own:?}");
    }

    #[test]
    fn limit_is_raised_to_the_hard_limit() {
        let soft = raise_open_file_limit().unwrap();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!((soft, limit.rlim_cur), (limit.rlim_max, limit.rlim_max));
    }
}
