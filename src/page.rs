//! The live page: one self-contained HTML file (echo with round-trip times, a chat room,
//! the server's figures drawn every second) and the feed of figures it subscribes to.
//!
//! The binary serves it at `/` ([`EchoRooms::with_page`](crate::rooms::EchoRooms::with_page));
//! a library user opts in the same way, or serves [`HTML`] and runs a [`StatsFeed`] in
//! their own handler.

use std::fmt::Write;
use std::time::Instant;

use crate::metrics::{LoopSnapshot, Metrics, Snapshot};

/// The page, with its CSS and JavaScript inline and nothing loaded from elsewhere. It
/// connects to `/echo`, `/chat/ROOM` and `/stats` on the host that served it.
pub const HTML: &str = include_str!("page/index.html");

/// The topic the figures are published to, once a second. It has a space, which no
/// request path (and so no `/chat/ROOM` room) can hold.
pub const STATS_TOPIC: &str = "wsloop stats";

/// Turns [`Metrics`] snapshots into the page's JSON: totals and per-loop figures, with rates
/// over the time since the previous [`tick`](StatsFeed::tick).
///
/// ```
/// # let server = wsloop::Server::bind(wsloop::Config { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() }, wsloop::Echo).unwrap();
/// let mut feed = wsloop::page::StatsFeed::new(server.metrics());
/// let json = feed.tick();
/// assert!(json.starts_with(r#"{"uptime_s":"#));
/// assert!(json.contains(r#""connections":0"#));
/// ```
#[derive(Debug)]
pub struct StatsFeed {
    metrics: Metrics,
    last: Option<(Instant, Snapshot)>,
}

impl StatsFeed {
    pub fn new(metrics: Metrics) -> StatsFeed {
        StatsFeed {
            metrics,
            last: None,
        }
    }

    /// The figures now, with rates since the last tick (0 on the first), as one JSON object:
    /// `{"uptime_s", "connections", "messages_in_per_s", "messages_out_per_s",
    /// "bytes_in_per_s", "bytes_out_per_s", "loops": [{"loop", "connections", ...}]}`.
    pub fn tick(&mut self) -> String {
        let now = Instant::now();
        let snapshot = self.metrics.snapshot();
        let json = match &self.last {
            Some((then, before)) => {
                let seconds = now.duration_since(*then).as_secs_f64();
                self.render(&snapshot, Some((before, seconds)))
            }
            None => self.render(&snapshot, None),
        };
        self.last = Some((now, snapshot));
        json
    }

    /// The figures now with no rates, for a page that has just subscribed (it does not
    /// disturb the rates of the next tick).
    pub fn current(&self) -> String {
        self.render(&self.metrics.snapshot(), None)
    }

    fn render(&self, snapshot: &Snapshot, before: Option<(&Snapshot, f64)>) -> String {
        let mut json = String::with_capacity(256 + 160 * snapshot.loops.len());
        let uptime = self.metrics.uptime().as_secs_f64();
        let _ = write!(json, r#"{{"uptime_s":{uptime:.1},"#);
        let total_before = before.map(|(b, seconds)| (b.total(), seconds));
        write_figures(&mut json, &snapshot.total(), total_before.as_ref());
        json.push_str(r#","loops":["#);
        for (index, now) in snapshot.loops.iter().enumerate() {
            if index > 0 {
                json.push(',');
            }
            let _ = write!(json, r#"{{"loop":{index},"#);
            let loop_before = before.and_then(|(b, seconds)| Some((*b.loops.get(index)?, seconds)));
            write_figures(&mut json, now, loop_before.as_ref());
            json.push('}');
        }
        json.push_str("]}");
        json
    }
}

/// `"connections":N,"messages_in_per_s":R,...` for one loop or the total.
fn write_figures(json: &mut String, now: &LoopSnapshot, before: Option<&(LoopSnapshot, f64)>) {
    let rate = |pick: fn(&LoopSnapshot) -> u64| match before {
        Some((before, seconds)) if *seconds > 0.0 => {
            pick(now).saturating_sub(pick(before)) as f64 / seconds
        }
        _ => 0.0,
    };
    let _ = write!(
        json,
        r#""connections":{},"messages_in_per_s":{:.1},"messages_out_per_s":{:.1},"bytes_in_per_s":{:.1},"bytes_out_per_s":{:.1}"#,
        now.open,
        rate(|s| s.messages_in),
        rate(|s| s.messages_out),
        rate(|s| s.bytes_in),
        rate(|s| s.bytes_out),
    );
}
