//! Deadlines and timers without a timer thread: one min-heap of (time, what), read once per
//! loop turn, for the server's connection deadlines and the application's timers alike.
//!
//! A connection has one deadline at a time (handshake, idle or close, depending on its
//! state) that moves on every read. Moving it later touches only the connection; the heap
//! gets an entry only when a deadline moves earlier than the entry it has, and an entry that
//! comes due early is put back at the connection's current deadline. So a busy connection
//! costs no heap work per message.
//!
//! An application timer ([`Context::set_timeout`](super::Context::set_timeout)) is one heap
//! entry plus one slot in a slab; clearing it frees the slot and leaves the heap entry to be
//! skipped when it comes due.
//!
//! A heap entry is 16 bytes, time and key: every connection has one, so the key packs both
//! kinds into one `u64`. A connection's key is its id with the loop field zeroed (every id in
//! this heap is this loop's); a timer's key has 1 there.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use slab::Slab;

use super::token::ConnId;

/// Milliseconds since the loop started: the time the loop passes around.
pub(crate) type Millis = u64;

/// "No deadline".
pub(crate) const NEVER: Millis = Millis::MAX;

/// A connection's deadline and the earliest heap entry it has.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Millis,
    scheduled: Millis,
}

impl Default for Deadline {
    fn default() -> Deadline {
        Deadline {
            at: NEVER,
            scheduled: NEVER,
        }
    }
}

/// What a heap entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// A connection's deadline.
    Conn(ConnId),
    /// An application timer.
    Timer(TimerId),
}

/// The loop field of a heap key (see the module docs): 0 for a connection, 1 for a timer.
const KIND_SHIFT: u32 = 24;
const KIND_MASK: u64 = 0xFF << KIND_SHIFT;
const SLOT_MASK: u64 = (1 << KIND_SHIFT) - 1;
/// Application timers one loop holds at most (the 24-bit slot of a heap key).
pub(crate) const MAX_TIMERS: usize = SLOT_MASK as usize;

/// Names an application timer, to clear it; never reused while the loop runs (until a
/// 32-bit generation wraps around).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

impl TimerId {
    fn new(index: usize, generation: u32) -> TimerId {
        debug_assert!(index < MAX_TIMERS);
        TimerId((u64::from(generation) << 32) | (1 << KIND_SHIFT) | index as u64)
    }

    fn index(self) -> usize {
        (self.0 & SLOT_MASK) as usize
    }

    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl fmt::Debug for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimerId({}#{})", self.index(), self.generation())
    }
}

/// An application timer that came due, as [`Handler::on_timer`](crate::Handler::on_timer)
/// receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    /// The id [`Context::set_timeout`](super::Context::set_timeout) or `set_interval`
    /// returned.
    pub id: TimerId,
    /// The connection the timer belongs to, if any: it is still open.
    pub conn: Option<ConnId>,
    /// The application's tag, to tell its timers apart.
    pub tag: u64,
    /// Whether it comes again (an interval) unless cleared.
    pub repeats: bool,
}

/// A scheduled application timer.
#[derive(Debug)]
struct AppTimer {
    generation: u32,
    at: Millis,
    /// `Some` for an interval.
    every: Option<Millis>,
    conn: Option<ConnId>,
    tag: u64,
}

#[derive(Debug)]
pub(crate) struct Timers {
    /// (when, key): see the module docs for the key.
    heap: BinaryHeap<Reverse<(Millis, u64)>>,
    app: Slab<AppTimer>,
    next_generation: u32,
    /// The loop whose connections' keys this heap holds.
    loop_index: usize,
}

impl Timers {
    pub(crate) fn new(loop_index: usize) -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            app: Slab::new(),
            next_generation: 0,
            loop_index,
        }
    }

    fn key(due: Due) -> u64 {
        match due {
            Due::Conn(id) => id.as_u64() & !KIND_MASK,
            Due::Timer(timer) => timer.0,
        }
    }

    fn due(&self, key: u64) -> Due {
        if key & KIND_MASK == 0 {
            let index = (key & SLOT_MASK) as usize;
            Due::Conn(ConnId::new(self.loop_index, index, (key >> 32) as u32))
        } else {
            Due::Timer(TimerId(key))
        }
    }

    /// Sets `deadline` to `at`, adding a heap entry only if `at` is earlier than the one it has.
    pub(crate) fn set(&mut self, id: ConnId, deadline: &mut Deadline, at: Millis) {
        deadline.at = at;
        if at < deadline.scheduled {
            deadline.scheduled = at;
            self.heap.push(Reverse((at, Timers::key(Due::Conn(id)))));
        }
    }

    /// Schedules an application timer at `at`, again every `every` ms if given; `None` when
    /// the loop holds [`MAX_TIMERS`] already.
    pub(crate) fn add(
        &mut self,
        at: Millis,
        every: Option<Millis>,
        conn: Option<ConnId>,
        tag: u64,
    ) -> Option<TimerId> {
        if self.app.vacant_key() >= MAX_TIMERS {
            return None;
        }
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let index = self.app.insert(AppTimer {
            generation,
            at,
            every: every.map(|ms| ms.max(1)),
            conn,
            tag,
        });
        let id = TimerId::new(index, generation);
        self.heap.push(Reverse((at, Timers::key(Due::Timer(id)))));
        Some(id)
    }

    /// Clears an application timer; false if it had fired (once) or was cleared already.
    pub(crate) fn clear(&mut self, id: TimerId) -> bool {
        match self.app.get(id.index()) {
            Some(timer) if timer.generation == id.generation() => {
                self.app.remove(id.index());
                true
            }
            _ => false,
        }
    }

    /// Takes a due application timer: a one-shot one leaves the table, an interval is
    /// scheduled again. `None` for a timer cleared since, or whose heap entry is stale.
    pub(crate) fn fire(&mut self, id: TimerId, popped_at: Millis, now: Millis) -> Option<Timer> {
        let timer = self.app.get_mut(id.index())?;
        if timer.generation != id.generation() || timer.at != popped_at {
            return None;
        }
        let fired = Timer {
            id,
            conn: timer.conn,
            tag: timer.tag,
            repeats: timer.every.is_some(),
        };
        match timer.every {
            Some(every) => {
                // A loop that fell behind skips the missed beats rather than firing a burst.
                timer.at = (timer.at + every).max(now + 1);
                self.heap
                    .push(Reverse((timer.at, Timers::key(Due::Timer(id)))));
            }
            None => {
                self.app.remove(id.index());
            }
        }
        Some(fired)
    }

    /// Application timers scheduled and not cleared.
    #[cfg(test)]
    pub(crate) fn app_timers(&self) -> usize {
        self.app.len()
    }

    /// When the loop must wake up next for a deadline.
    pub(crate) fn next_wake(&self) -> Option<Millis> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops the next entry due at `now`, with the time it was scheduled for.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<(Millis, Due)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => {
                let Reverse((at, key)) = self.heap.pop()?;
                Some((at, self.due(key)))
            }
            _ => None,
        }
    }

    /// Settles a popped entry against its connection's deadline: returns whether the deadline
    /// has passed; if it has not, makes sure an entry remains for it.
    pub(crate) fn settle(
        &mut self,
        id: ConnId,
        deadline: &mut Deadline,
        popped_at: Millis,
        now: Millis,
    ) -> bool {
        if popped_at == deadline.scheduled {
            deadline.scheduled = NEVER;
        }
        if deadline.at <= now {
            return true;
        }
        if deadline.scheduled == NEVER && deadline.at != NEVER {
            deadline.scheduled = deadline.at;
            self.heap
                .push(Reverse((deadline.at, Timers::key(Due::Conn(id)))));
        }
        false
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_deadlines_cost_no_heap_entries() {
        let mut timers = Timers::new(3);
        let id = ConnId::new(3, 1, 1);
        let mut deadline = Deadline::default();
        timers.set(id, &mut deadline, 100);
        for at in 101..200 {
            timers.set(id, &mut deadline, at);
        }
        assert_eq!(timers.len(), 1);
        // At 100 the entry comes due, but the deadline moved to 199: it is put back.
        let (popped, who) = timers.pop_due(100).unwrap();
        assert_eq!(who, Due::Conn(id));
        assert!(!timers.settle(id, &mut deadline, popped, 100));
        assert_eq!(timers.next_wake(), Some(199));
        let (popped, _) = timers.pop_due(199).unwrap();
        assert!(timers.settle(id, &mut deadline, popped, 199));
    }

    #[test]
    fn earlier_deadline_wakes_earlier() {
        let mut timers = Timers::new(3);
        let id = ConnId::new(3, 1, 1);
        let mut deadline = Deadline::default();
        timers.set(id, &mut deadline, 1000);
        timers.set(id, &mut deadline, 10);
        assert_eq!(timers.next_wake(), Some(10));
        assert!(timers.pop_due(9).is_none());
        let (popped, _) = timers.pop_due(10).unwrap();
        assert!(timers.settle(id, &mut deadline, popped, 10));
    }

    #[test]
    fn app_timers_fire_once_or_repeat_and_can_be_cleared() {
        let mut timers = Timers::new(3);
        let once = timers.add(10, None, None, 1).unwrap();
        let every = timers.add(10, Some(5), None, 2).unwrap();
        let cleared = timers.add(10, None, None, 3).unwrap();
        assert!(timers.clear(cleared));
        assert!(!timers.clear(cleared), "cleared once");
        let mut fired = Vec::new();
        while let Some((at, Due::Timer(id))) = timers.pop_due(10) {
            if let Some(timer) = timers.fire(id, at, 10) {
                fired.push((timer.tag, timer.repeats));
            }
        }
        fired.sort();
        assert_eq!(fired, [(1, false), (2, true)]);
        assert_eq!(timers.app_timers(), 1, "the interval stays");
        assert_eq!(timers.next_wake(), Some(15));
        // A loop 100 ms late fires the interval once, then at its next beat after now.
        let (at, due) = timers.pop_due(110).unwrap();
        let Due::Timer(id) = due else { panic!() };
        assert_eq!(id, every);
        assert!(timers.fire(id, at, 110).is_some());
        assert_eq!(timers.next_wake(), Some(111));
        assert!(timers.clear(every));
        assert_eq!(timers.app_timers(), 0);
        assert!(!timers.clear(once), "a one-shot timer that fired is gone");
    }

    #[test]
    fn heap_keys_tell_connections_from_timers_and_keep_the_loop() {
        let mut timers = Timers::new(200);
        let conn = ConnId::new(200, crate::server::token::MAX_INDEX - 1, u32::MAX);
        let mut deadline = Deadline::default();
        timers.set(conn, &mut deadline, 5);
        let timer = timers.add(5, None, Some(conn), 9).unwrap();
        let mut due = vec![timers.pop_due(5).unwrap().1, timers.pop_due(5).unwrap().1];
        due.sort_by_key(|d| matches!(d, Due::Timer(_)));
        assert_eq!(due, [Due::Conn(conn), Due::Timer(timer)]);
        assert_eq!(std::mem::size_of::<Reverse<(Millis, u64)>>(), 16);
    }
}
