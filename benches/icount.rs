//! Instruction-count driver for the frame hot path, for `benches/icount.sh` (callgrind).
//!
//! Builds a fixed mix of masked client frames once, then runs `ROUNDS` passes of
//! parse + unmask + validate + deliver through `Session::poll`, each on a fresh copy of the
//! input. Only [`wsloop_icount_pass`] is measured by the script (callgrind `--toggle-collect`),
//! so the copies and the setup are left out and the count is the same on every run whatever
//! the machine is doing.
//!
//! `cargo bench --bench icount` runs it natively once as a smoke test; the numbers that matter
//! come from `benches/icount.sh`.

use std::hint::black_box;

use wsloop::proto::{
    encode_frame, Event, FrameSpec, OpCode, Role, Session, SessionEvent, MAX_CONTROL_PAYLOAD,
};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The frame mix of one round: mostly small messages, as chat-like traffic is, plus a few
/// larger ones so unmasking and validation show up.
fn mix() -> (Vec<u8>, usize, usize) {
    let mut wire = Vec::new();
    let mut messages = 0;
    let mut payload_bytes = 0;
    let mut push = |opcode: OpCode, payload: &[u8]| {
        let spec = FrameSpec {
            mask: Some(MASK),
            ..FrameSpec::server(opcode)
        };
        encode_frame(&mut wire, spec, payload);
        messages += 1;
        payload_bytes += payload.len();
    };
    let text16 = b"0123456789abcdef";
    let multibyte = "κόσμε € 日本語 ".repeat(40); // ~1.1 KB of 2- and 3-byte characters
    for i in 0..100 {
        push(OpCode::Text, text16);
        if i % 10 == 0 {
            push(OpCode::Binary, &[0xa5; MAX_CONTROL_PAYLOAD]);
            push(OpCode::Text, multibyte.as_bytes());
        }
        if i % 50 == 0 {
            push(OpCode::Ping, b"ping");
            push(OpCode::Binary, &vec![0x5a; 16 << 10]);
        }
    }
    (wire, messages, payload_bytes)
}

/// The measured code: one read buffer through the session, every event to a handler that
/// echoes data messages into `out` (what the echo server does per read).
#[inline(never)]
fn wsloop_icount_pass(session: &mut Session, input: &mut [u8], out: &mut Vec<u8>) -> usize {
    let mut pos = 0;
    let mut events = 0;
    while pos < input.len() {
        let (used, event) = session.poll(&mut input[pos..], out);
        pos += used;
        match event {
            Some(SessionEvent::Frame(event)) => {
                events += 1;
                let sent = match event {
                    Event::Text(text) => session.send(out, OpCode::Text, text.as_bytes()),
                    Event::Binary(data) => session.send(out, OpCode::Binary, &data),
                    _ => Ok(()),
                };
                sent.expect("the session is open");
            }
            Some(SessionEvent::Failed(err)) => panic!("{err:?}"),
            None => {}
        }
    }
    events
}

fn main() {
    // Under `cargo bench` the first argument is `--bench`; a number sets the rounds.
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(100);
    let (wire, messages, payload_bytes) = mix();
    let mut input = wire.clone();
    let mut out = Vec::with_capacity(2 * wire.len());
    let mut delivered = 0;
    for _ in 0..rounds {
        input.copy_from_slice(&wire);
        out.clear();
        let mut session = Session::new(Role::Server, 1 << 20);
        delivered += wsloop_icount_pass(&mut session, black_box(&mut input), &mut out);
        black_box(&out);
    }
    assert_eq!(delivered, rounds * messages);
    println!(
        "rounds={rounds} messages={} payload_bytes={} wire_bytes={}",
        rounds * messages,
        rounds * payload_bytes,
        rounds * wire.len()
    );
}
