//! What the handler sees over a connection's life, server-initiated closes, and graceful
//! shutdown.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use tungstenite::protocol::frame::coding::CloseCode as TCloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message as TMessage;
use wsloop::{ReadyState, SendStatus};

#[test]
fn clean_connection_sees_open_message_ping_close_once() {
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(config(), handler);
    let mut ws = ws_connect(addr);
    let client_addr = ws.get_ref().local_addr().unwrap();
    ws.send(TMessage::text("hi")).unwrap();
    assert_eq!(ws_read_data(&mut ws), TMessage::text("hi"));
    ws.send(TMessage::Ping(b"p".to_vec())).unwrap();
    assert_eq!(ws.read().unwrap(), TMessage::Pong(b"p".to_vec()));
    ws.send(TMessage::binary(vec![9, 8])).unwrap();
    assert_eq!(ws_read_data(&mut ws), TMessage::binary(vec![9, 8]));
    ws.send(TMessage::Pong(b"unsolicited".to_vec())).unwrap();
    ws.close(Some(CloseFrame {
        code: TCloseCode::Normal,
        reason: "done".into(),
    }))
    .unwrap();
    match ws.read().unwrap() {
        TMessage::Close(Some(frame)) => assert_eq!(frame.code, TCloseCode::Normal),
        other => panic!("expected the close echo, got {other:?}"),
    }
    assert!(matches!(
        ws.read(),
        Err(tungstenite::Error::ConnectionClosed)
    ));
    drop(ws);
    let ids = opened(&evs);
    assert_eq!(ids.len(), 1);
    let id = ids[0];
    // The server reports the close before it echoes it, so everything is recorded by now.
    assert_eq!(
        events(&evs),
        [
            Ev::Open(id, Some(client_addr)),
            Ev::Message(id, OP_TEXT, b"hi".to_vec(), ReadyState::Open),
            Ev::Ping(id, b"p".to_vec()),
            Ev::Message(id, OP_BINARY, vec![9, 8], ReadyState::Open),
            Ev::Pong(id, b"unsolicited".to_vec()),
            Ev::Close(id, 1000, "done".to_owned()),
        ]
    );
    stop(handle, join);
    // Nothing more after the socket went away and the server stopped.
    assert_eq!(events(&evs).len(), 6);
    assert_closed_exactly_once(&evs);
}

#[test]
fn close_without_code_is_reported_as_1005() {
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(config(), handler);
    let mut raw = Raw::open(addr);
    raw.send(OP_CLOSE, b"");
    raw.expect_close_frame();
    raw.expect_closed();
    drop(raw);
    let id = opened(&evs)[0];
    assert_eq!(
        events_of(&evs, id)[1..],
        [Ev::Close(id, 1005, String::new())]
    );
    stop(handle, join);
    assert_closed_exactly_once(&evs);
}

#[test]
fn dropping_tcp_reports_1006_once() {
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(config(), handler);
    let mut raw = Raw::open(addr);
    raw.send(OP_TEXT, b"then gone");
    assert_eq!(raw.read_message(), (OP_TEXT, b"then gone".to_vec()));
    drop(raw);
    let id = opened(&evs)[0];
    wait_until(Duration::from_secs(5), "on_close after EOF", || {
        events_of(&evs, id)
            .iter()
            .any(|e| matches!(e, Ev::Close(..)))
    });
    let mine = events_of(&evs, id);
    assert_eq!(
        mine.iter()
            .filter(|e| matches!(e, Ev::Close(..)))
            .collect::<Vec<_>>(),
        [&Ev::Close(id, 1006, String::new())]
    );

    // The same mid-message: the client dies inside a fragmented message.
    let mut raw = Raw::open(addr);
    raw.write(&frame(false, 0, OP_TEXT, Some(MASK), b"half a mess"));
    drop(raw);
    wait_until(Duration::from_secs(5), "second on_close", || {
        events(&evs)
            .iter()
            .filter(|e| matches!(e, Ev::Close(..)))
            .count()
            == 2
    });
    let second = opened(&evs)[1];
    assert!(events_of(&evs, second).contains(&Ev::Close(second, 1006, String::new())));
    stop(handle, join);
    assert_closed_exactly_once(&evs);
}

#[test]
fn protocol_violation_reports_error_then_close() {
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(config(), handler);
    let mut raw = Raw::open(addr);
    raw.write(&frame(true, 0, OP_TEXT, None, b"unmasked"));
    // The handler hears of it before the close frame is written.
    raw.expect_failed_with(1002);
    let id = opened(&evs)[0];
    let mine = events_of(&evs, id);
    assert_eq!(mine.len(), 3, "{mine:?}");
    assert!(matches!(mine[0], Ev::Open(..)));
    assert_eq!(mine[1], Ev::Error(id, "protocol"));
    // No close frame came from the peer: 1006, as the handler docs say.
    assert!(
        matches!(&mine[2], Ev::Close(_, 1006, _)),
        "expected on_close(1006), got {:?}",
        mine[2]
    );
    stop(handle, join);
    assert_closed_exactly_once(&evs);
}

#[test]
fn handler_close_sends_4000_bye_and_reports_on_the_answer() {
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(config(), handler);
    let mut raw = Raw::open(addr);
    raw.send(OP_TEXT, b"close me");
    let close = raw.expect_close_frame();
    assert_eq!(close.close_code(), Some(4000));
    assert_eq!(close.close_reason(), "bye");
    let id = opened(&evs)[0];
    // The close frame is out; on_close waits for the client's answer.
    assert_eq!(
        events_of(&evs, id)[1..],
        [
            Ev::Message(id, OP_TEXT, b"close me".to_vec(), ReadyState::Open),
            Ev::AfterClose(id, ReadyState::Closing),
        ]
    );
    // A message the client sent before it saw the close may still be delivered (in CLOSING),
    // but the server must not send anything after its close frame: only EOF follows.
    raw.send(OP_TEXT, b"too late");
    raw.send(OP_CLOSE, &close_payload(4000, b"bye"));
    raw.expect_closed();
    drop(raw);
    let mine = events_of(&evs, id);
    assert_eq!(
        mine.last(),
        Some(&Ev::Close(id, 4000, "bye".to_owned())),
        "{mine:?}"
    );
    for ev in &mine[3..mine.len() - 1] {
        assert_eq!(
            ev,
            &Ev::Message(id, OP_TEXT, b"too late".to_vec(), ReadyState::Closing)
        );
    }

    // tungstenite answers the close on its own.
    let mut ws = ws_connect(addr);
    ws.send(TMessage::text("close me")).unwrap();
    match ws.read().unwrap() {
        TMessage::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4000);
            assert_eq!(frame.reason, "bye");
        }
        other => panic!("expected close 4000, got {other:?}"),
    }
    assert!(matches!(
        ws.read(),
        Err(tungstenite::Error::ConnectionClosed)
    ));
    drop(ws);
    let second = opened(&evs)[1];
    assert_eq!(
        events_of(&evs, second).last(),
        Some(&Ev::Close(second, 4000, "bye".to_owned()))
    );
    stop(handle, join);
    assert_closed_exactly_once(&evs);
}

// ---------------------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------------------

#[test]
fn shutdown_sends_1001_to_every_client_and_returns_within_close_timeout() {
    let mut cfg = config();
    cfg.close_timeout = Duration::from_secs(2);
    let close_timeout = cfg.close_timeout;
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(cfg, handler);
    let mut clients: Vec<Ws> = (0..3).map(|_| ws_connect(addr)).collect();
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.send(TMessage::text(format!("client {i}"))).unwrap();
        assert_eq!(ws_read_data(ws), TMessage::text(format!("client {i}")));
    }
    let t0 = Instant::now();
    handle.shutdown();
    for ws in &mut clients {
        match ws.read().unwrap() {
            TMessage::Close(Some(frame)) => assert_eq!(frame.code, TCloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    // The listener is gone once shutdown has begun.
    assert!(
        TcpStream::connect(addr).is_err(),
        "a new connection was accepted during shutdown"
    );
    // tungstenite sends its answer on the next read, then sees the server close TCP.
    for mut ws in clients {
        assert!(matches!(
            ws.read(),
            Err(tungstenite::Error::ConnectionClosed)
        ));
    }
    join_within(join, close_timeout.saturating_sub(t0.elapsed()));
    let closes: Vec<Ev> = events(&evs)
        .into_iter()
        .filter(|e| matches!(e, Ev::Close(..)))
        .collect();
    assert_eq!(closes.len(), 3);
    for ev in closes {
        assert!(matches!(ev, Ev::Close(_, 1001, _)), "{ev:?}");
    }
    assert_closed_exactly_once(&evs);
}

#[test]
fn shutdown_gives_up_on_silent_clients_after_close_timeout() {
    let mut cfg = config();
    cfg.close_timeout = Duration::from_millis(300);
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(cfg, handler);
    let mut clients: Vec<Raw> = (0..3).map(|_| Raw::open(addr)).collect();
    let t0 = Instant::now();
    handle.shutdown();
    for raw in &mut clients {
        let close = raw.expect_close_frame();
        assert_eq!(close.close_code(), Some(1001));
    }
    // Nobody answers: run returns once the close timeout has passed.
    join_within(join, Duration::from_secs(2));
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250),
        "returned before the close timeout: {elapsed:?}"
    );
    for raw in &mut clients {
        raw.expect_closed();
    }
    for id in opened(&evs) {
        assert_eq!(
            events_of(&evs, id)[1..],
            [Ev::Error(id, "timeout"), Ev::Close(id, 1006, String::new())]
        );
    }
}

#[test]
fn shutdown_with_no_connections_returns_at_once() {
    let (addr, handle, join) = start(config(), wsloop::Echo);
    let t0 = Instant::now();
    stop_within(handle, join, Duration::from_secs(1));
    assert!(t0.elapsed() < Duration::from_millis(500));
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn unanswered_handler_close_ends_after_close_timeout_with_one_on_close() {
    let mut cfg = config();
    cfg.close_timeout = Duration::from_millis(300);
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(cfg, handler);
    let mut raw = Raw::open(addr);
    raw.send(OP_TEXT, b"close me");
    let t0 = Instant::now();
    assert_eq!(raw.expect_close_frame().close_code(), Some(4000));
    // No answer: the server drops the connection once the close timeout has passed.
    raw.set_read_timeout(Duration::from_secs(2));
    raw.expect_closed();
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_millis(1500),
        "dropped after {elapsed:?}, expected ~300 ms"
    );
    drop(raw);
    let id = opened(&evs)[0];
    wait_until(Duration::from_secs(2), "on_close", || {
        events_of(&evs, id)
            .iter()
            .any(|e| matches!(e, Ev::Close(..)))
    });
    assert_eq!(
        events_of(&evs, id)[3..],
        [Ev::Error(id, "timeout"), Ev::Close(id, 1006, String::new())]
    );
    stop(handle, join);
    assert_closed_exactly_once(&evs);
}

/// Greets every connection from `on_open` with a small and a large message.
struct Greeter;

impl wsloop::Handler for Greeter {
    type Data = ();

    fn on_open(&mut self, ctx: &mut wsloop::Context<'_>, id: wsloop::ConnId) {
        assert_eq!(ctx.ready_state(id), ReadyState::Open);
        assert_eq!(ctx.send_text(id, "welcome"), Ok(SendStatus::Sent));
        assert_eq!(ctx.send_binary(id, &[0x5a; 64 << 10]), Ok(SendStatus::Sent));
        assert_eq!(ctx.ping(id, b"hello?"), Ok(SendStatus::Sent));
    }

    fn on_message(
        &mut self,
        ctx: &mut wsloop::Context<'_>,
        id: wsloop::ConnId,
        msg: wsloop::Message<'_>,
    ) {
        let _ = ctx.send(id, msg);
    }
}

#[test]
fn sends_from_on_open_come_after_the_101() {
    let (addr, handle, join) = start(config(), Greeter);
    let mut raw = Raw::connect(addr);
    let mut bytes = upgrade_request("/", &[]);
    bytes.extend(client_frame(OP_TEXT, b"early"));
    raw.write(&bytes);
    assert_upgraded(&raw.read_response());
    assert_eq!(raw.read_message(), (OP_TEXT, b"welcome".to_vec()));
    assert_eq!(raw.read_message(), (OP_BINARY, vec![0x5a; 64 << 10]));
    let ping = raw.frame();
    assert_eq!(
        (ping.opcode, ping.payload.as_slice()),
        (OP_PING, &b"hello?"[..])
    );
    assert_eq!(raw.read_message(), (OP_TEXT, b"early".to_vec()));
    raw.close_normally();
    stop(handle, join);
}

#[test]
fn auto_pong_off_leaves_pings_to_the_handler() {
    let mut cfg = config();
    cfg.auto_pong = false;
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(cfg, handler);
    let mut raw = Raw::open(addr);
    raw.send(OP_PING, b"anyone?");
    raw.send(OP_TEXT, b"marker");
    // The echo of the marker comes first: no pong was sent.
    assert_eq!(raw.read_message(), (OP_TEXT, b"marker".to_vec()));
    let id = opened(&evs)[0];
    assert!(events_of(&evs, id).contains(&Ev::Ping(id, b"anyone?".to_vec())));
    raw.close_normally();
    stop(handle, join);
}

#[test]
fn shutdown_drops_connections_still_in_the_handshake() {
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(config(), handler);
    let mut half = Raw::connect(addr);
    half.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n");
    let mut open = Raw::open(addr);
    let t0 = Instant::now();
    handle.shutdown();
    assert_eq!(open.expect_close_frame().close_code(), Some(1001));
    open.send(OP_CLOSE, &close_payload(1001, b""));
    open.expect_closed();
    drop(open);
    // The half-done handshake gets no 101, just the end of the connection.
    half.expect_closed();
    drop(half);
    join_within(join, Duration::from_secs(1));
    assert!(t0.elapsed() < Duration::from_millis(900));
    // Only the open connection was ever reported.
    assert_eq!(opened(&evs).len(), 1);
    assert_closed_exactly_once(&evs);
}
