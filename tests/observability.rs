//! What an operator watches, checked on the binary: `/metrics` (linted by Prometheus's own
//! `promtool`, and its counters moving by exactly what a scripted exchange did), the
//! separate metrics address, and the access log as JSON lines.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::Proc;
use common::*;
use tungstenite::Message as TMessage;

/// A sample's labels, some of them.
type Labels<'a> = &'a [(&'a str, &'a str)];

/// The samples of one scrape: `name{labels}` to value.
#[derive(Debug, Default)]
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    /// The sum over every sample of `name` whose labels include all of `labels` (so over
    /// every loop unless `loop` is given).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(key, _)| {
                let (key_name, key_labels) = key.split_once('{').unwrap_or((key, ""));
                key_name == name
                    && labels
                        .iter()
                        .all(|(k, v)| key_labels.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, value)| value)
            .sum()
    }
}

fn scrape(addr: SocketAddr, path: &str) -> Scrape {
    let mut raw = Raw::connect(addr);
    raw.write(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let response = raw.read_response();
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = response.body_text().to_owned();
    let samples = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').expect("sample line");
            (key.to_owned(), value.parse::<f64>().expect("sample value"))
        })
        .collect();
    Scrape { text, samples }
}

/// Scrapes until `done` holds (the loops count as they go; a scrape may come a moment
/// before the last count), at most 5 s; returns the last scrape.
fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let start = Instant::now();
    loop {
        let scrape = scrape(addr, "/metrics");
        if done(&scrape) {
            return scrape;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}; last scrape:\n{}",
            scrape.text
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `promtool check metrics` on the text, when promtool is here (`.ci/run` installs it from
/// Debian's `prometheus` package and sets WSLOOP_REQUIRE_INTEROP=1, which makes it required).
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            assert!(
                std::env::var_os("WSLOOP_REQUIRE_INTEROP").is_none(),
                "WSLOOP_REQUIRE_INTEROP is set but promtool cannot run ({err}): \
                 apt-get install prometheus"
            );
            eprintln!("!!! SKIPPED: promtool not found ({err}); /metrics not linted");
            return;
        }
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n--- the text:\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn metrics_pass_promtool_and_count_a_scripted_exchange_exactly() {
    let mut proc = Proc::spawn(&["--listen", "127.0.0.1:0", "--threads", "2"]);
    let addr = proc.listening_addr();
    let before = scrape(addr, "/metrics");
    promtool_check(&before.text);
    assert_eq!(before.sum("wsloop_loops", &[]), 2.0);

    // Two connections, one on each loop (balanced accepting): 3 texts of 5 bytes, 2 binary
    // messages of 1,000 bytes, a ping of 4 bytes, then a clean close with 1000.
    let mut a = ws_connect_path(addr, "/echo");
    let mut b = Raw::open(addr);
    for _ in 0..3 {
        a.send(TMessage::text("hello")).unwrap();
        assert_eq!(ws_read_data(&mut a), TMessage::text("hello"));
    }
    for _ in 0..2 {
        b.send(OP_BINARY, &[7; 1000]);
        assert_eq!(b.read_message(), (OP_BINARY, vec![7; 1000]));
    }
    b.send(OP_PING, b"ping");
    let pong = b.frame();
    assert_eq!((pong.opcode, &pong.payload[..]), (OP_PONG, &b"ping"[..]));
    ws_close(a);
    b.close_normally();
    // A protocol error (an unmasked frame: 1002), a rejected upgrade (404: a room needs a
    // name) and a plain request that is not a route (426).
    assert_fails(addr, &frame(true, 0, OP_TEXT, None, b"x"), 1002, "unmasked");
    let mut rejected = Raw::connect(addr);
    rejected.write(&upgrade_request("/chat/", &[]));
    assert_eq!(rejected.read_response().status, 404);
    let mut plain = Raw::connect(addr);
    plain.write(b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(plain.read_response().status, 426);

    let delta = |after: &Scrape, name: &str, labels: &[(&str, &str)]| {
        after.sum(name, labels) - before.sum(name, labels)
    };
    let after = scrape_until(addr, "the exchange's closes", |s| {
        s.sum("wsloop_closes_total", &[]) - before.sum("wsloop_closes_total", &[]) >= 3.0
    });
    promtool_check(&after.text);
    let received = "wsloop_messages_received_total";
    let received_bytes = "wsloop_received_payload_bytes_total";
    let sent = "wsloop_messages_sent_total";
    let sent_bytes = "wsloop_sent_payload_bytes_total";
    let expected: &[(&str, Labels, f64)] = &[
        ("wsloop_upgrades_total", &[], 3.0),
        ("wsloop_closes_total", &[("code", "1000")], 2.0),
        ("wsloop_closes_total", &[("code", "1006")], 1.0),
        ("wsloop_errors_total", &[("kind", "protocol")], 1.0),
        (received, &[("opcode", "text")], 3.0),
        (received_bytes, &[("opcode", "text")], 15.0),
        (received, &[("opcode", "binary")], 2.0),
        (received_bytes, &[("opcode", "binary")], 2000.0),
        (received, &[("opcode", "ping")], 1.0),
        (received, &[("opcode", "close")], 2.0),
        (sent, &[("opcode", "text")], 3.0),
        (sent_bytes, &[("opcode", "text")], 15.0),
        (sent, &[("opcode", "binary")], 2.0),
        (sent_bytes, &[("opcode", "binary")], 2000.0),
        (sent, &[("opcode", "pong")], 1.0),
        (sent_bytes, &[("opcode", "pong")], 4.0),
        // Two echoes of the clients' closes and the close failing the unmasked frame.
        (sent, &[("opcode", "close")], 3.0),
        ("wsloop_http_responses_total", &[("status", "404")], 1.0),
        ("wsloop_http_responses_total", &[("status", "426")], 1.0),
        ("wsloop_handshake_duration_seconds_count", &[], 3.0),
        ("wsloop_open_websockets", &[], 0.0),
    ];
    for (name, labels, want) in expected {
        assert_eq!(
            delta(&after, name, labels),
            *want,
            "{name}{labels:?}\n{}",
            after.text
        );
    }
    // The three WebSockets, the 404, the 426, and the scrapes in between (at least one).
    assert!(delta(&after, "wsloop_accepted_connections_total", &[]) >= 6.0);
    assert!(after.sum("wsloop_loop_turn_duration_seconds_count", &[]) > 0.0);
    assert!(after.sum("process_resident_memory_bytes", &[]) > 0.0);
    assert!(after.sum("process_open_fds", &[]) > 0.0);
    // Balanced accepting spread the connections: both loops counted some.
    for index in ["0", "1"] {
        assert!(
            delta(&after, "wsloop_upgrades_total", &[("loop", index)]) >= 1.0,
            "loop {index}\n{}",
            after.text
        );
    }
    proc.stop();
}

#[test]
fn open_websockets_gauge_follows_connections() {
    let mut proc = Proc::spawn(&["--listen", "127.0.0.1:0", "--threads", "2"]);
    let addr = proc.listening_addr();
    let open = |s: &Scrape| s.sum("wsloop_open_websockets", &[]);
    let mut clients: Vec<Ws> = (0..5).map(|_| ws_connect_path(addr, "/echo")).collect();
    scrape_until(addr, "5 open", |s| open(s) == 5.0);
    for ws in clients.drain(..2) {
        ws_close(ws);
    }
    scrape_until(addr, "3 open", |s| open(s) == 3.0);
    drop(clients);
    scrape_until(addr, "none open", |s| open(s) == 0.0);
    proc.stop();
}

#[test]
fn metrics_listen_moves_metrics_off_the_public_port() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = free.local_addr().unwrap();
    drop(free);
    let mut proc = Proc::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        &metrics_addr.to_string(),
    ]);
    let addr = proc.listening_addr();
    let mut ws = ws_connect_path(addr, "/echo");
    ws.send(TMessage::text("counted")).unwrap();
    assert_eq!(ws_read_data(&mut ws), TMessage::text("counted"));
    // The internal address serves the main server's figures...
    let scraped = scrape_until(metrics_addr, "the echo counted", |s| {
        s.sum("wsloop_messages_received_total", &[("opcode", "text")]) == 1.0
    });
    promtool_check(&scraped.text);
    // ...and the public port no longer does.
    let mut public = Raw::connect(addr);
    public.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(public.read_response().status, 426);
    let mut other = Raw::connect(metrics_addr);
    other.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(other.read_response().status, 404);
    ws_close(ws);
    proc.stop();
}

#[test]
fn access_log_writes_a_json_line_per_connection() {
    let mut proc = Proc::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--access-log",
        "--log-format",
        "json",
    ]);
    let addr = proc.listening_addr();
    let mut ws = ws_connect_path(addr, "/echo?token=secret");
    ws.send(TMessage::text("12345")).unwrap();
    assert_eq!(ws_read_data(&mut ws), TMessage::text("12345"));
    ws_close(ws);
    // A connection the server closes: an unmasked frame fails it with 1002.
    assert_fails(addr, &frame(true, 0, OP_TEXT, None, b"x"), 1002, "unmasked");
    let stderr = proc.stop();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .filter(|line: &serde_json::Value| line["target"] == "wsloop::access")
        .collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    let by_path = |path: &str| {
        lines
            .iter()
            .find(|line| line["path"] == path)
            .unwrap_or_else(|| panic!("no line for {path}: {stderr}"))
    };
    let echo = by_path("/echo");
    assert_eq!(echo["status"], 101);
    assert_eq!(echo["messages_in"], 2, "a text and the close: {echo}");
    assert_eq!(echo["bytes_in"], 5 + 2);
    assert_eq!(echo["messages_out"], 2);
    assert_eq!(echo["bytes_out"], 5 + 2);
    assert_eq!(echo["close_code"], 1000);
    assert_eq!(echo["closed_by"], "peer");
    assert!(echo["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert!(echo["peer"]
        .as_str()
        .is_some_and(|peer| peer.starts_with("127.0.0.1:")));
    let failed = by_path("/");
    assert_eq!(failed["close_code"], 1006, "{failed}");
    assert_eq!(failed["closed_by"], "server");
}

/// The status and `Content-Type` of a plain request for `path` with `method`.
fn plain(addr: SocketAddr, method: &str, path: &str) -> (u16, Option<String>) {
    let mut raw = Raw::connect(addr);
    raw.write(
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    );
    let response = raw.read_response();
    (
        response.status,
        response.header("content-type").map(str::to_owned),
    )
}

#[test]
fn the_page_and_metrics_routes_answer_get_and_refuse_the_rest() {
    let mut proc = Proc::spawn(&["--listen", "127.0.0.1:0"]);
    let addr = proc.listening_addr();
    let html = Some("text/html; charset=utf-8".to_owned());
    assert_eq!(plain(addr, "GET", "/"), (200, html));
    assert_eq!(plain(addr, "POST", "/").0, 405);
    assert_eq!(plain(addr, "DELETE", "/metrics").0, 405);
    assert_eq!(plain(addr, "GET", "/nothing").0, 426);
    proc.stop();

    let mut proc = Proc::spawn(&["--listen", "127.0.0.1:0", "--no-page"]);
    let addr = proc.listening_addr();
    assert_eq!(plain(addr, "GET", "/").0, 426);
    assert_eq!(plain(addr, "GET", "/metrics").0, 200);
    // Without the page, /stats is an ordinary echo path.
    let mut ws = ws_connect_path(addr, "/stats");
    ws.send(TMessage::text("echoed")).unwrap();
    assert_eq!(ws_read_data(&mut ws), TMessage::text("echoed"));
    ws_close(ws);
    proc.stop();
}
