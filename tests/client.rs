//! The client role against real servers: wsloop's own server, hand-written fake servers
//! (tests/common/fake_server.rs) for the answers no good server gives, and an independent
//! implementation, Python's `websockets`.
//!
//! Each test runs a loop whose recording handler ([`Client`]) logs every event of its
//! outgoing connections as a line, and shuts the loop down once it has seen the expected
//! number of `on_close`; the test then asserts the exact sequence. Every loop, server and
//! child process is stopped by a guard even when the test fails, and every wait is bounded.
//!
//! The Python tests need `python3` with `websockets`; `.ci/run` installs it and sets
//! `WSLOOP_REQUIRE_INTEROP=1`, which turns a missing package into a failure. Without that
//! variable the tests say loudly that they skipped.

mod common;
#[path = "common/fake_server.rs"]
mod fake_server;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use wsloop::client::{ConnectError, ConnectOptions, OpenError, Opened, Refused};
use wsloop::proto::handshake::client::ResponseError;
use wsloop::proto::url::UrlError;
use wsloop::{
    CloseCode, Config, ConnId, Context, Echo, Error, Handler, Message, ReadyState, Remote, Request,
    SendError, SendStatus, Server, ShutdownHandle, Upgrade,
};

use common::pki::Pki;
use common::process::Proc;
use fake_server::{CountingProxy, FakeServer};

/// How long one loop may run before the test gives up on it.
const LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// The recording client
// ---------------------------------------------------------------------------------------

/// What the client's handler saw, shared with the test thread.
#[derive(Default)]
struct Seen {
    /// Every event as a line, with the connection it was about.
    events: Mutex<Vec<(ConnId, String)>>,
    /// The ids `connect` returned, in order.
    ids: Mutex<Vec<ConnId>>,
    opened: Mutex<Vec<(ConnId, Opened)>>,
    refused: Mutex<Vec<(ConnId, Refused)>>,
    /// `ready_state` inside each `on_close`.
    close_states: Mutex<Vec<(ConnId, ReadyState)>>,
}

impl Seen {
    fn log(&self, id: ConnId, line: impl Into<String>) {
        self.events.lock().unwrap().push((id, line.into()));
    }

    /// Records an id `connect` returned, with the ready state it has right away.
    fn connected(&self, ctx: &Context<'_>, id: ConnId) {
        self.ids.lock().unwrap().push(id);
        self.log(id, format!("connect {:?}", ctx.ready_state(id)));
    }

    fn ids(&self) -> Vec<ConnId> {
        self.ids.lock().unwrap().clone()
    }

    fn id(&self, n: usize) -> ConnId {
        self.ids()[n]
    }

    /// The lines about connection `id`, in order.
    fn of(&self, id: ConnId) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(i, _)| *i == id)
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// The lines about the first connection.
    fn first(&self) -> Vec<String> {
        self.of(self.id(0))
    }

    fn all(&self) -> Vec<(ConnId, String)> {
        self.events.lock().unwrap().clone()
    }

    fn opened(&self, n: usize) -> Opened {
        self.opened.lock().unwrap()[n].1.clone()
    }

    fn refused(&self, n: usize) -> Refused {
        self.refused.lock().unwrap()[n].1.clone()
    }

    /// Every id `connect` returned got exactly one `on_close`, and nothing after it.
    fn assert_closed_exactly_once(&self) {
        for id in self.ids() {
            let lines = self.of(id);
            let closes = lines.iter().filter(|l| l.starts_with("close ")).count();
            assert_eq!(closes, 1, "on_close count for {id:?}: {lines:?}");
            assert!(
                lines.last().is_some_and(|l| l.starts_with("close ")),
                "events after on_close for {id:?}: {lines:?}"
            );
        }
    }
}

/// An error as a line: its variant and what it carries that the test can check.
fn describe(err: &Error) -> String {
    match err {
        Error::Resolve(_) => "error resolve".into(),
        Error::Connect(e) => format!("error connect {:?}", e.kind()),
        Error::Timeout => "error timeout".into(),
        Error::Io(e) => format!("error io {:?}", e.kind()),
        Error::Protocol(p) => format!("error protocol {p:?}"),
        Error::Handshake(OpenError::Refused(r)) => format!("error refused {}", r.status),
        Error::Handshake(OpenError::Response(r)) => format!("error response {r:?}"),
        Error::Handshake(OpenError::ProtocolNotOffered(p)) => {
            format!("error protocol-not-offered {p}")
        }
        Error::Handshake(OpenError::ExtensionNotOffered(e)) => {
            format!("error extension-not-offered {e}")
        }
        Error::Handshake(OpenError::Closed) => "error closed".into(),
        Error::Handshake(OpenError::TooLarge) => "error too-large".into(),
        other => format!("error {other:?}"),
    }
}

/// A payload as a line: short ones whole, long ones by length.
fn show(bytes: &[u8]) -> String {
    if bytes.len() <= 40 {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        format!("<{} bytes>", bytes.len())
    }
}

type StartHook = Box<dyn FnMut(&mut Context<'_>, &Seen) + Send>;
type OpenHook = Box<dyn FnMut(&mut Context<'_>, ConnId, &Seen) + Send>;
type MessageHook = Box<dyn FnMut(&mut Context<'_>, ConnId, Message<'_>, &Seen) + Send>;

/// The recording handler. Hooks add behaviour; without them it only records. It stops its
/// loop after `closes` calls of `on_close` (of any connection).
struct Client {
    seen: Arc<Seen>,
    stop: Option<ShutdownHandle>,
    closes: usize,
    start: Option<StartHook>,
    open: Option<OpenHook>,
    message: Option<MessageHook>,
    pong: Option<OpenHook>,
}

impl Client {
    fn new(closes: usize) -> Client {
        Client {
            seen: Arc::default(),
            stop: None,
            closes,
            start: None,
            open: None,
            message: None,
            pong: None,
        }
    }

    fn on_start(mut self, hook: impl FnMut(&mut Context<'_>, &Seen) + Send + 'static) -> Client {
        self.start = Some(Box::new(hook));
        self
    }

    /// Connects to `url` with `options` from `on_start`.
    fn connecting(self, url: &str, options: ConnectOptions) -> Client {
        let url = url.to_owned();
        self.on_start(move |ctx, seen| {
            let id = ctx.connect(&url, &options).expect("connect");
            seen.connected(ctx, id);
        })
    }

    fn on_open(
        mut self,
        hook: impl FnMut(&mut Context<'_>, ConnId, &Seen) + Send + 'static,
    ) -> Client {
        self.open = Some(Box::new(hook));
        self
    }

    fn on_message(
        mut self,
        hook: impl FnMut(&mut Context<'_>, ConnId, Message<'_>, &Seen) + Send + 'static,
    ) -> Client {
        self.message = Some(Box::new(hook));
        self
    }

    fn on_pong(
        mut self,
        hook: impl FnMut(&mut Context<'_>, ConnId, &Seen) + Send + 'static,
    ) -> Client {
        self.pong = Some(Box::new(hook));
        self
    }
}

impl Handler for Client {
    type Data = ();

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        if let Some(hook) = &mut self.start {
            hook(ctx, &self.seen);
        }
    }

    fn on_upgrade_response(&mut self, _ctx: &mut Context<'_>, id: ConnId, response: &Opened) {
        self.seen.log(
            id,
            format!(
                "upgrade protocol={} deflate={}",
                response.protocol.as_deref().unwrap_or("-"),
                response.deflate.is_some()
            ),
        );
        self.seen
            .opened
            .lock()
            .unwrap()
            .push((id, response.clone()));
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId) {
        self.seen.log(id, format!("open {:?}", ctx.ready_state(id)));
        if let Some(hook) = &mut self.open {
            hook(ctx, id, &self.seen);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let line = match msg {
            Message::Text(text) => format!("text {}", show(text.as_bytes())),
            Message::Binary(bytes) => format!("binary {}", show(bytes)),
        };
        self.seen.log(id, line);
        if let Some(hook) = &mut self.message {
            hook(ctx, id, msg, &self.seen);
        }
    }

    fn on_ping(&mut self, _ctx: &mut Context<'_>, id: ConnId, payload: &[u8]) {
        self.seen.log(id, format!("ping {}", show(payload)));
    }

    fn on_pong(&mut self, ctx: &mut Context<'_>, id: ConnId, payload: &[u8]) {
        self.seen.log(id, format!("pong {}", show(payload)));
        if let Some(hook) = &mut self.pong {
            hook(ctx, id, &self.seen);
        }
    }

    fn on_unexpected_response(&mut self, _ctx: &mut Context<'_>, id: ConnId, response: &Refused) {
        self.seen.log(
            id,
            format!("unexpected {} {}", response.status, response.reason),
        );
        self.seen
            .refused
            .lock()
            .unwrap()
            .push((id, response.clone()));
    }

    fn on_error(&mut self, _ctx: &mut Context<'_>, id: ConnId, err: &Error) {
        self.seen.log(id, describe(err));
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, id: ConnId, code: CloseCode, reason: &str) {
        self.seen.log(id, format!("close {} {reason:?}", code.0));
        let state = ctx.ready_state(id);
        self.seen.close_states.lock().unwrap().push((id, state));
        self.closes = self.closes.saturating_sub(1);
        if self.closes == 0 {
            if let Some(stop) = &self.stop {
                stop.shutdown();
            }
        }
    }
}

/// A loop running a [`Client`] on its own thread; dropping it shuts the loop down.
struct Running {
    stop: ShutdownHandle,
    remote: Remote,
    seen: Arc<Seen>,
    join: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    /// A client-only loop (`Server::without_listener`); `setup` runs before `run`.
    fn client(client: Client, setup: impl FnOnce(&mut Server<Client>) + Send + 'static) -> Running {
        Running::start(false, common::config(), client, setup)
    }

    /// Starts a loop with `config`, listening or not; `setup` runs before `run`.
    fn start(
        listen: bool,
        config: Config,
        client: Client,
        setup: impl FnOnce(&mut Server<Client>) + Send + 'static,
    ) -> Running {
        let seen = client.seen.clone();
        let (tx, rx) = mpsc::channel();
        let join = thread::Builder::new()
            .name("wsloop-client".into())
            .spawn(move || {
                let mut server = if listen {
                    Server::bind(config, client)?
                } else {
                    Server::without_listener(config, client)?
                };
                let stop = server.shutdown_handle();
                server.handler_mut().stop = Some(stop.clone());
                tx.send((stop, server.remote())).expect("test thread gone");
                setup(&mut server);
                server.run()
            })
            .expect("spawn loop thread");
        let (stop, remote) = rx.recv_timeout(LIMIT).expect("the loop did not start");
        Running {
            stop,
            remote,
            seen,
            join: Some(join),
        }
    }

    /// Waits for the loop to stop by itself (its handler shuts it down after the expected
    /// closes); `run` must return `Ok` and the thread must not have panicked.
    fn wait(mut self) -> Arc<Seen> {
        let join = self.join.take().unwrap();
        let start = Instant::now();
        while !join.is_finished() {
            if start.elapsed() > LIMIT {
                panic!(
                    "the client loop did not stop within {LIMIT:?}; events: {:#?}",
                    self.seen.all()
                );
            }
            thread::sleep(Duration::from_millis(2));
        }
        match join.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("Server::run returned {err}"),
            Err(_) => panic!("the client loop panicked; events: {:#?}", self.seen.all()),
        }
        self.seen.clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(join) = self.join.take() {
            let start = Instant::now();
            while !join.is_finished() && start.elapsed() < LIMIT {
                thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// Runs `client` in a client-only loop until it stops by itself; its events.
fn run(client: Client) -> Arc<Seen> {
    Running::client(client, |_| {}).wait()
}

// ---------------------------------------------------------------------------------------
// wsloop's own server
// ---------------------------------------------------------------------------------------

/// A wsloop server on its own thread; dropping it shuts it down.
struct Served {
    addr: SocketAddr,
    stop: Option<(ShutdownHandle, JoinHandle<io::Result<()>>)>,
}

impl Served {
    fn start<H: Handler + Send + 'static>(config: Config, handler: H) -> Served {
        let (addr, handle, join) = common::start(config, handler);
        Served {
            addr,
            stop: Some((handle, join)),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Stops the server; it must stop cleanly.
    fn stop(mut self) {
        let (handle, join) = self.stop.take().unwrap();
        common::stop_within(handle, join, LIMIT);
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some((handle, _join)) = self.stop.take() {
            handle.shutdown();
        }
    }
}

/// What a server's `on_upgrade` saw of one request.
#[derive(Debug, Clone, Default)]
struct SeenRequest {
    path: String,
    headers: HashMap<String, String>,
    protocols: Vec<String>,
    extensions: Vec<String>,
}

/// A server handler for the client to talk to: records each upgrade request, refuses
/// `/private` with 401, chooses the subprotocol `chat` when it is offered and adds a
/// `Set-Cookie` to the 101, and echoes messages.
#[derive(Clone, Default)]
struct Upstream {
    requests: Arc<Mutex<Vec<SeenRequest>>>,
    /// The code and reason of each `on_close`.
    closes: Arc<Mutex<Vec<(u16, String)>>>,
}

impl Handler for Upstream {
    type Data = ();

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
        self.requests.lock().unwrap().push(SeenRequest {
            path: req.path().to_owned(),
            headers: req
                .headers()
                .map(|(n, v)| {
                    (
                        n.to_ascii_lowercase(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
            protocols: req.protocols().map(str::to_owned).collect(),
            extensions: req.extension_offers().map(str::to_owned).collect(),
        });
        if req.path() == "/private" {
            return Upgrade::reject(401, "log in first").header("WWW-Authenticate", "Bearer");
        }
        let upgrade = Upgrade::accept().header("Set-Cookie", "session=abc; HttpOnly");
        match req.protocols().any(|p| p == "chat") {
            true => upgrade.protocol("chat"),
            false => upgrade,
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let _ = ctx.send(id, msg);
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, _id: ConnId, code: CloseCode, reason: &str) {
        self.closes
            .lock()
            .unwrap()
            .push((code.0, reason.to_owned()));
    }
}

/// A send that must have been queued.
fn sent(result: Result<SendStatus, SendError>) {
    let status = result.expect("send refused");
    assert_ne!(status, SendStatus::Dropped, "send dropped");
}

/// A `Vec<String>` from string literals.
fn lines(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A text of `len` bytes that compresses well but is not a single repeated byte.
fn compressible(len: usize) -> String {
    let mut text = String::with_capacity(len + 64);
    let mut i = 0u64;
    while text.len() < len {
        text.push_str(&format!("line {} of a compressible message; ", i % 97));
        i += 1;
    }
    text.truncate(len);
    text
}

/// A binary payload of `len` bytes that does not compress (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn echo_text_binary_large_messages_ping_and_ready_states() {
    let server = Served::start(common::config(), Echo);
    let big_text = compressible(70 * 1024);
    let big_binary = noise(1024 * 1024);
    let sends = (big_text.clone(), big_binary.clone());
    let expected: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        vec![0, 1, 2, 255],
        big_text.into_bytes(),
        big_binary,
    ];
    let mut received = 0;
    let client = Client::new(1)
        .connecting(&server.url("/"), ConnectOptions::new())
        .on_open(move |ctx, id, _| {
            sent(ctx.send_text(id, "hello"));
            sent(ctx.send_binary(id, &[0, 1, 2, 255]));
            sent(ctx.send_text(id, &sends.0));
            sent(ctx.send_binary(id, &sends.1));
            sent(ctx.ping(id, b"are you there"));
        })
        .on_message(move |_, id, msg, seen| {
            let ok = msg.as_bytes() == expected[received].as_slice();
            seen.log(id, format!("same as sent: {ok}"));
            received += 1;
        })
        .on_pong(|ctx, id, seen| {
            ctx.close(id, CloseCode::NORMAL, "bye").unwrap();
            seen.log(id, format!("after close {:?}", ctx.ready_state(id)));
        });
    let seen = run(client);
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "upgrade protocol=- deflate=false",
            "open Open",
            "text hello",
            "same as sent: true",
            "binary \u{0}\u{1}\u{2}\u{fffd}",
            "same as sent: true",
            "text <71680 bytes>",
            "same as sent: true",
            "binary <1048576 bytes>",
            "same as sent: true",
            "pong are you there",
            "after close Closing",
            // The reason is the server's, and wsloop's echo of a close carries none.
            "close 1000 \"\"",
        ])
    );
    seen.assert_closed_exactly_once();
    server.stop();
}

#[test]
fn request_headers_and_offered_protocols_reach_the_server() {
    let upstream = Upstream::default();
    let requests = upstream.requests.clone();
    let server = Served::start(common::config(), upstream);
    let options = ConnectOptions::new()
        .protocol("chat.v2")
        .protocol("chat")
        .header("Authorization", "Bearer x")
        .header("Cookie", "session=abc; theme=dark")
        .header("Origin", "https://example.com");
    let client = Client::new(1)
        .connecting(&server.url("/room?id=7"), options)
        .on_open(|ctx, id, _| {
            ctx.close(id, CloseCode::NORMAL, "").unwrap();
        });
    let seen = run(client);
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "upgrade protocol=chat deflate=false",
            "open Open",
            "close 1000 \"\"",
        ])
    );
    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let req = &requests[0];
    assert_eq!(req.path, "/room");
    assert_eq!(req.headers["authorization"], "Bearer x");
    assert_eq!(req.headers["cookie"], "session=abc; theme=dark");
    assert_eq!(req.headers["origin"], "https://example.com");
    assert_eq!(req.headers["host"], server.addr.to_string());
    assert_eq!(req.protocols, ["chat.v2", "chat"]);
    assert!(req.extensions.is_empty(), "{:?}", req.extensions);
    server.stop();
}

#[test]
fn subprotocol_chosen_by_the_server_and_response_headers_are_in_opened() {
    let upstream = Upstream::default();
    let closes = upstream.closes.clone();
    let server = Served::start(common::config(), upstream);
    let client = Client::new(1)
        .connecting(
            &server.url("/"),
            ConnectOptions::new().protocol("superchat").protocol("chat"),
        )
        .on_open(|ctx, id, _| {
            sent(ctx.send_text(id, "hi"));
        })
        .on_message(|ctx, id, _, _| {
            ctx.close(id, CloseCode::NORMAL, "done").unwrap();
        });
    let seen = run(client);
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "upgrade protocol=chat deflate=false",
            "open Open",
            "text hi",
            "close 1000 \"\"",
        ])
    );
    let opened = seen.opened(0);
    assert_eq!(opened.protocol.as_deref(), Some("chat"));
    assert_eq!(opened.deflate, None);
    assert_eq!(
        header(&opened.headers, "set-cookie"),
        Some("session=abc; HttpOnly")
    );
    assert_eq!(
        header(&opened.headers, "sec-websocket-protocol"),
        Some("chat")
    );
    assert!(opened.handshake < LIMIT);
    // The server heard the client's code and reason (its on_close comes before it answers).
    assert_eq!(*closes.lock().unwrap(), [(1000, "done".to_owned())]);
    server.stop();
}

#[test]
fn permessage_deflate_negotiated_both_ways_with_wsloop_server() {
    let upstream = Upstream::default();
    let requests = upstream.requests.clone();
    let config = Config {
        deflate: Some(Default::default()),
        ..common::config()
    };
    let server = Served::start(config, upstream);
    // Through a forwarder that counts the bytes, to see the compression on the wire.
    let proxy = CountingProxy::start(server.addr);
    let big = compressible(1024 * 1024);
    let expected = big.clone();
    let client = Client::new(1)
        .connecting(
            &format!("ws://{}/", proxy.addr),
            ConnectOptions::new().deflate(true),
        )
        .on_open(move |ctx, id, _| {
            sent(ctx.send_text(id, &big));
        })
        .on_message(move |ctx, id, msg, seen| {
            seen.log(
                id,
                format!("same as sent: {}", msg == Message::Text(&expected)),
            );
            ctx.close(id, CloseCode::NORMAL, "").unwrap();
        });
    let seen = run(client);
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "upgrade protocol=- deflate=true",
            "open Open",
            "text <1048576 bytes>",
            "same as sent: true",
            "close 1000 \"\"",
        ])
    );
    let deflate = seen.opened(0).deflate.expect("deflate negotiated");
    assert!(deflate.starts_with("permessage-deflate"), "{deflate}");
    let requests = requests.lock().unwrap().clone();
    assert!(
        requests[0]
            .extensions
            .iter()
            .any(|e| e.contains("permessage-deflate")),
        "{requests:?}"
    );
    server.stop();
    let (up, down) = (
        proxy.upstream.load(Ordering::SeqCst),
        proxy.downstream.load(Ordering::SeqCst),
    );
    assert!(
        up < 100 * 1024 && down < 100 * 1024,
        "1 MiB of compressible text took {up} bytes up and {down} down"
    );
}

#[test]
fn deflate_offered_to_a_server_without_it_opens_uncompressed() {
    let server = Served::start(common::config(), Echo);
    let client = Client::new(1)
        .connecting(&server.url("/"), ConnectOptions::new().deflate(true))
        .on_open(|ctx, id, _| {
            sent(ctx.send_text(id, "plain"));
        })
        .on_message(|ctx, id, _, _| {
            ctx.close(id, CloseCode::NORMAL, "").unwrap();
        });
    let seen = run(client);
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "upgrade protocol=- deflate=false",
            "open Open",
            "text plain",
            "close 1000 \"\"",
        ])
    );
    server.stop();
}

/// A listening loop that also connects out, to itself and to another server: its accepted
/// connection echoes, its outgoing ones say hello and close after the answer.
#[test]
fn both_roles_in_one_loop_connect_to_itself_and_to_another_server() {
    let other = Served::start(common::config(), Echo);
    let other_url = other.url("/");
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let client = Client::new(3)
        .on_start(move |ctx, seen| {
            let own = addr_rx.recv().unwrap();
            for url in [format!("ws://{own}/self"), other_url.clone()] {
                let id = ctx.connect(&url, &ConnectOptions::new()).unwrap();
                seen.connected(ctx, id);
            }
        })
        .on_open(|ctx, id, seen| {
            if seen.ids().contains(&id) {
                sent(ctx.send_text(id, "hello"));
            }
        })
        .on_message(|ctx, id, msg, seen| {
            if seen.ids().contains(&id) {
                ctx.close(id, CloseCode::NORMAL, "done").unwrap();
            } else {
                // The loop's own server side: echo.
                sent(ctx.send(id, msg));
            }
        });
    let running = Running::start(true, common::config(), client, move |server| {
        addr_tx.send(server.local_addr()).unwrap();
    });
    let seen = running.wait();
    let ids = seen.ids();
    for &id in &ids {
        assert_eq!(
            seen.of(id),
            lines(&[
                "connect Connecting",
                "upgrade protocol=- deflate=false",
                "open Open",
                "text hello",
                "close 1000 \"\"",
            ]),
            "{id:?}"
        );
    }
    // The loop's server side: the one connection it accepted, from itself.
    let accepted: Vec<ConnId> = seen
        .all()
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !ids.contains(id))
        .fold(Vec::new(), |mut v, id| {
            if !v.contains(&id) {
                v.push(id);
            }
            v
        });
    assert_eq!(accepted.len(), 1, "{:#?}", seen.all());
    assert_eq!(
        seen.of(accepted[0]),
        lines(&["open Open", "text hello", "close 1000 \"done\""])
    );
    seen.assert_closed_exactly_once();
    other.stop();
}

#[test]
fn wss_echo_against_wsloop_tls_server_by_name_and_by_address() {
    let pki = Pki::new("client-wss");
    pki.issue("localhost");
    let (_cert, config) = pki.server();
    let config = Config {
        deflate: Some(Default::default()),
        ..config
    };
    let server = Served::start(config, Upstream::default());
    let port = server.addr.port();
    let urls = [
        format!("wss://localhost:{port}/"),
        format!("wss://127.0.0.1:{port}/"),
    ];
    let tls = pki.client();
    let big = noise(300 * 1024);
    let expected = big.clone();
    let client = Client::new(2)
        .on_start(move |ctx, seen| {
            let options = ConnectOptions::new()
                .tls(tls.clone())
                .protocol("chat")
                .deflate(true);
            for url in &urls {
                let id = ctx.connect(url, &options).unwrap();
                seen.connected(ctx, id);
            }
        })
        .on_open(move |ctx, id, _| {
            sent(ctx.send_text(id, "secret"));
            sent(ctx.send_binary(id, &big));
        })
        .on_message(move |ctx, id, msg, seen| {
            if let Message::Binary(bytes) = msg {
                seen.log(
                    id,
                    format!("same as sent: {}", bytes == expected.as_slice()),
                );
                ctx.close(id, CloseCode::NORMAL, "").unwrap();
            }
        });
    let seen = run(client);
    for id in seen.ids() {
        assert_eq!(
            seen.of(id),
            lines(&[
                "connect Connecting",
                "upgrade protocol=chat deflate=true",
                "open Open",
                "text secret",
                "binary <307200 bytes>",
                "same as sent: true",
                "close 1000 \"\"",
            ]),
            "{id:?}"
        );
    }
    server.stop();
}

#[test]
fn wss_to_a_server_whose_certificate_is_not_trusted_fails_with_an_error_and_1006() {
    let pki = Pki::new("client-wss-untrusted");
    pki.issue("localhost");
    let (_cert, config) = pki.server();
    let server = Served::start(config, Echo);
    // A client that trusts another CA.
    let other = Pki::new("client-wss-other");
    let url = format!("wss://localhost:{}/", server.addr.port());
    let seen = run(Client::new(1).connecting(&url, ConnectOptions::new().tls(other.client())));
    let events = seen.first();
    // rustls's refusal of the certificate comes as an I/O error of kind InvalidData.
    assert_eq!(
        events,
        lines(&[
            "connect Connecting",
            "error io InvalidData",
            "close 1006 \"\"",
        ])
    );
    seen.assert_closed_exactly_once();
    server.stop();
}

#[test]
fn message_over_the_client_max_message_size_fails_the_connection_with_1009() {
    let upstream = Upstream::default();
    let closes = upstream.closes.clone();
    let server = Served::start(common::config(), upstream);
    let client = Client::new(1)
        .connecting(
            &server.url("/"),
            ConnectOptions::new().max_message_size(1000),
        )
        .on_open(|ctx, id, _| {
            sent(ctx.send_text(id, &"x".repeat(1000)));
            sent(ctx.send_text(id, &"y".repeat(1001)));
        });
    let seen = run(client);
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "upgrade protocol=- deflate=false",
            "open Open",
            "text <1000 bytes>",
            "error protocol MessageTooBig",
            "close 1006 \"message too big\"",
        ])
    );
    // The server heard why: 1009.
    common::wait_until(LIMIT, "the server's on_close", || {
        !closes.lock().unwrap().is_empty()
    });
    assert_eq!(
        closes.lock().unwrap()[0],
        (1009, "message too big".to_owned())
    );
    server.stop();
}

// ---------------------------------------------------------------------------------------
// Answers other than 101
// ---------------------------------------------------------------------------------------

#[test]
fn rejected_upgrade_401_is_an_unexpected_response_then_error_then_1006() {
    let server = Served::start(common::config(), Upstream::default());
    let client = Client::new(1).connecting(&server.url("/private"), ConnectOptions::new());
    let seen = run(client);
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "unexpected 401 Unauthorized",
            "error refused 401",
            "close 1006 \"\"",
        ])
    );
    let refused = seen.refused(0);
    assert_eq!(refused.status, 401);
    assert_eq!(header(&refused.headers, "www-authenticate"), Some("Bearer"));
    assert_eq!(refused.body, b"log in first");
    assert!(refused.whole);
    server.stop();
}

#[test]
fn redirect_302_with_a_chunked_body_from_a_fake_server() {
    let fake = FakeServer::start(|mut conn| {
        conn.write_bytewise(
            b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nTransfer-Encoding: chunked\r\n\
              Content-Type: text/plain\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
        );
        conn.hold_until_client_closes();
    });
    let seen = run(Client::new(1).connecting(&fake.url(), ConnectOptions::new()));
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "unexpected 302 Found",
            "error refused 302",
            "close 1006 \"\"",
        ])
    );
    let refused = seen.refused(0);
    assert_eq!(refused.reason, "Found");
    assert_eq!(header(&refused.headers, "location"), Some("/elsewhere"));
    assert_eq!(String::from_utf8_lossy(&refused.body), "hello world");
    assert!(refused.whole);
    let request = fake.requests.recv_timeout(LIMIT).unwrap();
    assert!(request.starts_with("GET / HTTP/1.1\r\n"), "{request}");
}

#[test]
fn refused_body_delimited_by_the_close_of_the_connection() {
    let fake = FakeServer::start(|mut conn| {
        conn.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\ncome back later");
        // Dropping the stream closes it: the body ends there.
    });
    let seen = run(Client::new(1).connecting(&fake.url(), ConnectOptions::new()));
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "unexpected 503 Service Unavailable",
            "error refused 503",
            "close 1006 \"\"",
        ])
    );
    let refused = seen.refused(0);
    assert_eq!(refused.body, b"come back later");
    assert_eq!(header(&refused.headers, "retry-after"), Some("5"));
    assert!(refused.whole);
}

// ---------------------------------------------------------------------------------------
// Every error event: an error, then close 1006, never a panic
// ---------------------------------------------------------------------------------------

/// Runs one connection to `url` and returns its events.
fn fails(url: &str, options: ConnectOptions) -> Vec<String> {
    let seen = run(Client::new(1).connecting(url, options));
    seen.assert_closed_exactly_once();
    seen.first()
}

#[test]
fn dns_failure_is_a_resolve_error() {
    assert_eq!(
        // Bounded below the test's limit, so a resolver that hangs shows as a timeout.
        fails(
            "ws://nonexistent.invalid/",
            ConnectOptions::new().connect_timeout(Duration::from_secs(5))
        ),
        lines(&["connect Connecting", "error resolve", "close 1006 \"\""])
    );
}

#[test]
fn connection_refused_is_a_connect_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    assert_eq!(
        fails(&format!("ws://127.0.0.1:{port}/"), ConnectOptions::new()),
        lines(&[
            "connect Connecting",
            "error connect ConnectionRefused",
            "close 1006 \"\"",
        ])
    );
}

#[test]
fn connect_timeout_is_a_timed_out_connect_error() {
    use socket2::{Domain, Socket, Type};
    // A listener that never accepts, with the smallest backlog; once its accept queue is
    // full, Linux drops further SYNs and a connect hangs until its timeout.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers: Vec<TcpStream> = Vec::new();
    let mut queue_full = false;
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => fillers.push(stream),
            Err(err) if err.kind() == io::ErrorKind::TimedOut => {
                queue_full = true;
                break;
            }
            Err(err) => panic!("filling the accept queue: {err}"),
        }
    }
    assert!(
        queue_full,
        "the accept queue took {} connections without dropping SYNs",
        fillers.len()
    );
    let started = Instant::now();
    let events = fails(
        &format!("ws://{addr}/"),
        ConnectOptions::new().connect_timeout(Duration::from_millis(300)),
    );
    let took = started.elapsed();
    assert_eq!(
        events,
        lines(&[
            "connect Connecting",
            "error connect TimedOut",
            "close 1006 \"\""
        ])
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    drop(fillers);
}

#[test]
fn handshake_timeout_when_the_server_never_answers() {
    let fake = FakeServer::start(|mut conn| conn.hold_until_client_closes());
    let started = Instant::now();
    let events = fails(
        &fake.url(),
        ConnectOptions::new().handshake_timeout(Duration::from_millis(300)),
    );
    let took = started.elapsed();
    assert_eq!(
        events,
        lines(&["connect Connecting", "error timeout", "close 1006 \"\""])
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    fake.requests.recv_timeout(LIMIT).expect("the request came");
}

#[test]
fn wrong_sec_websocket_accept_fails_the_handshake() {
    let fake = FakeServer::start(|mut conn| {
        conn.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        );
        conn.hold_until_client_closes();
    });
    assert_eq!(
        fails(&fake.url(), ConnectOptions::new()),
        lines(&[
            "connect Connecting",
            &format!("error response {:?}", ResponseError::BadAccept),
            "close 1006 \"\"",
        ])
    );
}

/// A 101 with the right accept and `extra` headers.
fn switching(extra: &'static str) -> FakeServer {
    FakeServer::start(move |mut conn| {
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            conn.accept()
        );
        conn.write(answer.as_bytes());
        conn.hold_until_client_closes();
    })
}

#[test]
fn fake_server_with_the_right_accept_opens() {
    // The control for the tests below: the fake's 101 is good when nothing else is wrong.
    let fake = switching("");
    let seen = run(Client::new(1)
        .connecting(&fake.url(), ConnectOptions::new())
        .on_open(|ctx, id, _| {
            ctx.terminate(id);
        }));
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "upgrade protocol=- deflate=false",
            "open Open",
            "close 1006 \"\"",
        ])
    );
}

#[test]
fn subprotocol_not_offered_fails_the_handshake() {
    let fake = switching("Sec-WebSocket-Protocol: other\r\n");
    assert_eq!(
        fails(&fake.url(), ConnectOptions::new().protocol("chat")),
        lines(&[
            "connect Connecting",
            "error protocol-not-offered other",
            "close 1006 \"\"",
        ])
    );
}

#[test]
fn subprotocol_when_none_was_offered_fails_the_handshake() {
    let fake = switching("Sec-WebSocket-Protocol: chat\r\n");
    assert_eq!(
        fails(&fake.url(), ConnectOptions::new()),
        lines(&[
            "connect Connecting",
            "error protocol-not-offered chat",
            "close 1006 \"\"",
        ])
    );
}

#[test]
fn extension_not_offered_fails_the_handshake() {
    let fake = switching("Sec-WebSocket-Extensions: permessage-deflate\r\n");
    assert_eq!(
        fails(&fake.url(), ConnectOptions::new()),
        lines(&[
            "connect Connecting",
            "error extension-not-offered permessage-deflate",
            "close 1006 \"\"",
        ])
    );
}

#[test]
fn server_closing_before_answering_fails_the_handshake() {
    let fake = FakeServer::start(drop);
    assert_eq!(
        fails(&fake.url(), ConnectOptions::new()),
        lines(&["connect Connecting", "error closed", "close 1006 \"\""])
    );
}

#[test]
fn server_closing_in_the_middle_of_its_answer_fails_the_handshake() {
    let fake = FakeServer::start(|mut conn| {
        conn.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs");
    });
    assert_eq!(
        fails(&fake.url(), ConnectOptions::new()),
        lines(&["connect Connecting", "error closed", "close 1006 \"\""])
    );
}

#[test]
fn close_while_connecting_is_an_interrupted_connect_error() {
    // Against a live server: closed in the callback that connected, it never opens.
    let server = Served::start(common::config(), Echo);
    let url = server.url("/");
    let seen = run(Client::new(1).on_start(move |ctx, seen| {
        let id = ctx.connect(&url, &ConnectOptions::new()).unwrap();
        seen.connected(ctx, id);
        ctx.close(id, CloseCode::NORMAL, "never mind").unwrap();
        seen.log(id, format!("after close {:?}", ctx.ready_state(id)));
    }));
    let events = seen.first();
    // What ready_state answers right after the close is checked in
    // ready_state_is_closed_in_on_close_of_a_connection_that_never_opened.
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0], "connect Connecting");
    assert!(events[1].starts_with("after close "), "{events:?}");
    assert_eq!(
        events[2..],
        lines(&["error connect Interrupted", "close 1006 \"\""])[..],
        "{events:?}"
    );
    seen.assert_closed_exactly_once();
    server.stop();
}

#[test]
fn close_after_the_request_was_sent_but_before_the_answer() {
    // Connected, request sent, no answer yet: closed from another thread.
    let fake = FakeServer::start(|mut conn| conn.hold_until_client_closes());
    let url = fake.url();
    let running = Running::client(Client::new(1), move |server| {
        let id = server.connect(&url, &ConnectOptions::new()).unwrap();
        server.handler().seen.ids.lock().unwrap().push(id);
    });
    fake.requests.recv_timeout(LIMIT).expect("the request came");
    let id = running.seen.id(0);
    running
        .remote
        .close(id, CloseCode::NORMAL, "never mind")
        .unwrap();
    let seen = running.wait();
    assert_eq!(
        seen.first(),
        lines(&["error connect Interrupted", "close 1006 \"\""])
    );
}

/// `close` while CONNECTING fails the connection at once (the browser's close(): "Fail the
/// WebSocket connection"): no `on_upgrade_response` or `on_open` may follow, even when the
/// server's 101 is read later in the same loop turn.
#[test]
fn close_while_connecting_with_the_101_read_in_the_same_turn() {
    let (a_go, a_wait) = mpsc::channel::<()>();
    let (b_go, b_wait) = mpsc::channel::<()>();
    let (wrote, written) = mpsc::channel::<&'static str>();
    let wrote_b = wrote.clone();
    // A opens at once and, when told, sends the text that makes the client close B.
    let fake_a = FakeServer::start(move |mut conn| {
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            conn.accept()
        );
        conn.write(answer.as_bytes());
        if a_wait.recv_timeout(LIMIT).is_ok() {
            conn.write(&[0x81, 7, b'c', b'l', b'o', b's', b'e', b' ', b'B']);
            let _ = wrote.send("a");
        }
        conn.hold_until_client_closes();
    });
    // B answers its 101 only when told.
    let fake_b = FakeServer::start(move |mut conn| {
        if b_wait.recv_timeout(LIMIT).is_ok() {
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                conn.accept()
            );
            conn.write(answer.as_bytes());
            let _ = wrote_b.send("b");
        }
        conn.hold_until_client_closes();
    });
    let (opened_tx, opened_rx) = mpsc::channel::<ConnId>();
    let urls = [fake_a.url(), fake_b.url()];
    let client = Client::new(2)
        .on_start(move |ctx, seen| {
            for url in &urls {
                let id = ctx.connect(url, &ConnectOptions::new()).unwrap();
                seen.connected(ctx, id);
            }
        })
        .on_open(move |_, id, _| {
            let _ = opened_tx.send(id);
        })
        .on_message(|ctx, id, _, seen| {
            let b = seen.id(1);
            let _ = ctx.close(b, CloseCode::NORMAL, "");
            seen.log(b, format!("closed by the app {:?}", ctx.ready_state(b)));
            ctx.terminate(id);
        });
    let running = Running::client(client, |_| {});
    let a = opened_rx.recv_timeout(LIMIT).expect("A opened");
    assert_eq!(a, running.seen.id(0));
    fake_b
        .requests
        .recv_timeout(LIMIT)
        .expect("B's request came");
    // Hold the loop in a job while A's frame and then B's 101 arrive, so that the next
    // turn reads both, A's first.
    let (blocked_tx, blocked_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    running
        .remote
        .run(0, move |_| {
            let _ = blocked_tx.send(());
            let _ = release_rx.recv_timeout(LIMIT);
        })
        .unwrap();
    blocked_rx
        .recv_timeout(LIMIT)
        .expect("the loop took the job");
    a_go.send(()).unwrap();
    assert_eq!(written.recv_timeout(LIMIT), Ok("a"));
    b_go.send(()).unwrap();
    assert_eq!(written.recv_timeout(LIMIT), Ok("b"));
    // Let both land in the kernel's receive queues before the loop polls again: the writes
    // are done, the loopback delivery is synchronous.
    release_tx.send(()).unwrap();
    let seen = running.wait();
    assert_eq!(
        seen.of(a),
        lines(&[
            "connect Connecting",
            "upgrade protocol=- deflate=false",
            "open Open",
            "text close B",
            "close 1006 \"\"",
        ])
    );
    let b = seen.id(1);
    let events = seen.of(b);
    assert!(
        !events
            .iter()
            .any(|e| e.starts_with("upgrade") || e.starts_with("open")),
        "B opened after the application closed it: {events:#?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("close 1006 \"\""),
        "{events:#?}"
    );
    assert!(
        events.contains(&"error connect Interrupted".to_string()),
        "{events:#?}"
    );
}

#[test]
fn terminate_while_connecting_is_only_a_close_1006() {
    let server = Served::start(common::config(), Echo);
    let url = server.url("/");
    let seen = run(Client::new(1).on_start(move |ctx, seen| {
        let id = ctx.connect(&url, &ConnectOptions::new()).unwrap();
        seen.connected(ctx, id);
        assert!(ctx.terminate(id), "terminate");
        assert!(!ctx.terminate(id), "terminate twice");
    }));
    assert_eq!(
        seen.first(),
        lines(&["connect Connecting", "close 1006 \"\""])
    );
    server.stop();
}

/// The browser's `readyState` is CLOSED when the `close` event fires, however the
/// connection ended; here for connections that never opened, with one that did as the
/// control.
#[test]
fn ready_state_is_closed_in_on_close_of_a_connection_that_never_opened() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let fake = FakeServer::start(|mut conn| conn.hold_until_client_closes());
    let server = Served::start(common::config(), Upstream::default());
    let urls = [
        server.url("/"),
        format!("ws://127.0.0.1:{port}/"),
        fake.url(),
        server.url("/private"),
        server.url("/"),
    ];
    let client = Client::new(urls.len())
        .on_start(move |ctx, seen| {
            let options = ConnectOptions::new().handshake_timeout(Duration::from_millis(300));
            for url in &urls {
                let id = ctx.connect(url, &options).unwrap();
                seen.connected(ctx, id);
            }
            // The last one is closed while CONNECTING: the browser's close() then sets
            // readyState to CLOSING.
            let last = seen.id(4);
            ctx.close(last, CloseCode::NORMAL, "").unwrap();
            seen.log(last, format!("after close {:?}", ctx.ready_state(last)));
        })
        .on_open(|ctx, id, _| {
            ctx.close(id, CloseCode::NORMAL, "").unwrap();
        });
    let seen = run(client);
    seen.assert_closed_exactly_once();
    let states = seen.close_states.lock().unwrap().clone();
    let mut wrong: Vec<String> = states
        .iter()
        .filter(|(_, state)| *state != ReadyState::Closed)
        .map(|(id, state)| format!("{state:?} in on_close after {:?}", seen.of(*id)))
        .collect();
    let after_close = &seen.of(seen.id(4))[1];
    if after_close != "after close Closing" {
        wrong.push(format!("{after_close} (CLOSING expected)"));
    }
    assert!(wrong.is_empty(), "wrong ready states: {wrong:#?}");
    server.stop();
}

#[test]
fn synchronous_connect_errors() {
    let mut server = Server::without_listener(common::config(), Client::new(1)).unwrap();
    let ok = ConnectOptions::new;
    let url_error = |r: Result<ConnId, ConnectError>| match r {
        Err(ConnectError::Url(e)) => e,
        other => panic!("expected a URL error, got {other:?}"),
    };
    assert_eq!(
        url_error(server.connect("http:/x", &ok())),
        UrlError::MissingHost
    );
    assert!(matches!(
        url_error(server.connect("ws://a/#frag", &ok())),
        UrlError::Fragment { .. }
    ));
    assert!(matches!(
        url_error(server.connect("ftp://a/", &ok())),
        UrlError::UnsupportedScheme(_)
    ));
    assert_eq!(url_error(server.connect("", &ok())), UrlError::Empty);
    assert_eq!(
        server.connect("ws://a/", &ok().header("X-Evil", "a\r\nInjected: yes")),
        Err(ConnectError::Header("X-Evil".into()))
    );
    assert_eq!(
        server.connect("ws://a/", &ok().header("Bad Name", "x")),
        Err(ConnectError::Header("Bad Name".into()))
    );
    assert_eq!(
        server.connect("ws://a/", &ok().header("Sec-WebSocket-Key", "x")),
        Err(ConnectError::Header("Sec-WebSocket-Key".into()))
    );
    assert_eq!(
        server.connect("ws://a/", &ok().protocol("chat").protocol("chat")),
        Err(ConnectError::Protocol("chat".into()))
    );
    assert_eq!(
        server.connect("ws://a/", &ok().protocol("not a token")),
        Err(ConnectError::Protocol("not a token".into()))
    );
    assert_eq!(server.connect("wss://a/", &ok()), Err(ConnectError::NoTls));
    // None of them took a connection, or will have events.
    assert_eq!(server.remote().connections(), [0]);
    server.shutdown_handle().shutdown();
    assert_eq!(
        server.connect("ws://127.0.0.1:9/", &ok()),
        Err(ConnectError::Stopped)
    );
}

#[test]
fn connect_past_max_connections_is_full() {
    let server = Served::start(common::config(), Echo);
    let config = Config {
        max_connections: 1,
        ..common::config()
    };
    let url = server.url("/");
    let client = Client::new(1).on_start(move |ctx, seen| {
        let id = ctx.connect(&url, &ConnectOptions::new()).unwrap();
        seen.connected(ctx, id);
        let second = ctx.connect(&url, &ConnectOptions::new());
        seen.log(id, format!("second {second:?}"));
        ctx.close(id, CloseCode::NORMAL, "").unwrap();
    });
    let seen = Running::start(false, config, client, |_| {}).wait();
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "second Err(Full)",
            "error connect Interrupted",
            "close 1006 \"\"",
        ])
    );
    server.stop();
}

// ---------------------------------------------------------------------------------------
// Remote::connect
// ---------------------------------------------------------------------------------------

#[test]
fn remote_connect_from_another_thread() {
    let server = Served::start(common::config(), Echo);
    let client = Client::new(1)
        .on_open(|ctx, id, _| {
            sent(ctx.send_text(id, "from afar"));
        })
        .on_message(|ctx, id, _, _| {
            ctx.close(id, CloseCode::NORMAL, "").unwrap();
        });
    let running = Running::client(client, |_| {});
    let id = running
        .remote
        .connect(&server.url("/"), &ConnectOptions::new())
        .expect("Remote::connect");
    let seen = running.wait();
    assert_eq!(
        seen.of(id),
        lines(&[
            "upgrade protocol=- deflate=false",
            "open Open",
            "text from afar",
            "close 1000 \"\"",
        ])
    );
    // Every event was about that id.
    assert!(
        seen.all().iter().all(|(i, _)| *i == id),
        "{:#?}",
        seen.all()
    );
    server.stop();
}

#[test]
fn remote_connect_on_the_loop_thread_is_refused() {
    let server = Served::start(common::config(), Echo);
    let url = server.url("/");
    let (remote_tx, remote_rx) = mpsc::channel::<Remote>();
    let client = Client::new(1).on_start(move |ctx, seen| {
        let remote = remote_rx.recv().unwrap();
        let refused = remote.connect(&url, &ConnectOptions::new());
        // Then the right way, so the loop has something to close and stop on.
        let id = ctx.connect(&url, &ConnectOptions::new()).unwrap();
        seen.connected(ctx, id);
        seen.log(id, format!("remote {refused:?}"));
        ctx.terminate(id);
    });
    let running = Running::client(client, move |server| {
        remote_tx.send(server.remote()).unwrap();
    });
    let seen = running.wait();
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "remote Err(OnLoopThread)",
            "close 1006 \"\"",
        ])
    );
    server.stop();
}

// ---------------------------------------------------------------------------------------
// An independent server: Python `websockets`
// ---------------------------------------------------------------------------------------

/// An echo server on `websockets`' asyncio API: permessage-deflate on by default, 401 with a
/// body for `/private`. It prints its address as wsloop's binary does, so
/// [`Proc::listening_addr`] reads it.
const PYTHON_SERVER: &str = r#"
import asyncio
import sys
from http import HTTPStatus

from websockets.asyncio.server import serve


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


def process_request(connection, request):
    if request.path == "/private":
        return connection.respond(HTTPStatus.UNAUTHORIZED, "log in first\n")
    return None


async def main():
    async with serve(echo, "127.0.0.1", 0, process_request=process_request,
                     max_size=None) as server:
        host, port = server.sockets[0].getsockname()[:2]
        print(f"listening on ws://{host}:{port}", flush=True)
        await server.serve_forever()


asyncio.run(main())
"#;

/// Whether `python3` with `websockets` 15's asyncio server is here.
fn python_websockets_server_available() -> bool {
    common::python_websockets_has("websockets.asyncio.server")
}

/// Starts the Python server; killed by its PID when the guard drops.
fn python_server() -> (Proc, SocketAddr) {
    // One file per server: tests run in parallel, and one must not truncate the script
    // while another python3 reads it.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let script =
        std::env::temp_dir().join(format!("wsloop-client-test-{}-{n}.py", std::process::id()));
    std::fs::write(&script, PYTHON_SERVER).unwrap();
    let mut command = Command::new("python3");
    command.arg(&script);
    let mut proc = Proc::spawn_command(command);
    let addr = proc.listening_addr();
    // Read by now: python3 compiles the whole script before it runs.
    let _ = std::fs::remove_file(&script);
    (proc, addr)
}

fn python_echo(options: ConnectOptions, deflate: bool) {
    let (proc, addr) = python_server();
    // Through a forwarder that counts the bytes, to see the compression on the wire.
    let proxy = CountingProxy::start(addr);
    let big = compressible(256 * 1024);
    let sends = big.clone();
    let client = Client::new(1)
        .connecting(&format!("ws://{}/echo", proxy.addr), options)
        .on_open(move |ctx, id, _| {
            sent(ctx.send_text(id, "hello, websockets"));
            sent(ctx.send_binary(id, &[0, 1, 2, 3, 255]));
            sent(ctx.send_text(id, &sends));
        })
        .on_message(move |ctx, id, msg, seen| {
            if msg.as_bytes().len() == big.len() {
                seen.log(id, format!("same as sent: {}", msg == Message::Text(&big)));
                sent(ctx.ping(id, b"p"));
            }
        })
        .on_pong(|ctx, id, _| {
            ctx.close(id, CloseCode::NORMAL, "bye").unwrap();
        });
    let seen = run(client);
    let upgrade = format!("upgrade protocol=- deflate={deflate}");
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            &upgrade,
            "open Open",
            "text hello, websockets",
            "binary \u{0}\u{1}\u{2}\u{3}\u{fffd}",
            "text <262144 bytes>",
            "same as sent: true",
            "pong p",
            "close 1000 \"bye\"",
        ])
    );
    let up = proxy.upstream.load(Ordering::SeqCst);
    if deflate {
        let answer = seen.opened(0).deflate.unwrap();
        assert!(answer.starts_with("permessage-deflate"), "{answer}");
        assert!(
            up < 64 * 1024,
            "256 KiB of compressible text took {up} bytes"
        );
    } else {
        assert!(up > 256 * 1024, "256 KiB took only {up} bytes uncompressed");
    }
    drop(proc);
}

#[test]
fn python_websockets_server_echo_with_deflate() {
    if python_websockets_server_available() {
        python_echo(ConnectOptions::new().deflate(true), true);
    }
}

#[test]
fn python_websockets_server_echo_without_deflate() {
    if python_websockets_server_available() {
        python_echo(ConnectOptions::new(), false);
    }
}

#[test]
fn python_websockets_server_401_is_an_unexpected_response_with_its_body() {
    if !python_websockets_server_available() {
        return;
    }
    let (proc, addr) = python_server();
    let seen = run(Client::new(1).connecting(
        &format!("ws://{addr}/private"),
        ConnectOptions::new().header("Authorization", "Bearer wrong"),
    ));
    assert_eq!(
        seen.first(),
        lines(&[
            "connect Connecting",
            "unexpected 401 Unauthorized",
            "error refused 401",
            "close 1006 \"\"",
        ])
    );
    let refused = seen.refused(0);
    assert_eq!(String::from_utf8_lossy(&refused.body), "log in first\n");
    assert!(refused.whole);
    drop(proc);
}
