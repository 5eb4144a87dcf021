//! What applications get beyond echo: checked close codes and configs, `terminate`,
//! iterating connections, `Remote` ping / terminate / run, and a dropped message that must
//! not reach a kept compression context.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use wsloop::proto::deflate::DeflateConfig;
use wsloop::{
    CloseCode, Config, ConnId, Context, Handler, Message, SendError, SendStatus, Server,
    SlowSubscriber,
};

/// Runs text commands: `close CODE`, `terminate`, `count`, `shout TEXT` (to every open
/// connection of the loop), `flood` (compressible messages until one is dropped, then the
/// rest of a fixed number once the queue drains), anything else echoes.
#[derive(Default)]
struct Commands {
    closes: Arc<Mutex<Vec<Result<(), SendError>>>>,
    closed: Arc<Mutex<Vec<(ConnId, u16)>>>,
    flood: Option<(ConnId, usize)>,
    statuses: Arc<Mutex<Vec<SendStatus>>>,
}

const FLOOD: usize = 3000;

/// A 16 KiB message that compresses about 2:1 (random hex), so the kernel's buffers fill.
fn flood_message(index: usize) -> String {
    let mut text = format!("{index} ");
    let mut x = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while text.len() < 16 << 10 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!("{:016x}", x));
    }
    text
}

impl Commands {
    /// Sends flood messages while they are accepted; a dropped one is skipped for good.
    fn pump(&mut self, ctx: &mut Context<'_>) {
        let Some((id, next)) = self.flood else { return };
        let mut index = next;
        while index < FLOOD {
            let status = ctx.send_text(id, &flood_message(index));
            self.statuses.lock().unwrap().push(status.unwrap());
            index += 1;
            if status == Ok(SendStatus::Dropped) {
                // Wait for on_drain before going on.
                self.flood = Some((id, index));
                return;
            }
        }
        let _ = ctx.send_text(id, "done");
        self.flood = None;
    }
}

impl Handler for Commands {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        match text.split_once(' ').unwrap_or((text, "")) {
            ("close", code) => {
                let result = ctx.close(id, CloseCode(code.parse().unwrap()), "asked");
                self.closes.lock().unwrap().push(result);
                if result.is_err() {
                    let _ = ctx.send_text(id, "refused");
                }
            }
            ("terminate", _) => {
                assert!(ctx.terminate(id));
                assert!(!ctx.terminate(id), "terminated once");
                assert_eq!(ctx.send_text(id, "too late"), Err(SendError::NotOpen));
            }
            ("count", _) => {
                let count = ctx.connections().count();
                let _ = ctx.send_text(id, &count.to_string());
            }
            ("shout", words) => {
                let ids: Vec<ConnId> = ctx.connections().collect();
                for other in ids {
                    let _ = ctx.send_text(other, words);
                }
            }
            ("flood", _) => {
                self.flood = Some((id, 0));
                self.pump(ctx);
            }
            _ => {
                let _ = ctx.send_text(id, text);
            }
        }
    }

    fn on_drain(&mut self, ctx: &mut Context<'_>, _id: ConnId) {
        self.pump(ctx);
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, id: ConnId, code: CloseCode, _reason: &str) {
        self.closed.lock().unwrap().push((id, code.0));
    }
}

#[test]
fn close_codes_that_may_not_be_sent_are_refused() {
    let handler = Commands::default();
    let closes = handler.closes.clone();
    let (addr, handle, join) = start(config(), handler);
    let mut raw = Raw::open(addr);
    for code in [1004, 1005, 1006, 1015, 999, 1016, 2999, 5000, 0] {
        raw.send(OP_TEXT, format!("close {code}").as_bytes());
        assert_eq!(raw.read_message(), (OP_TEXT, b"refused".to_vec()), "{code}");
    }
    raw.send(OP_TEXT, b"close 4000");
    assert_eq!(raw.expect_close_frame().close_code(), Some(4000));
    let closes = closes.lock().unwrap().clone();
    assert_eq!(closes[0], Err(SendError::InvalidCloseCode(1004)));
    assert_eq!(closes[2], Err(SendError::InvalidCloseCode(1006)));
    assert_eq!(closes.last(), Some(&Ok(())));
    raw.send(OP_CLOSE, &close_payload(4000, b""));
    raw.expect_closed();
    stop(handle, join);
}

#[test]
fn configs_that_contradict_themselves_are_refused() {
    let too_high = Config {
        backpressure_limit: 2 << 20,
        max_buffered: 1 << 20,
        ..config()
    };
    let err = Server::bind(too_high, wsloop::Echo).err().expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("max_buffered"), "{err}");
    let bad_code = Config {
        slow_subscriber: SlowSubscriber::Close(CloseCode::ABNORMAL),
        ..config()
    };
    assert!(Server::bind(bad_code, wsloop::Echo).is_err());
    let clustered = Config {
        slow_subscriber: SlowSubscriber::Close(CloseCode(1005)),
        ..config()
    };
    assert!(wsloop::Cluster::bind(clustered, 2, |_| wsloop::Echo).is_err());
}

#[test]
fn terminate_drops_without_a_close_frame_and_others_carry_on() {
    let handler = Commands::default();
    let closed = handler.closed.clone();
    let (addr, handle, join) = start(config(), handler);
    let mut bystander = Raw::open(addr);
    let mut doomed = Raw::open(addr);
    doomed.send(OP_TEXT, b"terminate");
    // Straight to the end of the TCP connection: no close frame, nothing queued after.
    doomed.expect_closed();
    wait_until(IO_TIMEOUT, "on_close", || closed.lock().unwrap().len() == 1);
    assert_eq!(closed.lock().unwrap()[0].1, 1006);
    bystander.send(OP_TEXT, b"still here");
    assert_eq!(bystander.read_message(), (OP_TEXT, b"still here".to_vec()));
    bystander.close_normally();
    stop(handle, join);
}

#[test]
fn a_handler_iterates_the_open_connections() {
    let (addr, handle, join) = start(config(), Commands::default());
    let mut clients: Vec<Raw> = (0..3).map(|_| Raw::open(addr)).collect();
    clients[0].send(OP_TEXT, b"count");
    assert_eq!(clients[0].read_message(), (OP_TEXT, b"3".to_vec()));
    clients[1].send(OP_TEXT, b"shout hello all");
    for client in &mut clients {
        assert_eq!(client.read_message(), (OP_TEXT, b"hello all".to_vec()));
    }
    clients.pop().unwrap().close_normally();
    clients[0].send(OP_TEXT, b"count");
    assert_eq!(clients[0].read_message(), (OP_TEXT, b"2".to_vec()));
    stop(handle, join);
}

#[test]
fn remote_pings_runs_jobs_and_terminates() {
    let handler = Commands::default();
    let closed = handler.closed.clone();
    let server = Server::bind(config(), handler).unwrap();
    let addr = server.local_addr();
    let remote = server.remote();
    let stop_handle = server.shutdown_handle();
    let join = std::thread::spawn(move || server.run());
    let mut client = Raw::open(addr);
    // A job on the loop finds the connection and greets it.
    let (tx, rx) = std::sync::mpsc::channel();
    remote
        .run(0, move |ctx| {
            let ids: Vec<ConnId> = ctx.connections().collect();
            for &id in &ids {
                let _ = ctx.send_text(id, "from a job");
            }
            tx.send(ids).unwrap();
        })
        .unwrap();
    let ids = rx.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(client.read_message(), (OP_TEXT, b"from a job".to_vec()));
    assert_eq!(remote.run(1, |_| {}), Err(wsloop::RemoteError::Stopped));
    remote.ping(ids[0], b"anyone?").unwrap();
    let ping = client.frame();
    assert_eq!((ping.opcode, &ping.payload[..]), (OP_PING, &b"anyone?"[..]));
    assert_eq!(
        remote.ping(ids[0], &[0; 126]),
        Err(wsloop::RemoteError::TooLong)
    );
    remote.terminate(ids[0]).unwrap();
    client.expect_closed();
    wait_until(IO_TIMEOUT, "on_close", || {
        closed.lock().unwrap().as_slice() == [(ids[0], 1006)]
    });
    stop(stop_handle, join);
}

#[test]
fn a_dropped_message_does_not_reach_a_kept_compression_context() {
    if !python_websockets_available() {
        return;
    }
    let handler = Commands::default();
    let statuses = handler.statuses.clone();
    let config = Config {
        deflate: Some(DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            ..DeflateConfig::default()
        }),
        backpressure_limit: 64 << 10,
        max_buffered: 128 << 10,
        ..config()
    };
    let (addr, handle, join) = start(config, handler);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/deflate_dropped.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(format!("ws://{addr}"))
        .output()
        .expect("run python3");
    stop_within(handle, join, Duration::from_secs(10));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.starts_with("received "),
        "client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let statuses = statuses.lock().unwrap();
    let dropped = statuses
        .iter()
        .filter(|s| **s == SendStatus::Dropped)
        .count();
    assert!(dropped > 0, "the flood never passed max_buffered");
    let received: usize = stdout.trim()["received ".len()..].parse().unwrap();
    assert_eq!(
        received,
        FLOOD - dropped,
        "every message not dropped arrived"
    );
}

/// Counts the `Member`s dropped, to see that a connection's data goes with it.
struct DropCount(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What a chat connection carries from its upgrade request.
struct Member {
    name: String,
    messages: usize,
    _count: DropCount,
}

/// Refuses connections without `?name=`, tags each message with the sender's name and
/// number, and records whether `on_close` still sees the data.
struct Named {
    dropped: Arc<std::sync::atomic::AtomicUsize>,
    closed_with_data: Arc<Mutex<Vec<String>>>,
}

impl Handler for Named {
    type Data = Member;

    fn on_upgrade(&mut self, req: &wsloop::Request<'_, '_>) -> wsloop::Upgrade<Member> {
        match req.query_param("name") {
            Some(name) => wsloop::Upgrade::accept().data(Member {
                name: name.into_owned(),
                messages: 0,
                _count: DropCount(self.dropped.clone()),
            }),
            None => wsloop::Upgrade::reject(400, "add ?name=YOU"),
        }
    }

    fn on_open(&mut self, ctx: &mut Context<'_, Member>, id: ConnId) {
        let welcome = format!("welcome {}", ctx.data(id).expect("set at upgrade").name);
        let _ = ctx.send_text(id, &welcome);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Member>, id: ConnId, msg: Message<'_>) {
        let Some(member) = ctx.data_mut(id) else {
            return;
        };
        member.messages += 1;
        let line = format!(
            "{} #{}: {}",
            member.name,
            member.messages,
            String::from_utf8_lossy(msg.as_bytes())
        );
        let _ = ctx.send_text(id, &line);
    }

    fn on_close(&mut self, ctx: &mut Context<'_, Member>, id: ConnId, _: CloseCode, _: &str) {
        if let Some(member) = ctx.data(id) {
            self.closed_with_data
                .lock()
                .unwrap()
                .push(member.name.clone());
        }
    }
}

#[test]
fn per_connection_data_travels_from_upgrade_to_close_and_is_dropped_after() {
    let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let closed_with_data = Arc::new(Mutex::new(Vec::new()));
    let handler = Named {
        dropped: dropped.clone(),
        closed_with_data: closed_with_data.clone(),
    };
    let (addr, handle, join) = start(config(), handler);
    let mut anonymous = Raw::connect(addr);
    anonymous.write(&upgrade_request("/chat", &[]));
    assert_eq!(anonymous.read_response().status, 400);
    let mut ada = Raw::connect(addr);
    ada.handshake(&upgrade_request("/chat?name=Ada%20L", &[]));
    let mut bob = Raw::connect(addr);
    bob.handshake(&upgrade_request("/chat?name=bob", &[]));
    assert_eq!(ada.read_message().1, b"welcome Ada L");
    assert_eq!(bob.read_message().1, b"welcome bob");
    ada.send(OP_TEXT, b"hi");
    bob.send(OP_TEXT, b"yo");
    ada.send(OP_TEXT, b"again");
    assert_eq!(ada.read_message().1, b"Ada L #1: hi");
    assert_eq!(bob.read_message().1, b"bob #1: yo");
    assert_eq!(ada.read_message().1, b"Ada L #2: again");
    ada.close_normally();
    wait_until(IO_TIMEOUT, "Ada's data to be dropped", || {
        dropped.load(std::sync::atomic::Ordering::SeqCst) == 1
    });
    assert_eq!(*closed_with_data.lock().unwrap(), ["Ada L"]);
    // A new connection in the freed slot starts with its own data, not Ada's.
    let mut cy = Raw::connect(addr);
    cy.handshake(&upgrade_request("/chat?name=cy", &[]));
    assert_eq!(cy.read_message().1, b"welcome cy");
    cy.send(OP_TEXT, b"first");
    assert_eq!(cy.read_message().1, b"cy #1: first");
    stop(handle, join);
    assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 3);
}
