//! Runs `wsloop-load` against an in-process wsloop server in every mode, at small scale,
//! and checks that the JSON report parses and its figures add up.

mod common;

use std::process::{Command, Output};

use serde_json::Value;
use wsloop::{CloseCode, ConnId, Context, Handler, Message, Request, Upgrade};

use common::{assert_clean, broadcast_args, run, run_with, Run, TestServer};

#[test]
fn echo_counts_every_message_and_writes_all_outputs() {
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    let args = [
        "echo", "--url", &url, "-c", "20", "-d", "1200ms", "--warmup", "200ms", "--depth", "8",
        "--size", "1KiB", "--text", "--hgrm", "lat.hgrm", "--plot", "lat.svg",
    ];
    let run = run("echo", &args);
    assert_clean(&run);
    assert_eq!(run.u64("connections_opened"), 20);
    let sent = run.u64("messages_sent");
    assert!(sent > 1000, "only {sent} messages in a second");
    assert_eq!(run.u64("messages_received"), sent, "every message echoed");
    let rate = run.f64("messages_per_sec");
    assert!(
        rate > 1000.0 && rate * run.f64("window_s") <= sent as f64,
        "{rate}"
    );
    assert!((run.f64("bytes_per_sec") - rate * 1024.0).abs() < 1.0);
    run.percentiles("latency_us");
    run.percentiles("handshake_us");
    let cost = run.report["generator"]["cpu_us_per_message"]
        .as_f64()
        .unwrap();
    assert!(cost > 0.0 && cost < 1000.0, "{cost} us of CPU per message");
    // The generator's self-check: its one thread's share of its core, and its loop's lag.
    let generator = &run.report["generator"];
    let busy = generator["thread_busy"].as_array().unwrap();
    assert_eq!(busy.len(), 1, "{generator}");
    let busiest = generator["busiest_thread"].as_f64().unwrap();
    assert!(busiest > 0.0 && busiest <= 1.05, "{generator}");
    assert_eq!(busy[0].as_f64(), Some(busiest));
    assert_eq!(generator["saturated"].as_bool(), Some(busiest >= 0.8));
    // Where the kernel keeps schedstat, the thread's wait for a CPU too.
    let waiting = generator["thread_waiting"].as_array().unwrap();
    assert!(
        waiting.len() <= 1 && generator["starved"].is_boolean(),
        "{generator}"
    );
    assert!(
        generator["loop_lag_us"]["count"].as_u64().unwrap() > 0,
        "{generator}"
    );
    assert_eq!(run.report["agents"], Value::Null);
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert!(
        stdout.contains("  self-check    busiest thread "),
        "{stdout}"
    );

    let hgrm = std::fs::read_to_string(run.dir.join("lat.hgrm")).unwrap();
    assert!(hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
    let count_line = hgrm.lines().find(|l| l.starts_with("#[Max")).unwrap();
    let count: u64 = count_line
        .rsplit('=')
        .next()
        .unwrap()
        .trim_end_matches(']')
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, run.report["latency_us"]["count"].as_u64().unwrap());
    let svg = std::fs::read_to_string(run.dir.join("lat.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
}

#[test]
fn echo_with_permessage_deflate_both_ways() {
    for context_takeover in [false, true] {
        let deflate = wsloop::proto::deflate::DeflateConfig {
            server_no_context_takeover: !context_takeover,
            client_no_context_takeover: !context_takeover,
            // Every echo compressed too.
            threshold: 1,
            ..Default::default()
        };
        let config = wsloop::Config {
            deflate: Some(deflate),
            ..wsloop::Config::default()
        };
        let server = TestServer::start_with(config, wsloop::Echo);
        let url = server.url("/");
        let args = [
            "echo",
            "--url",
            &url,
            "-c",
            "10",
            "-d",
            "1s",
            "--warmup",
            "200ms",
            "--depth",
            "4",
            "--size",
            "1KiB",
            "--text",
            "--deflate",
        ];
        let run = run("echo-deflate", &args);
        assert_clean(&run);
        let sent = run.u64("messages_sent");
        assert!(sent > 100, "only {sent} compressed messages in a second");
        assert_eq!(run.u64("messages_received"), sent, "every message echoed");
    }
}

#[test]
fn deflate_declined_is_a_handshake_failure() {
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    let args = [
        "echo",
        "--url",
        &url,
        "-c",
        "3",
        "-d",
        "500ms",
        "--warmup",
        "100ms",
        "--deflate",
    ];
    let run = run_with("echo-no-deflate", &args, true);
    assert_eq!(
        run.errors().get("handshake_failed"),
        Some(&3),
        "{}",
        run.report
    );
}

#[test]
fn echo_stops_at_a_message_count() {
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    let args = [
        "echo",
        "--url",
        &url,
        "-c",
        "10",
        "-d",
        "20s",
        "--warmup",
        "0s",
        "--messages",
        "5000",
        // Two worker threads share the count and their figures are merged.
        "--threads",
        "2",
    ];
    let run = run("count", &args);
    assert_clean(&run);
    assert_eq!(run.u64("messages_sent"), 5000);
    assert_eq!(run.u64("messages_received"), 5000);
    assert!(
        run.f64("window_s") < 10.0,
        "stopped at the count, not the duration"
    );
    assert_eq!(run.report["latency_us"]["count"].as_u64(), Some(5000));
}

#[test]
fn closed_loop_latency() {
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    let args = [
        "latency", "--url", &url, "-c", "50", "-d", "1200ms", "--warmup", "200ms", "--size", "20",
    ];
    let run = run_with("closed", &args, false);
    assert_clean(&run);
    let live = String::from_utf8_lossy(&run.output.stderr);
    assert!(live.contains("[   1s] open "), "live line: {live}");
    assert!(live.contains(" msg/s  errors 0 "), "live line: {live}");
    assert_eq!(run.u64("messages_received"), run.u64("messages_sent"));
    assert_eq!(run.report["open_loop"], false);
    assert_eq!(run.report["latency_uncorrected_us"], Value::Null);
    run.percentiles("latency_us");
}

#[test]
fn open_loop_latency_keeps_the_rate_and_both_figures() {
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    let args = [
        "latency", "--url", &url, "-c", "20", "-d", "1500ms", "--warmup", "300ms", "--rate", "2000",
    ];
    let run = run("open", &args);
    assert_clean(&run);
    assert_eq!(run.report["open_loop"], true);
    assert_eq!(run.u64("messages_received"), run.u64("messages_sent"));
    let rate = run.f64("messages_per_sec");
    // Loose below: on a loaded machine the generator may fall behind its schedule.
    assert!((1400.0..2300.0).contains(&rate), "asked 2000/s, got {rate}");
    let corrected = run.percentiles("latency_us");
    let uncorrected = run.percentiles("latency_uncorrected_us");
    // Measured from the intended send time, never earlier than the actual one.
    assert!(
        corrected.iter().zip(&uncorrected).all(|(c, u)| c >= u),
        "{corrected:?} {uncorrected:?}"
    );
    run.percentiles("send_lag_us");
}

#[test]
fn connect_reports_every_handshake() {
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    let run = run(
        "connect",
        &[
            "connect",
            "--url",
            &url,
            "-c",
            "300",
            "-d",
            "5s",
            "--connect-rate",
            "3000",
        ],
    );
    assert_clean(&run);
    assert_eq!(run.u64("connections_opened"), 300);
    assert_eq!(run.report["handshake_us"]["count"].as_u64(), Some(300));
    run.percentiles("handshake_us");
    // Connect mode's distribution, for `plot`, is the handshakes'.
    let distribution = &run.report["latency_distribution"];
    assert_eq!(distribution["of"], "handshake");
    assert_eq!(run.report["label"], format!("connect {url}"));
    let rate = run.f64("handshakes_per_sec");
    assert!(rate > 100.0 && rate < 3300.0, "ramp at 3000/s gave {rate}");
}

#[test]
fn idle_holds_connections_and_samples_memory() {
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    // The server runs in this process, so its memory is this process's.
    let pid = std::process::id().to_string();
    let args = [
        "idle",
        "--url",
        &url,
        "-c",
        "200",
        // The last periodic ping falls due with the final check: one ping, one pong.
        "-d",
        "750ms",
        "--ping-interval",
        "250ms",
        "--server-pid",
        &pid,
        "--source",
        "127.0.0.1-127.0.0.4",
    ];
    let run = run("idle", &args);
    assert_clean(&run);
    let idle = &run.report["idle"];
    assert_eq!(idle["alive_at_end"].as_u64(), Some(200));
    assert_eq!(idle["pings"], idle["pongs"]);
    assert!(idle["pings"].as_u64().unwrap() >= 600, "{idle}");
    assert!(idle["bytes_per_connection"].as_f64().is_some());
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert!(
        stdout.contains("note: per-connection memory assumes a freshly started server"),
        "{stdout}"
    );
    let server = &run.report["server"];
    assert!(server["rss_before_bytes"].as_u64().unwrap() > 0);
    assert!(server["rss_after_bytes"].as_u64().unwrap() > 0);
    let busy = server["cores_busy"].as_f64().unwrap();
    assert!((0.0..=2.5).contains(&busy), "{busy}");
}

/// Every message to /room goes to every connection (the sender too).
#[derive(Default)]
struct Fanout {
    members: Vec<ConnId>,
}

impl Handler for Fanout {
    type Data = ();

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
        match req.path() {
            "/room" => Upgrade::accept(),
            _ => Upgrade::reject(404, "no such room"),
        }
    }

    fn on_open(&mut self, _ctx: &mut Context<'_>, id: ConnId) {
        self.members.push(id);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, _id: ConnId, msg: Message<'_>) {
        for &member in &self.members {
            let _ = ctx.send(member, msg);
        }
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, id: ConnId, _code: CloseCode, _reason: &str) {
        self.members.retain(|&m| m != id);
    }
}

#[test]
fn broadcast_delivers_every_message_to_every_subscriber() {
    let server = TestServer::start(Fanout::default());
    let url = server.url("/room");
    let args = [
        "broadcast",
        "--url",
        &url,
        "-c",
        "10",
        "--publishers",
        "2",
        "--rate",
        "400",
        "-d",
        "1200ms",
        "--warmup",
        "200ms",
        "--size",
        "64",
        "--text",
    ];
    let run = run("broadcast", &args);
    assert_clean(&run);
    let published = run.u64("published");
    assert!(
        (300..=500).contains(&published),
        "400/s for 1.2 s gave {published}"
    );
    assert_eq!(run.u64("deliveries"), published * 10);
    // The sender is among the receivers here, and still a fan-out.
    assert_eq!(run.u64("own_deliveries"), published);
    assert_eq!(fan_out_warnings(&run), Vec::<String>::new());
    let rate = run.f64("deliveries_per_sec");
    assert!((3000.0..5000.0).contains(&rate), "{rate}");
    run.percentiles("latency_us");

    let wrong_room = run_wrong_room(&server);
    assert_eq!(wrong_room.errors().get("handshake_failed"), Some(&3));
}

/// The warnings about the path's fan-out (those about the generator itself depend on how
/// busy the machine is).
fn fan_out_warnings(run: &Run) -> Vec<String> {
    let warnings: Vec<String> =
        serde_json::from_value(run.report["warnings"].clone()).expect("warnings are a list");
    warnings
        .into_iter()
        .filter(|w| w.contains("/chat/ROOM"))
        .collect()
}

#[test]
fn broadcast_warns_on_an_echo_path() {
    // The wsloop binary's handler: off /chat/ROOM it echoes.
    let server = TestServer::start(wsloop::rooms::EchoRooms::default());
    let url = server.url("/");
    let run = run("broadcast-echo", &broadcast_args(&url));
    assert_clean(&run);
    assert!(run.u64("published") > 0);
    assert_eq!(
        run.u64("own_deliveries"),
        run.u64("deliveries"),
        "{}",
        run.report
    );
    let warnings = fan_out_warnings(&run);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("looks like an echo, not a fan-out")
            && warnings[0].contains("/chat/ROOM"),
        "{warnings:?}"
    );
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert!(
        stdout.contains("warning: no subscriber received a published message"),
        "{stdout}"
    );
}

#[test]
fn broadcast_does_not_warn_on_a_fan_out() {
    let server = TestServer::start(wsloop::rooms::EchoRooms::default());
    let url = server.url("/chat/x");
    let run = run("broadcast-rooms", &broadcast_args(&url));
    assert_clean(&run);
    let published = run.u64("published");
    assert!(published > 0);
    // A room publishes to everyone else: 5 deliveries a message, none back to the sender.
    assert_eq!(run.u64("deliveries"), published * 5, "{}", run.report);
    assert_eq!(run.u64("own_deliveries"), 0);
    assert_eq!(fan_out_warnings(&run), Vec::<String>::new());
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert!(!stdout.contains("/chat/ROOM"), "{stdout}");
}

fn run_wrong_room(server: &TestServer) -> Run {
    let url = server.url("/elsewhere");
    run(
        "wrong-room",
        &[
            "broadcast",
            "--url",
            &url,
            "-c",
            "3",
            "-d",
            "300ms",
            "--warmup",
            "0s",
        ],
    )
}

/// Echoes with one byte changed.
struct Corrupt;

impl Handler for Corrupt {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let mut bytes = msg.as_bytes().to_vec();
        let middle = bytes.len() / 2;
        if let Some(byte) = bytes.get_mut(middle) {
            *byte ^= 0x01;
        }
        let _ = ctx.send_binary(id, &bytes);
    }
}

#[test]
fn corrupted_echoes_are_caught() {
    let server = TestServer::start(Corrupt);
    let url = server.url("/");
    let run = run(
        "corrupt",
        &[
            "echo", "--url", &url, "-c", "2", "-d", "500ms", "--warmup", "0s", "--depth", "1",
        ],
    );
    assert_eq!(run.output.status.code(), Some(1), "mismatches fail the run");
    let mismatches = run.u64("payload_mismatches");
    assert!(mismatches > 10);
    assert_eq!(run.errors().get("payload_mismatch"), Some(&mismatches));
}

/// Closes every connection with 4000 on its first message.
struct Hangup;

impl Handler for Hangup {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, _msg: Message<'_>) {
        let _ = ctx.close(id, CloseCode(4000), "go away");
    }
}

#[test]
fn server_closes_and_refusals_are_errors_by_kind() {
    let server = TestServer::start(Hangup);
    let url = server.url("/");
    let hangup = run(
        "hangup",
        &[
            "echo", "--url", &url, "-c", "5", "-d", "500ms", "--warmup", "0s",
        ],
    );
    assert_eq!(
        hangup.errors().get("closed_with_code_4000"),
        Some(&5),
        "{}",
        hangup.report
    );

    // A port nothing listens on: bind one, note it, free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/");
    let refused = run(
        "refused",
        &["connect", "--url", &url, "-c", "4", "-d", "1s"],
    );
    assert_eq!(refused.errors().get("refused"), Some(&4));
    assert_eq!(refused.output.status.code(), Some(1), "nothing connected");
}

#[test]
fn remote_targets_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_wsloop-load"))
        .args(["echo", "--url", "ws://192.0.2.1:9001/", "-d", "1s"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--allow-remote"));
}

/// A fake server that answers every upgrade with `101` and a wrong `Sec-WebSocket-Accept`.
#[test]
fn a_wrong_accept_key_fails_the_handshake() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..3 {
            let (mut stream, _) = listener.accept().unwrap();
            let request = read_request(&mut stream);
            assert!(request.starts_with("GET / HTTP/1.1\r\n"));
            stream
                .write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                      Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                )
                .unwrap();
            held.push(stream);
        }
    });
    let url = format!("ws://{addr}/");
    let run = run(
        "bad-accept",
        &["connect", "--url", &url, "-c", "3", "-d", "2s"],
    );
    fake.join().unwrap();
    assert_eq!(
        run.errors().get("handshake_failed"),
        Some(&3),
        "{}",
        run.report
    );
    assert_eq!(run.u64("connections_opened"), 0);
}

/// Reads an HTTP request head from a fake server's client.
fn read_request(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "client hung up mid-request");
        request.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(request).unwrap()
}

/// A fake server that accepts permessage-deflate and then sends a compressed message that
/// does not inflate: the generator must fail the connection with a close frame carrying the
/// code for bad compressed data (RFC 7692 section 8: "the receiving endpoint MUST _Fail the
/// WebSocket Connection_"), and count a protocol error.
#[test]
fn a_message_that_does_not_inflate_is_answered_with_a_close_frame() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use wsloop::proto::{accept_key, ProtocolError};

    /// The next frame from the client, unmasked: its opcode and payload.
    fn client_frame(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head)?;
        assert!(head[1] & 0x80 != 0, "a client frame is masked");
        let len = match head[1] & 0x7f {
            126 => {
                let mut len = [0u8; 2];
                stream.read_exact(&mut len)?;
                u64::from(u16::from_be_bytes(len))
            }
            127 => {
                let mut len = [0u8; 8];
                stream.read_exact(&mut len)?;
                u64::from_be_bytes(len)
            }
            len => u64::from(len),
        };
        let mut mask = [0u8; 4];
        stream.read_exact(&mut mask)?;
        let mut payload = vec![0u8; len as usize];
        stream.read_exact(&mut payload)?;
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        Ok((head[0] & 0x0f, payload))
    }

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || -> Result<u16, String> {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let request = read_request(&mut stream);
        let key = request
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim())
            })
            .expect("a Sec-WebSocket-Key");
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            accept_key(key.as_bytes())
        );
        stream.write_all(answer.as_bytes()).unwrap();
        // FIN, RSV1 (compressed), text; unmasked; four bytes that are no deflate stream
        // (0xff: a final block of the reserved type 11).
        stream
            .write_all(&[0xc1, 0x04, 0xff, 0xff, 0xff, 0xff])
            .unwrap();
        // The client may have sent messages first; its close frame follows them.
        loop {
            match client_frame(&mut stream) {
                Ok((0x8, payload)) if payload.len() >= 2 => {
                    return Ok(u16::from_be_bytes([payload[0], payload[1]]))
                }
                Ok((0x8, payload)) => return Err(format!("a close frame {payload:?}")),
                Ok(_) => {}
                Err(e) => return Err(format!("no close frame from the generator: {e}")),
            }
        }
    });
    let url = format!("ws://{addr}/");
    let run = run(
        "bad-inflate",
        &[
            "echo",
            "--url",
            &url,
            "-c",
            "1",
            "-d",
            "1s",
            "--warmup",
            "0s",
            "--deflate",
        ],
    );
    let code = fake.join().unwrap();
    assert_eq!(code, Ok(ProtocolError::BadCompression.close_code().0));
    assert_eq!(
        run.errors().get("protocol_error"),
        Some(&1),
        "{}",
        run.report
    );
}

/// A server that refuses the upgrade with 401 and a body: the report counts a failed
/// handshake and gives the status as its reason.
#[test]
fn a_refused_upgrade_is_reported_with_its_status() {
    use std::io::Write;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        read_request(&mut stream);
        stream
            .write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\
                  Content-Length: 9\r\n\r\nno token\n",
            )
            .unwrap();
    });
    let url = format!("ws://{addr}/");
    let run = run(
        "refused",
        &[
            "echo", "--url", &url, "-c", "1", "-d", "1s", "--warmup", "0s",
        ],
    );
    fake.join().unwrap();
    assert_eq!(
        run.errors().get("handshake_failed"),
        Some(&1),
        "{}",
        run.report
    );
    let reasons = run.report["error_reasons"]
        .as_array()
        .expect("error_reasons");
    assert!(
        reasons.iter().any(|r| r["kind"] == "handshake_failed"
            && r["reason"] == "handshake: the server answered 401 Unauthorized"),
        "{}",
        run.report
    );
}

/// The live line's JSON fields (`--live-json`).
const LIVE_FIELDS: [&str; 15] = [
    "elapsed_s",
    "mode",
    "label",
    "open",
    "interval_s",
    "sent",
    "received",
    "sent_per_sec",
    "received_per_sec",
    "sent_total",
    "received_total",
    "errors",
    "latency_count",
    "p50_us",
    "p99_us",
];

#[test]
fn live_json_writes_one_object_a_second_on_stdout() {
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    let args = [
        "echo",
        "--url",
        &url,
        "-c",
        "5",
        "-d",
        "2100ms",
        "--warmup",
        "200ms",
        "--live-json",
        "--label",
        "live \"test\"",
    ];
    let run = run_with("live-json", &args, false);
    assert_clean(&run);
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(
        !stderr.contains(" msg/s  errors "),
        "no text line: {stderr}"
    );
    // Every JSON line parses; the final report for people follows them as before.
    let lines: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 2, "two seconds, two lines: {stdout}");
    assert!(stdout.contains(&format!("wsloop-load echo {url}: 5 connections")));
    for line in &lines {
        for field in LIVE_FIELDS {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
        assert_eq!(line["mode"], "echo");
        assert_eq!(line["label"], "live \"test\"");
        assert!(line["elapsed_s"].as_f64().unwrap() >= 1.0, "{line}");
        let (sent, total) = (line["sent"].as_u64(), line["sent_total"].as_u64());
        assert!(sent <= total, "{line}");
    }
    let elapsed: Vec<f64> = lines
        .iter()
        .map(|l| l["elapsed_s"].as_f64().unwrap())
        .collect();
    assert!(elapsed.windows(2).all(|w| w[0] < w[1]), "{elapsed:?}");
    // By the second line every connection is open, messages flow and latencies are in.
    let second = &lines[1];
    assert_eq!(second["open"], 5, "{second}");
    assert_eq!(second["errors"], 0, "{second}");
    assert!(second["received"].as_u64().unwrap() > 0, "{second}");
    assert!(
        second["received_per_sec"].as_f64().unwrap() > 0.0,
        "{second}"
    );
    let (p50, p99) = (second["p50_us"].as_u64(), second["p99_us"].as_u64());
    assert!(p50.is_some() && p50 <= p99, "{second}");
    // The totals add up to the final report's, as of that second.
    let last = lines.last().unwrap();
    assert!(last["sent_total"].as_u64().unwrap() <= run.u64("messages_sent"));
    assert_eq!(run.report["label"], "live \"test\"");
}

#[test]
fn idle_live_json_has_no_latency() {
    // Connect mode ends with its ramp, before the first line; idle mode holds for -d.
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    let args = [
        "idle",
        "--url",
        &url,
        "-c",
        "5",
        "-d",
        "1100ms",
        "--live-json",
    ];
    let run = run_with("live-json-idle", &args, false);
    assert_clean(&run);
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line: {stdout}"));
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["mode"], "idle");
    assert_eq!(line["label"], format!("idle {url}"));
    assert_eq!(line["open"], 5, "{line}");
    assert_eq!(line["p50_us"], Value::Null, "{line}");
    assert_eq!(line["sent_total"], 0, "{line}");
}

/// Runs `wsloop-load plot` with `args` in `dir`.
fn plot(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsloop-load"))
        .arg("plot")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run wsloop-load plot")
}

#[test]
fn plot_overlays_runs_from_their_reports() {
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    let echo = |name: &str, depth: &str, label: &str| {
        let args = [
            "echo", "--url", &url, "-c", "4", "-d", "700ms", "--warmup", "100ms", "--depth", depth,
            "--label", label,
        ];
        run(name, &args)
    };
    let shallow = echo("plot-a", "1", "depth <1>");
    let deep = echo("plot-b", "16", "depth 16");
    for run in [&shallow, &deep] {
        assert_clean(run);
        let distribution = &run.report["latency_distribution"];
        assert_eq!(distribution["of"], "round-trip latency");
        let points = distribution["points"].as_array().unwrap();
        assert!(points.len() > 10, "{distribution}");
        let last = points.last().unwrap();
        assert_eq!(last["quantile"], 1.0);
        assert_eq!(last["value_us"], run.report["latency_us"]["max"]);
    }
    let dir = shallow.dir.clone();
    let a = dir.join("report.json");
    let b = deep.dir.join("report.json");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let output = plot(
        &dir,
        &[a, b, "--out", "chart.svg", "--title", "depth 1 vs 16"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let svg = std::fs::read_to_string(dir.join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(">depth &lt;1&gt;</text>"), "{svg}");
    assert!(svg.contains(">depth 16</text>"), "{svg}");
    assert!(svg.contains(">depth 1 vs 16</text>"), "{svg}");
    assert_eq!(svg.matches("<polyline").count(), 2, "one line per run");
    for tick in ["0%", "90%", "99%", "99.9%", "99.99%"] {
        assert!(
            svg.contains(&format!(">{tick}</text>")),
            "{tick} tick: {svg}"
        );
    }

    // The same label twice: told apart by file, under the default title.
    let output = plot(&dir, &[a, a, "-o", "same.svg"]);
    assert!(output.status.success());
    let svg = std::fs::read_to_string(dir.join("same.svg")).unwrap();
    assert!(
        svg.contains(&format!(">depth &lt;1&gt; ({a})</text>")),
        "{svg}"
    );
    assert!(svg.contains(">wsloop-load: round-trip latency by percentile</text>"));

    // A missing file, a report without a distribution (a connect run that opened nothing)
    // and one from before distributions were written: each an error naming the file.
    let mut report = shallow.report.clone();
    report["mode"] = "connect".into();
    report["latency_distribution"] = Value::Null;
    std::fs::write(dir.join("empty.json"), report.to_string()).unwrap();
    report
        .as_object_mut()
        .unwrap()
        .remove("latency_distribution");
    std::fs::write(dir.join("old.json"), report.to_string()).unwrap();
    std::fs::write(dir.join("junk.json"), "not json").unwrap();
    for (file, says) in [
        ("missing.json", "cannot read missing.json"),
        ("empty.json", "empty.json has no latency distribution"),
        ("old.json", "old.json has no latency distribution"),
        ("junk.json", "junk.json is not a wsloop-load --json report"),
    ] {
        let output = plot(&dir, &[a, file, "--out", "bad.svg"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains(says), "{file}: {stderr}");
    }
    assert!(!dir.join("bad.svg").exists(), "no chart from a bad report");
}
