//! Several event loops on one port (`Cluster`), tested with 4 loops on whatever cores the
//! machine has: where connections land, rooms and sends across loops, `Remote` on every loop,
//! slow subscribers, full mailboxes, shutdown, and a panicking handler.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{set_recv_buffer, ws_connect_path, ws_read_data, Ws, IO_TIMEOUT};
use tungstenite::Message as WsMessage;
use wsloop::{
    Accept, CloseCode, Cluster, Config, ConnId, Context, Handler, Message, Published, Remote,
    Request, SendStatus, ShutdownHandle, SlowSubscriber, Upgrade,
};

const LOOPS: usize = 4;

/// What the loops' handlers share with the test.
#[derive(Default)]
struct Shared {
    /// Every connection opened, on any loop.
    opened: Mutex<Vec<ConnId>>,
    /// Publish reports, summed.
    published: Mutex<Published>,
    /// Send statuses of cross-loop sends.
    forwarded: Mutex<Vec<SendStatus>>,
    /// Set by a handler that is about to block its loop.
    sleeping: AtomicBool,
    /// Publishes skipped for slow subscribers.
    publish_dropped: AtomicUsize,
}

/// A test handler, one per loop. On open it tells the client its id and loop; text commands
/// make it publish, send or close across loops, or block its loop for a while. Connections
/// to `/chat/ROOM` join `ROOM` and publish what they send to it.
struct Probe {
    shared: Arc<Shared>,
}

impl Probe {
    fn find(&self, raw: &str) -> ConnId {
        let raw: u64 = raw.parse().expect("an id");
        let opened = self.shared.opened.lock().unwrap();
        *opened
            .iter()
            .find(|id| id.as_u64() == raw)
            .expect("a known id")
    }
}

impl Handler for Probe {
    type Data = ();

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
        match req.path().strip_prefix("/chat/") {
            Some(room) => Upgrade::accept().subscribe(room),
            None => Upgrade::accept(),
        }
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId) {
        assert_eq!(
            id.loop_index(),
            ctx.loop_index(),
            "events come to the owning loop"
        );
        self.shared.opened.lock().unwrap().push(id);
        let hello = format!("id {} loop {}", id.as_u64(), ctx.loop_index());
        assert_eq!(ctx.send_text(id, &hello), Ok(SendStatus::Sent));
    }

    fn on_publish_dropped(&mut self, _ctx: &mut Context<'_>, _id: ConnId, _topic: &str) {
        self.shared.publish_dropped.fetch_add(1, Ordering::SeqCst);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let Message::Text(text) = msg else {
            let _ = ctx.send(id, msg);
            return;
        };
        let words: Vec<&str> = text.splitn(4, ' ').collect();
        match words[..] {
            ["sleep", ms] => {
                self.shared.sleeping.store(true, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(ms.parse().unwrap()));
            }
            ["publish", topic, count, tag] => {
                for i in 0..count.parse().unwrap() {
                    let report = ctx.publish(topic, Message::Text(&format!("{tag}-{i}")), None);
                    let mut sum = self.shared.published.lock().unwrap();
                    sum.sent += report.sent;
                    sum.dropped += report.dropped;
                    sum.loops += report.loops;
                    sum.loops_full += report.loops_full;
                }
            }
            ["send", to, body] => {
                let to = self.find(to);
                if to.loop_index() != ctx.loop_index() {
                    // State reads see only this loop's connections, whatever the slot.
                    assert_eq!(ctx.ready_state(to), wsloop::ReadyState::Closed);
                    assert_eq!(ctx.buffered_amount(to), 0);
                    assert!(!ctx.subscribe(to, "elsewhere"));
                }
                let status = ctx.send_text(to, body).unwrap();
                self.shared.forwarded.lock().unwrap().push(status);
            }
            ["close", to] => {
                ctx.close(self.find(to), CloseCode(4001), "closed by a neighbour")
                    .unwrap();
            }
            // Anything else: what the binary does (a room member's message to the room).
            _ => wsloop::rooms::EchoRooms::default().on_message(ctx, id, msg),
        }
    }
}

struct Running {
    addr: SocketAddr,
    remote: Remote,
    stop: ShutdownHandle,
    join: JoinHandle<std::io::Result<()>>,
    shared: Arc<Shared>,
}

fn start(config: Config, loops: usize) -> Running {
    let shared = Arc::new(Shared::default());
    let for_loops = shared.clone();
    let cluster = Cluster::bind(config, loops, |_| Probe {
        shared: for_loops.clone(),
    })
    .expect("bind");
    assert_eq!(cluster.loops(), loops);
    Running {
        addr: cluster.local_addr(),
        remote: cluster.remote(),
        stop: cluster.shutdown_handle(),
        join: thread::spawn(move || cluster.run()),
        shared,
    }
}

impl Running {
    fn stop(self) {
        common::stop(self.stop, self.join);
    }
}

/// A client and what the server told it on open.
struct Client {
    ws: Ws,
    id: u64,
    loop_index: usize,
}

fn open(addr: SocketAddr, path: &str) -> Client {
    let mut ws = ws_connect_path(addr, path);
    let hello = ws_read_data(&mut ws).into_text().expect("text");
    let words: Vec<&str> = hello.split(' ').collect();
    match words[..] {
        ["id", id, "loop", index] => Client {
            ws,
            id: id.parse().unwrap(),
            loop_index: index.parse().unwrap(),
        },
        _ => panic!("unexpected greeting {hello:?}"),
    }
}

fn text(client: &mut Client) -> String {
    ws_read_data(&mut client.ws)
        .into_text()
        .expect("text")
        .to_string()
}

fn say(client: &mut Client, text: &str) {
    client.ws.send(WsMessage::text(text)).expect("send");
}

/// Opens `count` connections to `path`, one after the other.
fn open_many(addr: SocketAddr, path: &str, count: usize) -> Vec<Client> {
    (0..count).map(|_| open(addr, path)).collect()
}

fn per_loop(clients: &[Client]) -> Vec<usize> {
    let mut counts = vec![0; LOOPS];
    for client in clients {
        counts[client.loop_index] += 1;
    }
    counts
}

#[test]
fn connections_land_on_every_loop_evenly() {
    let server = start(common::config(), LOOPS);
    let clients = open_many(server.addr, "/", 3 * LOOPS);
    assert_eq!(per_loop(&clients), [3; LOOPS]);
    assert_eq!(server.remote.connections(), [3; LOOPS]);
    // Closing the connections of one loop: new ones fill that loop first.
    let (loop0, mut rest): (Vec<Client>, Vec<Client>) =
        clients.into_iter().partition(|c| c.loop_index == 0);
    for client in loop0 {
        common::ws_close(client.ws);
    }
    common::wait_until(IO_TIMEOUT, "loop 0 to let go", || {
        server.remote.connections()[0] == 0
    });
    rest.extend(open_many(server.addr, "/", 3));
    assert_eq!(per_loop(&rest), [3; LOOPS]);
    server.stop();
}

#[test]
fn reuseport_listeners_serve_on_every_loop() {
    let config = Config {
        accept: Accept::ReusePort,
        ..common::config()
    };
    let server = start(config, LOOPS);
    // The kernel hashes each connection's address to a listener: over 200 connections every
    // loop gets some (the chance that one gets none is (3/4)^200).
    let mut clients = open_many(server.addr, "/", 200);
    let counts = per_loop(&clients);
    assert!(counts.iter().all(|&n| n > 0), "per loop: {counts:?}");
    assert_eq!(server.remote.connections(), counts);
    say(&mut clients[0], "echo");
    assert_eq!(text(&mut clients[0]), "echo");
    server.stop();
}

#[test]
fn max_connections_counts_the_whole_server() {
    let config = Config {
        max_connections: 5,
        ..common::config()
    };
    let server = start(config, LOOPS);
    let clients = open_many(server.addr, "/", 5);
    let mut extra = common::Raw::connect(server.addr);
    extra.write(&common::upgrade_request("/", &[]));
    assert_eq!(extra.read_response().status, 503);
    drop(clients);
    server.stop();
}

#[test]
fn a_room_spans_every_loop_in_order_per_sender() {
    let server = start(common::config(), LOOPS);
    let mut members = open_many(server.addr, "/chat/lobby", 2 * LOOPS);
    assert_eq!(per_loop(&members), [2; LOOPS]);
    const EACH: usize = 50;
    // Every member sends EACH messages, interleaved with the others.
    for i in 0..EACH {
        for (who, member) in members.iter_mut().enumerate() {
            say(member, &format!("{who}:{i}"));
        }
    }
    for (me, member) in members.iter_mut().enumerate() {
        let mut next = [0; 2 * LOOPS];
        for _ in 0..EACH * (2 * LOOPS - 1) {
            let got = text(member);
            let (who, i) = got.split_once(':').unwrap();
            let (who, i): (usize, usize) = (who.parse().unwrap(), i.parse().unwrap());
            assert_ne!(who, me, "the sender is excluded");
            assert_eq!(
                i, next[who],
                "member {me}: sender {who}'s messages in order, once"
            );
            next[who] += 1;
        }
    }
    server.stop();
}

#[test]
fn remote_reaches_connections_on_every_loop() {
    let server = start(common::config(), LOOPS);
    let mut clients = open_many(server.addr, "/chat/news", LOOPS);
    assert_eq!(per_loop(&clients), [1; LOOPS]);
    for client in &mut clients {
        let id = find_id(&server, client.id);
        server
            .remote
            .send(id, format!("to {}", client.id).into())
            .unwrap();
        assert_eq!(text(client), format!("to {}", client.id));
    }
    server.remote.publish("news", "extra".into(), None).unwrap();
    for client in &mut clients {
        assert_eq!(text(client), "extra");
    }
    for client in &mut clients {
        let id = find_id(&server, client.id);
        server.remote.close(id, CloseCode(4000), "bye").unwrap();
        match client.ws.read() {
            Ok(WsMessage::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 4000),
            other => panic!("expected close 4000, got {other:?}"),
        }
    }
    server.stop();
}

fn find_id(server: &Running, raw: u64) -> ConnId {
    let opened = server.shared.opened.lock().unwrap();
    *opened.iter().find(|id| id.as_u64() == raw).unwrap()
}

#[test]
fn a_handler_sends_to_and_closes_connections_of_other_loops() {
    let server = start(common::config(), LOOPS);
    let mut clients = open_many(server.addr, "/", LOOPS);
    assert_eq!(per_loop(&clients), [1; LOOPS]);
    for from in 0..LOOPS {
        let to = (from + 1) % LOOPS;
        let to_id = clients[to].id;
        say(
            &mut clients[from],
            &format!("send {to_id} hello-from-{from}"),
        );
        assert_eq!(text(&mut clients[to]), format!("hello-from-{from}"));
    }
    assert_eq!(
        *server.shared.forwarded.lock().unwrap(),
        [SendStatus::Forwarded; LOOPS]
    );
    let last = clients[LOOPS - 1].id;
    say(&mut clients[0], &format!("close {last}"));
    match clients[LOOPS - 1].ws.read() {
        Ok(WsMessage::Close(Some(frame))) => {
            assert_eq!(u16::from(frame.code), 4001);
            assert_eq!(frame.reason, "closed by a neighbour");
        }
        other => panic!("expected close 4001, got {other:?}"),
    }
    server.stop();
}

#[test]
fn a_slow_subscriber_on_one_loop_does_not_hold_up_the_others() {
    let config = Config {
        backpressure_limit: 1 << 20,
        slow_subscriber: SlowSubscriber::Drop,
        ..common::config()
    };
    let server = start(config, LOOPS);
    let mut members = open_many(server.addr, "/chat/feed", LOOPS);
    assert_eq!(per_loop(&members), [1; LOOPS]);
    // Member 1 stops reading, with a small receive buffer so the server's queue fills.
    let slow = members.remove(1);
    set_recv_buffer(slow.ws.get_ref(), 4096);
    const COUNT: usize = 200;
    let readers: Vec<_> = members
        .into_iter()
        .map(|mut member| {
            thread::spawn(move || {
                for i in 0..COUNT {
                    let got = text(&mut member);
                    assert!(
                        got.starts_with(&format!("{i} ")),
                        "member on loop {} got every message in order",
                        member.loop_index
                    );
                }
            })
        })
        .collect();
    // 12.5 MiB in all, over about half a second: more than the slow member's socket buffers
    // and queue hold, and little for the others.
    let payload = "x".repeat(64 << 10);
    for i in 0..COUNT {
        server
            .remote
            .publish("feed", format!("{i} {payload}").into(), None)
            .unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    for reader in readers {
        reader.join().expect("a reader failed");
    }
    assert!(
        server.shared.publish_dropped.load(Ordering::SeqCst) > 0,
        "the slow member's loop dropped messages for it"
    );
    drop(slow);
    server.stop();
}

/// Records log lines, to check the ones a lost delivery must leave.
struct Recorder(Mutex<Vec<String>>);

impl log::Log for Recorder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder(Mutex::new(Vec::new()));

#[test]
fn a_full_mailbox_drops_deliveries_with_a_count_and_a_log_line() {
    if log::set_logger(&RECORDER).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let config = Config {
        mailbox_capacity: 4,
        ..common::config()
    };
    let server = start(config, 2);
    let mut subscriber = open(server.addr, "/chat/busy");
    let mut publisher = open(server.addr, "/");
    assert_eq!((subscriber.loop_index, publisher.loop_index), (0, 1));
    // Block the subscriber's loop, then publish 10 messages from the other loop: its
    // mailbox takes 4, the other 6 are lost for it.
    say(&mut subscriber, "sleep 1500");
    common::wait_until(IO_TIMEOUT, "the loop to block", || {
        server.shared.sleeping.load(Ordering::SeqCst)
    });
    say(&mut publisher, "publish busy 10 m");
    common::wait_until(IO_TIMEOUT, "the publishes", || {
        let sum = server.shared.published.lock().unwrap();
        sum.loops + sum.loops_full == 10
    });
    let sum = *server.shared.published.lock().unwrap();
    assert_eq!((sum.loops, sum.loops_full), (4, 6));
    assert_eq!(server.remote.dropped_deliveries(), [6, 0]);
    for i in 0..4 {
        assert_eq!(text(&mut subscriber), format!("m-{i}"));
    }
    // Delivery resumes once the loop has drained its mailbox, and nothing else came.
    say(&mut publisher, "publish busy 1 after");
    assert_eq!(text(&mut subscriber), "after-0");
    let lines = RECORDER.0.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("loop 0: mailbox full") && l.contains("\"busy\"")),
        "log lines: {lines:?}"
    );
    server.stop();
}

#[test]
fn shutdown_closes_every_loop_with_1001() {
    let server = start(common::config(), LOOPS);
    let mut clients = open_many(server.addr, "/", 2 * LOOPS);
    assert_eq!(per_loop(&clients), [2; LOOPS]);
    server.stop.shutdown();
    for client in &mut clients {
        match client.ws.read() {
            Ok(WsMessage::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    // The clients answer the close; every loop then ends and `run` returns Ok.
    for client in &mut clients {
        let _ = client.ws.flush();
    }
    common::join_within(server.join, Duration::from_secs(5));
}

/// The child half of the panic test: a cluster whose handler panics on "panic". It runs
/// only when the parent test starts this test binary with the environment variable set.
#[test]
fn panicking_child() {
    if std::env::var_os("WSLOOP_PANIC_CHILD").is_none() {
        return;
    }
    struct Panics;
    impl Handler for Panics {
        type Data = ();

        fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
            if msg == Message::Text("panic") {
                panic!("the handler gave up");
            }
            let _ = ctx.send(id, msg);
        }
    }
    let cluster = Cluster::bind(common::config(), 2, |_| Panics).unwrap();
    println!("child listening on {}", cluster.local_addr());
    let _ = cluster.run();
    unreachable!("the cluster runs until the process aborts");
}

/// Kills the child by its PID if the test fails before it has exited.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_panic_in_one_loop_aborts_the_whole_process() {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "panicking_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WSLOOP_PANIC_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    let mut child = Reap(child);
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "child ended early"
        );
        // The harness prints "test panicking_child ... " on the same line.
        if let Some((_, addr)) = line.trim().split_once("child listening on ") {
            break addr.parse().unwrap();
        }
    };
    // Connections on both loops: one echoes, then the other's handler panics.
    let mut calm = open_raw(addr);
    let mut doomed = open_raw(addr);
    calm.send(common::OP_TEXT, b"still here");
    assert_eq!(calm.read_message().1, b"still here");
    doomed.send(common::OP_TEXT, b"panic");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < IO_TIMEOUT, "the process did not end");
        thread::sleep(Duration::from_millis(10));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGABRT), "status {status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("panicked (the handler gave up); aborting the process"),
        "stderr: {stderr}"
    );
    // The other loop's connections went down with the process, not left half served.
    calm.expect_closed();
}

fn open_raw(addr: SocketAddr) -> common::Raw {
    common::Raw::open(addr)
}

#[test]
fn a_publish_goes_only_to_loops_with_subscribers() {
    let server = start(common::config(), LOOPS);
    // Loops 0 to 3 get one connection each; only the one on loop 2 joins "quiet".
    let mut clients: Vec<Client> = (0..LOOPS)
        .map(|i| open(server.addr, if i == 2 { "/chat/quiet" } else { "/" }))
        .collect();
    assert_eq!(clients[2].loop_index, 2);
    say(&mut clients[0], "publish quiet 3 q");
    for i in 0..3 {
        assert_eq!(text(&mut clients[2]), format!("q-{i}"));
    }
    let sum = *server.shared.published.lock().unwrap();
    assert_eq!(
        (sum.sent, sum.loops, sum.loops_full),
        (0, 3, 0),
        "three publishes, each handed to loop 2 alone"
    );
    // Once its last subscriber leaves, no loop is told about the topic any more.
    common::ws_close(clients.remove(2).ws);
    common::wait_until(IO_TIMEOUT, "the subscriber to leave", || {
        server.remote.connections()[2] == 0
    });
    say(&mut clients[0], "publish quiet 1 q");
    say(&mut clients[0], "sync");
    assert_eq!(text(&mut clients[0]), "sync");
    assert_eq!(server.shared.published.lock().unwrap().loops, 3);
    server.stop();
}
