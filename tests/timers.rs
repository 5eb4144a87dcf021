//! Deadlines over real sockets: the handshake timeout (slowloris) and the idle ping.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;
use tungstenite::Message as TMessage;
use wsloop::Echo;

#[test]
fn slowloris_is_dropped_after_the_handshake_timeout() {
    let mut cfg = config();
    cfg.handshake_timeout = Duration::from_millis(300);
    let (addr, handle, join) = start(cfg, Echo);
    let t0 = Instant::now();
    let mut slow = Raw::connect(addr);
    slow.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: webso");

    // Meanwhile a normal client is served.
    let mut ws = ws_connect(addr);
    ws.send(TMessage::text("not blocked")).unwrap();
    assert_eq!(ws_read_data(&mut ws), TMessage::text("not blocked"));
    ws_close(ws);

    // The slow one: nothing but the end of the connection (an HTTP 408 at most) within ~1 s.
    slow.set_read_timeout(Duration::from_secs(2));
    let mut got = Vec::new();
    let ended = loop {
        let mut buf = [0u8; 1024];
        match slow.stream.read(&mut buf) {
            Ok(0) => break "eof",
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break "reset",
            Err(err) => panic!("slowloris connection still open after 2 s: {err}"),
        }
    };
    let elapsed = t0.elapsed();
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "unexpected answer to a slowloris: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(1),
        "closed ({ended}) after {elapsed:?}, expected ~300 ms"
    );
    drop(slow);
    stop(handle, join);
}

#[test]
fn slowloris_dripping_bytes_is_still_dropped() {
    // The deadline is for the whole handshake: bytes trickling in do not extend it.
    let mut cfg = config();
    cfg.handshake_timeout = Duration::from_millis(300);
    let (addr, handle, join) = start(cfg, Echo);
    let t0 = Instant::now();
    let mut slow = Raw::connect(addr);
    slow.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Drip: ");
    // One byte every 20 ms (the read timeout paces the loop) until the server hangs up.
    slow.set_read_timeout(Duration::from_millis(20));
    let ended = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "dripping client still connected after 2 s"
        );
        if std::io::Write::write_all(&mut slow.stream, b"a").is_err() {
            break "write failed";
        }
        let mut buf = [0u8; 256];
        match slow.stream.read(&mut buf) {
            Ok(0) => break "eof",
            Ok(n) => assert!(
                buf[..n].starts_with(b"HTTP/1.1 408"),
                "unexpected answer {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break "reset",
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(err) => panic!("reading: {err}"),
        }
    };
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(1),
        "dripping client dropped ({ended}) after {elapsed:?}, expected ~300 ms"
    );
    drop(slow);
    stop(handle, join);
}

#[test]
fn idle_client_that_answers_pings_stays_open() {
    let mut cfg = config();
    cfg.idle_timeout = Some(Duration::from_millis(300));
    let (addr, handle, join) = start(cfg, Echo);
    let mut ws = ws_connect(addr);
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let t0 = Instant::now();
    let mut pings = Vec::new();
    // Three and a half idle periods, reading all the while (tungstenite answers each ping
    // with a pong on the next read).
    while t0.elapsed() < Duration::from_millis(1050) {
        match ws.read() {
            Ok(TMessage::Ping(_)) => pings.push(t0.elapsed()),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(err) => panic!(
                "connection ended after {:?} with {} pings: {err}",
                t0.elapsed(),
                pings.len()
            ),
        }
    }
    assert!(
        pings.len() >= 2,
        "expected a ping per idle period, got {pings:?}"
    );
    assert!(
        pings[0] >= Duration::from_millis(250),
        "first ping before the idle timeout: {pings:?}"
    );
    // Still open and working.
    ws.get_ref().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    ws.send(TMessage::text("still here")).unwrap();
    assert_eq!(ws_read_data(&mut ws), TMessage::text("still here"));
    ws_close(ws);
    stop(handle, join);
}

#[test]
fn idle_client_that_never_answers_is_dropped_after_two_periods() {
    let mut cfg = config();
    cfg.idle_timeout = Some(Duration::from_millis(300));
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(cfg, handler);
    let t0 = Instant::now();
    let mut raw = Raw::open(addr);
    raw.set_read_timeout(Duration::from_secs(2));
    let ping = raw.frame();
    let ping_at = t0.elapsed();
    assert_eq!((ping.opcode, ping.fin), (OP_PING, true), "{ping:?}");
    assert!(
        ping_at >= Duration::from_millis(250) && ping_at < Duration::from_millis(800),
        "idle ping after {ping_at:?}, expected ~300 ms"
    );
    // No pong: the server gives up one idle period later (a close frame may come first).
    match raw.next() {
        Next::Eof | Next::Reset => {}
        Next::Frame(frame) if frame.opcode == OP_CLOSE => raw.expect_closed(),
        other => panic!("expected the connection to be dropped, got {other:?}"),
    }
    let dropped_at = t0.elapsed();
    assert!(
        dropped_at >= Duration::from_millis(550) && dropped_at < Duration::from_millis(1500),
        "dropped after {dropped_at:?}, expected ~600 ms"
    );
    drop(raw);
    let id = opened(&evs)[0];
    wait_until(Duration::from_secs(2), "on_close", || {
        events_of(&evs, id)
            .iter()
            .any(|e| matches!(e, Ev::Close(..)))
    });
    assert_eq!(
        events_of(&evs, id)[1..],
        [Ev::Error(id, "timeout"), Ev::Close(id, 1006, String::new())]
    );
    stop(handle, join);
}

#[test]
fn traffic_postpones_the_idle_ping() {
    let mut cfg = config();
    cfg.idle_timeout = Some(Duration::from_millis(300));
    let (addr, handle, join) = start(cfg, Echo);
    let mut raw = Raw::open(addr);
    let t0 = Instant::now();
    // A message every 100 ms for 900 ms: the server never sees 300 ms of silence.
    while t0.elapsed() < Duration::from_millis(900) {
        raw.send(OP_TEXT, b"tick");
        assert_eq!(raw.read_message(), (OP_TEXT, b"tick".to_vec()));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Now silence: the first ping comes about one idle period after the last message.
    let last = Instant::now();
    let ping = raw.frame();
    assert_eq!(ping.opcode, OP_PING, "{ping:?}");
    assert!(
        last.elapsed() >= Duration::from_millis(150),
        "{:?}",
        last.elapsed()
    );
    raw.write(&client_frame(OP_PONG, &ping.payload));
    raw.close_normally();
    stop(handle, join);
}
