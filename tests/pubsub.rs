//! Pub/sub over loopback: publish order, sender exclusion, unsubscribe on close, slow
//! subscribers, and publishing from another thread.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message as WsMessage, WebSocket};
use wsloop::rooms::EchoRooms;
use wsloop::{
    CloseCode, Config, ConnId, Context, Handler, Message, Remote, Server, ShutdownHandle,
    SlowSubscriber, Upgrade,
};

type Client = WebSocket<MaybeTlsStream<TcpStream>>;

struct Running {
    addr: SocketAddr,
    remote: Remote,
    stop: ShutdownHandle,
    join: JoinHandle<std::io::Result<()>>,
}

fn start<H: Handler + Send + 'static>(config: Config, handler: H) -> Running {
    let server = Server::bind(config, handler).expect("bind");
    let running_addr = server.local_addr();
    let remote = server.remote();
    let stop = server.shutdown_handle();
    let join = thread::spawn(move || server.run());
    Running {
        addr: running_addr,
        remote,
        stop,
        join,
    }
}

impl Running {
    fn stop(self) {
        self.stop.shutdown();
        self.join
            .join()
            .expect("server thread")
            .expect("run returned an error");
    }
}

fn connect(addr: SocketAddr, path: &str) -> Client {
    let (client, response) = tungstenite::connect(format!("ws://{addr}{path}")).expect("connect");
    assert_eq!(response.status(), 101);
    if let MaybeTlsStream::Plain(stream) = client.get_ref() {
        stream.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    }
    client
}

fn read_text(client: &mut Client) -> String {
    loop {
        match client.read().expect("read") {
            WsMessage::Text(text) => return text,
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Waits until `count()` reaches `want`, so a test knows the server has seen every join.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + common::IO_TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Joins `/room/NAME`, publishes what members send, and reports subscriber counts.
#[derive(Clone, Default)]
struct Room {
    members: Arc<Mutex<usize>>,
    closed: Arc<Mutex<Vec<ConnId>>>,
    dropped: Arc<Mutex<usize>>,
}

impl Handler for Room {
    type Data = ();

    fn on_upgrade(&mut self, req: &wsloop::Request<'_, '_>) -> Upgrade {
        Upgrade::accept().subscribe(req.path().trim_start_matches("/room/"))
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId) {
        let topic = ctx.topics(id).next().unwrap_or_default().to_owned();
        *self.members.lock().unwrap() = ctx.subscriber_count(&topic);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let topic = ctx.topics(id).next().unwrap_or_default().to_owned();
        if msg == Message::Text("leave") {
            assert!(ctx.unsubscribe(id, &topic));
            *self.members.lock().unwrap() = ctx.subscriber_count(&topic);
            return;
        }
        ctx.publish(&topic, msg, Some(id));
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, id: ConnId, _: CloseCode, _: &str) {
        self.closed.lock().unwrap().push(id);
        *self.members.lock().unwrap() = ctx.subscriber_count("lobby");
    }

    fn on_publish_dropped(&mut self, _: &mut Context<'_>, _: ConnId, topic: &str) {
        assert_eq!(topic, "lobby");
        *self.dropped.lock().unwrap() += 1;
    }
}

#[test]
fn subscribers_get_every_publish_in_order_and_the_sender_none() {
    let room = Room::default();
    let server = start(common::config(), room.clone());
    let mut subscribers: Vec<Client> = (0..5)
        .map(|_| connect(server.addr, "/room/lobby"))
        .collect();
    let mut sender = connect(server.addr, "/room/lobby");
    wait_for("six members", || *room.members.lock().unwrap() == 6);
    for i in 0..200 {
        sender.send(WsMessage::Text(format!("m{i}"))).unwrap();
    }
    sender.send(WsMessage::Text("end".into())).unwrap();
    for subscriber in &mut subscribers {
        for i in 0..200 {
            assert_eq!(read_text(subscriber), format!("m{i}"));
        }
        assert_eq!(read_text(subscriber), "end");
    }
    // The sender was excluded: the next thing it hears is a publish from someone else.
    subscribers[0]
        .send(WsMessage::Text("from 0".into()))
        .unwrap();
    assert_eq!(read_text(&mut sender), "from 0");
    server.stop();
}

#[test]
fn topics_are_separate_and_unsubscribe_stops_delivery() {
    let room = Room::default();
    let server = start(common::config(), room.clone());
    let mut a1 = connect(server.addr, "/room/a");
    let mut a2 = connect(server.addr, "/room/a");
    let mut b1 = connect(server.addr, "/room/b");
    let mut b2 = connect(server.addr, "/room/b");
    a2.send(WsMessage::Text("leave".into())).unwrap();
    wait_for("a2 to leave", || *room.members.lock().unwrap() == 1);
    b2.send(WsMessage::Text("to b".into())).unwrap();
    a1.send(WsMessage::Text("to a".into())).unwrap();
    assert_eq!(read_text(&mut b1), "to b");
    // a2 left topic a, so the next thing it reads is what b1 publishes... to b, which it is
    // not in either: it reads nothing. Prove it with a direct check of its socket.
    if let MaybeTlsStream::Plain(stream) = a2.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
    }
    assert!(
        a2.read().is_err(),
        "an unsubscribed connection got a publish"
    );
    server.stop();
}

#[test]
fn closing_unsubscribes() {
    let room = Room::default();
    let server = start(common::config(), room.clone());
    let mut stay = connect(server.addr, "/room/lobby");
    let mut leave = connect(server.addr, "/room/lobby");
    wait_for("two members", || *room.members.lock().unwrap() == 2);
    leave.close(None).unwrap();
    while leave.read().is_ok() {}
    wait_for("the close", || room.closed.lock().unwrap().len() == 1);
    assert_eq!(
        *room.members.lock().unwrap(),
        1,
        "the closed connection left the topic"
    );
    let mut other = connect(server.addr, "/room/lobby");
    other.send(WsMessage::Text("still here?".into())).unwrap();
    assert_eq!(read_text(&mut stay), "still here?");
    server.stop();
}

#[test]
fn a_subscriber_that_never_reads_does_not_hold_up_the_others() {
    for policy in [
        SlowSubscriber::Drop,
        SlowSubscriber::Close(CloseCode::TRY_AGAIN_LATER),
    ] {
        let room = Room::default();
        let config = Config {
            backpressure_limit: 64 << 10,
            slow_subscriber: policy,
            ..common::config()
        };
        let server = start(config, room.clone());
        // A raw socket with a tiny receive buffer that is never read.
        let mut stalled = common::Raw::connect(server.addr);
        common::set_recv_buffer(&stalled.stream, 4096);
        stalled.handshake(&common::upgrade_request("/room/lobby", &[]));
        let mut reader = connect(server.addr, "/room/lobby");
        let mut sender = connect(server.addr, "/room/lobby");
        wait_for("three members", || *room.members.lock().unwrap() == 3);
        // 12.5 MiB in all: more than the kernel buffers between server and stalled client.
        let payload = "x".repeat(64 << 10);
        for _ in 0..200 {
            sender.send(WsMessage::Text(payload.clone())).unwrap();
            assert_eq!(read_text(&mut reader).len(), payload.len());
        }
        match policy {
            SlowSubscriber::Drop => {
                assert!(*room.dropped.lock().unwrap() > 0, "nothing was dropped")
            }
            SlowSubscriber::Close(_) => {
                assert_eq!(*room.dropped.lock().unwrap(), 0);
                // Closed, not dropped: the server answers no more and closes the socket
                // after the close timeout, since the client never reads the close frame.
                wait_for("the slow subscriber to be closed", || {
                    room.closed.lock().unwrap().len() == 1
                });
            }
            other => unreachable!("not tested here: {other:?}"),
        }
        drop(stalled);
        server.stop();
    }
}

#[test]
fn publish_from_another_thread() {
    let server = start(common::config(), EchoRooms::default());
    let mut a = connect(server.addr, "/chat/news");
    let mut b = connect(server.addr, "/chat/news");
    // Both joins are done once each has had an echo-free round trip through the room.
    a.send(WsMessage::Text("hello b".into())).unwrap();
    assert_eq!(read_text(&mut b), "hello b");
    let remote = server.remote.clone();
    thread::spawn(move || {
        for i in 0..100 {
            remote
                .publish("news", format!("n{i}").into(), None)
                .expect("publish");
        }
    })
    .join()
    .unwrap();
    for client in [&mut a, &mut b] {
        for i in 0..100 {
            assert_eq!(read_text(client), format!("n{i}"));
        }
    }
    server.stop();
}

#[test]
fn echo_rooms_echoes_outside_rooms_and_rejects_nameless_rooms() {
    let server = start(common::config(), EchoRooms::default());
    let mut echo = connect(server.addr, "/");
    echo.send(WsMessage::Text("ping".into())).unwrap();
    assert_eq!(read_text(&mut echo), "ping");
    let err =
        tungstenite::connect(format!("ws://{}/chat/", server.addr)).expect_err("must be rejected");
    match err {
        tungstenite::Error::Http(response) => assert_eq!(response.status(), 404),
        other => panic!("unexpected {other:?}"),
    }
    server.stop();
}
