//! Memory a client can make the server commit with a few bytes.
//!
//! A frame header alone must not make the server reserve the whole declared length: a client
//! that declares frames just under `max_message_size` and sends one byte would otherwise cost
//! that much per connection. The test runs the binary as its own process (so no other test's
//! allocations interfere) and watches its virtual size.

mod common;

use common::process::Proc;
use common::*;

/// The process's virtual size in KiB.
fn vm_size_kib(pid: u32) -> u64 {
    common::process::status_kib(pid, "VmSize")
}

#[test]
fn declared_length_within_the_limit_is_not_reserved_up_front() {
    const CONNS: usize = 32;
    const DECLARED: u64 = 60 << 20;
    let mut proc = Proc::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--max-message-size",
        "64MiB",
        "--log-level",
        "off",
    ]);
    let addr = proc.listening_addr();
    let pid = proc.0.id();

    // Warm up: one full echo so the steady-state buffers exist before measuring.
    let mut probe = Raw::open(addr);
    probe.send(OP_BINARY, &[1; 1024]);
    assert_eq!(probe.read_message(), (OP_BINARY, vec![1; 1024]));
    let before = vm_size_kib(pid);

    let mut clients = Vec::new();
    for _ in 0..CONNS {
        let mut raw = Raw::open(addr);
        let mut bytes = header(true, 0, OP_BINARY, Some(MASK), DECLARED);
        bytes.push(0);
        raw.write(&bytes);
        clients.push(raw);
    }
    // A round trip after all of them: the server has read their headers by now.
    probe.send(OP_BINARY, &[2; 16]);
    assert_eq!(probe.read_message(), (OP_BINARY, vec![2; 16]));
    let grown_mib = vm_size_kib(pid).saturating_sub(before) / 1024;
    // 32 connections that sent 33 bytes each: a few MiB at most, not 32 x 60 MiB.
    assert!(
        grown_mib < 256,
        "virtual size grew by {grown_mib} MiB for {CONNS} frame headers declaring {} MiB each",
        DECLARED >> 20
    );
    drop(clients);
    drop(probe);
}
