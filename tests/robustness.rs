//! Scale and abuse: many connections at once, abrupt resets, the connection limit, and
//! backpressure against a client that does not read.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use wsloop::{ConnId, Context, Echo, Handler, Message, SendStatus};

/// Raises the soft descriptor limit to at least `needed` (up to the hard limit).
fn ensure_fd_limit(needed: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur < needed {
        lim.rlim_cur = needed.min(lim.rlim_max);
        // SAFETY: a valid pointer to an rlimit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    }
    assert!(
        lim.rlim_cur >= needed,
        "this test needs {needed} descriptors; the hard limit is {}",
        lim.rlim_max
    );
}

#[test]
fn a_thousand_concurrent_connections_each_echo() {
    const N: usize = 1000;
    // Both ends of every connection live in this process, next to the other tests.
    ensure_fd_limit(4 * N as u64 + 1024);
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(config(), handler);
    let mut clients: Vec<Raw> = (0..N).map(|_| Raw::open(addr)).collect();
    assert_eq!(opened(&evs).len(), N, "all open at once");
    for (i, raw) in clients.iter_mut().enumerate() {
        raw.send(OP_TEXT, format!("message from client {i}").as_bytes());
    }
    for (i, raw) in clients.iter_mut().enumerate() {
        assert_eq!(
            raw.read_message(),
            (OP_TEXT, format!("message from client {i}").into_bytes())
        );
    }
    // Only now does any of them close.
    for raw in clients {
        raw.close_normally();
    }
    wait_until(Duration::from_secs(10), "every on_close", || {
        events(&evs)
            .iter()
            .filter(|e| matches!(e, Ev::Close(..)))
            .count()
            == N
    });
    stop(handle, join);
    assert_closed_exactly_once(&evs);
    for id in opened(&evs) {
        assert!(events_of(&evs, id).contains(&Ev::Close(id, 1000, String::new())));
    }
}

#[test]
fn abrupt_resets_do_not_hurt_other_connections() {
    let (handler, evs) = Recorder::new();
    let (addr, handle, join) = start(config(), handler);
    let mut bystander = Raw::open(addr);

    // Half a frame, then RST.
    let mut raw = Raw::open(addr);
    let mut half = header(true, 0, OP_BINARY, Some(MASK), 1000);
    half.extend_from_slice(&[0x55; 300]);
    raw.write(&half);
    set_linger_zero(&raw.stream);
    drop(raw);

    // Half a request, then RST.
    let mut raw = Raw::connect(addr);
    raw.write(b"GET / HTTP/1.1\r\nHost: loc");
    set_linger_zero(&raw.stream);
    drop(raw);

    // Messages to echo, then a close with the echoes unread (the kernel answers with RST).
    let mut raw = Raw::open(addr);
    for _ in 0..8 {
        raw.send(OP_BINARY, &[0xAB; 64 << 10]);
    }
    drop(raw);

    // RST in the middle of a large message the server is reading.
    let mut raw = Raw::open(addr);
    let mut big = header(true, 0, OP_BINARY, Some(MASK), 4 << 20);
    big.extend(std::iter::repeat(0x11).take(256 << 10));
    raw.write(&big);
    set_linger_zero(&raw.stream);
    drop(raw);

    // The bystander and newcomers are still served.
    bystander.send(OP_TEXT, b"still fine?");
    assert_eq!(bystander.read_message(), (OP_TEXT, b"still fine?".to_vec()));
    let mut newcomer = Raw::open(addr);
    newcomer.send(OP_TEXT, b"hello");
    assert_eq!(newcomer.read_message(), (OP_TEXT, b"hello".to_vec()));

    // Every reset connection that had opened got its on_close(1006).
    let ids = opened(&evs);
    assert_eq!(ids.len(), 5, "bystander, three upgraded resets, newcomer");
    for &id in &ids[1..4] {
        wait_until(
            Duration::from_secs(5),
            "on_close of a reset connection",
            || {
                events_of(&evs, id)
                    .iter()
                    .any(|e| matches!(e, Ev::Close(..)))
            },
        );
        let close = events_of(&evs, id).into_iter().last().unwrap();
        assert!(
            matches!(close, Ev::Close(_, 1006, _)),
            "reset connection {id:?}: {close:?}"
        );
    }
    bystander.close_normally();
    newcomer.close_normally();
    stop(handle, join);
    assert_closed_exactly_once(&evs);
}

/// Completes a handshake, or returns the HTTP status the server answered instead.
fn try_open(addr: SocketAddr) -> Result<Raw, u16> {
    let mut raw = Raw::connect(addr);
    raw.write(&upgrade_request("/", &[]));
    let response = raw.read_response();
    if response.status == 101 {
        assert_upgraded(&response);
        Ok(raw)
    } else {
        Err(response.status)
    }
}

#[test]
fn third_connection_over_max_connections_2_gets_503() {
    let mut cfg = config();
    cfg.max_connections = 2;
    let (addr, handle, join) = start(cfg, Echo);
    let mut a = Raw::open(addr);
    let b = Raw::open(addr);
    // The server answers as soon as it accepts, before any request.
    let mut third = Raw::connect(addr);
    let response = third.read_response();
    assert_eq!(response.status, 503, "{:?}", response.status_line);
    third.expect_closed();
    drop(third);
    // A client that sends its request at once (as tungstenite does) sees the 503 too.
    for _ in 0..5 {
        match tungstenite::client(format!("ws://{addr}/"), tcp(addr)) {
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                assert_eq!(resp.status().as_u16(), 503)
            }
            Err(err) => panic!("expected an HTTP 503, got {err}"),
            Ok(_) => panic!("a third connection was accepted"),
        }
    }
    // The two held connections still work.
    a.send(OP_TEXT, b"a");
    assert_eq!(a.read_message(), (OP_TEXT, b"a".to_vec()));
    // Once one leaves, there is room again.
    a.close_normally();
    let t0 = Instant::now();
    let c = loop {
        match try_open(addr) {
            Ok(raw) => break raw,
            Err(503) if t0.elapsed() < Duration::from_secs(3) => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(status) => panic!("no room after a connection closed: {status}"),
        }
    };
    b.close_normally();
    c.close_normally();
    stop(handle, join);
}

/// Echo that records the largest buffered amount seen right after a send.
struct Tracking {
    max_buffered: Arc<AtomicUsize>,
    statuses: Arc<Mutex<Vec<SendStatus>>>,
    drains: Arc<AtomicUsize>,
}

impl Handler for Tracking {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let status = ctx.send(id, msg).expect("send on an open connection");
        self.max_buffered
            .fetch_max(ctx.buffered_amount(id), Ordering::SeqCst);
        self.statuses.lock().unwrap().push(status);
    }

    fn on_drain(&mut self, _ctx: &mut Context<'_>, _id: ConnId) {
        self.drains.fetch_add(1, Ordering::SeqCst);
    }
}

fn pattern(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (j as u32).wrapping_mul(7).wrapping_add(i as u32 * 13) as u8)
        .collect()
}

#[test]
fn backpressure_bounds_the_queue_of_a_client_that_does_not_read() {
    const MSG: usize = 64 << 10;
    const COUNT: usize = 256; // 16 MiB: more than the kernel buffers hold
    let mut cfg = config();
    cfg.backpressure_limit = 128 << 10;
    cfg.read_buffer_size = 16 << 10;
    let bound = cfg.backpressure_limit + cfg.read_buffer_size + MSG + 14;
    let limit = cfg.backpressure_limit;
    let max_buffered = Arc::new(AtomicUsize::new(0));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let drains = Arc::new(AtomicUsize::new(0));
    let handler = Tracking {
        max_buffered: max_buffered.clone(),
        statuses: statuses.clone(),
        drains: drains.clone(),
    };
    let (addr, handle, join) = start(cfg, handler);
    let mut raw = Raw::open(addr);
    // A small receive buffer so the server's writes block soon.
    set_recv_buffer(&raw.stream, 32 << 10);
    raw.stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    let written = Arc::new(AtomicUsize::new(0));
    let mut writer_stream = raw.stream.try_clone().unwrap();
    let writer = {
        let written = written.clone();
        thread::spawn(move || {
            for i in 0..COUNT {
                let bytes = client_frame(OP_BINARY, &pattern(i, MSG));
                std::io::Write::write_all(&mut writer_stream, &bytes).expect("write");
                written.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    // Wait until the server has passed the limit, then until the writer is stuck (the server
    // stopped reading) or done.
    wait_until(Duration::from_secs(10), "the backpressure limit", || {
        max_buffered.load(Ordering::SeqCst) > limit
    });
    let mut last = written.load(Ordering::SeqCst);
    let mut still_since = Instant::now();
    let t0 = Instant::now();
    while last < COUNT && still_since.elapsed() < Duration::from_millis(200) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "writer neither stuck nor done"
        );
        thread::sleep(Duration::from_millis(10));
        let now = written.load(Ordering::SeqCst);
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    let max_while_stalled = max_buffered.load(Ordering::SeqCst);
    // 16 MiB do not fit in the kernel buffers between the two ends (about 8 MiB here): a
    // writer that is stuck with messages left means the server stopped reading.
    assert!(
        last < COUNT,
        "the writer got all {COUNT} messages out while the client read nothing"
    );
    assert!(
        max_while_stalled <= bound,
        "buffered {max_while_stalled} bytes for a client that does not read (bound {bound})"
    );
    assert!(
        statuses.lock().unwrap().contains(&SendStatus::Backpressure),
        "no send reported backpressure"
    );

    // Now read everything: every byte back, in order.
    for i in 0..COUNT {
        let (opcode, payload) = raw.read_message();
        assert_eq!(opcode, OP_BINARY);
        assert_eq!(payload.len(), MSG, "message {i}");
        assert!(payload == pattern(i, MSG), "message {i} differs");
    }
    writer.join().expect("writer");
    let max = max_buffered.load(Ordering::SeqCst);
    assert!(max <= bound, "buffered {max} bytes (bound {bound})");
    let statuses = statuses.lock().unwrap().clone();
    assert_eq!(statuses.len(), COUNT);
    assert!(
        !statuses.contains(&SendStatus::Dropped),
        "a message was dropped"
    );
    wait_until(Duration::from_secs(5), "on_drain", || {
        drains.load(Ordering::SeqCst) > 0
    });
    raw.close_normally();
    stop(handle, join);
}
