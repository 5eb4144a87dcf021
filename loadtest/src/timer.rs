//! A timer with microsecond precision for the event loop's deadlines, the open-loop schedule
//! above all.
//!
//! epoll's timeout counts whole milliseconds (mio rounds up), so a loop that sleeps in
//! `poll` sends open-loop messages up to a millisecond late, or must spin. A timerfd
//! registered in the same poll wakes the loop at the exact deadline instead, and a timer
//! slack of one nanosecond keeps the kernel from deferring it by its default 50 us. Waking
//! on time is also what makes the loop's own lag (how late it got to a deadline) a measure
//! of the generator rather than of epoll's rounding.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// A one-shot monotonic timerfd.
#[derive(Debug)]
pub struct PreciseTimer {
    fd: OwnedFd,
}

impl PreciseTimer {
    /// Creates the timer and registers it with `registry` under `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<PreciseTimer> {
        // SAFETY: plain syscall with constant flags; the result is checked before use.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(PreciseTimer { fd })
    }

    /// Asks for timer expirations without the kernel's default slack, for this thread.
    pub fn tighten_slack() {
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer; failure only keeps the default.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    }

    /// Fires once, `after` from now (at least 1 ns: zero would disarm it).
    pub fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(after.subsec_nanos() as i32),
            },
        };
        // SAFETY: a valid timerfd and a valid itimerspec; the old value is not asked for.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes an expiration, so that the next one wakes the (edge-triggered) poll again.
    pub fn clear(&self) {
        let mut expirations = [0u8; 8];
        // SAFETY: reads at most 8 bytes into an 8-byte buffer; EAGAIN (no expiration) is fine.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                expirations.as_mut_ptr().cast(),
                expirations.len(),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn wakes_the_poll_at_sub_millisecond_deadlines() {
        PreciseTimer::tighten_slack();
        let mut poll = mio::Poll::new().unwrap();
        let timer = PreciseTimer::new(poll.registry(), Token(7)).unwrap();
        let mut events = mio::Events::with_capacity(4);
        for _ in 0..3 {
            let start = Instant::now();
            timer.arm(Duration::from_micros(300)).unwrap();
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            let waited = start.elapsed();
            assert!(events.iter().any(|e| e.token() == Token(7)));
            assert!(waited >= Duration::from_micros(300), "{waited:?}");
            // Generous: a loaded machine may be slow to schedule the thread.
            assert!(waited < Duration::from_millis(200), "{waited:?}");
            timer.clear();
        }
    }
}
