//! One worker thread: its own mio event loop over its share of the connections, the
//! connection ramp, the open-loop schedule, timeouts, the run's stages from sending to
//! closing, and what the loop notices about itself (how late it ran, how busy its core was).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::cli::{ModeKind, Plan};
use crate::client::{connect_error, reason, Conn, Phase, Progress, Readiness};
use crate::live::{Figures, Tick};
use crate::stamp::Clock;
use crate::stats::{record, ErrorKind, Stats};
use crate::system::{thread_cpu_time, thread_wait_time};
use crate::timer::PreciseTimer;
use crate::traffic::{first_slot, Load};

/// Handshakes in progress per thread when no --connect-rate is given: enough to connect
/// quickly, few enough not to overflow the server's accept backlog (whose SYN retries would
/// show up as one-second handshakes).
const MAX_PENDING: usize = 128;
/// How often connections are checked for timeouts.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How often the live figures go to the main thread.
const TICK_EVERY: Duration = Duration::from_secs(1);
/// How often the loop's lag is sampled: a timer this often, and how late it fires.
const LAG_PROBE_EVERY: Duration = Duration::from_millis(10);
/// Broadcast: the drain ends after this long without a delivery.
const QUIET: Duration = Duration::from_millis(500);
/// Longest wait for the server's side of the closing handshake at the end.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// The one read buffer of a thread; every connection's input passes through it.
const READ_BUFFER: usize = 256 << 10;
/// The precise timer's token: beyond any slab key.
const TIMER: Token = Token(usize::MAX);

/// What every worker shares.
#[derive(Debug)]
pub struct Shared {
    /// Time zero of the run: the warm-up, the window and every schedule count from here.
    pub start: Instant,
    pub clock: Clock,
    /// Connections whose connect has ended, in success or failure, over all threads.
    pub settled: AtomicU64,
}

/// The stages of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Connecting and sending (or holding, in idle mode).
    Running,
    /// No new messages; waiting for those in flight.
    Draining { until: Instant },
    /// Idle mode: waiting for the pongs of the final ping.
    Checking { until: Instant },
    /// Closing handshakes under way.
    Closing { until: Instant },
}

/// One thread's event loop and connections.
pub struct Worker {
    thread: usize,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    poll: Poll,
    timer: PreciseTimer,
    /// The deadline the timer is armed for, so that it is set once per deadline.
    timer_armed: Option<Instant>,
    conns: Slab<Conn>,
    /// The connection ids this thread opens, in order.
    ids: Vec<u64>,
    next_id: usize,
    /// Connects and handshakes in progress.
    pending: usize,
    /// This thread's share of --connect-rate.
    connect_rate: Option<f64>,
    load: Load,
    /// Open-loop sends by due time; stale entries are skipped.
    schedule: BinaryHeap<Reverse<(Instant, usize)>>,
    buf: Vec<u8>,
    ticks: Sender<Tick>,
    stage: Stage,
    /// When sending (or, in idle mode, holding) ends.
    end_at: Option<Instant>,
    publishing: bool,
    next_check: Instant,
    next_tick: Instant,
    next_ping: Option<Instant>,
    last_delivery: Instant,
    /// The lag probe's next deadline.
    next_probe: Instant,
    /// When the measured period began for this thread, and its CPU and run-queue times then.
    busy_since: Option<(Instant, Duration, Option<Duration>)>,
    /// CPU time, and time waiting for a CPU, over wall time in the measured period, once it
    /// has ended.
    busy: Option<(f64, Option<f64>)>,
}

impl Worker {
    /// Worker `thread` of `plan.threads`: it opens the connections of its lane of the
    /// process's share (see [`crate::share`]), and sends its part of --messages.
    pub fn new(
        thread: usize,
        plan: Arc<Plan>,
        shared: Arc<Shared>,
        ticks: Sender<Tick>,
    ) -> io::Result<Worker> {
        let lane = plan.lane(thread);
        let ids: Vec<u64> = lane.ids(plan.connections).collect();
        let quota = plan.max_messages.map(|total| lane.of(total));
        let start = shared.start;
        let load = Load::new(&plan, start, shared.clock, quota);
        let end_at = (plan.mode != ModeKind::Idle).then_some(start + plan.duration);
        let poll = Poll::new()?;
        let timer = PreciseTimer::new(poll.registry(), TIMER)?;
        Ok(Worker {
            thread,
            poll,
            timer,
            timer_armed: None,
            connect_rate: plan.connect_rate.map(|rate| rate / lane.count as f64),
            conns: Slab::with_capacity(ids.len()),
            ids,
            next_id: 0,
            pending: 0,
            load,
            schedule: BinaryHeap::new(),
            buf: vec![0; READ_BUFFER],
            ticks,
            stage: Stage::Running,
            end_at,
            publishing: false,
            next_check: start + CHECK_EVERY,
            next_tick: start + TICK_EVERY,
            next_ping: None,
            last_delivery: start,
            next_probe: start + LAG_PROBE_EVERY,
            busy_since: None,
            busy: None,
            plan,
            shared,
        })
    }

    /// Runs until every connection is closed; returns what was measured.
    pub fn run(mut self) -> io::Result<Stats> {
        PreciseTimer::tighten_slack();
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            self.watch_itself(now);
            self.open_due(now);
            self.send_scheduled(now);
            self.housekeeping(now);
            if self.advance(now) {
                break;
            }
            let wake = self.next_wake(now);
            let wait = wake.saturating_duration_since(now);
            if !wait.is_zero() && self.timer_armed != Some(wake) {
                // The timerfd wakes the poll on time; the poll's own timeout, in whole
                // milliseconds, is a backstop.
                self.timer.arm(wait)?;
                self.timer_armed = Some(wake);
            }
            let timeout = if wait.is_zero() {
                wait
            } else {
                wait + Duration::from_millis(1)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            for event in events.iter() {
                if event.token() == TIMER {
                    self.timer.clear();
                    self.timer_armed = None;
                    continue;
                }
                let readiness = if event.is_read_closed() || event.is_error() {
                    Readiness::Closed
                } else if event.is_readable() {
                    Readiness::Readable
                } else {
                    Readiness::Writable
                };
                self.on_event(event.token().0, readiness);
            }
        }
        self.end_busy(Instant::now());
        if let Some((busy, waiting)) = self.busy {
            self.load.stats.thread_busy.push(busy);
            self.load.stats.thread_waiting.extend(waiting);
        }
        self.tick();
        Ok(self.load.stats)
    }

    /// The lag probe: how late the loop got round to a deadline it set itself
    /// [`LAG_PROBE_EVERY`] before (a slow wake-up, or a long turn over many events, delays
    /// every timer and every event alike), noted while the load runs after the warm-up. Also
    /// starts the measured period of the thread's CPU time.
    fn watch_itself(&mut self, now: Instant) {
        let measuring = self.stage == Stage::Running && now >= self.shared.start + self.plan.warmup;
        if now >= self.next_probe {
            if measuring {
                record(&mut self.load.stats.loop_lag, now - self.next_probe);
            }
            self.next_probe = now + LAG_PROBE_EVERY;
        }
        if measuring && self.busy_since.is_none() {
            self.busy_since = Some((now, thread_cpu_time(), thread_wait_time()));
        }
    }

    /// Ends the measured period of the thread's CPU and run-queue times (once).
    fn end_busy(&mut self, now: Instant) {
        let (None, Some((since, cpu, waited))) = (self.busy, self.busy_since) else {
            return;
        };
        let wall = now.saturating_duration_since(since).as_secs_f64();
        if wall > 0.0 {
            let share = |d: Duration| d.as_secs_f64() / wall;
            let waiting = waited
                .zip(thread_wait_time())
                .map(|(before, after)| share(after.saturating_sub(before)));
            self.busy = Some((share(thread_cpu_time() - cpu), waiting));
        }
    }

    /// Opens the connections the ramp allows by `now`.
    fn open_due(&mut self, now: Instant) {
        if self.stage != Stage::Running || self.end_at.is_some_and(|end| now >= end) {
            return;
        }
        while self.next_id < self.ids.len() {
            let allowed = match self.connect_rate {
                Some(_) => self.ramp_due().is_some_and(|due| due <= now),
                None => self.pending < MAX_PENDING,
            };
            if !allowed {
                break;
            }
            let id = self.ids[self.next_id];
            self.next_id += 1;
            self.open(id);
        }
    }

    /// When the ramp opens its next connection.
    fn ramp_due(&self) -> Option<Instant> {
        let rate = self.connect_rate?;
        (self.next_id < self.ids.len())
            .then(|| self.shared.start + Duration::from_secs_f64(self.next_id as f64 / rate))
    }

    fn open(&mut self, id: u64) {
        self.load.stats.attempted += 1;
        let source = self
            .plan
            .source
            .as_ref()
            .map(|s| s.nth(self.plan.share.position(id)));
        let plan = &self.plan;
        let tls = plan.tls.as_ref();
        let mut conn = match Conn::connect(id, &plan.target, source, plan.deflate, tls) {
            Ok(conn) => conn,
            Err(e) => {
                let kind = connect_error(&e);
                self.load.stats.error_because(kind, reason(kind, &e));
                self.settle();
                return;
            }
        };
        let entry = self.conns.vacant_entry();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self
            .poll
            .registry()
            .register(conn.stream(), Token(entry.key()), interest)
            .is_err()
        {
            self.load.stats.error(ErrorKind::Io);
            self.settle();
            return;
        }
        entry.insert(conn);
        self.pending += 1;
    }

    fn settle(&self) {
        self.shared.settled.fetch_add(1, Ordering::Relaxed);
    }

    fn on_event(&mut self, key: usize, readiness: Readiness) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let was_pending = matches!(conn.phase(), Phase::Connecting | Phase::Handshaking);
        let received = conn.traffic.received;
        let progress = conn.on_ready(readiness, &mut self.buf, &mut self.load);
        let now = Instant::now();
        if conn.traffic.received > received {
            self.last_delivery = now;
        }
        match progress {
            Progress::Finished(error) => return self.finish(key, error, was_pending),
            Progress::Opened => {
                record(&mut self.load.stats.handshake, now - conn.started);
                self.pending -= 1;
                self.settle();
                self.load.stats.opened += 1;
                self.start_traffic(key, now);
            }
            Progress::Pending => {}
        }
        self.send_more(key, now);
        self.flush(key);
    }

    /// Starts a newly opened connection's messages.
    fn start_traffic(&mut self, key: usize, now: Instant) {
        if self.plan.mode != ModeKind::Latency {
            return;
        }
        if let Some(rate) = self.plan.rate {
            let conn = &mut self.conns[key];
            let id = conn.traffic.id;
            let due = first_slot(self.shared.start, id, self.plan.connections, rate, now);
            conn.traffic.next_due = Some(due);
            self.schedule.push(Reverse((due, key)));
        }
    }

    /// Sends what the mode allows after a connection made progress.
    fn send_more(&mut self, key: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.is_open() {
            return;
        }
        if self.load.interval().is_some() {
            let before = conn.traffic.next_due;
            self.load.send_due(conn, now);
            if let Some(due) = conn
                .traffic
                .next_due
                .filter(|_| conn.traffic.next_due != before)
            {
                self.schedule.push(Reverse((due, key)));
            }
        } else if matches!(self.plan.mode, ModeKind::Echo | ModeKind::Latency) {
            self.load.fill(conn, now);
        }
    }

    fn flush(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if let Err(error) = conn.flush() {
                let was_pending = matches!(conn.phase(), Phase::Handshaking);
                self.finish(key, error, was_pending);
            }
        }
    }

    /// Removes a connection that has ended.
    fn finish(&mut self, key: usize, error: Option<ErrorKind>, was_pending: bool) {
        let mut conn = self.conns.remove(key);
        // Dropping the socket removes it from epoll too; this only keeps mio's books.
        let _ = self.poll.registry().deregister(conn.stream());
        if was_pending {
            self.pending -= 1;
            self.settle();
        }
        if let Some(kind) = error {
            self.load.stats.error_because(kind, conn.take_reason());
        }
    }

    /// Open loop and publishing: sends whatever has come due.
    fn send_scheduled(&mut self, now: Instant) {
        while let Some(&Reverse((due, key))) = self.schedule.peek() {
            if due > now {
                break;
            }
            self.schedule.pop();
            let current = self.conns.get(key).and_then(|c| c.traffic.next_due);
            if current == Some(due) {
                self.send_more(key, now);
                self.flush(key);
            }
        }
    }

    /// Timeouts, live ticks, pings and, for broadcast, the start of publishing.
    fn housekeeping(&mut self, now: Instant) {
        if now >= self.next_tick {
            self.tick();
            self.next_tick += TICK_EVERY;
        }
        if now >= self.next_check {
            self.next_check = now + CHECK_EVERY;
            self.expire(now);
        }
        if self.next_ping.is_some_and(|at| now >= at) && self.stage == Stage::Running {
            for (_, conn) in self.conns.iter_mut() {
                self.load.ping(conn, now);
            }
            self.flush_all();
            self.next_ping = self.plan.ping_interval.map(|every| now + every);
        }
        let everyone = self.plan.own_connections();
        if self.plan.mode == ModeKind::Broadcast
            && !self.publishing
            && self.stage == Stage::Running
            && self.shared.settled.load(Ordering::Relaxed) >= everyone
        {
            self.start_publishing(now);
        }
    }

    /// Broadcast: once every connection of every thread has settled, so that each message
    /// reaches the same set of subscribers, the publishers start on their schedule. (Of every
    /// thread of this process: agents do not wait for each other.)
    fn start_publishing(&mut self, now: Instant) {
        self.publishing = true;
        let Some(rate) = self.plan.rate else {
            return;
        };
        let publishers = self.plan.publishers;
        for (key, conn) in self.conns.iter_mut() {
            let id = conn.traffic.id;
            if id < publishers && conn.is_open() {
                let due = first_slot(self.shared.start, id, publishers, rate, now);
                conn.traffic.next_due = Some(due);
                self.schedule.push(Reverse((due, key)));
            }
        }
    }

    /// Drops connections that waited longer than --timeout for a connect, a handshake, an
    /// echo or a pong.
    fn expire(&mut self, now: Instant) {
        let timeout = self.plan.timeout;
        let late = |since: Instant| now.saturating_duration_since(since) > timeout;
        let expired: Vec<(usize, bool)> = self
            .conns
            .iter()
            .filter_map(|(key, conn)| {
                let pending = matches!(conn.phase(), Phase::Connecting | Phase::Handshaking);
                let stuck = match conn.phase() {
                    Phase::Connecting | Phase::Handshaking => late(conn.started),
                    Phase::Open => {
                        conn.traffic.inflight.front().is_some_and(|m| late(m.sent))
                            || conn.traffic.ping.is_some_and(|(_, at)| late(at))
                    }
                    Phase::Closing => false,
                };
                stuck.then_some((key, pending))
            })
            .collect();
        for (key, pending) in expired {
            self.finish(key, Some(ErrorKind::Timeout), pending);
        }
    }

    fn flush_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.flush(key);
        }
    }

    fn tick(&mut self) {
        let open = self.conns.iter().filter(|(_, c)| c.is_open()).count() as u64;
        let latency = self.load.stats.latency.clone();
        // The main thread may have stopped listening; the figures are also in the result.
        let _ = self.ticks.send(Tick {
            thread: self.thread,
            figures: Figures {
                open,
                sent: self.load.stats.sent,
                received: self.load.stats.received,
                errors: self.load.stats.error_count(),
                latency,
            },
        });
    }

    /// Moves through the stages; true when the run is over for this thread.
    fn advance(&mut self, now: Instant) -> bool {
        let ramp_done = self.next_id == self.ids.len() && self.pending == 0;
        if self.stage == Stage::Running && ramp_done && self.conns.is_empty() {
            // Every connection failed or was closed by the server: nothing left to measure.
            self.stop_sending(now);
            self.begin_closing(now);
        }
        match self.stage {
            Stage::Running => match self.plan.mode {
                ModeKind::Echo | ModeKind::Latency | ModeKind::Broadcast => {
                    // In this order: every connection is scanned only once the quota is
                    // used up, not on every turn of the loop.
                    let out_of_quota = self.load.quota_used_up()
                        && self
                            .conns
                            .iter()
                            .all(|(_, c)| c.traffic.inflight.is_empty());
                    if self.end_at.is_some_and(|end| now >= end) || out_of_quota {
                        self.stop_sending(now);
                        self.stage = Stage::Draining {
                            until: now + self.plan.timeout,
                        };
                    }
                }
                ModeKind::Connect => {
                    if ramp_done || self.end_at.is_some_and(|end| now >= end) {
                        self.load.stats.sending_time = now - self.shared.start;
                        self.end_busy(now);
                        self.begin_closing(now);
                    }
                }
                ModeKind::Idle => match self.end_at {
                    None if ramp_done => {
                        self.end_busy(now);
                        self.end_at = Some(now + self.plan.duration);
                        self.next_ping = self.plan.ping_interval.map(|every| now + every);
                    }
                    Some(end) if now >= end => {
                        for (_, conn) in self.conns.iter_mut() {
                            self.load.ping(conn, now);
                        }
                        self.flush_all();
                        self.stage = Stage::Checking {
                            until: now + self.plan.timeout,
                        };
                    }
                    _ => {}
                },
            },
            Stage::Draining { until } => {
                let drained = if self.plan.mode == ModeKind::Broadcast {
                    now.saturating_duration_since(self.last_delivery) >= QUIET
                } else {
                    self.conns
                        .iter()
                        .all(|(_, c)| c.traffic.inflight.is_empty())
                };
                if drained || now >= until {
                    let lost: Vec<usize> = self
                        .conns
                        .iter()
                        .filter(|(_, c)| !c.traffic.inflight.is_empty())
                        .map(|(key, _)| key)
                        .collect();
                    for key in lost {
                        self.finish(key, Some(ErrorKind::Timeout), false);
                    }
                    self.begin_closing(now);
                }
            }
            Stage::Checking { until } => {
                let answered = self.conns.iter().all(|(_, c)| c.traffic.ping.is_none());
                if answered || now >= until {
                    let alive = self.conns.iter().filter(|(_, c)| c.traffic.alive).count();
                    self.load.stats.alive_at_end = alive as u64;
                    let silent: Vec<usize> = self
                        .conns
                        .iter()
                        .filter(|(_, c)| c.traffic.ping.is_some())
                        .map(|(key, _)| key)
                        .collect();
                    for key in silent {
                        self.finish(key, Some(ErrorKind::Timeout), false);
                    }
                    self.begin_closing(now);
                }
            }
            Stage::Closing { until } => {
                if self.conns.is_empty() {
                    return true;
                }
                if now >= until {
                    // The server never finished its side; nothing more to measure.
                    let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
                    for key in keys {
                        self.finish(key, None, false);
                    }
                    return true;
                }
            }
        }
        false
    }

    /// End of the sending time: no new messages; counts the scheduled ones that never left.
    fn stop_sending(&mut self, now: Instant) {
        self.end_busy(now);
        self.load.sending = false;
        self.load.stats.sending_time =
            now.min(self.shared.start + self.plan.duration) - self.shared.start;
        let (Some(interval), Some(end)) = (self.load.interval(), self.end_at) else {
            return;
        };
        let end = end.min(now);
        for (_, conn) in self.conns.iter() {
            if let Some(due) = conn.traffic.next_due.filter(|due| *due < end) {
                let missed = ((end - due).as_secs_f64() / interval.as_secs_f64()).ceil();
                self.load.stats.behind_schedule += missed as u64;
            }
        }
    }

    /// Starts the closing handshake on every open connection; drops those still connecting.
    fn begin_closing(&mut self, now: Instant) {
        self.stage = Stage::Closing {
            until: now + CLOSE_WAIT,
        };
        let unfinished: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase(), Phase::Connecting | Phase::Handshaking))
            .map(|(key, _)| key)
            .collect();
        for key in unfinished {
            self.finish(key, Some(ErrorKind::Timeout), true);
        }
        for (_, conn) in self.conns.iter_mut() {
            conn.close(now);
        }
        self.flush_all();
    }

    /// The next moment something is due: an open-loop send, a check, a tick, the lag probe,
    /// the end of a stage, the ramp's next connection or a ping.
    fn next_wake(&self, now: Instant) -> Instant {
        let send = self.schedule.peek().map(|&Reverse((due, _))| due);
        let stage_end = match self.stage {
            Stage::Running => self.end_at,
            Stage::Draining { until } | Stage::Checking { until } | Stage::Closing { until } => {
                Some(until)
            }
        };
        [send, stage_end, self.ramp_due(), self.next_ping]
            .into_iter()
            .flatten()
            .fold(
                self.next_check.min(self.next_tick).min(self.next_probe),
                Instant::min,
            )
            .max(now)
    }
}
