//! Adversarial clients over loopback. Every scenario asserts its exact outcome (the close code
//! or HTTP status, and that the connection was closed), and around it the same three things:
//!
//! - a bystander connection opened before the attack still echoes afterwards;
//! - the server's connection count (`Context::connection_count`, every connection in any
//!   state) comes back to the bystander alone, and every `on_open` got its `on_close`;
//! - the server's memory comes back: each scenario runs three times (`ADVERSARIAL_ROUNDS`
//!   for more), and the server thread's live heap may not grow by more than a small margin
//!   in both of the last two rounds (the first round warms the buffer pool, the slab and the
//!   timer heap, which keep their capacity by design, and a later round may need a little
//!   more once; a leak grows the heap every round). The heap is counted exactly: a counting
//!   global allocator keeps live bytes per thread, and the handler reads the server thread's
//!   figure from inside a callback.
//!
//! Protocol violations one by one, the handshake answers and the basic timers are covered in
//! violations.rs, handshake.rs and timers.rs; this file adds the state and memory checks and
//! the attacks those do not make (floods, churn, half-close, a full server).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use wsloop::{CloseCode, Config, ConnId, Context, Error, Handler, Message};

// ---------------------------------------------------------------------------------------
// Live heap bytes per thread
// ---------------------------------------------------------------------------------------

struct CountingAlloc;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread.
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn count(delta: i64) {
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

// SAFETY: every call is passed straight to the system allocator; the bookkeeping touches
// only a const-initialised thread-local integer, which never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            count(layout.size() as i64);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            count(layout.size() as i64);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        count(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = System.realloc(ptr, layout, new_size);
        if !new.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        new
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

// ---------------------------------------------------------------------------------------
// The handler: echo, plus counters that need no allocation
// ---------------------------------------------------------------------------------------

/// What the handler saw, in atomics only (a growing Vec would show up as server heap).
#[derive(Default)]
struct Seen {
    opens: AtomicUsize,
    closes: AtomicUsize,
    /// `on_close` codes 1000..=1015, by code - 1000.
    close_codes: [AtomicUsize; 16],
    errors: AtomicUsize,
    messages: AtomicUsize,
    pings: AtomicUsize,
    /// The largest `buffered_amount` seen in `on_ping` (after the automatic pong was queued).
    max_buffered_at_ping: AtomicUsize,
    /// The largest `buffered_amount` seen right after echoing a message.
    max_buffered_at_echo: AtomicUsize,
    /// The server thread's live heap when it was last asked.
    heap: AtomicI64,
    /// Rounds of the scenario run so far.
    rounds: AtomicUsize,
}

impl Seen {
    fn closes_with(&self, code: u16) -> usize {
        self.close_codes[usize::from(code - 1000)].load(Ordering::SeqCst)
    }
}

/// Echoes, except two questions: `count?` answers the server's connection count and `heap?`
/// the server thread's live heap bytes.
struct Guard(Arc<Seen>);

impl Handler for Guard {
    type Data = ();

    fn on_open(&mut self, _ctx: &mut Context<'_>, _id: ConnId) {
        self.0.opens.fetch_add(1, Ordering::SeqCst);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        self.0.messages.fetch_add(1, Ordering::SeqCst);
        match msg {
            Message::Text("count?") => {
                let _ = ctx.send_text(id, &ctx.connection_count().to_string());
            }
            Message::Text("heap?") => {
                let live = LIVE.with(Cell::get);
                self.0.heap.store(live, Ordering::SeqCst);
                let _ = ctx.send_text(id, &live.to_string());
            }
            _ => {
                let _ = ctx.send(id, msg);
                self.0
                    .max_buffered_at_echo
                    .fetch_max(ctx.buffered_amount(id), Ordering::SeqCst);
            }
        }
    }

    fn on_ping(&mut self, ctx: &mut Context<'_>, id: ConnId, _payload: &[u8]) {
        self.0.pings.fetch_add(1, Ordering::SeqCst);
        self.0
            .max_buffered_at_ping
            .fetch_max(ctx.buffered_amount(id), Ordering::SeqCst);
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, _id: ConnId, code: CloseCode, _reason: &str) {
        self.0.closes.fetch_add(1, Ordering::SeqCst);
        if let Some(slot) = code
            .0
            .checked_sub(1000)
            .and_then(|i| self.0.close_codes.get(usize::from(i)))
        {
            slot.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn on_error(&mut self, _ctx: &mut Context<'_>, _id: ConnId, _err: &Error) {
        self.0.errors.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------

/// How much a round after the first may grow the server thread's live heap.
const HEAP_MARGIN: i64 = 64 << 10;

/// A text question to the server over `raw`; the answer as a number.
fn ask(raw: &mut Raw, question: &str) -> i64 {
    raw.send(OP_TEXT, question.as_bytes());
    let (opcode, answer) = raw.read_message();
    assert_eq!(opcode, OP_TEXT);
    std::str::from_utf8(&answer)
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("answer to {question}: {answer:?}"))
}

/// Waits until the bystander is the server's only connection.
fn settle(bystander: &mut Raw, what: &str) {
    let t0 = Instant::now();
    loop {
        let count = ask(bystander, "count?");
        if count == 1 {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{what}: {count} connections still held 5 s after the attack (expected only the bystander)"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `attack` three times against a fresh server with `cfg`, with a bystander connection open
/// throughout, and checks the bystander, the connection count and the heap after each round.
/// Returns the handler's counters for scenario-specific checks.
fn scenario(name: &str, cfg: Config, attack: impl Fn(SocketAddr, &Seen)) -> Arc<Seen> {
    let seen = Arc::new(Seen::default());
    let (addr, handle, join) = start(cfg, Guard(seen.clone()));
    let mut bystander = Raw::open(addr);
    bystander.send(OP_TEXT, b"before");
    assert_eq!(bystander.read_message(), (OP_TEXT, b"before".to_vec()));

    // ADVERSARIAL_ROUNDS=N runs more rounds, to watch the heap over a longer stretch.
    let rounds = std::env::var("ADVERSARIAL_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3usize)
        .max(3);
    let mut heap = Vec::new();
    for round in 1..=rounds {
        attack(addr, &seen);
        seen.rounds.fetch_add(1, Ordering::SeqCst);
        settle(&mut bystander, name);
        let text = format!("{name}: still served after round {round}");
        bystander.send(OP_TEXT, text.as_bytes());
        assert_eq!(
            bystander.read_message(),
            (OP_TEXT, text.into_bytes()),
            "{name}: the bystander's echo"
        );
        // Twice: the first answer's own buffers settle before the second is read.
        ask(&mut bystander, "heap?");
        heap.push(ask(&mut bystander, "heap?"));
    }
    // A leak grows the heap every round; a pool or table that needed a little more room
    // grows it once. So the smaller of the two growths must be within the margin.
    let last = heap.len() - 1;
    let growth = (heap[last - 1] - heap[last - 2]).min(heap[last] - heap[last - 1]);
    assert!(
        growth <= HEAP_MARGIN,
        "{name}: server heap grew by at least {growth} bytes in each round after the first \
         ({heap:?})"
    );

    bystander.close_normally();
    // A newcomer finds itself alone: the bystander is gone too.
    let mut probe = Raw::open(addr);
    let t0 = Instant::now();
    while ask(&mut probe, "count?") != 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{name}: bystander not released"
        );
        thread::sleep(Duration::from_millis(5));
    }
    probe.close_normally();
    wait_until(Duration::from_secs(5), "every on_close", || {
        seen.closes.load(Ordering::SeqCst) == seen.opens.load(Ordering::SeqCst)
    });
    stop(handle, join);
    eprintln!("{name}: server heap after each round {heap:?}");
    seen
}

/// Reads until the server ends the connection; returns everything that came before.
fn read_to_end(raw: &mut Raw, limit: Duration) -> Vec<u8> {
    raw.set_read_timeout(limit);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match raw.stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(err) => panic!(
                "the server did not end the connection within {limit:?}: {err}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

#[test]
fn slowloris_handshakes_are_dropped_and_leave_nothing_behind() {
    let mut cfg = config();
    cfg.handshake_timeout = Duration::from_millis(300);
    scenario("slowloris", cfg, |addr, _| {
        let t0 = Instant::now();
        // Silent, half a request line, headers without their end, and one that drips.
        let mut clients: Vec<Raw> = (0..24)
            .map(|i| {
                let mut raw = Raw::connect(addr);
                match i % 3 {
                    0 => {}
                    1 => raw.write(b"GET / HTTP/1.1\r\nHost: loc"),
                    _ => raw.write(&upgrade_request("/", &[])[..100]),
                }
                raw
            })
            .collect();
        let mut drip = Raw::connect(addr);
        drip.write(b"GET / HTTP/1.1\r\nX-Drip: ");
        drip.set_read_timeout(Duration::from_millis(20));
        let mut buf = [0u8; 64];
        loop {
            if drip.stream.write_all(b"a").is_err() {
                break;
            }
            match drip.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => panic!(
                    "answer to a slowloris: {:?}",
                    String::from_utf8_lossy(&buf[..n])
                ),
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(_) => assert!(
                    t0.elapsed() < Duration::from_secs(2),
                    "dripping client kept"
                ),
            }
        }
        for raw in &mut clients {
            let answer = read_to_end(raw, Duration::from_secs(2));
            assert!(
                answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
                "unexpected answer to a slowloris: {:?}",
                String::from_utf8_lossy(&answer)
            );
        }
        let elapsed = t0.elapsed();
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_millis(1500),
            "slowloris clients dropped after {elapsed:?}, expected ~300 ms"
        );
    });
}

#[test]
fn oversized_handshakes_get_431_and_are_closed() {
    let mut cfg = config();
    cfg.max_handshake_bytes = 1024;
    scenario("oversized handshakes", cfg, |addr, _| {
        let expect_431 = |bytes: &[u8], what: &str| {
            let mut raw = Raw::connect(addr);
            raw.write_lenient(bytes);
            let response = raw.read_response();
            assert_eq!(response.status, 431, "{what}: {}", response.status_line);
            raw.expect_closed();
        };
        // One header past the cap, complete.
        let pad = "p".repeat(1100);
        expect_431(
            &upgrade_request("/", &[("X-Pad", &pad)]),
            "a complete request over the cap",
        );
        // Headers that never end, sent in pieces past the cap.
        let mut endless = Raw::connect(addr);
        endless.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n");
        for i in 0..40 {
            endless.write_lenient(format!("X-Header-{i}: {}\r\n", "v".repeat(40)).as_bytes());
        }
        let response = endless.read_response();
        assert_eq!(
            response.status, 431,
            "endless headers: {}",
            response.status_line
        );
        endless.expect_closed();
        // More headers than the parser takes (64), well under the byte cap.
        let many: Vec<(String, String)> = (0..70)
            .map(|i| (format!("X-{i}"), "v".to_owned()))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let request = upgrade_request("/", &many);
        assert!(request.len() < 1024);
        expect_431(&request, "70 headers");
    });
}

#[test]
fn frame_attacks_fail_with_the_exact_code_and_leave_nothing_behind() {
    let mut cfg = config();
    cfg.max_message_size = 64 << 10;
    let seen = scenario("frame attacks", cfg, |addr, _| {
        // 2^63 - 1 bytes declared: refused from the header alone with 1009.
        assert_fails(
            addr,
            &header(true, 0, OP_BINARY, Some(MASK), (1 << 63) - 1),
            1009,
            "2^63-1 declared",
        );
        // One byte over the limit declared, in one frame and spread over fragments.
        assert_fails(
            addr,
            &header(true, 0, OP_BINARY, Some(MASK), (64 << 10) + 1),
            1009,
            "limit + 1 declared",
        );
        let mut fragments = frame(false, 0, OP_BINARY, Some(MASK), &[1; 40 << 10]);
        fragments.extend(header(true, 0, OP_CONT, Some(MASK), (24 << 10) + 1));
        assert_fails(addr, &fragments, 1009, "fragments over the limit");
        // The top bit of the 64-bit length.
        assert_fails(
            addr,
            &header(true, 0, OP_BINARY, Some(MASK), 1 << 63),
            1002,
            "length top bit",
        );
        // Unmasked data and control frames.
        assert_fails(
            addr,
            &frame(true, 0, OP_TEXT, None, b"bare"),
            1002,
            "unmasked text",
        );
        assert_fails(
            addr,
            &frame(true, 0, OP_PING, None, b""),
            1002,
            "unmasked ping",
        );
        // Bad UTF-8 split across fragments: E2 is a valid start, E2 28 is not.
        let mut split = frame(false, 0, OP_TEXT, Some(MASK), b"ok\xe2");
        split.extend(frame(true, 0, OP_CONT, Some(MASK), b"\x28"));
        assert_fails(addr, &split, 1007, "bad UTF-8 across fragments");
        // ...while a valid code point split the same way is echoed whole.
        let mut raw = Raw::open(addr);
        raw.write(&frame(false, 0, OP_TEXT, Some(MASK), b"ok\xe2"));
        raw.write(&frame(false, 0, OP_CONT, Some(MASK), b"\x82"));
        raw.write(&frame(true, 0, OP_CONT, Some(MASK), b"\xac!"));
        assert_eq!(raw.read_message(), (OP_TEXT, "ok€!".as_bytes().to_vec()));
        raw.close_normally();
        // Fragmented control frames: ping, pong and close without FIN.
        for opcode in [OP_PING, OP_PONG, OP_CLOSE] {
            assert_fails(
                addr,
                &frame(false, 0, opcode, Some(MASK), b""),
                1002,
                &format!("control {opcode:#x} without FIN"),
            );
        }
        // A ping between fragments is answered, and the message still arrives.
        let mut raw = Raw::open(addr);
        raw.write(&frame(false, 0, OP_BINARY, Some(MASK), b"ab"));
        raw.write(&frame(true, 0, OP_PING, Some(MASK), b"between"));
        raw.write(&frame(true, 0, OP_CONT, Some(MASK), b"cd"));
        let pong = raw.frame();
        assert_eq!((pong.opcode, pong.payload), (OP_PONG, b"between".to_vec()));
        assert_eq!(raw.read_message(), (OP_BINARY, b"abcd".to_vec()));
        raw.close_normally();
    });
    // Ten failed connections per round, each reported once: on_error, then on_close(1006).
    let rounds = seen.rounds.load(Ordering::SeqCst);
    assert_eq!(seen.errors.load(Ordering::SeqCst), 10 * rounds);
    assert_eq!(seen.closes_with(1006), 10 * rounds);
}

#[test]
fn resets_in_the_middle_of_anything_are_reported_once() {
    scenario("resets", config(), |addr, seen| {
        let closes = seen.closes_with(1006);
        let reset = |raw: Raw| {
            set_linger_zero(&raw.stream);
            drop(raw);
        };
        // Mid-handshake.
        let mut raw = Raw::connect(addr);
        raw.write(&upgrade_request("/", &[])[..60]);
        reset(raw);
        // Mid-header, mid-payload, mid-way through a large message, with echoes unread.
        let mut raw = Raw::open(addr);
        raw.write(&header(true, 0, OP_BINARY, Some(MASK), 1 << 20)[..5]);
        reset(raw);
        let mut raw = Raw::open(addr);
        let mut half = header(true, 0, OP_BINARY, Some(MASK), 1000);
        half.extend_from_slice(&[0x55; 300]);
        raw.write(&half);
        reset(raw);
        let mut raw = Raw::open(addr);
        let mut big = header(true, 0, OP_BINARY, Some(MASK), 4 << 20);
        big.extend(std::iter::repeat(0x11).take(256 << 10));
        raw.write(&big);
        reset(raw);
        let mut raw = Raw::open(addr);
        for _ in 0..8 {
            raw.send(OP_BINARY, &[0xAB; 1 << 10]);
        }
        reset(raw);
        wait_until(Duration::from_secs(5), "on_close(1006) of 4 resets", || {
            seen.closes_with(1006) == closes + 4
        });
    });
}

#[test]
fn half_close_still_gets_what_was_owed() {
    let seen = scenario("half-close", config(), |addr, _| {
        // A message, then FIN: the echo still comes, then the server's FIN, no close frame.
        let mut raw = Raw::open(addr);
        raw.send(OP_TEXT, b"last words");
        raw.stream.shutdown(Shutdown::Write).unwrap();
        assert_eq!(raw.read_message(), (OP_TEXT, b"last words".to_vec()));
        assert!(
            matches!(raw.next(), Next::Eof),
            "expected the server's FIN after the echo"
        );
        // A request, then FIN: the 101 still comes, then the server's FIN.
        let mut raw = Raw::connect(addr);
        raw.write(&upgrade_request("/", &[]));
        raw.stream.shutdown(Shutdown::Write).unwrap();
        assert_upgraded(&raw.read_response());
        assert!(
            matches!(raw.next(), Next::Eof),
            "expected the server's FIN after the 101"
        );
        // A close frame, then FIN: the close is echoed, then the server's FIN.
        let mut raw = Raw::open(addr);
        raw.send(OP_CLOSE, &close_payload(1000, b""));
        raw.stream.shutdown(Shutdown::Write).unwrap();
        assert_eq!(raw.expect_close_frame().close_code(), Some(1000));
        assert!(matches!(raw.next(), Next::Eof));
        // Half a frame, then FIN: nothing can be answered; the server just closes.
        let mut raw = Raw::open(addr);
        raw.write(&header(true, 0, OP_BINARY, Some(MASK), 100));
        raw.write(&[7; 10]);
        raw.stream.shutdown(Shutdown::Write).unwrap();
        assert!(matches!(raw.next(), Next::Eof));
    });
    // Per round: three FINs without a close frame (1006), one clean close (1000); the
    // bystander and the probe close with 1000 too.
    let rounds = seen.rounds.load(Ordering::SeqCst);
    assert_eq!(seen.closes_with(1006), 3 * rounds);
    assert_eq!(seen.closes_with(1000), rounds + 2);
}

#[test]
fn thousands_of_connect_and_drop_cycles_leak_nothing() {
    const THREADS: usize = 4;
    const PER_ROUND: usize = 1000;
    let mut cfg = config();
    cfg.handshake_timeout = Duration::from_millis(500);
    let seen = scenario("connect-and-drop", cfg, |addr, _| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                thread::spawn(move || {
                    for i in (t..PER_ROUND).step_by(THREADS) {
                        cycle(addr, i);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("a connect-and-drop worker failed");
        }
    });
    // Five of every eight cycles upgrade; each such connection was reported closed once.
    let upgraded =
        seen.rounds.load(Ordering::SeqCst) * (0..PER_ROUND).filter(|i| i % 8 >= 3).count();
    assert_eq!(seen.opens.load(Ordering::SeqCst), upgraded + 2);
    assert_eq!(seen.closes.load(Ordering::SeqCst), upgraded + 2);
}

/// One connect-and-drop cycle of kind `i % 8`.
fn cycle(addr: SocketAddr, i: usize) {
    let request = upgrade_request("/", &[]);
    let mut raw = Raw::connect(addr);
    // RST only where the server's view does not depend on timing: a reset can discard
    // input the server has not read yet (kind 3 must be read to open).
    let rst = matches!(i % 8, 1 | 5 | 7);
    match i % 8 {
        // Connect and go, by FIN or RST.
        0 | 1 => {}
        // Part of the request.
        2 => raw.write(&request[..request.len() / 2]),
        // The whole request, then FIN with the 101 never read.
        3 => raw.write(&request),
        // Open, then half a header / half a payload / a whole message unread.
        4 | 5 => {
            raw.handshake(&request);
            let mut bytes = header(true, 0, OP_BINARY, Some(MASK), 64);
            bytes.extend_from_slice(&[9; 20]);
            let cut = if i % 8 == 4 { 1 } else { bytes.len() };
            raw.write(&bytes[..cut]);
        }
        6 | 7 => {
            raw.handshake(&request);
            raw.send(OP_TEXT, b"unread echo");
        }
        _ => unreachable!(),
    }
    if rst {
        set_linger_zero(&raw.stream);
    }
    drop(raw);
}

#[test]
fn a_client_that_never_reads_is_held_at_the_backpressure_limit() {
    const MSG: usize = 64 << 10;
    let mut cfg = config();
    cfg.backpressure_limit = 64 << 10;
    cfg.read_buffer_size = 16 << 10;
    // Once over the limit the server stops reading; what it holds for the connection is the
    // limit, plus the message whose echo crossed it.
    let bound = cfg.backpressure_limit + MSG + 14;
    let seen = scenario("never reads", cfg, |addr, seen| {
        let raw = Raw::open(addr);
        set_recv_buffer(&raw.stream, 16 << 10);
        let mut writer = raw.stream.try_clone().unwrap();
        writer
            .set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        // Up to 16 MiB, more than the kernel buffers between the two ends hold. A write that
        // times out after the server passed the limit means it stopped reading; before
        // that, the server is only slow, and writing goes on.
        let message = client_frame(OP_BINARY, &[0x5A; MSG]);
        let (mut sent, mut pos, mut stuck) = (0, 0, false);
        let t0 = Instant::now();
        while sent < 256 && t0.elapsed() < Duration::from_secs(20) {
            match writer.write(&message[pos..]) {
                Ok(n) => {
                    pos += n;
                    if pos == message.len() {
                        (sent, pos) = (sent + 1, 0);
                    }
                }
                Err(_) if seen.max_buffered_at_echo.load(Ordering::SeqCst) > 64 << 10 => {
                    stuck = true;
                    break;
                }
                Err(_) => {}
            }
        }
        assert!(
            stuck,
            "a client that reads nothing got {sent} messages of 64 KiB written"
        );
        set_linger_zero(&raw.stream);
        drop(raw);
    });
    let max = seen.max_buffered_at_echo.load(Ordering::SeqCst);
    eprintln!("never reads: at most {max} bytes buffered (bound {bound})");
    assert!(max > 64 << 10, "the limit was never reached ({max})");
    assert!(
        max <= bound,
        "buffered {max} bytes for a client that reads nothing (bound {bound})"
    );
}

#[test]
fn a_full_server_answers_503_and_recovers() {
    let mut cfg = config();
    cfg.max_connections = 8;
    scenario("max connections", cfg, |addr, _| {
        // The bystander holds one place; seven more fill the server.
        let held: Vec<Raw> = (0..7).map(|_| Raw::open(addr)).collect();
        // The server answers as soon as it accepts, before any request.
        for _ in 0..50 {
            let mut refused = Raw::connect(addr);
            let response = refused.read_response();
            assert_eq!(response.status, 503, "{}", response.status_line);
            refused.expect_closed();
        }
        for raw in held {
            raw.close_normally();
        }
        // Room again as soon as the closes are through.
        let t0 = Instant::now();
        loop {
            let mut raw = Raw::connect(addr);
            raw.set_read_timeout(Duration::from_millis(100));
            let mut first = [0u8; 1];
            match raw.stream.peek(&mut first) {
                Ok(_) => {
                    let response = raw.read_response();
                    assert_eq!(response.status, 503, "{}", response.status_line);
                    raw.expect_closed();
                }
                Err(_) => {
                    raw.set_read_timeout(IO_TIMEOUT);
                    raw.handshake(&upgrade_request("/", &[]));
                    raw.close_normally();
                    break;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "no room after the closes"
            );
            thread::sleep(Duration::from_millis(5));
        }
    });
}

#[test]
fn a_ping_flood_pauses_reading_instead_of_queueing_pongs() {
    const PINGS: usize = 100_000;
    let mut cfg = config();
    cfg.backpressure_limit = 64 << 10;
    cfg.read_buffer_size = 16 << 10;
    // Past the limit the server stops reading: what it holds is the limit plus the pongs of
    // the read that crossed it.
    let bound = cfg.backpressure_limit + 2 * cfg.read_buffer_size;
    let seen = scenario("ping flood", cfg, |addr, seen| {
        let pings_before = seen.pings.load(Ordering::SeqCst);
        let raw = Raw::open(addr);
        set_recv_buffer(&raw.stream, 16 << 10);
        let mut writer = raw.stream.try_clone().unwrap();
        writer
            .set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        // 100 000 pings of 125 bytes (13 MB), never reading a pong. A write that times out
        // once the server passed the limit means it stopped reading, as it should.
        let batch = client_frame(OP_PING, &[b'p'; 125]).repeat(1000);
        let (mut sent, mut pos, mut stuck) = (0, 0, false);
        let t0 = Instant::now();
        while sent < PINGS && t0.elapsed() < Duration::from_secs(20) {
            match writer.write(&batch[pos..]) {
                Ok(n) => {
                    pos += n;
                    if pos == batch.len() {
                        (sent, pos) = (sent + 1000, 0);
                    }
                }
                Err(_) if seen.max_buffered_at_ping.load(Ordering::SeqCst) > 64 << 10 => {
                    stuck = true;
                    break;
                }
                Err(_) => {}
            }
        }
        let handled = seen.pings.load(Ordering::SeqCst) - pings_before;
        assert!(
            stuck,
            "the server read all {sent} pings ({handled} handled) from a client that reads no pong"
        );
        set_linger_zero(&raw.stream);
        drop(raw);
    });
    let max = seen.max_buffered_at_ping.load(Ordering::SeqCst);
    eprintln!("ping flood: at most {max} bytes of pongs buffered (bound {bound})");
    assert!(max > 64 << 10, "the limit was never reached ({max})");
    assert!(
        max <= bound,
        "pongs queued past the limit: {max} bytes buffered (bound {bound})"
    );
}

#[test]
fn echoing_messages_that_span_reads_keeps_the_heap_flat() {
    let mut cfg = config();
    // 64 KiB messages over 16 KiB reads: every message is assembled in a buffer of its own.
    cfg.read_buffer_size = 16 << 10;
    scenario("messages spanning reads", cfg, |addr, _| {
        let mut raw = Raw::open(addr);
        for i in 0..100u8 {
            let payload = vec![i; 64 << 10];
            raw.send(OP_BINARY, &payload);
            assert_eq!(raw.read_message(), (OP_BINARY, payload));
        }
        raw.close_normally();
    });
}
