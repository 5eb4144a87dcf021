//! Every metric of a server, read from each loop's counters at the moment of the scrape.

use super::process;
use super::text::{Exposition, Kind};
use crate::server::hub::Hub;
use crate::server::stats::{
    close_label, Buckets, Counter, LoopStats, Traffic, CLOSE_SLOTS, ERROR_NAMES, OPCODE_NAMES,
};

/// Renders every metric of the server behind `hub`.
pub(super) fn encode(hub: &Hub) -> String {
    let loops: Vec<(String, &LoopStats)> = (0..hub.loops())
        .map(|index| (index.to_string(), &**hub.stats(index)))
        .collect();
    let mut out = Exposition::default();
    let per_loop =
        |out: &mut Exposition, name: &str, help: &str, kind, value: fn(&LoopStats) -> u64| {
            out.family(name, help, kind);
            for (index, stats) in &loops {
                out.sample(name, &[("loop", index)], value(stats) as f64);
            }
        };

    out.family(
        "wsloop_loops",
        "Event loops running, one thread each.",
        Kind::Gauge,
    );
    out.sample("wsloop_loops", &[], hub.loops() as f64);
    out.family(
        "wsloop_connections",
        "TCP connections held, from accept to close (handshakes in progress included).",
        Kind::Gauge,
    );
    for ((index, _), held) in loops.iter().zip(hub.connections()) {
        out.sample("wsloop_connections", &[("loop", index)], held as f64);
    }
    per_loop(
        &mut out,
        "wsloop_open_websockets",
        "WebSocket connections open, accepted or outgoing: upgraded and not yet closed.",
        Kind::Gauge,
        LoopStats::open,
    );
    per_loop(
        &mut out,
        "wsloop_accepted_connections_total",
        "TCP connections taken in by the loop.",
        Kind::Counter,
        |s| s.accepted.get(),
    );
    per_loop(
        &mut out,
        "wsloop_upgrades_total",
        "Opening handshakes completed: 101 Switching Protocols sent, or received by an outgoing connection.",
        Kind::Counter,
        |s| s.upgrades.get(),
    );

    let name = "wsloop_http_responses_total";
    out.family(
        name,
        "HTTP answers other than 101, by status: plain requests, rejected upgrades, refusals \
         when full (503). Statuses never sent are left out.",
        Kind::Counter,
    );
    for (index, stats) in &loops {
        for (slot, count) in stats.http_responses.iter().enumerate() {
            if count.get() > 0 {
                let status = (slot + 100).to_string();
                out.sample(
                    name,
                    &[("loop", index), ("status", &status)],
                    count.get() as f64,
                );
            }
        }
    }

    let name = "wsloop_closes_total";
    out.family(
        name,
        "WebSocket connections closed, by the close code reported to on_close (1006: no \
         closing handshake). Application codes are grouped as 3xxx and 4xxx; codes never \
         seen are left out.",
        Kind::Counter,
    );
    for (index, stats) in &loops {
        for slot in (0..CLOSE_SLOTS).filter(|&slot| stats.closes[slot].get() > 0) {
            let code = close_label(slot);
            let count = stats.closes[slot].get() as f64;
            out.sample(name, &[("loop", index), ("code", &code)], count);
        }
    }

    let name = "wsloop_errors_total";
    out.family(
        name,
        "Connections dropped for an error, by kind: protocol violations, socket errors, \
         timeouts (no pong, no answer to a close), opening handshakes not finished in time.",
        Kind::Counter,
    );
    for (index, stats) in &loops {
        for (kind, count) in ERROR_NAMES.iter().zip(&stats.errors) {
            out.sample(name, &[("loop", index), ("kind", kind)], count.get() as f64);
        }
    }

    let traffic = [
        (
            "wsloop_messages_received_total",
            "Messages and control frames received, by opcode.",
            false,
            (|s| &s.received) as fn(&LoopStats) -> &Traffic,
        ),
        (
            "wsloop_received_payload_bytes_total",
            "Payload bytes received, by opcode (after decompression).",
            true,
            |s| &s.received,
        ),
        (
            "wsloop_messages_sent_total",
            "Messages and control frames sent, by opcode: the application's sends, publish \
             deliveries, and the protocol's own pongs and closes.",
            false,
            |s| &s.sent,
        ),
        (
            "wsloop_sent_payload_bytes_total",
            "Payload bytes sent, by opcode (before compression).",
            true,
            |s| &s.sent,
        ),
    ];
    for (name, help, bytes, direction) in traffic {
        out.family(name, help, Kind::Counter);
        for (index, stats) in &loops {
            let traffic = direction(stats);
            let counts = if bytes {
                &traffic.bytes
            } else {
                &traffic.messages
            };
            for (opcode, count) in OPCODE_NAMES.iter().zip(counts) {
                if let Some(opcode) = opcode {
                    let labels = [("loop", index.as_str()), ("opcode", opcode)];
                    out.sample(name, &labels, count.get() as f64);
                }
            }
        }
    }

    per_loop(
        &mut out,
        "wsloop_backpressure_pauses_total",
        "Times a connection's send queue passed the backpressure limit, so that it stopped \
         being read until the queue drained.",
        Kind::Counter,
        |s| s.backpressure_pauses.get(),
    );
    per_loop(
        &mut out,
        "wsloop_send_drops_total",
        "Sends dropped because the connection's queue was over max_buffered.",
        Kind::Counter,
        |s| s.send_drops.get(),
    );
    per_loop(
        &mut out,
        "wsloop_publishes_total",
        "Publishes made on the loop (each reaches every loop with subscribers).",
        Kind::Counter,
        |s| s.publishes.get(),
    );
    per_loop(
        &mut out,
        "wsloop_deliveries_total",
        "Published messages queued for the loop's subscribers.",
        Kind::Counter,
        |s| s.deliveries.get(),
    );
    let name = "wsloop_dropped_deliveries_total";
    out.family(
        name,
        "Published messages subscribers missed: skipped as too slow (slow_subscriber), or the \
         loop's whole share lost because its mailbox was full (mailbox_full, one per loop).",
        Kind::Counter,
    );
    for ((index, stats), mailbox_full) in loops.iter().zip(hub.dropped_deliveries()) {
        for (reason, count) in [
            ("slow_subscriber", stats.slow_drops.get()),
            ("mailbox_full", mailbox_full),
        ] {
            out.sample(name, &[("loop", index), ("reason", reason)], count as f64);
        }
    }
    per_loop(
        &mut out,
        "wsloop_slow_subscriber_closes_total",
        "Subscribers closed for being too slow (SlowSubscriber::Close).",
        Kind::Counter,
        |s| s.slow_closes.get(),
    );
    per_loop(
        &mut out,
        "wsloop_tls_handshakes_deferred_total",
        "TLS handshake reads put off to a later loop turn because the turn had processed its \
         cap of handshakes (a flood of them waits instead of starving open connections).",
        Kind::Counter,
        |s| s.tls_handshakes_deferred.get(),
    );

    let histograms = [
        (
            "wsloop_handshake_duration_seconds",
            "From accepting the TCP connection to sending 101.",
            1e-9,
            (|s| &s.handshake_ns) as fn(&LoopStats) -> &Buckets,
        ),
        (
            "wsloop_loop_turn_duration_seconds",
            "Time a loop turn spends working, from the poll's return to the next poll.",
            1e-9,
            |s| &s.turn_ns,
        ),
        (
            "wsloop_loop_turn_events",
            "Readiness events one loop turn handled.",
            1.0,
            |s| &s.events_per_turn,
        ),
    ];
    for (name, help, scale, buckets) in histograms {
        out.family(name, help, Kind::Histogram);
        for (index, stats) in &loops {
            let buckets = buckets(stats);
            out.histogram(
                name,
                &[("loop", index)],
                buckets.bounds.iter().map(|&bound| bound as f64 * scale),
                buckets.counts.iter().map(Counter::get),
                buckets.sum.get() as f64 * scale,
            );
        }
    }
    process::encode(&mut out);
    out.into_text()
}
