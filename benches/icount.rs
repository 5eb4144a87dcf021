//! Instruction-count driver for the frame hot path, for `benches/icount.sh` (callgrind).
//!
//! Builds a fixed frame mix of masked client frames once, then runs `ROUNDS` passes of
//! parse + unmask + validate + deliver through `Session::poll`, each on a fresh copy of the
//! input. Only [`wsloop_icount_pass`] is measured by the script (callgrind `--toggle-collect`),
//! so the copies and the setup are left out and the count is the same on every run whatever
//! the machine is doing.
//!
//! Arguments: `[ROUNDS] [MIX] [HANDLER]`, MIX `mix` (default: mostly 16-byte texts with some
//! 125 B binary, 1000 B multibyte text, ping and 16 KiB binary) or `text16` (only 16-byte
//! texts); HANDLER `deliver` (default: the event goes to a closure that looks at it) or `echo`
//! (each data message is sent back into the output buffer, as the echo server does).
//!
//! `cargo bench --bench icount` runs it natively once as a smoke test; the numbers that matter
//! come from `benches/icount.sh`.

use std::hint::black_box;

use wsloop::proto::{
    encode_frame, Event, FrameSpec, OpCode, Role, Session, SessionEvent, MAX_CONTROL_PAYLOAD,
};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The frames of one round: mostly small messages, as chat-like traffic is, plus (unless
/// `text16_only`) a few larger ones so unmasking and validation show up.
fn frames(text16_only: bool) -> (Vec<u8>, usize, usize) {
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
    let multibyte = "κόσμε € 日本語 ".repeat(40); // 1000 bytes, mostly 2- and 3-byte characters
    for i in 0..100 {
        push(OpCode::Text, text16);
        if text16_only {
            continue;
        }
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

/// The measured code: one read buffer through the session, every event to the handler, which
/// echoes data messages into `out` if `echo` (what the echo server does per read).
#[inline(never)]
fn wsloop_icount_pass(
    session: &mut Session,
    input: &mut [u8],
    out: &mut Vec<u8>,
    echo: bool,
) -> usize {
    let mut pos = 0;
    let mut events = 0;
    while pos < input.len() {
        let (used, event) = session.poll(&mut input[pos..], out);
        pos += used;
        match event {
            Some(SessionEvent::Frame(event)) => {
                events += 1;
                if !echo {
                    black_box(event);
                    continue;
                }
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
    // Under `cargo bench` the only argument is `--bench`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rounds: usize = args.first().map_or(100, |a| a.parse().expect("ROUNDS"));
    let mix = args.get(1).map_or("mix", String::as_str);
    let handler = args.get(2).map_or("deliver", String::as_str);
    let text16_only = match mix {
        "mix" => false,
        "text16" => true,
        other => panic!("unknown mix {other:?}: mix or text16"),
    };
    let echo = match handler {
        "deliver" => false,
        "echo" => true,
        other => panic!("unknown handler {other:?}: deliver or echo"),
    };
    let (wire, messages, payload_bytes) = frames(text16_only);
    let mut input = wire.clone();
    let mut out = Vec::with_capacity(2 * wire.len());
    let mut delivered = 0;
    for _ in 0..rounds {
        input.copy_from_slice(&wire);
        out.clear();
        let mut session = Session::new(Role::Server, 1 << 20);
        delivered += wsloop_icount_pass(&mut session, black_box(&mut input), &mut out, echo);
        black_box(&out);
    }
    assert_eq!(delivered, rounds * messages);
    println!(
        "mix={mix} handler={handler} rounds={rounds} messages={} payload_bytes={} wire_bytes={}",
        rounds * messages,
        rounds * payload_bytes,
        rounds * wire.len()
    );
}
