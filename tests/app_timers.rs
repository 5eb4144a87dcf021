//! Application timers in the loop: one-shot and interval, per connection and global,
//! cleared, and dropped with their connection.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use wsloop::{ConnId, Context, Handler, Message, Timer, TimerId};

/// Text commands: `after MS TAG` (a timeout for this connection), `every MS TAG` (an
/// interval for it), `global MS TAG` (a timeout of no connection, reported to whoever asked),
/// `clear TAG`. Each firing is recorded and sent to the connection as `fired TAG`.
/// Timers that fired: whose, and their tag.
type Fired = Arc<Mutex<Vec<(Option<ConnId>, u64)>>>;

#[derive(Default)]
struct Timed {
    fired: Fired,
    timers: Vec<(u64, TimerId)>,
    asked_by: Option<ConnId>,
    /// Intervals cleared after this many beats, by tag.
    beats: Vec<(u64, usize)>,
}

impl Handler for Timed {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        let words: Vec<&str> = text.split(' ').collect();
        let ms = |i: usize| Duration::from_millis(words[i].parse().unwrap());
        let tag = |i: usize| words[i].parse::<u64>().unwrap();
        let timer = match words[0] {
            "after" => ctx.set_timeout(ms(1), Some(id), tag(2)).unwrap(),
            "every" => ctx.set_interval(ms(1), Some(id), tag(2)).unwrap(),
            "global" => {
                self.asked_by = Some(id);
                ctx.set_timeout(ms(1), None, tag(2)).unwrap()
            }
            "clear" => {
                let (_, timer) = self.timers.iter().find(|(t, _)| *t == tag(1)).unwrap();
                let cleared = ctx.clear_timer(*timer);
                let _ = ctx.send_text(id, &format!("cleared {cleared}"));
                return;
            }
            _ => return,
        };
        self.timers.push((tag(2), timer));
        let _ = ctx.send_text(id, "set");
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: Timer) {
        self.fired.lock().unwrap().push((timer.conn, timer.tag));
        let to = timer.conn.or(self.asked_by).unwrap();
        let _ = ctx.send_text(to, &format!("fired {}", timer.tag));
        if let Some(beat) = self.beats.iter_mut().find(|(tag, _)| *tag == timer.tag) {
            beat.1 -= 1;
            if beat.1 == 0 {
                assert!(ctx.clear_timer(timer.id));
            }
        }
    }
}

fn ask(raw: &mut Raw, command: &str) {
    raw.send(OP_TEXT, command.as_bytes());
    assert_eq!(raw.read_message().1, b"set");
}

fn text(raw: &mut Raw) -> String {
    String::from_utf8(raw.read_message().1).unwrap()
}

#[test]
fn a_timeout_fires_once_after_its_delay() {
    let (addr, handle, join) = start(config(), Timed::default());
    let mut raw = Raw::open(addr);
    let start = Instant::now();
    ask(&mut raw, "after 80 7");
    assert_eq!(text(&mut raw), "fired 7");
    assert!(
        start.elapsed() >= Duration::from_millis(80),
        "{:?}",
        start.elapsed()
    );
    // Once: nothing follows.
    raw.set_read_timeout(Duration::from_millis(200));
    assert!(
        matches!(raw.next(), Next::Timeout),
        "a one-shot timer fired again"
    );
    raw.set_read_timeout(IO_TIMEOUT);
    raw.send(OP_TEXT, b"clear 7");
    assert_eq!(text(&mut raw), "cleared false");
    stop(handle, join);
}

#[test]
fn an_interval_repeats_until_cleared() {
    let handler = Timed {
        beats: vec![(3, 4)],
        ..Timed::default()
    };
    let (addr, handle, join) = start(config(), handler);
    let mut raw = Raw::open(addr);
    ask(&mut raw, "every 10 3");
    for _ in 0..4 {
        assert_eq!(text(&mut raw), "fired 3");
    }
    // Cleared by the handler at the fourth beat.
    raw.set_read_timeout(Duration::from_millis(150));
    assert!(
        matches!(raw.next(), Next::Timeout),
        "beats after clear_timer"
    );
    stop(handle, join);
}

#[test]
fn a_cleared_timeout_never_fires() {
    let handler = Timed::default();
    let fired = handler.fired.clone();
    let (addr, handle, join) = start(config(), handler);
    let mut raw = Raw::open(addr);
    ask(&mut raw, "after 100 5");
    raw.send(OP_TEXT, b"clear 5");
    assert_eq!(text(&mut raw), "cleared true");
    raw.set_read_timeout(Duration::from_millis(250));
    assert!(matches!(raw.next(), Next::Timeout));
    assert!(fired.lock().unwrap().is_empty());
    stop(handle, join);
}

#[test]
fn a_global_timer_belongs_to_no_connection() {
    let handler = Timed::default();
    let fired = handler.fired.clone();
    let (addr, handle, join) = start(config(), handler);
    let mut raw = Raw::open(addr);
    ask(&mut raw, "global 20 9");
    assert_eq!(text(&mut raw), "fired 9");
    assert_eq!(*fired.lock().unwrap(), [(None, 9)]);
    stop(handle, join);
}

#[test]
fn a_closed_connections_timers_are_dropped() {
    let handler = Timed::default();
    let fired = handler.fired.clone();
    let (addr, handle, join) = start(config(), handler);
    let mut leaving = Raw::open(addr);
    ask(&mut leaving, "every 10 1");
    assert_eq!(text(&mut leaving), "fired 1");
    ask(&mut leaving, "after 100 2");
    let mut staying = Raw::open(addr);
    ask(&mut staying, "every 10 3");
    // Read until the close answer, skipping beats that were on their way.
    leaving.send(OP_CLOSE, &close_payload(1000, b""));
    loop {
        let frame = leaving.frame();
        if frame.opcode == OP_CLOSE {
            break;
        }
    }
    leaving.expect_closed();
    let closed_at = fired.lock().unwrap().len();
    // The other connection's interval goes on; the closed one's never fire again.
    for _ in 0..5 {
        assert_eq!(text(&mut staying), "fired 3");
    }
    std::thread::sleep(Duration::from_millis(150));
    let after: Vec<u64> = fired.lock().unwrap()[closed_at..]
        .iter()
        .map(|(_, tag)| *tag)
        .collect();
    assert!(after.iter().all(|&tag| tag == 3), "after close: {after:?}");
    stop(handle, join);
}
