//! examples/relay.rs, run in-process: its handler is compiled into this test from the
//! example's own file, so the test exercises exactly what `cargo run --example relay` runs.
//! Upstreams are a wsloop server (echo with a few extras), a tungstenite server that
//! answers its handshake late, one that never answers, and an address nothing listens on;
//! the browser is tungstenite. Every loop and thread is stopped by a guard, even on failure,
//! and every read has a timeout.

// `main` and the argument parser are the example's; only the handler is used here.
#[allow(dead_code)]
#[path = "../examples/relay.rs"]
mod relay;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::{Message as WsMessage, WebSocket};
use wsloop::{
    CloseCode, Config, ConnId, Context, Handler, Message, Remote, Request, Server, ShutdownHandle,
    Upgrade,
};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A loop running on its own thread; dropping it shuts the loop down and joins it.
struct Running {
    addr: SocketAddr,
    remote: Remote,
    stop: ShutdownHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !thread::panicking() {
                result.expect("loop thread").expect("loop run");
            }
        }
    }
}

fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        close_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

fn start<H>(handler: H, config: Config) -> Running
where
    H: Handler + Send + 'static,
{
    let server = Server::bind(config, handler).unwrap();
    let addr = server.local_addr();
    let remote = server.remote();
    let stop = server.shutdown_handle();
    let thread = Some(thread::spawn(move || server.run()));
    Running {
        addr,
        remote,
        stop,
        thread,
    }
}

fn start_relay(upstream: String) -> Running {
    start(
        relay::Relay {
            upstream,
            fixed: false,
        },
        config(),
    )
}

/// 512 KiB messages the upstream sends on `flood`: 24 MiB, well past the relay's limit.
const FLOOD_CHUNKS: usize = 48;

/// The upstream: echoes, answers `whoami` with the request target, sends 24 MiB on `flood`,
/// closes with 4001 on `close-me`, refuses `/deny` with 403, and accepts the subprotocol `chat` only.
struct Upstream;

impl Handler for Upstream {
    type Data = String;

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade<String> {
        if req.path() == "/deny" {
            return Upgrade::reject(403, "not here");
        }
        let upgrade = Upgrade::accept().data(req.target().to_owned());
        match req.protocols().any(|p| p == "chat") {
            true => upgrade.protocol("chat"),
            false => upgrade,
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, String>, id: ConnId, msg: Message<'_>) {
        match msg {
            Message::Text("whoami") => {
                let target = ctx.data(id).cloned().unwrap_or_default();
                let _ = ctx.send_text(id, &target);
            }
            Message::Text("flood") => {
                let chunk = vec![7u8; 512 << 10];
                for _ in 0..FLOOD_CHUNKS {
                    let _ = ctx.send_binary(id, &chunk);
                }
            }
            Message::Text("close-me") => {
                let _ = ctx.close(id, CloseCode(4001), "as asked");
            }
            msg => {
                let _ = ctx.send(id, msg);
            }
        }
    }
}

type Browser = WebSocket<TcpStream>;

/// A browser connected to the relay at `path`, offering `protocol` if given.
fn browse(relay: SocketAddr, path: &str, protocol: Option<&str>) -> (Browser, Option<String>) {
    let stream = TcpStream::connect(relay).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    let mut request = format!("ws://{relay}{path}").into_client_request().unwrap();
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    }
    let (ws, response) = tungstenite::client(request, stream).unwrap();
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (ws, chosen)
}

/// The next data message.
fn next(ws: &mut Browser) -> WsMessage {
    loop {
        match ws.read().unwrap() {
            msg @ (WsMessage::Text(_) | WsMessage::Binary(_)) => return msg,
            WsMessage::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads until the relay's close frame: its code and reason. Then reads on, so that
/// tungstenite sends its answer, and drops the socket: the relay, having shut down its
/// side, holds the connection until the peer closes its own (or the close timeout).
fn close_of(mut ws: Browser) -> (u16, String) {
    let close = loop {
        match ws.read() {
            Ok(WsMessage::Close(Some(frame))) => {
                break (u16::from(frame.code), frame.reason.to_string())
            }
            Ok(WsMessage::Close(None)) => break (1005, String::new()),
            Ok(_) => {}
            Err(err) => panic!("no close frame: {err}"),
        }
    };
    while ws.read().is_ok() {}
    close
}

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn connections(running: &Running) -> usize {
    running.remote.connections().iter().sum()
}

#[test]
fn text_and_binary_go_through_and_come_back_and_the_path_is_passed_on() {
    let upstream = start(Upstream, config());
    let relay = start_relay(format!("ws://{}/app/", upstream.addr));
    let (mut ws, protocol) = browse(relay.addr, "/room/1?user=ada", None);
    assert_eq!(protocol, None);
    ws.send(WsMessage::text("hello")).unwrap();
    assert_eq!(next(&mut ws), WsMessage::text("hello"));
    let bytes: Vec<u8> = (0..=255).collect();
    ws.send(WsMessage::binary(bytes.clone())).unwrap();
    assert_eq!(next(&mut ws), WsMessage::binary(bytes));
    let big = "x".repeat(300_000);
    ws.send(WsMessage::text(big.clone())).unwrap();
    assert_eq!(next(&mut ws), WsMessage::text(big));
    ws.send(WsMessage::text("whoami")).unwrap();
    assert_eq!(next(&mut ws), WsMessage::text("/app/room/1?user=ada"));
    ws.close(None).unwrap();
    let _ = close_of(ws);
}

#[test]
fn closing_the_browser_closes_its_upstream() {
    let upstream = start(Upstream, config());
    let relay = start_relay(format!("ws://{}/", upstream.addr));
    let (mut ws, _) = browse(relay.addr, "/", None);
    ws.send(WsMessage::text("ping")).unwrap();
    assert_eq!(next(&mut ws), WsMessage::text("ping"));
    assert_eq!(connections(&upstream), 1);
    assert_eq!(connections(&relay), 2, "the browser and its upstream");
    ws.close(Some(tungstenite::protocol::CloseFrame {
        code: 4000.into(),
        reason: "leaving".into(),
    }))
    .unwrap();
    // The relay's answer repeats the code.
    assert_eq!(close_of(ws).0, 4000);
    eventually("the upstream's connection to go", || {
        connections(&upstream) == 0
    });
    eventually("the relay's pair to go", || connections(&relay) == 0);
}

#[test]
fn the_upstream_closing_closes_the_browser_with_its_code() {
    let upstream = start(Upstream, config());
    let relay = start_relay(format!("ws://{}/", upstream.addr));
    let (mut ws, _) = browse(relay.addr, "/", None);
    ws.send(WsMessage::text("close-me")).unwrap();
    assert_eq!(close_of(ws), (4001, "as asked".to_owned()));
    eventually("the relay's pair to go", || connections(&relay) == 0);
}

#[test]
fn the_subprotocol_is_offered_upstream() {
    let upstream = start(Upstream, config());
    let relay = start_relay(format!("ws://{}/", upstream.addr));
    let (mut ws, protocol) = browse(relay.addr, "/", Some("chat"));
    assert_eq!(protocol.as_deref(), Some("chat"));
    ws.send(WsMessage::text("hi")).unwrap();
    assert_eq!(next(&mut ws), WsMessage::text("hi"));
    drop(ws);

    // Promised to the browser, refused upstream: the pair cannot speak it.
    let (ws, protocol) = browse(relay.addr, "/", Some("other"));
    assert_eq!(protocol.as_deref(), Some("other"));
    let (code, reason) = close_of(ws);
    assert_eq!(code, 1011, "{reason}");
    assert!(reason.contains("subprotocol"), "{reason}");
}

/// A tungstenite upstream that accepts one connection, waits `delay` before answering its
/// handshake, then echoes until it closes.
fn late_upstream(delay: Duration) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        thread::sleep(delay);
        let Ok(mut ws) = tungstenite::accept(stream) else {
            return;
        };
        while let Ok(msg) = ws.read() {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).is_err() {
                return;
            }
        }
    });
    (addr, thread)
}

#[test]
fn what_is_sent_before_the_upstream_opens_is_not_lost() {
    let (upstream, thread) = late_upstream(Duration::from_millis(300));
    let relay = start_relay(format!("ws://{upstream}/"));
    let (mut ws, _) = browse(relay.addr, "/", None);
    // Sent at once: the upstream answers its handshake 300 ms later.
    for i in 0..10 {
        ws.send(WsMessage::text(format!("early {i}"))).unwrap();
    }
    ws.send(WsMessage::binary(vec![1, 2, 3])).unwrap();
    for i in 0..10 {
        assert_eq!(next(&mut ws), WsMessage::text(format!("early {i}")));
    }
    assert_eq!(next(&mut ws), WsMessage::binary(vec![1, 2, 3]));
    ws.send(WsMessage::text("late")).unwrap();
    assert_eq!(next(&mut ws), WsMessage::text("late"));
    ws.close(None).unwrap();
    let _ = close_of(ws);
    drop(relay);
    thread.join().unwrap();
}

#[test]
fn too_much_before_the_upstream_opens_closes_the_browser_with_1013() {
    // An upstream that accepts the TCP connection and never answers the handshake.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap();
    let relay = start_relay(format!("ws://{upstream}/"));
    let (mut ws, _) = browse(relay.addr, "/", None);
    for i in 0..=relay::MAX_PENDING_MESSAGES {
        ws.send(WsMessage::text(format!("{i}"))).unwrap();
    }
    let (code, reason) = close_of(ws);
    assert_eq!(code, 1013, "{reason}");
    eventually("the relay's pair to go", || connections(&relay) == 0);
    drop(listener);
}

#[test]
fn an_upstream_that_is_down_closes_the_browser_with_1011_and_a_reason() {
    // An address nothing listens on.
    let upstream = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let relay = start_relay(format!("ws://{upstream}/"));
    let (ws, _) = browse(relay.addr, "/", None);
    let (code, reason) = close_of(ws);
    assert_eq!(code, 1011, "{reason}");
    assert!(
        reason.starts_with("bad gateway: connect failed"),
        "{reason}"
    );
    eventually("the relay's browser to go", || connections(&relay) == 0);
}

#[test]
fn an_upstream_that_refuses_closes_the_browser_with_its_status() {
    let upstream = start(Upstream, config());
    let relay = start_relay(format!("ws://{}/", upstream.addr));
    let (ws, _) = browse(relay.addr, "/deny", None);
    let (code, reason) = close_of(ws);
    assert_eq!(code, 1011, "{reason}");
    assert!(reason.contains("403"), "{reason}");
}

#[test]
fn a_browser_that_reads_too_slowly_closes_the_pair_with_1013() {
    let upstream = start(Upstream, config());
    let relay = start_relay(format!("ws://{}/", upstream.addr));
    let (mut ws, _) = browse(relay.addr, "/", None);
    ws.send(WsMessage::text("flood")).unwrap();
    // Not reading: the relay's queue for this browser grows past its limit.
    eventually("the upstream's connection to go", || {
        connections(&upstream) == 0
    });
    let mut received = 0;
    let code = loop {
        match ws.read() {
            Ok(WsMessage::Binary(bytes)) => received += bytes.len(),
            Ok(WsMessage::Close(Some(frame))) => break u16::from(frame.code),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(err) => panic!("no close frame: {err}"),
        }
    };
    while ws.read().is_ok() {}
    drop(ws);
    assert_eq!(code, 1013);
    assert!(received < FLOOD_CHUNKS * (512 << 10), "{received}");
}
