//! The accept loop when the process runs out of file descriptors (EMFILE): it must neither
//! crash nor spin, and must take the waiting connections in once descriptors are free again.
//!
//! The server runs as its own process with a soft limit of 64 descriptors (`ulimit -n`), so
//! the limit does not touch the test process.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::process::{Proc, BIN};

/// CPU time (user + system) the process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split(' ')
        .collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

fn upgrade(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(&common::upgrade_request("/", &[]))?;
    let mut response = [0u8; 12];
    stream.read_exact(&mut response)?;
    assert_eq!(&response, b"HTTP/1.1 101");
    let mut rest = [0u8; 1024];
    let _ = stream.read(&mut rest)?;
    Ok(stream)
}

#[test]
fn out_of_descriptors_pauses_accepting_without_spinning_and_recovers() {
    // `exec` keeps the PID, so the server is killed by it whatever happens.
    let mut shell = Command::new("sh");
    shell
        .args([
            "-c",
            "ulimit -n 64 && exec \"$0\" --listen 127.0.0.1:0 --log-level error",
        ])
        .arg(BIN);
    let mut server = Proc::spawn_command(shell);
    let addr = server.listening_addr();

    // Fill the descriptor table: the handshakes that fit complete, the rest time out.
    let mut open = Vec::new();
    let mut refused = 0;
    while refused < 3 && open.len() < 80 {
        match upgrade(addr) {
            Ok(stream) => open.push(stream),
            Err(_) => refused += 1,
        }
    }
    assert!(open.len() >= 40, "only {} connections opened", open.len());
    assert!(open.len() < 64, "the 64-descriptor limit was never reached");

    // With descriptors exhausted and clients waiting in the backlog, the loop must sleep
    // between retries rather than spin on EMFILE.
    let before = cpu_ticks(server.0.id());
    thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(server.0.id()) - before;
    assert!(
        spent < 30,
        "the server used {spent} ticks of CPU in one idle second"
    );

    // Free descriptors: new connections are served again.
    drop(open.drain(..20).collect::<Vec<_>>());
    thread::sleep(Duration::from_millis(300));
    let mut again = upgrade(addr).expect("a connection after descriptors were freed");
    let frame = common::client_frame(common::OP_TEXT, b"still alive");
    again.write_all(&frame).expect("send");
    let mut echo = [0u8; 13];
    again.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    again.read_exact(&mut echo).expect("echo");
    assert_eq!(&echo[2..], b"still alive");
    drop(server);
}
