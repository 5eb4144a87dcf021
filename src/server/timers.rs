//! Deadlines without a timer thread: a min-heap of (time, connection), read once per loop turn.
//!
//! A connection has one deadline at a time (handshake, idle or close, depending on its
//! state) that moves on every read. Moving it later touches only the connection; the heap
//! gets an entry only when a deadline moves earlier than the entry it has, and an entry that
//! comes due early is put back at the connection's current deadline. So a busy connection
//! costs no heap work per message.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

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

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Millis, ConnId)>>,
}

impl Timers {
    /// Sets `deadline` to `at`, adding a heap entry only if `at` is earlier than the one it has.
    pub(crate) fn set(&mut self, id: ConnId, deadline: &mut Deadline, at: Millis) {
        deadline.at = at;
        if at < deadline.scheduled {
            deadline.scheduled = at;
            self.heap.push(Reverse((at, id)));
        }
    }

    /// When the loop must wake up next for a deadline.
    pub(crate) fn next_wake(&self) -> Option<Millis> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops the next entry due at `now`, with the time it was scheduled for.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<(Millis, ConnId)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(entry)| entry),
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
            self.heap.push(Reverse((deadline.at, id)));
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
        let mut timers = Timers::default();
        let id = ConnId::new(0, 1, 1);
        let mut deadline = Deadline::default();
        timers.set(id, &mut deadline, 100);
        for at in 101..200 {
            timers.set(id, &mut deadline, at);
        }
        assert_eq!(timers.len(), 1);
        // At 100 the entry comes due, but the deadline moved to 199: it is put back.
        let (popped, who) = timers.pop_due(100).unwrap();
        assert_eq!(who, id);
        assert!(!timers.settle(id, &mut deadline, popped, 100));
        assert_eq!(timers.next_wake(), Some(199));
        let (popped, _) = timers.pop_due(199).unwrap();
        assert!(timers.settle(id, &mut deadline, popped, 199));
    }

    #[test]
    fn earlier_deadline_wakes_earlier() {
        let mut timers = Timers::default();
        let id = ConnId::new(0, 1, 1);
        let mut deadline = Deadline::default();
        timers.set(id, &mut deadline, 1000);
        timers.set(id, &mut deadline, 10);
        assert_eq!(timers.next_wake(), Some(10));
        assert!(timers.pop_due(9).is_none());
        let (popped, _) = timers.pop_due(10).unwrap();
        assert!(timers.settle(id, &mut deadline, popped, 10));
    }
}
